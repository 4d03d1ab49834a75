/* SPDX-License-Identifier: MIT */
/*
 * Shared plumbing of the libFuzzer targets (see fuzz_common.h).
 */
#include "fuzz_common.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <tsocket.h>

/* A single input never needs more: the largest is a few 10 KiB. */
#define FUZZ_MAX_STEPS   1000000
#define FUZZ_MAX_SECONDS 10

struct fuzz_peer {
	struct tevent_context *ev;
	int fd;
	struct tevent_fd *fde;
	const uint8_t *data;
	size_t len;
	size_t sent;
	const uint8_t *chunks;
	size_t num_chunks;
	size_t next_chunk;
	bool write_done;
	bool read_done;
	bool capture;
	bool keep_open;
	uint8_t *received;
	size_t num_received;
};

static void fuzz_tmpdir_remove(void);

void fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: fuzz assertion failed: %s\n", file, line, what);
	/* abort() skips atexit(): keys and keytabs must not stay behind */
	fuzz_tmpdir_remove();
	abort();
}

static int fuzz_peer_destructor(struct fuzz_peer *peer)
{
	TALLOC_FREE(peer->fde);
	if (peer->fd != -1) {
		close(peer->fd);
		peer->fd = -1;
	}
	return 0;
}

static void fuzz_peer_update_flags(struct fuzz_peer *peer)
{
	uint16_t flags = 0;

	if (!peer->write_done) {
		flags |= TEVENT_FD_WRITE;
	}
	if (!peer->read_done) {
		flags |= TEVENT_FD_READ;
	}
	tevent_fd_set_flags(peer->fde, flags);
}

static void fuzz_peer_write(struct fuzz_peer *peer)
{
	size_t n = peer->len - peer->sent;
	ssize_t ret;

	if (peer->num_chunks > 0) {
		size_t c = (size_t)peer->chunks[peer->next_chunk] + 1;

		if (c < n) {
			n = c;
		}
	}
	if (n > 0) {
		ret = send(peer->fd, peer->data + peer->sent, n,
			   MSG_NOSIGNAL | MSG_DONTWAIT);
		if (ret == -1 && (errno == EAGAIN || errno == EINTR)) {
			return;
		}
		if (ret == -1) {
			/* the near end is gone: nothing more to say */
			peer->write_done = true;
			return;
		}
		peer->sent += (size_t)ret;
		if (peer->num_chunks > 0 && (size_t)ret == n) {
			peer->next_chunk =
			    (peer->next_chunk + 1) % peer->num_chunks;
		}
	}
	if (peer->sent == peer->len) {
		if (!peer->keep_open) {
			shutdown(peer->fd, SHUT_WR);
		}
		peer->write_done = true;
	}
}

static void fuzz_peer_read(struct fuzz_peer *peer)
{
	uint8_t buf[16384];
	ssize_t ret;

	ret = recv(peer->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (ret == -1 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	if (ret <= 0) {
		peer->read_done = true;
		return;
	}
	if (peer->capture) {
		uint8_t *r = talloc_realloc(peer, peer->received, uint8_t,
					    peer->num_received + (size_t)ret);

		FUZZ_ASSERT(r != NULL);
		memcpy(r + peer->num_received, buf, (size_t)ret);
		peer->received = r;
		peer->num_received += (size_t)ret;
	}
}

void fuzz_peer_drain(struct fuzz_peer *peer)
{
	size_t before;

	do {
		before = peer->num_received;
		fuzz_peer_read(peer);
	} while (!peer->read_done && peer->num_received > before);
}

void fuzz_peer_keep_open(struct fuzz_peer *peer)
{
	peer->keep_open = true;
}

void fuzz_peer_send(struct fuzz_peer *peer,
		    const uint8_t *data,
		    size_t len,
		    bool finish)
{
	peer->data = data;
	peer->len = len;
	peer->sent = 0;
	peer->next_chunk = 0;
	peer->keep_open = !finish;
	peer->write_done = false;
	fuzz_peer_update_flags(peer);
}

void fuzz_peer_capture(struct fuzz_peer *peer)
{
	peer->capture = true;
}

const uint8_t *fuzz_peer_received(const struct fuzz_peer *peer, size_t *len)
{
	*len = peer->num_received;
	return peer->received;
}

static void fuzz_peer_handler(struct tevent_context *ev,
			      struct tevent_fd *fde,
			      uint16_t flags,
			      void *private_data)
{
	struct fuzz_peer *peer =
	    talloc_get_type_abort(private_data, struct fuzz_peer);

	if ((flags & TEVENT_FD_WRITE) && !peer->write_done) {
		fuzz_peer_write(peer);
	}
	if ((flags & TEVENT_FD_READ) && !peer->read_done) {
		fuzz_peer_read(peer);
	}
	fuzz_peer_update_flags(peer);
}

struct fuzz_peer *fuzz_peer_create(TALLOC_CTX *mem_ctx,
				   struct tevent_context *ev,
				   const uint8_t *data,
				   size_t len,
				   const uint8_t *chunks,
				   size_t num_chunks,
				   struct tstream_context **stream)
{
	struct fuzz_peer *peer;
	int sv[2];

	/* the library writes to its end too: never die of SIGPIPE */
	signal(SIGPIPE, SIG_IGN);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       sv) == -1) {
		return NULL;
	}
	peer = talloc_zero(mem_ctx, struct fuzz_peer);
	if (peer == NULL) {
		close(sv[0]);
		close(sv[1]);
		errno = ENOMEM;
		return NULL;
	}
	peer->ev = ev;
	peer->fd = sv[1];
	peer->data = data;
	peer->len = len;
	peer->chunks = chunks;
	peer->num_chunks = num_chunks;
	talloc_set_destructor(peer, fuzz_peer_destructor);

	if (tstream_bsd_existing_socket(mem_ctx, sv[0], stream) == -1) {
		int err = errno;

		close(sv[0]);
		talloc_free(peer);
		errno = err;
		return NULL;
	}
	peer->fde =
	    tevent_add_fd(ev, peer, peer->fd, TEVENT_FD_READ | TEVENT_FD_WRITE,
			  fuzz_peer_handler, peer);
	if (peer->fde == NULL) {
		TALLOC_FREE(*stream);
		talloc_free(peer);
		errno = ENOMEM;
		return NULL;
	}
	return peer;
}

bool fuzz_peer_done(const struct fuzz_peer *peer)
{
	return peer->write_done;
}

static void fuzz_guard_expired(struct tevent_context *ev,
			       struct tevent_timer *te,
			       struct timeval now,
			       void *private_data)
{
	fprintf(stderr, "fuzz: %s did not finish within %d s (hang)\n",
		(const char *)private_data, FUZZ_MAX_SECONDS);
	fuzz_tmpdir_remove();
	abort();
}

void fuzz_loop_until(struct tevent_context *ev,
		     const bool *done,
		     const char *what)
{
	struct tevent_timer *guard;
	unsigned steps = 0;

	guard = tevent_add_timer(
	    ev, ev, tevent_timeval_current_ofs(FUZZ_MAX_SECONDS, 0),
	    fuzz_guard_expired, (void *)(uintptr_t)what);
	FUZZ_ASSERT(guard != NULL);
	while (!*done) {
		if (++steps > FUZZ_MAX_STEPS) {
			fprintf(stderr,
				"fuzz: %s still busy after %d loop "
				"steps (livelock)\n",
				what, FUZZ_MAX_STEPS);
			abort();
		}
		FUZZ_ASSERT(tevent_loop_once(ev) == 0);
	}
	talloc_free(guard);
}

struct tevent_context *fuzz_ev_create(TALLOC_CTX *mem_ctx)
{
	struct tevent_context *ev = tevent_context_init(mem_ctx);

	FUZZ_ASSERT(ev != NULL);
	return ev;
}

static char fuzz_tmpdir_path[4096];

static int fuzz_rm_one(const char *path,
		       const struct stat *st,
		       int type,
		       struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

static void fuzz_tmpdir_remove(void)
{
	if (fuzz_tmpdir_path[0] != '\0') {
		nftw(fuzz_tmpdir_path, fuzz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	}
}

const char *fuzz_tmpdir(void)
{
	const char *base = getenv("TMPDIR");

	if (fuzz_tmpdir_path[0] != '\0') {
		return fuzz_tmpdir_path;
	}
	if (base == NULL || base[0] == '\0') {
		base = "/tmp";
	}
	snprintf(fuzz_tmpdir_path, sizeof(fuzz_tmpdir_path),
		 "%s/tsgate-fuzz.XXXXXX", base);
	if (mkdtemp(fuzz_tmpdir_path) == NULL) {
		perror("fuzz: mkdtemp");
		abort();
	}
	atexit(fuzz_tmpdir_remove);
	return fuzz_tmpdir_path;
}
