/* SPDX-License-Identifier: MIT */
/*
 * Ticket key files (HAProxy's tls-ticket-keys format) and the ticket
 * master each listener derives: errors name the file and line and never
 * a key byte; the master depends on the key, the listener's name and its
 * client-certificate policy, and on nothing else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ticket_keys.h"
#include "tt.h"

/* 80 and 48 bytes, as openssl rand 80 | openssl base64 -A makes them */
static const char key80[] =
    "MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6QUJDREVGR0hJSktMTU5PUFFS"
    "U1RVVldYWVowMTIzNDU2Nzg5YWJjZGVmZ2g=";
static const char key48[] =
    "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB";

static int parse(const char *text,
		 struct tsgate_ticket_secret **s,
		 size_t *num,
		 char **error)
{
	return tsgate_ticket_keys_parse(tt_mem, "k.keys", text, strlen(text), s,
					num, error);
}

START_TEST(good_files)
{
	struct tsgate_ticket_secret *s = NULL;
	char *text = talloc_asprintf(tt_mem, "# newest first\n\n  %s  \r\n%s\n",
				     key80, key48);
	char *error = NULL;
	size_t num = 0;

	ck_assert_int_eq(parse(text, &s, &num, &error), 0);
	ck_assert_ptr_null(error);
	ck_assert_uint_eq(num, 2);
	ck_assert_uint_eq(s->len, 80);
	ck_assert_int_eq(memcmp(s->key, "0123456789abcdef", 16), 0);
	talloc_free(s);
	/* no newline at the end, a 48-byte key first */
	ck_assert_int_eq(parse(key48, &s, &num, &error), 0);
	ck_assert_uint_eq(num, 1);
	ck_assert_uint_eq(s->len, 48);
	talloc_free(s);
}
END_TEST

START_TEST(bad_files)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
	    {"", "k.keys: holds no key"},
	    {"# nothing\n\n", "k.keys: holds no key"},
	    {"not base64!\n", "k.keys:1: not base64 (one key a line)"},
	    {"\nQUFB\n", "k.keys:2: a key must be 48 or 80 bytes"},
	    {"QUFBQUFB=A\n", "k.keys:1: not base64 (one key a line)"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tsgate_ticket_secret *s = NULL;
		char *error = NULL;

		ck_assert_int_eq(parse(cases[i].text, &s, NULL, &error),
				 EINVAL);
		ck_assert_ptr_null(s);
		ck_assert_ptr_nonnull(error);
		ck_assert_msg(
		    strncmp(error, cases[i].want, strlen(cases[i].want)) == 0,
		    "case %zu: %s", i, error);
		talloc_free(error);
	}
}
END_TEST

/* A bad second key fails the file, and the message holds no key text. */
START_TEST(no_key_in_errors)
{
	struct tsgate_ticket_secret *s = NULL;
	char *text = talloc_asprintf(tt_mem, "%s\n%.40s\n", key80, key80);
	char *error = NULL;
	char nul[] = "QUFB\0QUFB\n";

	ck_assert_int_eq(parse(text, &s, NULL, &error), EINVAL);
	ck_assert_str_eq(error, "k.keys:2: a key must be 48 or 80 bytes "
				"(openssl rand 80 | openssl base64 -A)");
	ck_assert_ptr_null(strstr(error, "MDEy"));
	talloc_free(error);
	ck_assert_int_eq(tsgate_ticket_keys_parse(tt_mem, "k.keys", nul,
						  sizeof(nul) - 1, &s, NULL,
						  &error),
			 EINVAL);
	ck_assert_str_eq(error, "k.keys:1: holds a NUL byte");
	talloc_free(error);
}
END_TEST

START_TEST(read_file)
{
	char path[] = "/tmp/tsgate-keys-XXXXXX";
	struct tsgate_ticket_secret *s = NULL;
	char *error = NULL;
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, key48, strlen(key48)),
			 (ssize_t)strlen(key48));
	close(fd);
	ck_assert_int_eq(
	    tsgate_ticket_keys_read(tt_mem, path, &s, NULL, &error), 0);
	ck_assert_uint_eq(s->len, 48);
	talloc_free(s);
	unlink(path);
	ck_assert_int_eq(
	    tsgate_ticket_keys_read(tt_mem, path, &s, NULL, &error), ENOENT);
	ck_assert_ptr_nonnull(strstr(error, path));
	talloc_free(error);
	ck_assert_int_eq(
	    tsgate_ticket_keys_read(tt_mem, "/tmp", &s, NULL, &error), EINVAL);
	ck_assert_str_eq(error, "/tmp: not a regular file");
	talloc_free(error);
}
END_TEST

START_TEST(master)
{
	struct tsgate_ticket_secret *a = NULL;
	struct tsgate_ticket_secret *b = NULL;
	struct tsgate_ticket_secret *r = tsgate_ticket_secret_random(tt_mem);
	char *error = NULL;
	uint8_t m1[64], m2[64], m3[64], m4[64], m5[64];

	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->len, 64);
	ck_assert_int_eq(parse(key80, &a, NULL, &error), 0);
	ck_assert_int_eq(parse(key80, &b, NULL, &error), 0);
	ck_assert_int_eq(
	    tsgate_ticket_master(a, "in", TSGATE_CONFIG_VERIFY_NONE, m1), 0);
	/* the same key read twice (two instances): the same master */
	ck_assert_int_eq(
	    tsgate_ticket_master(b, "in", TSGATE_CONFIG_VERIFY_NONE, m2), 0);
	ck_assert_int_eq(memcmp(m1, m2, 64), 0);
	/* another listener, another policy, another key: another master */
	ck_assert_int_eq(
	    tsgate_ticket_master(a, "in2", TSGATE_CONFIG_VERIFY_NONE, m3), 0);
	ck_assert_int_eq(
	    tsgate_ticket_master(a, "in", TSGATE_CONFIG_VERIFY_REQUIRE, m4), 0);
	ck_assert_int_eq(
	    tsgate_ticket_master(r, "in", TSGATE_CONFIG_VERIFY_NONE, m5), 0);
	ck_assert_int_ne(memcmp(m1, m3, 64), 0);
	ck_assert_int_ne(memcmp(m1, m4, 64), 0);
	ck_assert_int_ne(memcmp(m1, m5, 64), 0);
	/* the key itself is not the master */
	ck_assert_ptr_null(memmem(m1, 64, a->key, 16));
	talloc_free(a);
	talloc_free(b);
	talloc_free(r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ticket_keys");

	tcase_add_test(tt_tcase(s, "good_files", 10), good_files);
	tcase_add_test(tt_tcase(s, "bad_files", 10), bad_files);
	tcase_add_test(tt_tcase(s, "no_key_in_errors", 10), no_key_in_errors);
	tcase_add_test(tt_tcase(s, "read_file", 10), read_file);
	tcase_add_test(tt_tcase(s, "master", 10), master);
	return tt_run_suite(s);
}
