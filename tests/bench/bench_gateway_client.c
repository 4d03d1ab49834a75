/* SPDX-License-Identifier: MIT */
/*
 * bench_gateway_client: the load client and the backend of the gateway
 * benchmarks (tests/bench/bench_gateway.py). OpenSSL on the client side,
 * so the client is not the bottleneck (Debian's GnuTLS is slower here).
 *
 *   sink PORT                 accept on 127.0.0.1:PORT, read and discard
 *                             (epoll, any number of connections); prints
 *                             "ready"
 *   bulk PORT BYTES [CERT KEY]
 *                             one TLS 1.3 connection, upload BYTES, then
 *                             close_notify; prints the seconds taken
 *   handshake PORT N [CERT KEY]
 *                             N full TLS 1.3 handshakes (X25519, no
 *                             resumption) on new connections, one after
 *                             the other; prints the seconds taken
 *   idle PORTS N [resume VERSION]
 *                             N TLS connections, each handshaken and with
 *                             one byte sent (so every proxy has connected
 *                             its backend), spread round-robin over PORTS
 *                             (comma-separated: one server process cannot
 *                             hold 10,000 under a 20,000-fd limit); with
 *                             "resume", each offers the session of a first
 *                             connection; prints "ready RESUMED", holds
 *                             them until stdin closes
 *   echo PORT                 like sink, but writes back what it reads
 *
 * resume and firstbyte (session resumption, first reply after the
 * handshake) are in bench_gateway_resume.c.
 *
 * Always TLS_AES_128_GCM_SHA256 (TLS 1.3) or ECDHE-ECDSA-AES128-GCM-SHA256
 * (TLS 1.2) with X25519; the server certificate is not verified (the
 * benchmark measures the server, not the client).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_gateway_client.h"

double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void die(const char *what)
{
	fprintf(stderr, "bench_gateway_client: %s: %s\n", what,
		strerror(errno));
	ERR_print_errors_fp(stderr);
	exit(1);
}

void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int tcp_connect(int port, bool nodelay)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(port)};
	int fd, one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd == -1) {
		die("socket");
	}
	if (nodelay) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		die("connect");
	}
	return fd;
}

SSL_CTX *client_ctx_version(const char *cert,
			    const char *key,
			    const char *version,
			    bool resume)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int v = TLS1_3_VERSION;

	if (ctx == NULL) {
		die("SSL_CTX_new");
	}
	if (strcmp(version, "1.2") == 0) {
		v = TLS1_2_VERSION;
	} else if (strcmp(version, "1.3") != 0) {
		fprintf(stderr, "bench_gateway_client: version %s?\n", version);
		exit(2);
	}
	SSL_CTX_set_min_proto_version(ctx, v);
	SSL_CTX_set_max_proto_version(ctx, v);
	/*
	 * X25519 for the key exchange; TLS 1.2 also needs the certificate's
	 * curve in the list.
	 */
	if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") != 1 ||
	    SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256") !=
		1 ||
	    SSL_CTX_set1_groups_list(
		ctx, v == TLS1_2_VERSION ? "X25519:P-256" : "X25519") != 1) {
		die("ciphersuites/groups");
	}
	/*
	 * The caller keeps the session it wants to offer (SSL_get1_session)
	 * and sets it on the next connection: no client cache needed.
	 */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (!resume) {
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (cert != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) !=
			1) {
			die("client certificate");
		}
	}
	return ctx;
}

static SSL_CTX *client_ctx(const char *cert, const char *key)
{
	return client_ctx_version(cert, key, "1.3", false);
}

SSL *tls_connect_session(SSL_CTX *ctx,
			 int port,
			 SSL_SESSION *sess,
			 bool nodelay)
{
	SSL *ssl = SSL_new(ctx);
	int fd = tcp_connect(port, nodelay);

	SSL_set_fd(ssl, fd);
	if (sess != NULL && SSL_set_session(ssl, sess) != 1) {
		die("SSL_set_session");
	}
	if (SSL_connect(ssl) != 1) {
		die("SSL_connect");
	}
	return ssl;
}

static SSL *tls_connect(SSL_CTX *ctx, int port)
{
	return tls_connect_session(ctx, port, NULL, true);
}

void tls_close(SSL *ssl)
{
	int fd = SSL_get_fd(ssl);
	char c;

	SSL_shutdown(ssl);
	/* wait for the server's side to go away: its work is done */
	shutdown(fd, SHUT_WR);
	while (read(fd, &c, 1) > 0) {
	}
	SSL_free(ssl);
	close(fd);
}

static int do_bulk(int port, long long bytes, const char *cert, const char *key)
{
	SSL_CTX *ctx = client_ctx(cert, key);
	static char buf[1 << 18];
	long long left = bytes;
	double t0;
	SSL *ssl;

	memset(buf, 'x', sizeof(buf));
	ssl = tls_connect(ctx, port);
	t0 = now();
	while (left > 0) {
		int n = left < (long long)sizeof(buf) ? (int)left
						      : (int)sizeof(buf);
		int w = SSL_write(ssl, buf, n);
		if (w <= 0) {
			die("SSL_write");
		}
		left -= w;
	}
	tls_close(ssl);
	printf("%.6f\n", now() - t0);
	SSL_CTX_free(ctx);
	return 0;
}

static int do_handshake(int port, int n, const char *cert, const char *key)
{
	SSL_CTX *ctx = client_ctx(cert, key);
	double t0 = now();
	int i;

	for (i = 0; i < n; i++) {
		SSL *ssl = tls_connect(ctx, port);
		/*
		 * One byte: the server has read our Finished (and, with
		 * mTLS, verified our certificate) before it sees it.
		 */
		if (SSL_write(ssl, "h", 1) != 1) {
			die("SSL_write");
		}
		tls_close(ssl);
	}
	printf("%.6f\n", now() - t0);
	SSL_CTX_free(ctx);
	return 0;
}

static int parse_ports(const char *list, int *ports, int max)
{
	int n = 0;

	while (n < max && *list != '\0') {
		char *end;
		ports[n++] = (int)strtol(list, &end, 10);
		list = *end == ',' ? end + 1 : end;
	}
	return n;
}

static int do_idle(const char *portlist, int n, const char *resume_version)
{
	SSL_CTX *ctx =
	    resume_version == NULL
		? client_ctx(NULL, NULL)
		: client_ctx_version(NULL, NULL, resume_version, true);
	SSL **conns = calloc(n, sizeof(*conns));
	SSL_SESSION *sess[16] = {NULL};
	int ports[16], nports, resumed = 0;
	char c;
	int i;

	nports = parse_ports(portlist, ports, 16);
	if (nports == 0) {
		fprintf(stderr, "bench_gateway_client: no port\n");
		return 2;
	}
	raise_nofile();
	/* one session per server process: they do not share ticket keys */
	for (i = 0; resume_version != NULL && i < nports; i++) {
		sess[i] = first_session(ctx, ports[i]);
	}
	for (i = 0; i < n; i++) {
		conns[i] = tls_connect_session(ctx, ports[i % nports],
					       sess[i % nports], true);
		resumed += SSL_session_reused(conns[i]);
		if (SSL_write(conns[i], "i", 1) != 1) {
			die("SSL_write");
		}
	}
	for (i = 0; i < nports; i++) {
		SSL_SESSION_free(sess[i]);
	}
	printf("ready %d\n", resumed);
	fflush(stdout);
	while (read(0, &c, 1) > 0) {
	}
	for (i = 0; i < n; i++) {
		close(SSL_get_fd(conns[i]));
		SSL_free(conns[i]);
	}
	free(conns);
	SSL_CTX_free(ctx);
	return 0;
}

/*
 * Reads what is there; the echo writes it back whole (small requests: a
 * blocking write of them does not stall the loop).
 */
static ssize_t sink_read(int fd, char *buf, size_t size, bool echo)
{
	ssize_t n = read(fd, buf, size), off = 0;

	while (echo && n > 0 && off < n) {
		ssize_t w = write(fd, buf + off, n - off);
		if (w <= 0) {
			return -1;
		}
		off += w;
	}
	return n;
}

/* sink, or echo when echo is true (the first-byte and resumption runs) */
static int do_sink(int port, bool echo)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(port)};
	struct epoll_event ev, evs[256];
	static char buf[1 << 18];
	int lfd, ep, one = 1;

	raise_nofile();
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(lfd, 4096) != 0) {
		die("sink bind/listen");
	}
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int i, k = epoll_wait(ep, evs, 256, -1);
		if (k < 0 && errno == EINTR) {
			continue;
		}
		for (i = 0; i < k; i++) {
			int fd = evs[i].data.fd;
			if (fd == lfd) {
				int c = accept(lfd, NULL, NULL);
				if (c == -1) {
					continue;
				}
				setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one,
					   sizeof(one));
				ev.events = EPOLLIN;
				ev.data.fd = c;
				epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				continue;
			}
			if (sink_read(fd, buf, sizeof(buf), echo) <= 0) {
				epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				close(fd);
			}
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *cert = NULL, *key = NULL;

	if (argc >= 3 && strcmp(argv[1], "sink") == 0) {
		return do_sink(atoi(argv[2]), false);
	}
	if (argc >= 3 && strcmp(argv[1], "echo") == 0) {
		return do_sink(atoi(argv[2]), true);
	}
	if (argc >= 2 && (strcmp(argv[1], "resume") == 0 ||
			  strcmp(argv[1], "firstbyte") == 0)) {
		return bench_resume_main(argc, argv);
	}
	if (argc == 6) {
		cert = argv[4];
		key = argv[5];
	}
	if ((argc == 4 || argc == 6) && strcmp(argv[1], "bulk") == 0) {
		return do_bulk(atoi(argv[2]), atoll(argv[3]), cert, key);
	}
	if ((argc == 4 || argc == 6) && strcmp(argv[1], "handshake") == 0) {
		return do_handshake(atoi(argv[2]), atoi(argv[3]), cert, key);
	}
	if (argc == 4 && strcmp(argv[1], "idle") == 0) {
		return do_idle(argv[2], atoi(argv[3]), NULL);
	}
	if (argc == 6 && strcmp(argv[1], "idle") == 0 &&
	    strcmp(argv[4], "resume") == 0) {
		return do_idle(argv[2], atoi(argv[3]), argv[5]);
	}
	fprintf(
	    stderr,
	    "usage: %s sink PORT | echo PORT | bulk PORT BYTES [CERT KEY] | "
	    "handshake PORT N [CERT KEY] | "
	    "idle PORTS N [resume 1.2|1.3] | %s\n",
	    argv[0], BENCH_RESUME_USAGE);
	return 2;
}
