/*
 * query: a strict query-string parser.
 */
#include "http/query.h"

#include <h2o.h>
#include <string.h>

/* Decodes `len` bytes of `s` into `out` (room for len + 1); returns the decoded length, or -1 when malformed. */
static long decode(const char *s, size_t len, char *out)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            if (i + 2 >= len || h2o_hex_decode(out + n, s + i + 1, 2) != 0)
                return -1;
            n++;
            i += 2;
        } else {
            out[n++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    out[n] = '\0';
    return (long)n;
}

int query_parse(const char *q, size_t len, struct query_param *params, size_t n, char *buf, size_t bufsz)
{
    const char *end = q + len;
    size_t used = 0;

    if (bufsz < len + n)
        return QUERY_MALFORMED;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q)), *stop = amp != NULL ? amp : end;
        const char *eq = memchr(q, '=', (size_t)(stop - q));
        size_t nlen = (size_t)((eq != NULL ? eq : stop) - q), i;
        long vlen;

        if (stop == q) {
            q = stop + 1;
            continue;
        }
        for (i = 0; i < n; i++)
            if (strlen(params[i].name) == nlen && memcmp(params[i].name, q, nlen) == 0)
                break;
        if (i == n)
            return QUERY_UNKNOWN;
        if (params[i].seen)
            return QUERY_REPEATED;
        if (eq == NULL || (vlen = decode(eq + 1, (size_t)(stop - eq - 1), buf + used)) < 0)
            return QUERY_MALFORMED;
        params[i].value = buf + used;
        params[i].len = (size_t)vlen;
        params[i].seen = true;
        used += (size_t)vlen + 1;
        q = stop + 1;
    }
    return QUERY_OK;
}

const char *query_strerror(int err)
{
    switch (err) {
    case QUERY_UNKNOWN:
        return "unknown query parameter";
    case QUERY_REPEATED:
        return "a query parameter is repeated";
    case QUERY_MALFORMED:
        return "malformed query parameter (name=value, percent-encoding as %XX)";
    }
    return "ok";
}
