/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the relay on framed routes (cut-through): an 8 MiB PDU
 * each way at once with at most one chunk held per direction, headers
 * dribbled a byte at a time, thousands of tiny PDUs in one write, a PDU
 * ending at a chunk's end, lengths at max_pdu and max_pdu + 1, a peer
 * that closes or resets mid-body. Every hostile case in both directions.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <check.h>
#include <talloc.h>
#include <tevent.h>

#include "tsocket.h"
#include "tt.h"
#include "framing.h"
#include "relay.h"
#include "relay_rig.h"

#define L32 TSGATE_CONFIG_FRAMING_LENGTH32

/* One direction of a rig: who writes, who reads, what the log says. */
struct side {
	struct peer *src, *dst;
	uint64_t *bytes, *pdus;
	const char *too_large, *malformed, *read_failed;
};

static struct side side_of(struct rig *r, int dir)
{
	struct side s;

	if (dir == 0) {
		s = (struct side){r->client,
				  r->backend,
				  &r->stats.bytes_up,
				  &r->stats.pdus_up,
				  "client PDU too large",
				  "client PDU malformed or truncated",
				  "client read failed"};
	} else {
		s = (struct side){r->backend,
				  r->client,
				  &r->stats.bytes_down,
				  &r->stats.pdus_down,
				  "backend PDU too large",
				  "backend PDU malformed or truncated",
				  "backend read failed"};
	}
	return s;
}

/* The relay's end of dst freed: dst reads to its end. */
static void drain_dst(struct rig *r, int dir)
{
	if (dir == 0) {
		TALLOC_FREE(r->relay_backend);
		tt_wait(&r->backend->read_done, TT_DEADLINE_MS);
	} else {
		TALLOC_FREE(r->relay_client);
		tt_wait(&r->client->read_done, TT_DEADLINE_MS);
	}
}

static uint8_t *l32_pdus(const size_t *bodies, size_t n, size_t *len)
{
	size_t total = 0, i, off = 0;
	uint8_t *b;

	for (i = 0; i < n; i++) {
		total += 4 + bodies[i];
	}
	b = pattern(total, (unsigned)n);
	for (i = 0; i < n; i++) {
		b[off] = (uint8_t)(bodies[i] >> 24);
		b[off + 1] = (uint8_t)(bodies[i] >> 16);
		b[off + 2] = (uint8_t)(bodies[i] >> 8);
		b[off + 3] = (uint8_t)bodies[i];
		off += 4 + bodies[i];
	}
	*len = total;
	return b;
}

struct sampler {
	struct rig *r;
	size_t total; /* the PDU's size */
	size_t max_held;
	unsigned mid_flight; /* samples with both PDUs partly delivered */
	struct tevent_timer *te;
};

static void sample(struct tevent_context *ev,
		   struct tevent_timer *te,
		   struct timeval now,
		   void *private_data)
{
	struct sampler *s = private_data;
	size_t held;

	(void)te;
	(void)now;
	s->te = NULL;
	if (s->r->relay == NULL) {
		return;
	}
	held = talloc_total_size(s->r->relay);
	if (held > s->max_held) {
		s->max_held = held;
	}
	if (s->r->backend->in_len > 0 && s->r->backend->in_len < s->total &&
	    s->r->client->in_len > 0 && s->r->client->in_len < s->total) {
		s->mid_flight++;
	}
	s->te = tevent_add_timer(ev, s, tevent_timeval_current_ofs(0, 500),
				 sample, s);
}

/*
 * An 8 MiB PDU each way at once: both arrive byte-exact, and the relay
 * never holds more than a chunk per direction (store-and-forward held
 * the whole PDU: 8 MiB per direction).
 */
START_TEST(test_8mib_pdus_one_chunk_per_direction)
{
	const size_t body = 8 * 1024 * 1024;
	size_t len;
	uint8_t *up = l32_pdus(&body, 1, &len);
	uint8_t *down = pattern(len, 9);
	struct rig *r = rig_start(L32, 16 * 1024 * 1024, 0, true, true);
	struct sampler *s = talloc_zero(r, struct sampler);

	memcpy(down, up, 4);
	s->r = r;
	s->total = len;
	sample(tt_ev, NULL, tevent_timeval_current(), s);
	peer_start_write(r->client, up, len, true);
	peer_start_write(r->backend, down, len, true);
	tt_wait(&r->relay_done, 60000);
	ck_assert_msg(r->relay_ret == 0, "relay: %s (%s)",
		      strerror(r->relay_err),
		      r->stats.reason ? r->stats.reason : "-");
	tt_wait(&r->backend->read_done, TT_DEADLINE_MS);
	tt_wait(&r->client->read_done, TT_DEADLINE_MS);
	ck_assert_uint_eq(r->backend->in_len, len);
	ck_assert_mem_eq(r->backend->in, up, len);
	ck_assert_uint_eq(r->client->in_len, len);
	ck_assert_mem_eq(r->client->in, down, len);
	ck_assert_uint_eq(r->stats.pdus_up, 1);
	ck_assert_uint_eq(r->stats.pdus_down, 1);
	ck_assert_uint_eq(r->stats.bytes_up, len);
	ck_assert_uint_eq(r->stats.bytes_down, len);
	ck_assert_msg(s->mid_flight > 0, "never saw both PDUs in flight");
	/* two chunks, the framers, a request or two: not a PDU */
	ck_assert_msg(s->max_held <= 2 * TSGATE_FRAMING_RAW_CHUNK + 8192,
		      "the relay held %zu bytes", s->max_held);
	TALLOC_FREE(s->te);
}
END_TEST

/* Writes one byte at a time, each after the last went through. */
struct dribble {
	struct peer *p;
	const uint8_t *buf;
	size_t len, pos;
};

static void dribble_next(struct tevent_context *ev,
			 struct tevent_timer *te,
			 struct timeval now,
			 void *private_data)
{
	struct dribble *d = private_data;

	(void)te;
	(void)now;
	if (d->pos == 0 || d->p->write_done) {
		peer_start_write(d->p, d->buf + d->pos, 1,
				 d->pos + 1 == d->len);
		d->pos++;
	}
	if (d->pos < d->len) {
		tevent_add_timer(ev, d, tevent_timeval_current_ofs(0, 200),
				 dribble_next, d);
	}
}

/* Headers and bodies a byte at a time: relayed whole, PDUs counted. */
START_TEST(test_dribbled_headers)
{
	const size_t bodies[] = {3, 0, 5};
	int dir;

	for (dir = 0; dir < 2; dir++) {
		size_t len;
		uint8_t *data = l32_pdus(bodies, 3, &len);
		struct rig *r = rig_start(L32, 64, 0, true, true);
		struct side s = side_of(r, dir);
		struct dribble *d = talloc_zero(r, struct dribble);

		*d = (struct dribble){.p = s.src, .buf = data, .len = len};
		dribble_next(tt_ev, NULL, tevent_timeval_current(), d);
		tt_wait(&s.dst->read_done, 10000);
		ck_assert(s.dst->read_eof);
		ck_assert_uint_eq(s.dst->in_len, len);
		ck_assert_mem_eq(s.dst->in, data, len);
		ck_assert_uint_eq(*s.pdus, 3);
		ck_assert_uint_eq(*s.bytes, len);
		ck_assert(!r->relay_done);
		TALLOC_FREE(r->relay);
	}
}
END_TEST

/*
 * Ten thousand tiny PDUs in one write, then a PDU whose end falls on a
 * chunk's end (64 KiB exactly) and one after it.
 */
START_TEST(test_tiny_pdus_and_chunk_sized_pdu)
{
	size_t bodies[10002];
	int dir;
	size_t i;

	for (i = 0; i < 10000; i++) {
		bodies[i] = i % 4;
	}
	bodies[10000] = TSGATE_FRAMING_RAW_CHUNK - 4;
	bodies[10001] = 10;
	for (dir = 0; dir < 2; dir++) {
		size_t len;
		uint8_t *data = l32_pdus(bodies, 10002, &len);
		struct rig *r = rig_start(L32, 0, 0, true, true);
		struct side s = side_of(r, dir);

		peer_start_write(s.src, data, len, true);
		tt_wait(&s.dst->read_done, 10000);
		ck_assert_uint_eq(s.dst->in_len, len);
		ck_assert_mem_eq(s.dst->in, data, len);
		ck_assert_uint_eq(*s.pdus, 10002);
		ck_assert_uint_eq(*s.bytes, len);
		TALLOC_FREE(r->relay);
	}
}
END_TEST

/*
 * max_pdu counts the header: a PDU of max_pdu goes through whole, the
 * next one announcing max_pdu + 1 is refused with nothing of it sent.
 */
START_TEST(test_max_pdu_and_one_more)
{
	const size_t bodies[] = {1020, 1021};
	int dir;

	for (dir = 0; dir < 2; dir++) {
		size_t len;
		uint8_t *data = l32_pdus(bodies, 2, &len);
		struct rig *r = rig_start(L32, 1024, 0, true, true);
		struct side s = side_of(r, dir);

		peer_start_write(s.src, data, len, false);
		tt_wait(&r->relay_done, TT_DEADLINE_MS);
		ck_assert_int_eq(r->relay_err, EMSGSIZE);
		ck_assert_str_eq(r->stats.reason, s.too_large);
		ck_assert(r->stats.pdu_refused);
		ck_assert_uint_eq(*s.pdus, 1);
		ck_assert_uint_eq(*s.bytes, 1024);
		drain_dst(r, dir);
		ck_assert_uint_eq(s.dst->in_len, 1024);
		ck_assert_mem_eq(s.dst->in, data, 1024);
	}
}
END_TEST

/*
 * The source half-closes inside a body: truncated (EPROTO). What came of
 * the PDU was forwarded, then the destination's stream ends with the
 * relay (it sees the PDU cut short and the end of its connection).
 */
START_TEST(test_close_mid_body)
{
	const size_t body = 1024 * 1024;
	int dir;

	for (dir = 0; dir < 2; dir++) {
		size_t len, part = 4 + 300 * 1024;
		uint8_t *data = l32_pdus(&body, 1, &len);
		struct rig *r = rig_start(L32, 2 * 1024 * 1024, 0, true, true);
		struct side s = side_of(r, dir);

		peer_start_write(s.src, data, part, true);
		tt_wait(&r->relay_done, TT_DEADLINE_MS);
		ck_assert_int_eq(r->relay_err, EPROTO);
		ck_assert_str_eq(r->stats.reason, s.malformed);
		ck_assert_uint_eq(*s.pdus, 0);
		ck_assert_uint_eq(*s.bytes, part);
		drain_dst(r, dir);
		ck_assert(s.dst->read_eof);
		ck_assert_uint_eq(s.dst->in_len, part);
		ck_assert_mem_eq(s.dst->in, data, part);
	}
}
END_TEST

/*
 * The source resets inside a body (it leaves with bytes unread: a reset
 * on a unix socket): the stream's own error, no verdict; what came of
 * the PDU was forwarded.
 */
START_TEST(test_reset_mid_body)
{
	const size_t body = 1024 * 1024;
	const uint8_t unread[] = {0, 0, 0, 2, 'h', 'i'};
	int dir;

	for (dir = 0; dir < 2; dir++) {
		size_t len, part = 4 + 200 * 1024;
		uint8_t *data = l32_pdus(&body, 1, &len);
		/* the source does not read: the PDU to it stays unread */
		struct rig *r =
		    rig_start(L32, 2 * 1024 * 1024, 0, dir == 1, dir == 0);
		struct side s = side_of(r, dir);

		peer_start_write(s.dst, unread, sizeof(unread), false);
		tt_wait_for(r->stats.pdus_up + r->stats.pdus_down == 1,
			    TT_DEADLINE_MS);
		peer_start_write(s.src, data, part, false);
		tt_wait_for(s.dst->in_len == part, TT_DEADLINE_MS);
		TALLOC_FREE(s.src->s);
		tt_wait(&r->relay_done, TT_DEADLINE_MS);
		ck_assert_int_eq(r->relay_err, ECONNRESET);
		ck_assert_str_eq(r->stats.reason, s.read_failed);
		ck_assert(!r->stats.pdu_refused);
		ck_assert_uint_eq(*s.pdus, 0);
		ck_assert_uint_eq(*s.bytes, part);
		drain_dst(r, dir);
		ck_assert_uint_eq(s.dst->in_len, part);
		ck_assert_mem_eq(s.dst->in, data, part);
	}
}
END_TEST

static Suite *relay_framed_suite(void)
{
	Suite *s = suite_create("relay_framed");
	TCase *tc;

	tc = tt_tcase(s, "cut_through", 120);
	tcase_add_test(tc, test_8mib_pdus_one_chunk_per_direction);
	tcase_add_test(tc, test_dribbled_headers);
	tcase_add_test(tc, test_tiny_pdus_and_chunk_sized_pdu);

	tc = tt_tcase(s, "hostile", 60);
	tcase_add_test(tc, test_max_pdu_and_one_more);
	tcase_add_test(tc, test_close_mid_body);
	tcase_add_test(tc, test_reset_mid_body);
	return s;
}

int main(void)
{
	return tt_run_suite(relay_framed_suite());
}
