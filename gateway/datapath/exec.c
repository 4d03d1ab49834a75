/* SPDX-License-Identifier: MIT */
/*
 * Program backends (exec.h): start, watch, reap.
 *
 * Everything the child needs (argv, the environment) is made before
 * fork(), so the child only calls async-signal-safe functions between
 * fork() and execve() (a worker may run threads).
 */
#include "exec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tsocket.h>

#include "exec_stream.h"
#include "identity.h"
#include "log.h"
#include "relay.h"
#include "tsgate_dlist.h"
#include "tstream_gssapi.h"

#ifndef discard_const_p
#define discard_const_p(type, ptr) ((type *)(uintptr_t)(ptr))
#endif
#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

/* A program still running this long after its connection: SIGTERM. */
#define EXEC_TERM_AFTER_MS 2000
/* ... and this long after SIGTERM: SIGKILL. */
#define EXEC_KILL_AFTER_MS 5000
/* stderr: lines longer are cut; more lines than this are counted only */
#define EXEC_STDERR_LINE      1024
#define EXEC_STDERR_MAX_LINES 100
/* ccache files: the pid of the worker that made it, then the connection */
#define EXEC_CCACHE_PREFIX "krb5cc_tsgate_"

/* Programs running at once for one route (listener/route), kept. */
struct exec_count {
	struct exec_count *prev, *next;
	char *key;
	uint32_t running;
};

struct tsgate_execs {
	struct tevent_context *ev;
	struct tsgate_log *log;
	struct tevent_signal *sigchld;
	struct exec_child *children; /* not yet reaped */
	struct exec_count *counts;
};

/* One program, from fork to reap; outlives its connection if need be. */
struct exec_child {
	struct exec_child *prev, *next;
	struct tsgate_execs *execs;
	struct exec_count *count;
	pid_t pid;
	uint64_t conn_id;
	char *listener;
	char *route;
	char *program;
	char *ccache; /* path, removed at release; NULL: none */
	/* stderr */
	struct tevent_fd *err_fde;
	int err_fd;
	char err_buf[EXEC_STDERR_LINE];
	size_t err_len;
	uint64_t err_lines;
	uint64_t err_dropped;
	/* while the connection lives */
	struct tstream_context *stream;
	struct tsgate_relay *relay;
	bool exited;
	struct tevent_timer *kill_timer;
	bool termed;
};

static void exec_child_free(struct exec_child *c);

/*
 * Reaping
 */

static void exec_log_exit(struct exec_child *c, int status)
{
	struct tsgate_log_kv *kv = tsgate_log_kv_new(c);
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;

	tsgate_log_kv_u64(kv, "id", c->conn_id);
	tsgate_log_kv_str(kv, "listener", c->listener);
	tsgate_log_kv_str(kv, "route", c->route);
	tsgate_log_kv_str(kv, "program", c->program);
	tsgate_log_kv_u64(kv, "pid", (uint64_t)c->pid);
	if (WIFEXITED(status)) {
		tsgate_log_kv_u64(kv, "exit", (uint64_t)WEXITSTATUS(status));
	} else if (WIFSIGNALED(status)) {
		tsgate_log_kv_u64(kv, "signal", (uint64_t)WTERMSIG(status));
		tsgate_log_kv_str(kv, "signal_name",
				  strsignal(WTERMSIG(status)));
	}
	if (c->err_dropped > 0) {
		tsgate_log_kv_u64(kv, "stderr_lines_dropped", c->err_dropped);
	}
	tsgate_log_kv_emit(c->execs->log,
			   ok ? TSGATE_CONFIG_LOG_INFO
			      : TSGATE_CONFIG_LOG_WARNING,
			   "exec_exit", kv);
	talloc_free(kv);
}

static void exec_stderr_flush(struct exec_child *c, bool eof);
static void exec_stderr_drain(struct exec_child *c);

static void exec_child_exited(struct exec_child *c, int status)
{
	c->exited = true;
	c->count->running--;
	TALLOC_FREE(c->kill_timer);
	if (c->err_fde != NULL) {
		/* what it wrote before it ended is still in the pipe */
		exec_stderr_drain(c);
	}
	exec_log_exit(c, status);
	if (c->stream == NULL) {
		exec_child_free(c);
		return;
	}
	/* a program that exits ends its connection, its output passed on */
	if (c->relay != NULL) {
		tsgate_relay_backend_gone(c->relay);
	}
}

static void exec_sigchld(struct tevent_context *ev,
			 struct tevent_signal *se,
			 int signum,
			 int count,
			 void *siginfo,
			 void *private_data)
{
	struct tsgate_execs *execs =
	    talloc_get_type_abort(private_data, struct tsgate_execs);
	struct exec_child *c, *next;
	int status;

	(void)ev;
	(void)se;
	(void)signum;
	(void)count;
	(void)siginfo;
	for (c = execs->children; c != NULL; c = next) {
		next = c->next;
		if (c->exited) {
			continue;
		}
		if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
			/* may free c, never another child */
			exec_child_exited(c, status);
		}
	}
}

/*
 * The process ends (its connections are gone): programs still running
 * get SIGTERM now, as their kill timers will never fire.
 */
static int tsgate_execs_destructor(struct tsgate_execs *execs)
{
	for (struct exec_child *c = execs->children; c != NULL; c = c->next) {
		if (!c->exited) {
			kill(c->pid, SIGTERM);
		}
	}
	return 0;
}

struct tsgate_execs *tsgate_execs_new(TALLOC_CTX *mem_ctx,
				      struct tevent_context *ev,
				      struct tsgate_log *log)
{
	struct tsgate_execs *execs = talloc_zero(mem_ctx, struct tsgate_execs);

	if (execs == NULL) {
		return NULL;
	}
	execs->ev = ev;
	execs->log = log;
	execs->sigchld =
	    tevent_add_signal(ev, execs, SIGCHLD, 0, exec_sigchld, execs);
	if (execs->sigchld == NULL) {
		talloc_free(execs);
		return NULL;
	}
	talloc_set_destructor(execs, tsgate_execs_destructor);
	return execs;
}

/*
 * stderr, line by line
 */

static void exec_stderr_line(struct exec_child *c,
			     const char *line,
			     size_t len,
			     bool cut)
{
	struct tsgate_log_kv *kv;

	if (c->err_lines >= EXEC_STDERR_MAX_LINES) {
		c->err_dropped++;
		return;
	}
	c->err_lines++;
	kv = tsgate_log_kv_new(c);
	tsgate_log_kv_u64(kv, "id", c->conn_id);
	tsgate_log_kv_str(kv, "route", c->route);
	tsgate_log_kv_u64(kv, "pid", (uint64_t)c->pid);
	tsgate_log_kv_fmt(kv, "line", "%.*s", (int)len, line);
	if (cut) {
		tsgate_log_kv_str(kv, "line_cut", "true");
	}
	tsgate_log_kv_emit(c->execs->log, TSGATE_CONFIG_LOG_WARNING,
			   "exec_stderr", kv);
	talloc_free(kv);
}

/*
 * Log the complete lines in the buffer; at eof the rest too, and a full
 * buffer without a newline as one cut line.
 */
static void exec_stderr_flush(struct exec_child *c, bool eof)
{
	size_t start = 0;

	for (size_t i = 0; i < c->err_len; i++) {
		if (c->err_buf[i] == '\n') {
			exec_stderr_line(c, c->err_buf + start, i - start,
					 false);
			start = i + 1;
		}
	}
	if (start < c->err_len &&
	    (eof || c->err_len - start == sizeof(c->err_buf))) {
		exec_stderr_line(c, c->err_buf + start, c->err_len - start,
				 !eof);
		start = c->err_len;
	}
	memmove(c->err_buf, c->err_buf + start, c->err_len - start);
	c->err_len -= start;
}

static void exec_stderr_close(struct exec_child *c)
{
	TALLOC_FREE(c->err_fde);
	if (c->err_fd != -1) {
		close(c->err_fd);
		c->err_fd = -1;
	}
}

static void exec_stderr_readable(struct tevent_context *ev,
				 struct tevent_fd *fde,
				 uint16_t flags,
				 void *private_data)
{
	struct exec_child *c =
	    talloc_get_type_abort(private_data, struct exec_child);
	ssize_t n;

	(void)ev;
	(void)fde;
	(void)flags;
	n = read(c->err_fd, c->err_buf + c->err_len,
		 sizeof(c->err_buf) - c->err_len);
	if (n == -1 && (errno == EINTR || errno == EAGAIN)) {
		return;
	}
	if (n <= 0) {
		exec_stderr_flush(c, true);
		exec_stderr_close(c);
		return;
	}
	c->err_len += (size_t)n;
	exec_stderr_flush(c, false);
}

/*
 * The program ended: read what its stderr still holds (a pipe holds at
 * most 64 KiB, unless a program it started still writes: bounded).
 */
static void exec_stderr_drain(struct exec_child *c)
{
	for (unsigned i = 0; i < 256 && c->err_fde != NULL; i++) {
		ssize_t n = read(c->err_fd, c->err_buf + c->err_len,
				 sizeof(c->err_buf) - c->err_len);

		if (n == -1 && errno == EINTR) {
			continue;
		}
		if (n == -1 && errno == EAGAIN) {
			exec_stderr_flush(c, false);
			return;
		}
		if (n <= 0) {
			exec_stderr_flush(c, true);
			exec_stderr_close(c);
			return;
		}
		c->err_len += (size_t)n;
		exec_stderr_flush(c, false);
	}
}

/*
 * The end of a connection: the program is told by EOF, then by signals.
 */

static void exec_kill_timer(struct tevent_context *ev,
			    struct tevent_timer *te,
			    struct timeval now,
			    void *private_data)
{
	struct exec_child *c =
	    talloc_get_type_abort(private_data, struct exec_child);

	(void)te;
	(void)now;
	c->kill_timer = NULL;
	if (c->exited) {
		return;
	}
	if (!c->termed) {
		c->termed = true;
		kill(c->pid, SIGTERM);
		c->kill_timer =
		    tevent_add_timer(ev, c,
				     tevent_timeval_current_ofs(
					 EXEC_KILL_AFTER_MS / 1000,
					 (EXEC_KILL_AFTER_MS % 1000) * 1000),
				     exec_kill_timer, c);
		return;
	}
	kill(c->pid, SIGKILL);
}

static void exec_child_free(struct exec_child *c)
{
	TSG_DLIST_REMOVE(c->execs->children, c);
	exec_stderr_close(c);
	talloc_free(c);
}

/* The connection's stream goes: the child stays until reaped. */
static int exec_link_destructor(struct exec_child **link)
{
	struct exec_child *c = *link;

	c->stream = NULL;
	c->relay = NULL;
	if (c->ccache != NULL) {
		(void)unlink(c->ccache);
		TALLOC_FREE(c->ccache);
	}
	if (c->exited) {
		exec_child_free(c);
		return 0;
	}
	c->kill_timer = tevent_add_timer(
	    c->execs->ev, c,
	    tevent_timeval_current_ofs(EXEC_TERM_AFTER_MS / 1000,
				       (EXEC_TERM_AFTER_MS % 1000) * 1000),
	    exec_kill_timer, c);
	if (c->kill_timer == NULL) {
		c->termed = true;
		kill(c->pid, SIGKILL);
	}
	return 0;
}

/*
 * Start
 */

static struct exec_count *exec_count_of(struct tsgate_execs *execs,
					const char *listener,
					const char *route)
{
	struct exec_count *n;
	char *key = talloc_asprintf(execs, "%s/%s", listener, route);

	if (key == NULL) {
		return NULL;
	}
	for (n = execs->counts; n != NULL; n = n->next) {
		if (strcmp(n->key, key) == 0) {
			talloc_free(key);
			return n;
		}
	}
	n = talloc_zero(execs, struct exec_count);
	if (n == NULL) {
		talloc_free(key);
		return NULL;
	}
	n->key = talloc_steal(n, key);
	TSG_DLIST_ADD(execs->counts, n);
	return n;
}

const char *tsgate_exec_ccache_dir(TALLOC_CTX *mem_ctx,
				   const struct tsgate_config_route *route)
{
	if (route->ccache_dir != NULL) {
		return talloc_strdup(mem_ctx, route->ccache_dir);
	}
	return talloc_asprintf(mem_ctx, "/tmp/tsgate-ccache-%u",
			       (unsigned)geteuid());
}

/* The directory exists, is ours, and nobody else may enter it. */
static int exec_ccache_dir_ready(const char *dir,
				 TALLOC_CTX *mem_ctx,
				 char **preason)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		*preason = talloc_asprintf(mem_ctx, "ccache_dir %s: %s", dir,
					   strerror(errno));
		return errno;
	}
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		*preason = talloc_asprintf(
		    mem_ctx,
		    "ccache_dir %s is not a directory of uid %u with mode 0700",
		    dir, (unsigned)geteuid());
		return EPERM;
	}
	return 0;
}

/* The delegated credentials into a fresh private ccache file. */
static int exec_store_ccache(struct exec_child *c,
			     const struct tsgate_exec_spawn *s,
			     TALLOC_CTX *mem_ctx,
			     char **preason)
{
	char *dir = (char *)tsgate_exec_ccache_dir(c, s->route);
	char *name, *reason = NULL;
	int fd, err;

	if (dir == NULL) {
		return ENOMEM;
	}
	err = exec_ccache_dir_ready(dir, mem_ctx, preason);
	if (err != 0) {
		return err;
	}
	c->ccache =
	    talloc_asprintf(c, "%s/" EXEC_CCACHE_PREFIX "%d_%llu", dir,
			    (int)getpid(), (unsigned long long)s->conn_id);
	if (c->ccache == NULL) {
		return ENOMEM;
	}
	/* made here with 0600, so the cache is never readable by others */
	fd = open(c->ccache, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1) {
		err = errno;
		*preason = talloc_asprintf(mem_ctx, "ccache %s: %s", c->ccache,
					   strerror(err));
		TALLOC_FREE(c->ccache);
		return err;
	}
	close(fd);
	name = talloc_asprintf(c, "FILE:%s", c->ccache);
	if (name == NULL) {
		return ENOMEM;
	}
	err = tstream_gssapi_store_delegated(s->client, name, mem_ctx, &reason);
	talloc_free(name);
	if (err != 0) {
		*preason = talloc_asprintf(
		    mem_ctx, "storing the delegated credentials: %s",
		    reason != NULL ? reason : strerror(err));
		return err;
	}
	return 0;
}

static int env_add(char ***penv, const char *key, const char *value)
{
	char *kv;

	if (value == NULL) {
		return 0;
	}
	kv = talloc_asprintf(*penv, "%s=%s", key, value);
	if (kv == NULL) {
		return ENOMEM;
	}
	*penv =
	    talloc_realloc(NULL, *penv, char *, talloc_array_length(*penv) + 1);
	if (*penv == NULL) {
		return ENOMEM;
	}
	(*penv)[talloc_array_length(*penv) - 2] = kv;
	(*penv)[talloc_array_length(*penv) - 1] = NULL;
	return 0;
}

/*
 * knc's variables, from the same lines the knc hand-off sends, so both
 * agree: "KEY:VALUE\n" becomes KNC_KEY=VALUE.
 */
static int env_add_knc(char ***penv, const struct tsgate_peer_info *info)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char *line, *save = NULL, *colon, *key;
	int err;

	err = tsgate_identity_knc(*penv, info, &buf, &len);
	if (err != 0) {
		return err;
	}
	buf = talloc_realloc(*penv, buf, uint8_t, len + 1);
	if (buf == NULL) {
		return ENOMEM;
	}
	buf[len] = '\0';
	for (line = strtok_r((char *)buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		colon = strchr(line, ':');
		if (colon == NULL) {
			continue; /* END */
		}
		*colon = '\0';
		key = talloc_asprintf(buf, "KNC_%s", line);
		if (key == NULL || env_add(penv, key, colon + 1) != 0) {
			return ENOMEM;
		}
	}
	talloc_free(buf);
	return 0;
}

/* The values the PROXY v2 TLVs carry, as TSGATE_* variables. */
static int env_add_identity(char ***penv, const struct tsgate_peer_info *i)
{
	char port[8];
	char *local_ip = NULL;
	bool named = i->tls && i->client_cert && i->cert_verified &&
		     i->client_name_error == NULL;
	int err = 0;

	if (i->local != NULL && tsocket_address_is_inet(i->local, "ip")) {
		local_ip = tsocket_address_inet_addr_string(i->local, *penv);
		snprintf(port, sizeof(port), "%u",
			 (unsigned)tsocket_address_inet_port(i->local));
		err = env_add(penv, "TSGATE_LOCAL_IP", local_ip);
		if (err == 0) {
			err = env_add(penv, "TSGATE_LOCAL_PORT", port);
		}
	}
	if (err == 0 && i->gssapi) {
		err = env_add(penv, "TSGATE_PRINCIPAL", i->principal);
		if (err == 0) {
			err = env_add(penv, "TSGATE_LOCAL_NAME", i->local_name);
		}
		if (err == 0) {
			err = env_add(penv, "TSGATE_MECH", i->mech);
		}
	}
	if (err == 0 && i->tls) {
		err = env_add(penv, "TSGATE_TLS_VERSION", i->tls_version);
		if (err == 0) {
			err = env_add(penv, "TSGATE_TLS_CIPHER", i->tls_cipher);
		}
		if (err == 0) {
			err = env_add(penv, "TSGATE_SNI", i->sni);
		}
		if (err == 0) {
			err = env_add(penv, "TSGATE_ALPN", i->alpn);
		}
		if (err == 0) {
			err = env_add(penv, "TSGATE_CLIENT_CERT_VERIFIED",
				      named ? "1" : "0");
		}
		if (err == 0 && named) {
			err = env_add(penv, "TSGATE_CLIENT_SUBJECT",
				      i->client_subject);
		}
		if (err == 0 && named) {
			err = env_add(penv, "TSGATE_CLIENT_CN", i->client_cn);
		}
	}
	return err;
}

/* Passed on from tsgate's own environment when set (docs/operations.md). */
static const char *const exec_env_pass[] = {
    "TZ",
    "LANG",
    "LC_ALL",
    "KRB5_CONFIG",
};

static char **exec_env(TALLOC_CTX *mem_ctx,
		       const struct tsgate_exec_spawn *s,
		       const char *ccache)
{
	char **env = talloc_zero_array(mem_ctx, char *, 1);
	struct passwd *pw = getpwuid(geteuid());
	char *ccname = NULL;
	int err;

	if (env == NULL) {
		return NULL;
	}
	err = env_add(&env, "PATH", "/usr/local/bin:/usr/bin:/bin");
	for (size_t i = 0; err == 0 && i < ARRAY_SIZE(exec_env_pass); i++) {
		err = env_add(&env, exec_env_pass[i], getenv(exec_env_pass[i]));
	}
	if (err == 0 && pw != NULL) {
		err = env_add(&env, "HOME", pw->pw_dir);
		if (err == 0) {
			err = env_add(&env, "USER", pw->pw_name);
		}
		if (err == 0) {
			err = env_add(&env, "LOGNAME", pw->pw_name);
		}
	}
	if (err == 0) {
		err = env_add_knc(&env, s->info);
	}
	if (err == 0) {
		err = env_add_identity(&env, s->info);
	}
	if (err == 0 && ccache != NULL) {
		ccname = talloc_asprintf(env, "FILE:%s", ccache);
		err = ccname == NULL ? ENOMEM
				     : env_add(&env, "KRB5CCNAME", ccname);
	}
	if (err != 0) {
		talloc_free(env);
		return NULL;
	}
	return env;
}

static char **exec_argv(TALLOC_CTX *mem_ctx,
			const struct tsgate_config_route *r)
{
	char **argv = talloc_zero_array(mem_ctx, char *, r->num_exec_args + 2);

	if (argv == NULL) {
		return NULL;
	}
	argv[0] = discard_const_p(char, r->exec);
	for (size_t i = 0; i < r->num_exec_args; i++) {
		argv[i + 1] = discard_const_p(char, r->exec_args[i]);
	}
	return argv;
}

/* In the child: only async-signal-safe calls, then execve(). */
static void __attribute__((noreturn))
exec_child_run(int in_fd, int out_fd, int err_fd, char **argv, char **env)
{
	static const char msg[] = "tsgate: execve failed\n";
	sigset_t none;

	if (dup2(in_fd, STDIN_FILENO) == -1 ||
	    dup2(out_fd, STDOUT_FILENO) == -1 ||
	    dup2(err_fd, STDERR_FILENO) == -1) {
		_exit(126);
	}
	(void)close_range(3, ~0U, 0);
	for (int sig = 1; sig < NSIG; sig++) {
		(void)signal(sig, SIG_DFL);
	}
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	/* its own session: no terminal signals, a group of its own */
	(void)setsid();
	umask(077);
	if (chdir("/") != 0) {
		_exit(126);
	}
	execve(argv[0], argv, env);
	(void)write(STDERR_FILENO, msg, sizeof(msg) - 1);
	_exit(127);
}

/*
 * The child's ends must not be 0, 1 or 2 (a daemon started with a
 * closed stdin gets fd 0 from socketpair()): the dup2() calls in the
 * child would overwrite one end with another.
 */
static int fd_above_stdio(int *fd)
{
	int moved;

	if (*fd > STDERR_FILENO) {
		return 0;
	}
	moved = fcntl(*fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
	if (moved == -1) {
		return errno;
	}
	close(*fd);
	*fd = moved;
	return 0;
}

static void close_pair(int *p)
{
	if (p[0] != -1) {
		close(p[0]);
	}
	if (p[1] != -1) {
		close(p[1]);
	}
}

int tsgate_exec_start(TALLOC_CTX *mem_ctx,
		      struct tsgate_execs *execs,
		      const struct tsgate_exec_spawn *s,
		      struct tstream_context **pstream,
		      char **preason)
{
	const struct tsgate_config_route *r = s->route;
	int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
	struct exec_child *c, **link;
	char **argv, **env;
	int err;

	if (geteuid() == 0) {
		/* the config check refuses this; never rely on it alone */
		*preason = talloc_asprintf(
		    mem_ctx, "refused: %s would run as root", r->exec);
		return EPERM;
	}
	c = talloc_zero(execs, struct exec_child);
	if (c == NULL) {
		return ENOMEM;
	}
	c->execs = execs;
	c->err_fd = -1;
	c->conn_id = s->conn_id;
	c->listener = talloc_strdup(c, s->listener);
	c->route = talloc_strdup(c, r->name);
	c->program = talloc_strdup(c, r->exec);
	c->count = exec_count_of(execs, s->listener, r->name);
	if (c->listener == NULL || c->route == NULL || c->program == NULL ||
	    c->count == NULL) {
		talloc_free(c);
		return ENOMEM;
	}
	if (r->max_connections > 0 && c->count->running >= r->max_connections) {
		talloc_free(c);
		*preason = talloc_asprintf(
		    mem_ctx, "refused: route max_connections (%u) reached",
		    (unsigned)r->max_connections);
		return EAGAIN;
	}
	if (tstream_gssapi_has_delegated(s->client)) {
		err = exec_store_ccache(c, s, mem_ctx, preason);
		if (err != 0) {
			if (c->ccache != NULL) {
				(void)unlink(c->ccache);
			}
			talloc_free(c);
			return err;
		}
	}
	argv = exec_argv(c, r);
	env = exec_env(c, s, c->ccache);
	if (argv == NULL || env == NULL ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out) != 0 ||
	    pipe2(errp, O_CLOEXEC) != 0) {
		err = argv == NULL || env == NULL ? ENOMEM : errno;
		goto fail;
	}
	err = fd_above_stdio(&in[1]);
	if (err == 0) {
		err = fd_above_stdio(&out[1]);
	}
	if (err == 0) {
		err = fd_above_stdio(&errp[1]);
	}
	if (err != 0) {
		goto fail;
	}
	c->pid = fork();
	if (c->pid == -1) {
		err = errno;
		goto fail;
	}
	if (c->pid == 0) {
		exec_child_run(in[1], out[1], errp[1], argv, env);
	}
	TALLOC_FREE(argv);
	TALLOC_FREE(env);
	close(in[1]);
	close(out[1]);
	close(errp[1]);
	c->count->running++;
	TSG_DLIST_ADD(execs->children, c);

	c->err_fd = errp[0];
	(void)fcntl(c->err_fd, F_SETFL, O_NONBLOCK);
	c->err_fde = tevent_add_fd(execs->ev, c, c->err_fd, TEVENT_FD_READ,
				   exec_stderr_readable, c);
	err = tsgate_exec_stream_new(mem_ctx, out[0], in[0], pstream);
	if (err == 0) {
		link = talloc(*pstream, struct exec_child *);
		if (link == NULL) {
			TALLOC_FREE(*pstream);
			err = ENOMEM;
		}
	}
	if (err != 0) {
		/* the program runs: the usual end, without a connection */
		c->kill_timer = NULL;
		c->termed = true;
		kill(c->pid, SIGKILL);
		if (c->ccache != NULL) {
			(void)unlink(c->ccache);
		}
		return err;
	}
	*link = c;
	talloc_set_destructor(link, exec_link_destructor);
	c->stream = *pstream;
	tsgate_exec_stream_set_data(*pstream, c);
	return 0;

fail:
	*preason =
	    talloc_asprintf(mem_ctx, "starting %s: %s", r->exec, strerror(err));
	close_pair(in);
	close_pair(out);
	close_pair(errp);
	if (c->ccache != NULL) {
		(void)unlink(c->ccache);
	}
	talloc_free(c);
	return err;
}

void tsgate_exec_set_relay(struct tstream_context *stream,
			   struct tsgate_relay *relay)
{
	struct exec_child *c;

	if (!tsgate_exec_stream_is(stream)) {
		return;
	}
	c = tsgate_exec_stream_data(stream);
	if (c == NULL) {
		return;
	}
	c->relay = relay;
	if (relay != NULL && c->exited) {
		tsgate_relay_backend_gone(relay);
	}
}

int tsgate_exec_pid(struct tstream_context *stream)
{
	struct exec_child *c;

	if (!tsgate_exec_stream_is(stream)) {
		return 0;
	}
	c = tsgate_exec_stream_data(stream);
	return c != NULL ? (int)c->pid : 0;
}

/*
 * Stale ccaches
 */

static unsigned exec_clean_dir(const char *dir)
{
	size_t plen = strlen(EXEC_CCACHE_PREFIX);
	struct dirent *de;
	unsigned removed = 0;
	DIR *d = opendir(dir);

	if (d == NULL) {
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		long pid;
		char *end;

		if (strncmp(de->d_name, EXEC_CCACHE_PREFIX, plen) != 0) {
			continue;
		}
		pid = strtol(de->d_name + plen, &end, 10);
		if (end == de->d_name + plen || *end != '_' || pid <= 0) {
			continue;
		}
		/* a live worker's, unless it is our own pid from before */
		if (pid != (long)getpid() &&
		    (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) {
			continue;
		}
		if (unlinkat(dirfd(d), de->d_name, 0) == 0) {
			removed++;
		}
	}
	closedir(d);
	return removed;
}

unsigned tsgate_execs_clean_stale(const struct tsgate_config *cfg)
{
	unsigned removed = 0;

	for (size_t i = 0; i < cfg->num_listeners; i++) {
		const struct tsgate_config_listener *l = &cfg->listeners[i];

		for (size_t j = 0; j < l->num_routes; j++) {
			const char *dir;

			if (l->routes[j].exec == NULL) {
				continue;
			}
			dir = tsgate_exec_ccache_dir(NULL, &l->routes[j]);
			if (dir != NULL) {
				removed += exec_clean_dir(dir);
			}
			talloc_free(discard_const_p(char, dir));
		}
	}
	return removed;
}
