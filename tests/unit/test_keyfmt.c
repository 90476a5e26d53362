/*
 * Unit tests for core/keyfmt: key generation (both types, brands "ml" and
 * "acme"), parsing (the checksum catches every single-character change;
 * brand, type tag, length and alphabet are enforced), the base62 checksum
 * encoding against known values and zlib's CRC32, key_type names and brand
 * checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/error.h"
#include "core/keyfmt.h"

static const char ALPHABET[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int in_alphabet(char c)
{
    return c != '\0' && strchr(ALPHABET, c) != NULL;
}

/* Rewrites the last KEYFMT_CHECKSUM_LEN characters of `key` so that its checksum is right again. */
static void fix_checksum(char *key, size_t len)
{
    size_t body = len - KEYFMT_CHECKSUM_LEN;
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)key, (uInt)body);

    keyfmt_checksum_encode(crc, key + body);
}

static void generate(const char *brand, enum key_type type, char *buf)
{
    assert_int_equal(keyfmt_generate(brand, type, buf, KEYFMT_MAX_LEN + 1), 0);
}

static void check_generated(const char *brand, enum key_type type)
{
    const char *tag = type == KEY_TYPE_SANDBOX ? "_sand_" : "_prod_";
    size_t blen = strlen(brand), len = keyfmt_key_len(brand, KEY_TYPE_PRODUCTION);

    for (int n = 0; n < 200; n++) {
        char key[KEYFMT_MAX_LEN + 1];
        char sum[KEYFMT_CHECKSUM_LEN];
        enum key_type parsed = type == KEY_TYPE_SANDBOX ? KEY_TYPE_PRODUCTION : KEY_TYPE_SANDBOX;
        uint32_t crc;

        memset(key, 'X', sizeof(key));
        generate(brand, type, key);
        assert_int_equal(strlen(key), len);
        assert_memory_equal(key, brand, blen);
        assert_memory_equal(key + blen, tag, 6);
        for (size_t i = blen + 6; i < len; i++)
            assert_true(in_alphabet(key[i]));
        crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)key, (uInt)(len - KEYFMT_CHECKSUM_LEN));
        keyfmt_checksum_encode(crc, sum);
        assert_memory_equal(key + len - KEYFMT_CHECKSUM_LEN, sum, KEYFMT_CHECKSUM_LEN);
        assert_int_equal(keyfmt_parse(brand, key, len, &parsed), 0);
        assert_int_equal(parsed, type);
    }
}

static void test_key_len(void **state)
{
    (void)state;
    assert_int_equal(keyfmt_key_len("ml", KEY_TYPE_PRODUCTION), 46);
    assert_int_equal(keyfmt_key_len("acme", KEY_TYPE_PRODUCTION), 48);
    assert_int_equal(keyfmt_key_len("abcdefghijklmnop", KEY_TYPE_PRODUCTION), KEYFMT_MAX_LEN - 1);
    assert_int_equal(keyfmt_key_len("abcdefghijklmnop", KEY_TYPE_ADMIN), KEYFMT_MAX_LEN);
}

static void test_generate_ml_production(void **state)
{
    (void)state;
    check_generated("ml", KEY_TYPE_PRODUCTION);
}

static void test_generate_ml_sandbox(void **state)
{
    (void)state;
    check_generated("ml", KEY_TYPE_SANDBOX);
}

static void test_generate_acme_production(void **state)
{
    (void)state;
    check_generated("acme", KEY_TYPE_PRODUCTION);
}

static void test_generate_acme_sandbox(void **state)
{
    (void)state;
    check_generated("acme", KEY_TYPE_SANDBOX);
}

static void test_generate_longest_brand_fits(void **state)
{
    const char *brand = "abcdefghijklmnop"; /* KEYFMT_BRAND_MAX characters */
    char key[KEYFMT_MAX_LEN + 1];
    enum key_type type;

    (void)state;
    assert_int_equal(strlen(brand), KEYFMT_BRAND_MAX);
    generate(brand, KEY_TYPE_SANDBOX, key);
    assert_int_equal(strlen(key), KEYFMT_MAX_LEN - 1);
    assert_int_equal(keyfmt_parse(brand, key, KEYFMT_MAX_LEN - 1, &type), 0);
    assert_int_equal(type, KEY_TYPE_SANDBOX);
    /* an admin token's kind is one character longer: the longest of all */
    generate(brand, KEY_TYPE_ADMIN, key);
    assert_int_equal(strlen(key), KEYFMT_MAX_LEN);
    assert_int_equal(keyfmt_parse(brand, key, KEYFMT_MAX_LEN, &type), 0);
    assert_int_equal(type, KEY_TYPE_ADMIN);
}

/* Admin tokens: their own kind, never taken for a key, and a key never for a token. */
static void test_admin_token_kind(void **state)
{
    char key[KEYFMT_MAX_LEN + 1], bad[KEYFMT_MAX_LEN + 1];
    enum key_type type;

    (void)state;
    generate("ml", KEY_TYPE_ADMIN, key);
    assert_int_equal(strlen(key), 47);
    assert_int_equal(keyfmt_key_len("ml", KEY_TYPE_ADMIN), 47);
    assert_int_equal(keyfmt_prefix_len(KEY_TYPE_ADMIN), 13);
    assert_int_equal(keyfmt_prefix_len(KEY_TYPE_PRODUCTION), 12);
    assert_memory_equal(key, "ml_admin_", 9);
    assert_string_equal(key_type_name(KEY_TYPE_ADMIN), "admin");
    assert_int_equal(keyfmt_parse("ml", key, strlen(key), &type), 0);
    assert_int_equal(type, KEY_TYPE_ADMIN);
    /* the same body under a key's kind fails the checksum (the kind is inside the CRC) */
    snprintf(bad, sizeof(bad), "ml_prod_%s", key + 9);
    assert_int_equal(keyfmt_parse("ml", bad, strlen(bad), &type), AK_ERR_KEY_FORMAT);
    /* "_admin" without its underscore, or cut short, is not a token */
    snprintf(bad, sizeof(bad), "ml_admin%s", key + 9);
    assert_int_equal(keyfmt_parse("ml", bad, strlen(bad), &type), AK_ERR_KEY_FORMAT);
    assert_int_equal(keyfmt_parse("ml", key, strlen(key) - 1, &type), AK_ERR_KEY_FORMAT);
}

static void test_generate_refuses_bad_arguments(void **state)
{
    char key[KEYFMT_MAX_LEN + 1];

    (void)state;
    assert_int_equal(keyfmt_generate("", KEY_TYPE_PRODUCTION, key, sizeof(key)), AK_ERR_ARG);
    assert_int_equal(keyfmt_generate(NULL, KEY_TYPE_PRODUCTION, key, sizeof(key)), AK_ERR_ARG);
    assert_int_equal(keyfmt_generate("ML", KEY_TYPE_PRODUCTION, key, sizeof(key)), AK_ERR_ARG);
    assert_int_equal(keyfmt_generate("abcdefghijklmnopq", KEY_TYPE_PRODUCTION, key, sizeof(key)), AK_ERR_ARG);
    /* The buffer must hold the longest key of any brand and its NUL. */
    assert_int_equal(keyfmt_generate("ml", KEY_TYPE_PRODUCTION, key, KEYFMT_MAX_LEN), AK_ERR_ARG);
    assert_int_equal(keyfmt_generate("ml", KEY_TYPE_PRODUCTION, key, 0), AK_ERR_ARG);
}

static void test_generate_uses_whole_alphabet(void **state)
{
    bool seen[256] = {false};
    char key[KEYFMT_MAX_LEN + 1];

    (void)state;
    /* 32000 random characters: every one of the 62 appears unless the alphabet is cut short. */
    for (int n = 0; n < 1000; n++) {
        generate("ml", KEY_TYPE_PRODUCTION, key);
        for (size_t i = 8; i < 8 + KEYFMT_RANDOM_LEN; i++)
            seen[(unsigned char)key[i]] = true;
    }
    for (const char *c = ALPHABET; *c != '\0'; c++)
        assert_true(seen[(unsigned char)*c]);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_generate_unique(void **state)
{
    enum { N = 1000 };
    char(*keys)[KEYFMT_MAX_LEN + 1] = calloc(N, sizeof(*keys));
    char(*randoms)[KEYFMT_RANDOM_LEN + 1] = calloc(N, sizeof(*randoms));

    (void)state;
    assert_non_null(keys);
    assert_non_null(randoms);
    for (int i = 0; i < N; i++) {
        generate("ml", i % 2 ? KEY_TYPE_SANDBOX : KEY_TYPE_PRODUCTION, keys[i]);
        memcpy(randoms[i], keys[i] + 8, KEYFMT_RANDOM_LEN);
    }
    qsort(keys, N, sizeof(*keys), cmp_str);
    qsort(randoms, N, sizeof(*randoms), cmp_str);
    for (int i = 1; i < N; i++) {
        assert_string_not_equal(keys[i - 1], keys[i]);
        assert_string_not_equal(randoms[i - 1], randoms[i]);
    }
    free(keys);
    free(randoms);
}

/* Keys whose checksums were computed outside the code under test (Python zlib.crc32 + base62). */
static void test_parse_known_keys(void **state)
{
    enum key_type type = KEY_TYPE_SANDBOX;
    const char *k1 = "ml_prod_0123456789ABCDEFGHIJKLMNOPQRSTUV3vj976";
    const char *k2 = "ml_sand_abcdefghijklmnopqrstuvwxyzABCDEF4bcxoV";
    const char *k3 = "acme_prod_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ1zcZV7";

    (void)state;
    assert_int_equal(keyfmt_parse("ml", k1, strlen(k1), &type), 0);
    assert_int_equal(type, KEY_TYPE_PRODUCTION);
    assert_int_equal(keyfmt_parse("ml", k2, strlen(k2), &type), 0);
    assert_int_equal(type, KEY_TYPE_SANDBOX);
    assert_int_equal(keyfmt_parse("acme", k3, strlen(k3), &type), 0);
    assert_int_equal(type, KEY_TYPE_PRODUCTION);
}

static void test_parse_does_not_read_past_len(void **state)
{
    char buf[KEYFMT_MAX_LEN + 8];
    enum key_type type;
    size_t len = keyfmt_key_len("ml", KEY_TYPE_PRODUCTION);

    (void)state;
    generate("ml", KEY_TYPE_PRODUCTION, buf);
    memcpy(buf + len, "garbage", 8); /* no NUL right after the key */
    assert_int_equal(keyfmt_parse("ml", buf, len, &type), 0);
    assert_int_equal(type, KEY_TYPE_PRODUCTION);
}

static void check_every_substitution(const char *brand, enum key_type type)
{
    char key[KEYFMT_MAX_LEN + 1], bad[KEYFMT_MAX_LEN + 1];
    size_t len = keyfmt_key_len(brand, KEY_TYPE_PRODUCTION);
    enum key_type t;

    generate(brand, type, key);
    assert_int_equal(keyfmt_parse(brand, key, len, &t), 0);
    for (size_t i = 0; i < len; i++) {
        for (int c = 0; c < 256; c++) {
            if ((char)c == key[i])
                continue;
            memcpy(bad, key, len + 1);
            bad[i] = (char)c;
            t = (enum key_type)99;
            if (keyfmt_parse(brand, bad, len, &t) != AK_ERR_KEY_FORMAT)
                fail_msg("substitution of byte %d at position %zu accepted in %s", c, i, key);
            assert_int_equal(t, 99); /* untouched on failure */
        }
    }
}

static void test_parse_refuses_every_substitution(void **state)
{
    (void)state;
    for (int n = 0; n < 4; n++) {
        check_every_substitution("ml", KEY_TYPE_PRODUCTION);
        check_every_substitution("ml", KEY_TYPE_SANDBOX);
        check_every_substitution("acme", KEY_TYPE_PRODUCTION);
        check_every_substitution("acme", KEY_TYPE_SANDBOX);
    }
}

static void test_parse_refuses_wrong_brand(void **state)
{
    char key[KEYFMT_MAX_LEN + 1];
    enum key_type type;

    (void)state;
    generate("ml", KEY_TYPE_PRODUCTION, key);
    assert_int_equal(keyfmt_parse("acme", key, strlen(key), &type), AK_ERR_KEY_FORMAT);
    assert_int_equal(keyfmt_parse("mx", key, strlen(key), &type), AK_ERR_KEY_FORMAT);
    assert_int_equal(keyfmt_parse("m", key, strlen(key), &type), AK_ERR_KEY_FORMAT);
    /* A well-formed key of another brand of the same length, with a correct checksum. */
    generate("mx", KEY_TYPE_PRODUCTION, key);
    assert_int_equal(keyfmt_parse("mx", key, strlen(key), &type), 0);
    assert_int_equal(keyfmt_parse("ml", key, strlen(key), &type), AK_ERR_KEY_FORMAT);
    generate("acme", KEY_TYPE_SANDBOX, key);
    assert_int_equal(keyfmt_parse("ml", key, strlen(key), &type), AK_ERR_KEY_FORMAT);
    /* Brand in upper case, checksum fixed. */
    generate("ml", KEY_TYPE_PRODUCTION, key);
    key[0] = 'M';
    key[1] = 'L';
    fix_checksum(key, strlen(key));
    assert_int_equal(keyfmt_parse("ml", key, strlen(key), &type), AK_ERR_KEY_FORMAT);
}

static void test_parse_refuses_wrong_type_tag(void **state)
{
    static const char *const tags[] = {"_test_", "_PROD_", "_Sand_", "_prd__", "-prod-", "_prod-", "_live_", "_sand.", "__prod"};
    char key[KEYFMT_MAX_LEN + 1];
    enum key_type type;

    (void)state;
    for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
        generate("ml", KEY_TYPE_PRODUCTION, key);
        memcpy(key + 2, tags[i], 6);
        fix_checksum(key, strlen(key)); /* only the tag is wrong */
        assert_int_equal(keyfmt_parse("ml", key, strlen(key), &type), AK_ERR_KEY_FORMAT);
    }
}

static void test_parse_refuses_wrong_length(void **state)
{
    char key[KEYFMT_MAX_LEN + 1], other[KEYFMT_MAX_LEN + 2];
    size_t len;
    enum key_type type;

    (void)state;
    generate("ml", KEY_TYPE_PRODUCTION, key);
    len = strlen(key);
    for (size_t n = 0; n < len; n++)
        assert_int_equal(keyfmt_parse("ml", key, n, &type), AK_ERR_KEY_FORMAT);
    /* One random character more or less, with a checksum that matches what precedes it. */
    memcpy(other, key, len - KEYFMT_CHECKSUM_LEN);
    other[len - KEYFMT_CHECKSUM_LEN] = 'a';
    fix_checksum(other, len + 1);
    other[len + 1] = '\0';
    assert_int_equal(keyfmt_parse("ml", other, len + 1, &type), AK_ERR_KEY_FORMAT);
    memcpy(other, key, len - KEYFMT_CHECKSUM_LEN - 1);
    fix_checksum(other, len - 1);
    assert_int_equal(keyfmt_parse("ml", other, len - 1, &type), AK_ERR_KEY_FORMAT);
    /* The key followed by more text. */
    memcpy(other, key, len);
    other[len] = 'x';
    assert_int_equal(keyfmt_parse("ml", other, len + 1, &type), AK_ERR_KEY_FORMAT);
    other[len] = '\0';
    assert_int_equal(keyfmt_parse("ml", other, len + 1, &type), AK_ERR_KEY_FORMAT);
}

static void test_parse_refuses_non_base62(void **state)
{
    static const char bad[] = {'-', '_', '+', '/', '=', ' ', '.', '~', '\0', '\n', (char)0x80, (char)0xc3, (char)0xff};
    char key[KEYFMT_MAX_LEN + 1];
    size_t len;
    enum key_type type;

    (void)state;
    for (size_t b = 0; b < sizeof(bad); b++) {
        for (size_t pos = 8; pos < 8 + KEYFMT_RANDOM_LEN; pos += 7) {
            generate("ml", KEY_TYPE_SANDBOX, key);
            len = strlen(key);
            key[pos] = bad[b];
            fix_checksum(key, len); /* the checksum is right: only the alphabet is wrong */
            assert_int_equal(keyfmt_parse("ml", key, len, &type), AK_ERR_KEY_FORMAT);
        }
        /* In the checksum itself. */
        generate("ml", KEY_TYPE_SANDBOX, key);
        len = strlen(key);
        key[len - 1] = bad[b];
        assert_int_equal(keyfmt_parse("ml", key, len, &type), AK_ERR_KEY_FORMAT);
    }
}

static void test_parse_refuses_empty_and_null(void **state)
{
    enum key_type type = (enum key_type)99;

    (void)state;
    assert_int_equal(keyfmt_parse("ml", NULL, 0, &type), AK_ERR_KEY_FORMAT);
    assert_int_equal(keyfmt_parse("ml", NULL, 46, &type), AK_ERR_KEY_FORMAT);
    assert_int_equal(keyfmt_parse("ml", "", 0, &type), AK_ERR_KEY_FORMAT);
    assert_int_equal(keyfmt_parse("ml", "ml_prod_", 8, &type), AK_ERR_KEY_FORMAT);
    assert_int_equal(type, 99);
}

/*
 * 62^5 - 1 = 916132831 is "0zzzzz". 0xFFFFFFFF = 4294967295
 *   = 4*62^5 + 42*62^4 + 41*62^3 + 15*62^2 + 12*62 + 3, digits 4 g f F C 3.
 * 0xd6a925a4 is the CRC32 of "ml_prod_0123456789ABCDEFGHIJKLMNOPQRSTUV" (Python zlib).
 */
static void test_checksum_encode_known_values(void **state)
{
    static const struct {
        uint32_t v;
        const char *text;
    } cases[] = {
        {0, "000000"},         {1, "000001"},         {9, "000009"},           {10, "00000A"},          {35, "00000Z"},
        {36, "00000a"},        {61, "00000z"},        {62, "000010"},          {3843, "0000zz"},        {3844, "000100"},
        {916132831, "0zzzzz"}, {916132832, "100000"}, {0xd6a925a4u, "3vj976"}, {0xFFFFFFFFu, "4gfFC3"},
    };
    char out[KEYFMT_CHECKSUM_LEN + 1];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(out, '#', sizeof(out));
        out[KEYFMT_CHECKSUM_LEN] = '\0';
        keyfmt_checksum_encode(cases[i].v, out);
        assert_string_equal(out, cases[i].text);
    }
}

static void test_checksum_encode_writes_exactly_six(void **state)
{
    char out[KEYFMT_CHECKSUM_LEN + 2];

    (void)state;
    memset(out, '#', sizeof(out));
    keyfmt_checksum_encode(12345, out);
    assert_int_equal(out[KEYFMT_CHECKSUM_LEN], '#');
    assert_int_equal(out[KEYFMT_CHECKSUM_LEN + 1], '#');
}

static void test_checksum_is_crc32_of_preceding_text(void **state)
{
    const char *body = "ml_sand_abcdefghijklmnopqrstuvwxyzABCDEF";
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)body, (uInt)strlen(body));
    char out[KEYFMT_CHECKSUM_LEN + 1] = {0};

    (void)state;
    assert_int_equal(crc, 0xfb905cc7u);
    keyfmt_checksum_encode(crc, out);
    assert_string_equal(out, "4bcxoV");
}

static void test_key_type_names(void **state)
{
    enum key_type t = (enum key_type)99;

    (void)state;
    assert_string_equal(key_type_name(KEY_TYPE_PRODUCTION), "production");
    assert_string_equal(key_type_name(KEY_TYPE_SANDBOX), "sandbox");
    for (int i = 0; i < 2; i++) {
        enum key_type want = i == 0 ? KEY_TYPE_PRODUCTION : KEY_TYPE_SANDBOX;
        const char *name = key_type_name(want);
        assert_int_equal(key_type_parse(name, strlen(name), &t), 0);
        assert_int_equal(t, want);
    }
    t = (enum key_type)99;
    assert_int_equal(key_type_parse("Production", 10, &t), AK_ERR_INVALID);
    assert_int_equal(key_type_parse("SANDBOX", 7, &t), AK_ERR_INVALID);
    assert_int_equal(key_type_parse("prod", 4, &t), AK_ERR_INVALID);
    assert_int_equal(key_type_parse("sand", 4, &t), AK_ERR_INVALID);
    assert_int_equal(key_type_parse("staging", 7, &t), AK_ERR_INVALID);
    assert_int_equal(key_type_parse("", 0, &t), AK_ERR_INVALID);
    assert_int_equal(key_type_parse("production", 9, &t), AK_ERR_INVALID);
    assert_int_equal(key_type_parse("sandbox ", 8, &t), AK_ERR_INVALID);
    assert_int_equal(key_type_parse("sandbox\0", 8, &t), AK_ERR_INVALID);
    assert_int_equal(key_type_parse("productionx", 11, &t), AK_ERR_INVALID);
    assert_int_equal(t, 99);
    /* Exactly `len` bytes are compared. */
    assert_int_equal(key_type_parse("sandboxes", 7, &t), 0);
    assert_int_equal(t, KEY_TYPE_SANDBOX);
}

static void test_brand_check(void **state)
{
    (void)state;
    assert_int_equal(keyfmt_brand_check("ml"), 0);
    assert_int_equal(keyfmt_brand_check("acme"), 0);
    assert_int_equal(keyfmt_brand_check("a"), 0);
    assert_int_equal(keyfmt_brand_check("0"), 0);
    assert_int_equal(keyfmt_brand_check("z9"), 0);
    assert_int_equal(keyfmt_brand_check("abcdefghijklmnop"), 0);
    assert_int_equal(keyfmt_brand_check(NULL), AK_ERR_ARG);
    assert_int_equal(keyfmt_brand_check(""), AK_ERR_ARG);
    assert_int_equal(keyfmt_brand_check("abcdefghijklmnopq"), AK_ERR_ARG);
    assert_int_equal(keyfmt_brand_check("ML"), AK_ERR_ARG);
    assert_int_equal(keyfmt_brand_check("mL"), AK_ERR_ARG);
    assert_int_equal(keyfmt_brand_check("m_l"), AK_ERR_ARG);
    assert_int_equal(keyfmt_brand_check("m-l"), AK_ERR_ARG);
    assert_int_equal(keyfmt_brand_check("m l"), AK_ERR_ARG);
    assert_int_equal(keyfmt_brand_check("ml_"), AK_ERR_ARG);
    assert_int_equal(keyfmt_brand_check("\xc3\xa9"), AK_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_len),
        cmocka_unit_test(test_generate_ml_production),
        cmocka_unit_test(test_generate_ml_sandbox),
        cmocka_unit_test(test_generate_acme_production),
        cmocka_unit_test(test_generate_acme_sandbox),
        cmocka_unit_test(test_generate_longest_brand_fits),
        cmocka_unit_test(test_admin_token_kind),
        cmocka_unit_test(test_generate_refuses_bad_arguments),
        cmocka_unit_test(test_generate_uses_whole_alphabet),
        cmocka_unit_test(test_generate_unique),
        cmocka_unit_test(test_parse_known_keys),
        cmocka_unit_test(test_parse_does_not_read_past_len),
        cmocka_unit_test(test_parse_refuses_every_substitution),
        cmocka_unit_test(test_parse_refuses_wrong_brand),
        cmocka_unit_test(test_parse_refuses_wrong_type_tag),
        cmocka_unit_test(test_parse_refuses_wrong_length),
        cmocka_unit_test(test_parse_refuses_non_base62),
        cmocka_unit_test(test_parse_refuses_empty_and_null),
        cmocka_unit_test(test_checksum_encode_known_values),
        cmocka_unit_test(test_checksum_encode_writes_exactly_six),
        cmocka_unit_test(test_checksum_is_crc32_of_preceding_text),
        cmocka_unit_test(test_key_type_names),
        cmocka_unit_test(test_brand_check),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
