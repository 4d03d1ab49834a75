/* SPDX-License-Identifier: MIT */
/*
 * fuzz-tls-record13: the TLS 1.3 record opener (tunnels/
 * tstream_tls_record13.c) with fixed keys.
 *
 * Byte 0 picks the suite (bits 0-1) and the mode (bit 7). Mode 0: the
 * rest is a stream of raw records, cut by tls13_record_complete() and
 * opened one after the other (headers, lengths and tags see hostile
 * bytes; almost none authenticate). Mode 1: the rest is a list of inner
 * plaintexts (2-byte length, then the bytes: content, type and padding
 * as the fuzzer wants), each sealed under the peer's key as it stands
 * (KeyUpdates the opener accepted move the sealer on too) and opened,
 * so the checks after the tag see hostile plaintext.
 *
 * Checked: the stream stops at the first error or alert and never opens
 * past it; data is at most 2^14 bytes and lies inside the record; an
 * error names an alert; opened data is exactly what was sealed before
 * its type and padding; the read sequence number counts accepted
 * records.
 */
#include <stdlib.h>
#include <string.h>

#include "tstream_tls_record13.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t secret[48] = {
    0x51, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3, 0xb4,
    0xc5, 0xd6, 0xe7, 0xf8, 0x09, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e, 0x6f, 0x70,
    0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8, 0x09, 0x1a, 0x2b, 0x3c,
    0x4d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8};

static const gnutls_cipher_algorithm_t ciphers[4] = {
    GNUTLS_CIPHER_AES_128_GCM, GNUTLS_CIPHER_AES_256_GCM,
    GNUTLS_CIPHER_CHACHA20_POLY1305, GNUTLS_CIPHER_AES_128_GCM};

static uint8_t rec[TLS13_HEADER_SIZE + TLS13_CIPHER_MAX + 64];

/* open one record; false when the stream ends here */
static bool open_one(struct tls13_conn *conn,
		     size_t len,
		     const uint8_t *sealed_inner,
		     size_t inner_len)
{
	uint64_t seq = conn->rd.seq;
	uint8_t *out = NULL;
	size_t out_len = 0;
	uint8_t alert = 0;
	enum tls13_event ev;

	ev = tls13_open(conn, rec, len, 0, &out, &out_len, &alert);
	switch (ev) {
	case TLS13_EV_DATA:
		if (out_len > TLS13_PLAIN_MAX ||
		    out < rec + TLS13_HEADER_SIZE ||
		    out + out_len > rec + len || conn->rd.seq != seq + 1) {
			abort();
		}
		if (sealed_inner != NULL &&
		    (out_len >= inner_len ||
		     memcmp(out, sealed_inner, out_len) != 0)) {
			abort();
		}
		return true;
	case TLS13_EV_KEY_UPDATE:
		if (conn->rd.seq != 0) {
			abort();
		}
		return true;
	case TLS13_EV_IGNORE:
		return true;
	case TLS13_EV_ERROR:
		if (alert == 0 && ev == TLS13_EV_ERROR) {
			abort(); /* close_notify is not an error's alert */
		}
		return false;
	case TLS13_EV_CLOSE:
	case TLS13_EV_PEER_ALERT:
		return false;
	}
	abort();
}

static void raw_records(struct tls13_conn *conn,
			const uint8_t *data,
			size_t size)
{
	while (size > 0) {
		size_t need = 0;
		uint8_t alert = 0;
		int ret = tls13_record_complete(data, size, &need, &alert);

		if (ret == -1 && alert == 0) {
			abort();
		}
		if (ret != 1) {
			return;
		}
		if (need > sizeof(rec) || need > size) {
			abort();
		}
		memcpy(rec, data, need);
		if (!open_one(conn, need, NULL, 0)) {
			return;
		}
		data += need;
		size -= need;
	}
}

static void sealed_records(struct tls13_conn *conn,
			   struct tls13_dir *evil,
			   const uint8_t *data,
			   size_t size)
{
	static uint8_t inner[TLS13_CIPHER_MAX];

	while (size >= 2) {
		size_t n = ((size_t)data[0] << 8 | data[1]) % sizeof(inner);
		size_t tag_size = TLS13_TAG_SIZE;
		uint8_t nonce[TLS13_IV_SIZE];
		giovec_t aad;
		giovec_t body;
		unsigned i;

		data += 2;
		size -= 2;
		if (n > size) {
			n = size;
		}
		if (n + TLS13_TAG_SIZE > TLS13_CIPHER_MAX) {
			n = TLS13_CIPHER_MAX - TLS13_TAG_SIZE;
		}
		memcpy(inner, data, n);
		data += n;
		size -= n;
		if (tls13_dir_activate(evil) != 0) {
			abort();
		}
		memcpy(nonce, evil->iv, sizeof(nonce));
		for (i = 0; i < 8; i++) {
			nonce[11 - i] ^= (uint8_t)(evil->seq >> (8 * i));
		}
		rec[0] = TLS13_CT_APPLICATION_DATA;
		rec[1] = 3;
		rec[2] = 3;
		rec[3] = (uint8_t)((n + TLS13_TAG_SIZE) >> 8);
		rec[4] = (uint8_t)(n + TLS13_TAG_SIZE);
		memcpy(rec + TLS13_HEADER_SIZE, inner, n);
		aad.iov_base = rec;
		aad.iov_len = TLS13_HEADER_SIZE;
		body.iov_base = rec + TLS13_HEADER_SIZE;
		body.iov_len = n;
		if (gnutls_aead_cipher_encryptv2(
			evil->hd, nonce, sizeof(nonce), &aad, 1, &body, 1,
			rec + TLS13_HEADER_SIZE + n, &tag_size) != 0) {
			abort();
		}
		evil->seq++;
		if (!open_one(conn, TLS13_HEADER_SIZE + n + TLS13_TAG_SIZE,
			      inner, n)) {
			return;
		}
		if (conn->rd.seq == 0 && tls13_dir_update(evil) != 0) {
			abort(); /* follow the KeyUpdate the opener took */
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gnutls_cipher_algorithm_t cipher;
	gnutls_mac_algorithm_t hash;
	struct tls13_conn conn;
	struct tls13_dir evil;
	size_t slen;

	if (size < 1) {
		return 0;
	}
	cipher = ciphers[data[0] & 3];
	if (!tls13_suite_supported(cipher, &hash)) {
		abort();
	}
	slen = hash == GNUTLS_MAC_SHA384 ? 48 : 32;
	memset(&conn, 0, sizeof(conn));
	conn.write_key_limit = TLS13_WRITE_KEY_LIMIT;
	if (tls13_dir_init(&conn.rd, cipher, secret, slen) != 0 ||
	    tls13_dir_init(&evil, cipher, secret, slen) != 0) {
		abort();
	}
	if (data[0] & 0x80) {
		sealed_records(&conn, &evil, data + 1, size - 1);
	} else {
		raw_records(&conn, data + 1, size - 1);
	}
	tls13_dir_wipe(&conn.rd);
	tls13_dir_wipe(&evil);
	return 0;
}
