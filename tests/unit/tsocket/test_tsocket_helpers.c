/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of tsocket's helpers (tsocket_helpers.c): the readv_pdu
 * engine with a length-prefixed protocol, and the tevent_queue helpers
 * for stream reads, stream writes and datagram sends. Everything runs
 * over real sockets: socketpair(2) wrapped as tstreams, unix datagram
 * sockets in a temporary directory.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <check.h>
#include <talloc.h>
#include <tevent.h>

#include "tsocket.h"
#include "tt.h"
#include "tt_pair.h"

/* Bodies above this are refused by the next_vector callback. */
#define PDU_MAX 4096

/*
 * A tstream over one end of a socketpair; the other end stays a raw fd
 * the test writes to (or closes) byte by byte.
 */
static struct tstream_context *raw_pair(int *raw_fd)
{
	struct tstream_context *stream = NULL;

	*raw_fd = tt_stream_raw_pair(tt_mem, &stream);
	return stream;
}

static void write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		ck_assert_int_gt(n, 0);
		p += n;
		len -= (size_t)n;
	}
}

static void put_pdu(int fd, const char *body)
{
	size_t len = strlen(body);
	uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
			  (uint8_t)(len >> 8), (uint8_t)len};

	write_all(fd, hdr, sizeof(hdr));
	write_all(fd, body, len);
}

/* Run the event loop for ms milliseconds. */
static void loop_for(unsigned ms)
{
	tt_run_for(tt_ev, ms);
}

/*
 * next_vector for "4-byte big-endian length + body".
 */

struct pdu {
	uint8_t hdr[4];
	uint8_t *body;
	size_t body_len;
	int step;
	int calls;
	/* Temporary vector contexts handed to us / freed since. */
	int vector_ctxs;
	int vector_ctxs_freed;
	int fail_with;
};

static int vector_marker_destructor(int **pfreed)
{
	(**pfreed)++;
	return 0;
}

static int pdu_next_vector(struct tstream_context *stream,
			   void *private_data,
			   TALLOC_CTX *mem_ctx,
			   struct iovec **vector,
			   size_t *count)
{
	struct pdu *p = private_data;
	struct iovec *v;
	int **marker;
	uint32_t len;

	p->calls++;
	if (p->fail_with != 0) {
		errno = p->fail_with;
		return -1;
	}

	/* What the last step allocated on mem_ctx is gone by now. */
	ck_assert_int_eq(p->vector_ctxs_freed, p->vector_ctxs);
	p->vector_ctxs++;
	marker = talloc(mem_ctx, int *);
	ck_assert_ptr_nonnull(marker);
	*marker = &p->vector_ctxs_freed;
	talloc_set_destructor(marker, vector_marker_destructor);

	switch (p->step) {
	case 0:
		v = talloc(mem_ctx, struct iovec);
		ck_assert_ptr_nonnull(v);
		v->iov_base = p->hdr;
		v->iov_len = sizeof(p->hdr);
		p->step = 1;
		*vector = v;
		*count = 1;
		return 0;
	case 1:
		len = ((uint32_t)p->hdr[0] << 24) |
		      ((uint32_t)p->hdr[1] << 16) | ((uint32_t)p->hdr[2] << 8) |
		      p->hdr[3];
		if (len > PDU_MAX) {
			errno = EMSGSIZE;
			return -1;
		}
		p->step = 2;
		if (len == 0) {
			*vector = NULL;
			*count = 0;
			return 0;
		}
		/* The body outlives the read: it is ours, not mem_ctx's. */
		p->body = talloc_zero_size(p, len + 1);
		ck_assert_ptr_nonnull(p->body);
		p->body_len = len;
		v = talloc(mem_ctx, struct iovec);
		ck_assert_ptr_nonnull(v);
		v->iov_base = p->body;
		v->iov_len = len;
		*vector = v;
		*count = 1;
		return 0;
	default:
		*vector = NULL;
		*count = 0;
		return 0;
	}
}

static struct pdu *pdu_new(TALLOC_CTX *mem_ctx)
{
	struct pdu *p = talloc_zero(mem_ctx, struct pdu);

	ck_assert_ptr_nonnull(p);
	return p;
}

struct res {
	bool done;
	int ret;
	int err;
	int *order;
	int *norder;
	int id;
};

static void res_pdu_done(struct tevent_req *req)
{
	struct res *r = tevent_req_callback_data_void(req);

	r->ret = tstream_readv_pdu_recv(req, &r->err);
	r->done = true;
	talloc_free(req);
}

static struct tevent_req *start_pdu(struct tstream_context *stream,
				    struct pdu *p,
				    struct res *r)
{
	struct tevent_req *req;

	*r = (struct res){.ret = -2};
	req = tstream_readv_pdu_send(tt_mem, tt_ev, stream, pdu_next_vector, p);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, res_pdu_done, r);
	return req;
}

#define assert_failed(r, e)                                                 \
	do {                                                                \
		tt_wait(&(r).done, TT_DEADLINE_MS);                         \
		ck_assert_int_eq((r).ret, -1);                              \
		ck_assert_msg((r).err == (e), "errno %d (%s), expected %s", \
			      (r).err, strerror((r).err), #e);              \
	} while (0)

#define assert_ok(r, n)                                                        \
	do {                                                                   \
		tt_wait(&(r).done, TT_DEADLINE_MS);                            \
		ck_assert_msg((r).ret == (n), "ret %d errno %d (%s)", (r).ret, \
			      (r).err, strerror((r).err));                     \
	} while (0)

/*
 * TCase readv_pdu
 */

START_TEST(test_pdu_several)
{
	static const char *const bodies[] = {"first", "the second one", "3"};
	struct tstream_context *stream;
	struct res r;
	int raw;
	size_t i;

	stream = raw_pair(&raw);
	for (i = 0; i < 3; i++) {
		put_pdu(raw, bodies[i]);
	}

	for (i = 0; i < 3; i++) {
		struct pdu *p = pdu_new(tt_mem);

		start_pdu(stream, p, &r);
		assert_ok(r, (int)(4 + strlen(bodies[i])));
		ck_assert_uint_eq(p->body_len, strlen(bodies[i]));
		ck_assert_str_eq((char *)p->body, bodies[i]);
		/* header step, body step, "complete" step */
		ck_assert_int_eq(p->calls, 3);
		ck_assert_int_eq(p->vector_ctxs, 3);
		ck_assert_int_eq(p->vector_ctxs_freed, 3);
	}
	close(raw);
}
END_TEST

struct dribble {
	int fd;
	const uint8_t *data;
	size_t len;
	size_t off;
	bool finished;
};

/* Write one byte per timer tick: the reader sees the PDU piecemeal. */
static void dribble_tick(struct tevent_context *ev,
			 struct tevent_timer *te,
			 struct timeval now,
			 void *private_data)
{
	struct dribble *d = private_data;

	write_all(d->fd, d->data + d->off, 1);
	d->off++;
	if (d->off == d->len) {
		d->finished = true;
		return;
	}
	te = tevent_add_timer(ev, d, tevent_timeval_current_ofs(0, 1000),
			      dribble_tick, d);
	ck_assert_ptr_nonnull(te);
}

START_TEST(test_pdu_piecemeal)
{
	static const uint8_t wire[] = {0,   0,   0,   11,  'h', 'e', 'l', 'l',
				       'o', ' ', 'w', 'o', 'r', 'l', 'd'};
	struct tstream_context *stream;
	struct dribble *d;
	struct pdu *p;
	struct res r;
	int raw;

	stream = raw_pair(&raw);
	d = talloc_zero(tt_mem, struct dribble);
	d->fd = raw;
	d->data = wire;
	d->len = sizeof(wire);
	ck_assert_ptr_nonnull(tevent_add_timer(
	    tt_ev, d, tevent_timeval_current_ofs(0, 0), dribble_tick, d));

	p = pdu_new(tt_mem);
	start_pdu(stream, p, &r);
	tt_wait(&r.done, TT_DEADLINE_MS);
	/* It cannot finish before the last byte was written. */
	ck_assert(d->finished);
	ck_assert_int_eq(r.ret, (int)sizeof(wire));
	ck_assert_str_eq((char *)p->body, "hello world");
	close(raw);
}
END_TEST

START_TEST(test_pdu_next_vector_error)
{
	static const uint8_t too_big[] = {0, 1, 0, 0};
	struct tstream_context *stream;
	struct pdu *p;
	struct res r;
	int raw;

	stream = raw_pair(&raw);

	/* An error on the very first call. */
	p = pdu_new(tt_mem);
	p->fail_with = ENOSPC;
	start_pdu(stream, p, &r);
	ck_assert(!r.done);
	assert_failed(r, ENOSPC);

	/* An error after the header was read (length 65536 > PDU_MAX). */
	write_all(raw, too_big, sizeof(too_big));
	p = pdu_new(tt_mem);
	start_pdu(stream, p, &r);
	assert_failed(r, EMSGSIZE);
	ck_assert_int_eq(p->vector_ctxs, p->vector_ctxs_freed);
	close(raw);
}
END_TEST

static int nv_complete_at_once(struct tstream_context *stream,
			       void *private_data,
			       TALLOC_CTX *mem_ctx,
			       struct iovec **vector,
			       size_t *count)
{
	*vector = NULL;
	*count = 0;
	return 0;
}

static int nv_fail_without_errno(struct tstream_context *stream,
				 void *private_data,
				 TALLOC_CTX *mem_ctx,
				 struct iovec **vector,
				 size_t *count)
{
	errno = 0;
	return -1;
}

START_TEST(test_pdu_edge_callbacks)
{
	struct tstream_context *stream;
	struct tevent_req *req;
	struct res r;
	int raw;

	stream = raw_pair(&raw);

	r = (struct res){.ret = -2};
	req = tstream_readv_pdu_send(tt_mem, tt_ev, stream, nv_complete_at_once,
				     NULL);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, res_pdu_done, &r);
	ck_assert(!r.done);
	assert_ok(r, 0);

	r = (struct res){.ret = -2};
	req = tstream_readv_pdu_send(tt_mem, tt_ev, stream,
				     nv_fail_without_errno, NULL);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, res_pdu_done, &r);
	assert_failed(r, EIO);

	r = (struct res){.ret = -2};
	req = tstream_readv_pdu_send(tt_mem, tt_ev, stream, NULL, NULL);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, res_pdu_done, &r);
	assert_failed(r, EINVAL);
	close(raw);
}
END_TEST

/*
 * A next_vector that scatters: the 4-byte header into 4 one-byte entries,
 * then the body into 7-byte pieces (many entries, heap-copied by the
 * generic layer).
 */
struct scatter {
	uint8_t hdr[4];
	char body[64];
	size_t len;
	int step;
};

static int scatter_next_vector(struct tstream_context *stream,
			       void *private_data,
			       TALLOC_CTX *mem_ctx,
			       struct iovec **vector,
			       size_t *count)
{
	struct scatter *sc = private_data;
	struct iovec *v;
	size_t i, n;

	switch (sc->step++) {
	case 0:
		v = talloc_array(mem_ctx, struct iovec, 4);
		ck_assert_ptr_nonnull(v);
		for (i = 0; i < 4; i++) {
			v[i].iov_base = &sc->hdr[i];
			v[i].iov_len = 1;
		}
		*vector = v;
		*count = 4;
		return 0;
	case 1:
		sc->len = sc->hdr[3];
		ck_assert_uint_lt(sc->len, sizeof(sc->body));
		n = (sc->len + 6) / 7;
		v = talloc_array(mem_ctx, struct iovec, n);
		ck_assert_ptr_nonnull(v);
		for (i = 0; i < n; i++) {
			v[i].iov_base = sc->body + 7 * i;
			v[i].iov_len = i + 1 < n ? 7 : sc->len - 7 * i;
		}
		*vector = v;
		*count = n;
		return 0;
	default:
		*vector = NULL;
		*count = 0;
		return 0;
	}
}

/* More than the 1024 entries readv accepts: the PDU fails EMSGSIZE. */
static int huge_next_vector(struct tstream_context *stream,
			    void *private_data,
			    TALLOC_CTX *mem_ctx,
			    struct iovec **vector,
			    size_t *count)
{
	static uint8_t byte;
	struct iovec *v;
	size_t i;

	v = talloc_array(mem_ctx, struct iovec, 1025);
	ck_assert_ptr_nonnull(v);
	for (i = 0; i < 1025; i++) {
		v[i].iov_base = &byte;
		v[i].iov_len = 1;
	}
	*vector = v;
	*count = 1025;
	return 0;
}

START_TEST(test_pdu_scattered_vectors)
{
	static const char body[] = "a body of forty-one bytes, cut in pieces";
	struct tstream_context *stream;
	struct tevent_req *req;
	struct scatter *sc;
	struct res r;
	int raw;

	stream = raw_pair(&raw);
	put_pdu(raw, body);
	sc = talloc_zero(tt_mem, struct scatter);
	r = (struct res){.ret = -2};
	req = tstream_readv_pdu_send(tt_mem, tt_ev, stream, scatter_next_vector,
				     sc);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, res_pdu_done, &r);
	assert_ok(r, (int)(4 + strlen(body)));
	ck_assert_uint_eq(sc->len, strlen(body));
	ck_assert(memcmp(sc->body, body, sc->len) == 0);

	r = (struct res){.ret = -2};
	req = tstream_readv_pdu_send(tt_mem, tt_ev, stream, huge_next_vector,
				     NULL);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, res_pdu_done, &r);
	assert_failed(r, EMSGSIZE);
	close(raw);
}
END_TEST

START_TEST(test_pdu_eof)
{
	static const uint8_t cut[] = {0, 0, 0, 10, 'a', 'b', 'c'};
	struct tstream_context *stream;
	struct pdu *p;
	struct res r;
	int raw;

	/* EOF in the middle of the body. */
	stream = raw_pair(&raw);
	write_all(raw, cut, sizeof(cut));
	close(raw);
	p = pdu_new(tt_mem);
	start_pdu(stream, p, &r);
	assert_failed(r, EPIPE);
	ck_assert_int_eq(p->vector_ctxs, p->vector_ctxs_freed);
	talloc_free(stream);

	/* EOF in the middle of the header. */
	stream = raw_pair(&raw);
	write_all(raw, cut, 2);
	close(raw);
	p = pdu_new(tt_mem);
	start_pdu(stream, p, &r);
	assert_failed(r, EPIPE);
}
END_TEST

START_TEST(test_pdu_empty_body)
{
	static const uint8_t empty[] = {0, 0, 0, 0};
	struct tstream_context *stream;
	struct pdu *p;
	struct res r;
	int raw;

	stream = raw_pair(&raw);
	write_all(raw, empty, sizeof(empty));
	put_pdu(raw, "next");
	p = pdu_new(tt_mem);
	start_pdu(stream, p, &r);
	assert_ok(r, 4);
	ck_assert_ptr_null(p->body);

	/* The stream is positioned at the next PDU. */
	p = pdu_new(tt_mem);
	start_pdu(stream, p, &r);
	assert_ok(r, 8);
	ck_assert_str_eq((char *)p->body, "next");
	close(raw);
}
END_TEST

START_TEST(test_pdu_free_outstanding)
{
	struct tstream_context *stream;
	struct tevent_req *req;
	struct pdu *p;
	struct res r;
	int raw;

	stream = raw_pair(&raw);
	p = pdu_new(tt_mem);
	req = start_pdu(stream, p, &r);
	loop_for(20);
	ck_assert(!r.done);
	talloc_free(req);
	ck_assert_int_eq(p->vector_ctxs, p->vector_ctxs_freed);

	/* The stream can be read again. */
	put_pdu(raw, "after");
	p = pdu_new(tt_mem);
	start_pdu(stream, p, &r);
	assert_ok(r, 9);
	ck_assert_str_eq((char *)p->body, "after");
	close(raw);
}
END_TEST

/*
 * TCase readv_pdu_queue
 */

#define NQ 6

struct qres {
	bool done;
	int ret;
	int err;
	int id;
	int *order;
	int *norder;
};

static void qres_pdu_done(struct tevent_req *req)
{
	struct qres *r = tevent_req_callback_data_void(req);

	r->ret = tstream_readv_pdu_queue_recv(req, &r->err);
	r->done = true;
	r->order[(*r->norder)++] = r->id;
	talloc_free(req);
}

START_TEST(test_pdu_queue_order)
{
	struct tstream_context *stream;
	struct tevent_queue *queue;
	struct tevent_req *reqs[NQ];
	struct pdu *p[NQ];
	struct qres r[NQ];
	int order[NQ];
	int norder = 0;
	char body[32];
	int raw;
	int i;

	stream = raw_pair(&raw);
	queue = tevent_queue_create(tt_mem, "pdu_queue");
	ck_assert_ptr_nonnull(queue);

	for (i = 0; i < NQ; i++) {
		p[i] = pdu_new(tt_mem);
		r[i] = (struct qres){
		    .ret = -2, .id = i, .order = order, .norder = &norder};
		reqs[i] = tstream_readv_pdu_queue_send(
		    tt_mem, tt_ev, stream, queue, pdu_next_vector, p[i]);
		ck_assert_ptr_nonnull(reqs[i]);
		tevent_req_set_callback(reqs[i], qres_pdu_done, &r[i]);
	}
	/* Cancel a waiting one in the middle. */
	talloc_free(reqs[2]);

	/* PDUs trickle in after the reads were queued. */
	loop_for(20);
	for (i = 0; i < NQ - 1; i++) {
		snprintf(body, sizeof(body), "pdu number %d", i);
		put_pdu(raw, body);
	}

	for (i = 0; i < NQ; i++) {
		int want;

		if (i == 2) {
			continue;
		}
		tt_wait(&r[i].done, TT_DEADLINE_MS);
		/* Request i got the i-th PDU still on the wire. */
		want = i < 2 ? i : i - 1;
		snprintf(body, sizeof(body), "pdu number %d", want);
		ck_assert_int_eq(r[i].ret, (int)(4 + strlen(body)));
		ck_assert_str_eq((char *)p[i]->body, body);
	}
	ck_assert(!r[2].done);
	ck_assert_int_eq(p[2]->calls, 0);
	ck_assert_int_eq(norder, NQ - 1);
	ck_assert_int_eq(order[0], 0);
	ck_assert_int_eq(order[1], 1);
	ck_assert_int_eq(order[2], 3);
	ck_assert_int_eq(order[3], 4);
	ck_assert_int_eq(order[4], 5);
	close(raw);
}
END_TEST

START_TEST(test_pdu_queue_timeout)
{
	struct tstream_context *stream;
	struct tevent_queue *queue;
	struct tevent_req *reqs[2];
	struct pdu *p[2];
	struct qres r[2];
	int order[2];
	int norder = 0;
	int raw;
	int i;

	stream = raw_pair(&raw);
	queue = tevent_queue_create(tt_mem, "pdu_queue");
	ck_assert_ptr_nonnull(queue);

	for (i = 0; i < 2; i++) {
		p[i] = pdu_new(tt_mem);
		r[i] = (struct qres){
		    .ret = -2, .id = i, .order = order, .norder = &norder};
		reqs[i] = tstream_readv_pdu_queue_send(
		    tt_mem, tt_ev, stream, queue, pdu_next_vector, p[i]);
		ck_assert_ptr_nonnull(reqs[i]);
		tevent_req_set_callback(reqs[i], qres_pdu_done, &r[i]);
	}
	/* The first one gives up waiting; its result is not received yet. */
	tevent_req_set_callback(reqs[0], tt_set_done, &r[0].done);
	ck_assert(tevent_req_set_endtime(reqs[0], tt_ev,
					 tevent_timeval_current_ofs(0, 20000)));
	tt_wait(&r[0].done, TT_DEADLINE_MS);

	/* The next one gets the stream anyway, not EBUSY. */
	put_pdu(raw, "for the second");
	tt_wait(&r[1].done, TT_DEADLINE_MS);
	ck_assert_int_eq(r[1].ret, 4 + 14);
	ck_assert_str_eq((char *)p[1]->body, "for the second");

	ck_assert_int_eq(tstream_readv_pdu_queue_recv(reqs[0], &r[0].err), -1);
	ck_assert_int_eq(r[0].err, ETIMEDOUT);
	talloc_free(reqs[0]);
	close(raw);
}
END_TEST

/*
 * TCase writev_queue
 */

#define NW 50

static void qres_writev_done(struct tevent_req *req)
{
	struct qres *r = tevent_req_callback_data_void(req);

	r->ret = tstream_writev_queue_recv(req, &r->err);
	r->done = true;
	r->order[(*r->norder)++] = r->id;
	talloc_free(req);
}

static size_t read_available(int fd, char *buf, size_t size, size_t want)
{
	size_t got = 0;
	int spins = 0;

	while (got < want && spins < 5000) {
		ssize_t n = recv(fd, buf + got, size - got, MSG_DONTWAIT);

		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		ck_assert(n == -1 && (errno == EAGAIN || errno == EINTR));
		usleep(1000);
		spins++;
	}
	return got;
}

static void run_writev_queue(int cancel)
{
	struct tstream_context *stream;
	struct tevent_queue *queue;
	struct tevent_req *reqs[NW];
	struct qres r[NW];
	char *msgs[NW];
	int order[NW];
	int norder = 0;
	char *expect;
	char buf[4096];
	size_t got;
	int raw;
	int i;
	int n;

	stream = raw_pair(&raw);
	queue = tevent_queue_create(tt_mem, "writev_queue");
	ck_assert_ptr_nonnull(queue);
	expect = talloc_strdup(tt_mem, "");

	for (i = 0; i < NW; i++) {
		/* Two iovecs each; the vector array itself is on the stack. */
		struct iovec iov[2];

		msgs[i] = talloc_asprintf(tt_mem, "message %02d;", i);
		iov[0].iov_base = msgs[i];
		iov[0].iov_len = 8;
		iov[1].iov_base = msgs[i] + 8;
		iov[1].iov_len = strlen(msgs[i]) - 8;
		r[i] = (struct qres){
		    .ret = -2, .id = i, .order = order, .norder = &norder};
		reqs[i] = tstream_writev_queue_send(tt_mem, tt_ev, stream,
						    queue, iov, 2);
		ck_assert_ptr_nonnull(reqs[i]);
		tevent_req_set_callback(reqs[i], qres_writev_done, &r[i]);
		if (i != cancel) {
			expect = talloc_strdup_append(expect, msgs[i]);
		}
	}
	if (cancel >= 0) {
		talloc_free(reqs[cancel]);
	}

	n = cancel >= 0 ? NW - 1 : NW;
	for (i = 0; i < NW; i++) {
		if (i == cancel) {
			continue;
		}
		tt_wait(&r[i].done, TT_DEADLINE_MS);
		ck_assert_int_eq(r[i].ret, (int)strlen(msgs[i]));
	}
	ck_assert_int_eq(norder, n);
	for (i = 1; i < n; i++) {
		ck_assert_int_lt(order[i - 1], order[i]);
	}

	got = read_available(raw, buf, sizeof(buf), strlen(expect));
	ck_assert_uint_eq(got, strlen(expect));
	ck_assert(memcmp(buf, expect, got) == 0);
	close(raw);
}

START_TEST(test_writev_queue_order)
{
	run_writev_queue(-1);
}
END_TEST

START_TEST(test_writev_queue_cancel_middle)
{
	run_writev_queue(NW / 2);
}
END_TEST

START_TEST(test_writev_queue_errors)
{
	struct tstream_context *stream;
	struct tevent_queue *queue;
	struct tevent_req *req;
	struct iovec iov = {.iov_base = (void *)"x", .iov_len = 1};
	int order[4];
	int norder = 0;
	struct qres r = {.ret = -2, .order = order, .norder = &norder};
	int raw;

	stream = raw_pair(&raw);
	queue = tevent_queue_create(tt_mem, "writev_queue");
	ck_assert_ptr_nonnull(queue);

	req = tstream_writev_queue_send(tt_mem, tt_ev, stream, queue, &iov, 0);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, qres_writev_done, &r);
	assert_failed(r, EINVAL);

	/* The queue is not blocked by the failed entry. */
	r = (struct qres){.ret = -2, .order = order, .norder = &norder};
	req = tstream_writev_queue_send(tt_mem, tt_ev, stream, queue, &iov, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, qres_writev_done, &r);
	assert_ok(r, 1);

	/* Peer gone: the error of the write comes through. */
	close(raw);
	r = (struct qres){.ret = -2, .order = order, .norder = &norder};
	req = tstream_writev_queue_send(tt_mem, tt_ev, stream, queue, &iov, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, qres_writev_done, &r);
	tt_wait(&r.done, TT_DEADLINE_MS);
	ck_assert_int_eq(r.ret, -1);
	ck_assert_msg(r.err == EPIPE || r.err == ECONNRESET, "errno %d (%s)",
		      r.err, strerror(r.err));
}
END_TEST

/*
 * TCase sendto_queue
 */

#define ND 20

static void qres_sendto_done(struct tevent_req *req)
{
	struct qres *r = tevent_req_callback_data_void(req);

	r->ret = (int)tdgram_sendto_queue_recv(req, &r->err);
	r->done = true;
	r->order[(*r->norder)++] = r->id;
	talloc_free(req);
}

struct dgram_sink {
	struct tdgram_context *dgram;
	char **got;
	int ngot;
	int want;
	bool done;
	int err;
};

static void sink_recv_done(struct tevent_req *req);

static void sink_next(struct dgram_sink *s)
{
	struct tevent_req *req;

	req = tdgram_recvfrom_send(s, tt_ev, s->dgram);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, sink_recv_done, s);
}

static void sink_recv_done(struct tevent_req *req)
{
	struct dgram_sink *s = tevent_req_callback_data_void(req);
	uint8_t *buf = NULL;
	ssize_t n;

	n = tdgram_recvfrom_recv(req, &s->err, s, &buf, NULL);
	talloc_free(req);
	if (n == -1) {
		s->done = true;
		return;
	}
	s->got[s->ngot] = talloc_strndup(s, (char *)buf, (size_t)n);
	talloc_free(buf);
	s->ngot++;
	if (s->ngot == s->want) {
		s->done = true;
		return;
	}
	sink_next(s);
}

static void run_sendto_queue(int cancel)
{
	char *dir;
	struct tsocket_address *rx_addr, *tx_addr;
	struct tdgram_context *tx;
	struct dgram_sink *sink;
	struct tevent_queue *queue;
	struct tevent_req *reqs[ND];
	struct qres r[ND];
	char *msgs[ND];
	int order[ND];
	int norder = 0;
	int ret;
	int i, j;

	dir = tt_mkdtemp(tt_mem);
	ck_assert_ptr_nonnull(dir);

	sink = talloc_zero(tt_mem, struct dgram_sink);
	sink->want = cancel >= 0 ? ND - 1 : ND;
	sink->got = talloc_zero_array(sink, char *, ND);
	ret = tsocket_address_unix_from_path(
	    tt_mem, talloc_asprintf(tt_mem, "%s/rx", dir), &rx_addr);
	ck_assert_int_eq(ret, 0);
	ret = tsocket_address_unix_from_path(
	    tt_mem, talloc_asprintf(tt_mem, "%s/tx", dir), &tx_addr);
	ck_assert_int_eq(ret, 0);
	ret = tdgram_unix_socket(rx_addr, NULL, sink, &sink->dgram);
	ck_assert_int_eq(ret, 0);
	ret = tdgram_unix_socket(tx_addr, NULL, tt_mem, &tx);
	ck_assert_int_eq(ret, 0);
	sink_next(sink);

	queue = tevent_queue_create(tt_mem, "sendto_queue");
	ck_assert_ptr_nonnull(queue);
	for (i = 0; i < ND; i++) {
		msgs[i] = talloc_asprintf(tt_mem, "datagram %d", i);
		r[i] = (struct qres){
		    .ret = -2, .id = i, .order = order, .norder = &norder};
		reqs[i] = tdgram_sendto_queue_send(tt_mem, tt_ev, tx, queue,
						   (const uint8_t *)msgs[i],
						   strlen(msgs[i]), rx_addr);
		ck_assert_ptr_nonnull(reqs[i]);
		tevent_req_set_callback(reqs[i], qres_sendto_done, &r[i]);
	}
	if (cancel >= 0) {
		talloc_free(reqs[cancel]);
	}

	for (i = 0; i < ND; i++) {
		if (i == cancel) {
			continue;
		}
		tt_wait(&r[i].done, TT_DEADLINE_MS);
		ck_assert_int_eq(r[i].ret, (int)strlen(msgs[i]));
	}
	ck_assert_int_eq(norder, sink->want);
	for (i = 1; i < norder; i++) {
		ck_assert_int_lt(order[i - 1], order[i]);
	}

	/* Boundaries and order kept on the wire, the cancelled one absent. */
	tt_wait(&sink->done, TT_DEADLINE_MS);
	ck_assert_int_eq(sink->ngot, sink->want);
	for (i = 0, j = 0; i < ND; i++) {
		if (i == cancel) {
			continue;
		}
		ck_assert_str_eq(sink->got[j], msgs[i]);
		j++;
	}

	talloc_free(sink);
	talloc_free(tx);
	tt_rmtree(dir);
}

START_TEST(test_sendto_queue_order)
{
	run_sendto_queue(-1);
}
END_TEST

START_TEST(test_sendto_queue_cancel_middle)
{
	run_sendto_queue(ND / 2);
}
END_TEST

START_TEST(test_sendto_queue_error_in_middle)
{
	struct tsocket_address *rx_addr, *tx_addr, *nowhere;
	struct tdgram_context *tx;
	struct dgram_sink *sink;
	struct tevent_queue *queue;
	struct tevent_req *req;
	struct qres r[3];
	int order[3];
	int norder = 0;
	char *dir = tt_mkdtemp(tt_mem);
	int i;

	ck_assert_ptr_nonnull(dir);
	ck_assert_int_eq(
	    tsocket_address_unix_from_path(
		tt_mem, talloc_asprintf(tt_mem, "%s/rx", dir), &rx_addr),
	    0);
	ck_assert_int_eq(
	    tsocket_address_unix_from_path(
		tt_mem, talloc_asprintf(tt_mem, "%s/tx", dir), &tx_addr),
	    0);
	ck_assert_int_eq(tsocket_address_unix_from_path(
			     tt_mem,
			     talloc_asprintf(tt_mem, "%s/nobody-here", dir),
			     &nowhere),
			 0);
	sink = talloc_zero(tt_mem, struct dgram_sink);
	sink->want = 2;
	sink->got = talloc_zero_array(sink, char *, 2);
	ck_assert_int_eq(tdgram_unix_socket(rx_addr, NULL, sink, &sink->dgram),
			 0);
	ck_assert_int_eq(tdgram_unix_socket(tx_addr, NULL, tt_mem, &tx), 0);
	sink_next(sink);
	queue = tevent_queue_create(tt_mem, "sendto_queue");
	ck_assert_ptr_nonnull(queue);

	for (i = 0; i < 3; i++) {
		r[i] = (struct qres){
		    .ret = -2, .id = i, .order = order, .norder = &norder};
		req = tdgram_sendto_queue_send(tt_mem, tt_ev, tx, queue,
					       (const uint8_t *)"dgram", 5,
					       i == 1 ? nowhere : rx_addr);
		ck_assert_ptr_nonnull(req);
		tevent_req_set_callback(req, qres_sendto_done, &r[i]);
	}
	for (i = 0; i < 3; i++) {
		tt_wait(&r[i].done, TT_DEADLINE_MS);
	}
	ck_assert_int_eq(r[0].ret, 5);
	/* The kernel's word for a missing socket file comes through... */
	ck_assert_int_eq(r[1].ret, -1);
	ck_assert_msg(r[1].err == ENOENT || r[1].err == ECONNREFUSED,
		      "errno %d (%s)", r[1].err, strerror(r[1].err));
	/* ...and the queue goes on behind it, in order. */
	ck_assert_int_eq(r[2].ret, 5);
	ck_assert_int_eq(norder, 3);
	ck_assert_int_eq(order[0], 0);
	ck_assert_int_eq(order[1], 1);
	ck_assert_int_eq(order[2], 2);
	tt_wait(&sink->done, TT_DEADLINE_MS);
	ck_assert_int_eq(sink->ngot, 2);

	talloc_free(sink);
	talloc_free(tx);
	tt_rmtree(dir);
}
END_TEST

START_TEST(test_sendto_queue_len0)
{
	struct tsocket_address *addr;
	struct tdgram_context *tx;
	struct tevent_queue *queue;
	struct tevent_req *req;
	char *dir = tt_mkdtemp(tt_mem);
	int order[1];
	int norder = 0;
	struct qres r = {.ret = -2, .order = order, .norder = &norder};

	ck_assert_ptr_nonnull(dir);
	ck_assert_int_eq(
	    tsocket_address_unix_from_path(
		tt_mem, talloc_asprintf(tt_mem, "%s/tx", dir), &addr),
	    0);
	ck_assert_int_eq(tdgram_unix_socket(addr, NULL, tt_mem, &tx), 0);
	queue = tevent_queue_create(tt_mem, "sendto_queue");
	ck_assert_ptr_nonnull(queue);

	req = tdgram_sendto_queue_send(tt_mem, tt_ev, tx, queue,
				       (const uint8_t *)"x", 0, addr);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, qres_sendto_done, &r);
	assert_failed(r, EINVAL);
	tt_rmtree(dir);
}
END_TEST

static Suite *tsocket_helpers_suite(void)
{
	Suite *s = suite_create("tsocket_helpers");
	TCase *tc;

	tc = tt_tcase(s, "readv_pdu", 20);
	tcase_add_test(tc, test_pdu_several);
	tcase_add_test(tc, test_pdu_piecemeal);
	tcase_add_test(tc, test_pdu_next_vector_error);
	tcase_add_test(tc, test_pdu_eof);
	tcase_add_test(tc, test_pdu_empty_body);
	tcase_add_test(tc, test_pdu_edge_callbacks);
	tcase_add_test(tc, test_pdu_scattered_vectors);
	tcase_add_test(tc, test_pdu_free_outstanding);

	tc = tt_tcase(s, "readv_pdu_queue", 20);
	tcase_add_test(tc, test_pdu_queue_order);
	tcase_add_test(tc, test_pdu_queue_timeout);

	tc = tt_tcase(s, "writev_queue", 20);
	tcase_add_test(tc, test_writev_queue_order);
	tcase_add_test(tc, test_writev_queue_cancel_middle);
	tcase_add_test(tc, test_writev_queue_errors);

	tc = tt_tcase(s, "sendto_queue", 20);
	tcase_add_unchecked_fixture(tc, tt_scratch_setup, tt_scratch_teardown);
	tcase_add_test(tc, test_sendto_queue_order);
	tcase_add_test(tc, test_sendto_queue_cancel_middle);
	tcase_add_test(tc, test_sendto_queue_len0);
	tcase_add_test(tc, test_sendto_queue_error_in_middle);

	return s;
}

int main(void)
{
	return tt_run_suite(tsocket_helpers_suite());
}
