/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of gateway/ops/log.c: level and format names, text and JSON
 * rendering, escaping of values that come from the network (no forged
 * lines), level filtering of what is written.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <check.h>
#include <talloc.h>
#include <tevent.h>

#include "tt.h"
#include "log.h"
#include "talloc_failinject.h"

/* The part after the timestamp: "LEVEL EVENT ..." or the JSON tail. */
static const char *after_time(const char *line, bool json)
{
	const char *p;

	if (json) {
		p = strstr(line, "\",\"level\"");
		ck_assert_ptr_nonnull(p);
		ck_assert(strncmp(line, "{\"time\":\"", 9) == 0);
		/* 2026-01-02T03:04:05.678Z */
		ck_assert_uint_eq((size_t)(p - line) - 9, 24);
		return p + 2;
	}
	p = strchr(line, ' ');
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq((size_t)(p - line), 24);
	ck_assert_int_eq(line[23], 'Z');
	return p + 1;
}

START_TEST(test_text)
{
	struct tsgate_log_kv *kv = tsgate_log_kv_new(tt_mem);
	char *line;

	tsgate_log_kv_str(kv, "listener", "public-tls");
	tsgate_log_kv_str(kv, "skipped", NULL);
	tsgate_log_kv_str(kv, "identity", "CN=alice,O=Example Corp");
	tsgate_log_kv_u64(kv, "bytes_in", 12345);
	tsgate_log_kv_str(kv, "empty", "");
	line = tsgate_log_kv_render(tt_mem, TSGATE_CONFIG_LOG_TEXT,
				    TSGATE_CONFIG_LOG_INFO, "conn", kv);
	ck_assert_ptr_nonnull(line);
	ck_assert_str_eq(after_time(line, false),
			 "info conn listener=public-tls "
			 "identity=\"CN=alice,O=Example Corp\" bytes_in=12345 "
			 "empty=\"\"");
}
END_TEST

START_TEST(test_text_escapes_forgery)
{
	struct tsgate_log_kv *kv = tsgate_log_kv_new(tt_mem);
	char *line;

	/* an SNI trying to start a second log line */
	tsgate_log_kv_str(kv, "sni",
			  "x\n2026-01-01T00:00:00.000Z info conn result=ok");
	tsgate_log_kv_str(kv, "q", "a\"b\\c\t\x01\xc3\xa9");
	line = tsgate_log_kv_render(tt_mem, TSGATE_CONFIG_LOG_TEXT,
				    TSGATE_CONFIG_LOG_WARNING, "conn", kv);
	ck_assert_ptr_null(strchr(line, '\n'));
	ck_assert_str_eq(
	    after_time(line, false),
	    "warning conn sni=\"x\\n2026-01-01T00:00:00.000Z info "
	    "conn result=ok\" q=\"a\\\"b\\\\c\\t\\x01\\xc3\\xa9\"");
}
END_TEST

START_TEST(test_json)
{
	struct tsgate_log_kv *kv = tsgate_log_kv_new(tt_mem);
	char *line;

	tsgate_log_kv_str(kv, "peer", "ipv6:::1:443");
	tsgate_log_kv_u64(kv, "bytes_out", 7);
	tsgate_log_kv_str(kv, "principal", "al\"ice\n\x7f\xc3\xa9@R");
	tsgate_log_kv_fmt(kv, "msg", "%d %s", 42, "x");
	line = tsgate_log_kv_render(tt_mem, TSGATE_CONFIG_LOG_JSON,
				    TSGATE_CONFIG_LOG_ERROR, "conn", kv);
	ck_assert_ptr_null(strchr(line, '\n'));
	/* numbers stay numbers, UTF-8 stays UTF-8, controls are \u00XX */
	ck_assert_str_eq(after_time(line, true),
			 "\"level\":\"error\",\"event\":\"conn\","
			 "\"peer\":\"ipv6:::1:443\",\"bytes_out\":7,"
			 "\"principal\":\"al\\\"ice\\n\\u007f\xc3\xa9@R\","
			 "\"msg\":\"42 x\"}");
}
END_TEST

START_TEST(test_levels_filter_output)
{
	struct tsgate_log *log;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	log = tsgate_log_new(tt_mem, TSGATE_CONFIG_LOG_WARNING,
			     TSGATE_CONFIG_LOG_TEXT);
	log->out = f;
	ck_assert(tsgate_log_enabled(log, TSGATE_CONFIG_LOG_ERROR));
	ck_assert(!tsgate_log_enabled(log, TSGATE_CONFIG_LOG_INFO));
	tsgate_log_msg(log, TSGATE_CONFIG_LOG_INFO, "start", "hidden %d", 1);
	tsgate_log_msg(log, TSGATE_CONFIG_LOG_WARNING, "start", "shown %d", 2);
	fclose(f);
	ck_assert_ptr_null(strstr(buf, "hidden"));
	ck_assert_ptr_nonnull(strstr(buf, " warning start msg=\"shown 2\"\n"));
	ck_assert_ptr_eq(strchr(buf, '\n'), buf + len - 1); /* one line */
	free(buf);
}
END_TEST

/* A log writing to an unlinked temporary file (it has a dev:ino). */
static struct tsgate_log *file_log(FILE **pf)
{
	struct tsgate_log *log;

	*pf = tmpfile();
	ck_assert_ptr_nonnull(*pf);
	log = tsgate_log_new(tt_mem, TSGATE_CONFIG_LOG_DEBUG,
			     TSGATE_CONFIG_LOG_TEXT);
	log->out = *pf;
	return log;
}

static char *file_text(FILE *f)
{
	char *buf = talloc_zero_array(tt_mem, char, 8192);

	fflush(f);
	rewind(f);
	(void)fread(buf, 1, 8191, f);
	return buf;
}

START_TEST(test_journal_prefix)
{
	static const char *const want[] = {"<3>", "<4>", "<6>", "<7>"};
	struct stat st;
	FILE *f;
	char *text, *env, *line;
	struct tsgate_log *log = file_log(&f);
	int i;

	ck_assert_int_eq(fstat(fileno(f), &st), 0);
	env = talloc_asprintf(tt_mem, "%ju:%ju", (uintmax_t)st.st_dev,
			      (uintmax_t)st.st_ino);
	setenv("JOURNAL_STREAM", env, 1);
	ck_assert(tsgate_log_detect_journal(log));
	for (i = TSGATE_CONFIG_LOG_ERROR; i <= TSGATE_CONFIG_LOG_DEBUG; i++) {
		tsgate_log_msg(log, (enum tsgate_config_log_level)i, "start",
			       "level %d", i);
	}
	log->format = TSGATE_CONFIG_LOG_JSON;
	tsgate_log_msg(log, TSGATE_CONFIG_LOG_WARNING, "start", "json");
	text = file_text(f);
	line = text;
	for (i = 0; i < 4; i++) {
		ck_assert_msg(strncmp(line, want[i], 3) == 0, "%s", line);
		/* then the line as always: its timestamp */
		ck_assert_int_eq(line[3 + 23], 'Z');
		ck_assert_ptr_nonnull(strstr(
		    line,
		    tsgate_log_level_name((enum tsgate_config_log_level)i)));
		line = strchr(line, '\n') + 1;
	}
	ck_assert(strncmp(line, "<4>{\"time\":", 11) == 0);

	/* a stream that is not the one named (stderr redirected) */
	setenv("JOURNAL_STREAM", "1:2", 1);
	ck_assert(!tsgate_log_detect_journal(log));
	setenv("JOURNAL_STREAM", talloc_asprintf(tt_mem, "%sx", env), 1);
	ck_assert(!tsgate_log_detect_journal(log));
	unsetenv("JOURNAL_STREAM");
	ck_assert(!tsgate_log_detect_journal(log));
	log->format = TSGATE_CONFIG_LOG_TEXT;
	tsgate_log_msg(log, TSGATE_CONFIG_LOG_ERROR, "stop", "plain");
	text = file_text(f);
	line = strstr(text, "error stop msg=plain");
	ck_assert_ptr_nonnull(line);
	/* the time (24) and a space, after the line feed: no <3> */
	ck_assert_int_eq(line[-2 - 24], '\n');
	fclose(f);
}
END_TEST

START_TEST(test_level_override)
{
	unsetenv(TSGATE_LOG_LEVEL_ENV);
	ck_assert_int_eq(tsgate_log_level_effective(TSGATE_CONFIG_LOG_ERROR),
			 TSGATE_CONFIG_LOG_ERROR);
	setenv(TSGATE_LOG_LEVEL_ENV, "debug", 1);
	ck_assert_int_eq(tsgate_log_level_effective(TSGATE_CONFIG_LOG_ERROR),
			 TSGATE_CONFIG_LOG_DEBUG);
	setenv(TSGATE_LOG_LEVEL_ENV, "warning", 1);
	ck_assert_int_eq(tsgate_log_level_effective(TSGATE_CONFIG_LOG_DEBUG),
			 TSGATE_CONFIG_LOG_WARNING);
	/* the file's alias is accepted here too */
	setenv(TSGATE_LOG_LEVEL_ENV, "warn", 1);
	ck_assert_int_eq(tsgate_log_level_effective(TSGATE_CONFIG_LOG_DEBUG),
			 TSGATE_CONFIG_LOG_WARNING);
	/* not a level: the file's (main refuses it before we get here) */
	setenv(TSGATE_LOG_LEVEL_ENV, "loud", 1);
	ck_assert_int_eq(tsgate_log_level_effective(TSGATE_CONFIG_LOG_INFO),
			 TSGATE_CONFIG_LOG_INFO);
	unsetenv(TSGATE_LOG_LEVEL_ENV);
	ck_assert_str_eq(tsgate_log_level_name(TSGATE_CONFIG_LOG_WARNING),
			 "warning");
}
END_TEST

START_TEST(test_worker_field_leads)
{
	struct tsgate_log *log;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	log = tsgate_log_new(tt_mem, TSGATE_CONFIG_LOG_INFO,
			     TSGATE_CONFIG_LOG_JSON);
	log->out = f;
	log->worker = 3;
	tsgate_log_msg(log, TSGATE_CONFIG_LOG_INFO, "start", "hi");
	fclose(f);
	ck_assert_ptr_nonnull(
	    strstr(buf, "\"event\":\"start\",\"worker\":3,\"msg\":\"hi\"}\n"));
	free(buf);
}
END_TEST

/* Whether line (without "\n") looks whole: a timestamp, then the rest. */
static bool line_is_whole(const char *line, size_t len, bool json)
{
	const char *ts = json ? line + 9 : line;
	size_t i;

	if (json) {
		if (len < 11 || strncmp(line, "{\"time\":\"", 9) != 0 ||
		    line[len - 1] != '}') {
			return false;
		}
	}
	/* 2026-01-02T03:04:05.678Z */
	if ((size_t)(ts - line) + 24 > len) {
		return false;
	}
	for (i = 0; i < 24; i++) {
		const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";

		if (shape[i] == 'd' ? (ts[i] < '0' || ts[i] > '9')
				    : ts[i] != shape[i]) {
			return false;
		}
	}
	return true;
}

/*
 * Issue 13 defect 9: with talloc failing, every line still comes out
 * whole and keeps its fields (before: lone '"' lines, lost reasons).
 */
static void check_lines_under_failures(enum tsgate_config_log_format format,
				       unsigned rate)
{
	struct tsgate_log *log;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	const char *p;
	unsigned lines = 0;
	unsigned i;
	bool json = format == TSGATE_CONFIG_LOG_JSON;

	ck_assert_ptr_nonnull(f);
	log = tsgate_log_new(tt_mem, TSGATE_CONFIG_LOG_INFO, format);
	ck_assert_ptr_nonnull(log);
	log->out = f;
	talloc_failinject_set(rate, 7 + rate, 0);
	for (i = 0; i < 300; i++) {
		struct tsgate_log_kv *kv = tsgate_log_kv_new(NULL);

		tsgate_log_kv_u64(kv, "id", i);
		tsgate_log_kv_str(kv, "identity", "CN=a \"quoted\" name");
		tsgate_log_kv_fmt(kv, "detail", "try %u\n", i);
		tsgate_log_kv_str(kv, "reason", "tls handshake");
		tsgate_log_kv_emit(log, TSGATE_CONFIG_LOG_WARNING, "conn", kv);
		talloc_free(kv);
		tsgate_log_msg(log, TSGATE_CONFIG_LOG_INFO, "note", "line %u",
			       i);
	}
	talloc_failinject_set(0, 0, 0);
	fclose(f);
	ck_assert_uint_gt(talloc_failinject_failed(), 0);
	for (p = buf; p < buf + len; lines++) {
		const char *nl = memchr(p, '\n', (size_t)(buf + len - p));

		ck_assert_msg(nl != NULL, "last line not ended");
		ck_assert_msg(line_is_whole(p, (size_t)(nl - p), json),
			      "line %u is not whole: %.*s", lines,
			      (int)(nl - p), p);
		if (lines % 2 == 0) {
			ck_assert_msg(
			    memmem(p, (size_t)(nl - p), "reason", 6) != NULL,
			    "line %u lost its reason: %.*s", lines,
			    (int)(nl - p), p);
		} else {
			ck_assert_msg(memmem(p, (size_t)(nl - p), "line ", 5) !=
					  NULL,
				      "line %u lost its msg: %.*s", lines,
				      (int)(nl - p), p);
		}
		p = nl + 1;
	}
	ck_assert_uint_eq(lines, 600);
	free(buf);
}

START_TEST(test_whole_lines_failing_allocs)
{
	static const unsigned rates[] = {50, 10, 3, 2, 1};

	check_lines_under_failures(_i % 2 ? TSGATE_CONFIG_LOG_JSON
					  : TSGATE_CONFIG_LOG_TEXT,
				   rates[_i / 2]);
}
END_TEST

/* A line too long for the buffer is cut between characters and marked. */
START_TEST(test_long_line_cut_and_marked)
{
	struct tsgate_log_kv *kv = tsgate_log_kv_new(tt_mem);
	char *big = talloc_zero_size(tt_mem, 3001);
	const char *tail;
	char *line;
	size_t n;

	memset(big, 0x01, 3000);
	tsgate_log_kv_str(kv, "first", "kept");
	tsgate_log_kv_str(kv, "ctl", big); /* 6 bytes each once escaped */
	tsgate_log_kv_str(kv, "after", "dropped");
	line = tsgate_log_kv_render(tt_mem, TSGATE_CONFIG_LOG_JSON,
				    TSGATE_CONFIG_LOG_WARNING, "conn", kv);
	ck_assert_ptr_nonnull(line);
	n = strlen(line);
	ck_assert_uint_lt(n, 8192);
	ck_assert(line_is_whole(line, n, true));
	ck_assert_ptr_nonnull(strstr(line, "\"first\":\"kept\""));
	ck_assert_ptr_null(strstr(line, "dropped"));
	/* the cut value ends with a whole escape and its quote */
	tail = "\\u0001\\u0001\",\"truncated\":true}";
	ck_assert_str_eq(line + n - strlen(tail), tail);

	memset(big, 'x', 3000);
	tsgate_log_kv_str(kv, "more", big);
	tsgate_log_kv_str(kv, "store_full", big); /* beyond the 4 KiB store */
	line = tsgate_log_kv_render(tt_mem, TSGATE_CONFIG_LOG_TEXT,
				    TSGATE_CONFIG_LOG_WARNING, "conn", kv);
	n = strlen(line);
	ck_assert(line_is_whole(line, n, false));
	tail = " truncated=true";
	ck_assert_str_eq(line + n - strlen(tail), tail);
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc;

	tc = tt_tcase(s, "names", 10);

	tc = tt_tcase(s, "render", 10);
	tcase_add_test(tc, test_text);
	tcase_add_test(tc, test_text_escapes_forgery);
	tcase_add_test(tc, test_json);

	tc = tt_tcase(s, "output", 10);
	tcase_add_test(tc, test_levels_filter_output);
	tcase_add_test(tc, test_worker_field_leads);
	tcase_add_test(tc, test_journal_prefix);
	tcase_add_test(tc, test_level_override);

	tc = tt_tcase(s, "memory_pressure", 30);
	tcase_add_loop_test(tc, test_whole_lines_failing_allocs, 0, 10);
	tcase_add_test(tc, test_long_line_cut_and_marked);

	return s;
}

int main(void)
{
	return tt_run_suite(log_suite());
}
