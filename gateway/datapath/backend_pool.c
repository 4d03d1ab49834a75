/* SPDX-License-Identifier: MIT */
/*
 * The worker's backend pool: see backend_pool.h.
 */
#include "backend_pool.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <tsocket.h>

#include "log.h"
#include "metrics.h"
#include "tsgate_dlist.h"

/* Passive health: back-off of a member that failed, doubling to this. */
#define POOL_BACKOFF_FIRST_S 1
#define POOL_BACKOFF_MAX_S   30

struct tsgate_pool {
	struct tevent_context *ev;
	struct tsgate_log *log;
	struct tsgate_pool_member **members;
	size_t num_members;
	/* resolver.c's channel, made on first use */
	struct tsgate_resolver *resolver;
	const char **resolvers;
	size_t num_resolvers;
	struct tsgate_backend_tracker *trackers; /* of open connections */
};

static int pool_destructor(struct tsgate_pool *pool)
{
	struct tsgate_backend_tracker *t;

	/* connections may outlive the pool: their trackers let go */
	while ((t = pool->trackers) != NULL) {
		TSG_DLIST_REMOVE(pool->trackers, t);
		t->member = NULL;
	}
	return 0;
}

struct tsgate_pool *tsgate_pool_new(TALLOC_CTX *mem_ctx,
				    struct tevent_context *ev,
				    struct tsgate_log *log)
{
	struct tsgate_pool *pool = talloc_zero(mem_ctx, struct tsgate_pool);

	if (pool == NULL) {
		return NULL;
	}
	pool->ev = ev;
	pool->log = log;
	talloc_set_destructor(pool, pool_destructor);
	return pool;
}

int tsgate_pool_set_resolvers(struct tsgate_pool *pool,
			      const char *const *servers,
			      size_t num)
{
	const char **copy = NULL;
	bool same = num == pool->num_resolvers;
	size_t i;

	for (i = 0; same && i < num; i++) {
		same = strcmp(servers[i], pool->resolvers[i]) == 0;
	}
	if (same) {
		return 0;
	}
	if (num > 0) {
		copy = talloc_array(pool, const char *, num);
		if (copy == NULL) {
			return ENOMEM;
		}
		for (i = 0; i < num; i++) {
			copy[i] = talloc_strdup(copy, servers[i]);
			if (copy[i] == NULL) {
				talloc_free(copy);
				return ENOMEM;
			}
		}
	}
	talloc_free(pool->resolvers);
	pool->resolvers = copy;
	pool->num_resolvers = num;
	/* the next lookup makes a channel with the new servers */
	TALLOC_FREE(pool->resolver);
	return 0;
}

const char *const *tsgate_pool_resolvers(const struct tsgate_pool *pool,
					 size_t *num)
{
	*num = pool->num_resolvers;
	return pool->resolvers;
}

struct tsgate_resolver **tsgate_pool_resolver(struct tsgate_pool *pool)
{
	return &pool->resolver;
}

struct tevent_context *tsgate_pool_ev(const struct tsgate_pool *pool)
{
	return pool->ev;
}

struct tsgate_log *tsgate_pool_log(const struct tsgate_pool *pool)
{
	return pool->log;
}

void tsgate_pool_member_put(struct tsgate_pool_member *m)
{
	if (m->refs > 0 && --m->refs == 0) {
		tsgate_health_check_stop(m);
		tsgate_resolve_stop(m);
	}
}

static bool member_is(const struct tsgate_pool_member *m,
		      const char *listener,
		      const char *route,
		      const char *text)
{
	return strcmp(m->listener, listener) == 0 &&
	       strcmp(m->route, route) == 0 && strcmp(m->text, text) == 0;
}

/*
 * The addresses the configuration resolved (at start or reload: the
 * newest answer); an address filled in by hand may have only ip.
 */
static bool member_take_ips(struct tsgate_pool_member *m,
			    const struct tsgate_config_addr *addr)
{
	size_t n = addr->num_ips > 0 ? addr->num_ips : addr->ip != NULL;
	const char **ips;
	size_t i;

	if (n == 0) {
		return true;
	}
	ips = talloc_zero_array(m, const char *, n);
	if (ips == NULL) {
		return false;
	}
	for (i = 0; i < n; i++) {
		ips[i] = talloc_strdup(ips, addr->num_ips > 0 ? addr->ips[i]
							      : addr->ip);
		if (ips[i] == NULL) {
			talloc_free(ips);
			return false;
		}
	}
	tsgate_pool_member_set_ips(m, ips, n);
	return true;
}

static struct tsgate_pool_member *member_new(
    struct tsgate_pool *pool,
    const char *listener,
    const char *route,
    const struct tsgate_config_addr *addr)
{
	struct tsgate_pool_member **ms;
	struct tsgate_pool_member *m;

	ms = talloc_realloc(pool, pool->members, struct tsgate_pool_member *,
			    pool->num_members + 1);
	if (ms == NULL) {
		return NULL;
	}
	pool->members = ms;
	m = talloc_zero(pool, struct tsgate_pool_member);
	if (m == NULL) {
		return NULL;
	}
	m->pool = pool;
	m->listener = talloc_strdup(m, listener);
	m->route = talloc_strdup(m, route);
	m->text = talloc_strdup(m, addr->text);
	m->addr = *addr;
	m->addr.text = m->text;
	m->addr.host = talloc_strdup(m, addr->host);
	m->addr.path = talloc_strdup(m, addr->path);
	m->addr.ips = NULL;
	m->addr.num_ips = 0;
	m->addr.ip = NULL;
	if (m->listener == NULL || m->route == NULL || m->text == NULL ||
	    (addr->host != NULL && m->addr.host == NULL) ||
	    (addr->path != NULL && m->addr.path == NULL) ||
	    !member_take_ips(m, addr)) {
		talloc_free(m);
		return NULL;
	}
	m->resolved = addr->kind != TSGATE_CONFIG_ADDR_TCP || m->num_ips > 0;
	m->up = true;
	pool->members[pool->num_members++] = m;
	return m;
}

struct tsgate_pool_member *tsgate_pool_member_get(
    struct tsgate_pool *pool,
    const char *listener,
    const struct tsgate_config_route *route,
    const struct tsgate_config_addr *addr,
    const struct tsgate_config_tls_client *check_tls,
    uint64_t check_timeout_ms)
{
	struct tsgate_pool_member *m = NULL;
	size_t i;

	for (i = 0; i < pool->num_members; i++) {
		if (member_is(pool->members[i], listener, route->name,
			      addr->text)) {
			m = pool->members[i];
			break;
		}
	}
	if (m == NULL) {
		m = member_new(pool, listener, route->name, addr);
		if (m == NULL) {
			return NULL;
		}
	} else if (!member_take_ips(m, addr)) {
		return NULL;
	}
	if (tsgate_health_check_arm(m, &route->health_check, route->connect,
				    check_tls, check_timeout_ms) != 0) {
		return NULL;
	}
	if (m->addr.kind == TSGATE_CONFIG_ADDR_TCP && m->addr.host != NULL &&
	    tsgate_resolve_arm(m, route->resolve_interval_ms) != 0) {
		return NULL;
	}
	m->refs++;
	return m;
}

/* Whether m takes new connections now (before the down ones). */
static bool member_eligible(const struct tsgate_pool_member *m,
			    const struct timeval *now)
{
	if (!m->resolved) {
		return false;
	}
	if (m->up) {
		return true;
	}
	if (m->checked) {
		return false;
	}
	return tevent_timeval_compare(now, &m->down_until) >= 0;
}

void tsgate_pool_order(struct tsgate_pool_member *const *members,
		       size_t n,
		       enum tsgate_config_balance balance,
		       uint64_t *cursor,
		       size_t *order)
{
	struct timeval now = tevent_timeval_current();
	size_t start = 0, i, j, k = 0;

	if (n == 0) {
		return;
	}
	if (balance != TSGATE_CONFIG_BALANCE_FIRST) {
		start = (size_t)(*cursor % n);
		*cursor += 1;
	}
	/* eligible members first, from the start; then the others */
	for (i = 0; i < n; i++) {
		j = (start + i) % n;
		if (member_eligible(members[j], &now)) {
			order[k++] = j;
		}
	}
	for (i = 0; i < n; i++) {
		j = (start + i) % n;
		if (!member_eligible(members[j], &now)) {
			order[k++] = j;
		}
	}
	if (balance == TSGATE_CONFIG_BALANCE_LEAST_CONNECTIONS) {
		/* insertion sort of the eligible ones: fewest active first;
		 * ties keep the round-robin order */
		size_t eligible = 0;

		while (eligible < n &&
		       member_eligible(members[order[eligible]], &now)) {
			eligible++;
		}
		for (i = 1; i < eligible; i++) {
			size_t v = order[i];

			for (j = i; j > 0 && members[order[j - 1]]->active >
						 members[v]->active;
			     j--) {
				order[j] = order[j - 1];
			}
			order[j] = v;
		}
	}
}

static void member_state_log(struct tsgate_pool_member *m,
			     bool up,
			     const char *reason)
{
	if (m->pool->log == NULL) {
		return;
	}
	tsgate_log_msg(m->pool->log,
		       up ? TSGATE_CONFIG_LOG_INFO : TSGATE_CONFIG_LOG_WARNING,
		       "backend", "listener %s route %s backend %s is %s%s%s",
		       m->listener, m->route, m->text, up ? "up" : "down",
		       reason != NULL ? ": " : "",
		       reason != NULL ? reason : "");
}

void tsgate_pool_member_failed(struct tsgate_pool_member *m, const char *reason)
{
	m->failures++;
	m->fails++;
	if (m->checked) {
		/* the checks bring it back; a failed connect takes it out */
		if (m->up) {
			m->up = false;
			member_state_log(m, false, reason);
		}
		return;
	}
	m->backoff_s =
	    m->backoff_s == 0 ? POOL_BACKOFF_FIRST_S : m->backoff_s * 2;
	if (m->backoff_s > POOL_BACKOFF_MAX_S) {
		m->backoff_s = POOL_BACKOFF_MAX_S;
	}
	m->down_until = tevent_timeval_current_ofs(m->backoff_s, 0);
	if (m->up) {
		m->up = false;
		member_state_log(m, false, reason);
	}
}

void tsgate_pool_member_ok(struct tsgate_pool_member *m)
{
	m->connections++;
	m->fails = 0;
	m->backoff_s = 0;
	if (!m->up) {
		m->up = true;
		member_state_log(m, true, NULL);
	}
}

void tsgate_pool_member_checked(struct tsgate_pool_member *m,
				bool ok,
				const char *reason)
{
	m->checked = true;
	if (ok && !m->up) {
		m->up = true;
		m->fails = 0;
		m->backoff_s = 0;
		member_state_log(m, true, "health check passed");
	} else if (!ok && m->up) {
		m->up = false;
		member_state_log(m, false, reason);
	}
}

const char *tsgate_pool_member_intern(struct tsgate_pool_member *m,
				      const char *addr)
{
	const char **more;
	size_t i;

	for (i = 0; i < m->num_interned; i++) {
		if (strcmp(m->interned[i], addr) == 0) {
			return m->interned[i];
		}
	}
	more =
	    talloc_realloc(m, m->interned, const char *, m->num_interned + 1);
	if (more == NULL) {
		return NULL;
	}
	m->interned = more;
	more[m->num_interned] = talloc_strdup(more, addr);
	if (more[m->num_interned] == NULL) {
		return NULL;
	}
	return more[m->num_interned++];
}

struct tevent_req *tsgate_pool_member_connect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    const struct tsgate_pool_member *m,
    size_t ip)
{
	TALLOC_CTX *tmp = talloc_new(mem_ctx);
	struct tsocket_address *local = NULL, *remote = NULL;
	struct tevent_req *req = NULL;
	int ret;

	if (tmp == NULL) {
		return NULL;
	}
	if (m->addr.kind == TSGATE_CONFIG_ADDR_UNIX) {
		ret = tsocket_address_unix_from_path(tmp, "", &local);
		if (ret == 0) {
			ret = tsocket_address_unix_from_path(tmp, m->addr.path,
							     &remote);
		}
		if (ret == 0) {
			req = tstream_unix_connect_send(mem_ctx, ev, local,
							remote);
		}
	} else {
		ret = tsocket_address_inet_from_strings(tmp, "ip", m->ips[ip],
							m->addr.port, &remote);
		if (ret == 0) {
			ret = tsocket_address_inet_from_strings(
			    tmp,
			    tsocket_address_is_inet(remote, "ipv6") ? "ipv6"
								    : "ipv4",
			    NULL, 0, &local);
		}
		if (ret == 0) {
			req = tstream_inet_tcp_connect_send(mem_ctx, ev, local,
							    remote);
		}
	}
	talloc_free(tmp);
	if (req == NULL && ret == 0) {
		errno = ENOMEM;
	}
	return req;
}

int tsgate_pool_member_connect_recv(struct tevent_req *req,
				    const struct tsgate_pool_member *m,
				    int *perrno,
				    TALLOC_CTX *mem_ctx,
				    struct tstream_context **stream)
{
	if (m->addr.kind == TSGATE_CONFIG_ADDR_UNIX) {
		return tstream_unix_connect_recv(req, perrno, mem_ctx, stream);
	}
	return tstream_inet_tcp_connect_recv(req, perrno, mem_ctx, stream);
}

void tsgate_pool_member_set_ips(struct tsgate_pool_member *m,
				const char **ips,
				size_t num_ips)
{
	talloc_free(m->ips);
	m->ips = talloc_steal(m, ips);
	m->num_ips = num_ips;
	m->resolved = true;
}

void tsgate_pool_track(struct tsgate_pool_member *m,
		       struct tsgate_backend_tracker *t)
{
	tsgate_pool_untrack(t);
	t->member = m;
	m->active++;
	TSG_DLIST_ADD(m->pool->trackers, t);
}

void tsgate_pool_untrack(struct tsgate_backend_tracker *t)
{
	struct tsgate_pool_member *m = t->member;

	if (m == NULL) {
		return;
	}
	if (m->active > 0) {
		m->active--;
	}
	TSG_DLIST_REMOVE(m->pool->trackers, t);
	t->member = NULL;
}

void tsgate_pool_render_metrics(const struct tsgate_pool *pool, char **out)
{
	static const char *const names[] = {
	    "tsgate_backend_up",
	    "tsgate_backend_connections_total",
	    "tsgate_backend_failures_total",
	    "tsgate_backend_active_connections",
	};
	static const char *const types[] = {"gauge", "counter", "counter",
					    "gauge"};
	static const char *const helps[] = {
	    "1 while a backend takes new connections, 0 while it is down.",
	    "Connections made to a backend.",
	    "Failed connects and health checks of a backend.",
	    "Connections open to a backend now.",
	};
	TALLOC_CTX *tmp;
	size_t f, i;

	if (pool == NULL || pool->num_members == 0) {
		return;
	}
	tmp = talloc_new(NULL);
	for (f = 0; f < 4; f++) {
		tsgate_metrics_family(out, names[f], types[f], helps[f]);
		for (i = 0; i < pool->num_members; i++) {
			const struct tsgate_pool_member *m = pool->members[i];
			uint64_t v;

			if (m->refs == 0) {
				continue;
			}
			switch (f) {
			case 0:
				v = m->up && m->resolved ? 1 : 0;
				break;
			case 1:
				v = m->connections;
				break;
			case 2:
				v = m->failures;
				break;
			default:
				v = m->active;
				break;
			}
			talloc_asprintf_addbuf(
			    out,
			    "%s{listener=\"%s\",route=\"%s\",backend=\"%s\"} "
			    "%" PRIu64 "\n",
			    names[f],
			    tsgate_metrics_label_escape(tmp, m->listener),
			    tsgate_metrics_label_escape(tmp, m->route),
			    tsgate_metrics_label_escape(tmp, m->text), v);
		}
	}
	talloc_free(tmp);
}
