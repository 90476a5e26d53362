/*
 * keys: the account and key rules, over the store (durable truth) and the
 * catalog (its in-memory image).
 *
 * Every rule of the product lives here: who may see and change which key,
 * the one-primary invariant, the key cap, key creation and verification.
 * Writes are serialized: store first, then catalog, so the catalog never
 * shows what the store does not hold. No HTTP, no SQL, no logging; a key in
 * clear exists only in the caller's buffers and is wiped after hashing.
 */
#ifndef APIKEYD_CORE_KEYS_H
#define APIKEYD_CORE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/audit.h"
#include "core/catalog.h"
#include "core/key.h"
#include "core/validate.h"

struct store;

#define KEYS_DEFAULT_MAX 100
#define KEYS_PRIMARY_NAME "Production Key"

struct keys_config {
    const char *brand;        /* key brand, e.g. "ml" */
    unsigned max_keys;        /* per account */
    unsigned max_staleness_s; /* shared stores: refuse verification (AK_ERR_STALE) after this long without news; 0: never */
};

struct keys;

/*
 * Creates the service over `store` (borrowed; must outlive it) with
 * `secret` (copied). Loads nothing: call keys_load before serving.
 */
int keys_new(struct store *store, const struct digest_secret *secret, const struct keys_config *cfg, struct keys **ret);

/* Frees the service and wipes its copy of the secret; accepts NULL. */
void keys_free(struct keys *k);

/* Loads (or reloads) the catalog from the store. */
int keys_load(struct keys *k);

/*
 * Verifies the Authorization header value `hdr` (`len` bytes; NULL when the
 * header is absent) and records the use. Returns 0 with *ret filled, or
 * AK_ERR_MISSING_KEY, AK_ERR_KEY_FORMAT, AK_ERR_KEY_UNKNOWN (also for an admin
 * token), AK_ERR_KEY_INACTIVE, AK_ERR_SUSPENDED, or AK_ERR_STALE when the store is shared and has not been heard from for
 * longer than max_staleness_s (fail closed: a key revoked elsewhere meanwhile
 * must not keep working).
 */
int keys_authenticate(struct keys *k, const char *hdr, size_t len, int64_t now, const struct auth_req *req, struct principal *ret);

/* Visits the keys `who` may see, in id order. */
void keys_list(struct keys *k, const struct principal *who, catalog_visit_cb cb, void *arg);

/* The same as views, without locks or copies (see catalog_list_views). */
void keys_list_views(struct keys *k, const struct principal *who, catalog_view_cb cb, void *arg);

/*
 * Resolves the key `id` for a change by `who`: AK_ERR_NOT_FOUND when it does
 * not exist or belongs to another account, AK_ERR_FORBIDDEN when a sandbox
 * key reaches for a production key. Fills *ret on 0.
 */
int keys_target(struct keys *k, const struct principal *who, int64_t id, struct key_rec *ret);

/*
 * Creates a key. On 0, *ret holds the new record and `ret_key` (at least
 * KEYFMT_MAX_LEN + 1 bytes) the key in clear, which the caller shows once and
 * wipes. Errors: AK_ERR_FORBIDDEN, AK_ERR_LIMIT, store errors.
 */
int keys_create(struct keys *k, const struct audit_origin *origin, const struct principal *who, const struct create_req *req,
                struct key_rec *ret, char *ret_key, size_t keysz);

/*
 * Applies `req` to key `id`. Errors: those of keys_target, AK_ERR_PRIMARY_*,
 * store errors. Writes (here, keys_create and keys_delete) answer
 * AK_ERR_UNAVAILABLE only when nothing was changed, and
 * AK_ERR_OUTCOME_UNKNOWN when the store could not tell, or committed a
 * change this instance cannot serve yet: the catalog is then reloaded (at
 * once, or by keys_sync as soon as the store answers).
 */
int keys_update(struct keys *k, const struct audit_origin *origin, const struct principal *who, int64_t id,
                const struct patch_req *req, struct key_rec *ret);

/* Deletes key `id`. Errors: those of keys_target, AK_ERR_PRIMARY_PROTECTED, store errors. */
int keys_delete(struct keys *k, const struct audit_origin *origin, const struct principal *who, int64_t id);

/* A shared store silent this long is said to be lost in the log. */
#define KEYS_STORE_LOST_MS 5000 /* more than a heartbeat (1 s) and its deadline (3 s) */

/* With a shared store: logs once that it is lost when it has been silent KEYS_STORE_LOST_MS (the maintenance tick calls it). */
void keys_watch_check(struct keys *k);

/* Keys and accounts (with keys) in the catalog (metrics). */
void keys_counts(struct keys *k, size_t *ret_keys, size_t *ret_accounts);

/* Milliseconds since the shared store was last heard from; -1 without one (metrics). */
int64_t keys_heard_age_ms(struct keys *k);

/* Full reloads the shared store's watcher asked for since start-up (metrics). */
uint64_t keys_resyncs(struct keys *k);

/* Writes pending last_used values and usage counts to the store. */
int keys_flush_uses(struct keys *k);

/*
 * Leases credits of key `key_id`'s quota from the store (quota.h), off the
 * event loop: for a request of `cost` that keys_authenticate could not
 * decide (AK_ERR_QUOTA_LEASE), which it then admits (0, a use, *ret_left
 * credits left) or refuses (AK_ERR_QUOTA, counted); or, with cost 0, the
 * next block before the credits here run out. Errors: AK_ERR_NOT_FOUND
 * (the key is gone or has no quota now), store errors.
 */
int keys_quota_settle(struct keys *k, int64_t key_id, uint32_t cost, int64_t now, int64_t *ret_left);

/* Gives the credits leased here and not spent back to the store (a clean shutdown). */
int keys_quota_return(struct keys *k);

/*
 * For a store shared by several instances (one with watch): starts
 * following other instances' changes and waits, up to `timeout_ms`, for the
 * first full load that follows. Returns 0 (also when the store has no
 * watch: keys_sync polls it instead), or AK_ERR_UNAVAILABLE on timeout.
 */
int keys_watch(struct keys *k, int timeout_ms);

/* Whether the store reports other instances' changes (keys_watch) rather than being polled (keys_sync). */
bool keys_watched(const struct keys *k);

/* Reloads the catalog if another process changed the store, or if a write left it behind. Sets *ret_reloaded. */
int keys_sync(struct keys *k, bool *ret_reloaded);

#endif
