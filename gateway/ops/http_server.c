/* SPDX-License-Identifier: MIT */
/*
 * A tiny, strict, bounded HTTP/1.x server for /metrics, /healthz and
 * /readyz. See http_server.h for what it accepts.
 *
 * One struct http_client per connection, owned by the server. Its life:
 * read the head (tstream_readv_pdu_send, at most TSGATE_HTTP_MAX_HEAD
 * bytes, as much per step as the socket has pending) under the head
 * deadline, answer, half-close, then wait for the client to close (so the
 * kernel does not turn unread request bytes into a reset that would
 * destroy the answer) — all under one deadline for the whole connection.
 * Freeing the client is the only teardown; it happens from an immediate
 * event so no stream is freed under its own callback.
 *
 * At max_clients, a new connection takes the slot of one that is not
 * being answered (see http_server_victim()), the way nginx reclaims idle
 * connections when it runs out: whoever holds slots open without
 * finishing a request cannot keep a liveness probe out. Only when every
 * slot is being answered is the newcomer closed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <unistd.h>
#include <talloc.h>
#include <tevent.h>

#include "tsgate_dlist.h"
#include "tsocket.h"
#include "config.h"
#include "http_server.h"
#include "http_server_private.h"
#include "listen_socket.h"
#include "source_limit.h"

#define HTTP_DEFAULT_TIMEOUT_MS  5000
#define HTTP_DEFAULT_HEAD_MS     2000
#define HTTP_DEFAULT_MAX_CLIENTS 32
#define HTTP_ACCEPT_BATCH        16
#define HTTP_DISCARD_SIZE        512
#define HTTP_ACCEPT_PAUSE_MS     100
/*
 * Connections the kernel completes while we are not accepting: room for
 * everything an attacker holds beyond max_clients (nginx uses 511), so a
 * probe's SYN is not dropped (and retried only a second later) while the
 * queue is full of connections waiting to evict each other.
 */
#define HTTP_BACKLOG 511
/* Clients of one IPv6 /64 count as one source when choosing a victim. */
#define HTTP_SOURCE_IPV6_PREFIX 64

struct http_client;

struct tsgate_http_server {
	struct tevent_context *ev;
	struct tsgate_http_params params;
	tsgate_http_handler_t handler;
	void *private_data;
	tsgate_http_handler_send_t send_fn; /* NULL: handler answers */
	tsgate_http_handler_recv_t recv_fn;
	struct tsgate_listen_socket *sock;
	int fd; /* sock's */
	struct tevent_fd *fde;
	struct tevent_timer *resume; /* accept paused after EMFILE */
	struct http_client *clients;
	unsigned num_clients;
	uint64_t num_evicted;
};

enum http_client_phase {
	HTTP_CLIENT_HEAD,     /* reading the request head: evictable */
	HTTP_CLIENT_ANSWER,   /* handler and write: keeps its slot */
	HTTP_CLIENT_DRAINING, /* answered, waiting for the close: evictable */
};

struct http_client {
	struct http_client *prev, *next;
	struct tsgate_http_server *server;
	struct tstream_context *stream;
	struct timeval start;
	enum http_client_phase phase;
	bool has_source; /* false: unix socket or socketpair */
	struct tsgate_source_key source;
	struct tevent_timer *deadline;
	struct tevent_immediate *free_im;
	uint8_t head[TSGATE_HTTP_MAX_HEAD];
	size_t head_len;
	size_t scanned;  /* searched for the blank line up to here */
	size_t head_end; /* offset just past the blank line; 0: not yet */
	struct iovec iov[2];
	char *answer_head;
	struct tsgate_http_response resp;
	bool head_only;
	uint8_t discard[HTTP_DISCARD_SIZE];
	bool finishing;
};

const char *tsgate_http_reason(unsigned status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Unknown";
	}
}

/*
 * Teardown
 */

static void http_client_free_now(struct tevent_context *ev,
				 struct tevent_immediate *im,
				 void *private_data)
{
	struct http_client *c =
	    talloc_get_type_abort(private_data, struct http_client);

	talloc_free(c);
}

/* End the connection (from a callback: freed on the next loop turn). */
static void http_client_finish(struct http_client *c)
{
	if (c->finishing) {
		return;
	}
	c->finishing = true;
	TALLOC_FREE(c->deadline);
	tevent_schedule_immediate(c->free_im, c->server->ev,
				  http_client_free_now, c);
}

static int http_client_destructor(struct http_client *c)
{
	struct tsgate_http_server *s = c->server;

	TSG_DLIST_REMOVE(s->clients, c);
	s->num_clients--;
	return 0;
}

static void http_client_deadline(struct tevent_context *ev,
				 struct tevent_timer *te,
				 struct timeval now,
				 void *private_data)
{
	struct http_client *c =
	    talloc_get_type_abort(private_data, struct http_client);

	/* tevent frees a timer after it fires */
	c->deadline = NULL;
	http_client_finish(c);
}

/* (Re)arm the deadline at ms after the connection was accepted. */
static bool http_client_arm(struct http_client *c, uint32_t ms)
{
	struct timeval end =
	    tevent_timeval_add(&c->start, ms / 1000, (ms % 1000) * 1000);

	TALLOC_FREE(c->deadline);
	c->deadline =
	    tevent_add_timer(c->server->ev, c, end, http_client_deadline, c);
	return c->deadline != NULL;
}

static bool http_same_source(const struct http_client *a,
			     const struct http_client *b)
{
	if (a->has_source != b->has_source) {
		return false;
	}
	return !a->has_source ||
	       memcmp(&a->source, &b->source, sizeof(a->source)) == 0;
}

/*
 * The connection to make room for a new one at max_clients:
 *  1. one being freed anyway;
 *  2. the oldest answered one still waiting for the client's close;
 *  3. a client still sending its head, from the source address that holds
 *     the most connections: one attacker's idle or slow-loris connections
 *     then only ever displace each other, never a probe from another
 *     address, however fast the attacker reconnects. Within that source,
 *     one with nothing unread before one whose bytes wait (a request that
 *     came in just after accept), then the oldest.
 * NULL when all are being answered. The list has the newest first.
 */
static struct http_client *http_server_victim(struct tsgate_http_server *s)
{
	struct http_client *c, *o, *draining = NULL, *best = NULL;
	unsigned n, best_n = 0;
	bool quiet, best_quiet = false;

	for (c = s->clients; c != NULL; c = c->next) {
		if (c->finishing) {
			return c;
		}
		if (c->phase == HTTP_CLIENT_DRAINING) {
			draining = c;
		}
	}
	if (draining != NULL) {
		return draining;
	}
	for (c = s->clients; c != NULL; c = c->next) {
		if (c->phase != HTTP_CLIENT_HEAD) {
			continue;
		}
		n = 0;
		for (o = s->clients; o != NULL; o = o->next) {
			n += http_same_source(c, o) ? 1 : 0;
		}
		quiet = tstream_pending_bytes(c->stream) == 0;
		/* ">=" on a tie: later in the list is older */
		if (best == NULL || n > best_n ||
		    (n == best_n && (quiet || !best_quiet))) {
			best = c;
			best_n = n;
			best_quiet = quiet;
		}
	}
	return best;
}

/*
 * Room for one more client: true when below max_clients or after evicting
 * one. Called from the accept handler (or a test), never from a client's
 * own callback, so the victim can be freed at once.
 */
static bool http_server_make_room(struct tsgate_http_server *s)
{
	struct http_client *victim;

	if (s->num_clients < s->params.max_clients) {
		return true;
	}
	victim = http_server_victim(s);
	if (victim == NULL) {
		return false;
	}
	s->num_evicted++;
	talloc_free(victim);
	return true;
}

/*
 * Request parsing: the head is c->head[0 .. head_end), ending in CRLF CRLF.
 */

static bool is_tchar(uint8_t ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9')) {
		return true;
	}
	return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* A header field value: visible ASCII, obs-text, SP and HTAB. */
static bool is_field_char(uint8_t ch)
{
	return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

/*
 * The next line of the head, CRLF cut off and NUL-terminated in place;
 * NULL when a line has a bare CR or LF.
 */
static char *next_line(char **pos, char *end)
{
	char *line = *pos;
	char *p;

	for (p = line; p + 1 < end; p++) {
		if (p[0] == '\r' && p[1] == '\n') {
			*p = '\0';
			*pos = p + 2;
			return line;
		}
		if (*p == '\r' || *p == '\n') {
			return NULL;
		}
	}
	return NULL;
}

unsigned tsgate_http_parse_head(char *head,
				size_t len,
				struct tsgate_http_request *req)
{
	char *pos = head;
	char *end = head + len;
	char *line, *sp1, *sp2, *version, *target, *q;
	unsigned num_host = 0;
	size_t i;

	*req = (struct tsgate_http_request){0};
	for (i = 0; i < len; i++) {
		if (head[i] == '\0') {
			return 400;
		}
	}

	/* request-line = method SP request-target SP HTTP-version */
	line = next_line(&pos, end);
	if (line == NULL || line[0] == '\0') {
		return 400;
	}
	sp1 = strchr(line, ' ');
	if (sp1 == NULL || sp1 == line) {
		return 400;
	}
	*sp1 = '\0';
	for (q = line; *q != '\0'; q++) {
		if (!is_tchar((uint8_t)*q)) {
			return 400;
		}
	}
	target = sp1 + 1;
	sp2 = strchr(target, ' ');
	if (sp2 == NULL || sp2 == target) {
		return 400;
	}
	*sp2 = '\0';
	version = sp2 + 1;
	if (strchr(version, ' ') != NULL) {
		return 400;
	}
	for (q = target; *q != '\0'; q++) {
		if ((uint8_t)*q <= 0x20 || (uint8_t)*q >= 0x7f) {
			return 400;
		}
	}
	if (strncmp(version, "HTTP/", 5) != 0 || strlen(version) != 8 ||
	    version[5] < '0' || version[5] > '9' || version[6] != '.' ||
	    version[7] < '0' || version[7] > '9') {
		return 400;
	}
	if (version[5] != '1') {
		return 505;
	}
	req->version_minor = version[7] == '0' ? 0 : 1;

	/* header fields: name ":" OWS value OWS, no obs-fold */
	while ((line = next_line(&pos, end)) != NULL && line[0] != '\0') {
		char *colon = strchr(line, ':');

		if (colon == NULL || colon == line) {
			return 400;
		}
		for (q = line; q < colon; q++) {
			if (!is_tchar((uint8_t)*q)) {
				return 400; /* also a leading SP (obs-fold) */
			}
		}
		for (q = colon + 1; *q != '\0'; q++) {
			if (!is_field_char((uint8_t)*q)) {
				return 400;
			}
		}
		if ((size_t)(colon - line) == 4 &&
		    strncasecmp(line, "Host", 4) == 0) {
			num_host++;
		}
	}
	if (line == NULL || pos != end) {
		return 400;
	}
	if (req->version_minor == 1 && num_host != 1) {
		return 400;
	}
	if (num_host > 1) {
		return 400;
	}

	/* method last: a malformed request is 400 whatever its method */
	if (strcmp(head, "GET") != 0 && strcmp(head, "HEAD") != 0) {
		return 405;
	}
	req->method = head;
	if (target[0] != '/') {
		return 400; /* origin-form only */
	}
	q = strchr(target, '?');
	if (q != NULL) {
		*q = '\0';
		req->query = q + 1;
	}
	req->path = target;
	return 0;
}

bool tsgate_http_head_end(const uint8_t *buf,
			  size_t len,
			  size_t scanned,
			  size_t *end)
{
	size_t from = scanned > 3 ? scanned - 3 : 0;
	size_t i;

	for (i = from; i + 2 <= len; i++) {
		if (buf[i] != '\n') {
			continue;
		}
		/* bare LF line ends: stop here, the parser answers 400 */
		if (buf[i + 1] == '\n') {
			*end = i + 2;
			return true;
		}
		if (i >= 1 && i + 3 <= len && buf[i - 1] == '\r' &&
		    buf[i + 1] == '\r' && buf[i + 2] == '\n') {
			*end = i + 3;
			return true;
		}
	}
	return false;
}

/*
 * Reading the head
 */

static int http_head_next_vector(struct tstream_context *stream,
				 void *private_data,
				 TALLOC_CTX *mem_ctx,
				 struct iovec **vector,
				 size_t *count)
{
	struct http_client *c =
	    talloc_get_type_abort(private_data, struct http_client);
	size_t want;
	ssize_t pending;
	struct iovec *v;

	/* every vector asked for so far is filled: look for the blank line */
	if (tsgate_http_head_end(c->head, c->head_len, c->scanned,
				 &c->head_end)) {
		*vector = NULL;
		*count = 0;
		return 0;
	}
	c->scanned = c->head_len;
	if (c->head_len == sizeof(c->head)) {
		errno = EMSGSIZE;
		return -1;
	}
	pending = tstream_pending_bytes(stream);
	want = pending > 0 ? (size_t)pending : 1;
	if (want > sizeof(c->head) - c->head_len) {
		want = sizeof(c->head) - c->head_len;
	}
	v = talloc_array(mem_ctx, struct iovec, 1);
	if (v == NULL) {
		errno = ENOMEM;
		return -1;
	}
	v[0].iov_base = c->head + c->head_len;
	v[0].iov_len = want;
	/* counted now: the next call comes only once it is filled */
	c->head_len += want;
	*vector = v;
	*count = 1;
	return 0;
}

static void http_client_head_done(struct tevent_req *subreq);
static void http_client_answer(struct http_client *c,
			       unsigned status,
			       const struct tsgate_http_request *req);
static void http_client_handled(struct tevent_req *subreq);
static void http_client_respond(struct http_client *c);
static void http_client_written(struct tevent_req *subreq);
static void http_client_shut(struct tevent_req *subreq);
static void http_client_drain(struct http_client *c);
static void http_client_drained(struct tevent_req *subreq);

/* Serve a client whose address is peer (NULL: unknown, a socketpair). */
static int http_server_serve_peer(struct tsgate_http_server *s,
				  struct tstream_context *stream,
				  const struct sockaddr *peer,
				  socklen_t peer_len)
{
	struct http_client *c;
	struct tevent_req *subreq;

	if (!http_server_make_room(s)) {
		talloc_free(stream);
		return EAGAIN;
	}
	c = talloc_zero(s, struct http_client);
	if (c == NULL) {
		talloc_free(stream);
		return ENOMEM;
	}
	c->server = s;
	TSG_DLIST_ADD(s->clients, c);
	s->num_clients++;
	talloc_set_destructor(c, http_client_destructor);

	c->stream = talloc_steal(c, stream);
	c->has_source = peer != NULL &&
			tsgate_source_key_from_sockaddr(peer, peer_len,
							HTTP_SOURCE_IPV6_PREFIX,
							&c->source);
	c->start = tevent_timeval_current();
	c->phase = HTTP_CLIENT_HEAD;
	c->free_im = tevent_create_immediate(c);
	if (c->free_im == NULL || !http_client_arm(c, s->params.head_ms)) {
		talloc_free(c);
		return ENOMEM;
	}
	subreq = tstream_readv_pdu_send(c, s->ev, c->stream,
					http_head_next_vector, c);
	if (subreq == NULL) {
		talloc_free(c);
		return ENOMEM;
	}
	tevent_req_set_callback(subreq, http_client_head_done, c);
	return 0;
}

int tsgate_http_server_serve(struct tsgate_http_server *s,
			     struct tstream_context *stream)
{
	return http_server_serve_peer(s, stream, NULL, 0);
}

static void http_client_start(struct tsgate_http_server *s,
			      int fd,
			      const struct sockaddr *peer,
			      socklen_t peer_len)
{
	struct tstream_context *stream = NULL;

	/* checked here too, so a refused client costs no allocation */
	if (!http_server_make_room(s)) {
		close(fd);
		return;
	}
	if (tstream_bsd_existing_socket(s, fd, &stream) != 0) {
		close(fd);
		return;
	}
	(void)http_server_serve_peer(s, stream, peer, peer_len);
}

static void http_client_head_done(struct tevent_req *subreq)
{
	struct http_client *c =
	    tevent_req_callback_data(subreq, struct http_client);
	struct tsgate_http_request req = {0};
	unsigned status;
	int ret, err;

	ret = tstream_readv_pdu_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1 && err != EMSGSIZE) {
		/* closed, reset or broken mid-head: nobody to answer */
		http_client_finish(c);
		return;
	}
	/* the head is in: the rest of the connection's own deadline */
	c->phase = HTTP_CLIENT_ANSWER;
	if (!http_client_arm(c, c->server->params.timeout_ms)) {
		http_client_finish(c);
		return;
	}
	if (ret == -1) {
		http_client_answer(c, 431, NULL); /* EMSGSIZE */
		return;
	}
	status = tsgate_http_parse_head((char *)c->head, c->head_end, &req);
	http_client_answer(c, status, status == 0 ? &req : NULL);
}

/* status 0: ask the handler; otherwise answer with that error. */
static void http_client_answer(struct http_client *c,
			       unsigned status,
			       const struct tsgate_http_request *req)
{
	struct tsgate_http_server *s = c->server;
	struct tevent_req *subreq;

	c->resp = (struct tsgate_http_response){.status = 404};
	if (status == 0 && s->send_fn != NULL) {
		c->head_only = strcmp(req->method, "HEAD") == 0;
		subreq = s->send_fn(c, s->ev, s->private_data, req);
		if (subreq == NULL) {
			c->resp.status = 500;
			http_client_respond(c);
			return;
		}
		tevent_req_set_callback(subreq, http_client_handled, c);
		return;
	}
	if (status == 0) {
		c->head_only = strcmp(req->method, "HEAD") == 0;
		s->handler(s->private_data, c, req, &c->resp);
	} else {
		c->resp.status = status;
	}
	http_client_respond(c);
}

static void http_client_handled(struct tevent_req *subreq)
{
	struct http_client *c =
	    tevent_req_callback_data(subreq, struct http_client);

	c->server->recv_fn(subreq, c, &c->resp);
	TALLOC_FREE(subreq);
	http_client_respond(c);
}

/* Write c->resp. */
static void http_client_respond(struct http_client *c)
{
	struct tsgate_http_server *s = c->server;
	struct tevent_req *subreq;
	size_t count = 1;

	if (c->resp.body == NULL) {
		const char *reason = tsgate_http_reason(c->resp.status);

		c->resp.content_type = NULL;
		c->resp.body = talloc_asprintf(c, "%s\n", reason);
		if (c->resp.body == NULL) {
			http_client_finish(c);
			return;
		}
		c->resp.body_len = strlen(c->resp.body);
	}
	c->answer_head = talloc_asprintf(
	    c,
	    "HTTP/1.1 %u %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "%s"
	    "Connection: close\r\n"
	    "\r\n",
	    c->resp.status, tsgate_http_reason(c->resp.status),
	    c->resp.content_type != NULL ? c->resp.content_type
					 : "text/plain; charset=utf-8",
	    c->resp.body_len,
	    c->resp.status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (c->answer_head == NULL) {
		http_client_finish(c);
		return;
	}
	c->iov[0].iov_base = c->answer_head;
	c->iov[0].iov_len = strlen(c->answer_head);
	if (!c->head_only && c->resp.body_len > 0) {
		c->iov[1].iov_base = (void *)(uintptr_t)c->resp.body;
		c->iov[1].iov_len = c->resp.body_len;
		count = 2;
	}
	subreq = tstream_writev_send(c, s->ev, c->stream, c->iov, count);
	if (subreq == NULL) {
		http_client_finish(c);
		return;
	}
	tevent_req_set_callback(subreq, http_client_written, c);
}

static void http_client_written(struct tevent_req *subreq)
{
	struct http_client *c =
	    tevent_req_callback_data(subreq, struct http_client);
	int ret, err;

	ret = tstream_writev_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		http_client_finish(c);
		return;
	}
	subreq = tstream_shutdown_send(c, c->server->ev, c->stream);
	if (subreq == NULL) {
		http_client_finish(c);
		return;
	}
	tevent_req_set_callback(subreq, http_client_shut, c);
}

static void http_client_shut(struct tevent_req *subreq)
{
	struct http_client *c =
	    tevent_req_callback_data(subreq, struct http_client);
	int ret, err;

	ret = tstream_shutdown_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		http_client_finish(c);
		return;
	}
	/* answered: from now on its slot may go to a new client */
	c->phase = HTTP_CLIENT_DRAINING;
	http_client_drain(c);
}

/* Discard what the client still sends until it closes (or the deadline). */
static void http_client_drain(struct http_client *c)
{
	struct tevent_req *subreq;
	ssize_t pending = tstream_pending_bytes(c->stream);

	if (pending < 0) {
		http_client_finish(c);
		return;
	}
	if (pending == 0) {
		pending = 1;
	}
	if ((size_t)pending > sizeof(c->discard)) {
		pending = sizeof(c->discard);
	}
	c->iov[0].iov_base = c->discard;
	c->iov[0].iov_len = (size_t)pending;
	subreq = tstream_readv_send(c, c->server->ev, c->stream, c->iov, 1);
	if (subreq == NULL) {
		http_client_finish(c);
		return;
	}
	tevent_req_set_callback(subreq, http_client_drained, c);
}

static void http_client_drained(struct tevent_req *subreq)
{
	struct http_client *c =
	    tevent_req_callback_data(subreq, struct http_client);
	int ret, err;

	ret = tstream_readv_recv(subreq, &err);
	TALLOC_FREE(subreq);
	if (ret == -1) {
		http_client_finish(c); /* EPIPE: the client closed */
		return;
	}
	http_client_drain(c);
}

/*
 * The listening socket
 */

static void http_server_resume(struct tevent_context *ev,
			       struct tevent_timer *te,
			       struct timeval now,
			       void *private_data)
{
	struct tsgate_http_server *s =
	    talloc_get_type_abort(private_data, struct tsgate_http_server);

	s->resume = NULL; /* tevent frees a timer after it fires */
	TEVENT_FD_READABLE(s->fde);
}

/*
 * Out of descriptors: the pending connection stays in the backlog and
 * the socket stays readable, so stop watching it for a moment instead of
 * spinning on accept.
 */
static void http_server_pause(struct tsgate_http_server *s)
{
	if (s->resume != NULL) {
		return;
	}
	s->resume = tevent_add_timer(
	    s->ev, s,
	    tevent_timeval_current_ofs(0, HTTP_ACCEPT_PAUSE_MS * 1000),
	    http_server_resume, s);
	if (s->resume != NULL) {
		TEVENT_FD_NOT_READABLE(s->fde);
	}
}

static void http_server_accept(struct tevent_context *ev,
			       struct tevent_fd *fde,
			       uint16_t flags,
			       void *private_data)
{
	struct tsgate_http_server *s =
	    talloc_get_type_abort(private_data, struct tsgate_http_server);
	struct sockaddr_storage ss;
	socklen_t len;
	int i, fd;

	for (i = 0; i < HTTP_ACCEPT_BATCH; i++) {
		len = sizeof(ss);
		fd = accept4(s->fd, (struct sockaddr *)&ss, &len,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd != -1) {
			http_client_start(s, fd, (struct sockaddr *)&ss, len);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		    errno == ENOMEM) {
			http_server_pause(s);
		}
		return;
	}
}

static int http_server_destructor(struct tsgate_http_server *s)
{
	/* clients first: their destructors touch the server */
	while (s->clients != NULL) {
		talloc_free(s->clients);
	}
	TALLOC_FREE(s->fde);
	TALLOC_FREE(s->sock);
	return 0;
}

static int http_server_bind(struct tsgate_http_server *s,
			    const struct tsgate_config_addr *a)
{
	if (a->kind == TSGATE_CONFIG_ADDR_UNIX) {
		return tsgate_listen_socket_unix(s, a->path, HTTP_BACKLOG,
						 &s->sock, NULL);
	}
	return tsgate_listen_socket_tcp(s, a->ip, a->port, 0, HTTP_BACKLOG,
					&s->sock, NULL);
}

int tsgate_http_server_new(TALLOC_CTX *mem_ctx,
			   struct tevent_context *ev,
			   const struct tsgate_config_addr *listen,
			   const struct tsgate_http_params *params,
			   tsgate_http_handler_t handler,
			   void *private_data,
			   struct tsgate_http_server **pserver,
			   char **preason)
{
	struct tsgate_http_server *s;
	int ret;

	if (preason != NULL) {
		*preason = NULL;
	}
	s = talloc_zero(mem_ctx, struct tsgate_http_server);
	if (s == NULL) {
		return ENOMEM;
	}
	s->ev = ev;
	s->fd = -1;
	s->handler = handler;
	s->private_data = private_data;
	if (params != NULL) {
		s->params = *params;
	}
	if (s->params.timeout_ms == 0) {
		s->params.timeout_ms = HTTP_DEFAULT_TIMEOUT_MS;
	}
	if (s->params.max_clients == 0) {
		s->params.max_clients = HTTP_DEFAULT_MAX_CLIENTS;
	}
	if (s->params.head_ms == 0) {
		s->params.head_ms = HTTP_DEFAULT_HEAD_MS;
	}
	if (s->params.head_ms > s->params.timeout_ms) {
		s->params.head_ms = s->params.timeout_ms;
	}
	talloc_set_destructor(s, http_server_destructor);

	ret = http_server_bind(s, listen);
	if (ret == 0) {
		s->fd = tsgate_listen_socket_fd(s->sock);
		s->fde = tevent_add_fd(ev, s, s->fd, TEVENT_FD_READ,
				       http_server_accept, s);
		if (s->fde == NULL) {
			ret = ENOMEM;
		}
	}
	if (ret != 0) {
		if (preason != NULL) {
			*preason = talloc_asprintf(
			    mem_ctx, "%s: %s",
			    listen->text != NULL ? listen->text : "metrics",
			    strerror(ret));
		}
		talloc_free(s);
		return ret;
	}
	*pserver = s;
	return 0;
}

void tsgate_http_server_set_async(struct tsgate_http_server *server,
				  tsgate_http_handler_send_t send_fn,
				  tsgate_http_handler_recv_t recv_fn,
				  void *private_data)
{
	server->send_fn = send_fn;
	server->recv_fn = recv_fn;
	server->private_data = private_data;
}

uint16_t tsgate_http_server_port(const struct tsgate_http_server *server)
{
	return tsgate_listen_socket_port(server->sock);
}

unsigned tsgate_http_server_num_clients(const struct tsgate_http_server *server)
{
	return server->num_clients;
}

uint64_t tsgate_http_server_num_evicted(const struct tsgate_http_server *server)
{
	return server->num_evicted;
}
