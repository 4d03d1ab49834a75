/* SPDX-License-Identifier: MIT */
/*
 * What metrics.c shares with the files that render families of their
 * own (metrics_creds.c).
 */
#ifndef TSGATE_METRICS_PRIVATE_H
#define TSGATE_METRICS_PRIVATE_H

#include <talloc.h>

struct tsgate_metrics_creds;

struct tsgate_metrics_cred;
/* A copy of a credential list (metrics_creds.c), or NULL (ENOMEM). */
struct tsgate_metrics_creds *tsgate_metrics_creds_copy(
    TALLOC_CTX *mem_ctx, const struct tsgate_metrics_cred *creds, size_t n);
/* The credential families (metrics_creds.c); c may be NULL. */
void tsgate_metrics_creds_render(char **out,
				 const struct tsgate_metrics_creds *c);

#endif
