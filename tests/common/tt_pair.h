/* SPDX-License-Identifier: MIT */
/*
 * Socket fixtures of tsgate's Check tests: tstreams over socketpairs,
 * connected TCP pairs and listeners on loopback, so each test file does
 * not carry its own copy. Every helper fails the test (ck_assert) when
 * the kernel refuses; ports are always picked by the kernel (port 0), so
 * tests running in parallel never collide.
 */
#ifndef TT_PAIR_H
#define TT_PAIR_H

#include <stdint.h>
#include <talloc.h>

struct tstream_context;

/*
 * Two connected tstreams over a unix socketpair, both on tt_mem.
 */
void tt_stream_pair(struct tstream_context **a, struct tstream_context **b);

/*
 * A tstream (on mem_ctx) over one end of a unix socketpair; returns the
 * other end as a raw blocking fd, which the test writes to, reads from or
 * closes byte by byte (and must close).
 */
int tt_stream_raw_pair(TALLOC_CTX *mem_ctx, struct tstream_context **s);

/* Two connected blocking TCP sockets over 127.0.0.1 (close both). */
void tt_tcp_fds(int fds[2]);

/*
 * A listening TCP socket on 127.0.0.1 with a port the kernel picked
 * (returned in *pport), non-blocking, with the given backlog.
 */
int tt_listen_tcp(uint16_t *pport, int backlog);

/* A listening unix socket at path, non-blocking. */
int tt_listen_unix(const char *path, int backlog);

/*
 * Run tt_ev until lfd (a non-blocking listener) has a connection or
 * timeout_ms pass; the accepted fd (non-blocking), or -1 on timeout.
 */
int tt_accept(int lfd, unsigned timeout_ms);

#endif
