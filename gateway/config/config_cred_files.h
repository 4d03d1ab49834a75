/* SPDX-License-Identifier: MIT */
/*
 * Every file of credentials a config names: what the daemon watches for
 * rotation (daemon/cred_watch.c).
 */
#ifndef TSGATE_CONFIG_CRED_FILES_H
#define TSGATE_CONFIG_CRED_FILES_H

#include <stddef.h>
#include <talloc.h>

#include "config.h"

/**
 * @brief The absolute paths of every certificate, key, CA, CRL, OCSP
 * response and keytab cfg names, each once, in config order.
 *
 * @param mem_ctx  Parent of *ppaths (the strings are cfg's).
 * @return 0 or ENOMEM.
 */
int tsgate_config_cred_files(TALLOC_CTX *mem_ctx,
			     const struct tsgate_config *cfg,
			     const char ***ppaths,
			     size_t *pn);

#endif
