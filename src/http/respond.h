/*
 * respond: sends apikeyd's answers (JSON bodies, the error envelope, empty
 * 204s) and writes the one access-log line per request.
 *
 * Everything a response needs is allocated from the request's pool. The
 * access log shows the key's display prefix at most, never a key, never a
 * query string. Every response carries the exchange's X-Request-Id, and its
 * log line shows the same id.
 */
#ifndef APIKEYD_HTTP_RESPOND_H
#define APIKEYD_HTTP_RESPOND_H

#include <h2o.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/keyfmt.h"
#include "core/netaddr.h"

/* Longest request id taken from a client; a generated one has RESPOND_REQUEST_ID_GEN_LEN hex digits. */
#define RESPOND_REQUEST_ID_MAX 128
#define RESPOND_REQUEST_ID_GEN_LEN 32

/* One request in flight, from its arrival to its log line. */
struct exchange {
    h2o_req_t *req;
    uint64_t start_ns;
    char prefix[KEYFMT_ADMIN_PREFIX_LEN + 1];    /* the authenticated key's or admin token's prefix, or "" */
    char request_id[RESPOND_REQUEST_ID_MAX + 1]; /* never "" once exchange_init has run */
    char client_ip[NETADDR_TEXT_MAX]; /* the client's address for the JSON log (behind trusted proxies, theirs); "": the peer's */
    uint8_t route;                    /* enum metrics_route: what the request is counted as */
};

/*
 * Whether the request path `path` (`len` bytes, no query string) may hold an
 * API key: after percent-decoding it (either case of hex digits, repeated
 * until nothing changes, as a gateway that decodes twice would), it contains
 * "_prod_" or "_sand_" in any case, or a run of 32 base62 characters (a
 * key's random part). Paths longer than 2 KiB count as holding one.
 */
bool respond_path_has_key(const char *path, size_t len);

/*
 * Writes the form of `path` the access log shows into `out` (NUL-terminated,
 * cut to `outsz`): at most 256 bytes, non-printable bytes as '?', or, when
 * respond_path_has_key says so, "[redacted]" ("/v1/auth/verify/[redacted]"
 * below the verify route).
 */
void respond_log_path(const char *path, size_t len, char *out, size_t outsz);

/*
 * Whether `s` (`len` bytes) may be taken as a request id from a client: 1 to
 * RESPOND_REQUEST_ID_MAX characters of [A-Za-z0-9._:-], and nothing that
 * looks like an API key (it would reach the access log). Pure.
 */
bool respond_request_id_ok(const char *s, size_t len);

/*
 * Starts an exchange for `req`. Its request id is the request's X-Request-Id
 * when that header appears once and respond_request_id_ok accepts it, else a
 * fresh one: 32 lower-case hex digits, unique (a random per-thread seed and a
 * per-thread counter), not guessable from outside the process at a glance,
 * but no secret either.
 */
void exchange_init(struct exchange *x, h2o_req_t *req);

/* The exchange's request id (NUL-terminated, owned by `x`); every respond_* call sends it as X-Request-Id. */
const char *exchange_request_id(const struct exchange *x);

/* Sends `json` (borrowed) with `status`. Falls back to a 500 envelope if it cannot be serialized. */
void respond_json(struct exchange *x, int status, json_t *json);

/* Sends `len` bytes of JSON from `body`, which must live as long as the request (its pool). */
void respond_body(struct exchange *x, int status, const char *body, size_t len);

/* Like respond_body, with Content-Type `type` (static or living as long as the request): the dashboard's files. */
void respond_typed(struct exchange *x, int status, const char *type, const char *body, size_t len);

/* Like respond_body, for a body that holds a key in clear: it is copied to a buffer wiped when the request ends. */
void respond_body_secret(struct exchange *x, int status, const char *body, size_t len);

/* Sends {"error": {"code", "message"}} with `status`. */
void respond_error(struct exchange *x, int status, const char *code, const char *message);

/* Sends an empty answer (204). */
void respond_empty(struct exchange *x, int status);

/*
 * Gives the answers h2o makes by itself before any handler runs (a body over
 * its 1 MiB limit) the same X-Request-Id and access-log line: a filter on the
 * host's `fallback` path, where h2o sends them. Call once, at configuration.
 */
void respond_register_fallback(h2o_pathconf_t *fallback);

/*
 * For an answer someone else makes (the gateway's upstream): adds the
 * exchange's X-Request-Id and writes its access-log line with the status in
 * req->res, before the caller starts the response.
 */
void respond_proxied(struct exchange *x);

/* Adds a response header (lower-case name) before a respond_* call; both strings must outlive the request. */
void respond_header(struct exchange *x, const char *name, const char *value);

/* Draws the calling thread's seed for generated request ids now rather than in its first request. Idempotent. */
void respond_thread_init(void);

/* Writes the calling thread's buffered access-log lines to stderr. Event loops call it after each iteration. */
void respond_log_flush(void);

/* Turns the access log on or off (on by default). */
void respond_set_access_log(int on);

#endif
