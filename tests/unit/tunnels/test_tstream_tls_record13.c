/* SPDX-License-Identifier: MIT */
/*
 * tstream_tls_record13: our TLS 1.3 record layer against GnuTLS's
 * (differential: a GnuTLS client talks to our record layer, which took
 * over from a GnuTLS server session after the handshake, for each AEAD
 * suite, across KeyUpdates both ways), and hostile records against the
 * opener (each must end in the right alert and nothing else).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "tstream_tls_record13.h"
#include "tt.h"
#include "tt_certs.h"

static struct tt_certs *certs;

/*
 * An in-memory GnuTLS client and server (the server is dropped after the
 * handshake; our record layer plays it from then on).
 */

struct queue {
	uint8_t *buf;
	size_t len;
	size_t cap;
};

static void queue_put(struct queue *q, const void *data, size_t len)
{
	if (q->len + len > q->cap) {
		q->cap = (q->len + len) * 2;
		q->buf = realloc(q->buf, q->cap);
		ck_assert_ptr_nonnull(q->buf);
	}
	memcpy(q->buf + q->len, data, len);
	q->len += len;
}

static void queue_take(struct queue *q, size_t n)
{
	memmove(q->buf, q->buf + n, q->len - n);
	q->len -= n;
}

struct end {
	gnutls_session_t s;
	struct queue *in;
	struct queue *out;
	uint8_t csecret[TLS13_SECRET_MAX];
	uint8_t ssecret[TLS13_SECRET_MAX];
	size_t secret_len;
};

static ssize_t end_push(gnutls_transport_ptr_t p, const void *d, size_t n)
{
	struct end *e = p;

	queue_put(e->out, d, n);
	return (ssize_t)n;
}

static ssize_t end_pull(gnutls_transport_ptr_t p, void *d, size_t n)
{
	struct end *e = p;

	if (e->in->len == 0) {
		gnutls_transport_set_errno(e->s, EAGAIN);
		return -1;
	}
	if (n > e->in->len) {
		n = e->in->len;
	}
	memcpy(d, e->in->buf, n);
	queue_take(e->in, n);
	return (ssize_t)n;
}

static int end_keylog(gnutls_session_t s,
		      const char *label,
		      const gnutls_datum_t *secret)
{
	struct end *e = gnutls_session_get_ptr(s);

	ck_assert_uint_le(secret->size, TLS13_SECRET_MAX);
	if (strcmp(label, "CLIENT_TRAFFIC_SECRET_0") == 0) {
		memcpy(e->csecret, secret->data, secret->size);
		e->secret_len = secret->size;
	} else if (strcmp(label, "SERVER_TRAFFIC_SECRET_0") == 0) {
		memcpy(e->ssecret, secret->data, secret->size);
	}
	return 0;
}

struct pairing {
	struct queue c2s;
	struct queue s2c;
	struct end cli;
	struct end srv;
	gnutls_certificate_credentials_t scred;
	gnutls_certificate_credentials_t ccred;
	struct tls13_conn conn; /* ours, the server's side */
};

static void end_init(struct end *e,
		     unsigned flags,
		     const char *prio,
		     gnutls_certificate_credentials_t cred)
{
	ck_assert_int_eq(gnutls_init(&e->s, flags | GNUTLS_NONBLOCK), 0);
	ck_assert_int_eq(gnutls_priority_set_direct(e->s, prio, NULL), 0);
	ck_assert_int_eq(
	    gnutls_credentials_set(e->s, GNUTLS_CRD_CERTIFICATE, cred), 0);
	gnutls_transport_set_ptr(e->s, e);
	gnutls_session_set_ptr(e->s, e);
	gnutls_transport_set_push_function(e->s, end_push);
	gnutls_transport_set_pull_function(e->s, end_pull);
	gnutls_session_set_keylog_function(e->s, end_keylog);
}

/* Handshake, then our record layer takes the server's place. */
static void pairing_start(struct pairing *p, const char *prio)
{
	gnutls_datum_t mac;
	gnutls_datum_t iv;
	gnutls_datum_t key;
	uint8_t seq[8];
	int rc = GNUTLS_E_AGAIN;
	int rs = GNUTLS_E_AGAIN;
	int i;

	memset(p, 0, sizeof(*p));
	ck_assert_int_eq(gnutls_certificate_allocate_credentials(&p->scred), 0);
	ck_assert_int_eq(gnutls_certificate_set_x509_key_file(
			     p->scred, certs->srv_ec_crt, certs->srv_ec_key,
			     GNUTLS_X509_FMT_PEM),
			 0);
	ck_assert_int_eq(gnutls_certificate_allocate_credentials(&p->ccred), 0);
	p->cli.in = &p->s2c;
	p->cli.out = &p->c2s;
	p->srv.in = &p->c2s;
	p->srv.out = &p->s2c;
	end_init(&p->cli, GNUTLS_CLIENT, prio, p->ccred);
	end_init(&p->srv, GNUTLS_SERVER, prio, p->scred);
	for (i = 0; i < 100 && (rc != 0 || rs != 0); i++) {
		if (rc != 0) {
			rc = gnutls_handshake(p->cli.s);
			ck_assert_msg(rc == 0 || rc == GNUTLS_E_AGAIN,
				      "client: %s", gnutls_strerror(rc));
		}
		if (rs != 0) {
			rs = gnutls_handshake(p->srv.s);
			ck_assert_msg(rs == 0 || rs == GNUTLS_E_AGAIN,
				      "server: %s", gnutls_strerror(rs));
		}
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(rs, 0);
	ck_assert_int_eq(gnutls_protocol_get_version(p->srv.s), GNUTLS_TLS1_3);

	ck_assert_int_eq(tls13_dir_init(&p->conn.rd,
					gnutls_cipher_get(p->srv.s),
					p->srv.csecret, p->srv.secret_len),
			 0);
	ck_assert_int_eq(tls13_dir_init(&p->conn.wr,
					gnutls_cipher_get(p->srv.s),
					p->srv.ssecret, p->srv.secret_len),
			 0);
	p->conn.write_key_limit = TLS13_WRITE_KEY_LIMIT;
	/* what we derived is what GnuTLS uses (the run-time self-check) */
	ck_assert_int_eq(
	    gnutls_record_get_state(p->srv.s, 1, &mac, &iv, &key, seq), 0);
	ck_assert_uint_eq(key.size, p->conn.rd.key_len);
	ck_assert_mem_eq(key.data, p->conn.rd.key, key.size);
	ck_assert_uint_eq(iv.size, TLS13_IV_SIZE);
	ck_assert_mem_eq(iv.data, p->conn.rd.iv, iv.size);
	ck_assert_int_eq(
	    gnutls_record_get_state(p->srv.s, 0, &mac, &iv, &key, seq), 0);
	ck_assert_mem_eq(key.data, p->conn.wr.key, key.size);
	ck_assert_mem_eq(iv.data, p->conn.wr.iv, iv.size);
	/* a server that sent tickets used up sequence numbers already */
	for (i = 0; i < 8; i++) {
		p->conn.wr.seq = (p->conn.wr.seq << 8) | seq[i];
	}
	gnutls_deinit(p->srv.s);
	p->srv.s = NULL;
}

static void pairing_end(struct pairing *p)
{
	tls13_dir_wipe(&p->conn.rd);
	tls13_dir_wipe(&p->conn.wr);
	gnutls_deinit(p->cli.s);
	gnutls_certificate_free_credentials(p->scred);
	gnutls_certificate_free_credentials(p->ccred);
	free(p->c2s.buf);
	free(p->s2c.buf);
}

/* Open the next whole record the client sent. */
static enum tls13_event pairing_open(struct pairing *p,
				     uint8_t *out,
				     size_t *out_len,
				     uint8_t *alert)
{
	uint8_t *data;
	size_t need;
	enum tls13_event ev;

	ck_assert_int_eq(
	    tls13_record_complete(p->c2s.buf, p->c2s.len, &need, alert), 1);
	ev = tls13_open(&p->conn, p->c2s.buf, need, 0, &data, out_len, alert);
	if (ev == TLS13_EV_DATA) {
		memcpy(out, data, *out_len);
	}
	queue_take(&p->c2s, need);
	return ev;
}

/* client -> us: what GnuTLS seals (padded by pad bytes), we open */
static void client_to_us(struct pairing *p, size_t len, size_t pad)
{
	static uint8_t msg[TLS13_PLAIN_MAX];
	static uint8_t got[TLS13_PLAIN_MAX];
	size_t got_len = 0;
	size_t total = 0;
	uint8_t alert = 0;

	ssize_t sent;

	gnutls_rnd(GNUTLS_RND_NONCE, msg, len);
	sent = gnutls_record_send2(p->cli.s, msg, len, pad, 0);
	if (len == 0 && sent == GNUTLS_E_INVALID_REQUEST) {
		return; /* GnuTLS sends no empty records */
	}
	ck_assert_int_eq(sent, (ssize_t)len);
	while (p->c2s.len > 0) {
		size_t n = 0;

		enum tls13_event ev = pairing_open(p, got + total, &n, &alert);

		ck_assert_msg(ev == TLS13_EV_DATA,
			      "event %d alert %u len %zu pad %zu", (int)ev,
			      (unsigned)alert, len, pad);
		total += n;
		got_len = total;
	}
	ck_assert_uint_eq(got_len, len);
	ck_assert_mem_eq(got, msg, len);
}

/* us -> client: what we seal, GnuTLS opens */
static void us_to_client(struct pairing *p, size_t len)
{
	static uint8_t rec[TLS13_RECORD_MAX];
	static uint8_t msg[TLS13_PLAIN_MAX];
	static uint8_t got[TLS13_PLAIN_MAX];
	size_t total = 0;
	unsigned again = 0;
	ssize_t n;

	gnutls_rnd(GNUTLS_RND_NONCE, msg, len);
	if (tls13_need_key_update(&p->conn)) {
		n = tls13_seal_key_update(&p->conn, false, rec);
		ck_assert_int_eq(n, TLS13_OVERHEAD + 5);
		queue_put(&p->s2c, rec, (size_t)n);
	}
	memcpy(rec + TLS13_HEADER_SIZE, msg, len);
	n = tls13_seal(&p->conn.wr, TLS13_CT_APPLICATION_DATA, rec, len);
	ck_assert_int_eq(n, (ssize_t)(len + TLS13_OVERHEAD));
	queue_put(&p->s2c, rec, (size_t)n);
	if (len == 0) {
		/* GnuTLS skips an empty record: it must not fail on it */
		do {
			n = gnutls_record_recv(p->cli.s, got, sizeof(got));
			ck_assert_int_eq(n, GNUTLS_E_AGAIN);
		} while (p->s2c.len > 0 && ++again < 4);
		ck_assert_uint_eq(p->s2c.len, 0);
		return;
	}
	while (total < len) {
		n = gnutls_record_recv(p->cli.s, got + total,
				       sizeof(got) - total);
		if (n == GNUTLS_E_AGAIN && p->s2c.len > 0 && ++again < 4) {
			continue; /* it took a ticket or a KeyUpdate */
		}
		ck_assert_msg(n > 0, "client recv: %s (len %zu, left %zu)",
			      gnutls_strerror((int)n), len, p->s2c.len);
		total += (size_t)n;
	}
	ck_assert_uint_eq(total, len);
	ck_assert_mem_eq(got, msg, len);
}

static size_t random_size(unsigned i)
{
	uint32_t r;

	switch (i % 5) {
	case 0:
		return 0;
	case 1:
		return TLS13_PLAIN_MAX;
	case 2:
		return 1;
	default:
		gnutls_rnd(GNUTLS_RND_NONCE, &r, sizeof(r));
		return r % (TLS13_PLAIN_MAX + 1);
	}
}

static void both_ways(struct pairing *p, unsigned rounds)
{
	unsigned i;

	for (i = 0; i < rounds; i++) {
		client_to_us(p, random_size(i), i % 3 == 0 ? i * 7 : 0);
		us_to_client(p, random_size(i + 2));
	}
}

static const char *const suites[] = {
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM",
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-256-GCM",
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305",
};

static const gnutls_cipher_algorithm_t suite_ciphers[] = {
    GNUTLS_CIPHER_AES_128_GCM,
    GNUTLS_CIPHER_AES_256_GCM,
    GNUTLS_CIPHER_CHACHA20_POLY1305,
};

START_TEST(differential)
{
	struct pairing p;
	uint8_t rec[TLS13_OVERHEAD + 8];
	uint8_t got[16];
	uint8_t alert = 0;
	size_t n = 0;
	ssize_t len;

	pairing_start(&p, suites[_i]);
	ck_assert_int_eq(gnutls_cipher_get(p.cli.s), suite_ciphers[_i]);
	both_ways(&p, 20);

	/* the client updates its key and asks for ours */
	ck_assert_int_eq(gnutls_session_key_update(p.cli.s, GNUTLS_KU_PEER), 0);
	ck_assert_int_eq(pairing_open(&p, got, &n, &alert),
			 TLS13_EV_KEY_UPDATE);
	ck_assert(p.conn.send_key_update);
	ck_assert_uint_eq(p.conn.rd.seq, 0);
	both_ways(&p, 10); /* us_to_client sends the requested update */
	ck_assert(!p.conn.send_key_update);

	/* the client updates without asking */
	ck_assert_int_eq(gnutls_session_key_update(p.cli.s, 0), 0);
	ck_assert_int_eq(pairing_open(&p, got, &n, &alert),
			 TLS13_EV_KEY_UPDATE);
	ck_assert(!p.conn.send_key_update);
	both_ways(&p, 5);

	/* we update and ask: GnuTLS answers with its own KeyUpdate */
	len = tls13_seal_key_update(&p.conn, true, rec);
	ck_assert_int_gt(len, 0);
	queue_put(&p.s2c, rec, (size_t)len);
	ck_assert_int_eq(gnutls_record_recv(p.cli.s, got, sizeof(got)),
			 GNUTLS_E_AGAIN);
	/* GnuTLS sends its answer before its next data */
	ck_assert_int_eq(gnutls_record_send(p.cli.s, "after", 5), 5);
	ck_assert_int_eq(pairing_open(&p, got, &n, &alert),
			 TLS13_EV_KEY_UPDATE);
	ck_assert_int_eq(pairing_open(&p, got, &n, &alert), TLS13_EV_DATA);
	ck_assert_uint_eq(n, 5);
	ck_assert_mem_eq(got, "after", 5);
	both_ways(&p, 5);

	/* our own KeyUpdate at a lowered record limit, GnuTLS reads on */
	p.conn.write_key_limit = 3;
	both_ways(&p, 12);
	ck_assert_uint_le(p.conn.wr.seq, 3);

	/* close_notify */
	ck_assert_int_eq(gnutls_bye(p.cli.s, GNUTLS_SHUT_WR), 0);
	ck_assert_int_eq(pairing_open(&p, got, &n, &alert), TLS13_EV_CLOSE);
	len = tls13_seal_alert(&p.conn.wr, 1, GNUTLS_A_CLOSE_NOTIFY, rec);
	ck_assert_int_eq(len, TLS13_OVERHEAD + 2);
	queue_put(&p.s2c, rec, (size_t)len);
	ck_assert_int_eq(gnutls_record_recv(p.cli.s, got, sizeof(got)), 0);
	pairing_end(&p);
}
END_TEST

/*
 * Hostile records: a sender with the peer's keys and a hand-made inner
 * plaintext (content, type, padding as the attacker wants).
 */

static const uint8_t secret32[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
				     12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
				     23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

struct hostile {
	struct tls13_dir evil; /* the peer's write side */
	struct tls13_conn conn;
	uint8_t rec[TLS13_HEADER_SIZE + TLS13_CIPHER_MAX + 64];
	size_t len;
};

static void hostile_init(struct hostile *h)
{
	memset(h, 0, sizeof(*h));
	ck_assert_int_eq(tls13_dir_init(&h->evil, GNUTLS_CIPHER_AES_128_GCM,
					secret32, sizeof(secret32)),
			 0);
	ck_assert_int_eq(tls13_dir_init(&h->conn.rd, GNUTLS_CIPHER_AES_128_GCM,
					secret32, sizeof(secret32)),
			 0);
	ck_assert_int_eq(tls13_dir_init(&h->conn.wr, GNUTLS_CIPHER_AES_128_GCM,
					secret32, sizeof(secret32)),
			 0);
	h->conn.write_key_limit = TLS13_WRITE_KEY_LIMIT;
}

static void hostile_end(struct hostile *h)
{
	tls13_dir_wipe(&h->evil);
	tls13_dir_wipe(&h->conn.rd);
	tls13_dir_wipe(&h->conn.wr);
}

/* Seal any inner plaintext (no limits checked: that is the point). */
static void hostile_seal(struct hostile *h,
			 const uint8_t *inner,
			 size_t inner_len)
{
	uint8_t nonce[TLS13_IV_SIZE];
	size_t tag_size = TLS13_TAG_SIZE;
	size_t enc_len = inner_len + TLS13_TAG_SIZE;
	giovec_t aad;
	giovec_t body;
	unsigned i;

	ck_assert_uint_le(TLS13_HEADER_SIZE + enc_len, sizeof(h->rec));
	ck_assert_int_eq(tls13_dir_activate(&h->evil), 0);
	memcpy(nonce, h->evil.iv, sizeof(nonce));
	for (i = 0; i < 8; i++) {
		nonce[11 - i] ^= (uint8_t)(h->evil.seq >> (8 * i));
	}
	h->rec[0] = TLS13_CT_APPLICATION_DATA;
	h->rec[1] = 3;
	h->rec[2] = 3;
	h->rec[3] = (uint8_t)(enc_len >> 8);
	h->rec[4] = (uint8_t)enc_len;
	memcpy(h->rec + TLS13_HEADER_SIZE, inner, inner_len);
	aad.iov_base = h->rec;
	aad.iov_len = TLS13_HEADER_SIZE;
	body.iov_base = h->rec + TLS13_HEADER_SIZE;
	body.iov_len = inner_len;
	ck_assert_int_eq(gnutls_aead_cipher_encryptv2(
			     h->evil.hd, nonce, sizeof(nonce), &aad, 1, &body,
			     1, h->rec + TLS13_HEADER_SIZE + inner_len,
			     &tag_size),
			 0);
	h->evil.seq++;
	h->len = TLS13_HEADER_SIZE + enc_len;
}

static enum tls13_event hostile_open(struct hostile *h,
				     uint64_t now,
				     uint8_t *alert)
{
	uint8_t *data;
	size_t len;

	*alert = 0;
	return tls13_open(&h->conn, h->rec, h->len, now, &data, &len, alert);
}

static void expect_error(struct hostile *h, uint8_t want)
{
	uint8_t alert;

	ck_assert_int_eq(hostile_open(h, 0, &alert), TLS13_EV_ERROR);
	ck_assert_uint_eq(alert, want);
}

START_TEST(hostile_bad_tag)
{
	struct hostile h;
	uint8_t inner[] = {'h', 'i', TLS13_CT_APPLICATION_DATA};
	uint8_t alert;

	hostile_init(&h);
	hostile_seal(&h, inner, sizeof(inner));
	h.rec[h.len - 1] ^= 1;
	expect_error(&h, GNUTLS_A_BAD_RECORD_MAC);
	hostile_end(&h);
	/* a changed header is a bad tag too (it is the additional data) */
	hostile_init(&h);
	hostile_seal(&h, inner, sizeof(inner));
	h.rec[1] = 1;
	h.rec[2] = 1; /* the version is ignored for parsing, not for the tag */
	expect_error(&h, GNUTLS_A_BAD_RECORD_MAC);
	hostile_end(&h);
	/* a replayed record (sequence number moved on) */
	hostile_init(&h);
	hostile_seal(&h, inner, sizeof(inner));
	{
		uint8_t copy[sizeof(h.rec)];
		size_t len = h.len;

		memcpy(copy, h.rec, len);
		ck_assert_int_eq(hostile_open(&h, 0, &alert), TLS13_EV_DATA);
		memcpy(h.rec, copy, len);
		h.len = len;
		expect_error(&h, GNUTLS_A_BAD_RECORD_MAC);
	}
	hostile_end(&h);
}
END_TEST

START_TEST(hostile_truncated_and_oversized)
{
	struct hostile h;
	static uint8_t inner[TLS13_PLAIN_MAX + 2];
	size_t need = 0;
	uint8_t alert = 0;

	hostile_init(&h);
	/* a header and less than a tag */
	memcpy(h.rec, (const uint8_t[]){23, 3, 3, 0, 15}, 5);
	h.len = 5 + 15;
	expect_error(&h, GNUTLS_A_BAD_RECORD_MAC);
	/* a record that is not complete yet is waited for */
	memcpy(h.rec, (const uint8_t[]){23, 3, 3, 0x10, 0}, 5);
	ck_assert_int_eq(tls13_record_complete(h.rec, 4, &need, &alert), 0);
	ck_assert_int_eq(tls13_record_complete(h.rec, 100, &need, &alert), 0);
	ck_assert_uint_eq(need, 5 + 0x1000);
	/* the caller cut it short */
	h.len = 100;
	expect_error(&h, GNUTLS_A_DECODE_ERROR);
	/* ciphertext length above 2^14 + 256 */
	memcpy(h.rec, (const uint8_t[]){23, 3, 3, 0x41, 0x01}, 5);
	ck_assert_int_eq(tls13_record_complete(h.rec, 5, &need, &alert), -1);
	ck_assert_uint_eq(alert, GNUTLS_A_RECORD_OVERFLOW);
	/* 2^14 + 1 bytes of content: authentic, but too long */
	memset(inner, 'x', sizeof(inner));
	inner[TLS13_PLAIN_MAX + 1] = TLS13_CT_APPLICATION_DATA;
	hostile_seal(&h, inner, sizeof(inner));
	expect_error(&h, GNUTLS_A_RECORD_OVERFLOW);
	/* exactly 2^14 is fine */
	hostile_end(&h);
	hostile_init(&h);
	inner[TLS13_PLAIN_MAX] = TLS13_CT_APPLICATION_DATA;
	hostile_seal(&h, inner, TLS13_PLAIN_MAX + 1);
	ck_assert_int_eq(hostile_open(&h, 0, &alert), TLS13_EV_DATA);
	hostile_end(&h);
}
END_TEST

START_TEST(hostile_inner_plaintext)
{
	struct hostile h;
	uint8_t pad_ok[] = {'a', 'b', TLS13_CT_APPLICATION_DATA, 0, 0, 0};
	uint8_t zeros[40] = {0};
	uint8_t unknown[] = {'a', 99};
	uint8_t ccs[] = {1, TLS13_CT_CHANGE_CIPHER_SPEC};
	uint8_t empty_app[] = {TLS13_CT_APPLICATION_DATA};
	uint8_t *data;
	size_t len;
	uint8_t alert;

	hostile_init(&h);
	/* zero padding is stripped */
	hostile_seal(&h, pad_ok, sizeof(pad_ok));
	ck_assert_int_eq(
	    tls13_open(&h.conn, h.rec, h.len, 0, &data, &len, &alert),
	    TLS13_EV_DATA);
	ck_assert_uint_eq(len, 2);
	ck_assert_mem_eq(data, "ab", 2);
	/* an empty application data record is allowed */
	hostile_seal(&h, empty_app, sizeof(empty_app));
	ck_assert_int_eq(
	    tls13_open(&h.conn, h.rec, h.len, 0, &data, &len, &alert),
	    TLS13_EV_DATA);
	ck_assert_uint_eq(len, 0);
	/* padding only, and a zero-length inner plaintext */
	hostile_seal(&h, zeros, sizeof(zeros));
	expect_error(&h, GNUTLS_A_UNEXPECTED_MESSAGE);
	hostile_end(&h);
	hostile_init(&h);
	hostile_seal(&h, zeros, 0);
	expect_error(&h, GNUTLS_A_UNEXPECTED_MESSAGE);
	hostile_end(&h);
	/* unknown inner type; change_cipher_spec inside a record */
	hostile_init(&h);
	hostile_seal(&h, unknown, sizeof(unknown));
	expect_error(&h, GNUTLS_A_UNEXPECTED_MESSAGE);
	hostile_end(&h);
	hostile_init(&h);
	hostile_seal(&h, ccs, sizeof(ccs));
	expect_error(&h, GNUTLS_A_UNEXPECTED_MESSAGE);
	/* outer types other than application_data */
	memcpy(h.rec, (const uint8_t[]){20, 3, 3, 0, 1, 1}, 6);
	h.len = 6;
	expect_error(&h, GNUTLS_A_UNEXPECTED_MESSAGE);
	memcpy(h.rec, (const uint8_t[]){21, 3, 3, 0, 2, 2, 40}, 7);
	h.len = 7;
	expect_error(&h, GNUTLS_A_UNEXPECTED_MESSAGE);
	hostile_end(&h);
}
END_TEST

START_TEST(hostile_handshake_messages)
{
	struct hostile h;
	uint8_t ticket[] = {4, 0, 0, 1, 0, TLS13_CT_HANDSHAKE};
	uint8_t cert_req[] = {13, 0, 0, 0, TLS13_CT_HANDSHAKE};
	uint8_t ku_bad[] = {24, 0, 0, 1, 2, TLS13_CT_HANDSHAKE};
	uint8_t ku_long[] = {24, 0, 0, 2, 0, 0, TLS13_CT_HANDSHAKE};
	uint8_t ku_short[] = {24, 0, 0, TLS13_CT_HANDSHAKE};
	uint8_t ku_then_more[] = {
	    24, 0, 0, 1, 0, 24, 0, 0, 1, 0, TLS13_CT_HANDSHAKE};
	uint8_t empty_hs[] = {TLS13_CT_HANDSHAKE};
	const struct {
		const uint8_t *inner;
		size_t len;
		uint8_t alert;
	} cases[] = {
	    {ticket, sizeof(ticket), GNUTLS_A_UNEXPECTED_MESSAGE},
	    {cert_req, sizeof(cert_req), GNUTLS_A_UNEXPECTED_MESSAGE},
	    {ku_bad, sizeof(ku_bad), GNUTLS_A_ILLEGAL_PARAMETER},
	    {ku_long, sizeof(ku_long), GNUTLS_A_UNEXPECTED_MESSAGE},
	    {ku_short, sizeof(ku_short), GNUTLS_A_UNEXPECTED_MESSAGE},
	    {ku_then_more, sizeof(ku_then_more), GNUTLS_A_UNEXPECTED_MESSAGE},
	    {empty_hs, sizeof(empty_hs), GNUTLS_A_UNEXPECTED_MESSAGE},
	};
	unsigned i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hostile_init(&h);
		hostile_seal(&h, cases[i].inner, cases[i].len);
		expect_error(&h, cases[i].alert);
		/* the read key did not move on */
		ck_assert_uint_eq(h.conn.rd.seq, 1);
		hostile_end(&h);
	}
}
END_TEST

START_TEST(hostile_key_update_flood)
{
	struct hostile h;
	uint8_t ku[] = {24, 0, 0, 1, 0, TLS13_CT_HANDSHAKE};
	uint8_t alert;
	unsigned i;

	hostile_init(&h);
	/* one per second goes on for ever */
	for (i = 0; i < 3 * TLS13_PEER_KU_MAX; i++) {
		hostile_seal(&h, ku, sizeof(ku));
		ck_assert_int_eq(tls13_dir_update(&h.evil), 0);
		ck_assert_int_eq(hostile_open(&h, 1000 * (uint64_t)i, &alert),
				 TLS13_EV_KEY_UPDATE);
	}
	/* more than TLS13_PEER_KU_MAX within a window ends the stream */
	for (i = 0; i < TLS13_PEER_KU_MAX; i++) {
		hostile_seal(&h, ku, sizeof(ku));
		ck_assert_int_eq(tls13_dir_update(&h.evil), 0);
		ck_assert_int_eq(hostile_open(&h, 100000, &alert),
				 TLS13_EV_KEY_UPDATE);
	}
	hostile_seal(&h, ku, sizeof(ku));
	ck_assert_int_eq(hostile_open(&h, 100001, &alert), TLS13_EV_ERROR);
	ck_assert_uint_eq(alert, GNUTLS_A_UNEXPECTED_MESSAGE);
	hostile_end(&h);
}
END_TEST

START_TEST(hostile_alerts)
{
	struct hostile h;
	uint8_t fatal[] = {2, GNUTLS_A_HANDSHAKE_FAILURE, TLS13_CT_ALERT};
	uint8_t warning[] = {1, GNUTLS_A_BAD_CERTIFICATE, TLS13_CT_ALERT};
	uint8_t close[] = {1, GNUTLS_A_CLOSE_NOTIFY, TLS13_CT_ALERT};
	uint8_t cancel[] = {1, GNUTLS_A_USER_CANCELED, TLS13_CT_ALERT};
	uint8_t two[] = {1, 0, 1, 0, TLS13_CT_ALERT};
	uint8_t half[] = {1, TLS13_CT_ALERT};
	uint8_t app[] = {'x', TLS13_CT_APPLICATION_DATA};
	uint8_t alert;

	hostile_init(&h);
	/* data, then a fatal alert in the middle of the stream */
	hostile_seal(&h, app, sizeof(app));
	ck_assert_int_eq(hostile_open(&h, 0, &alert), TLS13_EV_DATA);
	hostile_seal(&h, fatal, sizeof(fatal));
	ck_assert_int_eq(hostile_open(&h, 0, &alert), TLS13_EV_PEER_ALERT);
	ck_assert_uint_eq(alert, GNUTLS_A_HANDSHAKE_FAILURE);
	/* TLS 1.3: a "warning" other than close_notify is an error too */
	hostile_seal(&h, warning, sizeof(warning));
	ck_assert_int_eq(hostile_open(&h, 0, &alert), TLS13_EV_PEER_ALERT);
	ck_assert_uint_eq(alert, GNUTLS_A_BAD_CERTIFICATE);
	hostile_seal(&h, cancel, sizeof(cancel));
	ck_assert_int_eq(hostile_open(&h, 0, &alert), TLS13_EV_IGNORE);
	hostile_seal(&h, close, sizeof(close));
	ck_assert_int_eq(hostile_open(&h, 0, &alert), TLS13_EV_CLOSE);
	hostile_seal(&h, two, sizeof(two));
	expect_error(&h, GNUTLS_A_DECODE_ERROR);
	hostile_seal(&h, half, sizeof(half));
	expect_error(&h, GNUTLS_A_DECODE_ERROR);
	hostile_end(&h);
}
END_TEST

START_TEST(sequence_exhaustion)
{
	struct hostile h;
	uint8_t app[] = {'x', TLS13_CT_APPLICATION_DATA};
	uint8_t rec[TLS13_OVERHEAD + 1];
	uint8_t alert;

	hostile_init(&h);
	h.evil.seq = UINT64_MAX - 1;
	h.conn.rd.seq = UINT64_MAX - 1;
	hostile_seal(&h, app, sizeof(app));
	ck_assert_int_eq(hostile_open(&h, 0, &alert), TLS13_EV_DATA);
	ck_assert_uint_eq(h.conn.rd.seq, UINT64_MAX);
	hostile_seal(&h, app, sizeof(app));
	expect_error(&h, GNUTLS_A_UNEXPECTED_MESSAGE);
	/* our side: the last number is never used */
	h.conn.wr.seq = UINT64_MAX - 1;
	ck_assert_int_gt(tls13_seal(&h.conn.wr, 23, rec, 1), 0);
	errno = 0;
	ck_assert_int_eq(tls13_seal(&h.conn.wr, 23, rec, 1), -1);
	ck_assert_int_eq(errno, EOVERFLOW);
	/* and a KeyUpdate is due long before */
	h.conn.wr.seq = TLS13_WRITE_KEY_LIMIT;
	ck_assert(tls13_need_key_update(&h.conn));
	hostile_end(&h);
}
END_TEST

START_TEST(idle_direction_holds_no_handle)
{
	struct hostile h;
	uint8_t app[] = {'x', TLS13_CT_APPLICATION_DATA};
	uint8_t alert;

	hostile_init(&h);
	hostile_seal(&h, app, sizeof(app));
	ck_assert_int_eq(hostile_open(&h, 0, &alert), TLS13_EV_DATA);
	ck_assert_ptr_nonnull(h.conn.rd.hd);
	tls13_dir_idle(&h.conn.rd);
	ck_assert_ptr_null(h.conn.rd.hd);
	/* and it opens the next record after making a new one */
	hostile_seal(&h, app, sizeof(app));
	ck_assert_int_eq(hostile_open(&h, 0, &alert), TLS13_EV_DATA);
	/* unsupported suites and secret sizes are refused */
	ck_assert_int_eq(tls13_dir_init(&h.conn.wr, GNUTLS_CIPHER_AES_128_CBC,
					secret32, sizeof(secret32)),
			 EINVAL);
	ck_assert_int_eq(tls13_dir_init(&h.conn.wr, GNUTLS_CIPHER_AES_256_GCM,
					secret32, sizeof(secret32)),
			 EINVAL);
	hostile_end(&h);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tstream_tls_record13");
	TCase *t;
	int slow = getenv("TSGATE_VALGRIND") != NULL ? 10 : 1;

	certs = tt_certs_create(NULL);
	if (certs == NULL) {
		return 99;
	}
	t = tt_tcase(s, "differential", 30 * slow);
	tcase_add_loop_test(t, differential, 0, 3);
	t = tt_tcase(s, "hostile", 30 * slow);
	tcase_add_test(t, hostile_bad_tag);
	tcase_add_test(t, hostile_truncated_and_oversized);
	tcase_add_test(t, hostile_inner_plaintext);
	tcase_add_test(t, hostile_handshake_messages);
	tcase_add_test(t, hostile_key_update_flood);
	tcase_add_test(t, hostile_alerts);
	tcase_add_test(t, sequence_exhaustion);
	tcase_add_test(t, idle_direction_holds_no_handle);
	return tt_run_suite(s);
}
