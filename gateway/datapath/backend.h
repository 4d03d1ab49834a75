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
struct tstream_gssapi_pool;
struct tsgate_backend;

/**
 * @brief Prepare a route's backend (loads TLS/GSSAPI client credentials).
 *
 * @param mem_ctx     Owner.
 * @param route       The route (must outlive the backend).
 * @param timeout_ms  Connect timeout, tunnel handshake included; 0: none.
 * @param pbackend    The new backend.
 * @param preason     On failure, a readable reason on mem_ctx.
 * @return 0 or an errno.
 */
int tsgate_backend_new(TALLOC_CTX *mem_ctx,
		       const struct tsgate_config_route *route,
		       uint64_t timeout_ms,
		       struct tsgate_backend **pbackend,
		       char **preason);

/**
 * @brief Run the GSSAPI calls of this backend's handshakes in pool
 *        (NULL: on the event loop); see tstream_gssapi_params_set_pool().
 */
void tsgate_backend_set_gssapi_pool(struct tsgate_backend *backend,
				    struct tstream_gssapi_pool *pool);

/**
 * @brief Connect to the backend: socket, then the tunnel if any.
 *
 * TCP backends whose name resolved to several addresses are tried in
 * order. The whole connect (tunnel handshake included) is bounded by the
 * backend's timeout (ETIMEDOUT).
 */
struct tevent_req *tsgate_backend_connect_send(TALLOC_CTX *mem_ctx,
					       struct tevent_context *ev,
					       struct tsgate_backend *backend);

/**
 * @brief Which of the route's resolved addresses (route->backend.ips) the
 *        connect attempt in progress or last made went to: after a
 *        success, the one connected. 0 for a unix path or a single
 *        address (then route->backend.ip). Valid until the request is
 *        received.
 */
size_t tsgate_backend_connect_index(struct tevent_req *req);

/**
 * @brief The backend address a connect went to, for logs:
 *        "192.0.2.1:443", "[2001:db8::1]:443" or "unix:/path".
 *
 * @param addr   The route's backend.
 * @param index  tsgate_backend_connect_index().
 * @return The text on mem_ctx, or NULL when out of memory.
 */
char *tsgate_backend_address_string(TALLOC_CTX *mem_ctx,
				    const struct tsgate_config_addr *addr,
				    size_t index);

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
