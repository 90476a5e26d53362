/*
 * catalog: the in-memory key index, read without locks.
 *
 * Layout: a world holds three pointer tables (open addressing, linear
 * probing, tombstones for deletion so that concurrent probes never miss a
 * live item): keys by digest, keys by id, accounts by id. An account points
 * to an immutable, id-ordered array of its keys. Entries are immutable
 * versions; only their usage record (last_used) is written by readers, and
 * it is shared by all versions of a key.
 *
 * Writers (serialized by `wlock`) build new versions, publish them with
 * release stores and retire what they replaced through ebr; readers bracket
 * every access with ebr_enter/ebr_exit.
 */
#include "core/catalog.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/ebr.h"
#include "core/error.h"
#include "core/guard.h"
#include "core/quota.h"
#include "core/ratelimit.h"
#include "core/scope.h"
#include "core/timefmt.h"
#include "store/store.h"

struct usage {
    _Atomic int64_t last_used;         /* written by readers on every authenticated request (when the second changes) */
    _Atomic int64_t flushed;           /* the value known to be in the store */
    _Atomic unsigned refs;             /* worlds holding the key: a reload adopts the record, so no use is lost */
    _Atomic uint32_t verified;         /* uses since the last usage flush (usage.h) */
    _Atomic(struct rate_state *) rate; /* the rate limit's counts here; NULL until the key is first counted */
    /* What a key only has once it was refused: NULL until then (most keys never are; 16 bytes a key saved). */
    _Atomic(struct refusals *) refusals;
};

struct refusals {
    /*
     * Refused as expired: the expires_at it was refused at (0: never), and
     * the one the store holds the mark for. Sticky like the use record it
     * lives in, and tied to that expiry: a version of the key with another
     * expires_at is judged afresh.
     */
    _Atomic int64_t seen_exp;
    _Atomic int64_t stored_exp;
    /* Refusals since the last usage flush, by enum usage_count (index 0 unused). */
    _Atomic uint32_t n[USAGE_NCOUNTS];
};

/* What few keys have, kept out of line; keys with none of it share NO_RARE. */
struct rare {
    int64_t rotated_from, rotated_to, leaked_at;
    struct guard *guard; /* scopes and allowlist; NULL: unrestricted (guard.h) */
    int64_t rate_limit;  /* 0: none (limits.h) */
    int32_t rate_window;
    struct quota_terms quota;  /* id 0: none */
    struct quota_local *local; /* the quota's credits here, shared by every key that has it; the catalog's (qmap) */
};

static const struct rare NO_RARE;

/* A key registered for the rate exchange: its id and usage record, on which the registry holds a reference. */
struct rate_reg {
    int64_t id;
    struct usage *usage;
};

struct entry {
    int64_t id;
    int64_t account_id;
    int64_t created_at;
    int64_t version;
    int64_t expires_at; /* 0: never */
    int64_t activated_at;
    struct usage *usage;
    const struct rare *rare; /* NO_RARE or owned by this version */
    uint8_t digest[DIGEST_LEN];
    char prefix[KEYFMT_PREFIX_LEN + 1];
    uint8_t type;
    bool active;
    bool primary;
    uint16_t name_json_len;
    char name_json[]; /* NUL-terminated */
};

struct keylist {
    size_t n;
    size_t cap;        /* room in e[]: more than n only in a world being loaded (load_append) */
    struct entry *e[]; /* by id */
};

struct account {
    int64_t id;
    _Atomic(struct keylist *) keys;
};

typedef uint64_t (*ptable_key_fn)(const void *item);

struct ptable {
    size_t mask;
    _Atomic size_t live; /* items; written by the writer, read by catalog_size */
    size_t used;         /* items and tombstones */
    _Atomic(void *) slot[];
};

struct world {
    _Atomic(struct ptable *) by_digest;
    _Atomic(struct ptable *) by_id;
    _Atomic(struct ptable *) accounts;
};

/* A set of account ids, ascending, immutable once published. */
struct idset {
    size_t n;
    int64_t ids[];
};

struct catalog {
    struct ebr ebr;
    _Atomic(struct world *) world;
    _Atomic(struct idset *) suspended; /* NULL: none */
    pthread_mutex_t wlock;
    _Atomic unsigned expiry_pending; /* keys newly seen expired, for catalog_collect_expired */
    /* ids of deleted keys, sorted: ids are never reused, so a late event about one is ignored */
    int64_t *gone;
    size_t ngone, capgone;
    /*
     * Restrictions shared by keys that have the same ones (under wlock): an
     * open-addressing set of guards, each holding one reference of its own.
     * Keys are often made from a few templates (inherited, rotated), so a
     * million keys need as many guards as there are distinct policies.
     */
    struct guard **guards;
    size_t gmask, gused;
    uint64_t gseed;
    /*
     * The credits leased here, one record per quota (so the keys of a
     * rotation spend one block), made when a key with the quota is first
     * put and kept until the catalog is freed; under wlock.
     */
    struct quota_local **qmap;
    size_t qmask, qused;
    /* keys counted against a rate limit, for the exchange (catalog_rate_each); under rlock */
    pthread_mutex_t rlock;
    struct rate_reg *rated;
    size_t nrated, caprated;
    _Atomic uint32_t rate_ppm; /* the default share of new rate states (0: all) */
    _Atomic bool rate_shared;  /* register rate states */
    /* counts of keys removed before their usage was flushed (under wlock) */
    struct usage_row *leftover;
    size_t nleftover, capleftover;
};

static char tomb_marker;

/* ---- allocation, with a fault hook for tests ---- */

static _Atomic long fault_countdown = -1;

void catalog_fault_inject(long after)
{
    atomic_store(&fault_countdown, after);
}

/* Whether this allocation is the one catalog_fault_inject asked to fail. */
static bool fault_hit(void)
{
    long n = atomic_load_explicit(&fault_countdown, memory_order_relaxed);

    while (n >= 0 && !atomic_compare_exchange_weak(&fault_countdown, &n, n - 1))
        ;
    return n == 0;
}

static void *cat_malloc(size_t n)
{
    return fault_hit() ? NULL : malloc(n);
}

static void *cat_calloc(size_t n, size_t size)
{
    return fault_hit() ? NULL : calloc(n, size);
}

static void *cat_realloc(void *p, size_t n)
{
    return fault_hit() ? NULL : realloc(p, n);
}

#define GONE_MAX (1u << 20) /* deleted ids remembered */
#define TOMB ((void *)&tomb_marker)

/* ---- keys of the three tables ---- */

static uint64_t digest_key(const uint8_t d[DIGEST_LEN])
{
    uint64_t v;

    memcpy(&v, d, sizeof(v));
    return v;
}

static uint64_t entry_digest_key(const void *item)
{
    return digest_key(((const struct entry *)item)->digest);
}

static uint64_t entry_id_key(const void *item)
{
    return (uint64_t)((const struct entry *)item)->id;
}

static uint64_t account_key(const void *item)
{
    return (uint64_t)((const struct account *)item)->id;
}

/* Retires `p` through `ebr`, or frees it at once when there is no reader to wait for (ebr == NULL: a private world). */
static void retire(struct ebr *ebr, void *p, void (*fn)(void *))
{
    if (p == NULL)
        return;
    if (ebr == NULL)
        fn(p);
    else
        ebr_retire(ebr, p, fn); /* on failure the object leaks: never freed under a reader */
}

/* ---- pointer tables ---- */

static size_t home(uint64_t key, size_t mask)
{
    key ^= key >> 30;
    key *= 0xbf58476d1ce4e5b9ULL;
    key ^= key >> 27;
    key *= 0x94d049bb133111ebULL;
    key ^= key >> 31;
    return (size_t)key & mask;
}

static struct ptable *ptable_new(size_t cap)
{
    struct ptable *t = cat_calloc(1, sizeof(*t) + cap * sizeof(t->slot[0]));

    if (t != NULL)
        t->mask = cap - 1;
    return t;
}

/* Reader-safe lookup. */
static void *ptable_find(const struct ptable *t, uint64_t key, ptable_key_fn kf)
{
    if (t == NULL)
        return NULL;
    for (size_t i = home(key, t->mask);; i = (i + 1) & t->mask) {
        void *p = atomic_load_explicit(&((struct ptable *)t)->slot[i], memory_order_acquire);
        if (p == NULL)
            return NULL;
        if (p != TOMB && kf(p) == key)
            return p;
    }
}

/* Inserts into a table known to have room and not to hold `key`. */
static void ptable_place(struct ptable *t, uint64_t key, void *item)
{
    size_t i = home(key, t->mask);
    void *p;

    while ((p = atomic_load_explicit(&t->slot[i], memory_order_relaxed)) != NULL && p != TOMB)
        i = (i + 1) & t->mask;
    if (p == NULL)
        t->used++;
    t->live++;
    atomic_store_explicit(&t->slot[i], item, memory_order_release);
}

/* Replaces the table behind `tp` with one of room for `want` items; the old one is retired. */
static int ptable_grow(struct ebr *ebr, _Atomic(struct ptable *) *tp, size_t want, ptable_key_fn kf)
{
    struct ptable *old = atomic_load_explicit(tp, memory_order_relaxed), *t;
    size_t cap = 16;

    while (cap / 2 < want)
        cap *= 2;
    if ((t = ptable_new(cap)) == NULL)
        return AK_ERR_NOMEM;
    for (size_t i = 0; old != NULL && i <= old->mask; i++) {
        void *p = atomic_load_explicit(&old->slot[i], memory_order_relaxed);
        if (p != NULL && p != TOMB)
            ptable_place(t, kf(p), p);
    }
    atomic_store_explicit(tp, t, memory_order_release);
    retire(ebr, old, free);
    return 0;
}

/* Writer: adds `item` under `key`, known to be absent (growing the table when needed). */
static int ptable_add(struct ebr *ebr, _Atomic(struct ptable *) *tp, uint64_t key, void *item, ptable_key_fn kf)
{
    struct ptable *t = atomic_load_explicit(tp, memory_order_relaxed);
    int r;

    if (t == NULL || (t->used + 1) * 2 > t->mask + 1) {
        if ((r = ptable_grow(ebr, tp, (t != NULL ? t->live : 0) + 1, kf)) != 0)
            return r;
        t = atomic_load_explicit(tp, memory_order_relaxed);
    }
    ptable_place(t, key, item);
    return 0;
}

/* Writer: stores `item` under `key`, replacing an item with the same key. */
static int ptable_set(struct ebr *ebr, _Atomic(struct ptable *) *tp, uint64_t key, void *item, ptable_key_fn kf)
{
    struct ptable *t = atomic_load_explicit(tp, memory_order_relaxed);

    for (size_t i = t != NULL ? home(key, t->mask) : 0; t != NULL; i = (i + 1) & t->mask) {
        void *p = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
        if (p == NULL)
            break;
        if (p != TOMB && kf(p) == key) {
            atomic_store_explicit(&t->slot[i], item, memory_order_release);
            return 0;
        }
    }
    return ptable_add(ebr, tp, key, item, kf);
}

/* Writer: removes `key`, leaving a tombstone so that concurrent probes continue past it. */
static void *ptable_del(_Atomic(struct ptable *) *tp, uint64_t key, ptable_key_fn kf)
{
    struct ptable *t = atomic_load_explicit(tp, memory_order_relaxed);

    if (t == NULL)
        return NULL;
    for (size_t i = home(key, t->mask);; i = (i + 1) & t->mask) {
        void *p = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
        if (p == NULL)
            return NULL;
        if (p != TOMB && kf(p) == key) {
            atomic_store_explicit(&t->slot[i], TOMB, memory_order_release);
            t->live--;
            return p;
        }
    }
}

/* ---- names ---- */

/* Encodes `name` as a JSON string literal with jansson (or verbatim in quotes when nothing needs escaping). */
static char *encode_name(const char *name, size_t *ret_len)
{
    size_t n = strlen(name);
    bool plain = true;
    json_t *s;
    char *out;

    for (size_t i = 0; i < n && plain; i++)
        plain = name[i] != '"' && name[i] != '\\' && (unsigned char)name[i] >= 0x20;
    if (plain) {
        if ((out = malloc(n + 3)) == NULL)
            return NULL;
        out[0] = '"';
        memcpy(out + 1, name, n);
        out[n + 1] = '"';
        out[n + 2] = '\0';
        *ret_len = n + 2;
        return out;
    }
    if ((s = json_stringn(name, n)) == NULL)
        return NULL;
    out = json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(s);
    if (out != NULL)
        *ret_len = strlen(out);
    return out;
}

/* Decodes a name literal into `out` (KEY_NAME_MAX_BYTES + 1 bytes). */
static void decode_name(const struct entry *e, char *out)
{
    json_t *s;

    if (memchr(e->name_json, '\\', e->name_json_len) == NULL) {
        memcpy(out, e->name_json + 1, e->name_json_len - 2u);
        out[e->name_json_len - 2u] = '\0';
        return;
    }
    s = json_loadb(e->name_json, e->name_json_len, JSON_DECODE_ANY, NULL);
    if (json_is_string(s) && json_string_length(s) <= KEY_NAME_MAX_BYTES)
        memcpy(out, json_string_value(s), json_string_length(s) + 1);
    else
        out[0] = '\0';
    json_decref(s);
}

/* ---- entries and lists ---- */

/* Writer: the guard for these restrictions, shared with keys that have the same (a new reference), NULL when none. */
static int guard_get(struct catalog *cat, const char *scopes, const char *ips, struct guard **ret)
{
    uint64_t h;
    size_t i;
    struct guard *g;
    int r;

    *ret = NULL;
    if (scopes == NULL && ips == NULL)
        return 0;
    h = guard_hash(scopes, ips, cat->gseed);
    for (i = (size_t)h & cat->gmask; cat->guards != NULL && cat->guards[i] != NULL; i = (i + 1) & cat->gmask)
        if (guard_is(cat->guards[i], scopes, ips)) {
            *ret = guard_ref(cat->guards[i]);
            return 0;
        }
    if ((r = guard_new(scopes, ips, &g)) != 0)
        return r;
    if (cat->guards == NULL || (cat->gused + 1) * 2 > cat->gmask + 1) {
        size_t cap = cat->guards != NULL ? (cat->gmask + 1) * 2 : 64;
        struct guard **t = cat_calloc(cap, sizeof(*t));
        if (t == NULL) {
            *ret = g; /* not shared, still correct */
            return 0;
        }
        for (size_t j = 0; cat->guards != NULL && j <= cat->gmask; j++)
            if (cat->guards[j] != NULL) {
                size_t k =
                    (size_t)guard_hash(guard_scopes(cat->guards[j], &(size_t){0}), guard_ips_text(cat->guards[j]), cat->gseed) &
                    (cap - 1);
                while (t[k] != NULL)
                    k = (k + 1) & (cap - 1);
                t[k] = cat->guards[j];
            }
        free(cat->guards);
        cat->guards = t;
        cat->gmask = cap - 1;
        for (i = (size_t)h & cat->gmask; cat->guards[i] != NULL; i = (i + 1) & cat->gmask)
            ;
    }
    cat->guards[i] = guard_ref(g);
    cat->gused++;
    *ret = g;
    return 0;
}

/* Writer: drops the set's reference of guards no key holds any more (the set is rebuilt without them). */
static void guards_prune(struct catalog *cat)
{
    struct guard **old = cat->guards;
    size_t n = old != NULL ? cat->gmask + 1 : 0;

    cat->guards = NULL;
    cat->gmask = 0;
    cat->gused = 0;
    for (size_t j = 0; j < n; j++) {
        struct guard *g = old[j], *again;
        if (g == NULL)
            continue;
        if (guard_refs(g) > 1) {
            size_t slen;
            const char *sc = guard_scopes(g, &slen);
            if (guard_get(cat, sc, guard_ips_text(g), &again) == 0)
                guard_free(again); /* re-entered: the set took its own reference */
        }
        guard_free(g);
    }
    free(old);
}

/* The refusal record of `u`, made on first need; NULL only when out of memory. */
static struct refusals *refusals_get(struct usage *u)
{
    struct refusals *v = atomic_load_explicit(&u->refusals, memory_order_acquire), *fresh;

    if (v != NULL)
        return v;
    if ((fresh = calloc(1, sizeof(*fresh))) == NULL)
        return NULL;
    if (atomic_compare_exchange_strong(&u->refusals, &v, fresh))
        return fresh;
    free(fresh); /* another reader made it first: v is theirs */
    return v;
}

/*
 * The credits record of quota `id` (made on first need; writer, under
 * wlock), told that the quota is at `version` at least: credits leased
 * from an older version are void from now on, whichever key spends them.
 * NULL when out of memory.
 */
static struct quota_local *quota_local_for(struct catalog *cat, int64_t id, int64_t version)
{
    struct quota_local *q;
    size_t i;
    int64_t seen;

    if (cat->qmap == NULL || (cat->qused + 1) * 2 > cat->qmask + 1) {
        size_t cap = cat->qmap != NULL ? (cat->qmask + 1) * 2 : 64;
        struct quota_local **t = calloc(cap, sizeof(*t));
        if (t == NULL)
            return NULL;
        for (size_t j = 0; cat->qmap != NULL && j <= cat->qmask; j++) {
            if (cat->qmap[j] == NULL)
                continue;
            for (i = home((uint64_t)cat->qmap[j]->id, cap - 1); t[i] != NULL; i = (i + 1) & (cap - 1))
                ;
            t[i] = cat->qmap[j];
        }
        free(cat->qmap);
        cat->qmap = t;
        cat->qmask = cap - 1;
    }
    for (i = home((uint64_t)id, cat->qmask); (q = cat->qmap[i]) != NULL; i = (i + 1) & cat->qmask)
        if (q->id == id)
            break;
    if (q == NULL) {
        if ((q = calloc(1, sizeof(*q))) == NULL)
            return NULL;
        q->id = id;
        cat->qmap[i] = q;
        cat->qused++;
    }
    seen = atomic_load(&q->min_version);
    while (seen < version && !atomic_compare_exchange_weak(&q->min_version, &seen, version))
        ;
    return q;
}

/* The expires_at `u` was refused at (0: never). */
static int64_t seen_exp(struct usage *u)
{
    struct refusals *v = atomic_load_explicit(&u->refusals, memory_order_acquire);

    return v != NULL ? atomic_load_explicit(&v->seen_exp, memory_order_relaxed) : 0;
}

static struct entry *entry_new(struct catalog *cat, const struct key_rec *rec, struct usage *usage)
{
    size_t jlen;
    char *json = encode_name(rec->name, &jlen);
    struct entry *e = NULL;
    struct rare *x = NULL;
    struct guard *g = NULL;
    struct refusals *seen = NULL;
    struct quota_local *local = NULL;

    if (json == NULL || jlen > UINT16_MAX ||
        guard_get(cat, rec->has_scopes ? rec->scopes : NULL, rec->has_ips ? rec->allowed_ips : NULL, &g) != 0)
        goto fail;
    if ((g != NULL || rec->rotated_from != 0 || rec->rotated_to != 0 || rec->leaked_at != 0 || rec->rate_limit != 0 ||
         rec->has_quota) &&
        (x = cat_malloc(sizeof(*x))) == NULL)
        goto fail;
    if (rec->expiry_seen && rec->expires_at != 0 && (seen = refusals_get(usage)) == NULL)
        goto fail;
    if (rec->has_quota && (local = quota_local_for(cat, rec->quota_id, rec->quota_version)) == NULL)
        goto fail;
    if ((e = cat_malloc(offsetof(struct entry, name_json) + jlen + 1)) == NULL)
        goto fail;
    if (x != NULL) {
        x->rotated_from = rec->rotated_from;
        x->rotated_to = rec->rotated_to;
        x->leaked_at = rec->leaked_at;
        x->guard = g;
        x->rate_limit = rec->rate_limit;
        x->rate_window = rec->rate_window;
        x->quota = (struct quota_terms){0};
        x->local = local;
        if (rec->has_quota)
            x->quota = (struct quota_terms){.id = rec->quota_id,
                                            .remaining = rec->remaining,
                                            .refill_amount = rec->refill_amount,
                                            .interval = (enum refill_interval)rec->refill_interval,
                                            .period = rec->quota_period,
                                            .version = rec->quota_version};
    }
    e->rare = x != NULL ? x : &NO_RARE;
    e->id = rec->id;
    e->account_id = rec->account_id;
    e->created_at = rec->created_at;
    e->version = rec->version;
    e->expires_at = rec->expires_at;
    e->activated_at = rec->activated_at;
    e->usage = usage;
    if (seen != NULL) {
        atomic_store(&seen->seen_exp, rec->expires_at); /* the store's word */
        atomic_store(&seen->stored_exp, rec->expires_at);
    }
    memcpy(e->digest, rec->digest, DIGEST_LEN);
    memcpy(e->prefix, rec->prefix, sizeof(e->prefix));
    e->prefix[KEYFMT_PREFIX_LEN] = '\0';
    e->type = (uint8_t)rec->type;
    e->active = rec->active;
    e->primary = rec->primary;
    e->name_json_len = (uint16_t)jlen;
    memcpy(e->name_json, json, jlen + 1);
    free(json);
    return e;
fail:
    free(json);
    free(x);
    guard_free(g);
    return NULL;
}

/* Frees one version of a key (its usage lives on in the next version). */
static void entry_free_version(void *p)
{
    struct entry *e = p;

    if (e != NULL && e->rare != &NO_RARE) {
        guard_free(e->rare->guard);
        free((void *)e->rare);
    }
    free(e);
}

static void usage_free(struct usage *u)
{
    free(atomic_load(&u->rate));
    free(atomic_load(&u->refusals));
    free(u);
}

/* Drops one holder's reference on `u` (a world's, or the rate registry's): the last frees it. */
static void usage_release(struct usage *u)
{
    if (atomic_fetch_sub(&u->refs, 1) == 1)
        usage_free(u);
}

/* Frees a key for good in one world: the version, and its usage record unless another world holds it. */
static void entry_free_key(void *p)
{
    struct entry *e = p;

    if (e != NULL)
        usage_release(e->usage);
    entry_free_version(e);
}

/* A usage record for a key first seen, held by one world. */
static struct usage *usage_new(int64_t last_used)
{
    struct usage *u = cat_malloc(sizeof(*u));

    if (u != NULL) {
        atomic_init(&u->last_used, last_used);
        atomic_init(&u->flushed, last_used);
        atomic_init(&u->refs, 1);
        atomic_init(&u->verified, 0);
        atomic_init(&u->refusals, NULL);
        atomic_init(&u->rate, NULL);
    }
    return u;
}

static void entry_view(const struct entry *e, struct key_view *v)
{
    v->id = e->id;
    v->account_id = e->account_id;
    v->type = (enum key_type)e->type;
    v->active = e->active;
    v->primary = e->primary;
    v->created_at = e->created_at;
    v->last_used = atomic_load_explicit(&e->usage->last_used, memory_order_relaxed);
    v->prefix = e->prefix;
    v->expires_at = e->expires_at;
    v->rotated_from = e->rare->rotated_from;
    v->rotated_to = e->rare->rotated_to;
    v->leaked_at = e->rare->leaked_at;
    v->expiry_seen = e->expires_at != 0 && seen_exp(e->usage) == e->expires_at;
    v->activated_at = e->activated_at;
    v->name_json = e->name_json;
    v->name_json_len = e->name_json_len;
    v->guard = e->rare->guard;
    v->rate_limit = e->rare->rate_limit;
    v->rate_window = e->rare->rate_window;
    v->has_quota = e->rare->quota.id != 0;
    v->remaining = v->has_quota ? quota_left(e->rare->local, &e->rare->quota, timefmt_now()) : 0;
    v->refill_amount = e->rare->quota.refill_amount;
    v->refill_interval = e->rare->quota.interval;
}

static void entry_to_rec(const struct entry *e, struct key_rec *rec)
{
    rec->id = e->id;
    rec->account_id = e->account_id;
    decode_name(e, rec->name);
    rec->type = (enum key_type)e->type;
    memcpy(rec->prefix, e->prefix, sizeof(rec->prefix));
    memcpy(rec->digest, e->digest, DIGEST_LEN);
    rec->active = e->active;
    rec->primary = e->primary;
    rec->created_at = e->created_at;
    rec->last_used = atomic_load_explicit(&e->usage->last_used, memory_order_relaxed);
    rec->version = e->version;
    rec->expires_at = e->expires_at;
    rec->rotated_from = e->rare->rotated_from;
    rec->rotated_to = e->rare->rotated_to;
    rec->leaked_at = e->rare->leaked_at;
    rec->activated_at = e->activated_at;
    rec->expiry_seen = e->expires_at != 0 && seen_exp(e->usage) == e->expires_at;
    size_t slen;
    const char *scopes = guard_scopes(e->rare->guard, &slen);
    rec->has_scopes = scopes != NULL;
    memcpy(rec->scopes, scopes != NULL ? scopes : "", slen + 1);
    rec->has_ips = guard_has_ips(e->rare->guard);
    guard_format_ips(e->rare->guard, rec->allowed_ips);
    rec->rate_limit = e->rare->rate_limit;
    rec->rate_window = e->rare->rate_window;
    rec->has_quota = e->rare->quota.id != 0;
    rec->quota_id = e->rare->quota.id;
    rec->remaining = e->rare->quota.remaining;
    rec->refill_amount = e->rare->quota.refill_amount;
    rec->refill_interval = (int32_t)e->rare->quota.interval;
    rec->quota_period = e->rare->quota.period;
    rec->quota_version = e->rare->quota.version;
    rec->quota_dirty = 0;
}

/* A copy of `old` (may be NULL) with `drop` removed and/or `add` put in id order (either may be NULL). */
static struct keylist *keylist_edit(const struct keylist *old, const struct entry *drop, struct entry *add)
{
    size_t n = old != NULL ? old->n : 0, k = 0;
    struct keylist *l = cat_malloc(sizeof(*l) + (n + 1) * sizeof(l->e[0]));

    if (l == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        struct entry *e = old->e[i];
        if (drop != NULL && e->id == drop->id)
            continue;
        if (add != NULL && add->id < e->id) {
            l->e[k++] = add;
            add = NULL;
        }
        l->e[k++] = e;
    }
    if (add != NULL)
        l->e[k++] = add;
    l->n = k;
    l->cap = n + 1;
    return l;
}

/* ---- worlds ---- */

static void world_free(void *p)
{
    struct world *w = p;
    struct ptable *t;

    if (w == NULL)
        return;
    if ((t = atomic_load(&w->by_id)) != NULL)
        for (size_t i = 0; i <= t->mask; i++) {
            void *e = atomic_load(&t->slot[i]);
            if (e != NULL && e != TOMB)
                entry_free_key(e);
        }
    if ((t = atomic_load(&w->accounts)) != NULL)
        for (size_t i = 0; i <= t->mask; i++) {
            struct account *a = atomic_load(&t->slot[i]);
            if (a != NULL && a != TOMB) {
                free(atomic_load(&a->keys));
                free(a);
            }
        }
    free(atomic_load(&w->by_digest));
    free(atomic_load(&w->by_id));
    free(atomic_load(&w->accounts));
    free(w);
}

static struct world *world_new(void)
{
    struct world *w = cat_calloc(1, sizeof(*w));

    if (w != NULL) {
        atomic_init(&w->by_digest, NULL);
        atomic_init(&w->by_id, NULL);
        atomic_init(&w->accounts, NULL);
    }
    return w;
}

/*
 * Writer: adds a brand-new key `e` to `w`, which takes `e` in every case:
 * on failure `e` is freed, through ebr when a reader may have found it
 * (it was published in the id table before the digest table failed to grow).
 */
static int world_insert(struct ebr *ebr, struct world *w, struct entry *e)
{
    struct account *a = ptable_find(atomic_load_explicit(&w->accounts, memory_order_relaxed), (uint64_t)e->account_id, account_key);
    struct keylist *old, *l;
    int r;

    if (a == NULL) {
        if ((a = cat_malloc(sizeof(*a))) == NULL) {
            entry_free_key(e);
            return AK_ERR_NOMEM;
        }
        a->id = e->account_id;
        atomic_init(&a->keys, NULL);
        if ((r = ptable_set(ebr, &w->accounts, (uint64_t)a->id, a, account_key)) != 0) {
            free(a);
            entry_free_key(e);
            return r;
        }
    }
    old = atomic_load_explicit(&a->keys, memory_order_relaxed);
    if ((l = keylist_edit(old, NULL, e)) == NULL) {
        entry_free_key(e);
        return AK_ERR_NOMEM;
    }
    if ((r = ptable_set(ebr, &w->by_id, (uint64_t)e->id, e, entry_id_key)) != 0) {
        free(l);
        entry_free_key(e);
        return r;
    }
    if ((r = ptable_set(ebr, &w->by_digest, digest_key(e->digest), e, entry_digest_key)) != 0) {
        /* Published by id already: a reader may hold it. */
        ptable_del(&w->by_id, (uint64_t)e->id, entry_id_key);
        free(l);
        retire(ebr, e, entry_free_key);
        return r;
    }
    atomic_store_explicit(&a->keys, l, memory_order_release);
    retire(ebr, old, free);
    return 0;
}

/*
 * Adds `e` to `w`, a world being loaded that no reader can see, with keys
 * coming in ascending id order (key_load's): like world_insert, without its
 * copies. A key list grows in place by doubling rather than being copied for
 * every key; the tables are probed once, without the replace scan (ids are
 * unique in the store; digests were checked by the caller). Takes `e`.
 */
static int load_append(struct world *w, struct entry *e)
{
    struct account *a = ptable_find(atomic_load_explicit(&w->accounts, memory_order_relaxed), (uint64_t)e->account_id, account_key);
    struct keylist *l;
    int r;

    if (a == NULL || (l = atomic_load_explicit(&a->keys, memory_order_relaxed)) == NULL ||
        (l->n != 0 && l->e[l->n - 1]->id >= e->id))
        return world_insert(NULL, w, e); /* the general case: not in id order, or a new account */
    if (l->n == l->cap) {
        size_t cap = l->cap * 2;
        struct keylist *nl = realloc(l, sizeof(*l) + cap * sizeof(l->e[0]));
        if (nl == NULL) {
            entry_free_key(e);
            return AK_ERR_NOMEM;
        }
        nl->cap = cap;
        atomic_store_explicit(&a->keys, l = nl, memory_order_relaxed);
    }
    if ((r = ptable_add(NULL, &w->by_id, (uint64_t)e->id, e, entry_id_key)) != 0 ||
        (r = ptable_add(NULL, &w->by_digest, digest_key(e->digest), e, entry_digest_key)) != 0) {
        ptable_del(&w->by_id, (uint64_t)e->id, entry_id_key);
        entry_free_key(e);
        return r;
    }
    l->e[l->n++] = e;
    return 0;
}

/* ---- the catalog ---- */

struct catalog *catalog_new(void)
{
    struct catalog *cat = calloc(1, sizeof(*cat));
    struct world *w = world_new();

    if (cat == NULL || w == NULL || ebr_init(&cat->ebr) != 0) {
        free(cat);
        free(w);
        return NULL;
    }
    atomic_init(&cat->world, w);
    pthread_mutex_init(&cat->wlock, NULL);
    pthread_mutex_init(&cat->rlock, NULL);
    if (RAND_bytes((unsigned char *)&cat->gseed, sizeof(cat->gseed)) != 1)
        cat->gseed = (uint64_t)(uintptr_t)cat;
    return cat;
}

/* Writer: whether key `id` was deleted (binary search), and where it would go. */
static bool gone_find(const struct catalog *cat, int64_t id, size_t *ret_pos)
{
    size_t lo = 0, hi = cat->ngone;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cat->gone[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *ret_pos = lo;
    return lo < cat->ngone && cat->gone[lo] == id;
}

static int gone_add(struct catalog *cat, int64_t id)
{
    size_t pos;

    if (gone_find(cat, id, &pos))
        return 0;
    if (cat->ngone == GONE_MAX) {
        /* Bounded: forget the oldest half (lowest ids: the longest gone, whose late events are long past). */
        memmove(cat->gone, cat->gone + GONE_MAX / 2, (GONE_MAX - GONE_MAX / 2) * sizeof(*cat->gone));
        cat->ngone -= GONE_MAX / 2;
        if (!gone_find(cat, id, &pos) && pos == 0 && cat->ngone != 0 && id < cat->gone[0])
            return 0; /* older than everything kept */
    }
    if (cat->ngone == cat->capgone) {
        size_t cap = cat->capgone != 0 ? cat->capgone * 2 : 64;
        int64_t *g = cat_realloc(cat->gone, cap * sizeof(*g));
        if (g == NULL)
            return AK_ERR_NOMEM;
        cat->gone = g;
        cat->capgone = cap;
    }
    memmove(cat->gone + pos + 1, cat->gone + pos, (cat->ngone - pos) * sizeof(*cat->gone));
    cat->gone[pos] = id;
    cat->ngone++;
    return 0;
}

void catalog_free(struct catalog *cat)
{
    if (cat == NULL)
        return;
    free(cat->gone);
    free(cat->leftover);
    for (size_t j = 0; j < cat->nrated; j++)
        usage_release(cat->rated[j].usage);
    free(cat->rated);
    pthread_mutex_destroy(&cat->rlock);
    free(atomic_load(&cat->suspended));
    ebr_release(&cat->ebr);
    world_free(atomic_load(&cat->world));
    for (size_t j = 0; cat->guards != NULL && j <= cat->gmask; j++)
        guard_free(cat->guards[j]);
    free(cat->guards);
    for (size_t j = 0; cat->qmap != NULL && j <= cat->qmask; j++)
        free(cat->qmap[j]);
    free(cat->qmap);
    pthread_mutex_destroy(&cat->wlock);
    free(cat);
}

static void raise_to(_Atomic int64_t *v, int64_t at)
{
    int64_t cur = atomic_load(v);

    while (cur < at && !atomic_compare_exchange_weak(v, &cur, at))
        ;
}

/*
 * Loading runs as a pipeline of two threads, since a million keys are most
 * of a start-up: the caller's thread reads the store and makes the entries
 * (SQLite, parsing, allocation), an inserter thread puts them in the fresh
 * world (hash probes, key lists) in batches, in the same order. Measured
 * with a million keys on 2 cores: see docs/benchmarks.md, issue 12.
 */
#define LOAD_BATCH 1024

struct load_batch {
    size_t n;
    struct entry *e[LOAD_BATCH];
};

struct load_ctx {
    struct catalog *cat;
    struct world *fresh; /* being built, private (to the inserter while it runs) */
    struct world *old;   /* the published one (its writer holds wlock) */
    struct load_batch *filling;
    bool threaded; /* an inserter runs; otherwise batches are inserted inline */
    pthread_t inserter;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct load_batch *handoff; /* full, for the inserter */
    struct load_batch *spare;   /* emptied by the inserter, for reuse */
    bool done;
    _Atomic int err; /* the inserter's first failure: the walk stops */
};

/* Puts a batch in `w` in order, or after a failure (`err`) frees what is left. The first failure. */
static int insert_batch(struct world *w, struct load_batch *b, int err)
{
    for (size_t i = 0; i < b->n; i++) {
        struct entry *e = b->e[i];
        if (err != 0)
            entry_free_key(e);
        else if (ptable_find(atomic_load_explicit(&w->by_digest, memory_order_relaxed), digest_key(e->digest), entry_digest_key) !=
                 NULL) {
            entry_free_key(e);
            err = AK_ERR_COLLISION;
        } else {
            err = load_append(w, e);
        }
    }
    b->n = 0;
    return err;
}

static void *inserter_main(void *arg)
{
    struct load_ctx *lc = arg;
    struct load_batch *b;
    int r;

    pthread_mutex_lock(&lc->mu);
    for (;;) {
        while (lc->handoff == NULL && !lc->done)
            pthread_cond_wait(&lc->cv, &lc->mu);
        if ((b = lc->handoff) == NULL)
            break; /* done, and nothing left */
        lc->handoff = NULL;
        pthread_cond_broadcast(&lc->cv);
        pthread_mutex_unlock(&lc->mu);
        if ((r = insert_batch(lc->fresh, b, atomic_load(&lc->err))) != 0)
            atomic_store(&lc->err, r);
        pthread_mutex_lock(&lc->mu);
        if (lc->spare == NULL)
            lc->spare = b;
        else
            free(b);
    }
    pthread_mutex_unlock(&lc->mu);
    return NULL;
}

/* Hands the filled batch over (inline when no inserter runs); the next one to fill is a spare or new. */
static int load_flush(struct load_ctx *lc)
{
    struct load_batch *b = lc->filling;
    int r;

    if (b == NULL || b->n == 0)
        return atomic_load(&lc->err);
    if (!lc->threaded) {
        if ((r = insert_batch(lc->fresh, b, atomic_load(&lc->err))) != 0)
            atomic_store(&lc->err, r);
        return r;
    }
    pthread_mutex_lock(&lc->mu);
    while (lc->handoff != NULL)
        pthread_cond_wait(&lc->cv, &lc->mu);
    lc->handoff = b;
    lc->filling = lc->spare;
    lc->spare = NULL;
    pthread_cond_broadcast(&lc->cv);
    pthread_mutex_unlock(&lc->mu);
    return atomic_load(&lc->err);
}

/*
 * Makes the entry of one key from the store. A key the old world holds
 * keeps its usage record (adopted, not copied): a use recorded on the old
 * version while the load runs, or by a reader still in the old world after
 * it is replaced, lands in the record the fresh world serves and flushes.
 */
static int load_one(void *arg, const struct key_rec *rec)
{
    struct load_ctx *lc = arg;
    struct entry *o = ptable_find(atomic_load_explicit(&lc->old->by_id, memory_order_relaxed), (uint64_t)rec->id, entry_id_key);
    struct usage *u;
    struct entry *e;

    if (lc->filling == NULL && (lc->filling = calloc(1, sizeof(*lc->filling))) == NULL)
        return AK_ERR_NOMEM;
    if (o != NULL && memcmp(o->digest, rec->digest, DIGEST_LEN) == 0) {
        u = o->usage;
        atomic_fetch_add(&u->refs, 1);
        raise_to(&u->last_used, rec->last_used);
        raise_to(&u->flushed, rec->last_used);
    } else if ((u = usage_new(rec->last_used)) == NULL) {
        return AK_ERR_NOMEM;
    }
    if ((e = entry_new(lc->cat, rec, u)) == NULL) {
        if (atomic_fetch_sub(&u->refs, 1) == 1)
            usage_free(u);
        return AK_ERR_NOMEM;
    }
    lc->filling->e[lc->filling->n++] = e;
    return lc->filling->n == LOAD_BATCH ? load_flush(lc) : atomic_load(&lc->err);
}

/* Ends the pipeline: what was read is inserted (r == 0) or freed; the inserter is joined. The first failure. */
static int load_finish(struct load_ctx *lc, int r)
{
    if (r == 0)
        r = load_flush(lc);
    if (lc->filling != NULL)
        insert_batch(lc->fresh, lc->filling, AK_ERR_ARG); /* frees what was not handed over */
    if (lc->threaded) {
        pthread_mutex_lock(&lc->mu);
        lc->done = true;
        pthread_cond_broadcast(&lc->cv);
        pthread_mutex_unlock(&lc->mu);
        pthread_join(lc->inserter, NULL);
        pthread_mutex_destroy(&lc->mu);
        pthread_cond_destroy(&lc->cv);
    }
    free(lc->filling);
    free(lc->spare);
    return r != 0 ? r : atomic_load(&lc->err);
}

int catalog_load(struct catalog *cat, struct store *store)
{
    struct load_ctx lc = {.cat = cat};
    struct world *old;
    int r;

    /* Built privately (nothing can read it yet), then published in one store. */
    if ((lc.fresh = world_new()) == NULL)
        return AK_ERR_NOMEM;
    atomic_init(&lc.err, 0);
    if (pthread_mutex_init(&lc.mu, NULL) == 0) {
        if (pthread_cond_init(&lc.cv, NULL) != 0)
            pthread_mutex_destroy(&lc.mu);
        else if (!(lc.threaded = pthread_create(&lc.inserter, NULL, inserter_main, &lc) == 0)) {
            pthread_cond_destroy(&lc.cv);
            pthread_mutex_destroy(&lc.mu);
        }
    }
    pthread_mutex_lock(&cat->wlock);
    old = lc.old = atomic_load_explicit(&cat->world, memory_order_relaxed);
    r = load_finish(&lc, store->ops->key_load(store, load_one, &lc));
    if (r != 0) {
        pthread_mutex_unlock(&cat->wlock);
        world_free(lc.fresh);
        return r;
    }
    atomic_store_explicit(&cat->world, lc.fresh, memory_order_release);
    retire(&cat->ebr, old, world_free);
    ebr_reclaim(&cat->ebr);
    guards_prune(cat); /* the old world's guards go with it, whenever its readers leave */
    pthread_mutex_unlock(&cat->wlock);
    return r;
}

/* Writer: adds a key the catalog does not hold yet. */
static int put_new(struct catalog *cat, struct world *w, const struct key_rec *rec)
{
    struct usage *u;
    struct entry *e;

    if (ptable_find(atomic_load_explicit(&w->by_digest, memory_order_relaxed), digest_key(rec->digest), entry_digest_key) != NULL)
        return AK_ERR_COLLISION;
    if ((u = usage_new(rec->last_used)) == NULL)
        return AK_ERR_NOMEM;
    if ((e = entry_new(cat, rec, u)) == NULL) {
        usage_free(u);
        return AK_ERR_NOMEM;
    }
    return world_insert(&cat->ebr, w, e);
}

/* Writer: whether the account has a primary key in `w`. */
static bool has_primary(struct world *w, int64_t account_id)
{
    struct account *a = ptable_find(atomic_load_explicit(&w->accounts, memory_order_relaxed), (uint64_t)account_id, account_key);
    struct keylist *l = a != NULL ? atomic_load_explicit(&a->keys, memory_order_relaxed) : NULL;

    for (size_t i = 0; l != NULL && i < l->n; i++)
        if (l->e[i]->primary)
            return true;
    return false;
}

/* Writer: adds a key the catalog does not hold yet as not primary (see catalog_put_many). */
static int put_new_demoted(struct catalog *cat, struct world *w, const struct key_rec *rec)
{
    struct key_rec *copy = cat_malloc(sizeof(*copy));
    int r;

    if (copy == NULL)
        return AK_ERR_NOMEM;
    *copy = *rec;
    copy->primary = false;
    r = put_new(cat, w, copy);
    OPENSSL_cleanse(copy->digest, sizeof(copy->digest));
    free(copy);
    return r;
}

static int cmp_rec_ptr(const void *a, const void *b)
{
    const struct key_rec *x = *(const struct key_rec *const *)a, *y = *(const struct key_rec *const *)b;

    if (x->id != y->id)
        return (x->id > y->id) - (x->id < y->id);
    if (x->version != y->version)
        return (x->version > y->version) - (x->version < y->version);
    return (x > y) - (x < y); /* the later record of equal versions wins */
}

/*
 * Marks in `skip` every record of `recs` that another record of the same id
 * supersedes (a higher version, or the same version later in the batch), so
 * that each id is applied once: applying one twice would retire one old
 * version twice.
 */
static int mark_repeats(const struct key_rec *recs, size_t n, bool *skip)
{
    const struct key_rec **order;

    if (n < 2)
        return 0;
    if ((order = cat_malloc(n * sizeof(*order))) == NULL)
        return AK_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        order[i] = &recs[i];
    qsort(order, n, sizeof(*order), cmp_rec_ptr);
    for (size_t i = 0; i + 1 < n; i++)
        if (order[i]->id == order[i + 1]->id)
            skip[order[i] - recs] = true;
    free(order);
    return 0;
}

int catalog_put_many(struct catalog *cat, const struct key_rec *recs, size_t n)
{
    struct entry **olds = cat_calloc(n, sizeof(*olds)), **news = cat_calloc(n, sizeof(*news));
    bool *skip = cat_calloc(n, sizeof(*skip));
    struct world *w;
    size_t pos;
    int r = 0, r2;

    if (olds == NULL || news == NULL || skip == NULL || mark_repeats(recs, n, skip) != 0) {
        free(olds);
        free(news);
        free(skip);
        return AK_ERR_NOMEM;
    }
    pthread_mutex_lock(&cat->wlock);
    w = atomic_load_explicit(&cat->world, memory_order_relaxed);
    for (size_t i = 0; i < n; i++) {
        const struct key_rec *rec = &recs[i];
        struct entry *old;
        if (skip[i])
            continue;
        old = ptable_find(atomic_load_explicit(&w->by_id, memory_order_relaxed), (uint64_t)rec->id, entry_id_key);
        if (old == NULL) {
            /* A removed id never comes back: a late change about it is stale. */
            if (gone_find(cat, rec->id, &pos))
                continue;
            if (!rec->primary || !has_primary(w, rec->account_id)) {
                if ((r2 = put_new(cat, w, rec)) != 0 && r == 0)
                    r = r2;
                continue;
            }
            /*
             * A new primary for an account that has one: in as not primary
             * first, then promoted below like an update, in the same store
             * of the account's list as the old primary's demotion.
             */
            if ((r2 = put_new_demoted(cat, w, rec)) != 0) {
                r = r == 0 ? r2 : r;
                continue;
            }
            old = ptable_find(atomic_load_explicit(&w->by_id, memory_order_relaxed), (uint64_t)rec->id, entry_id_key);
        }
        /* Changes may arrive out of order (another instance's event after our own write): keep the newest. */
        if (rec->version != 0 && rec->version < old->version)
            continue;
        if (memcmp(old->digest, rec->digest, DIGEST_LEN) != 0 || old->account_id != rec->account_id) {
            r = AK_ERR_ARG; /* a key's digest and account never change */
            continue;
        }
        if ((news[i] = entry_new(cat, rec, old->usage)) == NULL) {
            r = AK_ERR_NOMEM;
            continue;
        }
        news[i]->created_at = old->created_at;
        olds[i] = old;
    }
    /*
     * New versions of one account's keys are published with one store of the
     * account's list, so that no reader sees half a change (say, the old
     * primary demoted but the new one not yet promoted).
     */
    for (size_t i = 0; i < n; i++) {
        struct account *a;
        struct keylist *ol, *l;
        int64_t account;
        if (news[i] == NULL)
            continue;
        account = news[i]->account_id;
        a = ptable_find(atomic_load_explicit(&w->accounts, memory_order_relaxed), (uint64_t)account, account_key);
        ol = a != NULL ? atomic_load_explicit(&a->keys, memory_order_relaxed) : NULL;
        if (a == NULL || (l = keylist_edit(ol, NULL, NULL)) == NULL) {
            for (size_t j = i; j < n; j++)
                if (news[j] != NULL && news[j]->account_id == account) {
                    free(news[j]);
                    news[j] = NULL;
                }
            r = AK_ERR_NOMEM;
            continue;
        }
        for (size_t j = i; j < n; j++) {
            if (news[j] == NULL || news[j]->account_id != account)
                continue;
            for (size_t k = 0; k < l->n; k++)
                if (l->e[k] == olds[j])
                    l->e[k] = news[j];
            ptable_set(&cat->ebr, &w->by_id, (uint64_t)news[j]->id, news[j], entry_id_key); /* replaces: cannot fail */
            ptable_set(&cat->ebr, &w->by_digest, digest_key(news[j]->digest), news[j], entry_digest_key);
        }
        atomic_store_explicit(&a->keys, l, memory_order_release);
        retire(&cat->ebr, ol, free);
        for (size_t j = i; j < n; j++) {
            if (news[j] == NULL || news[j]->account_id != account)
                continue;
            retire(&cat->ebr, olds[j], entry_free_version);
            news[j] = NULL;
        }
    }
    ebr_reclaim(&cat->ebr);
    pthread_mutex_unlock(&cat->wlock);
    free(olds);
    free(news);
    free(skip);
    return r;
}

int catalog_put(struct catalog *cat, const struct key_rec *rec)
{
    return catalog_put_many(cat, rec, 1);
}

/* Takes the counts since the last flush out of `u` into row `r` (hour and key set by the caller). Whether any was non-zero. */
static bool usage_drain(struct usage *u, struct usage_row *r)
{
    struct refusals *x = atomic_load_explicit(&u->refusals, memory_order_acquire);
    _Atomic uint32_t *refused = x != NULL ? x->n : NULL;
    bool any = false;

    memset(r->n, 0, sizeof(r->n));
    if (atomic_load_explicit(&u->verified, memory_order_relaxed) != 0)
        any = (r->n[USAGE_VERIFIED] = atomic_exchange_explicit(&u->verified, 0, memory_order_relaxed)) != 0;
    for (int c = 1; refused != NULL && c < USAGE_NCOUNTS; c++)
        if (atomic_load_explicit(&refused[c], memory_order_relaxed) != 0)
            any |= (r->n[c] = atomic_exchange_explicit(&refused[c], 0, memory_order_relaxed)) != 0;
    return any;
}

/* Writer: keeps the unflushed counts of `e`, which is being removed, for the next collect. On no memory they are lost. */
static void leftover_add(struct catalog *cat, const struct entry *e)
{
    struct usage_row r = {.key_id = e->id, .account_id = e->account_id, .sandbox = e->type == KEY_TYPE_SANDBOX};
    struct usage_row *nv;

    if (!usage_drain(e->usage, &r))
        return;
    if (cat->nleftover == cat->capleftover) {
        size_t cap = cat->capleftover != 0 ? cat->capleftover * 2 : 16;
        if ((nv = realloc(cat->leftover, cap * sizeof(*nv))) == NULL)
            return;
        cat->leftover = nv;
        cat->capleftover = cap;
    }
    cat->leftover[cat->nleftover++] = r;
}

int catalog_remove(struct catalog *cat, int64_t id)
{
    struct world *w;
    struct entry *e;
    struct account *a;
    struct keylist *ol, *l = NULL;
    int r = 0;

    pthread_mutex_lock(&cat->wlock);
    w = atomic_load_explicit(&cat->world, memory_order_relaxed);
    e = ptable_find(atomic_load_explicit(&w->by_id, memory_order_relaxed), (uint64_t)id, entry_id_key);
    /*
     * Only a key that was here is remembered as gone: an id named by a
     * stranger (a future id, say) must never stop that key from showing up.
     */
    if (e == NULL)
        goto out;
    a = ptable_find(atomic_load_explicit(&w->accounts, memory_order_relaxed), (uint64_t)e->account_id, account_key);
    ol = a != NULL ? atomic_load_explicit(&a->keys, memory_order_relaxed) : NULL;
    if (a != NULL && (l = keylist_edit(ol, e, NULL)) == NULL) {
        r = AK_ERR_NOMEM; /* the key stays: the caller must reload */
        goto out;
    }
    if ((r = gone_add(cat, id)) != 0) {
        free(l);
        goto out;
    }
    leftover_add(cat, e); /* a reader racing the delete may still count one more: that one is lost */
    ptable_del(&w->by_id, (uint64_t)id, entry_id_key);
    ptable_del(&w->by_digest, digest_key(e->digest), entry_digest_key);
    if (a != NULL) {
        atomic_store_explicit(&a->keys, l, memory_order_release);
        retire(&cat->ebr, ol, free);
    }
    retire(&cat->ebr, e, entry_free_key);
out:
    ebr_reclaim(&cat->ebr);
    pthread_mutex_unlock(&cat->wlock);
    return r;
}

/* Readers: the current world's table behind `which`. */
#define TABLE(cat, which)                                                                                                          \
    atomic_load_explicit(&atomic_load_explicit(&(cat)->world, memory_order_acquire)->which, memory_order_acquire)

int catalog_get(struct catalog *cat, int64_t id, struct key_rec *ret)
{
    struct entry *e;
    int r = AK_ERR_NOT_FOUND;

    if (ebr_enter(&cat->ebr) != 0)
        return AK_ERR_NOMEM;
    if ((e = ptable_find(TABLE(cat, by_id), (uint64_t)id, entry_id_key)) != NULL) {
        entry_to_rec(e, ret);
        r = 0;
    }
    ebr_exit(&cat->ebr);
    return r;
}

int catalog_find_digest(struct catalog *cat, const uint8_t digest[DIGEST_LEN], struct key_rec *ret)
{
    struct entry *e;
    int r = AK_ERR_NOT_FOUND;

    if (ebr_enter(&cat->ebr) != 0)
        return AK_ERR_NOMEM;
    e = ptable_find(TABLE(cat, by_digest), digest_key(digest), entry_digest_key);
    if (e != NULL && CRYPTO_memcmp(e->digest, digest, DIGEST_LEN) == 0) {
        entry_to_rec(e, ret);
        r = 0;
    }
    ebr_exit(&cat->ebr);
    return r;
}

bool catalog_digest_taken(struct catalog *cat, const uint8_t digest[DIGEST_LEN])
{
    bool taken;

    if (ebr_enter(&cat->ebr) != 0)
        return true;
    taken = ptable_find(TABLE(cat, by_digest), digest_key(digest), entry_digest_key) != NULL;
    ebr_exit(&cat->ebr);
    return taken;
}

/* Reader (inside ebr): whether `id` is in the published set (binary search; none: one load). */
static bool idset_has(const struct idset *set, int64_t id)
{
    size_t lo = 0, hi = set != NULL ? set->n : 0;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return set != NULL && lo < set->n && set->ids[lo] == id;
}

int catalog_set_suspended(struct catalog *cat, const int64_t *ids, size_t n)
{
    struct idset *set = NULL, *old;

    if (n != 0) {
        if ((set = cat_malloc(sizeof(*set) + n * sizeof(set->ids[0]))) == NULL)
            return AK_ERR_NOMEM;
        set->n = n;
        memcpy(set->ids, ids, n * sizeof(ids[0]));
    }
    pthread_mutex_lock(&cat->wlock);
    old = atomic_exchange_explicit(&cat->suspended, set, memory_order_acq_rel);
    retire(&cat->ebr, old, free);
    ebr_reclaim(&cat->ebr);
    pthread_mutex_unlock(&cat->wlock);
    return 0;
}

int catalog_suspend(struct catalog *cat, int64_t account_id, bool suspended)
{
    struct idset *cur, *set;
    size_t n, k = 0;
    int r = 0;

    pthread_mutex_lock(&cat->wlock);
    cur = atomic_load_explicit(&cat->suspended, memory_order_acquire);
    n = cur != NULL ? cur->n : 0;
    if (idset_has(cur, account_id) == suspended)
        goto out;
    if (!suspended && n == 1) {
        set = NULL;
    } else if ((set = cat_malloc(sizeof(*set) + (n + 1) * sizeof(set->ids[0]))) == NULL) {
        r = AK_ERR_NOMEM;
        goto out;
    } else {
        for (size_t i = 0; i < n; i++) {
            if (suspended && k == i && cur->ids[i] > account_id)
                set->ids[k++] = account_id;
            if (cur->ids[i] != account_id)
                set->ids[k++] = cur->ids[i];
        }
        if (suspended && k == n)
            set->ids[k++] = account_id;
        set->n = k;
    }
    atomic_store_explicit(&cat->suspended, set, memory_order_release);
    retire(&cat->ebr, cur, free);
    ebr_reclaim(&cat->ebr);
out:
    pthread_mutex_unlock(&cat->wlock);
    return r;
}

bool catalog_is_suspended(struct catalog *cat, int64_t account_id)
{
    bool r;

    if (ebr_enter(&cat->ebr) != 0)
        return false;
    r = idset_has(atomic_load_explicit(&cat->suspended, memory_order_acquire), account_id);
    ebr_exit(&cat->ebr);
    return r;
}

/* Counts a refusal of `u` for `reason` (the record is made on the key's first refusal). */
static void count_refusal(struct usage *u, enum usage_count reason)
{
    struct refusals *x = refusals_get(u);

    if (x != NULL) /* out of memory: not counted; the refusal itself stands */
        atomic_fetch_add_explicit(&x->n[reason], 1, memory_order_relaxed);
}

/* A use of a key: last_used (written only when the second changes, so a busy key does not bounce a cache line), usage. */
static void count_use(struct usage *u, int64_t now)
{
    if (atomic_load_explicit(&u->last_used, memory_order_relaxed) < now)
        atomic_store_explicit(&u->last_used, now, memory_order_relaxed);
    atomic_fetch_add_explicit(&u->verified, 1, memory_order_relaxed);
}

/* Registers key `id`'s rate state for the exchange (out of memory: not yet; its next request tries again). */
static void rate_register(struct catalog *cat, int64_t id, struct usage *u, struct rate_state *st)
{
    pthread_mutex_lock(&cat->rlock);
    if (atomic_load(&st->listed) == 0) {
        if (cat->nrated == cat->caprated) {
            size_t cap = cat->caprated != 0 ? cat->caprated * 2 : 64;
            struct rate_reg *grown = realloc(cat->rated, cap * sizeof(*grown));
            if (grown == NULL)
                goto out;
            cat->rated = grown;
            cat->caprated = cap;
        }
        atomic_fetch_add(&u->refs, 1);
        cat->rated[cat->nrated++] = (struct rate_reg){.id = id, .usage = u};
        rate_set_default(st, atomic_load(&cat->rate_ppm)); /* the instances alive may have changed since it was made */
        atomic_store(&st->listed, 1);
    }
out:
    pthread_mutex_unlock(&cat->rlock);
}

/* The rate state of key `id` (usage `u`), made on first need; NULL only when out of memory. */
static struct rate_state *rate_get(struct catalog *cat, int64_t id, struct usage *u)
{
    struct rate_state *v = atomic_load_explicit(&u->rate, memory_order_acquire), *fresh;

    if (v == NULL) {
        if ((fresh = malloc(sizeof(*fresh))) == NULL)
            return NULL;
        rate_init(fresh);
        rate_set_default(fresh, atomic_load_explicit(&cat->rate_ppm, memory_order_relaxed));
        if (atomic_compare_exchange_strong(&u->rate, &v, fresh))
            v = fresh;
        else
            free(fresh); /* another reader made it first */
    }
    if (atomic_load_explicit(&v->listed, memory_order_relaxed) == 0 &&
        atomic_load_explicit(&cat->rate_shared, memory_order_relaxed))
        rate_register(cat, id, u, v);
    return v;
}

void catalog_rate_share(struct catalog *cat, uint32_t default_ppm)
{
    pthread_mutex_lock(&cat->rlock);
    atomic_store(&cat->rate_ppm, default_ppm);
    atomic_store(&cat->rate_shared, true);
    for (size_t j = 0; j < cat->nrated; j++) {
        struct rate_state *st = atomic_load(&cat->rated[j].usage->rate);
        if (st != NULL)
            rate_set_default(st, default_ppm);
    }
    pthread_mutex_unlock(&cat->rlock);
}

void catalog_rate_each(struct catalog *cat, bool (*fn)(void *arg, const struct rate_key *k), void *arg)
{
    size_t kept = 0;

    pthread_mutex_lock(&cat->rlock);
    if (ebr_enter(&cat->ebr) != 0) {
        pthread_mutex_unlock(&cat->rlock);
        return;
    }
    for (size_t j = 0; j < cat->nrated; j++) {
        struct rate_reg *g = &cat->rated[j];
        struct entry *e = ptable_find(TABLE(cat, by_id), (uint64_t)g->id, entry_id_key);
        struct rate_state *st = atomic_load(&g->usage->rate);
        struct rate_key k;
        if (e != NULL && e->usage == g->usage && e->rare->rate_limit != 0 && st != NULL) {
            k = (struct rate_key){.key_id = g->id, .limit = e->rare->rate_limit, .window = e->rare->rate_window, .state = st};
            if (fn(arg, &k)) {
                cat->rated[kept++] = *g;
                continue;
            }
        }
        if (st != NULL)
            atomic_store(&st->listed, 0);
        usage_release(g->usage);
    }
    cat->nrated = kept;
    ebr_exit(&cat->ebr);
    pthread_mutex_unlock(&cat->rlock);
}

/* Whether the key's scopes (NULL: unrestricted) grant what `req` asks. */
static bool scopes_granted(const char *have, size_t hlen, const struct auth_req *req)
{
    if (have == NULL)
        return true;
    if (req->builtin != NULL && !scope_covers(have, hlen, req->builtin, strlen(req->builtin)))
        return false;
    return req->required == NULL || scope_all_covered(have, hlen, req->required, req->required_len);
}

int catalog_authenticate(struct catalog *cat, const uint8_t digest[DIGEST_LEN], int64_t now, const struct auth_req *req,
                         struct principal *ret)
{
    struct entry *e;
    const char *scopes;
    size_t slen;
    struct rate_state *rs = NULL;
    struct rate_verdict rv;
    struct quota_outcome qo = {.prefetch = false};
    int64_t quota_left_now = -1;
    int r = AK_ERR_KEY_UNKNOWN;

    if (req != NULL && req->rate != NULL)
        req->rate->limit = 0;
    if (req != NULL && req->quota != NULL)
        req->quota->has = false;
    if (ebr_enter(&cat->ebr) != 0)
        return AK_ERR_NOMEM;
    e = ptable_find(TABLE(cat, by_digest), digest_key(digest), entry_digest_key);
    if (e == NULL || CRYPTO_memcmp(e->digest, digest, DIGEST_LEN) != 0) {
        e = NULL;
        goto out;
    }
    if (!e->active) {
        r = e->rare->leaked_at != 0 ? AK_ERR_LEAKED : AK_ERR_KEY_INACTIVE;
        count_refusal(e->usage, USAGE_INACTIVE);
        goto out;
    }
    /*
     * Expiry is judged here, on every request, by this instance's clock: no
     * background job is needed for it to hold. A key once refused stays
     * refused (the mark is sticky and reaches the store within a flush), so
     * a wall clock stepped backwards cannot make it valid again.
     */
    if (e->expires_at != 0) {
        int64_t seen = seen_exp(e->usage);
        if (seen == e->expires_at || now >= e->expires_at) {
            /* Out of memory, the mark waits for the next refusal; this one stands. */
            struct refusals *x = seen != e->expires_at ? refusals_get(e->usage) : NULL;
            if (x != NULL && atomic_compare_exchange_strong(&x->seen_exp, &seen, e->expires_at))
                atomic_fetch_add(&cat->expiry_pending, 1);
            r = AK_ERR_EXPIRED;
            count_refusal(e->usage, USAGE_EXPIRED);
            goto out;
        }
    }
    /* Not a use: a suspended account's key is refused before last_used moves. */
    if (idset_has(atomic_load_explicit(&cat->suspended, memory_order_acquire), e->account_id)) {
        r = AK_ERR_SUSPENDED;
        count_refusal(e->usage, USAGE_SUSPENDED);
        goto out;
    }
    /* Restrictions: not uses either (no last_used), counted by reason. */
    if (guard_has_ips(e->rare->guard) && req != NULL && req->client != NULL) {
        struct netaddr client;
        req->client(req->client_ctx, &client);
        if (!guard_ip_allowed(e->rare->guard, &client)) {
            r = AK_ERR_IP;
            count_refusal(e->usage, USAGE_IP);
            goto out;
        }
    }
    scopes = guard_scopes(e->rare->guard, &slen);
    if (req != NULL && !scopes_granted(scopes, slen, req)) {
        r = AK_ERR_SCOPE;
        count_refusal(e->usage, USAGE_SCOPE);
        goto out;
    }
    /* The rate limit counts what passed every rule above (a refusal there takes no slot). */
    if (e->rare->rate_limit != 0) {
        if ((rs = rate_get(cat, e->id, e->usage)) == NULL) {
            r = AK_ERR_NOMEM;
            goto out;
        }
        rate_take(rs, e->rare->rate_limit, e->rare->rate_window, now, &rv);
        if (!rv.admitted) {
            r = AK_ERR_RATE_LIMITED;
            count_refusal(e->usage, USAGE_RATE_LIMITED);
            goto out;
        }
    }
    ret->key_id = e->id;
    ret->account_id = e->account_id;
    ret->type = (enum key_type)e->type;
    memcpy(ret->prefix, e->prefix, sizeof(ret->prefix));
    ret->expires_at = e->expires_at;
    ret->has_ips = guard_has_ips(e->rare->guard);
    ret->restricted = scopes != NULL;
    ret->scopes_len = slen;
    memcpy(ret->scopes, scopes != NULL ? scopes : "", slen + 1);
    ret->rate_limit = e->rare->rate_limit;
    ret->rate_window = e->rare->rate_window;
    ret->quota_id = e->rare->quota.id;
    /* The quota is spent last, by what every other rule admitted. */
    if (e->rare->quota.id != 0 && req != NULL && req->cost > 0) {
        quota_spend(e->rare->local, &e->rare->quota, now, timefmt_mono_ms(), req->cost, &qo);
        quota_left_now = qo.left;
        if (qo.verdict == QUOTA_EXHAUSTED) {
            r = AK_ERR_QUOTA;
            count_refusal(e->usage, USAGE_QUOTA);
            goto out;
        }
        if (qo.verdict == QUOTA_LEASE) {
            r = AK_ERR_QUOTA_LEASE; /* neither a use nor a refusal yet: catalog_quota_used says which */
            goto out;
        }
    }
    count_use(e->usage, now);
    r = 0;
out:
    if (e != NULL && e->rare->quota.id != 0 && req != NULL && req->quota != NULL) {
        if (quota_left_now < 0)
            quota_left_now = quota_left(e->rare->local, &e->rare->quota, now);
        *req->quota = (struct quota_report){.has = true,
                                            .left = quota_left_now,
                                            .refill_amount = e->rare->quota.refill_amount,
                                            .interval = e->rare->quota.interval,
                                            .prefetch = qo.prefetch};
    }
    /* What a limited key's every answer says of its rate limit (refusals before it: what is left, untouched). */
    if (e != NULL && e->rare->rate_limit != 0 && req != NULL && req->rate != NULL) {
        if (rs == NULL && (rs = atomic_load_explicit(&e->usage->rate, memory_order_acquire)) != NULL)
            rate_peek(rs, e->rare->rate_limit, e->rare->rate_window, now, &rv);
        else if (rs == NULL)
            rv = (struct rate_verdict){.left = e->rare->rate_limit, .reset_in = rate_reset_in(now, e->rare->rate_window)};
        *req->rate = (struct rate_report){
            .limit = e->rare->rate_limit, .window = e->rare->rate_window, .left = rv.left, .reset = rv.reset_in};
    }
    ebr_exit(&cat->ebr);
    return r;
}

int catalog_quota_hold(struct catalog *cat, int64_t key_id, struct quota_hold *ret)
{
    struct entry *e;
    int r = AK_ERR_NOT_FOUND;

    if (ebr_enter(&cat->ebr) != 0)
        return AK_ERR_NOMEM;
    e = ptable_find(TABLE(cat, by_id), (uint64_t)key_id, entry_id_key);
    if (e != NULL && e->rare->quota.id != 0) {
        atomic_fetch_add(&e->usage->refs, 1);
        ret->key_id = key_id;
        ret->local = e->rare->local;
        ret->terms = e->rare->quota;
        ret->usage = e->usage;
        r = 0;
    }
    ebr_exit(&cat->ebr);
    return r;
}

void catalog_quota_used(struct quota_hold *h, bool admitted, int64_t now)
{
    if (admitted)
        count_use(h->usage, now);
    else
        count_refusal(h->usage, USAGE_QUOTA);
}

void catalog_quota_release(struct quota_hold *h)
{
    if (h->usage != NULL)
        usage_release(h->usage);
    h->usage = NULL;
}

int catalog_quota_holds(struct catalog *cat, struct quota_hold **ret, size_t *ret_n)
{
    struct ptable *t;
    struct quota_hold *v = NULL, *grown;
    size_t n = 0, cap = 0;
    int r = 0;

    *ret = NULL;
    *ret_n = 0;
    if (ebr_enter(&cat->ebr) != 0)
        return AK_ERR_NOMEM;
    t = TABLE(cat, by_id);
    for (size_t i = 0; t != NULL && i <= t->mask && r == 0; i++) {
        struct entry *e = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        struct quota_local *q;
        if (e == NULL || (void *)e == TOMB || e->rare->quota.id == 0 || (q = e->rare->local) == NULL ||
            atomic_load(&q->credits) == 0)
            continue;
        if (n == cap) {
            cap = cap != 0 ? cap * 2 : 16;
            if ((grown = realloc(v, cap * sizeof(*v))) == NULL) {
                r = AK_ERR_NOMEM;
                break;
            }
            v = grown;
        }
        atomic_fetch_add(&e->usage->refs, 1);
        v[n++] = (struct quota_hold){.key_id = e->id, .local = q, .terms = e->rare->quota, .usage = e->usage};
    }
    ebr_exit(&cat->ebr);
    if (r != 0) {
        for (size_t i = 0; i < n; i++)
            catalog_quota_release(&v[i]);
        free(v);
        return r;
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

void catalog_list_views(struct catalog *cat, int64_t account_id, bool sandbox_only, catalog_view_cb cb, void *arg)
{
    struct account *a;
    struct keylist *l;
    struct key_view v;

    if (ebr_enter(&cat->ebr) != 0)
        return;
    if ((a = ptable_find(TABLE(cat, accounts), (uint64_t)account_id, account_key)) != NULL &&
        (l = atomic_load_explicit(&a->keys, memory_order_acquire)) != NULL) {
        for (size_t i = 0; i < l->n; i++) {
            if (sandbox_only && l->e[i]->type != KEY_TYPE_SANDBOX)
                continue;
            entry_view(l->e[i], &v);
            cb(arg, &v);
        }
    }
    ebr_exit(&cat->ebr);
}

void catalog_list(struct catalog *cat, int64_t account_id, bool sandbox_only, catalog_visit_cb cb, void *arg)
{
    struct key_rec *rec = malloc(sizeof(*rec));
    struct account *a;
    struct keylist *l;

    if (rec == NULL)
        return;
    if (ebr_enter(&cat->ebr) != 0) {
        free(rec);
        return;
    }
    if ((a = ptable_find(TABLE(cat, accounts), (uint64_t)account_id, account_key)) != NULL &&
        (l = atomic_load_explicit(&a->keys, memory_order_acquire)) != NULL) {
        for (size_t i = 0; i < l->n; i++) {
            if (sandbox_only && l->e[i]->type != KEY_TYPE_SANDBOX)
                continue;
            entry_to_rec(l->e[i], rec);
            cb(arg, rec);
        }
    }
    ebr_exit(&cat->ebr);
    free(rec);
}

size_t catalog_account_keys(struct catalog *cat, int64_t account_id, int64_t *ret_primary_id)
{
    struct account *a;
    struct keylist *l;
    int64_t primary = 0;
    size_t n = 0;

    if (ebr_enter(&cat->ebr) == 0) {
        if ((a = ptable_find(TABLE(cat, accounts), (uint64_t)account_id, account_key)) != NULL &&
            (l = atomic_load_explicit(&a->keys, memory_order_acquire)) != NULL) {
            n = l->n;
            for (size_t i = 0; ret_primary_id != NULL && i < l->n; i++)
                if (l->e[i]->primary)
                    primary = l->e[i]->id;
        }
        ebr_exit(&cat->ebr);
    }
    if (ret_primary_id != NULL)
        *ret_primary_id = primary;
    return n;
}

/* Appends to a growing array of `size`-byte items. */
static int push(void **v, size_t *n, size_t *cap, const void *item, size_t size)
{
    void *nv;

    if (*n == *cap) {
        size_t c = *cap != 0 ? *cap * 2 : 64;
        if ((nv = realloc(*v, c * size)) == NULL)
            return AK_ERR_NOMEM;
        *v = nv;
        *cap = c;
    }
    memcpy((char *)*v + *n * size, item, size);
    (*n)++;
    return 0;
}

int catalog_collect(struct catalog *cat, int64_t hour, struct catalog_flush *ret)
{
    void *uses = NULL, *rows = NULL;
    size_t nu = 0, cu = 0, nr = 0, cr = 0;
    struct ptable *t;
    int r = 0;

    /* Counts of removed keys first: under the writers' lock, as catalog_remove adds them. */
    pthread_mutex_lock(&cat->wlock);
    for (size_t i = 0; i < cat->nleftover && r == 0; i++) {
        cat->leftover[i].hour = hour;
        r = push(&rows, &nr, &cr, &cat->leftover[i], sizeof(struct usage_row));
    }
    if (r == 0)
        cat->nleftover = 0;
    pthread_mutex_unlock(&cat->wlock);
    if (r != 0 || ebr_enter(&cat->ebr) != 0) {
        free(rows);
        return AK_ERR_NOMEM; /* the leftovers stay for the next collect */
    }
    t = TABLE(cat, by_id);
    for (size_t i = 0; t != NULL && i <= t->mask && r == 0; i++) {
        struct entry *e = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        struct usage_row row = {.key_id = 0};
        int64_t at;
        if (e == NULL || e == TOMB)
            continue;
        if ((at = atomic_load_explicit(&e->usage->last_used, memory_order_relaxed)) >
            atomic_load_explicit(&e->usage->flushed, memory_order_relaxed))
            r = push(&uses, &nu, &cu, &(struct key_use){.id = e->id, .at = at}, sizeof(struct key_use));
        /* Drained only once there is room for the row, so that no count is taken and dropped. */
        if (r == 0 && nr == cr && (r = push(&rows, &nr, &cr, &row, sizeof(row))) == 0)
            nr--;
        if (r == 0 && usage_drain(e->usage, &row)) {
            row.key_id = e->id;
            row.account_id = e->account_id;
            row.hour = hour;
            row.sandbox = e->type == KEY_TYPE_SANDBOX;
            push(&rows, &nr, &cr, &row, sizeof(row)); /* room was made above */
        }
    }
    ebr_exit(&cat->ebr);
    ret->uses = uses;
    ret->nuses = nu;
    ret->rows = rows;
    ret->nrows = nr;
    return 0; /* out of memory midway: what was not taken stays for the next collect */
}

/* Raises the flushed mark of each listed key, and its last_used too when `used` (a use made elsewhere). */
static void raise_uses(struct catalog *cat, const struct key_use *uses, size_t n, bool used)
{
    struct ptable *t;

    if (ebr_enter(&cat->ebr) != 0)
        return;
    t = TABLE(cat, by_id);
    for (size_t i = 0; i < n; i++) {
        struct entry *e = ptable_find(t, (uint64_t)uses[i].id, entry_id_key);
        if (e == NULL)
            continue;
        if (used)
            raise_to(&e->usage->last_used, uses[i].at);
        raise_to(&e->usage->flushed, uses[i].at);
    }
    ebr_exit(&cat->ebr);
}

void catalog_note_uses(struct catalog *cat, const struct key_use *uses, size_t n)
{
    raise_uses(cat, uses, n, true);
}

void catalog_mark_flushed(struct catalog *cat, const struct key_use *uses, size_t n)
{
    raise_uses(cat, uses, n, false);
}

int catalog_collect_expired(struct catalog *cat, struct key_use **ret, size_t *ret_n)
{
    struct key_use *v = NULL, *nv;
    struct ptable *t;
    size_t n = 0, cap = 0;
    int r = 0;

    *ret = NULL;
    *ret_n = 0;
    /* Rare: only a scan when a key was newly refused as expired since the last call. */
    if (atomic_exchange(&cat->expiry_pending, 0) == 0)
        return 0;
    if (ebr_enter(&cat->ebr) != 0) {
        atomic_fetch_add(&cat->expiry_pending, 1);
        return AK_ERR_NOMEM;
    }
    t = TABLE(cat, by_id);
    for (size_t i = 0; t != NULL && i <= t->mask; i++) {
        struct entry *e = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        struct refusals *x;
        int64_t seen;
        if (e == NULL || e == TOMB || e->expires_at == 0 ||
            (x = atomic_load_explicit(&e->usage->refusals, memory_order_acquire)) == NULL ||
            (seen = atomic_load_explicit(&x->seen_exp, memory_order_relaxed)) != e->expires_at ||
            atomic_load_explicit(&x->stored_exp, memory_order_relaxed) == seen)
            continue;
        if (n == cap) {
            cap = cap != 0 ? cap * 2 : 16;
            if ((nv = realloc(v, cap * sizeof(*v))) == NULL) {
                r = AK_ERR_NOMEM;
                break;
            }
            v = nv;
        }
        v[n].id = e->id;
        v[n].at = seen;
        n++;
    }
    ebr_exit(&cat->ebr);
    if (r != 0) {
        free(v);
        atomic_fetch_add(&cat->expiry_pending, 1);
        return r;
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

void catalog_mark_expired_stored(struct catalog *cat, const struct key_use *v, size_t n, bool stored)
{
    struct ptable *t;

    if (!stored) {
        atomic_fetch_add(&cat->expiry_pending, 1); /* still seen, not stored: the next collection takes them again */
        return;
    }
    if (ebr_enter(&cat->ebr) != 0)
        return;
    t = TABLE(cat, by_id);
    for (size_t i = 0; i < n; i++) {
        struct entry *e = ptable_find(t, (uint64_t)v[i].id, entry_id_key);
        struct refusals *x = e != NULL ? atomic_load_explicit(&e->usage->refusals, memory_order_acquire) : NULL;
        if (x != NULL) /* made when the key was refused as expired */
            atomic_store_explicit(&x->stored_exp, v[i].at, memory_order_relaxed);
    }
    ebr_exit(&cat->ebr);
}

/* Visits every key as a view (no copies: a sweep walks a million keys in milliseconds). */
void catalog_walk(struct catalog *cat, catalog_view_cb cb, void *arg)
{
    struct ptable *t;
    struct key_view v;

    if (ebr_enter(&cat->ebr) != 0)
        return;
    t = TABLE(cat, by_id);
    for (size_t i = 0; t != NULL && i <= t->mask; i++) {
        struct entry *e = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (e == NULL || e == TOMB)
            continue;
        entry_view(e, &v);
        cb(arg, &v);
    }
    ebr_exit(&cat->ebr);
}

size_t catalog_accounts(struct catalog *cat)
{
    struct ptable *t;
    size_t n = 0;

    if (ebr_enter(&cat->ebr) != 0)
        return 0;
    if ((t = TABLE(cat, accounts)) != NULL)
        n = atomic_load_explicit(&t->live, memory_order_relaxed);
    ebr_exit(&cat->ebr);
    return n;
}

size_t catalog_size(struct catalog *cat)
{
    size_t n = 0;
    struct ptable *t;

    if (ebr_enter(&cat->ebr) != 0)
        return 0;
    if ((t = TABLE(cat, by_id)) != NULL)
        n = t->live;
    ebr_exit(&cat->ebr);
    return n;
}
