/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of gateway/util/source_limit.c: what a client's source is (IPv4,
 * IPv4-mapped IPv6, IPv6 cut to a prefix, none for unix sockets), and
 * taking and giving back slots up to a limit.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>
#include <check.h>
#include <talloc.h>

#include "tt.h"
#include "source_limit.h"

static struct tsgate_source_key v4(const char *ip)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 1};
	struct tsgate_source_key k;

	ck_assert_int_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	ck_assert(tsgate_source_key_from_sockaddr((struct sockaddr *)&sin,
						  sizeof(sin), 64, &k));
	return k;
}

static struct tsgate_source_key v6(const char *ip, unsigned prefix)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = 1};
	struct tsgate_source_key k;

	ck_assert_int_eq(inet_pton(AF_INET6, ip, &sin6.sin6_addr), 1);
	ck_assert(tsgate_source_key_from_sockaddr((struct sockaddr *)&sin6,
						  sizeof(sin6), prefix, &k));
	return k;
}

static bool same(struct tsgate_source_key a, struct tsgate_source_key b)
{
	return memcmp(&a, &b, sizeof(a)) == 0;
}

START_TEST(test_keys)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct tsgate_source_key k;

	ck_assert_str_eq(
	    tsgate_source_key_string(tt_mem, &(struct tsgate_source_key){0}),
	    "?");
	k = v4("127.0.0.2");
	ck_assert_str_eq(tsgate_source_key_string(tt_mem, &k), "127.0.0.2");
	ck_assert(!same(k, v4("127.0.0.3")));
	/* a dual-stack socket's IPv4 client is its IPv4 address */
	ck_assert(same(v6("::ffff:127.0.0.2", 64), k));
	ck_assert(same(v6("::ffff:127.0.0.2", 128), k));

	/* IPv6: one /64 is one source by default, the port never counts */
	k = v6("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64);
	ck_assert_str_eq(tsgate_source_key_string(tt_mem, &k),
			 "2001:db8:1:2::/64");
	ck_assert(same(k, v6("2001:db8:1:2::1", 64)));
	ck_assert(!same(k, v6("2001:db8:1:3::1", 64)));
	k = v6("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 56);
	ck_assert_str_eq(tsgate_source_key_string(tt_mem, &k),
			 "2001:db8:1::/56");
	ck_assert(same(k, v6("2001:db8:1:ff::", 56)));
	k = v6("2001:db8::1", 61); /* a prefix inside a byte */
	ck_assert(same(k, v6("2001:db8:0:7::", 61)));
	ck_assert(!same(k, v6("2001:db8:0:8::", 61)));
	k = v6("::1", 128);
	ck_assert_str_eq(tsgate_source_key_string(tt_mem, &k), "::1");
	ck_assert(!same(k, v6("::2", 128)));

	/* unix sockets and short addresses have no source */
	ck_assert(!tsgate_source_key_from_sockaddr((struct sockaddr *)&sun,
						   sizeof(sun), 64, &k));
	ck_assert(!tsgate_source_key_from_sockaddr((struct sockaddr *)&sun, 4,
						   64, &k));
}
END_TEST

START_TEST(test_take_and_give_back)
{
	struct tsgate_source_limit *sl = tsgate_source_limit_new(tt_mem);
	struct tsgate_source_key a = v4("127.0.0.2"), b = v4("127.0.0.3");
	struct tsgate_source_slot *slots[3], *other, *extra = NULL;

	ck_assert_ptr_nonnull(sl);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(
		    tsgate_source_limit_take(tt_mem, sl, &a, 3, &slots[i]), 0);
	}
	ck_assert_uint_eq(tsgate_source_limit_count(sl, &a), 3);
	ck_assert_int_eq(tsgate_source_limit_take(tt_mem, sl, &a, 3, &extra),
			 EAGAIN);
	ck_assert_ptr_null(extra);
	/* another source is not affected */
	ck_assert_int_eq(tsgate_source_limit_take(tt_mem, sl, &b, 3, &other),
			 0);
	ck_assert_uint_eq(tsgate_source_limit_num_sources(sl), 2);
	/* a freed slot comes back */
	talloc_free(slots[1]);
	ck_assert_uint_eq(tsgate_source_limit_count(sl, &a), 2);
	ck_assert_int_eq(tsgate_source_limit_take(tt_mem, sl, &a, 3, &extra),
			 0);
	talloc_free(extra);
	talloc_free(slots[0]);
	talloc_free(slots[2]);
	ck_assert_uint_eq(tsgate_source_limit_count(sl, &a), 0);
	ck_assert_uint_eq(tsgate_source_limit_num_sources(sl), 1);
	talloc_free(other);
	ck_assert_uint_eq(tsgate_source_limit_num_sources(sl), 0);
	/* max 0: counted, never refused */
	ck_assert_int_eq(tsgate_source_limit_take(tt_mem, sl, &a, 0, &extra),
			 0);
	ck_assert_uint_eq(tsgate_source_limit_count(sl, &a), 1);
	talloc_free(extra);
	talloc_free(sl);
}
END_TEST

/* More sources than buckets: the table grows and still finds each. */
START_TEST(test_many_sources)
{
	struct tsgate_source_limit *sl = tsgate_source_limit_new(tt_mem);
	TALLOC_CTX *conns = talloc_new(tt_mem);
	struct tsgate_source_slot *slot;
	char ip[32];
	int i;

	for (i = 0; i < 5000; i++) {
		struct tsgate_source_key k;

		snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
		k = v4(ip);
		ck_assert_int_eq(
		    tsgate_source_limit_take(conns, sl, &k, 1, &slot), 0);
	}
	ck_assert_uint_eq(tsgate_source_limit_num_sources(sl), 5000);
	for (i = 0; i < 5000; i += 7) {
		struct tsgate_source_key k;

		snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
		k = v4(ip);
		ck_assert_uint_eq(tsgate_source_limit_count(sl, &k), 1);
		ck_assert_int_eq(
		    tsgate_source_limit_take(conns, sl, &k, 1, &slot), EAGAIN);
	}
	talloc_free(conns);
	ck_assert_uint_eq(tsgate_source_limit_num_sources(sl), 0);
	talloc_free(sl);
}
END_TEST

static Suite *source_limit_suite(void)
{
	Suite *s = suite_create("source_limit");
	TCase *tc;

	tc = tt_tcase(s, "keys", 10);
	tcase_add_test(tc, test_keys);
	tc = tt_tcase(s, "slots", 30);
	tcase_add_test(tc, test_take_and_give_back);
	tcase_add_test(tc, test_many_sources);
	return s;
}

int main(void)
{
	return tt_run_suite(source_limit_suite());
}
