/* SPDX-License-Identifier: MIT */
/*
 * The life of one client connection, and the set of them a daemon
 * process serves.
 *
 * A connection goes: accept → tunnel handshake (tls, gssapi or plain,
 * bounded by limits.handshake_timeout) → route → backend connect →
 * identity hand-off → relay → one log line → freed. Everything up to the
 * relay is one tevent request whose state is freed when the relay starts,
 * so an idle connection keeps only what the relay and its log line need.
 * A connection is a talloc object that owns its streams and requests;
 * freeing it is its only teardown.
 *
 * The daemon owns the listeners; what a connection needs of the one that
 * accepted it is struct tsgate_conn_listener, which the daemon fills and
 * keeps alive while num_conns > 0.
 */
#ifndef TSGATE_CONN_H
#define TSGATE_CONN_H

#include <stdint.h>
#include <talloc.h>
#include <tevent.h>

#include "config.h"
#include "metrics.h"

struct tsgate_backend;
struct tsgate_config;
struct tsgate_config_listener;
struct tsgate_log;
struct tsgate_metrics_listener;
struct tsgate_metrics_route;
struct tstream_gssapi_params;
struct tstream_tls_params;

/* What connections use of the listener that accepted them. */
struct tsgate_conn_listener {
	const struct tsgate_config_listener *cfg;
	struct tstream_tls_params *tls;       /* accept: tls */
	struct tstream_gssapi_params *gssapi; /* accept: gssapi */
	struct tsgate_backend **backends;     /* one per route */
	struct tsgate_metrics_listener *metrics;
	struct tsgate_metrics_route **route_metrics; /* one per route */
	/*
	 * The listening socket carries TCP_NODELAY and the keepalive of cfg,
	 * which accepted sockets inherit: nothing to set per connection.
	 */
	bool tcp_options_inherited;
	/* live connections it accepted; maintained by the connections */
	uint32_t num_conns;
	/*
	 * Called from a connection's destructor when num_conns drops to 0
	 * (a retired listener goes then); NULL: nothing to do.
	 */
	void (*unused_fn)(void *private_data);
	void *private_data;
};

/* The connections of one daemon process. */
struct tsgate_conns;

/**
 * @brief The (empty) set of connections of a daemon process.
 *
 * @param mem_ctx  Owner. Free the connections (tsgate_conns_free_all())
 *                 before the listeners they came from.
 * @param ev       The daemon's event loop.
 * @param log      Where connection lines go.
 * @param cfg      The configuration whose limits apply to new
 *                 connections (see tsgate_conns_set_config()).
 * @return The set, or NULL when out of memory.
 */
struct tsgate_conns *tsgate_conns_new(TALLOC_CTX *mem_ctx,
				      struct tevent_context *ev,
				      struct tsgate_log *log,
				      const struct tsgate_config *cfg);

/** @brief After a reload: the limits of cfg apply to new connections. */
void tsgate_conns_set_config(struct tsgate_conns *conns,
			     const struct tsgate_config *cfg);

/**
 * @brief Serve a client that l accepted.
 *
 * @param conns  The set the connection joins.
 * @param l      The listener; must live while l->num_conns > 0.
 * @param fd     The accepted socket (non-blocking); always taken over,
 *               also when the connection is refused at once.
 */
void tsgate_conns_accept(struct tsgate_conns *conns,
			 struct tsgate_conn_listener *l,
			 int fd);

/** @brief Connections not freed yet (also those finishing). */
uint32_t tsgate_conns_num(const struct tsgate_conns *conns);

/** @brief Refuse new connections from now on ("shutting down"). */
void tsgate_conns_drain(struct tsgate_conns *conns);

/** @brief End every connection now ("shutdown grace expired"). */
void tsgate_conns_shutdown(struct tsgate_conns *conns);

/** @brief Free every connection at once, without further log lines. */
void tsgate_conns_free_all(struct tsgate_conns *conns);

/** @brief The metrics' handshake kind of a listener's accept mode. */
enum tsgate_metrics_kind tsgate_conn_metrics_kind(enum tsgate_config_accept a);

#endif /* TSGATE_CONN_H */
