/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of gateway/util/listen_socket.c: TCP sockets (a picked port,
 * SO_REUSEPORT sharing), unix sockets (a path too long for sockaddr_un
 * refused without touching the file system, stale files replaced, live
 * sockets and other files left alone, the file removed on free only while
 * it is still ours).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <check.h>
#include <talloc.h>

#include "tt.h"
#include "listen_socket.h"

/* A connect() to a unix path: 0, or the errno. */
static int unix_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd, ret;

	ck_assert_uint_lt(strlen(path), sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ne(fd, -1);
	ret =
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0 ? 0 : errno;
	close(fd);
	return ret;
}

/* What a crashed daemon leaves: a socket file with no socket behind it. */
static void make_stale(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ne(fd, -1);
	memcpy(sun.sun_path, path, strlen(path));
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

START_TEST(test_tcp)
{
	struct tsgate_listen_socket *a = NULL, *b = NULL;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	const char *step = NULL;
	uint16_t port;
	int fd, flags;

	ck_assert_int_eq(
	    tsgate_listen_socket_tcp(tt_mem, "127.0.0.1", 0, 0, 8, &a, &step),
	    0);
	port = tsgate_listen_socket_port(a);
	ck_assert_uint_ne(port, 0);
	flags = fcntl(tsgate_listen_socket_fd(a), F_GETFL);
	ck_assert(flags & O_NONBLOCK);

	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	close(fd);

	/* the port is taken: said so, with the failing call */
	ck_assert_int_eq(tsgate_listen_socket_tcp(tt_mem, "127.0.0.1", port, 0,
						  8, &b, &step),
			 EADDRINUSE);
	ck_assert_str_eq(step, "bind");
	ck_assert_ptr_null(b);
	ck_assert_int_eq(
	    tsgate_listen_socket_tcp(tt_mem, "not-an-ip", 0, 0, 8, &b, &step),
	    EINVAL);
	talloc_free(a);
}
END_TEST

START_TEST(test_tcp_reuseport)
{
	struct tsgate_listen_socket *a = NULL, *b = NULL;
	uint16_t port;

	ck_assert_int_eq(tsgate_listen_socket_tcp(
			     tt_mem, "127.0.0.1", 0,
			     TSGATE_LISTEN_SOCKET_REUSEPORT, 8, &a, NULL),
			 0);
	port = tsgate_listen_socket_port(a);
	/* workers share one port */
	ck_assert_int_eq(tsgate_listen_socket_tcp(
			     tt_mem, "127.0.0.1", port,
			     TSGATE_LISTEN_SOCKET_REUSEPORT, 8, &b, NULL),
			 0);
	ck_assert_uint_eq(tsgate_listen_socket_port(b), port);
	talloc_free(b);
	talloc_free(a);
}
END_TEST

/* Connect to the listener on port and accept: the accepted socket. */
static int accepted(const struct tsgate_listen_socket *ls, int *client)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	int fd = -1;
	int i;

	sin.sin_port = htons(tsgate_listen_socket_port(ls));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(*client, (struct sockaddr *)&sin, sizeof(sin)),
			 0);
	/* the listener is non-blocking: the connection is queued already */
	for (i = 0; i < 1000 && fd == -1; i++) {
		fd = accept(tsgate_listen_socket_fd(ls), NULL, NULL);
	}
	ck_assert_int_ne(fd, -1);
	return fd;
}

static int opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	ck_assert_int_eq(getsockopt(fd, level, name, &v, &len), 0);
	return v;
}

/* What the listening socket carries, every accepted socket has. */
START_TEST(test_tcp_options_inherited)
{
	struct tsgate_listen_socket *ls = NULL;
	int fd, client;

	ck_assert_int_eq(
	    tsgate_listen_socket_tcp(tt_mem, "127.0.0.1", 0, 0, 8, &ls, NULL),
	    0);
	ck_assert_int_eq(
	    tsgate_listen_socket_tcp_options(ls, true, true, 31, 11, 3), 0);
	fd = accepted(ls, &client);
	ck_assert_int_eq(opt(fd, IPPROTO_TCP, TCP_NODELAY), 1);
	ck_assert_int_eq(opt(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
	ck_assert_int_eq(opt(fd, IPPROTO_TCP, TCP_KEEPIDLE), 31);
	ck_assert_int_eq(opt(fd, IPPROTO_TCP, TCP_KEEPINTVL), 11);
	ck_assert_int_eq(opt(fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
	close(fd);
	close(client);

	/* a reload turns them off on the same socket */
	ck_assert_int_eq(
	    tsgate_listen_socket_tcp_options(ls, false, false, 0, 0, 0), 0);
	fd = accepted(ls, &client);
	ck_assert_int_eq(opt(fd, IPPROTO_TCP, TCP_NODELAY), 0);
	ck_assert_int_eq(opt(fd, SOL_SOCKET, SO_KEEPALIVE), 0);
	close(fd);
	close(client);
	talloc_free(ls);
}
END_TEST

/*
 * A path of 120 bytes does not fit sun_path (108): refused as such, and
 * no socket appears under the path cut to 107 bytes.
 */
START_TEST(test_unix_too_long)
{
	char *dir = tt_mkdtemp(tt_mem);
	struct sockaddr_un sun;
	struct tsgate_listen_socket *ls = NULL;
	const char *step = NULL;
	char *path, *cut;

	path = talloc_asprintf(tt_mem, "%s/", dir);
	while (strlen(path) < 120) {
		path = talloc_strdup_append(path, "x");
	}
	ck_assert_uint_eq(strlen(path), 120);
	cut = talloc_strndup(tt_mem, path, sizeof(sun.sun_path) - 1);

	ck_assert_int_eq(tsgate_listen_socket_unix(tt_mem, path, 8, &ls, &step),
			 ENAMETOOLONG);
	ck_assert_ptr_null(ls);
	ck_assert_ptr_nonnull(step);
	ck_assert(!exists(path));
	ck_assert(!exists(cut));

	/* a stale socket under the cut name is no reason to touch it */
	ck_assert_int_eq(tsgate_listen_socket_unix(tt_mem, cut, 8, &ls, NULL),
			 0);
	ck_assert_int_eq(tsgate_listen_socket_unix(tt_mem, path, 8, &ls, NULL),
			 ENAMETOOLONG);
	ck_assert_int_eq(unix_connect(cut), 0);
	talloc_free(ls);
	ck_assert(!exists(cut));
	tt_rmtree(dir);
}
END_TEST

START_TEST(test_unix)
{
	char *dir = tt_mkdtemp(tt_mem);
	char *path = talloc_asprintf(tt_mem, "%s/s.sock", dir);
	char *file = talloc_asprintf(tt_mem, "%s/file", dir);
	struct tsgate_listen_socket *a = NULL, *b = NULL;
	const char *step = NULL;
	int fd;

	ck_assert_int_eq(tsgate_listen_socket_unix(tt_mem, path, 8, &a, NULL),
			 0);
	ck_assert_ptr_null(step);
	ck_assert_uint_eq(tsgate_listen_socket_port(a), 0);
	/* Nagle and keepalive are TCP's */
	ck_assert_int_eq(
	    tsgate_listen_socket_tcp_options(a, true, true, 30, 10, 2), EINVAL);
	ck_assert_int_eq(unix_connect(path), 0);
	/* a live socket has the path */
	ck_assert_int_eq(tsgate_listen_socket_unix(tt_mem, path, 8, &b, &step),
			 EADDRINUSE);
	ck_assert_ptr_null(b);
	ck_assert(exists(path));

	talloc_free(a);
	ck_assert(!exists(path));

	/* a socket file nobody accepts on (a crash's) is replaced */
	make_stale(path);
	ck_assert_int_eq(unix_connect(path), ECONNREFUSED);
	ck_assert_int_eq(tsgate_listen_socket_unix(tt_mem, path, 8, &b, NULL),
			 0);
	ck_assert_int_eq(unix_connect(path), 0);
	talloc_free(b);
	ck_assert(!exists(path));

	/* a file that is not a socket is not ours to remove */
	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ne(fd, -1);
	close(fd);
	ck_assert_int_eq(tsgate_listen_socket_unix(tt_mem, file, 8, &b, NULL),
			 EEXIST);
	ck_assert(exists(file));
	tt_rmtree(dir);
}
END_TEST

/* The file was replaced by someone else's: freeing ours leaves it. */
START_TEST(test_unix_replaced)
{
	char *dir = tt_mkdtemp(tt_mem);
	char *path = talloc_asprintf(tt_mem, "%s/s.sock", dir);
	struct tsgate_listen_socket *a = NULL, *b = NULL;

	ck_assert_int_eq(tsgate_listen_socket_unix(tt_mem, path, 8, &a, NULL),
			 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(tsgate_listen_socket_unix(tt_mem, path, 8, &b, NULL),
			 0);
	talloc_free(a);
	ck_assert(exists(path));
	ck_assert_int_eq(unix_connect(path), 0);
	talloc_free(b);
	ck_assert(!exists(path));
	tt_rmtree(dir);
}
END_TEST

static Suite *listen_socket_suite(void)
{
	Suite *s = suite_create("listen_socket");
	TCase *tc;

	tc = tt_tcase(s, "tcp", 10);
	tcase_add_test(tc, test_tcp);
	tcase_add_test(tc, test_tcp_reuseport);
	tcase_add_test(tc, test_tcp_options_inherited);
	tc = tt_tcase(s, "unix", 10);
	tcase_add_unchecked_fixture(tc, tt_scratch_setup, tt_scratch_teardown);
	tcase_add_test(tc, test_unix_too_long);
	tcase_add_test(tc, test_unix);
	tcase_add_test(tc, test_unix_replaced);
	return s;
}

int main(void)
{
	return tt_run_suite(listen_socket_suite());
}
