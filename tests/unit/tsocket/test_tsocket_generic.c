/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of tsocket's generic layer (tsocket.c, tsocket_dgram.c,
 * tsocket_stream.c): argument checks, EBUSY/ENOTCONN/EPIPE/EOPNOTSUPP
 * guards, result ownership and freeing a context or a request while I/O
 * is outstanding.
 *
 * Most tests use "ctl", a stream and datagram type defined here through
 * tsocket_internal.h whose requests complete only when the test says so:
 * that is the only way to hold a request outstanding at a chosen moment
 * and to see exactly which calls reached the implementation. The bsd
 * TCases check the same rules over real sockets, including requests the
 * BSD try functions finish at once (bytes already there, room to write),
 * and tstream_readv_pdu's guards and next_vector's mem_ctx.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <check.h>
#include <talloc.h>
#include <tevent.h>

#include "tsocket_internal.h"
#include "tt.h"
#include "tt_pair.h"

#define CTL_MAGIC 0x7e1052ca

/* Implementation requests alive right now (all types). */
static int ctl_live_subreqs;

/*
 * The ctl address type: a name.
 */

struct ctl_address {
	char *name;
};

static char *ctl_address_string(const struct tsocket_address *addr,
				TALLOC_CTX *mem_ctx)
{
	struct ctl_address *ca =
	    talloc_get_type_abort(addr->private_data, struct ctl_address);

	return talloc_asprintf(mem_ctx, "ctl:%s", ca->name);
}

static struct tsocket_address *ctl_address_make(TALLOC_CTX *mem_ctx,
						const char *name,
						const char *location);

static struct tsocket_address *ctl_address_copy(
    const struct tsocket_address *addr,
    TALLOC_CTX *mem_ctx,
    const char *location)
{
	struct ctl_address *ca =
	    talloc_get_type_abort(addr->private_data, struct ctl_address);

	return ctl_address_make(mem_ctx, ca->name, location);
}

static const struct tsocket_address_ops ctl_address_ops = {
    .name = "ctl",
    .string = ctl_address_string,
    .copy = ctl_address_copy,
};

static struct tsocket_address *ctl_address_make(TALLOC_CTX *mem_ctx,
						const char *name,
						const char *location)
{
	struct tsocket_address *addr;
	struct ctl_address *ca;

	addr = tsocket_address_create(mem_ctx, &ctl_address_ops, &ca,
				      struct ctl_address, location);
	if (addr == NULL) {
		return NULL;
	}
	ca->name = talloc_strdup(ca, name);
	if (ca->name == NULL) {
		talloc_free(addr);
		return NULL;
	}
	return addr;
}

/*
 * The ctl stream type.
 */

struct ctl_stream {
	int magic;
	ssize_t pending;
	struct tevent_req *read_req;
	struct tevent_req *write_req;
	int readv_calls;
	int writev_calls;
	int disconnect_calls;
	int shutdown_calls;
	int disconnect_err;
	/* set_readable_handler: what the type keeps, how it answers */
	tstream_readable_handler_t readable_fn;
	void *readable_private;
	struct tstream_context *readable_stream;
	bool readable_ready;
	int readable_err;
	int readable_sets;
	int readable_clears;
	size_t last_count;
};

struct ctl_io_state {
	struct tevent_req *self;
	struct ctl_stream *cs;
	struct tevent_req **slot;
	struct iovec *vector;
	size_t count;
	int ret;
};

static int ctl_io_state_destructor(struct ctl_io_state *state)
{
	/*
	 * The generic layer must free us while the stream's private data
	 * is still alive: valgrind/ASan see this read otherwise.
	 */
	ck_assert_int_eq(state->cs->magic, CTL_MAGIC);
	if (*state->slot == state->self) {
		*state->slot = NULL;
	}
	ctl_live_subreqs--;
	return 0;
}

static struct tevent_req *ctl_io_send(TALLOC_CTX *mem_ctx,
				      struct ctl_stream *cs,
				      struct tevent_req **slot,
				      struct iovec *vector,
				      size_t count)
{
	struct tevent_req *req;
	struct ctl_io_state *state;

	req = tevent_req_create(mem_ctx, &state, struct ctl_io_state);
	if (req == NULL) {
		return NULL;
	}
	state->self = req;
	state->cs = cs;
	state->slot = slot;
	state->vector = vector;
	state->count = count;
	state->ret = -1;
	ctl_live_subreqs++;
	talloc_set_destructor(state, ctl_io_state_destructor);
	*slot = req;
	return req;
}

static int ctl_io_recv(struct tevent_req *req, int *perrno)
{
	struct ctl_io_state *state = tevent_req_data(req, struct ctl_io_state);
	int ret = tsocket_simple_int_recv(req, perrno);

	if (ret == 0) {
		ret = state->ret;
	}
	tevent_req_received(req);
	return ret;
}

static ssize_t ctl_pending_bytes(struct tstream_context *stream)
{
	struct ctl_stream *cs = tstream_context_data(stream, struct ctl_stream);

	return cs->pending;
}

static struct tevent_req *ctl_readv_send(TALLOC_CTX *mem_ctx,
					 struct tevent_context *ev,
					 struct tstream_context *stream,
					 struct iovec *vector,
					 size_t count)
{
	struct ctl_stream *cs = tstream_context_data(stream, struct ctl_stream);

	ck_assert_ptr_null(cs->read_req);
	cs->readv_calls++;
	cs->last_count = count;
	return ctl_io_send(mem_ctx, cs, &cs->read_req, vector, count);
}

static struct tevent_req *ctl_writev_send(TALLOC_CTX *mem_ctx,
					  struct tevent_context *ev,
					  struct tstream_context *stream,
					  const struct iovec *vector,
					  size_t count)
{
	struct ctl_stream *cs = tstream_context_data(stream, struct ctl_stream);

	ck_assert_ptr_null(cs->write_req);
	cs->writev_calls++;
	cs->last_count = count;
	return ctl_io_send(mem_ctx, cs, &cs->write_req, (struct iovec *)vector,
			   count);
}

struct ctl_now_state {
	int dummy;
};

/* A request that finishes on the next loop turn with err (0: success). */
static struct tevent_req *ctl_now_send(TALLOC_CTX *mem_ctx,
				       struct tevent_context *ev,
				       int err)
{
	struct tevent_req *req;
	struct ctl_now_state *state;

	req = tevent_req_create(mem_ctx, &state, struct ctl_now_state);
	if (req == NULL) {
		return NULL;
	}
	if (err != 0) {
		tevent_req_error(req, err);
	} else {
		tevent_req_done(req);
	}
	return tevent_req_post(req, ev);
}

static int ctl_now_recv(struct tevent_req *req, int *perrno)
{
	int ret = tsocket_simple_int_recv(req, perrno);

	tevent_req_received(req);
	return ret;
}

static struct tevent_req *ctl_disconnect_send(TALLOC_CTX *mem_ctx,
					      struct tevent_context *ev,
					      struct tstream_context *stream)
{
	struct ctl_stream *cs = tstream_context_data(stream, struct ctl_stream);

	ck_assert_ptr_null(cs->read_req);
	ck_assert_ptr_null(cs->write_req);
	cs->disconnect_calls++;
	return ctl_now_send(mem_ctx, ev, cs->disconnect_err);
}

static struct tevent_req *ctl_shutdown_send(TALLOC_CTX *mem_ctx,
					    struct tevent_context *ev,
					    struct tstream_context *stream)
{
	struct ctl_stream *cs = tstream_context_data(stream, struct ctl_stream);

	ck_assert_ptr_null(cs->write_req);
	cs->shutdown_calls++;
	return ctl_now_send(mem_ctx, ev, 0);
}

static int ctl_set_readable_handler(struct tstream_context *stream,
				    struct tevent_context *ev,
				    tstream_readable_handler_t handler,
				    void *private_data,
				    bool *pready)
{
	struct ctl_stream *cs = tstream_context_data(stream, struct ctl_stream);

	if (handler == NULL) {
		ck_assert_ptr_null(pready);
		cs->readable_clears++;
		cs->readable_fn = NULL;
		return 0;
	}
	ck_assert_ptr_nonnull(ev);
	ck_assert_ptr_null(cs->read_req);
	ck_assert_ptr_null(cs->readable_fn);
	cs->readable_sets++;
	if (cs->readable_err != 0) {
		return cs->readable_err;
	}
	if (cs->readable_ready) {
		*pready = true;
		return 0;
	}
	cs->readable_fn = handler;
	cs->readable_private = private_data;
	cs->readable_stream = stream;
	return 0;
}

/* The type's readability: call what it keeps, once. */
static void ctl_readable(struct ctl_stream *cs)
{
	tstream_readable_handler_t fn = cs->readable_fn;

	ck_assert_ptr_nonnull(fn);
	cs->readable_fn = NULL;
	fn(cs->readable_stream, cs->readable_private);
}

static const struct tstream_context_ops ctl_stream_ops = {
    .name = "ctl",
    .pending_bytes = ctl_pending_bytes,
    .readv_send = ctl_readv_send,
    .readv_recv = ctl_io_recv,
    .writev_send = ctl_writev_send,
    .writev_recv = ctl_io_recv,
    .disconnect_send = ctl_disconnect_send,
    .disconnect_recv = ctl_now_recv,
    .shutdown_send = ctl_shutdown_send,
    .shutdown_recv = ctl_now_recv,
    .set_readable_handler = ctl_set_readable_handler,
};

/* The same type without half-close. */
static const struct tstream_context_ops ctl_stream_noshut_ops = {
    .name = "ctl-noshut",
    .pending_bytes = ctl_pending_bytes,
    .readv_send = ctl_readv_send,
    .readv_recv = ctl_io_recv,
    .writev_send = ctl_writev_send,
    .writev_recv = ctl_io_recv,
    .disconnect_send = ctl_disconnect_send,
    .disconnect_recv = ctl_now_recv,
};

static struct tstream_context *ctl_stream_make(
    TALLOC_CTX *mem_ctx,
    const struct tstream_context_ops *ops,
    struct ctl_stream **pcs)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;

	stream = tstream_context_create(mem_ctx, ops, &cs, struct ctl_stream,
					__location__);
	ck_assert_ptr_nonnull(stream);
	cs->magic = CTL_MAGIC;
	*pcs = cs;
	return stream;
}

/* Finish the outstanding implementation readv with these bytes. */
static void ctl_complete_read(struct ctl_stream *cs, const char *data)
{
	struct tevent_req *req = cs->read_req;
	struct ctl_io_state *state;
	size_t off = 0;
	size_t i;

	ck_assert_ptr_nonnull(req);
	state = tevent_req_data(req, struct ctl_io_state);
	for (i = 0; i < state->count; i++) {
		memcpy(state->vector[i].iov_base, data + off,
		       state->vector[i].iov_len);
		off += state->vector[i].iov_len;
	}
	state->ret = (int)off;
	cs->read_req = NULL;
	tevent_req_done(req);
}

static void ctl_complete_write(struct ctl_stream *cs)
{
	struct tevent_req *req = cs->write_req;
	struct ctl_io_state *state;
	size_t i;

	ck_assert_ptr_nonnull(req);
	state = tevent_req_data(req, struct ctl_io_state);
	state->ret = 0;
	for (i = 0; i < state->count; i++) {
		state->ret += (int)state->vector[i].iov_len;
	}
	cs->write_req = NULL;
	tevent_req_done(req);
}

static void ctl_fail(struct tevent_req **slot, int err)
{
	struct tevent_req *req = *slot;

	ck_assert_ptr_nonnull(req);
	*slot = NULL;
	tevent_req_error(req, err);
}

/*
 * Results of public requests, collected by callbacks.
 */

struct res {
	bool done;
	int ret;
	int err;
};

static void res_readv_done(struct tevent_req *req)
{
	struct res *r = tevent_req_callback_data_void(req);

	r->ret = tstream_readv_recv(req, &r->err);
	r->done = true;
	talloc_free(req);
}

static void res_writev_done(struct tevent_req *req)
{
	struct res *r = tevent_req_callback_data_void(req);

	r->ret = tstream_writev_recv(req, &r->err);
	r->done = true;
	talloc_free(req);
}

static void res_disconnect_done(struct tevent_req *req)
{
	struct res *r = tevent_req_callback_data_void(req);

	r->ret = tstream_disconnect_recv(req, &r->err);
	r->done = true;
	talloc_free(req);
}

static void res_shutdown_done(struct tevent_req *req)
{
	struct res *r = tevent_req_callback_data_void(req);

	r->ret = tstream_shutdown_recv(req, &r->err);
	r->done = true;
	talloc_free(req);
}

static struct tevent_req *start_readv(struct tstream_context *stream,
				      struct iovec *iov,
				      size_t count,
				      struct res *r)
{
	struct tevent_req *req;

	*r = (struct res){.ret = -2};
	req = tstream_readv_send(tt_mem, tt_ev, stream, iov, count);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, res_readv_done, r);
	return req;
}

static struct tevent_req *start_writev(struct tstream_context *stream,
				       const struct iovec *iov,
				       size_t count,
				       struct res *r)
{
	struct tevent_req *req;

	*r = (struct res){.ret = -2};
	req = tstream_writev_send(tt_mem, tt_ev, stream, iov, count);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, res_writev_done, r);
	return req;
}

static void start_disconnect(struct tstream_context *stream, struct res *r)
{
	struct tevent_req *req;

	*r = (struct res){.ret = -2};
	req = tstream_disconnect_send(tt_mem, tt_ev, stream);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, res_disconnect_done, r);
}

static void res_wait_done(struct tevent_req *req)
{
	struct res *r = tevent_req_callback_data_void(req);

	r->ret = tstream_wait_readable_recv(req, &r->err);
	r->done = true;
	talloc_free(req);
}

static struct tevent_req *start_wait(struct tstream_context *stream,
				     struct res *r)
{
	struct tevent_req *req;

	*r = (struct res){.ret = -2};
	req = tstream_wait_readable_send(tt_mem, tt_ev, stream);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, res_wait_done, r);
	return req;
}

static void start_shutdown(struct tstream_context *stream, struct res *r)
{
	struct tevent_req *req;

	*r = (struct res){.ret = -2};
	req = tstream_shutdown_send(tt_mem, tt_ev, stream);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, res_shutdown_done, r);
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
 * TCase address
 */

START_TEST(test_address_string_copy)
{
	struct tsocket_address *a, *b;
	char *s;

	a = ctl_address_make(tt_mem, "one", __location__);
	ck_assert_ptr_nonnull(a);
	s = tsocket_address_string(a, tt_mem);
	ck_assert_str_eq(s, "ctl:one");
	ck_assert_ptr_eq(talloc_parent(s), tt_mem);

	b = tsocket_address_copy(a, tt_mem);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_ne(a, b);
	ck_assert_ptr_eq(talloc_parent(b), tt_mem);
	talloc_free(a);
	/* The copy lives on without the original. */
	s = tsocket_address_string(b, tt_mem);
	ck_assert_str_eq(s, "ctl:one");

	s = tsocket_address_string(NULL, tt_mem);
	ck_assert_str_eq(s, "NULL");
}
END_TEST

START_TEST(test_context_data)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;

	stream = ctl_stream_make(tt_mem, &ctl_stream_ops, &cs);
	ck_assert_ptr_eq(_tstream_context_data(stream), cs);
	ck_assert_ptr_eq(tstream_context_data(stream, struct ctl_stream), cs);
	ck_assert_ptr_eq(talloc_parent(cs), stream);
	ck_assert_ptr_eq(talloc_parent(stream), tt_mem);
	/* Zeroed by the generic layer. */
	ck_assert_int_eq(cs->readv_calls, 0);
	ck_assert_ptr_null(cs->read_req);
}
END_TEST

/*
 * TCase stream_args
 */

START_TEST(test_stream_args)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;
	struct iovec *many;
	struct iovec empty[2] = {{.iov_base = NULL, .iov_len = 0},
				 {.iov_base = NULL, .iov_len = 0}};
	struct iovec huge[2];
	char buf[8];
	struct iovec one = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct res r;
	size_t i;

	stream = ctl_stream_make(tt_mem, &ctl_stream_ops, &cs);

	start_readv(stream, &one, 0, &r);
	assert_failed(r, EINVAL);
	start_writev(stream, &one, 0, &r);
	assert_failed(r, EINVAL);

	start_readv(stream, empty, 2, &r);
	assert_failed(r, EINVAL);
	start_writev(stream, empty, 2, &r);
	assert_failed(r, EINVAL);

	many = talloc_array(tt_mem, struct iovec, 1025);
	ck_assert_ptr_nonnull(many);
	for (i = 0; i < 1025; i++) {
		many[i].iov_base = buf;
		many[i].iov_len = 1;
	}
	start_readv(stream, many, 1025, &r);
	assert_failed(r, EMSGSIZE);
	start_writev(stream, many, 1025, &r);
	assert_failed(r, EMSGSIZE);

	huge[0].iov_base = buf;
	huge[0].iov_len = SIZE_MAX / 2 + 1;
	huge[1] = huge[0];
	start_readv(stream, huge, 2, &r);
	assert_failed(r, EMSGSIZE);
	start_writev(stream, huge, 2, &r);
	assert_failed(r, EMSGSIZE);

	/* None of these reached the implementation. */
	ck_assert_int_eq(cs->readv_calls, 0);
	ck_assert_int_eq(cs->writev_calls, 0);

	/* 1024 is allowed and arrives whole. */
	start_writev(stream, many, 1024, &r);
	ck_assert_int_eq(cs->writev_calls, 1);
	ck_assert_uint_eq(cs->last_count, 1024);
	ctl_complete_write(cs);
	assert_ok(r, 1024);
	ck_assert_int_eq(ctl_live_subreqs, 0);
}
END_TEST

START_TEST(test_stream_vector_copied)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;
	char a[3], b[2], c[4], d[1], e[5];
	struct iovec *iov;
	struct res r;
	struct ctl_io_state *st;

	stream = ctl_stream_make(tt_mem, &ctl_stream_ops, &cs);

	/* The caller may reuse its vector array as soon as send returns. */
	iov = talloc_array(tt_mem, struct iovec, 5);
	iov[0] = (struct iovec){a, sizeof(a)};
	iov[1] = (struct iovec){b, sizeof(b)};
	iov[2] = (struct iovec){c, sizeof(c)};
	iov[3] = (struct iovec){d, sizeof(d)};
	iov[4] = (struct iovec){e, sizeof(e)};
	start_readv(stream, iov, 5, &r);
	st = tevent_req_data(cs->read_req, struct ctl_io_state);
	ck_assert_ptr_ne(st->vector, iov);
	TALLOC_FREE(iov);

	ctl_complete_read(cs, "abcdefghijklmno");
	assert_ok(r, 15);
	ck_assert(memcmp(a, "abc", 3) == 0);
	ck_assert(memcmp(b, "de", 2) == 0);
	ck_assert(memcmp(c, "fghi", 4) == 0);
	ck_assert(memcmp(d, "j", 1) == 0);
	ck_assert(memcmp(e, "klmno", 5) == 0);
}
END_TEST

/*
 * TCase stream_busy
 */

START_TEST(test_stream_busy)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;
	char rbuf[4], rbuf2[4];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct iovec riov2 = {.iov_base = rbuf2, .iov_len = sizeof(rbuf2)};
	struct iovec wiov = {.iov_base = (void *)"wxyz", .iov_len = 4};
	struct res r1, r2, w1, w2, d;

	stream = ctl_stream_make(tt_mem, &ctl_stream_ops, &cs);

	start_readv(stream, &riov, 1, &r1);
	start_readv(stream, &riov2, 1, &r2);
	assert_failed(r2, EBUSY);

	start_writev(stream, &wiov, 1, &w1);
	start_writev(stream, &wiov, 1, &w2);
	assert_failed(w2, EBUSY);

	start_disconnect(stream, &d);
	assert_failed(d, EBUSY);

	/* The guards did not disturb the first requests. */
	ck_assert(!r1.done);
	ck_assert(!w1.done);
	ck_assert_int_eq(cs->readv_calls, 1);
	ck_assert_int_eq(cs->writev_calls, 1);
	ck_assert_int_eq(cs->disconnect_calls, 0);

	ctl_complete_read(cs, "1234");
	assert_ok(r1, 4);
	ck_assert(memcmp(rbuf, "1234", 4) == 0);

	/* Read done, write outstanding: disconnect still EBUSY. */
	start_disconnect(stream, &d);
	assert_failed(d, EBUSY);

	ctl_complete_write(cs);
	assert_ok(w1, 4);

	/* Both slots free again. */
	start_readv(stream, &riov2, 1, &r2);
	ck_assert_int_eq(cs->readv_calls, 2);
	ctl_complete_read(cs, "5678");
	assert_ok(r2, 4);

	start_disconnect(stream, &d);
	assert_ok(d, 0);
	ck_assert_int_eq(cs->disconnect_calls, 1);
}
END_TEST

START_TEST(test_stream_errors_pass_through)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;
	char rbuf[4];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct iovec wiov = {.iov_base = (void *)"wxyz", .iov_len = 4};
	struct res r, w;

	stream = ctl_stream_make(tt_mem, &ctl_stream_ops, &cs);

	start_readv(stream, &riov, 1, &r);
	ctl_fail(&cs->read_req, EPIPE);
	assert_failed(r, EPIPE);

	/* A read error does not stop writes in the generic layer. */
	start_writev(stream, &wiov, 1, &w);
	ck_assert_int_eq(cs->writev_calls, 1);
	ctl_fail(&cs->write_req, ECONNRESET);
	assert_failed(w, ECONNRESET);

	cs->pending = 42;
	ck_assert_int_eq(tstream_pending_bytes(stream), 42);
	ck_assert_int_eq(ctl_live_subreqs, 0);
}
END_TEST

/*
 * TCase stream_disconnect
 */

START_TEST(test_stream_after_disconnect)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;
	char rbuf[4];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct iovec wiov = {.iov_base = (void *)"wxyz", .iov_len = 4};
	struct res r;

	stream = ctl_stream_make(tt_mem, &ctl_stream_ops, &cs);

	start_disconnect(stream, &r);
	assert_ok(r, 0);

	start_readv(stream, &riov, 1, &r);
	assert_failed(r, ENOTCONN);
	start_writev(stream, &wiov, 1, &r);
	assert_failed(r, ENOTCONN);
	start_shutdown(stream, &r);
	assert_failed(r, ENOTCONN);
	start_disconnect(stream, &r);
	assert_failed(r, ENOTCONN);

	errno = 0;
	ck_assert_int_eq(tstream_pending_bytes(stream), -1);
	ck_assert_int_eq(errno, ENOTCONN);

	ck_assert_int_eq(cs->readv_calls, 0);
	ck_assert_int_eq(cs->writev_calls, 0);
	ck_assert_int_eq(cs->shutdown_calls, 0);
	ck_assert_int_eq(cs->disconnect_calls, 1);
}
END_TEST

START_TEST(test_stream_disconnect_failed)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;
	struct iovec wiov = {.iov_base = (void *)"wxyz", .iov_len = 4};
	struct res r;

	stream = ctl_stream_make(tt_mem, &ctl_stream_ops, &cs);
	cs->disconnect_err = EIO;

	start_disconnect(stream, &r);
	assert_failed(r, EIO);

	/* A failed disconnect leaves the stream as it was. */
	start_writev(stream, &wiov, 1, &r);
	ctl_complete_write(cs);
	assert_ok(r, 4);
}
END_TEST

/*
 * TCase stream_shutdown
 */

START_TEST(test_stream_shutdown_unsupported)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;
	struct iovec wiov = {.iov_base = (void *)"wxyz", .iov_len = 4};
	struct res r;

	stream = ctl_stream_make(tt_mem, &ctl_stream_noshut_ops, &cs);

	start_shutdown(stream, &r);
	assert_failed(r, EOPNOTSUPP);

	/* Nothing changed: writing still works. */
	start_writev(stream, &wiov, 1, &r);
	ctl_complete_write(cs);
	assert_ok(r, 4);
}
END_TEST

/*
 * tstream_wait_readable through the type's readable-handler op: guards,
 * readiness at once and later, the op's error, freeing.
 */
START_TEST(test_stream_wait_readable)
{
	TALLOC_CTX *owner = talloc_new(tt_mem);
	struct tstream_context *stream;
	struct ctl_stream *cs;
	char rbuf[4];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct iovec wiov = {.iov_base = (void *)"wxyz", .iov_len = 4};
	struct tevent_req *req;
	struct res r, r2, w, d;

	stream = ctl_stream_make(owner, &ctl_stream_ops, &cs);
	start_wait(stream, &r);
	ck_assert_int_eq(cs->readable_sets, 1);
	ck_assert_ptr_nonnull(cs->readable_fn);
	/* the read slot is taken; a write goes on */
	start_readv(stream, &riov, 1, &r2);
	assert_failed(r2, EBUSY);
	start_wait(stream, &r2);
	assert_failed(r2, EBUSY);
	start_disconnect(stream, &d);
	assert_failed(d, EBUSY);
	ck_assert_int_eq(cs->readv_calls, 0);
	ck_assert_int_eq(cs->readable_sets, 1);
	start_writev(stream, &wiov, 1, &w);
	ctl_complete_write(cs);
	assert_ok(w, 4);
	ck_assert(!r.done);
	/* the type calls the handler: the wait is over, nothing to forget */
	ctl_readable(cs);
	assert_ok(r, 0);
	ck_assert_int_eq(cs->readable_clears, 0);

	/* ready at once: finished from the loop */
	cs->readable_ready = true;
	start_wait(stream, &r);
	ck_assert(!r.done);
	ck_assert_ptr_null(cs->readable_fn);
	assert_ok(r, 0);
	cs->readable_ready = false;

	/* the type's error comes through */
	cs->readable_err = EIO;
	start_wait(stream, &r);
	assert_failed(r, EIO);
	cs->readable_err = 0;

	/* a freed wait makes the type forget and frees the slot */
	req = start_wait(stream, &r);
	ck_assert_ptr_nonnull(cs->readable_fn);
	talloc_free(req);
	ck_assert_int_eq(cs->readable_clears, 1);
	ck_assert_ptr_null(cs->readable_fn);
	start_readv(stream, &riov, 1, &r2);
	ctl_complete_read(cs, "abcd");
	assert_ok(r2, 4);

	/* the stream freed under a wait: ENOTCONN, never from free */
	start_wait(stream, &r);
	talloc_free(owner);
	ck_assert_int_eq(ctl_live_subreqs, 0);
	ck_assert(!r.done);
	assert_failed(r, ENOTCONN);
}
END_TEST

/* A type without the op: every wait completes at once, from the loop. */
START_TEST(test_stream_wait_readable_unsupported)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;
	struct res r, d;

	stream = ctl_stream_make(tt_mem, &ctl_stream_noshut_ops, &cs);
	start_wait(stream, &r);
	ck_assert(!r.done);
	assert_ok(r, 0);

	start_disconnect(stream, &d);
	assert_ok(d, 0);
	start_wait(stream, &r);
	assert_failed(r, ENOTCONN);
	talloc_free(stream);
}
END_TEST

struct readable_res {
	int calls;
	struct tstream_context *stream;
	bool free_stream; /* the handler frees the stream */
};

static void on_readable(struct tstream_context *stream, void *private_data)
{
	struct readable_res *r = private_data;

	r->calls++;
	r->stream = stream;
	if (r->free_stream) {
		talloc_free(stream);
	}
}

static void set_readable(struct tstream_context *stream, struct readable_res *r)
{
	*r = (struct readable_res){0};
	ck_assert_int_eq(
	    tstream_set_readable_handler(stream, tt_ev, on_readable, r), 0);
}

static void assert_set_readable_fails(struct tstream_context *stream, int err)
{
	struct readable_res r = {0};

	errno = 0;
	ck_assert_int_eq(
	    tstream_set_readable_handler(stream, tt_ev, on_readable, &r), -1);
	ck_assert_int_eq(errno, err);
	ck_assert(!tt_loop_until(tt_ev, &(bool){false}, 10));
	ck_assert_int_eq(r.calls, 0);
}

/* tstream_set_readable_handler through a type's op: guards and clears. */
START_TEST(test_stream_readable_handler)
{
	TALLOC_CTX *owner = talloc_new(tt_mem);
	struct tstream_context *stream;
	struct ctl_stream *cs;
	char rbuf[4];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct readable_res h;
	struct res r, d;
	bool never = false;

	stream = ctl_stream_make(owner, &ctl_stream_ops, &cs);
	errno = 0;
	ck_assert_int_eq(
	    tstream_set_readable_handler(stream, NULL, on_readable, &h), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(cs->readable_sets, 0);

	/* the type keeps it and calls it: once, handed to the caller */
	set_readable(stream, &h);
	ck_assert_int_eq(cs->readable_sets, 1);
	ck_assert_ptr_nonnull(cs->readable_fn);
	ctl_readable(cs);
	ck_assert_int_eq(h.calls, 1);
	ck_assert_ptr_eq(h.stream, stream);
	/* nothing left to clear: a readv does not ask the type */
	start_readv(stream, &riov, 1, &r);
	ck_assert_int_eq(cs->readable_clears, 0);
	ctl_complete_read(cs, "abcd");
	assert_ok(r, 4);

	/* ready at once: from the loop, never from inside the set */
	cs->readable_ready = true;
	set_readable(stream, &h);
	ck_assert_int_eq(h.calls, 0);
	ck_assert_ptr_null(cs->readable_fn);
	ck_assert(!tt_loop_until(tt_ev, &never, 20));
	ck_assert_int_eq(h.calls, 1);
	/* ...unless a readv comes first: it clears it */
	set_readable(stream, &h);
	start_readv(stream, &riov, 1, &r);
	ctl_complete_read(cs, "efgh");
	assert_ok(r, 4);
	ck_assert(!tt_loop_until(tt_ev, &never, 20));
	ck_assert_int_eq(h.calls, 0);
	/* ...or a clear */
	set_readable(stream, &h);
	ck_assert_int_eq(tstream_set_readable_handler(stream, NULL, NULL, NULL),
			 0);
	ck_assert(!tt_loop_until(tt_ev, &never, 20));
	ck_assert_int_eq(h.calls, 0);
	cs->readable_ready = false;

	/* the type's error comes through, nothing kept */
	cs->readable_err = EIO;
	assert_set_readable_fails(stream, EIO);
	cs->readable_err = 0;

	/* a readv, a wait, a new handler or a clear make the type forget */
	set_readable(stream, &h);
	start_readv(stream, &riov, 1, &r);
	ck_assert_int_eq(cs->readable_clears, 1);
	ck_assert_ptr_null(cs->readable_fn);
	/* while the readv is outstanding: EBUSY */
	assert_set_readable_fails(stream, EBUSY);
	ctl_complete_read(cs, "ijkl");
	assert_ok(r, 4);
	set_readable(stream, &h);
	start_wait(stream, &r);
	ck_assert_int_eq(cs->readable_clears, 2);
	assert_set_readable_fails(stream, EBUSY);
	ctl_readable(cs);
	assert_ok(r, 0);
	set_readable(stream, &h);
	set_readable(stream, &h);
	ck_assert_int_eq(cs->readable_clears, 3);
	ck_assert_int_eq(tstream_set_readable_handler(stream, NULL, NULL, NULL),
			 0);
	ck_assert_int_eq(cs->readable_clears, 4);
	ck_assert_int_eq(h.calls, 0);

	/* a disconnect clears it; ENOTCONN after */
	set_readable(stream, &h);
	start_disconnect(stream, &d);
	ck_assert_int_eq(cs->readable_clears, 5);
	assert_set_readable_fails(stream, ENOTCONN);
	assert_ok(d, 0);
	assert_set_readable_fails(stream, ENOTCONN);
	ck_assert_int_eq(tstream_set_readable_handler(stream, NULL, NULL, NULL),
			 0);
	ck_assert_int_eq(h.calls, 0);
	talloc_free(owner);

	/* freeing the stream makes the type forget (its data still alive) */
	owner = talloc_new(tt_mem);
	stream = ctl_stream_make(owner, &ctl_stream_ops, &cs);
	set_readable(stream, &h);
	talloc_free(owner);
	ck_assert(!tt_loop_until(tt_ev, &never, 20));
	ck_assert_int_eq(h.calls, 0);

	/* ...and a scheduled call with it; the handler may free it */
	owner = talloc_new(tt_mem);
	stream = ctl_stream_make(owner, &ctl_stream_ops, &cs);
	cs->readable_ready = true;
	set_readable(stream, &h);
	talloc_free(owner);
	ck_assert(!tt_loop_until(tt_ev, &never, 20));
	ck_assert_int_eq(h.calls, 0);
	stream = ctl_stream_make(tt_mem, &ctl_stream_ops, &cs);
	cs->readable_ready = true;
	set_readable(stream, &h);
	h.free_stream = true;
	ck_assert(!tt_loop_until(tt_ev, &never, 20));
	ck_assert_int_eq(h.calls, 1);
}
END_TEST

/* A type without the op: ENOSYS; clearing is always fine. */
START_TEST(test_stream_readable_handler_unsupported)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;

	stream = ctl_stream_make(tt_mem, &ctl_stream_noshut_ops, &cs);
	assert_set_readable_fails(stream, ENOSYS);
	ck_assert_int_eq(tstream_set_readable_handler(stream, NULL, NULL, NULL),
			 0);
	talloc_free(stream);
}
END_TEST

START_TEST(test_stream_shutdown_half_close)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;
	char rbuf[4];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct iovec wiov = {.iov_base = (void *)"wxyz", .iov_len = 4};
	struct res r, w, s;

	stream = ctl_stream_make(tt_mem, &ctl_stream_ops, &cs);

	/* A read in flight does not block the half-close... */
	start_readv(stream, &riov, 1, &r);
	/* ...a write in flight does. */
	start_writev(stream, &wiov, 1, &w);
	start_shutdown(stream, &s);
	assert_failed(s, EBUSY);
	ck_assert_int_eq(cs->shutdown_calls, 0);
	ctl_complete_write(cs);
	assert_ok(w, 4);

	start_shutdown(stream, &s);
	/* While the shutdown runs, a writev is EBUSY. */
	start_writev(stream, &wiov, 1, &w);
	assert_failed(w, EBUSY);
	assert_ok(s, 0);
	ck_assert_int_eq(cs->shutdown_calls, 1);

	start_writev(stream, &wiov, 1, &w);
	assert_failed(w, EPIPE);
	ck_assert_int_eq(cs->writev_calls, 1);

	/* Reading goes on. */
	ck_assert(!r.done);
	ctl_complete_read(cs, "read");
	assert_ok(r, 4);
	start_readv(stream, &riov, 1, &r);
	ctl_complete_read(cs, "more");
	assert_ok(r, 4);

	/* Shutting a shut side again succeeds without the ops. */
	start_shutdown(stream, &s);
	assert_ok(s, 0);
	ck_assert_int_eq(cs->shutdown_calls, 1);

	start_disconnect(stream, &s);
	assert_ok(s, 0);
}
END_TEST

/*
 * TCase stream_free
 */

START_TEST(test_stream_free_with_outstanding)
{
	TALLOC_CTX *owner = talloc_new(tt_mem);
	struct tstream_context *stream;
	struct ctl_stream *cs;
	char rbuf[4];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct iovec wiov = {.iov_base = (void *)"wxyz", .iov_len = 4};
	struct res r, w;

	stream = ctl_stream_make(owner, &ctl_stream_ops, &cs);
	start_readv(stream, &riov, 1, &r);
	start_writev(stream, &wiov, 1, &w);
	ck_assert_int_eq(ctl_live_subreqs, 2);

	talloc_free(owner);
	/* The implementation's requests went first (see their destructor). */
	ck_assert_int_eq(ctl_live_subreqs, 0);
	/* Callbacks never run from inside talloc_free(). */
	ck_assert(!r.done);
	ck_assert(!w.done);
	assert_failed(r, ENOTCONN);
	assert_failed(w, ENOTCONN);
}
END_TEST

START_TEST(test_stream_free_after_ev)
{
	struct tevent_context *ev2 = tevent_context_init(tt_mem);
	struct tstream_context *stream;
	struct ctl_stream *cs;
	char rbuf[4];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct tevent_req *req;
	bool done = false;

	ck_assert_ptr_nonnull(ev2);
	stream = ctl_stream_make(tt_mem, &ctl_stream_ops, &cs);
	req = tstream_readv_send(tt_mem, ev2, stream, &riov, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tt_set_done, &done);

	/* The loop goes first, then the stream: nothing may touch ev2. */
	talloc_free(ev2);
	talloc_free(stream);
	ck_assert_int_eq(ctl_live_subreqs, 0);
	ck_assert(!done);
	talloc_free(req);

	/* A stream that outlived an old loop works with a new one. */
	stream = ctl_stream_make(tt_mem, &ctl_stream_ops, &cs);
	ev2 = tevent_context_init(tt_mem);
	req = tstream_readv_send(tt_mem, ev2, stream, &riov, 1);
	ck_assert_ptr_nonnull(req);
	talloc_free(ev2);
	talloc_free(req);
	{
		struct res r;

		start_readv(stream, &riov, 1, &r);
		talloc_free(stream);
		assert_failed(r, ENOTCONN);
	}
}
END_TEST

START_TEST(test_stream_free_request)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;
	char rbuf[4];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct iovec wiov = {.iov_base = (void *)"wxyz", .iov_len = 4};
	struct tevent_req *req;
	struct res r, w, d;

	stream = ctl_stream_make(tt_mem, &ctl_stream_ops, &cs);

	req = start_readv(stream, &riov, 1, &r);
	talloc_free(req);
	ck_assert_int_eq(ctl_live_subreqs, 0);
	ck_assert_ptr_null(cs->read_req);

	req = start_writev(stream, &wiov, 1, &w);
	talloc_free(req);
	ck_assert_int_eq(ctl_live_subreqs, 0);

	/* The slots are free again: no EBUSY. */
	start_readv(stream, &riov, 1, &r);
	ck_assert_int_eq(cs->readv_calls, 2);
	ctl_complete_read(cs, "abcd");
	assert_ok(r, 4);

	start_disconnect(stream, &d);
	assert_ok(d, 0);

	/* A finished, unreceived request outlives its stream safely. */
	talloc_free(stream);
}
END_TEST

START_TEST(test_stream_endtime)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;
	char rbuf[4];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct tevent_req *req;
	bool done = false;
	struct res r;
	int err = 0;

	stream = ctl_stream_make(tt_mem, &ctl_stream_ops, &cs);
	req = tstream_readv_send(tt_mem, tt_ev, stream, &riov, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tt_set_done, &done);
	ck_assert(tevent_req_set_endtime(req, tt_ev,
					 tevent_timeval_current_ofs(0, 1000)));
	tt_wait(&done, TT_DEADLINE_MS);

	/* Timed out: the implementation's readv is gone already... */
	ck_assert_int_eq(ctl_live_subreqs, 0);
	ck_assert_ptr_null(cs->read_req);
	/* ...so a new readv may start before the old one is received. */
	start_readv(stream, &riov, 1, &r);
	ck_assert_int_eq(cs->readv_calls, 2);
	ck_assert_int_eq(tstream_readv_recv(req, &err), -1);
	ck_assert_int_eq(err, ETIMEDOUT);
	talloc_free(req);
	ctl_complete_read(cs, "abcd");
	assert_ok(r, 4);
}
END_TEST

START_TEST(test_stream_free_in_callback)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;
	char rbuf[4];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct tevent_req *req;
	bool done = false;
	int err = 0;

	stream = ctl_stream_make(tt_mem, &ctl_stream_ops, &cs);
	req = tstream_readv_send(tt_mem, tt_ev, stream, &riov, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tt_set_done, &done);
	ctl_complete_read(cs, "wxyz");
	tt_wait(&done, TT_DEADLINE_MS);

	/* Free the stream before receiving: the result is kept. */
	talloc_free(stream);
	ck_assert_int_eq(tstream_readv_recv(req, &err), 4);
	talloc_free(req);
}
END_TEST

/*
 * The ctl datagram type.
 */

struct ctl_dgram {
	int magic;
	struct tevent_req *recv_req;
	struct tevent_req *send_req;
	int recvfrom_calls;
	int sendto_calls;
	int disconnect_calls;
	const uint8_t *last_buf;
	size_t last_len;
};

struct ctl_dgram_io_state {
	struct tevent_req *self;
	struct ctl_dgram *cd;
	struct tevent_req **slot;
	uint8_t *buf;
	size_t len;
	struct tsocket_address *src;
};

static int ctl_dgram_io_state_destructor(struct ctl_dgram_io_state *state)
{
	ck_assert_int_eq(state->cd->magic, CTL_MAGIC);
	if (*state->slot == state->self) {
		*state->slot = NULL;
	}
	ctl_live_subreqs--;
	return 0;
}

static struct tevent_req *ctl_dgram_io_send(TALLOC_CTX *mem_ctx,
					    struct ctl_dgram *cd,
					    struct tevent_req **slot)
{
	struct tevent_req *req;
	struct ctl_dgram_io_state *state;

	req = tevent_req_create(mem_ctx, &state, struct ctl_dgram_io_state);
	if (req == NULL) {
		return NULL;
	}
	state->self = req;
	state->cd = cd;
	state->slot = slot;
	ctl_live_subreqs++;
	talloc_set_destructor(state, ctl_dgram_io_state_destructor);
	*slot = req;
	return req;
}

static struct tevent_req *ctl_recvfrom_send(TALLOC_CTX *mem_ctx,
					    struct tevent_context *ev,
					    struct tdgram_context *dgram)
{
	struct ctl_dgram *cd = tdgram_context_data(dgram, struct ctl_dgram);

	ck_assert_ptr_null(cd->recv_req);
	cd->recvfrom_calls++;
	return ctl_dgram_io_send(mem_ctx, cd, &cd->recv_req);
}

static ssize_t ctl_recvfrom_recv(struct tevent_req *req,
				 int *perrno,
				 TALLOC_CTX *mem_ctx,
				 uint8_t **buf,
				 struct tsocket_address **src)
{
	struct ctl_dgram_io_state *state =
	    tevent_req_data(req, struct ctl_dgram_io_state);
	ssize_t ret = tsocket_simple_int_recv(req, perrno);

	if (ret == 0) {
		*buf = talloc_move(mem_ctx, &state->buf);
		*src = talloc_move(mem_ctx, &state->src);
		ret = (ssize_t)state->len;
	}
	tevent_req_received(req);
	return ret;
}

static struct tevent_req *ctl_sendto_send(TALLOC_CTX *mem_ctx,
					  struct tevent_context *ev,
					  struct tdgram_context *dgram,
					  const uint8_t *buf,
					  size_t len,
					  const struct tsocket_address *dst)
{
	struct ctl_dgram *cd = tdgram_context_data(dgram, struct ctl_dgram);
	struct tevent_req *req;

	ck_assert_ptr_null(cd->send_req);
	cd->sendto_calls++;
	cd->last_buf = buf;
	cd->last_len = len;
	req = ctl_dgram_io_send(mem_ctx, cd, &cd->send_req);
	if (req != NULL) {
		struct ctl_dgram_io_state *state =
		    tevent_req_data(req, struct ctl_dgram_io_state);

		state->len = len;
	}
	return req;
}

static ssize_t ctl_sendto_recv(struct tevent_req *req, int *perrno)
{
	struct ctl_dgram_io_state *state =
	    tevent_req_data(req, struct ctl_dgram_io_state);
	ssize_t ret = tsocket_simple_int_recv(req, perrno);

	if (ret == 0) {
		ret = (ssize_t)state->len;
	}
	tevent_req_received(req);
	return ret;
}

static struct tevent_req *ctl_dgram_disconnect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tdgram_context *dgram)
{
	struct ctl_dgram *cd = tdgram_context_data(dgram, struct ctl_dgram);

	ck_assert_ptr_null(cd->recv_req);
	ck_assert_ptr_null(cd->send_req);
	cd->disconnect_calls++;
	return ctl_now_send(mem_ctx, ev, 0);
}

static const struct tdgram_context_ops ctl_dgram_ops = {
    .name = "ctl",
    .recvfrom_send = ctl_recvfrom_send,
    .recvfrom_recv = ctl_recvfrom_recv,
    .sendto_send = ctl_sendto_send,
    .sendto_recv = ctl_sendto_recv,
    .disconnect_send = ctl_dgram_disconnect_send,
    .disconnect_recv = ctl_now_recv,
};

static struct tdgram_context *ctl_dgram_make(TALLOC_CTX *mem_ctx,
					     struct ctl_dgram **pcd)
{
	struct tdgram_context *dgram;
	struct ctl_dgram *cd;

	dgram = tdgram_context_create(mem_ctx, &ctl_dgram_ops, &cd,
				      struct ctl_dgram, __location__);
	ck_assert_ptr_nonnull(dgram);
	cd->magic = CTL_MAGIC;
	*pcd = cd;
	return dgram;
}

static void ctl_complete_recvfrom(struct ctl_dgram *cd,
				  const char *data,
				  const char *from)
{
	struct tevent_req *req = cd->recv_req;
	struct ctl_dgram_io_state *state;

	ck_assert_ptr_nonnull(req);
	state = tevent_req_data(req, struct ctl_dgram_io_state);
	state->len = strlen(data);
	state->buf = (uint8_t *)talloc_strdup(state, data);
	state->src = ctl_address_make(state, from, __location__);
	cd->recv_req = NULL;
	tevent_req_done(req);
}

struct dres {
	bool done;
	ssize_t ret;
	int err;
	uint8_t *buf;
	struct tsocket_address *src;
};

static void dres_recvfrom_done(struct tevent_req *req)
{
	struct dres *r = tevent_req_callback_data_void(req);

	r->ret = tdgram_recvfrom_recv(req, &r->err, tt_mem, &r->buf, &r->src);
	r->done = true;
	talloc_free(req);
}

static void dres_sendto_done(struct tevent_req *req)
{
	struct dres *r = tevent_req_callback_data_void(req);

	r->ret = tdgram_sendto_recv(req, &r->err);
	r->done = true;
	talloc_free(req);
}

static void dres_disconnect_done(struct tevent_req *req)
{
	struct dres *r = tevent_req_callback_data_void(req);

	r->ret = tdgram_disconnect_recv(req, &r->err);
	r->done = true;
	talloc_free(req);
}

static struct tevent_req *start_recvfrom(struct tdgram_context *dgram,
					 struct dres *r)
{
	struct tevent_req *req;

	*r = (struct dres){.ret = -2};
	req = tdgram_recvfrom_send(tt_mem, tt_ev, dgram);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, dres_recvfrom_done, r);
	return req;
}

static struct tevent_req *start_sendto(struct tdgram_context *dgram,
				       const char *data,
				       size_t len,
				       struct dres *r)
{
	struct tevent_req *req;

	*r = (struct dres){.ret = -2};
	req = tdgram_sendto_send(tt_mem, tt_ev, dgram, (const uint8_t *)data,
				 len, NULL);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, dres_sendto_done, r);
	return req;
}

static void start_dgram_disconnect(struct tdgram_context *dgram, struct dres *r)
{
	struct tevent_req *req;

	*r = (struct dres){.ret = -2};
	req = tdgram_disconnect_send(tt_mem, tt_ev, dgram);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, dres_disconnect_done, r);
}

#define assert_dfailed(r, e)                                                \
	do {                                                                \
		tt_wait(&(r).done, TT_DEADLINE_MS);                         \
		ck_assert_int_eq((r).ret, -1);                              \
		ck_assert_msg((r).err == (e), "errno %d (%s), expected %s", \
			      (r).err, strerror((r).err), #e);              \
	} while (0)

/*
 * TCase dgram
 */

START_TEST(test_dgram_results_moved)
{
	struct tdgram_context *dgram;
	struct ctl_dgram *cd;
	struct dres r;
	char *s;

	dgram = ctl_dgram_make(tt_mem, &cd);
	start_recvfrom(dgram, &r);
	ctl_complete_recvfrom(cd, "hello", "peer");
	tt_wait(&r.done, TT_DEADLINE_MS);
	ck_assert_int_eq(r.ret, 5);
	ck_assert(memcmp(r.buf, "hello", 5) == 0);
	ck_assert_ptr_eq(talloc_parent(r.buf), tt_mem);
	ck_assert_ptr_nonnull(r.src);
	ck_assert_ptr_eq(talloc_parent(r.src), tt_mem);
	s = tsocket_address_string(r.src, tt_mem);
	ck_assert_str_eq(s, "ctl:peer");
	ck_assert_int_eq(ctl_live_subreqs, 0);
}
END_TEST

START_TEST(test_dgram_src_optional)
{
	struct tdgram_context *dgram;
	struct ctl_dgram *cd;
	struct tevent_req *req;
	bool done = false;
	uint8_t *buf = NULL;
	int err = 0;

	dgram = ctl_dgram_make(tt_mem, &cd);
	req = tdgram_recvfrom_send(tt_mem, tt_ev, dgram);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tt_set_done, &done);
	ctl_complete_recvfrom(cd, "xy", "peer");
	tt_wait(&done, TT_DEADLINE_MS);
	ck_assert_int_eq(tdgram_recvfrom_recv(req, &err, tt_mem, &buf, NULL),
			 2);
	ck_assert_ptr_eq(talloc_parent(buf), tt_mem);
	/* The unwanted source went away with the request's state. */
	talloc_free(req);
}
END_TEST

START_TEST(test_dgram_guards)
{
	struct tdgram_context *dgram;
	struct ctl_dgram *cd;
	struct dres r1, r2, s1, s2, d;

	dgram = ctl_dgram_make(tt_mem, &cd);

	start_sendto(dgram, "x", 0, &s1);
	assert_dfailed(s1, EINVAL);
	ck_assert_int_eq(cd->sendto_calls, 0);

	start_recvfrom(dgram, &r1);
	start_recvfrom(dgram, &r2);
	assert_dfailed(r2, EBUSY);
	start_sendto(dgram, "abc", 3, &s1);
	start_sendto(dgram, "def", 3, &s2);
	assert_dfailed(s2, EBUSY);
	start_dgram_disconnect(dgram, &d);
	assert_dfailed(d, EBUSY);
	ck_assert_int_eq(cd->recvfrom_calls, 1);
	ck_assert_int_eq(cd->sendto_calls, 1);
	ck_assert_ptr_eq(cd->last_buf, (const uint8_t *)"abc");
	ck_assert_uint_eq(cd->last_len, 3);

	/* The first requests are undisturbed. */
	ck_assert(!r1.done);
	ck_assert(!s1.done);
	ctl_complete_recvfrom(cd, "data", "peer");
	tt_wait(&r1.done, TT_DEADLINE_MS);
	ck_assert_int_eq(r1.ret, 4);

	/* Send still outstanding: disconnect still EBUSY. */
	start_dgram_disconnect(dgram, &d);
	assert_dfailed(d, EBUSY);

	{
		struct tevent_req *sreq = cd->send_req;

		cd->send_req = NULL;
		tevent_req_done(sreq);
	}
	tt_wait(&s1.done, TT_DEADLINE_MS);
	ck_assert_int_eq(s1.ret, 3);

	start_dgram_disconnect(dgram, &d);
	tt_wait(&d.done, TT_DEADLINE_MS);
	ck_assert_int_eq(d.ret, 0);

	start_recvfrom(dgram, &r1);
	assert_dfailed(r1, ENOTCONN);
	start_sendto(dgram, "abc", 3, &s1);
	assert_dfailed(s1, ENOTCONN);
	start_dgram_disconnect(dgram, &d);
	assert_dfailed(d, ENOTCONN);
	ck_assert_int_eq(cd->disconnect_calls, 1);
	ck_assert_int_eq(cd->recvfrom_calls, 1);
}
END_TEST

START_TEST(test_dgram_free_with_outstanding)
{
	TALLOC_CTX *owner = talloc_new(tt_mem);
	struct tdgram_context *dgram;
	struct ctl_dgram *cd;
	struct tevent_req *req;
	struct dres r, s;

	dgram = ctl_dgram_make(owner, &cd);
	start_recvfrom(dgram, &r);
	start_sendto(dgram, "abc", 3, &s);
	ck_assert_int_eq(ctl_live_subreqs, 2);
	talloc_free(owner);
	ck_assert_int_eq(ctl_live_subreqs, 0);
	ck_assert(!r.done);
	assert_dfailed(r, ENOTCONN);
	assert_dfailed(s, ENOTCONN);

	/* Freeing an outstanding request frees the slot. */
	dgram = ctl_dgram_make(tt_mem, &cd);
	req = start_recvfrom(dgram, &r);
	talloc_free(req);
	ck_assert_int_eq(ctl_live_subreqs, 0);
	start_recvfrom(dgram, &r);
	ck_assert_int_eq(cd->recvfrom_calls, 2);
	ctl_complete_recvfrom(cd, "z", "peer");
	tt_wait(&r.done, TT_DEADLINE_MS);
	ck_assert_int_eq(r.ret, 1);
}
END_TEST

/*
 * The same guards over real BSD sockets (tsocket_bsd_stream.c).
 */

static void bsd_pair(struct tstream_context **a, struct tstream_context **b)
{
	tt_stream_pair(a, b);
}

START_TEST(test_bsd_stream_busy)
{
	struct tstream_context *a, *b;
	char rbuf[5], rbuf2[5];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct iovec riov2 = {.iov_base = rbuf2, .iov_len = sizeof(rbuf2)};
	struct iovec wiov = {.iov_base = (void *)"hello", .iov_len = 5};
	struct iovec *many;
	struct res r1, r2, w, d;
	size_t i;

	bsd_pair(&a, &b);

	start_readv(a, &riov, 1, &r1);
	start_readv(a, &riov2, 1, &r2);
	assert_failed(r2, EBUSY);
	start_disconnect(a, &d);
	assert_failed(d, EBUSY);

	many = talloc_array(tt_mem, struct iovec, 1025);
	ck_assert_ptr_nonnull(many);
	for (i = 0; i < 1025; i++) {
		many[i] = wiov;
	}
	start_writev(b, many, 1025, &w);
	assert_failed(w, EMSGSIZE);
	start_writev(b, &wiov, 0, &w);
	assert_failed(w, EINVAL);

	/* The first readv was not disturbed by any of that. */
	ck_assert(!r1.done);
	start_writev(b, &wiov, 1, &w);
	assert_ok(w, 5);
	assert_ok(r1, 5);
	ck_assert(memcmp(rbuf, "hello", 5) == 0);
}
END_TEST

START_TEST(test_bsd_stream_disconnect)
{
	struct tstream_context *a, *b;
	char rbuf[5];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct iovec wiov = {.iov_base = (void *)"hello", .iov_len = 5};
	struct res r;

	bsd_pair(&a, &b);
	start_disconnect(a, &r);
	assert_ok(r, 0);

	start_readv(a, &riov, 1, &r);
	assert_failed(r, ENOTCONN);
	start_writev(a, &wiov, 1, &r);
	assert_failed(r, ENOTCONN);
	errno = 0;
	ck_assert_int_eq(tstream_pending_bytes(a), -1);
	ck_assert_int_eq(errno, ENOTCONN);

	/* The peer sees the end of the stream. */
	start_readv(b, &riov, 1, &r);
	assert_failed(r, EPIPE);
}
END_TEST

START_TEST(test_bsd_stream_shutdown)
{
	struct tstream_context *a, *b;
	char rbuf[4];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct iovec ping = {.iov_base = (void *)"ping", .iov_len = 4};
	struct iovec pong = {.iov_base = (void *)"pong", .iov_len = 4};
	struct res ra, rb, w, s;

	bsd_pair(&a, &b);

	/* a reads while it half-closes. */
	start_readv(a, &riov, 1, &ra);
	start_writev(a, &ping, 1, &w);
	assert_ok(w, 4);
	start_shutdown(a, &s);
	assert_ok(s, 0);

	start_writev(a, &ping, 1, &w);
	assert_failed(w, EPIPE);

	/* b gets the data, then the end of the stream. */
	{
		char bbuf[4];
		struct iovec biov = {.iov_base = bbuf, .iov_len = 4};

		start_readv(b, &biov, 1, &rb);
		assert_ok(rb, 4);
		ck_assert(memcmp(bbuf, "ping", 4) == 0);
		start_readv(b, &biov, 1, &rb);
		assert_failed(rb, EPIPE);
	}

	/* The other direction keeps flowing. */
	start_writev(b, &pong, 1, &w);
	assert_ok(w, 4);
	assert_ok(ra, 4);
	ck_assert(memcmp(rbuf, "pong", 4) == 0);
}
END_TEST

START_TEST(test_bsd_stream_free_outstanding)
{
	TALLOC_CTX *owner = talloc_new(tt_mem);
	struct tstream_context *a = NULL, *b = NULL;
	char rbuf[4];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct res r, rb;
	int ret;

	ret = tstream_unix_socketpair(owner, &a, tt_mem, &b);
	ck_assert_int_eq(ret, 0);
	start_readv(a, &riov, 1, &r);
	talloc_free(owner);
	assert_failed(r, ENOTCONN);

	/* The fd was closed: the peer sees the end. */
	start_readv(b, &riov, 1, &rb);
	assert_failed(rb, EPIPE);
}
END_TEST

START_TEST(test_bsd_dgram_guards)
{
	char *dir = tt_mkdtemp(tt_mem);
	struct tsocket_address *la, *lb;
	struct tdgram_context *a, *b;
	struct dres r1, r2, s, d;
	int ret;

	ck_assert_ptr_nonnull(dir);
	ret = tsocket_address_unix_from_path(
	    tt_mem, talloc_asprintf(tt_mem, "%s/a", dir), &la);
	ck_assert_int_eq(ret, 0);
	ret = tsocket_address_unix_from_path(
	    tt_mem, talloc_asprintf(tt_mem, "%s/b", dir), &lb);
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(tdgram_unix_socket(la, NULL, tt_mem, &a), 0);
	ck_assert_int_eq(tdgram_unix_socket(lb, la, tt_mem, &b), 0);

	start_recvfrom(a, &r1);
	start_recvfrom(a, &r2);
	assert_dfailed(r2, EBUSY);
	start_dgram_disconnect(a, &d);
	assert_dfailed(d, EBUSY);

	start_sendto(b, "x", 0, &s);
	assert_dfailed(s, EINVAL);
	start_sendto(b, "datagram", 8, &s);
	tt_wait(&s.done, TT_DEADLINE_MS);
	ck_assert_int_eq(s.ret, 8);

	tt_wait(&r1.done, TT_DEADLINE_MS);
	ck_assert_int_eq(r1.ret, 8);
	ck_assert(memcmp(r1.buf, "datagram", 8) == 0);
	ck_assert_ptr_eq(talloc_parent(r1.buf), tt_mem);
	ck_assert_ptr_nonnull(r1.src);
	ck_assert_str_eq(tsocket_address_unix_path(r1.src, tt_mem),
			 tsocket_address_unix_path(lb, tt_mem));

	/* Free with a recvfrom outstanding. */
	start_recvfrom(a, &r1);
	talloc_free(a);
	assert_dfailed(r1, ENOTCONN);

	start_dgram_disconnect(b, &d);
	tt_wait(&d.done, TT_DEADLINE_MS);
	ck_assert_int_eq(d.ret, 0);
	start_sendto(b, "late", 4, &s);
	assert_dfailed(s, ENOTCONN);

	tt_rmtree(dir);
}
END_TEST

/*
 * BSD requests the try functions finish at once (bytes already there,
 * room to write): no request of the backend, the generic request is
 * finished through an immediate of the context. From outside they must
 * look exactly like any other request.
 */

/* Run the loop for ms milliseconds (anything scheduled gets to run). */
static void loop_idle(unsigned ms)
{
	bool never = false;

	ck_assert(!tt_loop_until(tt_ev, &never, ms));
}

static void bsd_write_now(struct tstream_context *s, const char *data)
{
	struct iovec iov = {.iov_base = (void *)data, .iov_len = strlen(data)};
	struct res w;

	start_writev(s, &iov, 1, &w);
	assert_ok(w, (int)strlen(data));
}

/* A unix datagram socketpair wrapped as two BSD datagram contexts. */
static void bsd_dgram_pair(TALLOC_CTX *mem_a,
			   struct tdgram_context **a,
			   struct tdgram_context **b)
{
	int fds[2];

	ck_assert_int_eq(socketpair(AF_UNIX,
				    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
				    0, fds),
			 0);
	ck_assert_int_eq(tdgram_bsd_existing_socket(mem_a, fds[0], a), 0);
	ck_assert_int_eq(tdgram_bsd_existing_socket(tt_mem, fds[1], b), 0);
}

static void bsd_send_now(struct tdgram_context *d, const char *data)
{
	struct dres s;

	start_sendto(d, data, strlen(data), &s);
	tt_wait(&s.done, TT_DEADLINE_MS);
	ck_assert_int_eq(s.ret, (ssize_t)strlen(data));
}

static void assert_datagram(struct dres *r, const char *data)
{
	tt_wait(&r->done, TT_DEADLINE_MS);
	ck_assert_msg(r->ret == (ssize_t)strlen(data), "ret %zd errno %d (%s)",
		      r->ret, r->err, strerror(r->err));
	ck_assert(memcmp(r->buf, data, strlen(data)) == 0);
	TALLOC_FREE(r->buf);
	TALLOC_FREE(r->src);
}

START_TEST(test_bsd_early_stream_not_in_send)
{
	struct tstream_context *a, *b;
	char rbuf[5], rbuf2[5];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct iovec riov2 = {.iov_base = rbuf2, .iov_len = sizeof(rbuf2)};
	struct iovec wiov = {.iov_base = (void *)"ping", .iov_len = 4};
	struct tevent_req *req;
	struct res r1, r2, w1, w2;

	bsd_pair(&a, &b);
	bsd_write_now(b, "hello");

	/* The bytes are there, yet the readv is done only from the loop... */
	req = start_readv(a, &riov, 1, &r1);
	ck_assert(tevent_req_is_in_progress(req));
	ck_assert(!r1.done);
	/* ...and holds the readv slot until then. */
	start_readv(a, &riov2, 1, &r2);
	ck_assert(!r2.done);

	/* The same for a writev that finds room in the socket buffer. */
	req = start_writev(a, &wiov, 1, &w1);
	ck_assert(tevent_req_is_in_progress(req));
	ck_assert(!w1.done);
	start_writev(a, &wiov, 1, &w2);
	ck_assert(!w2.done);

	assert_ok(r1, 5);
	ck_assert(memcmp(rbuf, "hello", 5) == 0);
	assert_failed(r2, EBUSY);
	assert_ok(w1, 4);
	assert_failed(w2, EBUSY);
}
END_TEST

START_TEST(test_bsd_early_stream_freed)
{
	struct tstream_context *a, *b;
	char rbuf[5], rbuf2[6], bbuf[8];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct iovec riov2 = {.iov_base = rbuf2, .iov_len = sizeof(rbuf2)};
	struct iovec biov = {.iov_base = bbuf, .iov_len = sizeof(bbuf)};
	struct iovec ping = {.iov_base = (void *)"ping", .iov_len = 4};
	struct iovec pong = {.iov_base = (void *)"pong", .iov_len = 4};
	struct tevent_req *req;
	struct res r1, r2, w1, w2, rb;

	bsd_pair(&a, &b);
	bsd_write_now(b, "hello world");

	/*
	 * Freed before its callback ran: the finish scheduled for it goes
	 * with it, the slot is free at once, and the next readv (started
	 * before the loop runs again) gets the bytes that followed.
	 */
	req = start_readv(a, &riov, 1, &r1);
	ck_assert(tevent_req_is_in_progress(req));
	talloc_free(req);
	start_readv(a, &riov2, 1, &r2);
	assert_ok(r2, 6);
	ck_assert(memcmp(rbuf2, " world", 6) == 0);
	ck_assert(!r1.done);

	/*
	 * The same with the loop running in between, on a fresh pair (a
	 * has found its socket empty by now, so its next readv would
	 * wait for epoll instead of being done at once).
	 */
	bsd_pair(&a, &b);
	bsd_write_now(b, "hello world");
	req = start_readv(a, &riov, 1, &r1);
	ck_assert(tevent_req_is_in_progress(req));
	talloc_free(req);
	loop_idle(20);
	ck_assert(!r1.done);
	start_readv(a, &riov2, 1, &r2);
	assert_ok(r2, 6);
	ck_assert(memcmp(rbuf2, " world", 6) == 0);

	/* A writev: its bytes went out, the next one follows them. */
	req = start_writev(a, &ping, 1, &w1);
	ck_assert(tevent_req_is_in_progress(req));
	talloc_free(req);
	start_writev(a, &pong, 1, &w2);
	assert_ok(w2, 4);
	ck_assert(!w1.done);
	start_readv(b, &biov, 1, &rb);
	assert_ok(rb, 8);
	ck_assert(memcmp(bbuf, "pingpong", 8) == 0);
	loop_idle(20);
	ck_assert(!r1.done);
	ck_assert(!w1.done);
}
END_TEST

START_TEST(test_bsd_early_stream_free_context)
{
	TALLOC_CTX *owner = talloc_new(tt_mem);
	struct tstream_context *a = NULL, *b = NULL;
	char rbuf[5];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct iovec wiov = {.iov_base = (void *)"ping", .iov_len = 4};
	struct tevent_req *rreq, *wreq;
	struct res r, w;

	ck_assert_int_eq(tstream_unix_socketpair(owner, &a, tt_mem, &b), 0);
	bsd_write_now(b, "hello");

	rreq = start_readv(a, &riov, 1, &r);
	wreq = start_writev(a, &wiov, 1, &w);
	ck_assert(tevent_req_is_in_progress(rreq));
	ck_assert(tevent_req_is_in_progress(wreq));

	/* Their I/O is over, but their stream is gone before they were. */
	talloc_free(owner);
	ck_assert(!r.done);
	ck_assert(!w.done);
	assert_failed(r, ENOTCONN);
	assert_failed(w, ENOTCONN);
	loop_idle(20);
}
END_TEST

START_TEST(test_bsd_early_dgram_not_in_send)
{
	struct tdgram_context *a, *b;
	struct tevent_req *req;
	struct dres r1, r2, s1, s2;

	bsd_dgram_pair(tt_mem, &a, &b);
	bsd_send_now(b, "one");

	req = start_recvfrom(a, &r1);
	ck_assert(tevent_req_is_in_progress(req));
	ck_assert(!r1.done);
	start_recvfrom(a, &r2);
	ck_assert(!r2.done);

	req = start_sendto(a, "ping", 4, &s1);
	ck_assert(tevent_req_is_in_progress(req));
	ck_assert(!s1.done);
	start_sendto(a, "pong", 4, &s2);
	ck_assert(!s2.done);

	assert_datagram(&r1, "one");
	assert_dfailed(r2, EBUSY);
	tt_wait(&s1.done, TT_DEADLINE_MS);
	ck_assert_int_eq(s1.ret, 4);
	assert_dfailed(s2, EBUSY);
}
END_TEST

START_TEST(test_bsd_early_dgram_freed)
{
	struct tdgram_context *a, *b;
	struct tevent_req *req;
	struct dres r1, r2, s1, s2, rb;

	bsd_dgram_pair(tt_mem, &a, &b);
	bsd_send_now(b, "one");
	bsd_send_now(b, "two");
	bsd_send_now(b, "three");

	/* The freed receive took "one" (and its buffer goes with it). */
	req = start_recvfrom(a, &r1);
	ck_assert(tevent_req_is_in_progress(req));
	talloc_free(req);
	start_recvfrom(a, &r2);
	assert_datagram(&r2, "two");

	req = start_recvfrom(a, &r1);
	talloc_free(req);
	loop_idle(20);
	ck_assert(!r1.done);
	bsd_send_now(b, "four");
	start_recvfrom(a, &r2);
	assert_datagram(&r2, "four");

	req = start_sendto(a, "ping", 4, &s1);
	ck_assert(tevent_req_is_in_progress(req));
	talloc_free(req);
	start_sendto(a, "pong", 4, &s2);
	tt_wait(&s2.done, TT_DEADLINE_MS);
	ck_assert_int_eq(s2.ret, 4);
	start_recvfrom(b, &rb);
	assert_datagram(&rb, "ping");
	start_recvfrom(b, &rb);
	assert_datagram(&rb, "pong");
	loop_idle(20);
	ck_assert(!r1.done);
	ck_assert(!s1.done);
}
END_TEST

START_TEST(test_bsd_early_dgram_free_context)
{
	TALLOC_CTX *owner = talloc_new(tt_mem);
	struct tdgram_context *a = NULL, *b = NULL;
	struct tevent_req *rreq, *sreq;
	struct dres r, s;

	bsd_dgram_pair(owner, &a, &b);
	bsd_send_now(b, "one");

	rreq = start_recvfrom(a, &r);
	sreq = start_sendto(a, "ping", 4, &s);
	ck_assert(tevent_req_is_in_progress(rreq));
	ck_assert(tevent_req_is_in_progress(sreq));

	talloc_free(owner);
	ck_assert(!r.done);
	ck_assert(!s.done);
	assert_dfailed(r, ENOTCONN);
	ck_assert_ptr_null(r.buf);
	assert_dfailed(s, ENOTCONN);
	loop_idle(20);
}
END_TEST

/*
 * tstream_readv_pdu's guards: a refused PDU read never asks for a vector
 * and leaves the outstanding request alone.
 */

struct pdu_count {
	int calls;
	struct res r;
};

static int pdu_count_next_vector(struct tstream_context *stream,
				 void *private_data,
				 TALLOC_CTX *mem_ctx,
				 struct iovec **vector,
				 size_t *count)
{
	struct pdu_count *p = private_data;

	p->calls++;
	*vector = NULL;
	*count = 0;
	return 0;
}

static void pdu_count_done(struct tevent_req *req)
{
	struct pdu_count *p = tevent_req_callback_data_void(req);

	p->r.ret = tstream_readv_pdu_recv(req, &p->r.err);
	p->r.done = true;
	talloc_free(req);
}

static void start_pdu_count(struct tstream_context *stream, struct pdu_count *p)
{
	struct tevent_req *req;

	*p = (struct pdu_count){.r = {.ret = -2}};
	req = tstream_readv_pdu_send(tt_mem, tt_ev, stream,
				     pdu_count_next_vector, p);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, pdu_count_done, p);
}

START_TEST(test_bsd_pdu_guards)
{
	struct tstream_context *a, *b;
	char rbuf[5];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct pdu_count p;
	struct res r, d;

	bsd_pair(&a, &b);

	/* A readv waiting for bytes. */
	start_readv(a, &riov, 1, &r);
	start_pdu_count(a, &p);
	ck_assert_int_eq(p.calls, 0);
	assert_failed(p.r, EBUSY);
	ck_assert_int_eq(p.calls, 0);
	ck_assert(!r.done);
	bsd_write_now(b, "hello");
	assert_ok(r, 5);
	ck_assert(memcmp(rbuf, "hello", 5) == 0);

	/* A readv done at once, not yet called back. */
	bsd_write_now(b, "world");
	start_readv(a, &riov, 1, &r);
	start_pdu_count(a, &p);
	assert_failed(p.r, EBUSY);
	ck_assert_int_eq(p.calls, 0);
	assert_ok(r, 5);
	ck_assert(memcmp(rbuf, "world", 5) == 0);

	/* The slot is free again: the PDU read runs (and asks once). */
	start_pdu_count(a, &p);
	assert_ok(p.r, 0);
	ck_assert_int_eq(p.calls, 1);

	/* While a disconnect runs, and after it. */
	start_disconnect(a, &d);
	start_pdu_count(a, &p);
	assert_failed(p.r, ENOTCONN);
	ck_assert_int_eq(p.calls, 0);
	assert_ok(d, 0);
	start_pdu_count(a, &p);
	assert_failed(p.r, ENOTCONN);
	ck_assert_int_eq(p.calls, 0);
}
END_TEST

START_TEST(test_stream_pdu_guards)
{
	struct tstream_context *stream;
	struct ctl_stream *cs;
	char rbuf[4];
	struct iovec riov = {.iov_base = rbuf, .iov_len = sizeof(rbuf)};
	struct pdu_count p;
	struct res r, d;

	stream = ctl_stream_make(tt_mem, &ctl_stream_ops, &cs);

	start_readv(stream, &riov, 1, &r);
	ck_assert_int_eq(cs->readv_calls, 1);
	start_pdu_count(stream, &p);
	assert_failed(p.r, EBUSY);
	ck_assert_int_eq(p.calls, 0);
	/* The type never saw it, and its readv is undisturbed. */
	ck_assert_int_eq(cs->readv_calls, 1);
	ck_assert_ptr_nonnull(cs->read_req);
	ctl_complete_read(cs, "abcd");
	assert_ok(r, 4);

	start_disconnect(stream, &d);
	assert_ok(d, 0);
	start_pdu_count(stream, &p);
	assert_failed(p.r, ENOTCONN);
	ck_assert_int_eq(p.calls, 0);
	ck_assert_int_eq(cs->readv_calls, 1);
}
END_TEST

/*
 * next_vector's mem_ctx: what a step allocated there is gone before the
 * next step asks, and after the last one, also when the PDU request is
 * freed half-way.
 */

struct pdu_pool {
	uint8_t hdr[2];
	uint8_t body[3];
	int step;
	/* markers allocated on mem_ctx and not yet freed */
	int live;
	/* next_vector calls that found an earlier step's marker alive */
	int stale;
	struct res r;
};

struct pdu_marker {
	int *live;
};

static int pdu_marker_destructor(struct pdu_marker *m)
{
	(*m->live)--;
	return 0;
}

static int pdu_pool_next_vector(struct tstream_context *stream,
				void *private_data,
				TALLOC_CTX *mem_ctx,
				struct iovec **vector,
				size_t *count)
{
	struct pdu_pool *p = private_data;
	struct pdu_marker *m;
	struct iovec *v;

	if (p->live != 0) {
		p->stale++;
	}
	if (p->step == 2) {
		*vector = NULL;
		*count = 0;
		return 0;
	}
	m = talloc(mem_ctx, struct pdu_marker);
	ck_assert_ptr_nonnull(m);
	m->live = &p->live;
	p->live++;
	talloc_set_destructor(m, pdu_marker_destructor);

	v = talloc(mem_ctx, struct iovec);
	ck_assert_ptr_nonnull(v);
	if (p->step == 0) {
		*v = (struct iovec){.iov_base = p->hdr, .iov_len = 2};
	} else {
		*v = (struct iovec){.iov_base = p->body, .iov_len = 3};
	}
	p->step++;
	*vector = v;
	*count = 1;
	return 0;
}

static void pdu_pool_done(struct tevent_req *req)
{
	struct pdu_pool *p = tevent_req_callback_data_void(req);

	p->r.ret = tstream_readv_pdu_recv(req, &p->r.err);
	p->r.done = true;
	talloc_free(req);
}

static struct tevent_req *start_pdu_pool(struct tstream_context *stream,
					 struct pdu_pool *p)
{
	struct tevent_req *req;

	*p = (struct pdu_pool){.r = {.ret = -2}};
	req = tstream_readv_pdu_send(tt_mem, tt_ev, stream,
				     pdu_pool_next_vector, p);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, pdu_pool_done, p);
	return req;
}

START_TEST(test_bsd_pdu_vector_ctx_emptied)
{
	struct tstream_context *a, *b;
	struct tevent_req *req;
	struct pdu_pool p;
	struct res d;

	bsd_pair(&a, &b);

	/* Header and body already there: still done from the loop only. */
	bsd_write_now(b, "hiabc");
	req = start_pdu_pool(a, &p);
	ck_assert(tevent_req_is_in_progress(req));
	ck_assert(!p.r.done);
	assert_ok(p.r, 5);
	ck_assert(memcmp(p.hdr, "hi", 2) == 0);
	ck_assert(memcmp(p.body, "abc", 3) == 0);
	ck_assert_int_eq(p.stale, 0);
	ck_assert_int_eq(p.live, 0);

	/* Each step waits for its bytes. */
	start_pdu_pool(a, &p);
	loop_idle(10);
	bsd_write_now(b, "HI");
	loop_idle(10);
	bsd_write_now(b, "ABC");
	assert_ok(p.r, 5);
	ck_assert(memcmp(p.body, "ABC", 3) == 0);
	ck_assert_int_eq(p.stale, 0);
	ck_assert_int_eq(p.live, 0);

	/* Freed while its body's read waits: the last vector goes too. */
	bsd_write_now(b, "hi");
	req = start_pdu_pool(a, &p);
	loop_idle(20);
	ck_assert_int_eq(p.step, 2);
	ck_assert_int_eq(p.live, 1);
	talloc_free(req);
	ck_assert_int_eq(p.live, 0);

	/* Cut short by the end of the stream: the same. */
	start_pdu_pool(a, &p);
	start_disconnect(b, &d);
	assert_ok(d, 0);
	assert_failed(p.r, EPIPE);
	ck_assert_int_eq(p.live, 0);
}
END_TEST

static Suite *tsocket_generic_suite(void)
{
	Suite *s = suite_create("tsocket_generic");
	TCase *tc;

	tc = tt_tcase(s, "address", 10);
	tcase_add_test(tc, test_address_string_copy);
	tcase_add_test(tc, test_context_data);

	tc = tt_tcase(s, "stream_args", 10);
	tcase_add_test(tc, test_stream_args);
	tcase_add_test(tc, test_stream_vector_copied);

	tc = tt_tcase(s, "stream_busy", 10);
	tcase_add_test(tc, test_stream_busy);
	tcase_add_test(tc, test_stream_errors_pass_through);

	tc = tt_tcase(s, "stream_disconnect", 10);
	tcase_add_test(tc, test_stream_after_disconnect);
	tcase_add_test(tc, test_stream_disconnect_failed);

	tc = tt_tcase(s, "stream_shutdown", 10);
	tcase_add_test(tc, test_stream_shutdown_unsupported);
	tcase_add_test(tc, test_stream_shutdown_half_close);

	tc = tt_tcase(s, "stream_wait_readable", 10);
	tcase_add_test(tc, test_stream_wait_readable);
	tcase_add_test(tc, test_stream_wait_readable_unsupported);
	tcase_add_test(tc, test_stream_readable_handler);
	tcase_add_test(tc, test_stream_readable_handler_unsupported);

	tc = tt_tcase(s, "stream_free", 10);
	tcase_add_test(tc, test_stream_free_with_outstanding);
	tcase_add_test(tc, test_stream_free_request);
	tcase_add_test(tc, test_stream_free_after_ev);
	tcase_add_test(tc, test_stream_free_in_callback);
	tcase_add_test(tc, test_stream_endtime);

	tc = tt_tcase(s, "dgram", 10);
	tcase_add_test(tc, test_dgram_results_moved);
	tcase_add_test(tc, test_dgram_src_optional);
	tcase_add_test(tc, test_dgram_guards);
	tcase_add_test(tc, test_dgram_free_with_outstanding);

	tc = tt_tcase(s, "bsd", 10);
	tcase_add_unchecked_fixture(tc, tt_scratch_setup, tt_scratch_teardown);
	tcase_add_test(tc, test_bsd_stream_busy);
	tcase_add_test(tc, test_bsd_stream_disconnect);
	tcase_add_test(tc, test_bsd_stream_shutdown);
	tcase_add_test(tc, test_bsd_stream_free_outstanding);
	tcase_add_test(tc, test_bsd_dgram_guards);

	tc = tt_tcase(s, "bsd_done_at_once", 10);
	tcase_add_test(tc, test_bsd_early_stream_not_in_send);
	tcase_add_test(tc, test_bsd_early_stream_freed);
	tcase_add_test(tc, test_bsd_early_stream_free_context);
	tcase_add_test(tc, test_bsd_early_dgram_not_in_send);
	tcase_add_test(tc, test_bsd_early_dgram_freed);
	tcase_add_test(tc, test_bsd_early_dgram_free_context);

	tc = tt_tcase(s, "readv_pdu", 10);
	tcase_add_test(tc, test_stream_pdu_guards);
	tcase_add_test(tc, test_bsd_pdu_guards);
	tcase_add_test(tc, test_bsd_pdu_vector_ctx_emptied);

	return s;
}

int main(void)
{
	return tt_run_suite(tsocket_generic_suite());
}
