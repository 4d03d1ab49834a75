/* SPDX-License-Identifier: MIT */
/*
 * What the gateway knows about a client once its tunnel is up, read from
 * the TLS or GSSAPI stream's getters: what routes match on and what the
 * identity hand-off tells a backend.
 */
#ifndef TSGATE_PEER_INFO_H
#define TSGATE_PEER_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <talloc.h>

struct tsocket_address;
struct tstream_context;

/*
 * Everything known about a client once its tunnel is up. Strings are
 * NULL when unknown / not applicable. The struct does not own them.
 */
struct tsgate_peer_info {
	const struct tsocket_address *remote; /* the client */
	const struct tsocket_address *local;  /* our end of it */

	/* accept: tls */
	bool tls;
	const char *tls_version; /* e.g. "TLS1.3" */
	const char *tls_cipher;
	/* our TLS 1.3 record layer runs the records (not GnuTLS) */
	bool tls_own_records;
	/* why the record layer's self-check kept GnuTLS, or NULL */
	const char *tls_records_refused;
	bool tls_resumed; /* the handshake resumed a session (a ticket) */
	const char *sni;
	const char *alpn;
	bool client_cert;           /* a certificate was presented */
	bool cert_verified;         /* ... and it verified */
	const char *client_subject; /* RFC 4514 DN */
	const char *client_cn;      /* the most specific (leftmost) CN */
	/*
	 * Why the certificate's names cannot be trusted (a NUL in a SAN...),
	 * else NULL. Then it has no subject, CN or SANs, matches no
	 * client_subject/client_san and a backend is told it did not verify.
	 */
	const char *client_name_error;
	const char *const *client_sans; /* "DNS:x", "IP:1.2.3.4", ... */
	size_t num_client_sans;

	/* accept: gssapi */
	bool gssapi;
	const char *principal;      /* gss_display_name */
	const char *local_name;     /* gss_localname, if it maps */
	const char *mech;           /* "krb5" */
	const uint8_t *export_name; /* gss_export_name bytes */
	size_t export_name_len;
};

/**
 * @brief Fill the tls part of info from an accepted TLS stream.
 *
 * The strings stay owned by the stream: info must not outlive it.
 *
 * @param info    Filled (tls and its fields; the rest is left alone).
 * @param stream  A tstream_tls whose handshake completed.
 */
void tsgate_peer_info_from_tls(struct tsgate_peer_info *info,
			       struct tstream_context *stream);

/**
 * @brief Fill the gssapi part of info from an accepted GSSAPI stream.
 *
 * The local name (gss_localname) is made on mem_ctx; the other strings
 * stay owned by the stream: info must not outlive either.
 *
 * @param mem_ctx  Owner of the local name.
 * @param info     Filled (gssapi and its fields; the rest is left alone).
 * @param stream   A tstream_gssapi whose handshake completed.
 */
void tsgate_peer_info_from_gssapi(TALLOC_CTX *mem_ctx,
				  struct tsgate_peer_info *info,
				  struct tstream_context *stream);

#endif /* TSGATE_PEER_INFO_H */
