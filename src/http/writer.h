/*
 * writer: runs the store writes (create, update, delete) on a thread of its
 * own, so that an event loop never waits for a commit. A handler fills a
 * job and submits it; the writer runs job->run and posts the job back to
 * the inbox of the loop that submitted it through h2o's multithread queue,
 * where job->done answers the request (if the client is still there).
 *
 * A loop that stops closes its inbox: from then on the writer runs none of
 * its jobs and posts nothing to it, and every job that will not come back
 * through `done` goes to `discard` instead, exactly once, so that nothing
 * a job holds (a plaintext key) is leaked.
 */
#ifndef APIKEYD_HTTP_WRITER_H
#define APIKEYD_HTTP_WRITER_H

#include <h2o.h>
#include <stdint.h>

struct writer_job;
struct writer;

typedef void (*writer_run_cb)(struct writer_job *job);     /* on the writer thread */
typedef void (*writer_done_cb)(struct writer_job *job);    /* back on the submitting loop */
typedef void (*writer_discard_cb)(struct writer_job *job); /* instead of done; see writer_inbox_close and writer_stop */

/* Where one loop's jobs come back. Lives as long as the writer. */
struct writer_inbox {
    h2o_multithread_receiver_t receiver;
    struct writer *writer;
    struct writer_job *orphans; /* run after the inbox closed; under the writer's lock */
    uint64_t sent;              /* replies posted here; under the writer's lock */
    uint64_t received;          /* replies taken by the loop; touched only by the loop */
    int closed;                 /* under the writer's lock */
};

struct writer_job {
    h2o_multithread_message_t super; /* must be first: the queue links jobs through it */
    struct writer_inbox *reply_to;
    writer_run_cb run;
    writer_done_cb done;       /* answers and frees the job */
    writer_discard_cb discard; /* wipes what the job holds and frees it; nothing is answered */
    struct writer_job *next;   /* writer queue link */
};

/* Starts the writer thread. Returns NULL when out of memory or threads. */
struct writer *writer_start(void);

/*
 * Sets up `inbox` and registers it on `queue` (the loop's, on the loop's
 * thread), so that jobs submitted with reply_to = inbox come back there.
 */
void writer_inbox_register(struct writer *w, struct writer_inbox *inbox, h2o_multithread_queue_t *queue);

/*
 * Closes `inbox`, on its loop's thread, when the loop will stop: its jobs
 * still queued are taken off the queue and never run; if one is running,
 * this waits for it (as writer_stop would) and it is not posted. Each of
 * them goes to `discard`, on this thread. Returns how many replies were
 * posted to the inbox in all; the loop should run until it has received
 * that many (inbox->received) so that none is left unread.
 */
uint64_t writer_inbox_close(struct writer_inbox *inbox);

/*
 * Queues `job` (owned by the writer until `done` or `discard` runs), on
 * the thread of the loop of job->reply_to. For a closed inbox, the job goes
 * to `discard` before this returns.
 */
void writer_submit(struct writer *w, struct writer_job *job);

/*
 * Finishes the job running, if any (posting it unless its inbox is
 * closed), then stops the thread. Jobs still queued are not run: each goes
 * to `discard` on the calling thread, so their loops must have stopped.
 * Frees `w`; accepts NULL.
 */
void writer_stop(struct writer *w);

/* Jobs queued and not yet taken by the writer (metrics). */
size_t writer_depth(struct writer *w);

/* The receiver callback writer_inbox_register installs: calls `done` for each returned job. */
void writer_on_replies(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);

#endif
