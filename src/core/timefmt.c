/*
 * timefmt: RFC 3339 formatting. Never uses local time.
 */
#include "core/timefmt.h"

#include <stdio.h>
#include <time.h>

#include "core/error.h"

int timefmt_format(int64_t t, char *buf, size_t bufsz)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (bufsz < TIMEFMT_LEN + 1 || t < 0 || gmtime_r(&tt, &tm) == NULL || tm.tm_year + 1900 > 9999)
        return AK_ERR_ARG;
    if (strftime(buf, bufsz, "%Y-%m-%dT%H:%M:%SZ", &tm) != TIMEFMT_LEN)
        return AK_ERR_ARG;
    return 0;
}

int64_t timefmt_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}
