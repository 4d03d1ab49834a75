/* SPDX-License-Identifier: MIT */
/*
 * tstream_tls — what the parameter loader (tstream_tls_params.c) and the
 * stream share: its record I/O (tstream_tls.c), its handshake
 * (tstream_tls_handshake.c) and its peer (tstream_tls_peer.c).
 * Not installed, not exported.
 */

#ifndef TSTREAM_TLS_PRIVATE_H
#define TSTREAM_TLS_PRIVATE_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <tevent.h>

#include "tsocket_internal.h"
#include "tstream_tls.h"
#include "tstream_tls_record13.h"

/* One certificate credential and the SNI name it answers for. */
struct tstream_tls_sni_cred {
	char *sni; /* NULL: the default */
	gnutls_certificate_credentials_t cred;
	unsigned num_keys; /* chains loaded: the next one's index */
	/* server with tickets: this entry's ticket master, see
	 * tstream_tls_resume_prepare() */
	uint8_t ticket_master[64];
};

/*
 * The loaded parameters. Unparented talloc chunk shared by every handle
 * (struct tstream_tls_params) through a reference count; the last handle
 * to go frees it.
 */
struct tstream_tls_params_internal {
	unsigned refcount;
	bool is_server;
	enum tstream_tls_verify verify;
	gnutls_priority_t priority;

	/* server: creds[default_cred] is used without a matching SNI */
	struct tstream_tls_sni_cred *creds;
	size_t num_creds;
	size_t default_cred;

	/* client */
	char *peer_name;
	char *sni;

	gnutls_datum_t *alpn;
	unsigned num_alpn;

	bool strict_end; /* an end without close_notify is ECONNABORTED */

	/* server: session tickets, see tstream_tls_server_config */
	bool tickets;
	unsigned ticket_lifetime;
	uint8_t ticket_key[TSTREAM_TLS_TICKET_KEY_SIZE];

	/* server: our TLS 1.3 record layer after the handshake */
	bool own_records;
	uint64_t key_update_records; /* 0: TLS13_WRITE_KEY_LIMIT */
	/*
	 * tls-server-end-point of each certificate sent so far: GnuTLS
	 * parses the certificate to compute it (~0.5 M instructions), the
	 * hand-over needs it per connection (tstream_tls_r13.c)
	 */
	struct tstream_tls_endpoint_cb *endpoint_cbs;
	size_t num_endpoint_cbs;

	/* client: the latest session, offered to the next handshake */
	bool resume;
	gnutls_datum_t session_data; /* gnutls_malloc'd, or {NULL, 0} */
};

struct tstream_tls_params {
	struct tstream_tls_params_internal *internal;
};

/*
 * A handle on the same parameters inside a struct of the caller's
 * (refcount + 1; a TLS stream keeps its own in struct tstream_tls, which
 * saves a talloc chunk per connection), and its release (refcount - 1,
 * the last frees them).
 */
void tstream_tls_params_hold(struct tstream_tls_params *hold,
			     const struct tstream_tls_params *params);
void tstream_tls_params_release(struct tstream_tls_params *hold);

/* The credential for a server name (never NULL on server params). */
gnutls_certificate_credentials_t tstream_tls_params_cred_for_sni(
    const struct tstream_tls_params_internal *p, const char *sni);

/* Reads up to this size use the buffer inside struct tstream_tls. */
#define TLS_IN_SMALL 64

/* A TLS stream's private struct (see tstream_tls.c). */
struct tstream_tls {
	struct tstream_context *plain_stream;
	struct tstream_tls_params *params;     /* &params_hold once set up */
	struct tstream_tls_params params_hold; /* our own reference */
	gnutls_session_t session;
	struct tevent_context *ev;
	bool is_server;

	int error; /* sticky: the first fatal error */
	/* the GnuTLS result that error was mapped from; 0: not GnuTLS's */
	int gnutls_error;
	char *alert_reason; /* with a fatal alert: which one */
	bool established;
	bool read_eof;       /* close_notify (or transport EOF) seen */
	bool truncated;      /* ... and it was transport EOF, no close_notify */
	bool write_shut;     /* close_notify sent */
	bool resumed;        /* the handshake resumed a session */
	bool ticket_key_set; /* server: this session's ticket key is chosen */

	struct tevent_req *handshake_req;
	struct tevent_req *read_req;
	struct tevent_req *write_req;
	struct tevent_req *close_req;

	struct {
		struct tevent_req *subreq;
		struct iovec iov;
		uint8_t *busy; /* buffer of the plain writev in flight */
		size_t busy_cap;
		uint8_t *fill; /* records queued after it */
		size_t fill_len;
		size_t fill_cap;
	} push;

	struct {
		struct tevent_req *subreq;
		struct iovec iov;
		bool eof;
		uint8_t *data; /* small or big */
		size_t ofs;
		size_t len;
		uint8_t *big;
		size_t big_cap;
		bool no_io; /* decrypting ahead: never start a plain readv */
		uint8_t small[TLS_IN_SMALL];
	} pull;

	/* decrypted records not taken yet; NULL when there are none */
	struct tstream_tls_ahead *ahead;
	/*
	 * What stopped decrypting ahead (close_notify, an alert, an error):
	 * the reader sees it after the queued data.
	 */
	bool ahead_stopped;
	int ahead_stop_ret;

	/* the readable handler, waiting on the plain stream's */
	tstream_readable_handler_t readable_fn;
	void *readable_private;
	struct tstream_context *readable_stream; /* this stream */

	/*
	 * Our TLS 1.3 record layer (tstream_tls_r13.c). r13_on: GnuTLS
	 * handed the records over and its session is gone (session NULL).
	 * Plaintext opened in place waits in pull.data[r13_dec_ofs,
	 * r13_dec_end), before the ciphertext at pull.ofs; r13_stop is what
	 * ended reading (an errno), seen after that plaintext.
	 */
	bool r13_on;
	/* why a hand-over that should have happened did not (static text) */
	const char *r13_refused;
	struct tls13_conn r13;
	size_t r13_dec_ofs;
	size_t r13_dec_end;
	int r13_stop;
	/* the traffic secrets the keylog hook gave, during the handshake */
	struct tstream_tls_r13_secrets *r13_secrets;
	/* where the records GnuTLS pulled end: their next header */
	uint8_t trk_hdr[TLS13_HEADER_SIZE];
	uint8_t trk_have;
	size_t trk_left;
	/* channel bindings kept for the getter once the session is gone */
	uint8_t cb_exporter_len;
	uint8_t cb_endpoint_len;
	uint8_t cb_exporter[32];
	uint8_t cb_endpoint[64];

	/* what the getters report, filled when the handshake succeeds */
	const char *version;
	const char *cipher;
	char *sni;
	char *alpn;
	char *peer_subject;
	char *peer_cn;
	char *peer_fingerprint;
	const char **peer_sans;
	char *peer_name_error;
	enum tstream_tls_peer_result verify_result;
	char *verify_reason;
};

/*
 * Shared by the stream's three files. The record layer (tstream_tls.c):
 */
extern const struct tstream_context_ops tstream_tls_ops;
/* gnutls transport callbacks over the plain stream */
ssize_t tstream_tls_push(gnutls_transport_ptr_t ptr,
			 const giovec_t *iov,
			 int iovcnt);
ssize_t tstream_tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t size);
/* sends what push queued; frees the buffers of an idle direction */
void tstream_tls_flush(struct tstream_tls *tlss);
void tstream_tls_release_idle(struct tstream_tls *tlss);
int tstream_tls_destructor(struct tstream_tls *tlss);
/* a request's end state as an errno; finish a request still running */
int tstream_tls_req_error(struct tevent_req *req, int *perrno);
void tstream_tls_fail_req(struct tevent_req *req, int err);
void tstream_tls_done_req(struct tevent_req *req);
bool tstream_tls_alert_is_about_cert(gnutls_alert_description_t a);

/* grow the output buffer to hold need more bytes; false: ENOMEM set */
bool tstream_tls_push_reserve(struct tstream_tls *tlss, size_t need);
void tstream_tls_set_error(struct tstream_tls *tlss, int err);
void tstream_tls_pull_start_at(struct tstream_tls *tlss,
			       size_t keep,
			       size_t want);

/*
 * Our TLS 1.3 record layer (tstream_tls_r13.c): the keylog hook, the
 * hand-over at the end of a server handshake, and the record I/O the
 * stream's steps use once r13_on.
 */
void tstream_tls_r13_prepare(struct tstream_tls *tlss);
void tstream_tls_r13_take_over(struct tstream_tls *tlss);
void tstream_tls_r13_track(struct tstream_tls *tlss,
			   const uint8_t *p,
			   size_t n);
/* open the complete records already read; true: something happened */
bool tstream_tls_r13_fill(struct tstream_tls *tlss);
/* start a plain read for the rest of the record (or the next one) */
void tstream_tls_r13_pull(struct tstream_tls *tlss);
/* seal up to one record of the vector into the output; bytes taken */
int tstream_tls_r13_seal(struct tstream_tls *tlss,
			 const struct iovec *vec,
			 size_t count,
			 size_t *taken);
int tstream_tls_r13_close_notify(struct tstream_tls *tlss);
void tstream_tls_r13_idle(struct tstream_tls *tlss);
void tstream_tls_r13_free(struct tstream_tls *tlss);
int tstream_tls_r13_channel_binding(struct tstream_tls *tlss,
				    bool exporter,
				    TALLOC_CTX *mem_ctx,
				    uint8_t **data,
				    size_t *len);

/* The handshake (tstream_tls_handshake.c): drive it once more. */
void tstream_tls_handshake_step(struct tstream_tls *tlss);

/*
 * Resumption (tstream_tls_resume.c): set a session up for tickets (server)
 * or for offering the kept session (client); keep what a client
 * handshake produced. GnuTLS return codes.
 */
int tstream_tls_resume_init(struct tstream_tls *tlss);
void tstream_tls_resume_keep(struct tstream_tls *tlss);
void tstream_tls_resume_send_tickets(struct tstream_tls *tlss);
int tstream_tls_resume_server_cred(struct tstream_tls *tlss,
				   gnutls_certificate_credentials_t cred);
int tstream_tls_resume_prepare(struct tstream_tls_params_internal *p);
void tstream_tls_resume_free(struct tstream_tls_params_internal *p);

/* The peer (tstream_tls_peer.c): fill what the getters report; errno. */
int tstream_tls_collect(struct tstream_tls *tlss);

/* tstream_tls_pkcs11.c: a certificate or key named by a PKCS#11 URL */
bool tstream_tls_is_pkcs11_url(const char *name);
int tstream_tls_load_pkcs11(TALLOC_CTX *mem_ctx,
			    gnutls_certificate_credentials_t cred,
			    const char *cert_name,
			    const char *key_name,
			    char **why);

#endif
