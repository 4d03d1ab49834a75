/* SPDX-License-Identifier: MIT */
/*
 * fuzz-gssapi: bytes from the network side into a tstream_gssapi handshake.
 *
 * At start-up fuzz_krb5_setup() makes a krb5.conf, a keytab for
 * host/localhost@TSGATE.TEST from a fixed password (so a token from a
 * KDC that knows the same password decrypts: see make_gssapi_seeds.sh)
 * and a ticket to it, in a temporary directory, without a KDC. Input:
 * [mode | n][n chunk sizes][bytes]. The bytes reach the stream through
 * a socketpair in writes cut by the chunk sizes, then the peer shuts
 * down. Mode bit 7 clear: tstream_gssapi_accept_send() (the bytes are a
 * client's); set: tstream_gssapi_connect_send() (the bytes are a
 * server's answer to our AP-REQ). So the 4-byte-length frame reader and
 * MIT's context acceptor and initiator see hostile lengths and tokens;
 * a handshake must end (success or error) without a crash, a leak or a
 * hang. Should one succeed, the stream is read until it fails, which
 * runs the data frame reader and unwrap.
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

static struct tstream_gssapi_params *fuzz_acceptor;
static struct tstream_gssapi_params *fuzz_initiator;

static void req_done(struct tevent_req *req)
{
	bool *done = tevent_req_callback_data_void(req);

	*done = true;
}

/*
 * Seed making (make_gssapi_seeds.sh): as an initiator with the ccache
 * and KDC of the environment, write [0][first handshake frame] to path.
 */
static void make_seed(const char *path)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = fuzz_ev_create(mem);
	struct tstream_gssapi_params *params = NULL;
	struct tstream_context *plain = NULL, *gss = NULL;
	struct fuzz_peer *peer;
	struct tevent_req *req;
	const uint8_t *token;
	size_t len;
	char *reason = NULL;
	bool done = false;
	int err = 0;
	FILE *f;

	if (tstream_gssapi_params_initiator(mem, "host@localhost", NULL, NULL,
					    NULL, &params, &reason) != 0) {
		fprintf(stderr, "fuzz-gssapi: initiator: %s\n",
			reason != NULL ? reason : "?");
		exit(1);
	}
	/* a peer that says nothing: the initiator writes, then sees EOF */
	peer = fuzz_peer_create(mem, ev, NULL, 0, NULL, 0, &plain);
	FUZZ_ASSERT(peer != NULL);
	fuzz_peer_capture(peer);
	req = tstream_gssapi_connect_send(mem, ev, plain, params);
	FUZZ_ASSERT(req != NULL);
	tevent_req_set_callback(req, req_done, &done);
	fuzz_loop_until(ev, &done, "tstream_gssapi_connect");
	FUZZ_ASSERT(
	    tstream_gssapi_connect_recv(req, &err, mem, &gss, &reason) == -1);
	fuzz_peer_drain(peer);
	token = fuzz_peer_received(peer, &len);
	if (len < 5) {
		fprintf(stderr, "fuzz-gssapi: no token sent (%s)\n",
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
	if (getenv("FUZZ_GSSAPI_MAKE_SEED") != NULL) {
		/* with the environment's krb5.conf, ccache and KDC */
		make_seed(getenv("FUZZ_GSSAPI_MAKE_SEED"));
	}
	keytab = fuzz_krb5_setup(fuzz_tmpdir());
	if (tstream_gssapi_params_acceptor(NULL, keytab, NULL, &fuzz_acceptor,
					   &reason) != 0 ||
	    tstream_gssapi_params_initiator(NULL, FUZZ_KRB5_SERVICE,
					    FUZZ_KRB5_CCACHE, NULL, NULL,
					    &fuzz_initiator, &reason) != 0) {
		fprintf(stderr, "fuzz-gssapi: params: %s\n",
			reason != NULL ? reason : "?");
		abort();
	}
	/* below fuzz_loop_until's guard, so a stall is the library's call */
	tstream_gssapi_params_set_handshake_timeout(fuzz_acceptor, 3000);
	tstream_gssapi_params_set_handshake_timeout(fuzz_initiator, 3000);
	return 0;
}

/* An accepted stream (only with a fresh seed): read it to the end. */
static void drain(TALLOC_CTX *mem,
		  struct tevent_context *ev,
		  struct tstream_context *stream)
{
	unsigned reads;

	for (reads = 0; reads < 64; reads++) {
		uint8_t buf[1024];
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
		struct tevent_req *req;
		bool done = false;
		int ret, err = 0;

		req = tstream_readv_send(mem, ev, stream, &iov, 1);
		FUZZ_ASSERT(req != NULL);
		tevent_req_set_callback(req, req_done, &done);
		fuzz_loop_until(ev, &done, "tstream_gssapi readv");
		ret = tstream_readv_recv(req, &err);
		TALLOC_FREE(req);
		if (ret == -1) {
			FUZZ_ASSERT(err != 0);
			return;
		}
		FUZZ_ASSERT(ret == (int)sizeof(buf));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TALLOC_CTX *mem;
	struct tevent_context *ev;
	struct tstream_context *plain = NULL, *gss = NULL;
	struct fuzz_peer *peer;
	struct tevent_req *req;
	size_t num_chunks;
	bool initiator, done = false;
	char *reason = NULL;
	int ret, err = 0;

	if (size < 1) {
		return 0;
	}
	/* bit 7: we are the initiator and the bytes are the server's */
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

	if (initiator) {
		req =
		    tstream_gssapi_connect_send(mem, ev, plain, fuzz_initiator);
	} else {
		req = tstream_gssapi_accept_send(mem, ev, plain, fuzz_acceptor);
	}
	FUZZ_ASSERT(req != NULL);
	tevent_req_set_callback(req, req_done, &done);
	fuzz_loop_until(ev, &done, "tstream_gssapi handshake");
	if (initiator) {
		ret =
		    tstream_gssapi_connect_recv(req, &err, mem, &gss, &reason);
	} else {
		ret = tstream_gssapi_accept_recv(req, &err, mem, &gss, &reason);
	}
	TALLOC_FREE(req);
	if (getenv("FUZZ_VERBOSE") != NULL) {
		fprintf(stderr, "%s: %s\n", initiator ? "connect" : "accept",
			ret == 0 ? "established"
				 : (reason != NULL ? reason : strerror(err)));
	}
	if (ret == 0) {
		FUZZ_ASSERT(gss != NULL);
		drain(mem, ev, gss);
	} else {
		FUZZ_ASSERT(err != 0);
		FUZZ_ASSERT(gss == NULL);
	}
	talloc_free(mem);
	return 0;
}
