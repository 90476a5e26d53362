/*
 * digest: secret file handling and HMAC-SHA-256 through OpenSSL. The secret
 * is never written anywhere but its own file, and never printed.
 */
#include "core/digest.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

static const char HEX[] = "0123456789abcdef";

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int create_secret(const char *path, char *err, size_t errlen)
{
    unsigned char raw[DIGEST_SECRET_LEN];
    char text[DIGEST_SECRET_LEN * 2 + 1];
    int fd, r = AK_ERR_IO;

    if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        if (errno == EEXIST)
            return 0; /* another process created it first: use theirs */
        snprintf(err, errlen, "cannot create secret file %s: %s", path, strerror(errno));
        return AK_ERR_IO;
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        snprintf(err, errlen, "cannot draw random bytes for %s", path);
        goto out;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        text[2 * i] = HEX[raw[i] >> 4];
        text[2 * i + 1] = HEX[raw[i] & 15];
    }
    text[sizeof(text) - 1] = '\n';
    if (write(fd, text, sizeof(text)) != (ssize_t)sizeof(text) || fsync(fd) != 0) {
        snprintf(err, errlen, "cannot write secret file %s: %s", path, strerror(errno));
        unlink(path);
        goto out;
    }
    r = 0;
out:
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(text, sizeof(text));
    close(fd);
    return r;
}

int digest_secret_load(const char *path, struct digest_secret *ret, char *err, size_t errlen)
{
    char text[DIGEST_SECRET_LEN * 2 + 16];
    struct digest_secret s;
    struct stat st;
    ssize_t n;
    int fd, r;

    if ((r = create_secret(path, err, errlen)) != 0)
        return r;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
        snprintf(err, errlen, "cannot open secret file %s: %s", path, strerror(errno));
        return AK_ERR_IO;
    }
    r = AK_ERR_SECRET;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "secret file %s is not a regular file", path);
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        snprintf(err, errlen, "secret file %s is accessible by group or others (mode %03o); fix with: chmod 600 %s", path,
                 (unsigned)(st.st_mode & 0777), path);
        goto out;
    }
    n = read(fd, text, sizeof(text));
    /* exactly 64 hex characters, optionally followed by one newline */
    if (!(n == DIGEST_SECRET_LEN * 2 || (n == DIGEST_SECRET_LEN * 2 + 1 && text[DIGEST_SECRET_LEN * 2] == '\n'))) {
        snprintf(err, errlen, "secret file %s must hold %d hex characters", path, DIGEST_SECRET_LEN * 2);
        goto out;
    }
    for (size_t i = 0; i < DIGEST_SECRET_LEN; i++) {
        int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            snprintf(err, errlen, "secret file %s must hold %d hex characters", path, DIGEST_SECRET_LEN * 2);
            goto out;
        }
        s.bytes[i] = (unsigned char)(hi << 4 | lo);
    }
    *ret = s;
    r = 0;
out:
    OPENSSL_cleanse(text, sizeof(text));
    OPENSSL_cleanse(&s, sizeof(s));
    close(fd);
    return r;
}

void digest_secret_wipe(struct digest_secret *secret)
{
    OPENSSL_cleanse(secret, sizeof(*secret));
}

/*
 * Each thread keeps one HMAC context keyed with the secret it last used:
 * re-initializing it with a NULL key reuses the precomputed pads, so a
 * digest costs two SHA-256 compressions and no allocation.
 */
struct hmac_cache {
    unsigned char key[DIGEST_SECRET_LEN];
    EVP_MAC_CTX *ctx;
};

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static EVP_MAC *hmac;

static void cache_free(void *p)
{
    struct hmac_cache *c = p;

    EVP_MAC_CTX_free(c->ctx);
    OPENSSL_cleanse(c->key, sizeof(c->key));
    free(c);
}

static void cache_setup(void)
{
    pthread_key_create(&cache_key, cache_free);
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
}

static EVP_MAC_CTX *thread_ctx(const struct digest_secret *secret)
{
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0), OSSL_PARAM_construct_end()};
    struct hmac_cache *c;

    pthread_once(&cache_once, cache_setup);
    if (hmac == NULL)
        return NULL;
    if ((c = pthread_getspecific(cache_key)) == NULL) {
        if ((c = calloc(1, sizeof(*c))) == NULL)
            return NULL;
        if ((c->ctx = EVP_MAC_CTX_new(hmac)) == NULL || pthread_setspecific(cache_key, c) != 0) {
            cache_free(c);
            return NULL;
        }
    } else if (CRYPTO_memcmp(c->key, secret->bytes, DIGEST_SECRET_LEN) == 0) {
        return EVP_MAC_init(c->ctx, NULL, 0, NULL) == 1 ? c->ctx : NULL;
    }
    if (EVP_MAC_init(c->ctx, secret->bytes, DIGEST_SECRET_LEN, params) != 1)
        return NULL;
    memcpy(c->key, secret->bytes, DIGEST_SECRET_LEN);
    return c->ctx;
}

void digest_thread_release(void)
{
    struct hmac_cache *c;

    pthread_once(&cache_once, cache_setup);
    if ((c = pthread_getspecific(cache_key)) != NULL) {
        pthread_setspecific(cache_key, NULL);
        cache_free(c);
    }
}

int digest_compute(const struct digest_secret *secret, const char *key, size_t len, uint8_t out[DIGEST_LEN])
{
    EVP_MAC_CTX *ctx = thread_ctx(secret);
    size_t outlen = 0;

    if (ctx == NULL || EVP_MAC_update(ctx, (const unsigned char *)key, len) != 1 ||
        EVP_MAC_final(ctx, out, &outlen, DIGEST_LEN) != 1 || outlen != DIGEST_LEN)
        return AK_ERR_IO;
    return 0;
}
