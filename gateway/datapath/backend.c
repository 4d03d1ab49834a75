/*
 * Backend connections: unix or TCP, then the route's tunnel.
 */
#include "backend.h"
#include "config_tunnels.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <tsocket.h>

#include "tls_gssapi.h"
#include "tstream_gssapi.h"
#include "tstream_tls.h"

struct tsgate_backend {
	const struct tsgate_config_route *route;
	uint64_t timeout_ms;
	struct tstream_gssapi_params *gssapi;
	struct tstream_tls_params *tls;
};

/*
 * The route's TLS client parameters, built by the config code so that
 * --check-config and the daemon agree on them.
 */
static int backend_tls_params(struct tsgate_backend *b,
			      TALLOC_CTX *mem_ctx,
			      char **preason)
{
	const struct tsgate_config_tls_client *t = b->route->tls;
	char *error = NULL;
	int ret;

	if (t == NULL) {
		*preason = talloc_strdup(mem_ctx, "no tls block");
		return EINVAL;
	}
	ret = tsgate_config_tls_client_params(b, t, &b->tls, &error);
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
	return 0;
}

/* tls-gssapi: both, TLS first (tls_gssapi.h) */
static int backend_tls_gssapi_params(struct tsgate_backend *b,
				     TALLOC_CTX *mem_ctx,
				     char **preason)
{
	int ret = backend_tls_params(b, mem_ctx, preason);

	if (ret != 0) {
		return ret;
	}
	return backend_gssapi_params(b, mem_ctx, preason);
}

int tsgate_backend_new(TALLOC_CTX *mem_ctx,
		       const struct tsgate_config_route *route,
		       uint64_t timeout_ms,
		       struct tsgate_backend **pbackend,
		       char **preason)
{
	struct tsgate_backend *b;
	int ret;

	b = talloc_zero(mem_ctx, struct tsgate_backend);
	if (b == NULL) {
		return ENOMEM;
	}
	b->route = route;
	b->timeout_ms = timeout_ms;

	switch (route->connect) {
	case TSGATE_CONFIG_CONNECT_PLAIN:
		break;
	case TSGATE_CONFIG_CONNECT_GSSAPI:
		ret = backend_gssapi_params(b, mem_ctx, preason);
		if (ret != 0) {
			talloc_free(b);
			return ret;
		}
		break;
	case TSGATE_CONFIG_CONNECT_TLS:
		ret = backend_tls_params(b, mem_ctx, preason);
		if (ret != 0) {
			talloc_free(b);
			return ret;
		}
		break;
	case TSGATE_CONFIG_CONNECT_TLS_GSSAPI:
		ret = backend_tls_gssapi_params(b, mem_ctx, preason);
		if (ret != 0) {
			talloc_free(b);
			return ret;
		}
		break;
	}
	*pbackend = b;
	return 0;
}

struct tsgate_backend_connect_state {
	struct tevent_context *ev;
	struct tsgate_backend *backend;
	size_t next_ip;
	struct tstream_context *stream;
	char *reason;
};

static void tsgate_backend_connect_next(struct tevent_req *req);
static void tsgate_backend_connected(struct tevent_req *subreq);
static void tsgate_backend_tunnel_done(struct tevent_req *subreq);

struct tevent_req *tsgate_backend_connect_send(TALLOC_CTX *mem_ctx,
					       struct tevent_context *ev,
					       struct tsgate_backend *backend)
{
	struct tevent_req *req;
	struct tsgate_backend_connect_state *state;
	uint64_t ms = backend->timeout_ms;

	req = tevent_req_create(mem_ctx, &state,
				struct tsgate_backend_connect_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->backend = backend;

	if (ms > 0 &&
	    !tevent_req_set_endtime(
		req, ev,
		tevent_timeval_current_ofs(ms / 1000, (ms % 1000) * 1000))) {
		tevent_req_oom(req);
		return tevent_req_post(req, ev);
	}
	tsgate_backend_connect_next(req);
	if (!tevent_req_is_in_progress(req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

static void tsgate_backend_connect_next(struct tevent_req *req)
{
	struct tsgate_backend_connect_state *state =
	    tevent_req_data(req, struct tsgate_backend_connect_state);
	const struct tsgate_config_addr *a = &state->backend->route->backend;
	struct tsocket_address *local = NULL, *remote = NULL;
	struct tevent_req *subreq;
	const char *ip;
	int ret;

	if (a->kind == TSGATE_CONFIG_ADDR_UNIX) {
		ret = tsocket_address_unix_from_path(state, "", &local);
		if (ret == 0) {
			ret = tsocket_address_unix_from_path(state, a->path,
							     &remote);
		}
		if (ret != 0) {
			tevent_req_error(req, errno);
			return;
		}
		subreq =
		    tstream_unix_connect_send(state, state->ev, local, remote);
	} else {
		ip = a->num_ips > 0 ? a->ips[state->next_ip] : a->ip;
		state->next_ip++;
		ret = tsocket_address_inet_from_strings(state, "ip", ip,
							a->port, &remote);
		if (ret == 0) {
			ret = tsocket_address_inet_from_strings(
			    state,
			    tsocket_address_is_inet(remote, "ipv6") ? "ipv6"
								    : "ipv4",
			    NULL, 0, &local);
		}
		if (ret != 0) {
			tevent_req_error(req, errno);
			return;
		}
		subreq = tstream_inet_tcp_connect_send(state, state->ev, local,
						       remote);
	}
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, tsgate_backend_connected, req);
	TALLOC_FREE(local);
	TALLOC_FREE(remote);
}

static void tsgate_backend_connected(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tsgate_backend_connect_state *state =
	    tevent_req_data(req, struct tsgate_backend_connect_state);
	const struct tsgate_config_addr *a = &state->backend->route->backend;
	int ret, err = 0;

	if (a->kind == TSGATE_CONFIG_ADDR_UNIX) {
		ret = tstream_unix_connect_recv(subreq, &err, state,
						&state->stream);
	} else {
		ret = tstream_inet_tcp_connect_recv(subreq, &err, state,
						    &state->stream);
	}
	TALLOC_FREE(subreq);
	if (ret == -1) {
		if (a->kind == TSGATE_CONFIG_ADDR_TCP &&
		    state->next_ip < a->num_ips) {
			tsgate_backend_connect_next(req);
			return;
		}
		tevent_req_error(req, err);
		return;
	}

	switch (state->backend->route->connect) {
	case TSGATE_CONFIG_CONNECT_PLAIN:
		tevent_req_done(req);
		return;
	case TSGATE_CONFIG_CONNECT_GSSAPI:
		subreq = tstream_gssapi_connect_send(
		    state, state->ev, state->stream, state->backend->gssapi);
		break;
	case TSGATE_CONFIG_CONNECT_TLS:
		/* tstream_tls takes the plain stream over. */
		subreq = tstream_tls_connect_send(
		    state, state->ev, state->stream, state->backend->tls);
		state->stream = NULL;
		break;
	case TSGATE_CONFIG_CONNECT_TLS_GSSAPI:
		subreq = tsgate_tls_gssapi_send(state, state->ev, state->stream,
						state->backend->tls,
						state->backend->gssapi, false);
		state->stream = NULL;
		break;
	default:
		tevent_req_error(req, EOPNOTSUPP);
		return;
	}
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, tsgate_backend_tunnel_done, req);
}

static void tsgate_backend_tunnel_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tsgate_backend_connect_state *state =
	    tevent_req_data(req, struct tsgate_backend_connect_state);
	struct tstream_context *tunnel = NULL;
	struct tstream_context *identity = NULL;
	int ret, err = 0;

	switch (state->backend->route->connect) {
	case TSGATE_CONFIG_CONNECT_GSSAPI:
		ret = tstream_gssapi_connect_recv(subreq, &err, state, &tunnel,
						  &state->reason);
		break;
	case TSGATE_CONFIG_CONNECT_TLS:
		ret = tstream_tls_connect_recv(subreq, &err, state, &tunnel,
					       &state->reason);
		break;
	case TSGATE_CONFIG_CONNECT_TLS_GSSAPI:
		/* the backend's identity is not needed past the handshake */
		ret = tsgate_tls_gssapi_recv(subreq, &err, state, &tunnel,
					     &identity, &state->reason);
		TALLOC_FREE(identity);
		break;
	default:
		ret = -1;
		err = EOPNOTSUPP;
		break;
	}
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	/* The tunnel now owns the plain stream. */
	state->stream = tunnel;
	tevent_req_done(req);
}

size_t tsgate_backend_connect_index(struct tevent_req *req)
{
	struct tsgate_backend_connect_state *state =
	    tevent_req_data(req, struct tsgate_backend_connect_state);

	return state->next_ip > 0 ? state->next_ip - 1 : 0;
}

char *tsgate_backend_address_string(TALLOC_CTX *mem_ctx,
				    const struct tsgate_config_addr *addr,
				    size_t index)
{
	const char *ip;

	if (addr->kind == TSGATE_CONFIG_ADDR_UNIX) {
		return talloc_asprintf(mem_ctx, "unix:%s", addr->path);
	}
	ip = index < addr->num_ips ? addr->ips[index] : addr->ip;
	return talloc_asprintf(mem_ctx,
			       strchr(ip, ':') != NULL ? "[%s]:%u" : "%s:%u",
			       ip, (unsigned)addr->port);
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
