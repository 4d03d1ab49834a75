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
    {"routes", CFG_SEQUENCE, NULL, 0, NULL, NULL},
};
#undef LS

bool cfg_same_addr(const struct tsgate_config_addr *a,
		   const struct tsgate_config_addr *b)
{
	if (a->kind != b->kind) {
		return false;
	}
	if (a->kind == TSGATE_CONFIG_ADDR_UNIX) {
		return a->path != NULL && b->path != NULL &&
		       strcmp(a->path, b->path) == 0;
	}
	return a->ip != NULL && b->ip != NULL && a->port == b->port &&
	       strcmp(a->ip, b->ip) == 0;
}

/* Whether every address a TCP listen address resolved to is loopback. */
static bool cfg_addr_loopback(const struct tsgate_config_addr *a)
{
	struct in_addr in4;
	struct in6_addr in6;
	size_t i;

	for (i = 0; i < a->num_ips; i++) {
		if (inet_pton(AF_INET, a->ips[i], &in4) == 1) {
			if ((ntohl(in4.s_addr) >> 24) != 127) {
				return false;
			}
		} else if (inet_pton(AF_INET6, a->ips[i], &in6) == 1) {
			if (!IN6_IS_ADDR_LOOPBACK(&in6) &&
			    !(IN6_IS_ADDR_V4MAPPED(&in6) &&
			      in6.s6_addr[12] == 127)) {
				return false;
			}
		} else {
			return false;
		}
	}
	return a->num_ips > 0;
}

/*
 * Nothing forwards plaintext from the network by accident: 'accept:
 * plain' on an address other than loopback needs 'allow_plain_public:
 * true' (an image or a copied example must not expose an application
 * without TLS because a real config was forgotten).
 */
static void cfg_check_plain_public(struct cfg_parser *p,
				   const struct tsgate_config_listener *l,
				   yaml_node_t *accept_node,
				   yaml_node_t *allow_node)
{
	if (l->accept != TSGATE_CONFIG_ACCEPT_PLAIN) {
		if (allow_node != NULL) {
			cfg_error(p, allow_node,
				  "'allow_plain_public' is only used with "
				  "'accept: plain' (listener '%s' accepts %s)",
				  l->name,
				  tsgate_config_accept_name(l->accept));
		}
		return;
	}
	if (accept_node == NULL || l->allow_plain_public ||
	    l->listen.kind != TSGATE_CONFIG_ADDR_TCP || l->listen.ip == NULL ||
	    cfg_addr_loopback(&l->listen)) {
		return;
	}
	cfg_error(p, accept_node,
		  "'accept: plain' on %s forwards plaintext from the network: "
		  "listen on a loopback address or a unix socket, use "
		  "'accept: tls' or 'gssapi', or set 'allow_plain_public: "
		  "true' in listener '%s'",
		  l->listen.text != NULL ? l->listen.text : l->listen.ip,
		  l->name);
}

static void cfg_listener(struct cfg_parser *p,
			 yaml_node_t *node,
			 struct tsgate_config *cfg,
			 size_t idx)
{
	struct tsgate_config_listener *l = &cfg->listeners[idx];
	yaml_node_t *seen[ARRAY_SIZE(cfg_listener_keys)] = {NULL};
	yaml_node_t *v, *tls_node, *gssapi_node, *routes;
	yaml_node_item_t *item;
	bool accept_known;
	uint32_t present;
	size_t i, n;

	l->mark = cfg_mark(node);
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
		for (i = 0; i < idx; i++) {
			if (cfg->listeners[i].name != NULL &&
			    strcmp(cfg->listeners[i].name, l->name) == 0) {
				cfg_error(p, v,
					  "duplicate listener name '%s' "
					  "(first at line %u)",
					  l->name, cfg->listeners[i].mark.line);
				break;
			}
		}
	}
	v = SEEN(cfg_listener_keys, seen, "listen");
	if (!PRESENT(cfg_listener_keys, present, "listen")) {
		cfg_error(p, node, "missing key 'listen' in listener '%s'",
			  l->name);
	} else if (v != NULL) {
		for (i = 0; i < idx; i++) {
			if (cfg_same_addr(&cfg->listeners[i].listen,
					  &l->listen)) {
				cfg_error(p, v,
					  "listener '%s' listens on the same "
					  "address as listener '%s'",
					  l->name, cfg->listeners[i].name);
				break;
			}
		}
	}
	v = SEEN(cfg_listener_keys, seen, "accept");
	accept_known = l->accept == TSGATE_CONFIG_ACCEPT_PLAIN ||
		       l->accept == TSGATE_CONFIG_ACCEPT_TLS ||
		       l->accept == TSGATE_CONFIG_ACCEPT_GSSAPI;
	if (!accept_known) {
		l->accept = TSGATE_CONFIG_ACCEPT_PLAIN;
	}
	if (!PRESENT(cfg_listener_keys, present, "accept")) {
		cfg_error(p, node,
			  "missing key 'accept' in listener '%s' "
			  "(tls, gssapi or plain)",
			  l->name);
	}
	tls_node = SEEN(cfg_listener_keys, seen, "tls");
	gssapi_node = SEEN(cfg_listener_keys, seen, "gssapi");
	if (tls_node != NULL) {
		l->tls = cfg_tls_server(p, tls_node);
		if (accept_known && l->accept != TSGATE_CONFIG_ACCEPT_TLS) {
			cfg_error(p, tls_node,
				  "'tls' is only used with "
				  "'accept: tls' (listener '%s' accepts %s)",
				  l->name,
				  tsgate_config_accept_name(l->accept));
		}
	} else if (accept_known && l->accept == TSGATE_CONFIG_ACCEPT_TLS &&
		   !PRESENT(cfg_listener_keys, present, "tls")) {
		cfg_error(p, v,
			  "'accept: tls' needs a 'tls' block with 'cert' "
			  "and 'key' in listener '%s'",
			  l->name);
	}
	if (gssapi_node != NULL) {
		l->gssapi = cfg_gssapi_server(p, gssapi_node);
		if (accept_known && l->accept != TSGATE_CONFIG_ACCEPT_GSSAPI) {
			cfg_error(p, gssapi_node,
				  "'gssapi' is only used with "
				  "'accept: gssapi' (listener '%s' accepts %s)",
				  l->name,
				  tsgate_config_accept_name(l->accept));
		}
	} else if (accept_known && l->accept == TSGATE_CONFIG_ACCEPT_GSSAPI &&
		   !PRESENT(cfg_listener_keys, present, "gssapi")) {
		cfg_error(p, v,
			  "'accept: gssapi' needs a 'gssapi' block with "
			  "'keytab' in listener '%s'",
			  l->name);
	}
	if (accept_known) {
		cfg_check_plain_public(
		    p, l, v,
		    SEEN(cfg_listener_keys, seen, "allow_plain_public"));
	}
	routes = SEEN(cfg_listener_keys, seen, "routes");
	if (routes == NULL) {
		if (!PRESENT(cfg_listener_keys, present, "routes")) {
			cfg_error(p, node,
				  "missing key 'routes' in listener '%s'",
				  l->name);
		}
		return;
	}
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
	if (l->routes == NULL) {
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
		cfg_route(p, r, l, i, accept_known);
	}
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
	if (cfg->listeners == NULL) {
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
