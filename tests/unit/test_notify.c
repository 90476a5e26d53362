/*
 * Unit tests for store/notify: the change-channel payload parser. Hostile
 * payloads (repeats, signs, zero, overflow, unknown kinds, stray bytes,
 * oversize, too many ids) are refused whole or folded; our own forms parse.
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
#include "store/notify.h"

static struct notify_msg m;

static int parse(const char *s)
{
    return notify_parse(s, strlen(s), &m);
}

static void test_own_forms(void **state)
{
    (void)state;
    assert_int_equal(parse("k 5"), 0);
    assert_int_equal(m.kind, NOTIFY_KEYS);
    assert_int_equal(m.n, 1);
    assert_int_equal(m.ids[0], 5);
    assert_int_equal(parse("k 12 7"), 0);
    assert_int_equal(m.n, 2);
    assert_int_equal(m.ids[0], 7);
    assert_int_equal(m.ids[1], 12);
    assert_int_equal(parse("u 3,1,2"), 0);
    assert_int_equal(m.kind, NOTIFY_USES);
    assert_int_equal(m.n, 3);
    assert_int_equal(m.ids[0], 1);
    assert_int_equal(m.ids[2], 3);
    /* the older "id:at" form: the value is ignored, never applied */
    assert_int_equal(parse("u 1:4102444800,2:0"), 0);
    assert_int_equal(m.n, 2);
    assert_int_equal(parse("k 9223372036854775807"), 0);
    assert_int_equal(m.ids[0], INT64_MAX);
}

static void test_repeats_are_folded(void **state)
{
    (void)state;
    assert_int_equal(parse("k 5 5"), 0);
    assert_int_equal(m.n, 1);
    assert_int_equal(parse("k 5 5 5 5 6 5"), 0);
    assert_int_equal(m.n, 2);
    assert_int_equal(parse("u 9,9:1,9:2"), 0);
    assert_int_equal(m.n, 1);
}

static void test_refused(void **state)
{
    static const char *const bad[] = {
        "",
        "k",
        "k ",
        "k 1 ",
        "k  1",
        " k 1",
        "k 0",
        "k -1",
        "k +1",
        "k 01",
        "k 1a",
        "k 9223372036854775808",
        "k 99999999999999999999",
        "x 1",
        "K 1",
        "kk 1",
        "k\t1",
        "k 1,2",
        "u 1 2",
        "u 1,,2",
        "u ,1",
        "u 1,",
        "u 1:",
        "u 1:-5",
        "u 1:01",
        "u 1:9223372036854775808",
        "u 1:2:3",
        "k 1:2",
        "u",
        "k\n1",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i]) != AK_ERR_ARG)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    /* a NUL inside the payload is not the end of it */
    assert_int_equal(notify_parse("k 1\0"
                                  "2",
                                  5, &m),
                     AK_ERR_ARG);
}

static void test_bounds(void **state)
{
    char *p = malloc(NOTIFY_PAYLOAD_MAX + 16);
    size_t len = 0;

    (void)state;
    assert_non_null(p);
    /* the most ids a payload can hold, all the same: one id */
    len = (size_t)sprintf(p, "u 1");
    while (len + 2 <= NOTIFY_PAYLOAD_MAX)
        len += (size_t)sprintf(p + len, ",1");
    assert_int_equal(notify_parse(p, len, &m), 0);
    assert_int_equal(m.n, 1);
    /* one byte too many */
    p[len] = '1';
    p[len + 1] = '\0';
    if (len + 1 > NOTIFY_PAYLOAD_MAX)
        assert_int_equal(notify_parse(p, len + 1, &m), AK_ERR_ARG);
    /* NOTIFY_IDS_MAX distinct ids: test_bounds_every_kind */
    free(p);
}

static void test_unique(void **state)
{
    int64_t v[] = {5, 3, 5, 1, 3, 3};

    (void)state;
    assert_int_equal(notify_ids_unique(v, 6), 3);
    assert_int_equal(v[0], 1);
    assert_int_equal(v[1], 3);
    assert_int_equal(v[2], 5);
    assert_int_equal(notify_ids_unique(v, 0), 0);
}

/* Issue 9: "a" (accounts whose status changed or that were deleted) and "t" (admin tokens): ids as "k" has them. */
static void test_accounts_and_tokens(void **state)
{
    (void)state;
    assert_int_equal(parse("a 5"), 0);
    assert_int_equal(m.kind, NOTIFY_ACCOUNTS);
    assert_int_equal(m.n, 1);
    assert_int_equal(m.ids[0], 5);
    assert_int_equal(parse("a 30 4 30 9223372036854775807"), 0);
    assert_int_equal(m.kind, NOTIFY_ACCOUNTS);
    assert_int_equal(m.n, 3);
    assert_int_equal(m.ids[0], 4);
    assert_int_equal(m.ids[1], 30);
    assert_int_equal(m.ids[2], INT64_MAX);
    assert_int_equal(parse("t 1"), 0);
    assert_int_equal(m.kind, NOTIFY_TOKENS);
    assert_int_equal(m.n, 1);
    assert_int_equal(m.ids[0], 1);
    assert_int_equal(parse("t 8 2 8"), 0);
    assert_int_equal(m.kind, NOTIFY_TOKENS);
    assert_int_equal(m.n, 2);
    assert_int_equal(m.ids[0], 2);
    assert_int_equal(m.ids[1], 8);
}

static void test_accounts_and_tokens_refused(void **state)
{
    static const char *const bad[] = {
        "a",
        "a ",
        "a 1 ",
        "a  1",
        " a 1",
        "a 0",
        "a -1",
        "a +1",
        "a 01",
        "a 1a",
        "a 9223372036854775808",
        "a 1,2",
        "a 1:2",
        "a\t1",
        "A 1",
        "aa 1",
        "a\n1",
        "t",
        "t ",
        "t 0",
        "t -7",
        "t 007",
        "t 1,2",
        "t 1:5",
        "t 1  2",
        "T 1",
        "tk 1",
        "t 18446744073709551616",
        "s 1",
        "b 1",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i]) != AK_ERR_ARG)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    assert_int_equal(notify_parse("a 1\0"
                                  "2",
                                  5, &m),
                     AK_ERR_ARG);
    assert_int_equal(notify_parse("t 3\0", 4, &m), AK_ERR_ARG);
}

/* The bounds hold for every kind: NOTIFY_IDS_MAX distinct ids, then one too many. */
static void test_bounds_every_kind(void **state)
{
    static const char kinds[] = {'k', 'a', 't', 'u'};
    char *p = malloc(NOTIFY_PAYLOAD_MAX + 16);

    (void)state;
    assert_non_null(p);
    for (size_t k = 0; k < sizeof(kinds); k++) {
        char sep = kinds[k] == 'u' ? ',' : ' ';
        size_t len = (size_t)sprintf(p, "%c 1", kinds[k]);
        for (int i = 2; i <= NOTIFY_IDS_MAX; i++)
            len += (size_t)sprintf(p + len, "%c%d", sep, i);
        assert_int_equal(notify_parse(p, len, &m), 0);
        assert_int_equal(m.n, NOTIFY_IDS_MAX);
        len += (size_t)sprintf(p + len, "%c%d", sep, NOTIFY_IDS_MAX + 1);
        assert_int_equal(notify_parse(p, len, &m), AK_ERR_ARG);
    }
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_forms),
        cmocka_unit_test(test_repeats_are_folded),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_unique),
        cmocka_unit_test(test_accounts_and_tokens),
        cmocka_unit_test(test_accounts_and_tokens_refused),
        cmocka_unit_test(test_bounds_every_kind),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
