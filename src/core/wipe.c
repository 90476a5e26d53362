/*
 * wipe: see wipe.h. The zeros come from a constant block; the copy goes
 * through a volatile function pointer so that it is neither dropped (the
 * memory is dead afterwards) nor turned into a memset.
 */
#include "core/wipe.h"

#include <openssl/crypto.h>
#include <string.h>

static const unsigned char zeros[WIPE_COPY_MAX];
static void *(*const volatile copy)(void *, const void *, size_t) = memcpy;

void wipe_copy(void *p, size_t n)
{
    if (p == NULL || n == 0)
        return;
    if (n > WIPE_COPY_MAX) {
        OPENSSL_cleanse(p, n);
        return;
    }
    copy(p, zeros, n);
}
