/* SPDX-License-Identifier: MIT */
/*
 * Test PKI made at run time with certtool (gnutls-bin) in a fresh
 * temporary directory; nothing of it is ever committed.
 */
#ifndef TT_CERTS_H
#define TT_CERTS_H

#include <talloc.h>

struct tt_certs {
	char *dir;
	/* "tsgate test CA" and an unrelated "other test CA" */
	char *ca_crt, *ca_key;
	char *ca2_crt, *ca2_key;
	/* CN=localhost, DNS:localhost, DNS:server.test, IP:127.0.0.1,
	 * IP:::1, signed by ca: ECDSA P-256 and RSA 2048 */
	char *srv_ec_crt, *srv_ec_key;
	char *srv_rsa_crt, *srv_rsa_key;
	/* DNS:a.test and DNS:*.b.test (ECDSA, ca) for SNI selection */
	char *a_crt, *a_key;
	char *b_crt, *b_key;
	/* CN=localhost, DNS:localhost, expired in 2020 (ECDSA, ca) */
	char *expired_crt, *expired_key;
	/* localhost server certificate signed by ca2 */
	char *other_srv_crt, *other_srv_key;
	/* CN=alice,O=Example; DNS:alice.corp.test, email:alice@corp.test,
	 * URI:spiffe://test/alice, IP:127.0.0.2 (ECDSA, ca) */
	char *client_crt, *client_key;
	/* CN=eve, signed by ca2 */
	char *client2_crt, *client2_key;
	/* CN=mallory (ca), revoked in crl */
	char *revoked_crt, *revoked_key;
	char *crl;
	/* a file that is not PEM */
	char *garbage;
};

/*
 * Make the PKI (takes about a second). Returns NULL (with a message on
 * stderr) if certtool is missing or fails. Freeing the result removes
 * the directory.
 */
struct tt_certs *tt_certs_create(TALLOC_CTX *mem_ctx);

#endif
