/* SPDX-License-Identifier: MIT */
/*
 * tt-kdc: run a throw-away KDC (tests/common/tt_kdc.c) for shell-driven
 * tests. Prints shell "export VAR=value" lines, then "# ready", and keeps
 * the KDC until SIGTERM/SIGINT/SIGHUP; then stops it and removes its
 * directory.
 *
 *   tt-kdc [--anonymous] > kdc.env & kdc=$!
 *   until grep -q '^# ready' kdc.env; do sleep 0.05; done
 *   . ./kdc.env        # KRB5_CONFIG, KRB5_KDC_PROFILE, TT_KDC_* ...
 *   ...
 *   kill $kdc; wait $kdc
 */
#include "tt_kdc.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static void print_export(const char *name, const char *value)
{
	printf("export %s='%s'\n", name, value);
}

int main(int argc, char **argv)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tt_kdc *kdc;
	sigset_t set;
	int sig = 0;
	char port[16];
	char pid[16];

	unsigned flags = 0;

	if (argc == 2 && strcmp(argv[1], "--anonymous") == 0) {
		flags |= TT_KDC_ANONYMOUS;
	} else if (argc > 1) {
		fprintf(stderr,
			"usage: %s [--anonymous]  (see the comment in %s)\n",
			argv[0], __FILE__);
		return 2;
	}
	if (!tt_kdc_available()) {
		fprintf(stderr, "tt-kdc: krb5kdc/kadmin.local/kinit missing\n");
		return 77;
	}
	if ((flags & TT_KDC_ANONYMOUS) && !tt_kdc_anonymous_available()) {
		fprintf(stderr, "tt-kdc: krb5-pkinit or openssl missing\n");
		return 77;
	}

	/*
	 * Block the stop signals only after the start: krb5kdc would
	 * inherit the mask and ignore SIGTERM.
	 */
	kdc = tt_kdc_start_opts(mem, flags);
	if (kdc == NULL) {
		talloc_free(mem);
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	for (size_t i = 0; kdc->env[i] != NULL; i++) {
		char *eq = strchr(kdc->env[i], '=');

		*eq = '\0';
		print_export(kdc->env[i], eq + 1);
		*eq = '=';
	}
	snprintf(port, sizeof(port), "%u", kdc->port);
	snprintf(pid, sizeof(pid), "%d", (int)kdc->pid);
	print_export("TT_KDC_DIR", kdc->dir);
	print_export("TT_KDC_REALM", kdc->realm);
	print_export("TT_KDC_ADDR", kdc->addr);
	print_export("TT_KDC_PORT", port);
	print_export("TT_KDC_PID", pid);
	print_export("TT_KDC_SERVICE", "host/localhost");
	print_export("TT_KDC_SERVICE_KEYTAB", kdc->service_keytab);
	print_export("TT_KDC_ALICE_KEYTAB", kdc->alice_keytab);
	print_export("TT_KDC_ALICE_CCACHE", kdc->alice_ccache);
	print_export("TT_KDC_BOB_KEYTAB", kdc->bob_keytab);
	print_export("TT_KDC_BOB_CCACHE", kdc->bob_ccache);
	if (kdc->anon_ccache != NULL) {
		print_export("TT_KDC_ANON_CCACHE", kdc->anon_ccache);
	}
	printf("# ready\n");
	fflush(stdout);

	sigwait(&set, &sig);
	talloc_free(mem);
	return 0;
}
