/* SPDX-License-Identifier: MIT */
/*
 * tstream_tls — TLS (GnuTLS) as a virtual tstream over a plain tstream.
 *
 * Public API of libtstream-tls (pkg-config: tstream-tls).
 *
 * Usage, server side:
 *
 *	struct tstream_tls_server_config cfg = {
 *		.certs = (struct tstream_tls_cert_config[]){
 *			{.cert_file = "server.crt", .key_file = "server.key"},
 *		},
 *		.num_certs = 1,
 *	};
 *	ret = tstream_tls_params_server(mem_ctx, &cfg, &params, &error);
 *	...
 *	req = tstream_tls_accept_send(conn, ev, plain_stream, params);
 *	tevent_req_set_endtime(req, ev, handshake_deadline);
 *	...
 *	ret = tstream_tls_accept_recv(req, &err, conn, &tls_stream, &reason);
 *
 * Then tls_stream is used with tstream_readv_send(), tstream_writev_send(),
 * tstream_shutdown_send() (close_notify, reading goes on) and
 * tstream_disconnect_send() (close_notify, then the plain stream is
 * disconnected), with the usual tsocket semantics: errno results, EPIPE at
 * the end of the stream, sticky errors.
 *
 * Ownership: tstream_tls_accept_send()/tstream_tls_connect_send() take
 * the plain stream over (talloc_steal). On success it becomes a talloc
 * child of the TLS stream and is freed with it; on failure (or when the
 * request is freed before it finished) it is freed with the request.
 *
 * Parameters are shared and refcounted: every session keeps its own
 * reference, so the caller may talloc_free() its params (e.g. on a config
 * reload) while sessions made with them keep running.
 *
 * Nothing of GnuTLS appears in this header; strings returned by the
 * getters belong to the stream and live as long as it does.
 */

#ifndef TSTREAM_TLS_H
#define TSTREAM_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <talloc.h>
#include <tevent.h>
#include <tsocket.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @defgroup tstream_tls TLS virtual stream (GnuTLS)
 * @{
 */

/** @brief Shared, refcounted TLS parameters (opaque). */
struct tstream_tls_params;

/**
 * @brief How the peer's certificate is checked.
 *
 * TSTREAM_TLS_VERIFY_DEFAULT (0, what a zeroed config gives) means:
 * server — REQUIRE when client_ca_file is set, otherwise NONE;
 * client — REQUIRE.
 */
enum tstream_tls_verify {
	TSTREAM_TLS_VERIFY_DEFAULT = 0,
	/** Server: ask for no certificate. Client: check nothing. */
	TSTREAM_TLS_VERIFY_NONE,
	/**
	 * Server: ask for a client certificate; a missing or invalid one
	 * does not fail the handshake (see tstream_tls_peer_verify_result()).
	 * Client: the handshake succeeds whatever the server certificate;
	 * the result is reported by tstream_tls_peer_verify_result().
	 */
	TSTREAM_TLS_VERIFY_OPTIONAL,
	/** A missing or invalid peer certificate fails the handshake. */
	TSTREAM_TLS_VERIFY_REQUIRE,
};

/** @brief One certificate chain and its key, optionally bound to SNI names. */
struct tstream_tls_cert_config {
	/**
	 * Server name this certificate answers for: an exact name
	 * ("ldap.example.com") or a wildcard of one label
	 * ("*.example.com"), compared case-insensitively. NULL: the
	 * default certificate, used when no SNI entry matches or the client
	 * sent no SNI. Several entries may share a name (e.g. one ECDSA and
	 * one RSA chain); GnuTLS then picks the one the client supports.
	 */
	const char *sni;
	/**
	 * PEM file: the certificate first, then its intermediates; or a
	 * PKCS#11 URL (RFC 7512, "pkcs11:token=...;object=...;type=cert").
	 */
	const char *cert_file;
	/**
	 * PEM file: the private key (unencrypted PKCS#1, PKCS#8 or SEC1); or
	 * a PKCS#11 URL of a key that stays on its token, with the PIN as
	 * "?pin-value=..." or "?pin-source=[file:]/path". Errors name the
	 * URL without its query, so never the PIN.
	 */
	const char *key_file;
	/**
	 * Optional DER OCSP response for the certificate, stapled when a
	 * client asks (status_request). A response for another
	 * certificate, or that is not an OCSP response, is refused; one
	 * already past its nextUpdate is not stapled (and not an error).
	 */
	const char *ocsp_file;
};

/** @brief Size of tstream_tls_server_config.ticket_key. */
#define TSTREAM_TLS_TICKET_KEY_SIZE 64

/**
 * @brief The default ticket lifetime: 4 h, so the ticket key rotates every
 *        12 h (GnuTLS: 3 lifetimes) and a ticket resumes for at most 4 h.
 */
#define TSTREAM_TLS_DEFAULT_TICKET_LIFETIME (4 * 3600)

/**
 * @brief Who runs the record layer of a server's TLS 1.3 session once the
 *        handshake is over.
 *
 * TSGATE: tstream_tls hands the records over from GnuTLS to its own TLS 1.3
 * record layer (on GnuTLS's AEAD and HKDF) and frees the GnuTLS session,
 * so an idle connection keeps only its keys; TLS 1.2, CBC and CCM suites
 * and a session whose exported keys fail the run-time check stay on
 * GnuTLS. GNUTLS: GnuTLS keeps the session for the connection's life.
 */
enum tstream_tls_record_layer {
	/** the library's default: TSGATE */
	TSTREAM_TLS_RECORD_DEFAULT = 0,
	TSTREAM_TLS_RECORD_TSGATE,
	TSTREAM_TLS_RECORD_GNUTLS,
};

/** @brief What tstream_tls_params_server() loads. Zero what you don't set. */
struct tstream_tls_server_config {
	/**
	 * The certificates, at least one. The default (sni == NULL) is the
	 * first entry without sni; without such an entry, the first one.
	 */
	const struct tstream_tls_cert_config *certs;
	size_t num_certs;
	/** PEM bundle of the CAs client certificates must chain to. */
	const char *client_ca_file;
	/** Optional PEM CRL(s) checked against client certificates. */
	const char *crl_file;
	/** Client certificate policy; REQUIRE/OPTIONAL need client_ca_file. */
	enum tstream_tls_verify verify_client;
	/**
	 * GnuTLS priority string; NULL: TSTREAM_TLS_DEFAULT_PRIORITY with
	 * %SERVER_PRECEDENCE (so AES-GCM is chosen when offered).
	 */
	const char *priority;
	/**
	 * NULL-terminated ALPN protocols in the server's order of
	 * preference, or NULL for no ALPN. A client that offers none of
	 * them gets no ALPN (tstream_tls_alpn() returns NULL).
	 */
	const char *const *alpn;
	/**
	 * A read direction that ends without the peer's close_notify (a
	 * bare TCP FIN or reset, also in the middle of a record) fails the
	 * read with ECONNABORTED instead of ending it with EPIPE. Off: the
	 * end is EPIPE either way and tstream_tls_truncated() tells.
	 */
	bool strict_end;
	/**
	 * Session tickets (TLS 1.3 NewSessionTicket, TLS 1.2 RFC 5077):
	 * TSTREAM_TLS_TICKET_KEY_SIZE bytes of secret, the master from which
	 * GnuTLS derives the key of each rotation period (the previous
	 * period's key still decrypts). Servers given the same master resume
	 * each other's sessions. NULL: no tickets, every handshake is full.
	 * Early data (0-RTT) is never accepted.
	 */
	const uint8_t *ticket_key;
	/**
	 * Seconds a ticket is valid; 0: TSTREAM_TLS_DEFAULT_TICKET_LIFETIME.
	 * GnuTLS rotates the ticket key every 3 lifetimes.
	 */
	unsigned ticket_lifetime;
	/** Who runs the TLS 1.3 records after the handshake. */
	enum tstream_tls_record_layer record_layer;
	/**
	 * With TSTREAM_TLS_RECORD_TSGATE: records sealed under one key
	 * before a KeyUpdate of ours; 0: 2^24 (below the AES-GCM limit of
	 * RFC 8446 5.5). Tests lower it.
	 */
	uint64_t key_update_records;
};

/** @brief What tstream_tls_params_client() loads. Zero what you don't set. */
struct tstream_tls_client_config {
	/** PEM bundle of trusted CAs; NULL: the system's trusted CAs. */
	const char *ca_file;
	/** Optional PEM CRL(s). */
	const char *crl_file;
	/** Server certificate policy (DEFAULT = REQUIRE). */
	enum tstream_tls_verify verify_server;
	/**
	 * Name the server certificate must carry: a DNS name (checked
	 * against DNS SANs / CN) or an IPv4/IPv6 literal (checked against
	 * IP SANs). NULL: the sni below. REQUIRE with neither is EINVAL.
	 */
	const char *peer_name;
	/**
	 * Server name to send (SNI); NULL: peer_name unless it is an IP
	 * literal (RFC 6066 forbids IP addresses in SNI).
	 */
	const char *sni;
	/**
	 * Optional client certificate chain (PEM) and its key; either may
	 * be a PKCS#11 URL as in struct tstream_tls_cert_config.
	 */
	const char *cert_file;
	const char *key_file;
	/** GnuTLS priority string; NULL: TSTREAM_TLS_DEFAULT_PRIORITY. */
	const char *priority;
	/** NULL-terminated ALPN protocols to offer, or NULL. */
	const char *const *alpn;
	/** As in tstream_tls_server_config. */
	bool strict_end;
	/**
	 * Resume sessions: the parameters keep the latest session a
	 * handshake made with them produced (a TLS 1.2 session, or the last
	 * TLS 1.3 ticket received, which comes after the handshake) and offer
	 * it in the next handshake. One session per parameters, so memory is
	 * bounded; a server that refuses it costs one full handshake.
	 */
	bool session_resumption;
};

/**
 * @brief The default priority: TLS 1.3 and 1.2 only, ECDHE, AEAD ciphers
 *        with AES-GCM first (GnuTLS's ChaCha20 is far slower than its
 *        AES-GCM on CPUs with AES-NI), X25519 first among the groups:
 *        OpenSSL-based clients send only an X25519 key share, and with
 *        GnuTLS's NORMAL order (P-256 first) a server that prefers its own
 *        order answered them with a HelloRetryRequest, one more round trip.
 */
#define TSTREAM_TLS_DEFAULT_PRIORITY                                  \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:"                 \
	"-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:"   \
	"-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:"                            \
	"-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:" \
	"+GROUP-SECP521R1:+GROUP-X448"

/**
 * @brief Load server parameters: certificates, keys, client CAs, CRL,
 *        priority and ALPN, all checked now.
 *
 * @param mem_ctx  Owner of *params (and of *error on failure).
 * @param cfg      What to load; the strings are copied.
 * @param params   Receives the parameters on success.
 * @param error    If not NULL, receives on failure a readable message
 *                 that names the file and the cause, e.g.
 *                 "server.key: private key does not match certificate
 *                 server.crt" (allocated on mem_ctx).
 * @return 0, or an errno: ENOENT/EACCES/... (file unreadable),
 *         EINVAL (not PEM, key mismatch, bad priority or config),
 *         EKEYEXPIRED (a certificate is expired or not yet valid),
 *         ENOMEM.
 */
int tstream_tls_params_server(TALLOC_CTX *mem_ctx,
			      const struct tstream_tls_server_config *cfg,
			      struct tstream_tls_params **params,
			      char **error);

/**
 * @brief Load client parameters (trust anchors, optional client
 *        certificate, names, priority, ALPN).
 *
 * Same conventions as tstream_tls_params_server().
 */
int tstream_tls_params_client(TALLOC_CTX *mem_ctx,
			      const struct tstream_tls_client_config *cfg,
			      struct tstream_tls_params **params,
			      char **error);

/**
 * @brief Run the server side of a TLS handshake on plain_stream.
 *
 * Takes plain_stream over (see the ownership note above). Bound the
 * handshake with tevent_req_set_endtime(); freeing the request at any
 * time is clean.
 *
 * @param params Server parameters; the session keeps a reference.
 */
struct tevent_req *tstream_tls_accept_send(TALLOC_CTX *mem_ctx,
					   struct tevent_context *ev,
					   struct tstream_context *plain_stream,
					   struct tstream_tls_params *params);

/**
 * @brief Receive the TLS stream of tstream_tls_accept_send().
 *
 * @param tls_stream Receives the established stream (on mem_ctx).
 * @param reason     If not NULL, receives on failure a readable reason
 *                   for a log line, e.g. "client certificate
 *                   verification failed: The certificate issuer is
 *                   unknown." (on mem_ctx); NULL on success.
 * @return 0, or -1 with *perrno: EPIPE (peer closed), ETIMEDOUT (the
 *         request's endtime passed), EACCES (peer certificate missing or
 *         rejected), EPROTO (TLS protocol failure: garbage, no common
 *         cipher, an alert), ECONNRESET and other errors of the plain
 *         stream, ENOMEM.
 */
int tstream_tls_accept_recv(struct tevent_req *req,
			    int *perrno,
			    TALLOC_CTX *mem_ctx,
			    struct tstream_context **tls_stream,
			    char **reason);

/**
 * @brief Run the client side of a TLS handshake on plain_stream.
 *
 * Same conventions as tstream_tls_accept_send().
 */
struct tevent_req *tstream_tls_connect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *plain_stream,
    struct tstream_tls_params *params);

/** @brief Receive the TLS stream of tstream_tls_connect_send(). */
int tstream_tls_connect_recv(struct tevent_req *req,
			     int *perrno,
			     TALLOC_CTX *mem_ctx,
			     struct tstream_context **tls_stream,
			     char **reason);

/**
 * @brief Whether the handshake of an established TLS stream resumed an
 *        earlier session (a ticket) instead of a full handshake.
 *
 * @return false for a full handshake, or (errno EINVAL) for a stream that
 *         is not an established TLS stream.
 */
bool tstream_tls_resumed(struct tstream_context *stream);

/**
 * @brief Who runs the records of an established TLS stream now:
 *        TSTREAM_TLS_RECORD_TSGATE once GnuTLS handed them over (see
 *        enum tstream_tls_record_layer), else TSTREAM_TLS_RECORD_GNUTLS.
 *
 * @return TSTREAM_TLS_RECORD_DEFAULT (errno EINVAL) for a stream that is
 *         not an established TLS stream.
 */
enum tstream_tls_record_layer tstream_tls_record_layer_of(
    struct tstream_context *stream);

/**
 * @brief Why a server stream that should have been handed over to our
 *        record layer stayed on GnuTLS: the run-time self-check refused
 *        (the key GnuTLS exports differs from the one derived from its
 *        traffic secret, GnuTLS still held part of a record, ...).
 *
 * @return a static text for the log, or NULL (handed over, or staying on
 *         GnuTLS as expected: TLS 1.2, another suite, a client stream,
 *         TSTREAM_TLS_RECORD_GNUTLS).
 */
const char *tstream_tls_record_layer_refusal(struct tstream_context *stream);

/**
 * @brief Forget the session client parameters keep for resumption (e.g.
 *        after the server's keys changed); the next handshake is full.
 *        No effect on server parameters.
 */
void tstream_tls_params_forget_session(struct tstream_tls_params *params);

/** @brief Whether stream is a TLS stream made by this library. */
bool tstream_is_tls(struct tstream_context *stream);

/*
 * Getters. They take an established TLS stream; on any other stream they
 * return NULL (or the documented failure) with errno EINVAL.
 */

/** @brief Negotiated protocol version: "TLS1.2" or "TLS1.3". */
const char *tstream_tls_version(struct tstream_context *stream);

/** @brief Negotiated cipher suite, IANA name ("TLS_AES_256_GCM_SHA384"). */
const char *tstream_tls_cipher_suite(struct tstream_context *stream);

/**
 * @brief Server name indication: on a server the name the client sent,
 *        on a client the name it sent; NULL if none.
 */
const char *tstream_tls_sni(struct tstream_context *stream);

/** @brief Negotiated ALPN protocol, or NULL if none was agreed. */
const char *tstream_tls_alpn(struct tstream_context *stream);

/**
 * @brief The peer certificate's subject DN (RFC 4514 string,
 *        "CN=alice,O=Example"), or NULL if the peer sent no certificate.
 */
const char *tstream_tls_peer_subject(struct tstream_context *stream);

/**
 * @brief The most specific CN of the peer certificate's subject (the last
 *        in DER order, the first in the RFC 4514 string), or NULL if it
 *        has none or an empty one.
 */
const char *tstream_tls_peer_common_name(struct tstream_context *stream);

/**
 * @brief The peer certificate's subject alternative names, as a
 *        NULL-terminated array of "DNS:name", "IP:addr" (canonical
 *        text), "URI:uri" and "email:addr" strings (the prefixes of the
 *        gateway's client_san match); other kinds are left out. An empty
 *        array when the certificate has none, NULL without a certificate.
 */
const char *const *tstream_tls_peer_sans(struct tstream_context *stream);

/**
 * @brief Why the peer certificate's names cannot be trusted, or NULL.
 *
 * Set when a DNS, email or URI SAN holds a NUL, a control or a non-ASCII
 * byte or is empty, an IP SAN is not 4 or 16 bytes, or a subject
 * attribute holds a NUL or control byte or is not valid UTF-8 (e.g.
 * "DNS SAN holds a NUL byte"). Then tstream_tls_peer_subject() and
 * tstream_tls_peer_common_name() are NULL and tstream_tls_peer_sans() is
 * empty: no name of such a certificate is reported, so none can match an
 * allow-list or reach a backend. The fingerprint and verify result stay.
 */
const char *tstream_tls_peer_name_error(struct tstream_context *stream);

/**
 * @brief Whether the read direction ended without the peer's
 *        close_notify: the transport ended (FIN or reset) between or
 *        inside records. A peer that crashed, or a FIN injected on the
 *        path, looks like this; so do many HTTP clients that never send
 *        close_notify.
 *
 * @return true once a read has ended that way (EPIPE, or ECONNABORTED with
 *         strict_end); false before the end, after a close_notify, or for
 *         a stream that is not TLS.
 */
bool tstream_tls_truncated(struct tstream_context *stream);

/**
 * @brief Why the stream failed, in GnuTLS's words, when GnuTLS failed it
 *        after the handshake (a record that failed its check, a fatal
 *        alert, a session GnuTLS invalidated because the peer left
 *        without close_notify, ...).
 *
 * The errno of the failed request says what happened (EBADMSG, EPROTO,
 * EACCES, ECONNRESET, ...); this says how GnuTLS saw it, for a log line.
 *
 * @return A string that lives as long as the stream; NULL while the
 *         stream has not failed, when it failed by an error of the plain
 *         stream (ECONNRESET, EPIPE, ...) or of its own (ENOMEM), or for a
 *         stream that is not TLS.
 */
const char *tstream_tls_error_reason(struct tstream_context *stream);

/**
 * @brief SHA-256 fingerprint of the peer certificate (DER) as 64
 *        lowercase hex digits, or NULL without a certificate.
 */
const char *tstream_tls_peer_fingerprint_sha256(struct tstream_context *stream);

/** @brief Result of checking the peer certificate. */
enum tstream_tls_peer_result {
	/** The peer sent no certificate. */
	TSTREAM_TLS_PEER_NO_CERT = 0,
	/** A certificate was sent but not checked (verify mode NONE). */
	TSTREAM_TLS_PEER_NOT_CHECKED,
	/** It chains to a trusted CA, is valid now and matches the name. */
	TSTREAM_TLS_PEER_VALID,
	/** It was checked and failed (only possible in OPTIONAL mode). */
	TSTREAM_TLS_PEER_INVALID,
};

/**
 * @brief How the peer certificate was judged.
 *
 * @param reason If not NULL, receives a readable explanation for
 *               TSTREAM_TLS_PEER_INVALID (owned by the stream), else NULL.
 * @return The result; TSTREAM_TLS_PEER_NO_CERT (errno EINVAL) on a
 *         stream that is not TLS.
 */
enum tstream_tls_peer_result tstream_tls_peer_verify_result(
    struct tstream_context *stream, const char **reason);

/** @brief Channel binding types (RFC 9266, RFC 5929). */
enum tstream_tls_channel_binding {
	/** "tls-exporter": TLS 1.3, or TLS 1.2 with extended master secret. */
	TSTREAM_TLS_CB_EXPORTER,
	/** "tls-server-end-point": hash of the server certificate. */
	TSTREAM_TLS_CB_SERVER_END_POINT,
};

/**
 * @brief Get channel binding data of an established stream.
 *
 * @param data Receives the bytes (on mem_ctx).
 * @param len  Receives their count.
 * @return 0, or an errno: EINVAL (not a TLS stream), ENOTSUP (not
 *         available for this session), ENOMEM.
 */
int tstream_tls_channel_binding(struct tstream_context *stream,
				enum tstream_tls_channel_binding type,
				TALLOC_CTX *mem_ctx,
				uint8_t **data,
				size_t *len);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* TSTREAM_TLS_H */
