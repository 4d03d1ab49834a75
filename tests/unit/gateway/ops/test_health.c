/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of gateway/ops/health.c: /healthz and /readyz answered by a
 * real metrics server in this event loop, through each readiness state,
 * and the blocking probe of `tsgate --health` against it. The probe
 * blocks, so it runs in a thread while the test thread turns the event
 * loop; the probe touches no talloc memory, so this is safe.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "health.h"
#include "metrics.h"
#include "tt.h"
#include "tt_pair.h"

/* One probe in its own thread. */
struct probe {
	const struct tsgate_config_addr *addr;
	const struct tsgate_config *cfg; /* tsgate_health_probe() if set */
	const char *path;
	unsigned timeout_ms;
	pthread_t thread;
	int ret, err;
	unsigned status;
	uint64_t elapsed_ms;
	int wake[2]; /* the thread writes a byte when it is done */
	bool done;
};

static void *probe_main(void *arg)
{
	struct probe *p = arg;
	uint64_t start = tt_now_ms();

	if (p->cfg != NULL) {
		p->ret = tsgate_health_probe(p->cfg, p->timeout_ms);
	} else {
		p->ret = tsgate_health_probe_addr(p->addr, p->path,
						  p->timeout_ms, &p->status);
	}
	p->err = p->ret == 0 ? 0 : errno;
	p->elapsed_ms = tt_now_ms() - start;
	/* wakes the event loop, which may be waiting in epoll */
	ck_assert_int_eq(write(p->wake[1], "x", 1), 1);
	return NULL;
}

static void probe_woken(struct tevent_context *ev,
			struct tevent_fd *fde,
			uint16_t flags,
			void *private_data)
{
	struct probe *p = private_data;

	(void)ev;
	(void)fde;
	(void)flags;
	p->done = true;
}

/* Start p (filled in) in a thread; wait for it while the loop runs. */
static void probe_start_wait(struct probe *p)
{
	struct tevent_fd *fde;

	p->done = false;
	ck_assert_int_eq(pipe2(p->wake, O_CLOEXEC), 0);
	fde = tevent_add_fd(tt_ev, tt_mem, p->wake[0], TEVENT_FD_READ,
			    probe_woken, p);
	ck_assert_ptr_nonnull(fde);
	ck_assert_int_eq(pthread_create(&p->thread, NULL, probe_main, p), 0);
	/* the probe bounds itself; ten seconds on top for a slow machine */
	tt_wait(&p->done, p->timeout_ms + 10000);
	ck_assert_int_eq(pthread_join(p->thread, NULL), 0);
	talloc_free(fde);
	close(p->wake[0]);
	close(p->wake[1]);
}

/* Probe path on addr while the event loop serves; the outcome in *p. */
static void probe_run(struct probe *p,
		      const struct tsgate_config_addr *addr,
		      const char *path,
		      unsigned timeout_ms)
{
	memset(p, 0, sizeof(*p));
	p->addr = addr;
	p->path = path;
	p->timeout_ms = timeout_ms;
	probe_start_wait(p);
}

static struct tsgate_config_addr tcp_addr(const char *ip, uint16_t port)
{
	struct tsgate_config_addr a = {.kind = TSGATE_CONFIG_ADDR_TCP,
				       .text = "tcp://test",
				       .host = ip,
				       .ip = ip,
				       .port = port};

	return a;
}

/* A metrics server on 127.0.0.1 with a kernel-picked port. */
static struct tsgate_http_server *server_new(struct tsgate_metrics *m,
					     uint16_t *pport)
{
	struct tsgate_config_addr a = tcp_addr("127.0.0.1", 0);
	struct tsgate_http_server *s = NULL;
	char *reason = NULL;
	int ret;

	ret =
	    tsgate_metrics_server_new(tt_mem, tt_ev, m, &a, NULL, &s, &reason);
	ck_assert_msg(ret == 0, "server: %s", reason ? reason : "?");
	*pport = tsgate_http_server_port(s);
	ck_assert_uint_ne(*pport, 0);
	return s;
}

START_TEST(test_states)
{
	struct tsgate_metrics *m = tsgate_metrics_new(tt_mem, "1", NULL);
	uint16_t port;
	struct tsgate_http_server *s = server_new(m, &port);
	struct tsgate_config_addr a = tcp_addr("127.0.0.1", port);
	struct probe p;

	/* alive from the start, ready only once listeners are bound */
	probe_run(&p, &a, "/healthz", 5000);
	ck_assert_int_eq(p.ret, 0);
	ck_assert_uint_eq(p.status, 200);
	probe_run(&p, &a, "/readyz", 5000);
	ck_assert_int_eq(p.ret, -1);
	ck_assert_int_eq(p.err, EPROTO);
	ck_assert_uint_eq(p.status, 503);

	tsgate_metrics_set_state(m, TSGATE_METRICS_READY);
	probe_run(&p, &a, "/readyz", 5000);
	ck_assert_int_eq(p.ret, 0);
	ck_assert_uint_eq(p.status, 200);
	probe_run(&p, &a, "/metrics", 5000);
	ck_assert_int_eq(p.ret, 0);
	ck_assert_uint_eq(p.status, 200);

	/* draining: not ready, still alive */
	tsgate_metrics_set_state(m, TSGATE_METRICS_DRAINING);
	probe_run(&p, &a, "/readyz", 5000);
	ck_assert_int_eq(p.err, EPROTO);
	ck_assert_uint_eq(p.status, 503);
	probe_run(&p, &a, "/healthz", 5000);
	ck_assert_int_eq(p.ret, 0);

	probe_run(&p, &a, "/nope", 5000);
	ck_assert_int_eq(p.err, EPROTO);
	ck_assert_uint_eq(p.status, 404);
	talloc_free(s);
	talloc_free(m);
}
END_TEST

/* `tsgate --health`: the config's metrics listener, wildcard on loopback. */
START_TEST(test_probe_config)
{
	struct tsgate_metrics *m = tsgate_metrics_new(tt_mem, "1", NULL);
	uint16_t port;
	struct tsgate_http_server *s = server_new(m, &port);
	struct tsgate_config_addr a = tcp_addr("0.0.0.0", port);
	struct tsgate_config cfg = {.metrics_listen = &a};
	struct probe p;

	memset(&p, 0, sizeof(p));
	p.cfg = &cfg;
	p.timeout_ms = 5000;
	probe_start_wait(&p);
	ck_assert_msg(p.ret == 0, "probe: %s", strerror(p.err));

	/* no metrics listener: nothing to ask, the probe succeeds */
	cfg.metrics_listen = NULL;
	ck_assert_int_eq(tsgate_health_probe(&cfg, 100), 0);
	talloc_free(s);
	talloc_free(m);
}
END_TEST

/* A unix metrics socket. */
START_TEST(test_probe_unix)
{
	struct tsgate_metrics *m = tsgate_metrics_new(tt_mem, "1", NULL);
	char *dir = tt_mkdtemp(tt_mem);
	char *path = talloc_asprintf(tt_mem, "%s/m.sock", dir);
	struct tsgate_config_addr a = {
	    .kind = TSGATE_CONFIG_ADDR_UNIX, .text = path, .path = path};
	struct tsgate_http_server *s = NULL;
	struct probe p;

	ck_assert_int_eq(
	    tsgate_metrics_server_new(tt_mem, tt_ev, m, &a, NULL, &s, NULL), 0);
	probe_run(&p, &a, "/healthz", 5000);
	ck_assert_int_eq(p.ret, 0);
	talloc_free(s);

	/* the server removed its socket: nobody there */
	probe_run(&p, &a, "/healthz", 5000);
	ck_assert_int_eq(p.ret, -1);
	ck_assert_int_eq(p.err, ENOENT);

	/* a path longer than sun_path is refused, not cut short */
	a.path = talloc_asprintf(tt_mem, "%s/%0200d", dir, 0);
	probe_run(&p, &a, "/healthz", 5000);
	ck_assert_int_eq(p.err, ENAMETOOLONG);
	tt_rmtree(dir);
	talloc_free(m);
}
END_TEST

START_TEST(test_probe_refused)
{
	uint16_t port;
	int lfd = tt_listen_tcp(&port, 1);
	struct tsgate_config_addr a;
	struct probe p;

	close(lfd);
	a = tcp_addr("127.0.0.1", port);
	probe_run(&p, &a, "/healthz", 5000);
	ck_assert_int_eq(p.ret, -1);
	ck_assert_int_eq(p.err, ECONNREFUSED);
	ck_assert_uint_eq(p.status, 0);

	a = tcp_addr("not-an-address", port);
	probe_run(&p, &a, "/healthz", 5000);
	ck_assert_int_eq(p.err, EINVAL);
}
END_TEST

/* A listener that takes the connection and never answers. */
START_TEST(test_probe_timeout)
{
	uint16_t port;
	int lfd = tt_listen_tcp(&port, 4);
	struct tsgate_config_addr a = tcp_addr("127.0.0.1", port);
	struct probe p;

	probe_run(&p, &a, "/healthz", 300);
	ck_assert_int_eq(p.ret, -1);
	ck_assert_int_eq(p.err, ETIMEDOUT);
	ck_assert_uint_ge(p.elapsed_ms, 250);
	close(lfd);
}
END_TEST

/*
 * A peer that reads the request head, answers with fixed bytes and
 * closes (after the whole request, so the close is a FIN, not a reset).
 */
struct canned {
	int lfd, fd;
	const char *answer;
	char head[1024];
	size_t len;
};

static void canned_readable(struct tevent_context *ev,
			    struct tevent_fd *fde,
			    uint16_t flags,
			    void *private_data)
{
	struct canned *c = private_data;
	ssize_t n;

	(void)ev;
	(void)flags;
	n = read(c->fd, c->head + c->len, sizeof(c->head) - 1 - c->len);
	if (n < 0 && errno == EAGAIN) {
		return;
	}
	ck_assert_int_gt(n, 0);
	c->len += (size_t)n;
	c->head[c->len] = '\0';
	if (strstr(c->head, "\r\n\r\n") == NULL) {
		return;
	}
	/* small: fits the socket buffer at once */
	ck_assert_int_eq(write(c->fd, c->answer, strlen(c->answer)),
			 (ssize_t)strlen(c->answer));
	talloc_free(fde);
	close(c->fd);
	c->fd = -1;
}

static void canned_accept(struct tevent_context *ev,
			  struct tevent_fd *fde,
			  uint16_t flags,
			  void *private_data)
{
	struct canned *c = private_data;

	(void)flags;
	c->fd = accept4(c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c->fd == -1) {
		return;
	}
	talloc_free(fde);
	ck_assert_ptr_nonnull(tevent_add_fd(ev, tt_mem, c->fd, TEVENT_FD_READ,
					    canned_readable, c));
}

static void probe_canned(const char *answer, struct probe *p)
{
	uint16_t port;
	struct canned c = {
	    .lfd = tt_listen_tcp(&port, 4), .fd = -1, .answer = answer};
	struct tsgate_config_addr a = tcp_addr("127.0.0.1", port);

	ck_assert_ptr_nonnull(tevent_add_fd(tt_ev, tt_mem, c.lfd,
					    TEVENT_FD_READ, canned_accept, &c));
	probe_run(p, &a, "/healthz", 5000);
	/* the peer is done once the probe has its answer */
	ck_assert_int_eq(c.fd, -1);
	close(c.lfd);
}

START_TEST(test_probe_answers)
{
	struct probe p;

	probe_canned("HTTP/1.0 200 OK\r\n\r\n", &p);
	ck_assert_int_eq(p.ret, 0);
	ck_assert_uint_eq(p.status, 200);
	/* the status line is enough, even cut after it */
	probe_canned("HTTP/1.1 200 ", &p);
	ck_assert_int_eq(p.ret, 0);
	probe_canned("HTTP/1.1 500 Internal Server Error\r\n\r\n", &p);
	ck_assert_int_eq(p.err, EPROTO);
	ck_assert_uint_eq(p.status, 500);

	/* not HTTP */
	probe_canned("SSH-2.0-OpenSSH_9.6\r\n", &p);
	ck_assert_int_eq(p.ret, -1);
	ck_assert_int_eq(p.err, EBADMSG);
	ck_assert_uint_eq(p.status, 0);
	probe_canned("HTTP/1.1 2x0 OK\r\n", &p);
	ck_assert_int_eq(p.err, EBADMSG);
	probe_canned("HTTP/1.1 2000 OK\r\n", &p);
	ck_assert_int_eq(p.err, EBADMSG);
	probe_canned("HTTP/1.1 200", &p);
	ck_assert_int_eq(p.err, EBADMSG);
	/* closed without a byte */
	probe_canned("", &p);
	ck_assert_int_eq(p.err, EBADMSG);
}
END_TEST

static Suite *health_suite(void)
{
	Suite *s = suite_create("health");
	TCase *tc;

	tc = tt_tcase(s, "server", 30);
	tcase_add_unchecked_fixture(tc, tt_scratch_setup, tt_scratch_teardown);
	tcase_add_test(tc, test_states);
	tcase_add_test(tc, test_probe_config);
	tcase_add_test(tc, test_probe_unix);

	tc = tt_tcase(s, "probe", 30);
	tcase_add_test(tc, test_probe_refused);
	tcase_add_test(tc, test_probe_timeout);
	tcase_add_test(tc, test_probe_answers);
	return s;
}

int main(void)
{
	return tt_run_suite(health_suite());
}
