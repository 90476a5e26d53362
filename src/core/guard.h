/*
 * guard: a key's restrictions in the form the hot path reads them: its
 * scopes (canonical text, see scope.h) and its IP allowlist compiled to
 * integers (an IPv4 block is a network and a mask, an IPv6 block 16 bytes
 * and a prefix), in one allocation per restricted key. Unrestricted keys
 * have none (NULL), so that a million plain keys cost nothing here.
 *
 * An allowlist's text is its CIDRs in canonical form (netaddr_cidr_format),
 * comma-separated, in the order they were given, without repeats: the
 * store keeps it, the API shows it, and guard_format_ips gives it back
 * from the compiled form. Never logs, never allocates on a check.
 */
#ifndef APIKEYD_CORE_GUARD_H
#define APIKEYD_CORE_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/netaddr.h"

#define GUARD_IPS_MAX 32
/* The canonical text of a full allowlist, with its NUL. */
#define GUARD_IPS_TEXT_MAX (GUARD_IPS_MAX * NETADDR_TEXT_MAX)

struct guard;

/*
 * Compiles `scopes` (canonical text, or NULL: unrestricted) and `ips`
 * (canonical allowlist text, or NULL: from anywhere). *ret is NULL when both
 * are NULL. 0 or AK_ERR_NOMEM. An allowlist text that does not parse (the
 * store held something apikeyd did not write) allows no address at all.
 */
int guard_new(const char *scopes, const char *ips, struct guard **ret);

/*
 * Guards are shared by keys with the same restrictions (the catalog interns
 * them): guard_new gives one reference, guard_ref takes another, guard_free
 * drops one and frees the guard with the last. Atomic: any thread may drop.
 */
struct guard *guard_ref(struct guard *g);
void guard_free(struct guard *g); /* accepts NULL */
unsigned guard_refs(const struct guard *g);

/* Whether `g` (NULL: unrestricted) was made from exactly these texts (NULL: absent). */
bool guard_is(const struct guard *g, const char *scopes, const char *ips);

/* A hash of the texts a guard is made from, for interning (keyed by `seed`). */
uint64_t guard_hash(const char *scopes, const char *ips, uint64_t seed);

/* Whether `client` may use the key (no allowlist, or in one of its blocks). Accepts NULL `g`. */
bool guard_ip_allowed(const struct guard *g, const struct netaddr *client);

/* The key's scopes as canonical text, or NULL when it is unrestricted. Accepts NULL `g`. */
const char *guard_scopes(const struct guard *g, size_t *ret_len);

/* The allowlist's text as the guard was made from it ("" when damaged), NULL when none. Accepts NULL `g`. */
const char *guard_ips_text(const struct guard *g);

/* Whether the key has an allowlist. Accepts NULL `g`. */
bool guard_has_ips(const struct guard *g);

/* Writes the allowlist's canonical text into `out` (GUARD_IPS_TEXT_MAX bytes); "" when none or damaged. */
void guard_format_ips(const struct guard *g, char *out);

/*
 * Parses a list of `n` CIDRs or addresses (`items[i]`, `lens[i]` bytes)
 * into the canonical allowlist text in `out` (GUARD_IPS_TEXT_MAX bytes).
 * 0, or AK_ERR_INVALID with a reason in `msg` (garbage, none, more than
 * GUARD_IPS_MAX).
 */
int guard_ips_canonical(const char *const *items, const size_t *lens, size_t n, char *out, char *msg, size_t msglen);

/* Whether every block of the allowlist text `want` lies inside a block of the allowlist text `have`. */
bool guard_ips_within(const char *have, const char *want);

#endif
