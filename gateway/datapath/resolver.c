/* SPDX-License-Identifier: MIT */
/*
 * Backend host names resolved again while the worker runs, without ever
 * blocking its event loop: c-ares, driven by tevent. c-ares tells us
 * which sockets it waits on (ARES_OPT_SOCK_STATE_CB) and when it next
 * wants to run (ares_timeout); we watch those with tevent fds and one
 * timer and hand it the events (ares_process_fd).
 *
 * Each member with a host name asks again every resolve_interval (or the
 * answer's TTL when that is shorter, at least 1 s). Every address of the
 * answer joins the member; a failed lookup keeps the last good answer.
 * With 'resolvers:' in the config only those servers are asked (and
 * /etc/hosts is not read); otherwise c-ares reads /etc/resolv.conf and
 * /etc/hosts as the system resolver does.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <netdb.h>
#include <string.h>

#include "backend_pool.h"
#include "log.h"

#define RESOLVER_TIMEOUT_MS 2000
#define RESOLVER_TRIES      2
#define RESOLVER_MIN_TTL_MS 1000

struct resolver_fd {
	struct resolver_fd *next;
	struct tsgate_resolver *r;
	int fd;
	struct tevent_fd *fde;
};

struct tsgate_resolver {
	struct tsgate_pool *pool;
	ares_channel channel;
	struct resolver_fd *fds;
	struct tevent_timer *timer;
};

/* One lookup in flight; outlives its job if the job is stopped. */
struct resolve_query {
	struct tsgate_resolve_job *job; /* NULL: nobody waits any more */
};

struct tsgate_resolve_job {
	struct tsgate_pool_member *member;
	uint64_t interval_ms;
	struct tevent_timer *timer;
	struct resolve_query *query;
	bool failing; /* logged once per run of failures */
};

static void resolver_arm_timer(struct tsgate_resolver *r);

static void resolver_fd_handler(struct tevent_context *ev,
				struct tevent_fd *fde,
				uint16_t flags,
				void *private_data)
{
	struct resolver_fd *rf = private_data;
	struct tsgate_resolver *r = rf->r;
	int fd = rf->fd;

	/* may free rf (the socket state callback) */
	ares_process_fd(r->channel,
			(flags & TEVENT_FD_READ) ? fd : ARES_SOCKET_BAD,
			(flags & TEVENT_FD_WRITE) ? fd : ARES_SOCKET_BAD);
	resolver_arm_timer(r);
}

static void resolver_sock_state(void *data, int fd, int readable, int writable)
{
	struct tsgate_resolver *r = data;
	struct resolver_fd **p, *rf;
	uint16_t flags =
	    (readable ? TEVENT_FD_READ : 0) | (writable ? TEVENT_FD_WRITE : 0);

	for (p = &r->fds; *p != NULL && (*p)->fd != fd; p = &(*p)->next) {
	}
	rf = *p;
	if (flags == 0) {
		if (rf != NULL) {
			*p = rf->next;
			talloc_free(rf);
		}
		return;
	}
	if (rf == NULL) {
		rf = talloc_zero(r, struct resolver_fd);
		if (rf == NULL) {
			return; /* the query times out */
		}
		rf->r = r;
		rf->fd = fd;
		rf->fde = tevent_add_fd(tsgate_pool_ev(r->pool), rf, fd, flags,
					resolver_fd_handler, rf);
		if (rf->fde == NULL) {
			talloc_free(rf);
			return;
		}
		rf->next = r->fds;
		r->fds = rf;
		return;
	}
	tevent_fd_set_flags(rf->fde, flags);
}

static void resolver_timeout(struct tevent_context *ev,
			     struct tevent_timer *te,
			     struct timeval now,
			     void *private_data)
{
	struct tsgate_resolver *r = private_data;

	r->timer = NULL;
	ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	resolver_arm_timer(r);
}

static void resolver_arm_timer(struct tsgate_resolver *r)
{
	struct timeval tv, *next;

	TALLOC_FREE(r->timer);
	next = ares_timeout(r->channel, NULL, &tv);
	if (next == NULL) {
		return;
	}
	r->timer = tevent_add_timer(
	    tsgate_pool_ev(r->pool), r,
	    tevent_timeval_current_ofs(next->tv_sec, next->tv_usec),
	    resolver_timeout, r);
}

static int resolver_destructor(struct tsgate_resolver *r)
{
	/* answers with ARES_EDESTRUCTION every query still in flight */
	ares_destroy(r->channel);
	return 0;
}

static struct tsgate_resolver *resolver_get(struct tsgate_pool *pool)
{
	struct tsgate_resolver **slot = tsgate_pool_resolver(pool);
	struct tsgate_resolver *r;
	struct ares_options opts = {0};
	const char *const *servers;
	size_t num, i;
	char *csv = NULL;
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
	char lookups[] = "b";

	if (*slot != NULL) {
		return *slot;
	}
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
		return NULL;
	}
	r = talloc_zero(pool, struct tsgate_resolver);
	if (r == NULL) {
		return NULL;
	}
	r->pool = pool;
	opts.sock_state_cb = resolver_sock_state;
	opts.sock_state_cb_data = r;
	opts.timeout = RESOLVER_TIMEOUT_MS;
	opts.tries = RESOLVER_TRIES;
	servers = tsgate_pool_resolvers(pool, &num);
	if (num > 0) {
		opts.lookups = lookups;
		mask |= ARES_OPT_LOOKUPS;
	}
	if (ares_init_options(&r->channel, &opts, mask) != ARES_SUCCESS) {
		talloc_free(r);
		return NULL;
	}
	talloc_set_destructor(r, resolver_destructor);
	for (i = 0; i < num; i++) {
		csv = talloc_asprintf_append(csv, "%s%s", i > 0 ? "," : "",
					     servers[i]);
	}
	if (num > 0 && (csv == NULL || ares_set_servers_ports_csv(
					   r->channel, csv) != ARES_SUCCESS)) {
		talloc_free(csv);
		talloc_free(r);
		return NULL;
	}
	talloc_free(csv);
	*slot = r;
	return r;
}

static void resolve_job_schedule(struct tsgate_resolve_job *job, uint64_t ms);

/* The numeric addresses of an answer, without repeats. */
static const char **resolve_answer_ips(TALLOC_CTX *mem_ctx,
				       const struct ares_addrinfo *res,
				       size_t *pnum,
				       int *pttl)
{
	const struct ares_addrinfo_node *n;
	const char **ips = NULL;
	size_t num = 0, i;

	*pttl = -1;
	for (n = res != NULL ? res->nodes : NULL; n != NULL; n = n->ai_next) {
		char buf[INET6_ADDRSTRLEN];
		const void *a;
		const char **more;

		if (n->ai_family == AF_INET) {
			a = &((const struct sockaddr_in *)n->ai_addr)->sin_addr;
		} else if (n->ai_family == AF_INET6) {
			a = &((const struct sockaddr_in6 *)n->ai_addr)
				 ->sin6_addr;
		} else {
			continue;
		}
		if (inet_ntop(n->ai_family, a, buf, sizeof(buf)) == NULL) {
			continue;
		}
		for (i = 0; i < num && strcmp(ips[i], buf) != 0; i++) {
		}
		if (i < num) {
			continue;
		}
		more = talloc_realloc(mem_ctx, ips, const char *, num + 1);
		if (more == NULL) {
			talloc_free(ips);
			return NULL;
		}
		ips = more;
		ips[num] = talloc_strdup(ips, buf);
		if (ips[num] == NULL) {
			talloc_free(ips);
			return NULL;
		}
		num++;
		if (*pttl < 0 || n->ai_ttl < *pttl) {
			*pttl = n->ai_ttl;
		}
	}
	*pnum = num;
	return ips;
}

static bool resolve_same_ips(const struct tsgate_pool_member *m,
			     const char **ips,
			     size_t num)
{
	size_t i;

	if (num != m->num_ips) {
		return false;
	}
	for (i = 0; i < num; i++) {
		if (strcmp(ips[i], m->ips[i]) != 0) {
			return false;
		}
	}
	return true;
}

static void resolve_answer(void *arg,
			   int status,
			   int timeouts,
			   struct ares_addrinfo *res)
{
	struct resolve_query *q = arg;
	struct tsgate_resolve_job *job = q->job;
	struct tsgate_pool_member *m;
	const char **ips = NULL;
	size_t num = 0;
	int ttl = -1;
	uint64_t next;

	talloc_free(q);
	if (job == NULL) {
		ares_freeaddrinfo(res);
		return;
	}
	job->query = NULL;
	m = job->member;
	next = job->interval_ms;
	if (status == ARES_SUCCESS) {
		ips = resolve_answer_ips(job, res, &num, &ttl);
	}
	ares_freeaddrinfo(res);
	if (num == 0) {
		if (!job->failing) {
			tsgate_log_msg(tsgate_pool_log(m->pool),
				       TSGATE_CONFIG_LOG_WARNING, "backend",
				       "route %s: cannot resolve %s: %s; "
				       "keeping %zu known address(es)",
				       m->route, m->addr.host,
				       status == ARES_SUCCESS
					   ? "no IPv4 or IPv6 address"
					   : ares_strerror(status),
				       m->num_ips);
		}
		job->failing = true;
		talloc_free(ips);
		resolve_job_schedule(job, next);
		return;
	}
	job->failing = false;
	if (!resolve_same_ips(m, ips, num)) {
		tsgate_log_msg(tsgate_pool_log(m->pool), TSGATE_CONFIG_LOG_INFO,
			       "backend",
			       "route %s: %s now has %zu address(es), "
			       "first %s",
			       m->route, m->addr.host, num, ips[0]);
		tsgate_pool_member_set_ips(m, ips, num);
	} else {
		talloc_free(ips);
	}
	if (ttl >= 0 && (uint64_t)ttl * 1000 < next) {
		next = (uint64_t)ttl * 1000;
	}
	if (next < RESOLVER_MIN_TTL_MS) {
		next = RESOLVER_MIN_TTL_MS;
	}
	resolve_job_schedule(job, next);
}

static void resolve_job_fire(struct tevent_context *ev,
			     struct tevent_timer *te,
			     struct timeval now,
			     void *private_data)
{
	struct tsgate_resolve_job *job = private_data;
	struct tsgate_resolver *r;
	struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC,
					    .ai_socktype = SOCK_STREAM};

	job->timer = NULL;
	r = resolver_get(job->member->pool);
	job->query = r != NULL ? talloc_zero(NULL, struct resolve_query) : NULL;
	if (job->query == NULL) {
		resolve_job_schedule(job, job->interval_ms);
		return;
	}
	job->query->job = job;
	/* may answer at once (a hosts entry, a cached error) */
	ares_getaddrinfo(r->channel, job->member->addr.host, NULL, &hints,
			 resolve_answer, job->query);
	resolver_arm_timer(r);
}

static void resolve_job_schedule(struct tsgate_resolve_job *job, uint64_t ms)
{
	TALLOC_FREE(job->timer);
	job->timer = tevent_add_timer(
	    tsgate_pool_ev(job->member->pool), job,
	    tevent_timeval_current_ofs(ms / 1000, (ms % 1000) * 1000),
	    resolve_job_fire, job);
}

static int resolve_job_destructor(struct tsgate_resolve_job *job)
{
	if (job->query != NULL) {
		job->query->job = NULL;
	}
	return 0;
}

void tsgate_resolve_stop(struct tsgate_pool_member *m)
{
	TALLOC_FREE(m->resolve);
}

int tsgate_resolve_arm(struct tsgate_pool_member *m, uint64_t interval_ms)
{
	struct tsgate_resolve_job *job = m->resolve;
	unsigned char buf[16];

	if (inet_pton(AF_INET, m->addr.host, buf) == 1 ||
	    inet_pton(AF_INET6, m->addr.host, buf) == 1) {
		return 0; /* an IP literal never changes */
	}
	if (job == NULL) {
		job = talloc_zero(m, struct tsgate_resolve_job);
		if (job == NULL) {
			return ENOMEM;
		}
		job->member = m;
		talloc_set_destructor(job, resolve_job_destructor);
		m->resolve = job;
	}
	job->interval_ms = interval_ms;
	if (job->query == NULL) {
		/* not resolved yet (resolvers: in the config): ask now */
		resolve_job_schedule(job, m->resolved ? interval_ms : 0);
	}
	return job->timer != NULL || job->query != NULL ? 0 : ENOMEM;
}
