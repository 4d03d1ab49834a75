/* SPDX-License-Identifier: MIT */
/*
 * tstream_gssapi: the credentials a client delegated to the acceptor.
 *
 * They stay in the stream (in memory, never on disk) until the owner asks
 * to store them into a ccache of its choice, so a gateway decides per
 * backend whether a program may act as the user.
 */

#include <errno.h>
#include <string.h>

#include "tsgate_export.h"
#include "tsocket_internal.h"
#include "tstream_gssapi_private.h"
#include "tstream_gssapi_stream.h"

void tstream_gssapi_set_delegated(struct tstream_context *stream,
				  gss_cred_id_t *cred)
{
	struct tstream_gssapi *g =
	    tstream_context_data(stream, struct tstream_gssapi);
	OM_uint32 min;

	if (*cred == GSS_C_NO_CREDENTIAL) {
		return;
	}
	if (g->initiator || !(g->flags & GSS_C_DELEG_FLAG) ||
	    g->deleg_cred != GSS_C_NO_CREDENTIAL) {
		gss_release_cred(&min, cred);
		return;
	}
	g->deleg_cred = *cred;
	*cred = GSS_C_NO_CREDENTIAL;
}

_PUBLIC_ bool tstream_gssapi_has_delegated(struct tstream_context *stream)
{
	struct tstream_gssapi *g;

	if (!tstream_gssapi_is_gssapi(stream)) {
		return false;
	}
	g = tstream_context_data(stream, struct tstream_gssapi);
	return g->deleg_cred != GSS_C_NO_CREDENTIAL;
}

_PUBLIC_ int tstream_gssapi_store_delegated(struct tstream_context *stream,
					    const char *ccache,
					    TALLOC_CTX *mem_ctx,
					    char **reason)
{
	struct tstream_gssapi *g;
	gss_key_value_element_desc el = {.key = "ccache", .value = ccache};
	gss_key_value_set_desc store = {.count = 1, .elements = &el};
	OM_uint32 maj, min;

	if (!tstream_gssapi_has_delegated(stream)) {
		return ENOENT;
	}
	g = tstream_context_data(stream, struct tstream_gssapi);
	/* overwrite: a fresh cache; default: it is not the process's own */
	maj = gss_store_cred_into(&min, g->deleg_cred, GSS_C_INITIATE,
				  GSS_C_NO_OID, 1, 0, &store, NULL, NULL);
	if (GSS_ERROR(maj)) {
		if (reason != NULL) {
			*reason = tstream_gssapi_status_string(
			    mem_ctx, "store_cred_into", maj, min);
		}
		return EIO;
	}
	return 0;
}
