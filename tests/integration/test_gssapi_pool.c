/* SPDX-License-Identifier: MIT */
/*
 * tstream_gssapi's worker pool against a real MIT KDC behind a delaying
 * relay (tests/common/tt_kdc_relay.c): a handshake waiting on a slow KDC
 * must not stall the other streams of its event loop, the pool never
 * runs more calls than it has threads, and a handshake that goes away
 * while its call is in a thread leaves nothing behind (the leak check of
 * every test, ASan and valgrind runs).
 *
 * TSGATE_TEST_NO_POOL=1 leaves the pool out of the params (the calls
 * run on the loop, as before the pool existed): test_slow_kdc_* then
 * fail, which is how they show they test the pool.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tsocket.h"
#include "tstream_gssapi.h"
#include "tt.h"
#include "tt_kdc.h"
#include "tt_kdc_relay.h"
#include "tt_pair.h"

/* The relay's hold time for "slow": long against a loopback round trip. */
#define SLOW_MS 2000

static TALLOC_CTX *kdc_mem;
static struct tt_kdc *kdc;
static struct tt_kdc_relay *relay;
static unsigned ccache_seq;

static void kdc_setup(void)
{
	kdc_mem = talloc_new(NULL);
	kdc = tt_kdc_start(kdc_mem);
	if (kdc == NULL) {
		return;
	}
	tt_kdc_setenv(kdc);
	relay = tt_kdc_relay_start(kdc_mem, kdc, 0);
	if (relay != NULL) {
		/* the code under test asks the relay; kinit the KDC */
		tt_kdc_relay_setenv(relay);
	}
}

static void kdc_teardown(void)
{
	TALLOC_FREE(kdc_mem);
	kdc = NULL;
	relay = NULL;
}

static bool use_pool(void)
{
	const char *v = getenv("TSGATE_TEST_NO_POOL");

	return v == NULL || strcmp(v, "1") != 0;
}

/* A ccache with only alice's TGT: its first handshake asks the KDC. */
static char *fresh_ccache(void)
{
	char *cc = talloc_asprintf(tt_mem, "FILE:%s/pool-%d-%u.ccache",
				   kdc->dir, (int)getpid(), ++ccache_seq);

	ck_assert_int_eq(
	    tt_kdc_kinit(kdc, "alice", kdc->alice_keytab, cc, NULL), 0);
	return cc;
}

static struct tstream_context *bsd_stream(int fd)
{
	struct tstream_context *s = NULL;
	int flags = fcntl(fd, F_GETFL);

	ck_assert_int_eq(fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, fd, &s), 0);
	return s;
}

static struct tstream_gssapi_params *acceptor_params(
    struct tstream_gssapi_pool *pool)
{
	struct tstream_gssapi_params *p = NULL;
	char *reason = NULL;
	int ret;

	ret = tstream_gssapi_params_acceptor(tt_mem, kdc->service_keytab, NULL,
					     &p, &reason);
	ck_assert_msg(ret == 0, "acceptor params: %s", reason);
	if (use_pool()) {
		tstream_gssapi_params_set_pool(p, pool);
	}
	return p;
}

static struct tstream_gssapi_params *initiator_params(
    struct tstream_gssapi_pool *pool, const char *ccache)
{
	struct tstream_gssapi_params *p = NULL;
	char *reason = NULL;
	int ret;

	/* the relay starts holding only after this check */
	ret = tstream_gssapi_params_initiator(tt_mem, "host@localhost", ccache,
					      NULL, NULL, &p, &reason);
	ck_assert_msg(ret == 0, "initiator params: %s", reason);
	if (use_pool()) {
		tstream_gssapi_params_set_pool(p, pool);
	}
	return p;
}

static struct tstream_gssapi_pool *make_pool(unsigned threads, unsigned queue)
{
	struct tstream_gssapi_pool *pool = NULL;

	ck_assert_int_eq(
	    tstream_gssapi_pool_create(tt_mem, tt_ev, threads, queue, &pool),
	    0);
	return pool;
}

static struct tstream_gssapi_pool_stats stats_of(
    struct tstream_gssapi_pool *pool)
{
	struct tstream_gssapi_pool_stats st;

	tstream_gssapi_pool_get_stats(pool, &st);
	return st;
}

/*
 * Pool counters and the relay's file change without an event on the
 * loop: a ticking timer lets tt_wait_for look at them again.
 */
static void tick(struct tevent_context *ev,
		 struct tevent_timer *te,
		 struct timeval now,
		 void *private_data)
{
	struct tevent_timer **pte = private_data;

	*pte = tevent_add_timer(ev, tt_mem, tevent_timeval_current_ofs(0, 5000),
				tick, pte);
}

#define wait_polling(cond, timeout_ms)                          \
	do {                                                    \
		struct tevent_timer *te_ = NULL;                \
		tick(tt_ev, NULL, tevent_timeval_zero(), &te_); \
		tt_wait_for(cond, timeout_ms);                  \
		TALLOC_FREE(te_);                               \
	} while (0)

struct hs {
	bool done;
	int ret;
	int err;
	char *reason;
	struct tevent_req *req;
	struct tstream_context *stream;
	struct tstream_context *plain;
	bool acceptor;
};

static void hs_done(struct tevent_req *req)
{
	struct hs *h = tevent_req_callback_data_void(req);

	if (h->acceptor) {
		h->ret = tstream_gssapi_accept_recv(req, &h->err, tt_mem,
						    &h->stream, &h->reason);
	} else {
		h->ret = tstream_gssapi_connect_recv(req, &h->err, tt_mem,
						     &h->stream, &h->reason);
	}
	TALLOC_FREE(h->req);
	if (h->ret == -1) {
		TALLOC_FREE(h->plain);
	}
	h->done = true;
}

static void hs_start(struct hs *h,
		     bool acceptor,
		     struct tstream_context *s,
		     struct tstream_gssapi_params *p)
{
	memset(h, 0, sizeof(*h));
	h->acceptor = acceptor;
	h->plain = s;
	if (acceptor) {
		h->req = tstream_gssapi_accept_send(tt_mem, tt_ev, s, p);
	} else {
		h->req = tstream_gssapi_connect_send(tt_mem, tt_ev, s, p);
	}
	ck_assert_ptr_nonnull(h->req);
	tevent_req_set_callback(h->req, hs_done, h);
}

/* Start both ends of a handshake over a fresh TCP pair. */
static void pair_start(struct tstream_gssapi_params *ip,
		       struct tstream_gssapi_params *ap,
		       struct hs *cli,
		       struct hs *srv)
{
	int fds[2];

	tt_tcp_fds(fds);
	hs_start(srv, true, bsd_stream(fds[1]), ap);
	hs_start(cli, false, bsd_stream(fds[0]), ip);
}

static void pair_ok(struct hs *cli, struct hs *srv)
{
	tt_wait(&srv->done, 20000);
	tt_wait(&cli->done, 20000);
	ck_assert_msg(cli->ret == 0, "connect: %s", cli->reason);
	ck_assert_msg(srv->ret == 0, "accept: %s", srv->reason);
}

/*
 * Echo round trips over an established pair: the client writes 16
 * bytes, the server reads and writes them back, the client reads them.
 */
struct echo {
	struct tstream_context *cli, *srv;
	uint8_t out[16], mid[16], back[16];
	struct iovec iov_out, iov_mid, iov_back;
	unsigned want, done_rt;
	bool finished;
	int err;
	/* what the other handshake was doing when the last one came back */
	const bool *other_done;
	bool other_pending_at_end;
};

static void echo_next(struct echo *e);

static void echo_fail(struct echo *e, int err)
{
	e->err = err;
	e->finished = true;
}

static void echo_back_read(struct tevent_req *req)
{
	struct echo *e = tevent_req_callback_data_void(req);
	int err = 0;
	int ret = tstream_readv_recv(req, &err);

	talloc_free(req);
	if (ret == -1) {
		echo_fail(e, err);
		return;
	}
	ck_assert(memcmp(e->back, e->out, sizeof(e->out)) == 0);
	e->done_rt++;
	if (e->done_rt == e->want) {
		e->other_pending_at_end = !*e->other_done;
		e->finished = true;
		return;
	}
	echo_next(e);
}

static void echo_mid_written(struct tevent_req *req)
{
	struct echo *e = tevent_req_callback_data_void(req);
	int err = 0;

	if (tstream_writev_recv(req, &err) == -1) {
		echo_fail(e, err);
	}
	talloc_free(req);
}

static void echo_mid_read(struct tevent_req *req)
{
	struct echo *e = tevent_req_callback_data_void(req);
	int err = 0;
	int ret = tstream_readv_recv(req, &err);

	talloc_free(req);
	if (ret == -1) {
		echo_fail(e, err);
		return;
	}
	e->iov_mid = (struct iovec){e->mid, sizeof(e->mid)};
	req = tstream_writev_send(e, tt_ev, e->srv, &e->iov_mid, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, echo_mid_written, e);
}

static void echo_out_written(struct tevent_req *req)
{
	struct echo *e = tevent_req_callback_data_void(req);
	int err = 0;

	if (tstream_writev_recv(req, &err) == -1) {
		echo_fail(e, err);
	}
	talloc_free(req);
}

static void echo_next(struct echo *e)
{
	struct tevent_req *req;

	memset(e->out, (int)(e->done_rt & 0xff), sizeof(e->out));
	e->iov_out = (struct iovec){e->out, sizeof(e->out)};
	e->iov_mid = (struct iovec){e->mid, sizeof(e->mid)};
	e->iov_back = (struct iovec){e->back, sizeof(e->back)};
	req = tstream_writev_send(e, tt_ev, e->cli, &e->iov_out, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, echo_out_written, e);
	req = tstream_readv_send(e, tt_ev, e->srv, &e->iov_mid, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, echo_mid_read, e);
	req = tstream_readv_send(e, tt_ev, e->cli, &e->iov_back, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, echo_back_read, e);
}

/*
 * While one handshake waits SLOW_MS on the KDC, an established tunnel of
 * the same loop does 20 round trips: all of them come back before the
 * slow handshake is done (an ordering, not a timing, assertion). With
 * the calls on the loop the slow call blocks it, so the round trips can
 * start only after it and lose against the few steps left to it.
 */
static void slow_kdc_keeps_loop(bool slow_acceptor_too)
{
	struct tstream_gssapi_pool *pool = make_pool(2, 16);
	struct tstream_gssapi_params *ap = acceptor_params(pool);
	struct hs fast_cli, fast_srv, slow_cli, slow_srv;
	struct echo *e = talloc_zero(tt_mem, struct echo);
	unsigned held;

	ck_assert_ptr_nonnull(relay);
	tt_kdc_relay_set_delay(relay, 0);
	pair_start(initiator_params(pool, fresh_ccache()), ap, &fast_cli,
		   &fast_srv);
	pair_ok(&fast_cli, &fast_srv);

	tt_kdc_relay_set_delay(relay, SLOW_MS);
	held = tt_kdc_relay_held(relay);
	pair_start(initiator_params(pool, fresh_ccache()),
		   slow_acceptor_too ? ap : acceptor_params(NULL), &slow_cli,
		   &slow_srv);
	e->cli = fast_cli.stream;
	e->srv = fast_srv.stream;
	e->want = 20;
	e->other_done = &slow_cli.done;
	echo_next(e);
	tt_wait(&e->finished, 4 * SLOW_MS);
	ck_assert_int_eq(e->err, 0);
	ck_assert_uint_eq(e->done_rt, e->want);
	ck_assert_msg(e->other_pending_at_end,
		      "the slow handshake finished before the established "
		      "tunnel's round trips: the loop waited on the KDC");
	/* the slow one really asked the slow KDC, and still succeeds */
	pair_ok(&slow_cli, &slow_srv);
	ck_assert_uint_gt(tt_kdc_relay_held(relay), held);
	tt_kdc_relay_set_delay(relay, 0);
	TALLOC_FREE(e);
	TALLOC_FREE(fast_cli.stream);
	TALLOC_FREE(fast_srv.stream);
	TALLOC_FREE(slow_cli.stream);
	TALLOC_FREE(slow_srv.stream);
	TALLOC_FREE(pool);
}

START_TEST(test_slow_kdc_established_tunnel_keeps_answering)
{
	slow_kdc_keeps_loop(false);
}
END_TEST

START_TEST(test_slow_kdc_pool_on_both_ends)
{
	slow_kdc_keeps_loop(true);
}
END_TEST

/*
 * Six handshakes that each wait on the slow KDC, two threads: never
 * more than two calls run at once, and all six complete.
 */
START_TEST(test_pool_bounds_concurrent_slow_setups)
{
	enum { N = 6 };
	struct tstream_gssapi_pool *pool = make_pool(2, 16);
	struct tstream_gssapi_params *ap = acceptor_params(NULL);
	struct hs *cli = talloc_zero_array(tt_mem, struct hs, N);
	struct hs *srv = talloc_zero_array(tt_mem, struct hs, N);
	struct tstream_gssapi_pool_stats st;
	char *cc[N];
	int i;

	ck_assert_ptr_nonnull(relay);
	for (i = 0; i < N; i++) {
		cc[i] = fresh_ccache();
	}
	tt_kdc_relay_set_delay(relay, SLOW_MS / 4);
	for (i = 0; i < N; i++) {
		pair_start(initiator_params(pool, cc[i]), ap, &cli[i], &srv[i]);
	}
	st = stats_of(pool);
	ck_assert_uint_le(st.threads, 2);
	for (i = 0; i < N; i++) {
		pair_ok(&cli[i], &srv[i]);
		st = stats_of(pool);
		ck_assert_uint_le(st.running, 2);
	}
	tt_kdc_relay_set_delay(relay, 0);
	st = stats_of(pool);
	ck_assert_uint_eq(st.threads, 2);
	ck_assert_uint_eq(st.max_running, 2);
	ck_assert_uint_ge(st.max_queued, 1);
	ck_assert_uint_eq(st.refused, 0);
	ck_assert_uint_eq(st.dropped, 0);
	ck_assert_uint_ge(st.completed, 2 * N);
	for (i = 0; i < N; i++) {
		TALLOC_FREE(cli[i].stream);
		TALLOC_FREE(srv[i].stream);
	}
	TALLOC_FREE(pool);
}
END_TEST

/*
 * One thread, one waiting place: of three handshakes started at once at
 * least one is refused at once with EAGAIN; the others complete.
 */
START_TEST(test_pool_queue_full_refuses)
{
	enum { N = 3 };
	struct tstream_gssapi_pool *pool = make_pool(1, 1);
	struct tstream_gssapi_params *ap = acceptor_params(NULL);
	struct hs cli[N], srv[N];
	struct tstream_gssapi_pool_stats st;
	unsigned ok = 0, refused = 0;
	int fds[2];
	char *cc[N];
	int i;

	ck_assert_ptr_nonnull(relay);
	for (i = 0; i < N; i++) {
		cc[i] = fresh_ccache();
	}
	tt_kdc_relay_set_delay(relay, SLOW_MS / 4);
	for (i = 0; i < N; i++) {
		tt_tcp_fds(fds);
		hs_start(&srv[i], true, bsd_stream(fds[1]), ap);
		hs_start(&cli[i], false, bsd_stream(fds[0]),
			 initiator_params(pool, cc[i]));
	}
	for (i = 0; i < N; i++) {
		tt_wait(&cli[i].done, 20000);
		if (cli[i].ret == 0) {
			tt_wait(&srv[i].done, 20000);
			ck_assert_msg(srv[i].ret == 0, "accept: %s",
				      srv[i].reason);
			ok++;
			continue;
		}
		ck_assert_int_eq(cli[i].err, EAGAIN);
		ck_assert_ptr_nonnull(strstr(cli[i].reason, "queue full"));
		refused++;
		/* its acceptor sees the connection go */
		tt_wait(&srv[i].done, 20000);
		ck_assert_int_eq(srv[i].ret, -1);
	}
	tt_kdc_relay_set_delay(relay, 0);
	ck_assert_uint_ge(refused, 1);
	ck_assert_uint_ge(ok, 1);
	st = stats_of(pool);
	ck_assert_uint_eq(st.refused, refused);
	ck_assert_uint_eq(st.max_running, 1);
	for (i = 0; i < N; i++) {
		TALLOC_FREE(cli[i].stream);
		TALLOC_FREE(srv[i].stream);
	}
	TALLOC_FREE(pool);
}
END_TEST

/*
 * The connection dies while its call waits on the KDC in a thread: the
 * request is freed at once, the call finishes in its thread, the loop
 * drops its result. Everything is freed (leak check, ASan, valgrind).
 */
START_TEST(test_cancel_while_in_thread)
{
	struct tstream_gssapi_pool *pool = make_pool(1, 4);
	struct tstream_gssapi_params *ap = acceptor_params(NULL);
	struct hs cli, srv;
	unsigned held;

	ck_assert_ptr_nonnull(relay);
	tt_kdc_relay_set_delay(relay, SLOW_MS / 2);
	held = tt_kdc_relay_held(relay);
	pair_start(initiator_params(pool, fresh_ccache()), ap, &cli, &srv);
	/* the call is in its thread and the KDC holds its reply */
	wait_polling(stats_of(pool).running == 1 &&
			 tt_kdc_relay_held(relay) > held,
		     10000);
	TALLOC_FREE(cli.req);
	TALLOC_FREE(cli.plain);
	tt_wait(&srv.done, 10000);
	ck_assert_int_eq(srv.ret, -1);
	wait_polling(stats_of(pool).dropped == 1, 10000);
	ck_assert_uint_eq(stats_of(pool).completed, 0);
	ck_assert_uint_eq(stats_of(pool).running, 0);
	tt_kdc_relay_set_delay(relay, 0);
	TALLOC_FREE(pool);
}
END_TEST

/* The same, but the pool goes too: freeing it waits for the thread. */
START_TEST(test_free_pool_while_in_thread)
{
	struct tstream_gssapi_pool *pool = make_pool(1, 4);
	struct tstream_gssapi_params *ap = acceptor_params(NULL);
	struct hs cli, srv;
	unsigned held;

	ck_assert_ptr_nonnull(relay);
	tt_kdc_relay_set_delay(relay, SLOW_MS / 2);
	held = tt_kdc_relay_held(relay);
	pair_start(initiator_params(pool, fresh_ccache()), ap, &cli, &srv);
	wait_polling(stats_of(pool).running == 1 &&
			 tt_kdc_relay_held(relay) > held,
		     10000);
	TALLOC_FREE(cli.req);
	TALLOC_FREE(cli.plain);
	TALLOC_FREE(pool);
	tt_wait(&srv.done, 10000);
	tt_kdc_relay_set_delay(relay, 0);
}
END_TEST

/*
 * The handshake timeout fires while the call is in its thread: the
 * request fails at once with ETIMEDOUT, the result is dropped later.
 */
START_TEST(test_timeout_while_in_thread)
{
	struct tstream_gssapi_pool *pool = make_pool(1, 4);
	struct tstream_gssapi_params *ap = acceptor_params(NULL);
	struct tstream_gssapi_params *ip;
	struct hs cli, srv;

	ck_assert_ptr_nonnull(relay);
	ip = initiator_params(pool, fresh_ccache());
	tstream_gssapi_params_set_handshake_timeout(ip, 200);
	tt_kdc_relay_set_delay(relay, SLOW_MS);
	pair_start(ip, ap, &cli, &srv);
	tt_wait(&cli.done, 10000);
	ck_assert_int_eq(cli.ret, -1);
	ck_assert_int_eq(cli.err, ETIMEDOUT);
	ck_assert_str_eq(cli.reason, "handshake timed out");
	/* the call was still in its thread when the request gave it up */
	ck_assert_uint_eq(stats_of(pool).completed, 0);
	tt_wait(&srv.done, 10000);
	wait_polling(stats_of(pool).dropped == 1, 10000);
	tt_kdc_relay_set_delay(relay, 0);
	TALLOC_FREE(pool);
}
END_TEST

/*
 * Many handshakes at once, both ends in the pool, four threads: GSSAPI
 * calls of different contexts run concurrently (each makes its own
 * krb5_context) and every context works afterwards.
 */
START_TEST(test_concurrent_contexts_in_threads)
{
	enum { N = 12 };
	struct tstream_gssapi_pool *pool = make_pool(4, 64);
	struct tstream_gssapi_params *ap = acceptor_params(pool);
	struct tstream_gssapi_params *ip;
	struct hs *cli = talloc_zero_array(tt_mem, struct hs, N);
	struct hs *srv = talloc_zero_array(tt_mem, struct hs, N);
	struct echo *e;
	bool never = false;
	int i;

	ck_assert_ptr_nonnull(relay);
	tt_kdc_relay_set_delay(relay, 0);
	/* one ccache for all: its service ticket is fetched concurrently */
	ip = initiator_params(pool, fresh_ccache());
	for (i = 0; i < N; i++) {
		pair_start(ip, ap, &cli[i], &srv[i]);
	}
	for (i = 0; i < N; i++) {
		pair_ok(&cli[i], &srv[i]);
		e = talloc_zero(tt_mem, struct echo);
		e->cli = cli[i].stream;
		e->srv = srv[i].stream;
		e->want = 3;
		e->other_done = &never;
		echo_next(e);
		tt_wait(&e->finished, 10000);
		ck_assert_int_eq(e->err, 0);
		talloc_free(e);
		TALLOC_FREE(cli[i].stream);
		TALLOC_FREE(srv[i].stream);
	}
	ck_assert_uint_le(stats_of(pool).max_running, 4);
	ck_assert_uint_ge(stats_of(pool).completed, 3 * N);
	TALLOC_FREE(pool);
}
END_TEST

START_TEST(test_pool_create_errors)
{
	struct tstream_gssapi_pool *pool = NULL;

	ck_assert_int_eq(tstream_gssapi_pool_create(tt_mem, NULL, 1, 1, &pool),
			 EINVAL);
	ck_assert_int_eq(tstream_gssapi_pool_create(tt_mem, tt_ev, 0, 1, &pool),
			 EINVAL);
	ck_assert_int_eq(tstream_gssapi_pool_create(tt_mem, tt_ev, 1, 0, &pool),
			 EINVAL);
	ck_assert_int_eq(
	    tstream_gssapi_pool_create(
		tt_mem, tt_ev, TSTREAM_GSSAPI_POOL_MAX_THREADS + 1, 1, &pool),
	    EINVAL);
	ck_assert_ptr_null(pool);
	/* a pool that never ran anything frees cleanly */
	ck_assert_int_eq(tstream_gssapi_pool_create(tt_mem, tt_ev, 3, 3, &pool),
			 0);
	ck_assert_uint_eq(stats_of(pool).threads, 0);
	TALLOC_FREE(pool);
}
END_TEST

/* A handshake on another event context than the pool's runs inline. */
START_TEST(test_other_event_context_runs_inline)
{
	struct tevent_context *ev2 = tevent_context_init(tt_mem);
	struct tstream_gssapi_pool *pool = NULL;
	struct tstream_gssapi_params *ap = acceptor_params(NULL);
	struct hs cli, srv;

	ck_assert_ptr_nonnull(relay);
	ck_assert_ptr_nonnull(ev2);
	ck_assert_int_eq(tstream_gssapi_pool_create(tt_mem, ev2, 1, 1, &pool),
			 0);
	tt_kdc_relay_set_delay(relay, 0);
	pair_start(initiator_params(pool, fresh_ccache()), ap, &cli, &srv);
	pair_ok(&cli, &srv);
	ck_assert_uint_eq(stats_of(pool).threads, 0);
	TALLOC_FREE(cli.stream);
	TALLOC_FREE(srv.stream);
	TALLOC_FREE(pool);
	TALLOC_FREE(ev2);
}
END_TEST

static Suite *pool_suite(void)
{
	Suite *s = suite_create("tstream_gssapi_pool");
	TCase *tc = tcase_create("pool");

	tcase_add_unchecked_fixture(tc, kdc_setup, kdc_teardown);
	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_slow_kdc_established_tunnel_keeps_answering);
	tcase_add_test(tc, test_slow_kdc_pool_on_both_ends);
	tcase_add_test(tc, test_pool_bounds_concurrent_slow_setups);
	tcase_add_test(tc, test_pool_queue_full_refuses);
	tcase_add_test(tc, test_cancel_while_in_thread);
	tcase_add_test(tc, test_free_pool_while_in_thread);
	tcase_add_test(tc, test_timeout_while_in_thread);
	tcase_add_test(tc, test_pool_create_errors);
	tcase_add_test(tc, test_other_event_context_runs_inline);
	suite_add_tcase(s, tc);

	/*
	 * Under valgrind (3.19) a thread blocked in fcntl(F_OFD_SETLKW),
	 * which MIT uses to lock a FILE ccache, keeps valgrind's own lock,
	 * so the thread holding the ccache lock never runs again: this one
	 * case shares a ccache between threads and would hang there.
	 */
	if (getenv("TSGATE_VALGRIND") == NULL) {
		tc = tcase_create("concurrent");
		tcase_add_unchecked_fixture(tc, kdc_setup, kdc_teardown);
		tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
		tcase_set_timeout(tc, 60);
		tcase_add_test(tc, test_concurrent_contexts_in_threads);
		suite_add_tcase(s, tc);
	}
	return s;
}

const char *__asan_default_options(void);

const char *__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0";
}

int main(void)
{
	if (!tt_kdc_available()) {
		/* scripts/deps test installs krb5-kdc: a missing KDC is a
		 * broken set-up, not a reason to skip */
		fprintf(stderr, "krb5kdc/kadmin.local/kinit not installed\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	return tt_run_suite(pool_suite());
}
