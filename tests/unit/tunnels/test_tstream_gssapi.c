/* SPDX-License-Identifier: MIT */
/*
 * tstream_gssapi's I/O-free helpers (tunnels/tstream_gssapi_util.c):
 * principal parsing, OID strings, errno mapping and error texts. The
 * streams themselves need a KDC: tests/integration/test_gssapi.c.
 */
#include <errno.h>
#include <krb5.h>
#include <gssapi/gssapi_ext.h>
#include <string.h>

#include "tstream_gssapi_private.h"
#include "tt.h"

struct parse_case {
	const char *name;
	int ret;
	size_t num;
	const char *comps[3];
	const char *realm;
};

START_TEST(test_parse_principal)
{
	static const struct parse_case cases[] = {
	    {"alice@EXAMPLE.COM", 0, 1, {"alice"}, "EXAMPLE.COM"},
	    {"host/gw.example.com@EXAMPLE.COM",
	     0,
	     2,
	     {"host", "gw.example.com"},
	     "EXAMPLE.COM"},
	    {"a\\/b/c@R", 0, 2, {"a/b", "c"}, "R"},
	    {"a\\@b@R", 0, 1, {"a@b"}, "R"},
	    {"x@R/with@at", 0, 1, {"x"}, "R/with@at"},
	    {"x@R\\@y", 0, 1, {"x"}, "R@y"},
	    {"tab\\there@R", 0, 1, {"tab\there"}, "R"},
	    {"back\\\\slash@R", 0, 1, {"back\\slash"}, "R"},
	    {"norealm", 0, 1, {"norealm"}, ""},
	    {"a//b@R", 0, 3, {"a", "", "b"}, "R"},
	    /* never cut a component short at an escaped NUL */
	    {"alice\\0evil@R", EINVAL, 0, {NULL}, NULL},
	    {"trailing\\", EINVAL, 0, {NULL}, NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct parse_case *c = &cases[i];
		char **comps = NULL;
		char *realm = NULL;
		size_t num = 99;
		int ret;

		ret = tstream_gssapi_parse_principal(tt_mem, c->name, &comps,
						     &num, &realm);
		ck_assert_msg(ret == c->ret, "%s: %d", c->name, ret);
		if (ret != 0) {
			continue;
		}
		ck_assert_msg(num == c->num, "%s: %zu components", c->name,
			      num);
		for (size_t j = 0; j < num; j++) {
			ck_assert_str_eq(comps[j], c->comps[j]);
		}
		ck_assert_ptr_null(comps[num]);
		ck_assert_str_eq(realm, c->realm);
		talloc_free(comps);
		talloc_free(realm);
	}
}
END_TEST

START_TEST(test_oid_string)
{
	char *s = tstream_gssapi_oid_string(tt_mem, gss_mech_krb5);

	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "1.2.840.113554.1.2.2");
}
END_TEST

START_TEST(test_map_error)
{
	ck_assert_int_eq(
	    tstream_gssapi_map_error(GSS_S_NO_CRED, KRB5_KT_NOTFOUND, true),
	    ENOENT);
	ck_assert_int_eq(
	    tstream_gssapi_map_error(GSS_S_FAILURE,
				     KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN, true),
	    ENOENT);
	ck_assert_int_eq(tstream_gssapi_map_error(
			     GSS_S_FAILURE, KRB5KRB_AP_ERR_TKT_EXPIRED, true),
			 EKEYEXPIRED);
	ck_assert_int_eq(
	    tstream_gssapi_map_error(GSS_S_CREDENTIALS_EXPIRED, 0, true),
	    EKEYEXPIRED);
	ck_assert_int_eq(
	    tstream_gssapi_map_error(GSS_S_DEFECTIVE_TOKEN, 0, true), EPROTO);
	ck_assert_int_eq(tstream_gssapi_map_error(GSS_S_BAD_SIG, 0, false),
			 EPROTO);
	/* supplementary bits only: still a data-path failure */
	ck_assert_int_eq(
	    tstream_gssapi_map_error(GSS_S_DUPLICATE_TOKEN, 0, false), EPROTO);
	ck_assert_int_eq(tstream_gssapi_map_error(GSS_S_BAD_NAME, 0, true),
			 EINVAL);
	ck_assert_int_eq(tstream_gssapi_map_error(GSS_S_FAILURE, 0, true),
			 EACCES);
}
END_TEST

START_TEST(test_status_string)
{
	char *s;

	s = tstream_gssapi_status_string(tt_mem, "unwrap",
					 GSS_S_DUPLICATE_TOKEN, 0);
	ck_assert_ptr_nonnull(s);
	ck_assert_msg(strncmp(s, "unwrap: ", 8) == 0, "%s", s);
	ck_assert_msg(strstr(s, "duplicate") != NULL, "%s", s);

	s = tstream_gssapi_status_string(tt_mem, "x", GSS_S_BAD_SIG, 0);
	ck_assert_msg(strstr(s, "Message Integrity Check") != NULL, "%s", s);

	/* a (mapped) minor code from a real call is displayed */
	{
		gss_key_value_element_desc el = {
		    .key = "keytab",
		    .value = "FILE:/nonexistent/tsgate-unit.keytab",
		};
		gss_key_value_set_desc store = {.count = 1, .elements = &el};
		gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
		OM_uint32 maj, min;

		maj = gss_acquire_cred_from(&min, GSS_C_NO_NAME, 0,
					    GSS_C_NO_OID_SET, GSS_C_ACCEPT,
					    &store, &cred, NULL, NULL);
		ck_assert(GSS_ERROR(maj));
		s = tstream_gssapi_status_string(tt_mem, "acquire", maj, min);
		ck_assert_msg(strstr(s, "nonexistent or empty") != NULL, "%s",
			      s);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("tstream_gssapi_util");
	TCase *tc = tcase_create("util");

	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_parse_principal);
	tcase_add_test(tc, test_oid_string);
	tcase_add_test(tc, test_map_error);
	tcase_add_test(tc, test_status_string);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tt_run_suite(suite());
}
