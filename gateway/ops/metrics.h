/* SPDX-License-Identifier: MIT */
/*
 * tsgate metrics: counters, gauges and a histogram per listener and route,
 * rendered in the Prometheus text exposition format 0.0.4.
 *
 * One registry (struct tsgate_metrics) per process, made in main/daemon
 * start-up and passed down (no global state). The daemon takes a handle
 * per listener and per route when it creates them; the label set is
 * resolved then, so the hot path is a pointer dereference and an add: no
 * allocation, no lookup, no formatting.
 *
 * Series and handles
 *  - A series (the counters of one label set) lives while a handle or a
 *    connection tracker refers to it. Taking a handle for a name that is
 *    already in use returns the same series, so a reload that re-creates a
 *    listener or route of the same name continues its counters (Prometheus
 *    counters never go backwards for a label set) — provided the new
 *    handle is taken before the last old one is freed. A listener or route
 *    that the reload removes keeps its series while live connections
 *    still use it; when the last reference goes, the series leaves the
 *    output (a later re-appearance starts from 0, which Prometheus treats
 *    as a counter reset).
 *  - Handles and trackers may be freed before or after the registry, in
 *    any order.
 *
 * A handle that could not be made (NULL: out of memory) may be passed to
 * every function here: the call then does nothing (or returns NULL), so a
 * connection goes on uncounted rather than failing.
 *
 * The daemon's calls, in the order things happen:
 *
 *   m = tsgate_metrics_new(d, version, NULL);          start-up
 *   tsgate_metrics_server_new(d, ev, m, cfg->metrics_listen, ...)
 *   l->metrics = tsgate_metrics_listener_new(l, m, name);   per listener
 *   l->route_metrics[i] = tsgate_metrics_route_new(l, l->metrics, name);
 *   tsgate_metrics_set_state(m, TSGATE_METRICS_READY);  listeners bound
 *   tsgate_metrics_conn_init(&conn->metrics, l->metrics);  accept
 *   tsgate_metrics_handshake_failed() / tsgate_metrics_drop()  failures
 *   tsgate_metrics_conn_routed(&conn->metrics, route, &conn->stats);
 *   tsgate_metrics_backend_connected() / _backend_failed()
 *   tsgate_metrics_conn_fini(&conn->metrics);   conn's destructor
 *   tsgate_metrics_reload(m, ok);                       SIGHUP
 *   tsgate_metrics_set_state(m, TSGATE_METRICS_DRAINING);  SIGTERM
 *
 * Bytes and PDUs are not counted per call: a connection tracker points at
 * the relay's own live counters (struct tsgate_conn_stats) and the
 * renderer adds them to the route's totals of closed connections, so
 * /metrics shows live byte counts of long-lived connections at zero cost
 * on the data path.
 */
#ifndef TSGATE_METRICS_H
#define TSGATE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <talloc.h>

struct tsgate_metrics;
struct tsgate_metrics_listener;
struct tsgate_metrics_route;
struct tsgate_conn_stats;
struct metrics_lseries;
struct metrics_rseries;

/*
 * One connection's tracker. Its fields are metrics.c's; the struct is
 * here so a connection can hold it inside its own (a talloc chunk of its
 * own cost ~0.13 KiB per connection).
 */
struct tsgate_metrics_conn {
	struct tsgate_metrics_conn *prev, *next; /* in rs->live */
	struct metrics_lseries *ls;              /* NULL: not counted */
	struct metrics_rseries *rs;              /* NULL until routed */
	const struct tsgate_conn_stats *stats;
	struct timeval start;
	bool ended; /* tsgate_metrics_conn_end() was called */
};

/* Why a TLS/GSSAPI handshake with a client failed (label "reason"). */
enum tsgate_metrics_handshake_reason {
	TSGATE_METRICS_HS_TIMEOUT = 0, /* handshake_timeout passed */
	TSGATE_METRICS_HS_PROTOCOL,    /* malformed data, alert, bad token */
	TSGATE_METRICS_HS_AUTH,   /* peer certificate/credentials refused */
	TSGATE_METRICS_HS_CLOSED, /* peer closed or reset mid-handshake */
	TSGATE_METRICS_HS_OTHER,
	TSGATE_METRICS_HS_NUM
};

/* Why the gateway closed a connection early (label "reason"). */
enum tsgate_metrics_drop_reason {
	TSGATE_METRICS_DROP_MAX_CONNECTIONS = 0, /* refused at accept */
	/* refused at accept: limits.max_connections_per_source */
	TSGATE_METRICS_DROP_MAX_CONNECTIONS_PER_SOURCE,
	TSGATE_METRICS_DROP_HANDSHAKE_TIMEOUT,
	TSGATE_METRICS_DROP_HANDSHAKE_FAILED,
	TSGATE_METRICS_DROP_NO_ROUTE,
	TSGATE_METRICS_DROP_BACKEND_REFUSED,   /* connect failed (refused...) */
	TSGATE_METRICS_DROP_BACKEND_TIMEOUT,   /* connect_timeout passed */
	TSGATE_METRICS_DROP_BACKEND_HANDSHAKE, /* connect: tls/gssapi failed */
	TSGATE_METRICS_DROP_IDLE_TIMEOUT,
	TSGATE_METRICS_DROP_PDU_TOO_LARGE,
	TSGATE_METRICS_DROP_PDU_MALFORMED,
	TSGATE_METRICS_DROP_SHUTDOWN, /* still open when shutdown_grace ended */
	TSGATE_METRICS_DROP_OTHER,
	TSGATE_METRICS_DROP_NUM
};

/* The tunnel of a handshake with a client (label "kind"). */
enum tsgate_metrics_kind {
	TSGATE_METRICS_KIND_TLS = 0,
	TSGATE_METRICS_KIND_GSSAPI,
	TSGATE_METRICS_KIND_TLS_GSSAPI,
	TSGATE_METRICS_KIND_NUM
};

/*
 * How a routed connection ended (label "result" of
 * tsgate_connection_duration_seconds).
 */
enum tsgate_metrics_result {
	TSGATE_METRICS_RESULT_OK = 0,         /* both sides closed */
	TSGATE_METRICS_RESULT_BACKEND_FAILED, /* the backend connect failed */
	TSGATE_METRICS_RESULT_IDLE_TIMEOUT,
	TSGATE_METRICS_RESULT_SHUTDOWN, /* still open when the grace ended */
	TSGATE_METRICS_RESULT_ERROR,    /* reset, refused PDU, tunnel error */
	TSGATE_METRICS_RESULT_NUM
};

/* A label of tsgate_build_info beside version (name and value). */
struct tsgate_metrics_label {
	const char *name;
	const char *value;
};

/* What /readyz answers (and the tsgate_ready gauge). */
enum tsgate_metrics_state {
	TSGATE_METRICS_STARTING = 0, /* 503: config loaded, not yet bound */
	TSGATE_METRICS_READY,        /* 200: listeners bound, accepting */
	TSGATE_METRICS_DRAINING,     /* 503: SIGTERM/SIGINT, draining */
};

/*
 * Upper bounds of the backend connect latency histogram
 * (tsgate_backend_connect_duration_seconds), in seconds:
 * 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf.
 * Drop reasons and handshake reasons are rendered for every listener,
 * zeros included, so rate() works from the first scrape.
 */

/* A label value escaped as the exposition format wants it. */
char *tsgate_metrics_label_escape(TALLOC_CTX *mem_ctx, const char *s);
/* The "# HELP" and "# TYPE" lines of a family. */
void tsgate_metrics_family(char **out,
			   const char *name,
			   const char *type,
			   const char *help);

/*
 * Families a higher layer renders (the backend pool): fn appends
 * Prometheus text to *out after tsgate's own families. One at a time.
 */
typedef void (*tsgate_metrics_render_fn)(const void *private_data, char **out);
void tsgate_metrics_set_extra(struct tsgate_metrics *m,
			      tsgate_metrics_render_fn fn,
			      const void *private_data);

/**
 * @brief Make the registry.
 *
 * @param mem_ctx  Its owner.
 * @param version  Reported by tsgate_build_info{version="..."}; copied.
 * @param start    Process start time for tsgate_start_time_seconds; NULL
 *                 means now.
 * @return The registry (state STARTING), or NULL when out of memory.
 */
struct tsgate_metrics *tsgate_metrics_new(TALLOC_CTX *mem_ctx,
					  const char *version,
					  const struct timeval *start);

/**
 * @brief More labels for tsgate_build_info (library versions); copied.
 *
 * @return 0, EINVAL for a name that is not a label name, or ENOMEM (the
 *         labels then stay as they were).
 */
int tsgate_metrics_set_build_info(struct tsgate_metrics *m,
				  const struct tsgate_metrics_label *labels,
				  size_t n);

/** @brief Set what /readyz answers: STARTING, READY or DRAINING. */
void tsgate_metrics_set_state(struct tsgate_metrics *m,
			      enum tsgate_metrics_state state);

/** @brief The current readiness state. */
enum tsgate_metrics_state tsgate_metrics_get_state(
    const struct tsgate_metrics *m);

/**
 * @brief Count a reload (SIGHUP or a changed credential file): ok (its
 * time is tsgate_last_reload_success_timestamp_seconds) or failed
 * (config kept; tsgate_last_reload_successful 0 until the next success).
 */
void tsgate_metrics_reload(struct tsgate_metrics *m, bool ok);

/**
 * @brief A handle on the series of one listener.
 *
 * Call when the listener is created (at start-up and on each reload).
 *
 * @param mem_ctx  Owner of the handle (e.g. the listener struct).
 * @param m        The registry.
 * @param name     The listener's name (label listener="...").
 * @return The handle, or NULL when out of memory.
 */
struct tsgate_metrics_listener *tsgate_metrics_listener_new(
    TALLOC_CTX *mem_ctx, struct tsgate_metrics *m, const char *name);

/**
 * @brief A handle on the series of one route of a listener.
 *
 * @param mem_ctx   Owner of the handle (e.g. the listener struct).
 * @param listener  The listener's handle.
 * @param name      The route's name (label route="...").
 * @return The handle, or NULL when out of memory.
 */
struct tsgate_metrics_route *tsgate_metrics_route_new(
    TALLOC_CTX *mem_ctx,
    struct tsgate_metrics_listener *listener,
    const char *name);

/**
 * @brief Count a handshake failure with a client.
 *
 * Counted in tsgate_handshake_failures_total only; the daemon also calls
 * tsgate_metrics_drop() with HANDSHAKE_TIMEOUT or HANDSHAKE_FAILED for the
 * connection it then closes.
 */
void tsgate_metrics_handshake_failed(struct tsgate_metrics_listener *l,
				     enum tsgate_metrics_handshake_reason why);

/**
 * @brief Count a TLS handshake with a client that succeeded, full or
 * resumed (tsgate_tls_handshakes_total{listener,resumed}).
 */
void tsgate_metrics_tls_handshake(struct tsgate_metrics_listener *l,
				  bool resumed);

/**
 * @brief The listener's tunnel: its tsgate_handshake_duration_seconds
 *        series is rendered (zeros) from the first scrape.
 */
void tsgate_metrics_listener_kind(struct tsgate_metrics_listener *l,
				  enum tsgate_metrics_kind kind);

/**
 * @brief Count a completed handshake with a client and its duration
 *        (tsgate_handshake_duration_seconds; failures are counted by
 *        tsgate_metrics_handshake_failed() only).
 *
 * @param usec  From the start of the handshake to its end.
 */
void tsgate_metrics_handshake_done(struct tsgate_metrics_listener *l,
				   enum tsgate_metrics_kind kind,
				   uint64_t usec);

/** @brief Count a connection the gateway closed early, by reason. */
void tsgate_metrics_drop(struct tsgate_metrics_listener *l,
			 enum tsgate_metrics_drop_reason why);

/**
 * @brief Count a successful backend connect and its latency.
 *
 * @param usec  Time from starting the connect to a usable backend stream
 *              (including the TLS/GSSAPI handshake for connect: tls/gssapi),
 *              in microseconds.
 */
void tsgate_metrics_backend_connected(struct tsgate_metrics_route *r,
				      uint64_t usec);

/** @brief Count a failed backend connect (refused, timeout, handshake). */
void tsgate_metrics_backend_failed(struct tsgate_metrics_route *r);

/**
 * @brief Track one accepted connection.
 *
 * Counts it in tsgate_connections_total and tsgate_connections_active of
 * the listener; freeing the tracker takes it out of the active gauge.
 * Allocate it on the connection so it goes when the connection goes.
 *
 * @return The tracker, or NULL when out of memory (the connection can go
 *         on uncounted; every tsgate_metrics_conn_* call accepts NULL).
 */
struct tsgate_metrics_conn *tsgate_metrics_conn_new(
    TALLOC_CTX *mem_ctx, struct tsgate_metrics_listener *l);

/**
 * @brief tsgate_metrics_conn_new() on a struct the caller holds.
 *
 * Counts the connection as tsgate_metrics_conn_new() does (nothing when
 * l is NULL); tsgate_metrics_conn_fini() takes it out again and must be
 * called before the struct's memory goes.
 */
void tsgate_metrics_conn_init(struct tsgate_metrics_conn *c,
			      struct tsgate_metrics_listener *l);

/**
 * @brief What freeing a tracker does: the connection leaves the active
 *        gauges and its final byte and PDU counts are added for good.
 *        A second call does nothing.
 */
void tsgate_metrics_conn_fini(struct tsgate_metrics_conn *c);

/**
 * @brief The connection was routed: count it on the route and follow its
 *        live byte and PDU counters.
 *
 * Counts it in tsgate_route_connections_total/_active. Until the tracker
 * is freed, /metrics adds stats->bytes_up/bytes_down (client→backend,
 * backend→client) and pdus_up/pdus_down to the route's totals; when it is
 * freed their final values are added for good. stats must stay valid
 * until the tracker is freed (a struct in the connection that owns the
 * tracker is: talloc runs a child's destructor before the parent's memory
 * goes). Call at most once per tracker; later calls are ignored.
 */
void tsgate_metrics_conn_routed(struct tsgate_metrics_conn *c,
				struct tsgate_metrics_route *r,
				const struct tsgate_conn_stats *stats);

/**
 * @brief The connection ended: a routed one counts its life, from
 *        tsgate_metrics_conn_new() to now, in
 *        tsgate_connection_duration_seconds{route,result}. Once per
 *        tracker; an unrouted one is not counted there.
 */
void tsgate_metrics_conn_end(struct tsgate_metrics_conn *c,
			     enum tsgate_metrics_result result);

/**
 * @brief Render every series in the Prometheus text format 0.0.4.
 *
 * @return The text (on mem_ctx), or NULL when out of memory.
 */
char *tsgate_metrics_render(TALLOC_CTX *mem_ctx,
			    const struct tsgate_metrics *m);

/**
 * @brief Merge the /metrics texts of the workers of `workers: N` into one
 *        exposition: each family once (HELP and TYPE of the first text
 *        that has it), with the samples of every worker labelled
 *        worker="N", followed by tsgate_worker_up{worker="N"} (1 for a
 *        worker whose text is given, 0 for one that did not answer).
 *
 * @param mem_ctx  Owner of the result.
 * @param texts    One rendered text per worker (tsgate_metrics_render()
 *                 output), NULL for a worker that did not answer.
 * @param n        Number of workers.
 * @return The text, or NULL when out of memory.
 */
char *tsgate_metrics_merge_workers(TALLOC_CTX *mem_ctx,
				   const char *const *texts,
				   unsigned n);

/*
 * errno to reason, so every caller classifies alike. Handshake (client
 * side, tstream_tls_accept_recv/tstream_gssapi_accept_recv): ETIMEDOUT →
 * TIMEOUT; EACCES, EPERM, EKEYEXPIRED, EKEYREJECTED → AUTH; EPIPE,
 * ECONNRESET → CLOSED; EPROTO, EMSGSIZE, EBADMSG, ECONNABORTED → PROTOCOL;
 * anything else → OTHER.
 */
enum tsgate_metrics_handshake_reason tsgate_metrics_handshake_reason_of(
    int err);

/*
 * A failed backend connect (tsgate_backend_connect_recv): ETIMEDOUT →
 * BACKEND_TIMEOUT; ECONNREFUSED, ENOENT, EHOSTUNREACH, ENETUNREACH,
 * EADDRNOTAVAIL → BACKEND_REFUSED; anything else (the origination
 * handshake failed) → BACKEND_HANDSHAKE.
 */
enum tsgate_metrics_drop_reason tsgate_metrics_backend_drop_reason(int err);

/*
 * A failed relay (tsgate_relay_start's done callback): EMSGSIZE →
 * PDU_TOO_LARGE, EPROTO → PDU_MALFORMED, ETIMEDOUT → IDLE_TIMEOUT:
 * returns true with *why set.
 * Other errors (a peer reset) are not the gateway's doing: false.
 */
bool tsgate_metrics_relay_drop_reason(int err,
				      enum tsgate_metrics_drop_reason *why);

/** @brief The label value of a handshake failure reason ("timeout"...). */
const char *tsgate_metrics_handshake_reason_name(
    enum tsgate_metrics_handshake_reason why);

/** @brief The label value of a drop reason ("max_connections"...). */
const char *tsgate_metrics_drop_reason_name(
    enum tsgate_metrics_drop_reason why);

#endif /* TSGATE_METRICS_H */
