/* SPDX-License-Identifier: MIT */
/*
 * The TLS suites run once per record layer: TSGATE_TEST_RECORD_LAYER=
 * tsgate or gnutls picks the server's (unset: the library's default,
 * tsgate), so the same tests cover GnuTLS's records and our own.
 */
#ifndef TT_RECORD_LAYER_H
#define TT_RECORD_LAYER_H

#include <stdlib.h>
#include <string.h>

#include "tstream_tls.h"

static inline enum tstream_tls_record_layer tt_record_layer(void)
{
	const char *e = getenv("TSGATE_TEST_RECORD_LAYER");

	if (e != NULL && strcmp(e, "tsgate") == 0) {
		return TSTREAM_TLS_RECORD_TSGATE;
	}
	if (e != NULL && strcmp(e, "gnutls") == 0) {
		return TSTREAM_TLS_RECORD_GNUTLS;
	}
	return TSTREAM_TLS_RECORD_DEFAULT;
}

#endif
