/*
 * Unit tests for core/leakreport: GitHub's key document (P-256 keys only,
 * bounded, refused whole when any key is wrong), signature checks over the
 * raw body (right key, body, id and encoding, or AK_ERR_SIGNATURE), the
 * report's shape and bounds, and the answer in GitHub's format. Keys are
 * made fresh by OpenSSL in each run; nothing here is a committed secret.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/leakreport.h"

#define BODY "[{\"token\":\"NMIfyYncKcRALEXAMPLE\",\"type\":\"mycompany_api_token\",\"url\":\"https://github.com/o/r\"}]"

/* A new key: "EC" with a curve name ("P-256", "P-384"), or "RSA". */
static EVP_PKEY *keygen(const char *type, const char *curve)
{
    EVP_PKEY *k = strcmp(type, "RSA") == 0
                      ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024) /* small: only its refusal is tested */
                      : EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);

    assert_non_null(k);
    return k;
}

/* The public half of `k` as a PEM text (malloc'd). */
static char *pem_of(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *p, *out;
    long n;

    assert_non_null(b);
    assert_int_equal(PEM_write_bio_PUBKEY(b, k), 1);
    n = BIO_get_mem_data(b, &p);
    assert_true(n > 0);
    out = strndup(p, (size_t)n);
    BIO_free(b);
    assert_non_null(out);
    return out;
}

/* A key document of `n` keys (ids[i], keys[i]) as JSON text (malloc'd). */
static char *doc_of(size_t n, const char *const *ids, EVP_PKEY *const *keys)
{
    json_t *arr = json_array(), *root;
    char *text;

    for (size_t i = 0; i < n; i++) {
        char *pem = pem_of(keys[i]);
        assert_int_equal(json_array_append_new(
                             arr, json_pack("{s:s, s:s, s:b}", "key_identifier", ids[i], "key", pem, "is_current", i + 1 == n)),
                         0);
        free(pem);
    }
    root = json_pack("{s:o}", "public_keys", arr);
    text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    assert_non_null(text);
    return text;
}

static struct leak_keyring *ring_of(size_t n, const char *const *ids, EVP_PKEY *const *keys)
{
    struct leak_keyring *kr = NULL;
    char err[LEAK_MSG_MAX];
    char *doc = doc_of(n, ids, keys);

    if (leak_keyring_parse(doc, strlen(doc), &kr, err, sizeof(err)) != 0)
        fail_msg("key document refused: %s", err);
    free(doc);
    return kr;
}

/* The base64 DER signature of `body` by `k` (malloc'd, NUL-terminated); its DER length in *derlen if not NULL. */
static char *sign(EVP_PKEY *k, const char *body, size_t len, size_t *derlen)
{
    unsigned char der[128];
    size_t n = sizeof(der);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    char *b64 = malloc(4 * sizeof(der) / 3 + 4);

    assert_non_null(ctx);
    assert_non_null(b64);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(ctx, der, &n, (const unsigned char *)body, len), 1);
    EVP_MD_CTX_free(ctx);
    assert_true(EVP_EncodeBlock((unsigned char *)b64, der, (int)n) > 0);
    if (derlen != NULL)
        *derlen = n;
    return b64;
}

static int verify(const struct leak_keyring *kr, const char *id, const char *sig, const char *body)
{
    return leak_keyring_verify(kr, id, strlen(id), sig, strlen(sig), body, strlen(body));
}

static void test_verifies_a_signature_and_nothing_else(void **state)
{
    const char *ids[] = {"90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a"};
    EVP_PKEY *k = keygen("EC", "P-256"), *stranger = keygen("EC", "P-256");
    struct leak_keyring *kr = ring_of(1, ids, &k);
    char *sig = sign(k, BODY, strlen(BODY), NULL), *other = sign(k, "[]", 2, NULL),
         *theirs = sign(stranger, BODY, strlen(BODY), NULL);
    char tampered[] = BODY, spaced[256], mangled[256];

    (void)state;
    assert_int_equal(leak_keyring_size(kr), 1);
    assert_int_equal(verify(kr, ids[0], sig, BODY), 0);

    /* The header's surrounding white space is not part of the value. */
    snprintf(spaced, sizeof(spaced), " \t%s\r\n", sig);
    assert_int_equal(verify(kr, ids[0], spaced, BODY), 0);

    tampered[3] ^= 1;
    assert_int_equal(verify(kr, ids[0], sig, tampered), AK_ERR_SIGNATURE);
    assert_int_equal(leak_keyring_verify(kr, ids[0], strlen(ids[0]), sig, strlen(sig), BODY, strlen(BODY) - 1), AK_ERR_SIGNATURE);
    assert_int_equal(verify(kr, ids[0], other, BODY), AK_ERR_SIGNATURE);
    assert_int_equal(verify(kr, ids[0], other, "[]"), 0);
    assert_int_equal(verify(kr, ids[0], theirs, BODY), AK_ERR_SIGNATURE);

    /* The id matches exactly: no prefix, no case folding. */
    assert_int_equal(verify(kr, "90a421169f0a4062", sig, BODY), AK_ERR_SIGNATURE);
    assert_int_equal(verify(kr, "90A421169F0A406205F1563A953312F0BE898D3C7B6C06B681AA86A874555F4A", sig, BODY), AK_ERR_SIGNATURE);
    assert_int_equal(verify(kr, "unknown", sig, BODY), AK_ERR_SIGNATURE);

    /* Missing and empty inputs. */
    assert_int_equal(verify(kr, ids[0], "", BODY), AK_ERR_SIGNATURE);
    assert_int_equal(verify(kr, ids[0], "   ", BODY), AK_ERR_SIGNATURE);
    assert_int_equal(verify(kr, "", sig, BODY), AK_ERR_SIGNATURE);
    assert_int_equal(verify(kr, ids[0], sig, ""), AK_ERR_SIGNATURE);
    assert_int_equal(leak_keyring_verify(kr, ids[0], strlen(ids[0]), NULL, 0, BODY, strlen(BODY)), AK_ERR_SIGNATURE);
    assert_int_equal(leak_keyring_verify(kr, NULL, 0, sig, strlen(sig), BODY, strlen(BODY)), AK_ERR_SIGNATURE);
    assert_int_equal(leak_keyring_verify(kr, ids[0], strlen(ids[0]), sig, strlen(sig), NULL, 0), AK_ERR_SIGNATURE);
    assert_int_equal(leak_keyring_verify(NULL, ids[0], strlen(ids[0]), sig, strlen(sig), BODY, strlen(BODY)), AK_ERR_SIGNATURE);

    /* Garbage base64, base64 of garbage, and the signature cut or with a character changed. */
    assert_int_equal(verify(kr, ids[0], "!!!!not base64!!!!", BODY), AK_ERR_SIGNATURE);
    assert_int_equal(verify(kr, ids[0], "MEQC", BODY), AK_ERR_SIGNATURE);
    assert_int_equal(verify(kr, ids[0], "aGVsbG8gd29ybGQ=", BODY), AK_ERR_SIGNATURE);
    assert_int_equal(verify(kr, ids[0], "====", BODY), AK_ERR_SIGNATURE);
    assert_int_equal(leak_keyring_verify(kr, ids[0], strlen(ids[0]), sig, strlen(sig) - 4, BODY, strlen(BODY)), AK_ERR_SIGNATURE);
    snprintf(mangled, sizeof(mangled), "%s", sig);
    mangled[10] = mangled[10] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(kr, ids[0], mangled, BODY), AK_ERR_SIGNATURE);
    snprintf(mangled, sizeof(mangled), "%.20s %s", sig, sig + 20); /* white space inside */
    assert_int_equal(verify(kr, ids[0], mangled, BODY), AK_ERR_SIGNATURE);
    snprintf(mangled, sizeof(mangled), "%sAAAA", sig); /* bytes after the DER */
    assert_int_equal(verify(kr, ids[0], mangled, BODY), AK_ERR_SIGNATURE);

    free(sig);
    free(other);
    free(theirs);
    leak_keyring_free(kr);
    EVP_PKEY_free(k);
    EVP_PKEY_free(stranger);
}

/*
 * A DER signature is 70, 71 or 72 bytes, so its base64 ends in "==", "="
 * or nothing: each must verify, and only in its canonical spelling (the
 * bits under the padding zero).
 */
static void test_every_padding_verifies(void **state)
{
    const char *ids[] = {"k"};
    EVP_PKEY *k = keygen("EC", "P-256");
    struct leak_keyring *kr = ring_of(1, ids, &k);
    bool seen[3] = {false, false, false};
    char body[32];

    (void)state;
    for (int i = 0; i < 2000 && !(seen[0] && seen[1] && seen[2]); i++) {
        size_t derlen, len;
        char *sig;

        snprintf(body, sizeof(body), "[{\"token\":\"t%d\"}]", i);
        sig = sign(k, body, strlen(body), &derlen);
        len = strlen(sig);
        assert_int_equal(verify(kr, "k", sig, body), 0);
        if (sig[len - 1] == '=') {
            /* The last data character with one more low bit set decodes to the same DER in a lax decoder. */
            char *c = &sig[len - (sig[len - 2] == '=' ? 3 : 2)];
            *c = *c == 'z' ? '0' : *c == '9' ? '+' : (char)(*c + 1);
            assert_int_equal(verify(kr, "k", sig, body), AK_ERR_SIGNATURE);
        }
        if (derlen >= 70 && derlen <= 72)
            seen[derlen - 70] = true;
        free(sig);
    }
    assert_true(seen[0] && seen[1] && seen[2]);
    leak_keyring_free(kr);
    EVP_PKEY_free(k);
}

static void test_a_ring_of_two_keys(void **state)
{
    const char *ids[] = {"old", "new"};
    EVP_PKEY *keys[2] = {keygen("EC", "P-256"), keygen("EC", "P-256")};
    struct leak_keyring *kr = ring_of(2, ids, keys);
    char *sig_old = sign(keys[0], BODY, strlen(BODY), NULL), *sig_new = sign(keys[1], BODY, strlen(BODY), NULL);

    (void)state;
    assert_int_equal(leak_keyring_size(kr), 2);
    assert_int_equal(verify(kr, "old", sig_old, BODY), 0);
    assert_int_equal(verify(kr, "new", sig_new, BODY), 0);
    assert_int_equal(verify(kr, "old", sig_new, BODY), AK_ERR_SIGNATURE);
    assert_int_equal(verify(kr, "new", sig_old, BODY), AK_ERR_SIGNATURE);
    free(sig_old);
    free(sig_new);
    leak_keyring_free(kr);
    EVP_PKEY_free(keys[0]);
    EVP_PKEY_free(keys[1]);
}

/* Expects the document to be refused with AK_ERR_INVALID, a one-line message and *ret untouched. */
static void expect_bad_doc(const char *doc, size_t len)
{
    struct leak_keyring *kr = (struct leak_keyring *)(uintptr_t)0x1;
    char err[LEAK_MSG_MAX] = "";

    if (leak_keyring_parse(doc, len, &kr, err, sizeof(err)) != AK_ERR_INVALID)
        fail_msg("key document accepted: %.200s", doc);
    assert_true(kr == (struct leak_keyring *)(uintptr_t)0x1);
    assert_true(err[0] != '\0' && strchr(err, '\n') == NULL);
}

static void test_key_document_refusals(void **state)
{
    EVP_PKEY *p256 = keygen("EC", "P-256"), *p384 = keygen("EC", "P-384"), *rsa = keygen("RSA", NULL);
    EVP_PKEY *keys[LEAK_KEYRING_MAX + 1];
    const char *ids[LEAK_KEYRING_MAX + 1];
    char idbuf[LEAK_KEYRING_MAX + 1][8];
    char *doc, *pem = pem_of(p256);
    json_t *j;

    (void)state;
    expect_bad_doc("", strlen(""));
    expect_bad_doc("not json", strlen("not json"));
    expect_bad_doc("[]", strlen("[]"));
    expect_bad_doc("{}", strlen("{}"));
    expect_bad_doc("{\"keys\": []}", strlen("{\"keys\": []}"));
    expect_bad_doc("{\"public_keys\": {}}", strlen("{\"public_keys\": {}}"));
    expect_bad_doc("{\"public_keys\": []}", strlen("{\"public_keys\": []}"));
    expect_bad_doc("{\"public_keys\": [1]}", strlen("{\"public_keys\": [1]}"));
    expect_bad_doc("{\"public_keys\": [{\"key_identifier\": \"a\", \"key\": \"not a pem\"}]}",
                   strlen("{\"public_keys\": [{\"key_identifier\": \"a\", \"key\": \"not a pem\"}]}"));

    /* A key field that is base64 without its PEM armour, a missing id, an id that is not printable, a private key. */
    j = json_pack("{s:[{s:s, s:s}]}", "public_keys", "key_identifier", "a", "key", "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE");
    doc = json_dumps(j, 0);
    expect_bad_doc(doc, strlen(doc));
    free(doc);
    json_decref(j);
    j = json_pack("{s:[{s:s}]}", "public_keys", "key", pem);
    doc = json_dumps(j, 0);
    expect_bad_doc(doc, strlen(doc));
    free(doc);
    json_decref(j);
    j = json_pack("{s:[{s:s, s:s}]}", "public_keys", "key_identifier", "a b", "key", pem);
    doc = json_dumps(j, 0);
    expect_bad_doc(doc, strlen(doc));
    free(doc);
    json_decref(j);
    {
        BIO *b = BIO_new(BIO_s_mem());
        char *p;
        long n;
        assert_int_equal(PEM_write_bio_PrivateKey(b, p256, NULL, NULL, 0, NULL, NULL), 1);
        n = BIO_get_mem_data(b, &p);
        j = json_pack("{s:[{s:s, s:s%}]}", "public_keys", "key_identifier", "a", "key", p, (size_t)n);
        doc = json_dumps(j, 0);
        expect_bad_doc(doc, strlen(doc));
        free(doc);
        json_decref(j);
        BIO_free(b);
    }

    /* RSA and P-384 keys, alone or beside a good key. */
    ids[0] = "a";
    ids[1] = "b";
    keys[0] = rsa;
    doc = doc_of(1, ids, keys);
    expect_bad_doc(doc, strlen(doc));
    free(doc);
    keys[0] = p384;
    doc = doc_of(1, ids, keys);
    expect_bad_doc(doc, strlen(doc));
    free(doc);
    keys[0] = p256;
    keys[1] = p384;
    doc = doc_of(2, ids, keys);
    expect_bad_doc(doc, strlen(doc));
    free(doc);

    /* Two keys under one id. */
    ids[1] = "a";
    keys[1] = p256;
    doc = doc_of(2, ids, keys);
    expect_bad_doc(doc, strlen(doc));
    free(doc);

    /* LEAK_KEYRING_MAX keys, and one more. */
    for (size_t i = 0; i <= LEAK_KEYRING_MAX; i++) {
        snprintf(idbuf[i], sizeof(idbuf[i]), "k%zu", i);
        ids[i] = idbuf[i];
        keys[i] = p256;
    }
    leak_keyring_free(ring_of(LEAK_KEYRING_MAX, ids, keys));
    doc = doc_of(LEAK_KEYRING_MAX + 1, ids, keys);
    expect_bad_doc(doc, strlen(doc));
    free(doc);

    /* Over 1 MiB, even when it would parse. */
    doc = doc_of(1, ids, keys);
    {
        size_t len = strlen(doc), big = LEAK_KEYRING_DOC_MAX + 1;
        char *padded = malloc(big);
        assert_non_null(padded);
        memcpy(padded, doc, len);
        memset(padded + len, ' ', big - len);
        expect_bad_doc(padded, big);
        free(padded);
    }
    free(doc);

    free(pem);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(rsa);
}

static void test_load_from_a_file(void **state)
{
    const char *ids[] = {"file-key"};
    EVP_PKEY *k = keygen("EC", "P-256");
    char path[] = "/tmp/test_leakreport_XXXXXX", err[LEAK_MSG_MAX];
    char *doc = doc_of(1, ids, &k), *sig = sign(k, BODY, strlen(BODY), NULL);
    struct leak_keyring *kr = NULL;
    int fd = mkstemp(path);
    FILE *f;

    (void)state;
    assert_true(fd >= 0);
    assert_true(write(fd, doc, strlen(doc)) == (ssize_t)strlen(doc));
    close(fd);
    assert_int_equal(leak_keyring_load(path, &kr, err, sizeof(err)), 0);
    assert_int_equal(verify(kr, "file-key", sig, BODY), 0);
    leak_keyring_free(kr);
    kr = NULL;

    /* A file past 1 MiB is refused before it is parsed. */
    assert_non_null(f = fopen(path, "ab"));
    for (size_t i = 0; i < LEAK_KEYRING_DOC_MAX / 1024 + 1; i++) {
        char spaces[1024];
        memset(spaces, ' ', sizeof(spaces));
        assert_int_equal(fwrite(spaces, 1, sizeof(spaces), f), sizeof(spaces));
    }
    fclose(f);
    assert_int_equal(leak_keyring_load(path, &kr, err, sizeof(err)), AK_ERR_INVALID);
    assert_null(kr);
    unlink(path);
    assert_int_equal(leak_keyring_load(path, &kr, err, sizeof(err)), AK_ERR_IO);
    assert_true(err[0] != '\0' && strchr(err, '\n') == NULL);
    assert_int_equal(leak_keyring_load("/", &kr, err, sizeof(err)), AK_ERR_IO);
    assert_null(kr);
    leak_keyring_free(NULL);
    free(doc);
    free(sig);
    EVP_PKEY_free(k);
}

/* Parses `body`, expecting `want`; on failure checks the message and that the report is untouched. */
static int parse(const char *body, size_t len, int want, struct leak_report *ret)
{
    struct leak_report before = {(size_t)7, (struct leak_token *)(uintptr_t)0x1};
    char msg[LEAK_MSG_MAX] = "";
    int r;

    *ret = before;
    r = leak_report_parse(body, len, ret, msg, sizeof(msg));
    if (r != want)
        fail_msg("report %.120s: got %d (%s), want %d (%s) [%s]", body, r, ak_strerror(r), want, ak_strerror(want), msg);
    if (r != 0) {
        assert_true(msg[0] != '\0' && strchr(msg, '\n') == NULL);
        assert_memory_equal(ret, &before, sizeof(before));
        *ret = (struct leak_report){0, NULL};
    }
    return r;
}

static void expect_report_refused(const char *body, int want)
{
    struct leak_report rep;

    parse(body, strlen(body), want, &rep);
}

/* A report of `n` tokens "tok<i>" (malloc'd text). */
static char *report_of(size_t n)
{
    json_t *arr = json_array();
    char *text;

    for (size_t i = 0; i < n; i++) {
        char tok[32];
        snprintf(tok, sizeof(tok), "tok%zu", i);
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}", "token", tok, "type", "apikeyd_key", "url",
                                             "https://github.com/o/r/blob/0/f", "source", "content"));
    }
    text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    assert_non_null(text);
    return text;
}

static void test_report_shapes(void **state)
{
    struct leak_report rep;
    char *text;

    (void)state;
    assert_int_equal(parse(BODY, strlen(BODY), 0, &rep), 0);
    assert_int_equal(rep.n, 1);
    assert_string_equal(rep.v[0].token, "NMIfyYncKcRALEXAMPLE");
    assert_int_equal(rep.v[0].token_len, 20);
    assert_string_equal(rep.v[0].type, "mycompany_api_token");
    assert_string_equal(rep.v[0].url, "https://github.com/o/r");
    assert_string_equal(rep.v[0].source, "");
    assert_true(leak_token_matchable(&rep.v[0]));
    leak_report_free(&rep);
    assert_int_equal(rep.n, 0);
    leak_report_free(&rep); /* an empty report, twice */

    /* Null and absent fields are "", members GitHub may add later are ignored. */
    text = "[{\"token\":\"a\",\"type\":null,\"url\":null,\"source\":null,\"found_at\":\"2024-01-01\",\"extra\":{\"n\":[1,2.5,true,"
           "123456789012345678901234567890]}},{\"token\":\"b\",\"source\":\"commit\"}]";
    parse(text, strlen(text), 0, &rep);
    assert_int_equal(rep.n, 2);
    assert_string_equal(rep.v[0].type, "");
    assert_string_equal(rep.v[0].url, "");
    assert_string_equal(rep.v[0].source, "");
    assert_string_equal(rep.v[1].token, "b");
    assert_string_equal(rep.v[1].source, "commit");
    leak_report_free(&rep);

    parse("[]", 2, 0, &rep);
    assert_int_equal(rep.n, 0);
    assert_null(rep.v);
    leak_report_free(&rep);
    parse(" [ ] \n", 6, 0, &rep);
    leak_report_free(&rep);

    text = report_of(LEAK_REPORT_MAX_TOKENS);
    parse(text, strlen(text), 0, &rep);
    assert_int_equal(rep.n, LEAK_REPORT_MAX_TOKENS);
    assert_string_equal(rep.v[999].token, "tok999");
    assert_string_equal(rep.v[999].source, "content");
    leak_report_free(&rep);
    free(text);
    text = report_of(LEAK_REPORT_MAX_TOKENS + 1);
    expect_report_refused(text, AK_ERR_INVALID);
    free(text);

    expect_report_refused("", AK_ERR_JSON);
    expect_report_refused("[", AK_ERR_JSON);
    expect_report_refused("[{\"token\":\"a\"},]", AK_ERR_JSON);
    expect_report_refused("[{\"token\":\"a\",\"token\":\"b\"}]", AK_ERR_JSON);
    expect_report_refused("{\"token\":\"a\"}", AK_ERR_INVALID);
    expect_report_refused("\"a\"", AK_ERR_INVALID);
    expect_report_refused("null", AK_ERR_INVALID);
    expect_report_refused("[\"a\"]", AK_ERR_INVALID);
    expect_report_refused("[{\"token\":\"a\"}, 1]", AK_ERR_INVALID);
    expect_report_refused("[{\"type\":\"t\"}]", AK_ERR_INVALID);
    expect_report_refused("[{\"token\":null}]", AK_ERR_INVALID);
    expect_report_refused("[{\"token\":12}]", AK_ERR_INVALID);
    expect_report_refused("[{\"token\":[\"a\"]}]", AK_ERR_INVALID);
    expect_report_refused("[{\"token\":\"\"}]", AK_ERR_INVALID);
    expect_report_refused("[{\"token\":\"a\\u0000b\"}]", AK_ERR_INVALID);
    expect_report_refused("[{\"token\":\"a\",\"url\":\"x\\u0000\"}]", AK_ERR_INVALID);
    expect_report_refused("[{\"token\":\"a\",\"type\":1}]", AK_ERR_INVALID);
    expect_report_refused("[{\"token\":\"a\",\"url\":{}}]", AK_ERR_INVALID);
    expect_report_refused("[{\"token\":\"a\",\"source\":false}]", AK_ERR_INVALID);
    expect_report_refused("[{\"token\":\"a\"},{\"token\":\"b\",\"type\":[]}]", AK_ERR_INVALID);

    /* Nesting deeper than 32 is refused before jansson sees it, even inside an ignored member. */
    {
        char deep[256];
        int n = snprintf(deep, sizeof(deep), "[{\"token\":\"a\",\"x\":");
        for (int i = 0; i < 40; i++)
            deep[n++] = '[';
        for (int i = 0; i < 40; i++)
            deep[n++] = ']';
        memcpy(deep + n, "}]", 3);
        expect_report_refused(deep, AK_ERR_JSON);
    }
    {
        char *big = malloc(LEAK_REPORT_BODY_MAX + 1);
        assert_non_null(big);
        memset(big, ' ', LEAK_REPORT_BODY_MAX + 1);
        memcpy(big, "[]", 2);
        assert_int_equal(parse(big, LEAK_REPORT_BODY_MAX + 1, AK_ERR_INVALID, &rep), AK_ERR_INVALID);
        assert_int_equal(parse(big, LEAK_REPORT_BODY_MAX, 0, &rep), 0);
        leak_report_free(&rep);
        free(big);
    }
}

/* Tokens past LEAK_TOKEN_MAX are kept (to be answered) but unmatchable; past LEAK_FIELD_MAX refused; long fields are cut. */
static void test_long_tokens_and_fields(void **state)
{
    char tok[LEAK_FIELD_MAX + 2], url[LEAK_FIELD_MAX + 16];
    struct leak_report rep;
    json_t *j;
    char *text;

    (void)state;
    memset(tok, 't', sizeof(tok));
    tok[LEAK_TOKEN_MAX] = '\0';
    j = json_pack("[{s:s}]", "token", tok);
    text = json_dumps(j, 0);
    parse(text, strlen(text), 0, &rep);
    assert_true(leak_token_matchable(&rep.v[0]));
    leak_report_free(&rep);
    free(text);
    json_decref(j);

    tok[LEAK_TOKEN_MAX] = 't';
    tok[LEAK_TOKEN_MAX + 1] = '\0';
    j = json_pack("[{s:s}]", "token", tok);
    text = json_dumps(j, 0);
    parse(text, strlen(text), 0, &rep);
    assert_int_equal(rep.v[0].token_len, LEAK_TOKEN_MAX + 1);
    assert_false(leak_token_matchable(&rep.v[0]));
    leak_report_free(&rep);
    free(text);
    json_decref(j);

    tok[LEAK_TOKEN_MAX + 1] = 't';
    tok[LEAK_FIELD_MAX + 1] = '\0';
    j = json_pack("[{s:s}]", "token", tok);
    text = json_dumps(j, 0);
    expect_report_refused(text, AK_ERR_INVALID);
    free(text);
    json_decref(j);

    /* A URL of LEAK_FIELD_MAX - 1 ASCII bytes and then "é" (2 bytes) is cut before the "é", not inside it. */
    memset(url, 'u', LEAK_FIELD_MAX - 1);
    memcpy(url + LEAK_FIELD_MAX - 1, "\xc3\xa9xyz", 6);
    j = json_pack("[{s:s, s:s, s:s}]", "token", "a", "url", url, "type", url);
    text = json_dumps(j, 0);
    parse(text, strlen(text), 0, &rep);
    assert_int_equal(strlen(rep.v[0].url), LEAK_FIELD_MAX - 1);
    assert_int_equal(strlen(rep.v[0].type), LEAK_FIELD_MAX - 1);
    leak_report_free(&rep);
    free(text);
    json_decref(j);
}

static void test_answer_round_trips(void **state)
{
    static const char body[] = "[{\"token\":\"plain\",\"type\":\"apikeyd_key\"},"
                               "{\"token\":\"q\\\"uote\\\\back\\/slash\\n\\t\\u0001\\u00e9\\ud83d\\ude00\",\"type\":\"t\\\"2\"},"
                               "{\"token\":\"third\",\"type\":null}]";
    static const char *want_tokens[] = {"plain", "q\"uote\\back/slash\n\t\x01\xc3\xa9\xf0\x9f\x98\x80", "third"};
    static const char *want_types[] = {"apikeyd_key", "t\"2", ""};
    enum leak_label labels[] = {LEAK_TRUE_POSITIVE, LEAK_FALSE_POSITIVE, LEAK_TRUE_POSITIVE};
    struct leak_report rep;
    json_t *root, *e;
    char *text = NULL;
    size_t len = 0, i;

    (void)state;
    parse(body, strlen(body), 0, &rep);
    assert_int_equal(rep.n, 3);
    assert_int_equal(leak_report_answer(&rep, labels, &text, &len), 0);
    assert_int_equal(strlen(text), len);
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    assert_true(json_is_array(root));
    assert_int_equal(json_array_size(root), 3);
    json_array_foreach(root, i, e)
    {
        assert_int_equal(json_object_size(e), 3);
        assert_string_equal(json_string_value(json_object_get(e, "token_raw")), want_tokens[i]);
        assert_string_equal(json_string_value(json_object_get(e, "token_type")), want_types[i]);
        assert_string_equal(json_string_value(json_object_get(e, "label")), i == 1 ? "false_positive" : "true_positive");
    }
    json_decref(root);
    OPENSSL_cleanse(text, len);
    free(text);
    leak_report_free(&rep);

    /* An empty report answers an empty array. */
    parse("[]", 2, 0, &rep);
    assert_int_equal(leak_report_answer(&rep, NULL, &text, &len), 0);
    assert_string_equal(text, "[]");
    assert_int_equal(len, 2);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verifies_a_signature_and_nothing_else),
        cmocka_unit_test(test_every_padding_verifies),
        cmocka_unit_test(test_a_ring_of_two_keys),
        cmocka_unit_test(test_key_document_refusals),
        cmocka_unit_test(test_load_from_a_file),
        cmocka_unit_test(test_report_shapes),
        cmocka_unit_test(test_long_tokens_and_fields),
        cmocka_unit_test(test_answer_round_trips),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
