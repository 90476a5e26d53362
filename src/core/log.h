/*
 * log: apikeyd's lines on stderr (for journald or a log pipeline), in one
 * of two formats chosen at start (--log-format): text, "apikeyd: <msg>", or
 * JSON, one object per line: {"time", "level", "msg", ...fields}. The access
 * log (http/respond.c) writes its lines in the same format. Nothing secret
 * is ever passed here: callers log key prefixes at most.
 */
#ifndef APIKEYD_CORE_LOG_H
#define APIKEYD_CORE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_format {
    LOG_TEXT = 0,
    LOG_JSON,
};

enum log_level {
    LOG_INFO = 0,
    LOG_WARN,
    LOG_ERROR,
};

/* Chosen once, before any thread starts. */
void log_set_format(enum log_format f);
enum log_format log_get_format(void);

/* "text" or "json" into *ret; -1 for anything else. */
int log_format_parse(const char *s, enum log_format *ret);

/* One lifecycle line (start, store lost or regained, resync, shutdown, ...), printf-style, no newline. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Appends `s` (`len` bytes) to `out` as the inside of a JSON string (no
 * quotes), escaping what JSON requires and any byte that is not printable
 * ASCII as \u00XX; stops before `outsz` (NUL-terminated). Returns the bytes written.
 */
size_t log_json_escape(const char *s, size_t len, char *out, size_t outsz);

/* The level's name: "info", "warn", "error". */
const char *log_level_name(enum log_level level);

#endif
