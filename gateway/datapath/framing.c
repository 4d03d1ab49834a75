/* SPDX-License-Identifier: MIT */
/*
 * PDU framing: cut a tstream into whole PDUs with tstream_readv_pdu.
 */
#include "framing.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <tsocket.h>

#define NCACN_HEADER_SIZE 16
#define NCACN_DREP_LE     0x10

size_t tsgate_framing_header_size(enum tsgate_config_framing framing)
{
	switch (framing) {
	case TSGATE_CONFIG_FRAMING_RAW:
		return 0;
	case TSGATE_CONFIG_FRAMING_LENGTH32:
	case TSGATE_CONFIG_FRAMING_NBT:
		return 4;
	case TSGATE_CONFIG_FRAMING_NCACN:
		return NCACN_HEADER_SIZE;
	}
	return 0;
}

static bool nbt_type_known(uint8_t type)
{
	/*
	 * RFC 1002 session packet types: message, request, positive and
	 * negative response, retarget, keepalive.
	 */
	return type == 0x00 || (type >= 0x81 && type <= 0x85);
}

int tsgate_framing_pdu_size(enum tsgate_config_framing framing,
			    const uint8_t *hdr,
			    uint64_t *size)
{
	uint32_t n;

	switch (framing) {
	case TSGATE_CONFIG_FRAMING_LENGTH32:
		n = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) |
		    ((uint32_t)hdr[2] << 8) | hdr[3];
		*size = 4 + (uint64_t)n;
		return 0;
	case TSGATE_CONFIG_FRAMING_NBT:
		if (!nbt_type_known(hdr[0])) {
			return EPROTO;
		}
		n = ((uint32_t)hdr[1] << 16) | ((uint32_t)hdr[2] << 8) | hdr[3];
		*size = 4 + (uint64_t)n;
		return 0;
	case TSGATE_CONFIG_FRAMING_NCACN:
		/* rpc_vers 5, minor 0 or 1 (DCE 1.1 / MS-RPCE) */
		if (hdr[0] != 5 || hdr[1] > 1) {
			return EPROTO;
		}
		if (hdr[4] & NCACN_DREP_LE) {
			n = hdr[8] | ((uint32_t)hdr[9] << 8);
		} else {
			n = ((uint32_t)hdr[8] << 8) | hdr[9];
		}
		if (n < NCACN_HEADER_SIZE) {
			return EPROTO;
		}
		*size = n;
		return 0;
	case TSGATE_CONFIG_FRAMING_RAW:
		break;
	}
	return EINVAL;
}

struct tsgate_pdu_read_state {
	struct tstream_context *stream;
	enum tsgate_config_framing framing;
	size_t max_pdu;
	uint8_t *buf;
	size_t len;     /* bytes asked for so far (all filled on callback) */
	uint64_t total; /* framed: total PDU size once the header is in */
	struct iovec iov;
	unsigned step;
	bool truncated_is_error;
	bool verdict; /* the failure is this framer's judgment of a PDU */
};

static int tsgate_pdu_next_vector(struct tstream_context *stream,
				  void *private_data,
				  TALLOC_CTX *mem_ctx,
				  struct iovec **vector,
				  size_t *count);
static void tsgate_pdu_read_done(struct tevent_req *subreq);

struct tevent_req *tsgate_pdu_read_send(TALLOC_CTX *mem_ctx,
					struct tevent_context *ev,
					struct tstream_context *stream,
					enum tsgate_config_framing framing,
					size_t max_pdu)
{
	struct tevent_req *req, *subreq;
	struct tsgate_pdu_read_state *state;

	req = tevent_req_create(mem_ctx, &state, struct tsgate_pdu_read_state);
	if (req == NULL) {
		return NULL;
	}
	state->stream = stream;
	state->framing = framing;
	state->max_pdu = max_pdu;
	if (framing == TSGATE_CONFIG_FRAMING_RAW && max_pdu == 0) {
		state->max_pdu = TSGATE_FRAMING_RAW_CHUNK;
	}
	if (framing != TSGATE_CONFIG_FRAMING_RAW && max_pdu == 0) {
		state->max_pdu = TSGATE_FRAMING_DEFAULT_MAX_PDU;
	}
	if (framing != TSGATE_CONFIG_FRAMING_RAW &&
	    state->max_pdu < tsgate_framing_header_size(framing)) {
		tevent_req_error(req, EINVAL);
		return tevent_req_post(req, ev);
	}

	subreq = tstream_readv_pdu_send(state, ev, stream,
					tsgate_pdu_next_vector, state);
	if (tevent_req_nomem(subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(subreq, tsgate_pdu_read_done, req);
	return req;
}

/* Ask for the bytes from state->len up to want (growing the buffer). */
static int pdu_want(struct tsgate_pdu_read_state *state,
		    size_t want,
		    struct iovec **vector,
		    size_t *count)
{
	uint8_t *buf;

	buf = talloc_realloc(state, state->buf, uint8_t, want);
	if (buf == NULL) {
		errno = ENOMEM;
		return -1;
	}
	state->buf = buf;
	state->iov.iov_base = buf + state->len;
	state->iov.iov_len = want - state->len;
	state->len = want;
	*vector = &state->iov;
	*count = 1;
	return 0;
}

static int tsgate_pdu_next_vector(struct tstream_context *stream,
				  void *private_data,
				  TALLOC_CTX *mem_ctx,
				  struct iovec **vector,
				  size_t *count)
{
	struct tsgate_pdu_read_state *state =
	    talloc_get_type_abort(private_data, struct tsgate_pdu_read_state);
	size_t hdr = tsgate_framing_header_size(state->framing);
	ssize_t pending;
	size_t want;
	int ret;

	(void)mem_ctx;
	state->step++;

	/*
	 * Always start with a single byte: once it is in, an end of stream
	 * means a truncated PDU rather than a clean end between PDUs.
	 */
	if (state->step == 1) {
		return pdu_want(state, 1, vector, count);
	}
	state->truncated_is_error = true;

	if (state->framing == TSGATE_CONFIG_FRAMING_RAW) {
		if (state->step > 2) {
			*vector = NULL;
			*count = 0;
			return 0;
		}
		pending = tstream_pending_bytes(stream);
		if (pending <= 0) {
			*vector = NULL;
			*count = 0;
			return 0;
		}
		want = state->max_pdu;
		if ((size_t)pending < want - 1) {
			want = 1 + (size_t)pending;
		}
		if (want <= state->len) {
			*vector = NULL;
			*count = 0;
			return 0;
		}
		return pdu_want(state, want, vector, count);
	}

	if (state->len < hdr) {
		return pdu_want(state, hdr, vector, count);
	}
	if (state->total == 0) {
		ret = tsgate_framing_pdu_size(state->framing, state->buf,
					      &state->total);
		if (ret != 0) {
			state->verdict = true;
			errno = ret;
			return -1;
		}
		if (state->total > state->max_pdu) {
			state->verdict = true;
			errno = EMSGSIZE;
			return -1;
		}
	}
	if (state->len < state->total) {
		return pdu_want(state, (size_t)state->total, vector, count);
	}
	*vector = NULL;
	*count = 0;
	return 0;
}

static void tsgate_pdu_read_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tsgate_pdu_read_state *state =
	    tevent_req_data(req, struct tsgate_pdu_read_state);
	int ret, err;

	ret = tstream_readv_pdu_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		if (err == EPIPE && state->truncated_is_error) {
			state->verdict = true;
			err = EPROTO;
		}
		tevent_req_error(req, err);
		return;
	}
	tevent_req_done(req);
}

int tsgate_pdu_read_recv(struct tevent_req *req,
			 int *perrno,
			 bool *verdict,
			 TALLOC_CTX *mem_ctx,
			 uint8_t **buf,
			 size_t *len)
{
	struct tsgate_pdu_read_state *state =
	    tevent_req_data(req, struct tsgate_pdu_read_state);
	enum tevent_req_state rs;
	uint64_t err;

	if (verdict != NULL) {
		*verdict = false;
	}
	if (tevent_req_is_error(req, &rs, &err)) {
		*perrno = (rs == TEVENT_REQ_USER_ERROR) ? (int)err : ENOMEM;
		if (verdict != NULL) {
			*verdict = state->verdict;
		}
		tevent_req_received(req);
		return -1;
	}
	*buf = talloc_move(mem_ctx, &state->buf);
	*len = state->len;
	tevent_req_received(req);
	return 0;
}
