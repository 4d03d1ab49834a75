/* SPDX-License-Identifier: MIT */
/*
 * The tls blocks: a listener's (server side: certificates by name, client
 * CA, CRL, ALPN, versions) and a route's (client side).
 */
#include <ctype.h>
#include <string.h>

#include "config_private.h"

static const struct cfg_enum cfg_verify_clients[] = {
    {"none", TSGATE_CONFIG_VERIFY_NONE, false},
    {"optional", TSGATE_CONFIG_VERIFY_OPTIONAL, false},
    {"require", TSGATE_CONFIG_VERIFY_REQUIRE, false},
    {NULL, 0, false},
};

static const struct cfg_enum cfg_record_layers[] = {
    {"tsgate", TSGATE_CONFIG_RECORD_TSGATE, false},
    {"gnutls", TSGATE_CONFIG_RECORD_GNUTLS, false},
    {NULL, 0, false},
};

/* up to the library's own limit (2^24, below AES-GCM's of RFC 8446 5.5) */
static const struct cfg_range cfg_key_update_range = {1, 1u << 24};

static const struct cfg_enum cfg_tls_versions[] = {
    {"TLS1.2", TSGATE_CONFIG_TLS_1_2, false},
    {"TLS1.3", TSGATE_CONFIG_TLS_1_3, false},
    {"1.2", TSGATE_CONFIG_TLS_1_2, true},
    {"1.3", TSGATE_CONFIG_TLS_1_3, true},
    {NULL, 0, false},
};

/* listeners[].tls */

struct cfg_tls_server_parse {
	struct tsgate_config_tls_server *tls;
	struct cfg_strlist alpn;
	const char *key; /* top-level key */
	const char *client_ca;
	const char *crl;
	const char *ticket_keys_file;
	const char *ocsp_response;
	bool verify_given;
};

#define TSP(f) offsetof(struct cfg_tls_server_parse, f)
#define TS(f)  offsetof(struct tsgate_config_tls_server, f)
static const struct cfg_key cfg_tls_server_keys[] = {
    {"cert", CFG_ANY, NULL, 0, NULL, NULL},
    {"key", CFG_SCALAR, cfg_h_cred, TSP(key), NULL, "a file name"},
    {"client_ca", CFG_SCALAR, cfg_h_path, TSP(client_ca), NULL, "a file name"},
    {"crl", CFG_SCALAR, cfg_h_path, TSP(crl), NULL, "a file name"},
    {"verify_client", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"alpn", CFG_ANY, cfg_h_alpn, TSP(alpn), NULL, NULL},
    {"priority", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"min_version", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"max_version", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"strict_end", CFG_SCALAR, NULL, 0, NULL, "true or false"},
    {"session_resumption", CFG_SCALAR, NULL, 0, NULL, "true or false"},
    {"session_lifetime", CFG_SCALAR, NULL, 0, NULL, "a duration"},
    {"ticket_keys_file", CFG_SCALAR, cfg_h_path, TSP(ticket_keys_file), NULL,
     "a file name"},
    {"ocsp_response", CFG_SCALAR, cfg_h_path, TSP(ocsp_response), NULL,
     "a file name"},
    {"record_layer", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"key_update_records", CFG_SCALAR, NULL, 0, NULL, "a number"},
};
#undef TSP

struct cfg_cert_entry {
	const char *sni;
	const char *cert;
	const char *key;
	const char *ocsp_response;
};

#define CE(f) offsetof(struct cfg_cert_entry, f)
static const struct cfg_key cfg_cert_entry_keys[] = {
    {"sni", CFG_SCALAR, cfg_h_string, CE(sni), NULL, NULL},
    {"cert", CFG_SCALAR, cfg_h_cred, CE(cert), NULL, "a file name"},
    {"key", CFG_SCALAR, cfg_h_cred, CE(key), NULL, "a file name"},
    {"ocsp_response", CFG_SCALAR, cfg_h_path, CE(ocsp_response), NULL,
     "a file name"},
};
#undef CE

/* Scalar fields whose handler needs the struct itself, not a parse aid. */
static const struct cfg_key cfg_tls_server_direct[] = {
    {"verify_client", CFG_SCALAR, cfg_h_enum, TS(verify_client),
     cfg_verify_clients, NULL},
    {"priority", CFG_SCALAR, cfg_h_string, TS(priority), NULL, NULL},
    {"min_version", CFG_SCALAR, cfg_h_enum, TS(min_version), cfg_tls_versions,
     NULL},
    {"max_version", CFG_SCALAR, cfg_h_enum, TS(max_version), cfg_tls_versions,
     NULL},
    {"strict_end", CFG_SCALAR, cfg_h_bool, TS(strict_end), NULL, NULL},
    {"session_resumption", CFG_SCALAR, cfg_h_bool, TS(session_resumption), NULL,
     NULL},
    {"session_lifetime", CFG_SCALAR, cfg_h_duration, TS(session_lifetime_ms),
     NULL, NULL},
    {"record_layer", CFG_SCALAR, cfg_h_enum, TS(record_layer),
     cfg_record_layers, NULL},
    {"key_update_records", CFG_SCALAR, cfg_h_u32, TS(key_update_records),
     &cfg_key_update_range, NULL},
};
#undef TS

static void cfg_run_direct(struct cfg_parser *p,
			   const struct cfg_key *direct,
			   size_t ndirect,
			   const struct cfg_key *table,
			   size_t n,
			   yaml_node_t **seen,
			   void *obj)
{
	size_t i;

	for (i = 0; i < ndirect; i++) {
		yaml_node_t *v = cfg_seen(table, n, seen, direct[i].name);

		if (v != NULL) {
			direct[i].fn(p, &direct[i], v, obj);
		}
	}
}

static void cfg_check_versions(struct cfg_parser *p,
			       yaml_node_t *max_node,
			       enum tsgate_config_tls_version min,
			       enum tsgate_config_tls_version max)
{
	if (min != TSGATE_CONFIG_TLS_DEFAULT &&
	    max != TSGATE_CONFIG_TLS_DEFAULT && max < min) {
		cfg_error(p, max_node,
			  "'max_version' is lower than 'min_version'");
	}
}

static bool cfg_valid_cert_sni(const char *sni)
{
	const char *c;

	if (strncmp(sni, "*.", 2) == 0) {
		sni += 2;
	}
	if (*sni == '\0' || *sni == '.') {
		return false;
	}
	for (c = sni; *c != '\0'; c++) {
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' &&
		    *c != '.') {
			return false;
		}
	}
	return true;
}

static void cfg_tls_server_certs(struct cfg_parser *p,
				 yaml_node_t *tls_node,
				 yaml_node_t *cert_node,
				 yaml_node_t *key_node,
				 yaml_node_t *ocsp_node,
				 bool key_present,
				 struct cfg_tls_server_parse *tp)
{
	struct tsgate_config_tls_server *tls = tp->tls;
	yaml_node_item_t *item;
	size_t n;

	if (cert_node == NULL) {
		cfg_error(p, tls_node, "missing key 'cert' in tls");
		return;
	}
	if (cert_node->type == YAML_SCALAR_NODE) {
		struct cfg_key ck = {
		    "cert",     CFG_SCALAR,
		    cfg_h_cred, offsetof(struct tsgate_config_tls_cert, cert),
		    NULL,       "a file name"};

		if (!cfg_check_kind(p, "cert", CFG_SCALAR,
				    "a file name or a list of {sni, cert, key}",
				    cert_node)) {
			return;
		}
		tls->certs =
		    talloc_zero_array(tls, struct tsgate_config_tls_cert, 1);
		if (tls->certs == NULL) {
			p->oom = true;
			return;
		}
		tls->num_certs = 1;
		tls->certs[0].mark = cfg_mark(cert_node);
		cfg_h_cred(p, &ck, cert_node, &tls->certs[0]);
		if (!key_present) {
			cfg_error(p, tls_node,
				  "missing key 'key' in tls "
				  "(the private key of 'cert')");
			return;
		}
		tls->certs[0].key = tp->key;
		tls->certs[0].cert_at = cfg_origin(p, cert_node);
		tls->certs[0].key_at = cfg_origin(p, key_node);
		tls->certs[0].ocsp_response = tp->ocsp_response;
		tls->certs[0].ocsp_at = cfg_origin(p, ocsp_node);
		return;
	}
	if (cert_node->type != YAML_SEQUENCE_NODE) {
		cfg_error(p, cert_node,
			  "'cert' must be a file name or a list "
			  "of {sni, cert, key}, not %s",
			  cfg_node_desc(cert_node));
		return;
	}
	if (key_node != NULL) {
		cfg_error(p, key_node,
			  "'key' goes into each entry when 'cert' "
			  "is a list");
	}
	if (ocsp_node != NULL) {
		/* a response is for one certificate */
		cfg_error(p, ocsp_node,
			  "'ocsp_response' goes into each entry when 'cert' "
			  "is a list");
	}
	n = (size_t)(cert_node->data.sequence.items.top -
		     cert_node->data.sequence.items.start);
	if (n == 0) {
		cfg_error(p, cert_node, "'cert' must not be an empty list");
		return;
	}
	if (n > CFG_MAX_LIST) {
		cfg_error(p, cert_node,
			  "'cert' has too many entries (at most %d)",
			  CFG_MAX_LIST);
		return;
	}
	tls->certs = talloc_zero_array(tls, struct tsgate_config_tls_cert, n);
	if (tls->certs == NULL) {
		p->oom = true;
		return;
	}
	for (item = cert_node->data.sequence.items.start;
	     item < cert_node->data.sequence.items.top; item++) {
		yaml_node_t *e = cfg_node(p, *item);
		yaml_node_t *seen[ARRAY_SIZE(cfg_cert_entry_keys)] = {NULL};
		struct cfg_cert_entry ce = {NULL, NULL, NULL, NULL};
		uint32_t present;
		struct tsgate_config_tls_cert *c;

		if (e == NULL || !cfg_visit(p, e)) {
			return;
		}
		if (!cfg_check_kind(p, "cert", CFG_MAPPING,
				    "a list of {sni, cert, key}", e)) {
			continue;
		}
		present = cfg_mapping(p, e, cfg_cert_entry_keys,
				      ARRAY_SIZE(cfg_cert_entry_keys), &ce,
				      "cert", seen);
		if ((present & 6) != 6) {
			cfg_error(p, e, "missing key '%s' in cert entry",
				  (present & 2) == 0 ? "cert" : "key");
			continue;
		}
		if (seen[1] == NULL || seen[2] == NULL) {
			continue;
		}
		/*
		 * Several entries may share a name or all lack one (e.g. an
		 * ECDSA and an RSA chain): GnuTLS picks what the client
		 * supports. A name is a host name or "*.domain", the one
		 * wildcard form the TLS library matches.
		 */
		if (ce.sni != NULL && !cfg_valid_cert_sni(ce.sni)) {
			cfg_error(p, seen[0],
				  "'sni': '%s' must be a host name or "
				  "*.domain (one wildcard label)",
				  ce.sni);
		}
		c = &tls->certs[tls->num_certs++];
		c->sni = ce.sni;
		c->cert = ce.cert;
		c->key = ce.key;
		c->mark = cfg_mark(e);
		c->cert_at = cfg_origin(p, seen[1]);
		c->key_at = cfg_origin(p, seen[2]);
		c->ocsp_response = ce.ocsp_response;
		c->ocsp_at = cfg_origin(p, seen[3]);
	}
}

struct tsgate_config_tls_server *cfg_tls_server(struct cfg_parser *p,
						yaml_node_t *node)
{
	struct tsgate_config_tls_server *tls;
	yaml_node_t *seen[ARRAY_SIZE(cfg_tls_server_keys)] = {NULL};
	struct cfg_tls_server_parse tp;
	size_t errors_before;
	uint32_t present;
	yaml_node_t *v;

	tls = talloc_zero(p->cfg, struct tsgate_config_tls_server);
	if (tls == NULL) {
		p->oom = true;
		return NULL;
	}
	tls->mark = cfg_mark(node);
	tls->session_resumption = true;
	errors_before = p->errs->num_errors;
	memset(&tp, 0, sizeof(tp));
	tp.tls = tls;
	present =
	    cfg_mapping(p, node, cfg_tls_server_keys,
			ARRAY_SIZE(cfg_tls_server_keys), &tp, "tls", seen);
	cfg_run_direct(p, cfg_tls_server_direct,
		       ARRAY_SIZE(cfg_tls_server_direct), cfg_tls_server_keys,
		       ARRAY_SIZE(cfg_tls_server_keys), seen, tls);
	tls->client_ca = tp.client_ca;
	tls->crl = tp.crl;
	tls->ticket_keys_file = tp.ticket_keys_file;
	tls->alpn = tp.alpn.items;
	tls->num_alpn = tp.alpn.num;
	cfg_tls_server_certs(p, node, SEEN(cfg_tls_server_keys, seen, "cert"),
			     SEEN(cfg_tls_server_keys, seen, "key"),
			     SEEN(cfg_tls_server_keys, seen, "ocsp_response"),
			     PRESENT(cfg_tls_server_keys, present, "key"), &tp);

	v = SEEN(cfg_tls_server_keys, seen, "verify_client");
	if (v == NULL) {
		tls->verify_client = tls->client_ca != NULL
					 ? TSGATE_CONFIG_VERIFY_REQUIRE
					 : TSGATE_CONFIG_VERIFY_NONE;
	} else if (tls->verify_client != TSGATE_CONFIG_VERIFY_NONE &&
		   !PRESENT(cfg_tls_server_keys, present, "client_ca")) {
		cfg_error(p, v,
			  "'verify_client: %s' needs 'client_ca' (the CA "
			  "that signs client certificates)",
			  cfg_str(v));
	}
	v = SEEN(cfg_tls_server_keys, seen, "crl");
	if (v != NULL && !PRESENT(cfg_tls_server_keys, present, "client_ca")) {
		cfg_error(p, v, "'crl' needs 'client_ca'");
	}
	cfg_check_versions(p, SEEN(cfg_tls_server_keys, seen, "max_version"),
			   tls->min_version, tls->max_version);
	tls->client_ca_at =
	    cfg_origin(p, SEEN(cfg_tls_server_keys, seen, "client_ca"));
	tls->crl_at = cfg_origin(p, SEEN(cfg_tls_server_keys, seen, "crl"));
	tls->priority_at =
	    cfg_origin(p, SEEN(cfg_tls_server_keys, seen, "priority"));
	tls->ticket_keys_at =
	    cfg_origin(p, SEEN(cfg_tls_server_keys, seen, "ticket_keys_file"));
	v = SEEN(cfg_tls_server_keys, seen, "ticket_keys_file");
	if (v != NULL && !tls->session_resumption) {
		cfg_error(p, v,
			  "'ticket_keys_file' is not used with "
			  "'session_resumption: false'");
	}
	v = SEEN(cfg_tls_server_keys, seen, "session_lifetime");
	if (v != NULL && !tls->session_resumption) {
		cfg_error(p, v,
			  "'session_lifetime' is not used with "
			  "'session_resumption: false'");
	} else if (v != NULL && (tls->session_lifetime_ms < 1000 ||
				 tls->session_lifetime_ms > 7 * 86400000ULL)) {
		/* RFC 8446 4.6.1: a ticket lives at most 7 days */
		cfg_error(p, v,
			  "'session_lifetime': must be between 1s and 168h");
	}
	tls->walk_errors = p->errs->num_errors != errors_before;
	return tls;
}

/* routes[].tls (client side) */

struct cfg_tls_client_parse {
	struct cfg_strlist alpn;
	const char *ca;
	const char *crl;
	const char *cert;
	const char *key;
};

#define TCP_(f) offsetof(struct cfg_tls_client_parse, f)
static const struct cfg_key cfg_tls_client_keys[] = {
    {"ca", CFG_SCALAR, cfg_h_path, TCP_(ca), NULL, "a file name"},
    {"crl", CFG_SCALAR, cfg_h_path, TCP_(crl), NULL, "a file name"},
    {"sni", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"cert", CFG_SCALAR, cfg_h_cred, TCP_(cert), NULL, "a file name"},
    {"key", CFG_SCALAR, cfg_h_cred, TCP_(key), NULL, "a file name"},
    {"alpn", CFG_ANY, cfg_h_alpn, TCP_(alpn), NULL, NULL},
    {"verify_name", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"verify", CFG_SCALAR, NULL, 0, NULL, "true or false"},
    {"priority", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"min_version", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"max_version", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"strict_end", CFG_SCALAR, NULL, 0, NULL, "true or false"},
    {"session_resumption", CFG_SCALAR, NULL, 0, NULL, "true or false"},
};
#undef TCP_

#define TC(f) offsetof(struct tsgate_config_tls_client, f)
static const struct cfg_key cfg_tls_client_direct[] = {
    {"sni", CFG_SCALAR, cfg_h_string, TC(sni), NULL, NULL},
    {"verify_name", CFG_SCALAR, cfg_h_string, TC(verify_name), NULL, NULL},
    {"verify", CFG_SCALAR, cfg_h_bool, TC(verify), NULL, NULL},
    {"priority", CFG_SCALAR, cfg_h_string, TC(priority), NULL, NULL},
    {"min_version", CFG_SCALAR, cfg_h_enum, TC(min_version), cfg_tls_versions,
     NULL},
    {"max_version", CFG_SCALAR, cfg_h_enum, TC(max_version), cfg_tls_versions,
     NULL},
    {"strict_end", CFG_SCALAR, cfg_h_bool, TC(strict_end), NULL, NULL},
    {"session_resumption", CFG_SCALAR, cfg_h_bool, TC(session_resumption), NULL,
     NULL},
};
#undef TC

struct tsgate_config_tls_client *cfg_tls_client(struct cfg_parser *p,
						yaml_node_t *node)
{
	struct tsgate_config_tls_client *tls;
	yaml_node_t *seen[ARRAY_SIZE(cfg_tls_client_keys)] = {NULL};
	struct cfg_tls_client_parse tp = {{NULL, 0}, NULL, NULL, NULL, NULL};
	yaml_node_t *cert_node, *key_node;

	tls = talloc_zero(p->cfg, struct tsgate_config_tls_client);
	if (tls == NULL) {
		p->oom = true;
		return NULL;
	}
	tls->verify = true;
	tls->session_resumption = true;
	tls->mark = cfg_mark(node);
	/* Until the route judges the block (connect: tls only). */
	tls->walk_errors = true;
	cfg_mapping(p, node, cfg_tls_client_keys,
		    ARRAY_SIZE(cfg_tls_client_keys), &tp, "tls", seen);
	cfg_run_direct(p, cfg_tls_client_direct,
		       ARRAY_SIZE(cfg_tls_client_direct), cfg_tls_client_keys,
		       ARRAY_SIZE(cfg_tls_client_keys), seen, tls);
	tls->ca = tp.ca;
	tls->crl = tp.crl;
	tls->cert = tp.cert;
	tls->key = tp.key;
	tls->alpn = tp.alpn.items;
	tls->num_alpn = tp.alpn.num;

	cert_node = SEEN(cfg_tls_client_keys, seen, "cert");
	key_node = SEEN(cfg_tls_client_keys, seen, "key");
	if (cert_node != NULL && key_node == NULL) {
		cfg_error(p, cert_node, "'cert' needs 'key' (its private key)");
	} else if (cert_node == NULL && key_node != NULL) {
		cfg_error(p, key_node, "'key' needs 'cert' (its certificate)");
	}
	tls->cert_at = cfg_origin(p, cert_node);
	tls->key_at = cfg_origin(p, key_node);
	tls->ca_at = cfg_origin(p, SEEN(cfg_tls_client_keys, seen, "ca"));
	tls->crl_at = cfg_origin(p, SEEN(cfg_tls_client_keys, seen, "crl"));
	tls->priority_at =
	    cfg_origin(p, SEEN(cfg_tls_client_keys, seen, "priority"));
	cfg_check_versions(p, SEEN(cfg_tls_client_keys, seen, "max_version"),
			   tls->min_version, tls->max_version);
	return tls;
}
