/*
 * keys: rules and orchestration. A write takes `write_lock`, checks the rules
 * against the catalog (exact, since every write of this process passes
 * here), commits to the store (which re-checks the cap and the one-primary
 * index inside its transaction) and only then updates the catalog.
 */
#include "core/keys.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/bearer.h"
#include "core/error.h"
#include "core/keys_impl.h"
#include "core/log.h"
#include "core/policy.h"
#include "core/timefmt.h"
#include "store/store.h"

int keys_new(struct store *store, const struct digest_secret *secret, const struct keys_config *cfg, struct keys **ret)
{
    struct keys *k;

    if (keyfmt_brand_check(cfg->brand) != 0 || cfg->max_keys == 0)
        return AK_ERR_ARG;
    if ((k = calloc(1, sizeof(*k))) == NULL || (k->cat = catalog_new()) == NULL) {
        free(k);
        return AK_ERR_NOMEM;
    }
    k->store = store;
    k->secret = *secret;
    strcpy(k->brand, cfg->brand);
    k->max_keys = cfg->max_keys;
    k->max_staleness_ms = (int64_t)cfg->max_staleness_s * 1000;
    atomic_init(&k->heard_ms, 0);
    atomic_init(&k->reload_wanted, 0);
    pthread_mutex_init(&k->write_lock, NULL);
    pthread_mutex_init(&k->flush_lock, NULL);
    pthread_mutex_init(&k->tokens.lock, NULL);
    pthread_mutex_init(&k->watch_lock, NULL);
    pthread_cond_init(&k->watch_cond, NULL);
    *ret = k;
    return 0;
}

void keys_free(struct keys *k)
{
    if (k == NULL)
        return;
    catalog_free(k->cat);
    digest_secret_wipe(&k->secret);
    free(k->tokens.v);
    pthread_mutex_destroy(&k->tokens.lock);
    pthread_mutex_destroy(&k->write_lock);
    pthread_mutex_destroy(&k->flush_lock);
    free(k->pending);
    pthread_mutex_destroy(&k->watch_lock);
    pthread_cond_destroy(&k->watch_cond);
    free(k);
}

/* Replaces the suspended set with the store's. */
static int load_suspended(struct keys *k)
{
    int64_t *ids = NULL;
    size_t n = 0;
    int r;

    if ((r = k->store->ops->suspended_load(k->store, &ids, &n)) == 0)
        r = catalog_set_suspended(k->cat, ids, n);
    free(ids);
    return r;
}

int reload_locked(struct keys *k)
{
    int r;

    atomic_store(&k->reload_wanted, 0);
    /* Suspensions first: a key is never served for an account the store has suspended. */
    if ((r = load_suspended(k)) != 0 || (r = catalog_load(k->cat, k->store)) != 0 || (r = admin_tokens_load(k)) != 0)
        atomic_store(&k->reload_wanted, 1);
    return r;
}

int keys_load(struct keys *k)
{
    int r;

    pthread_mutex_lock(&k->write_lock);
    r = reload_locked(k);
    pthread_mutex_unlock(&k->write_lock);
    return r;
}

void forget(struct keys *k, int64_t id)
{
    if (catalog_remove(k->cat, id) != 0)
        atomic_store(&k->reload_wanted, 1);
}

/*
 * After a write: `r` is the store's answer, `cr` the catalog's. A store
 * that could not tell whether it committed, or a catalog that could not
 * take a committed change, leaves the catalog behind: reload it now, and
 * if that fails too, answer that the outcome is not known (never success
 * for a change this instance does not serve) and reload on the next tick.
 */
int settle(struct keys *k, int r, int cr)
{
    if (r == AK_ERR_OUTCOME_UNKNOWN) {
        reload_locked(k); /* on failure, it asks keys_sync for the next tick */
        return r;
    }
    if (r != 0 || cr == 0)
        return r;
    return reload_locked(k) == 0 ? 0 : AK_ERR_OUTCOME_UNKNOWN;
}

int credential_digest(struct keys *k, const char *hdr, size_t len, bool admin, int wrong_kind, enum key_type *ret_type,
                      uint8_t digest[DIGEST_LEN])
{
    enum key_type type;
    const char *token;
    size_t tlen;
    int r;

    if (hdr == NULL)
        return AK_ERR_MISSING_KEY;
    if ((r = bearer_parse(hdr, len, &token, &tlen)) != 0)
        return r;
    /* The checksum refuses made-up and mistyped keys before any hashing. */
    if (keyfmt_parse(k->brand, token, tlen, &type) != 0)
        return AK_ERR_KEY_FORMAT;
    if ((type == KEY_TYPE_ADMIN) != admin)
        return wrong_kind; /* keys and admin tokens never stand in for each other */
    /* Fail closed: a shared store silent for too long may have revoked what memory still holds. */
    if (k->max_staleness_ms > 0 && k->store->ops->watch != NULL &&
        timefmt_mono_ms() - atomic_load_explicit(&k->heard_ms, memory_order_relaxed) > k->max_staleness_ms)
        return AK_ERR_STALE;
    *ret_type = type;
    return digest_compute(&k->secret, token, tlen, digest);
}

int keys_authenticate(struct keys *k, const char *hdr, size_t len, int64_t now, const struct auth_req *req, struct principal *ret)
{
    uint8_t digest[DIGEST_LEN];
    enum key_type type;
    int r;

    if ((r = credential_digest(k, hdr, len, false, AK_ERR_KEY_UNKNOWN, &type, digest)) != 0)
        return r;
    r = catalog_authenticate(k->cat, digest, now, req, ret);
    OPENSSL_cleanse(digest, sizeof(digest));
    if (r == 0 && ret->type != type)
        r = AK_ERR_KEY_UNKNOWN; /* cannot happen short of a forged digest; refuse anyway */
    return r;
}

void keys_list(struct keys *k, const struct principal *who, catalog_visit_cb cb, void *arg)
{
    catalog_list(k->cat, who->account_id, who->type == KEY_TYPE_SANDBOX, cb, arg);
}

void keys_list_views(struct keys *k, const struct principal *who, catalog_view_cb cb, void *arg)
{
    catalog_list_views(k->cat, who->account_id, who->type == KEY_TYPE_SANDBOX, cb, arg);
}

/* The caller's own record when the policy needs it (its allowlist), else NULL. Malloc'd; the caller frees it. */
static struct key_rec *self_of(struct keys *k, const struct principal *who, int *ret_err)
{
    struct key_rec *self;

    *ret_err = 0;
    if (who == NULL || !who->has_ips)
        return NULL;
    if ((self = malloc(sizeof(*self))) == NULL)
        *ret_err = AK_ERR_NOMEM;
    else if (catalog_get(k->cat, who->key_id, self) != 0)
        self->has_ips = true, self->allowed_ips[0] = '\0'; /* gone meanwhile: allows nothing */
    return self;
}

int keys_target(struct keys *k, const struct principal *who, int64_t id, struct key_rec *ret)
{
    struct key_rec *rec = malloc(sizeof(*rec));
    int r;

    if (rec == NULL)
        return AK_ERR_NOMEM;
    if ((r = catalog_get(k->cat, id, rec)) != 0 || rec->account_id != who->account_id) {
        r = AK_ERR_NOT_FOUND;
        goto out;
    }
    if (who->type == KEY_TYPE_SANDBOX && rec->type != KEY_TYPE_SANDBOX) {
        r = AK_ERR_FORBIDDEN;
        goto out;
    }
    *ret = *rec;
out:
    free(rec);
    return r;
}

int mint(struct keys *k, enum key_type type, struct key_rec *rec, char *buf, size_t bufsz)
{
    int r;

    for (int attempt = 0; attempt < 4; attempt++) {
        if ((r = keyfmt_generate(k->brand, type, buf, bufsz)) != 0)
            return r;
        if ((r = digest_compute(&k->secret, buf, strlen(buf), rec->digest)) != 0)
            goto fail;
        if (!catalog_digest_taken(k->cat, rec->digest)) {
            memcpy(rec->prefix, buf, KEYFMT_PREFIX_LEN);
            rec->prefix[KEYFMT_PREFIX_LEN] = '\0';
            return 0;
        }
    }
    r = AK_ERR_COLLISION;
fail:
    OPENSSL_cleanse(buf, bufsz);
    return r;
}

int keys_create(struct keys *k, const struct audit_origin *origin, const struct principal *who, const struct create_req *req,
                struct key_rec *ret, char *ret_key, size_t keysz)
{
    struct key_rec *rec = calloc(1, sizeof(*rec)), *self = NULL;
    int r;

    if (rec == NULL)
        return AK_ERR_NOMEM;
    if (who->type == KEY_TYPE_SANDBOX && req->type != KEY_TYPE_SANDBOX) {
        free(rec);
        return AK_ERR_FORBIDDEN;
    }
    pthread_mutex_lock(&k->write_lock);
    rec->account_id = who->account_id;
    strcpy(rec->name, req->name);
    rec->type = req->type;
    rec->active = true;
    rec->primary = false;
    rec->created_at = timefmt_now();
    rec->expires_at = req->expires_at;
    self = self_of(k, who, &r);
    if (r != 0 || (r = policy_apply(who, self, &req->policy, true, rec->created_at, rec)) != 0 ||
        (r = mint(k, req->type, rec, ret_key, keysz)) != 0)
        goto out;
    r = store_key_insert(k->store, origin, rec, k->max_keys, NULL);
    if ((r = settle(k, r, r == 0 ? catalog_put(k->cat, rec) : 0)) != 0) {
        OPENSSL_cleanse(ret_key, keysz);
        goto out;
    }
    *ret = *rec;
out:
    pthread_mutex_unlock(&k->write_lock);
    OPENSSL_cleanse(rec->digest, sizeof(rec->digest));
    free(rec);
    free(self);
    return r;
}

struct patch_ctx {
    const struct principal *who;
    const struct key_rec *self;
    const struct patch_req *req;
    int64_t now;
    int64_t seen_exp; /* the expires_at this instance refused the key at already (the store may not know yet); 0: none */
};

/*
 * The update rules, run by the store inside its transaction on the current
 * row: the PATCH applied to it must leave the account with exactly one
 * primary key, production, without an expiry, and active unless it was
 * reported leaked (a leaked primary stays primary, refused, until the
 * account rotates it or makes another key primary). An expired key stays
 * expired and a leaked key stays inactive.
 */
static int apply_patch(void *arg, const struct key_rec *cur, int64_t primary_id, struct key_rec *next)
{
    const struct patch_ctx *pc = arg;
    const struct patch_req *req = pc->req;

    int r;

    /* A restricted key changes only keys within its own powers, and only into such keys. */
    if ((r = policy_may_manage(pc->who, pc->self, cur)) != 0)
        return r;
    *next = *cur;
    /* A rotated key only winds down: its expiry never moves later, and it never becomes primary again. */
    if (cur->rotated_to != 0 && ((req->has_expires_at && (req->expires_at == 0 || req->expires_at > cur->expires_at)) ||
                                 (req->has_primary && req->primary && !cur->primary)))
        return AK_ERR_ROTATED;
    if (req->has_name)
        strcpy(next->name, req->name);
    if (req->has_active)
        next->active = req->active;
    if (req->has_primary)
        next->primary = req->primary;
    if (req->has_expires_at) {
        if ((key_expired(cur, pc->now) || (pc->seen_exp != 0 && pc->seen_exp == cur->expires_at)) &&
            req->expires_at != cur->expires_at)
            return AK_ERR_EXPIRED;
        next->expires_at = req->expires_at;
    }
    if ((r = policy_apply(pc->who, pc->self, &req->policy, false, pc->now, next)) != 0)
        return r;
    if (cur->leaked_at != 0 && next->active)
        return AK_ERR_LEAKED;
    if (next->active && !cur->active)
        next->activated_at = pc->now; /* the idle policy counts from here: a key reactivated is not idle at once */
    if (primary_id == cur->id &&
        (!next->primary || (!next->active && cur->leaked_at == 0) || next->expires_at != 0 || next->has_scopes))
        return AK_ERR_PRIMARY_PROTECTED;
    if (next->primary && primary_id != cur->id &&
        (!next->active || next->type != KEY_TYPE_PRODUCTION || next->expires_at != 0 || key_expired(next, pc->now) ||
         next->has_scopes))
        return AK_ERR_PRIMARY_INVALID;
    return 0;
}

/* A leaked key's row is the account's record of what happened: it is never deleted (but with its account). */
static int check_delete(void *arg, const struct key_rec *cur)
{
    const struct patch_ctx *pc = arg;
    int r;

    if ((r = policy_may_manage(pc->who, pc->self, cur)) != 0)
        return r;
    return cur->primary ? AK_ERR_PRIMARY_PROTECTED : cur->leaked_at != 0 ? AK_ERR_LEAKED : 0;
}

struct primaries {
    struct key_rec *v;
    size_t n, cap;
    int64_t skip1, skip2;
    int64_t before; /* the version of the promotion: only older states are stale */
};

static void collect_primary(void *arg, const struct key_rec *rec)
{
    struct primaries *p = arg;
    struct key_rec *nv;

    if (!rec->primary || rec->id == p->skip1 || rec->id == p->skip2 || rec->version == 0 || rec->version >= p->before)
        return;
    if (p->n == p->cap) {
        size_t cap = p->cap != 0 ? p->cap * 2 : 2;
        if ((nv = realloc(p->v, cap * sizeof(*nv))) == NULL)
            return;
        p->v = nv;
        p->cap = cap;
    }
    p->v[p->n] = *rec;
    p->v[p->n].primary = false;
    p->n++;
}

/*
 * Puts an update's rows in the catalog in one step. When the key became
 * primary, the store's transaction saw the account's true state, so any
 * other key the catalog still shows as primary with an older version is
 * stale (another instance's earlier move whose event has not arrived yet):
 * it is shown as demoted in the same step, keeping its version so that the
 * real event still applies. (Stores without versions have one instance.)
 */
int apply_update(struct keys *k, const struct key_rec *rec, const struct key_rec *demoted)
{
    struct primaries p = {.skip1 = rec->id, .skip2 = demoted->id, .before = rec->version};
    int r;

    if (rec->primary && rec->version != 0)
        catalog_list(k->cat, rec->account_id, false, collect_primary, &p);
    if (p.n + 2 > p.cap) {
        struct key_rec *nv = realloc(p.v, (p.n + 2) * sizeof(*nv));
        if (nv == NULL) {
            free(p.v);
            return AK_ERR_NOMEM;
        }
        p.v = nv;
    }
    if (demoted->id != 0)
        p.v[p.n++] = *demoted;
    p.v[p.n++] = *rec;
    r = catalog_put_many(k->cat, p.v, p.n);
    free(p.v);
    return r;
}

int keys_update(struct keys *k, const struct audit_origin *origin, const struct principal *who, int64_t id,
                const struct patch_req *req, struct key_rec *ret)
{
    struct key_rec *rec = malloc(sizeof(*rec)), *demoted = malloc(sizeof(*demoted));
    struct patch_ctx pc = {.who = who, .req = req, .now = timefmt_now()};
    struct key_rec *self = NULL;
    int64_t last_used;
    int r;

    if (rec == NULL || demoted == NULL) {
        r = AK_ERR_NOMEM;
        goto out_free;
    }
    if ((pc.self = self = self_of(k, who, &r)) == NULL && r != 0)
        goto out_free;
    pthread_mutex_lock(&k->write_lock);
    /* Who may touch the key never changes with its state: the catalog knows it exactly. */
    if ((r = keys_target(k, who, id, rec)) != 0)
        goto out;
    last_used = rec->last_used; /* memory is ahead of the store by up to a flush interval */
    pc.seen_exp = rec->expiry_seen ? rec->expires_at : 0;
    if ((r = store_key_update(k->store, origin, who->account_id, id, apply_patch, &pc, rec, demoted)) != 0) {
        if (r == AK_ERR_NOT_FOUND)
            forget(k, id); /* deleted elsewhere */
        r = settle(k, r, 0);
        goto out;
    }
    if ((r = settle(k, 0, apply_update(k, rec, demoted))) != 0)
        goto out;
    if (rec->last_used < last_used)
        rec->last_used = last_used;
    *ret = *rec;
out:
    pthread_mutex_unlock(&k->write_lock);
out_free:
    free(rec);
    free(demoted);
    free(self);
    return r;
}

int keys_delete(struct keys *k, const struct audit_origin *origin, const struct principal *who, int64_t id)
{
    struct key_rec *rec = malloc(sizeof(*rec)), *self = NULL;
    struct patch_ctx pc = {.who = who};
    int r;

    if (rec == NULL)
        return AK_ERR_NOMEM;
    if ((pc.self = self = self_of(k, who, &r)) == NULL && r != 0) {
        free(rec);
        return r;
    }
    pthread_mutex_lock(&k->write_lock);
    if ((r = keys_target(k, who, id, rec)) != 0)
        goto out;
    r = store_key_delete(k->store, origin, who->account_id, id, check_delete, &pc);
    if (r == AK_ERR_NOT_FOUND) {
        forget(k, id); /* deleted elsewhere: not our change to answer for, but the catalog must follow */
    } else {
        r = settle(k, r, r == 0 ? catalog_remove(k->cat, id) : 0);
    }
out:
    pthread_mutex_unlock(&k->write_lock);
    free(rec);
    free(self);
    return r;
}

/* Writes the keys newly refused as expired, so that the refusal outlives a restart and a clock stepped back. */
static int flush_expired(struct keys *k)
{
    struct key_use *v = NULL;
    size_t n = 0;
    int r;

    if ((r = catalog_collect_expired(k->cat, &v, &n)) != 0 || n == 0)
        return r;
    r = store_expiry_seen(k->store, v, n);
    catalog_mark_expired_stored(k->cat, v, n, r == 0);
    free(v);
    return r;
}

/* Keeps usage rows that could not be written for the next flush (bounded: past it the oldest are dropped). */
static void pending_keep(struct keys *k, struct usage_row *rows, size_t n)
{
    struct usage_row *nv;
    size_t keep = n < KEYS_USAGE_PENDING_MAX ? n : KEYS_USAGE_PENDING_MAX;

    if (k->npending + keep > KEYS_USAGE_PENDING_MAX)
        k->npending = 0; /* the store has been away for long: counts are lost rather than memory */
    if (k->npending + keep > k->cappending) {
        size_t cap = k->npending + keep + 1024;
        if ((nv = realloc(k->pending, cap * sizeof(*nv))) == NULL)
            return;
        k->pending = nv;
        k->cappending = cap;
    }
    memcpy(k->pending + k->npending, rows + (n - keep), keep * sizeof(*rows));
    k->npending += keep;
}

int keys_flush_uses(struct keys *k)
{
    struct catalog_flush f = {0};
    int r, re = flush_expired(k);

    pthread_mutex_lock(&k->flush_lock);
    if ((r = catalog_collect(k->cat, usage_hour_of(timefmt_now()), &f)) != 0)
        goto out;
    if (k->npending != 0) {
        pending_keep(k, f.rows, f.nrows);
        free(f.rows);
        f.rows = k->pending;
        f.nrows = k->npending;
        k->pending = NULL;
        k->npending = k->cappending = 0;
    }
    if (f.nuses == 0 && f.nrows == 0)
        goto out;
    /* last_used is a maximum: on any failure the uses stay pending and are written again. */
    if ((r = store_uses_flush(k->store, f.uses, f.nuses, f.rows, f.nrows)) == 0)
        catalog_mark_flushed(k->cat, f.uses, f.nuses);
    /*
     * Counts are sums: written twice they would count twice. A commit whose
     * answer was lost may have added them, so they are dropped (a count may
     * be missing, never doubled); a refused write keeps them for the next.
     */
    if (r != 0 && r != AK_ERR_OUTCOME_UNKNOWN)
        pending_keep(k, f.rows, f.nrows);
out:
    pthread_mutex_unlock(&k->flush_lock);
    free(f.uses);
    free(f.rows);
    return r != 0 ? r : re;
}

/* A change from elsewhere that the catalog could not take (out of memory) is caught up by a reload. */
static void watch_changed(void *arg, const struct key_rec *recs, size_t n, const int64_t *gone, size_t ngone)
{
    struct keys *k = arg;
    int r = 0;

    if (n != 0)
        r = catalog_put_many(k->cat, recs, n);
    if (r != 0 && r != AK_ERR_ARG && r != AK_ERR_COLLISION)
        atomic_store(&k->reload_wanted, 1);
    for (size_t i = 0; i < ngone; i++)
        forget(k, gone[i]);
}

#define CLOCK_SKEW_S 5 /* how far ahead of ours another instance's clock may be */

/* Uses read back from the store; a time further in the future than clock skew explains is not believed. */
static void watch_used(void *arg, const struct key_use *uses, size_t n)
{
    struct keys *k = arg;
    int64_t limit = timefmt_now() + CLOCK_SKEW_S;

    for (size_t i = 0; i < n; i++)
        if (uses[i].at > 0 && uses[i].at <= limit)
            catalog_note_uses(k->cat, &uses[i], 1);
}

/* Accounts suspended or reactivated elsewhere; on failure the next sync reloads everything. */
static void watch_suspended(void *arg, const int64_t *ids, size_t n)
{
    struct keys *k = arg;

    if (catalog_set_suspended(k->cat, ids, n) != 0)
        atomic_store(&k->reload_wanted, 1);
}

static void watch_tokens(void *arg)
{
    struct keys *k = arg;

    if (admin_tokens_load(k) != 0)
        atomic_store(&k->reload_wanted, 1);
}

static void watch_heard(void *arg)
{
    struct keys *k = arg;

    atomic_store_explicit(&k->heard_ms, timefmt_mono_ms(), memory_order_relaxed);
    if (atomic_load_explicit(&k->store_lost, memory_order_relaxed) && atomic_exchange(&k->store_lost, false))
        log_msg(LOG_INFO, "store regained: changes are followed again");
}

static int watch_resync(void *arg)
{
    struct keys *k = arg;
    int r;

    /* On failure the watcher asks again; meanwhile the catalog keeps answering (until it is too stale). */
    atomic_fetch_add_explicit(&k->resyncs, 1, memory_order_relaxed);
    if ((r = keys_load(k)) != 0)
        log_msg(LOG_ERROR, "resync: cannot reload the keys from the store: %s; retrying", ak_strerror(r));
    else if (atomic_load_explicit(&k->resyncs, memory_order_relaxed) > 1)
        log_msg(LOG_INFO, "resync: keys reloaded from the store (%zu keys)", catalog_size(k->cat));
    if (r == 0) {
        watch_heard(k);
        pthread_mutex_lock(&k->watch_lock);
        k->watch_loaded = true;
        pthread_cond_broadcast(&k->watch_cond);
        pthread_mutex_unlock(&k->watch_lock);
    }
    return r;
}

static const struct store_watch_ops WATCH_OPS = {
    .changed = watch_changed,
    .used = watch_used,
    .suspended = watch_suspended,
    .tokens = watch_tokens,
    .resync = watch_resync,
    .heard = watch_heard,
};

void keys_watch_check(struct keys *k)
{
    int64_t silent;

    if (!keys_watched(k))
        return;
    silent = timefmt_mono_ms() - atomic_load_explicit(&k->heard_ms, memory_order_relaxed);
    if (silent >= KEYS_STORE_LOST_MS && !atomic_exchange(&k->store_lost, true))
        log_msg(LOG_ERROR, "store lost: not heard from for %lld ms; verifying from memory", (long long)silent);
}

void keys_counts(struct keys *k, size_t *ret_keys, size_t *ret_accounts)
{
    *ret_keys = catalog_size(k->cat);
    *ret_accounts = catalog_accounts(k->cat);
}

int64_t keys_heard_age_ms(struct keys *k)
{
    return keys_watched(k) ? timefmt_mono_ms() - atomic_load_explicit(&k->heard_ms, memory_order_relaxed) : -1;
}

uint64_t keys_resyncs(struct keys *k)
{
    uint64_t n = atomic_load_explicit(&k->resyncs, memory_order_relaxed);

    return n > 0 ? n - 1 : 0; /* the first is the start-up load */
}

bool keys_watched(const struct keys *k)
{
    return k->store->ops->watch != NULL;
}

int keys_watch(struct keys *k, int timeout_ms)
{
    struct timespec until;
    int r = 0;

    if (!keys_watched(k))
        return 0;
    if ((r = k->store->ops->watch(k->store, &WATCH_OPS, k)) != 0)
        return r;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&k->watch_lock);
    while (!k->watch_loaded && r == 0)
        if (pthread_cond_timedwait(&k->watch_cond, &k->watch_lock, &until) != 0)
            r = AK_ERR_UNAVAILABLE;
    if (k->watch_loaded)
        r = 0;
    pthread_mutex_unlock(&k->watch_lock);
    return r;
}

int keys_sync(struct keys *k, bool *ret_reloaded)
{
    bool changed = false;
    int r;

    *ret_reloaded = false;
    if ((r = k->store->ops->poll_changed(k->store, &changed)) != 0)
        return r;
    if (!changed && !atomic_load(&k->reload_wanted))
        return 0;
    if ((r = keys_load(k)) == 0)
        *ret_reloaded = true;
    return r;
}
