/* SPDX-License-Identifier: MIT */
/*
 * 'cert' and 'key' as PKCS#11 URLs (RFC 7512): a certificate or a private
 * key that lives on a token (an HSM, SoftHSM, a TPM's PKCS#11 module).
 * Only the URL's form is judged here; whether the token opens, the PIN
 * works and the key matches the certificate is the TLS library's verdict
 * (config_creds.c asks it when credentials are checked).
 *
 * A PIN is a secret like a key file: a pin-source file must pass the key
 * permission rule, and a pin-value written into the URL makes the config
 * file itself a secret that must pass it.
 */
#include <string.h>
#include <sys/stat.h>

#include "config_private.h"

#define CFG_PKCS11_MAX_URL 4096

static bool cfg_pkcs11_url_chars_ok(const char *v)
{
	const unsigned char *c;

	for (c = (const unsigned char *)v; *c != '\0'; c++) {
		if (*c <= 0x20 || *c >= 0x7f) {
			return false;
		}
	}
	return true;
}

/* The value of attribute name in query q ("a=1&b=2"), or NULL. */
static const char *cfg_pkcs11_query_attr(TALLOC_CTX *mem_ctx,
					 const char *q,
					 const char *name)
{
	size_t len = strlen(name);

	while (q != NULL && *q != '\0') {
		const char *end = strchr(q, '&');
		size_t n = end != NULL ? (size_t)(end - q) : strlen(q);

		if (n > len && strncmp(q, name, len) == 0 && q[len] == '=') {
			return talloc_strndup(mem_ctx, q + len + 1,
					      n - len - 1);
		}
		q = end != NULL ? end + 1 : NULL;
	}
	return NULL;
}

static void cfg_pkcs11_secret(struct cfg_parser *p,
			      const char *what,
			      const yaml_node_t *node,
			      const char *path,
			      const struct stat *st)
{
	struct tsgate_config_origin at = cfg_origin(p, node);

	at.text = talloc_strdup(p->tmp, path);
	if (at.text == NULL) {
		p->oom = true;
		return;
	}
	cfg_add_secret_at(p, what, at, st);
}

static void cfg_pkcs11_pin(struct cfg_parser *p,
			   const struct cfg_key *k,
			   const yaml_node_t *node,
			   const char *query)
{
	const char *source = cfg_pkcs11_query_attr(p->tmp, query, "pin-source");
	struct stat st;

	if (cfg_pkcs11_query_attr(p->tmp, query, "pin-value") != NULL) {
		if (stat(p->file, &st) == 0) {
			cfg_pkcs11_secret(p, "pin-value", node, p->file, &st);
		}
	}
	if (source == NULL) {
		return;
	}
	if (strncmp(source, "file:", 5) == 0) {
		source += 5;
	}
	if (source[0] != '/') {
		cfg_error(p, node,
			  "'%s': pin-source must be an absolute file name, "
			  "not '%s'",
			  k->name, source);
		return;
	}
	if (stat(source, &st) != 0 || !S_ISREG(st.st_mode)) {
		cfg_error(p, node,
			  "'%s': pin-source '%s' is not a readable file",
			  k->name, source);
		return;
	}
	cfg_pkcs11_secret(p, "pin-source", node, source, &st);
}

void cfg_h_cred(struct cfg_parser *p,
		const struct cfg_key *k,
		yaml_node_t *node,
		void *obj)
{
	const char **field = FIELD(obj, k, const char *);
	const char *v = cfg_str(node);
	const char *query;

	if (strncmp(v, "pkcs11:", 7) != 0) {
		cfg_h_path(p, k, node, obj);
		return;
	}
	if (strlen(v) > CFG_PKCS11_MAX_URL || !cfg_pkcs11_url_chars_ok(v)) {
		cfg_error(p, node,
			  "'%s': a PKCS#11 URL is at most %d characters with "
			  "no spaces or control characters (write a space as "
			  "%%20)",
			  k->name, CFG_PKCS11_MAX_URL);
		return;
	}
	query = strchr(v, '?');
	if (v[7] == '\0' || v[7] == '?') {
		cfg_error(p, node,
			  "'%s': the PKCS#11 URL names no object (write "
			  "pkcs11:token=...;object=...)",
			  k->name);
		return;
	}
	if (query != NULL) {
		cfg_pkcs11_pin(p, k, node, query + 1);
	}
	*field = talloc_strdup(p->cfg, v);
	if (*field == NULL) {
		p->oom = true;
	}
}
