/* SPDX-License-Identifier: MIT */
/*
 * tstream_tls — certificates and keys named by PKCS#11 URLs (RFC 7512).
 *
 * A key that never leaves a token (an HSM, a TPM through its PKCS#11
 * module, SoftHSM) is named "pkcs11:token=...;object=...;type=private".
 * GnuTLS opens the token through p11-kit's registered modules, logs in
 * with the URL's pin-value or pin-source, and signs there; the key bytes
 * are never in this process. GnuTLS reopens the token's sessions in a
 * forked child by itself, so credentials loaded before the workers fork
 * keep working in each of them.
 */

#include <errno.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/pkcs11.h>
#include <gnutls/x509.h>

#include "tstream_tls_private.h"

bool tstream_tls_is_pkcs11_url(const char *name)
{
	return name != NULL && strncmp(name, "pkcs11:", 7) == 0;
}

/*
 * RFC 7512 writes a PIN file as "pin-source=file:/path"; GnuTLS opens the
 * pin-source value as a path. The URL handed to GnuTLS has the scheme
 * taken out, so both spellings work.
 */
static char *tls_pkcs11_url_for_gnutls(TALLOC_CTX *mem_ctx, const char *url)
{
	static const char from[] = "pin-source=file:";
	const char *at = strstr(url, from);

	if (at == NULL) {
		return talloc_strdup(mem_ctx, url);
	}
	return talloc_asprintf(mem_ctx, "%.*spin-source=%s", (int)(at - url),
			       url, at + strlen(from));
}

/* The part of a URL that may be shown: everything before the query. */
static char *tls_pkcs11_url_shown(TALLOC_CTX *mem_ctx, const char *name)
{
	const char *q = strchr(name, '?');

	if (!tstream_tls_is_pkcs11_url(name) || q == NULL) {
		return talloc_strdup(mem_ctx, name);
	}
	return talloc_strndup(mem_ctx, name, (size_t)(q - name));
}

static int tls_pkcs11_fail(TALLOC_CTX *mem_ctx,
			   char **why,
			   int err,
			   const char *name,
			   const char *what,
			   int gnutls_ret)
{
	char *shown = tls_pkcs11_url_shown(mem_ctx, name);

	*why = talloc_asprintf(mem_ctx, "%s: cannot use %s: %s",
			       shown != NULL ? shown : "pkcs11", what,
			       gnutls_strerror(gnutls_ret));
	talloc_free(shown);
	return err;
}

/* The certificates the credentials now hold must be valid today. */
static int tls_pkcs11_check_times(TALLOC_CTX *mem_ctx,
				  gnutls_certificate_credentials_t cred,
				  unsigned index,
				  const char *cert_name,
				  char **why)
{
	gnutls_x509_crt_t *crts = NULL;
	unsigned int num = 0;
	unsigned int i;
	time_t now = time(NULL);
	time_t t;
	int err = 0;
	int ret;

	ret = gnutls_certificate_get_x509_crt(cred, index, &crts, &num);
	if (ret < 0 || num == 0) {
		return tls_pkcs11_fail(mem_ctx, why, EINVAL, cert_name,
				       "certificate", ret);
	}
	t = gnutls_x509_crt_get_expiration_time(crts[0]);
	if (t != (time_t)-1 && t < now) {
		*why = talloc_asprintf(mem_ctx, "%s: certificate expired",
				       cert_name);
		err = EKEYEXPIRED;
	}
	t = gnutls_x509_crt_get_activation_time(crts[0]);
	if (err == 0 && t != (time_t)-1 && t > now) {
		*why = talloc_asprintf(mem_ctx, "%s: certificate not valid yet",
				       cert_name);
		err = EKEYEXPIRED;
	}
	for (i = 0; i < num; i++) {
		gnutls_x509_crt_deinit(crts[i]);
	}
	gnutls_free(crts);
	return err;
}

/* How many certificate/key pairs the credentials hold. */
static unsigned tls_pkcs11_num_pairs(gnutls_certificate_credentials_t cred)
{
	unsigned n = 0;

	for (;;) {
		gnutls_x509_crt_t *crts = NULL;
		unsigned int num = 0;
		unsigned int i;

		if (gnutls_certificate_get_x509_crt(cred, n, &crts, &num) < 0) {
			return n;
		}
		for (i = 0; i < num; i++) {
			gnutls_x509_crt_deinit(crts[i]);
		}
		gnutls_free(crts);
		n++;
	}
}

int tstream_tls_load_pkcs11(TALLOC_CTX *mem_ctx,
			    gnutls_certificate_credentials_t cred,
			    const char *cert_name,
			    const char *key_name,
			    char **why)
{
	TALLOC_CTX *tmp = talloc_new(mem_ctx);
	char *cert_url;
	char *key_url;
	unsigned index;
	int ret;
	int err;

	*why = NULL;
	if (tmp == NULL) {
		return ENOMEM;
	}
	cert_url = tls_pkcs11_url_for_gnutls(tmp, cert_name);
	key_url = tls_pkcs11_url_for_gnutls(tmp, key_name);
	if (cert_url == NULL || key_url == NULL) {
		talloc_free(tmp);
		return ENOMEM;
	}
	/*
	 * The _file2 loader takes a file or a URL for either part and
	 * checks that the key belongs to the certificate; it appends the
	 * pair after the ones already there.
	 */
	index = tls_pkcs11_num_pairs(cred);
	ret = gnutls_certificate_set_x509_key_file2(
	    cred, cert_url, key_url, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (ret == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
		char *shown = tls_pkcs11_url_shown(tmp, key_name);

		*why = talloc_asprintf(
		    mem_ctx, "%s: private key does not match certificate %s",
		    shown, cert_name);
		talloc_free(tmp);
		return EINVAL;
	}
	if (ret < 0) {
		err = tls_pkcs11_fail(
		    mem_ctx, why,
		    ret == GNUTLS_E_PKCS11_PIN_ERROR ? EACCES : EINVAL,
		    tstream_tls_is_pkcs11_url(key_name) ? key_name : cert_name,
		    tstream_tls_is_pkcs11_url(key_name) ? "private key"
							: "certificate",
		    ret);
		talloc_free(tmp);
		return err;
	}
	err = tls_pkcs11_check_times(mem_ctx, cred, index, cert_name, why);
	talloc_free(tmp);
	return err;
}
