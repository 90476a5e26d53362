/*
 * writer: a FIFO of jobs under a mutex, drained by one thread. Only writes
 * pass here (a few per second to a few thousand); reads never touch it.
 */
#include "http/writer.h"

#include <pthread.h>
#include <stdlib.h>

struct writer {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct writer_job *head, *tail;
    int stop;
    pthread_t tid;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct writer_job *job;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (w->head == NULL && !w->stop)
            pthread_cond_wait(&w->cond, &w->lock);
        if ((job = w->head) == NULL)
            break; /* stopping and drained */
        if ((w->head = job->next) == NULL)
            w->tail = NULL;
        pthread_mutex_unlock(&w->lock);
        job->run(job);
        h2o_multithread_send_message(job->reply_to, &job->super);
        pthread_mutex_lock(&w->lock);
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
    if (pthread_create(&w->tid, NULL, writer_main, w) != 0) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    return w;
}

void writer_submit(struct writer *w, struct writer_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->tail != NULL)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
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
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

void writer_on_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        struct writer_job *job = H2O_STRUCT_FROM_MEMBER(struct writer_job, super.link, messages->next);
        h2o_linklist_unlink(&job->super.link);
        job->done(job);
    }
}
