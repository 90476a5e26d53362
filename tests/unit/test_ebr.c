/*
 * Unit tests for core/ebr: retire + reclaim frees an object only once no
 * reader that may hold it is inside (a reader thread held inside by
 * barriers), the epoch rule (what was retired before a reader entered may go
 * while it reads), ebr_release, several instances used from one thread (more
 * than the per-thread slot cache holds), a read section that outlives the
 * eviction of its cache entry, and a stress run where readers check a canary
 * on every object they hold while a writer replaces, retires and reclaims
 * (under ASan a use-after-free aborts).
 *
 * The .c is included to count an instance's reader slots. Reader threads
 * never call cmocka: they count failures, which the main thread asserts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/ebr.c"
#include "iterations.h"

/* ---- objects whose frees are recorded (never heap: free_fn only marks them) ---- */

struct tracked {
    int id;
    int freed; /* how many times free_fn ran on it */
};

static size_t nfreed; /* frees recorded since the last reset; main thread only */

static void track_free(void *p)
{
    struct tracked *t = p;

    t->freed++;
    nfreed++;
}

static void tracked_init(struct tracked *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        t[i].id = (int)i;
        t[i].freed = 0;
    }
    nfreed = 0;
}

static size_t count_slots(struct ebr *e)
{
    size_t n = 0;

    for (struct ebr_slot *s = atomic_load(&e->slots); s != NULL; s = s->next)
        n++;
    return n;
}

/* ---- a reader thread held inside a read section ---- */

struct holder {
    struct ebr *e;
    pthread_t thread;
    pthread_barrier_t inside, leave;
    int r;
};

static void *holder_main(void *arg)
{
    struct holder *h = arg;

    h->r = ebr_enter(h->e);
    pthread_barrier_wait(&h->inside);
    pthread_barrier_wait(&h->leave);
    if (h->r == 0)
        ebr_exit(h->e);
    return NULL;
}

/*
 * Returns once a new thread is inside a read section of `e`. The holder is
 * on the heap: when a test fails, its thread stays blocked on a barrier that
 * must remain valid.
 */
static struct holder *holder_start(struct ebr *e)
{
    struct holder *h = calloc(1, sizeof(*h));

    assert_non_null(h);
    h->e = e;
    h->r = -1;
    assert_int_equal(pthread_barrier_init(&h->inside, NULL, 2), 0);
    assert_int_equal(pthread_barrier_init(&h->leave, NULL, 2), 0);
    assert_int_equal(pthread_create(&h->thread, NULL, holder_main, h), 0);
    pthread_barrier_wait(&h->inside);
    assert_int_equal(h->r, 0);
    return h;
}

/* Returns once the thread has left its read section and ended. */
static void holder_stop(struct holder *h)
{
    pthread_barrier_wait(&h->leave);
    assert_int_equal(pthread_join(h->thread, NULL), 0);
    pthread_barrier_destroy(&h->inside);
    pthread_barrier_destroy(&h->leave);
    free(h);
}

/* ---- single-threaded basics ---- */

static void test_reclaim_without_readers(void **state)
{
    struct ebr e;
    struct tracked t[3];

    (void)state;
    tracked_init(t, 3);
    assert_int_equal(ebr_init(&e), 0);
    assert_int_equal(ebr_reclaim(&e), 0);
    assert_int_equal(ebr_retire(&e, NULL, track_free), 0); /* nothing to retire */
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(ebr_retire(&e, &t[i], track_free), 0);
    assert_int_equal(nfreed, 0); /* retire never frees by itself */
    assert_int_equal(ebr_reclaim(&e), 0);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(t[i].freed, 1);
    assert_int_equal(nfreed, 3);
    assert_int_equal(ebr_reclaim(&e), 0);
    assert_int_equal(nfreed, 3);

    /* A reader that entered and left blocks nothing. */
    assert_int_equal(ebr_enter(&e), 0);
    ebr_exit(&e);
    tracked_init(t, 3);
    assert_int_equal(ebr_retire(&e, &t[0], track_free), 0);
    assert_int_equal(ebr_reclaim(&e), 0);
    assert_int_equal(t[0].freed, 1);
    ebr_release(&e);
    assert_int_equal(nfreed, 1);
}

/* A reader inside blocks what was retired after it entered, until it leaves. */
static void test_reader_blocks_later_retires(void **state)
{
    struct ebr e;
    struct holder *h;
    struct tracked t[4];

    (void)state;
    tracked_init(t, 4);
    assert_int_equal(ebr_init(&e), 0);
    h = holder_start(&e);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(ebr_retire(&e, &t[i], track_free), 0);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(ebr_reclaim(&e), 4);
        assert_int_equal(nfreed, 0);
    }
    /* A newer section (here the writer's own) does not lift the older one's hold. */
    assert_int_equal(ebr_enter(&e), 0);
    assert_int_equal(ebr_reclaim(&e), 4);
    ebr_exit(&e);
    assert_int_equal(nfreed, 0);
    holder_stop(h);
    assert_int_equal(ebr_reclaim(&e), 0);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(t[i].freed, 1);
    assert_int_equal(nfreed, 4);
    ebr_release(&e);
    assert_int_equal(nfreed, 4);
}

/*
 * The epoch rule: an object retired before a reader entered cannot be in its
 * hands, so a reader that stays inside must not hold it back (or a steady
 * stream of readers would stop reclamation altogether).
 */
static void test_retired_before_enter_is_freed(void **state)
{
    struct ebr e;
    struct holder *h;
    struct tracked t[3];

    (void)state;
    tracked_init(t, 3);
    assert_int_equal(ebr_init(&e), 0);
    assert_int_equal(ebr_retire(&e, &t[0], track_free), 0);
    assert_int_equal(ebr_retire(&e, &t[1], track_free), 0);
    h = holder_start(&e);
    assert_int_equal(ebr_retire(&e, &t[2], track_free), 0);
    assert_int_equal(ebr_reclaim(&e), 1);
    assert_int_equal(t[0].freed, 1);
    assert_int_equal(t[1].freed, 1);
    assert_int_equal(t[2].freed, 0);
    holder_stop(h);
    assert_int_equal(ebr_reclaim(&e), 0);
    assert_int_equal(t[2].freed, 1);
    ebr_release(&e);
    assert_int_equal(nfreed, 3);
}

/* Two readers entered at different epochs: the oldest one sets the limit. */
static void test_oldest_reader_sets_the_limit(void **state)
{
    struct ebr e;
    struct holder *h1, *h2;
    struct tracked t[2];

    (void)state;
    tracked_init(t, 2);
    assert_int_equal(ebr_init(&e), 0);
    h1 = holder_start(&e);
    assert_int_equal(ebr_retire(&e, &t[0], track_free), 0);
    h2 = holder_start(&e);
    assert_int_equal(ebr_retire(&e, &t[1], track_free), 0);
    assert_int_equal(ebr_reclaim(&e), 2);
    assert_int_equal(nfreed, 0);
    holder_stop(h1);
    /* t[0] went before h2 entered; t[1] after. */
    assert_int_equal(ebr_reclaim(&e), 1);
    assert_int_equal(t[0].freed, 1);
    assert_int_equal(t[1].freed, 0);
    holder_stop(h2);
    assert_int_equal(ebr_reclaim(&e), 0);
    assert_int_equal(t[1].freed, 1);
    ebr_release(&e);
    assert_int_equal(nfreed, 2);
}

/* ebr_release frees what is still retired, exactly once, and more than the garbage list's first allocation holds. */
static void test_release_frees_everything(void **state)
{
    enum { N = 200 };
    struct ebr e;
    struct holder *h;
    struct tracked *t = calloc(N, sizeof(*t));

    (void)state;
    assert_non_null(t);
    tracked_init(t, N);
    assert_int_equal(ebr_init(&e), 0);
    h = holder_start(&e);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(ebr_retire(&e, &t[i], track_free), 0);
    assert_int_equal(ebr_reclaim(&e), N);
    holder_stop(h);
    assert_int_equal(nfreed, 0);
    ebr_release(&e);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(t[i].freed, 1);
    assert_int_equal(nfreed, N);

    /* The same struct starts over after ebr_init. */
    tracked_init(t, N);
    assert_int_equal(ebr_init(&e), 0);
    assert_int_equal(ebr_enter(&e), 0);
    ebr_exit(&e);
    assert_int_equal(ebr_retire(&e, &t[0], track_free), 0);
    assert_int_equal(ebr_reclaim(&e), 0);
    assert_int_equal(t[0].freed, 1);
    ebr_release(&e);
    assert_int_equal(nfreed, 1);
    free(t);
}

/* ---- several instances on one thread ---- */

#define NINST 6 /* more than SLOT_CACHE */
#define ROUNDS 50

/*
 * One thread alternates between more instances than its slot cache holds;
 * another thread holds one of them. Every instance must still see the main
 * thread's sections (a section blocks what is retired inside it) and their
 * ends (then it is freed), and the other thread's section.
 */
static void test_many_instances_one_thread(void **state)
{
    enum { HELD = 2 };
    struct ebr e[NINST];
    struct holder *h;
    struct tracked *t = calloc(ROUNDS * NINST * 2, sizeof(*t));
    size_t k = 0;

    (void)state;
    assert_non_null(t);
    tracked_init(t, ROUNDS * NINST * 2);
    for (size_t i = 0; i < NINST; i++)
        assert_int_equal(ebr_init(&e[i]), 0);
    h = holder_start(&e[HELD]);
    for (size_t round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < NINST; i++) {
            struct tracked *a = &t[k++], *b = &t[k++];
            size_t before = i == HELD ? 2 * round : 0;

            /* Retired inside the main thread's own section: held back until it ends. */
            assert_int_equal(ebr_enter(&e[i]), 0);
            assert_int_equal(ebr_retire(&e[i], a, track_free), 0);
            assert_int_equal(ebr_reclaim(&e[i]), before + 1);
            assert_int_equal(a->freed, 0);
            ebr_exit(&e[i]);
            assert_int_equal(ebr_retire(&e[i], b, track_free), 0);
            if (i == HELD) {
                /* The other thread is still inside: nothing of this instance goes. */
                assert_int_equal(ebr_reclaim(&e[i]), before + 2);
                assert_int_equal(a->freed + b->freed, 0);
            } else {
                assert_int_equal(ebr_reclaim(&e[i]), 0);
                if (a->freed != 1 || b->freed != 1)
                    fail_msg("instance %zu round %zu: retired objects not freed after the section ended", i, round);
            }
        }
    }
    holder_stop(h);
    assert_int_equal(ebr_reclaim(&e[HELD]), 0);
    for (size_t i = 0; i < k; i++)
        assert_int_equal(t[i].freed, 1);
    for (size_t i = 0; i < NINST; i++)
        ebr_release(&e[i]);
    assert_int_equal(nfreed, k);
    free(t);
}

/*
 * A thread registers once per instance ("on its first ebr_enter"): going
 * round more instances than the slot cache holds must not add a slot (and a
 * malloc) on every ebr_enter, or the list that every ebr_reclaim walks grows
 * without bound.
 */
static void test_many_instances_slots_bounded(void **state)
{
    struct ebr e[NINST];

    (void)state;
    for (size_t i = 0; i < NINST; i++)
        assert_int_equal(ebr_init(&e[i]), 0);
    for (size_t round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < NINST; i++) {
            assert_int_equal(ebr_enter(&e[i]), 0);
            ebr_exit(&e[i]);
        }
    }
    for (size_t i = 0; i < NINST; i++) {
        size_t n = count_slots(&e[i]);
        if (n != 1)
            fail_msg("instance %zu: one thread entered it %d times and holds %zu reader slots (want 1)", i, ROUNDS, n);
    }
    for (size_t i = 0; i < NINST; i++)
        ebr_release(&e[i]);
}

struct evict_ctx {
    struct ebr *held;
    struct ebr *others;
    size_t nothers;
    pthread_barrier_t evicted, leave, left;
    int r;
};

static void *evict_main(void *arg)
{
    struct evict_ctx *c = arg;
    int r;

    if ((r = ebr_enter(c->held)) == 0) {
        /* While inside `held`, use more other instances than the cache holds (each section closed before the next). */
        for (size_t i = 0; i < c->nothers && r == 0; i++)
            if ((r = ebr_enter(&c->others[i])) == 0)
                ebr_exit(&c->others[i]);
    }
    c->r = r;
    pthread_barrier_wait(&c->evicted);
    pthread_barrier_wait(&c->leave);
    ebr_exit(c->held);
    pthread_barrier_wait(&c->left);
    return NULL;
}

/*
 * Sections of different instances are independent: a thread inside instance
 * A (say, in a catalog_list_views callback) may use other instances. When
 * that pushes A out of its slot cache, A's section must still be honoured
 * while it lasts and ended by ebr_exit, or A never reclaims again.
 */
static void test_section_outlives_cache_eviction(void **state)
{
    struct ebr held, others[SLOT_CACHE];
    struct evict_ctx *c = calloc(1, sizeof(*c)); /* on the heap for the reason given at holder_start */
    struct tracked t[2];
    pthread_t th;

    (void)state;
    assert_non_null(c);
    *c = (struct evict_ctx){.held = &held, .others = others, .nothers = SLOT_CACHE, .r = -1};
    tracked_init(t, 2);
    assert_int_equal(ebr_init(&held), 0);
    for (size_t i = 0; i < SLOT_CACHE; i++)
        assert_int_equal(ebr_init(&others[i]), 0);
    assert_int_equal(pthread_barrier_init(&c->evicted, NULL, 2), 0);
    assert_int_equal(pthread_barrier_init(&c->leave, NULL, 2), 0);
    assert_int_equal(pthread_barrier_init(&c->left, NULL, 2), 0);
    assert_int_equal(pthread_create(&th, NULL, evict_main, c), 0);
    pthread_barrier_wait(&c->evicted);
    assert_int_equal(c->r, 0);

    /* Still inside `held`: what is retired now must wait. */
    assert_int_equal(ebr_retire(&held, &t[0], track_free), 0);
    assert_int_equal(ebr_reclaim(&held), 1);
    assert_int_equal(t[0].freed, 0);

    pthread_barrier_wait(&c->leave);
    pthread_barrier_wait(&c->left); /* the reader has called ebr_exit(&held) and is alive */
    assert_int_equal(ebr_retire(&held, &t[1], track_free), 0);
    if (ebr_reclaim(&held) != 0 || t[0].freed != 1 || t[1].freed != 1)
        fail_msg("after the reader's ebr_exit, %d of 2 retired objects were freed: its section in an instance evicted "
                 "from its slot cache was never ended",
                 t[0].freed + t[1].freed);
    assert_int_equal(pthread_join(th, NULL), 0);
    pthread_barrier_destroy(&c->evicted);
    pthread_barrier_destroy(&c->leave);
    pthread_barrier_destroy(&c->left);
    free(c);
    ebr_release(&held);
    for (size_t i = 0; i < SLOT_CACHE; i++)
        ebr_release(&others[i]);
    assert_int_equal(nfreed, 2);
}

/* ---- stress: readers hold objects while a writer replaces and reclaims them ---- */

#define STRESS_SLOTS 8
#define STRESS_READERS 4
#define STRESS_ITER test_iterations(100000, 5000)
#define STRESS_ITER_MAX test_iterations(2000000, 100000)
#define STRESS_READS test_iterations(200000, 10000)
#define CANARY_ALIVE 0x600DF00DCAFEBABEULL
#define CANARY_DEAD 0xDEADDEADDEADDEADULL

struct obj {
    uint64_t pad[4];         /* the allocator may write here once freed */
    _Atomic uint64_t canary; /* CANARY_ALIVE until free_fn runs */
    uint64_t serial, check;  /* check == ~serial */
};

struct stress {
    struct ebr e;
    _Atomic(struct obj *) shared[STRESS_SLOTS];
    atomic_bool stop;
    atomic_uint started;
    atomic_ulong reads, bad, frees, enter_failures, threads;
};

static struct stress *stress_ctx; /* for obj_free, which takes no argument */

static void obj_free(void *p)
{
    struct obj *o = p;

    atomic_store(&o->canary, CANARY_DEAD);
    atomic_fetch_add(&stress_ctx->frees, 1);
    free(o);
}

static struct obj *obj_new(uint64_t serial)
{
    struct obj *o = malloc(sizeof(*o));

    if (o == NULL)
        return NULL;
    memset(o->pad, 0, sizeof(o->pad));
    atomic_init(&o->canary, CANARY_ALIVE);
    o->serial = serial;
    o->check = ~serial;
    return o;
}

static bool obj_ok(struct obj *o)
{
    return o != NULL && atomic_load_explicit(&o->canary, memory_order_relaxed) == CANARY_ALIVE && o->check == ~o->serial;
}

/* One read section: picks objects, checks them, sometimes holds them across a yield, checks again. */
static void stress_read(struct stress *s, uint64_t *rng)
{
    struct obj *held[3];

    if (ebr_enter(&s->e) != 0) {
        atomic_fetch_add(&s->enter_failures, 1);
        return;
    }
    for (size_t i = 0; i < 3; i++) {
        *rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
        held[i] = atomic_load_explicit(&s->shared[(*rng >> 33) % STRESS_SLOTS], memory_order_acquire);
        if (!obj_ok(held[i]))
            atomic_fetch_add(&s->bad, 1);
    }
    if ((*rng >> 40) % 8 == 0)
        sched_yield();
    for (size_t i = 0; i < 3; i++)
        if (!obj_ok(held[i]))
            atomic_fetch_add(&s->bad, 1);
    ebr_exit(&s->e);
    atomic_fetch_add_explicit(&s->reads, 1, memory_order_relaxed);
}

static void *stress_reader(void *arg)
{
    struct stress *s = arg;
    uint64_t rng = (uint64_t)atomic_fetch_add(&s->started, 1) + 1;

    while (!atomic_load(&s->stop))
        stress_read(s, &rng);
    return NULL;
}

static void *stress_short(void *arg)
{
    struct stress *s = arg;
    uint64_t rng = atomic_fetch_add(&s->threads, 1) * 104729u + 1;

    for (int i = 0; i < 100 && !atomic_load(&s->stop); i++)
        stress_read(s, &rng);
    return NULL;
}

static void *stress_churn(void *arg)
{
    struct stress *s = arg;

    while (!atomic_load(&s->stop)) {
        pthread_t th[2];
        size_t n = 0;
        for (; n < 2; n++)
            if (pthread_create(&th[n], NULL, stress_short, s) != 0)
                break;
        for (size_t i = 0; i < n; i++)
            pthread_join(th[i], NULL);
        if (n == 0)
            break;
    }
    return NULL;
}

static void test_stress(void **state)
{
    struct stress *s = calloc(1, sizeof(*s));
    pthread_t readers[STRESS_READERS], churn;
    unsigned long retired = 0;
    uint64_t rng = 42;

    (void)state;
    assert_non_null(s);
    stress_ctx = s;
    assert_int_equal(ebr_init(&s->e), 0);
    for (size_t i = 0; i < STRESS_SLOTS; i++)
        atomic_init(&s->shared[i], obj_new(i));
    for (size_t i = 0; i < STRESS_SLOTS; i++)
        assert_non_null(atomic_load(&s->shared[i]));
    for (size_t i = 0; i < STRESS_READERS; i++)
        assert_int_equal(pthread_create(&readers[i], NULL, stress_reader, s), 0);
    assert_int_equal(pthread_create(&churn, NULL, stress_churn, s), 0);
    while (atomic_load(&s->started) < STRESS_READERS)
        sched_yield();

    /* At least STRESS_ITER replacements and, unless STRESS_ITER_MAX comes first, STRESS_READS read sections meanwhile. */
    const uint64_t iter = (uint64_t)STRESS_ITER, iter_max = (uint64_t)STRESS_ITER_MAX, reads = (uint64_t)STRESS_READS;
    for (uint64_t it = 0; it < iter_max && (it < iter || atomic_load(&s->reads) < reads); it++) {
        struct obj *o = obj_new(STRESS_SLOTS + it), *old;
        assert_non_null(o);
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        old = atomic_exchange(&s->shared[(rng >> 33) % STRESS_SLOTS], o);
        assert_int_equal(ebr_retire(&s->e, old, obj_free), 0);
        retired++;
        /* A reader preempted inside holds everything back: give it the processor rather than growing the list. */
        if (it % 16 == 0 && ebr_reclaim(&s->e) > 4096)
            sched_yield();
    }
    atomic_store(&s->stop, true);
    for (size_t i = 0; i < STRESS_READERS; i++)
        assert_int_equal(pthread_join(readers[i], NULL), 0);
    assert_int_equal(pthread_join(churn, NULL), 0);

    if (atomic_load(&s->bad) != 0)
        fail_msg("%lu reads saw a freed or torn object (of %lu)", atomic_load(&s->bad), atomic_load(&s->reads));
    print_message("stress: %lu objects retired, %lu read sections on %lu threads\n", retired, atomic_load(&s->reads),
                  atomic_load(&s->threads) + STRESS_READERS);
    assert_int_equal(atomic_load(&s->enter_failures), 0);
    assert_true(atomic_load(&s->reads) > 0);
    /* No reader is left inside: everything retired goes now. */
    assert_int_equal(ebr_reclaim(&s->e), 0);
    assert_int_equal(atomic_load(&s->frees), retired);
    for (size_t i = 0; i < STRESS_SLOTS; i++)
        free(atomic_load(&s->shared[i]));
    ebr_release(&s->e);
    assert_int_equal(atomic_load(&s->frees), retired);
    stress_ctx = NULL;
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reclaim_without_readers),
        cmocka_unit_test(test_reader_blocks_later_retires),
        cmocka_unit_test(test_retired_before_enter_is_freed),
        cmocka_unit_test(test_oldest_reader_sets_the_limit),
        cmocka_unit_test(test_release_frees_everything),
        cmocka_unit_test(test_many_instances_one_thread),
        cmocka_unit_test(test_many_instances_slots_bounded),
        cmocka_unit_test(test_section_outlives_cache_eviction),
        cmocka_unit_test(test_stress),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
