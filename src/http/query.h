/*
 * query: the query string of a listing (?limit=&after=...), untrusted and
 * parsed strictly: only the names a route knows, each at most once, each
 * with a value, percent-decoding that is well formed. Pure: no I/O, no
 * allocation.
 */
#ifndef APIKEYD_HTTP_QUERY_H
#define APIKEYD_HTTP_QUERY_H

#include <stdbool.h>
#include <stddef.h>

/* One parameter a route knows; `value` (decoded, NUL-terminated, may hold NULs) is set when `seen`. */
struct query_param {
    const char *name;
    char *value;
    size_t len;
    bool seen;
};

enum query_err {
    QUERY_OK = 0,
    QUERY_UNKNOWN = -1,   /* a name the route does not know */
    QUERY_REPEATED = -2,  /* a name given twice */
    QUERY_MALFORMED = -3, /* no '=', or a bad %XX */
};

/*
 * Parses `len` bytes of `q` (the part after '?') into `params`. Values are
 * decoded ('+' is a space, %XX a byte) into `buf`, which needs `len` + `n`
 * bytes. Empty pieces ("a=1&&b=2") are skipped. Returns QUERY_OK or the
 * first error.
 */
int query_parse(const char *q, size_t len, struct query_param *params, size_t n, char *buf, size_t bufsz);

/* A one-line reason for an error of query_parse. */
const char *query_strerror(int err);

#endif
