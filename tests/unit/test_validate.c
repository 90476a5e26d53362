/*
 * Unit tests for core/validate: every body rule of docs/contract.md for
 * POST (validate_create) and PATCH (validate_patch), key names
 * (validate_name: emptiness, 100 code points, control characters) and the
 * nesting pre-check (validate_json_depth), and the operator bodies of
 * docs/contract.md's "Operator API" (validate_account_create,
 * validate_account_patch, validate_issue, validate_external_id). Refusals must carry a message;
 * AK_ERR_JSON is "not acceptable JSON" (400), AK_ERR_INVALID a rule (422).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/validate.h"

/* Calls validate_create on `len` bytes; on failure checks the message and that `ret` is untouched. */
static int create_n(const char *body, size_t len, struct create_req *ret)
{
    struct create_req before;
    char msg[VALIDATE_MSG_MAX];
    int r;

    memset(ret, 0x5a, sizeof(*ret));
    before = *ret;
    memset(msg, 0, sizeof(msg));
    r = validate_create(body, len, ret, msg, sizeof(msg));
    if (r != 0) {
        if (msg[0] == '\0')
            fail_msg("no message for refused create body %.80s", body != NULL ? body : "(null)");
        assert_memory_equal(ret, &before, sizeof(before));
    }
    return r;
}

static int create(const char *body, struct create_req *ret)
{
    return create_n(body, strlen(body), ret);
}

static int patch_n(const char *body, size_t len, struct patch_req *ret)
{
    struct patch_req before;
    char msg[VALIDATE_MSG_MAX];
    int r;

    memset(ret, 0x5a, sizeof(*ret));
    before = *ret;
    memset(msg, 0, sizeof(msg));
    r = validate_patch(body, len, ret, msg, sizeof(msg));
    if (r != 0) {
        if (msg[0] == '\0')
            fail_msg("no message for refused patch body %.80s", body != NULL ? body : "(null)");
        assert_memory_equal(ret, &before, sizeof(before));
    }
    return r;
}

static int patch(const char *body, struct patch_req *ret)
{
    return patch_n(body, strlen(body), ret);
}

static int name(const char *s, size_t len)
{
    char msg[VALIDATE_MSG_MAX] = "";
    int r = validate_name(s, len, msg, sizeof(msg));

    if (r != 0 && msg[0] == '\0')
        fail_msg("no message for refused name");
    return r;
}

/* Returns a malloc'd string of `n` copies of `s`. */
static char *repeat(const char *s, size_t n)
{
    size_t len = strlen(s);
    char *out = malloc(len * n + 1);

    assert_non_null(out);
    for (size_t i = 0; i < n; i++)
        memcpy(out + i * len, s, len);
    out[len * n] = '\0';
    return out;
}

/* A create body with the given name text (already JSON-escaped) and key type. */
static char *create_body(const char *name_json, const char *type)
{
    size_t n = strlen(name_json) + strlen(type) + 64;
    char *b = malloc(n);

    assert_non_null(b);
    snprintf(b, n, "{\"name\":\"%s\",\"key_type\":\"%s\"}", name_json, type);
    return b;
}

static void expect_create(const char *body, int want)
{
    struct create_req req;
    int r = create(body, &req);

    if (r != want)
        fail_msg("create body %.120s: got %d (%s), want %d (%s)", body, r, ak_strerror(r), want, ak_strerror(want));
}

static void expect_patch(const char *body, int want)
{
    struct patch_req req;
    int r = patch(body, &req);

    if (r != want)
        fail_msg("patch body %.120s: got %d (%s), want %d (%s)", body, r, ak_strerror(r), want, ak_strerror(want));
}

/* ------------------------------------------------------------------ create */

static void test_create_valid(void **state)
{
    struct create_req req;

    (void)state;
    assert_int_equal(create("{\"name\":\"CI/CD Pipeline\",\"key_type\":\"production\"}", &req), 0);
    assert_string_equal(req.name, "CI/CD Pipeline");
    assert_int_equal(req.type, KEY_TYPE_PRODUCTION);
    assert_int_equal(create("{\"name\":\"Staging Environment\",\"key_type\":\"sandbox\"}", &req), 0);
    assert_string_equal(req.name, "Staging Environment");
    assert_int_equal(req.type, KEY_TYPE_SANDBOX);
    /* Any field order, any whitespace. */
    assert_int_equal(create(" \n\t{ \"key_type\" : \"sandbox\" ,\r\n \"name\" : \"x\" } \n", &req), 0);
    assert_string_equal(req.name, "x");
    assert_int_equal(req.type, KEY_TYPE_SANDBOX);
    /* Escapes are decoded. */
    assert_int_equal(create("{\"name\":\"a\\\"b\\\\c\\u00e9\\/\",\"key_type\":\"sandbox\"}", &req), 0);
    assert_string_equal(req.name, "a\"b\\c\xc3\xa9/");
    /* Leading and inner spaces and a no-break space are fine. */
    assert_int_equal(create("{\"name\":\" x\",\"key_type\":\"sandbox\"}", &req), 0);
    assert_string_equal(req.name, " x");
    assert_int_equal(create("{\"name\":\"a\\u00a0b\",\"key_type\":\"sandbox\"}", &req), 0);
    assert_string_equal(req.name, "a\xc2\xa0"
                                  "b");
}

static void test_create_name_length(void **state)
{
    static const struct {
        const char *unit; /* one character, as JSON text */
        const char *utf8; /* the same character, decoded */
    } chars[] = {
        {"x", "x"},
        {"\xc3\xa9", "\xc3\xa9"},                 /* é, 2 bytes */
        {"\\u00e9", "\xc3\xa9"},                  /* é, escaped */
        {"\xe5\x90\x8d", "\xe5\x90\x8d"},         /* 名, 3 bytes */
        {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"}, /* 😀, 4 bytes */
        {"\\ud83d\\ude00", "\xf0\x9f\x98\x80"},   /* 😀 as a surrogate pair */
    };
    struct create_req req;

    (void)state;
    for (size_t i = 0; i < sizeof(chars) / sizeof(chars[0]); i++) {
        char *n100 = repeat(chars[i].unit, 100), *n101 = repeat(chars[i].unit, 101);
        char *b100 = create_body(n100, "sandbox"), *b101 = create_body(n101, "sandbox");
        char *want = repeat(chars[i].utf8, 100);

        if (create(b100, &req) != 0)
            fail_msg("100 characters of %s refused", chars[i].unit);
        assert_string_equal(req.name, want);
        expect_create(b101, AK_ERR_INVALID);
        free(n100);
        free(n101);
        free(b100);
        free(b101);
        free(want);
    }
}

static void test_create_name_refused(void **state)
{
    static const char *const names[] = {
        "",
        " ",
        "     ",
        "\\u0020\\u0020",
        "\\u0001",
        "a\\u0001b",
        "\\t",
        "a\\tb",
        "a\\nb",
        "a\\rb",
        "a\\u001fb",
        "abc\\u0007",
        "a\\u007fb",
        "\\u007f",
        "a\\u0080b",
        "a\\u0085b",
        "\\u0085",
        "a\\u009fb",
        "a\xc2\x85"
        "b",    /* U+0085 raw */
        "\x7f", /* U+007F raw */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *b = create_body(names[i], "sandbox");
        expect_create(b, AK_ERR_INVALID);
        free(b);
    }
}

/*
 * "\u0000" is valid JSON (RFC 8259). In a name it is a control character and
 * in key_type an unknown type: both are rule violations (422), not malformed
 * JSON (400). contract.md lists U+0000 among the refused control characters.
 */
static void test_escaped_nul_is_invalid(void **state)
{
    (void)state;
    expect_create("{\"name\":\"a\\u0000b\",\"key_type\":\"sandbox\"}", AK_ERR_INVALID);
    expect_create("{\"name\":\"\\u0000\",\"key_type\":\"sandbox\"}", AK_ERR_INVALID);
    expect_create("{\"name\":\"a\",\"key_type\":\"sandbox\\u0000\"}", AK_ERR_INVALID);
    expect_patch("{\"name\":\"\\u0000\"}", AK_ERR_INVALID);
    expect_patch("{\"name\":\"a\\u0000\",\"is_active\":true}", AK_ERR_INVALID);
}

/* Valid JSON whose number does not fit 64 bits (or a double) is a range error, 422, not malformed JSON (400 before). */
static void test_numeric_overflow_is_invalid_not_json(void **state)
{
    struct account_create_req acreq;
    struct account_patch_req apreq;
    char msg[VALIDATE_MSG_MAX];

    (void)state;
    expect_create("{\"name\":18446744073709551616,\"key_type\":\"sandbox\"}", AK_ERR_INVALID);
    /* still malformed JSON: a double past its range, and a huge integer where the syntax breaks */
    expect_patch("{\"is_active\":1e999}", AK_ERR_JSON);
    expect_create("{\"name\":\"a\",\"key_type\"66666666666666666666666:\"sandbox\"}", AK_ERR_JSON);
    assert_int_equal(validate_account_create("{\"name\":\"a\",\"max_keys\":18446744073709551616}", 44, &acreq, msg, sizeof(msg)),
                     AK_ERR_INVALID);
    assert_int_equal(validate_account_patch("{\"max_keys\":-100000000000000000000}", 35, &apreq, msg, sizeof(msg)), AK_ERR_INVALID);
    /* still malformed: */
    expect_patch("{\"is_active\":1e}", AK_ERR_JSON);
}

static void test_create_missing_fields(void **state)
{
    (void)state;
    expect_create("{\"key_type\":\"sandbox\"}", AK_ERR_INVALID);
    expect_create("{\"name\":\"a\"}", AK_ERR_INVALID);
    expect_create("{}", AK_ERR_INVALID);
}

static void test_create_wrong_types(void **state)
{
    static const char *const bodies[] = {
        "{\"name\":1,\"key_type\":\"sandbox\"}",
        "{\"name\":1.5,\"key_type\":\"sandbox\"}",
        "{\"name\":null,\"key_type\":\"sandbox\"}",
        "{\"name\":true,\"key_type\":\"sandbox\"}",
        "{\"name\":[\"a\"],\"key_type\":\"sandbox\"}",
        "{\"name\":{\"a\":1},\"key_type\":\"sandbox\"}",
        "{\"name\":\"a\",\"key_type\":1}",
        "{\"name\":\"a\",\"key_type\":null}",
        "{\"name\":\"a\",\"key_type\":true}",
        "{\"name\":\"a\",\"key_type\":[\"sandbox\"]}",
        "{\"name\":\"a\",\"key_type\":{\"sandbox\":1}}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        expect_create(bodies[i], AK_ERR_INVALID);
}

static void test_create_key_type_unknown(void **state)
{
    static const char *const types[] = {"staging", "Production", "SANDBOX", "prod", "sand", "", " sandbox", "sandbox "};

    (void)state;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        char *b = create_body("a", types[i]);
        expect_create(b, AK_ERR_INVALID);
        free(b);
    }
}

static void test_create_unknown_and_read_only_fields(void **state)
{
    static const char *const fields[] = {"\"id\":1",
                                         "\"key_prefix\":\"ml_prod_abcd\"",
                                         "\"created_at\":\"2024-01-15T10:00:00Z\"",
                                         "\"last_used\":null",
                                         "\"api_key\":\"ml_prod_x\"",
                                         "\"is_active\":true",
                                         "\"is_primary\":false",
                                         "\"is_primary\":true",
                                         "\"foo\":1",
                                         "\"Name\":\"a\"",
                                         "\"\":1",
                                         "\"account_id\":1",
                                         "\"message\":\"x\""};
    char body[256];

    (void)state;
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        snprintf(body, sizeof(body), "{\"name\":\"a\",\"key_type\":\"sandbox\",%s}", fields[i]);
        expect_create(body, AK_ERR_INVALID);
        snprintf(body, sizeof(body), "{%s,\"name\":\"a\",\"key_type\":\"sandbox\"}", fields[i]);
        expect_create(body, AK_ERR_INVALID);
    }
}

static void test_create_array_is_invalid(void **state)
{
    (void)state;
    expect_create("[]", AK_ERR_INVALID);
    expect_create("[{\"name\":\"a\",\"key_type\":\"sandbox\"}]", AK_ERR_INVALID);
    expect_create(" [ 1 , 2 ] ", AK_ERR_INVALID);
}

/*
 * A scalar is a complete JSON text (RFC 8259) that is not an object:
 * contract.md says "body not a JSON object" is 422, like an array.
 */
static void test_scalar_body_is_invalid(void **state)
{
    static const char *const bodies[] = {"\"name\"", "1", "-2.5", "null", "true", "false", " \"a\" "};

    (void)state;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        expect_create(bodies[i], AK_ERR_INVALID);
        expect_patch(bodies[i], AK_ERR_INVALID);
    }
}

static void test_create_malformed_json(void **state)
{
    static const char *const bodies[] = {
        "{",
        "}",
        "{\"name\":",
        "{\"name\":\"a\",\"key_type\":\"sandbox\"",
        "{\"name\":\"a\",\"key_type\":\"sandbox\"} x",
        "{\"name\":\"a\",\"key_type\":\"sandbox\"}{}",
        "{\"name\":\"a\",\"key_type\":\"sandbox\",}",
        "{'name':'a','key_type':'sandbox'}",
        "{name:\"a\",key_type:\"sandbox\"}",
        "name=a&key_type=sandbox",
        "{\"name\":\"a\x01"
        "b\",\"key_type\":\"sandbox\"}", /* raw control character in a string */
        "{\"name\":\"a\nb\",\"key_type\":\"sandbox\"}",
        "{\"name\":\"\\x41\",\"key_type\":\"sandbox\"}",
        "{\"name\":\"\\ud800\",\"key_type\":\"sandbox\"}",      /* lone surrogate escape */
        "{\"name\":\"\xff\",\"key_type\":\"sandbox\"}",         /* invalid UTF-8 */
        "{\"name\":\"\xc0\xaf\",\"key_type\":\"sandbox\"}",     /* overlong */
        "{\"name\":\"\xed\xa0\x80\",\"key_type\":\"sandbox\"}", /* UTF-8 surrogate */
        "{\"name\":\"\xe2\x82\",\"key_type\":\"sandbox\"}",     /* truncated sequence */
        "{\"name\":\"caf\xe9\",\"key_type\":\"sandbox\"}",      /* latin-1 */
        "{\"name\":\"a\",\"key_type\":\"sandbox\",\"x\":NaN}",
        "{\"name\":\"a\",\"key_type\":\"sandbox\",\"x\":01}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        expect_create(bodies[i], AK_ERR_JSON);
}

static void test_create_empty_body(void **state)
{
    struct create_req req;

    (void)state;
    assert_int_equal(create_n("", 0, &req), AK_ERR_JSON);
    assert_int_equal(create_n(NULL, 0, &req), AK_ERR_JSON);
    assert_int_equal(create_n("   ", 3, &req), AK_ERR_JSON);
}

static void test_create_duplicate_keys(void **state)
{
    (void)state;
    expect_create("{\"name\":\"a\",\"name\":\"b\",\"key_type\":\"sandbox\"}", AK_ERR_JSON);
    expect_create("{\"name\":\"a\",\"key_type\":\"sandbox\",\"key_type\":\"sandbox\"}", AK_ERR_JSON);
    expect_create("{\"name\":\"a\",\"name\":\"a\",\"key_type\":\"sandbox\"}", AK_ERR_JSON);
}

static void test_create_only_len_bytes(void **state)
{
    const char *body = "{\"name\":\"a\",\"key_type\":\"sandbox\"}garbage";
    struct create_req req;

    (void)state;
    assert_int_equal(create_n(body, strlen(body) - 7, &req), 0);
    assert_string_equal(req.name, "a");
}

/* Pads a valid create body with spaces to exactly `size` bytes. */
static char *padded(size_t size)
{
    const char *core = "{\"name\":\"padded\",\"key_type\":\"sandbox\"";
    char *b = malloc(size + 1);

    assert_non_null(b);
    memset(b, ' ', size);
    memcpy(b, core, strlen(core));
    b[size - 1] = '}';
    b[size] = '\0';
    return b;
}

static void test_create_body_size(void **state)
{
    struct create_req req;
    char *at = padded(VALIDATE_BODY_MAX), *over = padded(VALIDATE_BODY_MAX + 1);

    (void)state;
    assert_int_equal(VALIDATE_BODY_MAX, 64 * 1024);
    assert_int_equal(create_n(at, VALIDATE_BODY_MAX, &req), 0);
    assert_string_equal(req.name, "padded");
    assert_int_not_equal(create_n(over, VALIDATE_BODY_MAX + 1, &req), 0);
    free(at);
    free(over);
}

/* A create body whose extra field "x" nests `extra` arrays: total depth extra + 1. */
static char *nested_create(int extra)
{
    const char *head = "{\"name\":\"a\",\"key_type\":\"sandbox\",\"x\":";
    size_t hl = strlen(head), n = (size_t)extra;
    char *b = malloc(hl + 2 * n + 2);

    assert_non_null(b);
    memcpy(b, head, hl);
    memset(b + hl, '[', n);
    memset(b + hl + n, ']', n);
    b[hl + 2 * n] = '}';
    b[hl + 2 * n + 1] = '\0';
    return b;
}

static void test_create_depth(void **state)
{
    char *ok = nested_create(VALIDATE_DEPTH_MAX - 1), *deep = nested_create(VALIDATE_DEPTH_MAX);
    char *unclosed = repeat("[", 60000), *objects = malloc(200 * 5 + 2 + 200);

    (void)state;
    assert_int_equal(VALIDATE_DEPTH_MAX, 32);
    /* Depth 32 parses, then fails only on the unknown field. */
    expect_create(ok, AK_ERR_INVALID);
    expect_create(deep, AK_ERR_JSON);
    expect_create(unclosed, AK_ERR_JSON);
    assert_non_null(objects);
    objects[0] = '\0';
    for (int i = 0; i < 200; i++)
        strcat(objects, "{\"a\":");
    strcat(objects, "1");
    for (int i = 0; i < 200; i++)
        strcat(objects, "}");
    expect_create(objects, AK_ERR_JSON);
    free(ok);
    free(deep);
    free(unclosed);
    free(objects);
}

/* ------------------------------------------------------------------- patch */

static void test_patch_valid(void **state)
{
    struct patch_req req;

    (void)state;
    assert_int_equal(patch("{\"name\":\"Updated Key Name\"}", &req), 0);
    assert_true(req.has_name);
    assert_false(req.has_active);
    assert_false(req.has_primary);
    assert_string_equal(req.name, "Updated Key Name");

    assert_int_equal(patch("{\"is_active\":false}", &req), 0);
    assert_false(req.has_name);
    assert_true(req.has_active);
    assert_false(req.has_primary);
    assert_false(req.active);

    assert_int_equal(patch("{\"is_active\":true}", &req), 0);
    assert_true(req.has_active);
    assert_true(req.active);

    assert_int_equal(patch("{\"is_primary\":true}", &req), 0);
    assert_false(req.has_name);
    assert_false(req.has_active);
    assert_true(req.has_primary);
    assert_true(req.primary);

    assert_int_equal(patch("{\"is_primary\":false}", &req), 0);
    assert_true(req.has_primary);
    assert_false(req.primary);

    assert_int_equal(patch("{\"is_primary\":true,\"name\":\"n\",\"is_active\":false}", &req), 0);
    assert_true(req.has_name);
    assert_true(req.has_active);
    assert_true(req.has_primary);
    assert_string_equal(req.name, "n");
    assert_false(req.active);
    assert_true(req.primary);
}

static void test_patch_name_rules(void **state)
{
    char *n100 = repeat("\xc3\xa9", 100), *n101 = repeat("\xc3\xa9", 101);
    char *x101 = repeat("x", 101);
    char body[1024];
    struct patch_req req;

    (void)state;
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", n100);
    assert_int_equal(patch(body, &req), 0);
    assert_string_equal(req.name, n100);
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", n101);
    expect_patch(body, AK_ERR_INVALID);
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", x101);
    expect_patch(body, AK_ERR_INVALID);
    expect_patch("{\"name\":\"\"}", AK_ERR_INVALID);
    expect_patch("{\"name\":\"   \"}", AK_ERR_INVALID);
    expect_patch("{\"name\":\"\\u0001\"}", AK_ERR_INVALID);
    expect_patch("{\"name\":\"a\\u007f\"}", AK_ERR_INVALID);
    expect_patch("{\"name\":\"a\\u0085\"}", AK_ERR_INVALID);
    expect_patch("{\"name\":\"\\u009f\"}", AK_ERR_INVALID);
    expect_patch("{\"name\":\"a\\nb\"}", AK_ERR_INVALID);
    free(n100);
    free(n101);
    free(x101);
}

static void test_patch_wrong_types(void **state)
{
    static const char *const bodies[] = {
        "{\"name\":5}",
        "{\"name\":null}",
        "{\"name\":false}",
        "{\"name\":[]}",
        "{\"is_active\":\"false\"}",
        "{\"is_active\":0}",
        "{\"is_active\":1}",
        "{\"is_active\":null}",
        "{\"is_active\":[]}",
        "{\"is_primary\":\"true\"}",
        "{\"is_primary\":1}",
        "{\"is_primary\":null}",
        "{\"is_primary\":{}}",
        "{\"name\":\"ok\",\"is_active\":\"true\"}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        expect_patch(bodies[i], AK_ERR_INVALID);
}

static void test_patch_unknown_and_read_only_fields(void **state)
{
    static const char *const bodies[] = {
        "{\"key_type\":\"sandbox\"}",
        "{\"name\":\"a\",\"key_type\":\"production\"}",
        "{\"id\":1}",
        "{\"name\":\"a\",\"id\":1}",
        "{\"key_prefix\":\"ml_prod_abcd\"}",
        "{\"created_at\":\"2024-01-15T10:00:00Z\",\"name\":\"a\"}",
        "{\"last_used\":null,\"is_active\":true}",
        "{\"api_key\":\"x\",\"is_primary\":true}",
        "{\"foo\":1}",
        "{\"isActive\":true}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        expect_patch(bodies[i], AK_ERR_INVALID);
}

static void test_patch_empty_object_and_non_objects(void **state)
{
    struct patch_req req;

    (void)state;
    expect_patch("{}", AK_ERR_INVALID);
    expect_patch(" { } ", AK_ERR_INVALID);
    expect_patch("[]", AK_ERR_INVALID);
    expect_patch("[{\"name\":\"a\"}]", AK_ERR_INVALID);
    assert_int_equal(patch_n("", 0, &req), AK_ERR_JSON);
}

static void test_patch_json_errors(void **state)
{
    (void)state;
    expect_patch("{\"name\":\"a\",\"name\":\"b\"}", AK_ERR_JSON);
    expect_patch("{\"is_active\":true,\"is_active\":true}", AK_ERR_JSON);
    expect_patch("{\"is_active\":tru}", AK_ERR_JSON);
    expect_patch("{\"is_active\":True}", AK_ERR_JSON);
    expect_patch("{\"name\":\"a\"", AK_ERR_JSON);
    expect_patch("{\"name\":\"\xff\"}", AK_ERR_JSON);
}

static void test_patch_body_size_and_depth(void **state)
{
    struct patch_req req;
    char *big = malloc(VALIDATE_BODY_MAX + 2);
    char deep[128];

    (void)state;
    assert_non_null(big);
    memset(big, ' ', VALIDATE_BODY_MAX + 1);
    memcpy(big, "{\"is_active\":true", 17);
    big[VALIDATE_BODY_MAX] = '}';
    big[VALIDATE_BODY_MAX + 1] = '\0';
    assert_int_not_equal(patch_n(big, VALIDATE_BODY_MAX + 1, &req), 0);
    big[VALIDATE_BODY_MAX - 1] = '}';
    assert_int_equal(patch_n(big, VALIDATE_BODY_MAX, &req), 0);
    assert_true(req.has_active);
    free(big);

    /* {"x": 32 more levels} = 33 */
    snprintf(deep, sizeof(deep), "{\"x\":%.32s%.32s}", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    expect_patch(deep, AK_ERR_JSON);
    snprintf(deep, sizeof(deep), "{\"x\":%.31s%.31s}", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    expect_patch(deep, AK_ERR_INVALID);
}

/* -------------------------------------------------------------------- name */

static void test_name_direct(void **state)
{
    char *e100 = repeat("\xc3\xa9", 100), *e101 = repeat("\xc3\xa9", 101);
    char *emoji100 = repeat("\xf0\x9f\x98\x80", 100), *x100 = repeat("x", 100), *x101 = repeat("x", 101);
    char *sp100 = repeat(" ", 100);

    (void)state;
    assert_int_equal(name("abc", 3), 0);
    assert_int_equal(name("a", 1), 0);
    assert_int_equal(name(" a ", 3), 0);
    assert_int_equal(name(x100, 100), 0);
    assert_int_equal(name(x101, 101), AK_ERR_INVALID);
    assert_int_equal(name(e100, 200), 0);
    assert_int_equal(name(e101, 202), AK_ERR_INVALID);
    assert_int_equal(name(emoji100, 400), 0);
    assert_int_equal(name("", 0), AK_ERR_INVALID);
    assert_int_equal(name(" ", 1), AK_ERR_INVALID);
    assert_int_equal(name(sp100, 100), AK_ERR_INVALID);
    /* Every C0 control, DEL and every C1 control, alone and inside a name. */
    for (unsigned cp = 0; cp <= 0x9f; cp++) {
        char buf[8];
        size_t n;

        if (cp >= 0x20 && cp < 0x7f)
            continue;
        buf[0] = 'a';
        if (cp < 0x80) {
            buf[1] = (char)cp;
            n = 2;
        } else {
            buf[1] = (char)(0xc0 | (cp >> 6));
            buf[2] = (char)(0x80 | (cp & 0x3f));
            n = 3;
        }
        buf[n] = 'b';
        if (name(buf, n + 1) != AK_ERR_INVALID)
            fail_msg("control character U+%04X accepted inside a name", cp);
        if (name(buf + 1, n - 1) != AK_ERR_INVALID)
            fail_msg("control character U+%04X accepted as a name", cp);
    }
    /* The first printable characters after the C1 block are fine; a no-break space alone is white space only. */
    assert_int_equal(name("\xc2\xa0", 2), AK_ERR_INVALID);
    assert_int_equal(name("a\xc2\xa0", 3), 0);
    assert_int_equal(name("a\xc2\xa1", 3), 0);
    assert_int_equal(name("~", 1), 0);
    /* Only `len` bytes count. */
    assert_int_equal(name("abc\x01", 3), 0);
    assert_int_equal(name(x101, 100), 0);
    free(e100);
    free(e101);
    free(emoji100);
    free(x100);
    free(x101);
    free(sp100);
}

/* -------------------------------------------------------------------- depth */

static char *nest(const char *open, const char *close, int depth)
{
    size_t ol = strlen(open), cl = strlen(close), n = (size_t)depth;
    char *b = malloc(n * (ol + cl) + 2);
    size_t p = 0;

    assert_non_null(b);
    for (size_t i = 0; i < n; i++, p += ol)
        memcpy(b + p, open, ol);
    b[p++] = '1';
    for (size_t i = 0; i < n; i++, p += cl)
        memcpy(b + p, close, cl);
    b[p] = '\0';
    return b;
}

static void test_json_depth(void **state)
{
    char *a32 = nest("[", "]", 32), *a33 = nest("[", "]", 33);
    char *o32 = nest("{\"a\":", "}", 32), *o33 = nest("{\"a\":", "}", 33);
    char *m33 = nest("[{\"a\":", "}]", 17); /* 34 levels, mixed */

    (void)state;
    assert_int_equal(validate_json_depth(a32, strlen(a32), 32), 0);
    assert_int_equal(validate_json_depth(a33, strlen(a33), 32), AK_ERR_JSON);
    assert_int_equal(validate_json_depth(o32, strlen(o32), 32), 0);
    assert_int_equal(validate_json_depth(o33, strlen(o33), 32), AK_ERR_JSON);
    assert_int_equal(validate_json_depth(m33, strlen(m33), 32), AK_ERR_JSON);
    assert_int_equal(validate_json_depth(a33, strlen(a33), 33), 0);
    /* Siblings do not add up. */
    assert_int_equal(validate_json_depth("[[],[],[],[]]", 13, 2), 0);
    assert_int_equal(validate_json_depth("[[[]]]", 6, 2), AK_ERR_JSON);
    /* Only `len` bytes count. */
    assert_int_equal(validate_json_depth(a33, 32, 32), 0);
    assert_int_equal(validate_json_depth("", 0, 32), 0);
    free(a32);
    free(a33);
    free(o32);
    free(o33);
    free(m33);
}

static void test_json_depth_strings(void **state)
{
    char *brackets = repeat("[{", 100), *name50 = repeat("[{", 50);
    char body[512];

    (void)state;
    /* Brackets inside strings, as values and as keys, do not count. */
    snprintf(body, sizeof(body), "{\"a\":\"%s\"}", brackets);
    assert_int_equal(validate_json_depth(body, strlen(body), 32), 0);
    snprintf(body, sizeof(body), "{\"%s\":1}", brackets);
    assert_int_equal(validate_json_depth(body, strlen(body), 32), 0);
    /* An escaped quote does not end the string. */
    snprintf(body, sizeof(body), "{\"a\":\"\\\"%s\"}", brackets);
    assert_int_equal(validate_json_depth(body, strlen(body), 32), 0);
    snprintf(body, sizeof(body), "{\"a\":\"x\\\\\\\"%s\"}", brackets);
    assert_int_equal(validate_json_depth(body, strlen(body), 32), 0);
    /* An escaped backslash does end it: what follows counts again. */
    snprintf(body, sizeof(body), "[\"\\\\\",%.32s1%.32s]", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    assert_int_equal(validate_json_depth(body, strlen(body), 32), AK_ERR_JSON);
    snprintf(body, sizeof(body), "[\"\\\\\",%.31s1%.31s]", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    assert_int_equal(validate_json_depth(body, strlen(body), 32), 0);
    /* Through validate_create: a name full of brackets is a fine name. */
    {
        struct create_req req;
        char *b = create_body(name50, "sandbox");
        size_t len = strlen(b);
        assert_int_equal(create_n(b, len, &req), 0);
        assert_string_equal(req.name, name50);
        free(b);
    }
    free(brackets);
    free(name50);
}

/* ------------------------------------------------ operator bodies (issue 9) */

/* Runs one of the three operator validators; on refusal checks the message and that `ret` is untouched. */
enum op_body { OP_ACCOUNT_CREATE, OP_ACCOUNT_PATCH, OP_ISSUE };

union op_req {
    struct account_create_req create;
    struct account_patch_req patch;
    struct issue_req issue;
};

static int op_n(enum op_body which, const char *body, size_t len, union op_req *ret)
{
    union op_req before;
    char msg[VALIDATE_MSG_MAX];
    int r;

    memset(ret, 0x5a, sizeof(*ret));
    before = *ret;
    memset(msg, 0, sizeof(msg));
    switch (which) {
    case OP_ACCOUNT_CREATE:
        r = validate_account_create(body, len, &ret->create, msg, sizeof(msg));
        break;
    case OP_ACCOUNT_PATCH:
        r = validate_account_patch(body, len, &ret->patch, msg, sizeof(msg));
        break;
    default:
        r = validate_issue(body, len, &ret->issue, msg, sizeof(msg));
        break;
    }
    if (r != 0) {
        if (msg[0] == '\0')
            fail_msg("no message for refused body %.80s", body != NULL ? body : "(null)");
        if (which != OP_ISSUE)
            assert_memory_equal(ret, &before, sizeof(before));
        else
            assert_memory_equal(&ret->issue.key, &before.issue.key, sizeof(before.issue.key));
    }
    return r;
}

static int op(enum op_body which, const char *body, union op_req *ret)
{
    return op_n(which, body, strlen(body), ret);
}

static void expect_op(enum op_body which, const char *body, int want)
{
    union op_req req;
    int r = op(which, body, &req);

    if (r != want)
        fail_msg("body %.120s: got %d (%s), want %d (%s)", body, r, ak_strerror(r), want, ak_strerror(want));
}

static void test_account_create_valid(void **state)
{
    union op_req r;
    char body[400];

    (void)state;
    assert_int_equal(op(OP_ACCOUNT_CREATE, "{\"name\":\"acme\"}", &r), 0);
    assert_string_equal(r.create.name, "acme");
    assert_string_equal(r.create.external_id, "");
    assert_int_equal(r.create.max_keys, 0);
    assert_int_equal(op(OP_ACCOUNT_CREATE, "{\"max_keys\":1000000,\"external_id\":\"cus_9Q~!\",\"name\":\"Acme Inc\"}", &r), 0);
    assert_string_equal(r.create.name, "Acme Inc");
    assert_string_equal(r.create.external_id, "cus_9Q~!");
    assert_int_equal(r.create.max_keys, 1000000);
    assert_int_equal(op(OP_ACCOUNT_CREATE, "{\"name\":\"a\",\"external_id\":null,\"max_keys\":null}", &r), 0);
    assert_string_equal(r.create.external_id, "");
    assert_int_equal(r.create.max_keys, 0);
    assert_int_equal(op(OP_ACCOUNT_CREATE, "{\"name\":\"a\",\"max_keys\":1}", &r), 0);
    assert_int_equal(r.create.max_keys, 1);
    /* external_id: 255 bytes of printable ASCII, every one of them allowed */
    memset(body, 0, sizeof(body));
    strcpy(body, "{\"name\":\"a\",\"external_id\":\"");
    for (int c = 0x21, i = 0; i < ACCOUNT_EXTERNAL_ID_MAX; i++, c = c == 0x7e ? 0x21 : c + 1) {
        char ch[3] = {(char)c, 0, 0};
        if (c == '"' || c == '\\') {
            ch[0] = '\\';
            ch[1] = (char)c;
        }
        strcat(body, ch);
    }
    strcat(body, "\"}");
    assert_int_equal(op(OP_ACCOUNT_CREATE, body, &r), 0);
    assert_int_equal(strlen(r.create.external_id), ACCOUNT_EXTERNAL_ID_MAX);
    assert_int_equal(r.create.external_id[0], '!');
    /* name as a key name: 100 code points */
    {
        char *n = repeat("\xe5\x90\x8d", KEY_NAME_MAX_CHARS), *b = malloc(strlen(n) + 32);
        assert_non_null(b);
        sprintf(b, "{\"name\":\"%s\"}", n);
        assert_int_equal(op(OP_ACCOUNT_CREATE, b, &r), 0);
        assert_string_equal(r.create.name, n);
        free(b);
        n[0] = '\0';
        free(n);
    }
}

static void test_account_create_refused(void **state)
{
    static const char *const invalid[] = {
        /* name: required, a key name */
        "{}",
        "{\"external_id\":\"x\"}",
        "{\"name\":\"\"}",
        "{\"name\":\"   \"}",
        "{\"name\":\"\\u3000\"}",
        "{\"name\":\"a\\u0007b\"}",
        "{\"name\":\"a\\u0000b\"}",
        "{\"name\":null}",
        "{\"name\":5}",
        "{\"name\":[\"a\"]}",
        /* external_id: 1..255 printable ASCII, no space, or null */
        "{\"name\":\"a\",\"external_id\":\"\"}",
        "{\"name\":\"a\",\"external_id\":\"has space\"}",
        "{\"name\":\"a\",\"external_id\":\"tab\\there\"}",
        "{\"name\":\"a\",\"external_id\":\"nul\\u0000\"}",
        "{\"name\":\"a\",\"external_id\":\"del\\u007f\"}",
        "{\"name\":\"a\",\"external_id\":\"caf\\u00e9\"}",
        "{\"name\":\"a\",\"external_id\":\"\xc3\xa9\"}",
        "{\"name\":\"a\",\"external_id\":\"line\\n\"}",
        "{\"name\":\"a\",\"external_id\":5}",
        "{\"name\":\"a\",\"external_id\":true}",
        "{\"name\":\"a\",\"external_id\":[\"x\"]}",
        "{\"name\":\"a\",\"external_id\":{}}",
        /* max_keys: an integer 1..1000000, or null */
        "{\"name\":\"a\",\"max_keys\":0}",
        "{\"name\":\"a\",\"max_keys\":-1}",
        "{\"name\":\"a\",\"max_keys\":1000001}",
        "{\"name\":\"a\",\"max_keys\":4294967297}",
        "{\"name\":\"a\",\"max_keys\":9223372036854775807}",
        "{\"name\":\"a\",\"max_keys\":-9223372036854775808}",
        "{\"name\":\"a\",\"max_keys\":5.0}",
        "{\"name\":\"a\",\"max_keys\":1e3}",
        "{\"name\":\"a\",\"max_keys\":\"5\"}",
        "{\"name\":\"a\",\"max_keys\":true}",
        "{\"name\":\"a\",\"max_keys\":[5]}",
        /* unknown and read-only fields */
        "{\"name\":\"a\",\"status\":\"active\"}",
        "{\"name\":\"a\",\"id\":1}",
        "{\"name\":\"a\",\"key_count\":0}",
        "{\"name\":\"a\",\"created_at\":\"2024-01-15T10:00:00Z\"}",
        "{\"name\":\"a\",\"key_type\":\"production\"}",
        "{\"name\":\"a\",\"externalId\":\"x\"}",
        "{\"name\":\"a\",\"\":1}",
        /* not an object */
        "[]",
        "\"acme\"",
        "5",
        "null",
    };
    char *big;

    (void)state;
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        expect_op(OP_ACCOUNT_CREATE, invalid[i], AK_ERR_INVALID);
    /* 256 bytes of external_id */
    {
        char *x = repeat("x", ACCOUNT_EXTERNAL_ID_MAX + 1), *b = malloc(strlen(x) + 64);
        assert_non_null(b);
        sprintf(b, "{\"name\":\"a\",\"external_id\":\"%s\"}", x);
        expect_op(OP_ACCOUNT_CREATE, b, AK_ERR_INVALID);
        free(b);
        free(x);
    }
    /* 101 code points of name */
    {
        char *n = repeat("a", KEY_NAME_MAX_CHARS + 1), *b = malloc(strlen(n) + 32);
        assert_non_null(b);
        sprintf(b, "{\"name\":\"%s\"}", n);
        expect_op(OP_ACCOUNT_CREATE, b, AK_ERR_INVALID);
        free(b);
        free(n);
    }
    /* not JSON, duplicates, a huge integer */
    expect_op(OP_ACCOUNT_CREATE, "{\"name\":\"a\"", AK_ERR_JSON);
    expect_op(OP_ACCOUNT_CREATE, "{\"name\":\"a\",\"name\":\"b\"}", AK_ERR_JSON);
    expect_op(OP_ACCOUNT_CREATE, "{\"name\":\"a\",\"max_keys\":99999999999999999999999}",
              AK_ERR_INVALID); /* valid JSON, out of range: 422 */
    expect_op(OP_ACCOUNT_CREATE, "{\"name\":\"a\",} ", AK_ERR_JSON);
    {
        union op_req r;
        assert_int_equal(op_n(OP_ACCOUNT_CREATE, "", 0, &r), AK_ERR_JSON);
        assert_int_equal(op_n(OP_ACCOUNT_CREATE, NULL, 0, &r), AK_ERR_JSON);
        /* only `len` bytes count */
        assert_int_equal(op_n(OP_ACCOUNT_CREATE, "{\"name\":\"a\"}garbage", 12, &r), 0);
    }
    /* over 64 KiB, however valid */
    big = malloc(VALIDATE_BODY_MAX + 64);
    assert_non_null(big);
    memset(big, ' ', VALIDATE_BODY_MAX + 64);
    memcpy(big, "{\"name\":\"a\"}", 12);
    {
        union op_req r;
        assert_int_equal(op_n(OP_ACCOUNT_CREATE, big, VALIDATE_BODY_MAX + 1, &r), AK_ERR_INVALID);
        assert_int_equal(op_n(OP_ACCOUNT_CREATE, big, VALIDATE_BODY_MAX, &r), 0);
    }
    free(big);
}

static void test_account_patch_valid(void **state)
{
    union op_req r;

    (void)state;
    assert_int_equal(op(OP_ACCOUNT_PATCH, "{\"name\":\"renamed\"}", &r), 0);
    assert_true(r.patch.has_name);
    assert_false(r.patch.has_status);
    assert_false(r.patch.has_max_keys);
    assert_string_equal(r.patch.name, "renamed");
    assert_int_equal(op(OP_ACCOUNT_PATCH, "{\"status\":\"suspended\"}", &r), 0);
    assert_true(r.patch.has_status);
    assert_true(r.patch.suspended);
    assert_false(r.patch.has_name);
    assert_int_equal(op(OP_ACCOUNT_PATCH, "{\"status\":\"active\"}", &r), 0);
    assert_true(r.patch.has_status);
    assert_false(r.patch.suspended);
    assert_int_equal(op(OP_ACCOUNT_PATCH, "{\"max_keys\":null}", &r), 0);
    assert_true(r.patch.has_max_keys);
    assert_int_equal(r.patch.max_keys, 0);
    assert_int_equal(op(OP_ACCOUNT_PATCH, "{\"max_keys\":7,\"status\":\"suspended\",\"name\":\"x\"}", &r), 0);
    assert_true(r.patch.has_max_keys && r.patch.has_status && r.patch.has_name);
    assert_int_equal(r.patch.max_keys, 7);
    assert_int_equal(op(OP_ACCOUNT_PATCH, "{\"max_keys\":1000000}", &r), 0);
    assert_int_equal(r.patch.max_keys, 1000000);
}

static void test_account_patch_refused(void **state)
{
    static const char *const invalid[] = {
        "{}",
        " { } ",
        /* status: exactly "active" or "suspended" */
        "{\"status\":\"Active\"}",
        "{\"status\":\"SUSPENDED\"}",
        "{\"status\":\"suspend\"}",
        "{\"status\":\"suspended \"}",
        "{\"status\":\"deleted\"}",
        "{\"status\":\"\"}",
        "{\"status\":\"active\\u0000\"}",
        "{\"status\":\"suspended\\u0000x\"}",
        "{\"status\":null}",
        "{\"status\":true}",
        "{\"status\":1}",
        "{\"status\":[\"active\"]}",
        /* name: a key name */
        "{\"name\":\"\"}",
        "{\"name\":\" \"}",
        "{\"name\":null}",
        "{\"name\":\"a\\u001fb\"}",
        /* max_keys */
        "{\"max_keys\":0}",
        "{\"max_keys\":-3}",
        "{\"max_keys\":1000001}",
        "{\"max_keys\":2.5}",
        "{\"max_keys\":\"7\"}",
        "{\"max_keys\":false}",
        /* unknown and read-only fields, external_id included */
        "{\"external_id\":\"x\"}",
        "{\"external_id\":null}",
        "{\"name\":\"a\",\"external_id\":\"x\"}",
        "{\"id\":1}",
        "{\"key_count\":3}",
        "{\"created_at\":\"2024-01-15T10:00:00Z\"}",
        "{\"is_active\":false}",
        "{\"suspended\":true}",
        "{\"status\":\"active\",\"foo\":1}",
        /* not an object */
        "[]",
        "[{\"name\":\"a\"}]",
        "\"active\"",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        expect_op(OP_ACCOUNT_PATCH, invalid[i], AK_ERR_INVALID);
    expect_op(OP_ACCOUNT_PATCH, "{\"status\":\"active\",\"status\":\"suspended\"}", AK_ERR_JSON);
    expect_op(OP_ACCOUNT_PATCH, "{\"status\":", AK_ERR_JSON);
    expect_op(OP_ACCOUNT_PATCH, "{\"max_keys\":123456789012345678901234567890}",
              AK_ERR_INVALID); /* valid JSON, out of range: 422 */
}

static void test_issue_valid(void **state)
{
    union op_req r;

    (void)state;
    assert_int_equal(op(OP_ISSUE, "{\"name\":\"recovery\",\"key_type\":\"production\"}", &r), 0);
    assert_string_equal(r.issue.key.name, "recovery");
    assert_int_equal(r.issue.key.type, KEY_TYPE_PRODUCTION);
    assert_false(r.issue.make_primary);
    assert_int_equal(op(OP_ISSUE, "{\"make_primary\":true,\"name\":\"recovery\",\"key_type\":\"production\"}", &r), 0);
    assert_true(r.issue.make_primary);
    assert_int_equal(op(OP_ISSUE, "{\"name\":\"s\",\"key_type\":\"sandbox\",\"make_primary\":false}", &r), 0);
    assert_int_equal(r.issue.key.type, KEY_TYPE_SANDBOX);
    assert_false(r.issue.make_primary);
    assert_int_equal(op(OP_ISSUE, "{\"name\":\"p\",\"key_type\":\"production\",\"make_primary\":false}", &r), 0);
    assert_false(r.issue.make_primary);
}

static void test_issue_refused(void **state)
{
    static const char *const invalid[] = {
        "{}",
        "{\"make_primary\":true}",
        "{\"name\":\"a\"}",
        "{\"key_type\":\"production\"}",
        "{\"name\":\"a\",\"key_type\":\"admin\"}",
        "{\"name\":\"a\",\"key_type\":\"Production\"}",
        "{\"name\":\"\",\"key_type\":\"production\"}",
        "{\"name\":\"a\",\"key_type\":\"production\",\"make_primary\":1}",
        "{\"name\":\"a\",\"key_type\":\"production\",\"make_primary\":\"true\"}",
        "{\"name\":\"a\",\"key_type\":\"production\",\"make_primary\":null}",
        "{\"name\":\"a\",\"key_type\":\"production\",\"make_primary\":[true]}",
        /* only a production key may become primary, whatever the order of fields */
        "{\"name\":\"a\",\"key_type\":\"sandbox\",\"make_primary\":true}",
        "{\"make_primary\":true,\"key_type\":\"sandbox\",\"name\":\"a\"}",
        /* unknown and read-only fields */
        "{\"name\":\"a\",\"key_type\":\"production\",\"is_primary\":true}",
        "{\"name\":\"a\",\"key_type\":\"production\",\"makePrimary\":true}",
        "{\"name\":\"a\",\"key_type\":\"production\",\"account_id\":1}",
        "{\"name\":\"a\",\"key_type\":\"production\",\"is_active\":true}",
        "[]",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        expect_op(OP_ISSUE, invalid[i], AK_ERR_INVALID);
    expect_op(OP_ISSUE, "{\"name\":\"a\",\"key_type\":\"production\",\"make_primary\":true,\"make_primary\":false}", AK_ERR_JSON);
    /* make_primary belongs to the operator's body only: the account's own create refuses it */
    expect_create("{\"name\":\"a\",\"key_type\":\"production\",\"make_primary\":true}", AK_ERR_INVALID);
}

static void test_external_id_direct(void **state)
{
    char msg[VALIDATE_MSG_MAX], buf[ACCOUNT_EXTERNAL_ID_MAX + 2];

    (void)state;
    assert_int_equal(validate_external_id("a", 1, msg, sizeof(msg)), 0);
    assert_int_equal(validate_external_id("!~", 2, msg, sizeof(msg)), 0);
    memset(buf, 'z', sizeof(buf));
    assert_int_equal(validate_external_id(buf, ACCOUNT_EXTERNAL_ID_MAX, msg, sizeof(msg)), 0);
    msg[0] = '\0';
    assert_int_equal(validate_external_id(buf, ACCOUNT_EXTERNAL_ID_MAX + 1, msg, sizeof(msg)), AK_ERR_INVALID);
    assert_true(msg[0] != '\0');
    assert_int_equal(validate_external_id("", 0, msg, sizeof(msg)), AK_ERR_INVALID);
    for (int c = 0; c < 256; c++) {
        char one = (char)c;
        int want = c >= 0x21 && c <= 0x7e ? 0 : AK_ERR_INVALID;
        msg[0] = '\0';
        if (validate_external_id(&one, 1, msg, sizeof(msg)) != want)
            fail_msg("byte 0x%02x: want %d", c, want);
        if (want != 0 && msg[0] == '\0')
            fail_msg("byte 0x%02x: no message", c);
    }
    /* only `len` bytes are looked at */
    assert_int_equal(validate_external_id("ok bad", 2, msg, sizeof(msg)), 0);
}

/* expires_at: RFC 3339 or null, on create, PATCH and issue; absent means never (a fresh zero, not what the stack held). */
static void test_expires_at(void **state)
{
    struct create_req c;
    struct patch_req p;
    struct issue_req is;
    char msg[VALIDATE_MSG_MAX];

    (void)state;
    assert_int_equal(create("{\"name\":\"a\",\"key_type\":\"sandbox\"}", &c), 0);
    assert_int_equal(c.expires_at, 0);
    assert_int_equal(create("{\"name\":\"a\",\"key_type\":\"sandbox\",\"expires_at\":null}", &c), 0);
    assert_int_equal(c.expires_at, 0);
    assert_int_equal(create("{\"name\":\"a\",\"key_type\":\"sandbox\",\"expires_at\":\"2030-01-15T10:00:00Z\"}", &c), 0);
    assert_int_equal(c.expires_at, 1894701600);
    assert_int_equal(create("{\"name\":\"a\",\"key_type\":\"sandbox\",\"expires_at\":\"2030-01-15T12:00:00+02:00\"}", &c), 0);
    assert_int_equal(c.expires_at, 1894701600);
    assert_int_equal(create("{\"name\":\"a\",\"key_type\":\"sandbox\",\"expires_at\":1894701600}", &c), AK_ERR_INVALID);
    assert_int_equal(create("{\"name\":\"a\",\"key_type\":\"sandbox\",\"expires_at\":\"tomorrow\"}", &c), AK_ERR_INVALID);
    assert_int_equal(create("{\"name\":\"a\",\"key_type\":\"sandbox\",\"expires_at\":\"2030-01-15\"}", &c), AK_ERR_INVALID);
    assert_int_equal(create("{\"name\":\"a\",\"key_type\":\"sandbox\",\"expires_at\":true}", &c), AK_ERR_INVALID);
    /* PATCH: alone is a change; null clears. */
    assert_int_equal(patch("{\"expires_at\":null}", &p), 0);
    assert_true(p.has_expires_at && p.expires_at == 0 && !p.has_name && !p.has_active && !p.has_primary);
    assert_int_equal(patch("{\"expires_at\":\"2030-01-15T10:00:00Z\"}", &p), 0);
    assert_true(p.has_expires_at && p.expires_at == 1894701600);
    assert_int_equal(patch("{\"name\":\"x\"}", &p), 0);
    assert_false(p.has_expires_at);
    assert_int_equal(patch("{\"expires_at\":\"\"}", &p), AK_ERR_INVALID);
    {
        const char *body = "{\"name\":\"a\",\"key_type\":\"production\",\"expires_at\":\"2030-01-15T10:00:00Z\"}";
        assert_int_equal(validate_issue(body, strlen(body), &is, msg, sizeof(msg)), 0);
    }
    assert_int_equal(is.key.expires_at, 1894701600);
}

/* The range, against the caller's clock: the future, up to ten years. */
static void test_expiry_range(void **state)
{
    char msg[VALIDATE_MSG_MAX];
    const int64_t now = 1700000000;

    (void)state;
    assert_int_equal(validate_expiry(now + 1, now, msg, sizeof(msg)), 0);
    assert_int_equal(validate_expiry(now + VALIDATE_EXPIRY_MAX_S, now, msg, sizeof(msg)), 0);
    assert_int_equal(validate_expiry(now, now, msg, sizeof(msg)), AK_ERR_INVALID);
    assert_non_null(strstr(msg, "future"));
    assert_int_equal(validate_expiry(now - 1, now, msg, sizeof(msg)), AK_ERR_INVALID);
    assert_int_equal(validate_expiry(now + VALIDATE_EXPIRY_MAX_S + 1, now, msg, sizeof(msg)), AK_ERR_INVALID);
    assert_non_null(strstr(msg, "10 years"));
}

/* A rotation's body: none, {}, or a grace in 0..30 days. */
static void test_rotate_body(void **state)
{
    static const char *const bad[] = {
        "{\"grace_period_seconds\":-1}",
        "{\"grace_period_seconds\":2592001}",
        "{\"grace_period_seconds\":1.5}",
        "{\"grace_period_seconds\":\"60\"}",
        "{\"grace_period_seconds\":null}",
        "{\"grace\":60}",
        "{\"grace_period_seconds\":1e400}",
        "[]",
        "{\"grace_period_seconds\":99999999999999999999}",
    };
    char msg[VALIDATE_MSG_MAX];
    int64_t g;

    (void)state;
    assert_int_equal(validate_rotate(NULL, 0, &g, msg, sizeof(msg)), 0);
    assert_int_equal(g, VALIDATE_GRACE_DEFAULT_S);
    assert_int_equal(validate_rotate("{}", 2, &g, msg, sizeof(msg)), 0);
    assert_int_equal(g, 86400);
    assert_int_equal(validate_rotate("{\"grace_period_seconds\":0}", 26, &g, msg, sizeof(msg)), 0);
    assert_int_equal(g, 0);
    assert_int_equal(validate_rotate("{\"grace_period_seconds\":2592000}", 32, &g, msg, sizeof(msg)), 0);
    assert_int_equal(g, 2592000);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_not_equal(validate_rotate(bad[i], strlen(bad[i]), &g, msg, sizeof(msg)), 0);
    assert_int_equal(validate_rotate("{", 1, &g, msg, sizeof(msg)), AK_ERR_JSON);
}

/* ------------------------------------------ scopes and allowed_ips (issue 12) */

/* The message of a refused create / patch body (which must be refused with `want`). */
static void refused_msg(bool is_patch, const char *body, int want, char *msg, size_t msglen)
{
    struct create_req *c = malloc(sizeof(*c));
    struct patch_req *p = malloc(sizeof(*p));
    int r;

    assert_non_null(c);
    assert_non_null(p);
    memset(msg, 0, msglen);
    r = is_patch ? validate_patch(body, strlen(body), p, msg, msglen) : validate_create(body, strlen(body), c, msg, msglen);
    if (r != want)
        fail_msg("%s body %.120s: got %d, want %d", is_patch ? "patch" : "create", body, r, want);
    free(c);
    free(p);
}

/* A create body of name, key_type and `members` (",\"scopes\":..." or ""). */
static int create_with(const char *members, struct create_req *ret)
{
    size_t n = strlen(members) + 64;
    char *b = malloc(n);
    int r;

    assert_non_null(b);
    snprintf(b, n, "{\"name\":\"k\",\"key_type\":\"sandbox\"%s}", members);
    r = create(b, ret);
    free(b);
    return r;
}

/* `n` JSON strings `pre` + the index (`width` digits at least) + `post`, comma-separated, in a malloc'd array literal. */
static char *json_list(const char *pre, int width, const char *post, int n)
{
    size_t cap = (size_t)n * 96 + 8, o = 0;
    char *b = malloc(cap);

    assert_non_null(b);
    b[o++] = '[';
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(b + o, cap - o, "%s\"%s%0*d%s\"", i != 0 ? "," : "", pre, width, i, post);
    b[o++] = ']';
    b[o] = '\0';
    return b;
}

static void test_create_policy_valid(void **state)
{
    struct create_req req;
    char *list, members[8192];

    (void)state;
    /* Absent: nothing set. */
    assert_int_equal(create_with("", &req), 0);
    assert_false(req.policy.set_scopes);
    assert_false(req.policy.has_scopes);
    assert_false(req.policy.set_ips);
    assert_false(req.policy.has_ips);
    /* Null: sent, unrestricted. */
    assert_int_equal(create_with(",\"scopes\":null,\"allowed_ips\":null", &req), 0);
    assert_true(req.policy.set_scopes);
    assert_false(req.policy.has_scopes);
    assert_true(req.policy.set_ips);
    assert_false(req.policy.has_ips);
    /* Arrays: canonical text (scopes sorted without repeats; blocks canonical, in order, without repeats). */
    assert_int_equal(create_with(",\"scopes\":[\"posts:*\",\"billing:read\",\"keys:read\",\"billing:read\"],"
                                 "\"allowed_ips\":[\"10.1.2.3/8\",\"::1\",\"127.0.0.1\",\"10.0.0.0/8\"]",
                                 &req),
                     0);
    assert_true(req.policy.set_scopes);
    assert_true(req.policy.has_scopes);
    assert_string_equal(req.policy.scopes, "billing:read keys:read posts:*");
    assert_true(req.policy.set_ips);
    assert_true(req.policy.has_ips);
    assert_string_equal(req.policy.allowed_ips, "10.0.0.0/8,::1/128,127.0.0.1/32");
    assert_string_equal(req.name, "k");
    /* One field without the other. */
    assert_int_equal(create_with(",\"allowed_ips\":[\"2001:DB8::1/32\"]", &req), 0);
    assert_false(req.policy.set_scopes);
    assert_true(req.policy.has_ips);
    assert_string_equal(req.policy.allowed_ips, "2001:db8::/32");
    /* Fields in any order, before the name. */
    assert_int_equal(create("{\"scopes\":[\"a\"],\"name\":\"k\",\"allowed_ips\":[\"::/0\"],\"key_type\":\"production\"}", &req), 0);
    assert_string_equal(req.policy.scopes, "a");
    assert_string_equal(req.policy.allowed_ips, "::/0");
    assert_int_equal(req.type, KEY_TYPE_PRODUCTION);
    /* The most: 50 scopes (of the longest names), 32 blocks. */
    list = json_list("", 2, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:*", 50);
    snprintf(members, sizeof(members), ",\"scopes\":%s", list);
    free(list);
    assert_int_equal(create_with(members, &req), 0);
    assert_int_equal(strlen(req.policy.scopes), 50 * SCOPE_NAME_MAX + 49);
    list = json_list("10.0.", 1, ".0/24", 32);
    snprintf(members, sizeof(members), ",\"allowed_ips\":%s", list);
    free(list);
    assert_int_equal(create_with(members, &req), 0);
    assert_true(strncmp(req.policy.allowed_ips, "10.0.0.0/24,10.0.1.0/24,", 24) == 0);
    assert_non_null(strstr(req.policy.allowed_ips, ",10.0.31.0/24"));
}

/* rate_limit (issue 13): null or {"limit", "window_seconds"} in range, nothing else. */
static void test_rate_limit(void **state)
{
    static const char *const bad[] = {
        "{\"limit\":0,\"window_seconds\":60}",
        "{\"limit\":-1,\"window_seconds\":60}",
        "{\"limit\":1000000001,\"window_seconds\":60}",
        "{\"limit\":10,\"window_seconds\":0}",
        "{\"limit\":10,\"window_seconds\":86401}",
        "{\"limit\":1.5,\"window_seconds\":60}",
        "{\"limit\":10,\"window_seconds\":60.0}",
        "{\"limit\":\"10\",\"window_seconds\":60}",
        "{\"limit\":true,\"window_seconds\":60}",
        "{\"limit\":null,\"window_seconds\":60}",
        "{\"limit\":10}",
        "{\"window_seconds\":60}",
        "{}",
        "{\"limit\":10,\"window_seconds\":60,\"burst\":1}",
        "{\"limit\":10,\"window\":60}",
        "[10,60]",
        "10",
        "\"10/60\"",
        "true",
        "{\"limit\":99999999999999999999,\"window_seconds\":60}",
    };
    struct create_req c;
    struct patch_req p;
    char body[256], msg[VALIDATE_MSG_MAX];

    (void)state;
    assert_int_equal(create_with(",\"rate_limit\":{\"limit\":1000,\"window_seconds\":60}", &c), 0);
    assert_true(c.policy.set_rate && c.policy.has_rate);
    assert_int_equal(c.policy.rate_limit, 1000);
    assert_int_equal(c.policy.rate_window, 60);
    assert_int_equal(create_with(",\"rate_limit\":{\"window_seconds\":86400,\"limit\":1000000000}", &c), 0);
    assert_int_equal(c.policy.rate_limit, 1000000000);
    assert_int_equal(c.policy.rate_window, 86400);
    assert_int_equal(create_with(",\"rate_limit\":{\"limit\":1,\"window_seconds\":1}", &c), 0);
    assert_int_equal(create_with(",\"rate_limit\":null", &c), 0);
    assert_true(c.policy.set_rate && !c.policy.has_rate);
    assert_int_equal(create_with("", &c), 0);
    assert_false(c.policy.set_rate);
    /* PATCH with rate_limit alone is a change. */
    assert_int_equal(validate_patch("{\"rate_limit\":null}", strlen("{\"rate_limit\":null}"), &p, msg, sizeof(msg)), 0);
    assert_true(p.policy.set_rate && !p.policy.has_rate);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(body, sizeof(body), "{\"name\":\"k\",\"key_type\":\"sandbox\",\"rate_limit\":%s}", bad[i]);
        refused_msg(false, body, AK_ERR_INVALID, msg, sizeof(msg));
        /* A number past 64 bits is refused by the parser's range check, which names no field. */
        assert_non_null(strstr(msg, strstr(bad[i], "99999999999999999999") != NULL ? "out of range" : "rate_limit"));
        snprintf(body, sizeof(body), "{\"rate_limit\":%s}", bad[i]);
        refused_msg(true, body, AK_ERR_INVALID, msg, sizeof(msg));
    }
    refused_msg(true, "{\"rate_limit\":null,\"rate_limit\":null}", AK_ERR_JSON, msg, sizeof(msg));
}

static void test_create_policy_refused(void **state)
{
    static const struct {
        const char *members, *in_msg;
    } bad[] = {
        {",\"scopes\":\"keys:read\"", "scopes must be null or an array of strings"},
        {",\"scopes\":5", "scopes must be null or an array of strings"},
        {",\"scopes\":true", "scopes must be null or an array of strings"},
        {",\"scopes\":{}", "scopes must be null or an array of strings"},
        {",\"scopes\":[1]", "scopes must be null or an array of strings"},
        {",\"scopes\":[\"a\",null]", "scopes must be null or an array of strings"},
        {",\"scopes\":[[\"a\"]]", "scopes must be null or an array of strings"},
        {",\"scopes\":[]", "1 to 50"},
        {",\"scopes\":[\"A\"]", "scope 1"},
        {",\"scopes\":[\"a\",\"b c\"]", "scope 2"},
        {",\"scopes\":[\"\"]", "scope 1"},
        {",\"scopes\":[\"*\"]", "scope 1"},
        {",\"scopes\":[\"a*\"]", "scope 1"},
        {",\"scopes\":[\"a:**\"]", "scope 1"},
        {",\"scopes\":[\"a:*:b\"]", "scope 1"},
        {",\"scopes\":[\"a\\u0000b\"]", "scope 1"},
        {",\"scopes\":[\"caf\\u00e9\"]", "scope 1"},
        {",\"scopes\":[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]", "scope 1"}, /* 65 */
        {",\"allowed_ips\":\"10.0.0.0/8\"", "allowed_ips must be null or an array of strings"},
        {",\"allowed_ips\":{}", "allowed_ips must be null or an array of strings"},
        {",\"allowed_ips\":[10]", "allowed_ips must be null or an array of strings"},
        {",\"allowed_ips\":[]", "1 to 32"},
        {",\"allowed_ips\":[\"garbage\"]", "item 1"},
        {",\"allowed_ips\":[\"::1\",\"10.0.0.0/33\"]", "item 2"},
        {",\"allowed_ips\":[\"::/129\"]", "item 1"},
        {",\"allowed_ips\":[\"10.0.0.1\\u0000\"]", "item 1"},
        {",\"allowed_ips\":[\" 10.0.0.1\"]", "item 1"},
        {",\"allowed_ips\":[\"10.0.0.0/8,::1\"]", "item 1"},
    };
    char members[4096], body[4200], msg[VALIDATE_MSG_MAX];
    struct create_req req;
    char *list;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(body, sizeof(body), "{\"name\":\"k\",\"key_type\":\"sandbox\"%s}", bad[i].members);
        expect_create(body, AK_ERR_INVALID);
        refused_msg(false, body, AK_ERR_INVALID, msg, sizeof(msg));
        if (strstr(msg, bad[i].in_msg) == NULL)
            fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].members, msg, bad[i].in_msg);
    }
    /* 51 scopes, 33 blocks: refused, however valid each one is. */
    list = json_list("s", 1, "", 51);
    snprintf(members, sizeof(members), ",\"scopes\":%s", list);
    free(list);
    assert_int_equal(create_with(members, &req), AK_ERR_INVALID);
    list = json_list("10.0.", 1, ".0/24", 33);
    snprintf(members, sizeof(members), ",\"allowed_ips\":%s", list);
    free(list);
    assert_int_equal(create_with(members, &req), AK_ERR_INVALID);
    snprintf(body, sizeof(body), "{\"name\":\"k\",\"key_type\":\"sandbox\"%s}", members);
    refused_msg(false, body, AK_ERR_INVALID, msg, sizeof(msg));
    assert_non_null(strstr(msg, "1 to 32"));
    /* Given twice: not acceptable JSON, as any repeated member. */
    expect_create("{\"name\":\"k\",\"key_type\":\"sandbox\",\"scopes\":[\"a\"],\"scopes\":null}", AK_ERR_JSON);
    expect_create("{\"name\":\"k\",\"key_type\":\"sandbox\",\"allowed_ips\":null,\"allowed_ips\":null}", AK_ERR_JSON);
    /* A good policy does not excuse a missing name. */
    expect_create("{\"key_type\":\"sandbox\",\"scopes\":[\"a\"]}", AK_ERR_INVALID);
}

static void test_unknown_field_names_policy_fields(void **state)
{
    char msg[VALIDATE_MSG_MAX];

    (void)state;
    refused_msg(false, "{\"name\":\"k\",\"key_type\":\"sandbox\",\"scope\":[\"a\"]}", AK_ERR_INVALID, msg, sizeof(msg));
    assert_non_null(strstr(msg, "\"scope\""));
    assert_non_null(strstr(msg, "name, key_type, expires_at, scopes, allowed_ips"));
    refused_msg(true, "{\"allowedIps\":null}", AK_ERR_INVALID, msg, sizeof(msg));
    assert_non_null(strstr(msg, "\"allowedIps\""));
    assert_non_null(strstr(msg, "name, is_active, is_primary, expires_at, scopes, allowed_ips"));
    /* An empty PATCH names every field it could have set. */
    refused_msg(true, "{}", AK_ERR_INVALID, msg, sizeof(msg));
    assert_non_null(strstr(msg, "scopes, allowed_ips"));
    {
        union op_req r;
        char m[VALIDATE_MSG_MAX] = "";
        const char *body = "{\"name\":\"k\",\"key_type\":\"sandbox\",\"x\":1}";
        assert_int_equal(validate_issue(body, strlen(body), &r.issue, m, sizeof(m)), AK_ERR_INVALID);
        assert_non_null(strstr(m, "scopes, allowed_ips, rate_limit, remaining, refill, make_primary"));
    }
}

static void test_patch_policy(void **state)
{
    struct patch_req req;
    char msg[VALIDATE_MSG_MAX];

    (void)state;
    /* Only scopes: accepted. */
    assert_int_equal(patch("{\"scopes\":[\"posts:write\",\"posts:read\"]}", &req), 0);
    assert_false(req.has_name);
    assert_false(req.has_active);
    assert_false(req.has_primary);
    assert_false(req.has_expires_at);
    assert_true(req.policy.set_scopes);
    assert_true(req.policy.has_scopes);
    assert_string_equal(req.policy.scopes, "posts:read posts:write");
    assert_false(req.policy.set_ips);
    /* Only scopes, null: accepted too (un-restricting is the rules' business, not the body's). */
    assert_int_equal(patch("{\"scopes\":null}", &req), 0);
    assert_true(req.policy.set_scopes);
    assert_false(req.policy.has_scopes);
    /* Only allowed_ips. */
    assert_int_equal(patch("{\"allowed_ips\":[\"192.168.1.77/24\"]}", &req), 0);
    assert_false(req.policy.set_scopes);
    assert_true(req.policy.set_ips);
    assert_true(req.policy.has_ips);
    assert_string_equal(req.policy.allowed_ips, "192.168.1.0/24");
    assert_int_equal(patch("{\"allowed_ips\":null}", &req), 0);
    assert_true(req.policy.set_ips);
    assert_false(req.policy.has_ips);
    /* With the other fields. */
    assert_int_equal(patch("{\"name\":\"n\",\"scopes\":[\"a\"],\"is_active\":false,\"allowed_ips\":[\"::1\"]}", &req), 0);
    assert_true(req.has_name);
    assert_true(req.has_active);
    assert_string_equal(req.policy.scopes, "a");
    assert_string_equal(req.policy.allowed_ips, "::1/128");
    /* Refusals as on create. */
    expect_patch("{\"scopes\":[]}", AK_ERR_INVALID);
    expect_patch("{\"scopes\":\"a\"}", AK_ERR_INVALID);
    expect_patch("{\"scopes\":[\"Bad\"]}", AK_ERR_INVALID);
    expect_patch("{\"allowed_ips\":[]}", AK_ERR_INVALID);
    expect_patch("{\"allowed_ips\":[\"10.0.0.0/40\"]}", AK_ERR_INVALID);
    expect_patch("{\"allowed_ips\":[\"10.0.0.1\"],\"name\":\"\"}", AK_ERR_INVALID);
    expect_patch("{\"scopes\":null,\"scopes\":null}", AK_ERR_JSON);
    refused_msg(true, "{\"allowed_ips\":[\"nope\"]}", AK_ERR_INVALID, msg, sizeof(msg));
    assert_non_null(strstr(msg, "allowed_ips item 1"));
}

/* The operator's issue: a primary key stays unrestricted in scopes. */
static void test_issue_policy(void **state)
{
    union op_req r;

    (void)state;
    expect_op(OP_ISSUE, "{\"name\":\"p\",\"key_type\":\"production\",\"make_primary\":true,\"scopes\":[\"a\"]}", AK_ERR_INVALID);
    expect_op(OP_ISSUE, "{\"scopes\":[\"a\"],\"make_primary\":true,\"name\":\"p\",\"key_type\":\"production\"}", AK_ERR_INVALID);
    assert_int_equal(op(OP_ISSUE, "{\"name\":\"p\",\"key_type\":\"production\",\"make_primary\":true,\"scopes\":null}", &r), 0);
    assert_true(r.issue.make_primary);
    assert_true(r.issue.key.policy.set_scopes);
    assert_false(r.issue.key.policy.has_scopes);
    assert_int_equal(op(OP_ISSUE, "{\"name\":\"p\",\"key_type\":\"production\",\"scopes\":[\"b\",\"a\"]}", &r), 0);
    assert_false(r.issue.make_primary);
    assert_string_equal(r.issue.key.policy.scopes, "a b");
    assert_int_equal(op(OP_ISSUE, "{\"name\":\"p\",\"key_type\":\"production\",\"allowed_ips\":[\"10.0.0.1\"]}", &r), 0);
    assert_string_equal(r.issue.key.policy.allowed_ips, "10.0.0.1/32");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_valid),
        cmocka_unit_test(test_create_name_length),
        cmocka_unit_test(test_create_name_refused),
        cmocka_unit_test(test_escaped_nul_is_invalid),
        cmocka_unit_test(test_numeric_overflow_is_invalid_not_json),
        cmocka_unit_test(test_create_missing_fields),
        cmocka_unit_test(test_create_wrong_types),
        cmocka_unit_test(test_create_key_type_unknown),
        cmocka_unit_test(test_create_unknown_and_read_only_fields),
        cmocka_unit_test(test_create_array_is_invalid),
        cmocka_unit_test(test_scalar_body_is_invalid),
        cmocka_unit_test(test_create_malformed_json),
        cmocka_unit_test(test_create_empty_body),
        cmocka_unit_test(test_create_duplicate_keys),
        cmocka_unit_test(test_create_only_len_bytes),
        cmocka_unit_test(test_create_body_size),
        cmocka_unit_test(test_create_depth),
        cmocka_unit_test(test_patch_valid),
        cmocka_unit_test(test_patch_name_rules),
        cmocka_unit_test(test_patch_wrong_types),
        cmocka_unit_test(test_patch_unknown_and_read_only_fields),
        cmocka_unit_test(test_patch_empty_object_and_non_objects),
        cmocka_unit_test(test_patch_json_errors),
        cmocka_unit_test(test_patch_body_size_and_depth),
        cmocka_unit_test(test_name_direct),
        cmocka_unit_test(test_json_depth),
        cmocka_unit_test(test_json_depth_strings),
        cmocka_unit_test(test_account_create_valid),
        cmocka_unit_test(test_account_create_refused),
        cmocka_unit_test(test_account_patch_valid),
        cmocka_unit_test(test_account_patch_refused),
        cmocka_unit_test(test_issue_valid),
        cmocka_unit_test(test_issue_refused),
        cmocka_unit_test(test_external_id_direct),
        cmocka_unit_test(test_expires_at),
        cmocka_unit_test(test_expiry_range),
        cmocka_unit_test(test_rotate_body),
        cmocka_unit_test(test_create_policy_valid),
        cmocka_unit_test(test_create_policy_refused),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_unknown_field_names_policy_fields),
        cmocka_unit_test(test_patch_policy),
        cmocka_unit_test(test_issue_policy),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
