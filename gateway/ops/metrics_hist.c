/* SPDX-License-Identifier: MIT */
/*
 * Duration histograms in the Prometheus text format: see metrics_hist.h.
 */
#include "metrics_hist.h"

#include <inttypes.h>
#include <talloc.h>

const struct tsgate_hist_bounds tsgate_hist_handshake_bounds = {
    .n = 14,
    .usec = {1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	     1000000, 2500000, 5000000, 10000000, 30000000},
    .le = {"0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
	   "0.5", "1", "2.5", "5", "10", "30"},
};

const struct tsgate_hist_bounds tsgate_hist_connection_bounds = {
    .n = 12,
    .usec = {10000, 100000, 1000000, 10000000, 60000000, 300000000, 900000000,
	     1800000000, 3600000000, 7200000000, 21600000000, 86400000000},
    .le = {"0.01", "0.1", "1", "10", "60", "300", "900", "1800", "3600", "7200",
	   "21600", "86400"},
};

void tsgate_hist_observe(struct tsgate_hist *h,
			 const struct tsgate_hist_bounds *b,
			 uint64_t usec)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		if (usec <= b->usec[i]) {
			h->buckets[i]++;
			break;
		}
	}
	h->count++;
	h->usec_sum += usec;
}

void tsgate_hist_render(char **out,
			const char *name,
			const char *labels,
			const struct tsgate_hist *h,
			const struct tsgate_hist_bounds *b)
{
	uint64_t cumulative = 0;
	size_t i;

	for (i = 0; i < b->n; i++) {
		cumulative += h->buckets[i];
		talloc_asprintf_addbuf(out,
				       "%s_bucket{%s,le=\"%s\"} %" PRIu64 "\n",
				       name, labels, b->le[i], cumulative);
	}
	talloc_asprintf_addbuf(out,
			       "%s_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n"
			       "%s_sum{%s} %" PRIu64 ".%06" PRIu64 "\n"
			       "%s_count{%s} %" PRIu64 "\n",
			       name, labels, h->count, name, labels,
			       h->usec_sum / 1000000, h->usec_sum % 1000000,
			       name, labels, h->count);
}
