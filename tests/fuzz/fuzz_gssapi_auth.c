/* SPDX-License-Identifier: MIT */
/*
 * fuzz-gssapi-auth: bytes from the network side into
 * tstream_gssapi_auth_send(), the token exchange tls-gssapi runs inside
 * TLS (docs/protocols.md, "tls-gssapi"), with fixed 32-byte channel
 * bindings standing in for the tls-exporter.
 *
 * Keys and ticket as fuzz-gssapi (fuzz_krb5_setup(), no KDC). Input:
 * [mode | n][n chunk sizes][bytes], as fuzz-gssapi: mode bit 7 clear,
 * we are the acceptor and the bytes a client's (its AP-REQ, whose
 * authenticator must carry the same bindings); set, we are the initiator
 * and the bytes the server's answer. The exchange must end (success or
 * error) without a crash, a leak or a hang; an identity it returns must
 * carry no data (reads fail with ENOTCONN).
 *
 * FUZZ_GSSAPI_AUTH_MAKE_SEED=PATH writes [0][our initiator's first
 * frame] with these bindings to PATH and exits: a seed the acceptor
 * takes (as long as the forged ticket in it is valid, 30 days).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tsocket.h>

#include "fuzz_common.h"
#include "fuzz_krb5.h"
#include "tstream_gssapi.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_cb[32] = "tls-exporter stand-in, 32 bytes";

static struct tstream_gssapi_params *fuzz_acceptor;
static struct tstream_gssapi_params *fuzz_initiator;

static void req_done(struct tevent_req *req)
{
	bool *done = tevent_req_callback_data_void(req);

	*done = true;
}

static void make_seed(const char *path)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = fuzz_ev_create(mem);
	struct tstream_context *plain = NULL, *id = NULL;
	struct fuzz_peer *peer;
	struct tevent_req *req;
	const uint8_t *token;
	size_t len;
	char *reason = NULL;
	bool done = false;
	int err = 0;
	FILE *f;

	/* a peer that says nothing: the initiator writes, then sees EOF */
	peer = fuzz_peer_create(mem, ev, NULL, 0, NULL, 0, &plain);
	FUZZ_ASSERT(peer != NULL);
	fuzz_peer_capture(peer);
	req = tstream_gssapi_auth_send(mem, ev, plain, fuzz_initiator, fuzz_cb,
				       sizeof(fuzz_cb));
	FUZZ_ASSERT(req != NULL);
	tevent_req_set_callback(req, req_done, &done);
	fuzz_loop_until(ev, &done, "tstream_gssapi_auth (seed)");
	FUZZ_ASSERT(tstream_gssapi_auth_recv(req, &err, mem, &id, &reason) ==
		    -1);
	fuzz_peer_drain(peer);
	token = fuzz_peer_received(peer, &len);
	if (len < 5) {
		fprintf(stderr, "fuzz-gssapi-auth: no token sent (%s)\n",
			reason != NULL ? reason : strerror(err));
		exit(1);
	}
	f = fopen(path, "w");
	FUZZ_ASSERT(f != NULL);
	FUZZ_ASSERT(fputc(0, f) == 0);
	FUZZ_ASSERT(fwrite(token, 1, len, f) == len);
	FUZZ_ASSERT(fclose(f) == 0);
	talloc_free(mem);
	exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *keytab;
	char *reason = NULL;

	(void)argc;
	(void)argv;
	keytab = fuzz_krb5_setup(fuzz_tmpdir());
	if (tstream_gssapi_params_acceptor(NULL, keytab, NULL, &fuzz_acceptor,
					   &reason) != 0 ||
	    tstream_gssapi_params_initiator(NULL, FUZZ_KRB5_SERVICE,
					    FUZZ_KRB5_CCACHE, NULL, NULL,
					    &fuzz_initiator, &reason) != 0) {
		fprintf(stderr, "fuzz-gssapi-auth: params: %s\n",
			reason != NULL ? reason : "?");
		abort();
	}
	/* below fuzz_loop_until's guard, so a stall is the library's call */
	tstream_gssapi_params_set_handshake_timeout(fuzz_acceptor, 3000);
	tstream_gssapi_params_set_handshake_timeout(fuzz_initiator, 3000);
	if (getenv("FUZZ_GSSAPI_AUTH_MAKE_SEED") != NULL) {
		make_seed(getenv("FUZZ_GSSAPI_AUTH_MAKE_SEED"));
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TALLOC_CTX *mem;
	struct tevent_context *ev;
	struct tstream_context *plain = NULL, *id = NULL;
	struct fuzz_peer *peer;
	struct tevent_req *req;
	size_t num_chunks;
	bool initiator, done = false;
	char *reason = NULL;
	int ret, err = 0;

	if (size < 1) {
		return 0;
	}
	initiator = (data[0] & 0x80) != 0;
	num_chunks = data[0] % 8;
	if (size < 1 + num_chunks) {
		return 0;
	}
	mem = talloc_new(NULL);
	FUZZ_ASSERT(mem != NULL);
	ev = fuzz_ev_create(mem);
	peer = fuzz_peer_create(mem, ev, data + 1 + num_chunks,
				size - 1 - num_chunks, data + 1, num_chunks,
				&plain);
	FUZZ_ASSERT(peer != NULL);

	req = tstream_gssapi_auth_send(
	    mem, ev, plain, initiator ? fuzz_initiator : fuzz_acceptor, fuzz_cb,
	    sizeof(fuzz_cb));
	FUZZ_ASSERT(req != NULL);
	tevent_req_set_callback(req, req_done, &done);
	fuzz_loop_until(ev, &done, "tstream_gssapi_auth");
	ret = tstream_gssapi_auth_recv(req, &err, mem, &id, &reason);
	TALLOC_FREE(req);
	if (getenv("FUZZ_VERBOSE") != NULL) {
		fprintf(stderr, "%s: %s\n",
			initiator ? "initiator" : "acceptor",
			ret == 0 ? "authenticated"
				 : (reason != NULL ? reason : strerror(err)));
	}
	if (ret == 0) {
		FUZZ_ASSERT(id != NULL);
		FUZZ_ASSERT(tstream_gssapi_client_principal(id) != NULL);
		FUZZ_ASSERT(tstream_pending_bytes(id) == -1 &&
			    errno == ENOTCONN);
	} else {
		FUZZ_ASSERT(err != 0);
		FUZZ_ASSERT(id == NULL);
	}
	talloc_free(mem);
	return 0;
}
