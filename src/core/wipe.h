/*
 * wipe: erasing a secret from memory, and from the vector registers that
 * moved it.
 *
 * OPENSSL_cleanse (a memset the compiler cannot drop) erases memory, but a
 * memcpy of a secret leaves its last chunks in the vector registers it
 * used (glibc's AVX and EVEX copies use up to eight), where they stay while
 * the thread sleeps and land in a core dump. memset clears one register
 * only. A copy of zeros of the same length runs the same code path through
 * the same registers: wipe_copy erases the memory and those registers.
 */
#ifndef APIKEYD_CORE_WIPE_H
#define APIKEYD_CORE_WIPE_H

#include <stddef.h>

/*
 * Overwrites `n` bytes at `p` with zeros by a memcpy the compiler cannot
 * see through, of exactly `n` bytes (up to WIPE_COPY_MAX; longer spans are
 * cleansed and their registers left to the copies that follow). Use it on
 * the source or destination of the copy that moved the secret, with that
 * copy's length.
 */
void wipe_copy(void *p, size_t n);

#define WIPE_COPY_MAX 16384

#endif
