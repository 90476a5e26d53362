/*
 * policy: the rules of restricted keys that are about keys managing keys.
 * A key can never grant what it lacks: a key with scopes creates and edits
 * only keys whose scopes lie within its own, never makes a key primary and
 * never un-restricts one; a key with an allowlist gives only allowlists
 * within its own; a key with a rate limit gives only rate limits no looser
 * than its own (no higher average rate, no larger burst), which a new key
 * inherits when none is given; a key with a quota makes keys that spend
 * from the same quota, manages only those, and sets no balance or refill. Keys without restrictions (and the operator)
 * are not limited here. What a request may do with a key is judged at verification
 * (catalog_authenticate); this is for the writes. Pure: no I/O.
 */
#ifndef APIKEYD_CORE_POLICY_H
#define APIKEYD_CORE_POLICY_H

#include "core/key.h"
#include "core/validate.h"

/*
 * Whether `who` (NULL: the operator), whose own record is `self` (may be
 * NULL when who has no allowlist), may change or delete the existing key
 * `target`: 0, or AK_ERR_SCOPE when the target holds more than `who` does.
 */
int policy_may_manage(const struct principal *who, const struct key_rec *self, const struct key_rec *target);

/*
 * Sets the restrictions of `rec` (a key being made or changed) from `req`:
 * fields sent replace the current ones; for a new key (`creating`), fields
 * not sent are inherited from a restricted creator. Then checks that `rec`
 * grants nothing `who` lacks. A quota set or changed is for the refill
 * period holding `now`. 0, AK_ERR_SCOPE, or AK_ERR_INVALID for a refill
 * on a key without a quota.
 */
int policy_apply(const struct principal *who, const struct key_rec *self, const struct policy_req *req, bool creating, int64_t now,
                 struct key_rec *rec);

#endif
