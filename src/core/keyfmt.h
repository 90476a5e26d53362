/*
 * keyfmt: the textual form of an API key.
 *
 *   <brand>_prod_<32 base62 random><6 base62 CRC32>    (or _sand_ for sandbox)
 *   <brand>_admin_<32 base62 random><6 base62 CRC32>   an operator's admin token
 *
 * 32 base62 characters carry 190 bits from the CSPRNG. The trailing checksum
 * (CRC32 of everything before it) lets a mistyped or invented key be refused
 * before any hashing or lookup, the way GitHub's token format does. This
 * module never logs and never keeps a key: callers own every buffer.
 */
#ifndef APIKEYD_CORE_KEYFMT_H
#define APIKEYD_CORE_KEYFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYFMT_BRAND_MAX 16
#define KEYFMT_RANDOM_LEN 32
#define KEYFMT_CHECKSUM_LEN 6
#define KEYFMT_PREFIX_LEN 12
#define KEYFMT_ADMIN_PREFIX_LEN 13 /* "ml_admin_" and 4 random characters, as a key's 12 */
#define KEYFMT_MAX_LEN (KEYFMT_BRAND_MAX + 7 + KEYFMT_RANDOM_LEN + KEYFMT_CHECKSUM_LEN)

enum key_type {
    KEY_TYPE_PRODUCTION = 0,
    KEY_TYPE_SANDBOX = 1,
    KEY_TYPE_ADMIN = 2, /* an admin token: never an account's key, never in the catalog */
};

/* "production", "sandbox" or "admin". */
const char *key_type_name(enum key_type type);

/* Parses "production" / "sandbox" (exact, `len` bytes). Returns 0 or AK_ERR_INVALID. */
int key_type_parse(const char *s, size_t len, enum key_type *ret_type);

/* A brand is 1..KEYFMT_BRAND_MAX characters of [a-z0-9]. Returns 0 or AK_ERR_ARG. */
int keyfmt_brand_check(const char *brand);

/* Length of every key of `type` with this brand. */
size_t keyfmt_key_len(const char *brand, enum key_type type);

/* Length of the display prefix of a key of `type`. */
size_t keyfmt_prefix_len(enum key_type type);

/*
 * Generates a new key of `type` into `buf` (at least KEYFMT_MAX_LEN + 1
 * bytes), NUL-terminated. The caller must OPENSSL_cleanse it when done.
 * Returns 0, AK_ERR_ARG (bad brand or buffer) or AK_ERR_IO (CSPRNG failure).
 */
int keyfmt_generate(const char *brand, enum key_type type, char *buf, size_t bufsz);

/*
 * Checks that `key` (`len` bytes, not necessarily NUL-terminated) is a
 * well-formed key of `brand` with a valid checksum, and returns its type.
 * Returns 0 or AK_ERR_KEY_FORMAT. Touches nothing but its arguments.
 */
int keyfmt_parse(const char *brand, const char *key, size_t len, enum key_type *ret_type);

/* Whether `c` is a base62 digit (0-9, A-Z, a-z): the alphabet of a key's random part and checksum. */
bool keyfmt_is_base62(char c);

/* Encodes `v` as exactly KEYFMT_CHECKSUM_LEN base62 digits (big-endian, zero-padded) into `out`. */
void keyfmt_checksum_encode(uint32_t v, char out[KEYFMT_CHECKSUM_LEN]);

#endif
