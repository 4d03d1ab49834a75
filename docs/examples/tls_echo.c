/* SPDX-License-Identifier: MIT */
/*
 * tls_echo: a TLS session between our own client and server with
 * libtstream-tls, over a socketpair so the program needs no network.
 *
 * Both handshakes run on one event loop: tstream_tls_accept_send() on one
 * end, tstream_tls_connect_send() on the other. The TLS streams are then
 * ordinary tstreams (tstream_writev/readv), and tstream_shutdown sends
 * close_notify. Real programs run accept on an accepted TCP stream and
 * connect on one from tstream_inet_tcp_connect_send() (docs/tls.md).
 *
 *   cc tls_echo.c $(pkg-config --cflags --libs tstream-tls)
 *   ./a.out server.crt server.key ca.crt [NAME]
 *
 * server.crt must be valid for NAME (default "localhost") and signed by
 * ca.crt. Prints the version, cipher suite and the echoed message.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <tstream_tls.h>

/* Wait until req finished (at most 10 s); -1 on a timeout. */
static int wait_req(struct tevent_req *req, struct tevent_context *ev)
{
	if (req == NULL || !tevent_req_set_endtime(
			       req, ev, tevent_timeval_current_ofs(10, 0))) {
		return -1;
	}
	return tevent_req_poll(req, ev) ? 0 : -1;
}

/* Write buf on one stream and read it back from the other. */
static int pass(struct tevent_context *ev,
		struct tstream_context *from,
		struct tstream_context *to,
		char *buf,
		size_t len)
{
	struct iovec out = {.iov_base = buf, .iov_len = len};
	struct iovec in = {.iov_base = buf, .iov_len = len};
	struct tevent_req *w, *r;
	int err = 0;

	w = tstream_writev_send(ev, ev, from, &out, 1);
	if (wait_req(w, ev) != 0 || tstream_writev_recv(w, &err) < 0) {
		fprintf(stderr, "write: %s\n", strerror(err));
		return -1;
	}
	talloc_free(w);
	memset(buf, 0, len);
	r = tstream_readv_send(ev, ev, to, &in, 1);
	if (wait_req(r, ev) != 0 || tstream_readv_recv(r, &err) < 0) {
		fprintf(stderr, "read: %s\n", strerror(err));
		return -1;
	}
	talloc_free(r);
	return 0;
}

int main(int argc, char **argv)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tevent_context *ev = tevent_context_init(mem);
	struct tstream_tls_params *server_params, *client_params;
	struct tstream_context *plain_s, *plain_c, *tls_s = NULL, *tls_c = NULL;
	struct tevent_req *acc, *con;
	char msg[] = "hello over TLS";
	struct tstream_tls_cert_config cert = {0};
	struct tstream_tls_server_config scfg = {.certs = &cert,
						 .num_certs = 1};
	struct tstream_tls_client_config ccfg = {0};
	char *error = NULL, *reason = NULL;
	int err = 0, ret = 1;

	if (argc < 4 || ev == NULL) {
		fprintf(stderr, "usage: %s CERT KEY CA [NAME]\n", argv[0]);
		goto done;
	}
	cert.cert_file = argv[1];
	cert.key_file = argv[2];
	ccfg.ca_file = argv[3];
	ccfg.peer_name = argc > 4 ? argv[4] : "localhost";

	/* Parameters: loaded and checked once, shared by every session. */
	if (tstream_tls_params_server(mem, &scfg, &server_params, &error) !=
		0 ||
	    tstream_tls_params_client(mem, &ccfg, &client_params, &error) !=
		0) {
		fprintf(stderr, "params: %s\n", error);
		goto done;
	}
	if (tstream_unix_socketpair(mem, &plain_s, mem, &plain_c) != 0) {
		perror("socketpair");
		goto done;
	}

	/* Both handshakes progress on the same loop. */
	acc = tstream_tls_accept_send(mem, ev, plain_s, server_params);
	con = tstream_tls_connect_send(mem, ev, plain_c, client_params);
	if (wait_req(acc, ev) != 0 || wait_req(con, ev) != 0) {
		fprintf(stderr, "handshake timed out\n");
		goto done;
	}
	if (tstream_tls_connect_recv(con, &err, mem, &tls_c, &reason) != 0) {
		fprintf(stderr, "client: %s\n", reason);
		goto done;
	}
	if (tstream_tls_accept_recv(acc, &err, mem, &tls_s, &reason) != 0) {
		fprintf(stderr, "server: %s\n", reason);
		goto done;
	}
	printf("%s %s, server certificate %s\n", tstream_tls_version(tls_c),
	       tstream_tls_cipher_suite(tls_c),
	       tstream_tls_peer_subject(tls_c));

	if (pass(ev, tls_c, tls_s, msg, sizeof(msg)) != 0 ||
	    pass(ev, tls_s, tls_c, msg, sizeof(msg)) != 0) {
		goto done;
	}
	printf("echoed \"%s\"\n", msg);

	/* close_notify from the client; the server reads end of stream. */
	con = tstream_shutdown_send(mem, ev, tls_c);
	if (wait_req(con, ev) != 0 || tstream_shutdown_recv(con, &err) != 0) {
		fprintf(stderr, "shutdown: %s\n", strerror(err));
		goto done;
	}
	ret = strcmp(msg, "hello over TLS") == 0 ? 0 : 1;
done:
	talloc_free(mem);
	return ret;
}
