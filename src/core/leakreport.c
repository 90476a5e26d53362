/*
 * leakreport: see leakreport.h. OpenSSL does the cryptography (PEM, base64,
 * ECDSA) and jansson the JSON; this file adds the bounds, the shapes of
 * GitHub's two documents and the wiping of tokens. It never logs and never
 * echoes input bytes into a message.
 */
#include "core/leakreport.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/validate.h"

/* A DER ECDSA P-256 signature is at most 72 bytes (SEQUENCE of two INTEGERs of up to 33 bytes), 96 in base64. */
#define SIG_DER_MAX 72
#define SIG_B64_MAX (4 * ((SIG_DER_MAX + 2) / 3))

struct leak_key {
    char id[LEAK_KEY_ID_MAX + 1];
    size_t idlen;
    EVP_PKEY *pkey;
};

struct leak_keyring {
    size_t n;
    struct leak_key v[];
};

/* Integers as doubles: neither document reads a number, and a huge one in an ignored member must not refuse it. */
#define LOAD_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL)

/*
 * Parses one PEM public key and checks it is EC on P-256. Returns the key or
 * NULL. The block must be a plain "PUBLIC KEY" (SubjectPublicKeyInfo) and
 * its DER be read to the end: no private key, no encryption header, no
 * bytes that the key does not account for.
 */
static EVP_PKEY *read_p256(const char *pem, size_t len)
{
    char *name = NULL, *header = NULL, group[64];
    unsigned char *der = NULL;
    const unsigned char *p;
    long derlen = 0;
    size_t glen = 0;
    EVP_PKEY *pkey = NULL;
    BIO *bio;

    if (len == 0 || len > LEAK_KEYRING_DOC_MAX || memchr(pem, '\0', len) != NULL)
        return NULL;
    if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
        return NULL;
    if (PEM_read_bio(bio, &name, &header, &der, &derlen) == 1 && strcmp(name, PEM_STRING_PUBLIC) == 0 && header[0] == '\0') {
        p = der;
        if ((pkey = d2i_PUBKEY(NULL, &p, derlen)) != NULL && p != der + derlen) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
    }
    if (pkey != NULL &&
        (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC || EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) != 1 ||
         OBJ_sn2nid(group) != NID_X9_62_prime256v1)) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(bio);
    ERR_clear_error(); /* OpenSSL's queue is per thread: leave nothing behind for an unrelated caller to find */
    return pkey;
}

/* Whether `s` is 1 to LEAK_KEY_ID_MAX bytes of printable ASCII. */
static bool id_ok(const char *s, size_t len)
{
    if (len == 0 || len > LEAK_KEY_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    return true;
}

int leak_keyring_parse(const char *json, size_t len, struct leak_keyring **ret, char *err, size_t errlen)
{
    struct leak_keyring *kr = NULL;
    json_error_t jerr;
    json_t *root = NULL, *keys, *item, *id, *pem;
    size_t n, i;
    int r = AK_ERR_INVALID;

    if (len > LEAK_KEYRING_DOC_MAX) {
        snprintf(err, errlen, "the key document is larger than %u bytes", LEAK_KEYRING_DOC_MAX);
        goto out;
    }
    if (json == NULL || len == 0 || validate_json_depth(json, len, VALIDATE_DEPTH_MAX) != 0 ||
        (root = json_loadb(json, len, LOAD_FLAGS, &jerr)) == NULL) {
        snprintf(err, errlen, "the key document is not valid JSON");
        goto out;
    }
    if (!json_is_object(root) || !json_is_array(keys = json_object_get(root, "public_keys"))) {
        snprintf(err, errlen, "the key document has no \"public_keys\" array");
        goto out;
    }
    if ((n = json_array_size(keys)) == 0 || n > LEAK_KEYRING_MAX) {
        snprintf(err, errlen, "\"public_keys\" must hold 1 to %d keys", LEAK_KEYRING_MAX);
        goto out;
    }
    if ((kr = calloc(1, sizeof(*kr) + n * sizeof(kr->v[0]))) == NULL) {
        snprintf(err, errlen, "out of memory");
        r = AK_ERR_NOMEM;
        goto out;
    }
    json_array_foreach(keys, i, item)
    {
        struct leak_key *k = &kr->v[i];

        if (!json_is_object(item)) {
            snprintf(err, errlen, "public_keys[%zu] is not an object", i);
            goto out;
        }
        id = json_object_get(item, "key_identifier");
        if (!json_is_string(id) || !id_ok(json_string_value(id), json_string_length(id))) {
            snprintf(err, errlen, "public_keys[%zu]: \"key_identifier\" must be 1 to %d printable characters", i, LEAK_KEY_ID_MAX);
            goto out;
        }
        k->idlen = json_string_length(id);
        memcpy(k->id, json_string_value(id), k->idlen);
        for (size_t j = 0; j < i; j++)
            if (kr->v[j].idlen == k->idlen && memcmp(kr->v[j].id, k->id, k->idlen) == 0) {
                snprintf(err, errlen, "public_keys[%zu]: \"key_identifier\" repeats public_keys[%zu]'s", i, j);
                goto out;
            }
        pem = json_object_get(item, "key");
        if (!json_is_string(pem) || (k->pkey = read_p256(json_string_value(pem), json_string_length(pem))) == NULL) {
            snprintf(err, errlen, "public_keys[%zu]: \"key\" is not a PEM P-256 EC public key", i);
            goto out;
        }
        kr->n = i + 1;
    }
    *ret = kr;
    kr = NULL;
    r = 0;
out:
    leak_keyring_free(kr);
    json_decref(root);
    return r;
}

int leak_keyring_load(const char *path, struct leak_keyring **ret, char *err, size_t errlen)
{
    char *buf = NULL;
    FILE *f;
    size_t n;
    int r;

    if ((f = fopen(path, "rb")) == NULL) {
        snprintf(err, errlen, "cannot open the key file: %s", strerror(errno));
        return AK_ERR_IO;
    }
    if ((buf = malloc(LEAK_KEYRING_DOC_MAX + 1)) == NULL) {
        snprintf(err, errlen, "out of memory");
        r = AK_ERR_NOMEM;
        goto out;
    }
    /* One byte past the maximum tells a file that is too large from one that fits exactly. */
    n = fread(buf, 1, LEAK_KEYRING_DOC_MAX + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read the key file: %s", strerror(errno));
        r = AK_ERR_IO;
        goto out;
    }
    if (n > LEAK_KEYRING_DOC_MAX) {
        snprintf(err, errlen, "the key file is larger than %u bytes", LEAK_KEYRING_DOC_MAX);
        r = AK_ERR_INVALID;
        goto out;
    }
    r = leak_keyring_parse(buf, n, ret, err, errlen);
out:
    free(buf);
    fclose(f);
    return r;
}

void leak_keyring_free(struct leak_keyring *kr)
{
    if (kr == NULL)
        return;
    for (size_t i = 0; i < kr->n; i++)
        EVP_PKEY_free(kr->v[i].pkey);
    free(kr);
}

size_t leak_keyring_size(const struct leak_keyring *kr)
{
    return kr != NULL ? kr->n : 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int leak_keyring_verify(const struct leak_keyring *kr, const char *key_id, size_t idlen, const char *sig_b64, size_t siglen,
                        const void *body, size_t len)
{
    unsigned char der[SIG_DER_MAX];
    const struct leak_key *k = NULL;
    EVP_MD_CTX *ctx = NULL;
    size_t pad = 0;
    int n, ok;

    if (kr == NULL || key_id == NULL || idlen == 0 || sig_b64 == NULL || body == NULL || len == 0)
        return AK_ERR_SIGNATURE;
    for (size_t i = 0; i < kr->n && k == NULL; i++)
        if (kr->v[i].idlen == idlen && memcmp(kr->v[i].id, key_id, idlen) == 0)
            k = &kr->v[i];
    if (k == NULL)
        return AK_ERR_SIGNATURE;

    while (siglen > 0 && is_space(sig_b64[0]))
        sig_b64++, siglen--;
    while (siglen > 0 && is_space(sig_b64[siglen - 1]))
        siglen--;
    if (siglen == 0 || siglen > SIG_B64_MAX || siglen % 4 != 0)
        return AK_ERR_SIGNATURE;
    /*
     * EVP_DecodeBlock decodes '=' as zero bits anywhere and counts padding
     * in its length; ECDSA verification wants the exact DER, so '=' is
     * allowed only as the last one or two characters and its bytes are
     * trimmed after. Those bytes also hold the last character's unused
     * bits: they must be zero, so that one signature has one spelling.
     */
    while (pad < 2 && sig_b64[siglen - 1 - pad] == '=')
        pad++;
    if (memchr(sig_b64, '=', siglen - pad) != NULL)
        return AK_ERR_SIGNATURE;
    if ((n = EVP_DecodeBlock(der, (const unsigned char *)sig_b64, (int)siglen)) < 0 || (size_t)n < pad) {
        ERR_clear_error();
        return AK_ERR_SIGNATURE;
    }
    for (size_t i = (size_t)n - pad; i < (size_t)n; i++)
        if (der[i] != 0)
            return AK_ERR_SIGNATURE;
    ok = (ctx = EVP_MD_CTX_new()) != NULL && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
         EVP_DigestVerify(ctx, der, (size_t)n - pad, body, len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok ? 0 : AK_ERR_SIGNATURE;
}

/* Copies `len` bytes of `s` into a new NUL-terminated string, or NULL. */
static char *dup_n(const char *s, size_t len)
{
    char *p = malloc(len + 1);

    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

/*
 * An optional string member: "" when absent or null, else a copy cut to
 * LEAK_FIELD_MAX bytes without splitting a UTF-8 character (jansson's
 * strings are valid UTF-8, so stepping back over continuation bytes finds a
 * boundary). Returns 0, AK_ERR_INVALID or AK_ERR_NOMEM.
 */
static int take_field(json_t *obj, const char *name, size_t index, char **ret, char *msg, size_t msglen)
{
    json_t *v = json_object_get(obj, name);
    const char *s = "";
    size_t len = 0;

    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v)) {
            snprintf(msg, msglen, "report[%zu]: \"%s\" must be a string or null", index, name);
            return AK_ERR_INVALID;
        }
        s = json_string_value(v);
        len = json_string_length(v);
        if (memchr(s, '\0', len) != NULL) {
            snprintf(msg, msglen, "report[%zu]: \"%s\" contains a NUL character", index, name);
            return AK_ERR_INVALID;
        }
        if (len > LEAK_FIELD_MAX) {
            len = LEAK_FIELD_MAX;
            while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
                len--;
        }
    }
    if ((*ret = dup_n(s, len)) == NULL) {
        snprintf(msg, msglen, "out of memory");
        return AK_ERR_NOMEM;
    }
    return 0;
}

static int take_token(json_t *obj, size_t index, struct leak_token *t, char *msg, size_t msglen)
{
    json_t *v = json_object_get(obj, "token");
    const char *s;
    size_t len;
    int r;

    if (v == NULL) {
        snprintf(msg, msglen, "report[%zu]: \"token\" is missing", index);
        return AK_ERR_INVALID;
    }
    if (!json_is_string(v)) {
        snprintf(msg, msglen, "report[%zu]: \"token\" must be a string", index);
        return AK_ERR_INVALID;
    }
    s = json_string_value(v);
    len = json_string_length(v);
    if (len == 0 || len > LEAK_FIELD_MAX) {
        snprintf(msg, msglen, "report[%zu]: \"token\" must be 1 to %d bytes", index, LEAK_FIELD_MAX);
        return AK_ERR_INVALID;
    }
    if (memchr(s, '\0', len) != NULL) {
        snprintf(msg, msglen, "report[%zu]: \"token\" contains a NUL character", index);
        return AK_ERR_INVALID;
    }
    if ((t->token = dup_n(s, len)) == NULL) {
        snprintf(msg, msglen, "out of memory");
        return AK_ERR_NOMEM;
    }
    t->token_len = len;
    if ((r = take_field(obj, "type", index, &t->type, msg, msglen)) != 0 ||
        (r = take_field(obj, "url", index, &t->url, msg, msglen)) != 0 ||
        (r = take_field(obj, "source", index, &t->source, msg, msglen)) != 0)
        return r;
    return 0;
}

/* Wipes jansson's copies of the tokens in `arr` (its items' `key` strings) before they are freed. */
static void wipe_json_tokens(json_t *arr, const char *key)
{
    size_t i;
    json_t *item, *s;

    json_array_foreach(arr, i, item)
    {
        if (json_is_string(s = json_object_get(item, key)))
            OPENSSL_cleanse((char *)json_string_value(s), json_string_length(s));
    }
}

int leak_report_parse(const char *body, size_t len, struct leak_report *ret, char *msg, size_t msglen)
{
    struct leak_report rep = {0, NULL};
    json_error_t jerr;
    json_t *root = NULL, *item;
    size_t i;
    int r;

    if (len > LEAK_REPORT_BODY_MAX) {
        snprintf(msg, msglen, "the report is larger than %u bytes", LEAK_REPORT_BODY_MAX);
        return AK_ERR_INVALID;
    }
    if (body == NULL || len == 0) {
        snprintf(msg, msglen, "the report is not valid JSON");
        return AK_ERR_JSON;
    }
    if (validate_json_depth(body, len, VALIDATE_DEPTH_MAX) != 0) {
        snprintf(msg, msglen, "the report nests deeper than %d levels", VALIDATE_DEPTH_MAX);
        return AK_ERR_JSON;
    }
    if ((root = json_loadb(body, len, LOAD_FLAGS, &jerr)) == NULL) {
        snprintf(msg, msglen, "the report is not valid JSON (line %d, column %d)", jerr.line, jerr.column);
        return AK_ERR_JSON;
    }
    r = AK_ERR_INVALID;
    if (!json_is_array(root)) {
        snprintf(msg, msglen, "the report must be a JSON array");
        goto out;
    }
    if (json_array_size(root) > LEAK_REPORT_MAX_TOKENS) {
        snprintf(msg, msglen, "the report holds more than %d tokens", LEAK_REPORT_MAX_TOKENS);
        goto out;
    }
    if (json_array_size(root) > 0 && (rep.v = calloc(json_array_size(root), sizeof(rep.v[0]))) == NULL) {
        snprintf(msg, msglen, "out of memory");
        r = AK_ERR_NOMEM;
        goto out;
    }
    json_array_foreach(root, i, item)
    {
        rep.n = i + 1; /* counted before filling, so that a half-filled entry is freed too */
        if (!json_is_object(item)) {
            snprintf(msg, msglen, "report[%zu] is not an object", i);
            r = AK_ERR_INVALID;
            goto out;
        }
        if ((r = take_token(item, i, &rep.v[i], msg, msglen)) != 0)
            goto out;
    }
    *ret = rep;
    rep = (struct leak_report){0, NULL};
    r = 0;
out:
    leak_report_free(&rep);
    wipe_json_tokens(root, "token");
    json_decref(root);
    return r;
}

bool leak_token_matchable(const struct leak_token *t)
{
    return t->token_len >= 1 && t->token_len <= LEAK_TOKEN_MAX;
}

void leak_report_free(struct leak_report *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        struct leak_token *t = &r->v[i];
        if (t->token != NULL)
            OPENSSL_cleanse(t->token, t->token_len);
        free(t->token);
        free(t->type);
        free(t->url);
        free(t->source);
    }
    free(r->v);
    r->n = 0;
    r->v = NULL;
}

int leak_report_answer(const struct leak_report *r, const enum leak_label *labels, char **ret, size_t *ret_len)
{
    json_t *arr = json_array(), *o;
    char *text = NULL;
    size_t n;
    int rc = AK_ERR_NOMEM;

    if (arr == NULL)
        goto out;
    for (size_t i = 0; i < r->n; i++) {
        const struct leak_token *t = &r->v[i];
        const char *label = labels[i] == LEAK_TRUE_POSITIVE ? "true_positive" : "false_positive";

        if ((o = json_object()) == NULL || json_array_append_new(arr, o) != 0 ||
            json_object_set_new(o, "token_raw", json_stringn(t->token, t->token_len)) != 0 ||
            json_object_set_new(o, "token_type", json_string(t->type)) != 0 ||
            json_object_set_new(o, "label", json_string(label)) != 0)
            goto out;
    }
    /* Sized first, then written in one piece: no reallocation leaves a copy of a token behind. */
    if ((n = json_dumpb(arr, NULL, 0, JSON_COMPACT)) == 0 || (text = malloc(n + 1)) == NULL ||
        json_dumpb(arr, text, n, JSON_COMPACT) != n)
        goto out;
    text[n] = '\0';
    *ret = text;
    *ret_len = n;
    text = NULL;
    rc = 0;
out:
    if (text != NULL) {
        OPENSSL_cleanse(text, n);
        free(text);
    }
    wipe_json_tokens(arr, "token_raw");
    json_decref(arr);
    return rc;
}
