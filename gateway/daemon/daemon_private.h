/* SPDX-License-Identifier: MIT */
/*
 * What the daemon's files share: the daemon context, the listener object
 * and the calls between daemon.c (context, signals, reload, drain),
 * listeners.c, workers.c (supervisor) and privdrop.c.
 */
#ifndef TSGATE_DAEMON_PRIVATE_H
#define TSGATE_DAEMON_PRIVATE_H

#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include <talloc.h>
#include <tevent.h>

#include "config.h"
#include "config_tunnels.h" /* the loader (reload) */
#include "conn.h"
#include "log.h"

struct tsgate_listener;
struct tsgate_listen_socket;
struct tsgate_metrics;
struct tsgate_metrics_links;
struct tsgate_metrics_workers;
struct tsgate_http_server;
struct tsgate_ticket_secret;
struct tsgate_notify;
struct tsgate_cred_watch;

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
	struct tsgate_conns *conns;
	/* session ticket secret, made before the workers fork */
	const struct tsgate_ticket_secret *ticket_secret;
	struct tsgate_pool *pool; /* the routes' backends, kept on reload */
	/* $NOTIFY_SOCKET (one process; with workers the supervisor's) */
	struct tsgate_notify *notify;
	struct tsgate_cred_watch *cred_watch; /* reload: {watch: true} */
	unsigned worker;                      /* 0 .. num_workers-1 */
	unsigned num_workers; /* workers: N (1: no supervisor) */
	pid_t supervisor;     /* workers: N > 1: told when ready */
	bool draining;
	bool stop;
	int exit_code;
	struct tevent_timer *grace_timer;
};

struct tsgate_listener {
	struct tsgate_listener *prev, *next;
	struct tsgate_daemon *daemon;
	/* what its connections use: cfg, tunnel parameters, backends */
	struct tsgate_conn_listener conn;
	struct tsgate_config *cfg_tree; /* a talloc reference: kept alive */
	bool retired;
	struct tevent_immediate *free_im;
	struct tsgate_listen_socket *sock; /* NULL once closed */
	struct tevent_fd *fde;
	struct tevent_timer *accept_pause;
};

/* daemon.c; supervisor: the pid to tell (workers: N > 1), else 0 */
int tsgate_daemon_serve(TALLOC_CTX *mem_ctx,
			const char *config_path,
			struct tsgate_config *cfg,
			unsigned worker,
			unsigned num_workers,
			struct tsgate_metrics_links *links,
			pid_t supervisor,
			const struct tsgate_ticket_secret *ticket_secret);

/*
 * Load the config file again and apply it: SIGHUP and a changed
 * credential file (cred_watch.c) both come here; why says which.
 */
void tsgate_daemon_reload(struct tsgate_daemon *d, const char *why);

/* listeners.c */

/*
 * Make the listeners of cfg_tree the accepting ones. A listener of the
 * same name on the same address keeps its socket (no connection attempt
 * is refused during a reload); the others are bound now. On failure
 * nothing changed and *preason (on d) says why. The replaced listeners
 * are retired: they stop accepting and go when their last connection
 * does.
 */
int tsgate_listeners_apply(struct tsgate_daemon *d,
			   struct tsgate_config *cfg_tree,
			   char **preason);
/* Stop accepting on every listener (draining). */
void tsgate_listeners_close(struct tsgate_daemon *d);
/* One "listen" line per accepting listener. */
void tsgate_listeners_log(struct tsgate_daemon *d);

/* workers.c */

/*
 * What a worker tells the supervisor (sigqueue() of TSGATE_WORKER_SIGNAL
 * with this value), so that systemd hears READY=1 once all are up and
 * again once all have reloaded.
 */
#define TSGATE_WORKER_SIGNAL (SIGRTMIN + 1)
enum tsgate_worker_event {
	TSGATE_WORKER_READY = 1,    /* listeners bound, accepting */
	TSGATE_WORKER_RELOADED = 2, /* a SIGHUP handled (applied or not) */
};
int tsgate_workers_supervise(TALLOC_CTX *mem_ctx,
			     const char *config_path,
			     struct tsgate_config *cfg,
			     const struct tsgate_ticket_secret *ticket_secret);

/* privdrop.c */

/* After binding: switch to cfg->user (and its group) when asked. */
int tsgate_privdrop(struct tsgate_log *log, const struct tsgate_config *cfg);

#endif /* TSGATE_DAEMON_PRIVATE_H */
