/* SPDX-License-Identifier: MIT */
/*
 * tsocket helpers: tevent_queue wrappers that serialize many PDU reads,
 * writes or datagram sends on one context. (tstream_readv_pdu itself is
 * in tsocket_stream.c: it works on the stream's readv slot and ops
 * directly.)
 *
 * Queue helpers hold their queue entry in their state and drop it as soon
 * as they finish (cleanup function), so the next entry starts without
 * waiting for the caller to free the finished request. Freeing a waiting
 * request removes its entry; the others keep their order.
 */

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>
#include <tevent.h>

#include "tsgate_export.h"
#include "tsocket_internal.h"

/* Same limit as the generic layer's readv/writev. */
#define TSOCKET_HELPERS_MAX_IOVEC 1024

/*
 * tstream_readv_pdu_queue: tstream_readv_pdu_send() when our turn comes.
 */

struct tstream_readv_pdu_queue_state {
	struct tevent_context *ev;
	struct tstream_context *stream;
	tstream_readv_pdu_next_vector_t next_vector_fn;
	void *next_vector_private;
	struct tevent_queue_entry *queue_entry;
	struct tevent_req *subreq;
	int ret;
};

static void tstream_readv_pdu_queue_trigger(struct tevent_req *req,
					    void *private_data);
static void tstream_readv_pdu_queue_done(struct tevent_req *subreq);
static void tstream_readv_pdu_queue_cleanup(struct tevent_req *req,
					    enum tevent_req_state req_state);

_PUBLIC_ struct tevent_req *tstream_readv_pdu_queue_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream,
    struct tevent_queue *queue,
    tstream_readv_pdu_next_vector_t next_vector_fn,
    void *next_vector_private)
{
	struct tevent_req *req;
	struct tstream_readv_pdu_queue_state *state;

	req = tevent_req_create(mem_ctx, &state,
				struct tstream_readv_pdu_queue_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->stream = stream;
	state->next_vector_fn = next_vector_fn;
	state->next_vector_private = next_vector_private;
	state->ret = -1;

	tevent_req_set_cleanup_fn(req, tstream_readv_pdu_queue_cleanup);

	state->queue_entry = tevent_queue_add_entry(
	    queue, ev, req, tstream_readv_pdu_queue_trigger, NULL);
	if (tevent_req_nomem(state->queue_entry, req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

static void tstream_readv_pdu_queue_cleanup(struct tevent_req *req,
					    enum tevent_req_state req_state)
{
	struct tstream_readv_pdu_queue_state *state =
	    tevent_req_data(req, struct tstream_readv_pdu_queue_state);

	/*
	 * Let the next entry run as soon as we are finished; if we were
	 * finished from outside (endtime), stop our I/O first so the next
	 * one does not meet it (EBUSY).
	 */
	TALLOC_FREE(state->subreq);
	TALLOC_FREE(state->queue_entry);
}

static void tstream_readv_pdu_queue_trigger(struct tevent_req *req,
					    void *private_data)
{
	struct tstream_readv_pdu_queue_state *state =
	    tevent_req_data(req, struct tstream_readv_pdu_queue_state);
	struct tevent_req *subreq;

	subreq = tstream_readv_pdu_send(state, state->ev, state->stream,
					state->next_vector_fn,
					state->next_vector_private);
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	state->subreq = subreq;
	tevent_req_set_callback(subreq, tstream_readv_pdu_queue_done, req);
}

static void tstream_readv_pdu_queue_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tstream_readv_pdu_queue_state *state =
	    tevent_req_data(req, struct tstream_readv_pdu_queue_state);
	int ret;
	int err = 0;

	ret = tstream_readv_pdu_recv(subreq, &err);
	state->subreq = NULL;
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	state->ret = ret;
	tevent_req_done(req);
}

_PUBLIC_ int tstream_readv_pdu_queue_recv(struct tevent_req *req, int *perrno)
{
	struct tstream_readv_pdu_queue_state *state =
	    tevent_req_data(req, struct tstream_readv_pdu_queue_state);
	int ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		ret = state->ret;
	}

	tevent_req_received(req);
	return ret;
}

/*
 * tstream_writev_queue: tstream_writev_send() when our turn comes. The
 * vector is copied now, since the caller's may be gone by then.
 */

struct tstream_writev_queue_state {
	struct tevent_context *ev;
	struct tstream_context *stream;
	struct iovec *vector;
	size_t count;
	struct tevent_queue_entry *queue_entry;
	struct tevent_req *subreq;
	int ret;
};

static void tstream_writev_queue_trigger(struct tevent_req *req,
					 void *private_data);
static void tstream_writev_queue_done(struct tevent_req *subreq);
static void tstream_writev_queue_cleanup(struct tevent_req *req,
					 enum tevent_req_state req_state);

_PUBLIC_ struct tevent_req *tstream_writev_queue_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream,
    struct tevent_queue *queue,
    const struct iovec *vector,
    size_t count)
{
	struct tevent_req *req;
	struct tstream_writev_queue_state *state;

	req = tevent_req_create(mem_ctx, &state,
				struct tstream_writev_queue_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->stream = stream;
	state->count = count;
	state->ret = -1;

	/* Checked again by tstream_writev_send(); here to bound the copy. */
	if (count == 0) {
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}
	if (count > TSOCKET_HELPERS_MAX_IOVEC) {
		tevent_req_error(req, EMSGSIZE);
		return tevent_req_post(req, ev);
	}
	state->vector = talloc_memdup(state, vector, count * sizeof(*vector));
	if (tevent_req_nomem(state->vector, req)) {
		return tevent_req_post(req, ev);
	}

	tevent_req_set_cleanup_fn(req, tstream_writev_queue_cleanup);

	state->queue_entry = tevent_queue_add_entry(
	    queue, ev, req, tstream_writev_queue_trigger, NULL);
	if (tevent_req_nomem(state->queue_entry, req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

static void tstream_writev_queue_cleanup(struct tevent_req *req,
					 enum tevent_req_state req_state)
{
	struct tstream_writev_queue_state *state =
	    tevent_req_data(req, struct tstream_writev_queue_state);

	TALLOC_FREE(state->subreq);
	TALLOC_FREE(state->queue_entry);
}

static void tstream_writev_queue_trigger(struct tevent_req *req,
					 void *private_data)
{
	struct tstream_writev_queue_state *state =
	    tevent_req_data(req, struct tstream_writev_queue_state);
	struct tevent_req *subreq;

	subreq = tstream_writev_send(state, state->ev, state->stream,
				     state->vector, state->count);
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	state->subreq = subreq;
	tevent_req_set_callback(subreq, tstream_writev_queue_done, req);
}

static void tstream_writev_queue_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tstream_writev_queue_state *state =
	    tevent_req_data(req, struct tstream_writev_queue_state);
	int ret;
	int err = 0;

	ret = tstream_writev_recv(subreq, &err);
	state->subreq = NULL;
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	state->ret = ret;
	tevent_req_done(req);
}

_PUBLIC_ int tstream_writev_queue_recv(struct tevent_req *req, int *perrno)
{
	struct tstream_writev_queue_state *state =
	    tevent_req_data(req, struct tstream_writev_queue_state);
	int ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		ret = state->ret;
	}

	tevent_req_received(req);
	return ret;
}

/*
 * tdgram_sendto_queue: tdgram_sendto_send() when our turn comes. Like
 * tdgram_sendto_send(), buf (and dst) must stay valid until completion.
 */

struct tdgram_sendto_queue_state {
	struct tevent_context *ev;
	struct tdgram_context *dgram;
	const uint8_t *buf;
	size_t len;
	const struct tsocket_address *dst;
	struct tevent_queue_entry *queue_entry;
	struct tevent_req *subreq;
	ssize_t ret;
};

static void tdgram_sendto_queue_trigger(struct tevent_req *req,
					void *private_data);
static void tdgram_sendto_queue_done(struct tevent_req *subreq);
static void tdgram_sendto_queue_cleanup(struct tevent_req *req,
					enum tevent_req_state req_state);

_PUBLIC_ struct tevent_req *tdgram_sendto_queue_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tdgram_context *dgram,
    struct tevent_queue *queue,
    const uint8_t *buf,
    size_t len,
    struct tsocket_address *dst)
{
	struct tevent_req *req;
	struct tdgram_sendto_queue_state *state;

	req = tevent_req_create(mem_ctx, &state,
				struct tdgram_sendto_queue_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->dgram = dgram;
	state->buf = buf;
	state->len = len;
	state->dst = dst;
	state->ret = -1;

	if (len == 0 || buf == NULL) {
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}

	tevent_req_set_cleanup_fn(req, tdgram_sendto_queue_cleanup);

	state->queue_entry = tevent_queue_add_entry(
	    queue, ev, req, tdgram_sendto_queue_trigger, NULL);
	if (tevent_req_nomem(state->queue_entry, req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

static void tdgram_sendto_queue_cleanup(struct tevent_req *req,
					enum tevent_req_state req_state)
{
	struct tdgram_sendto_queue_state *state =
	    tevent_req_data(req, struct tdgram_sendto_queue_state);

	TALLOC_FREE(state->subreq);
	TALLOC_FREE(state->queue_entry);
}

static void tdgram_sendto_queue_trigger(struct tevent_req *req,
					void *private_data)
{
	struct tdgram_sendto_queue_state *state =
	    tevent_req_data(req, struct tdgram_sendto_queue_state);
	struct tevent_req *subreq;

	subreq = tdgram_sendto_send(state, state->ev, state->dgram, state->buf,
				    state->len, state->dst);
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	state->subreq = subreq;
	tevent_req_set_callback(subreq, tdgram_sendto_queue_done, req);
}

static void tdgram_sendto_queue_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tdgram_sendto_queue_state *state =
	    tevent_req_data(req, struct tdgram_sendto_queue_state);
	ssize_t ret;
	int err = 0;

	ret = tdgram_sendto_recv(subreq, &err);
	state->subreq = NULL;
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	state->ret = ret;
	tevent_req_done(req);
}

_PUBLIC_ ssize_t tdgram_sendto_queue_recv(struct tevent_req *req, int *perrno)
{
	struct tdgram_sendto_queue_state *state =
	    tevent_req_data(req, struct tdgram_sendto_queue_state);
	ssize_t ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		ret = state->ret;
	}

	tevent_req_received(req);
	return ret;
}
