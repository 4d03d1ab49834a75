/*
 * Unit tests of gateway/route.c: first-match routing on sni, alpn,
 * client_subject, client_san and principal with '*' wildcards, on config
 * structs as the loader makes them (and one loaded from YAML text).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <talloc.h>
#include <tevent.h>

#include "tt.h"
#include "config.h"
#include "identity.h"
#include "route.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(test_empty_match_matches_all)
{
	struct tsgate_config_match m = {0};
	struct tsgate_peer_info info = {0};

	ck_assert(tsgate_route_matches(&m, &info));
	m.has_match = true; /* "match: {}" */
	ck_assert(tsgate_route_matches(&m, &info));
}
END_TEST

START_TEST(test_sni)
{
	const char *snis[] = {"ldap.example.com", "*.corp.example.com"};
	struct tsgate_config_match m = {
	    .has_match = true, .sni = snis, .num_sni = N(snis)};
	struct tsgate_peer_info info = {.tls = true};

	info.sni = "ldap.example.com";
	ck_assert(tsgate_route_matches(&m, &info));
	info.sni = "LDAP.Example.COM"; /* DNS names ignore case */
	ck_assert(tsgate_route_matches(&m, &info));
	info.sni = "a.b.corp.example.com";
	ck_assert(tsgate_route_matches(&m, &info));
	info.sni = "corp.example.com";
	ck_assert(!tsgate_route_matches(&m, &info));
	info.sni = "ldap.example.com.evil";
	ck_assert(!tsgate_route_matches(&m, &info));
	info.sni = NULL; /* no SNI sent: never matches a sni key */
	ck_assert(!tsgate_route_matches(&m, &info));
}
END_TEST

START_TEST(test_sni_star_needs_sni)
{
	const char *star[] = {"*"};
	struct tsgate_config_match m = {
	    .has_match = true, .sni = star, .num_sni = 1};
	struct tsgate_peer_info info = {.tls = true};

	ck_assert(!tsgate_route_matches(&m, &info));
	info.sni = "anything";
	ck_assert(tsgate_route_matches(&m, &info));
}
END_TEST

START_TEST(test_alpn_case_sensitive)
{
	const char *alpn[] = {"h2"};
	struct tsgate_config_match m = {
	    .has_match = true, .alpn = alpn, .num_alpn = 1};
	struct tsgate_peer_info info = {.tls = true, .alpn = "h2"};

	ck_assert(tsgate_route_matches(&m, &info));
	info.alpn = "H2";
	ck_assert(!tsgate_route_matches(&m, &info));
	info.alpn = "http/1.1";
	ck_assert(!tsgate_route_matches(&m, &info));
}
END_TEST

START_TEST(test_client_subject_and_san)
{
	const char *subjects[] = {"CN=*,O=Example"};
	struct tsgate_config_san sans_pat[] = {
	    {TSGATE_CONFIG_SAN_DNS, "*.corp.example.com"},
	    {TSGATE_CONFIG_SAN_IP, "10.0.0.*"},
	};
	const char *peer_sans[] = {"email:a@b", "DNS:Host1.CORP.example.com",
				   NULL};
	struct tsgate_config_match m = {
	    .has_match = true,
	    .client_subject = subjects,
	    .num_client_subject = 1,
	    .client_san = sans_pat,
	    .num_client_san = N(sans_pat),
	};
	struct tsgate_peer_info info = {
	    .tls = true,
	    .client_cert = true,
	    .cert_verified = true,
	    .client_subject = "CN=alice,O=Example",
	    .client_sans = peer_sans,
	    .num_client_sans = 2,
	};

	ck_assert(tsgate_route_matches(&m, &info));
	/* both keys must hold */
	info.client_subject = "CN=alice,O=Other";
	ck_assert(!tsgate_route_matches(&m, &info));
	info.client_subject = "CN=alice,O=Example";
	peer_sans[1] = "DNS:host1.example.com";
	ck_assert(!tsgate_route_matches(&m, &info));
	/* the IP pattern matches an IP SAN, not a DNS SAN with those bytes */
	peer_sans[1] = "DNS:10.0.0.7";
	ck_assert(!tsgate_route_matches(&m, &info));
	peer_sans[1] = "IP:10.0.0.7";
	ck_assert(tsgate_route_matches(&m, &info));
	/*
	 * a certificate that did not verify (verify_client: optional) is
	 * anyone's claim: its names never match
	 */
	info.cert_verified = false;
	ck_assert(!tsgate_route_matches(&m, &info));
	/* no certificate: no subject, no SANs */
	info.client_cert = false;
	ck_assert(!tsgate_route_matches(&m, &info));
}
END_TEST

START_TEST(test_principal)
{
	const char *princ[] = {"*@EXAMPLE.COM", "admin/*@OTHER.ORG"};
	struct tsgate_config_match m = {
	    .has_match = true, .principal = princ, .num_principal = 2};
	struct tsgate_peer_info info = {.gssapi = true};

	info.principal = "alice@EXAMPLE.COM";
	ck_assert(tsgate_route_matches(&m, &info));
	info.principal = "alice@example.com"; /* realms are case-sensitive */
	ck_assert(!tsgate_route_matches(&m, &info));
	info.principal = "admin/bob@OTHER.ORG";
	ck_assert(tsgate_route_matches(&m, &info));
	info.principal = "bob@OTHER.ORG";
	ck_assert(!tsgate_route_matches(&m, &info));
	info.principal = "alice@EXAMPLE.COM.EVIL";
	ck_assert(!tsgate_route_matches(&m, &info));
	/* a TLS client has no principal */
	info.gssapi = false;
	info.principal = "alice@EXAMPLE.COM";
	ck_assert(!tsgate_route_matches(&m, &info));
}
END_TEST

START_TEST(test_first_match_wins)
{
	const char *sni_a[] = {"a.example"};
	const char *any[] = {"*"};
	struct tsgate_config_route routes[3] = {
	    {.name = "a",
	     .match = {.has_match = true, .sni = sni_a, .num_sni = 1}},
	    {.name = "any-sni",
	     .match = {.has_match = true, .sni = any, .num_sni = 1}},
	    {.name = "fallback"},
	};
	struct tsgate_config_listener l = {
	    .name = "l", .routes = routes, .num_routes = 3};
	struct tsgate_peer_info info = {.tls = true};

	info.sni = "a.example";
	ck_assert_str_eq(tsgate_route_select(&l, &info)->name, "a");
	info.sni = "b.example";
	ck_assert_str_eq(tsgate_route_select(&l, &info)->name, "any-sni");
	info.sni = NULL;
	ck_assert_str_eq(tsgate_route_select(&l, &info)->name, "fallback");
	l.num_routes = 2;
	ck_assert_ptr_null(tsgate_route_select(&l, &info));
}
END_TEST

START_TEST(test_from_yaml)
{
	/* the loader only checks that the keytab exists without flags */
	char *dir = tt_mkdtemp(tt_mem);
	char *keytab = talloc_asprintf(tt_mem, "%s/k.keytab", dir);
	char *yaml;
	struct tsgate_config *cfg = NULL;
	struct tsgate_config_errors *errs = NULL;
	struct tsgate_peer_info info = {.gssapi = true};
	const struct tsgate_config_route *r;
	FILE *f;
	int ret;

	f = fopen(keytab, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	yaml = talloc_asprintf(tt_mem,
			       "listeners:\n"
			       "  - name: krb\n"
			       "    listen: \"tcp://127.0.0.1:1\"\n"
			       "    accept: gssapi\n"
			       "    gssapi: {keytab: %s}\n"
			       "    routes:\n"
			       "      - name: admins\n"
			       "        match: {principal: [\"*/admin@R\", "
			       "\"root@R\"]}\n"
			       "        backend: \"tcp://127.0.0.1:2\"\n"
			       "      - name: rest\n"
			       "        backend: \"unix:/run/x.sock\"\n",
			       keytab);
	ret = tsgate_config_load_buffer(tt_mem, "route.yaml", dir,
					(const uint8_t *)yaml, strlen(yaml),
					TSGATE_CONFIG_NO_RESOLVE, &cfg, &errs);
	if (ret != 0 && errs != NULL) {
		char *msg =
		    tsgate_config_error_string(tt_mem, &errs->errors[0]);
		ck_abort_msg("config refused: %s", msg);
	}
	ck_assert_int_eq(ret, 0);
	ck_assert_uint_eq(cfg->num_listeners, 1);

	info.principal = "bob/admin@R";
	r = tsgate_route_select(&cfg->listeners[0], &info);
	ck_assert_str_eq(r->name, "admins");
	ck_assert_uint_eq(r->backend.port, 2);
	info.principal = "root@R";
	ck_assert_str_eq(tsgate_route_select(&cfg->listeners[0], &info)->name,
			 "admins");
	info.principal = "root@OTHER";
	r = tsgate_route_select(&cfg->listeners[0], &info);
	ck_assert_str_eq(r->name, "rest");
	ck_assert_str_eq(r->backend.path, "/run/x.sock");
	TALLOC_FREE(cfg);
	tt_rmtree(dir);
}
END_TEST


static Suite *route_suite(void)
{
	Suite *s = suite_create("route");
	TCase *tc;

	tc = tt_tcase(s, "match", 10);
	tcase_add_test(tc, test_empty_match_matches_all);
	tcase_add_test(tc, test_sni);
	tcase_add_test(tc, test_sni_star_needs_sni);
	tcase_add_test(tc, test_alpn_case_sensitive);
	tcase_add_test(tc, test_client_subject_and_san);
	tcase_add_test(tc, test_principal);

	tc = tt_tcase(s, "select", 10);
	tcase_add_test(tc, test_first_match_wins);
	tcase_add_test(tc, test_from_yaml);

	return s;
}

int main(void)
{
	return tt_run_suite(route_suite());
}
