/*
 * Unit tests for core/limits: UTC refill periods (days, months, years, leap
 * Februaries) against libc's timegm/gmtime_r as an independent oracle, fixed
 * windows, the X-Cost header's grammar at its boundaries, and the RateLimit
 * and RateLimit-Policy field values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/limits.h"

static int64_t utc(int y, int mon, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mon - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};

    return (int64_t)timegm(&tm);
}

static void test_refill_day(void **state)
{
    (void)state;
    assert_int_equal(refill_period_start(REFILL_DAY, utc(2026, 12, 2, 13, 5, 9)), utc(2026, 12, 2, 0, 0, 0));
    assert_int_equal(refill_next(REFILL_DAY, utc(2026, 12, 2, 13, 5, 9)), utc(2026, 12, 3, 0, 0, 0));
    /* The boundary belongs to the new day. */
    assert_int_equal(refill_period_start(REFILL_DAY, utc(2026, 12, 3, 0, 0, 0)), utc(2026, 12, 3, 0, 0, 0));
    assert_int_equal(refill_period_start(REFILL_DAY, utc(2026, 12, 2, 23, 59, 59)), utc(2026, 12, 2, 0, 0, 0));
    assert_int_equal(refill_next(REFILL_DAY, utc(2026, 12, 31, 23, 59, 59)), utc(2027, 1, 1, 0, 0, 0));
}

static void test_refill_month(void **state)
{
    (void)state;
    assert_int_equal(refill_period_start(REFILL_MONTH, utc(2026, 12, 2, 13, 5, 9)), utc(2026, 12, 1, 0, 0, 0));
    assert_int_equal(refill_next(REFILL_MONTH, utc(2026, 12, 2, 13, 5, 9)), utc(2027, 1, 1, 0, 0, 0));
    assert_int_equal(refill_period_start(REFILL_MONTH, utc(2028, 2, 29, 23, 59, 59)), utc(2028, 2, 1, 0, 0, 0));
    assert_int_equal(refill_next(REFILL_MONTH, utc(2028, 2, 29, 23, 59, 59)), utc(2028, 3, 1, 0, 0, 0));
    assert_int_equal(refill_next(REFILL_MONTH, utc(2027, 1, 31, 12, 0, 0)), utc(2027, 2, 1, 0, 0, 0));
    assert_int_equal(refill_period_start(REFILL_MONTH, utc(2026, 3, 1, 0, 0, 0)), utc(2026, 3, 1, 0, 0, 0));
}

/* Every 7 hours and 13 minutes over 60 years: the period holds t, starts on the 1st at midnight, the next is the month after. */
static void test_refill_month_against_libc(void **state)
{
    (void)state;
    for (int64_t t = utc(1990, 1, 1, 0, 0, 0); t < utc(2050, 1, 1, 0, 0, 0); t += 7 * 3600 + 13 * 60) {
        struct tm tm;
        time_t tt = (time_t)t;
        int64_t start = refill_period_start(REFILL_MONTH, t), next = refill_next(REFILL_MONTH, t);
        assert_non_null(gmtime_r(&tt, &tm));
        assert_int_equal(start, utc(tm.tm_year + 1900, tm.tm_mon + 1, 1, 0, 0, 0));
        assert_int_equal(next, tm.tm_mon == 11 ? utc(tm.tm_year + 1901, 1, 1, 0, 0, 0)
                                               : utc(tm.tm_year + 1900, tm.tm_mon + 2, 1, 0, 0, 0));
        assert_true(start <= t && t < next);
        assert_int_equal(refill_period_start(REFILL_DAY, t), utc(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, 0, 0, 0));
    }
}

static void test_refill_interval_names(void **state)
{
    (void)state;
    assert_int_equal(refill_interval_parse("day", 3), REFILL_DAY);
    assert_int_equal(refill_interval_parse("month", 5), REFILL_MONTH);
    assert_int_equal(refill_interval_parse("days", 4), REFILL_NONE);
    assert_int_equal(refill_interval_parse("Day", 3), REFILL_NONE);
    assert_int_equal(refill_interval_parse("mont", 4), REFILL_NONE);
    assert_int_equal(refill_interval_parse("", 0), REFILL_NONE);
    assert_int_equal(refill_interval_parse("dayX", 3), REFILL_DAY); /* the length given, not the NUL, bounds it */
    assert_string_equal(refill_interval_name(REFILL_DAY), "day");
    assert_string_equal(refill_interval_name(REFILL_MONTH), "month");
    assert_null(refill_interval_name(REFILL_NONE));
}

static void test_windows(void **state)
{
    (void)state;
    assert_int_equal(rate_window_of(120, 60), 2);
    assert_int_equal(rate_window_of(179, 60), 2);
    assert_int_equal(rate_reset_in(120, 60), 60);
    assert_int_equal(rate_reset_in(179, 60), 1);
    assert_int_equal(rate_window_of(utc(2026, 12, 2, 13, 5, 9), 86400) * 86400, utc(2026, 12, 2, 0, 0, 0));
    assert_int_equal(rate_reset_in(5, 1), 1);
}

static int cost(const char *s, uint32_t *v)
{
    return cost_parse(s, strlen(s), v);
}

static void test_cost(void **state)
{
    static const char *const bad[] = {"",     "-1",   "+1",    "1.0", " 1",  "1 ",  "01", "00",
                                      "1001", "9999", "10000", "1e2", "0x1", "abc", "１"};
    uint32_t v = 77;

    (void)state;
    assert_int_equal(cost("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cost("1", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(cost("999", &v), 0);
    assert_int_equal(v, 999);
    assert_int_equal(cost("1000", &v), 0);
    assert_int_equal(v, 1000);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = 77;
        assert_int_equal(cost(bad[i], &v), -1);
        assert_int_equal(v, 77);
    }
    assert_int_equal(cost_parse("12", 1, &v), 0); /* the length given bounds it */
    assert_int_equal(v, 1);
}

static void test_headers(void **state)
{
    struct key_limits l = {.rate_limit = 1000, .rate_window = 60};
    int64_t now = utc(2026, 12, 2, 13, 5, 18);
    char buf[256];

    (void)state;
    assert_int_equal(limits_policy_header(&l, now, buf, sizeof(buf)), (int)strlen("\"rate\";q=1000;w=60"));
    assert_string_equal(buf, "\"rate\";q=1000;w=60");
    assert_true(limits_state_header(&l, now, 998, 42, 0, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "\"rate\";r=998;t=42");
    l.has_quota = true;
    l.remaining = 500;
    assert_true(limits_policy_header(&l, now, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "\"rate\";q=1000;w=60, \"quota\";q=500");
    assert_true(limits_state_header(&l, now, -3, 42, 499, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "\"rate\";r=0;t=42, \"quota\";r=499");
    l.refill_amount = 100000;
    l.refill_interval = REFILL_MONTH;
    assert_true(limits_policy_header(&l, now, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "\"rate\";q=1000;w=60, \"quota\";q=100000;w=2678400"); /* December: 31 days */
    assert_true(limits_state_header(&l, now, 5, 42, 99870, buf, sizeof(buf)) > 0);
    snprintf(buf + 128, 128, "\"rate\";r=5;t=42, \"quota\";r=99870;t=%lld", (long long)(utc(2027, 1, 1, 0, 0, 0) - now));
    assert_string_equal(buf, buf + 128);
    l.rate_limit = 0;
    l.refill_interval = REFILL_DAY;
    assert_true(limits_state_header(&l, now, 0, 0, 7, buf, sizeof(buf)) > 0);
    snprintf(buf + 128, 128, "\"quota\";r=7;t=%lld", (long long)(utc(2026, 12, 3, 0, 0, 0) - now));
    assert_string_equal(buf, buf + 128);
    /* No limits: no field. Too small a buffer: -1. */
    l.has_quota = false;
    assert_int_equal(limits_policy_header(&l, now, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    l.rate_limit = 1000000000;
    l.rate_window = 86400;
    assert_int_equal(limits_policy_header(&l, now, buf, 10), -1);
    assert_int_equal(limits_state_header(&l, now, 1, 1, 1, buf, 10), -1);
    assert_int_equal(limits_policy_header(&l, now, buf, 0), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refill_day),
        cmocka_unit_test(test_refill_month),
        cmocka_unit_test(test_refill_month_against_libc),
        cmocka_unit_test(test_refill_interval_names),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_cost),
        cmocka_unit_test(test_headers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
