/*
 * catalog: every key in memory, for verification and listing without a
 * database round trip.
 *
 * Indexed by digest (authentication), by id (updates) and by account (lists,
 * in id order). It is a cache of the store, kept exact by the keys module
 * after each committed write; it never decides a rule itself.
 *
 * Readers take no lock and write nothing shared but a key's last_used: every
 * published object is immutable, writers publish new versions with atomic
 * pointer stores and retire old ones through epoch-based reclamation (ebr.h).
 * Writers are serialized internally. A key's name is kept JSON-encoded (by
 * jansson, at write time), so that lists are served by copying bytes.
 */
#ifndef APIKEYD_CORE_CATALOG_H
#define APIKEYD_CORE_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/guard.h"
#include "core/key.h"
#include "core/netaddr.h"
#include "core/quota.h"
#include "core/usage.h"

struct catalog;
struct store;

/* Visits one key of a list; `rec` is valid only during the call. */
typedef void (*catalog_visit_cb)(void *arg, const struct key_rec *rec);

/* What a list shows of a key, without copies; valid only during the visit. */
struct key_view {
    int64_t id;
    int64_t account_id;
    enum key_type type;
    bool active;
    bool primary;
    int64_t created_at;
    int64_t last_used;     /* 0: never */
    const char *prefix;    /* NUL-terminated */
    int64_t expires_at;    /* 0: never */
    int64_t rotated_from;  /* 0: none */
    int64_t rotated_to;    /* 0: none */
    int64_t leaked_at;     /* 0: never */
    bool expiry_seen;      /* refused as expired once (see key_rec) */
    int64_t activated_at;  /* last reactivated; 0: never */
    const char *name_json; /* the name as a JSON string literal, quotes included */
    size_t name_json_len;
    const struct guard *guard; /* scopes and allowlist (guard.h); NULL: unrestricted */
    int64_t rate_limit;        /* 0: none */
    int32_t rate_window;
    bool has_quota;
    int64_t remaining;     /* as this instance knows it */
    int64_t refill_amount; /* 0: no refill */
    enum refill_interval refill_interval;
};

/* Where a known key with a rate limit stands after a request, for the answer's RateLimit fields. */
struct rate_report {
    int64_t limit; /* 0: the key is unknown or has no rate limit (nothing else is set) */
    int32_t window;
    int64_t left;  /* left in the window after this request */
    int64_t reset; /* seconds to the window's end */
};

/* Where a known key with a quota stands after a request, for the answer's RateLimit fields. */
struct quota_report {
    bool has; /* false: the key is unknown or has no quota (nothing else is set) */
    int64_t left;
    int64_t refill_amount; /* 0: no refill */
    enum refill_interval interval;
    bool prefetch; /* the credits here run low: lease more now (keys_quota_settle with cost 0) */
};

/* A hold on a key's quota, for a lease off the event loop (keys_quota_settle); see catalog_quota_hold. */
struct quota_hold {
    int64_t key_id;
    struct quota_local *local;
    struct quota_terms terms;
    void *usage; /* the catalog's, referenced until catalog_quota_release */
};

/* A key whose rate limit this instance counts, for the exchange (ratesync.h). */
struct rate_key {
    int64_t key_id;
    int64_t limit;
    int32_t window;
    struct rate_state *state; /* valid until the next catalog_rate_each */
};

/* What a request asks of a key besides being valid (catalog_authenticate). */
struct auth_req {
    /* The client's address, asked for only when the key has an allowlist; NULL: not checked. */
    void (*client)(void *ctx, struct netaddr *ret);
    void *client_ctx;
    const char *builtin;  /* a management scope the route needs (scope.h), or NULL */
    const char *required; /* a gateway's X-Required-Scopes value, well formed (scope_required_ok), or NULL */
    size_t required_len;
    struct rate_report *rate; /* filled for every answer, refusals included (NULL: not asked) */
    /* Credits the request spends from the key's quota (0: none; the management API spends none). */
    uint32_t cost;
    struct quota_report *quota; /* filled like `rate` (NULL: not asked) */
};

/* What catalog_collect hands the flush: malloc'd arrays (possibly non-NULL with a count of 0) that the caller frees. */
struct catalog_flush {
    struct key_use *uses; /* keys whose last_used moved since they were last marked flushed */
    size_t nuses;
    struct usage_row *rows; /* counts since the last collect, one row per key with any */
    size_t nrows;
};

typedef void (*catalog_view_cb)(void *arg, const struct key_view *view);

/* Returns a new, empty catalog, or NULL when out of memory. */
struct catalog *catalog_new(void);

/*
 * With a shared store (ratesync.h): from now on, each key counted against
 * its rate limit is registered for the exchange, and a window the exchange
 * has not spoken about admits up to `default_ppm` millionths of the limit
 * here (rate_set_default), on new and registered keys alike.
 */
void catalog_rate_share(struct catalog *cat, uint32_t default_ppm);

/*
 * Calls `fn` for every registered key that still has a rate limit, with its
 * limit now; forgets the others (deleted, limit removed) and those for
 * which `fn` returns false (idle: a request registers it again). One thread
 * at a time (the exchange's).
 */
void catalog_rate_each(struct catalog *cat, bool (*fn)(void *arg, const struct rate_key *k), void *arg);

/*
 * Holds key `key_id`'s quota credits and terms for a lease: 0, or
 * AK_ERR_NOT_FOUND when the key is gone or has no quota. Any thread.
 */
int catalog_quota_hold(struct catalog *cat, int64_t key_id, struct quota_hold *ret);

/*
 * What became of a request that waited for a lease (catalog_authenticate
 * answered AK_ERR_QUOTA_LEASE): admitted (a use: last_used, usage) or
 * refused as quota_exhausted (counted).
 */
void catalog_quota_used(struct quota_hold *h, bool admitted, int64_t now);

void catalog_quota_release(struct quota_hold *h);

/* Holds every key with quota credits leased here (for their return at shutdown): a malloc'd array, *ret_n of them. */
int catalog_quota_holds(struct catalog *cat, struct quota_hold **ret, size_t *ret_n);

/* Frees the catalog and every entry; accepts NULL. */
void catalog_free(struct catalog *cat);

/*
 * Replaces the whole content with the keys in `store`, keeping any newer
 * last_used already recorded in memory. Returns 0 or the store's error (the
 * old content stays on failure).
 */
int catalog_load(struct catalog *cat, struct store *store);

/*
 * Inserts or replaces (by id) the key `rec`. Ignores, returning 0, a record
 * older than the one held (both versions non-zero and rec's lower) and a key
 * that was removed (ids are never reused): changes from other instances may
 * arrive after newer local ones. AK_ERR_COLLISION if its digest index slot is
 * taken by another key.
 */
int catalog_put(struct catalog *cat, const struct key_rec *rec);

/*
 * catalog_put for several keys at once: the new versions of one account's
 * keys become visible to lists together (a primary move is never seen half
 * done). Records repeating an id are merged: the highest version (or the
 * last of equal ones) is applied, once. Returns the first error; the other
 * records are still applied. On AK_ERR_NOMEM the catalog may lack a change:
 * the caller reloads it.
 */
int catalog_put_many(struct catalog *cat, const struct key_rec *recs, size_t n);

/*
 * Removes the key `id`, if present, and remembers that it is gone (so that
 * a late change about it is ignored). An id the catalog does not hold is
 * not remembered. Returns 0, or AK_ERR_NOMEM when the key could not be
 * removed (the caller reloads the catalog).
 */
int catalog_remove(struct catalog *cat, int64_t id);

/* Copies the key `id` into `ret`. AK_ERR_NOT_FOUND if absent. */
int catalog_get(struct catalog *cat, int64_t id, struct key_rec *ret);

/* Copies the key with `digest` (compared in constant time) into `ret`, whatever its state. AK_ERR_NOT_FOUND if none. */
int catalog_find_digest(struct catalog *cat, const uint8_t digest[DIGEST_LEN], struct key_rec *ret);

/* Whether a key with this digest (or the same index slot) exists. */
bool catalog_digest_taken(struct catalog *cat, const uint8_t digest[DIGEST_LEN]);

/*
 * Looks up the key with `digest` (compared in constant time). If it is
 * active, not expired at `now` (nor ever refused as expired: see
 * catalog_collect_expired), its account is not suspended, and it grants
 * what `req` asks (may be NULL: nothing), records `now` as its last use,
 * counts it verified and fills `ret`. Returns 0, AK_ERR_KEY_UNKNOWN,
 * AK_ERR_LEAKED (an inactive key reported leaked), AK_ERR_KEY_INACTIVE,
 * AK_ERR_EXPIRED, AK_ERR_SUSPENDED, AK_ERR_IP or AK_ERR_SCOPE; a known key's
 * refusal is counted under its reason (usage.h) and is not a use.
 */
int catalog_authenticate(struct catalog *cat, const uint8_t digest[DIGEST_LEN], int64_t now, const struct auth_req *req,
                         struct principal *ret);

/*
 * Replaces the set of suspended accounts with `ids` (ascending; copied).
 * Returns 0, or AK_ERR_NOMEM with the old set kept.
 */
int catalog_set_suspended(struct catalog *cat, const int64_t *ids, size_t n);

/* Adds `account_id` to the suspended set, or takes it out. Returns 0 or AK_ERR_NOMEM. */
int catalog_suspend(struct catalog *cat, int64_t account_id, bool suspended);

/* Whether `account_id` is suspended. */
bool catalog_is_suspended(struct catalog *cat, int64_t account_id);

/* Calls `cb` for each key of `account_id` in id order (only sandbox keys when `sandbox_only`), with a decoded copy. */
void catalog_list(struct catalog *cat, int64_t account_id, bool sandbox_only, catalog_visit_cb cb, void *arg);

/* The same, lock-free and copy-free: the hot path of GET /v1/account/api-keys. `cb` must not call into the catalog. */
void catalog_list_views(struct catalog *cat, int64_t account_id, bool sandbox_only, catalog_view_cb cb, void *arg);

/* Number of keys of `account_id`, and (when ret_primary_id is non-NULL) the id of its primary key, 0 if none. */
size_t catalog_account_keys(struct catalog *cat, int64_t account_id, int64_t *ret_primary_id);

/*
 * Collects what the next flush writes: the keys whose last_used moved since
 * they were last marked flushed, and the usage counts since the last
 * collect (taken out of the catalog: the caller owns them now), labelled
 * with `hour`. Returns 0 (when memory ran out midway, the rest stays for
 * the next collect) or AK_ERR_NOMEM with nothing taken.
 */
int catalog_collect(struct catalog *cat, int64_t hour, struct catalog_flush *ret);

/* Records uses made elsewhere and already durable: raises last_used and the flushed mark (never lowers them). */
void catalog_note_uses(struct catalog *cat, const struct key_use *uses, size_t n);

/* Records that the given uses are durable. */
void catalog_mark_flushed(struct catalog *cat, const struct key_use *uses, size_t n);

/*
 * The keys refused as expired whose mark is not in the store yet: `id`,
 * and in `at` the expires_at they were refused at (*ret malloc'd, NULL when
 * none; caller frees). The caller writes them and reports with
 * catalog_mark_expired_stored (stored: false when that failed, so that
 * they are collected again).
 */
int catalog_collect_expired(struct catalog *cat, struct key_use **ret, size_t *ret_n);
void catalog_mark_expired_stored(struct catalog *cat, const struct key_use *v, size_t n, bool stored);

/* Calls `cb` with a view of every key, in no particular order (the background sweeps). `cb` must not call into the catalog. */
void catalog_walk(struct catalog *cat, catalog_view_cb cb, void *arg);

/* Number of keys. */
size_t catalog_size(struct catalog *cat);

/* Accounts with keys in the catalog. */
size_t catalog_accounts(struct catalog *cat);

/*
 * For tests only (failure injection, as sqlite's fault simulator): the
 * catalog's allocation number `after` from now on (0: the next) fails,
 * once; -1 turns it off. Process-wide.
 */
void catalog_fault_inject(long after);

#endif
