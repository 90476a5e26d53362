/*
 * digest: secret file handling and HMAC-SHA-256 through OpenSSL. The secret
 * is never written anywhere but its own file, and never printed.
 */
#include "core/digest.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
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

int digest_compute(const struct digest_secret *secret, const char *key, size_t len, uint8_t out[DIGEST_LEN])
{
    unsigned int outlen = DIGEST_LEN;

    if (HMAC(EVP_sha256(), secret->bytes, DIGEST_SECRET_LEN, (const unsigned char *)key, len, out, &outlen) == NULL ||
        outlen != DIGEST_LEN)
        return AK_ERR_IO;
    return 0;
}
