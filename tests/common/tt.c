/* SPDX-License-Identifier: MIT */
#include "tt.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <ftw.h>
#include <sys/prctl.h>

TALLOC_CTX *tt_mem;
struct tevent_context *tt_ev;
static size_t tt_blocks_before;

/*
 * Keeps talloc's null_context reachable: a global (a leak-checker root)
 * pointing inside a non-empty chunk whose header points to null_context.
 */
static TALLOC_CTX *tt_anchor;

static void tt_global_init(void)
{
	if (tt_anchor != NULL) {
		return;
	}
	/*
	 * tevent registers its backends in global talloc memory at the first
	 * tevent_context_init(): do that before tt_setup() counts blocks.
	 * talloc's null_context is only referenced one past its end, which
	 * valgrind and LeakSanitizer call lost unless a live child keeps it
	 * reachable.
	 */
	talloc_free(tevent_context_init(NULL));
	talloc_enable_null_tracking();
	tt_anchor = talloc_named_const(NULL, 1, "tt anchor");
}

int tt_run_suite(Suite *suite)
{
	SRunner *sr;
	int failed;

	tt_global_init();
	sr = srunner_create(suite);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	TALLOC_FREE(tt_anchor);
	talloc_disable_null_tracking();
	return failed == 0 ? 0 : 1;
}

TCase *tt_tcase(Suite *s, const char *name, double timeout_s)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, timeout_s);
	suite_add_tcase(s, tc);
	return tc;
}

static char tt_scratch_dir[64];
static char *tt_saved_tmpdir;

void tt_scratch_setup(void)
{
	const char *old = getenv("TMPDIR");

	snprintf(tt_scratch_dir, sizeof(tt_scratch_dir),
		 "/tmp/tsgate-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tt_scratch_dir));
	tt_saved_tmpdir = old != NULL ? strdup(old) : NULL;
	setenv("TMPDIR", tt_scratch_dir, 1);
}

void tt_scratch_teardown(void)
{
	tt_rmtree(tt_scratch_dir);
	if (tt_saved_tmpdir != NULL) {
		setenv("TMPDIR", tt_saved_tmpdir, 1);
		free(tt_saved_tmpdir);
		tt_saved_tmpdir = NULL;
	} else {
		unsetenv("TMPDIR");
	}
}

void tt_setup(void)
{
	tt_global_init();
	tt_blocks_before = talloc_total_blocks(NULL);
	tt_mem = talloc_new(NULL);
	ck_assert_ptr_nonnull(tt_mem);
	tt_ev = tevent_context_init(tt_mem);
	ck_assert_ptr_nonnull(tt_ev);
}

void tt_teardown(void)
{
	size_t after;

	TALLOC_FREE(tt_mem);
	tt_ev = NULL;
	after = talloc_total_blocks(NULL);
	if (after != tt_blocks_before) {
		talloc_report_full(NULL, stderr);
	}
	ck_assert_msg(after == tt_blocks_before,
		      "talloc leak: %zu blocks before the test, %zu after",
		      tt_blocks_before, after);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void tt_timeout_handler(struct tevent_context *ev,
			       struct tevent_timer *te,
			       struct timeval now,
			       void *private_data)
{
	bool *fired = private_data;

	(void)ev;
	(void)te;
	(void)now;
	*fired = true;
}

bool tt_loop_until(struct tevent_context *ev,
		   const bool *done,
		   unsigned timeout_ms)
{
	bool fired = false;
	struct tevent_timer *te;
	uint64_t deadline = now_ms() + timeout_ms;
	int tries = 0;

	/*
	 * Again once: a test that fails one talloc allocation on purpose
	 * (talloc_failinject_only()) may hit this timer instead.
	 */
	do {
		te = tevent_add_timer(
		    ev, ev,
		    tevent_timeval_current_ofs(timeout_ms / 1000,
					       (timeout_ms % 1000) * 1000),
		    tt_timeout_handler, &fired);
	} while (te == NULL && ++tries < 2);
	if (te == NULL) {
		return false;
	}
	while (!*done && !fired && now_ms() <= deadline) {
		if (tevent_loop_once(ev) != 0) {
			break;
		}
	}
	if (!fired) {
		/* tevent frees a timer itself once it has fired */
		talloc_free(te);
	}
	return *done;
}

uint64_t tt_now_ms(void)
{
	return now_ms();
}

bool tt_loop_once_until(struct tevent_context *ev, uint64_t deadline_ms)
{
	uint64_t now = now_ms();
	uint64_t left;
	bool fired = false;
	struct tevent_timer *te;
	int ret;

	if (now >= deadline_ms) {
		return false;
	}
	left = deadline_ms - now;
	/* the loop wakes up at the deadline even when nothing happens */
	te = tevent_add_timer(
	    ev, ev,
	    tevent_timeval_current_ofs((uint32_t)(left / 1000),
				       (uint32_t)(left % 1000) * 1000),
	    tt_timeout_handler, &fired);
	if (te == NULL) {
		return false;
	}
	ret = tevent_loop_once(ev);
	if (!fired) {
		/* tevent frees a timer itself once it has fired */
		talloc_free(te);
	}
	return ret == 0 && now_ms() < deadline_ms;
}

void tt_run_for(struct tevent_context *ev, unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (tt_loop_once_until(ev, end)) {
	}
}

bool tt_timing_asserts_enabled(void)
{
	const char *v = getenv("TSGATE_NO_TIMING_ASSERTS");

#if defined(__SANITIZE_ADDRESS__)
	return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return false;
#endif
#endif
	if (v != NULL && *v != '\0' && strcmp(v, "0") != 0) {
		return false;
	}
	return getenv("TSGATE_VALGRIND") == NULL;
}

void tt_set_done(struct tevent_req *req)
{
	bool *done = tevent_req_callback_data_void(req);

	*done = true;
}

pid_t tt_spawn(const char *const argv[],
	       const char *const env[],
	       int *in_fd,
	       int *out_fd,
	       bool quiet_stderr)
{
	int in[2] = {-1, -1};
	int out[2] = {-1, -1};
	pid_t pid;

	if (in_fd != NULL && pipe2(in, O_CLOEXEC) != 0) {
		return -1;
	}
	if (out_fd != NULL && pipe2(out, O_CLOEXEC) != 0) {
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		return -1;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		dup2(in_fd != NULL ? in[0] : devnull, 0);
		dup2(out_fd != NULL ? out[1] : devnull, 1);
		if (quiet_stderr) {
			dup2(devnull, 2);
		}
		for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
			putenv((char *)env[i]);
		}
		/* never outlive the test that started us */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (in_fd != NULL) {
		close(in[0]);
		*in_fd = in[1];
	}
	if (out_fd != NULL) {
		close(out[1]);
		*out_fd = out[0];
	}
	return pid;
}

int tt_wait_exit(pid_t pid, unsigned timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid) {
			return status;
		}
		if (r < 0 && errno != EINTR) {
			return -1;
		}
		if (now_ms() > deadline) {
			return -1;
		}
		usleep(5000);
	}
}

int tt_stop(pid_t pid, unsigned grace_ms)
{
	int status;

	if (pid <= 0) {
		return -1;
	}
	kill(pid, SIGTERM);
	status = tt_wait_exit(pid, grace_ms);
	if (status == -1) {
		kill(pid, SIGKILL);
		status = tt_wait_exit(pid, 5000);
	}
	return status;
}

/*
 * Below the kernel's ephemeral range (32768-60999): a port bind(0) gives is
 * ephemeral, and an outgoing connection of a parallel test may take it as
 * its local port before our listener binds it. A random start spreads the
 * tests of several processes apart.
 */
uint16_t tt_free_port(void)
{
	static const unsigned low = 20000, span = 32768 - 20000;
	unsigned start =
	    (unsigned)(now_ms() ^ (uint64_t)getpid() * 2654435761u);
	unsigned i;

	for (i = 0; i < span; i++) {
		struct sockaddr_in sin = {.sin_family = AF_INET};
		uint16_t port = (uint16_t)(low + (start + i * 7919u) % span);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int ok;

		if (fd < 0) {
			return 0;
		}
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons(port);
		ok = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
		close(fd);
		if (ok) {
			return port;
		}
	}
	return 0;
}

bool tt_wait_tcp(const char *host, uint16_t port, unsigned timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;

	do {
		struct sockaddr_storage ss = {0};
		socklen_t len;
		int fd;

		if (strchr(host, ':') != NULL) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons(port);
			inet_pton(AF_INET6, host, &s6->sin6_addr);
			len = sizeof(*s6);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			s4->sin_family = AF_INET;
			s4->sin_port = htons(port);
			inet_pton(AF_INET, host, &s4->sin_addr);
			len = sizeof(*s4);
		}
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&ss, len) == 0) {
			close(fd);
			return true;
		}
		if (fd >= 0) {
			close(fd);
		}
		usleep(10000);
	} while (now_ms() < deadline);
	return false;
}

char *tt_mkdtemp(TALLOC_CTX *mem_ctx)
{
	const char *base = getenv("TMPDIR");
	char *tmpl = talloc_asprintf(mem_ctx, "%s/tsgate-test-XXXXXX",
				     base != NULL ? base : "/tmp");

	if (tmpl == NULL || mkdtemp(tmpl) == NULL) {
		talloc_free(tmpl);
		return NULL;
	}
	return tmpl;
}

static int rm_entry(const char *path,
		    const struct stat *st,
		    int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void tt_rmtree(const char *path)
{
	if (path != NULL && path[0] != '\0') {
		nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
}
