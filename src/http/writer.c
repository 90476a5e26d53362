/*
 * writer: a FIFO of jobs under a mutex, drained by one thread. Only writes
 * pass here (a few per second to a few thousand); reads never touch it.
 * A job is owned by exactly one party at a time (the queue, the writer
 * thread, the h2o queue, the loop) and leaves through `done` or `discard`,
 * never both, never neither.
 */
#include "http/writer.h"

#include <stdatomic.h>

#include "core/timefmt.h"
#include "http/metrics.h"

#include <pthread.h>
#include <stdlib.h>

struct writer {
    pthread_mutex_t lock;
    pthread_cond_t cond;     /* a job queued, or stop */
    pthread_cond_t finished; /* the running job is done with */
    struct writer_job *head, *tail;
    struct writer_inbox *running; /* the inbox of the job being run, NULL when idle */
    _Atomic size_t depth;         /* jobs queued, not yet taken (metrics) */
    int stop;
    pthread_t tid;
};

static void discard_all(struct writer_job *list)
{
    while (list != NULL) {
        struct writer_job *next = list->next;
        list->discard(list);
        list = next;
    }
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct writer_job *job;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->head == NULL && !w->stop)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->stop)
            break; /* what is still queued is writer_stop's to discard */
        job = w->head;
        if ((w->head = job->next) == NULL)
            w->tail = NULL;
        atomic_fetch_sub_explicit(&w->depth, 1, memory_order_relaxed);
        w->running = job->reply_to;
        pthread_mutex_unlock(&w->lock);
        int64_t t0 = timefmt_mono_ns();
        job->run(job);
        metrics_write((uint64_t)(timefmt_mono_ns() - t0));
        pthread_mutex_lock(&w->lock);
        w->running = NULL;
        if (job->reply_to->closed) {
            /* Its loop is waiting in writer_inbox_close: hand the job over for discarding there. */
            job->next = job->reply_to->orphans;
            job->reply_to->orphans = job;
            pthread_cond_broadcast(&w->finished);
        } else {
            /* Under the lock, so that a close either comes first (and nothing is posted) or counts this reply. */
            job->reply_to->sent++;
            h2o_multithread_send_message(&job->reply_to->receiver, &job->super);
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

struct writer *writer_start(void)
{
    struct writer *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    pthread_cond_init(&w->finished, NULL);
    if (pthread_create(&w->tid, NULL, writer_main, w) != 0) {
        pthread_cond_destroy(&w->finished);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

void writer_inbox_register(struct writer *w, struct writer_inbox *inbox, h2o_multithread_queue_t *queue)
{
    *inbox = (struct writer_inbox){.writer = w};
    h2o_multithread_register_receiver(queue, &inbox->receiver, writer_on_replies);
}

uint64_t writer_inbox_close(struct writer_inbox *inbox)
{
    struct writer *w = inbox->writer;
    struct writer_job *mine = NULL, **link, *job, *prev = NULL;
    uint64_t sent;

    pthread_mutex_lock(&w->lock);
    inbox->closed = 1;
    for (link = &w->head; (job = *link) != NULL;) {
        if (job->reply_to == inbox) {
            *link = job->next;
            job->next = mine;
            mine = job;
            atomic_fetch_sub_explicit(&w->depth, 1, memory_order_relaxed);
        } else {
            prev = job;
            link = &job->next;
        }
    }
    w->tail = prev;
    while (w->running == inbox)
        pthread_cond_wait(&w->finished, &w->lock);
    if (inbox->orphans != NULL) {
        inbox->orphans->next = mine;
        mine = inbox->orphans;
        inbox->orphans = NULL;
    }
    sent = inbox->sent;
    pthread_mutex_unlock(&w->lock);
    discard_all(mine);
    return sent;
}

void writer_submit(struct writer *w, struct writer_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (job->reply_to->closed) {
        /* A request its loop read while stopping: it will never be answered; the loop's thread is this one. */
        pthread_mutex_unlock(&w->lock);
        job->discard(job);
        return;
    }
    if (w->tail != NULL)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    atomic_fetch_add_explicit(&w->depth, 1, memory_order_relaxed);
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

size_t writer_depth(struct writer *w)
{
    return atomic_load_explicit(&w->depth, memory_order_relaxed);
}

void writer_stop(struct writer *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->tid, NULL);
    discard_all(w->head);
    pthread_cond_destroy(&w->finished);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

void writer_on_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct writer_inbox *inbox = H2O_STRUCT_FROM_MEMBER(struct writer_inbox, receiver, receiver);

    while (!h2o_linklist_is_empty(messages)) {
        struct writer_job *job = H2O_STRUCT_FROM_MEMBER(struct writer_job, super.link, messages->next);
        h2o_linklist_unlink(&job->super.link);
        inbox->received++;
        job->done(job);
    }
}
