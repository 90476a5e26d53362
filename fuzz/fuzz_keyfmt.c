/*
 * fuzz_keyfmt: a presented API key through keyfmt_parse (and the same bytes
 * through key_type_parse).
 *
 * Input: one control byte, then the key. The control byte picks the brand
 * (bits 0-1) and, when bit 2 is set, overwrites the key's last 6 bytes with
 * the right checksum of what precedes them, so that the fuzzer reaches the
 * accepting path without having to guess a CRC32.
 *
 * keyfmt_parse must accept exactly the keys of docs/contract.md: brand,
 * "_prod_", "_sand_" or "_admin_", 32 base62, 6 base62 of CRC32 (checked here with an
 * encoder of this file's own), at keyfmt_key_len; the type must match the
 * infix, and nothing is written on refusal.
 */
#include <stdbool.h>
#include <zlib.h>

#include "core/error.h"
#include "core/keyfmt.h"
#include "fuzz.h"

static const char ALPHABET[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
static const char *const BRANDS[] = {"ml", "a", "abcdefghij012345", "z9"};

static bool is_b62(char c)
{
    return c != '\0' && memchr(ALPHABET, c, sizeof(ALPHABET) - 1) != NULL;
}

static void encode(uint32_t v, char out[KEYFMT_CHECKSUM_LEN])
{
    for (int i = KEYFMT_CHECKSUM_LEN - 1; i >= 0; i--, v /= 62)
        out[i] = ALPHABET[v % 62];
}

static uint32_t crc(const char *s, size_t len)
{
    return (uint32_t)crc32(0L, (const Bytef *)s, (uInt)len);
}

/* The contract's key rule, written apart from keyfmt.c. */
static bool oracle(const char *brand, const char *key, size_t len, enum key_type *ret_type)
{
    size_t blen = strlen(brand), infix;
    char sum[KEYFMT_CHECKSUM_LEN];

    if (strncmp(key, brand, blen) != 0)
        return false;
    if (len == blen + 6 + 32 + 6 && memcmp(key + blen, "_prod_", 6) == 0)
        *ret_type = KEY_TYPE_PRODUCTION;
    else if (len == blen + 6 + 32 + 6 && memcmp(key + blen, "_sand_", 6) == 0)
        *ret_type = KEY_TYPE_SANDBOX;
    else if (len == blen + 7 + 32 + 6 && memcmp(key + blen, "_admin_", 7) == 0)
        *ret_type = KEY_TYPE_ADMIN;
    else
        return false;
    infix = *ret_type == KEY_TYPE_ADMIN ? 7 : 6;
    for (size_t i = blen + infix; i < len; i++)
        if (!is_b62(key[i]))
            return false;
    encode(crc(key, len - 6), sum);
    return memcmp(sum, key + len - 6, 6) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *brand;
    enum key_type type, want;
    char *key, out[KEYFMT_CHECKSUM_LEN];
    size_t len;
    int r;

    if (size == 0)
        return 0;
    brand = BRANDS[data[0] & 3];
    len = size - 1;
    key = fuzz_dup(data + 1, len);
    if ((data[0] & 4) && len >= KEYFMT_CHECKSUM_LEN)
        encode(crc(key, len - KEYFMT_CHECKSUM_LEN), key + len - KEYFMT_CHECKSUM_LEN);

    FUZZ_CHECK(keyfmt_brand_check(brand) == 0);
    type = (enum key_type)42;
    r = keyfmt_parse(brand, key, len, &type);
    FUZZ_CHECK(r == 0 || r == AK_ERR_KEY_FORMAT);
    FUZZ_CHECK((r == 0) == oracle(brand, key, len, &want));
    if (r == 0) {
        FUZZ_CHECK(len == keyfmt_key_len(brand, type) && len <= KEYFMT_MAX_LEN);
        FUZZ_CHECK(type == want);
        FUZZ_CHECK(memcmp(key + strlen(brand) + 1, key_type_name(type), 4) == 0); /* "prod" / "sand" / "admi" */
    } else {
        FUZZ_CHECK(type == (enum key_type)42);
    }

    /* key_type_parse: exactly the two names. */
    type = (enum key_type)42;
    r = key_type_parse(key, len, &type);
    if ((len == 10 && memcmp(key, "production", 10) == 0) || (len == 7 && memcmp(key, "sandbox", 7) == 0)) {
        FUZZ_CHECK(r == 0 && strlen(key_type_name(type)) == len && memcmp(key_type_name(type), key, len) == 0);
    } else {
        FUZZ_CHECK(r == AK_ERR_INVALID && type == (enum key_type)42);
    }

    /* The checksum encoding is base62, fixed width, and loses nothing. */
    if (len >= 4) {
        uint32_t v = (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4];
        uint64_t back = 0;
        keyfmt_checksum_encode(v, out);
        for (int i = 0; i < KEYFMT_CHECKSUM_LEN; i++) {
            const char *d = memchr(ALPHABET, out[i], sizeof(ALPHABET) - 1);
            FUZZ_CHECK(out[i] != '\0' && d != NULL);
            back = back * 62 + (uint64_t)(d - ALPHABET);
        }
        FUZZ_CHECK(back == v);
    }
    free(key);
    return 0;
}
