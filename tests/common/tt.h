/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of tsgate's Check tests: a talloc leak-check fixture, a
 * bounded event loop and child processes killed by pid.
 */
#ifndef TT_H
#define TT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <check.h>
#include <talloc.h>
#include <tevent.h>

/* Per-test talloc root and event context, made by tt_setup(). */
extern TALLOC_CTX *tt_mem;
extern struct tevent_context *tt_ev;

/*
 * Checked fixture for every TCase: tcase_add_checked_fixture(tc,
 * tt_setup, tt_teardown). Teardown frees tt_mem and fails the test when
 * any talloc block made during the test is still alive (the leak check).
 */
void tt_setup(void);
void tt_teardown(void);

/*
 * A test program's main: runs the suite (forking per test unless
 * CK_FORK=no) with the process-wide talloc/tevent set-up the leak check
 * needs; returns the exit code (0 when every test passed).
 */
int tt_run_suite(Suite *suite);

/*
 * A new TCase of suite s with the leak-check fixture (tt_setup and
 * tt_teardown) and a timeout of timeout_s seconds.
 */
TCase *tt_tcase(Suite *s, const char *name, double timeout_s);

/*
 * Unchecked fixture for a TCase that makes files (unix sockets): a scratch
 * directory made in the parent process and exported as $TMPDIR, which
 * tt_mkdtemp() uses, removed after the TCase even when a forked test
 * failed half-way. tcase_add_unchecked_fixture(tc, tt_scratch_setup,
 * tt_scratch_teardown).
 */
void tt_scratch_setup(void);
void tt_scratch_teardown(void);

/*
 * Run tt_ev (or ev) until *done is true or timeout_ms passes.
 * Returns true when *done became true.
 */
bool tt_loop_until(struct tevent_context *ev,
		   const bool *done,
		   unsigned timeout_ms);

/*
 * The deadline of a wait for what must happen (as DEADLINE in
 * tests/integration/gateway_harness.py): a wait ends when its condition
 * holds, so a long deadline costs a passing test nothing, while valgrind
 * (no Check timeout: CK_FORK=no), ASan and a loaded machine stretch a step
 * of microseconds to seconds. What must NOT happen is shown with
 * !tt_loop_until() or tt_run_for() and the time it means.
 */
#define TT_DEADLINE_MS 20000

/* Fail the test unless *done becomes true within timeout_ms. */
#define tt_wait(done, timeout_ms)                                         \
	ck_assert_msg(tt_loop_until(tt_ev, (done), (timeout_ms)),         \
		      "event loop: timed out after %u ms waiting for %s", \
		      (unsigned)(timeout_ms), #done)

/* Now, in milliseconds (CLOCK_MONOTONIC). */
uint64_t tt_now_ms(void);

/*
 * One iteration of ev, bounded by deadline_ms (tt_now_ms() clock).
 * Returns false once the deadline has passed (or the loop failed).
 */
bool tt_loop_once_until(struct tevent_context *ev, uint64_t deadline_ms);

/*
 * Run ev until the expression cond is true or timeout_ms pass; the value
 * of cond. The shared bounded wait of the C tests (docs/testing.md): a
 * test waits on a condition, never "run for a while, then assert".
 */
#define tt_loop_until_cond(ev, cond, timeout_ms)                       \
	({                                                             \
		uint64_t tt_end_ = tt_now_ms() + (timeout_ms);         \
		while (!(cond) && tt_loop_once_until((ev), tt_end_)) { \
		}                                                      \
		(bool)(cond);                                          \
	})

/* Fail the test unless cond becomes true within timeout_ms on tt_ev. */
#define tt_wait_for(cond, timeout_ms)                                     \
	ck_assert_msg(tt_loop_until_cond(tt_ev, (cond), (timeout_ms)),    \
		      "event loop: timed out after %u ms waiting for %s", \
		      (unsigned)(timeout_ms), #cond)

/*
 * Run ev for ms milliseconds on purpose: to let a timeout expire, or to
 * show that something does NOT happen. Never as synchronisation.
 */
void tt_run_for(struct tevent_context *ev, unsigned ms);

/*
 * False under valgrind (TSGATE_VALGRIND, set by the meson setup), in a
 * sanitizer build, or with TSGATE_NO_TIMING_ASSERTS=1: assertions on
 * elapsed time and memory sizes that such runs distort are skipped
 * there; everything else still runs.
 */
bool tt_timing_asserts_enabled(void);

/* tevent_req callback that sets the bool pointed to by its private data. */
void tt_set_done(struct tevent_req *req);

/*
 * Start argv[0] (searched in PATH) with the given environment additions
 * (NULL-terminated "K=V" list or NULL). If in_fd/out_fd are not NULL the
 * child's stdin/stdout are pipes and the parent's ends are returned
 * there; otherwise they are /dev/null. stderr is inherited unless
 * quiet_stderr. Returns the pid, or -1.
 */
pid_t tt_spawn(const char *const argv[],
	       const char *const env[],
	       int *in_fd,
	       int *out_fd,
	       bool quiet_stderr);

/*
 * Stop a child by pid: SIGTERM, then SIGKILL after grace_ms; reap it.
 * Returns its wait status (or -1).
 */
int tt_stop(pid_t pid, unsigned grace_ms);

/* Wait up to timeout_ms for a child to exit; returns wait status or -1. */
int tt_wait_exit(pid_t pid, unsigned timeout_ms);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
uint16_t tt_free_port(void);

/* Poll until something accepts TCP connections on host:port. */
bool tt_wait_tcp(const char *host, uint16_t port, unsigned timeout_ms);

/* A fresh temporary directory (removed by tt_rmtree). */
char *tt_mkdtemp(TALLOC_CTX *mem_ctx);
void tt_rmtree(const char *path);

#endif
