/* SPDX-License-Identifier: MIT */
/*
 * bench_gateway_gss: the Kerberos side of the gateway benchmarks
 * (tests/bench/bench_gateway.py). Credentials come from the environment
 * (KRB5_CONFIG, KRB5CCNAME for the initiator, KRB5_KTNAME for the
 * acceptor), as the tt-kdc wrapper exports them.
 *
 *   raw TARGET BYTES   one context in this process (initiator and
 *                      acceptor), then gss_wrap + gss_unwrap of BYTES in
 *                      chunks of gss_wrap_size_limit(65536), as the tunnel
 *                      cuts them; prints "SECONDS CHUNK CPU-SECONDS"
 *   ctx TARGET N       N context establishments in this process (both
 *                      ends); prints the seconds taken
 *   connect PORT TARGET N
 *                      N context establishments against a gssapi listener
 *                      on 127.0.0.1:PORT (knc framing: 4-byte length +
 *                      token), one after the other; prints the seconds
 *   plain PORT BYTES   upload BYTES over plain TCP, half-close, wait for
 *                      the peer's end; prints the seconds taken
 */
#include <arpa/inet.h>
#include <errno.h>
#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void gss_die(const char *what, OM_uint32 maj, OM_uint32 min)
{
	OM_uint32 m2, ctx = 0;
	gss_buffer_desc s;

	fprintf(stderr, "bench_gateway_gss: %s: major 0x%x", what, maj);
	do {
		gss_display_status(&m2, min, GSS_C_MECH_CODE, GSS_C_NO_OID,
				   &ctx, &s);
		fprintf(stderr, " %.*s", (int)s.length, (char *)s.value);
		gss_release_buffer(&m2, &s);
	} while (ctx != 0);
	fprintf(stderr, "\n");
	exit(1);
}

static void die(const char *what)
{
	fprintf(stderr, "bench_gateway_gss: %s: %s\n", what, strerror(errno));
	exit(1);
}

static gss_name_t import_target(const char *target)
{
	gss_buffer_desc b = {strlen(target), (void *)target};
	OM_uint32 maj, min;
	gss_name_t name;

	maj = gss_import_name(&min, &b, GSS_C_NT_HOSTBASED_SERVICE, &name);
	if (GSS_ERROR(maj)) {
		gss_die("gss_import_name", maj, min);
	}
	return name;
}

#define INIT_FLAGS                                                     \
	(GSS_C_MUTUAL_FLAG | GSS_C_SEQUENCE_FLAG | GSS_C_REPLAY_FLAG | \
	 GSS_C_CONF_FLAG | GSS_C_INTEG_FLAG)

static void establish(gss_name_t target, gss_ctx_id_t *ictx, gss_ctx_id_t *actx)
{
	gss_buffer_desc in = GSS_C_EMPTY_BUFFER, out, back;
	OM_uint32 maj, amaj, min;

	*ictx = *actx = GSS_C_NO_CONTEXT;
	for (;;) {
		maj = gss_init_sec_context(&min, GSS_C_NO_CREDENTIAL, ictx,
					   target, (gss_OID)gss_mech_krb5,
					   INIT_FLAGS, 0, NULL, &in, NULL, &out,
					   NULL, NULL);
		if (in.value != NULL) {
			gss_release_buffer(&min, &in);
		}
		if (GSS_ERROR(maj)) {
			gss_die("gss_init_sec_context", maj, min);
		}
		if (out.length == 0) {
			break;
		}
		amaj = gss_accept_sec_context(&min, actx, GSS_C_NO_CREDENTIAL,
					      &out, NULL, NULL, NULL, &back,
					      NULL, NULL, NULL);
		gss_release_buffer(&min, &out);
		if (GSS_ERROR(amaj)) {
			gss_die("gss_accept_sec_context", amaj, min);
		}
		in = back;
		if (maj == GSS_S_COMPLETE && back.length == 0) {
			break;
		}
		if (back.length == 0 && !(maj & GSS_S_CONTINUE_NEEDED)) {
			break;
		}
	}
}

static int do_raw(const char *target_s, long long bytes)
{
	gss_name_t target = import_target(target_s);
	gss_ctx_id_t ictx, actx;
	OM_uint32 maj, min, limit = 0;
	char *buf;
	long long left = bytes;
	double t0, c0;

	establish(target, &ictx, &actx);
	maj = gss_wrap_size_limit(&min, ictx, 1, GSS_C_QOP_DEFAULT, 65536,
				  &limit);
	if (GSS_ERROR(maj)) {
		gss_die("gss_wrap_size_limit", maj, min);
	}
	buf = malloc(limit);
	memset(buf, 'x', limit);
	t0 = now();
	c0 = cpu_now();
	while (left > 0) {
		size_t n = left < limit ? (size_t)left : limit;
		gss_buffer_desc in = {n, buf}, wrapped, out;
		int conf = 0;

		maj = gss_wrap(&min, ictx, 1, GSS_C_QOP_DEFAULT, &in, &conf,
			       &wrapped);
		if (GSS_ERROR(maj) || !conf) {
			gss_die("gss_wrap", maj, min);
		}
		maj = gss_unwrap(&min, actx, &wrapped, &out, &conf, NULL);
		if (maj != GSS_S_COMPLETE || !conf || out.length != n) {
			gss_die("gss_unwrap", maj, min);
		}
		gss_release_buffer(&min, &wrapped);
		gss_release_buffer(&min, &out);
		left -= n;
	}
	printf("%.6f %u %.6f\n", now() - t0, limit, cpu_now() - c0);
	gss_delete_sec_context(&min, &ictx, NULL);
	gss_delete_sec_context(&min, &actx, NULL);
	gss_release_name(&min, &target);
	free(buf);
	return 0;
}

static int do_ctx(const char *target_s, int n)
{
	gss_name_t target = import_target(target_s);
	double t0 = now();
	OM_uint32 min;
	int i;

	for (i = 0; i < n; i++) {
		gss_ctx_id_t ictx, actx;
		establish(target, &ictx, &actx);
		gss_delete_sec_context(&min, &ictx, NULL);
		gss_delete_sec_context(&min, &actx, NULL);
	}
	printf("%.6f\n", now() - t0);
	gss_release_name(&min, &target);
	return 0;
}

static int tcp_connect(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(port)};
	int fd, one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd == -1) {
		die("socket");
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		die("connect");
	}
	return fd;
}

static void read_full(int fd, void *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r <= 0) {
			die("read (peer closed?)");
		}
		p = (char *)p + r;
		n -= r;
	}
}

static void write_full(int fd, const void *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w <= 0) {
			die("write");
		}
		p = (const char *)p + w;
		n -= w;
	}
}

static void send_token(int fd, const gss_buffer_desc *t)
{
	uint32_t len = htonl(t->length);
	write_full(fd, &len, 4);
	write_full(fd, t->value, t->length);
}

static int do_connect(int port, const char *target_s, int n)
{
	gss_name_t target = import_target(target_s);
	double t0 = now();
	OM_uint32 maj, min;
	int i;

	for (i = 0; i < n; i++) {
		gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
		gss_buffer_desc in = GSS_C_EMPTY_BUFFER, out;
		char *inbuf = NULL;
		int fd = tcp_connect(port);
		char c;

		for (;;) {
			maj = gss_init_sec_context(
			    &min, GSS_C_NO_CREDENTIAL, &ctx, target,
			    (gss_OID)gss_mech_krb5, INIT_FLAGS, 0, NULL, &in,
			    NULL, &out, NULL, NULL);
			free(inbuf);
			inbuf = NULL;
			if (GSS_ERROR(maj)) {
				gss_die("gss_init_sec_context", maj, min);
			}
			if (out.length > 0) {
				send_token(fd, &out);
			}
			gss_release_buffer(&min, &out);
			if (!(maj & GSS_S_CONTINUE_NEEDED)) {
				break;
			}
			uint32_t len;
			read_full(fd, &len, 4);
			len = ntohl(len);
			inbuf = malloc(len);
			read_full(fd, inbuf, len);
			in.length = len;
			in.value = inbuf;
		}
		/* close: the acceptor has finished its side */
		shutdown(fd, SHUT_WR);
		while (read(fd, &c, 1) > 0) {
		}
		close(fd);
		gss_delete_sec_context(&min, &ctx, NULL);
	}
	printf("%.6f\n", now() - t0);
	gss_release_name(&min, &target);
	return 0;
}

static int do_plain(int port, long long bytes)
{
	static char buf[1 << 18];
	long long left = bytes;
	int fd = tcp_connect(port);
	double t0 = now();
	char c;

	memset(buf, 'x', sizeof(buf));
	while (left > 0) {
		size_t n =
		    left < (long long)sizeof(buf) ? (size_t)left : sizeof(buf);
		ssize_t w = write(fd, buf, n);
		if (w <= 0) {
			die("write");
		}
		left -= w;
	}
	shutdown(fd, SHUT_WR);
	while (read(fd, &c, 1) > 0) {
	}
	printf("%.6f\n", now() - t0);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "raw") == 0) {
		return do_raw(argv[2], atoll(argv[3]));
	}
	if (argc == 4 && strcmp(argv[1], "ctx") == 0) {
		return do_ctx(argv[2], atoi(argv[3]));
	}
	if (argc == 5 && strcmp(argv[1], "connect") == 0) {
		return do_connect(atoi(argv[2]), argv[3], atoi(argv[4]));
	}
	if (argc == 4 && strcmp(argv[1], "plain") == 0) {
		return do_plain(atoi(argv[2]), atoll(argv[3]));
	}
	fprintf(stderr,
		"usage: %s raw TARGET BYTES | ctx TARGET N | "
		"connect PORT TARGET N | plain PORT BYTES\n",
		argv[0]);
	return 2;
}
