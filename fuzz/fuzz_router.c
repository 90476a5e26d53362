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

static struct route oracle_route(const char *p, size_t len)
{
    struct route rt = {ROUTE_NONE, 0, 0};
    const size_t vn = strlen(VERIFY_PATH), kn = strlen(KEYS_PATH "/");

    if (starts(p, len, VERIFY_PATH) && (len == vn || p[vn] == '/')) {
        rt.id = ROUTE_VERIFY;
    } else if (is_path(p, len, "/healthz")) {
        rt.id = ROUTE_HEALTH;
    } else if (is_path(p, len, KEYS_PATH)) {
        rt.id = ROUTE_KEYS;
    } else if (starts(p, len, KEYS_PATH "/")) {
        const char *seg = p + kn;
        size_t seglen = len - kn;
        bool rotate;
        if (seglen > 0 && seg[seglen - 1] == '/')
            seglen--;
        rotate = seglen > 7 && memcmp(seg + seglen - 7, "/rotate", 7) == 0;
        if (rotate)
            seglen -= 7;
        if (seglen > 0 && memchr(seg, '/', seglen) == NULL) {
            rt.id = rotate ? ROUTE_KEY_ROTATE : ROUTE_KEY;
            rt.key_id = oracle_id(seg, seglen);
        }
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
    FUZZ_CHECK(rt.key_id >= 0 && (rt.id == ROUTE_KEY || rt.id == ROUTE_KEY_ROTATE || rt.key_id == 0));
    if (rt.key_id > 0) {
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
