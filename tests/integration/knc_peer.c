/* SPDX-License-Identifier: MIT */
/*
 * knc-peer: an independent implementation of the knc 1.x protocol for
 * the tstream_gssapi tests, written with plain blocking MIT GSSAPI calls
 * (send_token/recv_token framing: 4-byte big-endian length + token).
 * It shares no code with tunnels/.
 *
 * The connected socket is fd 0. The Kerberos environment (KRB5_CONFIG,
 * KRB5_KTNAME, KRB5CCNAME, ...) comes from the caller.
 *
 *   knc-peer accept EXPECTED_CLIENT [EVIL]
 *       acceptor: check the client's display name, read data until the
 *       authenticated EOF, echo it back (in 7000-byte frames), send the
 *       authenticated close, wait for the peer to close. EVIL: hs-garbage
 *       (answer the AP-REQ with junk), garbage (a junk data frame).
 *   knc-peer connect SERVICE SIZE [EVIL]
 *       initiator: send SIZE pattern bytes in frames of varying size,
 *       the authenticated close, read the echo and compare. With EVIL,
 *       misbehave after (or instead of) the handshake and wait for the
 *       other side to drop the connection: replay, reorder, bitflip,
 *       integ, len4g, zero, truncated, garbage, rfc1964 (a bare RFC 1964
 *       wrap token, ID 02 01), rfc1964-framed (the same inside the 0x60
 *       krb5 mechanism framing), hs-garbage, hs-len4g,
 *       spnego (a SPNEGO instead of a krb5 initial token), expired-ticket
 *       (SERVICE is then a principal whose expired ticket is in the
 *       ccache: an AP-REQ made with it by hand).
 *
 *   knc-peer knc-server EXPECTED_CLIENT [BEHAVIOUR]
 *       acceptor that behaves like the knc 1.12 program at end of stream
 *       ("knc -l PORT cat"), see "The knc program" below. BEHAVIOUR:
 *       close-first (send a banner and end our direction at once, then
 *       read the client's data to its end marker and report its size
 *       and FNV-1a hash on stderr), reset (reset the connection after
 *       the first data frame).
 *   knc-peer knc-client SERVICE SIZE [BEHAVIOUR]
 *       initiator like "knc SERVICE@HOST PORT < file": send SIZE pattern
 *       bytes while reading the reply, end with a bare FIN, read the
 *       reply to its end marker and compare. BEHAVIOUR: marker (end with
 *       wrap("") then FIN instead), trailing (wrap(""), then one more
 *       frame "TRAILING", then FIN: bytes after the marker),
 *       trailing-late (the same with a 64 KiB frame after the marker
 *       when SIZE allows, and a slow reader: it reads nothing
 *       until its direction has ended and 300 ms have passed, so the
 *       reply is still queued on the other side when that side closes;
 *       for a peer that reads all before it answers).
 *
 * Exit: 0 good, 2 usage, 3 GSSAPI failure, 4 I/O failure, 5 data
 * mismatch, 6 wrong client name, 7 bytes followed the peer's end marker
 * (knc would close with them unread, and its kernel reset the
 * connection).
 */
#include <errno.h>
#include <stdbool.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <fcntl.h>
#include <krb5.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_TOKEN (65536 + 512)

static void gss_die(const char *what, OM_uint32 maj, OM_uint32 min)
{
	OM_uint32 ctx = 0, tmp;
	gss_buffer_desc buf;

	fprintf(stderr, "knc-peer: %s:", what);
	do {
		gss_display_status(&tmp, maj, GSS_C_GSS_CODE, GSS_C_NO_OID,
				   &ctx, &buf);
		fprintf(stderr, " %.*s", (int)buf.length, (char *)buf.value);
		gss_release_buffer(&tmp, &buf);
	} while (ctx != 0);
	do {
		gss_display_status(&tmp, min, GSS_C_MECH_CODE, GSS_C_NO_OID,
				   &ctx, &buf);
		fprintf(stderr, " / %.*s", (int)buf.length, (char *)buf.value);
		gss_release_buffer(&tmp, &buf);
	} while (ctx != 0);
	fprintf(stderr, "\n");
	exit(3);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* 1 on success, 0 on a clean EOF before the first byte, -1 on error */
static int read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			return -1;
		}
		if (n == 0) {
			return got == 0 ? 0 : -1;
		}
		got += (size_t)n;
	}
	return 1;
}

/*
 * Misbehaving on purpose (evil()): the other side is expected to drop the
 * connection, possibly while we are still writing, so a failed write
 * (EPIPE, ECONNRESET; SIGPIPE is ignored) is the outcome, not an error.
 */
static bool expect_drop;

static void send_raw_token(int fd, const void *tok, uint32_t len)
{
	uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
			  (uint8_t)(len >> 8), (uint8_t)len};

	if (write_all(fd, hdr, 4) != 0 || write_all(fd, tok, len) != 0) {
		if (expect_drop) {
			return;
		}
		fprintf(stderr, "knc-peer: write failed\n");
		exit(4);
	}
}

static void send_token(int fd, const gss_buffer_t tok)
{
	send_raw_token(fd, tok->value, (uint32_t)tok->length);
}

/* 1 token, 0 EOF */
static int recv_token(int fd, gss_buffer_t tok)
{
	uint8_t hdr[4];
	uint32_t len;
	int r = read_all(fd, hdr, 4);

	if (r == 0) {
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "knc-peer: read failed\n");
		exit(4);
	}
	len = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) |
	      ((uint32_t)hdr[2] << 8) | hdr[3];
	if (len == 0 || len > MAX_TOKEN) {
		fprintf(stderr, "knc-peer: bad token length %u\n", len);
		exit(4);
	}
	tok->value = malloc(len);
	tok->length = len;
	if (tok->value == NULL || read_all(fd, tok->value, len) != 1) {
		fprintf(stderr, "knc-peer: short token\n");
		exit(4);
	}
	return 1;
}

static void wrap_send(
    int fd, gss_ctx_id_t ctx, const void *data, size_t len, int conf_req)
{
	gss_buffer_desc in = {.length = len, .value = (void *)data};
	gss_buffer_desc out;
	OM_uint32 maj, min;
	int conf = 0;

	maj =
	    gss_wrap(&min, ctx, conf_req, GSS_C_QOP_DEFAULT, &in, &conf, &out);
	if (maj != GSS_S_COMPLETE) {
		gss_die("gss_wrap", maj, min);
	}
	send_token(fd, &out);
	gss_release_buffer(&min, &out);
}

/*
 * The accept/connect modes' close: wrap("") and then wrap("\x00"), as
 * libknc and tsgate before issue 13 sent it. A frame after the marker:
 * the knc program leaves it unread (see knc-server below).
 */
static void send_close(int fd, gss_ctx_id_t ctx)
{
	wrap_send(fd, ctx, "", 0, 1);
	wrap_send(fd, ctx, "\0", 1, 1);
	shutdown(fd, SHUT_WR);
}

/*
 * Read data frames until the authenticated EOF (or a bare FIN).
 * Returns a malloc'd buffer.
 */
static uint8_t *recv_all(int fd, gss_ctx_id_t ctx, size_t *plen)
{
	size_t cap = 1 << 20, len = 0;
	uint8_t *buf = malloc(cap);
	gss_buffer_desc tok, out;

	while (recv_token(fd, &tok) == 1) {
		OM_uint32 maj, min;
		int conf = 0;

		maj = gss_unwrap(&min, ctx, &tok, &out, &conf, NULL);
		free(tok.value);
		if (maj != GSS_S_COMPLETE || !conf) {
			gss_die("gss_unwrap", maj, min);
		}
		if (out.length == 0) {
			gss_release_buffer(&min, &out);
			break;
		}
		while (len + out.length > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
		memcpy(buf + len, out.value, out.length);
		len += out.length;
		gss_release_buffer(&min, &out);
	}
	*plen = len;
	return buf;
}

static uint8_t pattern(size_t i)
{
	uint32_t x = (uint32_t)i * 2654435761u;

	return (uint8_t)((x >> 13) ^ (x >> 24) ^ i);
}

/* Block until the other side drops the connection. */
static void wait_for_close(int fd)
{
	uint8_t buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0) {
	}
}

/* The acceptor's handshake on fd 0; 0, or an exit code. */
static int accept_handshake(const char *expected, gss_ctx_id_t *pctx)
{
	gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
	gss_name_t client = GSS_C_NO_NAME;
	gss_buffer_desc in, out, name;
	OM_uint32 maj, min, flags = 0;

	do {
		if (recv_token(0, &in) != 1) {
			fprintf(stderr, "knc-peer: EOF in handshake\n");
			return 4;
		}
		maj =
		    gss_accept_sec_context(&min, &ctx, GSS_C_NO_CREDENTIAL, &in,
					   GSS_C_NO_CHANNEL_BINDINGS, &client,
					   NULL, &out, &flags, NULL, NULL);
		free(in.value);
		if (out.length > 0) {
			send_token(0, &out);
		}
		gss_release_buffer(&min, &out);
		if (GSS_ERROR(maj)) {
			gss_die("gss_accept_sec_context", maj, min);
		}
	} while (maj & GSS_S_CONTINUE_NEEDED);

	gss_display_name(&min, client, &name, NULL);
	if (name.length != strlen(expected) ||
	    memcmp(name.value, expected, name.length) != 0) {
		fprintf(stderr, "knc-peer: client is %.*s, not %s\n",
			(int)name.length, (char *)name.value, expected);
		gss_release_buffer(&min, &name);
		return 6;
	}
	gss_release_buffer(&min, &name);
	gss_release_name(&min, &client);
	*pctx = ctx;
	return 0;
}

static int do_accept(const char *expected, const char *mode)
{
	gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
	gss_buffer_desc in;
	OM_uint32 min;
	uint8_t *data;
	size_t len;
	int ret;

	if (mode != NULL && strcmp(mode, "hs-garbage") == 0) {
		uint8_t junk[50];

		if (recv_token(0, &in) != 1) {
			return 4;
		}
		free(in.value);
		memset(junk, 0xa5, sizeof(junk));
		send_raw_token(0, junk, sizeof(junk));
		wait_for_close(0);
		return 0;
	}
	ret = accept_handshake(expected, &ctx);
	if (ret != 0) {
		return ret;
	}
	if (mode != NULL && strcmp(mode, "garbage") == 0) {
		uint8_t junk[64];

		for (size_t i = 0; i < sizeof(junk); i++) {
			junk[i] = pattern(i + 7);
		}
		send_raw_token(0, junk, sizeof(junk));
		wait_for_close(0);
		gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
		return 0;
	}

	data = recv_all(0, ctx, &len);
	for (size_t off = 0; off < len; off += 7000) {
		size_t n = len - off < 7000 ? len - off : 7000;

		wrap_send(0, ctx, data + off, n, 1);
	}
	free(data);
	send_close(0, ctx);
	wait_for_close(0);
	gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
	return 0;
}

static int evil(gss_ctx_id_t ctx, const char *mode)
{
	gss_buffer_desc a_in = {.length = 5, .value = "AAAAA"};
	gss_buffer_desc b_in = {.length = 5, .value = "BBBBB"};
	gss_buffer_desc a, b;
	OM_uint32 min;
	int conf;

	expect_drop = true;
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(mode, "integ") == 0) {
		/* the very first frame, so only the missing conf is wrong */
		wrap_send(0, ctx, "IIIII", 5, 0);
		wait_for_close(0);
		return 0;
	}
	gss_wrap(&min, ctx, 1, GSS_C_QOP_DEFAULT, &a_in, &conf, &a);
	gss_wrap(&min, ctx, 1, GSS_C_QOP_DEFAULT, &b_in, &conf, &b);
	if (strcmp(mode, "replay") == 0) {
		send_token(0, &a);
		send_token(0, &a);
	} else if (strcmp(mode, "reorder") == 0) {
		send_token(0, &b);
		send_token(0, &a);
	} else if (strcmp(mode, "bitflip") == 0) {
		((uint8_t *)a.value)[a.length / 2] ^= 0x10;
		send_token(0, &a);
	} else if (strcmp(mode, "len4g") == 0) {
		write_all(0, "\xff\xff\xff\xff", 4);
	} else if (strcmp(mode, "zero") == 0) {
		write_all(0, "\0\0\0\0", 4);
	} else if (strcmp(mode, "truncated") == 0) {
		uint8_t hdr[4] = {0, 0, 0x03, 0xe8};

		write_all(0, hdr, 4);
		write_all(0, a.value, a.length < 500 ? a.length : 500);
		shutdown(0, SHUT_WR);
	} else if (strcmp(mode, "garbage") == 0) {
		uint8_t junk[64];

		for (size_t i = 0; i < sizeof(junk); i++) {
			junk[i] = pattern(i + 99);
		}
		send_raw_token(0, junk, sizeof(junk));
	} else if (strcmp(mode, "rfc1964") == 0 ||
		   strcmp(mode, "rfc1964-framed") == 0) {
		/*
		 * An RFC 1964 wrap token (TOK_ID 02 01, SGN_ALG HMAC-MD5,
		 * SEAL_ALG RC4, filler, SND_SEQ, SGN_CKSUM, 8 bytes of
		 * confounder+data) on a context whose keys are AES (RFC
		 * 4121): MIT krb5 1.20's gss_unwrap_iov(STREAM) dereferences
		 * NULL on it.
		 */
		static const uint8_t mech[] = {0x06, 0x09, 0x2a, 0x86,
					       0x48, 0x86, 0xf7, 0x12,
					       0x01, 0x02, 0x02};
		uint8_t tok[2 + sizeof(mech) + 32];
		size_t n = 0;

		if (strcmp(mode, "rfc1964-framed") == 0) {
			tok[n++] = 0x60;
			tok[n++] = (uint8_t)(sizeof(mech) + 32);
			memcpy(tok + n, mech, sizeof(mech));
			n += sizeof(mech);
		}
		memcpy(tok + n, "\x02\x01\x11\x00\x10\x00\xff\xff", 8);
		for (size_t i = 8; i < 32; i++) {
			tok[n + i] = pattern(i + 7);
		}
		n += 32;
		send_raw_token(0, tok, n);
	} else {
		fprintf(stderr, "knc-peer: unknown mode %s\n", mode);
		return 2;
	}
	gss_release_buffer(&min, &a);
	gss_release_buffer(&min, &b);
	wait_for_close(0);
	return 0;
}

/*
 * GSSAPI cannot be made to present an expired ticket (it checks the
 * ccache first), so build the krb5 AP-REQ by hand from the service
 * ticket already in the ccache and frame it as the initial context
 * token (RFC 1964 1.1: 0x60, length, krb5 OID, 01 00, AP-REQ).
 */
static int send_expired_ticket(const char *principal)
{
	static const uint8_t krb5_oid[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
					   0xf7, 0x12, 0x01, 0x02, 0x02};
	krb5_context kctx;
	krb5_ccache cc;
	krb5_creds match, creds;
	krb5_auth_context ac = NULL;
	krb5_data apreq;
	uint8_t *tok;
	size_t inner, len = 0;

	memset(&match, 0, sizeof(match));
	if (krb5_init_context(&kctx) != 0 || krb5_cc_default(kctx, &cc) != 0 ||
	    krb5_cc_get_principal(kctx, cc, &match.client) != 0 ||
	    krb5_parse_name(kctx, principal, &match.server) != 0) {
		fprintf(stderr, "knc-peer: krb5 setup failed\n");
		return 3;
	}
	/* no KRB5_TC_MATCH_TIMES: the expired ticket is what we want */
	if (krb5_cc_retrieve_cred(kctx, cc, 0, &match, &creds) != 0) {
		fprintf(stderr, "knc-peer: no ticket for %s in the ccache\n",
			principal);
		return 3;
	}
	/*
	 * krb5_mk_req refuses a ticket that is expired by more than the
	 * clock skew (2 s in tt_kdc's krb5.conf), and the acceptor refuses
	 * an authenticator more than the skew away from its clock. So wait
	 * until the ticket is expired for the acceptor (end + skew), then
	 * date the authenticator end + skew: only the ticket is stale.
	 */
	while (time(NULL) <= (time_t)creds.times.endtime + 2) {
		usleep(50000);
	}
	krb5_set_real_time(kctx, creds.times.endtime + 2, 0);
	if (krb5_mk_req_extended(kctx, &ac, AP_OPTS_MUTUAL_REQUIRED, NULL,
				 &creds, &apreq) != 0) {
		fprintf(stderr, "knc-peer: krb5_mk_req_extended failed\n");
		return 3;
	}
	inner = sizeof(krb5_oid) + 2 + apreq.length;
	tok = malloc(inner + 4);
	tok[len++] = 0x60;
	if (inner < 128) {
		tok[len++] = (uint8_t)inner;
	} else if (inner < 256) {
		tok[len++] = 0x81;
		tok[len++] = (uint8_t)inner;
	} else {
		tok[len++] = 0x82;
		tok[len++] = (uint8_t)(inner >> 8);
		tok[len++] = (uint8_t)inner;
	}
	memcpy(tok + len, krb5_oid, sizeof(krb5_oid));
	len += sizeof(krb5_oid);
	tok[len++] = 0x01;
	tok[len++] = 0x00;
	memcpy(tok + len, apreq.data, apreq.length);
	len += apreq.length;
	send_raw_token(0, tok, (uint32_t)len);
	free(tok);
	krb5_free_data_contents(kctx, &apreq);
	krb5_free_cred_contents(kctx, &creds);
	krb5_auth_con_free(kctx, ac);
	krb5_free_principal(kctx, match.client);
	krb5_free_principal(kctx, match.server);
	krb5_cc_close(kctx, cc);
	krb5_free_context(kctx);
	wait_for_close(0);
	return 0;
}

/* The initiator's handshake on fd 0; 0, or an exit code. */
static int connect_handshake(const char *service, gss_ctx_id_t *pctx)
{
	gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
	gss_name_t target;
	gss_buffer_desc name = {.length = strlen(service),
				.value = (void *)service};
	gss_buffer_desc in = GSS_C_EMPTY_BUFFER, out;
	OM_uint32 maj, min, flags = 0;

	maj = gss_import_name(&min, &name, GSS_C_NT_HOSTBASED_SERVICE, &target);
	if (GSS_ERROR(maj)) {
		gss_die("gss_import_name", maj, min);
	}
	for (;;) {
		maj = gss_init_sec_context(
		    &min, GSS_C_NO_CREDENTIAL, &ctx, target,
		    (gss_OID)gss_mech_krb5,
		    GSS_C_MUTUAL_FLAG | GSS_C_REPLAY_FLAG |
			GSS_C_SEQUENCE_FLAG | GSS_C_CONF_FLAG |
			GSS_C_INTEG_FLAG,
		    0, GSS_C_NO_CHANNEL_BINDINGS,
		    in.value != NULL ? &in : GSS_C_NO_BUFFER, NULL, &out,
		    &flags, NULL);
		free(in.value);
		in.value = NULL;
		if (GSS_ERROR(maj)) {
			gss_die("gss_init_sec_context", maj, min);
		}
		if (out.length > 0) {
			send_token(0, &out);
		}
		gss_release_buffer(&min, &out);
		if (!(maj & GSS_S_CONTINUE_NEEDED)) {
			break;
		}
		if (recv_token(0, &in) != 1) {
			fprintf(stderr, "knc-peer: EOF in handshake\n");
			return 4;
		}
	}
	gss_release_name(&min, &target);
	*pctx = ctx;
	return 0;
}

static int do_connect(const char *service, size_t size, const char *mode)
{
	gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
	gss_name_t target;
	gss_buffer_desc name = {.length = strlen(service),
				.value = (void *)service};
	gss_buffer_desc out;
	OM_uint32 maj, min, flags = 0, limit = 0;
	uint8_t *data, *echo;
	size_t len, off = 0, step = 1;
	int ret;

	if (mode != NULL && strcmp(mode, "expired-ticket") == 0) {
		/* SERVICE is a principal here: host/localhost */
		return send_expired_ticket(service);
	}
	if (mode != NULL && strcmp(mode, "hs-garbage") == 0) {
		uint8_t junk[100];

		memset(junk, 0x5a, sizeof(junk));
		send_raw_token(0, junk, sizeof(junk));
		wait_for_close(0);
		return 0;
	}
	if (mode != NULL && strcmp(mode, "hs-len4g") == 0) {
		write_all(0, "\xff\xff\xff\xff", 4);
		wait_for_close(0);
		return 0;
	}
	if (mode != NULL && strcmp(mode, "spnego") == 0) {
		/* a SPNEGO initial token: not krb5, must be refused */
		static gss_OID_desc spnego = {6, "\x2b\x06\x01\x05\x05\x02"};

		maj = gss_import_name(&min, &name, GSS_C_NT_HOSTBASED_SERVICE,
				      &target);
		if (GSS_ERROR(maj)) {
			gss_die("gss_import_name", maj, min);
		}
		maj = gss_init_sec_context(
		    &min, GSS_C_NO_CREDENTIAL, &ctx, target, &spnego,
		    GSS_C_MUTUAL_FLAG | GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG, 0,
		    GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &out,
		    &flags, NULL);
		if (GSS_ERROR(maj)) {
			gss_die("gss_init_sec_context (spnego)", maj, min);
		}
		send_token(0, &out);
		gss_release_buffer(&min, &out);
		gss_release_name(&min, &target);
		wait_for_close(0);
		gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
		return 0;
	}

	ret = connect_handshake(service, &ctx);
	if (ret != 0) {
		return ret;
	}
	if (mode != NULL) {
		int r = evil(ctx, mode);

		gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
		return r;
	}

	maj =
	    gss_wrap_size_limit(&min, ctx, 1, GSS_C_QOP_DEFAULT, 65536, &limit);
	if (GSS_ERROR(maj)) {
		gss_die("gss_wrap_size_limit", maj, min);
	}
	data = malloc(size + 1);
	for (size_t i = 0; i < size; i++) {
		data[i] = pattern(i);
	}
	/* frames of 1, 2, 4, ... bytes up to the limit, then the limit */
	while (off < size) {
		size_t n = step < limit ? step : limit;

		if (n > size - off) {
			n = size - off;
		}
		wrap_send(0, ctx, data + off, n, 1);
		off += n;
		step *= 2;
	}
	send_close(0, ctx);
	echo = recv_all(0, ctx, &len);
	gss_delete_sec_context(&min, &ctx, GSS_C_NO_BUFFER);
	if (len != size || memcmp(echo, data, size) != 0) {
		fprintf(stderr, "knc-peer: echo mismatch (%zu of %zu bytes)\n",
			len, size);
		return 5;
	}
	free(data);
	free(echo);
	return 0;
}

/*
 * ---- The knc program ------------------------------------------------
 *
 * knc-server and knc-client behave like the knc 1.12 program (bin/knc.c
 * move_data() and bin/gssstdio.c gstd_read()/read_packet(), not libknc's
 * command protocol) at end of stream, which is where tsgate once lost
 * data against it. Reproduced:
 *  - frames are read exactly: 4 length bytes, then the token, never a
 *    byte beyond (read_packet), so whatever follows an end marker stays
 *    in the kernel's receive buffer;
 *  - the other side's direction ends at the first frame whose unwrapped
 *    payload is empty, or at a bare FIN between frames (gstd_read()
 *    returns 0 for both); a FIN inside a frame is an error;
 *  - at that end the socket's reading side is shut (shutdown(SHUT_RD))
 *    and never read again, while the reply keeps being written;
 *  - our own direction ends with a bare shutdown(SHUT_WR), no marker,
 *    once everything queued is written;
 *  - at most 65536 plaintext bytes per frame (GSTD_MAXPACKETCONTENTS);
 *  - SO_LINGER {1, 10} (knc sets it on the network socket), and close()
 *    as soon as both directions are over: unread bytes then make the
 *    kernel reset the connection (Linux tcp_close()), which throws away
 *    the reply still queued on our side.
 * Not reproduced: the child process and its pipes (the "cat" is a
 * buffer in this process), select() (poll() here), logging. Unlike knc,
 * it insists on confidentiality and counts the bytes left unread at the
 * close (exit 7 when there are any, after closing as knc would).
 */

#define KNC_MAX_PLAIN 65536
#define KNC_POLL_MS   30000

struct knc {
	int fd;
	gss_ctx_id_t ctx;
	bool read_open;  /* the peer's direction has not ended */
	bool write_open; /* ours has not */
	/* the frame being read */
	uint8_t hdr[4];
	uint8_t *tok;
	size_t have, need;
	/* the frame being written */
	uint8_t *out;
	size_t out_len, out_pos;
};

static void knc_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1) {
		perror("knc-peer: fcntl");
		exit(4);
	}
}

/*
 * Read towards one frame. 1: *plain holds a data frame's payload; 0: the
 * end marker (empty payload or bare FIN), the reading side is shut; -1:
 * nothing more for now.
 */
static int knc_read_frame(struct knc *k, gss_buffer_t plain)
{
	for (;;) {
		uint8_t *dst =
		    k->tok == NULL ? k->hdr + k->have : k->tok + k->have;
		size_t want = (k->tok == NULL ? 4 : k->need) - k->have;
		ssize_t n = read(k->fd, dst, want);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 && errno == EAGAIN) {
			return -1;
		}
		if (n < 0) {
			fprintf(stderr, "knc-peer: read: %s\n",
				strerror(errno));
			exit(4);
		}
		if (n == 0 && k->have == 0 && k->tok == NULL) {
			/* a bare FIN between frames: end of stream */
			break;
		}
		if (n == 0) {
			fprintf(stderr, "knc-peer: EOF inside a frame\n");
			exit(4);
		}
		k->have += (size_t)n;
		if (k->tok == NULL && k->have == 4) {
			k->need = ((size_t)k->hdr[0] << 24) |
				  ((size_t)k->hdr[1] << 16) |
				  ((size_t)k->hdr[2] << 8) | k->hdr[3];
			if (k->need == 0 || k->need > MAX_TOKEN) {
				fprintf(stderr,
					"knc-peer: bad token length %zu\n",
					k->need);
				exit(4);
			}
			k->tok = malloc(k->need);
			k->have = 0;
			if (k->tok == NULL) {
				exit(4);
			}
		} else if (k->tok != NULL && k->have == k->need) {
			gss_buffer_desc in = {.length = k->need,
					      .value = k->tok};
			OM_uint32 maj, min;
			int conf = 0;

			maj = gss_unwrap(&min, k->ctx, &in, plain, &conf, NULL);
			free(k->tok);
			k->tok = NULL;
			k->have = 0;
			if (maj != GSS_S_COMPLETE || !conf) {
				gss_die("gss_unwrap", maj, min);
			}
			if (plain->length > 0) {
				return 1;
			}
			gss_release_buffer(&min, plain);
			break;
		}
	}
	shutdown(k->fd, SHUT_RD);
	k->read_open = false;
	return 0;
}

/* Wrap len bytes into the frame to write (len 0: an end marker). */
static void knc_queue_frame(struct knc *k, const void *data, size_t len)
{
	gss_buffer_desc in = {.length = len, .value = (void *)data};
	gss_buffer_desc tok;
	OM_uint32 maj, min;
	int conf = 0;

	maj = gss_wrap(&min, k->ctx, 1, GSS_C_QOP_DEFAULT, &in, &conf, &tok);
	if (maj != GSS_S_COMPLETE) {
		gss_die("gss_wrap", maj, min);
	}
	free(k->out);
	k->out = malloc(4 + tok.length);
	if (k->out == NULL) {
		exit(4);
	}
	k->out[0] = (uint8_t)(tok.length >> 24);
	k->out[1] = (uint8_t)(tok.length >> 16);
	k->out[2] = (uint8_t)(tok.length >> 8);
	k->out[3] = (uint8_t)tok.length;
	memcpy(k->out + 4, tok.value, tok.length);
	k->out_len = 4 + tok.length;
	k->out_pos = 0;
	gss_release_buffer(&min, &tok);
}

/* Write the queued frame; true when it is all out. */
static bool knc_flush(struct knc *k)
{
	while (k->out_pos < k->out_len) {
		ssize_t n =
		    write(k->fd, k->out + k->out_pos, k->out_len - k->out_pos);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 && errno == EAGAIN) {
			return false;
		}
		if (n < 0) {
			fprintf(stderr, "knc-peer: write: %s\n",
				strerror(errno));
			exit(4);
		}
		k->out_pos += (size_t)n;
	}
	k->out_len = 0;
	k->out_pos = 0;
	return true;
}

static void knc_end_write(struct knc *k)
{
	shutdown(k->fd, SHUT_WR);
	k->write_open = false;
}

static void knc_poll(struct knc *k, bool want_read, bool want_write)
{
	struct pollfd pfd = {.fd = k->fd, .events = 0};
	int n;

	if (want_read) {
		pfd.events |= POLLIN;
	}
	if (want_write) {
		pfd.events |= POLLOUT;
	}
	do {
		n = poll(&pfd, 1, KNC_POLL_MS);
	} while (n < 0 && errno == EINTR);
	if (n <= 0) {
		fprintf(stderr, "knc-peer: poll %s\n",
			n == 0 ? "timed out" : strerror(errno));
		exit(4);
	}
}

/*
 * Close as knc does once both directions are over, and report the bytes
 * left unread after the peer's end marker: 7 if there were any.
 */
static int knc_close(struct knc *k)
{
	struct linger l = {.l_onoff = 1, .l_linger = 10};
	int unread = 0;
	OM_uint32 min;

	if (ioctl(k->fd, FIONREAD, &unread) == -1) {
		unread = 0;
	}
	/* tests read the reply only now, so that it is still queued here */
	fprintf(stderr, "knc-peer: closing, %d bytes unread\n", unread);
	fflush(stderr);
	setsockopt(k->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(k->fd);
	gss_delete_sec_context(&min, &k->ctx, GSS_C_NO_BUFFER);
	free(k->out);
	if (unread > 0) {
		fprintf(stderr,
			"knc-peer: %d bytes followed the end marker, closed "
			"unread (the kernel resets the connection)\n",
			unread);
		return 7;
	}
	return 0;
}

static uint64_t fnv1a64(uint64_t h, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		h = (h ^ p[i]) * 0x100000001b3ull;
	}
	return h;
}

/* "knc -l PORT cat": echo to the end marker, then a bare FIN. */
static int knc_server(gss_ctx_id_t ctx, const char *behaviour)
{
	static const char banner[] = "hello from knc-server\n";
	struct knc k = {
	    .fd = 0, .ctx = ctx, .read_open = true, .write_open = true};
	uint8_t *q = NULL; /* what "cat" has still to send back */
	size_t qhead = 0, qlen = 0, qcap = 0, total = 0;
	uint64_t hash = 0xcbf29ce484222325ull;
	bool close_first =
	    behaviour != NULL && strcmp(behaviour, "close-first") == 0;
	bool reset = behaviour != NULL && strcmp(behaviour, "reset") == 0;

	if (behaviour != NULL && !close_first && !reset) {
		fprintf(stderr, "knc-peer: unknown behaviour %s\n", behaviour);
		return 2;
	}
	knc_nonblock(k.fd);
	if (close_first) {
		/* a program that writes a banner and closes its stdout */
		knc_queue_frame(&k, banner, sizeof(banner) - 1);
		while (!knc_flush(&k)) {
			knc_poll(&k, false, true);
		}
		knc_end_write(&k);
	}
	while (k.read_open || k.write_open) {
		gss_buffer_desc plain;
		OM_uint32 min;
		int r;

		if (k.write_open && k.out_len > 0 && !knc_flush(&k)) {
			/* wait below */
		} else if (k.write_open && qlen > 0) {
			size_t n = qlen < KNC_MAX_PLAIN ? qlen : KNC_MAX_PLAIN;

			knc_queue_frame(&k, q + qhead, n);
			qhead += n;
			qlen -= n;
			continue;
		} else if (k.write_open && !k.read_open) {
			/* "cat" saw its EOF and wrote everything: exits */
			knc_end_write(&k);
			continue;
		}
		/* backpressure, as knc's double buffer gives */
		if (k.read_open && qlen < (1u << 20)) {
			r = knc_read_frame(&k, &plain);
			if (r == 1) {
				total += plain.length;
				hash = fnv1a64(hash, plain.value, plain.length);
				if (reset) {
					struct linger l = {.l_onoff = 1,
							   .l_linger = 0};

					setsockopt(k.fd, SOL_SOCKET, SO_LINGER,
						   &l, sizeof(l));
					close(k.fd);
					return 0;
				}
				if (!close_first) {
					if (qhead + qlen + plain.length >
					    qcap) {
						if (qlen > 0) {
							memmove(q, q + qhead,
								qlen);
						}
						qhead = 0;
						qcap = qlen + plain.length +
						       (1u << 20);
						q = realloc(q, qcap);
						if (q == NULL) {
							exit(4);
						}
					}
					memcpy(q + qhead + qlen, plain.value,
					       plain.length);
					qlen += plain.length;
				}
				gss_release_buffer(&min, &plain);
				continue;
			}
			if (r == 0) {
				continue;
			}
		}
		knc_poll(&k, k.read_open && qlen < (1u << 20),
			 k.write_open && k.out_len > 0);
	}
	free(q);
	if (close_first) {
		fprintf(stderr,
			"knc-peer: received %zu bytes fnv1a64 %016llx\n", total,
			(unsigned long long)hash);
	}
	return knc_close(&k);
}

/* "knc SERVICE@HOST PORT < file": send, bare FIN, read to the marker. */
static int knc_client(gss_ctx_id_t ctx, size_t size, const char *behaviour)
{
	struct knc k = {
	    .fd = 0, .ctx = ctx, .read_open = true, .write_open = true};
	uint8_t *data = malloc(size + 1), *reply = NULL;
	size_t pos = 0, got = 0, cap = 0;
	int ends = 0; /* end frames queued: marker, trailing frame */
	int want_ends = 0, ret;
	bool late = false;

	if (behaviour != NULL && strcmp(behaviour, "marker") == 0) {
		want_ends = 1;
	} else if (behaviour != NULL && strcmp(behaviour, "trailing") == 0) {
		want_ends = 2;
	} else if (behaviour != NULL &&
		   strcmp(behaviour, "trailing-late") == 0) {
		want_ends = 2;
		late = true;
	} else if (behaviour != NULL) {
		fprintf(stderr, "knc-peer: unknown behaviour %s\n", behaviour);
		return 2;
	}
	if (data == NULL) {
		return 4;
	}
	for (size_t i = 0; i < size; i++) {
		data[i] = pattern(i);
	}
	knc_nonblock(k.fd);
	while (k.read_open || k.write_open) {
		gss_buffer_desc plain;
		OM_uint32 min;
		int r;

		if (k.write_open && k.out_len > 0 && !knc_flush(&k)) {
			/* wait below */
		} else if (k.write_open && pos < size) {
			size_t n = size - pos < KNC_MAX_PLAIN ? size - pos
							      : KNC_MAX_PLAIN;

			knc_queue_frame(&k, data + pos, n);
			pos += n;
			continue;
		} else if (k.write_open && ends < want_ends) {
			/* not knc: a marker, and maybe a frame after it */
			if (ends == 0) {
				knc_queue_frame(&k, "", 0);
			} else if (late && size >= KNC_MAX_PLAIN) {
				/* more than a reader's read-ahead takes */
				knc_queue_frame(&k, data, KNC_MAX_PLAIN);
			} else {
				knc_queue_frame(&k, "TRAILING", 8);
			}
			ends++;
			continue;
		} else if (k.write_open) {
			knc_end_write(&k);
			if (late) {
				/* a slow reader: the reply piles up */
				poll(NULL, 0, 300);
				late = false;
			}
			continue;
		}
		if (k.read_open && !(late && k.write_open)) {
			r = knc_read_frame(&k, &plain);
			if (r == 1) {
				if (got + plain.length > cap) {
					cap = (got + plain.length) * 2;
					reply = realloc(reply, cap);
					if (reply == NULL) {
						exit(4);
					}
				}
				memcpy(reply + got, plain.value, plain.length);
				got += plain.length;
				gss_release_buffer(&min, &plain);
				continue;
			}
			if (r == 0) {
				continue;
			}
		}
		knc_poll(&k, k.read_open && !(late && k.write_open),
			 k.write_open && k.out_len > 0);
	}
	ret = knc_close(&k);
	if (got != size || (size > 0 && memcmp(reply, data, size) != 0)) {
		fprintf(stderr, "knc-peer: echo mismatch (%zu of %zu bytes)\n",
			got, size);
		ret = 5;
	}
	free(data);
	free(reply);
	return ret;
}

int main(int argc, char **argv)
{
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "accept") == 0) {
		return do_accept(argv[2], argc == 4 ? argv[3] : NULL);
	}
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "connect") == 0) {
		return do_connect(argv[2], strtoul(argv[3], NULL, 10),
				  argc == 5 ? argv[4] : NULL);
	}
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "knc-server") == 0) {
		gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
		int ret = accept_handshake(argv[2], &ctx);

		return ret != 0 ? ret
				: knc_server(ctx, argc == 4 ? argv[3] : NULL);
	}
	if ((argc == 4 || argc == 5) && strcmp(argv[1], "knc-client") == 0) {
		gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
		int ret = connect_handshake(argv[2], &ctx);

		return ret != 0 ? ret
				: knc_client(ctx, strtoul(argv[3], NULL, 10),
					     argc == 5 ? argv[4] : NULL);
	}
	fprintf(stderr, "usage: knc-peer accept CLIENT [EVIL] | "
			"knc-peer connect SERVICE SIZE [EVIL] | "
			"knc-peer knc-server CLIENT [BEHAVIOUR] | "
			"knc-peer knc-client SERVICE SIZE [BEHAVIOUR]\n");
	return 2;
}
