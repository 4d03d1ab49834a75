/* SPDX-License-Identifier: MIT */
/*
 * A throw-away MIT KDC for tests: krb5kdc in a temporary directory with
 * its own realm, krb5.conf and kdc.conf, listening on a random
 * 127.x.y.z address, stopped by pid when the struct is freed.
 *
 * Principals made at start: host/localhost (keytab), alice and bob (each
 * with a keytab and a ccache obtained with kinit).
 *
 * The Kerberos libraries read KRB5_CONFIG & co. from the environment of
 * the process: call tt_kdc_setenv() before the first GSSAPI/krb5 call
 * that should use this KDC (or run that code in a child). Everything
 * that is spawned through tt_kdc_run() gets the environment anyway.
 */
#ifndef TT_KDC_H
#define TT_KDC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <talloc.h>

#define TT_KDC_REALM "TSGATE.TEST"

struct tt_kdc {
	char *dir;            /* temp dir, removed on free */
	char *realm;          /* TT_KDC_REALM */
	char *addr;           /* "127.x.y.z" */
	uint16_t port;        /* UDP and TCP */
	pid_t pid;            /* krb5kdc -n */
	char *krb5_conf;      /* KRB5_CONFIG */
	char *kdc_conf;       /* KRB5_KDC_PROFILE */
	char *rcache_dir;     /* KRB5RCACHEDIR */
	char *service_keytab; /* host/localhost */
	char *alice_keytab;
	char *alice_ccache; /* "FILE:..." */
	char *bob_keytab;
	char *bob_ccache;  /* "FILE:..." */
	char *anon_ccache; /* "FILE:...", TT_KDC_ANONYMOUS only */
	char **env;        /* NULL-terminated "K=V" list */
};

/*
 * Start a KDC. Returns NULL (and prints why to stderr) when krb5kdc or
 * the admin tools are missing or fail. Freeing the result stops the KDC
 * by pid and removes the directory.
 */
struct tt_kdc *tt_kdc_start(TALLOC_CTX *mem_ctx);

/* Whether the MIT KDC programs are installed (else: skip the test). */
bool tt_kdc_available(void);

/*
 * With TT_KDC_ANONYMOUS the KDC also does anonymous PKINIT (a throw-away
 * CA and KDC certificate made with openssl, WELLKNOWN/ANONYMOUS) and
 * anon_ccache holds an anonymous TGT (kinit -n). Needs krb5-pkinit.
 */
#define TT_KDC_ANONYMOUS 0x1
struct tt_kdc *tt_kdc_start_opts(TALLOC_CTX *mem_ctx, unsigned flags);

/* Whether TT_KDC_ANONYMOUS can work here (pkinit plugin, openssl). */
bool tt_kdc_anonymous_available(void);

/* setenv() the variables of kdc->env in this process. */
void tt_kdc_setenv(const struct tt_kdc *kdc);

/*
 * Run a program with the KDC's environment, feeding it `input` (or
 * nothing) on stdin; returns its exit status (0 good) or -1.
 * Bounded: killed after 20 s. With input, SIGPIPE is set to SIG_IGN in
 * this process (a program that exits early must not kill the test).
 */
int tt_kdc_run(const struct tt_kdc *kdc,
	       const char *const argv[],
	       const char *input);

/* kadmin.local: add a principal with a random key; keytab may be NULL. */
int tt_kdc_add_principal(const struct tt_kdc *kdc,
			 const char *principal,
			 const char *keytab);

/*
 * kinit -k -t keytab principal into ccache ("FILE:..."), with a ticket
 * lifetime (kinit -l syntax, e.g. "10h", "3s") or NULL for the default.
 */
int tt_kdc_kinit(const struct tt_kdc *kdc,
		 const char *principal,
		 const char *keytab,
		 const char *ccache,
		 const char *lifetime);

#endif
