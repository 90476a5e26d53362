/*
 * leaks: leaked-key reports over HTTP. POST /v1/leaks/github is the
 * endpoint of GitHub's secret-scanning partner program: no bearer, but a
 * signature (ECDSA P-256 over the raw body) by one of GitHub's published
 * keys, which the operator saves to --leak-report-keys. POST
 * /v1/admin/leaked-keys takes the same reports from the operator's own
 * scanners, with an admin token. Both answer in GitHub's format.
 *
 * The report is handled on the writer thread (job.h): bounded (at most
 * LEAK_REPORT_MAX_TOKENS, one transaction per LIFECYCLE_BATCH keys).
 */
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/leakreport.h"
#include "core/lifecycle.h"
#include "core/validate.h"
#include "http/api.h"
#include "http/job.h"
#include "http/leaks.h"

/* GitHub's keys: replaced on SIGHUP while requests may be verifying against them. */
static pthread_rwlock_t ring_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct leak_keyring *ring;

void leaks_set_keyring(struct leak_keyring *kr)
{
    struct leak_keyring *old;

    pthread_rwlock_wrlock(&ring_lock);
    old = ring;
    ring = kr;
    pthread_rwlock_unlock(&ring_lock);
    leak_keyring_free(old);
}

struct leak_job {
    struct job super; /* first */
    struct api_handler *api;
    struct audit_origin origin;
    struct leak_report report;
    int r;
    char *answer; /* GitHub's format; holds the tokens */
    size_t answer_len;
};

/* On the writer thread. */
static void leak_run(struct job *j)
{
    struct leak_job *job = (struct leak_job *)j;
    size_t n = job->report.n;
    struct lifecycle_leak *v = calloc(n != 0 ? n : 1, sizeof(*v));
    enum leak_label *labels = calloc(n != 0 ? n : 1, sizeof(*labels));

    if (v == NULL || labels == NULL) {
        job->r = AK_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = (struct lifecycle_leak){.token = job->report.v[i].token,
                                       .len = job->report.v[i].token_len,
                                       .url = job->report.v[i].url,
                                       .source = job->report.v[i].source};
    if ((job->r = lifecycle_report_leaks(job->api->keys, &job->origin, v, n)) != 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        labels[i] = v[i].true_positive ? LEAK_TRUE_POSITIVE : LEAK_FALSE_POSITIVE;
    job->r = leak_report_answer(&job->report, labels, &job->answer, &job->answer_len);
out:
    free(v);
    free(labels);
}

static void leak_answer(struct job *j, struct exchange *x)
{
    struct leak_job *job = (struct leak_job *)j;

    if (job->r != 0) {
        api_respond_core_error(x, job->r);
        return;
    }
    respond_body_secret(x, 200, job->answer, job->answer_len);
}

static void leak_wipe(struct job *j)
{
    struct leak_job *job = (struct leak_job *)j;

    leak_report_free(&job->report);
    if (job->answer != NULL)
        OPENSSL_cleanse(job->answer, job->answer_len);
    free(job->answer);
}

/* Parses the body and queues the report; answers 400/413/422 itself. */
static void submit(struct api_handler *api, struct exchange *x, const struct audit_origin *origin)
{
    char msg[LEAK_MSG_MAX];
    struct leak_job *job;
    int r;

    if (x->req->entity.len > LEAK_REPORT_BODY_MAX) {
        respond_error(x, 413, "payload_too_large", "a leak report must be at most 1 MiB");
        return;
    }
    if ((job = job_new(sizeof(*job), x, leak_run, leak_answer, leak_wipe)) == NULL) {
        api_respond_core_error(x, AK_ERR_NOMEM);
        return;
    }
    job->api = api;
    job->origin = *origin;
    if ((r = leak_report_parse(x->req->entity.base, x->req->entity.len, &job->report, msg, sizeof(msg))) != 0) {
        api_respond_validation(x, r, msg);
        leak_report_free(&job->report);
        free(job);
        return;
    }
    job_submit(api->writer, &job->super);
}

/* A header's value, or NULL (and 0) when absent. */
static const char *header(h2o_req_t *req, const char *name, size_t *ret_len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);

    *ret_len = i >= 0 ? req->headers.entries[i].value.len : 0;
    return i >= 0 ? req->headers.entries[i].value.base : NULL;
}

void leaks_handle_github(struct api_handler *api, struct exchange *x)
{
    struct audit_origin origin;
    const char *id, *sig;
    size_t idlen, siglen;
    int r = AK_ERR_SIGNATURE;

    if (!api_method_is(x->req, "POST")) {
        api_respond_method(x, ROUTE_LEAKS_GITHUB);
        return;
    }
    id = header(x->req, "github-public-key-identifier", &idlen);
    sig = header(x->req, "github-public-key-signature", &siglen);
    pthread_rwlock_rdlock(&ring_lock);
    if (ring == NULL) {
        pthread_rwlock_unlock(&ring_lock);
        respond_error(x, 404, "not_found", "leak reports from GitHub are not enabled on this server (--leak-report-keys)");
        return;
    }
    /* Nothing is read from the body before the signature over it holds. */
    if (id != NULL && sig != NULL)
        r = leak_keyring_verify(ring, id, idlen, sig, siglen, x->req->entity.base, x->req->entity.len);
    pthread_rwlock_unlock(&ring_lock);
    if (r != 0) {
        /* A 401 names its scheme (RFC 9110): here a signature over the body, GitHub's, not a bearer. */
        respond_header(x, "www-authenticate", "Signature realm=\"apikeyd-leak-reports\"");
        respond_error(x, 401, "invalid_signature",
                      "the report must be signed by a key of --leak-report-keys (Github-Public-Key-Identifier and "
                      "Github-Public-Key-Signature)");
        return;
    }
    /* An automatic action on a verified report: actor "system", traced by the request's id and address. */
    lifecycle_origin_system(&origin, NULL);
    api_origin_request(api, x, &origin);
    submit(api, x, &origin);
}

void leaks_handle_admin(struct api_handler *api, struct exchange *x, const struct audit_origin *origin)
{
    if (!api_is_json(x->req)) {
        respond_error(x, 415, "unsupported_media_type", "send the report as Content-Type: application/json");
        return;
    }
    submit(api, x, origin);
}
