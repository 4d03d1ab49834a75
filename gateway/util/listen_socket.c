/* SPDX-License-Identifier: MIT */
/*
 * A listening TCP or unix stream socket (listen_socket.h).
 */
#include "listen_socket.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <tsocket.h>

struct tsgate_listen_socket {
	int fd;
	uint16_t port;
	char *unix_path; /* removed by the destructor while still ours */
	dev_t unix_dev;
	ino_t unix_ino;
};

static int listen_socket_destructor(struct tsgate_listen_socket *ls)
{
	struct stat st;

	if (ls->fd != -1) {
		close(ls->fd);
		ls->fd = -1;
	}
	/* another process may have replaced the file since: leave it */
	if (ls->unix_path != NULL && lstat(ls->unix_path, &st) == 0 &&
	    st.st_dev == ls->unix_dev && st.st_ino == ls->unix_ino) {
		unlink(ls->unix_path);
	}
	return 0;
}

static struct tsgate_listen_socket *listen_socket_new(TALLOC_CTX *mem_ctx)
{
	struct tsgate_listen_socket *ls;

	ls = talloc_zero(mem_ctx, struct tsgate_listen_socket);
	if (ls == NULL) {
		return NULL;
	}
	ls->fd = -1;
	talloc_set_destructor(ls, listen_socket_destructor);
	return ls;
}

/* Fail with err, naming the call that failed. */
static int listen_socket_fail(struct tsgate_listen_socket *ls,
			      int err,
			      const char *step,
			      const char **pstep)
{
	if (pstep != NULL) {
		*pstep = step;
	}
	talloc_free(ls);
	return err;
}

static int listen_socket_listen(struct tsgate_listen_socket *ls,
				const struct sockaddr *sa,
				socklen_t len,
				int backlog,
				const char **pstep)
{
	if (bind(ls->fd, sa, len) != 0) {
		*pstep = "bind";
		return errno;
	}
	if (listen(ls->fd, backlog) != 0) {
		*pstep = "listen";
		return errno;
	}
	return 0;
}

int tsgate_listen_socket_tcp(TALLOC_CTX *mem_ctx,
			     const char *ip,
			     uint16_t port,
			     unsigned flags,
			     int backlog,
			     struct tsgate_listen_socket **pls,
			     const char **pstep)
{
	struct tsgate_listen_socket *ls = listen_socket_new(mem_ctx);
	struct tsocket_address *addr = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	const char *step = NULL;
	ssize_t len;
	int one = 1;
	int err;

	if (ls == NULL) {
		return listen_socket_fail(ls, ENOMEM, "out of memory", pstep);
	}
	if (tsocket_address_inet_from_strings(ls, "ip", ip, port, &addr) != 0) {
		return listen_socket_fail(ls, errno, "address", pstep);
	}
	len = tsocket_address_bsd_sockaddr(addr, (struct sockaddr *)&ss,
					   sizeof(ss));
	if (len < 0) {
		return listen_socket_fail(ls, errno, "address", pstep);
	}
	TALLOC_FREE(addr);
	ls->fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ls->fd == -1) {
		return listen_socket_fail(ls, errno, "socket", pstep);
	}
	(void)setsockopt(ls->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if ((flags & TSGATE_LISTEN_SOCKET_REUSEPORT) &&
	    setsockopt(ls->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) !=
		0) {
		return listen_socket_fail(ls, errno, "SO_REUSEPORT", pstep);
	}
	err = listen_socket_listen(ls, (struct sockaddr *)&ss, (socklen_t)len,
				   backlog, &step);
	if (err != 0) {
		return listen_socket_fail(ls, err, step, pstep);
	}
	if (getsockname(ls->fd, (struct sockaddr *)&ss, &sslen) != 0) {
		return listen_socket_fail(ls, errno, "getsockname", pstep);
	}
	if (ss.ss_family == AF_INET) {
		ls->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		ls->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	*pls = ls;
	return 0;
}

/*
 * A socket file that exists already: stale (nobody accepts) → remove it;
 * alive → another daemon has it (EADDRINUSE); not a socket → EEXIST.
 */
static int listen_socket_unix_prepare(const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, ret;

	if (lstat(sun->sun_path, &st) != 0) {
		return errno == ENOENT ? 0 : errno;
	}
	if (!S_ISSOCK(st.st_mode)) {
		return EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		return errno;
	}
	ret = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (ret == 0) {
		return EADDRINUSE;
	}
	if (unlink(sun->sun_path) != 0 && errno != ENOENT) {
		return errno;
	}
	return 0;
}

int tsgate_listen_socket_unix(TALLOC_CTX *mem_ctx,
			      const char *path,
			      int backlog,
			      struct tsgate_listen_socket **pls,
			      const char **pstep)
{
	struct tsgate_listen_socket *ls;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	const char *step = NULL;
	size_t plen = strlen(path);
	struct stat st;
	int err;

	/* checked before the stale-file probe, which must not see a cut path */
	if (plen >= sizeof(sun.sun_path)) {
		return listen_socket_fail(NULL, ENAMETOOLONG, "path", pstep);
	}
	memcpy(sun.sun_path, path, plen);
	ls = listen_socket_new(mem_ctx);
	if (ls == NULL) {
		return listen_socket_fail(ls, ENOMEM, "out of memory", pstep);
	}
	err = listen_socket_unix_prepare(&sun);
	if (err != 0) {
		return listen_socket_fail(ls, err, "path", pstep);
	}
	ls->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ls->fd == -1) {
		return listen_socket_fail(ls, errno, "socket", pstep);
	}
	err = listen_socket_listen(ls, (struct sockaddr *)&sun, sizeof(sun),
				   backlog, &step);
	if (err != 0) {
		return listen_socket_fail(ls, err, step, pstep);
	}
	ls->unix_path = talloc_strdup(ls, path);
	if (ls->unix_path == NULL) {
		unlink(path);
		return listen_socket_fail(ls, ENOMEM, "out of memory", pstep);
	}
	if (lstat(path, &st) == 0) {
		ls->unix_dev = st.st_dev;
		ls->unix_ino = st.st_ino;
	}
	*pls = ls;
	return 0;
}

int tsgate_listen_socket_fd(const struct tsgate_listen_socket *ls)
{
	return ls->fd;
}

uint16_t tsgate_listen_socket_port(const struct tsgate_listen_socket *ls)
{
	return ls->port;
}

int tsgate_listen_socket_tcp_options(const struct tsgate_listen_socket *ls,
				     bool nodelay,
				     bool keepalive,
				     unsigned idle_s,
				     unsigned interval_s,
				     unsigned count)
{
	int opts[5][3] = {
	    {IPPROTO_TCP, TCP_NODELAY, nodelay ? 1 : 0},
	    {SOL_SOCKET, SO_KEEPALIVE, keepalive ? 1 : 0},
	    {IPPROTO_TCP, TCP_KEEPIDLE, (int)idle_s},
	    {IPPROTO_TCP, TCP_KEEPINTVL, (int)interval_s},
	    {IPPROTO_TCP, TCP_KEEPCNT, (int)count},
	};
	size_t i;

	if (ls == NULL || ls->fd == -1 || ls->unix_path != NULL) {
		return EINVAL;
	}
	for (i = 0; i < 5; i++) {
		if (i >= 2 && (!keepalive || opts[i][2] <= 0)) {
			continue;
		}
		if (setsockopt(ls->fd, opts[i][0], opts[i][1], &opts[i][2],
			       sizeof(opts[i][2])) != 0) {
			return errno;
		}
	}
	return 0;
}
