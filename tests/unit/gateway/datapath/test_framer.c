/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of gateway/datapath/framer.c, the cut-through framer, fed
 * by hand: headers split over 1-byte chunks, bodies ending exactly at a
 * chunk's end, empty bodies, many PDUs in one chunk, lengths at max_pdu
 * and max_pdu + 1, refused headers after good PDUs, truncation.
 */
#include <errno.h>
#include <string.h>
#include <check.h>
#include <talloc.h>

#include "tt.h"
#include "framer.h"
#include "framing.h"

#define L32   TSGATE_CONFIG_FRAMING_LENGTH32
#define NBT   TSGATE_CONFIG_FRAMING_NBT
#define NCACN TSGATE_CONFIG_FRAMING_NCACN

/* What the framer let through so far, joined, and its PDU count. */
struct out {
	uint8_t buf[256 * 1024];
	size_t len;
	uint64_t pdus;
	int err;
};

static struct out *out_new(void)
{
	struct out *o = talloc_zero(tt_mem, struct out);

	ck_assert_ptr_nonnull(o);
	return o;
}

/* Feed buf in chunks of `step` bytes (the last one shorter). */
static void feed(struct tsgate_framer *f,
		 struct out *o,
		 const uint8_t *buf,
		 size_t len,
		 size_t step)
{
	size_t off = 0;

	while (off < len && o->err == 0) {
		struct tsgate_framer_cut cut;
		size_t n = len - off < step ? len - off : step;

		tsgate_framer_feed(f, buf + off, n, &cut);
		ck_assert_uint_le(cut.len, n);
		ck_assert_uint_le(cut.held_len, TSGATE_FRAMER_MAX_HEADER);
		ck_assert_uint_le(o->len + cut.held_len + cut.len,
				  sizeof(o->buf));
		if (cut.held_len > 0) {
			memcpy(o->buf + o->len, cut.held, cut.held_len);
			o->len += cut.held_len;
		}
		memcpy(o->buf + o->len, buf + off, cut.len);
		o->len += cut.len;
		o->pdus += cut.pdus;
		o->err = cut.err;
		off += n;
	}
}

static size_t put_l32(uint8_t *p, uint32_t body_len, uint8_t fill)
{
	p[0] = (uint8_t)(body_len >> 24);
	p[1] = (uint8_t)(body_len >> 16);
	p[2] = (uint8_t)(body_len >> 8);
	p[3] = (uint8_t)body_len;
	memset(p + 4, fill, body_len);
	return 4 + body_len;
}

/* A little-endian ncacn PDU of total bytes. */
static size_t put_ncacn(uint8_t *p, uint16_t total)
{
	memset(p, 0xab, total);
	memset(p, 0, 16);
	p[0] = 5;
	p[4] = 0x10;
	p[8] = (uint8_t)total;
	p[9] = (uint8_t)(total >> 8);
	return total;
}

START_TEST(test_init)
{
	struct tsgate_framer f;

	ck_assert_int_eq(tsgate_framer_init(&f, L32, 0), 0);
	ck_assert_uint_eq(f.max_pdu, TSGATE_FRAMING_DEFAULT_MAX_PDU);
	ck_assert(tsgate_framer_at_boundary(&f));
	ck_assert_int_eq(tsgate_framer_init(&f, TSGATE_CONFIG_FRAMING_RAW, 0),
			 EINVAL);
	ck_assert_int_eq(tsgate_framer_init(&f, NCACN, 15), EINVAL);
	ck_assert_int_eq(tsgate_framer_init(&f, NCACN, 16), 0);
	ck_assert_int_eq(tsgate_framer_init(&f, L32, 3), EINVAL);
}
END_TEST

/*
 * Every framing's header arriving one byte at a time: nothing goes on
 * before the header is whole, then all of it; the same for a bad header,
 * of which nothing ever goes on.
 */
START_TEST(test_header_one_byte_at_a_time)
{
	const enum tsgate_config_framing fr[] = {L32, NBT, NCACN};
	uint8_t good[3][64], bad[3][16];
	size_t good_len[3], i, k;

	good_len[0] = put_l32(good[0], 40, 'x');
	good_len[1] = put_l32(good[1], 40, 'y'); /* NBT type 0: message */
	good_len[2] = put_ncacn(good[2], 60);
	memcpy(bad[0], "\xff\xff\xff\xff", 4); /* 4 GiB: too large */
	memcpy(bad[1], "\x42\x00\x00\x01", 4); /* no such NBT type */
	memcpy(bad[2], good[2], 16);
	bad[2][0] = 4; /* rpc_vers 4 */

	for (i = 0; i < 3; i++) {
		struct tsgate_framer f;
		struct out *o = out_new();

		ck_assert_int_eq(tsgate_framer_init(&f, fr[i], 4096), 0);
		for (k = 0; k < tsgate_framing_header_size(fr[i]) - 1; k++) {
			feed(&f, o, good[i] + k, 1, 1);
			ck_assert_uint_eq(o->len, 0);
			ck_assert(!tsgate_framer_at_boundary(&f));
		}
		/* the last header byte lets the whole header through */
		feed(&f, o, good[i] + k, 1, 1);
		ck_assert_uint_eq(o->len, k + 1);
		feed(&f, o, good[i] + k + 1, good_len[i] - k - 1, 1);
		ck_assert_uint_eq(o->len, good_len[i]);
		ck_assert_mem_eq(o->buf, good[i], good_len[i]);
		ck_assert_uint_eq(o->pdus, 1);
		ck_assert(tsgate_framer_at_boundary(&f));

		/* then a bad header, byte by byte: refused, none of it sent */
		feed(&f, o, bad[i], tsgate_framing_header_size(fr[i]), 1);
		ck_assert_int_eq(o->err, i == 0 ? EMSGSIZE : EPROTO);
		ck_assert_uint_eq(o->len, good_len[i]);
		ck_assert_uint_eq(o->pdus, 1);
	}
}
END_TEST

/*
 * A body that ends exactly at a chunk's end: the PDU counts in that
 * chunk, and the next chunk starts with a header.
 */
START_TEST(test_body_ends_at_chunk_end)
{
	struct tsgate_framer f;
	struct tsgate_framer_cut cut;
	uint8_t a[4 + 100], b[4 + 7];

	put_l32(a, 100, 'a');
	put_l32(b, 7, 'b');
	ck_assert_int_eq(tsgate_framer_init(&f, L32, 1024), 0);
	tsgate_framer_feed(&f, a, 54, &cut);
	ck_assert_uint_eq(cut.len, 54);
	ck_assert_uint_eq(cut.pdus, 0);
	tsgate_framer_feed(&f, a + 54, 50, &cut);
	ck_assert_uint_eq(cut.len, 50);
	ck_assert_uint_eq(cut.pdus, 1);
	ck_assert(tsgate_framer_at_boundary(&f));
	tsgate_framer_feed(&f, b, sizeof(b), &cut);
	ck_assert_uint_eq(cut.held_len, 0);
	ck_assert_uint_eq(cut.len, sizeof(b));
	ck_assert_uint_eq(cut.pdus, 1);
}
END_TEST

/* Header-only PDUs: an empty length32 body, an NBT keepalive. */
START_TEST(test_zero_length_bodies)
{
	const uint8_t l32[] = {0, 0, 0, 0, 0, 0, 0, 0};
	const uint8_t keepalive[] = {0x85, 0, 0, 0};
	struct tsgate_framer f;
	struct out *o = out_new();

	ck_assert_int_eq(tsgate_framer_init(&f, L32, 4), 0);
	feed(&f, o, l32, sizeof(l32), sizeof(l32));
	ck_assert_uint_eq(o->len, sizeof(l32));
	ck_assert_uint_eq(o->pdus, 2);
	ck_assert(tsgate_framer_at_boundary(&f));

	o = out_new();
	ck_assert_int_eq(tsgate_framer_init(&f, NBT, 0), 0);
	feed(&f, o, keepalive, sizeof(keepalive), 3);
	ck_assert_uint_eq(o->len, sizeof(keepalive));
	ck_assert_uint_eq(o->pdus, 1);
	ck_assert(tsgate_framer_at_boundary(&f));
}
END_TEST

/* Thousands of tiny PDUs in one chunk, and cut at every chunk size. */
START_TEST(test_many_tiny_pdus)
{
	uint8_t *buf = talloc_size(tt_mem, 5000 * 6);
	size_t len = 0, step;
	unsigned i;

	ck_assert_ptr_nonnull(buf);
	for (i = 0; i < 5000; i++) {
		len += put_l32(buf + len, i % 3, (uint8_t)i);
	}
	for (step = 1; step <= 17; step++) {
		struct tsgate_framer f;
		struct out *o = out_new();

		ck_assert_int_eq(tsgate_framer_init(&f, L32, 6), 0);
		feed(&f, o, buf, len, step == 17 ? len : step);
		ck_assert_int_eq(o->err, 0);
		ck_assert_uint_eq(o->len, len);
		ck_assert_mem_eq(o->buf, buf, len);
		ck_assert_uint_eq(o->pdus, 5000);
		ck_assert(tsgate_framer_at_boundary(&f));
	}
}
END_TEST

/*
 * max_pdu counts the header: a PDU of exactly max_pdu goes through, one
 * of max_pdu + 1 is refused with nothing of it forwarded, also when its
 * header is split and held.
 */
START_TEST(test_max_pdu_edges)
{
	uint8_t buf[4 * 1024];
	size_t one, two, step;

	one = put_l32(buf, 1020, 'm');       /* 1024: fits */
	two = put_l32(buf + one, 1021, 'n'); /* 1025: one too many */
	for (step = 1; step <= 4; step++) {
		struct tsgate_framer f;
		struct out *o = out_new();

		ck_assert_int_eq(tsgate_framer_init(&f, L32, 1024), 0);
		feed(&f, o, buf, one + two, step == 4 ? one + two : step);
		ck_assert_int_eq(o->err, EMSGSIZE);
		ck_assert_uint_eq(o->len, one);
		ck_assert_uint_eq(o->pdus, 1);
	}
}
END_TEST

/* A malformed header after good PDUs in the same chunk: cut before it. */
START_TEST(test_refused_header_mid_chunk)
{
	uint8_t buf[3 * 80];
	struct tsgate_framer f;
	struct tsgate_framer_cut cut;
	size_t len;

	len = put_ncacn(buf, 80);
	len += put_ncacn(buf + len, 70);
	memcpy(buf + len, "GET / HTTP/1.1\r\n", 16);
	ck_assert_int_eq(tsgate_framer_init(&f, NCACN, 0), 0);
	/* the first header held over from a 10-byte chunk */
	tsgate_framer_feed(&f, buf, 10, &cut);
	ck_assert_uint_eq(cut.len + cut.held_len, 0);
	tsgate_framer_feed(&f, buf + 10, len + 16 - 10, &cut);
	ck_assert_int_eq(cut.err, EPROTO);
	ck_assert_uint_eq(cut.held_len, 10);
	ck_assert_mem_eq(cut.held, buf, 10);
	ck_assert_uint_eq(cut.len, len - 10);
	ck_assert_uint_eq(cut.pdus, 2);
}
END_TEST

/* Where a stream may end: between PDUs only. */
START_TEST(test_truncation)
{
	uint8_t buf[4 + 10];
	struct tsgate_framer f;
	struct out *o = out_new();

	put_l32(buf, 10, 't');
	ck_assert_int_eq(tsgate_framer_init(&f, L32, 0), 0);
	feed(&f, o, buf, 2, 2);
	ck_assert(!tsgate_framer_at_boundary(&f)); /* in the header */
	feed(&f, o, buf + 2, 6, 6);
	ck_assert(!tsgate_framer_at_boundary(&f)); /* in the body */
	ck_assert_uint_eq(o->len, 8);
	feed(&f, o, buf + 8, 6, 6);
	ck_assert(tsgate_framer_at_boundary(&f));
	ck_assert_uint_eq(o->pdus, 1);
}
END_TEST

static Suite *framer_suite(void)
{
	Suite *s = suite_create("framer");
	TCase *tc;

	tc = tt_tcase(s, "cut", 30);
	tcase_add_test(tc, test_init);
	tcase_add_test(tc, test_header_one_byte_at_a_time);
	tcase_add_test(tc, test_body_ends_at_chunk_end);
	tcase_add_test(tc, test_zero_length_bodies);
	tcase_add_test(tc, test_many_tiny_pdus);
	tcase_add_test(tc, test_max_pdu_edges);
	tcase_add_test(tc, test_refused_header_mid_chunk);
	tcase_add_test(tc, test_truncation);
	return s;
}

int main(void)
{
	return tt_run_suite(framer_suite());
}
