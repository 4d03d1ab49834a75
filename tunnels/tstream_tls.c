/* SPDX-License-Identifier: MIT */
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
/* Decrypt ahead while less than this much plaintext is queued ... */
#define TLS_AHEAD_MAX (4 * TLS_RECORD_MAX)
/* ... and fewer records than this (small records count as well). */
#define TLS_AHEAD_RECORDS 8
/* TLS record header: type, version, length */
#define TLS_HEADER_SIZE 5

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

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
static void tstream_tls_read_step(struct tstream_tls *tlss);
static void tstream_tls_write_step(struct tstream_tls *tlss);
static void tstream_tls_close_step(struct tstream_tls *tlss);

/* Map a request's end state to an errno (one place for every _recv). */
int tstream_tls_req_error(struct tevent_req *req, int *perrno)
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
void tstream_tls_fail_req(struct tevent_req *req, int err)
{
	if (req != NULL && tevent_req_is_in_progress(req)) {
		tevent_req_error(req, err);
	}
}

void tstream_tls_done_req(struct tevent_req *req)
{
	if (req != NULL && tevent_req_is_in_progress(req)) {
		tevent_req_done(req);
	}
}

/*
 * Remember the first fatal error and fail whatever is outstanding with
 * it (the callbacks are deferred, so this is safe anywhere).
 */
void tstream_tls_set_error(struct tstream_tls *tlss, int err)
{
	if (tlss->error == 0) {
		tlss->error = err;
	}
	tstream_tls_fail_req(tlss->read_req, tlss->error);
	tstream_tls_fail_req(tlss->write_req, tlss->error);
	tstream_tls_fail_req(tlss->close_req, tlss->error);
}

bool tstream_tls_alert_is_about_cert(gnutls_alert_description_t a)
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

/*
 * Map a fatal GnuTLS result of record I/O to an errno that says what
 * happened, and keep the GnuTLS result for tstream_tls_error_reason().
 * An error of the plain stream (our push or pull failed) is already in
 * tlss->error: GnuTLS's PUSH/PULL_ERROR then stands for that errno.
 */
static int tstream_tls_map_error(struct tstream_tls *tlss, int ret)
{
	if (tlss->error != 0) {
		return tlss->error;
	}
	tlss->gnutls_error = ret;
	switch (ret) {
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		/* NULL when out of memory: the reason is GnuTLS's text */
		tlss->alert_reason = talloc_asprintf(
		    tlss, "peer sent fatal alert: %s",
		    gnutls_alert_get_name(gnutls_alert_get(tlss->session)));
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
	case GNUTLS_E_INVALID_SESSION:
		/*
		 * An earlier fatal event invalidated the session. The only
		 * one not already in tlss->error is the peer's end without
		 * close_notify (read as a truncated end of stream): GnuTLS
		 * sends nothing after it, so a write then finds the peer
		 * gone, not a protocol error: a reset, since what we had for
		 * it is lost (EPIPE would end a relay direction cleanly).
		 */
		return tlss->pull.eof ? ECONNRESET : EPROTO;
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR:
		return tlss->pull.eof ? EPIPE : EIO;
	default:
		/*
		 * A record that fails its check, an unexpected message: the
		 * peer broke the protocol (tstream_tls_error_reason() says
		 * how).
		 */
		return EPROTO;
	}
}

/*
 * GnuTLS transport
 */

bool tstream_tls_push_reserve(struct tstream_tls *tlss, size_t total)
{
	size_t need = tlss->push.fill_len + total;

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
			 * A record that could not be queued is lost: the
			 * stream is broken, and says why (else the
			 * GNUTLS_E_PUSH_ERROR maps to EIO, and a close_notify
			 * that never left looks like a peer that went away).
			 */
			tstream_tls_set_error(tlss, ENOMEM);
			return false;
		}
		tlss->push.fill = buf;
		tlss->push.fill_cap = cap;
	}
	return true;
}

ssize_t tstream_tls_push(gnutls_transport_ptr_t ptr,
			 const giovec_t *iov,
			 int iovcnt)
{
	struct tstream_tls *tlss = ptr;
	size_t total = 0;
	int i;

	if (tlss->error != 0) {
		gnutls_transport_set_errno(tlss->session, tlss->error);
		return -1;
	}
	for (i = 0; i < iovcnt; i++) {
		total += iov[i].iov_len;
	}
	if (!tstream_tls_push_reserve(tlss, total)) {
		gnutls_transport_set_errno(tlss->session, ENOMEM);
		return -1;
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
void tstream_tls_release_idle(struct tstream_tls *tlss)
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
	    tlss->r13_dec_ofs == tlss->r13_dec_end && tlss->pull.big != NULL) {
		TALLOC_FREE(tlss->pull.big);
		tlss->pull.big_cap = 0;
		tlss->pull.data = tlss->pull.small;
		tlss->pull.ofs = 0;
		tlss->pull.len = 0;
		tlss->r13_dec_ofs = 0;
		tlss->r13_dec_end = 0;
	}
	if (tlss->r13_on) {
		tstream_tls_r13_idle(tlss);
	}
}

static void tstream_tls_push_done(struct tevent_req *subreq);

/* Send the queued records with one plain writev, unless one is running. */
void tstream_tls_flush(struct tstream_tls *tlss)
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

/*
 * Our record layer reads on after the keep bytes of a record cut short,
 * which move to the start of the buffer: want more bytes at least, or
 * everything already waiting.
 */
void tstream_tls_pull_start_at(struct tstream_tls *tlss,
			       size_t keep,
			       size_t want)
{
	ssize_t pending = tstream_pending_bytes(tlss->plain_stream);
	size_t cap = TLS_IN_MAX;
	size_t n = want;
	uint8_t *old = tlss->pull.data + tlss->pull.ofs;

	if (pending > 0 && (size_t)pending > n) {
		n = (size_t)pending;
	}
	if (keep + n > cap) {
		n = cap > keep + want ? cap - keep : want;
	}
	if (keep + n <= TLS_IN_SMALL && tlss->pull.data == tlss->pull.small) {
		memmove(tlss->pull.small, old, keep);
	} else if (tlss->pull.data == tlss->pull.big &&
		   tlss->pull.big_cap >= keep + n) {
		memmove(tlss->pull.big, old, keep);
		old = NULL; /* stays the big buffer */
	} else {
		size_t size = (keep + n + 4095) & ~(size_t)4095;
		uint8_t *big = talloc_size(tlss, size);

		if (big == NULL) {
			tstream_tls_set_error(tlss, ENOMEM);
			return;
		}
		memcpy(big, old, keep);
		TALLOC_FREE(tlss->pull.big);
		tlss->pull.big = big;
		tlss->pull.big_cap = size;
		old = NULL;
	}
	/* old is still set only when the small buffer is used */
	tlss->pull.data = old != NULL ? tlss->pull.small : tlss->pull.big;
	tlss->pull.ofs = 0;
	tlss->pull.len = keep;
	tlss->r13_dec_ofs = 0;
	tlss->r13_dec_end = 0;
	tlss->pull.iov.iov_base = tlss->pull.data + keep;
	tlss->pull.iov.iov_len = n;
	tlss->pull.subreq = tstream_readv_send(
	    tlss, tlss->ev, tlss->plain_stream, &tlss->pull.iov, 1);
	if (tlss->pull.subreq == NULL) {
		tstream_tls_set_error(tlss, ENOMEM);
		return;
	}
	tevent_req_set_callback(tlss->pull.subreq, tstream_tls_pull_done, tlss);
}

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

ssize_t tstream_tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t size)
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
		if (tlss->r13_secrets != NULL) {
			tstream_tls_r13_track(tlss, data, n);
		}
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
		/* after the bytes kept of a record cut short (r13) */
		tlss->pull.len += (size_t)ret;
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

int tstream_tls_destructor(struct tstream_tls *tlss)
{
	tstream_tls_ahead_drop(tlss);
	/* plain sub-requests first, while the plain stream exists */
	TALLOC_FREE(tlss->pull.subreq);
	TALLOC_FREE(tlss->push.subreq);
	TALLOC_FREE(tlss->plain_stream);
	tstream_tls_r13_free(tlss);
	if (tlss->session != NULL) {
		gnutls_deinit(tlss->session);
		tlss->session = NULL;
	}
	/* after gnutls_deinit: the session used their credentials */
	tstream_tls_params_release(&tlss->params_hold);
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
	if (tlss->r13_on) {
		if (tlss->read_req == NULL) {
			tstream_tls_r13_fill(tlss);
			tstream_tls_flush(tlss);
		}
		return (ssize_t)(tlss->r13_dec_end - tlss->r13_dec_ofs);
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

/* The read step once our record layer runs the records. */
static void tstream_tls_read_step_r13(struct tstream_tls *tlss,
				      struct tevent_req *req,
				      struct tstream_tls_io_state *state)
{
	while (state->count > 0) {
		size_t avail = tlss->r13_dec_end - tlss->r13_dec_ofs;

		if (tlss->error != 0) {
			tstream_tls_fail_req(req, tlss->error);
			return;
		}
		if (avail > 0) {
			size_t n = state->vector[0].iov_len;

			if (n > avail) {
				n = avail;
			}
			memcpy(state->vector[0].iov_base,
			       tlss->pull.data + tlss->r13_dec_ofs, n);
			tlss->r13_dec_ofs += n;
			tstream_tls_io_advance(state, n);
			continue;
		}
		if (tlss->r13_stop != 0) {
			/* what ended reading, after the data before it */
			tstream_tls_set_error(tlss, tlss->r13_stop);
			continue;
		}
		if (tlss->read_eof) {
			tstream_tls_fail_req(req, tstream_tls_eof_errno(tlss));
			return;
		}
		if (tstream_tls_r13_fill(tlss)) {
			/* a KeyUpdate answer or an alert may be queued */
			tstream_tls_flush(tlss);
			continue;
		}
		if (tlss->pull.subreq != NULL) {
			return;
		}
		if (tlss->pull.eof) {
			/* no close_notify, maybe a record cut short */
			tlss->read_eof = true;
			tlss->truncated = true;
			continue;
		}
		tstream_tls_r13_pull(tlss);
		if (tlss->error == 0) {
			return;
		}
	}
	tstream_tls_release_idle(tlss);
	tstream_tls_done_req(req);
}

static void tstream_tls_read_step(struct tstream_tls *tlss)
{
	struct tevent_req *req = tlss->read_req;
	struct tstream_tls_io_state *state =
	    tevent_req_data(req, struct tstream_tls_io_state);
	unsigned spins = 0;
	size_t avail;
	ssize_t ret;

	/* whatever was queued while decrypting ahead goes out now */
	tstream_tls_flush(tlss);
	if (tlss->r13_on) {
		tstream_tls_read_step_r13(tlss, req, state);
		return;
	}
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
		if (tlss->r13_on && tlss->read_eof && tlss->truncated) {
			/*
			 * As GnuTLS does after a bare end: the session is
			 * over, a write finds the peer gone.
			 */
			tlss->gnutls_error = GNUTLS_E_INVALID_SESSION;
			tstream_tls_set_error(tlss, ECONNRESET);
			return;
		}
		if (tlss->r13_on) {
			size_t taken = 0;
			int err = tstream_tls_r13_seal(tlss, state->vector,
						       state->count, &taken);

			if (err != 0) {
				tstream_tls_set_error(tlss, err);
				return;
			}
			tstream_tls_io_advance(state, taken);
			continue;
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
	if (!state->bye_sent && !tlss->write_shut && tlss->r13_on) {
		ret = tstream_tls_r13_close_notify(tlss);
		if (ret != 0) {
			tstream_tls_set_error(tlss, ret);
			return;
		}
		tlss->write_shut = true;
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
		tstream_tls_pending_bytes(stream) != 0 || tlss->ahead_stopped ||
		tlss->r13_stop != 0;
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

/* The plain stream resets; freeing a TLS stream sends no close_notify. */
static int tstream_tls_reset(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_of(stream);

	if (tlss->plain_stream == NULL) {
		errno = ENOTCONN;
		return -1;
	}
	return tstream_reset(tlss->plain_stream);
}

const struct tstream_context_ops tstream_tls_ops = {
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
    .reset = tstream_tls_reset,
};
