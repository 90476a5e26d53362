/*
 * scope: names, canonical lists and coverage. Lists are short (at most 50
 * names), so a linear walk over the canonical text beats any index: the
 * hot path (a gateway asking for a few scopes) touches one cache-resident
 * string and allocates nothing.
 */
#include "core/scope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static bool head_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool tail_char(char c)
{
    return head_char(c) || c == ':' || c == '.' || c == '_' || c == '-';
}

bool scope_name_ok(const char *s, size_t len)
{
    size_t body = len;

    /*
     * The name before a wildcard is 1 to 64 characters, as a plain one is:
     * "posts:*" is "posts" and ":*" (a ':' just before it is a tail
     * character of the name, as in "a::*").
     */
    if (len >= 2 && s[len - 2] == ':' && s[len - 1] == '*')
        body = len - 2;
    if (body == 0 || body > 64 || !head_char(s[0]))
        return false;
    for (size_t i = 1; i < body; i++)
        if (!tail_char(s[i]))
            return false;
    return true;
}

struct name {
    const char *p;
    size_t len;
};

static int cmp_name(const void *a, const void *b)
{
    const struct name *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);

    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

int scope_canonical(const char *const *names, const size_t *lens, size_t n, char *out, char *msg, size_t msglen)
{
    struct name v[SCOPE_LIST_MAX];
    size_t o = 0;

    if (n == 0 || n > SCOPE_LIST_MAX) {
        snprintf(msg, msglen, "scopes must be null or a list of 1 to %d scopes", SCOPE_LIST_MAX);
        return AK_ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        if (!scope_name_ok(names[i], lens[i])) {
            snprintf(msg, msglen,
                     "each scope must match [a-z0-9][a-z0-9:._-]{0,63}, optionally ending in \":*\" (scope %zu does not)", i + 1);
            return AK_ERR_INVALID;
        }
        v[i] = (struct name){names[i], lens[i]};
    }
    qsort(v, n, sizeof(v[0]), cmp_name);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && cmp_name(&v[i - 1], &v[i]) == 0)
            continue;
        if (o != 0)
            out[o++] = ' ';
        memcpy(out + o, v[i].p, v[i].len);
        o += v[i].len;
    }
    out[o] = '\0';
    return 0;
}

/* Whether the one scope `h` grants the one scope `w`: equal, or `h` is "prefix:*" and `w` starts with "prefix:". */
static bool grants(const char *h, size_t hl, const char *w, size_t wl)
{
    if (hl == wl && memcmp(h, w, hl) == 0)
        return true;
    return hl >= 2 && h[hl - 1] == '*' && wl >= hl - 1 && memcmp(h, w, hl - 1) == 0;
}

/* The next item of a list separated by spaces (and, with `commas`, commas): *p moves past it. False at the end. */
static bool next_item(const char **p, const char *end, bool commas, const char **ret, size_t *ret_len)
{
    const char *s = *p, *e;

    while (s < end && (*s == ' ' || (commas && (*s == ',' || *s == '\t'))))
        s++;
    if (s == end)
        return false;
    for (e = s; e < end && *e != ' ' && !(commas && (*e == ',' || *e == '\t')); e++)
        ;
    *ret = s;
    *ret_len = (size_t)(e - s);
    *p = e;
    return true;
}

bool scope_covers(const char *have, size_t hlen, const char *want, size_t wlen)
{
    const char *p = have, *end = have + hlen, *h;
    size_t hl;

    while (next_item(&p, end, false, &h, &hl))
        if (grants(h, hl, want, wlen))
            return true;
    return false;
}

bool scope_list_within(const char *have, size_t hlen, const char *want, size_t wlen)
{
    const char *p = want, *end = want + wlen, *w;
    size_t wl;

    while (next_item(&p, end, false, &w, &wl))
        if (!scope_covers(have, hlen, w, wl))
            return false;
    return true;
}

bool scope_required_ok(const char *want, size_t wlen)
{
    const char *p = want, *end = want + wlen, *w;
    size_t wl, n = 0;

    while (next_item(&p, end, true, &w, &wl))
        if (++n > SCOPE_LIST_MAX || !scope_name_ok(w, wl))
            return false;
    return n != 0;
}

bool scope_all_covered(const char *have, size_t hlen, const char *want, size_t wlen)
{
    const char *p = want, *end = want + wlen, *w;
    size_t wl;

    while (next_item(&p, end, true, &w, &wl))
        if (!scope_covers(have, hlen, w, wl))
            return false;
    return true;
}

int scope_check_required(const char *have, size_t hlen, const char *want, size_t wlen, const char **ret_missing,
                         size_t *ret_missing_len)
{
    const char *p = want, *end = want + wlen, *w;
    size_t wl;

    if (!scope_required_ok(want, wlen))
        return AK_ERR_INVALID;
    while (next_item(&p, end, true, &w, &wl))
        if (!scope_covers(have, hlen, w, wl)) {
            *ret_missing = w;
            *ret_missing_len = wl;
            return 1;
        }
    return 0;
}
