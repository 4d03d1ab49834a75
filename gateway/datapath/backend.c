/* SPDX-License-Identifier: MIT */
/*
 * Backend connections: unix or TCP, then the route's tunnel. A route
 * with several backends tries them in the pool's order (backend_pool.c):
 * one that refuses, resets or does not answer within connect_timeout is
 * left for the next, so the client sees a failure only when none
 * answers.
 */
#include "backend.h"
#include "backend_pool.h"
#include "config_tunnels.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <tsocket.h>

#include "tls_gssapi.h"
#include "tstream_gssapi.h"
#include "tstream_tls.h"

/* One address of the route, with what connecting to it needs. */
struct backend_target {
	struct tsgate_pool_member *member;
	struct tstream_tls_params *tls; /* connect: tls */
};

struct tsgate_backend {
	const struct tsgate_config_route *route;
	uint64_t timeout_ms; /* per address tried */
	struct tstream_gssapi_params *gssapi;
	struct backend_target *targets;
	struct tsgate_pool_member **members; /* targets[i].member */
	size_t num_targets;
	uint64_t cursor;                        /* round-robin */
	const struct tsgate_config_addr *addrs; /* the route's, num_targets */
};

/*
 * The tls block as one backend of the route sees it: a name taken from
 * the backend's host (not written in the block) is this backend's own
 * host, so each member of a pool is verified against its own name.
 */
static struct tsgate_config_tls_client *backend_tls_for(
    TALLOC_CTX *mem_ctx,
    const struct tsgate_config_tls_client *t,
    const struct tsgate_config_addr *a)
{
	struct tsgate_config_tls_client *c;
	unsigned char buf[16];
	bool literal;

	c = talloc(mem_ctx, struct tsgate_config_tls_client);
	if (c == NULL) {
		return NULL;
	}
	*c = *t;
	if (a->host == NULL) {
		return c;
	}
	literal = inet_pton(AF_INET, a->host, buf) == 1 ||
		  inet_pton(AF_INET6, a->host, buf) == 1;
	if (t->sni_from_backend || (t->sni == NULL && !literal)) {
		c->sni = literal ? NULL : a->host;
	}
	if (t->verify_name_from_backend) {
		c->verify_name = c->sni != NULL ? c->sni : a->host;
	}
	return c;
}

/*
 * A backend's TLS client parameters, built by the config code so that
 * --check-config and the daemon agree on them.
 */
static int backend_tls_params(struct tsgate_backend *b,
			      const struct tsgate_config_tls_client *t,
			      struct tstream_tls_params **params,
			      TALLOC_CTX *mem_ctx,
			      char **preason)
{
	char *error = NULL;
	int ret;

	ret = tsgate_config_tls_client_params(b, t, params, &error);
	if (ret != 0) {
		*preason = talloc_asprintf(mem_ctx, "tls client: %s",
					   error ? error : strerror(ret));
	}
	talloc_free(error);
	return ret;
}

static int backend_gssapi_params(struct tsgate_backend *b,
				 TALLOC_CTX *mem_ctx,
				 char **preason)
{
	const struct tsgate_config_gssapi_client *g = b->route->gssapi;
	char *reason = NULL;
	int ret;

	if (g == NULL) {
		*preason = talloc_strdup(mem_ctx, "no gssapi block");
		return EINVAL;
	}
	ret = tstream_gssapi_params_initiator(b, g->target, g->ccache,
					      g->client_keytab, NULL,
					      &b->gssapi, &reason);
	if (ret != 0) {
		*preason =
		    talloc_asprintf(mem_ctx, "gssapi initiator for %s: %s",
				    g->target, reason ? reason : strerror(ret));
		return ret;
	}
	/* The backend timeout bounds the handshake as a whole. */
	tstream_gssapi_params_set_handshake_timeout(b->gssapi, 0);
	tstream_gssapi_params_set_strict_eof(b->gssapi, g->strict_end);
	tstream_gssapi_params_set_delegate(b->gssapi, g->delegate);
	return 0;
}

static int backend_target_new(struct tsgate_backend *b,
			      struct tsgate_pool *pool,
			      const char *listener,
			      size_t i,
			      TALLOC_CTX *mem_ctx,
			      char **preason)
{
	const struct tsgate_config_route *route = b->route;
	const struct tsgate_config_addr *a = &b->addrs[i];
	struct tsgate_config_tls_client *tls = NULL;
	struct backend_target *t = &b->targets[i];
	int ret;

	if (route->connect == TSGATE_CONFIG_CONNECT_TLS ||
	    route->connect == TSGATE_CONFIG_CONNECT_TLS_GSSAPI) {
		if (route->tls == NULL) {
			*preason = talloc_strdup(mem_ctx, "no tls block");
			return EINVAL;
		}
		tls = backend_tls_for(b, route->tls, a);
		if (tls == NULL) {
			return ENOMEM;
		}
		ret = backend_tls_params(b, tls, &t->tls, mem_ctx, preason);
		if (ret != 0) {
			return ret;
		}
	}
	t->member = tsgate_pool_member_get(pool, listener, route, a, tls,
					   b->timeout_ms);
	if (t->member == NULL) {
		*preason = talloc_asprintf(mem_ctx, "backend %s: %s", a->text,
					   strerror(ENOMEM));
		return ENOMEM;
	}
	b->members[i] = t->member;
	return 0;
}

static int backend_destructor(struct tsgate_backend *b)
{
	size_t i;

	for (i = 0; i < b->num_targets; i++) {
		if (b->members[i] != NULL) {
			tsgate_pool_member_put(b->members[i]);
		}
	}
	return 0;
}

int tsgate_backend_new(TALLOC_CTX *mem_ctx,
		       struct tsgate_pool *pool,
		       const char *listener,
		       const struct tsgate_config_route *route,
		       uint64_t timeout_ms,
		       struct tsgate_backend **pbackend,
		       char **preason)
{
	struct tsgate_backend *b;
	size_t i;
	int ret;

	b = talloc_zero(mem_ctx, struct tsgate_backend);
	if (b == NULL) {
		return ENOMEM;
	}
	b->route = route;
	b->timeout_ms = route->connect_timeout_ms > 0
			    ? route->connect_timeout_ms
			    : timeout_ms;
	if (route->exec != NULL) {
		/* a program per connection (exec.c): no socket, no pool */
		*pbackend = b;
		return 0;
	}
	/* a route made by hand (tests) may fill in only route->backend */
	b->addrs = route->num_backends > 0 ? route->backends : &route->backend;
	b->num_targets = route->num_backends > 0 ? route->num_backends : 1;
	b->targets =
	    talloc_zero_array(b, struct backend_target, b->num_targets);
	b->members =
	    talloc_zero_array(b, struct tsgate_pool_member *, b->num_targets);
	if (b->num_targets == 0 || b->targets == NULL || b->members == NULL) {
		ret = b->num_targets == 0 ? EINVAL : ENOMEM;
		talloc_free(b);
		return ret;
	}
	talloc_set_destructor(b, backend_destructor);
	if (route->connect == TSGATE_CONFIG_CONNECT_GSSAPI ||
	    route->connect == TSGATE_CONFIG_CONNECT_TLS_GSSAPI) {
		ret = backend_gssapi_params(b, mem_ctx, preason);
		if (ret != 0) {
			talloc_free(b);
			return ret;
		}
	}
	for (i = 0; i < b->num_targets; i++) {
		ret =
		    backend_target_new(b, pool, listener, i, mem_ctx, preason);
		if (ret != 0) {
			talloc_free(b);
			return ret;
		}
	}
	*pbackend = b;
	return 0;
}

void tsgate_backend_set_gssapi_pool(struct tsgate_backend *backend,
				    struct tstream_gssapi_pool *pool)
{
	if (backend->gssapi != NULL) {
		tstream_gssapi_params_set_pool(backend->gssapi, pool);
	}
}

struct tsgate_backend_connect_state {
	struct tevent_context *ev;
	struct tsgate_backend *backend;
	size_t *order;         /* indexes into targets, in the order tried */
	size_t order_small[8]; /* order's room for a small pool */
	size_t pos;            /* order[pos] is being tried */
	size_t next_ip;
	struct tevent_req *subreq;  /* the attempt in flight */
	struct tevent_timer *timer; /* the attempt's connect_timeout */
	struct tstream_context *stream;
	char *reason;
	char *address; /* of the attempt in progress or last made */
	struct tsgate_pool_member *connected; /* after a success */
	int last_err;
};

static void backend_attempt(struct tevent_req *req);
static void backend_done(struct tevent_req *req);
static void backend_connected(struct tevent_req *subreq);
static void backend_tunnel_done(struct tevent_req *subreq);

struct tevent_req *tsgate_backend_connect_send(TALLOC_CTX *mem_ctx,
					       struct tevent_context *ev,
					       struct tsgate_backend *backend)
{
	struct tevent_req *req;
	struct tsgate_backend_connect_state *state;

	req = tevent_req_create(mem_ctx, &state,
				struct tsgate_backend_connect_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->backend = backend;
	state->last_err = EHOSTUNREACH;
	state->order =
	    backend->num_targets <= sizeof(state->order_small) / sizeof(size_t)
		? state->order_small
		: talloc_array(state, size_t, backend->num_targets);
	if (tevent_req_nomem(state->order, req)) {
		return tevent_req_post(req, ev);
	}
	tsgate_pool_order(backend->members, backend->num_targets,
			  backend->route->balance, &backend->cursor,
			  state->order);
	backend_attempt(req);
	if (!tevent_req_is_in_progress(req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

static struct backend_target *backend_current(
    struct tsgate_backend_connect_state *state)
{
	return &state->backend->targets[state->order[state->pos]];
}

/* The attempt at the current target failed: learn, then the next one. */
static void backend_attempt_failed(struct tevent_req *req,
				   int err,
				   const char *why)
{
	struct tsgate_backend_connect_state *state =
	    tevent_req_data(req, struct tsgate_backend_connect_state);
	struct backend_target *t = backend_current(state);
	char *msg;

	if (err == 0) {
		/* tevent_req_error(req, 0) would leave the client waiting */
		err = EIO;
	}
	TALLOC_FREE(state->subreq);
	TALLOC_FREE(state->timer);
	TALLOC_FREE(state->stream);
	state->last_err = err;
	msg = talloc_asprintf(state, "%s%s%s: %s", t->member->text,
			      state->address != NULL ? " at " : "",
			      state->address != NULL ? state->address : "",
			      why != NULL ? why : strerror(err));
	tsgate_pool_member_failed(t->member, msg);
	talloc_free(msg);
	/* the caller shows the errno; a tunnel's own words go with it */
	talloc_free(state->reason);
	state->reason = why != NULL ? talloc_strdup(state, why) : NULL;
	state->pos++;
	state->next_ip = 0;
	if (state->pos >= state->backend->num_targets) {
		tevent_req_error(req, state->last_err);
		return;
	}
	backend_attempt(req);
}

static void backend_attempt_timeout(struct tevent_context *ev,
				    struct tevent_timer *te,
				    struct timeval now,
				    void *private_data)
{
	struct tevent_req *req =
	    talloc_get_type_abort(private_data, struct tevent_req);
	struct tsgate_backend_connect_state *state =
	    tevent_req_data(req, struct tsgate_backend_connect_state);

	state->timer = NULL; /* freed by tevent after this call */
	backend_attempt_failed(req, ETIMEDOUT, NULL);
}

/* Socket connect to the target's next address. */
static struct tevent_req *backend_socket_connect(
    struct tsgate_backend_connect_state *state,
    const struct tsgate_pool_member *m,
    int *perr)
{
	struct tevent_req *subreq;

	TALLOC_FREE(state->address);
	if (m->addr.kind == TSGATE_CONFIG_ADDR_UNIX) {
		state->address =
		    talloc_asprintf(state, "unix:%s", m->addr.path);
		subreq =
		    tsgate_pool_member_connect_send(state, state->ev, m, 0);
	} else {
		const char *ip = m->ips[state->next_ip];

		state->address = talloc_asprintf(
		    state, strchr(ip, ':') != NULL ? "[%s]:%u" : "%s:%u", ip,
		    (unsigned)m->addr.port);
		subreq = tsgate_pool_member_connect_send(state, state->ev, m,
							 state->next_ip++);
	}
	*perr = subreq == NULL ? errno : 0;
	return subreq;
}

static void backend_attempt(struct tevent_req *req)
{
	struct tsgate_backend_connect_state *state =
	    tevent_req_data(req, struct tsgate_backend_connect_state);
	struct backend_target *t = backend_current(state);
	const struct tsgate_pool_member *m = t->member;
	uint64_t ms = state->backend->timeout_ms;
	int err = 0;

	if (m->addr.kind == TSGATE_CONFIG_ADDR_TCP && m->num_ips == 0) {
		TALLOC_FREE(state->address);
		backend_attempt_failed(req, EHOSTUNREACH,
				       "host name not resolved (yet)");
		return;
	}
	if (state->timer == NULL && ms > 0) {
		state->timer = tevent_add_timer(
		    state->ev, state,
		    tevent_timeval_current_ofs(ms / 1000, (ms % 1000) * 1000),
		    backend_attempt_timeout, req);
		if (tevent_req_nomem(state->timer, req)) {
			return;
		}
	}
	state->subreq = backend_socket_connect(state, m, &err);
	if (state->subreq == NULL) {
		backend_attempt_failed(req, err, NULL);
		return;
	}
	tevent_req_set_callback(state->subreq, backend_connected, req);
}

static void backend_connected(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tsgate_backend_connect_state *state =
	    tevent_req_data(req, struct tsgate_backend_connect_state);
	struct backend_target *t = backend_current(state);
	const struct tsgate_pool_member *m = t->member;
	const struct tsgate_config_route *route = state->backend->route;
	int ret, err = 0;

	ret = tsgate_pool_member_connect_recv(subreq, m, &err, state,
					      &state->stream);
	if (ret == 0 && m->addr.kind == TSGATE_CONFIG_ADDR_TCP) {
		/* whole chunks: see tstream_bsd_set_nodelay() */
		(void)tstream_bsd_set_nodelay(state->stream, true);
	}
	TALLOC_FREE(subreq);
	state->subreq = NULL;
	if (ret == -1) {
		if (m->addr.kind == TSGATE_CONFIG_ADDR_TCP &&
		    state->next_ip < m->num_ips) {
			backend_attempt(req);
			return;
		}
		backend_attempt_failed(req, err, NULL);
		return;
	}
	if (m->addr.kind == TSGATE_CONFIG_ADDR_TCP &&
	    route->keepalive.enabled) {
		/* best effort: a socket without keepalive still works */
		tstream_bsd_set_keepalive(
		    state->stream, true, route->keepalive.idle_s,
		    route->keepalive.interval_s, route->keepalive.count);
	}

	switch (route->connect) {
	case TSGATE_CONFIG_CONNECT_PLAIN:
		backend_done(req);
		return;
	case TSGATE_CONFIG_CONNECT_GSSAPI:
		subreq = tstream_gssapi_connect_send(
		    state, state->ev, state->stream, state->backend->gssapi);
		break;
	case TSGATE_CONFIG_CONNECT_TLS:
		/* tstream_tls takes the plain stream over. */
		subreq = tstream_tls_connect_send(state, state->ev,
						  state->stream, t->tls);
		state->stream = NULL;
		break;
	case TSGATE_CONFIG_CONNECT_TLS_GSSAPI:
		subreq = tsgate_tls_gssapi_send(state, state->ev, state->stream,
						t->tls, state->backend->gssapi,
						false);
		state->stream = NULL;
		break;
	default:
		tevent_req_error(req, EOPNOTSUPP);
		return;
	}
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	state->subreq = subreq;
	tevent_req_set_callback(subreq, backend_tunnel_done, req);
}

/* Connected (tunnel included): the member did its job. */
static void backend_done(struct tevent_req *req)
{
	struct tsgate_backend_connect_state *state =
	    tevent_req_data(req, struct tsgate_backend_connect_state);
	struct backend_target *t = backend_current(state);

	TALLOC_FREE(state->timer);
	tsgate_pool_member_ok(t->member);
	state->connected = t->member;
	tevent_req_done(req);
}

static void backend_tunnel_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tsgate_backend_connect_state *state =
	    tevent_req_data(req, struct tsgate_backend_connect_state);
	struct tstream_context *tunnel = NULL;
	struct tstream_context *identity = NULL;
	char *why = NULL;
	int ret, err = 0;

	switch (state->backend->route->connect) {
	case TSGATE_CONFIG_CONNECT_GSSAPI:
		ret = tstream_gssapi_connect_recv(subreq, &err, state, &tunnel,
						  &why);
		break;
	case TSGATE_CONFIG_CONNECT_TLS:
		ret = tstream_tls_connect_recv(subreq, &err, state, &tunnel,
					       &why);
		break;
	case TSGATE_CONFIG_CONNECT_TLS_GSSAPI:
		/* the backend's identity is not needed past the handshake */
		ret = tsgate_tls_gssapi_recv(subreq, &err, state, &tunnel,
					     &identity, &why);
		TALLOC_FREE(identity);
		break;
	default:
		ret = -1;
		err = EOPNOTSUPP;
		break;
	}
	TALLOC_FREE(subreq);
	state->subreq = NULL;
	if (ret == -1) {
		backend_attempt_failed(req, err, why);
		return;
	}
	/* The tunnel now owns the plain stream. */
	state->stream = tunnel;
	backend_done(req);
}

void tsgate_backend_connect_target(struct tevent_req *req,
				   const char **text,
				   const char **addr)
{
	struct tsgate_backend_connect_state *state =
	    tevent_req_data(req, struct tsgate_backend_connect_state);
	struct tsgate_pool_member *m;

	*text = NULL;
	*addr = NULL;
	if (state->address == NULL ||
	    state->pos >= state->backend->num_targets) {
		return;
	}
	m = backend_current(state)->member;
	*text = m->text;
	*addr = tsgate_pool_member_intern(m, state->address);
}

void tsgate_backend_connect_track(struct tevent_req *req,
				  struct tsgate_backend_tracker *t)
{
	struct tsgate_backend_connect_state *state =
	    tevent_req_data(req, struct tsgate_backend_connect_state);

	if (state->connected != NULL) {
		tsgate_pool_track(state->connected, t);
	}
}

void tsgate_backend_untrack(struct tsgate_backend_tracker *t)
{
	tsgate_pool_untrack(t);
}

int tsgate_backend_connect_recv(struct tevent_req *req,
				int *perrno,
				TALLOC_CTX *mem_ctx,
				struct tstream_context **pstream,
				char **preason)
{
	struct tsgate_backend_connect_state *state =
	    tevent_req_data(req, struct tsgate_backend_connect_state);
	enum tevent_req_state rs;
	uint64_t err;

	if (tevent_req_is_error(req, &rs, &err)) {
		switch (rs) {
		case TEVENT_REQ_USER_ERROR:
			*perrno = (int)err;
			break;
		case TEVENT_REQ_TIMED_OUT:
			*perrno = ETIMEDOUT;
			break;
		default:
			*perrno = ENOMEM;
			break;
		}
		if (preason != NULL) {
			*preason = talloc_move(mem_ctx, &state->reason);
		}
		tevent_req_received(req);
		return -1;
	}
	*pstream = talloc_move(mem_ctx, &state->stream);
	tevent_req_received(req);
	return 0;
}
