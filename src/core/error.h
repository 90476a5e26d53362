/*
 * error: the one error enum every layer returns.
 *
 * Functions return 0 on success or one of these negative codes. Codes carry
 * meaning across layers (the store says AK_ERR_LIMIT, HTTP maps it to 409);
 * they never carry secrets.
 */
#ifndef APIKEYD_CORE_ERROR_H
#define APIKEYD_CORE_ERROR_H

enum ak_err {
    AK_OK = 0,
    AK_ERR_NOMEM = -1,             /* allocation failed */
    AK_ERR_IO = -2,                /* file system error */
    AK_ERR_STORE = -3,             /* the database failed (not the client's fault) */
    AK_ERR_UNAVAILABLE = -4,       /* the database is unreachable, full or read-only */
    AK_ERR_NOT_FOUND = -5,         /* no such key (or not visible to the caller) */
    AK_ERR_FORBIDDEN = -6,         /* a sandbox key reaching for production */
    AK_ERR_LIMIT = -7,             /* the account has its maximum number of keys */
    AK_ERR_PRIMARY_PROTECTED = -8, /* the change would leave the account without a primary */
    AK_ERR_PRIMARY_INVALID = -9,   /* only an active production key may be primary */
    AK_ERR_INVALID = -10,          /* the request body breaks a validation rule */
    AK_ERR_JSON = -11,             /* the request body is not acceptable JSON */
    AK_ERR_KEY_FORMAT = -12,       /* not a well-formed key, or its checksum is wrong */
    AK_ERR_KEY_UNKNOWN = -13,      /* well-formed but no such key */
    AK_ERR_KEY_INACTIVE = -14,     /* a known key that was deactivated */
    AK_ERR_MISSING_KEY = -15,      /* no credentials presented */
    AK_ERR_COLLISION = -16,        /* a fresh key collided with an existing one; retry */
    AK_ERR_ARG = -17,              /* a bad argument from the caller (programming or configuration error) */
    AK_ERR_SECRET = -18,           /* the secret file is unusable */
    AK_ERR_OUTCOME_UNKNOWN = -19,  /* a write may or may not have been applied (the store did not confirm either way) */
    AK_ERR_STALE = -20,            /* the in-memory keys may be stale: the shared store has been silent too long */
    AK_ERR_EXISTS = -21,           /* an account with this external_id exists already */
    AK_ERR_SUSPENDED = -22,        /* the key's account is suspended */
    AK_ERR_BELOW_COUNT = -23,      /* a key cap below the account's number of keys */
    AK_ERR_SIGNATURE = -24,        /* a signature that does not verify (leak reports) */
    AK_ERR_EXPIRED = -25,          /* the key is past its expires_at */
    AK_ERR_LEAKED = -26,           /* the key was reported leaked: deactivated for good */
    AK_ERR_ROTATED = -27,          /* the key was rotated already */
    AK_ERR_SCOPE = -28,            /* the key lacks a scope the request needs, or would grant one it lacks */
    AK_ERR_IP = -29,               /* the client's address is not in the key's allowed_ips */
    AK_ERR_RATE_LIMITED = -30,     /* the key is over its rate limit in this window */
    AK_ERR_QUOTA = -31,            /* the key's quota is spent */
    AK_ERR_QUOTA_LEASE = -32,      /* the key's quota has no credits here: lease them (keys_quota_settle) to decide */
};

/* Returns a static, human-readable description of `err`. Never NULL. */
const char *ak_strerror(int err);

#endif
