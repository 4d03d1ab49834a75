/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of gateway/datapath/exec.c and exec_stream.c: /bin/cat as
 * the program (both directions and the half-close through the two socket
 * pairs), the route's max_connections, and the reaping (the program is
 * gone once its stream is freed: no zombie is left). Started as root,
 * the program drops to nobody first: exec.c refuses to run a program as
 * root (test_refused_as_root, before the drop).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <grp.h>
#include <unistd.h>

#include <tsocket.h>

#include "exec.h"
#include "log.h"
#include "tt.h"

static struct tsgate_config_route *cat_route(uint32_t max)
{
	struct tsgate_config_route *r =
	    talloc_zero(tt_mem, struct tsgate_config_route);

	ck_assert_ptr_nonnull(r);
	r->name = "cat";
	r->backend.text = "exec:/bin/cat";
	r->exec = "/bin/cat";
	r->max_connections = max;
	return r;
}

static struct tsgate_execs *execs_new(void)
{
	struct tsgate_log *log = tsgate_log_new(tt_mem, TSGATE_CONFIG_LOG_ERROR,
						TSGATE_CONFIG_LOG_JSON);
	struct tsgate_execs *execs;

	ck_assert_ptr_nonnull(log);
	execs = tsgate_execs_new(tt_mem, tt_ev, log);
	ck_assert_ptr_nonnull(execs);
	return execs;
}

static struct tstream_context *start(struct tsgate_execs *execs,
				     const struct tsgate_config_route *r,
				     int *perr)
{
	struct tsgate_peer_info info = {0};
	struct tsgate_exec_spawn spawn = {
	    .listener = "in", .route = r, .conn_id = 1, .info = &info};
	struct tstream_context *s = NULL;
	char *reason = NULL;

	*perr = tsgate_exec_start(tt_mem, execs, &spawn, &s, &reason);
	talloc_free(reason);
	return s;
}

struct io {
	bool done;
	int ret;
	int err;
};

static void io_done(struct tevent_req *req)
{
	struct io *io = tevent_req_callback_data_void(req);

	io->ret = tstream_writev_recv(req, &io->err);
	talloc_free(req);
	io->done = true;
}

static void read_done(struct tevent_req *req)
{
	struct io *io = tevent_req_callback_data_void(req);

	io->ret = tstream_readv_recv(req, &io->err);
	talloc_free(req);
	io->done = true;
}

static void shut_done(struct tevent_req *req)
{
	struct io *io = tevent_req_callback_data_void(req);

	io->ret = tstream_shutdown_recv(req, &io->err);
	talloc_free(req);
	io->done = true;
}

START_TEST(test_cat_both_ways_and_half_close)
{
	struct tsgate_execs *execs = execs_new();
	struct tstream_context *s;
	uint8_t msg[] = "through the program", got[sizeof(msg)], more;
	struct iovec out = {msg, sizeof(msg)}, in = {got, sizeof(got)};
	struct iovec one = {&more, 1};
	struct io w = {0}, r = {0}, sh = {0}, eof = {0};
	struct tevent_req *req;
	int err;
	pid_t pid;

	s = start(execs, cat_route(0), &err);
	ck_assert_int_eq(err, 0);
	pid = tsgate_exec_pid(s);
	ck_assert_int_gt(pid, 0);

	req = tstream_writev_send(tt_mem, tt_ev, s, &out, 1);
	tevent_req_set_callback(req, io_done, &w);
	tt_wait(&w.done, TT_DEADLINE_MS);
	ck_assert_int_eq(w.ret, (int)sizeof(msg));
	req = tstream_readv_send(tt_mem, tt_ev, s, &in, 1);
	tevent_req_set_callback(req, read_done, &r);
	tt_wait(&r.done, TT_DEADLINE_MS);
	ck_assert_int_eq(r.ret, (int)sizeof(got));
	ck_assert_mem_eq(got, msg, sizeof(msg));

	/* our half-close is cat's EOF: it ends, and so does its output */
	req = tstream_shutdown_send(tt_mem, tt_ev, s);
	tevent_req_set_callback(req, shut_done, &sh);
	tt_wait(&sh.done, TT_DEADLINE_MS);
	ck_assert_int_eq(sh.ret, 0);
	req = tstream_readv_send(tt_mem, tt_ev, s, &one, 1);
	tevent_req_set_callback(req, read_done, &eof);
	tt_wait(&eof.done, TT_DEADLINE_MS);
	ck_assert_int_eq(eof.ret, -1);
	ck_assert_int_eq(eof.err, EPIPE);

	/* reaped by the SIGCHLD handler: no zombie left */
	tt_wait_for(kill(pid, 0) == -1 && errno == ESRCH, TT_DEADLINE_MS);
	talloc_free(s);
	talloc_free(execs);
}
END_TEST

START_TEST(test_max_connections_and_kill_on_free)
{
	struct tsgate_execs *execs = execs_new();
	const struct tsgate_config_route *r = cat_route(1);
	struct tstream_context *a, *b;
	int err;
	pid_t pid;

	a = start(execs, r, &err);
	ck_assert_int_eq(err, 0);
	pid = tsgate_exec_pid(a);
	b = start(execs, r, &err);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(err, EAGAIN);

	/* the connection goes: cat reads EOF, exits, is reaped */
	talloc_free(a);
	tt_wait_for(kill(pid, 0) == -1 && errno == ESRCH, TT_DEADLINE_MS);
	/* its slot is free again */
	b = start(execs, r, &err);
	ck_assert_int_eq(err, 0);
	pid = tsgate_exec_pid(b);
	talloc_free(b);
	tt_wait_for(kill(pid, 0) == -1 && errno == ESRCH, TT_DEADLINE_MS);
	talloc_free(execs);
}
END_TEST

static Suite *exec_suite(void)
{
	Suite *s = suite_create("exec");
	TCase *tc = tt_tcase(s, "exec", 30);

	tcase_add_test(tc, test_cat_both_ways_and_half_close);
	tcase_add_test(tc, test_max_connections_and_kill_on_free);
	return s;
}

/*
 * As root (before the drop): exec.c refuses, whatever the config said.
 * Outside the Check suite, which runs after the drop. 0 when refused.
 */
static int test_refused_as_root(void)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(mem);
	struct tsgate_log *log = tsgate_log_new(mem, TSGATE_CONFIG_LOG_ERROR,
						TSGATE_CONFIG_LOG_JSON);
	struct tsgate_execs *execs = tsgate_execs_new(mem, ev, log);
	struct tsgate_config_route r = {.name = "cat", .exec = "/bin/cat"};
	struct tsgate_peer_info info = {0};
	struct tsgate_exec_spawn spawn = {
	    .listener = "in", .route = &r, .conn_id = 1, .info = &info};
	struct tstream_context *s = NULL;
	char *reason = NULL;
	int err = execs == NULL
		      ? ENOMEM
		      : tsgate_exec_start(mem, execs, &spawn, &s, &reason);

	talloc_free(mem);
	if (err != EPERM || s != NULL) {
		fprintf(stderr, "test_refused_as_root: got %d, not EPERM\n",
			err);
		return 1;
	}
	return 0;
}

static void no_signal(struct tevent_context *ev,
		      struct tevent_signal *se,
		      int signum,
		      int count,
		      void *siginfo,
		      void *private_data)
{
}

int main(void)
{
	/*
	 * tevent keeps its signal state for the process once a handler was
	 * added (on the NULL context): made here, before the tests fork,
	 * it is not counted as a test's leak.
	 */
	struct tevent_context *ev = tevent_context_init(NULL);

	if (ev == NULL ||
	    tevent_add_signal(ev, ev, SIGCHLD, 0, no_signal, NULL) == NULL) {
		return 1;
	}
	talloc_free(ev);
	/* programs never run as root: as root, the tests run as nobody */
	if (geteuid() == 0 && test_refused_as_root() != 0) {
		return 1;
	}
	if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(65534) != 0 ||
			       setuid(65534) != 0)) {
		return 1;
	}
	return tt_run_suite(exec_suite());
}
