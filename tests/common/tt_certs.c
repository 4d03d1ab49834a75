/* SPDX-License-Identifier: MIT */
#include "tt_certs.h"
#include "tt.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

static int tt_certs_destructor(struct tt_certs *c)
{
	tt_rmtree(c->dir);
	return 0;
}

static char *path_of(struct tt_certs *c, const char *name)
{
	return talloc_asprintf(c, "%s/%s", c->dir, name);
}

static bool write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		return false;
	}
	fputs(text, f);
	return fclose(f) == 0;
}

static bool run(const char *const argv[])
{
	pid_t pid = tt_spawn(argv, NULL, NULL, NULL, true);
	int status;

	if (pid < 0) {
		return false;
	}
	status = tt_wait_exit(pid, 60000);
	if (status == -1) {
		tt_stop(pid, 100);
		return false;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "tt_certs: %s %s failed\n", argv[0], argv[1]);
		return false;
	}
	return true;
}

static bool gen_key(const char *path, bool rsa)
{
	const char *ec[] = {
	    "certtool",  "--generate-privkey", "--key-type", "ecdsa", "--curve",
	    "secp256r1", "--no-text",          "--outfile",  path,    NULL};
	const char *r[] = {
	    "certtool", "--generate-privkey", "--key-type", "rsa", "--bits",
	    "2048",     "--no-text",          "--outfile",  path,  NULL};

	return run(rsa ? r : ec);
}

/* Key + certificate from a template; self-signed when ca_crt is NULL. */
static bool gen_cert(struct tt_certs *c,
		     const char *name,
		     bool rsa,
		     const char *tmpl_text,
		     const char *ca_crt,
		     const char *ca_key,
		     char **crt_out,
		     char **key_out)
{
	char *key = path_of(c, talloc_asprintf(c, "%s.key", name));
	char *crt = path_of(c, talloc_asprintf(c, "%s.crt", name));
	char *tmpl = path_of(c, talloc_asprintf(c, "%s.tmpl", name));

	if (!gen_key(key, rsa) || !write_text(tmpl, tmpl_text)) {
		return false;
	}
	if (ca_crt == NULL) {
		const char *argv[] = {"certtool",
				      "--generate-self-signed",
				      "--load-privkey",
				      key,
				      "--template",
				      tmpl,
				      "--no-text",
				      "--outfile",
				      crt,
				      NULL};

		if (!run(argv)) {
			return false;
		}
	} else {
		const char *argv[] = {"certtool",
				      "--generate-certificate",
				      "--load-privkey",
				      key,
				      "--load-ca-certificate",
				      ca_crt,
				      "--load-ca-privkey",
				      ca_key,
				      "--template",
				      tmpl,
				      "--no-text",
				      "--outfile",
				      crt,
				      NULL};

		if (!run(argv)) {
			return false;
		}
	}
	*crt_out = crt;
	*key_out = key;
	return true;
}

#define CA_TMPL(cn)                                              \
	"cn = \"" cn "\"\norganization = \"tsgate tests\"\nca\n" \
	"cert_signing_key\ncrl_signing_key\nexpiration_days = 30\n"

#define SERVER_TMPL                                                \
	"cn = \"localhost\"\ndns_name = \"localhost\"\n"           \
	"dns_name = \"server.test\"\nip_address = \"127.0.0.1\"\n" \
	"ip_address = \"::1\"\ntls_www_server\nsigning_key\n"      \
	"encryption_key\nexpiration_days = 30\n"

struct tt_certs *tt_certs_create(TALLOC_CTX *mem_ctx)
{
	struct tt_certs *c = talloc_zero(mem_ctx, struct tt_certs);
	bool ok;

	if (c == NULL) {
		return NULL;
	}
	c->dir = tt_mkdtemp(c);
	if (c->dir == NULL) {
		talloc_free(c);
		return NULL;
	}
	talloc_set_destructor(c, tt_certs_destructor);

	ok = gen_cert(c, "ca", false, CA_TMPL("tsgate test CA"), NULL, NULL,
		      &c->ca_crt, &c->ca_key) &&
	     gen_cert(c, "ca2", false, CA_TMPL("other test CA"), NULL, NULL,
		      &c->ca2_crt, &c->ca2_key) &&
	     gen_cert(c, "srv-ec", false, SERVER_TMPL, c->ca_crt, c->ca_key,
		      &c->srv_ec_crt, &c->srv_ec_key) &&
	     gen_cert(c, "srv-rsa", true, SERVER_TMPL, c->ca_crt, c->ca_key,
		      &c->srv_rsa_crt, &c->srv_rsa_key) &&
	     gen_cert(c, "a", false,
		      "cn = \"a.test\"\ndns_name = \"a.test\"\n"
		      "tls_www_server\nsigning_key\nexpiration_days = 30\n",
		      c->ca_crt, c->ca_key, &c->a_crt, &c->a_key) &&
	     gen_cert(c, "b", false,
		      "cn = \"b.test\"\ndns_name = \"*.b.test\"\n"
		      "tls_www_server\nsigning_key\nexpiration_days = 30\n",
		      c->ca_crt, c->ca_key, &c->b_crt, &c->b_key) &&
	     gen_cert(c, "expired", false,
		      "cn = \"localhost\"\ndns_name = \"localhost\"\n"
		      "ip_address = \"127.0.0.1\"\n"
		      "tls_www_server\nsigning_key\n"
		      "activation_date = \"2020-01-01 00:00:00\"\n"
		      "expiration_date = \"2020-02-01 00:00:00\"\n",
		      c->ca_crt, c->ca_key, &c->expired_crt, &c->expired_key) &&
	     gen_cert(c, "other-srv", false, SERVER_TMPL, c->ca2_crt,
		      c->ca2_key, &c->other_srv_crt, &c->other_srv_key) &&
	     gen_cert(c, "client", false,
		      "cn = \"alice\"\norganization = \"Example\"\n"
		      "dns_name = \"alice.corp.test\"\n"
		      "email = \"alice@corp.test\"\n"
		      "uri = \"spiffe://test/alice\"\n"
		      "ip_address = \"127.0.0.2\"\n"
		      "tls_www_client\nsigning_key\nexpiration_days = 30\n",
		      c->ca_crt, c->ca_key, &c->client_crt, &c->client_key) &&
	     gen_cert(c, "client2", false,
		      "cn = \"eve\"\ntls_www_client\nsigning_key\n"
		      "expiration_days = 30\n",
		      c->ca2_crt, c->ca2_key, &c->client2_crt,
		      &c->client2_key) &&
	     gen_cert(c, "revoked", false,
		      "cn = \"mallory\"\ntls_www_client\nsigning_key\n"
		      "expiration_days = 30\n",
		      c->ca_crt, c->ca_key, &c->revoked_crt, &c->revoked_key);
	if (ok) {
		char *tmpl = path_of(c, "crl.tmpl");
		const char *argv[] = {"certtool",
				      "--generate-crl",
				      "--load-ca-privkey",
				      c->ca_key,
				      "--load-ca-certificate",
				      c->ca_crt,
				      "--load-certificate",
				      c->revoked_crt,
				      "--template",
				      tmpl,
				      "--no-text",
				      "--outfile",
				      NULL,
				      NULL};

		c->crl = path_of(c, "crl.pem");
		argv[12] = c->crl;
		ok = write_text(tmpl,
				"crl_next_update = 30\ncrl_number = 1\n") &&
		     run(argv);
	}
	if (ok) {
		c->garbage = path_of(c, "garbage.pem");
		ok = write_text(c->garbage, "this is not a certificate\n");
	}
	if (!ok) {
		fprintf(stderr, "tt_certs: cannot make the test PKI\n");
		talloc_free(c);
		return NULL;
	}
	return c;
}
