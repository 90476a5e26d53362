/*
 * ebr: see ebr.h. The one subtle point is the pairing of fences: a reader
 * stores its epoch then loads shared pointers; the writer stores (unlinks) a
 * pointer then loads reader epochs. Sequentially consistent fences on both
 * sides guarantee that at least one of them sees the other's store.
 */
#include "core/ebr.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/error.h"

struct ebr_slot {
    _Alignas(64) _Atomic uint64_t epoch; /* 0: not reading */
    const void *owner;                   /* the owning thread's token (never reused while the thread lives) */
    struct ebr_slot *next;
};

#define SLOT_CACHE 4

/* Per thread: the slots this thread holds in the last few ebr instances it used. */
static _Thread_local struct {
    uint64_t id;
    struct ebr_slot *slot;
} cache[SLOT_CACHE];
static _Thread_local unsigned cache_next;
static _Thread_local char thread_token; /* its address identifies this thread */
static _Atomic uint64_t next_id = 1;

int ebr_init(struct ebr *e)
{
    e->id = atomic_fetch_add(&next_id, 1);
    atomic_init(&e->epoch, 1);
    atomic_init(&e->slots, NULL);
    e->garbage = NULL;
    e->ngarbage = e->capgarbage = 0;
    return 0;
}

void ebr_release(struct ebr *e)
{
    struct ebr_slot *s = atomic_load(&e->slots), *next;

    for (size_t i = 0; i < e->ngarbage; i++)
        e->garbage[i].free_fn(e->garbage[i].ptr);
    free(e->garbage);
    e->garbage = NULL;
    e->ngarbage = e->capgarbage = 0;
    for (; s != NULL; s = next) {
        next = s->next;
        free(s);
    }
    atomic_store(&e->slots, NULL);
    /* Forget this instance in the caller's cache; other threads' caches are keyed by the unique id. */
    for (unsigned i = 0; i < SLOT_CACHE; i++)
        if (cache[i].id == e->id)
            cache[i].id = 0;
}

/* This thread's slot in `e`: from the cache, else from e's list, else a new one. NULL only when out of memory. */
static struct ebr_slot *my_slot(struct ebr *e, bool create)
{
    struct ebr_slot *s;

    for (unsigned i = 0; i < SLOT_CACHE; i++)
        if (cache[i].id == e->id)
            return cache[i].slot;
    /* Evicted from the cache, or first use: threads keep one slot per instance for life. */
    for (s = atomic_load(&e->slots); s != NULL; s = s->next)
        if (s->owner == &thread_token)
            break;
    if (s == NULL) {
        if (!create || (s = aligned_alloc(64, sizeof(*s))) == NULL)
            return NULL;
        atomic_init(&s->epoch, 0);
        s->owner = &thread_token;
        s->next = atomic_load(&e->slots);
        while (!atomic_compare_exchange_weak(&e->slots, &s->next, s))
            ;
    }
    cache[cache_next].id = e->id;
    cache[cache_next].slot = s;
    cache_next = (cache_next + 1) % SLOT_CACHE;
    return s;
}

int ebr_enter(struct ebr *e)
{
    struct ebr_slot *s = my_slot(e, true);

    if (s == NULL)
        return AK_ERR_NOMEM;
    atomic_store_explicit(&s->epoch, atomic_load_explicit(&e->epoch, memory_order_relaxed), memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    return 0;
}

void ebr_exit(struct ebr *e)
{
    struct ebr_slot *s = my_slot(e, false);

    if (s != NULL)
        atomic_store_explicit(&s->epoch, 0, memory_order_release);
}

int ebr_retire(struct ebr *e, void *ptr, void (*free_fn)(void *))
{
    if (ptr == NULL)
        return 0;
    if (e->ngarbage == e->capgarbage) {
        size_t cap = e->capgarbage != 0 ? e->capgarbage * 2 : 64;
        struct ebr_garbage *g = realloc(e->garbage, cap * sizeof(*g));
        if (g == NULL)
            return AK_ERR_NOMEM;
        e->garbage = g;
        e->capgarbage = cap;
    }
    e->garbage[e->ngarbage].ptr = ptr;
    e->garbage[e->ngarbage].free_fn = free_fn;
    e->garbage[e->ngarbage].epoch = atomic_fetch_add(&e->epoch, 1);
    e->ngarbage++;
    return 0;
}

size_t ebr_reclaim(struct ebr *e)
{
    uint64_t oldest = UINT64_MAX;
    size_t kept = 0;

    if (e->ngarbage == 0)
        return 0;
    atomic_thread_fence(memory_order_seq_cst);
    for (struct ebr_slot *s = atomic_load(&e->slots); s != NULL; s = s->next) {
        uint64_t v = atomic_load_explicit(&s->epoch, memory_order_acquire);
        if (v != 0 && v < oldest)
            oldest = v;
    }
    /* A reader in epoch v may hold anything retired at epoch >= v. */
    for (size_t i = 0; i < e->ngarbage; i++) {
        if (e->garbage[i].epoch < oldest)
            e->garbage[i].free_fn(e->garbage[i].ptr);
        else
            e->garbage[kept++] = e->garbage[i];
    }
    e->ngarbage = kept;
    return kept;
}
