/* SPDX-License-Identifier: MIT */
/*
 * A connection's live traffic counters: the relay updates them as data
 * moves, the metrics read them while the connection lives (so /metrics
 * shows bytes of long connections), the log reports them at the end.
 * Owned by the connection; defined here, below both.
 */
#ifndef TSGATE_CONN_STATS_H
#define TSGATE_CONN_STATS_H

#include <stdbool.h>
#include <stdint.h>

struct tsgate_conn_stats {
	uint64_t bytes_up;   /* client -> backend */
	uint64_t bytes_down; /* backend -> client */
	uint64_t pdus_up;
	uint64_t pdus_down;
	/*
	 * Static string naming the failure once the relay failed, e.g.
	 * "client read: PDU too large"; NULL on success.
	 */
	const char *reason;
	/*
	 * True when the failure is a framer's verdict on a PDU (too large,
	 * malformed or truncated), false when the stream itself failed.
	 */
	bool pdu_refused;
};

#endif /* TSGATE_CONN_STATS_H */
