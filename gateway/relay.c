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

/* One direction: read a PDU from src, write it to dst, repeat. */
struct relay_pump_state {
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
};

static void relay_pump_wait(struct tevent_req *req);
static void relay_pump_read_failed(struct tevent_req *req, int err);
static void relay_pump_wait_done(struct tevent_req *subreq);
static void relay_pump_read(struct tevent_req *req);
static void relay_pump_read_done(struct tevent_req *subreq);
static void relay_pump_raw_first_done(struct tevent_req *subreq);
static void relay_pump_raw_rest_done(struct tevent_req *subreq);
static void relay_pump_write_done(struct tevent_req *subreq);
static void relay_pump_shutdown_done(struct tevent_req *subreq);

static struct tevent_req *relay_pump_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *src,
    struct tstream_context *dst,
    enum relay_dir dir,
    const struct tsgate_relay_params *params,
    struct tsgate_relay_stats *stats,
    struct timeval *last_activity)
{
	struct tevent_req *req;
	struct relay_pump_state *state;

	req = tevent_req_create(mem_ctx, &state, struct relay_pump_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->src = src;
	state->dst = dst;
	state->dir = dir;
	state->params = params;
	state->stats = stats;
	state->last_activity = last_activity;

	relay_pump_wait(req);
	if (!tevent_req_is_in_progress(req)) {
		return tevent_req_post(req, ev);
	}
	return req;
}

static void relay_pump_fail(struct tevent_req *req,
			    enum relay_failure f,
			    int err)
{
	struct relay_pump_state *state =
	    tevent_req_data(req, struct relay_pump_state);

	if (state->stats->reason == NULL) {
		state->stats->reason = relay_reasons[state->dir][f];
		state->stats->pdu_refused = (f != FAIL_READ);
	}
	tevent_req_error(req, err);
}

/*
 * An idle direction waits for its source to become readable before it
 * reads: a wait holds no buffer and, unlike a readv, no read request of
 * each stream layer underneath (the TLS readv, its pull's BSD readv and
 * read-ahead). Only a source that just filled a whole chunk is read on
 * at once.
 */
static void relay_pump_wait(struct tevent_req *req)
{
	struct relay_pump_state *state =
	    tevent_req_data(req, struct relay_pump_state);
	struct tevent_req *subreq;

	if (state->more) {
		relay_pump_read(req);
		return;
	}
	subreq = tstream_wait_readable_send(state, state->ev, state->src);
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, relay_pump_wait_done, req);
}

static void relay_pump_wait_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	int ret, err = 0;

	ret = tstream_wait_readable_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		relay_pump_read_failed(req, err);
		return;
	}
	relay_pump_read(req);
}

static void relay_pump_read(struct tevent_req *req)
{
	struct relay_pump_state *state =
	    tevent_req_data(req, struct relay_pump_state);
	struct tevent_req *subreq;

	if (state->params->framing == TSGATE_FRAMING_RAW) {
		/*
		 * Raw chunks the way tsgate_pdu_read_send() cuts them (one
		 * byte, then what the source has pending), without its two
		 * requests and readv_pdu's pool: an idle connection keeps
		 * one plain readv per direction.
		 */
		state->iov.iov_base = &state->first;
		state->iov.iov_len = 1;
		subreq = tstream_readv_send(state, state->ev, state->src,
					    &state->iov, 1);
		if (tevent_req_nomem(subreq, req)) {
			return;
		}
		tevent_req_set_callback(subreq, relay_pump_raw_first_done, req);
		return;
	}
	subreq = tsgate_pdu_read_send(state, state->ev, state->src,
				      state->params->framing,
				      state->params->max_pdu);
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, relay_pump_read_done, req);
}

static void relay_pump_write(struct tevent_req *req);

static void relay_pump_raw_first_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct relay_pump_state *state =
	    tevent_req_data(req, struct relay_pump_state);
	size_t max = state->params->max_pdu;
	size_t want = 1;
	ssize_t pending;
	int ret, err = 0;

	ret = tstream_readv_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		relay_pump_read_failed(req, err);
		return;
	}
	if (max == 0) {
		max = TSGATE_FRAMING_RAW_CHUNK;
	}
	pending = tstream_pending_bytes(state->src);
	state->more = false;
	if (pending > 0) {
		want = max;
		if ((size_t)pending < max - 1) {
			want = 1 + (size_t)pending;
		} else {
			state->more = true;
		}
	}
	state->buf = talloc_size(state, want);
	if (tevent_req_nomem(state->buf, req)) {
		return;
	}
	state->buf[0] = state->first;
	state->len = want;
	if (want <= 1) {
		relay_pump_write(req);
		return;
	}
	state->iov.iov_base = state->buf + 1;
	state->iov.iov_len = want - 1;
	subreq =
	    tstream_readv_send(state, state->ev, state->src, &state->iov, 1);
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, relay_pump_raw_rest_done, req);
}

static void relay_pump_raw_rest_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	int ret, err = 0;

	ret = tstream_readv_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1 && err == EPIPE) {
		/* the end inside a chunk: truncated, as the framer says */
		relay_pump_fail(req, FAIL_MALFORMED, EPROTO);
		return;
	}
	if (ret == -1) {
		relay_pump_read_failed(req, err);
		return;
	}
	relay_pump_write(req);
}

static void relay_pump_read_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct relay_pump_state *state =
	    tevent_req_data(req, struct relay_pump_state);
	int ret, err = 0;

	ret =
	    tsgate_pdu_read_recv(subreq, &err, state, &state->buf, &state->len);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		relay_pump_read_failed(req, err);
		return;
	}
	relay_pump_write(req);
}

static void relay_pump_read_failed(struct tevent_req *req, int err)
{
	struct relay_pump_state *state =
	    tevent_req_data(req, struct relay_pump_state);
	struct tevent_req *subreq;
	bool framed;

	if (err == EPIPE) {
		/* Clean end of this direction: pass it on. */
		subreq = tstream_shutdown_send(state, state->ev, state->dst);
		if (tevent_req_nomem(subreq, req)) {
			return;
		}
		tevent_req_set_callback(subreq, relay_pump_shutdown_done, req);
		return;
	}
	/*
	 * Only a framer judges PDUs. On a raw route these errnos are the
	 * source stream's own (a GSSAPI frame the tunnel refused, say).
	 */
	framed = state->params->framing != TSGATE_FRAMING_RAW;
	if (framed && err == EMSGSIZE) {
		relay_pump_fail(req, FAIL_TOO_LARGE, err);
	} else if (framed && err == EPROTO) {
		relay_pump_fail(req, FAIL_MALFORMED, err);
	} else {
		relay_pump_fail(req, FAIL_READ, err);
	}
}

/* A chunk or PDU is in state->buf: pass it on. */
static void relay_pump_write(struct tevent_req *req)
{
	struct relay_pump_state *state =
	    tevent_req_data(req, struct relay_pump_state);
	struct tevent_req *subreq;

	*state->last_activity = tevent_timeval_current();

	state->iov.iov_base = state->buf;
	state->iov.iov_len = state->len;
	subreq =
	    tstream_writev_send(state, state->ev, state->dst, &state->iov, 1);
	if (tevent_req_nomem(subreq, req)) {
		return;
	}
	tevent_req_set_callback(subreq, relay_pump_write_done, req);
}

static void relay_pump_write_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct relay_pump_state *state =
	    tevent_req_data(req, struct relay_pump_state);
	int ret, err = 0;

	ret = tstream_writev_recv(subreq, &err);
	TALLOC_FREE(subreq);
	TALLOC_FREE(state->buf);
	if (ret == -1 && err == EPIPE) {
		/*
		 * The destination stopped reading (it closed). Nothing more
		 * can go this way; the other direction may still have data
		 * to deliver, so end this pump only.
		 */
		tevent_req_done(req);
		return;
	}
	if (ret == -1) {
		relay_pump_fail(req, FAIL_WRITE, err);
		return;
	}
	*state->last_activity = tevent_timeval_current();
	if (state->dir == RELAY_UP) {
		state->stats->bytes_up += state->len;
		state->stats->pdus_up++;
	} else {
		state->stats->bytes_down += state->len;
		state->stats->pdus_down++;
	}
	relay_pump_wait(req);
}

static void relay_pump_shutdown_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	int err = 0;

	/*
	 * A failed half-close (peer already gone, or a stream type that
	 * cannot half-close) ends this direction all the same.
	 */
	(void)tstream_shutdown_recv(subreq, &err);
	TALLOC_FREE(subreq);
	tevent_req_done(req);
}

static int relay_pump_recv(struct tevent_req *req, int *perrno)
{
	int ret = req_errno(req, perrno);

	tevent_req_received(req);
	return ret;
}

/* The relay: two pumps and an idle timer. */
struct tsgate_relay_state {
	struct tevent_context *ev;
	struct tsgate_relay_params params;
	struct tsgate_relay_stats *stats;
	struct timeval last_activity;
	struct tevent_timer *idle_timer;
	unsigned pumps_running;
};

static void tsgate_relay_pump_done(struct tevent_req *subreq);
static void tsgate_relay_idle_check(struct tevent_context *ev,
				    struct tevent_timer *te,
				    struct timeval now,
				    void *private_data);

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

struct tevent_req *tsgate_relay_send(TALLOC_CTX *mem_ctx,
				     struct tevent_context *ev,
				     struct tstream_context *client,
				     struct tstream_context *backend,
				     const struct tsgate_relay_params *params,
				     struct tsgate_relay_stats *stats)
{
	struct tevent_req *req, *subreq;
	struct tsgate_relay_state *state;

	req = tevent_req_create(mem_ctx, &state, struct tsgate_relay_state);
	if (req == NULL) {
		return NULL;
	}
	state->ev = ev;
	state->params = *params;
	state->stats = stats;
	state->last_activity = tevent_timeval_current();

	subreq = relay_pump_send(state, ev, client, backend, RELAY_UP,
				 &state->params, stats, &state->last_activity);
	if (tevent_req_nomem(subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(subreq, tsgate_relay_pump_done, req);
	state->pumps_running++;

	subreq = relay_pump_send(state, ev, backend, client, RELAY_DOWN,
				 &state->params, stats, &state->last_activity);
	if (tevent_req_nomem(subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(subreq, tsgate_relay_pump_done, req);
	state->pumps_running++;

	if (params->idle_timeout_ms > 0 && !relay_arm_idle(req)) {
		tevent_req_oom(req);
		return tevent_req_post(req, ev);
	}
	return req;
}

static void tsgate_relay_pump_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct tsgate_relay_state *state =
	    tevent_req_data(req, struct tsgate_relay_state);
	int ret, err = 0;

	ret = relay_pump_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		/* The other pump dies with the request's state. */
		tevent_req_error(req, err);
		return;
	}
	state->pumps_running--;
	if (state->pumps_running > 0) {
		return;
	}
	tevent_req_done(req);
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
