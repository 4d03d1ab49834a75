/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the BSD address type (tsocket_bsd_address.c): ipv4/ipv6/ip
 * parsing, canonical strings, ports, unix paths, the sockaddr
 * conversions and their error cases.
 */

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <check.h>
#include <talloc.h>
#include <tevent.h>

#include "tsocket.h"
#include "tt.h"

static struct tsocket_address *inet(const char *fam,
				    const char *str,
				    uint16_t port)
{
	struct tsocket_address *addr = NULL;
	int ret;

	ret = tsocket_address_inet_from_strings(tt_mem, fam, str, port, &addr);
	ck_assert_msg(ret == 0, "inet_from_strings(%s, %s): %s", fam,
		      str != NULL ? str : "NULL", strerror(errno));
	ck_assert_ptr_nonnull(addr);
	return addr;
}

static void assert_inet_refused_with(const char *fam, const char *str, int err)
{
	struct tsocket_address *addr = NULL;
	int ret;

	errno = 0;
	ret = tsocket_address_inet_from_strings(tt_mem, fam, str, 1, &addr);
	ck_assert_msg(ret == -1, "%s/%s accepted", fam, str);
	ck_assert_int_eq(errno, err);
	ck_assert_ptr_null(addr);
}

static void assert_inet_refused(const char *fam, const char *str)
{
	assert_inet_refused_with(fam, str, EINVAL);
}

static void assert_string(const struct tsocket_address *addr,
			  const char *expected)
{
	char *str = tsocket_address_string(addr, tt_mem);

	ck_assert_ptr_nonnull(str);
	ck_assert_str_eq(str, expected);
	ck_assert_ptr_eq(talloc_parent(str), tt_mem);
	talloc_free(str);
}

static void assert_addr_string(const struct tsocket_address *addr,
			       const char *expected)
{
	char *str = tsocket_address_inet_addr_string(addr, tt_mem);

	ck_assert_ptr_nonnull(str);
	ck_assert_str_eq(str, expected);
	talloc_free(str);
}

START_TEST(test_ipv4)
{
	struct tsocket_address *a = inet("ipv4", "127.0.0.1", 8443);

	ck_assert(tsocket_address_is_inet(a, "ipv4"));
	ck_assert(tsocket_address_is_inet(a, "ip"));
	ck_assert(!tsocket_address_is_inet(a, "ipv6"));
	ck_assert(!tsocket_address_is_inet(a, "unix"));
	ck_assert(!tsocket_address_is_inet(a, NULL));
	ck_assert(!tsocket_address_is_unix(a));
	ck_assert_uint_eq(tsocket_address_inet_port(a), 8443);
	assert_addr_string(a, "127.0.0.1");
	assert_string(a, "ipv4:127.0.0.1:8443");

	/* the family names are case-insensitive, as in Samba */
	a = inet("IPv4", "10.20.30.40", 0);
	assert_string(a, "ipv4:10.20.30.40:0");
	ck_assert_uint_eq(tsocket_address_inet_port(a), 0);
}
END_TEST

START_TEST(test_ipv6_canonical)
{
	struct tsocket_address *a = inet("ipv6", "::1", 53);

	ck_assert(tsocket_address_is_inet(a, "ipv6"));
	ck_assert(tsocket_address_is_inet(a, "ip"));
	ck_assert(!tsocket_address_is_inet(a, "ipv4"));
	ck_assert_uint_eq(tsocket_address_inet_port(a), 53);
	assert_addr_string(a, "::1");
	assert_string(a, "ipv6:::1:53");

	/* RFC 5952: lower case, leading zeros dropped, longest run :: */
	a = inet("ipv6", "2001:0DB8:0000:0000:0000:0000:0000:0001", 1);
	assert_addr_string(a, "2001:db8::1");
	a = inet("ipv6", "FE80:0:0:0:ABCD:0:0:1", 65535);
	assert_addr_string(a, "fe80::abcd:0:0:1");
	assert_string(a, "ipv6:fe80::abcd:0:0:1:65535");
	a = inet("ipv6", "::ffff:127.0.0.1", 2);
	assert_addr_string(a, "::ffff:127.0.0.1");
	/* a numeric scope is accepted (inet_pton alone would refuse it) */
	a = inet("ipv6", "fe80::1%1", 3);
	assert_addr_string(a, "fe80::1");
}
END_TEST

START_TEST(test_ip_autodetect)
{
	struct tsocket_address *a;

	a = inet("ip", "192.168.1.2", 80);
	ck_assert(tsocket_address_is_inet(a, "ipv4"));
	assert_string(a, "ipv4:192.168.1.2:80");

	a = inet("ip", "fe80::1", 80);
	ck_assert(tsocket_address_is_inet(a, "ipv6"));
	assert_string(a, "ipv6:fe80::1:80");
}
END_TEST

START_TEST(test_null_is_any)
{
	struct tsocket_address *a;

	a = inet("ipv4", NULL, 1);
	assert_string(a, "ipv4:0.0.0.0:1");
	a = inet("ipv6", NULL, 2);
	assert_string(a, "ipv6::::2");
	a = inet("ip", NULL, 3);
	assert_string(a, "ipv4:0.0.0.0:3");
}
END_TEST

START_TEST(test_no_dns)
{
	assert_inet_refused("ip", "localhost");
	assert_inet_refused("ipv4", "localhost");
	assert_inet_refused("ipv6", "localhost");
	assert_inet_refused("ip", "example.com");
	assert_inet_refused("ipv4", "::1");
	assert_inet_refused("ipv6", "127.0.0.1");
	assert_inet_refused("ipv4", "127.0.0.1.5");
	assert_inet_refused("ipv4", "");
	assert_inet_refused("ipv6", "fe80::1%");
	/* an unknown family is EAFNOSUPPORT, as in Samba (tsocket oracle) */
	assert_inet_refused_with("ipx", "127.0.0.1", EAFNOSUPPORT);
	assert_inet_refused_with("unix", "127.0.0.1", EAFNOSUPPORT);
	assert_inet_refused_with("", "127.0.0.1", EAFNOSUPPORT);
	assert_inet_refused_with("inet", NULL, EAFNOSUPPORT);
}
END_TEST

START_TEST(test_set_port_and_copy)
{
	struct tsocket_address *a = inet("ipv4", "127.0.0.1", 1);
	struct tsocket_address *b;

	b = tsocket_address_copy(a, tt_mem);
	ck_assert_ptr_nonnull(b);
	ck_assert_ptr_ne(a, b);
	ck_assert_int_eq(tsocket_address_inet_set_port(b, 4242), 0);
	ck_assert_uint_eq(tsocket_address_inet_port(b), 4242);
	ck_assert_uint_eq(tsocket_address_inet_port(a), 1);
	assert_string(b, "ipv4:127.0.0.1:4242");

	a = inet("ipv6", "::1", 1);
	b = tsocket_address_copy(a, a);
	ck_assert_ptr_eq(talloc_parent(b), a);
	ck_assert_int_eq(tsocket_address_inet_set_port(b, 65535), 0);
	assert_string(b, "ipv6:::1:65535");
	assert_string(a, "ipv6:::1:1");
}
END_TEST

START_TEST(test_unix)
{
	struct tsocket_address *u = NULL;
	char *path;

	ck_assert_int_eq(
	    tsocket_address_unix_from_path(tt_mem, "/run/x.sock", &u), 0);
	ck_assert(tsocket_address_is_unix(u));
	ck_assert(!tsocket_address_is_inet(u, "ip"));
	path = tsocket_address_unix_path(u, tt_mem);
	ck_assert_ptr_nonnull(path);
	ck_assert_str_eq(path, "/run/x.sock");
	talloc_free(path);
	assert_string(u, "unix:/run/x.sock");

	u = tsocket_address_copy(u, tt_mem);
	ck_assert(tsocket_address_is_unix(u));
	assert_string(u, "unix:/run/x.sock");

	/* NULL is the empty path */
	u = NULL;
	ck_assert_int_eq(tsocket_address_unix_from_path(tt_mem, NULL, &u), 0);
	path = tsocket_address_unix_path(u, tt_mem);
	ck_assert_str_eq(path, "");
	assert_string(u, "unix:");
}
END_TEST

START_TEST(test_unix_name_too_long)
{
	struct sockaddr_un un;
	size_t max = sizeof(un.sun_path) - 1; /* room for the NUL */
	char *longest = talloc_zero_size(tt_mem, max + 2);
	struct tsocket_address *u = NULL;
	char *path;

	memset(longest, 'a', max);
	longest[0] = '/';
	ck_assert_int_eq(tsocket_address_unix_from_path(tt_mem, longest, &u),
			 0);
	path = tsocket_address_unix_path(u, tt_mem);
	ck_assert_str_eq(path, longest);

	longest[max] = 'b';
	u = NULL;
	errno = 0;
	ck_assert_int_eq(tsocket_address_unix_from_path(tt_mem, longest, &u),
			 -1);
	ck_assert_int_eq(errno, ENAMETOOLONG);
	ck_assert_ptr_null(u);
}
END_TEST

START_TEST(test_wrong_kind_getters)
{
	struct tsocket_address *u = NULL;
	struct tsocket_address *a = inet("ipv4", "127.0.0.1", 7);

	ck_assert_int_eq(tsocket_address_unix_from_path(tt_mem, "/x", &u), 0);

	errno = 0;
	ck_assert_ptr_null(tsocket_address_inet_addr_string(u, tt_mem));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_uint_eq(tsocket_address_inet_port(u), 0);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(tsocket_address_inet_set_port(u, 5), -1);
	ck_assert_int_eq(errno, EINVAL);

	errno = 0;
	ck_assert_ptr_null(tsocket_address_unix_path(a, tt_mem));
	ck_assert_int_eq(errno, EINVAL);

	/* and NULL addresses are nothing */
	ck_assert(!tsocket_address_is_unix(NULL));
	ck_assert(!tsocket_address_is_inet(NULL, "ip"));
}
END_TEST

START_TEST(test_sockaddr_roundtrip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in in = {.sin_family = AF_INET};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	struct tsocket_address *a = NULL;
	ssize_t len;

	in.sin_port = htons(1234);
	inet_pton(AF_INET, "127.0.0.2", &in.sin_addr);
	ck_assert_int_eq(tsocket_address_bsd_from_sockaddr(
			     tt_mem, (struct sockaddr *)&in, sizeof(in), &a),
			 0);
	assert_string(a, "ipv4:127.0.0.2:1234");
	memset(&ss, 0xaa, sizeof(ss));
	len =
	    tsocket_address_bsd_sockaddr(a, (struct sockaddr *)&ss, sizeof(ss));
	ck_assert_int_eq(len, sizeof(in));
	ck_assert_int_eq(memcmp(&ss, &in, sizeof(in)), 0);
	/* the rest of a larger buffer is cleared */
	ck_assert_int_eq(((uint8_t *)&ss)[sizeof(ss) - 1], 0);

	in6.sin6_port = htons(4321);
	inet_pton(AF_INET6, "2001:db8::7", &in6.sin6_addr);
	a = NULL;
	/* a sockaddr_storage length is fine: only the family's part counts */
	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, &in6, sizeof(in6));
	ck_assert_int_eq(tsocket_address_bsd_from_sockaddr(
			     tt_mem, (struct sockaddr *)&ss, sizeof(ss), &a),
			 0);
	assert_string(a, "ipv6:2001:db8::7:4321");
	memset(&ss, 0xaa, sizeof(ss));
	len = tsocket_address_bsd_sockaddr(a, (struct sockaddr *)&ss,
					   sizeof(in6));
	ck_assert_int_eq(len, sizeof(in6));
	ck_assert_int_eq(memcmp(&ss, &in6, sizeof(in6)), 0);

	strcpy(un.sun_path, "/tmp/sock");
	a = NULL;
	ck_assert_int_eq(tsocket_address_bsd_from_sockaddr(
			     tt_mem, (struct sockaddr *)&un, sizeof(un), &a),
			 0);
	ck_assert(tsocket_address_is_unix(a));
	assert_string(a, "unix:/tmp/sock");
	memset(&ss, 0xaa, sizeof(ss));
	len =
	    tsocket_address_bsd_sockaddr(a, (struct sockaddr *)&ss, sizeof(ss));
	ck_assert_int_eq(len, sizeof(un));
	ck_assert_int_eq(memcmp(&ss, &un, sizeof(un)), 0);

	/* what the kernel gives for an unbound unix peer: the family only */
	a = NULL;
	ck_assert_int_eq(tsocket_address_bsd_from_sockaddr(
			     tt_mem, (struct sockaddr *)&un,
			     offsetof(struct sockaddr_un, sun_path), &a),
			 0);
	assert_string(a, "unix:");

	/* an address made from strings converts the same way */
	a = inet("ipv4", "127.0.0.2", 1234);
	len =
	    tsocket_address_bsd_sockaddr(a, (struct sockaddr *)&ss, sizeof(ss));
	ck_assert_int_eq(len, sizeof(in));
	ck_assert_int_eq(memcmp(&ss, &in, sizeof(in)), 0);
}
END_TEST

START_TEST(test_sockaddr_errors)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in in = {.sin_family = AF_INET};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
	struct tsocket_address *a = NULL;

	ss.ss_family = AF_PACKET;
	errno = 0;
	ck_assert_int_eq(tsocket_address_bsd_from_sockaddr(
			     tt_mem, (struct sockaddr *)&ss, sizeof(ss), &a),
			 -1);
	ck_assert_int_eq(errno, EAFNOSUPPORT);
	ss.ss_family = AF_APPLETALK;
	errno = 0;
	ck_assert_int_eq(tsocket_address_bsd_from_sockaddr(
			     tt_mem, (struct sockaddr *)&ss, sizeof(ss), &a),
			 -1);
	ck_assert_int_eq(errno, EAFNOSUPPORT);

	errno = 0;
	ck_assert_int_eq(
	    tsocket_address_bsd_from_sockaddr(tt_mem, (struct sockaddr *)&in,
					      sizeof(in) - 1, &a),
	    -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(
	    tsocket_address_bsd_from_sockaddr(tt_mem, (struct sockaddr *)&in6,
					      sizeof(struct sockaddr_in), &a),
	    -1);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(tsocket_address_bsd_from_sockaddr(
			     tt_mem, (struct sockaddr *)&in, 1, &a),
			 -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(a);

	/* a buffer too short for the address */
	a = inet("ipv6", "::1", 1);
	errno = 0;
	ck_assert_int_eq(
	    tsocket_address_bsd_sockaddr(a, (struct sockaddr *)&ss,
					 sizeof(struct sockaddr_in6) - 1),
	    -1);
	ck_assert_int_eq(errno, EINVAL);
	a = inet("ipv4", "127.0.0.1", 1);
	errno = 0;
	ck_assert_int_eq(tsocket_address_bsd_sockaddr(a, (struct sockaddr *)&ss,
						      sizeof(in) - 1),
			 -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(
	    tsocket_address_bsd_sockaddr(a, (struct sockaddr *)&ss, sizeof(in)),
	    sizeof(in));
}
END_TEST

static Suite *tsocket_address_suite(void)
{
	Suite *s = suite_create("tsocket_address");
	TCase *tc;

	tc = tt_tcase(s, "inet", 10);
	tcase_add_test(tc, test_ipv4);
	tcase_add_test(tc, test_ipv6_canonical);
	tcase_add_test(tc, test_ip_autodetect);
	tcase_add_test(tc, test_null_is_any);
	tcase_add_test(tc, test_no_dns);
	tcase_add_test(tc, test_set_port_and_copy);

	tc = tt_tcase(s, "unix", 10);
	tcase_add_test(tc, test_unix);
	tcase_add_test(tc, test_unix_name_too_long);
	tcase_add_test(tc, test_wrong_kind_getters);

	tc = tt_tcase(s, "sockaddr", 10);
	tcase_add_test(tc, test_sockaddr_roundtrip);
	tcase_add_test(tc, test_sockaddr_errors);

	return s;
}

int main(void)
{
	return tt_run_suite(tsocket_address_suite());
}
