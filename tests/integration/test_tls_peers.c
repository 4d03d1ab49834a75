/* SPDX-License-Identifier: MIT */
/*
 * tstream_tls against real peers: our server against gnutls-cli and
 * openssl s_client, our client against gnutls-serv and openssl s_server.
 * Peers are spawned with tt_spawn() and stopped by pid; certificates are
 * made at start-up by tt_certs (certtool).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tsocket.h>
#include "tstream_tls.h"
#include "tt.h"
#include "tt_certs.h"
#include "tt_record_layer.h"

static struct tt_certs *certs;

static size_t BIG = 2 * 1024 * 1024 + 7;

/*
 * Byte patterns and files
 */

/* Pseudo-random bytes without NUL. */
static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *buf = talloc_size(tt_mem, len);
	uint32_t v = seed * 2654435761u + 7;
	size_t i;

	for (i = 0; i < len; i++) {
		v = v * 1103515245u + 12345u;
		buf[i] = (uint8_t)(v >> 16);
		/* gnutls-serv --echo treats what it got as a C string */
		if (buf[i] == 0) {
			buf[i] = 0x5a;
		}
	}
	return buf;
}

static char *write_file(const char *name, const uint8_t *buf, size_t len)
{
	char *path = talloc_asprintf(tt_mem, "%s/%s", certs->dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
	return path;
}

static bool file_equals(const char *path, const uint8_t *buf, size_t len)
{
	uint8_t *got = talloc_size(tt_mem, len + 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t have = 0;
	ssize_t n;
	bool same;

	ck_assert_int_ge(fd, 0);
	while (have <= len && (n = read(fd, got + have, len + 1 - have)) > 0) {
		have += (size_t)n;
	}
	close(fd);
	same = have == len && memcmp(got, buf, len) == 0;
	if (!same) {
		char *cmd = talloc_asprintf(tt_mem, "cat '%s.err' >&2", path);

		fprintf(stderr, "%s: %zu bytes, expected %zu\n", path, have,
			len);
		if (system(cmd) != 0) {
			fprintf(stderr, "(no stderr file)\n");
		}
		talloc_free(cmd);
	}
	talloc_free(got);
	return same;
}

/*
 * Event-loop helpers
 */

static void run_for(unsigned ms)
{
	tt_run_for(tt_ev, ms);
}

/* Wait until a child exits (running the event loop meanwhile). */
static int wait_child(pid_t pid, unsigned ms)
{
	unsigned waited = 0;
	int status;

	for (;;) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			return status;
		}
		if (waited >= ms) {
			return -1;
		}
		run_for(20);
		waited += 20;
	}
}

/* Non-blocking pipe I/O driven by tevent: feed a buffer or collect one. */
struct pipe_io {
	int fd;
	uint8_t *buf;
	size_t len;
	size_t off;
	bool write;
	bool done;
	struct tevent_fd *fde;
};

static void pipe_io_handler(struct tevent_context *ev,
			    struct tevent_fd *fde,
			    uint16_t flags,
			    void *private_data)
{
	struct pipe_io *p = private_data;
	ssize_t n;

	if (p->write) {
		n = write(p->fd, p->buf + p->off, p->len - p->off);
	} else {
		n = read(p->fd, p->buf + p->off, p->len - p->off);
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	if (n <= 0) {
		p->done = true;
		TALLOC_FREE(p->fde);
		return;
	}
	p->off += (size_t)n;
	if (p->off == p->len) {
		p->done = true;
		TALLOC_FREE(p->fde);
	}
}

static struct pipe_io *pipe_io_start(int fd,
				     uint8_t *buf,
				     size_t len,
				     bool write)
{
	struct pipe_io *p = talloc_zero(tt_mem, struct pipe_io);

	ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	p->fd = fd;
	p->buf = buf;
	p->len = len;
	p->write = write;
	p->fde = tevent_add_fd(tt_ev, p, fd,
			       write ? TEVENT_FD_WRITE : TEVENT_FD_READ,
			       pipe_io_handler, p);
	ck_assert_ptr_nonnull(p->fde);
	return p;
}

/*
 * TCP: a listener that accepts one connection, and a connect that
 * retries until the peer listens (no probe connections: openssl
 * s_server -naccept 1 would count them).
 */

struct listener {
	int fd;
	uint16_t port;
	int accepted;
	bool done;
	struct tevent_fd *fde;
};

static void listener_handler(struct tevent_context *ev,
			     struct tevent_fd *fde,
			     uint16_t flags,
			     void *private_data)
{
	struct listener *l = private_data;

	l->accepted = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (l->accepted >= 0) {
		l->done = true;
		TALLOC_FREE(l->fde);
	}
}

static int listener_destructor(struct listener *l)
{
	if (l->fd >= 0) {
		close(l->fd);
	}
	return 0;
}

static struct listener *listen_local(void)
{
	struct listener *l = talloc_zero(tt_mem, struct listener);
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);

	l->accepted = -1;
	l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	ck_assert_int_ge(l->fd, 0);
	talloc_set_destructor(l, listener_destructor);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(l->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(l->fd, 4), 0);
	ck_assert_int_eq(getsockname(l->fd, (struct sockaddr *)&sin, &len), 0);
	l->port = ntohs(sin.sin_port);
	l->fde =
	    tevent_add_fd(tt_ev, l, l->fd, TEVENT_FD_READ, listener_handler, l);
	ck_assert_ptr_nonnull(l->fde);
	return l;
}

static struct tstream_context *accept_one(struct listener *l)
{
	struct tstream_context *s = NULL;

	tt_wait(&l->done, 10000);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, l->accepted, &s),
			 0);
	l->accepted = -1;
	return s;
}

static struct tstream_context *connect_retry(uint16_t port)
{
	struct tsocket_address *local = NULL;
	struct tsocket_address *remote = NULL;
	struct tstream_context *s = NULL;
	int i;

	ck_assert_int_eq(
	    tsocket_address_inet_from_strings(tt_mem, "ip", NULL, 0, &local),
	    0);
	ck_assert_int_eq(tsocket_address_inet_from_strings(
			     tt_mem, "ip", "127.0.0.1", port, &remote),
			 0);
	/* up to 30 s: a loaded machine starts the peer program slowly */
	for (i = 0; i < 750 && s == NULL; i++) {
		struct tevent_req *req;
		bool done = false;
		int err = 0;

		req =
		    tstream_inet_tcp_connect_send(tt_mem, tt_ev, local, remote);
		ck_assert_ptr_nonnull(req);
		tevent_req_set_callback(req, tt_set_done, &done);
		tt_wait(&done, TT_DEADLINE_MS);
		if (tstream_inet_tcp_connect_recv(req, &err, tt_mem, &s) != 0) {
			ck_assert_int_eq(err, ECONNREFUSED);
			s = NULL;
			run_for(40);
		}
		talloc_free(req);
	}
	ck_assert_ptr_nonnull(s);
	talloc_free(local);
	talloc_free(remote);
	return s;
}

/*
 * TLS helpers
 */

struct hs {
	struct tevent_req *req;
	bool done;
	int ret;
	int err;
	char *reason;
	struct tstream_context *tls;
};

static void hs_run(struct hs *h,
		   struct tstream_context *plain,
		   struct tstream_tls_params *params,
		   bool server)
{
	memset(h, 0, sizeof(*h));
	if (server) {
		h->req = tstream_tls_accept_send(tt_mem, tt_ev, plain, params);
	} else {
		h->req = tstream_tls_connect_send(tt_mem, tt_ev, plain, params);
	}
	ck_assert_ptr_nonnull(h->req);
	ck_assert(tevent_req_set_endtime(h->req, tt_ev,
					 tevent_timeval_current_ofs(10, 0)));
	tevent_req_set_callback(h->req, tt_set_done, &h->done);
	tt_wait(&h->done, 15000);
	if (server) {
		h->ret = tstream_tls_accept_recv(h->req, &h->err, tt_mem,
						 &h->tls, &h->reason);
	} else {
		h->ret = tstream_tls_connect_recv(h->req, &h->err, tt_mem,
						  &h->tls, &h->reason);
	}
	TALLOC_FREE(h->req);
}

static struct tstream_tls_params *server_params(const char *crt,
						const char *key,
						const char *client_ca,
						const char *const *alpn)
{
	struct tstream_tls_cert_config c = {.cert_file = crt, .key_file = key};
	struct tstream_tls_server_config cfg = {
	    .certs = &c,
	    .num_certs = 1,
	    .client_ca_file = client_ca,
	    .alpn = alpn,
	    .record_layer = tt_record_layer(),
	};
	struct tstream_tls_params *p = NULL;
	char *error = NULL;

	ck_assert_msg(tstream_tls_params_server(tt_mem, &cfg, &p, &error) == 0,
		      "%s", error);
	return p;
}

static struct tstream_tls_params *client_params(const char *ca,
						const char *name,
						const char *const *alpn,
						const char *priority)
{
	struct tstream_tls_client_config cfg = {
	    .ca_file = ca,
	    .peer_name = name,
	    .alpn = alpn,
	    .priority = priority,
	};
	struct tstream_tls_params *p = NULL;
	char *error = NULL;

	ck_assert_msg(tstream_tls_params_client(tt_mem, &cfg, &p, &error) == 0,
		      "%s", error);
	return p;
}

/* One readv or writev of len bytes, run to its end. */
struct io {
	struct iovec iov;
	bool done;
	int ret;
	int err;
	bool write;
};

static void io_done(struct tevent_req *req)
{
	struct io *io = tevent_req_callback_data(req, struct io);

	io->ret = io->write ? tstream_writev_recv(req, &io->err)
			    : tstream_readv_recv(req, &io->err);
	talloc_free(req);
	io->done = true;
}

static struct io *io_start(struct tstream_context *s,
			   uint8_t *buf,
			   size_t len,
			   bool write)
{
	struct io *io = talloc_zero(tt_mem, struct io);
	struct tevent_req *req;

	io->iov = (struct iovec){buf, len};
	io->write = write;
	req = write ? tstream_writev_send(io, tt_ev, s, &io->iov, 1)
		    : tstream_readv_send(io, tt_ev, s, &io->iov, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, io_done, io);
	return io;
}

static void io_finish(struct io *io, int expect_ret)
{
	tt_wait(&io->done, 30000);
	ck_assert_msg(io->ret == expect_ret, "ret %d errno %d (%s)", io->ret,
		      io->err, strerror(io->err));
	talloc_free(io);
}

static int read_error(struct tstream_context *s)
{
	uint8_t byte;
	struct io *io = io_start(s, &byte, 1, false);
	int err;

	tt_wait(&io->done, 10000);
	ck_assert_int_eq(io->ret, -1);
	err = io->err;
	talloc_free(io);
	return err;
}

static void disconnect(struct tstream_context *s)
{
	struct tevent_req *req = tstream_disconnect_send(tt_mem, tt_ev, s);
	bool done = false;
	int err = 0;

	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tt_set_done, &done);
	tt_wait(&done, 10000);
	ck_assert_int_eq(tstream_disconnect_recv(req, &err), 0);
	talloc_free(req);
}

static void shutdown_write(struct tstream_context *s)
{
	struct tevent_req *req = tstream_shutdown_send(tt_mem, tt_ev, s);
	bool done = false;
	int err = 0;

	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tt_set_done, &done);
	tt_wait(&done, 10000);
	ck_assert_int_eq(tstream_shutdown_recv(req, &err), 0);
	talloc_free(req);
}

/* Echo len bytes in chunks (read, then write back), then disconnect. */
static void echo(struct tstream_context *s, size_t len)
{
	uint8_t *buf = talloc_size(tt_mem, 65536);
	size_t off = 0;

	while (off < len) {
		size_t n = len - off > 65536 ? 65536 : len - off;

		io_finish(io_start(s, buf, n, false), (int)n);
		io_finish(io_start(s, buf, n, true), (int)n);
		off += n;
	}
	talloc_free(buf);
	disconnect(s);
}

/*
 * Our server against gnutls-cli: data through the client's stdin and
 * stdout pipes, echoed by our server.
 */

static void server_vs_gnutls_cli(const char *crt,
				 const char *key,
				 const char *priority,
				 const char *version,
				 const char *alpn_offer)
{
	const char *alpn[] = {"h2", "http/1.1", NULL};
	struct tstream_tls_params *sp = server_params(crt, key, NULL, alpn);
	struct listener *l = listen_local();
	char *port = talloc_asprintf(tt_mem, "%u", l->port);
	char *logfile =
	    talloc_asprintf(tt_mem, "%s/gnutls-cli.log", certs->dir);
	const char *argv[] = {
	    "gnutls-cli",  "--x509cafile",
	    certs->ca_crt, "-p",
	    port,          "--logfile",
	    logfile,       "--priority",
	    priority,      alpn_offer != NULL ? "--alpn" : "localhost",
	    alpn_offer,    alpn_offer != NULL ? "localhost" : NULL,
	    NULL};
	uint8_t *data = pattern(BIG, 11);
	uint8_t *back = talloc_zero_size(tt_mem, BIG);
	struct pipe_io *feed;
	struct pipe_io *collect;
	int in_fd = -1;
	int out_fd = -1;
	struct hs srv;
	pid_t pid;

	pid = tt_spawn(argv, NULL, &in_fd, &out_fd, true);
	ck_assert_int_gt(pid, 0);
	hs_run(&srv, accept_one(l), sp, true);
	ck_assert_msg(srv.ret == 0, "%s", srv.reason);
	ck_assert_str_eq(tstream_tls_version(srv.tls), version);
	ck_assert_str_eq(tstream_tls_sni(srv.tls), "localhost");
	if (alpn_offer != NULL) {
		ck_assert_str_eq(tstream_tls_alpn(srv.tls), "http/1.1");
	}

	feed = pipe_io_start(in_fd, data, BIG, true);
	collect = pipe_io_start(out_fd, back, BIG, false);
	echo(srv.tls, BIG);
	tt_wait(&feed->done, 30000);
	tt_wait(&collect->done, 30000);
	ck_assert_uint_eq(collect->off, BIG);
	ck_assert(memcmp(data, back, BIG) == 0);

	close(in_fd);
	close(out_fd);
	tt_stop(pid, 2000);
	talloc_free(feed);
	talloc_free(collect);
	talloc_free(srv.tls);
	talloc_free(sp);
	talloc_free(l);
}

START_TEST(server_gnutls_cli_tls13_ecdsa)
{
	server_vs_gnutls_cli(certs->srv_ec_crt, certs->srv_ec_key, "NORMAL",
			     "TLS1.3", "http/1.1");
}
END_TEST

START_TEST(server_gnutls_cli_tls12_rsa)
{
	server_vs_gnutls_cli(certs->srv_rsa_crt, certs->srv_rsa_key,
			     "NORMAL:-VERS-ALL:+VERS-TLS1.2", "TLS1.2", NULL);
}
END_TEST

/*
 * Our server against openssl s_client: stdin and stdout are files (with
 * -quiet, s_client keeps the connection at the end of its input).
 */

static pid_t spawn_with_files(const char *const argv[],
			      const char *in,
			      const char *out)
{
	char *cmd = talloc_strdup(tt_mem, "exec");
	const char *sh[] = {"sh", "-c", NULL, NULL};
	pid_t pid;
	size_t i;

	for (i = 0; argv[i] != NULL; i++) {
		cmd = talloc_asprintf_append(cmd, " '%s'", argv[i]);
	}
	cmd = talloc_asprintf_append(cmd, " <'%s' >'%s' 2>'%s.err'", in, out,
				     out);
	sh[2] = cmd;
	pid = tt_spawn(sh, NULL, NULL, NULL, true);
	talloc_free(cmd);
	return pid;
}

static void server_vs_s_client(const char *version_opt,
			       const char *version,
			       bool mtls)
{
	const char *alpn[] = {"h2", "http/1.1", NULL};
	struct tstream_tls_params *sp =
	    server_params(certs->srv_ec_crt, certs->srv_ec_key,
			  mtls ? certs->ca_crt : NULL, alpn);
	struct listener *l = listen_local();
	char *addr = talloc_asprintf(tt_mem, "127.0.0.1:%u", l->port);
	uint8_t *data = pattern(BIG, 12);
	char *in = write_file("s_client.in", data, BIG);
	char *out = talloc_asprintf(tt_mem, "%s/s_client.out", certs->dir);
	const char *argv[] = {"openssl",
			      "s_client",
			      "-quiet",
			      "-connect",
			      addr,
			      "-servername",
			      "localhost",
			      "-CAfile",
			      certs->ca_crt,
			      "-verify_return_error",
			      "-alpn",
			      "h2",
			      version_opt,
			      mtls ? "-cert" : NULL,
			      certs->client_crt,
			      "-key",
			      certs->client_key,
			      NULL};
	struct hs srv;
	pid_t pid;
	int status;

	pid = spawn_with_files(argv, in, out);
	ck_assert_int_gt(pid, 0);
	hs_run(&srv, accept_one(l), sp, true);
	ck_assert_msg(srv.ret == 0, "%s", srv.reason);
	ck_assert_str_eq(tstream_tls_version(srv.tls), version);
	ck_assert_str_eq(tstream_tls_alpn(srv.tls), "h2");
	ck_assert_str_eq(tstream_tls_sni(srv.tls), "localhost");
	if (mtls) {
		ck_assert_int_eq(tstream_tls_peer_verify_result(srv.tls, NULL),
				 TSTREAM_TLS_PEER_VALID);
		ck_assert_str_eq(tstream_tls_peer_common_name(srv.tls),
				 "alice");
	}
	echo(srv.tls, BIG);
	/* s_client ends when our close_notify arrives */
	status = wait_child(pid, 20000);
	if (status == -1) {
		tt_stop(pid, 1000);
	}
	ck_assert(file_equals(out, data, BIG));
	talloc_free(srv.tls);
	talloc_free(sp);
	talloc_free(l);
}

START_TEST(server_s_client_tls13)
{
	server_vs_s_client("-tls1_3", "TLS1.3", false);
}
END_TEST

START_TEST(server_s_client_tls12_mtls)
{
	server_vs_s_client("-tls1_2", "TLS1.2", true);
}
END_TEST

/* s_client without a certificate against a server that requires one */
START_TEST(server_s_client_mtls_missing)
{
	struct tstream_tls_params *sp = server_params(
	    certs->srv_ec_crt, certs->srv_ec_key, certs->ca_crt, NULL);
	struct listener *l = listen_local();
	char *addr = talloc_asprintf(tt_mem, "127.0.0.1:%u", l->port);
	char *in = write_file("empty.in", (const uint8_t *)"x", 1);
	char *out = talloc_asprintf(tt_mem, "%s/s_client2.out", certs->dir);
	const char *argv[] = {"openssl", "s_client", "-quiet",      "-connect",
			      addr,      "-CAfile",  certs->ca_crt, NULL};
	struct hs srv;
	pid_t pid;

	pid = spawn_with_files(argv, in, out);
	hs_run(&srv, accept_one(l), sp, true);
	ck_assert_int_eq(srv.ret, -1);
	ck_assert_int_eq(srv.err, EACCES);
	ck_assert_msg(strstr(srv.reason, "required") != NULL, "%s", srv.reason);
	tt_stop(pid, 2000);
	talloc_free(srv.reason);
	talloc_free(sp);
	talloc_free(l);
}
END_TEST

/*
 * Our client against gnutls-serv --echo.
 */

static pid_t spawn_gnutls_serv(uint16_t port,
			       const char *crt,
			       const char *key,
			       const char *alpn)
{
	char *p = talloc_asprintf(tt_mem, "%u", port);
	const char *argv[] = {"gnutls-serv",
			      "--echo",
			      "-q",
			      "-p",
			      p,
			      "--x509certfile",
			      crt,
			      "--x509keyfile",
			      key,
			      alpn != NULL ? "--alpn" : NULL,
			      alpn,
			      NULL};
	pid_t pid = tt_spawn(argv, NULL, NULL, NULL, true);

	ck_assert_int_gt(pid, 0);
	return pid;
}

static void client_vs_gnutls_serv(const char *crt,
				  const char *key,
				  const char *priority,
				  const char *version)
{
	const char *alpn[] = {"h2", NULL};
	uint16_t port = tt_free_port();
	pid_t pid = spawn_gnutls_serv(port, crt, key, "h2");
	struct tstream_tls_params *cp =
	    client_params(certs->ca_crt, "localhost", alpn, priority);
	uint8_t *data = pattern(BIG, 13);
	uint8_t *back = talloc_zero_size(tt_mem, BIG);
	struct io *w;

	/* gnutls-serv --echo answers line by line */
	data[BIG - 1] = '\n';
	struct io *r;
	struct hs cli;

	hs_run(&cli, connect_retry(port), cp, false);
	ck_assert_msg(cli.ret == 0, "%s", cli.reason);
	ck_assert_str_eq(tstream_tls_version(cli.tls), version);
	ck_assert_str_eq(tstream_tls_alpn(cli.tls), "h2");
	ck_assert_int_eq(tstream_tls_peer_verify_result(cli.tls, NULL),
			 TSTREAM_TLS_PEER_VALID);

	/* write and read at once: the echo comes back while we send */
	w = io_start(cli.tls, data, BIG, true);
	r = io_start(cli.tls, back, BIG, false);
	io_finish(w, BIG);
	io_finish(r, BIG);
	ck_assert(memcmp(data, back, BIG) == 0);
	/* half-close: our close_notify, the server's answer, then EOF */
	shutdown_write(cli.tls);
	ck_assert_int_eq(read_error(cli.tls), EPIPE);
	disconnect(cli.tls);

	tt_stop(pid, 2000);
	talloc_free(cli.tls);
	talloc_free(cp);
}

START_TEST(client_gnutls_serv_tls13_ecdsa)
{
	client_vs_gnutls_serv(certs->srv_ec_crt, certs->srv_ec_key, NULL,
			      "TLS1.3");
}
END_TEST

START_TEST(client_gnutls_serv_tls12_rsa)
{
	client_vs_gnutls_serv(certs->srv_rsa_crt, certs->srv_rsa_key,
			      "NORMAL:-VERS-ALL:+VERS-TLS1.2", "TLS1.2");
}
END_TEST

/* Verification failures against a real server. */
static void client_fails(const char *crt,
			 const char *key,
			 const char *name,
			 const char *why)
{
	uint16_t port = tt_free_port();
	pid_t pid = spawn_gnutls_serv(port, crt, key, NULL);
	struct tstream_tls_params *cp =
	    client_params(certs->ca_crt, name, NULL, NULL);
	struct hs cli;

	hs_run(&cli, connect_retry(port), cp, false);
	ck_assert_int_eq(cli.ret, -1);
	ck_assert_int_eq(cli.err, EACCES);
	ck_assert_msg(strstr(cli.reason, why) != NULL, "%s", cli.reason);
	tt_stop(pid, 2000);
	talloc_free(cli.reason);
	talloc_free(cp);
}

START_TEST(client_verify_failures)
{
	client_fails(certs->expired_crt, certs->expired_key, "localhost",
		     "expired");
	client_fails(certs->other_srv_crt, certs->other_srv_key, "localhost",
		     "issuer");
	client_fails(certs->srv_ec_crt, certs->srv_ec_key, "wrong.test",
		     "does not match");
}
END_TEST

/*
 * Our client against openssl s_server: what we send comes out of its
 * stdout pipe, what we feed into its stdin pipe comes to us. s_server
 * ends the session at the end of its stdin, so that stays open until
 * everything arrived both ways.
 */

static void client_vs_s_server(const char *version_opt, const char *version)
{
	uint16_t port = tt_free_port();
	char *p = talloc_asprintf(tt_mem, "%u", port);
	uint8_t *to_us = pattern(BIG, 14);
	uint8_t *from_us = pattern(BIG, 15);
	uint8_t *back = talloc_zero_size(tt_mem, BIG);
	uint8_t *got = talloc_zero_size(tt_mem, BIG);
	const char *argv[] = {"openssl",
			      "s_server",
			      "-quiet",
			      "-naccept",
			      "1",
			      "-accept",
			      p,
			      "-cert",
			      certs->srv_rsa_crt,
			      "-key",
			      certs->srv_rsa_key,
			      "-alpn",
			      "http/1.1",
			      version_opt,
			      NULL};
	const char *alpn[] = {"h2", "http/1.1", NULL};
	struct tstream_tls_params *cp =
	    client_params(certs->ca_crt, "localhost", alpn, NULL);
	struct pipe_io *feed;
	struct pipe_io *collect;
	int in_fd = -1;
	int out_fd = -1;
	struct io *w;
	struct io *r;
	struct hs cli;
	pid_t pid;
	int status;

	pid = tt_spawn(argv, NULL, &in_fd, &out_fd, true);
	ck_assert_int_gt(pid, 0);
	hs_run(&cli, connect_retry(port), cp, false);
	ck_assert_msg(cli.ret == 0, "%s", cli.reason);
	ck_assert_str_eq(tstream_tls_version(cli.tls), version);
	ck_assert_str_eq(tstream_tls_alpn(cli.tls), "http/1.1");

	feed = pipe_io_start(in_fd, to_us, BIG, true);
	collect = pipe_io_start(out_fd, got, BIG, false);
	w = io_start(cli.tls, from_us, BIG, true);
	r = io_start(cli.tls, back, BIG, false);
	io_finish(w, BIG);
	io_finish(r, BIG);
	ck_assert(memcmp(to_us, back, BIG) == 0);
	tt_wait(&collect->done, 30000);
	ck_assert_uint_eq(collect->off, BIG);
	ck_assert(memcmp(from_us, got, BIG) == 0);

	/* the end of its stdin makes s_server close: close_notify to us */
	close(in_fd);
	ck_assert_int_eq(read_error(cli.tls), EPIPE);
	disconnect(cli.tls);
	status = wait_child(pid, 10000);
	if (status == -1) {
		tt_stop(pid, 1000);
	}
	close(out_fd);
	talloc_free(feed);
	talloc_free(collect);
	talloc_free(cli.tls);
	talloc_free(cp);
}

START_TEST(client_s_server_tls13)
{
	client_vs_s_server("-tls1_3", "TLS1.3");
}
END_TEST

START_TEST(client_s_server_tls12)
{
	client_vs_s_server("-tls1_2", "TLS1.2");
}
END_TEST

/* A peer that sends close_notify (gnutls-cli at the end of its stdin). */
START_TEST(server_sees_close_notify)
{
	struct tstream_tls_params *sp =
	    server_params(certs->srv_ec_crt, certs->srv_ec_key, NULL, NULL);
	struct listener *l = listen_local();
	char *port = talloc_asprintf(tt_mem, "%u", l->port);
	char *logfile =
	    talloc_asprintf(tt_mem, "%s/gnutls-cli2.log", certs->dir);
	const char *argv[] = {"gnutls-cli", "--x509cafile", certs->ca_crt,
			      "-p",         port,           "--logfile",
			      logfile,      "localhost",    NULL};
	uint8_t buf[5];
	int in_fd = -1;
	int out_fd = -1;
	struct hs srv;
	pid_t pid;

	pid = tt_spawn(argv, NULL, &in_fd, &out_fd, true);
	hs_run(&srv, accept_one(l), sp, true);
	ck_assert_msg(srv.ret == 0, "%s", srv.reason);
	ck_assert_int_eq(write(in_fd, "hello", 5), 5);
	io_finish(io_start(srv.tls, buf, 5, false), 5);
	ck_assert(memcmp(buf, "hello", 5) == 0);
	close(in_fd);
	ck_assert_int_eq(read_error(srv.tls), EPIPE);
	close(out_fd);
	tt_stop(pid, 2000);
	talloc_free(srv.tls);
	talloc_free(sp);
	talloc_free(l);
}
END_TEST

/* gnutls-cli asks for a name by SNI and verifies what it gets. */
START_TEST(server_sni_gnutls_cli)
{
	struct tstream_tls_cert_config c[] = {
	    {.cert_file = certs->srv_ec_crt, .key_file = certs->srv_ec_key},
	    {.sni = "a.test",
	     .cert_file = certs->a_crt,
	     .key_file = certs->a_key},
	    {.sni = "*.b.test",
	     .cert_file = certs->b_crt,
	     .key_file = certs->b_key},
	};
	struct tstream_tls_server_config cfg = {
	    .certs = c, .num_certs = 3, .record_layer = tt_record_layer()};
	const char *names[] = {"x.b.test", "a.test", "localhost"};
	struct tstream_tls_params *sp = NULL;
	char *error = NULL;
	size_t i;

	ck_assert_msg(tstream_tls_params_server(tt_mem, &cfg, &sp, &error) == 0,
		      "%s", error);
	for (i = 0; i < 3; i++) {
		struct listener *l = listen_local();
		char *port = talloc_asprintf(tt_mem, "%u", l->port);
		char *logfile =
		    talloc_asprintf(tt_mem, "%s/gnutls-cli3.log", certs->dir);
		const char *argv[] = {"gnutls-cli",  "--x509cafile",
				      certs->ca_crt, "-p",
				      port,          "--logfile",
				      logfile,       "--sni-hostname",
				      names[i],      "--verify-hostname",
				      names[i],      "127.0.0.1",
				      NULL};
		uint8_t buf[5];
		int in_fd = -1;
		int out_fd = -1;
		struct hs srv;
		pid_t pid;

		pid = tt_spawn(argv, NULL, &in_fd, &out_fd, true);
		hs_run(&srv, accept_one(l), sp, true);
		ck_assert_msg(srv.ret == 0, "%s", srv.reason);
		ck_assert_str_eq(tstream_tls_sni(srv.tls), names[i]);
		/* data flows only if gnutls-cli accepted the certificate */
		ck_assert_int_eq(write(in_fd, "ping\n", 5), 5);
		io_finish(io_start(srv.tls, buf, 5, false), 5);
		ck_assert(memcmp(buf, "ping\n", 5) == 0);
		close(in_fd);
		close(out_fd);
		tt_stop(pid, 2000);
		talloc_free(srv.tls);
		talloc_free(l);
	}
	talloc_free(sp);
}
END_TEST

/*
 * TLS 1.3 KeyUpdate from openssl s_client (its "K" command): our server
 * answers it inside readv and the data keeps flowing both ways.
 */
START_TEST(server_key_update)
{
	struct tstream_tls_params *sp =
	    server_params(certs->srv_ec_crt, certs->srv_ec_key, NULL, NULL);
	struct listener *l = listen_local();
	char *addr = talloc_asprintf(tt_mem, "127.0.0.1:%u", l->port);
	const char *argv[] = {
	    "openssl",     "s_client",    "-connect",  addr,      "-CAfile",
	    certs->ca_crt, "-servername", "localhost", "-tls1_3", NULL};
	uint8_t *out = talloc_zero_size(tt_mem, 65536);
	const char marker[] = "pong-from-tsgate\n";
	struct pipe_io *collect;
	uint8_t buf[5];
	int in_fd = -1;
	int out_fd = -1;
	struct hs srv;
	unsigned waited;
	pid_t pid;

	pid = tt_spawn(argv, NULL, &in_fd, &out_fd, true);
	hs_run(&srv, accept_one(l), sp, true);
	ck_assert_msg(srv.ret == 0, "%s", srv.reason);
	collect = pipe_io_start(out_fd, out, 65535, false);

	/* two KeyUpdates (one line each, s_client eats a command line) */
	ck_assert_int_eq(write(in_fd, "K\n", 2), 2);
	run_for(200);
	ck_assert_int_eq(write(in_fd, "k\n", 2), 2);
	run_for(200);
	ck_assert_int_eq(write(in_fd, "ping\n", 5), 5);
	io_finish(io_start(srv.tls, buf, 5, false), 5);
	/* the command lines were not sent as data: they were KeyUpdates */
	ck_assert(memcmp(buf, "ping\n", 5) == 0);

	/* the keys we answered with are the ones s_client decrypts with */
	io_finish(
	    io_start(srv.tls, (uint8_t *)marker, sizeof(marker) - 1, true),
	    sizeof(marker) - 1);
	for (waited = 0; waited < 10000; waited += 50) {
		if (memmem(out, collect->off, marker, sizeof(marker) - 1) !=
		    NULL) {
			break;
		}
		run_for(50);
	}
	ck_assert_msg(memmem(out, collect->off, marker, sizeof(marker) - 1) !=
			  NULL,
		      "s_client did not print our data");

	/* end of its stdin: s_client closes */
	close(in_fd);
	ck_assert_int_eq(read_error(srv.tls), EPIPE);
	tt_stop(pid, 2000);
	close(out_fd);
	talloc_free(collect);
	talloc_free(srv.tls);
	talloc_free(sp);
	talloc_free(l);
}
END_TEST

/* TLS 1.3 KeyUpdate from openssl s_server ("K" command) to our client. */
START_TEST(client_key_update)
{
	uint16_t port = tt_free_port();
	char *p = talloc_asprintf(tt_mem, "%u", port);
	const char *argv[] = {
	    "openssl", "s_server", "-naccept",        "1",    "-accept",
	    p,         "-cert",    certs->srv_ec_crt, "-key", certs->srv_ec_key,
	    "-tls1_3", NULL};
	struct tstream_tls_params *cp =
	    client_params(certs->ca_crt, "localhost", NULL, NULL);
	uint8_t *out = talloc_zero_size(tt_mem, 65536);
	const char marker[] = "from-tsgate-client\n";
	struct pipe_io *collect;
	uint8_t buf[6];
	int in_fd = -1;
	int out_fd = -1;
	struct hs cli;
	unsigned waited;
	pid_t pid;

	pid = tt_spawn(argv, NULL, &in_fd, &out_fd, true);
	ck_assert_int_gt(pid, 0);
	collect = pipe_io_start(out_fd, out, 65535, false);
	hs_run(&cli, connect_retry(port), cp, false);
	ck_assert_msg(cli.ret == 0, "%s", cli.reason);
	run_for(200);

	ck_assert_int_eq(write(in_fd, "K\n", 2), 2);
	run_for(200);
	ck_assert_int_eq(write(in_fd, "k\n", 2), 2);
	run_for(200);
	ck_assert_int_eq(write(in_fd, "hello\n", 6), 6);
	io_finish(io_start(cli.tls, buf, 6, false), 6);
	/* the command lines were KeyUpdates, not data */
	ck_assert(memcmp(buf, "hello\n", 6) == 0);

	io_finish(
	    io_start(cli.tls, (uint8_t *)marker, sizeof(marker) - 1, true),
	    sizeof(marker) - 1);
	for (waited = 0; waited < 10000; waited += 50) {
		if (memmem(out, collect->off, marker, sizeof(marker) - 1) !=
		    NULL) {
			break;
		}
		run_for(50);
	}
	ck_assert_msg(memmem(out, collect->off, marker, sizeof(marker) - 1) !=
			  NULL,
		      "s_server did not print our data");
	disconnect(cli.tls);
	close(in_fd);
	tt_stop(pid, 2000);
	close(out_fd);
	talloc_free(collect);
	talloc_free(cli.tls);
	talloc_free(cp);
}
END_TEST

/*
 * Channel bindings checked by another implementation: openssl s_client
 * exports the "EXPORTER-Channel-Binding" keying material (RFC 9266
 * tls-exporter) and prints it; our server must compute the same bytes.
 */
START_TEST(server_tls_exporter_s_client)
{
	struct tstream_tls_params *sp =
	    server_params(certs->srv_ec_crt, certs->srv_ec_key, NULL, NULL);
	struct listener *l = listen_local();
	char *addr = talloc_asprintf(tt_mem, "127.0.0.1:%u", l->port);
	const char *argv[] = {"openssl",
			      "s_client",
			      "-connect",
			      addr,
			      "-CAfile",
			      certs->ca_crt,
			      "-servername",
			      "localhost",
			      "-tls1_3",
			      "-keymatexport",
			      "EXPORTER-Channel-Binding",
			      "-keymatexportlen",
			      "32",
			      NULL};
	uint8_t *out = talloc_zero_size(tt_mem, 65536);
	const char *tag = "Keying material: ";
	struct pipe_io *collect;
	uint8_t *cb = NULL;
	size_t cb_len = 0;
	char hex[65];
	char *found = NULL;
	int in_fd = -1;
	int out_fd = -1;
	struct hs srv;
	unsigned waited;
	size_t i;
	pid_t pid;

	pid = tt_spawn(argv, NULL, &in_fd, &out_fd, true);
	hs_run(&srv, accept_one(l), sp, true);
	ck_assert_msg(srv.ret == 0, "%s", srv.reason);
	ck_assert_int_eq(tstream_tls_channel_binding(srv.tls,
						     TSTREAM_TLS_CB_EXPORTER,
						     tt_mem, &cb, &cb_len),
			 0);
	ck_assert_uint_eq(cb_len, 32);
	for (i = 0; i < 32; i++) {
		snprintf(hex + 2 * i, 3, "%02X", cb[i]);
	}

	collect = pipe_io_start(out_fd, out, 65535, false);
	for (waited = 0; waited < 10000 && found == NULL; waited += 50) {
		run_for(50);
		found = memmem(out, collect->off, tag, strlen(tag));
		if (found != NULL &&
		    (size_t)(found - (char *)out) + strlen(tag) + 64 >
			collect->off) {
			found = NULL; /* not all of it yet */
		}
	}
	ck_assert_msg(found != NULL, "no keying material printed: %.*s",
		      (int)collect->off, out);
	ck_assert_msg(strncmp(found + strlen(tag), hex, 64) == 0,
		      "s_client %.64s, we %s", found + strlen(tag), hex);

	close(in_fd);
	ck_assert_int_eq(read_error(srv.tls), EPIPE);
	tt_stop(pid, 2000);
	close(out_fd);
	talloc_free(collect);
	talloc_free(cb);
	talloc_free(srv.tls);
	talloc_free(sp);
	talloc_free(l);
}
END_TEST

static TCase *tc(const char *name, const TTest *test, int timeout)
{
	TCase *t = tcase_create(name);

	tcase_add_checked_fixture(t, tt_setup, tt_teardown);
	tcase_set_timeout(t, timeout);
	_tcase_add_test(t, test, 0, 0, 0, 1);
	return t;
}

static bool have(const char *prog)
{
	const char *argv[] = {"sh", "-c", NULL, NULL};
	char cmd[128];
	pid_t pid;
	int status;

	snprintf(cmd, sizeof(cmd), "command -v %s", prog);
	argv[2] = cmd;
	pid = tt_spawn(argv, NULL, NULL, NULL, true);
	status = tt_wait_exit(pid, TT_DEADLINE_MS);
	return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(void)
{
	Suite *s = suite_create("tstream_tls_peers");
	int failed;

	if (!have("gnutls-cli") || !have("gnutls-serv") || !have("openssl") ||
	    !have("certtool")) {
		fprintf(stderr, "gnutls-bin or openssl missing: skipped\n");
		return 77;
	}
	/* TLS_BIG=n: bytes per transfer, to narrow a failure down */
	if (getenv("TLS_BIG") != NULL) {
		BIG = strtoul(getenv("TLS_BIG"), NULL, 10);
	}
	/* made before tt_run_suite() starts counting talloc blocks */
	certs = tt_certs_create(NULL);
	if (certs == NULL) {
		return 99;
	}
	suite_add_tcase(
	    s, tc("srv_gnutls_cli_13", server_gnutls_cli_tls13_ecdsa, 60));
	suite_add_tcase(
	    s, tc("srv_gnutls_cli_12", server_gnutls_cli_tls12_rsa, 60));
	suite_add_tcase(s, tc("srv_s_client_13", server_s_client_tls13, 60));
	suite_add_tcase(
	    s, tc("srv_s_client_12_mtls", server_s_client_tls12_mtls, 60));
	suite_add_tcase(s, tc("srv_s_client_mtls_missing",
			      server_s_client_mtls_missing, 60));
	suite_add_tcase(s,
			tc("srv_close_notify", server_sees_close_notify, 60));
	suite_add_tcase(s, tc("srv_sni", server_sni_gnutls_cli, 60));
	suite_add_tcase(s, tc("srv_key_update", server_key_update, 60));
	suite_add_tcase(s, tc("cli_key_update", client_key_update, 60));
	suite_add_tcase(s,
			tc("srv_exporter", server_tls_exporter_s_client, 60));
	suite_add_tcase(
	    s, tc("cli_gnutls_serv_13", client_gnutls_serv_tls13_ecdsa, 60));
	suite_add_tcase(
	    s, tc("cli_gnutls_serv_12", client_gnutls_serv_tls12_rsa, 60));
	suite_add_tcase(s, tc("cli_verify", client_verify_failures, 60));
	suite_add_tcase(s, tc("cli_s_server_13", client_s_server_tls13, 60));
	suite_add_tcase(s, tc("cli_s_server_12", client_s_server_tls12, 60));

	failed = tt_run_suite(s);
	talloc_free(certs);
	return failed;
}
