/*
 * Unit tests for core/ratelimit: exactly `limit` admitted per fixed window,
 * a client at the limit never refused, what is left and when it resets, a
 * clock stepped back, the exchange's caps and default shares, and exactness
 * under threads racing for the last slots of a window.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "core/limits.h"
#include "core/ratelimit.h"

static int take(struct rate_state *st, int64_t limit, int32_t w, int64_t now, int n)
{
    struct rate_verdict v;
    int admitted = 0;

    for (int i = 0; i < n; i++) {
        rate_take(st, limit, w, now, &v);
        admitted += v.admitted;
    }
    return admitted;
}

static void test_exact_per_window(void **state)
{
    struct rate_state st;
    struct rate_verdict v;

    (void)state;
    rate_init(&st);
    assert_int_equal(take(&st, 10, 60, 600, 25), 10);
    rate_take(&st, 10, 60, 659, &v);
    assert_false(v.admitted);
    assert_int_equal(v.left, 0);
    assert_int_equal(v.reset_in, 1);
    /* The next window starts afresh. */
    rate_take(&st, 10, 60, 660, &v);
    assert_true(v.admitted);
    assert_int_equal(v.left, 9);
    assert_int_equal(v.reset_in, 60);
    assert_int_equal(take(&st, 10, 60, 700, 20), 9);
    assert_int_equal(rate_count(&st, 11), 10);
    assert_int_equal(rate_count(&st, 10), 0);
}

/* A client sending exactly the limit in every window, spread or in bursts, is never refused. */
static void test_at_the_limit_never_refused(void **state)
{
    struct rate_state st;

    (void)state;
    rate_init(&st);
    for (int64_t w = 0; w < 200; w++) {
        int64_t start = 7 * (200000 + w);
        for (int i = 0; i < 5; i++)
            assert_int_equal(take(&st, 5, 7, start + (i * 7) / 5, 1), 1);
    }
    for (int64_t w = 0; w < 50; w++)
        assert_int_equal(take(&st, 1000, 1, 2000000 + w, 1000), 1000);
}

static void test_limit_one_and_largest(void **state)
{
    struct rate_state st;
    struct rate_verdict v;

    (void)state;
    rate_init(&st);
    assert_int_equal(take(&st, 1, 86400, 86400 * 3 + 5, 3), 1);
    rate_init(&st);
    /* The largest limit fits the counter: counting up to it is exact. */
    for (int i = 0; i < 3; i++) {
        rate_take(&st, RATE_LIMIT_MAX, RATE_WINDOW_MAX, 5, &v);
        assert_true(v.admitted);
    }
    assert_int_equal(v.left, RATE_LIMIT_MAX - 3);
}

/* A clock stepped back does not reopen a counted window: the requests count in the later one. */
static void test_clock_back(void **state)
{
    struct rate_state st;
    struct rate_verdict v;

    (void)state;
    rate_init(&st);
    assert_int_equal(take(&st, 3, 10, 105, 3), 3);
    assert_int_equal(take(&st, 3, 10, 95, 3), 0);
    rate_take(&st, 3, 10, 95, &v);
    assert_int_equal(v.reset_in, 15);
    assert_int_equal(take(&st, 3, 10, 110, 5), 3);
}

/* A new window length (a PATCH) starts afresh: old window numbers are of another length (a bug found in review: a
 * longer window read the old, larger window number as a later window and refused for good). */
static void test_window_length_changed(void **state)
{
    struct rate_state st;
    struct rate_verdict v;

    (void)state;
    rate_init(&st);
    assert_int_equal(take(&st, 3, 60, 1800000000, 5), 3);
    assert_int_equal(take(&st, 3, 3600, 1800000010, 5), 3);
    rate_peek(&st, 3, 3600, 1800000011, &v);
    assert_false(v.admitted);
    assert_int_equal(v.reset_in, 3600 - (1800000011 % 3600));
    assert_int_equal(take(&st, 3, 3600, 1800000000 + 3600, 5), 3); /* the next hour */
    assert_int_equal(take(&st, 2, 1, 1800003601, 5), 2);
}

/* What another instance would see: the exchange caps this one at its share, and tells what the others took. */
static void test_exchange_caps(void **state)
{
    struct rate_state st;
    struct rate_verdict v;

    (void)state;
    rate_init(&st);
    assert_int_equal(take(&st, 100, 60, 60, 10), 10);
    assert_int_equal(rate_take_demand(&st), 10);
    assert_int_equal(rate_take_demand(&st), 0);
    rate_set_cap(&st, 60, 1, 25, 40); /* window 1: up to 25 here; the others took 40 */
    assert_int_equal(take(&st, 100, 60, 61, 30), 15);
    assert_int_equal(rate_take_demand(&st), 30);
    rate_peek(&st, 100, 60, 62, &v);
    assert_false(v.admitted);
    assert_int_equal(v.left, 100 - 25 - 40);
    rate_take(&st, 100, 60, 62, &v);
    assert_false(v.admitted);
    assert_int_equal(v.left, 0); /* this instance's share is spent */
    /* A cap above the limit is held to the limit. */
    rate_set_cap(&st, 60, 2, 500, 0);
    assert_int_equal(take(&st, 100, 60, 125, 150), 100);
    /* A window the exchange has not spoken about: the default share (a third), or all of it. */
    rate_set_default(&st, 333333);
    assert_int_equal(take(&st, 99, 60, 185, 99), 32);
    rate_set_default(&st, 0);
    assert_int_equal(take(&st, 99, 60, 245, 200), 99);
}

/* The exchange leases the next window before it starts: both words hold, each for its own window. */
static void test_exchange_next_window(void **state)
{
    struct rate_state st;

    (void)state;
    rate_init(&st);
    rate_set_default(&st, 500000);
    rate_set_cap(&st, 60, 1, 7, 0);
    rate_set_cap(&st, 60, 2, 3, 90); /* the next window, leased early */
    assert_int_equal(take(&st, 100, 60, 65, 20), 7);
    assert_int_equal(take(&st, 100, 60, 125, 20), 3);
    /* Window 3 has no word (its slot holds window 1's): the default share, half of the limit. */
    assert_int_equal(take(&st, 100, 60, 185, 80), 50);
}

struct racer {
    struct rate_state *st;
    int admitted;
};

static void *race(void *arg)
{
    struct racer *r = arg;

    r->admitted = take(r->st, 50000, 60, 600, 40000);
    return NULL;
}

/* Four threads take 160,000 in one window of 50,000: exactly 50,000 admitted. */
static void test_threads_exact(void **state)
{
    struct rate_state st;
    struct racer r[4];
    pthread_t t[4];
    int total = 0;

    (void)state;
    rate_init(&st);
    for (int i = 0; i < 4; i++) {
        r[i] = (struct racer){.st = &st};
        assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        total += r[i].admitted;
    }
    assert_int_equal(total, 50000);
    assert_int_equal(rate_count(&st, 10), 50000);
    assert_int_equal(rate_take_demand(&st), 160000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_per_window),      cmocka_unit_test(test_at_the_limit_never_refused),
        cmocka_unit_test(test_limit_one_and_largest), cmocka_unit_test(test_clock_back),
        cmocka_unit_test(test_exchange_caps),         cmocka_unit_test(test_exchange_next_window),
        cmocka_unit_test(test_threads_exact),         cmocka_unit_test(test_window_length_changed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
