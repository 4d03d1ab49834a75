/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of gateway/ops/metrics_workers.c: worker 0 gathering the
 * other workers' states and texts over the links' unix sockets for
 * /metrics and /readyz. Everything runs in one event loop: worker 1 is a
 * real exporter (tsgate_metrics_workers_new()), the other workers are
 * test peers on the very listening sockets the links made for them (see
 * links_make()), so they can answer late, not at all, or with garbage.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <tsocket.h>

#include "config.h"
#include "health.h"
#include "http_server_private.h"
#include "metrics_workers.h"
#include "tt.h"
#include "tt_pair.h"

#define MAX_WORKERS 4

/* How a test peer behaves when worker 0 connects. */
enum peer_mode {
	PEER_CLOSED = 0, /* its socket is closed: nobody listens */
	PEER_SILENT,     /* listens, never accepts */
	PEER_ANSWER,     /* writes answer after delay_ms, then closes */
};

struct peer {
	enum peer_mode mode;
	const char *answer;
	unsigned delay_ms;
	int lfd; /* our duplicate of the worker's listening socket */
	int fd;
	unsigned served;
};

struct fixture {
	struct tsgate_metrics_links *links;
	struct tsgate_metrics *m0, *m1;
	struct tsgate_metrics_workers *w0, *w1;
	struct tsgate_http_server *server;
	struct peer peers[MAX_WORKERS];
	unsigned n;
};

static void peer_write(struct tevent_context *ev,
		       struct tevent_timer *te,
		       struct timeval now,
		       void *private_data)
{
	struct peer *p = private_data;
	size_t len = strlen(p->answer);

	(void)ev;
	(void)te;
	(void)now;
	/* small: fits the socket buffer at once */
	ck_assert_int_eq(send(p->fd, p->answer, len, MSG_NOSIGNAL),
			 (ssize_t)len);
	close(p->fd);
	p->fd = -1;
	p->served++;
}

static void peer_accept(struct tevent_context *ev,
			struct tevent_fd *fde,
			uint16_t flags,
			void *private_data)
{
	struct peer *p = private_data;

	(void)fde;
	(void)flags;
	if (p->fd != -1) {
		return; /* one asker at a time is enough here */
	}
	p->fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (p->fd == -1) {
		return;
	}
	ck_assert_ptr_nonnull(tevent_add_timer(
	    ev, tt_mem,
	    tevent_timeval_current_ofs(p->delay_ms / 1000,
				       (p->delay_ms % 1000) * 1000),
	    peer_write, p));
}

/*
 * Links for n workers. tsgate_metrics_links_new() takes the lowest free
 * descriptors, one per worker 1..n-1 in order (socket(2) always returns
 * the lowest free one), so the test learns them by taking those first and
 * giving them back; each is checked to be a listening unix socket.
 */
static void links_make(struct fixture *f)
{
	int pred[MAX_WORKERS] = {-1, -1, -1, -1};
	unsigned i;

	for (i = 1; i < f->n; i++) {
		pred[i] = dup(0);
		ck_assert_int_ge(pred[i], 0);
	}
	for (i = 1; i < f->n; i++) {
		close(pred[i]);
	}
	f->links = tsgate_metrics_links_new(tt_mem, f->n);
	ck_assert_ptr_nonnull(f->links);
	for (i = 1; i < f->n; i++) {
		struct sockaddr_un sun;
		socklen_t len = sizeof(sun);
		int listening = 0;
		socklen_t llen = sizeof(listening);

		ck_assert_int_eq(
		    getsockname(pred[i], (struct sockaddr *)&sun, &len), 0);
		ck_assert_int_eq(sun.sun_family, AF_UNIX);
		ck_assert_int_eq(sun.sun_path[0], '\0'); /* autobound */
		ck_assert_int_eq(getsockopt(pred[i], SOL_SOCKET, SO_ACCEPTCONN,
					    &listening, &llen),
				 0);
		ck_assert_int_eq(listening, 1);
		f->peers[i].lfd = -1;
		f->peers[i].fd = -1;
		if (i >= 2 && f->peers[i].mode != PEER_CLOSED) {
			/* survives the close in tsgate_metrics_workers_new() */
			f->peers[i].lfd = fcntl(pred[i], F_DUPFD_CLOEXEC, 0);
			ck_assert_int_ge(f->peers[i].lfd, 0);
		}
	}
}

/*
 * Worker 0 (serving) and worker 1 (a real exporter) of n; peers[2..]
 * set up by the caller before.
 */
static void fixture_start(struct fixture *f, unsigned n)
{
	char *dir = tt_mkdtemp(tt_mem);
	char *path = talloc_asprintf(tt_mem, "%s/m.sock", dir);
	struct tsgate_config_addr a = {
	    .kind = TSGATE_CONFIG_ADDR_UNIX, .text = path, .path = path};
	unsigned i;

	ck_assert_uint_le(n, MAX_WORKERS);
	f->n = n;
	links_make(f);
	f->m0 = tsgate_metrics_new(tt_mem, "1", NULL);
	f->m1 = tsgate_metrics_new(tt_mem, "1", NULL);
	ck_assert_ptr_nonnull(f->m0);
	ck_assert_ptr_nonnull(f->m1);
	tsgate_metrics_set_state(f->m0, TSGATE_METRICS_READY);
	tsgate_metrics_set_state(f->m1, TSGATE_METRICS_READY);
	if (n > 1) {
		f->w1 = tsgate_metrics_workers_new(tt_mem, tt_ev, f->m1,
						   f->links, 1);
		ck_assert_ptr_nonnull(f->w1);
	}
	f->w0 = tsgate_metrics_workers_new(tt_mem, tt_ev, f->m0, f->links, 0);
	ck_assert_ptr_nonnull(f->w0);
	for (i = 2; i < n; i++) {
		if (f->peers[i].lfd != -1 && f->peers[i].mode == PEER_ANSWER) {
			ck_assert_ptr_nonnull(tevent_add_fd(
			    tt_ev, tt_mem, f->peers[i].lfd, TEVENT_FD_READ,
			    peer_accept, &f->peers[i]));
		}
	}
	ck_assert_int_eq(tsgate_metrics_server_new(tt_mem, tt_ev, f->m0, &a,
						   NULL, &f->server, NULL),
			 0);
	tsgate_metrics_workers_serve(f->w0, f->server);
	/* the socket file goes with the server; the directory now */
	tt_rmtree(dir);
}

static void fixture_stop(struct fixture *f)
{
	unsigned i;

	TALLOC_FREE(f->server);
	for (i = 2; i < f->n; i++) {
		if (f->peers[i].fd != -1) {
			close(f->peers[i].fd);
		}
		if (f->peers[i].lfd != -1) {
			close(f->peers[i].lfd);
		}
	}
}

/* An HTTP exchange with the server in this loop, over a socketpair. */
struct client {
	int fd;
	char *buf;
	bool eof;
};

static void client_readable(struct tevent_context *ev,
			    struct tevent_fd *fde,
			    uint16_t flags,
			    void *private_data)
{
	struct client *c = private_data;
	char tmp[4096];
	ssize_t n = read(c->fd, tmp, sizeof(tmp));

	(void)ev;
	(void)flags;
	if (n > 0) {
		c->buf = talloc_strndup_append_buffer(c->buf, tmp, (size_t)n);
		ck_assert_ptr_nonnull(c->buf);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	c->eof = true;
	talloc_free(fde);
}

/* GET path; the status, the body in *pbody (on tt_mem). */
static unsigned get(struct fixture *f,
		    const char *path,
		    char **pbody,
		    uint64_t *pelapsed_ms)
{
	struct client *c = talloc_zero(tt_mem, struct client);
	struct tstream_context *st = NULL;
	uint64_t start = tt_now_ms();
	char *req, *body;
	unsigned status = 0;

	c->fd = tt_stream_raw_pair(tt_mem, &st);
	ck_assert_int_eq(tsgate_http_server_serve(f->server, st), 0);
	req = talloc_asprintf(c, "GET %s HTTP/1.0\r\n\r\n", path);
	ck_assert_int_eq(write(c->fd, req, strlen(req)), (ssize_t)strlen(req));
	c->buf = talloc_strdup(c, "");
	ck_assert_ptr_nonnull(
	    tevent_add_fd(tt_ev, c, c->fd, TEVENT_FD_READ, client_readable, c));
	/* the gather is bounded by TSGATE_METRICS_GATHER_MS */
	tt_wait(&c->eof, TSGATE_METRICS_GATHER_MS + 5000);
	if (pelapsed_ms != NULL) {
		*pelapsed_ms = tt_now_ms() - start;
	}
	close(c->fd);
	ck_assert_int_eq(sscanf(c->buf, "HTTP/1.1 %u ", &status), 1);
	body = strstr(c->buf, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	*pbody = talloc_strdup(tt_mem, body + 4);
	talloc_free(c);
	return status;
}

#define assert_has(text, part)                                              \
	ck_assert_msg(strstr((text), (part)) != NULL, "\"%s\" not in:\n%s", \
		      (part), (text))
#define assert_lacks(text, part)                                        \
	ck_assert_msg(strstr((text), (part)) == NULL, "\"%s\" in:\n%s", \
		      (part), (text))

#define PEER_TEXT                             \
	"# HELP peer_value A peer's value.\n" \
	"# TYPE peer_value gauge\n"           \
	"peer_value{l=\"x\"} 7\n"

START_TEST(test_all_answer)
{
	struct fixture f = {0};
	char *body;

	f.peers[2] =
	    (struct peer){.mode = PEER_ANSWER, .answer = "state 1\n" PEER_TEXT};
	fixture_start(&f, 3);

	ck_assert_uint_eq(get(&f, "/metrics", &body, NULL), 200);
	assert_has(body, "tsgate_ready{worker=\"0\"} 1\n");
	assert_has(body, "tsgate_ready{worker=\"1\"} 1\n");
	assert_has(body, "peer_value{worker=\"2\",l=\"x\"} 7\n");
	assert_has(body, "tsgate_worker_up{worker=\"0\"} 1\n"
			 "tsgate_worker_up{worker=\"1\"} 1\n"
			 "tsgate_worker_up{worker=\"2\"} 1\n");
	ck_assert_uint_eq(get(&f, "/readyz", &body, NULL), 200);
	ck_assert_str_eq(body, "ready\n");

	/* the answer follows each worker's state */
	tsgate_metrics_set_state(f.m1, TSGATE_METRICS_STARTING);
	ck_assert_uint_eq(get(&f, "/readyz", &body, NULL), 503);
	ck_assert_str_eq(body, "starting\n");
	tsgate_metrics_set_state(f.m1, TSGATE_METRICS_DRAINING);
	ck_assert_uint_eq(get(&f, "/readyz", &body, NULL), 503);
	ck_assert_str_eq(body, "draining\n");
	tsgate_metrics_set_state(f.m1, TSGATE_METRICS_READY);
	f.peers[2].answer = "state 2\n" PEER_TEXT; /* draining */
	ck_assert_uint_eq(get(&f, "/readyz", &body, NULL), 503);
	ck_assert_str_eq(body, "draining\n");
	f.peers[2].answer = "state 1\n" PEER_TEXT;
	tsgate_metrics_set_state(f.m0, TSGATE_METRICS_DRAINING);
	ck_assert_uint_eq(get(&f, "/readyz", &body, NULL), 503);
	ck_assert_str_eq(body, "draining\n");

	/* other paths are worker 0's own, asking nobody */
	ck_assert_uint_eq(get(&f, "/healthz", &body, NULL), 200);
	ck_assert_str_eq(body, "ok\n");
	ck_assert_uint_eq(get(&f, "/nope", &body, NULL), 404);
	ck_assert_uint_eq(f.peers[2].served, 6);
	fixture_stop(&f);
}
END_TEST

/* A worker whose socket is gone (restarting): down at once, no wait. */
START_TEST(test_worker_down)
{
	struct fixture f = {0};
	uint64_t ms;
	char *body;

	f.peers[2].mode = PEER_CLOSED;
	fixture_start(&f, 3);
	ck_assert_uint_eq(get(&f, "/metrics", &body, &ms), 200);
	assert_has(body, "tsgate_worker_up{worker=\"1\"} 1\n"
			 "tsgate_worker_up{worker=\"2\"} 0\n");
	assert_has(body, "tsgate_ready{worker=\"1\"} 1\n");
	ck_assert_uint_eq(get(&f, "/readyz", &body, &ms), 503);
	ck_assert_str_eq(body, "1 of 3 workers not answering\n");
	if (tt_timing_asserts_enabled()) {
		ck_assert_uint_lt(ms, TSGATE_METRICS_GATHER_MS / 2);
	}
	fixture_stop(&f);
}
END_TEST

/* A worker that never answers costs one gather bound, then counts down. */
START_TEST(test_worker_silent)
{
	struct fixture f = {0};
	uint64_t ms;
	char *body;

	f.peers[2].mode = PEER_SILENT;
	fixture_start(&f, 3);
	ck_assert_uint_eq(get(&f, "/metrics", &body, &ms), 200);
	ck_assert_uint_ge(ms, TSGATE_METRICS_GATHER_MS - 100);
	assert_has(body, "tsgate_ready{worker=\"1\"} 1\n");
	assert_has(body, "tsgate_worker_up{worker=\"1\"} 1\n"
			 "tsgate_worker_up{worker=\"2\"} 0\n");
	ck_assert_uint_eq(get(&f, "/readyz", &body, &ms), 503);
	ck_assert_str_eq(body, "1 of 3 workers not answering\n");
	fixture_stop(&f);
}
END_TEST

/* A late answer within the bound is waited for. */
START_TEST(test_worker_late)
{
	struct fixture f = {0};
	uint64_t ms;
	char *body;

	f.peers[2] = (struct peer){.mode = PEER_ANSWER,
				   .delay_ms = 300,
				   .answer = "state 1\n" PEER_TEXT};
	fixture_start(&f, 3);
	ck_assert_uint_eq(get(&f, "/metrics", &body, &ms), 200);
	ck_assert_uint_ge(ms, 250);
	assert_has(body, "peer_value{worker=\"2\",l=\"x\"} 7\n");
	assert_has(body, "tsgate_worker_up{worker=\"2\"} 1\n");
	ck_assert_uint_eq(get(&f, "/readyz", &body, NULL), 200);
	fixture_stop(&f);
}
END_TEST

/* Answers that are not "state N\n...": that worker counts as down. */
START_TEST(test_worker_garbage)
{
	static const char *const garbage[] = {
	    "",            /* closed at once */
	    "hello\n",     /* no state line */
	    "state 1",     /* no end of line */
	    "stat 1\nx\n", /* misspelt */
	    "\x16\x03\x01\x00\x05hello\n",
	};
	struct fixture f = {0};
	char *body;
	size_t i;

	f.peers[2].mode = PEER_ANSWER;
	f.peers[2].answer = garbage[0];
	fixture_start(&f, 3);
	for (i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		f.peers[2].answer = garbage[i];
		ck_assert_uint_eq(get(&f, "/metrics", &body, NULL), 200);
		assert_has(body, "tsgate_worker_up{worker=\"1\"} 1\n"
				 "tsgate_worker_up{worker=\"2\"} 0\n");
		assert_lacks(body, "hello");
		ck_assert_uint_eq(get(&f, "/readyz", &body, NULL), 503);
		ck_assert_str_eq(body, "1 of 3 workers not answering\n");
	}
	/* a state no worker has: neither ready nor draining */
	f.peers[2].answer = "state 99\n";
	ck_assert_uint_eq(get(&f, "/readyz", &body, NULL), 503);
	ck_assert_str_eq(body, "starting\n");
	fixture_stop(&f);
}
END_TEST

/* One worker only: nothing to gather, the registry's own answers. */
START_TEST(test_single_worker)
{
	struct fixture f = {0};
	char *body;

	fixture_start(&f, 1);
	ck_assert_uint_eq(get(&f, "/metrics", &body, NULL), 200);
	assert_has(body, "tsgate_ready{worker=\"0\"} 1\n");
	assert_has(body, "tsgate_worker_up{worker=\"0\"} 1\n");
	ck_assert_uint_eq(get(&f, "/readyz", &body, NULL), 200);
	fixture_stop(&f);
}
END_TEST

/* Freed in the middle of a gather: nothing leaks, nothing fires later. */
START_TEST(test_freed_while_gathering)
{
	struct fixture f = {0};
	struct tstream_context *st = NULL;
	int fd;

	f.peers[2].mode = PEER_SILENT;
	fixture_start(&f, 3);
	fd = tt_stream_raw_pair(tt_mem, &st);
	ck_assert_int_eq(tsgate_http_server_serve(f.server, st), 0);
	ck_assert_int_eq(write(fd, "GET /metrics HTTP/1.0\r\n\r\n", 25), 25);
	/* the request is read and the gather is under way */
	tt_wait_for(tsgate_http_server_num_clients(f.server) == 1,
		    TT_DEADLINE_MS);
	tt_run_for(tt_ev, 100);
	fixture_stop(&f);
	TALLOC_FREE(f.w0);
	TALLOC_FREE(f.w1);
	tt_run_for(tt_ev, 50);
	close(fd);
}
END_TEST

static Suite *metrics_workers_suite(void)
{
	Suite *s = suite_create("metrics_workers");
	TCase *tc;

	tc = tt_tcase(s, "gather", 30);
	tcase_add_unchecked_fixture(tc, tt_scratch_setup, tt_scratch_teardown);
	tcase_add_test(tc, test_all_answer);
	tcase_add_test(tc, test_worker_down);
	tcase_add_test(tc, test_worker_silent);
	tcase_add_test(tc, test_worker_late);
	tcase_add_test(tc, test_worker_garbage);
	tcase_add_test(tc, test_single_worker);
	tcase_add_test(tc, test_freed_while_gathering);
	return s;
}

int main(void)
{
	return tt_run_suite(metrics_workers_suite());
}
