/*
 * notify: the payloads apikeyd instances exchange on PostgreSQL's
 * LISTEN/NOTIFY channel.
 *
 * Any role that can connect to the database may NOTIFY on any channel, with
 * no table rights at all, so a payload is input from strangers. It is parsed
 * strictly and bounded here, and what comes out is only ever a set of ids
 * whose rows the watcher re-reads from the tables: never a state (active,
 * last_used, existence) to apply. A payload that is not exactly one of the
 * forms below is refused whole.
 *
 *   k ID[ ID]...          keys changed by one transaction
 *   a ID[ ID]...          accounts suspended, reactivated or deleted
 *   t ID[ ID]...          admin tokens created or revoked
 *   u ID[:N][,ID[:N]]...  keys whose last_used was flushed (":N", the value
 *                         sent by older versions, is accepted and ignored)
 *
 * ID is a canonical decimal in 1..INT64_MAX (no sign, no leading zero).
 */
#ifndef APIKEYD_STORE_NOTIFY_H
#define APIKEYD_STORE_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#define NOTIFY_PAYLOAD_MAX 8000 /* PostgreSQL refuses longer payloads; so do we */
#define NOTIFY_IDS_MAX 1024     /* ids in one payload, after removing repeats */

enum notify_kind {
    NOTIFY_KEYS = 1,     /* "k": re-read these rows */
    NOTIFY_USES = 2,     /* "u": re-read these rows' last_used */
    NOTIFY_ACCOUNTS = 3, /* "a": re-read the suspended accounts */
    NOTIFY_TOKENS = 4,   /* "t": re-read the admin tokens */
};

struct notify_msg {
    enum notify_kind kind;
    size_t n; /* 1..NOTIFY_IDS_MAX */
    /* distinct, ascending; room for every id a payload can hold ("1,1,..."), repeats folded after */
    int64_t ids[NOTIFY_PAYLOAD_MAX / 2];
};

/*
 * Parses `len` bytes of `payload` (need not be NUL-terminated). Returns 0
 * and fills *ret (distinct ids, ascending), or AK_ERR_ARG for anything else:
 * an unknown kind, a malformed or out-of-range id, more than NOTIFY_IDS_MAX
 * distinct ids, or more than NOTIFY_PAYLOAD_MAX bytes. *ret is unspecified
 * on error.
 */
int notify_parse(const char *payload, size_t len, struct notify_msg *ret);

/*
 * Sorts `ids` and removes repeats in place; returns the new count. For
 * batches that merge several payloads.
 */
size_t notify_ids_unique(int64_t *ids, size_t n);

#endif
