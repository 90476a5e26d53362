/*
 * usage: how much each key is used, per hour: requests verified and
 * requests refused, by reason. Counted in memory on the hot path (one
 * relaxed atomic add on the key's own record, see catalog.c), written to
 * the store with last_used (never a write per request), added up there over
 * every instance, and read back by hour or by day over a window within the
 * retention (--usage-retention-days).
 *
 * This header holds what the layers share: the reasons, a row as the store
 * takes it and a query as it answers it. No I/O here.
 */
#ifndef APIKEYD_CORE_USAGE_H
#define APIKEYD_CORE_USAGE_H

#include <stdbool.h>
#include <stdint.h>

/* The counters of one key and hour; their names are the API's and the store's column names. */
enum usage_count {
    USAGE_VERIFIED = 0, /* authenticated: a use (last_used moved) */
    USAGE_INACTIVE,     /* refused: deactivated (or reported leaked) */
    USAGE_EXPIRED,      /* refused: past expires_at */
    USAGE_SUSPENDED,    /* refused: the account is suspended */
    USAGE_SCOPE,        /* refused: lacks a required scope */
    USAGE_IP,           /* refused: the client is not in allowed_ips */
    USAGE_RATE_LIMITED, /* refused: over the key's rate limit */
    USAGE_QUOTA,        /* refused: the key's quota is spent (quota_exhausted) */
    USAGE_NCOUNTS
};

#define USAGE_HOUR_S 3600
#define USAGE_DAY_S 86400
#define USAGE_RETENTION_DEFAULT_DAYS 90
#define USAGE_RETENTION_MAX_DAYS 3660

/* The name of counter `c` ("verified", "inactive", ...). */
const char *usage_count_name(enum usage_count c);

/* The start of the hour holding `t`. */
static inline int64_t usage_hour_of(int64_t t)
{
    return t - ((t % USAGE_HOUR_S) + USAGE_HOUR_S) % USAGE_HOUR_S;
}

/* One key's counts for one hour (deltas, as an instance adds them to the store). */
struct usage_row {
    int64_t key_id;
    int64_t account_id;
    int64_t hour; /* start of the hour, Unix seconds */
    bool sandbox;
    uint64_t n[USAGE_NCOUNTS];
};

/* What a usage read asks of the store: an account's rows in [from, to). */
struct usage_query {
    int64_t account_id;
    int64_t key_id; /* 0: every key of the account */
    int64_t from, to;
    int64_t bucket_s;  /* USAGE_HOUR_S or USAGE_DAY_S: sums per bucket */
    bool sandbox_only; /* only sandbox keys' rows */
    bool by_key;       /* sums per key over the whole window instead of per bucket */
};

/* Called once per bucket (ascending start) or per key (ascending id) with its sums. */
typedef int (*usage_sum_cb)(void *arg, int64_t group, const uint64_t n[USAGE_NCOUNTS]);

struct keys;
struct principal;

/*
 * Reads the sums that `q` asks for (from, to, bucket_s, by_key), of what
 * `who` may see: its account's keys, only sandbox keys for a sandbox key,
 * and of one key when q->key_id is set (AK_ERR_NOT_FOUND / AK_ERR_FORBIDDEN
 * as keys_target says; the key must exist). What the store holds: counts
 * reach it with the next flush.
 */
int usage_read(struct keys *k, const struct principal *who, const struct usage_query *q, usage_sum_cb cb, void *arg);

/* Deletes a batch of usage rows older than `retention_days`; *ret_more when there may be more. */
int usage_prune(struct keys *k, unsigned retention_days, bool *ret_more);

#endif
