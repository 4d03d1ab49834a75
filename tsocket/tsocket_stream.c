/* SPDX-License-Identifier: MIT */
/*
 * tsocket — the generic layer of stream contexts: the guards, the fast
 * path of a type's try functions, the readiness API and
 * tstream_readv_pdu in front of a stream type's ops (see tsocket.c for
 * the rules every context follows).
 */

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>
#include <tevent.h>

#include "tsgate_export.h"
#include "tsocket_internal.h"
#include "tsocket_private.h"

/* The most entries one readv/writev may carry (the kernel's IOV_MAX). */
#define TSOCKET_MAX_IOVEC 1024

/* Vectors up to this size are copied into the request state itself. */
#define TSOCKET_SMALL_IOVEC 4

/*
 * The pool tstream_readv_pdu's next_vector allocates from (kept per
 * stream): room for the few small vector arrays of a step; larger ones
 * fall back to malloc.
 */
#define TSOCKET_PDU_VECTOR_POOL 512

/*
 * Check and copy an iovec array into a request state: the ops get a
 * private copy they may consume in place. The copy has one spare entry
 * after the last (small has TSOCKET_SMALL_IOVEC + 1): a stream's try
 * function (see tstream_try_io_fn) may use it for its read-ahead.
 */
static int tsocket_copy_vector(TALLOC_CTX *mem_ctx,
			       const struct iovec *vector,
			       size_t count,
			       struct iovec *small,
			       struct iovec **pcopy,
			       size_t *ptotal)
{
	struct iovec *copy = small;
	size_t total = 0;
	size_t i;

	if (count == 0) {
		return EINVAL;
	}
	if (count > TSOCKET_MAX_IOVEC) {
		return EMSGSIZE;
	}
	for (i = 0; i < count; i++) {
		if (total > SIZE_MAX - vector[i].iov_len) {
			return EMSGSIZE;
		}
		total += vector[i].iov_len;
	}
	/* readv/writev report an int. */
	if (total > INT_MAX) {
		return EMSGSIZE;
	}
	if (total == 0) {
		return EINVAL;
	}

	if (count > TSOCKET_SMALL_IOVEC) {
		copy = talloc_array(mem_ctx, struct iovec, count + 1);
		if (copy == NULL) {
			return ENOMEM;
		}
	}
	memcpy(copy, vector, count * sizeof(*copy));
	*pcopy = copy;
	*ptotal = total;
	return 0;
}

/*
 * tstream_context
 */

struct tstream_context {
	const char *location;
	const struct tstream_context_ops *ops;
	void *private_data;

	struct tevent_req *readv_req;
	struct tevent_req *writev_req;
	struct tevent_req *shutdown_req;
	struct tevent_req *disconnect_req;
	bool write_shut;
	bool disconnected;
	struct tsocket_ev_watch watch;

	/*
	 * The mem_ctx tstream_readv_pdu hands to next_vector: a pool kept
	 * for the stream's life and emptied after every step, so the
	 * vector arrays of a PDU read cost no malloc (one readv_pdu at a
	 * time: it holds the readv slot).
	 */
	TALLOC_CTX *pdu_vector_ctx;

	/* see _tstream_context_set_try() */
	tstream_try_io_fn try_readv;
	tstream_try_io_fn try_writev;
	struct tevent_immediate *readv_im;
	struct tevent_immediate *writev_im;

	/* see tstream_set_readable_handler() */
	tstream_readable_handler_t readable_fn;
	void *readable_private;
	/* readv_im calls it: the type said readable at once */
	bool readable_scheduled;
};

struct tstream_req_common {
	struct tevent_context *ev;
	struct tstream_context *stream;
	struct tevent_req *subreq;
	/* a finish scheduled on the stream's immediate *pim, with err */
	struct tevent_immediate **pim;
	int err;
	/* a wait request the type's readable handler holds */
	bool type_waits;
};

static int tstream_context_destructor(struct tstream_context *stream);

_PUBLIC_ struct tstream_context *_tstream_context_create(
    TALLOC_CTX *mem_ctx,
    const struct tstream_context_ops *ops,
    void *pstate,
    size_t psize,
    const char *type,
    const char *location)
{
	void **ppstate = (void **)pstate;
	struct tstream_context *stream;

	stream = talloc_zero(mem_ctx, struct tstream_context);
	if (stream == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	stream->location = location;
	stream->ops = ops;
	stream->private_data = talloc_zero_size(stream, psize);
	if (stream->private_data == NULL) {
		talloc_free(stream);
		errno = ENOMEM;
		return NULL;
	}
	talloc_set_name_const(stream->private_data, type);
	talloc_set_destructor(stream, tstream_context_destructor);

	*ppstate = stream->private_data;
	return stream;
}

_PUBLIC_ void *_tstream_context_data(struct tstream_context *stream)
{
	return stream->private_data;
}

void _tstream_context_set_try(struct tstream_context *stream,
			      tstream_try_io_fn try_readv,
			      tstream_try_io_fn try_writev)
{
	stream->try_readv = try_readv;
	stream->try_writev = try_writev;
}

/*
 * Makes the stream type forget the readable handler a wait request armed
 * (see tstream_wait_readable_send()).
 */
static void tstream_unwait(struct tstream_req_common *c)
{
	if (c->type_waits && c->stream != NULL) {
		c->stream->ops->set_readable_handler(c->stream, NULL, NULL,
						     NULL, NULL);
	}
	c->type_waits = false;
}

/*
 * The fast path and its release. An operation a type completes at once
 * is finished through an immediate of the stream, one per direction,
 * made on first use (tstream_fast_ready(); false, no memory, means:
 * take the ops path instead). A stream whose type holds a
 * readable handler (armed by tstream_set_readable_handler() or a wait
 * request) is usually idle for a while: it gives back those immediates
 * while neither is scheduled, and the next fast operation makes them
 * again. tstream_readable_arm() releases when the handler is armed,
 * tstream_req_cleanup() when a write ends on a stream already armed.
 *
 * With no request outstanding at all the stream gives back its
 * event-context guard, too: the watch only serves tstream_detach(), which
 * fails the outstanding requests of a stream freed under them through
 * their event context if that is still alive. Without a request there is
 * nothing to fail; the next request guards its context anew
 * (tstream_register()). A stream type that keeps a tevent_fd while idle
 * guards that itself (tsocket_bsd_stream.c), and the readable handler's
 * immediate is tevent's own, cancelled by tevent when its context goes.
 */
static bool tstream_fast_ready(struct tstream_context *stream,
			       struct tevent_immediate **pim)
{
	if (*pim == NULL) {
		*pim = tevent_create_immediate(stream);
	}
	return *pim != NULL;
}

/* No request outstanding: nothing tstream_detach() would have to fail. */
static void tstream_idle_unwatch(struct tstream_context *stream)
{
	if (stream->readv_req == NULL && stream->writev_req == NULL &&
	    stream->shutdown_req == NULL && stream->disconnect_req == NULL) {
		tsocket_ev_unwatch(&stream->watch);
	}
}

static void tstream_idle_release(struct tstream_context *stream)
{
	TALLOC_FREE(stream->readv_im);
	if (stream->writev_req == NULL) {
		TALLOC_FREE(stream->writev_im);
	}
	tstream_idle_unwatch(stream);
}

/*
 * A write ended (its request already forgotten) while the public
 * readable handler is armed with the type: the stream is as idle as
 * tstream_idle_release() left it, so it keeps no writev immediate and no
 * event-context guard either (tevent lets an immediate be freed from its
 * own handler, where this may run).
 */
static void tstream_idle_release_writer(struct tstream_context *stream)
{
	if (stream->readable_fn != NULL && !stream->readable_scheduled) {
		TALLOC_FREE(stream->writev_im);
		tstream_idle_unwatch(stream);
	}
}

static void tstream_finish_now(struct tevent_context *ev,
			       struct tevent_immediate *im,
			       void *private_data)
{
	struct tevent_req *req = private_data;
	struct tstream_req_common *c = _tevent_req_data(req);

	c->pim = NULL;
	if (c->err != 0) {
		tevent_req_error(req, c->err);
		return;
	}
	tevent_req_done(req);
}

/*
 * Finishes a request whose I/O is over (err 0: done) from the loop: it
 * stays outstanding, holding its slot, until its callback runs, exactly
 * like one that had to wait. Freeing it (or its endtime) before then
 * cancels this (tstream_req_cleanup()).
 */
static void tstream_finish_later(struct tevent_req *req,
				 struct tstream_req_common *c,
				 struct tevent_immediate **pim,
				 int err)
{
	c->err = err;
	c->pim = pim;
	tevent_schedule_immediate(*pim, c->ev, tstream_finish_now, req);
}

/*
 * Forgets the readable handler (the type forgets it too): a readv, a
 * wait or a disconnect takes over, or the stream goes away.
 */
static void tstream_readable_clear(struct tstream_context *stream)
{
	if (stream->readable_fn == NULL) {
		return;
	}
	stream->readable_fn = NULL;
	stream->readable_private = NULL;
	if (stream->readable_scheduled) {
		stream->readable_scheduled = false;
		TALLOC_FREE(stream->readv_im);
		return;
	}
	stream->ops->set_readable_handler(stream, NULL, NULL, NULL, NULL);
}

static void tstream_detach(struct tstream_context *stream,
			   struct tevent_req **preq)
{
	struct tevent_req *req = *preq;
	struct tstream_req_common *c;

	if (req == NULL) {
		return;
	}
	*preq = NULL;

	c = (struct tstream_req_common *)_tevent_req_data(req);
	tstream_unwait(c);
	c->stream = NULL;
	TALLOC_FREE(c->subreq);
	tsocket_orphan_req(req, c->ev, &stream->watch);
}

static int tstream_context_destructor(struct tstream_context *stream)
{
	tstream_readable_clear(stream);
	tstream_detach(stream, &stream->readv_req);
	tstream_detach(stream, &stream->writev_req);
	tstream_detach(stream, &stream->shutdown_req);
	tstream_detach(stream, &stream->disconnect_req);
	tsocket_ev_unwatch(&stream->watch);
	return 0;
}

static void tstream_forget(struct tstream_req_common *c, struct tevent_req *req)
{
	struct tstream_context *stream = c->stream;

	if (stream == NULL) {
		return;
	}
	if (stream->readv_req == req) {
		stream->readv_req = NULL;
	}
	if (stream->writev_req == req) {
		stream->writev_req = NULL;
	}
	if (stream->shutdown_req == req) {
		stream->shutdown_req = NULL;
	}
	if (stream->disconnect_req == req) {
		stream->disconnect_req = NULL;
	}
	c->stream = NULL;
}

static void tstream_req_cleanup(struct tevent_req *req,
				enum tevent_req_state req_state)
{
	struct tstream_req_common *c =
	    (struct tstream_req_common *)_tevent_req_data(req);

	/* See tdgram_req_cleanup() in tsocket_dgram.c. */
	if (c != NULL) {
		struct tstream_context *stream = c->stream;
		bool writer = stream != NULL && stream->writev_req == req;

		TALLOC_FREE(c->subreq);
		if (c->pim != NULL && c->stream != NULL) {
			/* finished early: drop the scheduled finish */
			TALLOC_FREE(*c->pim);
		}
		c->pim = NULL;
		tstream_unwait(c);
		tstream_forget(c, req);
		if (writer) {
			tstream_idle_release_writer(stream);
		}
	}
}

/*
 * The guards every request start shares: ENOTCONN once a disconnect is
 * under way or done, EBUSY while the direction's slot is taken. 0: go.
 */
static int tstream_read_guard(const struct tstream_context *stream)
{
	if (stream->disconnected || stream->disconnect_req != NULL) {
		return ENOTCONN;
	}
	if (stream->readv_req != NULL) {
		return EBUSY;
	}
	return 0;
}

/* A writev or shutdown: the write slot holds either. */
static int tstream_write_guard(const struct tstream_context *stream)
{
	if (stream->disconnected || stream->disconnect_req != NULL) {
		return ENOTCONN;
	}
	if (stream->writev_req != NULL || stream->shutdown_req != NULL) {
		return EBUSY;
	}
	return 0;
}

/* Make req the context's outstanding request in *slot. */
static bool tstream_register(struct tstream_context *stream,
			     struct tevent_req **slot,
			     struct tevent_req *req,
			     struct tstream_req_common *c)
{
	if (!tsocket_ev_watch(&stream->watch, c->ev)) {
		tevent_req_oom(req);
		return false;
	}
	if (slot == &stream->readv_req || slot == &stream->disconnect_req) {
		tstream_readable_clear(stream);
	}
	c->stream = stream;
	*slot = req;
	tevent_req_set_cleanup_fn(req, tstream_req_cleanup);
	return true;
}

_PUBLIC_ ssize_t tstream_pending_bytes(struct tstream_context *stream)
{
	if (stream->disconnected) {
		errno = ENOTCONN;
		return -1;
	}
	return stream->ops->pending_bytes(stream);
}

struct tstream_readv_state {
	struct tstream_req_common c;
	struct iovec small_vector[TSOCKET_SMALL_IOVEC + 1];
	int ret;
};

static void tstream_readv_done(struct tevent_req *subreq);

_PUBLIC_ struct tevent_req *tstream_readv_send(TALLOC_CTX *mem_ctx,
					       struct tevent_context *ev,
					       struct tstream_context *stream,
					       struct iovec *vector,
					       size_t count)
{
	struct tevent_req *req;
	struct tstream_readv_state *state;
	struct iovec *copy = NULL;
	size_t total = 0;
	int err;

	req = tevent_req_create(mem_ctx, &state, struct tstream_readv_state);
	if (req == NULL) {
		return NULL;
	}
	state->c.ev = ev;

	err = tstream_read_guard(stream);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	err = tsocket_copy_vector(state, vector, count, state->small_vector,
				  &copy, &total);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}

	if (!tstream_register(stream, &stream->readv_req, req, &state->c)) {
		return tevent_req_post(req, ev);
	}

	if (stream->try_readv != NULL &&
	    tstream_fast_ready(stream, &stream->readv_im)) {
		int left = (int)count;
		ssize_t n;

		err = 0;
		n = stream->try_readv(stream, &copy, &left, &err);
		if (n == -1 || left == 0) {
			state->ret = (int)n;
			tstream_finish_later(req, &state->c, &stream->readv_im,
					     err);
			return req;
		}
		state->ret = (int)n;
		count = (size_t)left;
	}

	state->c.subreq =
	    stream->ops->readv_send(state, ev, stream, copy, count);
	if (tevent_req_nomem(state->c.subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(state->c.subreq, tstream_readv_done, req);
	return req;
}

static void tstream_readv_done(struct tevent_req *subreq)
{
	struct tevent_req *req = tevent_req_callback_data_void(subreq);
	struct tstream_readv_state *state = _tevent_req_data(req);
	struct tstream_context *stream = state->c.stream;
	int ret;
	int err = 0;

	ret = stream->ops->readv_recv(subreq, &err);
	state->c.subreq = NULL;
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	state->ret += ret;
	tevent_req_done(req);
}

_PUBLIC_ int tstream_readv_recv(struct tevent_req *req, int *perrno)
{
	struct tstream_readv_state *state = _tevent_req_data(req);
	int ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		ret = state->ret;
	}

	tevent_req_received(req);
	return ret;
}

/*
 * tstream_readv_pdu: ask next_vector for a vector, fill it, repeat until
 * next_vector says the PDU is complete (count 0).
 *
 * It lives here rather than with the other helpers because it talks to
 * the stream type's ops directly: the PDU request takes the readv slot
 * itself (EBUSY, ENOTCONN and freeing the context work as for a readv)
 * and keeps it from the first vector to the last, so there is no
 * generic readv request per step. A step the stream's try function
 * completes at once (the body of a PDU whose header brought it along)
 * costs no request at all; a type's request that finishes at once is
 * taken on the spot too once the PDU request is waiting (called back from
 * the loop). Either way the PDU request itself never finishes inside its
 * _send: then it is finished from the loop like a readv.
 */

/*
 * Arms the type's readable handler for fn: the trampoline of
 * tstream_set_readable_handler() or a wait request. When the type has to
 * wait, the stream is idle until it calls fn (see tstream_idle_release()).
 * Called with the read slot free or held by the caller's wait request.
 */
static int tstream_readable_arm(struct tstream_context *stream,
				struct tevent_context *ev,
				tstream_readable_handler_t fn,
				void *private_data,
				bool *pready)
{
	int err;

	*pready = false;
	err = stream->ops->set_readable_handler(stream, ev, fn, private_data,
						pready);
	if (err == 0 && !*pready) {
		tstream_idle_release(stream);
	}
	return err;
}

/*
 * tstream_wait_readable: a request over the type's readable handler. It
 * holds the read slot like a readv, so a handler set through
 * tstream_set_readable_handler() and a wait never meet; the type keeps
 * the request as its handler's private data until it calls it or the
 * generic layer makes it forget (tstream_unwait()).
 */
struct tstream_wait_readable_state {
	struct tstream_req_common c;
};

static void tstream_wait_readable_fire(struct tstream_context *stream,
				       void *private_data);

_PUBLIC_ struct tevent_req *tstream_wait_readable_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream)
{
	struct tevent_req *req;
	struct tstream_wait_readable_state *state;
	bool ready = true;
	int err;

	req = tevent_req_create(mem_ctx, &state,
				struct tstream_wait_readable_state);
	if (req == NULL) {
		return NULL;
	}
	state->c.ev = ev;

	err = tstream_read_guard(stream);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	if (!tstream_register(stream, &stream->readv_req, req, &state->c)) {
		return tevent_req_post(req, ev);
	}

	/* a type that cannot tell: a readv may go ahead at once */
	if (stream->ops->set_readable_handler != NULL) {
		err = tstream_readable_arm(
		    stream, ev, tstream_wait_readable_fire, req, &ready);
		if (err != 0) {
			tevent_req_error(req, err);
			return tevent_req_post(req, ev);
		}
		if (!ready) {
			state->c.type_waits = true;
			return req;
		}
	}

	if (tstream_fast_ready(stream, &stream->readv_im)) {
		tstream_finish_later(req, &state->c, &stream->readv_im, 0);
		return req;
	}
	tevent_req_done(req);
	return tevent_req_post(req, ev);
}

static void tstream_wait_readable_fire(struct tstream_context *stream,
				       void *private_data)
{
	struct tevent_req *req = private_data;
	struct tstream_wait_readable_state *state = _tevent_req_data(req);

	(void)stream;
	/* the type forgot the handler before this call */
	state->c.type_waits = false;
	tevent_req_done(req);
}

_PUBLIC_ int tstream_wait_readable_recv(struct tevent_req *req, int *perrno)
{
	int ret;

	ret = tsocket_simple_int_recv(req, perrno);

	tevent_req_received(req);
	return ret;
}

/*
 * The handler of the stream type (tstream_readable_handler_t): one shot,
 * forgotten before the caller's handler runs, which may free the stream.
 */
static void tstream_readable_fire(struct tstream_context *stream,
				  void *private_data)
{
	tstream_readable_handler_t fn = stream->readable_fn;
	void *fn_private = stream->readable_private;

	(void)private_data;
	stream->readable_fn = NULL;
	stream->readable_private = NULL;
	stream->readable_scheduled = false;
	if (fn != NULL) {
		fn(stream, fn_private);
	}
}

static void tstream_readable_now(struct tevent_context *ev,
				 struct tevent_immediate *im,
				 void *private_data)
{
	(void)ev;
	(void)im;
	tstream_readable_fire(private_data, NULL);
}

_PUBLIC_ int tstream_set_readable_handler(struct tstream_context *stream,
					  struct tevent_context *ev,
					  tstream_readable_handler_t handler,
					  void *private_data)
{
	bool ready = false;
	int err;

	if (handler == NULL) {
		tstream_readable_clear(stream);
		return 0;
	}
	if (ev == NULL) {
		errno = EINVAL;
		return -1;
	}
	err = tstream_read_guard(stream);
	if (err == 0 && stream->ops->set_readable_handler == NULL) {
		err = ENOSYS;
	}
	if (err != 0) {
		errno = err;
		return -1;
	}
	tstream_readable_clear(stream);

	err = tstream_readable_arm(stream, ev, tstream_readable_fire, NULL,
				   &ready);
	if (err != 0) {
		errno = err;
		return -1;
	}
	if (ready) {
		/* from the loop, never from inside this call */
		if (!tstream_fast_ready(stream, &stream->readv_im)) {
			errno = ENOMEM;
			return -1;
		}
		stream->readable_scheduled = true;
		tevent_schedule_immediate(stream->readv_im, ev,
					  tstream_readable_now, stream);
	}
	stream->readable_fn = handler;
	stream->readable_private = private_data;
	return 0;
}

struct tstream_readv_pdu_state {
	/* first: the context destructor sees it as a tstream_req_common */
	struct tstream_req_common c;
	tstream_readv_pdu_next_vector_t next_vector_fn;
	void *next_vector_private;
	struct iovec small_vector[TSOCKET_SMALL_IOVEC + 1];
	int total;
};

static void tstream_readv_pdu_next(struct tevent_req *req, bool in_send);
static void tstream_readv_pdu_readv_done(struct tevent_req *subreq);
static void tstream_readv_pdu_cleanup(struct tevent_req *req,
				      enum tevent_req_state req_state);

_PUBLIC_ struct tevent_req *tstream_readv_pdu_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream,
    tstream_readv_pdu_next_vector_t next_vector_fn,
    void *next_vector_private)
{
	struct tevent_req *req;
	struct tstream_readv_pdu_state *state;
	int err;

	req =
	    tevent_req_create(mem_ctx, &state, struct tstream_readv_pdu_state);
	if (req == NULL) {
		return NULL;
	}
	state->c.ev = ev;
	state->next_vector_fn = next_vector_fn;
	state->next_vector_private = next_vector_private;

	if (next_vector_fn == NULL) {
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}
	err = tstream_read_guard(stream);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	if (stream->pdu_vector_ctx == NULL) {
		stream->pdu_vector_ctx =
		    talloc_pool(stream, TSOCKET_PDU_VECTOR_POOL);
		if (tevent_req_nomem(stream->pdu_vector_ctx, req)) {
			return tevent_req_post(req, ev);
		}
	}

	if (!tstream_register(stream, &stream->readv_req, req, &state->c)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_cleanup_fn(req, tstream_readv_pdu_cleanup);

	tstream_readv_pdu_next(req, true);
	if (!tevent_req_is_in_progress(req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

/*
 * Whenever we finish (also from outside, by tevent_req_set_endtime), the
 * step's read stops with us, the last vector goes and the slot is free
 * for the next reader.
 */
static void tstream_readv_pdu_cleanup(struct tevent_req *req,
				      enum tevent_req_state req_state)
{
	struct tstream_readv_pdu_state *state = _tevent_req_data(req);

	if (state != NULL && state->c.stream != NULL) {
		talloc_free_children(state->c.stream->pdu_vector_ctx);
	}
	tstream_req_cleanup(req, req_state);
}

/*
 * Takes the result of a finished step's read. Returns false when that
 * ended the PDU with an error.
 */
static bool tstream_readv_pdu_step_done(struct tevent_req *req,
					struct tstream_readv_pdu_state *state,
					struct tevent_req *subreq)
{
	int ret;
	int err = 0;

	ret = state->c.stream->ops->readv_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tevent_req_error(req, err);
		return false;
	}
	if (ret > INT_MAX - state->total) {
		tevent_req_error(req, EMSGSIZE);
		return false;
	}
	state->total += ret;
	return true;
}

/*
 * Ends the PDU (err 0: done). Inside tstream_readv_pdu_send() (in_send)
 * the request stays outstanding, holding the slot, until its callback
 * runs from the loop.
 */
static void tstream_readv_pdu_finish(struct tevent_req *req,
				     struct tstream_readv_pdu_state *state,
				     bool in_send,
				     int err)
{
	struct tstream_context *stream = state->c.stream;

	if (in_send && tstream_fast_ready(stream, &stream->readv_im)) {
		tstream_finish_later(req, &state->c, &stream->readv_im, err);
		return;
	}
	if (err != 0) {
		tevent_req_error(req, err);
		return;
	}
	tevent_req_done(req);
}

/*
 * Runs steps until one has to wait or the PDU is finished (done or
 * failed). Inside tstream_readv_pdu_send() (in_send) a type's read that
 * finished at once still comes back through its posted callback: the
 * request never finishes before its send returned.
 */
static void tstream_readv_pdu_next(struct tevent_req *req, bool in_send)
{
	struct tstream_readv_pdu_state *state = _tevent_req_data(req);
	struct tstream_context *stream = state->c.stream;
	struct tevent_req *subreq;

	for (;;) {
		struct iovec *vector = NULL;
		struct iovec *copy = NULL;
		size_t count = 0;
		size_t total = 0;
		int ret;
		int err;

		/* What the last step allocated is gone before the next. */
		talloc_free_children(stream->pdu_vector_ctx);

		errno = 0;
		ret = state->next_vector_fn(stream, state->next_vector_private,
					    stream->pdu_vector_ctx, &vector,
					    &count);
		if (ret == -1) {
			err = errno;
			/* A callback that forgot errno still fails the PDU. */
			tstream_readv_pdu_finish(req, state, in_send,
						 err != 0 ? err : EIO);
			return;
		}
		if (count == 0) {
			/* also a PDU complete before any read: 0 bytes */
			tstream_readv_pdu_finish(req, state, in_send, 0);
			return;
		}

		err = tsocket_copy_vector(stream->pdu_vector_ctx, vector, count,
					  state->small_vector, &copy, &total);
		if (err != 0) {
			tstream_readv_pdu_finish(req, state, in_send, err);
			return;
		}

		if (stream->try_readv != NULL) {
			int left = (int)count;
			ssize_t n;

			err = 0;
			n = stream->try_readv(stream, &copy, &left, &err);
			if (n == -1) {
				tstream_readv_pdu_finish(req, state, in_send,
							 err);
				return;
			}
			if (n > INT_MAX - state->total) {
				tstream_readv_pdu_finish(req, state, in_send,
							 EMSGSIZE);
				return;
			}
			state->total += (int)n;
			if (left == 0) {
				continue;
			}
			count = (size_t)left;
		}

		subreq = stream->ops->readv_send(state, state->c.ev, stream,
						 copy, count);
		if (tevent_req_nomem(subreq, req)) {
			return;
		}
		if (in_send || tevent_req_is_in_progress(subreq)) {
			state->c.subreq = subreq;
			tevent_req_set_callback(
			    subreq, tstream_readv_pdu_readv_done, req);
			return;
		}
		/*
		 * Finished at once (read-ahead, or bytes already there): its
		 * posted callback goes with it, we go on right here.
		 */
		if (!tstream_readv_pdu_step_done(req, state, subreq)) {
			return;
		}
	}
}

static void tstream_readv_pdu_readv_done(struct tevent_req *subreq)
{
	struct tevent_req *req = tevent_req_callback_data_void(subreq);
	struct tstream_readv_pdu_state *state = _tevent_req_data(req);

	state->c.subreq = NULL;
	if (!tstream_readv_pdu_step_done(req, state, subreq)) {
		return;
	}
	tstream_readv_pdu_next(req, false);
}

_PUBLIC_ int tstream_readv_pdu_recv(struct tevent_req *req, int *perrno)
{
	struct tstream_readv_pdu_state *state = _tevent_req_data(req);
	int ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		ret = state->total;
	}

	tevent_req_received(req);
	return ret;
}

struct tstream_writev_state {
	struct tstream_req_common c;
	struct iovec small_vector[TSOCKET_SMALL_IOVEC + 1];
	int ret;
};

static void tstream_writev_done(struct tevent_req *subreq);

_PUBLIC_ struct tevent_req *tstream_writev_send(TALLOC_CTX *mem_ctx,
						struct tevent_context *ev,
						struct tstream_context *stream,
						const struct iovec *vector,
						size_t count)
{
	struct tevent_req *req;
	struct tstream_writev_state *state;
	struct iovec *copy = NULL;
	size_t total = 0;
	int err;

	req = tevent_req_create(mem_ctx, &state, struct tstream_writev_state);
	if (req == NULL) {
		return NULL;
	}
	state->c.ev = ev;

	err = tstream_write_guard(stream);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	if (stream->write_shut) {
		tevent_req_error(req, EPIPE);
		return tevent_req_post(req, ev);
	}
	err = tsocket_copy_vector(state, vector, count, state->small_vector,
				  &copy, &total);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}

	if (!tstream_register(stream, &stream->writev_req, req, &state->c)) {
		return tevent_req_post(req, ev);
	}

	if (stream->try_writev != NULL &&
	    tstream_fast_ready(stream, &stream->writev_im)) {
		int left = (int)count;
		ssize_t n;

		err = 0;
		n = stream->try_writev(stream, &copy, &left, &err);
		if (n == -1 || left == 0) {
			state->ret = (int)n;
			tstream_finish_later(req, &state->c, &stream->writev_im,
					     err);
			return req;
		}
		state->ret = (int)n;
		count = (size_t)left;
	}

	state->c.subreq =
	    stream->ops->writev_send(state, ev, stream, copy, count);
	if (tevent_req_nomem(state->c.subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(state->c.subreq, tstream_writev_done, req);
	return req;
}

static void tstream_writev_done(struct tevent_req *subreq)
{
	struct tevent_req *req = tevent_req_callback_data_void(subreq);
	struct tstream_writev_state *state = _tevent_req_data(req);
	struct tstream_context *stream = state->c.stream;
	int ret;
	int err = 0;

	ret = stream->ops->writev_recv(subreq, &err);
	state->c.subreq = NULL;
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	state->ret += ret;
	tevent_req_done(req);
}

_PUBLIC_ int tstream_writev_recv(struct tevent_req *req, int *perrno)
{
	struct tstream_writev_state *state = _tevent_req_data(req);
	int ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		ret = state->ret;
	}

	tevent_req_received(req);
	return ret;
}

struct tstream_disconnect_state {
	struct tstream_req_common c;
};

static void tstream_disconnect_done(struct tevent_req *subreq);

_PUBLIC_ struct tevent_req *tstream_disconnect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream)
{
	struct tevent_req *req;
	struct tstream_disconnect_state *state;

	req =
	    tevent_req_create(mem_ctx, &state, struct tstream_disconnect_state);
	if (req == NULL) {
		return NULL;
	}
	state->c.ev = ev;

	if (stream->disconnected) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	if (stream->readv_req != NULL || stream->writev_req != NULL ||
	    stream->shutdown_req != NULL || stream->disconnect_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}

	if (!tstream_register(stream, &stream->disconnect_req, req,
			      &state->c)) {
		return tevent_req_post(req, ev);
	}

	state->c.subreq = stream->ops->disconnect_send(state, ev, stream);
	if (tevent_req_nomem(state->c.subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(state->c.subreq, tstream_disconnect_done, req);
	return req;
}

static void tstream_disconnect_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tstream_disconnect_state *state =
	    tevent_req_data(req, struct tstream_disconnect_state);
	struct tstream_context *stream = state->c.stream;
	int ret;
	int err = 0;

	ret = stream->ops->disconnect_recv(subreq, &err);
	state->c.subreq = NULL;
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	stream->disconnected = true;
	tevent_req_done(req);
}

_PUBLIC_ int tstream_disconnect_recv(struct tevent_req *req, int *perrno)
{
	int ret;

	ret = tsocket_simple_int_recv(req, perrno);

	tevent_req_received(req);
	return ret;
}

struct tstream_shutdown_state {
	struct tstream_req_common c;
};

static void tstream_shutdown_done(struct tevent_req *subreq);

_PUBLIC_ struct tevent_req *tstream_shutdown_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream)
{
	struct tevent_req *req;
	struct tstream_shutdown_state *state;
	int err;

	req = tevent_req_create(mem_ctx, &state, struct tstream_shutdown_state);
	if (req == NULL) {
		return NULL;
	}
	state->c.ev = ev;

	err = tstream_write_guard(stream);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	if (stream->ops->shutdown_send == NULL ||
	    stream->ops->shutdown_recv == NULL) {
		tevent_req_error(req, EOPNOTSUPP);
		return tevent_req_post(req, ev);
	}
	if (stream->write_shut) {
		/* Like shutdown(2): shutting a shut side again succeeds. */
		tevent_req_done(req);
		return tevent_req_post(req, ev);
	}

	if (!tstream_register(stream, &stream->shutdown_req, req, &state->c)) {
		return tevent_req_post(req, ev);
	}

	state->c.subreq = stream->ops->shutdown_send(state, ev, stream);
	if (tevent_req_nomem(state->c.subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(state->c.subreq, tstream_shutdown_done, req);
	return req;
}

static void tstream_shutdown_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tstream_shutdown_state *state =
	    tevent_req_data(req, struct tstream_shutdown_state);
	struct tstream_context *stream = state->c.stream;
	int ret;
	int err = 0;

	ret = stream->ops->shutdown_recv(subreq, &err);
	state->c.subreq = NULL;
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	stream->write_shut = true;
	tevent_req_done(req);
}

_PUBLIC_ int tstream_shutdown_recv(struct tevent_req *req, int *perrno)
{
	int ret;

	ret = tsocket_simple_int_recv(req, perrno);

	tevent_req_received(req);
	return ret;
}

_PUBLIC_ int tstream_reset(struct tstream_context *stream)
{
	if (stream == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (stream->ops->reset == NULL) {
		errno = EOPNOTSUPP;
		return -1;
	}
	return stream->ops->reset(stream);
}
