/* SPDX-License-Identifier: MIT */
/*
 * tstream_gssapi: what an established stream tells about its peer and
 * itself (names, mechanism, flags, expiry, the reason of its error).
 */

#include <errno.h>
#include <string.h>

#include "tsgate_export.h"
#include "tstream_gssapi_stream.h"

static struct tstream_gssapi *gssapi_get(struct tstream_context *stream)
{
	struct tstream_gssapi *g;

	if (stream == NULL) {
		errno = EINVAL;
		return NULL;
	}
	g = talloc_get_type(_tstream_context_data(stream),
			    struct tstream_gssapi);
	if (g == NULL) {
		errno = EINVAL;
	}
	return g;
}

_PUBLIC_ bool tstream_gssapi_is_gssapi(struct tstream_context *stream)
{
	return stream != NULL && talloc_get_type(_tstream_context_data(stream),
						 struct tstream_gssapi) != NULL;
}

_PUBLIC_ bool tstream_gssapi_is_initiator(struct tstream_context *stream)
{
	struct tstream_gssapi *g = gssapi_get(stream);

	return g != NULL && g->initiator;
}

_PUBLIC_ const char *tstream_gssapi_client_principal(
    struct tstream_context *stream)
{
	struct tstream_gssapi *g = gssapi_get(stream);

	return g != NULL ? g->client_display : NULL;
}

_PUBLIC_ const char *tstream_gssapi_client_realm(struct tstream_context *stream)
{
	struct tstream_gssapi *g = gssapi_get(stream);

	return g != NULL ? g->client_realm : NULL;
}

_PUBLIC_ const char *const *tstream_gssapi_client_components(
    struct tstream_context *stream, size_t *_count)
{
	struct tstream_gssapi *g = gssapi_get(stream);

	if (g == NULL) {
		return NULL;
	}
	if (_count != NULL) {
		*_count = g->num_components;
	}
	return (const char *const *)g->components;
}

_PUBLIC_ const char *tstream_gssapi_server_principal(
    struct tstream_context *stream)
{
	struct tstream_gssapi *g = gssapi_get(stream);

	return g != NULL ? g->server_display : NULL;
}

_PUBLIC_ char *tstream_gssapi_client_localname(struct tstream_context *stream,
					       TALLOC_CTX *mem_ctx)
{
	struct tstream_gssapi *g = gssapi_get(stream);
	gss_buffer_desc buf = GSS_C_EMPTY_BUFFER;
	OM_uint32 maj, min;
	char *s;

	if (g == NULL) {
		return NULL;
	}
	maj = gss_localname(&min, g->client_name, gss_mech_krb5, &buf);
	if (GSS_ERROR(maj)) {
		errno = ENOENT;
		return NULL;
	}
	s = talloc_strndup(mem_ctx, buf.value, buf.length);
	gss_release_buffer(&min, &buf);
	if (s == NULL) {
		errno = ENOMEM;
	}
	return s;
}

_PUBLIC_ const uint8_t *tstream_gssapi_client_exported_name(
    struct tstream_context *stream, size_t *_len)
{
	struct tstream_gssapi *g = gssapi_get(stream);

	if (g == NULL) {
		return NULL;
	}
	if (_len != NULL) {
		*_len = g->exported_len;
	}
	return g->exported;
}

_PUBLIC_ const char *tstream_gssapi_mech_oid(struct tstream_context *stream)
{
	struct tstream_gssapi *g = gssapi_get(stream);

	return g != NULL ? g->mech_oid : NULL;
}

_PUBLIC_ const char *tstream_gssapi_mech_name(struct tstream_context *stream)
{
	struct tstream_gssapi *g = gssapi_get(stream);

	/* only krb5 is ever accepted */
	return g != NULL ? "krb5" : NULL;
}

_PUBLIC_ uint32_t tstream_gssapi_flags(struct tstream_context *stream)
{
	struct tstream_gssapi *g = gssapi_get(stream);

	return g != NULL ? g->flags : 0;
}

_PUBLIC_ time_t tstream_gssapi_expiry(struct tstream_context *stream)
{
	struct tstream_gssapi *g = gssapi_get(stream);

	return g != NULL ? g->expiry : 0;
}

_PUBLIC_ const char *tstream_gssapi_error_reason(struct tstream_context *stream)
{
	struct tstream_gssapi *g = gssapi_get(stream);

	return g != NULL ? g->error_reason : NULL;
}
