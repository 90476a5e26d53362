/*
 * fuzz_auth: an Authorization header value through the whole chain,
 * keys_authenticate: bearer_parse, keyfmt_parse, the HMAC digest and the
 * catalog lookup, over a catalog loaded from a store held in memory.
 *
 * The store knows four keys of brand "ml" (the seed corpus holds them):
 * two of account 1 (production primary, sandbox), an inactive one and one of
 * account 2. The answer must follow from the header alone: bearer_parse's
 * error, else invalid format unless keyfmt_parse accepts the token, else the
 * known key with exactly these bytes (active: its principal; inactive:
 * key_inactive) or key_unknown. Nothing is written on error.
 */
#include <stdbool.h>
#include <zlib.h>

#include "core/bearer.h"
#include "core/digest.h"
#include "core/error.h"
#include "core/keyfmt.h"
#include "core/keys.h"
#include "fuzz.h"
#include "store/store.h"

#define BRAND "ml"
#define NOW 1700000000

/* The random parts of the known keys (32 base62 each). */
static const struct {
    int64_t account_id;
    enum key_type type;
    bool active, primary;
    const char *random;
} KNOWN[] = {
    {1, KEY_TYPE_PRODUCTION, true, true, "0123456789ABCDEFGHIJKLMNOPQRSTUV"},
    {1, KEY_TYPE_SANDBOX, true, false, "abcdefghijklmnopqrstuvwxyz012345"},
    {1, KEY_TYPE_PRODUCTION, false, false, "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"},
    {2, KEY_TYPE_PRODUCTION, true, true, "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz"},
};
#define NKNOWN (sizeof(KNOWN) / sizeof(KNOWN[0]))

struct mem_store {
    struct store base;
    struct key_rec recs[NKNOWN];
};

static struct mem_store mem;
static char known_keys[NKNOWN][KEYFMT_MAX_LEN + 1];
static struct keys *keys;

static int mem_key_load(struct store *s, store_key_cb cb, void *arg)
{
    struct mem_store *m = (struct mem_store *)s;
    int r;

    for (size_t i = 0; i < NKNOWN; i++)
        if ((r = cb(arg, &m->recs[i])) != 0)
            return r;
    return 0;
}

/* No account is suspended, and there are no admin tokens. */
static int mem_suspended_load(struct store *s, int64_t **ret, size_t *ret_n)
{
    (void)s;
    *ret = NULL;
    *ret_n = 0;
    return 0;
}

static int mem_token_load(struct store *s, store_token_cb cb, void *arg)
{
    (void)s;
    (void)cb;
    (void)arg;
    return 0;
}

/* Only what keys_load and keys_authenticate call; the rest must stay unused. */
static const struct store_ops mem_ops = {
    .name = "fuzz-memory", .key_load = mem_key_load, .suspended_load = mem_suspended_load, .token_load = mem_token_load};

static void setup(void)
{
    struct digest_secret secret;
    struct keys_config cfg = {.brand = BRAND, .max_keys = KEYS_DEFAULT_MAX};

    for (size_t i = 0; i < sizeof(secret.bytes); i++)
        secret.bytes[i] = (unsigned char)(i * 7 + 1);
    mem.base.ops = &mem_ops;
    for (size_t i = 0; i < NKNOWN; i++) {
        struct key_rec *rec = &mem.recs[i];
        char *key = known_keys[i];
        size_t len;
        enum key_type type;

        snprintf(key, sizeof(known_keys[i]), "%s_%s_%s", BRAND, KNOWN[i].type == KEY_TYPE_SANDBOX ? "sand" : "prod",
                 KNOWN[i].random);
        len = strlen(key);
        keyfmt_checksum_encode((uint32_t)crc32(0L, (const Bytef *)key, (uInt)len), key + len);
        key[len + KEYFMT_CHECKSUM_LEN] = '\0';
        FUZZ_CHECK(keyfmt_parse(BRAND, key, strlen(key), &type) == 0 && type == KNOWN[i].type);

        rec->id = (int64_t)i + 1;
        rec->account_id = KNOWN[i].account_id;
        snprintf(rec->name, sizeof(rec->name), "key %zu", i + 1);
        rec->type = KNOWN[i].type;
        memcpy(rec->prefix, key, KEYFMT_PREFIX_LEN);
        rec->prefix[KEYFMT_PREFIX_LEN] = '\0';
        FUZZ_CHECK(digest_compute(&secret, key, strlen(key), rec->digest) == 0);
        rec->active = KNOWN[i].active;
        rec->primary = KNOWN[i].primary;
        rec->created_at = NOW - 1000;
        rec->version = 1;
    }
    FUZZ_CHECK(keys_new(&mem.base, &secret, &cfg, &keys) == 0);
    FUZZ_CHECK(keys_load(keys) == 0);
    digest_secret_wipe(&secret);
}

/* What keys_authenticate must answer for `hdr`, and for 0 which known key (*ret_i). */
static int oracle(const char *hdr, size_t len, size_t *ret_i)
{
    const char *token;
    size_t tlen;
    enum key_type type;
    int r;

    if ((r = bearer_parse(hdr, len, &token, &tlen)) != 0)
        return r;
    if (keyfmt_parse(BRAND, token, tlen, &type) != 0)
        return AK_ERR_KEY_FORMAT;
    for (size_t i = 0; i < NKNOWN; i++) {
        if (tlen == strlen(known_keys[i]) && memcmp(token, known_keys[i], tlen) == 0) {
            *ret_i = i;
            return KNOWN[i].active ? 0 : AK_ERR_KEY_INACTIVE;
        }
    }
    return AK_ERR_KEY_UNKNOWN;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *hdr;
    struct principal who, poison;
    size_t i = NKNOWN;
    int r, want;

    if (keys == NULL) {
        setup();
        FUZZ_CHECK(keys_authenticate(keys, NULL, 0, NOW, NULL, &who) == AK_ERR_MISSING_KEY);
    }
    hdr = fuzz_dup(data, size);
    memset(&poison, 0xa5, sizeof(poison));
    who = poison;
    r = keys_authenticate(keys, hdr, size, NOW, NULL, &who);
    want = oracle(hdr, size, &i);
    FUZZ_CHECK(r == want);
    if (r == 0) {
        FUZZ_CHECK(i < NKNOWN);
        FUZZ_CHECK(who.key_id == mem.recs[i].id && who.account_id == mem.recs[i].account_id);
        FUZZ_CHECK(who.type == mem.recs[i].type);
        FUZZ_CHECK(strcmp(who.prefix, mem.recs[i].prefix) == 0);
    } else {
        FUZZ_CHECK(memcmp(&who, &poison, sizeof(who)) == 0);
    }
    free(hdr);
    return 0;
}
