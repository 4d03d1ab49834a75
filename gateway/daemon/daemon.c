/* SPDX-License-Identifier: MIT */
/*
 * The tsgate daemon process: its context, signals, reload and drain, and
 * the run loop. The listeners are in listeners.c, the life of a
 * connection in datapath/conn.c, the worker supervisor in workers.c,
 * dropping root in privdrop.c.
 */
#include "daemon.h"
#include "daemon_private.h"
#include "backend_pool.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"
#include "cred_info.h"
#include "cred_watch.h"
#include "health.h"
#include "http_server.h"
#include "lib_versions.h"
#include "metrics.h"
#include "metrics_creds.h"
#include "metrics_workers.h"
#include "ticket_keys.h"
#include "sd_notify.h"

#ifndef TSGATE_VERSION
#define TSGATE_VERSION "0.1.0"
#endif

/*
 * Reload and drain
 */

/*
 * Tell systemd (one process) or the supervisor (a worker) that this
 * process is ready: at start, and when a reload is over.
 */
static void tsgate_daemon_tell_ready(struct tsgate_daemon *d,
				     enum tsgate_worker_event what,
				     const char *status)
{
	union sigval v = {.sival_int = (int)what};

	if (d->num_workers > 1) {
		/*
		 * Only to our supervisor: orphaned, our parent is init (or a
		 * subreaper), and to systemd SIGRTMIN+1 means "rescue".
		 */
		if (d->supervisor > 1 && getppid() == d->supervisor) {
			(void)sigqueue(d->supervisor, TSGATE_WORKER_SIGNAL, v);
		}
		return;
	}
	(void)tsgate_notify(d->notify, "READY=1\nSTATUS=%s", status);
}

static bool tsgate_daemon_reload_config(struct tsgate_daemon *d,
					const char *why);

/*
 * The credentials of d->cfg are in use (start-up or a reload): watch
 * their files, and publish their expiry. A stapled OCSP response past its
 * nextUpdate is loaded but GnuTLS does not send it: say so.
 */
static void tsgate_daemon_creds_loaded(struct tsgate_daemon *d)
{
	TALLOC_CTX *tmp = talloc_new(d);
	struct tsgate_metrics_cred *creds = NULL;
	time_t now = time(NULL);
	size_t n = 0, i;

	tsgate_cred_watch_set(d->cred_watch, d->cfg);
	if (tmp == NULL ||
	    tsgate_config_cred_metrics(tmp, d->cfg, &creds, &n) != 0 ||
	    tsgate_metrics_set_creds(d->metrics, creds, n) != 0) {
		tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_WARNING, "reload",
			       "out of memory: certificate expiry metrics "
			       "not updated");
	}
	for (i = 0; i < n; i++) {
		if (creds[i].kind == TSGATE_METRICS_CRED_OCSP &&
		    creds[i].time != 0 && creds[i].time < (int64_t)now) {
			tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_WARNING,
				       "ocsp",
				       "listener %s: the OCSP response %s "
				       "is past its nextUpdate; not stapled "
				       "until it is replaced",
				       creds[i].listener, creds[i].path);
		}
	}
	talloc_free(tmp);
}

void tsgate_daemon_reload(struct tsgate_daemon *d, const char *why)
{
	if (d->draining) {
		return;
	}
	(void)tsgate_notify_reloading(d->notify);
	tsgate_daemon_tell_ready(d, TSGATE_WORKER_RELOADED,
				 tsgate_daemon_reload_config(d, why)
				     ? "ready: configuration reloaded"
				     : "ready: reload refused, the running "
				       "configuration stays");
}

/* true when the new configuration runs; logged and counted either way */
static bool tsgate_daemon_reload_config(struct tsgate_daemon *d,
					const char *why)
{
	struct tsgate_config *cfg = NULL;
	struct tsgate_config_errors *errs = NULL;
	struct tsgate_config *old = d->cfg;
	char *reason = NULL;
	size_t i;
	int ret;

	ret = tsgate_config_load(d, d->config_path,
				 TSGATE_CONFIG_CHECK_CREDENTIALS, &cfg, &errs);
	if (ret != 0) {
		for (i = 0; errs != NULL && i < errs->num_errors; i++) {
			tsgate_log_msg(
			    d->log, TSGATE_CONFIG_LOG_ERROR, "reload", "%s",
			    tsgate_config_error_string(errs, &errs->errors[i]));
		}
		/* EINVAL: the errors above say what is wrong, not errno */
		if (ret == EINVAL && errs != NULL) {
			tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_ERROR,
				       "reload",
				       "%s (%s): %zu error%s; the running "
				       "configuration stays",
				       d->config_path, why, errs->num_errors,
				       errs->num_errors == 1 ? "" : "s");
		} else {
			tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_ERROR,
				       "reload",
				       "%s (%s): cannot load: %s; the running "
				       "configuration stays",
				       d->config_path, why, strerror(ret));
		}
		talloc_free(errs);
		tsgate_metrics_reload(d->metrics, false);
		return false;
	}
	ret = tsgate_listeners_apply(d, cfg, &reason);
	if (ret != 0) {
		tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_ERROR, "reload",
			       "%s (%s); the running configuration stays",
			       reason ? reason : strerror(ret), why);
		talloc_free(reason);
		talloc_free(cfg);
		tsgate_metrics_reload(d->metrics, false);
		return false;
	}
	/* listeners hold references to the trees they use */
	d->cfg = cfg;
	talloc_unlink(d, old);
	tsgate_conns_set_config(d->conns, cfg);
	d->log->level = tsgate_log_level_effective(cfg->log.level);
	d->log->format = cfg->log.format;
	tsgate_metrics_reload(d->metrics, true);
	tsgate_daemon_creds_loaded(d);
	tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_INFO, "reload",
		       "%s (%s): %zu listener(s); live connections keep their "
		       "configuration",
		       d->config_path, why, cfg->num_listeners);
	return true;
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

	(void)ev;
	(void)te;
	(void)now;
	d->grace_timer = NULL;
	tsgate_conns_shutdown(d->conns);
	d->stop = true;
}

static void tsgate_daemon_drain(struct tsgate_daemon *d, const char *why)
{
	uint64_t ms = d->cfg->limits.shutdown_grace_ms;

	if (d->draining) {
		return;
	}
	d->draining = true;
	tsgate_conns_drain(d->conns);
	tsgate_metrics_set_state(d->metrics, TSGATE_METRICS_DRAINING);
	(void)tsgate_notify(d->notify,
			    "STOPPING=1\nSTATUS=%s: draining %u "
			    "connection(s)",
			    why, (unsigned)tsgate_conns_num(d->conns));
	tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_INFO, "stop",
		       "%s: stop accepting, draining %u connection(s)", why,
		       (unsigned)tsgate_conns_num(d->conns));
	tsgate_listeners_close(d);
	if (tsgate_conns_num(d->conns) == 0) {
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
		tsgate_daemon_reload(d, "SIGHUP");
		return;
	}
	tsgate_daemon_drain(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* tsgate_build_info: the versions of the libraries beside ours. */
static void tsgate_daemon_build_info(struct tsgate_metrics *m)
{
	struct tsgate_lib_version v[TSGATE_LIB_VERSIONS_NUM];
	struct tsgate_metrics_label labels[TSGATE_LIB_VERSIONS_NUM];
	char talloc_buf[32];
	size_t i, n;

	n = tsgate_lib_versions(v, talloc_buf, sizeof(talloc_buf));
	for (i = 0; i < n; i++) {
		labels[i].name = v[i].name;
		labels[i].value = v[i].version;
	}
	/* out of memory: the version alone is still right */
	(void)tsgate_metrics_set_build_info(m, labels, n);
}

/* A credential file changed: reload as SIGHUP does. */
static void tsgate_daemon_cred_changed(void *private_data, const char *path)
{
	struct tsgate_daemon *d =
	    talloc_get_type_abort(private_data, struct tsgate_daemon);
	char *why = talloc_asprintf(d, "%s changed", path);

	tsgate_daemon_reload(d,
			     why != NULL ? why : "a credential file changed");
	talloc_free(why);
}

/* The context of one serving process, with its loop, log and metrics. */
static void tsgate_daemon_pool_metrics(const void *private_data, char **out)
{
	tsgate_pool_render_metrics(private_data, out);
}

static struct tsgate_daemon *tsgate_daemon_new(
    TALLOC_CTX *mem_ctx,
    const char *config_path,
    struct tsgate_config *cfg,
    unsigned worker,
    unsigned num_workers,
    struct tsgate_metrics_links *links,
    const struct tsgate_ticket_secret *ticket_secret)
{
	struct tsgate_daemon *d;

	d = talloc_zero(mem_ctx, struct tsgate_daemon);
	if (d == NULL || talloc_reference(d, cfg) == NULL) {
		/* every failed start says why (issue 13) */
		fprintf(stderr, "tsgate: out of memory\n");
		talloc_free(d);
		return NULL;
	}
	d->cfg = cfg;
	d->ticket_secret = ticket_secret;
	d->worker = worker;
	d->num_workers = num_workers;
	d->config_path = talloc_strdup(d, config_path);
	d->log = tsgate_log_new(d, tsgate_log_level_effective(cfg->log.level),
				cfg->log.format);
	d->ev = tevent_context_init(d);
	d->conns = d->ev != NULL && d->log != NULL
		       ? tsgate_conns_new(d, d->ev, d->log, cfg)
		       : NULL;
	d->metrics = tsgate_metrics_new(d, TSGATE_VERSION, NULL);
	d->pool = d->ev != NULL ? tsgate_pool_new(d, d->ev, d->log) : NULL;
	d->cred_watch =
	    d->ev != NULL ? tsgate_cred_watch_new(d, d->ev, d->log,
						  tsgate_daemon_cred_changed, d)
			  : NULL;
	if (d->config_path == NULL || d->log == NULL || d->ev == NULL ||
	    d->conns == NULL || d->metrics == NULL || d->pool == NULL ||
	    d->cred_watch == NULL) {
		fprintf(stderr, "tsgate: out of memory\n");
		talloc_free(d);
		return NULL;
	}
	tsgate_metrics_set_extra(d->metrics, tsgate_daemon_pool_metrics,
				 d->pool);
	tsgate_daemon_build_info(d->metrics);
	if (num_workers > 1) {
		d->log->worker = (int)worker;
	} else {
		/* with workers, the supervisor speaks for all of them */
		int ret =
		    tsgate_notify_new(d, getenv("NOTIFY_SOCKET"), &d->notify);

		if (ret != 0) {
			tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_WARNING,
				       "start",
				       "NOTIFY_SOCKET: %s; systemd will not "
				       "hear READY=1",
				       strerror(ret));
		}
	}
	if (links != NULL) {
		d->metrics_workers = tsgate_metrics_workers_new(
		    d, d->ev, d->metrics, links, worker);
		if (d->metrics_workers == NULL) {
			fprintf(stderr, "tsgate: out of memory\n");
			talloc_free(d);
			return NULL;
		}
	}
	return d;
}

/*
 * Signals, the metrics endpoint, the listeners, then root dropped: 0 when
 * the daemon is ready (the reason of a failure is logged).
 */
static int tsgate_daemon_start(struct tsgate_daemon *d)
{
	const struct tsgate_config *cfg = d->cfg;
	char *reason = NULL;
	int ret;

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
		return ENOMEM;
	}
	/* with workers, worker 0 serves /metrics for all of them */
	if (cfg->metrics_listen != NULL && d->worker == 0) {
		ret = tsgate_metrics_server_new(d, d->ev, d->metrics,
						cfg->metrics_listen, NULL,
						&d->metrics_server, &reason);
		if (ret != 0) {
			/* the reason names the address */
			tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_ERROR, "start",
				       "metrics: %s",
				       reason ? reason : strerror(ret));
			return ret;
		}
		if (d->metrics_workers != NULL) {
			tsgate_metrics_workers_serve(d->metrics_workers,
						     d->metrics_server);
		}
	}
	ret = tsgate_listeners_apply(d, d->cfg, &reason);
	if (ret != 0) {
		tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_ERROR, "start", "%s",
			       reason ? reason : strerror(ret));
		return ret;
	}
	return tsgate_privdrop(d->log, cfg);
}

/*
 * Delegated-credential caches of exec routes that a crashed or killed
 * process left behind (the running ones are kept: their pid lives).
 * After privdrop: the directories are the user's the programs run as.
 */
static void tsgate_daemon_clean_ccaches(struct tsgate_daemon *d)
{
	unsigned n = tsgate_execs_clean_stale(d->cfg);

	if (n > 0) {
		tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_INFO, "start",
			       "removed %u stale exec ccache(s)", n);
	}
}

static void tsgate_daemon_block_stop_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

int tsgate_daemon_serve(TALLOC_CTX *mem_ctx,
			const char *config_path,
			struct tsgate_config *cfg,
			unsigned worker,
			unsigned num_workers,
			struct tsgate_metrics_links *links,
			pid_t supervisor,
			const struct tsgate_ticket_secret *ticket_secret)
{
	struct tsgate_daemon *d;
	int ret;

	d = tsgate_daemon_new(mem_ctx, config_path, cfg, worker, num_workers,
			      links, ticket_secret);
	if (d == NULL) {
		return 1;
	}
	d->supervisor = supervisor;
	if (tsgate_daemon_start(d) != 0) {
		talloc_free(d);
		return 1;
	}
	tsgate_listeners_log(d);
	tsgate_daemon_clean_ccaches(d);
	tsgate_daemon_creds_loaded(d);
	tsgate_metrics_set_state(d->metrics, TSGATE_METRICS_READY);
	tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_INFO, "start",
		       "tsgate ready: %zu listener(s), config %s",
		       cfg->num_listeners, config_path);
	tsgate_daemon_tell_ready(d, TSGATE_WORKER_READY,
				 "ready: listeners bound");

	/* draining ends when the last connection has gone */
	while (!d->stop && !(d->draining && tsgate_conns_num(d->conns) == 0)) {
		if (tevent_loop_once(d->ev) != 0) {
			tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_ERROR, "stop",
				       "event loop failed: %s",
				       strerror(errno));
			d->exit_code = 1;
			break;
		}
	}
	/*
	 * Freeing the event context gives SIGTERM back its default action:
	 * a second SIGTERM now (systemd's, or an impatient operator's) would
	 * kill the process and turn a clean exit into "killed by signal".
	 * Held back, it dies with the process.
	 */
	tsgate_daemon_block_stop_signals();
	/* the connections before the listeners they use */
	tsgate_conns_free_all(d->conns);
	tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_INFO, "stop",
		       "tsgate stopped");
	ret = d->exit_code;
	talloc_free(d);
	return ret;
}

int tsgate_daemon_run(TALLOC_CTX *mem_ctx,
		      const char *config_path,
		      struct tsgate_config *cfg)
{
	/*
	 * One ticket secret for the daemon's life, made before the workers
	 * fork: every worker derives the same ticket keys, so a session
	 * resumes on whichever worker the kernel gives the connection, and
	 * a reload keeps the keys (a listener's ticket_keys_file overrides).
	 */
	struct tsgate_ticket_secret *secret =
	    tsgate_ticket_secret_random(mem_ctx);
	int ret;

	if (secret == NULL) {
		fprintf(stderr, "tsgate: cannot make the ticket key\n");
		return 1;
	}
	if (cfg->workers > 1) {
		ret =
		    tsgate_workers_supervise(mem_ctx, config_path, cfg, secret);
	} else {
		ret = tsgate_daemon_serve(mem_ctx, config_path, cfg, 0, 1, NULL,
					  0, secret);
	}
	talloc_free(secret);
	return ret;
}
