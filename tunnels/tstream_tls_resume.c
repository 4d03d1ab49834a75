/* SPDX-License-Identifier: MIT */
/*
 * tstream_tls — session resumption. A server with a ticket key issues
 * tickets (TLS 1.3 NewSessionTicket after the handshake, TLS 1.2 RFC 5077)
 * and GnuTLS derives each rotation period's key from that master, so
 * every process given the same master agrees on the keys. Early data is
 * never enabled: a 0-RTT request can be replayed.
 *
 * Client parameters with session_resumption keep the latest session a
 * handshake made (one per parameters, so memory stays bounded) and offer
 * it in the next handshake; a server that refuses it makes a full one.
 */

#include <errno.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "tsgate_export.h"
#include "tstream_tls_private.h"

/* A session bigger than this is not kept (a certificate chain is ~4 KiB). */
#define TLS_RESUME_MAX_DATA (64 * 1024)

/* TLS 1.3 tickets a server sends after a full and after a resumed handshake */
#define TSTREAM_TLS_TICKETS_FULL    2
#define TSTREAM_TLS_TICKETS_RESUMED 1

void tstream_tls_resume_free(struct tstream_tls_params_internal *p)
{
	size_t i;

	gnutls_memset(p->ticket_key, 0, sizeof(p->ticket_key));
	for (i = 0; i < p->num_creds; i++) {
		gnutls_memset(p->creds[i].ticket_master, 0,
			      sizeof(p->creds[i].ticket_master));
	}
	if (p->session_data.data != NULL) {
		gnutls_memset(p->session_data.data, 0, p->session_data.size);
		gnutls_free(p->session_data.data);
		p->session_data.data = NULL;
		p->session_data.size = 0;
	}
}

_PUBLIC_ void tstream_tls_params_forget_session(
    struct tstream_tls_params *params)
{
	if (params == NULL || params->internal == NULL ||
	    params->internal->is_server) {
		return;
	}
	if (params->internal->session_data.data != NULL) {
		gnutls_memset(params->internal->session_data.data, 0,
			      params->internal->session_data.size);
		gnutls_free(params->internal->session_data.data);
	}
	params->internal->session_data.data = NULL;
	params->internal->session_data.size = 0;
}

/*
 * Keep the session this client handshake can resume: called when the
 * handshake ends (TLS 1.2: the session is complete) and when a TLS 1.3
 * NewSessionTicket arrives (the handshake gives nothing to resume).
 */
void tstream_tls_resume_keep(struct tstream_tls *tlss)
{
	struct tstream_tls_params_internal *p = tlss->params->internal;
	gnutls_datum_t data = {NULL, 0};

	if (p->is_server || !p->resume) {
		return;
	}
	if (gnutls_protocol_get_version(tlss->session) == GNUTLS_TLS1_3 &&
	    (gnutls_session_get_flags(tlss->session) &
	     GNUTLS_SFLAGS_SESSION_TICKET) == 0) {
		return; /* no ticket yet: nothing that resumes */
	}
	if (gnutls_session_get_data2(tlss->session, &data) < 0 ||
	    data.size == 0 || data.size > TLS_RESUME_MAX_DATA) {
		gnutls_free(data.data);
		return;
	}
	tstream_tls_params_forget_session(tlss->params);
	p->session_data = data;
}

/*
 * Server, TLS 1.3, the handshake just done (GNUTLS_NO_AUTO_SEND_TICKET,
 * see tstream_tls_session_init): tickets for the client's next
 * connections. Clients use a TLS 1.3 ticket once (RFC 8446 C.4), so a
 * full handshake gives two (as GnuTLS and OpenSSL do: two connections
 * opened at once both resume) and a resumption one, replacing the one
 * spent; each ticket costs an encryption, a key derivation and a record.
 * Best effort: a client without a ticket makes a full handshake.
 */
void tstream_tls_resume_send_tickets(struct tstream_tls *tlss)
{
	const struct tstream_tls_params_internal *p = tlss->params->internal;
	unsigned int nr;

	if (!p->is_server || !p->tickets ||
	    gnutls_protocol_get_version(tlss->session) != GNUTLS_TLS1_3) {
		return; /* TLS 1.2: the ticket is part of the handshake */
	}
	nr = gnutls_session_is_resumed(tlss->session) != 0
		 ? TSTREAM_TLS_TICKETS_RESUMED
		 : TSTREAM_TLS_TICKETS_FULL;
	(void)gnutls_session_ticket_send(tlss->session, nr, 0);
}

static int tstream_tls_ticket_arrived(gnutls_session_t session,
				      unsigned int htype,
				      unsigned when,
				      unsigned int incoming,
				      const gnutls_datum_t *msg)
{
	struct tstream_tls *tlss = gnutls_session_get_ptr(session);

	(void)htype;
	(void)when;
	(void)incoming;
	(void)msg;
	if (tlss != NULL && tlss->established) {
		tstream_tls_resume_keep(tlss);
	}
	return 0;
}

int tstream_tls_resume_init(struct tstream_tls *tlss)
{
	const struct tstream_tls_params_internal *p = tlss->params->internal;
	int ret;

	if (p->is_server) {
		if (!p->tickets) {
			return 0;
		}
		/*
		 * The ticket lifetime; GnuTLS rotates keys every 3 of them.
		 * The key itself comes with the certificate, once the client
		 * has named the server (tstream_tls_resume_server_cred).
		 */
		gnutls_db_set_cache_expiration(tlss->session,
					       (int)p->ticket_lifetime);
		return 0;
	}
	if (!p->resume) {
		return 0;
	}
	gnutls_handshake_set_hook_function(
	    tlss->session, GNUTLS_HANDSHAKE_NEW_SESSION_TICKET,
	    GNUTLS_HOOK_POST, tstream_tls_ticket_arrived);
	if (p->session_data.data == NULL) {
		return 0;
	}
	ret = gnutls_session_set_data(tlss->session, p->session_data.data,
				      p->session_data.size);
	if (ret < 0) {
		/* a session this GnuTLS cannot read: a full handshake */
		tstream_tls_params_forget_session(tlss->params);
	}
	return 0;
}

/*
 * Server parameters with tickets, once loaded: the ticket master of each
 * certificate entry, HMAC-SHA512(ticket_key, "tsgate sni entry" ||
 * index). A ticket issued under one server name therefore does not
 * resume under another one that has another certificate, as a session id
 * context per certificate does in OpenSSL. Made here once rather than per
 * handshake.
 */
int tstream_tls_resume_prepare(struct tstream_tls_params_internal *p)
{
	uint8_t label[20] = "tsgate sni entry";
	size_t i;
	int ret;

	for (i = 0; p->tickets && i < p->num_creds; i++) {
		uint32_t index = (uint32_t)i;

		label[16] = (uint8_t)(index >> 24);
		label[17] = (uint8_t)(index >> 16);
		label[18] = (uint8_t)(index >> 8);
		label[19] = (uint8_t)index;
		ret = gnutls_hmac_fast(
		    GNUTLS_MAC_SHA512, p->ticket_key, sizeof(p->ticket_key),
		    label, sizeof(label), p->creds[i].ticket_master);
		if (ret < 0) {
			return ret;
		}
	}
	return 0;
}

/*
 * Server, once the client hello chose the certificate for its SNI (and
 * before GnuTLS reads the ticket it offers): the ticket master of that
 * certificate entry.
 */
int tstream_tls_resume_server_cred(struct tstream_tls *tlss,
				   gnutls_certificate_credentials_t cred)
{
	const struct tstream_tls_params_internal *p = tlss->params->internal;
	gnutls_datum_t key = {NULL, sizeof(p->creds[0].ticket_master)};
	size_t i;
	int ret;

	if (!p->tickets) {
		return 0;
	}
	if (tlss->ticket_key_set) {
		/*
		 * A second client hello (after a HelloRetryRequest): GnuTLS
		 * has read the ticket with the first one's key and takes no
		 * other now; RFC 8446 4.1.2 keeps the server name the same.
		 */
		return 0;
	}
	key.data = p->creds[0].ticket_master;
	for (i = 0; i < p->num_creds; i++) {
		if (p->creds[i].cred == cred) {
			key.data = p->creds[i].ticket_master;
			break;
		}
	}
	/* GnuTLS copies the key into the session */
	ret = gnutls_session_ticket_enable_server(tlss->session, &key);
	tlss->ticket_key_set = ret == 0;
	return ret;
}

_PUBLIC_ bool tstream_tls_resumed(struct tstream_context *stream)
{
	struct tstream_tls *tlss;

	if (stream == NULL) {
		errno = EINVAL;
		return false;
	}
	tlss =
	    talloc_get_type(_tstream_context_data(stream), struct tstream_tls);
	if (tlss == NULL || !tlss->established) {
		errno = EINVAL;
		return false;
	}
	return tlss->resumed;
}
