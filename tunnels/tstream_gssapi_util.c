/* SPDX-License-Identifier: MIT */
/*
 * tstream_gssapi: small helpers without I/O (error texts and errno
 * mapping, names, OIDs). Built into the library and into the unit test.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <krb5.h>

#include "tsocket_internal.h"
#include "tstream_gssapi_private.h"

/* Append ": text" for each message of code; false if none was added. */
static bool append_status(char **s, OM_uint32 code, int type, gss_OID mech)
{
	OM_uint32 msg_ctx = 0;
	bool added = false;

	do {
		gss_buffer_desc buf = GSS_C_EMPTY_BUFFER;
		OM_uint32 maj, min;

		maj =
		    gss_display_status(&min, code, type, mech, &msg_ctx, &buf);
		if (GSS_ERROR(maj)) {
			/* MIT may fill buf even then */
			gss_release_buffer(&min, &buf);
			return added;
		}
		/* a mapped minor code of 0 says "Success": noise */
		if (buf.length > 0 && *s != NULL &&
		    !(buf.length == 7 &&
		      memcmp(buf.value, "Success", 7) == 0)) {
			*s = talloc_asprintf_append(*s, ": %.*s",
						    (int)buf.length,
						    (const char *)buf.value);
			added = true;
		}
		gss_release_buffer(&min, &buf);
	} while (msg_ctx != 0);
	return added;
}

char *tstream_gssapi_status_string(TALLOC_CTX *mem_ctx,
				   const char *what,
				   OM_uint32 major,
				   OM_uint32 minor)
{
	char *minor_text = talloc_strdup(mem_ctx, "");
	char *s = talloc_strdup(mem_ctx, what);
	bool have_minor = false;

	if (minor != 0 && minor_text != NULL) {
		/* mechglue minor codes are mapped: GSS_C_NO_OID finds them */
		have_minor = append_status(&minor_text, minor, GSS_C_MECH_CODE,
					   GSS_C_NO_OID);
	}
	/*
	 * "Unspecified GSS failure.  Minor code may provide more
	 * information" says nothing when the minor text is there.
	 */
	if (major != GSS_S_COMPLETE &&
	    !(GSS_ROUTINE_ERROR(major) == GSS_S_FAILURE && have_minor &&
	      GSS_SUPPLEMENTARY_INFO(major) == 0)) {
		append_status(&s, major, GSS_C_GSS_CODE, GSS_C_NO_OID);
	}
	if (s != NULL && have_minor) {
		s = talloc_asprintf_append(s, "%s", minor_text);
	}
	talloc_free(minor_text);
	return s;
}

char *tstream_gssapi_oid_string(TALLOC_CTX *mem_ctx, const gss_OID oid)
{
	gss_buffer_desc buf = GSS_C_EMPTY_BUFFER;
	OM_uint32 min;
	bool need_dot = false;
	char *s, *out;

	if (GSS_ERROR(gss_oid_to_str(&min, oid, &buf))) {
		return talloc_strdup(mem_ctx, "?");
	}
	s = talloc_strndup(mem_ctx, buf.value, buf.length);
	gss_release_buffer(&min, &buf);
	if (s == NULL) {
		return NULL;
	}
	/* MIT's string is "{ 1 2 840 ... }": make it dotted */
	out = s;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p >= '0' && *p <= '9') {
			*out++ = *p;
			need_dot = true;
		} else if (need_dot) {
			*out++ = '.';
			need_dot = false;
		}
	}
	if (out > s && out[-1] == '.') {
		out--;
	}
	*out = '\0';
	return s;
}

int tstream_gssapi_map_error(OM_uint32 major, OM_uint32 minor, bool handshake)
{
	OM_uint32 routine = GSS_ROUTINE_ERROR(major);

	switch ((krb5_error_code)minor) {
	case KRB5_KT_NOTFOUND:
	case KRB5_KT_KVNONOTFOUND:
	case KRB5_KT_END:
	case KRB5_FCC_NOFILE:
	case KRB5_CC_NOTFOUND:
	case KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN:
	case KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN:
	case ENOENT:
		return ENOENT;
	case KRB5KRB_AP_ERR_TKT_EXPIRED:
	case KRB5KDC_ERR_TGT_REVOKED:
		return EKEYEXPIRED;
	case EACCES:
		return EACCES;
	case ENOMEM:
		return ENOMEM;
	default:
		break;
	}
	switch (routine) {
	case GSS_S_CREDENTIALS_EXPIRED:
	case GSS_S_CONTEXT_EXPIRED:
		return EKEYEXPIRED;
	case GSS_S_BAD_NAME:
	case GSS_S_BAD_NAMETYPE:
		return EINVAL;
	case GSS_S_DEFECTIVE_TOKEN:
	case GSS_S_BAD_SIG:
		return EPROTO;
	default:
		break;
	}
	return handshake ? EACCES : EPROTO;
}

OM_uint32 tstream_gssapi_import_name(OM_uint32 *minor,
				     const char *str,
				     gss_name_t *name)
{
	gss_buffer_desc buf;
	gss_OID type = GSS_C_NT_HOSTBASED_SERVICE;

	if (strchr(str, '/') != NULL) {
		type = (gss_OID)GSS_KRB5_NT_PRINCIPAL_NAME;
	}
	buf.value = (void *)str;
	buf.length = strlen(str);
	return gss_import_name(minor, &buf, type, name);
}

/*
 * Split a krb5 display name ("a/b\/c@REALM") into unescaped components
 * and realm, as krb5_parse_name does: '\' escapes the next character,
 * "\n", "\t", "\b" stand for control characters. An escaped NUL ("\0")
 * or a trailing '\' is refused (EINVAL): a component must never be cut
 * short ("alice\0x" is not "alice").
 */
int tstream_gssapi_parse_principal(TALLOC_CTX *mem_ctx,
				   const char *name,
				   char ***_components,
				   size_t *_num,
				   char **_realm)
{
	size_t len = strlen(name);
	char **comps;
	char *realm = NULL;
	size_t num = 0;
	char *cur;
	size_t n = 0;
	bool in_realm = false;

	comps = talloc_zero_array(mem_ctx, char *, 1);
	if (comps == NULL) {
		return ENOMEM;
	}
	cur = talloc_size(comps, len + 1);
	if (cur == NULL) {
		goto nomem;
	}
	for (size_t i = 0; i <= len; i++) {
		char c = name[i];

		if (c == '\\') {
			if (i + 1 >= len) {
				goto invalid;
			}
			c = name[++i];
			switch (c) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'b':
				c = '\b';
				break;
			case '0':
				goto invalid;
			default:
				break;
			}
			cur[n++] = c;
			continue;
		}
		if (c == '\0' || (!in_realm && (c == '/' || c == '@'))) {
			char *part = talloc_strndup(comps, cur, n);
			char **tmp;

			if (part == NULL) {
				goto nomem;
			}
			n = 0;
			if (in_realm) {
				realm = part;
				break;
			}
			tmp = talloc_realloc(mem_ctx, comps, char *, num + 2);
			if (tmp == NULL) {
				goto nomem;
			}
			comps = tmp;
			comps[num++] = part;
			comps[num] = NULL;
			if (c == '@') {
				in_realm = true;
			}
			if (c == '\0') {
				break;
			}
			continue;
		}
		cur[n++] = c;
	}
	TALLOC_FREE(cur);
	if (realm == NULL) {
		realm = talloc_strdup(comps, "");
		if (realm == NULL) {
			goto nomem;
		}
	}
	*_components = comps;
	*_num = num;
	*_realm = talloc_steal(mem_ctx, realm);
	return 0;
nomem:
	talloc_free(comps);
	return ENOMEM;
invalid:
	talloc_free(comps);
	return EINVAL;
}

bool tstream_gssapi_recv_failed(struct tevent_req *req,
				int *perrno,
				TALLOC_CTX *mem_ctx,
				const char *reason,
				char **_reason)
{
	int err = 0;

	if (tsocket_simple_int_recv(req, &err) != -1) {
		return false;
	}
	if (perrno != NULL) {
		*perrno = err;
	}
	if (_reason != NULL) {
		*_reason = talloc_strdup(
		    mem_ctx, reason != NULL ? reason : strerror(err));
	}
	tevent_req_received(req);
	return true;
}
