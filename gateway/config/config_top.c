/* SPDX-License-Identifier: MIT */
/*
 * The top level of the config file: log, metrics, limits, user, group,
 * workers and the listeners list; the defaults; the walk of a document.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_private.h"

/* enum tables */

static const struct cfg_enum cfg_log_levels[] = {
    {"debug", TSGATE_CONFIG_LOG_DEBUG, false},
    {"info", TSGATE_CONFIG_LOG_INFO, false},
    {"warning", TSGATE_CONFIG_LOG_WARNING, false},
    {"warn", TSGATE_CONFIG_LOG_WARNING, true},
    {"error", TSGATE_CONFIG_LOG_ERROR, false},
    {NULL, 0, false},
};

static const struct cfg_enum cfg_log_formats[] = {
    {"text", TSGATE_CONFIG_LOG_TEXT, false},
    {"json", TSGATE_CONFIG_LOG_JSON, false},
    {NULL, 0, false},
};

int tsgate_config_log_level_parse(const char *name,
				  enum tsgate_config_log_level *level)
{
	const struct cfg_enum *e;

	for (e = cfg_log_levels; name != NULL && e->name != NULL; e++) {
		if (strcmp(e->name, name) == 0) {
			*level = (enum tsgate_config_log_level)e->value;
			return 0;
		}
	}
	return EINVAL;
}

/* log, metrics, limits */

static const struct cfg_key cfg_log_keys[] = {
    {"level", CFG_SCALAR, cfg_h_enum, offsetof(struct tsgate_config, log.level),
     cfg_log_levels, NULL},
    {"format", CFG_SCALAR, cfg_h_enum,
     offsetof(struct tsgate_config, log.format), cfg_log_formats, NULL},
};

static void cfg_h_log(struct cfg_parser *p,
		      const struct cfg_key *k,
		      yaml_node_t *node,
		      void *obj)
{
	yaml_node_t *seen[ARRAY_SIZE(cfg_log_keys)] = {NULL};

	cfg_mapping(p, node, cfg_log_keys, ARRAY_SIZE(cfg_log_keys), obj, "log",
		    seen);
}

struct cfg_metrics {
	struct tsgate_config_addr listen;
};

static const struct cfg_key cfg_metrics_keys[] = {
    {"listen", CFG_SCALAR, cfg_h_address, offsetof(struct cfg_metrics, listen),
     NULL, NULL},
};

static void cfg_h_metrics(struct cfg_parser *p,
			  const struct cfg_key *k,
			  yaml_node_t *node,
			  void *obj)
{
	struct tsgate_config *cfg = obj;
	yaml_node_t *seen[ARRAY_SIZE(cfg_metrics_keys)] = {NULL};
	struct cfg_metrics *m = talloc_zero(p->cfg, struct cfg_metrics);

	if (m == NULL) {
		p->oom = true;
		return;
	}
	if (cfg_mapping(p, node, cfg_metrics_keys, ARRAY_SIZE(cfg_metrics_keys),
			m, "metrics", seen) == 0) {
		cfg_error(p, node, "missing key 'listen' in metrics");
		return;
	}
	cfg->metrics_listen = &m->listen;
}

#define LIM(f) offsetof(struct tsgate_config, limits.f)
static const struct cfg_key cfg_limits_keys[] = {
    {"max_connections", CFG_SCALAR, cfg_h_u32, LIM(max_connections),
     &cfg_conn_range, "a number"},
    {"max_connections_per_source", CFG_SCALAR, cfg_h_u32,
     LIM(max_connections_per_source), &cfg_conn_or_off_range, "a number"},
    {"per_source_ipv6_prefix", CFG_SCALAR, cfg_h_u32,
     LIM(per_source_ipv6_prefix), &cfg_ipv6_prefix_range, "a number"},
    {"handshake_timeout", CFG_SCALAR, cfg_h_duration, LIM(handshake_timeout_ms),
     &cfg_positive_ms, "a duration"},
    {"idle_timeout", CFG_SCALAR, cfg_h_duration, LIM(idle_timeout_ms), NULL,
     "a duration"},
    {"shutdown_grace", CFG_SCALAR, cfg_h_duration, LIM(shutdown_grace_ms), NULL,
     "a duration"},
    {"connect_timeout", CFG_SCALAR, cfg_h_duration, LIM(connect_timeout_ms),
     &cfg_positive_ms, "a duration"},
};
#undef LIM

static void cfg_h_limits(struct cfg_parser *p,
			 const struct cfg_key *k,
			 yaml_node_t *node,
			 void *obj)
{
	yaml_node_t *seen[ARRAY_SIZE(cfg_limits_keys)] = {NULL};

	cfg_mapping(p, node, cfg_limits_keys, ARRAY_SIZE(cfg_limits_keys), obj,
		    "limits", seen);
}

/* Below 100 ms the fallback check would be a busy loop over stat(). */
static const struct cfg_range cfg_reload_interval = {100, 0};

#define RL(f) offsetof(struct tsgate_config, reload.f)
static const struct cfg_key cfg_reload_keys[] = {
    {"watch", CFG_SCALAR, cfg_h_bool, RL(watch), NULL, "true or false"},
    {"interval", CFG_SCALAR, cfg_h_duration, RL(interval_ms),
     &cfg_reload_interval, "a duration"},
};
#undef RL

static void cfg_h_reload(struct cfg_parser *p,
			 const struct cfg_key *k,
			 yaml_node_t *node,
			 void *obj)
{
	yaml_node_t *seen[ARRAY_SIZE(cfg_reload_keys)] = {NULL};

	cfg_mapping(p, node, cfg_reload_keys, ARRAY_SIZE(cfg_reload_keys), obj,
		    "reload", seen);
}

static void cfg_h_user(struct cfg_parser *p,
		       const struct cfg_key *k,
		       yaml_node_t *node,
		       void *obj)
{
	struct tsgate_config *cfg = obj;
	struct passwd pw, *res = NULL;
	char buf[4096];
	int ret;

	cfg->user = talloc_strdup(p->cfg, cfg_str(node));
	if (cfg->user == NULL) {
		p->oom = true;
		return;
	}
	ret = getpwnam_r(cfg->user, &pw, buf, sizeof(buf), &res);
	if (ret != 0 || res == NULL) {
		cfg_error(p, node, "'user': no such user '%s'", cfg->user);
		return;
	}
	cfg->uid = pw.pw_uid;
	cfg->gid = pw.pw_gid;
}

/* Resolved now; applied after the walk (user sets the primary group). */
static void cfg_h_group(struct cfg_parser *p,
			const struct cfg_key *k,
			yaml_node_t *node,
			void *obj)
{
	struct tsgate_config *cfg = obj;
	struct group gr, *res = NULL;
	char buf[4096];
	int ret;

	cfg->group = talloc_strdup(p->cfg, cfg_str(node));
	if (cfg->group == NULL) {
		p->oom = true;
		return;
	}
	ret = getgrnam_r(cfg->group, &gr, buf, sizeof(buf), &res);
	if (ret != 0 || res == NULL) {
		cfg_error(p, node, "'group': no such group '%s'", cfg->group);
		cfg->group = NULL;
		return;
	}
	p->group_gid = gr.gr_gid;
}

#define CF(f) offsetof(struct tsgate_config, f)
static const struct cfg_key cfg_top_keys[] = {
    {"log", CFG_MAPPING, cfg_h_log, 0, NULL, NULL},
    {"workers", CFG_SCALAR, cfg_h_u32, CF(workers), &cfg_workers_range,
     "a number"},
    {"user", CFG_SCALAR, cfg_h_user, 0, NULL, "a user name"},
    {"group", CFG_SCALAR, cfg_h_group, 0, NULL, "a group name"},
    {"metrics", CFG_MAPPING, cfg_h_metrics, 0, NULL, NULL},
    {"limits", CFG_MAPPING, cfg_h_limits, 0, NULL, NULL},
    {"reload", CFG_MAPPING, cfg_h_reload, 0, NULL, NULL},
    {"listeners", CFG_SEQUENCE, cfg_h_listeners, 0, NULL, NULL},
    {"resolvers", CFG_ANY, cfg_h_resolvers, 0, NULL, NULL},
    {"allow_insecure_key_permissions", CFG_SCALAR, cfg_h_bool,
     CF(allow_insecure_key_permissions), NULL, NULL},
};
#undef CF

void cfg_defaults(struct tsgate_config *cfg)
{
	cfg->log.level = TSGATE_CONFIG_LOG_INFO;
	cfg->log.format = TSGATE_CONFIG_LOG_TEXT;
	cfg->workers = 1;
	cfg->limits.max_connections = 10000;
	cfg->limits.max_connections_per_source = 0;
	cfg->limits.per_source_ipv6_prefix = 64;
	cfg->limits.handshake_timeout_ms = 10 * 1000;
	cfg->limits.idle_timeout_ms = 300 * 1000;
	cfg->limits.shutdown_grace_ms = 30 * 1000;
	cfg->limits.connect_timeout_ms = 10 * 1000;
	cfg->reload.watch = true;
	cfg->reload.interval_ms = 30 * 1000;
}

void cfg_walk(struct cfg_parser *p, yaml_document_t *doc)
{
	yaml_node_t *root = yaml_document_get_root_node(doc);
	yaml_node_t *seen[ARRAY_SIZE(cfg_top_keys)] = {NULL};
	uint32_t present;

	p->doc = doc;
	if (root == NULL || cfg_is_null(root)) {
		cfg_add_error(p, 0, 0,
			      "the file is empty (a configuration needs at "
			      "least 'listeners')");
		return;
	}
	if (root->type != YAML_MAPPING_NODE) {
		cfg_error(p, root,
			  "the top level must be a mapping of "
			  "settings, not %s",
			  cfg_node_desc(root));
		return;
	}
	present = cfg_mapping(p, root, cfg_top_keys, ARRAY_SIZE(cfg_top_keys),
			      p->cfg, "the top level", seen);
	if (!PRESENT(cfg_top_keys, present, "listeners") && !p->too_complex) {
		cfg_error(p, root, "missing key 'listeners' at the top level");
	}
	cfg_resolve_backends(p);
	if (p->cfg->group != NULL && p->cfg->user != NULL) {
		p->cfg->gid = p->group_gid;
	}
	p->group_at = cfg_mark(SEEN(cfg_top_keys, seen, "group"));
	p->metrics_at = cfg_mark(SEEN(cfg_top_keys, seen, "metrics"));
}
