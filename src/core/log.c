/*
 * log: see log.h.
 */
#include "core/log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/timefmt.h"

static enum log_format format = LOG_TEXT;

void log_set_format(enum log_format f)
{
    format = f;
}

enum log_format log_get_format(void)
{
    return format;
}

int log_format_parse(const char *s, enum log_format *ret)
{
    if (strcmp(s, "text") == 0)
        *ret = LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *ret = LOG_JSON;
    else
        return -1;
    return 0;
}

const char *log_level_name(enum log_level level)
{
    return level == LOG_ERROR ? "error" : level == LOG_WARN ? "warn" : "info";
}

size_t log_json_escape(const char *s, size_t len, char *out, size_t outsz)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    if (outsz == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t elen;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            elen = 2;
        } else if (c >= 0x20 && c < 0x7f) {
            esc[0] = (char)c;
            elen = 1;
        } else {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        if (n + elen >= outsz)
            break;
        memcpy(out + n, esc, elen);
        n += elen;
    }
    out[n] = '\0';
    return n;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char msg[1024], line[2048 + 128], when[TIMEFMT_LEN + 1], esc[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (format == LOG_TEXT) {
        n = snprintf(line, sizeof(line), "apikeyd: %s%s\n", level == LOG_WARN ? "warning: " : "", msg);
    } else {
        if (timefmt_format(timefmt_now(), when, sizeof(when)) != 0)
            strcpy(when, "-");
        log_json_escape(msg, strlen(msg), esc, sizeof(esc));
        n = snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", when, log_level_name(level), esc);
    }
    if (n > 0)
        (void)!write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}
