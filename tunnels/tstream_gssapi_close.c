/* SPDX-License-Identifier: MIT */
/*
 * tstream_gssapi: the authenticated close. Half-close and disconnect end
 * our direction with one wrap("") marker and a FIN, nothing after them
 * (what a knc 1.x peer needs; docs/protocols.md, end of stream).
 */

#include <errno.h>
#include <string.h>

#include "tstream_gssapi_stream.h"

struct gssapi_close_state {
	struct tevent_context *ev;
	struct tstream_context *stream;
	bool disconnect;     /* else: half-close */
	gss_buffer_desc tok; /* wrap(""), the end marker */
	uint8_t hdr[GSSAPI_LEN_SIZE];
	struct iovec iov[2];
};

static void gssapi_close_tokens_done(struct tevent_req *subreq);
static void gssapi_close_plain_done(struct tevent_req *subreq);

static int gssapi_close_state_destructor(struct gssapi_close_state *state)
{
	OM_uint32 min;

	if (state->tok.value != NULL) {
		gss_release_buffer(&min, &state->tok);
	}
	return 0;
}

static void gssapi_close_plain(struct tevent_req *req);

/*
 * wrap(""): the one end marker, and nothing after it. A knc 1.x peer
 * stops reading at its first end marker (an empty payload or a bare FIN)
 * and later closes; any frame sent after the marker stays unread there,
 * and closing a socket with unread bytes makes its kernel reset the
 * connection, dropping the reply still in flight to us. The marker
 * itself is sent, although knc ends with a bare FIN, so that a strict
 * receiver can tell an authenticated end from a FIN an attacker forged.
 */
static int gssapi_close_build(struct gssapi_close_state *state,
			      struct tstream_gssapi *g)
{
	gss_buffer_desc empty = {.length = 0, .value = NULL};
	OM_uint32 maj, min;
	int conf = 0;

	maj = gss_wrap(&min, g->ctx, 1, GSS_C_QOP_DEFAULT, &empty, &conf,
		       &state->tok);
	if (maj != GSS_S_COMPLETE || !conf) {
		gssapi_set_gss_error(g, "wrap (close)", maj, min);
		return g->error;
	}
	put_be32(state->hdr, (uint32_t)state->tok.length);
	state->iov[0].iov_base = state->hdr;
	state->iov[0].iov_len = GSSAPI_LEN_SIZE;
	state->iov[1].iov_base = state->tok.value;
	state->iov[1].iov_len = state->tok.length;
	return 0;
}

static struct tevent_req *gssapi_close_send(TALLOC_CTX *mem_ctx,
					    struct tevent_context *ev,
					    struct tstream_context *stream,
					    bool disconnect)
{
	struct tevent_req *req;
	struct tevent_req *subreq;
	struct gssapi_close_state *state;
	struct tstream_gssapi *g =
	    tstream_context_data(stream, struct tstream_gssapi);
	int err;

	req = tevent_req_create(mem_ctx, &state, struct gssapi_close_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->stream = stream;
	state->disconnect = disconnect;
	talloc_set_destructor(state, gssapi_close_state_destructor);

	/*
	 * A disconnect after a half-close, or of a failed stream, only
	 * closes the plain stream.
	 */
	if (disconnect && (g->error != 0 || g->write_shut)) {
		gssapi_close_plain(req);
		if (!tevent_req_is_in_progress(req)) {
			return tevent_req_post(req, ev);
		}
		return req;
	}
	if (!disconnect && gssapi_expired(g)) {
		tevent_req_error(req, g->error);
		return tevent_req_post(req, ev);
	}
	g->write_shut = true;
	err = gssapi_close_build(state, g);
	if (err != 0) {
		if (disconnect) {
			gssapi_close_plain(req);
			if (!tevent_req_is_in_progress(req)) {
				return tevent_req_post(req, ev);
			}
			return req;
		}
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	subreq = tstream_writev_send(state, ev, g->plain_stream, state->iov, 2);
	if (tevent_req_nomem(subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(subreq, gssapi_close_tokens_done, req);
	return req;
}

static void gssapi_close_tokens_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct gssapi_close_state *state =
	    tevent_req_data(req, struct gssapi_close_state);
	struct tstream_gssapi *g =
	    tstream_context_data(state->stream, struct tstream_gssapi);
	int ret, err;

	ret = tstream_writev_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		gssapi_set_error(
		    g, err,
		    talloc_asprintf(g, "sending the authenticated close: %s",
				    strerror(err)));
		if (!state->disconnect) {
			tevent_req_error(req, err);
			return;
		}
	}
	gssapi_close_plain(req);
}

static void gssapi_close_plain(struct tevent_req *req)
{
	struct gssapi_close_state *state =
	    tevent_req_data(req, struct gssapi_close_state);
	struct tstream_gssapi *g =
	    tstream_context_data(state->stream, struct tstream_gssapi);
	struct tevent_req *subreq;

	if (g->plain_stream == NULL) {
		/* an identity of tstream_gssapi_auth_recv(): nothing to close
		 */
		tevent_req_done(req);
		return;
	}
	if (state->disconnect) {
		/* a disconnect is refused (EBUSY) with a read in flight */
		gssapi_drain_stop(g);
		subreq =
		    tstream_disconnect_send(state, state->ev, g->plain_stream);
	} else {
		subreq =
		    tstream_shutdown_send(state, state->ev, g->plain_stream);
	}
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, gssapi_close_plain_done, req);
}

static void gssapi_close_plain_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct gssapi_close_state *state =
	    tevent_req_data(req, struct gssapi_close_state);
	int ret, err = 0;

	if (state->disconnect) {
		ret = tstream_disconnect_recv(subreq, &err);
	} else {
		ret = tstream_shutdown_recv(subreq, &err);
		/*
		 * The end marker is written: that is what tells the peer.
		 * A knc peer that has finished its own direction may have
		 * closed before we shut TCP's writing side: nothing is
		 * lost then.
		 */
		if (ret == -1 && (err == EOPNOTSUPP || err == ENOTCONN ||
				  err == ECONNRESET || err == EPIPE)) {
			ret = 0;
		}
	}
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	tevent_req_done(req);
}

struct tevent_req *tstream_gssapi_shutdown_send(TALLOC_CTX *mem_ctx,
						struct tevent_context *ev,
						struct tstream_context *stream)
{
	return gssapi_close_send(mem_ctx, ev, stream, false);
}

struct tevent_req *tstream_gssapi_disconnect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream)
{
	return gssapi_close_send(mem_ctx, ev, stream, true);
}

int tstream_gssapi_close_recv(struct tevent_req *req, int *perrno)
{
	int ret = tsocket_simple_int_recv(req, perrno);

	tevent_req_received(req);
	return ret;
}
