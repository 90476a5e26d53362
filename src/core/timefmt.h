/*
 * timefmt: UTC RFC 3339 timestamps with second precision, as the seed shows
 * them ("2024-01-15T10:00:00Z"). Times are whole seconds since the epoch.
 */
#ifndef APIKEYD_CORE_TIMEFMT_H
#define APIKEYD_CORE_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define TIMEFMT_LEN 20 /* "YYYY-MM-DDTHH:MM:SSZ" without the NUL */

/* Writes `t` into `buf` (at least TIMEFMT_LEN + 1 bytes), NUL-terminated. Returns 0 or AK_ERR_ARG. */
int timefmt_format(int64_t t, char *buf, size_t bufsz);

/* Seconds since the epoch, from the real-time clock. */
int64_t timefmt_now(void);

/* Milliseconds of a monotonic clock (coarse: a few ns to read, a few ms of resolution), for deadlines and ages. */
int64_t timefmt_mono_ms(void);

#endif
