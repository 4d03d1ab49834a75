/* SPDX-License-Identifier: MIT */
/*
 * OCSP responses the config names (tls.ocsp_response): what the credential
 * pass refuses, and what the metrics and the log say about one in use.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/ocsp.h>
#include <gnutls/x509.h>

#include "cred_info.h"

#define OCSP_MAX_FILE (1024 * 1024)

static const char *ocsp_cert_status_name(unsigned s)
{
	switch (s) {
	case GNUTLS_OCSP_CERT_GOOD:
		return "good";
	case GNUTLS_OCSP_CERT_REVOKED:
		return "revoked";
	default:
		return "unknown";
	}
}

int tsgate_ocsp_inspect(TALLOC_CTX *mem_ctx,
			const char *ocsp_path,
			const char *cert_path,
			time_t *next_update,
			char **why)
{
	gnutls_datum_t der = {NULL, 0};
	gnutls_ocsp_resp_t resp = NULL;
	gnutls_x509_crt_t crt = NULL;
	unsigned cert_status = 0;
	time_t this_update = 0, nu = 0, rev = 0;
	unsigned rev_reason = 0;
	int ret;
	int err = EINVAL;

	*next_update = 0;
	*why = NULL;
	if (gnutls_load_file(ocsp_path, &der) < 0) {
		err = errno != 0 ? errno : EIO;
		*why = talloc_asprintf(mem_ctx, "cannot read '%s': %s",
				       ocsp_path, strerror(err));
		return err;
	}
	if (der.size > OCSP_MAX_FILE) {
		*why = talloc_asprintf(mem_ctx,
				       "'%s' is too large for an "
				       "OCSP response",
				       ocsp_path);
		goto out;
	}
	if (gnutls_ocsp_resp_init(&resp) < 0) {
		err = ENOMEM;
		goto out;
	}
	ret = gnutls_ocsp_resp_import(resp, &der);
	if (ret < 0) {
		*why = talloc_asprintf(mem_ctx,
				       "'%s' is not a DER OCSP response: %s",
				       ocsp_path, gnutls_strerror(ret));
		goto out;
	}
	ret = gnutls_ocsp_resp_get_status(resp);
	if (ret != GNUTLS_OCSP_RESP_SUCCESSFUL) {
		*why = talloc_asprintf(mem_ctx,
				       "'%s': the responder did not answer "
				       "(OCSP response status %d)",
				       ocsp_path, ret);
		goto out;
	}
	crt = tsgate_cred_read_cert(cert_path, false);
	if (crt == NULL) {
		*why = talloc_asprintf(mem_ctx,
				       "cannot read the certificate "
				       "'%s'",
				       cert_path);
		goto out;
	}
	if (gnutls_ocsp_resp_check_crt(resp, 0, crt) < 0) {
		*why = talloc_asprintf(mem_ctx,
				       "'%s' is not a response for the "
				       "certificate in '%s'",
				       ocsp_path, cert_path);
		goto out;
	}
	ret = gnutls_ocsp_resp_get_single(resp, 0, NULL, NULL, NULL, NULL,
					  &cert_status, &this_update, &nu, &rev,
					  &rev_reason);
	if (ret < 0) {
		*why = talloc_asprintf(mem_ctx, "'%s': %s", ocsp_path,
				       gnutls_strerror(ret));
		goto out;
	}
	if (cert_status != GNUTLS_OCSP_CERT_GOOD) {
		*why = talloc_asprintf(mem_ctx,
				       "'%s' says the certificate is %s, "
				       "not good",
				       ocsp_path,
				       ocsp_cert_status_name(cert_status));
		goto out;
	}
	*next_update = nu == (time_t)-1 ? 0 : nu;
	err = 0;
out:
	if (err != 0 && *why == NULL && err != ENOMEM) {
		*why = talloc_asprintf(mem_ctx, "'%s': %s", ocsp_path,
				       strerror(err));
	}
	if (resp != NULL) {
		gnutls_ocsp_resp_deinit(resp);
	}
	if (crt != NULL) {
		gnutls_x509_crt_deinit(crt);
	}
	gnutls_free(der.data);
	return err;
}
