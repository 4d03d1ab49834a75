/* SPDX-License-Identifier: MIT */
/*
 * A Prometheus histogram of durations: fixed bucket bounds, counts kept
 * per bucket (made cumulative when rendered), the sum in microseconds.
 * Observing is a loop over at most TSGATE_HIST_MAX_BUCKETS bounds and
 * three adds: no allocation, fit for the data path.
 */
#ifndef TSGATE_METRICS_HIST_H
#define TSGATE_METRICS_HIST_H

#include <stddef.h>
#include <stdint.h>

#define TSGATE_HIST_MAX_BUCKETS 16

/* The bounds of one family, in microseconds and as written in le="". */
struct tsgate_hist_bounds {
	size_t n;
	uint64_t usec[TSGATE_HIST_MAX_BUCKETS];
	const char *le[TSGATE_HIST_MAX_BUCKETS];
};

struct tsgate_hist {
	uint64_t buckets[TSGATE_HIST_MAX_BUCKETS]; /* not cumulative */
	uint64_t count;
	uint64_t usec_sum;
};

/*
 * tsgate_handshake_duration_seconds: 1 ms .. 30 s (handshake_timeout is
 * 10 s by default; a GSSAPI handshake with a KDC round trip takes tens of
 * milliseconds).
 */
extern const struct tsgate_hist_bounds tsgate_hist_handshake_bounds;

/*
 * tsgate_connection_duration_seconds: 10 ms .. 1 day (requests of a
 * moment to sessions held open all day).
 */
extern const struct tsgate_hist_bounds tsgate_hist_connection_bounds;

/** @brief Count one observation of usec microseconds. */
void tsgate_hist_observe(struct tsgate_hist *h,
			 const struct tsgate_hist_bounds *b,
			 uint64_t usec);

/**
 * @brief Append the _bucket (cumulative, then le="+Inf"), _sum (seconds)
 *        and _count lines of one series to *out (talloc_asprintf_addbuf).
 *
 * @param name    The family name (without _bucket).
 * @param labels  The series' labels, escaped, without braces, not empty
 *                ("listener=\"a\",kind=\"tls\"").
 */
void tsgate_hist_render(char **out,
			const char *name,
			const char *labels,
			const struct tsgate_hist *h,
			const struct tsgate_hist_bounds *b);

#endif /* TSGATE_METRICS_HIST_H */
