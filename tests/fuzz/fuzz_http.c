/* SPDX-License-Identifier: MIT */
/*
 * fuzz-http: the metrics listener's HTTP server (gateway/ops/http_server.c)
 * with /metrics, /healthz and /readyz behind it.
 *
 * Input: [n][n chunk sizes][request bytes]. The bytes reach the server
 * through a socketpair, cut into writes by the chunk sizes, then the
 * client half-closes. Checked against a model built only from the input
 * and the documented rules: a head whose blank line comes within the
 * first 8 KiB gets exactly one answer, with the status the head parser
 * and the endpoints say (200, 404, 503 for /readyz while starting; 400,
 * 405, 505 for bad heads), a Content-Length equal to the body sent (no
 * body for HEAD) and "Connection: close"; 8 KiB without a blank line is
 * 431; a head cut short by the end of the stream gets no answer; and the
 * server always lets the connection go.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tsocket.h>

#include "config.h"
#include "fuzz_common.h"
#include "health.h"
#include "http_server.h"
#include "http_server_private.h"
#include "metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The status the server must answer with, or 0 for no answer at all. */
static unsigned expected_status(const uint8_t *req, size_t len, bool *head)
{
	size_t limit = len < TSGATE_HTTP_MAX_HEAD ? len : TSGATE_HTTP_MAX_HEAD;
	struct tsgate_http_request parsed;
	size_t end = 0;
	unsigned st;
	char *copy;

	*head = false;
	if (!tsgate_http_head_end(req, limit, 0, &end)) {
		return len >= TSGATE_HTTP_MAX_HEAD ? 431 : 0;
	}
	copy = malloc(end);
	FUZZ_ASSERT(copy != NULL);
	memcpy(copy, req, end);
	st = tsgate_http_parse_head(copy, end, &parsed);
	if (st == 0) {
		*head = strcmp(parsed.method, "HEAD") == 0;
		if (strcmp(parsed.path, "/metrics") == 0 ||
		    strcmp(parsed.path, "/healthz") == 0) {
			st = 200;
		} else if (strcmp(parsed.path, "/readyz") == 0) {
			st = 503; /* the registry says "starting" */
		} else {
			st = 404;
		}
	}
	free(copy);
	return st;
}

static void check_answer(const uint8_t *out,
			 size_t out_len,
			 unsigned want,
			 bool head)
{
	const char *text = (const char *)out;
	const char *blank, *cl;
	char status_line[16];
	unsigned long body_len;
	size_t head_len;

	if (want == 0) {
		FUZZ_ASSERT(out_len == 0);
		return;
	}
	snprintf(status_line, sizeof(status_line), "HTTP/1.1 %u ", want);
	FUZZ_ASSERT(out_len > strlen(status_line));
	FUZZ_ASSERT(memcmp(out, status_line, strlen(status_line)) == 0);
	blank = memmem(out, out_len, "\r\n\r\n", 4);
	FUZZ_ASSERT(blank != NULL);
	head_len = (size_t)(blank - text) + 4;
	FUZZ_ASSERT(memmem(out, head_len, "\r\nConnection: close\r\n", 21) !=
		    NULL);
	cl = memmem(out, head_len, "\r\nContent-Length: ", 18);
	FUZZ_ASSERT(cl != NULL);
	body_len = strtoul(cl + 18, NULL, 10);
	FUZZ_ASSERT(out_len - head_len == (head ? 0 : body_len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TALLOC_CTX *mem;
	struct tevent_context *ev;
	struct tstream_context *stream = NULL;
	struct tsgate_http_server *server = NULL;
	struct tsgate_metrics *m;
	struct tsgate_config_addr addr = {.kind = TSGATE_CONFIG_ADDR_UNIX};
	struct fuzz_peer *peer;
	const uint8_t *chunks, *req, *out;
	size_t num_chunks, req_len, out_len = 0;
	unsigned want, steps = 0;
	bool head = false;

	if (size < 1) {
		return 0;
	}
	num_chunks = data[0] % 16;
	if (size < 1 + num_chunks) {
		return 0;
	}
	chunks = data + 1;
	req = data + 1 + num_chunks;
	req_len = size - 1 - num_chunks;
	want = expected_status(req, req_len, &head);

	mem = talloc_new(NULL);
	FUZZ_ASSERT(mem != NULL);
	ev = fuzz_ev_create(mem);
	m = tsgate_metrics_new(mem, "fuzz", NULL);
	FUZZ_ASSERT(m != NULL);
	addr.path = talloc_asprintf(mem, "%s/http.sock", fuzz_tmpdir());
	addr.text = addr.path;
	FUZZ_ASSERT(tsgate_metrics_server_new(mem, ev, m, &addr, NULL, &server,
					      NULL) == 0);
	peer = fuzz_peer_create(mem, ev, req, req_len, chunks, num_chunks,
				&stream);
	FUZZ_ASSERT(peer != NULL);
	fuzz_peer_capture(peer);
	FUZZ_ASSERT(tsgate_http_server_serve(server, stream) == 0);

	/* the client half-closes after its bytes: the server must let go */
	while (!fuzz_peer_done(peer) ||
	       tsgate_http_server_num_clients(server) > 0) {
		FUZZ_ASSERT(tevent_loop_once(ev) == 0);
		if (++steps > 100000) {
			fuzz_fail(__FILE__, __LINE__,
				  "http server: connection never ended");
		}
	}
	fuzz_peer_drain(peer);
	out = fuzz_peer_received(peer, &out_len);
	check_answer(out, out_len, want, head);

	talloc_free(mem);
	return 0;
}
