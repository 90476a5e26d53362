/*
 * Unit tests for core/netaddr: addresses (IPv4 held as IPv4-mapped IPv6),
 * CIDRs and their canonical form, CIDR lists as --trusted-proxies takes
 * them, and the client rule of netaddr_client: right-most untrusted hop,
 * the header consulted only from a trusted peer, the peer on anything that
 * does not parse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "core/error.h"
#include "core/netaddr.h"

static struct netaddr addr(const char *s)
{
    struct netaddr a;

    if (netaddr_parse(s, strlen(s), &a) != 0)
        fail_msg("\"%s\" does not parse", s);
    return a;
}

static void expect_same(const char *x, const char *y)
{
    struct netaddr a = addr(x), b = addr(y);

    if (memcmp(a.b, b.b, 16) != 0)
        fail_msg("\"%s\" and \"%s\" differ", x, y);
}

static void test_parses_v4_as_mapped_v6(void **state)
{
    static const uint8_t want[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7};
    struct netaddr a = addr("203.0.113.7");

    (void)state;
    assert_memory_equal(a.b, want, 16);
    assert_true(netaddr_is_v4(&a));
    expect_same("203.0.113.7", "::ffff:203.0.113.7");
    expect_same("203.0.113.7", "::FFFF:cb00:7107");
    expect_same("2001:db8::1", "2001:0db8:0000:0000:0000:0000:0000:0001");
    a = addr("::1");
    assert_false(netaddr_is_v4(&a));
}

static void test_refuses_what_is_not_one_address(void **state)
{
    static const char *bad[] = {
        "",
        " ",
        "203.0.113.7 ",
        " 203.0.113.7",
        "203.0.113.7:80",
        "[::1]",
        "[::1]:80",
        "203.0.113",
        "203.0.113.256",
        "203.0.113.07x",
        "1.2.3.4.5",
        "fe80::1%eth0",
        "unknown",
        "localhost",
        "::1/128",
        "1::2::3",
        "12345::",
        "203.0.113.7,198.51.100.1",
        "0x7f.0.0.1",
        "1:2:3:4:5:6:7:8:9",
        "1.2.3.4\n",
        "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255x", /* 46 bytes: past the longest text */
    };
    struct netaddr a = {.b = {42}};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (netaddr_parse(bad[i], strlen(bad[i]), &a) != AK_ERR_ARG)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_int_equal(a.b[0], 42); /* untouched on error */
    }
    /* A NUL inside the span, and the length is honoured: no read past it. */
    assert_int_equal(netaddr_parse("1.2.3.4\0", 8, &a), AK_ERR_ARG);
    assert_int_equal(netaddr_parse("1.2.3.45", 7, &a), 0);
    expect_same("1.2.3.4", "::ffff:1.2.3.4");
    assert_memory_equal(a.b + 12, "\x01\x02\x03\x04", 4);
}

static void test_from_sockaddr(void **state)
{
    struct sockaddr_in in = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    struct sockaddr un = {.sa_family = AF_UNIX};
    struct netaddr a, want;

    (void)state;
    inet_pton(AF_INET, "198.51.100.23", &in.sin_addr);
    assert_int_equal(netaddr_from_sockaddr((struct sockaddr *)&in, &a), 0);
    want = addr("198.51.100.23");
    assert_memory_equal(a.b, want.b, 16);
    inet_pton(AF_INET6, "2001:db8::7", &in6.sin6_addr);
    assert_int_equal(netaddr_from_sockaddr((struct sockaddr *)&in6, &a), 0);
    want = addr("2001:db8::7");
    assert_memory_equal(a.b, want.b, 16);
    assert_int_equal(netaddr_from_sockaddr(&un, &a), AK_ERR_ARG);
}

static void expect_cidr(const char *in, const char *canonical)
{
    struct netaddr_cidr c;
    char text[NETADDR_TEXT_MAX];

    if (netaddr_cidr_parse(in, strlen(in), &c) != 0)
        fail_msg("\"%s\" refused", in);
    netaddr_cidr_format(&c, text);
    if (strcmp(text, canonical) != 0)
        fail_msg("\"%s\": got \"%s\", want \"%s\"", in, text, canonical);
}

static void test_cidr_canonical_form(void **state)
{
    (void)state;
    expect_cidr("10.0.0.0/8", "10.0.0.0/8");
    expect_cidr("10.1.2.3/8", "10.0.0.0/8");
    expect_cidr("10.1.2.3", "10.1.2.3/32");
    expect_cidr("0.0.0.0/0", "0.0.0.0/0");
    expect_cidr("192.168.1.255/23", "192.168.0.0/23");
    expect_cidr("::1", "::1/128");
    expect_cidr("2001:DB8::ffff/32", "2001:db8::/32");
    expect_cidr("::/0", "::/0");
    expect_cidr("fe80::1/10", "fe80::/10");
    expect_cidr("::ffff:10.0.0.0/104", "10.0.0.0/8"); /* the same block, written as IPv6 */
}

static void test_cidr_refusals(void **state)
{
    static const char *bad[] = {"",
                                "/8",
                                "10.0.0.0/",
                                "10.0.0.0/33",
                                "::/129",
                                "10.0.0.0/08",
                                "10.0.0.0/-1",
                                "10.0.0.0/+8",
                                "10.0.0.0/8/8",
                                "10.0.0.0 /8",
                                "10.0.0.0/ 8",
                                "10.0.0.0/1000",
                                "10.0.0.0/8x",
                                "host/8"};
    struct netaddr_cidr c = {.prefix = 7};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (netaddr_cidr_parse(bad[i], strlen(bad[i]), &c) != AK_ERR_ARG)
            fail_msg("\"%s\" accepted", bad[i]);
        assert_int_equal(c.prefix, 7);
    }
}

static struct netaddr_cidrs list(const char *s)
{
    struct netaddr_cidrs l;

    if (netaddr_cidrs_parse(s, strlen(s), &l) != 0)
        fail_msg("list \"%s\" refused", s);
    return l;
}

static void test_cidr_lists_and_matching(void **state)
{
    struct netaddr_cidrs l = list(" 10.0.0.0/8 ,192.168.0.0/16,\t2001:db8::/32 ");
    struct netaddr_cidrs dflt = list(NETADDR_DEFAULT_TRUSTED);
    struct netaddr_cidrs any = list("0.0.0.0/0");
    char many[NETADDR_CIDRS_MAX * 16 + 16] = "";
    struct netaddr a;

    (void)state;
    assert_int_equal(l.n, 3);
    a = addr("10.255.0.1");
    assert_true(netaddr_cidrs_match(&l, &a));
    a = addr("::ffff:10.1.1.1");
    assert_true(netaddr_cidrs_match(&l, &a));
    a = addr("11.0.0.1");
    assert_false(netaddr_cidrs_match(&l, &a));
    a = addr("192.168.200.1");
    assert_true(netaddr_cidrs_match(&l, &a));
    a = addr("2001:db8:1::1");
    assert_true(netaddr_cidrs_match(&l, &a));
    a = addr("2001:db9::1");
    assert_false(netaddr_cidrs_match(&l, &a));
    /* IPv4 blocks hold IPv4 addresses only, even /0. */
    a = addr("::1");
    assert_false(netaddr_cidrs_match(&any, &a));
    assert_true(netaddr_cidrs_match(&dflt, &a));
    a = addr("127.3.4.5");
    assert_true(netaddr_cidrs_match(&dflt, &a));
    a = addr("128.0.0.1");
    assert_false(netaddr_cidrs_match(&dflt, &a));

    /* Refusals, *ret untouched. */
    static const char *bad[] = {"", ",", "10.0.0.0/8,", ",10.0.0.0/8", "10.0.0.0/8,,::1", "10.0.0.0/8 ::1", "10.0.0.0/33"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        l.n = 99;
        if (netaddr_cidrs_parse(bad[i], strlen(bad[i]), &l) != AK_ERR_ARG)
            fail_msg("list \"%s\" accepted", bad[i]);
        assert_int_equal(l.n, 99);
    }
    /* At most NETADDR_CIDRS_MAX blocks. */
    for (size_t i = 0; i < NETADDR_CIDRS_MAX; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s10.0.%zu.0/24", i ? "," : "", i);
    assert_int_equal(netaddr_cidrs_parse(many, strlen(many), &l), 0);
    assert_int_equal(l.n, NETADDR_CIDRS_MAX);
    strcat(many, ",10.9.9.0/24");
    assert_int_equal(netaddr_cidrs_parse(many, strlen(many), &l), AK_ERR_ARG);
}

/* netaddr_client with the peer `peer`, trusted blocks `trusted` and header fields `f` (NULL-terminated). */
static void expect_client(const char *peer, const char *trusted, const char *const *f, const char *want)
{
    struct netaddr_span spans[8];
    struct netaddr_cidrs t = list(trusted);
    struct netaddr p = addr(peer), got, w = addr(want);
    size_t n = 0;

    for (; f != NULL && f[n] != NULL; n++)
        spans[n] = (struct netaddr_span){f[n], strlen(f[n])};
    netaddr_client(&p, spans, n, &t, &got);
    if (memcmp(got.b, w.b, 16) != 0) {
        char text[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, got.b, text, sizeof(text));
        fail_msg("peer %s, trusted %s, first field \"%s\": got %s, want %s", peer, trusted, n ? f[0] : "(none)", text, want);
    }
}

#define F(...) ((const char *const[]){__VA_ARGS__, NULL})
#define LO NETADDR_DEFAULT_TRUSTED
#define LB "127.0.0.0/8,::1/128,10.0.0.0/8"

static void test_client_rule(void **state)
{
    (void)state;
    /* No header: the peer. */
    expect_client("203.0.113.9", LO, NULL, "203.0.113.9");
    expect_client("127.0.0.1", LO, NULL, "127.0.0.1");
    /* From a trusted peer, the right-most untrusted hop. */
    expect_client("127.0.0.1", LO, F("203.0.113.7"), "203.0.113.7");
    expect_client("127.0.0.1", LO, F("198.51.100.1, 203.0.113.7"), "203.0.113.7");
    expect_client("10.0.0.5", LB, F("198.51.100.1, 203.0.113.7, 10.1.1.1"), "203.0.113.7");
    expect_client("10.0.0.5", LB, F("198.51.100.1,203.0.113.7,\t10.1.1.1 ,127.0.0.1"), "203.0.113.7");
    /* A client's own forged left part is never reached. */
    expect_client("10.0.0.5", LB, F("10.9.9.9, 203.0.113.7"), "203.0.113.7");
    /* From an untrusted peer, the header is ignored: anybody can send it. */
    expect_client("203.0.113.9", LO, F("198.51.100.1"), "203.0.113.9");
    expect_client("10.0.0.5", LO, F("198.51.100.1"), "10.0.0.5");
    /* Every hop trusted: the left-most. */
    expect_client("10.0.0.5", LB, F("10.1.1.1, 10.2.2.2"), "10.1.1.1");
    /* A hop that does not parse, anywhere it is reached: the peer. */
    expect_client("127.0.0.1", LO, F("unknown"), "127.0.0.1");
    expect_client("127.0.0.1", LO, F(""), "127.0.0.1");
    expect_client("127.0.0.1", LO, F("203.0.113.7,"), "127.0.0.1");
    expect_client("127.0.0.1", LO, F("203.0.113.7:4711"), "127.0.0.1");
    expect_client("127.0.0.1", LO, F("[2001:db8::1]"), "127.0.0.1");
    expect_client("127.0.0.1", LO, F("203.0.113.7, 127.0.0.1, junk"), "127.0.0.1");
    expect_client("127.0.0.1", LO, F("203.0.113.7, , 127.0.0.1"), "127.0.0.1");
    expect_client("127.0.0.1", LO, F("203.0.113.7 198.51.100.1"), "127.0.0.1");
    /* ... but not past the client: the walk stops at the first untrusted hop. */
    expect_client("127.0.0.1", LO, F("junk, 203.0.113.7"), "203.0.113.7");
    /* Several fields of the header are one list, in their order. */
    expect_client("10.0.0.5", LB, F("198.51.100.1", "203.0.113.7, 10.1.1.1"), "203.0.113.7");
    expect_client("10.0.0.5", LB, F("198.51.100.1", "10.1.1.1"), "198.51.100.1");
    expect_client("10.0.0.5", LB, F("198.51.100.1", ""), "10.0.0.5");
    /* IPv6, and IPv4 written either way. */
    expect_client("::1", LO, F("2001:db8::1"), "2001:db8::1");
    expect_client("::ffff:127.0.0.1", LO, F("::ffff:203.0.113.7"), "203.0.113.7");
    expect_client("::1", LO, F("2001:db8::1, ::1"), "2001:db8::1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parses_v4_as_mapped_v6),
        cmocka_unit_test(test_refuses_what_is_not_one_address),
        cmocka_unit_test(test_from_sockaddr),
        cmocka_unit_test(test_cidr_canonical_form),
        cmocka_unit_test(test_cidr_refusals),
        cmocka_unit_test(test_cidr_lists_and_matching),
        cmocka_unit_test(test_client_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
