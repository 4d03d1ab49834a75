/* SPDX-License-Identifier: MIT */
/*
 * tstream_tls — the peer and the session as the handshake left them: the
 * peer certificate's subject, names and fingerprint, the verification
 * result and name checks (collected once the handshake succeeds), and the
 * getters that report them.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "tsgate_export.h"
#include "tsocket_internal.h"
#include "tstream_tls_private.h"

static char *tstream_tls_hex(TALLOC_CTX *mem_ctx,
			     const uint8_t *buf,
			     size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char *hex = talloc_array(mem_ctx, char, len * 2 + 1);
	size_t i;

	if (hex == NULL) {
		return NULL;
	}
	for (i = 0; i < len; i++) {
		hex[2 * i] = digits[buf[i] >> 4];
		hex[2 * i + 1] = digits[buf[i] & 0xf];
	}
	hex[len * 2] = '\0';
	return hex;
}

/*
 * Why a name's bytes cannot be a name, or NULL. A C string stops at a
 * NUL, so "alice.example.com\0.evil.com" would read as alice's name; a
 * control byte would forge log lines or knc hand-off lines. IA5String
 * values (DNS, email, URI SANs) are ASCII only (RFC 5280 4.2.1.6; IDNs
 * travel as A-labels), UTF8String values must be UTF-8.
 */
static const char *tstream_tls_name_problem(const unsigned char *p,
					    size_t n,
					    bool ascii)
{
	size_t i = 0;

	if (n == 0) {
		return "is empty";
	}
	while (i < n) {
		unsigned char c = p[i];
		size_t len, k;
		uint32_t cp;

		if (c == 0) {
			return "holds a NUL byte";
		}
		if (c < 0x20 || c == 0x7f) {
			return "holds a control byte";
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		if (ascii) {
			return "holds a non-ASCII byte";
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return "is not valid UTF-8";
		}
		if (i + len > n) {
			return "is not valid UTF-8";
		}
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80) {
				return "is not valid UTF-8";
			}
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
			return "is not valid UTF-8";
		}
		if (cp >= 0x80 && cp <= 0x9f) {
			return "holds a control byte";
		}
		i += len;
	}
	return NULL;
}

/* Keep the first problem: the log gives one reason. */
static int tstream_tls_name_error(struct tstream_tls *tlss,
				  const char *what,
				  const char *problem)
{
	if (tlss->peer_name_error != NULL) {
		return 0;
	}
	tlss->peer_name_error = talloc_asprintf(tlss, "%s %s", what, problem);
	return tlss->peer_name_error == NULL ? ENOMEM : 0;
}

/*
 * "DNS:x" etc. of one SAN; NULL for kinds that are left out and for
 * names that cannot be names (then peer_name_error says why).
 */
static char *tstream_tls_san_string(struct tstream_tls *tlss,
				    TALLOC_CTX *mem_ctx,
				    int type,
				    const char *buf,
				    size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	const char *prefix, *problem;

	switch (type) {
	case GNUTLS_SAN_DNSNAME:
		prefix = "DNS";
		break;
	case GNUTLS_SAN_RFC822NAME:
		prefix = "email";
		break;
	case GNUTLS_SAN_URI:
		prefix = "URI";
		break;
	case GNUTLS_SAN_IPADDRESS:
		if (len == 4 && inet_ntop(AF_INET, buf, addr, sizeof(addr))) {
			return talloc_asprintf(mem_ctx, "IP:%s", addr);
		}
		if (len == 16 && inet_ntop(AF_INET6, buf, addr, sizeof(addr))) {
			return talloc_asprintf(mem_ctx, "IP:%s", addr);
		}
		tstream_tls_name_error(tlss, "IP SAN",
				       "is neither 4 nor 16 bytes long");
		return NULL;
	default:
		return NULL;
	}
	problem =
	    tstream_tls_name_problem((const unsigned char *)buf, len, true);
	if (problem != NULL) {
		tstream_tls_name_error(
		    tlss, talloc_asprintf(mem_ctx, "%s SAN", prefix), problem);
		return NULL;
	}
	return talloc_asprintf(mem_ctx, "%s:%.*s", prefix, (int)len, buf);
}

static int tstream_tls_collect_sans(struct tstream_tls *tlss,
				    gnutls_x509_crt_t crt)
{
	size_t num = 0;
	size_t cap = 512;
	char *buf = talloc_size(tlss, cap);
	unsigned int i;

	tlss->peer_sans = talloc_zero_array(tlss, const char *, 1);
	if (buf == NULL || tlss->peer_sans == NULL) {
		talloc_free(buf);
		return ENOMEM;
	}
	for (i = 0;; i++) {
		size_t size = cap;
		const char **sans;
		char *san;
		int ret;

		/*
		 * gnutls_x509_crt_get_subject_alt_name() refuses some
		 * malformed names (an error that is not the end of the list):
		 * then the certificate's names are not to be trusted at all.
		 */
		ret = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &size,
							   NULL);
		if (ret == GNUTLS_E_SHORT_MEMORY_BUFFER) {
			char *bigger = talloc_realloc(tlss, buf, char, size);

			if (bigger == NULL) {
				talloc_free(buf);
				return ENOMEM;
			}
			buf = bigger;
			cap = size;
			i--;
			continue;
		}
		if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
			break;
		}
		if (ret < 0) {
			talloc_free(buf);
			return tstream_tls_name_error(tlss, "a SAN",
						      "cannot be decoded");
		}
		san = tstream_tls_san_string(tlss, tlss->peer_sans, ret, buf,
					     size);
		if (san == NULL) {
			if (tlss->peer_name_error != NULL) {
				break;
			}
			continue;
		}
		sans = talloc_realloc(tlss, tlss->peer_sans, const char *,
				      num + 2);
		if (sans == NULL) {
			talloc_free(buf);
			return ENOMEM;
		}
		sans[num++] = san;
		sans[num] = NULL;
		tlss->peer_sans = sans;
	}
	talloc_free(buf);
	return 0;
}

static bool tstream_tls_put_utf8(char *out, size_t *len, uint32_t cp)
{
	if (cp >= 0xd800 && cp <= 0xdfff) {
		return false;
	}
	if (cp < 0x80) {
		out[(*len)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*len)++] = (char)(0xc0 | (cp >> 6));
		out[(*len)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		out[(*len)++] = (char)(0xe0 | (cp >> 12));
		out[(*len)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*len)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp <= 0x10ffff) {
		out[(*len)++] = (char)(0xf0 | (cp >> 18));
		out[(*len)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[(*len)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*len)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		return false;
	}
	return true;
}

static const char tstream_tls_ava_nomem[] = "out of memory";

/*
 * An attribute value as UTF-8 text (the value itself, unescaped), or why
 * it cannot be a name (tstream_tls_ava_nomem: no memory to tell). *text
 * is NULL for a value that is not a string.
 */
static const char *tstream_tls_ava_text(TALLOC_CTX *mem_ctx,
					const gnutls_x509_ava_st *ava,
					char **text)
{
	const unsigned char *v = ava->value.data;
	size_t n = ava->value.size;
	size_t w = 1, i, len = 0;
	const char *problem;
	char *out;

	*text = NULL;
	switch (ava->value_tag) {
	case 12: /* UTF8String */
	case 19: /* PrintableString */
	case 22: /* IA5String */
		problem = tstream_tls_name_problem(v, n, ava->value_tag != 12);
		if (problem != NULL) {
			return problem;
		}
		*text = talloc_strndup(mem_ctx, (const char *)v, n);
		return *text == NULL ? tstream_tls_ava_nomem : NULL;
	case 20: /* TeletexString: taken as Latin-1 */
		w = 1;
		break;
	case 30: /* BMPString: UCS-2 big-endian */
		w = 2;
		break;
	case 28: /* UniversalString: UCS-4 big-endian */
		w = 4;
		break;
	default:
		return NULL; /* not a string: GnuTLS shows "#hex" */
	}
	if (n == 0) {
		return "is empty";
	}
	if (n % w != 0) {
		return "is not valid UCS";
	}
	out = talloc_array(mem_ctx, char, (n / w) * 4 + 1);
	if (out == NULL) {
		return tstream_tls_ava_nomem;
	}
	for (i = 0; i < n; i += w) {
		uint32_t cp = 0;
		size_t k;

		for (k = 0; k < w; k++) {
			cp = (cp << 8) | v[i + k];
		}
		if (cp == 0) {
			return "holds a NUL byte";
		}
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
			return "holds a control byte";
		}
		if (!tstream_tls_put_utf8(out, &len, cp)) {
			return "is not valid UCS";
		}
	}
	out[len] = '\0';
	*text = out;
	return NULL;
}

/*
 * Check every attribute value of the subject: a NUL or control byte in
 * any RDN (not only the CN) would reach the logs and the subject
 * matching, where GnuTLS prints it as "#0c06..." hex that a pattern like
 * "CN=*" matches.
 *
 * And take the most specific CN: the last one in DER order, the first of
 * the RFC 4514 string (as Go's pkix.Name and curl do; HAProxy defaults to
 * the first in DER order, see docs/tls.md). One rule for logs, the PROXY
 * v2 CN and the leftmost RDN a client_subject pattern lines up with. Its
 * value as it is, not the RFC 4514 escaped text that
 * gnutls_x509_crt_get_dn_by_oid() gives ("a\,b").
 */
static int tstream_tls_check_subject(struct tstream_tls *tlss,
				     gnutls_x509_crt_t crt)
{
	gnutls_x509_dn_t dn;
	gnutls_x509_ava_st ava;
	char *cn = NULL;
	int irdn, iava;

	if (gnutls_x509_crt_get_subject(crt, &dn) < 0) {
		return tstream_tls_name_error(tlss, "the subject",
					      "cannot be decoded");
	}
	for (irdn = 0;; irdn++) {
		for (iava = 0;; iava++) {
			const char *problem;
			char *text = NULL;
			bool is_cn;

			if (gnutls_x509_dn_get_rdn_ava(dn, irdn, iava, &ava) <
			    0) {
				break;
			}
			/* the dotted OID, its size counting a final NUL */
			is_cn =
			    strnlen((const char *)ava.oid.data, ava.oid.size) ==
				strlen(GNUTLS_OID_X520_COMMON_NAME) &&
			    memcmp(ava.oid.data, GNUTLS_OID_X520_COMMON_NAME,
				   strlen(GNUTLS_OID_X520_COMMON_NAME)) == 0;
			problem = tstream_tls_ava_text(tlss, &ava, &text);
			if (problem == tstream_tls_ava_nomem) {
				talloc_free(cn);
				return ENOMEM;
			}
			if (is_cn && problem != NULL &&
			    strcmp(problem, "is empty") == 0) {
				problem = NULL; /* an empty CN is no CN */
			} else if (is_cn && problem == NULL && text == NULL) {
				/* "#hex" would reach a backend as a name */
				problem = "is not a string";
			}
			if (problem != NULL) {
				talloc_free(cn);
				return tstream_tls_name_error(
				    tlss,
				    is_cn ? "the subject CN"
					  : "a subject attribute",
				    problem);
			}
			if (is_cn) {
				talloc_free(cn);
				cn = text;
			} else {
				talloc_free(text);
			}
		}
		if (iava == 0) {
			break; /* no such RDN: the end */
		}
	}
	tlss->peer_cn = cn;
	return 0;
}

static int tstream_tls_collect_peer(struct tstream_tls *tlss)
{
	const gnutls_datum_t *certs;
	unsigned int num = 0;
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = {NULL, 0};
	uint8_t fp[32];
	size_t size;
	int err = ENOMEM;

	certs = gnutls_certificate_get_peers(tlss->session, &num);
	if (certs == NULL || num == 0) {
		tlss->verify_result = TSTREAM_TLS_PEER_NO_CERT;
		return 0;
	}
	if (gnutls_x509_crt_init(&crt) < 0) {
		return ENOMEM;
	}
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) < 0) {
		gnutls_x509_crt_deinit(crt);
		return EPROTO;
	}
	size = sizeof(fp);
	if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp,
					    &size) == 0) {
		tlss->peer_fingerprint = tstream_tls_hex(tlss, fp, size);
		if (tlss->peer_fingerprint == NULL) {
			goto out;
		}
	}
	err = tstream_tls_check_subject(tlss, crt);
	if (err == 0 && tlss->peer_name_error == NULL) {
		err = tstream_tls_collect_sans(tlss, crt);
	}
	if (err != 0) {
		goto out;
	}
	if (tlss->peer_name_error != NULL) {
		/*
		 * One bad name and no name of the certificate is reported:
		 * a caller that checks only the names it looks for would
		 * otherwise still trust the certificate's other ones.
		 */
		TALLOC_FREE(tlss->peer_cn);
		TALLOC_FREE(tlss->peer_sans);
		tlss->peer_sans = talloc_zero_array(tlss, const char *, 1);
		err = tlss->peer_sans == NULL ? ENOMEM : 0;
		goto out;
	}
	if (gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
		tlss->peer_subject =
		    talloc_strndup(tlss, (const char *)dn.data, dn.size);
		gnutls_free(dn.data);
		if (tlss->peer_subject == NULL) {
			err = ENOMEM;
			goto out;
		}
	}
out:
	gnutls_x509_crt_deinit(crt);
	return err;
}

/* Judge the peer certificate when the handshake did not (optional). */
static int tstream_tls_collect_verify(struct tstream_tls *tlss)
{
	const struct tstream_tls_params_internal *p = tlss->params->internal;
	unsigned int status = 0;
	gnutls_datum_t out = {NULL, 0};
	int ret;

	if (tlss->peer_fingerprint == NULL) {
		tlss->verify_result = TSTREAM_TLS_PEER_NO_CERT;
		/* a resumed session must not skip a required certificate */
		return tlss->resumed && p->verify == TSTREAM_TLS_VERIFY_REQUIRE
			   ? EACCES
			   : 0;
	}
	switch (p->verify) {
	case TSTREAM_TLS_VERIFY_REQUIRE:
		if (tlss->resumed) {
			/*
			 * No certificate was sent, so nothing checked it
			 * now: the one the ticket carries must still pass
			 * today's CAs and CRL (they may have changed since,
			 * or the ticket come from another listener).
			 */
			break;
		}
		/* gnutls_session_set_verify_cert() checked it already */
		tlss->verify_result = TSTREAM_TLS_PEER_VALID;
		return 0;
	case TSTREAM_TLS_VERIFY_OPTIONAL:
		break;
	default:
		tlss->verify_result = TSTREAM_TLS_PEER_NOT_CHECKED;
		return 0;
	}
	if (p->is_server) {
		ret = gnutls_certificate_verify_peers2(tlss->session, &status);
	} else {
		ret = gnutls_certificate_verify_peers3(tlss->session,
						       p->peer_name, &status);
	}
	if (ret < 0 && p->verify == TSTREAM_TLS_VERIFY_REQUIRE) {
		return EACCES;
	}
	if (ret < 0) {
		tlss->verify_result = TSTREAM_TLS_PEER_INVALID;
		tlss->verify_reason = talloc_strdup(tlss, gnutls_strerror(ret));
		return tlss->verify_reason == NULL ? ENOMEM : 0;
	}
	if (status == 0) {
		tlss->verify_result = TSTREAM_TLS_PEER_VALID;
		return 0;
	}
	if (p->verify == TSTREAM_TLS_VERIFY_REQUIRE) {
		return EACCES; /* resumed with a certificate no longer valid */
	}
	tlss->verify_result = TSTREAM_TLS_PEER_INVALID;
	if (gnutls_certificate_verification_status_print(
		status, GNUTLS_CRT_X509, &out, 0) == 0) {
		tlss->verify_reason =
		    talloc_strdup(tlss, (const char *)out.data);
		gnutls_free(out.data);
	} else {
		tlss->verify_reason =
		    talloc_strdup(tlss, "certificate not valid");
	}
	return tlss->verify_reason == NULL ? ENOMEM : 0;
}

int tstream_tls_collect(struct tstream_tls *tlss)
{
	gnutls_datum_t alpn = {NULL, 0};
	int err;

	tlss->version = gnutls_protocol_get_name(
	    gnutls_protocol_get_version(tlss->session));
	tlss->cipher = gnutls_ciphersuite_get(tlss->session);
	if (gnutls_alpn_get_selected_protocol(tlss->session, &alpn) == 0 &&
	    alpn.size > 0) {
		tlss->alpn =
		    talloc_strndup(tlss, (const char *)alpn.data, alpn.size);
		if (tlss->alpn == NULL) {
			return ENOMEM;
		}
	}
	err = tstream_tls_collect_peer(tlss);
	if (err != 0) {
		return err;
	}
	return tstream_tls_collect_verify(tlss);
}

/*
 * Getters
 */

static struct tstream_tls *tstream_tls_established(
    struct tstream_context *stream)
{
	struct tstream_tls *tlss;

	if (stream == NULL) {
		errno = EINVAL;
		return NULL;
	}
	tlss =
	    talloc_get_type(_tstream_context_data(stream), struct tstream_tls);
	if (tlss == NULL || !tlss->established) {
		errno = EINVAL;
		return NULL;
	}
	return tlss;
}

_PUBLIC_ bool tstream_is_tls(struct tstream_context *stream)
{
	return stream != NULL && talloc_get_type(_tstream_context_data(stream),
						 struct tstream_tls) != NULL;
}

_PUBLIC_ const char *tstream_tls_version(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->version : NULL;
}

_PUBLIC_ const char *tstream_tls_cipher_suite(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->cipher : NULL;
}

_PUBLIC_ const char *tstream_tls_sni(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->sni : NULL;
}

_PUBLIC_ const char *tstream_tls_alpn(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->alpn : NULL;
}

_PUBLIC_ const char *tstream_tls_peer_subject(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->peer_subject : NULL;
}

_PUBLIC_ const char *tstream_tls_peer_common_name(
    struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->peer_cn : NULL;
}

_PUBLIC_ const char *tstream_tls_peer_name_error(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->peer_name_error : NULL;
}

_PUBLIC_ bool tstream_tls_truncated(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL && tlss->read_eof && tlss->truncated;
}

_PUBLIC_ const char *tstream_tls_error_reason(struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	if (tlss == NULL || tlss->gnutls_error == 0) {
		return NULL;
	}
	if (tlss->alert_reason != NULL) {
		return tlss->alert_reason;
	}
	return gnutls_strerror(tlss->gnutls_error);
}

_PUBLIC_ const char *const *tstream_tls_peer_sans(
    struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	if (tlss == NULL || tlss->peer_fingerprint == NULL) {
		return NULL;
	}
	return (const char *const *)tlss->peer_sans;
}

_PUBLIC_ const char *tstream_tls_peer_fingerprint_sha256(
    struct tstream_context *stream)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	return tlss != NULL ? tlss->peer_fingerprint : NULL;
}

_PUBLIC_ enum tstream_tls_peer_result tstream_tls_peer_verify_result(
    struct tstream_context *stream, const char **reason)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);

	if (reason != NULL) {
		*reason = NULL;
	}
	if (tlss == NULL) {
		return TSTREAM_TLS_PEER_NO_CERT;
	}
	if (reason != NULL && tlss->verify_result == TSTREAM_TLS_PEER_INVALID) {
		*reason = tlss->verify_reason;
	}
	return tlss->verify_result;
}

_PUBLIC_ int tstream_tls_channel_binding(struct tstream_context *stream,
					 enum tstream_tls_channel_binding type,
					 TALLOC_CTX *mem_ctx,
					 uint8_t **data,
					 size_t *len)
{
	struct tstream_tls *tlss = tstream_tls_established(stream);
	gnutls_channel_binding_t cbtype;
	gnutls_datum_t cb = {NULL, 0};
	int ret;

	if (tlss == NULL || data == NULL || len == NULL) {
		return EINVAL;
	}
	if (tlss->r13_on) {
		/* kept when GnuTLS handed the records over */
		if (type != TSTREAM_TLS_CB_EXPORTER &&
		    type != TSTREAM_TLS_CB_SERVER_END_POINT) {
			return EINVAL;
		}
		return tstream_tls_r13_channel_binding(
		    tlss, type == TSTREAM_TLS_CB_EXPORTER, mem_ctx, data, len);
	}
	switch (type) {
	case TSTREAM_TLS_CB_EXPORTER:
		cbtype = GNUTLS_CB_TLS_EXPORTER;
		break;
	case TSTREAM_TLS_CB_SERVER_END_POINT:
		cbtype = GNUTLS_CB_TLS_SERVER_END_POINT;
		break;
	default:
		return EINVAL;
	}
	ret = gnutls_session_channel_binding(tlss->session, cbtype, &cb);
	if (ret < 0) {
		return ret == GNUTLS_E_MEMORY_ERROR ? ENOMEM : ENOTSUP;
	}
	*data = talloc_memdup(mem_ctx, cb.data, cb.size);
	*len = cb.size;
	gnutls_free(cb.data);
	if (*data == NULL) {
		return ENOMEM;
	}
	return 0;
}
