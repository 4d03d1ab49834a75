/*
 * Internals shared by the config loader's files (config.c: the YAML walk
 * and schema; config_values.c: value parsers; config_creds.c: credential
 * checks). Not for the rest of the daemon: use config.h.
 */
#ifndef TSGATE_CONFIG_PRIVATE_H
#define TSGATE_CONFIG_PRIVATE_H

#include <stdarg.h>
#include <yaml.h>

#include "config.h"

#ifndef PRINTF_ATTRIBUTE
#define PRINTF_ATTRIBUTE(a, b) __attribute__((format(__printf__, a, b)))
#endif

struct cfg_parser;

/* Record an error at node (NULL: no position). */
void cfg_error(struct cfg_parser *p,
	       const yaml_node_t *node,
	       const char *fmt,
	       ...) PRINTF_ATTRIBUTE(3, 4);

/* The scratch context of the running load (freed when it ends). */
TALLOC_CTX *cfg_tmp(struct cfg_parser *p);

/*
 * Credential checks (TSGATE_CONFIG_CHECK_CREDENTIALS). Each reports its
 * problems with cfg_error() at the node of the file at fault and returns
 * false when there was one. Paths are absolute; messages show the path
 * as written in the file (the node's text); what is the key's name.
 */
bool cfg_check_cert_key(struct cfg_parser *p,
			const char *cert,
			const yaml_node_t *cert_node,
			const char *key,
			const yaml_node_t *key_node);
bool cfg_check_ca(struct cfg_parser *p,
		  const char *what,
		  const char *ca,
		  const yaml_node_t *node);
bool cfg_check_crl(struct cfg_parser *p,
		   const char *crl,
		   const yaml_node_t *node);
bool cfg_check_keytab(struct cfg_parser *p,
		      const char *what,
		      const char *keytab,
		      const yaml_node_t *node,
		      const char *principal,
		      const yaml_node_t *principal_node);
/* A GnuTLS priority string; checked always (cheap, no files). */
bool cfg_check_priority(struct cfg_parser *p,
			const char *priority,
			const yaml_node_t *node);

/* Build the tunnel library's TLS params from a block (config_tunnels.c). */
bool cfg_check_tls_server_params(struct cfg_parser *p,
				 const struct tsgate_config_tls_server *tls,
				 const yaml_node_t *node);
bool cfg_check_tls_client_params(struct cfg_parser *p,
				 const struct tsgate_config_tls_client *tls,
				 const yaml_node_t *node);

#endif
