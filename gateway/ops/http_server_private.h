/* SPDX-License-Identifier: MIT */
/*
 * The request head parser of http_server.c, exposed for its unit tests.
 */
#ifndef TSGATE_HTTP_SERVER_PRIVATE_H
#define TSGATE_HTTP_SERVER_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_server.h"

/**
 * @brief Find the end of a request head: the first CRLF CRLF, or the
 *        first LF LF (bare LF line ends, which the parser refuses).
 *
 * @param buf      The bytes received so far.
 * @param len      Their number.
 * @param scanned  How many were already searched without success.
 * @param end      Set to the offset just past the blank line.
 * @return Whether the head is complete.
 */
bool tsgate_http_head_end(const uint8_t *buf,
			  size_t len,
			  size_t scanned,
			  size_t *end);

/**
 * @brief Parse a complete head in place (NUL bytes are written into it).
 *
 * @param head  The head, ending with its blank line (no NUL needed).
 * @param len   Its length (as tsgate_http_head_end() says).
 * @param req   Filled on success; its strings point into head.
 * @return 0 for a GET/HEAD request to serve, or the status to answer with:
 *         400 (malformed), 405 (another method), 505 (not HTTP/1.x).
 */
unsigned tsgate_http_parse_head(char *head,
				size_t len,
				struct tsgate_http_request *req);

struct tstream_context;

/**
 * @brief Serve one request on a stream connected elsewhere (what the
 *        listening socket does for each accepted connection; tests and
 *        the fuzzer use socketpairs).
 *
 * @param server  The server.
 * @param stream  The connection; the server owns it from now on (it is
 *                freed on failure too).
 * @return 0, EAGAIN when all max_clients are being answered, ENOMEM.
 */
int tsgate_http_server_serve(struct tsgate_http_server *server,
			     struct tstream_context *stream);

#endif /* TSGATE_HTTP_SERVER_PRIVATE_H */
