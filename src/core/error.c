/*
 * error: descriptions of the error codes in error.h.
 */
#include "core/error.h"

const char *ak_strerror(int err)
{
    switch (err) {
    case AK_OK:
        return "success";
    case AK_ERR_NOMEM:
        return "out of memory";
    case AK_ERR_IO:
        return "input/output error";
    case AK_ERR_STORE:
        return "database error";
    case AK_ERR_UNAVAILABLE:
        return "database unavailable";
    case AK_ERR_NOT_FOUND:
        return "not found";
    case AK_ERR_FORBIDDEN:
        return "forbidden";
    case AK_ERR_LIMIT:
        return "key limit reached";
    case AK_ERR_PRIMARY_PROTECTED:
        return "the primary key cannot be deleted, deactivated or demoted";
    case AK_ERR_PRIMARY_INVALID:
        return "only an active production key can be primary";
    case AK_ERR_INVALID:
        return "validation error";
    case AK_ERR_JSON:
        return "invalid JSON";
    case AK_ERR_KEY_FORMAT:
        return "malformed API key";
    case AK_ERR_KEY_UNKNOWN:
        return "unknown API key";
    case AK_ERR_KEY_INACTIVE:
        return "inactive API key";
    case AK_ERR_MISSING_KEY:
        return "missing API key";
    case AK_ERR_COLLISION:
        return "key collision";
    case AK_ERR_ARG:
        return "invalid argument";
    case AK_ERR_SECRET:
        return "unusable secret file";
    case AK_ERR_OUTCOME_UNKNOWN:
        return "the database did not confirm whether the change was applied";
    case AK_ERR_EXISTS:
        return "an account with this external_id exists already";
    case AK_ERR_SUSPENDED:
        return "the account is suspended";
    case AK_ERR_BELOW_COUNT:
        return "the account has more keys than this cap";
    case AK_ERR_SIGNATURE:
        return "the signature does not verify";
    case AK_ERR_EXPIRED:
        return "the key has expired";
    case AK_ERR_LEAKED:
        return "the key was reported leaked";
    case AK_ERR_ROTATED:
        return "the key was rotated already";
    case AK_ERR_SCOPE:
        return "insufficient scope";
    case AK_ERR_IP:
        return "client address not allowed for this key";
    case AK_ERR_RATE_LIMITED:
        return "rate limit exceeded";
    case AK_ERR_QUOTA:
        return "the key's quota is spent";
    case AK_ERR_QUOTA_LEASE:
        return "the key's quota has no credits leased here";
    case AK_ERR_STALE:
        return "the key store has not been heard from for too long";
    }
    return "unknown error";
}
