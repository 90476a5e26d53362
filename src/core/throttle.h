/*
 * throttle: counts failed authentications per client address in fixed
 * one-minute windows, so that a client guessing keys is slowed down while
 * the same client with a valid key is not (only failures are counted, and
 * only failures are checked).
 *
 * A bounded table: when it is full, the stalest entry is reused. Taken only
 * on the failure path, under a mutex. Never logs.
 */
#ifndef APIKEYD_CORE_THROTTLE_H
#define APIKEYD_CORE_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

#define THROTTLE_ADDR_MAX 16 /* an IPv6 address */
#define THROTTLE_WINDOW 60   /* seconds */

struct throttle;

/* A table of up to `slots` addresses (rounded up to a power of two) allowing `limit` failures a window. NULL when out of memory. */
struct throttle *throttle_new(unsigned limit, size_t slots);

/* Frees it; accepts NULL. */
void throttle_free(struct throttle *t);

/* Addresses refused now (over the limit in their window): a walk of the table, for a metrics scrape. */
unsigned throttle_blocked(struct throttle *t, int64_t now);

/*
 * Records one failure by `addr` (`len` bytes, at most THROTTLE_ADDR_MAX) at
 * time `now` (seconds). Returns 0 while the address is within its limit;
 * past it, the number of seconds until its window ends (at least 1).
 */
unsigned throttle_fail(struct throttle *t, const uint8_t *addr, size_t len, int64_t now);

#endif
