/*
 * Unit tests for http/routes: --route parsing (prefix rules, shadowing of
 * apikeyd's own paths, upstream URLs, options, several routes per value,
 * duplicates, the limit), the order routes are matched in, and the raw
 * path check the gateway applies before forwarding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "http/routes.h"

static struct gw_routes t;

static int add(const char *arg, char *err, size_t errlen)
{
    return routes_add(&t, arg, err, errlen);
}

static void ok(const char *arg)
{
    char err[256] = "";

    memset(&t, 0, sizeof(t));
    if (add(arg, err, sizeof(err)) != 0)
        fail_msg("\"%s\" refused: %s", arg, err);
}

static void refused(const char *arg, const char *why)
{
    char err[256] = "";

    memset(&t, 0, sizeof(t));
    if (add(arg, err, sizeof(err)) == 0)
        fail_msg("\"%s\" accepted", arg);
    if (strstr(err, why) == NULL)
        fail_msg("\"%s\": error \"%s\" does not say \"%s\"", arg, err, why);
    assert_null(strchr(err, '\n'));
    assert_int_equal(t.n, 0);
}

static void test_plain(void **state)
{
    (void)state;
    ok("/api=http://127.0.0.1:8080");
    assert_int_equal(t.n, 1);
    assert_string_equal(t.r[0].prefix, "/api");
    assert_int_equal(t.r[0].prefix_len, 4);
    assert_string_equal(t.r[0].host, "127.0.0.1");
    assert_int_equal(t.r[0].port, 8080);
    assert_string_equal(t.r[0].path, "");
    assert_int_equal(t.r[0].cost, 1);
    assert_false(t.r[0].public_route);
    assert_false(t.r[0].keep_authorization);
    assert_int_equal(t.r[0].scopes_len, 0);

    ok("/v2/orders=http://orders.internal/v2/");
    assert_string_equal(t.r[0].host, "orders.internal");
    assert_int_equal(t.r[0].port, 80);
    assert_string_equal(t.r[0].path, "/v2"); /* a trailing slash is dropped: the rest of the path brings its own */

    ok("/x=http://[::1]:9000/base");
    assert_string_equal(t.r[0].host, "::1");
    assert_int_equal(t.r[0].port, 9000);
    assert_string_equal(t.r[0].path, "/base");
}

static void test_options(void **state)
{
    (void)state;
    ok("/api=http://127.0.0.1:8080;scopes=orders:read,orders:write;keep-authorization;cost=25");
    assert_string_equal(t.r[0].scopes, "orders:read,orders:write");
    assert_true(t.r[0].keep_authorization);
    assert_int_equal(t.r[0].cost, 25);
    ok("/pub=http://127.0.0.1:8080;public");
    assert_true(t.r[0].public_route);
    ok("/free=http://127.0.0.1:8080;cost=0");
    assert_int_equal(t.r[0].cost, 0);
    ok("/dear=http://127.0.0.1:8080;cost=1000");
    assert_int_equal(t.r[0].cost, 1000);

    refused("/api=http://127.0.0.1:8080;cost=1001", "cost=");
    refused("/api=http://127.0.0.1:8080;cost=-1", "cost=");
    refused("/api=http://127.0.0.1:8080;cost=01", "cost=");
    refused("/api=http://127.0.0.1:8080;cost=", "unknown route option");
    refused("/api=http://127.0.0.1:8080;cost=1x", "cost=");
    refused("/api=http://127.0.0.1:8080;scopes=", "unknown route option");
    refused("/api=http://127.0.0.1:8080;scopes=Bad Scope", "scopes=");
    refused("/api=http://127.0.0.1:8080;publik", "unknown route option");
    {
        char err[256] = "";
        memset(&t, 0, sizeof(t));
        assert_int_not_equal(add("/api=http://127.0.0.1:8080;ab\rcd\x1b[2J", err, sizeof(err)), 0);
        assert_non_null(strstr(err, "\"ab?cd?[2J\"")); /* control bytes never reach the terminal */
    }
    refused("/api=http://127.0.0.1:8080;", "unknown route option");
    refused("/api=http://127.0.0.1:8080;public;scopes=a", "public route");
}

static void test_prefixes(void **state)
{
    (void)state;
    refused("=http://127.0.0.1:8080", "starts with /");
    refused("api=http://127.0.0.1:8080", "starts with /");
    refused("/=http://127.0.0.1:8080", "cannot be /");
    refused("/api/=http://127.0.0.1:8080", "does not end with /");
    refused("/a//b=http://127.0.0.1:8080", "segment");
    refused("/a/../b=http://127.0.0.1:8080", "segment");
    refused("/a/./b=http://127.0.0.1:8080", "segment");
    refused("/a%2fb=http://127.0.0.1:8080", "letters");
    refused("/a b=http://127.0.0.1:8080", "letters");
    refused("/api", "PREFIX=");
    ok("/a.b/c~d/e-f/g_h=http://127.0.0.1:8080");

    char longp[ROUTE_PREFIX_MAX + 40];
    memset(longp, 'a', sizeof(longp));
    longp[0] = '/';
    snprintf(longp + ROUTE_PREFIX_MAX + 1, sizeof(longp) - ROUTE_PREFIX_MAX - 1, "=http://h");
    refused(longp, "at most");
}

/* No route may be, contain or sit below one of apikeyd's own paths. */
static void test_shadowing(void **state)
{
    static const char *const bad[] = {"/healthz",    "/dashboard",           "/dashboard/x", "/v1",
                                      "/v1/account", "/v1/account/api-keys", "/v1/admin",    "/v1/admin/accounts",
                                      "/v1/auth",    "/v1/auth/verify",      "/v1/leaks",    "/v1/leaks/github",
                                      "/healthz/x"};
    char arg[128];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(arg, sizeof(arg), "%s=http://127.0.0.1:8080", bad[i]);
        refused(arg, "shadow");
    }
    /* Near misses are fine: segments, not characters. */
    ok("/v10=http://127.0.0.1:8080");
    ok("/v1x=http://127.0.0.1:8080");
    ok("/healthzz=http://127.0.0.1:8080");
    ok("/dash=http://127.0.0.1:8080");
    ok("/v2/account=http://127.0.0.1:8080");
}

static void test_upstreams(void **state)
{
    (void)state;
    refused("/api=https://127.0.0.1:8443", "https");
    refused("/api=HTTPS://127.0.0.1:8443", "https");
    refused("/api=ftp://127.0.0.1", "http://HOST");
    refused("/api=127.0.0.1:8080", "http://HOST");
    refused("/api=http://", "http://HOST");
    refused("/api=http://127.0.0.1:8080/x?y=1", "no query");
    refused("/api=http://127.0.0.1:8080/x#y", "no query");
    refused("/api=http://127.0.0.1:8080/a b", "no query");
    refused("/api=http://127.0.0.1:99999", "http://HOST");
    refused("/api=http://user@127.0.0.1:8080", "no user");
    refused("/api=http://127.0.0.1:8080/a/../b", "segment");
    refused("/api=http://127.0.0.1:8080/a/%2e%2e/b", "segment");
    refused("/a=http://h:0", "port"); /* found by fuzz/fuzz_routes.c: h2o's parser takes port 0 */
    refused("/a=http://[unix:/tmp/s]/x", "unix socket");
    refused("/a=http://[a/b]:1", "unix socket");
    refused("/a=http://h/v2//x", "empty segment");
    refused("/a=http://h/x\r\x1b[2J?", "no query");
    ok("/a=http://h/v2//");
    assert_string_equal(t.r[0].path, "/v2");
    ok("/a=http://h//");
    assert_string_equal(t.r[0].path, "");
}

static void test_several(void **state)
{
    char err[256];

    (void)state;
    ok("/a=http://127.0.0.1:1\n/b=http://127.0.0.1:2\r\n\n/c=http://127.0.0.1:3;public");
    assert_int_equal(t.n, 3);
    assert_string_equal(t.r[2].prefix, "/c");
    assert_true(t.r[2].public_route);
    /* A second value adds to the first; a prefix given twice is refused, and nothing of its value is added. */
    assert_int_equal(add("/d=http://127.0.0.1:4", err, sizeof(err)), 0);
    assert_int_equal(t.n, 4);
    assert_int_not_equal(add("/e=http://127.0.0.1:5\n/a=http://127.0.0.1:6", err, sizeof(err)), 0);
    assert_non_null(strstr(err, "twice"));
    assert_int_equal(t.n, 4);
    refused("", "got nothing");
    refused("\n\n", "got nothing");
}

static void test_limit(void **state)
{
    char arg[64], err[256];

    (void)state;
    memset(&t, 0, sizeof(t));
    for (unsigned i = 0; i < ROUTES_MAX; i++) {
        snprintf(arg, sizeof(arg), "/r%u=http://127.0.0.1:8080", i);
        assert_int_equal(add(arg, err, sizeof(err)), 0);
    }
    assert_int_not_equal(add("/one-more=http://127.0.0.1:8080", err, sizeof(err)), 0);
    assert_non_null(strstr(err, "at most"));
    assert_int_equal(t.n, ROUTES_MAX);
}

static void test_sort(void **state)
{
    (void)state;
    ok("/a=http://h:1\n/a/b/c=http://h:3\n/a/b=http://h:2\n/z=http://h:4");
    routes_sort(&t);
    assert_string_equal(t.r[0].prefix, "/a/b/c");
    assert_string_equal(t.r[1].prefix, "/a/b");
    assert_string_equal(t.r[2].prefix, "/a");
    assert_string_equal(t.r[3].prefix, "/z");
}

static void path_is(const char *p, bool want)
{
    if (routes_path_ok(p, strlen(p)) != want)
        fail_msg("routes_path_ok(\"%s\") is %d, want %d", p, !want, want);
}

static void test_path_ok(void **state)
{
    (void)state;
    path_is("/api/users", true);
    path_is("/api/users/", true);
    path_is("/api/a.b/..c/...", true);
    path_is("/api/%41%20x", true);
    path_is("/api/100%", true);
    path_is("/api/%2", true);
    path_is("/api/%zz", true);
    path_is("", true);
    path_is("/api/..", false);
    path_is("/api/../x", false);
    path_is("/api/./x", false);
    path_is("/api/.", false);
    path_is("/api/%2e%2e/x", false);
    path_is("/api/%2E/x", false);
    path_is("/api/.%2e/x", false);
    path_is("/api/a%2fb", false);
    path_is("/api/a%2Fb", false);
    path_is("/api/a%5cb", false);
    path_is("/api/a\\b", false);
    /* Not NUL-terminated: only `len` bytes count. */
    assert_true(routes_path_ok("/api/x/..", 6));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),     cmocka_unit_test(test_options),   cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_shadowing), cmocka_unit_test(test_upstreams), cmocka_unit_test(test_several),
        cmocka_unit_test(test_limit),     cmocka_unit_test(test_sort),      cmocka_unit_test(test_path_ok),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
