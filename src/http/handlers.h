/*
 * handlers: the HTTP face of apikeyd: routes each request, authenticates
 * it, validates its body and turns core's answers into status codes and
 * JSON. Never touches SQL; never logs a key.
 */
#ifndef APIKEYD_HTTP_HANDLERS_H
#define APIKEYD_HTTP_HANDLERS_H

#include <h2o.h>
#include <stdbool.h>

struct keys;
struct netaddr_cidrs;
struct throttle;
struct writer;

struct handlers_config {
    struct keys *keys;            /* must outlive the server */
    const char *verify_token;     /* when non-NULL, /v1/auth/verify requires it in X-Verify-Token */
    struct writer *writer;        /* runs creates, updates and deletes off the event loops */
    struct throttle *throttle;    /* failed authentications per client address; NULL: no throttling */
    const char *client_ip_header; /* trust this request header for the client address (behind a gateway); NULL: the peer */
    const struct netaddr_cidrs *trusted_proxies; /* peers whose client_ip_header is believed (copied); NULL: none */
    size_t max_header_bytes;                     /* request headers larger than this in total get 431 */
    bool dashboard;                              /* serve the dashboard at /dashboard/ (dashboard_init done) */
    unsigned usage_retention_days;               /* usage is kept (and may be asked for) this far back; 0: the default */
};

/* Registers apikeyd's handler on `path`; returns it, for the gateway's routes to authenticate with. */
struct api_handler;
struct api_handler *handlers_register(h2o_pathconf_t *path, const struct handlers_config *cfg);

#endif
