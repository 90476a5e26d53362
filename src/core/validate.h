/*
 * validate: turns an untrusted request body into a checked request, or into
 * a precise reason why not. Pure functions: no I/O, no logging, no state.
 */
#ifndef APIKEYD_CORE_VALIDATE_H
#define APIKEYD_CORE_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/account.h"
#include "core/key.h"

#define VALIDATE_BODY_MAX (64 * 1024)
#define VALIDATE_DEPTH_MAX 32
#define VALIDATE_MSG_MAX 160
#define VALIDATE_EXPIRY_MAX_S (10 * 366 * 86400LL) /* expires_at at most 10 years ahead (leap days included) */
#define VALIDATE_GRACE_DEFAULT_S 86400             /* a rotation's default overlap */
#define VALIDATE_GRACE_MAX_S 2592000               /* 30 days */

/* A key's restrictions as a request sets them: `set_*` when the field was sent, `has_*` when it is not null. */
struct policy_req {
    bool set_scopes, has_scopes, set_ips, has_ips;
    char scopes[SCOPE_TEXT_MAX];          /* canonical (scope.h) */
    char allowed_ips[GUARD_IPS_TEXT_MAX]; /* canonical (guard.h) */
    /* "rate_limit": {"limit", "window_seconds"} or null (limits.h ranges) */
    bool set_rate, has_rate;
    int64_t rate_limit;
    int32_t rate_window;
    /* "remaining": a count or null (unlimited); "refill": {"amount", "interval"} or null */
    bool set_quota, has_quota, set_refill, has_refill;
    int64_t remaining;
    int64_t refill_amount;
    int32_t refill_interval; /* enum refill_interval */
};

struct create_req {
    char name[KEY_NAME_MAX_BYTES + 1];
    enum key_type type;
    int64_t expires_at; /* 0: never */
    struct policy_req policy;
};

struct patch_req {
    bool has_name, has_active, has_primary, has_expires_at;
    char name[KEY_NAME_MAX_BYTES + 1];
    bool active, primary;
    int64_t expires_at; /* 0: null, clear it */
    struct policy_req policy;
};

/*
 * Returns 0 if `s` (`len` bytes of valid UTF-8) is an acceptable key name:
 * strict UTF-8, 1 to KEY_NAME_MAX_CHARS code points, not only white space
 * (Unicode's), no control characters. Otherwise AK_ERR_INVALID with a reason in `msg`.
 */
int validate_name(const char *s, size_t len, char *msg, size_t msglen);

/*
 * Returns 0 if the JSON text nests arrays and objects at most `max` deep,
 * AK_ERR_JSON otherwise. Runs before the parser so that no input can make it
 * recurse deeply.
 */
int validate_json_depth(const char *body, size_t len, int max);

/*
 * Parses a create body ({"name", "key_type"}). Returns 0 and fills `ret`, or
 * AK_ERR_JSON (not parseable JSON) / AK_ERR_INVALID (breaks a rule), with a
 * one-line reason in `msg`.
 */
int validate_create(const char *body, size_t len, struct create_req *ret, char *msg, size_t msglen);

/* Same for an update body ({"name", "is_active", "is_primary", "expires_at", "scopes", "allowed_ips"}, at least one). */
int validate_patch(const char *body, size_t len, struct patch_req *ret, char *msg, size_t msglen);

/*
 * Whether `t`, a parsed expires_at, is acceptable at `now`: in the future
 * and at most 10 years ahead. 0 or AK_ERR_INVALID with a reason.
 */
int validate_expiry(int64_t t, int64_t now, char *msg, size_t msglen);

/*
 * Parses a rotation body: none at all, or {"grace_period_seconds": 0..2592000}.
 * *ret_grace is VALIDATE_GRACE_DEFAULT_S when absent. Errors as validate_create.
 */
int validate_rotate(const char *body, size_t len, int64_t *ret_grace, char *msg, size_t msglen);

/* An operator's new account: {"name", "external_id"?, "max_keys"?}. external_id "" and max_keys 0 when absent or null. */
struct account_create_req {
    char name[KEY_NAME_MAX_BYTES + 1];
    char external_id[ACCOUNT_EXTERNAL_ID_MAX + 1];
    unsigned max_keys;
};

/* A change to an account: {"name"?, "status"?, "max_keys"?}, at least one. max_keys 0: null, the server's default. */
struct account_patch_req {
    bool has_name, has_status, has_max_keys;
    char name[KEY_NAME_MAX_BYTES + 1];
    bool suspended;
    unsigned max_keys;
};

/* A key an operator issues for an account: {"name", "key_type", "make_primary"?}. */
struct issue_req {
    struct create_req key;
    bool make_primary;
};

/* Returns 0 if `s` (`len` bytes) is an acceptable external_id: 1..255 bytes of printable ASCII, no space. */
int validate_external_id(const char *s, size_t len, char *msg, size_t msglen);

/* Parse the operator bodies above, as validate_create does. */
int validate_account_create(const char *body, size_t len, struct account_create_req *ret, char *msg, size_t msglen);
int validate_account_patch(const char *body, size_t len, struct account_patch_req *ret, char *msg, size_t msglen);
int validate_issue(const char *body, size_t len, struct issue_req *ret, char *msg, size_t msglen);

#endif
