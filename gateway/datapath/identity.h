/* SPDX-License-Identifier: MIT */
/*
 * The identity hand-off that tells a backend who the client is (struct
 * tsgate_peer_info, peer_info.h) before any client byte:
 * HAProxy's PROXY protocol v2, or knc's KEY:VALUE lines.
 */
#ifndef TSGATE_IDENTITY_H
#define TSGATE_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <talloc.h>

#include "peer_info.h"

/* PROXY protocol v2 constants (HAProxy's proxy-protocol.txt, 2.2). */
#define PP2_SIGNATURE           "\r\n\r\n\0\r\nQUIT\n"
#define PP2_SIGNATURE_LEN       12
#define PP2_VERSION_PROXY       0x21 /* version 2, command PROXY */
#define PP2_VERSION_LOCAL       0x20 /* version 2, command LOCAL */
#define PP2_FAM_UNSPEC          0x00
#define PP2_FAM_TCP4            0x11
#define PP2_FAM_TCP6            0x21
#define PP2_TYPE_ALPN           0x01
#define PP2_TYPE_AUTHORITY      0x02
#define PP2_TYPE_SSL            0x20
#define PP2_SUBTYPE_SSL_VERSION 0x21
#define PP2_SUBTYPE_SSL_CN      0x22
#define PP2_SUBTYPE_SSL_CIPHER  0x23
#define PP2_CLIENT_SSL          0x01
#define PP2_CLIENT_CERT_CONN    0x02
#define PP2_CLIENT_CERT_SESS    0x04
/* tsgate's TLVs in the application range 0xE0-0xEF. */
#define PP2_TYPE_TSGATE_PRINCIPAL 0xE0
#define PP2_TYPE_TSGATE_LOCALNAME 0xE1
#define PP2_TYPE_TSGATE_MECH      0xE2

/**
 * @brief The PROXY protocol v2 header for a connection.
 *
 * Addresses: the PROXY command with TCP4 when both ends are IPv4, TCP6
 * when both are inet and one is IPv6 (an IPv4 end as ::ffff:a.b.c.d);
 * anything else (unix sockets, unknown addresses) is the LOCAL command
 * with UNSPEC and no address block, which is what HAProxy and nginx
 * accept (they refuse or ignore a PROXY command of another family).
 * The TLVs are the same for every family, in order:
 * ALPN, AUTHORITY (SNI), SSL (with VERSION, CN, CIPHER sub-TLVs) when the
 * client came over TLS, then 0xE0 principal, 0xE1 local name, 0xE2
 * mechanism for GSSAPI.
 *
 * @return 0, or an errno (EMSGSIZE when the TLVs do not fit 64 KiB).
 */
int tsgate_identity_proxy_v2(TALLOC_CTX *mem_ctx,
			     const struct tsgate_peer_info *info,
			     uint8_t **buf,
			     size_t *len);

/**
 * @brief knc's hand-off lines for a connection.
 *
 * In knc's order: MECH, CREDS (krb5 only), EXPORT_NAME (upper-case hex),
 * REMOTE_IP or REMOTE_IP6, REMOTE_ADDR, REMOTE_PORT, VERSION, then "END".
 * Each line is KEY:VALUE\n. Without GSSAPI there is no MECH, CREDS or
 * EXPORT_NAME.
 *
 * @return 0, or EINVAL when a value holds a newline or NUL (knc refuses
 *         those: they would let a peer inject lines).
 */
int tsgate_identity_knc(TALLOC_CTX *mem_ctx,
			const struct tsgate_peer_info *info,
			uint8_t **buf,
			size_t *len);

/**
 * @brief Who the client is, for logs: the Kerberos principal, or the
 *        subject of a client certificate that verified; else NULL.
 */
const char *tsgate_identity_summary(const struct tsgate_peer_info *info);

#endif /* TSGATE_IDENTITY_H */
