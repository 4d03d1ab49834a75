/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of gateway/datapath/route.c: first-match routing on sni, alpn,
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
#include "config_tunnels.h"
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
	info.sni = "a.corp.example.com";
	ck_assert(tsgate_route_matches(&m, &info));
	/* '*' is one whole label (RFC 6125 6.4.3), not any run of them */
	info.sni = "a.b.corp.example.com";
	ck_assert(!tsgate_route_matches(&m, &info));
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

/*
 * Defect 3 of issue 13: a '*' must stay inside the part it is written in.
 * Each row is checked through client_san "DNS:" and through sni, which
 * share the DNS rule.
 */
static const struct {
	const char *pattern;
	const char *name;
	bool match;
} dns_cases[] = {
    {"*.ops.example.com", "alice.ops.example.com", true},
    {"*.ops.example.com", "ALICE.Ops.Example.COM", true},
    /* one label, never several, never none */
    {"*.ops.example.com", "a.b.ops.example.com", false},
    {"*.ops.example.com", "ops.example.com", false},
    {"*.ops.example.com", ".ops.example.com", false},
    {"*.ops.example.com", "alice..ops.example.com", false},
    {"*.ops.example.com", "aliceops.example.com", false},
    {"*.ops.example.com", "alice.ops.example.com.evil.com", false},
    {"*.ops.example.com", "alice.ops.example.com.", false},
    /* a wildcard certificate names no one host */
    {"*.ops.example.com", "*.ops.example.com", false},
    {"*.example.com", "*.ops.example.com", false},
    /* partial-label wildcards: only inside the leftmost label */
    {"app-*.example.com", "app-1.example.com", true},
    {"app-*.example.com", "APP-db.example.com", true},
    {"app-*.example.com", "app-1.x.example.com", false},
    {"app-*.example.com", "web-1.example.com", false},
    {"*-db.example.com", "app-db.example.com", true},
    {"*-db.example.com", "x.app-db.example.com", false},
    /* IDN: A-labels are plain labels, but no partial match into one */
    {"*.example.com", "xn--bcher-kva.example.com", true},
    {"x*.example.com", "xn--bcher-kva.example.com", false},
    {"xn--bcher-kva.example.com", "XN--BCHER-KVA.example.com", true},
    {"*.example.com",
     "b\xc3\xbc"
     "cher.example.com",
     true},
    /* exact names ignore ASCII case only */
    {"ops.example.com", "OPS.EXAMPLE.COM", true},
    {"ops.example.com", "ops.example.co", false},
    /* "*" alone: any name */
    {"*", "a.b.c", true},
    {"*", "localhost", true},
};

START_TEST(test_dns_wildcard_table)
{
	const char *peer_sans[] = {NULL, NULL};
	struct tsgate_config_san pat = {TSGATE_CONFIG_SAN_DNS, NULL};
	struct tsgate_config_match san = {
	    .has_match = true, .client_san = &pat, .num_client_san = 1};
	const char *sni_pat[1];
	struct tsgate_config_match sni = {
	    .has_match = true, .sni = sni_pat, .num_sni = 1};
	struct tsgate_peer_info info = {
	    .tls = true,
	    .client_cert = true,
	    .cert_verified = true,
	    .client_subject = "CN=x",
	    .client_sans = peer_sans,
	    .num_client_sans = 1,
	};
	size_t i;

	for (i = 0; i < N(dns_cases); i++) {
		pat.value = dns_cases[i].pattern;
		sni_pat[0] = dns_cases[i].pattern;
		peer_sans[0] =
		    talloc_asprintf(tt_mem, "DNS:%s", dns_cases[i].name);
		info.sni = dns_cases[i].name;
		ck_assert_msg(tsgate_route_matches(&san, &info) ==
				  dns_cases[i].match,
			      "client_san DNS:%s vs %s: expected %s",
			      dns_cases[i].pattern, dns_cases[i].name,
			      dns_cases[i].match ? "match" : "no match");
		ck_assert_msg(tsgate_route_matches(&sni, &info) ==
				  dns_cases[i].match,
			      "sni %s vs %s: expected %s", dns_cases[i].pattern,
			      dns_cases[i].name,
			      dns_cases[i].match ? "match" : "no match");
	}
}
END_TEST

/* A pattern, a name, and whether the one must match the other. */
struct name_case {
	const char *pattern;
	const char *name;
	bool match;
};

/* Each case as a client_san pattern of type against a verified peer's
 * SAN "<prefix><name>". */
static void check_san_table(enum tsgate_config_san_type type,
			    const char *prefix,
			    const struct name_case *cases,
			    size_t n)
{
	const char *peer_sans[] = {NULL, NULL};
	struct tsgate_config_san pat = {type, NULL};
	struct tsgate_config_match m = {
	    .has_match = true, .client_san = &pat, .num_client_san = 1};
	struct tsgate_peer_info info = {
	    .tls = true,
	    .client_cert = true,
	    .cert_verified = true,
	    .client_sans = peer_sans,
	    .num_client_sans = 1,
	};

	for (size_t i = 0; i < n; i++) {
		pat.value = cases[i].pattern;
		peer_sans[0] =
		    talloc_asprintf(tt_mem, "%s%s", prefix, cases[i].name);
		ck_assert_msg(tsgate_route_matches(&m, &info) == cases[i].match,
			      "%s%s vs %s: expected %s", prefix,
			      cases[i].pattern, cases[i].name,
			      cases[i].match ? "match" : "no match");
	}
}

static const struct name_case email_cases[] = {
    {"*@ops.example.com", "alice@ops.example.com", true},
    /* '*' is the local part: it does not reach over an '@' */
    {"*@ops.example.com", "alice@evil.com@ops.example.com", false},
    {"*@ops.example.com", "alice@ops.example.com.evil", false},
    {"alice@*", "alice@x", true},
    {"alice@*", "alice@x@y", false},
};

static const struct name_case uri_cases[] = {
    {"spiffe://example.org/ns/prod/*", "spiffe://example.org/ns/prod/web",
     true},
    /* '*' is one path segment */
    {"spiffe://example.org/ns/prod/*", "spiffe://example.org/ns/prod/x/admin",
     false},
    {"spiffe://example.org/ns/prod/*", "spiffe://example.org/ns/prod/../admin",
     false},
    {"spiffe://example.org/ns/prod/*", "spiffe://example.org/ns/prod/x?y",
     false},
    {"spiffe://example.org/*/web", "spiffe://example.org/a/b/web", false},
    {"spiffe://example.org/*/web", "spiffe://example.org/ns/web", true},
    {"spiffe://example.org/ns/prod/web", "SPIFFE://example.org/ns/prod/web",
     false},
};

START_TEST(test_uri_wildcard_table)
{
	check_san_table(TSGATE_CONFIG_SAN_URI, "URI:", uri_cases, N(uri_cases));
}
END_TEST

START_TEST(test_email_wildcard_table)
{
	check_san_table(TSGATE_CONFIG_SAN_EMAIL, "email:", email_cases,
			N(email_cases));
}
END_TEST

/*
 * Subjects as GnuTLS prints them (RFC 4514, most specific RDN first; a
 * '=' in a value is not escaped, ',' and '+' are).
 */
static const struct {
	const char *pattern;
	const char *subject;
	bool match;
} dn_cases[] = {
    {"CN=app-*,O=Example", "CN=app-x,O=Example", true},
    /* '*' stays inside one RDN value */
    {"CN=app-*,O=Example", "CN=app-x,OU=Contractors,O=Example", false},
    {"CN=*,O=Example", "CN=x,O=Evil,O=Example", false},
    {"CN=*,O=Example", "CN=alice,O=Example,C=US", false},
    {"CN=*,O=Example", "O=Example", false},
    /* several CNs: the pattern's RDNs line up with the subject's */
    {"CN=app-*,O=Example", "CN=app-1,CN=root,O=Example", false},
    {"CN=root,O=Example", "CN=app-1,CN=root,O=Example", false},
    {"CN=app-*,CN=root,O=Example", "CN=app-1,CN=root,O=Example", true},
    /* an escaped comma is part of the value, not an RDN boundary */
    {"CN=app-*,O=Example", "CN=app-x\\,OU=Contractors,O=Example", true},
    {"CN=a\\,b,O=Example", "CN=a\\,b,O=Example", true},
    {"CN=a\\2Cb,O=Example", "CN=a\\,b,O=Example", true},
    {"CN=a,OU=b,O=Example", "CN=a\\,OU=b,O=Example", false},
    /* "CN=" inside another attribute's value is that value */
    {"CN=root,O=*", "CN=app-1,O=CN=root", false},
    {"CN=app-1,O=CN\\=root", "CN=app-1,O=CN=root", true},
    {"CN=app-1,O=CN=root", "CN=app-1,O=CN\\=root", true},
    {"CN=root", "O=CN\\=root", false},
    /* multi-valued RDNs: '+' joins attributes of one RDN */
    {"CN=a+UID=b,O=X", "CN=a+UID=b,O=X", true},
    {"CN=*,O=X", "CN=a+UID=b,O=X", false},
    {"CN=a,UID=b,O=X", "CN=a+UID=b,O=X", false},
    {"CN=*+UID=b,O=X", "CN=a+UID=b,O=X", true},
    /* attribute types ignore case, values do not */
    {"cn=alice,o=Example", "CN=alice,O=Example", true},
    {"CN=Alice,O=Example", "CN=alice,O=Example", false},
    /* a literal '*' is written \2A */
    {"CN=\\2A,O=X", "CN=*,O=X", true},
    {"CN=\\2A,O=X", "CN=a,O=X", false},
    /* an empty CN names no one; a non-string value is no name */
    {"CN=*,O=X", "CN=,O=X", false},
    {"CN=,O=X", "CN=,O=X", true},
    {"CN=*,O=X", "CN=#0c06616c00696365,O=X", false},
    /* a subject that does not parse matches nothing */
    {"CN=*", "CN=a\\", false},
    {"CN=*", "CN=a\\00b", false},
    {"CN=*", "garbage", false},
    /* UTF-8 values compare as bytes */
    {"CN=j\xc3\xb6rg,O=X", "CN=j\xc3\xb6rg,O=X", true},
    {"CN=j*,O=X", "CN=j\xc3\xb6rg,O=X", true},
};

START_TEST(test_subject_rdn_table)
{
	const char *pat[1];
	struct tsgate_config_match m = {
	    .has_match = true, .client_subject = pat, .num_client_subject = 1};
	struct tsgate_peer_info info = {
	    .tls = true, .client_cert = true, .cert_verified = true};
	size_t i;

	for (i = 0; i < N(dn_cases); i++) {
		pat[0] = dn_cases[i].pattern;
		info.client_subject = dn_cases[i].subject;
		ck_assert_msg(tsgate_route_matches(&m, &info) ==
				  dn_cases[i].match,
			      "client_subject '%s' vs '%s': expected %s",
			      dn_cases[i].pattern, dn_cases[i].subject,
			      dn_cases[i].match ? "match" : "no match");
	}
}
END_TEST

/*
 * Defect 2 of issue 13: a certificate with a name that cannot be a name
 * (tstream_tls_peer_name_error) matches no name pattern, not even "*",
 * whatever names are still around.
 */
START_TEST(test_name_error_matches_nothing)
{
	const char *cn_any[] = {"CN=*"};
	struct tsgate_config_san sans_pat[] = {
	    {TSGATE_CONFIG_SAN_DNS, "*"},
	    {TSGATE_CONFIG_SAN_EMAIL, "*"},
	    {TSGATE_CONFIG_SAN_URI, "*"},
	    {TSGATE_CONFIG_SAN_IP, "*"},
	};
	const char *peer_sans[] = {"DNS:alice.ops.example.com",
				   "email:a@example.com", "URI:x:y",
				   "IP:127.0.0.1", NULL};
	struct tsgate_config_match san = {.has_match = true,
					  .client_san = sans_pat,
					  .num_client_san = N(sans_pat)};
	struct tsgate_config_match dn = {.has_match = true,
					 .client_subject = cn_any,
					 .num_client_subject = 1};
	struct tsgate_peer_info info = {
	    .tls = true,
	    .client_cert = true,
	    .cert_verified = true,
	    .client_subject = "CN=alice",
	    .client_cn = "alice",
	    .client_sans = peer_sans,
	    .num_client_sans = 4,
	};

	ck_assert(tsgate_route_matches(&san, &info));
	ck_assert(tsgate_route_matches(&dn, &info));
	info.client_name_error = "DNS SAN holds a NUL byte";
	ck_assert(!tsgate_route_matches(&san, &info));
	ck_assert(!tsgate_route_matches(&dn, &info));
}
END_TEST

/* Patterns that cannot mean what they read are config errors. */
START_TEST(test_bad_patterns_refused)
{
	static const struct {
		const char *match;
		const char *error;
	} cases[] = {
	    {"{client_san: \"DNS:*.*.example.com\"}", "one '*' only"},
	    {"{client_san: \"DNS:a.*.example.com\"}", "leftmost label"},
	    {"{client_san: \"DNS:app-*\"}", "leftmost label"},
	    {"{client_san: \"DNS:a..example.com\"}", "empty label"},
	    {"{sni: \"www.*.example.com\"}", "leftmost label"},
	    {"{sni: \"example.*\"}", "leftmost label"},
	    {"{client_subject: \"*CN=alice*\"}", "a '*' may only stand"},
	    {"{client_subject: \"CN=a,\"}", "ends with a separator"},
	    {"{client_subject: \"CN=a\\\\q\"}", "escape"},
	    {"{client_subject: \"alice\"}", "TYPE=VALUE"},
	    {"{client_subject: \"CN=a\\\\00\"}", "NUL"},
	};
	char *dir = tt_mkdtemp(tt_mem);
	size_t i;

	for (i = 0; i < N(cases); i++) {
		struct tsgate_config *cfg = NULL;
		struct tsgate_config_errors *errs = NULL;
		char *yaml = talloc_asprintf(
		    tt_mem,
		    "listeners:\n"
		    "  - name: l\n"
		    "    listen: \"tcp://127.0.0.1:1\"\n"
		    "    accept: tls\n"
		    "    tls: {cert: /dev/null, key: /dev/null, client_ca: "
		    "/dev/null, verify_client: require}\n"
		    "    routes:\n"
		    "      - match: %s\n"
		    "        backend: \"tcp://127.0.0.1:2\"\n",
		    cases[i].match);
		int ret = tsgate_config_load_buffer(
		    tt_mem, "p.yaml", dir, (const uint8_t *)yaml, strlen(yaml),
		    TSGATE_CONFIG_NO_RESOLVE, &cfg, &errs);
		bool found = false;
		size_t j;

		ck_assert_msg(ret != 0, "%s accepted", cases[i].match);
		for (j = 0; errs != NULL && j < errs->num_errors; j++) {
			char *msg = tsgate_config_error_string(
			    tt_mem, &errs->errors[j]);

			found = found || strstr(msg, cases[i].error) != NULL;
		}
		ck_assert_msg(found, "%s: no error about '%s'", cases[i].match,
			      cases[i].error);
		TALLOC_FREE(cfg);
		TALLOC_FREE(errs);
	}
	tt_rmtree(dir);
}
END_TEST

static const struct name_case principal_cases[] = {
    {"*@EXAMPLE.COM", "alice@EXAMPLE.COM", true},
    /* '*' is one component: a user pattern never takes an admin or a host */
    {"*@EXAMPLE.COM", "alice/admin@EXAMPLE.COM", false},
    {"*@EXAMPLE.COM", "host/evil.example.com@EXAMPLE.COM", false},
    {"*/admin@EXAMPLE.COM", "alice/admin@EXAMPLE.COM", true},
    {"*/admin@EXAMPLE.COM", "a/b/admin@EXAMPLE.COM", false},
    {"HTTP/*@EXAMPLE.COM", "HTTP/gw.example.com@EXAMPLE.COM", true},
    {"HTTP/*@EXAMPLE.COM", "HTTP/gw/x@EXAMPLE.COM", false},
    /* '*' in the realm stays in the realm */
    {"alice@*", "alice@OTHER.ORG", true},
    {"alice@*", "alice/admin@OTHER.ORG", false},
    /* an escaped '@' inside a component is no realm separator to '*' */
    {"*@EXAMPLE.COM", "alice\\@EVIL.ORG@EXAMPLE.COM", false},
    {"alice@EXAMPLE.COM", "alice@EXAMPLE.COM.EVIL", false},
    {"alice@EXAMPLE.COM", "Alice@EXAMPLE.COM", false},
};

static const struct name_case ip_cases[] = {
    {"10.0.0.7", "10.0.0.7", true},
    {"10.0.0.*", "10.0.0.255", true},
    /* '*' is one octet or one group */
    {"10.*.7", "10.0.0.7", false},
    {"10.0.*", "10.0.0.7", false},
    {"10.0.0.*", "10.0.0.7.evil", false},
    {"2001:db8::*", "2001:db8::1", true},
    {"2001:db8:*", "2001:db8:0:1::1", false},
    {"2001:DB8::1", "2001:db8::1", true},
};

START_TEST(test_principal_wildcard_table)
{
	const char *princ[] = {NULL};
	struct tsgate_config_match m = {
	    .has_match = true, .principal = princ, .num_principal = 1};
	struct tsgate_peer_info info = {.gssapi = true};
	size_t i;

	for (i = 0; i < N(principal_cases); i++) {
		princ[0] = principal_cases[i].pattern;
		info.principal = principal_cases[i].name;
		ck_assert_msg(tsgate_route_matches(&m, &info) ==
				  principal_cases[i].match,
			      "%s vs %s", principal_cases[i].pattern,
			      principal_cases[i].name);
	}
}
END_TEST

START_TEST(test_ip_wildcard_table)
{
	check_san_table(TSGATE_CONFIG_SAN_IP, "IP:", ip_cases, N(ip_cases));
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

	tc = tt_tcase(s, "hostile names", 10);
	tcase_add_test(tc, test_dns_wildcard_table);
	tcase_add_test(tc, test_email_wildcard_table);
	tcase_add_test(tc, test_uri_wildcard_table);
	tcase_add_test(tc, test_principal_wildcard_table);
	tcase_add_test(tc, test_ip_wildcard_table);
	tcase_add_test(tc, test_subject_rdn_table);
	tcase_add_test(tc, test_name_error_matches_nothing);
	tcase_add_test(tc, test_bad_patterns_refused);

	tc = tt_tcase(s, "select", 10);
	tcase_add_test(tc, test_first_match_wins);
	tcase_add_test(tc, test_from_yaml);

	return s;
}

int main(void)
{
	return tt_run_suite(route_suite());
}
