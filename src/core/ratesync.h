/*
 * ratesync: the exchange that keeps rate limits whole across instances
 * sharing a store (issue 13).
 *
 * Decisions stay local (ratelimit.h: one compare-and-swap). Every
 * `interval_ms`, one thread leases the slots of each busy key's windows
 * from the store, in one round trip for all of them: an instance admits
 * in a window only as many requests as it holds slots for, and the store
 * never leases more slots than the limit, so that all instances together
 * never admit more than the limit. Each instance asks for what it used
 * since the last exchange, twice over, less what it still holds; near a
 * window's end it leases the next window ahead, so that a busy key never
 * waits for its first slots.
 *
 * Alone (the only instance the store saw alive in the last 3 s), an
 * instance admits up to the limit less what others hold, reporting what
 * it admitted: exact, and never refusing a client at the limit.
 *
 * A window the exchange has not spoken about (a key's first requests)
 * admits up to limit / instances alive, reported on the next exchange.
 * If the store stops answering for a second, each instance falls back to
 * limit / (instances it last knew of) in the current window too; when the
 * store answers again, what was admitted meanwhile is reported and the
 * counts converge.
 */
#ifndef APIKEYD_CORE_RATESYNC_H
#define APIKEYD_CORE_RATESYNC_H

#include "core/keys.h"

struct ratesync;

#define RATESYNC_INTERVAL_MS_DEFAULT 100
#define RATESYNC_INTERVAL_MS_MIN 10
#define RATESYNC_INTERVAL_MS_MAX 10000

/*
 * Starts the exchange for `k` if its store is shared (*ret NULL otherwise).
 * The first heartbeat is sent before this returns, so that the first
 * request already knows how many instances share its limits. Returns 0,
 * AK_ERR_NOMEM, or an error starting the thread.
 */
int ratesync_start(struct keys *k, unsigned interval_ms, struct ratesync **ret);

/* Stops the exchange and frees it; accepts NULL. */
void ratesync_stop(struct ratesync *rs);

#endif
