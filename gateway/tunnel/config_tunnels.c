/* SPDX-License-Identifier: MIT */
/*
 * From config blocks to tunnel parameters: how a listener's or a route's
 * tls block becomes tstream_tls params. --check-config builds them too, so
 * whatever the TLS library refuses is reported before start-up.
 */
#include <errno.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "config_tunnels.h"
#include "ticket_keys.h"
#include "tstream_tls.h"

char *tsgate_config_tls_priority(TALLOC_CTX *mem_ctx,
				 const char *priority,
				 enum tsgate_config_tls_version min,
				 enum tsgate_config_tls_version max)
{
	const char *base;

	if (min == TSGATE_CONFIG_TLS_DEFAULT &&
	    max == TSGATE_CONFIG_TLS_DEFAULT) {
		return priority != NULL ? talloc_strdup(mem_ctx, priority)
					: NULL;
	}
	base = priority != NULL ? priority : TSTREAM_TLS_DEFAULT_PRIORITY;
	/* GnuTLS applies priority items in order: the last ones win. */
	return talloc_asprintf(
	    mem_ctx, "%s:-VERS-ALL%s%s", base,
	    min != TSGATE_CONFIG_TLS_1_3 ? ":+VERS-TLS1.2" : "",
	    max != TSGATE_CONFIG_TLS_1_2 ? ":+VERS-TLS1.3" : "");
}

/* NULL-terminated copy of a string list, or NULL for an empty one. */
static const char *const *cfg_strv(TALLOC_CTX *mem_ctx,
				   const char **v,
				   size_t n,
				   bool *oom)
{
	const char **out;
	size_t i;

	if (n == 0) {
		return NULL;
	}
	out = talloc_zero_array(mem_ctx, const char *, n + 1);
	if (out == NULL) {
		*oom = true;
		return NULL;
	}
	for (i = 0; i < n; i++) {
		out[i] = v[i];
	}
	return out;
}

/*
 * The listener's ticket master: from its key file (read now, so a reload
 * picks a changed file up with the certificates), else from the daemon's
 * secret; none without either (--check-config).
 */
static int cfg_ticket_master(TALLOC_CTX *tmp,
			     const struct tsgate_config_tls_server *tls,
			     const char *listener,
			     const struct tsgate_ticket_secret *secret,
			     uint8_t *master,
			     bool *have,
			     char **error)
{
	struct tsgate_ticket_secret *from_file = NULL;
	int ret;

	*have = false;
	if (!tls->session_resumption) {
		return 0;
	}
	if (tls->ticket_keys_file != NULL) {
		char *why = NULL;

		ret = tsgate_ticket_keys_read(tmp, tls->ticket_keys_file,
					      &from_file, NULL, &why);
		if (ret != 0) {
			*error =
			    talloc_asprintf(tmp, "ticket_keys_file: %s",
					    why != NULL ? why : strerror(ret));
			return ret;
		}
		secret = from_file;
	}
	if (secret == NULL) {
		return 0;
	}
	ret =
	    tsgate_ticket_master(secret, listener, tls->verify_client, master);
	TALLOC_FREE(from_file);
	if (ret != 0) {
		*error = talloc_strdup(tmp, "cannot derive the ticket key");
		return ret;
	}
	*have = true;
	return 0;
}

static bool cfg_is_token_url(const char *name)
{
	return name != NULL && strncmp(name, "pkcs11:", 7) == 0;
}

/* The params of a server or a client; a token is opened under its lock. */
static int cfg_tls_params_locked(TALLOC_CTX *mem_ctx,
				 const struct tstream_tls_server_config *srv,
				 const struct tstream_tls_client_config *cli,
				 struct tstream_tls_params **params,
				 char **error)
{
	bool token = false;
	size_t i;
	int ret;

	for (i = 0; srv != NULL && i < srv->num_certs; i++) {
		token |= cfg_is_token_url(srv->certs[i].cert_file) ||
			 cfg_is_token_url(srv->certs[i].key_file);
	}
	if (cli != NULL) {
		token |= cfg_is_token_url(cli->cert_file) ||
			 cfg_is_token_url(cli->key_file);
	}
	if (token) {
		tsgate_token_lock();
	}
	ret = srv != NULL
		  ? tstream_tls_params_server(mem_ctx, srv, params, error)
		  : tstream_tls_params_client(mem_ctx, cli, params, error);
	if (token) {
		tsgate_token_unlock();
	}
	return ret;
}

int tsgate_config_tls_server_params(TALLOC_CTX *mem_ctx,
				    const struct tsgate_config_tls_server *tls,
				    const char *listener,
				    const struct tsgate_ticket_secret *secret,
				    struct tstream_tls_params **params,
				    char **error)
{
	TALLOC_CTX *tmp = talloc_new(mem_ctx);
	struct tstream_tls_server_config c;
	uint8_t master[TSTREAM_TLS_TICKET_KEY_SIZE];
	bool have_master = false;
	char *why = NULL;
	struct tstream_tls_cert_config *certs;
	bool oom = false;
	size_t i;
	int ret;

	if (tmp == NULL) {
		return ENOMEM;
	}
	memset(&c, 0, sizeof(c));
	certs = talloc_zero_array(tmp, struct tstream_tls_cert_config,
				  tls->num_certs);
	if (certs == NULL && tls->num_certs > 0) {
		talloc_free(tmp);
		return ENOMEM;
	}
	for (i = 0; i < tls->num_certs; i++) {
		certs[i].sni = tls->certs[i].sni;
		certs[i].cert_file = tls->certs[i].cert;
		certs[i].key_file = tls->certs[i].key;
		certs[i].ocsp_file = tls->certs[i].ocsp_response;
	}
	c.certs = certs;
	c.num_certs = tls->num_certs;
	c.client_ca_file = tls->client_ca;
	c.crl_file = tls->crl;
	switch (tls->verify_client) {
	case TSGATE_CONFIG_VERIFY_NONE:
		c.verify_client = TSTREAM_TLS_VERIFY_NONE;
		break;
	case TSGATE_CONFIG_VERIFY_OPTIONAL:
		c.verify_client = TSTREAM_TLS_VERIFY_OPTIONAL;
		break;
	case TSGATE_CONFIG_VERIFY_REQUIRE:
		c.verify_client = TSTREAM_TLS_VERIFY_REQUIRE;
		break;
	}
	c.priority = tsgate_config_tls_priority(
	    tmp, tls->priority, tls->min_version, tls->max_version);
	c.alpn = cfg_strv(tmp, tls->alpn, tls->num_alpn, &oom);
	c.strict_end = tls->strict_end;
	c.record_layer = tls->record_layer == TSGATE_CONFIG_RECORD_TSGATE
			     ? TSTREAM_TLS_RECORD_TSGATE
			 : tls->record_layer == TSGATE_CONFIG_RECORD_GNUTLS
			     ? TSTREAM_TLS_RECORD_GNUTLS
			     : TSTREAM_TLS_RECORD_DEFAULT;
	c.key_update_records = tls->key_update_records;
	if (oom) {
		talloc_free(tmp);
		return ENOMEM;
	}
	ret = cfg_ticket_master(tmp, tls, listener, secret, master,
				&have_master, &why);
	if (ret != 0) {
		if (error != NULL) {
			*error = talloc_move(mem_ctx, &why);
		}
		talloc_free(tmp);
		return ret;
	}
	c.ticket_key = have_master ? master : NULL;
	c.ticket_lifetime = (unsigned)(tls->session_lifetime_ms / 1000);
	ret = cfg_tls_params_locked(mem_ctx, &c, NULL, params, error);
	gnutls_memset(master, 0, sizeof(master));
	talloc_free(tmp);
	return ret;
}

int tsgate_config_tls_client_params(TALLOC_CTX *mem_ctx,
				    const struct tsgate_config_tls_client *tls,
				    struct tstream_tls_params **params,
				    char **error)
{
	TALLOC_CTX *tmp = talloc_new(mem_ctx);
	struct tstream_tls_client_config c;
	bool oom = false;
	int ret;

	if (tmp == NULL) {
		return ENOMEM;
	}
	memset(&c, 0, sizeof(c));
	c.ca_file = tls->ca;
	c.crl_file = tls->crl;
	c.verify_server =
	    tls->verify ? TSTREAM_TLS_VERIFY_REQUIRE : TSTREAM_TLS_VERIFY_NONE;
	c.peer_name = tls->verify_name;
	c.sni = tls->sni;
	c.cert_file = tls->cert;
	c.key_file = tls->key;
	c.priority = tsgate_config_tls_priority(
	    tmp, tls->priority, tls->min_version, tls->max_version);
	c.alpn = cfg_strv(tmp, tls->alpn, tls->num_alpn, &oom);
	c.strict_end = tls->strict_end;
	c.session_resumption = tls->session_resumption;
	if (oom) {
		talloc_free(tmp);
		return ENOMEM;
	}
	ret = cfg_tls_params_locked(mem_ctx, NULL, &c, params, error);
	talloc_free(tmp);
	return ret;
}
