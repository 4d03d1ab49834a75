/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of gateway/datapath/backend.c against listeners in the same
 * event loop: plain TCP and unix backends, refused and missing ones, the
 * connect timeout (a full accept queue, a TLS server that never answers),
 * fall-through over several addresses, TLS to a tstream_tls server in
 * the same loop, and the set-up errors of TLS and GSSAPI parameters.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tsocket.h>

#include "backend.h"
#include "backend_pool.h"
#include "tstream_tls.h"
#include "tt.h"
#include "tt_certs.h"
#include "tt_pair.h"

static struct tt_certs *certs;

/* A route to 127.0.0.1:port, plain. */
static struct tsgate_config_route *tcp_route(uint16_t port)
{
	struct tsgate_config_route *r =
	    talloc_zero(tt_mem, struct tsgate_config_route);

	ck_assert_ptr_nonnull(r);
	r->name = "r";
	r->backend.kind = TSGATE_CONFIG_ADDR_TCP;
	r->backend.text = "tcp://127.0.0.1";
	r->backend.host = "127.0.0.1";
	r->backend.ip = "127.0.0.1";
	r->backend.port = port;
	r->connect = TSGATE_CONFIG_CONNECT_PLAIN;
	return r;
}

static struct tsgate_config_route *unix_route(const char *path)
{
	struct tsgate_config_route *r =
	    talloc_zero(tt_mem, struct tsgate_config_route);

	ck_assert_ptr_nonnull(r);
	r->name = "r";
	r->backend.kind = TSGATE_CONFIG_ADDR_UNIX;
	r->backend.text = path;
	r->backend.path = path;
	r->connect = TSGATE_CONFIG_CONNECT_PLAIN;
	return r;
}

/* The test's pool, on tt_mem before any backend (which go first). */
static struct tsgate_pool *the_pool;

static void pool_reset(void)
{
	the_pool = NULL;
}

static struct tsgate_pool *test_pool(void)
{
	if (the_pool == NULL) {
		the_pool = tsgate_pool_new(tt_mem, tt_ev, NULL);
		ck_assert_ptr_nonnull(the_pool);
	}
	return the_pool;
}

static struct tsgate_backend *backend_ok(
    const struct tsgate_config_route *route, uint64_t timeout_ms)
{
	struct tsgate_backend *b = NULL;
	char *reason = NULL;
	int ret;

	ret = tsgate_backend_new(tt_mem, test_pool(), "l", route, timeout_ms,
				 &b, &reason);
	ck_assert_msg(ret == 0, "backend: %s", reason ? reason : "?");
	ck_assert_ptr_nonnull(b);
	return b;
}

struct conn {
	bool done;
	int ret, err;
	const char *text, *addr; /* tsgate_backend_connect_target() */
	struct tstream_context *stream;
	char *reason;
	uint64_t elapsed_ms;
};

/* Connect b and wait for the outcome (within wait_ms). */
static void connect_wait(struct tsgate_backend *b,
			 struct conn *c,
			 unsigned wait_ms)
{
	struct tevent_req *req;
	uint64_t start = tt_now_ms();

	memset(c, 0, sizeof(*c));
	req = tsgate_backend_connect_send(tt_mem, tt_ev, b);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tt_set_done, &c->done);
	tt_wait(&c->done, wait_ms);
	c->elapsed_ms = tt_now_ms() - start;
	tsgate_backend_connect_target(req, &c->text, &c->addr);
	c->ret = tsgate_backend_connect_recv(req, &c->err, tt_mem, &c->stream,
					     &c->reason);
	talloc_free(req);
}

/* Write a few bytes on s and read them on the raw fd. */
static void check_bytes(struct tstream_context *s, int fd)
{
	struct iovec iov = {.iov_base = (void *)"ping", .iov_len = 4};
	struct tevent_req *req;
	bool done = false;
	char buf[4];
	int err = 0;
	size_t got = 0;
	ssize_t n;

	req = tstream_writev_send(tt_mem, tt_ev, s, &iov, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tt_set_done, &done);
	tt_wait(&done, TT_DEADLINE_MS);
	ck_assert_int_eq(tstream_writev_recv(req, &err), 4);
	talloc_free(req);
	while (got < 4) {
		n = recv(fd, buf + got, 4 - got, MSG_DONTWAIT);
		if (n > 0) {
			got += (size_t)n;
		} else {
			ck_assert(n < 0 && errno == EAGAIN);
			tt_run_for(tt_ev, 5);
		}
	}
	ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
}

START_TEST(test_tcp_plain)
{
	uint16_t port;
	int lfd = tt_listen_tcp(&port, 4);
	struct tsgate_backend *b = backend_ok(tcp_route(port), 2000);
	struct conn c;
	int fd;

	connect_wait(b, &c, 5000);
	ck_assert_msg(c.ret == 0, "connect: %s", strerror(c.err));
	ck_assert_ptr_nonnull(c.stream);
	ck_assert_ptr_null(c.reason);
	fd = tt_accept(lfd, 2000);
	ck_assert_int_ge(fd, 0);
	check_bytes(c.stream, fd);
	close(fd);
	close(lfd);
}
END_TEST

START_TEST(test_unix_plain)
{
	char *dir = tt_mkdtemp(tt_mem);
	char *path = talloc_asprintf(tt_mem, "%s/b.sock", dir);
	int lfd = tt_listen_unix(path, 4);
	struct tsgate_config_route *r = unix_route(path);
	struct tsgate_backend *b = backend_ok(r, 0);
	struct conn c;
	int fd;

	connect_wait(b, &c, 5000);
	ck_assert_msg(c.ret == 0, "connect: %s", strerror(c.err));
	ck_assert_str_eq(c.addr, talloc_asprintf(tt_mem, "unix:%s", path));
	ck_assert_str_eq(c.text, path);
	fd = tt_accept(lfd, 2000);
	ck_assert_int_ge(fd, 0);
	check_bytes(c.stream, fd);
	close(fd);
	close(lfd);
	tt_rmtree(dir);
}
END_TEST

START_TEST(test_refused)
{
	uint16_t port;
	int lfd = tt_listen_tcp(&port, 1);
	struct tsgate_backend *b;
	struct conn c;
	char *dir, *path;

	/* the port was ours a moment ago: nobody listens on it now */
	close(lfd);
	b = backend_ok(tcp_route(port), 2000);
	connect_wait(b, &c, 5000);
	ck_assert_int_eq(c.ret, -1);
	ck_assert_int_eq(c.err, ECONNREFUSED);
	ck_assert_ptr_null(c.stream);

	/* a unix path where nothing is */
	dir = tt_mkdtemp(tt_mem);
	path = talloc_asprintf(tt_mem, "%s/none.sock", dir);
	b = backend_ok(unix_route(path), 2000);
	connect_wait(b, &c, 5000);
	ck_assert_int_eq(c.ret, -1);
	ck_assert_int_eq(c.err, ENOENT);
	tt_rmtree(dir);
}
END_TEST

/* Several resolved addresses: the refused first one is skipped. */
START_TEST(test_next_address)
{
	uint16_t port;
	int lfd = tt_listen_tcp(&port, 4);
	struct tsgate_config_route *r = tcp_route(port);
	/* nobody listens on 127.0.0.3 at this kernel-picked port */
	static const char *ips[] = {"127.0.0.3", "127.0.0.1"};
	struct tsgate_backend *b;
	struct conn c;
	int fd;

	r->backend.ip = ips[0];
	r->backend.ips = ips;
	r->backend.num_ips = 2;
	b = backend_ok(r, 2000);
	connect_wait(b, &c, 5000);
	ck_assert_msg(c.ret == 0, "connect: %s", strerror(c.err));
	/* the log names the address that answered, not the first */
	ck_assert_str_eq(
	    c.addr, talloc_asprintf(tt_mem, "127.0.0.1:%u", (unsigned)port));
	fd = tt_accept(lfd, 2000);
	ck_assert_int_ge(fd, 0);
	check_bytes(c.stream, fd);
	close(fd);

	/* an IPv6 address first (nobody on ::1 at this port), then IPv4;
	 * a backend made again takes the route's addresses anew */
	ips[0] = "::1";
	b = backend_ok(r, 2000);
	connect_wait(b, &c, 5000);
	ck_assert_msg(c.ret == 0, "connect: %s", strerror(c.err));
	fd = tt_accept(lfd, 2000);
	ck_assert_int_ge(fd, 0);
	close(fd);
	talloc_free(c.stream);
	ips[0] = "127.0.0.3";

	/* every address refused: the last error */
	ips[1] = "127.0.0.4";
	b = backend_ok(r, 2000);
	connect_wait(b, &c, 5000);
	ck_assert_int_eq(c.ret, -1);
	ck_assert_int_eq(c.err, ECONNREFUSED);
	ips[1] = "127.0.0.1";
	close(lfd);
}
END_TEST

/*
 * A listener whose accept queue is full drops the SYN: the connect hangs
 * until the backend's timeout.
 */
START_TEST(test_connect_timeout)
{
	uint16_t port;
	int lfd = tt_listen_tcp(&port, 0);
	struct tsgate_backend *b;
	struct conn c;
	int filler[4];
	unsigned i;

	/* backlog 0 still queues one connection; fill it (and then some) */
	for (i = 0; i < 4; i++) {
		struct sockaddr_in sin = {.sin_family = AF_INET,
					  .sin_port = htons(port)};

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		filler[i] = socket(
		    AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(filler[i], 0);
		connect(filler[i], (struct sockaddr *)&sin, sizeof(sin));
	}
	b = backend_ok(tcp_route(port), 300);
	connect_wait(b, &c, 5000);
	ck_assert_int_eq(c.ret, -1);
	ck_assert_int_eq(c.err, ETIMEDOUT);
	ck_assert_uint_ge(c.elapsed_ms, 250);
	for (i = 0; i < 4; i++) {
		close(filler[i]);
	}
	close(lfd);
}
END_TEST

/* TLS route to certs->ca-signed localhost. */
static struct tsgate_config_route *tls_route(uint16_t port, const char *ca)
{
	struct tsgate_config_route *r = tcp_route(port);
	struct tsgate_config_tls_client *t =
	    talloc_zero(r, struct tsgate_config_tls_client);

	ck_assert_ptr_nonnull(t);
	t->ca = ca;
	t->verify = true;
	t->verify_name = "localhost";
	t->sni = "localhost";
	r->connect = TSGATE_CONFIG_CONNECT_TLS;
	r->tls = t;
	return r;
}

struct tls_server {
	struct tevent_req *req;
	bool done;
	int ret, err;
	struct tstream_context *tls;
	char *reason;
};

/* Accept one connection on lfd and run the TLS server side on it. */
static void tls_server_start(struct tls_server *s, int lfd)
{
	struct tstream_tls_cert_config cc = {.cert_file = certs->srv_ec_crt,
					     .key_file = certs->srv_ec_key};
	struct tstream_tls_server_config cfg = {.certs = &cc, .num_certs = 1};
	struct tstream_tls_params *p = NULL;
	struct tstream_context *plain = NULL;
	char *error = NULL;
	int fd;

	memset(s, 0, sizeof(*s));
	ck_assert_int_eq(tstream_tls_params_server(tt_mem, &cfg, &p, &error),
			 0);
	fd = tt_accept(lfd, 5000);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, fd, &plain), 0);
	s->req = tstream_tls_accept_send(tt_mem, tt_ev, plain, p);
	ck_assert_ptr_nonnull(s->req);
	tevent_req_set_callback(s->req, tt_set_done, &s->done);
}

static void tls_server_finish(struct tls_server *s)
{
	tt_wait(&s->done, 10000);
	s->ret = tstream_tls_accept_recv(s->req, &s->err, tt_mem, &s->tls,
					 &s->reason);
	TALLOC_FREE(s->req);
}

START_TEST(test_tls)
{
	uint16_t port;
	int lfd = tt_listen_tcp(&port, 4);
	struct tsgate_backend *b =
	    backend_ok(tls_route(port, certs->ca_crt), 10000);
	struct tevent_req *req;
	struct tls_server srv;
	bool done = false;
	struct conn c;
	struct iovec iov;
	char buf[4];
	int err = 0;

	req = tsgate_backend_connect_send(tt_mem, tt_ev, b);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tt_set_done, &done);
	tls_server_start(&srv, lfd);
	tls_server_finish(&srv);
	ck_assert_msg(srv.ret == 0, "server: %s", srv.reason);
	tt_wait(&done, 10000);
	memset(&c, 0, sizeof(c));
	c.ret = tsgate_backend_connect_recv(req, &c.err, tt_mem, &c.stream,
					    &c.reason);
	talloc_free(req);
	ck_assert_msg(c.ret == 0, "connect: %s", c.reason);
	ck_assert(tstream_is_tls(c.stream));

	/* bytes pass the tunnel */
	iov = (struct iovec){.iov_base = (void *)"ping", .iov_len = 4};
	done = false;
	req = tstream_writev_send(tt_mem, tt_ev, c.stream, &iov, 1);
	tevent_req_set_callback(req, tt_set_done, &done);
	tt_wait(&done, TT_DEADLINE_MS);
	ck_assert_int_eq(tstream_writev_recv(req, &err), 4);
	talloc_free(req);
	iov = (struct iovec){.iov_base = buf, .iov_len = 4};
	done = false;
	req = tstream_readv_send(tt_mem, tt_ev, srv.tls, &iov, 1);
	tevent_req_set_callback(req, tt_set_done, &done);
	tt_wait(&done, TT_DEADLINE_MS);
	ck_assert_int_eq(tstream_readv_recv(req, &err), 4);
	talloc_free(req);
	ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
	talloc_free(c.stream);
	talloc_free(srv.tls);
	close(lfd);
}
END_TEST

/* A server certificate from another CA: the connect fails with a reason. */
START_TEST(test_tls_untrusted)
{
	uint16_t port;
	int lfd = tt_listen_tcp(&port, 4);
	struct tsgate_backend *b =
	    backend_ok(tls_route(port, certs->ca2_crt), 10000);
	struct tevent_req *req;
	struct tls_server srv;
	bool done = false;
	struct conn c;

	req = tsgate_backend_connect_send(tt_mem, tt_ev, b);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tt_set_done, &done);
	tls_server_start(&srv, lfd);
	tt_wait(&done, 10000);
	memset(&c, 0, sizeof(c));
	c.ret = tsgate_backend_connect_recv(req, &c.err, tt_mem, &c.stream,
					    &c.reason);
	talloc_free(req);
	ck_assert_int_eq(c.ret, -1);
	ck_assert_int_ne(c.err, 0);
	ck_assert_int_ne(c.err, ETIMEDOUT);
	ck_assert_ptr_nonnull(c.reason);
	ck_assert_ptr_null(c.stream);
	tls_server_finish(&srv);
	ck_assert_int_eq(srv.ret, -1);
	talloc_free(srv.reason);
	close(lfd);
}
END_TEST

/* The timeout bounds the handshake too: a server that never speaks. */
START_TEST(test_tls_handshake_timeout)
{
	uint16_t port;
	int lfd = tt_listen_tcp(&port, 4);
	struct tsgate_backend *b =
	    backend_ok(tls_route(port, certs->ca_crt), 300);
	struct conn c;
	int fd;

	/* the kernel completes the TCP handshake; nobody answers the hello */
	connect_wait(b, &c, 5000);
	ck_assert_int_eq(c.ret, -1);
	ck_assert_int_eq(c.err, ETIMEDOUT);
	ck_assert_uint_ge(c.elapsed_ms, 250);
	fd = tt_accept(lfd, 1000);
	ck_assert_int_ge(fd, 0);
	close(fd);
	close(lfd);
}
END_TEST

static void backend_fails(const struct tsgate_config_route *r,
			  int err,
			  const char *reason_part)
{
	struct tsgate_backend *b = NULL;
	char *reason = NULL;
	int ret;

	ret =
	    tsgate_backend_new(tt_mem, test_pool(), "l", r, 1000, &b, &reason);
	ck_assert_int_eq(ret, err);
	ck_assert_ptr_null(b);
	ck_assert_ptr_nonnull(reason);
	ck_assert_msg(strstr(reason, reason_part) != NULL,
		      "reason \"%s\" lacks \"%s\"", reason, reason_part);
	talloc_free(reason);
}

START_TEST(test_tls_setup_errors)
{
	struct tsgate_config_route *r = tls_route(1, certs->ca_crt);
	struct tsgate_backend *b = NULL;
	char *reason = NULL;
	int ret;

	r->tls->ca = certs->garbage;
	ret =
	    tsgate_backend_new(tt_mem, test_pool(), "l", r, 1000, &b, &reason);
	ck_assert_int_ne(ret, 0);
	ck_assert_ptr_null(b);
	ck_assert_ptr_nonnull(reason);
	ck_assert_msg(strncmp(reason, "tls client: ", 12) == 0, "%s", reason);
	talloc_free(reason);
	reason = NULL;

	r->tls->ca = talloc_asprintf(r, "%s/missing.pem", certs->dir);
	ret =
	    tsgate_backend_new(tt_mem, test_pool(), "l", r, 1000, &b, &reason);
	ck_assert_int_ne(ret, 0);
	ck_assert_ptr_nonnull(reason);
	ck_assert_msg(strncmp(reason, "tls client: ", 12) == 0, "%s", reason);
	talloc_free(reason);

	r->tls = NULL;
	backend_fails(r, EINVAL, "no tls block");
}
END_TEST

START_TEST(test_gssapi_setup_errors)
{
	struct tsgate_config_route *r = tcp_route(1);
	struct tsgate_config_gssapi_client *g =
	    talloc_zero(r, struct tsgate_config_gssapi_client);

	r->connect = TSGATE_CONFIG_CONNECT_GSSAPI;
	backend_fails(r, EINVAL, "no gssapi block");

	r->gssapi = g;
	g->target = "";
	backend_fails(r, EINVAL, "gssapi initiator for : ");

	/* no credentials in an empty cache */
	g->target = "host@localhost";
	g->ccache = talloc_asprintf(r, "FILE:%s/no-such-ccache", certs->dir);
	{
		struct tsgate_backend *b = NULL;
		char *reason = NULL;
		int ret = tsgate_backend_new(tt_mem, test_pool(), "l", r, 1000,
					     &b, &reason);

		ck_assert_int_ne(ret, 0);
		ck_assert_ptr_null(b);
		ck_assert_ptr_nonnull(reason);
		ck_assert_msg(
		    strncmp(reason,
			    "gssapi initiator for host@localhost: ", 37) == 0,
		    "%s", reason);
		talloc_free(reason);
	}
}
END_TEST

/*
 * The pool's order and health, without sockets: members made through
 * tsgate_pool_member_get on hand-made addresses.
 */
static struct tsgate_pool_member **pool_members(size_t n)
{
	struct tsgate_pool_member **ms =
	    talloc_array(tt_mem, struct tsgate_pool_member *, n);
	struct tsgate_config_route *r = tcp_route(1);
	size_t i;

	ck_assert_ptr_nonnull(ms);
	for (i = 0; i < n; i++) {
		struct tsgate_config_addr a = r->backend;

		a.text = talloc_asprintf(tt_mem, "tcp://127.0.0.1:%zu", i + 1);
		ms[i] =
		    tsgate_pool_member_get(test_pool(), "l", r, &a, NULL, 1000);
		ck_assert_ptr_nonnull(ms[i]);
	}
	return ms;
}

static void pool_members_put(struct tsgate_pool_member **ms, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		tsgate_pool_member_put(ms[i]);
	}
}

START_TEST(test_pool_round_robin_and_first)
{
	struct tsgate_pool_member **ms = pool_members(3);
	uint64_t cursor = 0;
	size_t order[3];
	unsigned firsts[3] = {0, 0, 0};
	int i;

	for (i = 0; i < 30; i++) {
		tsgate_pool_order(ms, 3, TSGATE_CONFIG_BALANCE_ROUND_ROBIN,
				  &cursor, order);
		firsts[order[0]]++;
		/* every member once, the rest in ring order */
		ck_assert_uint_eq(order[1], (order[0] + 1) % 3);
		ck_assert_uint_eq(order[2], (order[0] + 2) % 3);
	}
	ck_assert_uint_eq(firsts[0], 10);
	ck_assert_uint_eq(firsts[1], 10);
	ck_assert_uint_eq(firsts[2], 10);
	for (i = 0; i < 5; i++) {
		tsgate_pool_order(ms, 3, TSGATE_CONFIG_BALANCE_FIRST, &cursor,
				  order);
		ck_assert_uint_eq(order[0], 0);
		ck_assert_uint_eq(order[2], 2);
	}
	pool_members_put(ms, 3);
}
END_TEST

START_TEST(test_pool_down_members_go_last)
{
	struct tsgate_pool_member **ms = pool_members(3);
	uint64_t cursor = 0;
	size_t order[3];
	int i;

	/* a failure: down for its back-off, tried only after the others */
	tsgate_pool_member_failed(ms[0], "refused");
	ck_assert(!ms[0]->up);
	ck_assert_uint_eq(ms[0]->backoff_s, 1);
	for (i = 0; i < 6; i++) {
		tsgate_pool_order(ms, 3, TSGATE_CONFIG_BALANCE_ROUND_ROBIN,
				  &cursor, order);
		ck_assert_uint_eq(order[2], 0);
	}
	tsgate_pool_order(ms, 3, TSGATE_CONFIG_BALANCE_FIRST, &cursor, order);
	ck_assert_uint_eq(order[0], 1);
	ck_assert_uint_eq(order[2], 0);
	/* the back-off doubles to its cap */
	for (i = 0; i < 10; i++) {
		tsgate_pool_member_failed(ms[0], "refused");
	}
	ck_assert_uint_eq(ms[0]->backoff_s, 30);
	/* a success: up again, back-off forgotten */
	tsgate_pool_member_ok(ms[0]);
	ck_assert(ms[0]->up);
	ck_assert_uint_eq(ms[0]->backoff_s, 0);
	tsgate_pool_order(ms, 3, TSGATE_CONFIG_BALANCE_FIRST, &cursor, order);
	ck_assert_uint_eq(order[0], 0);
	/* checked members: only a passing check brings one back */
	tsgate_pool_member_checked(ms[1], false, "check failed");
	ck_assert(!ms[1]->up);
	tsgate_pool_order(ms, 3, TSGATE_CONFIG_BALANCE_FIRST, &cursor, order);
	ck_assert_uint_eq(order[2], 1);
	tsgate_pool_member_checked(ms[1], true, NULL);
	ck_assert(ms[1]->up);
	pool_members_put(ms, 3);
}
END_TEST

START_TEST(test_pool_least_connections)
{
	struct tsgate_pool_member **ms = pool_members(3);
	struct tsgate_backend_tracker t[3] = {{0}};
	uint64_t cursor = 0;
	size_t order[3];
	int i;

	/* 2 on member 0, 1 on member 1, none on member 2 */
	tsgate_pool_track(ms[0], &t[0]);
	tsgate_pool_track(ms[0], &t[1]);
	tsgate_pool_track(ms[1], &t[2]);
	for (i = 0; i < 4; i++) {
		tsgate_pool_order(ms, 3,
				  TSGATE_CONFIG_BALANCE_LEAST_CONNECTIONS,
				  &cursor, order);
		ck_assert_uint_eq(order[0], 2);
		ck_assert_uint_eq(order[1], 1);
		ck_assert_uint_eq(order[2], 0);
	}
	/* the connections end: the counts go with them */
	for (i = 0; i < 3; i++) {
		tsgate_pool_untrack(&t[i]);
		tsgate_pool_untrack(&t[i]); /* twice is harmless */
	}
	ck_assert_uint_eq(ms[0]->active, 0);
	ck_assert_uint_eq(ms[1]->active, 0);
	pool_members_put(ms, 3);
}
END_TEST

START_TEST(test_pool_outlived_by_connections)
{
	/* a tracker whose pool went first lets go without touching it */
	struct tsgate_backend_tracker t = {0};
	struct tsgate_pool *pool = tsgate_pool_new(tt_mem, tt_ev, NULL);
	struct tsgate_config_route *r = tcp_route(1);
	struct tsgate_pool_member *m;

	m = tsgate_pool_member_get(pool, "l", r, &r->backend, NULL, 1000);
	ck_assert_ptr_nonnull(m);
	tsgate_pool_track(m, &t);
	tsgate_pool_member_put(m);
	talloc_free(pool);
	ck_assert_ptr_null(t.member);
	tsgate_pool_untrack(&t);
}
END_TEST

static Suite *backend_suite(void)
{
	Suite *s = suite_create("backend");
	TCase *tc;

	tc = tt_tcase(s, "plain", 30);
	tcase_add_checked_fixture(tc, pool_reset, NULL);
	tcase_add_unchecked_fixture(tc, tt_scratch_setup, tt_scratch_teardown);
	tcase_add_test(tc, test_tcp_plain);
	tcase_add_test(tc, test_unix_plain);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_next_address);
	tcase_add_test(tc, test_connect_timeout);

	tc = tt_tcase(s, "pool", 30);
	tcase_add_checked_fixture(tc, pool_reset, NULL);
	tcase_add_test(tc, test_pool_round_robin_and_first);
	tcase_add_test(tc, test_pool_down_members_go_last);
	tcase_add_test(tc, test_pool_least_connections);
	tcase_add_test(tc, test_pool_outlived_by_connections);

	tc = tt_tcase(s, "tls", 60);
	tcase_add_checked_fixture(tc, pool_reset, NULL);
	tcase_add_test(tc, test_tls);
	tcase_add_test(tc, test_tls_untrusted);
	tcase_add_test(tc, test_tls_handshake_timeout);
	tcase_add_test(tc, test_tls_setup_errors);

	tc = tt_tcase(s, "gssapi", 30);
	tcase_add_checked_fixture(tc, pool_reset, NULL);
	tcase_add_test(tc, test_gssapi_setup_errors);
	return s;
}

int main(void)
{
	int ret;

	/* made once, before the tests fork, outside their leak checks */
	certs = tt_certs_create(NULL);
	if (certs == NULL) {
		fprintf(stderr, "test_backend: cannot make the test PKI\n");
		return 1;
	}
	ret = tt_run_suite(backend_suite());
	talloc_free(certs);
	return ret;
}
