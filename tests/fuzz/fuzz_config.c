/* SPDX-License-Identifier: MIT */
/*
 * fuzz-config: the YAML config loader on arbitrary bytes.
 *
 * tsgate_config_load_buffer() with TSGATE_CONFIG_NO_RESOLVE (no DNS, so
 * an input always gives the same result). Checked beyond "no crash, no
 * leak": success and errors exclude each other, every error formats,
 * and a loaded config holds what the header promises (at least one
 * listener, each with at least one route, absolute paths).
 */
#include <errno.h>
#include <string.h>

#include "config_tunnels.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Relative paths in the input resolve here; nothing exists below it. */
#define FUZZ_CONFIG_BASE "/nonexistent/tsgate-fuzz"

static void check_addr(const struct tsgate_config_addr *addr)
{
	FUZZ_ASSERT(addr->text != NULL);
	if (addr->kind == TSGATE_CONFIG_ADDR_UNIX) {
		FUZZ_ASSERT(addr->path != NULL && addr->path[0] == '/');
	} else {
		FUZZ_ASSERT(addr->kind == TSGATE_CONFIG_ADDR_TCP);
		FUZZ_ASSERT(addr->ip != NULL);
		FUZZ_ASSERT(addr->num_ips >= 1 && addr->ips[0] == addr->ip);
	}
}

static void check_config(const struct tsgate_config *cfg)
{
	size_t i, j;

	FUZZ_ASSERT(cfg->num_listeners >= 1);
	for (i = 0; i < cfg->num_listeners; i++) {
		const struct tsgate_config_listener *l = &cfg->listeners[i];

		FUZZ_ASSERT(l->name != NULL);
		check_addr(&l->listen);
		FUZZ_ASSERT(l->num_routes >= 1);
		FUZZ_ASSERT((l->accept == TSGATE_CONFIG_ACCEPT_TLS) ==
			    (l->tls != NULL));
		FUZZ_ASSERT((l->accept == TSGATE_CONFIG_ACCEPT_GSSAPI) ==
			    (l->gssapi != NULL));
		for (j = 0; j < l->num_routes; j++) {
			const struct tsgate_config_route *r = &l->routes[j];

			FUZZ_ASSERT(r->name != NULL);
			if (r->exec != NULL) {
				/* exec:/program: no address, an absolute path
				 */
				FUZZ_ASSERT(r->exec[0] == '/');
				FUZZ_ASSERT(r->num_backends == 0);
			} else {
				check_addr(&r->backend);
			}
			FUZZ_ASSERT(tsgate_config_framing_name(r->framing) !=
				    NULL);
			FUZZ_ASSERT(tsgate_config_identity_name(r->identity) !=
				    NULL);
		}
	}
	if (cfg->metrics_listen != NULL) {
		check_addr(cfg->metrics_listen);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tsgate_config *cfg = NULL;
	struct tsgate_config_errors *errors = NULL;
	size_t i;
	int ret;

	FUZZ_ASSERT(mem != NULL);
	ret = tsgate_config_load_buffer(mem, "fuzz.yaml", FUZZ_CONFIG_BASE,
					data, size, TSGATE_CONFIG_NO_RESOLVE,
					&cfg, &errors);
	if (ret == 0) {
		FUZZ_ASSERT(cfg != NULL);
		FUZZ_ASSERT(errors == NULL);
		check_config(cfg);
	} else if (ret == EINVAL) {
		FUZZ_ASSERT(cfg == NULL);
		FUZZ_ASSERT(errors != NULL && errors->num_errors >= 1);
		for (i = 0; i < errors->num_errors; i++) {
			char *s =
			    tsgate_config_error_string(mem, &errors->errors[i]);

			FUZZ_ASSERT(s != NULL);
			FUZZ_ASSERT(errors->errors[i].message != NULL);
			talloc_free(s);
		}
	} else {
		FUZZ_ASSERT(ret == ENOMEM);
	}
	talloc_free(mem);
	return 0;
}
