/*
 * job: a request whose answer needs the store (a write, or an operator's
 * read), run on the writer thread (writer.h) so that an event loop never
 * waits for the database, and answered back on the loop that took it.
 *
 * A job is malloc'd (it outlives the handler call) and owned by its loop;
 * the client may hang up meanwhile, which a cell in the request's pool
 * reports, and then nothing is answered. What a job holds that is secret
 * (a new key in clear) is wiped by its `wipe` whether it is answered or
 * discarded.
 */
#ifndef APIKEYD_HTTP_JOB_H
#define APIKEYD_HTTP_JOB_H

#include <stddef.h>

#include "http/respond.h"
#include "http/writer.h"

struct job;
struct job_ref;
struct worker;

typedef void (*job_run_fn)(struct job *job);                        /* on the writer thread */
typedef void (*job_answer_fn)(struct job *job, struct exchange *x); /* on the loop; the request is alive */
typedef void (*job_wipe_fn)(struct job *job);                       /* on the loop, before the job is freed */

struct job {
    struct writer_job super; /* first */
    struct worker *worker;
    struct job_ref *ref;
    struct exchange x; /* x.req is NULL once the request is gone */
    job_run_fn run;
    job_answer_fn answer;
    job_wipe_fn wipe; /* NULL: nothing to wipe */
};

/*
 * Allocates a zeroed job of `size` bytes (a struct that starts with struct
 * job) for the request of `x`. NULL when out of memory.
 */
void *job_new(size_t size, const struct exchange *x, job_run_fn run, job_answer_fn answer, job_wipe_fn wipe);

/* Hands the job to `w`; from here on it belongs to the writer and then to its loop. */
void job_submit(struct writer *w, struct job *job);

#endif
