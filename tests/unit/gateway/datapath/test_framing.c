/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of gateway/datapath/framing.c: header parsing of each framing, and
 * whole-PDU reads over a real socketpair (split writes, oversized PDUs,
 * malformed headers, truncation, clean end of stream, raw chunks).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <check.h>
#include <talloc.h>
#include <tevent.h>

#include "tsocket.h"
#include "tt.h"
#include "framing.h"

/* One end as a tstream, the other as a plain blocking fd for the test. */
struct pair {
	struct tstream_context *stream;
	int ours; /* the stream's fd (owned by the stream) */
	int peer;
};

static int pair_destructor(struct pair *p)
{
	if (p->peer != -1) {
		close(p->peer);
	}
	return 0;
}

static struct pair *pair_new(void)
{
	struct pair *p = talloc_zero(tt_mem, struct pair);
	int sv[2];

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_eq(tstream_bsd_existing_socket(p, sv[0], &p->stream), 0);
	p->ours = sv[0];
	p->peer = sv[1];
	talloc_set_destructor(p, pair_destructor);
	return p;
}

static void peer_write(struct pair *p, const void *buf, size_t len)
{
	ck_assert_int_eq(write(p->peer, buf, len), (ssize_t)len);
}

static void peer_close(struct pair *p)
{
	close(p->peer);
	p->peer = -1;
}

struct read_result {
	bool done;
	int ret;
	int err;
	bool verdict;
	uint8_t *buf;
	size_t len;
};

static void read_done(struct tevent_req *req)
{
	struct read_result *r = tevent_req_callback_data_void(req);

	r->ret = tsgate_pdu_read_recv(req, &r->err, &r->verdict, tt_mem,
				      &r->buf, &r->len);
	TALLOC_FREE(req);
	r->done = true;
}

static struct read_result *read_pdu(struct pair *p,
				    enum tsgate_config_framing f,
				    size_t max_pdu)
{
	struct read_result *r = talloc_zero(tt_mem, struct read_result);
	struct tevent_req *req;

	req = tsgate_pdu_read_send(tt_mem, tt_ev, p->stream, f, max_pdu);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, read_done, r);
	tt_wait(&r->done, TT_DEADLINE_MS);
	return r;
}

static void assert_pdu(struct read_result *r, const void *bytes, size_t len)
{
	ck_assert_msg(r->ret == 0, "read failed: %s", strerror(r->err));
	ck_assert_uint_eq(r->len, len);
	ck_assert_mem_eq(r->buf, bytes, len);
	ck_assert_ptr_eq(talloc_parent(r->buf), tt_mem);
}

/*
 * In these tests every EMSGSIZE and EPROTO is the framer's verdict on a
 * PDU, and anything else (EPIPE, a reset) the stream's own failure.
 */
static void assert_error(struct read_result *r, int err)
{
	ck_assert_int_eq(r->ret, -1);
	ck_assert_msg(r->err == err, "errno %d (%s), expected %d (%s)", r->err,
		      strerror(r->err), err, strerror(err));
	ck_assert_msg(r->verdict == (err == EMSGSIZE || err == EPROTO),
		      "verdict %d for errno %d", r->verdict, err);
}

START_TEST(test_names_and_headers)
{
	ck_assert_str_eq(
	    tsgate_config_framing_name(TSGATE_CONFIG_FRAMING_NCACN), "ncacn");
	ck_assert_uint_eq(tsgate_framing_header_size(TSGATE_CONFIG_FRAMING_RAW),
			  0);
	ck_assert_uint_eq(
	    tsgate_framing_header_size(TSGATE_CONFIG_FRAMING_LENGTH32), 4);
	ck_assert_uint_eq(tsgate_framing_header_size(TSGATE_CONFIG_FRAMING_NBT),
			  4);
	ck_assert_uint_eq(
	    tsgate_framing_header_size(TSGATE_CONFIG_FRAMING_NCACN), 16);
}
END_TEST

START_TEST(test_header_sizes)
{
	const uint8_t l32[4] = {0x00, 0x01, 0x02, 0x03};
	const uint8_t l32max[4] = {0xff, 0xff, 0xff, 0xff};
	const uint8_t nbt[4] = {0x00, 0x01, 0x02, 0x03};
	const uint8_t nbt_keepalive[4] = {0x85, 0, 0, 0};
	const uint8_t nbt_bad[4] = {0x42, 0, 0, 1};
	/* bind PDU, little-endian drep, frag_length 0x0048 */
	const uint8_t ncacn_le[16] = {5,    0,    11, 3, 0x10, 0, 0, 0,
				      0x48, 0x00, 0,  0, 1,    0, 0, 0};
	/* same, big-endian drep: frag_length bytes swapped */
	const uint8_t ncacn_be[16] = {5,    0,    11, 3, 0x00, 0, 0, 0,
				      0x00, 0x48, 0,  0, 0,    0, 0, 1};
	const uint8_t ncacn_v4[16] = {4,    0,    11, 3, 0x10, 0, 0, 0,
				      0x48, 0x00, 0,  0, 1,    0, 0, 0};
	const uint8_t ncacn_short[16] = {5,    0,    11, 3, 0x10, 0, 0, 0,
					 0x0f, 0x00, 0,  0, 1,    0, 0, 0};
	uint64_t size = 0;

	ck_assert_int_eq(
	    tsgate_framing_pdu_size(TSGATE_CONFIG_FRAMING_LENGTH32, l32, &size),
	    0);
	ck_assert_uint_eq(size, 4 + 0x010203);
	ck_assert_int_eq(tsgate_framing_pdu_size(TSGATE_CONFIG_FRAMING_LENGTH32,
						 l32max, &size),
			 0);
	ck_assert_uint_eq(size, 4 + (uint64_t)0xffffffff);
	ck_assert_int_eq(
	    tsgate_framing_pdu_size(TSGATE_CONFIG_FRAMING_NBT, nbt, &size), 0);
	ck_assert_uint_eq(size, 4 + 0x010203);
	ck_assert_int_eq(tsgate_framing_pdu_size(TSGATE_CONFIG_FRAMING_NBT,
						 nbt_keepalive, &size),
			 0);
	ck_assert_uint_eq(size, 4);
	ck_assert_int_eq(
	    tsgate_framing_pdu_size(TSGATE_CONFIG_FRAMING_NBT, nbt_bad, &size),
	    EPROTO);
	ck_assert_int_eq(tsgate_framing_pdu_size(TSGATE_CONFIG_FRAMING_NCACN,
						 ncacn_le, &size),
			 0);
	ck_assert_uint_eq(size, 0x48);
	ck_assert_int_eq(tsgate_framing_pdu_size(TSGATE_CONFIG_FRAMING_NCACN,
						 ncacn_be, &size),
			 0);
	ck_assert_uint_eq(size, 0x48);
	ck_assert_int_eq(tsgate_framing_pdu_size(TSGATE_CONFIG_FRAMING_NCACN,
						 ncacn_v4, &size),
			 EPROTO);
	ck_assert_int_eq(tsgate_framing_pdu_size(TSGATE_CONFIG_FRAMING_NCACN,
						 ncacn_short, &size),
			 EPROTO);
}
END_TEST

START_TEST(test_length32_whole_pdus)
{
	struct pair *p = pair_new();
	const uint8_t two[] = {0,   0, 0, 3, 'a', 'b',
			       'c', 0, 0, 0, 0, /* an empty body is a PDU too */
			       0,   0, 0, 1, 'z'};
	struct read_result *r;

	peer_write(p, two, sizeof(two));
	r = read_pdu(p, TSGATE_CONFIG_FRAMING_LENGTH32, 1024);
	assert_pdu(r, two, 7);
	r = read_pdu(p, TSGATE_CONFIG_FRAMING_LENGTH32, 1024);
	assert_pdu(r, two + 7, 4);
	r = read_pdu(p, TSGATE_CONFIG_FRAMING_LENGTH32, 1024);
	assert_pdu(r, two + 11, 5);
	peer_close(p);
	r = read_pdu(p, TSGATE_CONFIG_FRAMING_LENGTH32, 1024);
	assert_error(r, EPIPE);
}
END_TEST

struct dribble {
	int fd;
	const uint8_t *bytes;
	size_t len;
	size_t pos;
};

static void dribble_one(struct tevent_context *ev,
			struct tevent_timer *te,
			struct timeval now,
			void *private_data)
{
	struct dribble *d = private_data;

	(void)te;
	(void)now;
	ck_assert_int_eq(write(d->fd, d->bytes + d->pos, 1), 1);
	d->pos++;
	if (d->pos < d->len) {
		tevent_add_timer(ev, d, tevent_timeval_current_ofs(0, 1000),
				 dribble_one, d);
	}
}

START_TEST(test_split_writes)
{
	struct pair *p = pair_new();
	uint8_t pdu[16 + 40];
	struct dribble *d = talloc_zero(tt_mem, struct dribble);
	struct read_result *r;
	size_t i;

	/* an ncacn PDU (big-endian drep) written one byte at a time */
	memset(pdu, 0, sizeof(pdu));
	pdu[0] = 5;
	pdu[2] = 0; /* request */
	pdu[8] = 0;
	pdu[9] = sizeof(pdu);
	for (i = 16; i < sizeof(pdu); i++) {
		pdu[i] = (uint8_t)i;
	}
	d->fd = p->peer;
	d->bytes = pdu;
	d->len = sizeof(pdu);
	tevent_add_timer(tt_ev, d, tevent_timeval_current_ofs(0, 1000),
			 dribble_one, d);
	r = read_pdu(p, TSGATE_CONFIG_FRAMING_NCACN, 1024);
	assert_pdu(r, pdu, sizeof(pdu));
	ck_assert_uint_eq(d->pos, sizeof(pdu));
}
END_TEST

START_TEST(test_too_large)
{
	struct pair *p = pair_new();
	/* header says 2 MiB; only the header is sent */
	const uint8_t hdr[] = {0, 0x20, 0, 0};
	const uint8_t nbt_hdr[] = {0, 0x00, 0x04, 0x01};
	struct read_result *r;

	peer_write(p, hdr, sizeof(hdr));
	r = read_pdu(p, TSGATE_CONFIG_FRAMING_LENGTH32, 1024 * 1024);
	assert_error(r, EMSGSIZE);

	p = pair_new();
	peer_write(p, nbt_hdr, sizeof(nbt_hdr));
	r = read_pdu(p, TSGATE_CONFIG_FRAMING_NBT, 1024);
	assert_error(r, EMSGSIZE);
}
END_TEST

START_TEST(test_exact_max_pdu)
{
	struct pair *p = pair_new();
	uint8_t pdu[4 + 60];

	memset(pdu, 'x', sizeof(pdu));
	pdu[0] = 0;
	pdu[1] = 0;
	pdu[2] = 0;
	pdu[3] = 60;
	peer_write(p, pdu, sizeof(pdu));
	/* max_pdu counts the header: 64 fits, 63 does not */
	assert_pdu(read_pdu(p, TSGATE_CONFIG_FRAMING_NBT, 64), pdu,
		   sizeof(pdu));
	peer_write(p, pdu, sizeof(pdu));
	assert_error(read_pdu(p, TSGATE_CONFIG_FRAMING_NBT, 63), EMSGSIZE);
}
END_TEST

START_TEST(test_malformed)
{
	struct pair *p = pair_new();
	const uint8_t junk[] = "GET / HTTP/1.0\r\n\r\n";

	peer_write(p, junk, sizeof(junk) - 1);
	assert_error(read_pdu(p, TSGATE_CONFIG_FRAMING_NCACN, 4096), EPROTO);

	p = pair_new();
	peer_write(p, junk, sizeof(junk) - 1);
	assert_error(read_pdu(p, TSGATE_CONFIG_FRAMING_NBT, 4096), EPROTO);
}
END_TEST

START_TEST(test_truncated)
{
	struct pair *p = pair_new();
	const uint8_t part[] = {0, 0, 0, 10, 'a', 'b'};
	const uint8_t half_header[] = {0, 0};

	peer_write(p, part, sizeof(part));
	peer_close(p);
	assert_error(read_pdu(p, TSGATE_CONFIG_FRAMING_LENGTH32, 1024), EPROTO);

	p = pair_new();
	peer_write(p, half_header, sizeof(half_header));
	peer_close(p);
	assert_error(read_pdu(p, TSGATE_CONFIG_FRAMING_LENGTH32, 1024), EPROTO);
}
END_TEST

/* A stream that fails by itself: no verdict, whatever the framing. */
START_TEST(test_stream_error_is_no_verdict)
{
	const enum tsgate_config_framing framings[] = {
	    TSGATE_CONFIG_FRAMING_RAW, TSGATE_CONFIG_FRAMING_LENGTH32,
	    TSGATE_CONFIG_FRAMING_NBT, TSGATE_CONFIG_FRAMING_NCACN};
	const uint8_t half_header[] = {0, 0};
	size_t i;

	for (i = 0; i < sizeof(framings) / sizeof(framings[0]); i++) {
		struct pair *p = pair_new();
		struct read_result *r;

		/* the peer leaves with our bytes unread: a reset for us */
		ck_assert_int_eq(write(p->ours, "unread", 6), 6);
		if (framings[i] != TSGATE_CONFIG_FRAMING_RAW) {
			peer_write(p, half_header, sizeof(half_header));
		}
		peer_close(p);
		r = read_pdu(p, framings[i], 1024);
		assert_error(r, ECONNRESET);
	}
}
END_TEST

START_TEST(test_raw_chunks)
{
	struct pair *p = pair_new();
	uint8_t big[10000];
	uint8_t *got = talloc_size(tt_mem, sizeof(big));
	size_t have = 0, i;
	struct read_result *r;

	for (i = 0; i < sizeof(big); i++) {
		big[i] = (uint8_t)(i * 7);
	}
	peer_write(p, big, sizeof(big));
	peer_close(p);
	/* max_pdu bounds each raw chunk */
	while (have < sizeof(big)) {
		r = read_pdu(p, TSGATE_CONFIG_FRAMING_RAW, 4096);
		ck_assert_msg(r->ret == 0, "raw read: %s", strerror(r->err));
		ck_assert_uint_ge(r->len, 1);
		ck_assert_uint_le(r->len, 4096);
		ck_assert_uint_le(have + r->len, sizeof(big));
		memcpy(got + have, r->buf, r->len);
		have += r->len;
	}
	ck_assert_mem_eq(got, big, sizeof(big));
	assert_error(read_pdu(p, TSGATE_CONFIG_FRAMING_RAW, 4096), EPIPE);
}
END_TEST

START_TEST(test_raw_takes_pending)
{
	struct pair *p = pair_new();
	const char msg[] = "hello, world";
	struct read_result *r;

	peer_write(p, msg, sizeof(msg));
	r = read_pdu(p, TSGATE_CONFIG_FRAMING_RAW, 0);
	/* all that was pending arrives as one chunk */
	assert_pdu(r, msg, sizeof(msg));
}
END_TEST

static Suite *framing_suite(void)
{
	Suite *s = suite_create("framing");
	TCase *tc;

	tc = tt_tcase(s, "headers", 20);
	tcase_add_test(tc, test_names_and_headers);
	tcase_add_test(tc, test_header_sizes);

	tc = tt_tcase(s, "framed_reads", 20);
	tcase_add_test(tc, test_length32_whole_pdus);
	tcase_add_test(tc, test_split_writes);
	tcase_add_test(tc, test_too_large);
	tcase_add_test(tc, test_exact_max_pdu);
	tcase_add_test(tc, test_malformed);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_stream_error_is_no_verdict);

	tc = tt_tcase(s, "raw_reads", 20);
	tcase_add_test(tc, test_raw_chunks);
	tcase_add_test(tc, test_raw_takes_pending);

	return s;
}

int main(void)
{
	return tt_run_suite(framing_suite());
}
