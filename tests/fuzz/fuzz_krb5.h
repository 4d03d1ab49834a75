/* SPDX-License-Identifier: MIT */
/*
 * Kerberos set-up shared by the GSSAPI fuzzers: a private krb5.conf, a
 * keytab for the service and a ticket to it, all without a KDC.
 */
#ifndef TSGATE_FUZZ_KRB5_H
#define TSGATE_FUZZ_KRB5_H

#define FUZZ_KRB5_REALM   "TSGATE.TEST"
#define FUZZ_KRB5_SERVICE "host/localhost@" FUZZ_KRB5_REALM
#define FUZZ_KRB5_CLIENT  "alice@" FUZZ_KRB5_REALM
/* A MEMORY ccache holding alice's ticket to FUZZ_KRB5_SERVICE. */
#define FUZZ_KRB5_CCACHE "MEMORY:tsgate-fuzz"
/*
 * The service keys derive from it (normal salt), so tokens from a KDC
 * that knows the same password decrypt: see make_gssapi_seeds.sh.
 */
#define FUZZ_KRB5_PASSWORD "tsgate-fuzz-service-key"

/**
 * @brief In dir: a krb5.conf (no DNS, a KDC that is never there) made
 * the process's (KRB5_CONFIG, no replay cache, KRB5CCNAME =
 * FUZZ_KRB5_CCACHE); a keytab with the service's AES keys from
 * FUZZ_KRB5_PASSWORD for kvno 1-4; a ticket for alice to the service
 * forged with that key (valid 30 days) in FUZZ_KRB5_CCACHE.
 *
 * @return The keytab's path (static storage). Aborts on any failure.
 */
const char *fuzz_krb5_setup(const char *dir);

#endif
