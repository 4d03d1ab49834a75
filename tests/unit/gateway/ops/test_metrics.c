/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of gateway/ops/metrics.c and the endpoint handler of
 * gateway/ops/health.c: exact Prometheus text, label escaping, histogram
 * buckets, live byte counts, series surviving a reload, handles and
 * registry freed in any order.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <talloc.h>
#include <tevent.h>

#include "tt.h"
#include "tt_pair.h"
#include "config.h"
#include "tsocket.h"
#include "health.h"
#include "http_server.h"
#include "http_server_private.h"
#include "metrics.h"
#include "metrics_creds.h"
#include "relay.h"

static const struct timeval start = {.tv_sec = 1764000000, .tv_usec = 250000};

#define HEADER_FAMILIES                                                      \
	"# HELP tsgate_build_info Version of the running tsgate and of its " \
	"libraries (always 1).\n"                                            \
	"# TYPE tsgate_build_info gauge\n"                                   \
	"tsgate_build_info{version=\"1.2.3\"} 1\n"                           \
	"# HELP tsgate_start_time_seconds Start time of the process since "  \
	"the Unix epoch in seconds.\n"                                       \
	"# TYPE tsgate_start_time_seconds gauge\n"                           \
	"tsgate_start_time_seconds 1764000000.250000\n"                      \
	"# HELP tsgate_ready 1 while listeners are bound and accepting, 0 "  \
	"while starting or draining.\n"                                      \
	"# TYPE tsgate_ready gauge\n"

#define RELOADS_FAMILY                                                    \
	"# HELP tsgate_reloads_total Configuration reloads (SIGHUP or a " \
	"changed credential file), by result.\n"                          \
	"# TYPE tsgate_reloads_total counter\n"

/* The families after the routes': reloads and credentials. */
#define H_LAST_RELOAD                                                    \
	"# HELP tsgate_last_reload_success_timestamp_seconds When the "  \
	"configuration and credentials in use were loaded (start-up or " \
	"the last successful reload), since the Unix epoch.\n"           \
	"# TYPE tsgate_last_reload_success_timestamp_seconds gauge\n"    \
	"tsgate_last_reload_success_timestamp_seconds "
#define H_LAST_OK                                                          \
	"# HELP tsgate_last_reload_successful 1 when the last reload "     \
	"attempt (SIGHUP or a changed credential file) succeeded or none " \
	"was made, 0 when it failed and the previous configuration "       \
	"stays.\n"                                                         \
	"# TYPE tsgate_last_reload_successful gauge\n"                     \
	"tsgate_last_reload_successful "
#define H_CERT_EXPIRY                                                     \
	"# HELP tsgate_certificate_expiry_timestamp_seconds notAfter of " \
	"each certificate in use (a CA file: its first to expire), per "  \
	"listener or route, since the Unix epoch.\n"                      \
	"# TYPE tsgate_certificate_expiry_timestamp_seconds gauge\n"
#define H_OCSP                                                        \
	"# HELP tsgate_ocsp_response_next_update_timestamp_seconds "  \
	"nextUpdate of each stapled OCSP response, per listener and " \
	"certificate, since the Unix epoch (0: none given).\n"        \
	"# TYPE tsgate_ocsp_response_next_update_timestamp_seconds gauge\n"

#define H_CONN_ACTIVE                                                    \
	"# HELP tsgate_connections_active Client connections open now, " \
	"per listener.\n"                                                \
	"# TYPE tsgate_connections_active gauge\n"
#define H_CONN_TOTAL                                                    \
	"# HELP tsgate_connections_total Client connections accepted, " \
	"per listener.\n"                                               \
	"# TYPE tsgate_connections_total counter\n"
#define H_HS                                                                   \
	"# HELP tsgate_handshake_failures_total Failed TLS/GSSAPI handshakes " \
	"with clients, per listener and reason.\n"                             \
	"# TYPE tsgate_handshake_failures_total counter\n"
#define H_TLS_HS                                                             \
	"# HELP tsgate_tls_handshakes_total Successful TLS handshakes with " \
	"clients, per listener, full (resumed=\"false\") or resuming a "     \
	"session.\n"                                                         \
	"# TYPE tsgate_tls_handshakes_total counter\n"
#define H_DROPS                                                                \
	"# HELP tsgate_connection_drops_total Connections the gateway closed " \
	"early, per listener and reason.\n"                                    \
	"# TYPE tsgate_connection_drops_total counter\n"
#define H_R_ACTIVE                                                        \
	"# HELP tsgate_route_connections_active Routed connections open " \
	"now, per listener and route.\n"                                  \
	"# TYPE tsgate_route_connections_active gauge\n"
#define H_R_TOTAL                                                        \
	"# HELP tsgate_route_connections_total Connections routed, per " \
	"listener and route.\n"                                          \
	"# TYPE tsgate_route_connections_total counter\n"
#define H_R_BYTES                                                     \
	"# HELP tsgate_route_bytes_total Payload bytes relayed, per " \
	"listener, route and direction.\n"                            \
	"# TYPE tsgate_route_bytes_total counter\n"
#define H_R_PDUS                                                              \
	"# HELP tsgate_route_pdus_total PDUs (raw framing: chunks) relayed, " \
	"per listener, route and direction.\n"                                \
	"# TYPE tsgate_route_pdus_total counter\n"
#define H_R_FAIL                                                       \
	"# HELP tsgate_backend_connect_failures_total Failed backend " \
	"connects, per listener and route.\n"                          \
	"# TYPE tsgate_backend_connect_failures_total counter\n"
#define H_R_HIST                                                            \
	"# HELP tsgate_backend_connect_duration_seconds Time to a usable "  \
	"backend stream (connect and origination handshake), per listener " \
	"and route.\n"                                                      \
	"# TYPE tsgate_backend_connect_duration_seconds histogram\n"

#define H_HS_DUR                                                       \
	"# HELP tsgate_handshake_duration_seconds Time to complete a " \
	"TLS/GSSAPI handshake with a client, per listener and kind.\n" \
	"# TYPE tsgate_handshake_duration_seconds histogram\n"
#define H_CONN_DUR                                                     \
	"# HELP tsgate_connection_duration_seconds Life of a routed "  \
	"connection, from accept to its end, per listener, route and " \
	"result.\n"                                                    \
	"# TYPE tsgate_connection_duration_seconds histogram\n"

/*
 * The process families come last and their values are this process's:
 * check they are there, then cut them off so the rest compares exactly.
 */
static char *cut_process(char *text)
{
	char *p;

	ck_assert_ptr_nonnull(text);
	p = strstr(text, "# HELP process_cpu_seconds_total ");
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(strstr(p, "\nprocess_open_fds "));
	ck_assert_ptr_nonnull(strstr(p, "\nprocess_start_time_seconds "));
	*p = '\0';
	return text;
}

/* The zero series of tsgate_connection_duration_seconds of one route. */
static char *conn_dur_zeros(TALLOC_CTX *ctx, const char *l, const char *r)
{
	static const char *const results[] = {
	    "ok", "backend_failed", "idle_timeout", "shutdown", "error"};
	static const char *const les[] = {
	    "0.01", "0.1",  "1",    "10",    "60",    "300", "900",
	    "1800", "3600", "7200", "21600", "86400", "+Inf"};
	char *out = talloc_strdup(ctx, "");
	size_t i, j;

	for (i = 0; i < 5; i++) {
		for (j = 0; j < 13; j++) {
			out = talloc_asprintf_append(
			    out,
			    "tsgate_connection_duration_seconds_bucket{"
			    "listener="
			    "\"%s\",route=\"%s\",result=\"%s\",le=\"%s\"} 0\n",
			    l, r, results[i], les[j]);
		}
		out = talloc_asprintf_append(
		    out,
		    "tsgate_connection_duration_seconds_sum{listener=\"%s\","
		    "route=\"%s\",result=\"%s\"} 0.000000\n"
		    "tsgate_connection_duration_seconds_count{listener=\"%s\","
		    "route=\"%s\",result=\"%s\"} 0\n",
		    l, r, results[i], l, r, results[i]);
	}
	return out;
}

START_TEST(test_render_empty)
{
	struct tsgate_metrics *m = tsgate_metrics_new(tt_mem, "1.2.3", &start);
	char *text;

	ck_assert_ptr_nonnull(m);
	text = cut_process(tsgate_metrics_render(tt_mem, m));
	ck_assert_str_eq(
	    text, HEADER_FAMILIES
	    "tsgate_ready 0\n" RELOADS_FAMILY
	    "tsgate_reloads_total{result=\"ok\"} 0\n"
	    "tsgate_reloads_total{result=\"failed\"} 0\n" H_CONN_ACTIVE
		H_CONN_TOTAL H_HS H_HS_DUR H_TLS_HS H_DROPS H_R_ACTIVE H_R_TOTAL
		    H_R_BYTES H_R_PDUS H_R_FAIL H_R_HIST H_CONN_DUR
			H_LAST_RELOAD "1764000000.250000\n" H_LAST_OK
	    "1\n" H_CERT_EXPIRY H_OCSP);
	talloc_free(m);
}
END_TEST

#define HIST(l, r, c)                                                  \
	"tsgate_backend_connect_duration_seconds_bucket{listener=\"" l \
	"\",route=\"" r "\",le=\"" c "\"} "

static bool has(const char *text, const char *line)
{
	return strstr(text, line) != NULL;
}

/*
 * A tracker inside the connection's own struct (how conn.c holds it: one
 * talloc chunk less per connection) counts and uncounts as one of its
 * own would; a second fini does nothing.
 */
START_TEST(test_conn_tracker_embedded)
{
	TALLOC_CTX *ctx = talloc_new(tt_mem);
	struct tsgate_metrics *m = tsgate_metrics_new(ctx, "1.2.3", &start);
	struct tsgate_metrics_listener *l =
	    tsgate_metrics_listener_new(ctx, m, "pub");
	struct tsgate_metrics_route *r =
	    tsgate_metrics_route_new(ctx, l, "ldap");
	struct tsgate_metrics_conn c1, c2, none;
	struct tsgate_conn_stats s1 = {0};
	char *text;

	ck_assert_ptr_nonnull(r);
	tsgate_metrics_conn_init(&c1, l);
	tsgate_metrics_conn_init(&c2, l);
	tsgate_metrics_conn_init(&none, NULL); /* not counted, harmless */
	tsgate_metrics_conn_routed(&none, r, &s1);
	tsgate_metrics_conn_routed(&c1, r, &s1);
	s1 = (struct tsgate_conn_stats){10, 20, 1, 2, NULL, false};
	text = tsgate_metrics_render(ctx, m);
	ck_assert(has(text, "tsgate_connections_active{listener=\"pub\"} 2\n"));
	ck_assert(has(text, "tsgate_route_connections_active{listener=\"pub\","
			    "route=\"ldap\"} 1\n"));
	ck_assert(has(text, "tsgate_route_bytes_total{listener=\"pub\",route="
			    "\"ldap\",direction=\"client_to_backend\"} 10\n"));

	tsgate_metrics_conn_fini(&c1);
	tsgate_metrics_conn_fini(&c1);
	tsgate_metrics_conn_fini(&none);
	s1.bytes_up = 999; /* no longer followed */
	text = tsgate_metrics_render(ctx, m);
	ck_assert(has(text, "tsgate_connections_active{listener=\"pub\"} 1\n"));
	ck_assert(has(text, "tsgate_connections_total{listener=\"pub\"} 2\n"));
	ck_assert(has(text, "tsgate_route_connections_active{listener=\"pub\","
			    "route=\"ldap\"} 0\n"));
	ck_assert(has(text, "tsgate_route_bytes_total{listener=\"pub\",route="
			    "\"ldap\",direction=\"client_to_backend\"} 10\n"));
	tsgate_metrics_conn_fini(&c2);
	text = tsgate_metrics_render(ctx, m);
	ck_assert(has(text, "tsgate_connections_active{listener=\"pub\"} 0\n"));
	talloc_free(ctx);
}
END_TEST

START_TEST(test_render_full)
{
	TALLOC_CTX *ctx = talloc_new(tt_mem);
	struct tsgate_metrics *m = tsgate_metrics_new(ctx, "1.2.3", &start);
	struct tsgate_metrics_listener *l;
	struct tsgate_metrics_route *r;
	struct tsgate_metrics_conn *c1, *c2;
	struct tsgate_conn_stats s1 = {0}, s2 = {0};
	char *text, *tail;
	long long sec;
	long usec;

	tsgate_metrics_set_state(m, TSGATE_METRICS_READY);
	tsgate_metrics_reload(m, true);
	tsgate_metrics_reload(m, true);
	tsgate_metrics_reload(m, false);
	l = tsgate_metrics_listener_new(ctx, m, "pub");
	r = tsgate_metrics_route_new(ctx, l, "ldap");
	ck_assert_ptr_nonnull(r);

	c1 = tsgate_metrics_conn_new(ctx, l);
	c2 = tsgate_metrics_conn_new(ctx, l);
	tsgate_metrics_conn_new(ctx, l); /* stays in the handshake */
	tsgate_metrics_conn_routed(c1, r, &s1);
	tsgate_metrics_conn_routed(c2, r, &s2);
	tsgate_metrics_conn_routed(c2, r, &s1); /* ignored: once only */
	s1 = (struct tsgate_conn_stats){10, 20, 1, 2, NULL, false};
	s2 = (struct tsgate_conn_stats){100, 200, 3, 4, NULL, false};
	talloc_free(c2);  /* its counts are now the route's for good */
	s1.bytes_up = 11; /* c1 still moving */

	tsgate_metrics_handshake_failed(l, TSGATE_METRICS_HS_TIMEOUT);
	tsgate_metrics_handshake_failed(l, TSGATE_METRICS_HS_AUTH);
	tsgate_metrics_handshake_failed(l, TSGATE_METRICS_HS_NUM); /* other */
	tsgate_metrics_tls_handshake(l, false);
	tsgate_metrics_tls_handshake(l, true);
	tsgate_metrics_tls_handshake(l, true);
	tsgate_metrics_tls_handshake(NULL, true); /* ignored */
	tsgate_metrics_drop(l, TSGATE_METRICS_DROP_MAX_CONNECTIONS);
	tsgate_metrics_drop(l, TSGATE_METRICS_DROP_PDU_TOO_LARGE);
	tsgate_metrics_drop(l, TSGATE_METRICS_DROP_PDU_TOO_LARGE);
	tsgate_metrics_backend_failed(r);
	tsgate_metrics_backend_connected(r, 500);      /* le 0.0005 */
	tsgate_metrics_backend_connected(r, 501);      /* le 0.001 */
	tsgate_metrics_backend_connected(r, 10000000); /* le 10 */
	tsgate_metrics_backend_connected(r, 20000001); /* +Inf only */

	text = cut_process(tsgate_metrics_render(ctx, m));
	/* the reload families last: the success time is the clock's */
	tail = strstr(text, H_LAST_RELOAD);
	ck_assert_ptr_nonnull(tail);
	ck_assert_int_eq(
	    sscanf(tail + strlen(H_LAST_RELOAD), "%lld.%6ld\n", &sec, &usec),
	    2);
	ck_assert_int_ge(sec, (long long)start.tv_sec);
	ck_assert_ptr_nonnull(
	    strstr(tail, H_LAST_OK "0\n" H_CERT_EXPIRY H_OCSP));
	*tail = '\0';
	/* clang-format off */
	ck_assert_str_eq(
	    text, talloc_asprintf(ctx, "%s%s",
	    HEADER_FAMILIES "tsgate_ready 1\n" RELOADS_FAMILY
	    "tsgate_reloads_total{result=\"ok\"} 2\n"
	    "tsgate_reloads_total{result=\"failed\"} 1\n"
	    H_CONN_ACTIVE
	    "tsgate_connections_active{listener=\"pub\"} 2\n"
	    H_CONN_TOTAL
	    "tsgate_connections_total{listener=\"pub\"} 3\n"
	    H_HS
	    "tsgate_handshake_failures_total{listener=\"pub\",reason=\"timeout\"} 1\n"
	    "tsgate_handshake_failures_total{listener=\"pub\",reason=\"protocol\"} 0\n"
	    "tsgate_handshake_failures_total{listener=\"pub\",reason=\"auth\"} 1\n"
	    "tsgate_handshake_failures_total{listener=\"pub\",reason=\"closed\"} 0\n"
	    "tsgate_handshake_failures_total{listener=\"pub\",reason=\"other\"} 1\n"
	    H_HS_DUR
	    H_TLS_HS
	    "tsgate_tls_handshakes_total{listener=\"pub\",resumed=\"false\"} 1\n"
	    "tsgate_tls_handshakes_total{listener=\"pub\",resumed=\"true\"} 2\n"
	    H_DROPS
	    "tsgate_connection_drops_total{listener=\"pub\",reason=\"max_connections\"} 1\n"
	    "tsgate_connection_drops_total{listener=\"pub\",reason=\"max_connections_per_source\"} 0\n"
	    "tsgate_connection_drops_total{listener=\"pub\",reason=\"handshake_timeout\"} 0\n"
	    "tsgate_connection_drops_total{listener=\"pub\",reason=\"handshake_failed\"} 0\n"
	    "tsgate_connection_drops_total{listener=\"pub\",reason=\"no_route\"} 0\n"
	    "tsgate_connection_drops_total{listener=\"pub\",reason=\"backend_refused\"} 0\n"
	    "tsgate_connection_drops_total{listener=\"pub\",reason=\"backend_timeout\"} 0\n"
	    "tsgate_connection_drops_total{listener=\"pub\",reason=\"backend_handshake\"} 0\n"
	    "tsgate_connection_drops_total{listener=\"pub\",reason=\"idle_timeout\"} 0\n"
	    "tsgate_connection_drops_total{listener=\"pub\",reason=\"pdu_too_large\"} 2\n"
	    "tsgate_connection_drops_total{listener=\"pub\",reason=\"pdu_malformed\"} 0\n"
	    "tsgate_connection_drops_total{listener=\"pub\",reason=\"shutdown\"} 0\n"
	    "tsgate_connection_drops_total{listener=\"pub\",reason=\"other\"} 0\n"
	    H_R_ACTIVE
	    "tsgate_route_connections_active{listener=\"pub\",route=\"ldap\"} 1\n"
	    H_R_TOTAL
	    "tsgate_route_connections_total{listener=\"pub\",route=\"ldap\"} 2\n"
	    H_R_BYTES
	    "tsgate_route_bytes_total{listener=\"pub\",route=\"ldap\",direction=\"client_to_backend\"} 111\n"
	    "tsgate_route_bytes_total{listener=\"pub\",route=\"ldap\",direction=\"backend_to_client\"} 220\n"
	    H_R_PDUS
	    "tsgate_route_pdus_total{listener=\"pub\",route=\"ldap\",direction=\"client_to_backend\"} 4\n"
	    "tsgate_route_pdus_total{listener=\"pub\",route=\"ldap\",direction=\"backend_to_client\"} 6\n"
	    H_R_FAIL
	    "tsgate_backend_connect_failures_total{listener=\"pub\",route=\"ldap\"} 1\n"
	    H_R_HIST
	    HIST("pub", "ldap", "0.0005") "1\n"
	    HIST("pub", "ldap", "0.001") "2\n"
	    HIST("pub", "ldap", "0.0025") "2\n"
	    HIST("pub", "ldap", "0.005") "2\n"
	    HIST("pub", "ldap", "0.01") "2\n"
	    HIST("pub", "ldap", "0.025") "2\n"
	    HIST("pub", "ldap", "0.05") "2\n"
	    HIST("pub", "ldap", "0.1") "2\n"
	    HIST("pub", "ldap", "0.25") "2\n"
	    HIST("pub", "ldap", "0.5") "2\n"
	    HIST("pub", "ldap", "1") "2\n"
	    HIST("pub", "ldap", "2.5") "2\n"
	    HIST("pub", "ldap", "5") "2\n"
	    HIST("pub", "ldap", "10") "3\n"
	    HIST("pub", "ldap", "+Inf") "4\n"
	    "tsgate_backend_connect_duration_seconds_sum{listener=\"pub\",route=\"ldap\"} 30.001002\n"
	    "tsgate_backend_connect_duration_seconds_count{listener=\"pub\",route=\"ldap\"} 4\n"
	    H_CONN_DUR, conn_dur_zeros(ctx, "pub", "ldap")));
	/* clang-format on */
	talloc_free(ctx);
}
END_TEST

START_TEST(test_label_escaping)
{
	struct tsgate_metrics *m = tsgate_metrics_new(tt_mem, "v\"1\\", &start);
	struct tsgate_metrics_listener *l =
	    tsgate_metrics_listener_new(m, m, "a\"b\\c\nd");
	struct tsgate_metrics_route *r =
	    tsgate_metrics_route_new(m, l, "r\xc3\xa9 \\n");
	char *text;

	ck_assert_ptr_nonnull(r);
	text = tsgate_metrics_render(m, m);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(
	    strstr(text, "tsgate_build_info{version=\"v\\\"1\\\\\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(
	    text,
	    "tsgate_connections_total{listener=\"a\\\"b\\\\c\\nd\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "tsgate_route_connections_total"
					   "{listener=\"a\\\"b\\\\c\\nd\","
					   "route=\"r\xc3\xa9 \\\\n\"} 0\n"));
	/* no raw line feed inside a sample line: every line is a sample or
	 * a comment */
	for (char *line = text; *line != '\0'; line = strchr(line, '\n') + 1) {
		ck_assert(strncmp(line, "tsgate_", 7) == 0 ||
			  strncmp(line, "process_", 8) == 0 ||
			  strncmp(line, "# ", 2) == 0);
	}
	talloc_free(m);
}
END_TEST

/* The credentials in use: one series each, escaped, replaced as a whole. */
START_TEST(test_render_creds)
{
	struct tsgate_metrics *m = tsgate_metrics_new(tt_mem, "1", &start);
	const struct tsgate_metrics_cred v1[] = {
	    {"pub", NULL, TSGATE_METRICS_CRED_SERVER, "0A1B", "gw \"x\"",
	     1800000000, "/s.crt"},
	    {"pub", "up", TSGATE_METRICS_CRED_CLIENT, "02", "", 1800000001,
	     "/c.crt"},
	    {"pub", "up", TSGATE_METRICS_CRED_CA, "03", "CA", 1800000002,
	     "/ca.crt"},
	    {"pub", NULL, TSGATE_METRICS_CRED_OCSP, "0A1B", "gw", 1765000000,
	     "/s.ocsp"},
	};
	const struct tsgate_metrics_cred v2[] = {
	    {"pub", NULL, TSGATE_METRICS_CRED_SERVER, "0C", "gw", 1900000000,
	     "/s.crt"},
	};
	char *text;

	ck_assert_int_eq(tsgate_metrics_set_creds(m, v1, 4), 0);
	text = tsgate_metrics_render(m, m);
	/* clang-format off */
	ck_assert_ptr_nonnull(strstr(text, H_CERT_EXPIRY
	    "tsgate_certificate_expiry_timestamp_seconds{listener=\"pub\",route=\"\",kind=\"server\",serial=\"0A1B\",subject_cn=\"gw \\\"x\\\"\"} 1800000000\n"
	    "tsgate_certificate_expiry_timestamp_seconds{listener=\"pub\",route=\"up\",kind=\"client\",serial=\"02\",subject_cn=\"\"} 1800000001\n"
	    "tsgate_certificate_expiry_timestamp_seconds{listener=\"pub\",route=\"up\",kind=\"ca\",serial=\"03\",subject_cn=\"CA\"} 1800000002\n"
	    H_OCSP
	    "tsgate_ocsp_response_next_update_timestamp_seconds{listener=\"pub\",serial=\"0A1B\",subject_cn=\"gw\"} 1765000000\n"));
	/* clang-format on */
	ck_assert_int_eq(tsgate_metrics_set_creds(m, v2, 1), 0);
	text = tsgate_metrics_render(m, m);
	ck_assert_ptr_null(strstr(text, "0A1B"));
	ck_assert_ptr_nonnull(strstr(text, "serial=\"0C\""));
	ck_assert_int_eq(tsgate_metrics_set_creds(m, NULL, 0), 0);
	text = tsgate_metrics_render(m, m);
	ck_assert_ptr_nonnull(strstr(text, H_CERT_EXPIRY H_OCSP));
	ck_assert_int_eq(tsgate_metrics_set_creds(NULL, v2, 1), EINVAL);
	talloc_free(m);
}
END_TEST

/* A reload re-creates handles: counters of a name that stays carry over. */
START_TEST(test_reload_carries_over)
{
	struct tsgate_metrics *m = tsgate_metrics_new(tt_mem, "1", &start);
	TALLOC_CTX *gen1 = talloc_new(tt_mem);
	TALLOC_CTX *gen2 = talloc_new(tt_mem);
	struct tsgate_metrics_listener *l1, *l2, *gone;
	struct tsgate_metrics_route *r1, *r2;
	struct tsgate_metrics_conn *live;
	struct tsgate_conn_stats st = {0};
	char *text;

	l1 = tsgate_metrics_listener_new(gen1, m, "pub");
	r1 = tsgate_metrics_route_new(gen1, l1, "ldap");
	gone = tsgate_metrics_listener_new(gen1, m, "old");
	tsgate_metrics_conn_new(gen1, l1);
	live = tsgate_metrics_conn_new(tt_mem, gone);
	tsgate_metrics_drop(l1, TSGATE_METRICS_DROP_NO_ROUTE);
	tsgate_metrics_backend_failed(r1);

	/* the reload: new handles first, then the old generation goes,
	 * except a connection on the removed listener "old" */
	l2 = tsgate_metrics_listener_new(gen2, m, "pub");
	r2 = tsgate_metrics_route_new(gen2, l2, "ldap");
	tsgate_metrics_route_new(gen2, l2, "new");
	talloc_free(gen1);
	tsgate_metrics_backend_failed(r2);
	tsgate_metrics_conn_routed(tsgate_metrics_conn_new(gen2, l2), r2, &st);

	text = tsgate_metrics_render(tt_mem, m);
	ck_assert_ptr_nonnull(
	    strstr(text, "tsgate_connections_total{listener=\"pub\"} 2\n"));
	ck_assert_ptr_nonnull(
	    strstr(text, "tsgate_connections_active{listener=\"pub\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "tsgate_connection_drops_total{"
					   "listener=\"pub\",reason=\"no_"
					   "route\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "tsgate_backend_connect_failures_"
					   "total{listener=\"pub\",route="
					   "\"ldap\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(text, "route=\"new\""));
	/* "old" lives while its connection does */
	ck_assert_ptr_nonnull(
	    strstr(text, "tsgate_connections_active{listener=\"old\"} 1\n"));
	talloc_free(text);

	talloc_free(live);
	text = tsgate_metrics_render(tt_mem, m);
	ck_assert_ptr_null(strstr(text, "listener=\"old\""));
	talloc_free(text);

	/* every handle gone: no series left */
	talloc_free(gen2);
	text = tsgate_metrics_render(tt_mem, m);
	ck_assert_ptr_null(strstr(text, "listener="));
	talloc_free(text);
	talloc_free(m);
}
END_TEST

/* The registry may go first; handles and trackers then free their series. */
START_TEST(test_registry_freed_first)
{
	struct tsgate_metrics *m = tsgate_metrics_new(tt_mem, "1", NULL);
	TALLOC_CTX *hold = talloc_new(tt_mem);
	struct tsgate_metrics_listener *l;
	struct tsgate_metrics_route *r;
	struct tsgate_metrics_conn *c;
	struct tsgate_conn_stats st = {0};

	l = tsgate_metrics_listener_new(hold, m, "pub");
	r = tsgate_metrics_route_new(hold, l, "ldap");
	c = tsgate_metrics_conn_new(hold, l);
	tsgate_metrics_conn_routed(c, r, &st);
	talloc_free(m);
	/* still usable, counted nowhere */
	tsgate_metrics_drop(l, TSGATE_METRICS_DROP_OTHER);
	tsgate_metrics_backend_connected(r, 1);
	talloc_free(l); /* before the route and the tracker that use it */
	talloc_free(hold);
}
END_TEST

START_TEST(test_null_tracker)
{
	struct tsgate_metrics *m = tsgate_metrics_new(tt_mem, "1", NULL);
	struct tsgate_metrics_listener *l =
	    tsgate_metrics_listener_new(m, m, "pub");
	struct tsgate_metrics_route *r = tsgate_metrics_route_new(m, l, "x");
	struct tsgate_conn_stats st = {0};

	/* out of memory for a handle: calls on NULL are no-ops */
	tsgate_metrics_conn_routed(NULL, r, &st);
	tsgate_metrics_conn_routed(tsgate_metrics_conn_new(m, l), NULL, &st);
	ck_assert_ptr_null(tsgate_metrics_listener_new(m, NULL, "x"));
	ck_assert_ptr_null(tsgate_metrics_route_new(m, NULL, "x"));
	ck_assert_ptr_null(tsgate_metrics_conn_new(m, NULL));
	tsgate_metrics_drop(NULL, TSGATE_METRICS_DROP_OTHER);
	tsgate_metrics_handshake_failed(NULL, TSGATE_METRICS_HS_OTHER);
	tsgate_metrics_backend_connected(NULL, 1);
	tsgate_metrics_backend_failed(NULL);
	tsgate_metrics_set_state(NULL, TSGATE_METRICS_READY);
	tsgate_metrics_reload(NULL, true);
	ck_assert_ptr_null(tsgate_metrics_render(m, NULL));
	ck_assert_int_eq(tsgate_metrics_get_state(m), TSGATE_METRICS_STARTING);
	talloc_free(m);
}
END_TEST

START_TEST(test_reason_names)
{
	ck_assert_str_eq(
	    tsgate_metrics_drop_reason_name(TSGATE_METRICS_DROP_IDLE_TIMEOUT),
	    "idle_timeout");
	ck_assert_str_eq(tsgate_metrics_drop_reason_name(
			     TSGATE_METRICS_DROP_BACKEND_REFUSED),
			 "backend_refused");
	ck_assert_str_eq(
	    tsgate_metrics_drop_reason_name(TSGATE_METRICS_DROP_NUM), "other");
	ck_assert_str_eq(
	    tsgate_metrics_handshake_reason_name(TSGATE_METRICS_HS_CLOSED),
	    "closed");
	ck_assert_str_eq(tsgate_metrics_handshake_reason_name(99), "other");
}
END_TEST

START_TEST(test_errno_classes)
{
	enum tsgate_metrics_drop_reason why = TSGATE_METRICS_DROP_OTHER;

	ck_assert_int_eq(tsgate_metrics_handshake_reason_of(ETIMEDOUT),
			 TSGATE_METRICS_HS_TIMEOUT);
	ck_assert_int_eq(tsgate_metrics_handshake_reason_of(EACCES),
			 TSGATE_METRICS_HS_AUTH);
	ck_assert_int_eq(tsgate_metrics_handshake_reason_of(EKEYEXPIRED),
			 TSGATE_METRICS_HS_AUTH);
	ck_assert_int_eq(tsgate_metrics_handshake_reason_of(EPIPE),
			 TSGATE_METRICS_HS_CLOSED);
	ck_assert_int_eq(tsgate_metrics_handshake_reason_of(EPROTO),
			 TSGATE_METRICS_HS_PROTOCOL);
	ck_assert_int_eq(tsgate_metrics_handshake_reason_of(ENOMEM),
			 TSGATE_METRICS_HS_OTHER);

	ck_assert_int_eq(tsgate_metrics_backend_drop_reason(ETIMEDOUT),
			 TSGATE_METRICS_DROP_BACKEND_TIMEOUT);
	ck_assert_int_eq(tsgate_metrics_backend_drop_reason(ECONNREFUSED),
			 TSGATE_METRICS_DROP_BACKEND_REFUSED);
	ck_assert_int_eq(tsgate_metrics_backend_drop_reason(ENOENT),
			 TSGATE_METRICS_DROP_BACKEND_REFUSED);
	ck_assert_int_eq(tsgate_metrics_backend_drop_reason(EACCES),
			 TSGATE_METRICS_DROP_BACKEND_HANDSHAKE);

	ck_assert(tsgate_metrics_relay_drop_reason(EMSGSIZE, &why));
	ck_assert_int_eq(why, TSGATE_METRICS_DROP_PDU_TOO_LARGE);
	ck_assert(tsgate_metrics_relay_drop_reason(EPROTO, &why));
	ck_assert_int_eq(why, TSGATE_METRICS_DROP_PDU_MALFORMED);
	ck_assert(tsgate_metrics_relay_drop_reason(ETIMEDOUT, &why));
	ck_assert_int_eq(why, TSGATE_METRICS_DROP_IDLE_TIMEOUT);
	ck_assert(!tsgate_metrics_relay_drop_reason(ECONNRESET, &why));
}
END_TEST

/* Parse text as a complete head, in a buffer of exactly its size. */
static unsigned parse(const char *text,
		      struct tsgate_http_request *req,
		      char **pbuf)
{
	size_t len = strlen(text);
	char *buf = talloc_memdup(tt_mem, text, len);
	size_t end = 0;

	ck_assert_ptr_nonnull(buf);
	ck_assert_msg(tsgate_http_head_end((uint8_t *)buf, len, 0, &end),
		      "no head end in '%s'", text);
	ck_assert_uint_eq(end, len);
	*pbuf = buf;
	return tsgate_http_parse_head(buf, len, req);
}

START_TEST(test_parse_good)
{
	struct tsgate_http_request req;
	char *buf;

	ck_assert_uint_eq(
	    parse("GET /metrics?a=b HTTP/1.1\r\nHost: x\r\n\r\n", &req, &buf),
	    0);
	ck_assert_str_eq(req.method, "GET");
	ck_assert_str_eq(req.path, "/metrics");
	ck_assert_str_eq(req.query, "a=b");
	ck_assert_uint_eq(req.version_minor, 1);

	ck_assert_uint_eq(parse("HEAD / HTTP/1.0\r\n\r\n", &req, &buf), 0);
	ck_assert_str_eq(req.method, "HEAD");
	ck_assert_str_eq(req.path, "/");
	ck_assert_ptr_null(req.query);
	ck_assert_uint_eq(req.version_minor, 0);

	ck_assert_uint_eq(parse("GET /healthz HTTP/1.1\r\nhOsT:x\r\n"
				"Accept: */*\r\nX-Empty:\r\n"
				"User-Agent: a\tb \xc3\xa9\r\n\r\n",
				&req, &buf),
			  0);
}
END_TEST

START_TEST(test_parse_bad)
{
	static const struct {
		const char *head;
		unsigned status;
	} cases[] = {
	    {"\r\n\r\n", 400},
	    {"GET\r\n\r\n", 400},
	    {"GET /\r\n\r\n", 400},
	    {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	    {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
	    {" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	    {"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	    {"GET / HTTP/1.1\r\n\r\n", 400},
	    {"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400},
	    {"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400},
	    {"GET / HTTP/1.1\r\nHost: a\r\n\tfolded\r\n\r\n", 400},
	    {"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400},
	    {"GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", 400},
	    {"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400},
	    {"GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n", 400},
	    {"GET / HTTP/1.1\nHost: a\n\n", 400},
	    {"GET / HTTP/1.1\r\nHost: a\n\n", 400},
	    {"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	    {"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	    {"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	    {"GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400},
	    {"GET / http/1.1\r\nHost: a\r\n\r\n", 400},
	    {"GET / HTTP/1-1\r\nHost: a\r\n\r\n", 400},
	    {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
	    {"GET / HTTP/0.9\r\n\r\n", 505},
	    {"POST / HTTP/1.1\r\nHost: a\r\n\r\n", 405},
	    {"get / HTTP/1.1\r\nHost: a\r\n\r\n", 405},
	    {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 405},
	    /* malformed beats the method */
	    {"POST / HTTP/1.1\r\n\r\n", 400},
	};
	struct tsgate_http_request req;
	char *buf;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned st = parse(cases[i].head, &req, &buf);

		ck_assert_msg(st == cases[i].status, "case %zu: %u, not %u", i,
			      st, cases[i].status);
	}
}
END_TEST

/* The blank line is found wherever the reads cut the head. */
START_TEST(test_head_end_incremental)
{
	static const char *heads[] = {
	    "GET / HTTP/1.1\r\nHost: a\r\n\r\nbody",
	    "GET / HTTP/1.0\r\n\r\n",
	    "\r\n\r\n",
	    "GET / HTTP/1.0\n\nx",
	    "GET / HTTP/1.0\r\n\nx",
	    "GET / HTTP/1.0\r\r\n\r\n",
	};

	for (size_t h = 0; h < sizeof(heads) / sizeof(heads[0]); h++) {
		const uint8_t *b = (const uint8_t *)heads[h];
		size_t len = strlen(heads[h]);
		size_t whole = 0;

		ck_assert(tsgate_http_head_end(b, len, 0, &whole));
		for (size_t step = 1; step <= 4; step++) {
			size_t have = 0, scanned = 0, end = 0;
			bool found = false;

			while (!found && have < len) {
				have = have + step > len ? len : have + step;
				found = tsgate_http_head_end(b, have, scanned,
							     &end);
				scanned = have;
			}
			ck_assert(found);
			ck_assert_uint_eq(end, whole);
		}
	}
	ck_assert(!tsgate_http_head_end((const uint8_t *)"GET / HTTP/1.0\r\n",
					16, 0, &(size_t){0}));
}
END_TEST

/*
 * Random heads built from the pieces that matter to the parser, each in
 * a buffer of exactly its size (ASan/valgrind see any overread): the
 * answer is always one of the documented ones, and a request to serve
 * has a method and an origin-form path inside the buffer.
 */
START_TEST(test_parse_random)
{
	static const char *pieces[] = {
	    "GET",      "HEAD",     "POST", " ",        "/",    "?",
	    "\r\n",     "\r",       "\n",   ":",        "Host", "a",
	    "HTTP/1.1", "HTTP/1.0", "\t",   "\x7f",     "\xff", "*",
	    "HTTP/",    "1",        ".",    "\r\n\r\n",
	};
	unsigned seed = 12345;
	unsigned served = 0;
	char text[256];

	for (unsigned n = 0; n < 20000; n++) {
		struct tsgate_http_request req;
		size_t len = 0, end = 0;
		unsigned st, k;
		char *buf;

		k = 1 + rand_r(&seed) % 24;
		if (rand_r(&seed) % 2 == 0) {
			/* a plausible start, so the deeper code runs too */
			len = (size_t)snprintf(text, sizeof(text), "%s",
					       "GET / HTTP/1.1\r\n");
		}
		while (k-- > 0) {
			const char *p =
			    pieces[rand_r(&seed) %
				   (sizeof(pieces) / sizeof(pieces[0]))];

			if (len + strlen(p) + 4 >= sizeof(text)) {
				break;
			}
			memcpy(text + len, p, strlen(p));
			len += strlen(p);
		}
		if (rand_r(&seed) % 4 == 0) {
			text[rand_r(&seed) % len] = '\0';
		}
		memcpy(text + len, "\r\n\r\n", 4);
		len += 4;
		ck_assert(tsgate_http_head_end((uint8_t *)text, len, 0, &end));
		buf = talloc_memdup(tt_mem, text, end);
		st = tsgate_http_parse_head(buf, end, &req);
		ck_assert_msg(st == 0 || st == 400 || st == 405 || st == 505,
			      "status %u", st);
		if (st == 0) {
			served++;
			ck_assert(strcmp(req.method, "GET") == 0 ||
				  strcmp(req.method, "HEAD") == 0);
			ck_assert(req.path >= buf && req.path < buf + end);
			ck_assert_int_eq(req.path[0], '/');
		}
		talloc_free(buf);
	}
	ck_assert_uint_gt(served, 0);
}
END_TEST

/*
 * The server on socketpairs: requests delivered in pieces of every size,
 * pipelined, with a body, cut short; max_clients.
 */

struct pair_reader {
	int fd;
	char *buf;
	bool eof;
};

static void pair_readable(struct tevent_context *ev,
			  struct tevent_fd *fde,
			  uint16_t flags,
			  void *private_data)
{
	struct pair_reader *r = private_data;
	char tmp[4096];
	ssize_t n = read(r->fd, tmp, sizeof(tmp));

	if (n > 0) {
		r->buf = talloc_strndup_append_buffer(r->buf, tmp, (size_t)n);
		ck_assert_ptr_nonnull(r->buf);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	r->eof = true;
	talloc_free(fde);
}

static struct tsgate_http_server *pair_server(unsigned max_clients)
{
	char *dir = tt_mkdtemp(tt_mem);
	char *path = talloc_asprintf(tt_mem, "%s/m.sock", dir);
	struct tsgate_config_addr a = {
	    .kind = TSGATE_CONFIG_ADDR_UNIX, .text = path, .path = path};
	struct tsgate_http_params p = {.timeout_ms = 2000,
				       .max_clients = max_clients};
	struct tsgate_metrics *m = tsgate_metrics_new(tt_mem, "1", NULL);
	struct tsgate_http_server *s = NULL;

	ck_assert_int_eq(
	    tsgate_metrics_server_new(tt_mem, tt_ev, m, &a, &p, &s, NULL), 0);
	/* the socket file goes with the server; the directory now */
	tt_rmtree(dir);
	return s;
}

/* A socketpair whose one end the server serves; returns the other. */
static int pair_connect(struct tsgate_http_server *s, int *pret)
{
	struct tstream_context *st = NULL;
	int fd = tt_stream_raw_pair(tt_mem, &st);

	/* the test's end never blocks either */
	ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	*pret = tsgate_http_server_serve(s, st);
	return fd;
}

/* Send text in pieces of chunk bytes, half-close, read to EOF. */
static char *pair_exchange(struct tsgate_http_server *s,
			   const char *text,
			   size_t len,
			   size_t chunk,
			   bool finish)
{
	struct pair_reader *r = talloc_zero(tt_mem, struct pair_reader);
	bool never = false;
	size_t off = 0;
	int ret;

	r->fd = pair_connect(s, &ret);
	ck_assert_int_eq(ret, 0);
	r->buf = talloc_strdup(r, "");
	while (off < len) {
		size_t n = len - off < chunk ? len - off : chunk;

		ck_assert_int_eq(write(r->fd, text + off, n), (ssize_t)n);
		off += n;
		tt_loop_until(tt_ev, &never, 1);
	}
	if (finish) {
		shutdown(r->fd, SHUT_WR);
	}
	ck_assert_ptr_nonnull(
	    tevent_add_fd(tt_ev, r, r->fd, TEVENT_FD_READ, pair_readable, r));
	tt_wait(&r->eof, TT_DEADLINE_MS);
	close(r->fd);
	return r->buf;
}

START_TEST(test_server_pieces)
{
	static const char req[] = "GET /healthz?x=1 HTTP/1.1\r\n"
				  "Host: a\r\nAccept: */*\r\n\r\n";
	struct tsgate_http_server *s = pair_server(4);
	const char *ok = "HTTP/1.1 200 OK\r\n"
			 "Content-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: 3\r\n"
			 "Cache-Control: no-store\r\n"
			 "Connection: close\r\n"
			 "\r\n"
			 "ok\n";

	for (size_t chunk = 1; chunk <= sizeof(req); chunk += 6) {
		ck_assert_str_eq(
		    pair_exchange(s, req, sizeof(req) - 1, chunk, true), ok);
	}
	/* the client need not close first: the answer ends the exchange */
	ck_assert_str_eq(pair_exchange(s, req, sizeof(req) - 1, 1000, false),
			 ok);
	/* pipelined: one answer, then the connection closes */
	ck_assert_str_eq(pair_exchange(s,
				       "GET /healthz HTTP/1.0\r\n\r\n"
				       "GET /metrics HTTP/1.0\r\n\r\n",
				       50, 50, true),
			 ok);
	/* a body is not read, but drained */
	ck_assert_str_eq(pair_exchange(s,
				       "GET /healthz HTTP/1.0\r\n"
				       "Content-Length: 5\r\n\r\nhello",
				       48, 7, true),
			 ok);
	/* HEAD: the same head, no body */
	ck_assert_str_eq(
	    pair_exchange(s, "HEAD /healthz HTTP/1.0\r\n\r\n", 26, 26, true),
	    "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: 3\r\n"
	    "Cache-Control: no-store\r\n"
	    "Connection: close\r\n"
	    "\r\n");
	/* cut short: no answer */
	ck_assert_str_eq(
	    pair_exchange(s, "GET /healthz HTTP/1.0\r\n", 24, 5, true), "");
	ck_assert_str_eq(pair_exchange(s, "", 0, 1, true), "");
	ck_assert_uint_eq(tsgate_http_server_num_clients(s), 0);
	talloc_free(s);
}
END_TEST

START_TEST(test_server_errors)
{
	struct tsgate_http_server *s = pair_server(4);
	char *out;

	out = pair_exchange(s, "PUT / HTTP/1.0\r\n\r\n", 18, 3, true);
	ck_assert_str_eq(out, "HTTP/1.1 405 Method Not Allowed\r\n"
			      "Content-Type: text/plain; charset=utf-8\r\n"
			      "Content-Length: 19\r\n"
			      "Cache-Control: no-store\r\n"
			      "Allow: GET, HEAD\r\n"
			      "Connection: close\r\n"
			      "\r\n"
			      "Method Not Allowed\n");
	out = pair_exchange(s, "\x16\x03\x01\x00\x05hello\n\n", 12, 12, true);
	ck_assert_str_eq(out, "HTTP/1.1 400 Bad Request\r\n"
			      "Content-Type: text/plain; charset=utf-8\r\n"
			      "Content-Length: 12\r\n"
			      "Cache-Control: no-store\r\n"
			      "Connection: close\r\n"
			      "\r\n"
			      "Bad Request\n");
	out = pair_exchange(s, "GET /nope HTTP/1.0\r\n\r\n", 22, 22, true);
	ck_assert_ptr_nonnull(strstr(out, "HTTP/1.1 404 Not Found\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "\r\n\r\nnot found\n"));
	talloc_free(s);
}
END_TEST

/* An asynchronous handler that never answers: its client keeps a slot. */
static struct tevent_req *never_send(TALLOC_CTX *mem_ctx,
				     struct tevent_context *ev,
				     void *private_data,
				     const struct tsgate_http_request *req)
{
	bool *asked = private_data;
	int *state;

	*asked = true;
	return tevent_req_create(mem_ctx, &state, int);
}

static void never_recv(struct tevent_req *req,
		       TALLOC_CTX *mem_ctx,
		       struct tsgate_http_response *resp)
{
	ck_abort_msg("never answered");
}

/*
 * At max_clients a new client takes the slot of the oldest one still
 * sending its head (issue 13, defect 6: idle clients starved /healthz);
 * only when every slot is being answered is the new one refused.
 */
START_TEST(test_server_max_clients)
{
	struct tsgate_http_server *s = pair_server(1);
	static const char get[] = "GET /healthz HTTP/1.0\r\n\r\n";
	bool asked = false;
	int idle, busy, extra, ret;
	char buf[1];

	idle = pair_connect(s, &ret);
	ck_assert_int_eq(ret, 0);
	/* the idle client is evicted: its end is closed at once */
	busy = pair_connect(s, &ret);
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(read(idle, buf, 1), 0);
	close(idle);
	ck_assert_uint_eq(tsgate_http_server_num_clients(s), 1);
	ck_assert_uint_eq(tsgate_http_server_num_evicted(s), 1);

	/* a client being answered keeps its slot: the next one is refused */
	tsgate_http_server_set_async(s, never_send, never_recv, &asked);
	ck_assert_int_eq(write(busy, get, sizeof(get) - 1),
			 (ssize_t)sizeof(get) - 1);
	tt_wait(&asked, TT_DEADLINE_MS);
	extra = pair_connect(s, &ret);
	ck_assert_int_eq(ret, EAGAIN);
	ck_assert_int_eq(read(extra, buf, 1), 0);
	close(extra);
	ck_assert_uint_eq(tsgate_http_server_num_clients(s), 1);
	ck_assert_uint_eq(tsgate_http_server_num_evicted(s), 1);
	close(busy);
	talloc_free(s); /* with a client still open: no leak */
}
END_TEST

static struct tsgate_http_response call(struct tsgate_metrics *m,
					const char *path)
{
	struct tsgate_http_request req = {
	    .method = "GET", .path = path, .version_minor = 1};
	struct tsgate_http_response resp = {.status = 404};

	tsgate_metrics_http_handler(m, tt_mem, &req, &resp);
	return resp;
}

START_TEST(test_endpoints)
{
	struct tsgate_metrics *m = tsgate_metrics_new(tt_mem, "1", NULL);
	struct tsgate_http_response resp;

	resp = call(m, "/healthz");
	ck_assert_uint_eq(resp.status, 200);
	ck_assert_str_eq(resp.body, "ok\n");
	ck_assert_uint_eq(resp.body_len, 3);

	resp = call(m, "/readyz");
	ck_assert_uint_eq(resp.status, 503);
	ck_assert_str_eq(resp.body, "starting\n");
	tsgate_metrics_set_state(m, TSGATE_METRICS_READY);
	resp = call(m, "/readyz");
	ck_assert_uint_eq(resp.status, 200);
	ck_assert_str_eq(resp.body, "ready\n");
	tsgate_metrics_set_state(m, TSGATE_METRICS_DRAINING);
	resp = call(m, "/readyz");
	ck_assert_uint_eq(resp.status, 503);
	ck_assert_str_eq(resp.body, "draining\n");

	resp = call(m, "/metrics");
	ck_assert_uint_eq(resp.status, 200);
	ck_assert_str_eq(resp.content_type,
			 "text/plain; version=0.0.4; charset=utf-8");
	ck_assert_uint_eq(resp.body_len, strlen(resp.body));
	ck_assert_ptr_nonnull(strstr(resp.body, "tsgate_ready 0\n"));

	resp = call(m, "/metrics/");
	ck_assert_uint_eq(resp.status, 404);
	resp = call(m, "/");
	ck_assert_uint_eq(resp.status, 404);
	talloc_free(m);
}
END_TEST

/* A sample's value in text (the line that starts with series + " "). */
static double sample(const char *text, const char *series)
{
	const char *p = text;
	size_t n = strlen(series);

	while ((p = strstr(p, series)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ') {
			return strtod(p + n + 1, NULL);
		}
		p += n;
	}
	ck_abort_msg("no sample %s", series);
	return -1;
}

#define HS_TLS(le)                                                        \
	"tsgate_handshake_duration_seconds_bucket{listener=\"pub\",kind=" \
	"\"tls\",le=\"" le "\"}"

START_TEST(test_duration_histograms)
{
	struct tsgate_metrics *m = tsgate_metrics_new(tt_mem, "1", &start);
	struct tsgate_metrics_listener *l =
	    tsgate_metrics_listener_new(m, m, "pub");
	struct tsgate_metrics_listener *g =
	    tsgate_metrics_listener_new(m, m, "gss");
	struct tsgate_metrics_route *r = tsgate_metrics_route_new(m, l, "all");
	struct tsgate_metrics_conn *c;
	struct tsgate_conn_stats st = {0};
	char *text;

	/* a kind is rendered from the first scrape, before any handshake */
	tsgate_metrics_listener_kind(g, TSGATE_METRICS_KIND_GSSAPI);
	tsgate_metrics_handshake_done(l, TSGATE_METRICS_KIND_TLS, 1000);
	tsgate_metrics_handshake_done(l, TSGATE_METRICS_KIND_TLS, 1001);
	tsgate_metrics_handshake_done(l, TSGATE_METRICS_KIND_TLS, 40000000);
	tsgate_metrics_handshake_done(l, TSGATE_METRICS_KIND_NUM, 1); /* no */
	tsgate_metrics_handshake_done(NULL, TSGATE_METRICS_KIND_TLS, 1);

	/* unrouted: not in the route's histogram */
	c = tsgate_metrics_conn_new(m, l);
	tsgate_metrics_conn_end(c, TSGATE_METRICS_RESULT_OK);
	talloc_free(c);
	c = tsgate_metrics_conn_new(m, l);
	tsgate_metrics_conn_routed(c, r, &st);
	tsgate_metrics_conn_end(c, TSGATE_METRICS_RESULT_IDLE_TIMEOUT);
	tsgate_metrics_conn_end(c, TSGATE_METRICS_RESULT_OK); /* once */
	talloc_free(c);
	tsgate_metrics_conn_end(NULL, TSGATE_METRICS_RESULT_OK);

	text = tsgate_metrics_render(m, m);
	ck_assert_ptr_nonnull(text);
	ck_assert_double_eq(sample(text, HS_TLS("0.001")), 1);
	ck_assert_double_eq(sample(text, HS_TLS("0.0025")), 2);
	ck_assert_double_eq(sample(text, HS_TLS("30")), 2);
	ck_assert_double_eq(sample(text, HS_TLS("+Inf")), 3);
	ck_assert_double_eq(sample(text, "tsgate_handshake_duration_seconds_sum"
					 "{listener=\"pub\",kind=\"tls\"}"),
			    40.002001);
	ck_assert_double_eq(sample(text,
				   "tsgate_handshake_duration_seconds_count"
				   "{listener=\"gss\",kind=\"gssapi\"}"),
			    0);
	ck_assert_ptr_null(strstr(text, "listener=\"pub\",kind=\"gssapi\""));
	ck_assert_ptr_null(strstr(text, "listener=\"gss\",kind=\"tls\""));
	ck_assert_double_eq(
	    sample(text, "tsgate_connection_duration_seconds_count{listener="
			 "\"pub\",route=\"all\",result=\"idle_timeout\"}"),
	    1);
	ck_assert_double_eq(
	    sample(text, "tsgate_connection_duration_seconds_bucket{listener="
			 "\"pub\",route=\"all\",result=\"idle_timeout\","
			 "le=\"+Inf\"}"),
	    1);
	ck_assert_double_eq(
	    sample(text, "tsgate_connection_duration_seconds_count{listener="
			 "\"pub\",route=\"all\",result=\"ok\"}"),
	    0);
	talloc_free(m);
}
END_TEST

START_TEST(test_build_info)
{
	struct tsgate_metrics *m = tsgate_metrics_new(tt_mem, "1.2", &start);
	const struct tsgate_metrics_label libs[] = {{"gnutls", "3.7.9"},
						    {"krb5", "1\"x"}};
	const struct tsgate_metrics_label bad[] = {{"gnutls", "3"},
						   {"9lives", "x"}};
	char *text;

	ck_assert_int_eq(tsgate_metrics_set_build_info(m, libs, 2), 0);
	ck_assert_int_eq(tsgate_metrics_set_build_info(m, bad, 2), EINVAL);
	text = tsgate_metrics_render(m, m);
	ck_assert_ptr_nonnull(strstr(text,
				     "\ntsgate_build_info{version=\"1.2\","
				     "gnutls=\"3.7.9\",krb5=\"1\\\"x\"} "
				     "1\n"));
	talloc_free(m);
}
END_TEST

/* One number of a /proc/self/stat field (proc(5) numbering, 14..24). */
static unsigned long long stat_field(int field)
{
	char buf[1024], *p;
	FILE *f = fopen("/proc/self/stat", "r");
	size_t n;
	int i;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')') + 2; /* field 3 */
	for (i = 3; i < field; i++) {
		p = strchr(p, ' ') + 1;
	}
	return strtoull(p, NULL, 10);
}

static unsigned long long proc_btime(void)
{
	char line[256];
	unsigned long long v = 0;
	FILE *f = fopen("/proc/stat", "r");

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "btime %llu", &v) == 1) {
			break;
		}
	}
	fclose(f);
	ck_assert_uint_gt(v, 0);
	return v;
}

START_TEST(test_process_metrics)
{
	struct tsgate_metrics *m = tsgate_metrics_new(tt_mem, "1", NULL);
	long tck = sysconf(_SC_CLK_TCK);
	unsigned long long cpu0, cpu1;
	double fds, cpu, rss, max;
	char *text;
	int extra[3];

	cpu0 = stat_field(14) + stat_field(15);
	/* three more descriptors: the count follows */
	text = tsgate_metrics_render(m, m);
	fds = sample(text, "process_open_fds");
	for (int i = 0; i < 3; i++) {
		extra[i] = dup(0);
	}
	text = tsgate_metrics_render(m, m);
	cpu1 = stat_field(14) + stat_field(15);
	ck_assert_double_eq(sample(text, "process_open_fds"), fds + 3);
	for (int i = 0; i < 3; i++) {
		close(extra[i]);
	}
	cpu = sample(text, "process_cpu_seconds_total");
	ck_assert(cpu >= (double)cpu0 / tck - 0.005);
	ck_assert(cpu <= (double)cpu1 / tck + 0.005);
	max = sample(text, "process_max_fds");
	{
		struct rlimit rl;

		ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
		ck_assert_double_eq(max, (double)rl.rlim_cur);
	}
	rss = sample(text, "process_resident_memory_bytes");
	ck_assert(rss > 0);
	ck_assert_uint_eq((unsigned long long)rss %
			      (unsigned long long)sysconf(_SC_PAGESIZE),
			  0);
	ck_assert(sample(text, "process_virtual_memory_bytes") >= rss);
	/* boot time plus the start in clock ticks, as proc(5) says */
	ck_assert_double_eq_tol(
	    sample(text, "process_start_time_seconds"),
	    (double)proc_btime() + (double)stat_field(22) / (double)tck, 0.011);
	talloc_free(m);
}
END_TEST

START_TEST(test_merge_workers)
{
	const char *w0 = "# HELP a_total A.\n# TYPE a_total counter\n"
			 "a_total{l=\"x\"} 1\n"
			 "# HELP up Up.\n# TYPE up gauge\nup 1\n"
			 "# HELP h H.\n# TYPE h histogram\n"
			 "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\n"
			 "h_sum 0.5\nh_count 3\n";
	const char *w2 = "# HELP a_total A.\n# TYPE a_total counter\n"
			 "a_total{l=\"x\"} 5\na_total{l=\"y\"} 6\n"
			 "# HELP only2 Only in 2.\n# TYPE only2 gauge\n"
			 "only2 7\n"
			 "# HELP h H.\n# TYPE h histogram\n"
			 "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0\n"
			 "h_sum 0.000000\nh_count 0\n";
	const char *texts[3] = {w0, NULL, w2};
	char *out;

	out = tsgate_metrics_merge_workers(tt_mem, texts, 3);
	ck_assert_ptr_nonnull(out);
	ck_assert_str_eq(
	    out, "# HELP a_total A.\n# TYPE a_total counter\n"
		 "a_total{worker=\"0\",l=\"x\"} 1\n"
		 "a_total{worker=\"2\",l=\"x\"} 5\n"
		 "a_total{worker=\"2\",l=\"y\"} 6\n"
		 "# HELP up Up.\n# TYPE up gauge\nup{worker=\"0\"} 1\n"
		 "# HELP h H.\n# TYPE h histogram\n"
		 "h_bucket{worker=\"0\",le=\"1\"} 2\n"
		 "h_bucket{worker=\"0\",le=\"+Inf\"} 3\n"
		 "h_sum{worker=\"0\"} 0.5\nh_count{worker=\"0\"} 3\n"
		 "h_bucket{worker=\"2\",le=\"1\"} 0\n"
		 "h_bucket{worker=\"2\",le=\"+Inf\"} 0\n"
		 "h_sum{worker=\"2\"} 0.000000\nh_count{worker=\"2\"} 0\n"
		 "# HELP only2 Only in 2.\n# TYPE only2 gauge\n"
		 "only2{worker=\"2\"} 7\n"
		 "# HELP tsgate_worker_up 1 for a worker that answered this "
		 "scrape, 0 for one that did not (restarting).\n"
		 "# TYPE tsgate_worker_up gauge\n"
		 "tsgate_worker_up{worker=\"0\"} 1\n"
		 "tsgate_worker_up{worker=\"1\"} 0\n"
		 "tsgate_worker_up{worker=\"2\"} 1\n");
	talloc_free(out);
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc;

	tc = tcase_create("render");
	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_render_empty);
	tcase_add_test(tc, test_render_full);
	tcase_add_test(tc, test_conn_tracker_embedded);
	tcase_add_test(tc, test_label_escaping);
	tcase_add_test(tc, test_render_creds);
	tcase_add_test(tc, test_reason_names);
	tcase_add_test(tc, test_errno_classes);
	tcase_add_test(tc, test_merge_workers);
	tcase_add_test(tc, test_duration_histograms);
	tcase_add_test(tc, test_build_info);
	tcase_add_test(tc, test_process_metrics);
	suite_add_tcase(s, tc);

	tc = tcase_create("lifecycle");
	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_reload_carries_over);
	tcase_add_test(tc, test_registry_freed_first);
	tcase_add_test(tc, test_null_tracker);
	suite_add_tcase(s, tc);

	tc = tcase_create("http_parse");
	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_parse_good);
	tcase_add_test(tc, test_parse_bad);
	tcase_add_test(tc, test_head_end_incremental);
	tcase_add_test(tc, test_parse_random);
	suite_add_tcase(s, tc);

	tc = tcase_create("http_server");
	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_server_pieces);
	tcase_add_test(tc, test_server_errors);
	tcase_add_test(tc, test_server_max_clients);
	suite_add_tcase(s, tc);

	tc = tcase_create("endpoints");
	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_endpoints);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tt_run_suite(metrics_suite());
}
