/*
 * usage: GET /v1/account/api-keys/{id}/usage and GET /v1/account/usage.
 * The window is checked here (from before to, within the retention, not in
 * the future); the sums are read from the store on the writer thread (a
 * job: an event loop never waits for the database) and rendered with
 * jansson, every bucket of the window present, zeros included, so that a
 * chart needs no gap filling.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/keys.h"
#include "core/timefmt.h"
#include "core/usage.h"
#include "http/api.h"
#include "http/job.h"
#include "http/query.h"

#define USAGE_DEFAULT_HOURS 24
#define USAGE_DEFAULT_DAYS 30
#define USAGE_BUCKETS_MAX 2232 /* 93 days of hours: an answer stays well under a megabyte */

struct usage_job {
    struct job super; /* first */
    struct api_handler *api;
    struct principal who;
    struct usage_query q;
    int r;
    char *body; /* malloc'd */
};

/* {"verified": n, "refused": {"inactive": n, ...}} members into `o`. */
static int put_counts(json_t *o, const uint64_t n[USAGE_NCOUNTS])
{
    json_t *refused = json_object();
    int r = refused == NULL || json_object_set_new(o, "verified", json_integer((json_int_t)n[USAGE_VERIFIED])) != 0;

    for (int c = 1; c < USAGE_NCOUNTS && r == 0; c++)
        r = json_object_set_new(refused, usage_count_name((enum usage_count)c), json_integer((json_int_t)n[c]));
    if (r == 0)
        return json_object_set_new(o, "refused", refused);
    json_decref(refused);
    return -1;
}

static json_t *time_json(int64_t t)
{
    char s[TIMEFMT_LEN + 1];

    return timefmt_format(t, s, sizeof(s)) == 0 ? json_string(s) : json_null();
}

struct sums {
    const struct usage_query *q;
    json_t *list; /* buckets or keys */
    int64_t next; /* buckets: the start of the next bucket to write */
    uint64_t total[USAGE_NCOUNTS];
};

/* Appends one bucket (or key) object. */
static int append(struct sums *s, const char *what, json_t *label, const uint64_t n[USAGE_NCOUNTS])
{
    json_t *o = json_object();

    if (o == NULL || label == NULL || json_object_set_new(o, what, label) != 0 || put_counts(o, n) != 0 ||
        json_array_append_new(s->list, o) != 0) {
        json_decref(o);
        return AK_ERR_NOMEM;
    }
    return 0;
}

/* Writes empty buckets up to (not including) `until`. */
static int fill_to(struct sums *s, int64_t until)
{
    static const uint64_t zero[USAGE_NCOUNTS];
    int r = 0;

    for (; s->next < until && r == 0; s->next += s->q->bucket_s)
        r = append(s, "start", time_json(s->next), zero);
    return r;
}

static int on_bucket(void *arg, int64_t start, const uint64_t n[USAGE_NCOUNTS])
{
    struct sums *s = arg;
    int r;

    for (int c = 0; c < USAGE_NCOUNTS; c++)
        s->total[c] += n[c];
    if ((r = fill_to(s, start)) != 0 || (r = append(s, "start", time_json(start), n)) != 0)
        return r;
    s->next = start + s->q->bucket_s;
    return 0;
}

static int on_key(void *arg, int64_t key_id, const uint64_t n[USAGE_NCOUNTS])
{
    return append(arg, "key_id", json_integer(key_id), n);
}

/* On the writer thread: the sums, rendered. */
static void usage_run(struct job *j)
{
    struct usage_job *job = (struct usage_job *)j;
    struct keys *k = job->api->keys;
    struct sums b = {.q = &job->q, .list = json_array(), .next = job->q.from}, byk = {.q = &job->q, .list = json_array()};
    struct usage_query kq = job->q;
    json_t *page = json_object(), *total = json_object();

    job->r = AK_ERR_NOMEM;
    if (page == NULL || total == NULL || b.list == NULL || byk.list == NULL)
        goto out;
    if ((job->r = usage_read(k, &job->who, &job->q, on_bucket, &b)) != 0 || (job->r = fill_to(&b, job->q.to)) != 0)
        goto out;
    kq.by_key = true;
    if (job->q.key_id == 0 && (job->r = usage_read(k, &job->who, &kq, on_key, &byk)) != 0)
        goto out;
    job->r = AK_ERR_NOMEM;
    if ((job->q.key_id != 0 && json_object_set_new(page, "key_id", json_integer(job->q.key_id)) != 0) ||
        json_object_set_new(page, "granularity", json_string(job->q.bucket_s == USAGE_DAY_S ? "day" : "hour")) != 0 ||
        json_object_set_new(page, "from", time_json(job->q.from)) != 0 ||
        json_object_set_new(page, "to", time_json(job->q.to)) != 0 || put_counts(total, b.total) != 0 ||
        json_object_set(page, "total", total) != 0 || json_object_set(page, "buckets", b.list) != 0 ||
        (job->q.key_id == 0 && json_object_set(page, "keys", byk.list) != 0))
        goto out;
    if ((job->body = json_dumps(page, JSON_COMPACT)) != NULL)
        job->r = 0;
out:
    json_decref(page);
    json_decref(total);
    json_decref(b.list);
    json_decref(byk.list);
}

static void usage_answer(struct job *j, struct exchange *x)
{
    struct usage_job *job = (struct usage_job *)j;

    if (job->r != 0)
        api_respond_core_error(x, job->r);
    else
        respond_body(x, 200, job->body, strlen(job->body));
    free(job->body);
    job->body = NULL;
}

/* A time parameter: RFC 3339. 0, or -1 when it answered 400. */
static int take_time(struct exchange *x, const struct query_param *p, int64_t *ret)
{
    char *msg;

    if (!p->seen)
        return 0;
    if (p->len != strlen(p->value) || timefmt_parse(p->value, p->len, ret) != 0) {
        msg = h2o_mem_alloc_pool(&x->req->pool, 96);
        snprintf(msg, 96, "%s must be an RFC 3339 date-time such as \"2030-01-15T10:00:00Z\"", p->name);
        respond_error(x, 400, "invalid_parameter", msg);
        return -1;
    }
    return 0;
}

void usage_handle(struct api_handler *api, struct exchange *x, const struct principal *who, int64_t key_id)
{
    struct query_param p[] = {{.name = "from"}, {.name = "to"}, {.name = "granularity"}};
    int64_t now = timefmt_now(), bucket = USAGE_HOUR_S, from = 0, to = 0, oldest;
    struct usage_job *job;
    char *msg;

    if (api_parse_query(x, p, 3) != 0)
        return;
    if (p[2].seen) {
        if (strcmp(p[2].value, "day") == 0 && p[2].len == 3) {
            bucket = USAGE_DAY_S;
        } else if (strcmp(p[2].value, "hour") != 0 || p[2].len != 4) {
            respond_error(x, 400, "invalid_parameter", "granularity must be \"hour\" or \"day\"");
            return;
        }
    }
    if (take_time(x, &p[0], &from) != 0 || take_time(x, &p[1], &to) != 0)
        return;
    /* Buckets are whole UTC hours or days: from rounds down, to (exclusive) up. */
    if (!p[1].seen)
        to = now;
    if (!p[0].seen)
        from = to - (bucket == USAGE_DAY_S ? USAGE_DEFAULT_DAYS * USAGE_DAY_S : USAGE_DEFAULT_HOURS * USAGE_HOUR_S);
    if (from >= to) {
        respond_error(x, 400, "invalid_parameter", "from must be before to");
        return;
    }
    from -= ((from % bucket) + bucket) % bucket;
    to += (bucket - ((to % bucket) + bucket) % bucket) % bucket;
    oldest = usage_hour_of(now) - (int64_t)api->usage_retention_days * USAGE_DAY_S;
    if (from < oldest - (bucket == USAGE_DAY_S ? USAGE_DAY_S : 0)) {
        msg = h2o_mem_alloc_pool(&x->req->pool, 128);
        snprintf(msg, 128, "from is past the usage retention (%u days): usage older than that is not kept",
                 api->usage_retention_days);
        respond_error(x, 400, "invalid_parameter", msg);
        return;
    }
    if (to > now + bucket) {
        respond_error(x, 400, "invalid_parameter", "to must not be in the future");
        return;
    }
    if ((to - from) / bucket > USAGE_BUCKETS_MAX) {
        respond_error(x, 400, "invalid_parameter",
                      bucket == USAGE_HOUR_S ? "the window holds more than 2232 hours (93 days); ask by day instead"
                                             : "the window holds more than 2232 days");
        return;
    }
    if ((job = job_new(sizeof(*job), x, usage_run, usage_answer, NULL)) == NULL) {
        api_respond_core_error(x, AK_ERR_NOMEM);
        return;
    }
    job->api = api;
    job->who = *who;
    job->q = (struct usage_query){.key_id = key_id, .from = from, .to = to, .bucket_s = bucket};
    job_submit(api->writer, &job->super);
}
