/*
 * Unit tests for core/u64map: put/get/replace/del, NULL values refused,
 * extreme keys (0, UINT64_MAX), 100k random and clustered keys checked
 * against a reference array through inserts and deletions (which exercises
 * backward-shift deletion), reserve and release.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/u64map.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Checks that m->cap is 0 or a power of two and that the load stays at or under 1/2. */
static void check_shape(const struct u64map *m)
{
    assert_true(m->cap == 0 || (m->cap & (m->cap - 1)) == 0);
    assert_true(m->len * 2 <= m->cap || m->cap == 0);
}

static void test_empty(void **state)
{
    struct u64map m;

    (void)state;
    memset(&m, 0xff, sizeof(m));
    u64map_init(&m);
    assert_null(m.keys);
    assert_null(m.vals);
    assert_int_equal(m.cap, 0);
    assert_int_equal(m.len, 0);
    assert_null(u64map_get(&m, 0));
    assert_null(u64map_get(&m, 1));
    assert_null(u64map_del(&m, 1));
    assert_int_equal(m.len, 0);
    u64map_release(&m);
    assert_int_equal(m.cap, 0);
}

static void test_put_get_replace_del(void **state)
{
    struct u64map m;
    int a = 1, b = 2, c = 3;

    (void)state;
    u64map_init(&m);
    assert_int_equal(u64map_put(&m, 10, &a), 0);
    assert_int_equal(m.len, 1);
    assert_ptr_equal(u64map_get(&m, 10), &a);
    assert_null(u64map_get(&m, 11));
    assert_int_equal(u64map_put(&m, 11, &b), 0);
    assert_int_equal(m.len, 2);
    assert_ptr_equal(u64map_get(&m, 10), &a);
    assert_ptr_equal(u64map_get(&m, 11), &b);
    /* Replace keeps the count. */
    assert_int_equal(u64map_put(&m, 10, &c), 0);
    assert_int_equal(m.len, 2);
    assert_ptr_equal(u64map_get(&m, 10), &c);
    assert_ptr_equal(u64map_get(&m, 11), &b);
    /* Delete returns the value once. */
    assert_ptr_equal(u64map_del(&m, 10), &c);
    assert_int_equal(m.len, 1);
    assert_null(u64map_get(&m, 10));
    assert_null(u64map_del(&m, 10));
    assert_int_equal(m.len, 1);
    assert_ptr_equal(u64map_get(&m, 11), &b);
    assert_null(u64map_del(&m, 12));
    assert_ptr_equal(u64map_del(&m, 11), &b);
    assert_int_equal(m.len, 0);
    assert_null(u64map_get(&m, 11));
    /* Re-insert after delete. */
    assert_int_equal(u64map_put(&m, 10, &a), 0);
    assert_ptr_equal(u64map_get(&m, 10), &a);
    check_shape(&m);
    u64map_release(&m);
}

static void test_null_value_refused(void **state)
{
    struct u64map m;
    int a = 1;

    (void)state;
    u64map_init(&m);
    assert_int_equal(u64map_put(&m, 5, NULL), AK_ERR_ARG);
    assert_int_equal(m.len, 0);
    assert_null(u64map_get(&m, 5));
    assert_int_equal(u64map_put(&m, 5, &a), 0);
    assert_int_equal(u64map_put(&m, 5, NULL), AK_ERR_ARG);
    assert_ptr_equal(u64map_get(&m, 5), &a); /* a refused put changes nothing */
    assert_int_equal(m.len, 1);
    u64map_release(&m);
}

static void test_extreme_keys(void **state)
{
    static const uint64_t keys[] = {0, 1, UINT64_MAX, UINT64_MAX - 1, 1ULL << 63, (1ULL << 63) - 1, 1ULL << 32};
    const size_t n = sizeof(keys) / sizeof(keys[0]);
    int vals[sizeof(keys) / sizeof(keys[0])];
    struct u64map m;

    (void)state;
    u64map_init(&m);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(u64map_put(&m, keys[i], &vals[i]), 0);
    assert_int_equal(m.len, n);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(u64map_get(&m, keys[i]), &vals[i]);
    assert_ptr_equal(u64map_del(&m, 0), &vals[0]);
    assert_null(u64map_get(&m, 0));
    assert_ptr_equal(u64map_get(&m, UINT64_MAX), &vals[2]);
    assert_ptr_equal(u64map_del(&m, UINT64_MAX), &vals[2]);
    assert_null(u64map_get(&m, UINT64_MAX));
    for (size_t i = 0; i < n; i++)
        if (keys[i] != 0 && keys[i] != UINT64_MAX)
            assert_ptr_equal(u64map_get(&m, keys[i]), &vals[i]);
    assert_int_equal(m.len, n - 2);
    u64map_release(&m);
}

/* Inserts `n` distinct keys, deletes every other one in random order, checks all, re-inserts, deletes all. */
static void run_reference(uint64_t *keys, size_t n)
{
    char *vals = malloc(n);
    size_t *order = malloc(n * sizeof(*order));
    struct u64map m;

    assert_non_null(vals);
    assert_non_null(order);
    /* The keys must be distinct for the reference to be exact. */
    {
        uint64_t *sorted = malloc(n * sizeof(*sorted));
        assert_non_null(sorted);
        memcpy(sorted, keys, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), cmp_u64);
        for (size_t i = 1; i < n; i++)
            assert_true(sorted[i - 1] != sorted[i]);
        free(sorted);
    }
    u64map_init(&m);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(u64map_put(&m, keys[i], &vals[i]), 0);
        order[i] = i;
    }
    assert_int_equal(m.len, n);
    check_shape(&m);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(u64map_get(&m, keys[i]), &vals[i]);
    /* Delete the even indices in a random order. */
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(rnd() % (i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        if (i % 2 == 0)
            assert_ptr_equal(u64map_del(&m, keys[i]), &vals[i]);
    }
    assert_int_equal(m.len, n / 2);
    for (size_t i = 0; i < n; i++) {
        if (i % 2 == 0)
            assert_null(u64map_get(&m, keys[i]));
        else
            assert_ptr_equal(u64map_get(&m, keys[i]), &vals[i]);
    }
    /* Put them back with other values; replace the odd ones. */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(u64map_put(&m, keys[i], &vals[n - 1 - i]), 0);
    assert_int_equal(m.len, n);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(u64map_get(&m, keys[i]), &vals[n - 1 - i]);
    for (size_t k = 0; k < n; k++)
        assert_ptr_equal(u64map_del(&m, keys[order[k]]), &vals[n - 1 - order[k]]);
    assert_int_equal(m.len, 0);
    for (size_t i = 0; i < n; i++)
        assert_null(u64map_get(&m, keys[i]));
    check_shape(&m);
    u64map_release(&m);
    free(vals);
    free(order);
}

static void test_random_100k(void **state)
{
    enum { N = 100000 };
    uint64_t *keys = malloc(N * sizeof(*keys));

    (void)state;
    assert_non_null(keys);
    /* xorshift64* never repeats within its period, and run_reference checks that the keys are distinct. */
    for (size_t i = 0; i < N; i++)
        keys[i] = rnd();
    run_reference(keys, N);
    free(keys);
}

static void test_sequential_and_clustered_100k(void **state)
{
    enum { N = 100000 };
    uint64_t *keys = malloc(N * sizeof(*keys));

    (void)state;
    assert_non_null(keys);
    /* Sequential ids, like the catalog's by-id map. */
    for (size_t i = 0; i < N; i++)
        keys[i] = i + 1;
    run_reference(keys, N);
    /* Keys that differ only in their high bits, and 0 / UINT64_MAX among them. */
    for (size_t i = 0; i < N; i++)
        keys[i] = (uint64_t)i << 40;
    keys[1] = UINT64_MAX;
    run_reference(keys, N);
    free(keys);
}

static void test_reserve(void **state)
{
    struct u64map m;
    int vals[1000];
    size_t cap;
    uint64_t *kp;
    void **vp;

    (void)state;
    u64map_init(&m);
    assert_int_equal(u64map_reserve(&m, 1000), 0);
    assert_true(m.cap >= 1000);
    check_shape(&m);
    assert_int_equal(m.len, 0);
    cap = m.cap;
    kp = m.keys;
    vp = m.vals;
    /* Room for 1000 entries: no reallocation while filling it. */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(u64map_put(&m, (uint64_t)i * 7919, &vals[i]), 0);
    assert_int_equal(m.cap, cap);
    assert_ptr_equal(m.keys, kp);
    assert_ptr_equal(m.vals, vp);
    check_shape(&m);
    /* Reserving less never shrinks or loses entries; reserving more keeps them. */
    assert_int_equal(u64map_reserve(&m, 10), 0);
    assert_int_equal(m.cap, cap);
    assert_int_equal(u64map_reserve(&m, 5000), 0);
    assert_true(m.cap >= 5000);
    check_shape(&m);
    assert_int_equal(m.len, 1000);
    for (int i = 0; i < 1000; i++)
        assert_ptr_equal(u64map_get(&m, (uint64_t)i * 7919), &vals[i]);
    assert_int_equal(u64map_reserve(&m, 0), 0);
    assert_int_equal(m.len, 1000);
    u64map_release(&m);
}

static void test_release_and_reuse(void **state)
{
    struct u64map m;
    int a = 1, vals[100];

    (void)state;
    u64map_init(&m);
    for (int i = 0; i < 100; i++)
        assert_int_equal(u64map_put(&m, (uint64_t)i, &vals[i]), 0);
    u64map_release(&m);
    assert_null(m.keys);
    assert_null(m.vals);
    assert_int_equal(m.cap, 0);
    assert_int_equal(m.len, 0);
    assert_null(u64map_get(&m, 5));
    assert_null(u64map_del(&m, 5));
    assert_int_equal(u64map_put(&m, 5, &a), 0);
    assert_ptr_equal(u64map_get(&m, 5), &a);
    assert_int_equal(m.len, 1);
    u64map_release(&m);
    u64map_release(&m); /* twice is harmless */
    assert_int_equal(m.cap, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_put_get_replace_del),
        cmocka_unit_test(test_null_value_refused),
        cmocka_unit_test(test_extreme_keys),
        cmocka_unit_test(test_random_100k),
        cmocka_unit_test(test_sequential_and_clustered_100k),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_release_and_reuse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
