/*
 * store: the durable home of accounts and keys, behind one table of function
 * pointers that each backend fills in (SQLite now, PostgreSQL next).
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

struct store_ops {
    const char *name;
    /* Closes the backend and frees `s`. */
    void (*free)(struct store *s);
    /*
     * Creates an account named `name` and its primary key from `primary`
     * (digest, prefix, name, type, created_at set by the caller) in one
     * transaction. Sets primary->id, primary->account_id and *ret_account_id.
     */
    int (*account_create)(struct store *s, const char *name, int64_t now, struct key_rec *primary, int64_t *ret_account_id);
    /*
     * Inserts `rec` for rec->account_id unless that account already has
     * `max_keys` keys (AK_ERR_LIMIT). Sets rec->id. A digest that exists
     * already gives AK_ERR_COLLISION.
     */
    int (*key_insert)(struct store *s, struct key_rec *rec, unsigned max_keys);
    /*
     * Updates key `id` of `account_id` in one transaction that holds the
     * account's write lock: reads the row and the primary, asks `fn` for the
     * new row, demotes the old primary if the key becomes primary, writes.
     * On 0, *ret is the key's new row and *ret_demoted the old primary's new
     * row (ret_demoted->id is 0 when no key was demoted). AK_ERR_NOT_FOUND if
     * the key does not exist; `fn`'s error as is.
     */
    int (*key_update)(struct store *s, int64_t account_id, int64_t id, store_update_fn fn, void *arg, struct key_rec *ret,
                      struct key_rec *ret_demoted);
    /* Deletes key `id` of `account_id` if `fn` agrees. AK_ERR_NOT_FOUND if there is none. */
    int (*key_delete)(struct store *s, int64_t account_id, int64_t id, store_delete_fn fn, void *arg);
    /* Reads key `id`. AK_ERR_NOT_FOUND if there is none. */
    int (*key_get)(struct store *s, int64_t id, struct key_rec *ret);
    /* Calls `cb` for every key. */
    int (*key_load)(struct store *s, store_key_cb cb, void *arg);
    /* Raises last_used of each listed key to at least `at` (never lowers it), in one transaction. */
    int (*last_used_flush)(struct store *s, const struct key_use *v, size_t n);
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

/* Whether `uri` names a PostgreSQL database (postgresql:// or postgres://). */
bool store_is_postgres(const char *uri);

/* Backend constructors (store_open picks one). */
int store_sqlite_open(const char *path, struct store **ret, char *err, size_t errlen);
int store_postgres_open(const char *uri, struct store **ret, char *err, size_t errlen);

#endif
