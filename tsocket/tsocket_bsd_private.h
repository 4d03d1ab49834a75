/* SPDX-License-Identifier: MIT */
/*
 * tsocket BSD backend — what its three files share: the address type
 * (tsocket_bsd_address.c, which also makes the sockets), the datagram
 * sockets (tsocket_bsd_dgram.c) and the stream sockets
 * (tsocket_bsd_stream.c).
 *
 * Not installed and not exported: the library is built with hidden
 * visibility and nothing here carries _PUBLIC_.
 *
 * Private data is fetched with _tevent_req_data(), _tstream_context_data()
 * and _tdgram_context_data() rather than their talloc_get_type_abort()
 * macros: the generic layer only ever passes the backend its own requests
 * and contexts, and the name check (a strcmp) per call cost about 2% of
 * the CPU per operation in the benchmark.
 */

#ifndef _TSOCKET_BSD_PRIVATE_H
#define _TSOCKET_BSD_PRIVATE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <tevent.h>

#include "tsocket.h"

/*
 * What a request waiting for room to write asks of its tevent_fd. tevent
 * before 0.15 only reports EPOLLERR/EPOLLHUP to an fd that waits for
 * TEVENT_FD_READ (a write-only one is silently dropped from epoll), so a
 * waiting writer also asks for READ there; newer tevent has
 * TEVENT_FD_ERROR for exactly this.
 */
#ifdef TEVENT_FD_ERROR
#define TSOCKET_BSD_WRITE_WAIT  (TEVENT_FD_WRITE | TEVENT_FD_ERROR)
#define TSOCKET_BSD_READ_EVENTS (TEVENT_FD_READ | TEVENT_FD_ERROR)
#else
#define TSOCKET_BSD_WRITE_WAIT  (TEVENT_FD_WRITE | TEVENT_FD_READ)
#define TSOCKET_BSD_READ_EVENTS TEVENT_FD_READ
#endif

union tsocket_bsd_sockaddr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_un un;
	struct sockaddr_storage ss;
};

/* The private struct of a BSD address. */
struct tsocket_address_bsd {
	socklen_t sa_socklen;
	union tsocket_bsd_sockaddr u;
};

/* The BSD part of addr, or NULL when addr is NULL or of another type. */
const struct tsocket_address_bsd *tsocket_address_bsd_get(
    const struct tsocket_address *addr);

bool tsocket_bsd_is_inet_family(int family);

/* fcntl O_NONBLOCK; 0, or -1 with errno set. */
int tsocket_bsd_set_nonblocking(int fd);

/* close(fd) for an error path: errno stays the caller's. */
void tsocket_bsd_close_keep_errno(int fd);

/*
 * A non-blocking, close-on-exec socket of type bound to lbsd (see its
 * definition); the fd, or -1 with errno set.
 */
int tsocket_bsd_socket(const struct tsocket_address_bsd *lbsd,
		       const struct tsocket_address_bsd *rbsd,
		       int type,
		       bool want_inet);

/* A guard on the tevent_context a socket's tevent_fd lives on. */
struct tsocket_bsd_ev_guard;

/* Sets *pev = ev, watched by a new guard in *pguard. */
bool tsocket_bsd_watch_ev(struct tevent_context *ev,
			  struct tevent_context **pev,
			  struct tsocket_bsd_ev_guard **pguard);

/* EAGAIN, EWOULDBLOCK, EINTR: try again later. */
int tsocket_bsd_errno_is_retry(int err);

#endif /* _TSOCKET_BSD_PRIVATE_H */
