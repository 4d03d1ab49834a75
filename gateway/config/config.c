/*
 * tsgate config loader: reads the YAML file with libyaml's document API
 * and walks it through tables of {key, node kind, handler} into the
 * typed structs of config.h. Every problem is recorded with the position
 * of the node at fault and the walk goes on, so one run lists them all.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_private.h"
#include "name_match.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Bigger config files are refused: nobody writes one, junk might be. */
#define CFG_MAX_FILE_SIZE (4 * 1024 * 1024)
/* Nodes visited at most: YAML aliases can make a small file huge. */
#define CFG_MAX_VISITS 100000
/*
 * Sizes of lists, so the checks that compare entries pairwise (duplicate
 * names, shadowed routes) stay fast on any input; far above real configs.
 */
#define CFG_MAX_LISTENERS 1000
#define CFG_MAX_ROUTES    4096
#define CFG_MAX_LIST      1024
/*
 * Nesting depth at most: libyaml's scanner does work proportional to the
 * flow nesting for every token, so "[[[[..." a megabyte deep would run for
 * minutes. The schema itself is 6 levels deep.
 */
#define CFG_MAX_DEPTH 64
/* Errors recorded at most; the rest are counted in one last message. */
#define CFG_MAX_ERRORS 1000

struct cfg_parser {
	TALLOC_CTX *tmp;
	const char *file;
	const char *base_dir;
	unsigned flags;
	yaml_document_t *doc;
	struct tsgate_config *cfg;
	struct tsgate_config_errors *errs;
	size_t visits;
	size_t dropped_errors;
	bool too_complex;
	bool oom;
	/* private keys and keytabs named, checked once the file is read */
	struct cfg_secret *secrets;
	size_t num_secrets;
	gid_t group_gid; /* of cfg->group */
};

/* A private key or keytab file and what fstat() said of it. */
struct cfg_secret {
	const yaml_node_t *node;
	const char *what;
	mode_t mode;
	uid_t uid;
};

enum cfg_kind {
	CFG_SCALAR,   /* a non-empty scalar */
	CFG_MAPPING,  /* a mapping */
	CFG_SEQUENCE, /* a sequence */
	CFG_ANY,      /* the handler checks */
};

struct cfg_key;
typedef void (*cfg_handler)(struct cfg_parser *p,
			    const struct cfg_key *k,
			    yaml_node_t *node,
			    void *obj);

struct cfg_key {
	const char *name;
	enum cfg_kind kind;
	cfg_handler fn; /* NULL: the caller handles the value afterwards */
	size_t offset;  /* of the field in obj */
	const void *data;
	const char *what; /* "a number", ...; NULL: from kind */
};

struct cfg_enum {
	const char *name;
	int value;
	bool alias; /* accepted, not listed in messages */
};

struct cfg_range {
	uint64_t min;
	uint64_t max;
};

#define FIELD(obj, k, type) ((type *)(void *)((char *)(obj) + (k)->offset))

static void cfg_add_error(struct cfg_parser *p,
			  unsigned line,
			  unsigned col,
			  const char *msg)
{
	struct tsgate_config_errors *e = p->errs;
	struct tsgate_config_error *n;
	size_t i;

	if (msg == NULL) {
		p->oom = true;
		return;
	}
	if (e->num_errors >= CFG_MAX_ERRORS) {
		p->dropped_errors++;
		return;
	}
	/* The same node reached twice (YAML aliases) says the same thing. */
	for (i = 0; i < e->num_errors; i++) {
		if (e->errors[i].line == line && e->errors[i].column == col &&
		    strcmp(e->errors[i].message, msg) == 0) {
			return;
		}
	}
	n = talloc_realloc(e, e->errors, struct tsgate_config_error,
			   e->num_errors + 1);
	if (n == NULL) {
		p->oom = true;
		return;
	}
	e->errors = n;
	n[e->num_errors] = (struct tsgate_config_error){
	    .file = p->file,
	    .line = line,
	    .column = col,
	    .message = talloc_strdup(n, msg),
	};
	if (n[e->num_errors].message == NULL) {
		p->oom = true;
		return;
	}
	e->num_errors += 1;
}

void cfg_error(struct cfg_parser *p,
	       const yaml_node_t *node,
	       const char *fmt,
	       ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = talloc_vasprintf(p->tmp, fmt, ap);
	va_end(ap);
	if (node == NULL) {
		cfg_add_error(p, 0, 0, msg);
	} else {
		cfg_add_error(p, (unsigned)node->start_mark.line + 1,
			      (unsigned)node->start_mark.column + 1, msg);
	}
	TALLOC_FREE(msg);
}

static struct tsgate_config_mark cfg_mark(const yaml_node_t *node)
{
	struct tsgate_config_mark m = {0, 0};

	if (node != NULL) {
		m.line = (unsigned)node->start_mark.line + 1;
		m.column = (unsigned)node->start_mark.column + 1;
	}
	return m;
}

/* node's text and position, for the credential pass (NULL: absent). */
static struct tsgate_config_origin cfg_origin(struct cfg_parser *p,
					      const yaml_node_t *node)
{
	struct tsgate_config_origin o = {NULL, {0, 0}};

	if (node == NULL || node->type != YAML_SCALAR_NODE) {
		return o;
	}
	o.text = talloc_strdup(p->cfg, (const char *)node->data.scalar.value);
	if (o.text == NULL) {
		p->oom = true;
	}
	o.mark = cfg_mark(node);
	return o;
}

static bool cfg_visit(struct cfg_parser *p, const yaml_node_t *node)
{
	if (p->too_complex) {
		return false;
	}
	if (++p->visits > CFG_MAX_VISITS) {
		p->too_complex = true;
		cfg_error(p, node,
			  "the document is too complex (more than %d nodes; "
			  "too many YAML aliases?)",
			  CFG_MAX_VISITS);
		return false;
	}
	return true;
}

static yaml_node_t *cfg_node(struct cfg_parser *p, int id)
{
	return yaml_document_get_node(p->doc, id);
}

static const char *cfg_str(const yaml_node_t *node)
{
	return (const char *)node->data.scalar.value;
}

/* A plain scalar that YAML reads as null: "", "~", "null". */
static bool cfg_is_null(const yaml_node_t *node)
{
	const char *s;

	if (node->type != YAML_SCALAR_NODE ||
	    node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
		return false;
	}
	s = cfg_str(node);
	return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static const char *cfg_node_desc(const yaml_node_t *node)
{
	switch (node->type) {
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_SCALAR_NODE:
		return cfg_is_null(node) ? "empty" : "a single value";
	default:
		return "nothing";
	}
}

static const char *cfg_kind_desc(enum cfg_kind kind)
{
	switch (kind) {
	case CFG_SCALAR:
		return "a single value";
	case CFG_MAPPING:
		return "a mapping";
	case CFG_SEQUENCE:
		return "a list";
	case CFG_ANY:
		break;
	}
	return "a value";
}

/* Check node against kind; report "'name' must be X, not Y". */
static bool cfg_check_kind(struct cfg_parser *p,
			   const char *name,
			   enum cfg_kind kind,
			   const char *what,
			   const yaml_node_t *node)
{
	bool ok;

	switch (kind) {
	case CFG_SCALAR:
		ok = node->type == YAML_SCALAR_NODE && !cfg_is_null(node);
		break;
	case CFG_MAPPING:
		ok = node->type == YAML_MAPPING_NODE;
		break;
	case CFG_SEQUENCE:
		ok = node->type == YAML_SEQUENCE_NODE;
		break;
	default:
		ok = true;
		break;
	}
	if (ok && node->type == YAML_SCALAR_NODE &&
	    strlen(cfg_str(node)) != node->data.scalar.length) {
		cfg_error(p, node, "'%s' contains a NUL character", name);
		return false;
	}
	if (!ok) {
		cfg_error(p, node, "'%s' must be %s, not %s", name,
			  what != NULL ? what : cfg_kind_desc(kind),
			  cfg_node_desc(node));
	}
	return ok;
}

static char *cfg_key_list(TALLOC_CTX *mem_ctx,
			  const struct cfg_key *table,
			  size_t n)
{
	char *s = talloc_strdup(mem_ctx, "");
	size_t i;

	for (i = 0; i < n && s != NULL; i++) {
		s = talloc_asprintf_append(s, "%s%s", i > 0 ? ", " : "",
					   table[i].name);
	}
	return s;
}

/*
 * Walk a mapping through a key table. seen[i] (n entries, zeroed by the
 * caller) gets the value node of table[i] when it has the right kind, for
 * keys whose handler is NULL and for the caller's later checks. Returns
 * the keys present (bit i for table[i], whatever their value), 0 when
 * node is not a mapping. Tables have at most 32 keys.
 */
static uint32_t cfg_mapping(struct cfg_parser *p,
			    yaml_node_t *node,
			    const struct cfg_key *table,
			    size_t n,
			    void *obj,
			    const char *ctx,
			    yaml_node_t **seen)
{
	yaml_node_pair_t *pair;
	yaml_node_t **seen_keys;
	uint32_t present = 0;

	if (node->type != YAML_MAPPING_NODE) {
		return 0;
	}
	seen_keys = talloc_zero_array(p->tmp, yaml_node_t *, n);
	if (seen_keys == NULL) {
		p->oom = true;
		return 0;
	}
	for (pair = node->data.mapping.pairs.start;
	     pair < node->data.mapping.pairs.top; pair++) {
		yaml_node_t *key = cfg_node(p, pair->key);
		yaml_node_t *value = cfg_node(p, pair->value);
		const char *name;
		size_t i;

		if (key == NULL || value == NULL || !cfg_visit(p, value)) {
			break;
		}
		if (key->type != YAML_SCALAR_NODE) {
			cfg_error(p, key, "keys in %s must be names, not %s",
				  ctx, cfg_node_desc(key));
			continue;
		}
		name = cfg_str(key);
		for (i = 0; i < n; i++) {
			if (strcmp(table[i].name, name) == 0) {
				break;
			}
		}
		if (i == n) {
			char *list = cfg_key_list(p->tmp, table, n);

			cfg_error(p, key,
				  "unknown key '%s' in %s (expected %s)", name,
				  ctx, list != NULL ? list : "?");
			TALLOC_FREE(list);
			continue;
		}
		if (seen_keys[i] != NULL) {
			cfg_error(p, key,
				  "duplicate key '%s' (first at line %u)", name,
				  cfg_mark(seen_keys[i]).line);
			continue;
		}
		seen_keys[i] = key;
		present |= 1u << i;
		if (!cfg_check_kind(p, name, table[i].kind, table[i].what,
				    value)) {
			continue;
		}
		seen[i] = value;
		if (table[i].fn != NULL) {
			table[i].fn(p, &table[i], value, obj);
		}
	}
	TALLOC_FREE(seen_keys);
	return present;
}

static yaml_node_t *cfg_seen(const struct cfg_key *table,
			     size_t n,
			     yaml_node_t **seen,
			     const char *name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(table[i].name, name) == 0) {
			return seen[i];
		}
	}
	return NULL;
}

#define SEEN(table, seen, name) cfg_seen(table, ARRAY_SIZE(table), seen, name)

static bool cfg_present(const struct cfg_key *table,
			size_t n,
			uint32_t present,
			const char *name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(table[i].name, name) == 0) {
			return (present & (1u << i)) != 0;
		}
	}
	return false;
}

#define PRESENT(table, present, name) \
	cfg_present(table, ARRAY_SIZE(table), present, name)

/* Generic handlers: the field at k->offset of obj. */

static void cfg_h_string(struct cfg_parser *p,
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
static const char cfg_keytab_marker[] = "keytab";

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
	struct cfg_secret *s;

	s = talloc_realloc(p->tmp, p->secrets, struct cfg_secret,
			   p->num_secrets + 1);
	if (s == NULL) {
		p->oom = true;
		return;
	}
	p->secrets = s;
	p->secrets[p->num_secrets++] = (struct cfg_secret){
	    .node = node,
	    .what = what,
	    .mode = st->st_mode,
	    .uid = st->st_uid,
	};
}

/*
 * Private keys and keytabs, as ssh and PostgreSQL judge them: owned by
 * root, by the user we run as or by the one we drop to; no access for
 * others; group read only when root owns the file (a root-owned 0640 key
 * with an ssl-cert style group, or a Kubernetes secret with fsGroup and
 * defaultMode 0440). allow_insecure_key_permissions: true turns this off.
 */
static void cfg_check_secrets(struct cfg_parser *p)
{
	const char *fix = "; chmod 0600 it (0640 or 0440 if root owns it), "
			  "or set allow_insecure_key_permissions: true";
	uid_t me = geteuid();
	size_t i;

	if (!(p->flags & TSGATE_CONFIG_CHECK_CREDENTIALS) ||
	    p->cfg->allow_insecure_key_permissions) {
		return;
	}
	for (i = 0; i < p->num_secrets; i++) {
		const struct cfg_secret *s = &p->secrets[i];
		unsigned mode = (unsigned)(s->mode & 07777);

		if (s->uid != 0 && s->uid != me &&
		    (p->cfg->user == NULL || s->uid != p->cfg->uid)) {
			cfg_error(p, s->node,
				  "'%s': '%s' is owned by uid %u, not by root "
				  "or the user tsgate runs as; chown it, or "
				  "set allow_insecure_key_permissions: true",
				  s->what, cfg_str(s->node), (unsigned)s->uid);
		} else if ((mode & S_IRWXO) != 0) {
			cfg_error(p, s->node,
				  "'%s': '%s' is accessible by others (mode "
				  "%04o)%s",
				  s->what, cfg_str(s->node), mode, fix);
		} else if ((mode & S_IRWXG) != 0 &&
			   (s->uid != 0 || (mode & S_IRWXG) != S_IRGRP)) {
			cfg_error(p, s->node,
				  "'%s': '%s' is accessible by its group "
				  "(mode %04o)%s",
				  s->what, cfg_str(s->node), mode, fix);
		}
	}
}

/* A file that must exist and be readable: stored as an absolute path. */
static void cfg_h_path(struct cfg_parser *p,
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
	if (k->data == cfg_keytab_marker || strcmp(k->name, "key") == 0) {
		cfg_add_secret(p, k->name, node, &st);
	}
	/* Only a usable file is stored: later checks skip the others. */
	*field = path;
}

static void cfg_h_bool(struct cfg_parser *p,
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

static void cfg_h_u32(struct cfg_parser *p,
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

static void cfg_h_duration(struct cfg_parser *p,
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

static void cfg_h_size(struct cfg_parser *p,
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

static void cfg_h_enum(struct cfg_parser *p,
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

static void cfg_h_address(struct cfg_parser *p,
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
struct cfg_strlist {
	const char **items;
	size_t num;
};

static bool cfg_strlist(struct cfg_parser *p,
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

static void cfg_h_alpn(struct cfg_parser *p,
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

static const struct cfg_enum cfg_accepts[] = {
    {"tls", TSGATE_CONFIG_ACCEPT_TLS, false},
    {"gssapi", TSGATE_CONFIG_ACCEPT_GSSAPI, false},
    {"plain", TSGATE_CONFIG_ACCEPT_PLAIN, false},
    {NULL, 0, false},
};

static const struct cfg_enum cfg_connects[] = {
    {"plain", TSGATE_CONFIG_CONNECT_PLAIN, false},
    {"tls", TSGATE_CONFIG_CONNECT_TLS, false},
    {"gssapi", TSGATE_CONFIG_CONNECT_GSSAPI, false},
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

static const struct cfg_enum cfg_verify_clients[] = {
    {"none", TSGATE_CONFIG_VERIFY_NONE, false},
    {"optional", TSGATE_CONFIG_VERIFY_OPTIONAL, false},
    {"require", TSGATE_CONFIG_VERIFY_REQUIRE, false},
    {NULL, 0, false},
};

static const struct cfg_enum cfg_tls_versions[] = {
    {"TLS1.2", TSGATE_CONFIG_TLS_1_2, false},
    {"TLS1.3", TSGATE_CONFIG_TLS_1_3, false},
    {"1.2", TSGATE_CONFIG_TLS_1_2, true},
    {"1.3", TSGATE_CONFIG_TLS_1_3, true},
    {NULL, 0, false},
};

static const struct cfg_range cfg_workers_range = {1, 1024};
static const struct cfg_range cfg_conn_range = {1, 10000000};
static const struct cfg_range cfg_conn_or_off_range = {0, 10000000};
static const struct cfg_range cfg_ipv6_prefix_range = {1, 128};
static const struct cfg_range cfg_positive_ms = {1, 0};

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

/* listeners[].tls */

struct cfg_tls_server_parse {
	struct tsgate_config_tls_server *tls;
	struct cfg_strlist alpn;
	const char *key; /* top-level key */
	const char *client_ca;
	const char *crl;
	bool verify_given;
};

#define TSP(f) offsetof(struct cfg_tls_server_parse, f)
#define TS(f)  offsetof(struct tsgate_config_tls_server, f)
static const struct cfg_key cfg_tls_server_keys[] = {
    {"cert", CFG_ANY, NULL, 0, NULL, NULL},
    {"key", CFG_SCALAR, cfg_h_path, TSP(key), NULL, "a file name"},
    {"client_ca", CFG_SCALAR, cfg_h_path, TSP(client_ca), NULL, "a file name"},
    {"crl", CFG_SCALAR, cfg_h_path, TSP(crl), NULL, "a file name"},
    {"verify_client", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"alpn", CFG_ANY, cfg_h_alpn, TSP(alpn), NULL, NULL},
    {"priority", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"min_version", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"max_version", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"strict_end", CFG_SCALAR, NULL, 0, NULL, "true or false"},
};
#undef TSP

struct cfg_cert_entry {
	const char *sni;
	const char *cert;
	const char *key;
};

#define CE(f) offsetof(struct cfg_cert_entry, f)
static const struct cfg_key cfg_cert_entry_keys[] = {
    {"sni", CFG_SCALAR, cfg_h_string, CE(sni), NULL, NULL},
    {"cert", CFG_SCALAR, cfg_h_path, CE(cert), NULL, "a file name"},
    {"key", CFG_SCALAR, cfg_h_path, CE(key), NULL, "a file name"},
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
		    cfg_h_path, offsetof(struct tsgate_config_tls_cert, cert),
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
		cfg_h_path(p, &ck, cert_node, &tls->certs[0]);
		if (!key_present) {
			cfg_error(p, tls_node,
				  "missing key 'key' in tls "
				  "(the private key of 'cert')");
			return;
		}
		tls->certs[0].key = tp->key;
		tls->certs[0].cert_at = cfg_origin(p, cert_node);
		tls->certs[0].key_at = cfg_origin(p, key_node);
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
		struct cfg_cert_entry ce = {NULL, NULL, NULL};
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
	}
}

static struct tsgate_config_tls_server *cfg_tls_server(struct cfg_parser *p,
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
	tls->alpn = tp.alpn.items;
	tls->num_alpn = tp.alpn.num;
	cfg_tls_server_certs(p, node, SEEN(cfg_tls_server_keys, seen, "cert"),
			     SEEN(cfg_tls_server_keys, seen, "key"),
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
	tls->walk_errors = p->errs->num_errors != errors_before;
	return tls;
}

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

static struct tsgate_config_gssapi_server *cfg_gssapi_server(
    struct cfg_parser *p, yaml_node_t *node)
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
    {"cert", CFG_SCALAR, cfg_h_path, TCP_(cert), NULL, "a file name"},
    {"key", CFG_SCALAR, cfg_h_path, TCP_(key), NULL, "a file name"},
    {"alpn", CFG_ANY, cfg_h_alpn, TCP_(alpn), NULL, NULL},
    {"verify_name", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"verify", CFG_SCALAR, NULL, 0, NULL, "true or false"},
    {"priority", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"min_version", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"max_version", CFG_SCALAR, NULL, 0, NULL, NULL},
    {"strict_end", CFG_SCALAR, NULL, 0, NULL, "true or false"},
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
};
#undef TC

static struct tsgate_config_tls_client *cfg_tls_client(struct cfg_parser *p,
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

/* routes[].gssapi (client side) */

#define GC(f) offsetof(struct tsgate_config_gssapi_client, f)
static const struct cfg_key cfg_gssapi_client_keys[] = {
    {"target", CFG_SCALAR, cfg_h_string, GC(target), NULL, NULL},
    {"ccache", CFG_SCALAR, cfg_h_string, GC(ccache), NULL, NULL},
    {"client_keytab", CFG_SCALAR, cfg_h_path, GC(client_keytab),
     cfg_keytab_marker, "a file name"},
    {"strict_end", CFG_SCALAR, cfg_h_bool, GC(strict_end), NULL,
     "true or false"},
};
#undef GC

static struct tsgate_config_gssapi_client *cfg_gssapi_client(
    struct cfg_parser *p, yaml_node_t *node)
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

/* routes[].match */

enum cfg_match_key {
	CFG_M_SNI = 0,
	CFG_M_ALPN,
	CFG_M_SUBJECT,
	CFG_M_SAN,
	CFG_M_PRINCIPAL,
	CFG_M_COUNT,
};

static const struct cfg_key cfg_match_keys[CFG_M_COUNT] = {
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

#define RT(f) offsetof(struct tsgate_config_route, f)
static const struct cfg_key cfg_route_keys[] = {
    {"name", CFG_SCALAR, cfg_h_string, RT(name), NULL, NULL},
    {"match", CFG_MAPPING, NULL, 0, NULL, NULL},
    {"backend", CFG_SCALAR, cfg_h_address, RT(backend), NULL, "an address"},
    {"connect", CFG_SCALAR, cfg_h_enum, RT(connect), cfg_connects, NULL},
    {"tls", CFG_MAPPING, NULL, 0, NULL, NULL},
    {"gssapi", CFG_MAPPING, NULL, 0, NULL, NULL},
    {"framing", CFG_SCALAR, cfg_h_enum, RT(framing), cfg_framings, NULL},
    {"max_pdu", CFG_SCALAR, cfg_h_size, RT(max_pdu), NULL, "a size"},
    {"identity", CFG_SCALAR, cfg_h_enum, RT(identity), cfg_identities, NULL},
};
#undef RT

/* Smallest PDU each framing can carry: its header. */
static uint64_t cfg_framing_header(enum tsgate_config_framing f)
{
	switch (f) {
	case TSGATE_CONFIG_FRAMING_LENGTH32:
	case TSGATE_CONFIG_FRAMING_NBT:
		return 4;
	case TSGATE_CONFIG_FRAMING_NCACN:
		return 16;
	case TSGATE_CONFIG_FRAMING_RAW:
		break;
	}
	return 1;
}

static bool cfg_is_ip_literal(const char *host)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, host, buf) == 1 ||
	       inet_pton(AF_INET6, host, buf) == 1;
}

/* Match keys that can never hold on this listener. */
static void cfg_route_reachable(struct cfg_parser *p,
				const struct tsgate_config_listener *l,
				const struct tsgate_config_route *r,
				yaml_node_t **mseen)
{
	size_t i;

	for (i = 0; i < CFG_M_COUNT; i++) {
		const char *why = NULL;

		if (mseen[i] == NULL) {
			continue;
		}
		switch (l->accept) {
		case TSGATE_CONFIG_ACCEPT_PLAIN:
			why = "it accepts plain connections, which carry no "
			      "TLS or GSSAPI identity";
			break;
		case TSGATE_CONFIG_ACCEPT_GSSAPI:
			if (i != CFG_M_PRINCIPAL) {
				why = "it accepts gssapi, not tls";
			}
			break;
		case TSGATE_CONFIG_ACCEPT_TLS:
			if (i == CFG_M_PRINCIPAL) {
				why = "it accepts tls; principals come from "
				      "gssapi";
			} else if ((i == CFG_M_SUBJECT || i == CFG_M_SAN) &&
				   l->tls != NULL &&
				   l->tls->verify_client ==
				       TSGATE_CONFIG_VERIFY_NONE) {
				why = "it asks for no client certificate "
				      "(verify_client: none)";
			} else if (i == CFG_M_ALPN && l->tls != NULL &&
				   l->tls->num_alpn == 0) {
				why = "it offers no ALPN protocols (tls.alpn)";
			}
			break;
		}
		if (why != NULL) {
			cfg_error(p, mseen[i],
				  "route '%s' can never match: '%s' on "
				  "listener '%s', but %s",
				  r->name, cfg_match_keys[i].name, l->name,
				  why);
			continue;
		}
		if (i == CFG_M_ALPN && l->tls != NULL) {
			size_t a, b;

			for (a = 0; a < r->match.num_alpn; a++) {
				for (b = 0; b < l->tls->num_alpn; b++) {
					if (tsgate_config_wildcard_match(
						r->match.alpn[a],
						l->tls->alpn[b], false)) {
						break;
					}
				}
				if (b < l->tls->num_alpn) {
					break;
				}
			}
			if (a == r->match.num_alpn) {
				cfg_error(p, mseen[i],
					  "route '%s' can never match: "
					  "listener '%s' offers none of "
					  "these ALPN protocols",
					  r->name, l->name);
			}
		}
	}
}

static void cfg_route(struct cfg_parser *p,
		      yaml_node_t *node,
		      struct tsgate_config_listener *l,
		      size_t idx,
		      bool accept_known)
{
	struct tsgate_config_route *r = &l->routes[idx];
	yaml_node_t *seen[ARRAY_SIZE(cfg_route_keys)] = {NULL};
	yaml_node_t *mseen[CFG_M_COUNT] = {NULL};
	yaml_node_t *v, *tls_node, *gssapi_node;
	bool connect_known;
	uint32_t present;
	size_t i, errors_before = p->errs->num_errors;

	/* Not a valid value: tells "connect: bogus" from no connect. */
	r->connect = (enum tsgate_config_connect) - 1;
	r->framing = TSGATE_CONFIG_FRAMING_RAW;
	r->max_pdu = 1024 * 1024;
	r->identity = TSGATE_CONFIG_IDENTITY_NONE;
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
	present = cfg_mapping(p, node, cfg_route_keys,
			      ARRAY_SIZE(cfg_route_keys), r, "route", seen);
	connect_known = r->connect == TSGATE_CONFIG_CONNECT_PLAIN ||
			r->connect == TSGATE_CONFIG_CONNECT_TLS ||
			r->connect == TSGATE_CONFIG_CONNECT_GSSAPI;
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
	if (tls_node != NULL && connect_known &&
	    r->connect != TSGATE_CONFIG_CONNECT_TLS) {
		cfg_error(p, tls_node,
			  "'tls' is only used with 'connect: tls' (route '%s' "
			  "connects %s)",
			  r->name, tsgate_config_connect_name(r->connect));
	}
	if (gssapi_node != NULL && connect_known &&
	    r->connect != TSGATE_CONFIG_CONNECT_GSSAPI) {
		cfg_error(p, gssapi_node,
			  "'gssapi' is only used with 'connect: gssapi' "
			  "(route '%s' connects %s)",
			  r->name, tsgate_config_connect_name(r->connect));
	}
	v = SEEN(cfg_route_keys, seen, "connect");
	if (r->connect == TSGATE_CONFIG_CONNECT_GSSAPI && gssapi_node == NULL &&
	    !PRESENT(cfg_route_keys, present, "gssapi")) {
		cfg_error(p, v,
			  "'connect: gssapi' needs a 'gssapi' block with "
			  "'target' in route '%s'",
			  r->name);
	}
	if (r->connect == TSGATE_CONFIG_CONNECT_TLS) {
		bool unix_backend =
		    r->backend.kind == TSGATE_CONFIG_ADDR_UNIX &&
		    r->backend.path != NULL;

		if (r->tls == NULL && tls_node == NULL) {
			if (PRESENT(cfg_route_keys, present, "tls")) {
				/* reported: 'tls' must be a mapping */
			} else if (unix_backend) {
				cfg_error(p, v,
					  "'connect: tls' to a unix "
					  "backend needs a 'tls' block with "
					  "'verify_name' (or 'sni') in route "
					  "'%s'",
					  r->name);
			} else {
				r->tls = talloc_zero(
				    p->cfg, struct tsgate_config_tls_client);
				if (r->tls == NULL) {
					p->oom = true;
					return;
				}
				r->tls->verify = true;
				r->tls->mark = cfg_mark(v);
			}
		}
		if (r->tls != NULL && r->tls->sni == NULL &&
		    r->backend.host != NULL &&
		    !cfg_is_ip_literal(r->backend.host)) {
			r->tls->sni = r->backend.host;
		}
		if (r->tls != NULL && r->tls->verify_name == NULL) {
			r->tls->verify_name =
			    r->tls->sni != NULL ? r->tls->sni : r->backend.host;
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
			r->tls->walk_errors =
			    p->errs->num_errors != errors_before;
		}
	}
	v = SEEN(cfg_route_keys, seen, "max_pdu");
	if (v != NULL && r->max_pdu != 0 &&
	    r->max_pdu < cfg_framing_header(r->framing)) {
		cfg_error(p, v,
			  "'max_pdu': %s is smaller than the %s header "
			  "(%llu bytes)",
			  cfg_str(v), tsgate_config_framing_name(r->framing),
			  (unsigned long long)cfg_framing_header(r->framing));
	}

	/* Routes are tried in order: an earlier catch-all hides this one. */
	for (i = 0; i < idx; i++) {
		if (!l->routes[i].match.has_match) {
			cfg_error(p, node,
				  "route '%s' can never match: route '%s' "
				  "(line %u) before it matches every "
				  "connection",
				  r->name, l->routes[i].name,
				  l->routes[i].mark.line);
			break;
		}
	}
	if (accept_known) {
		cfg_route_reachable(p, l, r, mseen);
	}
}

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

static bool cfg_same_addr(const struct tsgate_config_addr *a,
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

static void cfg_h_listeners(struct cfg_parser *p,
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

#define CF(f) offsetof(struct tsgate_config, f)
static const struct cfg_key cfg_top_keys[] = {
    {"log", CFG_MAPPING, cfg_h_log, 0, NULL, NULL},
    {"workers", CFG_SCALAR, cfg_h_u32, CF(workers), &cfg_workers_range,
     "a number"},
    {"user", CFG_SCALAR, cfg_h_user, 0, NULL, "a user name"},
    {"group", CFG_SCALAR, cfg_h_group, 0, NULL, "a group name"},
    {"metrics", CFG_MAPPING, cfg_h_metrics, 0, NULL, NULL},
    {"limits", CFG_MAPPING, cfg_h_limits, 0, NULL, NULL},
    {"listeners", CFG_SEQUENCE, cfg_h_listeners, 0, NULL, NULL},
    {"allow_insecure_key_permissions", CFG_SCALAR, cfg_h_bool,
     CF(allow_insecure_key_permissions), NULL, NULL},
};
#undef CF

static void cfg_defaults(struct tsgate_config *cfg)
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
}

/* 1-based line and column of a byte offset (for reader errors). */
static void cfg_offset_pos(
    const uint8_t *buf, size_t len, size_t off, unsigned *line, unsigned *col)
{
	size_t i;

	*line = 1;
	*col = 1;
	for (i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			*line += 1;
			*col = 1;
		} else if ((buf[i] & 0xc0) != 0x80) {
			*col += 1;
		}
	}
}

static void cfg_yaml_error(struct cfg_parser *p,
			   yaml_parser_t *parser,
			   const uint8_t *buf,
			   size_t len)
{
	unsigned line, col;
	char *msg;

	if (parser->error == YAML_MEMORY_ERROR) {
		p->oom = true;
		return;
	}
	if (parser->error == YAML_READER_ERROR) {
		cfg_offset_pos(buf, len, parser->problem_offset, &line, &col);
		if (parser->problem_value != -1) {
			msg = talloc_asprintf(p->tmp,
					      "not a YAML text file: %s (byte "
					      "0x%02X)",
					      parser->problem,
					      (unsigned)parser->problem_value &
						  0xff);
		} else {
			msg =
			    talloc_asprintf(p->tmp, "not a YAML text file: %s",
					    parser->problem);
		}
		cfg_add_error(p, line, col, msg);
		return;
	}
	line = (unsigned)parser->problem_mark.line + 1;
	col = (unsigned)parser->problem_mark.column + 1;
	if (parser->context != NULL) {
		msg = talloc_asprintf(p->tmp,
				      "YAML syntax error: %s (%s at line %zu)",
				      parser->problem, parser->context,
				      parser->context_mark.line + 1);
	} else {
		msg = talloc_asprintf(p->tmp, "YAML syntax error: %s",
				      parser->problem != NULL ? parser->problem
							      : "unknown");
	}
	cfg_add_error(p, line, col, msg);
}

static void cfg_walk(struct cfg_parser *p, yaml_document_t *doc)
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
	if (p->cfg->group != NULL && p->cfg->user == NULL) {
		cfg_error(p, SEEN(cfg_top_keys, seen, "group"),
			  "'group' needs 'user' (the user to drop to)");
	} else if (p->cfg->group != NULL) {
		p->cfg->gid = p->group_gid;
	}
	cfg_check_secrets(p);
	if (p->cfg->metrics_listen != NULL) {
		size_t i;

		for (i = 0; i < p->cfg->num_listeners; i++) {
			if (cfg_same_addr(p->cfg->metrics_listen,
					  &p->cfg->listeners[i].listen)) {
				cfg_error(p,
					  SEEN(cfg_top_keys, seen, "metrics"),
					  "metrics listen on the same address "
					  "as listener '%s'",
					  p->cfg->listeners[i].name);
			}
		}
	}
}

static int cfg_error_cmp(const void *a, const void *b)
{
	const struct tsgate_config_error *x = a, *y = b;

	if (x->line != y->line) {
		return x->line < y->line ? -1 : 1;
	}
	if (x->column != y->column) {
		return x->column < y->column ? -1 : 1;
	}
	/* Equal positions keep the order found (pointer order in the array). */
	return x < y ? -1 : (x > y ? 1 : 0);
}

static void cfg_sort_errors(struct tsgate_config_errors *e)
{
	size_t i, j;

	/* Insertion sort: stable, and error lists are short. */
	for (i = 1; i < e->num_errors; i++) {
		struct tsgate_config_error t = e->errors[i];

		for (j = i; j > 0 && cfg_error_cmp(&e->errors[j - 1], &t) > 0;
		     j--) {
			e->errors[j] = e->errors[j - 1];
		}
		e->errors[j] = t;
	}
}

static char *cfg_dirname(TALLOC_CTX *mem_ctx, const char *path)
{
	const char *slash = strrchr(path, '/');
	char cwd[PATH_MAX];
	char *dir;

	if (slash == path) {
		return talloc_strdup(mem_ctx, "/");
	}
	if (slash != NULL) {
		dir = talloc_strndup(mem_ctx, path, slash - path);
	} else {
		dir = talloc_strdup(mem_ctx, ".");
	}
	if (dir == NULL || dir[0] == '/') {
		return dir;
	}
	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		return dir;
	}
	if (strcmp(dir, ".") == 0) {
		talloc_free(dir);
		return talloc_strdup(mem_ctx, cwd);
	}
	dir = talloc_asprintf(mem_ctx, "%s/%s", cwd, dir);
	return dir;
}

/* After the sort, so it is the last line: how many were not recorded. */
static bool cfg_add_dropped(struct cfg_parser *p)
{
	struct tsgate_config_errors *e = p->errs;
	struct tsgate_config_error *n;

	n = talloc_realloc(e, e->errors, struct tsgate_config_error,
			   e->num_errors + 1);
	if (n == NULL) {
		return false;
	}
	e->errors = n;
	n[e->num_errors] = (struct tsgate_config_error){
	    .file = p->file,
	    .message = talloc_asprintf(n, "... and %zu more errors",
				       p->dropped_errors),
	};
	if (n[e->num_errors].message == NULL) {
		return false;
	}
	e->num_errors += 1;
	return true;
}

static int cfg_finish(TALLOC_CTX *mem_ctx,
		      struct cfg_parser *p,
		      struct tsgate_config **pconfig,
		      struct tsgate_config_errors **perrors)
{
	if (p->oom) {
		talloc_free(p->errs);
		talloc_free(p->cfg);
		talloc_free(p->tmp);
		return ENOMEM;
	}
	if (p->errs->num_errors > 0) {
		cfg_sort_errors(p->errs);
		if (p->dropped_errors > 0 && !cfg_add_dropped(p)) {
			p->oom = true;
			return cfg_finish(mem_ctx, p, pconfig, perrors);
		}
		talloc_free(p->cfg);
		talloc_free(p->tmp);
		*perrors = talloc_move(mem_ctx, &p->errs);
		return EINVAL;
	}
	talloc_free(p->errs);
	talloc_free(p->tmp);
	*pconfig = talloc_move(mem_ctx, &p->cfg);
	return 0;
}

static int cfg_start(TALLOC_CTX *mem_ctx,
		     struct cfg_parser *p,
		     const char *name,
		     const char *base_dir,
		     unsigned flags)
{
	*p = (struct cfg_parser){.flags = flags};
	p->tmp = talloc_new(mem_ctx);
	p->errs = talloc_zero(mem_ctx, struct tsgate_config_errors);
	p->cfg = talloc_zero(mem_ctx, struct tsgate_config);
	if (p->tmp == NULL || p->errs == NULL || p->cfg == NULL) {
		talloc_free(p->tmp);
		talloc_free(p->errs);
		talloc_free(p->cfg);
		return ENOMEM;
	}
	cfg_defaults(p->cfg);
	/* Errors point at the file name, which must outlive the config. */
	p->file = talloc_strdup(p->errs, name);
	p->cfg->path = talloc_strdup(p->cfg, name);
	/* No base directory: the current one (the dirname of "file"). */
	p->cfg->dir = base_dir != NULL ? talloc_strdup(p->cfg, base_dir)
				       : cfg_dirname(p->cfg, "file");
	if (p->file == NULL || p->cfg->path == NULL || p->cfg->dir == NULL) {
		p->oom = true;
	}
	p->base_dir = p->cfg->dir;
	return 0;
}

/*
 * A first pass over the events, only to refuse deep nesting before the
 * document loader builds it. Syntax errors are left to the loader, which
 * reports them the same way.
 */
static bool cfg_depth_ok(struct cfg_parser *p, const uint8_t *buf, size_t len)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	int depth = 0;
	bool ok = true;

	if (!yaml_parser_initialize(&parser)) {
		p->oom = true;
		return false;
	}
	yaml_parser_set_input_string(&parser, buf, len);
	for (;;) {
		yaml_event_type_t type;

		if (!yaml_parser_parse(&parser, &ev)) {
			break;
		}
		type = ev.type;
		if (type == YAML_SEQUENCE_START_EVENT ||
		    type == YAML_MAPPING_START_EVENT) {
			if (++depth > CFG_MAX_DEPTH) {
				cfg_add_error(
				    p, (unsigned)ev.start_mark.line + 1,
				    (unsigned)ev.start_mark.column + 1,
				    talloc_asprintf(
					p->tmp,
					"nested more than %d levels "
					"deep",
					CFG_MAX_DEPTH));
				ok = false;
			}
		} else if (type == YAML_SEQUENCE_END_EVENT ||
			   type == YAML_MAPPING_END_EVENT) {
			depth--;
		}
		yaml_event_delete(&ev);
		if (!ok || type == YAML_STREAM_END_EVENT) {
			break;
		}
	}
	yaml_parser_delete(&parser);
	return ok;
}

static void cfg_parse_buffer(struct cfg_parser *p,
			     const uint8_t *buf,
			     size_t len)
{
	yaml_parser_t parser;
	yaml_document_t doc, extra;

	if (!cfg_depth_ok(p, buf, len)) {
		return;
	}
	if (!yaml_parser_initialize(&parser)) {
		p->oom = true;
		return;
	}
	yaml_parser_set_input_string(&parser, buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		cfg_yaml_error(p, &parser, buf, len);
		yaml_parser_delete(&parser);
		return;
	}
	cfg_walk(p, &doc);
	if (yaml_document_get_root_node(&doc) != NULL) {
		if (!yaml_parser_load(&parser, &extra)) {
			cfg_yaml_error(p, &parser, buf, len);
		} else {
			yaml_node_t *r = yaml_document_get_root_node(&extra);

			if (r != NULL) {
				cfg_add_error(
				    p, (unsigned)extra.start_mark.line + 1,
				    (unsigned)extra.start_mark.column + 1,
				    "more than one YAML document in the "
				    "file (tsgate reads one)");
			}
			yaml_document_delete(&extra);
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
}

/* A load in progress: the parser, kept for the passes after the walk. */
struct tsgate_config_load {
	struct cfg_parser p;
};

static int cfg_new_load(TALLOC_CTX *mem_ctx,
			const char *name,
			const char *base_dir,
			unsigned flags,
			struct tsgate_config_load **pload)
{
	struct tsgate_config_load *load;
	int ret;

	load = talloc_zero(mem_ctx, struct tsgate_config_load);
	if (load == NULL) {
		return ENOMEM;
	}
	/* The parser's trees hang off the load until the finish moves them. */
	ret = cfg_start(load, &load->p, name, base_dir, flags);
	if (ret != 0) {
		talloc_free(load);
		return ret;
	}
	*pload = load;
	return 0;
}

int tsgate_config_parse_buffer(TALLOC_CTX *mem_ctx,
			       const char *name,
			       const char *base_dir,
			       const uint8_t *buf,
			       size_t len,
			       unsigned flags,
			       struct tsgate_config_load **pload)
{
	struct tsgate_config_load *load = NULL;
	int ret;

	*pload = NULL;
	ret = cfg_new_load(mem_ctx, name, base_dir, flags, &load);
	if (ret != 0) {
		return ret;
	}
	if (!load->p.oom) {
		cfg_parse_buffer(&load->p, buf, len);
	}
	*pload = load;
	return 0;
}

/* Read the file into p->tmp; problems are recorded as errors. */
static void cfg_read_file(struct cfg_parser *p, const char *path)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		cfg_error(p, NULL, "cannot open the config file: %s",
			  strerror(errno));
		return;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		cfg_error(p, NULL, "the config file is not a regular file");
		close(fd);
		return;
	}
	if (st.st_size > CFG_MAX_FILE_SIZE) {
		cfg_error(p, NULL,
			  "the config file is too large (%lld bytes, "
			  "at most %d)",
			  (long long)st.st_size, CFG_MAX_FILE_SIZE);
		close(fd);
		return;
	}
	buf = talloc_size(p->tmp, (size_t)st.st_size + 1);
	if (buf == NULL) {
		close(fd);
		p->oom = true;
		return;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n == -1 && errno == EINTR) {
			continue;
		}
		if (n == -1) {
			cfg_error(p, NULL, "cannot read the config file: %s",
				  strerror(errno));
			close(fd);
			return;
		}
		if (n == 0) {
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	cfg_parse_buffer(p, buf, got);
	TALLOC_FREE(buf);
}

int tsgate_config_parse(TALLOC_CTX *mem_ctx,
			const char *path,
			unsigned flags,
			struct tsgate_config_load **pload)
{
	struct tsgate_config_load *load = NULL;
	char *dir;
	int ret;

	*pload = NULL;
	dir = cfg_dirname(mem_ctx, path);
	if (dir == NULL) {
		return ENOMEM;
	}
	ret = cfg_new_load(mem_ctx, path, dir, flags, &load);
	TALLOC_FREE(dir);
	if (ret != 0) {
		return ret;
	}
	if (!load->p.oom) {
		cfg_read_file(&load->p, path);
	}
	*pload = load;
	return 0;
}

const struct tsgate_config *tsgate_config_load_config(
    const struct tsgate_config_load *load)
{
	return load->p.cfg;
}

unsigned tsgate_config_load_flags(const struct tsgate_config_load *load)
{
	return load->p.flags;
}

TALLOC_CTX *tsgate_config_load_tmp(struct tsgate_config_load *load)
{
	return load->p.tmp;
}

void tsgate_config_load_error(struct tsgate_config_load *load,
			      struct tsgate_config_mark mark,
			      const char *fmt,
			      ...)
{
	struct cfg_parser *p = &load->p;
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = talloc_vasprintf(p->tmp, fmt, ap);
	va_end(ap);
	cfg_add_error(p, mark.line, mark.column, msg);
	TALLOC_FREE(msg);
}

int tsgate_config_load_finish(TALLOC_CTX *mem_ctx,
			      struct tsgate_config_load *load,
			      struct tsgate_config **pconfig,
			      struct tsgate_config_errors **perrors)
{
	int ret;

	*pconfig = NULL;
	*perrors = NULL;
	ret = cfg_finish(mem_ctx, &load->p, pconfig, perrors);
	talloc_free(load);
	return ret;
}

char *tsgate_config_error_string(TALLOC_CTX *mem_ctx,
				 const struct tsgate_config_error *err)
{
	if (err->line == 0) {
		return talloc_asprintf(mem_ctx, "%s: %s", err->file,
				       err->message);
	}
	return talloc_asprintf(mem_ctx, "%s:%u:%u: %s", err->file, err->line,
			       err->column, err->message);
}
