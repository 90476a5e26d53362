/*
 * iterations: how many rounds the heavy loops of the unit tests run
 * (test_catalog_concurrency.c, test_ebr.c). APIKEYD_TEST_SCALE, a
 * percentage from 1 to 100 (default 100), scales them down. scripts/test.sh
 * sets it for the valgrind pass only, where every instruction costs some
 * fifty times more and threads run one at a time: there the point is
 * memory errors and leaks on every code path, which a fifth of the rounds
 * still reaches. The normal and ASan passes run the full counts, so the
 * races those loops hunt are hunted as hard as before. Never used to make
 * a test pass: a test that fails at full scale fails.
 */
#ifndef APIKEYD_TESTS_ITERATIONS_H
#define APIKEYD_TESTS_ITERATIONS_H

#include <stdlib.h>

/* `full` scaled by APIKEYD_TEST_SCALE percent, at least `min` (and never more than `full`). */
static inline long test_iterations(long full, long min)
{
    const char *env = getenv("APIKEYD_TEST_SCALE");
    long pct = 100, n;
    char *end;

    if (env != NULL && *env != '\0') {
        pct = strtol(env, &end, 10);
        if (*end != '\0' || pct < 1 || pct > 100)
            pct = 100; /* a bad value runs everything rather than too little */
    }
    n = full * pct / 100;
    if (n < min)
        n = min;
    return n < full ? n : full;
}

#endif
