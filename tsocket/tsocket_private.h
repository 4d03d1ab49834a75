/* SPDX-License-Identifier: MIT */
/*
 * tsocket — hooks private to libtsocket, shared by the generic layer
 * (tsocket.c, tsocket_dgram.c, tsocket_stream.c) and the BSD backend
 * (tsocket_bsd_*.c).
 *
 * Not installed and not part of the API: nothing here is exported (the
 * library is built with hidden visibility and these carry no _PUBLIC_),
 * and the ops contract of tsocket_internal.h is unchanged by them; the
 * tunnels and any other stream type go through their ops as always.
 *
 * The try functions let a type of this library do an operation at once,
 * without a request of its own. The generic layer calls one after its
 * guards (EBUSY, ENOTCONN, argument checks) and creates the type's
 * request only for what is left. A generic request completed that way is
 * still finished from the event loop, never inside its _send.
 */

#ifndef _TSOCKET_PRIVATE_H
#define _TSOCKET_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <talloc.h>
#include <tevent.h>

#include "tsocket.h"

/*
 * A stream's try function for one direction. It gets the generic layer's
 * private copy of the vector (with a spare entry after the last, which
 * the BSD backend uses for its read-ahead) and advances *vector and
 * *count past the bytes it moved. It returns those bytes (0: nothing
 * possible now), or -1 with *perrno set to fail the request. It is only
 * called with no request of the type outstanding in its direction.
 */
typedef ssize_t (*tstream_try_io_fn)(struct tstream_context *stream,
				     struct iovec **vector,
				     int *count,
				     int *perrno);

/* Registers a stream type's try functions (NULL: none for that way). */
void _tstream_context_set_try(struct tstream_context *stream,
			      tstream_try_io_fn try_readv,
			      tstream_try_io_fn try_writev);

/*
 * A datagram context's try functions. They return false when they did
 * nothing (the type's request does the work), true when the operation is
 * over: *pret the length, or -1 with *perrno set. A received datagram and
 * its sender are allocated on mem_ctx. Only called with no request of the
 * type outstanding in that direction.
 */
typedef bool (*tdgram_try_recvfrom_fn)(struct tdgram_context *dgram,
				       TALLOC_CTX *mem_ctx,
				       uint8_t **buf,
				       struct tsocket_address **src,
				       ssize_t *pret,
				       int *perrno);
typedef bool (*tdgram_try_sendto_fn)(struct tdgram_context *dgram,
				     const uint8_t *buf,
				     size_t len,
				     const struct tsocket_address *dst,
				     ssize_t *pret,
				     int *perrno);

/* Registers a datagram type's try functions (NULL: none for that way). */
void _tdgram_context_set_try(struct tdgram_context *dgram,
			     tdgram_try_recvfrom_fn try_recvfrom,
			     tdgram_try_sendto_fn try_sendto);

/*
 * The generic layer's own bookkeeping, shared by tsocket.c,
 * tsocket_dgram.c and tsocket_stream.c.
 */

/*
 * A context remembers the event context of its requests and learns when
 * it is freed: a guard object, child of the tevent_context, clears the
 * pointer from its destructor. Only then can a request that loses its
 * context be failed through that event context later on.
 */
struct tsocket_ev_watch {
	struct tevent_context *ev;
	struct tsocket_ev_guard *guard;
};

/*
 * Remembers ev (guarded) as the event context of the context's requests;
 * false: no memory.
 */
bool tsocket_ev_watch(struct tsocket_ev_watch *watch,
		      struct tevent_context *ev);

/* Forgets the event context: the next tsocket_ev_watch() guards anew. */
void tsocket_ev_unwatch(struct tsocket_ev_watch *watch);

/*
 * Fails a request whose context was freed under it with ENOTCONN, from
 * the loop ev if the watch still knows it; else only marks it received.
 */
void tsocket_orphan_req(struct tevent_req *req,
			struct tevent_context *ev,
			const struct tsocket_ev_watch *watch);

#endif /* _TSOCKET_PRIVATE_H */
