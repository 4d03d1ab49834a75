/* SPDX-License-Identifier: MIT */
/*
 * listeners[]: a listener's keys and defaults, its accept blocks and its
 * routes.
 */
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "config_private.h"

static const struct cfg_enum cfg_accepts[] = {
    {"tls", TSGATE_CONFIG_ACCEPT_TLS, false},
    {"gssapi", TSGATE_CONFIG_ACCEPT_GSSAPI, false},
    {"tls-gssapi", TSGATE_CONFIG_ACCEPT_TLS_GSSAPI, false},
    {"plain", TSGATE_CONFIG_ACCEPT_PLAIN, false},
    {NULL, 0, false},
};

/* listeners[] */

#define LS(f) offsetof(struct tsgate_config_listener, f)
static const struct cfg_key cfg_listener_keys[] = {
    {"name", CFG_SCALAR, cfg_h_string, LS(name), NULL, NULL},
    {"listen", CFG_SCALAR, cfg_h_address, LS(listen), NULL, "an address"},
    {"accept", CFG_SCALAR, cfg_h_enum, LS(accept), cfg_accepts, NULL},
    {"tls", CFG_MAPPING, NULL, 0, NULL, NULL},
    {"gssapi", CFG_MAPPING, NULL, 0, NULL, NULL},
    {"max_connections", CFG_SCALAR, cfg_h_u32, LS(max_connections),
     &cfg_conn_range, "a number"},
    {"allow_plain_public", CFG_SCALAR, cfg_h_bool, LS(allow_plain_public), NULL,
     NULL},
    {"tcp_keepalive", CFG_ANY, cfg_h_keepalive, LS(keepalive), NULL, NULL},
    {"routes", CFG_SEQUENCE, NULL, 0, NULL, NULL},
};
#undef LS

/* listeners[].routes, a sequence */
static void cfg_listener_routes(struct cfg_parser *p,
				struct tsgate_config_listener *l,
				struct cfg_listener_marks *lm,
				yaml_node_t *routes)
{
	yaml_node_item_t *item;
	size_t i, n;

	n = (size_t)(routes->data.sequence.items.top -
		     routes->data.sequence.items.start);
	if (n == 0) {
		cfg_error(p, routes, "listener '%s' has no routes", l->name);
		return;
	}
	if (n > CFG_MAX_ROUTES) {
		cfg_error(p, routes,
			  "listener '%s' has too many routes (at most %d)",
			  l->name, CFG_MAX_ROUTES);
		return;
	}
	l->routes = talloc_zero_array(p->cfg, struct tsgate_config_route, n);
	lm->routes = talloc_zero_array(p->tmp, struct cfg_route_marks, n);
	if (l->routes == NULL || lm->routes == NULL) {
		p->oom = true;
		return;
	}
	for (item = routes->data.sequence.items.start, i = 0;
	     item < routes->data.sequence.items.top; item++, i++) {
		yaml_node_t *r = cfg_node(p, *item);

		if (r == NULL || !cfg_visit(p, r)) {
			return;
		}
		l->num_routes = i + 1;
		cfg_route(p, r, l, lm, i);
	}
}

static void cfg_listener(struct cfg_parser *p,
			 yaml_node_t *node,
			 struct tsgate_config *cfg,
			 size_t idx)
{
	struct tsgate_config_listener *l = &cfg->listeners[idx];
	struct cfg_listener_marks *lm = &p->listeners[idx];
	yaml_node_t *seen[ARRAY_SIZE(cfg_listener_keys)] = {NULL};
	yaml_node_t *v, *tls_node, *gssapi_node, *routes;
	bool accept_known, tls_used, gssapi_used;
	uint32_t present;

	l->mark = cfg_mark(node);
	cfg_keepalive_defaults(&l->keepalive);
	/* Not a valid value: tells "accept: ssl" from a good accept. */
	l->accept = (enum tsgate_config_accept) - 1;
	if (!cfg_check_kind(p, "listeners", CFG_MAPPING, "a list of mappings",
			    node)) {
		return;
	}
	present =
	    cfg_mapping(p, node, cfg_listener_keys,
			ARRAY_SIZE(cfg_listener_keys), l, "listener", seen);
	v = SEEN(cfg_listener_keys, seen, "name");
	if (v == NULL) {
		if (!PRESENT(cfg_listener_keys, present, "name")) {
			cfg_error(p, node, "missing key 'name' in listener");
		}
		l->name = talloc_asprintf(p->cfg, "listener-%zu", idx + 1);
		if (l->name == NULL) {
			p->oom = true;
			return;
		}
	} else {
		lm->name = cfg_mark(v);
	}
	v = SEEN(cfg_listener_keys, seen, "listen");
	if (!PRESENT(cfg_listener_keys, present, "listen")) {
		cfg_error(p, node, "missing key 'listen' in listener '%s'",
			  l->name);
	} else {
		lm->listen = cfg_mark(v);
	}
	v = SEEN(cfg_listener_keys, seen, "accept");
	accept_known = l->accept == TSGATE_CONFIG_ACCEPT_PLAIN ||
		       l->accept == TSGATE_CONFIG_ACCEPT_TLS ||
		       l->accept == TSGATE_CONFIG_ACCEPT_GSSAPI ||
		       l->accept == TSGATE_CONFIG_ACCEPT_TLS_GSSAPI;
	tls_used = l->accept == TSGATE_CONFIG_ACCEPT_TLS ||
		   l->accept == TSGATE_CONFIG_ACCEPT_TLS_GSSAPI;
	gssapi_used = l->accept == TSGATE_CONFIG_ACCEPT_GSSAPI ||
		      l->accept == TSGATE_CONFIG_ACCEPT_TLS_GSSAPI;
	if (!accept_known) {
		l->accept = TSGATE_CONFIG_ACCEPT_PLAIN;
	}
	if (!PRESENT(cfg_listener_keys, present, "accept")) {
		cfg_error(p, node,
			  "missing key 'accept' in listener '%s' "
			  "(tls, gssapi, tls-gssapi or plain)",
			  l->name);
	}
	tls_node = SEEN(cfg_listener_keys, seen, "tls");
	gssapi_node = SEEN(cfg_listener_keys, seen, "gssapi");
	if (tls_node != NULL) {
		l->tls = cfg_tls_server(p, tls_node);
		if (accept_known && !tls_used) {
			cfg_error(p, tls_node,
				  "'tls' is only used with "
				  "'accept: tls' or 'tls-gssapi' (listener "
				  "'%s' accepts %s)",
				  l->name,
				  tsgate_config_accept_name(l->accept));
		}
	} else if (accept_known && tls_used &&
		   !PRESENT(cfg_listener_keys, present, "tls")) {
		cfg_error(p, v,
			  "'accept: %s' needs a 'tls' block with 'cert' "
			  "and 'key' in listener '%s'",
			  tsgate_config_accept_name(l->accept), l->name);
	}
	if (gssapi_node != NULL) {
		l->gssapi = cfg_gssapi_server(p, gssapi_node);
		if (accept_known && !gssapi_used) {
			cfg_error(p, gssapi_node,
				  "'gssapi' is only used with "
				  "'accept: gssapi' or 'tls-gssapi' (listener "
				  "'%s' accepts %s)",
				  l->name,
				  tsgate_config_accept_name(l->accept));
		}
	} else if (accept_known && gssapi_used &&
		   !PRESENT(cfg_listener_keys, present, "gssapi")) {
		cfg_error(p, v,
			  "'accept: %s' needs a 'gssapi' block with "
			  "'keytab' in listener '%s'",
			  tsgate_config_accept_name(l->accept), l->name);
	}
	lm->accept_known = accept_known;
	lm->accept = cfg_mark(v);
	lm->allow_plain_public =
	    cfg_mark(SEEN(cfg_listener_keys, seen, "allow_plain_public"));
	routes = SEEN(cfg_listener_keys, seen, "routes");
	if (routes == NULL) {
		if (!PRESENT(cfg_listener_keys, present, "routes")) {
			cfg_error(p, node,
				  "missing key 'routes' in listener '%s'",
				  l->name);
		}
		return;
	}
	cfg_listener_routes(p, l, lm, routes);
}

/* top level */

void cfg_h_listeners(struct cfg_parser *p,
		     const struct cfg_key *k,
		     yaml_node_t *node,
		     void *obj)
{
	struct tsgate_config *cfg = obj;
	yaml_node_item_t *item;
	size_t i, n;

	n = (size_t)(node->data.sequence.items.top -
		     node->data.sequence.items.start);
	if (n == 0) {
		cfg_error(p, node, "'listeners' must not be empty");
		return;
	}
	if (n > CFG_MAX_LISTENERS) {
		cfg_error(p, node, "too many listeners (at most %d)",
			  CFG_MAX_LISTENERS);
		return;
	}
	cfg->listeners =
	    talloc_zero_array(p->cfg, struct tsgate_config_listener, n);
	p->listeners = talloc_zero_array(p->tmp, struct cfg_listener_marks, n);
	if (cfg->listeners == NULL || p->listeners == NULL) {
		p->oom = true;
		return;
	}
	for (item = node->data.sequence.items.start, i = 0;
	     item < node->data.sequence.items.top; item++, i++) {
		yaml_node_t *l = cfg_node(p, *item);

		if (l == NULL || !cfg_visit(p, l)) {
			return;
		}
		cfg->num_listeners = i + 1;
		cfg_listener(p, l, cfg, i);
	}
}
