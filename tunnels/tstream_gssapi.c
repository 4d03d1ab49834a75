/* SPDX-License-Identifier: MIT */
/*
 * tstream_gssapi: the established stream.
 *
 * Data frames are a 4-byte big-endian length followed by one gss_wrap
 * token with confidentiality (knc 1.x). Reading unwraps each frame in
 * place in a per-stream buffer (gss_unwrap_iov with a STREAM buffer);
 * writing wraps a batch of chunks in place in a per-stream buffer
 * (gss_wrap_iov) and sends the batch with one writev of the plain
 * stream. Neither allocates per frame once the buffers have grown.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tsgate_export.h"
#include "tsocket_internal.h"
#include "tstream_gssapi_stream.h"

static void gssapi_readable_now(struct tevent_context *ev,
				struct tevent_immediate *im,
				void *private_data)
{
	struct tstream_gssapi *g = private_data;
	tstream_readable_handler_t fn = g->readable_fn;

	(void)ev;
	(void)im;
	if (fn == NULL) {
		return;
	}
	g->readable_fn = NULL;
	tstream_set_readable_handler(g->plain_stream, NULL, NULL, NULL);
	/* last: the handler may free this stream */
	fn(g->readable_stream, g->readable_private);
}

/*
 * An error of our own (a failed write or wrap, an expired context) is
 * sticky for both directions, so a readv fails at once now. A readable
 * handler waits on the plain stream, which may never become readable
 * (the peer waits for what we failed to send): call it from the loop
 * instead. Rare enough for an immediate made on demand; without memory
 * the handler keeps waiting on the plain stream.
 */
static void gssapi_wake_reader(struct tstream_gssapi *g)
{
	if (g->readable_fn == NULL) {
		return;
	}
	if (g->readable_im == NULL) {
		g->readable_im = tevent_create_immediate(g);
	}
	if (g->readable_im != NULL) {
		tevent_schedule_immediate(g->readable_im, g->readable_ev,
					  gssapi_readable_now, g);
	}
}

void gssapi_set_error(struct tstream_gssapi *g, int err, char *reason)
{
	if (g->error != 0) {
		talloc_free(reason);
		return;
	}
	g->error = err;
	talloc_free(g->error_reason);
	g->error_reason = reason != NULL ? talloc_steal(g, reason)
					 : talloc_strdup(g, strerror(err));
	gssapi_wake_reader(g);
}

void gssapi_set_gss_error(struct tstream_gssapi *g,
			  const char *what,
			  OM_uint32 major,
			  OM_uint32 minor)
{
	gssapi_set_error(g, tstream_gssapi_map_error(major, minor, false),
			 tstream_gssapi_status_string(g, what, major, minor));
}

/* Context lifetime is ours to enforce: MIT keeps wrapping after it. */
bool gssapi_expired(struct tstream_gssapi *g)
{
	char when[32] = "?";
	struct tm tm;

	if (g->error != 0) {
		return true;
	}
	if (g->expiry == 0 || time(NULL) < g->expiry) {
		return false;
	}
	if (gmtime_r(&g->expiry, &tm) != NULL) {
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	gssapi_set_error(
	    g, EKEYEXPIRED,
	    talloc_asprintf(g, "security context expired at %s", when));
	return true;
}

static ssize_t tstream_gssapi_pending_bytes(struct tstream_context *stream)
{
	struct tstream_gssapi *g =
	    tstream_context_data(stream, struct tstream_gssapi);

	if (g->error != 0) {
		errno = g->error;
		return -1;
	}
	return (ssize_t)g->read.plain_len;
}

/* ------------------------------------------------------------------ */
/* readv                                                               */

struct tstream_gssapi_readv_state {
	struct tevent_context *ev;
	struct tstream_context *stream;
	struct iovec *vector;
	size_t count;
	int ret;
	struct iovec iov;
	uint32_t frame_len;
};

static void tstream_gssapi_readv_next(struct tevent_req *req);
static void gssapi_drain_next(struct tstream_gssapi *g);
static void tstream_gssapi_readv_hdr_done(struct tevent_req *subreq);
static void tstream_gssapi_readv_body_done(struct tevent_req *subreq);

static struct tevent_req *tstream_gssapi_readv_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream,
    struct iovec *vector,
    size_t count)
{
	struct tevent_req *req;
	struct tstream_gssapi_readv_state *state;
	struct tstream_gssapi *g =
	    tstream_context_data(stream, struct tstream_gssapi);

	req = tevent_req_create(mem_ctx, &state,
				struct tstream_gssapi_readv_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->stream = stream;
	/* the generic layer's private copy: ours to advance */
	state->vector = vector;
	state->count = count;

	if (g->error != 0) {
		tevent_req_error(req, g->error);
		return tevent_req_post(req, ev);
	}
	tstream_gssapi_readv_next(req);
	if (!tevent_req_is_in_progress(req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

/* Copy buffered plaintext out; read another frame when it runs dry. */
static void tstream_gssapi_readv_next(struct tevent_req *req)
{
	struct tstream_gssapi_readv_state *state =
	    tevent_req_data(req, struct tstream_gssapi_readv_state);
	struct tstream_gssapi *g =
	    tstream_context_data(state->stream, struct tstream_gssapi);
	struct tevent_req *subreq;

	/* zero-length entries must not make us wait for another frame */
	while (state->count > 0 && state->vector[0].iov_len == 0) {
		state->vector++;
		state->count--;
	}
	while (state->count > 0 && g->read.plain_len > 0) {
		struct iovec *v = &state->vector[0];
		size_t n = v->iov_len < g->read.plain_len ? v->iov_len
							  : g->read.plain_len;

		memcpy(v->iov_base, g->read.plain, n);
		g->read.plain += n;
		g->read.plain_len -= n;
		v->iov_base = (uint8_t *)v->iov_base + n;
		v->iov_len -= n;
		state->ret += (int)n;
		while (state->count > 0 && state->vector[0].iov_len == 0) {
			state->vector++;
			state->count--;
		}
	}
	if (state->count == 0) {
		tevent_req_done(req);
		return;
	}
	if (gssapi_expired(g)) {
		tevent_req_error(req, g->error);
		return;
	}
	if (g->read.eof_err != 0) {
		tevent_req_error(req, g->read.eof_err);
		return;
	}

	state->iov.iov_base = g->read.hdr;
	state->iov.iov_len = sizeof(g->read.hdr);
	subreq = tstream_readv_send(state, state->ev, g->plain_stream,
				    &state->iov, 1);
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, tstream_gssapi_readv_hdr_done, req);
}

static void tstream_gssapi_readv_hdr_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tstream_gssapi_readv_state *state =
	    tevent_req_data(req, struct tstream_gssapi_readv_state);
	struct tstream_gssapi *g =
	    tstream_context_data(state->stream, struct tstream_gssapi);
	uint32_t len;
	int ret, err;

	ret = tstream_readv_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		if (err == EPIPE && !g->strict_eof) {
			/* knc 1.x: a bare FIN ends the stream too */
			g->read.eof_err = EPIPE;
			tevent_req_error(req, EPIPE);
			return;
		}
		if (err == EPIPE) {
			err = ECONNABORTED;
			gssapi_set_error(g, err,
					 talloc_strdup(g,
						       "stream truncated: peer "
						       "closed without the "
						       "authenticated close"));
		} else {
			gssapi_set_error(g, err,
					 talloc_asprintf(g, "reading frame: %s",
							 strerror(err)));
		}
		tevent_req_error(req, g->error);
		return;
	}
	len = get_be32(g->read.hdr);
	if (len == 0 || len > TSTREAM_GSSAPI_MAX_TOKEN) {
		/* refused before allocating anything for it */
		gssapi_set_error(
		    g, EMSGSIZE,
		    talloc_asprintf(g,
				    "frame length %u outside "
				    "1..%u refused",
				    (unsigned)len,
				    (unsigned)TSTREAM_GSSAPI_MAX_TOKEN));
		tevent_req_error(req, g->error);
		return;
	}
	if (g->read.size < len) {
		uint8_t *buf = talloc_realloc(g, g->read.buf, uint8_t, len);

		if (tevent_req_nomem(buf, req)) {
			return;
		}
		g->read.buf = buf;
		g->read.size = len;
	}
	state->frame_len = len;
	state->iov.iov_base = g->read.buf;
	state->iov.iov_len = len;
	subreq = tstream_readv_send(state, state->ev, g->plain_stream,
				    &state->iov, 1);
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, tstream_gssapi_readv_body_done, req);
}

/*
 * Unwrap a frame that is not an RFC 4121 wrap token (token ID 05 04)
 * with gss_unwrap(), the plaintext copied back into the frame buffer.
 * MIT krb5 (1.20) dereferences NULL in gss_unwrap_iov(STREAM) when an
 * RFC 1964 token (ID 01 01, 02 01, ..., with or without the 0x60
 * framing) reaches a context that uses RFC 4121 (AES keys): one frame
 * from any peer crashed the process (found by fuzz-gssapi-data).
 * gss_unwrap() refuses such a token cleanly and still serves peers
 * whose contexts use RFC 1964 tokens (RC4).
 */
static OM_uint32 gssapi_unwrap_copy(struct tstream_gssapi *g,
				    size_t len,
				    OM_uint32 *min,
				    int *conf,
				    gss_buffer_t plain)
{
	gss_buffer_desc in = {.length = len, .value = g->read.buf};
	gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
	OM_uint32 maj, tmp;

	maj = gss_unwrap(min, g->ctx, &in, &out, conf, NULL);
	if (maj == GSS_S_COMPLETE && out.length > len) {
		/* cannot happen: a token is larger than its plaintext */
		maj = GSS_S_FAILURE;
		*min = 0;
	}
	if (maj == GSS_S_COMPLETE) {
		if (out.length > 0) {
			memcpy(g->read.buf, out.value, out.length);
		}
		plain->value = g->read.buf;
		plain->length = out.length;
	}
	gss_release_buffer(&tmp, &out);
	return maj;
}

static void tstream_gssapi_readv_body_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tstream_gssapi_readv_state *state =
	    tevent_req_data(req, struct tstream_gssapi_readv_state);
	struct tstream_gssapi *g =
	    tstream_context_data(state->stream, struct tstream_gssapi);
	gss_iov_buffer_desc iov[2];
	OM_uint32 maj, min;
	int conf = 0;
	gss_qop_t qop = 0;
	int ret, err;

	ret = tstream_readv_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		if (err == EPIPE) {
			gssapi_set_error(
			    g, ECONNABORTED,
			    talloc_asprintf(g,
					    "truncated frame: end of "
					    "stream inside a %u-byte "
					    "token",
					    (unsigned)state->frame_len));
		} else {
			gssapi_set_error(g, err,
					 talloc_asprintf(g, "reading frame: %s",
							 strerror(err)));
		}
		tevent_req_error(req, g->error);
		return;
	}
	/* nothing that arrives after the context's end is delivered */
	if (gssapi_expired(g)) {
		tevent_req_error(req, g->error);
		return;
	}

	iov[0].type = GSS_IOV_BUFFER_TYPE_STREAM;
	iov[0].buffer.value = g->read.buf;
	iov[0].buffer.length = state->frame_len;
	iov[1].type = GSS_IOV_BUFFER_TYPE_DATA;
	iov[1].buffer.value = NULL;
	iov[1].buffer.length = 0;
	if (state->frame_len >= 2 && g->read.buf[0] == 0x05 &&
	    g->read.buf[1] == 0x04) {
		maj = gss_unwrap_iov(&min, g->ctx, &conf, &qop, iov, 2);
	} else {
		maj = gssapi_unwrap_copy(g, state->frame_len, &min, &conf,
					 &iov[1].buffer);
	}
	/*
	 * Anything but a clean GSS_S_COMPLETE is fatal: MIT reports
	 * duplicates, gaps and old tokens as supplementary bits that
	 * GSS_ERROR() does not see.
	 */
	if (maj != GSS_S_COMPLETE) {
		gssapi_set_gss_error(g, "unwrap", maj, min);
		tevent_req_error(req, g->error);
		return;
	}
	if (!conf) {
		gssapi_set_error(g, EPROTO,
				 talloc_strdup(g, "unwrap: frame without "
						  "confidentiality refused"));
		tevent_req_error(req, g->error);
		return;
	}
	if (iov[1].buffer.length == 0) {
		/* wrap("") is the authenticated end of stream */
		g->read.eof_err = EPIPE;
		g->drain.ev = state->ev;
		gssapi_drain_next(g);
		tevent_req_error(req, EPIPE);
		return;
	}
	g->read.plain = iov[1].buffer.value;
	g->read.plain_len = iov[1].buffer.length;
	tstream_gssapi_readv_next(req);
}

/* ------------------------------------------------------------------ */
/* after the peer's end marker                                         */

static void gssapi_drain_done(struct tevent_req *subreq);

void gssapi_drain_stop(struct tstream_gssapi *g)
{
	TALLOC_FREE(g->drain.req);
	TALLOC_FREE(g->drain.buf);
}

/*
 * Read and drop what the peer sends after its wrap("") marker (libknc's
 * and older tsgates' second close frame, wrap("\x00"), say): nothing of
 * it is unwrapped or delivered, but left unread it would make closing
 * this socket reset the connection, and the reset throws away the part
 * of our own direction still queued for the peer (the knc program loses
 * replies that way, see gssapi_close_build()). Stops at the peer's FIN,
 * an error, GSSAPI_DRAIN_MAX bytes, or when this stream closes.
 */
static void gssapi_drain_next(struct tstream_gssapi *g)
{
	ssize_t pending = tstream_pending_bytes(g->plain_stream);
	size_t n;

	if (pending < 0 || g->drain.total >= GSSAPI_DRAIN_MAX) {
		gssapi_drain_stop(g);
		return;
	}
	if (g->drain.buf == NULL) {
		g->drain.buf = talloc_size(g, GSSAPI_DRAIN_BUF);
		if (g->drain.buf == NULL) {
			return;
		}
	}
	/* one byte waits for more (or the FIN); never wait to fill more */
	n = pending == 0                         ? 1
	    : (size_t)pending < GSSAPI_DRAIN_BUF ? (size_t)pending
						 : GSSAPI_DRAIN_BUF;
	g->drain.iov.iov_base = g->drain.buf;
	g->drain.iov.iov_len = n;
	g->drain.req = tstream_readv_send(g, g->drain.ev, g->plain_stream,
					  &g->drain.iov, 1);
	if (g->drain.req == NULL) {
		gssapi_drain_stop(g);
		return;
	}
	tevent_req_set_callback(g->drain.req, gssapi_drain_done, g);
}

static void gssapi_drain_done(struct tevent_req *subreq)
{
	struct tstream_gssapi *g =
	    tevent_req_callback_data(subreq, struct tstream_gssapi);
	int ret, err;

	ret = tstream_readv_recv(subreq, &err);
	TALLOC_FREE(subreq);
	g->drain.req = NULL;
	if (ret == -1) {
		gssapi_drain_stop(g);
		return;
	}
	g->drain.total += (size_t)ret;
	gssapi_drain_next(g);
}

static int tstream_gssapi_readv_recv(struct tevent_req *req, int *perrno)
{
	struct tstream_gssapi_readv_state *state =
	    tevent_req_data(req, struct tstream_gssapi_readv_state);
	int ret = tsocket_simple_int_recv(req, perrno);

	if (ret == 0) {
		ret = state->ret;
	}
	tevent_req_received(req);
	return ret;
}

/* ------------------------------------------------------------------ */
/* writev                                                              */

struct tstream_gssapi_writev_state {
	struct tevent_context *ev;
	struct tstream_context *stream;
	const struct iovec *vector;
	size_t count;
	size_t offset; /* into vector[0] */
	int ret;
	struct iovec iov;
};

static void tstream_gssapi_writev_next(struct tevent_req *req);
static void tstream_gssapi_writev_done(struct tevent_req *subreq);

static struct tevent_req *tstream_gssapi_writev_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream,
    const struct iovec *vector,
    size_t count)
{
	struct tevent_req *req;
	struct tstream_gssapi_writev_state *state;
	struct tstream_gssapi *g =
	    tstream_context_data(stream, struct tstream_gssapi);

	req = tevent_req_create(mem_ctx, &state,
				struct tstream_gssapi_writev_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->stream = stream;
	state->vector = vector;
	state->count = count;

	if (gssapi_expired(g)) {
		tevent_req_error(req, g->error);
		return tevent_req_post(req, ev);
	}
	tstream_gssapi_writev_next(req);
	if (!tevent_req_is_in_progress(req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

/* Gather up to len plaintext bytes from the caller's vector into dst. */
static size_t writev_gather(struct tstream_gssapi_writev_state *state,
			    uint8_t *dst,
			    size_t len)
{
	size_t done = 0;

	while (done < len && state->count > 0) {
		const struct iovec *v = &state->vector[0];
		size_t avail = v->iov_len - state->offset;
		size_t n = avail < len - done ? avail : len - done;

		memcpy(dst + done, (const uint8_t *)v->iov_base + state->offset,
		       n);
		done += n;
		state->offset += n;
		if (state->offset == v->iov_len) {
			state->vector++;
			state->count--;
			state->offset = 0;
		}
	}
	return done;
}

static size_t writev_remaining(const struct tstream_gssapi_writev_state *state)
{
	size_t total = 0;

	for (size_t i = 0; i < state->count; i++) {
		total += state->vector[i].iov_len;
	}
	return total - state->offset;
}

/*
 * Wrap up to GSSAPI_WRITE_BATCH_FRAMES chunks in place in g->write.buf:
 * [len][HEADER|DATA|PADDING|TRAILER] ..., which is byte for byte what
 * gss_wrap() would produce for each chunk.
 */
static void tstream_gssapi_writev_next(struct tevent_req *req)
{
	struct tstream_gssapi_writev_state *state =
	    tevent_req_data(req, struct tstream_gssapi_writev_state);
	struct tstream_gssapi *g =
	    tstream_context_data(state->stream, struct tstream_gssapi);
	size_t remaining = writev_remaining(state);
	size_t used = 0;
	struct tevent_req *subreq;

	if (remaining == 0) {
		if (g->write.size > GSSAPI_WRITE_KEEP) {
			TALLOC_FREE(g->write.buf);
			g->write.size = 0;
		}
		tevent_req_done(req);
		return;
	}
	for (int frame = 0; frame < GSSAPI_WRITE_BATCH_FRAMES && remaining > 0;
	     frame++) {
		size_t chunk =
		    remaining < g->max_chunk ? remaining : g->max_chunk;
		gss_iov_buffer_desc iov[4];
		OM_uint32 maj, min;
		size_t token_len;
		uint8_t *p;
		int conf = 0;

		iov[0].type = GSS_IOV_BUFFER_TYPE_HEADER;
		iov[1].type = GSS_IOV_BUFFER_TYPE_DATA;
		iov[2].type = GSS_IOV_BUFFER_TYPE_PADDING;
		iov[3].type = GSS_IOV_BUFFER_TYPE_TRAILER;
		for (int i = 0; i < 4; i++) {
			iov[i].buffer.value = NULL;
			iov[i].buffer.length = 0;
		}
		iov[1].buffer.length = chunk;
		maj = gss_wrap_iov_length(&min, g->ctx, 1, GSS_C_QOP_DEFAULT,
					  &conf, iov, 4);
		if (maj != GSS_S_COMPLETE) {
			gssapi_set_gss_error(g, "wrap_iov_length", maj, min);
			tevent_req_error(req, g->error);
			return;
		}
		token_len = iov[0].buffer.length + chunk +
			    iov[2].buffer.length + iov[3].buffer.length;
		if (g->write.size < used + GSSAPI_LEN_SIZE + token_len) {
			size_t want = used + GSSAPI_LEN_SIZE + token_len;
			uint8_t *buf;

			if (want < 2 * g->write.size) {
				want = 2 * g->write.size;
			}
			buf = talloc_realloc(g, g->write.buf, uint8_t, want);
			if (tevent_req_nomem(buf, req)) {
				return;
			}
			g->write.buf = buf;
			g->write.size = want;
		}
		p = g->write.buf + used;
		put_be32(p, (uint32_t)token_len);
		p += GSSAPI_LEN_SIZE;
		iov[0].buffer.value = p;
		p += iov[0].buffer.length;
		iov[1].buffer.value = p;
		writev_gather(state, p, chunk);
		p += chunk;
		iov[2].buffer.value = iov[2].buffer.length > 0 ? p : NULL;
		p += iov[2].buffer.length;
		iov[3].buffer.value = iov[3].buffer.length > 0 ? p : NULL;

		maj = gss_wrap_iov(&min, g->ctx, 1, GSS_C_QOP_DEFAULT, &conf,
				   iov, 4);
		if (maj != GSS_S_COMPLETE) {
			gssapi_set_gss_error(g, "wrap", maj, min);
			tevent_req_error(req, g->error);
			return;
		}
		if (!conf) {
			gssapi_set_error(g, EPROTO,
					 talloc_strdup(g, "wrap: no "
							  "confidentiality"));
			tevent_req_error(req, g->error);
			return;
		}
		used += GSSAPI_LEN_SIZE + token_len;
		remaining -= chunk;
		state->ret += (int)chunk;
	}

	state->iov.iov_base = g->write.buf;
	state->iov.iov_len = used;
	subreq = tstream_writev_send(state, state->ev, g->plain_stream,
				     &state->iov, 1);
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, tstream_gssapi_writev_done, req);
}

static void tstream_gssapi_writev_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tstream_gssapi_writev_state *state =
	    tevent_req_data(req, struct tstream_gssapi_writev_state);
	struct tstream_gssapi *g =
	    tstream_context_data(state->stream, struct tstream_gssapi);
	int ret, err;

	ret = tstream_writev_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		gssapi_set_error(
		    g, err,
		    talloc_asprintf(g, "writing frames: %s", strerror(err)));
		tevent_req_error(req, g->error);
		return;
	}
	if (gssapi_expired(g)) {
		tevent_req_error(req, g->error);
		return;
	}
	tstream_gssapi_writev_next(req);
}

static int tstream_gssapi_writev_recv(struct tevent_req *req, int *perrno)
{
	struct tstream_gssapi_writev_state *state =
	    tevent_req_data(req, struct tstream_gssapi_writev_state);
	int ret = tsocket_simple_int_recv(req, perrno);

	if (ret == 0) {
		ret = state->ret;
	}
	tevent_req_received(req);
	return ret;
}

/* The plain stream is readable: so is this one. */
static void tstream_gssapi_plain_readable(struct tstream_context *plain,
					  void *private_data)
{
	struct tstream_context *stream = private_data;
	struct tstream_gssapi *g =
	    tstream_context_data(stream, struct tstream_gssapi);
	tstream_readable_handler_t fn = g->readable_fn;

	(void)plain;
	g->readable_fn = NULL;
	if (fn != NULL) {
		fn(stream, g->readable_private);
	}
}

/*
 * The readable handler (of tstream_set_readable_handler() or of a
 * tstream_wait_readable request): ready at once when a readv has
 * something to work on here (unread plaintext, the end, an error);
 * otherwise a handler on the plain stream, which costs no allocation
 * there nor here.
 */
static int tstream_gssapi_set_readable_handler(
    struct tstream_context *stream,
    struct tevent_context *ev,
    tstream_readable_handler_t handler,
    void *private_data,
    bool *pready)
{
	struct tstream_gssapi *g =
	    tstream_context_data(stream, struct tstream_gssapi);

	if (handler == NULL) {
		TALLOC_FREE(g->readable_im);
		if (g->readable_fn != NULL) {
			g->readable_fn = NULL;
			tstream_set_readable_handler(g->plain_stream, NULL,
						     NULL, NULL);
		}
		return 0;
	}
	if (g->error != 0 || g->read.eof_err != 0 || g->read.plain_len > 0) {
		*pready = true;
		return 0;
	}
	if (tstream_set_readable_handler(g->plain_stream, ev,
					 tstream_gssapi_plain_readable,
					 stream) == -1) {
		return errno;
	}
	g->readable_fn = handler;
	g->readable_private = private_data;
	g->readable_stream = stream;
	g->readable_ev = ev;
	return 0;
}

/* The plain stream resets; freeing the tunnel sends no end marker. */
static int tstream_gssapi_reset(struct tstream_context *stream)
{
	struct tstream_gssapi *g =
	    tstream_context_data(stream, struct tstream_gssapi);

	if (g->plain_stream == NULL) {
		errno = ENOTCONN;
		return -1;
	}
	return tstream_reset(g->plain_stream);
}

static const struct tstream_context_ops tstream_gssapi_ops = {
    .name = "gssapi",
    .pending_bytes = tstream_gssapi_pending_bytes,
    .readv_send = tstream_gssapi_readv_send,
    .readv_recv = tstream_gssapi_readv_recv,
    .writev_send = tstream_gssapi_writev_send,
    .writev_recv = tstream_gssapi_writev_recv,
    .disconnect_send = tstream_gssapi_disconnect_send,
    .disconnect_recv = tstream_gssapi_close_recv,
    .shutdown_send = tstream_gssapi_shutdown_send,
    .shutdown_recv = tstream_gssapi_close_recv,
    .set_readable_handler = tstream_gssapi_set_readable_handler,
    .reset = tstream_gssapi_reset,
};

/* ------------------------------------------------------------------ */
/* creation                                                            */

static int tstream_gssapi_destructor(struct tstream_gssapi *g)
{
	OM_uint32 min;

	/* before the plain stream it reads goes */
	gssapi_drain_stop(g);

	if (g->ctx != GSS_C_NO_CONTEXT) {
		gss_delete_sec_context(&min, &g->ctx, GSS_C_NO_BUFFER);
	}
	if (g->client_name != GSS_C_NO_NAME) {
		gss_release_name(&min, &g->client_name);
	}
	if (g->deleg_cred != GSS_C_NO_CREDENTIAL) {
		gss_release_cred(&min, &g->deleg_cred);
	}
	return 0;
}

static char *display_name(TALLOC_CTX *mem_ctx, gss_name_t name, bool *anonymous)
{
	gss_buffer_desc buf = GSS_C_EMPTY_BUFFER;
	gss_OID type = GSS_C_NO_OID;
	OM_uint32 maj, min;
	char *s;

	maj = gss_display_name(&min, name, &buf, &type);
	if (GSS_ERROR(maj)) {
		return NULL;
	}
	if (anonymous != NULL) {
		*anonymous = type != GSS_C_NO_OID &&
			     gss_oid_equal(type, GSS_C_NT_ANONYMOUS);
	}
	s = talloc_strndup(mem_ctx, buf.value, buf.length);
	gss_release_buffer(&min, &buf);
	return s;
}

int tstream_gssapi_stream_create(TALLOC_CTX *mem_ctx,
				 struct tstream_context *plain_stream,
				 gss_ctx_id_t *ctx,
				 const struct tstream_gssapi_params *params,
				 struct tstream_context **_stream,
				 char **reason)
{
	struct tstream_context *stream;
	struct tstream_gssapi *g;
	gss_name_t src = GSS_C_NO_NAME;
	gss_name_t targ = GSS_C_NO_NAME;
	OM_uint32 lifetime = 0, flags = 0, maj, min, max_input = 0;
	gss_OID mech = GSS_C_NO_OID;
	gss_buffer_desc buf = GSS_C_EMPTY_BUFFER;
	int initiator = 0, open = 0;
	bool anonymous = false;
	int err;

	/*
	 * Made outside mem_ctx (the handshake request's state, a talloc
	 * pool), then moved under it: a stream carved from the pool would
	 * keep the whole pool alive for the connection's life.
	 */
	stream = tstream_context_create(NULL, &tstream_gssapi_ops, &g,
					struct tstream_gssapi, __location__);
	if (stream == NULL) {
		return ENOMEM;
	}
	talloc_steal(mem_ctx, stream);
	g->plain_stream = plain_stream;
	g->ctx = *ctx;
	*ctx = GSS_C_NO_CONTEXT;
	g->client_name = GSS_C_NO_NAME;
	talloc_set_destructor(g, tstream_gssapi_destructor);
	g->strict_eof = params->strict_eof;

	maj = gss_inquire_context(&min, g->ctx, &src, &targ, &lifetime, &mech,
				  &flags, &initiator, &open);
	if (GSS_ERROR(maj) || !open) {
		*reason = tstream_gssapi_status_string(
		    mem_ctx, "inquire_context", maj, min);
		err = GSS_ERROR(maj) ? tstream_gssapi_map_error(maj, min, true)
				     : EPROTO;
		goto fail;
	}
	g->client_name = src;
	src = GSS_C_NO_NAME;
	g->initiator = initiator != 0;
	g->flags = flags;
	if (lifetime != GSS_C_INDEFINITE) {
		g->expiry = time(NULL) + (time_t)lifetime;
	}

	g->client_display = display_name(g, g->client_name, &anonymous);
	g->server_display = display_name(g, targ, NULL);
	if (g->client_display == NULL || g->server_display == NULL) {
		*reason = talloc_strdup(mem_ctx, "cannot display the names");
		err = ENOMEM;
		goto fail;
	}
	if (anonymous) {
		*reason =
		    talloc_strdup(mem_ctx, "anonymous client name refused");
		err = EACCES;
		goto fail;
	}
	err = tstream_gssapi_parse_principal(g, g->client_display,
					     &g->components, &g->num_components,
					     &g->client_realm);
	if (err != 0) {
		*reason = talloc_asprintf(
		    mem_ctx, "client principal '%s' refused: %s",
		    g->client_display,
		    err == EINVAL ? "malformed" : strerror(err));
		err = err == EINVAL ? EACCES : err;
		goto fail;
	}
	maj = gss_export_name(&min, g->client_name, &buf);
	if (GSS_ERROR(maj)) {
		*reason = tstream_gssapi_status_string(mem_ctx, "export_name",
						       maj, min);
		err = EIO;
		goto fail;
	}
	g->exported = talloc_memdup(g, buf.value, buf.length);
	g->exported_len = buf.length;
	gss_release_buffer(&min, &buf);
	if (g->exported == NULL && g->exported_len > 0) {
		err = ENOMEM;
		goto fail;
	}
	g->mech_oid = tstream_gssapi_oid_string(g, mech);
	if (g->mech_oid == NULL) {
		err = ENOMEM;
		goto fail;
	}

	maj = gss_wrap_size_limit(&min, g->ctx, 1, GSS_C_QOP_DEFAULT,
				  TSTREAM_GSSAPI_MAX_CHUNK, &max_input);
	if (GSS_ERROR(maj) || max_input == 0) {
		*reason = tstream_gssapi_status_string(
		    mem_ctx, "wrap_size_limit", maj, min);
		err = EIO;
		goto fail;
	}
	g->max_chunk = max_input;
	if (params->auth_only) {
		/* the data travels on the channel the context is bound to */
		g->plain_stream = NULL;
		g->error = ENOTCONN;
		g->error_reason = talloc_strdup(
		    g, "identity only: the data is not carried by GSSAPI");
	}

	if (targ != GSS_C_NO_NAME) {
		gss_release_name(&min, &targ);
	}
	*_stream = stream;
	return 0;
fail:
	if (src != GSS_C_NO_NAME) {
		gss_release_name(&min, &src);
	}
	if (targ != GSS_C_NO_NAME) {
		gss_release_name(&min, &targ);
	}
	talloc_free(stream);
	return err;
}

void tstream_gssapi_adopt_plain(struct tstream_context *stream)
{
	struct tstream_gssapi *g =
	    tstream_context_data(stream, struct tstream_gssapi);

	talloc_steal(g, g->plain_stream);
}
