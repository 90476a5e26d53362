/*
 * quota: leased credits, spent lock-free; see quota.h.
 */
#include "core/quota.h"

int64_t quota_period_of(const struct quota_terms *t, int64_t now)
{
    return t->interval != REFILL_NONE ? refill_period_start(t->interval, now) : 0;
}

int64_t quota_terms_left(const struct quota_terms *t, int64_t now)
{
    if (t->interval != REFILL_NONE && t->period < quota_period_of(t, now))
        return t->refill_amount;
    return t->remaining;
}

/* Whether the credits here count for `t` at `now`: leased from its version (or a later one) for the period now. */
static bool current(struct quota_local *q, const struct quota_terms *t, int64_t now)
{
    int64_t v = atomic_load_explicit(&q->version, memory_order_acquire);

    return v != 0 && v >= t->version && v >= atomic_load_explicit(&q->min_version, memory_order_relaxed) &&
           atomic_load_explicit(&q->period, memory_order_relaxed) == quota_period_of(t, now);
}

int64_t quota_left(struct quota_local *q, const struct quota_terms *t, int64_t now)
{
    if (q != NULL && current(q, t, now))
        return atomic_load_explicit(&q->left, memory_order_relaxed) + atomic_load_explicit(&q->credits, memory_order_relaxed);
    return quota_terms_left(t, now);
}

void quota_spend(struct quota_local *q, const struct quota_terms *t, int64_t now, int64_t now_ms, uint32_t cost,
                 struct quota_outcome *ret)
{
    int64_t c, left, dry;

    ret->prefetch = false;
    if (!current(q, t, now)) {
        /* nothing leased for this version and period yet; a request that costs nothing needs no lease */
        ret->left = quota_terms_left(t, now);
        ret->verdict = cost == 0 ? QUOTA_SPENT : QUOTA_LEASE;
        return;
    }
    c = atomic_load_explicit(&q->credits, memory_order_relaxed);
    left = atomic_load_explicit(&q->left, memory_order_relaxed);
    while (c >= (int64_t)cost) {
        if (atomic_compare_exchange_weak_explicit(&q->credits, &c, c - cost, memory_order_relaxed, memory_order_relaxed)) {
            ret->verdict = QUOTA_SPENT;
            ret->left = left + c - cost;
            /* half a block left, and more in the store: lease the next one before this runs out */
            if (left > 0 && (c - cost) * 2 < atomic_load_explicit(&q->block, memory_order_relaxed) + 2 &&
                atomic_load_explicit(&q->leasing, memory_order_relaxed) == 0) {
                uint32_t idle = 0;
                ret->prefetch = atomic_compare_exchange_strong(&q->leasing, &idle, 1);
            }
            return;
        }
    }
    ret->left = left + c;
    dry = atomic_load_explicit(&q->dry_ms, memory_order_relaxed);
    ret->verdict = left == 0 && dry != 0 && now_ms - dry < QUOTA_DRY_RECHECK_MS ? QUOTA_EXHAUSTED : QUOTA_LEASE;
}

int64_t quota_want(struct quota_local *q, const struct quota_terms *t, int64_t now, uint32_t cost, int64_t *ret_min)
{
    int64_t block = atomic_load(&q->block), held = current(q, t, now) ? atomic_load(&q->credits) : 0;

    if (block < QUOTA_BLOCK_MIN)
        block = QUOTA_BLOCK_MIN;
    if (held < 0)
        held = 0;
    /* never more than a block held here (what a crash may strand), besides what the request pays */
    *ret_min = (int64_t)cost > held ? (int64_t)cost - held : 0;
    return (block > held ? block - held : 0) + *ret_min;
}

bool quota_took(struct quota_local *q, int64_t version, int64_t period, int64_t granted, int64_t left, uint32_t cost,
                int64_t now_ms)
{
    bool paid = cost == 0;
    int64_t c;

    if (atomic_load(&q->version) == version && atomic_load(&q->period) == period) {
        atomic_fetch_add(&q->credits, granted);
    } else {
        /* a new version or period: what was held for the old one is void */
        atomic_store(&q->credits, granted);
        atomic_store(&q->period, period);
        atomic_store_explicit(&q->version, version, memory_order_release);
    }
    /* the asking request pays from what is held now (what was left here, and the new credits) */
    c = atomic_load(&q->credits);
    while (!paid && c >= (int64_t)cost)
        paid = atomic_compare_exchange_weak(&q->credits, &c, c - cost);
    atomic_store(&q->left, left);
    atomic_store(&q->dry_ms, left == 0 ? (now_ms != 0 ? now_ms : 1) : 0);
    /* A block lasts about a second: doubled when the last went faster, halved when it lasted ten. */
    int64_t block = atomic_load(&q->block);
    if (block < QUOTA_BLOCK_MIN)
        block = QUOTA_BLOCK_MIN;
    else if (now_ms - q->leased_ms < 1000 && block < QUOTA_BLOCK_MAX)
        block = block * 2 < QUOTA_BLOCK_MAX ? block * 2 : QUOTA_BLOCK_MAX;
    else if (now_ms - q->leased_ms > 10000 && block > QUOTA_BLOCK_MIN)
        block /= 2;
    atomic_store(&q->block, block);
    q->leased_ms = now_ms;
    atomic_store(&q->leasing, 0);
    return paid;
}

int64_t quota_drain(struct quota_local *q, int64_t *ret_version, int64_t *ret_period)
{
    *ret_version = atomic_load(&q->version);
    *ret_period = atomic_load(&q->period);
    return atomic_exchange(&q->credits, 0);
}
