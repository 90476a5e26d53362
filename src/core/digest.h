/*
 * digest: the server secret and HMAC-SHA-256(secret, key).
 *
 * The digest is the only thing ever stored for a key. The secret lives in a
 * file of its own (mode 0600) so that a copy of the database alone cannot be
 * used to test guesses. This module never logs; it reports problems through
 * its return code and an optional message buffer.
 */
#ifndef APIKEYD_CORE_DIGEST_H
#define APIKEYD_CORE_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_LEN 32
#define DIGEST_SECRET_LEN 32

struct digest_secret {
    unsigned char bytes[DIGEST_SECRET_LEN];
};

/*
 * Reads the secret from `path` (64 hex characters and a newline). When the
 * file does not exist, creates it with mode 0600 and fresh CSPRNG bytes.
 * Refuses a file that group or others may read or write. On failure returns
 * AK_ERR_SECRET or AK_ERR_IO and writes one line into `err`.
 */
int digest_secret_load(const char *path, struct digest_secret *ret, char *err, size_t errlen);

/* Wipes the secret from memory. */
void digest_secret_wipe(struct digest_secret *secret);

/* out = HMAC-SHA-256(secret, key[0..len)). Returns 0, or AK_ERR_IO on a libcrypto failure. */
int digest_compute(const struct digest_secret *secret, const char *key, size_t len, uint8_t out[DIGEST_LEN]);

/* Frees (and wipes) the calling thread's HMAC context now, for a thread that will not exit but is done digesting. */
void digest_thread_release(void);

#endif
