/*
 * fuzz_routes: the gateway's route table and raw path check (http/routes,
 * docs/design/issue-15.md), each input used twice.
 *
 * As a --route value (NUL-terminated copy) through routes_add on an empty
 * table: an accepted value gives one route per non-empty line (a trailing
 * CR dropped), in order, each prefix the line's text before its first '=';
 * every prefix starts with '/', is not "/", has at most ROUTE_PREFIX_MAX
 * bytes of [A-Za-z0-9._~!$&'()*+,;=:@/-] (so no '%'), no "//", no "." or
 * ".." segment, no trailing '/', is its own h2o normal form, repeats no
 * other prefix and is not equal to, above or below any of apikeyd's own
 * paths segment by segment; a route has a non-empty host, a port other
 * than 0, cost <= ROUTE_COST_MAX and no scopes if it is public. The same
 * value added again is refused (every prefix repeats). A refused value
 * leaves the table's count as it was and says why in one non-empty line.
 * routes_sort puts longer prefixes first.
 *
 * As a raw request target: routes_path_ok on its path (before the first
 * '?') refuses exactly what the design note lists (a "." or ".." segment,
 * %2e %2f %5c in any case, a '\'), and whenever it accepts, the path h2o
 * routes on (h2o_url_normalize_path) has the raw path's segments, each
 * percent-decoded once, none of them "." or "..", none holding a '/'; and
 * for every prefix P of the normalized path that ends at a segment
 * boundary, norm_indexes maps the end of P to the raw offset where the raw
 * path splits into a part with P's segments and a suffix with the segments
 * of the rest: what the gateway forwards (gateway.c, destination()).
 * These oracles are written from the design note, apart from routes.c.
 */
#include <h2o.h>
#include <stdbool.h>

#include "fuzz.h"
#include "http/routes.h"

#define ERR_CAP 512

/* ---- --route values ---- */

static const char *const OWN_PATHS[] = {"/healthz", "/dashboard", "/v1/account", "/v1/admin", "/v1/auth", "/v1/leaks"};

/* The i-th '/'-separated piece of `s` after its leading '/' (s[0] == '/'); false past the last one. */
static bool piece(const char *s, size_t len, size_t i, const char **p, size_t *plen)
{
    size_t at = 1;

    for (size_t k = 0; k < i; k++) {
        const char *sl = memchr(s + at, '/', len - at);
        if (sl == NULL)
            return false;
        at = (size_t)(sl - s) + 1;
    }
    if (at > len)
        return false;
    *p = s + at;
    *plen = len - at;
    {
        const char *sl = memchr(*p, '/', *plen);
        if (sl != NULL)
            *plen = (size_t)(sl - *p);
    }
    return true;
}

/* Whether one of `a`, `b` (both starting with '/') has all the segments of the other first: equal, above or below. */
static bool nested(const char *a, size_t alen, const char *b, size_t blen)
{
    for (size_t i = 0;; i++) {
        const char *pa, *pb;
        size_t la, lb;
        bool ha = piece(a, alen, i, &pa, &la), hb = piece(b, blen, i, &pb, &lb);
        if (!ha || !hb)
            return true; /* one ran out of segments with every one so far equal */
        if (la != lb || memcmp(pa, pb, la) != 0)
            return false;
    }
}

static bool prefix_byte_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("._~!$&'()*+,;=:@/-", c) != NULL);
}

static void check_prefix(const struct gw_route *r)
{
    const char *p = r->prefix;
    size_t n = r->prefix_len, query_at, *norm_indexes;
    h2o_mem_pool_t pool;
    h2o_iovec_t norm;

    FUZZ_CHECK(n == strnlen(p, sizeof(r->prefix)) && n <= ROUTE_PREFIX_MAX);
    FUZZ_CHECK(n >= 2 && p[0] == '/' && p[n - 1] != '/');
    FUZZ_CHECK(memchr(p, '%', n) == NULL);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(prefix_byte_ok((unsigned char)p[i]));
        FUZZ_CHECK(!(p[i] == '/' && i + 1 < n && p[i + 1] == '/'));
    }
    for (size_t i = 0;; i++) {
        const char *s;
        size_t l;
        if (!piece(p, n, i, &s, &l))
            break;
        FUZZ_CHECK(l > 0 && !(l == 1 && s[0] == '.') && !(l == 2 && s[0] == '.' && s[1] == '.'));
    }
    for (size_t i = 0; i < sizeof(OWN_PATHS) / sizeof(OWN_PATHS[0]); i++)
        FUZZ_CHECK(!nested(p, n, OWN_PATHS[i], strlen(OWN_PATHS[i])));
    /* h2o matches the prefix against normalized paths: it must be one already. */
    h2o_mem_init_pool(&pool);
    norm = h2o_url_normalize_path(&pool, p, n, &query_at, &norm_indexes);
    FUZZ_CHECK(norm.len == n && memcmp(norm.base, p, n) == 0 && query_at == SIZE_MAX);
    h2o_mem_clear_pool(&pool);
}

static void check_route(const struct gw_route *r)
{
    check_prefix(r);
    FUZZ_CHECK(r->host[0] != '\0' && strnlen(r->host, sizeof(r->host)) < sizeof(r->host));
    FUZZ_CHECK(r->port != 0);
    FUZZ_CHECK(r->path_len == strnlen(r->path, sizeof(r->path)) && r->path_len <= ROUTE_URL_MAX);
    FUZZ_CHECK(r->path_len == 0 || r->path[0] == '/');
    FUZZ_CHECK(r->scopes_len == strnlen(r->scopes, sizeof(r->scopes)) && r->scopes_len <= ROUTE_SCOPES_MAX);
    FUZZ_CHECK(r->cost <= ROUTE_COST_MAX);
    FUZZ_CHECK(!(r->public_route && r->scopes_len != 0));
}

/* A refusal: one non-empty line, NUL-terminated inside the buffer. */
static void check_err(const char *err)
{
    size_t n = strnlen(err, ERR_CAP);

    FUZZ_CHECK(n > 0 && n < ERR_CAP);
    FUZZ_CHECK(memchr(err, '\n', n) == NULL);
}

/* The non-empty lines of `arg` (a trailing CR is not part of a line): their number, and in `at`/`len` the first `max`. */
static size_t lines(const char *arg, const char **at, size_t *len, size_t max)
{
    size_t n = 0;
    const char *s = arg;

    for (;;) {
        const char *nl = strchr(s, '\n'), *end = nl != NULL ? nl : s + strlen(s);
        if (end > s && end[-1] == '\r')
            end--;
        if (end > s) {
            if (n < max) {
                at[n] = s;
                len[n] = (size_t)(end - s);
            }
            n++;
        }
        if (nl == NULL)
            return n;
        s = nl + 1;
    }
}

static void check_routes(const uint8_t *data, size_t size)
{
    char *arg = malloc(size + 1), err[ERR_CAP];
    struct gw_routes *t = calloc(1, sizeof(*t));
    const char *at[ROUTES_MAX + 1];
    size_t len[ROUTES_MAX + 1], want;
    int r;

    if (arg == NULL || t == NULL)
        fuzz_fail("malloc", __FILE__, __LINE__);
    memcpy(arg, data, size);
    arg[size] = '\0';
    want = lines(arg, at, len, ROUTES_MAX + 1);

    err[0] = '\0';
    r = routes_add(t, arg, err, sizeof(err));
    if (r != 0) {
        FUZZ_CHECK(r == -1 && t->n == 0);
        check_err(err);
        goto out;
    }
    FUZZ_CHECK(want >= 1 && want <= ROUTES_MAX && t->n == want);
    for (unsigned i = 0; i < t->n; i++) {
        const char *eq = memchr(at[i], '=', len[i]);
        FUZZ_CHECK(eq != NULL && (size_t)(eq - at[i]) == t->r[i].prefix_len &&
                   memcmp(at[i], t->r[i].prefix, t->r[i].prefix_len) == 0);
        check_route(&t->r[i]);
        for (unsigned k = 0; k < i; k++)
            FUZZ_CHECK(strcmp(t->r[k].prefix, t->r[i].prefix) != 0);
    }

    /* Again: every prefix is there already, so nothing is added. */
    err[0] = '\0';
    r = routes_add(t, arg, err, sizeof(err));
    FUZZ_CHECK(r == -1 && t->n == want);
    check_err(err);

    routes_sort(t);
    FUZZ_CHECK(t->n == want);
    for (unsigned i = 1; i < t->n; i++)
        FUZZ_CHECK(t->r[i - 1].prefix_len >= t->r[i].prefix_len);
out:
    free(t);
    free(arg);
}

/* ---- raw request paths ---- */

static int hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The design note's rule: no "." or ".." segment, no %2e %2f %5c (any case), no '\'. */
static bool spec_path_ok(const char *p, size_t len)
{
    size_t start = 0;

    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\\')
            return false;
        if (p[i] == '%' && len - i >= 3) {
            char a = p[i + 1], b = (char)(p[i + 2] | 0x20);
            if ((a == '2' && (b == 'e' || b == 'f')) || (a == '5' && b == 'c'))
                return false;
        }
    }
    for (size_t i = 0; i <= len; i++) {
        if (i < len && p[i] != '/')
            continue;
        if ((i - start == 1 && p[start] == '.') || (i - start == 2 && p[start] == '.' && p[start + 1] == '.'))
            return false;
        start = i + 1;
    }
    return true;
}

/* Whether raw segment `r` (`rlen` bytes, no '/'), with each %XX decoded once, is `n` (`nlen` bytes, no '/'). */
static bool decodes_to(const char *r, size_t rlen, const char *n, size_t nlen)
{
    size_t i = 0, j = 0;

    while (i < rlen) {
        unsigned char c = (unsigned char)r[i];
        if (c == '%' && rlen - i >= 3 && hex((unsigned char)r[i + 1]) >= 0 && hex((unsigned char)r[i + 2]) >= 0) {
            c = (unsigned char)(hex((unsigned char)r[i + 1]) << 4 | hex((unsigned char)r[i + 2]));
            i += 3;
        } else {
            i++;
        }
        if (j == nlen || (unsigned char)n[j] != c)
            return false;
        j++;
    }
    return j == nlen;
}

/*
 * Whether `r` split at '/' and `n` split at '/' give the same number of
 * pieces and each piece of `r`, decoded once, is the piece of `n` at the
 * same place, none of them "." or "..". A piece of `r` that decodes to a
 * '/' never matches, since no piece of `n` holds one.
 */
static bool same_segments(const char *r, size_t rlen, const char *n, size_t nlen)
{
    size_t i = 0, j = 0;

    for (;;) {
        size_t ri = i, nj = j;
        while (i < rlen && r[i] != '/')
            i++;
        while (j < nlen && n[j] != '/')
            j++;
        if (!decodes_to(r + ri, i - ri, n + nj, j - nj))
            return false;
        if ((j - nj == 1 && n[nj] == '.') || (j - nj == 2 && n[nj] == '.' && n[nj + 1] == '.'))
            return false;
        if ((i == rlen) != (j == nlen))
            return false;
        if (i == rlen)
            return true;
        i++;
        j++;
    }
}

/* `s` without one leading '/'. */
static void drop_slash(const char **s, size_t *len)
{
    if (*len > 0 && (*s)[0] == '/') {
        (*s)++;
        (*len)--;
    }
}

static void check_path(const uint8_t *data, size_t size)
{
    char *raw = fuzz_dup(data, size), *path;
    const char *q = size > 0 ? memchr(raw, '?', size) : NULL, *rp;
    size_t plen = q != NULL ? (size_t)(q - raw) : size, query_at, *norm_indexes, rlen;
    h2o_mem_pool_t pool;
    h2o_iovec_t norm;
    bool ok;

    /* As the gateway calls it: the path before the query, in a buffer of exactly that size. */
    path = fuzz_dup(data, plen);
    ok = routes_path_ok(path, plen);
    FUZZ_CHECK(ok == spec_path_ok(path, plen));

    h2o_mem_init_pool(&pool);
    norm = h2o_url_normalize_path(&pool, raw, size, &query_at, &norm_indexes);
    FUZZ_CHECK(norm.base != NULL && norm.len > 0 && norm.base[0] == '/');
    FUZZ_CHECK(query_at == (q != NULL ? plen : SIZE_MAX)); /* the length the gateway gives routes_path_ok */
    if (ok) {
        /* The whole path: a leading '/' is implied when the raw path has none (h2o adds it). */
        rp = path;
        rlen = plen;
        drop_slash(&rp, &rlen);
        FUZZ_CHECK(same_segments(rp, rlen, norm.base + 1, norm.len - 1));

        /* Every prefix P = norm[0, k) ending at a segment boundary, other than "/". */
        for (size_t k = 2; k <= norm.len; k++) {
            size_t next;
            if (k < norm.len && norm.base[k] != '/')
                continue;
            /* norm_indexes[i]: the raw offset just past what gave normalized byte i; NULL: no change. */
            next = norm_indexes != NULL ? norm_indexes[k - 1] : k;
            FUZZ_CHECK(next <= plen);
            /* The raw suffix has the segments of the normalized one ... */
            FUZZ_CHECK(same_segments(path + next, plen - next, norm.base + k, norm.len - k));
            /* ... and what precedes it those of P. */
            rp = path;
            rlen = next;
            drop_slash(&rp, &rlen);
            FUZZ_CHECK(same_segments(rp, rlen, norm.base + 1, k - 1));
        }
    }
    h2o_mem_clear_pool(&pool);
    free(path);
    free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_routes(data, size);
    check_path(data, size);
    return 0;
}
