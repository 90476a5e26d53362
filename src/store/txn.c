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
#include "core/timefmt.h"
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

/* Tells other instances, at commit, that these rows changed (a no-op where none listen). */
static int announce(struct store *s, enum store_topic topic, const int64_t *ids, size_t n)
{
    return OPS(s)->announce == NULL || n == 0 ? 0 : OPS(s)->announce(s, topic, ids, n);
}

/* Announces one key, or two (a primary move). */
static int announce_keys(struct store *s, int64_t id, int64_t other)
{
    int64_t ids[2] = {id, other};

    return announce(s, TOPIC_KEYS, ids, other != 0 ? 2 : 1);
}

/*
 * Appends the event that records a change, in the change's transaction.
 * `built` is the answer of the audit_*_changes call that made `changes`
 * (JSON text, freed here): its failure fails the transaction, since a
 * change must not commit without its event. A change with no field that
 * differs is no change and records nothing.
 */
static int record(struct store *s, const struct audit_origin *origin, enum audit_action action, int64_t account_id,
                  enum audit_target target, int64_t target_id, int built, char *changes)
{
    struct audit_event ev;
    int r;

    if (built != 0 || changes == NULL)
        return built;
    audit_event_init(&ev, origin, timefmt_now(), action, account_id, target, target_id);
    ev.changes = changes;
    r = OPS(s)->event_append(s, &ev);
    free(changes);
    return r;
}

/* Records a key's change from `old` to `new` (either NULL: created, deleted). */
static int record_key(struct store *s, const struct audit_origin *origin, enum audit_action action, const struct key_rec *old,
                      const struct key_rec *new)
{
    const struct key_rec *k = new != NULL ? new : old;
    char *changes;
    int built = audit_key_changes(old, new, &changes);

    return record(s, origin, action, k->account_id, TARGET_KEY, k->id, built, changes);
}

/* Records an account's change from `old` to `new` (either NULL: created, deleted). */
static int record_account(struct store *s, const struct audit_origin *origin, enum audit_action action,
                          const struct account_rec *old, const struct account_rec *new)
{
    int64_t id = new != NULL ? new->id : old->id;
    char *changes;
    int built = audit_account_changes(old, new, &changes);

    return record(s, origin, action, id, TARGET_ACCOUNT, id, built, changes);
}

/* Records an admin token's creation or revocation. */
static int record_token(struct store *s, const struct audit_origin *origin, enum audit_action action, const struct token_rec *old,
                        const struct token_rec *new)
{
    char *changes;
    int built = audit_token_changes(old, new, &changes);

    return record(s, origin, action, 0, TARGET_ADMIN_TOKEN, new != NULL ? new->id : old->id, built, changes);
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

/* check: the account row exists, or not. */
static int check_account(struct store *s, void *arg)
{
    struct account_rec *row = malloc(sizeof(*row));
    int r;

    if (row == NULL)
        return AK_ERR_NOMEM;
    r = OPS(s)->account_read(s, *(const int64_t *)arg, row);
    free(row);
    return r;
}

int store_account_create(struct store *s, const struct audit_origin *origin, struct account_rec *acct, struct key_rec *primary)
{
    struct key_rec *rec = malloc(sizeof(*rec));
    int64_t found = 0;
    int r;

    if (rec == NULL)
        return AK_ERR_NOMEM;
    *rec = *primary;
    if ((r = OPS(s)->begin(s)) != 0)
        goto out;
    /* An external_id names one account: a retried sign-up finds the first one (the unique index backs this up). */
    if (acct->external_id[0] != '\0' && (r = OPS(s)->account_find_external(s, acct->external_id, &found)) == 0)
        r = AK_ERR_EXISTS;
    else if (r == AK_ERR_NOT_FOUND)
        r = 0;
    acct->key_count = 0;
    if (r == 0 && (r = OPS(s)->account_insert(s, acct)) == 0 && (r = OPS(s)->account_take_key(s, acct->id, 1)) == 0) {
        rec->account_id = acct->id;
        rec->active = true;
        rec->primary = true;
        if ((r = OPS(s)->key_insert(s, rec)) == 0 && (r = record_account(s, origin, AUDIT_ACCOUNT_CREATED, NULL, acct)) == 0 &&
            (r = record_key(s, origin, AUDIT_KEY_CREATED, NULL, rec)) == 0)
            r = announce_keys(s, rec->id, 0);
    }
    if ((r = finish(s, r, check_inserted, rec)) == 0) {
        acct->key_count = 1;
        *primary = *rec;
    } else {
        acct->id = r == AK_ERR_EXISTS ? found : 0; /* not an id of a rolled-back row */
    }
out:
    free(rec);
    return r;
}

/* check: the account carries what the update wrote (an unchanged row cannot tell, but then neither can it matter). */
struct account_written {
    const struct account_rec *old, *new;
};

static bool same_account(const struct account_rec *a, const struct account_rec *b)
{
    return strcmp(a->name, b->name) == 0 && a->suspended == b->suspended && a->max_keys == b->max_keys;
}

static int check_account_updated(struct store *s, void *arg)
{
    const struct account_written *w = arg;
    struct account_rec *row = malloc(sizeof(*row));
    int r;

    if (row == NULL)
        return AK_ERR_NOMEM;
    if ((r = OPS(s)->account_read(s, w->new->id, row)) == 0)
        r = same_account(row, w->new) ? 0 : same_account(row, w->old) ? AK_ERR_NOT_FOUND : AK_ERR_STORE;
    else if (r == AK_ERR_NOT_FOUND)
        r = AK_ERR_STORE; /* deleted since: cannot tell */
    free(row);
    return r;
}

int store_account_update(struct store *s, const struct audit_origin *origin, int64_t id, store_account_fn fn, void *arg,
                         struct account_rec *ret)
{
    struct account_rec *cur = malloc(sizeof(*cur)), *next = malloc(sizeof(*next));
    struct account_written w = {.old = cur, .new = next};
    enum audit_action action;
    int r;

    if (cur == NULL || next == NULL) {
        r = AK_ERR_NOMEM;
        goto out;
    }
    if ((r = OPS(s)->begin(s)) != 0)
        goto out;
    if ((r = OPS(s)->account_lock(s, id)) == 0 && (r = OPS(s)->account_read(s, id, cur)) == 0 && (r = fn(arg, cur, next)) == 0) {
        next->id = cur->id;
        next->key_count = cur->key_count;
        next->created_at = cur->created_at;
        strcpy(next->external_id, cur->external_id);
        action = next->suspended == cur->suspended ? AUDIT_ACCOUNT_UPDATED
                 : next->suspended                 ? AUDIT_ACCOUNT_SUSPENDED
                                                   : AUDIT_ACCOUNT_REACTIVATED;
        if ((r = OPS(s)->account_write(s, next)) == 0 && (r = record_account(s, origin, action, cur, next)) == 0 &&
            next->suspended != cur->suspended)
            r = announce(s, TOPIC_ACCOUNTS, &id, 1);
    }
    if ((r = finish(s, r, check_account_updated, &w)) == 0)
        *ret = *next;
out:
    free(cur);
    free(next);
    return r;
}

/* check: the account is gone (by this transaction or another: either way it is deleted). */
static int check_account_deleted(struct store *s, void *arg)
{
    int r = check_account(s, arg);

    return r == AK_ERR_NOT_FOUND ? 0 : r == 0 ? AK_ERR_NOT_FOUND : r;
}

int store_account_delete(struct store *s, const struct audit_origin *origin, int64_t id, int64_t **ret_ids, size_t *ret_n)
{
    struct account_rec *cur = malloc(sizeof(*cur));
    int64_t *ids = NULL;
    size_t n = 0;
    int r;

    *ret_ids = NULL;
    *ret_n = 0;
    if (cur == NULL)
        return AK_ERR_NOMEM;
    if ((r = OPS(s)->begin(s)) != 0)
        goto out;
    if ((r = OPS(s)->account_lock(s, id)) == 0 && (r = OPS(s)->account_read(s, id, cur)) == 0 &&
        (r = OPS(s)->account_remove(s, id, &ids, &n)) == 0 &&
        (r = record_account(s, origin, AUDIT_ACCOUNT_DELETED, cur, NULL)) == 0 && (r = announce(s, TOPIC_KEYS, ids, n)) == 0)
        r = announce(s, TOPIC_ACCOUNTS, &id, 1);
    if ((r = finish(s, r, check_account_deleted, &id)) == 0) {
        *ret_ids = ids;
        *ret_n = n;
        ids = NULL;
    }
out:
    free(ids);
    free(cur);
    return r;
}

/* Reads key `id` of `account_id` (another account's key does not exist for it). */
static int read_own(struct store *s, int64_t account_id, int64_t id, struct key_rec *ret);

/* Locks key rows in id order (sorting `ids`), where the backend has row locks. */
static int lock_keys(struct store *s, int64_t *ids, size_t n);

/* Demotes the account's primary key, if it has one other than `keep`: *ret is its new row (ret->id 0 when none). */
static int demote_primary(struct store *s, const struct audit_origin *origin, int64_t account_id, int64_t keep, struct key_rec *ret)
{
    struct key_rec *old = malloc(sizeof(*old));
    int64_t primary = 0;
    int r;

    ret->id = 0;
    if (old == NULL)
        return AK_ERR_NOMEM;
    if ((r = OPS(s)->key_primary(s, account_id, &primary)) == 0 && primary != 0 && primary != keep &&
        (r = read_own(s, account_id, primary, old)) == 0) {
        *ret = *old;
        ret->primary = false;
        if ((r = OPS(s)->key_write(s, ret)) == 0)
            r = record_key(s, origin, AUDIT_KEY_UPDATED, old, ret);
    }
    free(old);
    return r;
}

/* A key made to spend an existing quota (its maker's) learns the quota's terms as they stand. */
static int shared_quota(struct store *s, struct key_rec *rec)
{
    struct quota_row row;
    int r;

    if (!rec->has_quota || rec->quota_dirty != 0 || rec->quota_id == 0)
        return 0;
    if ((r = OPS(s)->quota_read(s, rec->quota_id, &row)) != 0)
        return r;
    rec->remaining = row.remaining;
    rec->refill_amount = row.refill_amount;
    rec->refill_interval = row.interval;
    rec->quota_period = row.period;
    rec->quota_version = row.version;
    return 0;
}

int store_key_insert(struct store *s, const struct audit_origin *origin, struct key_rec *rec, unsigned default_max,
                     struct key_rec *ret_demoted)
{
    struct key_rec *copy = malloc(sizeof(*copy)), *demoted = malloc(sizeof(*demoted));
    int r;

    if (copy == NULL || demoted == NULL) {
        r = AK_ERR_NOMEM;
        goto out;
    }
    *copy = *rec;
    demoted->id = 0;
    if ((r = OPS(s)->begin(s)) != 0)
        goto out;
    /*
     * Taking a place under the cap locks the account's row: safe against
     * every other instance. Only when there was no place is the row looked
     * for, to tell a full account from a missing one.
     */
    if ((r = OPS(s)->account_take_key(s, rec->account_id, default_max)) == AK_ERR_LIMIT &&
        OPS(s)->account_lock(s, rec->account_id) == AK_ERR_NOT_FOUND)
        r = AK_ERR_NOT_FOUND;
    if (r == 0 && (!copy->primary || (r = demote_primary(s, origin, rec->account_id, 0, demoted)) == 0) &&
        (r = OPS(s)->key_insert(s, copy)) == 0 && (r = shared_quota(s, copy)) == 0 &&
        (r = record_key(s, origin, AUDIT_KEY_CREATED, NULL, copy)) == 0)
        r = announce_keys(s, copy->id, demoted->id);
    if ((r = finish(s, r, check_inserted, copy)) == 0) {
        rec->id = copy->id;
        rec->version = copy->version;
        rec->has_quota = copy->has_quota;
        rec->quota_id = copy->quota_id;
        rec->quota_version = copy->quota_version;
        rec->remaining = copy->remaining;
        rec->refill_amount = copy->refill_amount;
        rec->refill_interval = copy->refill_interval;
        rec->quota_period = copy->quota_period;
        if (ret_demoted != NULL)
            *ret_demoted = *demoted;
    }
out:
    free(copy);
    free(demoted);
    return r;
}

/* check: the admin token's row exists, or not. */
static int check_token(struct store *s, void *arg)
{
    struct token_rec *row = malloc(sizeof(*row));
    int r;

    if (row == NULL)
        return AK_ERR_NOMEM;
    r = OPS(s)->token_read(s, *(const int64_t *)arg, row);
    free(row);
    return r;
}

static int check_token_deleted(struct store *s, void *arg)
{
    int r = check_token(s, arg);

    return r == AK_ERR_NOT_FOUND ? 0 : r == 0 ? AK_ERR_NOT_FOUND : r;
}

int store_token_create(struct store *s, const struct audit_origin *origin, struct token_rec *rec)
{
    int r;

    if ((r = OPS(s)->begin(s)) != 0)
        return r;
    if ((r = OPS(s)->token_insert(s, rec)) == 0 && (r = record_token(s, origin, AUDIT_TOKEN_CREATED, NULL, rec)) == 0)
        r = announce(s, TOPIC_TOKENS, &rec->id, 1);
    return finish(s, r, check_token, &rec->id);
}

int store_token_revoke(struct store *s, const struct audit_origin *origin, int64_t id)
{
    struct token_rec *cur = malloc(sizeof(*cur));
    int r;

    if (cur == NULL)
        return AK_ERR_NOMEM;
    if ((r = OPS(s)->begin(s)) == 0) {
        if ((r = OPS(s)->token_read(s, id, cur)) == 0 && (r = OPS(s)->token_remove(s, id)) == 0 &&
            (r = record_token(s, origin, AUDIT_TOKEN_REVOKED, cur, NULL)) == 0)
            r = announce(s, TOPIC_TOKENS, &id, 1);
        r = finish(s, r, check_token_deleted, &id);
    }
    free(cur);
    return r;
}

int store_events_prune(struct store *s, int64_t before, unsigned max, int64_t *ret_n)
{
    int r;

    *ret_n = 0;
    if ((r = OPS(s)->begin(s)) != 0)
        return r;
    /* A lost answer needs no settling: pruning again is harmless. */
    r = finish(s, OPS(s)->events_prune(s, before, max, ret_n), NULL, NULL);
    return r == AK_ERR_OUTCOME_UNKNOWN ? AK_ERR_UNAVAILABLE : r;
}

int store_usage_prune(struct store *s, int64_t before, unsigned max, int64_t *ret_n)
{
    int r;

    *ret_n = 0;
    if ((r = OPS(s)->begin(s)) != 0)
        return r;
    r = finish(s, OPS(s)->usage_prune(s, before, max, ret_n), NULL, NULL);
    return r == AK_ERR_OUTCOME_UNKNOWN ? AK_ERR_UNAVAILABLE : r;
}

static int read_own(struct store *s, int64_t account_id, int64_t id, struct key_rec *ret)
{
    int r = OPS(s)->key_read(s, id, ret);

    return r == 0 && ret->account_id != account_id ? AK_ERR_NOT_FOUND : r;
}

int store_key_update(struct store *s, const struct audit_origin *origin, int64_t account_id, int64_t id, store_update_fn fn,
                     void *arg, struct key_rec *ret, struct key_rec *ret_demoted)
{
    struct key_rec *cur = malloc(sizeof(*cur)), *next = malloc(sizeof(*next)), *old = malloc(sizeof(*old));
    struct written w = {.id = id};
    int64_t primary = 0;
    int r;

    if (cur == NULL || next == NULL || old == NULL) {
        r = AK_ERR_NOMEM;
        goto out;
    }
    old->id = 0;
    if ((r = OPS(s)->begin(s)) != 0)
        goto out;
    if ((r = OPS(s)->account_lock(s, account_id)) == 0 && (r = read_own(s, account_id, id, cur)) == 0 &&
        (r = OPS(s)->key_primary(s, account_id, &primary)) == 0 && (r = fn(arg, cur, primary, next)) == 0 &&
        (!next->primary || primary == 0 || primary == id || (r = lock_keys(s, (int64_t[]){id, primary}, 2)) == 0)) {
        next->id = cur->id;
        next->account_id = cur->account_id;
        if ((!next->primary || (r = demote_primary(s, origin, account_id, id, old)) == 0) &&
            (r = OPS(s)->key_write(s, next)) == 0 && (r = record_key(s, origin, AUDIT_KEY_UPDATED, cur, next)) == 0)
            r = announce_keys(s, next->id, old->id);
        w.version = next->version;
    }
    if ((r = finish(s, r, check_updated, &w)) == 0) {
        *ret = *next;
        *ret_demoted = *old;
    }
out:
    free(cur);
    free(next);
    free(old);
    return r;
}

int store_key_delete(struct store *s, const struct audit_origin *origin, int64_t account_id, int64_t id, store_delete_fn fn,
                     void *arg)
{
    struct key_rec *cur = malloc(sizeof(*cur));
    struct written w = {.id = id};
    int r;

    if (cur == NULL)
        return AK_ERR_NOMEM;
    if ((r = OPS(s)->begin(s)) != 0)
        goto out;
    if ((r = OPS(s)->account_lock(s, account_id)) == 0 && (r = read_own(s, account_id, id, cur)) == 0 && (r = fn(arg, cur)) == 0 &&
        (r = OPS(s)->key_remove(s, account_id, id)) == 0 && (r = OPS(s)->account_return_key(s, account_id)) == 0 &&
        (r = record_key(s, origin, AUDIT_KEY_DELETED, cur, NULL)) == 0)
        r = announce_keys(s, id, 0);
    r = finish(s, r, check_deleted, &w);
out:
    free(cur);
    return r;
}

int store_uses_flush(struct store *s, const struct key_use *v, size_t n, const struct usage_row *rows, size_t nrows)
{
    int r;

    if (n == 0 && nrows == 0)
        return 0;
    if ((r = OPS(s)->begin(s)) != 0)
        return r;
    /* A maximum: uses flushed by other instances never move last_used backwards. */
    if (n != 0 && (r = OPS(s)->uses_raise(s, v, n)) == 0 && OPS(s)->announce_uses != NULL)
        r = OPS(s)->announce_uses(s, v, n);
    if (r == 0 && nrows != 0)
        r = OPS(s)->usage_add(s, rows, nrows);
    /* A lost answer is not settled: the caller knows what is safe to write again (last_used) and what is not (counts). */
    return finish(s, r, NULL, NULL);
}

int store_key_rotate(struct store *s, const struct audit_origin *origin, int64_t account_id, int64_t id, unsigned default_max,
                     store_rotate_fn fn, void *arg, struct key_rec *fresh, struct key_rec *ret_old)
{
    struct key_rec *cur = malloc(sizeof(*cur)), *old = calloc(1, sizeof(*old)), *rec = malloc(sizeof(*rec));
    struct written w = {.id = id};
    int r;

    if (cur == NULL || old == NULL || rec == NULL) {
        r = AK_ERR_NOMEM;
        goto out;
    }
    *rec = *fresh;
    if ((r = OPS(s)->begin(s)) != 0)
        goto out;
    /*
     * The old key gives up primary (and takes its expiry) before the new
     * one is inserted, so that the one-primary index never sees two; the
     * new key counts toward the cap, which it may pass up to twice over.
     */
    if ((r = OPS(s)->account_lock(s, account_id)) == 0 && (r = read_own(s, account_id, id, cur)) == 0 &&
        (r = fn(arg, cur, old, rec)) == 0) {
        old->id = cur->id;
        old->account_id = cur->account_id;
        old->rotated_to = 0;
        rec->account_id = account_id;
        rec->rotated_from = cur->id;
        if ((r = OPS(s)->key_write(s, old)) == 0 && (r = OPS(s)->account_add_key(s, account_id, default_max)) == 0 &&
            (r = OPS(s)->key_insert(s, rec)) == 0) {
            old->rotated_to = rec->id;
            if ((r = OPS(s)->key_write(s, old)) == 0 && (r = record_key(s, origin, AUDIT_KEY_CREATED, NULL, rec)) == 0 &&
                (r = record_key(s, origin, AUDIT_KEY_ROTATED, cur, old)) == 0)
                r = announce_keys(s, rec->id, old->id);
        }
        w.version = old->version;
    }
    if ((r = finish(s, r, check_updated, &w)) == 0) {
        /* Committed (or settled as committed): the transaction set the new key's id and version. */
        *fresh = *rec;
        *ret_old = *old;
    }
out:
    free(cur);
    free(old);
    free(rec);
    return r;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

/* Locks the key rows `ids` (sorted here, in place) where the backend locks rows: see store_ops.keys_lock. */
static int lock_keys(struct store *s, int64_t *ids, size_t n)
{
    if (OPS(s)->keys_lock == NULL || n == 0)
        return 0;
    qsort(ids, n, sizeof(*ids), cmp_id);
    return OPS(s)->keys_lock(s, ids, n);
}

int store_keys_update_batch(struct store *s, const struct audit_origin *origin, enum audit_action action,
                            struct store_batch_item *items, size_t n, store_update_fn fn, void *arg, struct key_rec *ret_rows)
{
    struct key_rec *cur = malloc(sizeof(*cur));
    struct audit_origin *o = malloc(sizeof(*o));
    int64_t *ids = malloc((n != 0 ? n : 1) * sizeof(*ids)), locked = 0, primary = 0;
    size_t nids = 0;
    int r;

    if (cur == NULL || o == NULL || ids == NULL) {
        r = AK_ERR_NOMEM;
        goto out;
    }
    *o = *origin;
    if ((r = OPS(s)->begin(s)) != 0)
        goto out;
    /*
     * Locks first, in one order for every writer: the accounts ascending
     * (the caller sorts the items by account), then all the key rows by id,
     * as the last_used flush takes them. Two transactions never wait on
     * each other in a cycle.
     */
    for (size_t i = 0; i < n && r == 0; i++) {
        items[i].result = 0;
        if (items[i].account_id == locked)
            continue;
        if ((r = OPS(s)->account_lock(s, items[i].account_id)) == AK_ERR_NOT_FOUND) {
            items[i].result = r;
            r = 0;
            continue; /* the next item of that account tries again, and finds it gone too */
        }
        locked = items[i].account_id;
    }
    for (size_t i = 0; i < n && r == 0; i++)
        if (items[i].result == 0)
            ids[nids++] = items[i].id;
    if (r == 0)
        r = lock_keys(s, ids, nids);
    nids = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        struct store_batch_item *it = &items[i];
        if (it->result != 0 || (it->result = read_own(s, it->account_id, it->id, cur)) == AK_ERR_NOT_FOUND)
            continue;
        if (it->result != 0 || (r = OPS(s)->key_primary(s, it->account_id, &primary)) != 0) {
            r = r != 0 ? r : it->result;
            break;
        }
        /* The rules see the current row: a key changed meanwhile (used, deactivated, reported) is skipped, not recorded twice. */
        if ((it->result = fn(arg, cur, primary, &ret_rows[i])) != 0)
            continue;
        ret_rows[i].id = cur->id;
        ret_rows[i].account_id = cur->account_id;
        o->details = it->details != NULL ? it->details : origin->details;
        if ((r = OPS(s)->key_write(s, &ret_rows[i])) == 0 && (r = record_key(s, o, action, cur, &ret_rows[i])) == 0)
            ids[nids++] = cur->id;
    }
    if (r == 0)
        r = announce(s, TOPIC_KEYS, ids, nids);
    /* No settling: every item is idempotent (its rule refuses a row already changed); a lost answer makes the caller reload. */
    r = finish(s, r, NULL, NULL);
out:
    free(cur);
    free(o);
    free(ids);
    return r;
}

int store_expiry_seen(struct store *s, const struct key_use *v, size_t n)
{
    int64_t *ids = malloc((n != 0 ? n : 1) * sizeof(*ids));
    int r;

    if (ids == NULL)
        return AK_ERR_NOMEM;
    if (n == 0 || (r = OPS(s)->begin(s)) != 0) {
        free(ids);
        return n == 0 ? 0 : r;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = v[i].id;
    if ((r = OPS(s)->expiry_seen(s, v, n)) == 0)
        r = announce(s, TOPIC_KEYS, ids, n);
    r = finish(s, r, NULL, NULL);
    free(ids);
    return r == AK_ERR_OUTCOME_UNKNOWN ? AK_ERR_UNAVAILABLE : r; /* marking again is harmless */
}

int store_keys_by_digest(struct store *s, const uint8_t (*digests)[DIGEST_LEN], size_t n, struct key_rec *recs, bool *found)
{
    int r = 0;

    for (size_t i = 0; i < n; i++)
        found[i] = false;
    if (n == 0)
        return 0;
    /* A transaction only to read: it is rolled back. */
    if ((r = OPS(s)->begin(s)) != 0)
        return r;
    for (size_t i = 0; i < n && r == 0; i++) {
        if ((r = OPS(s)->key_read_digest(s, digests[i], &recs[i])) == 0)
            found[i] = true;
        else if (r == AK_ERR_NOT_FOUND)
            r = 0;
    }
    OPS(s)->rollback(s);
    return r;
}

int store_sweep_claim(struct store *s, const char *name, int64_t now, int64_t interval, bool *ret_claimed)
{
    int r;

    *ret_claimed = false;
    if ((r = OPS(s)->begin(s)) != 0)
        return r;
    if ((r = finish(s, OPS(s)->sweep_claim(s, name, now, interval, ret_claimed), NULL, NULL)) != 0)
        *ret_claimed = false; /* not known to be ours: another instance may run it; this period may be skipped */
    return r == AK_ERR_OUTCOME_UNKNOWN ? AK_ERR_UNAVAILABLE : r;
}

int store_quota_lease(struct store *s, int64_t id, int64_t want, int64_t min, int64_t now, struct quota_lease *ret)
{
    struct quota_row row;
    int64_t period, balance, quarter;
    int r;

    memset(ret, 0, sizeof(*ret));
    if ((r = OPS(s)->begin(s)) != 0)
        return r;
    if ((r = OPS(s)->quota_read(s, id, &row)) == 0) {
        period = row.interval != REFILL_NONE ? refill_period_start((enum refill_interval)row.interval, now) : 0;
        balance = row.remaining;
        if (row.interval != REFILL_NONE && row.period < period) { /* a new period: the refill, in place of what was left */
            balance = row.refill_amount;
            row.period = period;
        }
        quarter = (balance + 3) / 4;
        ret->granted = want < quarter ? want : quarter;
        if (ret->granted < min)
            ret->granted = min;
        if (ret->granted > balance)
            ret->granted = balance;
        row.remaining = balance - ret->granted;
        ret->left = row.remaining;
        ret->period = row.interval != REFILL_NONE ? row.period : 0;
        ret->version = row.version;
        r = OPS(s)->quota_balance(s, &row);
    }
    if ((r = finish(s, r, NULL, NULL)) != 0)
        memset(ret, 0, sizeof(*ret));
    return r == AK_ERR_OUTCOME_UNKNOWN ? AK_ERR_UNAVAILABLE : r;
}

int store_quota_return(struct store *s, int64_t id, int64_t amount, int64_t version, int64_t period)
{
    struct quota_row row;
    int r;

    if (amount <= 0)
        return 0;
    if ((r = OPS(s)->begin(s)) != 0)
        return r;
    if ((r = OPS(s)->quota_read(s, id, &row)) == 0 && row.version == version &&
        (row.interval == REFILL_NONE || row.period == period)) {
        row.remaining = row.remaining + amount < QUOTA_MAX ? row.remaining + amount : QUOTA_MAX;
        r = OPS(s)->quota_balance(s, &row);
    } else if (r == AK_ERR_NOT_FOUND) {
        r = 0; /* the quota is gone with its keys */
    }
    r = finish(s, r, NULL, NULL);
    return r == AK_ERR_OUTCOME_UNKNOWN ? AK_ERR_UNAVAILABLE : r;
}
