/* SPDX-License-Identifier: MIT */
/*
 * bench_gateway_client: what bench_gateway_client.c (connections, the
 * sink, bulk, full handshakes, idle) shares with bench_gateway_resume.c
 * (resumed handshakes, first reply after the handshake).
 */
#ifndef BENCH_GATEWAY_CLIENT_H
#define BENCH_GATEWAY_CLIENT_H

#include <openssl/ssl.h>
#include <stdbool.h>

#define BENCH_RESUME_USAGE                                 \
	"resume PORT N 1.2|1.3 full|resumed [CERT KEY] | " \
	"firstbyte PORT N 1.2|1.3 full|resumed REQSIZE"

double now(void);
void die(const char *what);
void raise_nofile(void);
int tcp_connect(int port, bool nodelay);

/*
 * A client context for TLS version "1.2" or "1.3"; resume leaves session
 * tickets on (a TLS 1.2 client only asks for one when they are on).
 */
SSL_CTX *client_ctx_version(const char *cert,
			    const char *key,
			    const char *version,
			    bool resume);

/* connect and handshake, offering sess when it is not NULL */
SSL *tls_connect_session(SSL_CTX *ctx,
			 int port,
			 SSL_SESSION *sess,
			 bool nodelay);

/* close_notify, then wait until the server has closed its side */
void tls_close(SSL *ssl);

/*
 * One connection that sends a byte and waits (up to 2 s) for a session it
 * can resume: TLS 1.3 tickets come after the handshake, whether or not
 * the backend answers. Returns that session, or the connection's own
 * (not resumable) when the server sent none, for the caller to free.
 */
SSL_SESSION *first_session(SSL_CTX *ctx, int port);

int bench_resume_main(int argc, char **argv);

#endif
