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

/*
 * Parses an RFC 3339 date-time (`len` bytes): "YYYY-MM-DDTHH:MM:SS", an
 * optional fraction (dropped: times are whole seconds), then "Z" or an
 * offset "+HH:MM"/"-HH:MM"; 't' and 'z' are accepted as RFC 3339 allows.
 * Sets *ret to seconds since the epoch (UTC). Returns 0 or AK_ERR_INVALID
 * (not that shape, a field out of range, a date that does not exist, a
 * time before 1970 or after 9999).
 */
int timefmt_parse(const char *s, size_t len, int64_t *ret);

/* Seconds since the epoch, from the real-time clock (plus the test offset below). */
int64_t timefmt_now(void);

/*
 * Moves timefmt_now by `seconds` (0: the real clock), for tests that need
 * days to pass (the server sets it only from APIKEYD_TEST_CLOCK_FILE).
 */
void timefmt_set_offset(int64_t seconds);

/* The offset in force. */
int64_t timefmt_offset(void);

/* Milliseconds of a monotonic clock (coarse: a few ns to read, a few ms of resolution), for deadlines and ages. */
int64_t timefmt_mono_ms(void);

/* Monotonic nanoseconds (precise, for durations). */
int64_t timefmt_mono_ns(void);

#endif
