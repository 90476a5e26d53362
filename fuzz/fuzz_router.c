/*
 * fuzz_router: a request target (path and query, as sent) through
 * router_is_verify, router_match and router_parse_id, the way on_req in
 * http/handlers.c uses them: the raw target first, then the path as h2o
 * normalizes it (h2o_url_normalize_path: dot segments, percent-encodings).
 *
 * Each answer is checked against the route table of docs/contract.md,
 * written apart from router.c: ids only for ROUTE_KEY and only in
 * 1..INT64_MAX with the segment's decimal value, trailing slash optional,
 * verify exactly for "/v1/auth/verify" and below, and an Allow list for
 * every route but ROUTE_NONE.
 */
#include <h2o.h>
#include <inttypes.h>
#include <stdbool.h>

#include "fuzz.h"
#include "http/router.h"

#define KEYS_PATH "/v1/account/api-keys"
#define VERIFY_PATH "/v1/auth/verify"

static bool starts(const char *s, size_t len, const char *lit)
{
    return len >= strlen(lit) && memcmp(s, lit, strlen(lit)) == 0;
}

/* `lit` or `lit` + "/", exactly. */
static bool is_path(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);

    return starts(s, len, lit) && (len == n || (len == n + 1 && s[n] == '/'));
}

/* 1..INT64_MAX in canonical decimal (no leading zero), else 0. */
static int64_t oracle_id(const char *s, size_t len)
{
    uint64_t v = 0;

    if (len == 0 || len > 19 || s[0] == '0')
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0'); /* 19 digits cannot wrap a uint64_t */
    }
    return v <= INT64_MAX ? (int64_t)v : 0;
}

/* Splits `p` (after `prefix`, without one trailing '/') into '/'-separated segments; at most `max`. */
static size_t segments(const char *p, size_t len, const char *prefix, const char **seg, size_t *seglen, size_t max)
{
    size_t n = 0, pl = strlen(prefix), i, start;

    p += pl;
    len -= pl;
    if (len > 0 && p[len - 1] == '/')
        len--;
    for (i = 0, start = 0; i <= len; i++) {
        if (i == len || p[i] == '/') {
            if (n == max)
                return max + 1;
            seg[n] = p + start;
            seglen[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    return n;
}

static bool seg_is(const char *s, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

static struct route oracle_route(const char *p, size_t len)
{
    struct route rt = {ROUTE_NONE, 0, 0};
    const size_t vn = strlen(VERIFY_PATH);
    const char *seg[8];
    size_t seglen[8], n;

    if (starts(p, len, VERIFY_PATH) && (len == vn || p[vn] == '/')) {
        rt.id = ROUTE_VERIFY;
    } else if (is_path(p, len, "/healthz")) {
        rt.id = ROUTE_HEALTH;
    } else if (is_path(p, len, "/v1/account/audit-log")) {
        rt.id = ROUTE_AUDIT;
    } else if (is_path(p, len, "/v1/admin/audit-log")) {
        rt.id = ROUTE_ADMIN_AUDIT;
    } else if (is_path(p, len, "/v1/admin/leaked-keys")) {
        rt.id = ROUTE_ADMIN_LEAKED_KEYS;
    } else if (is_path(p, len, "/v1/leaks/github")) {
        rt.id = ROUTE_LEAKS_GITHUB;
    } else if (is_path(p, len, "/v1/admin/accounts")) {
        rt.id = ROUTE_ADMIN_ACCOUNTS;
    } else if (starts(p, len, "/v1/admin/accounts/") && len > strlen("/v1/admin/accounts/")) {
        /* {id} | {id}/keys | {id}/keys/{key_id}/rotate, every segment non-empty */
        n = segments(p, len, "/v1/admin/accounts/", seg, seglen, 4);
        if (n == 1 && seglen[0] > 0) {
            rt.id = ROUTE_ADMIN_ACCOUNT;
        } else if (n == 2 && seglen[0] > 0 && seg_is(seg[1], seglen[1], "keys")) {
            rt.id = ROUTE_ADMIN_ACCOUNT_KEYS;
        } else if (n == 4 && seglen[0] > 0 && seg_is(seg[1], seglen[1], "keys") && seglen[2] > 0 &&
                   seg_is(seg[3], seglen[3], "rotate")) {
            rt.id = ROUTE_ADMIN_KEY_ROTATE;
            rt.sub_id = oracle_id(seg[2], seglen[2]);
        } else {
            return rt;
        }
        rt.key_id = oracle_id(seg[0], seglen[0]);
    } else if (is_path(p, len, KEYS_PATH)) {
        rt.id = ROUTE_KEYS;
    } else if (starts(p, len, KEYS_PATH "/") && len > strlen(KEYS_PATH "/")) {
        n = segments(p, len, KEYS_PATH "/", seg, seglen, 2);
        if (n == 1 && seglen[0] > 0)
            rt.id = ROUTE_KEY;
        else if (n == 2 && seglen[0] > 0 && seg_is(seg[1], seglen[1], "rotate"))
            rt.id = ROUTE_KEY_ROTATE;
        else
            return rt;
        rt.key_id = oracle_id(seg[0], seglen[0]);
    }
    return rt;
}

/* router_match on `len` bytes at `p`, copied to a buffer of exactly that size. */
static void check_match(const char *p, size_t len)
{
    char *copy = fuzz_dup((const uint8_t *)p, len);
    struct route rt = {(enum route_id)42, 42, 42}, want = oracle_route(p, len);
    const char *allow;

    router_match(copy, len, &rt);
    FUZZ_CHECK(rt.id == want.id);
    FUZZ_CHECK(rt.key_id == want.key_id);
    FUZZ_CHECK(rt.sub_id == want.sub_id);
    FUZZ_CHECK(rt.key_id >= 0 && rt.sub_id >= 0);
    if (rt.key_id > 0 && (rt.id == ROUTE_KEY || rt.id == ROUTE_KEY_ROTATE)) {
        /* The id is the segment's value: printed back, it is the segment itself. */
        char dec[24];
        const char *seg = p + strlen(KEYS_PATH "/");
        int n = snprintf(dec, sizeof(dec), "%" PRId64, rt.key_id);
        size_t seglen = len - strlen(KEYS_PATH "/") - (p[len - 1] == '/') - (rt.id == ROUTE_KEY_ROTATE ? 7 : 0);
        FUZZ_CHECK(n > 0 && (size_t)n == seglen && memcmp(dec, seg, seglen) == 0);
    }
    allow = router_allow(rt.id);
    FUZZ_CHECK(allow != NULL && (rt.id == ROUTE_NONE) == (allow[0] == '\0'));
    if (rt.id == ROUTE_VERIFY)
        FUZZ_CHECK(router_is_verify(copy, len));
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *raw = fuzz_dup(data, size);
    const size_t vn = strlen(VERIFY_PATH);
    const char *q = size > 0 ? memchr(raw, '?', size) : NULL;
    size_t plen = q != NULL ? (size_t)(q - raw) : size, query_at, *norm_indexes;
    struct route rt;
    h2o_mem_pool_t pool;
    h2o_iovec_t norm;
    bool verify;

    /* The verify check on the raw target, query included. */
    verify = router_is_verify(raw, size);
    FUZZ_CHECK(verify == (starts(raw, size, VERIFY_PATH) && (size == vn || raw[vn] == '/' || raw[vn] == '?')));

    /* The router on the raw path (tests and gateways send it as is) ... */
    check_match(raw, plen);
    /* ... and on what h2o hands to on_req as path_normalized. */
    h2o_mem_init_pool(&pool);
    norm = h2o_url_normalize_path(&pool, raw, size, &query_at, &norm_indexes);
    FUZZ_CHECK(norm.base != NULL && norm.len > 0 && norm.base[0] == '/');
    check_match(norm.base, norm.len);
    h2o_mem_clear_pool(&pool);

    /* No path at all. */
    rt.id = (enum route_id)42;
    router_match(NULL, 0, &rt);
    FUZZ_CHECK(rt.id == ROUTE_NONE && rt.key_id == 0);

    /* The id parser on its own: any bytes. */
    FUZZ_CHECK(router_parse_id(raw, size) == oracle_id(raw, size));
    free(raw);
    return 0;
}
