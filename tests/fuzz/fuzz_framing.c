/* SPDX-License-Identifier: MIT */
/*
 * fuzz-framing: every PDU framer of gateway/datapath/framing.h, and the
 * relay's cut-through state machine (framer.h).
 *
 * Input: [framing selector][max_pdu selector][n][n chunk sizes][stream]
 * The stream bytes reach tsgate_pdu_read_send() through a socketpair,
 * cut into writes by the chunk sizes. Checked: no PDU over max_pdu is
 * ever returned, every PDU is exactly one whole frame as the header
 * parser sizes it, the PDUs put back together are the stream's prefix,
 * and the final error says why the rest was refused (EPIPE only at a
 * clean end between PDUs).
 * The same stream, cut into chunks by the same sizes, goes through
 * tsgate_framer_feed() too. Checked: what it lets through is exactly the
 * stream up to the first refused header (or all of it), never a byte of
 * a refused header, with the verdict and PDU count the header parser
 * gives, and the stream may end only between PDUs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <tsocket.h>

#include "framer.h"
#include "framing.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const enum tsgate_config_framing framings[] = {
    TSGATE_CONFIG_FRAMING_RAW,
    TSGATE_CONFIG_FRAMING_LENGTH32,
    TSGATE_CONFIG_FRAMING_NBT,
    TSGATE_CONFIG_FRAMING_NCACN,
};

static void read_done(struct tevent_req *req)
{
	bool *done = tevent_req_callback_data_void(req);

	*done = true;
}

/* The header parser alone, on the bytes as they are. */
static void check_header_parser(const uint8_t *data, size_t size)
{
	size_t i;

	for (i = 1; i < sizeof(framings) / sizeof(framings[0]); i++) {
		size_t hdr = tsgate_framing_header_size(framings[i]);
		uint64_t total = 0;
		int ret;

		if (size < hdr) {
			continue;
		}
		ret = tsgate_framing_pdu_size(framings[i], data, &total);
		FUZZ_ASSERT(ret == 0 || ret == EPROTO);
		if (ret == 0) {
			FUZZ_ASSERT(total >= hdr);
		}
	}
	FUZZ_ASSERT(tsgate_framing_header_size(TSGATE_CONFIG_FRAMING_RAW) == 0);
}

/* What must have stopped the reader at offset off of the stream. */
static void check_final_error(enum tsgate_config_framing framing,
			      size_t max_pdu,
			      const uint8_t *stream,
			      size_t len,
			      size_t off,
			      int err)
{
	size_t hdr = tsgate_framing_header_size(framing);
	uint64_t total = 0;
	int ret;

	if (off == len) {
		FUZZ_ASSERT(err == EPIPE);
		return;
	}
	FUZZ_ASSERT(framing != TSGATE_CONFIG_FRAMING_RAW);
	if (len - off < hdr) {
		FUZZ_ASSERT(err == EPROTO); /* truncated header */
		return;
	}
	ret = tsgate_framing_pdu_size(framing, stream + off, &total);
	if (ret != 0) {
		FUZZ_ASSERT(err == EPROTO);
	} else if (total > max_pdu) {
		FUZZ_ASSERT(err == EMSGSIZE);
	} else {
		/* a PDU that fits but the stream ends inside it */
		FUZZ_ASSERT(total > len - off);
		FUZZ_ASSERT(err == EPROTO);
	}
}

/* Where the cut-through framer must stop on this stream, and why. */
struct framer_expect {
	size_t fwd;
	uint64_t pdus;
	int err;
	bool boundary;
};

static struct framer_expect framer_reference(enum tsgate_config_framing f,
					     size_t max_pdu,
					     const uint8_t *stream,
					     size_t len)
{
	size_t hdr = tsgate_framing_header_size(f);
	struct framer_expect e = {0};
	size_t off = 0;

	for (;;) {
		size_t rem = len - off;
		uint64_t total = 0;
		int ret;

		e.fwd = off;
		e.boundary = rem == 0;
		if (rem < hdr) {
			/* the end, or a header still incomplete: held */
			return e;
		}
		ret = tsgate_framing_pdu_size(f, stream + off, &total);
		if (ret == 0 && total > max_pdu) {
			ret = EMSGSIZE;
		}
		if (ret != 0) {
			e.err = ret;
			return e;
		}
		if (total > rem) {
			/* the header and what came of the body go on */
			e.fwd = len;
			return e;
		}
		off += (size_t)total;
		e.pdus++;
	}
}

static void check_framer(enum tsgate_config_framing framing,
			 size_t max_pdu,
			 const uint8_t *chunks,
			 size_t num_chunks,
			 const uint8_t *stream,
			 size_t len)
{
	struct tsgate_framer f;
	struct framer_expect e;
	size_t off = 0, out = 0, i = 0;
	uint64_t pdus = 0;
	int err = 0;

	if (framing == TSGATE_CONFIG_FRAMING_RAW) {
		FUZZ_ASSERT(tsgate_framer_init(&f, framing, max_pdu) == EINVAL);
		return;
	}
	if (max_pdu < tsgate_framing_header_size(framing)) {
		FUZZ_ASSERT(tsgate_framer_init(&f, framing, max_pdu) == EINVAL);
		return;
	}
	FUZZ_ASSERT(tsgate_framer_init(&f, framing, max_pdu) == 0);
	e = framer_reference(framing, max_pdu, stream, len);
	while (off < len && err == 0) {
		struct tsgate_framer_cut cut;
		size_t n = len - off;

		if (num_chunks > 0 && n > (size_t)chunks[i % num_chunks] + 1) {
			n = (size_t)chunks[i % num_chunks] + 1;
		}
		i++;
		tsgate_framer_feed(&f, stream + off, n, &cut);
		FUZZ_ASSERT(cut.len <= n);
		FUZZ_ASSERT(cut.held_len <= TSGATE_FRAMER_MAX_HEADER);
		if (cut.len > 0 || cut.held_len > 0) {
			/* held bytes: the stream's, just before this chunk */
			FUZZ_ASSERT(cut.held_len <= off);
			FUZZ_ASSERT(out == off - cut.held_len);
			FUZZ_ASSERT(
			    cut.held_len == 0 ||
			    memcmp(cut.held, stream + out, cut.held_len) == 0);
			out = off + cut.len;
		}
		pdus += cut.pdus;
		err = cut.err;
		off += n;
	}
	FUZZ_ASSERT(out == e.fwd);
	FUZZ_ASSERT(err == e.err);
	FUZZ_ASSERT(pdus == e.pdus);
	if (err == 0) {
		FUZZ_ASSERT(tsgate_framer_at_boundary(&f) == e.boundary);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TALLOC_CTX *mem;
	struct tevent_context *ev;
	struct tstream_context *stream = NULL;
	struct fuzz_peer *peer;
	enum tsgate_config_framing framing;
	const uint8_t *chunks, *body;
	size_t num_chunks, body_len, max_pdu, off = 0;
	unsigned pdus = 0;

	check_header_parser(data, size);
	if (size < 3) {
		return 0;
	}
	framing = framings[data[0] % 4];
	/* small limits so oversized PDUs are easy to reach: 1..256 */
	max_pdu = (size_t)data[1] + 1;
	num_chunks = data[2] % 16;
	if (size < 3 + num_chunks) {
		return 0;
	}
	chunks = data + 3;
	body = data + 3 + num_chunks;
	body_len = size - 3 - num_chunks;

	check_framer(framing, max_pdu, chunks, num_chunks, body, body_len);
	mem = talloc_new(NULL);
	FUZZ_ASSERT(mem != NULL);
	ev = fuzz_ev_create(mem);
	peer = fuzz_peer_create(mem, ev, body, body_len, chunks, num_chunks,
				&stream);
	FUZZ_ASSERT(peer != NULL);

	for (;;) {
		struct tevent_req *req;
		bool done = false;
		uint8_t *pdu = NULL;
		size_t len = 0;
		int ret, err = 0;

		req = tsgate_pdu_read_send(mem, ev, stream, framing, max_pdu);
		FUZZ_ASSERT(req != NULL);
		tevent_req_set_callback(req, read_done, &done);
		fuzz_loop_until(ev, &done, "tsgate_pdu_read");
		ret = tsgate_pdu_read_recv(req, &err, NULL, mem, &pdu, &len);
		TALLOC_FREE(req);
		if (ret == -1) {
			if (framing != TSGATE_CONFIG_FRAMING_RAW &&
			    max_pdu < tsgate_framing_header_size(framing)) {
				FUZZ_ASSERT(err == EINVAL && pdus == 0);
				break;
			}
			check_final_error(framing, max_pdu, body, body_len, off,
					  err);
			break;
		}
		pdus++;
		FUZZ_ASSERT(pdu != NULL);
		FUZZ_ASSERT(len >= 1);
		FUZZ_ASSERT(len <= max_pdu);
		FUZZ_ASSERT(off + len <= body_len);
		FUZZ_ASSERT(memcmp(pdu, body + off, len) == 0);
		if (framing != TSGATE_CONFIG_FRAMING_RAW) {
			uint64_t total = 0;

			FUZZ_ASSERT(len >= tsgate_framing_header_size(framing));
			FUZZ_ASSERT(
			    tsgate_framing_pdu_size(framing, pdu, &total) == 0);
			FUZZ_ASSERT(total == len);
		}
		off += len;
		talloc_free(pdu);
	}

	talloc_free(mem);
	return 0;
}
