/* SPDX-License-Identifier: MIT */
/*
 * The tsocket oracle: one program, built twice from this source (against
 * tsgate's libtsocket as tsocket_oracle, against Samba's private
 * libsamba-sockets-samba4.so.0 as tsocket_oracle_samba), that runs the
 * same seeded operation sequences and prints one canonical trace line per
 * operation: result, errno name, byte count, a hash of the bytes.
 * tsocket_oracle.py runs both with several seeds and diffs the traces;
 * docs/tsocket.md describes it.
 *
 * Only API both libraries share is used. Results that depend on timing
 * (port numbers, how requests interleave) never reach the trace: the
 * results of concurrent requests are printed after they all finished, in
 * the order they were issued, and addresses by role.
 *
 * Where tsgate differs from Samba on purpose (docs/api.md, "Differences
 * from Samba" and "Decisions taken where the seed is silent"), the trace
 * line says "by-design(<doc reference>)" when, and only when, the result
 * is exactly the documented one for the library under test: any other
 * result shows raw and makes the traces differ.
 *
 * Usage: tsocket_oracle SEED [PHASE...]   (phases: stream pdu ends
 * guards dgram addr; default all). Exit 0 when every phase ran to its
 * end (a difference in results is the driver's business), 2 on a usage
 * error, 3 when an operation hung past its deadline.
 */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <talloc.h>
#include <tevent.h>
#include <tsocket.h>

#ifdef ORACLE_SAMBA
#define IMPL "samba"
#else
#define IMPL "tsgate"
#endif

/* the longest a single operation may take before the run is a failure */
#define DEADLINE_S 20
/* an upper bound of one vector's bytes, keeps a seed's run short */
#define VECTOR_BUDGET (2u << 20)
/* the pattern the writers send: a random block, repeated */
#define SRC_LEN 1048583u

static struct tevent_context *ev;
static TALLOC_CTX *mem;
static uint64_t rng;
/*
 * The sequence random choices come from: rng, or a flow side's own
 * (requests finish in an order that depends on timing, their choices
 * must not).
 */
static uint64_t *rngp = &rng;
static unsigned opno;
static uint8_t *src;
static char tmpdir[64];

/* xorshift64*: every random choice comes from the seed */
static uint64_t rnd(void)
{
	*rngp ^= *rngp >> 12;
	*rngp ^= *rngp << 25;
	*rngp ^= *rngp >> 27;
	return *rngp * 0x2545F4914F6CDD1DULL;
}

static size_t below(size_t n)
{
	return n == 0 ? 0 : (size_t)(rnd() % n);
}

static const char *errname(int err)
{
	static char buf[16];

	switch (err) {
	case 0:
		return "0";
	case EPIPE:
		return "EPIPE";
	case ECONNRESET:
		return "ECONNRESET";
	case ECONNREFUSED:
		return "ECONNREFUSED";
	case ECONNABORTED:
		return "ECONNABORTED";
	case EINVAL:
		return "EINVAL";
	case EMSGSIZE:
		return "EMSGSIZE";
	case EBUSY:
		return "EBUSY";
	case ENOTCONN:
		return "ENOTCONN";
	case EISCONN:
		return "EISCONN";
	case EDESTADDRREQ:
		return "EDESTADDRREQ";
	case EADDRNOTAVAIL:
		return "EADDRNOTAVAIL";
	case EADDRINUSE:
		return "EADDRINUSE";
	case EAFNOSUPPORT:
		return "EAFNOSUPPORT";
	case ENOENT:
		return "ENOENT";
	case ENAMETOOLONG:
		return "ENAMETOOLONG";
	case EOPNOTSUPP:
		return "EOPNOTSUPP";
	case EAGAIN:
		return "EAGAIN";
	case ETIMEDOUT:
		return "ETIMEDOUT";
	case EACCES:
		return "EACCES";
	case ENOTSOCK:
		return "ENOTSOCK";
	case EBADF:
		return "EBADF";
	case ENOMEM:
		return "ENOMEM";
	case EIO:
		return "EIO";
	case ENOSYS:
		return "ENOSYS";
	case EPROTOTYPE:
		return "EPROTOTYPE";
	case EPROTO:
		return "EPROTO";
	default:
		snprintf(buf, sizeof(buf), "E%d", err);
		return buf;
	}
}

/* FNV-1a, 64 bits: a cheap hash of the bytes a read delivered */
static uint64_t fnv(uint64_t h, const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001B3ULL;
	}
	return h;
}
#define FNV_INIT 0xCBF29CE484222325ULL

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
	va_list ap;

	printf("%05u ", opno++);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* the result part of a line: ret, errno name */
#define RES_FMT       "ret=%ld err=%s"
#define RES(ret, err) (long)(ret), errname((ret) == -1 ? (err) : 0)

/*
 * A case where tsgate and Samba differ on purpose, documented at ref:
 * "by-design(ref)" when this library gave exactly its documented result
 * (documented is that check, made for the library under test), else the
 * raw result, which then differs from the other library's line.
 */
static void trace_by_design(
    const char *what, const char *ref, bool documented, long ret, int err)
{
	if (documented) {
		trace("%s by-design(%s)", what, ref);
	} else {
		trace("%s " RES_FMT, what, RES(ret, err));
	}
}

#ifdef ORACLE_SAMBA
#define TSGATE_OR_SAMBA(t, s) (s)
#else
#define TSGATE_OR_SAMBA(t, s) (t)
#endif

/* ---- bounded event loop ---- */

static void deadline_fired(struct tevent_context *e,
			   struct tevent_timer *te,
			   struct timeval now,
			   void *private_data)
{
	bool *expired = private_data;

	*expired = true;
}

/* Runs the loop until *done; a hang ends the run (exit 3). */
static void wait_for(const bool *done, const char *what)
{
	bool expired = false;
	struct tevent_timer *te;

	te =
	    tevent_add_timer(ev, mem, tevent_timeval_current_ofs(DEADLINE_S, 0),
			     deadline_fired, &expired);
	while (!*done && !expired) {
		if (tevent_loop_once(ev) != 0) {
			break;
		}
	}
	if (!expired) {
		talloc_free(te);
	}
	if (!*done) {
		trace("HANG %s", what);
		fflush(stdout);
		fprintf(stderr, "tsocket_oracle (%s): %s hung for %d s\n", IMPL,
			what, DEADLINE_S);
		exit(3);
	}
}

/* Runs the loop for a moment: lets a request that would finish do so. */
static void settle(void)
{
	bool expired = false;

	/* a timer that fired is freed by tevent: not kept */
	if (tevent_add_timer(ev, mem, tevent_timeval_current_ofs(0, 20000),
			     deadline_fired, &expired) == NULL) {
		exit(1);
	}
	while (!expired) {
		tevent_loop_once(ev);
	}
}

static void set_done(struct tevent_req *req)
{
	bool *done = tevent_req_callback_data_void(req);

	*done = true;
}

/* ---- vectors ---- */

struct vec {
	struct iovec iov[IOV_MAX + 1];
	size_t count;
	size_t total;
};

/*
 * A random shape: 1..IOV_MAX buffers (mostly few), each 0..1 MiB (many
 * empty, most small), at most VECTOR_BUDGET bytes and at most limit.
 */
static void random_shape(struct vec *v, size_t limit)
{
	size_t i, r = below(10);

	v->count = r < 5   ? 1 + below(4)
		   : r < 8 ? 5 + below(60)
			   : 65 + below(IOV_MAX - 64);
	v->total = 0;
	for (i = 0; i < v->count; i++) {
		size_t n;

		r = below(10);
		n = r < 4   ? 0
		    : r < 7 ? 1 + below(64)
		    : r < 9 ? 65 + below(8192)
			    : below((1 << 20) + 1);
		if (n > VECTOR_BUDGET - v->total) {
			n = VECTOR_BUDGET - v->total;
		}
		if (n > limit - v->total) {
			n = limit - v->total;
		}
		v->iov[i].iov_len = n;
		v->total += n;
	}
}

/* the writer's buffers: the stream bytes from offset off on */
static void point_at_source(struct vec *v, size_t off)
{
	size_t i;

	for (i = 0; i < v->count; i++) {
		v->iov[i].iov_base = src + (off % SRC_LEN);
		off += v->iov[i].iov_len;
	}
}

/* the reader's buffers, laid out back to front in scratch */
static void point_at_scratch(struct vec *v, uint8_t *scratch)
{
	size_t i, end = VECTOR_BUDGET;

	for (i = 0; i < v->count; i++) {
		end -= v->iov[i].iov_len;
		v->iov[i].iov_base = scratch + end;
	}
}

static uint64_t hash_vec(const struct vec *v, size_t len)
{
	uint64_t h = FNV_INIT;
	size_t i;

	for (i = 0; i < v->count && len > 0; i++) {
		size_t n = v->iov[i].iov_len < len ? v->iov[i].iov_len : len;

		h = fnv(h, v->iov[i].iov_base, n);
		len -= n;
	}
	return h;
}

/* the hash the stream bytes [off, off + len) should have */
static uint64_t hash_source(size_t off, size_t len)
{
	uint64_t h = FNV_INIT;

	while (len > 0) {
		size_t o = off % SRC_LEN;
		size_t n = SRC_LEN - o < len ? SRC_LEN - o : len;

		h = fnv(h, src + o, n);
		off += n;
		len -= n;
	}
	return h;
}

/* ---- stream pairs ---- */

/* A connected TCP pair over 127.0.0.1 (family AF_INET) or ::1. */
static void tcp_fds(int fds[2], int family)
{
	struct sockaddr_storage ss = {.ss_family = (sa_family_t)family};
	socklen_t len;
	int lfd;

	if (family == AF_INET) {
		((struct sockaddr_in *)&ss)->sin_addr.s_addr =
		    htonl(INADDR_LOOPBACK);
		len = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
		len = sizeof(struct sockaddr_in6);
	}
	lfd = socket(family, SOCK_STREAM, 0);
	if (lfd == -1 || bind(lfd, (struct sockaddr *)&ss, len) != 0 ||
	    listen(lfd, 1) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&ss, &len) != 0) {
		perror("tcp listener");
		exit(1);
	}
	fds[0] = socket(family, SOCK_STREAM, 0);
	if (fds[0] == -1 || connect(fds[0], (struct sockaddr *)&ss, len) != 0) {
		perror("tcp connect");
		exit(1);
	}
	fds[1] = accept(lfd, NULL, NULL);
	if (fds[1] == -1) {
		perror("accept");
		exit(1);
	}
	close(lfd);
}

/*
 * Samba's *_bsd_existing_socket want a non-blocking fd (tsgate sets
 * O_NONBLOCK itself, tsocket.md): the oracle hands both one.
 */
static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1) {
		perror("O_NONBLOCK");
		exit(1);
	}
}

static void wrap_fd(int fd, struct tstream_context **s)
{
	set_nonblock(fd);
	if (tstream_bsd_existing_socket(mem, fd, s) != 0) {
		perror("tstream_bsd_existing_socket");
		exit(1);
	}
}

/*
 * kind 0: tstream_unix_socketpair, 1: TCP over 127.0.0.1, 2: socketpair(2)
 * wrapped, 3: TCP over ::1
 */
#define STREAM_KINDS      4
#define KIND_IS_TCP(kind) ((kind) == 1 || (kind) == 3)
static void stream_pair(int kind,
			struct tstream_context **a,
			struct tstream_context **b)
{
	int fds[2];

	if (kind == 0) {
		if (tstream_unix_socketpair(mem, a, mem, b) != 0) {
			perror("tstream_unix_socketpair");
			exit(1);
		}
		return;
	}
	if (KIND_IS_TCP(kind)) {
		tcp_fds(fds, kind == 1 ? AF_INET : AF_INET6);
	} else if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
		perror("socketpair");
		exit(1);
	}
	wrap_fd(fds[0], a);
	wrap_fd(fds[1], b);
}

/* ---- phase stream: random vectors both ways at once ---- */

#define MAX_OPS 64

struct op_result {
	int ret;
	int err;
	size_t count;
	size_t total;
	uint64_t hash;
	bool match;
};

struct flow {
	const char *name;
	struct tstream_context *w, *r;
	size_t len;          /* bytes this round */
	size_t w_off;        /* offset the writer is at (this round) */
	size_t r_off;        /* offset the reader is at */
	size_t base;         /* the stream offset of this round's first byte */
	uint64_t wrng, rrng; /* each side's random sequence */
	struct vec wv, rv;
	uint8_t *scratch;
	struct op_result wres[MAX_OPS], rres[MAX_OPS];
	size_t nw, nr;
	bool w_done, r_done;
};

static void flow_write(struct flow *f);
static void flow_read(struct flow *f);

static void flow_write_done(struct tevent_req *req)
{
	struct flow *f = tevent_req_callback_data_void(req);
	struct op_result *res = &f->wres[f->nw++];

	res->ret = tstream_writev_recv(req, &res->err);
	talloc_free(req);
	if (res->ret > 0) {
		f->w_off += (size_t)res->ret;
	}
	if (res->ret == -1 && res->err != EINVAL) {
		f->w_done = true;
		return;
	}
	flow_write(f);
}

static void flow_write(struct flow *f)
{
	struct tevent_req *req;
	struct op_result *res;

	if (f->w_off >= f->len || f->nw == MAX_OPS - 1) {
		f->w_done = true;
		return;
	}
	rngp = &f->wrng;
	random_shape(&f->wv, f->len - f->w_off);
	rngp = &rng;
	point_at_source(&f->wv, f->base + f->w_off);
	res = &f->wres[f->nw];
	res->count = f->wv.count;
	res->total = f->wv.total;
	req = tstream_writev_send(mem, ev, f->w, f->wv.iov, f->wv.count);
	if (req == NULL) {
		exit(1);
	}
	tevent_req_set_callback(req, flow_write_done, f);
}

static void flow_read_done(struct tevent_req *req)
{
	struct flow *f = tevent_req_callback_data_void(req);
	struct op_result *res = &f->rres[f->nr++];

	res->ret = tstream_readv_recv(req, &res->err);
	talloc_free(req);
	if (res->ret > 0) {
		res->hash = hash_vec(&f->rv, (size_t)res->ret);
		res->match = res->hash ==
			     hash_source(f->base + f->r_off, (size_t)res->ret);
		f->r_off += (size_t)res->ret;
	}
	if (res->ret == -1 && res->err != EINVAL) {
		f->r_done = true;
		return;
	}
	flow_read(f);
}

static void flow_read(struct flow *f)
{
	struct tevent_req *req;
	struct op_result *res;

	/* the writer gives up at MAX_OPS: read only what it sends */
	if (f->r_off >= f->len || f->nr == MAX_OPS - 1 ||
	    (f->w_done && f->r_off >= f->w_off)) {
		f->r_done = true;
		return;
	}
	rngp = &f->rrng;
	random_shape(&f->rv, f->len - f->r_off);
	rngp = &rng;
	point_at_scratch(&f->rv, f->scratch);
	res = &f->rres[f->nr];
	res->count = f->rv.count;
	res->total = f->rv.total;
	req = tstream_readv_send(mem, ev, f->r, f->rv.iov, f->rv.count);
	if (req == NULL) {
		exit(1);
	}
	tevent_req_set_callback(req, flow_read_done, f);
}

static void flow_trace(const struct flow *f)
{
	size_t i;

	for (i = 0; i < f->nw; i++) {
		const struct op_result *r = &f->wres[i];

		trace("%s writev n=%zu total=%zu " RES_FMT, f->name, r->count,
		      r->total, RES(r->ret, r->err));
	}
	for (i = 0; i < f->nr; i++) {
		const struct op_result *r = &f->rres[i];

		trace("%s readv n=%zu total=%zu " RES_FMT " hash=%016llx%s",
		      f->name, r->count, r->total, RES(r->ret, r->err),
		      r->ret > 0 ? (unsigned long long)r->hash : 0ULL,
		      r->ret > 0 && !r->match ? " WRONG-BYTES" : "");
	}
}

static void phase_stream(void)
{
	static const char *kinds[] = {"socketpair", "tcp", "fdpair", "tcp6"};
	struct flow *ab = talloc_zero(mem, struct flow);
	struct flow *ba = talloc_zero(mem, struct flow);
	unsigned k, round;

	ab->scratch = talloc_size(ab, VECTOR_BUDGET);
	ba->scratch = talloc_size(ba, VECTOR_BUDGET);
	for (k = 0; k < STREAM_KINDS; k++) {
		struct tstream_context *a, *b;
		size_t base_ab = 0, base_ba = 0;

		stream_pair((int)k, &a, &b);
		trace("stream %s", kinds[k]);
		for (round = 0; round < 3; round++) {
			size_t nw, nr;

			*ab = (struct flow){.name = "a>b",
					    .w = a,
					    .r = b,
					    .scratch = ab->scratch,
					    .base = base_ab};
			*ba = (struct flow){.name = "b>a",
					    .w = b,
					    .r = a,
					    .scratch = ba->scratch,
					    .base = base_ba};
			ab->len = 1 + below(6u << 20);
			ba->len = below(2) ? 1 + below(6u << 20) : 1;
			ab->wrng = rnd() | 1;
			ab->rrng = rnd() | 1;
			ba->wrng = rnd() | 1;
			ba->rrng = rnd() | 1;
			/* both writers and both readers at once */
			flow_write(ab);
			flow_write(ba);
			flow_read(ab);
			flow_read(ba);
			wait_for(&ab->r_done, "stream a>b read");
			wait_for(&ba->r_done, "stream b>a read");
			wait_for(&ab->w_done, "stream a>b write");
			wait_for(&ba->w_done, "stream b>a write");
			nw = ab->w_off;
			nr = ab->r_off;
			trace("round %u a>b wrote=%zu read=%zu", round, nw, nr);
			trace("round %u b>a wrote=%zu read=%zu", round,
			      ba->w_off, ba->r_off);
			flow_trace(ab);
			flow_trace(ba);
			base_ab += ab->w_off;
			base_ba += ba->w_off;
			if (ab->r_off != ab->w_off || ba->r_off != ba->w_off) {
				/* a stream out of step: the rest is moot */
				break;
			}
		}
		talloc_free(a);
		talloc_free(b);
	}
	talloc_free(ab);
	talloc_free(ba);
}

/* ---- phase pdu: tstream_readv_pdu with random vector shapes ---- */

struct pdu_reader {
	uint8_t hdr[4];
	uint8_t *body;
	size_t body_len;
	int step;
	struct vec v;
	uint64_t hash;
	int ret;
	int err;
	bool done;
};

/* a vector of total len over buf, in a random shape of up to 64 entries */
static void split(struct vec *v, uint8_t *buf, size_t len)
{
	size_t i, left = len;

	v->count = 1 + below(below(4) == 0 ? 64 : 4);
	for (i = 0; i < v->count; i++) {
		size_t n = i + 1 == v->count ? left
			   : below(3) == 0   ? 0
					     : below(left + 1);

		v->iov[i].iov_base = buf + (len - left);
		v->iov[i].iov_len = n;
		left -= n;
	}
	v->total = len;
}

static int pdu_next_vector(struct tstream_context *stream,
			   void *private_data,
			   TALLOC_CTX *mem_ctx,
			   struct iovec **_vector,
			   size_t *_count)
{
	struct pdu_reader *p = private_data;
	struct iovec *vector;

	switch (p->step++) {
	case 0:
		split(&p->v, p->hdr, 4);
		break;
	case 1:
		p->body_len = (size_t)p->hdr[0] << 24 |
			      (size_t)p->hdr[1] << 16 | (size_t)p->hdr[2] << 8 |
			      p->hdr[3];
		if (p->body_len == 0) {
			*_vector = NULL;
			*_count = 0;
			return 0;
		}
		p->body = talloc_size(p, p->body_len);
		split(&p->v, p->body, p->body_len);
		break;
	default:
		*_vector = NULL;
		*_count = 0;
		return 0;
	}
	vector =
	    talloc_memdup(mem_ctx, p->v.iov, p->v.count * sizeof(struct iovec));
	if (vector == NULL) {
		return -1;
	}
	*_vector = vector;
	*_count = p->v.count;
	return 0;
}

static void pdu_read_done(struct tevent_req *req)
{
	struct pdu_reader *p = tevent_req_callback_data_void(req);

	p->ret = tstream_readv_pdu_recv(req, &p->err);
	talloc_free(req);
	p->done = true;
}

static void phase_pdu(void)
{
	struct tstream_context *a, *b;
	uint8_t *wire = talloc_size(mem, 4 + 300000);
	unsigned i;

	stream_pair(0, &a, &b);
	for (i = 0; i < 12; i++) {
		struct pdu_reader *p = talloc_zero(mem, struct pdu_reader);
		size_t len = below(4) == 0 ? 0 : below(300001);
		struct vec wv;
		struct tevent_req *wreq, *rreq;
		bool wdone = false;
		int wret, werr = 0;

		wire[0] = (uint8_t)(len >> 24);
		wire[1] = (uint8_t)(len >> 16);
		wire[2] = (uint8_t)(len >> 8);
		wire[3] = (uint8_t)len;
		memcpy(wire + 4, src, len);
		split(&wv, wire, 4 + len);
		/* the reader first, half the time: it waits for the header */
		if (below(2) == 0) {
			rreq = tstream_readv_pdu_send(p, ev, b, pdu_next_vector,
						      p);
			wreq =
			    tstream_writev_send(mem, ev, a, wv.iov, wv.count);
		} else {
			wreq =
			    tstream_writev_send(mem, ev, a, wv.iov, wv.count);
			rreq = tstream_readv_pdu_send(p, ev, b, pdu_next_vector,
						      p);
		}
		tevent_req_set_callback(wreq, set_done, &wdone);
		tevent_req_set_callback(rreq, pdu_read_done, p);
		wait_for(&p->done, "pdu read");
		wait_for(&wdone, "pdu write");
		wret = tstream_writev_recv(wreq, &werr);
		talloc_free(wreq);
		trace("pdu writev n=%zu " RES_FMT, wv.count, RES(wret, werr));
		trace("pdu readv_pdu len=%zu " RES_FMT " hash=%016llx%s", len,
		      RES(p->ret, p->err),
		      p->ret > 0 ? (unsigned long long)fnv(FNV_INIT, p->body,
							   p->body_len)
				 : 0ULL,
		      p->ret > 0 &&
			      (p->body_len != len ||
			       (len > 0 && memcmp(p->body, src, len) != 0))
			  ? " WRONG-BYTES"
			  : "");
		talloc_free(p);
	}
	talloc_free(a);
	talloc_free(b);
	talloc_free(wire);
}

/* ---- single requests, waited for ---- */

static int do_readv(struct tstream_context *s,
		    struct iovec *iov,
		    size_t n,
		    int *perr)
{
	struct tevent_req *req;
	bool done = false;
	int ret;

	*perr = 0;
	req = tstream_readv_send(mem, ev, s, iov, n);
	tevent_req_set_callback(req, set_done, &done);
	wait_for(&done, "readv");
	ret = tstream_readv_recv(req, perr);
	talloc_free(req);
	return ret;
}

static int do_writev(struct tstream_context *s,
		     struct iovec *iov,
		     size_t n,
		     int *perr)
{
	struct tevent_req *req;
	bool done = false;
	int ret;

	*perr = 0;
	req = tstream_writev_send(mem, ev, s, iov, n);
	tevent_req_set_callback(req, set_done, &done);
	wait_for(&done, "writev");
	ret = tstream_writev_recv(req, perr);
	talloc_free(req);
	return ret;
}

static int do_disconnect(struct tstream_context *s, int *perr)
{
	struct tevent_req *req;
	bool done = false;
	int ret;

	*perr = 0;
	req = tstream_disconnect_send(mem, ev, s);
	tevent_req_set_callback(req, set_done, &done);
	wait_for(&done, "disconnect");
	ret = tstream_disconnect_recv(req, perr);
	talloc_free(req);
	return ret;
}

static void trace_pending(const char *what, struct tstream_context *s)
{
	ssize_t ret;
	int err;

	errno = 0;
	ret = tstream_pending_bytes(s);
	err = errno;
	trace("%s pending_bytes " RES_FMT, what, RES(ret, err));
}

/* ---- phase ends: EOF, reset, EBUSY, ENOTCONN ---- */

static void phase_ends(void)
{
	struct tstream_context *a, *b;
	uint8_t *buf = talloc_size(mem, 1 << 20);
	struct iovec iov[3];
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct tevent_req *r1, *r2, *w1, *w2;
	bool d1 = false, d3 = false;
	size_t n = 1 + below(100000), m = 1 + below(5000);
	int fds[2], kind;
	int ret, err;

	/* EOF: n bytes, then the peer closes; a readv of n + m crosses it */
	kind = (int)below(STREAM_KINDS);
	stream_pair(kind, &a, &b);
	iov[0] = (struct iovec){src, n};
	ret = do_writev(a, iov, 1, &err);
	trace("eof writev %zu " RES_FMT, n, RES(ret, err));
	talloc_free(a);
	iov[0] = (struct iovec){buf, n / 2};
	iov[1] = (struct iovec){buf + n / 2, 0};
	iov[2] = (struct iovec){buf + n / 2, n - n / 2};
	ret = do_readv(b, iov, 3, &err);
	trace("eof readv %zu " RES_FMT " hash=%016llx", n, RES(ret, err),
	      ret > 0 ? (unsigned long long)fnv(FNV_INIT, buf, n) : 0ULL);
	{
		/*
		 * tsgate reports the EOF at the readv, not before
		 * (tsocket.md, Streams: pending_bytes); Samba polls for it
		 * and says EPIPE, or ECONNRESET for a TCP FIN (POLLRDHUP).
		 */
		ssize_t pend;

		errno = 0;
		pend = tstream_pending_bytes(b);
		err = errno;
		trace_by_design(
		    "eof after-data pending_bytes", "tsocket.md pending_bytes",
		    TSGATE_OR_SAMBA(pend == 0,
				    pend == -1 &&
					(err == EPIPE || err == ECONNRESET)),
		    pend, err);
	}
	iov[0] = (struct iovec){buf, m};
	iov[1] = (struct iovec){buf + m, 4096};
	ret = do_readv(b, iov, 2, &err);
	/*
	 * The end of a stream is EPIPE in tsgate, for TCP too (tsocket.md,
	 * Streams); Samba 4.17 says ECONNRESET after a TCP FIN (its poll
	 * sees POLLRDHUP) and EPIPE for unix sockets.
	 */
	trace_by_design(
	    "eof readv-past-end", "tsocket.md end of stream",
	    ret == -1 && TSGATE_OR_SAMBA(
			     err == EPIPE,
			     err == (KIND_IS_TCP(kind) ? ECONNRESET : EPIPE)),
	    ret, err);
	ret = do_readv(b, iov, 1, &err);
	trace_by_design(
	    "eof readv-again", "tsocket.md end of stream",
	    ret == -1 && TSGATE_OR_SAMBA(
			     err == EPIPE,
			     err == (KIND_IS_TCP(kind) ? ECONNRESET : EPIPE)),
	    ret, err);
	{
		ssize_t pend;

		errno = 0;
		pend = tstream_pending_bytes(b);
		err = errno;
		trace_by_design(
		    "eof pending_bytes", "tsocket.md end of stream",
		    pend == -1 &&
			TSGATE_OR_SAMBA(
			    err == EPIPE,
			    err == (KIND_IS_TCP(kind) ? ECONNRESET : EPIPE)),
		    pend, err);
	}
	iov[0] = (struct iovec){src, 100};
	ret = do_writev(b, iov, 1, &err);
	if (KIND_IS_TCP(kind)) {
		/*
		 * TCP cannot tell a close from a half-close: tsgate writes
		 * on after the peer's FIN (tsocket.md, Streams: a half-closed
		 * peer), Samba 4.17 fails the write with ECONNRESET (its
		 * poll sees POLLRDHUP).
		 */
		trace_by_design(
		    "eof writev-to-closed", "tsocket.md half-close",
		    TSGATE_OR_SAMBA(ret == 100, ret == -1 && err == ECONNRESET),
		    ret, err);
	} else {
		trace("eof writev-to-closed " RES_FMT, RES(ret, err));
	}
	talloc_free(b);

	/* reset: a TCP peer closes with SO_LINGER 0 */
	tcp_fds(fds, below(2) == 0 ? AF_INET : AF_INET6);
	wrap_fd(fds[0], &b);
	if (write(fds[1], src, m) != (ssize_t)m) {
		exit(1);
	}
	iov[0] = (struct iovec){buf, m};
	ret = do_readv(b, iov, 1, &err);
	trace("reset readv-before " RES_FMT, RES(ret, err));
	setsockopt(fds[1], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fds[1]);
	iov[0] = (struct iovec){buf, 4096};
	iov[1] = (struct iovec){buf + 4096, 1};
	ret = do_readv(b, iov, 2, &err);
	trace("reset readv " RES_FMT, RES(ret, err));
	ret = do_readv(b, iov, 2, &err);
	trace("reset readv-again " RES_FMT, RES(ret, err));
	iov[0] = (struct iovec){src, 100};
	ret = do_writev(b, iov, 1, &err);
	trace("reset writev " RES_FMT, RES(ret, err));
	talloc_free(b);

	/* EBUSY: a second readv, a second writev while one waits */
	stream_pair((int)below(STREAM_KINDS), &a, &b);
	iov[0] = (struct iovec){buf, 10};
	r1 = tstream_readv_send(mem, ev, b, iov, 1);
	tevent_req_set_callback(r1, set_done, &d1);
	r2 = tstream_readv_send(mem, ev, b, iov, 1);
	tevent_req_set_callback(r2, set_done, &d3);
	wait_for(&d3, "second readv");
	ret = tstream_readv_recv(r2, &err);
	trace("busy readv-second " RES_FMT, RES(ret, err));
	talloc_free(r2);
	trace("busy readv-first in-progress=%d", tevent_req_is_in_progress(r1));
	iov[0] = (struct iovec){src, 10};
	ret = do_writev(a, iov, 1, &err);
	trace("busy writev-small " RES_FMT, RES(ret, err));
	wait_for(&d1, "first readv");
	ret = tstream_readv_recv(r1, &err);
	trace("busy readv-first " RES_FMT " hash=%016llx", RES(ret, err),
	      (unsigned long long)fnv(FNV_INIT, buf, 10));
	talloc_free(r1);
	{
		/* 24 MiB the reader does not take yet: the writev waits */
		static struct iovec big[24];
		bool dw = false, dw2 = false, dr = false;
		struct tevent_req *rr;
		size_t i, got = 0;

		for (i = 0; i < 24; i++) {
			big[i] = (struct iovec){src, 1 << 20};
		}
		w1 = tstream_writev_send(mem, ev, a, big, 24);
		tevent_req_set_callback(w1, set_done, &dw);
		settle();
		trace("busy writev-big in-progress=%d",
		      tevent_req_is_in_progress(w1));
		w2 = tstream_writev_send(mem, ev, a, iov, 1);
		tevent_req_set_callback(w2, set_done, &dw2);
		wait_for(&dw2, "second writev");
		ret = tstream_writev_recv(w2, &err);
		trace("busy writev-second " RES_FMT, RES(ret, err));
		talloc_free(w2);
		while (got < (24u << 20)) {
			dr = false;
			iov[0] = (struct iovec){buf, 1 << 20};
			rr = tstream_readv_send(mem, ev, b, iov, 1);
			tevent_req_set_callback(rr, set_done, &dr);
			wait_for(&dr, "drain");
			ret = tstream_readv_recv(rr, &err);
			talloc_free(rr);
			if (ret == -1) {
				break;
			}
			got += (size_t)ret;
		}
		trace("busy drained=%zu " RES_FMT, got, RES(ret, err));
		wait_for(&dw, "big writev");
		ret = tstream_writev_recv(w1, &err);
		trace("busy writev-big " RES_FMT, RES(ret, err));
		talloc_free(w1);
	}

	/* a disconnect while a readv waits: EBUSY, the readv goes on */
	{
		struct tevent_req *rr;
		bool dr = false;

		iov[0] = (struct iovec){buf, 5};
		rr = tstream_readv_send(mem, ev, a, iov, 1);
		tevent_req_set_callback(rr, set_done, &dr);
		ret = do_disconnect(a, &err);
		trace("busy disconnect-while-readv " RES_FMT, RES(ret, err));
		iov[1] = (struct iovec){src, 5};
		ret = do_writev(b, &iov[1], 1, &err);
		trace("busy writev-to-reader " RES_FMT, RES(ret, err));
		wait_for(&dr, "readv after a refused disconnect");
		ret = tstream_readv_recv(rr, &err);
		trace("busy readv-after-disconnect " RES_FMT " hash=%016llx",
		      RES(ret, err), (unsigned long long)fnv(FNV_INIT, buf, 5));
		talloc_free(rr);
	}

	/* ENOTCONN after our own disconnect */
	ret = do_disconnect(a, &err);
	trace("notconn disconnect " RES_FMT, RES(ret, err));
	iov[0] = (struct iovec){buf, 10};
	ret = do_readv(a, iov, 1, &err);
	trace("notconn readv " RES_FMT, RES(ret, err));
	ret = do_writev(a, iov, 1, &err);
	trace("notconn writev " RES_FMT, RES(ret, err));
	trace_pending("notconn", a);
	ret = do_disconnect(a, &err);
	trace("notconn disconnect-again " RES_FMT, RES(ret, err));
	/* the peer of a disconnected stream sees the end */
	ret = do_readv(b, iov, 1, &err);
	trace("notconn peer-readv " RES_FMT, RES(ret, err));
	talloc_free(a);
	talloc_free(b);
	talloc_free(buf);
}

/* ---- readv_pdu callbacks that misbehave ---- */

/* a vector of two empty buffers */
static int pdu_empty_vector(struct tstream_context *stream,
			    void *private_data,
			    TALLOC_CTX *mem_ctx,
			    struct iovec **_vector,
			    size_t *_count)
{
	struct iovec *v = talloc_zero_array(mem_ctx, struct iovec, 2);

	if (v == NULL) {
		return -1;
	}
	*_vector = v;
	*_count = 2;
	return 0;
}

/* fails, with errno as private_data says (0: forgot to set it) */
static int pdu_fails(struct tstream_context *stream,
		     void *private_data,
		     TALLOC_CTX *mem_ctx,
		     struct iovec **_vector,
		     size_t *_count)
{
	errno = *(const int *)private_data;
	return -1;
}

static void guard_pdu(struct tstream_context *s,
		      const char *what,
		      tstream_readv_pdu_next_vector_t fn,
		      void *private_data,
		      int *pret,
		      int *perr)
{
	struct tevent_req *req;
	bool done = false;

	*perr = 0;
	req = tstream_readv_pdu_send(mem, ev, s, fn, private_data);
	tevent_req_set_callback(req, set_done, &done);
	settle();
	/* -2: still waiting (a request that never ends) */
	*pret = done ? tstream_readv_pdu_recv(req, perr) : -2;
	talloc_free(req);
}

/* ---- phase guards: EINVAL, EMSGSIZE ---- */

static void phase_guards(void)
{
	struct tstream_context *a, *b;
	static struct iovec iov[IOV_MAX + 2];
	uint8_t *huge;
	size_t i;
	int ret, err;

	stream_pair(0, &a, &b);
	for (i = 0; i < IOV_MAX + 2; i++) {
		iov[i] = (struct iovec){src, 0};
	}
	ret = do_readv(b, iov, 0, &err);
	trace("guard readv count=0 " RES_FMT, RES(ret, err));
	ret = do_writev(a, iov, 0, &err);
	trace("guard writev count=0 " RES_FMT, RES(ret, err));
	ret = do_readv(b, iov, 3, &err);
	trace("guard readv all-empty " RES_FMT, RES(ret, err));
	ret = do_writev(a, iov, IOV_MAX, &err);
	trace("guard writev all-empty " RES_FMT, RES(ret, err));
	iov[IOV_MAX].iov_len = 1;
	ret = do_readv(b, iov, IOV_MAX + 1, &err);
	trace("guard readv count=IOV_MAX+1 " RES_FMT, RES(ret, err));
	ret = do_writev(a, iov, IOV_MAX + 1, &err);
	trace("guard writev count=IOV_MAX+1 " RES_FMT, RES(ret, err));
	iov[IOV_MAX].iov_len = 0;
	/* IOV_MAX entries, one byte in the last */
	iov[IOV_MAX - 1].iov_len = 1;
	ret = do_writev(a, iov, IOV_MAX, &err);
	trace("guard writev count=IOV_MAX " RES_FMT, RES(ret, err));
	ret = do_readv(b, iov, IOV_MAX, &err);
	trace("guard readv count=IOV_MAX " RES_FMT, RES(ret, err));
	iov[IOV_MAX - 1].iov_len = 0;

	/* readv_pdu whose callback misbehaves */
	{
		int e = EPROTO, zero = 0;

		guard_pdu(b, "empty", pdu_empty_vector, NULL, &ret, &err);
		trace("guard readv_pdu all-empty " RES_FMT, RES(ret, err));
		guard_pdu(b, "fails", pdu_fails, &e, &ret, &err);
		trace("guard readv_pdu callback-fails " RES_FMT, RES(ret, err));
		/*
		 * errno 0: tsgate fails the PDU with EIO (api.md, decision
		 * 8); Samba calls tevent_req_error(req, 0), which does
		 * nothing: the request never ends.
		 */
		guard_pdu(b, "fails-no-errno", pdu_fails, &zero, &ret, &err);
		trace_by_design(
		    "guard readv_pdu callback-fails-no-errno",
		    "api.md decision 8",
		    TSGATE_OR_SAMBA(ret == -1 && err == EIO, ret == -2), ret,
		    err);
	}

	/*
	 * More than INT_MAX bytes: EMSGSIZE (docs/api.md, decision 2); a
	 * library that took the request would wait for bytes ("-2").
	 */
	huge = mmap(NULL, (size_t)3 << 30, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (huge != MAP_FAILED) {
		struct tevent_req *req;
		bool done = false;

		iov[0] = (struct iovec){huge, (size_t)3 << 30};
		req = tstream_readv_send(mem, ev, b, iov, 1);
		tevent_req_set_callback(req, set_done, &done);
		settle();
		if (done) {
			ret = tstream_readv_recv(req, &err);
		} else {
			ret = -2;
		}
		trace("guard readv >INT_MAX " RES_FMT, RES(ret, err));
		talloc_free(req);
		munmap(huge, (size_t)3 << 30);
	}

	/*
	 * On a disconnected stream with bad arguments: tsgate checks
	 * ENOTCONN first (docs/api.md, decision 1), Samba the arguments.
	 */
	ret = do_disconnect(a, &err);
	trace("guard disconnect " RES_FMT, RES(ret, err));
	ret = do_readv(a, iov, 0, &err);
	trace_by_design("guard readv disconnected count=0", "api.md decision 1",
			ret == -1 && err == TSGATE_OR_SAMBA(ENOTCONN, EINVAL),
			ret, err);
	talloc_free(a);
	talloc_free(b);
}

/* ---- phase dgram: UDP and unix datagrams ---- */

struct dg_peer {
	const char *role;
	struct tdgram_context *d;
	struct tsocket_address *addr;
	int fd; /* the socket under d, for what tdgram cannot send */
};

static const char *role_of(struct tsocket_address *addr,
			   struct dg_peer *peers,
			   size_t n,
			   char *buf,
			   size_t len)
{
	char *s1, *s2;
	size_t i;

	if (addr == NULL) {
		return "(none)";
	}
	s1 = tsocket_address_string(addr, mem);
	for (i = 0; i < n; i++) {
		s2 = tsocket_address_string(peers[i].addr, mem);
		if (s1 != NULL && s2 != NULL && strcmp(s1, s2) == 0) {
			talloc_free(s1);
			talloc_free(s2);
			return peers[i].role;
		}
		talloc_free(s2);
	}
	/*
	 * An unbound unix sender: tsgate gives the empty path "unix:"
	 * (tsocket.md, Addresses), Samba an address without a string.
	 */
	if (TSGATE_OR_SAMBA(s1 != NULL && strcmp(s1, "unix:") == 0,
			    s1 == NULL &&
				!tsocket_address_is_inet(addr, "ip"))) {
		talloc_free(s1);
		return "unbound-unix-by-design(tsocket.md unbound unix peer)";
	}
	/* an address nobody was bound to: only its form, not its port */
	snprintf(buf, len, "other(%s)",
		 s1 == NULL                              ? "NULL"
		 : strncmp(s1, "unix:", 5) == 0          ? s1
		 : tsocket_address_is_inet(addr, "ipv4") ? "ipv4"
							 : "ipv6");
	talloc_free(s1);
	return buf;
}

/* Returns true when the datagram went out. */
static bool dg_sendto(const char *what,
		      struct dg_peer *from,
		      const struct tsocket_address *dst,
		      size_t len)
{
	struct tevent_req *req;
	bool done = false;
	ssize_t ret;
	int err = 0;
	uint8_t *buf = talloc_size(mem, len + 1);

	memcpy(buf, src, len);
	req = tdgram_sendto_send(mem, ev, from->d, buf, len, dst);
	tevent_req_set_callback(req, set_done, &done);
	wait_for(&done, "sendto");
	ret = tdgram_sendto_recv(req, &err);
	talloc_free(req);
	talloc_free(buf);
	trace("%s sendto %s len=%zu " RES_FMT, what, from->role, len,
	      RES(ret, err));
	return ret == (ssize_t)len;
}

/*
 * An empty datagram: tdgram_sendto refuses len 0 (both libraries), but
 * a peer may send one; recvfrom must deliver it as 0 bytes.
 */
static void dg_send_empty(const char *what,
			  struct dg_peer *from,
			  const struct dg_peer *to)
{
	struct sockaddr_storage ss;
	ssize_t len, ret;

	len = tsocket_address_bsd_sockaddr(to->addr, (struct sockaddr *)&ss,
					   sizeof(ss));
	ret =
	    sendto(from->fd, "", 0, 0, (struct sockaddr *)&ss, (socklen_t)len);
	trace("%s raw-send-empty %s ret=%ld", what, from->role, (long)ret);
}

/*
 * The receive of an empty datagram a peer sent: tsgate skips it, never
 * reports it (tsocket.md, Datagrams), so it is not asked for; Samba 4.17
 * fails that receive with ENOMEM (talloc_realloc to 0 bytes) and takes
 * the datagram off the queue all the same.
 */
static void dg_recv_empty(const char *what, struct dg_peer *to)
{
#ifdef ORACLE_SAMBA
	struct tevent_req *req;
	bool done = false;
	ssize_t ret;
	int err = 0;
	uint8_t *buf = NULL;

	req = tdgram_recvfrom_send(mem, ev, to->d);
	tevent_req_set_callback(req, set_done, &done);
	wait_for(&done, "recvfrom");
	ret = tdgram_recvfrom_recv(req, &err, mem, &buf, NULL);
	talloc_free(req);
	talloc_free(buf);
	trace_by_design("dgram recvfrom empty", "tsocket.md empty datagram",
			ret == -1 && err == ENOMEM, ret, err);
#else
	trace_by_design("dgram recvfrom empty", "tsocket.md empty datagram",
			true, 0, 0);
#endif
}

/* a recvfrom that may not finish: in-progress after a moment */
static void dg_recvfrom(const char *what,
			struct dg_peer *to,
			struct dg_peer *peers,
			size_t npeers,
			bool may_wait)
{
	struct tevent_req *req;
	bool done = false;
	ssize_t ret;
	int err = 0;
	uint8_t *buf = NULL;
	struct tsocket_address *from = NULL;
	char rbuf[128];

	req = tdgram_recvfrom_send(mem, ev, to->d);
	tevent_req_set_callback(req, set_done, &done);
	if (may_wait) {
		settle();
		if (!done) {
			trace("%s recvfrom %s in-progress", what, to->role);
			talloc_free(req);
			return;
		}
	} else {
		wait_for(&done, "recvfrom");
	}
	ret = tdgram_recvfrom_recv(req, &err, mem, &buf, &from);
	trace("%s recvfrom %s " RES_FMT " hash=%016llx from=%s", what, to->role,
	      RES(ret, err),
	      ret >= 0 ? (unsigned long long)fnv(FNV_INIT, buf, (size_t)ret)
		       : 0ULL,
	      ret >= 0 ? role_of(from, peers, npeers, rbuf, sizeof(rbuf))
		       : "-");
	talloc_free(req);
	talloc_free(buf);
	talloc_free(from);
}

static struct tsocket_address *sockname(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct tsocket_address *addr = NULL;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
	    tsocket_address_bsd_from_sockaddr(mem, (struct sockaddr *)&ss, len,
					      &addr) != 0) {
		perror("sockname");
		exit(1);
	}
	return addr;
}

static void udp_peer(struct dg_peer *p, const char *role, int family)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	int fd = socket(family, SOCK_DGRAM, 0);

	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		len = sizeof(*sin6);
	}
	if (fd == -1 || bind(fd, (struct sockaddr *)&ss, len) != 0) {
		perror("udp bind");
		exit(1);
	}
	p->role = role;
	p->fd = fd;
	p->addr = sockname(fd);
	set_nonblock(fd);
	if (tdgram_bsd_existing_socket(mem, fd, &p->d) != 0) {
		perror("tdgram_bsd_existing_socket");
		exit(1);
	}
}

static void dg_sizes(const char *what,
		     struct dg_peer *peers,
		     size_t npeers,
		     const size_t *sizes,
		     size_t nsizes)
{
	size_t i;

	for (i = 0; i < nsizes; i++) {
		dg_sendto(what, &peers[0], peers[1].addr, sizes[i]);
		/* a datagram that was refused leaves nothing to receive */
		dg_recvfrom(what, &peers[1], peers, npeers, true);
	}
}

static void dg_random(const char *what,
		      struct dg_peer *peers,
		      size_t npeers,
		      size_t max)
{
	unsigned burst, i, sent;
	bool empty[4];

	/*
	 * Bursts of 4 to C from A and B (some empty), then received in
	 * order; a burst stays far below a socket's receive buffer, which
	 * would drop datagrams.
	 */
	for (burst = 0; burst < 4; burst++) {
		sent = 0;
		for (i = 0; i < 4; i++) {
			size_t len = below(4) == 0 ? 0 : below(max / 4 + 1);

			if (len == 0 && below(2) == 0) {
				dg_send_empty(what, &peers[i & 1], &peers[2]);
				empty[sent++] = true;
			} else if (dg_sendto(what, &peers[i & 1], peers[2].addr,
					     len)) {
				empty[sent++] = false;
			}
		}
		for (i = 0; i < sent; i++) {
			if (empty[i]) {
				dg_recv_empty(what, &peers[2]);
			} else {
				dg_recvfrom(what, &peers[2], peers, npeers,
					    false);
			}
		}
	}
	dg_recvfrom(what, &peers[2], peers, npeers, true);
}

static void dg_disconnect(const char *what, struct dg_peer *p)
{
	struct tevent_req *req;
	bool done = false;
	int ret, err = 0;

	req = tdgram_disconnect_send(mem, ev, p->d);
	tevent_req_set_callback(req, set_done, &done);
	wait_for(&done, "dgram disconnect");
	ret = tdgram_disconnect_recv(req, &err);
	talloc_free(req);
	trace("%s disconnect %s " RES_FMT, what, p->role, RES(ret, err));
}

static void dg_errors(const char *what, struct dg_peer *peers, size_t npeers)
{
	struct tevent_req *r1, *r2;
	bool d1 = false, d2 = false;
	ssize_t ret;
	int err = 0;
	uint8_t *buf = NULL;

	/* a second recvfrom while one waits */
	r1 = tdgram_recvfrom_send(mem, ev, peers[1].d);
	tevent_req_set_callback(r1, set_done, &d1);
	r2 = tdgram_recvfrom_send(mem, ev, peers[1].d);
	tevent_req_set_callback(r2, set_done, &d2);
	wait_for(&d2, "second recvfrom");
	ret = tdgram_recvfrom_recv(r2, &err, mem, &buf, NULL);
	trace("%s recvfrom-second " RES_FMT, what, RES(ret, err));
	talloc_free(r2);
	/* a disconnect while the recvfrom waits: EBUSY */
	dg_disconnect(what, &peers[1]);
	dg_sendto(what, &peers[0], peers[1].addr, 7);
	wait_for(&d1, "first recvfrom");
	ret = tdgram_recvfrom_recv(r1, &err, mem, &buf, NULL);
	trace("%s recvfrom-first " RES_FMT " hash=%016llx", what, RES(ret, err),
	      ret >= 0 ? (unsigned long long)fnv(FNV_INIT, buf, (size_t)ret)
		       : 0ULL);
	talloc_free(r1);
	talloc_free(buf);
	/* no destination on an unconnected socket */
	dg_sendto(what, &peers[0], NULL, 5);
}

static void phase_dgram(void)
{
	static const size_t udp_sizes[] = {0, 1, 1000, 65507, 65508, 70000};
	static const size_t unix_sizes[] = {0,      1,      65536,
					    100000, 200000, 300000};
	struct dg_peer peers[4];
	char path[3][96];
	unsigned i;
	int fam;

	for (fam = 0; fam < 2; fam++) {
		const char *what = fam == 0 ? "udp4" : "udp6";
		int af = fam == 0 ? AF_INET : AF_INET6;
		struct tsocket_address *any;

		udp_peer(&peers[0], "A", af);
		udp_peer(&peers[1], "B", af);
		udp_peer(&peers[2], "C", af);
		dg_sizes(what, peers, 3, udp_sizes, 6);
		dg_random(what, peers, 3, 65507);
		dg_errors(what, peers, 3);

		/* a connected socket from the library, to C */
		tsocket_address_inet_from_strings(
		    mem, fam == 0 ? "ipv4" : "ipv6", NULL, 0, &any);
		{
			struct tdgram_context *d = NULL;
			int ret =
			    tdgram_inet_udp_socket(any, peers[2].addr, mem, &d);

			trace("%s udp_socket connected " RES_FMT, what,
			      RES(ret, errno));
			if (ret == 0) {
				peers[3] = (struct dg_peer){"D", d, NULL, -1};
				/* D's address is the kernel's choice */
				dg_sendto(what, &peers[3], NULL, 33);
				dg_recvfrom(what, &peers[2], peers, 3, false);
				/* another destination on a connected socket */
				dg_sendto(what, &peers[3], peers[1].addr, 34);
				dg_recvfrom(what, &peers[1], peers, 3, true);
				dg_recvfrom(what, &peers[2], peers, 3, true);
				dg_disconnect(what, &peers[3]);
				dg_sendto(what, &peers[3], NULL, 1);
				dg_recvfrom(what, &peers[3], peers, 3, false);
				dg_disconnect(what, &peers[3]);
				talloc_free(d);
			}
		}
		talloc_free(any);
		for (i = 0; i < 3; i++) {
			talloc_free(peers[i].d);
			talloc_free(peers[i].addr);
		}
	}

	/* unix datagrams, bound in our scratch directory */
	for (i = 0; i < 3; i++) {
		static const char *roles[] = {"A", "B", "C"};
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

		snprintf(path[i], sizeof(path[i]), "%s/dg%u", tmpdir, i);
		unlink(path[i]);
		if (strlen(path[i]) >= sizeof(sun.sun_path)) {
			exit(1);
		}
		strcpy(sun.sun_path, path[i]);
		if (fd != -1) {
			set_nonblock(fd);
		}
		if (fd == -1 ||
		    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 ||
		    tdgram_bsd_existing_socket(mem, fd, &peers[i].d) != 0) {
			perror("unix dgram");
			exit(1);
		}
		tsocket_address_unix_from_path(mem, path[i], &peers[i].addr);
		peers[i].role = roles[i];
		peers[i].fd = fd;
	}
	{
		/* and one the library makes and binds */
		struct tsocket_address *addr;
		struct tdgram_context *d = NULL;
		char p3[128];
		int ret;

		snprintf(p3, sizeof(p3), "%s/dg3", tmpdir);
		tsocket_address_unix_from_path(mem, p3, &addr);
		ret = tdgram_unix_socket(addr, NULL, mem, &d);
		trace("unix unix_socket bound " RES_FMT, RES(ret, errno));
		peers[3] = (struct dg_peer){"D", d, addr, -1};
		if (ret == 0) {
			dg_sendto("unix", &peers[3], peers[1].addr, 99);
			dg_recvfrom("unix", &peers[1], peers, 4, false);
		}
		talloc_free(d);
		talloc_free(addr);
		unlink(p3);
	}
	dg_sizes("unix", peers, 3, unix_sizes, 6);
	dg_random("unix", peers, 3, 100000);
	dg_errors("unix", peers, 3);
	{
		struct tdgram_context *d = NULL;
		int ret;

		struct tsocket_address *unbound = NULL;

		/*
		 * connected, unbound (the empty path: Samba dereferences a
		 * NULL local): the receiver sees no address
		 */
		tsocket_address_unix_from_path(mem, "", &unbound);
		ret = tdgram_unix_socket(unbound, peers[2].addr, mem, &d);
		talloc_free(unbound);
		trace("unix unix_socket connected " RES_FMT, RES(ret, errno));
		if (ret == 0) {
			peers[3] = (struct dg_peer){"D", d, NULL, -1};
			dg_sendto("unix", &peers[3], NULL, 12);
			dg_recvfrom("unix", &peers[2], peers, 3, false);
			dg_sendto("unix", &peers[3], peers[1].addr, 13);
			dg_recvfrom("unix", &peers[1], peers, 3, true);
			/* the peer goes away */
			talloc_free(peers[2].d);
			peers[2].d = NULL;
			unlink(path[2]);
			dg_sendto("unix", &peers[3], NULL, 14);
			talloc_free(d);
		}
	}
	/* the same path twice, a path in a directory that is not there */
	{
		struct tdgram_context *d = NULL;
		struct tsocket_address *addr;
		char p2[128];
		int ret;

		ret = tdgram_unix_socket(peers[0].addr, NULL, mem, &d);
		trace("unix bind-again " RES_FMT, RES(ret, errno));
		talloc_free(d);
		snprintf(p2, sizeof(p2), "%s/missing/dg", tmpdir);
		tsocket_address_unix_from_path(mem, p2, &addr);
		ret = tdgram_unix_socket(addr, NULL, mem, &d);
		trace("unix bind-missing-dir " RES_FMT, RES(ret, errno));
		talloc_free(addr);
		snprintf(p2, sizeof(p2), "%s/nobody", tmpdir);
		tsocket_address_unix_from_path(mem, p2, &addr);
		{
			struct tsocket_address *unbound = NULL;

			tsocket_address_unix_from_path(mem, "", &unbound);
			ret = tdgram_unix_socket(unbound, addr, mem, &d);
			trace("unix connect-missing " RES_FMT, RES(ret, errno));
			talloc_free(unbound);
		}
		talloc_free(addr);
	}
	for (i = 0; i < 3; i++) {
		talloc_free(peers[i].d);
		talloc_free(peers[i].addr);
		unlink(path[i]);
	}
}

/* ---- phase queue: the tevent_queue helpers ---- */

#define QUEUE_N 8

struct queued_write {
	struct vec v;
	uint8_t *wire;
	size_t len;
	int ret;
	int err;
	bool done;
};

static void queued_write_done(struct tevent_req *req)
{
	struct queued_write *q = tevent_req_callback_data_void(req);

	q->ret = tstream_writev_queue_recv(req, &q->err);
	talloc_free(req);
	q->done = true;
}

static void queued_read_done(struct tevent_req *req)
{
	struct pdu_reader *p = tevent_req_callback_data_void(req);

	p->ret = tstream_readv_pdu_queue_recv(req, &p->err);
	talloc_free(req);
	p->done = true;
}

static void queued_send_done(struct tevent_req *req)
{
	struct queued_write *q = tevent_req_callback_data_void(req);

	q->ret = (int)tdgram_sendto_queue_recv(req, &q->err);
	talloc_free(req);
	q->done = true;
}

/*
 * QUEUE_N PDUs written through tstream_writev_queue_send and read
 * through tstream_readv_pdu_queue_send, all submitted at once; then
 * QUEUE_N datagrams through tdgram_sendto_queue_send.
 */
static void phase_queue(void)
{
	struct tstream_context *a, *b;
	struct tevent_queue *wq = tevent_queue_create(mem, "oracle-w");
	struct tevent_queue *rq = tevent_queue_create(mem, "oracle-r");
	struct queued_write *w =
	    talloc_zero_array(mem, struct queued_write, QUEUE_N);
	struct pdu_reader **r =
	    talloc_zero_array(mem, struct pdu_reader *, QUEUE_N);
	struct dg_peer peers[2];
	unsigned i;

	stream_pair((int)below(STREAM_KINDS), &a, &b);
	for (i = 0; i < QUEUE_N; i++) {
		struct tevent_req *req;
		size_t len = below(4) == 0 ? 0 : below(200001);

		w[i].len = len;
		w[i].wire = talloc_size(w, 4 + len);
		w[i].wire[0] = (uint8_t)(len >> 24);
		w[i].wire[1] = (uint8_t)(len >> 16);
		w[i].wire[2] = (uint8_t)(len >> 8);
		w[i].wire[3] = (uint8_t)len;
		memcpy(w[i].wire + 4, src + i * 1000, len);
		split(&w[i].v, w[i].wire, 4 + len);
		req = tstream_writev_queue_send(mem, ev, a, wq, w[i].v.iov,
						w[i].v.count);
		tevent_req_set_callback(req, queued_write_done, &w[i]);
	}
	for (i = 0; i < QUEUE_N; i++) {
		struct tevent_req *req;

		r[i] = talloc_zero(r, struct pdu_reader);
		req = tstream_readv_pdu_queue_send(r[i], ev, b, rq,
						   pdu_next_vector, r[i]);
		tevent_req_set_callback(req, queued_read_done, r[i]);
	}
	trace("queue lengths w=%zu r=%zu", tevent_queue_length(wq),
	      tevent_queue_length(rq));
	for (i = 0; i < QUEUE_N; i++) {
		wait_for(&r[i]->done, "queued readv_pdu");
		wait_for(&w[i].done, "queued writev");
	}
	for (i = 0; i < QUEUE_N; i++) {
		struct pdu_reader *p = r[i];
		bool wrong = p->ret > 0 &&
			     (p->body_len != w[i].len ||
			      (w[i].len > 0 &&
			       memcmp(p->body, src + i * 1000, w[i].len) != 0));

		trace("queue writev %u n=%zu " RES_FMT, i, w[i].v.count,
		      RES(w[i].ret, w[i].err));
		trace("queue readv_pdu %u len=%zu " RES_FMT " hash=%016llx%s",
		      i, w[i].len, RES(p->ret, p->err),
		      p->ret > 0 ? (unsigned long long)fnv(FNV_INIT, p->body,
							   p->body_len)
				 : 0ULL,
		      wrong ? " WRONG-BYTES" : "");
	}
	talloc_free(a);
	talloc_free(b);

	/* datagrams, queued at once, received in order */
	udp_peer(&peers[0], "A", AF_INET);
	udp_peer(&peers[1], "B", AF_INET);
	for (i = 0; i < QUEUE_N; i++) {
		struct tevent_req *req;

		w[i].len = 1 + below(8000);
		w[i].done = false;
		req = tdgram_sendto_queue_send(mem, ev, peers[0].d, wq, src + i,
					       w[i].len, peers[1].addr);
		tevent_req_set_callback(req, queued_send_done, &w[i]);
	}
	for (i = 0; i < QUEUE_N; i++) {
		wait_for(&w[i].done, "queued sendto");
		trace("queue sendto %u len=%zu " RES_FMT, i, w[i].len,
		      RES(w[i].ret, w[i].err));
	}
	for (i = 0; i < QUEUE_N; i++) {
		dg_recvfrom("queue", &peers[1], peers, 2, false);
	}
	for (i = 0; i < 2; i++) {
		talloc_free(peers[i].d);
		talloc_free(peers[i].addr);
	}
	talloc_free(w);
	talloc_free(r);
	talloc_free(wq);
	talloc_free(rq);
}

/* ---- phase addr: address functions ---- */

static void trace_addr(const char *what,
		       int ret,
		       int err,
		       struct tsocket_address *a)
{
	char *s, *as;

	if (ret != 0) {
		trace("addr %s " RES_FMT, what, RES(ret, err));
		return;
	}
	s = tsocket_address_string(a, mem);
	as = tsocket_address_is_inet(a, "ip")
		 ? tsocket_address_inet_addr_string(a, mem)
		 : NULL;
	trace("addr %s ret=0 string=%s addr=%s port=%u ipv4=%d ipv6=%d ip=%d "
	      "unix=%d path=%s",
	      what, s ? s : "NULL", as ? as : "-",
	      tsocket_address_is_inet(a, "ip") ? tsocket_address_inet_port(a)
					       : 0,
	      tsocket_address_is_inet(a, "ipv4"),
	      tsocket_address_is_inet(a, "ipv6"),
	      tsocket_address_is_inet(a, "ip"), tsocket_address_is_unix(a),
	      tsocket_address_is_unix(a) ? tsocket_address_unix_path(a, mem)
					 : "-");
	talloc_free(s);
	talloc_free(as);
}

/*
 * An IPv4 address only the old inet_aton() forms accept ("127.1",
 * "0x7f.0.0.1", "010.1.1.1"), or a v4-mapped IPv6 one for "ipv4":
 * tsgate parses with inet_pton only (tsocket.md, Addresses), Samba
 * takes them.
 */
static bool legacy_ipv4(const char *fam, const char *host)
{
	struct addrinfo hints = {.ai_family = AF_INET,
				 .ai_flags = AI_NUMERICHOST};
	struct addrinfo *res = NULL;
	struct in_addr in;
	struct in6_addr in6;

	if (host == NULL || strcasecmp(fam, "ipv6") == 0 ||
	    (strcasecmp(fam, "ipv4") != 0 && strcasecmp(fam, "ip") != 0) ||
	    inet_pton(AF_INET, host, &in) == 1) {
		return false;
	}
	if (strcasecmp(fam, "ip") == 0 &&
	    inet_pton(AF_INET6, host, &in6) == 1) {
		/* IPv6 for both */
		return false;
	}
	/* what getaddrinfo's numeric parser (inet_aton's forms) takes */
	if (getaddrinfo(host, NULL, &hints, &res) == 0) {
		freeaddrinfo(res);
		return true;
	}
	return strcasecmp(fam, "ipv4") == 0 &&
	       inet_pton(AF_INET6, host, &in6) == 1 &&
	       IN6_IS_ADDR_V4MAPPED(&in6);
}

static void addr_inet(const char *fam, const char *host, uint16_t port)
{
	struct tsocket_address *a = NULL;
	char what[160];
	int ret, err;

	errno = 0;
	ret = tsocket_address_inet_from_strings(mem, fam, host, port, &a);
	err = errno;
	snprintf(what, sizeof(what), "addr inet(%s,%s,%u)", fam,
		 host ? host : "NULL", port);
	if (legacy_ipv4(fam, host)) {
		trace_by_design(
		    what, "tsocket.md numeric only",
		    TSGATE_OR_SAMBA(ret == -1 && err == EINVAL, ret == 0), ret,
		    err);
		talloc_free(a);
		return;
	}
	if (host == NULL && strcasecmp(fam, "ip") == 0) {
		/* tsocket.md, Addresses: NULL is 0.0.0.0 for "ip" */
		trace_by_design(what, "tsocket.md ip any",
				ret == 0 &&
				    tsocket_address_is_inet(
					a, TSGATE_OR_SAMBA("ipv4", "ipv6")),
				ret, err);
		talloc_free(a);
		return;
	}
	trace_addr(what + 5, ret, err, a);
	if (ret == 0) {
		int r2;
		struct tsocket_address *c = tsocket_address_copy(a, mem);

		errno = 0;
		r2 = tsocket_address_inet_set_port(c, 65535);
		trace("addr %s set_port(65535) " RES_FMT " port=%u", what,
		      RES(r2, errno), tsocket_address_inet_port(c));
		talloc_free(c);
	}
	talloc_free(a);
}

static void addr_unix(const char *path)
{
	struct tsocket_address *a = NULL;
	char what[300];
	int ret;

	errno = 0;
	ret = tsocket_address_unix_from_path(mem, path, &a);
	snprintf(what, sizeof(what), "unix(%.200s)", path ? path : "NULL");
	trace_addr(what, ret, errno, a);
	if (ret == 0) {
		errno = 0;
		ret = tsocket_address_inet_set_port(a, 1);
		trace("addr %s set_port " RES_FMT, what, RES(ret, errno));
	}
	talloc_free(a);
}

static void addr_sockaddr(const char *what, const void *sa, size_t len)
{
	struct tsocket_address *a = NULL;
	int ret;

	errno = 0;
	ret = tsocket_address_bsd_from_sockaddr(mem, sa, len, &a);
	trace_addr(what, ret, errno, a);
	if (ret == 0 && tsocket_address_is_unix(a)) {
		/*
		 * tsocket.md, Addresses: tsgate keeps a whole sockaddr_un
		 * and returns sizeof(struct sockaddr_un); Samba returns the
		 * length it was given. The path itself must agree.
		 */
		struct sockaddr_un sun;
		ssize_t n;
		char line[200];

		memset(&sun, 0xEE, sizeof(sun));
		errno = 0;
		n = tsocket_address_bsd_sockaddr(a, (struct sockaddr *)&sun,
						 sizeof(sun));
		snprintf(line, sizeof(line),
			 "addr %s bsd_sockaddr family=%d "
			 "path=%.*s",
			 what, sun.sun_family,
			 n > 2 ? (int)strnlen(sun.sun_path, (size_t)n - 2) : 0,
			 sun.sun_path);
		trace_by_design(line, "tsocket.md unix sockaddr length",
				n == (ssize_t)TSGATE_OR_SAMBA(sizeof(sun), len),
				n, errno);
		errno = 0;
		n = tsocket_address_bsd_sockaddr(a, (struct sockaddr *)&sun, 2);
		snprintf(line, sizeof(line), "addr %s bsd_sockaddr(2)", what);
		if (len == 2) {
			trace_by_design(
			    line, "tsocket.md unix sockaddr length",
			    TSGATE_OR_SAMBA(n == -1 && errno == EINVAL, n == 2),
			    n, errno);
		} else {
			trace("%s " RES_FMT, line, RES(n, errno));
		}
		talloc_free(a);
		return;
	}
	if (ret == 0) {
		struct sockaddr_storage ss;
		ssize_t n;

		memset(&ss, 0xEE, sizeof(ss));
		errno = 0;
		n = tsocket_address_bsd_sockaddr(a, (struct sockaddr *)&ss,
						 sizeof(ss));
		trace("addr %s bsd_sockaddr " RES_FMT " hash=%016llx", what,
		      RES(n, errno),
		      n > 0 ? (unsigned long long)fnv(FNV_INIT, &ss, (size_t)n)
			    : 0ULL);
		errno = 0;
		n = tsocket_address_bsd_sockaddr(a, (struct sockaddr *)&ss, 2);
		trace("addr %s bsd_sockaddr(2) " RES_FMT, what, RES(n, errno));
	}
	talloc_free(a);
}

static void phase_addr(void)
{
	/* no NULL family: Samba dereferences it (a caller's bug anyway) */
	static const char *fams[] = {"ipv4", "ipv6", "ip", "IPv4",
				     "IP",   "inet", ""};
	static const char *hosts[] = {"127.0.0.1",
				      "0.0.0.0",
				      "255.255.255.255",
				      "::1",
				      "::",
				      "::ffff:127.0.0.1",
				      "fe80::1%1",
				      "2001:db8::1",
				      "127.1",
				      "1.2.3.4.5",
				      "localhost",
				      "",
				      " 127.0.0.1",
				      "127.0.0.1 ",
				      "[::1]",
				      "1:2:3:4:5:6:7:8:9",
				      "01.02.03.04",
				      "0x7f.0.0.1",
				      "256.0.0.1",
				      NULL};
	static const uint16_t ports[] = {0, 1, 445, 65535};
	char junk[16], longpath[200];
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(8080)};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6,
				    .sin6_port = htons(443)};
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct sockaddr_storage ss = {.ss_family = AF_INET};
	size_t i, j;

	for (i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
		for (j = 0; j < sizeof(hosts) / sizeof(hosts[0]); j++) {
			addr_inet(fams[i], hosts[j], ports[(i + j) % 4]);
		}
	}
	/* random strings from the seed: digits, dots, colons */
	for (i = 0; i < 40; i++) {
		static const char alphabet[] = "0123456789.:abf%";
		size_t n = 1 + below(sizeof(junk) - 1);

		for (j = 0; j < n; j++) {
			junk[j] = alphabet[below(sizeof(alphabet) - 1)];
		}
		junk[n] = '\0';
		addr_inet(fams[below(3)], junk, (uint16_t)below(65536));
	}

	addr_unix("/tmp/oracle.sock");
	addr_unix("");
	addr_unix("relative/path");
	addr_unix(NULL);
	memset(longpath, 'x', sizeof(longpath));
	longpath[0] = '/';
	for (i = 100; i <= 109; i++) {
		longpath[i] = '\0';
		addr_unix(longpath);
		longpath[i] = 'x';
	}

	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	inet_pton(AF_INET6, "2001:db8::7", &sin6.sin6_addr);
	addr_sockaddr("sockaddr_in", &sin, sizeof(sin));
	addr_sockaddr("sockaddr_in-short", &sin, sizeof(sin) - 1);
	addr_sockaddr("sockaddr_in-storage", &sin, sizeof(ss));
	addr_sockaddr("sockaddr_in6", &sin6, sizeof(sin6));
	addr_sockaddr("sockaddr_in6-short", &sin6, sizeof(sin6) - 1);
	strcpy(sun.sun_path, "/tmp/x.sock");
	addr_sockaddr("sockaddr_un", &sun, sizeof(sun));
	addr_sockaddr("sockaddr_un-family-only", &sun,
		      offsetof(struct sockaddr_un, sun_path));
	sun.sun_path[0] = '\0';
	strcpy(sun.sun_path + 1, "abstract");
	addr_sockaddr("sockaddr_un-abstract", &sun,
		      offsetof(struct sockaddr_un, sun_path) + 9);
	ss.ss_family = AF_APPLETALK;
	addr_sockaddr("sockaddr-appletalk", &ss, sizeof(ss));
	ss.ss_family = AF_UNSPEC;
	addr_sockaddr("sockaddr-unspec", &ss, sizeof(ss));
	memcpy(&ss, &sin, sizeof(sin));
	addr_sockaddr("sockaddr_in-in-storage", &ss, sizeof(ss));

	/* sockets on addresses that cannot be used */
	{
		static const char *bad[][3] = {
		    {"ipv4", "192.0.2.1", "0"},   /* not ours */
		    {"ipv6", "2001:db8::1", "0"}, /* not ours */
		    {"ipv4", "255.255.255.255", "0"},
		    {"ipv4", "224.0.0.1", "0"},
		};
		struct tsocket_address *local, *remote;
		struct tdgram_context *d;

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			int ret;

			tsocket_address_inet_from_strings(
			    mem, bad[i][0], bad[i][1], atoi(bad[i][2]), &local);
			d = NULL;
			errno = 0;
			ret = tdgram_inet_udp_socket(local, NULL, mem, &d);
			trace("addr udp_socket local=%s " RES_FMT, bad[i][1],
			      RES(ret, errno));
			talloc_free(d);
			talloc_free(local);
		}
		/* local and remote of different families */
		tsocket_address_inet_from_strings(mem, "ipv6", "::1", 0,
						  &local);
		tsocket_address_inet_from_strings(mem, "ipv4", "127.0.0.1", 9,
						  &remote);
		d = NULL;
		errno = 0;
		i = (size_t)tdgram_inet_udp_socket(local, remote, mem, &d);
		trace("addr udp_socket v6-local v4-remote " RES_FMT,
		      RES((int)i, errno));
		talloc_free(d);
		/* a unix address where an inet one belongs, and back */
		talloc_free(local);
		tsocket_address_unix_from_path(mem, "/tmp/x", &local);
		d = NULL;
		errno = 0;
		i = (size_t)tdgram_inet_udp_socket(local, NULL, mem, &d);
		trace("addr udp_socket unix-local " RES_FMT,
		      RES((int)i, errno));
		talloc_free(d);
		d = NULL;
		errno = 0;
		i = (size_t)tdgram_unix_socket(remote, NULL, mem, &d);
		trace("addr unix_socket inet-local " RES_FMT,
		      RES((int)i, errno));
		talloc_free(d);
		talloc_free(local);
		talloc_free(remote);
	}
}

/* ---- phase connect: stream connects that fail ---- */

static void connect_done(struct tevent_req *req)
{
	bool *done = tevent_req_callback_data_void(req);

	*done = true;
}

static void try_tcp_connect(const char *what,
			    const struct tsocket_address *local,
			    const struct tsocket_address *remote)
{
	struct tevent_req *req;
	struct tstream_context *s = NULL;
	bool done = false;
	int ret, err = 0;

	req = tstream_inet_tcp_connect_send(mem, ev, local, remote);
	tevent_req_set_callback(req, connect_done, &done);
	wait_for(&done, "tcp connect");
#ifdef ORACLE_SAMBA
	/* docs/api.md: Samba's recv has a local-address out-parameter */
	ret = tstream_inet_tcp_connect_recv(req, &err, mem, &s, NULL);
#else
	ret = tstream_inet_tcp_connect_recv(req, &err, mem, &s);
#endif
	trace("connect %s " RES_FMT, what, RES(ret, err));
	talloc_free(req);
	talloc_free(s);
}

static void try_unix_connect(const char *what,
			     const struct tsocket_address *remote)
{
	struct tevent_req *req;
	struct tstream_context *s = NULL;
	bool done = false;
	int ret, err = 0;
	struct tsocket_address *local = NULL;

	tsocket_address_unix_from_path(mem, "", &local);
	req = tstream_unix_connect_send(mem, ev, local, remote);
	tevent_req_set_callback(req, connect_done, &done);
	wait_for(&done, "unix connect");
	ret = tstream_unix_connect_recv(req, &err, mem, &s);
	trace("connect %s " RES_FMT, what, RES(ret, err));
	talloc_free(req);
	talloc_free(s);
	talloc_free(local);
}

static void phase_connect(void)
{
	struct tsocket_address *local, *remote;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	char path[128];
	int fd, lfd;

	/* a port that was just free: connect is refused */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(fd, (struct sockaddr *)&sin, &len);
	tsocket_address_inet_from_strings(mem, "ipv4", "127.0.0.1",
					  ntohs(sin.sin_port), &remote);
	tsocket_address_inet_from_strings(mem, "ip", NULL, 0, &local);
	close(fd);
	try_tcp_connect("tcp refused", local, remote);
	talloc_free(local);

	/* a local address that is not ours */
	tsocket_address_inet_from_strings(mem, "ipv4", "192.0.2.1", 0, &local);
	try_tcp_connect("tcp local-not-ours", local, remote);
	talloc_free(local);
	tsocket_address_unix_from_path(mem, "/tmp/x", &local);
	try_tcp_connect("tcp local-unix", local, remote);
	try_tcp_connect("tcp remote-unix", remote, local);
	talloc_free(local);

	/* a listener: connect works, and a stream with a bound local */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_port = 0;
	bind(lfd, (struct sockaddr *)&sin, sizeof(sin));
	listen(lfd, 4);
	len = sizeof(sin);
	getsockname(lfd, (struct sockaddr *)&sin, &len);
	tsocket_address_inet_set_port(remote, ntohs(sin.sin_port));
	tsocket_address_inet_from_strings(mem, "ipv4", "127.0.0.1", 0, &local);
	try_tcp_connect("tcp listener", local, remote);
	close(lfd);
	talloc_free(local);
	talloc_free(remote);

	snprintf(path, sizeof(path), "%s/nothing", tmpdir);
	tsocket_address_unix_from_path(mem, path, &remote);
	try_unix_connect("unix missing", remote);
	talloc_free(remote);
	/* a socket file with nobody listening */
	snprintf(path, sizeof(path), "%s/stale", tmpdir);
	{
		struct sockaddr_un sun = {.sun_family = AF_UNIX};

		strcpy(sun.sun_path, path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		bind(fd, (struct sockaddr *)&sun, sizeof(sun));
		close(fd);
	}
	tsocket_address_unix_from_path(mem, path, &remote);
	try_unix_connect("unix stale", remote);
	talloc_free(remote);
	unlink(path);
}

/* ---- main ---- */

static void remove_tmpdir(void)
{
	if (tmpdir[0] != '\0') {
		rmdir(tmpdir);
	}
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} phases[] = {
	    {"addr", phase_addr},     {"connect", phase_connect},
	    {"guards", phase_guards}, {"ends", phase_ends},
	    {"pdu", phase_pdu},       {"dgram", phase_dgram},
	    {"stream", phase_stream}, {"queue", phase_queue},
	};
	unsigned long long seed;
	size_t i;
	int p;

	if (argc < 2) {
		fprintf(stderr, "usage: %s SEED [PHASE...]\n", argv[0]);
		return 2;
	}
	seed = strtoull(argv[1], NULL, 10);
	/* Samba's streams write with writev(2): SIGPIPE must be ignored */
	signal(SIGPIPE, SIG_IGN);
	/* line by line: a crash keeps the trace up to it */
	setvbuf(stdout, NULL, _IOLBF, 0);

	snprintf(tmpdir, sizeof(tmpdir), "%s/tsocket-oracle.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	atexit(remove_tmpdir);

	mem = talloc_new(NULL);
	ev = tevent_context_init(mem);
	src = talloc_size(mem, SRC_LEN + (1 << 20));
	rng = 0x5EED5EED5EEDULL;
	for (i = 0; i < SRC_LEN; i++) {
		src[i] = (uint8_t)(rnd() >> 56);
	}
	/* a buffer that starts near the end runs on into the start */
	memcpy(src + SRC_LEN, src, 1 << 20);

	for (i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
		bool run = argc == 2;

		for (p = 2; p < argc; p++) {
			run = run || strcmp(argv[p], phases[i].name) == 0;
		}
		if (!run) {
			continue;
		}
		/* each phase its own sequence: one phase's change leaves the
		 * others' traces alone */
		rng = (seed + 1) * 0x9E3779B97F4A7C15ULL + i;
		printf("== %s seed=%llu\n", phases[i].name, seed);
		opno = 0;
		phases[i].fn();
		fflush(stdout);
	}
	talloc_free(mem);
	return 0;
}
