/* SPDX-License-Identifier: MIT */
/*
 * Dropping root once the listening sockets are bound (user: in the
 * configuration).
 */
#include "daemon_private.h"

#include <errno.h>
#include <grp.h>
#include <string.h>
#include <unistd.h>

int tsgate_privdrop(struct tsgate_log *log, const struct tsgate_config *cfg)
{
	if (cfg->user == NULL) {
		return 0;
	}
	if (geteuid() != 0) {
		if (geteuid() == cfg->uid) {
			return 0;
		}
		tsgate_log_msg(log, TSGATE_CONFIG_LOG_ERROR, "start",
			       "cannot become user %s: not running as root",
			       cfg->user);
		return EPERM;
	}
	/* the groups first: after setuid() we could no longer change them */
	if (setgroups(0, NULL) != 0 || setgid(cfg->gid) != 0 ||
	    setuid(cfg->uid) != 0) {
		int err = errno;

		tsgate_log_msg(log, TSGATE_CONFIG_LOG_ERROR, "start",
			       "cannot become user %s: %s", cfg->user,
			       strerror(err));
		return err;
	}
	if (setuid(0) == 0) {
		tsgate_log_msg(log, TSGATE_CONFIG_LOG_ERROR, "start",
			       "could regain root after dropping it");
		return EPERM;
	}
	tsgate_log_msg(log, TSGATE_CONFIG_LOG_INFO, "start",
		       "running as user %s (uid %u, gid %u)", cfg->user,
		       (unsigned)cfg->uid, (unsigned)cfg->gid);
	return 0;
}
