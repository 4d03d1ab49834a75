/* SPDX-License-Identifier: MIT */
/*
 * The credential families of /metrics (metrics_creds.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <talloc.h>

#include "metrics.h"
#include "metrics_creds.h"
#include "metrics_private.h"

struct tsgate_metrics_creds {
	struct tsgate_metrics_cred *v; /* label values escaped */
	size_t n;
};

static const char *const cred_kind_names[] = {
    [TSGATE_METRICS_CRED_SERVER] = "server",
    [TSGATE_METRICS_CRED_CLIENT] = "client",
    [TSGATE_METRICS_CRED_CA] = "ca",
    [TSGATE_METRICS_CRED_OCSP] = "ocsp",
};

static const char *esc(TALLOC_CTX *mem_ctx, const char *s, bool *oom)
{
	char *e = tsgate_metrics_label_escape(mem_ctx, s != NULL ? s : "");

	if (e == NULL) {
		*oom = true;
	}
	return e;
}

struct tsgate_metrics_creds *tsgate_metrics_creds_copy(
    TALLOC_CTX *mem_ctx, const struct tsgate_metrics_cred *creds, size_t n)
{
	struct tsgate_metrics_creds *c;
	bool oom = false;
	size_t i;

	c = talloc_zero(mem_ctx, struct tsgate_metrics_creds);
	if (c == NULL) {
		return NULL;
	}
	c->v = talloc_zero_array(c, struct tsgate_metrics_cred, n);
	if (c->v == NULL && n > 0) {
		talloc_free(c);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		c->v[i] = creds[i];
		c->v[i].listener = esc(c->v, creds[i].listener, &oom);
		c->v[i].route = esc(c->v, creds[i].route, &oom);
		c->v[i].serial = esc(c->v, creds[i].serial, &oom);
		c->v[i].subject_cn = esc(c->v, creds[i].subject_cn, &oom);
		if ((unsigned)c->v[i].kind > TSGATE_METRICS_CRED_OCSP) {
			c->v[i].kind = TSGATE_METRICS_CRED_CA;
		}
	}
	if (oom) {
		talloc_free(c);
		return NULL;
	}
	c->n = n;
	return c;
}

void tsgate_metrics_creds_render(char **out,
				 const struct tsgate_metrics_creds *c)
{
	size_t i;

	tsgate_metrics_family(
	    out, "tsgate_certificate_expiry_timestamp_seconds", "gauge",
	    "notAfter of each certificate in use (a CA file: its first to "
	    "expire), per listener or route, since the Unix epoch.");
	for (i = 0; c != NULL && i < c->n; i++) {
		const struct tsgate_metrics_cred *v = &c->v[i];

		if (v->kind == TSGATE_METRICS_CRED_OCSP) {
			continue;
		}
		talloc_asprintf_addbuf(
		    out,
		    "tsgate_certificate_expiry_timestamp_seconds{listener=\"%"
		    "s\","
		    "route=\"%s\",kind=\"%s\",serial=\"%s\",subject_cn=\"%s\"} "
		    "%" PRId64 "\n",
		    v->listener, v->route, cred_kind_names[v->kind], v->serial,
		    v->subject_cn, v->time);
	}
	tsgate_metrics_family(
	    out, "tsgate_ocsp_response_next_update_timestamp_seconds", "gauge",
	    "nextUpdate of each stapled OCSP response, per listener and "
	    "certificate, since the Unix epoch (0: none given).");
	for (i = 0; c != NULL && i < c->n; i++) {
		const struct tsgate_metrics_cred *v = &c->v[i];

		if (v->kind != TSGATE_METRICS_CRED_OCSP) {
			continue;
		}
		talloc_asprintf_addbuf(
		    out,
		    "tsgate_ocsp_response_next_update_timestamp_seconds"
		    "{listener=\"%s\",serial=\"%s\",subject_cn=\"%s\"} "
		    "%" PRId64 "\n",
		    v->listener, v->serial, v->subject_cn, v->time);
	}
}
