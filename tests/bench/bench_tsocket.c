/* SPDX-License-Identifier: MIT */
/*
 * tsocket benchmark. One source, built twice: against tsgate's libtsocket
 * (bench_tsocket) and, as a yardstick, against Samba's tsocket
 * (bench_tsocket_samba); compare_tsocket.py runs both and prints the
 * ratios. Only API both libraries share is used here.
 *
 * Figures (each measured for a fixed wall-clock time, one event loop,
 * both ends in this process):
 *   bulk      64 KiB writev / 64 KiB readv over a unix socketpair, MiB/s
 *   pingpong  a 64-byte PDU (4-byte length + 60) sent, read back with
 *             tstream_readv_pdu on both ends and echoed, round trips/s
 *   udp       100-byte datagrams 127.0.0.1 -> 127.0.0.1, sendto with a
 *             destination, recvfrom with the sender's address, at most
 *             64 in flight, datagrams/s
 *
 * Usage: bench_tsocket [-t SECONDS] [-n COUNT] [bulk|pingpong|udp]...
 * Output: "NAME VALUE" per wall-clock second and "NAME_cpu VALUE" per
 * CPU second of this process, for each figure.
 *
 * -n stops each figure after COUNT operations (chunks read, round trips,
 * datagrams received) instead of after the time: under
 * valgrind --tool=callgrind that gives the same work in every run, so
 * instruction counts per operation can be compared exactly.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <talloc.h>
#include <tevent.h>
#include <tsocket.h>

#ifndef BENCH_IMPL
#define BENCH_IMPL "tsgate"
#endif

#define BULK_CHUNK 65536
#define PDU_SIZE   64
#define PDU_HDR    4
#define UDP_SIZE   100
#define UDP_WINDOW 64

/* -n: stop a figure after this many operations (0: only the time). */
static uint64_t op_limit;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time (user + system) this process has used so far. */
static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/*
 * A figure is measured both per wall-clock second and per CPU second:
 * both ends run in this one busy process, so on an idle machine the two
 * agree, and on a shared one the CPU figure does not count the time
 * other processes took.
 */
static void report(const char *name, double count, double wall, double cpu)
{
	printf("%s %.1f\n", name, count / wall);
	printf("%s_cpu %.1f\n", name, count / cpu);
	fflush(stdout);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_tsocket (%s): %s: %s\n", BENCH_IMPL, what,
		strerror(err));
	exit(1);
}

/* Whether a figure has done its time or its -n operations. */
static bool bench_over(double now, double deadline, uint64_t ops)
{
	return now >= deadline || (op_limit != 0 && ops >= op_limit);
}

/* Runs ev until *done; the figures stop themselves at their deadline. */
static void run_until(struct tevent_context *ev, const bool *done)
{
	while (!*done) {
		if (tevent_loop_once(ev) != 0) {
			die("tevent_loop_once", errno);
		}
	}
}

/*
 * bulk
 */

struct bulk_state {
	struct tevent_context *ev;
	struct tstream_context *w;
	struct tstream_context *r;
	struct tevent_req *wreq;
	struct tevent_req *rreq;
	uint8_t *wbuf;
	uint8_t *rbuf;
	uint64_t bytes;
	double start;
	double deadline;
	double elapsed;
	bool done;
};

static void bulk_write_done(struct tevent_req *req);
static void bulk_read_done(struct tevent_req *req);

static void bulk_write(struct bulk_state *b)
{
	struct iovec iov = {.iov_base = b->wbuf, .iov_len = BULK_CHUNK};

	b->wreq = tstream_writev_send(b, b->ev, b->w, &iov, 1);
	if (b->wreq == NULL) {
		die("writev_send", ENOMEM);
	}
	tevent_req_set_callback(b->wreq, bulk_write_done, b);
}

static void bulk_read(struct bulk_state *b)
{
	struct iovec iov = {.iov_base = b->rbuf, .iov_len = BULK_CHUNK};

	b->rreq = tstream_readv_send(b, b->ev, b->r, &iov, 1);
	if (b->rreq == NULL) {
		die("readv_send", ENOMEM);
	}
	tevent_req_set_callback(b->rreq, bulk_read_done, b);
}

static void bulk_write_done(struct tevent_req *req)
{
	struct bulk_state *b = tevent_req_callback_data(req, struct bulk_state);
	int err = 0;

	b->wreq = NULL;
	if (tstream_writev_recv(req, &err) != BULK_CHUNK) {
		die("writev", err);
	}
	TALLOC_FREE(req);
	if (!b->done) {
		bulk_write(b);
	}
}

static void bulk_read_done(struct tevent_req *req)
{
	struct bulk_state *b = tevent_req_callback_data(req, struct bulk_state);
	int err = 0;
	double now;

	b->rreq = NULL;
	if (tstream_readv_recv(req, &err) != BULK_CHUNK) {
		die("readv", err);
	}
	TALLOC_FREE(req);
	b->bytes += BULK_CHUNK;
	now = now_s();
	if (bench_over(now, b->deadline, b->bytes / BULK_CHUNK)) {
		b->elapsed = now - b->start;
		b->done = true;
		return;
	}
	bulk_read(b);
}

static void bench_bulk(double seconds)
{
	struct bulk_state *b = talloc_zero(NULL, struct bulk_state);
	double cpu;

	b->ev = tevent_context_init(b);
	if (b->ev == NULL) {
		die("tevent_context_init", ENOMEM);
	}
	if (tstream_unix_socketpair(b, &b->w, b, &b->r) != 0) {
		die("socketpair", errno);
	}
	b->wbuf = talloc_zero_size(b, BULK_CHUNK);
	b->rbuf = talloc_zero_size(b, BULK_CHUNK);
	cpu = cpu_s();
	b->start = now_s();
	b->deadline = b->start + seconds;
	bulk_write(b);
	bulk_read(b);
	run_until(b->ev, &b->done);
	cpu = cpu_s() - cpu;

	report("bulk_mib_per_s", (double)b->bytes / (1024.0 * 1024.0),
	       b->elapsed, cpu);
	TALLOC_FREE(b->wreq);
	TALLOC_FREE(b->rreq);
	TALLOC_FREE(b->w);
	TALLOC_FREE(b->r);
	talloc_free(b);
}

/*
 * pingpong
 */

struct pdu_reader {
	uint8_t hdr[PDU_HDR];
	uint8_t body[PDU_SIZE];
	size_t body_len;
	int stage;
};

/* The usual framing callback: a 4-byte big-endian length, then the body. */
static int pdu_next_vector(struct tstream_context *stream,
			   void *private_data,
			   TALLOC_CTX *mem_ctx,
			   struct iovec **_vector,
			   size_t *_count)
{
	struct pdu_reader *p = private_data;
	struct iovec *vector;
	uint32_t len;

	if (p->stage == 2) {
		*_vector = NULL;
		*_count = 0;
		return 0;
	}
	vector = talloc_array(mem_ctx, struct iovec, 1);
	if (vector == NULL) {
		return -1;
	}
	if (p->stage == 0) {
		vector[0].iov_base = p->hdr;
		vector[0].iov_len = PDU_HDR;
		p->stage = 1;
	} else {
		len = ((uint32_t)p->hdr[0] << 24) |
		      ((uint32_t)p->hdr[1] << 16) | ((uint32_t)p->hdr[2] << 8) |
		      (uint32_t)p->hdr[3];
		if (len > sizeof(p->body)) {
			errno = EMSGSIZE;
			return -1;
		}
		p->body_len = len;
		vector[0].iov_base = p->body;
		vector[0].iov_len = len;
		p->stage = 2;
	}
	*_vector = vector;
	*_count = 1;
	return 0;
}

struct pp_end {
	struct pingpong_state *pp;
	struct tstream_context *stream;
	struct pdu_reader reader;
	struct tevent_req *rreq;
	struct tevent_req *wreq;
	bool reply_pending; /* a PDU arrived while the last write was busy */
	bool is_client;
};

struct pingpong_state {
	struct tevent_context *ev;
	struct pp_end client;
	struct pp_end server;
	uint8_t pdu[PDU_SIZE];
	uint64_t round_trips;
	double start;
	double deadline;
	double elapsed;
	bool done;
};

static void pp_read_done(struct tevent_req *req);
static void pp_write_done(struct tevent_req *req);

static void pp_read(struct pp_end *e)
{
	e->reader.stage = 0;
	e->rreq = tstream_readv_pdu_send(e->pp, e->pp->ev, e->stream,
					 pdu_next_vector, &e->reader);
	if (e->rreq == NULL) {
		die("readv_pdu_send", ENOMEM);
	}
	tevent_req_set_callback(e->rreq, pp_read_done, e);
}

static void pp_write(struct pp_end *e)
{
	struct iovec iov = {.iov_base = e->pp->pdu, .iov_len = PDU_SIZE};

	e->wreq = tstream_writev_send(e->pp, e->pp->ev, e->stream, &iov, 1);
	if (e->wreq == NULL) {
		die("writev_send", ENOMEM);
	}
	tevent_req_set_callback(e->wreq, pp_write_done, e);
}

static void pp_send_or_defer(struct pp_end *e)
{
	if (e->wreq != NULL) {
		e->reply_pending = true;
		return;
	}
	pp_write(e);
}

static void pp_write_done(struct tevent_req *req)
{
	struct pp_end *e = tevent_req_callback_data_void(req);
	int err = 0;

	e->wreq = NULL;
	if (tstream_writev_recv(req, &err) != PDU_SIZE) {
		die("writev", err);
	}
	TALLOC_FREE(req);
	if (e->reply_pending && !e->pp->done) {
		e->reply_pending = false;
		pp_write(e);
	}
}

static void pp_read_done(struct tevent_req *req)
{
	struct pp_end *e = tevent_req_callback_data_void(req);
	struct pingpong_state *pp = e->pp;
	int err = 0;

	e->rreq = NULL;
	if (tstream_readv_pdu_recv(req, &err) != PDU_SIZE) {
		die("readv_pdu", err);
	}
	TALLOC_FREE(req);
	if (e->reader.body_len != PDU_SIZE - PDU_HDR) {
		die("pdu length", EPROTO);
	}
	if (e->is_client) {
		double now;

		pp->round_trips++;
		now = now_s();
		if (bench_over(now, pp->deadline, pp->round_trips)) {
			pp->elapsed = now - pp->start;
			pp->done = true;
			return;
		}
	}
	/* the client sends the next request, the server echoes */
	pp_send_or_defer(e);
	pp_read(e);
}

static void bench_pingpong(double seconds)
{
	struct pingpong_state *pp = talloc_zero(NULL, struct pingpong_state);
	double cpu;
	size_t i;

	pp->ev = tevent_context_init(pp);
	if (pp->ev == NULL) {
		die("tevent_context_init", ENOMEM);
	}
	if (tstream_unix_socketpair(pp, &pp->client.stream, pp,
				    &pp->server.stream) != 0) {
		die("socketpair", errno);
	}
	pp->client.pp = pp;
	pp->client.is_client = true;
	pp->server.pp = pp;
	pp->pdu[3] = PDU_SIZE - PDU_HDR;
	for (i = PDU_HDR; i < PDU_SIZE; i++) {
		pp->pdu[i] = (uint8_t)i;
	}

	cpu = cpu_s();
	pp->start = now_s();
	pp->deadline = pp->start + seconds;
	pp_read(&pp->server);
	pp_write(&pp->client);
	pp_read(&pp->client);
	run_until(pp->ev, &pp->done);
	cpu = cpu_s() - cpu;

	report("pingpong_round_trips_per_s", (double)pp->round_trips,
	       pp->elapsed, cpu);
	TALLOC_FREE(pp->client.rreq);
	TALLOC_FREE(pp->client.wreq);
	TALLOC_FREE(pp->server.rreq);
	TALLOC_FREE(pp->server.wreq);
	TALLOC_FREE(pp->client.stream);
	TALLOC_FREE(pp->server.stream);
	talloc_free(pp);
}

/*
 * udp
 */

struct udp_state {
	struct tevent_context *ev;
	struct tdgram_context *tx;
	struct tdgram_context *rx;
	struct tsocket_address *dst;
	struct tevent_req *sreq;
	struct tevent_req *rreq;
	uint8_t buf[UDP_SIZE];
	uint64_t sent;
	uint64_t received;
	uint64_t lost;
	uint64_t last_received;
	double start;
	double deadline;
	double elapsed;
	bool done;
};

static void udp_send_done(struct tevent_req *req);
static void udp_recv_done(struct tevent_req *req);

static void udp_send_next(struct udp_state *u)
{
	if (u->sreq != NULL || u->done ||
	    u->sent - u->received - u->lost >= UDP_WINDOW) {
		return;
	}
	u->sreq = tdgram_sendto_send(u, u->ev, u->tx, u->buf, UDP_SIZE, u->dst);
	if (u->sreq == NULL) {
		die("sendto_send", ENOMEM);
	}
	tevent_req_set_callback(u->sreq, udp_send_done, u);
}

static void udp_recv(struct udp_state *u)
{
	u->rreq = tdgram_recvfrom_send(u, u->ev, u->rx);
	if (u->rreq == NULL) {
		die("recvfrom_send", ENOMEM);
	}
	tevent_req_set_callback(u->rreq, udp_recv_done, u);
}

static void udp_send_done(struct tevent_req *req)
{
	struct udp_state *u = tevent_req_callback_data(req, struct udp_state);
	int err = 0;

	u->sreq = NULL;
	if (tdgram_sendto_recv(req, &err) != UDP_SIZE) {
		die("sendto", err);
	}
	TALLOC_FREE(req);
	u->sent++;
	udp_send_next(u);
}

static void udp_recv_done(struct tevent_req *req)
{
	struct udp_state *u = tevent_req_callback_data(req, struct udp_state);
	struct tsocket_address *src = NULL;
	uint8_t *buf = NULL;
	int err = 0;
	double now;

	u->rreq = NULL;
	if (tdgram_recvfrom_recv(req, &err, u, &buf, &src) != UDP_SIZE) {
		die("recvfrom", err);
	}
	TALLOC_FREE(req);
	talloc_free(buf);
	talloc_free(src);
	u->received++;
	now = now_s();
	if (bench_over(now, u->deadline, u->received)) {
		u->elapsed = now - u->start;
		u->done = true;
		return;
	}
	udp_recv(u);
	udp_send_next(u);
}

/* Loopback UDP does not drop with a small window; if it ever did, go on. */
static void udp_watchdog(struct tevent_context *ev,
			 struct tevent_timer *te,
			 struct timeval now,
			 void *private_data)
{
	struct udp_state *u = private_data;

	if (u->received == u->last_received && u->sreq == NULL) {
		u->lost = u->sent - u->received;
		udp_send_next(u);
	}
	u->last_received = u->received;
	if (tevent_add_timer(ev, u, tevent_timeval_current_ofs(0, 100000),
			     udp_watchdog, u) == NULL) {
		die("add_timer", ENOMEM);
	}
}

static uint16_t udp_free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	uint16_t port = 0;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0) {
		port = ntohs(sin.sin_port);
	}
	if (fd >= 0) {
		close(fd);
	}
	if (port == 0) {
		die("free udp port", errno);
	}
	return port;
}

static void bench_udp(double seconds)
{
	struct udp_state *u = talloc_zero(NULL, struct udp_state);
	struct tsocket_address *local = NULL;
	double cpu;

	u->ev = tevent_context_init(u);
	if (u->ev == NULL) {
		die("tevent_context_init", ENOMEM);
	}
	if (tsocket_address_inet_from_strings(u, "ipv4", "127.0.0.1",
					      udp_free_port(), &u->dst) != 0 ||
	    tsocket_address_inet_from_strings(u, "ipv4", "127.0.0.1", 0,
					      &local) != 0) {
		die("address", errno);
	}
	if (tdgram_inet_udp_socket(u->dst, NULL, u, &u->rx) != 0 ||
	    tdgram_inet_udp_socket(local, NULL, u, &u->tx) != 0) {
		die("udp socket", errno);
	}
	memset(u->buf, 'u', sizeof(u->buf));
	if (tevent_add_timer(u->ev, u, tevent_timeval_current_ofs(0, 100000),
			     udp_watchdog, u) == NULL) {
		die("add_timer", ENOMEM);
	}

	cpu = cpu_s();
	u->start = now_s();
	u->deadline = u->start + seconds;
	udp_recv(u);
	udp_send_next(u);
	run_until(u->ev, &u->done);
	cpu = cpu_s() - cpu;

	report("udp_datagrams_per_s", (double)u->received, u->elapsed, cpu);
	if (u->lost != 0) {
		printf("udp_lost %llu\n", (unsigned long long)u->lost);
	}
	TALLOC_FREE(u->sreq);
	TALLOC_FREE(u->rreq);
	TALLOC_FREE(u->tx);
	TALLOC_FREE(u->rx);
	talloc_free(u);
}

int main(int argc, char **argv)
{
	double seconds = 0.5;
	bool all = true;
	bool want_bulk = false, want_pp = false, want_udp = false;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
			op_limit = strtoull(argv[++i], NULL, 10);
		} else if (strcmp(argv[i], "bulk") == 0) {
			want_bulk = true;
			all = false;
		} else if (strcmp(argv[i], "pingpong") == 0) {
			want_pp = true;
			all = false;
		} else if (strcmp(argv[i], "udp") == 0) {
			want_udp = true;
			all = false;
		} else {
			fprintf(stderr,
				"usage: %s [-t SECONDS] [-n COUNT] "
				"[bulk|pingpong|udp]...\n",
				argv[0]);
			return 2;
		}
	}
	if (seconds <= 0) {
		seconds = 0.5;
	}

	printf("impl %s\n", BENCH_IMPL);
	if (all || want_bulk) {
		bench_bulk(seconds);
	}
	if (all || want_pp) {
		bench_pingpong(seconds);
	}
	if (all || want_udp) {
		bench_udp(seconds);
	}
	return 0;
}
