/* SPDX-License-Identifier: MIT */
/*
 * tstream_tls — loading and sharing TLS parameters.
 *
 * Every file is read here (not by GnuTLS) so that a failure can say
 * which file and why: unreadable (with the errno text), not PEM, key not
 * matching the certificate, certificate expired. The result is refcounted
 * so that a configuration reload can drop its parameters while live
 * sessions keep theirs.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/ocsp.h>
#include <gnutls/x509.h>

#include "tsgate_export.h"
#include "tstream_tls_private.h"

/* Larger PEM files than this are refused: they are not certificates. */
#define TLS_MAX_PEM_FILE (16 * 1024 * 1024)

/* Context of one load: where the message goes. */
struct tls_load {
	TALLOC_CTX *mem_ctx;
	char **error;
};

static int tls_fail(struct tls_load *ld, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int tls_fail(struct tls_load *ld, int err, const char *fmt, ...)
{
	va_list ap;

	if (ld->error != NULL && *ld->error == NULL) {
		va_start(ap, fmt);
		*ld->error = talloc_vasprintf(ld->mem_ctx, fmt, ap);
		va_end(ap);
	}
	return err;
}

static int tls_params_internal_destructor(struct tstream_tls_params_internal *p)
{
	size_t i;

	for (i = 0; i < p->num_creds; i++) {
		if (p->creds[i].cred != NULL) {
			gnutls_certificate_free_credentials(p->creds[i].cred);
			p->creds[i].cred = NULL;
		}
	}
	if (p->priority != NULL) {
		gnutls_priority_deinit(p->priority);
		p->priority = NULL;
	}
	tstream_tls_resume_free(p);
	return 0;
}

static void tls_params_unref(struct tstream_tls_params_internal *p)
{
	if (p != NULL && --p->refcount == 0) {
		talloc_free(p);
	}
}

static int tls_params_handle_destructor(struct tstream_tls_params *params)
{
	struct tstream_tls_params_internal *p = params->internal;

	params->internal = NULL;
	tls_params_unref(p);
	return 0;
}

/* A new handle on the same parameters (refcount + 1), or NULL. */
static struct tstream_tls_params *tls_params_ref(
    TALLOC_CTX *mem_ctx, const struct tstream_tls_params *params)
{
	struct tstream_tls_params *ref;

	ref = talloc_zero(mem_ctx, struct tstream_tls_params);
	if (ref == NULL) {
		return NULL;
	}
	ref->internal = params->internal;
	ref->internal->refcount++;
	talloc_set_destructor(ref, tls_params_handle_destructor);
	return ref;
}

void tstream_tls_params_hold(struct tstream_tls_params *hold,
			     const struct tstream_tls_params *params)
{
	hold->internal = params->internal;
	hold->internal->refcount++;
}

void tstream_tls_params_release(struct tstream_tls_params *hold)
{
	struct tstream_tls_params_internal *p = hold->internal;

	hold->internal = NULL;
	tls_params_unref(p);
}

static bool tls_sni_match(const char *pattern, const char *name)
{
	const char *dot;

	if (strcasecmp(pattern, name) == 0) {
		return true;
	}
	if (pattern[0] != '*' || pattern[1] != '.') {
		return false;
	}
	/* "*.example.com" matches exactly one label before ".example.com" */
	dot = strchr(name, '.');
	if (dot == NULL || dot == name) {
		return false;
	}
	return strcasecmp(pattern + 1, dot) == 0;
}

gnutls_certificate_credentials_t tstream_tls_params_cred_for_sni(
    const struct tstream_tls_params_internal *p, const char *sni)
{
	size_t i;

	if (sni != NULL) {
		/* exact names win over wildcards */
		for (i = 0; i < p->num_creds; i++) {
			if (p->creds[i].sni != NULL &&
			    strcasecmp(p->creds[i].sni, sni) == 0) {
				return p->creds[i].cred;
			}
		}
		for (i = 0; i < p->num_creds; i++) {
			if (p->creds[i].sni != NULL &&
			    tls_sni_match(p->creds[i].sni, sni)) {
				return p->creds[i].cred;
			}
		}
	}
	return p->creds[p->default_cred].cred;
}

/* Read a whole file into a talloc buffer (NUL-terminated, for PEM). */
static int tls_read_file(struct tls_load *ld,
			 TALLOC_CTX *mem_ctx,
			 const char *path,
			 const char *what,
			 gnutls_datum_t *datum)
{
	struct stat st;
	uint8_t *buf;
	size_t done = 0;
	int fd;
	int err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		err = errno;
		return tls_fail(ld, err, "%s: cannot read %s: %s", path, what,
				strerror(err));
	}
	if (fstat(fd, &st) != 0) {
		err = errno;
		close(fd);
		return tls_fail(ld, err, "%s: cannot read %s: %s", path, what,
				strerror(err));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return tls_fail(ld, EINVAL, "%s: cannot read %s: not a file",
				path, what);
	}
	if (st.st_size > TLS_MAX_PEM_FILE) {
		close(fd);
		return tls_fail(ld, EFBIG, "%s: cannot read %s: too large",
				path, what);
	}
	buf = talloc_array(mem_ctx, uint8_t, (size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		return tls_fail(ld, ENOMEM, "out of memory");
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		if (n == -1 && errno == EINTR) {
			continue;
		}
		if (n == -1) {
			err = errno;
			close(fd);
			talloc_free(buf);
			return tls_fail(ld, err, "%s: cannot read %s: %s", path,
					what, strerror(err));
		}
		if (n == 0) {
			break;
		}
		done += (size_t)n;
	}
	close(fd);
	buf[done] = '\0';
	if (done == 0) {
		talloc_free(buf);
		return tls_fail(ld, EINVAL, "%s: %s file is empty", path, what);
	}
	datum->data = buf;
	datum->size = (unsigned)done;
	return 0;
}

static void tls_format_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0) {
		snprintf(buf, len, "%lld", (long long)t);
	}
}

/* Refuse a certificate that is not valid now. */
static int tls_check_times(struct tls_load *ld,
			   gnutls_x509_crt_t crt,
			   const char *path)
{
	time_t now = time(NULL);
	time_t t;
	char when[64];

	t = gnutls_x509_crt_get_expiration_time(crt);
	if (t != (time_t)-1 && t < now) {
		tls_format_time(t, when, sizeof(when));
		return tls_fail(ld, EKEYEXPIRED,
				"%s: certificate expired on %s", path, when);
	}
	t = gnutls_x509_crt_get_activation_time(crt);
	if (t != (time_t)-1 && t > now) {
		tls_format_time(t, when, sizeof(when));
		return tls_fail(ld, EKEYEXPIRED,
				"%s: certificate not valid before %s", path,
				when);
	}
	return 0;
}

/* Load one chain and its key into cred. */
static int tls_load_cert_key(struct tls_load *ld,
			     gnutls_certificate_credentials_t cred,
			     const char *cert_file,
			     const char *key_file)
{
	TALLOC_CTX *tmp = talloc_new(NULL);
	gnutls_datum_t cert_pem;
	gnutls_datum_t key_pem;
	gnutls_x509_crt_t *crts = NULL;
	unsigned int num_crts = 0;
	gnutls_x509_privkey_t key = NULL;
	unsigned int i;
	int ret;
	int err;

	if (tmp == NULL) {
		return tls_fail(ld, ENOMEM, "out of memory");
	}
	if (tstream_tls_is_pkcs11_url(cert_file) ||
	    tstream_tls_is_pkcs11_url(key_file)) {
		char *why = NULL;

		err = tstream_tls_load_pkcs11(tmp, cred, cert_file, key_file,
					      &why);
		if (err != 0) {
			err = tls_fail(ld, err, "%s",
				       why != NULL ? why : strerror(err));
		}
		goto out;
	}
	err = tls_read_file(ld, tmp, cert_file, "certificate", &cert_pem);
	if (err != 0) {
		goto out;
	}
	err = tls_read_file(ld, tmp, key_file, "private key", &key_pem);
	if (err != 0) {
		goto out;
	}

	ret = gnutls_x509_crt_list_import2(&crts, &num_crts, &cert_pem,
					   GNUTLS_X509_FMT_PEM, 0);
	if (ret < 0 || num_crts == 0) {
		err = tls_fail(
		    ld, EINVAL, "%s: not a PEM certificate (%s)", cert_file,
		    ret < 0 ? gnutls_strerror(ret) : "no certificate found");
		goto out;
	}
	err = tls_check_times(ld, crts[0], cert_file);
	if (err != 0) {
		goto out;
	}

	ret = gnutls_x509_privkey_init(&key);
	if (ret < 0) {
		err = tls_fail(ld, ENOMEM, "out of memory");
		goto out;
	}
	ret = gnutls_x509_privkey_import2(key, &key_pem, GNUTLS_X509_FMT_PEM,
					  NULL, 0);
	if (ret < 0) {
		err = tls_fail(ld, EINVAL,
			       "%s: not a PEM private key, or an encrypted "
			       "one (%s)",
			       key_file, gnutls_strerror(ret));
		goto out;
	}

	ret = gnutls_certificate_set_x509_key(cred, crts, num_crts, key);
	if (ret == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
		err = tls_fail(ld, EINVAL,
			       "%s: private key does not match certificate %s",
			       key_file, cert_file);
		goto out;
	}
	if (ret < 0) {
		err = tls_fail(ld, EINVAL, "%s, %s: cannot use certificate: %s",
			       cert_file, key_file, gnutls_strerror(ret));
		goto out;
	}
	err = 0;
out:
	if (key != NULL) {
		gnutls_x509_privkey_deinit(key);
	}
	for (i = 0; i < num_crts; i++) {
		gnutls_x509_crt_deinit(crts[i]);
	}
	gnutls_free(crts);
	talloc_free(tmp);
	return err;
}

/* Load trust anchors (file, or the system's when ca_file is NULL) and CRL. */
static int tls_load_trust(struct tls_load *ld,
			  gnutls_certificate_credentials_t cred,
			  const char *ca_file,
			  const char *crl_file)
{
	TALLOC_CTX *tmp = talloc_new(NULL);
	gnutls_datum_t pem;
	int ret;
	int err = 0;

	if (tmp == NULL) {
		return tls_fail(ld, ENOMEM, "out of memory");
	}
	if (ca_file == NULL) {
		ret = gnutls_certificate_set_x509_system_trust(cred);
		if (ret <= 0) {
			err = tls_fail(
			    ld, ENOENT, "no system CA certificates found (%s)",
			    ret < 0 ? gnutls_strerror(ret) : "empty store");
			goto out;
		}
	} else {
		err = tls_read_file(ld, tmp, ca_file, "CA bundle", &pem);
		if (err != 0) {
			goto out;
		}
		ret = gnutls_certificate_set_x509_trust_mem(
		    cred, &pem, GNUTLS_X509_FMT_PEM);
		if (ret <= 0) {
			err = tls_fail(ld, EINVAL,
				       "%s: not a PEM CA bundle (%s)", ca_file,
				       ret < 0 ? gnutls_strerror(ret)
					       : "no certificate found");
			goto out;
		}
	}
	if (crl_file != NULL) {
		err = tls_read_file(ld, tmp, crl_file, "CRL", &pem);
		if (err != 0) {
			goto out;
		}
		ret = gnutls_certificate_set_x509_crl_mem(cred, &pem,
							  GNUTLS_X509_FMT_PEM);
		if (ret <= 0) {
			err = tls_fail(
			    ld, EINVAL, "%s: not a PEM CRL (%s)", crl_file,
			    ret < 0 ? gnutls_strerror(ret) : "no CRL found");
			goto out;
		}
	}
out:
	talloc_free(tmp);
	return err;
}

static int tls_load_priority(struct tls_load *ld,
			     struct tstream_tls_params_internal *p,
			     const char *priority,
			     bool server)
{
	const char *str = priority;
	const char *err_pos = NULL;
	int ret;

	if (str == NULL) {
		str = server ? TSTREAM_TLS_DEFAULT_PRIORITY
			  ":%SERVER_PRECEDENCE"
			     : TSTREAM_TLS_DEFAULT_PRIORITY;
	}
	ret = gnutls_priority_init(&p->priority, str, &err_pos);
	if (ret < 0) {
		p->priority = NULL;
		if (err_pos != NULL) {
			return tls_fail(ld, EINVAL,
					"invalid TLS priority string at \"%s\"",
					err_pos);
		}
		return tls_fail(ld, EINVAL, "invalid TLS priority string: %s",
				gnutls_strerror(ret));
	}
	return 0;
}

static int tls_load_alpn(struct tls_load *ld,
			 struct tstream_tls_params_internal *p,
			 const char *const *alpn)
{
	unsigned n = 0;
	unsigned i;

	if (alpn == NULL) {
		return 0;
	}
	while (alpn[n] != NULL) {
		size_t len = strlen(alpn[n]);

		if (len == 0 || len > 255) {
			return tls_fail(ld, EINVAL,
					"ALPN protocol name must have 1 to 255 "
					"bytes: \"%s\"",
					alpn[n]);
		}
		n++;
	}
	if (n == 0) {
		return 0;
	}
	p->alpn = talloc_zero_array(p, gnutls_datum_t, n);
	if (p->alpn == NULL) {
		return tls_fail(ld, ENOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		char *copy = talloc_strdup(p->alpn, alpn[i]);

		if (copy == NULL) {
			return tls_fail(ld, ENOMEM, "out of memory");
		}
		p->alpn[i].data = (unsigned char *)copy;
		p->alpn[i].size = (unsigned)strlen(copy);
	}
	p->num_alpn = n;
	return 0;
}

static struct tstream_tls_params_internal *tls_params_internal_new(void)
{
	struct tstream_tls_params_internal *p;

	/* unparented on purpose: owned by the handles' refcount */
	p = talloc_zero(NULL, struct tstream_tls_params_internal);
	if (p == NULL) {
		return NULL;
	}
	talloc_set_destructor(p, tls_params_internal_destructor);
	return p;
}

/* Wrap a loaded internal struct into the caller's first handle. */
static int tls_params_finish(TALLOC_CTX *mem_ctx,
			     struct tstream_tls_params_internal *p,
			     struct tstream_tls_params **params)
{
	struct tstream_tls_params tmp = {.internal = p};
	struct tstream_tls_params *handle;

	handle = tls_params_ref(mem_ctx, &tmp);
	if (handle == NULL) {
		talloc_free(p);
		return ENOMEM;
	}
	*params = handle;
	return 0;
}

/*
 * The OCSP response stapled with the chain sc loaded last. GnuTLS refuses
 * one for another certificate. One already past its nextUpdate is not
 * loaded and not an error (the server works without a staple); one that
 * expires while the server runs GnuTLS stops sending by itself.
 */
static int tls_load_ocsp(struct tls_load *ld,
			 struct tstream_tls_sni_cred *sc,
			 const char *path)
{
	TALLOC_CTX *tmp = talloc_new(NULL);
	gnutls_datum_t der;
	int ret;
	int err;

	if (tmp == NULL) {
		return tls_fail(ld, ENOMEM, "out of memory");
	}
	err = tls_read_file(ld, tmp, path, "OCSP response", &der);
	if (err == 0) {
		ret = gnutls_certificate_set_ocsp_status_request_mem(
		    sc->cred, &der, sc->num_keys - 1, GNUTLS_X509_FMT_DER);
		if (ret == GNUTLS_E_EXPIRED) {
			/* past nextUpdate: served without a staple (the
			 * caller warns); a fresh one comes with a reload */
			ret = 0;
		}
		if (ret == GNUTLS_E_OCSP_MISMATCH_WITH_CERTS) {
			err = tls_fail(ld, EINVAL,
				       "%s: the OCSP response is not for the "
				       "certificate it goes with",
				       path);
		} else if (ret < 0) {
			err = tls_fail(ld, EINVAL,
				       "%s: not a DER OCSP response (%s)", path,
				       gnutls_strerror(ret));
		}
	}
	talloc_free(tmp);
	return err;
}

/* Index of the credential for name (same name, case-insensitive). */
static int tls_server_cred_index(struct tls_load *ld,
				 struct tstream_tls_params_internal *p,
				 const char *sni,
				 size_t *idx)
{
	size_t i;
	int ret;

	for (i = 0; i < p->num_creds; i++) {
		const char *have = p->creds[i].sni;

		if ((have == NULL && sni == NULL) ||
		    (have != NULL && sni != NULL &&
		     strcasecmp(have, sni) == 0)) {
			*idx = i;
			return 0;
		}
	}
	i = p->num_creds;
	ret = gnutls_certificate_allocate_credentials(&p->creds[i].cred);
	if (ret < 0) {
		p->creds[i].cred = NULL;
		return tls_fail(ld, ENOMEM, "out of memory");
	}
	p->num_creds++;
	if (sni != NULL) {
		p->creds[i].sni = talloc_strdup(p->creds, sni);
		if (p->creds[i].sni == NULL) {
			return tls_fail(ld, ENOMEM, "out of memory");
		}
	}
	*idx = i;
	return 0;
}

_PUBLIC_ int tstream_tls_params_server(
    TALLOC_CTX *mem_ctx,
    const struct tstream_tls_server_config *cfg,
    struct tstream_tls_params **params,
    char **error)
{
	struct tls_load ld = {.mem_ctx = mem_ctx, .error = error};
	struct tstream_tls_params_internal *p;
	bool have_default = false;
	size_t i;
	int err;

	if (error != NULL) {
		*error = NULL;
	}
	if (cfg == NULL || params == NULL) {
		return tls_fail(&ld, EINVAL, "no TLS server configuration");
	}
	if (cfg->certs == NULL || cfg->num_certs == 0) {
		return tls_fail(&ld, EINVAL,
				"a TLS server needs at least one certificate");
	}
	for (i = 0; i < cfg->num_certs; i++) {
		if (cfg->certs[i].cert_file == NULL ||
		    cfg->certs[i].key_file == NULL) {
			return tls_fail(&ld, EINVAL,
					"certificate %zu: both a certificate "
					"and a key file are needed",
					i + 1);
		}
		if (cfg->certs[i].sni != NULL && cfg->certs[i].sni[0] == '\0') {
			return tls_fail(&ld, EINVAL,
					"certificate %zu: empty SNI name",
					i + 1);
		}
	}

	p = tls_params_internal_new();
	if (p == NULL) {
		return tls_fail(&ld, ENOMEM, "out of memory");
	}
	p->is_server = true;
	p->strict_end = cfg->strict_end;
	p->own_records = cfg->record_layer != TSTREAM_TLS_RECORD_GNUTLS;
	p->key_update_records = cfg->key_update_records;
	if (cfg->ticket_key != NULL) {
		p->tickets = true;
		memcpy(p->ticket_key, cfg->ticket_key, sizeof(p->ticket_key));
		p->ticket_lifetime = cfg->ticket_lifetime != 0
					 ? cfg->ticket_lifetime
					 : TSTREAM_TLS_DEFAULT_TICKET_LIFETIME;
	}
	p->verify = cfg->verify_client;
	if (p->verify == TSTREAM_TLS_VERIFY_DEFAULT) {
		p->verify = cfg->client_ca_file != NULL
				? TSTREAM_TLS_VERIFY_REQUIRE
				: TSTREAM_TLS_VERIFY_NONE;
	}
	if (p->verify != TSTREAM_TLS_VERIFY_NONE &&
	    cfg->client_ca_file == NULL) {
		talloc_free(p);
		return tls_fail(&ld, EINVAL,
				"verifying client certificates needs a client "
				"CA file");
	}
	if (p->verify != TSTREAM_TLS_VERIFY_NONE &&
	    p->verify != TSTREAM_TLS_VERIFY_OPTIONAL &&
	    p->verify != TSTREAM_TLS_VERIFY_REQUIRE) {
		talloc_free(p);
		return tls_fail(&ld, EINVAL, "unknown client verify mode");
	}

	p->creds =
	    talloc_zero_array(p, struct tstream_tls_sni_cred, cfg->num_certs);
	if (p->creds == NULL) {
		talloc_free(p);
		return tls_fail(&ld, ENOMEM, "out of memory");
	}
	for (i = 0; i < cfg->num_certs; i++) {
		const struct tstream_tls_cert_config *c = &cfg->certs[i];
		size_t idx = 0;

		err = tls_server_cred_index(&ld, p, c->sni, &idx);
		if (err != 0) {
			talloc_free(p);
			return err;
		}
		err = tls_load_cert_key(&ld, p->creds[idx].cred, c->cert_file,
					c->key_file);
		if (err != 0) {
			talloc_free(p);
			return err;
		}
		p->creds[idx].num_keys++;
		if (c->ocsp_file != NULL) {
			err = tls_load_ocsp(&ld, &p->creds[idx], c->ocsp_file);
			if (err != 0) {
				talloc_free(p);
				return err;
			}
		}
		if (c->sni == NULL && !have_default) {
			p->default_cred = idx;
			have_default = true;
		}
	}
	if (!have_default) {
		p->default_cred = 0;
	}
	if (cfg->client_ca_file != NULL) {
		for (i = 0; i < p->num_creds; i++) {
			err =
			    tls_load_trust(&ld, p->creds[i].cred,
					   cfg->client_ca_file, cfg->crl_file);
			if (err != 0) {
				talloc_free(p);
				return err;
			}
		}
	} else if (cfg->crl_file != NULL) {
		talloc_free(p);
		return tls_fail(&ld, EINVAL,
				"a CRL needs a client CA file to go with it");
	}

	err = tls_load_priority(&ld, p, cfg->priority, true);
	if (err == 0) {
		err = tls_load_alpn(&ld, p, cfg->alpn);
	}
	if (err == 0 && tstream_tls_resume_prepare(p) < 0) {
		err = tls_fail(&ld, ENOMEM, "cannot derive the ticket keys");
	}
	if (err != 0) {
		talloc_free(p);
		return err;
	}
	err = tls_params_finish(mem_ctx, p, params);
	if (err != 0) {
		return tls_fail(&ld, err, "out of memory");
	}
	return 0;
}

static bool tls_is_ip_literal(const char *name)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, name, buf) == 1 ||
	       inet_pton(AF_INET6, name, buf) == 1;
}

_PUBLIC_ int tstream_tls_params_client(
    TALLOC_CTX *mem_ctx,
    const struct tstream_tls_client_config *cfg,
    struct tstream_tls_params **params,
    char **error)
{
	struct tls_load ld = {.mem_ctx = mem_ctx, .error = error};
	struct tstream_tls_params_internal *p;
	const char *peer_name;
	const char *sni;
	int ret;
	int err;

	if (error != NULL) {
		*error = NULL;
	}
	if (cfg == NULL || params == NULL) {
		return tls_fail(&ld, EINVAL, "no TLS client configuration");
	}
	if ((cfg->cert_file == NULL) != (cfg->key_file == NULL)) {
		return tls_fail(&ld, EINVAL,
				"a client certificate needs both a certificate "
				"and a key file");
	}
	peer_name = cfg->peer_name != NULL ? cfg->peer_name : cfg->sni;
	sni = cfg->sni;
	if (sni == NULL && peer_name != NULL && !tls_is_ip_literal(peer_name)) {
		sni = peer_name;
	}
	if (sni != NULL && (sni[0] == '\0' || tls_is_ip_literal(sni))) {
		return tls_fail(&ld, EINVAL,
				"SNI must be a DNS name, not \"%s\"", sni);
	}

	p = tls_params_internal_new();
	if (p == NULL) {
		return tls_fail(&ld, ENOMEM, "out of memory");
	}
	p->is_server = false;
	p->strict_end = cfg->strict_end;
	p->resume = cfg->session_resumption;
	p->verify = cfg->verify_server;
	if (p->verify == TSTREAM_TLS_VERIFY_DEFAULT) {
		p->verify = TSTREAM_TLS_VERIFY_REQUIRE;
	}
	if (p->verify != TSTREAM_TLS_VERIFY_NONE &&
	    p->verify != TSTREAM_TLS_VERIFY_OPTIONAL &&
	    p->verify != TSTREAM_TLS_VERIFY_REQUIRE) {
		talloc_free(p);
		return tls_fail(&ld, EINVAL, "unknown server verify mode");
	}
	if (p->verify != TSTREAM_TLS_VERIFY_NONE && peer_name == NULL) {
		talloc_free(p);
		return tls_fail(&ld, EINVAL,
				"verifying the server needs a peer name (or "
				"SNI) to check its certificate against");
	}
	if (peer_name != NULL) {
		p->peer_name = talloc_strdup(p, peer_name);
		if (p->peer_name == NULL) {
			talloc_free(p);
			return tls_fail(&ld, ENOMEM, "out of memory");
		}
	}
	if (sni != NULL) {
		p->sni = talloc_strdup(p, sni);
		if (p->sni == NULL) {
			talloc_free(p);
			return tls_fail(&ld, ENOMEM, "out of memory");
		}
	}

	p->creds = talloc_zero_array(p, struct tstream_tls_sni_cred, 1);
	if (p->creds == NULL) {
		talloc_free(p);
		return tls_fail(&ld, ENOMEM, "out of memory");
	}
	ret = gnutls_certificate_allocate_credentials(&p->creds[0].cred);
	if (ret < 0) {
		p->creds[0].cred = NULL;
		talloc_free(p);
		return tls_fail(&ld, ENOMEM, "out of memory");
	}
	p->num_creds = 1;
	p->default_cred = 0;

	if (p->verify != TSTREAM_TLS_VERIFY_NONE || cfg->ca_file != NULL) {
		err = tls_load_trust(&ld, p->creds[0].cred, cfg->ca_file,
				     cfg->crl_file);
		if (err != 0) {
			talloc_free(p);
			return err;
		}
	}
	if (cfg->cert_file != NULL) {
		err = tls_load_cert_key(&ld, p->creds[0].cred, cfg->cert_file,
					cfg->key_file);
		if (err != 0) {
			talloc_free(p);
			return err;
		}
	}
	err = tls_load_priority(&ld, p, cfg->priority, false);
	if (err == 0) {
		err = tls_load_alpn(&ld, p, cfg->alpn);
	}
	if (err != 0) {
		talloc_free(p);
		return err;
	}
	err = tls_params_finish(mem_ctx, p, params);
	if (err != 0) {
		return tls_fail(&ld, err, "out of memory");
	}
	return 0;
}
