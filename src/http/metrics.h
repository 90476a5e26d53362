/*
 * metrics: Prometheus counters (issue 14), counted where they happen at the
 * cost of a plain add on memory of the counting thread's own (each thread
 * that counts gets a shard, registered once) and summed only when scraped:
 * the hot path never shares a cache line. Served by metrics_serve on a
 * listener of its own (--metrics-listen), never with the API.
 */
#ifndef APIKEYD_HTTP_METRICS_H
#define APIKEYD_HTTP_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct keys;
struct writer;
struct throttle;
struct worker;

/* The routes requests are counted by (the label `route`). */
enum metrics_route {
    MR_OTHER = 0, /* unknown paths (404) */
    MR_VERIFY,
    MR_KEYS, /* /v1/account/api-keys/ (list, create) */
    MR_KEY,  /* /v1/account/api-keys/{id}/ (update, delete) */
    MR_KEY_ROTATE,
    MR_USAGE, /* per key and per account */
    MR_AUDIT, /* the account's audit log */
    MR_ADMIN, /* /v1/admin/... */
    MR_LEAKS, /* /v1/leaks/github */
    MR_HEALTH,
    MR_DASHBOARD,
    MR_GATEWAY, /* requests under a --route prefix */
    MR_COUNT
};

/* Why verification answered as it did (the label `outcome` of apikeyd_verify_total). */
enum metrics_verify {
    MV_VALID = 0,
    MV_MISSING, /* no key */
    MV_INVALID, /* malformed or unknown */
    MV_INACTIVE,
    MV_EXPIRED,
    MV_LEAKED,
    MV_SUSPENDED,
    MV_SCOPE,
    MV_IP,
    MV_RATE_LIMITED,
    MV_QUOTA_EXHAUSTED,
    MV_UNAVAILABLE, /* the store silent too long, or a quota lease failed */
    MV_BAD_REQUEST, /* X-Cost, X-Required-Scopes, the verify token */
    MV_COUNT
};

/* One answered request: its route, method, status and time from arrival to answer. Any thread. */
void metrics_request(uint8_t route, const char *method, size_t method_len, int status, uint64_t ns);

/* One verification's outcome. */
void metrics_verify(enum metrics_verify outcome);

/* Why an exchange with an upstream failed (the label `reason` of apikeyd_upstream_errors_total). */
enum metrics_upstream_error {
    MU_CONNECT = 0,  /* refused, unreachable, not resolved */
    MU_TIMEOUT,      /* connect, first byte, or silence mid-body */
    MU_BAD_RESPONSE, /* not HTTP/1.x, or a head h2o's client refused */
    MU_RESET,        /* closed before the head, or mid-body */
    MU_COUNT
};

/* At most this many gateway routes are counted (routes.h's ROUTES_MAX). */
#define METRICS_ROUTES_MAX 64

/* The gateway's routes by index, for the label `route` (borrowed; they live as long as the process). Before serving. */
void metrics_set_routes(const char *const *prefixes, unsigned n);

/* An upstream's response head arrived `ns` after the exchange began (gateway route `route`). */
void metrics_upstream(unsigned route, uint64_t ns);

/* An exchange with route `route`'s upstream failed. */
void metrics_upstream_error(unsigned route, enum metrics_upstream_error why);

/* One write (a job on the writer thread) that took `ns`. */
void metrics_write(uint64_t ns);

/* A store failure answered to a client or met in the background. */
void metrics_store_error(void);

/* What the scrape reads besides the counters (all borrowed; any may be NULL). */
struct metrics_sources {
    struct keys *keys;
    struct writer *writer;
    struct throttle *throttle;
    const struct worker *loops; /* the event loops, for their connections (worker.h's conns), nloops of them */
    unsigned nloops;
};

/*
 * Serves GET /metrics (Prometheus text format 0.0.4) on the listening socket
 * `fd` (taken) from a thread of its own until metrics_stop. 0 or -1.
 */
int metrics_start(int fd, const struct metrics_sources *src);
void metrics_stop(void);

/* The text of a scrape into a malloc'd buffer (*ret, *ret_len); for tests and the listener. 0 or -1. */
int metrics_render(const struct metrics_sources *src, char **ret, size_t *ret_len);

#endif
