/*
 * writer: runs the store writes (create, update, delete) on a thread of its
 * own, so that an event loop never waits for a commit. A handler fills a
 * job and submits it; the writer runs job->run and posts the job back to
 * the loop that submitted it through h2o's multithread queue, where
 * job->done answers the request (if the client is still there).
 */
#ifndef APIKEYD_HTTP_WRITER_H
#define APIKEYD_HTTP_WRITER_H

#include <h2o.h>

struct writer_job;

typedef void (*writer_run_cb)(struct writer_job *job);  /* on the writer thread */
typedef void (*writer_done_cb)(struct writer_job *job); /* back on the submitting loop */

struct writer_job {
    h2o_multithread_message_t super; /* must be first: the queue links jobs through it */
    h2o_multithread_receiver_t *reply_to;
    writer_run_cb run;
    writer_done_cb done;
    struct writer_job *next; /* writer queue link */
};

struct writer;

/* Starts the writer thread. Returns NULL when out of memory or threads. */
struct writer *writer_start(void);

/* Queues `job` (owned by the caller until `done` runs). Thread-safe. */
void writer_submit(struct writer *w, struct writer_job *job);

/* Runs every job already queued, then stops the thread and frees `w`; accepts NULL. */
void writer_stop(struct writer *w);

/* The receiver callback to register on each loop's queue: calls `done` for each returned job. */
void writer_on_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

#endif
