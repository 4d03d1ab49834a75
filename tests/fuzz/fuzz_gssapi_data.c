/* SPDX-License-Identifier: MIT */
/*
 * fuzz-gssapi-data: the data path of an accepted tstream_gssapi stream
 * against an initiator that misbehaves on purpose.
 *
 * At start-up fuzz_krb5_setup() makes a keytab for
 * host/localhost@TSGATE.TEST and forges a service ticket for alice with
 * that key into a MEMORY ccache (krb5_encrypt_tkt_part), so no KDC is
 * needed. Each input runs
 * a real handshake (gss_init_sec_context here, tstream_gssapi_accept_send
 * over a socketpair), then turns its bytes into a list of initiator
 * actions: a proper wrap(payload), an integrity-only wrap, a replayed
 * token, a skipped token (gap), a raw frame, raw bytes, a wrap with one
 * bit flipped, and the authenticated end wrap(""). Checked: the acceptor
 * delivers exactly the payloads sent properly before the first hostile
 * action, in order, and nothing at all after it; a clean end is EPIPE.
 */
#include <errno.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tsocket.h>

#include "fuzz_common.h"
#include "fuzz_krb5.h"
#include "tstream_gssapi.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_OPS   64
#define FUZZ_MAX_BYTES (64 * 1024)

static struct tstream_gssapi_params *fuzz_acceptor;
static gss_cred_id_t fuzz_initiator_cred = GSS_C_NO_CREDENTIAL;
static gss_name_t fuzz_target = GSS_C_NO_NAME;

static void check_gss(OM_uint32 maj, OM_uint32 min, const char *w)
{
	if (GSS_ERROR(maj)) {
		fprintf(stderr, "fuzz-gssapi-data: %s: major 0x%x minor %u\n",
			w, (unsigned)maj, (unsigned)min);
		abort();
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	gss_key_value_element_desc el = {"ccache", FUZZ_KRB5_CCACHE};
	gss_key_value_set_desc store = {1, &el};
	gss_buffer_desc name_buf = {strlen(FUZZ_KRB5_SERVICE),
				    FUZZ_DISCARD_CONST(FUZZ_KRB5_SERVICE)};
	const char *keytab;
	char *reason = NULL;
	OM_uint32 maj, min;

	(void)argc;
	(void)argv;
	keytab = fuzz_krb5_setup(fuzz_tmpdir());
	if (tstream_gssapi_params_acceptor(NULL, keytab, NULL, &fuzz_acceptor,
					   &reason) != 0) {
		fprintf(stderr, "fuzz-gssapi-data: acceptor: %s\n",
			reason != NULL ? reason : "?");
		abort();
	}
	tstream_gssapi_params_set_handshake_timeout(fuzz_acceptor, 3000);
	maj = gss_import_name(&min, &name_buf, GSS_KRB5_NT_PRINCIPAL_NAME,
			      &fuzz_target);
	check_gss(maj, min, "import target");
	maj = gss_acquire_cred_from(&min, GSS_C_NO_NAME, GSS_C_INDEFINITE,
				    GSS_C_NO_OID_SET, GSS_C_INITIATE, &store,
				    &fuzz_initiator_cred, NULL, NULL);
	check_gss(maj, min, "acquire initiator cred");
	return 0;
}

/* ---- the initiator's byte stream ---- */

struct out_buf {
	uint8_t *data;
	size_t len;
};

static void out_put(struct out_buf *o, const void *p, size_t n)
{
	o->data = talloc_realloc(NULL, o->data, uint8_t, o->len + n);
	FUZZ_ASSERT(o->data != NULL);
	if (n > 0) {
		memcpy(o->data + o->len, p, n);
	}
	o->len += n;
}

static void out_frame(struct out_buf *o, const void *p, size_t n)
{
	uint8_t hdr[4] = {n >> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff};

	out_put(o, hdr, 4);
	out_put(o, p, n);
}

struct fuzz_input {
	const uint8_t *p;
	size_t left;
};

static uint8_t in_u8(struct fuzz_input *in)
{
	uint8_t v = 0;

	if (in->left > 0) {
		v = *in->p++;
		in->left--;
	}
	return v;
}

/* Up to n bytes of the input (fewer when it runs out). */
static size_t in_bytes(struct fuzz_input *in, const uint8_t **p, size_t n)
{
	if (n > in->left) {
		n = in->left;
	}
	*p = in->p;
	in->p += n;
	in->left -= n;
	return n;
}

static void wrap(gss_ctx_id_t ctx,
		 int conf,
		 const uint8_t *p,
		 size_t n,
		 gss_buffer_desc *out)
{
	gss_buffer_desc in = {n, FUZZ_DISCARD_CONST(p)};
	OM_uint32 maj, min;
	int conf_state = 0;

	maj =
	    gss_wrap(&min, ctx, conf, GSS_C_QOP_DEFAULT, &in, &conf_state, out);
	check_gss(maj, min, "gss_wrap");
}

struct expectation {
	struct out_buf delivered; /* what the acceptor must hand out */
	bool broken;              /* a hostile action was sent */
	bool ended;               /* wrap("") sent while all was well */
	bool gap;                 /* a wrapped token was skipped */
};

/* A wrapped token goes out: in sequence unless one was skipped. */
static void sent_wrapped(struct expectation *e,
			 bool proper,
			 const uint8_t *p,
			 size_t n)
{
	if (e->broken || e->ended) {
		return;
	}
	if (e->gap || !proper) {
		e->broken = true;
		return;
	}
	if (n == 0) {
		e->ended = true;
		return;
	}
	out_put(&e->delivered, p, n);
}

static void hostile(struct expectation *e)
{
	if (!e->ended) {
		e->broken = true;
	}
}

static void build_stream(gss_ctx_id_t ctx,
			 struct fuzz_input *in,
			 struct out_buf *o,
			 struct expectation *e)
{
	struct out_buf last = {0};
	unsigned ops;

	for (ops = 0; ops < FUZZ_MAX_OPS && in->left > 0; ops++) {
		uint8_t op = in_u8(in) % 8;
		gss_buffer_desc tok = GSS_C_EMPTY_BUFFER;
		const uint8_t *p = NULL;
		size_t n;
		OM_uint32 min;

		switch (op) {
		case 0: /* proper wrap(payload), 1..256 bytes */
		case 1: /* integrity only */
		case 3: /* wrapped but never sent: a gap */
		case 6: /* one bit flipped */
			n = in_bytes(in, &p, (size_t)in_u8(in) + 1);
			if (n == 0) {
				p = (const uint8_t *)"x";
				n = 1;
			}
			wrap(ctx, op != 1, p, n, &tok);
			if (op == 3) {
				e->gap = true;
			} else if (op == 6) {
				size_t bit =
				    (((size_t)in_u8(in) << 8) | in_u8(in)) %
				    (tok.length * 8);

				((uint8_t *)tok.value)[bit / 8] ^=
				    (uint8_t)(1u << (bit % 8));
				out_frame(o, tok.value, tok.length);
				hostile(e);
			} else {
				out_frame(o, tok.value, tok.length);
				sent_wrapped(e, op == 0, p, n);
			}
			if (op != 3) {
				/* a skipped token sent later is no replay */
				last.len = 0;
				out_put(&last, tok.value, tok.length);
			}
			gss_release_buffer(&min, &tok);
			break;
		case 2: /* the last token sent, again: a replay */
			if (last.len > 0) {
				out_frame(o, last.data, last.len);
				hostile(e);
			}
			break;
		case 4: /* a frame of raw bytes (0..255 of them) */
			n = in_bytes(in, &p, in_u8(in));
			out_frame(o, p, n);
			hostile(e);
			break;
		case 5: /* raw bytes, no frame */
			n = in_bytes(in, &p, (size_t)in_u8(in) % 8);
			if (n > 0) {
				out_put(o, p, n);
				hostile(e);
			}
			break;
		case 7: /* the authenticated end, wrap("") */
			wrap(ctx, 1, NULL, 0, &tok);
			out_frame(o, tok.value, tok.length);
			sent_wrapped(e, true, NULL, 0);
			last.len = 0;
			out_put(&last, tok.value, tok.length);
			gss_release_buffer(&min, &tok);
			break;
		}
	}
	talloc_free(last.data);
}

/* ---- driving the acceptor ---- */

static void req_done(struct tevent_req *req)
{
	bool *done = tevent_req_callback_data_void(req);

	*done = true;
}

/* readv of exactly n bytes; -1 with *err on failure. */
static int read_exact(TALLOC_CTX *mem,
		      struct tevent_context *ev,
		      struct tstream_context *stream,
		      uint8_t *buf,
		      size_t n,
		      int *err)
{
	struct iovec iov = {.iov_base = buf, .iov_len = n};
	struct tevent_req *req;
	bool done = false;
	int ret;

	req = tstream_readv_send(mem, ev, stream, &iov, 1);
	FUZZ_ASSERT(req != NULL);
	tevent_req_set_callback(req, req_done, &done);
	fuzz_loop_until(ev, &done, "tstream_gssapi readv");
	ret = tstream_readv_recv(req, err);
	talloc_free(req);
	return ret;
}

/* Everything the acceptor hands out, and how its stream ended. */
static int read_all(TALLOC_CTX *mem,
		    struct tevent_context *ev,
		    struct tstream_context *stream,
		    struct out_buf *got)
{
	uint8_t *buf = talloc_array(mem, uint8_t, FUZZ_MAX_BYTES);
	int err = 0;

	FUZZ_ASSERT(buf != NULL);
	for (;;) {
		ssize_t pending;

		/* one byte waits for a frame; the rest of it is pending */
		if (read_exact(mem, ev, stream, buf, 1, &err) == -1) {
			break;
		}
		out_put(got, buf, 1);
		pending = tstream_pending_bytes(stream);
		FUZZ_ASSERT(pending >= 0);
		if (pending == 0) {
			continue;
		}
		FUZZ_ASSERT(pending <= FUZZ_MAX_BYTES);
		if (read_exact(mem, ev, stream, buf, (size_t)pending, &err) ==
		    -1) {
			break;
		}
		out_put(got, buf, (size_t)pending);
		FUZZ_ASSERT(got->len <= FUZZ_MAX_BYTES * 4);
	}
	talloc_free(buf);
	FUZZ_ASSERT(err != 0);
	return err;
}

/* The handshake: our initiator against tstream_gssapi_accept_send(). */
static struct tstream_context *handshake(TALLOC_CTX *mem,
					 struct tevent_context *ev,
					 struct fuzz_peer *peer,
					 struct tstream_context *plain,
					 gss_ctx_id_t *ctx,
					 struct out_buf *first)
{
	gss_buffer_desc out = GSS_C_EMPTY_BUFFER, in = GSS_C_EMPTY_BUFFER;
	struct tstream_context *gss = NULL;
	struct tevent_req *req;
	const uint8_t *reply;
	size_t reply_len;
	OM_uint32 maj, min, flags = 0;
	bool done = false;
	char *reason = NULL;
	int ret, err = 0;

	maj = gss_init_sec_context(
	    &min, fuzz_initiator_cred, ctx, fuzz_target, gss_mech_krb5,
	    GSS_C_MUTUAL_FLAG | GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG |
		GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG,
	    0, GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &out, &flags,
	    NULL);
	check_gss(maj, min, "init_sec_context");
	FUZZ_ASSERT(maj == GSS_S_CONTINUE_NEEDED);
	out_frame(first, out.value, out.length);
	gss_release_buffer(&min, &out);
	fuzz_peer_send(peer, first->data, first->len, false);

	req = tstream_gssapi_accept_send(mem, ev, plain, fuzz_acceptor);
	FUZZ_ASSERT(req != NULL);
	tevent_req_set_callback(req, req_done, &done);
	fuzz_loop_until(ev, &done, "tstream_gssapi_accept");
	ret = tstream_gssapi_accept_recv(req, &err, mem, &gss, &reason);
	talloc_free(req);
	if (ret != 0) {
		fprintf(stderr, "fuzz-gssapi-data: accept: %s\n",
			reason != NULL ? reason : strerror(err));
		abort();
	}

	fuzz_peer_drain(peer);
	reply = fuzz_peer_received(peer, &reply_len);
	FUZZ_ASSERT(reply_len > 4);
	in.value = FUZZ_DISCARD_CONST(reply + 4);
	in.length = reply_len - 4;
	maj = gss_init_sec_context(
	    &min, fuzz_initiator_cred, ctx, fuzz_target, gss_mech_krb5,
	    GSS_C_MUTUAL_FLAG | GSS_C_REPLAY_FLAG | GSS_C_SEQUENCE_FLAG |
		GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG,
	    0, GSS_C_NO_CHANNEL_BINDINGS, &in, NULL, &out, &flags, NULL);
	check_gss(maj, min, "init_sec_context (AP-REP)");
	FUZZ_ASSERT(maj == GSS_S_COMPLETE);
	gss_release_buffer(&min, &out);
	return gss;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev;
	struct tstream_context *plain = NULL, *gss;
	struct fuzz_peer *peer;
	struct fuzz_input in = {data, size};
	struct out_buf first = {0}, stream = {0}, got = {0};
	struct expectation e;
	gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
	OM_uint32 min;
	int err;

	FUZZ_ASSERT(mem != NULL);
	memset(&e, 0, sizeof(e));
	ev = fuzz_ev_create(mem);
	peer = fuzz_peer_create(mem, ev, NULL, 0, NULL, 0, &plain);
	FUZZ_ASSERT(peer != NULL);
	fuzz_peer_keep_open(peer);
	fuzz_peer_capture(peer);

	gss = handshake(mem, ev, peer, plain, &ctx, &first);
	build_stream(ctx, &in, &stream, &e);
	fuzz_peer_send(peer, stream.data, stream.len, true);
	err = read_all(mem, ev, gss, &got);

	/* exactly the proper payloads before the first hostile action */
	FUZZ_ASSERT(got.len == e.delivered.len);
	FUZZ_ASSERT(got.len == 0 ||
		    memcmp(got.data, e.delivered.data, got.len) == 0);
	if (!e.broken) {
		/* wrap("") or a bare FIN (knc 1.x) end the stream cleanly */
		FUZZ_ASSERT(err == EPIPE);
	}

	gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
	talloc_free(first.data);
	talloc_free(stream.data);
	talloc_free(got.data);
	talloc_free(e.delivered.data);
	talloc_free(mem);
	return 0;
}
