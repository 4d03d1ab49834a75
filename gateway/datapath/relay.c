/* SPDX-License-Identifier: MIT */
/*
 * The relay: one pump per direction between two tstreams.
 */
#include "relay.h"

#include <errno.h>
#include <sys/uio.h>
#include <tsocket.h>

#include "framer.h"

enum relay_dir { RELAY_UP = 0, RELAY_DOWN = 1 };

/*
 * The sweeper's relays with one idle timeout, oldest activity first: the
 * head has the list's earliest deadline.
 */
struct relay_idle_list {
	struct relay_idle_list *next;
	struct tsgate_relay_sweeper *sweeper;
	uint32_t timeout_ms;
	struct tsgate_relay *head, *tail;
};

struct tsgate_relay_sweeper {
	struct tevent_context *ev;
	struct relay_idle_list *lists; /* one per distinct timeout, kept */
	struct tevent_timer *timer;    /* only while a relay is listed */
	struct timeval timer_at;
	size_t num_relays;
};

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

/*
 * A framed pump's framer and what it cut of the chunk in flight (a child
 * of the relay, so a raw relay does not carry it).
 */
struct relay_framed {
	struct tsgate_framer framer;
	struct tsgate_framer_cut cut;
	struct iovec iov[2];
};

/*
 * One direction: read a chunk from src, write it to dst, repeat. On a
 * framed route the chunk goes through the pump's framer first, which
 * says how much of it may go on (cut-through: a PDU is forwarded as it
 * arrives, its header checked first). A pump is a plain struct of the
 * relay, not a request of its own (with tevent 0.14 every tevent_req is
 * a talloc pool of about 0.9 KiB, and an idle connection keeps its two
 * pumps for hours). A pump ends by telling the relay (relay_pump_end()),
 * as the last thing it does: the relay may be freed from there.
 */
struct relay_pump {
	struct tsgate_relay *relay; /* owns the pump's requests */
	/* the pump's one outstanding request (freed when the relay ends) */
	struct tevent_req *subreq;
	struct tstream_context *src;
	struct tstream_context *dst;
	enum relay_dir dir;
	struct relay_framed *framed; /* NULL on a raw route */
	uint8_t *buf;
	size_t len;
	struct iovec iov;
	uint8_t first; /* raw framing: the first byte of a chunk */
	/* the last raw chunk was cut at max: read on without waiting */
	bool more;
	/* src has our readable handler (see relay_pump_wait) */
	bool waiting;
	bool ended; /* cleanly, half-close passed on */
};

/*
 * The relay: two pumps and an idle timer. A plain talloc object with a
 * done callback, not a tevent_req (see relay.h).
 */
struct tsgate_relay {
	struct tevent_context *ev;
	struct tsgate_relay_params params;
	struct tsgate_conn_stats *stats;
	struct timeval last_activity;
	/* without a sweeper: the relay's own timer */
	struct tevent_timer *idle_timer;
	/* with a sweeper: the list it is on, by last activity */
	struct relay_idle_list *idle_list;
	struct tsgate_relay *idle_prev, *idle_next;
	/* made only when the relay ends inside tsgate_relay_start() */
	struct tevent_immediate *done_im;
	tsgate_relay_done_fn done_fn;
	void *done_private;
	struct relay_pump pumps[2];
	unsigned pumps_running;
	int err;
	bool finished;
	/* the backend reads no more (tsgate_relay_backend_gone()) */
	bool backend_gone;
};

static void relay_finish(struct tsgate_relay *relay, int err);
static void relay_touch(struct tsgate_relay *relay);
static void relay_unlist(struct tsgate_relay *relay);

static void relay_pump_wait(struct relay_pump *p);
static void relay_pump_readable(struct tstream_context *stream,
				void *private_data);
static void relay_pump_read(struct relay_pump *p);
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
	struct tsgate_relay *relay = p->relay;

	TALLOC_FREE(p->buf);
	if (err != 0) {
		relay_finish(relay, err);
		return;
	}
	p->ended = true;
	relay->pumps_running--;
	if (relay->pumps_running > 0 &&
	    !(relay->backend_gone && p->dir == RELAY_DOWN)) {
		return;
	}
	relay_finish(relay, 0);
}

void tsgate_relay_backend_gone(struct tsgate_relay *relay)
{
	if (relay->finished) {
		return;
	}
	relay->backend_gone = true;
	if (relay->pumps[RELAY_DOWN].ended) {
		relay_finish(relay, 0);
	}
}

static void relay_pump_fail(struct relay_pump *p, enum relay_failure f, int err)
{
	if (p->relay->stats->reason == NULL) {
		p->relay->stats->reason = relay_reasons[p->dir][f];
		p->relay->stats->pdu_refused = (f != FAIL_READ);
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
	if (tstream_set_readable_handler(p->src, p->relay->ev,
					 relay_pump_readable, p) == -1) {
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

	/*
	 * Chunks the way tsgate_pdu_read_send() cuts raw ones (one byte,
	 * then what the source has pending), without its two requests and
	 * readv_pdu's pool, on raw and framed routes alike. When the source
	 * has bytes pending already (a busy socket, records a TLS stream
	 * has decrypted ahead), the chunk is read at once: one readv
	 * instead of two.
	 */
	pending = tstream_pending_bytes(p->src);
	if (pending > 0) {
		relay_pump_raw_chunk(p, (size_t)pending, false);
		return;
	}
	p->iov.iov_base = &p->first;
	p->iov.iov_len = 1;
	subreq = tstream_readv_send(p->relay, p->relay->ev, p->src, &p->iov, 1);
	if (subreq == NULL) {
		relay_pump_end(p, ENOMEM);
		return;
	}
	tevent_req_set_callback(subreq, relay_pump_raw_first_done, p);
	p->subreq = subreq;
}

static void relay_pump_raw_first_done(struct tevent_req *subreq)
{
	struct relay_pump *p = tevent_req_callback_data_void(subreq);
	ssize_t pending;
	int ret, err = 0;

	ret = tstream_readv_recv(subreq, &err);
	TALLOC_FREE(subreq);
	p->subreq = NULL;
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
	/* raw: max_pdu bounds a chunk; framed: it bounds a PDU */
	size_t max = p->framed == NULL ? p->relay->params.max_pdu : 0;
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
	p->buf = talloc_size(p->relay, want);
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
	subreq = tstream_readv_send(p->relay, p->relay->ev, p->src, &p->iov, 1);
	if (subreq == NULL) {
		relay_pump_end(p, ENOMEM);
		return;
	}
	tevent_req_set_callback(subreq, relay_pump_raw_rest_done, p);
	p->subreq = subreq;
}

static void relay_pump_raw_rest_done(struct tevent_req *subreq)
{
	struct relay_pump *p = tevent_req_callback_data_void(subreq);
	int ret, err = 0;

	ret = tstream_readv_recv(subreq, &err);
	TALLOC_FREE(subreq);
	p->subreq = NULL;
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

static void relay_pump_read_failed(struct relay_pump *p, int err)
{
	struct tevent_req *subreq;

	if (err == EPIPE && p->framed != NULL &&
	    !tsgate_framer_at_boundary(&p->framed->framer)) {
		/*
		 * The end inside a PDU: truncated. The destination got the
		 * header and the body up to here; it sees the connection
		 * end (not a half-close) when the relay's owner frees it.
		 */
		relay_pump_fail(p, FAIL_MALFORMED, EPROTO);
		return;
	}
	if (err == EPIPE) {
		/* Clean end of this direction: pass it on. */
		subreq = tstream_shutdown_send(p->relay, p->relay->ev, p->dst);
		if (subreq == NULL) {
			relay_pump_end(p, ENOMEM);
			return;
		}
		tevent_req_set_callback(subreq, relay_pump_shutdown_done, p);
		p->subreq = subreq;
		return;
	}
	/*
	 * The framer's verdicts do not come here (relay_pump_framed_write);
	 * an EMSGSIZE or EPROTO here is the source stream's own (a GSSAPI
	 * frame the tunnel refused, say), on raw and framed routes alike.
	 */
	relay_pump_fail(p, FAIL_READ, err);
}

static void relay_pump_framer_verdict(struct relay_pump *p, int err)
{
	relay_pump_fail(p, err == EMSGSIZE ? FAIL_TOO_LARGE : FAIL_MALFORMED,
			err);
}

/*
 * A framed chunk is in p->buf: pass on what the framer lets through (a
 * header held from earlier chunks, then the chunk up to any refused
 * header; a header still incomplete at the chunk's end stays behind).
 */
static void relay_pump_framed_write(struct relay_pump *p)
{
	struct relay_framed *fr = p->framed;
	struct tsgate_framer_cut *cut = &fr->cut;
	struct tevent_req *subreq;
	size_t n = 0;

	tsgate_framer_feed(&fr->framer, p->buf, p->len, cut);
	if (cut->held_len > 0) {
		fr->iov[n].iov_base = (void *)cut->held;
		fr->iov[n].iov_len = cut->held_len;
		n++;
	}
	if (cut->len > 0) {
		fr->iov[n].iov_base = p->buf;
		fr->iov[n].iov_len = cut->len;
		n++;
	}
	if (n == 0) {
		TALLOC_FREE(p->buf);
		if (cut->err != 0) {
			relay_pump_framer_verdict(p, cut->err);
			return;
		}
		/* only the start of a header: read on */
		relay_pump_wait(p);
		return;
	}
	subreq =
	    tstream_writev_send(p->relay, p->relay->ev, p->dst, fr->iov, n);
	if (subreq == NULL) {
		relay_pump_end(p, ENOMEM);
		return;
	}
	tevent_req_set_callback(subreq, relay_pump_write_done, p);
	p->subreq = subreq;
}

/* A chunk is in p->buf: pass it on. */
static void relay_pump_write(struct relay_pump *p)
{
	struct tevent_req *subreq;

	relay_touch(p->relay);
	if (p->framed != NULL) {
		relay_pump_framed_write(p);
		return;
	}

	p->iov.iov_base = p->buf;
	p->iov.iov_len = p->len;
	subreq =
	    tstream_writev_send(p->relay, p->relay->ev, p->dst, &p->iov, 1);
	if (subreq == NULL) {
		relay_pump_end(p, ENOMEM);
		return;
	}
	tevent_req_set_callback(subreq, relay_pump_write_done, p);
	p->subreq = subreq;
}

/*
 * A write went through: its bytes, and the PDUs it completed (on a raw
 * route every chunk counts as one).
 */
static void relay_pump_count(struct relay_pump *p)
{
	uint64_t bytes = p->len, pdus = 1;

	if (p->framed != NULL) {
		bytes = p->framed->cut.held_len + p->framed->cut.len;
		pdus = p->framed->cut.pdus;
	}
	if (p->dir == RELAY_UP) {
		p->relay->stats->bytes_up += bytes;
		p->relay->stats->pdus_up += pdus;
	} else {
		p->relay->stats->bytes_down += bytes;
		p->relay->stats->pdus_down += pdus;
	}
}

static void relay_pump_write_done(struct tevent_req *subreq)
{
	struct relay_pump *p = tevent_req_callback_data_void(subreq);
	int ret, err = 0;

	ret = tstream_writev_recv(subreq, &err);
	TALLOC_FREE(subreq);
	p->subreq = NULL;
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
	relay_touch(p->relay);
	relay_pump_count(p);
	if (p->framed != NULL && p->framed->cut.err != 0) {
		/* what came before the refused header went on; now refuse */
		relay_pump_framer_verdict(p, p->framed->cut.err);
		return;
	}
	relay_pump_wait(p);
}

static void relay_pump_shutdown_done(struct tevent_req *subreq)
{
	struct relay_pump *p = tevent_req_callback_data_void(subreq);
	int err = 0;

	/*
	 * A failed half-close (peer already gone, or a stream type that
	 * cannot half-close) ends this direction all the same. One that
	 * could not even start (ENOMEM) ends the relay: the destination
	 * never hears of the end and the other direction would wait for
	 * it forever (issue 13, allocation-failure injection).
	 */
	if (tstream_shutdown_recv(subreq, &err) == -1 && err == ENOMEM) {
		TALLOC_FREE(subreq);
		p->subreq = NULL;
		relay_pump_fail(p, FAIL_WRITE, err);
		return;
	}
	TALLOC_FREE(subreq);
	p->subreq = NULL;
	relay_pump_end(p, 0);
}

static void tsgate_relay_idle_check(struct tevent_context *ev,
				    struct tevent_timer *te,
				    struct timeval now,
				    void *private_data);

/*
 * Stops both pumps: a pump waiting on its source takes its handler back,
 * its outstanding request and buffer go. The streams outlive the relay.
 */
static void relay_stop(struct tsgate_relay *relay)
{
	size_t i;

	for (i = 0; i < sizeof(relay->pumps) / sizeof(relay->pumps[0]); i++) {
		struct relay_pump *p = &relay->pumps[i];

		if (p->waiting) {
			p->waiting = false;
			tstream_set_readable_handler(p->src, NULL, NULL, NULL);
		}
		TALLOC_FREE(p->subreq);
		TALLOC_FREE(p->buf);
	}
	TALLOC_FREE(relay->idle_timer);
	relay_unlist(relay);
}

static int tsgate_relay_destructor(struct tsgate_relay *relay)
{
	relay_stop(relay);
	return 0;
}

/*
 * The relay is over: stop, then tell the owner, as the very last thing
 * (the callback may free the relay). Always inside the event loop: from
 * a pump's callback, a readable handler or the idle timer.
 */
static void relay_finish(struct tsgate_relay *relay, int err)
{
	if (relay->finished) {
		return;
	}
	relay->finished = true;
	relay->err = err;
	relay_stop(relay);
	relay->done_fn(relay, err, relay->done_private);
}

static void relay_finish_later(struct tevent_context *ev,
			       struct tevent_immediate *im,
			       void *private_data)
{
	struct tsgate_relay *relay =
	    talloc_get_type_abort(private_data, struct tsgate_relay);

	(void)ev;
	(void)im;
	TALLOC_FREE(relay->done_im);
	relay->done_fn(relay, relay->err, relay->done_private);
}

static bool relay_arm_idle(struct tsgate_relay *relay)
{
	uint32_t ms = relay->params.idle_timeout_ms;
	struct timeval at;

	at = tevent_timeval_add(&relay->last_activity, ms / 1000,
				(ms % 1000) * 1000);
	TALLOC_FREE(relay->idle_timer);
	relay->idle_timer = tevent_add_timer(relay->ev, relay, at,
					     tsgate_relay_idle_check, relay);
	return relay->idle_timer != NULL;
}

/*
 * The sweeper
 */

static struct timeval relay_deadline(const struct tsgate_relay *relay)
{
	uint32_t ms = relay->params.idle_timeout_ms;

	return tevent_timeval_add(&relay->last_activity, ms / 1000,
				  (ms % 1000) * 1000);
}

static void relay_sweep(struct tevent_context *ev,
			struct tevent_timer *te,
			struct timeval now,
			void *private_data);

/*
 * Arm the timer for the earliest deadline of the list heads. Activity only
 * moves deadlines later, so a timer armed earlier than needed fires once,
 * finds nothing due and re-arms for the new earliest deadline; no timer
 * while no relay is listed.
 */
static bool relay_sweeper_arm(struct tsgate_relay_sweeper *s)
{
	struct relay_idle_list *l;
	struct timeval at = {0};
	bool any = false;

	for (l = s->lists; l != NULL; l = l->next) {
		struct timeval d;

		if (l->head == NULL) {
			continue;
		}
		d = relay_deadline(l->head);
		if (!any || tevent_timeval_compare(&d, &at) < 0) {
			at = d;
			any = true;
		}
	}
	TALLOC_FREE(s->timer);
	if (!any) {
		return true;
	}
	s->timer = tevent_add_timer(s->ev, s, at, relay_sweep, s);
	s->timer_at = at;
	return s->timer != NULL;
}

static void relay_list_append(struct relay_idle_list *l,
			      struct tsgate_relay *relay)
{
	relay->idle_list = l;
	relay->idle_next = NULL;
	relay->idle_prev = l->tail;
	if (l->tail != NULL) {
		l->tail->idle_next = relay;
	} else {
		l->head = relay;
	}
	l->tail = relay;
}

static void relay_list_remove(struct tsgate_relay *relay)
{
	struct relay_idle_list *l = relay->idle_list;

	if (relay->idle_prev != NULL) {
		relay->idle_prev->idle_next = relay->idle_next;
	} else {
		l->head = relay->idle_next;
	}
	if (relay->idle_next != NULL) {
		relay->idle_next->idle_prev = relay->idle_prev;
	} else {
		l->tail = relay->idle_prev;
	}
	relay->idle_prev = relay->idle_next = NULL;
	relay->idle_list = NULL;
}

/* Put a new relay on the list of its timeout, at the tail. */
static bool relay_list(struct tsgate_relay_sweeper *s,
		       struct tsgate_relay *relay)
{
	struct relay_idle_list *l;
	struct timeval d;

	for (l = s->lists; l != NULL; l = l->next) {
		if (l->timeout_ms == relay->params.idle_timeout_ms) {
			break;
		}
	}
	if (l == NULL) {
		l = talloc_zero(s, struct relay_idle_list);
		if (l == NULL) {
			return false;
		}
		l->sweeper = s;
		l->timeout_ms = relay->params.idle_timeout_ms;
		l->next = s->lists;
		s->lists = l;
	}
	relay_list_append(l, relay);
	s->num_relays++;
	d = relay_deadline(relay);
	if (s->timer == NULL || tevent_timeval_compare(&d, &s->timer_at) < 0) {
		/* the first relay, or a shorter timeout after a reload */
		struct tevent_timer *te =
		    tevent_add_timer(s->ev, s, d, relay_sweep, s);

		if (te == NULL) {
			/* the others keep the timer they had */
			relay_unlist(relay);
			return false;
		}
		TALLOC_FREE(s->timer);
		s->timer = te;
		s->timer_at = d;
	}
	return true;
}

static void relay_unlist(struct tsgate_relay *relay)
{
	struct tsgate_relay_sweeper *s;

	if (relay->idle_list == NULL) {
		return;
	}
	s = relay->idle_list->sweeper;
	relay_list_remove(relay);
	s->num_relays--;
	if (s->num_relays == 0) {
		TALLOC_FREE(s->timer);
	}
}

/* Activity: a later deadline, so the tail of its list (O(1)). */
static void relay_touch(struct tsgate_relay *relay)
{
	struct relay_idle_list *l = relay->idle_list;

	relay->last_activity = tevent_timeval_current();
	if (l != NULL && l->tail != relay) {
		relay_list_remove(relay);
		relay_list_append(l, relay);
	}
}

static void relay_time_out(struct tsgate_relay *relay)
{
	if (relay->stats->reason == NULL) {
		relay->stats->reason = "idle timeout";
	}
	relay_finish(relay, ETIMEDOUT);
}

static void relay_sweep(struct tevent_context *ev,
			struct tevent_timer *te,
			struct timeval now,
			void *private_data)
{
	struct tsgate_relay_sweeper *s =
	    talloc_get_type_abort(private_data, struct tsgate_relay_sweeper);
	struct relay_idle_list *l;

	(void)ev;
	(void)te;
	s->timer = NULL;
	for (l = s->lists; l != NULL; l = l->next) {
		while (l->head != NULL) {
			struct tsgate_relay *relay = l->head;
			struct timeval d = relay_deadline(relay);

			if (tevent_timeval_compare(&now, &d) < 0) {
				break;
			}
			/* relay_finish() takes it off the list */
			relay_time_out(relay);
		}
	}
	if (!relay_sweeper_arm(s)) {
		/* out of memory: end them all rather than never time out */
		for (l = s->lists; l != NULL; l = l->next) {
			while (l->head != NULL) {
				relay_finish(l->head, ENOMEM);
			}
		}
	}
}

static int relay_sweeper_destructor(struct tsgate_relay_sweeper *s)
{
	struct relay_idle_list *l;

	for (l = s->lists; l != NULL; l = l->next) {
		while (l->head != NULL) {
			relay_list_remove(l->head);
		}
	}
	s->num_relays = 0;
	return 0;
}

struct tsgate_relay_sweeper *tsgate_relay_sweeper_new(TALLOC_CTX *mem_ctx,
						      struct tevent_context *ev)
{
	struct tsgate_relay_sweeper *s;

	s = talloc_zero(mem_ctx, struct tsgate_relay_sweeper);
	if (s == NULL) {
		return NULL;
	}
	s->ev = ev;
	talloc_set_destructor(s, relay_sweeper_destructor);
	return s;
}

static void relay_pump_start(struct tsgate_relay *relay,
			     enum relay_dir dir,
			     struct tstream_context *src,
			     struct tstream_context *dst)
{
	struct relay_pump *p = &relay->pumps[dir];

	*p = (struct relay_pump){
	    .relay = relay,
	    .src = src,
	    .dst = dst,
	    .dir = dir,
	};
	relay->pumps_running++;
	if (relay->params.framing != TSGATE_CONFIG_FRAMING_RAW) {
		int err;

		p->framed = talloc_zero(relay, struct relay_framed);
		if (p->framed == NULL) {
			relay_pump_end(p, ENOMEM);
			return;
		}
		err = tsgate_framer_init(&p->framed->framer,
					 relay->params.framing,
					 relay->params.max_pdu);
		if (err != 0) {
			relay_pump_read_failed(p, err);
			return;
		}
	}
	relay_pump_wait(p);
}

/*
 * During tsgate_relay_start() a pump can only end at once when out of
 * memory (or when its source fails at once); the owner hears of it from
 * the loop.
 */
static void relay_start_done(struct tsgate_relay *relay,
			     int err,
			     void *private_data)
{
	bool *ended = private_data;

	(void)relay;
	(void)err;
	*ended = true;
}

struct tsgate_relay *tsgate_relay_start(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *client,
    struct tstream_context *backend,
    const struct tsgate_relay_params *params,
    struct tsgate_conn_stats *stats,
    tsgate_relay_done_fn done_fn,
    void *private_data)
{
	struct tsgate_relay *relay;
	bool ended = false;

	relay = talloc_zero(mem_ctx, struct tsgate_relay);
	if (relay == NULL) {
		return NULL;
	}
	relay->ev = ev;
	relay->params = *params;
	relay->stats = stats;
	relay->last_activity = tevent_timeval_current();
	/* a relay that ends in here must not call back in here */
	relay->done_fn = relay_start_done;
	relay->done_private = &ended;
	talloc_set_destructor(relay, tsgate_relay_destructor);

	relay_pump_start(relay, RELAY_UP, client, backend);
	if (!ended) {
		relay_pump_start(relay, RELAY_DOWN, backend, client);
	}
	if (!ended && params->idle_timeout_ms > 0) {
		bool armed = params->sweeper != NULL
				 ? relay_list(params->sweeper, relay)
				 : relay_arm_idle(relay);

		if (!armed) {
			relay_finish(relay, ENOMEM);
		}
	}
	relay->done_fn = done_fn;
	relay->done_private = private_data;
	if (ended) {
		relay->done_im = tevent_create_immediate(relay);
		if (relay->done_im == NULL) {
			talloc_free(relay);
			return NULL;
		}
		tevent_schedule_immediate(relay->done_im, ev,
					  relay_finish_later, relay);
	}
	return relay;
}

static void tsgate_relay_idle_check(struct tevent_context *ev,
				    struct tevent_timer *te,
				    struct timeval now,
				    void *private_data)
{
	struct tsgate_relay *relay =
	    talloc_get_type_abort(private_data, struct tsgate_relay);
	struct timeval deadline;
	uint32_t ms = relay->params.idle_timeout_ms;

	(void)ev;
	(void)te;
	relay->idle_timer = NULL;
	deadline = tevent_timeval_add(&relay->last_activity, ms / 1000,
				      (ms % 1000) * 1000);
	if (tevent_timeval_compare(&now, &deadline) < 0) {
		/* There was traffic since: wait for the new deadline. */
		if (!relay_arm_idle(relay)) {
			relay_finish(relay, ENOMEM);
		}
		return;
	}
	relay_time_out(relay);
}
