/*
 * fuzz: what the fuzz targets in this directory share. Each fuzz_<name>.c
 * defines LLVMFuzzerTestOneInput for one parser of untrusted input and is
 * linked either with libFuzzer (fuzz_<name>, clang) or with replay_main.c
 * (replay_<name>, any compiler). A target must never keep state from one
 * input to the next that changes what it checks, and must never write files.
 */
#ifndef APIKEYD_FUZZ_FUZZ_H
#define APIKEYD_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reports a broken invariant and aborts, so that libFuzzer saves the input. */
static inline _Noreturn void fuzz_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", file, line, what);
    abort();
}

/* An invariant. Unlike assert(), it stays on when NDEBUG is defined (release builds). */
#define FUZZ_CHECK(cond) ((cond) ? (void)0 : fuzz_fail(#cond, __FILE__, __LINE__))

/*
 * Copies the input into a heap buffer of exactly `size` bytes, not
 * NUL-terminated, so that ASan reports any read past its end. The caller
 * frees it.
 */
static inline char *fuzz_dup(const uint8_t *data, size_t size)
{
    char *p = malloc(size);

    if (p == NULL)
        fuzz_fail("malloc", __FILE__, __LINE__); /* glibc and ASan return a unique pointer for 0 bytes */
    memcpy(p, data, size);
    return p;
}

/* A message for a client or a log: NUL-terminated inside `cap` bytes, non-empty, printable ASCII only. */
static inline void fuzz_check_msg(const char *msg, size_t cap)
{
    size_t n = strnlen(msg, cap);

    FUZZ_CHECK(n > 0 && n < cap);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(msg[i] >= 0x20 && msg[i] <= 0x7e);
}

/* Whether `s` (`len` bytes) is strictly valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF). */
static inline int fuzz_utf8_valid(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp, min;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2, cp = c & 0x1fu, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3, cp = c & 0x0fu, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4, cp = c & 0x07u, min = 0x10000;
        } else {
            return 0;
        }
        if (len - i < n)
            return 0;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n;
    }
    return 1;
}

/* Unicode White_Space outside the control ranges, listed from the Unicode tables (apart from core/validate.c). */
static inline int fuzz_is_space(uint32_t cp)
{
    static const uint32_t spaces[] = {0x20,   0xa0,   0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006,
                                      0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000};

    for (size_t i = 0; i < sizeof(spaces) / sizeof(spaces[0]); i++)
        if (spaces[i] == cp)
            return 1;
    return 0;
}

/*
 * The name rule of docs/contract.md, written apart from core/validate.c:
 * `s` (valid UTF-8) has 1 to `max_chars` code points, not all of them white
 * space, none in U+0000-U+001F or U+007F-U+009F.
 */
static inline int fuzz_name_ok(const unsigned char *s, size_t len, size_t max_chars)
{
    size_t chars = 0;
    int only_spaces = 1;

    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = s[i] < 0x80 ? 1 : s[i] < 0xe0 ? 2 : s[i] < 0xf0 ? 3 : 4;
        cp = n == 1 ? s[i] : (uint32_t)(s[i] & (0x7f >> n));
        for (size_t k = 1; k < n && i + k < len; k++)
            cp = cp << 6 | (s[i + k] & 0x3fu);
        chars++;
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return 0;
        if (!fuzz_is_space(cp))
            only_spaces = 0;
        i += n;
    }
    return chars >= 1 && chars <= max_chars && !only_spaces;
}

#endif
