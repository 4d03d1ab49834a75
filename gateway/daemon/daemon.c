/*
 * The tsgate daemon process: its context, signals, reload and drain, and
 * the run loop. The listeners are in listeners.c, the life of a
 * connection in datapath/conn.c, the worker supervisor in workers.c,
 * dropping root in privdrop.c.
 */
#include "daemon.h"
#include "daemon_private.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "health.h"
#include "http_server.h"
#include "metrics.h"
#include "metrics_workers.h"
#include "ticket_keys.h"

#ifndef TSGATE_VERSION
#define TSGATE_VERSION "0.1.0"
#endif

/*
 * Reload and drain
 */

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
	ret = tsgate_listeners_apply(d, cfg, &reason);
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
	tsgate_conns_set_config(d->conns, cfg);
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
		tsgate_daemon_reload(d);
		return;
	}
	tsgate_daemon_drain(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* The context of one serving process, with its loop, log and metrics. */
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
	d->log = tsgate_log_new(d, cfg->log.level, cfg->log.format);
	d->ev = tevent_context_init(d);
	d->conns = d->ev != NULL && d->log != NULL
		       ? tsgate_conns_new(d, d->ev, d->log, cfg)
		       : NULL;
	d->metrics = tsgate_metrics_new(d, TSGATE_VERSION, NULL);
	if (d->config_path == NULL || d->log == NULL || d->ev == NULL ||
	    d->conns == NULL || d->metrics == NULL) {
		fprintf(stderr, "tsgate: out of memory\n");
		talloc_free(d);
		return NULL;
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

int tsgate_daemon_serve(TALLOC_CTX *mem_ctx,
			const char *config_path,
			struct tsgate_config *cfg,
			unsigned worker,
			unsigned num_workers,
			struct tsgate_metrics_links *links,
			const struct tsgate_ticket_secret *ticket_secret)
{
	struct tsgate_daemon *d;
	int ret;

	d = tsgate_daemon_new(mem_ctx, config_path, cfg, worker, num_workers,
			      links, ticket_secret);
	if (d == NULL) {
		return 1;
	}
	if (tsgate_daemon_start(d) != 0) {
		talloc_free(d);
		return 1;
	}
	tsgate_listeners_log(d);
	tsgate_metrics_set_state(d->metrics, TSGATE_METRICS_READY);
	tsgate_log_msg(d->log, TSGATE_CONFIG_LOG_INFO, "start",
		       "tsgate ready: %zu listener(s), config %s",
		       cfg->num_listeners, config_path);

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
					  secret);
	}
	talloc_free(secret);
	return ret;
}
