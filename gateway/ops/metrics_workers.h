/* SPDX-License-Identifier: MIT */
/*
 * /metrics and /readyz for `workers: N` > 1: one exposition for the whole
 * set of workers.
 *
 * Each worker keeps its own registry (no shared memory: series come and
 * go with reloads). Before forking, the supervisor makes one listening
 * unix socket per worker 1..N-1 (autobound abstract names, so nothing in
 * the file system and no name anyone could take first) and keeps them
 * open, so a restarted worker takes over the same socket. Worker N
 * accepts on its socket and answers every connection with its state and
 * rendered text. Worker 0, which serves metrics.listen, connects to all of
 * them on each scrape of /metrics or /readyz (in parallel, bounded by
 * TSGATE_METRICS_GATHER_MS) and merges the texts with a worker="N" label
 * (tsgate_metrics_merge_workers()). Only processes of the same user (or
 * root) are answered.
 */
#ifndef TSGATE_METRICS_WORKERS_H
#define TSGATE_METRICS_WORKERS_H

#include <talloc.h>
#include <tevent.h>

#include "http_server.h"
#include "metrics.h"

/* How long worker 0 waits for the other workers' answers. */
#define TSGATE_METRICS_GATHER_MS 2000

struct tsgate_metrics_links;
struct tsgate_metrics_workers;

/**
 * @brief Make the sockets of workers 1..n-1 (in the supervisor, before
 *        forking; freeing the result closes them).
 *
 * @return The links, or NULL with errno set.
 */
struct tsgate_metrics_links *tsgate_metrics_links_new(TALLOC_CTX *mem_ctx,
						      unsigned n);

/**
 * @brief In worker `worker`: answer on its socket (worker > 0), or get
 *        ready to gather (worker 0). Closes the sockets of the others.
 *
 * @return The handle, or NULL when out of memory.
 */
struct tsgate_metrics_workers *tsgate_metrics_workers_new(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tsgate_metrics *m,
    struct tsgate_metrics_links *links,
    unsigned worker);

/**
 * @brief Worker 0: serve /metrics and /readyz of the whole set on server
 *        (other paths as tsgate_metrics_http_handler() does).
 */
void tsgate_metrics_workers_serve(struct tsgate_metrics_workers *w,
				  struct tsgate_http_server *server);

#endif /* TSGATE_METRICS_WORKERS_H */
