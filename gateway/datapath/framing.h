/* SPDX-License-Identifier: MIT */
/*
 * PDU framing of a route: the header of each framing, and a reader of
 * whole PDUs. The relay does not use that reader: it forwards a framed
 * route's PDUs as they arrive (framer.h), since no framing here needs a
 * whole PDU to be judged. The reader stays for peers that want one PDU
 * at a time (the tests' peers, the framing fuzzer's reference).
 */
#ifndef TSGATE_FRAMING_H
#define TSGATE_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <talloc.h>
#include <tevent.h>

#include "config.h"

struct tstream_context;

/*
 * max_pdu for a framed read asked with 0 (direct callers: tests, fuzzers);
 * routes always pass their own, whose defaults depend on the framing
 * (tsgate_config_framing_default_max_pdu()). And the raw read chunk.
 */
#define TSGATE_FRAMING_DEFAULT_MAX_PDU TSGATE_CONFIG_MAX_PDU_LENGTH32
#define TSGATE_FRAMING_RAW_CHUNK       (64 * 1024)

/**
 * @brief Bytes of header needed to know a PDU's size (0 for raw).
 */
size_t tsgate_framing_header_size(enum tsgate_config_framing framing);

/**
 * @brief The total size of a PDU (header included) from its header.
 *
 * @param framing  A framed kind (not raw).
 * @param hdr      tsgate_framing_header_size() bytes.
 * @param size     The PDU's total size.
 * @return 0, or EPROTO for a header that is not one of this framing (an
 *         unknown NBT type, an ncacn version other than 5, an ncacn
 *         frag_length below its header).
 */
int tsgate_framing_pdu_size(enum tsgate_config_framing framing,
			    const uint8_t *hdr,
			    uint64_t *size);

/**
 * @brief Read the next PDU (or raw chunk) from a stream.
 *
 * Framed: the whole PDU, header included. A PDU larger than max_pdu fails
 * with EMSGSIZE as soon as its header is read (nothing of it is kept); a
 * malformed header fails with EPROTO; a stream that ends inside a PDU
 * fails with EPROTO too ("truncated"), while an end of stream between
 * PDUs is EPIPE.
 * Raw: at least one byte, then what the stream already has pending, up to
 * max_pdu bytes (TSGATE_FRAMING_RAW_CHUNK when max_pdu is 0).
 */
struct tevent_req *tsgate_pdu_read_send(TALLOC_CTX *mem_ctx,
					struct tevent_context *ev,
					struct tstream_context *stream,
					enum tsgate_config_framing framing,
					size_t max_pdu);

/**
 * @brief Receive the PDU of tsgate_pdu_read_send().
 * @param verdict  May be NULL. On failure, true when the failure is the
 *                 framer's judgment of a PDU (too large, malformed,
 *                 truncated), false when the stream itself failed — a
 *                 tunnel may fail with EMSGSIZE or EPROTO too (a GSSAPI
 *                 frame it refused), which is not a PDU verdict.
 * @param buf  The PDU, allocated on mem_ctx.
 * @param len  Its length (never 0).
 * @return 0, or -1 with *perrno set.
 */
int tsgate_pdu_read_recv(struct tevent_req *req,
			 int *perrno,
			 bool *verdict,
			 TALLOC_CTX *mem_ctx,
			 uint8_t **buf,
			 size_t *len);

#endif /* TSGATE_FRAMING_H */
