/* SPDX-License-Identifier: MIT */
/*
 * /metrics, /healthz and /readyz, and the blocking health probe that
 * `tsgate --health` runs for the container HEALTHCHECK.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <talloc.h>
#include <tevent.h>

#include "config.h"
#include "health.h"
#include "http_server.h"
#include "metrics.h"

#define PROBE_ANSWER_MAX 1024

static void text_body(struct tsgate_http_response *resp,
		      unsigned status,
		      const char *body)
{
	resp->status = status;
	resp->content_type = NULL;
	resp->body = body;
	resp->body_len = strlen(body);
}

void tsgate_metrics_http_handler(void *private_data,
				 TALLOC_CTX *mem_ctx,
				 const struct tsgate_http_request *req,
				 struct tsgate_http_response *resp)
{
	struct tsgate_metrics *m =
	    talloc_get_type_abort(private_data, struct tsgate_metrics);
	char *text;

	if (strcmp(req->path, "/metrics") == 0) {
		text = tsgate_metrics_render(mem_ctx, m);
		if (text == NULL) {
			text_body(resp, 500, "out of memory\n");
			return;
		}
		resp->status = 200;
		resp->content_type = TSGATE_METRICS_CONTENT_TYPE;
		resp->body = text;
		resp->body_len = talloc_get_size(text) - 1;
		return;
	}
	if (strcmp(req->path, "/healthz") == 0) {
		text_body(resp, 200, "ok\n");
		return;
	}
	if (strcmp(req->path, "/readyz") == 0) {
		switch (tsgate_metrics_get_state(m)) {
		case TSGATE_METRICS_READY:
			text_body(resp, 200, "ready\n");
			return;
		case TSGATE_METRICS_DRAINING:
			text_body(resp, 503, "draining\n");
			return;
		case TSGATE_METRICS_STARTING:
			break;
		}
		text_body(resp, 503, "starting\n");
		return;
	}
	text_body(resp, 404, "not found\n");
}

int tsgate_metrics_server_new(TALLOC_CTX *mem_ctx,
			      struct tevent_context *ev,
			      struct tsgate_metrics *m,
			      const struct tsgate_config_addr *listen,
			      const struct tsgate_http_params *params,
			      struct tsgate_http_server **pserver,
			      char **preason)
{
	return tsgate_http_server_new(mem_ctx, ev, listen, params,
				      tsgate_metrics_http_handler, m, pserver,
				      preason);
}

/*
 * The probe: plain blocking-with-deadline socket code, no event loop (it
 * runs in its own short-lived process).
 */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until the deadline; 0 or -1 with errno. */
static int probe_wait(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int64_t left;
	int ret;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		ret = poll(&pfd, 1, (int)left);
		if (ret > 0) {
			return 0;
		}
		if (ret == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (errno != EINTR) {
			return -1;
		}
	}
}

/* The sockaddr to probe: wildcard addresses become loopback. */
static socklen_t probe_sockaddr(const struct tsgate_config_addr *addr,
				struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (addr->kind == TSGATE_CONFIG_ADDR_UNIX) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;

		if (addr->path == NULL ||
		    strlen(addr->path) >= sizeof(sun->sun_path)) {
			errno = ENAMETOOLONG;
			return 0;
		}
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, addr->path, strlen(addr->path));
		return sizeof(*sun);
	}
	if (addr->ip != NULL) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET, addr->ip, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			sin->sin_port = htons(addr->port);
			if (sin->sin_addr.s_addr == htonl(INADDR_ANY)) {
				sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			}
			return sizeof(*sin);
		}
		if (inet_pton(AF_INET6, addr->ip, &sin6->sin6_addr) == 1) {
			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons(addr->port);
			if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr)) {
				sin6->sin6_addr = in6addr_loopback;
			}
			return sizeof(*sin6);
		}
	}
	errno = EINVAL;
	return 0;
}

/* Parse "HTTP/1.x SSS ..." at the start of an answer; 0 when it is not. */
static unsigned probe_status(const char *buf, size_t len)
{
	unsigned status = 0;
	size_t i;

	if (len < 13 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ') {
		return 0;
	}
	for (i = 9; i < 12; i++) {
		if (buf[i] < '0' || buf[i] > '9') {
			return 0;
		}
		status = status * 10 + (unsigned)(buf[i] - '0');
	}
	if (buf[12] != ' ' && buf[12] != '\r') {
		return 0;
	}
	return status;
}

int tsgate_health_probe_addr(const struct tsgate_config_addr *addr,
			     const char *path,
			     unsigned timeout_ms,
			     unsigned *pstatus)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct sockaddr_storage ss;
	socklen_t sslen;
	char request[512];
	char answer[PROBE_ANSWER_MAX];
	size_t sent = 0, got = 0;
	int reqlen, fd, err = 0;
	socklen_t errlen = sizeof(err);
	unsigned status;
	ssize_t n;

	if (pstatus != NULL) {
		*pstatus = 0;
	}
	sslen = probe_sockaddr(addr, &ss);
	if (sslen == 0) {
		return -1;
	}
	reqlen = snprintf(request, sizeof(request),
			  "GET %s HTTP/1.1\r\n"
			  "Host: localhost\r\n"
			  "User-Agent: tsgate-health\r\n"
			  "Connection: close\r\n"
			  "\r\n",
			  path);
	if (reqlen < 0 || (size_t)reqlen >= sizeof(request)) {
		errno = EINVAL;
		return -1;
	}
	fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&ss, sslen) != 0) {
		if (errno != EINPROGRESS && errno != EAGAIN) {
			goto fail;
		}
		if (probe_wait(fd, POLLOUT, deadline) != 0) {
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) != 0) {
			goto fail;
		}
		if (err != 0) {
			errno = err;
			goto fail;
		}
	}
	while (sent < (size_t)reqlen) {
		n = send(fd, request + sent, (size_t)reqlen - sent,
			 MSG_NOSIGNAL);
		if (n > 0) {
			sent += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			goto fail;
		}
		if (probe_wait(fd, POLLOUT, deadline) != 0) {
			goto fail;
		}
	}
	/* the status line is all we need */
	while (got < sizeof(answer) && memchr(answer, '\n', got) == NULL) {
		n = recv(fd, answer + got, sizeof(answer) - got, 0);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0) {
			break;
		}
		if (errno != EAGAIN && errno != EINTR) {
			goto fail;
		}
		if (probe_wait(fd, POLLIN, deadline) != 0) {
			goto fail;
		}
	}
	close(fd);
	status = probe_status(answer, got);
	if (pstatus != NULL) {
		*pstatus = status;
	}
	if (status == 0) {
		errno = EBADMSG;
		return -1;
	}
	if (status != 200) {
		errno = EPROTO;
		return -1;
	}
	return 0;

fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

int tsgate_health_probe(const struct tsgate_config *cfg, unsigned timeout_ms)
{
	if (cfg->metrics_listen == NULL) {
		return 0;
	}
	return tsgate_health_probe_addr(cfg->metrics_listen, "/healthz",
					timeout_ms, NULL);
}
