/* SPDX-License-Identifier: MIT */
/*
 * tstream_gssapi: context establishment, knc 1.x framing.
 *
 * The initiator speaks first. Each context token travels as a 4-byte
 * big-endian length followed by the token; the loop ends when GSSAPI
 * says GSS_S_COMPLETE and the last output token (if any) is written.
 */

#include <errno.h>
#include <string.h>

#include "tsgate_export.h"
#include "tsocket_internal.h"
#include "tstream_gssapi_private.h"

struct gssapi_handshake_state {
	struct tevent_context *ev;
	struct tstream_context *plain_stream;
	struct tstream_gssapi_params *params;
	gss_cred_id_t cred;
	gss_name_t target;
	gss_ctx_id_t ctx;
	/* acceptor: what the client delegated, handed to the stream */
	gss_cred_id_t deleg;

	struct tevent_req *subreq;
	struct iovec iov[2];
	uint8_t hdr[GSSAPI_LEN_SIZE];
	uint8_t *in_token;
	size_t in_len;
	gss_buffer_desc out_token;
	bool complete;

	/* while a GSSAPI call runs: it holds cred, target and ctx */
	struct gssapi_call *call;
	bool acquired; /* cred (and target) are there */

	struct tstream_context *stream;
	char *reason;
};

/*
 * One init/accept_sec_context (the first one also acquires the
 * credential and imports the target name), in a pool thread or inline.
 * A top-level talloc object: while a thread runs it, nothing else
 * touches its hierarchy (the params and the input token are its own
 * copies), and a request that goes away leaves it to the pool to free.
 */
struct gssapi_call {
	struct tstream_gssapi_job job;
	struct tevent_req *req; /* NULL once given up */

	/* in */
	struct tstream_gssapi_params *params;
	bool acquire;
	bool has_input;
	gss_buffer_desc input;

	/* in and out: owned by the call while it runs */
	gss_cred_id_t cred;
	gss_name_t target;
	gss_ctx_id_t ctx;
	gss_cred_id_t deleg; /* acceptor: what the client delegated */

	/* out */
	OM_uint32 maj;
	OM_uint32 flags;
	gss_OID mech;
	gss_buffer_desc out_token;
	int err;
	char *reason;
};

static void gssapi_handshake_step(struct tevent_req *req,
				  const gss_buffer_t input);
static void gssapi_handshake_result(struct tevent_req *req,
				    struct gssapi_call *call);
static void gssapi_handshake_written(struct tevent_req *subreq);
static void gssapi_handshake_hdr_done(struct tevent_req *subreq);
static void gssapi_handshake_token_done(struct tevent_req *subreq);

static int gssapi_call_destructor(struct gssapi_call *call)
{
	OM_uint32 min;

	if (call->out_token.value != NULL) {
		gss_release_buffer(&min, &call->out_token);
	}
	if (call->ctx != GSS_C_NO_CONTEXT) {
		gss_delete_sec_context(&min, &call->ctx, GSS_C_NO_BUFFER);
	}
	if (call->target != GSS_C_NO_NAME) {
		gss_release_name(&min, &call->target);
	}
	if (call->cred != GSS_C_NO_CREDENTIAL) {
		gss_release_cred(&min, &call->cred);
	}
	if (call->deleg != GSS_C_NO_CREDENTIAL) {
		gss_release_cred(&min, &call->deleg);
	}
	return 0;
}

/* The request goes away while its call is out: the pool frees it. */
static void gssapi_handshake_give_up_call(struct gssapi_handshake_state *state)
{
	struct gssapi_call *call = state->call;

	if (call == NULL) {
		return;
	}
	state->call = NULL;
	call->req = NULL;
	tstream_gssapi_pool_cancel(&call->job);
}

static int gssapi_handshake_state_destructor(
    struct gssapi_handshake_state *state)
{
	OM_uint32 min;

	gssapi_handshake_give_up_call(state);
	TALLOC_FREE(state->subreq);
	if (state->out_token.value != NULL) {
		gss_release_buffer(&min, &state->out_token);
	}
	if (state->ctx != GSS_C_NO_CONTEXT) {
		gss_delete_sec_context(&min, &state->ctx, GSS_C_NO_BUFFER);
	}
	if (state->target != GSS_C_NO_NAME) {
		gss_release_name(&min, &state->target);
	}
	if (state->cred != GSS_C_NO_CREDENTIAL) {
		gss_release_cred(&min, &state->cred);
	}
	if (state->deleg != GSS_C_NO_CREDENTIAL) {
		gss_release_cred(&min, &state->deleg);
	}
	return 0;
}

/* A timed-out or failed request must leave the plain stream alone. */
static void gssapi_handshake_cleanup(struct tevent_req *req,
				     enum tevent_req_state req_state)
{
	struct gssapi_handshake_state *state =
	    tevent_req_data(req, struct gssapi_handshake_state);

	gssapi_handshake_give_up_call(state);
	TALLOC_FREE(state->subreq);
	if (req_state == TEVENT_REQ_TIMED_OUT && state->reason == NULL) {
		state->reason = talloc_strdup(state, "handshake timed out");
	}
}

static void gssapi_handshake_fail(struct tevent_req *req, int err, char *reason)
{
	struct gssapi_handshake_state *state =
	    tevent_req_data(req, struct gssapi_handshake_state);

	if (state->reason == NULL) {
		state->reason = reason;
	}
	tevent_req_error(req, err);
}

static struct tevent_req *gssapi_handshake_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *plain_stream,
    struct tstream_gssapi_params *params,
    bool initiator)
{
	struct tevent_req *req;
	struct gssapi_handshake_state *state;

	req = tevent_req_create(mem_ctx, &state, struct gssapi_handshake_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->plain_stream = plain_stream;
	state->cred = GSS_C_NO_CREDENTIAL;
	state->target = GSS_C_NO_NAME;
	state->ctx = GSS_C_NO_CONTEXT;
	talloc_set_destructor(state, gssapi_handshake_state_destructor);
	tevent_req_set_cleanup_fn(req, gssapi_handshake_cleanup);

	if (plain_stream == NULL || params == NULL ||
	    params->acceptor == initiator) {
		gssapi_handshake_fail(
		    req, EINVAL,
		    talloc_strdup(state, params != NULL &&
						 params->acceptor == initiator
					     ? "params are for the other side"
					     : "invalid arguments"));
		return tevent_req_post(req, ev);
	}
	state->params = tstream_gssapi_params_copy(state, params);
	if (tevent_req_nomem(state->params, req)) {
		return tevent_req_post(req, ev);
	}
	if (params->handshake_timeout_ms != 0) {
		uint32_t ms = params->handshake_timeout_ms;

		if (!tevent_req_set_endtime(
			req, ev,
			tevent_timeval_current_ofs(ms / 1000,
						   (ms % 1000) * 1000))) {
			tevent_req_oom(req);
			return tevent_req_post(req, ev);
		}
	}

	if (initiator) {
		/* the initiator speaks first */
		gssapi_handshake_step(req, GSS_C_NO_BUFFER);
		if (!tevent_req_is_in_progress(req)) {
			return tevent_req_post(req, ev);
		}
		return req;
	}

	state->iov[0].iov_base = state->hdr;
	state->iov[0].iov_len = sizeof(state->hdr);
	state->subreq =
	    tstream_readv_send(state, ev, plain_stream, state->iov, 1);
	if (tevent_req_nomem(state->subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(state->subreq, gssapi_handshake_hdr_done, req);
	return req;
}

/* " confidentiality, mutual authentication" for the missing flags. */
static char *gssapi_flag_names(TALLOC_CTX *mem_ctx, OM_uint32 flags)
{
	static const struct {
		OM_uint32 flag;
		const char *name;
	} names[] = {
	    {GSS_C_DELEG_FLAG, "delegation"},
	    {GSS_C_MUTUAL_FLAG, "mutual authentication"},
	    {GSS_C_REPLAY_FLAG, "replay detection"},
	    {GSS_C_SEQUENCE_FLAG, "sequence detection"},
	    {GSS_C_CONF_FLAG, "confidentiality"},
	    {GSS_C_INTEG_FLAG, "integrity"},
	    {GSS_C_CHANNEL_BOUND_FLAG, "channel bindings"},
	};
	char *s = talloc_strdup(mem_ctx, "");

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((flags & names[i].flag) && s != NULL) {
			s = talloc_asprintf_append(
			    s, "%s %s", s[0] == '\0' ? "" : ",", names[i].name);
		}
	}
	return s;
}

/* Check the established context against the policy. */
/*
 * The initial context token names its mechanism (RFC 2743 3.1:
 * 0x60 <DER length> 0x06 <OID length> <OID> ...). Say plainly when it is
 * not krb5 (SPNEGO, NTLM) instead of MIT's "No credentials were
 * supplied". Tokens without that framing are left to GSSAPI.
 */
static bool gssapi_initial_token_is_krb5(struct tevent_req *req,
					 const gss_buffer_t input)
{
	struct gssapi_handshake_state *state =
	    tevent_req_data(req, struct gssapi_handshake_state);
	const uint8_t *p = input->value;
	size_t len = input->length;
	size_t pos = 2;
	gss_OID_desc oid;

	if (len < 2 || p[0] != 0x60) {
		return true;
	}
	if (p[1] & 0x80) {
		pos += p[1] & 0x7f;
	}
	if (pos + 2 > len || p[pos] != 0x06 || p[pos + 1] > len - pos - 2) {
		return true;
	}
	oid.length = p[pos + 1];
	oid.elements = (void *)(p + pos + 2);
	if (gss_oid_equal(&oid, gss_mech_krb5)) {
		return true;
	}
	gssapi_handshake_fail(
	    req, EACCES,
	    talloc_asprintf(state,
			    "initial token is for mechanism %s, not krb5: "
			    "refused",
			    tstream_gssapi_oid_string(state, &oid)));
	return false;
}

/*
 * An initiator that asked to delegate: MIT leaves the flag out silently
 * when it cannot forward the TGT. The first call already knows (it made
 * the forwarded credentials for its first token), so this runs on every
 * step, before a token is sent.
 */
static bool gssapi_handshake_delegation_check(struct tevent_req *req,
					      OM_uint32 flags)
{
	struct gssapi_handshake_state *state =
	    tevent_req_data(req, struct gssapi_handshake_state);

	if (state->params->acceptor || !state->params->delegate ||
	    (flags & GSS_C_DELEG_FLAG)) {
		return true;
	}
	gssapi_handshake_fail(
	    req, EACCES,
	    talloc_strdup(state, "delegation requested but not done: "
				 "the client's TGT is not forwardable "
				 "(kinit -f) or there is no TGT"));
	return false;
}

static bool gssapi_handshake_check(struct tevent_req *req,
				   gss_OID mech,
				   OM_uint32 flags)
{
	struct gssapi_handshake_state *state =
	    tevent_req_data(req, struct gssapi_handshake_state);
	OM_uint32 need =
	    GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG | state->params->required_flags;

	if (!state->params->acceptor) {
		need |= GSS_C_MUTUAL_FLAG;
	}
	if (mech == GSS_C_NO_OID || !gss_oid_equal(mech, gss_mech_krb5)) {
		gssapi_handshake_fail(
		    req, EACCES,
		    talloc_strdup(state, "mechanism is not krb5: refused"));
		return false;
	}
	if (flags & GSS_C_ANON_FLAG) {
		gssapi_handshake_fail(
		    req, EACCES,
		    talloc_strdup(
			state, "anonymous context refused (anonymous flag)"));
		return false;
	}
	if (!gssapi_handshake_delegation_check(req, flags)) {
		return false;
	}
	if ((flags & need) != need) {
		gssapi_handshake_fail(
		    req, EACCES,
		    talloc_asprintf(state,
				    "context flags 0x%x lack required 0x%x:%s",
				    (unsigned)flags, (unsigned)need,
				    gssapi_flag_names(state, need & ~flags)));
		return false;
	}
	return true;
}

static void gssapi_handshake_send_token(struct tevent_req *req)
{
	struct gssapi_handshake_state *state =
	    tevent_req_data(req, struct gssapi_handshake_state);
	size_t len = state->out_token.length;

	if (len > TSTREAM_GSSAPI_MAX_TOKEN) {
		gssapi_handshake_fail(
		    req, EMSGSIZE,
		    talloc_asprintf(state,
				    "own context token of %zu bytes is "
				    "too large",
				    len));
		return;
	}
	state->hdr[0] = (uint8_t)(len >> 24);
	state->hdr[1] = (uint8_t)(len >> 16);
	state->hdr[2] = (uint8_t)(len >> 8);
	state->hdr[3] = (uint8_t)len;
	state->iov[0].iov_base = state->hdr;
	state->iov[0].iov_len = sizeof(state->hdr);
	state->iov[1].iov_base = state->out_token.value;
	state->iov[1].iov_len = len;
	state->subreq = tstream_writev_send(state, state->ev,
					    state->plain_stream, state->iov, 2);
	if (tevent_req_nomem(state->subreq, req)) {
		return;
	}
	tevent_req_set_callback(state->subreq, gssapi_handshake_written, req);
}

static void gssapi_handshake_finish(struct tevent_req *req)
{
	struct gssapi_handshake_state *state =
	    tevent_req_data(req, struct gssapi_handshake_state);
	char *reason = NULL;
	int err;

	err = tstream_gssapi_stream_create(state, state->plain_stream,
					   &state->ctx, state->params,
					   &state->stream, &reason);
	if (err != 0) {
		gssapi_handshake_fail(req, err, reason);
		return;
	}
	tstream_gssapi_set_delegated(state->stream, &state->deleg);
	tevent_req_done(req);
}

static void gssapi_call_fail(struct gssapi_call *call,
			     const char *what,
			     OM_uint32 major,
			     OM_uint32 minor)
{
	call->err = tstream_gssapi_map_error(major, minor, true);
	/* here: MIT keeps the minor code's message per thread */
	call->reason = tstream_gssapi_status_string(call, what, major, minor);
}

/*
 * The blocking part of a step: in a pool thread (or inline), touching
 * nothing but the call.
 */
static void gssapi_call_work(struct tstream_gssapi_job *job)
{
	struct gssapi_call *call = (struct gssapi_call *)job;
	const struct tstream_gssapi_params *params = call->params;
	gss_buffer_t input = call->has_input ? &call->input : GSS_C_NO_BUFFER;
	struct gss_channel_bindings_struct cbs;
	gss_channel_bindings_t cb =
	    tstream_gssapi_channel_bindings(params, &cbs);
	OM_uint32 maj, min;

	if (call->acquire) {
		call->err = tstream_gssapi_acquire_cred(
		    call, params, &call->cred, &call->reason);
		if (call->err != 0) {
			return;
		}
		if (!params->acceptor) {
			maj = tstream_gssapi_import_name(&min, params->target,
							 &call->target);
			if (GSS_ERROR(maj)) {
				gssapi_call_fail(call, "target name", maj, min);
				return;
			}
		}
	}
	if (!params->acceptor) {
		OM_uint32 req_flags = GSS_C_MUTUAL_FLAG | GSS_C_REPLAY_FLAG |
				      GSS_C_SEQUENCE_FLAG | GSS_C_CONF_FLAG |
				      GSS_C_INTEG_FLAG;

		if (params->delegate) {
			req_flags |= GSS_C_DELEG_FLAG;
		}
		maj = gss_init_sec_context(
		    &min, call->cred, &call->ctx, call->target, gss_mech_krb5,
		    req_flags, GSS_C_INDEFINITE, cb, input, &call->mech,
		    &call->out_token, &call->flags, NULL);
	} else {
		maj = gss_accept_sec_context(
		    &min, &call->ctx, call->cred, input, cb, NULL, &call->mech,
		    &call->out_token, &call->flags, NULL, &call->deleg);
	}
	call->maj = maj;
	if (GSS_ERROR(maj)) {
		gssapi_call_fail(call,
				 params->acceptor ? "accept_sec_context"
						  : "init_sec_context",
				 maj, min);
	} else if (maj != GSS_S_COMPLETE && maj != GSS_S_CONTINUE_NEEDED) {
		/* supplementary bits during establishment: refuse */
		gssapi_call_fail(call, "context establishment", maj, min);
	}
}

/* Back on the loop: the request continues with the result. */
static void gssapi_call_done(struct tstream_gssapi_job *job)
{
	struct gssapi_call *call = (struct gssapi_call *)job;
	struct tevent_req *req = call->req;
	struct gssapi_handshake_state *state =
	    tevent_req_data(req, struct gssapi_handshake_state);

	state->call = NULL;
	gssapi_handshake_result(req, call);
}

/* The request went away: drop the result (the destructor frees it). */
static void gssapi_call_discard(struct tstream_gssapi_job *job)
{
	talloc_free((struct gssapi_call *)job);
}

/*
 * A call that carries the request's GSSAPI handles. For a pool thread it
 * gets its own copies of the params and the input token, so the request
 * may go away while the thread reads them.
 */
static struct gssapi_call *gssapi_call_new(struct tevent_req *req,
					   const gss_buffer_t input,
					   bool pooled)
{
	struct gssapi_handshake_state *state =
	    tevent_req_data(req, struct gssapi_handshake_state);
	struct gssapi_call *call;

	call = talloc_zero(NULL, struct gssapi_call);
	if (call == NULL) {
		return NULL;
	}
	call->cred = GSS_C_NO_CREDENTIAL;
	call->target = GSS_C_NO_NAME;
	call->ctx = GSS_C_NO_CONTEXT;
	call->deleg = GSS_C_NO_CREDENTIAL;
	talloc_set_destructor(call, gssapi_call_destructor);
	call->job.work = gssapi_call_work;
	call->job.done = gssapi_call_done;
	call->job.discard = gssapi_call_discard;
	call->req = req;
	call->acquire = !state->acquired;
	call->params = state->params;
	if (input != GSS_C_NO_BUFFER) {
		call->has_input = true;
		call->input = *input;
	}
	if (pooled) {
		call->params = tstream_gssapi_params_copy(call, state->params);
		if (call->params == NULL) {
			talloc_free(call);
			return NULL;
		}
		if (call->has_input) {
			call->input.value =
			    talloc_memdup(call, input->value, input->length);
			if (call->input.value == NULL) {
				talloc_free(call);
				return NULL;
			}
		}
	}
	call->cred = state->cred;
	call->target = state->target;
	call->ctx = state->ctx;
	state->cred = GSS_C_NO_CREDENTIAL;
	state->target = GSS_C_NO_NAME;
	state->ctx = GSS_C_NO_CONTEXT;
	return call;
}

/* The handles come home; the call is freed. */
static void gssapi_call_return(struct gssapi_handshake_state *state,
			       struct gssapi_call *call)
{
	state->cred = call->cred;
	state->target = call->target;
	state->ctx = call->ctx;
	state->out_token = call->out_token;
	if (call->deleg != GSS_C_NO_CREDENTIAL) {
		OM_uint32 min;

		if (state->deleg != GSS_C_NO_CREDENTIAL) {
			gss_release_cred(&min, &state->deleg);
		}
		state->deleg = call->deleg;
		call->deleg = GSS_C_NO_CREDENTIAL;
	}
	call->cred = GSS_C_NO_CREDENTIAL;
	call->target = GSS_C_NO_NAME;
	call->ctx = GSS_C_NO_CONTEXT;
	call->out_token = (gss_buffer_desc){0};
	if (call->acquire && call->err == 0) {
		state->acquired = true;
	}
	talloc_free(call);
}

/* One call of init/accept_sec_context, in the pool or inline. */
static void gssapi_handshake_step(struct tevent_req *req,
				  const gss_buffer_t input)
{
	struct gssapi_handshake_state *state =
	    tevent_req_data(req, struct gssapi_handshake_state);
	struct tstream_gssapi_pool *pool = state->params->pool;
	bool pooled = tstream_gssapi_pool_usable(pool, state->ev);
	struct gssapi_call *call;
	int err;

	if (state->params->acceptor && state->ctx == GSS_C_NO_CONTEXT &&
	    !gssapi_initial_token_is_krb5(req, input)) {
		return;
	}
	call = gssapi_call_new(req, input, pooled);
	if (tevent_req_nomem(call, req)) {
		return;
	}
	if (pooled) {
		err = tstream_gssapi_pool_submit(pool, &call->job);
		if (err == 0) {
			state->call = call;
			return;
		}
		gssapi_call_return(state, call);
		gssapi_handshake_fail(
		    req, err,
		    talloc_asprintf(state, "GSSAPI worker pool: %s",
				    err == EAGAIN ? "queue full"
						  : strerror(err)));
		return;
	}
	gssapi_call_work(&call->job);
	gssapi_handshake_result(req, call);
}

/* Continue after a call: check, then write and/or read. */
static void gssapi_handshake_result(struct tevent_req *req,
				    struct gssapi_call *call)
{
	struct gssapi_handshake_state *state =
	    tevent_req_data(req, struct gssapi_handshake_state);
	OM_uint32 maj = call->maj;
	OM_uint32 flags = call->flags;
	gss_OID mech = call->mech;
	char *reason = talloc_move(state, &call->reason);
	int err = call->err;
	OM_uint32 tmp;

	gssapi_call_return(state, call);
	if (err != 0) {
		gssapi_handshake_fail(req, err, reason);
		return;
	}
	if (maj == GSS_S_COMPLETE) {
		if (!gssapi_handshake_check(req, mech, flags)) {
			return;
		}
		state->complete = true;
	} else if (!gssapi_handshake_delegation_check(req, flags)) {
		/* before the first token goes: the acceptor never sees it */
		return;
	}

	if (state->out_token.length > 0) {
		gssapi_handshake_send_token(req);
		return;
	}
	if (state->out_token.value != NULL) {
		gss_release_buffer(&tmp, &state->out_token);
	}
	if (state->complete) {
		gssapi_handshake_finish(req);
		return;
	}
	state->iov[0].iov_base = state->hdr;
	state->iov[0].iov_len = sizeof(state->hdr);
	state->subreq = tstream_readv_send(state, state->ev,
					   state->plain_stream, state->iov, 1);
	if (tevent_req_nomem(state->subreq, req)) {
		return;
	}
	tevent_req_set_callback(state->subreq, gssapi_handshake_hdr_done, req);
}

static void gssapi_handshake_written(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct gssapi_handshake_state *state =
	    tevent_req_data(req, struct gssapi_handshake_state);
	OM_uint32 tmp;
	int ret, err;

	ret = tstream_writev_recv(subreq, &err);
	TALLOC_FREE(subreq);
	state->subreq = NULL;
	gss_release_buffer(&tmp, &state->out_token);
	if (ret == -1) {
		gssapi_handshake_fail(
		    req, err,
		    talloc_asprintf(state, "sending context token: %s",
				    strerror(err)));
		return;
	}
	if (state->complete) {
		gssapi_handshake_finish(req);
		return;
	}
	state->iov[0].iov_base = state->hdr;
	state->iov[0].iov_len = sizeof(state->hdr);
	state->subreq = tstream_readv_send(state, state->ev,
					   state->plain_stream, state->iov, 1);
	if (tevent_req_nomem(state->subreq, req)) {
		return;
	}
	tevent_req_set_callback(state->subreq, gssapi_handshake_hdr_done, req);
}

static void gssapi_handshake_hdr_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct gssapi_handshake_state *state =
	    tevent_req_data(req, struct gssapi_handshake_state);
	uint32_t len;
	int ret, err;

	ret = tstream_readv_recv(subreq, &err);
	TALLOC_FREE(subreq);
	state->subreq = NULL;
	if (ret == -1) {
		gssapi_handshake_fail(
		    req, err,
		    talloc_asprintf(state, "reading context token: %s",
				    err == EPIPE ? "peer closed the "
						   "connection"
						 : strerror(err)));
		return;
	}
	len = ((uint32_t)state->hdr[0] << 24) |
	      ((uint32_t)state->hdr[1] << 16) | ((uint32_t)state->hdr[2] << 8) |
	      (uint32_t)state->hdr[3];
	if (len == 0 || len > TSTREAM_GSSAPI_MAX_TOKEN) {
		/* refused before allocating anything for it */
		gssapi_handshake_fail(
		    req, EMSGSIZE,
		    talloc_asprintf(state,
				    "context token length %u outside "
				    "1..%u refused",
				    (unsigned)len,
				    (unsigned)TSTREAM_GSSAPI_MAX_TOKEN));
		return;
	}
	TALLOC_FREE(state->in_token);
	state->in_token = talloc_size(state, len);
	if (tevent_req_nomem(state->in_token, req)) {
		return;
	}
	state->in_len = len;
	state->iov[0].iov_base = state->in_token;
	state->iov[0].iov_len = len;
	state->subreq = tstream_readv_send(state, state->ev,
					   state->plain_stream, state->iov, 1);
	if (tevent_req_nomem(state->subreq, req)) {
		return;
	}
	tevent_req_set_callback(state->subreq, gssapi_handshake_token_done,
				req);
}

static void gssapi_handshake_token_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct gssapi_handshake_state *state =
	    tevent_req_data(req, struct gssapi_handshake_state);
	gss_buffer_desc input;
	int ret, err;

	ret = tstream_readv_recv(subreq, &err);
	TALLOC_FREE(subreq);
	state->subreq = NULL;
	if (ret == -1) {
		gssapi_handshake_fail(
		    req, err == EPIPE ? ECONNABORTED : err,
		    talloc_asprintf(state, "reading context token: %s",
				    err == EPIPE ? "truncated token"
						 : strerror(err)));
		return;
	}
	input.value = state->in_token;
	input.length = state->in_len;
	/* in_token is freed with the next one or with the state */
	gssapi_handshake_step(req, &input);
}

static int gssapi_handshake_recv(struct tevent_req *req,
				 int *perrno,
				 TALLOC_CTX *mem_ctx,
				 struct tstream_context **_stream,
				 char **_reason)
{
	struct gssapi_handshake_state *state =
	    tevent_req_data(req, struct gssapi_handshake_state);

	if (tstream_gssapi_recv_failed(req, perrno, mem_ctx, state->reason,
				       _reason)) {
		return -1;
	}
	tstream_gssapi_adopt_plain(state->stream);
	*_stream = talloc_move(mem_ctx, &state->stream);
	tevent_req_received(req);
	return 0;
}

_PUBLIC_ struct tevent_req *tstream_gssapi_accept_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *plain_stream,
    struct tstream_gssapi_params *params)
{
	return gssapi_handshake_send(mem_ctx, ev, plain_stream, params, false);
}

_PUBLIC_ int tstream_gssapi_accept_recv(struct tevent_req *req,
					int *perrno,
					TALLOC_CTX *mem_ctx,
					struct tstream_context **_stream,
					char **_reason)
{
	return gssapi_handshake_recv(req, perrno, mem_ctx, _stream, _reason);
}

_PUBLIC_ struct tevent_req *tstream_gssapi_connect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *plain_stream,
    struct tstream_gssapi_params *params)
{
	return gssapi_handshake_send(mem_ctx, ev, plain_stream, params, true);
}

_PUBLIC_ int tstream_gssapi_connect_recv(struct tevent_req *req,
					 int *perrno,
					 TALLOC_CTX *mem_ctx,
					 struct tstream_context **_stream,
					 char **_reason)
{
	return gssapi_handshake_recv(req, perrno, mem_ctx, _stream, _reason);
}
