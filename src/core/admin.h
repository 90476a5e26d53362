/*
 * admin: operators' admin tokens. A token authenticates the operator API
 * (/v1/admin/...) and nothing else; a key never authenticates it. Tokens
 * have the keys' format with their own kind (<brand>_admin_...), are kept
 * as HMAC digests only, and every instance follows creation and
 * revocation like a key's.
 */
#ifndef APIKEYD_CORE_ADMIN_H
#define APIKEYD_CORE_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "core/account.h"
#include "core/audit.h"

struct keys;

/* Called for each admin token by admin_token_list (never with the token itself: there is none to give). */
typedef int (*admin_token_cb)(void *arg, const struct token_rec *rec);

/*
 * Verifies the Authorization header value `hdr` (`len` bytes; NULL when
 * absent) as an admin token. On 0, fills ret's actor (admin_token, id,
 * prefix). Errors: AK_ERR_MISSING_KEY, AK_ERR_KEY_FORMAT (also an account's
 * key), AK_ERR_KEY_UNKNOWN, AK_ERR_STALE (see keys_authenticate).
 */
int admin_authenticate(struct keys *k, const char *hdr, size_t len, struct audit_origin *ret);

/*
 * Creates an admin token named `name`. On 0, *ret is its record and
 * `ret_token` (at least KEYFMT_MAX_LEN + 1 bytes) the token in clear, shown
 * once; the caller wipes it.
 */
int admin_token_create(struct keys *k, const struct audit_origin *origin, const char *name, struct token_rec *ret, char *ret_token,
                       size_t tokensz);

/* Revokes admin token `id` on every instance. AK_ERR_NOT_FOUND if there is none. */
int admin_token_revoke(struct keys *k, const struct audit_origin *origin, int64_t id);

/* The id of the admin token with `digest` (compared in constant time). AK_ERR_NOT_FOUND if none. */
int admin_token_find(struct keys *k, const uint8_t digest[DIGEST_LEN], int64_t *ret_id);

/* Calls `cb` for every admin token, from the store, in id order. */
int admin_token_list(struct keys *k, admin_token_cb cb, void *arg);

#endif
