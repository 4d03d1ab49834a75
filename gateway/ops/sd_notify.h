/* SPDX-License-Identifier: MIT */
/*
 * The systemd readiness protocol (sd_notify(3)), written directly: one
 * AF_UNIX datagram of "KEY=value" lines to the socket named by
 * $NOTIFY_SOCKET (a path, or an abstract name written with a leading
 * '@'). No libsystemd: the protocol is one sendto().
 *
 * The daemon's messages, in the order things happen (docs/operations.md,
 * "Running under systemd"):
 *
 *   READY=1 + STATUS=          every listener bound (and every worker up)
 *   RELOADING=1 + MONOTONIC_USEC=   SIGHUP received, reload starts
 *   READY=1 + STATUS=          the reload is over (applied or refused)
 *   STOPPING=1 + STATUS=       SIGTERM/SIGINT: draining
 */
#ifndef TSGATE_SD_NOTIFY_H
#define TSGATE_SD_NOTIFY_H

#include <talloc.h>

/* talloc.h gives PRINTF_ATTRIBUTE */

struct tsgate_notify;

/**
 * @brief Open the notification socket named by socket_name.
 *
 * @param mem_ctx      Owner (freeing it closes the socket).
 * @param socket_name  The value of $NOTIFY_SOCKET: an absolute path or
 *                     "@abstract"; NULL or "" means not under systemd.
 * @param pnotify      The handle; NULL when socket_name is NULL or "".
 * @return 0, or an errno (EINVAL: a name that is neither; ENAMETOOLONG;
 *         the socket() error).
 */
int tsgate_notify_new(TALLOC_CTX *mem_ctx,
		      const char *socket_name,
		      struct tsgate_notify **pnotify);

/**
 * @brief Send one message (lines "KEY=value", joined by '\n').
 *
 * A NULL handle does nothing and returns 0, so callers need not ask
 * whether they run under systemd.
 *
 * @return 0, or the errno of sendto() (the daemon goes on regardless).
 */
int tsgate_notify(struct tsgate_notify *n, const char *fmt, ...)
    PRINTF_ATTRIBUTE(2, 3);

/** @brief "RELOADING=1\nMONOTONIC_USEC=<now>" (CLOCK_MONOTONIC). */
int tsgate_notify_reloading(struct tsgate_notify *n);

#endif /* TSGATE_SD_NOTIFY_H */
