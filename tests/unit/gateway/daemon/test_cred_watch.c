/* SPDX-License-Identifier: MIT */
/*
 * The credential watcher (gateway/daemon/cred_watch.c) on real files:
 * the kubelet's "..data" symlink swap, a rename over the file, a write in
 * place, changes that settle into one call, the fallback check without
 * inotify, a change made while a reload was loading, watch: false.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cred_watch.h"
#include "log.h"
#include "tt.h"

struct calls {
	unsigned n;
	char *last;
};

static void on_change(void *private_data, const char *path)
{
	struct calls *c = private_data;

	c->n++;
	talloc_free(c->last);
	c->last = talloc_strdup(tt_mem, path);
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
}

/* A config naming cert and key (the watcher reads nothing else). */
static struct tsgate_config *cfg_for(const char *cert,
				     const char *key,
				     uint64_t interval_ms)
{
	struct tsgate_config *cfg = talloc_zero(tt_mem, struct tsgate_config);
	struct tsgate_config_listener *l;

	l = talloc_zero(cfg, struct tsgate_config_listener);
	l->accept = TSGATE_CONFIG_ACCEPT_TLS;
	l->tls = talloc_zero(cfg, struct tsgate_config_tls_server);
	l->tls->certs = talloc_zero(cfg, struct tsgate_config_tls_cert);
	l->tls->certs[0].cert = talloc_strdup(cfg, cert);
	l->tls->certs[0].key = talloc_strdup(cfg, key);
	l->tls->num_certs = 1;
	cfg->listeners = l;
	cfg->num_listeners = 1;
	cfg->reload.watch = true;
	cfg->reload.interval_ms = interval_ms;
	return cfg;
}

struct fixture {
	char *dir;
	char *cert, *key;
	struct tsgate_log *log;
	struct tsgate_cred_watch *w;
	struct calls calls;
};

static void fixture_new(struct fixture *f, bool inotify)
{
	memset(f, 0, sizeof(*f));
	f->dir = tt_mkdtemp(tt_mem);
	ck_assert_ptr_nonnull(f->dir);
	f->cert = talloc_asprintf(tt_mem, "%s/tls.crt", f->dir);
	f->key = talloc_asprintf(tt_mem, "%s/tls.key", f->dir);
	f->log = tsgate_log_new(tt_mem, TSGATE_CONFIG_LOG_WARNING,
				TSGATE_CONFIG_LOG_TEXT);
	if (inotify) {
		unsetenv("TSGATE_RELOAD_NO_INOTIFY");
	} else {
		setenv("TSGATE_RELOAD_NO_INOTIFY", "1", 1);
	}
	f->w =
	    tsgate_cred_watch_new(tt_mem, tt_ev, f->log, on_change, &f->calls);
	ck_assert_ptr_nonnull(f->w);
}

static void fixture_free(struct fixture *f)
{
	TALLOC_FREE(f->w);
	tt_rmtree(f->dir);
	talloc_free(f->calls.last);
	unsetenv("TSGATE_RELOAD_NO_INOTIFY");
}

/* The kubelet's AtomicWriter: new dir, "..data_tmp" renamed over "..data". */
static void kubelet_write(const char *dir,
			  const char *stamp,
			  const char *old_stamp,
			  const char *content)
{
	char *p = talloc_asprintf(tt_mem, "%s/%s", dir, stamp);
	char *tmp = talloc_asprintf(tt_mem, "%s/..data_tmp", dir);
	char *data = talloc_asprintf(tt_mem, "%s/..data", dir);

	ck_assert_int_eq(mkdir(p, 0700), 0);
	write_file(talloc_asprintf(tt_mem, "%s/tls.crt", p), content);
	write_file(talloc_asprintf(tt_mem, "%s/tls.key", p), content);
	ck_assert_int_eq(symlink(stamp, tmp), 0);
	ck_assert_int_eq(rename(tmp, data), 0);
	if (old_stamp != NULL) {
		char *old = talloc_asprintf(tt_mem, "%s/%s", dir, old_stamp);

		unlink(talloc_asprintf(tt_mem, "%s/tls.crt", old));
		unlink(talloc_asprintf(tt_mem, "%s/tls.key", old));
		ck_assert_int_eq(rmdir(old), 0);
	}
}

START_TEST(test_kubelet_swap)
{
	struct fixture f;

	fixture_new(&f, true);
	kubelet_write(f.dir, "..2026_12_06_01", NULL, "v1");
	ck_assert_int_eq(symlink("..data/tls.crt", f.cert), 0);
	ck_assert_int_eq(symlink("..data/tls.key", f.key), 0);
	ck_assert_int_eq(
	    tsgate_cred_watch_set(f.w, cfg_for(f.cert, f.key, 3600000)), 0);

	kubelet_write(f.dir, "..2026_12_06_02", "..2026_12_06_01", "v2");
	tt_wait_for(f.calls.n == 1, 10000);
	ck_assert_str_eq(f.calls.last, f.cert);
	/* the next swap too: the old directory's watch went with it */
	kubelet_write(f.dir, "..2026_12_06_03", "..2026_12_06_02", "v3");
	tt_wait_for(f.calls.n == 2, 10000);
	fixture_free(&f);
}
END_TEST

START_TEST(test_rename_and_in_place)
{
	struct fixture f;
	char *tmp;

	fixture_new(&f, true);
	write_file(f.cert, "c1");
	write_file(f.key, "k1");
	ck_assert_int_eq(
	    tsgate_cred_watch_set(f.w, cfg_for(f.cert, f.key, 3600000)), 0);
	tmp = talloc_asprintf(tt_mem, "%s/.tls.key.tmp", f.dir);
	write_file(tmp, "k2");
	ck_assert_int_eq(rename(tmp, f.key), 0);
	tt_wait_for(f.calls.n == 1, 10000);
	ck_assert_str_eq(f.calls.last, f.key);

	write_file(f.cert, "c2 longer");
	tt_wait_for(f.calls.n == 2, 10000);
	ck_assert_str_eq(f.calls.last, f.cert);
	fixture_free(&f);
}
END_TEST

START_TEST(test_settles_into_one_call)
{
	struct fixture f;

	fixture_new(&f, true);
	write_file(f.cert, "c1");
	write_file(f.key, "k1");
	ck_assert_int_eq(
	    tsgate_cred_watch_set(f.w, cfg_for(f.cert, f.key, 3600000)), 0);
	/* a certificate and its key, one after the other */
	write_file(f.cert, "c2 longer");
	write_file(f.key, "k2 longer");
	tt_wait_for(f.calls.n == 1, 10000);
	ck_assert_str_eq(f.calls.last, f.cert);
	/* neither is seen again, nor is an unrelated file's change */
	write_file(talloc_asprintf(tt_mem, "%s/unrelated", f.dir), "x");
	tt_run_for(tt_ev, 1000);
	ck_assert_uint_eq(f.calls.n, 1);
	fixture_free(&f);
}
END_TEST

START_TEST(test_poll_without_inotify)
{
	struct fixture f;

	fixture_new(&f, false);
	write_file(f.cert, "c1");
	write_file(f.key, "k1");
	ck_assert_int_eq(
	    tsgate_cred_watch_set(f.w, cfg_for(f.cert, f.key, 100)), 0);
	tt_run_for(tt_ev, 300);
	ck_assert_uint_eq(f.calls.n, 0);
	write_file(f.cert, "c2 longer");
	tt_wait_for(f.calls.n == 1, 10000);
	/* deleted: a change too (the reload then says what is missing) */
	ck_assert_int_eq(unlink(f.key), 0);
	tt_wait_for(f.calls.n == 2, 10000);
	ck_assert_str_eq(f.calls.last, f.key);
	fixture_free(&f);
}
END_TEST

/* A change between the check and the end of the reload is not lost. */
START_TEST(test_change_during_reload)
{
	struct fixture f;
	struct tsgate_config *cfg;

	fixture_new(&f, false);
	write_file(f.cert, "c1");
	write_file(f.key, "k1");
	cfg = cfg_for(f.cert, f.key, 3600000);
	ck_assert_int_eq(tsgate_cred_watch_set(f.w, cfg), 0);
	write_file(f.cert, "c2 longer"); /* while "loading" */
	ck_assert_int_eq(tsgate_cred_watch_set(f.w, cfg), 0);
	tt_wait_for(f.calls.n == 1, 10000);
	fixture_free(&f);
}
END_TEST

START_TEST(test_watch_false)
{
	struct fixture f;
	struct tsgate_config *cfg;

	fixture_new(&f, true);
	write_file(f.cert, "c1");
	write_file(f.key, "k1");
	cfg = cfg_for(f.cert, f.key, 100);
	cfg->reload.watch = false;
	ck_assert_int_eq(tsgate_cred_watch_set(f.w, cfg), 0);
	write_file(f.cert, "c2 longer");
	tt_run_for(tt_ev, 600);
	ck_assert_uint_eq(f.calls.n, 0);
	fixture_free(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cred_watch");
	TCase *tc = tt_tcase(s, "watch", 60);

	tcase_add_test(tc, test_kubelet_swap);
	tcase_add_test(tc, test_rename_and_in_place);
	tcase_add_test(tc, test_settles_into_one_call);
	tcase_add_test(tc, test_poll_without_inotify);
	tcase_add_test(tc, test_change_during_reload);
	tcase_add_test(tc, test_watch_false);
	return tt_run_suite(s);
}
