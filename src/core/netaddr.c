/*
 * netaddr: see netaddr.h. inet_pton does the address syntax; everything
 * around it (lengths, prefixes, lists, the forwarding rule) is here, on
 * bounded copies of the input.
 */
#include "core/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "core/error.h"

static const uint8_t V4_PREFIX[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void from_v4(const uint8_t v4[4], struct netaddr *ret)
{
    memcpy(ret->b, V4_PREFIX, sizeof(V4_PREFIX));
    memcpy(ret->b + 12, v4, 4);
}

bool netaddr_is_v4(const struct netaddr *a)
{
    return memcmp(a->b, V4_PREFIX, sizeof(V4_PREFIX)) == 0;
}

int netaddr_parse(const char *s, size_t len, struct netaddr *ret)
{
    char buf[INET6_ADDRSTRLEN]; /* 46: the longest text inet_pton can accept, with its NUL */
    uint8_t v4[4];
    struct netaddr a;

    if (len == 0 || len >= sizeof(buf) || memchr(s, '\0', len) != NULL)
        return AK_ERR_ARG;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, v4) == 1) {
        from_v4(v4, &a);
    } else if (inet_pton(AF_INET6, buf, a.b) != 1) {
        return AK_ERR_ARG;
    }
    *ret = a;
    return 0;
}

int netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *ret)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        from_v4((const uint8_t *)&in->sin_addr, ret);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(ret->b, &in6->sin6_addr, 16);
        return 0;
    }
    return AK_ERR_ARG;
}

/* Clears every bit of `a` past the first `prefix`. */
static void mask(struct netaddr *a, unsigned prefix)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = prefix >= 8 * (i + 1) ? 8 : prefix > 8 * i ? prefix - 8 * i : 0;
        a->b[i] &= (uint8_t)(0xff00u >> keep);
    }
}

static bool in_cidr(const struct netaddr_cidr *c, const struct netaddr *a)
{
    struct netaddr m = *a;

    mask(&m, c->prefix);
    return memcmp(m.b, c->addr.b, 16) == 0;
}

int netaddr_cidr_parse(const char *s, size_t len, struct netaddr_cidr *ret)
{
    const char *slash = memchr(s, '/', len);
    struct netaddr_cidr c;
    size_t alen = slash != NULL ? (size_t)(slash - s) : len;
    unsigned max, prefix = 0;
    int r;

    if ((r = netaddr_parse(s, alen, &c.addr)) != 0)
        return r;
    /* The prefix counts bits of the address as written: "::ffff:10.0.0.0/104" is "10.0.0.0/8". */
    max = memchr(s, ':', alen) == NULL ? 32 : 128;
    if (slash == NULL) {
        prefix = max;
    } else {
        const char *d = slash + 1, *end = s + len;
        if (d == end || end - d > 3 || (d[0] == '0' && end - d > 1))
            return AK_ERR_ARG;
        for (; d < end; d++) {
            if (*d < '0' || *d > '9')
                return AK_ERR_ARG;
            prefix = prefix * 10 + (unsigned)(*d - '0');
        }
        if (prefix > max)
            return AK_ERR_ARG;
    }
    c.prefix = max == 32 ? prefix + 96 : prefix;
    mask(&c.addr, c.prefix);
    *ret = c;
    return 0;
}

void netaddr_format(const struct netaddr *a, char out[NETADDR_TEXT_MAX])
{
    if (netaddr_is_v4(a))
        inet_ntop(AF_INET, a->b + 12, out, NETADDR_TEXT_MAX);
    else
        inet_ntop(AF_INET6, a->b, out, NETADDR_TEXT_MAX);
}

void netaddr_cidr_format(const struct netaddr_cidr *c, char out[NETADDR_TEXT_MAX])
{
    char text[NETADDR_TEXT_MAX];
    size_t n;

    bool v4 = netaddr_is_v4(&c->addr) && c->prefix >= 96;

    if (v4)
        netaddr_format(&c->addr, text);
    else
        inet_ntop(AF_INET6, c->addr.b, text, sizeof(text)); /* a block wider than IPv4's, in IPv6 form */
    n = strlen(text);
    snprintf(text + n, sizeof(text) - n, "/%u", v4 ? c->prefix - 96 : c->prefix);
    memcpy(out, text, NETADDR_TEXT_MAX);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims spaces and tabs around s[*start, *end). */
static void trim(const char *s, size_t *start, size_t *end)
{
    while (*start < *end && is_ows(s[*start]))
        (*start)++;
    while (*end > *start && is_ows(s[*end - 1]))
        (*end)--;
}

int netaddr_cidrs_parse(const char *s, size_t len, struct netaddr_cidrs *ret)
{
    struct netaddr_cidrs list = {.n = 0};
    size_t pos = 0;

    for (;;) {
        const char *comma = memchr(s + pos, ',', len - pos);
        size_t end = comma != NULL ? (size_t)(comma - s) : len, a = pos, b = end;
        trim(s, &a, &b);
        if (list.n == NETADDR_CIDRS_MAX || netaddr_cidr_parse(s + a, b - a, &list.v[list.n]) != 0)
            return AK_ERR_ARG;
        list.n++;
        if (comma == NULL)
            break;
        pos = end + 1;
    }
    *ret = list;
    return 0;
}

bool netaddr_cidrs_match(const struct netaddr_cidrs *list, const struct netaddr *a)
{
    for (size_t i = 0; i < list->n; i++)
        if (in_cidr(&list->v[i], a))
            return true;
    return false;
}

void netaddr_client(const struct netaddr *peer, const struct netaddr_span *fields, size_t n, const struct netaddr_cidrs *trusted,
                    struct netaddr *ret)
{
    struct netaddr hop = *peer;

    if (!netaddr_cidrs_match(trusted, peer))
        goto out;
    /* Right to left: the last field first, and each field's items from its end. */
    for (size_t f = n; f-- > 0;) {
        const char *s = fields[f].p;
        size_t end = fields[f].len;
        for (;;) {
            size_t start = end, a, b;
            while (start > 0 && s[start - 1] != ',')
                start--;
            a = start;
            b = end;
            trim(s, &a, &b);
            if (netaddr_parse(s + a, b - a, &hop) != 0) {
                hop = *peer;
                goto out;
            }
            if (!netaddr_cidrs_match(trusted, &hop))
                goto out;
            if (start == 0)
                break;
            end = start - 1;
        }
    }
    /* Every hop trusted: the left-most one (the peer when there was no header). */
out:
    *ret = hop;
}
