/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of tstream_readv on BSD streams with multi-buffer vectors
 * and the read-ahead buffer behind them (tsocket_bsd_stream.c,
 * tstream_bsd_readv_once): fixed shapes from issue 13 (a first buffer
 * of at least TSTREAM_BSD_READAHEAD followed by more, while the peer has
 * a big writev outstanding), zero-length buffers, many small buffers,
 * read-ahead left over when a readv starts, EOF and resets in the middle,
 * and a seeded property test with random shapes on both sides that
 * checks every byte lands in order.
 *
 * The reader's buffers are laid out in memory in the reverse order of
 * the vector, so a byte written into the wrong buffer (or counted twice)
 * shows up as a wrong byte at its stream offset.
 */

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <check.h>
#include <talloc.h>
#include <tevent.h>

#include "tsocket.h"
#include "tt.h"
#include "tt_pair.h"

#define WAIT_MS 20000

/* The byte at stream offset i: differs between offsets 1, 256, 64 Ki. */
static uint8_t pattern(size_t i)
{
	uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ULL;

	return (uint8_t)(x >> 56) ^ (uint8_t)i;
}

/* xorshift64*: a test's random numbers, reproducible from the seed. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static size_t rnd_below(uint64_t *s, size_t n)
{
	return n == 0 ? 0 : (size_t)(rnd(s) % n);
}

/* A vector shape: the sizes of its buffers (zero-length allowed). */
struct shape {
	size_t n;
	size_t len[IOV_MAX];
};

/*
 * The writing side: one writev per shape in turn over src (the stream's
 * bytes), until total bytes went out; close_after closes (or resets) the
 * stream when done.
 */
struct writer {
	struct tstream_context *s;
	const uint8_t *src;
	size_t total;
	size_t off;
	uint64_t seed;
	size_t max_buf;
	/* one writev of everything (the big outstanding write of issue 13) */
	bool single;
	bool done;
	int err;
};

/* The reading side: readv after readv, each checked against pattern(). */
struct reader {
	struct tstream_context *s;
	uint8_t *scratch;
	size_t scratch_len;
	size_t total;
	size_t off;
	uint64_t seed;
	const struct shape *fixed;
	size_t nfixed;
	size_t next_fixed;
	size_t max_buf;
	size_t max_count;
	struct iovec iov[IOV_MAX];
	size_t count;
	size_t want;
	bool done;
	int ret;
	int err;
	char why[160];
};

/* count buffers of random sizes, many empty, some tiny, some big */
static void random_shape(uint64_t *seed,
			 size_t max_count,
			 size_t max_buf,
			 struct shape *sh)
{
	size_t i;

	sh->n = 1 + rnd_below(seed, max_count);
	for (i = 0; i < sh->n; i++) {
		switch (rnd_below(seed, 6)) {
		case 0:
			sh->len[i] = 0;
			break;
		case 1:
			sh->len[i] = 1 + rnd_below(seed, 16);
			break;
		case 2:
			/* around the read-ahead size (4 KiB) */
			sh->len[i] = 4000 + rnd_below(seed, 200);
			break;
		default:
			sh->len[i] = rnd_below(seed, max_buf + 1);
			break;
		}
	}
}

static void writer_next(struct writer *w);

static void writer_done(struct tevent_req *req)
{
	struct writer *w = tevent_req_callback_data_void(req);
	int ret = tstream_writev_recv(req, &w->err);

	TALLOC_FREE(req);
	if (ret == -1) {
		w->done = true;
		return;
	}
	w->off += (size_t)ret;
	writer_next(w);
}

static void writer_next(struct writer *w)
{
	struct shape sh;
	struct iovec iov[IOV_MAX];
	struct tevent_req *req;
	size_t i, off = w->off, sum = 0;

	if (w->off >= w->total) {
		w->done = true;
		return;
	}
	do {
		if (w->single) {
			sh.n = 1;
			sh.len[0] = w->total - w->off;
		} else {
			random_shape(&w->seed, 64, w->max_buf, &sh);
		}
		for (i = 0, sum = 0; i < sh.n; i++) {
			size_t n = sh.len[i];

			if (n > w->total - off) {
				n = w->total - off;
			}
			iov[i].iov_base = (uint8_t *)w->src + off;
			iov[i].iov_len = n;
			off += n;
			sum += n;
		}
		off = w->off;
	} while (sum == 0);
	req = tstream_writev_send(tt_mem, tt_ev, w->s, iov, sh.n);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, writer_done, w);
}

static void reader_next(struct reader *r);

static void reader_done(struct tevent_req *req)
{
	struct reader *r = tevent_req_callback_data_void(req);
	size_t i, j, pos;

	r->ret = tstream_readv_recv(req, &r->err);
	TALLOC_FREE(req);
	if (r->ret == -1) {
		r->done = true;
		return;
	}
	if ((size_t)r->ret != r->want) {
		snprintf(r->why, sizeof(r->why),
			 "readv at %zu returned %d, wanted %zu", r->off, r->ret,
			 r->want);
		r->err = EILSEQ;
		r->done = true;
		return;
	}
	pos = r->off;
	for (i = 0; i < r->count; i++) {
		const uint8_t *b = r->iov[i].iov_base;

		for (j = 0; j < r->iov[i].iov_len; j++, pos++) {
			if (b[j] != pattern(pos)) {
				snprintf(r->why, sizeof(r->why),
					 "byte %zu (buffer %zu of %zu, +%zu): "
					 "0x%02x, want 0x%02x",
					 pos, i, r->count, j, b[j],
					 pattern(pos));
				r->err = EILSEQ;
				r->done = true;
				return;
			}
		}
	}
	r->off = pos;
	reader_next(r);
}

static void reader_next(struct reader *r)
{
	struct shape sh;
	const struct shape *use;
	struct tevent_req *req;
	size_t i, end;

	if (r->off >= r->total) {
		r->done = true;
		return;
	}
	if (r->next_fixed < r->nfixed) {
		use = &r->fixed[r->next_fixed++];
	} else {
		random_shape(&r->seed, r->max_count, r->max_buf, &sh);
		use = &sh;
	}
	/* the buffers back to front in scratch, clipped to what is left */
	end = r->scratch_len;
	r->want = 0;
	for (i = 0; i < use->n; i++) {
		size_t n = use->len[i];

		if (n > r->total - r->off - r->want) {
			n = r->total - r->off - r->want;
		}
		ck_assert_uint_le(n, end);
		end -= n;
		/* a zero-length buffer may point anywhere, even NULL */
		r->iov[i].iov_base =
		    (n == 0 && (i & 1)) ? NULL : r->scratch + end;
		r->iov[i].iov_len = n;
		r->want += n;
	}
	r->count = use->n;
	if (r->want == 0) {
		/* all empty is EINVAL (test_zero_length_only checks it) */
		reader_next(r);
		return;
	}
	memset(r->scratch + end, 0xA5, r->scratch_len - end);
	req = tstream_readv_send(tt_mem, tt_ev, r->s, r->iov, r->count);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, reader_done, r);
}

/* A connected TCP pair over 127.0.0.1 (port 0: the kernel picks one). */
static void tcp_pair(int fds[2])
{
	tt_tcp_fds(fds);
}

/* Two streams over a socketpair (tcp false) or a TCP connection. */
static void stream_pair(bool tcp,
			struct tstream_context **a,
			struct tstream_context **b)
{
	int fds[2];

	if (!tcp) {
		tt_stream_pair(a, b);
		return;
	}
	tcp_pair(fds);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, fds[0], a), 0);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, fds[1], b), 0);
}

static uint8_t *make_source(size_t total)
{
	uint8_t *src = talloc_size(tt_mem, total);
	size_t i;

	ck_assert_ptr_nonnull(src);
	for (i = 0; i < total; i++) {
		src[i] = pattern(i);
	}
	return src;
}

static void reader_init(struct reader *r,
			struct tstream_context *s,
			size_t total)
{
	memset(r, 0, sizeof(*r));
	r->s = s;
	r->total = total;
	r->scratch_len = total;
	r->scratch = talloc_size(tt_mem, total);
	ck_assert_ptr_nonnull(r->scratch);
	r->max_count = 1;
	r->max_buf = 1;
}

static void assert_reader_ok(const struct reader *r)
{
	ck_assert_msg(r->err == 0, "reader at %zu: %s %s", r->off,
		      strerror(r->err), r->why);
	ck_assert_uint_eq(r->off, r->total);
}

/*
 * The reader goes through shapes[] (then random shapes) while the peer
 * has one writev of the whole stream outstanding.
 */
static void run_fixed(bool tcp, const struct shape *shapes, size_t n)
{
	struct tstream_context *a = NULL, *b = NULL;
	struct writer w = {0};
	struct reader r;
	size_t i, j, total = 0;

	for (i = 0; i < n; i++) {
		for (j = 0; j < shapes[i].n; j++) {
			total += shapes[i].len[j];
		}
	}
	stream_pair(tcp, &a, &b);
	w.s = a;
	w.src = make_source(total);
	w.total = total;
	w.single = true;
	reader_init(&r, b, total);
	r.fixed = shapes;
	r.nfixed = n;
	writer_next(&w);
	reader_next(&r);
	tt_wait(&r.done, WAIT_MS);
	assert_reader_ok(&r);
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.err, 0);
	talloc_free(a);
	talloc_free(b);
}

/*
 * Issue 13 defect 1: {77,777 B, 4 MiB - 77,764 B} with a 4 MiB writev
 * outstanding crashed (memcpy from a NULL read-ahead buffer) because the
 * bytes readv(2) put into the second buffer were booked as read-ahead.
 */
START_TEST(test_issue_shape)
{
	static struct shape sh = {2, {77777, (4 << 20) - 77764}};

	run_fixed(false, &sh, 1);
	run_fixed(true, &sh, 1);
}
END_TEST

/* First buffers at, below and above the read-ahead size, then more. */
START_TEST(test_fixed_shapes)
{
	static struct shape shapes[] = {
	    {2, {4096, 1}},
	    {2, {4096, 4096}},
	    {2, {4095, 2}},
	    {3, {4097, 0, 9}},
	    {4, {5000, 0, 0, 100000}},
	    {4, {0, 0, 4096, 1}},
	    {3, {1, 4095, 10}},
	    {3, {4095, 1, 65536}},
	    {3, {65536, 65536, 65536}},
	    {2, {1, 300000}},
	    {2, {300000, 1}},
	    {5, {0, 1, 0, 70000, 0}},
	    {1, {1}},
	    {2, {8192, 8192}},
	};
	static struct shape small[3];
	size_t i;

	/* many small buffers: 1024 of 1 byte, 1024 of 7, 1023 of 5 + 1 big */
	small[0].n = small[1].n = small[2].n = IOV_MAX;
	for (i = 0; i < IOV_MAX; i++) {
		small[0].len[i] = 1;
		small[1].len[i] = 7;
		small[2].len[i] = 5;
	}
	small[2].len[IOV_MAX - 1] = 200000;

	run_fixed(false, shapes, sizeof(shapes) / sizeof(shapes[0]));
	run_fixed(true, shapes, sizeof(shapes) / sizeof(shapes[0]));
	run_fixed(false, small, 3);
	run_fixed(true, small, 3);
}
END_TEST

static int read_vec(struct tstream_context *s, struct iovec *iov, size_t n)
{
	struct tevent_req *req;
	bool done = false;
	int ret, err = 0;

	req = tstream_readv_send(tt_mem, tt_ev, s, iov, n);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tt_set_done, &done);
	tt_wait(&done, WAIT_MS);
	ret = tstream_readv_recv(req, &err);
	talloc_free(req);
	return ret == -1 ? -err : ret;
}

static void assert_bytes(const uint8_t *b, size_t len, size_t pos)
{
	size_t i;

	/* ck_assert only on a mismatch: each one costs Check a write(2) */
	for (i = 0; i < len; i++) {
		if (b[i] != pattern(pos + i)) {
			ck_assert_msg(false, "byte %zu: 0x%02x, want 0x%02x",
				      pos + i, b[i], pattern(pos + i));
		}
	}
}

/*
 * A readv that starts while the read-ahead buffer holds bytes, with a
 * vector longer than them: read-ahead first, then the socket, in order.
 */
START_TEST(test_readahead_leftover)
{
	struct tstream_context *s = NULL;
	uint8_t *src = make_source(300000);
	uint8_t b1[10], b2[5], b3[20], *b4 = talloc_size(tt_mem, 200000);
	struct iovec iov[5];
	int fds[2];

	ck_assert_int_eq(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, fds[0], &s), 0);
	ck_assert_int_eq(write(fds[1], src, 100), 100);

	/* 10 bytes wanted, 100 there: 90 go ahead */
	iov[0] = (struct iovec){b1, sizeof(b1)};
	ck_assert_int_eq(read_vec(s, iov, 1), 10);
	assert_bytes(b1, 10, 0);
	ck_assert_int_eq(tstream_pending_bytes(s), 90);

	/* more in the socket, a vector longer than the read-ahead */
	ck_assert_int_eq(write(fds[1], src + 100, 70000), 70000);
	iov[0] = (struct iovec){b2, sizeof(b2)};
	iov[1] = (struct iovec){NULL, 0};
	iov[2] = (struct iovec){b3, sizeof(b3)};
	iov[3] = (struct iovec){b4, 65000};
	iov[4] = (struct iovec){b4 + 65000, 0};
	ck_assert_int_eq(read_vec(s, iov, 5), 65025);
	assert_bytes(b2, 5, 10);
	assert_bytes(b3, 20, 15);
	assert_bytes(b4, 65000, 35);

	/* the rest, with the read-ahead empty again and the socket not */
	iov[0] = (struct iovec){b4, 4096};
	iov[1] = (struct iovec){b4 + 4096, 70100 - 65035 - 4096};
	ck_assert_int_eq(read_vec(s, iov, 2), 70100 - 65035);
	assert_bytes(b4, 70100 - 65035, 65035);
	ck_assert_int_eq(tstream_pending_bytes(s), 0);
	close(fds[1]);
	talloc_free(s);
}
END_TEST

/*
 * EOF in the middle of a multi-buffer vector: every byte before it
 * arrives in order, the readv that crosses it fails with EPIPE, and so
 * does every later one.
 */
START_TEST(test_eof_in_vector)
{
	static const size_t sizes[] = {4096 + 10, 100, 5000, 60000};
	struct tstream_context *s = NULL;
	uint8_t *src = make_source(80000);
	uint8_t *b = talloc_size(tt_mem, 80000);
	struct iovec iov[3];
	size_t k, pos = 0;
	int fds[2];

	for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t total = sizes[k];

		ck_assert_int_eq(
		    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
		ck_assert_int_eq(
		    tstream_bsd_existing_socket(tt_mem, fds[0], &s), 0);
		ck_assert_int_eq(write(fds[1], src, total), (ssize_t)total);
		close(fds[1]);

		/* all but 3 bytes in three buffers, the first >= 4 KiB */
		pos = total - 3;
		iov[0] = (struct iovec){b, pos / 2};
		iov[1] = (struct iovec){b + pos / 2, 0};
		iov[2] = (struct iovec){b + pos / 2, pos - pos / 2};
		ck_assert_int_eq(read_vec(s, iov, 3), (int)pos);
		assert_bytes(b, pos, 0);
		/* 3 left, 4100 wanted over two buffers */
		iov[0] = (struct iovec){b, 4096};
		iov[1] = (struct iovec){b + 4096, 4};
		ck_assert_int_eq(read_vec(s, iov, 2), -EPIPE);
		assert_bytes(b, 3, pos);
		ck_assert_int_eq(read_vec(s, iov, 1), -EPIPE);
		talloc_free(s);
	}
}
END_TEST

/* A reset after some bytes: they arrive, then ECONNRESET, sticky. */
START_TEST(test_reset_in_vector)
{
	struct tstream_context *s = NULL;
	uint8_t *src = make_source(50000);
	uint8_t *b = talloc_size(tt_mem, 60000);
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct iovec iov[2];
	int fds[2];

	tcp_pair(fds);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, fds[0], &s), 0);
	ck_assert_int_eq(write(fds[1], src, 50000), 50000);
	iov[0] = (struct iovec){b, 4096};
	iov[1] = (struct iovec){b + 4096, 50000 - 4096};
	ck_assert_int_eq(read_vec(s, iov, 2), 50000);
	assert_bytes(b, 50000, 0);

	ck_assert_int_eq(
	    setsockopt(fds[1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	close(fds[1]);
	iov[0] = (struct iovec){b, 4096};
	iov[1] = (struct iovec){b + 4096, 10};
	ck_assert_int_eq(read_vec(s, iov, 2), -ECONNRESET);
	ck_assert_int_eq(read_vec(s, iov, 1), -ECONNRESET);
	talloc_free(s);
}
END_TEST

/* Vectors of only empty buffers are EINVAL, whatever the count. */
START_TEST(test_zero_length_only)
{
	struct tstream_context *a = NULL, *b = NULL;
	static struct iovec iov[IOV_MAX];
	uint8_t c = 0;

	stream_pair(false, &a, &b);
	ck_assert_int_eq(read_vec(b, iov, 1), -EINVAL);
	ck_assert_int_eq(read_vec(b, iov, IOV_MAX), -EINVAL);
	iov[0].iov_base = &c;
	ck_assert_int_eq(read_vec(b, iov, IOV_MAX), -EINVAL);
	iov[0].iov_base = NULL;
	talloc_free(a);
	talloc_free(b);
}
END_TEST

/*
 * Property: with random shapes on both sides (1..IOV_MAX buffers,
 * 0..1 MiB each, many empty), in both directions at once, every byte
 * lands in order. Each seed names its failure.
 */
static void run_random(uint64_t seed)
{
	static const size_t counts[] = {1, 3, 64, IOV_MAX};
	static const size_t bufs[] = {16, 5000, 70000, 1 << 20};
	struct tstream_context *a = NULL, *b = NULL;
	struct writer wa = {0}, wb = {0};
	struct reader ra, rb;
	uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
	size_t total = 1 + rnd_below(&s, 3 << 20);
	uint8_t *src = make_source(total);

	stream_pair((seed & 1) == 0, &a, &b);
	wa = (struct writer){.s = a,
			     .src = src,
			     .total = total,
			     .seed = rnd(&s) | 1,
			     .max_buf = bufs[rnd_below(&s, 4)]};
	wb = (struct writer){.s = b,
			     .src = src,
			     .total = total,
			     .seed = rnd(&s) | 1,
			     .max_buf = bufs[rnd_below(&s, 4)],
			     .single = rnd_below(&s, 4) == 0};
	reader_init(&rb, b, total);
	rb.seed = rnd(&s) | 1;
	rb.max_count = counts[rnd_below(&s, 4)];
	rb.max_buf = bufs[rnd_below(&s, 4)];
	reader_init(&ra, a, total);
	ra.seed = rnd(&s) | 1;
	ra.max_count = counts[rnd_below(&s, 4)];
	ra.max_buf = bufs[rnd_below(&s, 4)];

	writer_next(&wa);
	writer_next(&wb);
	reader_next(&ra);
	reader_next(&rb);
	ck_assert_msg(tt_loop_until(tt_ev, &ra.done, WAIT_MS) &&
			  tt_loop_until(tt_ev, &rb.done, WAIT_MS),
		      "seed %llu: timed out (a->b at %zu, b->a at %zu of %zu)",
		      (unsigned long long)seed, rb.off, ra.off, total);
	ck_assert_msg(ra.err == 0 && rb.err == 0,
		      "seed %llu (%zu bytes): b->a: %s %s; a->b: %s %s",
		      (unsigned long long)seed, total, strerror(ra.err), ra.why,
		      strerror(rb.err), rb.why);
	ck_assert_uint_eq(ra.off, total);
	ck_assert_uint_eq(rb.off, total);
	tt_wait(&wa.done, WAIT_MS);
	tt_wait(&wb.done, WAIT_MS);
	ck_assert_int_eq(wa.err, 0);
	ck_assert_int_eq(wb.err, 0);
	talloc_free(a);
	talloc_free(b);
	talloc_free(src);
	talloc_free(ra.scratch);
	talloc_free(rb.scratch);
}

START_TEST(test_random_shapes)
{
	/* TSOCKET_READV_SEEDS=n runs more (the default keeps CI short) */
	const char *env = getenv("TSOCKET_READV_SEEDS");
	uint64_t n = env != NULL ? strtoull(env, NULL, 10) : 12;
	uint64_t seed;

	for (seed = 1; seed <= n; seed++) {
		run_random(seed);
	}
}
END_TEST

/*
 * Samba-style PDU readers (the callers issue 13 names): a 4-byte length,
 * then the body in a vector of random shape whose first buffer is often
 * 4 KiB or more, read with tstream_readv_pdu while the writer has one big
 * writev of many PDUs outstanding.
 */
struct pdu_shape_reader {
	uint8_t hdr[4];
	uint8_t *body;
	size_t body_len;
	int step;
	uint64_t seed;
	struct iovec iov[64];
};

static int pdu_shape_next(struct tstream_context *stream,
			  void *private_data,
			  TALLOC_CTX *mem_ctx,
			  struct iovec **vector,
			  size_t *count)
{
	struct pdu_shape_reader *p = private_data;
	size_t i, n, left, off = 0;

	if (p->step++ == 0) {
		p->iov[0] = (struct iovec){p->hdr, 1};
		p->iov[1] = (struct iovec){p->hdr + 1, 0};
		p->iov[2] = (struct iovec){p->hdr + 1, 3};
		n = 3;
	} else if (p->step == 2) {
		p->body_len = (size_t)p->hdr[0] << 24 |
			      (size_t)p->hdr[1] << 16 | (size_t)p->hdr[2] << 8 |
			      p->hdr[3];
		if (p->body_len == 0) {
			*vector = NULL;
			*count = 0;
			return 0;
		}
		p->body = talloc_size(p, p->body_len);
		n = 1 + rnd_below(&p->seed, 64);
		left = p->body_len;
		for (i = 0; i < n; i++) {
			size_t len = left;

			if (i + 1 < n) {
				/* often a first buffer of 4 KiB or more */
				len = i == 0 && rnd_below(&p->seed, 2) == 0
					  ? 4096 + rnd_below(&p->seed, 70000)
					  : rnd_below(&p->seed, 9000);
				if (len > left) {
					len = left;
				}
			}
			p->iov[i] = (struct iovec){p->body + off, len};
			off += len;
			left -= len;
		}
	} else {
		*vector = NULL;
		*count = 0;
		return 0;
	}
	*vector = talloc_memdup(mem_ctx, p->iov, n * sizeof(struct iovec));
	if (*vector == NULL) {
		return -1;
	}
	*count = n;
	return 0;
}

START_TEST(test_pdu_shapes)
{
	const size_t npdu = 40;
	struct tstream_context *a = NULL, *b = NULL;
	size_t *lens = talloc_array(tt_mem, size_t, npdu);
	size_t i, total = 0, off = 0;
	uint64_t seed = 0x1234567;
	uint8_t *wire;
	struct writer w = {0};

	for (i = 0; i < npdu; i++) {
		lens[i] =
		    rnd_below(&seed, 4) == 0 ? 0 : rnd_below(&seed, 200000);
		total += 4 + lens[i];
	}
	wire = make_source(total);
	for (i = 0; i < npdu; i++) {
		/* the header over the pattern; the body is the pattern */
		wire[off] = (uint8_t)(lens[i] >> 24);
		wire[off + 1] = (uint8_t)(lens[i] >> 16);
		wire[off + 2] = (uint8_t)(lens[i] >> 8);
		wire[off + 3] = (uint8_t)lens[i];
		off += 4 + lens[i];
	}
	stream_pair(_i == 1, &a, &b);
	w = (struct writer){
	    .s = a, .src = wire, .total = total, .single = true};
	writer_next(&w);
	for (i = 0, off = 0; i < npdu; i++) {
		struct pdu_shape_reader *p =
		    talloc_zero(tt_mem, struct pdu_shape_reader);
		struct tevent_req *req;
		bool done = false;
		int ret, err = 0;

		p->seed = seed + i;
		req =
		    tstream_readv_pdu_send(tt_mem, tt_ev, b, pdu_shape_next, p);
		ck_assert_ptr_nonnull(req);
		tevent_req_set_callback(req, tt_set_done, &done);
		tt_wait(&done, WAIT_MS);
		ret = tstream_readv_pdu_recv(req, &err);
		talloc_free(req);
		ck_assert_msg(ret == (int)(4 + lens[i]), "PDU %zu: %d (%s)", i,
			      ret, strerror(err));
		ck_assert_uint_eq(p->body_len, lens[i]);
		assert_bytes(p->body, p->body_len, off + 4);
		off += 4 + lens[i];
		talloc_free(p);
	}
	tt_wait(&w.done, WAIT_MS);
	ck_assert_int_eq(w.err, 0);
	talloc_free(a);
	talloc_free(b);
}
END_TEST

static Suite *tsocket_readv_suite(void)
{
	Suite *s = suite_create("tsocket_readv");
	TCase *tc;

	tc = tt_tcase(s, "shapes", 120);
	tcase_add_test(tc, test_issue_shape);
	tcase_add_test(tc, test_fixed_shapes);
	tcase_add_test(tc, test_readahead_leftover);
	tcase_add_test(tc, test_zero_length_only);
	/* _i 0: socketpair, 1: TCP */
	tcase_add_loop_test(tc, test_pdu_shapes, 0, 2);

	tc = tt_tcase(s, "ends", 60);
	tcase_add_test(tc, test_eof_in_vector);
	tcase_add_test(tc, test_reset_in_vector);

	tc = tt_tcase(s, "random", 240);
	tcase_add_test(tc, test_random_shapes);

	return s;
}

int main(void)
{
	return tt_run_suite(tsocket_readv_suite());
}
