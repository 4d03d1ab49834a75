/* SPDX-License-Identifier: MIT */
/*
 * The relay: moves PDUs between a client stream and a backend stream,
 * one pump per direction.
 *
 * Each pump holds at most one chunk at a time: it reads one, writes it,
 * then reads the next, so a slow reader slows its writer down
 * (backpressure). On a raw route a chunk is at most max_pdu bytes
 * (TSGATE_FRAMING_RAW_CHUNK when 0); on a framed route it is
 * TSGATE_FRAMING_RAW_CHUNK whatever the PDU size: PDUs are forwarded as
 * they arrive, each header checked before it goes on (framer.h), so
 * memory stays bounded by one chunk per direction. When a
 * pump's source ends cleanly (EPIPE between PDUs) it half-closes its
 * destination with tstream_shutdown_send() and stops, while the other
 * direction keeps flowing. The relay is done when both pumps are.
 */
#ifndef TSGATE_RELAY_H
#define TSGATE_RELAY_H

#include <stdbool.h>
#include <stdint.h>
#include <talloc.h>
#include <tevent.h>

#include "conn_stats.h"
#include "framing.h"

struct tstream_context;
struct tsgate_relay_sweeper;

struct tsgate_relay_params {
	enum tsgate_config_framing framing; /* applied to both directions */
	size_t max_pdu;                     /* 0: framing default */
	uint32_t idle_timeout_ms; /* both directions silent; 0: none */
	/*
	 * Watches the idle timeout for many relays with one timer (see
	 * tsgate_relay_sweeper_new()); NULL: the relay has a timer of its
	 * own.
	 */
	struct tsgate_relay_sweeper *sweeper;
};

/**
 * @brief One idle timer for all the relays that are given it.
 *
 * A tevent_timer per relay costs ~0.2 KiB per idle connection. The
 * sweeper keeps its relays in one list per distinct idle timeout, in the
 * order of their last activity (activity moves a relay to the tail), and
 * one timer armed for the earliest deadline of the list heads. Free it
 * before ev and not from a relay's done callback; freed before its
 * relays, it lets go of them (they then never time out).
 *
 * @return The sweeper, a talloc child of mem_ctx; NULL when out of memory.
 */
struct tsgate_relay_sweeper *tsgate_relay_sweeper_new(
    TALLOC_CTX *mem_ctx, struct tevent_context *ev);

struct tsgate_relay;

/**
 * @brief Called once when the relay is over.
 *
 * Always from the event loop, never from inside tsgate_relay_start(). The
 * relay is inert by then (no request, handler or timer left); the callback
 * may free it.
 *
 * @param relay The relay that ended.
 * @param err 0 when both directions ended cleanly; otherwise EMSGSIZE
 *        (PDU over max_pdu: nothing of it forwarded), EPROTO (malformed
 *        header: nothing of it forwarded; or a PDU truncated by the end
 *        of its stream, after what had come of it was forwarded),
 *        ETIMEDOUT (idle timeout), ENOMEM, or the stream's error
 *        (ECONNRESET...). stats->reason says which side.
 * @param private_data The pointer given to tsgate_relay_start().
 */
typedef void (*tsgate_relay_done_fn)(struct tsgate_relay *relay,
				     int err,
				     void *private_data);

/**
 * @brief Relay between client and backend until both directions end.
 *
 * Not a tevent_req: an idle connection keeps its relay for hours, and with
 * tevent 0.14 every request is a talloc pool of about 0.9 KiB. Freeing the
 * relay before done_fn ran cancels it (done_fn is then never called).
 *
 * Neither stream is freed or disconnected here: the caller owns them and
 * frees them after done_fn (or after freeing the relay).
 *
 * @return The relay, a talloc child of mem_ctx; NULL only when out of
 *         memory (done_fn is then never called).
 */
struct tsgate_relay *tsgate_relay_start(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *client,
    struct tstream_context *backend,
    const struct tsgate_relay_params *params,
    struct tsgate_conn_stats *stats,
    tsgate_relay_done_fn done_fn,
    void *private_data);

/**
 * @brief The backend is gone for good (a program backend exited): the
 *        relay ends (err 0) as soon as the backend-to-client direction
 *        is over, its last bytes and half-close passed on, without
 *        waiting for the client. From the event loop only: done_fn may
 *        be called from here.
 */
void tsgate_relay_backend_gone(struct tsgate_relay *relay);

#endif /* TSGATE_RELAY_H */
