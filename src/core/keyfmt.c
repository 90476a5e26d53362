/*
 * keyfmt: generation and parsing of API keys. Randomness comes only from
 * OpenSSL's CSPRNG; the checksum is zlib's CRC32.
 */
#include "core/keyfmt.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>
#include <zlib.h>

#include "core/error.h"

static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

bool keyfmt_is_base62(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

const char *key_type_name(enum key_type type)
{
    return type == KEY_TYPE_SANDBOX ? "sandbox" : type == KEY_TYPE_ADMIN ? "admin" : "production";
}

int key_type_parse(const char *s, size_t len, enum key_type *ret_type)
{
    if (len == 10 && memcmp(s, "production", 10) == 0) {
        *ret_type = KEY_TYPE_PRODUCTION;
        return 0;
    }
    if (len == 7 && memcmp(s, "sandbox", 7) == 0) {
        *ret_type = KEY_TYPE_SANDBOX;
        return 0;
    }
    return AK_ERR_INVALID;
}

int keyfmt_brand_check(const char *brand)
{
    size_t n = brand != NULL ? strlen(brand) : 0;

    if (n == 0 || n > KEYFMT_BRAND_MAX)
        return AK_ERR_ARG;
    for (size_t i = 0; i < n; i++)
        if (!((brand[i] >= 'a' && brand[i] <= 'z') || (brand[i] >= '0' && brand[i] <= '9')))
            return AK_ERR_ARG;
    return 0;
}

/* The kind between brand and random part, underscores included. */
static const char *kind(enum key_type type)
{
    return type == KEY_TYPE_SANDBOX ? "_sand_" : type == KEY_TYPE_ADMIN ? "_admin_" : "_prod_";
}

size_t keyfmt_key_len(const char *brand, enum key_type type)
{
    return strlen(brand) + strlen(kind(type)) + KEYFMT_RANDOM_LEN + KEYFMT_CHECKSUM_LEN;
}

size_t keyfmt_prefix_len(enum key_type type)
{
    return type == KEY_TYPE_ADMIN ? KEYFMT_ADMIN_PREFIX_LEN : KEYFMT_PREFIX_LEN;
}

void keyfmt_checksum_encode(uint32_t v, char out[KEYFMT_CHECKSUM_LEN])
{
    for (int i = KEYFMT_CHECKSUM_LEN - 1; i >= 0; i--) {
        out[i] = B62[v % 62];
        v /= 62;
    }
}

static uint32_t checksum(const char *s, size_t len)
{
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)s, (uInt)len);
}

int keyfmt_generate(const char *brand, enum key_type type, char *buf, size_t bufsz)
{
    unsigned char rnd[64];
    size_t pos, blen, filled = 0;
    int r = AK_ERR_IO;

    if (keyfmt_brand_check(brand) != 0 || bufsz < KEYFMT_MAX_LEN + 1)
        return AK_ERR_ARG;
    blen = strlen(brand);
    memcpy(buf, brand, blen);
    memcpy(buf + blen, kind(type), strlen(kind(type)));
    pos = blen + strlen(kind(type));
    /* Rejection sampling: bytes >= 248 (= 4 * 62) would bias the alphabet. */
    while (filled < KEYFMT_RANDOM_LEN) {
        if (RAND_bytes(rnd, sizeof(rnd)) != 1)
            goto out;
        for (size_t i = 0; i < sizeof(rnd) && filled < KEYFMT_RANDOM_LEN; i++) {
            if (rnd[i] >= 248)
                continue;
            buf[pos + filled++] = B62[rnd[i] % 62];
        }
    }
    pos += KEYFMT_RANDOM_LEN;
    keyfmt_checksum_encode(checksum(buf, pos), buf + pos);
    buf[pos + KEYFMT_CHECKSUM_LEN] = '\0';
    r = 0;
out:
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return r;
}

int keyfmt_parse(const char *brand, const char *key, size_t len, enum key_type *ret_type)
{
    size_t blen = strlen(brand), body, klen;
    enum key_type type;
    char sum[KEYFMT_CHECKSUM_LEN];

    if (key == NULL || len < blen + 6 + KEYFMT_RANDOM_LEN + KEYFMT_CHECKSUM_LEN || memcmp(key, brand, blen) != 0)
        return AK_ERR_KEY_FORMAT;
    if (memcmp(key + blen, "_prod_", 6) == 0)
        type = KEY_TYPE_PRODUCTION;
    else if (memcmp(key + blen, "_sand_", 6) == 0)
        type = KEY_TYPE_SANDBOX;
    else if (len > blen + 7 && memcmp(key + blen, "_admin_", 7) == 0)
        type = KEY_TYPE_ADMIN;
    else
        return AK_ERR_KEY_FORMAT;
    klen = strlen(kind(type));
    if (len != blen + klen + KEYFMT_RANDOM_LEN + KEYFMT_CHECKSUM_LEN)
        return AK_ERR_KEY_FORMAT;
    for (size_t i = blen + klen; i < len; i++)
        if (!keyfmt_is_base62(key[i]))
            return AK_ERR_KEY_FORMAT;
    body = len - KEYFMT_CHECKSUM_LEN;
    keyfmt_checksum_encode(checksum(key, body), sum);
    if (memcmp(sum, key + body, KEYFMT_CHECKSUM_LEN) != 0)
        return AK_ERR_KEY_FORMAT;
    *ret_type = type;
    return 0;
}
