/* SPDX-License-Identifier: MIT */
/*
 * The daemon's listeners: one per configured listener, each with its
 * listening socket, tunnel parameters, backends and metrics handles.
 * Accepted sockets go to the connection set (datapath/conn.h). A reload
 * swaps listeners without closing a socket whose address stays; the
 * replaced ones are retired and go with their last connection.
 */
#include "daemon_private.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "backend_pool.h"
#include "config_tunnels.h"
#include "listen_socket.h"
#include "metrics.h"
#include "tsgate_dlist.h"
#include "tstream_gssapi.h"
#include "tstream_tls.h"

/* Connections accepted per readable event before going back to the loop. */
#define TSGATE_ACCEPT_BATCH 32
/* Out of file descriptors: stop accepting for this long, don't spin. */
#define TSGATE_ACCEPT_PAUSE_MS 100
/* The listen() backlog of a connection listener. */
#define TSGATE_LISTEN_BACKLOG 1024

static uint32_t ms32(uint64_t ms)
{
	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

static void tsgate_listener_free_now(struct tevent_context *ev,
				     struct tevent_immediate *im,
				     void *private_data)
{
	struct tsgate_listener *l =
	    talloc_get_type_abort(private_data, struct tsgate_listener);

	(void)ev;
	(void)im;
	if (l->conn.num_conns == 0) {
		TSG_DLIST_REMOVE(l->daemon->retired, l);
		talloc_free(l);
	}
}

/* Its last connection went: a retired listener goes too. */
static void tsgate_listener_unused(void *private_data)
{
	struct tsgate_listener *l =
	    talloc_get_type_abort(private_data, struct tsgate_listener);

	if (l->retired) {
		/* not from inside the connection's free: it still uses l */
		tevent_schedule_immediate(l->free_im, l->daemon->ev,
					  tsgate_listener_free_now, l);
	}
}

/*
 * Stop accepting: close the socket (and remove our unix socket file). The
 * listener object itself stays while connections it accepted live: they
 * use its tunnel parameters, backends and config tree.
 */
static void tsgate_listener_close(struct tsgate_listener *l)
{
	TALLOC_FREE(l->fde);
	TALLOC_FREE(l->accept_pause);
	TALLOC_FREE(l->sock);
}

/* the watch before the socket: tevent must not watch a closed fd */
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
	int lfd = tsgate_listen_socket_fd(l->sock);
	int i, fd, err;

	(void)flags;
	for (i = 0; i < TSGATE_ACCEPT_BATCH; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd != -1) {
			tsgate_conns_accept(l->daemon->conns, &l->conn, fd);
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
			       l->conn.cfg->name, strerror(err),
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

/* Watch the listening socket fd for clients (l's own, or one it takes). */
static int tsgate_listener_watch(struct tsgate_listener *l, int fd)
{
	l->fde = tevent_add_fd(l->daemon->ev, l, fd, TEVENT_FD_READ,
			       tsgate_listener_accept, l);
	return l->fde != NULL ? 0 : ENOMEM;
}

/*
 * What every accepted TCP connection gets (TCP_NODELAY, the listener's
 * tcp_keepalive) set once on the listening socket, which they inherit;
 * set per connection instead when that fails. A unix listener has
 * nothing to set.
 */
static void tsgate_listener_tcp_options(struct tsgate_listener *l)
{
	const struct tsgate_config_listener *cfg = l->conn.cfg;
	const struct tsgate_config_keepalive *ka = &cfg->keepalive;

	if (cfg->listen.kind != TSGATE_CONFIG_ADDR_TCP) {
		l->conn.tcp_options_inherited = true;
		return;
	}
	l->conn.tcp_options_inherited =
	    tsgate_listen_socket_tcp_options(l->sock, true, ka->enabled,
					     ka->idle_s, ka->interval_s,
					     ka->count) == 0;
}

static int tsgate_listener_bind(struct tsgate_listener *l, char **preason)
{
	const struct tsgate_config_addr *a = &l->conn.cfg->listen;
	const char *step = NULL;
	unsigned flags = 0;
	int err;

	if (a->kind == TSGATE_CONFIG_ADDR_UNIX) {
		err = tsgate_listen_socket_unix(
		    l, a->path, TSGATE_LISTEN_BACKLOG, &l->sock, &step);
	} else {
		/* workers share a TCP port; the kernel spreads the clients */
		if (l->daemon->num_workers > 1) {
			flags |= TSGATE_LISTEN_SOCKET_REUSEPORT;
		}
		err = tsgate_listen_socket_tcp(l, a->ip, a->port, flags,
					       TSGATE_LISTEN_BACKLOG, &l->sock,
					       &step);
	}
	if (err != 0) {
		if (step != NULL && (strcmp(step, "socket") == 0 ||
				     strcmp(step, "SO_REUSEPORT") == 0)) {
			*preason = talloc_asprintf(l, "%s: %s: %s", a->text,
						   step, strerror(err));
		} else {
			*preason = talloc_asprintf(l, "%s: %s", a->text,
						   strerror(err));
		}
		return err;
	}
	tsgate_listener_tcp_options(l);
	err = tsgate_listener_watch(l, tsgate_listen_socket_fd(l->sock));
	if (err != 0) {
		*preason = talloc_strdup(l, "out of memory");
	}
	return err;
}

/*
 * The listener's TLS server parameters, built by the config code so that
 * --check-config and the daemon agree on them.
 */
static int tsgate_listener_tls(struct tsgate_listener *l, char **preason)
{
	const struct tsgate_config_listener *cfg = l->conn.cfg;
	char *error = NULL;
	int ret;

	if (cfg->tls == NULL) {
		*preason = talloc_strdup(l, "no tls block");
		return EINVAL;
	}
	ret = tsgate_config_tls_server_params(l, cfg->tls, cfg->name,
					      l->daemon->ticket_secret,
					      &l->conn.tls, &error);
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
	const struct tsgate_config_gssapi_server *g = l->conn.cfg->gssapi;
	char *reason = NULL;
	int ret;

	if (g == NULL) {
		*preason = talloc_strdup(l, "no gssapi block");
		return EINVAL;
	}
	ret = tstream_gssapi_params_acceptor(l, g->keytab, g->principal,
					     &l->conn.gssapi, &reason);
	if (ret != 0) {
		*preason = talloc_asprintf(l, "gssapi: %s",
					   reason ? reason : strerror(ret));
		return ret;
	}
	tstream_gssapi_params_set_handshake_timeout(
	    l->conn.gssapi, ms32(cfg_tree->limits.handshake_timeout_ms));
	tstream_gssapi_params_set_strict_eof(l->conn.gssapi, g->strict_end);
	tstream_gssapi_params_set_pool(l->conn.gssapi, l->daemon->gssapi_pool);
	return 0;
}

/* The backends and metrics handles of l's routes. */
static int tsgate_listener_routes(struct tsgate_listener *l,
				  struct tsgate_config *cfg_tree,
				  char **preason)
{
	struct tsgate_daemon *d = l->daemon;
	const struct tsgate_config_listener *cfg = l->conn.cfg;
	size_t i;
	int ret;

	l->conn.backends =
	    talloc_zero_array(l, struct tsgate_backend *, cfg->num_routes);
	l->conn.route_metrics = talloc_zero_array(
	    l, struct tsgate_metrics_route *, cfg->num_routes);
	if ((l->conn.backends == NULL || l->conn.route_metrics == NULL) &&
	    cfg->num_routes > 0) {
		return ENOMEM;
	}
	/* NULL handles (out of memory) only lose counts */
	l->conn.metrics = tsgate_metrics_listener_new(l, d->metrics, cfg->name);
	if (cfg->accept != TSGATE_CONFIG_ACCEPT_PLAIN) {
		tsgate_metrics_listener_kind(
		    l->conn.metrics, tsgate_conn_metrics_kind(cfg->accept));
	}
	for (i = 0; i < cfg->num_routes; i++) {
		l->conn.route_metrics[i] = tsgate_metrics_route_new(
		    l, l->conn.metrics, cfg->routes[i].name);
	}
	for (i = 0; i < cfg->num_routes; i++) {
		ret = tsgate_backend_new(l, d->pool, cfg->name, &cfg->routes[i],
					 cfg_tree->limits.connect_timeout_ms,
					 &l->conn.backends[i], preason);
		if (ret != 0) {
			*preason = talloc_asprintf(
			    d, "route %s: %s", cfg->routes[i].name, *preason);
			return ret;
		}
		tsgate_backend_set_gssapi_pool(l->conn.backends[i],
					       d->gssapi_pool);
	}
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
	int ret = 0;

	l = talloc_zero(d, struct tsgate_listener);
	if (l == NULL) {
		return ENOMEM;
	}
	l->daemon = d;
	l->conn.cfg = cfg;
	l->conn.unused_fn = tsgate_listener_unused;
	l->conn.private_data = l;
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
	} else if (cfg->accept == TSGATE_CONFIG_ACCEPT_TLS_GSSAPI) {
		ret = tsgate_listener_tls(l, preason);
		if (ret == 0) {
			ret = tsgate_listener_gssapi(l, cfg_tree, preason);
		}
	}
	if (ret != 0) {
		*preason = talloc_steal(d, *preason);
		talloc_free(l);
		return ret;
	}
	ret = tsgate_listener_routes(l, cfg_tree, preason);
	if (ret != 0) {
		talloc_free(l);
		return ret;
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

static struct tsgate_listener *find_listener(
    struct tsgate_listener *list, const struct tsgate_config_listener *cfg)
{
	for (; list != NULL; list = list->next) {
		if (strcmp(list->conn.cfg->name, cfg->name) == 0 &&
		    same_address(&list->conn.cfg->listen, &cfg->listen)) {
			return list;
		}
	}
	return NULL;
}

/* The listeners of cfg_tree this process serves, not bound yet. */
static int tsgate_listeners_prepare(struct tsgate_daemon *d,
				    struct tsgate_config *cfg_tree,
				    struct tsgate_listener **fresh,
				    char **preason)
{
	size_t i;
	int ret;

	for (i = 0; i < cfg_tree->num_listeners; i++) {
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
			return ret;
		}
	}
	return 0;
}

/* Bind the addresses that are new, then take over the others' sockets. */
static int tsgate_listeners_bind(struct tsgate_daemon *d,
				 struct tsgate_listener **fresh,
				 size_t n,
				 char **preason)
{
	struct tsgate_listener *old;
	size_t i;
	int ret;

	/* new addresses first: a bind failure still changes nothing */
	for (i = 0; i < n; i++) {
		if (fresh[i] == NULL ||
		    find_listener(d->listeners, fresh[i]->conn.cfg) != NULL) {
			continue;
		}
		ret = tsgate_listener_bind(fresh[i], preason);
		if (ret != 0) {
			*preason =
			    talloc_asprintf(d, "listener %s: %s",
					    fresh[i]->conn.cfg->name, *preason);
			return ret;
		}
	}
	/*
	 * A kept address: watch the old socket first, for every one of
	 * them, and move the sockets only once nothing can fail. (Moving
	 * one by one lost the moved sockets when a later watch failed: the
	 * refused set was freed with them, and the running listeners
	 * stopped accepting.)
	 */
	for (i = 0; i < n; i++) {
		old = fresh[i] != NULL
			  ? find_listener(d->listeners, fresh[i]->conn.cfg)
			  : NULL;
		if (old != NULL &&
		    tsgate_listener_watch(
			fresh[i], tsgate_listen_socket_fd(old->sock)) != 0) {
			return ENOMEM;
		}
	}
	for (i = 0; i < n; i++) {
		old = fresh[i] != NULL
			  ? find_listener(d->listeners, fresh[i]->conn.cfg)
			  : NULL;
		if (old != NULL) {
			TALLOC_FREE(old->fde);
			fresh[i]->sock = talloc_move(fresh[i], &old->sock);
			/* the new config's options, from the next accept on */
			tsgate_listener_tcp_options(fresh[i]);
		}
	}
	return 0;
}

int tsgate_listeners_apply(struct tsgate_daemon *d,
			   struct tsgate_config *cfg_tree,
			   char **preason)
{
	struct tsgate_listener **fresh, *l, *old;
	size_t i, n = cfg_tree->num_listeners;
	int ret;

	fresh = talloc_zero_array(d, struct tsgate_listener *, n + 1);
	if (fresh == NULL ||
	    tsgate_pool_set_resolvers(d->pool, cfg_tree->resolvers,
				      cfg_tree->num_resolvers) != 0) {
		talloc_free(fresh);
		return ENOMEM;
	}
	ret = tsgate_listeners_prepare(d, cfg_tree, fresh, preason);
	if (ret == 0) {
		ret = tsgate_listeners_bind(d, fresh, n, preason);
	}
	if (ret != 0) {
		for (i = 0; i < n; i++) {
			talloc_free(fresh[i]);
		}
		talloc_free(fresh);
		return ret;
	}
	while ((old = d->listeners) != NULL) {
		TSG_DLIST_REMOVE(d->listeners, old);
		tsgate_listener_close(old);
		old->retired = true;
		TSG_DLIST_ADD(d->retired, old);
		if (old->conn.num_conns == 0) {
			tevent_schedule_immediate(
			    old->free_im, d->ev, tsgate_listener_free_now, old);
		}
	}
	for (i = n; i > 0; i--) {
		l = fresh[i - 1];
		if (l != NULL) {
			TSG_DLIST_ADD(d->listeners, l);
		}
	}
	talloc_free(fresh);
	return 0;
}

void tsgate_listeners_close(struct tsgate_daemon *d)
{
	struct tsgate_listener *l;

	for (l = d->listeners; l != NULL; l = l->next) {
		tsgate_listener_close(l);
	}
}

void tsgate_listeners_log(struct tsgate_daemon *d)
{
	struct tsgate_listener *l;

	for (l = d->listeners; l != NULL; l = l->next) {
		const struct tsgate_config_listener *cfg = l->conn.cfg;
		struct tsgate_log_kv *kv = tsgate_log_kv_new(d);

		tsgate_log_kv_str(kv, "listener", cfg->name);
		tsgate_log_kv_str(kv, "listen", cfg->listen.text);
		tsgate_log_kv_str(kv, "accept",
				  tsgate_config_accept_name(cfg->accept));
		tsgate_log_kv_u64(kv, "routes", cfg->num_routes);
		tsgate_log_kv_emit(d->log, TSGATE_CONFIG_LOG_INFO, "listen",
				   kv);
		talloc_free(kv);
	}
}
