/*
 * quota: one key's credits as this instance holds them (issue 13).
 *
 * The store holds a quota's balance. An instance never spends a credit it
 * has not leased: it takes a block of credits out of the balance in one
 * short transaction, spends them from memory (one compare-and-swap per
 * request), and leases the next block before this one runs out. So the
 * credits spent by every instance together never exceed the balance:
 * never overspent, whatever the number of instances, and the keys of a
 * rotation (one quota) lease from the same balance.
 *
 * A block is tied to the quota's version and refill period: a write of the
 * quota (PATCH remaining) or a refill voids the blocks leased before it.
 * What a clean shutdown has not spent goes back to the balance; what a
 * crashed instance held is lost until the next refill: at most one block
 * per quota per crashed instance (an instance never holds more than a block,
 * quota_want), and a block is at most QUOTA_BLOCK_MAX
 * credits and at most a quarter of the balance it came from (or the cost
 * of the one request that leased it, if more).
 */
#ifndef APIKEYD_CORE_QUOTA_H
#define APIKEYD_CORE_QUOTA_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/limits.h"

#define QUOTA_BLOCK_MIN 1
#define QUOTA_BLOCK_MAX 1000
#define QUOTA_DRY_RECHECK_MS 1000 /* a store that said the balance is spent is asked again after this */

/* A quota as the catalog knows it (from the last load of the key). */
struct quota_terms {
    int64_t id;
    int64_t remaining; /* the store's balance, as loaded */
    int64_t refill_amount;
    enum refill_interval interval;
    int64_t period; /* the refill period `remaining` is for */
    int64_t version;
};

/* The credits of one quota leased here (shared by its keys). Zeroed memory is a valid state that holds nothing. */
struct quota_local {
    int64_t id;                  /* the quota's */
    _Atomic int64_t min_version; /* the newest version seen in any key's terms: credits of an older one are void */
    _Atomic int64_t credits;     /* leased, not spent */
    _Atomic int64_t version;     /* of the quota they were leased from (0: never leased) */
    _Atomic int64_t period;      /* the refill period they belong to */
    _Atomic int64_t left;        /* the store's balance after the last lease */
    _Atomic int64_t dry_ms;      /* monotonic ms the store last said it had nothing left; 0: not dry */
    _Atomic uint32_t leasing;    /* a prefetch is on its way */
    _Atomic int64_t block;       /* the next block's size (written by the lease, one thread at a time) */
    int64_t leased_ms;           /* the lease's own */
};

enum quota_verdict {
    QUOTA_SPENT,     /* spent from the credits here */
    QUOTA_EXHAUSTED, /* the balance is spent */
    QUOTA_LEASE,     /* no credits here for it: lease first (quota_settle) */
};

/* What a request finds: the verdict, the credits left for the whole deployment as this instance knows them, and a prefetch due. */
struct quota_outcome {
    enum quota_verdict verdict;
    int64_t left;
    bool prefetch; /* the credits here run low: lease the next block now (quota_settle with cost 0); set once per lease */
};

/* The refill period holding `now` for `t` (0 without refill). */
int64_t quota_period_of(const struct quota_terms *t, int64_t now);

/* The balance as `t` says it is at `now` (a refill due but not yet made by the store counts). */
int64_t quota_terms_left(const struct quota_terms *t, int64_t now);

/* Spends `cost` credits for a request at `now` (now_ms: monotonic). Lock-free; any thread. */
void quota_spend(struct quota_local *q, const struct quota_terms *t, int64_t now, int64_t now_ms, uint32_t cost,
                 struct quota_outcome *ret);

/* The credits left as this instance knows them, without spending (for views and refusals before the quota). */
int64_t quota_left(struct quota_local *q, const struct quota_terms *t, int64_t now);

/*
 * How many credits to ask the store for, for a request of `cost` (0: a
 * prefetch) at `now`: enough for a block held here, and at least *ret_min
 * (what the request needs beyond the credits held that count for `t`).
 */
int64_t quota_want(struct quota_local *q, const struct quota_terms *t, int64_t now, uint32_t cost, int64_t *ret_min);

/*
 * Takes the store's answer to a lease: `granted` credits of the quota at
 * `version`, for `period`, leaving `left` in the store. The asking request
 * then pays its `cost` from the credits held, if they suffice; returns
 * whether it did. One thread at a time.
 */
bool quota_took(struct quota_local *q, int64_t version, int64_t period, int64_t granted, int64_t left, uint32_t cost,
                int64_t now_ms);

/* Empties the credits for a return to the store; their version and period in *ret_version / *ret_period. */
int64_t quota_drain(struct quota_local *q, int64_t *ret_version, int64_t *ret_period);

#endif
