/*
 * Unit tests for core/quota: spending leased credits, never more than held;
 * what a lease asks for (never more than a block held); credits void after
 * a new version or refill period; the store said dry; prefetch once per
 * lease; exactness under threads racing for the last credits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "core/limits.h"
#include "core/quota.h"

#define DAY 86400
#define T0 (20000 * (int64_t)DAY + 3600) /* an hour into a day */

static struct quota_terms terms(int64_t remaining, int64_t version)
{
    return (struct quota_terms){.id = 1, .remaining = remaining, .version = version};
}

static enum quota_verdict spend(struct quota_local *q, const struct quota_terms *t, int64_t now, uint32_t cost)
{
    struct quota_outcome o;

    quota_spend(q, t, now, 1000000, cost, &o);
    return o.verdict;
}

static void test_nothing_leased_asks_for_a_lease(void **state)
{
    struct quota_local q = {0};
    struct quota_terms t = terms(10, 1);
    struct quota_outcome o;

    (void)state;
    quota_spend(&q, &t, T0, 1, 1, &o);
    assert_int_equal(o.verdict, QUOTA_LEASE);
    assert_int_equal(o.left, 10);
    quota_spend(&q, &t, T0, 1, 0, &o); /* costs nothing: no lease needed */
    assert_int_equal(o.verdict, QUOTA_SPENT);
}

static void test_spends_exactly_what_is_held(void **state)
{
    struct quota_local q = {0};
    struct quota_terms t = terms(10, 1);

    (void)state;
    assert_true(quota_took(&q, 1, 0, 4, 6, 1, 1000)); /* the asking request paid one of the four */
    assert_int_equal(q.credits, 3);
    assert_int_equal(quota_left(&q, &t, T0), 9);
    assert_int_equal(spend(&q, &t, T0, 2), QUOTA_SPENT);
    assert_int_equal(spend(&q, &t, T0, 2), QUOTA_LEASE); /* one held, the store has more */
    assert_int_equal(spend(&q, &t, T0, 1), QUOTA_SPENT);
    assert_int_equal(q.credits, 0);
}

static void test_lease_pays_from_held_and_granted(void **state)
{
    struct quota_local q = {0};

    (void)state;
    quota_took(&q, 1, 0, 600, 400, 0, 1000);
    assert_true(quota_took(&q, 1, 0, 400, 0, 1000, 1001)); /* 600 held + 400 granted pay 1000 */
    assert_int_equal(q.credits, 0);
    assert_false(quota_took(&q, 1, 0, 5, 0, 10, 1002)); /* 5 cannot pay 10: they stay held */
    assert_int_equal(q.credits, 5);
}

static void test_want_never_more_than_a_block(void **state)
{
    struct quota_local q = {0};
    struct quota_terms t = terms(1000000, 1);
    int64_t min, want;

    (void)state;
    want = quota_want(&q, &t, T0, 3, &min);
    assert_int_equal(min, 3);
    assert_int_equal(want, QUOTA_BLOCK_MIN + 3);
    for (int i = 0; i < 20; i++) /* leases in quick succession: the block grows to its most */
        quota_took(&q, 1, 0, 1, 1000000, 0, 1000 + i);
    assert_int_equal(q.block, QUOTA_BLOCK_MAX);
    atomic_store(&q.credits, 300);
    want = quota_want(&q, &t, T0, 0, &min);
    assert_int_equal(min, 0);
    assert_int_equal(want, QUOTA_BLOCK_MAX - 300);
    want = quota_want(&q, &t, T0, 500, &min);
    assert_int_equal(min, 200);
    assert_int_equal(want, QUOTA_BLOCK_MAX - 300 + 200);
    atomic_store(&q.credits, QUOTA_BLOCK_MAX);
    assert_int_equal(quota_want(&q, &t, T0, 0, &min), 0);
}

static void test_new_version_voids_credits(void **state)
{
    struct quota_local q = {0};
    struct quota_terms t = terms(100, 1), patched = terms(3, 2);
    int64_t min;

    (void)state;
    quota_took(&q, 1, 0, 50, 50, 0, 1000);
    assert_int_equal(spend(&q, &t, T0, 1), QUOTA_SPENT);
    /* a PATCH seen through another key of the quota (min_version), or this key's new terms */
    atomic_store(&q.min_version, 2);
    assert_int_equal(spend(&q, &t, T0, 1), QUOTA_LEASE);
    assert_int_equal(spend(&q, &patched, T0, 1), QUOTA_LEASE);
    assert_int_equal(quota_left(&q, &patched, T0), 3);
    assert_int_equal(quota_want(&q, &patched, T0, 1, &min), QUOTA_BLOCK_MIN + 1); /* the void credits do not count */
    quota_took(&q, 2, 0, 3, 0, 1, 1001);
    assert_int_equal(q.credits, 2); /* the 49 of version 1 are gone */
}

static void test_refill_period_voids_credits(void **state)
{
    struct quota_local q = {0};
    struct quota_terms t = {
        .id = 1, .remaining = 5, .refill_amount = 10, .interval = REFILL_DAY, .period = T0 - 3600, .version = 1};

    (void)state;
    assert_int_equal(quota_period_of(&t, T0), T0 - 3600);
    quota_took(&q, 1, T0 - 3600, 5, 0, 0, 1000);
    assert_int_equal(spend(&q, &t, T0, 5), QUOTA_SPENT);
    assert_int_equal(quota_terms_left(&t, T0 + DAY), 10); /* the refill, before the store made it */
    quota_took(&q, 1, T0 - 3600, 1, 0, 0, 1001);
    assert_int_equal(spend(&q, &t, T0 + DAY, 1), QUOTA_LEASE); /* yesterday's credit is void today */
}

static void test_dry_store_refuses_then_asks_again(void **state)
{
    struct quota_local q = {0};
    struct quota_terms t = terms(1, 1);
    struct quota_outcome o;

    (void)state;
    quota_took(&q, 1, 0, 1, 0, 1, 5000); /* the last credit, paid; the store is dry */
    quota_spend(&q, &t, T0, 5000 + QUOTA_DRY_RECHECK_MS - 1, 1, &o);
    assert_int_equal(o.verdict, QUOTA_EXHAUSTED);
    assert_int_equal(o.left, 0);
    quota_spend(&q, &t, T0, 5000 + QUOTA_DRY_RECHECK_MS, 1, &o); /* credits may have come back: ask */
    assert_int_equal(o.verdict, QUOTA_LEASE);
}

static void test_prefetch_once_per_lease(void **state)
{
    struct quota_local q = {0};
    struct quota_terms t = terms(1000, 1);
    struct quota_outcome o;
    int prefetches = 0;

    (void)state;
    atomic_store(&q.block, 8);
    quota_took(&q, 1, 0, 8, 900, 0, 100000);
    for (int i = 0; i < 8; i++) {
        quota_spend(&q, &t, T0, 1, 1, &o);
        assert_int_equal(o.verdict, QUOTA_SPENT);
        prefetches += o.prefetch;
    }
    assert_int_equal(prefetches, 1);
    quota_took(&q, 1, 0, 8, 892, 0, 100001); /* the prefetch came back: the next may ask again */
    assert_int_equal(q.leasing, 0);
}

struct racer {
    struct quota_local *q;
    const struct quota_terms *t;
    int spent;
};

static void *race(void *arg)
{
    struct racer *r = arg;

    for (int i = 0; i < 50000; i++)
        r->spent += spend(r->q, r->t, T0, 1) == QUOTA_SPENT;
    return NULL;
}

static void test_threads_spend_exactly_the_credits(void **state)
{
    struct quota_local q = {0};
    struct quota_terms t = terms(0, 1);
    struct racer r[4];
    pthread_t th[4];
    int total = 0;

    (void)state;
    quota_took(&q, 1, 0, 123456, 0, 0, 1000);
    for (int i = 0; i < 4; i++) {
        r[i] = (struct racer){.q = &q, .t = &t};
        pthread_create(&th[i], NULL, race, &r[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        total += r[i].spent;
    }
    assert_int_equal(total, 123456 < 200000 ? 123456 : 200000);
    assert_int_equal(q.credits, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_leased_asks_for_a_lease),   cmocka_unit_test(test_spends_exactly_what_is_held),
        cmocka_unit_test(test_lease_pays_from_held_and_granted),  cmocka_unit_test(test_want_never_more_than_a_block),
        cmocka_unit_test(test_new_version_voids_credits),         cmocka_unit_test(test_refill_period_voids_credits),
        cmocka_unit_test(test_dry_store_refuses_then_asks_again), cmocka_unit_test(test_prefetch_once_per_lease),
        cmocka_unit_test(test_threads_spend_exactly_the_credits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
