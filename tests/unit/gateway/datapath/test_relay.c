/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of gateway/datapath/relay.c over real unix socketpairs: byte-exact
 * transfers both ways, half-close passed on while the other direction
 * keeps flowing, framed PDUs (more in test_relay_framed.c), oversized
 * PDUs, idle timeout and backpressure (bounded buffering).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <check.h>
#include <talloc.h>
#include <tevent.h>

#include "tsocket.h"
#include "tt.h"
#include "framing.h"
#include "relay.h"
#include "relay_rig.h"

START_TEST(test_raw_both_ways)
{
	const size_t up = 300 * 1024 + 17, down = 200 * 1024 + 3;
	uint8_t *up_data = pattern(up, 1), *down_data = pattern(down, 2);
	struct rig *r = rig_start(TSGATE_CONFIG_FRAMING_RAW, 0, 0, true, true);

	peer_start_write(r->client, up_data, up, true);
	peer_start_write(r->backend, down_data, down, true);
	tt_wait(&r->relay_done, 10000);
	ck_assert_msg(r->relay_ret == 0, "relay: %s (%s)",
		      strerror(r->relay_err),
		      r->stats.reason ? r->stats.reason : "-");
	tt_wait(&r->backend->read_done, TT_DEADLINE_MS);
	tt_wait(&r->client->read_done, TT_DEADLINE_MS);
	ck_assert(r->backend->read_eof);
	ck_assert(r->client->read_eof);
	ck_assert_uint_eq(r->backend->in_len, up);
	ck_assert_mem_eq(r->backend->in, up_data, up);
	ck_assert_uint_eq(r->client->in_len, down);
	ck_assert_mem_eq(r->client->in, down_data, down);
	ck_assert_uint_eq(r->stats.bytes_up, up);
	ck_assert_uint_eq(r->stats.bytes_down, down);
	ck_assert_ptr_null(r->stats.reason);
}
END_TEST

START_TEST(test_raw_echo_backend)
{
	const size_t n = 1024 * 1024 + 5;
	uint8_t *data = pattern(n, 4);
	struct rig *r = rig_start(TSGATE_CONFIG_FRAMING_RAW, 0, 0, true, false);
	struct echo_peer *e = talloc_zero(r, struct echo_peer);

	/* the backend end becomes an echo server */
	e->s = r->backend->s;
	echo_next(e);
	peer_start_write(r->client, data, n, true);
	tt_wait(&r->client->read_done, 20000);
	ck_assert_msg(r->client->read_eof, "client read: %s",
		      strerror(r->client->read_err));
	ck_assert_uint_eq(r->client->in_len, n);
	ck_assert_mem_eq(r->client->in, data, n);
	tt_wait(&r->relay_done, TT_DEADLINE_MS);
	ck_assert_int_eq(r->relay_ret, 0);
	ck_assert_uint_eq(e->echoed, n);
}
END_TEST

START_TEST(test_half_close_keeps_other_direction)
{
	const uint8_t ping[] = "ping";
	const uint8_t pong[] = "pong after your EOF";
	struct rig *r = rig_start(TSGATE_CONFIG_FRAMING_RAW, 0, 0, true, true);

	/* client: request, then half-close */
	peer_start_write(r->client, ping, sizeof(ping), true);
	tt_wait(&r->backend->read_done, TT_DEADLINE_MS);
	ck_assert(r->backend->read_eof);
	ck_assert_uint_eq(r->backend->in_len, sizeof(ping));
	ck_assert(!r->relay_done);
	ck_assert(!r->client->read_done);

	/* backend answers after seeing EOF, then closes its side too */
	peer_start_write(r->backend, pong, sizeof(pong), true);
	tt_wait(&r->client->read_done, TT_DEADLINE_MS);
	ck_assert(r->client->read_eof);
	ck_assert_uint_eq(r->client->in_len, sizeof(pong));
	ck_assert_mem_eq(r->client->in, pong, sizeof(pong));
	tt_wait(&r->relay_done, TT_DEADLINE_MS);
	ck_assert_int_eq(r->relay_ret, 0);
}
END_TEST

START_TEST(test_framed_whole_pdus_then_too_large)
{
	/* two good length32 PDUs, then a header announcing 64 KiB */
	uint8_t stream[4 + 5 + 4 + 3 + 4 + 10];
	struct rig *r =
	    rig_start(TSGATE_CONFIG_FRAMING_LENGTH32, 1024, 0, true, true);

	memset(stream, 0, sizeof(stream));
	stream[3] = 5;
	memcpy(stream + 4, "hello", 5);
	stream[12] = 3;
	memcpy(stream + 13, "abc", 3);
	stream[16 + 1] = 0x01; /* 0x00010000 = 64 KiB */
	memcpy(stream + 20, "0123456789", 10);

	peer_start_write(r->client, stream, sizeof(stream), false);
	tt_wait(&r->relay_done, TT_DEADLINE_MS);
	ck_assert_int_eq(r->relay_ret, -1);
	ck_assert_int_eq(r->relay_err, EMSGSIZE);
	ck_assert_str_eq(r->stats.reason, "client PDU too large");
	ck_assert_uint_eq(r->stats.pdus_up, 2);
	ck_assert_uint_eq(r->stats.bytes_up, 16);

	/* the backend got the two PDUs and nothing of the third */
	TALLOC_FREE(r->relay_backend);
	tt_wait(&r->backend->read_done, TT_DEADLINE_MS);
	ck_assert_uint_eq(r->backend->in_len, 16);
	ck_assert_mem_eq(r->backend->in, stream, 16);
}
END_TEST

START_TEST(test_framed_truncated_pdu)
{
	const uint8_t part[] = {0x00, 0x00, 0x00, 0x08, 'a', 'b'};
	struct rig *r = rig_start(TSGATE_CONFIG_FRAMING_NBT, 0, 0, true, true);

	peer_start_write(r->client, part, sizeof(part), true);
	tt_wait(&r->relay_done, TT_DEADLINE_MS);
	ck_assert_int_eq(r->relay_ret, -1);
	ck_assert_int_eq(r->relay_err, EPROTO);
	ck_assert_str_eq(r->stats.reason, "client PDU malformed or truncated");
	/* cut-through: the header and the body so far went on, no PDU */
	ck_assert_uint_eq(r->stats.bytes_up, sizeof(part));
	ck_assert_uint_eq(r->stats.pdus_up, 0);
	TALLOC_FREE(r->relay_backend);
	tt_wait(&r->backend->read_done, TT_DEADLINE_MS);
	ck_assert_uint_eq(r->backend->in_len, sizeof(part));
	ck_assert_mem_eq(r->backend->in, part, sizeof(part));
}
END_TEST

START_TEST(test_idle_timeout)
{
	const uint8_t hi[] = "hi";
	struct rig *r =
	    rig_start(TSGATE_CONFIG_FRAMING_RAW, 0, 200, true, true);

	peer_start_write(r->client, hi, sizeof(hi), false);
	tt_wait(&r->relay_done, TT_DEADLINE_MS);
	ck_assert_int_eq(r->relay_ret, -1);
	ck_assert_int_eq(r->relay_err, ETIMEDOUT);
	ck_assert_str_eq(r->stats.reason, "idle timeout");
	ck_assert_uint_eq(r->stats.bytes_up, sizeof(hi));
}
END_TEST

/*
 * The sweeper: of two relays with one timeout, only the idle one times
 * out, at its deadline; the other's activity postpones its own.
 */
START_TEST(test_sweeper_only_idle_times_out)
{
	const uint8_t ping[] = "ping";
	struct tsgate_relay_sweeper *sw =
	    tsgate_relay_sweeper_new(tt_mem, tt_ev);
	struct rig *idle, *busy;
	struct timeval last;
	unsigned i;

	ck_assert_ptr_nonnull(sw);
	idle =
	    rig_start_swept(TSGATE_CONFIG_FRAMING_RAW, 0, 300, true, true, sw);
	busy =
	    rig_start_swept(TSGATE_CONFIG_FRAMING_RAW, 0, 300, true, true, sw);
	for (i = 0; i < 7; i++) {
		peer_start_write(busy->client, ping, sizeof(ping), false);
		/* activity every 100 ms on purpose: busy never idles 300 */
		tt_run_for(tt_ev, 100);
	}
	last = tevent_timeval_current();
	tt_wait(&idle->relay_done, TT_DEADLINE_MS);
	ck_assert_int_eq(idle->relay_err, ETIMEDOUT);
	ck_assert_str_eq(idle->stats.reason, "idle timeout");
	if (tt_timing_asserts_enabled()) {
		ck_assert_msg(rig_ms(idle) >= 300 && rig_ms(idle) < 600,
			      "timed out after %ld ms", rig_ms(idle));
		ck_assert(!busy->relay_done);
	}
	tt_wait_for(busy->backend->in_len == 7 * sizeof(ping) ||
			busy->relay_done,
		    TT_DEADLINE_MS);
	ck_assert_uint_eq(busy->backend->in_len, 7 * sizeof(ping));

	tt_wait(&busy->relay_done, TT_DEADLINE_MS);
	ck_assert_int_eq(busy->relay_err, ETIMEDOUT);
	ck_assert_str_eq(busy->stats.reason, "idle timeout");
	if (tt_timing_asserts_enabled()) {
		ck_assert_msg(rig_ms(busy) >= 700 + 300 - 100,
			      "timed out after %ld ms", rig_ms(busy));
		ck_assert_msg(
		    tevent_timeval_until(&last, &busy->done_at).tv_sec == 0,
		    "late by more than a second");
	}
	/* nothing listed: no timer left, only the sweeper and its list */
	ck_assert_uint_eq(talloc_total_blocks(sw), 2);
	talloc_free(sw);
}
END_TEST

/* A freed relay leaves the sweeper; the others still time out. */
START_TEST(test_sweeper_free_relay)
{
	struct tsgate_relay_sweeper *sw =
	    tsgate_relay_sweeper_new(tt_mem, tt_ev);
	struct rig *a, *b;

	ck_assert_ptr_nonnull(sw);
	a = rig_start_swept(TSGATE_CONFIG_FRAMING_RAW, 0, 200, true, true, sw);
	b = rig_start_swept(TSGATE_CONFIG_FRAMING_RAW, 0, 200, true, true, sw);
	TALLOC_FREE(a->relay);
	tt_wait(&b->relay_done, TT_DEADLINE_MS);
	ck_assert_int_eq(b->relay_err, ETIMEDOUT);
	ck_assert(!a->relay_done);
	/* b's list and timer go once b is done */
	tt_wait_for(talloc_total_blocks(sw) == 2, TT_DEADLINE_MS);

	/* the last relay freed: the timer goes with it */
	a = rig_start_swept(TSGATE_CONFIG_FRAMING_RAW, 0, 200, true, true, sw);
	ck_assert_uint_eq(talloc_total_blocks(sw), 3);
	TALLOC_FREE(a->relay);
	ck_assert_uint_eq(talloc_total_blocks(sw), 2);

	/* the sweeper freed first lets go of its relays */
	a = rig_start_swept(TSGATE_CONFIG_FRAMING_RAW, 0, 200, true, true, sw);
	talloc_free(sw);
	/* a negative: a's 200 ms pass on purpose, nothing may fire */
	tt_run_for(tt_ev, 300);
	ck_assert(!a->relay_done);
	TALLOC_FREE(a->relay);
}
END_TEST

/*
 * After a reload the timeout differs: a relay with a shorter timeout than
 * the ones listed before it still times out at its own deadline; 0 lists
 * nothing.
 */
START_TEST(test_sweeper_differing_timeouts)
{
	struct tsgate_relay_sweeper *sw =
	    tsgate_relay_sweeper_new(tt_mem, tt_ev);
	struct rig *slow, *fast, *never;

	ck_assert_ptr_nonnull(sw);
	slow =
	    rig_start_swept(TSGATE_CONFIG_FRAMING_RAW, 0, 1000, true, true, sw);
	never =
	    rig_start_swept(TSGATE_CONFIG_FRAMING_RAW, 0, 0, true, true, sw);
	fast =
	    rig_start_swept(TSGATE_CONFIG_FRAMING_RAW, 0, 200, true, true, sw);
	tt_wait(&fast->relay_done, TT_DEADLINE_MS);
	ck_assert_int_eq(fast->relay_err, ETIMEDOUT);
	if (tt_timing_asserts_enabled()) {
		ck_assert_msg(rig_ms(fast) >= 200 && rig_ms(fast) < 700,
			      "timed out after %ld ms", rig_ms(fast));
		ck_assert(!slow->relay_done);
	}
	tt_wait(&slow->relay_done, TT_DEADLINE_MS);
	ck_assert_int_eq(slow->relay_err, ETIMEDOUT);
	ck_assert_str_eq(slow->stats.reason, "idle timeout");
	if (tt_timing_asserts_enabled()) {
		ck_assert_msg(rig_ms(slow) >= 1000 && rig_ms(slow) < 1500,
			      "timed out after %ld ms", rig_ms(slow));
	}
	ck_assert(!never->relay_done);
	/* two lists (200, 1000), no timer */
	ck_assert_uint_eq(talloc_total_blocks(sw), 3);
	TALLOC_FREE(never->relay);
	talloc_free(sw);
}
END_TEST

/*
 * An idle relay waits for readability: one small request per direction,
 * no readv chain and no read-ahead in either stream.
 */
START_TEST(test_idle_holds_no_reads)
{
	const uint8_t ping[] = "ping", pong[] = "pong";
	struct rig *r = rig_start(TSGATE_CONFIG_FRAMING_RAW, 0, 0, true, true);
	size_t held, streams;

	peer_start_write(r->client, ping, sizeof(ping), false);
	peer_start_write(r->backend, pong, sizeof(pong), false);
	tt_wait_for(r->backend->in_len == sizeof(ping) &&
			r->client->in_len == sizeof(pong),
		    TT_DEADLINE_MS);
	/*
	 * The last write's completion may come after the peer read it: wait
	 * (bounded) for both pumps to be back to waiting, with nothing held.
	 */
	(void)tt_loop_until_cond(
	    tt_ev,
	    talloc_total_size(r->relay) < 384 &&
		talloc_total_size(r->relay_client) +
			talloc_total_size(r->relay_backend) <
		    880,
	    5000);

	held = talloc_total_size(r->relay);
	streams = talloc_total_size(r->relay_client) +
		  talloc_total_size(r->relay_backend);
	/*
	 * The relay struct alone (not a tevent_req; its pumps wait with
	 * readable handlers, no request below it): 264 bytes on x86-64.
	 * As a tevent_req (a talloc pool with tevent 0.14) it was 552; with
	 * a wait request per direction 1.1 KiB; with a request per pump
	 * and a readv per direction 2.5 KiB.
	 */
	ck_assert_msg(held < 384, "idle relay holds %zu bytes", held);
	/*
	 * The stream structs only: no 4 KiB read-ahead in either, and no
	 * fast-path immediate kept by the stream written to last while its
	 * other direction waits (816 bytes on x86-64; 928 with it).
	 */
	ck_assert_msg(streams < 880, "idle streams hold %zu bytes", streams);
	ck_assert(!r->relay_done);

	/* still relaying after the wait */
	peer_start_write(r->client, ping, sizeof(ping), false);
	tt_wait_for(r->backend->in_len == 2 * sizeof(ping), TT_DEADLINE_MS);
}
END_TEST

/*
 * Freeing a running relay cancels it: no callback, the handlers it set
 * are taken back (the streams stay usable), a write in flight goes.
 */
START_TEST(test_free_while_running)
{
	const uint8_t ping[] = "ping";
	const size_t total = 4 * 1024 * 1024;
	uint8_t *data = pattern(total, 5);
	uint8_t got[sizeof(ping)];
	struct iovec iov = {.iov_base = got, .iov_len = sizeof(got)};
	struct tevent_req *req;
	bool done = false;
	int err = 0;
	/* nobody reads the backend end: the up pump stalls in a write */
	struct rig *r =
	    rig_start(TSGATE_CONFIG_FRAMING_RAW, 0, 0, false, false);

	peer_start_write(r->client, data, total, false);
	tt_wait_for(r->stats.bytes_up > 0, TT_DEADLINE_MS);
	ck_assert(!r->client->write_done);
	TALLOC_FREE(r->relay);

	/* the down direction was waiting with a handler: it is gone */
	peer_start_write(r->backend, ping, sizeof(ping), false);
	/* a negative: time passes on purpose, nothing may be relayed */
	tt_run_for(tt_ev, 100);
	ck_assert(!r->relay_done);
	ck_assert_uint_eq(r->stats.bytes_down, 0);
	req = tstream_readv_send(tt_mem, tt_ev, r->relay_backend, &iov, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tt_set_done, &done);
	tt_wait(&done, TT_DEADLINE_MS);
	ck_assert_int_eq(tstream_readv_recv(req, &err), (int)sizeof(ping));
	TALLOC_FREE(req);
	ck_assert_mem_eq(got, ping, sizeof(ping));
	ck_assert(!r->relay_done);
}
END_TEST

/*
 * A relay that fails inside tsgate_relay_start() (here: the client
 * stream has a readv outstanding, so the pump's readable handler gets
 * EBUSY) reports it from the loop, never from inside start; freeing it
 * before then means no callback at all.
 */
START_TEST(test_start_failure_from_loop)
{
	struct tsgate_relay_params params = {.framing =
						 TSGATE_CONFIG_FRAMING_RAW};
	struct rig *r = rig_new();
	uint8_t byte;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct tevent_req *busy;

	busy = tstream_readv_send(tt_mem, tt_ev, r->relay_client, &iov, 1);
	ck_assert_ptr_nonnull(busy);

	r->relay =
	    tsgate_relay_start(r, tt_ev, r->relay_client, r->relay_backend,
			       &params, &r->stats, rig_relay_done, r);
	ck_assert_ptr_nonnull(r->relay);
	ck_assert(!r->relay_done);
	tt_wait(&r->relay_done, TT_DEADLINE_MS);
	ck_assert_int_eq(r->relay_ret, -1);
	ck_assert_int_eq(r->relay_err, EBUSY);
	ck_assert_str_eq(r->stats.reason, "client read failed");
	ck_assert(!r->stats.pdu_refused);
	ck_assert_ptr_null(r->relay);

	/* again, freed before the loop ran: never called */
	r->relay_done = false;
	r->stats = (struct tsgate_conn_stats){0};
	r->relay =
	    tsgate_relay_start(r, tt_ev, r->relay_client, r->relay_backend,
			       &params, &r->stats, rig_relay_done, r);
	ck_assert_ptr_nonnull(r->relay);
	TALLOC_FREE(r->relay);
	/* a negative: the loop runs on purpose, no callback may come */
	tt_run_for(tt_ev, 50);
	ck_assert(!r->relay_done);
	TALLOC_FREE(busy);
}
END_TEST

START_TEST(test_backpressure)
{
	const size_t total = 16 * 1024 * 1024;
	uint8_t *data = pattern(total, 3);
	/* nobody reads the backend end */
	struct rig *r = rig_start(TSGATE_CONFIG_FRAMING_RAW, 0, 0, true, false);
	uint64_t stalled;

	peer_start_write(r->client, data, total, true);
	tt_wait_for(r->stats.bytes_up > 0, TT_DEADLINE_MS);
	/* the kernel buffers fill meanwhile: time passes on purpose */
	tt_run_for(tt_ev, 500);
	stalled = r->stats.bytes_up;
	/* the relay holds at most one chunk: it stopped reading */
	ck_assert_uint_lt(stalled, total / 2);
	ck_assert(!r->client->write_done);
	/* a negative: no progress while the backend does not read */
	tt_run_for(tt_ev, 200);
	ck_assert_uint_eq(r->stats.bytes_up, stalled);

	/* once the backend reads, everything arrives */
	peer_read_next(r->backend);
	tt_wait(&r->backend->read_done, 20000);
	ck_assert(r->backend->read_eof);
	ck_assert_uint_eq(r->backend->in_len, total);
	ck_assert_mem_eq(r->backend->in, data, total);
}
END_TEST

START_TEST(test_backend_closes_first)
{
	const uint8_t bye[] = "bye";
	struct rig *r = rig_start(TSGATE_CONFIG_FRAMING_RAW, 0, 0, true, true);

	/* the backend says something and half-closes; the client, too */
	peer_start_write(r->backend, bye, sizeof(bye), true);
	tt_wait(&r->client->read_done, TT_DEADLINE_MS);
	ck_assert(r->client->read_eof);
	ck_assert(!r->relay_done);
	peer_start_write(r->client, NULL, 0, true);
	tt_wait(&r->relay_done, TT_DEADLINE_MS);
	ck_assert_int_eq(r->relay_ret, 0);
	ck_assert_uint_eq(r->stats.bytes_down, sizeof(bye));
	ck_assert_uint_eq(r->stats.bytes_up, 0);
}
END_TEST

/* A program backend exited: its output reaches the client, then the end. */
START_TEST(test_backend_gone_ends_after_its_output)
{
	const uint8_t bye[] = "last words";
	struct rig *r = rig_start(TSGATE_CONFIG_FRAMING_RAW, 0, 0, true, true);

	/* gone before its output went through: the relay waits for it */
	tsgate_relay_backend_gone(r->relay);
	ck_assert(!r->relay_done);
	peer_start_write(r->backend, bye, sizeof(bye), true);
	/* the client never half-closes: the relay ends all the same */
	tt_wait(&r->relay_done, TT_DEADLINE_MS);
	ck_assert_int_eq(r->relay_ret, 0);
	tt_wait(&r->client->read_done, TT_DEADLINE_MS);
	ck_assert(r->client->read_eof);
	ck_assert_uint_eq(r->client->in_len, sizeof(bye));
	ck_assert_mem_eq(r->client->in, bye, sizeof(bye));
}
END_TEST

/* Gone after its direction ended: the relay ends without the client. */
START_TEST(test_backend_gone_after_its_eof)
{
	struct rig *r = rig_start(TSGATE_CONFIG_FRAMING_RAW, 0, 0, true, true);

	peer_start_write(r->backend, NULL, 0, true);
	tt_wait(&r->client->read_done, TT_DEADLINE_MS);
	ck_assert(!r->relay_done);
	tsgate_relay_backend_gone(r->relay);
	/* at once, or when the half-close to the client has completed */
	tt_wait(&r->relay_done, TT_DEADLINE_MS);
	ck_assert_int_eq(r->relay_ret, 0);
}
END_TEST

static Suite *relay_suite(void)
{
	Suite *s = suite_create("relay");
	TCase *tc;

	tc = tt_tcase(s, "raw", 60);
	tcase_add_test(tc, test_raw_both_ways);
	tcase_add_test(tc, test_raw_echo_backend);
	tcase_add_test(tc, test_half_close_keeps_other_direction);
	tcase_add_test(tc, test_backend_closes_first);
	tcase_add_test(tc, test_backend_gone_ends_after_its_output);
	tcase_add_test(tc, test_backend_gone_after_its_eof);
	tcase_add_test(tc, test_free_while_running);
	tcase_add_test(tc, test_start_failure_from_loop);

	tc = tt_tcase(s, "framed", 60);
	tcase_add_test(tc, test_framed_whole_pdus_then_too_large);
	tcase_add_test(tc, test_framed_truncated_pdu);

	tc = tt_tcase(s, "limits", 60);
	tcase_add_test(tc, test_idle_timeout);
	tcase_add_test(tc, test_sweeper_only_idle_times_out);
	tcase_add_test(tc, test_sweeper_free_relay);
	tcase_add_test(tc, test_sweeper_differing_timeouts);
	tcase_add_test(tc, test_idle_holds_no_reads);
	tcase_add_test(tc, test_backpressure);

	return s;
}

int main(void)
{
	return tt_run_suite(relay_suite());
}
