/* SPDX-License-Identifier: MIT */
/*
 * tstream_tls — the handshake: the session set up from the parameters,
 * tstream_tls_accept/connect, and the step that drives
 * gnutls_handshake() from tevent (through the record layer's push and
 * pull in tstream_tls.c) and decides why a handshake failed. What it
 * learns of the peer is collected in tstream_tls_peer.c.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tsgate_export.h"
#include "tsocket_internal.h"
#include "tstream_tls_private.h"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

/*
 * Handshake
 */

struct tstream_tls_handshake_state {
	struct tstream_context *tls_stream;
	struct tstream_tls *tlss;
	int err;
	char *reason;
};

static void tstream_tls_handshake_cleanup(struct tevent_req *req,
					  enum tevent_req_state req_state)
{
	struct tstream_tls_handshake_state *state =
	    tevent_req_data(req, struct tstream_tls_handshake_state);

	if (state->tlss != NULL && state->tlss->handshake_req == req) {
		state->tlss->handshake_req = NULL;
	}
}

/* Server: pick the certificate for the SNI the client sent. */
static int tstream_tls_client_hello(gnutls_session_t session)
{
	struct tstream_tls *tlss = gnutls_session_get_ptr(session);
	const struct tstream_tls_params_internal *p = tlss->params->internal;
	char name[256];
	size_t len = sizeof(name) - 1;
	unsigned int type = 0;
	const char *sni = NULL;
	gnutls_certificate_credentials_t cred;
	int ret;

	ret = gnutls_server_name_get(session, name, &len, &type, 0);
	if (ret == 0 && type == GNUTLS_NAME_DNS && len < sizeof(name)) {
		name[len] = '\0';
		TALLOC_FREE(tlss->sni);
		tlss->sni = talloc_strdup(tlss, name);
		sni = tlss->sni;
	}
	cred = tstream_tls_params_cred_for_sni(p, sni);
	ret = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred);
	if (ret < 0) {
		return ret;
	}
	return tstream_tls_resume_server_cred(tlss, cred);
}

static int tstream_tls_session_init(struct tstream_tls *tlss)
{
	const struct tstream_tls_params_internal *p = tlss->params->internal;
	/*
	 * Tickets only where resumption is on (tstream_tls_resume.c):
	 * otherwise a TLS 1.3 server would send tickets no one can use and a
	 * client would keep them. Never GNUTLS_ENABLE_EARLY_DATA: 0-RTT data
	 * can be replayed.
	 */
	unsigned int flags = GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL;
	int ret;

	if (p->is_server ? !p->tickets : !p->resume) {
		flags |= GNUTLS_NO_TICKETS;
	} else if (p->is_server) {
		/* how many depends on the handshake: tstream_tls_resume.c */
		flags |= GNUTLS_NO_AUTO_SEND_TICKET;
	}
	flags |= p->is_server ? GNUTLS_SERVER : GNUTLS_CLIENT;
	ret = gnutls_init(&tlss->session, flags);
	if (ret < 0) {
		tlss->session = NULL;
		return ret;
	}
	gnutls_session_set_ptr(tlss->session, tlss);
	gnutls_transport_set_ptr(tlss->session, tlss);
	gnutls_transport_set_pull_function(tlss->session, tstream_tls_pull);
	gnutls_transport_set_vec_push_function(tlss->session, tstream_tls_push);
	/* the caller bounds the handshake with tevent_req_set_endtime() */
	gnutls_handshake_set_timeout(tlss->session, 0);

	ret = gnutls_priority_set(tlss->session, p->priority);
	if (ret < 0) {
		return ret;
	}
	ret = gnutls_credentials_set(tlss->session, GNUTLS_CRD_CERTIFICATE,
				     p->creds[p->default_cred].cred);
	if (ret < 0) {
		return ret;
	}
	ret = tstream_tls_resume_init(tlss);
	if (ret < 0) {
		return ret;
	}
	if (p->num_alpn > 0) {
		ret = gnutls_alpn_set_protocols(
		    tlss->session, p->alpn, p->num_alpn,
		    p->is_server ? GNUTLS_ALPN_SERVER_PRECEDENCE : 0);
		if (ret < 0) {
			return ret;
		}
	}

	if (p->is_server) {
		gnutls_certificate_request_t request = GNUTLS_CERT_IGNORE;

		gnutls_handshake_set_post_client_hello_function(
		    tlss->session, tstream_tls_client_hello);
		if (p->verify == TSTREAM_TLS_VERIFY_REQUIRE) {
			request = GNUTLS_CERT_REQUIRE;
			gnutls_session_set_verify_cert(tlss->session, NULL, 0);
		} else if (p->verify == TSTREAM_TLS_VERIFY_OPTIONAL) {
			request = GNUTLS_CERT_REQUEST;
		}
		gnutls_certificate_server_set_request(tlss->session, request);
		if (p->own_records) {
			tstream_tls_r13_prepare(tlss);
		}
		return 0;
	}

	if (p->sni != NULL) {
		ret = gnutls_server_name_set(tlss->session, GNUTLS_NAME_DNS,
					     p->sni, strlen(p->sni));
		if (ret < 0) {
			return ret;
		}
		tlss->sni = talloc_strdup(tlss, p->sni);
		if (tlss->sni == NULL) {
			return GNUTLS_E_MEMORY_ERROR;
		}
	}
	if (p->verify == TSTREAM_TLS_VERIFY_REQUIRE) {
		gnutls_session_set_verify_cert(tlss->session, p->peer_name, 0);
	}
	return 0;
}

static struct tevent_req *tstream_tls_handshake_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *plain_stream,
    struct tstream_tls_params *params,
    bool server,
    const char *location)
{
	struct tevent_req *req;
	struct tstream_tls_handshake_state *state;
	struct tstream_tls *tlss;
	int ret;

	req = tevent_req_create(mem_ctx, &state,
				struct tstream_tls_handshake_state);
	if (req == NULL) {
		return NULL;
	}
	tevent_req_defer_callback(req, ev);
	if (plain_stream == NULL) {
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}
	/* from here on the plain stream is ours, whatever happens */
	talloc_steal(state, plain_stream);
	if (params == NULL || params->internal == NULL ||
	    params->internal->is_server != server) {
		state->reason = talloc_strdup(
		    state, server ? "TLS server needs server parameters"
				  : "TLS client needs client parameters");
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}

	/*
	 * Made outside the request's talloc pool, then owned by the state:
	 * a stream carved from the pool would keep the whole pool alive for
	 * the connection's life once the request is gone.
	 */
	state->tls_stream = tstream_context_create(
	    NULL, &tstream_tls_ops, &tlss, struct tstream_tls, location);
	if (tevent_req_nomem(state->tls_stream, req)) {
		return tevent_req_post(req, ev);
	}
	talloc_steal(state, state->tls_stream);
	talloc_set_destructor(tlss, tstream_tls_destructor);
	tlss->plain_stream = talloc_steal(tlss, plain_stream);
	tlss->ev = ev;
	tlss->is_server = server;
	tstream_tls_params_hold(&tlss->params_hold, params);
	tlss->params = &tlss->params_hold;
	state->tlss = tlss;

	ret = tstream_tls_session_init(tlss);
	if (ret < 0) {
		state->reason =
		    talloc_asprintf(state, "cannot set up TLS session: %s",
				    gnutls_strerror(ret));
		tevent_req_error(req, ret == GNUTLS_E_MEMORY_ERROR ? ENOMEM
								   : EINVAL);
		return tevent_req_post(req, ev);
	}

	tlss->handshake_req = req;
	tevent_req_set_cleanup_fn(req, tstream_tls_handshake_cleanup);
	tstream_tls_handshake_step(tlss);
	if (!tevent_req_is_in_progress(req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

_PUBLIC_ struct tevent_req *tstream_tls_accept_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *plain_stream,
    struct tstream_tls_params *params)
{
	return tstream_tls_handshake_send(mem_ctx, ev, plain_stream, params,
					  true, __location__);
}

_PUBLIC_ struct tevent_req *tstream_tls_connect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *plain_stream,
    struct tstream_tls_params *params)
{
	return tstream_tls_handshake_send(mem_ctx, ev, plain_stream, params,
					  false, __location__);
}

/* Decide the errno and the log reason of a failed handshake. */
static void tstream_tls_handshake_reason(struct tstream_tls *tlss,
					 struct tstream_tls_handshake_state *s,
					 int ret)
{
	const char *peer_cert =
	    tlss->is_server ? "client certificate" : "server certificate";
	gnutls_alert_description_t alert;

	if (tlss->error != 0) {
		s->err = tlss->error;
		s->reason = talloc_asprintf(s,
					    "connection error during TLS "
					    "handshake: %s",
					    strerror(tlss->error));
		return;
	}
	switch (ret) {
	case GNUTLS_E_FATAL_ALERT_RECEIVED:
		alert = gnutls_alert_get(tlss->session);
		s->err =
		    tstream_tls_alert_is_about_cert(alert) ? EACCES : EPROTO;
		s->reason = talloc_asprintf(s, "peer sent fatal alert: %s",
					    gnutls_alert_get_name(alert));
		return;
	case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
	case GNUTLS_E_CERTIFICATE_ERROR: {
		unsigned int status =
		    gnutls_session_get_verify_cert_status(tlss->session);
		gnutls_datum_t out = {NULL, 0};

		s->err = EACCES;
		if (status != 0 && gnutls_certificate_verification_status_print(
				       status, GNUTLS_CRT_X509, &out, 0) == 0) {
			s->reason =
			    talloc_asprintf(s, "%s verification failed: %s",
					    peer_cert, (const char *)out.data);
			gnutls_free(out.data);
		} else {
			s->reason =
			    talloc_asprintf(s, "%s verification failed: %s",
					    peer_cert, gnutls_strerror(ret));
		}
		return;
	}
	case GNUTLS_E_NO_CERTIFICATE_FOUND:
	case GNUTLS_E_CERTIFICATE_REQUIRED:
		s->err = EACCES;
		s->reason = talloc_asprintf(s, "%s required but none was sent",
					    peer_cert);
		return;
	case GNUTLS_E_MEMORY_ERROR:
		s->err = ENOMEM;
		s->reason = talloc_strdup(s, "out of memory");
		return;
	default:
		break;
	}
	if (tlss->pull.eof) {
		s->err = EPIPE;
		s->reason = talloc_strdup(s, "connection closed by peer during "
					     "TLS handshake");
		return;
	}
	s->err = EPROTO;
	s->reason = talloc_asprintf(s, "TLS handshake failed: %s",
				    gnutls_strerror(ret));
}

void tstream_tls_handshake_step(struct tstream_tls *tlss)
{
	struct tevent_req *req = tlss->handshake_req;
	struct tstream_tls_handshake_state *state =
	    tevent_req_data(req, struct tstream_tls_handshake_state);
	unsigned spins = 0;
	int ret;
	int err;

	if (state->err != 0) {
		/* failed: the alert goes out before the request ends */
		if (tlss->error == 0 &&
		    (tlss->push.subreq != NULL || tlss->push.fill_len > 0)) {
			return;
		}
		tstream_tls_fail_req(req, state->err);
		return;
	}

	do {
		ret = gnutls_handshake(tlss->session);
		/* again at once unless it waits for the plain stream */
	} while (ret < 0 && tlss->error == 0 && ++spins < 64 &&
		 (((ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) &&
		   tlss->pull.subreq == NULL && !tlss->pull.eof) ||
		  (ret != GNUTLS_E_AGAIN && ret != GNUTLS_E_INTERRUPTED &&
		   gnutls_error_is_fatal(ret) == 0)));
	if (ret == 0 && tlss->error == 0) {
		/* in the same write as the handshake's last flight */
		tstream_tls_resume_send_tickets(tlss);
	}
	tstream_tls_flush(tlss);
	if ((ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) &&
	    tlss->error == 0 && tlss->pull.subreq == NULL &&
	    tlss->push.subreq == NULL) {
		/* nothing would ever wake us up again */
		ret = GNUTLS_E_INTERNAL_ERROR;
	}

	if (ret == 0 && tlss->error == 0) {
		tlss->resumed = gnutls_session_is_resumed(tlss->session) != 0;
		err = tstream_tls_collect(tlss);
		if (err != 0) {
			state->err = err;
			state->reason = talloc_strdup(state, strerror(err));
			tstream_tls_fail_req(req, err);
			return;
		}
		tlss->established = true;
		tstream_tls_resume_keep(tlss);
		/* a server's TLS 1.3 records go to our own record layer */
		tstream_tls_r13_take_over(tlss);
		tstream_tls_release_idle(tlss);
		tstream_tls_done_req(req);
		return;
	}
	if ((ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) &&
	    tlss->error == 0) {
		return; /* retried when the plain read or write is done */
	}

	tstream_tls_handshake_reason(tlss, state, ret);
	if (tlss->error == 0 && !tlss->pull.eof &&
	    ret != GNUTLS_E_FATAL_ALERT_RECEIVED) {
		/* tell the peer why, best effort */
		gnutls_alert_send_appropriate(tlss->session, ret);
		tstream_tls_flush(tlss);
		if (tlss->error == 0 && tlss->push.subreq != NULL) {
			return;
		}
	}
	tstream_tls_fail_req(req, state->err);
}

static int tstream_tls_handshake_recv(struct tevent_req *req,
				      int *perrno,
				      TALLOC_CTX *mem_ctx,
				      struct tstream_context **tls_stream,
				      char **reason)
{
	struct tstream_tls_handshake_state *state =
	    tevent_req_data(req, struct tstream_tls_handshake_state);
	int err = 0;

	if (reason != NULL) {
		*reason = NULL;
	}
	if (tstream_tls_req_error(req, &err) != 0) {
		if (reason != NULL) {
			if (err == ETIMEDOUT && state->reason == NULL) {
				*reason = talloc_strdup(mem_ctx,
							"TLS handshake timed "
							"out");
			} else if (state->reason != NULL) {
				*reason = talloc_move(mem_ctx, &state->reason);
			} else {
				*reason = talloc_strdup(mem_ctx, strerror(err));
			}
		}
		if (perrno != NULL) {
			*perrno = err;
		}
		tevent_req_received(req);
		return -1;
	}
	state->tlss->handshake_req = NULL;
	*tls_stream = talloc_move(mem_ctx, &state->tls_stream);
	tevent_req_received(req);
	return 0;
}

_PUBLIC_ int tstream_tls_accept_recv(struct tevent_req *req,
				     int *perrno,
				     TALLOC_CTX *mem_ctx,
				     struct tstream_context **tls_stream,
				     char **reason)
{
	return tstream_tls_handshake_recv(req, perrno, mem_ctx, tls_stream,
					  reason);
}

_PUBLIC_ int tstream_tls_connect_recv(struct tevent_req *req,
				      int *perrno,
				      TALLOC_CTX *mem_ctx,
				      struct tstream_context **tls_stream,
				      char **reason)
{
	return tstream_tls_handshake_recv(req, perrno, mem_ctx, tls_stream,
					  reason);
}
