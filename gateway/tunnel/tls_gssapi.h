/* SPDX-License-Identifier: MIT */
/*
 * tls-gssapi: Kerberos inside TLS, bound to the channel
 * (docs/protocols.md, "tls-gssapi"). A TLS handshake, then the knc token
 * exchange inside TLS with channel bindings = tls-exporter (RFC 9266),
 * then the data as plain TLS records.
 */
#ifndef TSGATE_TLS_GSSAPI_H
#define TSGATE_TLS_GSSAPI_H

#include <stdbool.h>
#include <talloc.h>
#include <tevent.h>

struct tstream_context;
struct tstream_tls_params;
struct tstream_gssapi_params;

/* Bytes of the tls-exporter channel binding (RFC 9266). */
#define TSGATE_TLS_GSSAPI_CB_LEN 32

/**
 * @brief Run both handshakes on a connected plain stream.
 *
 * The TLS side follows the tls params (server or client); the GSSAPI
 * side follows the gssapi params (acceptor or initiator). TLS 1.2 is
 * refused (EPROTO) after the TLS handshake and before any token: its
 * tls-exporter is not the RFC 9266 one and tls-server-end-point would
 * bind the certificate, not the session (docs/protocols.md).
 *
 * @param mem_ctx  Context of the request.
 * @param ev       Event context.
 * @param plain    The connected stream; taken over (also on failure).
 * @param tls      TLS parameters.
 * @param gssapi   GSSAPI parameters.
 * @param server   true: TLS server and GSSAPI acceptor.
 */
struct tevent_req *tsgate_tls_gssapi_send(TALLOC_CTX *mem_ctx,
					  struct tevent_context *ev,
					  struct tstream_context *plain,
					  struct tstream_tls_params *tls,
					  struct tstream_gssapi_params *gssapi,
					  bool server);

/**
 * @brief The result of tsgate_tls_gssapi_send().
 *
 * @param req        The request.
 * @param perrno     The errno on failure (as the TLS and GSSAPI
 *                   handshakes say; EPROTO for TLS 1.2).
 * @param mem_ctx    Owner of the results.
 * @param _tls       Receives the TLS stream, which carries the data.
 * @param _identity  Receives the GSSAPI identity (its getters only).
 * @param _reason    Optional; on failure a readable reason on mem_ctx.
 * @return 0, or -1 with *perrno set.
 */
int tsgate_tls_gssapi_recv(struct tevent_req *req,
			   int *perrno,
			   TALLOC_CTX *mem_ctx,
			   struct tstream_context **_tls,
			   struct tstream_context **_identity,
			   char **_reason);

#endif /* TSGATE_TLS_GSSAPI_H */
