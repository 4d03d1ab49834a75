/* SPDX-License-Identifier: MIT */
/*
 * The metrics listener for real: the server runs in-process on
 * 127.0.0.1 (or a unix socket) and the real curl binary asks it for
 * /metrics, /healthz and /readyz; hand-made sockets send garbage, an
 * oversized head, and a head that never ends while curl is served; the
 * blocking health probe runs in a child process against it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <check.h>
#include <talloc.h>
#include <tevent.h>

#include "tt.h"
#include "config.h"
#include "health.h"
#include "http_server.h"
#include "metrics.h"

/* Per-request deadline of the server under test. */
#define SERVER_TIMEOUT_MS 700
#define MAX_CLIENTS       4

static struct tsgate_metrics *m;
static struct tsgate_http_server *server;
static uint16_t port;

static void server_setup(void)
{
	struct tsgate_config_addr a = {
	    .kind = TSGATE_CONFIG_ADDR_TCP,
	    .text = "tcp://127.0.0.1:0",
	    .host = "127.0.0.1",
	    .ip = "127.0.0.1",
	    .port = 0,
	};
	struct tsgate_http_params p = {
	    .timeout_ms = SERVER_TIMEOUT_MS,
	    .max_clients = MAX_CLIENTS,
	};
	char *reason = NULL;
	int ret;

	tt_setup();
	m = tsgate_metrics_new(tt_mem, "test", NULL);
	ck_assert_ptr_nonnull(m);
	ret = tsgate_metrics_server_new(tt_mem, tt_ev, m, &a, &p, &server,
					&reason);
	ck_assert_msg(ret == 0, "bind: %s", reason);
	port = tsgate_http_server_port(server);
	ck_assert_uint_ne(port, 0);
}

static void server_teardown(void)
{
	TALLOC_FREE(server);
	TALLOC_FREE(m);
	tt_teardown();
}

/* Collects what a pipe or socket delivers until EOF. */
struct reader {
	int fd;
	char *buf;
	bool eof;
	struct tevent_fd *fde;
};

static void reader_readable(struct tevent_context *ev,
			    struct tevent_fd *fde,
			    uint16_t flags,
			    void *private_data)
{
	struct reader *r = private_data;
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
	TALLOC_FREE(r->fde);
}

/* Run the loop until fd reaches EOF; returns what came (on mem_ctx). */
static char *read_to_eof(TALLOC_CTX *mem_ctx, int fd, unsigned timeout_ms)
{
	struct reader *r = talloc_zero(mem_ctx, struct reader);
	char *out;

	ck_assert_ptr_nonnull(r);
	r->fd = fd;
	r->buf = talloc_strdup(r, "");
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	r->fde =
	    tevent_add_fd(tt_ev, r, fd, TEVENT_FD_READ, reader_readable, r);
	ck_assert_ptr_nonnull(r->fde);
	tt_wait(&r->eof, timeout_ms);
	out = talloc_steal(mem_ctx, r->buf);
	talloc_free(r);
	return out;
}

/*
 * curl with extra arguments (NULL-terminated) then the URL; returns its
 * output (-i: status line and headers, then the body) and exit status.
 */
static char *curl(const char *url, const char *const extra[], int *pstatus)
{
	const char *argv[16] = {"curl", "-sS", "-i", "--max-time", "5"};
	size_t n = 5;
	int out_fd = -1, status;
	pid_t pid;
	char *text;

	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
		argv[n++] = extra[i];
	}
	argv[n++] = url;
	argv[n] = NULL;
	pid = tt_spawn(argv, NULL, NULL, &out_fd, false);
	ck_assert_int_gt(pid, 0);
	text = read_to_eof(tt_mem, out_fd, 10000);
	close(out_fd);
	status = tt_wait_exit(pid, TT_DEADLINE_MS);
	ck_assert_int_ne(status, -1);
	if (pstatus != NULL) {
		*pstatus = status;
	}
	return text;
}

static char *url(const char *path)
{
	return talloc_asprintf(tt_mem, "http://127.0.0.1:%u%s", port, path);
}

/* The body of an answer (after the blank line). */
static const char *body_of(const char *answer)
{
	const char *p = strstr(answer, "\r\n\r\n");

	ck_assert_ptr_nonnull(p);
	return p + 4;
}

static void assert_starts(const char *s, const char *prefix)
{
	ck_assert_msg(strncmp(s, prefix, strlen(prefix)) == 0,
		      "expected '%s...', got '%.200s'", prefix, s);
}

static char *probe(const struct tsgate_config_addr *a,
		   const char *path,
		   unsigned timeout_ms);

/* Let the server see the clients' closes; true once none is left. */
static bool no_clients_within(unsigned timeout_ms)
{
	bool never = false;

	for (unsigned t = 0; t < timeout_ms; t += 20) {
		if (tsgate_http_server_num_clients(server) == 0) {
			return true;
		}
		tt_loop_until(tt_ev, &never, 20);
	}
	return tsgate_http_server_num_clients(server) == 0;
}

START_TEST(test_curl_metrics)
{
	struct tsgate_metrics_listener *l;
	struct tsgate_metrics_route *r;
	char *out, *cl;
	const char *body;
	int status;

	l = tsgate_metrics_listener_new(tt_mem, m, "pub");
	r = tsgate_metrics_route_new(tt_mem, l, "ldap");
	tsgate_metrics_backend_connected(r, 1500);
	tsgate_metrics_conn_new(tt_mem, l);

	out = curl(url("/metrics"), NULL, &status);
	ck_assert_int_eq(status, 0);
	assert_starts(out, "HTTP/1.1 200 OK\r\n");
	ck_assert_ptr_nonnull(strstr(out, "\r\nContent-Type: text/plain; "
					  "version=0.0.4; charset=utf-8\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "\r\nConnection: close\r\n"));
	body = body_of(out);
	cl = talloc_asprintf(tt_mem, "\r\nContent-Length: %zu\r\n",
			     strlen(body));
	ck_assert_ptr_nonnull(strstr(out, cl));
	ck_assert_ptr_nonnull(
	    strstr(body, "# TYPE tsgate_build_info gauge\n"
			 "tsgate_build_info{version=\"test\"} 1\n"));
	ck_assert_ptr_nonnull(
	    strstr(body, "tsgate_connections_active{listener=\"pub\"} 1\n"));
	ck_assert_ptr_nonnull(
	    strstr(body, "tsgate_backend_connect_duration_seconds_bucket{"
			 "listener=\"pub\",route=\"ldap\",le=\"0.0025\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(body, "tsgate_backend_connect_duration_"
					   "seconds_sum{listener=\"pub\","
					   "route=\"ldap\"} 0.001500\n"));

	/* a query string is ignored */
	out = curl(url("/metrics?name[]=x"), (const char *[]){"-g", NULL},
		   &status);
	ck_assert_int_eq(status, 0);
	assert_starts(out, "HTTP/1.1 200 OK\r\n");

	/* HTTP/1.0 works too */
	out =
	    curl(url("/healthz"), (const char *[]){"--http1.0", NULL}, &status);
	ck_assert_int_eq(status, 0);
	assert_starts(out, "HTTP/1.1 200 OK\r\n");
	ck_assert(no_clients_within(2000));
}
END_TEST

START_TEST(test_curl_health)
{
	char *out;
	int status;

	out = curl(url("/healthz"), NULL, &status);
	ck_assert_int_eq(status, 0);
	assert_starts(out, "HTTP/1.1 200 OK\r\n");
	ck_assert_str_eq(body_of(out), "ok\n");

	out = curl(url("/readyz"), NULL, &status);
	assert_starts(out, "HTTP/1.1 503 Service Unavailable\r\n");
	ck_assert_str_eq(body_of(out), "starting\n");

	tsgate_metrics_set_state(m, TSGATE_METRICS_READY);
	out = curl(url("/readyz"), NULL, &status);
	assert_starts(out, "HTTP/1.1 200 OK\r\n");
	ck_assert_str_eq(body_of(out), "ready\n");

	/* curl -f fails on 503: what a readiness probe script would do */
	tsgate_metrics_set_state(m, TSGATE_METRICS_DRAINING);
	out = curl(url("/readyz"), NULL, &status);
	assert_starts(out, "HTTP/1.1 503 Service Unavailable\r\n");
	ck_assert_str_eq(body_of(out), "draining\n");
	curl(url("/readyz"), (const char *[]){"-f", NULL}, &status);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 22);
	/* liveness is not readiness */
	curl(url("/healthz"), (const char *[]){"-f", NULL}, &status);
	ck_assert_int_eq(status, 0);
}
END_TEST

START_TEST(test_curl_errors)
{
	char *out;
	int status;

	out = curl(url("/nope"), NULL, &status);
	ck_assert_int_eq(status, 0);
	assert_starts(out, "HTTP/1.1 404 Not Found\r\n");
	ck_assert_str_eq(body_of(out), "not found\n");

	out = curl(url("/metrics"),
		   (const char *[]){"-X", "POST", "-d", "x=1", NULL}, &status);
	assert_starts(out, "HTTP/1.1 405 Method Not Allowed\r\n");
	ck_assert_ptr_nonnull(strstr(out, "\r\nAllow: GET, HEAD\r\n"));

	out = curl(url("/healthz"), (const char *[]){"-X", "DELETE", NULL},
		   &status);
	assert_starts(out, "HTTP/1.1 405 Method Not Allowed\r\n");

	/* HEAD: the headers of GET, no body */
	out = curl(url("/healthz"), (const char *[]){"-I", NULL}, &status);
	ck_assert_int_eq(status, 0);
	assert_starts(out, "HTTP/1.1 200 OK\r\n");
	ck_assert_ptr_nonnull(strstr(out, "\r\nContent-Length: 3\r\n"));
	ck_assert_str_eq(body_of(out), "");
}
END_TEST

/* A connected, non-blocking TCP socket to the server. */
static int raw_connect(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* loopback: the kernel completes the handshake before accept */
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

/* Send a raw request, return the whole answer up to the server's close. */
static char *raw_request(const char *data, size_t len)
{
	int fd = raw_connect();
	char *answer;

	ck_assert_int_eq(send(fd, data, len, MSG_NOSIGNAL), (ssize_t)len);
	answer = read_to_eof(tt_mem, fd, 5000);
	close(fd);
	return answer;
}

#define RAW(s) raw_request(s, sizeof(s) - 1)

START_TEST(test_raw_garbage)
{
	static char big[TSGATE_HTTP_MAX_HEAD + 100];
	size_t len;

	assert_starts(
	    RAW("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),
	    "HTTP/1.1 400 Bad Request\r\n");
	assert_starts(RAW("garbage\r\n\r\n"), "HTTP/1.1 400 Bad Request\r\n");
	assert_starts(RAW("GET /metrics HTTP/1.1\r\n\r\n"), /* no Host */
		      "HTTP/1.1 400 Bad Request\r\n");
	assert_starts(
	    RAW("GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
	    "HTTP/1.1 400 Bad Request\r\n");
	assert_starts(
	    RAW("GET /metrics HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"),
	    "HTTP/1.1 400 Bad Request\r\n");
	assert_starts(RAW("GET /metrics HTTP/1.1\r\nHost : a\r\n\r\n"),
		      "HTTP/1.1 400 Bad Request\r\n");
	assert_starts(RAW("GET /met rics HTTP/1.1\r\nHost: a\r\n\r\n"),
		      "HTTP/1.1 400 Bad Request\r\n");
	assert_starts(RAW("GET http://a/metrics HTTP/1.1\r\nHost: a\r\n\r\n"),
		      "HTTP/1.1 400 Bad Request\r\n");
	assert_starts(RAW("GET /metrics HTTP/1.0\n\n"), /* bare LF */
		      "HTTP/1.1 400 Bad Request\r\n");
	assert_starts(RAW("GET /metrics HTTP/1.1\r\nHost: a\x01\r\n\r\n"),
		      "HTTP/1.1 400 Bad Request\r\n");
	assert_starts(RAW("GET /healthz HTTP/2.0\r\nHost: a\r\n\r\n"),
		      "HTTP/1.1 505 HTTP Version Not Supported\r\n");
	assert_starts(RAW("BREW /healthz HTTP/1.1\r\nHost: a\r\n\r\n"),
		      "HTTP/1.1 405 Method Not Allowed\r\n");
	/* NUL in the head */
	assert_starts(raw_request("GET /\0 HTTP/1.0\r\n\r\n", 19),
		      "HTTP/1.1 400 Bad Request\r\n");
	/* the minimal valid request */
	assert_starts(RAW("GET /healthz HTTP/1.0\r\n\r\n"),
		      "HTTP/1.1 200 OK\r\n");

	/* a head over 8 KiB: 431, whatever follows */
	len = TSGATE_HTTP_MAX_HEAD + 100;
	memcpy(big, "GET /metrics HTTP/1.1\r\nX-Big: ", 30);
	memset(big + 30, 'a', len - 30);
	assert_starts(raw_request(big, len),
		      "HTTP/1.1 431 Request Header Fields Too Large\r\n");
	/* exactly at the limit is fine */
	len = TSGATE_HTTP_MAX_HEAD;
	memcpy(big, "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: ", 39);
	memset(big + 39, 'a', len - 39 - 4);
	memcpy(big + len - 4, "\r\n\r\n", 4);
	assert_starts(raw_request(big, len), "HTTP/1.1 200 OK\r\n");
	ck_assert(no_clients_within(2000));
}
END_TEST

/*
 * A client that never finishes its head holds only its own connection:
 * curl is served meanwhile, and the slow one is dropped at the deadline
 * without an answer.
 */
START_TEST(test_slow_client_dropped)
{
	const char partial[] = "GET /metrics HTTP/1.1\r\nHost: a\r\n";
	struct timeval t0 = tevent_timeval_current();
	struct timeval t1;
	int slow = raw_connect();
	char *out;
	int status;
	int64_t ms;

	ck_assert_int_eq(send(slow, partial, sizeof(partial) - 1, 0),
			 (ssize_t)sizeof(partial) - 1);
	out = curl(url("/healthz"), NULL, &status);
	ck_assert_int_eq(status, 0);
	assert_starts(out, "HTTP/1.1 200 OK\r\n");

	/* the slow one: EOF and nothing else, at about the deadline */
	out = read_to_eof(tt_mem, slow, 5000);
	t1 = tevent_timeval_current();
	close(slow);
	ck_assert_str_eq(out, "");
	ms = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_usec - t0.tv_usec) / 1000;
	ck_assert_int_ge(ms, SERVER_TIMEOUT_MS - 50);
	ck_assert_int_lt(ms, SERVER_TIMEOUT_MS + 2000);
	ck_assert(no_clients_within(2000));
}
END_TEST

/*
 * Past max_clients, a new connection evicts the oldest one still without
 * a complete head, so a probe is answered while idle clients hold every
 * slot (issue 13, defect 6).
 */
START_TEST(test_max_clients)
{
	int fds[MAX_CLIENTS];
	bool dummy = false;
	char *out;
	int status;

	for (size_t i = 0; i < MAX_CLIENTS; i++) {
		fds[i] = raw_connect();
	}
	/* let the server accept them */
	tt_loop_until(tt_ev, &dummy, 100);
	ck_assert_uint_eq(tsgate_http_server_num_clients(server), MAX_CLIENTS);
	out = curl(url("/healthz"), NULL, &status);
	assert_starts(out, "HTTP/1.1 200 OK\r\n");
	ck_assert_uint_ge(tsgate_http_server_num_evicted(server), 1);
	/* the oldest went first: its end reads EOF at once */
	out = read_to_eof(tt_mem, fds[0], 200);
	ck_assert_str_eq(out, "");
	for (size_t i = 0; i < MAX_CLIENTS; i++) {
		close(fds[i]);
	}
	/* closed before sending a head: gone without waiting for the
	 * deadline */
	tt_loop_until(tt_ev, &dummy, 100);
	ck_assert(no_clients_within(2000));
}
END_TEST

/*
 * Out of descriptors: accept fails with EMFILE while the connection waits
 * in the backlog. The server pauses accepting instead of spinning, and
 * takes the connection once descriptors are free again.
 */
START_TEST(test_emfile_no_spin)
{
	struct rlimit old, low;
	struct rusage r0, r1;
	int fds[64];
	size_t num_fds = 0;
	bool never = false;
	int64_t cpu_ms;
	int client;

	if (getenv("TSGATE_VALGRIND") != NULL) {
		return; /* valgrind keeps descriptors of its own */
	}
	client = raw_connect();
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)client + 16;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (num_fds < 64) {
		int fd = dup(client);

		if (fd == -1) {
			break;
		}
		fds[num_fds++] = fd;
	}
	ck_assert_int_eq(errno, EMFILE);

	getrusage(RUSAGE_SELF, &r0);
	tt_loop_until(tt_ev, &never, 400);
	getrusage(RUSAGE_SELF, &r1);
	cpu_ms = ((int64_t)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
		  (int64_t)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec)) *
		     1000 +
		 ((int64_t)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) +
		  (int64_t)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec)) /
		     1000;
	ck_assert_msg(cpu_ms < 100, "accept loop spun: %lld ms CPU in 400 ms",
		      (long long)cpu_ms);
	ck_assert_uint_eq(tsgate_http_server_num_clients(server), 0);

	for (size_t i = 0; i < num_fds; i++) {
		close(fds[i]);
	}
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_starts(raw_request("GET /healthz HTTP/1.0\r\n\r\n", 25),
		      "HTTP/1.1 200 OK\r\n");
	close(client);
	ck_assert(no_clients_within(2000));
}
END_TEST

START_TEST(test_unix_socket)
{
	char *dir = tt_mkdtemp(tt_mem);
	char *path = talloc_asprintf(tt_mem, "%s/metrics.sock", dir);
	struct tsgate_config_addr a = {
	    .kind = TSGATE_CONFIG_ADDR_UNIX, .text = path, .path = path};
	struct tsgate_http_server *us = NULL, *again = NULL;
	char *reason = NULL;
	struct stat st;
	char *out;
	int status, ret, fd;

	/* a stale socket file (nobody listening) is replaced */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	{
		struct sockaddr_un sun = {.sun_family = AF_UNIX};

		strcpy(sun.sun_path, path);
		ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)),
				 0);
		close(fd);
	}
	ret =
	    tsgate_metrics_server_new(tt_mem, tt_ev, m, &a, NULL, &us, &reason);
	ck_assert_msg(ret == 0, "%s", reason);
	ck_assert_uint_eq(tsgate_http_server_port(us), 0);

	/* a live one is not taken over */
	ret = tsgate_metrics_server_new(tt_mem, tt_ev, m, &a, NULL, &again,
					&reason);
	ck_assert_int_eq(ret, EADDRINUSE);
	ck_assert_ptr_nonnull(strstr(reason, "Address already in use"));
	ck_assert_ptr_null(again);

	out = curl("http://localhost/healthz",
		   (const char *[]){"--unix-socket", path, NULL}, &status);
	ck_assert_int_eq(status, 0);
	assert_starts(out, "HTTP/1.1 200 OK\r\n");

	talloc_free(us);
	ck_assert_int_eq(stat(path, &st), -1); /* removed */
	tt_rmtree(dir);
}
END_TEST

/*
 * A unix path longer than sockaddr_un holds (the config loader refuses it;
 * this is the server's own check): ENAMETOOLONG, named in the reason, and
 * no socket file at the path or at the path cut to fit.
 */
START_TEST(test_unix_path_too_long)
{
	char *dir = tt_mkdtemp(tt_mem);
	struct sockaddr_un sun;
	char *path = talloc_asprintf(tt_mem, "%s/", dir);
	struct tsgate_config_addr a = {.kind = TSGATE_CONFIG_ADDR_UNIX};
	struct tsgate_http_server *us = NULL;
	char *reason = NULL, *cut, *want;
	struct stat st;

	while (strlen(path) < 120) {
		path = talloc_strdup_append(path, "m");
	}
	cut = talloc_strndup(tt_mem, path, sizeof(sun.sun_path) - 1);
	a.text = path;
	a.path = path;
	ck_assert_int_eq(
	    tsgate_metrics_server_new(tt_mem, tt_ev, m, &a, NULL, &us, &reason),
	    ENAMETOOLONG);
	ck_assert_ptr_null(us);
	want = talloc_asprintf(tt_mem, "%s: %s", path, strerror(ENAMETOOLONG));
	ck_assert_str_eq(reason, want);
	ck_assert_int_eq(lstat(path, &st), -1);
	ck_assert_int_eq(lstat(cut, &st), -1);
	tt_rmtree(dir);
}
END_TEST

/* IPv6 loopback, and a wildcard "::" probed on "::1". */
START_TEST(test_ipv6)
{
	struct tsgate_config_addr a = {.kind = TSGATE_CONFIG_ADDR_TCP,
				       .text = "tcp://[::1]:0",
				       .host = "::1",
				       .ip = "::1",
				       .port = 0};
	struct tsgate_http_server *s6 = NULL;
	char *reason = NULL;
	char *out, *u;
	int ret, status;

	ret =
	    tsgate_metrics_server_new(tt_mem, tt_ev, m, &a, NULL, &s6, &reason);
	if (ret == EADDRNOTAVAIL || ret == EAFNOSUPPORT) {
		return; /* no IPv6 loopback here */
	}
	ck_assert_msg(ret == 0, "%s", reason);
	a.port = tsgate_http_server_port(s6);
	u = talloc_asprintf(tt_mem, "http://[::1]:%u/healthz", a.port);
	out = curl(u, (const char *[]){"-g", NULL}, &status);
	ck_assert_int_eq(status, 0);
	assert_starts(out, "HTTP/1.1 200 OK\r\n");
	a.ip = "::";
	ck_assert_str_eq(probe(&a, NULL, 2000), "0 0 0");
	talloc_free(s6);
}
END_TEST

START_TEST(test_bind_in_use)
{
	struct tsgate_config_addr a = {.kind = TSGATE_CONFIG_ADDR_TCP,
				       .text = "tcp://127.0.0.1:in-use",
				       .ip = "127.0.0.1",
				       .port = port};
	struct tsgate_http_server *s2 = NULL;
	char *reason = NULL;

	ck_assert_int_eq(
	    tsgate_metrics_server_new(tt_mem, tt_ev, m, &a, NULL, &s2, &reason),
	    EADDRINUSE);
	ck_assert_str_eq(reason,
			 "tcp://127.0.0.1:in-use: Address already in use");
}
END_TEST

/*
 * The blocking probe in a child process (the server runs in this one);
 * returns the probe's result as "ret errno status".
 */
static char *probe(const struct tsgate_config_addr *a,
		   const char *path,
		   unsigned timeout_ms)
{
	int p[2];
	pid_t pid;
	char *out;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		unsigned status = 0;
		int ret, err;
		char buf[64];

		close(p[0]);
		if (path == NULL) {
			struct tsgate_config cfg = {
			    .metrics_listen = (struct tsgate_config_addr *)a};

			ret = tsgate_health_probe(&cfg, timeout_ms);
		} else {
			ret = tsgate_health_probe_addr(a, path, timeout_ms,
						       &status);
		}
		err = ret == 0 ? 0 : errno;
		snprintf(buf, sizeof(buf), "%d %s %u", ret,
			 err == 0 ? "0" : strerrorname_np(err), status);
		(void)!write(p[1], buf, strlen(buf));
		_exit(0);
	}
	close(p[1]);
	out = read_to_eof(tt_mem, p[0], timeout_ms + 5000);
	close(p[0]);
	ck_assert_int_eq(tt_wait_exit(pid, TT_DEADLINE_MS), 0);
	return out;
}

START_TEST(test_probe)
{
	struct tsgate_config_addr a = {.kind = TSGATE_CONFIG_ADDR_TCP,
				       .text = "tcp://127.0.0.1",
				       .ip = "127.0.0.1",
				       .port = port};
	struct tsgate_config cfg = {.metrics_listen = NULL};
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sinlen = sizeof(sin);
	struct timeval t0, t1;
	int64_t ms;
	int mute;

	ck_assert_str_eq(probe(&a, NULL, 2000), "0 0 0"); /* /healthz */
	ck_assert_str_eq(probe(&a, "/healthz", 2000), "0 0 200");
	ck_assert_str_eq(probe(&a, "/readyz", 2000), "-1 EPROTO 503");
	ck_assert_str_eq(probe(&a, "/nope", 2000), "-1 EPROTO 404");
	/* a wildcard address is probed on loopback */
	a.ip = "0.0.0.0";
	ck_assert_str_eq(probe(&a, NULL, 2000), "0 0 0");
	a.ip = "127.0.0.1";

	/* no metrics listener: nothing to ask, healthy */
	ck_assert_int_eq(tsgate_health_probe(&cfg, 100), 0);

	/* nobody listening */
	a.port = tt_free_port();
	ck_assert_str_eq(probe(&a, NULL, 2000), "-1 ECONNREFUSED 0");

	/* a listener that never answers: the probe gives up in time */
	mute = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(mute, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(mute, 4), 0);
	ck_assert_int_eq(getsockname(mute, (struct sockaddr *)&sin, &sinlen),
			 0);
	a.port = ntohs(sin.sin_port);
	t0 = tevent_timeval_current();
	ck_assert_str_eq(probe(&a, NULL, 300), "-1 ETIMEDOUT 0");
	t1 = tevent_timeval_current();
	ms = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_usec - t0.tv_usec) / 1000;
	ck_assert_int_lt(ms, 2000);
	close(mute);

	/* a unix socket path that does not exist */
	a = (struct tsgate_config_addr){.kind = TSGATE_CONFIG_ADDR_UNIX,
					.path = "/nonexistent/tsgate.sock"};
	ck_assert_str_eq(probe(&a, NULL, 2000), "-1 ENOENT 0");
}
END_TEST

static Suite *metrics_http_suite(void)
{
	Suite *s = suite_create("metrics_http");
	TCase *tc;

	tc = tcase_create("curl");
	tcase_add_checked_fixture(tc, server_setup, server_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_curl_metrics);
	tcase_add_test(tc, test_curl_health);
	tcase_add_test(tc, test_curl_errors);
	tcase_add_test(tc, test_unix_socket);
	tcase_add_test(tc, test_unix_path_too_long);
	tcase_add_test(tc, test_bind_in_use);
	tcase_add_test(tc, test_ipv6);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_add_checked_fixture(tc, server_setup, server_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_raw_garbage);
	tcase_add_test(tc, test_slow_client_dropped);
	tcase_add_test(tc, test_max_clients);
	tcase_add_test(tc, test_emfile_no_spin);
	suite_add_tcase(s, tc);

	tc = tcase_create("probe");
	tcase_add_checked_fixture(tc, server_setup, server_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_probe);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tt_run_suite(metrics_http_suite());
}
