/* SPDX-License-Identifier: MIT */
/*
 * bench_gateway_client's resumption and first-reply modes (issue 15), on
 * a server whose backend echoes (bench_gateway_client echo PORT):
 *
 *   resume PORT N VERSION full|resumed [CERT KEY]
 *         N connections one after the other, each: handshake, write one
 *         byte, read its echo (so a TLS 1.3 client has read the tickets
 *         sent before it), close. "resumed": each connection offers the
 *         newest session of the one before (what a real client does; a
 *         server whose tickets are single-use still resumes), so the
 *         first is a full handshake. Prints the seconds taken, how many
 *         connections resumed and of how many that offered a session.
 *   firstbyte PORT N VERSION full|resumed REQSIZE
 *         N connections with Nagle left on (no TCP_NODELAY: the default
 *         of most client libraries), each: handshake, write REQSIZE
 *         bytes at once, read until the first byte of the echo. Prints
 *         one line per connection: microseconds from the handshake's end
 *         to that byte, from connect() to that byte, and 1 when the
 *         handshake resumed. "resumed" makes an unprinted first
 *         connection for the session.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_gateway_client.h"

SSL_SESSION *first_session(SSL_CTX *ctx, int port)
{
	SSL *ssl = tls_connect_session(ctx, port, NULL, true);
	int fd = SSL_get_fd(ssl);
	double end = now() + 2.0;
	SSL_SESSION *sess;
	char buf[64];

	if (SSL_write(ssl, "p", 1) != 1) {
		die("SSL_write");
	}
	/*
	 * Reading drives OpenSSL through the NewSessionTicket records. A
	 * sink backend never answers: read without blocking and without
	 * OpenSSL's retry after a non-data record.
	 */
	SSL_clear_mode(ssl, SSL_MODE_AUTO_RETRY);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while (!SSL_SESSION_is_resumable(SSL_get0_session(ssl)) &&
	       now() < end) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int n;

		if (SSL_pending(ssl) == 0 && poll(&pfd, 1, 50) <= 0) {
			continue;
		}
		n = SSL_read(ssl, buf, sizeof(buf));
		if (n <= 0 && SSL_get_error(ssl, n) != SSL_ERROR_WANT_READ) {
			break;
		}
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	sess = SSL_get1_session(ssl);
	tls_close(ssl);
	return sess;
}

static void read_some(SSL *ssl)
{
	char buf[256];

	if (SSL_read(ssl, buf, sizeof(buf)) <= 0) {
		die("SSL_read");
	}
}

static int do_resume(int port,
		     int n,
		     const char *version,
		     bool resume,
		     const char *cert,
		     const char *key)
{
	SSL_CTX *ctx = client_ctx_version(cert, key, version, resume);
	SSL_SESSION *sess = NULL;
	int i, resumed = 0;
	double t0 = now();

	for (i = 0; i < n; i++) {
		SSL *ssl = tls_connect_session(ctx, port, sess, true);

		resumed += SSL_session_reused(ssl);
		if (SSL_write(ssl, "r", 1) != 1) {
			die("SSL_write");
		}
		read_some(ssl);
		if (resume) {
			SSL_SESSION_free(sess);
			sess = SSL_get1_session(ssl);
		}
		tls_close(ssl);
	}
	printf("%.6f %d %d\n", now() - t0, resumed, resume ? n - 1 : 0);
	SSL_SESSION_free(sess);
	SSL_CTX_free(ctx);
	return 0;
}

static int do_firstbyte(
    int port, int n, const char *version, bool resume, int reqsize)
{
	SSL_CTX *ctx = client_ctx_version(NULL, NULL, version, resume);
	SSL_SESSION *sess = resume ? first_session(ctx, port) : NULL;
	char *req = malloc(reqsize);
	int i;

	if (req == NULL) {
		die("malloc");
	}
	memset(req, 'q', reqsize);
	for (i = 0; i < n; i++) {
		double t0 = now(), t1, t2;
		SSL *ssl = tls_connect_session(ctx, port, sess, false);

		t1 = now();
		if (SSL_write(ssl, req, reqsize) != reqsize) {
			die("SSL_write");
		}
		read_some(ssl);
		t2 = now();
		printf("%.1f %.1f %d\n", (t2 - t1) * 1e6, (t2 - t0) * 1e6,
		       SSL_session_reused(ssl));
		if (resume) {
			SSL_SESSION_free(sess);
			sess = SSL_get1_session(ssl);
		}
		tls_close(ssl);
	}
	free(req);
	SSL_SESSION_free(sess);
	SSL_CTX_free(ctx);
	return 0;
}

static bool parse_mode(const char *mode)
{
	if (strcmp(mode, "resumed") == 0) {
		return true;
	}
	if (strcmp(mode, "full") != 0) {
		fprintf(stderr,
			"bench_gateway_client: full or resumed, not %s\n",
			mode);
		exit(2);
	}
	return false;
}

int bench_resume_main(int argc, char **argv)
{
	if (strcmp(argv[1], "resume") == 0 && (argc == 6 || argc == 8)) {
		return do_resume(
		    atoi(argv[2]), atoi(argv[3]), argv[4], parse_mode(argv[5]),
		    argc == 8 ? argv[6] : NULL, argc == 8 ? argv[7] : NULL);
	}
	if (strcmp(argv[1], "firstbyte") == 0 && argc == 7 &&
	    atoi(argv[6]) > 0) {
		return do_firstbyte(atoi(argv[2]), atoi(argv[3]), argv[4],
				    parse_mode(argv[5]), atoi(argv[6]));
	}
	fprintf(stderr, "usage: %s %s\n", argv[0], BENCH_RESUME_USAGE);
	return 2;
}
