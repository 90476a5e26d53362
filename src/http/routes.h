/*
 * routes: the gateway's table, parsed from --route (and APIKEYD_ROUTE).
 * Pure: no I/O; every refusal is one line for the operator.
 *
 *   PREFIX=UPSTREAM_URL[;scopes=a,b][;public][;keep-authorization][;cost=N]
 *
 * One value may hold several routes, one per line (an environment variable
 * cannot be repeated). See docs/design/issue-15.md.
 */
#ifndef APIKEYD_HTTP_ROUTES_H
#define APIKEYD_HTTP_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ROUTES_MAX 64
#define ROUTE_PREFIX_MAX 256
#define ROUTE_URL_MAX 1024
#define ROUTE_SCOPES_MAX 1024
#define ROUTE_COST_MAX 1000

struct gw_route {
    char prefix[ROUTE_PREFIX_MAX + 1]; /* "/api": matches /api and /api/..., never /apis */
    size_t prefix_len;
    char host[256]; /* the upstream's host (name or address, IPv6 without brackets) */
    uint16_t port;
    char path[ROUTE_URL_MAX + 1]; /* the upstream URL's path, which replaces the prefix ("" for none) */
    size_t path_len;
    char scopes[ROUTE_SCOPES_MAX + 1]; /* required scopes as "a,b" (scope_required_ok), "" for none */
    size_t scopes_len;
    bool public_route;       /* no key needed */
    bool keep_authorization; /* the client's Authorization reaches the upstream */
    uint32_t cost;           /* credits a request spends from its key's quota */
};

struct gw_routes {
    struct gw_route r[ROUTES_MAX];
    unsigned n;
};

/*
 * Adds the route(s) of `arg` (one per line) to `t`. 0, or -1 with one line
 * in `err` (nothing added from a value that fails). Refuses a prefix that
 * shadows apikeyd's own paths or repeats one already in `t`.
 */
int routes_add(struct gw_routes *t, const char *arg, char *err, size_t errlen);

/* Orders `t` so that a longer prefix comes first (h2o takes the first path that matches). */
void routes_sort(struct gw_routes *t);

/* Whether `path` (`len` bytes, without the query) is one a gateway route may forward (see routes.c). */
bool routes_path_ok(const char *path, size_t len);

#endif
