/* SPDX-License-Identifier: MIT */
/*
 * tsocket — the generic layer of datagram contexts: the guards and the
 * bookkeeping in front of a datagram type's ops (see tsocket.c for the
 * rules every context follows).
 */

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <tevent.h>

#include "tsgate_export.h"
#include "tsocket_internal.h"
#include "tsocket_private.h"

/*
 * tdgram_context
 */

struct tdgram_context {
	const char *location;
	const struct tdgram_context_ops *ops;
	void *private_data;

	struct tevent_req *recvfrom_req;
	struct tevent_req *sendto_req;
	struct tevent_req *disconnect_req;
	bool disconnected;
	struct tsocket_ev_watch watch;

	/* see _tdgram_context_set_try() */
	tdgram_try_recvfrom_fn try_recvfrom;
	tdgram_try_sendto_fn try_sendto;
	struct tevent_immediate *recvfrom_im;
	struct tevent_immediate *sendto_im;
};

/* What the context destructor needs to detach any generic request. */
struct tdgram_req_common {
	struct tevent_context *ev;
	struct tdgram_context *dgram;
	struct tevent_req *subreq;
	/* a finish scheduled on the context's immediate *pim, with err */
	struct tevent_immediate **pim;
	int err;
};

static int tdgram_context_destructor(struct tdgram_context *dgram);

_PUBLIC_ struct tdgram_context *_tdgram_context_create(
    TALLOC_CTX *mem_ctx,
    const struct tdgram_context_ops *ops,
    void *pstate,
    size_t psize,
    const char *type,
    const char *location)
{
	void **ppstate = (void **)pstate;
	struct tdgram_context *dgram;

	dgram = talloc_zero(mem_ctx, struct tdgram_context);
	if (dgram == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	dgram->location = location;
	dgram->ops = ops;
	dgram->private_data = talloc_zero_size(dgram, psize);
	if (dgram->private_data == NULL) {
		talloc_free(dgram);
		errno = ENOMEM;
		return NULL;
	}
	talloc_set_name_const(dgram->private_data, type);
	talloc_set_destructor(dgram, tdgram_context_destructor);

	*ppstate = dgram->private_data;
	return dgram;
}

_PUBLIC_ void *_tdgram_context_data(struct tdgram_context *dgram)
{
	return dgram->private_data;
}

void _tdgram_context_set_try(struct tdgram_context *dgram,
			     tdgram_try_recvfrom_fn try_recvfrom,
			     tdgram_try_sendto_fn try_sendto)
{
	dgram->try_recvfrom = try_recvfrom;
	dgram->try_sendto = try_sendto;
}

/* As tstream_fast_ready(). */
static bool tdgram_fast_ready(struct tdgram_context *dgram,
			      struct tevent_immediate **pim)
{
	if (*pim == NULL) {
		*pim = tevent_create_immediate(dgram);
	}
	return *pim != NULL;
}

static void tdgram_finish_now(struct tevent_context *ev,
			      struct tevent_immediate *im,
			      void *private_data)
{
	struct tevent_req *req = private_data;
	struct tdgram_req_common *c = _tevent_req_data(req);

	c->pim = NULL;
	if (c->err != 0) {
		tevent_req_error(req, c->err);
		return;
	}
	tevent_req_done(req);
}

/* As tstream_finish_later(). */
static void tdgram_finish_later(struct tevent_req *req,
				struct tdgram_req_common *c,
				struct tevent_immediate **pim,
				int err)
{
	c->err = err;
	c->pim = pim;
	tevent_schedule_immediate(*pim, c->ev, tdgram_finish_now, req);
}

static void tdgram_detach(struct tdgram_context *dgram,
			  struct tevent_req **preq)
{
	struct tevent_req *req = *preq;
	struct tdgram_req_common *c;

	if (req == NULL) {
		return;
	}
	*preq = NULL;

	/* Every generic dgram state starts with its common part. */
	c = (struct tdgram_req_common *)_tevent_req_data(req);
	c->dgram = NULL;
	TALLOC_FREE(c->subreq);
	tsocket_orphan_req(req, c->ev, &dgram->watch);
}

static int tdgram_context_destructor(struct tdgram_context *dgram)
{
	tdgram_detach(dgram, &dgram->recvfrom_req);
	tdgram_detach(dgram, &dgram->sendto_req);
	tdgram_detach(dgram, &dgram->disconnect_req);
	tsocket_ev_unwatch(&dgram->watch);
	return 0;
}

/* Forget an outstanding request once it is finished or freed. */
static void tdgram_forget(struct tdgram_req_common *c, struct tevent_req *req)
{
	if (c->dgram == NULL) {
		return;
	}
	if (c->dgram->recvfrom_req == req) {
		c->dgram->recvfrom_req = NULL;
	}
	if (c->dgram->sendto_req == req) {
		c->dgram->sendto_req = NULL;
	}
	if (c->dgram->disconnect_req == req) {
		c->dgram->disconnect_req = NULL;
	}
	c->dgram = NULL;
}

static void tdgram_req_cleanup(struct tevent_req *req,
			       enum tevent_req_state req_state)
{
	struct tdgram_req_common *c =
	    (struct tdgram_req_common *)_tevent_req_data(req);

	/*
	 * Called for done/error as well as when the request is freed. A
	 * request finished from outside (tevent_req_set_endtime) still has
	 * its sub-request: drop it before the slot is free again, so the
	 * implementation never sees two at once.
	 */
	if (c != NULL) {
		TALLOC_FREE(c->subreq);
		if (c->pim != NULL && c->dgram != NULL) {
			/* finished early: drop the scheduled finish */
			TALLOC_FREE(*c->pim);
		}
		c->pim = NULL;
		tdgram_forget(c, req);
	}
}

/* Make req the context's outstanding request in *slot. */
static bool tdgram_register(struct tdgram_context *dgram,
			    struct tevent_req **slot,
			    struct tevent_req *req,
			    struct tdgram_req_common *c)
{
	if (!tsocket_ev_watch(&dgram->watch, c->ev)) {
		tevent_req_oom(req);
		return false;
	}
	c->dgram = dgram;
	*slot = req;
	tevent_req_set_cleanup_fn(req, tdgram_req_cleanup);
	return true;
}

struct tdgram_recvfrom_state {
	struct tdgram_req_common c;
	uint8_t *buf;
	size_t len;
	struct tsocket_address *src;
};

/*
 * The guard both datagram request starts share: ENOTCONN once a
 * disconnect is under way or done, EBUSY while the direction's slot
 * (slot_req) is taken. 0: go.
 */
static int tdgram_guard(const struct tdgram_context *dgram,
			const struct tevent_req *slot_req)
{
	if (dgram->disconnected || dgram->disconnect_req != NULL) {
		return ENOTCONN;
	}
	if (slot_req != NULL) {
		return EBUSY;
	}
	return 0;
}

static void tdgram_recvfrom_done(struct tevent_req *subreq);

_PUBLIC_ struct tevent_req *tdgram_recvfrom_send(TALLOC_CTX *mem_ctx,
						 struct tevent_context *ev,
						 struct tdgram_context *dgram)
{
	struct tevent_req *req;
	struct tdgram_recvfrom_state *state;
	int err;

	req = tevent_req_create(mem_ctx, &state, struct tdgram_recvfrom_state);
	if (req == NULL) {
		return NULL;
	}
	state->c.ev = ev;

	err = tdgram_guard(dgram, dgram->recvfrom_req);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}

	if (!tdgram_register(dgram, &dgram->recvfrom_req, req, &state->c)) {
		return tevent_req_post(req, ev);
	}

	if (dgram->try_recvfrom != NULL &&
	    tdgram_fast_ready(dgram, &dgram->recvfrom_im)) {
		ssize_t ret = -1;

		err = 0;
		if (dgram->try_recvfrom(dgram, state, &state->buf, &state->src,
					&ret, &err)) {
			state->len = ret == -1 ? 0 : (size_t)ret;
			tdgram_finish_later(req, &state->c, &dgram->recvfrom_im,
					    ret == -1 ? err : 0);
			return req;
		}
	}

	state->c.subreq = dgram->ops->recvfrom_send(state, ev, dgram);
	if (tevent_req_nomem(state->c.subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(state->c.subreq, tdgram_recvfrom_done, req);
	return req;
}

static void tdgram_recvfrom_done(struct tevent_req *subreq)
{
	struct tevent_req *req = tevent_req_callback_data_void(subreq);
	struct tdgram_recvfrom_state *state = _tevent_req_data(req);
	struct tdgram_context *dgram = state->c.dgram;
	ssize_t ret;
	int err = 0;

	ret = dgram->ops->recvfrom_recv(subreq, &err, state, &state->buf,
					&state->src);
	state->c.subreq = NULL;
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	state->len = (size_t)ret;
	tevent_req_done(req);
}

_PUBLIC_ ssize_t tdgram_recvfrom_recv(struct tevent_req *req,
				      int *perrno,
				      TALLOC_CTX *mem_ctx,
				      uint8_t **buf,
				      struct tsocket_address **src)
{
	struct tdgram_recvfrom_state *state = _tevent_req_data(req);
	ssize_t ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		*buf = talloc_move(mem_ctx, &state->buf);
		ret = (ssize_t)state->len;
		if (src != NULL) {
			*src = talloc_move(mem_ctx, &state->src);
		}
	}

	tevent_req_received(req);
	return ret;
}

struct tdgram_sendto_state {
	struct tdgram_req_common c;
	ssize_t ret;
};

static void tdgram_sendto_done(struct tevent_req *subreq);

_PUBLIC_ struct tevent_req *tdgram_sendto_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tdgram_context *dgram,
    const uint8_t *buf,
    size_t len,
    const struct tsocket_address *dst)
{
	struct tevent_req *req;
	struct tdgram_sendto_state *state;
	int err;

	req = tevent_req_create(mem_ctx, &state, struct tdgram_sendto_state);
	if (req == NULL) {
		return NULL;
	}
	state->c.ev = ev;
	state->ret = -1;

	err = tdgram_guard(dgram, dgram->sendto_req);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	if (len == 0 || buf == NULL) {
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}
	if (len > SSIZE_MAX) {
		tevent_req_error(req, EMSGSIZE);
		return tevent_req_post(req, ev);
	}

	if (!tdgram_register(dgram, &dgram->sendto_req, req, &state->c)) {
		return tevent_req_post(req, ev);
	}

	if (dgram->try_sendto != NULL &&
	    tdgram_fast_ready(dgram, &dgram->sendto_im)) {
		ssize_t ret = -1;

		err = 0;
		if (dgram->try_sendto(dgram, buf, len, dst, &ret, &err)) {
			state->ret = ret;
			tdgram_finish_later(req, &state->c, &dgram->sendto_im,
					    ret == -1 ? err : 0);
			return req;
		}
	}

	state->c.subreq =
	    dgram->ops->sendto_send(state, ev, dgram, buf, len, dst);
	if (tevent_req_nomem(state->c.subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(state->c.subreq, tdgram_sendto_done, req);
	return req;
}

static void tdgram_sendto_done(struct tevent_req *subreq)
{
	struct tevent_req *req = tevent_req_callback_data_void(subreq);
	struct tdgram_sendto_state *state = _tevent_req_data(req);
	struct tdgram_context *dgram = state->c.dgram;
	ssize_t ret;
	int err = 0;

	ret = dgram->ops->sendto_recv(subreq, &err);
	state->c.subreq = NULL;
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	state->ret = ret;
	tevent_req_done(req);
}

_PUBLIC_ ssize_t tdgram_sendto_recv(struct tevent_req *req, int *perrno)
{
	struct tdgram_sendto_state *state = _tevent_req_data(req);
	ssize_t ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		ret = state->ret;
	}

	tevent_req_received(req);
	return ret;
}

struct tdgram_disconnect_state {
	struct tdgram_req_common c;
};

static void tdgram_disconnect_done(struct tevent_req *subreq);

_PUBLIC_ struct tevent_req *tdgram_disconnect_send(TALLOC_CTX *mem_ctx,
						   struct tevent_context *ev,
						   struct tdgram_context *dgram)
{
	struct tevent_req *req;
	struct tdgram_disconnect_state *state;

	req =
	    tevent_req_create(mem_ctx, &state, struct tdgram_disconnect_state);
	if (req == NULL) {
		return NULL;
	}
	state->c.ev = ev;

	if (dgram->disconnected) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	if (dgram->recvfrom_req != NULL || dgram->sendto_req != NULL ||
	    dgram->disconnect_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}

	if (!tdgram_register(dgram, &dgram->disconnect_req, req, &state->c)) {
		return tevent_req_post(req, ev);
	}

	state->c.subreq = dgram->ops->disconnect_send(state, ev, dgram);
	if (tevent_req_nomem(state->c.subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(state->c.subreq, tdgram_disconnect_done, req);
	return req;
}

static void tdgram_disconnect_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tdgram_disconnect_state *state =
	    tevent_req_data(req, struct tdgram_disconnect_state);
	struct tdgram_context *dgram = state->c.dgram;
	int ret;
	int err = 0;

	ret = dgram->ops->disconnect_recv(subreq, &err);
	state->c.subreq = NULL;
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	dgram->disconnected = true;
	tevent_req_done(req);
}

_PUBLIC_ int tdgram_disconnect_recv(struct tevent_req *req, int *perrno)
{
	int ret;

	ret = tsocket_simple_int_recv(req, perrno);

	tevent_req_received(req);
	return ret;
}
