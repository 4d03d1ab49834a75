/* SPDX-License-Identifier: MIT */
/*
 * The gssapi blocks: a listener's (keytab, acceptor principal) and a
 * route's (target, ccache or client keytab).
 */
#include <string.h>

#include "config_private.h"

/* listeners[].gssapi */

#define GS(f) offsetof(struct tsgate_config_gssapi_server, f)
static const struct cfg_key cfg_gssapi_server_keys[] = {
    {"keytab", CFG_SCALAR, cfg_h_path, GS(keytab), cfg_keytab_marker,
     "a file name"},
    {"principal", CFG_SCALAR, cfg_h_string, GS(principal), NULL, NULL},
    {"strict_end", CFG_SCALAR, cfg_h_bool, GS(strict_end), NULL,
     "true or false"},
};
#undef GS

struct tsgate_config_gssapi_server *cfg_gssapi_server(struct cfg_parser *p,
						      yaml_node_t *node)
{
	struct tsgate_config_gssapi_server *g;
	yaml_node_t *seen[ARRAY_SIZE(cfg_gssapi_server_keys)] = {NULL};

	g = talloc_zero(p->cfg, struct tsgate_config_gssapi_server);
	if (g == NULL) {
		p->oom = true;
		return NULL;
	}
	g->mark = cfg_mark(node);
	if ((cfg_mapping(p, node, cfg_gssapi_server_keys,
			 ARRAY_SIZE(cfg_gssapi_server_keys), g, "gssapi",
			 seen) &
	     1) == 0) {
		cfg_error(p, node, "missing key 'keytab' in gssapi");
		return g;
	}
	g->keytab_at = cfg_origin(p, seen[0]);
	g->principal_at = cfg_origin(p, seen[1]);
	return g;
}

/* routes[].gssapi (client side) */

#define GC(f) offsetof(struct tsgate_config_gssapi_client, f)
static const struct cfg_key cfg_gssapi_client_keys[] = {
    {"target", CFG_SCALAR, cfg_h_string, GC(target), NULL, NULL},
    {"ccache", CFG_SCALAR, cfg_h_string, GC(ccache), NULL, NULL},
    {"client_keytab", CFG_SCALAR, cfg_h_path, GC(client_keytab),
     cfg_keytab_marker, "a file name"},
    {"strict_end", CFG_SCALAR, cfg_h_bool, GC(strict_end), NULL,
     "true or false"},
    {"delegate", CFG_SCALAR, cfg_h_bool, GC(delegate), NULL, "true or false"},
};
#undef GC

struct tsgate_config_gssapi_client *cfg_gssapi_client(struct cfg_parser *p,
						      yaml_node_t *node)
{
	struct tsgate_config_gssapi_client *g;
	yaml_node_t *seen[ARRAY_SIZE(cfg_gssapi_client_keys)] = {NULL};
	uint32_t present;

	g = talloc_zero(p->cfg, struct tsgate_config_gssapi_client);
	if (g == NULL) {
		p->oom = true;
		return NULL;
	}
	g->mark = cfg_mark(node);
	present =
	    cfg_mapping(p, node, cfg_gssapi_client_keys,
			ARRAY_SIZE(cfg_gssapi_client_keys), g, "gssapi", seen);
	if ((present & 1) == 0) {
		cfg_error(p, node,
			  "missing key 'target' in gssapi (the "
			  "service, e.g. host@server.example.com)");
	} else if (seen[0] != NULL && g->target != NULL) {
		const char *at = strchr(g->target, '@');

		/* "service@host", or a principal "service/host[@REALM]" */
		if (strchr(g->target, '/') == NULL &&
		    (at == NULL || at == g->target || at[1] == '\0')) {
			cfg_error(p, seen[0],
				  "'target': '%s' is not service@host (or a "
				  "principal service/host@REALM)",
				  g->target);
		}
	}
	if (seen[1] != NULL && seen[2] != NULL) {
		cfg_error(p, seen[2],
			  "give either 'ccache' or 'client_keytab', not both");
	}
	g->client_keytab_at = cfg_origin(p, seen[2]);
	return g;
}
