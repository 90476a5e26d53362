/*
 * key: the record of one API key as every layer sees it. The key itself is
 * never part of it: only its digest and its display prefix.
 */
#ifndef APIKEYD_CORE_KEY_H
#define APIKEYD_CORE_KEY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/digest.h"
#include "core/guard.h"
#include "core/keyfmt.h"
#include "core/limits.h"
#include "core/scope.h"

#define KEY_NAME_MAX_CHARS 100
#define KEY_NAME_MAX_BYTES (KEY_NAME_MAX_CHARS * 4)
/* The `message` beside a new key, the one time it is shown (HTTP and the command line alike). */
#define KEY_SHOWN_ONCE "Save this key securely. It will not be shown again."

struct key_rec {
    int64_t id;
    int64_t account_id;
    char name[KEY_NAME_MAX_BYTES + 1];
    enum key_type type;
    char prefix[KEYFMT_PREFIX_LEN + 1];
    uint8_t digest[DIGEST_LEN];
    bool active;
    bool primary;
    int64_t created_at;
    int64_t last_used;    /* 0: never used */
    int64_t version;      /* store's change counter for this row (0 where the store keeps none) */
    int64_t expires_at;   /* 0: never */
    int64_t rotated_from; /* the key this one replaced by rotation; 0: none */
    int64_t rotated_to;   /* the key that replaced this one; 0: not rotated */
    int64_t leaked_at;    /* when it was reported leaked; 0: never */
    int64_t activated_at; /* when it was last reactivated (is_active false -> true); 0: never */
    bool expiry_seen;     /* refused as expired once: stays expired whatever the clock says later */
    /* Restrictions (policy): absent means unrestricted; the texts are canonical (scope.h, guard.h). */
    bool has_scopes;
    bool has_ips;
    char scopes[SCOPE_TEXT_MAX];
    char allowed_ips[GUARD_IPS_TEXT_MAX];
    /* Rate limit (limits.h): requests per fixed window of rate_window seconds; both 0: none. */
    int64_t rate_limit;
    int32_t rate_window;
    /*
     * Quota (issue 13, quota.h): a balance of credits that verification
     * spends, shared by the keys of a rotation (one quota_id). has_quota
     * false: unlimited. As a store reads it: the balance it holds (leases
     * to instances taken out), the refill, the period the balance is for,
     * and the quota's version (raised by every write of it).
     */
    bool has_quota;
    int64_t quota_id; /* 0: not stored yet */
    int64_t remaining;
    int64_t refill_amount;   /* 0: no refill */
    int32_t refill_interval; /* enum refill_interval (limits.h) */
    int64_t quota_period;    /* the refill period the balance is for (its start); 0 without refill */
    int64_t quota_version;
    uint8_t quota_dirty; /* what a write sets of the quota (KEY_QUOTA_*; store: key_insert, key_write) */
};

#define KEY_QUOTA_REMAINING 1 /* the balance (for the period now) */
#define KEY_QUOTA_REFILL 2    /* the refill */

/* Sets rec's rate limit from values read back from a store; false (nothing set) when they are out of range. */
static inline bool key_set_rate(struct key_rec *rec, int64_t limit, int64_t window)
{
    if (!((limit == 0 && window == 0) || (limit >= 1 && limit <= RATE_LIMIT_MAX && window >= 1 && window <= RATE_WINDOW_MAX)))
        return false;
    rec->rate_limit = limit;
    rec->rate_window = (int32_t)window;
    return true;
}

/*
 * Sets rec's quota from values read back from a store (id 0: none; the
 * interval as its name, "" for none); false (nothing set) when out of range.
 */
static inline bool key_set_quota(struct key_rec *rec, int64_t id, int64_t remaining, int64_t refill_amount, const char *interval,
                                 size_t interval_len, int64_t period, int64_t version)
{
    enum refill_interval iv = refill_interval_parse(interval, interval_len);

    if (id == 0) {
        rec->has_quota = false;
        rec->quota_id = rec->remaining = rec->refill_amount = rec->quota_period = rec->quota_version = 0;
        rec->refill_interval = REFILL_NONE;
        return true;
    }
    if (id < 0 || remaining < 0 || remaining > QUOTA_MAX || refill_amount < 0 || refill_amount > QUOTA_MAX ||
        (refill_amount != 0) != (iv != REFILL_NONE) || (iv == REFILL_NONE && interval_len != 0) || version < 1)
        return false;
    rec->has_quota = true;
    rec->quota_id = id;
    rec->remaining = remaining;
    rec->refill_amount = refill_amount;
    rec->refill_interval = (int32_t)iv;
    rec->quota_period = period;
    rec->quota_version = version;
    return true;
}

/* Whether `rec` is expired at `now` (or was once seen so: a clock stepped back does not revive it). */
static inline bool key_expired(const struct key_rec *rec, int64_t now)
{
    return rec->expires_at != 0 && (rec->expiry_seen || now >= rec->expires_at);
}

/* A use of a key (for last_used), as the catalog hands it to the store. */
struct key_use {
    int64_t id;
    int64_t at;
};

/* Who is calling: the key behind an authenticated request. */
struct principal {
    int64_t key_id;
    int64_t account_id;
    enum key_type type;
    char prefix[KEYFMT_PREFIX_LEN + 1];
    int64_t expires_at; /* 0: never */
    bool has_ips;       /* the key has an allowlist */
    bool restricted;    /* the key has scopes: `scopes` holds them (canonical text, scopes_len bytes) */
    size_t scopes_len;
    char scopes[SCOPE_TEXT_MAX];
    /* The key's rate limit (0: none), for the policy of what it may give. */
    int64_t rate_limit;
    int32_t rate_window;
    /* The key's quota (0: none): the keys it makes spend from it too. */
    int64_t quota_id;
};

#endif
