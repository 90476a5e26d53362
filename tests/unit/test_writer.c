/*
 * Unit tests for http/writer: jobs come back through their loop's inbox
 * (done, once each); a closed inbox gets nothing more: its queued jobs are
 * discarded unrun, a job running when it closes is discarded after it ran,
 * a job submitted to it afterwards is discarded at once, and replies posted
 * before the close are still counted and received; jobs queued when the
 * writer stops are discarded unrun. Every job leaves through exactly one of
 * done and discard (counted per job; valgrind checks none is leaked).
 *
 * Includes writer.c to see when the writer thread has taken the stop flag.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "http/writer.c"

#define NJOBS 20

struct test_job {
    struct writer_job super;
    int *ran, *done, *discarded; /* this job's own counters in the test's arrays */
    int gate;                    /* run waits for release_gate() (and, with gate == 2, for the writer to stop) */
    struct writer *w;
};

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open, gate_entered;

static void release_gate(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

static void wait_gate_entered(void)
{
    pthread_mutex_lock(&gate_lock);
    while (!gate_entered)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
}

static bool writer_stopping(struct writer *w)
{
    bool stop;

    pthread_mutex_lock(&w->lock);
    stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    return stop;
}

static void on_run(struct writer_job *wj)
{
    struct test_job *j = (struct test_job *)wj;

    (*j->ran)++;
    if (j->gate) {
        pthread_mutex_lock(&gate_lock);
        gate_entered = 1;
        pthread_cond_broadcast(&gate_cond);
        while (!gate_open)
            pthread_cond_wait(&gate_cond, &gate_lock);
        pthread_mutex_unlock(&gate_lock);
        while (j->gate == 2 && !writer_stopping(j->w))
            nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
}

static void on_done(struct writer_job *wj)
{
    struct test_job *j = (struct test_job *)wj;

    (*j->done)++;
    free(j);
}

static void on_discard(struct writer_job *wj)
{
    struct test_job *j = (struct test_job *)wj;

    (*j->discarded)++;
    free(j);
}

/* A loop with an inbox on it, and every job's counters. */
struct fixture {
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    struct writer *w;
    struct writer_inbox a, b;
    int submitted[NJOBS + 1], ran[NJOBS + 1], done[NJOBS + 1], discarded[NJOBS + 1];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    f->loop = h2o_evloop_create();
    f->queue = h2o_multithread_create_queue(f->loop);
    f->w = writer_start();
    writer_inbox_register(f->w, &f->a, f->queue);
    writer_inbox_register(f->w, &f->b, f->queue);
    gate_open = gate_entered = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    writer_stop(f->w);
    h2o_multithread_unregister_receiver(f->queue, &f->a.receiver);
    h2o_multithread_unregister_receiver(f->queue, &f->b.receiver);
    h2o_multithread_destroy_queue(f->queue);
    h2o_evloop_run(f->loop, 0); /* lets the loop dispose of the queue's socket */
    h2o_evloop_destroy(f->loop);
    free(f->queue); /* h2o 2.2's destroy_queue frees it only in its libuv flavour */
    /* Every job left exactly once, whichever way. */
    for (int i = 0; i <= NJOBS; i++)
        if (f->done[i] + f->discarded[i] != f->submitted[i])
            fail_msg("job %d: submitted %d, done %d, discarded %d", i, f->submitted[i], f->done[i], f->discarded[i]);
    free(f);
    return 0;
}

static void submit(struct fixture *f, int i, struct writer_inbox *to, int gate)
{
    struct test_job *j = calloc(1, sizeof(*j));

    j->super.reply_to = to;
    j->super.run = on_run;
    j->super.done = on_done;
    j->super.discard = on_discard;
    j->ran = &f->ran[i];
    j->done = &f->done[i];
    j->discarded = &f->discarded[i];
    j->gate = gate;
    j->w = f->w;
    f->submitted[i]++;
    writer_submit(f->w, &j->super);
}

/* Runs the loop until `inbox` has received `n` replies (or 10 s). */
static void pump(struct fixture *f, struct writer_inbox *inbox, uint64_t n)
{
    for (int i = 0; i < 1000 && inbox->received < n; i++)
        h2o_evloop_run(f->loop, 10);
    assert_int_equal(inbox->received, n);
}

static int sum(const int *v)
{
    int s = 0;

    for (int i = 0; i <= NJOBS; i++)
        s += v[i];
    return s;
}

static void test_replies_come_back_once_each(void **state)
{
    struct fixture *f = *state;

    for (int i = 0; i < NJOBS; i++)
        submit(f, i, &f->a, 0);
    pump(f, &f->a, NJOBS);
    for (int i = 0; i < NJOBS; i++) {
        assert_int_equal(f->ran[i], 1);
        assert_int_equal(f->done[i], 1);
        assert_int_equal(f->discarded[i], 0);
    }
    assert_int_equal(writer_inbox_close(&f->a), NJOBS);
}

static void test_queued_jobs_of_a_closed_inbox_are_discarded_unrun(void **state)
{
    struct fixture *f = *state;

    submit(f, NJOBS, &f->b, 1); /* holds the writer busy with another loop's job */
    wait_gate_entered();
    for (int i = 0; i < NJOBS; i++)
        submit(f, i, i % 2 ? &f->a : &f->b, 0);
    assert_int_equal(writer_inbox_close(&f->a), 0);
    for (int i = 1; i < NJOBS; i += 2) {
        assert_int_equal(f->ran[i], 0);
        assert_int_equal(f->discarded[i], 1);
    }
    /* A job submitted to the closed inbox is discarded at once. */
    submit(f, 1, &f->a, 0);
    assert_int_equal(f->discarded[1], 2);
    assert_int_equal(f->ran[1], 0);
    /* The other loop's jobs are untouched. */
    release_gate();
    pump(f, &f->b, NJOBS / 2 + 1);
    assert_int_equal(sum(f->done), NJOBS / 2 + 1);
    assert_int_equal(sum(f->ran), NJOBS / 2 + 1);
    assert_int_equal(f->a.received, 0);
}

static void *open_gate_later(void *arg)
{
    (void)arg;
    nanosleep(&(struct timespec){.tv_nsec = 50 * 1000000}, NULL);
    release_gate();
    return NULL;
}

static void test_a_job_running_when_its_inbox_closes_is_discarded_after_it_ran(void **state)
{
    struct fixture *f = *state;
    pthread_t t;

    submit(f, 0, &f->a, 1);
    wait_gate_entered();
    pthread_create(&t, NULL, open_gate_later, NULL);
    assert_int_equal(writer_inbox_close(&f->a), 0); /* waits for the run, then discards it: not posted */
    pthread_join(t, NULL);
    assert_int_equal(f->ran[0], 1);
    assert_int_equal(f->discarded[0], 1);
    assert_int_equal(f->done[0], 0);
    for (int i = 0; i < 10; i++)
        h2o_evloop_run(f->loop, 1);
    assert_int_equal(f->done[0], 0);
}

static void test_replies_posted_before_the_close_are_received(void **state)
{
    struct fixture *f = *state;
    uint64_t sent;

    for (int i = 0; i < NJOBS; i++)
        submit(f, i, &f->a, 0);
    /* Wait until the writer has posted them all, without reading any. */
    for (int i = 0; i < 10000; i++) {
        pthread_mutex_lock(&f->w->lock);
        sent = f->a.sent;
        pthread_mutex_unlock(&f->w->lock);
        if (sent == NJOBS)
            break;
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    sent = writer_inbox_close(&f->a);
    assert_int_equal(sent, NJOBS);
    assert_int_equal(f->a.received, 0);
    pump(f, &f->a, sent);
    assert_int_equal(sum(f->done), NJOBS);
    assert_int_equal(sum(f->discarded), 0);
}

static void *stop_writer(void *arg)
{
    writer_stop(arg);
    return NULL;
}

static void test_jobs_queued_at_stop_are_discarded_unrun(void **state)
{
    struct fixture *f = *state;
    pthread_t t;

    submit(f, NJOBS, &f->b, 2); /* runs until the writer has been told to stop */
    wait_gate_entered();
    for (int i = 0; i < NJOBS; i++)
        submit(f, i, &f->a, 0);
    pthread_create(&t, NULL, stop_writer, f->w);
    release_gate();
    pthread_join(t, NULL);
    f->w = NULL;
    for (int i = 0; i < NJOBS; i++) {
        assert_int_equal(f->ran[i], 0);
        assert_int_equal(f->discarded[i], 1);
    }
    /* The job that was running is still answered: its loop is open. */
    pump(f, &f->b, 1);
    assert_int_equal(f->done[NJOBS], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replies_come_back_once_each, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_jobs_of_a_closed_inbox_are_discarded_unrun, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_job_running_when_its_inbox_closes_is_discarded_after_it_ran, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replies_posted_before_the_close_are_received, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jobs_queued_at_stop_are_discarded_unrun, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
