/*
 * origin: what the unit tests hand to writes as their audit origin, and
 * the account creations of the old shape (name only) that most tests need.
 */
#ifndef APIKEYD_TESTS_ORIGIN_H
#define APIKEYD_TESTS_ORIGIN_H

#include <stdio.h>

#include "core/accounts.h"
#include "core/audit.h"
#include "store/store.h"

static const struct audit_origin T_ORIGIN = {.actor = ACTOR_CLI, .request_id = "unit-test"};

/* store_account_create for an account with only a name; sets *ret_account. */
static inline int t_store_account_create(struct store *st, const char *name, int64_t now, struct key_rec *primary,
                                         int64_t *ret_account)
{
    struct account_rec acct = {.created_at = now};
    int r;

    snprintf(acct.name, sizeof(acct.name), "%s", name);
    if ((r = store_account_create(st, &T_ORIGIN, &acct, primary)) == 0)
        *ret_account = acct.id;
    return r;
}

/* accounts_create for an account with only a name. */
static inline int t_account_create(struct keys *k, const char *name, int64_t *ret_account, struct key_rec *ret, char *key,
                                   size_t keysz)
{
    struct account_create_req req = {.max_keys = 0};
    struct account_rec acct;
    int r;

    snprintf(req.name, sizeof(req.name), "%s", name);
    if ((r = accounts_create(k, &T_ORIGIN, &req, &acct, ret, key, keysz)) == 0)
        *ret_account = acct.id;
    return r;
}

#endif
