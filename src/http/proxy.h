/*
 * proxy: the upstream half of a gateway request. h2o's HTTP/1 client and
 * socket pool carry the exchange (keep-alive connections per upstream);
 * this module adds what the gateway promises on top: its own connect and
 * first-byte timeouts, errors in the API's shape (502/504), hop-by-hop
 * headers removed, X-Forwarded-For/-Proto, a response streamed with
 * back-pressure (reading stops while the client is behind), and the
 * upstream's latency and errors in the metrics.
 */
#ifndef APIKEYD_HTTP_PROXY_H
#define APIKEYD_HTTP_PROXY_H

#include <h2o.h>
#include <stdint.h>

#include "http/respond.h"

struct gw_route;
struct proxy_upstream;

struct proxy_timeouts {
    uint64_t connect_ms;    /* to establish a connection */
    uint64_t first_byte_ms; /* from the request sent to the response head; also the longest silence mid-body */
    uint64_t idle_ms;       /* an unused pooled connection is closed after this */
};

/* Sets the timeouts every upstream uses. Once, before the first proxy_upstream_new. */
void proxy_init(const struct proxy_timeouts *t);

/* The upstream of `route` (borrowed; outlives the server), `index` its label in the metrics. NULL when out of memory. */
struct proxy_upstream *proxy_upstream_new(const struct gw_route *route, unsigned index);

/*
 * Sends the request of `x` to the upstream, at `path` (the rewritten path
 * and query, living in the request's pool), with the request's headers but
 * hop-by-hop ones, the client's X-Account-Id, X-Request-Id and X-Key-*, and
 * its Authorization unless the route keeps it; then `identity` (header
 * lines the gateway wrote, in the pool), X-Forwarded-For and -Proto. Streams
 * the answer back. Always answers: the upstream's response, or a 502/504.
 */
void proxy_forward(struct proxy_upstream *u, const struct exchange *x, h2o_iovec_t path, h2o_iovec_t identity);

#endif
