/*
 * quotas: the keys service's leases of quota credits from the store; see
 * keys.h (keys_quota_settle, keys_quota_return) and quota.h.
 */
#include <stdlib.h>

#include "core/catalog.h"
#include "core/error.h"
#include "core/keys_impl.h"
#include "core/quota.h"
#include "core/timefmt.h"
#include "store/store.h"

int keys_quota_settle(struct keys *k, int64_t key_id, uint32_t cost, int64_t now, int64_t *ret_left)
{
    struct quota_hold h;
    struct quota_lease l;
    bool paid;
    int r;

    *ret_left = 0;
    if ((r = catalog_quota_hold(k->cat, key_id, &h)) != 0)
        return r;
    if (cost > 0) {
        /* Requests that ran out together wait in line here: the first one's lease may pay for the rest. */
        struct quota_outcome o;
        quota_spend(h.local, &h.terms, now, timefmt_mono_ms(), cost, &o);
        if (o.verdict == QUOTA_SPENT) {
            *ret_left = o.left;
            catalog_quota_used(&h, true, now);
            catalog_quota_release(&h);
            return 0;
        }
    }
    int64_t min, want = quota_want(h.local, &h.terms, now, cost, &min);
    if (want == 0) { /* a prefetch that another lease made needless */
        atomic_store(&h.local->leasing, 0);
        catalog_quota_release(&h);
        return 0;
    }
    if ((r = store_quota_lease(k->store, h.terms.id, want, min, now, &l)) != 0) {
        atomic_store(&h.local->leasing, 0); /* the next request that finds the credits low asks again */
        catalog_quota_release(&h);
        return r;
    }
    paid = quota_took(h.local, l.version, l.period, l.granted, l.left, cost, timefmt_mono_ms());
    *ret_left = l.left + atomic_load(&h.local->credits);
    if (cost > 0)
        catalog_quota_used(&h, paid, now);
    catalog_quota_release(&h);
    return cost == 0 || paid ? 0 : AK_ERR_QUOTA;
}

int keys_quota_return(struct keys *k)
{
    struct quota_hold *v;
    size_t n;
    int64_t version, period, amount;
    int r, first = 0;

    if ((r = catalog_quota_holds(k->cat, &v, &n)) != 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        if ((amount = quota_drain(v[i].local, &version, &period)) > 0 &&
            (r = store_quota_return(k->store, v[i].terms.id, amount, version, period)) != 0 && first == 0)
            first = r; /* those credits are lost until the next refill, as on a crash */
        catalog_quota_release(&v[i]);
    }
    free(v);
    return first;
}
