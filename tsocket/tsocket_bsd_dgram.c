/* SPDX-License-Identifier: MIT */
/*
 * tsocket BSD backend, datagram sockets (udp and unix datagram) on top of
 * the generic layer (tsocket_dgram.c).
 *
 * Every socket keeps one tevent_fd for its whole life; requests toggle
 * its flags instead of re-registering it, and the syscall is tried at
 * once so that the common case, a datagram already there or room in the
 * socket buffer, completes without a trip through epoll. See
 * docs/tsocket.md ("BSD backend").
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tsgate_export.h"
#include "tsocket_internal.h"
#include "tsocket_private.h"
#include "tsocket_bsd_private.h"

/*
 * A UDP payload never exceeds 65535 bytes, so an inet datagram socket
 * receives into one scratch buffer of that size (one recvmsg per
 * datagram) and copies out exactly the datagram; unix datagrams can be
 * larger and are sized with FIONREAD first.
 */
#define TDGRAM_BSD_INET_SCRATCH 65536

struct tdgram_bsd {
	int fd;
	bool inet;
	uint8_t *scratch;
	/* the last receive found nothing and epoll has not said otherwise */
	bool drained;

	struct tevent_context *ev;
	struct tsocket_bsd_ev_guard *ev_guard;
	struct tevent_fd *fde;
	uint16_t fde_flags;

	struct tevent_req *recvfrom_req;
	struct tevent_req *sendto_req;
};

struct tdgram_bsd_recvfrom_state {
	struct tdgram_bsd *bsd;
	uint8_t *buf;
	ssize_t len;
	union tsocket_bsd_sockaddr src;
	socklen_t src_len;
};

struct tdgram_bsd_sendto_state {
	struct tdgram_bsd *bsd;
	const uint8_t *buf;
	size_t len;
	union tsocket_bsd_sockaddr dst;
	socklen_t dst_len;
	ssize_t ret;
};

static void tdgram_bsd_fde_handler(struct tevent_context *ev,
				   struct tevent_fd *fde,
				   uint16_t flags,
				   void *private_data);
static bool tdgram_bsd_recvfrom_try(struct tevent_req *req, bool from_event);
static bool tdgram_bsd_sendto_try(struct tevent_req *req);

static int tdgram_bsd_destructor(struct tdgram_bsd *bsd)
{
	/* a request that outlives the socket must not touch it */
	if (bsd->recvfrom_req != NULL) {
		struct tdgram_bsd_recvfrom_state *state =
		    _tevent_req_data(bsd->recvfrom_req);

		state->bsd = NULL;
		bsd->recvfrom_req = NULL;
	}
	if (bsd->sendto_req != NULL) {
		struct tdgram_bsd_sendto_state *state =
		    _tevent_req_data(bsd->sendto_req);

		state->bsd = NULL;
		bsd->sendto_req = NULL;
	}
	/* leave epoll before the fd number can be reused */
	TALLOC_FREE(bsd->fde);
	TALLOC_FREE(bsd->ev_guard);
	if (bsd->fd != -1) {
		close(bsd->fd);
		bsd->fd = -1;
	}
	return 0;
}

/* Adds flag to the socket's tevent_fd, creating it on first use. */
static int tdgram_bsd_want(struct tdgram_bsd *bsd,
			   struct tevent_context *ev,
			   uint16_t flag)
{
	if (bsd->fde == NULL || bsd->ev != ev) {
		TALLOC_FREE(bsd->fde);
		bsd->fde_flags |= flag;
		bsd->fde = tevent_add_fd(ev, bsd, bsd->fd, bsd->fde_flags,
					 tdgram_bsd_fde_handler, bsd);
		if (bsd->fde == NULL ||
		    !tsocket_bsd_watch_ev(ev, &bsd->ev, &bsd->ev_guard)) {
			TALLOC_FREE(bsd->fde);
			bsd->fde_flags = 0;
			return ENOMEM;
		}
		return 0;
	}
	if ((bsd->fde_flags & flag) != flag) {
		bsd->fde_flags |= flag;
		tevent_fd_set_flags(bsd->fde, bsd->fde_flags);
	}
	return 0;
}

static void tdgram_bsd_unwant(struct tdgram_bsd *bsd, uint16_t flag)
{
	if ((bsd->fde_flags & flag) == 0) {
		return;
	}
	bsd->fde_flags &= ~flag;
	if (bsd->fde != NULL) {
		tevent_fd_set_flags(bsd->fde, bsd->fde_flags);
	}
}

static void tdgram_bsd_fde_handler(struct tevent_context *ev,
				   struct tevent_fd *fde,
				   uint16_t flags,
				   void *private_data)
{
	struct tdgram_bsd *bsd = private_data;

	/*
	 * One direction per call: completing a request runs the caller's
	 * callback, which may free bsd. Level triggering brings us back
	 * for the other direction.
	 */
	if ((flags & TEVENT_FD_WRITE) != 0 && bsd->sendto_req != NULL) {
		tdgram_bsd_sendto_try(bsd->sendto_req);
		return;
	}
	if ((flags & TSOCKET_BSD_READ_EVENTS) != 0) {
		bsd->drained = false;
		if (bsd->recvfrom_req != NULL) {
			tdgram_bsd_recvfrom_try(bsd->recvfrom_req, true);
			return;
		}
		if (bsd->sendto_req != NULL &&
		    tdgram_bsd_sendto_try(bsd->sendto_req)) {
			/* an error reported as readability */
			return;
		}
		/*
		 * Datagrams nobody asked for yet (the flag is kept lazily,
		 * see tdgram_bsd_recvfrom_cleanup): stop polling for them.
		 */
		tdgram_bsd_unwant(bsd, TEVENT_FD_READ);
		return;
	}
	if ((flags & TEVENT_FD_WRITE) != 0) {
		tdgram_bsd_unwant(bsd, TEVENT_FD_WRITE);
	}
}

static void tdgram_bsd_recvfrom_cleanup(struct tevent_req *req,
					enum tevent_req_state req_state)
{
	struct tdgram_bsd_recvfrom_state *state = _tevent_req_data(req);

	if (state->bsd != NULL && state->bsd->recvfrom_req == req) {
		/*
		 * TEVENT_FD_READ stays set: a server asks for the next
		 * datagram right away, and the handler drops the flag if
		 * nobody does.
		 */
		state->bsd->recvfrom_req = NULL;
	}
	state->bsd = NULL;
}

/* Whether the socket's reading side is shut (POLLRDHUP), checked rarely. */
static bool tdgram_bsd_read_shut(struct tdgram_bsd *bsd)
{
	struct pollfd pfd = {.fd = bsd->fd, .events = POLLRDHUP};

	return poll(&pfd, 1, 0) == 1 &&
	       (pfd.revents & (POLLRDHUP | POLLHUP)) != 0;
}

/*
 * Receives one datagram without blocking into *pbuf (allocated on
 * mem_ctx) and its sender into *src / *src_len. Returns its length, 0
 * when there was none (bsd->drained set), or -1 with *perrno.
 * from_event: epoll said readable (a socket shut for reading says so
 * forever, which must end with EPIPE instead of spinning).
 */
static ssize_t tdgram_bsd_recv_once(struct tdgram_bsd *bsd,
				    TALLOC_CTX *mem_ctx,
				    uint8_t **pbuf,
				    union tsocket_bsd_sockaddr *src,
				    socklen_t *src_len,
				    bool from_event,
				    int *perrno)
{
	struct iovec iov;
	struct msghdr msg;
	ssize_t ret;

	for (;;) {
		size_t want;
		uint8_t *dest;

		if (bsd->inet) {
			if (bsd->scratch == NULL) {
				bsd->scratch =
				    talloc_size(bsd, TDGRAM_BSD_INET_SCRATCH);
				if (bsd->scratch == NULL) {
					*perrno = ENOMEM;
					return -1;
				}
			}
			dest = bsd->scratch;
			want = TDGRAM_BSD_INET_SCRATCH;
		} else {
			int avail = 0;

			ret = ioctl(bsd->fd, FIONREAD, &avail);
			if (ret == -1) {
				*perrno = errno;
				return -1;
			}
			if (avail <= 0) {
				/* nothing queued, or an empty datagram */
				avail = 1;
			}
			TALLOC_FREE(*pbuf);
			*pbuf = talloc_size(mem_ctx, (size_t)avail);
			if (*pbuf == NULL) {
				*perrno = ENOMEM;
				return -1;
			}
			dest = *pbuf;
			want = (size_t)avail;
		}

		iov.iov_base = dest;
		iov.iov_len = want;
		memset(&msg, 0, sizeof(msg));
		msg.msg_name = src;
		msg.msg_namelen = sizeof(*src);
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;

		ret = recvmsg(bsd->fd, &msg, MSG_DONTWAIT);
		if (ret == -1) {
			int err = errno;

			if (tsocket_bsd_errno_is_retry(err)) {
				TALLOC_FREE(*pbuf);
				bsd->drained = true;
				/*
				 * Readable by epoll yet nothing to receive: a
				 * socket shut for reading stays "readable"
				 * forever and would spin the loop.
				 */
				if (from_event && tdgram_bsd_read_shut(bsd)) {
					*perrno = EPIPE;
					return -1;
				}
				return 0;
			}
			*perrno = err;
			return -1;
		}
		if (ret == 0) {
			/*
			 * An empty datagram is never reported: take the next.
			 * (A socket that is not a datagram socket says 0 at
			 * its end, forever: that must not loop here.)
			 */
			if (tdgram_bsd_read_shut(bsd)) {
				*perrno = EPIPE;
				return -1;
			}
			continue;
		}
		if ((msg.msg_flags & MSG_TRUNC) != 0) {
			*perrno = EMSGSIZE;
			return -1;
		}
		*src_len = msg.msg_namelen;
		if (bsd->inet) {
			*pbuf = talloc_memdup(mem_ctx, dest, (size_t)ret);
			if (*pbuf == NULL) {
				*perrno = ENOMEM;
				return -1;
			}
		}
		return ret;
	}
}

/*
 * Receives one datagram without blocking. Returns true when the request
 * finished (done or error), false when it must wait for readability.
 */
static bool tdgram_bsd_recvfrom_try(struct tevent_req *req, bool from_event)
{
	struct tdgram_bsd_recvfrom_state *state = _tevent_req_data(req);
	ssize_t ret;
	int err = 0;

	ret = tdgram_bsd_recv_once(state->bsd, state, &state->buf, &state->src,
				   &state->src_len, from_event, &err);
	if (ret == -1) {
		tevent_req_error(req, err);
		return true;
	}
	if (ret == 0) {
		return false;
	}
	state->len = ret;
	tevent_req_done(req);
	return true;
}

/* A sender's address as the caller gets it. */
static int tdgram_bsd_src_address(TALLOC_CTX *mem_ctx,
				  union tsocket_bsd_sockaddr *sa,
				  socklen_t len,
				  struct tsocket_address **src)
{
	if (len < (socklen_t)sizeof(sa_family_t)) {
		/* an unbound unix peer: empty path */
		sa->sa.sa_family = AF_UNIX;
		len = sizeof(sa_family_t);
	}
	return _tsocket_address_bsd_from_sockaddr(mem_ctx, &sa->sa, len, src,
						  __location__);
}

static struct tevent_req *tdgram_bsd_recvfrom_send(TALLOC_CTX *mem_ctx,
						   struct tevent_context *ev,
						   struct tdgram_context *dgram)
{
	struct tdgram_bsd *bsd = _tdgram_context_data(dgram);
	struct tevent_req *req;
	struct tdgram_bsd_recvfrom_state *state;
	int err;

	req = tevent_req_create(mem_ctx, &state,
				struct tdgram_bsd_recvfrom_state);
	if (req == NULL) {
		return NULL;
	}
	state->bsd = bsd;
	state->len = -1;

	if (bsd->fd == -1) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	if (bsd->recvfrom_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}

	/* a server asks again right after each datagram: try it only if
	 * the last attempt did not already find the queue empty */
	if (!bsd->drained && tdgram_bsd_recvfrom_try(req, false)) {
		return tevent_req_post(req, ev);
	}

	err = tdgram_bsd_want(bsd, ev, TEVENT_FD_READ);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	bsd->recvfrom_req = req;
	/* only a waiting request is known to bsd and must leave it */
	tevent_req_set_cleanup_fn(req, tdgram_bsd_recvfrom_cleanup);
	return req;
}

static ssize_t tdgram_bsd_recvfrom_recv(struct tevent_req *req,
					int *perrno,
					TALLOC_CTX *mem_ctx,
					uint8_t **buf,
					struct tsocket_address **src)
{
	struct tdgram_bsd_recvfrom_state *state = _tevent_req_data(req);
	ssize_t ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		if (src != NULL) {
			int rc = tdgram_bsd_src_address(mem_ctx, &state->src,
							state->src_len, src);

			if (rc != 0) {
				*perrno = errno;
				tevent_req_received(req);
				return -1;
			}
		}
		if (buf != NULL) {
			*buf = talloc_move(mem_ctx, &state->buf);
		}
		ret = state->len;
	}
	tevent_req_received(req);
	return ret;
}

static void tdgram_bsd_sendto_cleanup(struct tevent_req *req,
				      enum tevent_req_state req_state)
{
	struct tdgram_bsd_sendto_state *state = _tevent_req_data(req);

	if (state->bsd != NULL && state->bsd->sendto_req == req) {
		/* sockets are writable nearly always: drop it right away */
		tdgram_bsd_unwant(state->bsd,
				  TSOCKET_BSD_WRITE_WAIT & ~TEVENT_FD_READ);
		state->bsd->sendto_req = NULL;
	}
	state->bsd = NULL;
}

/*
 * One sendto without blocking. Returns false when the socket buffer is
 * full, true when it is done: *pret the bytes sent, or -1 with *perrno.
 */
static bool tdgram_bsd_send_once(struct tdgram_bsd *bsd,
				 const uint8_t *buf,
				 size_t len,
				 const struct sockaddr *dst,
				 socklen_t dst_len,
				 ssize_t *pret,
				 int *perrno)
{
	ssize_t ret;

	ret = sendto(bsd->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT, dst,
		     dst_len);
	if (ret == -1 && errno == EMSGSIZE && len <= INT_MAX - 1023) {
		/*
		 * A unix datagram is limited by the send buffer, not by a
		 * protocol: raise SO_SNDBUF to the datagram and try once
		 * more, as Samba does (the tsocket oracle found 300 KB that
		 * Samba sends and we refused). For UDP above 64 KiB the
		 * second try fails with EMSGSIZE again.
		 */
		int size = (int)((len + 1023) & ~(size_t)1023);

		if (setsockopt(bsd->fd, SOL_SOCKET, SO_SNDBUF, &size,
			       sizeof(size)) == 0) {
			ret = sendto(bsd->fd, buf, len,
				     MSG_NOSIGNAL | MSG_DONTWAIT, dst, dst_len);
		} else {
			errno = EMSGSIZE;
		}
	}
	if (ret == -1) {
		int err = errno;

		if (tsocket_bsd_errno_is_retry(err)) {
			return false;
		}
		*perrno = err;
	}
	*pret = ret;
	return true;
}

static bool tdgram_bsd_sendto_try(struct tevent_req *req)
{
	struct tdgram_bsd_sendto_state *state = _tevent_req_data(req);
	ssize_t ret = -1;
	int err = 0;

	if (!tdgram_bsd_send_once(state->bsd, state->buf, state->len,
				  state->dst_len != 0 ? &state->dst.sa : NULL,
				  state->dst_len, &ret, &err)) {
		return false;
	}
	if (ret == -1) {
		tevent_req_error(req, err);
		return true;
	}
	state->ret = ret;
	tevent_req_done(req);
	return true;
}

static struct tevent_req *tdgram_bsd_sendto_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tdgram_context *dgram,
    const uint8_t *buf,
    size_t len,
    const struct tsocket_address *dst)
{
	struct tdgram_bsd *bsd = _tdgram_context_data(dgram);
	struct tevent_req *req;
	struct tdgram_bsd_sendto_state *state;
	int err;

	req =
	    tevent_req_create(mem_ctx, &state, struct tdgram_bsd_sendto_state);
	if (req == NULL) {
		return NULL;
	}
	state->bsd = bsd;
	state->buf = buf;
	state->len = len;
	state->ret = -1;

	if (bsd->fd == -1) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	if (bsd->sendto_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}
	if (buf == NULL || len == 0) {
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}
	if (dst != NULL) {
		const struct tsocket_address_bsd *dbsd =
		    tsocket_address_bsd_get(dst);

		if (dbsd == NULL) {
			tevent_req_error(req, EINVAL);
			return tevent_req_post(req, ev);
		}
		memcpy(&state->dst, &dbsd->u, dbsd->sa_socklen);
		state->dst_len = dbsd->sa_socklen;
	}

	if (tdgram_bsd_sendto_try(req)) {
		return tevent_req_post(req, ev);
	}

	err = tdgram_bsd_want(bsd, ev, TSOCKET_BSD_WRITE_WAIT);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	bsd->sendto_req = req;
	/* only a waiting request is known to bsd and must leave it */
	tevent_req_set_cleanup_fn(req, tdgram_bsd_sendto_cleanup);
	return req;
}

static ssize_t tdgram_bsd_sendto_recv(struct tevent_req *req, int *perrno)
{
	struct tdgram_bsd_sendto_state *state = _tevent_req_data(req);
	ssize_t ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		ret = state->ret;
	}
	tevent_req_received(req);
	return ret;
}

static struct tevent_req *tdgram_bsd_disconnect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tdgram_context *dgram)
{
	struct tdgram_bsd *bsd = _tdgram_context_data(dgram);
	struct tevent_req *req;
	int *state;

	req = tevent_req_create(mem_ctx, &state, int);
	if (req == NULL) {
		return NULL;
	}
	if (bsd->recvfrom_req != NULL || bsd->sendto_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}
	if (bsd->fd == -1) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	TALLOC_FREE(bsd->fde);
	TALLOC_FREE(bsd->ev_guard);
	bsd->fde_flags = 0;
	close(bsd->fd);
	bsd->fd = -1;
	TALLOC_FREE(bsd->scratch);

	tevent_req_done(req);
	return tevent_req_post(req, ev);
}

static int tdgram_bsd_disconnect_recv(struct tevent_req *req, int *perrno)
{
	int ret = tsocket_simple_int_recv(req, perrno);

	tevent_req_received(req);
	return ret;
}

/*
 * The generic layer's fast path for datagrams (tdgram_try_recvfrom_fn and
 * tdgram_try_sendto_fn of tsocket_private.h): the same receive/send as
 * the requests above, tried before any request of ours exists. false:
 * nothing done, the request path deals with it.
 */
static bool tdgram_bsd_try_recvfrom(struct tdgram_context *dgram,
				    TALLOC_CTX *mem_ctx,
				    uint8_t **buf,
				    struct tsocket_address **src,
				    ssize_t *pret,
				    int *perrno)
{
	struct tdgram_bsd *bsd = _tdgram_context_data(dgram);
	union tsocket_bsd_sockaddr sa;
	socklen_t sa_len = 0;
	ssize_t ret;

	if (bsd->fd == -1 || bsd->recvfrom_req != NULL || bsd->drained) {
		return false;
	}
	ret = tdgram_bsd_recv_once(bsd, mem_ctx, buf, &sa, &sa_len, false,
				   perrno);
	if (ret == 0) {
		return false;
	}
	if (ret > 0 && tdgram_bsd_src_address(mem_ctx, &sa, sa_len, src) != 0) {
		*perrno = errno;
		ret = -1;
	}
	*pret = ret;
	return true;
}

static bool tdgram_bsd_try_sendto(struct tdgram_context *dgram,
				  const uint8_t *buf,
				  size_t len,
				  const struct tsocket_address *dst,
				  ssize_t *pret,
				  int *perrno)
{
	struct tdgram_bsd *bsd = _tdgram_context_data(dgram);
	const struct tsocket_address_bsd *dbsd = NULL;

	if (bsd->fd == -1 || bsd->sendto_req != NULL) {
		return false;
	}
	if (dst != NULL) {
		dbsd = tsocket_address_bsd_get(dst);
		if (dbsd == NULL) {
			return false;
		}
	}
	return tdgram_bsd_send_once(
	    bsd, buf, len, dbsd != NULL ? &dbsd->u.sa : NULL,
	    dbsd != NULL ? dbsd->sa_socklen : 0, pret, perrno);
}

static const struct tdgram_context_ops tdgram_bsd_ops = {
    .name = "bsd",
    .recvfrom_send = tdgram_bsd_recvfrom_send,
    .recvfrom_recv = tdgram_bsd_recvfrom_recv,
    .sendto_send = tdgram_bsd_sendto_send,
    .sendto_recv = tdgram_bsd_sendto_recv,
    .disconnect_send = tdgram_bsd_disconnect_send,
    .disconnect_recv = tdgram_bsd_disconnect_recv,
};

/* Wraps fd; on failure the caller keeps the fd. */
static int tdgram_bsd_wrap(TALLOC_CTX *mem_ctx,
			   int fd,
			   bool inet,
			   struct tdgram_context **_dgram,
			   const char *location)
{
	struct tdgram_context *dgram;
	struct tdgram_bsd *bsd = NULL;

	dgram = tdgram_context_create(mem_ctx, &tdgram_bsd_ops, &bsd,
				      struct tdgram_bsd, location);
	if (dgram == NULL) {
		errno = ENOMEM;
		return -1;
	}
	bsd->fd = fd;
	bsd->inet = inet;
	talloc_set_destructor(bsd, tdgram_bsd_destructor);
	_tdgram_context_set_try(dgram, tdgram_bsd_try_recvfrom,
				tdgram_bsd_try_sendto);

	*_dgram = dgram;
	return 0;
}

_PUBLIC_ int _tdgram_bsd_existing_socket(TALLOC_CTX *mem_ctx,
					 int fd,
					 struct tdgram_context **_dgram,
					 const char *location)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	bool inet = false;

	if (fd < 0 || _dgram == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (tsocket_bsd_set_nonblocking(fd) == -1) {
		return -1;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		inet = tsocket_bsd_is_inet_family(ss.ss_family);
	}
	return tdgram_bsd_wrap(mem_ctx, fd, inet, _dgram, location);
}

static int tdgram_bsd_socket(const struct tsocket_address *local,
			     const struct tsocket_address *remote,
			     bool broadcast,
			     bool want_inet,
			     TALLOC_CTX *mem_ctx,
			     struct tdgram_context **_dgram,
			     const char *location)
{
	const struct tsocket_address_bsd *lbsd = tsocket_address_bsd_get(local);
	const struct tsocket_address_bsd *rbsd = NULL;
	int fd;
	int ret;

	if (lbsd == NULL || _dgram == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (remote != NULL) {
		rbsd = tsocket_address_bsd_get(remote);
		if (rbsd == NULL) {
			errno = EINVAL;
			return -1;
		}
	}
	if (broadcast && lbsd->u.sa.sa_family != AF_INET) {
		errno = EINVAL;
		return -1;
	}

	fd = tsocket_bsd_socket(lbsd, rbsd, SOCK_DGRAM, want_inet);
	if (fd == -1) {
		return -1;
	}
	if (broadcast) {
		int one = 1;

		ret =
		    setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one));
		if (ret == -1) {
			goto fail;
		}
	}
	if (rbsd != NULL) {
		ret = connect(fd, &rbsd->u.sa, rbsd->sa_socklen);
		if (ret == -1) {
			goto fail;
		}
	}
	ret = tdgram_bsd_wrap(mem_ctx, fd, want_inet, _dgram, location);
	if (ret == -1) {
		goto fail;
	}
	return 0;

fail:
	tsocket_bsd_close_keep_errno(fd);
	return -1;
}

_PUBLIC_ int _tdgram_inet_udp_socket(const struct tsocket_address *local,
				     const struct tsocket_address *remote,
				     TALLOC_CTX *mem_ctx,
				     struct tdgram_context **dgram,
				     const char *location)
{
	return tdgram_bsd_socket(local, remote, false, true, mem_ctx, dgram,
				 location);
}

_PUBLIC_ int _tdgram_inet_udp_broadcast_socket(
    const struct tsocket_address *local,
    TALLOC_CTX *mem_ctx,
    struct tdgram_context **dgram,
    const char *location)
{
	return tdgram_bsd_socket(local, NULL, true, true, mem_ctx, dgram,
				 location);
}

_PUBLIC_ int _tdgram_unix_socket(const struct tsocket_address *local,
				 const struct tsocket_address *remote,
				 TALLOC_CTX *mem_ctx,
				 struct tdgram_context **dgram,
				 const char *location)
{
	return tdgram_bsd_socket(local, remote, false, false, mem_ctx, dgram,
				 location);
}
