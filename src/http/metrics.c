/*
 * metrics: per-thread counters, summed at scrape time; see metrics.h.
 */
#include "http/metrics.h"

#include <h2o.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/keys.h"
#include "core/throttle.h"
#include "core/timefmt.h"
#include "http/worker.h"
#include "http/writer.h"

#ifndef APIKEYD_VERSION
#define APIKEYD_VERSION "0.0.0"
#endif

static const char *const ROUTES[MR_COUNT] = {"other", "verify", "keys",  "key",    "key_rotate", "usage",
                                             "audit", "admin",  "leaks", "health", "dashboard",  "gateway"};
static const char *const METHODS[] = {"GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS", "other"};
#define NMETHOD (sizeof(METHODS) / sizeof(METHODS[0]))
static const int STATUSES[] = {200, 201, 204, 301, 400, 401, 403, 404, 405, 409, 413,
                               415, 422, 429, 431, 499, 500, 502, 503, 504, 0};
#define NSTATUS (sizeof(STATUSES) / sizeof(STATUSES[0])) /* the last: any other */
static const char *const OUTCOMES[MV_COUNT] = {"valid",           "missing_key", "invalid_key", "inactive", "expired",
                                               "leaked",          "suspended",   "scope",       "ip",       "rate_limited",
                                               "quota_exhausted", "unavailable", "bad_request"};
static const char *const UPSTREAM_ERRORS[MU_COUNT] = {"connect", "timeout", "bad_response", "reset"};
static const char *const *route_names;
static unsigned nroutes;
/* Histogram bounds, seconds (Prometheus' le); the last bucket is +Inf. */
static const double LE[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
#define NLE (sizeof(LE) / sizeof(LE[0]))
/* The same bounds in nanoseconds, for the hot path's compares. */
static const uint64_t LE_NS[NLE] = {100000,   250000,   500000,    1000000,   2500000,   5000000,    10000000,
                                    25000000, 50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000};

typedef _Atomic uint64_t counter;

struct hist {
    counter b[NLE + 1];
    counter sum_ns;
};

/* One thread's counters. Written only by that thread (a relaxed load and store: no locked instruction), read by scrapes. */
struct shard {
    counter req[MR_COUNT][NMETHOD][NSTATUS];
    struct hist lat[3]; /* verify, the management API, the gateway */
    struct hist upstream[METRICS_ROUTES_MAX];
    counter upstream_errors[METRICS_ROUTES_MAX][MU_COUNT];
    counter verify[MV_COUNT];
    struct hist write;
    counter store_errors;
    struct shard *next;
};

static _Atomic(struct shard *) shards;
static _Thread_local struct shard *mine;

#define ADD(c, n) atomic_store_explicit(&(c), atomic_load_explicit(&(c), memory_order_relaxed) + (n), memory_order_relaxed)

static struct shard *shard(void)
{
    struct shard *s = mine;

    if (s != NULL)
        return s;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return NULL; /* out of memory: not counted */
    s->next = atomic_load(&shards);
    while (!atomic_compare_exchange_weak(&shards, &s->next, s))
        ;
    return mine = s;
}

static void observe(struct hist *h, uint64_t ns)
{
    size_t i = 0;

    while (i < NLE && ns > LE_NS[i])
        i++;
    ADD(h->b[i], 1);
    ADD(h->sum_ns, ns);
}

static size_t method_index(const char *m, size_t len)
{
    for (size_t i = 0; i + 1 < NMETHOD; i++)
        if (strlen(METHODS[i]) == len && memcmp(METHODS[i], m, len) == 0)
            return i;
    return NMETHOD - 1;
}

static size_t status_index(int status)
{
    for (size_t i = 0; i + 1 < NSTATUS; i++)
        if (STATUSES[i] == status)
            return i;
    return NSTATUS - 1;
}

void metrics_request(uint8_t route, const char *method, size_t method_len, int status, uint64_t ns)
{
    struct shard *s = shard();

    if (s == NULL || route >= MR_COUNT)
        return;
    ADD(s->req[route][method_index(method, method_len)][status_index(status)], 1);
    if (route == MR_VERIFY)
        observe(&s->lat[0], ns);
    else if (route == MR_GATEWAY)
        observe(&s->lat[2], ns);
    else if (route != MR_OTHER && route != MR_HEALTH && route != MR_DASHBOARD)
        observe(&s->lat[1], ns);
}

void metrics_verify(enum metrics_verify outcome)
{
    struct shard *s = shard();

    if (s != NULL && outcome < MV_COUNT)
        ADD(s->verify[outcome], 1);
}

void metrics_set_routes(const char *const *prefixes, unsigned n)
{
    route_names = prefixes;
    nroutes = n < METRICS_ROUTES_MAX ? n : METRICS_ROUTES_MAX;
}

void metrics_upstream(unsigned route, uint64_t ns)
{
    struct shard *s = shard();

    if (s != NULL && route < METRICS_ROUTES_MAX)
        observe(&s->upstream[route], ns);
}

void metrics_upstream_error(unsigned route, enum metrics_upstream_error why)
{
    struct shard *s = shard();

    if (s != NULL && route < METRICS_ROUTES_MAX && why < MU_COUNT)
        ADD(s->upstream_errors[route][why], 1);
}

void metrics_write(uint64_t ns)
{
    struct shard *s = shard();

    if (s != NULL)
        observe(&s->write, ns);
}

void metrics_store_error(void)
{
    struct shard *s = shard();

    if (s != NULL)
        ADD(s->store_errors, 1);
}

/* ---- rendering ---- */

struct out {
    char *p;
    size_t len, cap;
    bool failed;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        if (o->failed)
            return;
        va_start(ap, fmt);
        n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *q = realloc(o->p, cap);
        if (q == NULL) {
            o->failed = true;
            return;
        }
        o->p = q;
        o->cap = cap;
    }
}

static uint64_t get(counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

enum which_hist { H_VERIFY, H_MANAGEMENT, H_GATEWAY, H_WRITE, H_UPSTREAM };

static struct hist *hist_of(struct shard *s, enum which_hist w, unsigned route)
{
    switch (w) {
    case H_WRITE:
        return &s->write;
    case H_UPSTREAM:
        return &s->upstream[route];
    default:
        return &s->lat[w == H_VERIFY ? 0 : w == H_MANAGEMENT ? 1 : 2];
    }
}

/* One histogram summed over the shards, in Prometheus' cumulative buckets. */
static void put_hist(struct out *o, const char *name, const char *labels, enum which_hist w, unsigned route)
{
    uint64_t b[NLE + 1] = {0}, sum = 0, cum = 0;
    const char *open = labels[0] != '\0' ? "{" : "", *close = labels[0] != '\0' ? "}" : "", *comma = labels[0] != '\0' ? "," : "";

    for (struct shard *s = atomic_load(&shards); s != NULL; s = s->next) {
        struct hist *h = hist_of(s, w, route);
        for (size_t i = 0; i <= NLE; i++)
            b[i] += get(&h->b[i]);
        sum += get(&h->sum_ns);
    }
    for (size_t i = 0; i <= NLE; i++) {
        cum += b[i];
        if (i < NLE)
            put(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, comma, LE[i], (unsigned long long)cum);
        else
            put(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, comma, (unsigned long long)cum);
    }
    put(o, "%s_sum%s%s%s %.9f\n", name, open, labels, close, (double)sum / 1e9);
    put(o, "%s_count%s%s%s %llu\n", name, open, labels, close, (unsigned long long)cum);
}

#define METRICS_ROUTE_LABEL_MAX (16 + 2 * 256)

/* route="PREFIX", escaped as the text format wants (a prefix holds no quote or backslash, but be exact). */
static void route_label(const char *prefix, char *out, size_t outsz)
{
    size_t o = 0;

    o += (size_t)snprintf(out, outsz, "route=\"");
    for (const char *p = prefix; *p != '\0' && o + 4 < outsz; p++) {
        if (*p == '"' || *p == '\\')
            out[o++] = '\\';
        out[o++] = *p;
    }
    snprintf(out + o, outsz - o, "\"");
}

int metrics_render(const struct metrics_sources *src, char **ret, size_t *ret_len)
{
    struct out o = {.p = malloc(16384), .cap = 16384};
    uint64_t n;

    if (o.p == NULL)
        return -1;
    put(&o,
        "# HELP apikeyd_build_info The running apikeyd's version.\n# TYPE apikeyd_build_info gauge\n"
        "apikeyd_build_info{version=\"%s\"} 1\n",
        APIKEYD_VERSION);

    put(&o, "# HELP apikeyd_requests_total Requests answered, by route, method and status.\n"
            "# TYPE apikeyd_requests_total counter\n");
    for (size_t r = 0; r < MR_COUNT; r++)
        for (size_t m = 0; m < NMETHOD; m++)
            for (size_t st = 0; st < NSTATUS; st++) {
                n = 0;
                for (struct shard *s = atomic_load(&shards); s != NULL; s = s->next)
                    n += get(&s->req[r][m][st]);
                if (n == 0)
                    continue;
                if (STATUSES[st] != 0)
                    put(&o, "apikeyd_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n", ROUTES[r], METHODS[m],
                        STATUSES[st], (unsigned long long)n);
                else
                    put(&o, "apikeyd_requests_total{route=\"%s\",method=\"%s\",status=\"other\"} %llu\n", ROUTES[r], METHODS[m],
                        (unsigned long long)n);
            }

    put(&o, "# HELP apikeyd_request_duration_seconds Time from a request's arrival to its answer: verification, and the "
            "management API.\n# TYPE apikeyd_request_duration_seconds histogram\n");
    put_hist(&o, "apikeyd_request_duration_seconds", "api=\"verify\"", H_VERIFY, 0);
    put_hist(&o, "apikeyd_request_duration_seconds", "api=\"management\"", H_MANAGEMENT, 0);
    if (nroutes != 0)
        put_hist(&o, "apikeyd_request_duration_seconds", "api=\"gateway\"", H_GATEWAY, 0);

    put(&o, "# HELP apikeyd_verify_total Verifications (the verify endpoint and the gateway's routes), by outcome.\n"
            "# TYPE apikeyd_verify_total counter\n");
    for (size_t v = 0; v < MV_COUNT; v++) {
        n = 0;
        for (struct shard *s = atomic_load(&shards); s != NULL; s = s->next)
            n += get(&s->verify[v]);
        put(&o, "apikeyd_verify_total{outcome=\"%s\"} %llu\n", OUTCOMES[v], (unsigned long long)n);
    }

    put(&o, "# HELP apikeyd_write_duration_seconds Time the writer thread spent on each write (a job).\n"
            "# TYPE apikeyd_write_duration_seconds histogram\n");
    put_hist(&o, "apikeyd_write_duration_seconds", "", H_WRITE, 0);

    if (nroutes != 0) {
        char label[METRICS_ROUTE_LABEL_MAX];
        put(&o, "# HELP apikeyd_upstream_duration_seconds Gateway: time from the start of an upstream exchange to its "
                "response head, by route.\n# TYPE apikeyd_upstream_duration_seconds histogram\n");
        for (unsigned r = 0; r < nroutes; r++) {
            route_label(route_names[r], label, sizeof(label));
            put_hist(&o, "apikeyd_upstream_duration_seconds", label, H_UPSTREAM, r);
        }
        put(&o, "# HELP apikeyd_upstream_errors_total Gateway: failed exchanges with an upstream, by route and reason.\n"
                "# TYPE apikeyd_upstream_errors_total counter\n");
        for (unsigned r = 0; r < nroutes; r++) {
            route_label(route_names[r], label, sizeof(label));
            for (size_t e = 0; e < MU_COUNT; e++) {
                n = 0;
                for (struct shard *s = atomic_load(&shards); s != NULL; s = s->next)
                    n += get(&s->upstream_errors[r][e]);
                put(&o, "apikeyd_upstream_errors_total{%s,reason=\"%s\"} %llu\n", label, UPSTREAM_ERRORS[e], (unsigned long long)n);
            }
        }
    }

    n = 0;
    for (struct shard *s = atomic_load(&shards); s != NULL; s = s->next)
        n += get(&s->store_errors);
    put(&o,
        "# HELP apikeyd_store_errors_total Store failures answered to clients (503) or met in the background.\n"
        "# TYPE apikeyd_store_errors_total counter\napikeyd_store_errors_total %llu\n",
        (unsigned long long)n);

    if (src != NULL && src->loops != NULL) {
        put(&o, "# HELP apikeyd_connections Open client connections, by event loop (--threads).\n"
                "# TYPE apikeyd_connections gauge\n");
        for (unsigned i = 0; i < src->nloops; i++)
            put(&o, "apikeyd_connections{loop=\"%u\"} %u\n", i, atomic_load_explicit(&src->loops[i].conns, memory_order_relaxed));
    }
    if (src != NULL && src->writer != NULL)
        put(&o,
            "# HELP apikeyd_writer_queue_depth Writes waiting for the writer thread.\n"
            "# TYPE apikeyd_writer_queue_depth gauge\napikeyd_writer_queue_depth %zu\n",
            writer_depth(src->writer));
    if (src != NULL && src->keys != NULL) {
        size_t nkeys = 0, naccounts = 0;
        int64_t age;
        keys_counts(src->keys, &nkeys, &naccounts);
        put(&o, "# HELP apikeyd_keys API keys in the catalog.\n# TYPE apikeyd_keys gauge\napikeyd_keys %zu\n", nkeys);
        put(&o, "# HELP apikeyd_accounts Accounts with keys in the catalog.\n# TYPE apikeyd_accounts gauge\napikeyd_accounts %zu\n",
            naccounts);
        if ((age = keys_heard_age_ms(src->keys)) >= 0) {
            put(&o,
                "# HELP apikeyd_store_last_event_age_seconds PostgreSQL: time since the store was last heard from.\n"
                "# TYPE apikeyd_store_last_event_age_seconds gauge\napikeyd_store_last_event_age_seconds %.3f\n",
                (double)age / 1000);
            put(&o,
                "# HELP apikeyd_store_resyncs_total PostgreSQL: full reloads after the change channel was lost.\n"
                "# TYPE apikeyd_store_resyncs_total counter\napikeyd_store_resyncs_total %llu\n",
                (unsigned long long)keys_resyncs(src->keys));
        }
    }
    put(&o,
        "# HELP apikeyd_throttled_addresses Client addresses refused now for too many failed attempts.\n"
        "# TYPE apikeyd_throttled_addresses gauge\napikeyd_throttled_addresses %u\n",
        src != NULL && src->throttle != NULL ? throttle_blocked(src->throttle, timefmt_now()) : 0u);
    if (o.failed) {
        free(o.p);
        return -1;
    }
    *ret = o.p;
    *ret_len = o.len;
    return 0;
}

/* ---- the listener: a loop of its own ---- */

static struct {
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    h2o_socket_t *listener;
    struct metrics_sources src;
    pthread_t tid;
    _Atomic bool stop;
    bool running;
} M;

static int on_metrics(h2o_handler_t *self, h2o_req_t *req)
{
    static h2o_generator_t generator = {NULL, NULL};
    char *text;
    size_t len;
    h2o_iovec_t body;

    (void)self;
    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/metrics"))) {
        req->res.status = 404;
        req->res.reason = "Not Found";
        h2o_send_inline(req, H2O_STRLIT("not found: GET /metrics\n"));
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        req->res.status = 405;
        req->res.reason = "Method Not Allowed";
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET"));
        h2o_send_inline(req, H2O_STRLIT("GET /metrics\n"));
        return 0;
    }
    if (metrics_render(&M.src, &text, &len) != 0) {
        req->res.status = 503;
        req->res.reason = "Service Unavailable";
        h2o_send_inline(req, H2O_STRLIT("out of memory\n"));
        return 0;
    }
    body = h2o_strdup(&req->pool, text, len);
    free(text);
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
    req->res.content_length = body.len;
    h2o_start_response(req, &generator);
    h2o_send(req, &body, 1, H2O_SEND_STATE_FINAL);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    h2o_socket_t *sock;

    if (err != NULL || (sock = h2o_evloop_socket_accept(listener)) == NULL)
        return;
    h2o_accept(&M.accept, sock);
}

static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static bool parked;

/*
 * The loop, until metrics_stop; then the thread parks for good, as the
 * workers do (server.c): h2o's per-thread buffers stay reachable, so leak
 * checkers stay quiet, and nothing is torn down under a scrape in flight.
 */
static void *metrics_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&M.stop))
        h2o_evloop_run(M.ctx.loop, 100);
    pthread_mutex_lock(&park_lock);
    parked = true;
    pthread_cond_broadcast(&park_cond);
    for (;;)
        pthread_cond_wait(&park_cond, &park_lock);
    return NULL;
}

int metrics_start(int fd, const struct metrics_sources *src)
{
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    h2o_handler_t *h;

    M.src = *src;
    h2o_config_init(&M.config);
    M.config.server_name = h2o_iovec_init(H2O_STRLIT("apikeyd"));
    M.config.http1.upgrade_to_http2 = 0;
    host = h2o_config_register_host(&M.config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    h = h2o_create_handler(path, sizeof(*h));
    h->on_req = on_metrics;
    h2o_context_init(&M.ctx, h2o_evloop_create(), &M.config);
    M.accept.ctx = &M.ctx;
    M.accept.hosts = M.config.hosts;
    M.listener = h2o_evloop_socket_create(M.ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(M.listener, on_accept);
    if (pthread_create(&M.tid, NULL, metrics_main, NULL) != 0)
        return -1;
    M.running = true;
    return 0;
}

void metrics_stop(void)
{
    if (!M.running)
        return;
    atomic_store(&M.stop, true);
    pthread_mutex_lock(&park_lock);
    while (!parked)
        pthread_cond_wait(&park_cond, &park_lock);
    pthread_mutex_unlock(&park_lock);
    M.running = false;
}
