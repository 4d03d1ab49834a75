/* SPDX-License-Identifier: MIT */
/*
 * The credential files of a config (config_cred_files.h). A new kind of
 * credential file is one cred_file() line below: the watcher, and so the
 * reload on change, follow from it.
 */
#include <errno.h>
#include <string.h>

#include "config_cred_files.h"

struct cred_files {
	const char **v;
	size_t n;
	bool oom;
};

static void cred_file(struct cred_files *f,
		      TALLOC_CTX *mem_ctx,
		      const char *path)
{
	const char **nv;
	size_t i;

	/* a key or certificate on a PKCS#11 token is no file to watch */
	if (path == NULL || f->oom || strncmp(path, "pkcs11:", 7) == 0) {
		return;
	}
	for (i = 0; i < f->n; i++) {
		if (strcmp(f->v[i], path) == 0) {
			return;
		}
	}
	nv = talloc_realloc(mem_ctx, f->v, const char *, f->n + 1);
	if (nv == NULL) {
		f->oom = true;
		return;
	}
	f->v = nv;
	f->v[f->n++] = path;
}

static void cred_files_tls_server(struct cred_files *f,
				  TALLOC_CTX *mem_ctx,
				  const struct tsgate_config_tls_server *tls)
{
	size_t i;

	for (i = 0; i < tls->num_certs; i++) {
		cred_file(f, mem_ctx, tls->certs[i].cert);
		cred_file(f, mem_ctx, tls->certs[i].key);
		cred_file(f, mem_ctx, tls->certs[i].ocsp_response);
	}
	cred_file(f, mem_ctx, tls->client_ca);
	cred_file(f, mem_ctx, tls->crl);
}

static void cred_files_route(struct cred_files *f,
			     TALLOC_CTX *mem_ctx,
			     const struct tsgate_config_route *r)
{
	if (r->tls != NULL) {
		cred_file(f, mem_ctx, r->tls->cert);
		cred_file(f, mem_ctx, r->tls->key);
		cred_file(f, mem_ctx, r->tls->ca);
		cred_file(f, mem_ctx, r->tls->crl);
	}
	if (r->gssapi != NULL) {
		cred_file(f, mem_ctx, r->gssapi->client_keytab);
	}
}

int tsgate_config_cred_files(TALLOC_CTX *mem_ctx,
			     const struct tsgate_config *cfg,
			     const char ***ppaths,
			     size_t *pn)
{
	struct cred_files f = {NULL, 0, false};
	size_t i, j;

	for (i = 0; i < cfg->num_listeners; i++) {
		const struct tsgate_config_listener *l = &cfg->listeners[i];

		if (l->tls != NULL) {
			cred_files_tls_server(&f, mem_ctx, l->tls);
		}
		if (l->gssapi != NULL) {
			cred_file(&f, mem_ctx, l->gssapi->keytab);
		}
		for (j = 0; j < l->num_routes; j++) {
			cred_files_route(&f, mem_ctx, &l->routes[j]);
		}
	}
	if (f.oom) {
		talloc_free(f.v);
		return ENOMEM;
	}
	*ppaths = f.v;
	*pn = f.n;
	return 0;
}
