/* SPDX-License-Identifier: MIT */
/*
 * tls-gssapi (tls_gssapi.h): tstream_tls, then tstream_gssapi_auth over
 * it, bound to the session by its tls-exporter.
 */
#include "tls_gssapi.h"

#include <errno.h>
#include <string.h>

#include "tstream_gssapi.h"
#include "tstream_tls.h"

struct tsgate_tls_gssapi_state {
	struct tevent_context *ev;
	struct tstream_gssapi_params *gssapi;
	bool server;
	struct tstream_context *tls;
	struct tstream_context *identity;
	char *reason;
};

static void tsgate_tls_gssapi_tls_done(struct tevent_req *subreq);
static void tsgate_tls_gssapi_auth_done(struct tevent_req *subreq);

static void tsgate_tls_gssapi_fail(struct tevent_req *req, int err, char *why)
{
	struct tsgate_tls_gssapi_state *state =
	    tevent_req_data(req, struct tsgate_tls_gssapi_state);

	if (state->reason == NULL) {
		state->reason = why;
	}
	tevent_req_error(req, err);
}

struct tevent_req *tsgate_tls_gssapi_send(TALLOC_CTX *mem_ctx,
					  struct tevent_context *ev,
					  struct tstream_context *plain,
					  struct tstream_tls_params *tls,
					  struct tstream_gssapi_params *gssapi,
					  bool server)
{
	struct tevent_req *req, *subreq;
	struct tsgate_tls_gssapi_state *state;

	req =
	    tevent_req_create(mem_ctx, &state, struct tsgate_tls_gssapi_state);
	if (req == NULL) {
		talloc_free(plain);
		return NULL;
	}
	state->ev = ev;
	state->gssapi = gssapi;
	state->server = server;
	/*
	 * tstream_tls takes the plain stream over. Its TCP_NODELAY (set by
	 * conn.c and backend.c on every TCP stream) matters here: the
	 * client's AP-REQ follows its TLS Finished at once, and with Nagle it
	 * would wait for the server's delayed ACK, 40 ms a set-up.
	 */
	if (server) {
		subreq = tstream_tls_accept_send(state, ev, plain, tls);
	} else {
		subreq = tstream_tls_connect_send(state, ev, plain, tls);
	}
	if (tevent_req_nomem(subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(subreq, tsgate_tls_gssapi_tls_done, req);
	return req;
}

static void tsgate_tls_gssapi_tls_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tsgate_tls_gssapi_state *state =
	    tevent_req_data(req, struct tsgate_tls_gssapi_state);
	const char *version;
	uint8_t *cb = NULL;
	size_t cb_len = 0;
	char *reason = NULL;
	int ret, err = 0;

	if (state->server) {
		ret = tstream_tls_accept_recv(subreq, &err, state, &state->tls,
					      &reason);
	} else {
		ret = tstream_tls_connect_recv(subreq, &err, state, &state->tls,
					       &reason);
	}
	TALLOC_FREE(subreq);
	if (ret != 0) {
		tsgate_tls_gssapi_fail(req, err, reason);
		return;
	}
	version = tstream_tls_version(state->tls);
	if (version == NULL || strcmp(version, "TLS1.3") != 0) {
		tsgate_tls_gssapi_fail(
		    req, EPROTO,
		    talloc_asprintf(state,
				    "tls-gssapi needs TLS 1.3 for its "
				    "tls-exporter channel binding, %s was "
				    "negotiated",
				    version != NULL ? version : "?"));
		return;
	}
	err = tstream_tls_channel_binding(state->tls, TSTREAM_TLS_CB_EXPORTER,
					  state, &cb, &cb_len);
	if (err == 0 && cb_len != TSGATE_TLS_GSSAPI_CB_LEN) {
		err = EPROTO;
	}
	if (err != 0) {
		tsgate_tls_gssapi_fail(
		    req, err,
		    talloc_asprintf(state, "tls-exporter channel binding: %s",
				    strerror(err)));
		return;
	}
	subreq = tstream_gssapi_auth_send(state, state->ev, state->tls,
					  state->gssapi, cb, cb_len);
	talloc_free(cb);
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, tsgate_tls_gssapi_auth_done, req);
}

static void tsgate_tls_gssapi_auth_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tsgate_tls_gssapi_state *state =
	    tevent_req_data(req, struct tsgate_tls_gssapi_state);
	char *reason = NULL;
	int ret, err = 0;

	ret = tstream_gssapi_auth_recv(subreq, &err, state, &state->identity,
				       &reason);
	TALLOC_FREE(subreq);
	if (ret != 0) {
		/* a token that could not be read: the TLS record layer says why
		 */
		const char *tls_why = tstream_tls_error_reason(state->tls);

		tsgate_tls_gssapi_fail(
		    req, err,
		    talloc_asprintf(state, "GSSAPI inside TLS: %s%s%s%s",
				    reason != NULL ? reason : strerror(err),
				    tls_why != NULL ? " (TLS: " : "",
				    tls_why != NULL ? tls_why : "",
				    tls_why != NULL ? ")" : ""));
		return;
	}
	tevent_req_done(req);
}

int tsgate_tls_gssapi_recv(struct tevent_req *req,
			   int *perrno,
			   TALLOC_CTX *mem_ctx,
			   struct tstream_context **_tls,
			   struct tstream_context **_identity,
			   char **_reason)
{
	struct tsgate_tls_gssapi_state *state =
	    tevent_req_data(req, struct tsgate_tls_gssapi_state);
	enum tevent_req_state rs;
	uint64_t err;

	if (tevent_req_is_error(req, &rs, &err)) {
		*perrno = rs == TEVENT_REQ_USER_ERROR  ? (int)err
			  : rs == TEVENT_REQ_TIMED_OUT ? ETIMEDOUT
						       : ENOMEM;
		if (_reason != NULL) {
			*_reason = talloc_move(mem_ctx, &state->reason);
		}
		tevent_req_received(req);
		return -1;
	}
	*_tls = talloc_move(mem_ctx, &state->tls);
	*_identity = talloc_move(mem_ctx, &state->identity);
	tevent_req_received(req);
	return 0;
}
