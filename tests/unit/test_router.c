/*
 * Unit tests for http/router: every route with and without its trailing
 * slash, key ids (valid, out of range, not numeric), unknown paths, paths
 * that are not NUL-terminated or contain NUL, router_parse_id and the Allow
 * header values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "http/router.h"

static struct route match_n(const char *path, size_t len)
{
    struct route r;

    r.id = (enum route_id)77;
    r.key_id = -77;
    router_match(path, len, &r);
    return r;
}

static void expect(const char *path, enum route_id id, int64_t key_id)
{
    struct route r = match_n(path, strlen(path));

    if (r.id != id || r.key_id != key_id)
        fail_msg("path \"%s\": got route %d id %lld, want route %d id %lld", path, r.id, (long long)r.key_id, id,
                 (long long)key_id);
}

static void test_health(void **state)
{
    (void)state;
    expect("/healthz", ROUTE_HEALTH, 0);
    expect("/healthz/", ROUTE_HEALTH, 0);
}

static void test_keys(void **state)
{
    (void)state;
    expect("/v1/account/api-keys", ROUTE_KEYS, 0);
    expect("/v1/account/api-keys/", ROUTE_KEYS, 0);
}

static void test_key_ids(void **state)
{
    (void)state;
    expect("/v1/account/api-keys/1", ROUTE_KEY, 1);
    expect("/v1/account/api-keys/1/", ROUTE_KEY, 1);
    expect("/v1/account/api-keys/42", ROUTE_KEY, 42);
    expect("/v1/account/api-keys/42/", ROUTE_KEY, 42);
    expect("/v1/account/api-keys/9223372036854775807", ROUTE_KEY, INT64_MAX);
    expect("/v1/account/api-keys/9223372036854775807/", ROUTE_KEY, INT64_MAX);
    expect("/v1/account/api-keys/1000000000000000000", ROUTE_KEY, 1000000000000000000LL);
}

/* A non-empty segment that is not a positive 64-bit integer is still the key route (404 comes later, after auth). */
static void test_key_bad_ids(void **state)
{
    static const char *const segs[] = {
        "0",
        "00",
        "-1",
        "+1",
        "abc",
        "1a",
        "a1",
        "1.0",
        "1e3",
        "0x10",
        " 1",
        "1 ",
        "%31",
        "9223372036854775808",
        "9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999",
        "123456789012345678901234567890",
        "-9223372036854775808",
    };
    char path[128];

    (void)state;
    for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++) {
        strcpy(path, "/v1/account/api-keys/");
        strcat(path, segs[i]);
        expect(path, ROUTE_KEY, 0);
        strcat(path, "/");
        expect(path, ROUTE_KEY, 0);
    }
}

static void test_unknown_paths(void **state)
{
    static const char *const paths[] = {
        "",
        "/",
        "//",
        "/v1",
        "/v1/",
        "/v1/account",
        "/v1/account/",
        "/v1/account/api-key",
        "/v1/account/api-keysx",
        "/v1/account/api-keys-x",
        "/v1/account/api-keys//",
        "/v1/account/api-keys///",
        "/v1/account/api-keys//1",
        "/v1/account/api-keys/1//",
        "/v1/account/api-keys/1/extra",
        "/v1/account/api-keys/1/extra/",
        "/v1/account/api-keys/abc/def",
        "//v1/account/api-keys",
        "v1/account/api-keys",
        "/v2/account/api-keys",
        "/v1/accounts/api-keys",
        "/healthzz",
        "/healthz//",
        "/healthz/x",
        "/health",
        "healthz",
        "/v1/account/api-keys/healthz/x",
        "/api-keys",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        expect(paths[i], ROUTE_NONE, 0);
}

static void test_null_path(void **state)
{
    struct route r = match_n(NULL, 0);

    (void)state;
    assert_int_equal(r.id, ROUTE_NONE);
    assert_int_equal(r.key_id, 0);
}

static void test_length_is_respected(void **state)
{
    const char *buf = "/healthzXYZ";
    const char *keys = "/v1/account/api-keys/42abc";
    struct route r;

    (void)state;
    r = match_n(buf, 8);
    assert_int_equal(r.id, ROUTE_HEALTH);
    r = match_n(buf, 9);
    assert_int_equal(r.id, ROUTE_NONE);
    r = match_n(keys, strlen("/v1/account/api-keys"));
    assert_int_equal(r.id, ROUTE_KEYS);
    r = match_n(keys, strlen("/v1/account/api-keys/42"));
    assert_int_equal(r.id, ROUTE_KEY);
    assert_int_equal(r.key_id, 42);
    r = match_n(keys, strlen("/v1/account/api-keys/4"));
    assert_int_equal(r.id, ROUTE_KEY);
    assert_int_equal(r.key_id, 4);
    r = match_n(keys, strlen(keys));
    assert_int_equal(r.id, ROUTE_KEY);
    assert_int_equal(r.key_id, 0);
}

static void test_embedded_nul(void **state)
{
    static const char health[] = "/healthz\0";
    static const char key[] = "/v1/account/api-keys/1\0002";
    static const char keys[] = "/v1/account/api-keys\0";
    struct route r;

    (void)state;
    r = match_n(health, sizeof(health) - 1);
    assert_int_equal(r.id, ROUTE_NONE);
    r = match_n(keys, sizeof(keys) - 1);
    assert_int_equal(r.id, ROUTE_NONE);
    r = match_n(key, sizeof(key) - 1);
    assert_int_equal(r.id, ROUTE_KEY);
    assert_int_equal(r.key_id, 0);
}

static void test_parse_id(void **state)
{
    (void)state;
    assert_int_equal(router_parse_id("1", 1), 1);
    assert_int_equal(router_parse_id("42", 2), 42);
    assert_int_equal(router_parse_id("9223372036854775807", 19), INT64_MAX);
    assert_int_equal(router_parse_id("9223372036854775806", 19), INT64_MAX - 1);
    assert_int_equal(router_parse_id("9223372036854775808", 19), 0);
    assert_int_equal(router_parse_id("9999999999999999999", 19), 0);
    assert_int_equal(router_parse_id("10000000000000000000", 20), 0);
    assert_int_equal(router_parse_id("0", 1), 0);
    assert_int_equal(router_parse_id("", 0), 0);
    assert_int_equal(router_parse_id("-1", 2), 0);
    assert_int_equal(router_parse_id("1a", 2), 0);
    assert_int_equal(router_parse_id("a", 1), 0);
    assert_int_equal(router_parse_id("1/", 2), 0);
    assert_int_equal(router_parse_id("12", 1), 1);
    assert_int_equal(router_parse_id("1\0", 2), 0);
}

static void test_allow(void **state)
{
    (void)state;
    assert_string_equal(router_allow(ROUTE_KEYS), "GET, POST");
    assert_string_equal(router_allow(ROUTE_KEY), "PATCH, DELETE");
    assert_string_equal(router_allow(ROUTE_HEALTH), "GET");
    assert_non_null(router_allow(ROUTE_NONE));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_key_ids),
        cmocka_unit_test(test_key_bad_ids),
        cmocka_unit_test(test_unknown_paths),
        cmocka_unit_test(test_null_path),
        cmocka_unit_test(test_length_is_respected),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_parse_id),
        cmocka_unit_test(test_allow),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
