/*
 * Unit tests for core/scope: the name rule (^[a-z0-9][a-z0-9:._-]{0,63}(:\*)?$,
 * at its boundaries and against a matcher written apart from scope.c over
 * many generated strings), canonical lists (sorted bytewise, repeats
 * dropped, 1 to 50 names, a message on refusal), coverage (exact names,
 * "x:*" prefixes and what they must not cover), list containment, and the
 * gateway's X-Required-Scopes (spaces, commas and tabs as separators; empty,
 * more than 50 or malformed values refused; the first name missing named).
 * Every function takes a length: inputs here are not NUL-terminated where
 * that matters, so that a read past the length shows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/scope.h"

/* ---- helpers ---- */

static bool name_ok(const char *s)
{
    return scope_name_ok(s, strlen(s));
}

/* `n` copies of `c` followed by `tail`, in a malloc'd string. */
static char *run_of(char c, size_t n, const char *tail)
{
    size_t t = strlen(tail);
    char *s = malloc(n + t + 1);

    assert_non_null(s);
    memset(s, c, n);
    memcpy(s + n, tail, t + 1);
    return s;
}

/* The name rule written apart from scope.c, straight from the regular expression of docs/design/issue-12.md. */
static bool ref_head(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool ref_plain(const char *s, size_t len)
{
    if (len < 1 || len > 64 || !ref_head(s[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!ref_head(s[i]) && s[i] != ':' && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

static bool ref_name_ok(const char *s, size_t len)
{
    return ref_plain(s, len) || (len >= 3 && s[len - 2] == ':' && s[len - 1] == '*' && ref_plain(s, len - 2));
}

static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t pick(uint64_t *s, size_t n)
{
    return (size_t)(next_rand(s) % n);
}

/* Canonical text of `n` NUL-terminated names; returns what scope_canonical returns, the message in `msg`. */
static int canon(const char *const *names, size_t n, char *out, char *msg, size_t msglen)
{
    size_t lens[SCOPE_LIST_MAX + 8];

    assert_true(n <= SCOPE_LIST_MAX + 8);
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(names[i]);
    return scope_canonical(names, lens, n, out, msg, msglen);
}

static bool covers(const char *have, const char *want)
{
    return scope_covers(have, strlen(have), want, strlen(want));
}

static bool within(const char *have, const char *want)
{
    return scope_list_within(have, strlen(have), want, strlen(want));
}

static bool required_ok(const char *want)
{
    return scope_required_ok(want, strlen(want));
}

/* ---- names ---- */

static void test_name_length_boundaries(void **state)
{
    char *s;

    (void)state;
    assert_true(name_ok("a"));
    assert_true(name_ok("0"));
    assert_false(scope_name_ok("", 0));
    s = run_of('a', 64, "");
    assert_true(name_ok(s));
    free(s);
    s = run_of('a', 65, "");
    assert_false(name_ok(s));
    free(s);
    s = run_of('9', 63, "-");
    assert_true(name_ok(s)); /* 64 characters, the last one a tail character */
    free(s);
    /* A wildcard adds ":*" to a name of up to 64 characters: 66 in all. */
    s = run_of('a', 63, ":*");
    assert_true(name_ok(s));
    free(s);
    s = run_of('a', 64, ":*");
    assert_int_equal(strlen(s), SCOPE_NAME_MAX);
    assert_true(name_ok(s));
    free(s);
    s = run_of('a', 65, ":*");
    assert_false(name_ok(s));
    free(s);
    s = run_of('a', 63, "::*"); /* "aaa...:" (64) and ":*" */
    assert_true(name_ok(s));
    free(s);
    s = run_of('a', 64, "::*");
    assert_false(name_ok(s));
    free(s);
}

static void test_name_characters(void **state)
{
    static const char *const good[] = {"a",          "keys:read", "posts:*", "a:*", "a::*",  "billing.v2_read-all",
                                       "0:1:2:3",    "a.",        "a-",      "a_",  "a:",    "x9:y.z_w-v",
                                       "audit:read", "keys:*",    "z",       "9a",  "a.b:*", "posts:a:b"};
    static const char *const bad[] = {
        "*",   ":*",  "a*",  "a:**",     "a**",         "a*:", "a:*b", "a:*:b", "**",   ":a",    ".a",    "_a",
        "-a",  "A",   "Ab",  "aB",       "posts:Write", "a b", " a",   "a ",    "a\tb", "a,b",   "a\nb",  "a/b",
        "a+b", "a@b", "a=b", "\xc3\xa9", "a\xc3\xa9",   "a;b", "a*b",  "a:*:*", "a:?",  "a:*\n", "\"a\"", "a\\b",
    };
    char c1[2] = {0}, c2[3] = "a";

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!name_ok(good[i]))
            fail_msg("\"%s\" refused", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (name_ok(bad[i]))
            fail_msg("\"%s\" accepted", bad[i]);
    /* Every byte as the first character, and as the second. */
    for (int b = 0; b < 256; b++) {
        bool head = (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9');
        bool tail = head || b == ':' || b == '.' || b == '_' || b == '-';
        c1[0] = (char)b;
        if (scope_name_ok(c1, 1) != head)
            fail_msg("one byte 0x%02x: got %d", b, !head);
        c2[1] = (char)b;
        if (scope_name_ok(c2, 2) != tail)
            fail_msg("\"a\" and byte 0x%02x: got %d", b, !tail);
    }
}

/* A NUL is a character like any other: never part of a name, wherever it is. */
static void test_name_nul_inside(void **state)
{
    (void)state;
    assert_false(scope_name_ok("a\0b", 3));
    assert_false(scope_name_ok("a\0", 2));
    assert_false(scope_name_ok("\0a", 2));
    assert_false(scope_name_ok("a\0:*", 4));
    assert_false(scope_name_ok("a:\0*", 4));
    assert_false(scope_name_ok("\0", 1));
}

/* Only `len` bytes are read: what follows does not count. */
static void test_name_reads_only_len(void **state)
{
    char *s = malloc(9);

    (void)state;
    assert_non_null(s);
    memcpy(s, "keys:rea", 8);
    s[8] = '!';
    assert_true(scope_name_ok(s, 8));
    assert_false(scope_name_ok(s, 9));
    assert_true(scope_name_ok("posts:*!", 7));
    assert_true(scope_name_ok("posts:*", 6)); /* "posts:" */
    assert_false(scope_name_ok("a*", 1 + 1));
    assert_true(scope_name_ok("a*", 1));
    free(s);
}

/* Many generated strings over the interesting alphabet, against the reference matcher. */
static void test_name_matches_reference(void **state)
{
    static const char alphabet[] = "ab09:._-*A ,\0";
    uint64_t rng = 12;
    char s[80];
    size_t accepted = 0, longest = 0;

    (void)state;
    for (int i = 0; i < 200000; i++) {
        size_t len = pick(&rng, 4) == 0 ? 60 + pick(&rng, 10) : pick(&rng, 8);
        if (pick(&rng, 2) == 0) {
            /* a good name, often a wildcard, then sometimes one byte changed: right at the rule's edges */
            for (size_t k = 0; k < len; k++)
                s[k] = "ab09:._-"[k == 0 ? pick(&rng, 4) : pick(&rng, 8)];
            if (len >= 3 && pick(&rng, 2) == 0) {
                s[len - 2] = ':';
                s[len - 1] = '*';
            }
            if (len >= 1 && pick(&rng, 2) == 0)
                s[pick(&rng, len)] = alphabet[pick(&rng, sizeof(alphabet) - 1)];
        } else {
            for (size_t k = 0; k < len; k++)
                s[k] = alphabet[pick(&rng, sizeof(alphabet) - 1)];
        }
        if (scope_name_ok(s, len) != ref_name_ok(s, len))
            fail_msg("\"%.*s\" (%zu bytes): scope_name_ok %d, the rule says %d", (int)len, s, len, scope_name_ok(s, len),
                     ref_name_ok(s, len));
        accepted += ref_name_ok(s, len);
        longest += len == SCOPE_NAME_MAX && ref_name_ok(s, len);
    }
    assert_true(accepted > 1000); /* the generator reaches good names too */
    assert_true(longest > 100);   /* and the longest ones, 64 characters and ":*" */
}

/* ---- canonical lists ---- */

static void test_canonical_sorts_and_dedupes(void **state)
{
    static const char *const in[] = {"posts:*", "billing:read", "keys:read", "billing:read", "posts:*"};
    static const char *const order[] = {"ab", "a_b", "a:b", "a0", "a.b", "a-b", "a", "a:*", "a:a"};
    char out[SCOPE_TEXT_MAX], msg[128] = "";

    (void)state;
    assert_int_equal(canon(in, 5, out, msg, sizeof(msg)), 0);
    assert_string_equal(out, "billing:read keys:read posts:*");
    assert_int_equal(canon(in, 1, out, msg, sizeof(msg)), 0);
    assert_string_equal(out, "posts:*");
    /* Bytewise: a prefix first, then '*' (0x2a) < '-' < '.' < '0' < ':' < '_' < 'a'. */
    assert_int_equal(canon(order, 9, out, msg, sizeof(msg)), 0);
    assert_string_equal(out, "a a-b a.b a0 a:* a:a a:b a_b ab");
    /* The same list in any order gives the same text. */
    {
        const char *rev[9];
        char again[SCOPE_TEXT_MAX];
        for (size_t i = 0; i < 9; i++)
            rev[i] = order[8 - i];
        assert_int_equal(canon(rev, 9, again, msg, sizeof(msg)), 0);
        assert_string_equal(again, out);
    }
    /* Fifty times the same name: one. */
    {
        const char *same[SCOPE_LIST_MAX];
        for (size_t i = 0; i < SCOPE_LIST_MAX; i++)
            same[i] = "keys:read";
        assert_int_equal(canon(same, SCOPE_LIST_MAX, out, msg, sizeof(msg)), 0);
        assert_string_equal(out, "keys:read");
    }
    assert_string_equal(msg, ""); /* no message on success */
}

/* The names are `lens[i]` bytes, not NUL-terminated strings. */
static void test_canonical_reads_only_lens(void **state)
{
    const char *names[] = {"keys:readXXX", "audit:read!"};
    size_t lens[] = {9, 10};
    char out[SCOPE_TEXT_MAX], msg[128];

    (void)state;
    assert_int_equal(scope_canonical(names, lens, 2, out, msg, sizeof(msg)), 0);
    assert_string_equal(out, "audit:read keys:read");
}

static void test_canonical_counts(void **state)
{
    char names[SCOPE_LIST_MAX + 1][SCOPE_NAME_MAX + 1];
    const char *p[SCOPE_LIST_MAX + 1];
    char *out = malloc(SCOPE_TEXT_MAX), msg[160];
    size_t want_len = 0;

    (void)state;
    assert_non_null(out);
    /* The longest list: 50 names of the longest form (64 characters and ":*"), exactly fitting SCOPE_TEXT_MAX. */
    for (size_t i = 0; i <= SCOPE_LIST_MAX; i++) {
        memset(names[i], 'a' + (int)(i % 26), 64);
        names[i][0] = (char)('0' + (int)(i / 26));
        memcpy(names[i] + 64, ":*", 3);
        p[i] = names[i];
    }
    memset(msg, 0, sizeof(msg));
    assert_int_equal(canon(p, SCOPE_LIST_MAX, out, msg, sizeof(msg)), 0);
    want_len = SCOPE_LIST_MAX * SCOPE_NAME_MAX + SCOPE_LIST_MAX - 1;
    assert_int_equal(strlen(out), want_len);
    assert_true(want_len < SCOPE_TEXT_MAX);
    assert_memory_equal(out, names[0], SCOPE_NAME_MAX);
    /* 51: refused, with the reason. */
    memset(msg, 0, sizeof(msg));
    assert_int_equal(canon(p, SCOPE_LIST_MAX + 1, out, msg, sizeof(msg)), AK_ERR_INVALID);
    assert_non_null(strstr(msg, "1 to 50"));
    /* None: refused too. */
    memset(msg, 0, sizeof(msg));
    assert_int_equal(canon(p, 0, out, msg, sizeof(msg)), AK_ERR_INVALID);
    assert_non_null(strstr(msg, "1 to 50"));
    free(out);
}

static void test_canonical_refuses_bad_names(void **state)
{
    const char *names[] = {"keys:read", "posts:*", "Bad", "also bad"};
    char out[SCOPE_TEXT_MAX], msg[160];

    (void)state;
    memset(msg, 0, sizeof(msg));
    assert_int_equal(canon(names, 4, out, msg, sizeof(msg)), AK_ERR_INVALID);
    assert_non_null(strstr(msg, "scope 3"));
    names[2] = "ok";
    memset(msg, 0, sizeof(msg));
    assert_int_equal(canon(names, 4, out, msg, sizeof(msg)), AK_ERR_INVALID);
    assert_non_null(strstr(msg, "scope 4"));
    names[3] = "";
    memset(msg, 0, sizeof(msg));
    assert_int_equal(canon(names, 4, out, msg, sizeof(msg)), AK_ERR_INVALID);
    assert_non_null(strstr(msg, "scope 4"));
    names[3] = "ok:*";
    assert_int_equal(canon(names, 4, out, msg, sizeof(msg)), 0);
    assert_string_equal(out, "keys:read ok ok:* posts:*");
    /* A message is cut to its buffer, never past it. */
    {
        char tiny[8];
        memset(tiny, 'x', sizeof(tiny));
        names[0] = "*";
        assert_int_equal(canon(names, 4, out, tiny, sizeof(tiny)), AK_ERR_INVALID);
        assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    }
}

/* ---- coverage ---- */

static void test_covers(void **state)
{
    static const char have[] = "billing:read keys:read posts:*";

    (void)state;
    assert_true(covers(have, "billing:read"));
    assert_true(covers(have, "keys:read"));
    assert_true(covers(have, "posts:write"));
    assert_true(covers(have, "posts:a:b"));
    assert_true(covers(have, "posts:*"));
    assert_true(covers(have, "posts:a:*"));
    assert_false(covers(have, "posts"));
    assert_false(covers(have, "postsx:y"));
    assert_false(covers(have, "post:x"));
    assert_false(covers(have, "keys:write"));
    assert_false(covers(have, "keys:rea"));
    assert_false(covers(have, "keys:read2"));
    assert_false(covers(have, "keys"));
    assert_false(covers(have, "keys:*"));
    assert_false(covers(have, "billing:read:x"));
    assert_false(covers(have, "billing:*"));
    assert_false(covers(have, "read"));
    /* A narrower wildcard covers only its own prefix. */
    assert_true(covers("posts:a:*", "posts:a:b"));
    assert_true(covers("posts:a:*", "posts:a:*"));
    assert_false(covers("posts:a:*", "posts:*"));
    assert_false(covers("posts:a:*", "posts:ab"));
    assert_false(covers("posts:a:*", "posts:a"));
    /* A plain name never covers a wildcard, even "of itself". */
    assert_false(covers("posts:read", "posts:*"));
    assert_false(covers("posts", "posts:*"));
    /* Nothing covers anything. */
    assert_false(covers("", "a"));
}

/* The list is `hlen` bytes: a name after it does not count. */
static void test_covers_reads_only_hlen(void **state)
{
    static const char have[] = "keys:read keys:write";

    (void)state;
    assert_true(scope_covers(have, 9, "keys:read", 9));
    assert_false(scope_covers(have, 9, "keys:write", 10));
    assert_false(scope_covers(have, 12, "keys:write", 10));
    assert_true(scope_covers(have, sizeof(have) - 1, "keys:write", 10));
    /* nor does the want past its length */
    assert_true(scope_covers(have, sizeof(have) - 1, "keys:readXYZ", 9));
}

static void test_list_within(void **state)
{
    static const char have[] = "billing:read posts:*";

    (void)state;
    assert_true(within(have, "billing:read"));
    assert_true(within(have, "posts:a posts:b"));
    assert_true(within(have, "billing:read posts:*"));
    assert_true(within(have, "posts:*"));
    assert_true(within(have, "posts:x:*"));
    assert_false(within(have, "billing:read billing:write"));
    assert_false(within(have, "billing:write billing:read"));
    assert_false(within(have, "billing:*"));
    assert_false(within(have, "a"));
    assert_false(within("", "a"));
    assert_false(within("a:b", "a:*")); /* wider */
    assert_true(within("a:*", "a:*"));
    assert_true(within("a b c", "c a"));
}

/* ---- X-Required-Scopes ---- */

static void test_required_ok(void **state)
{
    static const char *const good[] = {"keys:read", "a b", "a,b", "a\tb", " a , b ,\t c ", ",a,", "\ta\t", "a  b", "a:* b:c"};
    static const char *const bad[] = {"",     " ",   ",,,", "\t",   " , \t", "a;b",  "A",   "a b*", "a\nb",
                                      "a\rb", "a|b", "*",   "a:**", "a,B",   "a b;", "a/b", "a\vb"};
    char buf[64 * SCOPE_LIST_MAX];
    size_t o = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!required_ok(good[i]))
            fail_msg("\"%s\" refused", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (required_ok(bad[i]))
            fail_msg("\"%s\" accepted", bad[i]);
    assert_false(scope_required_ok("a\0b", 3));
    assert_false(scope_required_ok("a \0", 3));
    assert_true(scope_required_ok("a b!", 3));
    /* 50 names (repeats count), 51 not. */
    for (int i = 0; i < SCOPE_LIST_MAX; i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s",
                              i != 0 ? (i % 3 == 0   ? ","
                                        : i % 3 == 1 ? " "
                                                     : "\t")
                                     : "",
                              "keys:read");
    assert_true(scope_required_ok(buf, o));
    snprintf(buf + o, sizeof(buf) - o, " keys:read");
    assert_false(required_ok(buf));
    /* a 51st that is only separators does not count */
    snprintf(buf + o, sizeof(buf) - o, " , \t ");
    assert_true(required_ok(buf));
}

static void test_check_required(void **state)
{
    static const char have[] = "billing:read posts:*";
    const char *missing = (const char *)&missing;
    size_t mlen = 12345;
    const char *want;

    (void)state;
    want = "posts:write billing:read";
    assert_int_equal(scope_check_required(have, strlen(have), want, strlen(want), &missing, &mlen), 0);
    assert_ptr_equal(missing, (const char *)&missing); /* untouched */
    assert_int_equal(mlen, 12345);
    want = "posts:write,keys:write\tother";
    assert_int_equal(scope_check_required(have, strlen(have), want, strlen(want), &missing, &mlen), 1);
    assert_ptr_equal(missing, want + 12); /* the first missing, pointing into want */
    assert_int_equal(mlen, 10);
    want = " \tbilling:read,  posts:*, billing:write";
    assert_int_equal(scope_check_required(have, strlen(have), want, strlen(want), &missing, &mlen), 1);
    assert_ptr_equal(missing, strstr(want, "billing:write"));
    assert_int_equal(mlen, 13);
    /* Only `wlen` bytes: "billing:write" past the end is not asked for. */
    assert_int_equal(scope_check_required(have, strlen(have), want, (size_t)(strstr(want, "posts:*") + 7 - want), &missing, &mlen),
                     0);

    /* Malformed, empty, too many: AK_ERR_INVALID, nothing named. */
    missing = NULL;
    mlen = 777;
    {
        static const char *const bad[] = {"", "  ", ",", "Posts:write", "posts:write;x", "a*"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            assert_int_equal(scope_check_required(have, strlen(have), bad[i], strlen(bad[i]), &missing, &mlen), AK_ERR_INVALID);
            assert_null(missing);
            assert_int_equal(mlen, 777);
        }
    }
    {
        char buf[16 * (SCOPE_LIST_MAX + 1)];
        size_t o = 0;
        for (int i = 0; i <= SCOPE_LIST_MAX; i++)
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%sposts:%d", i != 0 ? " " : "", i);
        assert_int_equal(scope_check_required(have, strlen(have), buf, o, &missing, &mlen), AK_ERR_INVALID);
        assert_null(missing);
        /* The first 50 alone: all covered. */
        assert_int_equal(scope_check_required(have, strlen(have), buf, (size_t)(strrchr(buf, ' ') - buf), &missing, &mlen), 0);
    }
    /* A malformed name after a missing one: the value is refused as a whole. */
    want = "keys:write Bad";
    assert_int_equal(scope_check_required(have, strlen(have), want, strlen(want), &missing, &mlen), AK_ERR_INVALID);
    assert_null(missing);
}

/*
 * Generated lists and requests over a small vocabulary, against a reference
 * written here (split, then compare name by name): scope_covers,
 * scope_list_within, scope_all_covered and scope_check_required agree with it.
 */
static void test_coverage_matches_reference(void **state)
{
    static const char *const vocab[] = {"a", "a:b", "a:c", "a:*", "a:b:c", "a:b:*", "ab", "ab:*", "b", "b:*", "b:a", "a:"};
    enum { NV = sizeof(vocab) / sizeof(vocab[0]) };
    static const char *const seps[] = {" ", ",", "\t", " , "};
    uint64_t rng = 99;
    size_t yes = 0, no = 0;

    (void)state;
    for (int round = 0; round < 20000; round++) {
        const char *hv[6], *wv[6], *missing = NULL;
        size_t nh = 1 + pick(&rng, 4), nw = 1 + pick(&rng, 4), mlen = 0, hl[6];
        char have[SCOPE_TEXT_MAX], want[256], msg[160];
        bool all = true;
        size_t o = 0, first_missing = SIZE_MAX;
        int r;

        for (size_t i = 0; i < nh; i++) {
            hv[i] = vocab[pick(&rng, NV)];
            hl[i] = strlen(hv[i]);
        }
        assert_int_equal(scope_canonical(hv, hl, nh, have, msg, sizeof(msg)), 0);
        for (size_t i = 0; i < nw; i++) {
            bool in = false;
            wv[i] = vocab[pick(&rng, NV)];
            o += (size_t)snprintf(want + o, sizeof(want) - o, "%s%s", i != 0 ? seps[pick(&rng, 4)] : "", wv[i]);
            for (size_t j = 0; j < nh && !in; j++) {
                size_t l = strlen(hv[j]);
                in = strcmp(hv[j], wv[i]) == 0 ||
                     (l >= 2 && hv[j][l - 1] == '*' && strlen(wv[i]) >= l - 1 && memcmp(hv[j], wv[i], l - 1) == 0);
            }
            if (covers(have, wv[i]) != in)
                fail_msg("have \"%s\" covers \"%s\": got %d", have, wv[i], !in);
            if (!in && first_missing == SIZE_MAX)
                first_missing = i;
            all = all && in;
        }
        r = scope_check_required(have, strlen(have), want, o, &missing, &mlen);
        assert_int_equal(r, all ? 0 : 1);
        if (!all) {
            assert_int_equal(mlen, strlen(wv[first_missing]));
            assert_memory_equal(missing, wv[first_missing], mlen);
            assert_true(missing >= want && missing + mlen <= want + o);
        }
        assert_int_equal(scope_all_covered(have, strlen(have), want, o), all);
        assert_true(scope_required_ok(want, o));
        /* The same names as a canonical list: within exactly when all are covered. */
        {
            char wl[SCOPE_TEXT_MAX];
            size_t wlens[6];
            for (size_t i = 0; i < nw; i++)
                wlens[i] = strlen(wv[i]);
            assert_int_equal(scope_canonical(wv, wlens, nw, wl, msg, sizeof(msg)), 0);
            assert_int_equal(within(have, wl), all);
        }
        if (all)
            yes++;
        else
            no++;
    }
    assert_true(yes > 1000 && no > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_length_boundaries),
        cmocka_unit_test(test_name_characters),
        cmocka_unit_test(test_name_nul_inside),
        cmocka_unit_test(test_name_reads_only_len),
        cmocka_unit_test(test_name_matches_reference),
        cmocka_unit_test(test_canonical_sorts_and_dedupes),
        cmocka_unit_test(test_canonical_reads_only_lens),
        cmocka_unit_test(test_canonical_counts),
        cmocka_unit_test(test_canonical_refuses_bad_names),
        cmocka_unit_test(test_covers),
        cmocka_unit_test(test_covers_reads_only_hlen),
        cmocka_unit_test(test_list_within),
        cmocka_unit_test(test_required_ok),
        cmocka_unit_test(test_check_required),
        cmocka_unit_test(test_coverage_matches_reference),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
