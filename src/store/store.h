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

#include "core/account.h"
#include "core/audit.h"
#include "core/key.h"
#include "core/usage.h"

struct store;

/*
 * One key's ask of a shared rate limit's window (store_ops.rate_lease):
 * instances lease the slots of a window before they admit requests in it,
 * so that together they never admit more than the limit.
 */
struct rate_ask {
    int64_t key_id;
    int64_t window_s;
    int64_t window_start; /* Unix seconds, a multiple of window_s */
    int64_t limit;
    int64_t owed; /* admitted here without a lease (see ratesync.h): taken whatever is left */
    int64_t want; /* slots to lease, as far as the limit allows */
    /* the answer */
    int64_t granted; /* of `want` */
    int64_t total;   /* slots every instance holds in the window, after this ask */
    void *cookie;    /* the caller's (rate_lease sorts the asks) */
};

/* A quota's row (key.h): its balance in the store, refill, period and version. */
struct quota_row {
    int64_t id;
    int64_t remaining;
    int64_t refill_amount; /* 0: none */
    int32_t interval;      /* enum refill_interval */
    int64_t period;
    int64_t version;
};

/*
 * Fills `ret` from a quota row's values as a store reads them back (the
 * interval as its name), with key_set_quota's rules; false when out of range
 * or not a quota (id 0).
 */
bool store_quota_row(struct quota_row *ret, int64_t id, int64_t remaining, int64_t refill_amount, const char *interval,
                     size_t interval_len, int64_t period, int64_t version);

/* Called once per key by key_load, in id order. A non-zero return stops the walk and is returned. */
typedef int (*store_key_cb)(void *arg, const struct key_rec *rec);

/* The same for accounts, admin tokens and audit events (each valid only during the call). */
typedef int (*store_account_cb)(void *arg, const struct account_rec *rec);
typedef int (*store_token_cb)(void *arg, const struct token_rec *rec);
typedef int (*store_event_cb)(void *arg, const struct audit_event *ev);

/* A page of accounts: ids above `after`, ascending, at most `limit`; only `external_id` when it is not "", else only names like
 * `name_like`. */
struct account_query {
    int64_t after;
    unsigned limit;
    const char *external_id;
    const char *name_like; /* with external_id "": names matching this LIKE pattern (case-insensitive, '\\' escapes), or NULL */
};

/*
 * A page of events: ids below `before` (0: from the newest), descending, at
 * most `limit`; filters when non-zero / non-NULL. `key_id` (events about that
 * key) goes with `account_id` and without `action`.
 */
struct event_query {
    int64_t before;
    unsigned limit;
    int64_t account_id;
    const char *action;
    int64_t key_id;
};

/* What a change to an account asks of the rules, run inside the transaction (see store_account_update). */
typedef int (*store_account_fn)(void *arg, const struct account_rec *cur, struct account_rec *next);

/* Which kind of rows a transaction announces to other instances. */
enum store_topic {
    TOPIC_KEYS = 'k',     /* these keys changed: re-read them */
    TOPIC_ACCOUNTS = 'a', /* these accounts' status changed */
    TOPIC_TOKENS = 't',   /* admin tokens changed */
};

/*
 * The rules, handed in by core and run inside the write transaction on the
 * store's current state (another instance may have changed it): `cur` is the
 * key's row, `primary_id` the account's primary key (0 if none). Fills
 * `next` with the row to write, or returns an AK_ERR_* that rolls back.
 */
typedef int (*store_update_fn)(void *arg, const struct key_rec *cur, int64_t primary_id, struct key_rec *next);

/*
 * The rules of a rotation, run inside its transaction on the old key's
 * current row `cur`: fills `old` (the old key's new row: expiry, primary
 * given up) and `fresh` (the new key, whose digest, prefix and created_at
 * the caller set), or returns an AK_ERR_* that rolls back.
 */
typedef int (*store_rotate_fn)(void *arg, const struct key_rec *cur, struct key_rec *old, struct key_rec *fresh);

/* One key of a batch change (store_keys_update_batch). */
struct store_batch_item {
    int64_t account_id, id;
    const char *details; /* the event's details (JSON object text), or NULL for the origin's */
    int result;          /* out: 0 changed; AK_ERR_NOT_FOUND (no such key); or the rule's refusal (left as it was) */
};

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
    /* Accounts were suspended, reactivated or deleted elsewhere: `suspended` is the whole current set, ascending. */
    void (*suspended)(void *arg, const int64_t *suspended, size_t n);
    /* Admin tokens were created or revoked elsewhere: reload them (store_ops.token_load). */
    void (*tokens)(void *arg);
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
    /* Inserts `rec` (name, external_id, suspended, max_keys, created_at) with no keys; sets rec->id. */
    int (*account_insert)(struct store *s, struct account_rec *rec);
    /* Locks the account's row until the end of the transaction. AK_ERR_NOT_FOUND if there is none. */
    int (*account_lock)(struct store *s, int64_t account_id);
    /* Reads account `id`. AK_ERR_NOT_FOUND if there is none. */
    int (*account_read)(struct store *s, int64_t id, struct account_rec *ret);
    /* The id of the account with `external_id`, AK_ERR_NOT_FOUND if none. */
    int (*account_find_external)(struct store *s, const char *external_id, int64_t *ret_id);
    /* Writes rec's name, suspended and max_keys. AK_ERR_NOT_FOUND if the row is gone. */
    int (*account_write)(struct store *s, const struct account_rec *rec);
    /* Deletes account `id` and every key of it; *ret_ids (malloc'd, caller frees) lists the keys' ids. */
    int (*account_remove)(struct store *s, int64_t id, int64_t **ret_ids, size_t *ret_n);
    /*
     * Counts one more key for the account if it has fewer than its own cap,
     * or than `default_max` when it has none (AK_ERR_LIMIT otherwise).
     */
    int (*account_take_key)(struct store *s, int64_t account_id, unsigned default_max);
    /* Counts one key less. */
    int (*account_return_key)(struct store *s, int64_t account_id);
    /*
     * Counts one more key for a rotation: past the cap, but not past twice
     * the account's cap (or `default_max`): AK_ERR_LIMIT there. The caller
     * holds the account's lock.
     */
    int (*account_add_key)(struct store *s, int64_t account_id, unsigned default_max);
    /* Inserts `rec`; sets rec->id and rec->version. A digest in use gives AK_ERR_COLLISION. */
    int (*key_insert)(struct store *s, struct key_rec *rec);
    /* Reads key `id`. AK_ERR_NOT_FOUND if there is none. */
    int (*key_read)(struct store *s, int64_t id, struct key_rec *ret);
    /* Reads the key with `digest`. AK_ERR_NOT_FOUND if there is none. */
    int (*key_read_digest)(struct store *s, const uint8_t digest[DIGEST_LEN], struct key_rec *ret);
    /* The id of the account's primary key, 0 if none. */
    int (*key_primary)(struct store *s, int64_t account_id, int64_t *ret_id);
    /*
     * Writes rec's name, active, primary, expires_at, rotated_to, leaked_at
     * and activated_at (a changed expires_at clears expiry_seen, which was
     * about the old one); sets rec->version. AK_ERR_NOT_FOUND if the row is gone.
     */
    int (*key_write)(struct store *s, struct key_rec *rec);
    /* Deletes key `id` of `account_id`. AK_ERR_NOT_FOUND if there is none. */
    int (*key_remove)(struct store *s, int64_t account_id, int64_t id);
    /* Raises last_used of each listed key to at least `at` (never lowers it). */
    int (*uses_raise)(struct store *s, const struct key_use *v, size_t n);
    /*
     * Records that these keys were refused as expired at the expires_at in
     * `at` (expiry_seen), where that is still their expires_at; others and
     * deleted keys are skipped.
     */
    int (*expiry_seen)(struct store *s, const struct key_use *v, size_t n);
    /*
     * Optional (NULL where one write runs at a time over the whole store):
     * locks the key rows `ids` (ascending) until the end of the transaction.
     * Every write that changes several key rows takes them in this order, so
     * that two transactions never wait on each other in a cycle.
     */
    int (*keys_lock)(struct store *s, const int64_t *ids, size_t n);
    /*
     * Claims the background job `name` for this period: sets *ret_claimed
     * (and moves its next due time to now + interval) when it was due at
     * `now`, so that of several instances exactly one runs each period.
     */
    int (*sweep_claim)(struct store *s, const char *name, int64_t now, int64_t interval, bool *ret_claimed);
    /* Inserts admin token `rec`; sets rec->id. A digest in use gives AK_ERR_COLLISION. */
    int (*token_insert)(struct store *s, struct token_rec *rec);
    /* Reads admin token `id`. AK_ERR_NOT_FOUND if there is none. */
    int (*token_read)(struct store *s, int64_t id, struct token_rec *ret);
    /* Deletes admin token `id`. AK_ERR_NOT_FOUND if there is none. */
    int (*token_remove)(struct store *s, int64_t id);
    /* Appends `ev`; sets ev->id (ascending per database). */
    int (*event_append)(struct store *s, struct audit_event *ev);
    /* Deletes at most `max` events older than `before`; sets *ret_n to how many. */
    int (*events_prune)(struct store *s, int64_t before, unsigned max, int64_t *ret_n);
    /* Adds each row's counts to the key's row for that hour (creating it). */
    int (*usage_add)(struct store *s, const struct usage_row *rows, size_t n);
    /* Deletes at most `max` usage rows of hours before `before`; sets *ret_n to how many. */
    int (*usage_prune)(struct store *s, int64_t before, unsigned max, int64_t *ret_n);
    /*
     * Optional (NULL where no other process listens): tells the others, at
     * commit, which rows of `topic` changed / which keys were used.
     */
    int (*announce)(struct store *s, enum store_topic topic, const int64_t *ids, size_t n);
    int (*announce_uses)(struct store *s, const struct key_use *v, size_t n);

    /* ---- outside transactions ---- */
    /* Reads key `id`. AK_ERR_NOT_FOUND if there is none. */
    int (*key_get)(struct store *s, int64_t id, struct key_rec *ret);
    /* Calls `cb` for every key, in one snapshot. */
    int (*key_load)(struct store *s, store_key_cb cb, void *arg);
    /* The ids of the suspended accounts, ascending (*ret malloc'd, NULL when none; caller frees). */
    int (*suspended_load)(struct store *s, int64_t **ret, size_t *ret_n);
    /* Calls `cb` for every admin token, in id order. */
    int (*token_load)(struct store *s, store_token_cb cb, void *arg);
    /* Reads account `id` (key_count included). AK_ERR_NOT_FOUND if there is none. */
    int (*account_get)(struct store *s, int64_t id, struct account_rec *ret);
    /* Calls `cb` for a page of accounts (struct account_query). */
    int (*account_list)(struct store *s, const struct account_query *q, store_account_cb cb, void *arg);
    /* Calls `cb` for a page of events (struct event_query). */
    int (*event_list)(struct store *s, const struct event_query *q, store_event_cb cb, void *arg);
    /* Calls `cb` with the sums of the usage rows `q` selects, per bucket or per key (struct usage_query). */
    int (*usage_sum)(struct store *s, const struct usage_query *q, usage_sum_cb cb, void *arg);
    /* Sets *ret_changed when another process changed the data since the last call. */
    int (*poll_changed)(struct store *s, bool *ret_changed);
    /*
     * Reads quota `id`'s row, locked until the transaction ends (in one).
     * AK_ERR_NOT_FOUND when it is gone.
     */
    int (*quota_read)(struct store *s, int64_t id, struct quota_row *ret);
    /* Sets quota `row->id`'s balance and period (a lease or a return; the version stays). In a transaction. */
    int (*quota_balance)(struct store *s, const struct quota_row *row);
    /*
     * Optional (NULL for a store only one process serves): leases rate-limit
     * slots for `n` asks with distinct (key_id, window_start), in one round
     * trip, filling in each ask's answer. Any thread; never waits long (a
     * store that does not answer within a second is an error).
     */
    int (*rate_lease)(struct store *s, struct rate_ask *asks, size_t n);
    /*
     * Optional, with rate_lease: records that instance `instance_id` is alive
     * and sets *ret_live to the instances alive now (itself included); drops
     * the windows that ended more than an hour before `now`.
     */
    int (*rate_beat)(struct store *s, int64_t instance_id, int64_t now, unsigned *ret_live);
    /* With rate_beat: instance `instance_id` stops (a clean shutdown), so that the others need not wait to stop counting it. */
    int (*rate_leave)(struct store *s, int64_t instance_id);
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
 * Every write that changes something records it in the audit log in the
 * same transaction, as done by `origin`. `default_max` is the server's
 * --max-keys, for accounts without a cap of their own.
 */

/*
 * Creates account `acct` (name, external_id, max_keys, created_at set by
 * the caller) and its primary key from `primary` (digest, prefix, name,
 * type, created_at). Sets acct->id, primary->id, ->account_id, ->version.
 * An external_id already taken: AK_ERR_EXISTS, with acct->id set to the
 * account that has it, and nothing created.
 */
int store_account_create(struct store *s, const struct audit_origin *origin, struct account_rec *acct, struct key_rec *primary);

/*
 * Updates account `id`: reads it, asks `fn` for the new row (fn may refuse
 * with an error), writes. *ret is the account's new row (key_count
 * included). AK_ERR_NOT_FOUND if there is none.
 */
int store_account_update(struct store *s, const struct audit_origin *origin, int64_t id, store_account_fn fn, void *arg,
                         struct account_rec *ret);

/* Deletes account `id` and all its keys; *ret_ids (malloc'd; caller frees) are the keys deleted. */
int store_account_delete(struct store *s, const struct audit_origin *origin, int64_t id, int64_t **ret_ids, size_t *ret_n);

/*
 * Inserts `rec` for rec->account_id unless that account is at its cap
 * (AK_ERR_LIMIT), or has no row (AK_ERR_NOT_FOUND). Sets rec->id and
 * rec->version. When rec->primary, the account's primary key (if any) is
 * demoted in the same transaction: *ret_demoted is its new row
 * (ret_demoted->id is 0 when there was none; ret_demoted may be NULL when
 * rec is not primary).
 */
int store_key_insert(struct store *s, const struct audit_origin *origin, struct key_rec *rec, unsigned default_max,
                     struct key_rec *ret_demoted);

/* Inserts admin token `rec` (name, prefix, digest, created_at). Sets rec->id. */
int store_token_create(struct store *s, const struct audit_origin *origin, struct token_rec *rec);

/* Revokes (deletes) admin token `id`. AK_ERR_NOT_FOUND if there is none. */
int store_token_revoke(struct store *s, const struct audit_origin *origin, int64_t id);

/* Deletes at most `max` events older than `before`, in one short transaction; sets *ret_n to how many. */
int store_events_prune(struct store *s, int64_t before, unsigned max, int64_t *ret_n);

/* The same for usage rows of hours before `before`. */
int store_usage_prune(struct store *s, int64_t before, unsigned max, int64_t *ret_n);

/*
 * Updates key `id` of `account_id` holding the account's lock: reads the
 * row and the primary, asks `fn` for the new row, demotes the old primary
 * if the key becomes primary, writes. On 0, *ret is the key's new row and
 * *ret_demoted the old primary's (ret_demoted->id is 0 when none was
 * demoted). AK_ERR_NOT_FOUND if the key does not exist; `fn`'s error as is.
 */
int store_key_update(struct store *s, const struct audit_origin *origin, int64_t account_id, int64_t id, store_update_fn fn,
                     void *arg, struct key_rec *ret, struct key_rec *ret_demoted);

/* Deletes key `id` of `account_id` if `fn` agrees. AK_ERR_NOT_FOUND if there is none. */
int store_key_delete(struct store *s, const struct audit_origin *origin, int64_t account_id, int64_t id, store_delete_fn fn,
                     void *arg);

/*
 * Rotates key `id` of `account_id` holding the account's lock: reads the
 * row, asks `fn` for the old key's new row and the new key, demotes the
 * old key before inserting the new one (which may become primary), links
 * the two (rotated_to / rotated_from) and records key.created and
 * key.rotated. The new key counts toward the cap, which it may pass (up to
 * twice it: AK_ERR_LIMIT beyond). On 0, *fresh is the new key's row (id, version set), *ret_old the
 * old key's. AK_ERR_NOT_FOUND if the key does not exist; `fn`'s error as is.
 */
int store_key_rotate(struct store *s, const struct audit_origin *origin, int64_t account_id, int64_t id, unsigned default_max,
                     store_rotate_fn fn, void *arg, struct key_rec *fresh, struct key_rec *ret_old);

/*
 * Applies `fn` to each of `items` (sorted by account id) in one
 * transaction, recording `action` for each key it changes with the item's
 * details: a key that is gone or that `fn` refuses is skipped (its result
 * says why), not an error. ret_rows[i] is item i's new row when its result
 * is 0. A lost commit answer is AK_ERR_OUTCOME_UNKNOWN (the caller
 * reloads); every item is idempotent, so a retry is harmless.
 */
int store_keys_update_batch(struct store *s, const struct audit_origin *origin, enum audit_action action,
                            struct store_batch_item *items, size_t n, store_update_fn fn, void *arg, struct key_rec *ret_rows);

/* Records that these keys were refused as expired at v[i].at (see key_rec.expiry_seen), in one transaction. */
int store_expiry_seen(struct store *s, const struct key_use *v, size_t n);

/*
 * Reads the keys with the given digests, in one read transaction: found[i]
 * says whether recs[i] was filled. For what this instance's memory may not
 * hold yet (a key just made elsewhere).
 */
int store_keys_by_digest(struct store *s, const uint8_t (*digests)[DIGEST_LEN], size_t n, struct key_rec *recs, bool *found);

/* Claims background job `name` for one period (store_ops.sweep_claim), in one transaction. */
int store_sweep_claim(struct store *s, const char *name, int64_t now, int64_t interval, bool *ret_claimed);

/* A lease of a quota's credits (store_quota_lease). */
struct quota_lease {
    int64_t granted; /* credits taken out of the balance for the caller */
    int64_t left;    /* the balance after */
    int64_t period;  /* the refill period they are for */
    int64_t version; /* the quota's version */
};

/*
 * Takes up to `want` credits of quota `id` out of its balance at `now`
 * (refilling it first when a new period began), in one transaction: at
 * least `min` if the balance has them (the request that asks), and beyond
 * that no more than a quarter of the balance, so that instances share a
 * small one. A commit whose outcome is unknown counts as nothing granted
 * (the credits may be lost, never spent twice).
 */
int store_quota_lease(struct store *s, int64_t id, int64_t want, int64_t min, int64_t now, struct quota_lease *ret);

/* Gives `amount` unspent credits back to quota `id`, unless it was written or refilled since they were leased. */
int store_quota_return(struct store *s, int64_t id, int64_t amount, int64_t version, int64_t period);

/*
 * Raises last_used of each listed key to at least `at` and adds the usage
 * rows, in one transaction. AK_ERR_OUTCOME_UNKNOWN when the commit's answer
 * was lost: raising last_used again is harmless, adding counts again is not.
 */
int store_uses_flush(struct store *s, const struct key_use *v, size_t n, const struct usage_row *rows, size_t nrows);

/* Whether `uri` names a PostgreSQL database (postgresql:// or postgres://). */
bool store_is_postgres(const char *uri);

/* Backend constructors (store_open picks one). */
int store_sqlite_open(const char *path, struct store **ret, char *err, size_t errlen);
int store_postgres_open(const char *uri, struct store **ret, char *err, size_t errlen);

/* The schema version each backend's migrations bring a database to (what store_open leaves it at). */
int store_sqlite_schema_latest(void);
int store_postgres_schema_latest(void);

/* ---- backups and checks (sqlite_backup.c, check.c): tools that read a database a server may be serving ---- */

/* What store_sqlite_backup wrote. */
struct store_backup_stats {
    int64_t bytes;
    int pages;
};

/*
 * Copies the SQLite database `path` into the new file `out` while servers
 * may be writing it: one read snapshot of the source (in WAL mode writers
 * go on), copied in steps with pauses between, into `out`.tmp (created
 * 0600), synced and renamed to `out`: `out` is the whole copy or absent.
 * Never writes the source; copies nothing else (not the secret file).
 * AK_ERR_ARG when `out` or `out`.tmp exists (nothing replaced); another
 * error when the copy failed (`out`.tmp removed). Every error writes one
 * line into `err`.
 */
int store_sqlite_backup(const char *path, const char *out, struct store_backup_stats *ret, char *err, size_t errlen);

/* The most problems store_check reports per check (one more says there are more). */
#define STORE_CHECK_MAX 100

/*
 * Called by store_check once per problem: `check` names the rule broken
 * (stable, for scripts), `message` says where (one line). A non-zero
 * return stops the check and is returned.
 */
typedef int (*store_problem_cb)(void *arg, const char *check, const char *message);

/*
 * Checks the database named by `uri` (a SQLite file or a postgresql:// URI)
 * on a read-only connection of its own, in one snapshot, never creating or
 * migrating it: SQLite's integrity_check; that the schema version is the
 * one this binary migrates to (older: needs migration; newer: unknown); and
 * on the current schema, the invariants: every account has exactly one
 * primary, production, without expiry or scopes, active unless reported
 * leaked; key_count is the number of the account's keys; no key without its
 * account; no key with a missing quota, no quota without a key, no quota
 * shared across accounts (skipped when integrity_check found damage).
 * Returns 0 when the checks ran (problems or not), with *ret_version the
 * schema version found (0: none; -1: unreadable in a damaged file); an
 * error with one line in `err` when the database cannot be opened or read.
 */
int store_check(const char *uri, store_problem_cb cb, void *arg, int *ret_version, char *err, size_t errlen);

#endif
