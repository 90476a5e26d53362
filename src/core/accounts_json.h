/*
 * accounts_json: the operator API's objects as JSON trees (jansson): the
 * account object, and a page of the accounts listing or of an audit log.
 * The HTTP API and the command line both print these trees, so that their
 * answers agree field for field. Nothing here is ever a key, a digest or a
 * secret; nothing here does I/O besides reading the store.
 */
#ifndef APIKEYD_CORE_ACCOUNTS_JSON_H
#define APIKEYD_CORE_ACCOUNTS_JSON_H

#include <jansson.h>
#include <stdint.h>

#include "core/account.h"

struct keys;

/*
 * The account object, fields in the contract's order (max_keys: the
 * account's own cap or `k`'s). A new reference (the caller decrefs), or
 * NULL when out of memory.
 */
json_t *accounts_json_account(struct keys *k, const struct account_rec *a);

/*
 * A page of the accounts listing, {"accounts": [...], "next_cursor": ...}:
 * up to `limit` accounts after id `after`, only the one with `external_id`
 * when it is not NULL; the next cursor is made for `listing`
 * (accounts_listing_name of the same filter). On 0, *ret is a new
 * reference; otherwise a store error or AK_ERR_NOMEM.
 */
int accounts_json_list(struct keys *k, const char *listing, int64_t after, unsigned limit, const char *external_id,
                       const char *name, json_t **ret);

/*
 * A page of an audit log, {"events": [...], "next_cursor": ...}: up to
 * `limit` events below id `before` (0: from the newest), newest first,
 * filtered as accounts_events does; the next cursor is made for `listing`
 * (accounts_events_listing_name). Returns as accounts_json_list.
 */
int accounts_json_events(struct keys *k, const char *listing, int64_t before, unsigned limit, int64_t account_id,
                         const char *action, int64_t key_id, json_t **ret);

#endif
