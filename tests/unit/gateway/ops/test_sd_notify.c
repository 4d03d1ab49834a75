/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of gateway/ops/sd_notify.c against a real AF_UNIX datagram
 * socket bound by the test, as systemd binds $NOTIFY_SOCKET: a path and
 * an abstract ("@") name, the exact bytes of each message, the
 * MONOTONIC_USEC of a reload against CLOCK_MONOTONIC, names refused, and
 * a NULL handle doing nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <check.h>
#include <talloc.h>

#include "tt.h"
#include "sd_notify.h"

/* A datagram socket bound to name ("/path" or "@abstract"). */
static int bind_dgram(const char *name)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(n, sizeof(sun.sun_path));
	memcpy(sun.sun_path, name, n);
	if (name[0] == '@') {
		sun.sun_path[0] = '\0';
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		len = sizeof(sun);
	}
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, len), 0);
	return fd;
}

/* The next datagram, bounded: NUL-terminated in buf. */
static size_t recv_msg(int fd, char *buf, size_t size)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ssize_t n;

	ck_assert_int_eq(poll(&p, 1, 5000), 1);
	n = recv(fd, buf, size - 1, 0);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	return (size_t)n;
}

static uint64_t mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void check_messages(const char *name)
{
	struct tsgate_notify *n = NULL;
	char buf[4096];
	unsigned long long usec;
	uint64_t before, after;
	int fd = bind_dgram(name);

	ck_assert_int_eq(tsgate_notify_new(tt_mem, name, &n), 0);
	ck_assert_ptr_nonnull(n);
	ck_assert_int_eq(tsgate_notify(n, "READY=1\nSTATUS=%s", "up"), 0);
	recv_msg(fd, buf, sizeof(buf));
	ck_assert_str_eq(buf, "READY=1\nSTATUS=up");

	before = mono_usec();
	ck_assert_int_eq(tsgate_notify_reloading(n), 0);
	after = mono_usec();
	recv_msg(fd, buf, sizeof(buf));
	ck_assert_int_eq(sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%llu", &usec),
			 1);
	ck_assert_uint_ge(usec, before);
	ck_assert_uint_le(usec, after);
	ck_assert_ptr_null(strchr(strchr(buf, '\n') + 1, '\n'));

	ck_assert_int_eq(tsgate_notify(n, "STOPPING=1"), 0);
	recv_msg(fd, buf, sizeof(buf));
	ck_assert_str_eq(buf, "STOPPING=1");

	/* freeing the handle closes its socket: nothing else arrives */
	talloc_free(n);
	close(fd);
}

START_TEST(test_path)
{
	char *dir = tt_mkdtemp(tt_mem);
	char *path = talloc_asprintf(tt_mem, "%s/notify", dir);

	check_messages(path);
	unlink(path);
	tt_rmtree(dir);
}
END_TEST

START_TEST(test_abstract)
{
	char *name =
	    talloc_asprintf(tt_mem, "@tsgate-test-notify-%d-%llu",
			    (int)getpid(), (unsigned long long)mono_usec());

	check_messages(name);
}
END_TEST

START_TEST(test_not_under_systemd)
{
	struct tsgate_notify *n = (struct tsgate_notify *)tt_mem;

	ck_assert_int_eq(tsgate_notify_new(tt_mem, NULL, &n), 0);
	ck_assert_ptr_null(n);
	ck_assert_int_eq(tsgate_notify_new(tt_mem, "", &n), 0);
	ck_assert_ptr_null(n);
	/* a NULL handle: nothing to do, nothing failed */
	ck_assert_int_eq(tsgate_notify(NULL, "READY=1"), 0);
	ck_assert_int_eq(tsgate_notify_reloading(NULL), 0);
}
END_TEST

START_TEST(test_bad_names)
{
	struct tsgate_notify *n = NULL;
	char *long_name = talloc_zero_array(tt_mem, char, 200);

	memset(long_name, 'x', 199);
	long_name[0] = '/';
	ck_assert_int_eq(tsgate_notify_new(tt_mem, "relative/path", &n),
			 EINVAL);
	ck_assert_ptr_null(n);
	ck_assert_int_eq(tsgate_notify_new(tt_mem, "@", &n), EINVAL);
	ck_assert_int_eq(tsgate_notify_new(tt_mem, long_name, &n),
			 ENAMETOOLONG);
	ck_assert_ptr_null(n);
}
END_TEST

START_TEST(test_nobody_listening)
{
	struct tsgate_notify *n = NULL;
	char *dir = tt_mkdtemp(tt_mem);
	char *path = talloc_asprintf(tt_mem, "%s/gone", dir);

	/* systemd went away: an error to ignore, not a crash or a block */
	ck_assert_int_eq(tsgate_notify_new(tt_mem, path, &n), 0);
	ck_assert_int_eq(tsgate_notify(n, "READY=1"), ENOENT);
	talloc_free(n);
	tt_rmtree(dir);
}
END_TEST

static Suite *sd_notify_suite(void)
{
	Suite *s = suite_create("sd_notify");
	TCase *tc = tcase_create("datagrams");

	tcase_add_unchecked_fixture(tc, tt_scratch_setup, tt_scratch_teardown);
	tcase_add_checked_fixture(tc, tt_setup, tt_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_path);
	tcase_add_test(tc, test_abstract);
	tcase_add_test(tc, test_not_under_systemd);
	tcase_add_test(tc, test_bad_names);
	tcase_add_test(tc, test_nobody_listening);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tt_run_suite(sd_notify_suite());
}
