/*
 * lifecycle: what happens to a key after it is created, besides a
 * customer's own changes: rotation with an overlap, leak reports, and the
 * background sweeps that deactivate idle keys and delete keys long expired.
 *
 * Expiry itself is not here: it is judged on every request by the catalog
 * (catalog_authenticate), so that it holds with no job running. What is
 * here changes rows, through the store's transactions, each recorded in the
 * audit log (automatic changes with actor "system").
 */
#ifndef APIKEYD_CORE_LIFECYCLE_H
#define APIKEYD_CORE_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/audit.h"
#include "core/key.h"
#include "core/keys.h"

#define LIFECYCLE_SWEEP_INTERVAL_S 30 /* a sweep runs this often, on one instance of those sharing a store */
#define LIFECYCLE_BATCH 1000          /* keys changed per transaction by a sweep or a leak report */
#define LIFECYCLE_ROUNDS 20           /* batches a sweep runs in one period at most (20,000 keys) */
#define LIFECYCLE_SOON_S (7 * 86400)  /* a verify answer warns of an expiry this close (X-Key-Expires-At) */

/*
 * Rotates key `id` of `account_id`: a new key with the old one's name,
 * type and expiry lifetime, shown once in `ret_key` (KEYFMT_MAX_LEN + 1
 * bytes at least); the old key expires `grace_s` seconds from now (or
 * sooner, if it did already) and both point at each other. A primary's
 * place moves to the new key in the same transaction. `who` is the
 * customer's key (the rules of keys_target apply) or NULL for an operator.
 * Works at the key cap. Errors: AK_ERR_NOT_FOUND, AK_ERR_FORBIDDEN,
 * AK_ERR_ROTATED, store errors (see keys_update).
 */
int lifecycle_rotate(struct keys *k, const struct audit_origin *origin, const struct principal *who, int64_t account_id, int64_t id,
                     int64_t grace_s, struct key_rec *ret_new, char *ret_key, size_t keysz, struct key_rec *ret_old);

/* One reported secret; `true_positive` is set by lifecycle_report_leaks. */
struct lifecycle_leak {
    const char *token; /* as reported (not NUL-terminated necessarily) */
    size_t len;
    const char *url, *source; /* where it was found; "" when not said */
    bool true_positive;       /* out: a key of this server (live, inactive or leaked before) */
};

/*
 * Handles a leak report: every reported key of this server is deactivated
 * at once, on every instance, marked leaked_at (a primary too: it stays the
 * account's primary, refused, until the account rotates it or an operator
 * issues a new primary) and recorded as key.leaked with the url and source.
 * A key reported again is not changed again. Unknown, malformed and deleted
 * keys change nothing. At most LIFECYCLE_BATCH * 4 items.
 */
int lifecycle_report_leaks(struct keys *k, const struct audit_origin *origin, struct lifecycle_leak *v, size_t n);

struct lifecycle_policy {
    unsigned idle_days;              /* deactivate keys unused this long; 0: never */
    unsigned expired_retention_days; /* delete keys expired this long */
};

/*
 * Runs the sweeps that are due, if this instance claims them: deactivates
 * idle keys (never a primary) and deletes keys expired for longer than the
 * retention (never a leaked key). Returns the first error (the next sweep
 * retries).
 */
int lifecycle_sweep(struct keys *k, const struct lifecycle_policy *p);

/* The origin of the server's own changes: actor "system", with `details` (JSON object text or NULL). */
void lifecycle_origin_system(struct audit_origin *ret, const char *details);

#endif
