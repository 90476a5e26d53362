/*
 * gateway: apikeyd in front of an API. A request under a route's prefix is
 * authenticated in-process exactly as /v1/auth/verify would authenticate
 * it (the same core call, so it counts for last_used, usage, rate limits
 * and quotas alike), then handed to proxy.c with the key's identity in
 * headers the client cannot forge. Refused requests never reach the
 * upstream and get the API's own JSON errors.
 */
#ifndef APIKEYD_HTTP_GATEWAY_H
#define APIKEYD_HTTP_GATEWAY_H

#include <h2o.h>

struct api_handler;
struct gw_route;

/*
 * Registers the gateway's handler for `route` (borrowed; outlives the
 * server) on `path`, the pathconf of its prefix; `index` is the route's
 * metrics label. The handler authenticates with `api` once gateway_bind
 * has named it. 0, or -1 when out of memory.
 */
int gateway_register(h2o_pathconf_t *path, const struct gw_route *route, unsigned index);

/* Names the API handler every route authenticates with (handlers_register's). Before serving. */
void gateway_bind(struct api_handler *api);

#endif
