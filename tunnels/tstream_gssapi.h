/* SPDX-License-Identifier: MIT */
/*
 * tstream_gssapi — a Kerberos (MIT GSSAPI, krb5 mechanism) virtual
 * tstream over a plain tstream, wire-compatible with knc 1.x.
 *
 * Wire format (docs/protocols.md, "GSSAPI wire format"): every token is
 * a 4-byte big-endian length followed by the token. The initiator speaks
 * first; context tokens are exchanged until both sides are done. Data
 * frames carry one gss_wrap token each, with confidentiality; plaintext
 * is cut so a frame stays within 64 KiB. The writing side ends with one
 * end marker, wrap("") (the authenticated close), then TCP's FIN, and
 * nothing after it: the knc program stops reading at its first end
 * marker, and bytes it leaves unread make its kernel reset the
 * connection.
 *
 * Usage: build a params object once (at configuration time; it checks
 * the keytab/ccache and reports a readable reason), then run
 * tstream_gssapi_accept_send() or tstream_gssapi_connect_send() on each
 * connected plain stream. The resulting stream is a normal tstream:
 * readv/writev/pending_bytes/disconnect, plus tstream_shutdown_send() for
 * the authenticated half-close.
 *
 * Reads and writes fail with: EPIPE at the end of stream (the peer's
 * authenticated close, or a bare FIN unless strict EOF is set; writes
 * after one's own tstream_shutdown_send()), ECONNABORTED (truncated frame,
 * or a bare FIN in strict mode), EMSGSIZE (frame length outside
 * 1..TSTREAM_GSSAPI_MAX_TOKEN), EPROTO (a token that does not unwrap
 * cleanly with confidentiality: forged, replayed, reordered, integrity
 * only), EKEYEXPIRED (the context lifetime is over), or the plain
 * stream's errno. Every error but EPIPE is sticky: later reads and
 * writes fail the same way.
 *
 * Errors are errno values; for GSSAPI failures a human-readable reason
 * (gss_display_status of the major and minor codes, e.g. "Key table entry
 * not found") is available from the _recv functions and from
 * tstream_gssapi_error_reason().
 *
 * The library keeps no global state and never changes the process
 * environment; two params objects with different keytabs or ccaches can
 * be used side by side in one process.
 */

#ifndef TSTREAM_GSSAPI_H
#define TSTREAM_GSSAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <talloc.h>
#include <tevent.h>
#include <tsocket.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup tstream_gssapi GSSAPI (Kerberos) virtual stream
 * @{
 */

/** @brief Largest handshake token or data frame length accepted. */
#define TSTREAM_GSSAPI_MAX_TOKEN (65536 + 512)

/** @brief Largest plaintext wrapped into one data frame (upper bound). */
#define TSTREAM_GSSAPI_MAX_CHUNK 65536

/** @brief Default handshake timeout in milliseconds. */
#define TSTREAM_GSSAPI_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000

/**
 * @brief Configuration of one side (acceptor or initiator).
 *
 * A talloc object. A request copies what it needs when it is sent, so
 * the owner may free (or replace, e.g. on a config reload) the params at
 * any time. Credentials are acquired afresh for each handshake, so a
 * rotated keytab or renewed ccache is picked up.
 */
struct tstream_gssapi_params;

/**
 * @brief Create acceptor (server side) params.
 *
 * Acquires acceptor credentials from the keytab with
 * gss_acquire_cred_from() (cred store "keytab"), so a missing keytab or
 * principal is reported here, not at the first connection.
 *
 * @param mem_ctx    Owner of the params.
 * @param keytab     Keytab name or path ("FILE:/x", "/x"); NULL means the
 *                   process default (KRB5_KTNAME / krb5.conf).
 * @param principal  Acceptor name, or NULL to accept for any key in the
 *                   keytab. A name containing '/' is a Kerberos principal
 *                   ("host/gw.example.com" or with "@REALM"); otherwise a
 *                   host-based service ("host@gw.example.com", "host").
 * @param _params    Receives the params.
 * @param _reason    Optional; on failure receives a readable reason,
 *                   allocated on mem_ctx.
 * @return 0, or an errno (EINVAL, ENOENT for a missing keytab or key,
 *         EACCES, ENOMEM, EIO for other GSSAPI failures).
 */
int tstream_gssapi_params_acceptor(TALLOC_CTX *mem_ctx,
				   const char *keytab,
				   const char *principal,
				   struct tstream_gssapi_params **_params,
				   char **_reason);

/**
 * @brief Create initiator (client side) params.
 *
 * @param mem_ctx         Owner of the params.
 * @param target          The service to authenticate to: a host-based
 *                        service "service@host" (e.g. "host@gw.example.com")
 *                        or, when it contains '/', a Kerberos principal
 *                        ("host/gw.example.com@EXAMPLE.COM").
 * @param ccache          Credential cache name ("FILE:/tmp/krb5cc_app"),
 *                        or NULL. With client_keytab it is where tickets
 *                        obtained from the keytab are kept; NULL then means
 *                        a private in-memory cache owned by the params.
 * @param client_keytab   Client keytab to obtain tickets from, or NULL.
 * @param client_principal Client principal to use, or NULL (the ccache's
 *                        principal, or the first key of client_keytab).
 * @param _params         Receives the params.
 * @param _reason         Optional reason on failure (on mem_ctx).
 * @return 0 or an errno, as tstream_gssapi_params_acceptor().
 *
 * With neither ccache nor client_keytab the process defaults apply
 * (KRB5CCNAME). Credentials are checked here and acquired again for each
 * connection, so a renewed ccache is picked up.
 */
int tstream_gssapi_params_initiator(TALLOC_CTX *mem_ctx,
				    const char *target,
				    const char *ccache,
				    const char *client_keytab,
				    const char *client_principal,
				    struct tstream_gssapi_params **_params,
				    char **_reason);

/**
 * @brief Set the handshake timeout (context establishment).
 * @param msec  0 means no timeout; default
 *              TSTREAM_GSSAPI_DEFAULT_HANDSHAKE_TIMEOUT_MS.
 * A handshake that does not finish in time fails with ETIMEDOUT.
 */
void tstream_gssapi_params_set_handshake_timeout(
    struct tstream_gssapi_params *params, uint32_t msec);

/**
 * @brief Initiator only: request credential delegation (off by default).
 */
void tstream_gssapi_params_set_delegate(struct tstream_gssapi_params *params,
					bool delegate);

/**
 * @brief Treat a bare end of the plain stream (TCP FIN without the
 *        authenticated close) as truncation.
 *
 * Off by default: the knc program ends its direction with a bare FIN,
 * which is then end of stream (EPIPE), as is wrap(""). When on, only
 * wrap("") ends the stream, and a FIN between frames fails the read
 * with ECONNABORTED ("stream truncated: peer closed without the
 * authenticated close"). Streams of this library always send wrap("")
 * before their FIN, so two of them may both be strict.
 */
void tstream_gssapi_params_set_strict_eof(struct tstream_gssapi_params *params,
					  bool strict);

/**
 * @brief GSS_C_* flags the peer must have granted, in addition to the
 *        built-in ones.
 *
 * Built in: confidentiality and integrity on both sides, mutual
 * authentication on the initiator. An acceptor may add e.g.
 * GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG to refuse initiators that did
 * not ask for replay/sequence detection (knc clients may not).
 */
void tstream_gssapi_params_set_required_flags(
    struct tstream_gssapi_params *params, uint32_t gss_flags);

/**
 * @brief A pool of threads for the GSSAPI calls that can block.
 *
 * Without a pool every GSSAPI call of a handshake runs on the event
 * loop: gss_init_sec_context fetching a service ticket from a slow KDC,
 * gss_acquire_cred_from reading a keytab or ccache on a slow disk,
 * gss_accept_sec_context writing the replay cache. With one
 * (tstream_gssapi_params_set_pool()), a handshake whose event context is
 * the pool's runs those calls in the pool's threads and continues on the
 * loop when they return; its reads and writes stay on the loop.
 *
 * Rules: a context, credential or name is used by one thread at a time
 * (the handshake hands it to a thread with each call and takes it back
 * with the result); there is no shared krb5_context (MIT's mechanism
 * makes one per call). Threads start on demand, up to max_threads; at
 * most max_queue calls wait for a thread, further handshakes fail with
 * EAGAIN. A handshake freed (or timed out) while its call runs does not
 * wait: the call finishes in its thread and its result is freed on the
 * loop. Create the pool in the process that runs the loop (it does not
 * survive fork()); free the handshakes that use it before the pool, and
 * never free it from one of their callbacks. Freeing the pool waits for
 * the calls that are running.
 */
struct tstream_gssapi_pool;

/** @brief Upper bound of max_threads. */
#define TSTREAM_GSSAPI_POOL_MAX_THREADS 256

/**
 * @brief Make a pool serving the event context ev.
 *
 * @param mem_ctx      Owner.
 * @param ev           The loop results are delivered on.
 * @param max_threads  1..TSTREAM_GSSAPI_POOL_MAX_THREADS.
 * @param max_queue    Calls that may wait for a thread (>= 1).
 * @param _pool        The pool.
 * @return 0, EINVAL, ENOMEM or the errno of pipe2().
 */
int tstream_gssapi_pool_create(TALLOC_CTX *mem_ctx,
			       struct tevent_context *ev,
			       unsigned max_threads,
			       unsigned max_queue,
			       struct tstream_gssapi_pool **_pool);

/** @brief What a pool did so far (a snapshot). */
struct tstream_gssapi_pool_stats {
	unsigned threads;     /**< threads started */
	unsigned running;     /**< calls running now */
	unsigned queued;      /**< calls waiting for a thread now */
	unsigned max_running; /**< most calls ever running at once */
	unsigned max_queued;  /**< most calls ever waiting at once */
	uint64_t completed;   /**< results handed to their handshake */
	uint64_t dropped;     /**< results (or queued calls) of handshakes
				 that went away, freed */
	uint64_t refused;     /**< calls refused: queue full */
};

/** @brief Copy the pool's counters into *stats. */
void tstream_gssapi_pool_get_stats(struct tstream_gssapi_pool *pool,
				   struct tstream_gssapi_pool_stats *stats);

/**
 * @brief Run the blocking GSSAPI calls of handshakes with these params
 * in pool (NULL: on the loop, the default).
 *
 * The pool is not owned by the params and must outlive the handshakes
 * started with them. A handshake on another event context than the
 * pool's runs its calls inline.
 */
void tstream_gssapi_params_set_pool(struct tstream_gssapi_params *params,
				    struct tstream_gssapi_pool *pool);

/**
 * @brief Run the acceptor side of the handshake on a connected stream.
 *
 * On success the new stream becomes the talloc parent of plain_stream
 * and the caller must not use plain_stream directly any more. On failure
 * plain_stream stays with the caller (in an undefined protocol state: free
 * it).
 *
 * Refused: a mechanism other than krb5, anonymous initiators, contexts
 * without confidentiality and integrity (or the params' required flags),
 * token lengths outside 1..TSTREAM_GSSAPI_MAX_TOKEN (EMSGSIZE, nothing
 * allocated), the handshake timeout (ETIMEDOUT).
 *
 * @param mem_ctx      Context of the request.
 * @param ev           Event context.
 * @param plain_stream The connected stream (e.g. a BSD TCP stream).
 * @param params       Acceptor params (tstream_gssapi_params_acceptor()).
 */
struct tevent_req *tstream_gssapi_accept_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *plain_stream,
    struct tstream_gssapi_params *params);

/**
 * @brief Receive the result of tstream_gssapi_accept_send().
 *
 * @param req      The request.
 * @param perrno   Receives the errno on failure: EACCES (authentication
 *                 refused: bad ticket, wrong key, policy), EKEYEXPIRED
 *                 (expired ticket or credentials), EPROTO (malformed
 *                 token), EMSGSIZE (bad length), ETIMEDOUT, EPIPE (peer
 *                 closed), EIO (other GSSAPI failure), or the plain
 *                 stream's error.
 * @param mem_ctx  Owner of the new stream.
 * @param _stream  Receives the established GSSAPI stream.
 * @param _reason  Optional; on failure a readable reason on mem_ctx.
 * @return 0, or -1 with *perrno set.
 */
int tstream_gssapi_accept_recv(struct tevent_req *req,
			       int *perrno,
			       TALLOC_CTX *mem_ctx,
			       struct tstream_context **_stream,
			       char **_reason);

/**
 * @brief Run the initiator side of the handshake on a connected stream.
 *
 * Requests mutual authentication, replay and sequence detection,
 * confidentiality and integrity (and delegation if configured); refuses
 * the context unless mutual, confidentiality and integrity were granted.
 * Ownership of plain_stream as in tstream_gssapi_accept_send().
 */
struct tevent_req *tstream_gssapi_connect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *plain_stream,
    struct tstream_gssapi_params *params);

/**
 * @brief Receive the result of tstream_gssapi_connect_send().
 *        Same conventions as tstream_gssapi_accept_recv(); an unknown
 *        service principal is ENOENT.
 */
int tstream_gssapi_connect_recv(struct tevent_req *req,
				int *perrno,
				TALLOC_CTX *mem_ctx,
				struct tstream_context **_stream,
				char **_reason);

/**
 * @brief Authenticate over a stream that goes on carrying the data
 *        itself, bound to that stream's channel (tls-gssapi).
 *
 * Runs the knc token exchange of tstream_gssapi_accept_send() or
 * tstream_gssapi_connect_send() (the side of params) over stream, with
 * channel bindings whose initiator and acceptor address types are 0
 * (GSS_C_AF_UNSPEC) with empty addresses and whose application_data is
 * channel_bindings
 * (for TLS: the 32 tls-exporter bytes of RFC 9266). No wrap or unwrap
 * is installed: once it is done, the caller goes on using stream. The
 * acceptor refuses an initiator that sent no bindings or other bindings
 * (EACCES); the initiator always asks for mutual authentication.
 *
 * stream stays the caller's: it is only read and written while the
 * request runs (nothing is read past the last context token).
 *
 * @param mem_ctx          Context of the request.
 * @param ev               Event context.
 * @param stream           The channel (e.g. an established tstream_tls).
 * @param params           Acceptor or initiator params.
 * @param channel_bindings The channel's binding bytes (copied); required.
 * @param cb_len           Their count, 1..TSTREAM_GSSAPI_MAX_TOKEN.
 */
struct tevent_req *tstream_gssapi_auth_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream,
    struct tstream_gssapi_params *params,
    const uint8_t *channel_bindings,
    size_t cb_len);

/**
 * @brief Receive the result of tstream_gssapi_auth_send().
 *
 * @param req        The request.
 * @param perrno     As tstream_gssapi_accept_recv(); EINVAL without
 *                   channel bindings.
 * @param mem_ctx    Owner of the identity.
 * @param _identity  Receives a GSSAPI stream that carries no data: its
 *                   getters (below) describe the context; reads and writes
 *                   fail with ENOTCONN. It does not refer to the channel,
 *                   which may be freed before or after it.
 * @param _reason    Optional; on failure a readable reason on mem_ctx.
 * @return 0, or -1 with *perrno set.
 */
int tstream_gssapi_auth_recv(struct tevent_req *req,
			     int *perrno,
			     TALLOC_CTX *mem_ctx,
			     struct tstream_context **_identity,
			     char **_reason);

/*
 * Getters of an established stream. They work on both sides; "client"
 * is always the initiator and "server" the acceptor. Called on a stream
 * that is not a GSSAPI stream they return NULL / 0 / -1 with errno EINVAL.
 * Strings belong to the stream.
 */

/** @brief Whether the stream is a tstream_gssapi stream. */
bool tstream_gssapi_is_gssapi(struct tstream_context *stream);

/** @brief Whether this end is the initiator. */
bool tstream_gssapi_is_initiator(struct tstream_context *stream);

/**
 * @brief The client principal, display form ("alice@EXAMPLE.COM").
 *        For logging; authorize on the parsed form or the exported name.
 */
const char *tstream_gssapi_client_principal(struct tstream_context *stream);

/** @brief The realm of the client principal ("EXAMPLE.COM"). */
const char *tstream_gssapi_client_realm(struct tstream_context *stream);

/**
 * @brief The components of the client principal, unescaped
 *        ("host/a.b@R" gives "host", "a.b").
 * @param stream  The stream.
 * @param _count  Receives the number of components.
 * @return A NULL-terminated array owned by the stream, or NULL.
 */
const char *const *tstream_gssapi_client_components(
    struct tstream_context *stream, size_t *_count);

/** @brief The server (acceptor) principal, display form. */
const char *tstream_gssapi_server_principal(struct tstream_context *stream);

/**
 * @brief The local account the client principal maps to (gss_localname,
 *        i.e. krb5.conf auth_to_local rules).
 * @return A string on mem_ctx, or NULL with errno set (ENOENT: no
 *         mapping).
 */
char *tstream_gssapi_client_localname(struct tstream_context *stream,
				      TALLOC_CTX *mem_ctx);

/**
 * @brief The client's exported name (gss_export_name token, RFC 2743
 *        3.2: 04 01, OID length, mech OID, name length, name).
 * @param stream  The stream.
 * @param _len    Receives the length.
 * @return The bytes, owned by the stream, or NULL.
 */
const uint8_t *tstream_gssapi_client_exported_name(
    struct tstream_context *stream, size_t *_len);

/** @brief The mechanism OID, dotted ("1.2.840.113554.1.2.2"). */
const char *tstream_gssapi_mech_oid(struct tstream_context *stream);

/** @brief The mechanism's short name ("krb5"), as knc's MECH: line. */
const char *tstream_gssapi_mech_name(struct tstream_context *stream);

/** @brief The negotiated GSS_C_* context flags. */
uint32_t tstream_gssapi_flags(struct tstream_context *stream);

/**
 * @brief When the security context expires (wall clock), or 0 when it
 *        never does. Reads and writes after this time fail with
 *        EKEYEXPIRED (MIT itself keeps wrapping after ticket expiry).
 */
time_t tstream_gssapi_expiry(struct tstream_context *stream);

/**
 * @brief Acceptor: whether the client delegated credentials (a TGT).
 */
bool tstream_gssapi_has_delegated(struct tstream_context *stream);

/**
 * @brief Acceptor: store the client's delegated credentials into a
 *        credential cache (gss_store_cred_into), replacing what it held.
 *
 * @param stream   An accepted stream.
 * @param ccache   A ccache name, e.g. "FILE:/run/x/krb5cc" (MIT creates a
 *                 FILE cache with mode 0600).
 * @param mem_ctx  Owner of *reason.
 * @param reason   On failure, a readable reason.
 * @return 0; ENOENT when nothing was delegated; EIO (with reason) when
 *         GSSAPI failed; ENOMEM.
 */
int tstream_gssapi_store_delegated(struct tstream_context *stream,
				   const char *ccache,
				   TALLOC_CTX *mem_ctx,
				   char **reason);

/**
 * @brief The reason of the stream's sticky error ("frame length 0
 *        refused", "unwrap: The token was a duplicate of an earlier
 *        token"), or NULL while there is none.
 */
const char *tstream_gssapi_error_reason(struct tstream_context *stream);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* TSTREAM_GSSAPI_H */
