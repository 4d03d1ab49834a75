/* SPDX-License-Identifier: MIT */
#include "tt_pair.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <tsocket.h>

#include "tt.h"

void tt_stream_pair(struct tstream_context **a, struct tstream_context **b)
{
	int ret = tstream_unix_socketpair(tt_mem, a, tt_mem, b);

	ck_assert_int_eq(ret, 0);
}

int tt_stream_raw_pair(TALLOC_CTX *mem_ctx, struct tstream_context **s)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	/* tstream_bsd_existing_socket makes its end non-blocking */
	ck_assert_int_eq(tstream_bsd_existing_socket(mem_ctx, sv[0], s), 0);
	return sv[1];
}

void tt_tcp_fds(int fds[2])
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int lfd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(lfd, 1), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fds[0], 0);
	ck_assert_int_eq(connect(fds[0], (struct sockaddr *)&sin, sizeof(sin)),
			 0);
	fds[1] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(fds[1], 0);
	close(lfd);
}

int tt_listen_tcp(uint16_t *pport, int backlog)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int lfd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(lfd, backlog), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	*pport = ntohs(sin.sin_port);
	return lfd;
}

int tt_listen_unix(const char *path, int backlog)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int lfd;

	ck_assert_uint_lt(strlen(path), sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(lfd, backlog), 0);
	return lfd;
}

struct tt_acceptor {
	int lfd;
	int fd;
};

static void tt_acceptor_readable(struct tevent_context *ev,
				 struct tevent_fd *fde,
				 uint16_t flags,
				 void *private_data)
{
	struct tt_acceptor *a = private_data;

	(void)ev;
	(void)fde;
	(void)flags;
	a->fd = accept4(a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int tt_accept(int lfd, unsigned timeout_ms)
{
	struct tt_acceptor a = {.lfd = lfd, .fd = -1};
	struct tevent_fd *fde;

	fde = tevent_add_fd(tt_ev, tt_mem, lfd, TEVENT_FD_READ,
			    tt_acceptor_readable, &a);
	ck_assert_ptr_nonnull(fde);
	tt_loop_until_cond(tt_ev, a.fd != -1, timeout_ms);
	talloc_free(fde);
	return a.fd;
}
