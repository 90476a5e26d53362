/*
 * Unit tests for core/bearer: the Bearer scheme in any case, spaces and tabs
 * around and between, missing tokens (AK_ERR_MISSING_KEY), other schemes and
 * tokens with spaces (AK_ERR_KEY_FORMAT), and the exact pointer and length
 * of the token within the caller's buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/bearer.h"
#include "core/error.h"

static const char SENTINEL[] = "sentinel";

/* Parses `value` and checks the token is at `offset` with length `len`. */
static void expect_token(const char *value, size_t offset, size_t len)
{
    const char *tok = SENTINEL;
    size_t tlen = 999;
    int r = bearer_parse(value, strlen(value), &tok, &tlen);

    if (r != 0)
        fail_msg("\"%s\" refused with %d", value, r);
    assert_ptr_equal(tok, value + offset);
    assert_int_equal(tlen, len);
}

static void expect_error(const char *value, size_t len, int want)
{
    const char *tok = SENTINEL;
    size_t tlen = 999;
    int r = bearer_parse(value, len, &tok, &tlen);

    if (r != want)
        fail_msg("\"%.*s\": got %d, want %d", (int)len, value, r, want);
    /* Outputs are set only on success. */
    assert_ptr_equal(tok, SENTINEL);
    assert_int_equal(tlen, 999);
}

static void test_accepts_any_case(void **state)
{
    (void)state;
    expect_token("Bearer abc", 7, 3);
    expect_token("bearer abc", 7, 3);
    expect_token("BEARER abc", 7, 3);
    expect_token("bEaReR abc", 7, 3);
}

static void test_spaces_and_tabs(void **state)
{
    (void)state;
    expect_token("BEARER  abc  ", 8, 3);
    expect_token("  Bearer abc", 9, 3);
    expect_token("\tBearer\tabc\t", 8, 3);
    expect_token("Bearer \t \tabc", 10, 3);
    expect_token(" \t Bearer \t abc \t ", 12, 3);
    expect_token("Bearer x", 7, 1);
}

static void test_full_key(void **state)
{
    const char *v = "Bearer ml_prod_0123456789ABCDEFGHIJKLMNOPQRSTUV3vj976";

    (void)state;
    expect_token(v, 7, 46);
}

static void test_length_is_respected(void **state)
{
    const char *v = "Bearer abcdef";
    const char *tok = NULL;
    size_t tlen = 0;

    (void)state;
    assert_int_equal(bearer_parse(v, 10, &tok, &tlen), 0);
    assert_ptr_equal(tok, v + 7);
    assert_int_equal(tlen, 3);
    /* "Bearer" followed by bytes beyond `len` is a missing token. */
    expect_error(v, 6, AK_ERR_MISSING_KEY);
    expect_error(v, 7, AK_ERR_MISSING_KEY);
    expect_error(v, 5, AK_ERR_KEY_FORMAT);
}

static void test_missing(void **state)
{
    (void)state;
    expect_error("", 0, AK_ERR_MISSING_KEY);
    expect_error(" ", 1, AK_ERR_MISSING_KEY);
    expect_error("    ", 4, AK_ERR_MISSING_KEY);
    expect_error("\t", 1, AK_ERR_MISSING_KEY);
    expect_error(" \t \t", 4, AK_ERR_MISSING_KEY);
    expect_error("Bearer", 6, AK_ERR_MISSING_KEY);
    expect_error("bearer", 6, AK_ERR_MISSING_KEY);
    expect_error("Bearer   ", 9, AK_ERR_MISSING_KEY);
    expect_error("Bearer\t", 7, AK_ERR_MISSING_KEY);
    expect_error("  BEARER \t ", 11, AK_ERR_MISSING_KEY);
}

static void test_bad_format(void **state)
{
    static const char *const values[] = {
        "Basic xyz",      "Basic dXNlcjpwYXNz", "Bearerabc",   "Bearer a b",  "Bearer a\tb",
        "Bearer abc def", "Bearer: abc",        "Bear abc",    "Bear",        "abc",
        "Token abc",      "Bearer,abc",         "Digest x=y",  "Bearer=abc",  "B",
        "ml_prod_abc",    "Bearer a  b  ",      "Bearerr abc", "Bearer\nabc", "Bearer\rabc",
        "xBearer abc",    "Bearer abc Bearer",  "Bearer\vabc",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        expect_error(values[i], strlen(values[i]), AK_ERR_KEY_FORMAT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_any_case),    cmocka_unit_test(test_spaces_and_tabs), cmocka_unit_test(test_full_key),
        cmocka_unit_test(test_length_is_respected), cmocka_unit_test(test_missing),         cmocka_unit_test(test_bad_format),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
