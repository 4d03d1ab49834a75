/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the BSD datagram sockets (tsocket_bsd_dgram.c): UDP over
 * 127.0.0.1 and ::1 and unix datagrams in a temporary directory,
 * connected and unconnected, sender addresses, message boundaries and
 * the EBUSY/ENOTCONN/free-while-outstanding rules.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <check.h>
#include <talloc.h>
#include <tevent.h>

#include "tsocket.h"
#include "tt.h"

#define WAIT_MS 5000

struct recv_result {
	bool done;
	ssize_t len;
	int err;
	uint8_t *buf;
	struct tsocket_address *src;
};

static void recv_done(struct tevent_req *req)
{
	struct recv_result *r = tevent_req_callback_data_void(req);

	r->len = tdgram_recvfrom_recv(req, &r->err, tt_mem, &r->buf, &r->src);
	TALLOC_FREE(req);
	r->done = true;
}

struct send_result {
	bool done;
	ssize_t len;
	int err;
};

static void send_done(struct tevent_req *req)
{
	struct send_result *r = tevent_req_callback_data_void(req);

	r->len = tdgram_sendto_recv(req, &r->err);
	TALLOC_FREE(req);
	r->done = true;
}

static void start_recv(struct tdgram_context *d, struct recv_result *r)
{
	struct tevent_req *req;

	memset(r, 0, sizeof(*r));
	req = tdgram_recvfrom_send(tt_mem, tt_ev, d);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, recv_done, r);
}

/* Receives one datagram; fails the test on error or timeout. */
static struct recv_result *recv_one(struct tdgram_context *d)
{
	struct recv_result *r = talloc_zero(tt_mem, struct recv_result);

	start_recv(d, r);
	tt_wait(&r->done, WAIT_MS);
	ck_assert_msg(r->len > 0, "recvfrom: %s", strerror(r->err));
	ck_assert_ptr_nonnull(r->buf);
	return r;
}

static void start_send(struct tdgram_context *d,
		       const void *buf,
		       size_t len,
		       const struct tsocket_address *dst,
		       struct send_result *r)
{
	struct tevent_req *req;

	memset(r, 0, sizeof(*r));
	req = tdgram_sendto_send(tt_mem, tt_ev, d, buf, len, dst);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, send_done, r);
}

/* Sends one datagram; returns its length or -errno. */
static ssize_t send_one(struct tdgram_context *d,
			const void *buf,
			size_t len,
			const struct tsocket_address *dst)
{
	struct send_result r;

	start_send(d, buf, len, dst, &r);
	tt_wait(&r.done, WAIT_MS);
	return r.len == -1 ? -r.err : r.len;
}

static struct tsocket_address *inet(const char *fam,
				    const char *str,
				    uint16_t port)
{
	struct tsocket_address *addr = NULL;

	ck_assert_int_eq(
	    tsocket_address_inet_from_strings(tt_mem, fam, str, port, &addr),
	    0);
	return addr;
}

static struct tsocket_address *unix_addr(const char *dir, const char *name)
{
	struct tsocket_address *addr = NULL;
	char *path = NULL;

	if (name != NULL) {
		path = talloc_asprintf(tt_mem, "%s/%s", dir, name);
	}
	ck_assert_int_eq(tsocket_address_unix_from_path(tt_mem, path, &addr),
			 0);
	talloc_free(path);
	return addr;
}

/* A UDP port on the loopback address that was free a moment ago. */
static uint16_t udp_free_port(int family)
{
	struct sockaddr_storage ss = {.ss_family = family};
	socklen_t len = sizeof(ss);
	uint16_t port;
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_addr = in6addr_loopback;
		len = sizeof(*in6);
	}
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
	len = sizeof(ss);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	port = family == AF_INET
		   ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
		   : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	close(fd);
	return port;
}

static struct tdgram_context *udp(const struct tsocket_address *local,
				  const struct tsocket_address *remote)
{
	struct tdgram_context *d = NULL;
	int ret = tdgram_inet_udp_socket(local, remote, tt_mem, &d);

	ck_assert_msg(ret == 0, "udp socket: %s", strerror(errno));
	ck_assert_ptr_nonnull(d);
	return d;
}

static void assert_src(const struct recv_result *r, const char *expected)
{
	char *str;

	ck_assert_ptr_nonnull(r->src);
	str = tsocket_address_string(r->src, tt_mem);
	ck_assert_str_eq(str, expected);
	talloc_free(str);
}

/* a sends to b, b answers to the sender address it saw */
static void udp_exchange(const char *fam, const char *ip)
{
	int family = strcmp(fam, "ipv4") == 0 ? AF_INET : AF_INET6;
	uint16_t pa = udp_free_port(family);
	uint16_t pb = udp_free_port(family);
	struct tsocket_address *la = inet(fam, ip, pa);
	struct tsocket_address *lb = inet(fam, ip, pb);
	struct tdgram_context *a = udp(la, NULL);
	struct tdgram_context *b = udp(lb, NULL);
	struct recv_result *r;
	char *expect;

	ck_assert_int_eq(send_one(a, "ping", 4, lb), 4);
	r = recv_one(b);
	ck_assert_int_eq(r->len, 4);
	ck_assert_int_eq(memcmp(r->buf, "ping", 4), 0);
	ck_assert_ptr_eq(talloc_parent(r->buf), tt_mem);
	expect = tsocket_address_string(la, tt_mem);
	assert_src(r, expect);

	ck_assert_int_eq(send_one(b, "pong!", 5, r->src), 5);
	r = recv_one(a);
	ck_assert_int_eq(r->len, 5);
	ck_assert_int_eq(memcmp(r->buf, "pong!", 5), 0);
	assert_src(r, tsocket_address_string(lb, tt_mem));

	talloc_free(a);
	talloc_free(b);
}

START_TEST(test_udp4_unconnected)
{
	udp_exchange("ipv4", "127.0.0.1");
}
END_TEST

START_TEST(test_udp6_unconnected)
{
	udp_exchange("ipv6", "::1");
}
END_TEST

static void udp_connected(const char *fam, const char *ip)
{
	int family = strcmp(fam, "ipv4") == 0 ? AF_INET : AF_INET6;
	struct tsocket_address *ls = inet(fam, ip, udp_free_port(family));
	struct tdgram_context *server = udp(ls, NULL);
	/* any address with port 0: the kernel picks, family from remote */
	struct tsocket_address *any = inet("ip", NULL, 0);
	struct tdgram_context *client = udp(any, ls);
	struct recv_result *r;

	ck_assert_int_eq(send_one(client, "hello", 5, NULL), 5);
	r = recv_one(server);
	ck_assert_int_eq(r->len, 5);
	ck_assert(tsocket_address_is_inet(r->src, fam));
	ck_assert_uint_ne(tsocket_address_inet_port(r->src), 0);

	ck_assert_int_eq(send_one(server, "world!", 6, r->src), 6);
	r = recv_one(client);
	ck_assert_int_eq(r->len, 6);
	ck_assert_int_eq(memcmp(r->buf, "world!", 6), 0);
	assert_src(r, tsocket_address_string(ls, tt_mem));
}

START_TEST(test_udp4_connected)
{
	udp_connected("ipv4", "127.0.0.1");
}
END_TEST

START_TEST(test_udp6_connected)
{
	udp_connected("ipv6", "::1");
}
END_TEST

START_TEST(test_udp_boundaries)
{
	struct tsocket_address *lb =
	    inet("ipv4", "127.0.0.1", udp_free_port(AF_INET));
	struct tdgram_context *b = udp(lb, NULL);
	struct tdgram_context *a = udp(inet("ipv4", "127.0.0.1", 0), lb);
	static const size_t sizes[] = {1, 100, 1000, 8000, 60000, 3};
	uint8_t *data = talloc_size(tt_mem, 60000);
	size_t i;

	for (i = 0; i < 60000; i++) {
		data[i] = (uint8_t)(i * 7);
	}
	/* all queued first, then read: each comes back whole and alone */
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		ck_assert_int_eq(send_one(a, data, sizes[i], NULL),
				 (ssize_t)sizes[i]);
	}
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct recv_result *r = recv_one(b);

		ck_assert_int_eq(r->len, (ssize_t)sizes[i]);
		ck_assert_uint_eq(talloc_get_size(r->buf), sizes[i]);
		ck_assert_int_eq(memcmp(r->buf, data, sizes[i]), 0);
	}
}
END_TEST

START_TEST(test_udp_recv_waits)
{
	struct tsocket_address *lb =
	    inet("ipv6", "::1", udp_free_port(AF_INET6));
	struct tdgram_context *b = udp(lb, NULL);
	struct tdgram_context *a = udp(inet("ipv6", NULL, 0), lb);
	struct recv_result r;
	int i;

	/* the receive is outstanding before anything is sent */
	for (i = 0; i < 3; i++) {
		start_recv(b, &r);
		ck_assert(!tt_loop_until(tt_ev, &r.done, 50));
		ck_assert_int_eq(send_one(a, "late", 4, NULL), 4);
		tt_wait(&r.done, WAIT_MS);
		ck_assert_int_eq(r.len, 4);
		ck_assert_int_eq(memcmp(r.buf, "late", 4), 0);
	}
}
END_TEST

START_TEST(test_udp_refused_not_sticky)
{
	/* nobody on that port: the kernel's ICMP answer is an error ... */
	struct tsocket_address *dead =
	    inet("ipv4", "127.0.0.1", udp_free_port(AF_INET));
	struct tdgram_context *a = udp(inet("ipv4", NULL, 0), dead);
	struct recv_result r;

	ck_assert_int_eq(send_one(a, "x", 1, NULL), 1);
	start_recv(a, &r);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.len, -1);
	ck_assert_int_eq(r.err, ECONNREFUSED);

	/* ... of that one request only: datagram errors are not sticky */
	ck_assert_int_eq(send_one(a, "y", 1, NULL), 1);
}
END_TEST

START_TEST(test_udp_broadcast_socket)
{
	struct tsocket_address *lb =
	    inet("ipv4", "127.0.0.1", udp_free_port(AF_INET));
	struct tdgram_context *b = udp(lb, NULL);
	struct tdgram_context *a = NULL;
	struct recv_result *r;

	ck_assert_int_eq(tdgram_inet_udp_broadcast_socket(
			     inet("ipv4", "127.0.0.1", 0), tt_mem, &a),
			 0);
	ck_assert_int_eq(send_one(a, "bc", 2, lb), 2);
	r = recv_one(b);
	ck_assert_int_eq(r->len, 2);

	/* broadcast is an ipv4 notion */
	a = NULL;
	errno = 0;
	ck_assert_int_eq(tdgram_inet_udp_broadcast_socket(
			     inet("ipv6", "::1", 0), tt_mem, &a),
			 -1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(test_udp_bad_addresses)
{
	struct tdgram_context *d = NULL;
	struct tsocket_address *u = NULL;

	ck_assert_int_eq(tsocket_address_unix_from_path(tt_mem, "/x", &u), 0);
	errno = 0;
	ck_assert_int_eq(tdgram_inet_udp_socket(u, NULL, tt_mem, &d), -1);
	ck_assert_int_eq(errno, EINVAL);
	/* a bound ipv4 local cannot reach an ipv6 remote */
	errno = 0;
	ck_assert_int_eq(tdgram_inet_udp_socket(inet("ipv4", "127.0.0.1", 0),
						inet("ipv6", "::1", 9), tt_mem,
						&d),
			 -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(
	    tdgram_unix_socket(inet("ipv4", "127.0.0.1", 0), NULL, tt_mem, &d),
	    -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(d);
}
END_TEST

START_TEST(test_unix_unconnected)
{
	char *dir = tt_mkdtemp(tt_mem);
	struct tsocket_address *la = unix_addr(dir, "a.sock");
	struct tsocket_address *lb = unix_addr(dir, "b.sock");
	struct tdgram_context *a = NULL, *b = NULL;
	struct recv_result *r;
	char *expect;

	ck_assert_ptr_nonnull(dir);
	ck_assert_int_eq(tdgram_unix_socket(la, NULL, tt_mem, &a), 0);
	ck_assert_int_eq(tdgram_unix_socket(lb, NULL, tt_mem, &b), 0);

	ck_assert_int_eq(send_one(a, "unix", 4, lb), 4);
	r = recv_one(b);
	ck_assert_int_eq(r->len, 4);
	ck_assert(tsocket_address_is_unix(r->src));
	expect = talloc_asprintf(tt_mem, "unix:%s/a.sock", dir);
	assert_src(r, expect);

	ck_assert_int_eq(send_one(b, "back", 4, r->src), 4);
	r = recv_one(a);
	ck_assert_int_eq(memcmp(r->buf, "back", 4), 0);

	talloc_free(a);
	talloc_free(b);
	tt_rmtree(dir);
}
END_TEST

START_TEST(test_unix_connected_and_large)
{
	char *dir = tt_mkdtemp(tt_mem);
	struct tsocket_address *ls = unix_addr(dir, "s.sock");
	struct tdgram_context *s = NULL, *c = NULL;
	const size_t big = 100000; /* beyond any UDP datagram */
	uint8_t *data = talloc_size(tt_mem, big);
	struct recv_result *r;
	size_t i;

	ck_assert_ptr_nonnull(dir);
	for (i = 0; i < big; i++) {
		data[i] = (uint8_t)(i % 251);
	}
	ck_assert_int_eq(tdgram_unix_socket(ls, NULL, tt_mem, &s), 0);
	/* an empty local path: not bound, the sender stays anonymous */
	ck_assert_int_eq(
	    tdgram_unix_socket(unix_addr(dir, NULL), ls, tt_mem, &c), 0);

	ck_assert_int_eq(send_one(c, data, 1, NULL), 1);
	ck_assert_int_eq(send_one(c, data, big, NULL), (ssize_t)big);
	ck_assert_int_eq(send_one(c, data, 2, NULL), 2);

	r = recv_one(s);
	ck_assert_int_eq(r->len, 1);
	assert_src(r, "unix:");
	r = recv_one(s);
	ck_assert_int_eq(r->len, (ssize_t)big);
	ck_assert_int_eq(memcmp(r->buf, data, big), 0);
	r = recv_one(s);
	ck_assert_int_eq(r->len, 2);

	/* a peer that does not exist: as the kernel says */
	c = NULL;
	errno = 0;
	ck_assert_int_eq(tdgram_unix_socket(unix_addr(dir, NULL),
					    unix_addr(dir, "missing"), tt_mem,
					    &c),
			 -1);
	ck_assert_int_eq(errno, ENOENT);

	talloc_free(s);
	tt_rmtree(dir);
}
END_TEST

/*
 * A unix datagram larger than the default send buffer (about 208 KiB on
 * Linux): sendto raises SO_SNDBUF and sends it, as Samba does. The
 * tsocket oracle found tsgate refusing 300,000 bytes with EMSGSIZE.
 */
START_TEST(test_unix_larger_than_sndbuf)
{
	char *dir = tt_mkdtemp(tt_mem);
	struct tsocket_address *ls = unix_addr(dir, "s.sock");
	struct tdgram_context *s = NULL, *c = NULL;
	const size_t big = 300000;
	uint8_t *data = talloc_size(tt_mem, big);
	struct recv_result *r;
	size_t i;

	ck_assert_ptr_nonnull(dir);
	for (i = 0; i < big; i++) {
		data[i] = (uint8_t)(i % 253);
	}
	ck_assert_int_eq(tdgram_unix_socket(ls, NULL, tt_mem, &s), 0);
	ck_assert_int_eq(
	    tdgram_unix_socket(unix_addr(dir, NULL), ls, tt_mem, &c), 0);
	ck_assert_int_eq(send_one(c, data, big, NULL), (ssize_t)big);
	r = recv_one(s);
	ck_assert_int_eq(r->len, (ssize_t)big);
	ck_assert_int_eq(memcmp(r->buf, data, big), 0);
	/* UDP stays limited by its protocol: EMSGSIZE all the same */
	{
		struct tdgram_context *u =
		    udp(inet("ipv4", "127.0.0.1", 0), NULL);
		struct tsocket_address *dst = inet("ipv4", "127.0.0.1", 9);

		errno = 0;
		ck_assert_int_eq(send_one(u, data, 65508, dst), -EMSGSIZE);
		talloc_free(u);
	}
	talloc_free(c);
	talloc_free(s);
	tt_rmtree(dir);
}
END_TEST

START_TEST(test_empty_datagrams_and_shut)
{
	struct tdgram_context *d = NULL;
	struct recv_result *r;
	int fds[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds),
			 0);
	ck_assert_int_eq(tdgram_bsd_existing_socket(tt_mem, fds[0], &d), 0);

	/* empty datagrams are skipped: a receive never reports 0 bytes */
	ck_assert_int_eq(send(fds[1], "", 0, 0), 0);
	ck_assert_int_eq(send(fds[1], "", 0, 0), 0);
	ck_assert_int_eq(send(fds[1], "x", 1, 0), 1);
	r = recv_one(d);
	ck_assert_int_eq(r->len, 1);
	ck_assert_int_eq(r->buf[0], 'x');

	/* a socket shut for reading ends receiving instead of spinning */
	ck_assert_int_eq(shutdown(fds[0], SHUT_RD), 0);
	r = talloc_zero(tt_mem, struct recv_result);
	start_recv(d, r);
	tt_wait(&r->done, WAIT_MS);
	ck_assert_int_eq(r->len, -1);
	ck_assert_int_eq(r->err, EPIPE);
	close(fds[1]);
}
END_TEST

START_TEST(test_len_zero_refused)
{
	struct tsocket_address *lb =
	    inet("ipv4", "127.0.0.1", udp_free_port(AF_INET));
	struct tdgram_context *a = udp(inet("ipv4", NULL, 0), lb);

	ck_assert_int_eq(send_one(a, "x", 0, NULL), -EINVAL);
	ck_assert_int_eq(send_one(a, NULL, 0, NULL), -EINVAL);
}
END_TEST

START_TEST(test_busy)
{
	struct tsocket_address *lb =
	    inet("ipv4", "127.0.0.1", udp_free_port(AF_INET));
	struct tdgram_context *b = udp(lb, NULL);
	struct tdgram_context *a = udp(inet("ipv4", NULL, 0), lb);
	struct recv_result r1, r2;
	struct send_result s1, s2;

	start_recv(b, &r1);
	start_recv(b, &r2);
	tt_wait(&r2.done, WAIT_MS);
	ck_assert_int_eq(r2.len, -1);
	ck_assert_int_eq(r2.err, EBUSY);
	ck_assert(!r1.done);

	/* the first sendto is outstanding until its callback ran */
	start_send(a, "1", 1, NULL, &s1);
	start_send(a, "2", 1, NULL, &s2);
	tt_wait(&s1.done, WAIT_MS);
	tt_wait(&s2.done, WAIT_MS);
	ck_assert_int_eq(s1.len, 1);
	ck_assert_int_eq(s2.len, -1);
	ck_assert_int_eq(s2.err, EBUSY);

	tt_wait(&r1.done, WAIT_MS);
	ck_assert_int_eq(r1.len, 1);
	ck_assert_int_eq(r1.buf[0], '1');
}
END_TEST

struct disc_result {
	bool done;
	int ret;
	int err;
};

static void disc_done(struct tevent_req *req)
{
	struct disc_result *r = tevent_req_callback_data_void(req);

	r->ret = tdgram_disconnect_recv(req, &r->err);
	TALLOC_FREE(req);
	r->done = true;
}

static void disconnect(struct tdgram_context *d, struct disc_result *r)
{
	struct tevent_req *req;

	memset(r, 0, sizeof(*r));
	req = tdgram_disconnect_send(tt_mem, tt_ev, d);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, disc_done, r);
	tt_wait(&r->done, WAIT_MS);
}

START_TEST(test_disconnect)
{
	struct tsocket_address *lb =
	    inet("ipv4", "127.0.0.1", udp_free_port(AF_INET));
	struct tdgram_context *b = udp(lb, NULL);
	struct recv_result r;
	struct disc_result dr;
	struct tevent_req *req;

	/* not while a receive is outstanding */
	req = tdgram_recvfrom_send(tt_mem, tt_ev, b);
	ck_assert_ptr_nonnull(req);
	disconnect(b, &dr);
	ck_assert_int_eq(dr.ret, -1);
	ck_assert_int_eq(dr.err, EBUSY);
	TALLOC_FREE(req);

	disconnect(b, &dr);
	ck_assert_int_eq(dr.ret, 0);

	/* everything after it is ENOTCONN */
	start_recv(b, &r);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.len, -1);
	ck_assert_int_eq(r.err, ENOTCONN);
	ck_assert_int_eq(send_one(b, "x", 1, lb), -ENOTCONN);
	disconnect(b, &dr);
	ck_assert_int_eq(dr.ret, -1);
	ck_assert_int_eq(dr.err, ENOTCONN);
}
END_TEST

START_TEST(test_free_with_outstanding)
{
	struct tsocket_address *lb =
	    inet("ipv4", "127.0.0.1", udp_free_port(AF_INET));
	struct tdgram_context *b = udp(lb, NULL);
	struct tdgram_context *a = udp(inet("ipv4", NULL, 0), lb);
	struct recv_result r;
	struct tevent_req *req;

	start_recv(b, &r);
	tt_loop_until(tt_ev, &r.done, 20);
	ck_assert(!r.done);
	talloc_free(b);
	/* the request fails later from the loop, never inside the free */
	ck_assert(!r.done);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.len, -1);
	ck_assert_int_eq(r.err, ENOTCONN);

	/* a request freed before its context, then the context */
	b = udp(inet("ipv4", "127.0.0.1", 0), NULL);
	req = tdgram_recvfrom_send(tt_mem, tt_ev, b);
	ck_assert_ptr_nonnull(req);
	talloc_free(req);
	start_recv(b, &r);
	ck_assert(!tt_loop_until(tt_ev, &r.done, 20));
	talloc_free(b);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.err, ENOTCONN);

	/* the event context going first, then the request and context */
	b = udp(inet("ipv4", "127.0.0.1", 0), NULL);
	req = tdgram_recvfrom_send(tt_mem, tt_ev, b);
	ck_assert_ptr_nonnull(req);
	TALLOC_FREE(tt_ev);
	talloc_free(req);
	talloc_free(b);
	tt_ev = tevent_context_init(tt_mem);
	ck_assert_ptr_nonnull(tt_ev);
	talloc_free(a);
}
END_TEST

START_TEST(test_existing_socket)
{
	struct tdgram_context *d = NULL;
	struct sockaddr_in in = {.sin_family = AF_INET};
	socklen_t len = sizeof(in);
	struct tsocket_address *addr = NULL;
	struct tdgram_context *a;
	struct recv_result *r;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&in, sizeof(in)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&in, &len), 0);
	ck_assert_int_eq(tsocket_address_bsd_from_sockaddr(
			     tt_mem, (struct sockaddr *)&in, len, &addr),
			 0);

	/* a blocking fd is made non-blocking: the loop must never block */
	ck_assert_int_eq(tdgram_bsd_existing_socket(tt_mem, fd, &d), 0);
	ck_assert((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);

	a = udp(inet("ipv4", NULL, 0), addr);
	ck_assert_int_eq(send_one(a, "own", 3, NULL), 3);
	r = recv_one(d);
	ck_assert_int_eq(r->len, 3);

	talloc_free(d);
	errno = 0;
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	ck_assert_int_eq(errno, EBADF);

	errno = 0;
	ck_assert_int_eq(tdgram_bsd_existing_socket(tt_mem, -1, &d), -1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

static Suite *tsocket_dgram_suite(void)
{
	Suite *s = suite_create("tsocket_dgram");
	TCase *tc;

	tc = tt_tcase(s, "udp", 20);
	tcase_add_test(tc, test_udp4_unconnected);
	tcase_add_test(tc, test_udp6_unconnected);
	tcase_add_test(tc, test_udp4_connected);
	tcase_add_test(tc, test_udp6_connected);
	tcase_add_test(tc, test_udp_boundaries);
	tcase_add_test(tc, test_udp_recv_waits);
	tcase_add_test(tc, test_udp_refused_not_sticky);
	tcase_add_test(tc, test_udp_broadcast_socket);
	tcase_add_test(tc, test_udp_bad_addresses);

	tc = tt_tcase(s, "unix", 20);
	tcase_add_test(tc, test_unix_unconnected);
	tcase_add_test(tc, test_unix_connected_and_large);
	tcase_add_test(tc, test_unix_larger_than_sndbuf);

	tc = tt_tcase(s, "guards", 20);
	tcase_add_test(tc, test_len_zero_refused);
	tcase_add_test(tc, test_empty_datagrams_and_shut);
	tcase_add_test(tc, test_busy);
	tcase_add_test(tc, test_disconnect);

	tc = tt_tcase(s, "lifetime", 20);
	tcase_add_test(tc, test_free_with_outstanding);
	tcase_add_test(tc, test_existing_socket);

	return s;
}

int main(void)
{
	return tt_run_suite(tsocket_dgram_suite());
}
