/* SPDX-License-Identifier: MIT */
/*
 * The backends of a worker process: one member per (listener, route,
 * address) of the configuration, kept across reloads so that a backend
 * that stays in the configuration keeps its health state, its counters
 * and its resolved addresses. A route's struct tsgate_backend (backend.c)
 * points at its members; the pool decides the order in which a new
 * connection tries them (balance, health) and learns from each attempt.
 *
 * Health: a member that fails a connect (or a health check) is down. A
 * route tries the members that are up first and the down ones only when
 * none is up, so a client is served while any backend answers. Without
 * active checks a down member becomes eligible again after a back-off
 * (1 s, doubling to 30 s) and the next connection that tries it decides;
 * with checks, only a passing check brings it back.
 */
#ifndef TSGATE_BACKEND_POOL_H
#define TSGATE_BACKEND_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <talloc.h>
#include <tevent.h>

#include "backend.h"
#include "config.h"

struct tsgate_log;
struct tstream_context;
struct tsgate_metrics;

struct tsgate_pool_member {
	struct tsgate_pool *pool;
	char *listener;
	char *route;
	char *text; /* the address as written */
	struct tsgate_config_addr addr;
	/* TCP: the addresses now (from the config or the resolver) */
	const char **ips;
	size_t num_ips;
	bool resolved; /* num_ips comes from an answer (or the config) */
	/* routes (struct tsgate_backend) using it; at 0 it stops checking
	 * and resolving, and leaves the metrics */
	unsigned refs;
	/* health */
	bool up;
	bool checked; /* active checks decide up/down */
	unsigned fails;
	unsigned backoff_s;
	struct timeval down_until;
	/* every address text handed out (tsgate_pool_member_intern) */
	const char **interned;
	size_t num_interned;
	/* counters */
	uint64_t active;
	uint64_t connections;
	uint64_t failures;
	/* active checks and re-resolution (backend_health.c, resolver.c) */
	struct tsgate_health_check *check;
	struct tsgate_resolve_job *resolve;
};

/**
 * @brief The worker's pool: the daemon makes one and keeps it across
 *        reloads (counters and health outlive a configuration).
 *
 * Make it before the routes' backends on the same owner, so that they
 * go first; connections may outlive it.
 */
struct tsgate_pool *tsgate_pool_new(TALLOC_CTX *mem_ctx,
				    struct tevent_context *ev,
				    struct tsgate_log *log);

/* DNS servers for host names ("IP[:PORT]"; none: the system's). */
int tsgate_pool_set_resolvers(struct tsgate_pool *pool,
			      const char *const *servers,
			      size_t num);

/**
 * @brief The member for one address of a route, made or kept.
 *
 * Its checks and re-resolution are (re)armed from the route's settings;
 * the caller holds a reference until tsgate_pool_member_put().
 */
struct tsgate_pool_member *tsgate_pool_member_get(
    struct tsgate_pool *pool,
    const char *listener,
    const struct tsgate_config_route *route,
    const struct tsgate_config_addr *addr,
    const struct tsgate_config_tls_client *check_tls,
    uint64_t check_timeout_ms);

void tsgate_pool_member_put(struct tsgate_pool_member *m);

/**
 * @brief The order in which a new connection tries members.
 *
 * @param members   The route's members, in config order.
 * @param cursor    The route's round-robin cursor (advanced).
 * @param order     Out: n indexes into members; eligible ones first.
 */
void tsgate_pool_order(struct tsgate_pool_member *const *members,
		       size_t n,
		       enum tsgate_config_balance balance,
		       uint64_t *cursor,
		       size_t *order);

/* The outcome of one connect attempt (reason: for the log, may be NULL) */
void tsgate_pool_member_failed(struct tsgate_pool_member *m,
			       const char *reason);
void tsgate_pool_member_ok(struct tsgate_pool_member *m);

/*
 * A string equal to addr that lives as long as the pool: connections
 * keep such pointers for their log line. The set only grows (with the
 * addresses a member ever connected to); NULL when out of memory.
 */
const char *tsgate_pool_member_intern(struct tsgate_pool_member *m,
				      const char *addr);

/*
 * A socket connect to m: its unix path, or its TCP address m->ips[ip].
 * NULL with errno when it cannot start. Receive with the member.
 */
struct tevent_req *tsgate_pool_member_connect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    const struct tsgate_pool_member *m,
    size_t ip);
int tsgate_pool_member_connect_recv(struct tevent_req *req,
				    const struct tsgate_pool_member *m,
				    int *perrno,
				    TALLOC_CTX *mem_ctx,
				    struct tstream_context **stream);

/* An active check's verdict (backend_health.c). */
void tsgate_pool_member_checked(struct tsgate_pool_member *m,
				bool ok,
				const char *reason);

/* New addresses from the resolver (owned by the member afterwards). */
void tsgate_pool_member_set_ips(struct tsgate_pool_member *m,
				const char **ips,
				size_t num_ips);

/*
 * A talloc child of a connected stream: counts the member's active
 * connections (least-connections) until the stream is freed.
 */
void tsgate_pool_track(struct tsgate_pool_member *m,
		       struct tsgate_backend_tracker *t);
void tsgate_pool_untrack(struct tsgate_backend_tracker *t);

struct tevent_context *tsgate_pool_ev(const struct tsgate_pool *pool);
const char *const *tsgate_pool_resolvers(const struct tsgate_pool *pool,
					 size_t *num);
/* resolver.c's channel slot (NULL until the first lookup) */
struct tsgate_resolver **tsgate_pool_resolver(struct tsgate_pool *pool);
struct tsgate_log *tsgate_pool_log(const struct tsgate_pool *pool);

/* The pool's metric families (Prometheus text), appended to *out. */
void tsgate_pool_render_metrics(const struct tsgate_pool *pool, char **out);

/* backend_health.c: active checks of a member (interval 0: none) */
int tsgate_health_check_arm(struct tsgate_pool_member *m,
			    const struct tsgate_config_health_check *hc,
			    enum tsgate_config_connect connect,
			    const struct tsgate_config_tls_client *tls,
			    uint64_t default_timeout_ms);
void tsgate_health_check_stop(struct tsgate_pool_member *m);

/* resolver.c: re-resolution of a member's host name */
int tsgate_resolve_arm(struct tsgate_pool_member *m, uint64_t interval_ms);
void tsgate_resolve_stop(struct tsgate_pool_member *m);

#endif /* TSGATE_BACKEND_POOL_H */
