/* SPDX-License-Identifier: MIT */
/*
 * tstream_tls session resumption: our client against our server over
 * socketpairs — tickets for TLS 1.3 and 1.2, the ticket key shared or not,
 * the client's kept session, and a client certificate across resumption.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tsocket.h>
#include "tstream_tls.h"
#include "tt.h"
#include "tt_certs.h"
#include "tt_record_layer.h"

static struct tt_certs *certs;

static const uint8_t key1[TSTREAM_TLS_TICKET_KEY_SIZE] = {1, 2, 3, 4, 5};
static const uint8_t key2[TSTREAM_TLS_TICKET_KEY_SIZE] = {9, 8, 7, 6, 5};

static struct tstream_tls_params *server(const uint8_t *ticket_key,
					 const char *client_ca)
{
	struct tstream_tls_cert_config c = {.cert_file = certs->srv_ec_crt,
					    .key_file = certs->srv_ec_key};
	struct tstream_tls_server_config cfg = {
	    .certs = &c,
	    .num_certs = 1,
	    .client_ca_file = client_ca,
	    .ticket_key = ticket_key,
	    .record_layer = tt_record_layer(),
	};
	struct tstream_tls_params *p = NULL;
	char *error = NULL;

	ck_assert_msg(tstream_tls_params_server(tt_mem, &cfg, &p, &error) == 0,
		      "server params: %s", error ? error : "?");
	return p;
}

static struct tstream_tls_params *client(bool resume,
					 const char *priority,
					 bool with_cert)
{
	struct tstream_tls_client_config cfg = {
	    .ca_file = certs->ca_crt,
	    .peer_name = "localhost",
	    .priority = priority,
	    .session_resumption = resume,
	    .cert_file = with_cert ? certs->client_crt : NULL,
	    .key_file = with_cert ? certs->client_key : NULL,
	};
	struct tstream_tls_params *p = NULL;
	char *error = NULL;

	ck_assert_msg(tstream_tls_params_client(tt_mem, &cfg, &p, &error) == 0,
		      "client params: %s", error ? error : "?");
	return p;
}

#define TLS12 "NORMAL:-VERS-ALL:+VERS-TLS1.2"
#define TLS13 "NORMAL:-VERS-ALL:+VERS-TLS1.3"

struct hs {
	struct tevent_req *req;
	bool done;
	int ret;
	int err;
	char *reason;
	struct tstream_context *tls;
};

struct conn {
	struct hs srv;
	struct hs cli;
	bool srv_resumed;
	bool cli_resumed;
	char *subject; /* the client certificate as the server saw it */
	char *fingerprint;
};

/* One byte from a to b: the client reads past the TLS 1.3 ticket. */
static void one_byte(struct tstream_context *a, struct tstream_context *b)
{
	uint8_t out = 'x';
	uint8_t in = 0;
	struct iovec wv = {.iov_base = &out, .iov_len = 1};
	struct iovec rv = {.iov_base = &in, .iov_len = 1};
	struct tevent_req *w = tstream_writev_send(tt_mem, tt_ev, a, &wv, 1);
	struct tevent_req *r = tstream_readv_send(tt_mem, tt_ev, b, &rv, 1);
	bool wdone = false;
	bool rdone = false;
	int err = 0;

	ck_assert_ptr_nonnull(w);
	ck_assert_ptr_nonnull(r);
	tevent_req_set_callback(w, tt_set_done, &wdone);
	tevent_req_set_callback(r, tt_set_done, &rdone);
	tt_wait(&wdone, 10000);
	tt_wait(&rdone, 10000);
	ck_assert_int_eq(tstream_writev_recv(w, &err), 1);
	ck_assert_int_eq(tstream_readv_recv(r, &err), 1);
	ck_assert_int_eq(in, 'x');
	talloc_free(w);
	talloc_free(r);
}

/* A handshake; on success a byte each way, and what the server saw. */
static void conn_run(struct conn *c,
		     struct tstream_tls_params *sp,
		     struct tstream_tls_params *cp)
{
	struct tstream_context *a = NULL;
	struct tstream_context *b = NULL;

	memset(c, 0, sizeof(*c));
	ck_assert_int_eq(tstream_unix_socketpair(tt_mem, &a, tt_mem, &b), 0);
	c->srv.req = tstream_tls_accept_send(tt_mem, tt_ev, a, sp);
	c->cli.req = tstream_tls_connect_send(tt_mem, tt_ev, b, cp);
	ck_assert_ptr_nonnull(c->srv.req);
	ck_assert_ptr_nonnull(c->cli.req);
	tevent_req_set_callback(c->srv.req, tt_set_done, &c->srv.done);
	tevent_req_set_callback(c->cli.req, tt_set_done, &c->cli.done);
	tt_wait(&c->srv.done, 10000);
	tt_wait(&c->cli.done, 10000);
	c->srv.ret = tstream_tls_accept_recv(c->srv.req, &c->srv.err, tt_mem,
					     &c->srv.tls, &c->srv.reason);
	c->cli.ret = tstream_tls_connect_recv(c->cli.req, &c->cli.err, tt_mem,
					      &c->cli.tls, &c->cli.reason);
	TALLOC_FREE(c->srv.req);
	TALLOC_FREE(c->cli.req);
	if (c->srv.ret == 0 && c->cli.ret == 0) {
		const char *s = tstream_tls_peer_subject(c->srv.tls);
		const char *f = tstream_tls_peer_fingerprint_sha256(c->srv.tls);

		c->srv_resumed = tstream_tls_resumed(c->srv.tls);
		c->cli_resumed = tstream_tls_resumed(c->cli.tls);
		c->subject = s != NULL ? talloc_strdup(tt_mem, s) : NULL;
		c->fingerprint = f != NULL ? talloc_strdup(tt_mem, f) : NULL;
		one_byte(c->srv.tls, c->cli.tls);
		one_byte(c->cli.tls, c->srv.tls);
	}
	TALLOC_FREE(c->srv.tls);
	TALLOC_FREE(c->cli.tls);
	TALLOC_FREE(c->srv.reason);
	TALLOC_FREE(c->cli.reason);
}

static void conn_ok(struct conn *c,
		    struct tstream_tls_params *sp,
		    struct tstream_tls_params *cp,
		    bool resumed)
{
	conn_run(c, sp, cp);
	ck_assert_msg(c->srv.ret == 0 && c->cli.ret == 0,
		      "handshake failed: server %d, client %d", c->srv.err,
		      c->cli.err);
	ck_assert_msg(c->srv_resumed == resumed,
		      "server: resumed %d, expected %d", c->srv_resumed,
		      resumed);
	ck_assert_int_eq(c->cli_resumed, c->srv_resumed);
}

static void resume_version(const char *priority)
{
	struct tstream_tls_params *sp = server(key1, NULL);
	struct tstream_tls_params *cp = client(true, priority, false);
	struct conn c;
	int i;

	conn_ok(&c, sp, cp, false);
	for (i = 0; i < 3; i++) {
		conn_ok(&c, sp, cp, true);
	}
	/* a forgotten session: one full handshake, then resumed again */
	tstream_tls_params_forget_session(cp);
	conn_ok(&c, sp, cp, false);
	conn_ok(&c, sp, cp, true);
	talloc_free(sp);
	talloc_free(cp);
}

START_TEST(resume_tls13)
{
	resume_version(TLS13);
}
END_TEST

START_TEST(resume_tls12)
{
	resume_version(TLS12);
}
END_TEST

/* Off on either side: every handshake is full. */
START_TEST(resume_off)
{
	struct tstream_tls_params *sp = server(NULL, NULL);
	struct tstream_tls_params *sp_on = server(key1, NULL);
	struct tstream_tls_params *cp = client(true, NULL, false);
	struct tstream_tls_params *cp_off = client(false, NULL, false);
	struct conn c;

	conn_ok(&c, sp, cp, false);
	conn_ok(&c, sp, cp, false);
	conn_ok(&c, sp_on, cp_off, false);
	conn_ok(&c, sp_on, cp_off, false);
	ck_assert_int_eq(tstream_tls_resumed(NULL), false);
	ck_assert_int_eq(errno, EINVAL);
	talloc_free(sp);
	talloc_free(sp_on);
	talloc_free(cp);
	talloc_free(cp_off);
}
END_TEST

/*
 * Two servers (two processes, two instances) with the same master resume
 * each other's tickets; with another master the ticket is refused and the
 * client silently makes a full handshake.
 */
START_TEST(shared_key)
{
	const char *prios[] = {TLS13, TLS12};
	size_t i;

	for (i = 0; i < 2; i++) {
		struct tstream_tls_params *a = server(key1, NULL);
		struct tstream_tls_params *b = server(key1, NULL);
		struct tstream_tls_params *other = server(key2, NULL);
		struct tstream_tls_params *cp = client(true, prios[i], false);
		struct conn c;

		conn_ok(&c, a, cp, false);
		conn_ok(&c, b, cp, true);
		conn_ok(&c, other, cp, false);
		conn_ok(&c, other, cp, true);
		conn_ok(&c, a, cp, false);
		talloc_free(a);
		talloc_free(b);
		talloc_free(other);
		talloc_free(cp);
	}
}
END_TEST

/*
 * A resumed session carries the client certificate of the full one, and
 * it is checked again against the CAs of the server that resumes it.
 */
START_TEST(mtls_resumed)
{
	const char *prios[] = {TLS13, TLS12};
	size_t i;

	for (i = 0; i < 2; i++) {
		struct tstream_tls_params *sp = server(key1, certs->ca_crt);
		struct tstream_tls_params *sp2 = server(key1, certs->ca2_crt);
		struct tstream_tls_params *cp = client(true, prios[i], true);
		struct conn full;
		struct conn c;

		conn_ok(&full, sp, cp, false);
		ck_assert_ptr_nonnull(full.subject);
		ck_assert_ptr_nonnull(full.fingerprint);
		conn_ok(&c, sp, cp, true);
		ck_assert_str_eq(c.subject, full.subject);
		ck_assert_str_eq(c.fingerprint, full.fingerprint);
		/* same key, other CA: alice's certificate no longer passes */
		conn_run(&c, sp2, cp);
		ck_assert_int_ne(c.srv.ret, 0);
		ck_assert_int_eq(c.srv.err, EACCES);
		talloc_free(sp);
		talloc_free(sp2);
		talloc_free(cp);
	}
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

int main(void)
{
	Suite *s = suite_create("tstream_tls_resume");
	int failed;
	int slow = getenv("TSGATE_VALGRIND") != NULL ? 10 : 1;

	certs = tt_certs_create(NULL);
	if (certs == NULL) {
		return 99;
	}
	suite_add_tcase(s, tc("resume_tls13", resume_tls13, 30 * slow));
	suite_add_tcase(s, tc("resume_tls12", resume_tls12, 30 * slow));
	suite_add_tcase(s, tc("resume_off", resume_off, 30 * slow));
	suite_add_tcase(s, tc("shared_key", shared_key, 30 * slow));
	suite_add_tcase(s, tc("mtls_resumed", mtls_resumed, 30 * slow));
	failed = tt_run_suite(s);
	talloc_free(certs);
	return failed;
}
