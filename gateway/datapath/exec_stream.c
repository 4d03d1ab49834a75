/* SPDX-License-Identifier: MIT */
/*
 * The program's two pipes as one tstream (exec_stream.h). Every op is
 * handed to the bsd stream of its direction.
 */
#include "exec_stream.h"

#include <errno.h>
#include <stdbool.h>
#include <unistd.h>

#include <tsocket.h>
#include <tsocket_internal.h>

struct exec_stream {
	struct tstream_context *out; /* the program's stdout: we read */
	struct tstream_context *in;  /* the program's stdin: we write */
	struct tstream_context *self;
	tstream_readable_handler_t readable_fn;
	void *readable_private;
	void *data;
};

static ssize_t exec_stream_pending_bytes(struct tstream_context *stream)
{
	struct exec_stream *s =
	    tstream_context_data(stream, struct exec_stream);

	return tstream_pending_bytes(s->out);
}

/* A readv or writev handed to one side. */
struct exec_stream_io_state {
	bool read;
	int ret;
	size_t len;
};

static void exec_stream_io_done(struct tevent_req *subreq);

static struct tevent_req *exec_stream_io_send(TALLOC_CTX *mem_ctx,
					      struct tevent_context *ev,
					      struct tstream_context *side,
					      bool read,
					      const struct iovec *vector,
					      size_t count)
{
	struct tevent_req *req, *subreq;
	struct exec_stream_io_state *state;

	req = tevent_req_create(mem_ctx, &state, struct exec_stream_io_state);
	if (req == NULL) {
		return NULL;
	}
	state->read = read;
	for (size_t i = 0; i < count; i++) {
		state->len += vector[i].iov_len;
	}
	if (side == NULL) {
		/* our half-close closed the program's stdin */
		tevent_req_error(req, EPIPE);
		return tevent_req_post(req, ev);
	}
	if (read) {
		subreq = tstream_readv_send(state, ev, side,
					    (struct iovec *)vector, count);
	} else {
		subreq = tstream_writev_send(state, ev, side, vector, count);
	}
	if (tevent_req_nomem(subreq, req)) {
		return tevent_req_post(req, ev);
	}
	tevent_req_set_callback(subreq, exec_stream_io_done, req);
	return req;
}

static void exec_stream_io_done(struct tevent_req *subreq)
{
	struct tevent_req *req =
	    tevent_req_callback_data(subreq, struct tevent_req);
	struct exec_stream_io_state *state =
	    tevent_req_data(req, struct exec_stream_io_state);
	int err = 0;

	if (state->read) {
		state->ret = tstream_readv_recv(subreq, &err);
	} else {
		state->ret = tstream_writev_recv(subreq, &err);
	}
	TALLOC_FREE(subreq);
	if (state->ret == -1 && !state->read &&
	    (err == EPIPE || err == ECONNRESET)) {
		/*
		 * The program closed its stdin (or exited): what it does not
		 * read is dropped, and its exit ends the connection once its
		 * output is through (tsgate_relay_backend_gone()), instead
		 * of an error that could cut that output short.
		 */
		state->ret = (int)state->len;
	}
	if (state->ret == -1) {
		tevent_req_error(req, err);
		return;
	}
	tevent_req_done(req);
}

static int exec_stream_io_recv(struct tevent_req *req, int *perrno)
{
	struct exec_stream_io_state *state =
	    tevent_req_data(req, struct exec_stream_io_state);
	int ret = tsocket_simple_int_recv(req, perrno);

	if (ret == 0) {
		ret = state->ret;
	}
	tevent_req_received(req);
	return ret;
}

static struct tevent_req *exec_stream_readv_send(TALLOC_CTX *mem_ctx,
						 struct tevent_context *ev,
						 struct tstream_context *stream,
						 struct iovec *vector,
						 size_t count)
{
	struct exec_stream *s =
	    tstream_context_data(stream, struct exec_stream);

	return exec_stream_io_send(mem_ctx, ev, s->out, true, vector, count);
}

static struct tevent_req *exec_stream_writev_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream,
    const struct iovec *vector,
    size_t count)
{
	struct exec_stream *s =
	    tstream_context_data(stream, struct exec_stream);

	return exec_stream_io_send(mem_ctx, ev, s->in, false, vector, count);
}

/* Both ends at once: closing them is all a disconnect or half-close does. */
static struct tevent_req *exec_stream_close_send(TALLOC_CTX *mem_ctx,
						 struct tevent_context *ev,
						 struct tstream_context *stream,
						 bool both)
{
	struct exec_stream *s =
	    tstream_context_data(stream, struct exec_stream);
	struct tevent_req *req;
	struct exec_stream_io_state *state;

	req = tevent_req_create(mem_ctx, &state, struct exec_stream_io_state);
	if (req == NULL) {
		return NULL;
	}
	/* the program reads EOF on its stdin */
	TALLOC_FREE(s->in);
	if (both) {
		if (s->readable_fn != NULL) {
			tstream_set_readable_handler(s->out, NULL, NULL, NULL);
			s->readable_fn = NULL;
		}
		TALLOC_FREE(s->out);
	}
	tevent_req_done(req);
	return tevent_req_post(req, ev);
}

static struct tevent_req *exec_stream_disconnect_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream)
{
	return exec_stream_close_send(mem_ctx, ev, stream, true);
}

static struct tevent_req *exec_stream_shutdown_send(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    struct tstream_context *stream)
{
	return exec_stream_close_send(mem_ctx, ev, stream, false);
}

static int exec_stream_simple_recv(struct tevent_req *req, int *perrno)
{
	int ret = tsocket_simple_int_recv(req, perrno);

	tevent_req_received(req);
	return ret;
}

static void exec_stream_readable(struct tstream_context *side,
				 void *private_data)
{
	struct exec_stream *s =
	    talloc_get_type_abort(private_data, struct exec_stream);
	tstream_readable_handler_t fn = s->readable_fn;

	(void)side;
	s->readable_fn = NULL;
	if (fn != NULL) {
		fn(s->self, s->readable_private);
	}
}

static int exec_stream_set_readable_handler(struct tstream_context *stream,
					    struct tevent_context *ev,
					    tstream_readable_handler_t handler,
					    void *private_data,
					    bool *pready)
{
	struct exec_stream *s =
	    tstream_context_data(stream, struct exec_stream);

	if (handler == NULL) {
		if (s->readable_fn != NULL && s->out != NULL) {
			tstream_set_readable_handler(s->out, NULL, NULL, NULL);
		}
		s->readable_fn = NULL;
		return 0;
	}
	if (s->out == NULL) {
		*pready = true;
		return 0;
	}
	s->self = stream;
	s->readable_fn = handler;
	s->readable_private = private_data;
	if (tstream_set_readable_handler(s->out, ev, exec_stream_readable, s) !=
	    0) {
		s->readable_fn = NULL;
		return errno;
	}
	*pready = false;
	return 0;
}

static const struct tstream_context_ops exec_stream_ops = {
    .name = "exec",
    .pending_bytes = exec_stream_pending_bytes,
    .readv_send = exec_stream_readv_send,
    .readv_recv = exec_stream_io_recv,
    .writev_send = exec_stream_writev_send,
    .writev_recv = exec_stream_io_recv,
    .disconnect_send = exec_stream_disconnect_send,
    .disconnect_recv = exec_stream_simple_recv,
    .shutdown_send = exec_stream_shutdown_send,
    .shutdown_recv = exec_stream_simple_recv,
    .set_readable_handler = exec_stream_set_readable_handler,
};

void *tsgate_exec_stream_data(struct tstream_context *stream)
{
	struct exec_stream *s =
	    tstream_context_data(stream, struct exec_stream);

	return s->data;
}

void tsgate_exec_stream_set_data(struct tstream_context *stream, void *data)
{
	struct exec_stream *s =
	    tstream_context_data(stream, struct exec_stream);

	s->data = data;
}

bool tsgate_exec_stream_is(struct tstream_context *stream)
{
	return stream != NULL && talloc_get_type(_tstream_context_data(stream),
						 struct exec_stream) != NULL;
}

int tsgate_exec_stream_new(TALLOC_CTX *mem_ctx,
			   int stdout_fd,
			   int stdin_fd,
			   struct tstream_context **pstream)
{
	struct tstream_context *stream;
	struct exec_stream *s;
	int err;

	stream = tstream_context_create(mem_ctx, &exec_stream_ops, &s,
					struct exec_stream, __location__);
	if (stream == NULL) {
		close(stdout_fd);
		close(stdin_fd);
		return ENOMEM;
	}
	if (tstream_bsd_existing_socket(s, stdout_fd, &s->out) != 0) {
		err = errno;
		close(stdout_fd);
		close(stdin_fd);
		talloc_free(stream);
		return err;
	}
	if (tstream_bsd_existing_socket(s, stdin_fd, &s->in) != 0) {
		err = errno;
		close(stdin_fd);
		talloc_free(stream);
		return err;
	}
	*pstream = stream;
	return 0;
}
