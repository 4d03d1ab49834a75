/*
 * The tsgate daemon: listeners, one object per connection, the run loop.
 *
 * A connection goes through: accept → tunnel (tls, gssapi or plain,
 * bounded by handshake_timeout) → route → backend connect → identity
 * hand-off → relay → one log line → freed. Every resource of a connection
 * is a talloc child of its struct tsgate_conn, so freeing it is the only
 * teardown.
 */
#include "tsgate_dlist.h"
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <grp.h>
#include <unistd.h>

#include <tsocket.h>

#include "backend.h"
#include "config_tunnels.h"
#include "framing.h"
#include "health.h"
#include "http_server.h"
#include "identity.h"
#include "log.h"
#include "metrics.h"
#include "metrics_workers.h"
#include "relay.h"
#include "route.h"
#include "source_limit.h"
#include "tstream_gssapi.h"
#include "tstream_tls.h"

/* Connections accepted per readable event before going back to the loop. */
#define TSGATE_ACCEPT_BATCH 32
/* Out of file descriptors: stop accepting for this long, don't spin. */
#define TSGATE_ACCEPT_PAUSE_MS 100
/* At most one log line per this long about refusals at each limit. */
#define TSGATE_REFUSAL_LOG_INTERVAL_MS 1000

#ifndef TSGATE_VERSION
#define TSGATE_VERSION "0.1.0"
#endif

struct tsgate_conn;
struct tsgate_listener;

/* The refusals at one limit since the last one that was logged. */
struct tsgate_refusal_log {
	struct timeval last; /* the last refusal logged */
	uint64_t suppressed; /* refusals since, not logged */
};

struct tsgate_daemon {
	struct tevent_context *ev;
	struct tsgate_config *cfg;
	const char *config_path;
	struct tsgate_log *log;
	struct tsgate_metrics *metrics;
	struct tsgate_http_server *metrics_server;
	struct tsgate_metrics_workers *metrics_workers; /* workers: N > 1 */
	struct tsgate_listener *listeners;              /* accepting */
	struct tsgate_listener *retired; /* replaced, serving old conns */
	struct tsgate_conn *conns;
	/* finished, to be freed by conn_free_im (one for all of them) */
	struct tsgate_conn *finished_conns;
	struct tevent_immediate *conn_free_im;
	/* the relays' idle timeouts: one timer for all connections */
	struct tsgate_relay_sweeper *idle_sweeper;
	uint32_t num_conns;
	/* limits.max_connections_per_source: this worker's count per source */
	struct tsgate_source_limit *sources;
	/* refusals at a limit, logged at most once per interval each */
	struct tsgate_refusal_log source_refusals;
	struct tsgate_refusal_log max_conns_refusals;
	uint64_t next_conn_id;
	unsigned worker;      /* 0 .. num_workers-1 */
	unsigned num_workers; /* workers: N (1: no supervisor) */
	bool draining;
	bool stop;
	int exit_code;
	struct tevent_timer *grace_timer;
};

struct tsgate_listener {
	struct tsgate_listener *prev, *next;
	struct tsgate_daemon *daemon;
	const struct tsgate_config_listener *cfg;
	struct tsgate_config *cfg_tree; /* a talloc reference: kept alive */
	bool retired;
	struct tevent_immediate *free_im;
	int fd;
	struct tevent_fd *fde;
	struct tevent_timer *accept_pause;
	char *unix_path; /* unlinked by the destructor when still ours */
	dev_t unix_dev;
	ino_t unix_ino;
	struct tstream_tls_params *tls;
	struct tstream_gssapi_params *gssapi;
	struct tsgate_backend **backends; /* one per route */
	struct tsgate_metrics_listener *metrics;
	struct tsgate_metrics_route **route_metrics; /* one per route */
	uint32_t num_conns;
};

/*
 * What a connection needs only until its relay starts: freed then, so an
 * idle connection does not keep it.
 */
struct tsgate_conn_setup {
	struct tsocket_address *remote;
	struct tsocket_address *local;
	struct tsgate_backend *route_backend;
	struct timeval backend_start;
	uint8_t *handoff;
	struct iovec handoff_iov;
};

struct tsgate_conn {
	struct tsgate_conn *prev, *next;
	struct tsgate_daemon *daemon;
	struct tsgate_listener *listener;
	uint64_t id;
	struct timeval start;
	struct tsgate_conn_setup *setup; /* NULL once the relay started */
	char *peer;
	struct tstream_context *client;
	struct tstream_context *backend;
	const struct tsgate_config_route *route;
	struct tsgate_metrics_route *route_metrics;
	struct tsgate_metrics_conn *metrics;
	struct tsgate_peer_info info;
	char *local_name;
	struct tsgate_conn_stats stats;
	bool finished; /* on d->finished_conns instead of d->conns */
	bool dropped;  /* counted in tsgate_connection_drops_total */
	bool quiet;    /* no log line of its own (a rate-limited one instead) */
	/* a slot of its source's limit, given back when conn is freed */
	struct tsgate_source_slot *source_slot;
};

static uint32_t ms32(uint64_t ms)
{
	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

/*
 * Connections
 */

/*
 * Frees the finished connections. One immediate of the daemon serves all
 * of them: an immediate per connection, made at accept and kept for the
 * connection's life, cost ~0.2 KiB per idle connection.
 */
static void tsgate_conns_free_finished(struct tevent_context *ev,
				       struct tevent_immediate *im,
				       void *private_data)
{
	struct tsgate_daemon *d =
	    talloc_get_type_abort(private_data, struct tsgate_daemon);

	(void)ev;
	(void)im;
	while (d->finished_conns != NULL) {
		talloc_free(d->finished_conns);
	}
}

static void tsgate_listener_unlink(struct tsgate_listener **list,
				   struct tsgate_listener *l)
{
	TSG_DLIST_REMOVE(*list, l);
}

static void tsgate_listener_push(struct tsgate_listener **list,
				 struct tsgate_listener *l)
{
	TSG_DLIST_ADD(*list, l);
}

static void tsgate_listener_free_now(struct tevent_context *ev,
				     struct tevent_immediate *im,
				     void *private_data)
{
	struct tsgate_listener *l =
	    talloc_get_type_abort(private_data, struct tsgate_listener);

	(void)ev;
	(void)im;
	if (l->num_conns == 0) {
		tsgate_listener_unlink(&l->daemon->retired, l);
		talloc_free(l);
	}
}

static int tsgate_conn_destructor(struct tsgate_conn *conn)
{
	struct tsgate_daemon *d = conn->daemon;

	if (conn->finished) {
		TSG_DLIST_REMOVE(d->finished_conns, conn);
	} else {
		TSG_DLIST_REMOVE(d->conns, conn);
	}
	d->num_conns--;
	conn->listener->num_conns--;
	if (conn->listener->retired && conn->listener->num_conns == 0) {
		/* not from inside this free: the tracker still uses it */
		tevent_schedule_immediate(conn->listener->free_im, d->ev,
					  tsgate_listener_free_now,
					  conn->listener);
	}
	if (d->draining && d->num_conns == 0) {
		d->stop = true;
	}
	return 0;
}

/*
 * Which TLS side ended without close_notify, if any: a crashed peer or a
 * FIN injected on the path cut what it sent short, which the relay, off
 * strict_end, passed on as a clean end.
 */
static const char *tsgate_conn_truncated(const struct tsgate_conn *conn)
{
	bool client =
	    conn->client != NULL && tstream_tls_truncated(conn->client);
	bool backend =
	    conn->backend != NULL && tstream_tls_truncated(conn->backend);

	if (client && backend) {
		return "client,backend";
	}
	return client ? "client" : backend ? "backend" : NULL;
}

/*
 * The one log line of a connection, then free it (from an immediate
 * event, so no stream is freed under its own callback).
 */
static void tsgate_conn_finish(struct tsgate_conn *conn,
			       int err,
			       const char *reason)
{
	struct tsgate_daemon *d = conn->daemon;
	struct tsgate_log_kv *kv;
	struct timeval now = tevent_timeval_current();
	int64_t elapsed_ms;
	uint64_t ms;
	const char *id;

	if (conn->finished) {
		return;
	}
	conn->finished = true;
	TSG_DLIST_REMOVE(d->conns, conn);
	TSG_DLIST_ADD(d->finished_conns, conn);
	if (conn->quiet) {
		tevent_schedule_immediate(d->conn_free_im, d->ev,
					  tsgate_conns_free_finished, d);
		return;
	}
	/* the gateway's own reasons that no caller counted */
	if (!conn->dropped && err == ESHUTDOWN) {
		tsgate_metrics_drop(conn->listener->metrics,
				    TSGATE_METRICS_DROP_SHUTDOWN);
	} else if (!conn->dropped && err == ENOMEM) {
		tsgate_metrics_drop(conn->listener->metrics,
				    TSGATE_METRICS_DROP_OTHER);
	}

	elapsed_ms =
	    ((int64_t)now.tv_sec - (int64_t)conn->start.tv_sec) * 1000 +
	    ((int64_t)now.tv_usec - (int64_t)conn->start.tv_usec) / 1000;
	ms = elapsed_ms > 0 ? (uint64_t)elapsed_ms : 0;
	kv = tsgate_log_kv_new(conn);
	tsgate_log_kv_u64(kv, "id", conn->id);
	tsgate_log_kv_str(kv, "listener", conn->listener->cfg->name);
	tsgate_log_kv_str(kv, "route",
			  conn->route != NULL ? conn->route->name : NULL);
	tsgate_log_kv_str(kv, "peer", conn->peer);
	id = tsgate_identity_summary(&conn->info);
	tsgate_log_kv_str(kv, "identity", id);
	tsgate_log_kv_str(kv, "cert_name_error", conn->info.client_name_error);
	tsgate_log_kv_str(kv, "local_name", conn->info.local_name);
	tsgate_log_kv_str(kv, "tls_version", conn->info.tls_version);
	tsgate_log_kv_str(kv, "tls_cipher", conn->info.tls_cipher);
	tsgate_log_kv_str(kv, "sni", conn->info.sni);
	tsgate_log_kv_str(kv, "alpn", conn->info.alpn);
	tsgate_log_kv_str(kv, "gss_mech", conn->info.mech);
	tsgate_log_kv_str(kv, "tls_truncated", tsgate_conn_truncated(conn));
	if (conn->route != NULL) {
		tsgate_log_kv_str(kv, "backend", conn->route->backend.text);
	}
	tsgate_log_kv_u64(kv, "bytes_in", conn->stats.bytes_up);
	tsgate_log_kv_u64(kv, "bytes_out", conn->stats.bytes_down);
	tsgate_log_kv_u64(kv, "pdus_in", conn->stats.pdus_up);
	tsgate_log_kv_u64(kv, "pdus_out", conn->stats.pdus_down);
	tsgate_log_kv_u64(kv, "duration_ms", ms);
	tsgate_log_kv_str(kv, "result", err == 0 ? "ok" : "error");
	if (err != 0) {
		tsgate_log_kv_str(kv, "reason", reason);
		tsgate_log_kv_str(kv, "error", strerror(err));
	}
	tsgate_log_kv_emit(d->log,
			   err == 0 ? TSGATE_CONFIG_LOG_INFO
				    : TSGATE_CONFIG_LOG_WARNING,
			   "conn", kv);
	talloc_free(kv);

	tevent_schedule_immediate(d->conn_free_im, d->ev,
				  tsgate_conns_free_finished, d);
}

static void tsgate_conn_drop(struct tsgate_conn *conn,
			     enum tsgate_metrics_drop_reason why)
{
	conn->dropped = true;
	tsgate_metrics_drop(conn->listener->metrics, why);
}

/* A debug line about one step of a connection (nothing when disabled). */
static void tsgate_conn_debug(struct tsgate_conn *conn,
			      const char *step,
			      const char *detail)
{
	struct tsgate_log_kv *kv;

	if (!tsgate_log_enabled(conn->daemon->log, TSGATE_CONFIG_LOG_DEBUG)) {
		return;
	}
	kv = tsgate_log_kv_new(conn);
	tsgate_log_kv_u64(kv, "id", conn->id);
	tsgate_log_kv_str(kv, "listener", conn->listener->cfg->name);
	tsgate_log_kv_str(kv, "step", step);
	tsgate_log_kv_str(kv, "peer", conn->peer);
	tsgate_log_kv_str(kv, "detail", detail);
	tsgate_log_kv_emit(conn->daemon->log, TSGATE_CONFIG_LOG_DEBUG,
			   "conn_step", kv);
	talloc_free(kv);
}

static uint64_t elapsed_usec(const struct timeval *since)
{
	struct timeval now = tevent_timeval_current();
	int64_t us = ((int64_t)now.tv_sec - (int64_t)since->tv_sec) * 1000000 +
		     ((int64_t)now.tv_usec - (int64_t)since->tv_usec);

	return us > 0 ? (uint64_t)us : 0;
}

static void tsgate_conn_tunnel_done(struct tevent_req *subreq);
static void tsgate_conn_routed(struct tsgate_conn *conn);
static void tsgate_conn_backend_done(struct tevent_req *subreq);
static void tsgate_conn_handoff_done(struct tevent_req *subreq);
static void tsgate_conn_relay(struct tsgate_conn *conn);
static void tsgate_conn_relay_done(struct tsgate_relay *relay,
				   int err,
				   void *private_data);

/*
 * A refusal at a limit is logged at most once per
 * TSGATE_REFUSAL_LOG_INTERVAL_MS, so a client that keeps reconnecting
 * cannot flood the log; the line it does get says how many refusals went
 * unlogged before it (the metrics count every one). Returns the log
 * fields to fill and emit with tsgate_refusal_log_emit(), or NULL when
 * this refusal is not logged.
 */
static struct tsgate_log_kv *tsgate_refusal_log_start(
    struct tsgate_conn *conn, struct tsgate_refusal_log *r)
{
	struct timeval now = tevent_timeval_current();
	struct tsgate_log_kv *kv;
	int64_t ms;

	ms = ((int64_t)now.tv_sec - (int64_t)r->last.tv_sec) * 1000 +
	     ((int64_t)now.tv_usec - (int64_t)r->last.tv_usec) / 1000;
	if (r->last.tv_sec != 0 && ms >= 0 &&
	    ms < TSGATE_REFUSAL_LOG_INTERVAL_MS) {
		r->suppressed++;
		return NULL;
	}
	kv = tsgate_log_kv_new(conn);
	tsgate_log_kv_u64(kv, "id", conn->id);
	tsgate_log_kv_str(kv, "listener", conn->listener->cfg->name);
	tsgate_log_kv_str(kv, "peer", conn->peer);
	tsgate_log_kv_u64(kv, "suppressed", r->suppressed);
	r->last = now;
	r->suppressed = 0;
	return kv;
}

static void tsgate_refusal_log_emit(struct tsgate_conn *conn,
				    struct tsgate_log_kv *kv,
				    const char *reason)
{
	tsgate_log_kv_str(kv, "reason", reason);
	tsgate_log_kv_emit(conn->daemon->log, TSGATE_CONFIG_LOG_WARNING,
			   "limit", kv);
	talloc_free(kv);
}

static void tsgate_source_refused(struct tsgate_conn *conn,
				  const struct tsgate_source_key *key,
				  uint32_t limit)
{
	struct tsgate_log_kv *kv =
	    tsgate_refusal_log_start(conn, &conn->daemon->source_refusals);

	if (kv == NULL) {
		return;
	}
	tsgate_log_kv_str(kv, "source", tsgate_source_key_string(kv, key));
	tsgate_log_kv_u64(kv, "max_connections_per_source", limit);
	tsgate_refusal_log_emit(conn, kv,
				"refused: max_connections_per_source reached");
}

/* A connection over max_connections (the daemon's or the listener's). */
static void tsgate_max_conns_refused(struct tsgate_conn *conn)
{
	struct tsgate_daemon *d = conn->daemon;
	struct tsgate_log_kv *kv =
	    tsgate_refusal_log_start(conn, &d->max_conns_refusals);

	tsgate_conn_drop(conn, TSGATE_METRICS_DROP_MAX_CONNECTIONS);
	if (kv != NULL) {
		tsgate_log_kv_u64(kv, "max_connections",
				  d->cfg->limits.max_connections);
		if (conn->listener->cfg->max_connections > 0) {
			tsgate_log_kv_u64(kv, "listener_max_connections",
					  conn->listener->cfg->max_connections);
		}
		tsgate_refusal_log_emit(conn, kv,
					"refused: max_connections reached");
	}
	conn->quiet = true;
	tsgate_conn_finish(conn, EAGAIN, "refused: max_connections reached");
}

/*
 * Take a slot of the client's source: false when it has none left (the
 * connection is finished then). Unix-socket clients have no source.
 */
static bool tsgate_conn_take_source(struct tsgate_conn *conn,
				    const struct sockaddr *sa,
				    socklen_t len)
{
	struct tsgate_daemon *d = conn->daemon;
	const struct tsgate_config_limits *lim = &d->cfg->limits;
	struct tsgate_source_key key;
	int ret;

	if (lim->max_connections_per_source == 0 ||
	    !tsgate_source_key_from_sockaddr(
		sa, len, lim->per_source_ipv6_prefix, &key)) {
		return true;
	}
	ret = tsgate_source_limit_take(conn, d->sources, &key,
				       lim->max_connections_per_source,
				       &conn->source_slot);
	if (ret == EAGAIN) {
		tsgate_conn_drop(
		    conn, TSGATE_METRICS_DROP_MAX_CONNECTIONS_PER_SOURCE);
		tsgate_source_refused(conn, &key,
				      lim->max_connections_per_source);
		conn->quiet = true;
		tsgate_conn_finish(
		    conn, EAGAIN,
		    "refused: max_connections_per_source reached");
		return false;
	}
	if (ret != 0) {
		tsgate_conn_finish(conn, ret, "out of memory");
		return false;
	}
	return true;
}

static void tsgate_conn_start(struct tsgate_listener *l, int fd)
{
	struct tsgate_daemon *d = l->daemon;
	const struct tsgate_config_limits *lim = &d->cfg->limits;
	struct tsgate_conn *conn;
	struct sockaddr_storage ss, peer;
	socklen_t sslen, peerlen = 0;
	struct tevent_req *subreq = NULL;
	struct timeval end;
	int ret;

	conn = talloc_zero(d, struct tsgate_conn);
	if (conn == NULL) {
		struct tsgate_log_kv *kv = tsgate_log_kv_new(d);

		/*
		 * No conn to finish, but the refused client still gets its
		 * line (with no id: none was given out).
		 */
		close(fd);
		tsgate_log_kv_str(kv, "listener", l->cfg->name);
		tsgate_log_kv_str(kv, "result", "error");
		tsgate_log_kv_str(kv, "reason", "out of memory");
		tsgate_log_kv_str(kv, "error", strerror(ENOMEM));
		tsgate_log_kv_emit(d->log, TSGATE_CONFIG_LOG_WARNING, "conn",
				   kv);
		talloc_free(kv);
		return;
	}
	conn->daemon = d;
	conn->listener = l;
	conn->id = ++d->next_conn_id;
	conn->start = tevent_timeval_current();
	TSG_DLIST_ADD(d->conns, conn);
	d->num_conns++;
	l->num_conns++;
	talloc_set_destructor(conn, tsgate_conn_destructor);
	/* counted from accept; freeing the tracker with conn uncounts it */
	conn->metrics = tsgate_metrics_conn_new(conn, l->metrics);
	conn->setup = talloc_zero(conn, struct tsgate_conn_setup);
	if (conn->setup == NULL) {
		close(fd);
		tsgate_conn_finish(conn, ENOMEM, "out of memory");
		return;
	}

	ret = tstream_bsd_existing_socket(conn, fd, &conn->client);
	if (ret != 0) {
		int err = errno != 0 ? errno : ENOMEM;

		close(fd);
		tsgate_conn_drop(conn, TSGATE_METRICS_DROP_OTHER);
		tsgate_conn_finish(conn, err, "wrapping the socket failed");
		return;
	}

	peerlen = sizeof(peer);
	if (getpeername(fd, (struct sockaddr *)&peer, &peerlen) == 0) {
		(void)tsocket_address_bsd_from_sockaddr(
		    conn->setup, (struct sockaddr *)&peer, peerlen,
		    &conn->setup->remote);
	} else {
		peerlen = 0;
		peer.ss_family = AF_UNSPEC;
	}
	sslen = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0) {
		(void)tsocket_address_bsd_from_sockaddr(
		    conn->setup, (struct sockaddr *)&ss, sslen,
		    &conn->setup->local);
	}
	if (conn->setup->remote != NULL) {
		conn->peer = tsocket_address_string(conn->setup->remote, conn);
	}
	conn->info.remote = conn->setup->remote;
	conn->info.local = conn->setup->local;
	tsgate_conn_debug(conn, "accepted", NULL);

	if (d->draining) {
		tsgate_conn_finish(conn, ESHUTDOWN, "shutting down");
		return;
	}
	if ((lim->max_connections > 0 && d->num_conns > lim->max_connections) ||
	    (l->cfg->max_connections > 0 &&
	     l->num_conns > l->cfg->max_connections)) {
		tsgate_max_conns_refused(conn);
		return;
	}
	if (!tsgate_conn_take_source(conn, (struct sockaddr *)&peer, peerlen)) {
		return;
	}

	switch (l->cfg->accept) {
	case TSGATE_CONFIG_ACCEPT_PLAIN:
		tsgate_conn_routed(conn);
		return;
	case TSGATE_CONFIG_ACCEPT_TLS:
		/* tstream_tls takes the plain stream over */
		subreq =
		    tstream_tls_accept_send(conn, d->ev, conn->client, l->tls);
		conn->client = NULL;
		break;
	case TSGATE_CONFIG_ACCEPT_GSSAPI:
		subreq = tstream_gssapi_accept_send(conn, d->ev, conn->client,
						    l->gssapi);
		break;
	}
	if (subreq == NULL) {
		tsgate_conn_finish(conn, ENOMEM, "out of memory");
		return;
	}
	if (lim->handshake_timeout_ms > 0) {
		end = tevent_timeval_current_ofs(
		    lim->handshake_timeout_ms / 1000,
		    (lim->handshake_timeout_ms % 1000) * 1000);
		if (!tevent_req_set_endtime(subreq, d->ev, end)) {
			tsgate_conn_finish(conn, ENOMEM, "out of memory");
			return;
		}
	}
	tevent_req_set_callback(subreq, tsgate_conn_tunnel_done, conn);
}

static void tsgate_conn_tls_info(struct tsgate_conn *conn)
{
	struct tstream_context *s = conn->client;
	struct tsgate_peer_info *info = &conn->info;
	enum tstream_tls_peer_result pr;
	const char *const *sans;
	size_t n = 0;

	info->tls = true;
	info->tls_version = tstream_tls_version(s);
	info->tls_cipher = tstream_tls_cipher_suite(s);
	info->sni = tstream_tls_sni(s);
	info->alpn = tstream_tls_alpn(s);
	pr = tstream_tls_peer_verify_result(s, NULL);
	info->client_cert = pr != TSTREAM_TLS_PEER_NO_CERT;
	info->cert_verified = pr == TSTREAM_TLS_PEER_VALID;
	info->client_subject = tstream_tls_peer_subject(s);
	info->client_cn = tstream_tls_peer_common_name(s);
	info->client_name_error = tstream_tls_peer_name_error(s);
	sans = tstream_tls_peer_sans(s);
	while (sans != NULL && sans[n] != NULL) {
		n++;
	}
	info->client_sans = sans;
	info->num_client_sans = n;
}

static void tsgate_conn_gssapi_info(struct tsgate_conn *conn)
{
	struct tstream_context *s = conn->client;
	struct tsgate_peer_info *info = &conn->info;

	info->gssapi = true;
	info->principal = tstream_gssapi_client_principal(s);
	info->mech = tstream_gssapi_mech_name(s);
	conn->local_name = tstream_gssapi_client_localname(s, conn);
	info->local_name = conn->local_name;
	info->export_name =
	    tstream_gssapi_client_exported_name(s, &info->export_name_len);
}

static void tsgate_conn_tunnel_done(struct tevent_req *subreq)
{
	struct tsgate_conn *conn =
	    tevent_req_callback_data(subreq, struct tsgate_conn);
	struct tsgate_listener *l = conn->listener;
	char why_buf[512];
	char *reason = NULL;
	int ret = -1, err = EINVAL;
	const char *why;

	switch (l->cfg->accept) {
	case TSGATE_CONFIG_ACCEPT_TLS:
		ret = tstream_tls_accept_recv(subreq, &err, conn, &conn->client,
					      &reason);
		break;
	case TSGATE_CONFIG_ACCEPT_GSSAPI: {
		struct tstream_context *gss = NULL;

		ret = tstream_gssapi_accept_recv(subreq, &err, conn, &gss,
						 &reason);
		if (ret == 0) {
			conn->client = gss;
		}
		break;
	}
	case TSGATE_CONFIG_ACCEPT_PLAIN:
		break;
	}
	TALLOC_FREE(subreq);
	if (ret != 0) {
		/*
		 * On the stack: the conn line copies it, and a reason must
		 * not be lost to a failed allocation (issue 13).
		 */
		snprintf(why_buf, sizeof(why_buf), "%s handshake failed%s%s",
			 tsgate_config_accept_name(l->cfg->accept),
			 reason != NULL ? ": " : "",
			 reason != NULL ? reason : "");
		why = why_buf;
		if (err == ETIMEDOUT) {
			why = "handshake timeout";
		}
		tsgate_metrics_handshake_failed(
		    l->metrics, tsgate_metrics_handshake_reason_of(err));
		tsgate_conn_drop(conn,
				 err == ETIMEDOUT
				     ? TSGATE_METRICS_DROP_HANDSHAKE_TIMEOUT
				     : TSGATE_METRICS_DROP_HANDSHAKE_FAILED);
		tsgate_conn_finish(conn, err, why);
		return;
	}
	if (l->cfg->accept == TSGATE_CONFIG_ACCEPT_TLS) {
		tsgate_conn_tls_info(conn);
	} else {
		tsgate_conn_gssapi_info(conn);
	}
	tsgate_conn_debug(conn, "handshake done",
			  tsgate_identity_summary(&conn->info));
	tsgate_conn_routed(conn);
}

static void tsgate_conn_routed(struct tsgate_conn *conn)
{
	struct tsgate_listener *l = conn->listener;
	struct tevent_req *subreq;
	size_t i;

	conn->route = tsgate_route_select(l->cfg, &conn->info);
	if (conn->route == NULL) {
		tsgate_conn_drop(conn, TSGATE_METRICS_DROP_NO_ROUTE);
		/* say why a certificate that looked right matched nothing */
		tsgate_conn_finish(
		    conn, EACCES,
		    conn->info.client_name_error == NULL
			? "no route"
			: talloc_asprintf(conn,
					  "no route: client certificate "
					  "names rejected: %s",
					  conn->info.client_name_error));
		return;
	}
	for (i = 0; i < l->cfg->num_routes; i++) {
		if (&l->cfg->routes[i] == conn->route) {
			conn->setup->route_backend = l->backends[i];
			conn->route_metrics = l->route_metrics[i];
		}
	}
	tsgate_metrics_conn_routed(conn->metrics, conn->route_metrics,
				   &conn->stats);
	tsgate_conn_debug(conn, "routed", conn->route->name);
	conn->setup->backend_start = tevent_timeval_current();
	subreq = tsgate_backend_connect_send(conn, conn->daemon->ev,
					     conn->setup->route_backend);
	if (subreq == NULL) {
		tsgate_conn_finish(conn, ENOMEM, "out of memory");
		return;
	}
	tevent_req_set_callback(subreq, tsgate_conn_backend_done, conn);
}

static void tsgate_conn_backend_done(struct tevent_req *subreq)
{
	struct tsgate_conn *conn =
	    tevent_req_callback_data(subreq, struct tsgate_conn);
	char *reason = NULL;
	size_t len = 0;
	int ret, err = 0;

	ret = tsgate_backend_connect_recv(subreq, &err, conn, &conn->backend,
					  &reason);
	TALLOC_FREE(subreq);
	if (ret != 0) {
		const char *why;
		char why_buf[512];

		tsgate_metrics_backend_failed(conn->route_metrics);
		tsgate_conn_drop(conn, tsgate_metrics_backend_drop_reason(err));

		if (err == ECONNREFUSED || err == ENOENT) {
			why = "backend refused";
		} else if (err == ETIMEDOUT) {
			why = "backend connect timeout";
		} else {
			why = "backend connect failed";
		}
		if (reason != NULL) {
			/* on the stack: see tsgate_conn_tunnel_done() */
			snprintf(why_buf, sizeof(why_buf), "%s: %s", why,
				 reason);
			why = why_buf;
		}
		tsgate_conn_finish(conn, err, why);
		return;
	}

	tsgate_metrics_backend_connected(
	    conn->route_metrics, elapsed_usec(&conn->setup->backend_start));
	tsgate_conn_debug(conn, "backend connected", conn->route->backend.text);

	switch (conn->route->identity) {
	case TSGATE_CONFIG_IDENTITY_NONE:
		tsgate_conn_relay(conn);
		return;
	case TSGATE_CONFIG_IDENTITY_PROXY_V2:
		err = tsgate_identity_proxy_v2(conn->setup, &conn->info,
					       &conn->setup->handoff, &len);
		break;
	case TSGATE_CONFIG_IDENTITY_KNC:
		err = tsgate_identity_knc(conn->setup, &conn->info,
					  &conn->setup->handoff, &len);
		break;
	}
	if (err != 0) {
		tsgate_conn_drop(conn, TSGATE_METRICS_DROP_OTHER);
		tsgate_conn_finish(conn, err, "identity hand-off refused");
		return;
	}
	conn->setup->handoff_iov.iov_base = conn->setup->handoff;
	conn->setup->handoff_iov.iov_len = len;
	subreq = tstream_writev_send(conn, conn->daemon->ev, conn->backend,
				     &conn->setup->handoff_iov, 1);
	if (subreq == NULL) {
		tsgate_conn_finish(conn, ENOMEM, "out of memory");
		return;
	}
	tevent_req_set_callback(subreq, tsgate_conn_handoff_done, conn);
}

static void tsgate_conn_handoff_done(struct tevent_req *subreq)
{
	struct tsgate_conn *conn =
	    tevent_req_callback_data(subreq, struct tsgate_conn);
	int ret, err = 0;

	ret = tstream_writev_recv(subreq, &err);
	TALLOC_FREE(subreq);
	TALLOC_FREE(conn->setup->handoff);
	if (ret == -1) {
		tsgate_conn_finish(conn, err, "identity hand-off failed");
		return;
	}
	tsgate_conn_relay(conn);
}

static void tsgate_conn_relay(struct tsgate_conn *conn)
{
	const struct tsgate_config_route *r = conn->route;
	struct tsgate_relay_params p = {
	    .framing = r->framing,
	    .max_pdu = r->framing == TSGATE_CONFIG_FRAMING_RAW
			   ? 0
			   : (size_t)r->max_pdu,
	    .idle_timeout_ms = ms32(conn->daemon->cfg->limits.idle_timeout_ms),
	    .sweeper = conn->daemon->idle_sweeper,
	};
	struct tsgate_relay *relay;

	/*
	 * The addresses served routing and the identity hand-off; the log
	 * line has conn->peer. A long-lived connection need not keep them,
	 * nor the rest of its set-up.
	 */
	conn->info.remote = NULL;
	conn->info.local = NULL;
	TALLOC_FREE(conn->setup);

	relay = tsgate_relay_start(conn, conn->daemon->ev, conn->client,
				   conn->backend, &p, &conn->stats,
				   tsgate_conn_relay_done, conn);
	if (relay == NULL) {
		tsgate_conn_finish(conn, ENOMEM, "out of memory");
		return;
	}
}

/*
 * The relay's reason with the tunnel's own text after it (a refused
 * GSSAPI frame, or a stream truncated in strict_end mode), from the
 * client side or else the backend side, whichever has one.
 */
static const char *tsgate_conn_tunnel_reason(struct tsgate_conn *conn,
					     const char *reason)
{
	struct tstream_context *streams[2] = {conn->client, conn->backend};

	for (size_t i = 0; i < 2; i++) {
		const char *why = NULL;

		if (tstream_gssapi_is_gssapi(streams[i])) {
			why = tstream_gssapi_error_reason(streams[i]);
		} else if (tstream_tls_truncated(streams[i])) {
			why = "TLS stream truncated: peer closed without "
			      "close_notify";
		}
		if (why != NULL) {
			const char *both =
			    talloc_asprintf(conn, "%s: %s", reason, why);

			/* a reason must not be lost to a failed allocation */
			return both != NULL ? both : reason;
		}
	}
	return reason;
}

static void tsgate_conn_relay_done(struct tsgate_relay *relay,
				   int err,
				   void *private_data)
{
	struct tsgate_conn *conn =
	    talloc_get_type_abort(private_data, struct tsgate_conn);

	talloc_free(relay);
	if (err != 0) {
		enum tsgate_metrics_drop_reason why;
		const char *reason = conn->stats.reason != NULL
					 ? conn->stats.reason
					 : "relay failed";
		bool stream_err = !conn->stats.pdu_refused &&
				  (err == EMSGSIZE || err == EPROTO);

		/* a tunnel's EMSGSIZE/EPROTO is not a PDU verdict */
		if (!stream_err &&
		    tsgate_metrics_relay_drop_reason(err, &why)) {
			tsgate_conn_drop(conn, why);
		}
		if (stream_err || err == ECONNABORTED) {
			reason = tsgate_conn_tunnel_reason(conn, reason);
		}
		tsgate_conn_finish(conn, err, reason);
		return;
	}
	tsgate_conn_finish(conn, 0, NULL);
}

/*
 * Listeners
 */

/*
 * Stop accepting: close the socket and remove our unix socket file. The
 * listener object itself stays while connections it accepted live: they
 * use its tunnel parameters, backends and config tree.
 */
static void tsgate_listener_close(struct tsgate_listener *l)
{
	struct stat st;

	TALLOC_FREE(l->fde);
	TALLOC_FREE(l->accept_pause);
	if (l->fd != -1) {
		close(l->fd);
		l->fd = -1;
	}
	/* Only remove the socket file if it is still the one we made. */
	if (l->unix_path != NULL && lstat(l->unix_path, &st) == 0 &&
	    st.st_dev == l->unix_dev && st.st_ino == l->unix_ino) {
		unlink(l->unix_path);
	}
	TALLOC_FREE(l->unix_path);
}

static int tsgate_listener_destructor(struct tsgate_listener *l)
{
	tsgate_listener_close(l);
	return 0;
}

static void tsgate_listener_resume(struct tevent_context *ev,
				   struct tevent_timer *te,
				   struct timeval now,
				   void *private_data)
{
	struct tsgate_listener *l =
	    talloc_get_type_abort(private_data, struct tsgate_listener);

	(void)ev;
	(void)te;
	(void)now;
	l->accept_pause = NULL;
	if (l->fde != NULL) {
		tevent_fd_set_flags(l->fde, TEVENT_FD_READ);
	}
}

static void tsgate_listener_accept(struct tevent_context *ev,
				   struct tevent_fd *fde,
				   uint16_t flags,
				   void *private_data)
{
	struct tsgate_listener *l =
	    talloc_get_type_abort(private_data, struct tsgate_listener);
	int i, fd, err;

	(void)flags;
	for (i = 0; i < TSGATE_ACCEPT_BATCH; i++) {
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd != -1) {
			tsgate_conn_start(l, fd);
			continue;
		}
		err = errno;
		if ((err != EMFILE && err != ENFILE && err != ENOBUFS &&
		     err != ENOMEM) ||
		    l->accept_pause != NULL) {
			/* EAGAIN, or a connection gone before we took it */
			return;
		}
		/*
		 * The pending connection stays readable: polling again at
		 * once would spin. Pause, and let connections end meanwhile.
		 */
		tsgate_log_msg(l->daemon->log, TSGATE_CONFIG_LOG_WARNING,
			       "accept", "%s: %s; accepting paused for %d ms",
			       l->cfg->name, strerror(err),
			       TSGATE_ACCEPT_PAUSE_MS);
		l->accept_pause =
		    tevent_add_timer(ev, l,
				     tevent_timeval_current_ofs(
					 0, TSGATE_ACCEPT_PAUSE_MS * 1000),
				     tsgate_listener_resume, l);
		if (l->accept_pause != NULL) {
			tevent_fd_set_flags(fde, 0);
		}
		return;
	}
}

/*
 * A unix socket path that exists: stale (nobody accepts) → remove it;
 * alive → another daemon has it (EADDRINUSE); not a socket → EEXIST.
 */
static int unix_path_prepare(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) != 0) {
		return errno == ENOENT ? 0 : errno;
	}
	if (!S_ISSOCK(st.st_mode)) {
		return EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		return errno;
	}
	strncpy(sun.sun_path, path, sizeof(sun.sun_path) - 1);
	ret = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	if (ret == 0) {
		return EADDRINUSE;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		return errno;
	}
	return 0;
}

static int tsgate_listener_bind(struct tsgate_listener *l, char **preason)
{
	const struct tsgate_config_addr *a = &l->cfg->listen;
	struct tsocket_address *addr = NULL;
	struct sockaddr_storage ss;
	ssize_t sslen;
	int one = 1;
	int ret, err;
	struct stat st;

	if (a->kind == TSGATE_CONFIG_ADDR_UNIX) {
		err = unix_path_prepare(a->path);
		if (err != 0) {
			*preason = talloc_asprintf(l, "%s: %s", a->path,
						   strerror(err));
			return err;
		}
		ret = tsocket_address_unix_from_path(l, a->path, &addr);
	} else {
		ret = tsocket_address_inet_from_strings(l, "ip", a->ip, a->port,
							&addr);
	}
	if (ret != 0) {
		err = errno;
		*preason = talloc_asprintf(l, "%s: %s", a->text, strerror(err));
		return err;
	}
	sslen = tsocket_address_bsd_sockaddr(addr, (struct sockaddr *)&ss,
					     sizeof(ss));
	TALLOC_FREE(addr);
	if (sslen < 0) {
		err = errno;
		*preason = talloc_asprintf(l, "%s: %s", a->text, strerror(err));
		return err;
	}

	l->fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd == -1) {
		err = errno;
		*preason = talloc_asprintf(l, "%s: socket: %s", a->text,
					   strerror(err));
		return err;
	}
	if (ss.ss_family != AF_UNIX) {
		(void)setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one,
				 sizeof(one));
	}
	if (ss.ss_family != AF_UNIX && l->daemon->num_workers > 1 &&
	    setsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) !=
		0) {
		err = errno;
		*preason = talloc_asprintf(l, "%s: SO_REUSEPORT: %s", a->text,
					   strerror(err));
		return err;
	}
	if (bind(l->fd, (struct sockaddr *)&ss, (socklen_t)sslen) != 0 ||
	    listen(l->fd, 1024) != 0) {
		err = errno;
		*preason = talloc_asprintf(l, "%s: %s", a->text, strerror(err));
		return err;
	}
	if (ss.ss_family == AF_UNIX) {
		l->unix_path = talloc_strdup(l, a->path);
		if (l->unix_path != NULL && lstat(a->path, &st) == 0) {
			l->unix_dev = st.st_dev;
			l->unix_ino = st.st_ino;
		}
	}
	l->fde = tevent_add_fd(l->daemon->ev, l, l->fd, TEVENT_FD_READ,
			       tsgate_listener_accept, l);
	if (l->fde == NULL) {
		*preason = talloc_strdup(l, "out of memory");
		return ENOMEM;
	}
	return 0;
}

/*
 * The listener's TLS server parameters, built by the config code so that
 * --check-config and the daemon agree on them.
 */
static int tsgate_listener_tls(struct tsgate_listener *l, char **preason)
{
	char *error = NULL;
	int ret;

	if (l->cfg->tls == NULL) {
		*preason = talloc_strdup(l, "no tls block");
		return EINVAL;
	}
	ret = tsgate_config_tls_server_params(l, l->cfg->tls, &l->tls, &error);
	if (ret != 0) {
		*preason = talloc_asprintf(l, "tls: %s",
					   error ? error : strerror(ret));
	}
	talloc_free(error);
	return ret;
}

static int tsgate_listener_gssapi(struct tsgate_listener *l,
				  const struct tsgate_config *cfg_tree,
				  char **preason)
{
	const struct tsgate_config_gssapi_server *g = l->cfg->gssapi;
	char *reason = NULL;
	int ret;

	if (g == NULL) {
		*preason = talloc_strdup(l, "no gssapi block");
		return EINVAL;
	}
	ret = tstream_gssapi_params_acceptor(l, g->keytab, g->principal,
					     &l->gssapi, &reason);
	if (ret != 0) {
		*preason = talloc_asprintf(l, "gssapi: %s",
					   reason ? reason : strerror(ret));
		return ret;
	}
	tstream_gssapi_params_set_handshake_timeout(
	    l->gssapi, ms32(cfg_tree->limits.handshake_timeout_ms));
	tstream_gssapi_params_set_strict_eof(l->gssapi, g->strict_end);
	return 0;
}

/*
 * A listener's runtime (tunnel parameters, backends, metrics handles)
 * for one listener of cfg_tree, without its socket yet.
 */
static int tsgate_listener_prepare(struct tsgate_daemon *d,
				   struct tsgate_config *cfg_tree,
				   const struct tsgate_config_listener *cfg,
				   struct tsgate_listener **pl,
				   char **preason)
{
	struct tsgate_listener *l;
	size_t i;
	int ret = 0;

	l = talloc_zero(d, struct tsgate_listener);
	if (l == NULL) {
		return ENOMEM;
	}
	l->daemon = d;
	l->cfg = cfg;
	l->fd = -1;
	talloc_set_destructor(l, tsgate_listener_destructor);
	l->free_im = tevent_create_immediate(l);
	if (l->free_im == NULL || talloc_reference(l, cfg_tree) == NULL) {
		talloc_free(l);
		return ENOMEM;
	}
	l->cfg_tree = cfg_tree;

	if (cfg->accept == TSGATE_CONFIG_ACCEPT_TLS) {
		ret = tsgate_listener_tls(l, preason);
	} else if (cfg->accept == TSGATE_CONFIG_ACCEPT_GSSAPI) {
		ret = tsgate_listener_gssapi(l, cfg_tree, preason);
	}
	if (ret != 0) {
		*preason = talloc_steal(d, *preason);
		talloc_free(l);
		return ret;
	}
	l->backends =
	    talloc_zero_array(l, struct tsgate_backend *, cfg->num_routes);
	l->route_metrics = talloc_zero_array(l, struct tsgate_metrics_route *,
					     cfg->num_routes);
	if ((l->backends == NULL || l->route_metrics == NULL) &&
	    cfg->num_routes > 0) {
		talloc_free(l);
		return ENOMEM;
	}
	/* NULL handles (out of memory) only lose counts */
	l->metrics = tsgate_metrics_listener_new(l, d->metrics, cfg->name);
	for (i = 0; i < cfg->num_routes; i++) {
		l->route_metrics[i] = tsgate_metrics_route_new(
		    l, l->metrics, cfg->routes[i].name);
	}
	for (i = 0; i < cfg->num_routes; i++) {
		ret = tsgate_backend_new(l, &cfg->routes[i],
					 cfg_tree->limits.connect_timeout_ms,
					 &l->backends[i], preason);
		if (ret != 0) {
			*preason = talloc_asprintf(
			    d, "route %s: %s", cfg->routes[i].name, *preason);
			talloc_free(l);
			return ret;
		}
	}
	*pl = l;
	return 0;
}

static bool same_address(const struct tsgate_config_addr *a,
			 const struct tsgate_config_addr *b)
{
	if (a->kind != b->kind) {
		return false;
	}
	if (a->kind == TSGATE_CONFIG_ADDR_UNIX) {
		return strcmp(a->path, b->path) == 0;
	}
	return a->port == b->port && strcmp(a->ip, b->ip) == 0;
}

/* Move the listening socket (and its unix file) from old to l. */
static int tsgate_listener_take_socket(struct tsgate_listener *l,
				       struct tsgate_listener *old)
{
	l->fde = tevent_add_fd(l->daemon->ev, l, old->fd, TEVENT_FD_READ,
			       tsgate_listener_accept, l);
	if (l->fde == NULL) {
		return ENOMEM;
	}
	TALLOC_FREE(old->fde);
	l->fd = old->fd;
	old->fd = -1;
	l->unix_path = talloc_move(l, &old->unix_path);
	l->unix_dev = old->unix_dev;
	l->unix_ino = old->unix_ino;
	return 0;
}

static struct tsgate_listener *find_listener(
    struct tsgate_listener *list, const struct tsgate_config_listener *cfg)
{
	for (; list != NULL; list = list->next) {
		if (strcmp(list->cfg->name, cfg->name) == 0 &&
		    same_address(&list->cfg->listen, &cfg->listen)) {
			return list;
		}
	}
	return NULL;
}

/*
 * Make the listeners of cfg_tree the accepting ones. A listener of the
 * same name on the same address keeps its socket (no connection attempt
 * is refused during a reload); the others are bound now. On failure
 * nothing changed. The replaced listeners are retired: they stop
 * accepting and go when their last connection does.
 */
static int tsgate_daemon_apply(struct tsgate_daemon *d,
			       struct tsgate_config *cfg_tree,
			       char **preason)
{
	struct tsgate_listener **fresh, *l, *old;
	size_t i, n = cfg_tree->num_listeners;
	int ret = 0;

	fresh = talloc_zero_array(d, struct tsgate_listener *, n + 1);
	if (fresh == NULL) {
		return ENOMEM;
	}
	for (i = 0; i < n && ret == 0; i++) {
		/*
		 * With workers, TCP listeners are shared with SO_REUSEPORT;
		 * a unix socket path can only be bound once: worker 0 has it.
		 */
		if (d->worker != 0 && cfg_tree->listeners[i].listen.kind ==
					  TSGATE_CONFIG_ADDR_UNIX) {
			continue;
		}
		ret = tsgate_listener_prepare(
		    d, cfg_tree, &cfg_tree->listeners[i], &fresh[i], preason);
		if (ret != 0) {
			*preason = talloc_asprintf(d, "listener %s: %s",
						   cfg_tree->listeners[i].name,
						   *preason);
		}
	}
	/* new addresses first: a bind failure still changes nothing */
	for (i = 0; i < n && ret == 0; i++) {
		if (fresh[i] == NULL ||
		    find_listener(d->listeners, fresh[i]->cfg) != NULL) {
			continue;
		}
		ret = tsgate_listener_bind(fresh[i], preason);
		if (ret != 0) {
			*preason =
			    talloc_asprintf(d, "listener %s: %s",
					    fresh[i]->cfg->name, *preason);
		}
	}
	for (i = 0; i < n && ret == 0; i++) {
		old = fresh[i] != NULL
			  ? find_listener(d->listeners, fresh[i]->cfg)
			  : NULL;
		if (old != NULL) {
			ret = tsgate_listener_take_socket(fresh[i], old);
		}
	}
	if (ret != 0) {
		/* (take_socket fails only before it moved anything) */
		for (i = 0; i < n; i++) {
			talloc_free(fresh[i]);
		}
		talloc_free(fresh);
		return ret;
	}
	while ((old = d->listeners) != NULL) {
		tsgate_listener_unlink(&d->listeners, old);
		tsgate_listener_close(old);
		old->retired = true;
		tsgate_listener_push(&d->retired, old);
		if (old->num_conns == 0) {
			tevent_schedule_immediate(
			    old->free_im, d->ev, tsgate_listener_free_now, old);
		}
	}
	for (i = n; i > 0; i--) {
		l = fresh[i - 1];
		if (l != NULL) {
			tsgate_listener_push(&d->listeners, l);
		}
	}
	talloc_free(fresh);
	return 0;
}

static void tsgate_daemon_reload(struct tsgate_daemon *d)
{
	struct tsgate_config *cfg = NULL;
	struct tsgate_config_errors *errs = NULL;
	struct tsgate_config *old = d->cfg;
	char *reason = NULL;
	size_t i;
	int ret;

	if (d->draining) {
		return;
	}
	ret = tsgate_config_load(d, d->config_path,
				 TSGATE_CONFIG_CHECK_CREDENTIALS, &cfg, &errs);
	if (ret != 0) {
		for (i = 0; errs != NULL && i < errs->num_errors; i++) {
			tsgate_log_msg(
			    d->log, TSGATE_CONFIG_LOG_ERROR, "reload", "%s",
			    tsgate_config_error_string(errs, &errs->errors[i]));
		}
		tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_ERROR, "reload",
			       "%s: %s; the running configuration stays",
			       d->config_path, strerror(ret));
		talloc_free(errs);
		tsgate_metrics_reload(d->metrics, false);
		return;
	}
	ret = tsgate_daemon_apply(d, cfg, &reason);
	if (ret != 0) {
		tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_ERROR, "reload",
			       "%s; the running configuration stays",
			       reason ? reason : strerror(ret));
		talloc_free(reason);
		talloc_free(cfg);
		tsgate_metrics_reload(d->metrics, false);
		return;
	}
	/* listeners hold references to the trees they use */
	d->cfg = cfg;
	talloc_unlink(d, old);
	d->log->level = cfg->log.level;
	d->log->format = cfg->log.format;
	tsgate_metrics_reload(d->metrics, true);
	tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_INFO, "reload",
		       "%s: %zu listener(s); live connections keep their "
		       "configuration",
		       d->config_path, cfg->num_listeners);
}

/*
 * Signals and the run loop
 */

static void tsgate_daemon_grace_over(struct tevent_context *ev,
				     struct tevent_timer *te,
				     struct timeval now,
				     void *private_data)
{
	struct tsgate_daemon *d =
	    talloc_get_type_abort(private_data, struct tsgate_daemon);
	struct tsgate_conn *c, *next;

	(void)ev;
	(void)te;
	(void)now;
	d->grace_timer = NULL;
	for (c = d->conns; c != NULL; c = next) {
		next = c->next;
		if (!c->finished) {
			tsgate_conn_drop(c, TSGATE_METRICS_DROP_SHUTDOWN);
		}
		tsgate_conn_finish(c, ESHUTDOWN, "shutdown grace expired");
	}
	d->stop = true;
}

static void tsgate_daemon_drain(struct tsgate_daemon *d, const char *why)
{
	uint64_t ms = d->cfg->limits.shutdown_grace_ms;
	struct tsgate_listener *l;

	if (d->draining) {
		return;
	}
	d->draining = true;
	tsgate_metrics_set_state(d->metrics, TSGATE_METRICS_DRAINING);
	tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_INFO, "stop",
		       "%s: stop accepting, draining %u connection(s)", why,
		       (unsigned)d->num_conns);
	for (l = d->listeners; l != NULL; l = l->next) {
		tsgate_listener_close(l);
	}
	if (d->num_conns == 0) {
		d->stop = true;
		return;
	}
	d->grace_timer = tevent_add_timer(
	    d->ev, d, tevent_timeval_current_ofs(ms / 1000, (ms % 1000) * 1000),
	    tsgate_daemon_grace_over, d);
	if (d->grace_timer == NULL) {
		d->stop = true;
	}
}

/* After binding: switch to cfg->user (and its group) when asked. */
static int tsgate_daemon_drop_privileges(struct tsgate_daemon *d)
{
	const struct tsgate_config *cfg = d->cfg;

	if (cfg->user == NULL) {
		return 0;
	}
	if (geteuid() != 0) {
		if (geteuid() == cfg->uid) {
			return 0;
		}
		tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_ERROR, "start",
			       "cannot become user %s: not running as root",
			       cfg->user);
		return EPERM;
	}
	if (setgroups(0, NULL) != 0 || setgid(cfg->gid) != 0 ||
	    setuid(cfg->uid) != 0) {
		int err = errno;

		tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_ERROR, "start",
			       "cannot become user %s: %s", cfg->user,
			       strerror(err));
		return err;
	}
	if (setuid(0) == 0) {
		tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_ERROR, "start",
			       "could regain root after dropping it");
		return EPERM;
	}
	tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_INFO, "start",
		       "running as user %s (uid %u, gid %u)", cfg->user,
		       (unsigned)cfg->uid, (unsigned)cfg->gid);
	return 0;
}

static void tsgate_daemon_signal(struct tevent_context *ev,
				 struct tevent_signal *se,
				 int signum,
				 int count,
				 void *siginfo,
				 void *private_data)
{
	struct tsgate_daemon *d =
	    talloc_get_type_abort(private_data, struct tsgate_daemon);

	(void)ev;
	(void)se;
	(void)count;
	(void)siginfo;
	if (signum == SIGHUP) {
		tsgate_daemon_reload(d);
		return;
	}
	tsgate_daemon_drain(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static int tsgate_daemon_serve(TALLOC_CTX *mem_ctx,
			       const char *config_path,
			       struct tsgate_config *cfg,
			       unsigned worker,
			       unsigned num_workers,
			       struct tsgate_metrics_links *links)
{
	struct tsgate_daemon *d;
	struct tsgate_listener *l;
	char *reason = NULL;
	int ret;

	d = talloc_zero(mem_ctx, struct tsgate_daemon);
	if (d == NULL) {
		fprintf(stderr, "tsgate: out of memory\n");
		return 1;
	}
	if (talloc_reference(d, cfg) == NULL) {
		/* every failed start says why (issue 13) */
		fprintf(stderr, "tsgate: out of memory\n");
		talloc_free(d);
		return 1;
	}
	d->cfg = cfg;
	d->worker = worker;
	d->num_workers = num_workers;
	d->config_path = talloc_strdup(d, config_path);
	d->log = tsgate_log_new(d, cfg->log.level, cfg->log.format);
	d->ev = tevent_context_init(d);
	d->conn_free_im = tevent_create_immediate(d);
	d->sources = tsgate_source_limit_new(d);
	d->idle_sweeper =
	    d->ev != NULL ? tsgate_relay_sweeper_new(d, d->ev) : NULL;
	d->metrics = tsgate_metrics_new(d, TSGATE_VERSION, NULL);
	if (d->config_path == NULL || d->log == NULL || d->ev == NULL ||
	    d->conn_free_im == NULL || d->sources == NULL ||
	    d->idle_sweeper == NULL || d->metrics == NULL) {
		fprintf(stderr, "tsgate: out of memory\n");
		talloc_free(d);
		return 1;
	}
	if (num_workers > 1) {
		d->log->worker = (int)worker;
	}
	if (links != NULL) {
		d->metrics_workers = tsgate_metrics_workers_new(
		    d, d->ev, d->metrics, links, worker);
		if (d->metrics_workers == NULL) {
			fprintf(stderr, "tsgate: out of memory\n");
			talloc_free(d);
			return 1;
		}
	}

	/* Writes to a closed peer must fail with EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	if (tevent_add_signal(d->ev, d, SIGTERM, 0, tsgate_daemon_signal, d) ==
		NULL ||
	    tevent_add_signal(d->ev, d, SIGINT, 0, tsgate_daemon_signal, d) ==
		NULL ||
	    tevent_add_signal(d->ev, d, SIGHUP, 0, tsgate_daemon_signal, d) ==
		NULL) {
		tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_ERROR, "start",
			       "cannot install signal handlers");
		talloc_free(d);
		return 1;
	}

	/* with workers, worker 0 serves /metrics for all of them */
	if (cfg->metrics_listen != NULL && worker == 0) {
		ret = tsgate_metrics_server_new(d, d->ev, d->metrics,
						cfg->metrics_listen, NULL,
						&d->metrics_server, &reason);
		if (ret != 0) {
			/* the reason names the address */
			tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_ERROR, "start",
				       "metrics: %s",
				       reason ? reason : strerror(ret));
			talloc_free(d);
			return 1;
		}
		if (d->metrics_workers != NULL) {
			tsgate_metrics_workers_serve(d->metrics_workers,
						     d->metrics_server);
		}
	}
	ret = tsgate_daemon_apply(d, cfg, &reason);
	if (ret != 0) {
		tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_ERROR, "start", "%s",
			       reason ? reason : strerror(ret));
		talloc_free(d);
		return 1;
	}
	ret = tsgate_daemon_drop_privileges(d);
	if (ret != 0) {
		talloc_free(d);
		return 1;
	}
	for (l = d->listeners; l != NULL; l = l->next) {
		struct tsgate_log_kv *kv = tsgate_log_kv_new(d);

		tsgate_log_kv_str(kv, "listener", l->cfg->name);
		tsgate_log_kv_str(kv, "listen", l->cfg->listen.text);
		tsgate_log_kv_str(kv, "accept",
				  tsgate_config_accept_name(l->cfg->accept));
		tsgate_log_kv_u64(kv, "routes", l->cfg->num_routes);
		tsgate_log_kv_emit(d->log, TSGATE_CONFIG_LOG_INFO, "listen",
				   kv);
		talloc_free(kv);
	}

	tsgate_metrics_set_state(d->metrics, TSGATE_METRICS_READY);
	tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_INFO, "start",
		       "tsgate ready: %zu listener(s), config %s",
		       cfg->num_listeners, config_path);

	while (!d->stop) {
		if (tevent_loop_once(d->ev) != 0) {
			tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_ERROR, "stop",
				       "event loop failed: %s",
				       strerror(errno));
			d->exit_code = 1;
			break;
		}
	}
	/* Connections scheduled for freeing go now, then everything. */
	while (d->finished_conns != NULL) {
		talloc_free(d->finished_conns);
	}
	while (d->conns != NULL) {
		talloc_free(d->conns);
	}
	tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_INFO, "stop",
		       "tsgate stopped");
	ret = d->exit_code;
	talloc_free(d);
	return ret;
}

/*
 * workers: N > 1. This process only supervises: it forks N workers, each
 * a whole daemon with its own event loop, sharing the TCP listeners with
 * SO_REUSEPORT. Signals are passed on; a worker that dies is restarted
 * (at most once a second); a worker failing at start-up stops them all.
 */
struct tsgate_worker_slot {
	pid_t pid;
	time_t started;
};

static pid_t tsgate_worker_spawn(TALLOC_CTX *mem_ctx,
				 const char *config_path,
				 struct tsgate_config *cfg,
				 unsigned worker,
				 unsigned num_workers,
				 struct tsgate_metrics_links *links,
				 const sigset_t *oldmask)
{
	pid_t pid = fork();

	if (pid != 0) {
		return pid;
	}
	/* the worker: signals as before, then the normal daemon */
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	exit(tsgate_daemon_serve(mem_ctx, config_path, cfg, worker, num_workers,
				 links));
}

/*
 * SIGHUP in the supervisor: the workers reload (and log) on their own;
 * this only keeps the configuration a restarted worker starts with equal
 * to the one the others run. A broken file keeps the previous one.
 * (workers: itself takes effect at the next start.)
 */
static void tsgate_supervise_reload(TALLOC_CTX *mem_ctx,
				    const char *config_path,
				    struct tsgate_config *first,
				    struct tsgate_config **pcur)
{
	struct tsgate_config *next = NULL;
	struct tsgate_config_errors *errs = NULL;

	if (tsgate_config_load(mem_ctx, config_path,
			       TSGATE_CONFIG_CHECK_CREDENTIALS, &next,
			       &errs) != 0) {
		talloc_free(errs);
		return;
	}
	if (*pcur != first) {
		talloc_free(*pcur);
	}
	*pcur = next;
}

static int tsgate_daemon_supervise(TALLOC_CTX *mem_ctx,
				   const char *config_path,
				   struct tsgate_config *cfg)
{
	unsigned n = cfg->workers, i, alive = 0;
	struct tsgate_worker_slot *slots;
	sigset_t set, oldmask;
	bool stopping = false;
	int exit_code = 0, sig, status;
	struct tsgate_log *log;
	struct tsgate_metrics_links *links;
	struct tsgate_config *cur = cfg;
	pid_t pid;

	slots = talloc_zero_array(mem_ctx, struct tsgate_worker_slot, n);
	log = tsgate_log_new(slots, cfg->log.level, cfg->log.format);
	if (slots == NULL || log == NULL) {
		fprintf(stderr, "tsgate: out of memory\n");
		talloc_free(slots);
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &oldmask);

	/* kept open here, so a restarted worker answers on the same one */
	links = tsgate_metrics_links_new(slots, n);
	if (links == NULL) {
		tsgate_log_msg(log, TSGATE_CONFIG_LOG_WARNING, "start",
			       "metrics of workers 1..%u: %s; /metrics shows "
			       "worker 0 only",
			       n - 1, strerror(errno));
	}
	for (i = 0; i < n; i++) {
		slots[i].pid = tsgate_worker_spawn(mem_ctx, config_path, cfg, i,
						   n, links, &oldmask);
		slots[i].started = time(NULL);
		if (slots[i].pid > 0) {
			alive++;
		}
	}
	tsgate_log_msg(log, TSGATE_CONFIG_LOG_INFO, "start",
		       "supervisor pid %d: %u of %u workers started",
		       (int)getpid(), alive, n);
	if (alive < n) {
		tsgate_log_msg(log, TSGATE_CONFIG_LOG_ERROR, "start",
			       "fork: %s; stopping", strerror(errno));
		stopping = true;
		exit_code = 1;
		for (i = 0; i < n; i++) {
			if (slots[i].pid > 0) {
				kill(slots[i].pid, SIGTERM);
			}
		}
	}

	while (alive > 0) {
		if (sigwait(&set, &sig) != 0) {
			continue;
		}
		if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
			stopping = stopping || sig != SIGHUP;
			for (i = 0; i < n; i++) {
				if (slots[i].pid > 0) {
					kill(slots[i].pid, sig);
				}
			}
			if (sig == SIGHUP && !stopping) {
				tsgate_supervise_reload(slots, config_path, cfg,
							&cur);
			}
			continue;
		}
		/* SIGCHLD: reap, restart unless stopping */
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			for (i = 0; i < n && slots[i].pid != pid; i++) {
			}
			if (i == n) {
				continue;
			}
			slots[i].pid = 0;
			alive--;
			if (stopping) {
				/* the exit code says how the stop went */
				if (!WIFEXITED(status) ||
				    WEXITSTATUS(status) != 0) {
					exit_code = 1;
				}
				continue;
			}
			if (WIFEXITED(status) && WEXITSTATUS(status) == 1 &&
			    time(NULL) - slots[i].started < 2) {
				/* failed at start-up: no point in retrying */
				tsgate_log_msg(log, TSGATE_CONFIG_LOG_ERROR,
					       "stop",
					       "worker %u failed to start; "
					       "stopping",
					       i);
				stopping = true;
				exit_code = 1;
				for (i = 0; i < n; i++) {
					if (slots[i].pid > 0) {
						kill(slots[i].pid, SIGTERM);
					}
				}
				continue;
			}
			tsgate_log_msg(log, TSGATE_CONFIG_LOG_WARNING, "worker",
				       "worker %u (pid %d) ended with status "
				       "0x%x; restarting it",
				       i, (int)pid, (unsigned)status);
			if (time(NULL) - slots[i].started < 1) {
				sleep(1);
			}
			/* the configuration of the last good reload */
			slots[i].pid = tsgate_worker_spawn(
			    mem_ctx, config_path, cur, i, n, links, &oldmask);
			slots[i].started = time(NULL);
			if (slots[i].pid > 0) {
				alive++;
			}
		}
	}
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	tsgate_log_msg(log, TSGATE_CONFIG_LOG_INFO, "stop",
		       "supervisor stopped");
	talloc_free(slots);
	return exit_code;
}

int tsgate_daemon_run(TALLOC_CTX *mem_ctx,
		      const char *config_path,
		      struct tsgate_config *cfg)
{
	if (cfg->workers > 1) {
		return tsgate_daemon_supervise(mem_ctx, config_path, cfg);
	}
	return tsgate_daemon_serve(mem_ctx, config_path, cfg, 0, 1, NULL);
}
