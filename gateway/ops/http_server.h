/* SPDX-License-Identifier: MIT */
/*
 * A tiny, strict HTTP/1.0 and HTTP/1.1 server on tsocket streams, for the
 * metrics and health endpoints. Not a general web server:
 *
 *  - GET and HEAD only (anything else is 405 with "Allow: GET, HEAD");
 *  - one request per connection: every answer says "Connection: close",
 *    the server half-closes after it and drops the connection when the
 *    client closes or the timeout passes;
 *  - the request head (request line and header fields) is at most
 *    TSGATE_HTTP_MAX_HEAD bytes (431 beyond), CRLF line ends, no obsolete
 *    line folding, no control characters, HTTP/1.1 needs exactly one Host
 *    (400 otherwise); a request body is never read;
 *  - the request head must arrive within params.head_ms of accept, and
 *    the whole connection ends params.timeout_ms after accept: a slow or
 *    silent client is dropped then, without an answer, and only its own
 *    connection is affected;
 *  - at most params.max_clients connections at once, so memory stays
 *    bounded (one head buffer per connection); at the cap a new
 *    connection evicts one not being answered (answered and waiting for
 *    the client's close first, then one still sending its head from the
 *    source address holding the most connections, oldest first), so idle
 *    or slow clients cannot keep a health probe out; only when all are
 *    being answered is the new one closed at accept;
 *  - nothing blocks: every read and write goes through the event loop.
 */
#ifndef TSGATE_HTTP_SERVER_H
#define TSGATE_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <talloc.h>
#include <tevent.h>

struct tsgate_config_addr;
struct tsgate_http_server;

/* Longest request head accepted, in bytes. */
#define TSGATE_HTTP_MAX_HEAD 8192

struct tsgate_http_params {
	uint32_t timeout_ms;  /* per connection; 0: 5000 */
	uint32_t max_clients; /* connections at once; 0: 32 */
	uint32_t head_ms;     /* request head; 0: 2000 (at most timeout_ms) */
};

/* A parsed request, valid during the handler call. */
struct tsgate_http_request {
	const char *method;     /* "GET" or "HEAD" */
	const char *path;       /* the target up to '?', e.g. "/metrics" */
	const char *query;      /* after '?', or NULL */
	unsigned version_minor; /* HTTP/1.0 or HTTP/1.1 */
};

/* What the handler fills in; HEAD answers leave the body out. */
struct tsgate_http_response {
	unsigned status;          /* e.g. 200, 404, 503 */
	const char *content_type; /* NULL: "text/plain; charset=utf-8" */
	const char *body;         /* static or on the handler's mem_ctx */
	size_t body_len;
};

/**
 * @brief Answer one request.
 *
 * Called for GET and HEAD requests that parsed; must not block.
 *
 * @param private_data  As given to tsgate_http_server_new().
 * @param mem_ctx       Lives until the answer is written.
 * @param req           The request.
 * @param resp          Fill in status and body; starts as 404.
 */
typedef void (*tsgate_http_handler_t)(void *private_data,
				      TALLOC_CTX *mem_ctx,
				      const struct tsgate_http_request *req,
				      struct tsgate_http_response *resp);

/**
 * @brief Bind a listening socket and serve requests on ev.
 *
 * The socket is made by util/listen_socket.h, like a connection
 * listener's: a unix socket file left over by a previous run is replaced
 * when nobody listens on it, a path too long for sockaddr_un is refused
 * (ENAMETOOLONG), and the server removes its socket file when freed. A
 * TCP port 0 binds an ephemeral port (see tsgate_http_server_port()).
 *
 * @param mem_ctx       Owner; freeing the server closes every connection.
 * @param ev            The event loop.
 * @param listen        "tcp://HOST:PORT" or "unix:PATH" as parsed by the
 *                      config loader (TCP uses listen->ip).
 * @param params        NULL for the defaults.
 * @param handler       Answers the requests.
 * @param private_data  Passed to the handler.
 * @param pserver       The server on success.
 * @param preason       On failure, a message for the log (on mem_ctx);
 *                      may be NULL.
 * @return 0, or an errno value (EADDRINUSE, EACCES, ENAMETOOLONG, ENOMEM,
 *         ...).
 */
int tsgate_http_server_new(TALLOC_CTX *mem_ctx,
			   struct tevent_context *ev,
			   const struct tsgate_config_addr *listen,
			   const struct tsgate_http_params *params,
			   tsgate_http_handler_t handler,
			   void *private_data,
			   struct tsgate_http_server **pserver,
			   char **preason);

/**
 * @brief Start answering one request asynchronously.
 *
 * @param mem_ctx       Lives until the answer is written (freed, with the
 *                      request, when the client's deadline passes first).
 * @param ev            The server's event loop.
 * @param private_data  As given to tsgate_http_server_set_async().
 * @param req           The request; valid until the request finishes.
 * @return A tevent request, or NULL (answered with 500).
 */
typedef struct tevent_req *(*tsgate_http_handler_send_t)(
    TALLOC_CTX *mem_ctx,
    struct tevent_context *ev,
    void *private_data,
    const struct tsgate_http_request *req);

/**
 * @brief Collect the answer of a finished tsgate_http_handler_send_t.
 *
 * @param req      The request (freed by the server afterwards).
 * @param mem_ctx  Where a body may be moved to.
 * @param resp     Fill in status and body; starts as 404.
 */
typedef void (*tsgate_http_handler_recv_t)(struct tevent_req *req,
					   TALLOC_CTX *mem_ctx,
					   struct tsgate_http_response *resp);

/**
 * @brief Answer requests with an asynchronous handler from now on
 *        (instead of the one given to tsgate_http_server_new()).
 */
void tsgate_http_server_set_async(struct tsgate_http_server *server,
				  tsgate_http_handler_send_t send_fn,
				  tsgate_http_handler_recv_t recv_fn,
				  void *private_data);

/** @brief The bound TCP port (0 for a unix socket). */
uint16_t tsgate_http_server_port(const struct tsgate_http_server *server);

/** @brief Connections open now. */
unsigned tsgate_http_server_num_clients(
    const struct tsgate_http_server *server);

/** @brief Connections evicted at max_clients so far. */
uint64_t tsgate_http_server_num_evicted(
    const struct tsgate_http_server *server);

/** @brief The reason phrase of a status code ("OK", "Not Found"...). */
const char *tsgate_http_reason(unsigned status);

#endif /* TSGATE_HTTP_SERVER_H */
