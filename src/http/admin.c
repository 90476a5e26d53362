/*
 * admin: the operator API (/v1/admin/..., admin tokens only) and the
 * account's audit log (/v1/account/audit-log). Every request that needs the
 * store runs as a job on the writer thread (job.h): none of these is on the
 * verification path. Pages are rendered there too, with jansson.
 */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/accounts.h"
#include "core/accounts_json.h"
#include "core/admin.h"
#include "core/error.h"
#include "core/keys.h"
#include "core/lifecycle.h"
#include "core/timefmt.h"
#include "core/wipe.h"
#include "http/api.h"
#include "http/job.h"
#include "http/query.h"
#include "http/render.h"

enum admin_op { OP_CREATE, OP_LIST, OP_GET, OP_UPDATE, OP_DELETE, OP_ISSUE, OP_EVENTS, OP_ROTATE };

struct admin_job {
    struct job super; /* first */
    struct api_handler *api;
    enum admin_op op;
    struct audit_origin origin;
    int64_t id;
    union {
        struct account_create_req create;
        struct account_patch_req patch;
        struct issue_req issue;
        int64_t grace;
    } in;
    int64_t key_id; /* OP_ROTATE: the key (id is the account); OP_EVENTS: events about this key only (0: all) */
    /* listings */
    int64_t after;  /* accounts: ids above; events: ids below (0: from the newest) */
    unsigned limit; /* the page asked for */
    char external_id[ACCOUNT_EXTERNAL_ID_MAX + 1];
    char name[KEY_NAME_MAX_BYTES + 1]; /* accounts whose name holds this ("": every account) */
    int64_t account_id;
    char action[AUDIT_NAME_MAX + 1];
    char listing[ACCOUNTS_LISTING_MAX];
    /* results */
    int r;
    struct account_rec acct;
    struct key_rec rec, old;
    char key[KEYFMT_MAX_LEN + 1];
    char *body; /* a rendered page (malloc'd) */
};

/* ---- the jobs ---- */

/* On the writer thread. */
static void admin_run(struct job *j)
{
    struct admin_job *job = (struct admin_job *)j;
    struct keys *k = job->api->keys;
    json_t *page = NULL;

    switch (job->op) {
    case OP_CREATE:
        job->r = accounts_create(k, &job->origin, &job->in.create, &job->acct, &job->rec, job->key, sizeof(job->key));
        return;
    case OP_GET:
        job->r = accounts_get(k, job->id, &job->acct);
        return;
    case OP_UPDATE:
        job->r = accounts_update(k, &job->origin, job->id, &job->in.patch, &job->acct);
        return;
    case OP_DELETE:
        job->r = accounts_delete(k, &job->origin, job->id);
        return;
    case OP_ISSUE:
        job->r = accounts_issue_key(k, &job->origin, job->id, &job->in.issue, &job->rec, job->key, sizeof(job->key));
        return;
    case OP_ROTATE:
        job->r = lifecycle_rotate(k, &job->origin, NULL, job->id, job->key_id, job->in.grace, &job->rec, job->key, sizeof(job->key),
                                  &job->old);
        return;
    case OP_LIST:
    case OP_EVENTS:
        job->r = job->op == OP_LIST ? accounts_json_list(k, job->listing, job->after, job->limit,
                                                         job->external_id[0] != '\0' ? job->external_id : NULL,
                                                         job->name[0] != '\0' ? job->name : NULL, &page)
                                    : accounts_json_events(k, job->listing, job->after, job->limit, job->account_id,
                                                           job->action[0] != '\0' ? job->action : NULL, job->key_id, &page);
        if (job->r == 0 && (job->body = json_dumps(page, JSON_COMPACT)) == NULL)
            job->r = AK_ERR_NOMEM;
        json_decref(page);
        return;
    }
}

static void respond_account(struct exchange *x, struct keys *k, int status, const struct account_rec *a)
{
    json_t *o = accounts_json_account(k, a);

    respond_json(x, status, o);
    json_decref(o);
}

/* 201 {"account": {...}, "api_key": {key object, api_key, message}}: the key is shown once and wiped after. */
static void answer_account_created(struct admin_job *job, struct exchange *x)
{
    json_t *acct = accounts_json_account(job->api->keys, &job->acct);
    char *acct_text = acct != NULL ? json_dumps(acct, JSON_COMPACT) : NULL;
    char extra[KEYFMT_MAX_LEN + 128];
    struct render_buf b;
    char *body;
    size_t len;
    int n;

    json_decref(acct);
    if (acct_text == NULL) {
        api_respond_error_for(x, AK_ERR_NOMEM, "account");
        return;
    }
    n = snprintf(extra, sizeof(extra), ",\"api_key\":\"%s\",\"message\":\"%s\"", job->key, KEY_SHOWN_ONCE);
    api_render_key(&b, &x->req->pool, &job->rec, extra, (size_t)n);
    len = strlen("{\"account\":") + strlen(acct_text) + strlen(",\"api_key\":") + b.len + 1;
    body = h2o_mem_alloc_pool(&x->req->pool, len + 1);
    snprintf(body, len + 1, "{\"account\":%s,\"api_key\":%.*s}", acct_text, (int)b.len, b.p);
    respond_body_secret(x, 201, body, len);
    wipe_copy(body, len); /* memory and the vector registers of the copies (core/wipe.h) */
    wipe_copy(b.p, b.len);
    wipe_copy(extra, (size_t)n);
    OPENSSL_cleanse(extra, sizeof(extra));
    free(acct_text);
}

/* 409 account_exists, with the existing account's id in the error. */
static void answer_exists(struct exchange *x, int64_t account_id)
{
    json_t *o = json_pack("{s:{s:s,s:s,s:I}}", "error", "code", "account_exists", "message",
                          "an account with this external_id exists already", "account_id", (json_int_t)account_id);

    respond_json(x, 409, o);
    json_decref(o);
}

/* Back on the loop, the request still there. */
static void admin_answer(struct job *j, struct exchange *x)
{
    struct admin_job *job = (struct admin_job *)j;
    struct keys *k = job->api->keys;

    if (job->r == AK_ERR_EXISTS && job->op == OP_CREATE) {
        answer_exists(x, job->acct.id);
        return;
    }
    if (job->r != 0) {
        api_respond_error_for(x, job->r,
                              job->op == OP_ROTATE                                ? "API key"
                              : job->op == OP_ISSUE && job->r != AK_ERR_NOT_FOUND ? "API key"
                                                                                  : "account");
        return;
    }
    switch (job->op) {
    case OP_CREATE:
        answer_account_created(job, x);
        return;
    case OP_GET:
    case OP_UPDATE:
        respond_account(x, k, 200, &job->acct);
        return;
    case OP_DELETE:
        respond_empty(x, 204);
        return;
    case OP_ISSUE:
    case OP_ROTATE:
        api_answer_created_key(x, &job->rec, job->key);
        return;
    case OP_LIST:
    case OP_EVENTS: {
        h2o_iovec_t body = h2o_strdup(&x->req->pool, job->body, SIZE_MAX);
        respond_body(x, 200, body.base, body.len);
        return;
    }
    }
}

static void admin_wipe(struct job *j)
{
    struct admin_job *job = (struct admin_job *)j;

    OPENSSL_cleanse(job->key, sizeof(job->key));
    free(job->body);
}

static struct admin_job *admin_job_new(struct api_handler *api, struct exchange *x, enum admin_op op)
{
    struct admin_job *job = job_new(sizeof(*job), x, admin_run, admin_answer, admin_wipe);

    if (job == NULL) {
        api_respond_error_for(x, AK_ERR_NOMEM, "account");
        return NULL;
    }
    job->api = api;
    job->op = op;
    return job;
}

/* ---- query strings ---- */

int api_parse_query(struct exchange *x, struct query_param *params, size_t n)
{
    h2o_req_t *req = x->req;
    size_t len;
    char *buf;
    int r;

    if (req->query_at == SIZE_MAX)
        return 0;
    len = req->path.len - req->query_at - 1;
    buf = h2o_mem_alloc_pool(&req->pool, len + n);
    if ((r = query_parse(req->path.base + req->query_at + 1, len, params, n, buf, len + n)) != QUERY_OK) {
        respond_error(x, 400, "invalid_parameter", query_strerror(r));
        return -1;
    }
    return 0;
}

/* limit=1..ACCOUNTS_LIST_MAX (default ACCOUNTS_LIST_DEFAULT). */
static int take_limit(struct exchange *x, const struct query_param *p, unsigned *ret)
{
    int64_t v;

    *ret = ACCOUNTS_LIST_DEFAULT;
    if (!p->seen)
        return 0;
    if ((v = router_parse_id(p->value, p->len)) < 1 || v > ACCOUNTS_LIST_MAX) {
        respond_error(x, 400, "invalid_parameter", "limit must be an integer from 1 to 1000");
        return -1;
    }
    *ret = (unsigned)v;
    return 0;
}

/* after=<cursor of this listing>. */
static int take_cursor(struct api_handler *api, struct exchange *x, const struct query_param *p, const char *listing, int64_t *ret)
{
    *ret = 0;
    if (!p->seen)
        return 0;
    if (accounts_cursor_decode(api->keys, listing, p->value, p->len, ret) != 0) {
        respond_error(x, 400, "invalid_cursor", "after must be a next_cursor from this same listing, with the same filters");
        return -1;
    }
    return 0;
}

/* ---- routes ---- */

/* Authenticates an admin token into the job's origin; answers 401/429/503 and returns -1 when refused. */
int api_admin_auth(struct api_handler *api, struct exchange *x, struct audit_origin *origin)
{
    const char *hdr;
    size_t len;
    int r;

    api_authorization(x, &hdr, &len);
    memset(origin, 0, sizeof(*origin));
    if ((r = admin_authenticate(api->keys, hdr, len, origin)) == 0) {
        snprintf(x->prefix, sizeof(x->prefix), "%s", origin->actor_prefix);
        api_origin_request(api, x, origin);
        return 0;
    }
    if (api_throttled(api, x, r))
        return -1;
    if (r == AK_ERR_STALE) {
        respond_header(x, "retry-after", "1");
        respond_error(x, 503, "store_unavailable", "the key store has not been reachable for too long; retry later");
        return -1;
    }
    if (r == AK_ERR_MISSING_KEY) {
        respond_header(x, "www-authenticate", "Bearer realm=\"apikeyd-admin\"");
        respond_error(x, 401, "missing_admin_token", "send an admin token as: Authorization: Bearer <token>");
        return -1;
    }
    respond_header(x, "www-authenticate", "Bearer realm=\"apikeyd-admin\", error=\"invalid_token\"");
    respond_error(x, 401, "invalid_admin_token", "the admin token is not valid");
    return -1;
}

/* Starts a job that reads or writes a body: 413/415/400/422 first. Returns the job or NULL when answered. */
static struct admin_job *body_job(struct api_handler *api, struct exchange *x, enum admin_op op)
{
    char msg[VALIDATE_MSG_MAX];
    struct admin_job *job;
    const char *b = x->req->entity.base;
    size_t n = x->req->entity.len;
    int r;

    if (api_check_body(x) != 0 || (job = admin_job_new(api, x, op)) == NULL)
        return NULL;
    r = op == OP_CREATE   ? validate_account_create(b, n, &job->in.create, msg, sizeof(msg))
        : op == OP_UPDATE ? validate_account_patch(b, n, &job->in.patch, msg, sizeof(msg))
                          : validate_issue(b, n, &job->in.issue, msg, sizeof(msg));
    if (r == 0 && op == OP_ISSUE && job->in.issue.key.expires_at != 0)
        r = validate_expiry(job->in.issue.key.expires_at, timefmt_now(), msg, sizeof(msg));
    if (r != 0) {
        api_respond_validation(x, r, msg);
        free(job);
        return NULL;
    }
    return job;
}

static struct admin_job *list_accounts(struct api_handler *api, struct exchange *x)
{
    struct query_param p[] = {{.name = "limit"}, {.name = "after"}, {.name = "external_id"}, {.name = "name"}};
    char msg[VALIDATE_MSG_MAX], listing[ACCOUNTS_LISTING_MAX];
    struct admin_job *job;
    unsigned limit;
    int64_t after;

    if (api_parse_query(x, p, 4) != 0 || take_limit(x, &p[0], &limit) != 0)
        return NULL;
    if (p[3].seen &&
        (p[2].seen || memchr(p[3].value, '\0', p[3].len) != NULL || validate_name(p[3].value, p[3].len, msg, sizeof(msg)) != 0)) {
        respond_error(x, 400, "invalid_parameter", "name is 1 to 100 characters of text, and does not go with external_id");
        return NULL;
    }
    if (p[2].seen &&
        (memchr(p[2].value, '\0', p[2].len) != NULL || validate_external_id(p[2].value, p[2].len, msg, sizeof(msg)) != 0)) {
        respond_error(x, 400, "invalid_parameter", "external_id must be 1 to 255 printable ASCII characters");
        return NULL;
    }
    accounts_listing_name(p[2].seen ? p[2].value : NULL, p[3].seen ? p[3].value : NULL, listing);
    if (take_cursor(api, x, &p[1], listing, &after) != 0 || (job = admin_job_new(api, x, OP_LIST)) == NULL)
        return NULL;
    job->limit = limit;
    job->after = after;
    if (p[2].seen)
        memcpy(job->external_id, p[2].value, p[2].len + 1);
    if (p[3].seen)
        memcpy(job->name, p[3].value, p[3].len + 1);
    memcpy(job->listing, listing, sizeof(listing));
    return job;
}

/*
 * The events of a listing: the admin's (filters from the query: account_id,
 * action) or an account's (account_id fixed; key_id, the events about one
 * of its keys).
 */
static struct admin_job *list_events(struct api_handler *api, struct exchange *x, int64_t account)
{
    struct query_param own[] = {{.name = "limit"}, {.name = "after"}, {.name = "key_id"}};
    struct query_param p[] = {{.name = "limit"}, {.name = "after"}, {.name = "account_id"}, {.name = "action"}};
    char listing[ACCOUNTS_LISTING_MAX];
    enum audit_action action;
    struct admin_job *job;
    unsigned limit;
    int64_t after, account_id = account, key_id = 0;

    if (account != 0) {
        if (api_parse_query(x, own, 3) != 0)
            return NULL;
        if (own[2].seen && (key_id = router_parse_id(own[2].value, own[2].len)) == 0) {
            respond_error(x, 400, "invalid_parameter", "key_id must be a positive integer");
            return NULL;
        }
        p[0] = own[0];
        p[1] = own[1];
    } else if (api_parse_query(x, p, 4) != 0) {
        return NULL;
    }
    if (take_limit(x, &p[0], &limit) != 0)
        return NULL;
    if (p[2].seen && (account_id = router_parse_id(p[2].value, p[2].len)) == 0) {
        respond_error(x, 400, "invalid_parameter", "account_id must be a positive integer");
        return NULL;
    }
    if (p[3].seen && audit_action_parse(p[3].value, p[3].len, &action) != 0) {
        respond_error(x, 400, "invalid_parameter", "action must be one of the audit log's actions (see docs/contract.md)");
        return NULL;
    }
    accounts_events_listing_name(account != 0, account_id, p[3].seen ? p[3].value : NULL, key_id, listing);
    if (take_cursor(api, x, &p[1], listing, &after) != 0 || (job = admin_job_new(api, x, OP_EVENTS)) == NULL)
        return NULL;
    job->limit = limit;
    job->after = after;
    job->account_id = account_id;
    job->key_id = key_id;
    if (p[3].seen)
        snprintf(job->action, sizeof(job->action), "%s", p[3].value);
    memcpy(job->listing, listing, sizeof(listing));
    return job;
}

void admin_handle(struct api_handler *api, struct exchange *x, const struct route *rt)
{
    h2o_req_t *req = x->req;
    bool get = api_method_is(req, "GET"), post = api_method_is(req, "POST"), patch = api_method_is(req, "PATCH"),
         del = api_method_is(req, "DELETE");
    struct audit_origin origin;
    struct admin_job *job = NULL;
    bool allowed;

    switch (rt->id) {
    case ROUTE_ADMIN_ACCOUNTS:
        allowed = get || post;
        break;
    case ROUTE_ADMIN_ACCOUNT:
        allowed = get || patch || del;
        break;
    case ROUTE_ADMIN_ACCOUNT_KEYS:
    case ROUTE_ADMIN_KEY_ROTATE:
    case ROUTE_ADMIN_LEAKED_KEYS:
        allowed = post;
        break;
    default:
        allowed = get;
        break;
    }
    if (!allowed) {
        api_respond_method(x, rt->id);
        return;
    }
    if (api_admin_auth(api, x, &origin) != 0)
        return;
    if ((rt->id == ROUTE_ADMIN_ACCOUNT || rt->id == ROUTE_ADMIN_ACCOUNT_KEYS || rt->id == ROUTE_ADMIN_KEY_ROTATE) &&
        rt->key_id == 0) {
        api_respond_error_for(x, AK_ERR_NOT_FOUND, "account");
        return;
    }
    if (rt->id == ROUTE_ADMIN_KEY_ROTATE && rt->sub_id == 0) {
        api_respond_error_for(x, AK_ERR_NOT_FOUND, "API key");
        return;
    }
    switch (rt->id) {
    case ROUTE_ADMIN_ACCOUNTS:
        job = get ? list_accounts(api, x) : body_job(api, x, OP_CREATE);
        break;
    case ROUTE_ADMIN_ACCOUNT:
        job = get ? admin_job_new(api, x, OP_GET) : patch ? body_job(api, x, OP_UPDATE) : admin_job_new(api, x, OP_DELETE);
        break;
    case ROUTE_ADMIN_ACCOUNT_KEYS:
        job = body_job(api, x, OP_ISSUE);
        break;
    case ROUTE_ADMIN_KEY_ROTATE:
        if ((job = admin_job_new(api, x, OP_ROTATE)) != NULL && api_rotate_body(x, &job->in.grace) != 0) {
            free(job);
            job = NULL;
        }
        if (job != NULL)
            job->key_id = rt->sub_id;
        break;
    case ROUTE_ADMIN_LEAKED_KEYS:
        leaks_handle_admin(api, x, &origin);
        return;
    default:
        job = list_events(api, x, 0);
        break;
    }
    if (job == NULL)
        return;
    job->id = rt->key_id;
    job->origin = origin;
    job_submit(api->writer, &job->super);
}

void audit_handle(struct api_handler *api, struct exchange *x, const struct principal *who)
{
    struct admin_job *job;

    if (who->type != KEY_TYPE_PRODUCTION) {
        respond_error(x, 403, "forbidden", "the audit log is for production keys; a sandbox key cannot read it");
        return;
    }
    if ((job = list_events(api, x, who->account_id)) == NULL)
        return;
    job_submit(api->writer, &job->super);
}
