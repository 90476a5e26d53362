/*
 * router: the table of paths. Trailing slashes are optional everywhere.
 */
#include "http/router.h"

#include <string.h>

#define KEYS_PATH "/v1/account/api-keys"
#define VERIFY_PATH "/v1/auth/verify"

int64_t router_parse_id(const char *s, size_t len)
{
    int64_t v = 0;

    /* Canonical decimal only: one spelling per key ("01" is not key 1). */
    if (len == 0 || len > 19 || s[0] == '0')
        return 0;
    for (size_t i = 0; i < len; i++) {
        int d;
        if (s[i] < '0' || s[i] > '9')
            return 0;
        d = s[i] - '0';
        if (v > (INT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return v;
}

static bool is(const char *path, size_t len, const char *lit)
{
    size_t n = strlen(lit);

    return (len == n || (len == n + 1 && path[n] == '/')) && memcmp(path, lit, n) == 0;
}

void router_match(const char *path, size_t len, struct route *ret)
{
    const size_t base = sizeof(KEYS_PATH) - 1;

    ret->id = ROUTE_NONE;
    ret->key_id = 0;
    if (path == NULL)
        return;
    if (is(path, len, "/healthz")) {
        ret->id = ROUTE_HEALTH;
    } else if (len >= sizeof(VERIFY_PATH) - 1 && memcmp(path, VERIFY_PATH, sizeof(VERIFY_PATH) - 1) == 0 &&
               (len == sizeof(VERIFY_PATH) - 1 || path[sizeof(VERIFY_PATH) - 1] == '/')) {
        ret->id = ROUTE_VERIFY;
    } else if (is(path, len, KEYS_PATH)) {
        ret->id = ROUTE_KEYS;
    } else if (len > base + 1 && memcmp(path, KEYS_PATH "/", base + 1) == 0) {
        const char *seg = path + base + 1;
        size_t seglen = len - base - 1;
        if (seg[seglen - 1] == '/')
            seglen--;
        if (seglen == 0 || memchr(seg, '/', seglen) != NULL)
            return;
        ret->id = ROUTE_KEY;
        ret->key_id = router_parse_id(seg, seglen);
    }
}

bool router_is_verify(const char *raw, size_t len)
{
    const size_t n = sizeof(VERIFY_PATH) - 1;

    return raw != NULL && len >= n && memcmp(raw, VERIFY_PATH, n) == 0 && (len == n || raw[n] == '/' || raw[n] == '?');
}

const char *router_allow(enum route_id id)
{
    switch (id) {
    case ROUTE_HEALTH:
        return "GET";
    case ROUTE_KEYS:
        return "GET, POST";
    case ROUTE_KEY:
        return "PATCH, DELETE";
    case ROUTE_VERIFY:
        return "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
    case ROUTE_NONE:
        break;
    }
    return "";
}
