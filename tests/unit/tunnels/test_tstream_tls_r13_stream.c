/* SPDX-License-Identifier: MIT */
/*
 * Hostile records against a server tstream_tls on our own TLS 1.3 record
 * layer, end to end: a forked GnuTLS client completes the handshake,
 * sends one good record, then a record it seals itself with its traffic
 * secret (from GnuTLS's keylog hook) and whatever inside it. The server's
 * reader gets the good data, then EPROTO with the alert named; the client
 * gets exactly that fatal alert and nothing else.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include <tsocket.h>
#include "tstream_tls.h"
#include "tstream_tls_record13.h"
#include "tt.h"
#include "tt_certs.h"

static struct tt_certs *certs;

enum hostile_case {
	H_BAD_TAG,
	H_UNKNOWN_TYPE,
	H_PADDING_ONLY,
	H_TICKET,
	H_KU_FLOOD,
	H_OVERSIZED,
	H_CASES
};

static const uint8_t want_alert[H_CASES] = {
    [H_BAD_TAG] = GNUTLS_A_BAD_RECORD_MAC,
    [H_UNKNOWN_TYPE] = GNUTLS_A_UNEXPECTED_MESSAGE,
    [H_PADDING_ONLY] = GNUTLS_A_UNEXPECTED_MESSAGE,
    [H_TICKET] = GNUTLS_A_UNEXPECTED_MESSAGE,
    [H_KU_FLOOD] = GNUTLS_A_UNEXPECTED_MESSAGE,
    [H_OVERSIZED] = GNUTLS_A_RECORD_OVERFLOW,
};

struct client_secret {
	uint8_t s[TLS13_SECRET_MAX];
	unsigned len;
};

static int client_keylog(gnutls_session_t session,
			 const char *label,
			 const gnutls_datum_t *secret)
{
	struct client_secret *cs = gnutls_session_get_ptr(session);

	if (strcmp(label, "CLIENT_TRAFFIC_SECRET_0") == 0 &&
	    secret->size <= sizeof(cs->s)) {
		memcpy(cs->s, secret->data, secret->size);
		cs->len = secret->size;
	}
	return 0;
}

static int write_full(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w <= 0) {
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Seal one record as the client would, any inner plaintext. */
static int evil_send(int fd,
		     struct tls13_dir *d,
		     uint8_t type,
		     const uint8_t *content,
		     size_t len)
{
	static uint8_t rec[TLS13_RECORD_MAX];
	ssize_t n;

	memcpy(rec + TLS13_HEADER_SIZE, content, len);
	n = tls13_seal(d, type, rec, len);
	if (n < 0) {
		return -1;
	}
	return write_full(fd, rec, (size_t)n);
}

static int hostile_client(int fd, enum hostile_case c)
{
	gnutls_certificate_credentials_t cred;
	gnutls_session_t session;
	struct client_secret cs = {.len = 0};
	struct tls13_dir d;
	uint8_t buf[64];
	ssize_t n;
	int ret;
	int i;

	if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
	    gnutls_certificate_set_x509_trust_file(cred, certs->ca_crt,
						   GNUTLS_X509_FMT_PEM) <= 0 ||
	    gnutls_init(&session, GNUTLS_CLIENT) < 0 ||
	    gnutls_set_default_priority(session) < 0 ||
	    gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred) < 0) {
		return 10;
	}
	gnutls_session_set_ptr(session, &cs);
	gnutls_session_set_keylog_function(session, client_keylog);
	gnutls_session_set_verify_cert(session, "localhost", 0);
	gnutls_transport_set_int(session, fd);
	do {
		ret = gnutls_handshake(session);
	} while (ret < 0 && gnutls_error_is_fatal(ret) == 0);
	if (ret < 0 || gnutls_protocol_get_version(session) != GNUTLS_TLS1_3 ||
	    cs.len == 0) {
		return 11;
	}
	if (gnutls_record_send(session, "hello", 5) != 5) {
		return 12;
	}
	if (tls13_dir_init(&d, gnutls_cipher_get(session), cs.s, cs.len) != 0) {
		return 13;
	}
	d.seq = 1; /* GnuTLS sealed "hello" with 0 */
	switch (c) {
	case H_BAD_TAG: {
		static uint8_t rec[TLS13_RECORD_MAX];

		memcpy(rec + TLS13_HEADER_SIZE, "evil", 4);
		n = tls13_seal(&d, TLS13_CT_APPLICATION_DATA, rec, 4);
		rec[n - 1] ^= 0x40;
		ret = write_full(fd, rec, (size_t)n);
		break;
	}
	case H_UNKNOWN_TYPE:
		ret = evil_send(fd, &d, 99, (const uint8_t *)"x", 1);
		break;
	case H_PADDING_ONLY:
		ret = evil_send(fd, &d, 0, (const uint8_t *)"\0\0\0", 3);
		break;
	case H_TICKET:
		ret = evil_send(fd, &d, TLS13_CT_HANDSHAKE,
				(const uint8_t *)"\x04\0\0\0", 4);
		break;
	case H_KU_FLOOD:
		ret = 0;
		for (i = 0; i <= TLS13_PEER_KU_MAX && ret == 0; i++) {
			ret = evil_send(fd, &d, TLS13_CT_HANDSHAKE,
					(const uint8_t *)"\x18\0\0\x01\0", 5);
			if (ret == 0 && tls13_dir_update(&d) != 0) {
				ret = -1;
			}
		}
		break;
	case H_OVERSIZED:
		ret =
		    write_full(fd, (const uint8_t *)"\x17\x03\x03\x41\x01", 5);
		break;
	default:
		ret = -1;
	}
	tls13_dir_wipe(&d);
	if (ret != 0) {
		return 14;
	}
	/* the server's answer: exactly the fatal alert, nothing before it */
	n = gnutls_record_recv(session, buf, sizeof(buf));
	if (n != GNUTLS_E_FATAL_ALERT_RECEIVED) {
		fprintf(stderr, "client: %s\n", gnutls_strerror((int)n));
		return 15;
	}
	if (gnutls_alert_get(session) != want_alert[c]) {
		fprintf(stderr, "client: got alert %s\n",
			gnutls_alert_get_name(gnutls_alert_get(session)));
		return 16;
	}
	gnutls_deinit(session);
	gnutls_certificate_free_credentials(cred);
	return 0;
}

struct rd {
	bool done;
	int ret;
	int err;
};

static void rd_done(struct tevent_req *req)
{
	struct rd *r = tevent_req_callback_data_void(req);

	r->ret = tstream_readv_recv(req, &r->err);
	talloc_free(req);
	r->done = true;
}

static int read_some(struct tstream_context *s,
		     uint8_t *buf,
		     size_t len,
		     int *err)
{
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct tevent_req *req;
	struct rd r = {.done = false};

	req = tstream_readv_send(tt_mem, tt_ev, s, &iov, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, rd_done, &r);
	tt_wait(&r.done, 10000);
	*err = r.err;
	return r.ret;
}

/*
 * A GnuTLS client in a child process (client(fd, arg) is its exit code)
 * and our server stream on the other end of a socketpair, its handshake
 * done and its records handed over to our record layer.
 */
static struct tstream_context *accept_from_child(struct tstream_tls_params **sp,
						 int (*client)(int fd, int arg),
						 int arg,
						 pid_t *pid)
{
	struct tstream_tls_cert_config cc = {.cert_file = certs->srv_ec_crt,
					     .key_file = certs->srv_ec_key};
	struct tstream_tls_server_config cfg = {
	    .certs = &cc,
	    .num_certs = 1,
	    .record_layer = TSTREAM_TLS_RECORD_TSGATE,
	};
	struct tstream_context *plain = NULL;
	struct tstream_context *tls = NULL;
	struct tevent_req *req;
	char *error = NULL;
	char *reason = NULL;
	bool done = false;
	int err = 0;
	int sv[2];

	ck_assert_int_eq(tstream_tls_params_server(tt_mem, &cfg, sp, &error),
			 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	*pid = fork();
	ck_assert_int_ge(*pid, 0);
	if (*pid == 0) {
		close(sv[0]);
		_exit(client(sv[1], arg));
	}
	close(sv[1]);
	ck_assert_int_eq(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, sv[0], &plain), 0);
	req = tstream_tls_accept_send(tt_mem, tt_ev, plain, *sp);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tt_set_done, &done);
	tt_wait(&done, TT_DEADLINE_MS);
	ck_assert_msg(
	    tstream_tls_accept_recv(req, &err, tt_mem, &tls, &reason) == 0,
	    "accept: %s", reason != NULL ? reason : strerror(err));
	talloc_free(req);
	ck_assert_int_eq(tstream_tls_record_layer_of(tls),
			 TSTREAM_TLS_RECORD_TSGATE);
	return tls;
}

static int hostile_child(int fd, int arg)
{
	return hostile_client(fd, (enum hostile_case)arg);
}

START_TEST(hostile_record_ends_stream)
{
	enum hostile_case c = (enum hostile_case)_i;
	struct tstream_tls_params *sp = NULL;
	struct tstream_context *tls;
	const char *why;
	uint8_t buf[16];
	int status;
	int err = 0;
	pid_t pid;

	tls = accept_from_child(&sp, hostile_child, _i, &pid);

	/* the good record first, then the end with the alert's reason */
	ck_assert_int_eq(read_some(tls, buf, 5, &err), 5);
	ck_assert_mem_eq(buf, "hello", 5);
	ck_assert_int_eq(read_some(tls, buf, 1, &err), -1);
	ck_assert_int_eq(err, EPROTO);
	why = tstream_tls_error_reason(tls);
	ck_assert_ptr_nonnull(why);
	ck_assert_msg(strstr(why, gnutls_alert_get_name(want_alert[c])) != NULL,
		      "%s", why);
	/* sticky */
	ck_assert_int_eq(read_some(tls, buf, 1, &err), -1);
	ck_assert_int_eq(err, EPROTO);

	status = tt_wait_exit(pid, TT_DEADLINE_MS);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "case %d: GnuTLS client: status 0x%x", _i, status);
	talloc_free(tls);
	talloc_free(sp);
}
END_TEST

/*
 * A client whose Finished and first record leave in one write: its push
 * sends the ClientHello, then holds everything until the handshake is
 * done and "hello" is queued behind the Finished.
 */
struct corked {
	int fd;
	unsigned pushes;
	uint8_t buf[4096];
	size_t len;
	bool fail;
};

static ssize_t corked_push(gnutls_transport_ptr_t ptr,
			   const void *data,
			   size_t len)
{
	struct corked *c = ptr;

	if (c->pushes++ == 0) {
		return write(c->fd, data, len);
	}
	if (c->len + len > sizeof(c->buf)) {
		c->fail = true;
		return -1;
	}
	memcpy(c->buf + c->len, data, len);
	c->len += len;
	return (ssize_t)len;
}

static ssize_t corked_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	struct corked *c = ptr;

	return read(c->fd, data, len);
}

static int corked_client(int fd)
{
	gnutls_certificate_credentials_t cred;
	gnutls_session_t session;
	struct corked c = {.fd = fd};
	uint8_t buf[16];
	ssize_t n;
	int ret;

	if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
	    gnutls_certificate_set_x509_trust_file(cred, certs->ca_crt,
						   GNUTLS_X509_FMT_PEM) <= 0 ||
	    gnutls_init(&session, GNUTLS_CLIENT) < 0 ||
	    gnutls_set_default_priority(session) < 0 ||
	    gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred) < 0) {
		return 10;
	}
	gnutls_session_set_verify_cert(session, "localhost", 0);
	gnutls_transport_set_ptr(session, &c);
	gnutls_transport_set_push_function(session, corked_push);
	gnutls_transport_set_pull_function(session, corked_pull);
	do {
		ret = gnutls_handshake(session);
	} while (ret < 0 && gnutls_error_is_fatal(ret) == 0);
	if (ret < 0 || gnutls_protocol_get_version(session) != GNUTLS_TLS1_3) {
		return 11;
	}
	if (gnutls_record_send(session, "hello", 5) != 5 || c.fail ||
	    c.len == 0) {
		return 12;
	}
	/* Finished and "hello" in one segment */
	if (write_full(fd, c.buf, c.len) != 0) {
		return 13;
	}
	c.pushes = 0; /* from here on, write through */
	c.len = 0;
	do {
		n = gnutls_record_recv(session, buf, sizeof(buf));
	} while (n < 0 && gnutls_error_is_fatal((int)n) == 0);
	if (n != 5 || memcmp(buf, "world", 5) != 0 || c.len != 0) {
		return 14;
	}
	gnutls_deinit(session);
	gnutls_certificate_free_credentials(cred);
	return 0;
}

static void write_some(struct tstream_context *s, const char *data, size_t len)
{
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	struct tevent_req *req;
	bool done = false;
	int err = 0;

	req = tstream_writev_send(tt_mem, tt_ev, s, &iov, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tt_set_done, &done);
	tt_wait(&done, 10000);
	ck_assert_int_eq(tstream_writev_recv(req, &err), (int)len);
	talloc_free(req);
}

/*
 * The client's first record arrives with its Finished: GnuTLS reads the
 * Finished, the record stays in our buffer and our record layer opens it
 * after the hand-over.
 */
static int corked_child(int fd, int arg)
{
	return corked_client(fd);
}

START_TEST(data_with_finished)
{
	struct tstream_tls_params *sp = NULL;
	struct tstream_context *tls;
	uint8_t buf[16];
	int status;
	int err = 0;
	pid_t pid;

	tls = accept_from_child(&sp, corked_child, 0, &pid);
	ck_assert_int_eq(read_some(tls, buf, 5, &err), 5);
	ck_assert_mem_eq(buf, "hello", 5);
	write_some(tls, "world", 5);
	status = tt_wait_exit(pid, TT_DEADLINE_MS);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "GnuTLS client: status 0x%x", status);
	talloc_free(tls);
	talloc_free(sp);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tstream_tls_r13_stream");
	TCase *t;
	int slow = getenv("TSGATE_VALGRIND") != NULL ? 10 : 1;

	certs = tt_certs_create(NULL);
	if (certs == NULL) {
		return 99;
	}
	t = tt_tcase(s, "hostile", 30 * slow);
	tcase_add_loop_test(t, hostile_record_ends_stream, 0, H_CASES);
	t = tt_tcase(s, "hand_over", 30 * slow);
	tcase_add_test(t, data_with_finished);
	return tt_run_suite(s);
}
