/* SPDX-License-Identifier: MIT */
/*
 * tsgate metrics: the registry of series and its Prometheus text
 * rendering. See metrics.h for the life cycle of series and handles.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <talloc.h>

#include "tsgate_dlist.h"
#include "metrics.h"
#include "metrics_hist.h"
#include "metrics_process.h"
#include "conn_stats.h"
#include "metrics_creds.h"
#include "metrics_private.h"

#define N_ELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Bucket upper bounds in microseconds, and as rendered in le="...". */
static const uint64_t connect_bucket_usec[] = {
    500,    1000,   2500,   5000,    10000,   25000,   50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
static const char *const connect_bucket_le[] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",  "0.5",    "1",     "2.5",  "5",     "10",
};
#define NUM_BUCKETS N_ELEM(connect_bucket_usec)

struct metrics_rseries;

/* The series of one listener (label listener="..."). */
struct metrics_lseries {
	struct metrics_lseries *prev, *next;
	/* NULL once the registry is gone (the series then lives on the
	 * NULL context until its last reference goes). */
	struct tsgate_metrics *m;
	char *name;
	char *label; /* the name escaped for a label value */
	unsigned refs;
	uint64_t conns_total;
	int64_t conns_active;
	uint64_t hs_failures[TSGATE_METRICS_HS_NUM];
	uint64_t tls_handshakes[2]; /* [resumed] */
	uint64_t drops[TSGATE_METRICS_DROP_NUM];
	struct tsgate_hist hs_duration[TSGATE_METRICS_KIND_NUM];
	unsigned hs_kinds; /* bit per kind: its series is rendered */
	struct metrics_rseries *routes, *routes_tail;
};

/* The series of one route of a listener (labels listener, route). */
struct metrics_rseries {
	struct metrics_rseries *prev, *next;
	struct metrics_lseries *ls; /* holds a reference on it */
	char *name;
	char *label;
	unsigned refs;
	uint64_t conns_total;
	int64_t conns_active;
	/* Totals of the connections closed so far. */
	uint64_t bytes_up, bytes_down, pdus_up, pdus_down;
	uint64_t connect_failures;
	uint64_t connect_buckets[NUM_BUCKETS]; /* not cumulative */
	uint64_t connect_count;
	uint64_t connect_usec_sum;
	struct tsgate_hist duration[TSGATE_METRICS_RESULT_NUM];
	/* Routed connections whose relay counters are still moving. */
	struct tsgate_metrics_conn *live;
};

struct tsgate_metrics {
	char *version_label;
	char *build_labels; /* ",name=\"value\"..." after version */
	struct timeval start;
	enum tsgate_metrics_state state;
	uint64_t reloads_ok;
	uint64_t reloads_failed;
	/* the start-up load counts as the first successful one */
	struct timeval last_reload_success;
	bool last_reload_failed;
	struct tsgate_metrics_creds *creds;
	struct metrics_lseries *listeners, *listeners_tail;
	/* families of higher layers (the backend pool), rendered last */
	tsgate_metrics_render_fn extra_fn;
	const void *extra_private;
};

struct tsgate_metrics_listener {
	struct metrics_lseries *s;
};

struct tsgate_metrics_route {
	struct metrics_rseries *s;
};

static const char *const hs_reason_names[TSGATE_METRICS_HS_NUM] = {
    [TSGATE_METRICS_HS_TIMEOUT] = "timeout",
    [TSGATE_METRICS_HS_PROTOCOL] = "protocol",
    [TSGATE_METRICS_HS_AUTH] = "auth",
    [TSGATE_METRICS_HS_CLOSED] = "closed",
    [TSGATE_METRICS_HS_OTHER] = "other",
};

static const char *const kind_names[TSGATE_METRICS_KIND_NUM] = {
    [TSGATE_METRICS_KIND_TLS] = "tls",
    [TSGATE_METRICS_KIND_GSSAPI] = "gssapi",
    [TSGATE_METRICS_KIND_TLS_GSSAPI] = "tls-gssapi",
};

static const char *const result_names[TSGATE_METRICS_RESULT_NUM] = {
    [TSGATE_METRICS_RESULT_OK] = "ok",
    [TSGATE_METRICS_RESULT_BACKEND_FAILED] = "backend_failed",
    [TSGATE_METRICS_RESULT_IDLE_TIMEOUT] = "idle_timeout",
    [TSGATE_METRICS_RESULT_SHUTDOWN] = "shutdown",
    [TSGATE_METRICS_RESULT_ERROR] = "error",
};

static const char *const drop_reason_names[TSGATE_METRICS_DROP_NUM] = {
    [TSGATE_METRICS_DROP_MAX_CONNECTIONS] = "max_connections",
    [TSGATE_METRICS_DROP_MAX_CONNECTIONS_PER_SOURCE] =
	"max_connections_per_source",
    [TSGATE_METRICS_DROP_HANDSHAKE_TIMEOUT] = "handshake_timeout",
    [TSGATE_METRICS_DROP_HANDSHAKE_FAILED] = "handshake_failed",
    [TSGATE_METRICS_DROP_NO_ROUTE] = "no_route",
    [TSGATE_METRICS_DROP_BACKEND_REFUSED] = "backend_refused",
    [TSGATE_METRICS_DROP_BACKEND_TIMEOUT] = "backend_timeout",
    [TSGATE_METRICS_DROP_BACKEND_HANDSHAKE] = "backend_handshake",
    [TSGATE_METRICS_DROP_IDLE_TIMEOUT] = "idle_timeout",
    [TSGATE_METRICS_DROP_PDU_TOO_LARGE] = "pdu_too_large",
    [TSGATE_METRICS_DROP_PDU_MALFORMED] = "pdu_malformed",
    [TSGATE_METRICS_DROP_SHUTDOWN] = "shutdown",
    [TSGATE_METRICS_DROP_OTHER] = "other",
};

const char *tsgate_metrics_handshake_reason_name(
    enum tsgate_metrics_handshake_reason why)
{
	if ((unsigned)why >= TSGATE_METRICS_HS_NUM) {
		why = TSGATE_METRICS_HS_OTHER;
	}
	return hs_reason_names[why];
}

const char *tsgate_metrics_drop_reason_name(enum tsgate_metrics_drop_reason why)
{
	if ((unsigned)why >= TSGATE_METRICS_DROP_NUM) {
		why = TSGATE_METRICS_DROP_OTHER;
	}
	return drop_reason_names[why];
}

enum tsgate_metrics_handshake_reason tsgate_metrics_handshake_reason_of(int err)
{
	switch (err) {
	case ETIMEDOUT:
		return TSGATE_METRICS_HS_TIMEOUT;
	case EACCES:
	case EPERM:
	case EKEYEXPIRED:
	case EKEYREJECTED:
		return TSGATE_METRICS_HS_AUTH;
	case EPIPE:
	case ECONNRESET:
		return TSGATE_METRICS_HS_CLOSED;
	case EPROTO:
	case EMSGSIZE:
	case EBADMSG:
	case ECONNABORTED:
		return TSGATE_METRICS_HS_PROTOCOL;
	default:
		return TSGATE_METRICS_HS_OTHER;
	}
}

enum tsgate_metrics_drop_reason tsgate_metrics_backend_drop_reason(int err)
{
	switch (err) {
	case ETIMEDOUT:
		return TSGATE_METRICS_DROP_BACKEND_TIMEOUT;
	case ECONNREFUSED:
	case ENOENT:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EADDRNOTAVAIL:
		return TSGATE_METRICS_DROP_BACKEND_REFUSED;
	default:
		return TSGATE_METRICS_DROP_BACKEND_HANDSHAKE;
	}
}

bool tsgate_metrics_relay_drop_reason(int err,
				      enum tsgate_metrics_drop_reason *why)
{
	switch (err) {
	case EMSGSIZE:
		*why = TSGATE_METRICS_DROP_PDU_TOO_LARGE;
		return true;
	case EPROTO:
		*why = TSGATE_METRICS_DROP_PDU_MALFORMED;
		return true;
	case ETIMEDOUT:
		*why = TSGATE_METRICS_DROP_IDLE_TIMEOUT;
		return true;
	default:
		return false;
	}
}

/*
 * A label value as the exposition format wants it: backslash, double
 * quote and line feed escaped.
 */
static char *label_escape(TALLOC_CTX *mem_ctx, const char *s)
{
	size_t len = strlen(s);
	size_t extra = 0;
	char *out, *p;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\\' || s[i] == '"' || s[i] == '\n') {
			extra++;
		}
	}
	out = talloc_array(mem_ctx, char, len + extra + 1);
	if (out == NULL) {
		return NULL;
	}
	p = out;
	for (size_t i = 0; i < len; i++) {
		switch (s[i]) {
		case '\\':
			*p++ = '\\';
			*p++ = '\\';
			break;
		case '"':
			*p++ = '\\';
			*p++ = '"';
			break;
		case '\n':
			*p++ = '\\';
			*p++ = 'n';
			break;
		default:
			*p++ = s[i];
		}
	}
	*p = '\0';
	return out;
}

/*
 * Registry
 */

static int tsgate_metrics_destructor(struct tsgate_metrics *m)
{
	struct metrics_lseries *ls, *next;

	/*
	 * Handles still refer to these series: hand them over to the NULL
	 * context; the last reference frees each one.
	 */
	for (ls = m->listeners; ls != NULL; ls = next) {
		next = ls->next;
		ls->m = NULL;
		ls->prev = ls->next = NULL;
		talloc_steal(NULL, ls);
	}
	m->listeners = m->listeners_tail = NULL;
	return 0;
}

struct tsgate_metrics *tsgate_metrics_new(TALLOC_CTX *mem_ctx,
					  const char *version,
					  const struct timeval *start)
{
	struct tsgate_metrics *m = talloc_zero(mem_ctx, struct tsgate_metrics);

	if (m == NULL) {
		return NULL;
	}
	m->version_label = label_escape(m, version != NULL ? version : "");
	if (m->version_label == NULL) {
		talloc_free(m);
		return NULL;
	}
	if (start != NULL) {
		m->start = *start;
	} else {
		gettimeofday(&m->start, NULL);
	}
	m->last_reload_success = m->start;
	m->state = TSGATE_METRICS_STARTING;
	talloc_set_destructor(m, tsgate_metrics_destructor);
	return m;
}

static bool label_name_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '_' || (i > 0 && c >= '0' && c <= '9'))) {
			return false;
		}
	}
	return i > 0;
}

int tsgate_metrics_set_build_info(struct tsgate_metrics *m,
				  const struct tsgate_metrics_label *labels,
				  size_t n)
{
	char *text = talloc_strdup(m, "");
	size_t i;

	for (i = 0; i < n && text != NULL; i++) {
		char *value;

		if (!label_name_ok(labels[i].name)) {
			talloc_free(text);
			return EINVAL;
		}
		value = label_escape(text, labels[i].value);
		if (value == NULL) {
			break;
		}
		talloc_asprintf_addbuf(&text, ",%s=\"%s\"", labels[i].name,
				       value);
	}
	if (text == NULL || i < n) {
		talloc_free(text);
		return ENOMEM;
	}
	talloc_free(m->build_labels);
	m->build_labels = text;
	return 0;
}

void tsgate_metrics_set_state(struct tsgate_metrics *m,
			      enum tsgate_metrics_state state)
{
	if (m != NULL) {
		m->state = state;
	}
}

enum tsgate_metrics_state tsgate_metrics_get_state(
    const struct tsgate_metrics *m)
{
	return m != NULL ? m->state : TSGATE_METRICS_STARTING;
}

void tsgate_metrics_reload(struct tsgate_metrics *m, bool ok)
{
	if (m == NULL) {
		return;
	}
	if (ok) {
		m->reloads_ok++;
		gettimeofday(&m->last_reload_success, NULL);
	} else {
		m->reloads_failed++;
	}
	m->last_reload_failed = !ok;
}

int tsgate_metrics_set_creds(struct tsgate_metrics *m,
			     const struct tsgate_metrics_cred *creds,
			     size_t n)
{
	struct tsgate_metrics_creds *c;

	if (m == NULL) {
		return EINVAL;
	}
	c = tsgate_metrics_creds_copy(m, creds, n);
	if (c == NULL) {
		return ENOMEM;
	}
	talloc_free(m->creds);
	m->creds = c;
	return 0;
}

/*
 * Series references
 */

static void lseries_unref(struct metrics_lseries *ls)
{
	struct tsgate_metrics *m = ls->m;

	if (--ls->refs > 0) {
		return;
	}
	if (m != NULL) {
		if (ls->prev != NULL) {
			ls->prev->next = ls->next;
		} else {
			m->listeners = ls->next;
		}
		if (ls->next != NULL) {
			ls->next->prev = ls->prev;
		} else {
			m->listeners_tail = ls->prev;
		}
	}
	talloc_free(ls);
}

static void rseries_unref(struct metrics_rseries *rs)
{
	struct metrics_lseries *ls = rs->ls;

	if (--rs->refs > 0) {
		return;
	}
	if (rs->prev != NULL) {
		rs->prev->next = rs->next;
	} else {
		ls->routes = rs->next;
	}
	if (rs->next != NULL) {
		rs->next->prev = rs->prev;
	} else {
		ls->routes_tail = rs->prev;
	}
	talloc_free(rs);
	lseries_unref(ls);
}

static int listener_handle_destructor(struct tsgate_metrics_listener *l)
{
	lseries_unref(l->s);
	return 0;
}

struct tsgate_metrics_listener *tsgate_metrics_listener_new(
    TALLOC_CTX *mem_ctx, struct tsgate_metrics *m, const char *name)
{
	struct tsgate_metrics_listener *l;
	struct metrics_lseries *ls;

	if (m == NULL || name == NULL) {
		return NULL;
	}
	l = talloc_zero(mem_ctx, struct tsgate_metrics_listener);
	if (l == NULL) {
		return NULL;
	}
	for (ls = m->listeners; ls != NULL; ls = ls->next) {
		if (strcmp(ls->name, name) == 0) {
			break;
		}
	}
	if (ls == NULL) {
		ls = talloc_zero(m, struct metrics_lseries);
		if (ls == NULL) {
			talloc_free(l);
			return NULL;
		}
		ls->m = m;
		ls->name = talloc_strdup(ls, name);
		ls->label = label_escape(ls, name);
		if (ls->name == NULL || ls->label == NULL) {
			talloc_free(ls);
			talloc_free(l);
			return NULL;
		}
		ls->prev = m->listeners_tail;
		if (m->listeners_tail != NULL) {
			m->listeners_tail->next = ls;
		} else {
			m->listeners = ls;
		}
		m->listeners_tail = ls;
	}
	ls->refs++;
	l->s = ls;
	talloc_set_destructor(l, listener_handle_destructor);
	return l;
}

static int route_handle_destructor(struct tsgate_metrics_route *r)
{
	rseries_unref(r->s);
	return 0;
}

struct tsgate_metrics_route *tsgate_metrics_route_new(
    TALLOC_CTX *mem_ctx,
    struct tsgate_metrics_listener *listener,
    const char *name)
{
	struct metrics_lseries *ls;
	struct tsgate_metrics_route *r;
	struct metrics_rseries *rs;

	if (listener == NULL || name == NULL) {
		return NULL;
	}
	ls = listener->s;
	r = talloc_zero(mem_ctx, struct tsgate_metrics_route);
	if (r == NULL) {
		return NULL;
	}
	for (rs = ls->routes; rs != NULL; rs = rs->next) {
		if (strcmp(rs->name, name) == 0) {
			break;
		}
	}
	if (rs == NULL) {
		rs = talloc_zero(ls, struct metrics_rseries);
		if (rs == NULL) {
			talloc_free(r);
			return NULL;
		}
		rs->ls = ls;
		rs->name = talloc_strdup(rs, name);
		rs->label = label_escape(rs, name);
		if (rs->name == NULL || rs->label == NULL) {
			talloc_free(rs);
			talloc_free(r);
			return NULL;
		}
		rs->prev = ls->routes_tail;
		if (ls->routes_tail != NULL) {
			ls->routes_tail->next = rs;
		} else {
			ls->routes = rs;
		}
		ls->routes_tail = rs;
		ls->refs++;
	}
	rs->refs++;
	r->s = rs;
	talloc_set_destructor(r, route_handle_destructor);
	return r;
}

/*
 * Hot path
 */

void tsgate_metrics_handshake_failed(struct tsgate_metrics_listener *l,
				     enum tsgate_metrics_handshake_reason why)
{
	if (l == NULL) {
		return;
	}
	if ((unsigned)why >= TSGATE_METRICS_HS_NUM) {
		why = TSGATE_METRICS_HS_OTHER;
	}
	l->s->hs_failures[why]++;
}

void tsgate_metrics_tls_handshake(struct tsgate_metrics_listener *l,
				  bool resumed)
{
	if (l == NULL) {
		return;
	}
	l->s->tls_handshakes[resumed ? 1 : 0]++;
}

void tsgate_metrics_listener_kind(struct tsgate_metrics_listener *l,
				  enum tsgate_metrics_kind kind)
{
	if (l != NULL && (unsigned)kind < TSGATE_METRICS_KIND_NUM) {
		l->s->hs_kinds |= 1u << kind;
	}
}

void tsgate_metrics_handshake_done(struct tsgate_metrics_listener *l,
				   enum tsgate_metrics_kind kind,
				   uint64_t usec)
{
	if (l == NULL || (unsigned)kind >= TSGATE_METRICS_KIND_NUM) {
		return;
	}
	l->s->hs_kinds |= 1u << kind;
	tsgate_hist_observe(&l->s->hs_duration[kind],
			    &tsgate_hist_handshake_bounds, usec);
}

void tsgate_metrics_drop(struct tsgate_metrics_listener *l,
			 enum tsgate_metrics_drop_reason why)
{
	if (l == NULL) {
		return;
	}
	if ((unsigned)why >= TSGATE_METRICS_DROP_NUM) {
		why = TSGATE_METRICS_DROP_OTHER;
	}
	l->s->drops[why]++;
}

void tsgate_metrics_backend_connected(struct tsgate_metrics_route *r,
				      uint64_t usec)
{
	struct metrics_rseries *rs;
	size_t i;

	if (r == NULL) {
		return;
	}
	rs = r->s;
	for (i = 0; i < NUM_BUCKETS; i++) {
		if (usec <= connect_bucket_usec[i]) {
			rs->connect_buckets[i]++;
			break;
		}
	}
	rs->connect_count++;
	rs->connect_usec_sum += usec;
}

void tsgate_metrics_backend_failed(struct tsgate_metrics_route *r)
{
	if (r != NULL) {
		r->s->connect_failures++;
	}
}

void tsgate_metrics_conn_fini(struct tsgate_metrics_conn *c)
{
	struct metrics_rseries *rs = c->rs;

	if (rs != NULL) {
		rs->bytes_up += c->stats->bytes_up;
		rs->bytes_down += c->stats->bytes_down;
		rs->pdus_up += c->stats->pdus_up;
		rs->pdus_down += c->stats->pdus_down;
		rs->conns_active--;
		TSG_DLIST_REMOVE(rs->live, c);
		rseries_unref(rs);
		c->rs = NULL;
	}
	if (c->ls != NULL) {
		c->ls->conns_active--;
		lseries_unref(c->ls);
		c->ls = NULL;
	}
}

void tsgate_metrics_conn_init(struct tsgate_metrics_conn *c,
			      struct tsgate_metrics_listener *l)
{
	*c = (struct tsgate_metrics_conn){0};
	if (l == NULL) {
		return;
	}
	c->ls = l->s;
	gettimeofday(&c->start, NULL);
	c->ls->refs++;
	c->ls->conns_total++;
	c->ls->conns_active++;
}

static int conn_tracker_destructor(struct tsgate_metrics_conn *c)
{
	tsgate_metrics_conn_fini(c);
	return 0;
}

struct tsgate_metrics_conn *tsgate_metrics_conn_new(
    TALLOC_CTX *mem_ctx, struct tsgate_metrics_listener *l)
{
	struct tsgate_metrics_conn *c;

	if (l == NULL) {
		return NULL;
	}
	c = talloc(mem_ctx, struct tsgate_metrics_conn);
	if (c == NULL) {
		return NULL;
	}
	tsgate_metrics_conn_init(c, l);
	talloc_set_destructor(c, conn_tracker_destructor);
	return c;
}

void tsgate_metrics_conn_routed(struct tsgate_metrics_conn *c,
				struct tsgate_metrics_route *r,
				const struct tsgate_conn_stats *stats)
{
	struct metrics_rseries *rs;

	if (c == NULL || c->ls == NULL || r == NULL || stats == NULL ||
	    c->rs != NULL) {
		return;
	}
	rs = r->s;
	c->rs = rs;
	c->stats = stats;
	rs->refs++;
	rs->conns_total++;
	rs->conns_active++;
	TSG_DLIST_ADD(rs->live, c);
}

void tsgate_metrics_conn_end(struct tsgate_metrics_conn *c,
			     enum tsgate_metrics_result result)
{
	struct timeval now;
	int64_t usec;

	if (c == NULL || c->rs == NULL || c->ended) {
		return;
	}
	c->ended = true;
	if ((unsigned)result >= TSGATE_METRICS_RESULT_NUM) {
		result = TSGATE_METRICS_RESULT_ERROR;
	}
	gettimeofday(&now, NULL);
	usec = ((int64_t)now.tv_sec - (int64_t)c->start.tv_sec) * 1000000 +
	       ((int64_t)now.tv_usec - (int64_t)c->start.tv_usec);
	tsgate_hist_observe(&c->rs->duration[result],
			    &tsgate_hist_connection_bounds,
			    usec > 0 ? (uint64_t)usec : 0);
}

/*
 * Rendering
 */

static void family(char **out,
		   const char *name,
		   const char *type,
		   const char *help)
{
	talloc_asprintf_addbuf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
			       name, type);
}

/* The route's totals plus what its live connections moved so far. */
static void route_traffic(const struct metrics_rseries *rs,
			  uint64_t *up,
			  uint64_t *down,
			  uint64_t *pdus_up,
			  uint64_t *pdus_down)
{
	const struct tsgate_metrics_conn *c;

	*up = rs->bytes_up;
	*down = rs->bytes_down;
	*pdus_up = rs->pdus_up;
	*pdus_down = rs->pdus_down;
	for (c = rs->live; c != NULL; c = c->next) {
		*up += c->stats->bytes_up;
		*down += c->stats->bytes_down;
		*pdus_up += c->stats->pdus_up;
		*pdus_down += c->stats->pdus_down;
	}
}

static void render_listener_families(char **out, const struct tsgate_metrics *m)
{
	const struct metrics_lseries *ls;
	size_t i;

	family(out, "tsgate_connections_active", "gauge",
	       "Client connections open now, per listener.");
	for (ls = m->listeners; ls != NULL; ls = ls->next) {
		talloc_asprintf_addbuf(out,
				       "tsgate_connections_active"
				       "{listener=\"%s\"} %" PRId64 "\n",
				       ls->label, ls->conns_active);
	}
	family(out, "tsgate_connections_total", "counter",
	       "Client connections accepted, per listener.");
	for (ls = m->listeners; ls != NULL; ls = ls->next) {
		talloc_asprintf_addbuf(out,
				       "tsgate_connections_total"
				       "{listener=\"%s\"} %" PRIu64 "\n",
				       ls->label, ls->conns_total);
	}
	family(out, "tsgate_handshake_failures_total", "counter",
	       "Failed TLS/GSSAPI handshakes with clients, per listener and "
	       "reason.");
	for (ls = m->listeners; ls != NULL; ls = ls->next) {
		for (i = 0; i < TSGATE_METRICS_HS_NUM; i++) {
			talloc_asprintf_addbuf(
			    out,
			    "tsgate_handshake_failures_total"
			    "{listener=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
			    ls->label, hs_reason_names[i], ls->hs_failures[i]);
		}
	}
	family(out, "tsgate_handshake_duration_seconds", "histogram",
	       "Time to complete a TLS/GSSAPI handshake with a client, per "
	       "listener and kind.");
	for (ls = m->listeners; ls != NULL; ls = ls->next) {
		for (i = 0; i < TSGATE_METRICS_KIND_NUM; i++) {
			char *labels;

			if ((ls->hs_kinds & (1u << i)) == 0) {
				continue;
			}
			labels =
			    talloc_asprintf(NULL, "listener=\"%s\",kind=\"%s\"",
					    ls->label, kind_names[i]);
			if (labels == NULL) {
				TALLOC_FREE(*out);
				return;
			}
			tsgate_hist_render(
			    out, "tsgate_handshake_duration_seconds", labels,
			    &ls->hs_duration[i], &tsgate_hist_handshake_bounds);
			talloc_free(labels);
		}
	}
	family(out, "tsgate_tls_handshakes_total", "counter",
	       "Successful TLS handshakes with clients, per listener, full "
	       "(resumed=\"false\") or resuming a session.");
	for (ls = m->listeners; ls != NULL; ls = ls->next) {
		for (i = 0; i < 2; i++) {
			talloc_asprintf_addbuf(
			    out,
			    "tsgate_tls_handshakes_total"
			    "{listener=\"%s\",resumed=\"%s\"} %" PRIu64 "\n",
			    ls->label, i == 1 ? "true" : "false",
			    ls->tls_handshakes[i]);
		}
	}
	family(out, "tsgate_connection_drops_total", "counter",
	       "Connections the gateway closed early, per listener and "
	       "reason.");
	for (ls = m->listeners; ls != NULL; ls = ls->next) {
		for (i = 0; i < TSGATE_METRICS_DROP_NUM; i++) {
			talloc_asprintf_addbuf(
			    out,
			    "tsgate_connection_drops_total"
			    "{listener=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
			    ls->label, drop_reason_names[i], ls->drops[i]);
		}
	}
}

#define FOREACH_ROUTE(m, ls, rs)                                     \
	for ((ls) = (m)->listeners; (ls) != NULL; (ls) = (ls)->next) \
		for ((rs) = (ls)->routes; (rs) != NULL; (rs) = (rs)->next)

static void render_connection_durations(char **out,
					const struct tsgate_metrics *m)
{
	const struct metrics_lseries *ls;
	const struct metrics_rseries *rs;
	size_t i;

	family(out, "tsgate_connection_duration_seconds", "histogram",
	       "Life of a routed connection, from accept to its end, per "
	       "listener, route and result.");
	FOREACH_ROUTE(m, ls, rs)
	{
		for (i = 0; i < TSGATE_METRICS_RESULT_NUM; i++) {
			char *labels = talloc_asprintf(
			    NULL, "listener=\"%s\",route=\"%s\",result=\"%s\"",
			    ls->label, rs->label, result_names[i]);

			if (labels == NULL) {
				TALLOC_FREE(*out);
				return;
			}
			tsgate_hist_render(
			    out, "tsgate_connection_duration_seconds", labels,
			    &rs->duration[i], &tsgate_hist_connection_bounds);
			talloc_free(labels);
		}
	}
}

static void render_route_families(char **out, const struct tsgate_metrics *m)
{
	const struct metrics_lseries *ls;
	const struct metrics_rseries *rs;
	uint64_t up, down, pdus_up, pdus_down, cumulative;
	size_t i;

	family(out, "tsgate_route_connections_active", "gauge",
	       "Routed connections open now, per listener and route.");
	FOREACH_ROUTE(m, ls, rs)
	{
		talloc_asprintf_addbuf(out,
				       "tsgate_route_connections_active"
				       "{listener=\"%s\",route=\"%s\"} %" PRId64
				       "\n",
				       ls->label, rs->label, rs->conns_active);
	}
	family(out, "tsgate_route_connections_total", "counter",
	       "Connections routed, per listener and route.");
	FOREACH_ROUTE(m, ls, rs)
	{
		talloc_asprintf_addbuf(out,
				       "tsgate_route_connections_total"
				       "{listener=\"%s\",route=\"%s\"} %" PRIu64
				       "\n",
				       ls->label, rs->label, rs->conns_total);
	}
	family(out, "tsgate_route_bytes_total", "counter",
	       "Payload bytes relayed, per listener, route and direction.");
	FOREACH_ROUTE(m, ls, rs)
	{
		route_traffic(rs, &up, &down, &pdus_up, &pdus_down);
		talloc_asprintf_addbuf(
		    out,
		    "tsgate_route_bytes_total{listener=\"%s\",route=\"%s\","
		    "direction=\"client_to_backend\"} %" PRIu64 "\n"
		    "tsgate_route_bytes_total{listener=\"%s\",route=\"%s\","
		    "direction=\"backend_to_client\"} %" PRIu64 "\n",
		    ls->label, rs->label, up, ls->label, rs->label, down);
	}
	family(out, "tsgate_route_pdus_total", "counter",
	       "PDUs (raw framing: chunks) relayed, per listener, route and "
	       "direction.");
	FOREACH_ROUTE(m, ls, rs)
	{
		route_traffic(rs, &up, &down, &pdus_up, &pdus_down);
		talloc_asprintf_addbuf(
		    out,
		    "tsgate_route_pdus_total{listener=\"%s\",route=\"%s\","
		    "direction=\"client_to_backend\"} %" PRIu64 "\n"
		    "tsgate_route_pdus_total{listener=\"%s\",route=\"%s\","
		    "direction=\"backend_to_client\"} %" PRIu64 "\n",
		    ls->label, rs->label, pdus_up, ls->label, rs->label,
		    pdus_down);
	}
	family(out, "tsgate_backend_connect_failures_total", "counter",
	       "Failed backend connects, per listener and route.");
	FOREACH_ROUTE(m, ls, rs)
	{
		talloc_asprintf_addbuf(
		    out,
		    "tsgate_backend_connect_failures_total"
		    "{listener=\"%s\",route=\"%s\"} %" PRIu64 "\n",
		    ls->label, rs->label, rs->connect_failures);
	}
	family(out, "tsgate_backend_connect_duration_seconds", "histogram",
	       "Time to a usable backend stream (connect and origination "
	       "handshake), per listener and route.");
	FOREACH_ROUTE(m, ls, rs)
	{
		cumulative = 0;
		for (i = 0; i < NUM_BUCKETS; i++) {
			cumulative += rs->connect_buckets[i];
			talloc_asprintf_addbuf(
			    out,
			    "tsgate_backend_connect_duration_seconds_bucket"
			    "{listener=\"%s\",route=\"%s\",le=\"%s\"} %" PRIu64
			    "\n",
			    ls->label, rs->label, connect_bucket_le[i],
			    cumulative);
		}
		talloc_asprintf_addbuf(
		    out,
		    "tsgate_backend_connect_duration_seconds_bucket"
		    "{listener=\"%s\",route=\"%s\",le=\"+Inf\"} %" PRIu64 "\n"
		    "tsgate_backend_connect_duration_seconds_sum"
		    "{listener=\"%s\",route=\"%s\"} %" PRIu64 ".%06" PRIu64 "\n"
		    "tsgate_backend_connect_duration_seconds_count"
		    "{listener=\"%s\",route=\"%s\"} %" PRIu64 "\n",
		    ls->label, rs->label, rs->connect_count, ls->label,
		    rs->label, rs->connect_usec_sum / 1000000,
		    rs->connect_usec_sum % 1000000, ls->label, rs->label,
		    rs->connect_count);
	}
	render_connection_durations(out, m);
}

void tsgate_metrics_set_extra(struct tsgate_metrics *m,
			      tsgate_metrics_render_fn fn,
			      const void *private_data)
{
	m->extra_fn = fn;
	m->extra_private = private_data;
}

/* The outcome of reloads and the credentials they loaded. */
static void render_reload_families(char **out, const struct tsgate_metrics *m)
{
	family(out, "tsgate_last_reload_success_timestamp_seconds", "gauge",
	       "When the configuration and credentials in use were loaded "
	       "(start-up or the last successful reload), since the Unix "
	       "epoch.");
	talloc_asprintf_addbuf(
	    out, "tsgate_last_reload_success_timestamp_seconds %lld.%06ld\n",
	    (long long)m->last_reload_success.tv_sec,
	    (long)m->last_reload_success.tv_usec);
	family(out, "tsgate_last_reload_successful", "gauge",
	       "1 when the last reload attempt (SIGHUP or a changed "
	       "credential file) succeeded or none was made, 0 when it "
	       "failed and the previous configuration stays.");
	talloc_asprintf_addbuf(out, "tsgate_last_reload_successful %d\n",
			       m->last_reload_failed ? 0 : 1);
	tsgate_metrics_creds_render(out, m->creds);
}

char *tsgate_metrics_render(TALLOC_CTX *mem_ctx, const struct tsgate_metrics *m)
{
	char *out;

	if (m == NULL) {
		errno = EINVAL;
		return NULL;
	}
	out = talloc_strdup(mem_ctx, "");
	family(&out, "tsgate_build_info", "gauge",
	       "Version of the running tsgate and of its libraries (always "
	       "1).");
	talloc_asprintf_addbuf(&out, "tsgate_build_info{version=\"%s\"%s} 1\n",
			       m->version_label,
			       m->build_labels != NULL ? m->build_labels : "");
	family(&out, "tsgate_start_time_seconds", "gauge",
	       "Start time of the process since the Unix epoch in seconds.");
	talloc_asprintf_addbuf(&out, "tsgate_start_time_seconds %lld.%06ld\n",
			       (long long)m->start.tv_sec,
			       (long)m->start.tv_usec);
	family(&out, "tsgate_ready", "gauge",
	       "1 while listeners are bound and accepting, 0 while starting "
	       "or draining.");
	talloc_asprintf_addbuf(&out, "tsgate_ready %d\n",
			       m->state == TSGATE_METRICS_READY ? 1 : 0);
	family(&out, "tsgate_reloads_total", "counter",
	       "Configuration reloads (SIGHUP or a changed credential "
	       "file), by result.");
	talloc_asprintf_addbuf(
	    &out,
	    "tsgate_reloads_total{result=\"ok\"} %" PRIu64 "\n"
	    "tsgate_reloads_total{result=\"failed\"} %" PRIu64 "\n",
	    m->reloads_ok, m->reloads_failed);
	render_listener_families(&out, m);
	render_route_families(&out, m);
	render_reload_families(&out, m);
	tsgate_metrics_process_render(&out);
	if (m->extra_fn != NULL && out != NULL) {
		m->extra_fn(m->extra_private, &out);
	}
	if (out == NULL) {
		errno = ENOMEM;
	}
	return out;
}

/*
 * Workers: merging rendered texts. A family block starts at its
 * "# HELP name" line and runs to the next one.
 */

struct merge_block {
	const char *name; /* not NUL-terminated: name_len */
	size_t name_len;
	const char *start;   /* the HELP line */
	const char *samples; /* the first line after HELP and TYPE */
	const char *end;
};

static size_t merge_blocks(TALLOC_CTX *mem_ctx,
			   const char *text,
			   struct merge_block **pblocks)
{
	struct merge_block *b = NULL;
	size_t n = 0;
	const char *p = text;

	while (*p != '\0') {
		const char *eol = strchr(p, '\n');
		const char *next = eol != NULL ? eol + 1 : p + strlen(p);

		if (strncmp(p, "# HELP ", 7) == 0) {
			struct merge_block *nb;

			nb = talloc_realloc(mem_ctx, b, struct merge_block,
					    n + 1);
			if (nb == NULL) {
				break;
			}
			b = nb;
			b[n].name = p + 7;
			b[n].name_len = strcspn(p + 7, " \n");
			b[n].start = p;
			b[n].samples = next;
			b[n].end = next;
			n++;
		} else if (n > 0) {
			if (strncmp(p, "# TYPE ", 7) == 0 &&
			    b[n - 1].samples == p) {
				b[n - 1].samples = next;
			}
			b[n - 1].end = next;
		}
		p = next;
	}
	*pblocks = b;
	return n;
}

static const struct merge_block *merge_find(const struct merge_block *b,
					    size_t n,
					    const struct merge_block *want)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (b[i].name_len == want->name_len &&
		    memcmp(b[i].name, want->name, want->name_len) == 0) {
			return &b[i];
		}
	}
	return NULL;
}

/* The sample lines of a block with worker="w" as their first label. */
static void merge_samples(char **out, const struct merge_block *b, unsigned w)
{
	const char *p = b->samples;

	while (p < b->end) {
		const char *eol = memchr(p, '\n', (size_t)(b->end - p));
		size_t len =
		    eol != NULL ? (size_t)(eol - p) : (size_t)(b->end - p);
		size_t name = strcspn(p, "{ \n");

		if (len > 0 && p[0] != '#' && name < len) {
			if (p[name] == '{') {
				talloc_asprintf_addbuf(
				    out, "%.*sworker=\"%u\",%.*s\n",
				    (int)name + 1, p, w, (int)(len - name - 1),
				    p + name + 1);
			} else {
				talloc_asprintf_addbuf(
				    out, "%.*s{worker=\"%u\"}%.*s\n", (int)name,
				    p, w, (int)(len - name), p + name);
			}
		}
		p += len + 1;
	}
}

char *tsgate_metrics_merge_workers(TALLOC_CTX *mem_ctx,
				   const char *const *texts,
				   unsigned n)
{
	TALLOC_CTX *tmp = talloc_new(NULL);
	struct merge_block **blocks;
	size_t *counts;
	char *out;
	unsigned w, k;
	size_t i;

	if (tmp == NULL) {
		return NULL;
	}
	blocks = talloc_zero_array(tmp, struct merge_block *, n);
	counts = talloc_zero_array(tmp, size_t, n);
	out = talloc_strdup(mem_ctx, "");
	if (blocks == NULL || counts == NULL || out == NULL) {
		talloc_free(tmp);
		talloc_free(out);
		return NULL;
	}
	for (w = 0; w < n; w++) {
		if (texts[w] != NULL) {
			counts[w] = merge_blocks(tmp, texts[w], &blocks[w]);
		}
	}
	/* families in the order of the first text that has them */
	for (w = 0; w < n; w++) {
		for (i = 0; i < counts[w]; i++) {
			const struct merge_block *f = &blocks[w][i];

			/* already written with an earlier worker's text */
			for (k = 0; k < w; k++) {
				if (merge_find(blocks[k], counts[k], f) !=
				    NULL) {
					break;
				}
			}
			if (k < w) {
				continue;
			}
			talloc_asprintf_addbuf(&out, "%.*s",
					       (int)(f->samples - f->start),
					       f->start);
			for (k = w; k < n; k++) {
				const struct merge_block *b =
				    merge_find(blocks[k], counts[k], f);

				if (b != NULL) {
					merge_samples(&out, b, k);
				}
			}
		}
	}
	family(&out, "tsgate_worker_up", "gauge",
	       "1 for a worker that answered this scrape, 0 for one that did "
	       "not (restarting).");
	for (w = 0; w < n; w++) {
		talloc_asprintf_addbuf(&out,
				       "tsgate_worker_up{worker=\"%u\"} %d\n",
				       w, texts[w] != NULL ? 1 : 0);
	}
	talloc_free(tmp);
	return out;
}

char *tsgate_metrics_label_escape(TALLOC_CTX *mem_ctx, const char *s)
{
	return label_escape(mem_ctx, s);
}

void tsgate_metrics_family(char **out,
			   const char *name,
			   const char *type,
			   const char *help)
{
	family(out, name, type, help);
}
