/*
 * fuzz-gssapi: bytes from the network side into tstream_gssapi_accept_send().
 *
 * At start-up a keytab for host/localhost@TSGATE.TEST is made with the
 * krb5 API from a fixed password (so a token from a KDC that knows the
 * same password decrypts: see make_gssapi_seeds.sh), with a krb5.conf
 * and no replay cache, in a temporary directory. Input:
 * [n][n chunk sizes][bytes]: the bytes reach the acceptor through a
 * socketpair in writes cut by the chunk sizes, then the peer shuts down.
 * So the 4-byte-length frame reader and MIT's context acceptor see
 * hostile lengths and tokens; a handshake must end (success or error)
 * without a crash, a leak or a hang. Should one ever succeed, the stream
 * is read until it fails, which runs the data frame reader and unwrap.
 */
#include <errno.h>
#include <krb5/krb5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tsocket.h>

#include "fuzz_common.h"
#include "tstream_gssapi.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_REALM     "TSGATE.TEST"
#define FUZZ_PRINCIPAL "host/localhost@" FUZZ_REALM
/* Also in make_gssapi_seeds.sh: the seeds' service key derives from it. */
#define FUZZ_PASSWORD "tsgate-fuzz-service-key"

static struct tstream_gssapi_params *fuzz_params;

static void check_krb5(krb5_context ctx, krb5_error_code code, const char *w)
{
	if (code != 0) {
		const char *msg = krb5_get_error_message(ctx, code);

		fprintf(stderr, "fuzz-gssapi: %s: %s\n", w, msg);
		abort();
	}
}

static void make_keytab(const char *path)
{
	static const krb5_enctype enctypes[] = {
	    ENCTYPE_AES256_CTS_HMAC_SHA1_96,
	    ENCTYPE_AES128_CTS_HMAC_SHA1_96,
	    ENCTYPE_AES256_CTS_HMAC_SHA384_192,
	    ENCTYPE_AES128_CTS_HMAC_SHA256_128,
	};
	static char password[] = FUZZ_PASSWORD;
	krb5_context ctx;
	krb5_principal princ;
	krb5_keytab kt;
	krb5_data salt, pw;
	char name[4200];
	size_t i;

	check_krb5(NULL, krb5_init_context(&ctx), "krb5_init_context");
	check_krb5(ctx, krb5_parse_name(ctx, FUZZ_PRINCIPAL, &princ),
		   "parse principal");
	check_krb5(ctx, krb5_principal2salt(ctx, princ, &salt), "salt");
	snprintf(name, sizeof(name), "FILE:%s", path);
	check_krb5(ctx, krb5_kt_resolve(ctx, name, &kt), "keytab");
	pw.data = password;
	pw.length = strlen(password);
	/* kvno 1-4: whatever kvno the seed-making KDC gave the key */
	for (i = 0; i < 4 * sizeof(enctypes) / sizeof(enctypes[0]); i++) {
		krb5_keytab_entry entry;

		memset(&entry, 0, sizeof(entry));
		entry.principal = princ;
		entry.vno = 1 + i / (sizeof(enctypes) / sizeof(enctypes[0]));
		check_krb5(
		    ctx,
		    krb5_c_string_to_key(
			ctx,
			enctypes[i % (sizeof(enctypes) / sizeof(enctypes[0]))],
			&pw, &salt, &entry.key),
		    "string_to_key");
		check_krb5(ctx, krb5_kt_add_entry(ctx, kt, &entry),
			   "kt_add_entry");
		krb5_free_keyblock_contents(ctx, &entry.key);
	}
	krb5_kt_close(ctx, kt);
	krb5_free_data_contents(ctx, &salt);
	krb5_free_principal(ctx, princ);
	krb5_free_context(ctx);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	FUZZ_ASSERT(f != NULL);
	FUZZ_ASSERT(fputs(text, f) >= 0);
	FUZZ_ASSERT(fclose(f) == 0);
}

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
	const char *dir = fuzz_tmpdir();
	char *conf = talloc_asprintf(NULL, "%s/krb5.conf", dir);
	char *keytab = talloc_asprintf(NULL, "%s/fuzz.keytab", dir);
	char *reason = NULL;

	(void)argc;
	(void)argv;
	if (getenv("FUZZ_GSSAPI_MAKE_SEED") != NULL) {
		make_seed(getenv("FUZZ_GSSAPI_MAKE_SEED"));
	}
	FUZZ_ASSERT(conf != NULL && keytab != NULL);
	/* Never a KDC, DNS or the host's config: all an acceptor needs. */
	write_text(conf, "[libdefaults]\n"
			 "\tdefault_realm = " FUZZ_REALM "\n"
			 "\tdns_lookup_kdc = false\n"
			 "\tdns_lookup_realm = false\n"
			 "\trdns = false\n"
			 "\tdns_canonicalize_hostname = false\n"
			 "\tqualify_shortname = \"\"\n"
			 "[realms]\n"
			 "\t" FUZZ_REALM " = {\n"
			 "\t\tkdc = 127.0.0.1:1\n"
			 "\t}\n");
	setenv("KRB5_CONFIG", conf, 1);
	setenv("KRB5_KDC_PROFILE", conf, 1);
	setenv("KRB5RCACHETYPE", "none", 1);
	setenv("KRB5CCNAME", "MEMORY:fuzz-gssapi", 1);
	setenv("KRB5_TRACE", "/dev/null", 1);
	make_keytab(keytab);
	if (tstream_gssapi_params_acceptor(NULL, keytab, NULL, &fuzz_params,
					   &reason) != 0) {
		fprintf(stderr, "fuzz-gssapi: acceptor params: %s\n",
			reason != NULL ? reason : "?");
		abort();
	}
	/* below fuzz_loop_until's guard, so a stall is the library's call */
	tstream_gssapi_params_set_handshake_timeout(fuzz_params, 3000);
	talloc_free(conf);
	talloc_free(keytab);
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
	bool done = false;
	char *reason = NULL;
	int ret, err = 0;

	if (size < 1) {
		return 0;
	}
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

	req = tstream_gssapi_accept_send(mem, ev, plain, fuzz_params);
	FUZZ_ASSERT(req != NULL);
	tevent_req_set_callback(req, req_done, &done);
	fuzz_loop_until(ev, &done, "tstream_gssapi_accept");
	ret = tstream_gssapi_accept_recv(req, &err, mem, &gss, &reason);
	TALLOC_FREE(req);
	if (getenv("FUZZ_VERBOSE") != NULL) {
		fprintf(stderr, "accept: %s\n",
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
