/* SPDX-License-Identifier: MIT */
/*
 * tstream_tls_record13 — the TLS 1.3 record layer after the handshake
 * (RFC 8446 §5, §4.6.3, §6), see tstream_tls_record13.h.
 *
 * Every check a peer's record must pass is here, in the order of §5.2:
 * the outer header (only application_data may come now; a record longer
 * than 2^14 + 256 is record_overflow), the tag (bad_record_mac), the
 * inner plaintext (zero padding stripped; nothing left is
 * unexpected_message; more than 2^14 bytes of content is record_overflow,
 * as OpenSSL checks it: GnuTLS pads a full record beyond the 2^14 + 1 of
 * §5.4, and the ciphertext limit already bounds the padding), then the
 * inner content type. Records are opened and sealed in place: the
 * caller's buffer is the only copy.
 */

#include <errno.h>
#include <string.h>

#include "tstream_tls_record13.h"

bool tls13_suite_supported(gnutls_cipher_algorithm_t cipher,
			   gnutls_mac_algorithm_t *hash)
{
	switch (cipher) {
	case GNUTLS_CIPHER_AES_128_GCM:
	case GNUTLS_CIPHER_CHACHA20_POLY1305:
		*hash = GNUTLS_MAC_SHA256;
		return true;
	case GNUTLS_CIPHER_AES_256_GCM:
		*hash = GNUTLS_MAC_SHA384;
		return true;
	default:
		return false;
	}
}

int tls13_hkdf_expand_label(gnutls_mac_algorithm_t hash,
			    const uint8_t *secret,
			    size_t secret_len,
			    const char *label,
			    uint8_t *out,
			    size_t out_len)
{
	/* struct HkdfLabel: length, "tls13 " label, empty context */
	uint8_t info[2 + 1 + 255 + 1];
	size_t label_len = strlen(label);
	size_t n = 0;
	gnutls_datum_t key = {(unsigned char *)secret, (unsigned)secret_len};
	gnutls_datum_t inf;

	if (label_len + 6 > 255 || out_len > 0xffff) {
		return GNUTLS_E_INVALID_REQUEST;
	}
	info[n++] = (uint8_t)(out_len >> 8);
	info[n++] = (uint8_t)out_len;
	info[n++] = (uint8_t)(label_len + 6);
	memcpy(info + n, "tls13 ", 6);
	n += 6;
	memcpy(info + n, label, label_len);
	n += label_len;
	info[n++] = 0;
	inf.data = info;
	inf.size = (unsigned)n;
	return gnutls_hkdf_expand(hash, &key, &inf, out, out_len);
}

/* key and IV of the direction's current secret */
static int tls13_dir_derive(struct tls13_dir *d)
{
	int ret;

	ret = tls13_hkdf_expand_label(d->hash, d->secret, d->secret_len, "key",
				      d->key, d->key_len);
	if (ret == 0) {
		ret = tls13_hkdf_expand_label(d->hash, d->secret, d->secret_len,
					      "iv", d->iv, sizeof(d->iv));
	}
	return ret == 0 ? 0 : EIO;
}

int tls13_dir_init(struct tls13_dir *d,
		   gnutls_cipher_algorithm_t cipher,
		   const uint8_t *secret,
		   size_t secret_len)
{
	gnutls_mac_algorithm_t hash;

	memset(d, 0, sizeof(*d));
	if (!tls13_suite_supported(cipher, &hash) ||
	    secret_len !=
		gnutls_hash_get_len((gnutls_digest_algorithm_t)hash) ||
	    secret_len > sizeof(d->secret)) {
		return EINVAL;
	}
	d->cipher = cipher;
	d->hash = hash;
	d->key_len = (uint8_t)gnutls_cipher_get_key_size(cipher);
	d->secret_len = (uint8_t)secret_len;
	memcpy(d->secret, secret, secret_len);
	return tls13_dir_derive(d);
}

int tls13_dir_update(struct tls13_dir *d)
{
	uint8_t next[TLS13_SECRET_MAX];
	int ret;

	ret = tls13_hkdf_expand_label(d->hash, d->secret, d->secret_len,
				      "traffic upd", next, d->secret_len);
	if (ret != 0) {
		return EIO;
	}
	memcpy(d->secret, next, d->secret_len);
	gnutls_memset(next, 0, sizeof(next));
	tls13_dir_idle(d);
	d->seq = 0;
	return tls13_dir_derive(d);
}

int tls13_dir_activate(struct tls13_dir *d)
{
	gnutls_datum_t key = {d->key, d->key_len};
	int ret;

	if (d->hd != NULL) {
		return 0;
	}
	ret = gnutls_aead_cipher_init(&d->hd, d->cipher, &key);
	if (ret != 0) {
		d->hd = NULL;
		return ret == GNUTLS_E_MEMORY_ERROR ? ENOMEM : EIO;
	}
	return 0;
}

void tls13_dir_idle(struct tls13_dir *d)
{
	if (d->hd != NULL) {
		gnutls_aead_cipher_deinit(d->hd);
		d->hd = NULL;
	}
}

void tls13_dir_wipe(struct tls13_dir *d)
{
	tls13_dir_idle(d);
	gnutls_memset(d, 0, sizeof(*d));
}

/* nonce = IV XOR the 64-bit sequence number, left-padded (§5.3) */
static void tls13_nonce(const struct tls13_dir *d, uint8_t nonce[12])
{
	unsigned i;

	memcpy(nonce, d->iv, TLS13_IV_SIZE);
	for (i = 0; i < 8; i++) {
		nonce[TLS13_IV_SIZE - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
	}
}

static void tls13_header(uint8_t *h, size_t enc_len)
{
	h[0] = TLS13_CT_APPLICATION_DATA;
	h[1] = 3;
	h[2] = 3;
	h[3] = (uint8_t)(enc_len >> 8);
	h[4] = (uint8_t)enc_len;
}

ssize_t tls13_seal(struct tls13_dir *d, uint8_t type, uint8_t *rec, size_t len)
{
	uint8_t nonce[TLS13_IV_SIZE];
	size_t enc_len = len + 1 + TLS13_TAG_SIZE;
	size_t tag_size = TLS13_TAG_SIZE;
	giovec_t aad;
	giovec_t body;
	int ret;

	if (len > TLS13_PLAIN_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	/* the last number may not be used: nothing could follow it */
	if (d->seq == UINT64_MAX) {
		errno = EOVERFLOW;
		return -1;
	}
	ret = tls13_dir_activate(d);
	if (ret != 0) {
		errno = ret;
		return -1;
	}
	tls13_header(rec, enc_len);
	rec[TLS13_HEADER_SIZE + len] = type;
	tls13_nonce(d, nonce);
	aad.iov_base = rec;
	aad.iov_len = TLS13_HEADER_SIZE;
	body.iov_base = rec + TLS13_HEADER_SIZE;
	body.iov_len = len + 1;
	ret = gnutls_aead_cipher_encryptv2(
	    d->hd, nonce, sizeof(nonce), &aad, 1, &body, 1,
	    rec + TLS13_HEADER_SIZE + len + 1, &tag_size);
	if (ret != 0 || tag_size != TLS13_TAG_SIZE) {
		errno = EIO;
		return -1;
	}
	d->seq++;
	return (ssize_t)(TLS13_HEADER_SIZE + enc_len);
}

int tls13_record_complete(const uint8_t *buf,
			  size_t len,
			  size_t *need,
			  uint8_t *alert)
{
	size_t enc_len;

	*need = TLS13_HEADER_SIZE;
	if (len < TLS13_HEADER_SIZE) {
		return 0;
	}
	/*
	 * After the handshake every record is protected: a change_cipher_spec
	 * (only allowed before the peer's Finished), a plaintext alert or
	 * handshake, or an unknown type is unexpected_message (§5). The
	 * legacy version is ignored, as §5.1 says.
	 */
	if (buf[0] != TLS13_CT_APPLICATION_DATA) {
		*alert = GNUTLS_A_UNEXPECTED_MESSAGE;
		return -1;
	}
	enc_len = ((size_t)buf[3] << 8) | buf[4];
	if (enc_len > TLS13_CIPHER_MAX) {
		*alert = GNUTLS_A_RECORD_OVERFLOW;
		return -1;
	}
	*need = TLS13_HEADER_SIZE + enc_len;
	return len >= *need ? 1 : 0;
}

/* Decrypt in place; the inner plaintext's length, or -1 (*alert). */
static ssize_t tls13_decrypt(struct tls13_dir *d,
			     uint8_t *rec,
			     size_t len,
			     uint8_t *alert)
{
	uint8_t nonce[TLS13_IV_SIZE];
	size_t enc_len = len - TLS13_HEADER_SIZE;
	giovec_t aad;
	giovec_t body;
	int ret;

	if (enc_len < TLS13_TAG_SIZE) {
		/* no room for a tag: it cannot authenticate */
		*alert = GNUTLS_A_BAD_RECORD_MAC;
		return -1;
	}
	if (d->seq == UINT64_MAX) {
		/* the peer should have updated its key long ago */
		*alert = GNUTLS_A_UNEXPECTED_MESSAGE;
		return -1;
	}
	if (tls13_dir_activate(d) != 0) {
		*alert = GNUTLS_A_INTERNAL_ERROR;
		return -1;
	}
	tls13_nonce(d, nonce);
	aad.iov_base = rec;
	aad.iov_len = TLS13_HEADER_SIZE;
	body.iov_base = rec + TLS13_HEADER_SIZE;
	body.iov_len = enc_len - TLS13_TAG_SIZE;
	ret = gnutls_aead_cipher_decryptv2(d->hd, nonce, sizeof(nonce), &aad, 1,
					   &body, 1, rec + len - TLS13_TAG_SIZE,
					   TLS13_TAG_SIZE);
	if (ret != 0) {
		*alert = GNUTLS_A_BAD_RECORD_MAC;
		return -1;
	}
	d->seq++;
	return (ssize_t)(enc_len - TLS13_TAG_SIZE);
}

/* The peer's KeyUpdate: a whole message ending the record (§4.6.3, §5.1). */
static enum tls13_event tls13_key_update(struct tls13_conn *conn,
					 const uint8_t *msg,
					 size_t len,
					 uint64_t now_ms,
					 uint8_t *alert)
{
	if (len != 5 || msg[1] != 0 || msg[2] != 0 || msg[3] != 1) {
		/* wrong length, or another message after it in the record */
		*alert = len < 5 ? GNUTLS_A_DECODE_ERROR
				 : GNUTLS_A_UNEXPECTED_MESSAGE;
		return TLS13_EV_ERROR;
	}
	if (msg[4] > 1) {
		*alert = GNUTLS_A_ILLEGAL_PARAMETER;
		return TLS13_EV_ERROR;
	}
	if (now_ms - conn->ku_window_start_ms >= TLS13_PEER_KU_WINDOW_MS ||
	    now_ms < conn->ku_window_start_ms) {
		conn->ku_window_start_ms = now_ms;
		conn->ku_in_window = 0;
	}
	if (++conn->ku_in_window > TLS13_PEER_KU_MAX) {
		*alert = GNUTLS_A_UNEXPECTED_MESSAGE;
		return TLS13_EV_ERROR;
	}
	if (tls13_dir_update(&conn->rd) != 0) {
		*alert = GNUTLS_A_INTERNAL_ERROR;
		return TLS13_EV_ERROR;
	}
	if (msg[4] == 1) {
		conn->send_key_update = true;
	}
	return TLS13_EV_KEY_UPDATE;
}

/*
 * A handshake record after the handshake. Only KeyUpdate is accepted: we
 * never ask for post-handshake authentication, a server is never sent a
 * NewSessionTicket (client streams keep GnuTLS), and a KeyUpdate split
 * over records, or anything else, is unexpected_message.
 */
static enum tls13_event tls13_handshake_msg(struct tls13_conn *conn,
					    const uint8_t *msg,
					    size_t len,
					    uint64_t now_ms,
					    uint8_t *alert)
{
	if (len < 4 || msg[0] != TLS13_HS_KEY_UPDATE) {
		*alert = GNUTLS_A_UNEXPECTED_MESSAGE;
		return TLS13_EV_ERROR;
	}
	return tls13_key_update(conn, msg, len, now_ms, alert);
}

static enum tls13_event tls13_alert_msg(const uint8_t *msg,
					size_t len,
					uint8_t *alert)
{
	if (len != 2) {
		/* exactly one alert per record (§5.1) */
		*alert = GNUTLS_A_DECODE_ERROR;
		return TLS13_EV_ERROR;
	}
	if (msg[1] == GNUTLS_A_CLOSE_NOTIFY) {
		return TLS13_EV_CLOSE;
	}
	if (msg[1] == GNUTLS_A_USER_CANCELED) {
		return TLS13_EV_IGNORE;
	}
	/* §6: every other alert is an error whatever its level says */
	*alert = msg[1];
	return TLS13_EV_PEER_ALERT;
}

enum tls13_event tls13_open(struct tls13_conn *conn,
			    uint8_t *rec,
			    size_t len,
			    uint64_t now_ms,
			    uint8_t **data,
			    size_t *data_len,
			    uint8_t *alert)
{
	uint8_t *inner = rec + TLS13_HEADER_SIZE;
	size_t need;
	ssize_t n;
	uint8_t type;
	int ret;

	*data = NULL;
	*data_len = 0;
	ret = tls13_record_complete(rec, len, &need, alert);
	if (ret == -1) {
		return TLS13_EV_ERROR;
	}
	if (ret == 0 || need != len) {
		/* not exactly one record: the caller cut it wrongly */
		*alert = GNUTLS_A_DECODE_ERROR;
		return TLS13_EV_ERROR;
	}
	n = tls13_decrypt(&conn->rd, rec, len, alert);
	if (n < 0) {
		return TLS13_EV_ERROR;
	}
	/* the content type is the last non-zero byte (§5.4) */
	while (n > 0 && inner[n - 1] == 0) {
		n--;
	}
	if (n == 0) {
		*alert = GNUTLS_A_UNEXPECTED_MESSAGE;
		return TLS13_EV_ERROR;
	}
	type = inner[--n];
	if (n > TLS13_PLAIN_MAX) {
		*alert = GNUTLS_A_RECORD_OVERFLOW;
		return TLS13_EV_ERROR;
	}
	switch (type) {
	case TLS13_CT_APPLICATION_DATA:
		*data = inner;
		*data_len = (size_t)n;
		return TLS13_EV_DATA;
	case TLS13_CT_ALERT:
		return tls13_alert_msg(inner, (size_t)n, alert);
	case TLS13_CT_HANDSHAKE:
		return tls13_handshake_msg(conn, inner, (size_t)n, now_ms,
					   alert);
	default:
		/* change_cipher_spec inside a record, unknown types */
		*alert = GNUTLS_A_UNEXPECTED_MESSAGE;
		return TLS13_EV_ERROR;
	}
}

ssize_t tls13_seal_key_update(struct tls13_conn *conn,
			      bool request,
			      uint8_t *out)
{
	uint8_t *msg = out + TLS13_HEADER_SIZE;
	ssize_t n;
	int ret;

	msg[0] = TLS13_HS_KEY_UPDATE;
	msg[1] = 0;
	msg[2] = 0;
	msg[3] = 1;
	msg[4] = request ? 1 : 0;
	n = tls13_seal(&conn->wr, TLS13_CT_HANDSHAKE, out, 5);
	if (n < 0) {
		return -1;
	}
	ret = tls13_dir_update(&conn->wr);
	if (ret != 0) {
		errno = ret;
		return -1;
	}
	conn->send_key_update = false;
	return n;
}

ssize_t tls13_seal_alert(struct tls13_dir *d,
			 uint8_t level,
			 uint8_t desc,
			 uint8_t *out)
{
	out[TLS13_HEADER_SIZE] = level;
	out[TLS13_HEADER_SIZE + 1] = desc;
	return tls13_seal(d, TLS13_CT_ALERT, out, 2);
}

bool tls13_need_key_update(const struct tls13_conn *conn)
{
	return conn->send_key_update || conn->wr.seq >= conn->write_key_limit;
}
