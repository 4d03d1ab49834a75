/* SPDX-License-Identifier: MIT */
/*
 * The relay tests' rig: a relay between two unix socketpairs and a test
 * peer on each far end (test_relay.c, test_relay_framed.c).
 */
#ifndef TSGATE_TEST_RELAY_RIG_H
#define TSGATE_TEST_RELAY_RIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <talloc.h>
#include <tevent.h>

#include "framing.h"
#include "relay.h"

/*
 * A test peer: a tstream that writes `out` (then half-closes, if asked)
 * and reads everything until end of stream into `in`.
 */
struct peer {
	struct tstream_context *s;
	const uint8_t *out;
	size_t out_len;
	bool shutdown_after;
	struct iovec iov;
	bool write_done;
	int write_err;

	uint8_t *in;
	size_t in_len;
	bool read_eof;
	int read_err;
	bool read_done;
};

/*
 * An echo peer: what it reads it writes back, one chunk at a time, and
 * half-closes at end of stream (the way a real echo backend does).
 */
struct echo_peer {
	struct tstream_context *s;
	uint8_t *buf;
	size_t len;
	struct iovec iov;
	uint64_t echoed;
	bool done;
	int err;
};

/* The relay between two socketpairs, and the two test peers. */
struct rig {
	struct peer *client;  /* the test's client end */
	struct peer *backend; /* the test's backend end */
	struct tstream_context *relay_client;
	struct tstream_context *relay_backend;
	struct tsgate_conn_stats stats;
	struct tsgate_relay *relay;
	bool relay_done;
	int relay_ret;
	int relay_err;
	struct timeval started;
	struct timeval done_at;
};

void peer_start_write(struct peer *p,
		      const uint8_t *out,
		      size_t len,
		      bool shutdown_after);
void peer_read_next(struct peer *p);
void echo_next(struct echo_peer *e);
/* The relay's done callback: records the result, frees the relay. */
void rig_relay_done(struct tsgate_relay *relay, int err, void *private_data);
struct rig *rig_new(void);
struct rig *rig_start_swept(enum tsgate_config_framing framing,
			    size_t max_pdu,
			    uint32_t idle_ms,
			    bool read_client,
			    bool read_backend,
			    struct tsgate_relay_sweeper *sweeper);
struct rig *rig_start(enum tsgate_config_framing framing,
		      size_t max_pdu,
		      uint32_t idle_ms,
		      bool read_client,
		      bool read_backend);
long rig_ms(const struct rig *r);
uint8_t *pattern(size_t len, unsigned seed);

#endif /* TSGATE_TEST_RELAY_RIG_H */
