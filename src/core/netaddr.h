/*
 * netaddr: IP addresses and CIDR blocks as 128-bit values (an IPv4 address
 * is held as its IPv4-mapped IPv6 form ::ffff:a.b.c.d, so that every
 * comparison is one of 16 bytes), and the rule that picks a client's
 * address from a forwarding header such as X-Forwarded-For.
 *
 * Every input here may come from a stranger (a request header) or from the
 * command line: parsers take a pointer and a length, never read past it,
 * never allocate per input byte and leave their outputs alone on error.
 * Never logs.
 */
#ifndef APIKEYD_CORE_NETADDR_H
#define APIKEYD_CORE_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

#define NETADDR_TEXT_MAX 64  /* a formatted CIDR with its NUL: "ffff:...:ffff/128" */
#define NETADDR_CIDRS_MAX 64 /* blocks in one list (--trusted-proxies) */
#define NETADDR_DEFAULT_TRUSTED "127.0.0.0/8,::1/128"

struct netaddr {
    uint8_t b[16]; /* network order; IPv4 as ::ffff:a.b.c.d */
};

struct netaddr_cidr {
    struct netaddr addr; /* host bits are zero */
    unsigned prefix;     /* 0..128, counted on the 128-bit form (an IPv4 /8 is 104) */
};

struct netaddr_cidrs {
    struct netaddr_cidr v[NETADDR_CIDRS_MAX];
    size_t n;
};

/* A span of a header value; `p` need not be NUL-terminated. */
struct netaddr_span {
    const char *p;
    size_t len;
};

/*
 * Parses one IPv4 address in dotted-quad form or one IPv6 address (the
 * forms inet_pton accepts; no zone, no port, no brackets, no spaces) from
 * `len` bytes. Returns 0 and sets *ret, or AK_ERR_ARG.
 */
int netaddr_parse(const char *s, size_t len, struct netaddr *ret);

/* The address of an AF_INET or AF_INET6 socket address. Returns 0 and sets *ret, or AK_ERR_ARG for another family. */
int netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *ret);

/* Writes `a` as text ("192.0.2.1" for an IPv4-mapped address, else IPv6). */
void netaddr_format(const struct netaddr *a, char out[NETADDR_TEXT_MAX]);

/* Whether `a` is an IPv4 address (IPv4-mapped). */
bool netaddr_is_v4(const struct netaddr *a);

/*
 * Parses "ADDR/PREFIX" (IPv4 prefix 0..32, IPv6 0..128, decimal without
 * sign or leading zeros) or a bare ADDR (one host). Host bits set past the
 * prefix are cleared: "10.1.2.3/8" is 10.0.0.0/8. The prefix counts bits
 * of the address as written, so "::ffff:10.0.0.0/104" is 10.0.0.0/8 and
 * "::/0" holds every address, IPv4 too, while "0.0.0.0/0" holds IPv4 only.
 * Returns 0 and sets *ret, or AK_ERR_ARG.
 */
int netaddr_cidr_parse(const char *s, size_t len, struct netaddr_cidr *ret);

/* Writes the canonical text of `c` ("10.0.0.0/8", "::1/128") into `out` (NETADDR_TEXT_MAX bytes). */
void netaddr_cidr_format(const struct netaddr_cidr *c, char out[NETADDR_TEXT_MAX]);

/*
 * Parses a comma-separated list of CIDRs (spaces around items allowed; at
 * least one, at most NETADDR_CIDRS_MAX; no empty item). Returns 0 and
 * fills *ret, or AK_ERR_ARG with *ret untouched.
 */
int netaddr_cidrs_parse(const char *s, size_t len, struct netaddr_cidrs *ret);

/* Whether `a` lies in one of the blocks of `list`. */
bool netaddr_cidrs_match(const struct netaddr_cidrs *list, const struct netaddr *a);

/*
 * The client's address, by this rule: the hops of the header fields
 * `fields` (each a comma-separated list of addresses, in the order the
 * fields came; `n` of them, 0 when absent) followed by the peer form one
 * chain, the client's end on the left. Walking it from the right, hops in
 * `trusted` are skipped and the first untrusted one is the client. The
 * header is consulted only when the peer itself is trusted (anybody can
 * send the header; only a proxy we trust can vouch for it). If every hop is
 * trusted, the left-most is the client. A hop that does not parse as an
 * address (empty, a port, a name, "unknown") ends the walk and the client
 * is the peer: such a header is not evidence of anything.
 *
 * Always sets *ret (to `peer` or to one of the hops).
 */
void netaddr_client(const struct netaddr *peer, const struct netaddr_span *fields, size_t n, const struct netaddr_cidrs *trusted,
                    struct netaddr *ret);

#endif
