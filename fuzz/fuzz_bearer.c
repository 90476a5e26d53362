/*
 * fuzz_bearer: an Authorization header value through bearer_parse.
 *
 * Checked against the scheme written apart from bearer.c, as words split on
 * spaces and tabs: none, or "bearer" (any case) alone, is a missing key;
 * "bearer" and one more word gives that word as the token; anything else is
 * a malformed key. A token lies inside the input, is not empty, has no space
 * or tab, and the outputs are untouched on error.
 */
#include <stdbool.h>
#include <strings.h>

#include "core/bearer.h"
#include "core/error.h"
#include "fuzz.h"

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* Finds the next word at or after *pos; returns its start and sets *ret_len, or NULL when there is none. */
static const char *next_word(const char *s, size_t len, size_t *pos, size_t *ret_len)
{
    size_t start;

    while (*pos < len && is_ws(s[*pos]))
        (*pos)++;
    if (*pos == len)
        return NULL;
    start = *pos;
    while (*pos < len && !is_ws(s[*pos]))
        (*pos)++;
    *ret_len = *pos - start;
    return s + start;
}

static int oracle(const char *s, size_t len, const char **ret_token, size_t *ret_len)
{
    size_t pos = 0, n1 = 0, n2 = 0, n3 = 0;
    const char *w1 = next_word(s, len, &pos, &n1), *w2, *w3;

    if (w1 == NULL)
        return AK_ERR_MISSING_KEY;
    if (n1 != 6 || strncasecmp(w1, "bearer", 6) != 0)
        return AK_ERR_KEY_FORMAT;
    w2 = next_word(s, len, &pos, &n2);
    w3 = next_word(s, len, &pos, &n3);
    if (w2 == NULL)
        return AK_ERR_MISSING_KEY;
    if (w3 != NULL)
        return AK_ERR_KEY_FORMAT;
    *ret_token = w2;
    *ret_len = n2;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value = fuzz_dup(data, size);
    const char *poison = "poison", *token = poison, *want_token = NULL;
    size_t tlen = 42, want_len = 0;
    int r, want;

    r = bearer_parse(value, size, &token, &tlen);
    want = oracle(value, size, &want_token, &want_len);
    FUZZ_CHECK(r == 0 || r == AK_ERR_MISSING_KEY || r == AK_ERR_KEY_FORMAT);
    FUZZ_CHECK(r == want);
    if (r == 0) {
        FUZZ_CHECK(token == want_token && tlen == want_len);
        FUZZ_CHECK(token > value && tlen > 0 && tlen <= size && (size_t)(token - value) <= size - tlen);
        for (size_t i = 0; i < tlen; i++)
            FUZZ_CHECK(!is_ws(token[i]));
    } else {
        FUZZ_CHECK(token == poison && tlen == 42);
    }
    free(value);
    return 0;
}
