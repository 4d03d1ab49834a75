/*
 * The relay: one pump per direction between two tstreams.
 */
#include "relay.h"

#include <errno.h>
#include <sys/uio.h>
#include <tsocket.h>

enum relay_dir { RELAY_UP = 0, RELAY_DOWN = 1 };

enum relay_failure {
	FAIL_READ = 0,
	FAIL_TOO_LARGE,
	FAIL_MALFORMED,
	FAIL_WRITE,
	FAIL_COUNT
};

/* Static so stats->reason needs no allocation and outlives the relay. */
static const char *const relay_reasons[2][FAIL_COUNT] = {
    [RELAY_UP] =
	{
	    [FAIL_READ] = "client read failed",
	    [FAIL_TOO_LARGE] = "client PDU too large",
	    [FAIL_MALFORMED] = "client PDU malformed or truncated",
	    [FAIL_WRITE] = "backend write failed",
	},
    [RELAY_DOWN] =
	{
	    [FAIL_READ] = "backend read failed",
	    [FAIL_TOO_LARGE] = "backend PDU too large",
	    [FAIL_MALFORMED] = "backend PDU malformed or truncated",
	    [FAIL_WRITE] = "client write failed",
	},
};

static int req_errno(struct tevent_req *req, int *perrno)
{
	enum tevent_req_state state;
	uint64_t err;

	if (!tevent_req_is_error(req, &state, &err)) {
		return 0;
	}
	switch (state) {
	case TEVENT_REQ_USER_ERROR:
		*perrno = (int)err;
		break;
	case TEVENT_REQ_TIMED_OUT:
		*perrno = ETIMEDOUT;
		break;
	default:
		*perrno = ENOMEM;
		break;
	}
	return -1;
}

/*
 * One direction: read a PDU from src, write it to dst, repeat. A pump is
 * a plain struct of the relay, not a request of its own (with tevent
 * 0.14 every tevent_req is a talloc pool of about 0.9 KiB, and an idle
 * connection keeps its two pumps for hours). A pump ends by telling the
 * relay (relay_pump_end()), as the last thing it does: the relay may be
 * freed from there.
 */
struct relay_pump {
	struct tevent_req *relay;
	void *mem; /* the relay's state: owns the pump's requests */
	struct tevent_context *ev;
	struct tstream_context *src;
	struct tstream_context *dst;
	enum relay_dir dir;
	const struct tsgate_relay_params *params;
	struct tsgate_relay_stats *stats;
	struct timeval *last_activity;
	uint8_t *buf;
	size_t len;
	struct iovec iov;
	uint8_t first; /* raw framing: the first byte of a chunk */
	/* the last raw chunk was cut at max: read on without waiting */
	bool more;
	/* src has our readable handler (see relay_pump_wait) */
	bool waiting;
};

/* The relay: two pumps and an idle timer. */
struct tsgate_relay_state {
	struct tevent_context *ev;
	struct tsgate_relay_params params;
	struct tsgate_relay_stats *stats;
	struct timeval last_activity;
	struct tevent_timer *idle_timer;
	struct relay_pump pumps[2];
	unsigned pumps_running;
};

static void relay_pump_wait(struct relay_pump *p);
static void relay_pump_readable(struct tstream_context *stream,
				void *private_data);
static void relay_pump_read(struct relay_pump *p);
static void relay_pump_read_done(struct tevent_req *subreq);
static void relay_pump_raw_first_done(struct tevent_req *subreq);
static void relay_pump_raw_rest_done(struct tevent_req *subreq);
static void relay_pump_read_failed(struct relay_pump *p, int err);
static void relay_pump_write(struct relay_pump *p);
static void relay_pump_write_done(struct tevent_req *subreq);
static void relay_pump_shutdown_done(struct tevent_req *subreq);

/*
 * The pump is over (err 0: its direction ended cleanly). An error ends
 * the relay, and the other pump with it.
 */
static void relay_pump_end(struct relay_pump *p, int err)
{
	struct tevent_req *req = p->relay;
	struct tsgate_relay_state *state =
	    tevent_req_data(req, struct tsgate_relay_state);

	TALLOC_FREE(p->buf);
	if (err != 0) {
		tevent_req_error(req, err);
		return;
	}
	state->pumps_running--;
	if (state->pumps_running > 0) {
		return;
	}
	tevent_req_done(req);
}

static void relay_pump_fail(struct relay_pump *p, enum relay_failure f, int err)
{
	if (p->stats->reason == NULL) {
		p->stats->reason = relay_reasons[p->dir][f];
		p->stats->pdu_refused = (f != FAIL_READ);
	}
	relay_pump_end(p, err);
}

/*
 * An idle direction waits for its source to become readable before it
 * reads: a readable handler holds no buffer and, unlike a readv, no read
 * request of each stream layer underneath (the TLS readv, its pull's BSD
 * readv and read-ahead); unlike tstream_wait_readable, no request at
 * all. A source that just filled a whole chunk, or says it has bytes
 * pending, is read on at once: a busy direction takes no extra turn of
 * the event loop per chunk.
 */
static void relay_pump_wait(struct relay_pump *p)
{
	if (p->more || tstream_pending_bytes(p->src) != 0) {
		/* bytes waiting (or an error for the readv to report) */
		relay_pump_read(p);
		return;
	}
	if (tstream_set_readable_handler(p->src, p->ev, relay_pump_readable,
					 p) == -1) {
		if (errno == ENOSYS) {
			/* a type that cannot tell: its readv waits */
			relay_pump_read(p);
			return;
		}
		relay_pump_read_failed(p, errno);
		return;
	}
	p->waiting = true;
}

static void relay_pump_readable(struct tstream_context *stream,
				void *private_data)
{
	struct relay_pump *p = private_data;

	(void)stream;
	p->waiting = false;
	relay_pump_read(p);
}

static void relay_pump_raw_chunk(struct relay_pump *p,
				 size_t pending,
				 bool have_first);

static void relay_pump_read(struct relay_pump *p)
{
	struct tevent_req *subreq;
	ssize_t pending;

	if (p->params->framing == TSGATE_FRAMING_RAW) {
		/*
		 * Raw chunks the way tsgate_pdu_read_send() cuts them (one
		 * byte, then what the source has pending), without its two
		 * requests and readv_pdu's pool. When the source has bytes
		 * pending already (a busy socket, records a TLS stream has
		 * decrypted ahead), the chunk is read at once: one readv
		 * instead of two.
		 */
		pending = tstream_pending_bytes(p->src);
		if (pending > 0) {
			relay_pump_raw_chunk(p, (size_t)pending, false);
			return;
		}
		p->iov.iov_base = &p->first;
		p->iov.iov_len = 1;
		subreq = tstream_readv_send(p->mem, p->ev, p->src, &p->iov, 1);
		if (subreq == NULL) {
			relay_pump_end(p, ENOMEM);
			return;
		}
		tevent_req_set_callback(subreq, relay_pump_raw_first_done, p);
		return;
	}
	subreq = tsgate_pdu_read_send(p->mem, p->ev, p->src, p->params->framing,
				      p->params->max_pdu);
	if (subreq == NULL) {
		relay_pump_end(p, ENOMEM);
		return;
	}
	tevent_req_set_callback(subreq, relay_pump_read_done, p);
}

static void relay_pump_raw_first_done(struct tevent_req *subreq)
{
	struct relay_pump *p = tevent_req_callback_data_void(subreq);
	ssize_t pending;
	int ret, err = 0;

	ret = tstream_readv_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		relay_pump_read_failed(p, err);
		return;
	}
	pending = tstream_pending_bytes(p->src);
	relay_pump_raw_chunk(p, pending > 0 ? (size_t)pending : 0, true);
}

/*
 * Read a raw chunk of what is pending (up to the chunk size), after the
 * first byte when have_first.
 */
static void relay_pump_raw_chunk(struct relay_pump *p,
				 size_t pending,
				 bool have_first)
{
	struct tevent_req *subreq;
	size_t max = p->params->max_pdu;
	size_t first = have_first ? 1 : 0;
	size_t want;

	if (max == 0) {
		max = TSGATE_FRAMING_RAW_CHUNK;
	}
	want = first + pending;
	/* cut at max: more is waiting, read on without waiting */
	p->more = want >= max;
	if (want > max) {
		want = max;
	}
	p->buf = talloc_size(p->mem, want);
	if (p->buf == NULL) {
		relay_pump_end(p, ENOMEM);
		return;
	}
	if (have_first) {
		p->buf[0] = p->first;
	}
	p->len = want;
	if (want <= first) {
		relay_pump_write(p);
		return;
	}
	p->iov.iov_base = p->buf + first;
	p->iov.iov_len = want - first;
	subreq = tstream_readv_send(p->mem, p->ev, p->src, &p->iov, 1);
	if (subreq == NULL) {
		relay_pump_end(p, ENOMEM);
		return;
	}
	tevent_req_set_callback(subreq, relay_pump_raw_rest_done, p);
}

static void relay_pump_raw_rest_done(struct tevent_req *subreq)
{
	struct relay_pump *p = tevent_req_callback_data_void(subreq);
	int ret, err = 0;

	ret = tstream_readv_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1 && err == EPIPE) {
		/* the end inside a chunk: truncated, as the framer says */
		relay_pump_fail(p, FAIL_MALFORMED, EPROTO);
		return;
	}
	if (ret == -1) {
		relay_pump_read_failed(p, err);
		return;
	}
	relay_pump_write(p);
}

static void relay_pump_read_done(struct tevent_req *subreq)
{
	struct relay_pump *p = tevent_req_callback_data_void(subreq);
	int ret, err = 0;
	bool verdict = false;

	ret = tsgate_pdu_read_recv(subreq, &err, &verdict, p->mem, &p->buf,
				   &p->len);
	TALLOC_FREE(subreq);
	if (ret == -1 && verdict) {
		relay_pump_fail(
		    p, err == EMSGSIZE ? FAIL_TOO_LARGE : FAIL_MALFORMED, err);
		return;
	}
	if (ret == -1) {
		relay_pump_read_failed(p, err);
		return;
	}
	relay_pump_write(p);
}

static void relay_pump_read_failed(struct relay_pump *p, int err)
{
	struct tevent_req *subreq;

	if (err == EPIPE) {
		/* Clean end of this direction: pass it on. */
		subreq = tstream_shutdown_send(p->mem, p->ev, p->dst);
		if (subreq == NULL) {
			relay_pump_end(p, ENOMEM);
			return;
		}
		tevent_req_set_callback(subreq, relay_pump_shutdown_done, p);
		return;
	}
	/*
	 * The framer's verdicts do not come here (relay_pump_read_done);
	 * an EMSGSIZE or EPROTO here is the source stream's own (a GSSAPI
	 * frame the tunnel refused, say), on raw and framed routes alike.
	 */
	relay_pump_fail(p, FAIL_READ, err);
}

/* A chunk or PDU is in p->buf: pass it on. */
static void relay_pump_write(struct relay_pump *p)
{
	struct tevent_req *subreq;

	*p->last_activity = tevent_timeval_current();

	p->iov.iov_base = p->buf;
	p->iov.iov_len = p->len;
	subreq = tstream_writev_send(p->mem, p->ev, p->dst, &p->iov, 1);
	if (subreq == NULL) {
		relay_pump_end(p, ENOMEM);
		return;
	}
	tevent_req_set_callback(subreq, relay_pump_write_done, p);
}

static void relay_pump_write_done(struct tevent_req *subreq)
{
	struct relay_pump *p = tevent_req_callback_data_void(subreq);
	int ret, err = 0;

	ret = tstream_writev_recv(subreq, &err);
	TALLOC_FREE(subreq);
	TALLOC_FREE(p->buf);
	if (ret == -1 && err == EPIPE) {
		/*
		 * The destination stopped reading (it closed). Nothing more
		 * can go this way; the other direction may still have data
		 * to deliver, so end this pump only.
		 */
		relay_pump_end(p, 0);
		return;
	}
	if (ret == -1) {
		relay_pump_fail(p, FAIL_WRITE, err);
		return;
	}
	*p->last_activity = tevent_timeval_current();
	if (p->dir == RELAY_UP) {
		p->stats->bytes_up += p->len;
		p->stats->pdus_up++;
	} else {
		p->stats->bytes_down += p->len;
		p->stats->pdus_down++;
	}
	relay_pump_wait(p);
}

static void relay_pump_shutdown_done(struct tevent_req *subreq)
{
	struct relay_pump *p = tevent_req_callback_data_void(subreq);
	int err = 0;

	/*
	 * A failed half-close (peer already gone, or a stream type that
	 * cannot half-close) ends this direction all the same.
	 */
	(void)tstream_shutdown_recv(subreq, &err);
	TALLOC_FREE(subreq);
	relay_pump_end(p, 0);
}

static void tsgate_relay_idle_check(struct tevent_context *ev,
				    struct tevent_timer *te,
				    struct timeval now,
				    void *private_data);

/*
 * The relay is over (or freed): a pump waiting on its source takes its
 * handler back, the streams outlive the relay.
 */
static void tsgate_relay_cleanup(struct tevent_req *req,
				 enum tevent_req_state req_state)
{
	struct tsgate_relay_state *state =
	    tevent_req_data(req, struct tsgate_relay_state);
	size_t i;

	(void)req_state;
	for (i = 0; i < sizeof(state->pumps) / sizeof(state->pumps[0]); i++) {
		struct relay_pump *p = &state->pumps[i];

		if (p->waiting) {
			p->waiting = false;
			tstream_set_readable_handler(p->src, NULL, NULL, NULL);
		}
	}
}

static bool relay_arm_idle(struct tevent_req *req)
{
	struct tsgate_relay_state *state =
	    tevent_req_data(req, struct tsgate_relay_state);
	uint32_t ms = state->params.idle_timeout_ms;
	struct timeval at;

	at = tevent_timeval_add(&state->last_activity, ms / 1000,
				(ms % 1000) * 1000);
	TALLOC_FREE(state->idle_timer);
	state->idle_timer = tevent_add_timer(state->ev, state, at,
					     tsgate_relay_idle_check, req);
	return state->idle_timer != NULL;
}

static void relay_pump_start(struct tevent_req *req,
			     enum relay_dir dir,
			     struct tstream_context *src,
			     struct tstream_context *dst)
{
	struct tsgate_relay_state *state =
	    tevent_req_data(req, struct tsgate_relay_state);
	struct relay_pump *p = &state->pumps[dir];

	*p = (struct relay_pump){
	    .relay = req,
	    .mem = state,
	    .ev = state->ev,
	    .src = src,
	    .dst = dst,
	    .dir = dir,
	    .params = &state->params,
	    .stats = state->stats,
	    .last_activity = &state->last_activity,
	};
	state->pumps_running++;
	relay_pump_wait(p);
}

struct tevent_req *tsgate_relay_send(TALLOC_CTX *mem_ctx,
				     struct tevent_context *ev,
				     struct tstream_context *client,
				     struct tstream_context *backend,
				     const struct tsgate_relay_params *params,
				     struct tsgate_relay_stats *stats)
{
	struct tevent_req *req;
	struct tsgate_relay_state *state;

	req = tevent_req_create(mem_ctx, &state, struct tsgate_relay_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->params = *params;
	state->stats = stats;
	state->last_activity = tevent_timeval_current();
	tevent_req_set_cleanup_fn(req, tsgate_relay_cleanup);

	/* a pump only ends at once when out of memory */
	relay_pump_start(req, RELAY_UP, client, backend);
	if (!tevent_req_is_in_progress(req)) {
		return tevent_req_post(req, ev);
	}
	relay_pump_start(req, RELAY_DOWN, backend, client);
	if (!tevent_req_is_in_progress(req)) {
		return tevent_req_post(req, ev);
	}

	if (params->idle_timeout_ms > 0 && !relay_arm_idle(req)) {
		tevent_req_oom(req);
		return tevent_req_post(req, ev);
	}
	return req;
}

static void tsgate_relay_idle_check(struct tevent_context *ev,
				    struct tevent_timer *te,
				    struct timeval now,
				    void *private_data)
{
	struct tevent_req *req =
	    talloc_get_type_abort(private_data, struct tevent_req);
	struct tsgate_relay_state *state =
	    tevent_req_data(req, struct tsgate_relay_state);
	struct timeval deadline;
	uint32_t ms = state->params.idle_timeout_ms;

	(void)ev;
	(void)te;
	state->idle_timer = NULL;
	deadline = tevent_timeval_add(&state->last_activity, ms / 1000,
				      (ms % 1000) * 1000);
	if (tevent_timeval_compare(&now, &deadline) < 0) {
		/* There was traffic since: wait for the new deadline. */
		if (!relay_arm_idle(req)) {
			tevent_req_oom(req);
		}
		return;
	}
	if (state->stats->reason == NULL) {
		state->stats->reason = "idle timeout";
	}
	tevent_req_error(req, ETIMEDOUT);
}

int tsgate_relay_recv(struct tevent_req *req, int *perrno)
{
	int ret = req_errno(req, perrno);

	tevent_req_received(req);
	return ret;
}
