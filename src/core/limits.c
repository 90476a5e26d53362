/*
 * limits: values of rate limits and quotas; see limits.h.
 */
#include "core/limits.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

const char *refill_interval_name(enum refill_interval iv)
{
    switch (iv) {
    case REFILL_DAY:
        return "day";
    case REFILL_MONTH:
        return "month";
    case REFILL_NONE:
        break;
    }
    return NULL;
}

enum refill_interval refill_interval_parse(const char *s, size_t len)
{
    if (len == 3 && memcmp(s, "day", 3) == 0)
        return REFILL_DAY;
    if (len == 5 && memcmp(s, "month", 5) == 0)
        return REFILL_MONTH;
    return REFILL_NONE;
}

static int64_t day_start(int64_t t)
{
    return t - ((t % 86400) + 86400) % 86400;
}

/* Days from 1970-01-01 to y-m-01 (proleptic Gregorian; m 1..12). */
static int64_t days_from_civil(int64_t y, int m)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The year and month holding day `z` since the epoch. */
static void civil_from_days(int64_t z, int64_t *ret_y, int *ret_m)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);

    *ret_y = yoe + era * 400 + (m <= 2);
    *ret_m = m;
}

int64_t refill_period_start(enum refill_interval iv, int64_t t)
{
    int64_t y;
    int m;

    if (iv != REFILL_MONTH)
        return day_start(t);
    civil_from_days(day_start(t) / 86400, &y, &m);
    return days_from_civil(y, m) * 86400;
}

int64_t refill_next(enum refill_interval iv, int64_t t)
{
    int64_t y;
    int m;

    if (iv != REFILL_MONTH)
        return day_start(t) + 86400;
    civil_from_days(day_start(t) / 86400, &y, &m);
    return days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1) * 86400;
}

int cost_parse(const char *s, size_t len, uint32_t *ret)
{
    uint32_t v = 0;

    if (len == 0 || len > 4 || (len > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v > COST_MAX)
        return -1;
    *ret = v;
    return 0;
}

/* Accounts for snprintf's `n` bytes written at *off; false when they did not fit. */
static bool fits(int n, size_t size, size_t *off)
{
    if (n < 0 || (size_t)n >= size - *off)
        return false;
    *off += (size_t)n;
    return true;
}

#define AT buf + off, size - off

int limits_policy_header(const struct key_limits *l, int64_t now, char *buf, size_t size)
{
    size_t off = 0;

    if (size == 0)
        return -1;
    buf[0] = '\0';
    if (l->rate_limit > 0 &&
        !fits(snprintf(AT, "\"rate\";q=%lld;w=%lld", (long long)l->rate_limit, (long long)l->rate_window), size, &off))
        return -1;
    if (l->has_quota) {
        if (off != 0 && !fits(snprintf(AT, ", "), size, &off))
            return -1;
        if (l->refill_amount > 0) {
            long long w = refill_next(l->refill_interval, now) - refill_period_start(l->refill_interval, now);
            if (!fits(snprintf(AT, "\"quota\";q=%lld;w=%lld", (long long)l->refill_amount, w), size, &off))
                return -1;
        } else if (!fits(snprintf(AT, "\"quota\";q=%lld", (long long)l->remaining), size, &off)) {
            return -1;
        }
    }
    return (int)off;
}

int limits_state_header(const struct key_limits *l, int64_t now, int64_t rate_left, int64_t rate_reset, int64_t quota_left,
                        char *buf, size_t size)
{
    size_t off = 0;

    if (size == 0)
        return -1;
    buf[0] = '\0';
    if (rate_left < 0)
        rate_left = 0;
    if (quota_left < 0)
        quota_left = 0;
    if (l->rate_limit > 0 && !fits(snprintf(AT, "\"rate\";r=%lld;t=%lld", (long long)rate_left, (long long)rate_reset), size, &off))
        return -1;
    if (l->has_quota) {
        if (off != 0 && !fits(snprintf(AT, ", "), size, &off))
            return -1;
        if (l->refill_amount > 0) {
            if (!fits(snprintf(AT, "\"quota\";r=%lld;t=%lld", (long long)quota_left,
                               (long long)(refill_next(l->refill_interval, now) - now)),
                      size, &off))
                return -1;
        } else if (!fits(snprintf(AT, "\"quota\";r=%lld", (long long)quota_left), size, &off)) {
            return -1;
        }
    }
    return (int)off;
}
