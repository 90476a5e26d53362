/*
 * keys_impl: the keys service's state, shared by the modules that make it
 * up (keys.c: keys and verification; accounts.c: accounts and the audit
 * log; admin.c: admin tokens). Not for other layers: they use keys.h,
 * accounts.h and admin.h.
 */
#ifndef APIKEYD_CORE_KEYS_IMPL_H
#define APIKEYD_CORE_KEYS_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "core/account.h"
#include "core/catalog.h"
#include "core/digest.h"
#include "core/keys.h"
#include "core/usage.h"

#define KEYS_USAGE_PENDING_MAX (1u << 22) /* rows kept while the store is away */

/* The admin tokens, in memory: few, read only by operator requests, so a mutex and a list. */
struct token_set {
    pthread_mutex_t lock;
    struct token_rec *v;
    size_t n;
};

struct keys {
    struct store *store;
    struct catalog *cat;
    struct token_set tokens;
    struct digest_secret secret;
    char brand[KEYFMT_BRAND_MAX + 1];
    unsigned max_keys;         /* the cap of an account without one of its own */
    int64_t max_staleness_ms;  /* 0: never refuse */
    _Atomic int64_t heard_ms;  /* monotonic time the shared store was last heard from */
    _Atomic bool store_lost;   /* said so in the log (keys_watch_check), not yet heard again */
    _Atomic uint64_t resyncs;  /* full reloads the watcher asked for, the start-up one included */
    _Atomic int reload_wanted; /* a write left the catalog behind the store */
    pthread_mutex_t write_lock;
    /* usage rows a flush could not write, for the next (under flush_lock) */
    pthread_mutex_t flush_lock;
    struct usage_row *pending;
    size_t npending, cappending;
    /* the first full load after keys_watch */
    pthread_mutex_t watch_lock;
    pthread_cond_t watch_cond;
    bool watch_loaded;
};

/* Reloads suspensions, keys and admin tokens; the caller holds write_lock. On failure keys_sync retries. */
int reload_locked(struct keys *k);

/*
 * After a write: `r` is the store's answer, `cr` the catalog's. A store
 * that could not tell whether it committed, or a catalog that could not
 * take a committed change, leaves the catalog behind: reload it now, and
 * if that fails too, answer that the outcome is not known (never success
 * for a change this instance does not serve) and reload on the next tick.
 */
int settle(struct keys *k, int r, int cr);

/* Takes out a key deleted elsewhere; if the catalog cannot, the next sync reloads it. */
void forget(struct keys *k, int64_t id);

/* Draws a fresh key whose digest is not in use, filling rec's digest and prefix; `buf` gets the key. */
int mint(struct keys *k, enum key_type type, struct key_rec *rec, char *buf, size_t bufsz);

/* Puts an update's rows (the key and the primary it demoted, if any) in the catalog in one step. */
int apply_update(struct keys *k, const struct key_rec *rec, const struct key_rec *demoted);

/*
 * The digest of the credential in the Authorization value `hdr` (`len`
 * bytes; NULL when absent), checked as keys_authenticate says: missing,
 * not a bearer, not well formed for this brand (AK_ERR_KEY_FORMAT), not of
 * the kind asked for (`admin`: an admin token, else an account's key;
 * answered `wrong_kind`), or a shared store silent too long (AK_ERR_STALE).
 * On 0, *ret_type and `digest` (the caller wipes it) are set.
 */
int credential_digest(struct keys *k, const char *hdr, size_t len, bool admin, int wrong_kind, enum key_type *ret_type,
                      uint8_t digest[DIGEST_LEN]);

/* Replaces the admin tokens in memory with the store's (admin.c). */
int admin_tokens_load(struct keys *k);

#endif
