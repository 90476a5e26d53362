/*
 * ratelimit: one key's rate limit as this instance counts it (issue 13).
 *
 * Windows are fixed and start at the epoch (limits.h, rate_window_of): the
 * model of the RateLimit header draft, and the one that is exact without a
 * timestamp per request. The hot path is one compare-and-swap on one word
 * holding the window and this instance's admissions in it.
 *
 * Alone, an instance admits up to the limit in each window: exact. With
 * others (a shared store), it admits up to its cap, which the exchange
 * (ratesync.c) sets from what every instance reported: its share of what
 * was left, so that what all admit cannot exceed it. For windows the
 * exchange has not spoken about yet, the default cap applies (the limit
 * alone, or a share of it, see rate_set_default).
 */
#ifndef APIKEYD_CORE_RATELIMIT_H
#define APIKEYD_CORE_RATELIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct rate_state {
    _Atomic uint64_t word; /* window << RATE_COUNT_BITS | admissions here in that window */
    /*
     * From the exchange, for two windows (the current and the next, slot
     * window & 1): window << RATE_COUNT_BITS | the most admitted here in it
     * (the slots leased to this instance), and the slots the others hold.
     */
    _Atomic uint64_t cap[2];
    _Atomic uint64_t others[2];
    _Atomic uint32_t share;  /* default cap in parts per million of the limit; 0: the whole limit */
    _Atomic uint32_t demand; /* requests (admitted or not) since the exchange last took them */
    _Atomic int32_t window;  /* the window length the counts are in; another one starts afresh */
    _Atomic uint32_t listed; /* registered for the exchange (catalog.c) */
    /* the exchange's own: window << RATE_COUNT_BITS | slots the store leased here in it, in windows of leased_len s */
    uint64_t leased[2];
    int32_t leased_len;
};

#define RATE_COUNT_BITS 30 /* 2^30 > RATE_LIMIT_MAX */

struct rate_verdict {
    bool admitted;
    int64_t left;     /* left in the window for the whole deployment, as this instance knows it (>= 0) */
    int64_t reset_in; /* seconds to the window's end */
};

/* A state with nothing counted (zeroed memory is one too). */
void rate_init(struct rate_state *st);

/*
 * Counts one request at `now` against `limit` per `window_s` seconds and
 * says whether it is admitted. A clock stepped back does not open a window
 * already counted: the request counts in the later one. A key whose window
 * length changed (a PATCH) starts counting afresh in windows of the new length.
 */
void rate_take(struct rate_state *st, int64_t limit, int32_t window_s, int64_t now, struct rate_verdict *ret);

/* What is left in the current window without taking anything (for answers that are not counted). */
void rate_peek(struct rate_state *st, int64_t limit, int32_t window_s, int64_t now, struct rate_verdict *ret);

/* This instance's admissions in window `w` (0 for any other window), for the exchange. */
uint32_t rate_count(struct rate_state *st, int64_t w);

/* The requests seen since the last call, for the exchange's demand weights. */
uint32_t rate_take_demand(struct rate_state *st);

/*
 * The exchange's word for window `w` (the current one or the next) of
 * `window_s` seconds: this instance may admit up to `cap`, and never more
 * than the limit (as it is at each request) less `others`, what the others
 * hold; an instance alone gets the largest cap.
 */
void rate_set_cap(struct rate_state *st, int32_t window_s, int64_t w, uint32_t cap, uint32_t others);

/* The cap for windows without a word from the exchange, as a share of the limit in parts per million (0: all). */
void rate_set_default(struct rate_state *st, uint32_t share_ppm);

#endif
