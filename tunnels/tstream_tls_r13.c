/* SPDX-License-Identifier: MIT */
/*
 * tstream_tls — the hand-over of a server's TLS 1.3 records from GnuTLS to
 * our own record layer (tstream_tls_record13.c), and the record I/O the
 * stream's read, write and close steps (tstream_tls.c) use after it.
 *
 * Why: a GnuTLS session keeps ~10 KiB per connection with no call that
 * frees any of it; after the hand-over an idle connection keeps its
 * traffic secrets, keys, IVs and sequence numbers inside struct
 * tstream_tls, and an AEAD handle per direction only while the direction
 * moves data.
 *
 * The hand-over happens when the handshake succeeded, and only when
 * nothing of the connection is left inside GnuTLS: the pull callback
 * tracks where the records it gave GnuTLS end (GnuTLS asks for a header,
 * then the body, never more), so bytes the peer sent after its Finished
 * are still ours; no decrypted data is pending in GnuTLS; whatever GnuTLS
 * sent (tickets after the server's Finished included) is already in our
 * output buffer. The key and IV derived from the keylog hook's traffic
 * secrets must equal what gnutls_record_get_state() exports, and the
 * sequence numbers come from there; else the session stays on GnuTLS.
 */

#include <errno.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>

#include "tsgate_export.h"
#include "tsocket_internal.h"
#include "tstream_tls_private.h"

/* Open ahead while less than this much plaintext waits. */
#define R13_AHEAD_MAX (4 * TLS13_PLAIN_MAX)

struct tstream_tls_r13_secrets {
	uint8_t client[TLS13_SECRET_MAX];
	uint8_t server[TLS13_SECRET_MAX];
	unsigned client_len;
	unsigned server_len;
};

static int tstream_tls_r13_secrets_destructor(struct tstream_tls_r13_secrets *s)
{
	gnutls_memset(s, 0, sizeof(*s));
	return 0;
}

/* GnuTLS's keylog hook: keep the two application traffic secrets. */
static int tstream_tls_r13_keylog(gnutls_session_t session,
				  const char *label,
				  const gnutls_datum_t *secret)
{
	struct tstream_tls *tlss = gnutls_session_get_ptr(session);
	struct tstream_tls_r13_secrets *s = tlss->r13_secrets;

	if (s == NULL || secret->size > TLS13_SECRET_MAX) {
		return 0;
	}
	if (strcmp(label, "CLIENT_TRAFFIC_SECRET_0") == 0) {
		memcpy(s->client, secret->data, secret->size);
		s->client_len = secret->size;
	} else if (strcmp(label, "SERVER_TRAFFIC_SECRET_0") == 0) {
		memcpy(s->server, secret->data, secret->size);
		s->server_len = secret->size;
	}
	return 0;
}

void tstream_tls_r13_prepare(struct tstream_tls *tlss)
{
	tlss->r13_secrets = talloc_zero(tlss, struct tstream_tls_r13_secrets);
	if (tlss->r13_secrets == NULL) {
		return; /* this session stays on GnuTLS */
	}
	talloc_set_destructor(tlss->r13_secrets,
			      tstream_tls_r13_secrets_destructor);
	gnutls_session_set_keylog_function(tlss->session,
					   tstream_tls_r13_keylog);
}

void tstream_tls_r13_track(struct tstream_tls *tlss, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (tlss->trk_left > 0) {
			size_t k = n < tlss->trk_left ? n : tlss->trk_left;

			tlss->trk_left -= k;
			p += k;
			n -= k;
			continue;
		}
		tlss->trk_hdr[tlss->trk_have++] = *p++;
		n--;
		if (tlss->trk_have == TLS13_HEADER_SIZE) {
			tlss->trk_left =
			    ((size_t)tlss->trk_hdr[3] << 8) | tlss->trk_hdr[4];
			tlss->trk_have = 0;
		}
	}
}

/* One direction from its secret, checked against GnuTLS's state. */
static const char *tstream_tls_r13_dir(struct tstream_tls *tlss,
				       struct tls13_dir *d,
				       bool read,
				       gnutls_cipher_algorithm_t cipher,
				       const uint8_t *secret,
				       size_t secret_len)
{
	gnutls_datum_t mac;
	gnutls_datum_t iv;
	gnutls_datum_t key;
	uint8_t seq[8];
	unsigned i;

	if (tls13_dir_init(d, cipher, secret, secret_len) != 0) {
		return "cannot derive the traffic keys";
	}
	if (gnutls_record_get_state(tlss->session, read ? 1 : 0, &mac, &iv,
				    &key, seq) != 0) {
		return "gnutls_record_get_state failed";
	}
	if (key.size != d->key_len || memcmp(key.data, d->key, key.size) ||
	    iv.size != TLS13_IV_SIZE || memcmp(iv.data, d->iv, iv.size)) {
		return "the derived key or IV differs from GnuTLS's";
	}
	d->seq = 0;
	for (i = 0; i < 8; i++) {
		d->seq = (d->seq << 8) | seq[i];
	}
	return NULL;
}

/* A certificate of ours and its tls-server-end-point binding. */
struct tstream_tls_endpoint_cb {
	uint8_t *der;
	size_t der_len;
	uint8_t cb[64];
	uint8_t cb_len;
};

/*
 * tls-server-end-point depends only on our certificate: computed once
 * per certificate of the parameters, then copied.
 */
static void tstream_tls_r13_endpoint(struct tstream_tls *tlss)
{
	struct tstream_tls_params_internal *p = tlss->params->internal;
	const gnutls_datum_t *ours = gnutls_certificate_get_ours(tlss->session);
	struct tstream_tls_endpoint_cb *e = NULL;
	gnutls_datum_t cb = {NULL, 0};
	size_t i;

	if (ours == NULL) {
		return;
	}
	for (i = 0; i < p->num_endpoint_cbs; i++) {
		if (p->endpoint_cbs[i].der_len == ours->size &&
		    memcmp(p->endpoint_cbs[i].der, ours->data, ours->size) ==
			0) {
			e = &p->endpoint_cbs[i];
			break;
		}
	}
	if (e == NULL) {
		struct tstream_tls_endpoint_cb *n;

		if (gnutls_session_channel_binding(
			tlss->session, GNUTLS_CB_TLS_SERVER_END_POINT, &cb) !=
			0 ||
		    cb.size > sizeof(e->cb)) {
			gnutls_free(cb.data);
			return;
		}
		n = talloc_realloc(p, p->endpoint_cbs,
				   struct tstream_tls_endpoint_cb,
				   p->num_endpoint_cbs + 1);
		if (n == NULL) {
			gnutls_free(cb.data);
			return;
		}
		p->endpoint_cbs = n;
		e = &n[p->num_endpoint_cbs];
		e->der = talloc_memdup(n, ours->data, ours->size);
		if (e->der == NULL) {
			gnutls_free(cb.data);
			return;
		}
		e->der_len = ours->size;
		memcpy(e->cb, cb.data, cb.size);
		e->cb_len = (uint8_t)cb.size;
		p->num_endpoint_cbs++;
		gnutls_free(cb.data);
	}
	memcpy(tlss->cb_endpoint, e->cb, e->cb_len);
	tlss->cb_endpoint_len = e->cb_len;
}

static void tstream_tls_r13_channel_bindings(struct tstream_tls *tlss)
{
	gnutls_datum_t cb = {NULL, 0};

	if (gnutls_session_channel_binding(tlss->session,
					   GNUTLS_CB_TLS_EXPORTER, &cb) == 0 &&
	    cb.size <= sizeof(tlss->cb_exporter)) {
		memcpy(tlss->cb_exporter, cb.data, cb.size);
		tlss->cb_exporter_len = (uint8_t)cb.size;
	}
	gnutls_free(cb.data);
	tstream_tls_r13_endpoint(tlss);
}

/* Why this session cannot be handed over (NULL: it can); *quiet: an
 * expected case (TLS 1.2, another suite), not worth a log line. */
static const char *tstream_tls_r13_check(struct tstream_tls *tlss,
					 struct tstream_tls_r13_secrets *s,
					 bool *quiet)
{
	gnutls_cipher_algorithm_t cipher = gnutls_cipher_get(tlss->session);
	gnutls_mac_algorithm_t hash;
	const char *why;

	*quiet = true;
	if (gnutls_protocol_get_version(tlss->session) != GNUTLS_TLS1_3) {
		return "not TLS 1.3";
	}
	if (!tls13_suite_supported(cipher, &hash)) {
		return "not an AEAD suite of ours";
	}
	*quiet = false;
	if (s->client_len == 0 || s->server_len == 0) {
		return "the keylog hook gave no traffic secrets";
	}
	if (tlss->trk_have != 0 || tlss->trk_left != 0 ||
	    gnutls_record_check_pending(tlss->session) != 0 ||
	    tlss->ahead != NULL) {
		return "GnuTLS holds part of a record";
	}
	why = tstream_tls_r13_dir(tlss, &tlss->r13.rd, true, cipher, s->client,
				  s->client_len);
	if (why == NULL) {
		why = tstream_tls_r13_dir(tlss, &tlss->r13.wr, false, cipher,
					  s->server, s->server_len);
	}
	return why;
}

void tstream_tls_r13_take_over(struct tstream_tls *tlss)
{
	struct tstream_tls_params_internal *p = tlss->params->internal;
	struct tstream_tls_r13_secrets *s = tlss->r13_secrets;
	const char *why;
	bool quiet = true;

	if (s == NULL) {
		return;
	}
	why = tstream_tls_r13_check(tlss, s, &quiet);
	/* the hook stays: without r13_secrets it keeps nothing */
	tlss->r13_secrets = NULL;
	TALLOC_FREE(s);
	if (why != NULL) {
		tls13_dir_wipe(&tlss->r13.rd);
		tls13_dir_wipe(&tlss->r13.wr);
		/* the caller's log says it (tstream_tls_record_layer_refusal)
		 */
		tlss->r13_refused = quiet ? NULL : why;
		return;
	}
	tlss->r13.write_key_limit = p->key_update_records != 0
					? p->key_update_records
					: TLS13_WRITE_KEY_LIMIT;
	tstream_tls_r13_channel_bindings(tlss);
	gnutls_deinit(tlss->session);
	tlss->session = NULL;
	tlss->r13_on = true;
}

static uint64_t tstream_tls_r13_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Queue a fatal alert (best effort) and stop reading with EPROTO. */
static void tstream_tls_r13_fail(struct tstream_tls *tlss, uint8_t alert)
{
	if (!tlss->write_shut &&
	    tstream_tls_push_reserve(tlss, TLS13_OVERHEAD + 2)) {
		ssize_t n =
		    tls13_seal_alert(&tlss->r13.wr, 2, alert,
				     tlss->push.fill + tlss->push.fill_len);

		if (n > 0) {
			tlss->push.fill_len += (size_t)n;
		}
		tlss->write_shut = true; /* nothing may follow a fatal alert */
	}
	tlss->gnutls_error = GNUTLS_E_DECRYPTION_FAILED;
	TALLOC_FREE(tlss->alert_reason);
	tlss->alert_reason =
	    talloc_asprintf(tlss, "bad TLS record from peer (sent alert %s)",
			    gnutls_alert_get_name(alert));
	tlss->r13_stop = alert == GNUTLS_A_INTERNAL_ERROR ? ENOMEM : EPROTO;
}

static void tstream_tls_r13_peer_alert(struct tstream_tls *tlss, uint8_t alert)
{
	tlss->gnutls_error = GNUTLS_E_FATAL_ALERT_RECEIVED;
	TALLOC_FREE(tlss->alert_reason);
	tlss->alert_reason = talloc_asprintf(tlss, "peer sent fatal alert: %s",
					     gnutls_alert_get_name(alert));
	tlss->r13_stop =
	    tstream_tls_alert_is_about_cert(alert) ? EACCES : EPROTO;
}

/* The peer asked for our KeyUpdate: it goes before our next record. */
static void tstream_tls_r13_answer_key_update(struct tstream_tls *tlss)
{
	ssize_t n;

	if (tlss->write_shut) {
		tlss->r13.send_key_update = false;
		return;
	}
	if (!tstream_tls_push_reserve(tlss, TLS13_OVERHEAD + 5)) {
		return;
	}
	n = tls13_seal_key_update(&tlss->r13, false,
				  tlss->push.fill + tlss->push.fill_len);
	if (n < 0) {
		tstream_tls_set_error(tlss, errno);
		return;
	}
	tlss->push.fill_len += (size_t)n;
}

/* Keep opened content after the content before it (one buffer). */
static void tstream_tls_r13_keep(struct tstream_tls *tlss,
				 uint8_t *data,
				 size_t len)
{
	size_t at = (size_t)(data - tlss->pull.data);

	if (tlss->r13_dec_ofs == tlss->r13_dec_end) {
		tlss->r13_dec_ofs = at;
		tlss->r13_dec_end = at + len;
		return;
	}
	memmove(tlss->pull.data + tlss->r13_dec_end, data, len);
	tlss->r13_dec_end += len;
}

bool tstream_tls_r13_fill(struct tstream_tls *tlss)
{
	bool progress = false;

	while (tlss->error == 0 && tlss->r13_stop == 0 && !tlss->read_eof &&
	       tlss->r13_dec_end - tlss->r13_dec_ofs < R13_AHEAD_MAX) {
		uint8_t *rec = tlss->pull.data + tlss->pull.ofs;
		size_t have = tlss->pull.len - tlss->pull.ofs;
		uint8_t *data = NULL;
		size_t len = 0;
		size_t need = 0;
		uint8_t alert = 0;
		enum tls13_event ev;
		int ret;

		ret = tls13_record_complete(rec, have, &need, &alert);
		if (ret == 0) {
			break;
		}
		progress = true;
		if (ret < 0) {
			tstream_tls_r13_fail(tlss, alert);
			break;
		}
		ev = tls13_open(&tlss->r13, rec, need, tstream_tls_r13_now_ms(),
				&data, &len, &alert);
		tlss->pull.ofs += need;
		switch (ev) {
		case TLS13_EV_DATA:
			tstream_tls_r13_keep(tlss, data, len);
			break;
		case TLS13_EV_KEY_UPDATE:
			if (tlss->r13.send_key_update) {
				tstream_tls_r13_answer_key_update(tlss);
			}
			break;
		case TLS13_EV_IGNORE:
			break;
		case TLS13_EV_CLOSE:
			tlss->read_eof = true;
			tlss->truncated = false;
			break;
		case TLS13_EV_PEER_ALERT:
			tstream_tls_r13_peer_alert(tlss, alert);
			break;
		case TLS13_EV_ERROR:
			tstream_tls_r13_fail(tlss, alert);
			break;
		}
	}
	return progress;
}

void tstream_tls_r13_pull(struct tstream_tls *tlss)
{
	size_t have = tlss->pull.len - tlss->pull.ofs;
	size_t need = 0;
	uint8_t alert = 0;

	if (tls13_record_complete(tlss->pull.data + tlss->pull.ofs, have, &need,
				  &alert) != 0 ||
	    tlss->r13_dec_ofs != tlss->r13_dec_end) {
		return; /* tstream_tls_r13_fill has work to do first */
	}
	tstream_tls_pull_start_at(tlss, have, need - have);
}

int tstream_tls_r13_seal(struct tstream_tls *tlss,
			 const struct iovec *vec,
			 size_t count,
			 size_t *taken)
{
	size_t len = 0;
	size_t room;
	uint8_t *out;
	ssize_t n;
	size_t i;

	*taken = 0;
	for (i = 0; i < count && len < TLS13_PLAIN_MAX; i++) {
		size_t k = vec[i].iov_len;

		len += k < TLS13_PLAIN_MAX - len ? k : TLS13_PLAIN_MAX - len;
	}
	room = len + TLS13_OVERHEAD;
	if (tls13_need_key_update(&tlss->r13)) {
		room += TLS13_OVERHEAD + 5;
	}
	if (!tstream_tls_push_reserve(tlss, room)) {
		return ENOMEM;
	}
	if (tls13_need_key_update(&tlss->r13)) {
		n = tls13_seal_key_update(
		    &tlss->r13, false, tlss->push.fill + tlss->push.fill_len);
		if (n < 0) {
			return errno;
		}
		tlss->push.fill_len += (size_t)n;
	}
	/* the content goes straight where it is sealed */
	out = tlss->push.fill + tlss->push.fill_len;
	for (i = 0, n = 0; i < count && (size_t)n < len; i++) {
		size_t k = vec[i].iov_len;

		if (k > len - (size_t)n) {
			k = len - (size_t)n;
		}
		memcpy(out + TLS13_HEADER_SIZE + n, vec[i].iov_base, k);
		n += (ssize_t)k;
	}
	n = tls13_seal(&tlss->r13.wr, TLS13_CT_APPLICATION_DATA, out, len);
	if (n < 0) {
		return errno;
	}
	tlss->push.fill_len += (size_t)n;
	*taken = len;
	return 0;
}

int tstream_tls_r13_close_notify(struct tstream_tls *tlss)
{
	ssize_t n;

	if (!tstream_tls_push_reserve(tlss, TLS13_OVERHEAD + 2)) {
		return ENOMEM;
	}
	n = tls13_seal_alert(&tlss->r13.wr, 1, GNUTLS_A_CLOSE_NOTIFY,
			     tlss->push.fill + tlss->push.fill_len);
	if (n < 0) {
		return errno;
	}
	tlss->push.fill_len += (size_t)n;
	return 0;
}

void tstream_tls_r13_idle(struct tstream_tls *tlss)
{
	if (tlss->pull.subreq == NULL && tlss->pull.len == tlss->pull.ofs &&
	    tlss->r13_dec_ofs == tlss->r13_dec_end) {
		tls13_dir_idle(&tlss->r13.rd);
	}
	if (tlss->write_req == NULL && tlss->push.fill_len == 0) {
		tls13_dir_idle(&tlss->r13.wr);
	}
}

void tstream_tls_r13_free(struct tstream_tls *tlss)
{
	TALLOC_FREE(tlss->r13_secrets);
	tls13_dir_wipe(&tlss->r13.rd);
	tls13_dir_wipe(&tlss->r13.wr);
}

int tstream_tls_r13_channel_binding(struct tstream_tls *tlss,
				    bool exporter,
				    TALLOC_CTX *mem_ctx,
				    uint8_t **data,
				    size_t *len)
{
	const uint8_t *cb = exporter ? tlss->cb_exporter : tlss->cb_endpoint;
	size_t size = exporter ? tlss->cb_exporter_len : tlss->cb_endpoint_len;

	if (size == 0) {
		return ENOTSUP;
	}
	*data = talloc_memdup(mem_ctx, cb, size);
	if (*data == NULL) {
		return ENOMEM;
	}
	*len = size;
	return 0;
}

_PUBLIC_ enum tstream_tls_record_layer tstream_tls_record_layer_of(
    struct tstream_context *stream)
{
	struct tstream_tls *tlss = NULL;

	if (stream != NULL) {
		tlss = talloc_get_type(_tstream_context_data(stream),
				       struct tstream_tls);
	}
	if (tlss == NULL || !tlss->established) {
		errno = EINVAL;
		return TSTREAM_TLS_RECORD_DEFAULT;
	}
	return tlss->r13_on ? TSTREAM_TLS_RECORD_TSGATE
			    : TSTREAM_TLS_RECORD_GNUTLS;
}

_PUBLIC_ const char *tstream_tls_record_layer_refusal(
    struct tstream_context *stream)
{
	struct tstream_tls *tlss = NULL;

	if (stream != NULL) {
		tlss = talloc_get_type(_tstream_context_data(stream),
				       struct tstream_tls);
	}
	return tlss != NULL ? tlss->r13_refused : NULL;
}
