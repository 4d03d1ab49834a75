/* SPDX-License-Identifier: MIT */
/*
 * routes[]: a route's keys and defaults, its match block, its backend and
 * connect blocks.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "config_private.h"
#include "name_match.h"

static const struct cfg_enum cfg_connects[] = {
    {"plain", TSGATE_CONFIG_CONNECT_PLAIN, false},
    {"tls", TSGATE_CONFIG_CONNECT_TLS, false},
    {"gssapi", TSGATE_CONFIG_CONNECT_GSSAPI, false},
    {"tls-gssapi", TSGATE_CONFIG_CONNECT_TLS_GSSAPI, false},
    {NULL, 0, false},
};

static const struct cfg_enum cfg_framings[] = {
    {"raw", TSGATE_CONFIG_FRAMING_RAW, false},
    {"length32", TSGATE_CONFIG_FRAMING_LENGTH32, false},
    {"nbt", TSGATE_CONFIG_FRAMING_NBT, false},
    {"ncacn", TSGATE_CONFIG_FRAMING_NCACN, false},
    {NULL, 0, false},
};

static const struct cfg_enum cfg_identities[] = {
    {"none", TSGATE_CONFIG_IDENTITY_NONE, false},
    {"proxy-v2", TSGATE_CONFIG_IDENTITY_PROXY_V2, false},
    {"knc", TSGATE_CONFIG_IDENTITY_KNC, false},
    {NULL, 0, false},
};

/* routes[].match */

const struct cfg_key cfg_match_keys[CFG_M_COUNT] = {
    {"sni", CFG_ANY, NULL, 0, NULL, NULL},
    {"alpn", CFG_ANY, NULL, 0, NULL, NULL},
    {"client_subject", CFG_ANY, NULL, 0, NULL, NULL},
    {"client_san", CFG_ANY, NULL, 0, NULL, NULL},
    {"principal", CFG_ANY, NULL, 0, NULL, NULL},
};

static void cfg_match(struct cfg_parser *p,
		      yaml_node_t *node,
		      struct tsgate_config_match *m,
		      yaml_node_t **seen)
{
	struct cfg_strlist l;
	size_t i;

	m->mark = cfg_mark(node);
	cfg_mapping(p, node, cfg_match_keys, CFG_M_COUNT, m, "match", seen);
	for (i = 0; i < CFG_M_COUNT; i++) {
		if (seen[i] == NULL) {
			continue;
		}
		if (!cfg_strlist(p, cfg_match_keys[i].name, seen[i], &l)) {
			seen[i] = NULL;
			continue;
		}
		m->has_match = true;
		switch ((enum cfg_match_key)i) {
		case CFG_M_SNI:
			m->sni = l.items;
			m->num_sni = l.num;
			for (size_t j = 0; j < l.num; j++) {
				const char *why =
				    tsgate_name_dns_pattern_error(l.items[j]);

				if (why != NULL) {
					cfg_error(p, seen[i], "'sni': '%s': %s",
						  l.items[j], why);
				}
			}
			break;
		case CFG_M_ALPN:
			m->alpn = l.items;
			m->num_alpn = l.num;
			break;
		case CFG_M_SUBJECT:
			m->client_subject = l.items;
			m->num_client_subject = l.num;
			for (size_t j = 0; j < l.num; j++) {
				const char *why = tsgate_name_dn_pattern_error(
				    p->cfg, l.items[j]);

				if (why != NULL) {
					cfg_error(p, seen[i],
						  "'client_subject': '%s' is "
						  "not an RFC 4514 DN: %s",
						  l.items[j], why);
				}
			}
			break;
		case CFG_M_PRINCIPAL:
			m->principal = l.items;
			m->num_principal = l.num;
			break;
		case CFG_M_SAN:
		case CFG_M_COUNT:
			break;
		}
		if (i != CFG_M_SAN) {
			continue;
		}
		m->client_san =
		    talloc_zero_array(p->cfg, struct tsgate_config_san, l.num);
		if (m->client_san == NULL) {
			p->oom = true;
			return;
		}
		for (size_t j = 0; j < l.num; j++) {
			static const struct {
				const char *prefix;
				enum tsgate_config_san_type type;
			} types[] = {
			    {"DNS:", TSGATE_CONFIG_SAN_DNS},
			    {"IP:", TSGATE_CONFIG_SAN_IP},
			    {"URI:", TSGATE_CONFIG_SAN_URI},
			    {"email:", TSGATE_CONFIG_SAN_EMAIL},
			};
			size_t t;

			for (t = 0; t < ARRAY_SIZE(types); t++) {
				size_t plen = strlen(types[t].prefix);

				if (strncasecmp(l.items[j], types[t].prefix,
						plen) == 0 &&
				    l.items[j][plen] != '\0') {
					break;
				}
			}
			if (t == ARRAY_SIZE(types)) {
				cfg_error(p, seen[i],
					  "'client_san': '%s' must start with "
					  "DNS:, IP:, URI: or email: and have "
					  "a value",
					  l.items[j]);
				continue;
			}
			if (types[t].type == TSGATE_CONFIG_SAN_DNS) {
				const char *why = tsgate_name_dns_pattern_error(
				    l.items[j] + strlen(types[t].prefix));

				if (why != NULL) {
					cfg_error(p, seen[i],
						  "'client_san': '%s': %s",
						  l.items[j], why);
					continue;
				}
			}
			m->client_san[m->num_client_san].type = types[t].type;
			m->client_san[m->num_client_san].value =
			    l.items[j] + strlen(types[t].prefix);
			m->num_client_san++;
		}
	}
}

/* routes[] */
static void cfg_h_backend(struct cfg_parser *p,
			  const struct cfg_key *k,
			  yaml_node_t *node,
			  void *obj);

/* Asking DNS more than once a second per name helps nobody. */
static const struct cfg_range cfg_resolve_range = {1000, 0};

#define RT(f) offsetof(struct tsgate_config_route, f)
static const struct cfg_key cfg_route_keys[] = {
    {"name", CFG_SCALAR, cfg_h_string, RT(name), NULL, NULL},
    {"match", CFG_MAPPING, NULL, 0, NULL, NULL},
    {"backend", CFG_ANY, cfg_h_backend, 0, NULL, "an address or a list"},
    {"balance", CFG_SCALAR, cfg_h_enum, RT(balance), cfg_balances, NULL},
    {"connect", CFG_SCALAR, cfg_h_enum, RT(connect), cfg_connects, NULL},
    {"tls", CFG_MAPPING, NULL, 0, NULL, NULL},
    {"gssapi", CFG_MAPPING, NULL, 0, NULL, NULL},
    {"framing", CFG_SCALAR, cfg_h_enum, RT(framing), cfg_framings, NULL},
    {"max_pdu", CFG_SCALAR, cfg_h_size, RT(max_pdu), NULL, "a size"},
    {"identity", CFG_SCALAR, cfg_h_enum, RT(identity), cfg_identities, NULL},
    {"connect_timeout", CFG_SCALAR, cfg_h_duration, RT(connect_timeout_ms),
     &cfg_positive_ms, "a duration"},
    {"idle_timeout", CFG_SCALAR, cfg_h_route_idle, 0, NULL, "a duration"},
    {"health_check", CFG_MAPPING, cfg_h_health_check, RT(health_check), NULL,
     NULL},
    {"resolve_interval", CFG_SCALAR, cfg_h_duration, RT(resolve_interval_ms),
     &cfg_resolve_range, "a duration"},
    {"tcp_keepalive", CFG_ANY, cfg_h_keepalive, RT(keepalive), NULL, NULL},
    {"args", CFG_ANY, NULL, 0, NULL, NULL},
    {"max_connections", CFG_SCALAR, cfg_h_u32, RT(max_connections),
     &cfg_conn_range, "a number"},
    {"ccache_dir", CFG_SCALAR, cfg_h_string, RT(ccache_dir), NULL, NULL},
};
#undef RT

/*
 * backend: an address, or "exec:/absolute/program" (a program per
 * connection, which must exist and be executable by the daemon now).
 */
static void cfg_h_backend(struct cfg_parser *p,
			  const struct cfg_key *k,
			  yaml_node_t *node,
			  void *obj)
{
	struct tsgate_config_route *r = obj;
	const char *s;

	/* a list is a pool of addresses; exec: is one program */
	if (node->type != YAML_SCALAR_NODE ||
	    strncmp(cfg_str(node), "exec:", 5) != 0) {
		cfg_h_backends(p, k, node, obj);
		return;
	}
	s = cfg_str(node);
	/* the YAML document goes when the walk ends */
	r->backend.text = talloc_strdup(p->cfg, s);
	r->backend.mark = cfg_mark(node);
	if (r->backend.text == NULL) {
		p->oom = true;
		return;
	}
	s = r->backend.text;
	r->backend.kind = TSGATE_CONFIG_ADDR_UNIX;
	if (s[5] != '/') {
		cfg_error(p, node,
			  "'backend': '%s': the program must be an absolute "
			  "path (exec:/path/to/program)",
			  s);
		return;
	}
	if (access(s + 5, X_OK) != 0) {
		cfg_error(p, node, "'backend': cannot execute '%s': %s", s + 5,
			  strerror(errno));
		return;
	}
	r->exec = s + 5;
}

/* The exec keys: args, max_connections, ccache_dir. */
static void cfg_route_exec(struct cfg_parser *p,
			   struct tsgate_config_route *r,
			   yaml_node_t **seen,
			   uint32_t present)
{
	static const char *const exec_only[] = {"args", "max_connections",
						"ccache_dir"};
	static const char *const socket_only[] = {
	    "balance", "connect_timeout", "health_check", "resolve_interval",
	    "tcp_keepalive"};
	yaml_node_t *v = SEEN(cfg_route_keys, seen, "args");
	struct cfg_strlist l;

	if (r->exec == NULL) {
		for (size_t i = 0; i < ARRAY_SIZE(exec_only); i++) {
			v = SEEN(cfg_route_keys, seen, exec_only[i]);
			if (v != NULL) {
				cfg_error(p, v,
					  "'%s' is only used with 'backend: "
					  "exec:...' (route '%s')",
					  exec_only[i], r->name);
			}
		}
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(socket_only); i++) {
		yaml_node_t *w = SEEN(cfg_route_keys, seen, socket_only[i]);

		if (w != NULL) {
			cfg_error(p, w,
				  "'%s' is not used with an exec backend "
				  "(route '%s' runs a program)",
				  socket_only[i], r->name);
		}
	}
	if (v != NULL && cfg_strlist(p, "args", v, &l)) {
		r->exec_args = l.items;
		r->num_exec_args = l.num;
	}
	if (r->ccache_dir != NULL && r->ccache_dir[0] != '/') {
		cfg_error(p, SEEN(cfg_route_keys, seen, "ccache_dir"),
			  "'ccache_dir': '%s' must be an absolute path",
			  r->ccache_dir);
	}
	v = SEEN(cfg_route_keys, seen, "connect");
	if (r->connect != TSGATE_CONFIG_CONNECT_PLAIN && v != NULL) {
		cfg_error(p, v,
			  "an exec backend is a local program: 'connect' must "
			  "be plain (route '%s')",
			  r->name);
	}
	v = SEEN(cfg_route_keys, seen, "identity");
	if (r->identity != TSGATE_CONFIG_IDENTITY_NONE && v != NULL) {
		cfg_error(p, v,
			  "an exec backend gets the identity in its "
			  "environment: 'identity' must be none (route '%s')",
			  r->name);
	}
	(void)present;
}

static bool cfg_is_ip_literal(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 ||
	       inet_pton(AF_INET6, host, buf) == 1;
}

/*
 * connect: tls. Without a tls block, one with the defaults (verify the
 * backend's host name); the name sent and verified default to the
 * backend's host. v is the connect node.
 */
static void cfg_route_tls(struct cfg_parser *p,
			  struct tsgate_config_route *r,
			  yaml_node_t *v,
			  yaml_node_t *tls_node,
			  bool tls_present,
			  size_t errors_before)
{
	bool unix_backend = r->backend.kind == TSGATE_CONFIG_ADDR_UNIX &&
			    r->backend.path != NULL;

	if (r->tls == NULL && tls_node == NULL) {
		if (tls_present) {
			/* reported: 'tls' must be a mapping */
		} else if (unix_backend) {
			cfg_error(p, v,
				  "'connect: tls' to a unix "
				  "backend needs a 'tls' block with "
				  "'verify_name' (or 'sni') in route "
				  "'%s'",
				  r->name);
		} else {
			r->tls = talloc_zero(p->cfg,
					     struct tsgate_config_tls_client);
			if (r->tls == NULL) {
				p->oom = true;
				return;
			}
			r->tls->verify = true;
			r->tls->mark = cfg_mark(v);
		}
	}
	if (r->tls != NULL && r->tls->sni == NULL && r->backend.host != NULL &&
	    !cfg_is_ip_literal(r->backend.host)) {
		r->tls->sni = r->backend.host;
		r->tls->sni_from_backend = true;
	}
	if (r->tls != NULL && r->tls->verify_name == NULL) {
		r->tls->verify_name =
		    r->tls->sni != NULL ? r->tls->sni : r->backend.host;
		r->tls->verify_name_from_backend =
		    r->tls->sni == NULL || r->tls->sni_from_backend;
	}
	if (r->tls != NULL && r->tls->verify && r->num_backends > 1 &&
	    r->tls->verify_name_from_backend) {
		size_t i;

		for (i = 0; i < r->num_backends; i++) {
			if (r->backends[i].kind == TSGATE_CONFIG_ADDR_UNIX) {
				cfg_error_at(p, r->backends[i].mark,
					     "route '%s': unix backend '%s' "
					     "has no host name to verify; set "
					     "'verify_name' (or 'sni') in the "
					     "route's 'tls' block",
					     r->name, r->backends[i].text);
				break;
			}
		}
	}
	if (r->tls != NULL && tls_node != NULL && r->tls->verify &&
	    r->tls->verify_name == NULL) {
		cfg_error(p, tls_node,
			  "route '%s': a unix backend "
			  "has no host name to verify; set "
			  "'verify_name' (or 'sni')",
			  r->name);
	}
	if (r->tls != NULL) {
		r->tls->walk_errors = p->errs->num_errors != errors_before;
	}
}

void cfg_route(struct cfg_parser *p,
	       yaml_node_t *node,
	       struct tsgate_config_listener *l,
	       struct cfg_listener_marks *lm,
	       size_t idx)
{
	struct tsgate_config_route *r = &l->routes[idx];
	struct cfg_route_marks *rm = &lm->routes[idx];
	yaml_node_t *seen[ARRAY_SIZE(cfg_route_keys)] = {NULL};
	yaml_node_t *mseen[CFG_M_COUNT] = {NULL};
	yaml_node_t *v, *tls_node, *gssapi_node;
	bool connect_known, tls_used, gssapi_used;
	uint32_t present;
	size_t i, errors_before = p->errs->num_errors;

	/* Not a valid value: tells "connect: bogus" from no connect. */
	r->connect = (enum tsgate_config_connect) - 1;
	r->framing = TSGATE_CONFIG_FRAMING_RAW;
	r->max_pdu = TSGATE_CONFIG_MAX_PDU_LENGTH32;
	r->identity = TSGATE_CONFIG_IDENTITY_NONE;
	r->balance = TSGATE_CONFIG_BALANCE_ROUND_ROBIN;
	r->resolve_interval_ms = 30 * 1000;
	cfg_keepalive_defaults(&r->keepalive);
	r->mark = cfg_mark(node);

	if (!cfg_check_kind(p, "routes", CFG_MAPPING, "a list of mappings",
			    node)) {
		r->connect = TSGATE_CONFIG_CONNECT_PLAIN;
		/* Already an error: it must not also hide the routes after
		 * it as a catch-all would (the config is never used). */
		r->match.has_match = true;
		r->name = talloc_asprintf(p->cfg, "route-%zu", idx + 1);
		return;
	}
	rm->walked = true;
	present = cfg_mapping(p, node, cfg_route_keys,
			      ARRAY_SIZE(cfg_route_keys), r, "route", seen);
	connect_known = r->connect == TSGATE_CONFIG_CONNECT_PLAIN ||
			r->connect == TSGATE_CONFIG_CONNECT_TLS ||
			r->connect == TSGATE_CONFIG_CONNECT_GSSAPI ||
			r->connect == TSGATE_CONFIG_CONNECT_TLS_GSSAPI;
	tls_used = r->connect == TSGATE_CONFIG_CONNECT_TLS ||
		   r->connect == TSGATE_CONFIG_CONNECT_TLS_GSSAPI;
	gssapi_used = r->connect == TSGATE_CONFIG_CONNECT_GSSAPI ||
		      r->connect == TSGATE_CONFIG_CONNECT_TLS_GSSAPI;
	if (!connect_known) {
		connect_known = !PRESENT(cfg_route_keys, present, "connect");
		r->connect = TSGATE_CONFIG_CONNECT_PLAIN;
	}
	if (r->name == NULL) {
		r->name = talloc_asprintf(p->cfg, "route-%zu", idx + 1);
		if (r->name == NULL) {
			p->oom = true;
			return;
		}
	}
	for (i = 0; i < idx; i++) {
		if (strcmp(l->routes[i].name, r->name) == 0) {
			v = SEEN(cfg_route_keys, seen, "name");
			/* An unnamed route may clash with a "route-N" name. */
			cfg_error(p, v != NULL ? v : node,
				  "duplicate route name '%s' in listener '%s' "
				  "(first at line %u)",
				  r->name, l->name, l->routes[i].mark.line);
			break;
		}
	}
	v = SEEN(cfg_route_keys, seen, "match");
	if (v != NULL) {
		cfg_match(p, v, &r->match, mseen);
	}
	for (i = 0; i < CFG_M_COUNT; i++) {
		rm->match[i] = cfg_mark(mseen[i]);
	}
	if (!PRESENT(cfg_route_keys, present, "backend")) {
		cfg_error(p, node, "missing key 'backend' in route '%s'",
			  r->name);
	}

	tls_node = SEEN(cfg_route_keys, seen, "tls");
	gssapi_node = SEEN(cfg_route_keys, seen, "gssapi");
	if (tls_node != NULL) {
		r->tls = cfg_tls_client(p, tls_node);
	}
	if (gssapi_node != NULL) {
		r->gssapi = cfg_gssapi_client(p, gssapi_node);
	}
	if (tls_node != NULL && connect_known && !tls_used) {
		cfg_error(p, tls_node,
			  "'tls' is only used with 'connect: tls' or "
			  "'tls-gssapi' (route '%s' "
			  "connects %s)",
			  r->name, tsgate_config_connect_name(r->connect));
	}
	if (gssapi_node != NULL && connect_known && !gssapi_used) {
		cfg_error(p, gssapi_node,
			  "'gssapi' is only used with 'connect: gssapi' or "
			  "'tls-gssapi' (route '%s' connects %s)",
			  r->name, tsgate_config_connect_name(r->connect));
	}
	v = SEEN(cfg_route_keys, seen, "connect");
	if (gssapi_used && gssapi_node == NULL &&
	    !PRESENT(cfg_route_keys, present, "gssapi")) {
		cfg_error(p, v,
			  "'connect: %s' needs a 'gssapi' block with "
			  "'target' in route '%s'",
			  tsgate_config_connect_name(r->connect), r->name);
	}
	if (tls_used) {
		cfg_route_tls(p, r, v, tls_node,
			      PRESENT(cfg_route_keys, present, "tls"),
			      errors_before);
	}
	cfg_route_exec(p, r, seen, present);
	rm->max_pdu = cfg_origin(p, SEEN(cfg_route_keys, seen, "max_pdu"));
	/* After the walk: the keys come in any order. */
	if (!PRESENT(cfg_route_keys, present, "max_pdu")) {
		r->max_pdu = tsgate_config_framing_default_max_pdu(r->framing);
	}
}
