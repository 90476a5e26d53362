/*
 * routes: parses --route into the gateway's table. Every rule here is one
 * that would otherwise let a route surprise its operator: shadow the
 * management API, match more than its prefix, or name an upstream that
 * cannot be reached the way it reads.
 */
#include "http/routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "core/scope.h"

/* apikeyd's own paths: a route may not be one of them, above one, or below one. */
static const char *const OWN[] = {"/healthz", "/dashboard", "/v1/account", "/v1/admin", "/v1/auth", "/v1/leaks"};

/* At most 200 bytes of `s` for an error message, a control or non-ASCII byte shown as '?' (stderr may be a terminal). */
static const char *shown(const char *s, size_t len, char out[204])
{
    size_t n = len < 200 ? len : 200;

    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
    out[n] = '\0';
    return out;
}

/* Whether `a` (alen bytes) is `b` or a path-segment prefix of it ("/v1" of "/v1/admin", not "/v" of it). */
static bool seg_prefix(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen <= blen && memcmp(a, b, alen) == 0 && (alen == blen || b[alen] == '/');
}

static bool prefix_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~!$&'()*+,;=:@/", c) != NULL;
}

static int check_prefix(const char *p, size_t len, char *err, size_t errlen)
{
    if (len == 0 || p[0] != '/') {
        snprintf(err, errlen, "a route's prefix starts with /, e.g. /api");
        return -1;
    }
    if (len == 1) {
        snprintf(err, errlen, "a route's prefix cannot be /: it would shadow apikeyd's own API");
        return -1;
    }
    if (len > ROUTE_PREFIX_MAX) {
        snprintf(err, errlen, "a route's prefix is at most %d bytes", ROUTE_PREFIX_MAX);
        return -1;
    }
    if (p[len - 1] == '/') {
        snprintf(err, errlen, "a route's prefix does not end with / (\"/api\" matches /api and /api/...)");
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (!prefix_char(p[i])) {
            snprintf(err, errlen, "a route's prefix holds only letters, digits and -._~!$&'()*+,;=:@/ (no %%, no spaces)");
            return -1;
        }
    }
    if (!routes_path_ok(p, len) || memmem(p, len, "//", 2) != NULL) {
        snprintf(err, errlen, "a route's prefix has no empty, . or .. segment");
        return -1;
    }
    for (size_t i = 0; i < sizeof(OWN) / sizeof(OWN[0]); i++) {
        size_t olen = strlen(OWN[i]);
        if (seg_prefix(p, len, OWN[i], olen) || seg_prefix(OWN[i], olen, p, len)) {
            snprintf(err, errlen, "route %.*s would shadow apikeyd's own %s", (int)len, p, OWN[i]); /* printable: checked above */
            return -1;
        }
    }
    return 0;
}

static int parse_upstream(struct gw_route *r, const char *u, size_t len, char *err, size_t errlen)
{
    char buf[204];
    h2o_url_t url;
    h2o_mem_pool_t pool;
    int rc = -1;

    if (len > ROUTE_URL_MAX) {
        snprintf(err, errlen, "a route's upstream URL is at most %d bytes", ROUTE_URL_MAX);
        return -1;
    }
    if (len >= 8 && strncasecmp(u, "https://", 8) == 0) {
        snprintf(err, errlen, "https upstreams are not supported: name the upstream http://HOST:PORT on a private network");
        return -1;
    }
    if (len < 7 || strncasecmp(u, "http://", 7) != 0) {
        snprintf(err, errlen, "a route's upstream is http://HOST[:PORT][/PATH], got \"%s\"", shown(u, len, buf));
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)u[i] <= 0x20 || (unsigned char)u[i] >= 0x7f || u[i] == '?' || u[i] == '#') {
            snprintf(err, errlen, "a route's upstream URL has no query, fragment, space or control character");
            return -1;
        }
    }
    h2o_mem_init_pool(&pool);
    if (h2o_url_parse(u, len, &url) != 0 || url.host.len == 0 || url.host.len >= sizeof(r->host)) {
        snprintf(err, errlen, "a route's upstream is http://HOST[:PORT][/PATH], got \"%s\"", shown(u, len, buf));
        goto out;
    }
    if (memchr(url.host.base, '/', url.host.len) != NULL || memchr(url.host.base, '@', url.host.len) != NULL ||
        (url.host.len >= 5 && strncasecmp(url.host.base, "unix:", 5) == 0)) {
        snprintf(err, errlen, "a route's upstream names a host and port (no user, no unix socket)");
        goto out;
    }
    if (h2o_url_get_port(&url) == 0) {
        snprintf(err, errlen, "a route's upstream port is 1 to 65535");
        goto out;
    }
    memcpy(r->host, url.host.base, url.host.len);
    r->host[url.host.len] = '\0';
    r->port = h2o_url_get_port(&url);
    /* h2o gives "/" for no path: the prefix is then replaced by nothing ("/api/x" -> "/x"). */
    r->path_len = url.path.len;
    while (r->path_len != 0 && url.path.base[r->path_len - 1] == '/')
        r->path_len--; /* "/v2/" and "/v2" alike: the rest of the path brings its own slash; "/" is none */
    if (memmem(url.path.base, r->path_len, "//", 2) != NULL) {
        snprintf(err, errlen, "a route's upstream path has no empty segment (//)");
        goto out;
    }
    memcpy(r->path, url.path.base, r->path_len);
    r->path[r->path_len] = '\0';
    if (!routes_path_ok(r->path, r->path_len)) {
        snprintf(err, errlen, "a route's upstream path has no . or .. segment and no encoded . / or \\");
        goto out;
    }
    rc = 0;
out:
    h2o_mem_clear_pool(&pool);
    return rc;
}

static int parse_option(struct gw_route *r, const char *o, size_t len, char *err, size_t errlen)
{
    char buf[204];

    if (len == 6 && memcmp(o, "public", 6) == 0) {
        r->public_route = true;
        return 0;
    }
    if (len == 18 && memcmp(o, "keep-authorization", 18) == 0) {
        r->keep_authorization = true;
        return 0;
    }
    if (len > 7 && memcmp(o, "scopes=", 7) == 0) {
        if (len - 7 > ROUTE_SCOPES_MAX || !scope_required_ok(o + 7, len - 7)) {
            snprintf(err, errlen,
                     "a route's scopes= takes 1 to 50 scope names separated by commas, e.g. scopes=orders:read,orders:write");
            return -1;
        }
        memcpy(r->scopes, o + 7, len - 7);
        r->scopes_len = len - 7;
        r->scopes[r->scopes_len] = '\0';
        return 0;
    }
    if (len > 5 && memcmp(o, "cost=", 5) == 0) {
        unsigned long v = 0;
        size_t i = 5;
        for (; i < len && i < 5 + 4 && o[i] >= '0' && o[i] <= '9'; i++)
            v = v * 10 + (unsigned long)(o[i] - '0');
        if (i != len || v > ROUTE_COST_MAX || (o[5] == '0' && len > 6)) {
            snprintf(err, errlen, "a route's cost= takes an integer from 0 to %d", ROUTE_COST_MAX);
            return -1;
        }
        r->cost = (uint32_t)v;
        return 0;
    }
    snprintf(err, errlen, "unknown route option \"%s\" (scopes=a,b, public, keep-authorization, cost=N)", shown(o, len, buf));
    return -1;
}

static int parse_one(struct gw_route *r, const char *s, size_t len, char *err, size_t errlen)
{
    const char *eq = memchr(s, '=', len), *end = s + len, *semi;
    char buf[204];

    memset(r, 0, sizeof(*r));
    r->cost = 1;
    if (eq == NULL) {
        snprintf(err, errlen, "a route is PREFIX=http://HOST:PORT[/PATH][;options], got \"%s\"", shown(s, len, buf));
        return -1;
    }
    if (check_prefix(s, (size_t)(eq - s), err, errlen) != 0)
        return -1;
    memcpy(r->prefix, s, (size_t)(eq - s));
    r->prefix_len = (size_t)(eq - s);
    r->prefix[r->prefix_len] = '\0';
    semi = memchr(eq + 1, ';', (size_t)(end - eq - 1));
    if (parse_upstream(r, eq + 1, (size_t)((semi != NULL ? semi : end) - eq - 1), err, errlen) != 0)
        return -1;
    while (semi != NULL) {
        const char *o = semi + 1;
        semi = memchr(o, ';', (size_t)(end - o));
        if (parse_option(r, o, (size_t)((semi != NULL ? semi : end) - o), err, errlen) != 0)
            return -1;
    }
    if (r->public_route && r->scopes_len != 0) {
        snprintf(err, errlen, "route %s: a public route needs no key, so it cannot require scopes", r->prefix);
        return -1;
    }
    return 0;
}

int routes_add(struct gw_routes *t, const char *arg, char *err, size_t errlen)
{
    unsigned n = t->n;
    const char *s = arg;

    for (;;) {
        const char *nl = strchr(s, '\n');
        size_t len = nl != NULL ? (size_t)(nl - s) : strlen(s);
        if (len != 0 && s[len - 1] == '\r')
            len--;
        if (len != 0) {
            if (n == ROUTES_MAX) {
                snprintf(err, errlen, "at most %d routes", ROUTES_MAX);
                return -1;
            }
            if (parse_one(&t->r[n], s, len, err, errlen) != 0)
                return -1;
            for (unsigned i = 0; i < n; i++) {
                if (strcmp(t->r[i].prefix, t->r[n].prefix) == 0) {
                    snprintf(err, errlen, "route %s is given twice", t->r[n].prefix);
                    return -1;
                }
            }
            n++;
        }
        if (nl == NULL)
            break;
        s = nl + 1;
    }
    if (n == t->n) {
        snprintf(err, errlen, "a route is PREFIX=http://HOST:PORT[/PATH][;options], got nothing");
        return -1;
    }
    t->n = n;
    return 0;
}

static int by_length_desc(const void *a, const void *b)
{
    const struct gw_route *x = a, *y = b;

    return x->prefix_len < y->prefix_len ? 1 : x->prefix_len > y->prefix_len ? -1 : strcmp(x->prefix, y->prefix);
}

void routes_sort(struct gw_routes *t)
{
    qsort(t->r, t->n, sizeof(t->r[0]), by_length_desc);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/*
 * h2o routes on the decoded, normalized path and the proxy forwards the raw
 * one. They can only disagree where the raw path hides structure: a "." or
 * ".." segment, an encoded ".", "/" or "\", or a "\" that some servers read
 * as "/". Such a path is refused, so the upstream sees what was authorized.
 */
bool routes_path_ok(const char *path, size_t len)
{
    size_t seg = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i == len || path[i] == '/') {
            size_t n = i - seg;
            if ((n == 1 && path[seg] == '.') || (n == 2 && path[seg] == '.' && path[seg + 1] == '.'))
                return false;
            seg = i + 1;
            continue;
        }
        if (path[i] == '\\')
            return false;
        if (path[i] == '%' && i + 2 < len) {
            int hi = hexval(path[i + 1]), lo = hexval(path[i + 2]);
            if (hi >= 0 && lo >= 0 && (hi * 16 + lo == '.' || hi * 16 + lo == '/' || hi * 16 + lo == '\\'))
                return false;
        }
    }
    return true;
}
