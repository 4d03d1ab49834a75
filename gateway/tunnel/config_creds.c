/* SPDX-License-Identifier: MIT */
/*
 * The config loader's second pass, on the walked config: load every
 * certificate, key, CRL and keytab with the same libraries the tunnels use
 * (GnuTLS, MIT krb5) and report what would make start-up fail, at the
 * position the walk recorded for the file at fault. Also the loader's
 * entry points, so every load runs both passes.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <krb5.h>

#include "config_tunnels.h"
#include "ticket_keys.h"
#include "cred_info.h"
#include "tstream_tls.h"

/* At the position the walk recorded for the value. */
#define cfg_error(p, at, ...) \
	tsgate_config_load_error((p), (at)->mark, __VA_ARGS__)

static void cfg_utc(char *buf, size_t len, time_t t)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0) {
		snprintf(buf, len, "%lld", (long long)t);
	}
}

/* Read a whole file with GnuTLS's loader; reports at node on failure. */
static bool cfg_load(struct tsgate_config_load *p,
		     const char *what,
		     const char *path,
		     const struct tsgate_config_origin *node,
		     gnutls_datum_t *data)
{
	int ret = gnutls_load_file(path, data);

	if (ret < 0) {
		cfg_error(p, node, "'%s': cannot read '%s': %s", what,
			  node->text, gnutls_strerror(ret));
		return false;
	}
	return true;
}

static bool cfg_check_times(struct tsgate_config_load *p,
			    const char *what,
			    gnutls_x509_crt_t crt,
			    const struct tsgate_config_origin *node)
{
	time_t now = time(NULL);
	time_t not_before = gnutls_x509_crt_get_activation_time(crt);
	time_t not_after = gnutls_x509_crt_get_expiration_time(crt);
	char when[64];

	if (not_after != (time_t)-1 && not_after < now) {
		cfg_utc(when, sizeof(when), not_after);
		cfg_error(p, node, "'%s': certificate in '%s' expired on %s",
			  what, node->text, when);
		return false;
	}
	if (not_before != (time_t)-1 && not_before > now) {
		cfg_utc(when, sizeof(when), not_before);
		cfg_error(p, node,
			  "'%s': certificate in '%s' is not valid before %s",
			  what, node->text, when);
		return false;
	}
	return true;
}

/* Import a PEM certificate list; checks the dates of the first one. */
static bool cfg_load_certs(struct tsgate_config_load *p,
			   const char *what,
			   const char *path,
			   const struct tsgate_config_origin *node,
			   bool check_first_times)
{
	gnutls_datum_t data = {NULL, 0};
	gnutls_x509_crt_t *crts = NULL;
	unsigned int n = 0, i;
	bool ok = true;
	int ret;

	if (!cfg_load(p, what, path, node, &data)) {
		return false;
	}
	ret = gnutls_x509_crt_list_import2(&crts, &n, &data,
					   GNUTLS_X509_FMT_PEM, 0);
	gnutls_free(data.data);
	if (ret < 0 || n == 0) {
		cfg_error(p, node, "'%s': no PEM certificate in '%s': %s", what,
			  node->text, ret < 0 ? gnutls_strerror(ret) : "empty");
		return false;
	}
	if (check_first_times) {
		ok = cfg_check_times(p, what, crts[0], node);
	}
	for (i = 0; i < n; i++) {
		gnutls_x509_crt_deinit(crts[i]);
	}
	gnutls_free(crts);
	return ok;
}

static bool cfg_check_cert_key(struct tsgate_config_load *p,
			       const char *cert,
			       const struct tsgate_config_origin *cert_node,
			       const char *key,
			       const struct tsgate_config_origin *key_node)
{
	gnutls_certificate_credentials_t creds;
	gnutls_x509_privkey_t pk;
	gnutls_datum_t data = {NULL, 0};
	bool cert_ok, key_ok = false;
	int ret;

	/*
	 * A token's objects are opened once, by the TLS library, when the
	 * params are built (cfg_check_tls_*_params): it reports a PIN, a
	 * missing object or a key mismatch with the URL's name.
	 */
	if (strncmp(cert, "pkcs11:", 7) == 0 ||
	    strncmp(key, "pkcs11:", 7) == 0) {
		return true;
	}
	cert_ok = cfg_load_certs(p, "cert", cert, cert_node, true);

	if (!cfg_load(p, "key", key, key_node, &data)) {
		return false;
	}
	ret = gnutls_x509_privkey_init(&pk);
	if (ret < 0) {
		gnutls_free(data.data);
		cfg_error(p, key_node, "'key': %s", gnutls_strerror(ret));
		return false;
	}
	ret = gnutls_x509_privkey_import2(pk, &data, GNUTLS_X509_FMT_PEM, NULL,
					  GNUTLS_PKCS_PLAIN);
	gnutls_x509_privkey_deinit(pk);
	if (ret < 0) {
		cfg_error(p, key_node,
			  "'key': '%s' is not an unencrypted PEM private key: "
			  "%s",
			  key_node->text, gnutls_strerror(ret));
		gnutls_free(data.data);
		return false;
	}
	gnutls_free(data.data);
	if (!cert_ok) {
		return false;
	}

	/* The pair as the tunnel will load it: GnuTLS checks they match. */
	ret = gnutls_certificate_allocate_credentials(&creds);
	if (ret < 0) {
		cfg_error(p, key_node, "'key': %s", gnutls_strerror(ret));
		return false;
	}
	ret = gnutls_certificate_set_x509_key_file2(
	    creds, cert, key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN);
	if (ret == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
		cfg_error(p, key_node,
			  "'key': '%s' does not belong to the certificate in "
			  "'%s'",
			  key_node->text, cert_node->text);
	} else if (ret < 0) {
		cfg_error(p, key_node, "'key': cannot use '%s' with '%s': %s",
			  key_node->text, cert_node->text,
			  gnutls_strerror(ret));
	} else {
		key_ok = true;
	}
	gnutls_certificate_free_credentials(creds);
	return key_ok;
}

static bool cfg_check_ca(struct tsgate_config_load *p,
			 const char *what,
			 const char *ca,
			 const struct tsgate_config_origin *node)
{
	return cfg_load_certs(p, what, ca, node, false);
}

static bool cfg_check_crl(struct tsgate_config_load *p,
			  const char *crl,
			  const struct tsgate_config_origin *node)
{
	gnutls_datum_t data = {NULL, 0};
	gnutls_x509_crl_t *crls = NULL;
	unsigned int n = 0, i;
	int ret;

	if (!cfg_load(p, "crl", crl, node, &data)) {
		return false;
	}
	ret = gnutls_x509_crl_list_import2(&crls, &n, &data,
					   GNUTLS_X509_FMT_PEM, 0);
	gnutls_free(data.data);
	if (ret < 0 || n == 0) {
		cfg_error(p, node, "'crl': no PEM CRL in '%s': %s", node->text,
			  ret < 0 ? gnutls_strerror(ret) : "empty");
		return false;
	}
	for (i = 0; i < n; i++) {
		gnutls_x509_crl_deinit(crls[i]);
	}
	gnutls_free(crls);
	return true;
}

static bool cfg_check_priority(struct tsgate_config_load *p,
			       const char *priority,
			       const struct tsgate_config_origin *node)
{
	gnutls_priority_t prio;
	const char *err_pos = NULL;
	int ret;

	if (priority == NULL) {
		return true;
	}
	ret = gnutls_priority_init2(&prio, priority, &err_pos, 0);
	if (ret < 0) {
		cfg_error(p, node,
			  "'priority': invalid GnuTLS priority string "
			  "near '%s'",
			  err_pos != NULL ? err_pos : priority);
		return false;
	}
	gnutls_priority_deinit(prio);
	return true;
}

/*
 * The principal a keytab must hold a key for, as the acceptor reads it:
 * with a '/' a Kerberos principal (without a realm: in the default realm
 * of krb5.conf, as GSSAPI imports it) in *want; otherwise a host-based
 * service "service@host" (any realm) in *want, or just "service" (any
 * host) in *service. False, with the error reported, when it does not
 * parse.
 */
static bool cfg_keytab_wanted(struct tsgate_config_load *p,
			      krb5_context ctx,
			      const char *principal,
			      const struct tsgate_config_origin *principal_node,
			      krb5_principal *want,
			      const char **service,
			      bool *any_realm)
{
	const char *as = principal;
	const char *at = strchr(principal, '@');
	krb5_error_code kerr;

	*any_realm = true;
	if (strchr(principal, '/') != NULL) {
		*any_realm = false;
	} else if (at != NULL) {
		as = talloc_asprintf(tsgate_config_load_tmp(p), "%.*s/%s",
				     (int)(at - principal), principal, at + 1);
	} else {
		*service = principal;
		return true;
	}
	kerr = as == NULL
		   ? ENOMEM
		   : krb5_parse_name_flags(
			 ctx, as,
			 *any_realm ? KRB5_PRINCIPAL_PARSE_NO_REALM : 0, want);
	if (kerr != 0) {
		const char *msg = krb5_get_error_message(ctx, kerr);

		cfg_error(p, principal_node,
			  "'principal': '%s' is not a Kerberos principal: %s",
			  principal, msg);
		krb5_free_error_message(ctx, msg);
		return false;
	}
	return true;
}

static bool cfg_check_keytab(struct tsgate_config_load *p,
			     const char *what,
			     const char *keytab,
			     const struct tsgate_config_origin *node,
			     const char *principal,
			     const struct tsgate_config_origin *principal_node)
{
	krb5_context ctx = NULL;
	krb5_keytab kt = NULL;
	krb5_kt_cursor cursor;
	krb5_keytab_entry entry;
	krb5_principal want = NULL;
	krb5_error_code kerr;
	char *name = NULL;
	size_t entries = 0, matching = 0;
	const char *service = NULL;
	bool any_realm = false;
	bool ok = false;

	kerr = krb5_init_context(&ctx);
	if (kerr != 0) {
		/* a krb5 code, not an errno: strerror() says "Unknown error" */
		const char *msg = krb5_get_error_message(NULL, kerr);

		cfg_error(p, node,
			  "'%s': cannot start Kerberos to read '%s': "
			  "%s",
			  what, node->text, msg);
		krb5_free_error_message(NULL, msg);
		return false;
	}
	name = talloc_asprintf(tsgate_config_load_tmp(p), "FILE:%s", keytab);
	if (name == NULL) {
		krb5_free_context(ctx);
		return false;
	}
	if (principal != NULL &&
	    !cfg_keytab_wanted(p, ctx, principal, principal_node, &want,
			       &service, &any_realm)) {
		want = NULL;
	}
	kerr = krb5_kt_resolve(ctx, name, &kt);
	if (kerr == 0) {
		kerr = krb5_kt_start_seq_get(ctx, kt, &cursor);
	}
	if (kerr != 0) {
		const char *msg = krb5_get_error_message(ctx, kerr);

		cfg_error(p, node, "'%s': cannot read keytab '%s': %s", what,
			  node->text, msg);
		krb5_free_error_message(ctx, msg);
		goto done;
	}
	while (krb5_kt_next_entry(ctx, kt, &entry, &cursor) == 0) {
		entries++;
		if (want != NULL &&
		    (any_realm ? krb5_principal_compare_any_realm(
				     ctx, want, entry.principal)
			       : krb5_principal_compare(ctx, want,
							entry.principal))) {
			matching++;
		}
		if (service != NULL) {
			char *ename = NULL;
			size_t sl = strlen(service);

			if (krb5_unparse_name(ctx, entry.principal, &ename) ==
				0 &&
			    strncmp(ename, service, sl) == 0 &&
			    ename[sl] == '/') {
				matching++;
			}
			krb5_free_unparsed_name(ctx, ename);
		}
		krb5_free_keytab_entry_contents(ctx, &entry);
	}
	krb5_kt_end_seq_get(ctx, kt, &cursor);
	if (entries == 0) {
		cfg_error(p, node, "'%s': keytab '%s' has no keys", what,
			  node->text);
		goto done;
	}
	if ((want != NULL || service != NULL) && matching == 0) {
		cfg_error(p, principal_node,
			  "'principal': keytab '%s' has no key for '%s'",
			  node->text, principal);
		goto done;
	}
	ok = true;
done:
	if (want != NULL) {
		krb5_free_principal(ctx, want);
	}
	if (kt != NULL) {
		krb5_kt_close(ctx, kt);
	}
	krb5_free_context(ctx);
	TALLOC_FREE(name);
	return ok;
}

/*
 * A stapled response that cannot be right for its certificate is refused
 * (wrong certificate, not "good", not an OCSP response). One past its
 * nextUpdate is not: the daemon warns and GnuTLS does not staple it, as
 * an OCSP fetcher that fell behind should not stop the server.
 */
static bool cfg_check_ocsp(struct tsgate_config_load *p,
			   const struct tsgate_config_tls_cert *c)
{
	time_t next_update;
	char *why = NULL;
	int ret;

	ret = tsgate_ocsp_inspect(tsgate_config_load_tmp(p), c->ocsp_response,
				  c->cert, &next_update, &why);
	if (ret != 0) {
		cfg_error(p, &c->ocsp_at, "'ocsp_response': %s",
			  why != NULL ? why : strerror(ret));
		return false;
	}
	return true;
}

/* --check-config: build the params once and report a refusal at the block. */
static void cfg_check_tls_server_params(
    struct tsgate_config_load *p,
    const struct tsgate_config_tls_server *tls,
    const char *listener)
{
	struct tstream_tls_params *params = NULL;
	char *error = NULL;
	int ret;

	ret = tsgate_config_tls_server_params(tsgate_config_load_tmp(p), tls,
					      listener, NULL, &params, &error);
	if (ret != 0) {
		tsgate_config_load_error(
		    p, tls->mark, "'tls': the TLS library refuses it: %s",
		    error != NULL ? error : strerror(ret));
	}
	talloc_free(params);
	talloc_free(error);
}

static void cfg_check_tls_client_params(
    struct tsgate_config_load *p, const struct tsgate_config_tls_client *tls)
{
	struct tstream_tls_params *params = NULL;
	char *error = NULL;
	int ret;

	ret = tsgate_config_tls_client_params(tsgate_config_load_tmp(p), tls,
					      &params, &error);
	if (ret != 0) {
		tsgate_config_load_error(
		    p, tls->mark, "'tls': the TLS library refuses it: %s",
		    error != NULL ? error : strerror(ret));
	}
	talloc_free(params);
	talloc_free(error);
}

/*
 * A listener's tls block, in the order the walk used to check it. The
 * TLS library is asked only about a block that is clean so far (walk and
 * this pass): otherwise it would repeat a problem already reported.
 */
/* A ticket key file: "'ticket_keys_file': PATH:LINE: what" at the key. */
static bool cfg_check_ticket_keys(struct tsgate_config_load *p,
				  const struct tsgate_config_tls_server *tls)
{
	struct tsgate_ticket_secret *secret = NULL;
	char *error = NULL;
	int ret;

	ret = tsgate_ticket_keys_read(tsgate_config_load_tmp(p),
				      tls->ticket_keys_file, &secret, NULL,
				      &error);
	if (ret != 0) {
		cfg_error(p, &tls->ticket_keys_at, "'ticket_keys_file': %s",
			  error != NULL ? error : strerror(ret));
	}
	talloc_free(secret);
	talloc_free(error);
	return ret == 0;
}

static void cfg_check_tls_server(struct tsgate_config_load *p,
				 const struct tsgate_config_tls_server *tls,
				 const char *listener,
				 bool creds)
{
	bool clean = !tls->walk_errors;
	size_t i;

	for (i = 0; creds && i < tls->num_certs; i++) {
		const struct tsgate_config_tls_cert *c = &tls->certs[i];

		if (c->cert != NULL && c->key != NULL) {
			clean &= cfg_check_cert_key(p, c->cert, &c->cert_at,
						    c->key, &c->key_at);
		}
		if (clean && c->ocsp_response != NULL) {
			clean &= cfg_check_ocsp(p, c);
		}
	}
	clean &= cfg_check_priority(p, tls->priority, &tls->priority_at);
	if (!creds) {
		return;
	}
	if (tls->client_ca != NULL) {
		clean &= cfg_check_ca(p, "client_ca", tls->client_ca,
				      &tls->client_ca_at);
	}
	if (tls->crl != NULL) {
		clean &= cfg_check_crl(p, tls->crl, &tls->crl_at);
	}
	if (tls->ticket_keys_file != NULL) {
		clean &= cfg_check_ticket_keys(p, tls);
	}
	if (clean && tls->num_certs > 0) {
		cfg_check_tls_server_params(p, tls, listener);
	}
}

static void cfg_check_tls_client(struct tsgate_config_load *p,
				 const struct tsgate_config_tls_client *tls,
				 bool creds)
{
	bool clean = !tls->walk_errors;

	if (creds && tls->cert != NULL && tls->key != NULL) {
		clean &= cfg_check_cert_key(p, tls->cert, &tls->cert_at,
					    tls->key, &tls->key_at);
	}
	if (creds && tls->ca != NULL) {
		clean &= cfg_check_ca(p, "ca", tls->ca, &tls->ca_at);
	}
	if (creds && tls->crl != NULL) {
		clean &= cfg_check_crl(p, tls->crl, &tls->crl_at);
	}
	clean &= cfg_check_priority(p, tls->priority, &tls->priority_at);
	if (creds && clean) {
		cfg_check_tls_client_params(p, tls);
	}
}

void tsgate_config_check_credentials(struct tsgate_config_load *p)
{
	const struct tsgate_config *cfg = tsgate_config_load_config(p);
	bool creds = (tsgate_config_load_flags(p) &
		      TSGATE_CONFIG_CHECK_CREDENTIALS) != 0;
	size_t i, j;

	for (i = 0; i < cfg->num_listeners; i++) {
		const struct tsgate_config_listener *l = &cfg->listeners[i];

		if (l->tls != NULL) {
			cfg_check_tls_server(p, l->tls, l->name, creds);
		}
		if (creds && l->gssapi != NULL && l->gssapi->keytab != NULL) {
			cfg_check_keytab(p, "keytab", l->gssapi->keytab,
					 &l->gssapi->keytab_at,
					 l->gssapi->principal,
					 &l->gssapi->principal_at);
		}
		for (j = 0; j < l->num_routes; j++) {
			const struct tsgate_config_route *r = &l->routes[j];

			if (r->tls != NULL) {
				cfg_check_tls_client(p, r->tls, creds);
			}
			if (creds && r->gssapi != NULL &&
			    r->gssapi->client_keytab != NULL) {
				cfg_check_keytab(p, "client_keytab",
						 r->gssapi->client_keytab,
						 &r->gssapi->client_keytab_at,
						 NULL, NULL);
			}
		}
	}
}

int tsgate_config_load_buffer(TALLOC_CTX *mem_ctx,
			      const char *name,
			      const char *base_dir,
			      const uint8_t *buf,
			      size_t len,
			      unsigned flags,
			      struct tsgate_config **pconfig,
			      struct tsgate_config_errors **perrors)
{
	struct tsgate_config_load *load = NULL;
	int ret;

	*pconfig = NULL;
	*perrors = NULL;
	ret = tsgate_config_parse_buffer(mem_ctx, name, base_dir, buf, len,
					 flags, &load);
	if (ret != 0) {
		return ret;
	}
	tsgate_config_check_credentials(load);
	return tsgate_config_load_finish(mem_ctx, load, pconfig, perrors);
}

int tsgate_config_load(TALLOC_CTX *mem_ctx,
		       const char *path,
		       unsigned flags,
		       struct tsgate_config **pconfig,
		       struct tsgate_config_errors **perrors)
{
	struct tsgate_config_load *load = NULL;
	int ret;

	*pconfig = NULL;
	*perrors = NULL;
	ret = tsgate_config_parse(mem_ctx, path, flags, &load);
	if (ret != 0) {
		return ret;
	}
	tsgate_config_check_credentials(load);
	return tsgate_config_load_finish(mem_ctx, load, pconfig, perrors);
}
