/* SPDX-License-Identifier: MIT */
/*
 * tsgate logging: one line per event to stderr, as text or JSON.
 *
 * Values that come from the network (SNI, certificate subjects,
 * principals) are escaped in both formats, so a client cannot forge log
 * lines. Payload bytes, keys and tickets are never passed here.
 */
#ifndef TSGATE_LOG_H
#define TSGATE_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <talloc.h>

#include "config.h"

struct tsgate_log {
	enum tsgate_config_log_level level;
	enum tsgate_config_log_format format;
	FILE *out;  /* stderr unless a test says otherwise */
	int worker; /* >= 0: a "worker" field leads every line; -1: none */
	/* out is the journal's stream: lines start with "<N>" (syslog) */
	bool journal;
};

/*
 * The environment variable that overrides the file's 'log: level:'
 * (--log-level sets it for the daemon it starts). Precedence:
 * --log-level, then TSGATE_LOG_LEVEL, then the file, then "info".
 */
#define TSGATE_LOG_LEVEL_ENV "TSGATE_LOG_LEVEL"

/**
 * @brief The level to log at: TSGATE_LOG_LEVEL when it names a level,
 *        else the configuration's (a bad name is refused at start-up).
 */
enum tsgate_config_log_level tsgate_log_level_effective(
    enum tsgate_config_log_level configured);

/**
 * @brief Whether log->out is the stream systemd connected to the journal:
 *        $JOURNAL_STREAM ("DEVICE:INODE") names its device and inode.
 *        Sets log->journal (tsgate_log_new() calls it for stderr).
 */
bool tsgate_log_detect_journal(struct tsgate_log *log);

/** @brief The name of a level as the configuration writes it. */
const char *tsgate_log_level_name(enum tsgate_config_log_level level);

/** @brief A logger writing to stderr. */
struct tsgate_log *tsgate_log_new(TALLOC_CTX *mem_ctx,
				  enum tsgate_config_log_level level,
				  enum tsgate_config_log_format format);

/** @brief Whether a line at this level would be written. */
bool tsgate_log_enabled(const struct tsgate_log *log,
			enum tsgate_config_log_level level);

/**
 * @brief An ordered list of key/value fields for one log line.
 *
 * Build it with the tsgate_log_kv_* calls (NULL values are skipped), then
 * write it with tsgate_log_kv_emit(). Values are copied into the kv's own
 * fixed-size store, so adding a field allocates nothing; a field that
 * does not fit is cut or left out and the line says truncated=true.
 * tsgate_log_kv_new() allocates once; when that fails it lends a spare
 * (talloc_free() gives it back), so a line keeps its fields under memory
 * pressure. Logging never fails the caller.
 */
struct tsgate_log_kv;

struct tsgate_log_kv *tsgate_log_kv_new(TALLOC_CTX *mem_ctx);
void tsgate_log_kv_str(struct tsgate_log_kv *kv,
		       const char *key,
		       const char *value);
void tsgate_log_kv_u64(struct tsgate_log_kv *kv,
		       const char *key,
		       uint64_t value);
void tsgate_log_kv_fmt(struct tsgate_log_kv *kv,
		       const char *key,
		       const char *fmt,
		       ...) PRINTF_ATTRIBUTE(3, 4);

/**
 * @brief Write one line: time, level, event, then the fields.
 *
 * text: `2026-01-02T03:04:05.678Z info conn key=value key="two words"`
 * json: `{"time":"...","level":"info","event":"conn","key":"value"}`
 * (numbers stay numbers in JSON).
 *
 * The line is rendered into a fixed buffer (no allocation) and written
 * with one write(): it comes out whole, or shortened and marked
 * `truncated=true` (JSON `"truncated":true`), never in pieces. A NULL kv
 * means the caller's fields were lost (tsgate_log_kv_new() failed): the
 * line is marked truncated too.
 */
void tsgate_log_kv_emit(struct tsgate_log *log,
			enum tsgate_config_log_level level,
			const char *event,
			const struct tsgate_log_kv *kv);

/** @brief A line with a single free-text "msg" field. */
void tsgate_log_msg(struct tsgate_log *log,
		    enum tsgate_config_log_level level,
		    const char *event,
		    const char *fmt,
		    ...) PRINTF_ATTRIBUTE(4, 5);

/** @brief Render a line into a string (what emit writes, without "\n"). */
char *tsgate_log_kv_render(TALLOC_CTX *mem_ctx,
			   enum tsgate_config_log_format format,
			   enum tsgate_config_log_level level,
			   const char *event,
			   const struct tsgate_log_kv *kv);

#endif /* TSGATE_LOG_H */
