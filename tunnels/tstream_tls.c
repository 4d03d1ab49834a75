/*
 * tstream_tls — TLS over a plain tstream, driven from tevent.
 *
 * GnuTLS only knows blocking-style transport callbacks. Here they never
 * block: the pull callback hands out ciphertext already read from the
 * plain stream or starts a plain readv and answers EAGAIN; the vectored
 * push callback appends the records GnuTLS produced to an output buffer
 * (it never refuses), and tstream_tls_flush() sends that buffer with one
 * plain writev after every GnuTLS call. When a plain read or write
 * completes, tstream_tls_retry() re-runs whatever waits: the handshake,
 * or the pending writev, readv and close.
 *
 * Buffers: ciphertext is read into a 64-byte array in the struct while
 * the connection is idle (GnuTLS asks for a 5-byte record header) and
 * into a larger buffer only when more is already waiting or a record body
 * is due; output goes through two buffers that are swapped (one in
 * flight, one filling). Both are released when their direction is idle,
 * so an idle session holds no I/O buffers of ours.
 *
 * Reading takes whole decrypted records from GnuTLS
 * (gnutls_record_recv_packet(): the plaintext stays in GnuTLS's buffer
 * and is copied once, into the caller's vector). pending_bytes decrypts
 * ahead the records that are already complete in the ciphertext buffer,
 * without starting a plain read, and keeps them in a short queue: a
 * reader that asks for what pending_bytes reported gets several records
 * in one readv (the raw relay writes up to 64 KiB to its backend at once
 * instead of one TLS record per write). The queue is empty, and holds no
 * buffers, whenever the session is idle.
 *
 * Every request of ours defers its callback to the event loop, so
 * completing one never runs the caller's code in the middle of a step.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tsgate_export.h"
#include "tsocket_internal.h"
#include "tstream_tls_private.h"

/* Plaintext per record (the TLS maximum). */
#define TLS_RECORD_MAX 16384
/* Queue this much ciphertext before waiting for the plain writev. */
#define TLS_OUT_BATCH (4 * TLS_RECORD_MAX)
/* Smallest output buffer: one full record with its overhead. */
#define TLS_OUT_MIN (TLS_RECORD_MAX + 2048)
/* Read at most this much ciphertext per plain readv. */
#define TLS_IN_MAX (4 * (TLS_RECORD_MAX + 256 + 5))
/* Reads up to this size use the buffer inside struct tstream_tls. */
#define TLS_IN_SMALL 64
/* Decrypt ahead while less than this much plaintext is queued ... */
#define TLS_AHEAD_MAX (4 * TLS_RECORD_MAX)
/* ... and fewer records than this (small records count as well). */
#define TLS_AHEAD_RECORDS 8
/* TLS record header: type, version, length */
#define TLS_HEADER_SIZE 5

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

struct tstream_tls {
	struct tstream_context *plain_stream;
	struct tstream_tls_params *params; /* our own reference */
	gnutls_session_t session;
	struct tevent_context *ev;
	bool is_server;

	int error; /* sticky: the first fatal error */
	bool established;
	bool read_eof;   /* close_notify (or transport EOF) seen */
	bool truncated;  /* ... and it was transport EOF, no close_notify */
	bool write_shut; /* close_notify sent */

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
 * Decrypted records the reader has not taken yet, oldest first. Made for
 * the first one and freed with the last, so an idle stream has none.
 */
struct tstream_tls_ahead {
	gnutls_packet_t pkt[TLS_AHEAD_RECORDS];
	unsigned head;
	unsigned count;
	size_t ofs;   /* taken from pkt[head] */
	size_t bytes; /* plaintext queued, less ofs */
};

static void tstream_tls_retry(struct tstream_tls *tlss);
static void tstream_tls_handshake_step(struct tstream_tls *tlss);
static void tstream_tls_read_step(struct tstream_tls *tlss);
static void tstream_tls_write_step(struct tstream_tls *tlss);
static void tstream_tls_close_step(struct tstream_tls *tlss);

/* Map a request's end state to an errno (one place for every _recv). */
static int tstream_tls_req_error(struct tevent_req *req, int *perrno)
{
	enum tevent_req_state state;
	uint64_t error;

	if (!tevent_req_is_error(req, &state, &error)) {
		return 0;
	}
	switch (state) {
	case TEVENT_REQ_USER_ERROR:
		*perrno = (int)error;
		break;
	case TEVENT_REQ_TIMED_OUT:
		*perrno = ETIMEDOUT;
		break;
	case TEVENT_REQ_NO_MEMORY:
		*perrno = ENOMEM;
		break;
	default:
		*perrno = EINVAL;
		break;
	}
	return -1;
}

/* Finish a request unless something finished it already. */
static void tstream_tls_fail_req(struct tevent_req *req, int err)
{
	if (req != NULL && tevent_req_is_in_progress(req)) {
		tevent_req_error(req, err);
	}
}

static void tstream_tls_done_req(struct tevent_req *req)
{
	if (req != NULL && tevent_req_is_in_progress(req)) {
		tevent_req_done(req);
	}
}

/*
 * Remember the first fatal error and fail whatever is outstanding with
 * it (the callbacks are deferred, so this is safe anywhere).
 */
static void tstream_tls_set_error(struct tstream_tls *tlss, int err)
{
	if (tlss->error == 0) {
		tlss->error = err;
	}
	tstream_tls_fail_req(tlss->read_req, tlss->error);
	tstream_tls_fail_req(tlss->write_req, tlss->error);
	tstream_tls_fail_req(tlss->close_req, tlss->error);
}

static bool tstream_tls_alert_is_about_cert(gnutls_alert_description_t a)
{
	switch (a) {
	case GNUTLS_A_BAD_CERTIFICATE:
	case GNUTLS_A_UNSUPPORTED_CERTIFICATE:
	case GNUTLS_A_CERTIFICATE_REVOKED:
	case GNUTLS_A_CERTIFICATE_EXPIRED:
	case GNUTLS_A_CERTIFICATE_UNKNOWN:
	case GNUTLS_A_UNKNOWN_CA:
	case GNUTLS_A_ACCESS_DENIED:
	case GNUTLS_A_CERTIFICATE_REQUIRED:
		return true;
	default:
		return false;
	}
}

/* Map a fatal GnuTLS result of record I/O to an errno. */
static int tstream_tls_map_error(struct tstream_tls *tlss, int ret)
{
	if (tlss->error != 0) {
		return tlss->error;
	}
	switch (ret) {
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		/* e.g. TLS 1.3: the server refused our certificate after
		 * our side of the handshake was complete */
		return tstream_tls_alert_is_about_cert(
			   gnutls_alert_get(tlss->session))
			   ? EACCES
			   : EPROTO;
	case GNUTLS_E_MEMORY_ERROR:
		return ENOMEM;
	case GNUTLS_E_PREMATURE_TERMINATION:
		return EPIPE;
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
		return tlss->pull.eof ? EPIPE : EIO;
	default:
		return EPROTO;
	}
}

/*
 * GnuTLS transport
 */

static ssize_t tstream_tls_push(gnutls_transport_ptr_t ptr,
				const giovec_t *iov,
				int iovcnt)
{
	struct tstream_tls *tlss = ptr;
	size_t total = 0;
	size_t need;
	int i;

	if (tlss->error != 0) {
		gnutls_transport_set_errno(tlss->session, tlss->error);
		return -1;
	}
	for (i = 0; i < iovcnt; i++) {
		total += iov[i].iov_len;
	}
	need = tlss->push.fill_len + total;
	if (need > tlss->push.fill_cap) {
		size_t cap = tlss->push.fill_cap * 2;
		uint8_t *buf;

		if (cap < TLS_OUT_MIN) {
			cap = TLS_OUT_MIN;
		}
		if (cap < need) {
			cap = need;
		}
		buf = talloc_realloc(tlss, tlss->push.fill, uint8_t, cap);
		if (buf == NULL) {
			/*
			 * A record GnuTLS could not hand over is lost: the
			 * stream is broken, and says why (else the
			 * GNUTLS_E_PUSH_ERROR maps to EIO, and a close_notify
			 * that never left looks like a peer that went away).
			 */
			tstream_tls_set_error(tlss, ENOMEM);
			gnutls_transport_set_errno(tlss->session, ENOMEM);
			return -1;
		}
		tlss->push.fill = buf;
		tlss->push.fill_cap = cap;
	}
	for (i = 0; i < iovcnt; i++) {
		memcpy(tlss->push.fill + tlss->push.fill_len, iov[i].iov_base,
		       iov[i].iov_len);
		tlss->push.fill_len += iov[i].iov_len;
	}
	return (ssize_t)total;
}

/*
 * Give back the I/O buffers a direction does not use at the moment: an
 * idle session keeps none (they come back with the next burst).
 */
static void tstream_tls_release_idle(struct tstream_tls *tlss)
{
	if (tlss->push.fill_len == 0) {
		TALLOC_FREE(tlss->push.fill);
		tlss->push.fill_cap = 0;
		if (tlss->push.subreq == NULL) {
			TALLOC_FREE(tlss->push.busy);
			tlss->push.busy_cap = 0;
		}
	}
	if (tlss->pull.subreq == NULL && tlss->pull.len == tlss->pull.ofs &&
	    tlss->pull.big != NULL) {
		TALLOC_FREE(tlss->pull.big);
		tlss->pull.big_cap = 0;
		tlss->pull.data = tlss->pull.small;
		tlss->pull.ofs = 0;
		tlss->pull.len = 0;
	}
}

static void tstream_tls_push_done(struct tevent_req *subreq);

/* Send the queued records with one plain writev, unless one is running. */
static void tstream_tls_flush(struct tstream_tls *tlss)
{
	uint8_t *buf;
	size_t cap;

	if (tlss->push.subreq != NULL || tlss->push.fill_len == 0 ||
	    tlss->error != 0) {
		return;
	}
	/* the filled buffer goes out, the spare one fills next */
	buf = tlss->push.busy;
	cap = tlss->push.busy_cap;
	tlss->push.busy = tlss->push.fill;
	tlss->push.busy_cap = tlss->push.fill_cap;
	tlss->push.iov.iov_base = tlss->push.busy;
	tlss->push.iov.iov_len = tlss->push.fill_len;
	tlss->push.fill = buf;
	tlss->push.fill_cap = cap;
	tlss->push.fill_len = 0;

	tlss->push.subreq = tstream_writev_send(
	    tlss, tlss->ev, tlss->plain_stream, &tlss->push.iov, 1);
	if (tlss->push.subreq == NULL) {
		tstream_tls_set_error(tlss, ENOMEM);
		return;
	}
	tevent_req_set_callback(tlss->push.subreq, tstream_tls_push_done, tlss);
}

static void tstream_tls_push_done(struct tevent_req *subreq)
{
	struct tstream_tls *tlss =
	    tevent_req_callback_data(subreq, struct tstream_tls);
	int ret;
	int err = 0;

	ret = tstream_writev_recv(subreq, &err);
	TALLOC_FREE(subreq);
	tlss->push.subreq = NULL;
	if (ret == -1) {
		tstream_tls_set_error(tlss, err);
		tstream_tls_retry(tlss);
		return;
	}
	if (tlss->write_req == NULL && tlss->handshake_req == NULL) {
		tstream_tls_release_idle(tlss);
	}
	tstream_tls_flush(tlss);
	tstream_tls_retry(tlss);
}

static void tstream_tls_pull_done(struct tevent_req *subreq);

static void tstream_tls_pull_start(struct tstream_tls *tlss, size_t size)
{
	ssize_t pending = tstream_pending_bytes(tlss->plain_stream);
	size_t n;

	if (pending <= 0 && size <= TLS_IN_SMALL) {
		/* idle: wait for the next record header without a buffer */
		TALLOC_FREE(tlss->pull.big);
		tlss->pull.big_cap = 0;
		tlss->pull.data = tlss->pull.small;
		n = size;
	} else {
		size_t cap = TLS_IN_MAX > size ? TLS_IN_MAX : size;

		/* what is needed, or everything already waiting */
		n = size;
		if (pending > 0 && (size_t)pending > n) {
			n = (size_t)pending;
		}
		if (n > cap) {
			n = cap;
		}
		if (tlss->pull.big_cap < n) {
			/* grows with the traffic, up to cap */
			size_t want = (n + 4095) & ~(size_t)4095;

			if (want > cap) {
				want = cap;
			}
			TALLOC_FREE(tlss->pull.big);
			tlss->pull.big = talloc_size(tlss, want);
			if (tlss->pull.big == NULL) {
				tlss->pull.big_cap = 0;
				tstream_tls_set_error(tlss, ENOMEM);
				return;
			}
			tlss->pull.big_cap = want;
		}
		tlss->pull.data = tlss->pull.big;
	}
	tlss->pull.ofs = 0;
	tlss->pull.len = 0;
	tlss->pull.iov.iov_base = tlss->pull.data;
	tlss->pull.iov.iov_len = n;

	tlss->pull.subreq = tstream_readv_send(
	    tlss, tlss->ev, tlss->plain_stream, &tlss->pull.iov, 1);
	if (tlss->pull.subreq == NULL) {
		tstream_tls_set_error(tlss, ENOMEM);
		return;
	}
	tevent_req_set_callback(tlss->pull.subreq, tstream_tls_pull_done, tlss);
}

static ssize_t tstream_tls_pull(gnutls_transport_ptr_t ptr,
				void *data,
				size_t size)
{
	struct tstream_tls *tlss = ptr;
	size_t n;

	if (tlss->error != 0) {
		gnutls_transport_set_errno(tlss->session, tlss->error);
		return -1;
	}
	if (tlss->pull.len > tlss->pull.ofs) {
		n = tlss->pull.len - tlss->pull.ofs;
		if (n > size) {
			n = size;
		}
		memcpy(data, tlss->pull.data + tlss->pull.ofs, n);
		tlss->pull.ofs += n;
		if (tlss->pull.ofs == tlss->pull.len) {
			tlss->pull.ofs = 0;
			tlss->pull.len = 0;
		}
		return (ssize_t)n;
	}
	if (tlss->pull.eof) {
		return 0;
	}
	if (size == 0) {
		return 0;
	}
	if (tlss->pull.subreq == NULL && !tlss->pull.no_io) {
		tstream_tls_pull_start(tlss, size);
		if (tlss->error != 0) {
			gnutls_transport_set_errno(tlss->session, tlss->error);
			return -1;
		}
	}
	gnutls_transport_set_errno(tlss->session, EAGAIN);
	return -1;
}

static void tstream_tls_pull_done(struct tevent_req *subreq)
{
	struct tstream_tls *tlss =
	    tevent_req_callback_data(subreq, struct tstream_tls);
	int ret;
	int err = 0;

	ret = tstream_readv_recv(subreq, &err);
	TALLOC_FREE(subreq);
	tlss->pull.subreq = NULL;
	if (ret == -1) {
		if (err == EPIPE) {
			/* GnuTLS tells truncation from close_notify */
			tlss->pull.eof = true;
		} else {
			tstream_tls_set_error(tlss, err);
		}
	} else {
		tlss->pull.ofs = 0;
		tlss->pull.len = (size_t)ret;
	}
	tstream_tls_retry(tlss);
}

static void tstream_tls_retry(struct tstream_tls *tlss)
{
	if (tlss->handshake_req != NULL) {
		tstream_tls_handshake_step(tlss);
		return;
	}
	if (tlss->write_req != NULL) {
		tstream_tls_write_step(tlss);
	}
	if (tlss->read_req != NULL) {
		tstream_tls_read_step(tlss);
	}
	if (tlss->close_req != NULL) {
		tstream_tls_close_step(tlss);
	}
	/*
	 * An error of our own push or pull (a failed allocation, a reset
	 * seen while writing) makes this stream readable -- a read gets the
	 * error -- but the handler waits on the plain stream, which may
	 * never become readable: the peer waits for the bytes we failed to
	 * send. Tell the handler now (from a plain sub-request's callback,
	 * so from the loop), or an idle relay direction waits forever
	 * (issue 13, found by the allocation-failure injection). Last: the
	 * handler may free this stream.
	 */
	if (tlss->error != 0 && tlss->readable_fn != NULL) {
		tstream_readable_handler_t fn = tlss->readable_fn;

		tlss->readable_fn = NULL;
		tstream_set_readable_handler(tlss->plain_stream, NULL, NULL,
					     NULL);
		fn(tlss->readable_stream, tlss->readable_private);
	}
}

static void tstream_tls_ahead_drop(struct tstream_tls *tlss);

static int tstream_tls_destructor(struct tstream_tls *tlss)
{
	tstream_tls_ahead_drop(tlss);
	/* plain sub-requests first, while the plain stream exists */
	TALLOC_FREE(tlss->pull.subreq);
	TALLOC_FREE(tlss->push.subreq);
	TALLOC_FREE(tlss->plain_stream);
	if (tlss->session != NULL) {
		gnutls_deinit(tlss->session);
		tlss->session = NULL;
	}
	return 0;
}

/*
 * Stream operations
 */

static struct tstream_tls *tstream_tls_of(struct tstream_context *stream)
{
	return tstream_context_data(stream, struct tstream_tls);
}

/*
 * The queue of decrypted records
 */

static size_t tstream_tls_ahead_bytes(struct tstream_tls *tlss)
{
	return tlss->ahead != NULL ? tlss->ahead->bytes : 0;
}

/* Queue a decrypted record; false (pkt released) when out of memory. */
static bool tstream_tls_ahead_add(struct tstream_tls *tlss,
				  gnutls_packet_t pkt,
				  size_t len)
{
	struct tstream_tls_ahead *a = tlss->ahead;

	if (a == NULL) {
		a = talloc_zero(tlss, struct tstream_tls_ahead);
		if (a == NULL) {
			gnutls_packet_deinit(pkt);
			return false;
		}
		tlss->ahead = a;
	}
	a->pkt[(a->head + a->count) % TLS_AHEAD_RECORDS] = pkt;
	a->count++;
	a->bytes += len;
	return true;
}

/* The next queued plaintext, or false when the queue is empty. */
static bool tstream_tls_ahead_peek(struct tstream_tls *tlss,
				   uint8_t **data,
				   size_t *len)
{
	struct tstream_tls_ahead *a = tlss->ahead;
	gnutls_datum_t d;

	if (a == NULL || a->count == 0) {
		return false;
	}
	gnutls_packet_get(a->pkt[a->head], &d, NULL);
	*data = d.data + a->ofs;
	*len = d.size - a->ofs;
	return true;
}

/* Consume n bytes of the oldest record (at most what peek gave). */
static void tstream_tls_ahead_consume(struct tstream_tls *tlss, size_t n)
{
	struct tstream_tls_ahead *a = tlss->ahead;
	uint8_t *data;
	size_t len;

	if (!tstream_tls_ahead_peek(tlss, &data, &len)) {
		return;
	}
	a->ofs += n;
	a->bytes -= n;
	if (n < len) {
		return;
	}
	gnutls_packet_deinit(a->pkt[a->head]);
	a->pkt[a->head] = NULL;
	a->head = (a->head + 1) % TLS_AHEAD_RECORDS;
	a->count--;
	a->ofs = 0;
	if (a->count == 0) {
		TALLOC_FREE(tlss->ahead);
	}
}

static void tstream_tls_ahead_drop(struct tstream_tls *tlss)
{
	struct tstream_tls_ahead *a = tlss->ahead;

	if (a == NULL) {
		return;
	}
	while (a->count > 0) {
		gnutls_packet_deinit(a->pkt[a->head]);
		a->head = (a->head + 1) % TLS_AHEAD_RECORDS;
		a->count--;
	}
	TALLOC_FREE(tlss->ahead);
}

/*
 * Whether the ciphertext buffer seems to start with a complete record.
 * Only a hint (GnuTLS may hold the start of a record already, then this
 * looks at the middle of one): decrypting ahead never reads from the
 * plain stream, so a wrong guess costs a GnuTLS call, nothing else.
 */
static bool tstream_tls_pull_has_record(struct tstream_tls *tlss)
{
	size_t avail = tlss->pull.len - tlss->pull.ofs;
	const uint8_t *p;

	if (avail < TLS_HEADER_SIZE) {
		return false;
	}
	p = tlss->pull.data + tlss->pull.ofs;
	return avail >= TLS_HEADER_SIZE + (((size_t)p[3] << 8) | p[4]);
}

/*
 * Decrypt the records that are already complete in the ciphertext
 * buffer into the queue, up to TLS_AHEAD_MAX. Starts no I/O: GnuTLS's
 * pull gets EAGAIN instead of a plain readv, and a KeyUpdate answer
 * GnuTLS may queue goes out with the next record we send. Anything but
 * data or EAGAIN ends it and is kept for the reader, after the data.
 */
static void tstream_tls_read_ahead(struct tstream_tls *tlss)
{
	unsigned spins = 0;

	while (
	    tlss->error == 0 && !tlss->read_eof && !tlss->ahead_stopped &&
	    (tlss->ahead == NULL || tlss->ahead->count < TLS_AHEAD_RECORDS) &&
	    tstream_tls_ahead_bytes(tlss) < TLS_AHEAD_MAX &&
	    tstream_tls_pull_has_record(tlss)) {
		size_t avail = tlss->pull.len - tlss->pull.ofs;
		gnutls_packet_t pkt = NULL;
		ssize_t ret;

		tlss->pull.no_io = true;
		ret = gnutls_record_recv_packet(tlss->session, &pkt);
		tlss->pull.no_io = false;
		if (ret > 0 && pkt != NULL) {
			if (tstream_tls_ahead_add(tlss, pkt, (size_t)ret)) {
				continue;
			}
			pkt = NULL;
			ret = GNUTLS_E_MEMORY_ERROR; /* the record is lost */
		}
		if (pkt != NULL) {
			gnutls_packet_deinit(pkt);
		}
		if (ret > 0) {
			ret = GNUTLS_E_INTERNAL_ERROR; /* data, no packet */
		}
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
			/* a post-handshake message was handled: go on */
			if (tlss->pull.len - tlss->pull.ofs != avail &&
			    ++spins < 64) {
				continue;
			}
			return;
		}
		tlss->ahead_stopped = true;
		tlss->ahead_stop_ret = (int)ret;
	}
}

static ssize_t tstream_tls_pending_bytes(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_of(stream);

	if (tlss->error != 0) {
		errno = tlss->error;
		return -1;
	}
	if (tlss->read_req == NULL) {
		/* a running read takes what arrives itself */
		tstream_tls_read_ahead(tlss);
	}
	return (ssize_t)(tstream_tls_ahead_bytes(tlss) +
			 gnutls_record_check_pending(tlss->session));
}

/* An op request's state: the vector left to do. */
struct tstream_tls_io_state {
	struct tstream_tls *tlss;
	struct iovec small[4];
	struct iovec *vector;
	size_t count;
	int ret;
};

static void tstream_tls_io_cleanup(struct tevent_req *req,
				   enum tevent_req_state req_state)
{
	struct tstream_tls_io_state *state =
	    tevent_req_data(req, struct tstream_tls_io_state);
	struct tstream_tls *tlss = state->tlss;

	if (tlss == NULL) {
		return;
	}
	if (tlss->read_req == req) {
		tlss->read_req = NULL;
	}
	if (tlss->write_req == req) {
		tlss->write_req = NULL;
	}
	state->tlss = NULL;
}

/* Consume n bytes of the state's vector. */
static void tstream_tls_io_advance(struct tstream_tls_io_state *state, size_t n)
{
	state->ret += (int)n;
	while (n > 0) {
		size_t step =
		    n < state->vector[0].iov_len ? n : state->vector[0].iov_len;

		state->vector[0].iov_base =
		    (uint8_t *)state->vector[0].iov_base + step;
		state->vector[0].iov_len -= step;
		n -= step;
		if (state->vector[0].iov_len == 0) {
			state->vector++;
			state->count--;
		}
	}
	while (state->count > 0 && state->vector[0].iov_len == 0) {
		state->vector++;
		state->count--;
	}
}

static struct tevent_req *tstream_tls_io_send(TALLOC_CTX *mem_ctx,
					      struct tevent_context *ev,
					      struct tstream_context *stream,
					      const struct iovec *vector,
					      size_t count,
					      bool is_write)
{
	struct tstream_tls *tlss = tstream_tls_of(stream);
	struct tevent_req *req;
	struct tstream_tls_io_state *state;

	req = tevent_req_create(mem_ctx, &state, struct tstream_tls_io_state);
	if (req == NULL) {
		return NULL;
	}
	tevent_req_defer_callback(req, ev);

	if (count <= ARRAY_SIZE(state->small)) {
		state->vector = state->small;
	} else {
		state->vector = talloc_array(state, struct iovec, count);
		if (tevent_req_nomem(state->vector, req)) {
			return tevent_req_post(req, ev);
		}
	}
	memcpy(state->vector, vector, sizeof(*vector) * count);
	state->count = count;
	/* GnuTLS refuses empty buffers: skip empty entries */
	tstream_tls_io_advance(state, 0);

	if (tlss->error != 0) {
		tevent_req_error(req, tlss->error);
		return tevent_req_post(req, ev);
	}

	state->tlss = tlss;
	tlss->ev = ev;
	if (is_write) {
		tlss->write_req = req;
	} else {
		tlss->read_req = req;
	}
	tevent_req_set_cleanup_fn(req, tstream_tls_io_cleanup);

	if (is_write) {
		tstream_tls_write_step(tlss);
	} else {
		tstream_tls_read_step(tlss);
	}
	if (!tevent_req_is_in_progress(req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

static struct tevent_req *tstream_tls_readv_send(TALLOC_CTX *mem_ctx,
						 struct tevent_context *ev,
						 struct tstream_context *stream,
						 struct iovec *vector,
						 size_t count)
{
	return tstream_tls_io_send(mem_ctx, ev, stream, vector, count, false);
}

/* Copy queued plaintext into the request's vector. */
static void tstream_tls_ahead_take(struct tstream_tls *tlss,
				   struct tstream_tls_io_state *state)
{
	uint8_t *data;
	size_t len;

	while (state->count > 0 && tstream_tls_ahead_peek(tlss, &data, &len)) {
		if (len > state->vector[0].iov_len) {
			len = state->vector[0].iov_len;
		}
		memcpy(state->vector[0].iov_base, data, len);
		tstream_tls_ahead_consume(tlss, len);
		tstream_tls_io_advance(state, len);
	}
}

/*
 * How a read learns the end: EPIPE, or with strict_end ECONNABORTED when
 * the peer never said close_notify, so a relay does not pass a cut-short
 * stream on as a clean end.
 */
static int tstream_tls_eof_errno(const struct tstream_tls *tlss)
{
	if (tlss->truncated && tlss->params->internal->strict_end) {
		return ECONNABORTED;
	}
	return EPIPE;
}

static void tstream_tls_read_step(struct tstream_tls *tlss)
{
	struct tevent_req *req = tlss->read_req;
	struct tstream_tls_io_state *state =
	    tevent_req_data(req, struct tstream_tls_io_state);
	unsigned spins = 0;
	size_t avail;
	ssize_t ret;

	/* whatever GnuTLS queued while decrypting ahead goes out now */
	tstream_tls_flush(tlss);
	while (state->count > 0) {
		gnutls_packet_t pkt = NULL;

		if (tlss->error != 0) {
			tstream_tls_fail_req(req, tlss->error);
			return;
		}
		if (tlss->ahead != NULL) {
			/* data before whatever stopped decrypting ahead */
			tstream_tls_ahead_take(tlss, state);
			continue;
		}
		if (tlss->read_eof) {
			tstream_tls_fail_req(req, tstream_tls_eof_errno(tlss));
			return;
		}
		avail = tlss->pull.len - tlss->pull.ofs;
		if (tlss->ahead_stopped) {
			ret = tlss->ahead_stop_ret;
			tlss->ahead_stopped = false;
		} else {
			ret = gnutls_record_recv_packet(tlss->session, &pkt);
		}
		/* a KeyUpdate or an alert may have been queued */
		tstream_tls_flush(tlss);
		if (ret > 0 && pkt != NULL) {
			if (!tstream_tls_ahead_add(tlss, pkt, (size_t)ret)) {
				tstream_tls_set_error(tlss, ENOMEM);
				return;
			}
			continue;
		}
		if (ret > 0) {
			/* data without a packet: GnuTLS broke its word */
			tstream_tls_set_error(tlss, EIO);
			return;
		}
		if (pkt != NULL) {
			gnutls_packet_deinit(pkt);
		}
		if (tlss->pull.len - tlss->pull.ofs != avail) {
			spins = 0; /* GnuTLS consumed input: progress */
		}
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
			if (tlss->error != 0) {
				continue;
			}
			if (tlss->pull.subreq == NULL && ++spins < 64) {
				/*
				 * Not waiting for the plain stream: GnuTLS
				 * handled a post-handshake message (TLS 1.3
				 * NewSessionTicket, KeyUpdate) and wants to
				 * be called again.
				 */
				continue;
			}
			if (tlss->pull.subreq == NULL) {
				tstream_tls_set_error(tlss, EPROTO);
				continue;
			}
			return;
		}
		if (ret == 0 || ret == GNUTLS_E_PREMATURE_TERMINATION) {
			/* close_notify, or EOF without one: end of stream */
			tlss->read_eof = true;
			tlss->truncated = ret != 0;
			continue;
		}
		if (ret == GNUTLS_E_REHANDSHAKE) {
			/* renegotiation is not supported: say so, go on */
			gnutls_alert_send(tlss->session, GNUTLS_AL_WARNING,
					  GNUTLS_A_NO_RENEGOTIATION);
			tstream_tls_flush(tlss);
			continue;
		}
		if (ret < 0 && gnutls_error_is_fatal((int)ret) == 0) {
			continue;
		}
		if (ret < 0 && tlss->pull.eof && tlss->error == 0) {
			/* a record cut short by EOF: the stream ended */
			tlss->read_eof = true;
			tlss->truncated = true;
			continue;
		}
		if (ret < 0) {
			tstream_tls_set_error(
			    tlss, tstream_tls_map_error(tlss, (int)ret));
			return;
		}
	}
	tstream_tls_release_idle(tlss);
	tstream_tls_done_req(req);
}

static struct tevent_req *tstream_tls_writev_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream,
    const struct iovec *vector,
    size_t count)
{
	return tstream_tls_io_send(mem_ctx, ev, stream, vector, count, true);
}

static void tstream_tls_write_step(struct tstream_tls *tlss)
{
	struct tevent_req *req = tlss->write_req;
	struct tstream_tls_io_state *state =
	    tevent_req_data(req, struct tstream_tls_io_state);
	ssize_t ret;

	while (state->count > 0) {
		size_t len = state->vector[0].iov_len;

		if (tlss->error != 0) {
			tstream_tls_fail_req(req, tlss->error);
			return;
		}
		if (tlss->write_shut) {
			tstream_tls_fail_req(req, EPIPE);
			return;
		}
		if (tlss->push.fill_len >= TLS_OUT_BATCH) {
			/* enough for one writev: wait until it can go */
			tstream_tls_flush(tlss);
			if (tlss->push.fill_len > 0) {
				return;
			}
		}
		if (len > TLS_RECORD_MAX) {
			len = TLS_RECORD_MAX;
		}
		ret = gnutls_record_send(tlss->session,
					 state->vector[0].iov_base, len);
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
			/* push never refuses; only a failure gets here */
			tstream_tls_flush(tlss);
			if (tlss->error == 0) {
				return;
			}
			continue;
		}
		if (ret < 0) {
			tstream_tls_set_error(
			    tlss, tstream_tls_map_error(tlss, (int)ret));
			return;
		}
		tstream_tls_io_advance(state, (size_t)ret);
	}
	tstream_tls_flush(tlss);
	if (tlss->error != 0) {
		tstream_tls_fail_req(req, tlss->error);
		return;
	}
	tstream_tls_release_idle(tlss);
	tstream_tls_done_req(req);
}

static int tstream_tls_io_recv(struct tevent_req *req, int *perrno)
{
	struct tstream_tls_io_state *state =
	    tevent_req_data(req, struct tstream_tls_io_state);
	int ret;

	ret = tstream_tls_req_error(req, perrno);
	if (ret == 0) {
		ret = state->ret;
	}
	tevent_req_received(req);
	return ret;
}

/* disconnect and shutdown: close_notify, drain, then the plain stream */
struct tstream_tls_close_state {
	struct tstream_tls *tlss;
	struct tevent_context *ev;
	bool disconnect;
	bool bye_sent;
	struct tevent_req *subreq;
};

static void tstream_tls_close_cleanup(struct tevent_req *req,
				      enum tevent_req_state req_state)
{
	struct tstream_tls_close_state *state =
	    tevent_req_data(req, struct tstream_tls_close_state);

	if (state->tlss != NULL && state->tlss->close_req == req) {
		state->tlss->close_req = NULL;
	}
	state->tlss = NULL;
	TALLOC_FREE(state->subreq);
}

static struct tevent_req *tstream_tls_close_send(TALLOC_CTX *mem_ctx,
						 struct tevent_context *ev,
						 struct tstream_context *stream,
						 bool disconnect)
{
	struct tstream_tls *tlss = tstream_tls_of(stream);
	struct tevent_req *req;
	struct tstream_tls_close_state *state;

	req =
	    tevent_req_create(mem_ctx, &state, struct tstream_tls_close_state);
	if (req == NULL) {
		return NULL;
	}
	tevent_req_defer_callback(req, ev);
	state->ev = ev;
	state->disconnect = disconnect;

	if (tlss->error != 0) {
		tevent_req_error(req, tlss->error);
		return tevent_req_post(req, ev);
	}
	if (tlss->close_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}
	state->tlss = tlss;
	tlss->close_req = req;
	tlss->ev = ev;
	tevent_req_set_cleanup_fn(req, tstream_tls_close_cleanup);

	tstream_tls_close_step(tlss);
	if (!tevent_req_is_in_progress(req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

static void tstream_tls_close_done(struct tevent_req *subreq);

static void tstream_tls_close_step(struct tstream_tls *tlss)
{
	struct tevent_req *req = tlss->close_req;
	struct tstream_tls_close_state *state =
	    tevent_req_data(req, struct tstream_tls_close_state);
	int ret;

	if (state->subreq != NULL) {
		return;
	}
	if (tlss->error != 0) {
		tstream_tls_fail_req(req, tlss->error);
		return;
	}
	if (!state->bye_sent && !tlss->write_shut) {
		/* push never refuses, so this queues close_notify at once */
		ret = gnutls_bye(tlss->session, GNUTLS_SHUT_WR);
		if (ret < 0 && ret != GNUTLS_E_AGAIN &&
		    ret != GNUTLS_E_INTERRUPTED) {
			tstream_tls_set_error(tlss,
					      tstream_tls_map_error(tlss, ret));
			return;
		}
		tlss->write_shut = true;
	}
	state->bye_sent = true;
	tstream_tls_flush(tlss);
	if (tlss->error != 0) {
		tstream_tls_fail_req(req, tlss->error);
		return;
	}
	if (tlss->push.subreq != NULL || tlss->push.fill_len > 0) {
		return; /* retried when the writev is done */
	}

	if (state->disconnect) {
		/* a read-ahead of ours would make the plain disconnect EBUSY */
		TALLOC_FREE(tlss->pull.subreq);
		state->subreq = tstream_disconnect_send(state, state->ev,
							tlss->plain_stream);
	} else {
		state->subreq =
		    tstream_shutdown_send(state, state->ev, tlss->plain_stream);
	}
	if (tevent_req_nomem(state->subreq, req)) {
		return;
	}
	tevent_req_set_callback(state->subreq, tstream_tls_close_done, req);
}

static void tstream_tls_close_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tstream_tls_close_state *state =
	    tevent_req_data(req, struct tstream_tls_close_state);
	int ret;
	int err = 0;

	if (state->disconnect) {
		ret = tstream_disconnect_recv(subreq, &err);
	} else {
		ret = tstream_shutdown_recv(subreq, &err);
	}
	TALLOC_FREE(subreq);
	state->subreq = NULL;
	if (ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	tevent_req_done(req);
}

static int tstream_tls_close_recv(struct tevent_req *req, int *perrno)
{
	int ret = tstream_tls_req_error(req, perrno);

	tevent_req_received(req);
	return ret;
}

static struct tevent_req *tstream_tls_disconnect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream)
{
	return tstream_tls_close_send(mem_ctx, ev, stream, true);
}

static struct tevent_req *tstream_tls_shutdown_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream)
{
	return tstream_tls_close_send(mem_ctx, ev, stream, false);
}

/* The plain stream is readable: so is this one. */
static void tstream_tls_plain_readable(struct tstream_context *plain,
				       void *private_data)
{
	struct tstream_context *stream = private_data;
	struct tstream_tls *tlss = tstream_tls_of(stream);
	tstream_readable_handler_t fn = tlss->readable_fn;

	(void)plain;
	tlss->readable_fn = NULL;
	if (fn != NULL) {
		fn(stream, tlss->readable_private);
	}
}

/*
 * The readable handler (of tstream_set_readable_handler() or of a
 * tstream_wait_readable request): ready at once when a readv has
 * something to work on here (decrypted bytes as pending_bytes counts
 * them, ciphertext, the end, an error, what stopped decrypting ahead, a
 * pull of ours in flight); otherwise a handler on the plain stream, which
 * costs no allocation there nor here.
 */
static int tstream_tls_set_readable_handler(struct tstream_context *stream,
					    struct tevent_context *ev,
					    tstream_readable_handler_t handler,
					    void *private_data,
					    bool *pready)
{
	struct tstream_tls *tlss = tstream_tls_of(stream);
	bool ready;

	if (handler == NULL) {
		if (tlss->readable_fn != NULL) {
			tlss->readable_fn = NULL;
			tstream_set_readable_handler(tlss->plain_stream, NULL,
						     NULL, NULL);
		}
		return 0;
	}
	ready = tlss->error != 0 || tlss->read_eof || tlss->pull.eof ||
		tlss->pull.subreq != NULL || tlss->pull.len > tlss->pull.ofs ||
		tstream_tls_pending_bytes(stream) != 0 || tlss->ahead_stopped;
	if (ready) {
		*pready = true;
		return 0;
	}
	if (tstream_set_readable_handler(tlss->plain_stream, ev,
					 tstream_tls_plain_readable,
					 stream) == -1) {
		return errno;
	}
	tlss->readable_fn = handler;
	tlss->readable_private = private_data;
	tlss->readable_stream = stream;
	return 0;
}

static const struct tstream_context_ops tstream_tls_ops = {
    .name = "tls",
    .pending_bytes = tstream_tls_pending_bytes,
    .readv_send = tstream_tls_readv_send,
    .readv_recv = tstream_tls_io_recv,
    .writev_send = tstream_tls_writev_send,
    .writev_recv = tstream_tls_io_recv,
    .disconnect_send = tstream_tls_disconnect_send,
    .disconnect_recv = tstream_tls_close_recv,
    .shutdown_send = tstream_tls_shutdown_send,
    .shutdown_recv = tstream_tls_close_recv,
    .set_readable_handler = tstream_tls_set_readable_handler,
};

/*
 * Handshake
 */

struct tstream_tls_handshake_state {
	struct tstream_context *tls_stream;
	struct tstream_tls *tlss;
	int err;
	char *reason;
};

static void tstream_tls_handshake_cleanup(struct tevent_req *req,
					  enum tevent_req_state req_state)
{
	struct tstream_tls_handshake_state *state =
	    tevent_req_data(req, struct tstream_tls_handshake_state);

	if (state->tlss != NULL && state->tlss->handshake_req == req) {
		state->tlss->handshake_req = NULL;
	}
}

/* Server: pick the certificate for the SNI the client sent. */
static int tstream_tls_client_hello(gnutls_session_t session)
{
	struct tstream_tls *tlss = gnutls_session_get_ptr(session);
	const struct tstream_tls_params_internal *p = tlss->params->internal;
	char name[256];
	size_t len = sizeof(name) - 1;
	unsigned int type = 0;
	const char *sni = NULL;
	int ret;

	ret = gnutls_server_name_get(session, name, &len, &type, 0);
	if (ret == 0 && type == GNUTLS_NAME_DNS && len < sizeof(name)) {
		name[len] = '\0';
		TALLOC_FREE(tlss->sni);
		tlss->sni = talloc_strdup(tlss, name);
		sni = tlss->sni;
	}
	ret = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE,
				     tstream_tls_params_cred_for_sni(p, sni));
	if (ret < 0) {
		return ret;
	}
	return 0;
}

static int tstream_tls_session_init(struct tstream_tls *tlss)
{
	const struct tstream_tls_params_internal *p = tlss->params->internal;
	/*
	 * No session tickets: nothing here resumes sessions, and without
	 * them a TLS 1.3 server sends no NewSessionTicket messages for the
	 * client to keep.
	 */
	unsigned int flags =
	    GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL | GNUTLS_NO_TICKETS;
	int ret;

	flags |= p->is_server ? GNUTLS_SERVER : GNUTLS_CLIENT;
	ret = gnutls_init(&tlss->session, flags);
	if (ret < 0) {
		tlss->session = NULL;
		return ret;
	}
	gnutls_session_set_ptr(tlss->session, tlss);
	gnutls_transport_set_ptr(tlss->session, tlss);
	gnutls_transport_set_pull_function(tlss->session, tstream_tls_pull);
	gnutls_transport_set_vec_push_function(tlss->session, tstream_tls_push);
	/* the caller bounds the handshake with tevent_req_set_endtime() */
	gnutls_handshake_set_timeout(tlss->session, 0);

	ret = gnutls_priority_set(tlss->session, p->priority);
	if (ret < 0) {
		return ret;
	}
	ret = gnutls_credentials_set(tlss->session, GNUTLS_CRD_CERTIFICATE,
				     p->creds[p->default_cred].cred);
	if (ret < 0) {
		return ret;
	}
	if (p->num_alpn > 0) {
		ret = gnutls_alpn_set_protocols(
		    tlss->session, p->alpn, p->num_alpn,
		    p->is_server ? GNUTLS_ALPN_SERVER_PRECEDENCE : 0);
		if (ret < 0) {
			return ret;
		}
	}

	if (p->is_server) {
		gnutls_certificate_request_t request = GNUTLS_CERT_IGNORE;

		gnutls_handshake_set_post_client_hello_function(
		    tlss->session, tstream_tls_client_hello);
		if (p->verify == TSTREAM_TLS_VERIFY_REQUIRE) {
			request = GNUTLS_CERT_REQUIRE;
			gnutls_session_set_verify_cert(tlss->session, NULL, 0);
		} else if (p->verify == TSTREAM_TLS_VERIFY_OPTIONAL) {
			request = GNUTLS_CERT_REQUEST;
		}
		gnutls_certificate_server_set_request(tlss->session, request);
		return 0;
	}

	if (p->sni != NULL) {
		ret = gnutls_server_name_set(tlss->session, GNUTLS_NAME_DNS,
					     p->sni, strlen(p->sni));
		if (ret < 0) {
			return ret;
		}
		tlss->sni = talloc_strdup(tlss, p->sni);
		if (tlss->sni == NULL) {
			return GNUTLS_E_MEMORY_ERROR;
		}
	}
	if (p->verify == TSTREAM_TLS_VERIFY_REQUIRE) {
		gnutls_session_set_verify_cert(tlss->session, p->peer_name, 0);
	}
	return 0;
}

static struct tevent_req *tstream_tls_handshake_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *plain_stream,
    struct tstream_tls_params *params,
    bool server,
    const char *location)
{
	struct tevent_req *req;
	struct tstream_tls_handshake_state *state;
	struct tstream_tls *tlss;
	int ret;

	req = tevent_req_create(mem_ctx, &state,
				struct tstream_tls_handshake_state);
	if (req == NULL) {
		return NULL;
	}
	tevent_req_defer_callback(req, ev);
	if (plain_stream == NULL) {
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}
	/* from here on the plain stream is ours, whatever happens */
	talloc_steal(state, plain_stream);
	if (params == NULL || params->internal == NULL ||
	    params->internal->is_server != server) {
		state->reason = talloc_strdup(
		    state, server ? "TLS server needs server parameters"
				  : "TLS client needs client parameters");
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}

	/*
	 * Made outside the request's talloc pool, then owned by the state:
	 * a stream carved from the pool would keep the whole pool alive for
	 * the connection's life once the request is gone.
	 */
	state->tls_stream = tstream_context_create(
	    NULL, &tstream_tls_ops, &tlss, struct tstream_tls, location);
	if (tevent_req_nomem(state->tls_stream, req)) {
		return tevent_req_post(req, ev);
	}
	talloc_steal(state, state->tls_stream);
	talloc_set_destructor(tlss, tstream_tls_destructor);
	tlss->plain_stream = talloc_steal(tlss, plain_stream);
	tlss->ev = ev;
	tlss->is_server = server;
	tlss->params = tstream_tls_params_ref(tlss, params);
	if (tevent_req_nomem(tlss->params, req)) {
		return tevent_req_post(req, ev);
	}
	state->tlss = tlss;

	ret = tstream_tls_session_init(tlss);
	if (ret < 0) {
		state->reason =
		    talloc_asprintf(state, "cannot set up TLS session: %s",
				    gnutls_strerror(ret));
		tevent_req_error(req, ret == GNUTLS_E_MEMORY_ERROR ? ENOMEM
								   : EINVAL);
		return tevent_req_post(req, ev);
	}

	tlss->handshake_req = req;
	tevent_req_set_cleanup_fn(req, tstream_tls_handshake_cleanup);
	tstream_tls_handshake_step(tlss);
	if (!tevent_req_is_in_progress(req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

_PUBLIC_ struct tevent_req *tstream_tls_accept_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *plain_stream,
    struct tstream_tls_params *params)
{
	return tstream_tls_handshake_send(mem_ctx, ev, plain_stream, params,
					  true, __location__);
}

_PUBLIC_ struct tevent_req *tstream_tls_connect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *plain_stream,
    struct tstream_tls_params *params)
{
	return tstream_tls_handshake_send(mem_ctx, ev, plain_stream, params,
					  false, __location__);
}

/* Decide the errno and the log reason of a failed handshake. */
static void tstream_tls_handshake_reason(struct tstream_tls *tlss,
					 struct tstream_tls_handshake_state *s,
					 int ret)
{
	const char *peer_cert =
	    tlss->is_server ? "client certificate" : "server certificate";
	gnutls_alert_description_t alert;

	if (tlss->error != 0) {
		s->err = tlss->error;
		s->reason = talloc_asprintf(s,
					    "connection error during TLS "
					    "handshake: %s",
					    strerror(tlss->error));
		return;
	}
	switch (ret) {
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		alert = gnutls_alert_get(tlss->session);
		s->err =
		    tstream_tls_alert_is_about_cert(alert) ? EACCES : EPROTO;
		s->reason = talloc_asprintf(s, "peer sent fatal alert: %s",
					    gnutls_alert_get_name(alert));
		return;
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
	case GNUTLS_E_CERTIFICATE_ERROR: {
		unsigned int status =
		    gnutls_session_get_verify_cert_status(tlss->session);
		gnutls_datum_t out = {NULL, 0};

		s->err = EACCES;
		if (status != 0 && gnutls_certificate_verification_status_print(
				       status, GNUTLS_CRT_X509, &out, 0) == 0) {
			s->reason =
			    talloc_asprintf(s, "%s verification failed: %s",
					    peer_cert, (const char *)out.data);
			gnutls_free(out.data);
		} else {
			s->reason =
			    talloc_asprintf(s, "%s verification failed: %s",
					    peer_cert, gnutls_strerror(ret));
		}
		return;
	}
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
	case GNUTLS_E_CERTIFICATE_REQUIRED:
		s->err = EACCES;
		s->reason = talloc_asprintf(s, "%s required but none was sent",
					    peer_cert);
		return;
	case GNUTLS_E_MEMORY_ERROR:
		s->err = ENOMEM;
		s->reason = talloc_strdup(s, "out of memory");
		return;
	default:
		break;
	}
	if (tlss->pull.eof) {
		s->err = EPIPE;
		s->reason = talloc_strdup(s, "connection closed by peer during "
					     "TLS handshake");
		return;
	}
	s->err = EPROTO;
	s->reason = talloc_asprintf(s, "TLS handshake failed: %s",
				    gnutls_strerror(ret));
}

static char *tstream_tls_hex(TALLOC_CTX *mem_ctx,
			     const uint8_t *buf,
			     size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char *hex = talloc_array(mem_ctx, char, len * 2 + 1);
	size_t i;

	if (hex == NULL) {
		return NULL;
	}
	for (i = 0; i < len; i++) {
		hex[2 * i] = digits[buf[i] >> 4];
		hex[2 * i + 1] = digits[buf[i] & 0xf];
	}
	hex[len * 2] = '\0';
	return hex;
}

/*
 * Why a name's bytes cannot be a name, or NULL. A C string stops at a
 * NUL, so "alice.example.com\0.evil.com" would read as alice's name; a
 * control byte would forge log lines or knc hand-off lines. IA5String
 * values (DNS, email, URI SANs) are ASCII only (RFC 5280 4.2.1.6; IDNs
 * travel as A-labels), UTF8String values must be UTF-8.
 */
static const char *tstream_tls_name_problem(const unsigned char *p,
					    size_t n,
					    bool ascii)
{
	size_t i = 0;

	if (n == 0) {
		return "is empty";
	}
	while (i < n) {
		unsigned char c = p[i];
		size_t len, k;
		uint32_t cp;

		if (c == 0) {
			return "holds a NUL byte";
		}
		if (c < 0x20 || c == 0x7f) {
			return "holds a control byte";
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		if (ascii) {
			return "holds a non-ASCII byte";
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return "is not valid UTF-8";
		}
		if (i + len > n) {
			return "is not valid UTF-8";
		}
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80) {
				return "is not valid UTF-8";
			}
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
			return "is not valid UTF-8";
		}
		if (cp >= 0x80 && cp <= 0x9f) {
			return "holds a control byte";
		}
		i += len;
	}
	return NULL;
}

/* Keep the first problem: the log gives one reason. */
static int tstream_tls_name_error(struct tstream_tls *tlss,
				  const char *what,
				  const char *problem)
{
	if (tlss->peer_name_error != NULL) {
		return 0;
	}
	tlss->peer_name_error = talloc_asprintf(tlss, "%s %s", what, problem);
	return tlss->peer_name_error == NULL ? ENOMEM : 0;
}

/*
 * "DNS:x" etc. of one SAN; NULL for kinds that are left out and for
 * names that cannot be names (then peer_name_error says why).
 */
static char *tstream_tls_san_string(struct tstream_tls *tlss,
				    TALLOC_CTX *mem_ctx,
				    int type,
				    const char *buf,
				    size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	const char *prefix, *problem;

	switch (type) {
	case GNUTLS_SAN_DNSNAME:
		prefix = "DNS";
		break;
	case GNUTLS_SAN_RFC822NAME:
		prefix = "email";
		break;
	case GNUTLS_SAN_URI:
		prefix = "URI";
		break;
	case GNUTLS_SAN_IPADDRESS:
		if (len == 4 && inet_ntop(AF_INET, buf, addr, sizeof(addr))) {
			return talloc_asprintf(mem_ctx, "IP:%s", addr);
		}
		if (len == 16 && inet_ntop(AF_INET6, buf, addr, sizeof(addr))) {
			return talloc_asprintf(mem_ctx, "IP:%s", addr);
		}
		tstream_tls_name_error(tlss, "IP SAN",
				       "is neither 4 nor 16 bytes long");
		return NULL;
	default:
		return NULL;
	}
	problem =
	    tstream_tls_name_problem((const unsigned char *)buf, len, true);
	if (problem != NULL) {
		tstream_tls_name_error(
		    tlss, talloc_asprintf(mem_ctx, "%s SAN", prefix), problem);
		return NULL;
	}
	return talloc_asprintf(mem_ctx, "%s:%.*s", prefix, (int)len, buf);
}

static int tstream_tls_collect_sans(struct tstream_tls *tlss,
				    gnutls_x509_crt_t crt)
{
	size_t num = 0;
	size_t cap = 512;
	char *buf = talloc_size(tlss, cap);
	unsigned int i;

	tlss->peer_sans = talloc_zero_array(tlss, const char *, 1);
	if (buf == NULL || tlss->peer_sans == NULL) {
		talloc_free(buf);
		return ENOMEM;
	}
	for (i = 0;; i++) {
		size_t size = cap;
		const char **sans;
		char *san;
		int ret;

		/*
		 * gnutls_x509_crt_get_subject_alt_name() refuses some
		 * malformed names (an error that is not the end of the list):
		 * then the certificate's names are not to be trusted at all.
		 */
		ret = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &size,
							   NULL);
		if (ret == GNUTLS_E_SHORT_MEMORY_BUFFER) {
			char *bigger = talloc_realloc(tlss, buf, char, size);

			if (bigger == NULL) {
				talloc_free(buf);
				return ENOMEM;
			}
			buf = bigger;
			cap = size;
			i--;
			continue;
		}
		if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
			break;
		}
		if (ret < 0) {
			talloc_free(buf);
			return tstream_tls_name_error(tlss, "a SAN",
						      "cannot be decoded");
		}
		san = tstream_tls_san_string(tlss, tlss->peer_sans, ret, buf,
					     size);
		if (san == NULL) {
			if (tlss->peer_name_error != NULL) {
				break;
			}
			continue;
		}
		sans = talloc_realloc(tlss, tlss->peer_sans, const char *,
				      num + 2);
		if (sans == NULL) {
			talloc_free(buf);
			return ENOMEM;
		}
		sans[num++] = san;
		sans[num] = NULL;
		tlss->peer_sans = sans;
	}
	talloc_free(buf);
	return 0;
}

static bool tstream_tls_put_utf8(char *out, size_t *len, uint32_t cp)
{
	if (cp >= 0xd800 && cp <= 0xdfff) {
		return false;
	}
	if (cp < 0x80) {
		out[(*len)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*len)++] = (char)(0xc0 | (cp >> 6));
		out[(*len)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		out[(*len)++] = (char)(0xe0 | (cp >> 12));
		out[(*len)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*len)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp <= 0x10ffff) {
		out[(*len)++] = (char)(0xf0 | (cp >> 18));
		out[(*len)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[(*len)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*len)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		return false;
	}
	return true;
}

static const char tstream_tls_ava_nomem[] = "out of memory";

/*
 * An attribute value as UTF-8 text (the value itself, unescaped), or why
 * it cannot be a name (tstream_tls_ava_nomem: no memory to tell). *text
 * is NULL for a value that is not a string.
 */
static const char *tstream_tls_ava_text(TALLOC_CTX *mem_ctx,
					const gnutls_x509_ava_st *ava,
					char **text)
{
	const unsigned char *v = ava->value.data;
	size_t n = ava->value.size;
	size_t w = 1, i, len = 0;
	const char *problem;
	char *out;

	*text = NULL;
	switch (ava->value_tag) {
	case 12: /* UTF8String */
	case 19: /* PrintableString */
	case 22: /* IA5String */
		problem = tstream_tls_name_problem(v, n, ava->value_tag != 12);
		if (problem != NULL) {
			return problem;
		}
		*text = talloc_strndup(mem_ctx, (const char *)v, n);
		return *text == NULL ? tstream_tls_ava_nomem : NULL;
	case 20: /* TeletexString: taken as Latin-1 */
		w = 1;
		break;
	case 30: /* BMPString: UCS-2 big-endian */
		w = 2;
		break;
	case 28: /* UniversalString: UCS-4 big-endian */
		w = 4;
		break;
	default:
		return NULL; /* not a string: GnuTLS shows "#hex" */
	}
	if (n == 0) {
		return "is empty";
	}
	if (n % w != 0) {
		return "is not valid UCS";
	}
	out = talloc_array(mem_ctx, char, (n / w) * 4 + 1);
	if (out == NULL) {
		return tstream_tls_ava_nomem;
	}
	for (i = 0; i < n; i += w) {
		uint32_t cp = 0;
		size_t k;

		for (k = 0; k < w; k++) {
			cp = (cp << 8) | v[i + k];
		}
		if (cp == 0) {
			return "holds a NUL byte";
		}
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
			return "holds a control byte";
		}
		if (!tstream_tls_put_utf8(out, &len, cp)) {
			return "is not valid UCS";
		}
	}
	out[len] = '\0';
	*text = out;
	return NULL;
}

/*
 * Check every attribute value of the subject: a NUL or control byte in
 * any RDN (not only the CN) would reach the logs and the subject
 * matching, where GnuTLS prints it as "#0c06..." hex that a pattern like
 * "CN=*" matches.
 *
 * And take the most specific CN: the last one in DER order, the first of
 * the RFC 4514 string (as Go's pkix.Name and curl do; HAProxy defaults to
 * the first in DER order, see docs/tls.md). One rule for logs, the PROXY
 * v2 CN and the leftmost RDN a client_subject pattern lines up with. Its
 * value as it is, not the RFC 4514 escaped text that
 * gnutls_x509_crt_get_dn_by_oid() gives ("a\,b").
 */
static int tstream_tls_check_subject(struct tstream_tls *tlss,
				     gnutls_x509_crt_t crt)
{
	gnutls_x509_dn_t dn;
	gnutls_x509_ava_st ava;
	char *cn = NULL;
	int irdn, iava;

	if (gnutls_x509_crt_get_subject(crt, &dn) < 0) {
		return tstream_tls_name_error(tlss, "the subject",
					      "cannot be decoded");
	}
	for (irdn = 0;; irdn++) {
		for (iava = 0;; iava++) {
			const char *problem;
			char *text = NULL;
			bool is_cn;

			if (gnutls_x509_dn_get_rdn_ava(dn, irdn, iava, &ava) <
			    0) {
				break;
			}
			/* the dotted OID, its size counting a final NUL */
			is_cn =
			    strnlen((const char *)ava.oid.data, ava.oid.size) ==
				strlen(GNUTLS_OID_X520_COMMON_NAME) &&
			    memcmp(ava.oid.data, GNUTLS_OID_X520_COMMON_NAME,
				   strlen(GNUTLS_OID_X520_COMMON_NAME)) == 0;
			problem = tstream_tls_ava_text(tlss, &ava, &text);
			if (problem == tstream_tls_ava_nomem) {
				talloc_free(cn);
				return ENOMEM;
			}
			if (is_cn && problem != NULL &&
			    strcmp(problem, "is empty") == 0) {
				problem = NULL; /* an empty CN is no CN */
			} else if (is_cn && problem == NULL && text == NULL) {
				/* "#hex" would reach a backend as a name */
				problem = "is not a string";
			}
			if (problem != NULL) {
				talloc_free(cn);
				return tstream_tls_name_error(
				    tlss,
				    is_cn ? "the subject CN"
					  : "a subject attribute",
				    problem);
			}
			if (is_cn) {
				talloc_free(cn);
				cn = text;
			} else {
				talloc_free(text);
			}
		}
		if (iava == 0) {
			break; /* no such RDN: the end */
		}
	}
	tlss->peer_cn = cn;
	return 0;
}

static int tstream_tls_collect_peer(struct tstream_tls *tlss)
{
	const gnutls_datum_t *certs;
	unsigned int num = 0;
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = {NULL, 0};
	uint8_t fp[32];
	size_t size;
	int err = ENOMEM;

	certs = gnutls_certificate_get_peers(tlss->session, &num);
	if (certs == NULL || num == 0) {
		tlss->verify_result = TSTREAM_TLS_PEER_NO_CERT;
		return 0;
	}
	if (gnutls_x509_crt_init(&crt) < 0) {
		return ENOMEM;
	}
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) < 0) {
		gnutls_x509_crt_deinit(crt);
		return EPROTO;
	}
	size = sizeof(fp);
	if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp,
					    &size) == 0) {
		tlss->peer_fingerprint = tstream_tls_hex(tlss, fp, size);
		if (tlss->peer_fingerprint == NULL) {
			goto out;
		}
	}
	err = tstream_tls_check_subject(tlss, crt);
	if (err == 0 && tlss->peer_name_error == NULL) {
		err = tstream_tls_collect_sans(tlss, crt);
	}
	if (err != 0) {
		goto out;
	}
	if (tlss->peer_name_error != NULL) {
		/*
		 * One bad name and no name of the certificate is reported:
		 * a caller that checks only the names it looks for would
		 * otherwise still trust the certificate's other ones.
		 */
		TALLOC_FREE(tlss->peer_cn);
		TALLOC_FREE(tlss->peer_sans);
		tlss->peer_sans = talloc_zero_array(tlss, const char *, 1);
		err = tlss->peer_sans == NULL ? ENOMEM : 0;
		goto out;
	}
	if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
		tlss->peer_subject =
		    talloc_strndup(tlss, (const char *)dn.data, dn.size);
		gnutls_free(dn.data);
		if (tlss->peer_subject == NULL) {
			err = ENOMEM;
			goto out;
		}
	}
out:
	gnutls_x509_crt_deinit(crt);
	return err;
}

/* Judge the peer certificate when the handshake did not (optional). */
static int tstream_tls_collect_verify(struct tstream_tls *tlss)
{
	const struct tstream_tls_params_internal *p = tlss->params->internal;
	unsigned int status = 0;
	gnutls_datum_t out = {NULL, 0};
	int ret;

	if (tlss->peer_fingerprint == NULL) {
		tlss->verify_result = TSTREAM_TLS_PEER_NO_CERT;
		return 0;
	}
	switch (p->verify) {
	case TSTREAM_TLS_VERIFY_REQUIRE:
		/* gnutls_session_set_verify_cert() checked it already */
		tlss->verify_result = TSTREAM_TLS_PEER_VALID;
		return 0;
	case TSTREAM_TLS_VERIFY_OPTIONAL:
		break;
	default:
		tlss->verify_result = TSTREAM_TLS_PEER_NOT_CHECKED;
		return 0;
	}
	if (p->is_server) {
		ret = gnutls_certificate_verify_peers2(tlss->session, &status);
	} else {
		ret = gnutls_certificate_verify_peers3(tlss->session,
						       p->peer_name, &status);
	}
	if (ret < 0) {
		tlss->verify_result = TSTREAM_TLS_PEER_INVALID;
		tlss->verify_reason = talloc_strdup(tlss, gnutls_strerror(ret));
		return tlss->verify_reason == NULL ? ENOMEM : 0;
	}
	if (status == 0) {
		tlss->verify_result = TSTREAM_TLS_PEER_VALID;
		return 0;
	}
	tlss->verify_result = TSTREAM_TLS_PEER_INVALID;
	if (gnutls_certificate_verification_status_print(
		status, GNUTLS_CRT_X509, &out, 0) == 0) {
		tlss->verify_reason =
		    talloc_strdup(tlss, (const char *)out.data);
		gnutls_free(out.data);
	} else {
		tlss->verify_reason =
		    talloc_strdup(tlss, "certificate not valid");
	}
	return tlss->verify_reason == NULL ? ENOMEM : 0;
}

static int tstream_tls_collect(struct tstream_tls *tlss)
{
	gnutls_datum_t alpn = {NULL, 0};
	int err;

	tlss->version = gnutls_protocol_get_name(
	    gnutls_protocol_get_version(tlss->session));
	tlss->cipher = gnutls_ciphersuite_get(tlss->session);
	if (gnutls_alpn_get_selected_protocol(tlss->session, &alpn) == 0 &&
	    alpn.size > 0) {
		tlss->alpn =
		    talloc_strndup(tlss, (const char *)alpn.data, alpn.size);
		if (tlss->alpn == NULL) {
			return ENOMEM;
		}
	}
	err = tstream_tls_collect_peer(tlss);
	if (err != 0) {
		return err;
	}
	return tstream_tls_collect_verify(tlss);
}

static void tstream_tls_handshake_step(struct tstream_tls *tlss)
{
	struct tevent_req *req = tlss->handshake_req;
	struct tstream_tls_handshake_state *state =
	    tevent_req_data(req, struct tstream_tls_handshake_state);
	unsigned spins = 0;
	int ret;
	int err;

	if (state->err != 0) {
		/* failed: the alert goes out before the request ends */
		if (tlss->error == 0 &&
		    (tlss->push.subreq != NULL || tlss->push.fill_len > 0)) {
			return;
		}
		tstream_tls_fail_req(req, state->err);
		return;
	}

	do {
		ret = gnutls_handshake(tlss->session);
		/* again at once unless it waits for the plain stream */
	} while (ret < 0 && tlss->error == 0 && ++spins < 64 &&
		 (((ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) &&
		   tlss->pull.subreq == NULL && !tlss->pull.eof) ||
		  (ret != GNUTLS_E_AGAIN && ret != GNUTLS_E_INTERRUPTED &&
		   gnutls_error_is_fatal(ret) == 0)));
	tstream_tls_flush(tlss);
	if ((ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) &&
	    tlss->error == 0 && tlss->pull.subreq == NULL &&
	    tlss->push.subreq == NULL) {
		/* nothing would ever wake us up again */
		ret = GNUTLS_E_INTERNAL_ERROR;
	}

	if (ret == 0 && tlss->error == 0) {
		err = tstream_tls_collect(tlss);
		if (err != 0) {
			state->err = err;
			state->reason = talloc_strdup(state, strerror(err));
			tstream_tls_fail_req(req, err);
			return;
		}
		tlss->established = true;
		tstream_tls_release_idle(tlss);
		tstream_tls_done_req(req);
		return;
	}
	if ((ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) &&
	    tlss->error == 0) {
		return; /* retried when the plain read or write is done */
	}

	tstream_tls_handshake_reason(tlss, state, ret);
	if (tlss->error == 0 && !tlss->pull.eof &&
	    ret != GNUTLS_E_FATAL_ALERT_RECEIVED) {
		/* tell the peer why, best effort */
		gnutls_alert_send_appropriate(tlss->session, ret);
		tstream_tls_flush(tlss);
		if (tlss->error == 0 && tlss->push.subreq != NULL) {
			return;
		}
	}
	tstream_tls_fail_req(req, state->err);
}

static int tstream_tls_handshake_recv(struct tevent_req *req,
				      int *perrno,
				      TALLOC_CTX *mem_ctx,
				      struct tstream_context **tls_stream,
				      char **reason)
{
	struct tstream_tls_handshake_state *state =
	    tevent_req_data(req, struct tstream_tls_handshake_state);
	int err = 0;

	if (reason != NULL) {
		*reason = NULL;
	}
	if (tstream_tls_req_error(req, &err) != 0) {
		if (reason != NULL) {
			if (err == ETIMEDOUT && state->reason == NULL) {
				*reason = talloc_strdup(mem_ctx,
							"TLS handshake timed "
							"out");
			} else if (state->reason != NULL) {
				*reason = talloc_move(mem_ctx, &state->reason);
			} else {
				*reason = talloc_strdup(mem_ctx, strerror(err));
			}
		}
		if (perrno != NULL) {
			*perrno = err;
		}
		tevent_req_received(req);
		return -1;
	}
	state->tlss->handshake_req = NULL;
	*tls_stream = talloc_move(mem_ctx, &state->tls_stream);
	tevent_req_received(req);
	return 0;
}

_PUBLIC_ int tstream_tls_accept_recv(struct tevent_req *req,
				     int *perrno,
				     TALLOC_CTX *mem_ctx,
				     struct tstream_context **tls_stream,
				     char **reason)
{
	return tstream_tls_handshake_recv(req, perrno, mem_ctx, tls_stream,
					  reason);
}

_PUBLIC_ int tstream_tls_connect_recv(struct tevent_req *req,
				      int *perrno,
				      TALLOC_CTX *mem_ctx,
				      struct tstream_context **tls_stream,
				      char **reason)
{
	return tstream_tls_handshake_recv(req, perrno, mem_ctx, tls_stream,
					  reason);
}

/*
 * Getters
 */

static struct tstream_tls *tstream_tls_established(
    struct tstream_context *stream)
{
	struct tstream_tls *tlss;

	if (stream == NULL) {
		errno = EINVAL;
		return NULL;
	}
	tlss =
	    talloc_get_type(_tstream_context_data(stream), struct tstream_tls);
	if (tlss == NULL || !tlss->established) {
		errno = EINVAL;
		return NULL;
	}
	return tlss;
}

_PUBLIC_ bool tstream_is_tls(struct tstream_context *stream)
{
	return stream != NULL && talloc_get_type(_tstream_context_data(stream),
						 struct tstream_tls) != NULL;
}

_PUBLIC_ const char *tstream_tls_version(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->version : NULL;
}

_PUBLIC_ const char *tstream_tls_cipher_suite(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->cipher : NULL;
}

_PUBLIC_ const char *tstream_tls_sni(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->sni : NULL;
}

_PUBLIC_ const char *tstream_tls_alpn(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->alpn : NULL;
}

_PUBLIC_ const char *tstream_tls_peer_subject(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->peer_subject : NULL;
}

_PUBLIC_ const char *tstream_tls_peer_common_name(
    struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->peer_cn : NULL;
}

_PUBLIC_ const char *tstream_tls_peer_name_error(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->peer_name_error : NULL;
}

_PUBLIC_ bool tstream_tls_truncated(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL && tlss->read_eof && tlss->truncated;
}

_PUBLIC_ const char *const *tstream_tls_peer_sans(
    struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	if (tlss == NULL || tlss->peer_fingerprint == NULL) {
		return NULL;
	}
	return (const char *const *)tlss->peer_sans;
}

_PUBLIC_ const char *tstream_tls_peer_fingerprint_sha256(
    struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->peer_fingerprint : NULL;
}

_PUBLIC_ enum tstream_tls_peer_result tstream_tls_peer_verify_result(
    struct tstream_context *stream, const char **reason)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	if (reason != NULL) {
		*reason = NULL;
	}
	if (tlss == NULL) {
		return TSTREAM_TLS_PEER_NO_CERT;
	}
	if (reason != NULL && tlss->verify_result == TSTREAM_TLS_PEER_INVALID) {
		*reason = tlss->verify_reason;
	}
	return tlss->verify_result;
}

_PUBLIC_ int tstream_tls_channel_binding(struct tstream_context *stream,
					 enum tstream_tls_channel_binding type,
					 TALLOC_CTX *mem_ctx,
					 uint8_t **data,
					 size_t *len)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);
	gnutls_channel_binding_t cbtype;
	gnutls_datum_t cb = {NULL, 0};
	int ret;

	if (tlss == NULL || data == NULL || len == NULL) {
		return EINVAL;
	}
	switch (type) {
	case TSTREAM_TLS_CB_EXPORTER:
		cbtype = GNUTLS_CB_TLS_EXPORTER;
		break;
	case TSTREAM_TLS_CB_SERVER_END_POINT:
		cbtype = GNUTLS_CB_TLS_SERVER_END_POINT;
		break;
	default:
		return EINVAL;
	}
	ret = gnutls_session_channel_binding(tlss->session, cbtype, &cb);
	if (ret < 0) {
		return ret == GNUTLS_E_MEMORY_ERROR ? ENOMEM : ENOTSUP;
	}
	*data = talloc_memdup(mem_ctx, cb.data, cb.size);
	*len = cb.size;
	gnutls_free(cb.data);
	if (*data == NULL) {
		return ENOMEM;
	}
	return 0;
}
