/*
 * router: the table of paths. Trailing slashes are optional everywhere.
 */
#include "http/router.h"

#include <string.h>

#define KEYS_PATH "/v1/account/api-keys"
#define ACCOUNTS_PATH "/v1/admin/accounts"
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
    ret->sub_id = 0;
    if (path == NULL)
        return;
    if (is(path, len, "/healthz")) {
        ret->id = ROUTE_HEALTH;
    } else if (len >= sizeof(VERIFY_PATH) - 1 && memcmp(path, VERIFY_PATH, sizeof(VERIFY_PATH) - 1) == 0 &&
               (len == sizeof(VERIFY_PATH) - 1 || path[sizeof(VERIFY_PATH) - 1] == '/')) {
        ret->id = ROUTE_VERIFY;
    } else if (is(path, len, "/v1/account/usage")) {
        ret->id = ROUTE_USAGE;
    } else if (is(path, len, "/v1/account/audit-log")) {
        ret->id = ROUTE_AUDIT;
    } else if (is(path, len, "/v1/admin/audit-log")) {
        ret->id = ROUTE_ADMIN_AUDIT;
    } else if (is(path, len, "/v1/admin/leaked-keys")) {
        ret->id = ROUTE_ADMIN_LEAKED_KEYS;
    } else if (is(path, len, "/v1/leaks/github")) {
        ret->id = ROUTE_LEAKS_GITHUB;
    } else if (is(path, len, ACCOUNTS_PATH)) {
        ret->id = ROUTE_ADMIN_ACCOUNTS;
    } else if (len > sizeof(ACCOUNTS_PATH) && memcmp(path, ACCOUNTS_PATH "/", sizeof(ACCOUNTS_PATH)) == 0) {
        /* {id}[/], {id}/keys[/] or {id}/keys/{key_id}/rotate[/] */
        const char *seg = path + sizeof(ACCOUNTS_PATH), *end = path + len, *slash;
        if (end[-1] == '/')
            end--;
        slash = memchr(seg, '/', (size_t)(end - seg));
        if (slash == NULL && end > seg) {
            ret->id = ROUTE_ADMIN_ACCOUNT;
        } else if (slash != NULL && slash > seg && (size_t)(end - slash) == 5 && memcmp(slash, "/keys", 5) == 0) {
            ret->id = ROUTE_ADMIN_ACCOUNT_KEYS;
        } else if (slash != NULL && slash > seg && (size_t)(end - slash) > 6 + 7 && memcmp(slash, "/keys/", 6) == 0 &&
                   memcmp(end - 7, "/rotate", 7) == 0 && memchr(slash + 6, '/', (size_t)(end - 7 - (slash + 6))) == NULL) {
            ret->id = ROUTE_ADMIN_KEY_ROTATE;
            ret->sub_id = router_parse_id(slash + 6, (size_t)(end - 7 - (slash + 6)));
        } else {
            return;
        }
        ret->key_id = router_parse_id(seg, (size_t)((slash != NULL ? slash : end) - seg));
    } else if (is(path, len, KEYS_PATH)) {
        ret->id = ROUTE_KEYS;
    } else if (len > base + 1 && memcmp(path, KEYS_PATH "/", base + 1) == 0) {
        const char *seg = path + base + 1;
        size_t seglen = len - base - 1;
        if (seg[seglen - 1] == '/')
            seglen--;
        if (seglen > 7 && memcmp(seg + seglen - 7, "/rotate", 7) == 0) {
            seglen -= 7;
            ret->id = ROUTE_KEY_ROTATE;
        } else if (seglen > 6 && memcmp(seg + seglen - 6, "/usage", 6) == 0) {
            seglen -= 6;
            ret->id = ROUTE_KEY_USAGE;
        } else {
            ret->id = ROUTE_KEY;
        }
        if (seglen == 0 || memchr(seg, '/', seglen) != NULL) {
            ret->id = ROUTE_NONE;
            return;
        }
        ret->key_id = router_parse_id(seg, seglen);
    }
}

bool router_is_verify(const char *raw, size_t len)
{
    const size_t n = sizeof(VERIFY_PATH) - 1;

    return raw != NULL && len >= n && memcmp(raw, VERIFY_PATH, n) == 0 && (len == n || raw[n] == '/' || raw[n] == '?');
}

bool router_is_admin(enum route_id id)
{
    return id == ROUTE_ADMIN_ACCOUNTS || id == ROUTE_ADMIN_ACCOUNT || id == ROUTE_ADMIN_ACCOUNT_KEYS || id == ROUTE_ADMIN_AUDIT ||
           id == ROUTE_ADMIN_KEY_ROTATE || id == ROUTE_ADMIN_LEAKED_KEYS;
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
    case ROUTE_AUDIT:
    case ROUTE_ADMIN_AUDIT:
    case ROUTE_KEY_USAGE:
    case ROUTE_USAGE:
        return "GET";
    case ROUTE_ADMIN_ACCOUNTS:
        return "GET, POST";
    case ROUTE_ADMIN_ACCOUNT:
        return "GET, PATCH, DELETE";
    case ROUTE_ADMIN_ACCOUNT_KEYS:
    case ROUTE_ADMIN_KEY_ROTATE:
    case ROUTE_ADMIN_LEAKED_KEYS:
    case ROUTE_KEY_ROTATE:
    case ROUTE_LEAKS_GITHUB:
        return "POST";
    case ROUTE_NONE:
        break;
    }
    return "";
}
