/* SPDX-License-Identifier: MIT */
/*
 * The cut-through framer: count PDUs through chunks, check each header
 * before any of it is forwarded.
 */
#include "framer.h"

#include <errno.h>
#include <string.h>

#include "framing.h"

int tsgate_framer_init(struct tsgate_framer *f,
		       enum tsgate_config_framing framing,
		       uint64_t max_pdu)
{
	size_t hdr = tsgate_framing_header_size(framing);

	*f = (struct tsgate_framer){
	    .framing = framing,
	    .max_pdu = max_pdu != 0 ? max_pdu : TSGATE_FRAMING_DEFAULT_MAX_PDU,
	    .header_size = (uint8_t)hdr,
	};
	if (hdr == 0 || hdr > TSGATE_FRAMER_MAX_HEADER || f->max_pdu < hdr) {
		return EINVAL;
	}
	return 0;
}

bool tsgate_framer_at_boundary(const struct tsgate_framer *f)
{
	return f->hdr_len == 0 && f->body_left == 0;
}

/*
 * A complete header is in f->hdr: judge it and start counting its body.
 * A header-only PDU (an empty length32 body, an NBT keepalive) ends here.
 */
static int framer_header(struct tsgate_framer *f, uint64_t *pdus)
{
	uint64_t total = 0;
	int ret;

	ret = tsgate_framing_pdu_size(f->framing, f->hdr, &total);
	if (ret != 0) {
		return ret;
	}
	if (total > f->max_pdu) {
		return EMSGSIZE;
	}
	f->hdr_len = 0;
	f->body_left = total - f->header_size;
	if (f->body_left == 0) {
		(*pdus)++;
	}
	return 0;
}

void tsgate_framer_feed(struct tsgate_framer *f,
			const uint8_t *buf,
			size_t len,
			struct tsgate_framer_cut *cut)
{
	size_t off = 0; /* bytes of buf looked at */
	size_t fwd = 0; /* bytes of buf that may be forwarded */
	size_t held = f->hdr_len;

	*cut = (struct tsgate_framer_cut){0};
	if (held > 0) {
		/* f->hdr is reused for a header starting in this chunk */
		memcpy(f->held, f->hdr, held);
	}
	while (off < len) {
		size_t n;

		if (f->body_left > 0) {
			n = len - off;
			if (f->body_left < n) {
				n = (size_t)f->body_left;
			}
			off += n;
			f->body_left -= n;
			if (f->body_left == 0) {
				cut->pdus++;
			}
			fwd = off;
			continue;
		}
		n = f->header_size - f->hdr_len;
		if (n > len - off) {
			n = len - off;
		}
		memcpy(f->hdr + f->hdr_len, buf + off, n);
		f->hdr_len += (uint8_t)n;
		off += n;
		if (f->hdr_len < f->header_size) {
			break; /* the rest of it comes in a later chunk */
		}
		cut->err = framer_header(f, &cut->pdus);
		if (cut->err != 0) {
			break; /* nothing of a refused header is forwarded */
		}
		fwd = off;
	}
	if (fwd > 0 && held > 0) {
		/* the held bytes began the header judged good first */
		cut->held = f->held;
		cut->held_len = held;
	}
	cut->len = fwd;
}
