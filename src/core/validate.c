/*
 * validate: request body checks on top of jansson. jansson guarantees valid
 * UTF-8 and no NUL inside strings; this file adds the product's rules.
 */
#include "core/validate.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/timefmt.h"

/* Unicode White_Space outside the control ranges (which are refused anyway). */
static bool is_space(unsigned cp)
{
    return cp == 0x20 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

int validate_name(const char *s, size_t len, char *msg, size_t msglen)
{
    size_t chars = 0, spaces = 0;

    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        unsigned cp;
        size_t n;

        if (c < 0x80) {
            cp = c;
            n = 1;
        } else if ((c & 0xe0) == 0xc0) {
            cp = c & 0x1fu;
            n = 2;
        } else if ((c & 0xf0) == 0xe0) {
            cp = c & 0x0fu;
            n = 3;
        } else if ((c & 0xf8) == 0xf0) {
            cp = c & 0x07u;
            n = 4;
        } else {
            snprintf(msg, msglen, "name is not valid UTF-8");
            return AK_ERR_INVALID;
        }
        if (i + n > len) {
            snprintf(msg, msglen, "name is not valid UTF-8");
            return AK_ERR_INVALID;
        }
        for (size_t k = 1; k < n; k++) {
            unsigned char cc = (unsigned char)s[i + k];
            if ((cc & 0xc0) != 0x80) {
                snprintf(msg, msglen, "name is not valid UTF-8");
                return AK_ERR_INVALID;
            }
            cp = cp << 6 | (cc & 0x3fu);
        }
        /* The shape is not enough: no overlong forms, surrogates, or code points past U+10FFFF. */
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            snprintf(msg, msglen, "name is not valid UTF-8");
            return AK_ERR_INVALID;
        }
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
            snprintf(msg, msglen, "name must not contain control characters");
            return AK_ERR_INVALID;
        }
        if (is_space(cp))
            spaces++;
        chars++;
        i += n;
    }
    if (chars == 0 || spaces == chars) {
        snprintf(msg, msglen, "name must not be empty");
        return AK_ERR_INVALID;
    }
    if (chars > KEY_NAME_MAX_CHARS) {
        snprintf(msg, msglen, "name must be at most %d characters", KEY_NAME_MAX_CHARS);
        return AK_ERR_INVALID;
    }
    return 0;
}

int validate_json_depth(const char *body, size_t len, int max)
{
    int depth = 0;
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                return AK_ERR_JSON;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return 0;
}

/* Parses `body` into a JSON object. Returns 0 and a new reference, or an error with `msg` set. */
static int parse_object(const char *body, size_t len, json_t **ret, char *msg, size_t msglen)
{
    json_error_t jerr;
    json_t *root;

    if (len > VALIDATE_BODY_MAX) {
        snprintf(msg, msglen, "request body is too large");
        return AK_ERR_INVALID;
    }
    if (body == NULL || len == 0) {
        snprintf(msg, msglen, "request body must be a JSON object");
        return AK_ERR_JSON;
    }
    if (validate_json_depth(body, len, VALIDATE_DEPTH_MAX) != 0) {
        snprintf(msg, msglen, "request body nests deeper than %d levels", VALIDATE_DEPTH_MAX);
        return AK_ERR_JSON;
    }
    if ((root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr)) == NULL) {
        /*
         * Valid JSON with an integer past 64 bits breaks a field's range, not
         * the syntax: the text is valid when it parses with integers as doubles.
         */
        json_error_t again;
        json_t *loose;
        if (json_error_code(&jerr) == json_error_numeric_overflow &&
            (loose = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL,
                                &again)) != NULL) {
            json_decref(loose);
            snprintf(msg, msglen, "a number is out of range (line %d, column %d)", jerr.line, jerr.column);
            return AK_ERR_INVALID;
        }
        snprintf(msg, msglen, "request body is not valid JSON (line %d, column %d)", jerr.line, jerr.column);
        return AK_ERR_JSON;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        snprintf(msg, msglen, "request body must be a JSON object");
        return AK_ERR_INVALID;
    }
    *ret = root;
    return 0;
}

static int take_name(json_t *v, char *out, char *msg, size_t msglen)
{
    const char *s;
    size_t len;
    int r;

    if (!json_is_string(v)) {
        snprintf(msg, msglen, "name must be a string");
        return AK_ERR_INVALID;
    }
    s = json_string_value(v);
    len = json_string_length(v);
    if (len > KEY_NAME_MAX_BYTES) {
        snprintf(msg, msglen, "name must be at most %d characters", KEY_NAME_MAX_CHARS);
        return AK_ERR_INVALID;
    }
    if ((r = validate_name(s, len, msg, msglen)) != 0)
        return r;
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

static int unknown_field(const char *field, const char *allowed, char *msg, size_t msglen)
{
    size_t n = strlen(field);

    /* Field names come from the client: echo only a short, printable ASCII one. */
    for (size_t i = 0; i < n; i++)
        if (field[i] < 0x20 || field[i] > 0x7e || field[i] == '"' || field[i] == '\\')
            n = 0;
    if (n == 0 || n > 40)
        snprintf(msg, msglen, "unknown or read-only field (allowed: %s)", allowed);
    else
        snprintf(msg, msglen, "unknown or read-only field \"%s\" (allowed: %s)", field, allowed);
    return AK_ERR_INVALID;
}

/* A JSON array of strings into `items` / `lens` (at most `max`; more is reported as max + 1). */
static int take_strings(json_t *v, const char *field, const char **items, size_t *lens, size_t max, size_t *ret_n, char *msg,
                        size_t msglen)
{
    size_t n = json_array_size(v);

    if (!json_is_array(v)) {
        snprintf(msg, msglen, "%s must be null or an array of strings", field);
        return AK_ERR_INVALID;
    }
    if (n > max) {
        *ret_n = max + 1;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *item = json_array_get(v, i);
        if (!json_is_string(item)) {
            snprintf(msg, msglen, "%s must be null or an array of strings", field);
            return AK_ERR_INVALID;
        }
        items[i] = json_string_value(item);
        lens[i] = json_string_length(item);
    }
    *ret_n = n;
    return 0;
}

/* A JSON integer member `name` of `o` in [min, max] into *ret; AK_ERR_INVALID naming `field`.`name` otherwise. */
static int take_int_member(json_t *o, const char *field, const char *name, int64_t min, int64_t max, int64_t *ret, char *msg,
                           size_t msglen)
{
    json_t *v = json_object_get(o, name);

    if (v == NULL) {
        snprintf(msg, msglen, "%s.%s is required", field, name);
        return AK_ERR_INVALID;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(msg, msglen, "%s.%s must be an integer from %lld to %lld", field, name, (long long)min, (long long)max);
        return AK_ERR_INVALID;
    }
    *ret = json_integer_value(v);
    return 0;
}

/* "rate_limit": null (none) or {"limit": 1..10^9, "window_seconds": 1..86400}, nothing else. */
static int take_rate(json_t *v, struct policy_req *p, char *msg, size_t msglen)
{
    int64_t limit, window;
    int r;

    p->set_rate = true;
    if (json_is_null(v))
        return 0;
    if (!json_is_object(v) || json_object_size(v) > 2) {
        snprintf(msg, msglen, "rate_limit must be null or {\"limit\": 1..%lld, \"window_seconds\": 1..%d}",
                 (long long)RATE_LIMIT_MAX, RATE_WINDOW_MAX);
        return AK_ERR_INVALID;
    }
    if ((r = take_int_member(v, "rate_limit", "limit", 1, RATE_LIMIT_MAX, &limit, msg, msglen)) != 0 ||
        (r = take_int_member(v, "rate_limit", "window_seconds", 1, RATE_WINDOW_MAX, &window, msg, msglen)) != 0)
        return r;
    p->has_rate = true;
    p->rate_limit = limit;
    p->rate_window = (int32_t)window;
    return 0;
}

/* "remaining": null (unlimited) or 0..2^53-1; "refill": null or {"amount": 1..2^53-1, "interval": "day"|"month"}. */
static int take_quota(const char *field, json_t *v, struct policy_req *p, char *msg, size_t msglen)
{
    json_t *iv;
    int64_t amount;
    int r;

    if (strcmp(field, "remaining") == 0) {
        p->set_quota = true;
        if (json_is_null(v))
            return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > QUOTA_MAX) {
            snprintf(msg, msglen, "remaining must be null (unlimited) or an integer from 0 to %lld", (long long)QUOTA_MAX);
            return AK_ERR_INVALID;
        }
        p->has_quota = true;
        p->remaining = json_integer_value(v);
        return 0;
    }
    p->set_refill = true;
    if (json_is_null(v))
        return 0;
    if (!json_is_object(v) || json_object_size(v) > 2) {
        snprintf(msg, msglen, "refill must be null or {\"amount\": 1..%lld, \"interval\": \"day\" or \"month\"}",
                 (long long)QUOTA_MAX);
        return AK_ERR_INVALID;
    }
    if ((r = take_int_member(v, "refill", "amount", 1, QUOTA_MAX, &amount, msg, msglen)) != 0)
        return r;
    iv = json_object_get(v, "interval");
    if (iv == NULL || !json_is_string(iv) ||
        (p->refill_interval = refill_interval_parse(json_string_value(iv), json_string_length(iv))) == REFILL_NONE) {
        snprintf(msg, msglen, "refill.interval must be \"day\" or \"month\"");
        return AK_ERR_INVALID;
    }
    p->has_refill = true;
    p->refill_amount = amount;
    return 0;
}

/*
 * "scopes": null (unrestricted) or 1..50 scope names; "allowed_ips": null or 1..32 addresses or CIDR blocks;
 * "rate_limit" (take_rate).
 */
static int take_policy(const char *field, json_t *v, struct policy_req *p, bool *ret_taken, char *msg, size_t msglen)
{
    const char *items[SCOPE_LIST_MAX + 1];
    size_t lens[SCOPE_LIST_MAX + 1], n;
    bool scopes = strcmp(field, "scopes") == 0;
    int r;

    if (strcmp(field, "rate_limit") == 0) {
        *ret_taken = true;
        if (p->set_rate) {
            snprintf(msg, msglen, "rate_limit is given twice");
            return AK_ERR_INVALID;
        }
        return take_rate(v, p, msg, msglen);
    }
    if (strcmp(field, "remaining") == 0 || strcmp(field, "refill") == 0) {
        *ret_taken = true;
        if (strcmp(field, "remaining") == 0 ? p->set_quota : p->set_refill) {
            snprintf(msg, msglen, "%s is given twice", field);
            return AK_ERR_INVALID;
        }
        return take_quota(field, v, p, msg, msglen);
    }
    *ret_taken = scopes || strcmp(field, "allowed_ips") == 0;
    if (!*ret_taken)
        return 0;
    if (scopes ? p->set_scopes : p->set_ips) {
        snprintf(msg, msglen, "%s is given twice", field);
        return AK_ERR_INVALID;
    }
    if (scopes)
        p->set_scopes = true;
    else
        p->set_ips = true;
    if (json_is_null(v))
        return 0;
    if ((r = take_strings(v, field, items, lens, scopes ? SCOPE_LIST_MAX : GUARD_IPS_MAX, &n, msg, msglen)) != 0)
        return r;
    if (scopes) {
        if ((r = scope_canonical(items, lens, n, p->scopes, msg, msglen)) == 0)
            p->has_scopes = true;
    } else if ((r = guard_ips_canonical(items, lens, n, p->allowed_ips, msg, msglen)) == 0) {
        p->has_ips = true;
    }
    return r;
}

/* A create body; with `issue` non-NULL, also the operator's "make_primary". */
/* expires_at: an RFC 3339 date-time, or null (0). Its range is checked against the clock by validate_expiry. */
static int take_expires_at(json_t *v, int64_t *ret, char *msg, size_t msglen)
{
    if (json_is_null(v)) {
        *ret = 0;
        return 0;
    }
    if (!json_is_string(v) || timefmt_parse(json_string_value(v), json_string_length(v), ret) != 0) {
        snprintf(msg, msglen, "expires_at must be an RFC 3339 date-time such as \"2030-01-15T10:00:00Z\", or null");
        return AK_ERR_INVALID;
    }
    return 0;
}

int validate_expiry(int64_t t, int64_t now, char *msg, size_t msglen)
{
    if (t <= now) {
        snprintf(msg, msglen, "expires_at must be in the future");
        return AK_ERR_INVALID;
    }
    if (t > now + VALIDATE_EXPIRY_MAX_S) {
        snprintf(msg, msglen, "expires_at must be at most 10 years ahead");
        return AK_ERR_INVALID;
    }
    return 0;
}

int validate_rotate(const char *body, size_t len, int64_t *ret_grace, char *msg, size_t msglen)
{
    const char *field;
    json_t *root = NULL, *v;
    int r;

    *ret_grace = VALIDATE_GRACE_DEFAULT_S;
    if (body == NULL || len == 0)
        return 0; /* no body: every default */
    if ((r = parse_object(body, len, &root, msg, msglen)) != 0)
        return r;
    json_object_foreach(root, field, v)
    {
        if (strcmp(field, "grace_period_seconds") != 0) {
            r = unknown_field(field, "grace_period_seconds", msg, msglen);
            goto out;
        }
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > VALIDATE_GRACE_MAX_S) {
            snprintf(msg, msglen, "grace_period_seconds must be an integer from 0 to %d", VALIDATE_GRACE_MAX_S);
            r = AK_ERR_INVALID;
            goto out;
        }
        *ret_grace = (int64_t)json_integer_value(v);
    }
    r = 0;
out:
    json_decref(root);
    return r;
}

static int parse_create(const char *body, size_t len, struct create_req *ret, struct issue_req *issue, char *msg, size_t msglen)
{
    struct create_req *req = calloc(1, sizeof(*req));
    bool has_name = false, has_type = false, taken;
    const char *field;
    json_t *root = NULL, *v;
    int r;

    if (req == NULL)
        return AK_ERR_NOMEM;
    if ((r = parse_object(body, len, &root, msg, msglen)) != 0) {
        free(req);
        return r;
    }
    json_object_foreach(root, field, v)
    {
        if ((r = take_policy(field, v, &req->policy, &taken, msg, msglen)) != 0)
            goto out;
        if (taken)
            continue;
        if (issue != NULL && strcmp(field, "make_primary") == 0) {
            if (!json_is_boolean(v)) {
                snprintf(msg, msglen, "make_primary must be a boolean");
                r = AK_ERR_INVALID;
                goto out;
            }
            issue->make_primary = json_is_true(v);
            continue;
        }
        if (strcmp(field, "name") == 0) {
            if ((r = take_name(v, req->name, msg, msglen)) != 0)
                goto out;
            has_name = true;
        } else if (strcmp(field, "key_type") == 0) {
            if (!json_is_string(v) || key_type_parse(json_string_value(v), json_string_length(v), &req->type) != 0) {
                snprintf(msg, msglen, "key_type must be \"production\" or \"sandbox\"");
                r = AK_ERR_INVALID;
                goto out;
            }
            has_type = true;
        } else if (strcmp(field, "expires_at") == 0) {
            if ((r = take_expires_at(v, &req->expires_at, msg, msglen)) != 0)
                goto out;
        } else {
            r = unknown_field(field,
                              issue != NULL
                                  ? "name, key_type, expires_at, scopes, allowed_ips, rate_limit, remaining, refill, make_primary"
                                  : "name, key_type, expires_at, scopes, allowed_ips, rate_limit, remaining, refill",
                              msg, msglen);
            goto out;
        }
    }
    if (!has_name) {
        snprintf(msg, msglen, "name is required");
        r = AK_ERR_INVALID;
        goto out;
    }
    if (!has_type) {
        snprintf(msg, msglen, "key_type is required");
        r = AK_ERR_INVALID;
        goto out;
    }
    if (req->policy.has_refill && !req->policy.has_quota) {
        snprintf(msg, msglen, "refill needs remaining: a quota to refill");
        r = AK_ERR_INVALID;
        goto out;
    }
    if (issue != NULL && issue->make_primary && req->type != KEY_TYPE_PRODUCTION) {
        snprintf(msg, msglen, "make_primary needs key_type \"production\"");
        r = AK_ERR_INVALID;
        goto out;
    }
    if (issue != NULL && issue->make_primary && req->policy.has_scopes) {
        snprintf(msg, msglen, "a primary key cannot have scopes: it is always unrestricted");
        r = AK_ERR_INVALID;
        goto out;
    }
    *ret = *req;
    r = 0;
out:
    json_decref(root);
    free(req);
    return r;
}

int validate_create(const char *body, size_t len, struct create_req *ret, char *msg, size_t msglen)
{
    return parse_create(body, len, ret, NULL, msg, msglen);
}

int validate_issue(const char *body, size_t len, struct issue_req *ret, char *msg, size_t msglen)
{
    ret->make_primary = false;
    return parse_create(body, len, &ret->key, ret, msg, msglen);
}

int validate_external_id(const char *s, size_t len, char *msg, size_t msglen)
{
    if (len == 0 || len > ACCOUNT_EXTERNAL_ID_MAX) {
        snprintf(msg, msglen, "external_id must be 1 to %d characters", ACCOUNT_EXTERNAL_ID_MAX);
        return AK_ERR_INVALID;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e) {
            snprintf(msg, msglen, "external_id may hold only printable ASCII characters, no space");
            return AK_ERR_INVALID;
        }
    }
    return 0;
}

/* max_keys: an integer in 1..ACCOUNT_MAX_KEYS_MAX, or (when `nullable`) null for the server's default (0). */
static int take_max_keys(json_t *v, bool nullable, unsigned *ret, char *msg, size_t msglen)
{
    if (nullable && json_is_null(v)) {
        *ret = 0;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > ACCOUNT_MAX_KEYS_MAX) {
        snprintf(msg, msglen, "max_keys must be an integer from 1 to %d%s", ACCOUNT_MAX_KEYS_MAX, nullable ? ", or null" : "");
        return AK_ERR_INVALID;
    }
    *ret = (unsigned)json_integer_value(v);
    return 0;
}

int validate_account_create(const char *body, size_t len, struct account_create_req *ret, char *msg, size_t msglen)
{
    struct account_create_req req = {.max_keys = 0};
    bool has_name = false;
    const char *field;
    json_t *root = NULL, *v;
    int r;

    if ((r = parse_object(body, len, &root, msg, msglen)) != 0)
        return r;
    json_object_foreach(root, field, v)
    {
        if (strcmp(field, "name") == 0) {
            if ((r = take_name(v, req.name, msg, msglen)) != 0)
                goto out;
            has_name = true;
        } else if (strcmp(field, "external_id") == 0) {
            if (json_is_null(v))
                continue;
            if (!json_is_string(v)) {
                snprintf(msg, msglen, "external_id must be a string or null");
                r = AK_ERR_INVALID;
                goto out;
            }
            if ((r = validate_external_id(json_string_value(v), json_string_length(v), msg, msglen)) != 0)
                goto out;
            memcpy(req.external_id, json_string_value(v), json_string_length(v) + 1);
        } else if (strcmp(field, "max_keys") == 0) {
            if ((r = take_max_keys(v, true, &req.max_keys, msg, msglen)) != 0)
                goto out;
        } else {
            r = unknown_field(field, "name, external_id, max_keys", msg, msglen);
            goto out;
        }
    }
    if (!has_name) {
        snprintf(msg, msglen, "name is required");
        r = AK_ERR_INVALID;
        goto out;
    }
    *ret = req;
    r = 0;
out:
    json_decref(root);
    return r;
}

int validate_account_patch(const char *body, size_t len, struct account_patch_req *ret, char *msg, size_t msglen)
{
    struct account_patch_req req = {0};
    const char *field;
    json_t *root = NULL, *v;
    int r;

    if ((r = parse_object(body, len, &root, msg, msglen)) != 0)
        return r;
    json_object_foreach(root, field, v)
    {
        if (strcmp(field, "name") == 0) {
            if ((r = take_name(v, req.name, msg, msglen)) != 0)
                goto out;
            req.has_name = true;
        } else if (strcmp(field, "status") == 0) {
            const char *st = json_string_value(v);
            if (st == NULL || (strcmp(st, "active") != 0 && strcmp(st, "suspended") != 0) || json_string_length(v) != strlen(st)) {
                snprintf(msg, msglen, "status must be \"active\" or \"suspended\"");
                r = AK_ERR_INVALID;
                goto out;
            }
            req.has_status = true;
            req.suspended = st[0] == 's';
        } else if (strcmp(field, "max_keys") == 0) {
            if ((r = take_max_keys(v, true, &req.max_keys, msg, msglen)) != 0)
                goto out;
            req.has_max_keys = true;
        } else {
            r = unknown_field(field, "name, status, max_keys", msg, msglen);
            goto out;
        }
    }
    if (!req.has_name && !req.has_status && !req.has_max_keys) {
        snprintf(msg, msglen, "set at least one of name, status, max_keys");
        r = AK_ERR_INVALID;
        goto out;
    }
    *ret = req;
    r = 0;
out:
    json_decref(root);
    return r;
}

int validate_patch(const char *body, size_t len, struct patch_req *ret, char *msg, size_t msglen)
{
    struct patch_req *req = calloc(1, sizeof(*req));
    bool taken;
    const char *field;
    json_t *root = NULL, *v;
    int r;

    if (req == NULL)
        return AK_ERR_NOMEM;
    if ((r = parse_object(body, len, &root, msg, msglen)) != 0) {
        free(req);
        return r;
    }
    json_object_foreach(root, field, v)
    {
        if ((r = take_policy(field, v, &req->policy, &taken, msg, msglen)) != 0)
            goto out;
        if (taken)
            continue;
        if (strcmp(field, "name") == 0) {
            if ((r = take_name(v, req->name, msg, msglen)) != 0)
                goto out;
            req->has_name = true;
        } else if (strcmp(field, "is_active") == 0 || strcmp(field, "is_primary") == 0) {
            bool active = field[3] == 'a';
            if (!json_is_boolean(v)) {
                snprintf(msg, msglen, "%s must be a boolean", field);
                r = AK_ERR_INVALID;
                goto out;
            }
            if (active) {
                req->has_active = true;
                req->active = json_is_true(v);
            } else {
                req->has_primary = true;
                req->primary = json_is_true(v);
            }
        } else if (strcmp(field, "expires_at") == 0) {
            if ((r = take_expires_at(v, &req->expires_at, msg, msglen)) != 0)
                goto out;
            req->has_expires_at = true;
        } else {
            r = unknown_field(field, "name, is_active, is_primary, expires_at, scopes, allowed_ips, rate_limit, remaining, refill",
                              msg, msglen);
            goto out;
        }
    }
    if (!req->has_name && !req->has_active && !req->has_primary && !req->has_expires_at && !req->policy.set_scopes &&
        !req->policy.set_ips && !req->policy.set_rate && !req->policy.set_quota && !req->policy.set_refill) {
        snprintf(msg, msglen,
                 "set at least one of name, is_active, is_primary, expires_at, scopes, allowed_ips, rate_limit,"
                 " remaining, refill");
        r = AK_ERR_INVALID;
        goto out;
    }
    *ret = *req;
    r = 0;
out:
    json_decref(root);
    free(req);
    return r;
}
