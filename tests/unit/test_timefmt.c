/*
 * Unit tests for core/timefmt: known instants in UTC (epoch, the seed's
 * example, a leap day, the last second of year 9999), independence from the
 * local time zone, refusals (small buffer, negative, past 9999) and the
 * clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/timefmt.h"

static void expect_time(int64_t t, const char *want)
{
    char buf[TIMEFMT_LEN + 8];

    memset(buf, '#', sizeof(buf));
    assert_int_equal(timefmt_format(t, buf, TIMEFMT_LEN + 1), 0);
    assert_string_equal(buf, want);
    assert_int_equal(strlen(buf), TIMEFMT_LEN);
}

static void test_known_values(void **state)
{
    (void)state;
    expect_time(0, "1970-01-01T00:00:00Z");
    expect_time(1, "1970-01-01T00:00:01Z");
    expect_time(1705312800, "2024-01-15T10:00:00Z");
    expect_time(1736951400, "2025-01-15T14:30:00Z");
    expect_time(951782400, "2000-02-29T00:00:00Z");
    expect_time(1709251199, "2024-02-29T23:59:59Z");
    expect_time(1735689599, "2024-12-31T23:59:59Z");
    expect_time(2147483647, "2038-01-19T03:14:07Z");
    expect_time(2147483648, "2038-01-19T03:14:08Z");
    expect_time(253402300799, "9999-12-31T23:59:59Z");
}

static void test_ignores_local_time_zone(void **state)
{
    char *old = getenv("TZ") != NULL ? strdup(getenv("TZ")) : NULL;

    (void)state;
    setenv("TZ", "EST5EDT", 1); /* POSIX rules: no tzdata needed */
    tzset();
    expect_time(1705312800, "2024-01-15T10:00:00Z");
    setenv("TZ", "IST-5:30", 1);
    tzset();
    expect_time(0, "1970-01-01T00:00:00Z");
    if (old != NULL) {
        setenv("TZ", old, 1);
        free(old);
    } else {
        unsetenv("TZ");
    }
    tzset();
}

static void test_small_buffer_refused(void **state)
{
    char buf[TIMEFMT_LEN + 1];

    (void)state;
    assert_int_equal(timefmt_format(0, buf, TIMEFMT_LEN), AK_ERR_ARG);
    assert_int_equal(timefmt_format(0, buf, 1), AK_ERR_ARG);
    assert_int_equal(timefmt_format(0, buf, 0), AK_ERR_ARG);
    assert_int_equal(timefmt_format(0, buf, sizeof(buf)), 0);
}

static void test_out_of_range_refused(void **state)
{
    char buf[64];

    (void)state;
    assert_int_equal(timefmt_format(-1, buf, sizeof(buf)), AK_ERR_ARG);
    assert_int_equal(timefmt_format(-86400, buf, sizeof(buf)), AK_ERR_ARG);
    assert_int_equal(timefmt_format(INT64_MIN, buf, sizeof(buf)), AK_ERR_ARG);
    /* Year 10000 would not fit the fixed format. */
    assert_int_equal(timefmt_format(253402300800, buf, sizeof(buf)), AK_ERR_ARG);
    assert_int_equal(timefmt_format(INT64_MAX, buf, sizeof(buf)), AK_ERR_ARG);
}

static void test_now(void **state)
{
    time_t before = time(NULL);
    int64_t now = timefmt_now();
    time_t after = time(NULL);
    char buf[TIMEFMT_LEN + 1];

    (void)state;
    assert_true(now >= (int64_t)before && now <= (int64_t)after);
    assert_int_equal(timefmt_format(now, buf, sizeof(buf)), 0);
}

/* The hand-rolled civil-date arithmetic must agree with gmtime_r + strftime everywhere. */
static void test_agrees_with_gmtime(void **state)
{
    char mine[TIMEFMT_LEN + 1], libc[TIMEFMT_LEN + 1];
    uint64_t x = 0x9e3779b97f4a7c15ULL;

    (void)state;
    for (int i = 0; i < 400000; i++) {
        int64_t t;
        struct tm tm;
        time_t tt;
        if (i < 200000) {
            t = (int64_t)i * 1260013; /* strides across centuries, leap days and day boundaries */
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t = (int64_t)(x % 253402300800ULL);
        }
        tt = (time_t)t;
        assert_non_null(gmtime_r(&tt, &tm));
        assert_int_equal(strftime(libc, sizeof(libc), "%Y-%m-%dT%H:%M:%SZ", &tm), TIMEFMT_LEN);
        assert_int_equal(timefmt_format(t, mine, sizeof(mine)), 0);
        assert_string_equal(mine, libc);
    }
}

static int64_t parsed(const char *s)
{
    int64_t t = -1;

    assert_int_equal(timefmt_parse(s, strlen(s), &t), 0);
    return t;
}

static void refused(const char *s)
{
    int64_t t = 12345;

    assert_int_equal(timefmt_parse(s, strlen(s), &t), AK_ERR_INVALID);
    assert_int_equal(t, 12345); /* untouched */
}

/* Parsing is the inverse of formatting, and reads offsets, fractions and RFC 3339's lower-case letters. */
static void test_parse(void **state)
{
    char buf[TIMEFMT_LEN + 1];

    (void)state;
    assert_int_equal(parsed("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parsed("2024-01-15T10:00:00Z"), 1705312800);
    assert_int_equal(parsed("2024-01-15t10:00:00z"), 1705312800);
    assert_int_equal(parsed("2024-01-15T10:00:00.999999Z"), 1705312800);
    assert_int_equal(parsed("2024-01-15T12:30:00+02:30"), 1705312800);
    assert_int_equal(parsed("2024-01-15T05:00:00-05:00"), 1705312800);
    assert_int_equal(parsed("2024-02-29T00:00:00Z"), 1709164800);
    assert_int_equal(parsed("2000-02-29T00:00:00Z"), 951782400);
    assert_int_equal(parsed("2016-12-31T23:59:60Z"), 1483228799);
    assert_int_equal(parsed("9999-12-31T23:59:59Z"), 253402300799);
    for (int64_t t = 0; t < 253402300799; t += 987654321) {
        assert_int_equal(timefmt_format(t, buf, sizeof(buf)), 0);
        assert_int_equal(parsed(buf), t);
    }
}

static void test_parse_refusals(void **state)
{
    (void)state;
    refused("");
    refused("2024-01-15");
    refused("2024-01-15T10:00:00");      /* no zone: ambiguous */
    refused("2024-01-15 10:00:00Z");     /* RFC 3339 allows it by agreement only */
    refused("2024-01-15T10:00Z");        /* seconds are required */
    refused("2024-01-15T10:00:00.Z");    /* an empty fraction */
    refused("2024-01-15T10:00:00Z ");    /* trailing bytes */
    refused("2024-01-15T10:00:00+0200"); /* offset without colon */
    refused("2024-13-01T00:00:00Z");
    refused("2024-00-01T00:00:00Z");
    refused("2023-02-29T00:00:00Z"); /* not a leap year */
    refused("1900-02-29T00:00:00Z");
    refused("2024-04-31T00:00:00Z");
    refused("2024-01-15T24:00:00Z");
    refused("2024-01-15T10:60:00Z");
    refused("2024-01-15T10:00:61Z");
    refused("2024-01-15T10:00:00+24:00");
    refused("1969-12-31T23:59:59Z"); /* before the epoch */
    refused("1970-01-01T00:00:00+00:01");
    refused("9999-12-31T23:59:59-00:01"); /* past 9999 */
    refused("+2024-01-15T10:00:00Z");
    refused("2024-1-15T10:00:00Z");
    assert_int_equal(timefmt_parse(NULL, 0, &(int64_t){0}), AK_ERR_INVALID);
    /* Bytes past `len` are not read: a prefix of a valid time is refused. */
    assert_int_equal(timefmt_parse("2024-01-15T10:00:00Z", 19, &(int64_t){0}), AK_ERR_INVALID);
}

/* The test clock moves timefmt_now and nothing else. */
static void test_offset(void **state)
{
    int64_t before = timefmt_now();

    (void)state;
    assert_int_equal(timefmt_offset(), 0);
    timefmt_set_offset(86400 * 10);
    assert_true(timefmt_now() >= before + 86400 * 10);
    assert_true(timefmt_now() <= before + 86400 * 10 + 5);
    timefmt_set_offset(0);
    assert_true(timefmt_now() - before < 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_values),
        cmocka_unit_test(test_ignores_local_time_zone),
        cmocka_unit_test(test_small_buffer_refused),
        cmocka_unit_test(test_out_of_range_refused),
        cmocka_unit_test(test_now),
        cmocka_unit_test(test_agrees_with_gmtime),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_offset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
