/* SPDX-License-Identifier: MIT */
/*
 * Watching the credential files a config names, so that a rotation
 * (the kubelet's "..data" symlink swap, a rename over the file, a write
 * in place) reloads without a SIGHUP. inotify on every directory along
 * each file's path and symlink chain says "look now"; a check of every
 * file's identity (device, inode, size, mtime, ctime) every
 * reload.interval decides when inotify cannot (another filesystem, or
 * TSGATE_RELOAD_NO_INOTIFY=1). A change calls back once things have been
 * quiet for a moment, so a cert and its key written one after the other
 * make one reload.
 */
#ifndef TSGATE_CRED_WATCH_H
#define TSGATE_CRED_WATCH_H

#include <talloc.h>
#include <tevent.h>

#include "config.h"
#include "log.h"

struct tsgate_cred_watch;

/* Called when a watched file changed; path is the first one seen. */
typedef void (*tsgate_cred_watch_fn)(void *private_data, const char *path);

/** @brief A watcher that watches nothing until tsgate_cred_watch_set(). */
struct tsgate_cred_watch *tsgate_cred_watch_new(TALLOC_CTX *mem_ctx,
						struct tevent_context *ev,
						struct tsgate_log *log,
						tsgate_cred_watch_fn fn,
						void *private_data);

/**
 * @brief Watch the files cfg names, as cfg->reload says (nothing when
 * watch is false). A file watched before keeps the state it had then, so
 * a change made while a reload was loading is still seen.
 *
 * @return 0 or ENOMEM (the watcher then watches nothing; logged).
 */
int tsgate_cred_watch_set(struct tsgate_cred_watch *w,
			  const struct tsgate_config *cfg);

#endif
