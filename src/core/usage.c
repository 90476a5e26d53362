/*
 * usage: reading and pruning what the flush wrote (the counting itself
 * lives in the catalog, on each key's record; the writing in keys.c's
 * flush). Who may read what is decided here, as for keys.
 */
#include "core/usage.h"

#include <stdlib.h>

#include "core/error.h"
#include "core/keys_impl.h"
#include "core/timefmt.h"
#include "store/store.h"

#define USAGE_PRUNE_BATCH 5000

static const char *const NAMES[USAGE_NCOUNTS] = {
    [USAGE_VERIFIED] = "verified",         [USAGE_INACTIVE] = "inactive",     [USAGE_EXPIRED] = "expired",
    [USAGE_SUSPENDED] = "suspended",       [USAGE_SCOPE] = "scope",           [USAGE_IP] = "ip",
    [USAGE_RATE_LIMITED] = "rate_limited", [USAGE_QUOTA] = "quota_exhausted",
};

const char *usage_count_name(enum usage_count c)
{
    return c >= 0 && c < USAGE_NCOUNTS ? NAMES[c] : "";
}

int usage_read(struct keys *k, const struct principal *who, const struct usage_query *q, usage_sum_cb cb, void *arg)
{
    struct usage_query mine = *q;
    struct key_rec *rec;
    int r;

    mine.account_id = who->account_id;
    mine.sandbox_only = who->type == KEY_TYPE_SANDBOX;
    if (q->key_id != 0) {
        if ((rec = malloc(sizeof(*rec))) == NULL)
            return AK_ERR_NOMEM;
        r = keys_target(k, who, q->key_id, rec);
        free(rec);
        if (r != 0)
            return r;
    }
    return k->store->ops->usage_sum(k->store, &mine, cb, arg);
}

int usage_prune(struct keys *k, unsigned retention_days, bool *ret_more)
{
    int64_t n = 0;
    int r =
        store_usage_prune(k->store, usage_hour_of(timefmt_now()) - (int64_t)retention_days * USAGE_DAY_S, USAGE_PRUNE_BATCH, &n);

    *ret_more = r == 0 && n == USAGE_PRUNE_BATCH;
    return r;
}
