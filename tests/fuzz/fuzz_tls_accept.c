/* SPDX-License-Identifier: MIT */
/*
 * fuzz-tls-accept: bytes from a TLS client into tstream_tls_accept_send()
 * (and, mode bit 7, from a TLS server into tstream_tls_connect_send()).
 *
 * At start-up a self-signed ECDSA certificate and key are made with
 * GnuTLS's x509 API into a temporary directory; server parameters are
 * built from them for each client-certificate policy, with and without
 * ALPN and an SNI entry, and client parameters for each server
 * verification policy (with a peer name, with SNI, with a client
 * certificate). Input: [mode | variant][peer bytes]. The bytes reach the
 * stream through a socketpair whose peer then shuts down, so the record
 * layer, the ClientHello/ServerHello, certificate and extension parsing,
 * the SNI/ALPN callbacks, verification and the alert paths all see
 * hostile data. Every handshake must end (success or error) without a
 * crash, a leak or a hang.
 */
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tsocket.h>

#include "fuzz_common.h"
#include "tstream_tls.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NUM_VARIANTS 6

#define NUM_CLIENT_VARIANTS 3

static struct tstream_tls_params *fuzz_params[NUM_VARIANTS];
static struct tstream_tls_params *fuzz_client[NUM_CLIENT_VARIANTS];

static void write_file(const char *path, const gnutls_datum_t *d)
{
	FILE *f = fopen(path, "w");

	FUZZ_ASSERT(f != NULL);
	FUZZ_ASSERT(fwrite(d->data, 1, d->size, f) == d->size);
	FUZZ_ASSERT(fclose(f) == 0);
}

/* A self-signed localhost certificate (it is its own CA too). */
static void make_cert(const char *crt_path, const char *key_path)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	gnutls_datum_t out;
	unsigned char serial[8] = {0x01, 0x02, 0x03, 0x04,
				   0x05, 0x06, 0x07, 0x08};
	time_t now = time(NULL);

	FUZZ_ASSERT(gnutls_x509_privkey_init(&key) == 0);
	FUZZ_ASSERT(gnutls_x509_privkey_generate(
			key, GNUTLS_PK_ECDSA,
			GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
			0) == 0);
	FUZZ_ASSERT(gnutls_x509_crt_init(&crt) == 0);
	FUZZ_ASSERT(gnutls_x509_crt_set_version(crt, 3) == 0);
	FUZZ_ASSERT(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) ==
		    0);
	FUZZ_ASSERT(gnutls_x509_crt_set_activation_time(crt, now - 3600) == 0);
	FUZZ_ASSERT(gnutls_x509_crt_set_expiration_time(
			crt, now + 30 * 24 * 3600) == 0);
	FUZZ_ASSERT(gnutls_x509_crt_set_dn_by_oid(
			crt, GNUTLS_OID_X520_COMMON_NAME, 0, "localhost",
			strlen("localhost")) == 0);
	FUZZ_ASSERT(gnutls_x509_crt_set_subject_alt_name(
			crt, GNUTLS_SAN_DNSNAME, "localhost",
			strlen("localhost"), GNUTLS_FSAN_APPEND) == 0);
	FUZZ_ASSERT(gnutls_x509_crt_set_basic_constraints(crt, 1, -1) == 0);
	FUZZ_ASSERT(gnutls_x509_crt_set_key_usage(
			crt, GNUTLS_KEY_DIGITAL_SIGNATURE |
				 GNUTLS_KEY_KEY_CERT_SIGN) == 0);
	FUZZ_ASSERT(gnutls_x509_crt_set_key(crt, key) == 0);
	FUZZ_ASSERT(
	    gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) == 0);

	FUZZ_ASSERT(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out) ==
		    0);
	write_file(crt_path, &out);
	gnutls_free(out.data);
	FUZZ_ASSERT(
	    gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &out) == 0);
	write_file(key_path, &out);
	gnutls_free(out.data);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const alpn[] = {"h2", "http/1.1", NULL};
	static const enum tstream_tls_verify verify[3] = {
	    TSTREAM_TLS_VERIFY_NONE,
	    TSTREAM_TLS_VERIFY_OPTIONAL,
	    TSTREAM_TLS_VERIFY_REQUIRE,
	};
	const char *dir = fuzz_tmpdir();
	char *crt = talloc_asprintf(NULL, "%s/server.crt", dir);
	char *key = talloc_asprintf(NULL, "%s/server.key", dir);
	struct tstream_tls_cert_config certs[2] = {
	    {.sni = NULL, .cert_file = crt, .key_file = key},
	    {.sni = "*.example.com", .cert_file = crt, .key_file = key},
	};
	size_t i;

	(void)argc;
	(void)argv;
	make_cert(crt, key);
	for (i = 0; i < NUM_VARIANTS; i++) {
		struct tstream_tls_server_config cfg = {
		    .certs = certs,
		    .num_certs = (i & 1) ? 2 : 1,
		    .client_ca_file = crt,
		    .verify_client = verify[i % 3],
		    .alpn = (i < 3) ? alpn : NULL,
		};
		char *error = NULL;

		if (tstream_tls_params_server(NULL, &cfg, &fuzz_params[i],
					      &error) != 0) {
			fprintf(stderr, "fuzz-tls-accept: params: %s\n",
				error != NULL ? error : "?");
			abort();
		}
	}
	for (i = 0; i < NUM_CLIENT_VARIANTS; i++) {
		struct tstream_tls_client_config cfg = {
		    .ca_file = crt,
		    .verify_server = verify[2 - i],
		    .peer_name = i == 0 ? "localhost" : NULL,
		    .sni = i == 1 ? "a.example.com" : NULL,
		    .cert_file = i == 2 ? crt : NULL,
		    .key_file = i == 2 ? key : NULL,
		    .alpn = i == 0 ? alpn : NULL,
		};
		char *error = NULL;

		if (tstream_tls_params_client(NULL, &cfg, &fuzz_client[i],
					      &error) != 0) {
			fprintf(stderr, "fuzz-tls-accept: client params: %s\n",
				error != NULL ? error : "?");
			abort();
		}
	}
	talloc_free(crt);
	talloc_free(key);
	return 0;
}

static void accept_done(struct tevent_req *req)
{
	bool *done = tevent_req_callback_data_void(req);

	*done = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TALLOC_CTX *mem;
	struct tevent_context *ev;
	struct tstream_context *plain = NULL, *tls = NULL;
	struct fuzz_peer *peer;
	struct tevent_req *req;
	bool client, done = false;
	char *reason = NULL;
	int ret, err = 0;

	if (size < 1) {
		return 0;
	}
	mem = talloc_new(NULL);
	FUZZ_ASSERT(mem != NULL);
	ev = fuzz_ev_create(mem);
	peer = fuzz_peer_create(mem, ev, data + 1, size - 1, NULL, 0, &plain);
	FUZZ_ASSERT(peer != NULL);

	/* bit 7: we are the client and the bytes are a server's */
	client = (data[0] & 0x80) != 0;
	if (client) {
		req = tstream_tls_connect_send(
		    mem, ev, plain, fuzz_client[data[0] % NUM_CLIENT_VARIANTS]);
	} else {
		req = tstream_tls_accept_send(
		    mem, ev, plain, fuzz_params[data[0] % NUM_VARIANTS]);
	}
	FUZZ_ASSERT(req != NULL);
	tevent_req_set_callback(req, accept_done, &done);
	fuzz_loop_until(ev, &done, "tstream_tls handshake");
	if (client) {
		ret = tstream_tls_connect_recv(req, &err, mem, &tls, &reason);
	} else {
		ret = tstream_tls_accept_recv(req, &err, mem, &tls, &reason);
	}
	if (getenv("FUZZ_VERBOSE") != NULL) {
		fprintf(stderr, "%s: %s\n", client ? "connect" : "accept",
			ret == 0 ? "established"
				 : (reason != NULL ? reason : strerror(err)));
	}
	if (ret == 0) {
		/* a peer this fuzzer cannot be: it has no keys */
		FUZZ_ASSERT(tls != NULL);
	} else {
		FUZZ_ASSERT(err != 0);
		FUZZ_ASSERT(tls == NULL);
	}
	TALLOC_FREE(req);
	TALLOC_FREE(tls);
	talloc_free(mem);
	return 0;
}
