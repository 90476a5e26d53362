/*
 * job: the round trip of a request through the writer thread.
 */
#include "http/job.h"

#include <stdlib.h>

#include "http/worker.h"

/* A cell in the request's pool: tells the job when the request goes away. */
struct job_ref {
    struct job *job;
};

static void ref_dispose(void *p)
{
    struct job_ref *ref = p;

    if (ref->job != NULL)
        ref->job->x.req = NULL;
}

static void on_run(struct writer_job *wj)
{
    struct job *job = (struct job *)wj;

    job->run(job);
}

static void release(struct job *job)
{
    job->worker->inflight--;
    if (job->x.req != NULL)
        job->ref->job = NULL;
    if (job->wipe != NULL)
        job->wipe(job);
    free(job);
}

/* Back on the loop that submitted the job. */
static void on_done(struct writer_job *wj)
{
    struct job *job = (struct job *)wj;

    if (job->x.req != NULL) {
        job->ref->job = NULL;
        job->answer(job, &job->x);
        job->x.req = NULL;
    }
    release(job);
}

/*
 * Instead of on_done, when the loop stops before the answer could come
 * (writer.h): nothing is answered. Runs on the loop's thread, or after it
 * has stopped.
 */
static void on_discard(struct writer_job *wj)
{
    release((struct job *)wj);
}

void *job_new(size_t size, const struct exchange *x, job_run_fn run, job_answer_fn answer, job_wipe_fn wipe)
{
    struct job *job = calloc(1, size);

    if (job == NULL)
        return NULL;
    job->worker = worker_of(x->req->conn->ctx);
    job->x = *x;
    job->run = run;
    job->answer = answer;
    job->wipe = wipe;
    job->super.run = on_run;
    job->super.done = on_done;
    job->super.discard = on_discard;
    job->super.reply_to = &job->worker->reply_receiver;
    return job;
}

void job_submit(struct writer *w, struct job *job)
{
    job->ref = h2o_mem_alloc_shared(&job->x.req->pool, sizeof(*job->ref), ref_dispose);
    job->ref->job = job;
    job->worker->inflight++;
    writer_submit(w, &job->super);
}
