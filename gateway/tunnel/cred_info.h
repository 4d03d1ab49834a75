/* SPDX-License-Identifier: MIT */
/*
 * What the credentials the config names say about themselves, read with
 * GnuTLS: expiry times for the metrics, and the OCSP checks.
 */
#ifndef TSGATE_CRED_INFO_H
#define TSGATE_CRED_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <talloc.h>
#include <time.h>

#include <gnutls/x509.h>

#include "config.h"
#include "metrics_creds.h"

/**
 * @brief The first certificate of a PEM file (of a chain: the leaf), or
 * with first_to_expire the one of a bundle that expires first; a
 * "pkcs11:" URL is read from its token. NULL when it cannot be read.
 * Free with gnutls_x509_crt_deinit().
 */
gnutls_x509_crt_t tsgate_cred_read_cert(const char *path, bool first_to_expire);

/**
 * @brief Check an OCSP response for the first certificate of cert_path.
 *
 * @return 0 with *next_update (0: the response has none) when it is a
 *         successful response saying "good" for that certificate; else
 *         an errno with *why (on mem_ctx) saying what is wrong.
 */
int tsgate_ocsp_inspect(TALLOC_CTX *mem_ctx,
			const char *ocsp_path,
			const char *cert_path,
			time_t *next_update,
			char **why);

/**
 * @brief Every certificate and OCSP response cfg uses, with its expiry,
 * as tsgate_metrics_set_creds() takes them (on mem_ctx). A file that
 * cannot be read now is left out (the reload that follows its change
 * reports it).
 *
 * @return 0 or ENOMEM.
 */
int tsgate_config_cred_metrics(TALLOC_CTX *mem_ctx,
			       const struct tsgate_config *cfg,
			       struct tsgate_metrics_cred **pcreds,
			       size_t *pn);

#endif
