/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by the config walk's files. Not for the rest of the
 * daemon: use config.h.
 *
 *   config_parse.c     the walker, YAML loading, the error list, the loads
 *   config_scalars.c   generic handlers (strings, files, numbers, enums...)
 *   config_top.c       the top level: log, metrics, limits, user, workers
 *   config_listener.c  listeners[] and their accept blocks
 *   config_route.c     routes[]: match, backend, connect blocks
 *   config_tls.c       the tls blocks (listener and route)
 *   config_gssapi.c    the gssapi blocks (listener and route)
 *   config_validate.c  checks across fields, on the walked structs
 *   config_values.c    value parsers of config.h (durations, addresses...)
 */
#ifndef TSGATE_CONFIG_PRIVATE_H
#define TSGATE_CONFIG_PRIVATE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <yaml.h>

#include "config.h"

#ifndef PRINTF_ATTRIBUTE
#define PRINTF_ATTRIBUTE(a, b) __attribute__((format(__printf__, a, b)))
#endif

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
	/* where the walk stopped: reported after the checks across fields */
	struct tsgate_config_mark too_complex_at;
	bool oom;
	/* private keys and keytabs named, checked once the file is read */
	struct cfg_secret *secrets;
	size_t num_secrets;
	gid_t group_gid; /* of cfg->group */
	/*
	 * Where the walk found what the checks across fields
	 * (config_validate.c) report at; listeners[i] for cfg->listeners[i].
	 */
	struct tsgate_config_mark group_at;
	struct tsgate_config_mark metrics_at;
	struct cfg_listener_marks *listeners;
};

/* A private key or keytab file and what fstat() said of it. */
struct cfg_secret {
	struct tsgate_config_origin at;
	const char *what;
	mode_t mode;
	uid_t uid;
};

/* The keys of routes[].match, in the order of cfg_match_keys. */
enum cfg_match_key {
	CFG_M_SNI = 0,
	CFG_M_ALPN,
	CFG_M_SUBJECT,
	CFG_M_SAN,
	CFG_M_PRINCIPAL,
	CFG_M_COUNT,
};

/* A route as walked; marks are {0, 0} for keys not given (or refused). */
struct cfg_route_marks {
	bool walked; /* a mapping (not an entry refused as a whole) */
	struct tsgate_config_mark match[CFG_M_COUNT];
	struct tsgate_config_origin max_pdu;
};

struct cfg_listener_marks {
	/* accept is one of tls, gssapi, plain (given and valid) */
	bool accept_known;
	struct tsgate_config_mark name; /* when written */
	struct tsgate_config_mark listen;
	struct tsgate_config_mark accept;
	struct tsgate_config_mark allow_plain_public;
	struct cfg_route_marks *routes; /* as many as the listener's routes */
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

#define SEEN(table, seen, name) cfg_seen(table, ARRAY_SIZE(table), seen, name)
#define PRESENT(table, present, name) \
	cfg_present(table, ARRAY_SIZE(table), present, name)

struct cfg_strlist {
	const char **items;
	size_t num;
};

/* Ranges of the numbers in the key tables (config_scalars.c). */
extern const struct cfg_range cfg_workers_range;
extern const struct cfg_range cfg_conn_range;
extern const struct cfg_range cfg_conn_or_off_range;
extern const struct cfg_range cfg_ipv6_prefix_range;
extern const struct cfg_range cfg_positive_ms;
/* k->data of cfg_h_path for keytabs */
extern const char cfg_keytab_marker[];

extern const struct cfg_key cfg_match_keys[CFG_M_COUNT];

/* Record an error at mark (line 0: no position). */
void cfg_error_at(struct cfg_parser *p,
		  struct tsgate_config_mark mark,
		  const char *fmt,
		  ...) PRINTF_ATTRIBUTE(3, 4);

/* Record an error at node (NULL: no position). */
void cfg_error(struct cfg_parser *p,
	       const yaml_node_t *node,
	       const char *fmt,
	       ...) PRINTF_ATTRIBUTE(3, 4);

/* config_parse.c */
void cfg_add_error(struct cfg_parser *p,
		   unsigned line,
		   unsigned col,
		   const char *msg);
struct tsgate_config_mark cfg_mark(const yaml_node_t *node);
struct tsgate_config_origin cfg_origin(struct cfg_parser *p,
				       const yaml_node_t *node);
bool cfg_visit(struct cfg_parser *p, const yaml_node_t *node);
yaml_node_t *cfg_node(struct cfg_parser *p, int id);
const char *cfg_str(const yaml_node_t *node);
bool cfg_is_null(const yaml_node_t *node);
const char *cfg_node_desc(const yaml_node_t *node);
bool cfg_check_kind(struct cfg_parser *p,
		    const char *name,
		    enum cfg_kind kind,
		    const char *what,
		    const yaml_node_t *node);
uint32_t cfg_mapping(struct cfg_parser *p,
		     yaml_node_t *node,
		     const struct cfg_key *table,
		     size_t n,
		     void *obj,
		     const char *ctx,
		     yaml_node_t **seen);
yaml_node_t *cfg_seen(const struct cfg_key *table,
		      size_t n,
		      yaml_node_t **seen,
		      const char *name);
bool cfg_present(const struct cfg_key *table,
		 size_t n,
		 uint32_t present,
		 const char *name);

/* config_scalars.c */
void cfg_h_string(struct cfg_parser *p,
		  const struct cfg_key *k,
		  yaml_node_t *node,
		  void *obj);
void cfg_h_path(struct cfg_parser *p,
		const struct cfg_key *k,
		yaml_node_t *node,
		void *obj);
/* A private key or keytab to judge by the key permission rule. */
void cfg_add_secret_at(struct cfg_parser *p,
		       const char *what,
		       struct tsgate_config_origin at,
		       const struct stat *st);

/* config_backends.c */
extern const struct cfg_enum cfg_balances[];
void cfg_h_backends(struct cfg_parser *p,
		    const struct cfg_key *k,
		    yaml_node_t *node,
		    void *obj);
void cfg_h_keepalive(struct cfg_parser *p,
		     const struct cfg_key *k,
		     yaml_node_t *node,
		     void *obj);
void cfg_keepalive_defaults(struct tsgate_config_keepalive *ka);
void cfg_h_route_idle(struct cfg_parser *p,
		      const struct cfg_key *k,
		      yaml_node_t *node,
		      void *obj);
void cfg_h_health_check(struct cfg_parser *p,
			const struct cfg_key *k,
			yaml_node_t *node,
			void *obj);
void cfg_h_resolvers(struct cfg_parser *p,
		     const struct cfg_key *k,
		     yaml_node_t *node,
		     void *obj);
void cfg_resolve_backends(struct cfg_parser *p);

/* config_pkcs11.c: a file name, or a PKCS#11 URL for 'cert' and 'key' */
void cfg_h_cred(struct cfg_parser *p,
		const struct cfg_key *k,
		yaml_node_t *node,
		void *obj);
void cfg_h_bool(struct cfg_parser *p,
		const struct cfg_key *k,
		yaml_node_t *node,
		void *obj);
void cfg_h_u32(struct cfg_parser *p,
	       const struct cfg_key *k,
	       yaml_node_t *node,
	       void *obj);
void cfg_h_duration(struct cfg_parser *p,
		    const struct cfg_key *k,
		    yaml_node_t *node,
		    void *obj);
void cfg_h_size(struct cfg_parser *p,
		const struct cfg_key *k,
		yaml_node_t *node,
		void *obj);
void cfg_h_enum(struct cfg_parser *p,
		const struct cfg_key *k,
		yaml_node_t *node,
		void *obj);
void cfg_h_address(struct cfg_parser *p,
		   const struct cfg_key *k,
		   yaml_node_t *node,
		   void *obj);
bool cfg_strlist(struct cfg_parser *p,
		 const char *name,
		 yaml_node_t *node,
		 struct cfg_strlist *out);
void cfg_h_alpn(struct cfg_parser *p,
		const struct cfg_key *k,
		yaml_node_t *node,
		void *obj);

/* config_top.c */
void cfg_defaults(struct tsgate_config *cfg);
void cfg_walk(struct cfg_parser *p, yaml_document_t *doc);

/* config_tls.c */
struct tsgate_config_tls_server *cfg_tls_server(struct cfg_parser *p,
						yaml_node_t *node);
struct tsgate_config_tls_client *cfg_tls_client(struct cfg_parser *p,
						yaml_node_t *node);

/* config_gssapi.c */
struct tsgate_config_gssapi_server *cfg_gssapi_server(struct cfg_parser *p,
						      yaml_node_t *node);
struct tsgate_config_gssapi_client *cfg_gssapi_client(struct cfg_parser *p,
						      yaml_node_t *node);

/* config_route.c */
void cfg_route(struct cfg_parser *p,
	       yaml_node_t *node,
	       struct tsgate_config_listener *l,
	       struct cfg_listener_marks *lm,
	       size_t idx);

/* config_listener.c */
void cfg_h_listeners(struct cfg_parser *p,
		     const struct cfg_key *k,
		     yaml_node_t *node,
		     void *obj);

/* config_validate.c */
void cfg_validate(struct cfg_parser *p);

#endif
