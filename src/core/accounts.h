/*
 * accounts: the operator's side of the keys service: accounts (create,
 * list, change, suspend, delete), keys issued for an account, and the
 * audit log, with the opaque cursors that page through listings.
 *
 * Every change is one store transaction with its audit event, then the
 * catalog follows (as keys.h's writes do). Reads of accounts and events
 * come from the store: they are not on the verification path.
 */
#ifndef APIKEYD_CORE_ACCOUNTS_H
#define APIKEYD_CORE_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/account.h"
#include "core/audit.h"
#include "core/key.h"
#include "core/validate.h"

struct keys;

#define ACCOUNTS_LIST_MAX 1000 /* the largest page a listing gives */
#define ACCOUNTS_LIST_DEFAULT 100
#define CURSOR_MAX 64                                                        /* a cursor's length in text, at most */
#define ACCOUNTS_LISTING_MAX (AUDIT_NAME_MAX + ACCOUNT_EXTERNAL_ID_MAX + 64) /* a listing's name, with its NUL */

typedef int (*accounts_account_cb)(void *arg, const struct account_rec *rec);
typedef int (*accounts_event_cb)(void *arg, const struct audit_event *ev);

/*
 * Creates an account and its primary production key. On 0: *ret (the
 * account), *ret_key (the key's record) and `key` (the key in clear, shown
 * once). An external_id taken already: AK_ERR_EXISTS with ret->id set to
 * the account that has it, nothing created.
 */
int accounts_create(struct keys *k, const struct audit_origin *origin, const struct account_create_req *req,
                    struct account_rec *ret, struct key_rec *ret_key, char *key, size_t keysz);

/* Reads account `id`. AK_ERR_NOT_FOUND if there is none. */
int accounts_get(struct keys *k, int64_t id, struct account_rec *ret);

/* The cap that applies to `rec` (its own, or the server's). */
unsigned accounts_max_keys(const struct keys *k, const struct account_rec *rec);

/*
 * Calls `cb` for up to `limit` accounts after id `after`, ascending (only
 * the one with `external_id` when it is not NULL, else those whose name holds
 * `name`, case-insensitively for ASCII, when it is not NULL).
 */
int accounts_list(struct keys *k, int64_t after, unsigned limit, const char *external_id, const char *name, accounts_account_cb cb,
                  void *arg);

/*
 * Applies `req` to account `id`. AK_ERR_NOT_FOUND; AK_ERR_BELOW_COUNT when
 * max_keys would be below the account's number of keys.
 */
int accounts_update(struct keys *k, const struct audit_origin *origin, int64_t id, const struct account_patch_req *req,
                    struct account_rec *ret);

/* Deletes account `id` and all its keys (refused from then on by every instance). */
int accounts_delete(struct keys *k, const struct audit_origin *origin, int64_t id);

/*
 * Issues a key for account `id` (the operator's way to recover an account
 * whose primary key is lost): with make_primary it becomes the primary in
 * the same transaction, the old primary staying active. Errors:
 * AK_ERR_NOT_FOUND, AK_ERR_LIMIT, store errors.
 */
int accounts_issue_key(struct keys *k, const struct audit_origin *origin, int64_t id, const struct issue_req *req,
                       struct key_rec *ret, char *key, size_t keysz);

/*
 * Calls `cb` for up to `limit` events with ids below `before` (0: from the
 * newest), newest first; filters when account_id is non-zero and action non-NULL,
 * and to the events about key `key_id` (non-zero, with account_id).
 */
int accounts_events(struct keys *k, int64_t before, unsigned limit, int64_t account_id, const char *action, int64_t key_id,
                    accounts_event_cb cb, void *arg);

#define ACCOUNTS_PRUNE_BATCH 10000 /* events deleted per transaction, so that writes never wait long behind it */

/*
 * Deletes up to ACCOUNTS_PRUNE_BATCH audit events older than
 * `retention_days` (not an audited change: retention is policy). Sets
 * *ret_more when a full batch went, so that there may be more.
 */
int accounts_prune_events(struct keys *k, unsigned retention_days, bool *ret_more);

/*
 * A cursor: position `pos` in the listing named `listing` (a string that
 * names the listing and its filters), as text that only this server's
 * secret can make, into `out` (CURSOR_MAX + 1 bytes).
 */
void accounts_cursor_encode(struct keys *k, const char *listing, int64_t pos, char *out);

/*
 * The name of the accounts listing filtered to `external_id` or to `name`
 * (NULL: no filter), into `out` (ACCOUNTS_LISTING_MAX bytes): what its cursors are
 * made for. The HTTP API and the command line both name listings here, so
 * that a cursor from one pages on in the other.
 */
void accounts_listing_name(const char *external_id, const char *name, char *out);

/*
 * The same for an audit log: an account's own (`own`, of `account_id`,
 * filtered to key `key_id` unless 0), or the operators' (filtered to
 * `account_id` unless 0, `action` unless NULL).
 */
void accounts_events_listing_name(bool own, int64_t account_id, const char *action, int64_t key_id, char *out);

/* Reads a cursor of `listing`. Returns 0 and *ret_pos, or AK_ERR_INVALID (garbage, or another listing's). */
int accounts_cursor_decode(struct keys *k, const char *listing, const char *s, size_t len, int64_t *ret_pos);

#endif
