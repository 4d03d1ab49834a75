/* SPDX-License-Identifier: MIT */
/*
 * tstream_gssapi: params, credentials and readable GSSAPI errors.
 *
 * Credentials come from explicit cred stores (gss_acquire_cred_from), so
 * two params objects with different keytabs or ccaches never share
 * process-global state (no KRB5_KTNAME / KRB5CCNAME juggling).
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <krb5.h>

#include "tsgate_export.h"
#include "tstream_gssapi_private.h"

static int params_destructor(struct tstream_gssapi_params *params)
{
	OM_uint32 min;

	if (params->acceptor_cred != GSS_C_NO_CREDENTIAL) {
		gss_release_cred(&min, &params->acceptor_cred);
	}
	if (params->own_ccache && params->ccache != NULL) {
		krb5_context kctx = NULL;
		krb5_ccache cc = NULL;

		/* Our private MEMORY: cache would live as long as the process.
		 */
		if (krb5_init_context(&kctx) == 0) {
			if (krb5_cc_resolve(kctx, params->ccache, &cc) == 0) {
				krb5_cc_destroy(kctx, cc);
			}
			krb5_free_context(kctx);
		}
	}
	return 0;
}

static struct tstream_gssapi_params *params_new(TALLOC_CTX *mem_ctx,
						bool acceptor)
{
	struct tstream_gssapi_params *params;

	params = talloc_zero(mem_ctx, struct tstream_gssapi_params);
	if (params == NULL) {
		return NULL;
	}
	params->acceptor = acceptor;
	params->acceptor_cred = GSS_C_NO_CREDENTIAL;
	params->handshake_timeout_ms =
	    TSTREAM_GSSAPI_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	talloc_set_destructor(params, params_destructor);
	return params;
}

static void set_reason(TALLOC_CTX *mem_ctx, char **_reason, const char *msg)
{
	if (_reason != NULL) {
		*_reason = talloc_strdup(mem_ctx, msg);
	}
}

/*
 * Acquire a krb5-only credential from an explicit cred store.
 */
static int acquire_cred(TALLOC_CTX *mem_ctx,
			const struct tstream_gssapi_params *params,
			gss_cred_id_t *cred,
			char **reason)
{
	gss_key_value_element_desc elements[2];
	gss_key_value_set_desc store = {.count = 0, .elements = elements};
	gss_OID_set_desc mechs = {.count = 1, .elements = gss_mech_krb5};
	gss_name_t name = GSS_C_NO_NAME;
	OM_uint32 maj, min, tmp;
	const char *name_str;
	const char *what;
	int err;

	if (params->acceptor) {
		if (params->keytab != NULL) {
			elements[store.count].key = "keytab";
			elements[store.count].value = params->keytab;
			store.count++;
		}
		name_str = params->principal;
		what = "acceptor credentials";
	} else {
		if (params->ccache != NULL) {
			elements[store.count].key = "ccache";
			elements[store.count].value = params->ccache;
			store.count++;
		}
		if (params->client_keytab != NULL) {
			elements[store.count].key = "client_keytab";
			elements[store.count].value = params->client_keytab;
			store.count++;
		}
		name_str = params->client_principal;
		what = "initiator credentials";
	}

	if (name_str != NULL) {
		if (params->acceptor) {
			maj = tstream_gssapi_import_name(&min, name_str, &name);
		} else {
			gss_buffer_desc buf = {
			    .value = (void *)name_str,
			    .length = strlen(name_str),
			};

			maj = gss_import_name(
			    &min, &buf, (gss_OID)GSS_KRB5_NT_PRINCIPAL_NAME,
			    &name);
		}
		if (GSS_ERROR(maj)) {
			*reason = tstream_gssapi_status_string(
			    mem_ctx,
			    talloc_asprintf(mem_ctx, "%s: name '%s'", what,
					    name_str),
			    maj, min);
			return EINVAL;
		}
	}

	maj = gss_acquire_cred_from(
	    &min, name, GSS_C_INDEFINITE, &mechs,
	    params->acceptor ? GSS_C_ACCEPT : GSS_C_INITIATE,
	    store.count > 0 ? &store : NULL, cred, NULL, NULL);
	if (name != GSS_C_NO_NAME) {
		gss_release_name(&tmp, &name);
	}
	if (GSS_ERROR(maj)) {
		err = tstream_gssapi_map_error(maj, min, true);
		if (err == EACCES && GSS_ROUTINE_ERROR(maj) == GSS_S_NO_CRED) {
			err = ENOENT;
		}
		*reason = tstream_gssapi_status_string(mem_ctx, what, maj, min);
		return err;
	}
	return 0;
}

int tstream_gssapi_acquire_cred(TALLOC_CTX *mem_ctx,
				const struct tstream_gssapi_params *params,
				gss_cred_id_t *cred,
				char **reason)
{
	return acquire_cred(mem_ctx, params, cred, reason);
}

static int copy_str(TALLOC_CTX *mem_ctx, const char *in, char **out)
{
	*out = NULL;
	if (in == NULL) {
		return 0;
	}
	*out = talloc_strdup(mem_ctx, in);
	return *out == NULL ? ENOMEM : 0;
}

struct tstream_gssapi_params *tstream_gssapi_params_copy(
    TALLOC_CTX *mem_ctx, const struct tstream_gssapi_params *params)
{
	struct tstream_gssapi_params *copy;

	copy = talloc_zero(mem_ctx, struct tstream_gssapi_params);
	if (copy == NULL) {
		return NULL;
	}
	*copy = *params;
	copy->acceptor_cred = GSS_C_NO_CREDENTIAL;
	copy->own_ccache = false; /* the original destroys it */
	if (copy_str(copy, params->keytab, &copy->keytab) != 0 ||
	    copy_str(copy, params->principal, &copy->principal) != 0 ||
	    copy_str(copy, params->target, &copy->target) != 0 ||
	    copy_str(copy, params->ccache, &copy->ccache) != 0 ||
	    copy_str(copy, params->client_keytab, &copy->client_keytab) != 0 ||
	    copy_str(copy, params->client_principal, &copy->client_principal) !=
		0) {
		talloc_free(copy);
		return NULL;
	}
	if (params->cb_len > 0) {
		copy->cb_data =
		    talloc_memdup(copy, params->cb_data, params->cb_len);
		if (copy->cb_data == NULL) {
			talloc_free(copy);
			return NULL;
		}
	}
	return copy;
}

_PUBLIC_ int tstream_gssapi_params_acceptor(
    TALLOC_CTX *mem_ctx,
    const char *keytab,
    const char *principal,
    struct tstream_gssapi_params **_params,
    char **_reason)
{
	struct tstream_gssapi_params *params;
	char *reason = NULL;
	OM_uint32 min;
	int err;

	if (_params == NULL || (principal != NULL && principal[0] == '\0') ||
	    (keytab != NULL && keytab[0] == '\0')) {
		set_reason(mem_ctx, _reason, "invalid acceptor parameters");
		return EINVAL;
	}
	params = params_new(mem_ctx, true);
	if (params == NULL) {
		return ENOMEM;
	}
	if (keytab != NULL) {
		/* MIT takes a bare path, but "FILE:" keeps a ':' in it safe */
		params->keytab = talloc_asprintf(
		    params, "%s%s", strchr(keytab, ':') == NULL ? "FILE:" : "",
		    keytab);
		if (params->keytab == NULL) {
			talloc_free(params);
			return ENOMEM;
		}
	}
	if (principal != NULL) {
		params->principal = talloc_strdup(params, principal);
		if (params->principal == NULL) {
			talloc_free(params);
			return ENOMEM;
		}
	}
	/* only a check: each handshake acquires its own */
	err = acquire_cred(params, params, &params->acceptor_cred, &reason);
	if (err != 0) {
		set_reason(mem_ctx, _reason,
			   reason != NULL ? reason : strerror(err));
		talloc_free(params);
		return err;
	}
	gss_release_cred(&min, &params->acceptor_cred);
	*_params = params;
	return 0;
}

_PUBLIC_ int tstream_gssapi_params_initiator(
    TALLOC_CTX *mem_ctx,
    const char *target,
    const char *ccache,
    const char *client_keytab,
    const char *client_principal,
    struct tstream_gssapi_params **_params,
    char **_reason)
{
	struct tstream_gssapi_params *params;
	gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
	gss_name_t name = GSS_C_NO_NAME;
	char *reason = NULL;
	OM_uint32 maj, min;
	int err;

	if (_params == NULL || target == NULL || target[0] == '\0') {
		set_reason(mem_ctx, _reason, "initiator: no target service");
		return EINVAL;
	}
	maj = tstream_gssapi_import_name(&min, target, &name);
	if (GSS_ERROR(maj)) {
		if (_reason != NULL) {
			*_reason = tstream_gssapi_status_string(
			    mem_ctx, "initiator: target name", maj, min);
		}
		return EINVAL;
	}
	gss_release_name(&min, &name);

	params = params_new(mem_ctx, false);
	if (params == NULL) {
		return ENOMEM;
	}
	params->target = talloc_strdup(params, target);
	if (params->target == NULL) {
		goto nomem;
	}
	if (ccache != NULL) {
		params->ccache = talloc_strdup(params, ccache);
		if (params->ccache == NULL) {
			goto nomem;
		}
	}
	if (client_keytab != NULL) {
		params->client_keytab = talloc_strdup(params, client_keytab);
		if (params->client_keytab == NULL) {
			goto nomem;
		}
		if (ccache == NULL) {
			uint8_t rnd[8] = {0};

			/*
			 * Tickets from the keytab go to a private cache,
			 * never to the process default one.
			 */
			if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
				memset(rnd, 0, sizeof(rnd));
			}
			params->ccache = talloc_asprintf(
			    params,
			    "MEMORY:tstream_gssapi_%p_%02x%02x%02x%02x"
			    "%02x%02x%02x%02x",
			    (void *)params, rnd[0], rnd[1], rnd[2], rnd[3],
			    rnd[4], rnd[5], rnd[6], rnd[7]);
			if (params->ccache == NULL) {
				goto nomem;
			}
			params->own_ccache = true;
		}
	}
	if (client_principal != NULL) {
		params->client_principal =
		    talloc_strdup(params, client_principal);
		if (params->client_principal == NULL) {
			goto nomem;
		}
	}
	err = acquire_cred(params, params, &cred, &reason);
	if (err != 0) {
		set_reason(mem_ctx, _reason,
			   reason != NULL ? reason : strerror(err));
		talloc_free(params);
		return err;
	}
	gss_release_cred(&min, &cred);
	*_params = params;
	return 0;
nomem:
	talloc_free(params);
	return ENOMEM;
}

_PUBLIC_ void tstream_gssapi_params_set_handshake_timeout(
    struct tstream_gssapi_params *params, uint32_t msec)
{
	params->handshake_timeout_ms = msec;
}

_PUBLIC_ void tstream_gssapi_params_set_delegate(
    struct tstream_gssapi_params *params, bool delegate)
{
	params->delegate = delegate;
}

_PUBLIC_ void tstream_gssapi_params_set_strict_eof(
    struct tstream_gssapi_params *params, bool strict)
{
	params->strict_eof = strict;
}

_PUBLIC_ void tstream_gssapi_params_set_required_flags(
    struct tstream_gssapi_params *params, uint32_t gss_flags)
{
	params->required_flags = gss_flags;
}
