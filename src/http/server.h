/*
 * server: the h2o event loops that serve apikeyd, one per thread on
 * SO_REUSEPORT listeners, and the maintenance thread that flushes last_used
 * and follows changes other processes make to the store.
 */
#ifndef APIKEYD_HTTP_SERVER_H
#define APIKEYD_HTTP_SERVER_H

#include <stddef.h>

struct keys;

struct server_config {
    const char *listen;       /* "HOST:PORT", IPv6 as "[::1]:PORT" */
    unsigned threads;         /* event loops; 0: one per core */
    struct keys *keys;        /* borrowed */
    const char *verify_token; /* optional shared secret for /v1/auth/verify */
};

/*
 * Binds, serves until SIGTERM or SIGINT, then stops accepting, lets requests
 * in flight finish, flushes pending last_used and returns 0. Returns an
 * error with one line in `err` if it cannot start.
 */
int server_run(const struct server_config *cfg, char *err, size_t errlen);

#endif
