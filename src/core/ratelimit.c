/*
 * ratelimit: fixed-window counting per key; see ratelimit.h.
 */
#include "core/ratelimit.h"

#include "core/limits.h"

#define COUNT_MASK ((UINT64_C(1) << RATE_COUNT_BITS) - 1)
#define WIN(v) ((int64_t)((v) >> RATE_COUNT_BITS))
#define CNT(v) ((int64_t)((v)&COUNT_MASK))
#define PACK(w, n) (((uint64_t)(w) << RATE_COUNT_BITS) | (uint64_t)(n))

void rate_init(struct rate_state *st)
{
    atomic_init(&st->word, 0);
    for (int i = 0; i < 2; i++) {
        atomic_init(&st->cap[i], 0);
        atomic_init(&st->others[i], 0);
    }
    atomic_init(&st->share, 0);
    atomic_init(&st->demand, 0);
    atomic_init(&st->window, 0);
    atomic_init(&st->listed, 0);
    st->leased[0] = st->leased[1] = 0;
    st->leased_len = 0;
}

/* Window numbers of another length mean nothing here: a new length starts from nothing counted. */
static void same_length(struct rate_state *st, int32_t window_s)
{
    int32_t was = atomic_load_explicit(&st->window, memory_order_acquire);

    if (was != window_s && atomic_compare_exchange_strong(&st->window, &was, window_s)) {
        for (int i = 0; i < 2; i++) {
            atomic_store(&st->cap[i], 0);
            atomic_store(&st->others[i], 0);
        }
        atomic_store(&st->word, 0);
    }
}

/* The most this instance admits in window `w`, and the others' admissions in it as last heard. */
static int64_t cap_of(struct rate_state *st, int64_t limit, int64_t w, int64_t *ret_others)
{
    uint64_t c = atomic_load_explicit(&st->cap[w & 1], memory_order_acquire);
    uint32_t ppm;

    if (WIN(c) == w && c != 0) {
        uint64_t o = atomic_load_explicit(&st->others[w & 1], memory_order_relaxed);
        int64_t cap = CNT(c), room;
        *ret_others = WIN(o) == w ? CNT(o) : 0;
        /* never more than the others leave: an instance alone is told "all of it" and follows a changed limit */
        room = limit - *ret_others > 0 ? limit - *ret_others : 0;
        return cap < room ? cap : room;
    }
    *ret_others = 0;
    if ((ppm = atomic_load_explicit(&st->share, memory_order_relaxed)) == 0 || ppm >= 1000000)
        return limit;
    return limit * (int64_t)ppm / 1000000;
}

/* The window a request at `now` counts in: now's, or the later one already counted (clock stepped back). */
static int64_t window_for(uint64_t cur, int64_t now, int32_t window_s)
{
    int64_t w = rate_window_of(now, window_s);

    return cur != 0 && WIN(cur) > w ? WIN(cur) : w;
}

void rate_take(struct rate_state *st, int64_t limit, int32_t window_s, int64_t now, struct rate_verdict *ret)
{
    uint64_t cur;
    int64_t w, n, cap, others;

    same_length(st, window_s);
    cur = atomic_load_explicit(&st->word, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->demand, 1, memory_order_relaxed);
    for (;;) {
        w = window_for(cur, now, window_s);
        n = WIN(cur) == w ? CNT(cur) : 0;
        cap = cap_of(st, limit, w, &others);
        if (n >= cap) {
            ret->admitted = false;
            break;
        }
        if (atomic_compare_exchange_weak_explicit(&st->word, &cur, PACK(w, n + 1), memory_order_relaxed, memory_order_relaxed)) {
            ret->admitted = true;
            n++;
            break;
        }
    }
    ret->left = limit - n - others > 0 ? limit - n - others : 0;
    if (!ret->admitted && cap < limit && ret->left > 0)
        ret->left = 0; /* this instance's share is spent: to its client, nothing is left */
    ret->reset_in = (w + 1) * window_s - now;
}

void rate_peek(struct rate_state *st, int64_t limit, int32_t window_s, int64_t now, struct rate_verdict *ret)
{
    uint64_t cur;
    int64_t w, n, others, cap;

    same_length(st, window_s);
    cur = atomic_load_explicit(&st->word, memory_order_relaxed);
    w = window_for(cur, now, window_s);
    n = WIN(cur) == w ? CNT(cur) : 0;
    cap = cap_of(st, limit, w, &others);

    ret->admitted = n < cap;
    ret->left = limit - n - others > 0 ? limit - n - others : 0;
    ret->reset_in = (w + 1) * window_s - now;
}

uint32_t rate_count(struct rate_state *st, int64_t w)
{
    uint64_t cur = atomic_load_explicit(&st->word, memory_order_relaxed);

    return WIN(cur) == w ? (uint32_t)CNT(cur) : 0;
}

uint32_t rate_take_demand(struct rate_state *st)
{
    return atomic_exchange_explicit(&st->demand, 0, memory_order_relaxed);
}

void rate_set_cap(struct rate_state *st, int32_t window_s, int64_t w, uint32_t cap, uint32_t others)
{
    same_length(st, window_s);
    if (cap > COUNT_MASK)
        cap = (uint32_t)COUNT_MASK;
    if (others > COUNT_MASK)
        others = (uint32_t)COUNT_MASK;
    atomic_store_explicit(&st->others[w & 1], PACK(w, others), memory_order_relaxed);
    atomic_store_explicit(&st->cap[w & 1], PACK(w, cap), memory_order_release);
}

void rate_set_default(struct rate_state *st, uint32_t share_ppm)
{
    atomic_store_explicit(&st->share, share_ppm, memory_order_relaxed);
}
