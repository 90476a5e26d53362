/*
 * handlers: one function per route and method. Every refusal is a JSON error
 * with a stable code; nothing a client sends reaches a 500.
 */
#include "http/handlers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/error.h"
#include "core/keys.h"
#include "core/lifecycle.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/scope.h"
#include "core/throttle.h"
#include "core/timefmt.h"
#include "core/usage.h"
#include "core/validate.h"
#include "core/wipe.h"
#include "http/api.h"
#include "http/dashboard.h"
#include "http/framing.h"
#include "http/job.h"
#include "http/metrics.h"
#include "http/render.h"
#include "http/respond.h"
#include "http/router.h"
#include "http/worker.h"
#include "http/writer.h"

static void client_addr(struct api_handler *api, h2o_req_t *req, struct netaddr *ret);

/* What authentication found of a key's limits, for the answer's headers. */
struct limits_seen {
    int64_t now;
    struct rate_report rate;
    struct quota_report quota;
};

bool api_method_is(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

void api_respond_method(struct exchange *x, enum route_id id)
{
    char *msg = h2o_mem_alloc_pool(&x->req->pool, 64);

    snprintf(msg, 64, "use %s", router_allow(id));
    respond_header(x, "allow", router_allow(id));
    respond_error(x, 405, "method_not_allowed", msg);
}

void api_respond_core_error(struct exchange *x, int err)
{
    api_respond_error_for(x, err, "API key");
}

void api_respond_error_for(struct exchange *x, int err, const char *what)
{
    char *msg;

    switch (err) {
    case AK_ERR_NOT_FOUND:
        msg = h2o_mem_alloc_pool(&x->req->pool, 64);
        snprintf(msg, 64, "no such %s", what);
        respond_error(x, 404, "not_found", msg);
        return;
    case AK_ERR_SUSPENDED:
        respond_error(x, 403, "account_suspended", "this account is suspended");
        return;
    case AK_ERR_BELOW_COUNT:
        respond_error(x, 409, "max_keys_below_key_count",
                      "max_keys cannot be below the number of keys the account has; delete keys first");
        return;
    case AK_ERR_FORBIDDEN:
        respond_error(x, 403, "forbidden", "a sandbox key can only see and manage sandbox keys");
        return;
    case AK_ERR_LIMIT:
        respond_error(x, 409, "key_limit_reached", "this account has reached its maximum number of API keys");
        return;
    case AK_ERR_PRIMARY_PROTECTED:
        respond_error(x, 409, "primary_key_protected",
                      "the primary key cannot be deleted, deactivated, demoted or given an expiry; make another key primary "
                      "first, or rotate it");
        return;
    case AK_ERR_PRIMARY_INVALID:
        respond_error(x, 409, "primary_key_invalid", "only an active production key without an expiry can be the primary key");
        return;
    case AK_ERR_EXPIRED:
        respond_error(x, 409, "key_expired", "this key has expired, and an expired key stays expired; create or rotate a key");
        return;
    case AK_ERR_LEAKED:
        respond_error(x, 409, "key_leaked",
                      "this key was reported leaked: it stays deactivated and its record is kept; rotate it for a replacement");
        return;
    case AK_ERR_SCOPE:
        respond_error(x, 403, "insufficient_scope",
                      "an API key can only manage and create keys within its own scopes and allowlist, never a primary key");
        return;
    case AK_ERR_INVALID: /* the one rule that needs the key: policy_apply */
        respond_error(x, 422, "validation_error", "refill needs remaining: set a quota to refill");
        return;
    case AK_ERR_ROTATED:
        respond_error(x, 409, "already_rotated", "this key was rotated already; rotate its replacement (rotated_to) instead");
        return;
    case AK_ERR_UNAVAILABLE:
        metrics_store_error();
        respond_header(x, "retry-after", "1");
        respond_error(x, 503, "store_unavailable", "the key store is unavailable; nothing was changed, retry later");
        return;
    case AK_ERR_OUTCOME_UNKNOWN:
        metrics_store_error();
        respond_header(x, "retry-after", "1");
        respond_error(x, 503, "outcome_unknown",
                      "the key store did not confirm whether the change was applied; read the key before retrying");
        return;
    }
    metrics_store_error(); /* AK_ERR_STORE, AK_ERR_NOMEM: nothing a client did */
    respond_error(x, 500, "internal_error", "internal error; nothing was changed");
}

static void client_ip(struct api_handler *api, h2o_req_t *req, char out[NETADDR_TEXT_MAX])
{
    struct netaddr addr;

    client_addr(api, req, &addr);
    netaddr_format(&addr, out);
}

void api_origin_request(struct api_handler *api, struct exchange *x, struct audit_origin *ret)
{
    char ip[NETADDR_TEXT_MAX];

    client_ip(api, x->req, ip);
    snprintf(ret->client_ip, sizeof(ret->client_ip), "%s", ip);
    snprintf(ret->request_id, sizeof(ret->request_id), "%s", exchange_request_id(x));
}

void api_origin_key(struct api_handler *api, struct exchange *x, const struct principal *who, struct audit_origin *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->actor = ACTOR_KEY;
    ret->actor_id = who->key_id;
    snprintf(ret->actor_prefix, sizeof(ret->actor_prefix), "%s", who->prefix);
    api_origin_request(api, x, ret);
}

static void respond_unauthorized(struct exchange *x, int err)
{
    if (err == AK_ERR_STALE) {
        /* Fail closed: keys revoked elsewhere while the store was silent must not pass. */
        respond_header(x, "retry-after", "1");
        respond_error(x, 503, "store_unavailable",
                      "the key store has not been reachable for too long; keys cannot be verified, retry later");
        return;
    }
    respond_header(x, "www-authenticate",
                   err == AK_ERR_MISSING_KEY ? "Bearer realm=\"apikeyd\"" : "Bearer realm=\"apikeyd\", error=\"invalid_token\"");
    if (err == AK_ERR_SUSPENDED) {
        respond_error(x, 403, "account_suspended", "this API key's account is suspended");
        return;
    }
    switch (err) {
    case AK_ERR_MISSING_KEY:
        respond_error(x, 401, "missing_api_key", "send your API key as: Authorization: Bearer <key>");
        return;
    case AK_ERR_KEY_INACTIVE:
        respond_error(x, 401, "key_inactive", "this API key has been deactivated");
        return;
    case AK_ERR_EXPIRED:
        respond_error(x, 401, "key_expired", "this API key has expired");
        return;
    case AK_ERR_LEAKED:
        respond_error(x, 401, "key_leaked", "this API key was reported leaked and has been deactivated");
        return;
    }
    respond_error(x, 401, "invalid_api_key", "the API key is not valid");
}

/* At most this many fields of --client-ip-header are read; past it the request is answered as from the peer. */
#define CLIENT_IP_FIELDS_MAX 16

/*
 * The client's address for throttling: the peer, or, when the peer is a
 * trusted proxy, the right-most untrusted hop of --client-ip-header (the
 * rule of netaddr_client). A peer h2o cannot name counts as ::.
 */
static void client_addr(struct api_handler *api, h2o_req_t *req, struct netaddr *ret)
{
    struct netaddr_span fields[CLIENT_IP_FIELDS_MAX];
    struct sockaddr_storage ss;
    struct netaddr peer = {.b = {0}};
    size_t n = 0;
    ssize_t i = -1;

    if (req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) != 0)
        netaddr_from_sockaddr((struct sockaddr *)&ss, &peer);
    if (api->client_ip_header != NULL) {
        while ((i = h2o_find_header_by_str(&req->headers, api->client_ip_header, api->client_ip_header_len, i)) >= 0) {
            if (n == CLIENT_IP_FIELDS_MAX) {
                n = 0;
                break;
            }
            fields[n++] = (struct netaddr_span){req->headers.entries[i].value.base, req->headers.entries[i].value.len};
        }
        if (i >= 0) {
            *ret = peer;
            return;
        }
    }
    netaddr_client(&peer, fields, n, &api->trusted_proxies, ret);
}

bool api_throttled(struct api_handler *api, struct exchange *x, int err)
{
    struct netaddr addr;
    unsigned wait;
    char *after;

    /* Only guesses count: a missing key is no attempt, an inactive key is a real one. */
    if (api->throttle == NULL || (err != AK_ERR_KEY_UNKNOWN && err != AK_ERR_KEY_FORMAT))
        return false;
    client_addr(api, x->req, &addr);
    if ((wait = throttle_fail(api->throttle, addr.b, sizeof(addr.b), timefmt_now())) == 0)
        return false;
    after = h2o_mem_alloc_pool(&x->req->pool, 16);
    snprintf(after, 16, "%u", wait);
    respond_header(x, "retry-after", after);
    respond_error(x, 429, "too_many_failed_attempts", "too many invalid API keys from this address; retry later");
    return true;
}

static h2o_socket_t *socket_of(h2o_req_t *req)
{
    return req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
}

/*
 * Wipes every Authorization value of the request: runs from the request
 * pool's dispose list, once h2o is done with the request. h2o 2.2 (HTTP/1.1,
 * lib/http1.c) disposes the request (h2o_dispose_request: loggers, then
 * h2o_mem_clear_pool, which calls dispose functions before it frees a
 * chunk) before it consumes the request's bytes from the connection's input
 * buffer (on_send_complete: init_request, then h2o_buffer_consume) or closes
 * the socket (close_connection). So here the header entries, their values
 * (in the pool, or in the input buffer) and the raw request still exist,
 * and nothing reads them any more. A request with a body has its header
 * values copied to the pool; the raw header block, which ends where the body
 * starts, holds the original. No socket (it was handed over, as an h2c
 * upgrade would): touch nothing but the pool.
 */
static void wipe_authorization(void *p)
{
    h2o_req_t *req = *(h2o_req_t **)p;
    h2o_socket_t *sock = socket_of(req);
    const char *in = sock != NULL && sock->input != NULL ? sock->input->bytes : NULL;
    size_t in_len = in != NULL ? sock->input->size : 0, head_len = 0;

    if (in != NULL && req->entity.base != NULL && req->entity.base >= in && req->entity.base <= in + in_len)
        head_len = (size_t)(req->entity.base - in);
    for (size_t i = 0; i < req->headers.size; i++) {
        h2o_iovec_t *v = &req->headers.entries[i].value;
        bool in_buffer = in != NULL && v->base >= in && v->base < in + in_len;
        char *hit;

        if (req->headers.entries[i].name != &H2O_TOKEN_AUTHORIZATION->buf || v->len == 0)
            continue;
        if (in_buffer) {
            OPENSSL_cleanse(v->base, v->len);
            continue;
        }
        if (head_len != 0 && (hit = memmem(in, head_len, v->base, v->len)) != NULL)
            OPENSSL_cleanse(hit, v->len);
        if (sock != NULL)
            OPENSSL_cleanse(v->base, v->len); /* the pool copy */
    }
}

bool api_authorization(struct exchange *x, const char **ret, size_t *ret_len)
{
    h2o_req_t *req = x->req;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    h2o_req_t **cell;

    if (i < 0) {
        *ret = NULL;
        *ret_len = 0;
        return false;
    }
    cell = h2o_mem_alloc_shared(&req->pool, sizeof(*cell), wipe_authorization);
    *cell = req;
    *ret = req->headers.entries[i].value.base;
    *ret_len = req->headers.entries[i].value.len;
    return true;
}

struct client_ctx {
    struct api_handler *api;
    h2o_req_t *req;
};

static void client_of(void *arg, struct netaddr *ret)
{
    struct client_ctx *c = arg;

    client_addr(c->api, c->req, ret);
}

/*
 * Every answer for a key with a limit says where it stands, in the fields of
 * draft-ietf-httpapi-ratelimit-headers, for the gateway to pass on.
 */
static void respond_limits(struct exchange *x, const struct rate_report *rate, const struct quota_report *quota, int64_t now)
{
    struct key_limits l = {.rate_limit = rate->limit, .rate_window = rate->window};
    char *policy, *state;

    if (quota->has) {
        l.has_quota = true;
        l.remaining = quota->left;
        l.refill_amount = quota->refill_amount;
        l.refill_interval = quota->interval;
    }
    if (rate->limit == 0 && !quota->has)
        return;
    policy = h2o_mem_alloc_pool(&x->req->pool, LIMITS_HEADER_MAX);
    state = h2o_mem_alloc_pool(&x->req->pool, LIMITS_HEADER_MAX);
    if (limits_policy_header(&l, now, policy, LIMITS_HEADER_MAX) > 0)
        respond_header(x, "ratelimit-policy", policy);
    if (limits_state_header(&l, now, rate->left, rate->reset, quota->left, state, LIMITS_HEADER_MAX) > 0)
        respond_header(x, "ratelimit", state);
}

/* 429 quota_exhausted: the key's credits are spent; Retry-After is the next refill, if it refills. */
static void respond_quota_exhausted(struct exchange *x, const struct quota_report *quota, int64_t now)
{
    char *after;

    if (quota->has && quota->refill_amount != 0) {
        after = h2o_mem_alloc_pool(&x->req->pool, 24);
        snprintf(after, 24, "%lld", (long long)(refill_next(quota->interval, now) - now));
        respond_header(x, "retry-after", after);
    }
    respond_error(x, 429, "quota_exhausted",
                  quota->has && quota->refill_amount != 0
                      ? "this API key has spent its quota; it refills at the start of the next period (Retry-After)"
                      : "this API key has spent its quota");
}

/* 429 rate_limited: the window's limit is reached; Retry-After is when it ends. */
static void respond_rate_limited(struct exchange *x, const struct rate_report *rate)
{
    char *after = h2o_mem_alloc_pool(&x->req->pool, 24), *msg = h2o_mem_alloc_pool(&x->req->pool, 128);

    snprintf(after, 24, "%lld", (long long)(rate->reset > 0 ? rate->reset : 1));
    snprintf(msg, 128, "this API key may make %lld requests per %d seconds; retry after %s seconds", (long long)rate->limit,
             (int)rate->window, after);
    respond_header(x, "retry-after", after);
    respond_error(x, 429, "rate_limited", msg);
}

/* 403 insufficient_scope, with the scopes the request needed (RFC 6750, section 3.1). */
static void respond_insufficient_scope(struct exchange *x, const char *scope, size_t len)
{
    char *hdr = h2o_mem_alloc_pool(&x->req->pool, len + 64), *p;
    int n = snprintf(hdr, len + 64, "Bearer realm=\"apikeyd\", error=\"insufficient_scope\", scope=\"");

    p = hdr + n;
    /* Well formed by now (scope_required_ok): names of [a-z0-9:._*-], separated by spaces, commas or tabs. */
    for (size_t i = 0, sep = 0; i < len; i++) {
        if (scope[i] == ' ' || scope[i] == ',' || scope[i] == '\t') {
            sep = p != hdr + n;
            continue;
        }
        if (sep) {
            *p++ = ' ';
            sep = 0;
        }
        *p++ = scope[i];
    }
    memcpy(p, "\"", 2);
    respond_header(x, "www-authenticate", hdr);
    respond_error(x, 403, "insufficient_scope", "this API key lacks a scope that this request needs");
}

/*
 * Returns 0 and fills `who`, or answers 401 (or 429, 403, 503) and returns
 * -1. The key is wiped when the request ends. `builtin` is the management
 * scope the route needs of a restricted key (NULL: none); `required` a
 * gateway's X-Required-Scopes (well formed), or NULL.
 */
/* A refusal's reason, as the metrics count verifications. */
static enum metrics_verify verify_outcome(int r)
{
    switch (r) {
    case AK_ERR_MISSING_KEY:
        return MV_MISSING;
    case AK_ERR_KEY_INACTIVE:
        return MV_INACTIVE;
    case AK_ERR_EXPIRED:
        return MV_EXPIRED;
    case AK_ERR_LEAKED:
        return MV_LEAKED;
    case AK_ERR_SUSPENDED:
        return MV_SUSPENDED;
    case AK_ERR_SCOPE:
        return MV_SCOPE;
    case AK_ERR_IP:
        return MV_IP;
    case AK_ERR_RATE_LIMITED:
        return MV_RATE_LIMITED;
    case AK_ERR_QUOTA:
        return MV_QUOTA_EXHAUSTED;
    case AK_ERR_STALE:
    case AK_ERR_UNAVAILABLE:
    case AK_ERR_NOMEM:
        return MV_UNAVAILABLE;
    default:
        return MV_INVALID;
    }
}

static int authenticate_for(struct api_handler *api, struct exchange *x, const char *builtin, const char *required,
                            size_t required_len, uint32_t cost, struct principal *who, struct limits_seen *seen)
{
    struct client_ctx cc = {api, x->req};
    struct auth_req ar = {.client = client_of,
                          .client_ctx = &cc,
                          .builtin = builtin,
                          .required = required,
                          .required_len = required_len,
                          .rate = &seen->rate,
                          .cost = cost,
                          .quota = &seen->quota};
    const char *hdr;
    size_t len;
    int r;

    /* Set for a known key only: an unknown one's answer must carry no limits (never another request's). */
    seen->rate = (struct rate_report){.limit = 0};
    seen->quota = (struct quota_report){.has = false};
    seen->now = timefmt_now();
    api_authorization(x, &hdr, &len);
    r = keys_authenticate(api->keys, hdr, len, seen->now, &ar, who);
    if (r == AK_ERR_QUOTA_LEASE) /* answered once the lease decides (verify_lease) */
        return r;
    if (x->route == MR_VERIFY || x->route == MR_GATEWAY)
        metrics_verify(r == 0 ? MV_VALID : verify_outcome(r));
    respond_limits(x, &seen->rate, &seen->quota, seen->now);
    if (r != 0) {
        if (r == AK_ERR_RATE_LIMITED)
            respond_rate_limited(x, &seen->rate);
        else if (r == AK_ERR_QUOTA)
            respond_quota_exhausted(x, &seen->quota, seen->now);
        else if (r == AK_ERR_SCOPE)
            respond_insufficient_scope(x, builtin != NULL ? builtin : required, builtin != NULL ? strlen(builtin) : required_len);
        else if (r == AK_ERR_IP)
            respond_error(x, 403, "ip_not_allowed", "this API key may not be used from this address");
        else if (!api_throttled(api, x, r))
            respond_unauthorized(x, r);
        return -1;
    }
    memcpy(x->prefix, who->prefix, sizeof(who->prefix));
    return 0;
}

static int authenticate(struct api_handler *api, struct exchange *x, const char *builtin, struct principal *who)
{
    struct limits_seen seen;

    return authenticate_for(api, x, builtin, NULL, 0, 0, who, &seen);
}

bool api_is_json(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    const char *v;
    size_t len, end;

    if (i < 0)
        return false;
    v = req->headers.entries[i].value.base;
    len = req->headers.entries[i].value.len;
    for (end = 0; end < len && v[end] != ';'; end++)
        ;
    while (end > 0 && (v[end - 1] == ' ' || v[end - 1] == '\t'))
        end--;
    return end == 16 && strncasecmp(v, "application/json", 16) == 0;
}

/* Checks size and media type of the body; answers 413/415 and returns -1 when refused. */
int api_check_body(struct exchange *x)
{
    if (x->req->entity.len > VALIDATE_BODY_MAX) {
        respond_error(x, 413, "payload_too_large", "the request body must be at most 64 KiB");
        return -1;
    }
    if (!api_is_json(x->req)) {
        respond_error(x, 415, "unsupported_media_type", "send the request body as Content-Type: application/json");
        return -1;
    }
    return 0;
}

void api_respond_validation(struct exchange *x, int err, const char *msg)
{
    if (err == AK_ERR_JSON)
        respond_error(x, 400, "invalid_json", msg);
    else
        respond_error(x, 422, "validation_error", msg);
}

/*
 * Renders a record that is not in the catalog's encoded form (the result of a
 * write) into a new buffer in `pool`, sized so that it never grows.
 */
void api_render_key(struct render_buf *b, h2o_mem_pool_t *pool, const struct key_rec *rec, const char *extra, size_t extra_len)
{
    json_t *name = json_string(rec->name);
    char *name_json = name != NULL ? json_dumps(name, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    struct key_view v = {.id = rec->id,
                         .type = rec->type,
                         .active = rec->active,
                         .primary = rec->primary,
                         .created_at = rec->created_at,
                         .last_used = rec->last_used,
                         .prefix = rec->prefix,
                         .expires_at = rec->expires_at,
                         .rotated_from = rec->rotated_from,
                         .rotated_to = rec->rotated_to,
                         .leaked_at = rec->leaked_at,
                         .rate_limit = rec->rate_limit,
                         .rate_window = rec->rate_window,
                         .has_quota = rec->has_quota,
                         .remaining = rec->remaining,
                         .refill_amount = rec->refill_amount,
                         .refill_interval = (enum refill_interval)rec->refill_interval,
                         .name_json = name_json != NULL ? name_json : "\"\"",
                         .name_json_len = name_json != NULL ? strlen(name_json) : 2};
    struct guard *g = NULL;

    /* The rules made the texts; on no memory, the key shows as allowing nothing rather than as unrestricted. */
    if (guard_new(rec->has_scopes ? rec->scopes : NULL, rec->has_ips ? rec->allowed_ips : NULL, &g) != 0)
        guard_new("", "", &g);
    v.guard = g;
    render_init(b, pool, render_key_max(&v, extra_len));
    render_key(b, &v, extra, extra_len);
    guard_free(g);
    free(name_json);
    json_decref(name);
}

struct list_ctx {
    struct render_buf *buf;
    bool first;
};

static void list_visit(void *arg, const struct key_view *v)
{
    struct list_ctx *lc = arg;

    if (!lc->first)
        render_raw(lc->buf, ",", 1);
    lc->first = false;
    render_key(lc->buf, v, NULL, 0);
}

static void on_list(struct api_handler *api, struct exchange *x, const struct principal *who)
{
    struct render_buf b;
    struct list_ctx lc = {.buf = &b, .first = true};

    render_init(&b, &x->req->pool, 1024);
    render_raw(&b, "{\"api_keys\":[", 13);
    keys_list_views(api->keys, who, list_visit, &lc);
    render_raw(&b, "]}", 2);
    respond_body(x, 200, b.p, b.len);
}

/* A write to keys in flight (job.h). */
enum job_op { OP_CREATE, OP_UPDATE, OP_DELETE, OP_ROTATE };

struct key_job {
    struct job super; /* first */
    struct api_handler *api;
    enum job_op op;
    struct principal who;
    struct audit_origin origin;
    int64_t id;
    union {
        struct create_req create;
        struct patch_req patch;
        int64_t grace;
    } in;
    int r;
    struct key_rec rec, old;
    char key[KEYFMT_MAX_LEN + 1];
};

/* On the writer thread. */
static void key_job_run(struct job *j)
{
    struct key_job *job = (struct key_job *)j;

    switch (job->op) {
    case OP_CREATE:
        job->r = keys_create(job->api->keys, &job->origin, &job->who, &job->in.create, &job->rec, job->key, sizeof(job->key));
        break;
    case OP_UPDATE:
        job->r = keys_update(job->api->keys, &job->origin, &job->who, job->id, &job->in.patch, &job->rec);
        break;
    case OP_DELETE:
        job->r = keys_delete(job->api->keys, &job->origin, &job->who, job->id);
        break;
    case OP_ROTATE:
        job->r = lifecycle_rotate(job->api->keys, &job->origin, &job->who, job->who.account_id, job->id, job->in.grace, &job->rec,
                                  job->key, sizeof(job->key), &job->old);
        break;
    }
}

void api_answer_created_key(struct exchange *x, const struct key_rec *rec, const char *key)
{
    char extra[KEYFMT_MAX_LEN + 128];
    struct render_buf b;
    int n;

    /* Seed order first (id, name, key_type, api_key, message), then the other key fields. The key is base62. */
    n = snprintf(extra, sizeof(extra), ",\"api_key\":\"%s\",\"message\":\"%s\"", key, KEY_SHOWN_ONCE);
    api_render_key(&b, &x->req->pool, rec, extra, (size_t)n);
    respond_body_secret(x, 201, b.p, b.len);
    /* Copies of zeros the lengths of the two copies that moved the key: memory and vector registers both. */
    wipe_copy(b.p, b.len);
    wipe_copy(extra, (size_t)n);
    OPENSSL_cleanse(extra, sizeof(extra));
}

/* Back on the loop that submitted the job, the request still there. */
static void key_job_answer(struct job *j, struct exchange *x)
{
    struct key_job *job = (struct key_job *)j;
    struct render_buf b;

    if (job->r != 0) {
        api_respond_core_error(x, job->r);
    } else if (job->op == OP_CREATE || job->op == OP_ROTATE) {
        api_answer_created_key(x, &job->rec, job->key);
    } else if (job->op == OP_UPDATE) {
        api_render_key(&b, &x->req->pool, &job->rec, NULL, 0);
        respond_body(x, 200, b.p, b.len);
    } else {
        respond_empty(x, 204);
    }
}

static void key_job_wipe(struct job *j)
{
    struct key_job *job = (struct key_job *)j;

    OPENSSL_cleanse(job->key, sizeof(job->key));
}

static struct key_job *key_job_new(struct api_handler *api, struct exchange *x, const struct principal *who, enum job_op op)
{
    struct key_job *job = job_new(sizeof(*job), x, key_job_run, key_job_answer, key_job_wipe);

    if (job == NULL)
        return NULL;
    job->api = api;
    job->op = op;
    job->who = *who;
    api_origin_key(api, x, who, &job->origin);
    return job;
}

static void on_create(struct api_handler *api, struct exchange *x, const struct principal *who)
{
    char msg[VALIDATE_MSG_MAX];
    struct key_job *job;
    int r;

    if (api_check_body(x) != 0)
        return;
    if ((job = key_job_new(api, x, who, OP_CREATE)) == NULL) {
        api_respond_core_error(x, AK_ERR_NOMEM);
        return;
    }
    if ((r = validate_create(x->req->entity.base, x->req->entity.len, &job->in.create, msg, sizeof(msg))) != 0 ||
        (job->in.create.expires_at != 0 &&
         (r = validate_expiry(job->in.create.expires_at, timefmt_now(), msg, sizeof(msg))) != 0)) {
        api_respond_validation(x, r, msg);
        free(job);
        return;
    }
    /* Refuse before queueing what needs no database to refuse. */
    if (who->type == KEY_TYPE_SANDBOX && job->in.create.type != KEY_TYPE_SANDBOX) {
        api_respond_core_error(x, AK_ERR_FORBIDDEN);
        free(job);
        return;
    }
    job_submit(api->writer, &job->super);
}

static void on_update(struct api_handler *api, struct exchange *x, const struct principal *who, int64_t id)
{
    char msg[VALIDATE_MSG_MAX];
    struct key_job *job;
    int r;

    if ((job = key_job_new(api, x, who, OP_UPDATE)) == NULL) {
        api_respond_core_error(x, AK_ERR_NOMEM);
        return;
    }
    job->id = id;
    if ((r = keys_target(api->keys, who, id, &job->rec)) != 0) {
        api_respond_core_error(x, r);
        goto fail;
    }
    if (api_check_body(x) != 0)
        goto fail;
    if ((r = validate_patch(x->req->entity.base, x->req->entity.len, &job->in.patch, msg, sizeof(msg))) != 0 ||
        (job->in.patch.has_expires_at && job->in.patch.expires_at != 0 &&
         (r = validate_expiry(job->in.patch.expires_at, timefmt_now(), msg, sizeof(msg))) != 0)) {
        api_respond_validation(x, r, msg);
        goto fail;
    }
    job_submit(api->writer, &job->super);
    return;
fail:
    free(job);
}

int api_rotate_body(struct exchange *x, int64_t *ret_grace)
{
    char msg[VALIDATE_MSG_MAX];
    int r;

    /* The body is optional: none at all takes every default. */
    if (x->req->entity.len == 0) {
        *ret_grace = VALIDATE_GRACE_DEFAULT_S;
        return 0;
    }
    if (api_check_body(x) != 0)
        return -1;
    if ((r = validate_rotate(x->req->entity.base, x->req->entity.len, ret_grace, msg, sizeof(msg))) != 0) {
        api_respond_validation(x, r, msg);
        return -1;
    }
    return 0;
}

static void on_rotate(struct api_handler *api, struct exchange *x, const struct principal *who, int64_t id)
{
    struct key_job *job;
    int r;

    if ((job = key_job_new(api, x, who, OP_ROTATE)) == NULL) {
        api_respond_core_error(x, AK_ERR_NOMEM);
        return;
    }
    job->id = id;
    if ((r = keys_target(api->keys, who, id, &job->rec)) != 0) {
        api_respond_core_error(x, r);
        goto fail;
    }
    if (api_rotate_body(x, &job->in.grace) != 0)
        goto fail;
    job_submit(api->writer, &job->super);
    return;
fail:
    free(job);
}

static void on_delete(struct api_handler *api, struct exchange *x, const struct principal *who, int64_t id)
{
    struct key_job *job;
    int r;

    if ((job = key_job_new(api, x, who, OP_DELETE)) == NULL) {
        api_respond_core_error(x, AK_ERR_NOMEM);
        return;
    }
    job->id = id;
    if ((r = keys_target(api->keys, who, id, &job->rec)) != 0) {
        api_respond_core_error(x, r);
        free(job);
        return;
    }
    job_submit(api->writer, &job->super);
}

/* A decimal rendering of `v` that lives as long as the request. */
static const char *pool_i64(h2o_mem_pool_t *pool, int64_t v)
{
    char *buf = h2o_mem_alloc_pool(pool, 24);

    snprintf(buf, 24, "%lld", (long long)v);
    return buf;
}

/* Whether the gateway presented the verify token (constant time in the token's content). */
static bool verify_token_ok(struct api_handler *api, h2o_req_t *req)
{
    ssize_t i;

    if (api->verify_token == NULL)
        return true;
    i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-verify-token"), -1);
    return i >= 0 && req->headers.entries[i].value.len == api->verify_token_len &&
           CRYPTO_memcmp(req->headers.entries[i].value.base, api->verify_token, api->verify_token_len) == 0;
}

/* Whether `s` holds nothing but separators (an empty X-Required-Scopes asks for nothing). */
static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != ',' && s[i] != '\t')
            return false;
    return true;
}

/*
 * Forward authentication for gateways (nginx auth_request, Traefik
 * forwardAuth, Envoy ext_authz): 204 with the key's identity in headers, or
 * the same 401 the API gives. Any method, any path below /v1/auth/verify.
 */
/* 204 with the key's identity, for the gateway to pass on. */
static void verify_admitted(struct exchange *x, const struct principal *who)
{
    char *soon;

    if (who->restricted)
        respond_header(x, "x-key-scopes", h2o_strdup(&x->req->pool, who->scopes, who->scopes_len).base);
    respond_header(x, "x-account-id", pool_i64(&x->req->pool, who->account_id));
    respond_header(x, "x-key-id", pool_i64(&x->req->pool, who->key_id));
    respond_header(x, "x-key-type", key_type_name(who->type));
    respond_header(x, "x-key-prefix", h2o_strdup(&x->req->pool, who->prefix, SIZE_MAX).base);
    /* The gateway (or the API owner) can warn the customer of an expiry this close. */
    if (who->expires_at != 0 && who->expires_at - timefmt_now() <= LIFECYCLE_SOON_S) {
        soon = h2o_mem_alloc_pool(&x->req->pool, TIMEFMT_LEN + 1);
        if (timefmt_format(who->expires_at, soon, TIMEFMT_LEN + 1) == 0)
            respond_header(x, "x-key-expires-at", soon);
    }
    respond_empty(x, 204);
}

/* A verification waiting for its key's quota to lease credits, on the writer thread. */
struct lease_job {
    struct job super;
    struct api_handler *api;
    api_admitted_fn admitted;
    void *arg;
    struct principal who;
    struct limits_seen seen;
    uint32_t cost;
    int result;
};

static void lease_run(struct job *j)
{
    struct lease_job *job = (struct lease_job *)j;

    job->result = keys_quota_settle(job->api->keys, job->who.key_id, job->cost, job->seen.now, &job->seen.quota.left);
}

static void lease_answer(struct job *j, struct exchange *x)
{
    struct lease_job *job = (struct lease_job *)j;

    if (job->cost == 0) /* a prefetch: its request was answered long ago */
        return;
    respond_limits(x, &job->seen.rate, &job->seen.quota, job->seen.now);
    metrics_verify(job->result == 0                  ? MV_VALID
                   : job->result == AK_ERR_QUOTA     ? MV_QUOTA_EXHAUSTED
                   : job->result == AK_ERR_NOT_FOUND ? MV_INVALID
                                                     : MV_UNAVAILABLE);
    if (job->result == 0) {
        memcpy(x->prefix, job->who.prefix, sizeof(job->who.prefix));
        job->admitted(job->api, x, &job->who, job->arg);
    } else if (job->result == AK_ERR_QUOTA) {
        respond_quota_exhausted(x, &job->seen.quota, job->seen.now);
    } else if (job->result == AK_ERR_NOT_FOUND) {
        respond_unauthorized(x, AK_ERR_KEY_UNKNOWN); /* deleted meanwhile */
    } else {
        respond_header(x, "retry-after", "1");
        respond_error(x, 503, "store_unavailable", "the key store is unavailable to lease quota credits; retry later");
    }
}

/* Leases quota credits off the loop: for this request (cost > 0, answered then), or ahead of need (cost 0). */
static int lease_submit(struct api_handler *api, struct exchange *x, const struct principal *who, const struct limits_seen *seen,
                        uint32_t cost, api_admitted_fn admitted, void *arg)
{
    struct lease_job *job = job_new(sizeof(*job), x, lease_run, lease_answer, NULL);

    if (job == NULL)
        return AK_ERR_NOMEM;
    job->api = api;
    job->admitted = admitted;
    job->arg = arg;
    job->who = *who;
    job->seen = *seen;
    job->cost = cost;
    job_submit(api->writer, &job->super);
    return 0;
}

/* X-Cost: the credits a verification spends from its key's quota (default 1). 0 and *ret, or -1 after a 400. */
static int take_cost(struct exchange *x, uint32_t *ret)
{
    ssize_t i = h2o_find_header_by_str(&x->req->headers, H2O_STRLIT("x-cost"), -1);

    *ret = COST_DEFAULT;
    if (i < 0)
        return 0;
    if (h2o_find_header_by_str(&x->req->headers, H2O_STRLIT("x-cost"), i) >= 0 ||
        cost_parse(x->req->headers.entries[i].value.base, x->req->headers.entries[i].value.len, ret) != 0) {
        metrics_verify(MV_BAD_REQUEST);
        respond_error(x, 400, "invalid_cost", "X-Cost must be one header holding an integer from 0 to 1000");
        return -1;
    }
    return 0;
}

/*
 * Forward authentication for gateways (nginx auth_request, Traefik
 * forwardAuth, Envoy ext_authz): 204 with the key's identity in headers, or
 * the same 401 the API gives. Any method, any path below /v1/auth/verify.
 */
static void verify_admitted_cb(struct api_handler *api, struct exchange *x, const struct principal *who, void *arg)
{
    (void)api;
    (void)arg;
    verify_admitted(x, who);
}

static void on_verify(struct api_handler *api, struct exchange *x)
{
    const char *want = NULL;
    size_t want_len = 0;
    uint32_t cost;
    ssize_t i;

    if (!verify_token_ok(api, x->req)) {
        metrics_verify(MV_BAD_REQUEST);
        respond_error(x, 403, "invalid_verify_token", "this endpoint requires the gateway's X-Verify-Token");
        return;
    }
    if ((i = h2o_find_header_by_str(&x->req->headers, H2O_STRLIT("x-required-scopes"), -1)) >= 0) {
        want = x->req->headers.entries[i].value.base;
        want_len = x->req->headers.entries[i].value.len;
        if (h2o_find_header_by_str(&x->req->headers, H2O_STRLIT("x-required-scopes"), i) >= 0 ||
            (!scope_required_ok(want, want_len) && !blank(want, want_len))) {
            metrics_verify(MV_BAD_REQUEST);
            respond_error(x, 400, "invalid_required_scopes",
                          "X-Required-Scopes must be one header of 1 to 50 scope names separated by spaces");
            return;
        }
        if (!scope_required_ok(want, want_len))
            want = NULL; /* empty: nothing required */
    }
    if (take_cost(x, &cost) != 0)
        return;
    api_authenticate_request(api, x, want, want_len, cost, verify_admitted_cb, NULL);
}

void api_authenticate_request(struct api_handler *api, struct exchange *x, const char *want, size_t want_len, uint32_t cost,
                              api_admitted_fn admitted, void *arg)
{
    struct principal who;
    struct limits_seen seen;
    int r;

    if ((r = authenticate_for(api, x, NULL, want, want_len, cost, &who, &seen)) == AK_ERR_QUOTA_LEASE) {
        if (lease_submit(api, x, &who, &seen, cost, admitted, arg) != 0)
            api_respond_core_error(x, AK_ERR_NOMEM);
        return;
    }
    if (r != 0)
        return;
    if (seen.quota.prefetch)
        (void)lease_submit(api, x, &who, &seen, 0, admitted,
                           arg); /* out of memory: the request that finds the credits spent leases */
    admitted(api, x, &who, arg);
}

/*
 * Requests that a proxy in front could read differently than we do (request
 * smuggling) or that are too large: refused, and the connection closed.
 */
static bool refuse_malformed(struct api_handler *api, struct exchange *x)
{
    h2o_req_t *req = x->req;
    h2o_socket_t *sock = socket_of(req);
    size_t total = 0;

    for (size_t i = 0; i < req->headers.size; i++)
        total += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
    if (total > api->max_header_bytes) {
        req->http1_is_persistent = 0;
        respond_error(x, 431, "headers_too_large", "the request headers are too large");
        return true;
    }
    /*
     * Only a request that h2o read a body for carried Content-Length or
     * Transfer-Encoding: the GETs of the hot path skip the scan. The raw header
     * block still starts the connection's input buffer while its request is handled.
     */
    if (req->entity.base != NULL && sock != NULL && sock->input != NULL && sock->input->size >= req->input.method.len &&
        memcmp(sock->input->bytes, req->input.method.base, req->input.method.len) == 0 &&
        !framing_ok(sock->input->bytes, sock->input->size)) {
        req->http1_is_persistent = 0;
        respond_error(x, 400, "bad_request", "a request may carry one Content-Length, or Transfer-Encoding, not both");
        return true;
    }
    return false;
}

/*
 * HTTP/1.1 keeps the connection unless the client says "close". h2o 2.2 keeps
 * it only when a Connection header is absent or names keep-alive, so an h2c
 * upgrade offer (`Connection: Upgrade, HTTP2-Settings`), which is refused,
 * would cost the client its connection.
 */
static void keep_alive_unless_close(h2o_req_t *req)
{
    ssize_t i;

    if (req->version < 0x101 || req->http1_is_persistent || req->conn->ctx->shutdown_requested)
        return;
    if ((i = h2o_find_header(&req->headers, H2O_TOKEN_CONNECTION, -1)) < 0)
        return;
    if (!h2o_contains_token(req->headers.entries[i].value.base, req->headers.entries[i].value.len, H2O_STRLIT("close"), ','))
        req->http1_is_persistent = 1;
}

bool api_begin(struct api_handler *api, struct exchange *x)
{
    keep_alive_unless_close(x->req);
    if (log_get_format() == LOG_JSON) { /* the address the JSON log names: behind trusted proxies, the client's */
        struct netaddr a;
        client_addr(api, x->req, &a);
        netaddr_format(&a, x->client_ip);
    }
    return refuse_malformed(api, x);
}

/* What a route is counted as in the metrics. */
static uint8_t route_label(enum route_id id)
{
    switch (id) {
    case ROUTE_NONE:
        return MR_OTHER;
    case ROUTE_HEALTH:
        return MR_HEALTH;
    case ROUTE_KEYS:
        return MR_KEYS;
    case ROUTE_KEY:
        return MR_KEY;
    case ROUTE_VERIFY:
        return MR_VERIFY;
    case ROUTE_AUDIT:
        return MR_AUDIT;
    case ROUTE_KEY_ROTATE:
        return MR_KEY_ROTATE;
    case ROUTE_LEAKS_GITHUB:
        return MR_LEAKS;
    case ROUTE_KEY_USAGE:
    case ROUTE_USAGE:
        return MR_USAGE;
    default:
        return router_is_admin(id) ? MR_ADMIN : MR_OTHER;
    }
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct api_handler *api = (struct api_handler *)self;
    struct principal who;
    struct exchange x;
    struct route rt;

    exchange_init(&x, req);
    if (router_is_verify(req->path.base, req->path.len))
        x.route = MR_VERIFY;
    if (api_begin(api, &x))
        return 0;
    if (x.route == MR_VERIFY) {
        on_verify(api, &x);
        return 0;
    }
    if (api->dashboard && dashboard_path(req->path_normalized.base, req->path_normalized.len)) {
        x.route = MR_DASHBOARD;
        dashboard_handle(&x, req->path_normalized.base, req->path_normalized.len);
        return 0;
    }
    router_match(req->path_normalized.base, req->path_normalized.len, &rt);
    x.route = route_label(rt.id);
    if (rt.id == ROUTE_NONE) {
        respond_error(&x, 404, "not_found", "no such resource");
        return 0;
    }
    if (rt.id == ROUTE_VERIFY) {
        on_verify(api, &x);
        return 0;
    }
    if (rt.id == ROUTE_HEALTH) {
        if (!api_method_is(req, "GET")) {
            api_respond_method(&x, rt.id);
            return 0;
        }
        json_t *ok = json_pack("{s:s}", "status", "ok");
        respond_json(&x, 200, ok);
        json_decref(ok);
        return 0;
    }
    if (router_is_admin(rt.id)) {
        admin_handle(api, &x, &rt);
        return 0;
    }
    if (rt.id == ROUTE_LEAKS_GITHUB) {
        leaks_handle_github(api, &x);
        return 0;
    }
    if (rt.id == ROUTE_KEY_ROTATE) {
        if (!api_method_is(req, "POST")) {
            api_respond_method(&x, rt.id);
            return 0;
        }
        if (authenticate(api, &x, SCOPE_KEYS_WRITE, &who) != 0)
            return 0;
        if (rt.key_id == 0)
            api_respond_core_error(&x, AK_ERR_NOT_FOUND);
        else
            on_rotate(api, &x, &who, rt.key_id);
        return 0;
    }
    if (rt.id == ROUTE_KEY_USAGE || rt.id == ROUTE_USAGE) {
        if (!api_method_is(req, "GET")) {
            api_respond_method(&x, rt.id);
            return 0;
        }
        if (authenticate(api, &x, SCOPE_KEYS_READ, &who) != 0)
            return 0;
        if (rt.id == ROUTE_KEY_USAGE && rt.key_id == 0)
            api_respond_core_error(&x, AK_ERR_NOT_FOUND);
        else
            usage_handle(api, &x, &who, rt.id == ROUTE_KEY_USAGE ? rt.key_id : 0);
        return 0;
    }
    if (rt.id == ROUTE_AUDIT) {
        if (!api_method_is(req, "GET")) {
            api_respond_method(&x, rt.id);
            return 0;
        }
        if (authenticate(api, &x, SCOPE_AUDIT_READ, &who) == 0)
            audit_handle(api, &x, &who);
        return 0;
    }
    bool list = rt.id == ROUTE_KEYS && api_method_is(req, "GET"), create = rt.id == ROUTE_KEYS && api_method_is(req, "POST"),
         update = rt.id == ROUTE_KEY && api_method_is(req, "PATCH"), del = rt.id == ROUTE_KEY && api_method_is(req, "DELETE");
    if (!list && !create && !update && !del) {
        api_respond_method(&x, rt.id);
        return 0;
    }
    if (authenticate(api, &x, list ? SCOPE_KEYS_READ : SCOPE_KEYS_WRITE, &who) != 0)
        return 0;
    if (list)
        on_list(api, &x, &who);
    else if (create)
        on_create(api, &x, &who);
    else if (rt.key_id == 0)
        api_respond_core_error(&x, AK_ERR_NOT_FOUND);
    else if (update)
        on_update(api, &x, &who, rt.key_id);
    else
        on_delete(api, &x, &who, rt.key_id);
    return 0;
}

struct api_handler *handlers_register(h2o_pathconf_t *path, const struct handlers_config *cfg)
{
    struct api_handler *api = (struct api_handler *)h2o_create_handler(path, sizeof(*api));

    api->super.on_req = on_req;
    api->keys = cfg->keys;
    api->writer = cfg->writer;
    api->throttle = cfg->throttle;
    /* h2o keeps header names in lower case. */
    api->client_ip_header = cfg->client_ip_header != NULL ? h2o_strdup(NULL, cfg->client_ip_header, SIZE_MAX).base : NULL;
    api->client_ip_header_len = cfg->client_ip_header != NULL ? strlen(cfg->client_ip_header) : 0;
    if (api->client_ip_header != NULL)
        h2o_strtolower((char *)api->client_ip_header, api->client_ip_header_len);
    if (cfg->trusted_proxies != NULL)
        api->trusted_proxies = *cfg->trusted_proxies;
    api->max_header_bytes = cfg->max_header_bytes;
    api->verify_token = cfg->verify_token;
    api->verify_token_len = cfg->verify_token != NULL ? strlen(cfg->verify_token) : 0;
    api->dashboard = cfg->dashboard;
    api->usage_retention_days = cfg->usage_retention_days != 0 ? cfg->usage_retention_days : USAGE_RETENTION_DEFAULT_DAYS;
    return api;
}
