/* SPDX-License-Identifier: MIT */
/*
 * fuzz-ticket-keys: tsgate_ticket_keys_parse() on any file text.
 *
 * Success and error exclude each other; a success found 1.. keys and the
 * first is 48 or 80 bytes; an error is "NAME:LINE: ..." or "NAME: holds
 * no key" with LINE within the text, and never holds a base64 run of 16
 * characters or more from the input (no key bytes in messages).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ticket_keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned count_lines(const uint8_t *data, size_t size)
{
	unsigned n = 1;
	size_t i;

	for (i = 0; i < size; i++) {
		n += data[i] == '\n';
	}
	return n;
}

static void check_error(const char *error, const uint8_t *data, size_t size)
{
	const char *rest;
	unsigned long line;
	char *end;

	if (strncmp(error, "f.keys:", 7) != 0) {
		abort();
	}
	rest = error + 7;
	if (strcmp(rest, " holds no key") != 0) {
		line = strtoul(rest, &end, 10);
		if (end == rest || *end != ':' || line == 0 ||
		    line > count_lines(data, size)) {
			abort();
		}
	}
	/* no 16-character piece of the input's base64 in the message */
	for (size_t i = 0; i + 16 <= strlen(error); i++) {
		if (memmem(data, size, error + i, 16) != NULL &&
		    strspn(
			error + i,
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			"0123456789+/=") >= 16) {
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TALLOC_CTX *mem = talloc_new(NULL);
	struct tsgate_ticket_secret *s = NULL;
	char *error = NULL;
	size_t num = 0;
	int ret;

	ret = tsgate_ticket_keys_parse(mem, "f.keys", (const char *)data, size,
				       &s, &num, &error);
	if (ret == 0) {
		if (error != NULL || s == NULL || num == 0 ||
		    (s->len != 48 && s->len != 80)) {
			abort();
		}
	} else if (ret == EINVAL) {
		if (error == NULL || s != NULL) {
			abort();
		}
		check_error(error, data, size);
	} else if (ret != ENOMEM) {
		abort();
	}
	talloc_free(mem);
	return 0;
}
