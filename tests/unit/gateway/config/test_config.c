/* SPDX-License-Identifier: MIT */
/*
 * tsgate config loader: value parsers, every fixture under
 * tests/data/config (broken ones against their .expect files, good ones
 * against the values they should produce), credential checks with real
 * certificates and keytabs made here with GnuTLS and MIT krb5, and the
 * loader's reload contract.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <krb5.h>

#include "config_tunnels.h"
#include "tt.h"

#define FIXTURES "/tests/data/config"

static const char *srcdir(void)
{
	const char *s = getenv("TSGATE_SRCDIR");

	return s != NULL ? s : ".";
}

static char *fixture_dir(TALLOC_CTX *mem_ctx, const char *sub)
{
	return talloc_asprintf(mem_ctx, "%s" FIXTURES "/%s", srcdir(), sub);
}

/* Sorted names of dir's files ending in suffix (NULL-terminated). */
static char **list_files(TALLOC_CTX *mem_ctx,
			 const char *dir,
			 const char *suffix,
			 size_t *count)
{
	char **names = talloc_array(mem_ctx, char *, 1);
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0, i, j;

	if (d == NULL) {
		/* Also called from main(), outside any test: no ck_assert. */
		fprintf(stderr, "cannot open %s: %s\n", dir, strerror(errno));
		*count = 0;
		names[0] = NULL;
		return names;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name), sl = strlen(suffix);

		if (len <= sl || strcmp(de->d_name + len - sl, suffix) != 0) {
			continue;
		}
		names = talloc_realloc(mem_ctx, names, char *, n + 2);
		names[n++] = talloc_strdup(names, de->d_name);
	}
	closedir(d);
	names[n] = NULL;
	for (i = 1; i < n; i++) {
		for (j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char *t = names[j];

			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	}
	*count = n;
	return names;
}

static char *read_text(TALLOC_CTX *mem_ctx, const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = talloc_strdup(mem_ctx, "");
	char buf[4096];
	size_t n;

	ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		s = talloc_strndup_append_buffer(s, buf, n);
	}
	fclose(f);
	return s;
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_msg(fd != -1, "cannot create %s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static bool errors_match(TALLOC_CTX *mem_ctx,
			 const char *dir,
			 const struct tsgate_config_errors *errs,
			 const char *expect)
{
	char *copy = talloc_strdup(mem_ctx, expect);
	char *line, *save = NULL;
	size_t i = 0;

	for (line = strtok_r(copy, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save), i++) {
		char *want = talloc_asprintf(mem_ctx, "%s/%s", dir, line);

		if (i >= errs->num_errors ||
		    strcmp(
			tsgate_config_error_string(mem_ctx, &errs->errors[i]),
			want) != 0) {
			return false;
		}
	}
	return i == errs->num_errors;
}

/*
 * Load dir/name and compare every error with dir/<name>.expect, whose
 * lines are what `tsgate --check-config --config NAME` prints when run in
 * dir (without the final count line).
 */
static void check_expect(const char *dir, const char *name)
{
	TALLOC_CTX *tmp = talloc_new(tt_mem);
	char *path = talloc_asprintf(tmp, "%s/%s", dir, name);
	char *expect_path = talloc_asprintf(tmp, "%s/%.*s.expect", dir,
					    (int)(strlen(name) - 5), name);
	char *expect = read_text(tmp, expect_path);
	struct tsgate_config *cfg = NULL;
	struct tsgate_config_errors *errs = NULL;
	char *line, *save = NULL;
	size_t i = 0;
	int ret;

	ret = tsgate_config_load(tmp, path, TSGATE_CONFIG_CHECK_CREDENTIALS,
				 &cfg, &errs);
	ck_assert_msg(ret == EINVAL, "%s: expected EINVAL, got %d", name, ret);
	ck_assert_ptr_null(cfg);
	ck_assert_ptr_nonnull(errs);
	if (!errors_match(tmp, dir, errs, expect)) {
		/* Show the whole list: one assert shows one line only. */
		fprintf(stderr, "%s: errors differ from %s; got:\n", name,
			expect_path);
		for (i = 0; i < errs->num_errors; i++) {
			fprintf(
			    stderr, "%s\n",
			    tsgate_config_error_string(tmp, &errs->errors[i]));
		}
	}
	i = 0;
	for (line = strtok_r(expect, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save), i++) {
		char *want = talloc_asprintf(tmp, "%s/%s", dir, line);
		char *got;

		ck_assert_msg(i < errs->num_errors,
			      "%s: missing error #%zu: %s", name, i + 1, line);
		got = tsgate_config_error_string(tmp, &errs->errors[i]);
		ck_assert_str_eq(got, want);
	}
	if (i < errs->num_errors) {
		ck_abort_msg("%s: unexpected error #%zu: %s", name, i + 1,
			     tsgate_config_error_string(tmp, &errs->errors[i]));
	}
	ck_assert_msg(i > 0, "%s: empty .expect file", name);
	talloc_free(tmp);
}

/* Value parsers */

START_TEST(test_duration)
{
	static const struct {
		const char *s;
		uint64_t ms;
	} good[] = {
	    {"0", 0},       {"10", 10000},           {"250ms", 250},
	    {"10s", 10000}, {"5m", 300000},          {"2h", 7200000},
	    {"0ms", 0},     {"720h", 2592000000ULL},
	};
	static const char *bad[] = {
	    "",     "s",     "-1s", "1.5s", "10 s",
	    "10S",  "10sec", "1d",  "721h", "99999999999999999999999",
	    "0x10",
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t ms = 12345;
		const char *err;

		err = tsgate_config_parse_duration(tt_mem, good[i].s, &ms);
		ck_assert_msg(err == NULL, "%s: %s", good[i].s, err);
		ck_assert_uint_eq(ms, good[i].ms);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t ms = 12345;

		ck_assert_msg(
		    tsgate_config_parse_duration(tt_mem, bad[i], &ms) != NULL,
		    "'%s' was accepted", bad[i]);
		ck_assert_uint_eq(ms, 12345);
	}
	ck_assert_str_eq(
	    tsgate_config_parse_duration(tt_mem, "10x", &(uint64_t){0}),
	    "unknown unit 'x' in duration '10x' (use ms, s, m or h)");
}
END_TEST

START_TEST(test_size)
{
	static const struct {
		const char *s;
		uint64_t bytes;
	} good[] = {
	    {"0", 0},
	    {"512", 512},
	    {"512B", 512},
	    {"64KiB", 65536},
	    {"1MiB", 1048576},
	    {"1GiB", 1073741824},
	    {"1024MiB", 1073741824},
	};
	static const char *bad[] = {
	    "",
	    "KiB",
	    "1KB",
	    "1MB",
	    "1k",
	    "1 MiB",
	    "-1",
	    "2GiB",
	    "1025MiB",
	    "1.5MiB",
	    "18446744073709551616",
	};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t v = 7;
		const char *err =
		    tsgate_config_parse_size(tt_mem, good[i].s, &v);

		ck_assert_msg(err == NULL, "%s: %s", good[i].s, err);
		ck_assert_uint_eq(v, good[i].bytes);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 7;

		ck_assert_msg(tsgate_config_parse_size(tt_mem, bad[i], &v) !=
				  NULL,
			      "'%s' was accepted", bad[i]);
		ck_assert_uint_eq(v, 7);
	}
}
END_TEST

START_TEST(test_address_tcp)
{
	struct tsgate_config_addr a;
	const char *err;

	err = tsgate_config_parse_address(tt_mem, "tcp://127.0.0.1:8443", NULL,
					  0, &a);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(a.kind, TSGATE_CONFIG_ADDR_TCP);
	ck_assert_str_eq(a.host, "127.0.0.1");
	ck_assert_str_eq(a.ip, "127.0.0.1");
	ck_assert_uint_eq(a.num_ips, 1);
	ck_assert_uint_eq(a.port, 8443);
	ck_assert_ptr_null(a.path);
	ck_assert_str_eq(a.text, "tcp://127.0.0.1:8443");

	/* IPv6 in brackets, canonicalised */
	err = tsgate_config_parse_address(tt_mem, "tcp://[0:0::1]:1", NULL,
					  TSGATE_CONFIG_NO_RESOLVE, &a);
	ck_assert_ptr_null(err);
	ck_assert_str_eq(a.host, "0:0::1");
	ck_assert_str_eq(a.ip, "::1");
	ck_assert_uint_eq(a.port, 1);
	err = tsgate_config_parse_address(tt_mem, "tcp://[::]:65535", NULL, 0,
					  &a);
	ck_assert_ptr_null(err);
	ck_assert_str_eq(a.ip, "::");
	ck_assert_uint_eq(a.port, 65535);

	/* localhost comes from /etc/hosts, never from DNS */
	err = tsgate_config_parse_address(tt_mem, "tcp://localhost:80", NULL, 0,
					  &a);
	ck_assert_ptr_null(err);
	ck_assert_str_eq(a.host, "localhost");
	ck_assert_uint_ge(a.num_ips, 1);
	ck_assert_ptr_eq(a.ip, a.ips[0]);
	ck_assert_msg(strcmp(a.ip, "127.0.0.1") == 0 ||
			  strcmp(a.ip, "::1") == 0,
		      "localhost is %s", a.ip);

	err = tsgate_config_parse_address(tt_mem, "tcp://localhost:80", NULL,
					  TSGATE_CONFIG_NO_RESOLVE, &a);
	ck_assert_str_eq(err, "host name 'localhost' not allowed (name "
			      "resolution is off)");
}
END_TEST

START_TEST(test_address_errors)
{
	static const struct {
		const char *s;
		const char *err;
	} cases[] = {
	    {"tcp://127.0.0.1:99999", "port 99999 is out of range (1-65535)"},
	    {"tcp://127.0.0.1:0", "port 0 is out of range (1-65535)"},
	    {"tcp://127.0.0.1:", "missing port"},
	    {"tcp://127.0.0.1", "missing ':PORT' (use tcp://HOST:PORT)"},
	    {"tcp://:80", "missing host"},
	    {"tcp://::1:80", "an IPv6 address must be in brackets, e.g. "
			     "tcp://[::1]:8443"},
	    {"tcp://[::1]80", "missing ':PORT' (use tcp://[IPv6]:PORT)"},
	    {"tcp://[::1:80", "missing ']' after the IPv6 address"},
	    {"tcp://[127.0.0.1]:80",
	     "'[127.0.0.1]': only IPv6 addresses go in brackets"},
	    {"tcp://[fe80::zz]:80", "'fe80::zz' is not an IPv6 address"},
	    {"tcp://1.2.3.256:80", "'1.2.3.256' is not an IPv4 address"},
	    {"tcp://a b:80", "'a b' is not a valid host name"},
	    {"tcp://127.0.0.1:8o", "port '8o' is not a number"},
	    {"udp://127.0.0.1:53", "'udp://127.0.0.1:53' is not an address "
				   "(use tcp://HOST:PORT or unix:/path)"},
	    {"127.0.0.1:80", "'127.0.0.1:80' is not an address (use "
			     "tcp://HOST:PORT or unix:/path)"},
	    {"unix:", "missing socket path"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tsgate_config_addr a;
		const char *err;

		err = tsgate_config_parse_address(tt_mem, cases[i].s, "/base",
						  TSGATE_CONFIG_NO_RESOLVE, &a);
		ck_assert_msg(err != NULL, "'%s' was accepted", cases[i].s);
		ck_assert_str_eq(err, cases[i].err);
	}
}
END_TEST

START_TEST(test_address_unix)
{
	struct tsgate_config_addr a;
	char longp[200];
	const char *err;

	err = tsgate_config_parse_address(tt_mem, "unix:/run/a.sock", "/etc", 0,
					  &a);
	ck_assert_ptr_null(err);
	ck_assert_int_eq(a.kind, TSGATE_CONFIG_ADDR_UNIX);
	ck_assert_str_eq(a.path, "/run/a.sock");
	ck_assert_ptr_null(a.host);
	ck_assert_ptr_null(a.ip);

	/* relative paths are relative to the config file's directory */
	err = tsgate_config_parse_address(tt_mem, "unix:run/a.sock",
					  "/etc/tsgate", 0, &a);
	ck_assert_ptr_null(err);
	ck_assert_str_eq(a.path, "/etc/tsgate/run/a.sock");
	err = tsgate_config_parse_address(tt_mem, "unix:./a.sock",
					  "/etc/tsgate", 0, &a);
	ck_assert_ptr_null(err);
	ck_assert_str_eq(a.path, "/etc/tsgate/a.sock");
	err = tsgate_config_parse_address(tt_mem, "unix:///run/b.sock", "/etc",
					  0, &a);
	ck_assert_ptr_null(err);
	ck_assert_str_eq(a.path, "/run/b.sock");

	/* sun_path holds 107 bytes and a NUL */
	memset(longp, 'x', sizeof(longp));
	memcpy(longp, "unix:/", 6);
	longp[5 + 107] = '\0';
	err = tsgate_config_parse_address(tt_mem, longp, "/", 0, &a);
	ck_assert_ptr_null(err);
	ck_assert_uint_eq(strlen(a.path), 107);
	longp[5 + 107] = 'x';
	longp[5 + 108] = '\0';
	err = tsgate_config_parse_address(tt_mem, longp, "/", 0, &a);
	ck_assert_str_eq(err, "unix socket path is too long (108 bytes, at "
			      "most 107)");
}
END_TEST

START_TEST(test_wildcard)
{
	ck_assert(tsgate_config_wildcard_match("*", "", false));
	ck_assert(tsgate_config_wildcard_match("*", "anything", false));
	ck_assert(tsgate_config_wildcard_match("*.example.com",
					       "a.b.example.com", false));
	ck_assert(!tsgate_config_wildcard_match("*.example.com", "example.com",
						false));
	ck_assert(tsgate_config_wildcard_match("*@EXAMPLE.COM",
					       "alice@EXAMPLE.COM", false));
	ck_assert(!tsgate_config_wildcard_match(
	    "*@EXAMPLE.COM", "alice@EXAMPLE.COM.evil", false));
	ck_assert(!tsgate_config_wildcard_match("*@EXAMPLE.COM",
						"alice@example.com", false));
	ck_assert(tsgate_config_wildcard_match("*@EXAMPLE.COM",
					       "alice@example.com", true));
	ck_assert(tsgate_config_wildcard_match("a*b*c", "aXbYbZc", false));
	ck_assert(!tsgate_config_wildcard_match("a*b*c", "aXbYbZ", false));
	ck_assert(tsgate_config_wildcard_match("exact", "exact", false));
	ck_assert(!tsgate_config_wildcard_match("exact", "exactly", false));
	ck_assert(!tsgate_config_wildcard_match("", "x", false));
	ck_assert(tsgate_config_wildcard_match("**", "x", false));
}
END_TEST

/* Broken fixtures: one loop test per file, in name order. */

static char **bad_fixtures;
static size_t num_bad_fixtures;

START_TEST(test_bad_fixture)
{
	char *dir = fixture_dir(tt_mem, "bad");

	check_expect(dir, bad_fixtures[_i]);
}
END_TEST

/* Good fixtures */

static struct tsgate_config *load_ok(const char *path, unsigned flags)
{
	struct tsgate_config *cfg = NULL;
	struct tsgate_config_errors *errs = NULL;
	int ret;
	size_t i;

	ret = tsgate_config_load(tt_mem, path, flags, &cfg, &errs);
	if (ret == EINVAL) {
		for (i = 0; i < errs->num_errors; i++) {
			fprintf(
			    stderr, "%s\n",
			    tsgate_config_error_string(errs, &errs->errors[i]));
		}
	}
	ck_assert_msg(ret == 0, "%s: load failed (%d)", path, ret);
	ck_assert_ptr_null(errs);
	ck_assert_ptr_nonnull(cfg);
	return cfg;
}

START_TEST(test_good_minimal)
{
	char *path = talloc_asprintf(tt_mem, "%s/minimal.yaml",
				     fixture_dir(tt_mem, "good"));
	struct tsgate_config *cfg = load_ok(path, 0);
	struct tsgate_config_listener *l;
	struct tsgate_config_route *r;

	/* defaults */
	ck_assert_str_eq(cfg->path, path);
	ck_assert_int_eq(cfg->log.level, TSGATE_CONFIG_LOG_INFO);
	ck_assert_int_eq(cfg->log.format, TSGATE_CONFIG_LOG_TEXT);
	ck_assert_uint_eq(cfg->workers, 1);
	ck_assert(cfg->reload.watch);
	ck_assert_uint_eq(cfg->reload.interval_ms, 30000);
	ck_assert_ptr_null(cfg->user);
	ck_assert_ptr_null(cfg->metrics_listen);
	ck_assert_uint_eq(cfg->limits.max_connections, 10000);
	ck_assert_uint_eq(cfg->limits.max_connections_per_source, 0);
	ck_assert_uint_eq(cfg->limits.per_source_ipv6_prefix, 64);
	ck_assert_uint_eq(cfg->limits.handshake_timeout_ms, 10000);
	ck_assert_uint_eq(cfg->limits.idle_timeout_ms, 300000);
	ck_assert_uint_eq(cfg->limits.shutdown_grace_ms, 30000);
	ck_assert_uint_eq(cfg->limits.connect_timeout_ms, 10000);

	ck_assert_uint_eq(cfg->num_listeners, 1);
	l = &cfg->listeners[0];
	ck_assert_str_eq(l->name, "plain");
	ck_assert_int_eq(l->listen.kind, TSGATE_CONFIG_ADDR_TCP);
	ck_assert_str_eq(l->listen.ip, "127.0.0.1");
	ck_assert_uint_eq(l->listen.port, 7000);
	ck_assert_uint_eq(l->listen.mark.line, 5);
	ck_assert_uint_eq(l->listen.mark.column, 13);
	ck_assert_int_eq(l->accept, TSGATE_CONFIG_ACCEPT_PLAIN);
	ck_assert_ptr_null(l->tls);
	ck_assert_ptr_null(l->gssapi);
	ck_assert_uint_eq(l->max_connections, 0);
	ck_assert_uint_eq(l->num_routes, 1);
	r = &l->routes[0];
	ck_assert_str_eq(r->name, "route-1");
	ck_assert(!r->match.has_match);
	ck_assert_int_eq(r->backend.kind, TSGATE_CONFIG_ADDR_UNIX);
	ck_assert_str_eq(r->backend.path, "/run/app.sock");
	ck_assert_int_eq(r->connect, TSGATE_CONFIG_CONNECT_PLAIN);
	ck_assert_int_eq(r->framing, TSGATE_CONFIG_FRAMING_RAW);
	ck_assert_uint_eq(r->max_pdu, 1024 * 1024);
	ck_assert_int_eq(r->identity, TSGATE_CONFIG_IDENTITY_NONE);
	ck_assert_ptr_null(r->tls);
	ck_assert_ptr_null(r->gssapi);
	ck_assert_uint_eq(r->mark.line, 8);
}
END_TEST

START_TEST(test_good_everything)
{
	char *dir = fixture_dir(tt_mem, "good");
	char *path = talloc_asprintf(tt_mem, "%s/everything.yaml", dir);
	struct tsgate_config *cfg = load_ok(path, 0);
	struct tsgate_config_listener *l;
	struct tsgate_config_route *r;

	ck_assert_int_eq(cfg->log.level, TSGATE_CONFIG_LOG_DEBUG);
	ck_assert_int_eq(cfg->log.format, TSGATE_CONFIG_LOG_JSON);
	ck_assert_uint_eq(cfg->workers, 4);
	ck_assert(cfg->allow_insecure_key_permissions);
	ck_assert_ptr_nonnull(cfg->metrics_listen);
	ck_assert_str_eq(cfg->metrics_listen->ip, "::1");
	ck_assert_uint_eq(cfg->metrics_listen->port, 9100);
	ck_assert_uint_eq(cfg->limits.max_connections, 500);
	ck_assert_uint_eq(cfg->limits.max_connections_per_source, 20);
	ck_assert_uint_eq(cfg->limits.per_source_ipv6_prefix, 56);
	ck_assert_uint_eq(cfg->limits.handshake_timeout_ms, 2500);
	ck_assert_uint_eq(cfg->limits.idle_timeout_ms, 300000);
	ck_assert_uint_eq(cfg->limits.shutdown_grace_ms, 0);
	ck_assert_uint_eq(cfg->limits.connect_timeout_ms, 3000);
	ck_assert(!cfg->reload.watch);
	ck_assert_uint_eq(cfg->reload.interval_ms, 5000);
	ck_assert_uint_eq(cfg->num_listeners, 4);

	l = &cfg->listeners[0];
	ck_assert_str_eq(l->name, "v6");
	ck_assert_str_eq(l->listen.ip, "::");
	ck_assert_uint_eq(l->listen.port, 8443);
	ck_assert_uint_eq(l->max_connections, 50);
	ck_assert(l->allow_plain_public);
	r = &l->routes[0];
	ck_assert_str_eq(r->name, "echo");
	ck_assert_str_eq(r->backend.path,
			 talloc_asprintf(tt_mem, "%s/run/echo.sock", dir));
	ck_assert_int_eq(r->framing, TSGATE_CONFIG_FRAMING_LENGTH32);
	ck_assert_uint_eq(r->max_pdu, 65536);
	ck_assert_int_eq(r->identity, TSGATE_CONFIG_IDENTITY_PROXY_V2);

	l = &cfg->listeners[1];
	ck_assert_int_eq(l->listen.kind, TSGATE_CONFIG_ADDR_UNIX);
	ck_assert_str_eq(l->listen.path,
			 talloc_asprintf(tt_mem, "%s/run/out.sock", dir));
	r = &l->routes[0];
	ck_assert_str_eq(r->backend.host, "localhost");
	ck_assert_uint_eq(r->backend.port, 9443);
	ck_assert_int_eq(r->connect, TSGATE_CONFIG_CONNECT_GSSAPI);
	ck_assert_ptr_nonnull(r->gssapi);
	ck_assert_str_eq(r->gssapi->target, "tsgate@gw.example.com");
	ck_assert_str_eq(r->gssapi->ccache, "FILE:/tmp/krb5cc_app");
	ck_assert_ptr_null(r->gssapi->client_keytab);
	ck_assert(r->gssapi->strict_end);
	ck_assert_int_eq(r->framing, TSGATE_CONFIG_FRAMING_NCACN);
	ck_assert_uint_eq(r->max_pdu, 16);
	ck_assert_int_eq(r->identity, TSGATE_CONFIG_IDENTITY_KNC);

	l = &cfg->listeners[2];
	r = &l->routes[0];
	ck_assert_int_eq(r->connect, TSGATE_CONFIG_CONNECT_TLS);
	ck_assert_ptr_nonnull(r->tls);
	ck_assert_ptr_null(r->tls->ca);
	ck_assert(r->tls->verify);
	/* a host name backend is the default SNI and verified name */
	ck_assert_str_eq(r->tls->sni, "localhost");
	ck_assert_str_eq(r->tls->verify_name, "localhost");
	ck_assert_uint_eq(r->tls->num_alpn, 2);
	ck_assert_str_eq(r->tls->alpn[0], "h2");
	ck_assert_str_eq(r->tls->alpn[1], "http/1.1");
	ck_assert_int_eq(r->tls->min_version, TSGATE_CONFIG_TLS_1_2);
	ck_assert_int_eq(r->tls->max_version, TSGATE_CONFIG_TLS_1_3);
	ck_assert_str_eq(r->tls->priority, "NORMAL:-VERS-TLS1.0");

	l = &cfg->listeners[3];
	r = &l->routes[0];
	/* no tls block: system trust, no SNI for an IP, verify the IP */
	ck_assert_ptr_nonnull(r->tls);
	ck_assert_ptr_null(r->tls->sni);
	ck_assert_str_eq(r->tls->verify_name, "192.0.2.10");
	ck_assert(r->tls->verify);
	ck_assert_int_eq(r->framing, TSGATE_CONFIG_FRAMING_NBT);
	ck_assert_uint_eq(r->max_pdu, 1ULL << 30);
}
END_TEST

START_TEST(test_good_all_files)
{
	char *dir = fixture_dir(tt_mem, "good");
	size_t n, i;
	char **names = list_files(tt_mem, dir, ".yaml", &n);

	ck_assert_uint_ge(n, 2);
	for (i = 0; i < n; i++) {
		struct tsgate_config *cfg =
		    load_ok(talloc_asprintf(tt_mem, "%s/%s", dir, names[i]),
			    TSGATE_CONFIG_CHECK_CREDENTIALS);

		talloc_free(cfg);
	}
}
END_TEST

/* Loader contract */

START_TEST(test_missing_file)
{
	struct tsgate_config *cfg = (void *)1;
	struct tsgate_config_errors *errs = NULL;
	char *s;
	int ret;

	ret = tsgate_config_load(tt_mem, "/nonexistent/tsgate.yaml", 0, &cfg,
				 &errs);
	ck_assert_int_eq(ret, EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_uint_eq(errs->num_errors, 1);
	ck_assert_uint_eq(errs->errors[0].line, 0);
	s = tsgate_config_error_string(tt_mem, &errs->errors[0]);
	ck_assert_str_eq(s, "/nonexistent/tsgate.yaml: cannot open the config "
			    "file: No such file or directory");
	talloc_free(errs);

	ret = tsgate_config_load(tt_mem, "/", 0, &cfg, &errs);
	ck_assert_int_eq(ret, EINVAL);
	s = tsgate_config_error_string(tt_mem, &errs->errors[0]);
	ck_assert_str_eq(s, "/: the config file is not a regular file");
}
END_TEST

static const char plain_yaml[] = "listeners:\n"
				 "  - name: a\n"
				 "    listen: \"unix:a.sock\"\n"
				 "    accept: plain\n"
				 "    routes:\n"
				 "      - backend: \"tcp://127.0.0.1:8080\"\n";

START_TEST(test_buffer_and_reload)
{
	struct tsgate_config *live = NULL, *next = NULL;
	struct tsgate_config_errors *errs = NULL;
	static const char broken[] = "listeners: [{name: a}]\nextra: 1\n";
	size_t blocks;
	int ret;

	ret = tsgate_config_load_buffer(tt_mem, "mem.yaml", "/srv",
					(const uint8_t *)plain_yaml,
					strlen(plain_yaml), 0, &live, &errs);
	ck_assert_int_eq(ret, 0);
	ck_assert_ptr_null(errs);
	ck_assert_str_eq(live->listeners[0].listen.path, "/srv/a.sock");
	ck_assert_str_eq(live->dir, "/srv");

	/* A failed reload leaves the live tree alone and leaks nothing. */
	blocks = talloc_total_blocks(live);
	ret = tsgate_config_load_buffer(tt_mem, "mem.yaml", "/srv",
					(const uint8_t *)broken, strlen(broken),
					0, &next, &errs);
	ck_assert_int_eq(ret, EINVAL);
	ck_assert_ptr_null(next);
	ck_assert_uint_eq(errs->num_errors, 4);
	ck_assert_str_eq(tsgate_config_error_string(tt_mem, &errs->errors[0]),
			 "mem.yaml:1:13: missing key 'listen' in listener 'a'");
	ck_assert_str_eq(tsgate_config_error_string(tt_mem, &errs->errors[3]),
			 "mem.yaml:2:1: unknown key 'extra' in the top level "
			 "(expected log, workers, user, group, metrics, "
			 "limits, reload, listeners, resolvers, "
			 "allow_insecure_key_permissions)");
	ck_assert_uint_eq(talloc_total_blocks(live), blocks);
	ck_assert_ptr_eq(talloc_parent(errs), tt_mem);
	talloc_free(errs);

	/* A good reload is a separate tree; freeing either is safe. */
	ret = tsgate_config_load_buffer(tt_mem, "mem.yaml", "/srv2",
					(const uint8_t *)plain_yaml,
					strlen(plain_yaml), 0, &next, &errs);
	ck_assert_int_eq(ret, 0);
	ck_assert_ptr_ne(next, live);
	ck_assert_ptr_eq(talloc_parent(next), tt_mem);
	talloc_free(live);
	ck_assert_str_eq(next->listeners[0].listen.path, "/srv2/a.sock");
	talloc_free(next);
}
END_TEST

START_TEST(test_per_source_keys)
{
	struct tsgate_config *cfg = NULL;
	struct tsgate_config_errors *errs = NULL;
	char *y = talloc_asprintf(tt_mem,
				  "limits:\n"
				  "  max_connections_per_source: 20\n"
				  "  per_source_ipv6_prefix: 128\n"
				  "%s",
				  plain_yaml);
	int ret;

	ret =
	    tsgate_config_load_buffer(tt_mem, "p.yaml", "/", (const uint8_t *)y,
				      strlen(y), 0, &cfg, &errs);
	ck_assert_int_eq(ret, 0);
	ck_assert_uint_eq(cfg->limits.max_connections_per_source, 20);
	ck_assert_uint_eq(cfg->limits.per_source_ipv6_prefix, 128);
	talloc_free(cfg);

	y = talloc_asprintf(tt_mem,
			    "limits: {max_connections_per_source: 0, "
			    "per_source_ipv6_prefix: 0}\n%s",
			    plain_yaml);
	ret =
	    tsgate_config_load_buffer(tt_mem, "p.yaml", "/", (const uint8_t *)y,
				      strlen(y), 0, &cfg, &errs);
	ck_assert_int_eq(ret, EINVAL);
	ck_assert_uint_eq(errs->num_errors, 1);
	ck_assert_str_eq(tsgate_config_error_string(tt_mem, &errs->errors[0]),
			 "p.yaml:1:65: 'per_source_ipv6_prefix': 0 is out of "
			 "range (1-128)");
	talloc_free(errs);
}
END_TEST

START_TEST(test_user)
{
	static const char good[] = "user: root\n"
				   "listeners:\n"
				   "  - {name: a, listen: \"unix:/a\", accept: "
				   "plain, routes: [{backend: \"unix:/b\"}]}\n";
	static const char bad[] = "user: no-such-user-tsgate\n";
	struct tsgate_config *cfg = NULL;
	struct tsgate_config_errors *errs = NULL;
	int ret;

	ret = tsgate_config_load_buffer(tt_mem, "u.yaml", "/",
					(const uint8_t *)good, strlen(good), 0,
					&cfg, &errs);
	ck_assert_int_eq(ret, 0);
	ck_assert_str_eq(cfg->user, "root");
	ck_assert_uint_eq(cfg->uid, 0);
	ck_assert_uint_eq(cfg->gid, 0);
	talloc_free(cfg);

	ret = tsgate_config_load_buffer(tt_mem, "u.yaml", "/",
					(const uint8_t *)bad, strlen(bad), 0,
					&cfg, &errs);
	ck_assert_int_eq(ret, EINVAL);
	/* [0] is "missing key 'listeners'" at 1:1 */
	ck_assert_uint_eq(errs->num_errors, 2);
	ck_assert_str_eq(tsgate_config_error_string(tt_mem, &errs->errors[1]),
			 "u.yaml:1:7: 'user': no such user "
			 "'no-such-user-tsgate'");
	talloc_free(errs);
}
END_TEST

START_TEST(test_junk_never_crashes)
{
	/* Every prefix of a real config and some junk: errors, no crash. */
	static const char junk[] = "\xff\xfe\x00\x01{[}]:&*!|>%@`";
	struct tsgate_config *cfg;
	struct tsgate_config_errors *errs;
	size_t len;
	unsigned seed = 1;
	uint8_t buf[256];
	int ret;

	for (len = 0; len <= strlen(plain_yaml); len++) {
		ret = tsgate_config_load_buffer(
		    tt_mem, "p.yaml", "/", (const uint8_t *)plain_yaml, len,
		    TSGATE_CONFIG_NO_RESOLVE, &cfg, &errs);
		ck_assert(ret == 0 || ret == EINVAL);
		ck_assert((ret == 0) == (cfg != NULL));
		ck_assert(ret == 0 || errs->num_errors > 0);
		talloc_free(cfg);
		talloc_free(errs);
	}
	for (len = 0; len < 200; len++) {
		size_t i;

		for (i = 0; i < sizeof(buf); i++) {
			seed = seed * 1103515245 + 12345;
			buf[i] =
			    (seed >> 16) & 1
				? (uint8_t)plain_yaml[(seed >> 8) %
						      strlen(plain_yaml)]
				: (uint8_t)junk[(seed >> 4) % sizeof(junk)];
		}
		ret = tsgate_config_load_buffer(
		    tt_mem, "j.yaml", "/", buf, sizeof(buf),
		    TSGATE_CONFIG_NO_RESOLVE, &cfg, &errs);
		ck_assert(ret == 0 || ret == EINVAL);
		if (ret == EINVAL) {
			ck_assert_uint_gt(errs->num_errors, 0);
			ck_assert_ptr_nonnull(errs->errors[0].message);
		}
		talloc_free(cfg);
		talloc_free(errs);
	}
}
END_TEST

/* Inputs built to be big stay fast and give a bounded error list. */
START_TEST(test_limits)
{
	struct tsgate_config *cfg = NULL;
	struct tsgate_config_errors *errs = NULL;
	char *y;
	int i, ret;

	/* 1001 listeners */
	y = talloc_strdup(tt_mem, "listeners: [");
	for (i = 0; i < 1001; i++) {
		y = talloc_asprintf_append(y, "%s{}", i > 0 ? ", " : "");
	}
	y = talloc_strdup_append(y, "]\n");
	ret =
	    tsgate_config_load_buffer(tt_mem, "l.yaml", "/", (const uint8_t *)y,
				      strlen(y), 0, &cfg, &errs);
	ck_assert_int_eq(ret, EINVAL);
	ck_assert_uint_eq(errs->num_errors, 1);
	ck_assert_str_eq(tsgate_config_error_string(tt_mem, &errs->errors[0]),
			 "l.yaml:1:12: too many listeners (at most 1000)");
	talloc_free(errs);

	/* 1025 values in one match key */
	y = talloc_strdup(tt_mem, "listeners:\n"
				  "  - name: a\n"
				  "    listen: \"unix:/a\"\n"
				  "    accept: tls\n"
				  "    tls: {cert: /dev/null, key: /dev/null}\n"
				  "    routes:\n"
				  "      - backend: \"unix:/b\"\n"
				  "        match: {sni: [");
	for (i = 0; i < 1025; i++) {
		y = talloc_asprintf_append(y, "%sn%d", i > 0 ? ", " : "", i);
	}
	y = talloc_strdup_append(y, "]}\n");
	ret =
	    tsgate_config_load_buffer(tt_mem, "s.yaml", "/", (const uint8_t *)y,
				      strlen(y), 0, &cfg, &errs);
	ck_assert_int_eq(ret, EINVAL);
	ck_assert_str_eq(tsgate_config_error_string(
			     tt_mem, &errs->errors[errs->num_errors - 1]),
			 "s.yaml:8:22: 'sni' has too many values (at most "
			 "1024)");
	talloc_free(errs);

	/* a megabyte of '[': refused at once, not after minutes */
	y = talloc_size(tt_mem, 1024 * 1024);
	memset(y, '[', 1024 * 1024);
	ret =
	    tsgate_config_load_buffer(tt_mem, "d.yaml", "/", (const uint8_t *)y,
				      1024 * 1024, 0, &cfg, &errs);
	ck_assert_int_eq(ret, EINVAL);
	ck_assert_uint_eq(errs->num_errors, 1);
	ck_assert_str_eq(tsgate_config_error_string(tt_mem, &errs->errors[0]),
			 "d.yaml:1:65: nested more than 64 levels deep");
	talloc_free(errs);

	/* 3000 unknown keys: 1000 are listed, then how many more */
	y = talloc_strdup(tt_mem, "");
	for (i = 0; i < 3000; i++) {
		y = talloc_asprintf_append(y, "k%d: 1\n", i);
	}
	ret =
	    tsgate_config_load_buffer(tt_mem, "k.yaml", "/", (const uint8_t *)y,
				      strlen(y), 0, &cfg, &errs);
	ck_assert_int_eq(ret, EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_uint_eq(errs->num_errors, 1001);
	ck_assert_uint_eq(errs->errors[999].line, 1000);
	ck_assert_str_eq(
	    tsgate_config_error_string(tt_mem, &errs->errors[1000]),
	    "k.yaml: ... and 2001 more errors");
	talloc_free(errs);
}
END_TEST

/* Credentials made here: ECDSA P-256 keys, self-signed certificates. */

static void write_datum(const char *dir,
			const char *name,
			const gnutls_datum_t *d)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	write_file(path, d->data, d->size);
}

static gnutls_x509_privkey_t make_key(const char *dir, const char *name)
{
	gnutls_x509_privkey_t key;
	gnutls_datum_t d;

	ck_assert_int_eq(gnutls_x509_privkey_init(&key), 0);
	ck_assert_int_eq(gnutls_x509_privkey_generate(
			     key, GNUTLS_PK_ECDSA,
			     GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
			     0),
			 0);
	ck_assert_int_eq(
	    gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d), 0);
	write_datum(dir, name, &d);
	gnutls_free(d.data);
	return key;
}

static void make_cert(const char *dir,
		      const char *name,
		      gnutls_x509_privkey_t key,
		      const char *dn,
		      time_t not_before,
		      time_t not_after)
{
	gnutls_x509_crt_t crt;
	gnutls_datum_t d;
	unsigned char serial[8] = {0x01, 0x02, 0x03, 0x04,
				   0x05, 0x06, 0x07, 0x08};
	const char *err;

	ck_assert_int_eq(gnutls_x509_crt_init(&crt), 0);
	ck_assert_int_eq(gnutls_x509_crt_set_version(crt, 3), 0);
	ck_assert_int_eq(
	    gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)), 0);
	ck_assert_int_eq(gnutls_x509_crt_set_dn(crt, dn, &err), 0);
	ck_assert_int_eq(gnutls_x509_crt_set_activation_time(crt, not_before),
			 0);
	ck_assert_int_eq(gnutls_x509_crt_set_expiration_time(crt, not_after),
			 0);
	ck_assert_int_eq(gnutls_x509_crt_set_key(crt, key), 0);
	ck_assert_int_eq(gnutls_x509_crt_set_basic_constraints(crt, 1, -1), 0);
	ck_assert_int_eq(
	    gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
	ck_assert_int_eq(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d),
			 0);
	write_datum(dir, name, &d);
	gnutls_free(d.data);
	gnutls_x509_crt_deinit(crt);
}

static void make_keytab(const char *dir,
			const char *name,
			const char *principal)
{
	krb5_context ctx;
	krb5_keytab kt;
	krb5_keytab_entry entry;
	char ktname[4096];

	snprintf(ktname, sizeof(ktname), "FILE:%s/%s", dir, name);
	ck_assert_int_eq(krb5_init_context(&ctx), 0);
	ck_assert_int_eq(krb5_kt_resolve(ctx, ktname, &kt), 0);
	memset(&entry, 0, sizeof(entry));
	ck_assert_int_eq(krb5_parse_name(ctx, principal, &entry.principal), 0);
	entry.vno = 1;
	ck_assert_int_eq(krb5_c_make_random_key(
			     ctx, ENCTYPE_AES256_CTS_HMAC_SHA1_96, &entry.key),
			 0);
	ck_assert_int_eq(krb5_kt_add_entry(ctx, kt, &entry), 0);
	krb5_free_principal(ctx, entry.principal);
	krb5_free_keyblock_contents(ctx, &entry.key);
	krb5_kt_close(ctx, kt);
	krb5_free_context(ctx);
}

static void make_creds(const char *dir)
{
	time_t now = time(NULL);
	gnutls_x509_privkey_t server, other, expired, client;
	static const char junk[] = "this is not a certificate\n";
	static const uint8_t empty_keytab[] = {0x05, 0x02};
	static const char krb5_conf[] = "[libdefaults]\n"
					"\tdefault_realm = EXAMPLE.COM\n"
					"\tdns_lookup_kdc = false\n"
					"\tdns_lookup_realm = false\n"
					"\tdns_canonicalize_hostname = false\n"
					"\trdns = false\n";
	char path[4096];

	server = make_key(dir, "server.key");
	make_cert(dir, "server.crt", server, "CN=server.example.com",
		  now - 3600, now + 86400);
	make_cert(dir, "ca.crt", server, "CN=Test CA", now - 3600, now + 86400);
	other = make_key(dir, "other.key");
	expired = make_key(dir, "expired.key");
	/* 2020-01-01 .. 2021-01-01 UTC */
	make_cert(dir, "expired.crt", expired, "CN=old", 1577836800,
		  1609459200);
	client = make_key(dir, "client.key");
	make_cert(dir, "client.crt", client, "CN=app1", now - 3600,
		  now + 86400);
	gnutls_x509_privkey_deinit(server);
	gnutls_x509_privkey_deinit(other);
	gnutls_x509_privkey_deinit(expired);
	gnutls_x509_privkey_deinit(client);

	snprintf(path, sizeof(path), "%s/junk.crt", dir);
	write_file(path, junk, strlen(junk));
	snprintf(path, sizeof(path), "%s/empty.keytab", dir);
	write_file(path, empty_keytab, sizeof(empty_keytab));
	make_keytab(dir, "tsgate.keytab", "tsgate/gw.example.com@EXAMPLE.COM");

	/* A principal without a realm is in the default realm: make it
	 * EXAMPLE.COM whatever the machine's krb5.conf says. */
	snprintf(path, sizeof(path), "%s/krb5.conf", dir);
	write_file(path, krb5_conf, strlen(krb5_conf));
	ck_assert_int_eq(setenv("KRB5_CONFIG", path, 1), 0);
}

static void drop_creds(const char *dir)
{
	unsetenv("KRB5_CONFIG");
	tt_rmtree(dir);
}

/* Copy a creds fixture (and its .expect) into dir. */
static void copy_fixture(const char *dir, const char *name)
{
	char *src = fixture_dir(tt_mem, "creds");
	char *text =
	    read_text(tt_mem, talloc_asprintf(tt_mem, "%s/%s", src, name));
	char *expect = talloc_asprintf(tt_mem, "%s/%.*s.expect", src,
				       (int)(strlen(name) - 5), name);

	write_file(talloc_asprintf(tt_mem, "%s/%s", dir, name), text,
		   strlen(text));
	if (access(expect, R_OK) == 0) {
		text = read_text(tt_mem, expect);
		write_file(talloc_asprintf(tt_mem, "%s/%.*s.expect", dir,
					   (int)(strlen(name) - 5), name),
			   text, strlen(text));
	}
}

START_TEST(test_creds_good_tls)
{
	char *dir = tt_mkdtemp(tt_mem);
	struct tsgate_config *cfg;
	struct tsgate_config_listener *l;
	struct tsgate_config_tls_server *tls;
	struct tsgate_config_route *r;

	ck_assert_ptr_nonnull(dir);
	make_creds(dir);
	copy_fixture(dir, "good-tls.yaml");
	cfg = load_ok(talloc_asprintf(tt_mem, "%s/good-tls.yaml", dir),
		      TSGATE_CONFIG_CHECK_CREDENTIALS);
	l = &cfg->listeners[0];
	tls = l->tls;
	ck_assert_int_eq(l->accept, TSGATE_CONFIG_ACCEPT_TLS);
	ck_assert_ptr_nonnull(tls);
	ck_assert_uint_eq(tls->num_certs, 2);
	ck_assert_ptr_null(tls->certs[0].sni);
	ck_assert_str_eq(tls->certs[0].cert,
			 talloc_asprintf(tt_mem, "%s/server.crt", dir));
	ck_assert_str_eq(tls->certs[1].sni, "*.example.com");
	ck_assert_str_eq(tls->certs[1].key,
			 talloc_asprintf(tt_mem, "%s/server.key", dir));
	ck_assert_str_eq(tls->client_ca,
			 talloc_asprintf(tt_mem, "%s/ca.crt", dir));
	ck_assert_int_eq(tls->verify_client, TSGATE_CONFIG_VERIFY_OPTIONAL);
	ck_assert_uint_eq(tls->num_alpn, 2);

	r = &l->routes[0];
	ck_assert(r->match.has_match);
	ck_assert_uint_eq(r->match.num_client_san, 2);
	ck_assert_int_eq(r->match.client_san[0].type, TSGATE_CONFIG_SAN_DNS);
	ck_assert_str_eq(r->match.client_san[0].value, "*.corp.example.com");
	ck_assert_int_eq(r->match.client_san[1].type, TSGATE_CONFIG_SAN_EMAIL);
	ck_assert_str_eq(r->match.client_san[1].value, "ops@example.com");
	ck_assert_uint_eq(r->match.num_sni, 1);
	ck_assert_str_eq(r->match.sni[0], "ldap.example.com");
	ck_assert_uint_eq(r->match.num_principal, 0);

	r = &l->routes[1];
	ck_assert_str_eq(r->match.alpn[0], "h2");
	ck_assert_str_eq(r->match.client_subject[0], "CN=app*");

	r = &l->routes[2];
	ck_assert(!r->match.has_match);
	ck_assert_int_eq(r->connect, TSGATE_CONFIG_CONNECT_TLS);
	ck_assert_str_eq(r->tls->sni, "api.example.com");
	ck_assert_str_eq(r->tls->verify_name, "api.example.com");
	ck_assert_str_eq(r->tls->cert,
			 talloc_asprintf(tt_mem, "%s/client.crt", dir));
	drop_creds(dir);
}
END_TEST

START_TEST(test_creds_good_gssapi)
{
	char *dir = tt_mkdtemp(tt_mem);
	struct tsgate_config *cfg;
	struct tsgate_config_listener *l;

	ck_assert_ptr_nonnull(dir);
	make_creds(dir);
	copy_fixture(dir, "good-gssapi.yaml");
	cfg = load_ok(talloc_asprintf(tt_mem, "%s/good-gssapi.yaml", dir),
		      TSGATE_CONFIG_CHECK_CREDENTIALS);
	l = &cfg->listeners[0];
	ck_assert_int_eq(l->accept, TSGATE_CONFIG_ACCEPT_GSSAPI);
	ck_assert_str_eq(l->gssapi->keytab,
			 talloc_asprintf(tt_mem, "%s/tsgate.keytab", dir));
	ck_assert_str_eq(l->gssapi->principal,
			 "tsgate/gw.example.com@EXAMPLE.COM");
	ck_assert_str_eq(l->routes[0].match.principal[0], "*@EXAMPLE.COM");
	ck_assert(l->gssapi->strict_end);
	l = &cfg->listeners[1];
	ck_assert_str_eq(l->routes[0].gssapi->client_keytab,
			 talloc_asprintf(tt_mem, "%s/tsgate.keytab", dir));
	/* knc never sends the wrap("") marker: off unless asked for */
	ck_assert(!l->gssapi->strict_end);
	ck_assert(!l->routes[0].gssapi->strict_end);
	drop_creds(dir);
}
END_TEST

START_TEST(test_creds_bad)
{
	static const char *names[] = {"bad-tls.yaml", "bad-gssapi.yaml"};
	char *dir = tt_mkdtemp(tt_mem);
	size_t i;

	ck_assert_ptr_nonnull(dir);
	make_creds(dir);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		copy_fixture(dir, names[i]);
		check_expect(dir, names[i]);
	}
	drop_creds(dir);
}
END_TEST

START_TEST(test_creds_only_with_flag)
{
	char *dir = tt_mkdtemp(tt_mem);
	struct tsgate_config *cfg;

	/* Without CHECK_CREDENTIALS only existence is checked. */
	ck_assert_ptr_nonnull(dir);
	make_creds(dir);
	copy_fixture(dir, "bad-tls.yaml");
	cfg = load_ok(talloc_asprintf(tt_mem, "%s/bad-tls.yaml", dir), 0);
	ck_assert_uint_eq(cfg->num_listeners, 3);
	drop_creds(dir);
}
END_TEST

START_TEST(test_tls_priority)
{
	char *s;

	ck_assert_ptr_null(
	    tsgate_config_tls_priority(tt_mem, NULL, TSGATE_CONFIG_TLS_DEFAULT,
				       TSGATE_CONFIG_TLS_DEFAULT));
	s = tsgate_config_tls_priority(tt_mem, "NORMAL",
				       TSGATE_CONFIG_TLS_DEFAULT,
				       TSGATE_CONFIG_TLS_DEFAULT);
	ck_assert_str_eq(s, "NORMAL");
	s = tsgate_config_tls_priority(tt_mem, "NORMAL", TSGATE_CONFIG_TLS_1_3,
				       TSGATE_CONFIG_TLS_DEFAULT);
	ck_assert_str_eq(s, "NORMAL:-VERS-ALL:+VERS-TLS1.3");
	s = tsgate_config_tls_priority(
	    tt_mem, "NORMAL", TSGATE_CONFIG_TLS_DEFAULT, TSGATE_CONFIG_TLS_1_2);
	ck_assert_str_eq(s, "NORMAL:-VERS-ALL:+VERS-TLS1.2");
	s = tsgate_config_tls_priority(tt_mem, NULL, TSGATE_CONFIG_TLS_1_2,
				       TSGATE_CONFIG_TLS_1_3);
	ck_assert_msg(strstr(s, ":-VERS-ALL:+VERS-TLS1.2:+VERS-TLS1.3") !=
			      NULL &&
			  strncmp(s, "NORMAL:", 7) == 0,
		      "%s", s);
}
END_TEST

START_TEST(test_tls_params_from_config)
{
	char *dir = tt_mkdtemp(tt_mem);
	struct tsgate_config *cfg;
	struct tstream_tls_params *params = NULL;
	char *error = NULL;

	ck_assert_ptr_nonnull(dir);
	make_creds(dir);
	copy_fixture(dir, "good-tls.yaml");
	cfg = load_ok(talloc_asprintf(tt_mem, "%s/good-tls.yaml", dir),
		      TSGATE_CONFIG_CHECK_CREDENTIALS);
	ck_assert_int_eq(
	    tsgate_config_tls_server_params(tt_mem, cfg->listeners[0].tls, "l",
					    NULL, &params, &error),
	    0);
	ck_assert_ptr_nonnull(params);
	talloc_free(params);
	params = NULL;
	ck_assert_int_eq(
	    tsgate_config_tls_client_params(
		tt_mem, cfg->listeners[0].routes[2].tls, &params, &error),
	    0);
	ck_assert_ptr_nonnull(params);
	talloc_free(params);
	talloc_free(cfg);
	drop_creds(dir);
}
END_TEST

/*
 * The credential pass (gateway/tunnel/config_creds.c) on its own: the
 * walk alone accepts each config below (the files exist and are
 * readable), the full load reports exactly one problem at the position
 * of the value at fault.
 */
struct second_pass_case {
	const char *name;
	const char *block;   /* line 5 of the listener, or its route's tls */
	bool in_route;       /* block is the route's (line 8) */
	const char *at;      /* the error is at this value in the block */
	const char *message; /* whole, or the start when prefix */
	bool prefix;
};

static const struct second_pass_case second_pass_cases[] = {
    {"mismatched key", "tls: {cert: server.crt, key: other.key}", false,
     "other.key",
     "'key': 'other.key' does not belong to the certificate in "
     "'server.crt'",
     false},
    {"a CA given as key", "tls: {cert: server.crt, key: ca.crt}", false,
     "ca.crt", "'key': 'ca.crt' is not an unencrypted PEM private key: ", true},
    {"an encrypted key", "tls: {cert: server.crt, key: encrypted.key}", false,
     "encrypted.key",
     "'key': 'encrypted.key' is not an unencrypted PEM private key: ", true},
    {"an empty key", "tls: {cert: server.crt, key: empty.key}", false,
     "empty.key",
     "'key': 'empty.key' is not an unencrypted PEM private key: ", true},
    {"expired cert", "tls: {cert: expired.crt, key: expired.key}", false,
     "expired.crt",
     "'cert': certificate in 'expired.crt' expired on 2021-01-01 00:00:00 "
     "UTC",
     false},
    {"junk CA", "tls: {cert: server.crt, key: server.key, client_ca: junk.crt}",
     false, "junk.crt",
     "'client_ca': no PEM certificate in 'junk.crt': ", true},
    {"bad CRL",
     "tls: {cert: server.crt, key: server.key, client_ca: ca.crt, crl: "
     "junk.crt}",
     false, "junk.crt", "'crl': no PEM CRL in 'junk.crt': ", true},
    {"keytab without the principal",
     "gssapi: {keytab: tsgate.keytab, principal: "
     "HTTP/gw.example.com@EXAMPLE.COM}",
     false, "HTTP/",
     "'principal': keytab 'tsgate.keytab' has no key for "
     "'HTTP/gw.example.com@EXAMPLE.COM'",
     false},
    {"empty keytab", "gssapi: {keytab: empty.keytab}", false, "empty.keytab",
     "'keytab': keytab 'empty.keytab' has no keys", false},
    {"client key mismatched", "tls: {cert: client.crt, key: other.key}", true,
     "other.key",
     "'key': 'other.key' does not belong to the certificate in "
     "'client.crt'",
     false},
    {"client keytab not a keytab",
     "gssapi: {target: host@b.example.com, "
     "client_keytab: junk.crt}",
     true, "junk.crt",
     "'client_keytab': cannot read keytab 'junk.crt': ", true},
};

static char *second_pass_yaml(TALLOC_CTX *mem_ctx,
			      const struct second_pass_case *c)
{
	const char *accept = c->in_route                           ? "plain"
			     : strncmp(c->block, "gssapi", 6) == 0 ? "gssapi"
								   : "tls";
	const char *connect = !c->in_route                          ? "plain"
			      : strncmp(c->block, "gssapi", 6) == 0 ? "gssapi"
								    : "tls";

	/* Line 5: the listener's block; line 8: the route's. */
	return talloc_asprintf(
	    mem_ctx,
	    "listeners:\n"
	    "  - name: l\n"
	    "    listen: \"tcp://127.0.0.1:8443\"\n"
	    "    accept: %s\n"
	    "    %s\n"
	    "    routes:\n"
	    "      - backend: \"tcp://127.0.0.1:8080\"\n"
	    "        %s\n"
	    "        connect: %s\n",
	    accept, c->in_route ? "max_connections: 1" : c->block,
	    c->in_route ? c->block : "identity: none", connect);
}

static void make_encrypted_key(const char *dir, const char *name)
{
	gnutls_x509_privkey_t key = make_key(dir, name);
	gnutls_datum_t d;

	ck_assert_int_eq(gnutls_x509_privkey_export2_pkcs8(
			     key, GNUTLS_X509_FMT_PEM, "secret",
			     GNUTLS_PKCS_PBES2_AES_256, &d),
			 0);
	write_datum(dir, name, &d);
	gnutls_free(d.data);
	gnutls_x509_privkey_deinit(key);
}

/* One case, in dir made by make_creds(). */
static void check_second_pass(const char *dir, const struct second_pass_case *c)
{
	char *yaml, *got;
	struct tsgate_config_load *load = NULL;
	struct tsgate_config *cfg = NULL;
	struct tsgate_config_errors *errs = NULL;
	const char *line;
	unsigned want_line = c->in_route ? 8 : 5, want_col;
	unsigned flags =
	    TSGATE_CONFIG_CHECK_CREDENTIALS | TSGATE_CONFIG_NO_RESOLVE;
	int ret;

	yaml = second_pass_yaml(tt_mem, c);

	/* The walk alone: the files are there, nothing else is asked. */
	ret = tsgate_config_parse_buffer(tt_mem, "creds.yaml", dir,
					 (const uint8_t *)yaml, strlen(yaml),
					 flags, &load);
	ck_assert_int_eq(ret, 0);
	ret = tsgate_config_load_finish(tt_mem, load, &cfg, &errs);
	ck_assert_msg(ret == 0, "%s: the walk found %s", c->name,
		      errs != NULL
			  ? tsgate_config_error_string(tt_mem, &errs->errors[0])
			  : "ENOMEM");
	TALLOC_FREE(cfg);

	/* Both passes, as every caller loads. */
	ret = tsgate_config_load_buffer(tt_mem, "creds.yaml", dir,
					(const uint8_t *)yaml, strlen(yaml),
					flags, &cfg, &errs);
	ck_assert_msg(ret == EINVAL, "%s: load returned %d", c->name, ret);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(errs->num_errors == 1, "%s: %zu errors", c->name,
		      errs->num_errors);
	line = strstr(yaml, c->block);
	want_col =
	    (unsigned)(strstr(line, c->at) - line) + 5 + (c->in_route ? 4 : 0);
	got = tsgate_config_error_string(tt_mem, &errs->errors[0]);
	ck_assert_msg(errs->errors[0].line == want_line &&
			  errs->errors[0].column == want_col,
		      "%s: want %u:%u, got %s", c->name, want_line, want_col,
		      got);
	if (c->prefix) {
		ck_assert_msg(strncmp(errs->errors[0].message, c->message,
				      strlen(c->message)) == 0,
			      "%s: got %s", c->name, got);
	} else {
		ck_assert_msg(strcmp(errs->errors[0].message, c->message) == 0,
			      "%s: got %s", c->name, got);
	}
	TALLOC_FREE(errs);
}

/* All cases on one set of credentials (making keys is slow in valgrind). */
START_TEST(test_second_pass)
{
	char *dir = tt_mkdtemp(tt_mem);
	size_t i;

	ck_assert_ptr_nonnull(dir);
	make_creds(dir);
	make_encrypted_key(dir, "encrypted.key");
	write_file(talloc_asprintf(tt_mem, "%s/empty.key", dir), "", 0);
	for (i = 0;
	     i < sizeof(second_pass_cases) / sizeof(second_pass_cases[0]);
	     i++) {
		check_second_pass(dir, &second_pass_cases[i]);
	}
	drop_creds(dir);
}
END_TEST

/*
 * The second pass runs on a config the walk found wrong, too: every
 * problem of the file in one run, in file order.
 */
START_TEST(test_second_pass_after_walk_errors)
{
	static const char yaml[] =
	    "listeners:\n"
	    "  - name: l\n"
	    "    listen: \"tcp://127.0.0.1:8443\"\n"
	    "    accept: tls\n"
	    "    tls: {cert: server.crt, key: other.key, bogus: 1}\n"
	    "    routes:\n"
	    "      - backend: \"tcp://127.0.0.1:8080\"\n"
	    "        framing: smb\n";
	char *dir = tt_mkdtemp(tt_mem);
	struct tsgate_config *cfg = NULL;
	struct tsgate_config_errors *errs = NULL;
	int ret;

	ck_assert_ptr_nonnull(dir);
	make_creds(dir);
	ret = tsgate_config_load_buffer(
	    tt_mem, "w.yaml", dir, (const uint8_t *)yaml, strlen(yaml),
	    TSGATE_CONFIG_CHECK_CREDENTIALS | TSGATE_CONFIG_NO_RESOLVE, &cfg,
	    &errs);
	ck_assert_int_eq(ret, EINVAL);
	ck_assert_uint_eq(errs->num_errors, 3);
	ck_assert_str_eq(
	    tsgate_config_error_string(tt_mem, &errs->errors[0]),
	    "w.yaml:5:34: 'key': 'other.key' does not belong to the "
	    "certificate in 'server.crt'");
	ck_assert_uint_eq(errs->errors[1].line, 5);
	ck_assert_uint_eq(errs->errors[1].column, 45);
	ck_assert_uint_eq(errs->errors[2].line, 8);
	TALLOC_FREE(errs);
	drop_creds(dir);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("values");
	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_duration);
	tcase_add_test(tc, test_size);
	tcase_add_test(tc, test_address_tcp);
	tcase_add_test(tc, test_address_errors);
	tcase_add_test(tc, test_address_unix);
	tcase_add_test(tc, test_wildcard);
	tcase_add_test(tc, test_tls_priority);
	suite_add_tcase(s, tc);

	tc = tcase_create("bad_fixtures");
	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_bad_fixture, 0, (int)num_bad_fixtures);
	suite_add_tcase(s, tc);

	tc = tcase_create("good_fixtures");
	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_good_minimal);
	tcase_add_test(tc, test_good_everything);
	tcase_add_test(tc, test_good_all_files);
	suite_add_tcase(s, tc);

	tc = tcase_create("loader");
	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_buffer_and_reload);
	tcase_add_test(tc, test_per_source_keys);
	tcase_add_test(tc, test_user);
	tcase_add_test(tc, test_junk_never_crashes);
	tcase_add_test(tc, test_limits);
	suite_add_tcase(s, tc);

	tc = tcase_create("credentials");
	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_creds_good_tls);
	tcase_add_test(tc, test_creds_good_gssapi);
	tcase_add_test(tc, test_creds_bad);
	tcase_add_test(tc, test_creds_only_with_flag);
	tcase_add_test(tc, test_tls_params_from_config);
	tcase_add_test(tc, test_second_pass);
	tcase_add_test(tc, test_second_pass_after_walk_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	char *dir;
	int ret;

	/* The fixture list outlives every test: it is not tt_mem's. */
	dir = talloc_asprintf(NULL, "%s" FIXTURES "/bad", srcdir());
	bad_fixtures = list_files(dir, dir, ".yaml", &num_bad_fixtures);
	if (num_bad_fixtures == 0) {
		fprintf(stderr, "no fixtures in %s (TSGATE_SRCDIR?)\n", dir);
		talloc_free(dir);
		return EXIT_FAILURE;
	}
	ret = tt_run_suite(config_suite());
	talloc_free(dir);
	return ret;
}
