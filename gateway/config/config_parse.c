/* SPDX-License-Identifier: MIT */
/*
 * The config walker: libyaml's document API, the table-driven walk of
 * {key, node kind, handler} (unknown keys are errors), the error list
 * (every problem at the position of the node at fault, in file order),
 * and the loads: a load in progress is kept for the passes after the
 * walk (gateway/tunnel/).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_private.h"

void cfg_add_error(struct cfg_parser *p,
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

void cfg_error_at(struct cfg_parser *p,
		  struct tsgate_config_mark mark,
		  const char *fmt,
		  ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = talloc_vasprintf(p->tmp, fmt, ap);
	va_end(ap);
	cfg_add_error(p, mark.line, mark.column, msg);
	TALLOC_FREE(msg);
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

struct tsgate_config_mark cfg_mark(const yaml_node_t *node)
{
	struct tsgate_config_mark m = {0, 0};

	if (node != NULL) {
		m.line = (unsigned)node->start_mark.line + 1;
		m.column = (unsigned)node->start_mark.column + 1;
	}
	return m;
}

/* node's text and position, for the credential pass (NULL: absent). */
struct tsgate_config_origin cfg_origin(struct cfg_parser *p,
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

bool cfg_visit(struct cfg_parser *p, const yaml_node_t *node)
{
	if (p->too_complex) {
		return false;
	}
	if (++p->visits > CFG_MAX_VISITS) {
		p->too_complex = true;
		p->too_complex_at = cfg_mark(node);
		return false;
	}
	return true;
}

yaml_node_t *cfg_node(struct cfg_parser *p, int id)
{
	return yaml_document_get_node(p->doc, id);
}

const char *cfg_str(const yaml_node_t *node)
{
	return (const char *)node->data.scalar.value;
}

/* A plain scalar that YAML reads as null: "", "~", "null". */
bool cfg_is_null(const yaml_node_t *node)
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

const char *cfg_node_desc(const yaml_node_t *node)
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
bool cfg_check_kind(struct cfg_parser *p,
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
uint32_t cfg_mapping(struct cfg_parser *p,
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

yaml_node_t *cfg_seen(const struct cfg_key *table,
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

bool cfg_present(const struct cfg_key *table,
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
	cfg_validate(p);
	/* Last at its position: the walk stopped there, after the checks of
	 * what it had read. */
	if (p->too_complex) {
		cfg_error_at(p, p->too_complex_at,
			     "the document is too complex (more than %d "
			     "nodes; too many YAML aliases?)",
			     CFG_MAX_VISITS);
	}
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
