/* SPDX-License-Identifier: MIT */
/*
 * Shared plumbing of the libFuzzer targets: a stream whose peer replays
 * the fuzz input, and a bounded event loop.
 */
#ifndef TSGATE_FUZZ_COMMON_H
#define TSGATE_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <talloc.h>
#include <tevent.h>

struct tstream_context;

/*
 * The far end of a socketpair: writes the given bytes into it in chunks
 * (sizes from the chunk plan, or all at once when it is empty), then
 * shuts its writing side down; reads and throws away whatever the near
 * end sends.
 */
struct fuzz_peer;

/**
 * @brief A socketpair: *stream is the near end (a BSD tstream, allocated
 * on mem_ctx); the returned peer (also on mem_ctx) feeds data to it.
 *
 * @param chunks  Optional bytes whose values (1..256) cut data into
 *                writes, cycled; NULL/0 for one write of everything.
 * @return The peer, or NULL (with errno set).
 */
struct fuzz_peer *fuzz_peer_create(TALLOC_CTX *mem_ctx,
				   struct tevent_context *ev,
				   const uint8_t *data,
				   size_t len,
				   const uint8_t *chunks,
				   size_t num_chunks,
				   struct tstream_context **stream);

/**
 * @brief Keep what the near end sends (for seed making) instead of
 * throwing it away; fuzz_peer_received() returns it.
 */
void fuzz_peer_capture(struct fuzz_peer *peer);
const uint8_t *fuzz_peer_received(const struct fuzz_peer *peer, size_t *len);
/** @brief Read what is already waiting (without the event loop). */
void fuzz_peer_drain(struct fuzz_peer *peer);

/**
 * @brief Do not shut down after the data: more comes with
 * fuzz_peer_send() (finish: shut down after that data).
 */
void fuzz_peer_keep_open(struct fuzz_peer *peer);
void fuzz_peer_send(struct fuzz_peer *peer,
		    const uint8_t *data,
		    size_t len,
		    bool finish);

/** @brief Whether the peer has written everything and shut down. */
bool fuzz_peer_done(const struct fuzz_peer *peer);

/**
 * @brief Run ev until *done is true. A loop that has not settled after
 * a generous number of steps or seconds is a hang: abort() with a
 * message naming what, so libFuzzer records the input.
 */
void fuzz_loop_until(struct tevent_context *ev,
		     const bool *done,
		     const char *what);

/** @brief A fresh event context (never NULL: aborts on failure). */
struct tevent_context *fuzz_ev_create(TALLOC_CTX *mem_ctx);

/** @brief abort() with a message when cond is false (also in -DNDEBUG). */
#define FUZZ_ASSERT(cond)                                     \
	do {                                                  \
		if (!(cond)) {                                \
			fuzz_fail(__FILE__, __LINE__, #cond); \
		}                                             \
	} while (0)

/** @brief For C APIs that take a non-const pointer they do not write. */
#define FUZZ_DISCARD_CONST(p) ((void *)(uintptr_t)(p))

void fuzz_fail(const char *file, int line, const char *what)
    __attribute__((noreturn));

/** @brief Make a temporary directory removed (with its files) at exit. */
const char *fuzz_tmpdir(void);

#endif
