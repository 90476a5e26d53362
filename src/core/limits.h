/*
 * limits: what a key's rate limit and quota are, as values (issue 13): their
 * ranges, the UTC refill periods, the X-Cost header, and the IETF RateLimit
 * header fields (draft-ietf-httpapi-ratelimit-headers) that describe them.
 * Pure functions: no I/O, no state. The counting lives in ratelimit.c.
 */
#ifndef APIKEYD_CORE_LIMITS_H
#define APIKEYD_CORE_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATE_LIMIT_MAX 1000000000LL  /* requests per window */
#define RATE_WINDOW_MAX 86400        /* seconds */
#define QUOTA_MAX 9007199254740991LL /* 2^53 - 1: exact in every JSON client */
#define COST_MAX 1000
#define COST_DEFAULT 1
#define LIMITS_HEADER_MAX 160 /* room for either header field value, both policies at their widest */

enum refill_interval {
    REFILL_NONE = 0,
    REFILL_DAY,
    REFILL_MONTH,
};

/* A key's limits; zeros mean none. */
struct key_limits {
    int64_t rate_limit; /* requests per window; 0: no rate limit */
    int32_t rate_window;
    bool has_quota;        /* remaining is not null */
    int64_t remaining;     /* as the API shows it */
    int64_t refill_amount; /* 0: no refill */
    enum refill_interval refill_interval;
};

/* "day", "month" (NULL for REFILL_NONE). */
const char *refill_interval_name(enum refill_interval iv);

/* REFILL_DAY or REFILL_MONTH for `len` bytes of `s`, REFILL_NONE for anything else. */
enum refill_interval refill_interval_parse(const char *s, size_t len);

/* The start of the UTC day or month holding `t` (Unix seconds). */
int64_t refill_period_start(enum refill_interval iv, int64_t t);

/* The start of the next UTC day or month after the one holding `t`. */
int64_t refill_next(enum refill_interval iv, int64_t t);

/*
 * Parses an X-Cost header value: a decimal integer 0..COST_MAX, digits only
 * (no sign, no spaces, no leading zeros but "0"). 0 and *ret set, or -1.
 */
int cost_parse(const char *s, size_t len, uint32_t *ret);

/* The number of the fixed window of `window_s` seconds holding `now` (windows start at the epoch). */
static inline int64_t rate_window_of(int64_t now, int32_t window_s)
{
    return now >= 0 ? now / window_s : -((-now + window_s - 1) / window_s);
}

/* Seconds from `now` to the end of its window (1..window_s). */
static inline int64_t rate_reset_in(int64_t now, int32_t window_s)
{
    return (rate_window_of(now, window_s) + 1) * window_s - now;
}

/*
 * Writes the RateLimit-Policy field value for `l` into `buf` (NUL-terminated):
 * `"rate";q=LIMIT;w=WINDOW` and/or `"quota";q=AMOUNT[;w=SECONDS]`, the quota's
 * q being the refill amount (or the balance when it does not refill). Returns
 * the length, 0 when the key has no limits (no field), or -1 if it did not fit.
 */
int limits_policy_header(const struct key_limits *l, int64_t now, char *buf, size_t size);

/*
 * The RateLimit field value: `"rate";r=LEFT;t=RESET` and/or `"quota";r=LEFT[;t=REFILL]`.
 * `rate_left` and `quota_left` are what is left after this request, `rate_reset`
 * the seconds to the end of the window it counted in. As above.
 */
int limits_state_header(const struct key_limits *l, int64_t now, int64_t rate_left, int64_t rate_reset, int64_t quota_left,
                        char *buf, size_t size);

#endif
