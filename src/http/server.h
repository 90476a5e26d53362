/*
 * server: the h2o event loops that serve apikeyd, one per thread sharing
 * one listening socket (or, with --reuse-port, one SO_REUSEPORT socket
 * each), and the maintenance thread that flushes last_used and follows
 * changes other processes make to the store.
 */
#ifndef APIKEYD_HTTP_SERVER_H
#define APIKEYD_HTTP_SERVER_H

#include "core/leakreport.h"
#include "core/lifecycle.h"
#include "http/proxy.h"
#include <stddef.h>

struct gw_routes;
struct keys;
struct netaddr_cidrs;

struct server_config {
    const char *listen;                          /* "HOST:PORT", IPv6 as "[::1]:PORT" */
    unsigned threads;                            /* event loops; 0: one per core */
    struct keys *keys;                           /* borrowed */
    const char *verify_token;                    /* optional shared secret for /v1/auth/verify */
    const char *tls_cert;                        /* PEM certificate chain; with tls_key, serve HTTPS */
    const char *tls_key;                         /* PEM private key */
    unsigned header_timeout_s;                   /* a request's headers (and body) must arrive within this */
    unsigned idle_timeout_s;                     /* an idle keep-alive connection is closed after this */
    unsigned max_connections;                    /* past it, new connections are closed at once */
    unsigned auth_failures;                      /* failed authentications allowed per client address a minute; 0: no limit */
    const char *client_ip_header;                /* trust this header for the client address (behind a gateway) */
    const struct netaddr_cidrs *trusted_proxies; /* peers whose client_ip_header is believed; borrowed */
    int reuse_port;                              /* SO_REUSEPORT: let other processes share the address */
    unsigned audit_retention_days;               /* audit events older than this are deleted in the background */
    unsigned usage_retention_days;               /* usage per key is kept this long (and may be asked for) */
    struct lifecycle_policy lifecycle;           /* idle keys, expired keys (core/lifecycle.h) */
    const char *leak_report_keys;                /* GitHub's public keys for /v1/leaks/github (reloaded on SIGHUP); NULL: off */
    struct leak_keyring *leak_keyring;           /* that file, loaded (and checked) by the caller; taken */
    const char *test_clock_file;                 /* tests only: a file holding seconds to add to the clock; NULL: off */
    bool dashboard;                              /* serve /dashboard/ (dashboard_init done by the caller) */
    unsigned rate_sync_ms;                       /* a shared store: the rate-limit exchange's interval (ratesync.h) */
    const char *metrics_listen;                  /* "HOST:PORT" for GET /metrics (metrics.h); NULL: off */
    const struct gw_routes *routes;              /* the gateway's routes (routes.h), sorted; NULL or none: no gateway */
    struct proxy_timeouts upstream;              /* the gateway's timeouts with its upstreams */
    size_t max_body_bytes;                       /* with routes: the largest request body (spooled past 4 MiB) */
};

/*
 * Binds, serves until SIGTERM or SIGINT, then stops accepting, lets requests
 * in flight finish, flushes pending last_used and returns 0. Returns an
 * error with one line in `err` if it cannot start.
 */
int server_run(const struct server_config *cfg, char *err, size_t errlen);

#endif
