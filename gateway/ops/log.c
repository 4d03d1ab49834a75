/* SPDX-License-Identifier: MIT */
/*
 * tsgate logging: text or JSON lines on stderr.
 */
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/*
 * A log line must come out whole or not at all, also when allocations
 * fail (docs/hardening.md, "Allocation failures"). So a line never
 * depends on an allocation made while it is built: the fields of a line
 * live in one fixed-size block (the kv), the line is rendered into a
 * fixed buffer on the stack and written with one write(). What does not
 * fit is cut at a character boundary and the line says truncated=true.
 */
#define LOG_KV_FIELDS 32
#define LOG_KV_STORE  4096
#define LOG_LINE_MAX  8192

struct tsgate_log_field {
	const char *key;
	const char *value; /* inside kv->store */
	bool number;
};

struct tsgate_log_kv {
	struct tsgate_log_field fields[LOG_KV_FIELDS];
	size_t count;
	size_t used;     /* bytes of store in use */
	bool incomplete; /* a field did not fit or its value was lost */
	bool lent;       /* the spare kv, handed out by tsgate_log_kv_new() */
	char store[LOG_KV_STORE];
};

/*
 * The spare kv: handed out when tsgate_log_kv_new() cannot allocate, so
 * a connection's last line (with its reason) still gets out under memory
 * pressure. Lines are built and emitted one at a time (each process is
 * single-threaded), so one spare is enough. Its destructor refuses the
 * caller's talloc_free() and only resets it; it really goes with the
 * logger that made it.
 */
static struct tsgate_log_kv *spare_kv;

static int spare_kv_destructor(struct tsgate_log_kv *kv)
{
	if (kv->lent) {
		kv->lent = false;
		kv->count = 0;
		kv->used = 0;
		kv->incomplete = false;
		return -1;
	}
	if (spare_kv == kv) {
		spare_kv = NULL;
	}
	return 0;
}

static const char *const level_names[] = {
    [TSGATE_CONFIG_LOG_ERROR] = "error",
    [TSGATE_CONFIG_LOG_WARNING] = "warning",
    [TSGATE_CONFIG_LOG_INFO] = "info",
    [TSGATE_CONFIG_LOG_DEBUG] = "debug",
};

/* syslog priorities (sd-daemon(3) "<N>" prefixes) of the levels */
static const char *const level_prefixes[] = {
    [TSGATE_CONFIG_LOG_ERROR] = "<3>",
    [TSGATE_CONFIG_LOG_WARNING] = "<4>",
    [TSGATE_CONFIG_LOG_INFO] = "<6>",
    [TSGATE_CONFIG_LOG_DEBUG] = "<7>",
};

const char *tsgate_log_level_name(enum tsgate_config_log_level level)
{
	if ((unsigned)level > TSGATE_CONFIG_LOG_DEBUG) {
		return "debug";
	}
	return level_names[level];
}

enum tsgate_config_log_level tsgate_log_level_effective(
    enum tsgate_config_log_level configured)
{
	enum tsgate_config_log_level level;

	if (tsgate_config_log_level_parse(getenv(TSGATE_LOG_LEVEL_ENV),
					  &level) == 0) {
		return level;
	}
	return configured;
}

bool tsgate_log_detect_journal(struct tsgate_log *log)
{
	const char *env = getenv("JOURNAL_STREAM");
	uintmax_t dev, ino;
	struct stat st;
	char end;
	int fd;

	log->journal = false;
	fd = log->out != NULL ? fileno(log->out) : -1;
	if (env == NULL || fd < 0 ||
	    sscanf(env, "%ju:%ju%c", &dev, &ino, &end) != 2 ||
	    fstat(fd, &st) != 0) {
		return false;
	}
	/* a redirected stderr inherits the variable but not the stream */
	log->journal =
	    (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
	return log->journal;
}

struct tsgate_log *tsgate_log_new(TALLOC_CTX *mem_ctx,
				  enum tsgate_config_log_level level,
				  enum tsgate_config_log_format format)
{
	struct tsgate_log *log = talloc_zero(mem_ctx, struct tsgate_log);

	if (log == NULL) {
		return NULL;
	}
	log->level = level;
	log->format = format;
	log->out = stderr;
	log->worker = -1;
	tsgate_log_detect_journal(log);
	if (spare_kv == NULL) {
		spare_kv = talloc_zero(log, struct tsgate_log_kv);
		if (spare_kv != NULL) {
			talloc_set_destructor(spare_kv, spare_kv_destructor);
		}
	}
	return log;
}

bool tsgate_log_enabled(const struct tsgate_log *log,
			enum tsgate_config_log_level level)
{
	return log != NULL && level <= log->level;
}

struct tsgate_log_kv *tsgate_log_kv_new(TALLOC_CTX *mem_ctx)
{
	struct tsgate_log_kv *kv = talloc(mem_ctx, struct tsgate_log_kv);

	if (kv == NULL) {
		if (spare_kv == NULL || spare_kv->lent) {
			return NULL;
		}
		kv = spare_kv;
		kv->lent = true;
		/* the caller's fields are all there; say what happened */
		kv->count = 0;
		kv->used = 0;
		kv->incomplete = false;
		return kv;
	}
	kv->count = 0;
	kv->used = 0;
	kv->incomplete = false;
	kv->lent = false;
	return kv;
}

/* A field whose value is copied into the kv's store (cut if too long). */
static void kv_add(struct tsgate_log_kv *kv,
		   const char *key,
		   const char *value,
		   size_t len,
		   bool number)
{
	size_t room;
	char *dst;

	if (kv->count == LOG_KV_FIELDS || kv->used == LOG_KV_STORE) {
		kv->incomplete = true;
		return;
	}
	room = LOG_KV_STORE - kv->used - 1;
	if (len > room) {
		len = room;
		kv->incomplete = true;
	}
	dst = kv->store + kv->used;
	memcpy(dst, value, len);
	dst[len] = '\0';
	kv->used += len + 1;
	kv->fields[kv->count].key = key;
	kv->fields[kv->count].value = dst;
	kv->fields[kv->count].number = number;
	kv->count++;
}

void tsgate_log_kv_str(struct tsgate_log_kv *kv,
		       const char *key,
		       const char *value)
{
	if (kv == NULL || value == NULL) {
		return;
	}
	kv_add(kv, key, value, strlen(value), false);
}

void tsgate_log_kv_u64(struct tsgate_log_kv *kv,
		       const char *key,
		       uint64_t value)
{
	char num[24];
	int n;

	if (kv == NULL) {
		return;
	}
	n = snprintf(num, sizeof(num), "%llu", (unsigned long long)value);
	kv_add(kv, key, num, (size_t)n, true);
}

/* a format attribute: clang's -Wformat-nonliteral checks the callers */
static void kv_vfmt(struct tsgate_log_kv *kv,
		    const char *key,
		    const char *fmt,
		    va_list ap) PRINTF_ATTRIBUTE(3, 0);

static void kv_vfmt(struct tsgate_log_kv *kv,
		    const char *key,
		    const char *fmt,
		    va_list ap) __attribute__((format(printf, 3, 0)));

static void kv_vfmt(struct tsgate_log_kv *kv,
		    const char *key,
		    const char *fmt,
		    va_list ap)
{
	char buf[LOG_KV_STORE];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);

	if (n < 0) {
		kv->incomplete = true;
		return;
	}
	if ((size_t)n >= sizeof(buf)) {
		n = sizeof(buf) - 1;
		kv->incomplete = true;
	}
	kv_add(kv, key, buf, (size_t)n, false);
}

void tsgate_log_kv_fmt(struct tsgate_log_kv *kv,
		       const char *key,
		       const char *fmt,
		       ...)
{
	va_list ap;

	if (kv == NULL) {
		return;
	}
	va_start(ap, fmt);
	kv_vfmt(kv, key, fmt, ap);
	va_end(ap);
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

/*
 * The line being rendered: a fixed buffer. LINE_RESERVE bytes stay free
 * for what closes a cut line (a quote, the truncated marker, "}", "\n").
 */
#define LINE_RESERVE 32

struct log_line {
	char buf[LOG_LINE_MAX];
	size_t len;
	bool full; /* something did not fit: stop adding, mark the line */
};

static bool line_fits(const struct log_line *l, size_t n)
{
	return !l->full && l->len + n <= sizeof(l->buf) - LINE_RESERVE;
}

/* Appends all of s or nothing (then the line is full). */
static bool line_put(struct log_line *l, const char *s, size_t n)
{
	if (!line_fits(l, n)) {
		l->full = true;
		return false;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	return true;
}

static bool line_puts(struct log_line *l, const char *s)
{
	return line_put(l, s, strlen(s));
}

/* Length of the UTF-8 sequence that starts with c (1 when not a lead). */
static size_t utf8_len(unsigned char c)
{
	if (c >= 0xf0 && c <= 0xf7) {
		return 4;
	}
	if (c >= 0xe0) {
		return c <= 0xef ? 3 : 1;
	}
	if (c >= 0xc0) {
		return 2;
	}
	return 1;
}

/*
 * Escapes s into the line, one character (or one UTF-8 sequence in JSON)
 * at a time, so a cut never splits an escape or a character.
 */
static void line_put_escaped(struct log_line *l, const char *s, bool json)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		char esc[8];
		size_t n = 1;
		bool ok;

		switch (*p) {
		case '"':
			ok = line_puts(l, "\\\"");
			break;
		case '\\':
			ok = line_puts(l, "\\\\");
			break;
		case '\n':
			ok = line_puts(l, "\\n");
			break;
		case '\r':
			ok = line_puts(l, "\\r");
			break;
		case '\t':
			ok = line_puts(l, "\\t");
			break;
		default:
			if (*p < 0x20 || *p == 0x7f || (!json && *p >= 0x80)) {
				/*
				 * JSON keeps UTF-8 as it is; text mode shows
				 * anything non-ASCII as escapes so a line
				 * stays one terminal line.
				 */
				snprintf(esc, sizeof(esc),
					 json ? "\\u%04x" : "\\x%02x", *p);
				ok = line_puts(l, esc);
			} else {
				size_t i;

				n = json ? utf8_len(*p) : 1;
				for (i = 1; i < n; i++) {
					if (p[i] < 0x80 || p[i] > 0xbf) {
						break; /* not UTF-8: bytes alone
							*/
					}
				}
				n = i;
				ok = line_put(l, (const char *)p, n);
			}
			break;
		}
		if (!ok) {
			return;
		}
		p += n;
	}
}

static void line_timestamp(struct log_line *l)
{
	struct timeval tv;
	struct tm tm;
	char date[32];
	char ts[64];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts, sizeof(ts), "%s.%03dZ", date,
		 (int)(tv.tv_usec / 1000) % 1000);
	line_puts(l, ts);
}

static void line_field(struct log_line *l,
		       enum tsgate_config_log_format format,
		       const char *key,
		       const char *value,
		       bool number)
{
	size_t start = l->len;

	if (format == TSGATE_CONFIG_LOG_JSON) {
		if (!line_puts(l, ",\"")) {
			return;
		}
		line_put_escaped(l, key, true);
		line_puts(l, "\":");
	} else {
		line_puts(l, " ");
		line_puts(l, key);
		line_puts(l, "=");
	}
	if (l->full) {
		/* not even the key fitted: leave the field out */
		l->len = start;
		return;
	}
	if (number ||
	    (format == TSGATE_CONFIG_LOG_TEXT && !text_needs_quotes(value))) {
		/* a cut number would be a wrong number: all or nothing */
		if (!line_puts(l, value)) {
			l->len = start;
		}
		return;
	}
	if (!line_puts(l, "\"")) {
		l->len = start;
		return;
	}
	line_put_escaped(l, value, format == TSGATE_CONFIG_LOG_JSON);
	/* the reserve always has room for the closing quote */
	l->buf[l->len++] = '"';
}

/* Renders the whole line (without "\n") into l; always well-formed. */
static void line_render(struct log_line *l,
			enum tsgate_config_log_format format,
			enum tsgate_config_log_level level,
			const char *event,
			int worker,
			const struct tsgate_log_kv *kv,
			size_t keep)
{
	size_t i;
	char num[24];
	bool cut;

	/* the first keep bytes are already written (a priority prefix) */
	l->len = keep;
	l->full = false;
	if (format == TSGATE_CONFIG_LOG_JSON) {
		line_puts(l, "{\"time\":\"");
		line_timestamp(l);
		line_puts(l, "\",\"level\":\"");
		line_puts(l, level_names[level]);
		line_puts(l, "\",\"event\":\"");
		line_put_escaped(l, event, true);
		l->buf[l->len++] = '"';
	} else {
		line_timestamp(l);
		line_puts(l, " ");
		line_puts(l, level_names[level]);
		line_puts(l, " ");
		line_put_escaped(l, event, false);
	}
	if (worker >= 0) {
		snprintf(num, sizeof(num), "%d", worker);
		line_field(l, format, "worker", num, true);
	}
	for (i = 0; kv != NULL && i < kv->count && !l->full; i++) {
		line_field(l, format, kv->fields[i].key, kv->fields[i].value,
			   kv->fields[i].number);
	}
	/* a NULL kv: the caller could not allocate its fields */
	cut = l->full || kv == NULL || kv->incomplete;
	/*
	 * The reserve has room for the marker and the end whatever was cut
	 * (len <= LOG_LINE_MAX - LINE_RESERVE + 1, the one closing quote).
	 */
	if (cut) {
		const char *mark = format == TSGATE_CONFIG_LOG_JSON
				       ? ",\"truncated\":true"
				       : " truncated=true";

		memcpy(l->buf + l->len, mark, strlen(mark));
		l->len += strlen(mark);
	}
	if (format == TSGATE_CONFIG_LOG_JSON) {
		l->buf[l->len++] = '}';
	}
	l->buf[l->len] = '\0';
}

char *tsgate_log_kv_render(TALLOC_CTX *mem_ctx,
			   enum tsgate_config_log_format format,
			   enum tsgate_config_log_level level,
			   const char *event,
			   const struct tsgate_log_kv *kv)
{
	struct log_line l;

	line_render(&l, format, level, event, -1, kv, 0);
	return talloc_strndup(mem_ctx, l.buf, l.len);
}

/* One write() per line: lines from several workers never mix. */
static void log_write(FILE *out, const char *buf, size_t len)
{
	int fd = fileno(out);

	if (fd < 0) {
		/* a memory stream of a test */
		fwrite(buf, 1, len, out);
		fflush(out);
		return;
	}
	fflush(out);
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

void tsgate_log_kv_emit(struct tsgate_log *log,
			enum tsgate_config_log_level level,
			const char *event,
			const struct tsgate_log_kv *kv)
{
	struct log_line l;

	if (!tsgate_log_enabled(log, level)) {
		return;
	}
	if (log->journal) {
		/* journald strips it and files the line at that priority */
		memcpy(l.buf, level_prefixes[level], 3);
	}
	line_render(&l, log->format, level, event, log->worker, kv,
		    log->journal ? 3 : 0);
	l.buf[l.len++] = '\n';
	log_write(log->out, l.buf, l.len);
}

void tsgate_log_msg(struct tsgate_log *log,
		    enum tsgate_config_log_level level,
		    const char *event,
		    const char *fmt,
		    ...)
{
	struct tsgate_log_kv *kv;
	va_list ap;

	if (!tsgate_log_enabled(log, level)) {
		return;
	}
	/* the spare kv covers a failed allocation here too */
	kv = tsgate_log_kv_new(NULL);
	if (kv != NULL) {
		va_start(ap, fmt);
		kv_vfmt(kv, "msg", fmt, ap);
		va_end(ap);
	}
	tsgate_log_kv_emit(log, level, event, kv);
	talloc_free(kv);
}
