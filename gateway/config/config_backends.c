/* SPDX-License-Identifier: MIT */
/*
 * A route's backends as the config writes them: one address or a list
 * (a pool), how a connection picks one (balance), the active health
 * check, TCP keepalive (also a listener's), the top-level resolvers, and
 * the pass after the walk that resolves backend host names when the
 * system resolver is the one to ask.
 */
#include <arpa/inet.h>
#include <string.h>

#include "config_private.h"

/* A pool of more backends than this is a mistake, not a deployment. */
#define CFG_MAX_BACKENDS 64

const struct cfg_enum cfg_balances[] = {
    {"round-robin", TSGATE_CONFIG_BALANCE_ROUND_ROBIN, false},
    {"first", TSGATE_CONFIG_BALANCE_FIRST, false},
    {"least-connections", TSGATE_CONFIG_BALANCE_LEAST_CONNECTIONS, false},
    {"roundrobin", TSGATE_CONFIG_BALANCE_ROUND_ROBIN, true},
    {"leastconn", TSGATE_CONFIG_BALANCE_LEAST_CONNECTIONS, true},
    {NULL, 0, false},
};

const char *tsgate_config_balance_name(enum tsgate_config_balance b)
{
	switch (b) {
	case TSGATE_CONFIG_BALANCE_ROUND_ROBIN:
		return "round-robin";
	case TSGATE_CONFIG_BALANCE_FIRST:
		return "first";
	case TSGATE_CONFIG_BALANCE_LEAST_CONNECTIONS:
		return "least-connections";
	}
	return "?";
}

static bool cfg_same_backend(const struct tsgate_config_addr *a,
			     const struct tsgate_config_addr *b)
{
	if (a->kind != b->kind) {
		return false;
	}
	if (a->kind == TSGATE_CONFIG_ADDR_UNIX) {
		return strcmp(a->path, b->path) == 0;
	}
	return a->port == b->port && a->host != NULL && b->host != NULL &&
	       strcasecmp(a->host, b->host) == 0;
}

static bool cfg_backend_one(struct cfg_parser *p,
			    const struct cfg_key *k,
			    yaml_node_t *node,
			    bool list,
			    struct tsgate_config_addr *addr)
{
	const char *err;

	if (!cfg_check_kind(p, k->name, CFG_SCALAR,
			    list ? "a list of addresses"
				 : "an address or a "
				   "list of addresses",
			    node)) {
		return false;
	}
	err = tsgate_config_parse_address(
	    p->cfg, cfg_str(node), p->base_dir,
	    p->flags | TSGATE_CONFIG_DEFER_RESOLVE, addr);
	addr->mark = cfg_mark(node);
	if (err != NULL) {
		cfg_error(p, node, "'%s': %s", k->name, err);
		return false;
	}
	return true;
}

/* routes[].backend: an address or a list of them. */
void cfg_h_backends(struct cfg_parser *p,
		    const struct cfg_key *k,
		    yaml_node_t *node,
		    void *obj)
{
	struct tsgate_config_route *r = obj;
	yaml_node_item_t *item;
	size_t n, i;

	if (node->type != YAML_SEQUENCE_NODE) {
		r->backends = talloc_zero(p->cfg, struct tsgate_config_addr);
		if (r->backends == NULL) {
			p->oom = true;
			return;
		}
		if (cfg_backend_one(p, k, node, false, &r->backends[0])) {
			r->num_backends = 1;
			r->backend = r->backends[0];
		}
		return;
	}
	n = (size_t)(node->data.sequence.items.top -
		     node->data.sequence.items.start);
	if (n == 0) {
		cfg_error(p, node, "'%s' must not be an empty list", k->name);
		return;
	}
	if (n > CFG_MAX_BACKENDS) {
		cfg_error(p, node, "'%s' has too many addresses (at most %d)",
			  k->name, CFG_MAX_BACKENDS);
		return;
	}
	r->backends = talloc_zero_array(p->cfg, struct tsgate_config_addr, n);
	if (r->backends == NULL) {
		p->oom = true;
		return;
	}
	for (item = node->data.sequence.items.start;
	     item < node->data.sequence.items.top; item++) {
		yaml_node_t *v = cfg_node(p, *item);
		struct tsgate_config_addr *a = &r->backends[r->num_backends];

		if (v == NULL || !cfg_visit(p, v)) {
			return;
		}
		if (!cfg_backend_one(p, k, v, true, a)) {
			continue;
		}
		for (i = 0; i < r->num_backends; i++) {
			if (cfg_same_backend(&r->backends[i], a)) {
				cfg_error(p, v,
					  "'%s': '%s' is listed twice (first "
					  "at line %u)",
					  k->name, a->text,
					  r->backends[i].mark.line);
				break;
			}
		}
		if (i == r->num_backends) {
			r->num_backends++;
		}
	}
	if (r->num_backends > 0) {
		r->backend = r->backends[0];
	}
}

static const struct cfg_range cfg_keepalive_s = {1, 32767};
static const struct cfg_range cfg_keepalive_count = {1, 127};

#define KA(f) offsetof(struct tsgate_config_keepalive, f)
static const struct cfg_key cfg_keepalive_keys[] = {
    {"idle", CFG_SCALAR, NULL, 0, NULL, "a duration"},
    {"interval", CFG_SCALAR, NULL, 0, NULL, "a duration"},
    {"count", CFG_SCALAR, cfg_h_u32, KA(count), &cfg_keepalive_count,
     "a number"},
};
#undef KA

static void cfg_keepalive_seconds(struct cfg_parser *p,
				  const char *name,
				  yaml_node_t *node,
				  uint32_t *field)
{
	struct cfg_key k = {name, CFG_SCALAR, cfg_h_duration, 0, NULL, NULL};
	size_t errors_before = p->errs->num_errors;
	uint64_t ms = 0;

	if (node == NULL) {
		return;
	}
	cfg_h_duration(p, &k, node, &ms);
	if (p->errs->num_errors != errors_before) {
		return;
	}
	if (ms % 1000 != 0 || ms / 1000 < cfg_keepalive_s.min ||
	    ms / 1000 > cfg_keepalive_s.max) {
		cfg_error(p, node,
			  "'%s': whole seconds from 1s to %llus (the kernel "
			  "counts keepalive time in seconds)",
			  name, (unsigned long long)cfg_keepalive_s.max);
		return;
	}
	*field = (uint32_t)(ms / 1000);
}

/*
 * tcp_keepalive: true, false, or {idle, interval, count}. The field is
 * a struct tsgate_config_keepalive at k->offset.
 */
void cfg_h_keepalive(struct cfg_parser *p,
		     const struct cfg_key *k,
		     yaml_node_t *node,
		     void *obj)
{
	struct tsgate_config_keepalive *ka =
	    FIELD(obj, k, struct tsgate_config_keepalive);
	yaml_node_t *seen[ARRAY_SIZE(cfg_keepalive_keys)] = {NULL};

	if (node->type == YAML_SCALAR_NODE) {
		struct cfg_key b = {k->name, CFG_SCALAR, cfg_h_bool,
				    0,       NULL,       NULL};

		cfg_h_bool(p, &b, node, &ka->enabled);
		return;
	}
	if (node->type != YAML_MAPPING_NODE) {
		cfg_error(p, node,
			  "'%s' must be true, false or {idle, interval, "
			  "count}, not %s",
			  k->name, cfg_node_desc(node));
		return;
	}
	ka->enabled = true;
	cfg_mapping(p, node, cfg_keepalive_keys, ARRAY_SIZE(cfg_keepalive_keys),
		    ka, k->name, seen);
	cfg_keepalive_seconds(p, "idle", SEEN(cfg_keepalive_keys, seen, "idle"),
			      &ka->idle_s);
	cfg_keepalive_seconds(p, "interval",
			      SEEN(cfg_keepalive_keys, seen, "interval"),
			      &ka->interval_s);
}

void cfg_keepalive_defaults(struct tsgate_config_keepalive *ka)
{
	ka->enabled = true;
	ka->idle_s = 60;
	ka->interval_s = 15;
	ka->count = 4;
}

#define HC(f) offsetof(struct tsgate_config_health_check, f)
static const struct cfg_key cfg_health_keys[] = {
    {"interval", CFG_SCALAR, cfg_h_duration, HC(interval_ms), &cfg_positive_ms,
     "a duration"},
    {"timeout", CFG_SCALAR, cfg_h_duration, HC(timeout_ms), &cfg_positive_ms,
     "a duration"},
};
#undef HC

/* routes[].idle_timeout: overrides limits.idle_timeout (0: none) */
void cfg_h_route_idle(struct cfg_parser *p,
		      const struct cfg_key *k,
		      yaml_node_t *node,
		      void *obj)
{
	struct tsgate_config_route *r = obj;
	size_t errors_before = p->errs->num_errors;
	struct cfg_key d = {k->name, CFG_SCALAR, cfg_h_duration, 0, NULL, NULL};

	cfg_h_duration(p, &d, node, &r->idle_timeout_ms);
	r->has_idle_timeout = p->errs->num_errors == errors_before;
}

/* routes[].health_check: {interval, timeout} */
void cfg_h_health_check(struct cfg_parser *p,
			const struct cfg_key *k,
			yaml_node_t *node,
			void *obj)
{
	struct tsgate_config_health_check *hc =
	    FIELD(obj, k, struct tsgate_config_health_check);
	yaml_node_t *seen[ARRAY_SIZE(cfg_health_keys)] = {NULL};
	uint32_t present;

	present =
	    cfg_mapping(p, node, cfg_health_keys, ARRAY_SIZE(cfg_health_keys),
			hc, "health_check", seen);
	if (!PRESENT(cfg_health_keys, present, "interval")) {
		cfg_error(p, node, "missing key 'interval' in health_check");
	}
}

/* Top level: resolvers: ["IP", "IP:PORT", "[IPv6]:PORT"] */
void cfg_h_resolvers(struct cfg_parser *p,
		     const struct cfg_key *k,
		     yaml_node_t *node,
		     void *obj)
{
	struct cfg_strlist l;
	size_t i;

	if (!cfg_strlist(p, k->name, node, &l)) {
		return;
	}
	for (i = 0; i < l.num; i++) {
		char *addr = talloc_asprintf(p->tmp, "tcp://%s", l.items[i]);
		struct tsgate_config_addr a;
		const char *err;
		unsigned char buf[16];

		if (addr == NULL) {
			p->oom = true;
			return;
		}
		/* a bare IP: port 53 */
		if (inet_pton(AF_INET, l.items[i], buf) == 1) {
			addr =
			    talloc_asprintf(p->tmp, "tcp://%s:53", l.items[i]);
		} else if (inet_pton(AF_INET6, l.items[i], buf) == 1) {
			addr = talloc_asprintf(p->tmp, "tcp://[%s]:53",
					       l.items[i]);
		}
		if (addr == NULL) {
			p->oom = true;
			return;
		}
		err = tsgate_config_parse_address(p->tmp, addr, NULL,
						  TSGATE_CONFIG_NO_RESOLVE, &a);
		if (err != NULL) {
			cfg_error(p, node,
				  "'%s': '%s' is not IP or IP:PORT (%s)",
				  k->name, l.items[i], err);
			return;
		}
	}
	p->cfg->resolvers = l.items;
	p->cfg->num_resolvers = l.num;
}

/*
 * After the walk: backend host names are resolved now with the system
 * resolver (an unknown name is an error at its line), unless the config
 * names resolvers, which the workers ask at run time.
 */
void cfg_resolve_backends(struct cfg_parser *p)
{
	size_t i, j, b;

	if (p->cfg->num_resolvers > 0) {
		return;
	}
	for (i = 0; i < p->cfg->num_listeners; i++) {
		struct tsgate_config_listener *l = &p->cfg->listeners[i];

		for (j = 0; j < l->num_routes; j++) {
			struct tsgate_config_route *r = &l->routes[j];

			for (b = 0; b < r->num_backends; b++) {
				struct tsgate_config_addr *a = &r->backends[b];
				const char *err = tsgate_config_resolve_address(
				    p->cfg, p->flags, a);

				if (err != NULL) {
					cfg_error_at(p, a->mark,
						     "'backend': %s", err);
				}
			}
			if (r->num_backends > 0) {
				r->backend = r->backends[0];
			}
		}
	}
}
