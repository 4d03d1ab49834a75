/* SPDX-License-Identifier: MIT */
/*
 * tstream_gssapi: a context established over a stream that keeps
 * carrying the data itself (tls-gssapi, docs/protocols.md).
 *
 * The token exchange is the knc one, run by the ordinary handshake on a
 * private copy of the params that carries the channel's binding bytes.
 * Without wrap the context proves nothing about the bytes that follow
 * unless it is bound to the channel that carries them, so bindings are
 * required, and the acceptor refuses an initiator whose authenticator
 * did not carry them (MIT accepts null bindings from an initiator unless
 * told otherwise: GSS_C_CHANNEL_BOUND_FLAG says they were present and
 * matched).
 */

#include <errno.h>
#include <string.h>

#include "tsgate_export.h"
#include "tsocket_internal.h"
#include "tstream_gssapi_private.h"

gss_channel_bindings_t tstream_gssapi_channel_bindings(
    const struct tstream_gssapi_params *params,
    struct gss_channel_bindings_struct *buf)
{
	if (params->cb_len == 0) {
		return GSS_C_NO_CHANNEL_BINDINGS;
	}
	/*
	 * Address types 0 (GSS_C_AF_UNSPEC) and no addresses, as SSPI and
	 * the other tls-exporter users (curl, Samba) pass them: the types go
	 * into the RFC 4121 checksum, so they are part of the wire format.
	 */
	memset(buf, 0, sizeof(*buf));
	buf->initiator_addrtype = GSS_C_AF_UNSPEC;
	buf->acceptor_addrtype = GSS_C_AF_UNSPEC;
	buf->application_data.value = params->cb_data;
	buf->application_data.length = params->cb_len;
	return buf;
}

struct gssapi_auth_state {
	bool acceptor;
	struct tstream_context *identity;
	char *reason;
};

static void gssapi_auth_done(struct tevent_req *subreq);

_PUBLIC_ struct tevent_req *tstream_gssapi_auth_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream,
    struct tstream_gssapi_params *params,
    const uint8_t *channel_bindings,
    size_t cb_len)
{
	struct tevent_req *req, *subreq;
	struct gssapi_auth_state *state;
	struct tstream_gssapi_params *copy;

	req = tevent_req_create(mem_ctx, &state, struct gssapi_auth_state);
	if (req == NULL) {
		return NULL;
	}
	if (stream == NULL || params == NULL || channel_bindings == NULL ||
	    cb_len == 0 || cb_len > TSTREAM_GSSAPI_MAX_TOKEN) {
		state->reason = talloc_strdup(
		    state, "channel bindings are required without wrap");
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}
	state->acceptor = params->acceptor;
	copy = tstream_gssapi_params_copy(state, params);
	if (tevent_req_nomem(copy, req)) {
		return tevent_req_post(req, ev);
	}
	copy->cb_data = talloc_memdup(copy, channel_bindings, cb_len);
	if (tevent_req_nomem(copy->cb_data, req)) {
		return tevent_req_post(req, ev);
	}
	copy->cb_len = cb_len;
	copy->auth_only = true;
	if (copy->acceptor) {
		copy->required_flags |= GSS_C_CHANNEL_BOUND_FLAG;
		subreq = tstream_gssapi_accept_send(state, ev, stream, copy);
	} else {
		subreq = tstream_gssapi_connect_send(state, ev, stream, copy);
	}
	/* the handshake made its own copy */
	talloc_free(copy);
	if (tevent_req_nomem(subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(subreq, gssapi_auth_done, req);
	return req;
}

static void gssapi_auth_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct gssapi_auth_state *state =
	    tevent_req_data(req, struct gssapi_auth_state);
	int ret, err = 0;

	if (state->acceptor) {
		ret = tstream_gssapi_accept_recv(
		    subreq, &err, state, &state->identity, &state->reason);
	} else {
		ret = tstream_gssapi_connect_recv(
		    subreq, &err, state, &state->identity, &state->reason);
	}
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	tevent_req_done(req);
}

_PUBLIC_ int tstream_gssapi_auth_recv(struct tevent_req *req,
				      int *perrno,
				      TALLOC_CTX *mem_ctx,
				      struct tstream_context **_identity,
				      char **_reason)
{
	struct gssapi_auth_state *state =
	    tevent_req_data(req, struct gssapi_auth_state);

	if (tstream_gssapi_recv_failed(req, perrno, mem_ctx, state->reason,
				       _reason)) {
		return -1;
	}
	*_identity = talloc_move(mem_ctx, &state->identity);
	tevent_req_received(req);
	return 0;
}
