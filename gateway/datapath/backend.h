/* SPDX-License-Identifier: MIT */
/*
 * A route's backend, ready to connect: the address, the connect kind
 * (plain, tls, gssapi) with its tunnel parameters, and the connect
 * timeout. Made once per route when the daemon starts.
 */
#ifndef TSGATE_BACKEND_H
#define TSGATE_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <talloc.h>
#include <tevent.h>

#include "config.h"

struct tstream_context;
struct tsgate_backend;
struct tsgate_pool;
struct tsgate_pool_member;

/*
 * A connection's place among the open connections of the backend it
 * connected to (least-connections, tsgate_backend_active_connections).
 * Part of the connection, so it costs no allocation of its own.
 */
struct tsgate_backend_tracker {
	struct tsgate_backend_tracker *prev, *next;
	struct tsgate_pool_member *member; /* NULL: not counted */
};

/**
 * @brief Prepare a route's backends (loads TLS/GSSAPI client credentials).
 *
 * @param mem_ctx     Owner.
 * @param pool        The worker's pool (backend_pool.h): the members of
 *                    the route, their health and counters live there.
 * @param listener    The listener's name (the members' key with the
 *                    route's name and each address).
 * @param route       The route (must outlive the backend).
 * @param timeout_ms  limits.connect_timeout: the connect timeout per
 *                    backend tried, tunnel handshake included, unless
 *                    the route sets its own; 0: none.
 * @param pbackend    The new backend.
 * @param preason     On failure, a readable reason on mem_ctx.
 * @return 0 or an errno.
 */
int tsgate_backend_new(TALLOC_CTX *mem_ctx,
		       struct tsgate_pool *pool,
		       const char *listener,
		       const struct tsgate_config_route *route,
		       uint64_t timeout_ms,
		       struct tsgate_backend **pbackend,
		       char **preason);

/**
 * @brief Connect to a backend of the route: socket, then the tunnel.
 *
 * The route's backends are tried in the order of its balance, those that
 * are up first; a TCP backend whose name has several addresses tries
 * them in order. Each backend's attempt (tunnel handshake included) is
 * bounded by the connect timeout; a failed one is counted against the
 * backend and the next is tried. Fails with the last attempt's error
 * when none connects.
 */
struct tevent_req *tsgate_backend_connect_send(TALLOC_CTX *mem_ctx,
					       struct tevent_context *ev,
					       struct tsgate_backend *backend);

/**
 * @brief Which backend of the route the connect attempt in progress or
 *        last made went to, for logs: after a success, the one
 *        connected. text is the backend as written, addr the address
 *        ("192.0.2.1:443", "[2001:db8::1]:443", "unix:/path"; a name
 *        may have several). Both stay valid while the pool lives
 *        (connections keep the pointers, not copies); NULL before any
 *        attempt.
 */
void tsgate_backend_connect_target(struct tevent_req *req,
				   const char **text,
				   const char **addr);

/**
 * @brief Count a successful connect's stream against its backend until
 *        tsgate_backend_untrack(t). Call before the receive; nothing
 *        happens for a failed connect.
 */
void tsgate_backend_connect_track(struct tevent_req *req,
				  struct tsgate_backend_tracker *t);
void tsgate_backend_untrack(struct tsgate_backend_tracker *t);

/**
 * @brief Receive the connected stream.
 * @param preason  Optional; on failure a readable reason on mem_ctx.
 * @return 0, or -1 with *perrno set (ECONNREFUSED, ENOENT, ETIMEDOUT,
 *         a tunnel error, ...).
 */
int tsgate_backend_connect_recv(struct tevent_req *req,
				int *perrno,
				TALLOC_CTX *mem_ctx,
				struct tstream_context **pstream,
				char **preason);

#endif /* TSGATE_BACKEND_H */
