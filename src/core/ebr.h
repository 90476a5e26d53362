/*
 * ebr: epoch-based reclamation, so that readers never take a lock.
 *
 * Readers bracket each access with ebr_enter/ebr_exit: two stores to a slot
 * of their own thread and one fence, no shared writes. A writer (the caller
 * serializes writers) unlinks an object, then ebr_retire()s it; it is freed
 * by ebr_reclaim() once every reader that might still see it has left.
 * Threads register on their first ebr_enter, automatically.
 */
#ifndef APIKEYD_CORE_EBR_H
#define APIKEYD_CORE_EBR_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct ebr_slot;

struct ebr_garbage {
    void *ptr;
    void (*free_fn)(void *);
    uint64_t epoch;
};

struct ebr {
    uint64_t id;                      /* unique per instance, for the per-thread slot cache */
    _Atomic uint64_t epoch;           /* the global epoch, starts at 1 */
    _Atomic(struct ebr_slot *) slots; /* append-only list of reader slots */
    struct ebr_garbage *garbage;      /* writer only */
    size_t ngarbage, capgarbage;
};

/* Initializes `e`. Returns 0 or AK_ERR_NOMEM. */
int ebr_init(struct ebr *e);

/* Frees every retired object and every slot. No reader may be inside. */
void ebr_release(struct ebr *e);

/* Starts a read section on the calling thread. Sections do not nest. Returns 0 or AK_ERR_NOMEM (first use only). */
int ebr_enter(struct ebr *e);

/* Ends the read section. */
void ebr_exit(struct ebr *e);

/* Hands `ptr` to be freed with `free_fn` once no reader can see it. Writer only. Returns 0 or AK_ERR_NOMEM (then it frees nothing:
 * the caller leaks rather than risks). */
int ebr_retire(struct ebr *e, void *ptr, void (*free_fn)(void *));

/* Frees what has become safe to free. Writer only. Returns how many objects remain retired. */
size_t ebr_reclaim(struct ebr *e);

#endif
