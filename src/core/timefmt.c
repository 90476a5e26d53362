/*
 * timefmt: RFC 3339 formatting without the C library's locale machinery:
 * the civil date comes from Howard Hinnant's days-to-civil algorithm (exact
 * for the proleptic Gregorian calendar), so a list response formats its
 * timestamps in a few nanoseconds. Never uses local time.
 */
#include "core/timefmt.h"

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

int64_t timefmt_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

int64_t timefmt_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
