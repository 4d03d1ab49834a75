/* SPDX-License-Identifier: MIT */
/*
 * Library versions: see lib_versions.h. The build versions come from
 * pkg-config through meson (-DTSGATE_BUILD_*_VERSION).
 */
#include "lib_versions.h"

#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>
#include <talloc.h>

#ifndef TSGATE_BUILD_KRB5_VERSION
#define TSGATE_BUILD_KRB5_VERSION "unknown"
#endif
#ifndef TSGATE_BUILD_TEVENT_VERSION
#define TSGATE_BUILD_TEVENT_VERSION "unknown"
#endif
#ifndef TSGATE_BUILD_TALLOC_VERSION
#define TSGATE_BUILD_TALLOC_VERSION "unknown"
#endif

size_t tsgate_lib_versions(struct tsgate_lib_version *out,
			   char *talloc_buf,
			   size_t talloc_buf_size)
{
	const char *gnutls = gnutls_check_version(NULL);
	int n;

	out[0] = (struct tsgate_lib_version){
	    "gnutls", gnutls != NULL ? gnutls : "unknown", "runtime"};
	out[1] = (struct tsgate_lib_version){"krb5", TSGATE_BUILD_KRB5_VERSION,
					     "build"};
	/* the library says major.minor only: keep the build's patch level
	 * when it is the same release series */
	n = snprintf(talloc_buf, talloc_buf_size, "%d.%d.",
		     talloc_version_major(), talloc_version_minor());
	if (n > 0 && (size_t)n < talloc_buf_size &&
	    strncmp(TSGATE_BUILD_TALLOC_VERSION, talloc_buf, (size_t)n) == 0) {
		snprintf(talloc_buf, talloc_buf_size, "%s",
			 TSGATE_BUILD_TALLOC_VERSION);
	} else if (n > 0 && (size_t)n < talloc_buf_size) {
		talloc_buf[n - 1] = '\0';
	}
	out[2] = (struct tsgate_lib_version){"talloc", talloc_buf, "runtime"};
	out[3] = (struct tsgate_lib_version){
	    "tevent", TSGATE_BUILD_TEVENT_VERSION, "build"};
	return TSGATE_LIB_VERSIONS_NUM;
}
