/*
 * policy: see policy.h. Coverage of scopes is scope.h's, containment of
 * allowlists guard.h's; this file only says which of them must hold when.
 */
#include "core/policy.h"

#include <string.h>

#include "core/error.h"
#include "core/scope.h"

/*
 * Whether a rate limit of `limit` per `window` s is no looser than `who`'s:
 * no faster on average and no larger a burst (a window's worth).
 */
static bool rate_within(const struct principal *who, int64_t limit, int32_t window)
{
    return limit != 0 && limit <= who->rate_limit && limit * who->rate_window <= who->rate_limit * window;
}

/* Whether `rec` is at most as powerful as `who` (and `self`, for the allowlist). */
static bool within(const struct principal *who, const struct key_rec *self, const struct key_rec *rec)
{
    if (who->rate_limit != 0 && !rate_within(who, rec->rate_limit, rec->rate_window))
        return false;
    if (who->quota_id != 0 && (rec->quota_id != who->quota_id || rec->quota_dirty != 0))
        return false; /* a key with a quota manages only keys that spend from it, and never sets a balance */
    if (who->restricted &&
        (!rec->has_scopes || rec->primary || !scope_list_within(who->scopes, who->scopes_len, rec->scopes, strlen(rec->scopes))))
        return false;
    if (who->has_ips && (self == NULL || !rec->has_ips || !guard_ips_within(self->allowed_ips, rec->allowed_ips)))
        return false;
    return true;
}

int policy_may_manage(const struct principal *who, const struct key_rec *self, const struct key_rec *target)
{
    if (who == NULL || (!who->restricted && !who->has_ips && who->rate_limit == 0 && who->quota_id == 0))
        return 0;
    return within(who, self, target) ? 0 : AK_ERR_SCOPE;
}

int policy_apply(const struct principal *who, const struct key_rec *self, const struct policy_req *req, bool creating, int64_t now,
                 struct key_rec *rec)
{
    if (req->set_scopes) {
        rec->has_scopes = req->has_scopes;
        strcpy(rec->scopes, req->has_scopes ? req->scopes : "");
    } else if (creating && who != NULL && who->restricted) {
        rec->has_scopes = true;
        memcpy(rec->scopes, who->scopes, who->scopes_len + 1);
    }
    if (req->set_ips) {
        rec->has_ips = req->has_ips;
        strcpy(rec->allowed_ips, req->has_ips ? req->allowed_ips : "");
    } else if (creating && who != NULL && who->has_ips && self != NULL) {
        rec->has_ips = self->has_ips;
        strcpy(rec->allowed_ips, self->allowed_ips);
    }
    if (req->set_rate) {
        rec->rate_limit = req->has_rate ? req->rate_limit : 0;
        rec->rate_window = req->has_rate ? req->rate_window : 0;
    } else if (creating && who != NULL && who->rate_limit != 0) {
        rec->rate_limit = who->rate_limit;
        rec->rate_window = who->rate_window;
    }
    if (req->set_quota) {
        rec->has_quota = req->has_quota;
        rec->remaining = req->has_quota ? req->remaining : 0;
        rec->quota_dirty |= KEY_QUOTA_REMAINING;
        if (!req->has_quota && !req->set_refill) { /* unlimited: the refill goes with the quota */
            rec->refill_amount = 0;
            rec->refill_interval = REFILL_NONE;
        }
    } else if (creating && who != NULL && who->quota_id != 0) {
        /* a key with a quota makes keys that spend from it */
        rec->has_quota = true;
        rec->quota_id = who->quota_id;
    }
    if (req->set_refill) {
        if (req->has_refill && !rec->has_quota)
            return AK_ERR_INVALID;
        rec->refill_amount = req->has_refill ? req->refill_amount : 0;
        rec->refill_interval = req->has_refill ? req->refill_interval : REFILL_NONE;
        rec->quota_dirty |= KEY_QUOTA_REFILL;
    }
    if (rec->quota_dirty != 0 && rec->has_quota)
        rec->quota_period =
            rec->refill_interval != REFILL_NONE ? refill_period_start((enum refill_interval)rec->refill_interval, now) : 0;
    return policy_may_manage(who, self, rec);
}
