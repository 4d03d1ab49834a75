/* SPDX-License-Identifier: MIT */
/*
 * The tsgate daemon: listeners, per-connection data path and the run loop.
 *
 * main() loads the configuration and calls tsgate_daemon_run(); everything
 * the daemon needs lives in one struct tsgate_daemon made there (no global
 * state), owned by the mem_ctx given.
 */
#ifndef TSGATE_DAEMON_H
#define TSGATE_DAEMON_H

#include <talloc.h>
#include <tevent.h>

struct tsgate_config;
struct tsgate_daemon;

/**
 * @brief Run the daemon in the foreground until SIGTERM/SIGINT.
 *
 * Binds every listener of cfg, then serves connections on one tevent
 * loop. On SIGTERM/SIGINT it stops accepting, lets live connections finish
 * for limits.shutdown_grace, then returns.
 *
 * @param mem_ctx      Owner of everything the daemon allocates.
 * @param config_path  The file cfg was read from (for reload and logs).
 * @param cfg          The loaded configuration; the daemon takes a talloc
 *                     reference to it.
 * @return The process exit code: 0 after a clean stop, 1 when start-up
 *         failed (e.g. a listener could not be bound; the reason is logged).
 */
int tsgate_daemon_run(TALLOC_CTX *mem_ctx,
		      const char *config_path,
		      struct tsgate_config *cfg);

#endif /* TSGATE_DAEMON_H */
