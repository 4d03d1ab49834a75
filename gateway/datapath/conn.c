/* SPDX-License-Identifier: MIT */
/*
 * The life of one client connection (conn.h).
 *
 * The set-up (accept → tunnel → route → backend → identity hand-off) is
 * tsgate_conn_setup_send/recv: its state holds what only the set-up needs
 * (the addresses, the backend, the hand-off bytes) and is freed before the
 * relay starts. What stays through the relay is struct tsgate_conn, which
 * must stay small: an idle connection costs it plus its streams and relay
 * (docs/performance.md).
 */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <tsocket.h>

#include "backend.h"
#include "config.h"
#include "exec.h"
#include "framing.h"
#include "identity.h"
#include "log.h"
#include "metrics.h"
#include "peer_info.h"
#include "relay.h"
#include "route.h"
#include "source_limit.h"
#include "tsgate_dlist.h"
#include "tls_gssapi.h"
#include "tstream_gssapi.h"
#include "tstream_tls.h"

/* At most one log line per this long about refusals at each limit. */
#define TSGATE_REFUSAL_LOG_INTERVAL_MS 1000

/* The refusals at one limit since the last one that was logged. */
struct tsgate_refusal_log {
	struct timeval last; /* the last refusal logged */
	uint64_t suppressed; /* refusals since, not logged */
};

struct tsgate_conn;

struct tsgate_conns {
	struct tevent_context *ev;
	struct tsgate_log *log;
	const struct tsgate_config *cfg;
	struct tsgate_conn *live;
	/* finished, to be freed by free_im (one for all of them) */
	struct tsgate_conn *finished;
	struct tevent_immediate *free_im;
	/* the relays' idle timeouts: one timer for all connections */
	struct tsgate_relay_sweeper *idle_sweeper;
	/* limits.max_connections_per_source: this process's count */
	struct tsgate_source_limit *sources;
	/* the programs of exec routes, made at the first one */
	struct tsgate_execs *execs;
	/* refusals at a limit, logged at most once per interval each */
	struct tsgate_refusal_log source_refusals;
	struct tsgate_refusal_log max_conns_refusals;
	uint64_t next_id;
	uint32_t num;
	bool draining;
};

struct tsgate_conn {
	struct tsgate_conn *prev, *next;
	struct tsgate_conns *set;
	struct tsgate_conn_listener *listener;
	uint64_t id;
	struct timeval start;
	/*
	 * The client's address, made a string only for a log line (a
	 * string kept per connection cost ~0.12 KiB). An address that does
	 * not fit (a named unix socket) keeps its string in peer_str.
	 */
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} peer;
	socklen_t peer_len; /* 0: unknown */
	char *peer_str;
	struct tstream_context *client;
	struct tstream_context *backend;
	const struct tsgate_config_route *route;
	struct tsgate_metrics_route *route_metrics;
	struct tsgate_metrics_conn metrics;
	struct tsgate_peer_info info;
	struct tsgate_conn_stats stats;
	bool finished; /* on set->finished instead of set->live */
	bool dropped;  /* counted in tsgate_connection_drops_total */
	bool quiet;    /* no log line of its own (a rate-limited one instead) */
	/* err is our decision (no route), not a system error: no "error" */
	bool no_errno;
	/*
	 * The backend connected and its address (a pool has several, a name
	 * may have several addresses): strings the pool keeps, not copies.
	 */
	const char *backend_text;
	const char *backend_addr;
	struct tsgate_backend_tracker backend_track;
	/* a slot of its source's limit, given back when conn is freed */
	struct tsgate_source_slot *source_slot;
};

static uint32_t ms32(uint64_t ms)
{
	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

static uint64_t elapsed_usec(const struct timeval *since)
{
	struct timeval now = tevent_timeval_current();
	int64_t us = ((int64_t)now.tv_sec - (int64_t)since->tv_sec) * 1000000 +
		     ((int64_t)now.tv_usec - (int64_t)since->tv_usec);

	return us > 0 ? (uint64_t)us : 0;
}

/* The client's address as a log line shows it, on mem_ctx; NULL: unknown. */
static const char *tsgate_conn_peer(const struct tsgate_conn *conn,
				    TALLOC_CTX *mem_ctx)
{
	struct tsocket_address *addr = NULL;
	char *str;

	if (conn->peer_str != NULL || conn->peer_len == 0) {
		return conn->peer_str;
	}
	if (tsocket_address_bsd_from_sockaddr(mem_ctx, &conn->peer.sa,
					      conn->peer_len, &addr) != 0) {
		return NULL;
	}
	str = tsocket_address_string(addr, mem_ctx);
	talloc_free(addr);
	return str;
}

/*
 * The set
 */

/*
 * Frees the finished connections. One immediate serves all of them: an
 * immediate per connection, made at accept and kept for the connection's
 * life, cost ~0.2 KiB per idle connection.
 */
static void tsgate_conns_free_finished(struct tevent_context *ev,
				       struct tevent_immediate *im,
				       void *private_data)
{
	struct tsgate_conns *set =
	    talloc_get_type_abort(private_data, struct tsgate_conns);

	(void)ev;
	(void)im;
	while (set->finished != NULL) {
		talloc_free(set->finished);
	}
}

struct tsgate_conns *tsgate_conns_new(TALLOC_CTX *mem_ctx,
				      struct tevent_context *ev,
				      struct tsgate_log *log,
				      const struct tsgate_config *cfg)
{
	struct tsgate_conns *set = talloc_zero(mem_ctx, struct tsgate_conns);

	if (set == NULL) {
		return NULL;
	}
	set->ev = ev;
	set->log = log;
	set->cfg = cfg;
	set->free_im = tevent_create_immediate(set);
	set->sources = tsgate_source_limit_new(set);
	set->idle_sweeper = tsgate_relay_sweeper_new(set, ev);
	if (set->free_im == NULL || set->sources == NULL ||
	    set->idle_sweeper == NULL) {
		talloc_free(set);
		return NULL;
	}
	return set;
}

void tsgate_conns_set_config(struct tsgate_conns *set,
			     const struct tsgate_config *cfg)
{
	set->cfg = cfg;
}

uint32_t tsgate_conns_num(const struct tsgate_conns *set)
{
	return set->num;
}

void tsgate_conns_drain(struct tsgate_conns *set)
{
	set->draining = true;
}

static void tsgate_conn_drop(struct tsgate_conn *conn,
			     enum tsgate_metrics_drop_reason why);
static void tsgate_conn_finish(struct tsgate_conn *conn,
			       int err,
			       const char *reason);

void tsgate_conns_shutdown(struct tsgate_conns *set)
{
	struct tsgate_conn *c, *next;

	for (c = set->live; c != NULL; c = next) {
		next = c->next;
		tsgate_conn_drop(c, TSGATE_METRICS_DROP_SHUTDOWN);
		tsgate_conn_finish(c, ESHUTDOWN, "shutdown grace expired");
	}
}

void tsgate_conns_free_all(struct tsgate_conns *set)
{
	/* the ones scheduled for freeing first, then the rest */
	while (set->finished != NULL) {
		talloc_free(set->finished);
	}
	while (set->live != NULL) {
		talloc_free(set->live);
	}
}

/*
 * One connection: its end
 */

static int tsgate_conn_destructor(struct tsgate_conn *conn)
{
	struct tsgate_conns *set = conn->set;
	struct tsgate_conn_listener *l = conn->listener;

	if (conn->finished) {
		TSG_DLIST_REMOVE(set->finished, conn);
	} else {
		TSG_DLIST_REMOVE(set->live, conn);
	}
	set->num--;
	l->num_conns--;
	tsgate_metrics_conn_fini(&conn->metrics);
	tsgate_backend_untrack(&conn->backend_track);
	if (l->num_conns == 0 && l->unused_fn != NULL) {
		l->unused_fn(l->private_data);
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

/* The one log line of a connection. */
static void tsgate_conn_log(struct tsgate_conn *conn,
			    int err,
			    const char *reason)
{
	enum tsgate_config_log_level level =
	    err == 0 ? TSGATE_CONFIG_LOG_INFO : TSGATE_CONFIG_LOG_WARNING;
	struct timeval now;
	struct tsgate_log_kv *kv;
	int64_t elapsed_ms;
	uint64_t ms;

	if (!tsgate_log_enabled(conn->set->log, level)) {
		return; /* nothing to format (log level error) */
	}
	now = tevent_timeval_current();
	elapsed_ms =
	    ((int64_t)now.tv_sec - (int64_t)conn->start.tv_sec) * 1000 +
	    ((int64_t)now.tv_usec - (int64_t)conn->start.tv_usec) / 1000;
	ms = elapsed_ms > 0 ? (uint64_t)elapsed_ms : 0;
	kv = tsgate_log_kv_new(conn);
	tsgate_log_kv_u64(kv, "id", conn->id);
	tsgate_log_kv_str(kv, "listener", conn->listener->cfg->name);
	tsgate_log_kv_str(kv, "route",
			  conn->route != NULL ? conn->route->name : NULL);
	tsgate_log_kv_str(kv, "peer", tsgate_conn_peer(conn, kv));
	tsgate_log_kv_str(kv, "identity", tsgate_identity_summary(&conn->info));
	tsgate_log_kv_str(kv, "cert_name_error", conn->info.client_name_error);
	tsgate_log_kv_str(kv, "local_name", conn->info.local_name);
	tsgate_log_kv_str(kv, "tls_version", conn->info.tls_version);
	tsgate_log_kv_str(kv, "tls_cipher", conn->info.tls_cipher);
	if (conn->info.tls) {
		tsgate_log_kv_str(kv, "resumed",
				  conn->info.tls_resumed ? "yes" : "no");
		tsgate_log_kv_str(kv, "tls_records",
				  conn->info.tls_own_records ? "tsgate"
							     : "gnutls");
		tsgate_log_kv_str(kv, "tls_records_refused",
				  conn->info.tls_records_refused);
	}
	tsgate_log_kv_str(kv, "sni", conn->info.sni);
	tsgate_log_kv_str(kv, "alpn", conn->info.alpn);
	tsgate_log_kv_str(kv, "gss_mech", conn->info.mech);
	tsgate_log_kv_str(kv, "tls_truncated", tsgate_conn_truncated(conn));
	if (conn->route != NULL) {
		/* the backend of a pool that took the connection */
		tsgate_log_kv_str(kv, "backend",
				  conn->backend_text != NULL
				      ? conn->backend_text
				      : conn->route->backend.text);
		tsgate_log_kv_str(kv, "backend_addr", conn->backend_addr);
		if (conn->route->exec != NULL && conn->backend != NULL) {
			tsgate_log_kv_u64(
			    kv, "exec_pid",
			    (uint64_t)tsgate_exec_pid(conn->backend));
		}
	}
	tsgate_log_kv_u64(kv, "bytes_in", conn->stats.bytes_up);
	tsgate_log_kv_u64(kv, "bytes_out", conn->stats.bytes_down);
	tsgate_log_kv_u64(kv, "pdus_in", conn->stats.pdus_up);
	tsgate_log_kv_u64(kv, "pdus_out", conn->stats.pdus_down);
	tsgate_log_kv_u64(kv, "duration_ms", ms);
	tsgate_log_kv_str(kv, "result", err == 0 ? "ok" : "error");
	if (err != 0) {
		tsgate_log_kv_str(kv, "reason", reason);
		/* ESHUTDOWN is our own drain, not a socket's state */
		if (!conn->no_errno && err != ESHUTDOWN) {
			tsgate_log_kv_str(kv, "error", strerror(err));
		}
	}
	tsgate_log_kv_emit(conn->set->log, level, "conn", kv);
	talloc_free(kv);
}

/* How a connection ended, for tsgate_connection_duration_seconds. */
static enum tsgate_metrics_result tsgate_conn_result(
    const struct tsgate_conn *conn, int err)
{
	if (err == 0) {
		return TSGATE_METRICS_RESULT_OK;
	}
	if (conn->backend == NULL) {
		/* routed (else not counted) but never connected */
		return TSGATE_METRICS_RESULT_BACKEND_FAILED;
	}
	if (err == ETIMEDOUT) {
		return TSGATE_METRICS_RESULT_IDLE_TIMEOUT;
	}
	if (err == ESHUTDOWN) {
		return TSGATE_METRICS_RESULT_SHUTDOWN;
	}
	return TSGATE_METRICS_RESULT_ERROR;
}

/*
 * The one log line of a connection, then free it (from an immediate
 * event, so no stream is freed under its own callback).
 */
static void tsgate_conn_finish(struct tsgate_conn *conn,
			       int err,
			       const char *reason)
{
	struct tsgate_conns *set = conn->set;

	if (conn->finished) {
		return;
	}
	conn->finished = true;
	TSG_DLIST_REMOVE(set->live, conn);
	TSG_DLIST_ADD(set->finished, conn);
	tsgate_metrics_conn_end(&conn->metrics, tsgate_conn_result(conn, err));
	if (!conn->quiet) {
		/* the gateway's own reasons that no caller counted */
		if (!conn->dropped && err == ESHUTDOWN) {
			tsgate_metrics_drop(conn->listener->metrics,
					    TSGATE_METRICS_DROP_SHUTDOWN);
		} else if (!conn->dropped && err == ENOMEM) {
			tsgate_metrics_drop(conn->listener->metrics,
					    TSGATE_METRICS_DROP_OTHER);
		}
		tsgate_conn_log(conn, err, reason);
	}
	tevent_schedule_immediate(set->free_im, set->ev,
				  tsgate_conns_free_finished, set);
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

	if (!tsgate_log_enabled(conn->set->log, TSGATE_CONFIG_LOG_DEBUG)) {
		return;
	}
	kv = tsgate_log_kv_new(conn);
	tsgate_log_kv_u64(kv, "id", conn->id);
	tsgate_log_kv_str(kv, "listener", conn->listener->cfg->name);
	tsgate_log_kv_str(kv, "step", step);
	tsgate_log_kv_str(kv, "peer", tsgate_conn_peer(conn, kv));
	tsgate_log_kv_str(kv, "detail", detail);
	tsgate_log_kv_emit(conn->set->log, TSGATE_CONFIG_LOG_DEBUG, "conn_step",
			   kv);
	talloc_free(kv);
}

/*
 * Refusals at a limit
 */

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
	tsgate_log_kv_str(kv, "peer", tsgate_conn_peer(conn, kv));
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
	tsgate_log_kv_emit(conn->set->log, TSGATE_CONFIG_LOG_WARNING, "limit",
			   kv);
	talloc_free(kv);
}

/* Over max_connections (the daemon's or the listener's)? Logs then. */
static bool tsgate_conn_over_max(struct tsgate_conn *conn)
{
	struct tsgate_conns *set = conn->set;
	const struct tsgate_config_listener *lcfg = conn->listener->cfg;
	uint32_t max = set->cfg->limits.max_connections;
	struct tsgate_log_kv *kv;

	if (!((max > 0 && set->num > max) ||
	      (lcfg->max_connections > 0 &&
	       conn->listener->num_conns > lcfg->max_connections))) {
		return false;
	}
	tsgate_conn_drop(conn, TSGATE_METRICS_DROP_MAX_CONNECTIONS);
	kv = tsgate_refusal_log_start(conn, &set->max_conns_refusals);
	if (kv != NULL) {
		tsgate_log_kv_u64(kv, "max_connections", max);
		if (lcfg->max_connections > 0) {
			tsgate_log_kv_u64(kv, "listener_max_connections",
					  lcfg->max_connections);
		}
		tsgate_refusal_log_emit(conn, kv,
					"refused: max_connections reached");
	}
	conn->quiet = true;
	return true;
}

/*
 * Take a slot of the client's source: EAGAIN when it has none left (then
 * logged, rate-limited). Unix-socket clients have no source.
 */
static int tsgate_conn_take_source(struct tsgate_conn *conn,
				   const struct sockaddr *sa,
				   socklen_t len)
{
	struct tsgate_conns *set = conn->set;
	const struct tsgate_config_limits *lim = &set->cfg->limits;
	struct tsgate_source_key key;
	struct tsgate_log_kv *kv;
	int ret;

	if (lim->max_connections_per_source == 0 ||
	    !tsgate_source_key_from_sockaddr(
		sa, len, lim->per_source_ipv6_prefix, &key)) {
		return 0;
	}
	ret = tsgate_source_limit_take(conn, set->sources, &key,
				       lim->max_connections_per_source,
				       &conn->source_slot);
	if (ret != EAGAIN) {
		return ret;
	}
	tsgate_conn_drop(conn, TSGATE_METRICS_DROP_MAX_CONNECTIONS_PER_SOURCE);
	kv = tsgate_refusal_log_start(conn, &set->source_refusals);
	if (kv != NULL) {
		tsgate_log_kv_str(kv, "source",
				  tsgate_source_key_string(kv, &key));
		tsgate_log_kv_u64(kv, "max_connections_per_source",
				  lim->max_connections_per_source);
		tsgate_refusal_log_emit(
		    conn, kv, "refused: max_connections_per_source reached");
	}
	conn->quiet = true;
	return EAGAIN;
}

/*
 * The set-up: one request from the accepted socket to a connected,
 * told backend
 */

struct tsgate_conn_setup_state {
	struct tevent_context *ev;
	struct tsgate_conn *conn;
	struct tsocket_address *remote;
	struct tsocket_address *local;
	struct tsgate_backend *route_backend;
	struct timeval backend_start;
	struct timeval tunnel_start;
	uint8_t *handoff;
	struct iovec handoff_iov;
	int fd; /* the client socket (the stream owns it) */
	/* why it failed: kept here, so no failed allocation can lose it */
	char why[512];
};

static void tsgate_conn_setup_tunnel_done(struct tevent_req *subreq);

/*
 * The client's last handshake flight (its Finished) has been read and its
 * ACK is due. Linux delays it (up to 40 ms) as the connection looks
 * interactive, and nothing of ours may follow soon to carry it: GnuTLS
 * sends its TLS 1.3 tickets with its own Finished, and a TLS 1.2
 * resumption ends with the client's. A client that leaves Nagle on holds
 * its first request back until that ACK, so send it now (TCP_QUICKACK
 * flushes a scheduled ACK). Fails harmlessly on a unix socket.
 */
static void tsgate_conn_ack_now(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}
static void tsgate_conn_setup_route(struct tevent_req *req);
static void tsgate_conn_setup_backend_done(struct tevent_req *subreq);
static void tsgate_conn_setup_handoff(struct tevent_req *req);
static void tsgate_conn_setup_exec(struct tevent_req *req);
static void tsgate_conn_setup_handoff_done(struct tevent_req *subreq);

/* The addresses served routing and the hand-off: they go with the state. */
static int tsgate_conn_setup_state_destructor(
    struct tsgate_conn_setup_state *state)
{
	state->conn->info.remote = NULL;
	state->conn->info.local = NULL;
	return 0;
}

static void tsgate_conn_setup_fail(struct tevent_req *req,
				   int err,
				   const char *fmt,
				   ...) PRINTF_ATTRIBUTE(3, 4);

/*
 * A tunnel's reason to put after our own words ("tls handshake failed:
 * "): without a lead that says the same again ("TLS handshake failed:
 * ..."), so no line reads "handshake failed: TLS handshake failed".
 * The lead is any words ending in `said` (case ignored) and ": ".
 */
static const char *tsgate_conn_reason_tail(const char *reason, const char *said)
{
	const char *colon;
	size_t n = strlen(said);

	if (reason == NULL) {
		return "";
	}
	colon = strstr(reason, ": ");
	if (colon != NULL && (size_t)(colon - reason) >= n &&
	    strncasecmp(colon - n, said, n) == 0) {
		return colon + 2;
	}
	return reason;
}

static void tsgate_conn_setup_fail(struct tevent_req *req,
				   int err,
				   const char *fmt,
				   ...)
{
	struct tsgate_conn_setup_state *state =
	    tevent_req_data(req, struct tsgate_conn_setup_state);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(state->why, sizeof(state->why), fmt, ap);
	va_end(ap);
	tevent_req_error(req, err);
}

/* The client's and our addresses, for routing, hand-off and log lines. */
static void tsgate_conn_setup_addresses(struct tsgate_conn_setup_state *state,
					int fd,
					struct sockaddr_storage *peer,
					socklen_t *ppeerlen)
{
	struct tsgate_conn *conn = state->conn;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);

	*ppeerlen = sizeof(*peer);
	if (getpeername(fd, (struct sockaddr *)peer, ppeerlen) == 0) {
		(void)tsocket_address_bsd_from_sockaddr(
		    state, (struct sockaddr *)peer, *ppeerlen, &state->remote);
	} else {
		*ppeerlen = 0;
		peer->ss_family = AF_UNSPEC;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0) {
		(void)tsocket_address_bsd_from_sockaddr(
		    state, (struct sockaddr *)&ss, sslen, &state->local);
	}
	if (state->remote == NULL) {
		/* unknown */
	} else if (*ppeerlen <= sizeof(conn->peer)) {
		memcpy(&conn->peer, peer, *ppeerlen);
		conn->peer_len = *ppeerlen;
	} else {
		conn->peer_str = tsocket_address_string(state->remote, conn);
	}
	conn->info.remote = state->remote;
	conn->info.local = state->local;
}

/* Start the tunnel's handshake, bounded by limits.handshake_timeout. */
static void tsgate_conn_setup_tunnel(struct tevent_req *req)
{
	struct tsgate_conn_setup_state *state =
	    tevent_req_data(req, struct tsgate_conn_setup_state);
	struct tsgate_conn *conn = state->conn;
	struct tsgate_conn_listener *l = conn->listener;
	uint64_t timeout_ms = conn->set->cfg->limits.handshake_timeout_ms;
	struct tevent_req *subreq = NULL;
	struct timeval end;

	state->tunnel_start = tevent_timeval_current();
	switch (l->cfg->accept) {
	case TSGATE_CONFIG_ACCEPT_PLAIN:
		tsgate_conn_setup_route(req);
		return;
	case TSGATE_CONFIG_ACCEPT_TLS:
		/* tstream_tls takes the plain stream over */
		subreq = tstream_tls_accept_send(state, state->ev, conn->client,
						 l->tls);
		conn->client = NULL;
		break;
	case TSGATE_CONFIG_ACCEPT_GSSAPI:
		subreq = tstream_gssapi_accept_send(state, state->ev,
						    conn->client, l->gssapi);
		break;
	case TSGATE_CONFIG_ACCEPT_TLS_GSSAPI:
		subreq = tsgate_tls_gssapi_send(state, state->ev, conn->client,
						l->tls, l->gssapi, true);
		conn->client = NULL;
		break;
	}
	if (subreq == NULL) {
		tsgate_conn_setup_fail(req, ENOMEM, "out of memory");
		return;
	}
	if (timeout_ms > 0) {
		end = tevent_timeval_current_ofs(timeout_ms / 1000,
						 (timeout_ms % 1000) * 1000);
		if (!tevent_req_set_endtime(subreq, state->ev, end)) {
			tsgate_conn_setup_fail(req, ENOMEM, "out of memory");
			return;
		}
	}
	tevent_req_set_callback(subreq, tsgate_conn_setup_tunnel_done, req);
}

/* The listener's tcp_keepalive on a TCP client (best effort). */
static void tsgate_conn_keepalive(struct tsgate_conn *conn)
{
	const struct tsgate_config_listener *l = conn->listener->cfg;
	const struct tsgate_config_keepalive *ka = &l->keepalive;

	if (ka->enabled && l->listen.kind == TSGATE_CONFIG_ADDR_TCP) {
		tstream_bsd_set_keepalive(conn->client, true, ka->idle_s,
					  ka->interval_s, ka->count);
	}
}

/*
 * The set-up of conn, from its accepted socket fd (taken over, also on
 * failure). Refusals at a limit are logged (rate-limited) and make conn
 * quiet.
 */
static struct tevent_req *tsgate_conn_setup_send(TALLOC_CTX *mem_ctx,
						 struct tevent_context *ev,
						 struct tsgate_conn *conn,
						 int fd)
{
	struct tevent_req *req;
	struct tsgate_conn_setup_state *state;
	struct sockaddr_storage peer;
	socklen_t peerlen = 0;
	int ret;

	req =
	    tevent_req_create(mem_ctx, &state, struct tsgate_conn_setup_state);
	if (req == NULL) {
		close(fd);
		return NULL;
	}
	state->ev = ev;
	state->conn = conn;
	state->fd = fd;
	talloc_set_destructor(state, tsgate_conn_setup_state_destructor);

	if (tstream_bsd_existing_socket(conn, fd, &conn->client) != 0) {
		int err = errno != 0 ? errno : ENOMEM;

		close(fd);
		tsgate_conn_drop(conn, TSGATE_METRICS_DROP_OTHER);
		tsgate_conn_setup_fail(req, err, "wrapping the socket failed");
		return tevent_req_post(req, ev);
	}
	/*
	 * The relay and TLS write whole records: Nagle would only hold a
	 * small reply back until the client's delayed ACK (40 ms). Fails
	 * harmlessly on a unix socket.
	 */
	if (!conn->listener->tcp_options_inherited) {
		(void)tstream_bsd_set_nodelay(conn->client, true);
		tsgate_conn_keepalive(conn);
	}
	tsgate_conn_setup_addresses(state, fd, &peer, &peerlen);
	tsgate_conn_debug(conn, "accepted", NULL);

	if (conn->set->draining) {
		tsgate_conn_setup_fail(req, ESHUTDOWN, "shutting down");
		return tevent_req_post(req, ev);
	}
	if (tsgate_conn_over_max(conn)) {
		tsgate_conn_setup_fail(req, EAGAIN,
				       "refused: max_connections reached");
		return tevent_req_post(req, ev);
	}
	ret = tsgate_conn_take_source(conn, (struct sockaddr *)&peer, peerlen);
	if (ret != 0) {
		tsgate_conn_setup_fail(
		    req, ret,
		    ret == EAGAIN
			? "refused: max_connections_per_source reached"
			: "out of memory");
		return tevent_req_post(req, ev);
	}
	tsgate_conn_setup_tunnel(req);
	if (!tevent_req_is_in_progress(req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

static void tsgate_conn_setup_tunnel_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tsgate_conn_setup_state *state =
	    tevent_req_data(req, struct tsgate_conn_setup_state);
	struct tsgate_conn *conn = state->conn;
	struct tsgate_conn_listener *l = conn->listener;
	struct tstream_context *gss = NULL;
	char *reason = NULL;
	int ret = -1, err = EINVAL;

	if (l->cfg->accept == TSGATE_CONFIG_ACCEPT_TLS) {
		ret = tstream_tls_accept_recv(subreq, &err, conn, &conn->client,
					      &reason);
	} else if (l->cfg->accept == TSGATE_CONFIG_ACCEPT_TLS_GSSAPI) {
		/* the identity lives as long as conn, as conn->info */
		ret = tsgate_tls_gssapi_recv(subreq, &err, conn, &conn->client,
					     &gss, &reason);
	} else {
		ret = tstream_gssapi_accept_recv(subreq, &err, conn, &gss,
						 &reason);
		if (ret == 0) {
			conn->client = gss;
		}
	}
	TALLOC_FREE(subreq);
	if (ret != 0) {
		tsgate_metrics_handshake_failed(
		    l->metrics, tsgate_metrics_handshake_reason_of(err));
		tsgate_conn_drop(conn,
				 err == ETIMEDOUT
				     ? TSGATE_METRICS_DROP_HANDSHAKE_TIMEOUT
				     : TSGATE_METRICS_DROP_HANDSHAKE_FAILED);
		if (err == ETIMEDOUT) {
			tsgate_conn_setup_fail(req, err, "handshake timeout");
			return;
		}
		tsgate_conn_setup_fail(
		    req, err, "%s handshake failed%s%s",
		    tsgate_config_accept_name(l->cfg->accept),
		    reason != NULL ? ": " : "",
		    tsgate_conn_reason_tail(reason, "handshake failed"));
		return;
	}
	tsgate_conn_ack_now(state->fd);
	tsgate_metrics_handshake_done(l->metrics,
				      tsgate_conn_metrics_kind(l->cfg->accept),
				      elapsed_usec(&state->tunnel_start));
	if (l->cfg->accept == TSGATE_CONFIG_ACCEPT_TLS) {
		tsgate_peer_info_from_tls(&conn->info, conn->client);
		tsgate_metrics_tls_handshake(l->metrics,
					     conn->info.tls_resumed);
	} else if (l->cfg->accept == TSGATE_CONFIG_ACCEPT_TLS_GSSAPI) {
		tsgate_peer_info_from_tls(&conn->info, conn->client);
		tsgate_peer_info_from_gssapi(conn, &conn->info, gss);
		tsgate_metrics_tls_handshake(l->metrics,
					     conn->info.tls_resumed);
	} else {
		tsgate_peer_info_from_gssapi(conn, &conn->info, conn->client);
	}
	tsgate_conn_debug(conn, "handshake done",
			  tsgate_identity_summary(&conn->info));
	tsgate_conn_setup_route(req);
}

static void tsgate_conn_setup_route(struct tevent_req *req)
{
	struct tsgate_conn_setup_state *state =
	    tevent_req_data(req, struct tsgate_conn_setup_state);
	struct tsgate_conn *conn = state->conn;
	struct tsgate_conn_listener *l = conn->listener;
	struct tevent_req *subreq;
	size_t i;

	conn->route = tsgate_route_select(l->cfg, &conn->info);
	if (conn->route == NULL) {
		tsgate_conn_drop(conn, TSGATE_METRICS_DROP_NO_ROUTE);
		/* EACCES classifies it; no socket said "Permission denied" */
		conn->no_errno = true;
		/* say why a certificate that looked right matched nothing */
		if (conn->info.client_name_error != NULL) {
			tsgate_conn_setup_fail(req, EACCES,
					       "no route: client certificate "
					       "names rejected: %s",
					       conn->info.client_name_error);
			return;
		}
		tsgate_conn_setup_fail(req, EACCES, "no route");
		return;
	}
	for (i = 0; i < l->cfg->num_routes; i++) {
		if (&l->cfg->routes[i] == conn->route) {
			state->route_backend = l->backends[i];
			conn->route_metrics = l->route_metrics[i];
		}
	}
	tsgate_metrics_conn_routed(&conn->metrics, conn->route_metrics,
				   &conn->stats);
	tsgate_conn_debug(conn, "routed", conn->route->name);
	state->backend_start = tevent_timeval_current();
	if (conn->route->exec != NULL) {
		tsgate_conn_setup_exec(req);
		return;
	}
	subreq =
	    tsgate_backend_connect_send(state, state->ev, state->route_backend);
	if (subreq == NULL) {
		tsgate_conn_setup_fail(req, ENOMEM, "out of memory");
		return;
	}
	tevent_req_set_callback(subreq, tsgate_conn_setup_backend_done, req);
}

static void tsgate_conn_setup_backend_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tsgate_conn_setup_state *state =
	    tevent_req_data(req, struct tsgate_conn_setup_state);
	struct tsgate_conn *conn = state->conn;
	char *reason = NULL;
	const char *why;
	int ret, err = 0;

	tsgate_backend_connect_target(subreq, &conn->backend_text,
				      &conn->backend_addr);
	tsgate_backend_connect_track(subreq, &conn->backend_track);
	ret = tsgate_backend_connect_recv(subreq, &err, conn, &conn->backend,
					  &reason);
	TALLOC_FREE(subreq);
	if (ret != 0) {
		tsgate_metrics_backend_failed(conn->route_metrics);
		tsgate_conn_drop(conn, tsgate_metrics_backend_drop_reason(err));
		if (err == ECONNREFUSED || err == ENOENT) {
			why = "backend refused";
		} else if (err == ETIMEDOUT) {
			why = "backend connect timeout";
		} else {
			why = "backend connect failed";
		}
		tsgate_conn_setup_fail(req, err, "%s%s%s", why,
				       reason != NULL ? ": " : "",
				       tsgate_conn_reason_tail(reason, why));
		return;
	}
	tsgate_metrics_backend_connected(conn->route_metrics,
					 elapsed_usec(&state->backend_start));
	tsgate_conn_debug(conn, "backend connected", conn->route->backend.text);
	tsgate_conn_setup_handoff(req);
}

/* backend: exec: the route's program, started for this connection. */
static void tsgate_conn_setup_exec(struct tevent_req *req)
{
	struct tsgate_conn_setup_state *state =
	    tevent_req_data(req, struct tsgate_conn_setup_state);
	struct tsgate_conn *conn = state->conn;
	struct tsgate_conns *set = conn->set;
	struct tsgate_exec_spawn spawn = {
	    .listener = conn->listener->cfg->name,
	    .route = conn->route,
	    .conn_id = conn->id,
	    .info = &conn->info,
	    .client = conn->client,
	};
	char *reason = NULL;
	int err;

	if (set->execs == NULL) {
		set->execs = tsgate_execs_new(set, set->ev, set->log);
		if (set->execs == NULL) {
			tsgate_conn_setup_fail(req, ENOMEM, "out of memory");
			return;
		}
	}
	err = tsgate_exec_start(conn, set->execs, &spawn, &conn->backend,
				&reason);
	if (err != 0) {
		tsgate_metrics_backend_failed(conn->route_metrics);
		tsgate_conn_drop(conn,
				 err == EAGAIN
				     ? TSGATE_METRICS_DROP_MAX_CONNECTIONS
				     : tsgate_metrics_backend_drop_reason(err));
		conn->no_errno = err == EAGAIN;
		tsgate_conn_setup_fail(req, err, "%s",
				       reason != NULL ? reason
						      : "backend exec failed");
		return;
	}
	tsgate_metrics_backend_connected(conn->route_metrics,
					 elapsed_usec(&state->backend_start));
	tsgate_conn_debug(conn, "program started", conn->route->exec);
	tevent_req_done(req);
}

/* Tell the backend who the client is, when the route says so. */
static void tsgate_conn_setup_handoff(struct tevent_req *req)
{
	struct tsgate_conn_setup_state *state =
	    tevent_req_data(req, struct tsgate_conn_setup_state);
	struct tsgate_conn *conn = state->conn;
	struct tevent_req *subreq;
	size_t len = 0;
	int err = 0;

	switch (conn->route->identity) {
	case TSGATE_CONFIG_IDENTITY_NONE:
		tevent_req_done(req);
		return;
	case TSGATE_CONFIG_IDENTITY_PROXY_V2:
		err = tsgate_identity_proxy_v2(state, &conn->info,
					       &state->handoff, &len);
		break;
	case TSGATE_CONFIG_IDENTITY_KNC:
		err = tsgate_identity_knc(state, &conn->info, &state->handoff,
					  &len);
		break;
	}
	if (err != 0) {
		tsgate_conn_drop(conn, TSGATE_METRICS_DROP_OTHER);
		tsgate_conn_setup_fail(req, err, "identity hand-off refused");
		return;
	}
	state->handoff_iov.iov_base = state->handoff;
	state->handoff_iov.iov_len = len;
	subreq = tstream_writev_send(state, state->ev, conn->backend,
				     &state->handoff_iov, 1);
	if (subreq == NULL) {
		tsgate_conn_setup_fail(req, ENOMEM, "out of memory");
		return;
	}
	tevent_req_set_callback(subreq, tsgate_conn_setup_handoff_done, req);
}

static void tsgate_conn_setup_handoff_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	int ret, err = 0;

	ret = tstream_writev_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		tsgate_conn_setup_fail(req, err, "identity hand-off failed");
		return;
	}
	tevent_req_done(req);
}

/*
 * 0 when the backend is connected and told; else -1 with *perrno and why
 * (copied: the state goes with the request).
 */
static int tsgate_conn_setup_recv(struct tevent_req *req,
				  int *perrno,
				  char *why,
				  size_t why_size)
{
	struct tsgate_conn_setup_state *state =
	    tevent_req_data(req, struct tsgate_conn_setup_state);
	enum tevent_req_state rs;
	uint64_t err;

	if (tevent_req_is_error(req, &rs, &err)) {
		*perrno = rs == TEVENT_REQ_USER_ERROR ? (int)err : ENOMEM;
		snprintf(why, why_size, "%s",
			 state->why[0] != '\0' ? state->why : "out of memory");
		tevent_req_received(req);
		return -1;
	}
	tevent_req_received(req);
	return 0;
}

/*
 * The relay, and the end
 */

static void tsgate_conn_relay_done(struct tsgate_relay *relay,
				   int err,
				   void *private_data);

static void tsgate_conn_setup_done(struct tevent_req *req)
{
	struct tsgate_conn *conn =
	    tevent_req_callback_data(req, struct tsgate_conn);
	const struct tsgate_config_route *r = conn->route;
	struct tsgate_relay_params p = {
	    .idle_timeout_ms =
		ms32(r != NULL && r->has_idle_timeout
			 ? r->idle_timeout_ms
			 : conn->set->cfg->limits.idle_timeout_ms),
	    .sweeper = conn->set->idle_sweeper,
	};
	struct tsgate_relay *relay;
	char why[512];
	int ret, err = 0;

	ret = tsgate_conn_setup_recv(req, &err, why, sizeof(why));
	/* a long-lived connection keeps nothing of its set-up */
	TALLOC_FREE(req);
	if (ret != 0) {
		tsgate_conn_finish(conn, err, why);
		return;
	}
	p.framing = r->framing;
	p.max_pdu =
	    r->framing == TSGATE_CONFIG_FRAMING_RAW ? 0 : (size_t)r->max_pdu;
	relay =
	    tsgate_relay_start(conn, conn->set->ev, conn->client, conn->backend,
			       &p, &conn->stats, tsgate_conn_relay_done, conn);
	if (relay == NULL) {
		tsgate_conn_finish(conn, ENOMEM, "out of memory");
		return;
	}
	/* last: a program already gone may end the relay from here */
	tsgate_exec_set_relay(conn->backend, relay);
}

/* A TLS stream's part of a reason: its truncation, GnuTLS's words. */
static const char *tsgate_conn_tls_reason(struct tsgate_conn *conn,
					  struct tstream_context *stream)
{
	const char *gnutls = tstream_tls_error_reason(stream);
	const char *trunc = tstream_tls_truncated(stream)
				? "TLS stream truncated: peer closed without "
				  "close_notify"
				: NULL;
	const char *both;

	if (gnutls == NULL) {
		return trunc;
	}
	both = talloc_asprintf(conn, "%s%s(GnuTLS: %s)",
			       trunc != NULL ? trunc : "",
			       trunc != NULL ? " " : "", gnutls);
	return both != NULL ? both : gnutls;
}

/*
 * The relay's reason with the tunnel's own text after it (a refused
 * GSSAPI frame, a stream truncated in strict_end mode, what GnuTLS said),
 * from the client side or else the backend side, whichever has one.
 */
static const char *tsgate_conn_tunnel_reason(struct tsgate_conn *conn,
					     const char *reason)
{
	struct tstream_context *streams[2] = {conn->client, conn->backend};

	for (size_t i = 0; i < 2; i++) {
		const char *why = NULL;

		if (tstream_gssapi_is_gssapi(streams[i])) {
			why = tstream_gssapi_error_reason(streams[i]);
		} else {
			why = tsgate_conn_tls_reason(conn, streams[i]);
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

/* Whether GnuTLS failed a stream of the relay (it says why). */
static bool tsgate_conn_tls_failed(const struct tsgate_conn *conn)
{
	return tstream_tls_error_reason(conn->client) != NULL ||
	       tstream_tls_error_reason(conn->backend) != NULL;
}

/*
 * A relay that failed resets both connections when they are freed: a
 * peer that saw an orderly end would take a reply cut short for a whole
 * one (stunnel's "reset = yes"). An idle timeout is no failure of the
 * data: those connections end in order.
 */
static void tsgate_conn_reset_on_failure(struct tsgate_conn *conn, int err)
{
	if (err == 0 || err == ETIMEDOUT) {
		return;
	}
	/* EOPNOTSUPP from a program's socketpair: it just ends */
	(void)tstream_reset(conn->client);
	(void)tstream_reset(conn->backend);
}

static void tsgate_conn_relay_done(struct tsgate_relay *relay,
				   int err,
				   void *private_data)
{
	struct tsgate_conn *conn =
	    talloc_get_type_abort(private_data, struct tsgate_conn);
	enum tsgate_metrics_drop_reason why;
	const char *reason;
	bool stream_err;

	tsgate_exec_set_relay(conn->backend, NULL);
	talloc_free(relay);
	tsgate_conn_reset_on_failure(conn, err);
	if (err == 0) {
		tsgate_conn_finish(conn, 0, NULL);
		return;
	}
	reason =
	    conn->stats.reason != NULL ? conn->stats.reason : "relay failed";
	/* a tunnel's EMSGSIZE/EPROTO is not a PDU verdict */
	stream_err =
	    !conn->stats.pdu_refused && (err == EMSGSIZE || err == EPROTO);
	if (!stream_err && tsgate_metrics_relay_drop_reason(err, &why)) {
		tsgate_conn_drop(conn, why);
	}
	if (stream_err || err == ECONNABORTED || tsgate_conn_tls_failed(conn)) {
		reason = tsgate_conn_tunnel_reason(conn, reason);
	}
	tsgate_conn_finish(conn, err, reason);
}

/*
 * Accept
 */

/*
 * No connection to finish, but the refused client still gets its line
 * (with no id: none was given out).
 */
static void tsgate_conns_log_oom(struct tsgate_conns *set,
				 struct tsgate_conn_listener *l)
{
	struct tsgate_log_kv *kv = tsgate_log_kv_new(set);

	tsgate_log_kv_str(kv, "listener", l->cfg->name);
	tsgate_log_kv_str(kv, "result", "error");
	tsgate_log_kv_str(kv, "reason", "out of memory");
	tsgate_log_kv_str(kv, "error", strerror(ENOMEM));
	tsgate_log_kv_emit(set->log, TSGATE_CONFIG_LOG_WARNING, "conn", kv);
	talloc_free(kv);
}

void tsgate_conns_accept(struct tsgate_conns *set,
			 struct tsgate_conn_listener *l,
			 int fd)
{
	struct tsgate_conn *conn;
	struct tevent_req *req;

	conn = talloc_zero(set, struct tsgate_conn);
	if (conn == NULL) {
		close(fd);
		tsgate_conns_log_oom(set, l);
		return;
	}
	conn->set = set;
	conn->listener = l;
	conn->id = ++set->next_id;
	conn->start = tevent_timeval_current();
	TSG_DLIST_ADD(set->live, conn);
	set->num++;
	l->num_conns++;
	talloc_set_destructor(conn, tsgate_conn_destructor);
	/* counted from accept; the destructor uncounts it */
	tsgate_metrics_conn_init(&conn->metrics, l->metrics);

	req = tsgate_conn_setup_send(conn, set->ev, conn, fd);
	if (req == NULL) {
		tsgate_conn_finish(conn, ENOMEM, "out of memory");
		return;
	}
	tevent_req_set_callback(req, tsgate_conn_setup_done, conn);
}

enum tsgate_metrics_kind tsgate_conn_metrics_kind(enum tsgate_config_accept a)
{
	switch (a) {
	case TSGATE_CONFIG_ACCEPT_GSSAPI:
		return TSGATE_METRICS_KIND_GSSAPI;
	case TSGATE_CONFIG_ACCEPT_TLS_GSSAPI:
		return TSGATE_METRICS_KIND_TLS_GSSAPI;
	default:
		return TSGATE_METRICS_KIND_TLS;
	}
}
