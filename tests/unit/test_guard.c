/*
 * Unit tests for core/guard: no restrictions is no guard (NULL, which every
 * reader accepts); scopes kept as given; allowlists matched for IPv4 and
 * IPv6 at every prefix length that has an edge (/0, /8, /23, /31, /32,
 * /64, /65, /127, /128), against a bit-by-bit reference over many
 * generated blocks and clients; "::/0" holding IPv4 clients (held as
 * ::ffff:a.b.c.d) and "0.0.0.0/0" holding no IPv6 one; the allowlist text
 * given back as it was made (mixed families, order kept); a damaged text
 * (one apikeyd never writes) allowing no address at all and formatting as
 * ""; references; guard_ips_canonical (host bits cleared, bare addresses
 * made /32 or /128, repeats dropped, 1 to 32 items, garbage refused with a
 * message) and guard_ips_within (every block inside one of the other's).
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
#include "core/guard.h"
#include "core/netaddr.h"

/* ---- helpers ---- */

static struct netaddr addr(const char *s)
{
    struct netaddr a;

    if (netaddr_parse(s, strlen(s), &a) != 0)
        fail_msg("\"%s\" does not parse", s);
    return a;
}

static struct guard *must_guard(const char *scopes, const char *ips)
{
    struct guard *g = (struct guard *)&g;

    assert_int_equal(guard_new(scopes, ips, &g), 0);
    assert_true(g != (struct guard *)&g);
    return g;
}

static bool allowed(const struct guard *g, const char *client)
{
    struct netaddr a = addr(client);

    return guard_ip_allowed(g, &a);
}

static void expect_allowed(const char *ips, const char *const *yes, const char *const *no)
{
    struct guard *g = must_guard(NULL, ips);

    for (size_t i = 0; yes != NULL && yes[i] != NULL; i++)
        if (!allowed(g, yes[i]))
            fail_msg("allowlist \"%s\" refuses %s", ips, yes[i]);
    for (size_t i = 0; no != NULL && no[i] != NULL; i++)
        if (allowed(g, no[i]))
            fail_msg("allowlist \"%s\" allows %s", ips, no[i]);
    guard_free(g);
}

/* Canonical text of `n` NUL-terminated items; returns what guard_ips_canonical returns. */
static int canon(const char *const *items, size_t n, char *out, char *msg, size_t msglen)
{
    size_t lens[GUARD_IPS_MAX + 8];

    assert_true(n <= GUARD_IPS_MAX + 8);
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(items[i]);
    return guard_ips_canonical(items, lens, n, out, msg, msglen);
}

static void expect_canon(const char *const *items, size_t n, const char *want)
{
    char out[GUARD_IPS_TEXT_MAX], msg[256] = "";
    int r = canon(items, n, out, msg, sizeof(msg));

    if (r != 0)
        fail_msg("refused (%s), want \"%s\"", msg, want);
    assert_string_equal(out, want);
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

static int bit_of(const uint8_t *b, unsigned i)
{
    return (b[i / 8] >> (7 - i % 8)) & 1;
}

/* The reference: the first `prefix` bits of the 128-bit forms are equal. */
static bool ref_in(const struct netaddr_cidr *c, const struct netaddr *a)
{
    for (unsigned i = 0; i < c->prefix; i++)
        if (bit_of(c->addr.b, i) != bit_of(a->b, i))
            return false;
    return true;
}

/* ---- no guard ---- */

static void test_unrestricted_is_null(void **state)
{
    struct guard *g = (struct guard *)&g;
    struct netaddr a = addr("192.0.2.1"), b = addr("2001:db8::1");
    char out[GUARD_IPS_TEXT_MAX];
    size_t len = 99;

    (void)state;
    assert_int_equal(guard_new(NULL, NULL, &g), 0);
    assert_null(g);
    assert_true(guard_ip_allowed(NULL, &a));
    assert_true(guard_ip_allowed(NULL, &b));
    assert_null(guard_scopes(NULL, &len));
    assert_int_equal(len, 0);
    assert_false(guard_has_ips(NULL));
    assert_null(guard_ips_text(NULL));
    memset(out, 'x', sizeof(out));
    guard_format_ips(NULL, out);
    assert_string_equal(out, "");
    assert_true(guard_is(NULL, NULL, NULL));
    assert_false(guard_is(NULL, "a", NULL));
    assert_false(guard_is(NULL, NULL, "10.0.0.0/8"));
    assert_null(guard_ref(NULL));
    guard_free(NULL);
}

static void test_scopes_only(void **state)
{
    struct guard *g = must_guard("billing:read keys:read posts:*", NULL);
    char out[GUARD_IPS_TEXT_MAX];
    const char *s;
    size_t len = 0;

    (void)state;
    assert_non_null(g);
    s = guard_scopes(g, &len);
    assert_non_null(s);
    assert_int_equal(len, strlen("billing:read keys:read posts:*"));
    assert_string_equal(s, "billing:read keys:read posts:*");
    assert_false(guard_has_ips(g));
    assert_null(guard_ips_text(g));
    assert_true(allowed(g, "192.0.2.1"));
    assert_true(allowed(g, "::1"));
    memset(out, 'x', sizeof(out));
    guard_format_ips(g, out);
    assert_string_equal(out, "");
    assert_true(guard_is(g, "billing:read keys:read posts:*", NULL));
    assert_false(guard_is(g, "billing:read keys:read", NULL));
    assert_false(guard_is(g, "billing:read keys:read posts:*", "10.0.0.0/8"));
    assert_false(guard_is(g, NULL, NULL));
    guard_free(g);

    /* An empty scope text is a list that grants nothing, not "unrestricted". */
    g = must_guard("", NULL);
    assert_non_null(g);
    s = guard_scopes(g, &len);
    assert_non_null(s);
    assert_int_equal(len, 0);
    guard_free(g);
}

static void test_ips_only(void **state)
{
    struct guard *g = must_guard(NULL, "10.0.0.0/8");
    size_t len = 99;

    (void)state;
    assert_non_null(g);
    assert_null(guard_scopes(g, &len)); /* unrestricted in scopes */
    assert_int_equal(len, 0);
    assert_true(guard_has_ips(g));
    assert_string_equal(guard_ips_text(g), "10.0.0.0/8");
    assert_true(guard_is(g, NULL, "10.0.0.0/8"));
    assert_false(guard_is(g, "", "10.0.0.0/8"));
    assert_false(guard_is(g, NULL, "10.0.0.0/9"));
    guard_free(g);
}

/* ---- matching ---- */

static void test_v4_matching(void **state)
{
    (void)state;
    expect_allowed("10.0.0.0/8", (const char *[]){"10.0.0.0", "10.0.0.1", "10.255.255.255", "::ffff:10.1.2.3", NULL},
                   (const char *[]){"11.0.0.0", "9.255.255.255", "110.0.0.1", "::a00:1", "10::", "::1", NULL});
    expect_allowed("192.168.2.0/23", (const char *[]){"192.168.2.0", "192.168.2.255", "192.168.3.0", "192.168.3.255", NULL},
                   (const char *[]){"192.168.1.255", "192.168.4.0", "192.168.0.2", "192.169.2.0", NULL});
    expect_allowed("203.0.113.7/32", (const char *[]){"203.0.113.7", NULL},
                   (const char *[]){"203.0.113.6", "203.0.113.8", "203.0.112.7", "::ffff:203.0.113.6", NULL});
    expect_allowed("198.51.100.4/31", (const char *[]){"198.51.100.4", "198.51.100.5", NULL},
                   (const char *[]){"198.51.100.3", "198.51.100.6", NULL});
    expect_allowed("128.0.0.0/1", (const char *[]){"128.0.0.0", "255.255.255.255", NULL},
                   (const char *[]){"127.255.255.255", "0.0.0.0", NULL});
    /* All of IPv4 and nothing else. */
    expect_allowed("0.0.0.0/0", (const char *[]){"0.0.0.0", "255.255.255.255", "10.1.2.3", "::ffff:1.2.3.4", NULL},
                   (const char *[]){"::1", "::", "2001:db8::1", "::fffe:1.2.3.4", "fe80::1", NULL});
    /* An IPv4 block written in its mapped form is the same block. */
    expect_allowed("::ffff:10.0.0.0/104", (const char *[]){"10.1.2.3", NULL}, (const char *[]){"11.0.0.1", "::1", NULL});
}

static void test_v6_matching(void **state)
{
    (void)state;
    expect_allowed("2001:db8::/32", (const char *[]){"2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8:1::1", NULL},
                   (const char *[]){"2001:db9::", "2001:db7:ffff::", "10.0.0.1", "::1", NULL});
    expect_allowed("::1/128", (const char *[]){"::1", NULL}, (const char *[]){"::", "::2", "::1:0", "127.0.0.1", "0.0.0.1", NULL});
    /* /65: the first bit of the ninth byte decides. */
    expect_allowed("2001:db8::/65", (const char *[]){"2001:db8::", "2001:db8::7fff:ffff:ffff:ffff", NULL},
                   (const char *[]){"2001:db8::8000:0:0:0", "2001:db8:0:1::", NULL});
    expect_allowed("2001:db8:0:0:8000::/65", (const char *[]){"2001:db8::8000:0:0:1", "2001:db8::ffff:ffff:ffff:ffff", NULL},
                   (const char *[]){"2001:db8::7fff:ffff:ffff:ffff", "2001:db8:0:1:8000::", NULL});
    expect_allowed("2001:db8::/64", (const char *[]){"2001:db8::ffff:ffff:ffff:ffff", NULL},
                   (const char *[]){"2001:db8:0:1::", NULL});
    expect_allowed("fe80::/10", (const char *[]){"fe80::1", "febf:ffff::", NULL}, (const char *[]){"fec0::", "fe7f::", NULL});
    expect_allowed("2001:db8::/127", (const char *[]){"2001:db8::", "2001:db8::1", NULL}, (const char *[]){"2001:db8::2", NULL});
    /* Everyone: every IPv6 address, and IPv4 clients too (held as ::ffff:a.b.c.d). */
    expect_allowed("::/0",
                   (const char *[]){"::", "::1", "2001:db8::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "10.1.2.3", "0.0.0.0",
                                    "255.255.255.255", NULL},
                   NULL);
    /* ::ffff:0:0/96 is all of IPv4, written in IPv6. */
    expect_allowed("::ffff:0.0.0.0/96", (const char *[]){"1.2.3.4", "255.255.255.255", NULL},
                   (const char *[]){"::1", "::fffe:0:0", NULL});
}

static void test_mixed_lists(void **state)
{
    (void)state;
    expect_allowed("10.0.0.0/8,::1/128,192.168.0.0/16,2001:db8::/32",
                   (const char *[]){"10.9.8.7", "::1", "192.168.255.1", "2001:db8::5", NULL},
                   (const char *[]){"11.0.0.1", "::2", "192.169.0.1", "2001:db9::", "127.0.0.1", NULL});
    /* An IPv4 client found through an IPv6 block after the IPv4 blocks failed. */
    expect_allowed("10.0.0.0/8,::ffff:0:0/95", (const char *[]){"172.16.0.1", "10.0.0.1", NULL}, (const char *[]){"::1", NULL});
}

/* Many guards of up to 32 random blocks (IPv4 and IPv6, every prefix), many clients near them, against the bit-by-bit reference. */
static void test_matching_matches_reference(void **state)
{
    uint64_t rng = 2024;
    size_t yes = 0, no = 0;

    (void)state;
    for (int round = 0; round < 3000; round++) {
        struct netaddr_cidr blocks[GUARD_IPS_MAX];
        size_t n = 1 + pick(&rng, pick(&rng, 4) == 0 ? GUARD_IPS_MAX : 3), o = 0;
        char text[GUARD_IPS_TEXT_MAX], again[GUARD_IPS_TEXT_MAX];
        struct guard *g;

        for (size_t i = 0; i < n; i++) {
            char one[NETADDR_TEXT_MAX];
            struct netaddr_cidr c;
            uint8_t b[16];
            unsigned prefix;
            for (size_t k = 0; k < 16; k += 8) {
                uint64_t v = next_rand(&rng);
                memcpy(b + k, &v, 8);
            }
            if (pick(&rng, 2) == 0) { /* IPv4 */
                snprintf(one, sizeof(one), "%u.%u.%u.%u/%u", b[0], b[1], b[2], b[3], (unsigned)pick(&rng, 33));
            } else {
                prefix = (unsigned)pick(&rng, 129);
                snprintf(one, sizeof(one), "%x:%x:%x:%x:%x:%x:%x:%x/%u", b[0] << 8 | b[1], b[2] << 8 | b[3], b[4] << 8 | b[5],
                         b[6] << 8 | b[7], b[8] << 8 | b[9], b[10] << 8 | b[11], b[12] << 8 | b[13], b[14] << 8 | b[15], prefix);
            }
            assert_int_equal(netaddr_cidr_parse(one, strlen(one), &c), 0);
            blocks[i] = c;
            netaddr_cidr_format(&c, one);
            o += (size_t)snprintf(text + o, sizeof(text) - o, "%s%s", i != 0 ? "," : "", one);
        }
        g = must_guard(NULL, text);
        guard_format_ips(g, again);
        assert_string_equal(again, text);
        for (int k = 0; k < 40; k++) {
            struct netaddr a;
            bool want = false;
            /* a block's own address with a few bits flipped: right at its edges */
            a = blocks[pick(&rng, n)].addr;
            for (size_t flips = pick(&rng, 3); flips > 0; flips--) {
                unsigned bit = (unsigned)pick(&rng, 128);
                a.b[bit / 8] ^= (uint8_t)(0x80u >> (bit % 8));
            }
            if (pick(&rng, 4) == 0) { /* or any IPv4 client */
                memset(a.b, 0, 10);
                a.b[10] = a.b[11] = 0xff;
            }
            for (size_t i = 0; i < n && !want; i++)
                want = ref_in(&blocks[i], &a);
            if (guard_ip_allowed(g, &a) != want) {
                char t[NETADDR_TEXT_MAX];
                netaddr_format(&a, t);
                fail_msg("allowlist \"%s\", client %s: got %d", text, t, !want);
            }
            if (want)
                yes++;
            else
                no++;
        }
        guard_free(g);
    }
    assert_true(yes > 10000 && no > 10000);
}

/* ---- the text ---- */

static void test_format_round_trips(void **state)
{
    static const char *const texts[] = {
        "10.0.0.0/8,::1/128", "::1/128,10.0.0.0/8", "2001:db8::/32,192.168.0.0/16,::/0,0.0.0.0/0,203.0.113.7/32",
        "fe80::/10",          "0.0.0.0/0",
    };
    char out[GUARD_IPS_TEXT_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct guard *g = must_guard("keys:read", texts[i]);
        size_t len;
        memset(out, 'x', sizeof(out));
        guard_format_ips(g, out);
        assert_string_equal(out, texts[i]);
        assert_string_equal(guard_ips_text(g), texts[i]);
        assert_string_equal(guard_scopes(g, &len), "keys:read");
        assert_true(guard_is(g, "keys:read", texts[i]));
        guard_free(g);
    }
}

/* The longest allowlist: 32 blocks of the longest canonical text. */
static void test_format_longest(void **state)
{
    char text[GUARD_IPS_TEXT_MAX], *out = malloc(GUARD_IPS_TEXT_MAX);
    size_t o = 0;
    struct guard *g;

    (void)state;
    assert_non_null(out);
    for (int i = 0; i < GUARD_IPS_MAX; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o, "%sffff:ffff:ffff:ffff:ffff:ffff:ffff:ff%02x/128", i != 0 ? "," : "", i);
    g = must_guard(NULL, text);
    guard_format_ips(g, out);
    assert_string_equal(out, text);
    assert_true(allowed(g, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff1f"));
    assert_false(allowed(g, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff20"));
    guard_free(g);
    free(out);
}

/* Text apikeyd never writes (a hand-edited store): fail closed. No address at all, "" as its text, the scopes kept. */
static void test_damaged_allows_nothing(void **state)
{
    static const char *const damaged[] = {
        "garbage",     "10.0.0.0/40", "10.0.0.0/8,zzz",  "zzz,10.0.0.0/8", "10.0.0.0/8,,::1/128", ",10.0.0.0/8",     "::/0,::/129",
        "10.0.0.0/8 ", " ::/0",       "::/0;10.0.0.0/8", "10.0.0.0/08",    "::/0,garbage",        "0.0.0.0/0,::/-1", "1.2.3.4/32/1",
    };
    static const char *const clients[] = {"10.0.0.1", "10.1.2.3", "::1", "0.0.0.0", "2001:db8::1", "255.255.255.255"};
    char out[GUARD_IPS_TEXT_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof(damaged) / sizeof(damaged[0]); i++) {
        struct guard *g = must_guard("a:b", damaged[i]);
        size_t len = 0;
        assert_non_null(g);
        assert_true(guard_has_ips(g));
        for (size_t c = 0; c < sizeof(clients) / sizeof(clients[0]); c++)
            if (allowed(g, clients[c]))
                fail_msg("damaged allowlist \"%s\" allows %s", damaged[i], clients[c]);
        memset(out, 'x', sizeof(out));
        guard_format_ips(g, out);
        if (strcmp(out, "") != 0)
            fail_msg("damaged allowlist \"%s\" formats as \"%.40s\"", damaged[i], out);
        assert_string_equal(guard_ips_text(g), "");
        assert_string_equal(guard_scopes(g, &len), "a:b");
        assert_int_equal(len, 3);
        guard_free(g);
    }
    /* 33 blocks: more than apikeyd ever writes. */
    {
        char text[GUARD_IPS_TEXT_MAX];
        size_t o = 0;
        struct guard *g;
        for (int i = 0; i <= GUARD_IPS_MAX; i++)
            o += (size_t)snprintf(text + o, sizeof(text) - o, "%s10.0.%d.0/24", i != 0 ? "," : "", i);
        g = must_guard(NULL, text);
        assert_false(allowed(g, "10.0.0.1"));
        assert_false(allowed(g, "10.0.32.1"));
        guard_format_ips(g, out);
        assert_string_equal(out, "");
        guard_free(g);
        /* the first 32 alone are fine */
        *strrchr(text, ',') = '\0';
        g = must_guard(NULL, text);
        assert_true(allowed(g, "10.0.0.1"));
        assert_true(allowed(g, "10.0.31.1"));
        assert_false(allowed(g, "10.0.32.1"));
        guard_free(g);
    }
    /* An empty allowlist text: an allowlist that allows nobody. */
    {
        struct guard *g = must_guard(NULL, "");
        assert_true(guard_has_ips(g));
        assert_false(allowed(g, "10.0.0.1"));
        assert_false(allowed(g, "::1"));
        guard_free(g);
    }
}

static void test_references(void **state)
{
    struct guard *g = must_guard("a", "10.0.0.0/8");

    (void)state;
    assert_int_equal(guard_refs(g), 1);
    assert_ptr_equal(guard_ref(g), g);
    assert_ptr_equal(guard_ref(g), g);
    assert_int_equal(guard_refs(g), 3);
    guard_free(g);
    guard_free(g);
    assert_int_equal(guard_refs(g), 1);
    assert_true(allowed(g, "10.1.1.1")); /* still whole (ASan would see a use after free) */
    guard_free(g);
}

static void test_hash(void **state)
{
    (void)state;
    assert_true(guard_hash("a", "10.0.0.0/8", 1) == guard_hash("a", "10.0.0.0/8", 1));
    assert_true(guard_hash("a", "10.0.0.0/8", 1) != guard_hash("a", "10.0.0.0/8", 2));
    assert_true(guard_hash("a", NULL, 1) != guard_hash(NULL, "a", 1));
    assert_true(guard_hash("", NULL, 1) != guard_hash(NULL, NULL, 1));
    assert_true(guard_hash(NULL, "", 1) != guard_hash(NULL, NULL, 1));
    assert_true(guard_hash("ab", NULL, 1) != guard_hash("a", "b", 1));
    assert_true(guard_hash("a b", NULL, 1) != guard_hash("a c", NULL, 1));
}

/* ---- canonical allowlists ---- */

static void test_ips_canonical(void **state)
{
    (void)state;
    expect_canon((const char *[]){"10.1.2.3/8"}, 1, "10.0.0.0/8");
    expect_canon((const char *[]){"127.0.0.1"}, 1, "127.0.0.1/32");
    expect_canon((const char *[]){"::1"}, 1, "::1/128");
    expect_canon((const char *[]){"2001:DB8::1/32"}, 1, "2001:db8::/32");
    expect_canon((const char *[]){"2001:0db8:0000:0000:0000:0000:0000:0001"}, 1, "2001:db8::1/128");
    expect_canon((const char *[]){"192.168.3.77/23"}, 1, "192.168.2.0/23");
    expect_canon((const char *[]){"0.0.0.0/0", "::/0"}, 2, "0.0.0.0/0,::/0");
    expect_canon((const char *[]){"1.2.3.4/0"}, 1, "0.0.0.0/0");
    /* Order kept, repeats (after canonicalising) dropped. */
    expect_canon((const char *[]){"::1", "10.0.0.0/8"}, 2, "::1/128,10.0.0.0/8");
    expect_canon((const char *[]){"10.0.0.0/8", "10.1.2.3/8", "::1", "::1/128", "10.0.0.0/8"}, 5, "10.0.0.0/8,::1/128");
    /* Same address, different prefixes: different blocks. */
    expect_canon((const char *[]){"10.0.0.0/8", "10.0.0.0/16"}, 2, "10.0.0.0/8,10.0.0.0/16");
    /* The mapped form of an IPv4 block is that block. */
    expect_canon((const char *[]){"::ffff:10.0.0.0/104", "10.0.0.0/8"}, 2, "10.0.0.0/8");
}

static void test_ips_canonical_reads_only_lens(void **state)
{
    const char *items[] = {"10.0.0.1/8xyz", "::1/1289"};
    size_t lens[] = {10, 7};
    char out[GUARD_IPS_TEXT_MAX], msg[256];

    (void)state;
    assert_int_equal(guard_ips_canonical(items, lens, 2, out, msg, sizeof(msg)), 0);
    assert_string_equal(out, "10.0.0.0/8,::1/128");
}

static void test_ips_canonical_counts(void **state)
{
    char items[GUARD_IPS_MAX + 1][48], out[GUARD_IPS_TEXT_MAX], msg[256], want[GUARD_IPS_TEXT_MAX];
    const char *p[GUARD_IPS_MAX + 1];
    size_t o = 0;

    (void)state;
    for (int i = 0; i <= GUARD_IPS_MAX; i++) {
        snprintf(items[i], sizeof(items[i]), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff%02x", i);
        p[i] = items[i];
        if (i < GUARD_IPS_MAX)
            o += (size_t)snprintf(want + o, sizeof(want) - o, "%s%s/128", i != 0 ? "," : "", items[i]);
    }
    expect_canon(p, GUARD_IPS_MAX, want);
    memset(msg, 0, sizeof(msg));
    assert_int_equal(canon(p, GUARD_IPS_MAX + 1, out, msg, sizeof(msg)), AK_ERR_INVALID);
    assert_non_null(strstr(msg, "1 to 32"));
    memset(msg, 0, sizeof(msg));
    assert_int_equal(canon(p, 0, out, msg, sizeof(msg)), AK_ERR_INVALID);
    assert_non_null(strstr(msg, "1 to 32"));
    /* 32 times the same: one block. */
    for (int i = 0; i < GUARD_IPS_MAX; i++)
        p[i] = "10.0.0.1";
    expect_canon(p, GUARD_IPS_MAX, "10.0.0.1/32");
}

static void test_ips_canonical_refuses_garbage(void **state)
{
    static const char *const bad[] = {
        "garbage",      "",
        " 10.0.0.1",    "10.0.0.1 ",
        "10.0.0.0/33",  "::/129",
        "10.0.0.0/",    "/8",
        "10.0.0",       "10.0.0.0/8,",
        "10.0.0.256",   "10.0.0.0/08",
        "::1/-1",       "fe80::1%eth0",
        "[::1]",        "10.0.0.1:80",
        "example.com",  "1.2.3.4/+8",
        "10.0.0.0/8/8",
    };
    char out[GUARD_IPS_TEXT_MAX], msg[256];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *items[] = {"10.0.0.0/8", bad[i]};
        memset(msg, 0, sizeof(msg));
        if (canon(items, 2, out, msg, sizeof(msg)) != AK_ERR_INVALID)
            fail_msg("\"%s\" accepted", bad[i]);
        if (strstr(msg, "item 2") == NULL)
            fail_msg("\"%s\": message \"%s\" does not name item 2", bad[i], msg);
    }
}

/* ---- containment ---- */

static void test_ips_within(void **state)
{
    (void)state;
    assert_true(guard_ips_within("10.0.0.0/8", "10.1.0.0/16"));
    assert_true(guard_ips_within("10.0.0.0/8", "10.0.0.0/8"));
    assert_true(guard_ips_within("10.0.0.0/8", "10.255.255.255/32"));
    assert_false(guard_ips_within("10.0.0.0/8", "10.0.0.0/7")); /* wider */
    assert_false(guard_ips_within("10.0.0.0/8", "11.0.0.0/8"));
    assert_false(guard_ips_within("10.0.0.0/8", "0.0.0.0/0"));
    assert_false(guard_ips_within("10.0.0.0/8", "::/0"));
    assert_false(guard_ips_within("10.0.0.0/8", "10.1.0.0/16,11.0.0.1/32"));
    assert_true(guard_ips_within("10.0.0.0/8,192.168.0.0/16", "192.168.1.0/24,10.9.9.9/32"));
    assert_false(guard_ips_within("10.0.0.0/8,192.168.0.0/16", "192.168.1.0/24,172.16.0.0/12"));
    /* IPv4 lies inside ::/0; IPv6 does not lie inside 0.0.0.0/0. */
    assert_true(guard_ips_within("::/0", "10.0.0.0/8"));
    assert_true(guard_ips_within("::/0", "0.0.0.0/0,2001:db8::/32"));
    assert_true(guard_ips_within("0.0.0.0/0", "10.0.0.0/8"));
    assert_false(guard_ips_within("0.0.0.0/0", "::1/128"));
    assert_false(guard_ips_within("0.0.0.0/0", "::/0"));
    assert_true(guard_ips_within("2001:db8::/32", "2001:db8:1::/48"));
    assert_false(guard_ips_within("2001:db8::/32", "2001:db8::/31"));
    assert_false(guard_ips_within("2001:db8::/65", "2001:db8::8000:0:0:0/66"));
    assert_true(guard_ips_within("2001:db8::/65", "2001:db8::4000:0:0:0/66"));
    /* Each block must lie inside one block: two halves together do not hold the whole. */
    assert_false(guard_ips_within("10.0.0.0/9,10.128.0.0/9", "10.0.0.0/8"));
    /* Damaged text on either side: not within (fail closed). */
    assert_false(guard_ips_within("garbage", "10.0.0.0/8"));
    assert_false(guard_ips_within("::/0", "garbage"));
    assert_false(guard_ips_within("::/0", "10.0.0.0/8,garbage"));
    assert_false(guard_ips_within("", "10.0.0.0/8"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unrestricted_is_null),
        cmocka_unit_test(test_scopes_only),
        cmocka_unit_test(test_ips_only),
        cmocka_unit_test(test_v4_matching),
        cmocka_unit_test(test_v6_matching),
        cmocka_unit_test(test_mixed_lists),
        cmocka_unit_test(test_matching_matches_reference),
        cmocka_unit_test(test_format_round_trips),
        cmocka_unit_test(test_format_longest),
        cmocka_unit_test(test_damaged_allows_nothing),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_ips_canonical),
        cmocka_unit_test(test_ips_canonical_reads_only_lens),
        cmocka_unit_test(test_ips_canonical_counts),
        cmocka_unit_test(test_ips_canonical_refuses_garbage),
        cmocka_unit_test(test_ips_within),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
