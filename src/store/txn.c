/*
 * txn: every write's transaction, once, over a backend's primitives
 * (store.h). Each write locks what it changes, reads the current rows,
 * runs core's rules on them (the callbacks), writes, announces the change
 * to other instances, and commits; a commit whose answer was lost is
 * settled and the rows read again, so that the caller learns the truth.
 * No SQL here, no logging.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "store/store.h"

#define OPS(s) ((s)->ops)

/* Reads what a transaction wrote, to tell whether it committed: 0 if it did, AK_ERR_NOT_FOUND if not, else unknown. */
typedef int (*check_fn)(struct store *s, void *arg);

/* Commits; after a lost answer, settles the transaction and asks `check` (in a read transaction of its own) how it ended. */
static int commit(struct store *s, check_fn check, void *arg)
{
    int r = OPS(s)->commit(s);

    if (r != AK_ERR_OUTCOME_UNKNOWN)
        return r;
    if (check == NULL || OPS(s)->settle == NULL || OPS(s)->settle(s) != 0 || OPS(s)->begin(s) != 0)
        return AK_ERR_OUTCOME_UNKNOWN;
    r = check(s, arg);
    OPS(s)->rollback(s);
    return r == 0 ? 0 : r == AK_ERR_NOT_FOUND ? AK_ERR_UNAVAILABLE : AK_ERR_OUTCOME_UNKNOWN;
}

/* Finishes a transaction: commits when every step succeeded (r == 0), else rolls back and returns r. */
static int finish(struct store *s, int r, check_fn check, void *arg)
{
    if (r == 0)
        return commit(s, check, arg);
    OPS(s)->rollback(s);
    return r;
}

static int announce(struct store *s, int64_t id, int64_t other)
{
    int64_t ids[2] = {id, other};

    return OPS(s)->announce_keys == NULL ? 0 : OPS(s)->announce_keys(s, ids, other != 0 ? 2 : 1);
}

/* check: the row with rec's digest exists (its id, account and version copied into rec), or not. */
static int check_inserted(struct store *s, void *arg)
{
    struct key_rec *rec = arg, *row = malloc(sizeof(*row));
    int r;

    if (row == NULL)
        return AK_ERR_NOMEM;
    if ((r = OPS(s)->key_read_digest(s, rec->digest, row)) == 0) {
        rec->id = row->id;
        rec->account_id = row->account_id;
        rec->version = row->version;
    }
    free(row);
    return r;
}

struct written {
    int64_t id;
    int64_t version; /* what the transaction wrote; unused for a delete */
};

/* check: the row carries the version the update wrote (versions only grow; a newer one cannot tell). */
static int check_updated(struct store *s, void *arg)
{
    const struct written *w = arg;
    struct key_rec *row = malloc(sizeof(*row));
    int r;

    if (row == NULL)
        return AK_ERR_NOMEM;
    if ((r = OPS(s)->key_read(s, w->id, row)) == 0)
        r = row->version == w->version ? 0 : row->version < w->version ? AK_ERR_NOT_FOUND : AK_ERR_STORE;
    else if (r == AK_ERR_NOT_FOUND)
        r = AK_ERR_STORE; /* deleted since: cannot tell */
    free(row);
    return r;
}

/* check: the row is gone (by this transaction or another: either way it is deleted). */
static int check_deleted(struct store *s, void *arg)
{
    const struct written *w = arg;
    struct key_rec *row = malloc(sizeof(*row));
    int r;

    if (row == NULL)
        return AK_ERR_NOMEM;
    r = OPS(s)->key_read(s, w->id, row);
    free(row);
    return r == AK_ERR_NOT_FOUND ? 0 : r == 0 ? AK_ERR_NOT_FOUND : r;
}

int store_account_create(struct store *s, const char *name, int64_t now, struct key_rec *primary, int64_t *ret_account_id)
{
    struct key_rec *rec = malloc(sizeof(*rec));
    int64_t account_id = 0;
    int r;

    if (rec == NULL)
        return AK_ERR_NOMEM;
    *rec = *primary;
    if ((r = OPS(s)->begin(s)) != 0)
        goto out;
    if ((r = OPS(s)->account_insert(s, name, now, &account_id)) == 0 && (r = OPS(s)->account_take_key(s, account_id, 1)) == 0) {
        rec->account_id = account_id;
        rec->active = true;
        rec->primary = true;
        if ((r = OPS(s)->key_insert(s, rec)) == 0)
            r = announce(s, rec->id, 0);
    }
    if ((r = finish(s, r, check_inserted, rec)) == 0) {
        *primary = *rec;
        *ret_account_id = rec->account_id;
    }
out:
    free(rec);
    return r;
}

int store_key_insert(struct store *s, struct key_rec *rec, unsigned max_keys)
{
    struct key_rec *copy = malloc(sizeof(*copy));
    int r;

    if (copy == NULL)
        return AK_ERR_NOMEM;
    *copy = *rec;
    if ((r = OPS(s)->begin(s)) != 0)
        goto out;
    /* Taking a place under the cap locks the account's row: safe against every other instance. */
    if ((r = OPS(s)->account_take_key(s, rec->account_id, max_keys)) == 0 && (r = OPS(s)->key_insert(s, copy)) == 0)
        r = announce(s, copy->id, 0);
    if ((r = finish(s, r, check_inserted, copy)) == 0) {
        rec->id = copy->id;
        rec->version = copy->version;
    }
out:
    free(copy);
    return r;
}

/* Reads key `id` of `account_id` (another account's key does not exist for it). */
static int read_own(struct store *s, int64_t account_id, int64_t id, struct key_rec *ret)
{
    int r = OPS(s)->key_read(s, id, ret);

    return r == 0 && ret->account_id != account_id ? AK_ERR_NOT_FOUND : r;
}

int store_key_update(struct store *s, int64_t account_id, int64_t id, store_update_fn fn, void *arg, struct key_rec *ret,
                     struct key_rec *ret_demoted)
{
    struct key_rec *cur = malloc(sizeof(*cur)), *next = malloc(sizeof(*next)), *old = malloc(sizeof(*old));
    struct written w = {.id = id};
    int64_t primary = 0;
    bool demote = false;
    int r;

    if (cur == NULL || next == NULL || old == NULL) {
        r = AK_ERR_NOMEM;
        goto out;
    }
    if ((r = OPS(s)->begin(s)) != 0)
        goto out;
    if ((r = OPS(s)->account_lock(s, account_id)) == 0 && (r = read_own(s, account_id, id, cur)) == 0 &&
        (r = OPS(s)->key_primary(s, account_id, &primary)) == 0 && (r = fn(arg, cur, primary, next)) == 0) {
        next->id = cur->id;
        next->account_id = cur->account_id;
        demote = next->primary && primary != 0 && primary != id;
        if (demote && (r = read_own(s, account_id, primary, old)) == 0) {
            old->primary = false;
            r = OPS(s)->key_write(s, old);
        }
        if (r == 0 && (r = OPS(s)->key_write(s, next)) == 0)
            r = announce(s, next->id, demote ? old->id : 0);
        w.version = next->version;
    }
    if ((r = finish(s, r, check_updated, &w)) == 0) {
        *ret = *next;
        if (demote)
            *ret_demoted = *old;
        else
            ret_demoted->id = 0;
    }
out:
    free(cur);
    free(next);
    free(old);
    return r;
}

int store_key_delete(struct store *s, int64_t account_id, int64_t id, store_delete_fn fn, void *arg)
{
    struct key_rec *cur = malloc(sizeof(*cur));
    struct written w = {.id = id};
    int r;

    if (cur == NULL)
        return AK_ERR_NOMEM;
    if ((r = OPS(s)->begin(s)) != 0)
        goto out;
    if ((r = OPS(s)->account_lock(s, account_id)) == 0 && (r = read_own(s, account_id, id, cur)) == 0 && (r = fn(arg, cur)) == 0 &&
        (r = OPS(s)->key_remove(s, account_id, id)) == 0 && (r = OPS(s)->account_return_key(s, account_id)) == 0)
        r = announce(s, id, 0);
    r = finish(s, r, check_deleted, &w);
out:
    free(cur);
    return r;
}

int store_last_used_flush(struct store *s, const struct key_use *v, size_t n)
{
    int r;

    if (n == 0)
        return 0;
    if ((r = OPS(s)->begin(s)) != 0)
        return r;
    /* A maximum: uses flushed by other instances never move last_used backwards. */
    if ((r = OPS(s)->uses_raise(s, v, n)) == 0 && OPS(s)->announce_uses != NULL)
        r = OPS(s)->announce_uses(s, v, n);
    /* A lost answer needs no settling: raising last_used again is harmless, so the uses stay pending. */
    r = finish(s, r, NULL, NULL);
    return r == AK_ERR_OUTCOME_UNKNOWN ? AK_ERR_UNAVAILABLE : r;
}
