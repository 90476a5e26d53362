/*
 * account: the records of an account and of an admin token, as every layer
 * sees them. An admin token is kept like a key: only its digest and its
 * display prefix, never the token.
 */
#ifndef APIKEYD_CORE_ACCOUNT_H
#define APIKEYD_CORE_ACCOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/key.h"

#define ACCOUNT_EXTERNAL_ID_MAX 255  /* bytes of printable ASCII */
#define ACCOUNT_MAX_KEYS_MAX 1000000 /* the highest cap an account may have */

struct account_rec {
    int64_t id;
    char name[KEY_NAME_MAX_BYTES + 1];
    char external_id[ACCOUNT_EXTERNAL_ID_MAX + 1]; /* "" when none */
    bool suspended;
    unsigned max_keys; /* the account's own cap; 0: the server's --max-keys */
    int64_t key_count;
    int64_t created_at;
};

struct token_rec {
    int64_t id;
    char name[KEY_NAME_MAX_BYTES + 1];
    char prefix[KEYFMT_ADMIN_PREFIX_LEN + 1];
    uint8_t digest[DIGEST_LEN];
    int64_t created_at;
};

#endif
