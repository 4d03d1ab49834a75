/*
 * tsgate logging: text or JSON lines on stderr.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

struct tsgate_log_field {
	const char *key;
	char *value;
	bool number;
};

struct tsgate_log_kv {
	struct tsgate_log_field *fields;
	size_t count;
};

static const char *const level_names[] = {
    [TSGATE_LOG_ERROR] = "error",
    [TSGATE_LOG_WARN] = "warn",
    [TSGATE_LOG_INFO] = "info",
    [TSGATE_LOG_DEBUG] = "debug",
};

int tsgate_log_level_parse(const char *s, enum tsgate_log_level *level)
{
	if (s == NULL) {
		return EINVAL;
	}
	if (strcmp(s, "error") == 0) {
		*level = TSGATE_LOG_ERROR;
	} else if (strcmp(s, "warn") == 0 || strcmp(s, "warning") == 0) {
		*level = TSGATE_LOG_WARN;
	} else if (strcmp(s, "info") == 0) {
		*level = TSGATE_LOG_INFO;
	} else if (strcmp(s, "debug") == 0) {
		*level = TSGATE_LOG_DEBUG;
	} else {
		return EINVAL;
	}
	return 0;
}

int tsgate_log_format_parse(const char *s, enum tsgate_log_format *format)
{
	if (s == NULL) {
		return EINVAL;
	}
	if (strcmp(s, "text") == 0) {
		*format = TSGATE_LOG_TEXT;
	} else if (strcmp(s, "json") == 0) {
		*format = TSGATE_LOG_JSON;
	} else {
		return EINVAL;
	}
	return 0;
}

struct tsgate_log *tsgate_log_new(TALLOC_CTX *mem_ctx,
				  enum tsgate_log_level level,
				  enum tsgate_log_format format)
{
	struct tsgate_log *log = talloc_zero(mem_ctx, struct tsgate_log);

	if (log == NULL) {
		return NULL;
	}
	log->level = level;
	log->format = format;
	log->out = stderr;
	log->worker = -1;
	return log;
}

bool tsgate_log_enabled(const struct tsgate_log *log,
			enum tsgate_log_level level)
{
	return log != NULL && level <= log->level;
}

struct tsgate_log_kv *tsgate_log_kv_new(TALLOC_CTX *mem_ctx)
{
	return talloc_zero(mem_ctx, struct tsgate_log_kv);
}

static void kv_add(struct tsgate_log_kv *kv,
		   const char *key,
		   char *value,
		   bool number)
{
	struct tsgate_log_field *f;

	if (kv == NULL || value == NULL) {
		return;
	}
	f = talloc_realloc(kv, kv->fields, struct tsgate_log_field,
			   kv->count + 1);
	if (f == NULL) {
		return;
	}
	kv->fields = f;
	f[kv->count].key = key;
	f[kv->count].value = talloc_steal(kv->fields, value);
	f[kv->count].number = number;
	kv->count++;
}

void tsgate_log_kv_str(struct tsgate_log_kv *kv,
		       const char *key,
		       const char *value)
{
	if (kv == NULL || value == NULL) {
		return;
	}
	kv_add(kv, key, talloc_strdup(kv, value), false);
}

void tsgate_log_kv_u64(struct tsgate_log_kv *kv,
		       const char *key,
		       uint64_t value)
{
	if (kv == NULL) {
		return;
	}
	kv_add(kv, key, talloc_asprintf(kv, "%llu", (unsigned long long)value),
	       true);
}

void tsgate_log_kv_fmt(struct tsgate_log_kv *kv,
		       const char *key,
		       const char *fmt,
		       ...)
{
	va_list ap;
	char *s;

	if (kv == NULL) {
		return;
	}
	va_start(ap, fmt);
	s = talloc_vasprintf(kv, fmt, ap);
	va_end(ap);
	kv_add(kv, key, s, false);
}

/* Text values are bare when safe, else quoted with C-like escapes. */
static bool text_needs_quotes(const char *s)
{
	const unsigned char *p;

	if (*s == '\0') {
		return true;
	}
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p <= ' ' || *p == '"' || *p == '\\' || *p == '=' ||
		    *p >= 0x7f) {
			return true;
		}
	}
	return false;
}

static char *append_escaped(char *buf, const char *s, bool json)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; buf != NULL && *p != '\0'; p++) {
		switch (*p) {
		case '"':
			buf = talloc_strdup_append_buffer(buf, "\\\"");
			break;
		case '\\':
			buf = talloc_strdup_append_buffer(buf, "\\\\");
			break;
		case '\n':
			buf = talloc_strdup_append_buffer(buf, "\\n");
			break;
		case '\r':
			buf = talloc_strdup_append_buffer(buf, "\\r");
			break;
		case '\t':
			buf = talloc_strdup_append_buffer(buf, "\\t");
			break;
		default:
			if (*p < 0x20 || *p == 0x7f || (!json && *p >= 0x80)) {
				/*
				 * JSON keeps UTF-8 as it is; text mode shows
				 * anything non-ASCII as escapes so a line
				 * stays one terminal line.
				 */
				buf = talloc_asprintf_append_buffer(
				    buf, json ? "\\u%04x" : "\\x%02x", *p);
			} else {
				buf = talloc_asprintf_append_buffer(buf, "%c",
								    *p);
			}
			break;
		}
	}
	return buf;
}

static char *timestamp(TALLOC_CTX *mem_ctx)
{
	struct timeval tv;
	struct tm tm;
	char date[32];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	return talloc_asprintf(mem_ctx, "%s.%03ldZ", date,
			       (long)(tv.tv_usec / 1000));
}

char *tsgate_log_kv_render(TALLOC_CTX *mem_ctx,
			   enum tsgate_log_format format,
			   enum tsgate_log_level level,
			   const char *event,
			   const struct tsgate_log_kv *kv)
{
	char *ts = timestamp(mem_ctx);
	char *buf;
	size_t i;
	size_t count = kv != NULL ? kv->count : 0;

	if (ts == NULL) {
		return NULL;
	}
	if (format == TSGATE_LOG_JSON) {
		buf = talloc_asprintf(mem_ctx,
				      "{\"time\":\"%s\",\"level\":\"%s\","
				      "\"event\":\"",
				      ts, level_names[level]);
		buf = append_escaped(buf, event, true);
		buf = talloc_strdup_append_buffer(buf, "\"");
		for (i = 0; i < count; i++) {
			const struct tsgate_log_field *f = &kv->fields[i];

			buf = talloc_strdup_append_buffer(buf, ",\"");
			buf = append_escaped(buf, f->key, true);
			buf = talloc_strdup_append_buffer(buf, "\":");
			if (f->number) {
				buf =
				    talloc_strdup_append_buffer(buf, f->value);
				continue;
			}
			buf = talloc_strdup_append_buffer(buf, "\"");
			buf = append_escaped(buf, f->value, true);
			buf = talloc_strdup_append_buffer(buf, "\"");
		}
		buf = talloc_strdup_append_buffer(buf, "}");
	} else {
		buf =
		    talloc_asprintf(mem_ctx, "%s %s ", ts, level_names[level]);
		buf = append_escaped(buf, event, false);
		for (i = 0; i < count; i++) {
			const struct tsgate_log_field *f = &kv->fields[i];

			buf =
			    talloc_asprintf_append_buffer(buf, " %s=", f->key);
			if (!text_needs_quotes(f->value)) {
				buf =
				    talloc_strdup_append_buffer(buf, f->value);
				continue;
			}
			buf = talloc_strdup_append_buffer(buf, "\"");
			buf = append_escaped(buf, f->value, false);
			buf = talloc_strdup_append_buffer(buf, "\"");
		}
	}
	talloc_free(ts);
	return buf;
}

void tsgate_log_kv_emit(struct tsgate_log *log,
			enum tsgate_log_level level,
			const char *event,
			const struct tsgate_log_kv *kv)
{
	struct tsgate_log_kv *all;
	char *line;

	if (!tsgate_log_enabled(log, level)) {
		return;
	}
	all = log->worker >= 0 ? tsgate_log_kv_new(NULL) : NULL;
	if (all != NULL) {
		size_t i;

		tsgate_log_kv_u64(all, "worker", (uint64_t)log->worker);
		for (i = 0; kv != NULL && i < kv->count; i++) {
			kv_add(all, kv->fields[i].key,
			       talloc_strdup(all, kv->fields[i].value),
			       kv->fields[i].number);
		}
		line =
		    tsgate_log_kv_render(NULL, log->format, level, event, all);
		talloc_free(all);
	} else {
		line =
		    tsgate_log_kv_render(NULL, log->format, level, event, kv);
	}
	if (line == NULL) {
		return;
	}
	/* One fputs per line: lines from several workers do not mix. */
	line = talloc_strdup_append_buffer(line, "\n");
	if (line != NULL) {
		fputs(line, log->out);
		fflush(log->out);
	}
	talloc_free(line);
}

void tsgate_log_msg(struct tsgate_log *log,
		    enum tsgate_log_level level,
		    const char *event,
		    const char *fmt,
		    ...)
{
	struct tsgate_log_kv *kv;
	va_list ap;
	char *msg;

	if (!tsgate_log_enabled(log, level)) {
		return;
	}
	kv = tsgate_log_kv_new(NULL);
	if (kv == NULL) {
		return;
	}
	va_start(ap, fmt);
	msg = talloc_vasprintf(kv, fmt, ap);
	va_end(ap);
	kv_add(kv, "msg", msg, false);
	tsgate_log_kv_emit(log, level, event, kv);
	talloc_free(kv);
}
