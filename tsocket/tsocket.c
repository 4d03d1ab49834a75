/* SPDX-License-Identifier: MIT */
/*
 * tsocket — the generic layer: what addresses, datagram contexts
 * (tsocket_dgram.c) and stream contexts (tsocket_stream.c) share, and the
 * address type.
 *
 * Every public I/O call goes through here before it reaches a type's ops
 * table. This layer checks the arguments, enforces "one read and one
 * write at a time" (EBUSY), refuses I/O after a disconnect (ENOTCONN) or
 * writes after a half-close (EPIPE), and makes talloc_free() of a context
 * safe while requests are outstanding. The ops therefore only ever see
 * well-formed calls (see tsocket_internal.h). The BSD types also give
 * this layer try functions (tsocket_private.h, not installed): an
 * operation they complete at once needs no request of the type, and its
 * request is finished from the loop through an immediate of the context,
 * so it never completes inside its _send.
 *
 * Freeing rules:
 *  - a context remembers its outstanding generic requests; a request's
 *    tevent cleanup function forgets it again when it finishes or is
 *    freed (and cancels a finish scheduled on the context's immediate),
 *    so freeing a request early is always safe;
 *  - the context's destructor frees the implementation's sub-requests
 *    (they live under the generic request's state) while the private
 *    data is still alive, then fails the generic requests with ENOTCONN
 *    through a deferred callback (never from inside talloc_free());
 *  - if the requests' tevent_context was freed first (the context keeps
 *    a guard on it), there is no loop left to call back: the requests
 *    are then only marked received, never completed.
 */

#include <errno.h>
#include <string.h>
#include <tevent.h>

#include "tsgate_export.h"
#include "tsocket_internal.h"
#include "tsocket_private.h"

_PUBLIC_ int tsocket_simple_int_recv(struct tevent_req *req, int *perrno)
{
	enum tevent_req_state state;
	uint64_t error = 0;

	if (!tevent_req_is_error(req, &state, &error)) {
		return 0;
	}

	switch (state) {
	case TEVENT_REQ_USER_ERROR:
		if (perrno != NULL) {
			*perrno = (int)error;
		}
		break;
	case TEVENT_REQ_TIMED_OUT:
		if (perrno != NULL) {
			*perrno = ETIMEDOUT;
		}
		break;
	case TEVENT_REQ_NO_MEMORY:
		if (perrno != NULL) {
			*perrno = ENOMEM;
		}
		break;
	default:
		/* In progress or already received: a caller bug. */
		if (perrno != NULL) {
			*perrno = EINVAL;
		}
		break;
	}
	return -1;
}

struct tsocket_ev_guard {
	struct tsocket_ev_watch *watch;
};

static int tsocket_ev_guard_destructor(struct tsocket_ev_guard *guard)
{
	guard->watch->ev = NULL;
	guard->watch->guard = NULL;
	return 0;
}

bool tsocket_ev_watch(struct tsocket_ev_watch *watch, struct tevent_context *ev)
{
	struct tsocket_ev_guard *guard;

	if (watch->ev == ev) {
		return true;
	}
	TALLOC_FREE(watch->guard);

	guard = talloc(ev, struct tsocket_ev_guard);
	if (guard == NULL) {
		return false;
	}
	guard->watch = watch;
	talloc_set_destructor(guard, tsocket_ev_guard_destructor);
	watch->guard = guard;
	watch->ev = ev;
	return true;
}

/* Forgets the event context: the next tsocket_ev_watch() guards anew. */
void tsocket_ev_unwatch(struct tsocket_ev_watch *watch)
{
	TALLOC_FREE(watch->guard);
	watch->ev = NULL;
}

/*
 * Fail a request that lost its context: the callback runs later from the
 * event loop, so the caller never re-enters the code freeing the context.
 * If that event loop is gone (or unknown) there is nobody left to call
 * back: the request is just marked received, as Samba does.
 */
void tsocket_orphan_req(struct tevent_req *req,
			struct tevent_context *ev,
			const struct tsocket_ev_watch *watch)
{
	if (ev == NULL || ev != watch->ev) {
		tevent_req_received(req);
		return;
	}
	tevent_req_defer_callback(req, ev);
	tevent_req_error(req, ENOTCONN);
}

/*
 * tsocket_address
 */

_PUBLIC_ struct tsocket_address *_tsocket_address_create(
    TALLOC_CTX *mem_ctx,
    const struct tsocket_address_ops *ops,
    void *pstate,
    size_t psize,
    const char *type,
    const char *location)
{
	void **ppstate = (void **)pstate;
	struct tsocket_address *addr;

	/*
	 * One malloc for both: a received datagram's sender is made for
	 * every datagram.
	 */
	addr = talloc_pooled_object(mem_ctx, struct tsocket_address, 1, psize);
	if (addr == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	*addr = (struct tsocket_address){
	    .location = location,
	    .ops = ops,
	};
	addr->private_data = talloc_zero_size(addr, psize);
	if (addr->private_data == NULL) {
		talloc_free(addr);
		errno = ENOMEM;
		return NULL;
	}
	talloc_set_name_const(addr->private_data, type);

	*ppstate = addr->private_data;
	return addr;
}

_PUBLIC_ char *tsocket_address_string(const struct tsocket_address *addr,
				      TALLOC_CTX *mem_ctx)
{
	char *str;

	if (addr == NULL) {
		str = talloc_strdup(mem_ctx, "NULL");
		if (str == NULL) {
			errno = ENOMEM;
		}
		return str;
	}
	return addr->ops->string(addr, mem_ctx);
}

_PUBLIC_ struct tsocket_address *_tsocket_address_copy(
    const struct tsocket_address *addr,
    TALLOC_CTX *mem_ctx,
    const char *location)
{
	if (addr == NULL) {
		errno = EINVAL;
		return NULL;
	}
	return addr->ops->copy(addr, mem_ctx, location);
}
