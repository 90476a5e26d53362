/*
 * ratesync: leases of rate-limit slots from a shared store; see ratesync.h.
 */
#include "core/ratesync.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/catalog.h"
#include "core/error.h"
#include "core/keys_impl.h"
#include "core/limits.h"
#include "core/ratelimit.h"
#include "core/timefmt.h"
#include "store/store.h"

#define BEAT_MS 1000   /* heartbeats; the store counts an instance alive for 3 s after its last */
#define AWAY_MS 1000   /* a store silent this long: fall back to limit / instances */
#define LEAD_S 1       /* lease the next window this close to the current one's end */
#define FLOOR_PARTS 10 /* a busy key holds at least limit / (instances * FLOOR_PARTS) ahead */
#define COUNT_MAX ((int64_t)((UINT64_C(1) << RATE_COUNT_BITS) - 1))
#define WIN(v) ((int64_t)((v) >> RATE_COUNT_BITS))
#define CNT(v) ((int64_t)((v) & (uint64_t)COUNT_MAX))
#define PACK(w, n) (((uint64_t)(w) << RATE_COUNT_BITS) | (uint64_t)(n))

/* What an ask is about, for applying its answer (rate_ask.cookie). */
struct pending {
    struct rate_state *st;
    int64_t limit;
    int32_t window;
    int64_t w;    /* the window number */
    int64_t mine; /* slots leased here in it before the ask */
    bool current; /* the window now (else the next) */
};

struct ratesync {
    struct keys *keys;
    unsigned interval_ms;
    int64_t instance;
    pthread_t tid;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    unsigned live;        /* instances alive, as the store last said (>= 1) */
    int64_t next_beat_ms; /* monotonic */
    int64_t heard_ms;     /* monotonic time the store last answered */
    int64_t now;          /* this exchange's clock (Unix seconds) */
    /* this exchange's asks; an ask's cookie is its index in pend (the store sorts the asks) */
    struct rate_ask *asks;
    struct pending *pend;
    size_t n, cap;
    bool full; /* out of memory for more asks in this exchange: the rest wait for the next */
};

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* The slots leased here in window `w` (0 when the exchange holds none in it). */
static int64_t leased_in(const struct rate_state *st, int64_t w)
{
    uint64_t v = st->leased[w & 1];

    return v != 0 && WIN(v) == w ? CNT(v) : 0;
}

static void beat(struct ratesync *rs)
{
    struct store *s = rs->keys->store;
    unsigned live = 0;

    if (s->ops->rate_beat(s, rs->instance, timefmt_now(), &live) != 0)
        return; /* the instances last known stay the measure (ratesync.h) */
    rs->heard_ms = timefmt_mono_ms();
    if (live == 0)
        live = 1;
    if (live != rs->live) {
        rs->live = live;
        catalog_rate_share(rs->keys->cat, live > 1 ? 1000000u / live : 0);
    }
}

static bool add_ask(struct ratesync *rs, const struct rate_key *k, int64_t w, int64_t mine, int64_t owed, int64_t want,
                    bool current)
{
    if (rs->n == rs->cap) {
        size_t cap = rs->cap != 0 ? rs->cap * 2 : 64;
        struct rate_ask *asks = realloc(rs->asks, cap * sizeof(*asks));
        struct pending *pend;
        if (asks != NULL)
            rs->asks = asks;
        if (asks == NULL || (pend = realloc(rs->pend, cap * sizeof(*pend))) == NULL) {
            rs->full = true;
            return false;
        }
        rs->pend = pend;
        rs->cap = cap;
    }
    rs->pend[rs->n] =
        (struct pending){.st = k->state, .limit = k->limit, .window = k->window, .w = w, .mine = mine, .current = current};
    rs->asks[rs->n] = (struct rate_ask){.key_id = k->key_id,
                                        .window_s = k->window,
                                        .window_start = w * k->window,
                                        .limit = k->limit,
                                        .owed = owed,
                                        .want = want,
                                        .cookie = (void *)(uintptr_t)rs->n}; /* pend may move */
    rs->n++;
    return true;
}

/*
 * One registered key: what to ask of the store about it. Returns false to
 * let the catalog forget an idle key (its next request registers it again).
 */
static bool collect(void *arg, const struct rate_key *k)
{
    struct ratesync *rs = arg;
    struct rate_state *st = k->state;
    int64_t limit = k->limit, w = rate_window_of(rs->now, k->window), d, n, mine, owed, unused, target, want;
    bool alone = rs->live <= 1, asked = false;

    if (rs->full)
        return true; /* kept, and its demand too, for the next exchange */
    d = rate_take_demand(st);
    n = rate_count(st, w);
    if (st->leased_len != k->window) { /* a new window length: window numbers of the old one mean nothing */
        st->leased[0] = st->leased[1] = 0;
        st->leased_len = k->window;
    }
    mine = leased_in(st, w);
    owed = max64(0, n - mine);
    unused = max64(0, mine - n);
    target = d > 0 ? max64(2 * d, max64(1, limit / ((int64_t)rs->live * FLOOR_PARTS))) : 0;
    want = alone ? 0 : min64(limit, max64(0, target - unused));
    /* alone, every busy exchange reports, so that the cap stays the limit less what others hold */
    if (owed > 0 || want > 0 || (alone && d > 0))
        asked = add_ask(rs, k, w, mine, owed, want, true);
    if (!alone && d > 0 && (w + 1) * k->window - rs->now <= LEAD_S) {
        int64_t next = leased_in(st, w + 1);
        if (target > next)
            asked |= add_ask(rs, k, w + 1, next, 0, min64(limit, target - next), false);
    }
    if (rs->full && !asked)
        atomic_fetch_add_explicit(&st->demand, (uint32_t)d, memory_order_relaxed); /* not lost: asked next time */
    return asked || d > 0 || n > 0;
}

/* Applies the store's answer to one ask (`ok`), or its silence. */
static void apply(struct ratesync *rs, const struct rate_ask *a, bool ok)
{
    const struct pending *p = &rs->pend[(uintptr_t)a->cookie];
    struct rate_state *st = p->st;
    int64_t leased, others, cap;

    if (ok) {
        leased = min64(COUNT_MAX, p->mine + a->owed + a->granted);
        st->leased[p->w & 1] = PACK(p->w, leased);
        others = max64(0, a->total - leased);
        /* alone: all the others leave (ratelimit.c caps it at limit - others, the limit as it is then) */
        cap = rs->live <= 1 ? COUNT_MAX : min64(leased, p->limit);
        rate_set_cap(st, p->window, p->w, (uint32_t)max64(0, cap), (uint32_t)min64(others, COUNT_MAX));
    } else if (p->current && timefmt_mono_ms() - rs->heard_ms >= AWAY_MS) {
        /* the store is away: limit / the instances last known, reported when it is back */
        cap = max64(p->mine, p->limit / rs->live);
        rate_set_cap(st, p->window, p->w, (uint32_t)min64(cap, p->limit), 0);
    }
}

static void exchange(struct ratesync *rs)
{
    struct store *s = rs->keys->store;
    int r;

    if (timefmt_mono_ms() >= rs->next_beat_ms) {
        beat(rs);
        rs->next_beat_ms = timefmt_mono_ms() + BEAT_MS;
    }
    rs->now = timefmt_now();
    rs->n = 0;
    rs->full = false;
    catalog_rate_each(rs->keys->cat, collect, rs);
    if (rs->n == 0)
        return;
    if ((r = s->ops->rate_lease(s, rs->asks, rs->n)) == 0)
        rs->heard_ms = timefmt_mono_ms();
    for (size_t i = 0; i < rs->n; i++)
        apply(rs, &rs->asks[i], r == 0);
}

static void *ratesync_main(void *arg)
{
    struct ratesync *rs = arg;
    struct timespec until;

    pthread_mutex_lock(&rs->lock);
    while (!rs->stop) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)(rs->interval_ms % 1000) * 1000000L;
        until.tv_sec += rs->interval_ms / 1000 + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&rs->cond, &rs->lock, &until);
        if (rs->stop)
            break;
        pthread_mutex_unlock(&rs->lock);
        exchange(rs);
        pthread_mutex_lock(&rs->lock);
    }
    pthread_mutex_unlock(&rs->lock);
    return NULL;
}

int ratesync_start(struct keys *k, unsigned interval_ms, struct ratesync **ret)
{
    struct ratesync *rs;
    uint64_t id = 0;

    *ret = NULL;
    if (k->store->ops->rate_lease == NULL || k->store->ops->rate_beat == NULL)
        return 0; /* one instance serves this store: its limits are exact alone */
    if ((rs = calloc(1, sizeof(*rs))) == NULL)
        return AK_ERR_NOMEM;
    if (RAND_bytes((unsigned char *)&id, sizeof(id)) != 1) {
        free(rs);
        return AK_ERR_IO;
    }
    rs->keys = k;
    rs->interval_ms = interval_ms;
    rs->instance = (int64_t)(id >> 1); /* positive */
    rs->live = 1;
    catalog_rate_share(k->cat, 0);
    beat(rs);
    rs->next_beat_ms = timefmt_mono_ms() + BEAT_MS;
    pthread_mutex_init(&rs->lock, NULL);
    pthread_cond_init(&rs->cond, NULL);
    if (pthread_create(&rs->tid, NULL, ratesync_main, rs) != 0) {
        pthread_cond_destroy(&rs->cond);
        pthread_mutex_destroy(&rs->lock);
        free(rs);
        return AK_ERR_NOMEM;
    }
    *ret = rs;
    return 0;
}

void ratesync_stop(struct ratesync *rs)
{
    if (rs == NULL)
        return;
    pthread_mutex_lock(&rs->lock);
    rs->stop = true;
    pthread_cond_signal(&rs->cond);
    pthread_mutex_unlock(&rs->lock);
    pthread_join(rs->tid, NULL);
    if (rs->keys->store->ops->rate_leave != NULL)
        rs->keys->store->ops->rate_leave(rs->keys->store, rs->instance); /* failing, it is forgotten in 3 s */
    pthread_cond_destroy(&rs->cond);
    pthread_mutex_destroy(&rs->lock);
    free(rs->asks);
    free(rs->pend);
    free(rs);
}
