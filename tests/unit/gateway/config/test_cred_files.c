/* SPDX-License-Identifier: MIT */
/*
 * tsgate_config_cred_files(): every credential file a config names, once,
 * in config order -- the list the daemon's watcher watches.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config_cred_files.h"
#include "config_tunnels.h"
#include "tt.h"

static const char *const cred_names[] = {
    "a.crt", "a.key",  "a.ocsp", "b.crt",     "client-ca.crt", "client.crl",
    "kt",    "up.crt", "up.key", "up-ca.crt", "up.crl",        "client.kt",
};

static char *touch_all(TALLOC_CTX *mem_ctx)
{
	char *dir = tt_mkdtemp(mem_ctx);
	size_t i;

	ck_assert_ptr_nonnull(dir);
	for (i = 0; i < sizeof(cred_names) / sizeof(cred_names[0]); i++) {
		char *p = talloc_asprintf(mem_ctx, "%s/%s", dir, cred_names[i]);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		ck_assert_int_ge(fd, 0);
		close(fd);
	}
	return dir;
}

START_TEST(test_cred_files_every_kind_once)
{
	static const char yaml[] =
	    "listeners:\n"
	    "  - name: t\n"
	    "    listen: \"tcp://127.0.0.1:8443\"\n"
	    "    accept: tls\n"
	    "    tls:\n"
	    "      cert:\n"
	    "        - {cert: a.crt, key: a.key, ocsp_response: a.ocsp}\n"
	    "        - {sni: b.test, cert: b.crt, key: a.key}\n"
	    "      client_ca: client-ca.crt\n"
	    "      crl: client.crl\n"
	    "    routes:\n"
	    "      - backend: \"tcp://127.0.0.1:443\"\n"
	    "        match: {sni: up.test}\n"
	    "        connect: tls\n"
	    "        tls: {ca: up-ca.crt, crl: up.crl, cert: up.crt, key: "
	    "up.key}\n"
	    "      - backend: \"tcp://127.0.0.1:88\"\n"
	    "        connect: gssapi\n"
	    "        gssapi: {target: host@x.test, client_keytab: client.kt}\n"
	    "  - name: g\n"
	    "    listen: \"tcp://127.0.0.1:8444\"\n"
	    "    accept: gssapi\n"
	    "    gssapi: {keytab: kt}\n"
	    "    routes:\n"
	    "      - backend: \"tcp://127.0.0.1:80\"\n";
	static const char *const want[] = {
	    "a.crt",         "a.key",      "a.ocsp",    "b.crt",
	    "client-ca.crt", "client.crl", "up.crt",    "up.key",
	    "up-ca.crt",     "up.crl",     "client.kt", "kt",
	};
	char *dir = touch_all(tt_mem);
	struct tsgate_config *cfg = NULL;
	struct tsgate_config_errors *errs = NULL;
	const char **paths = NULL;
	size_t n = 0, i;
	int ret;

	ret = tsgate_config_load_buffer(tt_mem, "mem.yaml", dir,
					(const uint8_t *)yaml, strlen(yaml),
					TSGATE_CONFIG_NO_RESOLVE, &cfg, &errs);
	if (ret != 0 && errs != NULL) {
		for (i = 0; i < errs->num_errors; i++) {
			fprintf(stderr, "%s\n",
				tsgate_config_error_string(tt_mem,
							   &errs->errors[i]));
		}
	}
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(tsgate_config_cred_files(tt_mem, cfg, &paths, &n), 0);
	ck_assert_uint_eq(n, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < n; i++) {
		ck_assert_str_eq(
		    paths[i], talloc_asprintf(tt_mem, "%s/%s", dir, want[i]));
	}
	talloc_free(paths);
	talloc_free(cfg);
	tt_rmtree(dir);
}
END_TEST

START_TEST(test_cred_files_watch_off_and_plain)
{
	static const char yaml[] = "listeners:\n"
				   "  - name: p\n"
				   "    listen: \"tcp://127.0.0.1:8080\"\n"
				   "    accept: plain\n"
				   "    routes:\n"
				   "      - backend: \"tcp://127.0.0.1:80\"\n";
	struct tsgate_config *cfg = NULL;
	struct tsgate_config_errors *errs = NULL;
	const char **paths = (void *)1;
	size_t n = 1;

	ck_assert_int_eq(
	    tsgate_config_load_buffer(tt_mem, "mem.yaml", "/",
				      (const uint8_t *)yaml, strlen(yaml),
				      TSGATE_CONFIG_NO_RESOLVE, &cfg, &errs),
	    0);
	ck_assert_int_eq(tsgate_config_cred_files(tt_mem, cfg, &paths, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(paths);
	talloc_free(cfg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cred_files");
	TCase *tc = tt_tcase(s, "list", 30);

	tcase_add_test(tc, test_cred_files_every_kind_once);
	tcase_add_test(tc, test_cred_files_watch_off_and_plain);
	return tt_run_suite(s);
}
