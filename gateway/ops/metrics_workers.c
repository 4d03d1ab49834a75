/* SPDX-License-Identifier: MIT */
/*
 * One /metrics and /readyz for all workers: see metrics_workers.h.
 *
 * Wire format on a worker's socket: the worker writes "state N\n" (N is
 * its enum tsgate_metrics_state) followed by its rendered text, then
 * closes. Nothing is read from the asking side.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "health.h"
#include "metrics_workers.h"

/* Largest text taken from one worker. */
#define GATHER_MAX_TEXT (16 * 1024 * 1024)
/* Answers a worker writes at once; more askers are closed. */
#define EXPORT_MAX_CLIENTS 8
/* A worker gives up on an asker that stops reading after this long. */
#define EXPORT_TIMEOUT_MS 5000

struct tsgate_metrics_links {
	unsigned n;
	int *fds;                  /* fds[0] unused (-1) */
	struct sockaddr_un *addrs; /* autobound abstract names */
	socklen_t *lens;
};

struct tsgate_metrics_workers {
	struct tevent_context *ev;
	struct tsgate_metrics *m;
	struct tsgate_metrics_links *links;
	unsigned worker;
	int fd; /* worker > 0: its listening socket */
	struct tevent_fd *fde;
	unsigned num_exports;
};

static int links_destructor(struct tsgate_metrics_links *l)
{
	unsigned i;

	for (i = 0; i < l->n; i++) {
		if (l->fds[i] != -1) {
			close(l->fds[i]);
			l->fds[i] = -1;
		}
	}
	return 0;
}

struct tsgate_metrics_links *tsgate_metrics_links_new(TALLOC_CTX *mem_ctx,
						      unsigned n)
{
	struct tsgate_metrics_links *l;
	struct sockaddr_un any = {.sun_family = AF_UNIX};
	unsigned i;

	l = talloc_zero(mem_ctx, struct tsgate_metrics_links);
	if (l == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	l->n = n;
	l->fds = talloc_array(l, int, n);
	l->addrs = talloc_zero_array(l, struct sockaddr_un, n);
	l->lens = talloc_zero_array(l, socklen_t, n);
	if (l->fds == NULL || l->addrs == NULL || l->lens == NULL) {
		talloc_free(l);
		errno = ENOMEM;
		return NULL;
	}
	for (i = 0; i < n; i++) {
		l->fds[i] = -1;
	}
	talloc_set_destructor(l, links_destructor);
	for (i = 1; i < n; i++) {
		l->fds[i] = socket(
		    AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		l->lens[i] = sizeof(l->addrs[i]);
		/* an address of just the family: the kernel picks a name */
		if (l->fds[i] == -1 ||
		    bind(l->fds[i], (struct sockaddr *)&any,
			 sizeof(sa_family_t)) != 0 ||
		    listen(l->fds[i], 16) != 0 ||
		    getsockname(l->fds[i], (struct sockaddr *)&l->addrs[i],
				&l->lens[i]) != 0) {
			int err = errno;

			talloc_free(l);
			errno = err;
			return NULL;
		}
	}
	return l;
}

/* Same user as us, or root. */
static bool peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		return false;
	}
	return cred.uid == 0 || cred.uid == geteuid();
}

/*
 * Workers 1..N-1: answer.
 */

struct export_client {
	struct tsgate_metrics_workers *w;
	int fd;
	struct tevent_fd *fde;
	struct tevent_timer *deadline;
	char *text;
	size_t len, done;
};

static int export_client_destructor(struct export_client *c)
{
	TALLOC_FREE(c->fde);
	close(c->fd);
	c->w->num_exports--;
	return 0;
}

static void export_client_deadline(struct tevent_context *ev,
				   struct tevent_timer *te,
				   struct timeval now,
				   void *private_data)
{
	(void)ev;
	(void)te;
	(void)now;
	talloc_free(private_data);
}

static void export_client_write(struct tevent_context *ev,
				struct tevent_fd *fde,
				uint16_t flags,
				void *private_data)
{
	struct export_client *c =
	    talloc_get_type_abort(private_data, struct export_client);
	ssize_t n;

	(void)ev;
	(void)fde;
	(void)flags;
	while (c->done < c->len) {
		n = send(c->fd, c->text + c->done, c->len - c->done,
			 MSG_NOSIGNAL);
		if (n > 0) {
			c->done += (size_t)n;
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			return;
		}
		break;
	}
	talloc_free(c);
}

static void export_accept(struct tevent_context *ev,
			  struct tevent_fd *fde,
			  uint16_t flags,
			  void *private_data)
{
	struct tsgate_metrics_workers *w =
	    talloc_get_type_abort(private_data, struct tsgate_metrics_workers);
	struct export_client *c;
	char *text;
	int fd;

	(void)fde;
	(void)flags;
	fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		return;
	}
	if (w->num_exports >= EXPORT_MAX_CLIENTS || !peer_allowed(fd)) {
		close(fd);
		return;
	}
	c = talloc_zero(w, struct export_client);
	if (c == NULL) {
		close(fd);
		return;
	}
	c->w = w;
	c->fd = fd;
	w->num_exports++;
	talloc_set_destructor(c, export_client_destructor);
	text = tsgate_metrics_render(c, w->m);
	c->text = talloc_asprintf(c, "state %d\n%s",
				  (int)tsgate_metrics_get_state(w->m),
				  text != NULL ? text : "");
	c->deadline = tevent_add_timer(
	    ev, c, tevent_timeval_current_ofs(EXPORT_TIMEOUT_MS / 1000, 0),
	    export_client_deadline, c);
	c->fde =
	    tevent_add_fd(ev, c, fd, TEVENT_FD_WRITE, export_client_write, c);
	if (text == NULL || c->text == NULL || c->deadline == NULL ||
	    c->fde == NULL) {
		talloc_free(c);
		return;
	}
	c->len = strlen(c->text);
}

static int workers_destructor(struct tsgate_metrics_workers *w)
{
	TALLOC_FREE(w->fde);
	if (w->fd != -1) {
		close(w->fd);
		w->fd = -1;
	}
	return 0;
}

struct tsgate_metrics_workers *tsgate_metrics_workers_new(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tsgate_metrics *m,
    struct tsgate_metrics_links *links,
    unsigned worker)
{
	struct tsgate_metrics_workers *w;
	unsigned i;

	w = talloc_zero(mem_ctx, struct tsgate_metrics_workers);
	if (w == NULL) {
		return NULL;
	}
	w->ev = ev;
	w->m = m;
	w->links = links;
	w->worker = worker;
	w->fd = -1;
	/* this process's copies of the others' sockets are not needed */
	for (i = 0; i < links->n; i++) {
		if (i == worker) {
			w->fd = links->fds[i];
		} else if (links->fds[i] != -1) {
			close(links->fds[i]);
		}
		links->fds[i] = -1;
	}
	talloc_set_destructor(w, workers_destructor);
	if (w->fd != -1) {
		w->fde = tevent_add_fd(ev, w, w->fd, TEVENT_FD_READ,
				       export_accept, w);
		if (w->fde == NULL) {
			talloc_free(w);
			return NULL;
		}
	}
	return w;
}

/*
 * Worker 0: gather.
 */

struct gather_peer {
	struct tevent_req *req;
	unsigned worker;
	int fd;
	struct tevent_fd *fde;
	char *buf;
	size_t len;
};

struct gather_state {
	struct tsgate_metrics_workers *w;
	const char *path;
	unsigned n;
	const char **texts; /* [0]: ours; NULL: no answer */
	int *states;
	unsigned pending;
	struct gather_peer **peers;
	struct tevent_timer *timer;
};

static int gather_peer_destructor(struct gather_peer *p)
{
	TALLOC_FREE(p->fde);
	if (p->fd != -1) {
		close(p->fd);
	}
	return 0;
}

static void gather_finish_peer(struct gather_peer *p, bool ok)
{
	struct gather_state *state =
	    tevent_req_data(p->req, struct gather_state);
	struct tevent_req *req = p->req;
	char *nl;
	int st;

	if (ok && p->len > 6 && strncmp(p->buf, "state ", 6) == 0 &&
	    (nl = memchr(p->buf, '\n', p->len)) != NULL) {
		*nl = '\0';
		st = atoi(p->buf + 6);
		state->states[p->worker] = st;
		/* p->buf is NUL-terminated past len */
		talloc_steal(state, p->buf);
		state->texts[p->worker] = nl + 1;
	}
	state->peers[p->worker] = NULL;
	talloc_free(p);
	if (--state->pending == 0) {
		tevent_req_done(req);
	}
}

static void gather_readable(struct tevent_context *ev,
			    struct tevent_fd *fde,
			    uint16_t flags,
			    void *private_data)
{
	struct gather_peer *p =
	    talloc_get_type_abort(private_data, struct gather_peer);
	char *nb;
	ssize_t n;

	(void)ev;
	(void)fde;
	(void)flags;
	for (;;) {
		if (p->len >= GATHER_MAX_TEXT) {
			gather_finish_peer(p, false);
			return;
		}
		nb = talloc_realloc(p, p->buf, char, p->len + 65536 + 1);
		if (nb == NULL) {
			gather_finish_peer(p, false);
			return;
		}
		p->buf = nb;
		n = recv(p->fd, p->buf + p->len, 65536, 0);
		if (n > 0) {
			p->len += (size_t)n;
			p->buf[p->len] = '\0';
			continue;
		}
		if (n == 0) {
			gather_finish_peer(p, true);
			return;
		}
		if (errno == EAGAIN || errno == EINTR) {
			return;
		}
		gather_finish_peer(p, false);
		return;
	}
}

static void gather_timeout(struct tevent_context *ev,
			   struct tevent_timer *te,
			   struct timeval now,
			   void *private_data)
{
	struct tevent_req *req =
	    talloc_get_type_abort(private_data, struct tevent_req);
	struct gather_state *state = tevent_req_data(req, struct gather_state);
	unsigned i;

	(void)ev;
	(void)te;
	(void)now;
	state->timer = NULL;
	/* the ones that did not answer count as down */
	for (i = 0; i < state->n; i++) {
		TALLOC_FREE(state->peers[i]);
	}
	state->pending = 0;
	tevent_req_done(req);
}

static struct tevent_req *gather_send(TALLOC_CTX *mem_ctx,
				      struct tevent_context *ev,
				      void *private_data,
				      const struct tsgate_http_request *hreq)
{
	struct tsgate_metrics_workers *w =
	    talloc_get_type_abort(private_data, struct tsgate_metrics_workers);
	struct tevent_req *req;
	struct gather_state *state;
	struct gather_peer *p;
	unsigned i;

	req = tevent_req_create(mem_ctx, &state, struct gather_state);
	if (req == NULL) {
		return NULL;
	}
	state->w = w;
	state->n = w->links->n;
	state->path = talloc_strdup(state, hreq->path);
	state->texts = talloc_zero_array(state, const char *, state->n);
	state->states = talloc_zero_array(state, int, state->n);
	state->peers = talloc_zero_array(state, struct gather_peer *, state->n);
	if (state->path == NULL || state->texts == NULL ||
	    state->states == NULL || state->peers == NULL) {
		tevent_req_error(req, ENOMEM);
		return tevent_req_post(req, ev);
	}
	if (strcmp(hreq->path, "/metrics") != 0 &&
	    strcmp(hreq->path, "/readyz") != 0) {
		tevent_req_done(req);
		return tevent_req_post(req, ev);
	}
	for (i = 1; i < state->n; i++) {
		p = talloc_zero(state, struct gather_peer);
		if (p == NULL) {
			continue;
		}
		p->req = req;
		p->worker = i;
		p->fd = socket(AF_UNIX,
			       SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		talloc_set_destructor(p, gather_peer_destructor);
		/* a unix connect completes at once, or the backlog is full */
		if (p->fd == -1 ||
		    connect(p->fd, (struct sockaddr *)&w->links->addrs[i],
			    w->links->lens[i]) != 0 ||
		    !peer_allowed(p->fd)) {
			talloc_free(p);
			continue;
		}
		p->fde = tevent_add_fd(ev, p, p->fd, TEVENT_FD_READ,
				       gather_readable, p);
		if (p->fde == NULL) {
			talloc_free(p);
			continue;
		}
		state->peers[i] = p;
		state->pending++;
	}
	if (state->pending == 0) {
		tevent_req_done(req);
		return tevent_req_post(req, ev);
	}
	state->timer =
	    tevent_add_timer(ev, state,
			     tevent_timeval_current_ofs(
				 TSGATE_METRICS_GATHER_MS / 1000,
				 (TSGATE_METRICS_GATHER_MS % 1000) * 1000),
			     gather_timeout, req);
	if (state->timer == NULL) {
		tevent_req_error(req, ENOMEM);
		return tevent_req_post(req, ev);
	}
	return req;
}

static void text_answer(struct tsgate_http_response *resp,
			unsigned status,
			const char *body)
{
	resp->status = status;
	resp->content_type = NULL;
	resp->body = body;
	resp->body_len = strlen(body);
}

static void gather_recv(struct tevent_req *req,
			TALLOC_CTX *mem_ctx,
			struct tsgate_http_response *resp)
{
	struct gather_state *state = tevent_req_data(req, struct gather_state);
	struct tsgate_metrics_workers *w = state->w;
	struct tsgate_http_request hreq = {.method = "GET",
					   .path = state->path};
	char *text;
	enum tevent_req_state req_state;
	uint64_t err;
	unsigned i;

	if (tevent_req_is_error(req, &req_state, &err)) {
		text_answer(resp, 500, "out of memory\n");
		return;
	}
	if (strcmp(state->path, "/metrics") == 0) {
		state->texts[0] = tsgate_metrics_render(state, w->m);
		text = tsgate_metrics_merge_workers(mem_ctx, state->texts,
						    state->n);
		if (state->texts[0] == NULL || text == NULL) {
			text_answer(resp, 500, "out of memory\n");
			return;
		}
		resp->status = 200;
		resp->content_type = TSGATE_METRICS_CONTENT_TYPE;
		resp->body = text;
		resp->body_len = strlen(text);
		return;
	}
	if (strcmp(state->path, "/readyz") == 0) {
		bool draining =
		    tsgate_metrics_get_state(w->m) == TSGATE_METRICS_DRAINING;
		bool ready =
		    tsgate_metrics_get_state(w->m) == TSGATE_METRICS_READY;

		unsigned missing = 0;

		for (i = 1; i < state->n; i++) {
			if (state->texts[i] == NULL) {
				ready = false;
				missing++;
				continue;
			}
			draining = draining ||
				   state->states[i] == TSGATE_METRICS_DRAINING;
			ready =
			    ready && state->states[i] == TSGATE_METRICS_READY;
		}
		if (draining) {
			text_answer(resp, 503, "draining\n");
		} else if (ready) {
			text_answer(resp, 200, "ready\n");
		} else if (missing > 0) {
			resp->status = 503;
			resp->content_type = NULL;
			resp->body = talloc_asprintf(
			    mem_ctx, "%u of %u workers not answering\n",
			    missing, state->n);
			resp->body_len =
			    resp->body != NULL ? strlen(resp->body) : 0;
		} else {
			text_answer(resp, 503, "starting\n");
		}
		return;
	}
	tsgate_metrics_http_handler(w->m, mem_ctx, &hreq, resp);
}

void tsgate_metrics_workers_serve(struct tsgate_metrics_workers *w,
				  struct tsgate_http_server *server)
{
	tsgate_http_server_set_async(server, gather_send, gather_recv, w);
}
