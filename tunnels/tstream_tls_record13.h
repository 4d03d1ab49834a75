/* SPDX-License-Identifier: MIT */
/*
 * tstream_tls_record13 — the TLS 1.3 record layer (RFC 8446 §5) that a
 * TLS stream runs itself once GnuTLS finished the handshake, so an idle
 * connection keeps a few hundred bytes of keys instead of a GnuTLS
 * session (docs/hardening.md, "Our own TLS 1.3 record layer").
 *
 * Pure functions over a struct of keys: no I/O, no event loop, no
 * allocation of ours. The crypto is GnuTLS's (gnutls_hkdf_expand,
 * gnutls_aead_cipher_*): nothing here computes a cipher or a MAC.
 * Not installed, not exported.
 */

#ifndef TSTREAM_TLS_RECORD13_H
#define TSTREAM_TLS_RECORD13_H

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLS13_HEADER_SIZE 5
#define TLS13_TAG_SIZE    16
#define TLS13_IV_SIZE     12
#define TLS13_KEY_MAX     32
#define TLS13_SECRET_MAX  48
/* plaintext of one record; ciphertext (encrypted_record) at most */
#define TLS13_PLAIN_MAX  16384
#define TLS13_CIPHER_MAX (TLS13_PLAIN_MAX + 256)
/* a sealed record: header, content, inner type, tag */
#define TLS13_RECORD_MAX \
	(TLS13_HEADER_SIZE + TLS13_PLAIN_MAX + 1 + TLS13_TAG_SIZE)
/* what a record adds to its content */
#define TLS13_OVERHEAD (TLS13_HEADER_SIZE + 1 + TLS13_TAG_SIZE)

/* content types */
#define TLS13_CT_CHANGE_CIPHER_SPEC 20
#define TLS13_CT_ALERT              21
#define TLS13_CT_HANDSHAKE          22
#define TLS13_CT_APPLICATION_DATA   23

/* handshake message types we look at after the handshake */
#define TLS13_HS_NEW_SESSION_TICKET 4
#define TLS13_HS_KEY_UPDATE         24

/*
 * Records sealed under one key before we send a KeyUpdate of our own:
 * RFC 8446 §5.5 allows AES-GCM 2^24.5 full-size records per key; this is
 * below it, and used for every suite (ChaCha20-Poly1305 has no such
 * limit, a KeyUpdate every 16 million records costs nothing).
 */
#define TLS13_WRITE_KEY_LIMIT (UINT64_C(1) << 24)
/* KeyUpdates of the peer allowed per window (a peer that sends one per
 * record makes us run HKDF per record) */
#define TLS13_PEER_KU_MAX       8
#define TLS13_PEER_KU_WINDOW_MS 1000

/*
 * One direction: the traffic secret (for KeyUpdate), the key and static
 * IV derived from it, the sequence number. The AEAD handle exists only
 * while the direction moves data (tls13_dir_activate / _idle).
 */
struct tls13_dir {
	gnutls_cipher_algorithm_t cipher;
	gnutls_mac_algorithm_t hash;
	uint8_t secret_len;
	uint8_t key_len;
	uint8_t secret[TLS13_SECRET_MAX];
	uint8_t key[TLS13_KEY_MAX];
	uint8_t iv[TLS13_IV_SIZE];
	uint64_t seq;
	gnutls_aead_cipher_hd_t hd;
};

/* Both directions and what the post-handshake messages left to do. */
struct tls13_conn {
	struct tls13_dir rd;
	struct tls13_dir wr;
	/* seal a KeyUpdate of ours when wr.seq reaches this (tests lower it) */
	uint64_t write_key_limit;
	/* the peer asked for our KeyUpdate (update_requested) */
	bool send_key_update;
	/* the peer's KeyUpdates in the current window */
	uint64_t ku_window_start_ms;
	unsigned ku_in_window;
};

/* What tls13_open found in a record. */
enum tls13_event {
	TLS13_EV_DATA,       /* application data (may be empty) */
	TLS13_EV_KEY_UPDATE, /* handled: rd has the next key */
	TLS13_EV_CLOSE,      /* close_notify */
	TLS13_EV_IGNORE,     /* user_canceled: a close_notify follows */
	TLS13_EV_PEER_ALERT, /* a fatal alert of the peer: *alert says it */
	TLS13_EV_ERROR,      /* broken record: send fatal *alert, stop */
};

/*
 * The AEAD of a TLS 1.3 suite and the hash of its key schedule; false for
 * anything this record layer does not run (CCM, TLS 1.2 suites ...).
 */
bool tls13_suite_supported(gnutls_cipher_algorithm_t cipher,
			   gnutls_mac_algorithm_t *hash);

/*
 * HKDF-Expand-Label(secret, label, "", out_len) of RFC 8446 §7.1; 0 or a
 * GnuTLS error code.
 */
int tls13_hkdf_expand_label(gnutls_mac_algorithm_t hash,
			    const uint8_t *secret,
			    size_t secret_len,
			    const char *label,
			    uint8_t *out,
			    size_t out_len);

/*
 * Set a direction up from a traffic secret (sequence 0); 0 or EINVAL
 * (suite, secret size) / EIO (GnuTLS failed).
 */
int tls13_dir_init(struct tls13_dir *d,
		   gnutls_cipher_algorithm_t cipher,
		   const uint8_t *secret,
		   size_t secret_len);

/* The next traffic secret ("traffic upd"), its key and IV, sequence 0. */
int tls13_dir_update(struct tls13_dir *d);

/* Make the AEAD handle (no-op if it exists); 0, ENOMEM or EIO. */
int tls13_dir_activate(struct tls13_dir *d);
/* Free the AEAD handle: an idle direction holds none. */
void tls13_dir_idle(struct tls13_dir *d);
/* Free the handle and wipe the keys. */
void tls13_dir_wipe(struct tls13_dir *d);

/*
 * Seal one record in place. rec holds TLS13_HEADER_SIZE bytes of room,
 * then len bytes of content, then room for TLS13_OVERHEAD - header more;
 * the header, inner type and tag are written around the content and the
 * content encrypted. len <= TLS13_PLAIN_MAX. Returns the record's length
 * (len + TLS13_OVERHEAD) or -1 with errno (EMSGSIZE, EOVERFLOW when the
 * sequence numbers ran out, EIO).
 */
ssize_t tls13_seal(struct tls13_dir *d, uint8_t type, uint8_t *rec, size_t len);

/*
 * Is a whole record at buf? 0: not yet (*need says how many bytes the
 * record needs in all, once the header is in); 1: *need bytes are one
 * record; -1: the header is bad (*alert).
 */
int tls13_record_complete(const uint8_t *buf,
			  size_t len,
			  size_t *need,
			  uint8_t *alert);

/*
 * Open one whole record (len bytes as tls13_record_complete found them)
 * in place and act on what it holds: KeyUpdate (the read key moves on,
 * conn->send_key_update when the peer asked for ours), alerts. now_ms is
 * a monotonic clock for the KeyUpdate rate limit. On TLS13_EV_DATA the
 * content is at *data, *data_len bytes, inside rec. On TLS13_EV_ERROR
 * and TLS13_EV_PEER_ALERT *alert is the alert description.
 */
enum tls13_event tls13_open(struct tls13_conn *conn,
			    uint8_t *rec,
			    size_t len,
			    uint64_t now_ms,
			    uint8_t **data,
			    size_t *data_len,
			    uint8_t *alert);

/*
 * Seal our KeyUpdate (update_requested or not) into out (room for
 * TLS13_OVERHEAD + 5 bytes) under the current write key, then move the
 * write key on. Returns the record's length or -1 with errno.
 */
ssize_t tls13_seal_key_update(struct tls13_conn *conn,
			      bool request,
			      uint8_t *out);

/* Seal an alert (fatal or close_notify) into out (TLS13_OVERHEAD + 2). */
ssize_t tls13_seal_alert(struct tls13_dir *d,
			 uint8_t level,
			 uint8_t desc,
			 uint8_t *out);

/* Does the write side need a KeyUpdate before its next record? */
bool tls13_need_key_update(const struct tls13_conn *conn);

#endif
