/*
 * store: the durable home of accounts and keys. A backend (sqlite.c,
 * postgres.c) fills in one table of function pointers with transactions and
 * row primitives in its own SQL dialect; the writes themselves are written
 * once, in txn.c, over those primitives.
 *
 * The store never sees HTTP and never sees a key: only records with digests.
 * Every write is one transaction that either happens whole or not at all,
 * and is durable when the call returns 0. Stores are safe to call from any
 * thread. They do not log; errors come back as AK_ERR_* codes.
 */
#ifndef APIKEYD_STORE_STORE_H
#define APIKEYD_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/key.h"

struct store;

/* Called once per key by key_load, in id order. A non-zero return stops the walk and is returned. */
typedef int (*store_key_cb)(void *arg, const struct key_rec *rec);

/*
 * The rules, handed in by core and run inside the write transaction on the
 * store's current state (another instance may have changed it): `cur` is the
 * key's row, `primary_id` the account's primary key (0 if none). Fills
 * `next` with the row to write, or returns an AK_ERR_* that rolls back.
 */
typedef int (*store_update_fn)(void *arg, const struct key_rec *cur, int64_t primary_id, struct key_rec *next);

/* The same for a delete: a non-zero return refuses it. */
typedef int (*store_delete_fn)(void *arg, const struct key_rec *cur);

/*
 * What a store that several instances share reports about changes made by
 * other processes, from a thread of its own.
 */
struct store_watch_ops {
    /*
     * One transaction elsewhere changed keys: `recs` are the current rows of
     * those that exist, `gone` the ids of those deleted. Rows of one
     * transaction arrive together, so that they can be applied together.
     */
    void (*changed)(void *arg, const struct key_rec *recs, size_t n, const int64_t *gone, size_t ngone);
    /* Keys were used elsewhere (the values are already in the store). */
    void (*used)(void *arg, const struct key_use *uses, size_t n);
    /*
     * The stream of changes (re)started: everything must be reloaded, as
     * changes may have been missed. Returns 0, or an error to be asked again.
     */
    int (*resync)(void *arg);
    /*
     * The store's change stream answered (a heartbeat, a notification, a
     * resync): changes made elsewhere up to now are known. Called at least
     * once a second while the link is alive.
     */
    void (*heard)(void *arg);
};

/*
 * What a backend provides: transactions and row primitives in its own SQL
 * dialect, nothing more. The shape of every write (lock the account, read
 * the rows, run core's rules, write, announce, commit, settle a lost
 * commit) lives once, in txn.c, above the backends.
 *
 * Primitives marked "in a transaction" run between begin and
 * commit/rollback, on the thread that called begin; begin takes the
 * store's writer lock and commit/rollback release it, so one write runs at
 * a time per store.
 */
struct store_ops {
    const char *name;
    /* Closes the backend and frees `s`. */
    void (*free)(struct store *s);

    /* ---- transactions ---- */
    /* Takes the writer lock and opens a write transaction. On error nothing is held. */
    int (*begin)(struct store *s);
    /*
     * Commits and releases the lock. 0; AK_ERR_OUTCOME_UNKNOWN when the
     * answer was lost (the transaction may have committed: see settle);
     * another error when it was rolled back.
     */
    int (*commit)(struct store *s);
    /* Rolls back and releases the lock. */
    void (*rollback)(struct store *s);
    /*
     * Optional (NULL where a commit is never ambiguous): after a commit gave
     * AK_ERR_OUTCOME_UNKNOWN, waits until that transaction is settled for
     * good, one way or the other, so that reading the rows tells which.
     * 0, or AK_ERR_OUTCOME_UNKNOWN when that cannot be known now.
     */
    int (*settle)(struct store *s);

    /* ---- row primitives, in a transaction ---- */
    /* Inserts an account with no keys; sets *ret_id. */
    int (*account_insert)(struct store *s, const char *name, int64_t now, int64_t *ret_id);
    /* Locks the account's row until the end of the transaction. AK_ERR_NOT_FOUND if there is none. */
    int (*account_lock)(struct store *s, int64_t account_id);
    /* Counts one more key for the account if it has fewer than `max_keys` (AK_ERR_LIMIT otherwise). */
    int (*account_take_key)(struct store *s, int64_t account_id, unsigned max_keys);
    /* Counts one key less. */
    int (*account_return_key)(struct store *s, int64_t account_id);
    /* Inserts `rec`; sets rec->id and rec->version. A digest in use gives AK_ERR_COLLISION. */
    int (*key_insert)(struct store *s, struct key_rec *rec);
    /* Reads key `id`. AK_ERR_NOT_FOUND if there is none. */
    int (*key_read)(struct store *s, int64_t id, struct key_rec *ret);
    /* Reads the key with `digest`. AK_ERR_NOT_FOUND if there is none. */
    int (*key_read_digest)(struct store *s, const uint8_t digest[DIGEST_LEN], struct key_rec *ret);
    /* The id of the account's primary key, 0 if none. */
    int (*key_primary)(struct store *s, int64_t account_id, int64_t *ret_id);
    /* Writes rec's name, active and primary; sets rec->version. AK_ERR_NOT_FOUND if the row is gone. */
    int (*key_write)(struct store *s, struct key_rec *rec);
    /* Deletes key `id` of `account_id`. AK_ERR_NOT_FOUND if there is none. */
    int (*key_remove)(struct store *s, int64_t account_id, int64_t id);
    /* Raises last_used of each listed key to at least `at` (never lowers it). */
    int (*uses_raise)(struct store *s, const struct key_use *v, size_t n);
    /* Optional (NULL where no other process listens): tells the others, at commit, which keys changed / were used. */
    int (*announce_keys)(struct store *s, const int64_t *ids, size_t n);
    int (*announce_uses)(struct store *s, const struct key_use *v, size_t n);

    /* ---- outside transactions ---- */
    /* Reads key `id`. AK_ERR_NOT_FOUND if there is none. */
    int (*key_get)(struct store *s, int64_t id, struct key_rec *ret);
    /* Calls `cb` for every key, in one snapshot. */
    int (*key_load)(struct store *s, store_key_cb cb, void *arg);
    /* Sets *ret_changed when another process changed the data since the last call. */
    int (*poll_changed)(struct store *s, bool *ret_changed);
    /*
     * Optional (NULL where changes cannot come from elsewhere but through
     * poll_changed): starts reporting other processes' changes to `ops`
     * until the store is freed. Reconnects by itself; calls resync after
     * every (re)connection.
     */
    int (*watch)(struct store *s, const struct store_watch_ops *ops, void *arg);
};

struct store {
    const struct store_ops *ops;
};

/*
 * Opens (creating and migrating as needed) the store named by `uri`: a file
 * path selects SQLite. On failure returns an error and writes one line into
 * `err`.
 */
int store_open(const char *uri, struct store **ret, char *err, size_t errlen);

/* Closes `s`; accepts NULL. */
void store_free(struct store *s);

/*
 * The writes (txn.c), each one transaction over the primitives above,
 * durable when they return 0. On a lost commit answer they settle it and
 * answer the real outcome: 0 if it committed, AK_ERR_UNAVAILABLE if it did
 * not (nothing changed), AK_ERR_OUTCOME_UNKNOWN when that cannot be told.
 */

/*
 * Creates an account named `name` and its primary key from `primary`
 * (digest, prefix, name, type, created_at set by the caller). Sets
 * primary->id, ->account_id, ->version and *ret_account_id.
 */
int store_account_create(struct store *s, const char *name, int64_t now, struct key_rec *primary, int64_t *ret_account_id);

/* Inserts `rec` for rec->account_id unless that account has `max_keys` keys (AK_ERR_LIMIT). Sets rec->id and rec->version. */
int store_key_insert(struct store *s, struct key_rec *rec, unsigned max_keys);

/*
 * Updates key `id` of `account_id` holding the account's lock: reads the
 * row and the primary, asks `fn` for the new row, demotes the old primary
 * if the key becomes primary, writes. On 0, *ret is the key's new row and
 * *ret_demoted the old primary's (ret_demoted->id is 0 when none was
 * demoted). AK_ERR_NOT_FOUND if the key does not exist; `fn`'s error as is.
 */
int store_key_update(struct store *s, int64_t account_id, int64_t id, store_update_fn fn, void *arg, struct key_rec *ret,
                     struct key_rec *ret_demoted);

/* Deletes key `id` of `account_id` if `fn` agrees. AK_ERR_NOT_FOUND if there is none. */
int store_key_delete(struct store *s, int64_t account_id, int64_t id, store_delete_fn fn, void *arg);

/* Raises last_used of each listed key to at least `at`, in one transaction. A lost commit answer is AK_ERR_UNAVAILABLE: retry. */
int store_last_used_flush(struct store *s, const struct key_use *v, size_t n);

/* Whether `uri` names a PostgreSQL database (postgresql:// or postgres://). */
bool store_is_postgres(const char *uri);

/* Backend constructors (store_open picks one). */
int store_sqlite_open(const char *path, struct store **ret, char *err, size_t errlen);
int store_postgres_open(const char *uri, struct store **ret, char *err, size_t errlen);

#endif
