/*
 * timefmt: RFC 3339 formatting without the C library's locale machinery:
 * the civil date comes from Howard Hinnant's days-to-civil algorithm (exact
 * for the proleptic Gregorian calendar), so a list response formats its
 * timestamps in a few nanoseconds. Never uses local time.
 */
#include "core/timefmt.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "core/error.h"

static void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

int timefmt_format(int64_t t, char *buf, size_t bufsz)
{
    int64_t days, rem, era, z, yoe, doy, mp, y;
    unsigned doe, m, d;

    if (bufsz < TIMEFMT_LEN + 1 || t < 0 || t > 253402300799) /* 9999-12-31T23:59:59Z */
        return AK_ERR_ARG;
    days = t / 86400;
    rem = t % 86400;
    z = days + 719468;
    era = z / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    if (m <= 2)
        y++;
    put2(buf, (unsigned)(y / 100));
    put2(buf + 2, (unsigned)(y % 100));
    buf[4] = '-';
    put2(buf + 5, m);
    buf[7] = '-';
    put2(buf + 8, d);
    buf[10] = 'T';
    put2(buf + 11, (unsigned)(rem / 3600));
    buf[13] = ':';
    put2(buf + 14, (unsigned)(rem / 60 % 60));
    buf[16] = ':';
    put2(buf + 17, (unsigned)(rem % 60));
    buf[19] = 'Z';
    buf[20] = '\0';
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's days-from-civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Reads `n` digits at s[*pos]; false if any is not one. */
static bool digits(const char *s, size_t len, size_t *pos, unsigned n, unsigned *ret)
{
    unsigned v = 0;

    if (len - *pos < n)
        return false;
    for (unsigned i = 0; i < n; i++) {
        char c = s[*pos + i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (unsigned)(c - '0');
    }
    *pos += n;
    *ret = v;
    return true;
}

static bool expect(const char *s, size_t len, size_t *pos, char c1, char c2)
{
    if (*pos >= len || (s[*pos] != c1 && s[*pos] != c2))
        return false;
    (*pos)++;
    return true;
}

int timefmt_parse(const char *s, size_t len, int64_t *ret)
{
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned y, mo, d, h, mi, sec, oh = 0, om = 0;
    size_t pos = 0;
    int sign = 0;
    int64_t t;

    if (s == NULL || !digits(s, len, &pos, 4, &y) || !expect(s, len, &pos, '-', '-') || !digits(s, len, &pos, 2, &mo) ||
        !expect(s, len, &pos, '-', '-') || !digits(s, len, &pos, 2, &d) || !expect(s, len, &pos, 'T', 't') ||
        !digits(s, len, &pos, 2, &h) || !expect(s, len, &pos, ':', ':') || !digits(s, len, &pos, 2, &mi) ||
        !expect(s, len, &pos, ':', ':') || !digits(s, len, &pos, 2, &sec))
        return AK_ERR_INVALID;
    if (pos < len && s[pos] == '.') {
        size_t start = ++pos;
        while (pos < len && s[pos] >= '0' && s[pos] <= '9')
            pos++;
        if (pos == start)
            return AK_ERR_INVALID;
    }
    if (pos < len && (s[pos] == 'Z' || s[pos] == 'z')) {
        pos++;
    } else if (pos < len && (s[pos] == '+' || s[pos] == '-')) {
        sign = s[pos++] == '+' ? 1 : -1;
        if (!digits(s, len, &pos, 2, &oh) || !expect(s, len, &pos, ':', ':') || !digits(s, len, &pos, 2, &om) || oh > 23 || om > 59)
            return AK_ERR_INVALID;
    } else {
        return AK_ERR_INVALID;
    }
    if (pos != len || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
        return AK_ERR_INVALID;
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return AK_ERR_INVALID;
    if (sec == 60)
        sec = 59; /* a leap second names the last second of its minute */
    t = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec - sign * ((int64_t)oh * 3600 + om * 60);
    if (t < 0 || t > 253402300799)
        return AK_ERR_INVALID;
    *ret = t;
    return 0;
}

static _Atomic int64_t clock_offset;

void timefmt_set_offset(int64_t seconds)
{
    atomic_store_explicit(&clock_offset, seconds, memory_order_relaxed);
}

int64_t timefmt_offset(void)
{
    return atomic_load_explicit(&clock_offset, memory_order_relaxed);
}

int64_t timefmt_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec + atomic_load_explicit(&clock_offset, memory_order_relaxed);
}

int64_t timefmt_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t timefmt_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
