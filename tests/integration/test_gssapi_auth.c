/* SPDX-License-Identifier: MIT */
/*
 * tstream_gssapi_auth_send/recv (tls-gssapi's token exchange) against a
 * real MIT KDC: over a plain TCP pair standing in for the TLS channel,
 * with channel bindings on both sides, then the data on the same stream
 * untouched. Bindings that differ, an initiator without bindings (a knc
 * client), and missing bindings are refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tsocket.h"
#include "tstream_gssapi.h"
#include "tt.h"
#include "tt_kdc.h"
#include "tt_pair.h"

static TALLOC_CTX *kdc_mem;
static struct tt_kdc *kdc;

static void kdc_setup(void)
{
	kdc_mem = talloc_new(NULL);
	kdc = tt_kdc_start(kdc_mem);
	if (kdc != NULL) {
		tt_kdc_setenv(kdc);
	}
}

static void kdc_teardown(void)
{
	TALLOC_FREE(kdc_mem);
	kdc = NULL;
}

static struct tstream_context *bsd_stream(int fd)
{
	struct tstream_context *s = NULL;
	int flags = fcntl(fd, F_GETFL);

	ck_assert_int_eq(fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, fd, &s), 0);
	return s;
}

static struct tstream_gssapi_params *acceptor(void)
{
	struct tstream_gssapi_params *p = NULL;
	char *reason = NULL;

	ck_assert_ptr_nonnull(kdc);
	ck_assert_msg(tstream_gssapi_params_acceptor(
			  tt_mem, kdc->service_keytab, NULL, &p, &reason) == 0,
		      "%s", reason);
	return p;
}

static struct tstream_gssapi_params *initiator(const char *ccache)
{
	struct tstream_gssapi_params *p = NULL;
	char *reason = NULL;

	ck_assert_msg(tstream_gssapi_params_initiator(tt_mem, "host@localhost",
						      ccache, NULL, NULL, &p,
						      &reason) == 0,
		      "%s", reason);
	return p;
}

struct side {
	bool done;
	bool plain_handshake; /* tstream_gssapi_connect_send, no bindings */
	int ret;
	int err;
	char *reason;
	struct tstream_context *identity;
};

static void side_done(struct tevent_req *req)
{
	struct side *s = tevent_req_callback_data_void(req);

	if (s->plain_handshake) {
		s->ret = tstream_gssapi_connect_recv(req, &s->err, tt_mem,
						     &s->identity, &s->reason);
	} else {
		s->ret = tstream_gssapi_auth_recv(req, &s->err, tt_mem,
						  &s->identity, &s->reason);
	}
	talloc_free(req);
	s->done = true;
}

static void side_start(struct side *s,
		       struct tstream_context *stream,
		       struct tstream_gssapi_params *p,
		       const char *cb)
{
	struct tevent_req *req;

	if (s->plain_handshake) {
		req = tstream_gssapi_connect_send(tt_mem, tt_ev, stream, p);
	} else {
		req = tstream_gssapi_auth_send(tt_mem, tt_ev, stream, p,
					       (const uint8_t *)cb,
					       cb != NULL ? strlen(cb) : 0);
	}
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, side_done, s);
}

struct pair {
	int fds[2];
	struct tstream_context *cli_stream;
	struct tstream_context *srv_stream;
	struct side cli;
	struct side srv;
};

static void run_pair(struct pair *p,
		     const char *cli_cb,
		     const char *srv_cb,
		     const char *ccache)
{
	tt_tcp_fds(p->fds);
	p->cli_stream = bsd_stream(p->fds[0]);
	p->srv_stream = bsd_stream(p->fds[1]);
	side_start(&p->srv, p->srv_stream, acceptor(), srv_cb);
	side_start(&p->cli, p->cli_stream, initiator(ccache), cli_cb);
	tt_wait(&p->srv.done, 10000);
	/* a refused initiator waits for a reply that never comes */
	if (p->srv.ret != 0) {
		TALLOC_FREE(p->srv_stream);
	}
	tt_wait(&p->cli.done, 10000);
}

START_TEST(test_bound_then_plain_data)
{
	struct pair p = {0};
	const char *cb = "0123456789abcdef0123456789abcdef";
	char buf[6] = {0};
	struct iovec iov = {buf, 5};
	struct tevent_req *req;
	int err = 0;

	run_pair(&p, cb, cb, kdc->alice_ccache);
	ck_assert_msg(p.srv.ret == 0, "acceptor: %s", p.srv.reason);
	ck_assert_msg(p.cli.ret == 0, "initiator: %s", p.cli.reason);
	ck_assert_str_eq(tstream_gssapi_client_principal(p.srv.identity),
			 "alice@TSGATE.TEST");
	ck_assert_str_eq(tstream_gssapi_client_principal(p.cli.identity),
			 "alice@TSGATE.TEST");
	ck_assert_str_eq(tstream_gssapi_mech_name(p.srv.identity), "krb5");
	/* the identity carries no data */
	ck_assert_int_eq(tstream_pending_bytes(p.srv.identity), -1);
	ck_assert_int_eq(errno, ENOTCONN);
	ck_assert_ptr_nonnull(tstream_gssapi_error_reason(p.srv.identity));

	/* the channel goes on carrying the data, unwrapped */
	memcpy(buf, "hello", 5);
	req = tstream_writev_send(tt_mem, tt_ev, p.cli_stream, &iov, 1);
	ck_assert_ptr_nonnull(req);
	tt_wait_for(!tevent_req_is_in_progress(req), TT_DEADLINE_MS);
	ck_assert_int_eq(tstream_writev_recv(req, &err), 5);
	talloc_free(req);
	memset(buf, 0, sizeof(buf));
	req = tstream_readv_send(tt_mem, tt_ev, p.srv_stream, &iov, 1);
	ck_assert_ptr_nonnull(req);
	tt_wait_for(!tevent_req_is_in_progress(req), TT_DEADLINE_MS);
	ck_assert_int_eq(tstream_readv_recv(req, &err), 5);
	talloc_free(req);
	ck_assert_str_eq(buf, "hello");

	/* the identity outlives the channel and is freed on its own */
	TALLOC_FREE(p.cli_stream);
	TALLOC_FREE(p.srv_stream);
	ck_assert_str_eq(tstream_gssapi_client_principal(p.srv.identity),
			 "alice@TSGATE.TEST");
	TALLOC_FREE(p.srv.identity);
	TALLOC_FREE(p.cli.identity);
}
END_TEST

START_TEST(test_different_bindings_refused)
{
	struct pair p = {0};

	run_pair(&p, "0123456789abcdef0123456789abcdef",
		 "0123456789abcdef0123456789abcdeX", kdc->alice_ccache);
	ck_assert_int_eq(p.srv.ret, -1);
	ck_assert_int_eq(p.srv.err, EACCES);
	ck_assert_msg(strstr(p.srv.reason, "hannel binding") != NULL, "%s",
		      p.srv.reason);
	ck_assert_int_eq(p.cli.ret, -1);
	ck_assert_ptr_null(p.srv.identity);
}
END_TEST

/*
 * A knc client (no bindings in its authenticator) passes MIT's own check
 * when the acceptor has bindings; the acceptor must still refuse it.
 */
START_TEST(test_initiator_without_bindings_refused)
{
	struct pair p = {0};

	p.cli.plain_handshake = true;
	run_pair(&p, NULL, "0123456789abcdef0123456789abcdef",
		 kdc->alice_ccache);
	ck_assert_int_eq(p.srv.ret, -1);
	ck_assert_int_eq(p.srv.err, EACCES);
	ck_assert_msg(strstr(p.srv.reason, "channel bindings") != NULL, "%s",
		      p.srv.reason);
	ck_assert_int_eq(p.cli.ret, -1);
}
END_TEST

START_TEST(test_missing_bindings_einval)
{
	int fds[2];
	struct side s = {0};

	tt_tcp_fds(fds);
	side_start(&s, bsd_stream(fds[1]), acceptor(), NULL);
	tt_wait(&s.done, TT_DEADLINE_MS);
	ck_assert_int_eq(s.ret, -1);
	ck_assert_int_eq(s.err, EINVAL);
	close(fds[0]);
}
END_TEST

static Suite *gssapi_auth_suite(void)
{
	Suite *s = suite_create("tstream_gssapi_auth");
	TCase *tc = tcase_create("bindings");

	tcase_add_unchecked_fixture(tc, kdc_setup, kdc_teardown);
	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_bound_then_plain_data);
	tcase_add_test(tc, test_different_bindings_refused);
	tcase_add_test(tc, test_initiator_without_bindings_refused);
	tcase_add_test(tc, test_missing_bindings_einval);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	if (!tt_kdc_available()) {
		fprintf(stderr, "krb5kdc/kadmin.local/kinit not installed\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	return tt_run_suite(gssapi_auth_suite());
}
