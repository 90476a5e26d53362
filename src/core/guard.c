/*
 * guard: see guard.h. Layout of one allocation: the header, then nv4
 * pairs of uint32_t (network, mask; host order), then nv6 blocks of 17
 * bytes (address, prefix), then the scope text with its NUL. `order` has
 * bit i set when the i-th block of the allowlist as given is an IPv6 one,
 * so that the text comes back in its order.
 */
#include "core/guard.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define V6_ITEM 17

struct guard {
    uint32_t order;
    uint16_t scopes_len;
    uint8_t nv4, nv6;
    bool has_scopes, has_ips;
    _Alignas(uint32_t) unsigned char data[];
};

static bool is_v4_block(const struct netaddr_cidr *c)
{
    return c->prefix >= 96 && netaddr_is_v4(&c->addr);
}

static uint32_t v4_of(const struct netaddr *a)
{
    return (uint32_t)a->b[12] << 24 | (uint32_t)a->b[13] << 16 | (uint32_t)a->b[14] << 8 | a->b[15];
}

static uint32_t v4_mask(unsigned bits)
{
    return bits == 0 ? 0 : ~(uint32_t)0 << (32 - bits);
}

/* Walks a canonical allowlist text: the next block into *ret, *p past it. 1, 0 at the end, or AK_ERR_INVALID. */
static int next_block(const char **p, struct netaddr_cidr *ret)
{
    const char *s = *p, *e;

    if (*s == '\0')
        return 0;
    e = strchr(s, ',');
    if (e == NULL)
        e = s + strlen(s);
    if (netaddr_cidr_parse(s, (size_t)(e - s), ret) != 0)
        return AK_ERR_INVALID;
    *p = *e == ',' ? e + 1 : e;
    return 1;
}

int guard_new(const char *scopes, const char *ips, struct guard **ret)
{
    struct netaddr_cidr v[GUARD_IPS_MAX];
    size_t n = 0, nv4 = 0, slen = scopes != NULL ? strlen(scopes) : 0;
    uint32_t order = 0, *w4;
    unsigned char *w6;
    struct guard *g;
    const char *p = ips;
    int r;

    if (scopes == NULL && ips == NULL) {
        *ret = NULL;
        return 0;
    }
    if (slen > UINT16_MAX)
        slen = 0; /* never written by apikeyd (scope.h bounds it): grants nothing */
    while (p != NULL && (r = n < GUARD_IPS_MAX ? next_block(&p, &v[n]) : AK_ERR_INVALID) != 0) {
        if (r < 0) {
            n = nv4 = 0; /* text apikeyd did not write: fail closed, no address is allowed */
            order = 0;
            break;
        }
        if (is_v4_block(&v[n]))
            nv4++;
        else
            order |= (uint32_t)1 << n;
        n++;
    }
    if ((g = malloc(sizeof(*g) + nv4 * 8 + (n - nv4) * V6_ITEM + slen + 1)) == NULL)
        return AK_ERR_NOMEM;
    g->order = order;
    g->scopes_len = (uint16_t)slen;
    g->nv4 = (uint8_t)nv4;
    g->nv6 = (uint8_t)(n - nv4);
    g->has_scopes = scopes != NULL;
    g->has_ips = ips != NULL;
    w4 = (uint32_t *)(void *)g->data;
    w6 = g->data + nv4 * 8;
    for (size_t i = 0; i < n; i++) {
        if (is_v4_block(&v[i])) {
            *w4++ = v4_of(&v[i].addr);
            *w4++ = v4_mask(v[i].prefix - 96);
        } else {
            memcpy(w6, v[i].addr.b, 16);
            w6[16] = (unsigned char)v[i].prefix;
            w6 += V6_ITEM;
        }
    }
    memcpy(w6, scopes != NULL ? scopes : "", slen + 1);
    *ret = g;
    return 0;
}

void guard_free(struct guard *g)
{
    free(g);
}

static bool in_v6(const unsigned char *item, const struct netaddr *a)
{
    unsigned bits = item[16], whole = bits / 8, rest = bits % 8;

    if (memcmp(item, a->b, whole) != 0)
        return false;
    return rest == 0 || ((item[whole] ^ a->b[whole]) & (0xff00u >> rest) & 0xff) == 0;
}

bool guard_ip_allowed(const struct guard *g, const struct netaddr *client)
{
    const uint32_t *w4;
    const unsigned char *w6;

    if (g == NULL || !g->has_ips)
        return true;
    w4 = (const uint32_t *)(const void *)g->data;
    w6 = g->data + (size_t)g->nv4 * 8;
    if (netaddr_is_v4(client)) {
        uint32_t a = v4_of(client);
        for (size_t i = 0; i < g->nv4; i++)
            if ((a & w4[2 * i + 1]) == w4[2 * i])
                return true;
    }
    /* IPv6 blocks hold IPv4 clients too, in their mapped form ("::/0" is everyone). */
    for (size_t i = 0; i < g->nv6; i++)
        if (in_v6(w6 + i * V6_ITEM, client))
            return true;
    return false;
}

const char *guard_scopes(const struct guard *g, size_t *ret_len)
{
    if (g == NULL || !g->has_scopes) {
        *ret_len = 0;
        return NULL;
    }
    *ret_len = g->scopes_len;
    return (const char *)g->data + (size_t)g->nv4 * 8 + (size_t)g->nv6 * V6_ITEM;
}

bool guard_has_ips(const struct guard *g)
{
    return g != NULL && g->has_ips;
}

void guard_format_ips(const struct guard *g, char *out)
{
    size_t o = 0, n, i4 = 0, i6 = 0;
    const uint32_t *w4;
    const unsigned char *w6;

    out[0] = '\0';
    if (!guard_has_ips(g))
        return;
    n = (size_t)g->nv4 + g->nv6;
    w4 = (const uint32_t *)(const void *)g->data;
    w6 = g->data + (size_t)g->nv4 * 8;
    for (size_t i = 0; i < n; i++) {
        struct netaddr_cidr c = {.addr = {.b = {0}}};
        char text[NETADDR_TEXT_MAX];
        if (g->order & ((uint32_t)1 << i)) {
            memcpy(c.addr.b, w6 + i6 * V6_ITEM, 16);
            c.prefix = w6[i6 * V6_ITEM + 16];
            i6++;
        } else {
            uint32_t a = w4[2 * i4], m = w4[2 * i4 + 1];
            unsigned bits = 0;
            while (bits < 32 && (m & ((uint32_t)1 << (31 - bits))))
                bits++;
            c.addr.b[10] = c.addr.b[11] = 0xff;
            c.addr.b[12] = (uint8_t)(a >> 24);
            c.addr.b[13] = (uint8_t)(a >> 16);
            c.addr.b[14] = (uint8_t)(a >> 8);
            c.addr.b[15] = (uint8_t)a;
            c.prefix = bits + 96;
            i4++;
        }
        netaddr_cidr_format(&c, text);
        o += (size_t)snprintf(out + o, GUARD_IPS_TEXT_MAX - o, "%s%s", i != 0 ? "," : "", text);
    }
}

static bool same_block(const struct netaddr_cidr *a, const struct netaddr_cidr *b)
{
    return a->prefix == b->prefix && memcmp(a->addr.b, b->addr.b, 16) == 0;
}

/* Whether block `inner` lies inside block `outer` (both on the 128-bit form). */
static bool block_within(const struct netaddr_cidr *outer, const struct netaddr_cidr *inner)
{
    unsigned char item[V6_ITEM];

    if (inner->prefix < outer->prefix)
        return false;
    memcpy(item, outer->addr.b, 16);
    item[16] = (unsigned char)outer->prefix;
    return in_v6(item, &inner->addr);
}

int guard_ips_canonical(const char *const *items, const size_t *lens, size_t n, char *out, char *msg, size_t msglen)
{
    struct netaddr_cidr v[GUARD_IPS_MAX];
    size_t m = 0, o = 0;

    if (n == 0 || n > GUARD_IPS_MAX) {
        snprintf(msg, msglen, "allowed_ips must be null or a list of 1 to %d IPv4/IPv6 addresses or CIDR blocks", GUARD_IPS_MAX);
        return AK_ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        struct netaddr_cidr c;
        bool dup = false;
        if (netaddr_cidr_parse(items[i], lens[i], &c) != 0) {
            snprintf(msg, msglen,
                     "allowed_ips item %zu is not an IPv4/IPv6 address or CIDR block such as \"203.0.113.0/24\" or "
                     "\"2001:db8::/32\"",
                     i + 1);
            return AK_ERR_INVALID;
        }
        for (size_t j = 0; j < m && !dup; j++)
            dup = same_block(&v[j], &c);
        if (!dup)
            v[m++] = c;
    }
    for (size_t i = 0; i < m; i++) {
        char text[NETADDR_TEXT_MAX];
        netaddr_cidr_format(&v[i], text);
        o += (size_t)snprintf(out + o, GUARD_IPS_TEXT_MAX - o, "%s%s", i != 0 ? "," : "", text);
    }
    return 0;
}

bool guard_ips_within(const char *have, const char *want)
{
    struct netaddr_cidr h[GUARD_IPS_MAX], w;
    const char *p = have;
    size_t nh = 0;
    int r;

    while (nh < GUARD_IPS_MAX && (r = next_block(&p, &h[nh])) != 0) {
        if (r < 0)
            return false;
        nh++;
    }
    p = want;
    while ((r = next_block(&p, &w)) != 0) {
        bool in = false;
        if (r < 0)
            return false;
        for (size_t i = 0; i < nh && !in; i++)
            in = block_within(&h[i], &w);
        if (!in)
            return false;
    }
    return true;
}
