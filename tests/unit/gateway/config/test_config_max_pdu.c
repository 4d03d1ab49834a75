/* SPDX-License-Identifier: MIT */
/*
 * max_pdu defaults: each framing gets the largest PDU its protocol can
 * carry when a route sets none, whatever order the keys come in, and a
 * value the file gives always wins.
 */
#include <stdio.h>
#include <string.h>

#include "config_tunnels.h"
#include "tt.h"

static struct tsgate_config_route *load_route(const char *route_keys)
{
	struct tsgate_config *cfg = NULL;
	struct tsgate_config_errors *errs = NULL;
	char *y =
	    talloc_asprintf(tt_mem,
			    "listeners:\n"
			    "  - name: a\n"
			    "    listen: \"unix:a.sock\"\n"
			    "    accept: plain\n"
			    "    routes:\n"
			    "      - {backend: \"tcp://127.0.0.1:8080\"%s}\n",
			    route_keys);
	int ret;

	ret =
	    tsgate_config_load_buffer(tt_mem, "m.yaml", "/", (const uint8_t *)y,
				      strlen(y), 0, &cfg, &errs);
	if (ret != 0 && errs != NULL && errs->num_errors > 0) {
		fprintf(stderr, "%s\n",
			tsgate_config_error_string(tt_mem, &errs->errors[0]));
	}
	ck_assert_int_eq(ret, 0);
	return &cfg->listeners[0].routes[0];
}

START_TEST(test_defaults_by_framing)
{
	static const struct {
		const char *keys;
		enum tsgate_config_framing framing;
		uint64_t max_pdu;
	} cases[] = {
	    /* SMB2 over TCP: a 24-bit length after the type byte */
	    {", framing: nbt", TSGATE_CONFIG_FRAMING_NBT, 16777219},
	    /* DCE/RPC: a 16-bit frag_length that counts its header */
	    {", framing: ncacn", TSGATE_CONFIG_FRAMING_NCACN, 65535},
	    {", framing: length32", TSGATE_CONFIG_FRAMING_LENGTH32, 1048576},
	    {"", TSGATE_CONFIG_FRAMING_RAW, 1048576},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tsgate_config_route *r = load_route(cases[i].keys);

		ck_assert_int_eq(r->framing, cases[i].framing);
		ck_assert_uint_eq(r->max_pdu, cases[i].max_pdu);
		ck_assert_uint_eq(
		    tsgate_config_framing_default_max_pdu(cases[i].framing),
		    cases[i].max_pdu);
	}
}
END_TEST

START_TEST(test_given_value_wins)
{
	struct tsgate_config_route *r;

	/* max_pdu before framing: the default must not overwrite it */
	r = load_route(", max_pdu: 64KiB, framing: nbt");
	ck_assert_uint_eq(r->max_pdu, 65536);
	r = load_route(", framing: nbt, max_pdu: 1MiB");
	ck_assert_uint_eq(r->max_pdu, 1048576);
	/* larger than the protocol can send is the operator's choice */
	r = load_route(", framing: ncacn, max_pdu: 1MiB");
	ck_assert_uint_eq(r->max_pdu, 1048576);
}
END_TEST

static Suite *max_pdu_suite(void)
{
	Suite *s = suite_create("config_max_pdu");
	TCase *tc = tt_tcase(s, "defaults", 30);

	tcase_add_test(tc, test_defaults_by_framing);
	tcase_add_test(tc, test_given_value_wins);
	return s;
}

int main(void)
{
	return tt_run_suite(max_pdu_suite());
}
