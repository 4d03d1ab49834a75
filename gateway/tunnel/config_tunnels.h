/* SPDX-License-Identifier: MIT */
/*
 * The config as the tunnels see it: loading with every pass (the walk of
 * gateway/config/ and the credential checks here, which need GnuTLS and
 * krb5), and the tstream_tls parameters of a tls block.
 */
#ifndef TSGATE_CONFIG_TUNNELS_H
#define TSGATE_CONFIG_TUNNELS_H

#include "config.h"

/**
 * @brief Load and validate a config file: the walk, the checks across
 * fields, then the credential checks (config_creds.c). The only loader:
 * --check-config, reload, tests and the fuzzer all come through here, so
 * no caller can skip a pass.
 *
 * @param mem_ctx  Parent of the returned config and errors.
 * @param path     The YAML file.
 * @param flags    TSGATE_CONFIG_* flags.
 * @param pconfig  On success, the new config (a fresh talloc tree).
 * @param perrors  On EINVAL, every problem found in file order (a talloc
 *                 tree); set to NULL otherwise.
 * @return 0 on success, EINVAL when the file has errors (*pconfig is
 *         NULL), ENOMEM.
 */
int tsgate_config_load(TALLOC_CTX *mem_ctx,
		       const char *path,
		       unsigned flags,
		       struct tsgate_config **pconfig,
		       struct tsgate_config_errors **perrors);

/**
 * @brief Like tsgate_config_load() but from a buffer; name is used in
 * error messages and relative paths are taken relative to base_dir (the
 * current directory when NULL).
 */
int tsgate_config_load_buffer(TALLOC_CTX *mem_ctx,
			      const char *name,
			      const char *base_dir,
			      const uint8_t *buf,
			      size_t len,
			      unsigned flags,
			      struct tsgate_config **pconfig,
			      struct tsgate_config_errors **perrors);

/*
 * The second pass on a walked config (config_creds.c): GnuTLS priority
 * strings always; with TSGATE_CONFIG_CHECK_CREDENTIALS also every
 * certificate, key, CA, CRL and keytab loaded as the tunnels will, and
 * each tls block built by the TLS library. Problems go into the load at
 * the positions the walk recorded.
 */
void tsgate_config_check_credentials(struct tsgate_config_load *load);

/*
 * TLS parameters of the tunnel library (tunnels/tstream_tls.h) for a
 * listener's or a route's tls block: what --check-config builds, and what
 * the daemon builds, so both agree. Same returns as
 * tstream_tls_params_server()/tstream_tls_params_client().
 */
struct tstream_tls_params;
struct tsgate_ticket_secret;
/*
 * listener: the listener's name; secret: the daemon's ticket secret (NULL:
 * tickets only from a ticket_keys_file, as --check-config builds them).
 */
int tsgate_config_tls_server_params(TALLOC_CTX *mem_ctx,
				    const struct tsgate_config_tls_server *tls,
				    const char *listener,
				    const struct tsgate_ticket_secret *secret,
				    struct tstream_tls_params **params,
				    char **error);
int tsgate_config_tls_client_params(TALLOC_CTX *mem_ctx,
				    const struct tsgate_config_tls_client *tls,
				    struct tstream_tls_params **params,
				    char **error);

/*
 * The GnuTLS priority string for priority/min_version/max_version: NULL
 * when none is set (the library's default), else priority (or the
 * library's default) with the versions applied.
 */
char *tsgate_config_tls_priority(TALLOC_CTX *mem_ctx,
				 const char *priority,
				 enum tsgate_config_tls_version min,
				 enum tsgate_config_tls_version max);

/*
 * token_lock.c: PKCS#11 tokens are opened by one tsgate process at a
 * time. The supervisor sets the lock up before it forks its workers
 * (0 or an errno); without it, lock and unlock do nothing.
 */
int tsgate_token_lock_setup(void);
void tsgate_token_lock(void);
void tsgate_token_unlock(void);

#endif
