/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the BSD stream sockets (tsocket_bsd_stream.c): TCP over
 * 127.0.0.1 and ::1 to listeners the tests make, unix connect,
 * socketpairs and existing fds; readv/writev semantics, EPIPE/ENOTCONN,
 * sticky errors, SIGPIPE and half-close.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <check.h>
#include <talloc.h>
#include <tevent.h>

#include "tsocket.h"
#include "tt.h"
#include "tt_pair.h"

#define WAIT_MS 5000

struct io_result {
	bool done;
	int ret;
	int err;
};

static void readv_done(struct tevent_req *req)
{
	struct io_result *r = tevent_req_callback_data_void(req);

	r->ret = tstream_readv_recv(req, &r->err);
	TALLOC_FREE(req);
	r->done = true;
}

static void writev_done(struct tevent_req *req)
{
	struct io_result *r = tevent_req_callback_data_void(req);

	r->ret = tstream_writev_recv(req, &r->err);
	TALLOC_FREE(req);
	r->done = true;
}

static void start_readv(struct tstream_context *s,
			struct iovec *iov,
			size_t count,
			struct io_result *r)
{
	struct tevent_req *req;

	memset(r, 0, sizeof(*r));
	req = tstream_readv_send(tt_mem, tt_ev, s, iov, count);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, readv_done, r);
}

static void start_writev(struct tstream_context *s,
			 const struct iovec *iov,
			 size_t count,
			 struct io_result *r)
{
	struct tevent_req *req;

	memset(r, 0, sizeof(*r));
	req = tstream_writev_send(tt_mem, tt_ev, s, iov, count);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, writev_done, r);
}

/* Reads exactly len bytes; returns the count or -errno. */
static int read_exact(struct tstream_context *s, void *buf, size_t len)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct io_result r;

	start_readv(s, &iov, 1, &r);
	tt_wait(&r.done, WAIT_MS);
	return r.ret == -1 ? -r.err : r.ret;
}

/* Writes len bytes; returns the count or -errno. */
static int write_all(struct tstream_context *s, const void *buf, size_t len)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct io_result r;

	start_writev(s, &iov, 1, &r);
	tt_wait(&r.done, WAIT_MS);
	return r.ret == -1 ? -r.err : r.ret;
}

struct simple_result {
	bool done;
	int ret;
	int err;
};

static void disconnect_done(struct tevent_req *req)
{
	struct simple_result *r = tevent_req_callback_data_void(req);

	r->ret = tstream_disconnect_recv(req, &r->err);
	TALLOC_FREE(req);
	r->done = true;
}

static int disconnect(struct tstream_context *s)
{
	struct simple_result r = {0};
	struct tevent_req *req = tstream_disconnect_send(tt_mem, tt_ev, s);

	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, disconnect_done, &r);
	tt_wait(&r.done, WAIT_MS);
	return r.ret == -1 ? -r.err : r.ret;
}

static void shutdown_done(struct tevent_req *req)
{
	struct simple_result *r = tevent_req_callback_data_void(req);

	r->ret = tstream_shutdown_recv(req, &r->err);
	TALLOC_FREE(req);
	r->done = true;
}

static int half_close(struct tstream_context *s)
{
	struct simple_result r = {0};
	struct tevent_req *req = tstream_shutdown_send(tt_mem, tt_ev, s);

	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, shutdown_done, &r);
	tt_wait(&r.done, WAIT_MS);
	return r.ret == -1 ? -r.err : r.ret;
}

static void wait_done(struct tevent_req *req)
{
	struct simple_result *r = tevent_req_callback_data_void(req);

	r->ret = tstream_wait_readable_recv(req, &r->err);
	TALLOC_FREE(req);
	r->done = true;
}

static struct tevent_req *start_wait(struct tstream_context *s,
				     struct simple_result *r)
{
	struct tevent_req *req;

	memset(r, 0, sizeof(*r));
	req = tstream_wait_readable_send(tt_mem, tt_ev, s);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, wait_done, r);
	return req;
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

static struct tsocket_address *unix_addr(const char *path)
{
	struct tsocket_address *addr = NULL;

	ck_assert_int_eq(tsocket_address_unix_from_path(tt_mem, path, &addr),
			 0);
	return addr;
}

/* A listening TCP socket on the loopback of family; *port gets its port. */
static int tcp_listener(int family, uint16_t *port)
{
	struct sockaddr_storage ss = {.ss_family = family};
	socklen_t len;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	if (family == AF_INET) {
		((struct sockaddr_in *)&ss)->sin_addr.s_addr =
		    htonl(INADDR_LOOPBACK);
		len = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
		len = sizeof(struct sockaddr_in6);
	}
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	len = sizeof(ss);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	*port = family == AF_INET
		    ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
		    : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

static int unix_listener(const char *path)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	strncpy(un.sun_path, path, sizeof(un.sun_path) - 1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);
	return fd;
}

struct connect_result {
	bool done;
	int ret;
	int err;
	struct tstream_context *stream;
};

static void tcp_connect_done(struct tevent_req *req)
{
	struct connect_result *r = tevent_req_callback_data_void(req);

	r->ret =
	    tstream_inet_tcp_connect_recv(req, &r->err, tt_mem, &r->stream);
	TALLOC_FREE(req);
	r->done = true;
}

/* Connects; returns 0 and the stream, or -errno. */
static int tcp_connect(const struct tsocket_address *local,
		       const struct tsocket_address *remote,
		       struct tstream_context **stream)
{
	struct connect_result r = {0};
	struct tevent_req *req;

	req = tstream_inet_tcp_connect_send(tt_mem, tt_ev, local, remote);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tcp_connect_done, &r);
	tt_wait(&r.done, WAIT_MS);
	*stream = r.stream;
	return r.ret == -1 ? -r.err : 0;
}

/* The accepted end of a connection, wrapped as a stream. */
static struct tstream_context *accept_stream(int lfd, int *pfd)
{
	struct tstream_context *s = NULL;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, fd, &s), 0);
	if (pfd != NULL) {
		*pfd = fd;
	}
	return s;
}

static void exchange(struct tstream_context *a, struct tstream_context *b)
{
	char buf[16];

	ck_assert_int_eq(write_all(a, "hello", 5), 5);
	ck_assert_int_eq(read_exact(b, buf, 5), 5);
	ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
	ck_assert_int_eq(write_all(b, "world!", 6), 6);
	ck_assert_int_eq(read_exact(a, buf, 6), 6);
	ck_assert_int_eq(memcmp(buf, "world!", 6), 0);
}

static void tcp_roundtrip(int family,
			  const char *fam,
			  const char *ip,
			  const char *local_fam)
{
	uint16_t port;
	int lfd = tcp_listener(family, &port);
	struct tstream_context *c = NULL;
	struct tstream_context *s;

	ck_assert_int_eq(
	    tcp_connect(inet(local_fam, NULL, 0), inet(fam, ip, port), &c), 0);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_eq(talloc_parent(c), tt_mem);
	s = accept_stream(lfd, NULL);
	exchange(c, s);
	talloc_free(c);
	talloc_free(s);
	close(lfd);
}

START_TEST(test_tcp4_connect)
{
	tcp_roundtrip(AF_INET, "ipv4", "127.0.0.1", "ipv4");
}
END_TEST

START_TEST(test_tcp6_connect)
{
	tcp_roundtrip(AF_INET6, "ipv6", "::1", "ipv6");
	/* a wildcard local of the other family takes the remote's family */
	tcp_roundtrip(AF_INET6, "ipv6", "::1", "ip");
}
END_TEST

START_TEST(test_tcp_bound_local)
{
	uint16_t port;
	uint16_t lport = tt_free_port();
	int lfd = tcp_listener(AF_INET, &port);
	struct tstream_context *c = NULL;
	struct sockaddr_in peer;
	socklen_t len = sizeof(peer);
	int fd;

	ck_assert_int_eq(tcp_connect(inet("ipv4", "127.0.0.1", lport),
				     inet("ipv4", "127.0.0.1", port), &c),
			 0);
	fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_uint_eq(ntohs(peer.sin_port), lport);
	close(fd);
	talloc_free(c);
	close(lfd);
}
END_TEST

START_TEST(test_tcp_refused)
{
	struct tstream_context *c = NULL;
	uint16_t port = tt_free_port();

	ck_assert_int_eq(tcp_connect(inet("ipv4", NULL, 0),
				     inet("ipv4", "127.0.0.1", port), &c),
			 -ECONNREFUSED);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(
	    tcp_connect(inet("ipv6", NULL, 0), inet("ipv6", "::1", port), &c),
	    -ECONNREFUSED);

	/* not inet addresses */
	ck_assert_int_eq(tcp_connect(unix_addr(NULL), unix_addr("/x"), &c),
			 -EINVAL);
}
END_TEST

static void unix_connect_done4(struct tevent_req *req)
{
	struct connect_result *r = tevent_req_callback_data_void(req);

	r->ret = tstream_unix_connect_recv(req, &r->err, tt_mem, &r->stream);
	TALLOC_FREE(req);
	r->done = true;
}

static void unix_connect_done_underscore4(struct tevent_req *req)
{
	struct connect_result *r = tevent_req_callback_data_void(req);

	/* the seed document's spelling: no location argument */
	r->ret = _tstream_unix_connect_recv(req, &r->err, tt_mem, &r->stream);
	TALLOC_FREE(req);
	r->done = true;
}

static void unix_connect_done_underscore5(struct tevent_req *req)
{
	struct connect_result *r = tevent_req_callback_data_void(req);

	/* Samba's spelling: with the location */
	r->ret = _tstream_unix_connect_recv(req, &r->err, tt_mem, &r->stream,
					    __location__);
	TALLOC_FREE(req);
	r->done = true;
}

static int unix_connect(const char *path,
			tevent_req_fn fn,
			struct tstream_context **stream)
{
	struct connect_result r = {0};
	struct tevent_req *req;

	req = tstream_unix_connect_send(tt_mem, tt_ev, unix_addr(NULL),
					unix_addr(path));
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, fn, &r);
	tt_wait(&r.done, WAIT_MS);
	*stream = r.stream;
	return r.ret == -1 ? -r.err : 0;
}

START_TEST(test_unix_connect)
{
	char *dir = tt_mkdtemp(tt_mem);
	char *path = talloc_asprintf(tt_mem, "%s/l.sock", dir);
	int lfd = unix_listener(path);
	tevent_req_fn fns[] = {unix_connect_done4,
			       unix_connect_done_underscore4,
			       unix_connect_done_underscore5};
	size_t i;

	for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		struct tstream_context *c = NULL;
		struct tstream_context *s;

		ck_assert_int_eq(unix_connect(path, fns[i], &c), 0);
		ck_assert_ptr_nonnull(c);
		s = accept_stream(lfd, NULL);
		exchange(c, s);
		talloc_free(c);
		talloc_free(s);
	}
	close(lfd);
	tt_rmtree(dir);
}
END_TEST

START_TEST(test_unix_connect_errors)
{
	char *dir = tt_mkdtemp(tt_mem);
	char *missing = talloc_asprintf(tt_mem, "%s/missing", dir);
	char *deaf = talloc_asprintf(tt_mem, "%s/deaf.sock", dir);
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	struct tstream_context *c = NULL;
	int fd;

	ck_assert_int_eq(unix_connect(missing, unix_connect_done4, &c),
			 -ENOENT);
	ck_assert_ptr_null(c);

	/* a socket file nobody listens on */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	strncpy(un.sun_path, deaf, sizeof(un.sun_path) - 1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	ck_assert_int_eq(unix_connect(deaf, unix_connect_done4, &c),
			 -ECONNREFUSED);
	close(fd);
	tt_rmtree(dir);
}
END_TEST

START_TEST(test_socketpair)
{
	TALLOC_CTX *ctx1 = talloc_new(tt_mem);
	TALLOC_CTX *ctx2 = talloc_new(tt_mem);
	struct tstream_context *a = NULL, *b = NULL;

	ck_assert_int_eq(tstream_unix_socketpair(ctx1, &a, ctx2, &b), 0);
	ck_assert_ptr_eq(talloc_parent(a), ctx1);
	ck_assert_ptr_eq(talloc_parent(b), ctx2);
	exchange(a, b);
	exchange(b, a);
	talloc_free(ctx1);
	/* the other end sees the close */
	{
		char c;

		ck_assert_int_eq(read_exact(b, &c, 1), -EPIPE);
	}
	talloc_free(ctx2);
}
END_TEST

/* A socketpair: *s wraps one end, the other end is returned raw. */
static int stream_and_raw_peer(struct tstream_context **s)
{
	return tt_stream_raw_pair(tt_mem, s);
}

START_TEST(test_existing_socket_ownership)
{
	struct tstream_context *s = NULL;
	int fds[2];
	char buf[4];

	ck_assert_int_eq(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, fds[0], &s), 0);
	/* the event loop must never block on it */
	ck_assert((fcntl(fds[0], F_GETFL) & O_NONBLOCK) != 0);
	ck_assert_int_eq(write(fds[1], "abc", 3), 3);
	ck_assert_int_eq(read_exact(s, buf, 3), 3);
	ck_assert_int_eq(memcmp(buf, "abc", 3), 0);

	talloc_free(s);
	errno = 0;
	ck_assert_int_eq(fcntl(fds[0], F_GETFD), -1);
	ck_assert_int_eq(errno, EBADF);
	ck_assert_int_eq(read(fds[1], buf, sizeof(buf)), 0);
	close(fds[1]);

	s = NULL;
	errno = 0;
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, -1, &s), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(s);
}
END_TEST

/* tstream_bsd_set_nodelay: on and off on TCP; refused elsewhere. */
START_TEST(test_set_nodelay)
{
	struct tstream_context *s = NULL;
	struct tstream_context *u = NULL;
	struct tstream_context *u2 = NULL;
	int fds[2];
	int v = -1;
	socklen_t len = sizeof(v);

	tt_tcp_fds(fds);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, fds[0], &s), 0);
	ck_assert_int_eq(tstream_bsd_set_nodelay(s, true), 0);
	ck_assert_int_eq(getsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &v, &len),
			 0);
	ck_assert_int_ne(v, 0);
	ck_assert_int_eq(tstream_bsd_set_nodelay(s, false), 0);
	ck_assert_int_eq(getsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &v, &len),
			 0);
	ck_assert_int_eq(v, 0);
	talloc_free(s);
	close(fds[1]);

	ck_assert_int_eq(tstream_unix_socketpair(tt_mem, &u, tt_mem, &u2), 0);
	ck_assert_int_eq(tstream_bsd_set_nodelay(u, true), -1);
	ck_assert_int_ne(errno, 0);
	errno = 0;
	ck_assert_int_eq(tstream_bsd_set_nodelay(NULL, true), -1);
	ck_assert_int_eq(errno, EINVAL);
	talloc_free(u);
	talloc_free(u2);
}
END_TEST

/*
 * tstream_reset: freed after it, a TCP stream resets its connection (the
 * peer's read fails with ECONNRESET); freed without it, the peer reads an
 * orderly end. Refused for a pipe, a disconnected stream and NULL.
 */
START_TEST(test_reset)
{
	struct tstream_context *s = NULL;
	int fds[2], pipefd[2];
	char buf[4];

	for (int reset = 0; reset < 2; reset++) {
		tt_tcp_fds(fds);
		ck_assert_int_eq(
		    tstream_bsd_existing_socket(tt_mem, fds[0], &s), 0);
		if (reset) {
			ck_assert_int_eq(tstream_reset(s), 0);
		}
		talloc_free(s);
		errno = 0;
		if (reset) {
			ck_assert_int_eq(read(fds[1], buf, sizeof(buf)), -1);
			ck_assert_int_eq(errno, ECONNRESET);
		} else {
			ck_assert_int_eq(read(fds[1], buf, sizeof(buf)), 0);
		}
		close(fds[1]);
	}

	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, pipefd[0], &s), 0);
	errno = 0;
	ck_assert_int_eq(tstream_reset(s), -1);
	ck_assert_int_eq(errno, EOPNOTSUPP);
	talloc_free(s);
	close(pipefd[1]);

	tt_tcp_fds(fds);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, fds[0], &s), 0);
	ck_assert_int_eq(disconnect(s), 0);
	errno = 0;
	ck_assert_int_eq(tstream_reset(s), -1);
	ck_assert_int_eq(errno, ENOTCONN);
	talloc_free(s);
	close(fds[1]);

	errno = 0;
	ck_assert_int_eq(tstream_reset(NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(test_readv_piecemeal)
{
	struct tstream_context *s = NULL;
	int peer = stream_and_raw_peer(&s);
	char a[3], b[5], c[8];
	struct iovec iov[3] = {
	    {.iov_base = a, .iov_len = sizeof(a)},
	    {.iov_base = b, .iov_len = sizeof(b)},
	    {.iov_base = c, .iov_len = sizeof(c)},
	};
	struct io_result r;

	start_readv(s, iov, 3, &r);
	/* the vector is the caller's and stays unchanged */
	ck_assert_ptr_eq(iov[1].iov_base, b);
	ck_assert(!tt_loop_until(tt_ev, &r.done, 20));

	ck_assert_int_eq(write(peer, "0", 1), 1);
	ck_assert(!tt_loop_until(tt_ev, &r.done, 20));
	ck_assert_int_eq(write(peer, "123456", 6), 6);
	ck_assert(!tt_loop_until(tt_ev, &r.done, 20));
	ck_assert_int_eq(write(peer, "789abcdefXYZ", 12), 12);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.ret, 16);
	ck_assert_int_eq(memcmp(a, "012", 3), 0);
	ck_assert_int_eq(memcmp(b, "34567", 5), 0);
	ck_assert_int_eq(memcmp(c, "89abcdef", 8), 0);
	ck_assert_uint_eq(iov[0].iov_len, 3);
	ck_assert_uint_eq(iov[2].iov_len, 8);

	/* what was beyond the vector is still there */
	ck_assert_int_eq(tstream_pending_bytes(s), 3);
	ck_assert_int_eq(read_exact(s, a, 3), 3);
	ck_assert_int_eq(memcmp(a, "XYZ", 3), 0);
	close(peer);
}
END_TEST

START_TEST(test_pending_bytes)
{
	struct tstream_context *s = NULL;
	int peer = stream_and_raw_peer(&s);
	char buf[10];

	ck_assert_int_eq(tstream_pending_bytes(s), 0);
	ck_assert_int_eq(write(peer, "0123456789", 10), 10);
	ck_assert_int_eq(tstream_pending_bytes(s), 10);
	ck_assert_int_eq(read_exact(s, buf, 4), 4);
	ck_assert_int_eq(tstream_pending_bytes(s), 6);
	ck_assert_int_eq(read_exact(s, buf, 6), 6);
	ck_assert_int_eq(tstream_pending_bytes(s), 0);

	ck_assert_int_eq(disconnect(s), 0);
	errno = 0;
	ck_assert_int_eq(tstream_pending_bytes(s), -1);
	ck_assert_int_eq(errno, ENOTCONN);
	close(peer);
}
END_TEST

START_TEST(test_vector_limits)
{
	struct tstream_context *a = NULL, *b = NULL;
	struct iovec *iov = talloc_array(tt_mem, struct iovec, 1025);
	uint8_t *data = talloc_size(tt_mem, 1025);
	uint8_t *got = talloc_zero_size(tt_mem, 1025);
	struct io_result r;
	size_t i;

	ck_assert_int_eq(tstream_unix_socketpair(tt_mem, &a, tt_mem, &b), 0);
	for (i = 0; i < 1025; i++) {
		data[i] = (uint8_t)i;
		iov[i].iov_base = &data[i];
		iov[i].iov_len = 1;
	}

	start_writev(a, iov, 0, &r);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.err, EINVAL);
	start_writev(a, iov, 1025, &r);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.ret, -1);
	ck_assert_int_eq(r.err, EMSGSIZE);
	start_readv(b, iov, 0, &r);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.err, EINVAL);
	start_readv(b, iov, 1025, &r);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.err, EMSGSIZE);
	/* entries that are all empty are an empty vector too */
	start_writev(a, &(struct iovec){.iov_base = data, .iov_len = 0}, 1, &r);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.err, EINVAL);

	/* 1024 is allowed, and fills entry by entry */
	start_writev(a, iov, 1024, &r);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.ret, 1024);
	for (i = 0; i < 1024; i++) {
		iov[i].iov_base = &got[i];
	}
	start_readv(b, iov, 1024, &r);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.ret, 1024);
	ck_assert_int_eq(memcmp(got, data, 1024), 0);
}
END_TEST

START_TEST(test_busy)
{
	struct tstream_context *a = NULL, *b = NULL;
	char buf[4];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct io_result r1, r2, w1, w2;

	ck_assert_int_eq(tstream_unix_socketpair(tt_mem, &a, tt_mem, &b), 0);
	start_readv(b, &iov, 1, &r1);
	start_readv(b, &iov, 1, &r2);
	tt_wait(&r2.done, WAIT_MS);
	ck_assert_int_eq(r2.ret, -1);
	ck_assert_int_eq(r2.err, EBUSY);
	ck_assert(!r1.done);

	/* the first writev is outstanding until its callback ran */
	start_writev(a, &(struct iovec){.iov_base = "abcd", .iov_len = 4}, 1,
		     &w1);
	start_writev(a, &(struct iovec){.iov_base = "efgh", .iov_len = 4}, 1,
		     &w2);
	tt_wait(&w2.done, WAIT_MS);
	ck_assert_int_eq(w2.err, EBUSY);
	tt_wait(&w1.done, WAIT_MS);
	ck_assert_int_eq(w1.ret, 4);
	tt_wait(&r1.done, WAIT_MS);
	ck_assert_int_eq(r1.ret, 4);
	ck_assert_int_eq(memcmp(buf, "abcd", 4), 0);
}
END_TEST

START_TEST(test_peer_close_epipe)
{
	struct tstream_context *s = NULL;
	int peer = stream_and_raw_peer(&s);
	char buf[4];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct io_result r;

	/* bytes sent before the close come first */
	ck_assert_int_eq(write(peer, "xy", 2), 2);
	close(peer);
	ck_assert_int_eq(read_exact(s, buf, 2), 2);
	ck_assert_int_eq(read_exact(s, buf, 1), -EPIPE);
	/* and EPIPE stays */
	ck_assert_int_eq(read_exact(s, buf, 1), -EPIPE);
	talloc_free(s);

	/* a read already waiting when the peer goes */
	peer = stream_and_raw_peer(&s);
	start_readv(s, &iov, 1, &r);
	ck_assert(!tt_loop_until(tt_ev, &r.done, 20));
	ck_assert_int_eq(write(peer, "z", 1), 1);
	ck_assert(!tt_loop_until(tt_ev, &r.done, 20));
	close(peer);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.ret, -1);
	ck_assert_int_eq(r.err, EPIPE);
}
END_TEST

START_TEST(test_readahead_then_eof)
{
	struct tstream_context *s = NULL;
	int peer = stream_and_raw_peer(&s);
	char buf[4];

	/* a 1-byte read takes "bcd" ahead; they still come, then EPIPE */
	ck_assert_int_eq(write(peer, "abcd", 4), 4);
	close(peer);
	ck_assert_int_eq(read_exact(s, buf, 1), 1);
	ck_assert_int_eq(buf[0], 'a');
	ck_assert_int_eq(tstream_pending_bytes(s), 3);
	ck_assert_int_eq(read_exact(s, buf, 2), 2);
	ck_assert_int_eq(memcmp(buf, "bc", 2), 0);
	/* more than is buffered: the rest would come from the socket */
	ck_assert_int_eq(read_exact(s, buf, 2), -EPIPE);
	ck_assert_int_eq(read_exact(s, buf, 1), -EPIPE);
}
END_TEST

/* The read-ahead buffer exists only while it holds bytes. */
START_TEST(test_readahead_released)
{
	struct tstream_context *s = NULL;
	int peer = stream_and_raw_peer(&s);
	char buf[4];
	struct iovec iov = {.iov_base = buf, .iov_len = 1};
	struct io_result r;
	size_t idle;

	/* one read that waits first: the tevent_fd and immediate exist */
	start_readv(s, &iov, 1, &r);
	ck_assert(!tt_loop_until(tt_ev, &r.done, 20));
	ck_assert_int_eq(write(peer, "x", 1), 1);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.ret, 1);
	idle = talloc_total_size(s);
	/* the structs only: no 4 KiB read-ahead buffer in there */
	ck_assert_uint_lt(idle, 1024);

	/* a read waiting on an empty socket holds no buffer */
	start_readv(s, &iov, 1, &r);
	ck_assert(!tt_loop_until(tt_ev, &r.done, 20));
	ck_assert_uint_eq(talloc_total_size(s), idle);

	/* "bcd" went ahead with the "a" of that read and are kept... */
	ck_assert_int_eq(write(peer, "abcd", 4), 4);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.ret, 1);
	ck_assert_int_eq(buf[0], 'a');
	ck_assert_uint_ge(talloc_total_size(s), idle + 3);
	/* ...until the read that drains them */
	ck_assert_int_eq(read_exact(s, buf, 3), 3);
	ck_assert_int_eq(memcmp(buf, "bcd", 3), 0);
	ck_assert_uint_eq(talloc_total_size(s), idle);

	/* a read served at once without read-ahead keeps none either */
	ck_assert_int_eq(write(peer, "ef", 2), 2);
	ck_assert_int_eq(read_exact(s, buf, 2), 2);
	ck_assert_uint_eq(talloc_total_size(s), idle);
	close(peer);
}
END_TEST

/* tstream_wait_readable: data, EOF, and nothing read by the wait. */
START_TEST(test_wait_readable)
{
	struct tstream_context *s = NULL;
	int peer = stream_and_raw_peer(&s);
	struct simple_result w;
	size_t idle;
	char buf[4];

	/* never inside its _send, even with bytes there */
	ck_assert_int_eq(write(peer, "x", 1), 1);
	start_wait(s, &w);
	ck_assert(!w.done);
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.ret, 0);
	ck_assert_int_eq(read_exact(s, buf, 1), 1);
	idle = talloc_total_size(s);

	/* waits on an empty socket, holding no buffer (it even gives
	 * back the immediates of the fast path) */
	start_wait(s, &w);
	ck_assert(!tt_loop_until(tt_ev, &w.done, 50));
	ck_assert_uint_le(talloc_total_size(s), idle);
	ck_assert_uint_lt(idle, 1024);
	ck_assert_int_eq(write(peer, "hi", 2), 2);
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.ret, 0);
	/* the wait consumed nothing */
	ck_assert_int_eq(tstream_pending_bytes(s), 2);
	ck_assert_int_eq(read_exact(s, buf, 2), 2);
	ck_assert_int_eq(memcmp(buf, "hi", 2), 0);

	/* read-ahead bytes: ready at once (from the loop) */
	ck_assert_int_eq(write(peer, "abc", 3), 3);
	ck_assert_int_eq(read_exact(s, buf, 1), 1);
	start_wait(s, &w);
	ck_assert(!w.done);
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.ret, 0);
	ck_assert_int_eq(read_exact(s, buf, 2), 2);
	ck_assert_int_eq(memcmp(buf, "bc", 2), 0);

	/* the end of the stream: ready, the readv says EPIPE */
	start_wait(s, &w);
	ck_assert(!tt_loop_until(tt_ev, &w.done, 20));
	close(peer);
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.ret, 0);
	ck_assert_int_eq(read_exact(s, buf, 1), -EPIPE);
	/* and at once after it */
	start_wait(s, &w);
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.ret, 0);
}
END_TEST

/* A reset ends a wait; ENOTCONN after a disconnect. */
START_TEST(test_wait_readable_errors)
{
	struct tstream_context *c = NULL;
	struct linger lin = {.l_onoff = 1, .l_linger = 0};
	uint16_t port;
	int lfd = tcp_listener(AF_INET, &port);
	struct simple_result w;
	int peer;
	char buf[4];

	ck_assert_int_eq(tcp_connect(inet("ipv4", NULL, 0),
				     inet("ipv4", "127.0.0.1", port), &c),
			 0);
	peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(peer, 0);
	close(lfd);

	start_wait(c, &w);
	ck_assert(!tt_loop_until(tt_ev, &w.done, 20));
	ck_assert_int_eq(
	    setsockopt(peer, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin)), 0);
	close(peer);
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.ret, 0);
	ck_assert_int_eq(read_exact(c, buf, 1), -ECONNRESET);
	/* a known error: ready at once */
	start_wait(c, &w);
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.ret, 0);

	ck_assert_int_eq(disconnect(c), 0);
	start_wait(c, &w);
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.ret, -1);
	ck_assert_int_eq(w.err, ENOTCONN);
}
END_TEST

/* The wait holds the read slot; a write goes on next to it. */
START_TEST(test_wait_readable_busy)
{
	struct tstream_context *a = NULL, *b = NULL;
	char buf[4];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct simple_result w, w2, d;
	struct io_result r;
	struct tevent_req *req;

	ck_assert_int_eq(tstream_unix_socketpair(tt_mem, &a, tt_mem, &b), 0);
	start_wait(b, &w);
	start_wait(b, &w2);
	tt_wait(&w2.done, WAIT_MS);
	ck_assert_int_eq(w2.ret, -1);
	ck_assert_int_eq(w2.err, EBUSY);
	start_readv(b, &iov, 1, &r);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.err, EBUSY);
	memset(&d, 0, sizeof(d));
	req = tstream_disconnect_send(tt_mem, tt_ev, b);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, disconnect_done, &d);
	tt_wait(&d.done, WAIT_MS);
	ck_assert_int_eq(d.err, EBUSY);
	/* b writes while it waits to read */
	ck_assert_int_eq(write_all(b, "ping", 4), 4);
	ck_assert_int_eq(read_exact(a, buf, 4), 4);
	ck_assert(!w.done);
	ck_assert_int_eq(write_all(a, "pong", 4), 4);
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.ret, 0);

	/* a readv outstanding: a wait is EBUSY */
	start_readv(b, &iov, 1, &r);
	start_wait(b, &w);
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.err, EBUSY);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.ret, 4);
	ck_assert_int_eq(memcmp(buf, "pong", 4), 0);
}
END_TEST

/* Freeing a waiting request, or its stream, is safe. */
START_TEST(test_wait_readable_free)
{
	struct tstream_context *a = NULL, *b = NULL;
	struct simple_result w;
	struct tevent_req *req;
	char buf[4];

	ck_assert_int_eq(tstream_unix_socketpair(tt_mem, &a, tt_mem, &b), 0);
	req = start_wait(b, &w);
	ck_assert(!tt_loop_until(tt_ev, &w.done, 20));
	talloc_free(req);
	/* the slot is free, and readability finds nobody waiting */
	ck_assert_int_eq(write_all(a, "abcd", 4), 4);
	ck_assert(!tt_loop_until(tt_ev, &w.done, 20));
	ck_assert_int_eq(read_exact(b, buf, 4), 4);

	/* freed after it was scheduled to finish at once */
	ck_assert_int_eq(write_all(a, "efgh", 4), 4);
	ck_assert_int_eq(read_exact(b, buf, 1), 1);
	req = start_wait(b, &w);
	talloc_free(req);
	ck_assert(!tt_loop_until(tt_ev, &w.done, 20));
	ck_assert_int_eq(read_exact(b, buf, 3), 3);
	ck_assert_int_eq(memcmp(buf, "fgh", 3), 0);

	/* the stream freed under a waiting request: ENOTCONN */
	start_wait(b, &w);
	ck_assert(!tt_loop_until(tt_ev, &w.done, 20));
	talloc_free(b);
	ck_assert(!w.done);
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.ret, -1);
	ck_assert_int_eq(w.err, ENOTCONN);
	talloc_free(a);
}
END_TEST

struct readable_res {
	bool done;
	int calls;
	struct tstream_context *stream;
	bool free_stream; /* the handler frees the stream */
};

static void on_readable(struct tstream_context *stream, void *private_data)
{
	struct readable_res *r = private_data;

	r->calls++;
	r->done = true;
	r->stream = stream;
	if (r->free_stream) {
		talloc_free(stream);
	}
}

static void set_readable(struct tstream_context *s, struct readable_res *r)
{
	*r = (struct readable_res){0};
	ck_assert_int_eq(tstream_set_readable_handler(s, tt_ev, on_readable, r),
			 0);
	/* never from inside the set */
	ck_assert_int_eq(r->calls, 0);
}

static void assert_set_readable_fails(struct tstream_context *s, int err)
{
	struct readable_res r = {0};

	errno = 0;
	ck_assert_int_eq(
	    tstream_set_readable_handler(s, tt_ev, on_readable, &r), -1);
	ck_assert_int_eq(errno, err);
	ck_assert(!tt_loop_until(tt_ev, &r.done, 10));
}

/* The readable handler: data, read-ahead, EOF; one shot, no allocation. */
START_TEST(test_readable_handler)
{
	struct tstream_context *s = NULL;
	int peer = stream_and_raw_peer(&s);
	struct readable_res h;
	size_t idle;
	char buf[4];

	/* bytes there already: from the loop, once */
	ck_assert_int_eq(write(peer, "x", 1), 1);
	set_readable(s, &h);
	tt_wait(&h.done, WAIT_MS);
	ck_assert_ptr_eq(h.stream, s);
	h.done = false;
	ck_assert(!tt_loop_until(tt_ev, &h.done, 30));
	ck_assert_int_eq(h.calls, 1);
	ck_assert_int_eq(read_exact(s, buf, 1), 1);
	idle = talloc_total_size(s);
	ck_assert_uint_lt(idle, 1024);

	/* waits on an empty socket without allocating anything */
	set_readable(s, &h);
	ck_assert_uint_le(talloc_total_size(s), idle);
	ck_assert(!tt_loop_until(tt_ev, &h.done, 50));
	ck_assert_int_eq(write(peer, "hi", 2), 2);
	tt_wait(&h.done, WAIT_MS);
	/* one shot, and it read nothing */
	h.done = false;
	ck_assert(!tt_loop_until(tt_ev, &h.done, 30));
	ck_assert_int_eq(h.calls, 1);
	ck_assert_int_eq(tstream_pending_bytes(s), 2);
	ck_assert_int_eq(read_exact(s, buf, 2), 2);
	ck_assert_int_eq(memcmp(buf, "hi", 2), 0);

	/* read-ahead bytes: ready at once (from the loop) */
	ck_assert_int_eq(write(peer, "abc", 3), 3);
	ck_assert_int_eq(read_exact(s, buf, 1), 1);
	set_readable(s, &h);
	tt_wait(&h.done, WAIT_MS);
	ck_assert_int_eq(read_exact(s, buf, 2), 2);
	ck_assert_int_eq(memcmp(buf, "bc", 2), 0);

	/* the end of the stream: called, the readv says EPIPE */
	set_readable(s, &h);
	ck_assert(!tt_loop_until(tt_ev, &h.done, 20));
	close(peer);
	tt_wait(&h.done, WAIT_MS);
	ck_assert_int_eq(read_exact(s, buf, 1), -EPIPE);
	/* and at once after it */
	set_readable(s, &h);
	tt_wait(&h.done, WAIT_MS);
	ck_assert_int_eq(h.calls, 1);
}
END_TEST

/* A reset calls it; ENOTCONN after a disconnect. */
START_TEST(test_readable_handler_errors)
{
	struct tstream_context *c = NULL;
	struct linger lin = {.l_onoff = 1, .l_linger = 0};
	uint16_t port;
	int lfd = tcp_listener(AF_INET, &port);
	struct readable_res h;
	int peer;
	char buf[4];

	ck_assert_int_eq(tcp_connect(inet("ipv4", NULL, 0),
				     inet("ipv4", "127.0.0.1", port), &c),
			 0);
	peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(peer, 0);
	close(lfd);

	set_readable(c, &h);
	ck_assert(!tt_loop_until(tt_ev, &h.done, 20));
	ck_assert_int_eq(
	    setsockopt(peer, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin)), 0);
	close(peer);
	tt_wait(&h.done, WAIT_MS);
	ck_assert_int_eq(read_exact(c, buf, 1), -ECONNRESET);
	/* a known error: at once, from the loop */
	set_readable(c, &h);
	tt_wait(&h.done, WAIT_MS);

	ck_assert_int_eq(disconnect(c), 0);
	assert_set_readable_fails(c, ENOTCONN);
}
END_TEST

/* EBUSY next to a readv or a wait; a readv, disconnect or clear end it. */
START_TEST(test_readable_handler_busy)
{
	struct tstream_context *a = NULL, *b = NULL;
	char buf[4];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct readable_res h;
	struct simple_result w;
	struct io_result r;

	ck_assert_int_eq(tstream_unix_socketpair(tt_mem, &a, tt_mem, &b), 0);
	start_readv(b, &iov, 1, &r);
	assert_set_readable_fails(b, EBUSY);
	ck_assert_int_eq(write_all(a, "abcd", 4), 4);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.ret, 4);
	start_wait(b, &w);
	assert_set_readable_fails(b, EBUSY);
	ck_assert_int_eq(write_all(a, "efgh", 4), 4);
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.ret, 0);
	ck_assert_int_eq(read_exact(b, buf, 4), 4);

	/* b writes while the handler waits: no call for that */
	set_readable(b, &h);
	ck_assert_int_eq(write_all(b, "ping", 4), 4);
	ck_assert_int_eq(read_exact(a, buf, 4), 4);
	ck_assert(!tt_loop_until(tt_ev, &h.done, 20));

	/* a readv takes over: the handler is never called */
	start_readv(b, &iov, 1, &r);
	ck_assert_int_eq(write_all(a, "pong", 4), 4);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.ret, 4);
	ck_assert(!tt_loop_until(tt_ev, &h.done, 20));

	/* cleared: the bytes find nobody */
	set_readable(b, &h);
	ck_assert_int_eq(tstream_set_readable_handler(b, NULL, NULL, NULL), 0);
	ck_assert_int_eq(write_all(a, "abcd", 4), 4);
	ck_assert(!tt_loop_until(tt_ev, &h.done, 30));
	/* cleared while its call was scheduled (read-ahead there) */
	ck_assert_int_eq(read_exact(b, buf, 1), 1);
	set_readable(b, &h);
	ck_assert_int_eq(tstream_set_readable_handler(b, NULL, NULL, NULL), 0);
	ck_assert(!tt_loop_until(tt_ev, &h.done, 30));
	ck_assert_int_eq(read_exact(b, buf, 3), 3);
	ck_assert_int_eq(memcmp(buf, "bcd", 3), 0);

	/* a disconnect clears it */
	set_readable(b, &h);
	ck_assert_int_eq(disconnect(b), 0);
	ck_assert_int_eq(write_all(a, "efgh", 4), -EPIPE);
	ck_assert(!tt_loop_until(tt_ev, &h.done, 30));
	ck_assert_int_eq(h.calls, 0);
}
END_TEST

/* Freeing the stream while it is set, or from the handler, is safe. */
START_TEST(test_readable_handler_free)
{
	struct tstream_context *a = NULL, *b = NULL;
	struct readable_res h;
	char buf[4];

	ck_assert_int_eq(tstream_unix_socketpair(tt_mem, &a, tt_mem, &b), 0);
	set_readable(b, &h);
	talloc_free(b);
	ck_assert_int_eq(write_all(a, "abcd", 4), -EPIPE);
	ck_assert(!tt_loop_until(tt_ev, &h.done, 30));
	talloc_free(a);

	/* freed with its call scheduled */
	ck_assert_int_eq(tstream_unix_socketpair(tt_mem, &a, tt_mem, &b), 0);
	ck_assert_int_eq(write_all(a, "abcd", 4), 4);
	ck_assert_int_eq(read_exact(b, buf, 1), 1);
	set_readable(b, &h);
	talloc_free(b);
	ck_assert(!tt_loop_until(tt_ev, &h.done, 30));

	/* the handler frees the stream */
	ck_assert_int_eq(tstream_unix_socketpair(tt_mem, &a, tt_mem, &b), 0);
	set_readable(b, &h);
	h.free_stream = true;
	ck_assert_int_eq(write_all(a, "abcd", 4), 4);
	tt_wait(&h.done, WAIT_MS);
	ck_assert_int_eq(h.calls, 1);
	talloc_free(a);
}
END_TEST

START_TEST(test_own_disconnect)
{
	struct tstream_context *s = NULL;
	int peer = stream_and_raw_peer(&s);
	char buf[4];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct io_result r;

	/* not while a read is outstanding */
	start_readv(s, &iov, 1, &r);
	ck_assert_int_eq(disconnect(s), -EBUSY);
	ck_assert(!r.done);
	ck_assert_int_eq(write(peer, "abcd", 4), 4);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.ret, 4);

	ck_assert_int_eq(disconnect(s), 0);
	/* the fd is closed: the peer reads end of stream */
	ck_assert_int_eq(read(peer, buf, sizeof(buf)), 0);

	ck_assert_int_eq(read_exact(s, buf, 1), -ENOTCONN);
	ck_assert_int_eq(write_all(s, "a", 1), -ENOTCONN);
	ck_assert_int_eq(disconnect(s), -ENOTCONN);
	ck_assert_int_eq(half_close(s), -ENOTCONN);
	close(peer);
}
END_TEST

START_TEST(test_no_sigpipe)
{
	struct tstream_context *s = NULL;
	struct sigaction old, dfl = {.sa_handler = SIG_DFL};
	uint16_t port;
	int lfd;
	int peer;
	int pfd[2];
	int ret;
	int i;

	/* at its default disposition SIGPIPE would kill the test */
	ck_assert_int_eq(sigaction(SIGPIPE, &dfl, &old), 0);

	peer = stream_and_raw_peer(&s);
	close(peer);
	ck_assert_int_eq(write_all(s, "abc", 3), -EPIPE);
	ck_assert_int_eq(write_all(s, "abc", 3), -EPIPE);
	talloc_free(s);

	/* TCP: the first writes may still be taken before the RST */
	lfd = tcp_listener(AF_INET, &port);
	ck_assert_int_eq(tcp_connect(inet("ipv4", NULL, 0),
				     inet("ipv4", "127.0.0.1", port), &s),
			 0);
	peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(peer, 0);
	close(peer);
	close(lfd);
	for (i = 0; i < 100; i++) {
		ret = write_all(s, "abc", 3);
		if (ret < 0) {
			break;
		}
		usleep(1000);
	}
	ck_assert_msg(ret == -EPIPE || ret == -ECONNRESET,
		      "write to a closed TCP peer: %d", ret);
	talloc_free(s);

	/* not a socket: a pipe whose reader is gone */
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, pfd[1], &s), 0);
	close(pfd[0]);
	ck_assert_int_eq(write_all(s, "abc", 3), -EPIPE);
	/* and no half-close on a pipe */
	ck_assert_int_eq(half_close(s), -EOPNOTSUPP);
	talloc_free(s);

	sigaction(SIGPIPE, &old, NULL);
}
END_TEST

static void half_close_both_ways(struct tstream_context *a,
				 struct tstream_context *b)
{
	char buf[8];

	ck_assert_int_eq(write_all(a, "last", 4), 4);
	ck_assert_int_eq(half_close(a), 0);
	/* b reads what came before, then end of stream */
	ck_assert_int_eq(read_exact(b, buf, 4), 4);
	ck_assert_int_eq(memcmp(buf, "last", 4), 0);
	ck_assert_int_eq(read_exact(b, buf, 1), -EPIPE);
	/* the other direction still flows */
	ck_assert_int_eq(write_all(b, "reply", 5), 5);
	ck_assert_int_eq(read_exact(a, buf, 5), 5);
	ck_assert_int_eq(memcmp(buf, "reply", 5), 0);
	ck_assert_int_eq(write_all(b, "more", 4), 4);
	ck_assert_int_eq(read_exact(a, buf, 4), 4);
	/* a's writing side is finished */
	ck_assert_int_eq(write_all(a, "x", 1), -EPIPE);
	/* shutting it again is harmless */
	ck_assert_int_eq(half_close(a), 0);
}

START_TEST(test_shutdown_half_close)
{
	struct tstream_context *a = NULL, *b = NULL;
	uint16_t port;
	int lfd;

	ck_assert_int_eq(tstream_unix_socketpair(tt_mem, &a, tt_mem, &b), 0);
	half_close_both_ways(a, b);
	talloc_free(a);
	talloc_free(b);

	lfd = tcp_listener(AF_INET6, &port);
	ck_assert_int_eq(
	    tcp_connect(inet("ipv6", NULL, 0), inet("ipv6", "::1", port), &a),
	    0);
	b = accept_stream(lfd, NULL);
	half_close_both_ways(a, b);
	close(lfd);
}
END_TEST

START_TEST(test_reset_is_sticky)
{
	struct tstream_context *c = NULL;
	struct linger lin = {.l_onoff = 1, .l_linger = 0};
	uint16_t port;
	int lfd = tcp_listener(AF_INET, &port);
	int peer;
	char buf[4];

	ck_assert_int_eq(tcp_connect(inet("ipv4", NULL, 0),
				     inet("ipv4", "127.0.0.1", port), &c),
			 0);
	peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(peer, 0);
	/* close with linger 0: the kernel sends a RST */
	ck_assert_int_eq(
	    setsockopt(peer, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin)), 0);
	close(peer);
	close(lfd);

	ck_assert_int_eq(read_exact(c, buf, 1), -ECONNRESET);
	/* a reset breaks both directions, for good */
	ck_assert_int_eq(write_all(c, "abc", 3), -ECONNRESET);
	ck_assert_int_eq(read_exact(c, buf, 1), -ECONNRESET);
	errno = 0;
	ck_assert_int_eq(tstream_pending_bytes(c), -1);
	ck_assert_int_eq(errno, ECONNRESET);
}
END_TEST

START_TEST(test_reset_fails_waiting_writer)
{
	struct tstream_context *c = NULL;
	struct linger lin = {.l_onoff = 1, .l_linger = 0};
	uint8_t *big = talloc_zero_size(tt_mem, 8 << 20);
	uint16_t port;
	int lfd = tcp_listener(AF_INET, &port);
	struct io_result w;
	int peer;
	char buf[8];

	ck_assert_int_eq(tcp_connect(inet("ipv4", NULL, 0),
				     inet("ipv4", "127.0.0.1", port), &c),
			 0);
	peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(peer, 0);
	close(lfd);

	/* bytes nobody reads yet, and a write that cannot finish */
	ck_assert_int_eq(write(peer, "hello", 5), 5);
	start_writev(c, &(struct iovec){.iov_base = big, .iov_len = 8 << 20}, 1,
		     &w);
	ck_assert(!tt_loop_until(tt_ev, &w.done, 50));

	/* the peer resets the connection */
	ck_assert_int_eq(
	    setsockopt(peer, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin)), 0);
	close(peer);
	tt_loop_until(tt_ev, &w.done, 50);

	/* what arrived first is still delivered, then the reset, which
	 * also ends the waiting write if it has not ended already */
	ck_assert_int_eq(read_exact(c, buf, 5), 5);
	ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
	ck_assert_int_eq(read_exact(c, buf, 1), -ECONNRESET);
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.ret, -1);
	ck_assert_int_eq(w.err, ECONNRESET);
}
END_TEST

struct bulk {
	struct tstream_context *s;
	uint8_t *buf;
	size_t chunk;
	size_t total;
	size_t done_bytes;
	bool done;
	int err;
};

static void bulk_write_next(struct bulk *w);

static void bulk_write_done(struct tevent_req *req)
{
	struct bulk *w = tevent_req_callback_data_void(req);
	int ret = tstream_writev_recv(req, &w->err);

	TALLOC_FREE(req);
	if (ret == -1) {
		w->done = true;
		return;
	}
	w->done_bytes += (size_t)ret;
	bulk_write_next(w);
}

static void bulk_write_next(struct bulk *w)
{
	/* two entries per write: exercises partial writes across them */
	size_t off = w->done_bytes % 65536;
	size_t n = w->chunk;
	struct iovec iov[2];
	struct tevent_req *req;

	if (w->done_bytes >= w->total) {
		w->done = true;
		return;
	}
	if (n > w->total - w->done_bytes) {
		n = w->total - w->done_bytes;
	}
	iov[0].iov_base = w->buf + off;
	iov[0].iov_len = n / 2;
	iov[1].iov_base = w->buf + off + n / 2;
	iov[1].iov_len = n - n / 2;
	req = tstream_writev_send(tt_mem, tt_ev, w->s, iov, 2);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, bulk_write_done, w);
}

static void bulk_read_next(struct bulk *r);

static void bulk_read_done(struct tevent_req *req)
{
	struct bulk *r = tevent_req_callback_data_void(req);
	int ret = tstream_readv_recv(req, &r->err);
	size_t i;

	TALLOC_FREE(req);
	if (ret == -1) {
		r->done = true;
		return;
	}
	for (i = 0; i < (size_t)ret; i++) {
		size_t pos = r->done_bytes + i;

		if (r->buf[i] != (uint8_t)((pos % 65536) * 13)) {
			r->err = EILSEQ;
			r->done = true;
			return;
		}
	}
	r->done_bytes += (size_t)ret;
	bulk_read_next(r);
}

static void bulk_read_next(struct bulk *r)
{
	size_t n = r->chunk;
	struct iovec iov;
	struct tevent_req *req;

	if (r->done_bytes >= r->total) {
		r->done = true;
		return;
	}
	if (n > r->total - r->done_bytes) {
		n = r->total - r->done_bytes;
	}
	iov.iov_base = r->buf;
	iov.iov_len = n;
	req = tstream_readv_send(tt_mem, tt_ev, r->s, &iov, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, bulk_read_done, r);
}

START_TEST(test_bulk_transfer)
{
	struct bulk w = {.chunk = 65536, .total = 8 << 20};
	/* odd read size: never aligned with the writes */
	struct bulk r = {.chunk = 12345, .total = 8 << 20};
	size_t i;

	ck_assert_int_eq(tstream_unix_socketpair(tt_mem, &w.s, tt_mem, &r.s),
			 0);
	w.buf = talloc_size(tt_mem, 2 * 65536);
	for (i = 0; i < 2 * 65536; i++) {
		w.buf[i] = (uint8_t)((i % 65536) * 13);
	}
	r.buf = talloc_size(tt_mem, r.chunk);
	bulk_write_next(&w);
	bulk_read_next(&r);
	tt_wait(&r.done, 20000);
	ck_assert_msg(r.err == 0, "reader: %s", strerror(r.err));
	ck_assert(w.done);
	ck_assert_int_eq(w.err, 0);
	ck_assert_uint_eq(r.done_bytes, 8 << 20);
	ck_assert_uint_eq(w.done_bytes, 8 << 20);
}
END_TEST

static void bulk_init_writer(struct bulk *w,
			     struct tstream_context *s,
			     size_t total)
{
	size_t i;

	w->s = s;
	w->chunk = 65536;
	w->total = total;
	w->buf = talloc_size(tt_mem, 2 * 65536);
	for (i = 0; i < 2 * 65536; i++) {
		w->buf[i] = (uint8_t)((i % 65536) * 13);
	}
}

static void bulk_init_reader(struct bulk *r,
			     struct tstream_context *s,
			     size_t total)
{
	r->s = s;
	r->chunk = 12345;
	r->total = total;
	r->buf = talloc_size(tt_mem, r->chunk);
}

/* Both directions at full speed at once, as a relay does. */
static void full_duplex(struct tstream_context *a, struct tstream_context *b)
{
	const size_t total = 4 << 20;
	struct bulk wa = {0}, ra = {0}, wb = {0}, rb = {0};

	bulk_init_writer(&wa, a, total);
	bulk_init_writer(&wb, b, total);
	bulk_init_reader(&ra, a, total);
	bulk_init_reader(&rb, b, total);
	bulk_write_next(&wa);
	bulk_write_next(&wb);
	bulk_read_next(&ra);
	bulk_read_next(&rb);
	tt_wait(&ra.done, 20000);
	tt_wait(&rb.done, 20000);
	tt_wait(&wa.done, 20000);
	tt_wait(&wb.done, 20000);
	ck_assert_msg(ra.err == 0 && rb.err == 0, "readers: %s / %s",
		      strerror(ra.err), strerror(rb.err));
	ck_assert_int_eq(wa.err, 0);
	ck_assert_int_eq(wb.err, 0);
	ck_assert_uint_eq(ra.done_bytes, total);
	ck_assert_uint_eq(rb.done_bytes, total);
}

START_TEST(test_full_duplex)
{
	struct tstream_context *a = NULL, *b = NULL;
	uint16_t port;
	int lfd;

	ck_assert_int_eq(tstream_unix_socketpair(tt_mem, &a, tt_mem, &b), 0);
	full_duplex(a, b);
	talloc_free(a);
	talloc_free(b);

	lfd = tcp_listener(AF_INET, &port);
	ck_assert_int_eq(tcp_connect(inet("ipv4", NULL, 0),
				     inet("ipv4", "127.0.0.1", port), &a),
			 0);
	b = accept_stream(lfd, NULL);
	full_duplex(a, b);
	close(lfd);
}
END_TEST

static void readv_on(struct tevent_context *ev,
		     struct tstream_context *s,
		     void *buf,
		     size_t len,
		     struct io_result *r)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct tevent_req *req;

	memset(r, 0, sizeof(*r));
	req = tstream_readv_send(tt_mem, ev, s, &iov, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, readv_done, r);
}

START_TEST(test_event_context_replaced)
{
	struct tstream_context *s = NULL;
	int peer = stream_and_raw_peer(&s);
	struct tevent_context *ev;
	struct io_result r;
	char buf[4];
	int i;

	/*
	 * A stream outlives the event context it waited on; the next one
	 * (often at the very same address) must still wake it.
	 */
	for (i = 0; i < 3; i++) {
		ev = tevent_context_init(tt_mem);
		ck_assert_ptr_nonnull(ev);
		readv_on(ev, s, buf, 4, &r);
		ck_assert(!tt_loop_until(ev, &r.done, 20));
		ck_assert_int_eq(write(peer, "wxyz", 4), 4);
		ck_assert(tt_loop_until(ev, &r.done, WAIT_MS));
		ck_assert_int_eq(r.ret, 4);
		talloc_free(ev);
	}
	close(peer);
}
END_TEST

/*
 * An idle stream waiting with a readable handler keeps one event-context
 * guard (the BSD stream's, for its tevent_fd), not the generic layer's
 * too; and either may go first, the stream or its event context.
 */
START_TEST(test_readable_handler_guards)
{
	struct tstream_context *s = NULL;
	int peer = stream_and_raw_peer(&s);
	struct tevent_context *ev;
	struct readable_res h = {0};
	struct io_result r;
	size_t busy, idle;
	char buf[4];
	int i;

	for (i = 0; i < 3; i++) {
		ev = tevent_context_init(tt_mem);
		ck_assert_ptr_nonnull(ev);
		readv_on(ev, s, buf, 4, &r);
		ck_assert_int_eq(write(peer, "wxyz", 4), 4);
		ck_assert(tt_loop_until(ev, &r.done, WAIT_MS));
		ck_assert_int_eq(r.ret, 4);
		/* a guard of each layer (generic, BSD) under ev */
		busy = talloc_total_blocks(ev);

		h = (struct readable_res){0};
		ck_assert_int_eq(
		    tstream_set_readable_handler(s, ev, on_readable, &h), 0);
		idle = talloc_total_blocks(ev);
		ck_assert_msg(idle + 1 == busy,
			      "idle stream: %zu blocks under ev, busy %zu",
			      idle, busy);
		ck_assert(!tt_loop_until(ev, &h.done, 20));

		/* the context goes first, the handler still set */
		talloc_free(ev);
	}

	/* a new context (often at the same address) still wakes it */
	ev = tevent_context_init(tt_mem);
	ck_assert_ptr_nonnull(ev);
	h = (struct readable_res){0};
	ck_assert_int_eq(tstream_set_readable_handler(s, ev, on_readable, &h),
			 0);
	ck_assert_int_eq(write(peer, "ab", 2), 2);
	ck_assert(tt_loop_until(ev, &h.done, WAIT_MS));
	ck_assert_int_eq(h.calls, 1);
	readv_on(ev, s, buf, 2, &r);
	ck_assert(tt_loop_until(ev, &r.done, WAIT_MS));
	ck_assert_int_eq(r.ret, 2);

	/* a readv outstanding, its context freed, then the stream */
	readv_on(ev, s, buf, 4, &r);
	ck_assert(!tt_loop_until(ev, &r.done, 20));
	talloc_free(ev);
	talloc_free(s);
	ck_assert(!r.done);
	close(peer);
}
END_TEST

/*
 * A write to a stream whose reads wait with a readable handler (the
 * relay's backend after it forwarded a request) leaves no event-context
 * guard of the generic layer behind once it ended: an idle connection
 * kept one (~0.1 KiB) per stream written to since it went idle.
 */
START_TEST(test_readable_handler_write_keeps_no_guard)
{
	struct tstream_context *s = NULL;
	int peer = stream_and_raw_peer(&s);
	struct readable_res h = {0};
	size_t idle;
	char buf[4];

	ck_assert_int_eq(
	    tstream_set_readable_handler(s, tt_ev, on_readable, &h), 0);
	idle = talloc_total_blocks(tt_ev);
	ck_assert_int_eq(write_all(s, "abc", 3), 3);
	ck_assert_int_eq(read(peer, buf, sizeof(buf)), 3);
	ck_assert_msg(talloc_total_blocks(tt_ev) == idle,
		      "after a write: %zu blocks under ev, idle %zu",
		      talloc_total_blocks(tt_ev), idle);
	ck_assert(!h.done);

	/* the handler still fires, and the stream still reads */
	ck_assert_int_eq(write(peer, "de", 2), 2);
	tt_wait(&h.done, WAIT_MS);
	ck_assert_int_eq(read_exact(s, buf, 2), 2);
	ck_assert_int_eq(memcmp(buf, "de", 2), 0);
	talloc_free(s);
	close(peer);
}
END_TEST

/*
 * What an idle stream waiting with a readable handler costs, in talloc
 * chunks, its own and those under its event context: the generic and the
 * BSD struct, and the tevent_fd, made on the context so that it doubles
 * as the guard telling the stream its context is gone. A guard chunk of
 * its own (and the fde under the stream) was one more, ~0.1 KiB per
 * idle stream.
 */
START_TEST(test_readable_handler_idle_chunks)
{
	struct tstream_context *s = NULL;
	int peer = stream_and_raw_peer(&s);
	struct tevent_context *ev = tevent_context_init(tt_mem);
	struct readable_res h = {0};
	size_t ev_blocks, chunks;
	char buf[2];

	ck_assert_ptr_nonnull(ev);
	ev_blocks = talloc_total_blocks(ev);
	ck_assert_int_eq(tstream_set_readable_handler(s, ev, on_readable, &h),
			 0);
	chunks = talloc_total_blocks(s) + talloc_total_blocks(ev) - ev_blocks;
	ck_assert_msg(chunks == 3, "idle stream: %zu chunks", chunks);

	ck_assert_int_eq(write(peer, "ab", 2), 2);
	ck_assert(tt_loop_until(ev, &h.done, WAIT_MS));
	ck_assert_int_eq(h.calls, 1);
	talloc_free(ev);
	/* the stream outlives its context, and works on the next one */
	ck_assert_int_eq(read_exact(s, buf, 2), 2);
	ck_assert_int_eq(memcmp(buf, "ab", 2), 0);
	talloc_free(s);
	close(peer);
}
END_TEST

START_TEST(test_free_with_outstanding)
{
	struct tstream_context *a = NULL, *b = NULL;
	char buf[4];
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	uint8_t *big = talloc_zero_size(tt_mem, 4 << 20);
	struct io_result r, w;

	ck_assert_int_eq(tstream_unix_socketpair(tt_mem, &a, tt_mem, &b), 0);

	start_readv(b, &iov, 1, &r);
	ck_assert(!tt_loop_until(tt_ev, &r.done, 20));
	talloc_free(b);
	ck_assert(!r.done);
	tt_wait(&r.done, WAIT_MS);
	ck_assert_int_eq(r.err, ENOTCONN);

	/* a write that cannot finish: nobody reads 4 MiB */
	ck_assert_int_eq(tstream_unix_socketpair(tt_mem, &b, tt_mem, &a), 0);
	start_writev(a, &(struct iovec){.iov_base = big, .iov_len = 4 << 20}, 1,
		     &w);
	ck_assert(!tt_loop_until(tt_ev, &w.done, 20));
	talloc_free(a);
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.err, ENOTCONN);
	talloc_free(b);
}
END_TEST

static Suite *tsocket_stream_suite(void)
{
	Suite *s = suite_create("tsocket_stream");
	TCase *tc;

	tc = tt_tcase(s, "tcp", 30);
	tcase_add_test(tc, test_tcp4_connect);
	tcase_add_test(tc, test_tcp6_connect);
	tcase_add_test(tc, test_tcp_bound_local);
	tcase_add_test(tc, test_tcp_refused);

	tc = tt_tcase(s, "unix", 30);
	tcase_add_test(tc, test_unix_connect);
	tcase_add_test(tc, test_unix_connect_errors);
	tcase_add_test(tc, test_socketpair);
	tcase_add_test(tc, test_existing_socket_ownership);
	tcase_add_test(tc, test_set_nodelay);
	tcase_add_test(tc, test_reset);

	tc = tt_tcase(s, "readv", 30);
	tcase_add_test(tc, test_readv_piecemeal);
	tcase_add_test(tc, test_pending_bytes);
	tcase_add_test(tc, test_readahead_then_eof);
	tcase_add_test(tc, test_readahead_released);
	tcase_add_test(tc, test_vector_limits);
	tcase_add_test(tc, test_busy);
	tcase_add_test(tc, test_bulk_transfer);
	tcase_add_test(tc, test_full_duplex);

	tc = tt_tcase(s, "wait_readable", 30);
	tcase_add_test(tc, test_wait_readable);
	tcase_add_test(tc, test_wait_readable_errors);
	tcase_add_test(tc, test_wait_readable_busy);
	tcase_add_test(tc, test_wait_readable_free);
	tcase_add_test(tc, test_readable_handler);
	tcase_add_test(tc, test_readable_handler_errors);
	tcase_add_test(tc, test_readable_handler_busy);
	tcase_add_test(tc, test_readable_handler_free);
	tcase_add_test(tc, test_readable_handler_guards);
	tcase_add_test(tc, test_readable_handler_write_keeps_no_guard);
	tcase_add_test(tc, test_readable_handler_idle_chunks);

	tc = tt_tcase(s, "close", 30);
	tcase_add_test(tc, test_peer_close_epipe);
	tcase_add_test(tc, test_own_disconnect);
	tcase_add_test(tc, test_no_sigpipe);
	tcase_add_test(tc, test_shutdown_half_close);
	tcase_add_test(tc, test_reset_is_sticky);
	tcase_add_test(tc, test_reset_fails_waiting_writer);
	tcase_add_test(tc, test_free_with_outstanding);
	tcase_add_test(tc, test_event_context_replaced);

	return s;
}

int main(void)
{
	return tt_run_suite(tsocket_stream_suite());
}
