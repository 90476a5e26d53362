/*
 * scope: what a restricted key may do. A key's scopes are a list of 1 to
 * SCOPE_LIST_MAX names of the form [a-z0-9][a-z0-9:._-]{0,63}, each
 * optionally ending in ":*", a prefix wildcard ("posts:*" covers
 * "posts:write" and "posts:admin:delete"). apikeyd interprets only its own
 * management scopes (keys:read, keys:write, audit:read); every other name is
 * the API owner's vocabulary, stored and compared, never interpreted.
 *
 * A list is held as its canonical text: the names sorted (bytewise) without
 * repeats, joined by single spaces. That is what the store keeps, what
 * X-Key-Scopes shows, and what every check here reads. Inputs may come from
 * strangers (a request body, the X-Required-Scopes header of a gateway):
 * every function takes a length, never reads past it and never allocates.
 */
#ifndef APIKEYD_CORE_SCOPE_H
#define APIKEYD_CORE_SCOPE_H

#include <stdbool.h>
#include <stddef.h>

#define SCOPE_NAME_MAX 66 /* 64 characters, and ":*" */
#define SCOPE_LIST_MAX 50
/* The canonical text of a full list, with its NUL. */
#define SCOPE_TEXT_MAX (SCOPE_LIST_MAX * (SCOPE_NAME_MAX + 1) + 1)

#define SCOPE_KEYS_READ "keys:read"
#define SCOPE_KEYS_WRITE "keys:write"
#define SCOPE_AUDIT_READ "audit:read"

/* Whether `s` (`len` bytes) is one well-formed scope name (wildcard or not). */
bool scope_name_ok(const char *s, size_t len);

/*
 * Builds the canonical text of a list from `n` names (`names[i]`, `lens[i]`
 * bytes each) into `out` (SCOPE_TEXT_MAX bytes). 0, or AK_ERR_INVALID with
 * a reason in `msg` (bad name, none, more than SCOPE_LIST_MAX).
 */
int scope_canonical(const char *const *names, const size_t *lens, size_t n, char *out, char *msg, size_t msglen);

/* Whether the list `have` (canonical text, `hlen` bytes) covers the one scope `want` (`wlen` bytes). */
bool scope_covers(const char *have, size_t hlen, const char *want, size_t wlen);

/* Whether every scope of the list `want` (canonical text) is covered by the list `have`. */
bool scope_list_within(const char *have, size_t hlen, const char *want, size_t wlen);

/*
 * Checks the required scopes a gateway sends (X-Required-Scopes: names
 * separated by spaces or commas) against `have`. Returns 0 when all are
 * covered, AK_ERR_INVALID when the header is not a list of 1 to
 * SCOPE_LIST_MAX well-formed names, and 1 when one is not covered, with
 * that name in *ret_missing / *ret_missing_len (pointing into `want`).
 */
int scope_check_required(const char *have, size_t hlen, const char *want, size_t wlen, const char **ret_missing,
                         size_t *ret_missing_len);

/* Whether every name of a well-formed required-scopes value (scope_required_ok) is covered by `have`; the hot path's check. */
bool scope_all_covered(const char *have, size_t hlen, const char *want, size_t wlen);

/* Whether a required-scopes header value is well formed (as scope_check_required reads it). */
bool scope_required_ok(const char *want, size_t wlen);

#endif
