/* SPDX-License-Identifier: MIT */
/*
 * The versions of the libraries tsgate runs with, for tsgate_build_info
 * and --version: GnuTLS as the loaded library reports it, talloc's
 * major.minor as the loaded library reports it (the full version when the
 * build's has the same major.minor), MIT krb5 and tevent as built against
 * (neither library has a call that tells its version).
 */
#ifndef TSGATE_LIB_VERSIONS_H
#define TSGATE_LIB_VERSIONS_H

#include <stddef.h>

struct tsgate_lib_version {
	const char *name;    /* "gnutls", "krb5", "talloc", "tevent" */
	const char *version; /* "3.7.9"; "unknown" when not known */
	const char *source;  /* "runtime" or "build" */
};

#define TSGATE_LIB_VERSIONS_NUM 4

/**
 * @brief Fill out[TSGATE_LIB_VERSIONS_NUM] (strings are static or in
 *        talloc_buf, a buffer of at least 32 bytes for talloc's).
 *
 * @return The number filled (TSGATE_LIB_VERSIONS_NUM).
 */
size_t tsgate_lib_versions(struct tsgate_lib_version *out,
			   char *talloc_buf,
			   size_t talloc_buf_size);

#endif /* TSGATE_LIB_VERSIONS_H */
