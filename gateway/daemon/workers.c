/* SPDX-License-Identifier: MIT */
/*
 * workers: N > 1. This process only supervises: it forks N workers, each
 * a whole daemon with its own event loop, sharing the TCP listeners with
 * SO_REUSEPORT. Signals are passed on; a worker that dies is restarted
 * (at most once a second); a worker failing at start-up stops them all.
 */
#include "daemon_private.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config_tunnels.h"
#include "metrics_workers.h"
#include "sd_notify.h"

struct tsgate_worker_slot {
	pid_t pid;
	time_t started;
	bool ready;     /* said TSGATE_WORKER_READY */
	bool reloading; /* got SIGHUP, has not said TSGATE_WORKER_RELOADED */
};

struct tsgate_supervisor {
	TALLOC_CTX *mem_ctx; /* the workers' (a fork's copy of it) */
	const char *config_path;
	struct tsgate_config *first; /* the one given: not ours to free */
	struct tsgate_config *cur;   /* the last good reload's */
	unsigned n;
	struct tsgate_worker_slot *slots;
	unsigned alive;
	bool stopping;
	int exit_code;
	struct tsgate_log *log;
	struct tsgate_metrics_links *links;
	const struct tsgate_ticket_secret *ticket_secret;
	struct tsgate_notify *notify; /* $NOTIFY_SOCKET, for all workers */
	bool told_ready;              /* READY=1 sent since the last change */
	sigset_t oldmask;
};

/* Start worker i (with the configuration of the last good reload). */
static void tsgate_worker_spawn(struct tsgate_supervisor *s, unsigned i)
{
	pid_t supervisor = getpid();
	pid_t pid = fork();

	if (pid == 0) {
		/* the worker: signals as before, then the normal daemon */
		sigprocmask(SIG_SETMASK, &s->oldmask, NULL);
		exit(tsgate_daemon_serve(s->mem_ctx, s->config_path, s->cur, i,
					 s->n, s->links, supervisor,
					 s->ticket_secret));
	}
	s->slots[i].pid = pid;
	s->slots[i].started = time(NULL);
	s->slots[i].ready = false;
	s->slots[i].reloading = false;
	if (pid > 0) {
		s->alive++;
	}
}

static void tsgate_workers_signal(struct tsgate_supervisor *s, int sig)
{
	for (unsigned i = 0; i < s->n; i++) {
		if (s->slots[i].pid > 0) {
			kill(s->slots[i].pid, sig);
		}
	}
}

/*
 * SIGHUP in the supervisor: the workers reload (and log) on their own;
 * this only keeps the configuration a restarted worker starts with equal
 * to the one the others run. A broken file keeps the previous one.
 * (workers: itself takes effect at the next start.)
 */
static void tsgate_workers_reload(struct tsgate_supervisor *s)
{
	struct tsgate_config *next = NULL;
	struct tsgate_config_errors *errs = NULL;

	if (tsgate_config_load(s->slots, s->config_path,
			       TSGATE_CONFIG_CHECK_CREDENTIALS, &next,
			       &errs) != 0) {
		talloc_free(errs);
		return;
	}
	if (s->cur != s->first) {
		talloc_free(s->cur);
	}
	s->cur = next;
}

/*
 * systemd hears READY=1 once every worker is up, and after a SIGHUP once
 * every worker has handled it (a worker that died meanwhile is not
 * waited for: its replacement starts with the new configuration).
 */
static void tsgate_workers_notify_ready(struct tsgate_supervisor *s)
{
	unsigned i, up = 0;

	if (s->told_ready || s->stopping) {
		return;
	}
	for (i = 0; i < s->n; i++) {
		if (s->slots[i].pid <= 0 || !s->slots[i].ready ||
		    s->slots[i].reloading) {
			return;
		}
		up++;
	}
	s->told_ready = true;
	(void)tsgate_notify(s->notify, "READY=1\nSTATUS=ready: %u workers", up);
}

/* TSGATE_WORKER_SIGNAL from a worker: what it says (workers.h). */
static void tsgate_workers_event(struct tsgate_supervisor *s,
				 const siginfo_t *info)
{
	unsigned i;

	for (i = 0; i < s->n && s->slots[i].pid != info->si_pid; i++) {
	}
	if (i == s->n || info->si_code != SI_QUEUE) {
		return;
	}
	switch (info->si_value.sival_int) {
	case TSGATE_WORKER_READY:
		if (s->told_ready) {
			(void)tsgate_notify(
			    s->notify, "STATUS=ready: worker %u restarted", i);
		}
		s->slots[i].ready = true;
		break;
	case TSGATE_WORKER_RELOADED:
		s->slots[i].reloading = false;
		break;
	default:
		return;
	}
	tsgate_workers_notify_ready(s);
}

/* SIGHUP: RELOADING=1 now, READY=1 when every worker has reloaded. */
static void tsgate_workers_reloading(struct tsgate_supervisor *s)
{
	unsigned i;

	(void)tsgate_notify_reloading(s->notify);
	s->told_ready = false;
	for (i = 0; i < s->n; i++) {
		/* a worker still starting reads the new file anyway */
		s->slots[i].reloading =
		    s->slots[i].pid > 0 && s->slots[i].ready;
	}
}

/* Worker i (pid) ended with status: restart it, unless stopping. */
static void tsgate_worker_ended(struct tsgate_supervisor *s,
				unsigned i,
				pid_t pid,
				int status)
{
	s->slots[i].pid = 0;
	s->alive--;
	if (s->stopping) {
		/* the exit code says how the stop went */
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			s->exit_code = 1;
		}
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 1 &&
	    time(NULL) - s->slots[i].started < 2) {
		/* failed at start-up: no point in retrying */
		tsgate_log_msg(s->log, TSGATE_CONFIG_LOG_ERROR, "stop",
			       "worker %u failed to start; stopping", i);
		s->stopping = true;
		s->exit_code = 1;
		tsgate_workers_signal(s, SIGTERM);
		return;
	}
	tsgate_log_msg(s->log, TSGATE_CONFIG_LOG_WARNING, "worker",
		       "worker %u (pid %d) ended with status 0x%x; restarting "
		       "it",
		       i, (int)pid, (unsigned)status);
	if (time(NULL) - s->slots[i].started < 1) {
		sleep(1);
	}
	tsgate_worker_spawn(s, i);
}

/* SIGCHLD: reap every worker that ended. */
static void tsgate_workers_reap(struct tsgate_supervisor *s)
{
	pid_t pid;
	int status;
	unsigned i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < s->n && s->slots[i].pid != pid; i++) {
		}
		if (i < s->n) {
			tsgate_worker_ended(s, i, pid, status);
		}
	}
}

static void tsgate_workers_start(struct tsgate_supervisor *s)
{
	for (unsigned i = 0; i < s->n; i++) {
		tsgate_worker_spawn(s, i);
	}
	tsgate_log_msg(s->log, TSGATE_CONFIG_LOG_INFO, "start",
		       "supervisor pid %d: %u of %u workers started",
		       (int)getpid(), s->alive, s->n);
	if (s->alive < s->n) {
		tsgate_log_msg(s->log, TSGATE_CONFIG_LOG_ERROR, "start",
			       "fork: %s; stopping", strerror(errno));
		s->stopping = true;
		s->exit_code = 1;
		tsgate_workers_signal(s, SIGTERM);
	}
}

int tsgate_workers_supervise(TALLOC_CTX *mem_ctx,
			     const char *config_path,
			     struct tsgate_config *cfg,
			     const struct tsgate_ticket_secret *ticket_secret)
{
	struct tsgate_supervisor s = {
	    .mem_ctx = mem_ctx,
	    .config_path = config_path,
	    .first = cfg,
	    .cur = cfg,
	    .n = cfg->workers,
	};
	sigset_t set;
	siginfo_t info;
	int sig;
	int err;

	s.slots = talloc_zero_array(mem_ctx, struct tsgate_worker_slot, s.n);
	s.log =
	    tsgate_log_new(s.slots, tsgate_log_level_effective(cfg->log.level),
			   cfg->log.format);
	if (s.slots == NULL || s.log == NULL) {
		fprintf(stderr, "tsgate: out of memory\n");
		talloc_free(s.slots);
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, TSGATE_WORKER_SIGNAL);
	sigprocmask(SIG_BLOCK, &set, &s.oldmask);
	if (tsgate_notify_new(s.slots, getenv("NOTIFY_SOCKET"), &s.notify) !=
	    0) {
		tsgate_log_msg(s.log, TSGATE_CONFIG_LOG_WARNING, "start",
			       "NOTIFY_SOCKET: cannot use it; systemd will "
			       "not hear READY=1");
	}

	/* kept open here, so a restarted worker answers on the same one */
	s.ticket_secret = ticket_secret;
	s.links = tsgate_metrics_links_new(s.slots, s.n);
	if (s.links == NULL) {
		tsgate_log_msg(s.log, TSGATE_CONFIG_LOG_WARNING, "start",
			       "metrics of workers 1..%u: %s; /metrics shows "
			       "worker 0 only",
			       s.n - 1, strerror(errno));
	}
	err = tsgate_token_lock_setup();
	if (err != 0) {
		tsgate_log_msg(s.log, TSGATE_CONFIG_LOG_WARNING, "start",
			       "token lock: %s; workers open PKCS#11 tokens "
			       "at the same time",
			       strerror(err));
	}
	tsgate_workers_start(&s);

	while (s.alive > 0) {
		sig = sigwaitinfo(&set, &info);
		if (sig == -1) {
			continue;
		}
		if (sig == SIGCHLD) {
			tsgate_workers_reap(&s);
			continue;
		}
		if (sig == TSGATE_WORKER_SIGNAL) {
			tsgate_workers_event(&s, &info);
			continue;
		}
		if (sig == SIGHUP && !s.stopping) {
			tsgate_workers_reloading(&s);
		} else if (sig != SIGHUP && !s.stopping) {
			(void)tsgate_notify(s.notify,
					    "STOPPING=1\nSTATUS=%s: workers "
					    "draining",
					    sig == SIGTERM ? "SIGTERM"
							   : "SIGINT");
		}
		s.stopping = s.stopping || sig != SIGHUP;
		tsgate_workers_signal(&s, sig);
		if (sig == SIGHUP && !s.stopping) {
			tsgate_workers_reload(&s);
		}
	}
	/*
	 * The signals stay blocked: unblocking would deliver a SIGTERM that
	 * came during the stop with its default action, and the supervisor
	 * would end "killed by signal" instead of with its exit code.
	 */
	tsgate_log_msg(s.log, TSGATE_CONFIG_LOG_INFO, "stop",
		       "supervisor stopped");
	talloc_free(s.slots);
	return s.exit_code;
}
