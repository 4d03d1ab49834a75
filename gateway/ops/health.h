/* SPDX-License-Identifier: MIT */
/*
 * The metrics listener's endpoints and the container health probe.
 *
 *   GET /metrics  200, Prometheus text format 0.0.4 (metrics.h)
 *   GET /healthz  200 "ok" whenever the event loop answers (liveness)
 *   GET /readyz   200 "ready" once listeners are bound; 503 "starting"
 *                 before that and 503 "draining" after SIGTERM/SIGINT
 *
 * HEAD works on each; anything else is 404 (unknown path) or 405 (other
 * method), see http_server.h.
 */
#ifndef TSGATE_HEALTH_H
#define TSGATE_HEALTH_H

#include <talloc.h>
#include <tevent.h>

#include "http_server.h"

struct tsgate_config;
struct tsgate_config_addr;
struct tsgate_metrics;

/* Content-Type of /metrics. */
#define TSGATE_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/**
 * @brief Serve /metrics, /healthz and /readyz of m on listen.
 *
 * Bind before dropping privileges (like the listeners). The server reads
 * m at each request; m must outlive it (make the server a child of the
 * daemon context created after m, or free it first).
 *
 * @param mem_ctx  Owner of the server; freeing it closes the socket.
 * @param ev       The daemon's event loop.
 * @param m        The registry.
 * @param listen   cfg->metrics_listen.
 * @param params   NULL for the defaults (5 s per request, 32 clients).
 * @param pserver  The server on success.
 * @param preason  On failure a message for the log (on mem_ctx), or NULL.
 * @return 0, or an errno value.
 */
int tsgate_metrics_server_new(TALLOC_CTX *mem_ctx,
			      struct tevent_context *ev,
			      struct tsgate_metrics *m,
			      const struct tsgate_config_addr *listen,
			      const struct tsgate_http_params *params,
			      struct tsgate_http_server **pserver,
			      char **preason);

/**
 * @brief The handler behind tsgate_metrics_server_new(), for callers that
 *        run their own tsgate_http_server (private_data is the registry).
 */
void tsgate_metrics_http_handler(void *private_data,
				 TALLOC_CTX *mem_ctx,
				 const struct tsgate_http_request *req,
				 struct tsgate_http_response *resp);

/**
 * @brief Ask the daemon of cfg whether it is alive: GET /healthz on
 *        cfg->metrics_listen with blocking I/O (for `tsgate --health`).
 *
 * A wildcard TCP address (0.0.0.0, ::) is probed on the loopback address
 * of its family. Without a metrics listener there is nothing to ask: the
 * probe succeeds (the config loaded, which is all that can be checked).
 *
 * @param cfg         The loaded config.
 * @param timeout_ms  Bound for the whole probe (connect, request, answer).
 * @return 0 on a 200 answer (or without a metrics listener); -1 with errno
 *         set otherwise: ETIMEDOUT, ECONNREFUSED/ENOENT (nobody listens),
 *         EPROTO (an answer other than 200), EBADMSG (not HTTP).
 */
int tsgate_health_probe(const struct tsgate_config *cfg, unsigned timeout_ms);

/**
 * @brief GET path on addr; like tsgate_health_probe() but for any path.
 *
 * @param pstatus  If not NULL, the status code received (0 if none).
 * @return 0 on 200; -1 with errno set as tsgate_health_probe() says.
 */
int tsgate_health_probe_addr(const struct tsgate_config_addr *addr,
			     const char *path,
			     unsigned timeout_ms,
			     unsigned *pstatus);

#endif /* TSGATE_HEALTH_H */
