/* SPDX-License-Identifier: MIT */
/*
 * bench_kdc_stall: what a slow KDC does to the other connections of an
 * event loop, with tstream_gssapi's worker pool and without it (the
 * calls on the loop, as before the pool). A real MIT KDC (tt_kdc) behind
 * the delaying relay of the tests (tt_kdc_relay); scripts/bench runs it
 * unless BENCH_KDC_STALL=0.
 *
 *   stall:  an established tunnel does 16-byte echo round trips, one
 *           after the other, while another handshake of the same loop
 *           waits BENCH_KDC_DELAY_MS (default 2000) for its service
 *           ticket; prints the worst round trip and how many completed.
 *   setups: BENCH_KDC_SETUPS (default 300) context establishments (both
 *           ends in this loop, service ticket cached: no KDC), one after
 *           the other and BENCH_KDC_PARALLEL (default 8) at a time;
 *           prints set-ups per second.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tsocket.h"
#include "tstream_gssapi.h"
#include "tt_kdc.h"
#include "tt_kdc_relay.h"

static struct tevent_context *ev;
static TALLOC_CTX *mem;
static struct tt_kdc *kdc;
static unsigned ccache_seq;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static unsigned env_uint(const char *name, unsigned dflt)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench_kdc_stall: %s: %s\n", what, why ? why : "?");
	exit(1);
}

static void loop_until(const bool *flag)
{
	while (!*flag) {
		if (tevent_loop_once(ev) != 0) {
			die("tevent_loop_once", strerror(errno));
		}
	}
}

static char *fresh_ccache(void)
{
	char *cc = talloc_asprintf(mem, "FILE:%s/bench-%u.ccache", kdc->dir,
				   ++ccache_seq);

	if (tt_kdc_kinit(kdc, "alice", kdc->alice_keytab, cc, NULL) != 0) {
		die("kinit", cc);
	}
	return cc;
}

static struct tstream_context *bsd_stream(int fd)
{
	struct tstream_context *s = NULL;

	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (tstream_bsd_existing_socket(mem, fd, &s) != 0) {
		die("tstream_bsd_existing_socket", strerror(errno));
	}
	return s;
}

struct hs {
	bool done;
	int ret, err;
	char *reason;
	struct tstream_context *stream;
	bool acceptor;
	unsigned *count; /* finished handshakes, when counting */
};

static void hs_done(struct tevent_req *req)
{
	struct hs *h = tevent_req_callback_data_void(req);

	h->ret = h->acceptor
		     ? tstream_gssapi_accept_recv(req, &h->err, mem, &h->stream,
						  &h->reason)
		     : tstream_gssapi_connect_recv(req, &h->err, mem,
						   &h->stream, &h->reason);
	talloc_free(req);
	if (h->ret != 0) {
		die(h->acceptor ? "accept" : "connect", h->reason);
	}
	h->done = true;
	if (h->count != NULL) {
		(*h->count)++;
	}
}

static void pair_start(struct tstream_gssapi_params *ip,
		       struct tstream_gssapi_params *ap,
		       struct hs *cli,
		       struct hs *srv)
{
	struct tevent_req *req;
	int fds[2];

	/* tt_tcp_fds reports to Check, which is not running here */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
		die("socketpair", strerror(errno));
	}
	srv->acceptor = true;
	req = tstream_gssapi_accept_send(mem, ev, bsd_stream(fds[1]), ap);
	tevent_req_set_callback(req, hs_done, srv);
	req = tstream_gssapi_connect_send(mem, ev, bsd_stream(fds[0]), ip);
	tevent_req_set_callback(req, hs_done, cli);
}

static struct tstream_gssapi_params *params(bool acceptor,
					    const char *ccache,
					    struct tstream_gssapi_pool *pool)
{
	struct tstream_gssapi_params *p = NULL;
	char *reason = NULL;
	int ret =
	    acceptor
		? tstream_gssapi_params_acceptor(mem, kdc->service_keytab, NULL,
						 &p, &reason)
		: tstream_gssapi_params_initiator(mem, "host@localhost", ccache,
						  NULL, NULL, &p, &reason);

	if (ret != 0) {
		die("params", reason);
	}
	tstream_gssapi_params_set_pool(p, pool);
	return p;
}

/* Echo ping-pong on an established pair until *stop, timing each. */
struct pingpong {
	struct tstream_context *cli, *srv;
	uint8_t a[16], b[16], c[16];
	struct iovec ia, ib, ic;
	double started, worst_ms;
	unsigned count;
	const bool *stop;
	bool finished;
};

static void pp_next(struct pingpong *p);

static void pp_ignore(struct tevent_req *req)
{
	int err;

	if (tstream_writev_recv(req, &err) == -1) {
		die("writev", strerror(err));
	}
	talloc_free(req);
}

static void pp_back(struct tevent_req *req)
{
	struct pingpong *p = tevent_req_callback_data_void(req);
	double ms;
	int err;

	if (tstream_readv_recv(req, &err) == -1) {
		die("readv", strerror(err));
	}
	talloc_free(req);
	ms = now_ms() - p->started;
	if (ms > p->worst_ms) {
		p->worst_ms = ms;
	}
	p->count++;
	if (*p->stop) {
		p->finished = true;
		return;
	}
	pp_next(p);
}

static void pp_mid(struct tevent_req *req)
{
	struct pingpong *p = tevent_req_callback_data_void(req);
	int err;

	if (tstream_readv_recv(req, &err) == -1) {
		die("readv", strerror(err));
	}
	talloc_free(req);
	p->ib = (struct iovec){p->b, sizeof(p->b)};
	req = tstream_writev_send(p, ev, p->srv, &p->ib, 1);
	tevent_req_set_callback(req, pp_ignore, p);
}

static void pp_next(struct pingpong *p)
{
	struct tevent_req *req;

	p->started = now_ms();
	p->ia = (struct iovec){p->a, sizeof(p->a)};
	p->ib = (struct iovec){p->b, sizeof(p->b)};
	p->ic = (struct iovec){p->c, sizeof(p->c)};
	req = tstream_writev_send(p, ev, p->cli, &p->ia, 1);
	tevent_req_set_callback(req, pp_ignore, p);
	req = tstream_readv_send(p, ev, p->srv, &p->ib, 1);
	tevent_req_set_callback(req, pp_mid, p);
	req = tstream_readv_send(p, ev, p->cli, &p->ic, 1);
	tevent_req_set_callback(req, pp_back, p);
}

struct slow_start {
	struct pingpong *p;
	struct tstream_gssapi_params *ip, *ap;
	struct hs *cli, *srv;
	double t0;
	bool started;
};

static void slow_start(struct tevent_context *ev_,
		       struct tevent_timer *te,
		       struct timeval now,
		       void *private_data)
{
	struct slow_start *s = private_data;

	s->t0 = now_ms();
	s->started = true;
	/* the round trip in flight counts: it waits through the stall */
	s->p->count = 0;
	s->p->worst_ms = 0;
	pair_start(s->ip, s->ap, s->cli, s->srv);
}

static void bench_stall(struct tt_kdc_relay *relay,
			struct tstream_gssapi_pool *pool,
			const char *label,
			unsigned delay_ms)
{
	struct tstream_gssapi_params *ap = params(true, NULL, pool);
	struct hs fc = {0}, fs = {0}, sc = {0}, ss = {0};
	struct pingpong *p = talloc_zero(mem, struct pingpong);
	struct slow_start slow = {0};
	double t0;

	tt_kdc_relay_set_delay(relay, 0);
	pair_start(params(false, fresh_ccache(), pool), ap, &fc, &fs);
	loop_until(&fc.done);
	loop_until(&fs.done);

	tt_kdc_relay_set_delay(relay, delay_ms);
	p->cli = fc.stream;
	p->srv = fs.stream;
	p->stop = &sc.done;
	/* the slow set-up starts while round trips are under way */
	slow.p = p;
	slow.ip = params(false, fresh_ccache(), pool);
	slow.ap = ap;
	slow.cli = &sc;
	slow.srv = &ss;
	pp_next(p);
	tevent_add_timer(ev, p, tevent_timeval_current_ofs(0, 100 * 1000),
			 slow_start, &slow);
	loop_until(&slow.started);
	t0 = slow.t0;
	loop_until(&sc.done);
	loop_until(&p->finished);
	printf("stall %-7s KDC delay %u ms: slow set-up %.0f ms; established "
	       "tunnel: %u round trips meanwhile, worst %.1f ms\n",
	       label, delay_ms, now_ms() - t0, p->count, p->worst_ms);
	talloc_free(slow.ip);
	loop_until(&ss.done);
	tt_kdc_relay_set_delay(relay, 0);
	talloc_free(p);
	talloc_free(fc.stream);
	talloc_free(fs.stream);
	talloc_free(sc.stream);
	talloc_free(ss.stream);
}

static void bench_setups(struct tstream_gssapi_pool *pool,
			 const char *label,
			 unsigned n,
			 unsigned parallel)
{
	TALLOC_CTX *round = talloc_new(mem);
	struct tstream_gssapi_params *ap = params(true, NULL, pool);
	struct tstream_gssapi_params *ip = params(false, fresh_ccache(), pool);
	struct hs *cli = talloc_zero_array(round, struct hs, n);
	struct hs *srv = talloc_zero_array(round, struct hs, n);
	unsigned started = 0, finished = 0;
	double t0;

	/* the service ticket into the ccache first */
	pair_start(ip, ap, &cli[0], &srv[0]);
	loop_until(&cli[0].done);
	loop_until(&srv[0].done);
	memset(cli, 0, sizeof(*cli) * n);
	memset(srv, 0, sizeof(*srv) * n);

	t0 = now_ms();
	while (finished < n) {
		while (started < n && started - finished < parallel) {
			cli[started].count = &finished;
			pair_start(ip, ap, &cli[started], &srv[started]);
			started++;
		}
		if (tevent_loop_once(ev) != 0) {
			die("tevent_loop_once", strerror(errno));
		}
	}
	for (unsigned i = 0; i < n; i++) {
		loop_until(&srv[i].done);
		talloc_free(cli[i].stream);
		talloc_free(srv[i].stream);
	}
	printf("setups %-7s %u at a time: %u in %.0f ms = %.0f/s\n", label,
	       parallel, n, now_ms() - t0, n * 1000.0 / (now_ms() - t0));
	talloc_free(round);
	talloc_free(ap);
	talloc_free(ip);
}

int main(void)
{
	unsigned delay = env_uint("BENCH_KDC_DELAY_MS", 2000);
	unsigned n = env_uint("BENCH_KDC_SETUPS", 300);
	unsigned parallel = env_uint("BENCH_KDC_PARALLEL", 8);
	unsigned threads = env_uint("BENCH_KDC_THREADS", 4);
	struct tstream_gssapi_pool *pool = NULL;
	struct tt_kdc_relay *relay;

	signal(SIGPIPE, SIG_IGN);
	mem = talloc_new(NULL);
	ev = tevent_context_init(mem);
	kdc = tt_kdc_start(mem);
	if (kdc == NULL) {
		die("KDC", "cannot start (krb5-kdc installed?)");
	}
	tt_kdc_setenv(kdc);
	relay = tt_kdc_relay_start(mem, kdc, 0);
	if (relay == NULL) {
		die("relay", "cannot start");
	}
	tt_kdc_relay_setenv(relay);
	if (tstream_gssapi_pool_create(mem, ev, threads, 1024, &pool) != 0) {
		die("pool", "cannot create");
	}
	bench_stall(relay, NULL, "inline", delay);
	bench_stall(relay, pool, "pool", delay);
	/* twice each, alternating, so neither has the warmer machine */
	for (int i = 0; i < 2; i++) {
		bench_setups(NULL, "inline", n, 1);
		bench_setups(pool, "pool", n, 1);
		bench_setups(NULL, "inline", n, parallel);
		bench_setups(pool, "pool", n, parallel);
	}
	talloc_free(mem);
	return 0;
}
