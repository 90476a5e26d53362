/*
 * api: what the route handlers share (handlers.c: keys and verification;
 * admin.c: the operator API and the audit log): the handler's state, the
 * mapping of core's errors to answers, body checks, the caller's origin.
 * Private to the http layer.
 */
#ifndef APIKEYD_HTTP_API_H
#define APIKEYD_HTTP_API_H

#include <h2o.h>
#include <stdbool.h>

#include "core/audit.h"
#include "core/key.h"
#include "core/netaddr.h"
#include "http/respond.h"
#include "http/router.h"

struct api_handler {
    h2o_handler_t super;
    struct keys *keys;
    struct writer *writer;
    struct throttle *throttle;
    const char *client_ip_header;
    size_t client_ip_header_len;
    struct netaddr_cidrs trusted_proxies; /* only these peers are asked for the client's address */
    size_t max_header_bytes;
    const char *verify_token;
    size_t verify_token_len;
    bool dashboard;
    unsigned usage_retention_days; /* how far back usage may be asked for */
};

/* Called with the principal of a key that passed authentication (now, or once its quota lease came back). */
typedef void (*api_admitted_fn)(struct api_handler *api, struct exchange *x, const struct principal *who, void *arg);

/*
 * Authenticates the request's key exactly as /v1/auth/verify does (every
 * rule: active, expiry, suspension, `want` scopes (well formed, or NULL),
 * allowed IPs, rate limit, quota spending `cost`, the failed-attempt
 * throttle) and counts it as a verification. Admitted: calls `admitted`
 * (later, from the loop, if the key's quota had to lease credits first).
 * Refused: answers as the verify endpoint does. RateLimit fields are added
 * to the answer either way.
 */
void api_authenticate_request(struct api_handler *api, struct exchange *x, const char *want, size_t want_len, uint32_t cost,
                              api_admitted_fn admitted, void *arg);

/*
 * What every request goes through first: the client's address for the JSON
 * log, keep-alive unless the client said close, and the refusal (true) of
 * requests that a proxy could read differently (framing) or that are too
 * large (headers).
 */
bool api_begin(struct api_handler *api, struct exchange *x);

/* Whether the request's method is `m`. */
bool api_method_is(h2o_req_t *req, const char *m);

/* Answers an error code from core with the matching status; `what` names the resource of a 404 ("API key", "account"). */
void api_respond_error_for(struct exchange *x, int err, const char *what);

/* The same for keys. */
void api_respond_core_error(struct exchange *x, int err);

/* Whether the request's Content-Type is application/json (parameters allowed). */
bool api_is_json(h2o_req_t *req);

/* Checks size and media type of the body; answers 413/415 and returns -1 when refused. */
int api_check_body(struct exchange *x);

/* Answers a validation failure: 400 invalid_json or 422 validation_error. */
void api_respond_validation(struct exchange *x, int err, const char *msg);

/*
 * Finds the Authorization header (*ret NULL when absent) and arranges for
 * every Authorization value of the request to be wiped when it ends.
 */
bool api_authorization(struct exchange *x, const char **ret, size_t *ret_len);

/*
 * Counts a failed authentication (`err`) against the client's address;
 * answers 429 and returns true when it has failed too often. Only guesses
 * count (AK_ERR_KEY_UNKNOWN, AK_ERR_KEY_FORMAT).
 */
bool api_throttled(struct api_handler *api, struct exchange *x, int err);

/* Answers 405 with the route's Allow header. */
void api_respond_method(struct exchange *x, enum route_id id);

/* The origin of a change made with key `who` through this request (actor, client address, request id). */
void api_origin_key(struct api_handler *api, struct exchange *x, const struct principal *who, struct audit_origin *ret);

/* Completes `ret` (actor already set) with the request's client address and id. */
void api_origin_request(struct api_handler *api, struct exchange *x, struct audit_origin *ret);

/* Answers 201 with a new key, shown once (the body is wiped when the request ends). */
void api_answer_created_key(struct exchange *x, const struct key_rec *rec, const char *key);

/* Renders a key record (not the catalog's encoded form) into a new buffer of `pool`; `extra` goes before the closing brace. */
struct render_buf;
void api_render_key(struct render_buf *b, h2o_mem_pool_t *pool, const struct key_rec *rec, const char *extra, size_t extra_len);

/* Reads a rotation's optional body (none: the default grace). 0, or -1 when it answered 413/415/400/422. */
int api_rotate_body(struct exchange *x, int64_t *ret_grace);

/*
 * Authenticates an admin token: 0 with `origin` filled (actor, address,
 * request id), or -1 when it answered (401, 429, 503). admin.c.
 */
int api_admin_auth(struct api_handler *api, struct exchange *x, struct audit_origin *origin);

/* GitHub secret scanning's reports (POST /v1/leaks/github) and the operators' (POST /v1/admin/leaked-keys); leaks.c. */
void leaks_handle_github(struct api_handler *api, struct exchange *x);
void leaks_handle_admin(struct api_handler *api, struct exchange *x, const struct audit_origin *origin);

/* The operator API (/v1/admin/...), admin.c. */
void admin_handle(struct api_handler *api, struct exchange *x, const struct route *rt);

/*
 * Reads the query string into `params` (names the route knows), decoded in
 * the request's pool. Unknown, repeated or malformed parameters: 400
 * invalid_parameter, -1. admin.c.
 */
struct query_param;
int api_parse_query(struct exchange *x, struct query_param *params, size_t n);

/* Usage per key (GET /v1/account/api-keys/{id}/usage, key_id non-zero) or of the account (GET /v1/account/usage); usage.c. */
void usage_handle(struct api_handler *api, struct exchange *x, const struct principal *who, int64_t key_id);

/* The account's audit log (GET /v1/account/audit-log), for an authenticated key; admin.c. */
void audit_handle(struct api_handler *api, struct exchange *x, const struct principal *who);

#endif
