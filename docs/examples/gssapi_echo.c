/* SPDX-License-Identifier: MIT */
/*
 * gssapi_echo: a Kerberos-protected exchange with libtstream-gssapi,
 * initiator and acceptor in one process over a socketpair.
 *
 * The acceptor takes its key from a keytab; the initiator uses the
 * tickets of a credential cache (kinit) and asks the KDC for a service
 * ticket. After the handshake both ends are ordinary tstreams whose bytes
 * travel as gss_wrap tokens (knc-compatible framing, docs/protocols.md).
 *
 *   cc gssapi_echo.c $(pkg-config --cflags --libs tstream-gssapi)
 *   ./a.out KEYTAB SERVICE_PRINCIPAL CCACHE
 *   e.g.   ./a.out /etc/krb5.keytab host/gw.example.com@EXAMPLE.COM \
 *                  FILE:/tmp/krb5cc_1000
 *
 * Prints the client principal the acceptor authenticated and the echo.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <tstream_gssapi.h>

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
	struct tstream_gssapi_params *acceptor, *initiator;
	struct tstream_context *plain_s, *plain_c, *gss_s = NULL, *gss_c = NULL;
	struct tevent_req *acc, *con;
	char msg[] = "hello over GSSAPI";
	char *reason = NULL;
	int err = 0, ret = 1;

	if (argc != 4 || ev == NULL) {
		fprintf(stderr, "usage: %s KEYTAB SERVICE_PRINCIPAL CCACHE\n",
			argv[0]);
		goto done;
	}
	/* Both check their credentials now, with a readable reason. */
	if (tstream_gssapi_params_acceptor(mem, argv[1], argv[2], &acceptor,
					   &reason) != 0 ||
	    tstream_gssapi_params_initiator(mem, argv[2], argv[3], NULL, NULL,
					    &initiator, &reason) != 0) {
		fprintf(stderr, "params: %s\n", reason);
		goto done;
	}
	if (tstream_unix_socketpair(mem, &plain_s, mem, &plain_c) != 0) {
		perror("socketpair");
		goto done;
	}

	acc = tstream_gssapi_accept_send(mem, ev, plain_s, acceptor);
	con = tstream_gssapi_connect_send(mem, ev, plain_c, initiator);
	if (wait_req(acc, ev) != 0 || wait_req(con, ev) != 0) {
		fprintf(stderr, "handshake timed out\n");
		goto done;
	}
	if (tstream_gssapi_connect_recv(con, &err, mem, &gss_c, &reason) != 0) {
		fprintf(stderr, "initiator: %s\n", reason);
		goto done;
	}
	if (tstream_gssapi_accept_recv(acc, &err, mem, &gss_s, &reason) != 0) {
		fprintf(stderr, "acceptor: %s\n", reason);
		goto done;
	}
	printf("%s authenticated to %s (%s)\n",
	       tstream_gssapi_client_principal(gss_s),
	       tstream_gssapi_server_principal(gss_s),
	       tstream_gssapi_mech_name(gss_s));

	if (pass(ev, gss_c, gss_s, msg, sizeof(msg)) != 0 ||
	    pass(ev, gss_s, gss_c, msg, sizeof(msg)) != 0) {
		goto done;
	}
	printf("echoed \"%s\"\n", msg);

	/* The authenticated close: the acceptor reads end of stream. */
	con = tstream_shutdown_send(mem, ev, gss_c);
	if (wait_req(con, ev) != 0 || tstream_shutdown_recv(con, &err) != 0) {
		fprintf(stderr, "shutdown: %s\n", strerror(err));
		goto done;
	}
	ret = strcmp(msg, "hello over GSSAPI") == 0 ? 0 : 1;
done:
	talloc_free(mem);
	return ret;
}
