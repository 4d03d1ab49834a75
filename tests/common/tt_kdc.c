/* SPDX-License-Identifier: MIT */
/*
 * A throw-away MIT KDC for tests (see tt_kdc.h).
 */
#include "tt_kdc.h"
#include "tt.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define KDC_BIN           "/usr/sbin/krb5kdc"
#define KDB5_UTIL_BIN     "/usr/sbin/kdb5_util"
#define KADMIN_LOCAL_BIN  "/usr/sbin/kadmin.local"
#define KINIT_BIN         "/usr/bin/kinit"
#define OPENSSL_BIN       "/usr/bin/openssl"
#define PKINIT_PLUGIN     "/usr/lib/x86_64-linux-gnu/krb5/plugins/preauth/pkinit.so"
#define PKINIT_PLUGIN_ALT "/usr/lib/krb5/plugins/preauth/pkinit.so"

bool tt_kdc_available(void)
{
	return access(KDC_BIN, X_OK) == 0 && access(KDB5_UTIL_BIN, X_OK) == 0 &&
	       access(KADMIN_LOCAL_BIN, X_OK) == 0 &&
	       access(KINIT_BIN, X_OK) == 0;
}

static bool write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (f == NULL) {
		return false;
	}
	ok = fputs(text, f) >= 0;
	if (fclose(f) != 0) {
		ok = false;
	}
	return ok;
}

/* Can we bind both UDP and TCP on addr:port right now? */
static bool addr_port_free(const char *addr, uint16_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	int types[] = {SOCK_STREAM, SOCK_DGRAM};
	bool ok = true;

	sin.sin_port = htons(port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		return false;
	}
	for (size_t i = 0; i < 2 && ok; i++) {
		int fd = socket(AF_INET, types[i] | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			return false;
		}
		ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
		close(fd);
	}
	return ok;
}

static int tt_kdc_destructor(struct tt_kdc *kdc)
{
	if (kdc->pid > 0) {
		tt_stop(kdc->pid, 2000);
		kdc->pid = -1;
	}
	if (kdc->dir != NULL && getenv("TT_KDC_KEEP") == NULL) {
		tt_rmtree(kdc->dir);
	}
	return 0;
}

int tt_kdc_run(const struct tt_kdc *kdc,
	       const char *const argv[],
	       const char *input)
{
	char *log = talloc_asprintf(NULL, "%s/commands.log", kdc->dir);
	int in[2];
	pid_t pid;
	int status;

	if (log == NULL || pipe2(in, O_CLOEXEC) != 0) {
		talloc_free(log);
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		close(in[0]);
		close(in[1]);
		talloc_free(log);
		return -1;
	}
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		dup2(in[0], 0);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		for (size_t i = 0; kdc->env[i] != NULL; i++) {
			putenv(kdc->env[i]);
		}
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	talloc_free(log);
	close(in[0]);
	if (input != NULL) {
		size_t len = strlen(input);
		size_t done = 0;

		signal(SIGPIPE, SIG_IGN);
		while (done < len) {
			ssize_t n = write(in[1], input + done, len - done);

			if (n < 0 && errno == EINTR) {
				continue;
			}
			if (n <= 0) {
				break;
			}
			done += (size_t)n;
		}
	}
	close(in[1]);
	status = tt_wait_exit(pid, 20000);
	if (status == -1) {
		tt_stop(pid, 100);
		return -1;
	}
	if (!WIFEXITED(status)) {
		return -1;
	}
	return WEXITSTATUS(status);
}

int tt_kdc_add_principal(const struct tt_kdc *kdc,
			 const char *principal,
			 const char *keytab)
{
	const char *argv[] = {KADMIN_LOCAL_BIN, NULL};
	char *input;
	int ret;

	if (keytab != NULL) {
		input = talloc_asprintf(NULL,
					"addprinc -randkey %s\n"
					"ktadd -k %s %s\n",
					principal, keytab, principal);
	} else {
		input =
		    talloc_asprintf(NULL, "addprinc -randkey %s\n", principal);
	}
	if (input == NULL) {
		return -1;
	}
	ret = tt_kdc_run(kdc, argv, input);
	talloc_free(input);
	return ret;
}

int tt_kdc_kinit(const struct tt_kdc *kdc,
		 const char *principal,
		 const char *keytab,
		 const char *ccache,
		 const char *lifetime)
{
	const char *argv[10];
	size_t n = 0;

	argv[n++] = KINIT_BIN;
	argv[n++] = "-k";
	argv[n++] = "-t";
	argv[n++] = keytab;
	argv[n++] = "-c";
	argv[n++] = ccache;
	if (lifetime != NULL) {
		argv[n++] = "-l";
		argv[n++] = lifetime;
	}
	argv[n++] = principal;
	argv[n] = NULL;
	return tt_kdc_run(kdc, argv, NULL);
}

void tt_kdc_setenv(const struct tt_kdc *kdc)
{
	for (size_t i = 0; kdc->env[i] != NULL; i++) {
		char *eq = strchr(kdc->env[i], '=');
		char *name;

		if (eq == NULL) {
			continue;
		}
		name = talloc_strndup(NULL, kdc->env[i],
				      (size_t)(eq - kdc->env[i]));
		if (name != NULL) {
			setenv(name, eq + 1, 1);
		}
		talloc_free(name);
	}
}

static bool pick_address(struct tt_kdc *kdc)
{
	for (int attempt = 0; attempt < 50; attempt++) {
		uint8_t r[5];

		if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
			return false;
		}
		talloc_free(kdc->addr);
		kdc->addr = talloc_asprintf(kdc, "127.%u.%u.%u", 1 + r[0] % 254,
					    r[1], 1 + r[2] % 254);
		kdc->port = (uint16_t)(20000 + ((r[3] << 8) | r[4]) % 30000);
		if (kdc->addr != NULL && addr_port_free(kdc->addr, kdc->port)) {
			return true;
		}
	}
	return false;
}

static bool write_configs(struct tt_kdc *kdc, bool anonymous)
{
	char *krb5_realm_extra = talloc_strdup(kdc, "");
	char *kdc_realm_extra = talloc_strdup(kdc, "");

	char *krb5;
	char *kdcconf;
	char *acl;

	if (anonymous) {
		/*
		 * Anonymous PKINIT: the client accepts a KDC certificate
		 * with a dNSName SAN and the serverAuth EKU, simpler to make
		 * with the openssl tool than the id-pkinit-san form.
		 */
		krb5_realm_extra = talloc_asprintf(
		    kdc,
		    "\t\tpkinit_anchors = FILE:%s/ca.crt\n"
		    "\t\tpkinit_kdc_hostname = kdc.tsgate.test\n"
		    "\t\tpkinit_eku_checking = kpServerAuth\n",
		    kdc->dir);
		kdc_realm_extra = talloc_asprintf(
		    kdc,
		    "\t\tpkinit_identity = FILE:%s/kdc.crt,%s/kdc.key\n"
		    "\t\tpkinit_anchors = FILE:%s/ca.crt\n",
		    kdc->dir, kdc->dir, kdc->dir);
	}
	if (krb5_realm_extra == NULL || kdc_realm_extra == NULL) {
		return false;
	}
	krb5 = talloc_asprintf(
	    kdc,
	    "[libdefaults]\n"
	    "\tdefault_realm = %s\n"
	    "\tdns_lookup_kdc = false\n"
	    "\tdns_lookup_realm = false\n"
	    "\tdns_canonicalize_hostname = false\n"
	    "\trdns = false\n"
	    "\tqualify_shortname = \"\"\n"
	    /* short, so context expiry is testable on the acceptor too */
	    "\tclockskew = 2\n"
	    "\tdefault_ccache_name = FILE:%s/default.ccache\n"
	    "\tdefault_keytab_name = FILE:%s/default.keytab\n"
	    "\tdefault_client_keytab_name = FILE:%s/default-client.keytab\n"
	    "\tkdc_timeout = 2000\n"
	    "\tmax_retries = 2\n"
	    "[realms]\n"
	    "\t%s = {\n"
	    "%s"
	    "\t\tkdc = tcp/%s:%u\n"
	    "\t\tkdc = %s:%u\n"
	    "\t}\n"
	    "[domain_realm]\n"
	    "\tlocalhost = %s\n",
	    kdc->realm, kdc->dir, kdc->dir, kdc->dir, kdc->realm,
	    krb5_realm_extra, kdc->addr, kdc->port, kdc->addr, kdc->port,
	    kdc->realm);
	kdcconf = talloc_asprintf(
	    kdc,
	    "[kdcdefaults]\n"
	    "\tkdc_listen = %s:%u\n"
	    "\tkdc_tcp_listen = %s:%u\n"
	    "[realms]\n"
	    "\t%s = {\n"
	    "\t\tdatabase_name = %s/principal\n"
	    "\t\tkey_stash_file = %s/stash\n"
	    "\t\tacl_file = %s/kadm5.acl\n"
	    "\t\tmax_life = 10h\n"
	    "\t\tmax_renewable_life = 0\n"
	    "\t\tsupported_enctypes = aes256-cts-hmac-sha1-96:normal "
	    "aes128-cts-hmac-sha1-96:normal\n"
	    "%s"
	    "\t}\n"
	    "[logging]\n"
	    "\tkdc = FILE:%s/kdc.log\n"
	    "\tadmin_server = FILE:%s/kadmin.log\n"
	    "\tdefault = FILE:%s/krb5.log\n",
	    kdc->addr, kdc->port, kdc->addr, kdc->port, kdc->realm, kdc->dir,
	    kdc->dir, kdc->dir, kdc_realm_extra, kdc->dir, kdc->dir, kdc->dir);
	acl = talloc_asprintf(kdc, "%s/kadm5.acl", kdc->dir);

	if (krb5 == NULL || kdcconf == NULL || acl == NULL) {
		return false;
	}
	return write_file(kdc->krb5_conf, krb5) &&
	       write_file(kdc->kdc_conf, kdcconf) && write_file(acl, "");
}

bool tt_kdc_anonymous_available(void)
{
	return tt_kdc_available() && access(OPENSSL_BIN, X_OK) == 0 &&
	       (access(PKINIT_PLUGIN, R_OK) == 0 ||
		access(PKINIT_PLUGIN_ALT, R_OK) == 0);
}

/* A CA and a KDC certificate (P-256) for anonymous PKINIT. */
static bool make_pkinit_certs(struct tt_kdc *kdc)
{
	char *ca_key = talloc_asprintf(kdc, "%s/ca.key", kdc->dir);
	char *ca_crt = talloc_asprintf(kdc, "%s/ca.crt", kdc->dir);
	char *kdc_key = talloc_asprintf(kdc, "%s/kdc.key", kdc->dir);
	char *kdc_csr = talloc_asprintf(kdc, "%s/kdc.csr", kdc->dir);
	char *kdc_crt = talloc_asprintf(kdc, "%s/kdc.crt", kdc->dir);
	char *ext = talloc_asprintf(kdc, "%s/kdc.ext", kdc->dir);
	char *serial = talloc_asprintf(kdc, "%s/ca.srl", kdc->dir);

	if (serial == NULL || ca_key == NULL || ca_crt == NULL ||
	    kdc_key == NULL || kdc_csr == NULL || kdc_crt == NULL ||
	    ext == NULL) {
		return false;
	}
	{
		const char *ca[] = {OPENSSL_BIN,
				    "req",
				    "-x509",
				    "-newkey",
				    "ec",
				    "-pkeyopt",
				    "ec_paramgen_curve:P-256",
				    "-nodes",
				    "-keyout",
				    ca_key,
				    "-out",
				    ca_crt,
				    "-days",
				    "2",
				    "-subj",
				    "/CN=tt-kdc test CA",
				    NULL};
		const char *req[] = {OPENSSL_BIN,
				     "req",
				     "-newkey",
				     "ec",
				     "-pkeyopt",
				     "ec_paramgen_curve:P-256",
				     "-nodes",
				     "-keyout",
				     kdc_key,
				     "-out",
				     kdc_csr,
				     "-subj",
				     "/CN=kdc.tsgate.test",
				     NULL};
		const char *sign[] = {
		    OPENSSL_BIN, "x509",      "-req",  "-in",
		    kdc_csr,     "-CA",       ca_crt,  "-CAkey",
		    ca_key,      "-CAserial", serial,  "-CAcreateserial",
		    "-out",      kdc_crt,     "-days", "2",
		    "-extfile",  ext,         NULL};

		/* MIT wants the digitalSignature key usage too */
		return write_file(ext, "subjectAltName=DNS:kdc.tsgate.test\n"
				       "extendedKeyUsage=serverAuth\n"
				       "keyUsage=digitalSignature\n") &&
		       tt_kdc_run(kdc, ca, NULL) == 0 &&
		       tt_kdc_run(kdc, req, NULL) == 0 &&
		       tt_kdc_run(kdc, sign, NULL) == 0;
	}
}

struct tt_kdc *tt_kdc_start(TALLOC_CTX *mem_ctx)
{
	return tt_kdc_start_opts(mem_ctx, 0);
}

struct tt_kdc *tt_kdc_start_opts(TALLOC_CTX *mem_ctx, unsigned flags)
{
	struct tt_kdc *kdc = talloc_zero(mem_ctx, struct tt_kdc);
	bool anonymous = (flags & TT_KDC_ANONYMOUS) != 0;
	const char *kdb_argv[] = {
	    KDB5_UTIL_BIN, "create",        "-s", "-r", TT_KDC_REALM,
	    "-P",          "tt-kdc-master", NULL};
	const char *kdc_argv[] = {KDC_BIN, "-n", NULL};
	const char *kadmin_argv[] = {KADMIN_LOCAL_BIN, NULL};
	char *input;
	const char *kdc_env[8];
	size_t i;

	if (kdc == NULL) {
		return NULL;
	}
	talloc_set_destructor(kdc, tt_kdc_destructor);
	kdc->dir = tt_mkdtemp(kdc);
	if (kdc->dir == NULL) {
		goto fail;
	}
	kdc->realm = talloc_strdup(kdc, TT_KDC_REALM);
	kdc->krb5_conf = talloc_asprintf(kdc, "%s/krb5.conf", kdc->dir);
	kdc->kdc_conf = talloc_asprintf(kdc, "%s/kdc.conf", kdc->dir);
	kdc->rcache_dir = talloc_asprintf(kdc, "%s/rcache", kdc->dir);
	kdc->service_keytab =
	    talloc_asprintf(kdc, "%s/service.keytab", kdc->dir);
	kdc->alice_keytab = talloc_asprintf(kdc, "%s/alice.keytab", kdc->dir);
	kdc->bob_keytab = talloc_asprintf(kdc, "%s/bob.keytab", kdc->dir);
	kdc->alice_ccache =
	    talloc_asprintf(kdc, "FILE:%s/alice.ccache", kdc->dir);
	kdc->bob_ccache = talloc_asprintf(kdc, "FILE:%s/bob.ccache", kdc->dir);
	kdc->env = talloc_zero_array(kdc, char *, 8);
	if (kdc->rcache_dir == NULL || kdc->bob_ccache == NULL ||
	    kdc->env == NULL || mkdir(kdc->rcache_dir, 0700) != 0) {
		goto fail;
	}
	if (!pick_address(kdc)) {
		fprintf(stderr, "tt_kdc: no free 127.x.y.z address/port\n");
		goto fail;
	}
	kdc->env[0] =
	    talloc_asprintf(kdc->env, "KRB5_CONFIG=%s", kdc->krb5_conf);
	kdc->env[1] =
	    talloc_asprintf(kdc->env, "KRB5_KDC_PROFILE=%s", kdc->kdc_conf);
	kdc->env[2] =
	    talloc_asprintf(kdc->env, "KRB5RCACHEDIR=%s", kdc->rcache_dir);
	kdc->env[3] = talloc_asprintf(
	    kdc->env, "KRB5CCNAME=FILE:%s/default.ccache", kdc->dir);
	kdc->env[4] = talloc_asprintf(
	    kdc->env, "KRB5_KTNAME=FILE:%s/default.keytab", kdc->dir);
	kdc->env[5] = talloc_asprintf(
	    kdc->env, "KRB5_CLIENT_KTNAME=FILE:%s/default-client.keytab",
	    kdc->dir);
	for (i = 0; i < 6; i++) {
		if (kdc->env[i] == NULL) {
			goto fail;
		}
	}
	if (anonymous && !make_pkinit_certs(kdc)) {
		fprintf(stderr, "tt_kdc: openssl failed (%s)\n", kdc->dir);
		goto fail;
	}
	if (!write_configs(kdc, anonymous)) {
		goto fail;
	}
	if (tt_kdc_run(kdc, kdb_argv, NULL) != 0) {
		fprintf(stderr, "tt_kdc: kdb5_util create failed (%s)\n",
			kdc->dir);
		goto fail;
	}
	for (i = 0; i < 6; i++) {
		kdc_env[i] = kdc->env[i];
	}
	kdc_env[i] = NULL;
	kdc->pid = tt_spawn(kdc_argv, kdc_env, NULL, NULL, true);
	if (kdc->pid <= 0) {
		goto fail;
	}
	input = talloc_asprintf(kdc,
				"addprinc -randkey host/localhost\n"
				"ktadd -k %s host/localhost\n"
				"addprinc -randkey alice\n"
				"ktadd -k %s alice\n"
				"addprinc -randkey bob\n"
				"ktadd -k %s bob\n",
				kdc->service_keytab, kdc->alice_keytab,
				kdc->bob_keytab);
	if (input != NULL && anonymous) {
		input = talloc_strdup_append(
		    input, "addprinc -randkey WELLKNOWN/ANONYMOUS\n");
	}
	if (input == NULL || tt_kdc_run(kdc, kadmin_argv, input) != 0) {
		fprintf(stderr, "tt_kdc: kadmin.local failed (%s)\n", kdc->dir);
		goto fail;
	}
	if (!tt_wait_tcp(kdc->addr, kdc->port, 5000)) {
		fprintf(stderr, "tt_kdc: krb5kdc did not start (%s)\n",
			kdc->dir);
		goto fail;
	}
	if (tt_kdc_kinit(kdc, "alice", kdc->alice_keytab, kdc->alice_ccache,
			 NULL) != 0 ||
	    tt_kdc_kinit(kdc, "bob", kdc->bob_keytab, kdc->bob_ccache, NULL) !=
		0) {
		fprintf(stderr, "tt_kdc: kinit failed (%s)\n", kdc->dir);
		goto fail;
	}
	if (anonymous) {
		const char *argv[] = {KINIT_BIN, "-n", "-c", NULL, NULL};

		kdc->anon_ccache =
		    talloc_asprintf(kdc, "FILE:%s/anonymous.ccache", kdc->dir);
		argv[3] = kdc->anon_ccache;
		if (kdc->anon_ccache == NULL ||
		    tt_kdc_run(kdc, argv, NULL) != 0) {
			fprintf(stderr, "tt_kdc: kinit -n failed (%s)\n",
				kdc->dir);
			goto fail;
		}
	}
	return kdc;
fail:
	talloc_free(kdc);
	return NULL;
}
