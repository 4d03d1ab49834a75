/* SPDX-License-Identifier: MIT */
/*
 * tsocket_echo: a TCP round trip on loopback with libtsocket.
 *
 * The client connects with tstream_inet_tcp_connect_send(), the server
 * side wraps the fd it accepted with tstream_bsd_existing_socket(), and
 * both use the same tstream_writev/readv calls. For brevity each step
 * waits with tevent_req_poll(); a server would set callbacks instead
 * (docs/api.md, "Conventions").
 *
 *   cc tsocket_echo.c $(pkg-config --cflags --libs tsocket)
 *   ./a.out            prints: ipv4:127.0.0.1:PORT echoed "hello, tsocket"
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <tsocket.h>

/* Wait for req (at most 5 s); -1 when it could not finish. */
static int wait_req(struct tevent_req *req, struct tevent_context *ev)
{
	if (req == NULL) {
		return -1;
	}
	if (!tevent_req_set_endtime(req, ev,
				    tevent_timeval_current_ofs(5, 0))) {
		return -1;
	}
	return tevent_req_poll(req, ev) ? 0 : -1;
}

int main(void)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(mem);
	struct tsocket_address *local = NULL, *server = NULL;
	struct tstream_context *client = NULL, *accepted = NULL;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	static const char msg[] = "hello, tsocket";
	char buf[sizeof(msg)] = "";
	struct iovec iov;
	struct tevent_req *req;
	int lfd, fd, err = 0, ret = 1;

	/* tsocket has no listen call: a listener is a plain socket. */
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ev == NULL || lfd == -1 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(lfd, 1) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len) != 0) {
		perror("listener");
		goto done;
	}
	if (tsocket_address_bsd_from_sockaddr(mem, (struct sockaddr *)&sin, len,
					      &server) != 0 ||
	    tsocket_address_inet_from_strings(mem, "ip", NULL, 0, &local) !=
		0) {
		perror("address");
		goto done;
	}

	req = tstream_inet_tcp_connect_send(mem, ev, local, server);
	if (wait_req(req, ev) != 0 ||
	    tstream_inet_tcp_connect_recv(req, &err, mem, &client) != 0) {
		fprintf(stderr, "connect: %s\n", strerror(err));
		goto done;
	}
	TALLOC_FREE(req);

	/* The kernel finished the handshake; accept and wrap the fd. */
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1 || tstream_bsd_existing_socket(mem, fd, &accepted) != 0) {
		perror("accept");
		if (fd != -1) {
			close(fd);
		}
		goto done;
	}

	/* client -> server */
	iov = (struct iovec){.iov_base = (void *)msg, .iov_len = sizeof(msg)};
	req = tstream_writev_send(mem, ev, client, &iov, 1);
	if (wait_req(req, ev) != 0 || tstream_writev_recv(req, &err) < 0) {
		fprintf(stderr, "write: %s\n", strerror(err));
		goto done;
	}
	TALLOC_FREE(req);
	iov = (struct iovec){.iov_base = buf, .iov_len = sizeof(buf)};
	req = tstream_readv_send(mem, ev, accepted, &iov, 1);
	if (wait_req(req, ev) != 0 || tstream_readv_recv(req, &err) < 0) {
		fprintf(stderr, "read: %s\n", strerror(err));
		goto done;
	}
	TALLOC_FREE(req);

	/* server -> client: the same bytes back */
	iov = (struct iovec){.iov_base = buf, .iov_len = sizeof(buf)};
	req = tstream_writev_send(mem, ev, accepted, &iov, 1);
	if (wait_req(req, ev) != 0 || tstream_writev_recv(req, &err) < 0) {
		fprintf(stderr, "write back: %s\n", strerror(err));
		goto done;
	}
	TALLOC_FREE(req);
	memset(buf, 0, sizeof(buf));
	req = tstream_readv_send(mem, ev, client, &iov, 1);
	if (wait_req(req, ev) != 0 || tstream_readv_recv(req, &err) < 0) {
		fprintf(stderr, "read back: %s\n", strerror(err));
		goto done;
	}
	TALLOC_FREE(req);

	printf("%s echoed \"%s\"\n", tsocket_address_string(server, mem), buf);
	ret = strcmp(buf, msg) == 0 ? 0 : 1;
done:
	if (lfd != -1) {
		close(lfd);
	}
	talloc_free(mem); /* closes both streams */
	return ret;
}
