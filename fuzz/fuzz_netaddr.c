/*
 * fuzz_netaddr: a forwarding header value (X-Forwarded-For) or a
 * --trusted-proxies value through core/netaddr.
 *
 * Checked: an address that parses formats (inet_ntop) to text that parses
 * back to the same 128 bits; a CIDR that parses has host bits clear, a
 * prefix of at most 128, and a canonical text that parses back to itself;
 * a list that parses has 1 to NETADDR_CIDRS_MAX blocks; netaddr_client
 * answers the peer when the peer is untrusted, and otherwise the peer or
 * an address that is one of the input's comma-separated items.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "core/netaddr.h"
#include "fuzz.h"

static void check_addr(const char *s, size_t len)
{
    struct netaddr a, b;
    char text[INET6_ADDRSTRLEN];

    if (netaddr_parse(s, len, &a) != 0)
        return;
    FUZZ_CHECK(len > 0 && len < INET6_ADDRSTRLEN);
    FUZZ_CHECK(inet_ntop(AF_INET6, a.b, text, sizeof(text)) != NULL);
    FUZZ_CHECK(netaddr_parse(text, strlen(text), &b) == 0 && memcmp(a.b, b.b, 16) == 0);
}

static void check_cidr(const char *s, size_t len)
{
    struct netaddr_cidr c, d;
    struct netaddr m;
    char text[NETADDR_TEXT_MAX], again[NETADDR_TEXT_MAX];

    if (netaddr_cidr_parse(s, len, &c) != 0)
        return;
    FUZZ_CHECK(c.prefix <= 128);
    /* Host bits clear: the block's own address lies in it, and so does nothing that differs in the prefix. */
    for (unsigned bit = c.prefix; bit < 128; bit++)
        FUZZ_CHECK((c.addr.b[bit / 8] & (0x80u >> (bit % 8))) == 0);
    netaddr_cidr_format(&c, text);
    FUZZ_CHECK(netaddr_cidr_parse(text, strlen(text), &d) == 0);
    FUZZ_CHECK(d.prefix == c.prefix && memcmp(d.addr.b, c.addr.b, 16) == 0);
    netaddr_cidr_format(&d, again);
    FUZZ_CHECK(strcmp(text, again) == 0);
    struct netaddr_cidrs one = {.v = {c}, .n = 1};
    m = c.addr;
    FUZZ_CHECK(netaddr_cidrs_match(&one, &m));
}

/* Whether `a` is the address of one of the comma-separated items of s (trimmed of spaces and tabs). */
static int is_an_item(const char *s, size_t len, const struct netaddr *a)
{
    size_t start = 0;

    while (start <= len) {
        const char *comma = memchr(s + start, ',', len - start);
        size_t end = comma != NULL ? (size_t)(comma - s) : len, i = start, j = end;
        struct netaddr b;
        while (i < j && (s[i] == ' ' || s[i] == '\t'))
            i++;
        while (j > i && (s[j - 1] == ' ' || s[j - 1] == '\t'))
            j--;
        if (netaddr_parse(s + i, j - i, &b) == 0 && memcmp(a->b, b.b, 16) == 0)
            return 1;
        start = end + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char trusted_text[] = "127.0.0.0/8,::1/128,10.0.0.0/8";
    char *value = fuzz_dup(data, size);
    struct netaddr_cidrs trusted, list = {.n = 12345};
    struct netaddr peer, untrusted_peer, got;
    struct netaddr_span span = {value, size};

    FUZZ_CHECK(netaddr_cidrs_parse(trusted_text, strlen(trusted_text), &trusted) == 0);
    FUZZ_CHECK(netaddr_parse("127.0.0.1", 9, &peer) == 0 && netaddr_parse("192.0.2.1", 9, &untrusted_peer) == 0);

    check_addr(value, size);
    check_cidr(value, size);
    if (netaddr_cidrs_parse(value, size, &list) == 0)
        FUZZ_CHECK(list.n >= 1 && list.n <= NETADDR_CIDRS_MAX);
    else
        FUZZ_CHECK(list.n == 12345);

    netaddr_client(&untrusted_peer, &span, 1, &trusted, &got);
    FUZZ_CHECK(memcmp(got.b, untrusted_peer.b, 16) == 0);
    netaddr_client(&peer, &span, 1, &trusted, &got);
    FUZZ_CHECK(memcmp(got.b, peer.b, 16) == 0 || is_an_item(value, size, &got));
    free(value);
    return 0;
}
