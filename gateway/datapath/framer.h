/* SPDX-License-Identifier: MIT */
/*
 * The cut-through framer: the state machine with which the relay forwards
 * a framed route's PDUs as they arrive. It does no I/O: the relay reads
 * a chunk (as on a raw route), feeds it here, and learns how much of it
 * (and of header bytes held from earlier chunks) it may forward, how many
 * PDUs that completes, and whether the stream must be refused after it.
 *
 * Headers are checked before a byte of them is forwarded: a header split
 * over chunks is held (at most the framing's header size, 16 bytes) until
 * it is complete; a malformed one (EPROTO) or one announcing more than
 * max_pdu (EMSGSIZE) is never forwarded. Bodies are not looked at: they
 * are counted down to the PDU's end, so no framing here needs the whole
 * PDU in memory, and the relay holds one chunk per direction whatever the
 * PDU size. A stream that ends inside a PDU is refused (EPROTO,
 * "truncated") after what was forwarded of it.
 */
#ifndef TSGATE_FRAMER_H
#define TSGATE_FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* The largest header of any framing (ncacn's common header). */
#define TSGATE_FRAMER_MAX_HEADER 16

struct tsgate_framer {
	enum tsgate_config_framing framing;
	uint64_t max_pdu;
	/* bytes of the current PDU still to come after its header */
	uint64_t body_left;
	/* the next header, as far as it has come */
	uint8_t hdr[TSGATE_FRAMER_MAX_HEADER];
	uint8_t hdr_len;
	/* header bytes of earlier chunks, forwarded before this chunk's */
	uint8_t held[TSGATE_FRAMER_MAX_HEADER];
	uint8_t header_size;
};

/* What the relay may forward of one chunk. */
struct tsgate_framer_cut {
	const uint8_t *held; /* forward these held_len bytes first... */
	size_t held_len;
	size_t len;    /* ...then the chunk's first len bytes */
	uint64_t pdus; /* PDUs whose last byte is in what is forwarded */
	/*
	 * 0, or the verdict on the rest: EMSGSIZE (a header over max_pdu)
	 * or EPROTO (a malformed header). Forward what the cut says, then
	 * refuse the stream.
	 */
	int err;
};

/**
 * @brief Set a framer up for one direction of a framed route.
 * @param framing  Not raw.
 * @param max_pdu  The largest PDU, header included; 0: the default.
 * @return 0, or EINVAL (raw framing, or max_pdu below the header size).
 */
int tsgate_framer_init(struct tsgate_framer *f,
		       enum tsgate_config_framing framing,
		       uint64_t max_pdu);

/**
 * @brief Feed the next chunk of the stream.
 *
 * The chunk's bytes after the cut that are not refused (the start of a
 * header) are kept in the framer; the caller may reuse buf as soon as it
 * has forwarded the cut. cut->held points into the framer and stays valid
 * until the next call.
 */
void tsgate_framer_feed(struct tsgate_framer *f,
			const uint8_t *buf,
			size_t len,
			struct tsgate_framer_cut *cut);

/**
 * @brief Whether the stream may end here.
 * @return true between PDUs; false inside a header or body (truncated).
 */
bool tsgate_framer_at_boundary(const struct tsgate_framer *f);

#endif /* TSGATE_FRAMER_H */
