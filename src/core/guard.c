/*
 * guard: see guard.h. Layout of one allocation: the header, then nv4
 * pairs of uint32_t (network, mask; host order), then nv6 blocks of 17
 * bytes (address, prefix), then the scope text with its NUL, then the
 * allowlist's text with its NUL (what it was made from, kept so that equal
 * restrictions are found and shared without parsing, and shown as given).
 */
#include "core/guard.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define V6_ITEM 17

struct guard {
    _Atomic uint32_t refs;
    uint16_t ips_len;
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
    size_t n = 0, nv4 = 0, slen = scopes != NULL ? strlen(scopes) : 0, ilen = ips != NULL ? strlen(ips) : 0;
    uint32_t *w4;
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
    if (ilen > UINT16_MAX)
        n = nv4 = ilen = 0; /* likewise: allows nothing */
    while (p != NULL && (r = n < GUARD_IPS_MAX ? next_block(&p, &v[n]) : *p == '\0' ? 0 : AK_ERR_INVALID) != 0) {
        if (r < 0) {
            n = nv4 = 0; /* text apikeyd did not write: fail closed, no address is allowed */
            ilen = 0;
            break;
        }
        if (is_v4_block(&v[n]))
            nv4++;
        n++;
    }
    if ((g = malloc(sizeof(*g) + nv4 * 8 + (n - nv4) * V6_ITEM + slen + 1 + ilen + 1)) == NULL)
        return AK_ERR_NOMEM;
    atomic_init(&g->refs, 1);
    g->ips_len = (uint16_t)ilen;
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
    /* Each text with a NUL of its own: a length cut to 0 above (text not kept) must not copy the text's first byte. */
    memcpy(w6, scopes != NULL ? scopes : "", slen);
    w6[slen] = '\0';
    memcpy(w6 + slen + 1, ips != NULL ? ips : "", ilen);
    w6[slen + 1 + ilen] = '\0';
    *ret = g;
    return 0;
}

struct guard *guard_ref(struct guard *g)
{
    if (g != NULL)
        atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
    return g;
}

void guard_free(struct guard *g)
{
    if (g != NULL && atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
        free(g);
}

unsigned guard_refs(const struct guard *g)
{
    return atomic_load_explicit(&((struct guard *)g)->refs, memory_order_acquire);
}

/* The allowlist text stored after the scopes. */
static const char *ips_text(const struct guard *g)
{
    return (const char *)g->data + (size_t)g->nv4 * 8 + (size_t)g->nv6 * V6_ITEM + g->scopes_len + 1;
}

const char *guard_ips_text(const struct guard *g)
{
    return guard_has_ips(g) ? ips_text(g) : NULL;
}

bool guard_is(const struct guard *g, const char *scopes, const char *ips)
{
    size_t slen;
    const char *mine = guard_scopes(g, &slen);

    if ((g == NULL) != (scopes == NULL && ips == NULL))
        return false;
    if (g == NULL)
        return true;
    if ((mine == NULL) != (scopes == NULL) || (mine != NULL && strcmp(mine, scopes) != 0))
        return false;
    return g->has_ips == (ips != NULL) && (ips == NULL || strcmp(ips_text(g), ips) == 0);
}

uint64_t guard_hash(const char *scopes, const char *ips, uint64_t seed)
{
    uint64_t h = seed ^ 0xcbf29ce484222325ULL;
    const char *parts[2] = {scopes, ips};

    for (int i = 0; i < 2; i++) {
        h = (h ^ (parts[i] != NULL ? 0x9e : 0x37)) * 0x100000001b3ULL;
        for (const unsigned char *p = (const unsigned char *)parts[i]; p != NULL && *p != '\0'; p++)
            h = (h ^ *p) * 0x100000001b3ULL;
    }
    return h;
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
    out[0] = '\0';
    if (guard_has_ips(g))
        memcpy(out, ips_text(g), (size_t)g->ips_len + 1);
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
