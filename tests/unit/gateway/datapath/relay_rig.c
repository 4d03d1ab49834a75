/* SPDX-License-Identifier: MIT */
/*
 * The relay tests' rig (relay_rig.h).
 */
#include "relay_rig.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>

#include "tsocket.h"
#include "tt.h"

static void peer_write_done(struct tevent_req *req);
static void peer_shutdown_done(struct tevent_req *req);
static void peer_read_done(struct tevent_req *req);

void peer_start_write(struct peer *p,
		      const uint8_t *out,
		      size_t len,
		      bool shutdown_after)
{
	struct tevent_req *req;

	p->out = out;
	p->out_len = len;
	p->shutdown_after = shutdown_after;
	p->write_done = false;
	if (len == 0) {
		req = tstream_shutdown_send(p, tt_ev, p->s);
		ck_assert_ptr_nonnull(req);
		tevent_req_set_callback(req, peer_shutdown_done, p);
		return;
	}
	p->iov.iov_base = (void *)out;
	p->iov.iov_len = len;
	req = tstream_writev_send(p, tt_ev, p->s, &p->iov, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, peer_write_done, p);
}

static void peer_write_done(struct tevent_req *req)
{
	struct peer *p = tevent_req_callback_data_void(req);
	int ret;

	ret = tstream_writev_recv(req, &p->write_err);
	TALLOC_FREE(req);
	if (ret == -1 || !p->shutdown_after) {
		p->write_done = true;
		return;
	}
	req = tstream_shutdown_send(p, tt_ev, p->s);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, peer_shutdown_done, p);
}

static void peer_shutdown_done(struct tevent_req *req)
{
	struct peer *p = tevent_req_callback_data_void(req);

	(void)tstream_shutdown_recv(req, &p->write_err);
	TALLOC_FREE(req);
	p->write_done = true;
}

void peer_read_next(struct peer *p)
{
	struct tevent_req *req;

	req =
	    tsgate_pdu_read_send(p, tt_ev, p->s, TSGATE_CONFIG_FRAMING_RAW, 0);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, peer_read_done, p);
}

static void peer_read_done(struct tevent_req *req)
{
	struct peer *p = tevent_req_callback_data_void(req);
	uint8_t *buf = NULL;
	size_t len = 0;
	int ret, err = 0;

	ret = tsgate_pdu_read_recv(req, &err, NULL, p, &buf, &len);
	TALLOC_FREE(req);
	if (ret == -1) {
		p->read_eof = err == EPIPE;
		p->read_err = err;
		p->read_done = true;
		return;
	}
	p->in = talloc_realloc(p, p->in, uint8_t, p->in_len + len);
	ck_assert_ptr_nonnull(p->in);
	memcpy(p->in + p->in_len, buf, len);
	p->in_len += len;
	talloc_free(buf);
	peer_read_next(p);
}

static void echo_read_done(struct tevent_req *req);
static void echo_write_done(struct tevent_req *req);
static void echo_shutdown_done(struct tevent_req *req);

void echo_next(struct echo_peer *e)
{
	struct tevent_req *req;

	req =
	    tsgate_pdu_read_send(e, tt_ev, e->s, TSGATE_CONFIG_FRAMING_RAW, 0);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, echo_read_done, e);
}

static void echo_read_done(struct tevent_req *req)
{
	struct echo_peer *e = tevent_req_callback_data_void(req);
	int ret, err = 0;

	TALLOC_FREE(e->buf);
	ret = tsgate_pdu_read_recv(req, &err, NULL, e, &e->buf, &e->len);
	TALLOC_FREE(req);
	if (ret == -1) {
		if (err != EPIPE) {
			e->err = err;
			e->done = true;
			return;
		}
		req = tstream_shutdown_send(e, tt_ev, e->s);
		ck_assert_ptr_nonnull(req);
		tevent_req_set_callback(req, echo_shutdown_done, e);
		return;
	}
	e->iov.iov_base = e->buf;
	e->iov.iov_len = e->len;
	req = tstream_writev_send(e, tt_ev, e->s, &e->iov, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, echo_write_done, e);
}

static void echo_write_done(struct tevent_req *req)
{
	struct echo_peer *e = tevent_req_callback_data_void(req);
	int ret, err = 0;

	ret = tstream_writev_recv(req, &err);
	TALLOC_FREE(req);
	if (ret == -1) {
		e->err = err;
		e->done = true;
		return;
	}
	e->echoed += e->len;
	echo_next(e);
}

static void echo_shutdown_done(struct tevent_req *req)
{
	struct echo_peer *e = tevent_req_callback_data_void(req);

	(void)tstream_shutdown_recv(req, &e->err);
	TALLOC_FREE(req);
	e->done = true;
}

void rig_relay_done(struct tsgate_relay *relay, int err, void *private_data)
{
	struct rig *r = private_data;

	ck_assert_ptr_eq(relay, r->relay);
	/* exactly once */
	ck_assert(!r->relay_done);
	r->relay_ret = err == 0 ? 0 : -1;
	r->relay_err = err;
	TALLOC_FREE(r->relay);
	r->relay_done = true;
	r->done_at = tevent_timeval_current();
}

/* Two socketpairs, no relay yet. */
struct rig *rig_new(void)
{
	struct rig *r = talloc_zero(tt_mem, struct rig);

	r->client = talloc_zero(r, struct peer);
	r->backend = talloc_zero(r, struct peer);
	ck_assert_int_eq(tstream_unix_socketpair(r->client, &r->client->s, r,
						 &r->relay_client),
			 0);
	ck_assert_int_eq(tstream_unix_socketpair(r->backend, &r->backend->s, r,
						 &r->relay_backend),
			 0);
	return r;
}

struct rig *rig_start_swept(enum tsgate_config_framing framing,
			    size_t max_pdu,
			    uint32_t idle_ms,
			    bool read_client,
			    bool read_backend,
			    struct tsgate_relay_sweeper *sweeper)
{
	struct rig *r = rig_new();
	struct tsgate_relay_params params = {
	    .framing = framing,
	    .max_pdu = max_pdu,
	    .idle_timeout_ms = idle_ms,
	    .sweeper = sweeper,
	};

	r->started = tevent_timeval_current();

	r->relay =
	    tsgate_relay_start(r, tt_ev, r->relay_client, r->relay_backend,
			       &params, &r->stats, rig_relay_done, r);
	ck_assert_ptr_nonnull(r->relay);
	if (read_client) {
		peer_read_next(r->client);
	}
	if (read_backend) {
		peer_read_next(r->backend);
	}
	return r;
}

struct rig *rig_start(enum tsgate_config_framing framing,
		      size_t max_pdu,
		      uint32_t idle_ms,
		      bool read_client,
		      bool read_backend)
{
	return rig_start_swept(framing, max_pdu, idle_ms, read_client,
			       read_backend, NULL);
}

/* Milliseconds from the relay's start to its end. */
long rig_ms(const struct rig *r)
{
	return (long)(tevent_timeval_until(&r->started, &r->done_at).tv_sec *
			  1000 +
		      tevent_timeval_until(&r->started, &r->done_at).tv_usec /
			  1000);
}

uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *b = talloc_size(tt_mem, len);
	size_t i;

	ck_assert_ptr_nonnull(b);
	for (i = 0; i < len; i++) {
		b[i] = (uint8_t)((i * 131 + seed) ^ (i >> 9));
	}
	return b;
}
