/* SPDX-License-Identifier: MIT */
/*
 * What an idle TLS connection of the gateway holds of ours: the real
 * connection code (gateway/datapath/conn.c) accepts a TCP connection, a
 * tstream_tls client in the same event loop handshakes and sends one
 * byte, the connection relays it to a unix backend and waits. Its talloc
 * tree (GnuTLS's own heap is not in it) is bounded here so a chunk kept
 * per connection cannot come back unnoticed: each costs ~0.1 KiB of PSS
 * per connection (docs/performance.md, "Idle memory against 10 KiB").
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tsocket.h>

#include "backend.h"
#include "backend_pool.h"
#include "config.h"
#include "config_tunnels.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "ticket_keys.h"
#include "tstream_tls.h"
#include "tt.h"
#include "tt_certs.h"
#include "tt_pair.h"

static struct tt_certs *certs;

#define NCONN 2

struct rig {
	char *dir;
	int backend_lfd;
	struct tevent_fd *backend_lfde;
	/* the backend's accepted connections and what they read in all */
	int backend_fds[NCONN];
	struct tevent_fd *backend_fdes[NCONN];
	size_t num_backend;
	size_t backend_bytes;
	struct tsgate_config *cfg;
	struct tsgate_conn_listener l;
	struct tsgate_pool *pool;
	struct tsgate_conns *conns;
	struct tstream_tls_params *client_params;
	/* the TLS clients */
	struct tstream_context *clients[NCONN];
	size_t num_clients;
	bool client_done;
	int client_ret;
};

/* The backend: accepts connections and counts the bytes they read. */
static void backend_readable(struct tevent_context *ev,
			     struct tevent_fd *fde,
			     uint16_t flags,
			     void *private_data)
{
	struct rig *r = private_data;
	char buf[64];
	ssize_t n;
	size_t i;

	(void)ev;
	(void)flags;
	for (i = 0; i < r->num_backend; i++) {
		if (r->backend_fdes[i] != fde) {
			continue;
		}
		n = recv(r->backend_fds[i], buf, sizeof(buf), 0);
		if (n > 0) {
			r->backend_bytes += (size_t)n;
		}
	}
}

static void backend_accept(struct tevent_context *ev,
			   struct tevent_fd *fde,
			   uint16_t flags,
			   void *private_data)
{
	struct rig *r = private_data;
	int fd;

	(void)fde;
	(void)flags;
	if (r->num_backend == NCONN) {
		return;
	}
	fd = accept4(r->backend_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		return;
	}
	r->backend_fds[r->num_backend] = fd;
	r->backend_fdes[r->num_backend] =
	    tevent_add_fd(ev, tt_mem, fd, TEVENT_FD_READ, backend_readable, r);
	ck_assert_ptr_nonnull(r->backend_fdes[r->num_backend]);
	r->num_backend++;
}

static void rig_config(struct rig *r)
{
	struct tsgate_config_errors *errors = NULL;
	char *sock = talloc_asprintf(tt_mem, "%s/backend.sock", r->dir);
	char *yaml =
	    talloc_asprintf(tt_mem,
			    "listeners:\n"
			    "  - name: idle\n"
			    "    listen: \"tcp://127.0.0.1:1\"\n"
			    "    accept: tls\n"
			    "    tls:\n"
			    "      cert: %s\n"
			    "      key: %s\n"
			    "    routes:\n"
			    "      - name: r\n"
			    "        backend: \"unix:%s\"\n",
			    certs->srv_ec_crt, certs->srv_ec_key, sock);
	int ret;

	r->backend_lfd = tt_listen_unix(sock, 16);
	ck_assert_int_ge(r->backend_lfd, 0);
	r->backend_lfde = tevent_add_fd(tt_ev, tt_mem, r->backend_lfd,
					TEVENT_FD_READ, backend_accept, r);
	ck_assert_ptr_nonnull(r->backend_lfde);
	ret = tsgate_config_load_buffer(tt_mem, "idle.yaml", r->dir,
					(const uint8_t *)yaml, strlen(yaml), 0,
					&r->cfg, &errors);
	ck_assert_msg(ret == 0, "config: %d", ret);
}

static void rig_listener(struct rig *r)
{
	struct tsgate_config_listener *lc = &r->cfg->listeners[0];
	struct tsgate_metrics *m = tsgate_metrics_new(tt_mem, "test", NULL);
	char *error = NULL;
	char *reason = NULL;

	/* session tickets on, as the daemon runs: they must cost nothing */
	struct tsgate_ticket_secret *secret =
	    tsgate_ticket_secret_random(tt_mem);

	r->l.cfg = lc;
	ck_assert_ptr_nonnull(secret);
	ck_assert_int_eq(tsgate_config_tls_server_params(tt_mem, lc->tls,
							 lc->name, secret,
							 &r->l.tls, &error),
			 0);
	r->l.backends = talloc_zero_array(tt_mem, struct tsgate_backend *, 1);
	r->pool = tsgate_pool_new(tt_mem, tt_ev, NULL);
	ck_assert_ptr_nonnull(r->pool);
	ck_assert_int_eq(tsgate_backend_new(tt_mem, r->pool, lc->name,
					    &lc->routes[0], 5000,
					    &r->l.backends[0], &reason),
			 0);
	r->l.metrics = tsgate_metrics_listener_new(tt_mem, m, lc->name);
	r->l.route_metrics =
	    talloc_zero_array(tt_mem, struct tsgate_metrics_route *, 1);
	r->l.route_metrics[0] =
	    tsgate_metrics_route_new(tt_mem, r->l.metrics, "r");
}

static void client_connected(struct tevent_req *req)
{
	struct rig *r = tevent_req_callback_data_void(req);
	int err = 0;

	r->client_ret = tstream_tls_connect_recv(
	    req, &err, tt_mem, &r->clients[r->num_clients], NULL);
	if (r->client_ret == 0) {
		r->num_clients++;
	}
	TALLOC_FREE(req);
	r->client_done = true;
}

/*
 * One more client: accepted by the connection code, handshaken, one byte
 * sent and relayed; returns once the backend has it and the connection
 * is idle again.
 */
static void open_idle_conn(struct rig *r)
{
	struct tstream_context *plain = NULL;
	struct iovec iov = {.iov_base = "i", .iov_len = 1};
	size_t bytes = r->backend_bytes;
	struct tevent_req *req;
	bool wrote = false;
	int fds[2];

	tt_tcp_fds(fds);
	tsgate_conns_accept(r->conns, &r->l, fds[0]);
	ck_assert_int_eq(tstream_bsd_existing_socket(tt_mem, fds[1], &plain),
			 0);
	r->client_done = false;
	req = tstream_tls_connect_send(tt_mem, tt_ev, plain, r->client_params);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, client_connected, r);
	tt_wait_for(r->client_done, 10000);
	ck_assert_int_eq(r->client_ret, 0);

	req = tstream_writev_send(tt_mem, tt_ev, r->clients[r->num_clients - 1],
				  &iov, 1);
	ck_assert_ptr_nonnull(req);
	tevent_req_set_callback(req, tt_set_done, &wrote);
	tt_wait_for(wrote && r->backend_bytes == bytes + 1, 10000);
	talloc_free(req);
	/* the relay's write completion: then nothing moves */
	tt_run_for(tt_ev, 100);
}

START_TEST(test_idle_tls_connection)
{
	struct rig r = {0};
	struct tsgate_log *log = tsgate_log_new(tt_mem, TSGATE_CONFIG_LOG_ERROR,
						TSGATE_CONFIG_LOG_TEXT);
	struct tstream_tls_client_config cc = {.ca_file = certs->ca_crt,
					       .peer_name = "localhost"};
	size_t blocks1, size1, blocks, size, i;
	char *error = NULL;

	r.dir = tt_mkdtemp(tt_mem);
	rig_config(&r);
	rig_listener(&r);
	ck_assert_int_eq(
	    tstream_tls_params_client(tt_mem, &cc, &r.client_params, &error),
	    0);
	r.conns = tsgate_conns_new(tt_mem, tt_ev, log, r.cfg);
	ck_assert_ptr_nonnull(r.conns);

	/*
	 * The first connection also makes what the set keeps for all (the
	 * idle sweeper, the source table): the second one's cost is what a
	 * connection adds.
	 */
	open_idle_conn(&r);
	blocks1 = talloc_total_blocks(r.conns);
	size1 = talloc_total_size(r.conns);
	open_idle_conn(&r);
	ck_assert_uint_eq(tsgate_conns_num(r.conns), 2);
	blocks = talloc_total_blocks(r.conns) - blocks1;
	size = talloc_total_size(r.conns) - size1;
	if (blocks > 9 || size > 2400) {
		talloc_report_full(r.conns, stderr);
	}
	/*
	 * The connection and the relay; the client's BSD stream and the TLS
	 * stream above it (each a generic and a private struct) and the SNI
	 * name; the backend's BSD stream: 9 chunks, 2,322 bytes on x86-64:
	 * 1,786 before our TLS 1.3 record layer, whose keys, IVs, secrets,
	 * sequence numbers and kept channel bindings live inside the TLS
	 * stream's struct (+536) where GnuTLS kept ~10 KB outside talloc
	 * (tests/unit/tunnels idle_heap measures the whole heap).
	 * Before perf-mem5, 14: the client's address as a string, the
	 * metrics tracker, the TLS stream's handle on its parameters and the
	 * two BSD streams' tevent_fds (now children of the event context and
	 * their own event-context guards, which were two more chunks there).
	 */
	ck_assert_msg(blocks <= 9,
		      "idle connection: %zu talloc chunks (%zu bytes)", blocks,
		      size);
	ck_assert_msg(size <= 2400, "idle connection holds %zu bytes", size);

	/* both still relay */
	for (i = 0; i < NCONN; i++) {
		struct iovec iov = {.iov_base = "j", .iov_len = 1};
		struct tevent_req *req =
		    tstream_writev_send(tt_mem, tt_ev, r.clients[i], &iov, 1);

		ck_assert_ptr_nonnull(req);
		tt_wait_for(r.backend_bytes == NCONN + i + 1, 10000);
		talloc_free(req);
	}

	tsgate_conns_free_all(r.conns);
	for (i = 0; i < NCONN; i++) {
		TALLOC_FREE(r.clients[i]);
		TALLOC_FREE(r.backend_fdes[i]);
		close(r.backend_fds[i]);
	}
	TALLOC_FREE(r.backend_lfde);
	close(r.backend_lfd);
	tt_rmtree(r.dir);
}
END_TEST

static Suite *conn_idle_suite(void)
{
	Suite *s = suite_create("conn_idle");
	TCase *tc = tcase_create("idle");

	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_idle_tls_connection);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	int ret;

	/* made once, before the tests fork, outside their leak checks */
	certs = tt_certs_create(NULL);
	if (certs == NULL) {
		fprintf(stderr, "test_conn_idle: cannot make the test PKI\n");
		return 1;
	}
	ret = tt_run_suite(conn_idle_suite());
	talloc_free(certs);
	return ret;
}
