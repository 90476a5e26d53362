/*
 * respond: response writing and the access log.
 */
#include "http/respond.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/keyfmt.h"

#include "core/log.h"
#include "core/timefmt.h"
#include "http/metrics.h"

static int access_log = 1;

/*
 * Each event-loop thread buffers its log lines and writes them with one
 * write(2) per loop iteration (respond_log_flush), or when the buffer fills:
 * whole lines only, so lines of different threads never interleave.
 */
#define LOG_BUF 16384
static _Thread_local struct {
    size_t len;
    char buf[LOG_BUF];
} logbuf;

void respond_log_flush(void)
{
    size_t off = 0;

    while (off < logbuf.len) {
        ssize_t w = write(STDERR_FILENO, logbuf.buf + off, logbuf.len - off);
        if (w <= 0)
            break; /* stderr is gone: drop the lines rather than block the loop */
        off += (size_t)w;
    }
    logbuf.len = 0;
}

void respond_set_access_log(int on)
{
    access_log = on;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 499:
        return "Client Closed Request"; /* nginx's name: never read by the client, which is gone */
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    }
    return "Internal Server Error";
}

/* Longest path the key check decodes; a longer one is redacted unread (no route of this API is that long). */
#define SCAN_MAX 2048
#define DECODE_ROUNDS 8
#define VERIFY_PREFIX "/v1/auth/verify/"

static int hexval(char c)
{
    unsigned char u = (unsigned char)c;

    if (!isxdigit(u))
        return -1;
    return isdigit(u) ? u - '0' : tolower(u) - 'a' + 10;
}

/* One round of percent-decoding (either case of hex digits; '+' is a plus in a path). Returns the new length. */
static size_t percent_decode(const char *in, size_t len, char *out)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (in[i] == '%' && i + 2 < len && (hi = hexval(in[i + 1])) >= 0 && (lo = hexval(in[i + 2])) >= 0) {
            out[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[n++] = in[i];
        }
    }
    return n;
}

/*
 * Whether `s` holds _prod_ or _sand_ (any case), or a run of base62 as long
 * as a key's random part that is not all hex digits (hex identifiers such as
 * UUIDs stay readable; a random part is all hex once in 10^14).
 */
static bool looks_like_key(const char *s, size_t len)
{
    size_t run = 0;
    bool beyond_hex = false;

    for (size_t i = 0; i < len; i++) {
        if (i + 6 <= len && s[i] == '_' && s[i + 5] == '_' &&
            (strncasecmp(s + i + 1, "prod", 4) == 0 || strncasecmp(s + i + 1, "sand", 4) == 0))
            return true;
        if (!keyfmt_is_base62(s[i])) {
            run = 0;
            beyond_hex = false;
            continue;
        }
        run++;
        beyond_hex = beyond_hex || hexval(s[i]) < 0;
        if (run >= KEYFMT_RANDOM_LEN && beyond_hex)
            return true;
    }
    return false;
}

bool respond_path_has_key(const char *path, size_t len)
{
    char buf[2][SCAN_MAX];
    const char *cur = path;

    if (len > SCAN_MAX)
        return true;
    /* Decode until nothing changes, as a gateway that decodes twice would: %255F is %5F is _. */
    for (int round = 0; round <= DECODE_ROUNDS; round++) {
        size_t n;

        if (looks_like_key(cur, len))
            return true;
        if (memchr(cur, '%', len) == NULL || (n = percent_decode(cur, len, buf[round % 2])) == len)
            return false;
        cur = buf[round % 2];
        len = n;
    }
    return true; /* still encoded after that many rounds: nobody sends that in good faith */
}

void respond_log_path(const char *path, size_t len, char *out, size_t outsz)
{
    size_t n = 0, shown = len > 256 ? 256 : len;

    if (outsz == 0)
        return;
    if (respond_path_has_key(path, len)) {
        /* Keep the route when the raw path names it: the verify endpoint takes any path below it. */
        bool verify = len >= sizeof(VERIFY_PREFIX) - 1 && memcmp(path, VERIFY_PREFIX, sizeof(VERIFY_PREFIX) - 1) == 0;
        snprintf(out, outsz, "%s[redacted]", verify ? VERIFY_PREFIX : "");
        return;
    }
    for (size_t i = 0; i < shown && n + 1 < outsz; i++) {
        char c = path[i];
        out[n++] = (c > 0x20 && c < 0x7f) ? c : '?';
    }
    out[n] = '\0';
}

/*
 * Generated request ids: per thread, a 128-bit seed drawn once from
 * RAND_bytes (not per request: verify is the hot path) and a counter. Each
 * half of an id is the counter moved by one half of the seed through a
 * bijective mix: one thread never repeats an id, two threads repeat each
 * other's once in 2^64, and consecutive ids do not look consecutive.
 */
static _Thread_local struct {
    bool seeded;
    uint64_t seed[2];
    uint64_t count;
} rid_state;

/* splitmix64's finalizer: a bijection on 64 bits. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void rid_seed(void)
{
    if (RAND_bytes((unsigned char *)rid_state.seed, (int)sizeof(rid_state.seed)) != 1) {
        /* No entropy: time, thread and process still keep ids apart; they only get easier to guess. */
        uint64_t t = now_ns();
        rid_state.seed[0] = mix64(t ^ (uint64_t)(uintptr_t)&rid_state);
        rid_state.seed[1] = mix64(t + (uint64_t)getpid());
    }
    rid_state.seeded = true;
}

void respond_thread_init(void)
{
    if (!rid_state.seeded)
        rid_seed();
}

static void put_hex64(char *out, uint64_t v)
{
    static const char HEX[] = "0123456789abcdef";

    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = HEX[v & 0xf];
}

static void request_id_generate(char *out)
{
    respond_thread_init();
    put_hex64(out, mix64(rid_state.seed[0] ^ rid_state.count));
    put_hex64(out + 16, mix64(rid_state.seed[1] + rid_state.count));
    rid_state.count++;
    out[RESPOND_REQUEST_ID_GEN_LEN] = '\0';
}

bool respond_request_id_ok(const char *s, size_t len)
{
    if (len == 0 || len > RESPOND_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!keyfmt_is_base62(c) && c != '.' && c != '_' && c != ':' && c != '-')
            return false;
    }
    return !looks_like_key(s, len);
}

/* The request's own id if it sent exactly one sane X-Request-Id, else a generated one. */
static void request_id_take(h2o_req_t *req, char *out)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    const h2o_iovec_t *v = i >= 0 ? &req->headers.entries[i].value : NULL;

    if (v != NULL && respond_request_id_ok(v->base, v->len) &&
        h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), i) < 0) {
        memcpy(out, v->base, v->len);
        out[v->len] = '\0';
        return;
    }
    request_id_generate(out);
}

void exchange_init(struct exchange *x, h2o_req_t *req)
{
    x->req = req;
    x->start_ns = now_ns();
    x->prefix[0] = '\0';
    x->client_ip[0] = '\0';
    x->route = MR_OTHER;
    request_id_take(req, x->request_id);
}

const char *exchange_request_id(const struct exchange *x)
{
    return x->request_id;
}

/* The request path for the log: no query string (it may hold anything). */
static void log_path(const h2o_req_t *req, char *out, size_t outsz)
{
    respond_log_path(req->path.base, req->query_at != SIZE_MAX ? req->query_at : req->path.len, out, outsz);
}

/* The peer's address as text ("-" when unknown). */
static void peer_ip(h2o_req_t *req, char *out, size_t outsz)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);

    strcpy(out, "-");
    if (len == 0)
        return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)outsz);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)outsz);
}

static void log_line(struct exchange *x, int status)
{
    char when[TIMEFMT_LEN + 1], path[260], epath[260 * 6], method[16], ip[64], line[1024 + 260 * 6 + RESPOND_REQUEST_ID_MAX];
    uint64_t took = now_ns() - x->start_ns;
    double ms = (double)took / 1e6;
    size_t mlen = x->req->method.len < sizeof(method) - 1 ? x->req->method.len : sizeof(method) - 1;
    int n;

    metrics_request(x->route, x->req->method.base, x->req->method.len, status, took);
    if (!access_log)
        return;
    for (size_t i = 0; i < mlen; i++) {
        char c = x->req->method.base[i];
        method[i] = (c > 0x20 && c < 0x7f && c != '"' && c != '\\') ? c : '?';
    }
    method[mlen] = '\0';
    if (timefmt_format(timefmt_now(), when, sizeof(when)) != 0)
        strcpy(when, "-");
    log_path(x->req, path, sizeof(path));
    if (log_get_format() == LOG_JSON) {
        if (x->client_ip[0] != '\0')
            snprintf(ip, sizeof(ip), "%s", x->client_ip);
        else
            peer_ip(x->req, ip, sizeof(ip));
        log_json_escape(path, strlen(path), epath, sizeof(epath));
        n = snprintf(line, sizeof(line),
                     "{\"time\":\"%s\",\"level\":\"info\",\"msg\":\"request\",\"request_id\":\"%s\",\"method\":\"%s\","
                     "\"path\":\"%s\",\"status\":%d,\"key_prefix\":%s%s%s,\"duration_ms\":%.3f,\"client_ip\":\"%s\"}\n",
                     when, x->request_id, method, epath, status, x->prefix[0] != '\0' ? "\"" : "",
                     x->prefix[0] != '\0' ? x->prefix : "null", x->prefix[0] != '\0' ? "\"" : "", ms, ip);
    } else {
        n = snprintf(line, sizeof(line), "%s %s %s %d %s %.3fms rid=%s\n", when, method, path, status,
                     x->prefix[0] != '\0' ? x->prefix : "-", ms, x->request_id);
    }
    if (n <= 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = (int)sizeof(line) - 1;
    if (logbuf.len + (size_t)n > LOG_BUF)
        respond_log_flush();
    memcpy(logbuf.buf + logbuf.len, line, (size_t)n);
    logbuf.len += (size_t)n;
}

/* A copy in the pool: the exchange may be gone before h2o has written the headers. */
static void add_request_id(struct exchange *x)
{
    h2o_req_t *req = x->req;
    size_t len = strlen(x->request_id);

    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL,
                          h2o_strdup(&req->pool, x->request_id, len).base, len);
}

/* Sends the answer: `body` of Content-Type `type` (none on an empty 204). */
void respond_typed(struct exchange *x, int status, const char *type, const char *body, size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_req_t *req = x->req;
    h2o_iovec_t buf = h2o_iovec_init(body, len);

    req->res.status = status;
    req->res.reason = reason(status);
    add_request_id(x);
    if (len != 0 || status != 204) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
        req->res.content_length = len;
    }
    log_line(x, status);
    h2o_start_response(req, &generator);
    /* A HEAD answer carries the headers of the GET answer, Content-Length included, and no body. */
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        len = 0;
    h2o_send(req, &buf, len != 0 ? 1 : 0, H2O_SEND_STATE_FINAL);
}

static void send_body(struct exchange *x, int status, const char *body, size_t len)
{
    respond_typed(x, status, "application/json", body, len);
}

struct secret_buf {
    size_t len;
    char data[];
};

/* Runs when the request's pool is released: the body held a key in clear. */
static void wipe_secret_buf(void *p)
{
    struct secret_buf *b = p;

    OPENSSL_cleanse(b->data, b->len);
}

void respond_json(struct exchange *x, int status, json_t *json)
{
    size_t len = json != NULL ? json_dumpb(json, NULL, 0, JSON_COMPACT) : 0;
    char *body = len != 0 ? h2o_mem_alloc_pool(&x->req->pool, len) : NULL;

    if (body == NULL || json_dumpb(json, body, len, JSON_COMPACT) != len) {
        static const char FAIL[] = "{\"error\":{\"code\":\"internal_error\",\"message\":\"cannot encode the response\"}}";
        send_body(x, 500, FAIL, sizeof(FAIL) - 1);
        return;
    }
    send_body(x, status, body, len);
}

void respond_body(struct exchange *x, int status, const char *body, size_t len)
{
    send_body(x, status, body, len);
}

void respond_body_secret(struct exchange *x, int status, const char *body, size_t len)
{
    struct secret_buf *b = h2o_mem_alloc_shared(&x->req->pool, sizeof(*b) + len, wipe_secret_buf);

    b->len = len;
    memcpy(b->data, body, len);
    send_body(x, status, b->data, len);
}

void respond_error(struct exchange *x, int status, const char *code, const char *message)
{
    json_t *err = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);

    if (err == NULL)
        err = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", "request refused");
    respond_json(x, status, err);
    json_decref(err);
}

void respond_empty(struct exchange *x, int status)
{
    send_body(x, status, "", 0);
}

/* h2o's own error answers, in the API's envelope. */
static const char *fallback_body(int status, size_t *len)
{
    static const char TOO_LARGE[] = "{\"error\":{\"code\":\"payload_too_large\",\"message\":\"the request body is larger than "
                                    "this server accepts\"}}",
                      EXPECT[] = "{\"error\":{\"code\":\"expectation_failed\",\"message\":\"only Expect: 100-continue is "
                                 "understood\"}}",
                      BAD[] = "{\"error\":{\"code\":\"bad_request\",\"message\":\"the request is not valid HTTP/1.1\"}}";

    switch (status) {
    case 413:
        *len = sizeof(TOO_LARGE) - 1;
        return TOO_LARGE;
    case 417:
        *len = sizeof(EXPECT) - 1;
        return EXPECT;
    default:
        *len = sizeof(BAD) - 1;
        return BAD;
    }
}

/* Sends the JSON body in place of the text one h2o wrote. */
static void fallback_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    h2o_iovec_t body;

    (void)bufs;
    (void)bufcnt;
    if (state == H2O_SEND_STATE_IN_PROGRESS) {
        h2o_ostream_send_next(self, req, NULL, 0, state);
        return;
    }
    body.base = (char *)fallback_body(req->res.status, &body.len);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        body.len = 0;
    h2o_ostream_send_next(self, req, &body, body.len != 0 ? 1 : 0, state);
}

/* Runs as h2o starts an answer it made by itself: the request never reached a handler, so it has no exchange yet. */
static void on_fallback_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    struct exchange x;

    (void)self;
    exchange_init(&x, req);
    add_request_id(&x);
    log_line(&x, req->res.status);
    if (req->res.status >= 400) {
        h2o_ostream_t *o = h2o_add_ostream(req, sizeof(*o), slot);
        o->do_send = fallback_send;
        fallback_body(req->res.status, &req->res.content_length);
        h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, H2O_STRLIT("application/json"), 1);
        slot = &o->next;
    }
    h2o_setup_next_ostream(req, slot);
}

void respond_register_fallback(h2o_pathconf_t *fallback)
{
    h2o_create_filter(fallback, sizeof(h2o_filter_t))->on_setup_ostream = on_fallback_ostream;
}

void respond_proxied(struct exchange *x)
{
    add_request_id(x);
    log_line(x, x->req->res.status);
}

void respond_header(struct exchange *x, const char *name, const char *value)
{
    h2o_add_header_by_str(&x->req->pool, &x->req->res.headers, name, strlen(name), 1, NULL, value, strlen(value));
}
