/* SPDX-License-Identifier: MIT */
/*
 * Active health checks of a pool member: every interval, a TCP (or unix)
 * connect to it, and for `connect: tls` a TLS handshake with the route's
 * client parameters, bounded by the check's timeout. A pass brings a
 * down member back, a failure takes it out (backend_pool.c logs the
 * change once). `connect: gssapi` routes are checked by TCP connect
 * only: a GSSAPI check would ask the KDC for a ticket every interval.
 *
 * Each worker checks on its own (it has its own pool): a backend sees
 * one check per worker per interval.
 */
#include <errno.h>
#include <string.h>
#include <tsocket.h>

#include "backend_pool.h"
#include "config_tunnels.h"
#include "tstream_tls.h"

struct tsgate_health_check {
	struct tsgate_pool_member *member;
	uint64_t interval_ms;
	uint64_t timeout_ms;
	struct tstream_tls_params *tls; /* connect: tls */
	struct tevent_timer *timer;
	struct tevent_req *probe; /* in flight */
};

/* One probe: connect (each address in turn), then TLS if asked. */
struct health_probe_state {
	struct tevent_context *ev;
	const struct tsgate_pool_member *m;
	struct tstream_tls_params *tls;
	size_t next_ip;
	struct tstream_context *stream;
	char *reason;
};

static void health_probe_next(struct tevent_req *req);
static void health_probe_connected(struct tevent_req *subreq);
static void health_probe_tls_done(struct tevent_req *subreq);

static struct tevent_req *health_probe_send(TALLOC_CTX *mem_ctx,
					    struct tevent_context *ev,
					    const struct tsgate_pool_member *m,
					    struct tstream_tls_params *tls,
					    uint64_t timeout_ms)
{
	struct tevent_req *req;
	struct health_probe_state *state;

	req = tevent_req_create(mem_ctx, &state, struct health_probe_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->m = m;
	state->tls = tls;
	if (!tevent_req_set_endtime(
		req, ev,
		tevent_timeval_current_ofs(timeout_ms / 1000,
					   (timeout_ms % 1000) * 1000))) {
		tevent_req_oom(req);
		return tevent_req_post(req, ev);
	}
	if (m->addr.kind == TSGATE_CONFIG_ADDR_TCP && m->num_ips == 0) {
		state->reason = talloc_strdup(state, "not resolved");
		tevent_req_error(req, EHOSTUNREACH);
		return tevent_req_post(req, ev);
	}
	health_probe_next(req);
	if (!tevent_req_is_in_progress(req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

static void health_probe_next(struct tevent_req *req)
{
	struct health_probe_state *state =
	    tevent_req_data(req, struct health_probe_state);
	struct tevent_req *subreq;

	subreq = tsgate_pool_member_connect_send(state, state->ev, state->m,
						 state->next_ip++);
	if (subreq == NULL) {
		tevent_req_error(req, errno);
		return;
	}
	tevent_req_set_callback(subreq, health_probe_connected, req);
}

static void health_probe_connected(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct health_probe_state *state =
	    tevent_req_data(req, struct health_probe_state);
	const struct tsgate_pool_member *m = state->m;
	int ret, err = 0;

	ret = tsgate_pool_member_connect_recv(subreq, m, &err, state,
					      &state->stream);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		if (m->addr.kind == TSGATE_CONFIG_ADDR_TCP &&
		    state->next_ip < m->num_ips) {
			health_probe_next(req);
			return;
		}
		tevent_req_error(req, err);
		return;
	}
	if (state->tls == NULL) {
		tevent_req_done(req);
		return;
	}
	subreq = tstream_tls_connect_send(state, state->ev, state->stream,
					  state->tls);
	state->stream = NULL;
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, health_probe_tls_done, req);
}

static void health_probe_tls_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct health_probe_state *state =
	    tevent_req_data(req, struct health_probe_state);
	int ret, err = 0;

	ret = tstream_tls_connect_recv(subreq, &err, state, &state->stream,
				       &state->reason);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	tevent_req_done(req);
}

static int health_probe_recv(struct tevent_req *req,
			     TALLOC_CTX *mem_ctx,
			     char **reason)
{
	struct health_probe_state *state =
	    tevent_req_data(req, struct health_probe_state);
	enum tevent_req_state rs;
	uint64_t err = 0;

	if (!tevent_req_is_error(req, &rs, &err)) {
		return 0;
	}
	if (rs == TEVENT_REQ_TIMED_OUT) {
		*reason = talloc_strdup(mem_ctx, "health check timed out");
		return ETIMEDOUT;
	}
	*reason = talloc_asprintf(
	    mem_ctx, "health check: %s",
	    state->reason != NULL
		? state->reason
		: strerror(rs == TEVENT_REQ_USER_ERROR ? (int)err : ENOMEM));
	return rs == TEVENT_REQ_USER_ERROR ? (int)err : ENOMEM;
}

static void health_check_schedule(struct tsgate_health_check *hc, uint64_t ms);

static void health_check_probed(struct tevent_req *req)
{
	struct tsgate_health_check *hc =
	    tevent_req_callback_data(req, struct tsgate_health_check);
	char *reason = NULL;
	int err;

	err = health_probe_recv(req, hc, &reason);
	TALLOC_FREE(req);
	hc->probe = NULL;
	if (err != 0) {
		hc->member->failures++;
	}
	tsgate_pool_member_checked(hc->member, err == 0, reason);
	talloc_free(reason);
	health_check_schedule(hc, hc->interval_ms);
}

static void health_check_fire(struct tevent_context *ev,
			      struct tevent_timer *te,
			      struct timeval now,
			      void *private_data)
{
	struct tsgate_health_check *hc = private_data;

	hc->timer = NULL;
	hc->probe =
	    health_probe_send(hc, ev, hc->member, hc->tls, hc->timeout_ms);
	if (hc->probe == NULL) {
		health_check_schedule(hc, hc->interval_ms);
		return;
	}
	tevent_req_set_callback(hc->probe, health_check_probed, hc);
}

static void health_check_schedule(struct tsgate_health_check *hc, uint64_t ms)
{
	struct tevent_context *ev = tsgate_pool_ev(hc->member->pool);

	TALLOC_FREE(hc->timer);
	hc->timer = tevent_add_timer(
	    ev, hc, tevent_timeval_current_ofs(ms / 1000, (ms % 1000) * 1000),
	    health_check_fire, hc);
}

void tsgate_health_check_stop(struct tsgate_pool_member *m)
{
	TALLOC_FREE(m->check);
	m->checked = false;
}

int tsgate_health_check_arm(struct tsgate_pool_member *m,
			    const struct tsgate_config_health_check *cfg,
			    enum tsgate_config_connect connect,
			    const struct tsgate_config_tls_client *tls,
			    uint64_t default_timeout_ms)
{
	struct tsgate_health_check *hc;
	char *error = NULL;
	int ret;

	tsgate_health_check_stop(m);
	if (cfg->interval_ms == 0) {
		return 0;
	}
	hc = talloc_zero(m, struct tsgate_health_check);
	if (hc == NULL) {
		return ENOMEM;
	}
	hc->member = m;
	hc->interval_ms = cfg->interval_ms;
	hc->timeout_ms =
	    cfg->timeout_ms > 0 ? cfg->timeout_ms : default_timeout_ms;
	if (hc->timeout_ms == 0) {
		hc->timeout_ms = cfg->interval_ms;
	}
	if (connect == TSGATE_CONFIG_CONNECT_TLS && tls != NULL) {
		ret =
		    tsgate_config_tls_client_params(hc, tls, &hc->tls, &error);
		talloc_free(error);
		if (ret != 0) {
			talloc_free(hc);
			return ret;
		}
	}
	m->check = hc;
	m->checked = true;
	/* the first check at once: the state is known within one timeout */
	health_check_schedule(hc, 0);
	return hc->timer != NULL ? 0 : ENOMEM;
}
