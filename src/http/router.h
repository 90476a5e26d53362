/*
 * router: maps a request path to one of apikeyd's routes. Pure: no I/O,
 * no allocation; the path is untrusted and may be any bytes.
 */
#ifndef APIKEYD_HTTP_ROUTER_H
#define APIKEYD_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum route_id {
    ROUTE_NONE = 0,     /* no such resource: 404 */
    ROUTE_HEALTH,       /* /healthz */
    ROUTE_KEYS,         /* /v1/account/api-keys[/] */
    ROUTE_KEY,          /* /v1/account/api-keys/{id}[/] */
    ROUTE_VERIFY,       /* /v1/auth/verify, and anything below it (Envoy appends the original path) */
    ROUTE_AUDIT,        /* /v1/account/audit-log */
    ROUTE_KEY_ROTATE,   /* /v1/account/api-keys/{id}/rotate */
    ROUTE_LEAKS_GITHUB, /* /v1/leaks/github: GitHub secret scanning's reports (signed, no bearer) */
    ROUTE_KEY_USAGE,    /* /v1/account/api-keys/{id}/usage */
    ROUTE_USAGE,        /* /v1/account/usage */
    /* the operator API */
    ROUTE_ADMIN_ACCOUNTS,     /* /v1/admin/accounts */
    ROUTE_ADMIN_ACCOUNT,      /* /v1/admin/accounts/{id} */
    ROUTE_ADMIN_ACCOUNT_KEYS, /* /v1/admin/accounts/{id}/keys */
    ROUTE_ADMIN_AUDIT,        /* /v1/admin/audit-log */
    ROUTE_ADMIN_KEY_ROTATE,   /* /v1/admin/accounts/{id}/keys/{key_id}/rotate */
    ROUTE_ADMIN_LEAKED_KEYS,  /* /v1/admin/leaked-keys */
};

struct route {
    enum route_id id;
    int64_t key_id; /* ROUTE_KEY*, ROUTE_ADMIN_ACCOUNT*: the id, or 0 when the segment is not a positive 64-bit integer */
    int64_t sub_id; /* ROUTE_ADMIN_KEY_ROTATE: the key's id (key_id is the account's), 0 likewise */
};

/* Whether `id` is a route of the operator API (admin tokens only). */
bool router_is_admin(enum route_id id);

/* Matches `path` (`len` bytes, without the query string). Always succeeds; unknown paths give ROUTE_NONE. */
void router_match(const char *path, size_t len, struct route *ret);

/*
 * Whether the raw request path (as sent, query included) is the verify
 * endpoint or below it. Checked before normalization: a gateway that appends
 * the client's path must not let "/v1/auth/verify/../../healthz" become a
 * different route that answers 2xx without a key.
 */
bool router_is_verify(const char *raw, size_t len);

/* Parses a canonical decimal id in 1..INT64_MAX (digits only, no leading zero). Returns the id, or 0 if it is not one. */
int64_t router_parse_id(const char *s, size_t len);

/* The methods a route allows, for 405's Allow header. */
const char *router_allow(enum route_id id);

#endif
