/*
 * gateway: the handler of one --route. See gateway.h and
 * docs/design/issue-15.md.
 */
#include "http/gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/key.h"
#include "core/lifecycle.h"
#include "core/timefmt.h"
#include "http/api.h"
#include "http/metrics.h"
#include "http/proxy.h"
#include "http/respond.h"
#include "http/routes.h"

struct gw_handler {
    h2o_handler_t super;
    const struct gw_route *route;
    struct proxy_upstream *up;
};

static struct api_handler *bound; /* gateway_bind's: every route authenticates with the API's handler */

/* Room for the identity headers: names, two ids, a type, a prefix, scopes, a date, the request id. */
#define IDENTITY_MAX (256 + SCOPE_TEXT_MAX + RESPOND_REQUEST_ID_MAX)

/*
 * The headers the upstream learns the caller from, as the verify endpoint's
 * 204 gives them, and the request's id. The client's own headers of these
 * names never reach the upstream (proxy.c drops them). Written on the stack
 * and copied at their size: a block of IDENTITY_MAX from the request's pool
 * would be a malloc and a free per request (h2o's pool takes large blocks
 * from malloc).
 */
static h2o_iovec_t identity(struct exchange *x, const struct principal *who)
{
    char buf[IDENTITY_MAX], when[TIMEFMT_LEN + 1];
    size_t off = 0;

    if (who != NULL) {
        off += (size_t)snprintf(buf, IDENTITY_MAX, "x-account-id: %lld\r\nx-key-id: %lld\r\nx-key-type: %s\r\nx-key-prefix: %s\r\n",
                                (long long)who->account_id, (long long)who->key_id, key_type_name(who->type), who->prefix);
        if (who->restricted)
            off += (size_t)snprintf(buf + off, IDENTITY_MAX - off, "x-key-scopes: %.*s\r\n", (int)who->scopes_len, who->scopes);
        if (who->expires_at != 0 && who->expires_at - timefmt_now() <= LIFECYCLE_SOON_S &&
            timefmt_format(who->expires_at, when, sizeof(when)) == 0)
            off += (size_t)snprintf(buf + off, IDENTITY_MAX - off, "x-key-expires-at: %s\r\n", when);
    }
    off += (size_t)snprintf(buf + off, IDENTITY_MAX - off, "x-request-id: %s\r\n", exchange_request_id(x));
    return h2o_strdup(&x->req->pool, buf, off);
}

/*
 * The upstream's path: the route's prefix replaced by the upstream URL's
 * path, the rest of the raw path and its query kept as sent. The raw path
 * has passed routes_path_ok, so it has the segments of the normalized one
 * that h2o matched the prefix against; norm_indexes maps the end of the
 * prefix back into it (a client may have percent-encoded a letter of it).
 */
static h2o_iovec_t destination(h2o_req_t *req, const struct gw_route *r)
{
    /* norm_indexes[i]: where in the raw path the byte after normalized byte i starts (NULL: the path was normal already). */
    size_t next = req->norm_indexes != NULL ? req->norm_indexes[r->prefix_len - 1] : r->prefix_len, off, rest_len;
    const char *rest;
    char *buf;

    if (next > req->path.len)
        next = req->path.len;
    rest = req->path.base + next;
    rest_len = req->path.len - next;
    buf = h2o_mem_alloc_pool(&req->pool, r->path_len + rest_len + 2);
    memcpy(buf, r->path, r->path_len);
    off = r->path_len;
    if (off == 0 && (rest_len == 0 || rest[0] != '/'))
        buf[off++] = '/'; /* "/api" -> "/", "/api?q" -> "/?q"; with a path, "/api?q" -> "/v2?q" */
    memcpy(buf + off, rest, rest_len);
    return h2o_iovec_init(buf, off + rest_len);
}

static void forward(struct gw_handler *gw, struct exchange *x, const struct principal *who)
{
    proxy_forward(gw->up, x, destination(x->req, gw->route), identity(x, who));
}

static void on_admitted(struct api_handler *api, struct exchange *x, const struct principal *who, void *arg)
{
    (void)api;
    forward(arg, x, who);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct gw_handler *gw = (struct gw_handler *)self;
    const struct gw_route *r = gw->route;
    struct exchange x;

    exchange_init(&x, req);
    x.route = MR_GATEWAY;
    if (api_begin(bound, &x))
        return 0;
    if (!routes_path_ok(req->path.base, req->query_at != SIZE_MAX ? req->query_at : req->path.len)) {
        respond_error(&x, 400, "invalid_path", "the path has a . or .. segment, an encoded . / or \\, or a \\");
        return 0;
    }
    for (size_t i = 0; i < req->headers.size; i++) {
        if (req->headers.entries[i].name->len == 0) {
            /* A folded line (obs-fold): h2o's parser keeps it as a header without a name, which no upstream should have to read. */
            respond_error(&x, 400, "bad_request", "a header line is folded (obs-fold) or has no name");
            return 0;
        }
    }
    if (req->upgrade.base != NULL) {
        /* A tunnel outlives the one verification at its start: a revoked key would keep talking. */
        respond_error(&x, 400, "upgrade_not_supported", "the gateway does not pass Upgrade (WebSocket) requests");
        return 0;
    }
    if (r->public_route)
        forward(gw, &x, NULL);
    else
        api_authenticate_request(bound, &x, r->scopes_len != 0 ? r->scopes : NULL, r->scopes_len, r->cost, on_admitted, gw);
    return 0;
}

int gateway_register(h2o_pathconf_t *path, const struct gw_route *route, unsigned index)
{
    struct proxy_upstream *up = proxy_upstream_new(route, index);
    struct gw_handler *gw;

    if (up == NULL)
        return -1;
    gw = (struct gw_handler *)h2o_create_handler(path, sizeof(*gw));
    gw->super.on_req = on_req;
    gw->route = route;
    gw->up = up;
    /* h2o would print the proxy's errors with the request's path (and query) to stderr: they are answered and counted instead. */
    path->error_log.emit_request_errors = 0;
    return 0;
}

void gateway_bind(struct api_handler *api)
{
    bound = api;
}
