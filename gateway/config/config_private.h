/*
 * Internals shared by the config loader's files (config.c: the YAML walk
 * and schema; config_values.c: value parsers). Not for the rest of the
 * daemon: use config.h.
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

#endif
