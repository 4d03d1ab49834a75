/* SPDX-License-Identifier: MIT */
/*
 * The credential watcher (cred_watch.h).
 */
#include "cred_watch.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_cred_files.h"

/* Quiet this long after the last event before looking ... */
#define WATCH_SETTLE_MS 300
/* ... but never wait longer than this after the first one. */
#define WATCH_SETTLE_MAX_MS 3000
/* Symlinks followed along one path (the kernel's limit is 40). */
#define WATCH_MAX_LINKS 40

#define WATCH_EVENTS                                                      \
	(IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_CREATE | IN_DELETE | \
	 IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |    \
	 IN_ONLYDIR)

/* What identifies a file's content without reading it. */
struct watch_stamp {
	int err; /* 0, or why stat() failed */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct timespec ctime;
};

struct watch_file {
	char *path;
	struct watch_stamp stamp; /* as last acted on */
};

struct tsgate_cred_watch {
	struct tevent_context *ev;
	struct tsgate_log *log;
	tsgate_cred_watch_fn fn;
	void *private_data;
	struct watch_file *files;
	size_t num_files;
	uint64_t interval_ms;
	bool use_inotify;
	int ifd; /* -1: none */
	struct tevent_fd *ife;
	size_t num_dirs;
	struct tevent_timer *poll;
	struct tevent_timer *settle;
	struct timeval first_event, last_event;
};

static void watch_stamp(const char *path, struct watch_stamp *s)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	if (stat(path, &st) != 0) {
		s->err = errno;
		return;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->size = st.st_size;
	s->mtime = st.st_mtim;
	s->ctime = st.st_ctim;
}

static bool watch_stamp_equal(const struct watch_stamp *a,
			      const struct watch_stamp *b)
{
	return a->err == b->err && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec &&
	       a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/*
 * inotify
 */

static void watch_inotify_close(struct tsgate_cred_watch *w)
{
	TALLOC_FREE(w->ife);
	if (w->ifd != -1) {
		close(w->ifd);
		w->ifd = -1;
	}
	w->num_dirs = 0;
}

static int watch_destructor(struct tsgate_cred_watch *w)
{
	watch_inotify_close(w);
	return 0;
}

static void watch_dir(struct tsgate_cred_watch *w, const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	if (strlen(path) >= sizeof(dir)) {
		return;
	}
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash == NULL) {
		return;
	}
	if (slash == dir) {
		slash[1] = '\0';
	} else {
		*slash = '\0';
	}
	/*
	 * The same directory again gives the same watch: no harm. A
	 * directory symlink ("..data") is followed to the directory it
	 * names now; the swap itself is seen in the directory holding it.
	 */
	if (inotify_add_watch(w->ifd, dir, WATCH_EVENTS) >= 0) {
		w->num_dirs++;
	}
}

/*
 * The directory of path and of every symlink it leads through: the
 * kubelet swaps "..data" in the directory of the named file; certbot
 * replaces the link in live/ that the named file points at.
 */
static void watch_path(struct tsgate_cred_watch *w, const char *path)
{
	char cur[PATH_MAX];
	char target[PATH_MAX];
	char next[PATH_MAX];
	struct stat st;
	ssize_t len;
	unsigned hops;
	char *slash;

	if (strlen(path) >= sizeof(cur)) {
		return;
	}
	strcpy(cur, path);
	for (hops = 0; hops < WATCH_MAX_LINKS; hops++) {
		watch_dir(w, cur);
		if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode)) {
			break;
		}
		len = readlink(cur, target, sizeof(target) - 1);
		if (len <= 0) {
			break;
		}
		target[len] = '\0';
		if (target[0] == '/') {
			strcpy(next, target);
		} else {
			slash = strrchr(cur, '/');
			if (slash == NULL ||
			    (size_t)(slash - cur) + 1 + (size_t)len >=
				sizeof(next)) {
				break;
			}
			memcpy(next, cur, (size_t)(slash - cur) + 1);
			strcpy(next + (slash - cur) + 1, target);
		}
		strcpy(cur, next);
	}
	/* and where it ends up, through directory symlinks too */
	if (realpath(path, target) != NULL) {
		watch_dir(w, target);
	}
}

static void watch_event(struct tevent_context *ev,
			struct tevent_fd *fde,
			uint16_t flags,
			void *private_data);

/*
 * A fresh inotify instance on the current directories: watches on
 * directories that went (the kubelet's old "..2026_..." one) go with the
 * old instance, new ones are added. Without inotify the poll does it all.
 */
static void watch_inotify_rebuild(struct tsgate_cred_watch *w)
{
	size_t i;

	watch_inotify_close(w);
	if (!w->use_inotify || w->num_files == 0) {
		return;
	}
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd == -1) {
		tsgate_log_msg(w->log, TSGATE_CONFIG_LOG_WARNING, "watch",
			       "inotify: %s; credential files are checked "
			       "every %llu ms only",
			       strerror(errno),
			       (unsigned long long)w->interval_ms);
		w->use_inotify = false;
		return;
	}
	w->ife =
	    tevent_add_fd(w->ev, w, w->ifd, TEVENT_FD_READ, watch_event, w);
	if (w->ife == NULL) {
		watch_inotify_close(w);
		return;
	}
	for (i = 0; i < w->num_files; i++) {
		watch_path(w, w->files[i].path);
	}
}

/*
 * Checking
 */

static void watch_poll_arm(struct tsgate_cred_watch *w);

/* Compare every file with the state last acted on; act on a change. */
static void watch_check(struct tsgate_cred_watch *w)
{
	const char *changed = NULL;
	char *name;
	struct watch_stamp now;
	size_t i;

	for (i = 0; i < w->num_files; i++) {
		watch_stamp(w->files[i].path, &now);
		if (!watch_stamp_equal(&now, &w->files[i].stamp)) {
			/* acted on now: a broken file is not retried */
			w->files[i].stamp = now;
			if (changed == NULL) {
				changed = w->files[i].path;
			}
		}
	}
	if (changed == NULL) {
		return;
	}
	/* the callback may replace w->files: keep the name */
	name = talloc_strdup(w, changed);
	watch_inotify_rebuild(w);
	w->fn(w->private_data, name != NULL ? name : "a file");
	talloc_free(name);
}

static void watch_settled(struct tevent_context *ev,
			  struct tevent_timer *te,
			  struct timeval now,
			  void *private_data)
{
	struct tsgate_cred_watch *w =
	    talloc_get_type_abort(private_data, struct tsgate_cred_watch);
	struct timeval quiet_until =
	    tevent_timeval_add(&w->last_event, 0, WATCH_SETTLE_MS * 1000);
	struct timeval give_up =
	    tevent_timeval_add(&w->first_event, 0, WATCH_SETTLE_MAX_MS * 1000);

	(void)te;
	w->settle = NULL;
	now = tevent_timeval_current();
	if (tevent_timeval_compare(&now, &quiet_until) < 0 &&
	    tevent_timeval_compare(&now, &give_up) < 0) {
		/* still being written: wait for quiet */
		w->settle =
		    tevent_add_timer(ev, w, quiet_until, watch_settled, w);
		if (w->settle != NULL) {
			return;
		}
	}
	watch_check(w);
}

static void watch_event(struct tevent_context *ev,
			struct tevent_fd *fde,
			uint16_t flags,
			void *private_data)
{
	struct tsgate_cred_watch *w =
	    talloc_get_type_abort(private_data, struct tsgate_cred_watch);
	char buf[4096]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	bool gone = false;
	ssize_t n;

	(void)fde;
	(void)flags;
	while ((n = read(w->ifd, buf, sizeof(buf))) > 0) {
		const char *p = buf;

		while (p < buf + n) {
			const struct inotify_event *e =
			    (const struct inotify_event *)(const void *)p;

			if ((e->mask & (IN_IGNORED | IN_Q_OVERFLOW)) != 0) {
				gone = true;
			}
			p += sizeof(*e) + e->len;
		}
	}
	w->last_event = tevent_timeval_current();
	if (w->settle == NULL) {
		w->first_event = w->last_event;
		w->settle =
		    tevent_add_timer(ev, w,
				     tevent_timeval_add(&w->last_event, 0,
							WATCH_SETTLE_MS * 1000),
				     watch_settled, w);
	}
	if (gone) {
		/* a watched directory went: watch the ones there are now */
		watch_inotify_rebuild(w);
	}
}

static void watch_polled(struct tevent_context *ev,
			 struct tevent_timer *te,
			 struct timeval now,
			 void *private_data)
{
	struct tsgate_cred_watch *w =
	    talloc_get_type_abort(private_data, struct tsgate_cred_watch);

	(void)ev;
	(void)te;
	(void)now;
	w->poll = NULL;
	watch_poll_arm(w);
	watch_check(w);
}

static void watch_poll_arm(struct tsgate_cred_watch *w)
{
	TALLOC_FREE(w->poll);
	if (w->num_files == 0) {
		return;
	}
	w->poll = tevent_add_timer(
	    w->ev, w,
	    tevent_timeval_current_ofs(w->interval_ms / 1000,
				       (w->interval_ms % 1000) * 1000),
	    watch_polled, w);
}

/*
 * The list
 */

struct tsgate_cred_watch *tsgate_cred_watch_new(TALLOC_CTX *mem_ctx,
						struct tevent_context *ev,
						struct tsgate_log *log,
						tsgate_cred_watch_fn fn,
						void *private_data)
{
	struct tsgate_cred_watch *w;
	const char *no = getenv("TSGATE_RELOAD_NO_INOTIFY");

	w = talloc_zero(mem_ctx, struct tsgate_cred_watch);
	if (w == NULL) {
		return NULL;
	}
	w->ev = ev;
	w->log = log;
	w->fn = fn;
	w->private_data = private_data;
	w->ifd = -1;
	w->use_inotify = no == NULL || strcmp(no, "1") != 0;
	talloc_set_destructor(w, watch_destructor);
	return w;
}

static const struct watch_stamp *watch_old_stamp(const struct watch_file *v,
						 size_t n,
						 const char *path)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(v[i].path, path) == 0) {
			return &v[i].stamp;
		}
	}
	return NULL;
}

int tsgate_cred_watch_set(struct tsgate_cred_watch *w,
			  const struct tsgate_config *cfg)
{
	struct watch_file *files = NULL;
	const char **paths = NULL;
	size_t n = 0, i;
	int ret = 0;

	if (cfg->reload.watch) {
		ret = tsgate_config_cred_files(w, cfg, &paths, &n);
		files = ret == 0 ? talloc_zero_array(w, struct watch_file, n)
				 : NULL;
		if (files == NULL && n > 0) {
			ret = ENOMEM;
		}
	}
	for (i = 0; ret == 0 && i < n; i++) {
		const struct watch_stamp *old =
		    watch_old_stamp(w->files, w->num_files, paths[i]);

		files[i].path = talloc_strdup(files, paths[i]);
		if (files[i].path == NULL) {
			ret = ENOMEM;
			break;
		}
		if (old != NULL) {
			files[i].stamp = *old;
		} else {
			watch_stamp(paths[i], &files[i].stamp);
		}
	}
	talloc_free(paths);
	if (ret != 0) {
		talloc_free(files);
		files = NULL;
		n = 0;
		tsgate_log_msg(w->log, TSGATE_CONFIG_LOG_ERROR, "watch",
			       "%s; credential files are not watched",
			       strerror(ret));
	}
	talloc_free(w->files);
	w->files = files;
	w->num_files = n;
	w->interval_ms = cfg->reload.interval_ms;
	TALLOC_FREE(w->settle);
	watch_inotify_rebuild(w);
	watch_poll_arm(w);
	if (n > 0) {
		tsgate_log_msg(w->log, TSGATE_CONFIG_LOG_DEBUG, "watch",
			       "%zu credential file(s), %s, checked every "
			       "%llu ms",
			       n,
			       w->ifd != -1 ? "inotify on their directories"
					    : "no inotify",
			       (unsigned long long)w->interval_ms);
	}
	/* a change made while the reload was loading */
	if (ret == 0 && n > 0) {
		struct watch_stamp now;

		for (i = 0; i < n; i++) {
			watch_stamp(files[i].path, &now);
			if (!watch_stamp_equal(&now, &files[i].stamp)) {
				w->last_event = w->first_event =
				    tevent_timeval_current();
				w->settle = tevent_add_timer(
				    w->ev, w,
				    tevent_timeval_current_ofs(
					0, WATCH_SETTLE_MS * 1000),
				    watch_settled, w);
				break;
			}
		}
	}
	return ret;
}
