/*
 * catalog: the in-memory key index. All maps point at the same entries; an
 * entry is freed only under the exclusive lock, and readers never keep a
 * pointer past their shared lock, so no entry is used after it is freed.
 */
#include "core/catalog.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/u64map.h"
#include "store/store.h"

struct entry {
    int64_t id;
    int64_t account_id;
    uint8_t digest[DIGEST_LEN];
    char prefix[KEYFMT_PREFIX_LEN + 1];
    enum key_type type;
    bool active;
    bool primary;
    int64_t created_at;
    _Atomic int64_t last_used;
    int64_t flushed; /* last_used value known to be in the store; touched under the exclusive lock or by the flusher */
    char *name;
};

struct account {
    int64_t id;
    size_t n, cap;
    struct entry **keys; /* sorted by id */
};

struct maps {
    struct u64map by_digest; /* first 8 digest bytes -> entry */
    struct u64map by_id;     /* id -> entry */
    struct u64map accounts;  /* account id -> account */
};

struct catalog {
    pthread_rwlock_t lock;
    struct maps m;
};

static uint64_t digest_slot(const uint8_t d[DIGEST_LEN])
{
    uint64_t v;

    memcpy(&v, d, sizeof(v));
    return v;
}

static void entry_free(struct entry *e)
{
    if (e != NULL) {
        free(e->name);
        free(e);
    }
}

static void maps_init(struct maps *m)
{
    u64map_init(&m->by_digest);
    u64map_init(&m->by_id);
    u64map_init(&m->accounts);
}

static void maps_release(struct maps *m)
{
    for (size_t i = 0; i < m->by_id.cap; i++)
        if (m->by_id.vals[i] != NULL)
            entry_free(m->by_id.vals[i]);
    for (size_t i = 0; i < m->accounts.cap; i++) {
        struct account *a = m->accounts.vals[i];
        if (a != NULL) {
            free(a->keys);
            free(a);
        }
    }
    u64map_release(&m->by_digest);
    u64map_release(&m->by_id);
    u64map_release(&m->accounts);
}

static void fill_entry(struct entry *e, const struct key_rec *rec)
{
    e->id = rec->id;
    e->account_id = rec->account_id;
    memcpy(e->digest, rec->digest, DIGEST_LEN);
    memcpy(e->prefix, rec->prefix, sizeof(e->prefix));
    e->type = rec->type;
    e->active = rec->active;
    e->primary = rec->primary;
    e->created_at = rec->created_at;
}

static void entry_to_rec(const struct entry *e, struct key_rec *rec)
{
    size_t n = strlen(e->name);

    rec->id = e->id;
    rec->account_id = e->account_id;
    memcpy(rec->name, e->name, n + 1);
    rec->type = e->type;
    memcpy(rec->prefix, e->prefix, sizeof(rec->prefix));
    memcpy(rec->digest, e->digest, DIGEST_LEN);
    rec->active = e->active;
    rec->primary = e->primary;
    rec->created_at = e->created_at;
    rec->last_used = atomic_load_explicit(&((struct entry *)e)->last_used, memory_order_relaxed);
}

static int account_add(struct maps *m, struct entry *e)
{
    struct account *a = u64map_get(&m->accounts, (uint64_t)e->account_id);
    size_t pos;

    if (a == NULL) {
        if ((a = calloc(1, sizeof(*a))) == NULL)
            return AK_ERR_NOMEM;
        a->id = e->account_id;
        if (u64map_put(&m->accounts, (uint64_t)a->id, a) != 0) {
            free(a);
            return AK_ERR_NOMEM;
        }
    }
    if (a->n == a->cap) {
        size_t cap = a->cap != 0 ? a->cap * 2 : 4;
        struct entry **keys = realloc(a->keys, cap * sizeof(*keys));
        if (keys == NULL)
            return AK_ERR_NOMEM;
        a->keys = keys;
        a->cap = cap;
    }
    /* ids grow, so this is nearly always an append */
    for (pos = a->n; pos > 0 && a->keys[pos - 1]->id > e->id; pos--)
        ;
    memmove(a->keys + pos + 1, a->keys + pos, (a->n - pos) * sizeof(*a->keys));
    a->keys[pos] = e;
    a->n++;
    return 0;
}

static void account_drop(struct maps *m, const struct entry *e)
{
    struct account *a = u64map_get(&m->accounts, (uint64_t)e->account_id);

    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n; i++) {
        if (a->keys[i] == e) {
            memmove(a->keys + i, a->keys + i + 1, (a->n - i - 1) * sizeof(*a->keys));
            a->n--;
            break;
        }
    }
    if (a->n == 0) {
        u64map_del(&m->accounts, (uint64_t)a->id);
        free(a->keys);
        free(a);
    }
}

/* Adds a new entry built from `rec` to `m`. */
static int maps_insert(struct maps *m, const struct key_rec *rec, int64_t last_used, int64_t flushed)
{
    struct entry *e;
    int r = AK_ERR_NOMEM;

    if (u64map_get(&m->by_digest, digest_slot(rec->digest)) != NULL)
        return AK_ERR_COLLISION;
    if ((e = calloc(1, sizeof(*e))) == NULL || (e->name = strdup(rec->name)) == NULL)
        goto fail;
    fill_entry(e, rec);
    atomic_init(&e->last_used, last_used);
    e->flushed = flushed;
    if (u64map_put(&m->by_id, (uint64_t)e->id, e) != 0)
        goto fail;
    if (u64map_put(&m->by_digest, digest_slot(e->digest), e) != 0 || account_add(m, e) != 0) {
        u64map_del(&m->by_id, (uint64_t)e->id);
        u64map_del(&m->by_digest, digest_slot(e->digest));
        goto fail;
    }
    return 0;
fail:
    entry_free(e);
    return r;
}

struct catalog *catalog_new(void)
{
    struct catalog *cat = calloc(1, sizeof(*cat));

    if (cat == NULL)
        return NULL;
    pthread_rwlock_init(&cat->lock, NULL);
    maps_init(&cat->m);
    return cat;
}

void catalog_free(struct catalog *cat)
{
    if (cat == NULL)
        return;
    maps_release(&cat->m);
    pthread_rwlock_destroy(&cat->lock);
    free(cat);
}

static int load_one(void *arg, const struct key_rec *rec)
{
    return maps_insert(arg, rec, rec->last_used, rec->last_used);
}

int catalog_load(struct catalog *cat, struct store *store)
{
    struct maps fresh, old;
    int r;

    maps_init(&fresh);
    if ((r = store->ops->key_load(store, load_one, &fresh)) != 0) {
        maps_release(&fresh);
        return r;
    }
    pthread_rwlock_wrlock(&cat->lock);
    /* Keep uses recorded in memory that the store has not seen yet. */
    for (size_t i = 0; i < fresh.by_id.cap; i++) {
        struct entry *e = fresh.by_id.vals[i], *o;
        if (e == NULL || (o = u64map_get(&cat->m.by_id, (uint64_t)e->id)) == NULL)
            continue;
        int64_t mine = atomic_load(&o->last_used), theirs = atomic_load(&e->last_used);
        if (mine > theirs) {
            atomic_store(&e->last_used, mine);
            e->flushed = o->flushed < theirs ? theirs : o->flushed;
        }
    }
    old = cat->m;
    cat->m = fresh;
    pthread_rwlock_unlock(&cat->lock);
    maps_release(&old);
    return 0;
}

int catalog_put(struct catalog *cat, const struct key_rec *rec)
{
    struct entry *e;
    char *name = NULL;
    int r = 0;

    pthread_rwlock_wrlock(&cat->lock);
    e = u64map_get(&cat->m.by_id, (uint64_t)rec->id);
    if (e == NULL) {
        r = maps_insert(&cat->m, rec, rec->last_used, rec->last_used);
        goto out;
    }
    if (memcmp(e->digest, rec->digest, DIGEST_LEN) != 0 || e->account_id != rec->account_id) {
        r = AK_ERR_ARG; /* a key's digest and account never change */
        goto out;
    }
    if (strcmp(e->name, rec->name) != 0) {
        if ((name = strdup(rec->name)) == NULL) {
            r = AK_ERR_NOMEM;
            goto out;
        }
        free(e->name);
        e->name = name;
    }
    e->active = rec->active;
    e->primary = rec->primary;
out:
    pthread_rwlock_unlock(&cat->lock);
    return r;
}

void catalog_remove(struct catalog *cat, int64_t id)
{
    struct entry *e;

    pthread_rwlock_wrlock(&cat->lock);
    if ((e = u64map_del(&cat->m.by_id, (uint64_t)id)) != NULL) {
        u64map_del(&cat->m.by_digest, digest_slot(e->digest));
        account_drop(&cat->m, e);
        entry_free(e);
    }
    pthread_rwlock_unlock(&cat->lock);
}

int catalog_get(struct catalog *cat, int64_t id, struct key_rec *ret)
{
    struct entry *e;
    int r = AK_ERR_NOT_FOUND;

    pthread_rwlock_rdlock(&cat->lock);
    if ((e = u64map_get(&cat->m.by_id, (uint64_t)id)) != NULL) {
        entry_to_rec(e, ret);
        r = 0;
    }
    pthread_rwlock_unlock(&cat->lock);
    return r;
}

bool catalog_digest_taken(struct catalog *cat, const uint8_t digest[DIGEST_LEN])
{
    bool taken;

    pthread_rwlock_rdlock(&cat->lock);
    taken = u64map_get(&cat->m.by_digest, digest_slot(digest)) != NULL;
    pthread_rwlock_unlock(&cat->lock);
    return taken;
}

int catalog_authenticate(struct catalog *cat, const uint8_t digest[DIGEST_LEN], int64_t now, struct principal *ret)
{
    struct entry *e;
    int r = AK_ERR_KEY_UNKNOWN;

    pthread_rwlock_rdlock(&cat->lock);
    e = u64map_get(&cat->m.by_digest, digest_slot(digest));
    if (e == NULL || CRYPTO_memcmp(e->digest, digest, DIGEST_LEN) != 0)
        goto out;
    if (!e->active) {
        r = AK_ERR_KEY_INACTIVE;
        goto out;
    }
    /* Write only when the second changes, so that busy keys do not bounce a cache line. */
    if (atomic_load_explicit(&e->last_used, memory_order_relaxed) < now)
        atomic_store_explicit(&e->last_used, now, memory_order_relaxed);
    ret->key_id = e->id;
    ret->account_id = e->account_id;
    ret->type = e->type;
    memcpy(ret->prefix, e->prefix, sizeof(ret->prefix));
    r = 0;
out:
    pthread_rwlock_unlock(&cat->lock);
    return r;
}

void catalog_list(struct catalog *cat, int64_t account_id, bool sandbox_only, catalog_visit_cb cb, void *arg)
{
    struct key_rec *rec = malloc(sizeof(*rec));
    struct account *a;

    if (rec == NULL)
        return;
    pthread_rwlock_rdlock(&cat->lock);
    if ((a = u64map_get(&cat->m.accounts, (uint64_t)account_id)) != NULL) {
        for (size_t i = 0; i < a->n; i++) {
            if (sandbox_only && a->keys[i]->type != KEY_TYPE_SANDBOX)
                continue;
            entry_to_rec(a->keys[i], rec);
            cb(arg, rec);
        }
    }
    pthread_rwlock_unlock(&cat->lock);
    free(rec);
}

size_t catalog_account_keys(struct catalog *cat, int64_t account_id, int64_t *ret_primary_id)
{
    struct account *a;
    int64_t primary = 0;
    size_t n = 0;

    pthread_rwlock_rdlock(&cat->lock);
    if ((a = u64map_get(&cat->m.accounts, (uint64_t)account_id)) != NULL) {
        n = a->n;
        for (size_t i = 0; i < a->n; i++)
            if (a->keys[i]->primary)
                primary = a->keys[i]->id;
    }
    pthread_rwlock_unlock(&cat->lock);
    *ret_primary_id = primary;
    return n;
}

int catalog_collect_uses(struct catalog *cat, struct key_use **ret, size_t *ret_n)
{
    struct key_use *v = NULL, *nv;
    size_t n = 0, cap = 0;
    int r = 0;

    pthread_rwlock_rdlock(&cat->lock);
    for (size_t i = 0; i < cat->m.by_id.cap; i++) {
        struct entry *e = cat->m.by_id.vals[i];
        int64_t at;
        if (e == NULL || (at = atomic_load_explicit(&e->last_used, memory_order_relaxed)) <= e->flushed)
            continue;
        if (n == cap) {
            cap = cap != 0 ? cap * 2 : 64;
            if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
                r = AK_ERR_NOMEM;
                break;
            }
            v = nv;
        }
        v[n].id = e->id;
        v[n].at = at;
        n++;
    }
    pthread_rwlock_unlock(&cat->lock);
    if (r != 0) {
        free(v);
        return r;
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

void catalog_mark_flushed(struct catalog *cat, const struct key_use *uses, size_t n)
{
    pthread_rwlock_wrlock(&cat->lock);
    for (size_t i = 0; i < n; i++) {
        struct entry *e = u64map_get(&cat->m.by_id, (uint64_t)uses[i].id);
        if (e != NULL && e->flushed < uses[i].at)
            e->flushed = uses[i].at;
    }
    pthread_rwlock_unlock(&cat->lock);
}

size_t catalog_size(struct catalog *cat)
{
    size_t n;

    pthread_rwlock_rdlock(&cat->lock);
    n = cat->m.by_id.len;
    pthread_rwlock_unlock(&cat->lock);
    return n;
}
