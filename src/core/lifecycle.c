/*
 * lifecycle: rotation, leak reports and the background sweeps. Each change
 * is one store transaction whose rules run on the current rows (another
 * instance may have changed them), then the catalog follows, as in keys.c.
 */
#include "core/lifecycle.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/admin.h"
#include "core/error.h"
#include "core/keys_impl.h"
#include "core/policy.h"
#include "core/timefmt.h"
#include "core/validate.h"
#include "store/store.h"

void lifecycle_origin_system(struct audit_origin *ret, const char *details)
{
    memset(ret, 0, sizeof(*ret));
    ret->actor = ACTOR_SYSTEM;
    ret->details = details;
}

/* ---- rotation ---- */

struct rotate_ctx {
    int64_t now, grace;
    const struct principal *who; /* NULL: the operator */
    const struct key_rec *self;  /* who's own record, when it has an allowlist */
};

/*
 * The rules of a rotation, on the old key's current row. The old key never
 * lives longer for being rotated: its expiry is the earlier of the one it
 * had and the end of the grace period. The new key is active, takes the
 * old one's place as primary, and keeps its lifetime (a 90-day key is
 * replaced by a 90-day key).
 */
static int rotate_rule(void *arg, const struct key_rec *cur, struct key_rec *old, struct key_rec *fresh)
{
    const struct rotate_ctx *rc = arg;
    int64_t until = rc->now + rc->grace;

    int r;

    if (cur->rotated_to != 0)
        return AK_ERR_ROTATED;
    if ((r = policy_may_manage(rc->who, rc->self, cur)) != 0)
        return r;
    *old = *cur;
    old->primary = false;
    /* An expired key keeps the expiry it was refused at (and its mark); a live one ends at the grace, or sooner. */
    if (!key_expired(cur, rc->now) && (cur->expires_at == 0 || cur->expires_at > until))
        old->expires_at = until;
    strcpy(fresh->name, cur->name);
    fresh->type = cur->type;
    fresh->active = true;
    fresh->primary = cur->primary;
    fresh->created_at = rc->now;
    fresh->last_used = 0;
    fresh->leaked_at = 0;
    fresh->rotated_to = 0;
    fresh->expiry_seen = false;
    fresh->activated_at = 0;
    fresh->expires_at = 0;
    /* The replacement may do exactly what the old key could. */
    fresh->has_scopes = cur->has_scopes;
    strcpy(fresh->scopes, cur->scopes);
    fresh->has_ips = cur->has_ips;
    strcpy(fresh->allowed_ips, cur->allowed_ips);
    fresh->rate_limit = cur->rate_limit;
    fresh->rate_window = cur->rate_window;
    /* One balance for both: the replacement spends from the old key's quota (never twice the credits). */
    fresh->has_quota = cur->has_quota;
    fresh->quota_id = cur->quota_id;
    fresh->remaining = cur->remaining;
    fresh->refill_amount = cur->refill_amount;
    fresh->refill_interval = cur->refill_interval;
    fresh->quota_period = cur->quota_period;
    fresh->quota_version = cur->quota_version;
    fresh->quota_dirty = 0;
    if (cur->expires_at != 0 && !cur->primary) {
        int64_t life = cur->expires_at - cur->created_at;
        if (life < 1)
            life = 1;
        if (life > VALIDATE_EXPIRY_MAX_S)
            life = VALIDATE_EXPIRY_MAX_S;
        fresh->expires_at = rc->now + life;
    }
    return 0;
}

int lifecycle_rotate(struct keys *k, const struct audit_origin *origin, const struct principal *who, int64_t account_id, int64_t id,
                     int64_t grace_s, struct key_rec *ret_new, char *ret_key, size_t keysz, struct key_rec *ret_old)
{
    struct key_rec *target = malloc(sizeof(*target)), *fresh = calloc(1, sizeof(*fresh)), *old = malloc(sizeof(*old));
    struct rotate_ctx rc = {.now = timefmt_now(), .grace = grace_s, .who = who};
    struct key_rec *self = NULL;
    int r;

    if (target == NULL || fresh == NULL || old == NULL) {
        r = AK_ERR_NOMEM;
        goto out_free;
    }
    if (who != NULL && who->has_ips) {
        if ((rc.self = self = malloc(sizeof(*self))) == NULL) {
            r = AK_ERR_NOMEM;
            goto out_free;
        }
        if (catalog_get(k->cat, who->key_id, self) != 0)
            self->has_ips = true, self->allowed_ips[0] = '\0'; /* gone meanwhile: allows nothing */
    }
    pthread_mutex_lock(&k->write_lock);
    if (who != NULL)
        r = keys_target(k, who, id, target);
    else if ((r = catalog_get(k->cat, id, target)) != 0 || target->account_id != account_id)
        r = AK_ERR_NOT_FOUND;
    if (r != 0)
        goto out;
    if (target->rotated_to != 0) {
        r = AK_ERR_ROTATED;
        goto out;
    }
    if ((r = mint(k, target->type, fresh, ret_key, keysz)) != 0)
        goto out;
    if ((r = store_key_rotate(k->store, origin, account_id, id, k->max_keys, rotate_rule, &rc, fresh, old)) != 0) {
        if (r == AK_ERR_NOT_FOUND)
            forget(k, id); /* deleted elsewhere */
        r = settle(k, r, 0);
    } else if ((r = settle(k, 0, apply_update(k, fresh, old))) == 0) {
        *ret_new = *fresh;
        *ret_old = *old;
    }
    if (r != 0)
        OPENSSL_cleanse(ret_key, keysz);
out:
    pthread_mutex_unlock(&k->write_lock);
out_free:
    if (fresh != NULL)
        OPENSSL_cleanse(fresh->digest, sizeof(fresh->digest));
    free(target);
    free(fresh);
    free(old);
    free(self);
    return r;
}

/* ---- batches: leak reports and idle keys ---- */

static int cmp_item(const void *a, const void *b)
{
    const struct store_batch_item *x = a, *y = b;

    if (x->account_id != y->account_id)
        return x->account_id < y->account_id ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * Runs one batch (sorted here) through the store and puts the changed rows
 * in the catalog. The caller holds write_lock.
 */
static int run_batch(struct keys *k, const struct audit_origin *origin, enum audit_action action, struct store_batch_item *items,
                     size_t n, store_update_fn fn, void *arg)
{
    struct key_rec *rows;
    size_t m = 0;
    int r, cr = 0;

    if (n == 0)
        return 0;
    if ((rows = calloc(n, sizeof(*rows))) == NULL)
        return AK_ERR_NOMEM;
    qsort(items, n, sizeof(*items), cmp_item);
    if ((r = store_keys_update_batch(k->store, origin, action, items, n, fn, arg, rows)) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (items[i].result == 0)
                rows[m++] = rows[i];
            else if (items[i].result == AK_ERR_NOT_FOUND)
                forget(k, items[i].id);
        }
        if (m != 0)
            cr = catalog_put_many(k->cat, rows, m);
    }
    r = settle(k, r, cr);
    for (size_t i = 0; i < n; i++)
        OPENSSL_cleanse(rows[i].digest, sizeof(rows[i].digest));
    free(rows);
    return r;
}

/* The leak rule: deactivate and mark, once. A key already reported is left as it is (AK_ERR_LEAKED). */
static int leak_rule(void *arg, const struct key_rec *cur, int64_t primary_id, struct key_rec *next)
{
    (void)primary_id;
    if (cur->leaked_at != 0)
        return AK_ERR_LEAKED;
    *next = *cur;
    next->active = false;
    next->leaked_at = *(const int64_t *)arg;
    return 0;
}

/* {"url": ..., "source": ...}: what the audit event says of where the key was found. */
static char *leak_details(const struct lifecycle_leak *l)
{
    json_t *o = json_pack("{s:s%,s:s%}", "url", l->url, strlen(l->url), "source", l->source, strlen(l->source));
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

    json_decref(o);
    return text;
}

/* Revokes a reported admin token (an operator's, the worst leak there is). 0 and *ret_true when it was one of ours. */
static int revoke_leaked_token(struct keys *k, const struct audit_origin *origin, const struct lifecycle_leak *l,
                               const uint8_t digest[DIGEST_LEN], bool *ret_true)
{
    struct audit_origin o = *origin;
    char *details;
    int64_t id;
    int r;

    *ret_true = false;
    if (admin_token_find(k, digest, &id) != 0)
        return 0;
    if ((details = leak_details(l)) == NULL)
        return AK_ERR_NOMEM;
    o.details = details;
    r = admin_token_revoke(k, &o, id);
    free(details);
    if (r == AK_ERR_NOT_FOUND)
        r = 0; /* revoked meanwhile: gone all the same */
    *ret_true = r == 0;
    return r;
}

int lifecycle_report_leaks(struct keys *k, const struct audit_origin *origin, struct lifecycle_leak *v, size_t n)
{
    size_t nn = n != 0 ? n : 1, m = 0, nmiss = 0;
    struct store_batch_item *items = calloc(nn, sizeof(*items));
    int64_t *key_of = calloc(nn, sizeof(*key_of)); /* the key each report names, 0: none */
    char **details = calloc(nn, sizeof(*details));
    uint8_t(*digests)[DIGEST_LEN] = calloc(nn, DIGEST_LEN);
    size_t *miss = calloc(nn, sizeof(*miss)); /* reports whose key this instance's memory does not hold */
    uint8_t(*miss_digests)[DIGEST_LEN] = calloc(nn, DIGEST_LEN);
    struct key_rec *recs = calloc(nn, sizeof(*recs));
    bool *found = calloc(nn, sizeof(*found)), *is_key = calloc(nn, sizeof(*is_key));
    int64_t now = timefmt_now();
    int r = 0;

    if (items == NULL || key_of == NULL || details == NULL || digests == NULL || miss == NULL || miss_digests == NULL ||
        recs == NULL || found == NULL || is_key == NULL) {
        r = AK_ERR_NOMEM;
        goto out;
    }
    if (n > LIFECYCLE_BATCH * 4) {
        r = AK_ERR_ARG;
        goto out;
    }
    /* The checksum sorts out strings that were never keys of this server before any hashing. */
    for (size_t i = 0; i < n; i++) {
        enum key_type type;
        v[i].true_positive = false;
        if (keyfmt_parse(k->brand, v[i].token, v[i].len, &type) != 0 ||
            digest_compute(&k->secret, v[i].token, v[i].len, digests[i]) != 0)
            continue;
        if (type == KEY_TYPE_ADMIN) {
            if ((r = revoke_leaked_token(k, origin, &v[i], digests[i], &v[i].true_positive)) != 0)
                goto out;
            continue;
        }
        is_key[i] = true;
        if ((r = catalog_find_digest(k->cat, digests[i], &recs[i])) == 0) {
            found[i] = true;
        } else if (r == AK_ERR_NOT_FOUND) {
            memcpy(miss_digests[nmiss], digests[i], DIGEST_LEN);
            miss[nmiss++] = i;
            r = 0;
        } else {
            goto out;
        }
    }
    /* A key made elsewhere a moment ago may not be in memory yet: the store decides, not a false negative. */
    if (nmiss != 0) {
        struct key_rec *more = calloc(nmiss, sizeof(*more));
        bool *more_found = calloc(nmiss, sizeof(*more_found));
        if (more == NULL || more_found == NULL ||
            (r = store_keys_by_digest(k->store, (const uint8_t(*)[DIGEST_LEN])miss_digests, nmiss, more, more_found)) != 0) {
            r = r != 0 ? r : AK_ERR_NOMEM;
        } else {
            for (size_t j = 0; j < nmiss; j++)
                if (more_found[j]) {
                    recs[miss[j]] = more[j];
                    found[miss[j]] = true;
                }
        }
        for (size_t j = 0; more != NULL && j < nmiss; j++)
            OPENSSL_cleanse(more[j].digest, sizeof(more[j].digest));
        free(more);
        free(more_found);
        if (r != 0)
            goto out;
    }
    for (size_t i = 0; i < n; i++) {
        bool seen = false;
        if (!is_key[i] || !found[i])
            continue;
        key_of[i] = recs[i].id;
        /* The same key twice in one report: one change, both labelled. */
        for (size_t j = 0; j < m && !seen; j++)
            seen = items[j].id == recs[i].id;
        if (seen)
            continue;
        if ((details[m] = leak_details(&v[i])) == NULL) {
            r = AK_ERR_NOMEM;
            goto out;
        }
        items[m] = (struct store_batch_item){.account_id = recs[i].account_id, .id = recs[i].id, .details = details[m]};
        m++;
    }
    pthread_mutex_lock(&k->write_lock);
    for (size_t off = 0; off < m && r == 0; off += LIFECYCLE_BATCH)
        r = run_batch(k, origin, AUDIT_KEY_LEAKED, items + off, m - off < LIFECYCLE_BATCH ? m - off : LIFECYCLE_BATCH, leak_rule,
                      &now);
    pthread_mutex_unlock(&k->write_lock);
    if (r != 0)
        goto out;
    /* A key of this server is a true positive whether this report or an earlier one marked it; a deleted one is not. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; key_of[i] != 0 && j < m; j++)
            if (items[j].id == key_of[i]) {
                v[i].true_positive = items[j].result != AK_ERR_NOT_FOUND;
                break;
            }
out:
    for (size_t i = 0; details != NULL && i < m; i++)
        free(details[i]);
    if (digests != NULL)
        OPENSSL_cleanse(digests, nn * DIGEST_LEN);
    if (miss_digests != NULL)
        OPENSSL_cleanse(miss_digests, nn * DIGEST_LEN);
    for (size_t i = 0; recs != NULL && i < nn; i++)
        OPENSSL_cleanse(recs[i].digest, sizeof(recs[i].digest));
    free(details);
    free(items);
    free(key_of);
    free(digests);
    free(miss);
    free(miss_digests);
    free(recs);
    free(found);
    free(is_key);
    return r;
}

/* ---- sweeps ---- */

/* Keys found by a walk of the catalog, for a sweep. */
struct due {
    int64_t now, cutoff;
    struct store_batch_item *v;
    size_t n, cap;
    bool full;
};

static void due_add(struct due *d, int64_t account_id, int64_t id)
{
    struct store_batch_item *nv;

    if (d->n == LIFECYCLE_BATCH) {
        d->full = true; /* the rest wait for the next sweep */
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap != 0 ? d->cap * 2 : 64;
        if ((nv = realloc(d->v, cap * sizeof(*nv))) == NULL) {
            d->full = true;
            return;
        }
        d->v = nv;
        d->cap = cap;
    }
    d->v[d->n++] = (struct store_batch_item){.account_id = account_id, .id = id};
}

/*
 * Whether a key is due for deactivation: active, not primary, not reported,
 * not expired, and last seen working (its last use, or its creation if it
 * was never used) at `cutoff` or before.
 */
static bool idle_due(bool active, bool primary, int64_t leaked_at, int64_t expires_at, bool expiry_seen, int64_t last_used,
                     int64_t created_at, int64_t activated_at, int64_t now, int64_t cutoff)
{
    bool expired = expires_at != 0 && (expiry_seen || now >= expires_at);
    int64_t seen = last_used > created_at ? last_used : created_at;

    if (activated_at > seen)
        seen = activated_at; /* reactivated by its owner: idle from then on */
    return active && !primary && leaked_at == 0 && !expired && seen <= cutoff;
}

static void idle_visit(void *arg, const struct key_view *v)
{
    struct due *d = arg;

    if (idle_due(v->active, v->primary, v->leaked_at, v->expires_at, v->expiry_seen, v->last_used, v->created_at, v->activated_at,
                 d->now, d->cutoff))
        due_add(d, v->account_id, v->id);
}

/* The idle rule, on the current row: a key used meanwhile (here or elsewhere), or changed, is left alone. */
static int idle_rule(void *arg, const struct key_rec *cur, int64_t primary_id, struct key_rec *next)
{
    const struct due *d = arg;

    if (!idle_due(cur->active, cur->primary, cur->leaked_at, cur->expires_at, cur->expiry_seen, cur->last_used, cur->created_at,
                  cur->activated_at, d->now, d->cutoff) ||
        cur->id == primary_id)
        return AK_ERR_ARG;
    *next = *cur;
    next->active = false;
    return 0;
}

/* Whether a key is due for deletion: expired at `cutoff` already, never reported leaked, not primary. */
static bool expired_due(int64_t expires_at, int64_t leaked_at, bool primary, int64_t cutoff)
{
    return expires_at != 0 && expires_at <= cutoff && leaked_at == 0 && !primary;
}

static void expired_visit(void *arg, const struct key_view *v)
{
    struct due *d = arg;

    if (expired_due(v->expires_at, v->leaked_at, v->primary, d->cutoff))
        due_add(d, v->account_id, v->id);
}

static int expired_rule(void *arg, const struct key_rec *cur)
{
    return expired_due(cur->expires_at, cur->leaked_at, cur->primary, *(const int64_t *)arg) ? 0 : AK_ERR_ARG;
}

/* Whether this instance runs sweep `name` this period (of those that share the store, exactly one does). */
static bool claim(struct keys *k, const char *name, int64_t now)
{
    bool mine = false;

    return store_sweep_claim(k->store, name, now, LIFECYCLE_SWEEP_INTERVAL_S, &mine) == 0 && mine;
}

static int sweep_idle(struct keys *k, unsigned days, int64_t now)
{
    struct due d = {.now = now, .cutoff = now - (int64_t)days * 86400};
    struct audit_origin origin;
    char details[64];
    int r = 0;

    snprintf(details, sizeof(details), "{\"reason\":\"idle\",\"idle_days\":%u}", days);
    lifecycle_origin_system(&origin, details);
    /* Batch after batch while a walk fills one (a policy just turned on): every due key within the period. */
    for (unsigned round = 0; round < LIFECYCLE_ROUNDS && r == 0 && (round == 0 || d.full); round++) {
        d.n = 0;
        d.full = false;
        catalog_walk(k->cat, idle_visit, &d);
        pthread_mutex_lock(&k->write_lock);
        r = run_batch(k, &origin, AUDIT_KEY_UPDATED, d.v, d.n, idle_rule, &d);
        pthread_mutex_unlock(&k->write_lock);
    }
    free(d.v);
    return r;
}

/* Deletes the keys `d` found, one short transaction each: a delete also gives the key's place under the cap back. */
static int delete_due(struct keys *k, const struct audit_origin *origin, const struct due *d)
{
    int r = 0;

    for (size_t i = 0; i < d->n && r == 0; i++) {
        pthread_mutex_lock(&k->write_lock);
        r = store_key_delete(k->store, origin, d->v[i].account_id, d->v[i].id, expired_rule, (void *)&d->cutoff);
        if (r == AK_ERR_NOT_FOUND) {
            forget(k, d->v[i].id);
            r = 0;
        } else if (r == AK_ERR_ARG) {
            r = 0; /* no longer due (changed elsewhere) */
        } else {
            r = settle(k, r, r == 0 ? catalog_remove(k->cat, d->v[i].id) : 0);
        }
        pthread_mutex_unlock(&k->write_lock);
    }
    return r;
}

static int sweep_expired(struct keys *k, unsigned days, int64_t now)
{
    struct due d = {.now = now, .cutoff = now - (int64_t)days * 86400};
    struct audit_origin origin;
    char details[64];
    int r = 0;

    snprintf(details, sizeof(details), "{\"reason\":\"expired\",\"retention_days\":%u}", days);
    lifecycle_origin_system(&origin, details);
    for (unsigned round = 0; round < LIFECYCLE_ROUNDS && r == 0 && (round == 0 || d.full); round++) {
        d.n = 0;
        d.full = false;
        catalog_walk(k->cat, expired_visit, &d);
        r = delete_due(k, &origin, &d);
    }
    free(d.v);
    return r;
}

int lifecycle_sweep(struct keys *k, const struct lifecycle_policy *p)
{
    int64_t now = timefmt_now();
    int r = 0, r2 = 0;

    if (p->idle_days != 0 && claim(k, "idle-keys", now))
        r = sweep_idle(k, p->idle_days, now);
    if (claim(k, "expired-keys", now))
        r2 = sweep_expired(k, p->expired_retention_days, now);
    return r != 0 ? r : r2;
}
