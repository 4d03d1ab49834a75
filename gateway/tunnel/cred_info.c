/* SPDX-License-Identifier: MIT */
/*
 * The expiry of every certificate the config names (cred_info.h).
 */
#include <errno.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "cred_info.h"

struct cred_list {
	TALLOC_CTX *mem_ctx;
	struct tsgate_metrics_cred *v;
	size_t n;
	bool oom;
};

static char *cred_serial(TALLOC_CTX *mem_ctx, gnutls_x509_crt_t crt)
{
	unsigned char buf[64];
	size_t len = sizeof(buf);
	char *hex;
	size_t i;

	if (gnutls_x509_crt_get_serial(crt, buf, &len) < 0) {
		return talloc_strdup(mem_ctx, "");
	}
	/* the DER sign byte is not part of the number (openssl agrees) */
	while (len > 1 && buf[0] == 0) {
		memmove(buf, buf + 1, --len);
	}
	hex = talloc_array(mem_ctx, char, len * 2 + 1);
	for (i = 0; hex != NULL && i < len; i++) {
		snprintf(hex + 2 * i, 3, "%02X", buf[i]);
	}
	if (hex != NULL) {
		hex[len * 2] = '\0';
	}
	return hex;
}

static char *cred_cn(TALLOC_CTX *mem_ctx, gnutls_x509_crt_t crt)
{
	char buf[256];
	size_t len = sizeof(buf);

	if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
					  0, buf, &len) < 0) {
		return talloc_strdup(mem_ctx, "");
	}
	return talloc_strndup(mem_ctx, buf, len);
}

static void cred_push(struct cred_list *l,
		      const char *listener,
		      const char *route,
		      enum tsgate_metrics_cred_kind kind,
		      gnutls_x509_crt_t crt,
		      int64_t t,
		      const char *path)
{
	struct tsgate_metrics_cred *nv;
	struct tsgate_metrics_cred *c;

	nv = talloc_realloc(l->mem_ctx, l->v, struct tsgate_metrics_cred,
			    l->n + 1);
	if (nv == NULL) {
		l->oom = true;
		return;
	}
	l->v = nv;
	c = &l->v[l->n++];
	c->listener = listener;
	c->route = route;
	c->kind = kind;
	c->serial = cred_serial(l->v, crt);
	c->subject_cn = cred_cn(l->v, crt);
	c->time = t;
	c->path = path;
	if (c->serial == NULL || c->subject_cn == NULL) {
		l->oom = true;
	}
}

/* A certificate on a PKCS#11 token: a public object, read without login. */
static gnutls_x509_crt_t cred_read_url(const char *url)
{
	gnutls_x509_crt_t crt;

	if (gnutls_x509_crt_init(&crt) < 0) {
		return NULL;
	}
	if (gnutls_x509_crt_import_url(crt, url, 0) < 0) {
		gnutls_x509_crt_deinit(crt);
		return NULL;
	}
	return crt;
}

gnutls_x509_crt_t tsgate_cred_read_cert(const char *path, bool first_to_expire)
{
	gnutls_datum_t data = {NULL, 0};
	gnutls_x509_crt_t *crts = NULL;
	gnutls_x509_crt_t pick = NULL;
	unsigned n = 0, i, best = 0;

	if (strncmp(path, "pkcs11:", 7) == 0) {
		return cred_read_url(path);
	}
	if (gnutls_load_file(path, &data) < 0) {
		return NULL;
	}
	if (gnutls_x509_crt_list_import2(&crts, &n, &data, GNUTLS_X509_FMT_PEM,
					 0) < 0) {
		n = 0;
	}
	gnutls_free(data.data);
	for (i = 1; first_to_expire && i < n; i++) {
		if (gnutls_x509_crt_get_expiration_time(crts[i]) <
		    gnutls_x509_crt_get_expiration_time(crts[best])) {
			best = i;
		}
	}
	for (i = 0; i < n; i++) {
		if (i == best) {
			pick = crts[i];
		} else {
			gnutls_x509_crt_deinit(crts[i]);
		}
	}
	gnutls_free(crts);
	return pick;
}

static void cred_add(struct cred_list *l,
		     const char *listener,
		     const char *route,
		     enum tsgate_metrics_cred_kind kind,
		     const char *path)
{
	gnutls_x509_crt_t crt;

	if (path == NULL) {
		return;
	}
	crt = tsgate_cred_read_cert(path, kind == TSGATE_METRICS_CRED_CA);
	if (crt == NULL) {
		return;
	}
	cred_push(l, listener, route, kind, crt,
		  (int64_t)gnutls_x509_crt_get_expiration_time(crt), path);
	gnutls_x509_crt_deinit(crt);
}

static void cred_add_ocsp(struct cred_list *l,
			  const char *listener,
			  const struct tsgate_config_tls_cert *c)
{
	gnutls_x509_crt_t crt;
	time_t next_update;
	char *why = NULL;

	if (c->ocsp_response == NULL) {
		return;
	}
	crt = tsgate_cred_read_cert(c->cert, false);
	if (crt == NULL) {
		return;
	}
	if (tsgate_ocsp_inspect(l->mem_ctx, c->ocsp_response, c->cert,
				&next_update, &why) == 0) {
		cred_push(l, listener, NULL, TSGATE_METRICS_CRED_OCSP, crt,
			  (int64_t)next_update, c->ocsp_response);
	}
	talloc_free(why);
	gnutls_x509_crt_deinit(crt);
}

int tsgate_config_cred_metrics(TALLOC_CTX *mem_ctx,
			       const struct tsgate_config *cfg,
			       struct tsgate_metrics_cred **pcreds,
			       size_t *pn)
{
	struct cred_list l = {.mem_ctx = mem_ctx};
	size_t i, j;

	for (i = 0; i < cfg->num_listeners; i++) {
		const struct tsgate_config_listener *ls = &cfg->listeners[i];

		for (j = 0; ls->tls != NULL && j < ls->tls->num_certs; j++) {
			cred_add(&l, ls->name, NULL, TSGATE_METRICS_CRED_SERVER,
				 ls->tls->certs[j].cert);
			cred_add_ocsp(&l, ls->name, &ls->tls->certs[j]);
		}
		if (ls->tls != NULL) {
			cred_add(&l, ls->name, NULL, TSGATE_METRICS_CRED_CA,
				 ls->tls->client_ca);
		}
		for (j = 0; j < ls->num_routes; j++) {
			const struct tsgate_config_route *r = &ls->routes[j];

			/* connect: tls or tls-gssapi */
			if (r->tls == NULL) {
				continue;
			}
			cred_add(&l, ls->name, r->name,
				 TSGATE_METRICS_CRED_CLIENT, r->tls->cert);
			cred_add(&l, ls->name, r->name, TSGATE_METRICS_CRED_CA,
				 r->tls->ca);
		}
	}
	if (l.oom) {
		talloc_free(l.v);
		return ENOMEM;
	}
	*pcreds = l.v;
	*pn = l.n;
	return 0;
}
