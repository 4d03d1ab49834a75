/*
 * fuzz-framing: every PDU framer of gateway/datapath/framing.h.
 *
 * Input: [framing selector][max_pdu selector][n][n chunk sizes][stream]
 * The stream bytes reach tsgate_pdu_read_send() through a socketpair,
 * cut into writes by the chunk sizes. Checked: no PDU over max_pdu is
 * ever returned, every PDU is exactly one whole frame as the header
 * parser sizes it, the PDUs put back together are the stream's prefix,
 * and the final error says why the rest was refused (EPIPE only at a
 * clean end between PDUs).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <tsocket.h>

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
