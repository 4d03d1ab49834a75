/* SPDX-License-Identifier: MIT */
/*
 * The credentials in use, as metrics: when each certificate expires and
 * when each stapled OCSP response must be replaced. The daemon hands over
 * the list after every load (start-up and each reload); the tunnel layer
 * reads it from the files (tunnel/cred_info.c).
 *
 *   tsgate_certificate_expiry_timestamp_seconds
 *       {listener, route, kind="server|client|ca", serial, subject_cn}
 *   tsgate_ocsp_response_next_update_timestamp_seconds
 *       {listener, serial, subject_cn}
 *
 * One series per certificate the config names (a CA file: one series, its
 * certificate that expires first), so the number of series is bounded by
 * the config, not by the size of a CA bundle; a rotation replaces the
 * series (a new serial), it does not add one for good.
 */
#ifndef TSGATE_METRICS_CREDS_H
#define TSGATE_METRICS_CREDS_H

#include <stddef.h>
#include <stdint.h>

struct tsgate_metrics;

enum tsgate_metrics_cred_kind {
	TSGATE_METRICS_CRED_SERVER = 0,
	TSGATE_METRICS_CRED_CLIENT,
	TSGATE_METRICS_CRED_CA,
	TSGATE_METRICS_CRED_OCSP, /* an OCSP response: time is nextUpdate */
};

struct tsgate_metrics_cred {
	const char *listener;
	const char *route; /* NULL: the listener's own */
	enum tsgate_metrics_cred_kind kind;
	const char *serial;     /* hex, as openssl x509 -serial prints it */
	const char *subject_cn; /* "" when the subject has no CN */
	int64_t time;           /* notAfter (Unix time); OCSP: nextUpdate */
	const char *path;       /* the file, for logs (not a label) */
};

/**
 * @brief Replace the list of credentials in use (copied).
 * @return 0, or ENOMEM (the previous list stays).
 */
int tsgate_metrics_set_creds(struct tsgate_metrics *m,
			     const struct tsgate_metrics_cred *creds,
			     size_t n);

#endif
