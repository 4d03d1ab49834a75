/*
 * tstream_tls — what the parameter loader and the stream share.
 * Not installed.
 */

#ifndef TSTREAM_TLS_PRIVATE_H
#define TSTREAM_TLS_PRIVATE_H

#include <gnutls/gnutls.h>
#include "tstream_tls.h"

/* One certificate credential and the SNI name it answers for. */
struct tstream_tls_sni_cred {
	char *sni; /* NULL: the default */
	gnutls_certificate_credentials_t cred;
};

/*
 * The loaded parameters. Unparented talloc chunk shared by every handle
 * (struct tstream_tls_params) through a reference count; the last handle
 * to go frees it.
 */
struct tstream_tls_params_internal {
	unsigned refcount;
	bool is_server;
	enum tstream_tls_verify verify;
	gnutls_priority_t priority;

	/* server: creds[default_cred] is used without a matching SNI */
	struct tstream_tls_sni_cred *creds;
	size_t num_creds;
	size_t default_cred;

	/* client */
	char *peer_name;
	char *sni;

	gnutls_datum_t *alpn;
	unsigned num_alpn;

	bool strict_end; /* an end without close_notify is ECONNABORTED */
};

struct tstream_tls_params {
	struct tstream_tls_params_internal *internal;
};

/* A new handle on the same parameters (refcount + 1), or NULL. */
struct tstream_tls_params *tstream_tls_params_ref(
    TALLOC_CTX *mem_ctx, struct tstream_tls_params *params);

/* The credential for a server name (never NULL on server params). */
gnutls_certificate_credentials_t tstream_tls_params_cred_for_sni(
    const struct tstream_tls_params_internal *p, const char *sni);

#endif
