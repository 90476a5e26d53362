/*
 * fuzz_scope: a gateway's X-Required-Scopes value and a request's scopes /
 * allowed_ips through core/scope and core/guard, and an allowlist text as
 * the store may hold it (guard_new).
 *
 * Checked: scope_name_ok and scope_required_ok agree with the rule written
 * here apart from scope.c (^[a-z0-9][a-z0-9:._-]{0,63}(:\*)?$, 1 to 50 names
 * separated by spaces, commas or tabs); scope_check_required refuses
 * exactly what scope_required_ok refuses, and otherwise names a missing
 * scope inside the input that is not covered, or none when
 * scope_all_covered holds; a canonical scope list is sorted, without
 * repeats, covers every name it was made from and fits SCOPE_TEXT_MAX;
 * guard_ips_canonical of the comma-separated items accepts 1 to 32 items,
 * gives text that fits GUARD_IPS_TEXT_MAX, is its own canonical form,
 * compiles to a guard that formats back to it, allows every block's own
 * address and holds itself (guard_ips_within), or refuses with a message;
 * guard_new of the raw text either keeps it (then it allows each block's
 * address) or is damaged and allows no address at all.
 */
#include "core/error.h"
#include "core/guard.h"
#include "core/netaddr.h"
#include "core/scope.h"
#include "fuzz.h"

#define ITEMS_MAX 64

static int head_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int plain_ok(const char *s, size_t len)
{
    if (len < 1 || len > 64 || !head_ok(s[0]))
        return 0;
    for (size_t i = 1; i < len; i++)
        if (!head_ok(s[i]) && s[i] != ':' && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return 0;
    return 1;
}

/* The name rule, from the regular expression. */
static int ref_name_ok(const char *s, size_t len)
{
    return plain_ok(s, len) || (len >= 3 && s[len - 2] == ':' && s[len - 1] == '*' && plain_ok(s, len - 2));
}

static int is_sep(char c, int commas)
{
    return c == ' ' || (commas && (c == ',' || c == '\t'));
}

/* Splits `s` at separators (spaces; with `commas` also commas and tabs) into at most `max` items; returns how many there are. */
static size_t split(const char *s, size_t len, int commas, const char **items, size_t *lens, size_t max)
{
    size_t n = 0, i = 0;

    while (i < len) {
        size_t start;
        while (i < len && is_sep(s[i], commas))
            i++;
        if (i == len)
            break;
        start = i;
        while (i < len && !is_sep(s[i], commas))
            i++;
        if (n < max) {
            items[n] = s + start;
            lens[n] = i - start;
        }
        n++;
    }
    return n;
}

static int ref_required_ok(const char *s, size_t len)
{
    const char *items[SCOPE_LIST_MAX + 1];
    size_t lens[SCOPE_LIST_MAX + 1], n = split(s, len, 1, items, lens, SCOPE_LIST_MAX + 1);

    if (n < 1 || n > SCOPE_LIST_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!ref_name_ok(items[i], lens[i]))
            return 0;
    return 1;
}

static void check_required(const char *value, size_t size)
{
    static const char have[] = "billing:read keys:read posts:*";
    const char *missing = NULL;
    size_t mlen = 0;
    int ok = scope_required_ok(value, size), r;

    FUZZ_CHECK(scope_name_ok(value, size) == ref_name_ok(value, size));
    FUZZ_CHECK(ok == ref_required_ok(value, size));
    r = scope_check_required(have, sizeof(have) - 1, value, size, &missing, &mlen);
    if (!ok) {
        FUZZ_CHECK(r == AK_ERR_INVALID && missing == NULL);
        return;
    }
    FUZZ_CHECK(r == 0 || r == 1);
    FUZZ_CHECK(scope_all_covered(have, sizeof(have) - 1, value, size) == (r == 0));
    if (r == 1) {
        FUZZ_CHECK(missing >= value && mlen > 0 && missing + mlen <= value + size);
        FUZZ_CHECK(scope_name_ok(missing, mlen));
        FUZZ_CHECK(!scope_covers(have, sizeof(have) - 1, missing, mlen));
    }
    /* The value as a list of one's own: covers all of it. */
    FUZZ_CHECK(scope_all_covered(value, size, value, size) || memchr(value, ',', size) != NULL ||
               memchr(value, '\t', size) != NULL);
}

static void check_scope_list(const char *value, size_t size)
{
    const char *items[ITEMS_MAX];
    size_t lens[ITEMS_MAX], n = split(value, size, 1, items, lens, ITEMS_MAX), all = 1;
    char *out = malloc(SCOPE_TEXT_MAX), msg[160];
    const char *p, *prev = NULL;
    size_t prevlen = 0;

    if (out == NULL)
        fuzz_fail("malloc", __FILE__, __LINE__);
    if (n > ITEMS_MAX)
        n = ITEMS_MAX;
    for (size_t i = 0; i < n; i++)
        all = all && ref_name_ok(items[i], lens[i]);
    if (scope_canonical(items, lens, n, out, msg, sizeof(msg)) != 0) {
        FUZZ_CHECK(n == 0 || n > SCOPE_LIST_MAX || !all);
        fuzz_check_msg(msg, sizeof(msg));
        free(out);
        return;
    }
    FUZZ_CHECK(n >= 1 && n <= SCOPE_LIST_MAX && all);
    FUZZ_CHECK(strnlen(out, SCOPE_TEXT_MAX) < SCOPE_TEXT_MAX);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(scope_covers(out, strlen(out), items[i], lens[i]));
    FUZZ_CHECK(scope_list_within(out, strlen(out), out, strlen(out)));
    /* Sorted bytewise, no repeats, single spaces. */
    for (p = out; *p != '\0';) {
        const char *e = strchr(p, ' ');
        size_t l = e != NULL ? (size_t)(e - p) : strlen(p), m = l < prevlen ? l : prevlen;
        int c;
        FUZZ_CHECK(scope_name_ok(p, l));
        if (prev != NULL) {
            c = memcmp(prev, p, m);
            FUZZ_CHECK(c < 0 || (c == 0 && prevlen < l));
        }
        prev = p;
        prevlen = l;
        p += l + (e != NULL);
        FUZZ_CHECK(e == NULL || *p != '\0');
    }
    free(out);
}

/* The addresses a damaged allowlist must refuse, and that no test here trusts blindly. */
static const char *const probes[] = {"10.0.0.1", "127.0.0.1", "0.0.0.0", "255.255.255.255", "::1", "::", "2001:db8::1"};

/* Every block of the comma-separated `text` parses, and the guard allows its own address. */
static void check_blocks_allowed(const struct guard *g, const char *text)
{
    const char *p = text;

    while (*p != '\0') {
        const char *e = strchr(p, ',');
        size_t l = e != NULL ? (size_t)(e - p) : strlen(p);
        struct netaddr_cidr c;
        FUZZ_CHECK(netaddr_cidr_parse(p, l, &c) == 0);
        FUZZ_CHECK(guard_ip_allowed(g, &c.addr));
        p += l + (e != NULL);
    }
}

static void check_ips_canonical(const char *value, size_t size)
{
    const char *items[ITEMS_MAX];
    size_t lens[ITEMS_MAX], n = 0, start = 0;
    char *out = malloc(GUARD_IPS_TEXT_MAX), *again = malloc(GUARD_IPS_TEXT_MAX), *fmt = malloc(GUARD_IPS_TEXT_MAX), msg[256];
    struct guard *g;
    int r;

    if (out == NULL || again == NULL || fmt == NULL)
        fuzz_fail("malloc", __FILE__, __LINE__);
    /* Split on commas, empty items kept (a request's array may hold ""). */
    for (size_t i = 0; i <= size && n < ITEMS_MAX; i++)
        if (i == size || value[i] == ',') {
            items[n] = value + start;
            lens[n++] = i - start;
            start = i + 1;
        }
    if (size == 0)
        n = 0;
    r = guard_ips_canonical(items, lens, n, out, msg, sizeof(msg));
    if (r != 0) {
        FUZZ_CHECK(r == AK_ERR_INVALID);
        fuzz_check_msg(msg, sizeof(msg));
        if (n >= 1 && n <= GUARD_IPS_MAX) {
            size_t bad = 0;
            struct netaddr_cidr c;
            for (size_t i = 0; i < n && bad == 0; i++)
                if (netaddr_cidr_parse(items[i], lens[i], &c) != 0)
                    bad = i + 1;
            FUZZ_CHECK(bad != 0);
        }
        goto out;
    }
    FUZZ_CHECK(n >= 1 && n <= GUARD_IPS_MAX);
    FUZZ_CHECK(strnlen(out, GUARD_IPS_TEXT_MAX) < GUARD_IPS_TEXT_MAX && out[0] != '\0');
    /* Its own canonical form. */
    {
        const char *it[GUARD_IPS_MAX];
        size_t ln[GUARD_IPS_MAX], m = 0;
        const char *p = out;
        while (m < GUARD_IPS_MAX) {
            const char *e = strchr(p, ',');
            it[m] = p;
            ln[m++] = e != NULL ? (size_t)(e - p) : strlen(p);
            if (e == NULL)
                break;
            p = e + 1;
        }
        FUZZ_CHECK(m <= n);
        FUZZ_CHECK(guard_ips_canonical(it, ln, m, again, msg, sizeof(msg)) == 0);
        FUZZ_CHECK(strcmp(again, out) == 0);
    }
    FUZZ_CHECK(guard_new(NULL, out, &g) == 0 && g != NULL);
    guard_format_ips(g, fmt);
    FUZZ_CHECK(strcmp(fmt, out) == 0);
    check_blocks_allowed(g, out);
    FUZZ_CHECK(guard_ips_within(out, out));
    for (size_t i = 0; i < n; i++) {
        struct netaddr_cidr c;
        FUZZ_CHECK(netaddr_cidr_parse(items[i], lens[i], &c) == 0);
        FUZZ_CHECK(guard_ip_allowed(g, &c.addr));
    }
    guard_free(g);
out:
    free(out);
    free(again);
    free(fmt);
}

/* The raw input as the texts a store row could hold. */
static void check_guard_text(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), *fmt = malloc(GUARD_IPS_TEXT_MAX);
    struct guard *g = NULL;
    const char *scopes;
    size_t slen = 0;

    if (text == NULL || fmt == NULL)
        fuzz_fail("malloc", __FILE__, __LINE__);
    memcpy(text, data, size);
    text[size] = '\0';
    FUZZ_CHECK(guard_new(text, text, &g) == 0 && g != NULL);
    FUZZ_CHECK(guard_has_ips(g));
    scopes = guard_scopes(g, &slen);
    FUZZ_CHECK(scopes != NULL && slen == strlen(scopes));
    FUZZ_CHECK(strlen(text) > UINT16_MAX ? slen == 0 : strcmp(scopes, text) == 0);
    guard_format_ips(g, fmt);
    FUZZ_CHECK(strnlen(fmt, GUARD_IPS_TEXT_MAX) < GUARD_IPS_TEXT_MAX);
    FUZZ_CHECK(strcmp(fmt, guard_ips_text(g)) == 0);
    if (fmt[0] == '\0') {
        /* damaged (or empty): no address at all */
        for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
            struct netaddr a;
            FUZZ_CHECK(netaddr_parse(probes[i], strlen(probes[i]), &a) == 0);
            FUZZ_CHECK(!guard_ip_allowed(g, &a));
        }
    } else {
        FUZZ_CHECK(strcmp(fmt, text) == 0);
        FUZZ_CHECK(guard_is(g, text, text));
        /* a trailing comma is the one oddity guard_new lets through; every block is allowed */
        {
            size_t l = strlen(fmt);
            if (fmt[l - 1] == ',')
                fmt[l - 1] = '\0';
        }
        check_blocks_allowed(g, fmt);
    }
    guard_free(g);
    free(text);
    free(fmt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *value = fuzz_dup(data, size);

    check_required(value, size);
    check_scope_list(value, size);
    check_ips_canonical(value, size);
    check_guard_text(data, size);
    free(value);
    return 0;
}
