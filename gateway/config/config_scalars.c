/* SPDX-License-Identifier: MIT */
/*
 * The config's generic handlers: one scalar (or list of scalars) into the
 * field at k->offset of the object being filled: strings, files, bools,
 * numbers, durations, sizes, enums, addresses, ALPN lists.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_private.h"

/* Ranges of the numbers in the key tables. */
const struct cfg_range cfg_workers_range = {1, 1024};
const struct cfg_range cfg_conn_range = {1, 10000000};
const struct cfg_range cfg_conn_or_off_range = {0, 10000000};
const struct cfg_range cfg_ipv6_prefix_range = {1, 128};
const struct cfg_range cfg_positive_ms = {1, 0};

/* Generic handlers: the field at k->offset of obj. */

void cfg_h_string(struct cfg_parser *p,
		  const struct cfg_key *k,
		  yaml_node_t *node,
		  void *obj)
{
	const char **field = FIELD(obj, k, const char *);

	*field = talloc_strdup(p->cfg, cfg_str(node));
	if (*field == NULL) {
		p->oom = true;
	}
}

/* k->data of cfg_h_path for keytabs */
const char cfg_keytab_marker[] = "keytab";

static char *cfg_abs_path(struct cfg_parser *p, const char *path)
{
	if (path[0] == '/') {
		return talloc_strdup(p->cfg, path);
	}
	while (strncmp(path, "./", 2) == 0) {
		path += 2;
	}
	return talloc_asprintf(p->cfg, "%s/%s", p->base_dir, path);
}

static void cfg_add_secret(struct cfg_parser *p,
			   const char *what,
			   const yaml_node_t *node,
			   const struct stat *st)
{
	cfg_add_secret_at(p, what, cfg_origin(p, node), st);
}

void cfg_add_secret_at(struct cfg_parser *p,
		       const char *what,
		       struct tsgate_config_origin at,
		       const struct stat *st)
{
	struct cfg_secret *s;

	s = talloc_realloc(p->tmp, p->secrets, struct cfg_secret,
			   p->num_secrets + 1);
	if (s == NULL) {
		p->oom = true;
		return;
	}
	p->secrets = s;
	p->secrets[p->num_secrets++] = (struct cfg_secret){
	    .at = at,
	    .what = what,
	    .mode = st->st_mode,
	    .uid = st->st_uid,
	};
}

/* A file that must exist and be readable: stored as an absolute path. */
void cfg_h_path(struct cfg_parser *p,
		const struct cfg_key *k,
		yaml_node_t *node,
		void *obj)
{
	const char **field = FIELD(obj, k, const char *);
	const char *shown = cfg_str(node);
	char *path;

	/* A keytab may be named "FILE:/path", as krb5 writes it. */
	if (k->data == cfg_keytab_marker && strncmp(shown, "FILE:", 5) == 0) {
		shown += 5;
	}
	path = cfg_abs_path(p, shown);
	struct stat st;
	int fd;

	if (path == NULL) {
		p->oom = true;
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		cfg_error(p, node, "'%s': cannot open '%s': %s", k->name, shown,
			  strerror(errno));
		return;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		cfg_error(p, node, "'%s': '%s' is not a regular file", k->name,
			  shown);
		close(fd);
		return;
	}
	close(fd);
	if (k->data == cfg_keytab_marker || strcmp(k->name, "key") == 0 ||
	    strcmp(k->name, "ticket_keys_file") == 0) {
		cfg_add_secret(p, k->name, node, &st);
	}
	/* Only a usable file is stored: later checks skip the others. */
	*field = path;
}

void cfg_h_bool(struct cfg_parser *p,
		const struct cfg_key *k,
		yaml_node_t *node,
		void *obj)
{
	bool *field = FIELD(obj, k, bool);
	const char *s = cfg_str(node);

	if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 ||
	    strcmp(s, "TRUE") == 0) {
		*field = true;
	} else if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 ||
		   strcmp(s, "FALSE") == 0) {
		*field = false;
	} else {
		cfg_error(p, node, "'%s': '%s' is not true or false", k->name,
			  s);
	}
}

static bool cfg_parse_uint(const char *s, uint64_t *v)
{
	uint64_t n = 0;

	if (*s == '\0') {
		return false;
	}
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || n > (UINT64_MAX - 9) / 10) {
			return false;
		}
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*v = n;
	return true;
}

void cfg_h_u32(struct cfg_parser *p,
	       const struct cfg_key *k,
	       yaml_node_t *node,
	       void *obj)
{
	uint32_t *field = FIELD(obj, k, uint32_t);
	const struct cfg_range *r = k->data;
	uint64_t v;

	if (!cfg_parse_uint(cfg_str(node), &v)) {
		cfg_error(p, node, "'%s': '%s' is not a whole number", k->name,
			  cfg_str(node));
		return;
	}
	if (v < r->min || v > r->max) {
		cfg_error(p, node, "'%s': %s is out of range (%llu-%llu)",
			  k->name, cfg_str(node), (unsigned long long)r->min,
			  (unsigned long long)r->max);
		return;
	}
	*field = (uint32_t)v;
}

void cfg_h_duration(struct cfg_parser *p,
		    const struct cfg_key *k,
		    yaml_node_t *node,
		    void *obj)
{
	uint64_t *field = FIELD(obj, k, uint64_t);
	const struct cfg_range *r = k->data;
	const char *err;
	uint64_t ms;

	err = tsgate_config_parse_duration(p->tmp, cfg_str(node), &ms);
	if (err != NULL) {
		cfg_error(p, node, "'%s': %s", k->name, err);
		return;
	}
	if (r != NULL && ms < r->min) {
		cfg_error(p, node, "'%s': must be at least %llums", k->name,
			  (unsigned long long)r->min);
		return;
	}
	*field = ms;
}

void cfg_h_size(struct cfg_parser *p,
		const struct cfg_key *k,
		yaml_node_t *node,
		void *obj)
{
	uint64_t *field = FIELD(obj, k, uint64_t);
	const char *err;
	uint64_t v;

	err = tsgate_config_parse_size(p->tmp, cfg_str(node), &v);
	if (err != NULL) {
		cfg_error(p, node, "'%s': %s", k->name, err);
		return;
	}
	if (v == 0) {
		cfg_error(p, node, "'%s': must not be 0", k->name);
		return;
	}
	*field = v;
}

void cfg_h_enum(struct cfg_parser *p,
		const struct cfg_key *k,
		yaml_node_t *node,
		void *obj)
{
	const struct cfg_enum *e = k->data;
	const char *s = cfg_str(node);
	char *list;
	size_t i, count = 0, shown = 0;

	for (i = 0; e[i].name != NULL; i++) {
		if (strcmp(e[i].name, s) == 0) {
			*FIELD(obj, k, int) = e[i].value;
			return;
		}
		if (!e[i].alias) {
			count++;
		}
	}
	list = talloc_strdup(p->tmp, "");
	for (i = 0; e[i].name != NULL && list != NULL; i++) {
		const char *sep;

		if (e[i].alias) {
			continue;
		}
		shown++;
		sep = shown == 1 ? "" : (shown == count ? " or " : ", ");
		list = talloc_asprintf_append(list, "%s%s", sep, e[i].name);
	}
	cfg_error(p, node, "'%s': unknown value '%s' (expected %s)", k->name, s,
		  list != NULL ? list : "?");
	TALLOC_FREE(list);
}

void cfg_h_address(struct cfg_parser *p,
		   const struct cfg_key *k,
		   yaml_node_t *node,
		   void *obj)
{
	struct tsgate_config_addr *addr =
	    FIELD(obj, k, struct tsgate_config_addr);
	const char *err;

	err = tsgate_config_parse_address(p->cfg, cfg_str(node), p->base_dir,
					  p->flags, addr);
	addr->mark = cfg_mark(node);
	if (err != NULL) {
		cfg_error(p, node, "'%s': %s", k->name, err);
	}
}

/*
 * A string or a list of strings (alpn, match values). The array field is
 * at k->offset, its count right after it (const char **; size_t).
 */
bool cfg_strlist(struct cfg_parser *p,
		 const char *name,
		 yaml_node_t *node,
		 struct cfg_strlist *out)
{
	yaml_node_item_t *item;
	size_t i;

	out->items = NULL;
	out->num = 0;
	if (node->type == YAML_SCALAR_NODE) {
		if (!cfg_check_kind(p, name, CFG_SCALAR,
				    "a value or a list of values", node)) {
			return false;
		}
		out->items = talloc_array(p->cfg, const char *, 1);
		if (out->items == NULL) {
			p->oom = true;
			return false;
		}
		out->items[0] = talloc_strdup(out->items, cfg_str(node));
		if (out->items[0] == NULL) {
			p->oom = true;
			return false;
		}
		out->num = 1;
		return true;
	}
	if (node->type != YAML_SEQUENCE_NODE) {
		cfg_error(p, node,
			  "'%s' must be a value or a list of values, "
			  "not %s",
			  name, cfg_node_desc(node));
		return false;
	}
	if (node->data.sequence.items.top == node->data.sequence.items.start) {
		cfg_error(p, node, "'%s' must not be an empty list", name);
		return false;
	}
	if (node->data.sequence.items.top - node->data.sequence.items.start >
	    CFG_MAX_LIST) {
		cfg_error(p, node, "'%s' has too many values (at most %d)",
			  name, CFG_MAX_LIST);
		return false;
	}
	out->items = talloc_array(p->cfg, const char *,
				  node->data.sequence.items.top -
				      node->data.sequence.items.start);
	if (out->items == NULL) {
		p->oom = true;
		return false;
	}
	for (item = node->data.sequence.items.start;
	     item < node->data.sequence.items.top; item++) {
		yaml_node_t *v = cfg_node(p, *item);

		if (v == NULL || !cfg_visit(p, v)) {
			return false;
		}
		if (!cfg_check_kind(p, name, CFG_SCALAR,
				    "a list of single values", v)) {
			continue;
		}
		for (i = 0; i < out->num; i++) {
			if (strcmp(out->items[i], cfg_str(v)) == 0) {
				cfg_error(p, v, "'%s': '%s' is listed twice",
					  name, cfg_str(v));
				break;
			}
		}
		if (i < out->num) {
			continue;
		}
		out->items[out->num] = talloc_strdup(out->items, cfg_str(v));
		if (out->items[out->num] == NULL) {
			p->oom = true;
			return false;
		}
		out->num++;
	}
	return out->num > 0;
}

void cfg_h_alpn(struct cfg_parser *p,
		const struct cfg_key *k,
		yaml_node_t *node,
		void *obj)
{
	struct cfg_strlist *field = FIELD(obj, k, struct cfg_strlist);
	size_t i;

	if (!cfg_strlist(p, k->name, node, field)) {
		return;
	}
	for (i = 0; i < field->num; i++) {
		if (field->items[i][0] == '\0') {
			cfg_error(p, node,
				  "'%s': protocol names must not be "
				  "empty",
				  k->name);
		}
		if (strlen(field->items[i]) > 255) {
			cfg_error(p, node,
				  "'%s': protocol names are at most 255 bytes",
				  k->name);
		}
	}
}
