/*
 * Unit tests for http/respond's access-log path: a path that holds a key, in
 * clear or percent-encoded in any way a client or gateway may write it
 * (either case of hex digits, every byte encoded, encoded twice), is
 * redacted; ordinary paths, hex identifiers and ids are shown as sent. And
 * its request ids: a client's sane X-Request-Id is kept, anything else is
 * replaced by a fresh 32-hex-digit id.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "http/respond.h"

#define KEY "ml_prod_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zC7e0Gq"
#define RANDOM "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"

static void logged(const char *path, char *out, size_t outsz)
{
    respond_log_path(path, strlen(path), out, outsz);
}

/* Every byte of `s` as %XX, hex digits in `upper` case or not. */
static void encode_all(const char *s, bool upper, char *out)
{
    for (; *s != '\0'; s++, out += 3)
        snprintf(out, 4, upper ? "%%%02X" : "%%%02x", (unsigned char)*s);
    *out = '\0';
}

static void assert_redacted(const char *path, const char *want)
{
    char out[300];

    assert_true(respond_path_has_key(path, strlen(path)));
    logged(path, out, sizeof(out));
    assert_string_equal(out, want);
}

static void test_keys_are_redacted(void **state)
{
    char path[2048], enc[512], twice[1536];

    (void)state;
    assert_redacted("/v1/auth/verify/" KEY, "/v1/auth/verify/[redacted]");
    assert_redacted("/v1/auth/verify/ml%5Fprod%5F" RANDOM "C7e0Gq", "/v1/auth/verify/[redacted]");
    assert_redacted("/v1/auth/verify/ml%5fsand%5f" RANDOM "C7e0Gq", "/v1/auth/verify/[redacted]");
    assert_redacted("/v1/auth/verify/ML_PROD_x", "/v1/auth/verify/[redacted]");
    assert_redacted("/v1/account/api-keys/" KEY "/", "[redacted]");
    /* The random part alone, or with the separators mangled. */
    assert_redacted("/v1/auth/verify/x/" RANDOM, "/v1/auth/verify/[redacted]");
    assert_redacted("/v1/auth/verify/mlprod" RANDOM, "/v1/auth/verify/[redacted]");
    /* Every byte encoded, in either case; encoded twice; encoded below an encoded route. */
    encode_all(KEY, true, enc);
    snprintf(path, sizeof(path), "/v1/auth/verify/%s", enc);
    assert_redacted(path, "/v1/auth/verify/[redacted]");
    encode_all(KEY, false, enc);
    snprintf(path, sizeof(path), "/v1/auth/verify/a/%s/b", enc);
    assert_redacted(path, "/v1/auth/verify/[redacted]");
    encode_all(enc, true, twice);
    snprintf(path, sizeof(path), "/v1/auth/verify/%s", twice);
    assert_redacted(path, "/v1/auth/verify/[redacted]");
    encode_all("/v1/auth/verify/" KEY, false, enc);
    assert_redacted(enc, "[redacted]");
    assert_redacted("/v1/auth/verify/ml%255Fprod%255Fx", "/v1/auth/verify/[redacted]");
}

static void test_ordinary_paths_are_shown(void **state)
{
    static const char *const paths[] = {
        "/v1/auth/verify",
        "/v1/auth/verify/orders/42",
        "/v1/account/api-keys/123/",
        "/healthz",
        "/start-0123456789abcdef0123456789abcdef", /* a UUID in hex */
        "/v1/auth/verify/%7Euser/a%20b",
        "/v1/auth/verify/production_sandbox",
        "/%zz%5",
    };
    char out[300];

    (void)state;
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        assert_false(respond_path_has_key(paths[i], strlen(paths[i])));
        logged(paths[i], out, sizeof(out));
        assert_string_equal(out, paths[i]);
    }
    logged("/a b\x01", out, sizeof(out));
    assert_string_equal(out, "/a?b?");
}

static void test_long_and_deeply_encoded_paths(void **state)
{
    static char path[4096];
    char out[300];

    (void)state;
    /* Longer than the log shows: cut to 256 bytes, but the key past the cut still counts. */
    memset(path, 'a', 300);
    path[0] = '/';
    path[1] = '-';
    path[300] = '\0';
    for (size_t i = 0; i < 300; i += 2)
        path[i] = '/';
    logged(path, out, sizeof(out));
    assert_int_equal(strlen(out), 256);
    strcat(path, "/ml_sand_x");
    assert_redacted(path, "[redacted]");
    /* Longer than the scan: redacted unread. */
    memset(path, '/', 3000);
    path[3000] = '\0';
    assert_true(respond_path_has_key(path, strlen(path)));
    /* Nine rounds of encoding: refused as a key rather than decoded forever. */
    strcpy(path, "/x%");
    for (int i = 0; i < 9; i++)
        strcat(path, "25");
    strcat(path, "41");
    assert_true(respond_path_has_key(path, strlen(path)));
    /* A small output buffer. */
    logged("/v1/auth/verify/" KEY, out, 5);
    assert_string_equal(out, "/v1/");
}

static bool id_ok(const char *s)
{
    return respond_request_id_ok(s, strlen(s));
}

static void test_request_id_predicate(void **state)
{
    char id[RESPOND_REQUEST_ID_MAX + 2];

    (void)state;
    assert_true(id_ok("a"));
    assert_true(id_ok("req-42"));
    assert_true(id_ok("A.b_C:d-9"));
    assert_true(id_ok("0123456789abcdef0123456789abcdef"));     /* a generated id */
    assert_true(id_ok("123e4567-e89b-12d3-a456-426614174000")); /* a UUID */
    for (size_t i = 0; i < sizeof(id); i++)
        id[i] = i % 8 == 7 ? '-' : "x1y2z3w"[i % 8];
    assert_true(respond_request_id_ok(id, RESPOND_REQUEST_ID_MAX));
    assert_false(respond_request_id_ok(id, RESPOND_REQUEST_ID_MAX + 1));
    memset(id, 'f', sizeof(id)); /* hex, however long the run */
    assert_true(respond_request_id_ok(id, RESPOND_REQUEST_ID_MAX));
    assert_false(id_ok(""));
    assert_false(id_ok("a b"));
    assert_false(id_ok("<script>"));
    assert_false(id_ok("a\"b"));
    assert_false(id_ok("a/b"));
    assert_false(id_ok("a%41"));
    assert_false(id_ok("caf\xc3\xa9"));
    assert_false(id_ok("a\tb"));
    assert_false(respond_request_id_ok("ab\0cd", 5));
    /* A key, or its random part, would reach the access log. */
    assert_false(id_ok(KEY));
    assert_false(id_ok(RANDOM));
    assert_false(id_ok("x_SAND_y"));
    memset(id, 'x', sizeof(id)); /* as long a base62 run as a key's random part */
    assert_true(respond_request_id_ok(id, KEYFMT_RANDOM_LEN - 1));
    assert_false(respond_request_id_ok(id, KEYFMT_RANDOM_LEN));
}

/* An exchange for a request with the given X-Request-Id values (NULL-terminated). */
static const char *exchange_for(h2o_req_t *req, struct exchange *x, const char *const *ids)
{
    memset(req, 0, sizeof(*req));
    h2o_mem_init_pool(&req->pool);
    for (; *ids != NULL; ids++)
        h2o_add_header_by_str(&req->pool, &req->headers, H2O_STRLIT("x-request-id"), 0, NULL, *ids, strlen(*ids));
    exchange_init(x, req);
    h2o_mem_clear_pool(&req->pool);
    return exchange_request_id(x);
}

static bool is_generated(const char *id)
{
    if (strlen(id) != RESPOND_REQUEST_ID_GEN_LEN)
        return false;
    for (; *id != '\0'; id++)
        if (strchr("0123456789abcdef", *id) == NULL)
            return false;
    return true;
}

static void test_request_id_taken_or_generated(void **state)
{
    static const char *const none[] = {NULL}, *const sane[] = {"req-1", NULL}, *const bad[] = {"a b", NULL},
                             *const two[] = {"req-1", "req-2", NULL};
    char seen[64][RESPOND_REQUEST_ID_MAX + 1];
    struct exchange x;
    h2o_req_t req;

    (void)state;
    assert_string_equal(exchange_for(&req, &x, sane), "req-1");
    assert_true(is_generated(exchange_for(&req, &x, bad)));
    assert_true(is_generated(exchange_for(&req, &x, two)));
    for (size_t i = 0; i < 64; i++) {
        strcpy(seen[i], exchange_for(&req, &x, none));
        assert_true(is_generated(seen[i]));
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_are_redacted),
        cmocka_unit_test(test_ordinary_paths_are_shown),
        cmocka_unit_test(test_long_and_deeply_encoded_paths),
        cmocka_unit_test(test_request_id_predicate),
        cmocka_unit_test(test_request_id_taken_or_generated),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
