/* SPDX-License-Identifier: MIT */
/*
 * tsocket BSD backend, stream sockets (tcp and unix stream) on top of the
 * generic layer (tsocket_stream.c): the stream type, socketpairs, and
 * connect.
 *
 * Every socket keeps one tevent_fd for its whole life; requests toggle
 * its flags instead of re-registering it, and the syscall is tried at once
 * (unless the last read already found nothing to read) so that the common
 * case, data already there or room in the socket buffer, completes without
 * a trip through epoll. See docs/tsocket.md ("BSD backend") for the
 * decisions taken here where the seed document is silent.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

/* Vectors up to this size are copied into the request state itself. */
#define TSTREAM_BSD_INLINE_IOV 4

/*
 * A readv asking for less than this also reads up to this much ahead into
 * the stream's own buffer: a PDU header read then brings the body along,
 * and the body's readv is served without a syscall.
 */
#define TSTREAM_BSD_READAHEAD 4096

struct tstream_bsd {
	int fd;
	bool is_socket;

	/* sticky errors, per direction (see tstream_bsd_fail) */
	int read_error;
	int write_error;

	/* the fde's context; both NULL once that is freed (tstream_bsd_want) */
	struct tevent_context *ev;
	struct tevent_fd *fde;
	uint16_t fde_flags;

	struct tevent_req *readv_req;
	struct tevent_req *writev_req;
	/*
	 * The readable handler (see tstream_bsd_set_readable_handler): it
	 * waits on the tevent_fd like a readv. readable_im exists only
	 * after a writer's error had to call it (tstream_bsd_fail_other).
	 */
	tstream_readable_handler_t readable_fn;
	void *readable_private;
	struct tstream_context *readable_stream;
	struct tevent_immediate *readable_im;

	/*
	 * Bytes read ahead, not yet handed out: [off, off + len). The
	 * buffer exists only while it holds bytes: an idle stream keeps
	 * none.
	 */
	uint8_t *rahead;
	size_t rahead_off;
	size_t rahead_len;
	/*
	 * The last read found the socket empty and epoll has not said
	 * otherwise since: the next readv waits instead of trying a read
	 * that would only return EAGAIN.
	 */
	bool drained;
	/* both directions ready: take turns (see tstream_bsd_fde_handler) */
	bool read_first;
};

struct tstream_bsd_readv_state {
	struct tstream_bsd *bsd;
	struct iovec *vector;
	int count;
	int ret;
	/* one spare entry at the end for the read-ahead buffer */
	struct iovec inline_iov[TSTREAM_BSD_INLINE_IOV + 1];
};

struct tstream_bsd_writev_state {
	struct tstream_bsd *bsd;
	struct iovec *vector;
	int count;
	int ret;
	struct iovec inline_iov[TSTREAM_BSD_INLINE_IOV];
};

static void tstream_bsd_fde_handler(struct tevent_context *ev,
				    struct tevent_fd *fde,
				    uint16_t flags,
				    void *private_data);
static bool tstream_bsd_readv_try(struct tevent_req *req);
static bool tstream_bsd_writev_try(struct tevent_req *req);

static int tstream_bsd_destructor(struct tstream_bsd *bsd)
{
	if (bsd->readv_req != NULL) {
		struct tstream_bsd_readv_state *state =
		    _tevent_req_data(bsd->readv_req);

		state->bsd = NULL;
		bsd->readv_req = NULL;
	}
	if (bsd->writev_req != NULL) {
		struct tstream_bsd_writev_state *state =
		    _tevent_req_data(bsd->writev_req);

		state->bsd = NULL;
		bsd->writev_req = NULL;
	}
	/* leave epoll before the fd number can be reused */
	TALLOC_FREE(bsd->fde);
	if (bsd->fd != -1) {
		close(bsd->fd);
		bsd->fd = -1;
	}
	return 0;
}

/*
 * Records an error: end of stream (EPIPE) or a write-side EPIPE stay in
 * their direction (the other one may still work: a half-closed peer);
 * anything else (ECONNRESET, ETIMEDOUT, ...) breaks both directions.
 */
static void tstream_bsd_fail(struct tstream_bsd *bsd, int err, bool reading)
{
	if (err == EPIPE) {
		if (reading) {
			if (bsd->read_error == 0) {
				bsd->read_error = err;
			}
		} else if (bsd->write_error == 0) {
			bsd->write_error = err;
		}
		return;
	}
	if (bsd->read_error == 0) {
		bsd->read_error = err;
	}
	if (bsd->write_error == 0) {
		bsd->write_error = err;
	}
}

/*
 * A fatal error seen by one direction also ends a request waiting in the
 * other: the kernel reports a reset only once, and a waiting writer may
 * never hear of it (see TSOCKET_BSD_WRITE_WAIT). The other callback runs
 * from the loop, not inside the current one.
 */
/* Forgets the readable handler and calls it (which may free bsd). */
static void tstream_bsd_readable_fire(struct tstream_bsd *bsd)
{
	tstream_readable_handler_t fn = bsd->readable_fn;

	bsd->readable_fn = NULL;
	fn(bsd->readable_stream, bsd->readable_private);
}

static void tstream_bsd_readable_im_handler(struct tevent_context *ev,
					    struct tevent_immediate *im,
					    void *private_data)
{
	struct tstream_bsd *bsd = private_data;

	(void)ev;
	(void)im;
	if (bsd->readable_fn != NULL) {
		tstream_bsd_readable_fire(bsd);
	}
}

static void tstream_bsd_fail_other(struct tstream_bsd *bsd,
				   int err,
				   bool reading)
{
	struct tevent_req *other = reading ? bsd->writev_req : bsd->readv_req;

	if (err == EPIPE || bsd->ev == NULL) {
		return;
	}
	if (!reading && bsd->readable_fn != NULL) {
		/*
		 * A readv would fail at once now: call the handler from the
		 * loop. Rare enough for an immediate made on demand; without
		 * memory the socket's error still wakes the tevent_fd.
		 */
		if (bsd->readable_im == NULL) {
			bsd->readable_im = tevent_create_immediate(bsd);
		}
		if (bsd->readable_im != NULL) {
			tevent_schedule_immediate(
			    bsd->readable_im, bsd->ev,
			    tstream_bsd_readable_im_handler, bsd);
		}
		return;
	}
	if (other == NULL) {
		return;
	}
	tevent_req_defer_callback(other, bsd->ev);
	tevent_req_error(other, err);
}

/*
 * Runs when the stream's tevent_fd is freed: by the stream, or with its
 * event context, which is the fde's talloc parent. So the fde is also the
 * guard that tells the stream its context is gone (a guard chunk of its
 * own under the context cost ~0.1 KiB per idle stream). The fd is the
 * stream's: it is not closed here.
 */
static void tstream_bsd_fde_gone(struct tevent_context *ev,
				 struct tevent_fd *fde,
				 int fd,
				 void *private_data)
{
	struct tstream_bsd *bsd = private_data;

	(void)ev;
	(void)fd;
	if (bsd->fde == fde) {
		bsd->fde = NULL;
		bsd->ev = NULL;
	}
}

static int tstream_bsd_want(struct tstream_bsd *bsd,
			    struct tevent_context *ev,
			    uint16_t flag)
{
	if (bsd->fde == NULL || bsd->ev != ev) {
		TALLOC_FREE(bsd->fde);
		bsd->fde_flags |= flag;
		bsd->fde = tevent_add_fd(ev, ev, bsd->fd, bsd->fde_flags,
					 tstream_bsd_fde_handler, bsd);
		if (bsd->fde == NULL) {
			bsd->fde_flags = 0;
			return ENOMEM;
		}
		tevent_fd_set_close_fn(bsd->fde, tstream_bsd_fde_gone);
		bsd->ev = ev;
		return 0;
	}
	if ((bsd->fde_flags & flag) != flag) {
		bsd->fde_flags |= flag;
		tevent_fd_set_flags(bsd->fde, bsd->fde_flags);
	}
	return 0;
}

static void tstream_bsd_unwant(struct tstream_bsd *bsd, uint16_t flag)
{
	if ((bsd->fde_flags & flag) == 0) {
		return;
	}
	bsd->fde_flags &= ~flag;
	if (bsd->fde != NULL) {
		tevent_fd_set_flags(bsd->fde, bsd->fde_flags);
	}
}

static void tstream_bsd_fde_handler(struct tevent_context *ev,
				    struct tevent_fd *fde,
				    uint16_t flags,
				    void *private_data)
{
	struct tstream_bsd *bsd = private_data;

	/*
	 * One direction per call: completing a request runs the caller's
	 * callback, which may free bsd. Level triggering brings us back
	 * for the other direction.
	 */
	if ((flags & TEVENT_FD_WRITE) != 0 && bsd->writev_req != NULL) {
		/*
		 * With a reader waiting too, alternate: a relay writing a
		 * steady flow to this socket must not starve its reading.
		 */
		bool both =
		    (flags & TSOCKET_BSD_READ_EVENTS) != 0 &&
		    (bsd->readv_req != NULL || bsd->readable_fn != NULL);

		if (!both || !bsd->read_first) {
			bsd->read_first = both;
			tstream_bsd_writev_try(bsd->writev_req);
			return;
		}
		bsd->read_first = false;
	}
	if ((flags & TSOCKET_BSD_READ_EVENTS) != 0) {
		bsd->drained = false;
		if (bsd->readv_req != NULL) {
			tstream_bsd_readv_try(bsd->readv_req);
			return;
		}
		if (bsd->readable_fn != NULL) {
			/* bytes, EOF or an error: the readv that follows
			 * takes them (TEVENT_FD_READ stays set for it) */
			tstream_bsd_readable_fire(bsd);
			return;
		}
		if (bsd->writev_req != NULL &&
		    tstream_bsd_writev_try(bsd->writev_req)) {
			/* an error (RST) reported as readability */
			return;
		}
		/*
		 * Bytes or an EOF nobody reads yet (the flag is kept
		 * lazily, see tstream_bsd_readv_cleanup): stop polling
		 * for them instead of spinning. A reset then shows up at
		 * the next readv, which fails a waiting writev too.
		 */
		tstream_bsd_unwant(bsd, TEVENT_FD_READ);
		return;
	}
	if ((flags & TEVENT_FD_WRITE) != 0) {
		tstream_bsd_unwant(bsd, TEVENT_FD_WRITE);
	}
}

static ssize_t tstream_bsd_pending_bytes(struct tstream_context *stream)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);
	int avail = 0;

	if (bsd->fd == -1) {
		errno = ENOTCONN;
		return -1;
	}
	if (bsd->read_error != 0) {
		errno = bsd->read_error;
		return -1;
	}
	if (ioctl(bsd->fd, FIONREAD, &avail) == -1) {
		return -1;
	}
	return (ssize_t)bsd->rahead_len + avail;
}

/*
 * Copies the caller's vector so it can be advanced; small ones live in
 * the state itself.
 */
static struct iovec *tstream_bsd_copy_vector(TALLOC_CTX *mem_ctx,
					     struct iovec *inline_iov,
					     const struct iovec *vector,
					     size_t count,
					     size_t spare)
{
	struct iovec *copy = inline_iov;

	if (count > TSTREAM_BSD_INLINE_IOV) {
		copy = talloc_array(mem_ctx, struct iovec, count + spare);
		if (copy == NULL) {
			return NULL;
		}
	}
	memcpy(copy, vector, count * sizeof(struct iovec));
	return copy;
}

/*
 * Consumes n bytes from the front of *vector / *count, skipping empty
 * entries. Returns true when the vector is exhausted.
 */
static bool tstream_bsd_advance(struct iovec **vector, int *count, size_t n)
{
	struct iovec *v = *vector;
	int c = *count;

	while (c > 0) {
		if (n < v->iov_len) {
			v->iov_base = (uint8_t *)v->iov_base + n;
			v->iov_len -= n;
			break;
		}
		n -= v->iov_len;
		v++;
		c--;
	}
	*vector = v;
	*count = c;
	return c == 0;
}

static void tstream_bsd_readv_cleanup(struct tevent_req *req,
				      enum tevent_req_state req_state)
{
	struct tstream_bsd_readv_state *state = _tevent_req_data(req);

	if (state->bsd != NULL && state->bsd->readv_req == req) {
		/*
		 * TEVENT_FD_READ stays set: the next readv usually follows
		 * at once (a PDU body after its header), and the handler
		 * drops the flag if nobody asks.
		 */
		state->bsd->readv_req = NULL;
	}
	state->bsd = NULL;
}

/* The read-ahead buffer goes as soon as it is empty. */
static void tstream_bsd_rahead_release(struct tstream_bsd *bsd)
{
	if (bsd->rahead_len == 0) {
		TALLOC_FREE(bsd->rahead);
		bsd->rahead_off = 0;
	}
}

/*
 * One readv(2) into *vector / *count without blocking; the vector has a
 * spare entry at [*count] for the read-ahead buffer (made for this read
 * and freed again unless bytes went into it). Returns the bytes
 * that went into the vector (advanced past them; a short read leaves
 * the socket drained), 0 when there was nothing to read, or -1 with
 * *perrno (EPIPE at the end of the stream), recorded as sticky.
 *
 * Only called with the read-ahead buffer empty (a readv takes it first).
 */
static ssize_t tstream_bsd_readv_once(struct tstream_bsd *bsd,
				      struct iovec **vector,
				      int *count,
				      int *perrno)
{
	struct iovec *v = *vector;
	size_t want = 0;
	size_t capacity;
	int iovcnt = *count;
	ssize_t ret;
	int i;

	/*
	 * want is everything readv(2) may put into the caller's buffers,
	 * all of them: only bytes beyond it are read-ahead. (Stopping the
	 * sum at the read-ahead size once booked bytes that had landed in
	 * later buffers as read-ahead, with no buffer behind them: issue
	 * 13.) The generic layer caps the total at INT_MAX.
	 */
	for (i = 0; i < *count; i++) {
		want += v[i].iov_len;
	}
	capacity = want;
	if (want < TSTREAM_BSD_READAHEAD && *count < IOV_MAX) {
		if (bsd->rahead == NULL) {
			bsd->rahead = talloc_size(bsd, TSTREAM_BSD_READAHEAD);
		}
		if (bsd->rahead != NULL) {
			/* the spare entry after the caller's vector */
			v[iovcnt].iov_base = bsd->rahead;
			v[iovcnt].iov_len = TSTREAM_BSD_READAHEAD;
			iovcnt++;
			capacity += TSTREAM_BSD_READAHEAD;
		}
	}

	ret = readv(bsd->fd, v, iovcnt);
	if (ret <= (ssize_t)want) {
		/* nothing went ahead (or nothing came at all) */
		TALLOC_FREE(bsd->rahead);
	}
	if (ret == 0) {
		/* the peer closed: a read never reports 0 bytes */
		tstream_bsd_fail(bsd, EPIPE, true);
		*perrno = EPIPE;
		return -1;
	}
	if (ret == -1) {
		int err = errno;

		if (tsocket_bsd_errno_is_retry(err)) {
			bsd->drained = true;
			return 0;
		}
		tstream_bsd_fail(bsd, err, true);
		tstream_bsd_fail_other(bsd, err, true);
		*perrno = err;
		return -1;
	}
	bsd->drained = (size_t)ret < capacity;
	if ((size_t)ret > want) {
		/* the caller's vector is full, the rest went ahead */
		bsd->rahead_off = 0;
		bsd->rahead_len = (size_t)ret - want;
		ret = (ssize_t)want;
	}
	tstream_bsd_advance(vector, count, (size_t)ret);
	return ret;
}

/*
 * One readv without blocking. Returns true when the request finished,
 * false when it waits for more bytes.
 */
static bool tstream_bsd_readv_try(struct tevent_req *req)
{
	struct tstream_bsd_readv_state *state = _tevent_req_data(req);
	ssize_t ret;
	int err = 0;

	ret = tstream_bsd_readv_once(state->bsd, &state->vector, &state->count,
				     &err);
	if (ret == -1) {
		tevent_req_error(req, err);
		return true;
	}
	state->ret += ret;
	if (state->count > 0) {
		/* a short read means the socket is drained: wait */
		return false;
	}
	tevent_req_done(req);
	return true;
}

/*
 * Serves a readv from the read-ahead buffer. Returns the bytes copied
 * (the vector is advanced past them).
 */
static size_t tstream_bsd_take_readahead(struct tstream_bsd *bsd,
					 struct iovec **vector,
					 int *count)
{
	size_t taken = 0;

	while (bsd->rahead_len > 0 && *count > 0) {
		size_t n = (*vector)[0].iov_len;

		if (n > bsd->rahead_len) {
			n = bsd->rahead_len;
		}
		memcpy((*vector)[0].iov_base, bsd->rahead + bsd->rahead_off, n);
		bsd->rahead_off += n;
		bsd->rahead_len -= n;
		taken += n;
		tstream_bsd_advance(vector, count, n);
	}
	tstream_bsd_rahead_release(bsd);
	return taken;
}

static struct tevent_req *tstream_bsd_readv_send(TALLOC_CTX *mem_ctx,
						 struct tevent_context *ev,
						 struct tstream_context *stream,
						 struct iovec *vector,
						 size_t count)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);
	struct tevent_req *req;
	struct tstream_bsd_readv_state *state;
	int err;

	req =
	    tevent_req_create(mem_ctx, &state, struct tstream_bsd_readv_state);
	if (req == NULL) {
		return NULL;
	}
	state->bsd = bsd;

	if (bsd->fd == -1) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	if (bsd->readv_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}
	if (bsd->read_error != 0) {
		tevent_req_error(req, bsd->read_error);
		return tevent_req_post(req, ev);
	}
	if (count == 0 || count > IOV_MAX) {
		tevent_req_error(req, count == 0 ? EINVAL : EMSGSIZE);
		return tevent_req_post(req, ev);
	}
	state->vector =
	    tstream_bsd_copy_vector(state, state->inline_iov, vector, count, 1);
	if (tevent_req_nomem(state->vector, req)) {
		return tevent_req_post(req, ev);
	}
	state->count = (int)count;
	if (tstream_bsd_advance(&state->vector, &state->count, 0)) {
		/* only empty buffers */
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}

	state->ret =
	    (int)tstream_bsd_take_readahead(bsd, &state->vector, &state->count);
	if (state->count == 0) {
		tevent_req_done(req);
		return tevent_req_post(req, ev);
	}
	if (!bsd->drained && tstream_bsd_readv_try(req)) {
		return tevent_req_post(req, ev);
	}

	err = tstream_bsd_want(bsd, ev, TEVENT_FD_READ);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	bsd->readv_req = req;
	/* only a waiting request is known to bsd and must leave it */
	tevent_req_set_cleanup_fn(req, tstream_bsd_readv_cleanup);
	return req;
}

static int tstream_bsd_readv_recv(struct tevent_req *req, int *perrno)
{
	struct tstream_bsd_readv_state *state = _tevent_req_data(req);
	int ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		ret = state->ret;
	}
	tevent_req_received(req);
	return ret;
}

static void tstream_bsd_writev_cleanup(struct tevent_req *req,
				       enum tevent_req_state req_state)
{
	struct tstream_bsd_writev_state *state = _tevent_req_data(req);

	if (state->bsd != NULL && state->bsd->writev_req == req) {
		/* sockets are writable nearly always: drop it right away */
		tstream_bsd_unwant(state->bsd,
				   TSOCKET_BSD_WRITE_WAIT & ~TEVENT_FD_READ);
		state->bsd->writev_req = NULL;
	}
	state->bsd = NULL;
}

/*
 * writev(2) on something that is not a socket (a pipe) cannot take
 * MSG_NOSIGNAL: block SIGPIPE around it and swallow the one it raised.
 */
static ssize_t tstream_bsd_writev_nosigpipe(int fd,
					    const struct iovec *iov,
					    int count)
{
	sigset_t pipe_set, old_set, pending;
	bool was_pending;
	ssize_t ret;
	int err;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	if (pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set) != 0) {
		return writev(fd, iov, count);
	}
	sigemptyset(&pending);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE) == 1;

	ret = writev(fd, iov, count);
	err = errno;

	if (ret == -1 && err == EPIPE && !was_pending) {
		struct timespec zero = {0, 0};

		while (sigtimedwait(&pipe_set, NULL, &zero) == -1 &&
		       errno == EINTR) {
		}
	}
	pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	errno = err;
	return ret;
}

/*
 * One write of *vector / *count without blocking. Returns the bytes
 * written (the vector is advanced past them), 0 when the socket buffer
 * is full, or -1 with *perrno, recorded as sticky.
 */
static ssize_t tstream_bsd_writev_once(struct tstream_bsd *bsd,
				       struct iovec **vector,
				       int *count,
				       int *perrno)
{
	ssize_t ret;

	for (;;) {
		if (bsd->is_socket) {
			struct msghdr msg = {
			    .msg_iov = *vector,
			    .msg_iovlen = (size_t)*count,
			};

			ret =
			    sendmsg(bsd->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (ret == -1 && errno == ENOTSOCK) {
				bsd->is_socket = false;
				continue;
			}
		} else {
			ret = tstream_bsd_writev_nosigpipe(bsd->fd, *vector,
							   *count);
		}
		break;
	}
	if (ret == -1) {
		int err = errno;

		if (tsocket_bsd_errno_is_retry(err)) {
			return 0;
		}
		tstream_bsd_fail(bsd, err, false);
		tstream_bsd_fail_other(bsd, err, false);
		*perrno = err;
		return -1;
	}
	if (ret == 0) {
		/* nothing taken from a non-empty vector: treat as closed */
		tstream_bsd_fail(bsd, EPIPE, false);
		*perrno = EPIPE;
		return -1;
	}
	tstream_bsd_advance(vector, count, (size_t)ret);
	return ret;
}

static bool tstream_bsd_writev_try(struct tevent_req *req)
{
	struct tstream_bsd_writev_state *state = _tevent_req_data(req);
	ssize_t ret;
	int err = 0;

	ret = tstream_bsd_writev_once(state->bsd, &state->vector, &state->count,
				      &err);
	if (ret == -1) {
		tevent_req_error(req, err);
		return true;
	}
	state->ret += ret;
	if (state->count > 0) {
		/* socket buffer full: wait for room */
		return false;
	}
	tevent_req_done(req);
	return true;
}

static struct tevent_req *tstream_bsd_writev_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream,
    const struct iovec *vector,
    size_t count)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);
	struct tevent_req *req;
	struct tstream_bsd_writev_state *state;
	int err;

	req =
	    tevent_req_create(mem_ctx, &state, struct tstream_bsd_writev_state);
	if (req == NULL) {
		return NULL;
	}
	state->bsd = bsd;

	if (bsd->fd == -1) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	if (bsd->writev_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}
	if (bsd->write_error != 0) {
		tevent_req_error(req, bsd->write_error);
		return tevent_req_post(req, ev);
	}
	if (count == 0 || count > IOV_MAX) {
		tevent_req_error(req, count == 0 ? EINVAL : EMSGSIZE);
		return tevent_req_post(req, ev);
	}
	state->vector =
	    tstream_bsd_copy_vector(state, state->inline_iov, vector, count, 0);
	if (tevent_req_nomem(state->vector, req)) {
		return tevent_req_post(req, ev);
	}
	state->count = (int)count;
	if (tstream_bsd_advance(&state->vector, &state->count, 0)) {
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}

	if (tstream_bsd_writev_try(req)) {
		return tevent_req_post(req, ev);
	}

	err = tstream_bsd_want(bsd, ev, TSOCKET_BSD_WRITE_WAIT);
	if (err != 0) {
		tevent_req_error(req, err);
		return tevent_req_post(req, ev);
	}
	bsd->writev_req = req;
	/* only a waiting request is known to bsd and must leave it */
	tevent_req_set_cleanup_fn(req, tstream_bsd_writev_cleanup);
	return req;
}

static int tstream_bsd_writev_recv(struct tevent_req *req, int *perrno)
{
	struct tstream_bsd_writev_state *state = _tevent_req_data(req);
	int ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		ret = state->ret;
	}
	tevent_req_received(req);
	return ret;
}

static struct tevent_req *tstream_bsd_disconnect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);
	struct tevent_req *req;
	int *state;

	req = tevent_req_create(mem_ctx, &state, int);
	if (req == NULL) {
		return NULL;
	}
	if (bsd->readv_req != NULL || bsd->writev_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}
	if (bsd->fd == -1) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	TALLOC_FREE(bsd->fde);
	bsd->fde_flags = 0;
	close(bsd->fd);
	bsd->fd = -1;
	/* what was read ahead goes with the socket */
	TALLOC_FREE(bsd->rahead);
	bsd->rahead_len = 0;

	tevent_req_done(req);
	return tevent_req_post(req, ev);
}

static int tstream_bsd_simple_recv(struct tevent_req *req, int *perrno)
{
	int ret = tsocket_simple_int_recv(req, perrno);

	tevent_req_received(req);
	return ret;
}

static struct tevent_req *tstream_bsd_shutdown_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);
	struct tevent_req *req;
	int *state;

	req = tevent_req_create(mem_ctx, &state, int);
	if (req == NULL) {
		return NULL;
	}
	if (bsd->writev_req != NULL) {
		tevent_req_error(req, EBUSY);
		return tevent_req_post(req, ev);
	}
	if (bsd->fd == -1) {
		tevent_req_error(req, ENOTCONN);
		return tevent_req_post(req, ev);
	}
	if (shutdown(bsd->fd, SHUT_WR) == -1) {
		int err = errno;

		tevent_req_error(req, err == ENOTSOCK ? EOPNOTSUPP : err);
		return tevent_req_post(req, ev);
	}
	tstream_bsd_fail(bsd, EPIPE, false);

	tevent_req_done(req);
	return tevent_req_post(req, ev);
}

/*
 * The generic layer's fast path (tstream_try_io_fn of
 * tsocket_private.h): the same readv/writev as the requests below,
 * tried before any request of ours exists. Only called with no request
 * of ours outstanding in that direction; 0 lets the request path deal
 * with everything else.
 */
static ssize_t tstream_bsd_try_readv(struct tstream_context *stream,
				     struct iovec **vector,
				     int *count,
				     int *perrno)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);
	size_t taken;
	ssize_t ret;

	if (bsd->fd == -1 || bsd->readv_req != NULL) {
		return 0;
	}
	if (bsd->read_error != 0) {
		*perrno = bsd->read_error;
		return -1;
	}
	tstream_bsd_advance(vector, count, 0);
	taken = tstream_bsd_take_readahead(bsd, vector, count);
	if (*count == 0 || bsd->drained) {
		return (ssize_t)taken;
	}
	ret = tstream_bsd_readv_once(bsd, vector, count, perrno);
	if (ret == -1) {
		return -1;
	}
	return (ssize_t)taken + ret;
}

static ssize_t tstream_bsd_try_writev(struct tstream_context *stream,
				      struct iovec **vector,
				      int *count,
				      int *perrno)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);

	if (bsd->fd == -1 || bsd->writev_req != NULL) {
		return 0;
	}
	if (bsd->write_error != 0) {
		*perrno = bsd->write_error;
		return -1;
	}
	tstream_bsd_advance(vector, count, 0);
	return tstream_bsd_writev_once(bsd, vector, count, perrno);
}

/*
 * What the readable handler needs first: ENOTCONN, or
 * *pready when a readv would not wait, else TEVENT_FD_READ wanted.
 * Returns 0 with *pready false when the caller must register its waiter.
 */
static int tstream_bsd_wait_prepare(struct tstream_bsd *bsd,
				    struct tevent_context *ev,
				    bool *pready)
{
	if (bsd->fd == -1) {
		return ENOTCONN;
	}
	if (bsd->read_error != 0 || bsd->rahead_len > 0) {
		/* the readv fails or is served at once */
		*pready = true;
		return 0;
	}
	return tstream_bsd_want(bsd, ev, TEVENT_FD_READ);
}

/*
 * The readable handler (of tstream_set_readable_handler() or of a
 * tstream_wait_readable request): it waits on the socket's tevent_fd
 * with no allocation.
 */
static int tstream_bsd_set_readable_handler(struct tstream_context *stream,
					    struct tevent_context *ev,
					    tstream_readable_handler_t handler,
					    void *private_data,
					    bool *pready)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);
	int err;

	if (handler == NULL) {
		/* TEVENT_FD_READ stays: the handler drops it if nobody reads */
		bsd->readable_fn = NULL;
		bsd->readable_private = NULL;
		TALLOC_FREE(bsd->readable_im);
		return 0;
	}
	err = tstream_bsd_wait_prepare(bsd, ev, pready);
	if (err != 0 || *pready) {
		return err;
	}
	bsd->readable_fn = handler;
	bsd->readable_private = private_data;
	bsd->readable_stream = stream;
	return 0;
}

static int tstream_bsd_reset(struct tstream_context *stream);

static const struct tstream_context_ops tstream_bsd_ops = {
    .name = "bsd",
    .pending_bytes = tstream_bsd_pending_bytes,
    .readv_send = tstream_bsd_readv_send,
    .readv_recv = tstream_bsd_readv_recv,
    .writev_send = tstream_bsd_writev_send,
    .writev_recv = tstream_bsd_writev_recv,
    .disconnect_send = tstream_bsd_disconnect_send,
    .disconnect_recv = tstream_bsd_simple_recv,
    .shutdown_send = tstream_bsd_shutdown_send,
    .shutdown_recv = tstream_bsd_simple_recv,
    .set_readable_handler = tstream_bsd_set_readable_handler,
    .reset = tstream_bsd_reset,
};

/* Wraps fd; on failure the caller keeps the fd. */
static int tstream_bsd_wrap(TALLOC_CTX *mem_ctx,
			    int fd,
			    bool is_socket,
			    struct tstream_context **_stream,
			    const char *location)
{
	struct tstream_context *stream;
	struct tstream_bsd *bsd = NULL;

	stream = tstream_context_create(mem_ctx, &tstream_bsd_ops, &bsd,
					struct tstream_bsd, location);
	if (stream == NULL) {
		errno = ENOMEM;
		return -1;
	}
	bsd->fd = fd;
	bsd->is_socket = is_socket;
	talloc_set_destructor(bsd, tstream_bsd_destructor);
	_tstream_context_set_try(stream, tstream_bsd_try_readv,
				 tstream_bsd_try_writev);

	*_stream = stream;
	return 0;
}

_PUBLIC_ int _tstream_bsd_existing_socket(TALLOC_CTX *mem_ctx,
					  int fd,
					  struct tstream_context **_stream,
					  const char *location)
{
	int type;
	socklen_t len = sizeof(type);
	bool is_socket;

	if (fd < 0 || _stream == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (tsocket_bsd_set_nonblocking(fd) == -1) {
		return -1;
	}
	is_socket = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
	return tstream_bsd_wrap(mem_ctx, fd, is_socket, _stream, location);
}

_PUBLIC_ int tstream_bsd_set_keepalive(struct tstream_context *stream,
				       bool on,
				       unsigned idle_s,
				       unsigned interval_s,
				       unsigned count)
{
	struct tstream_bsd *bsd;
	int v = on ? 1 : 0;
	int opts[3][2] = {
	    {TCP_KEEPIDLE, (int)idle_s},
	    {TCP_KEEPINTVL, (int)interval_s},
	    {TCP_KEEPCNT, (int)count},
	};
	size_t i;

	if (stream == NULL) {
		errno = EINVAL;
		return -1;
	}
	bsd =
	    talloc_get_type(_tstream_context_data(stream), struct tstream_bsd);
	if (bsd == NULL || bsd->fd == -1) {
		errno = EINVAL;
		return -1;
	}
	if (setsockopt(bsd->fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof(v)) != 0) {
		return -1;
	}
	for (i = 0; on && i < 3; i++) {
		if (opts[i][1] > 0 &&
		    setsockopt(bsd->fd, IPPROTO_TCP, opts[i][0], &opts[i][1],
			       sizeof(opts[i][1])) != 0) {
			return -1;
		}
	}
	return 0;
}

/* SO_LINGER with a zero timeout: close(2) then sends a RST */
static int tstream_bsd_reset(struct tstream_context *stream)
{
	struct tstream_bsd *bsd = _tstream_context_data(stream);
	struct linger abortive = {.l_onoff = 1, .l_linger = 0};

	if (bsd->fd == -1) {
		errno = ENOTCONN;
		return -1;
	}
	if (!bsd->is_socket) {
		errno = EOPNOTSUPP;
		return -1;
	}
	return setsockopt(bsd->fd, SOL_SOCKET, SO_LINGER, &abortive,
			  sizeof(abortive));
}

_PUBLIC_ int tstream_bsd_set_nodelay(struct tstream_context *stream, bool on)
{
	struct tstream_bsd *bsd;
	int one = on ? 1 : 0;

	if (stream == NULL) {
		errno = EINVAL;
		return -1;
	}
	bsd = talloc_get_type(_tstream_context_data(stream), struct tstream_bsd);
	if (bsd == NULL || bsd->fd == -1) {
		errno = EINVAL;
		return -1;
	}
	return setsockopt(bsd->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

_PUBLIC_ int _tstream_unix_socketpair(TALLOC_CTX *mem_ctx1,
				      struct tstream_context **_stream1,
				      TALLOC_CTX *mem_ctx2,
				      struct tstream_context **_stream2,
				      const char *location)
{
	struct tstream_context *stream1 = NULL;
	int fds[2];

	if (_stream1 == NULL || _stream2 == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       fds) == -1) {
		return -1;
	}
	if (tstream_bsd_wrap(mem_ctx1, fds[0], true, &stream1, location) ==
	    -1) {
		close(fds[0]);
		close(fds[1]);
		errno = ENOMEM;
		return -1;
	}
	if (tstream_bsd_wrap(mem_ctx2, fds[1], true, _stream2, location) ==
	    -1) {
		talloc_free(stream1); /* closes fds[0] */
		close(fds[1]);
		errno = ENOMEM;
		return -1;
	}
	*_stream1 = stream1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Stream connect                                                      */
/* ------------------------------------------------------------------ */

struct tstream_bsd_connect_state {
	int fd;
	struct tevent_fd *fde;
};

static void tstream_bsd_connect_fde_handler(struct tevent_context *ev,
					    struct tevent_fd *fde,
					    uint16_t flags,
					    void *private_data);

static void tstream_bsd_connect_cleanup(struct tevent_req *req,
					enum tevent_req_state req_state)
{
	struct tstream_bsd_connect_state *state = _tevent_req_data(req);

	TALLOC_FREE(state->fde);
	if (req_state == TEVENT_REQ_DONE) {
		/* the fd goes to the stream made by _recv */
		return;
	}
	if (state->fd != -1) {
		close(state->fd);
		state->fd = -1;
	}
}

static struct tevent_req *tstream_bsd_connect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    const struct tsocket_address *local,
    const struct tsocket_address *remote,
    bool want_inet)
{
	const struct tsocket_address_bsd *lbsd = tsocket_address_bsd_get(local);
	const struct tsocket_address_bsd *rbsd =
	    tsocket_address_bsd_get(remote);
	struct tevent_req *req;
	struct tstream_bsd_connect_state *state;
	int ret;

	req = tevent_req_create(mem_ctx, &state,
				struct tstream_bsd_connect_state);
	if (req == NULL) {
		return NULL;
	}
	state->fd = -1;
	tevent_req_set_cleanup_fn(req, tstream_bsd_connect_cleanup);

	if (lbsd == NULL || rbsd == NULL ||
	    tsocket_bsd_is_inet_family(rbsd->u.sa.sa_family) != want_inet) {
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}

	state->fd = tsocket_bsd_socket(lbsd, rbsd, SOCK_STREAM, want_inet);
	if (state->fd == -1) {
		tevent_req_error(req, errno);
		return tevent_req_post(req, ev);
	}

	ret = connect(state->fd, &rbsd->u.sa, rbsd->sa_socklen);
	if (ret == 0) {
		tevent_req_done(req);
		return tevent_req_post(req, ev);
	}
	if (errno != EINPROGRESS && errno != EINTR) {
		tevent_req_error(req, errno);
		return tevent_req_post(req, ev);
	}

	/* READ too: only then does tevent report a failed connect */
	state->fde = tevent_add_fd(ev, state, state->fd,
				   TEVENT_FD_READ | TEVENT_FD_WRITE,
				   tstream_bsd_connect_fde_handler, req);
	if (tevent_req_nomem(state->fde, req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

static void tstream_bsd_connect_fde_handler(struct tevent_context *ev,
					    struct tevent_fd *fde,
					    uint16_t flags,
					    void *private_data)
{
	struct tevent_req *req =
	    talloc_get_type_abort(private_data, struct tevent_req);
	struct tstream_bsd_connect_state *state = _tevent_req_data(req);
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(state->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
		err = errno;
	}
	if (err != 0) {
		tevent_req_error(req, err);
		return;
	}
	tevent_req_done(req);
}

static int tstream_bsd_connect_recv(struct tevent_req *req,
				    int *perrno,
				    TALLOC_CTX *mem_ctx,
				    struct tstream_context **stream,
				    const char *location)
{
	struct tstream_bsd_connect_state *state = _tevent_req_data(req);
	int ret;

	ret = tsocket_simple_int_recv(req, perrno);
	if (ret == 0) {
		if (stream == NULL) {
			*perrno = EINVAL;
			ret = -1;
		} else if (tstream_bsd_wrap(mem_ctx, state->fd, true, stream,
					    location) == -1) {
			*perrno = errno;
			ret = -1;
		} else {
			state->fd = -1;
		}
	}
	if (state->fd != -1) {
		close(state->fd);
		state->fd = -1;
	}
	tevent_req_received(req);
	return ret;
}

_PUBLIC_ struct tevent_req *tstream_inet_tcp_connect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    const struct tsocket_address *local,
    const struct tsocket_address *remote)
{
	return tstream_bsd_connect_send(mem_ctx, ev, local, remote, true);
}

_PUBLIC_ int _tstream_inet_tcp_connect_recv(struct tevent_req *req,
					    int *perrno,
					    TALLOC_CTX *mem_ctx,
					    struct tstream_context **stream,
					    const char *location)
{
	return tstream_bsd_connect_recv(req, perrno, mem_ctx, stream, location);
}

_PUBLIC_ struct tevent_req *tstream_unix_connect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    const struct tsocket_address *local,
    const struct tsocket_address *remote)
{
	return tstream_bsd_connect_send(mem_ctx, ev, local, remote, false);
}

/* parenthesised: the header also makes this name a 4-or-5-argument macro */
_PUBLIC_ int(_tstream_unix_connect_recv)(struct tevent_req *req,
					 int *perrno,
					 TALLOC_CTX *mem_ctx,
					 struct tstream_context **stream,
					 const char *location)
{
	return tstream_bsd_connect_recv(req, perrno, mem_ctx, stream, location);
}
