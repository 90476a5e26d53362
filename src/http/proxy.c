/*
 * proxy: one gateway request's exchange with its upstream, on the loop
 * that took the request. h2o's HTTP/1 client parses the response (framing,
 * chunked bodies) and its socket pool keeps connections alive between
 * requests; the rest is here. Modelled on h2o 2.2's lib/core/proxy.c, with
 * the differences the gateway needs: its own timeouts and error answers,
 * and back-pressure on the response, which h2o 2.2's proxy lacks (it reads
 * the upstream as fast as it sends, whatever the client takes).
 */
#include "http/proxy.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <h2o/http1client.h>
#include <h2o/socketpool.h>

#include "core/log.h"
#include "http/metrics.h"
#include "http/routes.h"

/* Reading the upstream stops while this much of its response waits for the client, and starts again below half of it. */
#define PAUSE_BYTES (1024 * 1024)

struct proxy_upstream {
    const struct gw_route *route;
    unsigned index;
    h2o_socketpool_t pool;
    pthread_once_t timeout_once; /* the pool's idle timer runs on the first loop that uses it */
};

/* What each event loop keeps for every upstream: the client's context and the timeouts' lists. */
struct proxy_thread {
    h2o_http1client_ctx_t client;
    h2o_timeout_t io, connect, first_byte;
};

static struct proxy_timeouts timeouts = {.connect_ms = 5000, .first_byte_ms = 60000, .idle_ms = 2000};
static _Thread_local struct proxy_thread *mine;

enum phase { PH_CONNECT, PH_HEAD, PH_BODY };

struct proxy_gen {
    h2o_generator_t super;
    struct exchange x; /* x.req: the client's request */
    struct proxy_upstream *up;
    h2o_http1client_t *client; /* NULL once the exchange with the upstream is over */
    h2o_iovec_t bufs[2];       /* the request's head, and its body */
    int is_head;
    enum phase phase;
    h2o_timeout_entry_t timer;
    uint64_t started_ns;
    h2o_buffer_t *rest; /* what the upstream sent once the client side was over */
    h2o_doublebuffer_t sending;
    h2o_socket_cb paused; /* non-NULL: reading the upstream is stopped; the client's read callback to restart it */
    bool body_error;
};

void proxy_init(const struct proxy_timeouts *t)
{
    timeouts = *t;
}

struct proxy_upstream *proxy_upstream_new(const struct gw_route *route, unsigned index)
{
    struct proxy_upstream *u = calloc(1, sizeof(*u));

    if (u == NULL)
        return NULL;
    u->route = route;
    u->index = index;
    u->timeout_once = (pthread_once_t)PTHREAD_ONCE_INIT;
    h2o_socketpool_init_by_hostport(&u->pool, h2o_iovec_init(route->host, strlen(route->host)), route->port, 0, SIZE_MAX);
    return u;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct proxy_thread *thread_state(h2o_context_t *ctx)
{
    uint64_t longest = timeouts.connect_ms > timeouts.first_byte_ms ? timeouts.connect_ms : timeouts.first_byte_ms;

    if (mine != NULL)
        return mine;
    if ((mine = calloc(1, sizeof(*mine))) == NULL)
        return NULL;
    /* h2o's client times every step with one io timeout: the longest of ours, which end sooner where they apply. */
    h2o_timeout_init(ctx->loop, &mine->io, longest);
    h2o_timeout_init(ctx->loop, &mine->connect, timeouts.connect_ms);
    h2o_timeout_init(ctx->loop, &mine->first_byte, timeouts.first_byte_ms);
    mine->client.loop = ctx->loop;
    mine->client.getaddr_receiver = &ctx->receivers.hostinfo_getaddr;
    mine->client.io_timeout = &mine->io;
    mine->client.websocket_timeout = NULL; /* Upgrade is refused before a request gets here */
    mine->client.ssl_ctx = NULL;
    return mine;
}

/* The loop of the pool's idle timer, set by whichever loop gets there first. */
static _Thread_local h2o_loop_t *once_loop;
static _Thread_local struct proxy_upstream *once_up;

static void set_pool_timeout(void)
{
    h2o_socketpool_set_timeout(&once_up->pool, once_loop, timeouts.idle_ms);
}

static void relink(struct proxy_gen *self, h2o_timeout_t *t)
{
    if (h2o_timeout_is_linked(&self->timer))
        h2o_timeout_unlink(&self->timer);
    if (t != NULL)
        h2o_timeout_link(self->x.req->conn->ctx->loop, t, &self->timer);
}

static void cancel_client(struct proxy_gen *self)
{
    if (self->client != NULL) {
        if (self->paused != NULL && self->client->sock != NULL)
            self->paused = NULL; /* the socket goes with the client */
        h2o_http1client_cancel(self->client);
        self->client = NULL;
    }
}

/* One line for the operator: which route's upstream failed, how (h2o's words, or ours), and the request it cost. */
static void log_failure(struct proxy_gen *self, const char *detail)
{
    const struct gw_route *r = self->up->route;

    log_msg(LOG_WARN, "route %s: upstream %s:%u: %s (request %s)", r->prefix, r->host, (unsigned)r->port, detail,
            exchange_request_id(&self->x));
}

/* Answers a failure before the response head: the API's error envelope. */
static void fail(struct proxy_gen *self, enum metrics_upstream_error why, const char *detail, int status, const char *code,
                 const char *msg)
{
    relink(self, NULL);
    metrics_upstream_error(self->up->index, why);
    log_failure(self, detail);
    respond_error(&self->x, status, code, msg);
}

static void do_send(struct proxy_gen *self)
{
    h2o_iovec_t vec;
    h2o_send_state_t state;

    vec = h2o_doublebuffer_prepare(&self->sending, self->client != NULL ? &self->client->sock->input : &self->rest,
                                   self->x.req->preferred_chunk_size);
    if (self->client == NULL && vec.len == self->sending.buf->size && self->rest->size == 0) {
        state = self->body_error ? H2O_SEND_STATE_ERROR : H2O_SEND_STATE_FINAL;
        h2o_send(self->x.req, &vec, vec.len != 0 ? 1 : 0, state);
        return;
    }
    if (vec.len == 0)
        return;
    h2o_send(self->x.req, &vec, 1, H2O_SEND_STATE_IN_PROGRESS);
}

/* The client took what was sent: send more, and read the upstream again once the backlog has drained. */
static void do_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    struct proxy_gen *self = (void *)generator;

    (void)req;
    h2o_doublebuffer_consume(&self->sending);
    if (self->paused != NULL && self->client != NULL && self->client->sock->input->size < PAUSE_BYTES / 2) {
        h2o_socket_read_start(self->client->sock, self->paused);
        self->paused = NULL;
        relink(self, &mine->first_byte);
    }
    do_send(self);
}

static void do_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    struct proxy_gen *self = (void *)generator;

    (void)req;
    relink(self, NULL);
    cancel_client(self);
}

static int on_body(h2o_http1client_t *client, const char *errstr)
{
    struct proxy_gen *self = client->data;

    if (errstr != NULL) {
        relink(self, NULL);
        /* The client is done with the socket: keep what it read, for the client side. */
        h2o_buffer_dispose(&self->rest);
        self->rest = client->sock->input;
        h2o_buffer_init(&client->sock->input, &h2o_socket_buffer_prototype);
        self->client = NULL;
        self->paused = NULL;
        if (errstr != h2o_http1client_error_is_eos) {
            self->body_error = true;
            metrics_upstream_error(self->up->index, MU_RESET);
            log_failure(self, errstr);
        }
    } else if (client->sock->input->size >= PAUSE_BYTES && self->paused == NULL) {
        /* The client is behind: stop reading the upstream until it catches up (do_proceed). */
        self->paused = client->sock->_cb.read;
        h2o_socket_read_stop(client->sock);
        relink(self, NULL);
    } else if (self->paused == NULL) {
        relink(self, &mine->first_byte);
    }
    if (self->sending.bytes_inflight == 0)
        do_send(self);
    return 0;
}

/* The upstream's RateLimit fields give way to apikeyd's, when apikeyd set them (the key has a limit): one answer, one policy. */
static bool shadowed_res(const h2o_header_t *h, bool ours)
{
    return ours && (h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("ratelimit")) ||
                    h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("ratelimit-policy")));
}

static bool hop_by_hop_res(const h2o_header_t *h)
{
    if (h2o_iovec_is_token(h->name)) {
        const h2o_token_t *t = (const void *)h->name;
        return t->proxy_should_drop_for_res || t == H2O_TOKEN_CONTENT_LENGTH || t == H2O_TOKEN_SERVER || t == H2O_TOKEN_DATE;
    }
    return h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("x-request-id")) ||
           h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("proxy-connection"));
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr, int minor_version, int status,
                                       h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers, int rlen)
{
    struct proxy_gen *self = client->data;
    h2o_req_t *req = self->x.req;

    (void)minor_version;
    (void)rlen;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        self->client = NULL;
        if (strcmp(errstr, "I/O timeout") == 0)
            fail(self, MU_TIMEOUT, errstr, 504, "upstream_timeout", "the upstream did not answer in time");
        else if (strncmp(errstr, "I/O error", 9) == 0)
            fail(self, MU_RESET, errstr, 502, "upstream_unavailable", "the upstream closed the connection without answering");
        else
            fail(self, MU_BAD_RESPONSE, errstr, 502, "bad_upstream_response", "the upstream's answer is not valid HTTP/1.1");
        return NULL;
    }
    relink(self, NULL);
    if (status < 200 || status > 599) { /* a 1xx h2o did not take as informational (101): no tunnels here */
        self->client = NULL;
        fail(self, MU_BAD_RESPONSE, "a 1xx status as its final answer", 502, "bad_upstream_response",
             "the upstream answered with an unexpected status");
        return NULL;
    }
    metrics_upstream(self->up->index, now_ns() - self->started_ns);
    bool ours = h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("ratelimit"), -1) >= 0;
    req->res.status = status;
    req->res.reason = h2o_strdup(&req->pool, msg.base, msg.len).base;
    for (size_t i = 0; i != num_headers; i++) {
        h2o_header_t *h = headers + i;
        if (hop_by_hop_res(h)) {
            if (h->name == &H2O_TOKEN_CONTENT_LENGTH->buf &&
                (req->res.content_length = h2o_strtosize(h->value.base, h->value.len)) == SIZE_MAX) {
                self->client = NULL;
                fail(self, MU_BAD_RESPONSE, "invalid content-length", 502, "bad_upstream_response",
                     "the upstream's Content-Length is not valid");
                return NULL;
            }
            continue;
        }
        if (shadowed_res(h, ours))
            continue;
        /* h2o's client discards its input once this returns: copy every header. */
        h2o_iovec_t value = h2o_strdup(&req->pool, h->value.base, h->value.len);
        if (h2o_iovec_is_token(h->name))
            h2o_add_header(&req->pool, &req->res.headers, (const h2o_token_t *)h->name, h->orig_name, value.base, value.len);
        else
            h2o_add_header_by_str(&req->pool, &req->res.headers, h->name->base, h->name->len, 0, h->orig_name, value.base,
                                  value.len);
    }
    respond_proxied(&self->x);
    h2o_start_response(req, &self->super);
    if (errstr == h2o_http1client_error_is_eos) { /* no body */
        self->client = NULL;
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return NULL;
    }
    self->phase = PH_BODY;
    relink(self, &mine->first_byte);
    return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr, h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    struct proxy_gen *self = client->data;

    if (errstr != NULL) {
        self->client = NULL;
        if (strcmp(errstr, "connection timeout") == 0)
            fail(self, MU_TIMEOUT, errstr, 504, "upstream_timeout", "the upstream did not accept a connection in time");
        else
            fail(self, MU_CONNECT, errstr, 502, "upstream_unavailable", "the upstream cannot be reached");
        return NULL;
    }
    *reqbufs = self->bufs;
    *reqbufcnt = self->bufs[1].base != NULL ? 2 : 1;
    *method_is_head = self->is_head;
    self->phase = PH_HEAD;
    relink(self, &mine->first_byte);
    return on_head;
}

static void on_timeout(h2o_timeout_entry_t *entry)
{
    struct proxy_gen *self = H2O_STRUCT_FROM_MEMBER(struct proxy_gen, timer, entry);

    cancel_client(self);
    if (self->phase != PH_BODY) {
        fail(self, MU_TIMEOUT, self->phase == PH_CONNECT ? "connect timeout" : "first-byte timeout", 504, "upstream_timeout",
             self->phase == PH_CONNECT ? "the upstream did not accept a connection in time"
                                       : "the upstream did not answer in time");
        return;
    }
    /* Silent mid-body: the response is cut short (its head is gone already). */
    metrics_upstream_error(self->up->index, MU_TIMEOUT);
    log_failure(self, "silent mid-body; the response was cut short");
    self->body_error = true;
    if (self->sending.bytes_inflight == 0)
        do_send(self);
}

static void on_dispose(void *p)
{
    struct proxy_gen *self = p;

    if (h2o_timeout_is_linked(&self->timer))
        h2o_timeout_unlink(&self->timer);
    cancel_client(self);
    h2o_buffer_dispose(&self->rest);
    h2o_doublebuffer_dispose(&self->sending);
}

/* Whether header `h` of the client's request is one the upstream must not see as it is. */
static bool dropped_req(const h2o_header_t *h, h2o_iovec_t connection, bool keep_authorization)
{
    if (h2o_iovec_is_token(h->name)) {
        const h2o_token_t *t = (const void *)h->name;
        if (t->proxy_should_drop_for_req || t == H2O_TOKEN_HOST || t == H2O_TOKEN_CONTENT_LENGTH || t == H2O_TOKEN_EXPECT ||
            t == H2O_TOKEN_X_FORWARDED_FOR)
            return true;
        if (t == H2O_TOKEN_AUTHORIZATION)
            return !keep_authorization;
    }
    /* The identity the gateway vouches for is its own; a client's claim to one never passes. */
    if (h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("x-account-id")) ||
        h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("x-request-id")) ||
        (h->name->len >= 6 && h2o_lcstris(h->name->base, 6, H2O_STRLIT("x-key-"))))
        return true;
    if (h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("x-forwarded-proto")) ||
        h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("proxy-connection")))
        return true;
    /* The headers Connection names are hop-by-hop too (RFC 9110, 7.6.1). */
    return connection.len != 0 && h2o_contains_token(connection.base, connection.len, h->name->base, h->name->len, ',');
}

/* The peer's address as text, for X-Forwarded-For. */
static size_t peer_text(h2o_req_t *req, char *out)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    size_t n;

    if (len == 0 || (n = h2o_socket_getnumerichost((struct sockaddr *)&ss, len, out)) == SIZE_MAX)
        return 0;
    return n;
}

static h2o_iovec_t build_request(struct proxy_gen *self, h2o_iovec_t path, h2o_iovec_t identity)
{
    h2o_req_t *req = self->x.req;
    const struct gw_route *r = self->up->route;
    h2o_iovec_t connection = {NULL, 0}, xff = {NULL, 0};
    char peer[NI_MAXHOST];
    size_t peer_len = peer_text(req, peer), cap, off = 0;
    ssize_t i;
    char *buf;

    if ((i = h2o_find_header(&req->headers, H2O_TOKEN_CONNECTION, -1)) >= 0)
        connection = req->headers.entries[i].value;
    cap = req->method.len + path.len + strlen(r->host) + peer_len + identity.len + 256;
    for (size_t j = 0; j < req->headers.size; j++) {
        cap += req->headers.entries[j].name->len + req->headers.entries[j].value.len + 4;
        if (req->headers.entries[j].name == &H2O_TOKEN_X_FORWARDED_FOR->buf)
            xff.len += req->headers.entries[j].value.len + 2;
    }
    cap += xff.len;
    buf = h2o_mem_alloc_pool(&req->pool, cap);
#define PUT(s, l)                                                                                                                  \
    do {                                                                                                                           \
        memcpy(buf + off, (s), (l));                                                                                               \
        off += (l);                                                                                                                \
    } while (0)
#define PUTLIT(lit) PUT(lit, sizeof(lit) - 1)
    PUT(req->method.base, req->method.len);
    PUTLIT(" ");
    PUT(path.base, path.len);
    PUTLIT(" HTTP/1.1\r\nconnection: keep-alive\r\nhost: ");
    if (strchr(r->host, ':') != NULL) { /* an IPv6 address */
        PUTLIT("[");
        PUT(r->host, strlen(r->host));
        PUTLIT("]");
    } else {
        PUT(r->host, strlen(r->host));
    }
    if (r->port != 80)
        off += (size_t)sprintf(buf + off, ":%u", (unsigned)r->port);
    PUTLIT("\r\n");
    if (req->entity.base != NULL || h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")) ||
        h2o_memis(req->method.base, req->method.len, H2O_STRLIT("PUT")))
        off += (size_t)sprintf(buf + off, "content-length: %zu\r\n", req->entity.len);
    for (size_t j = 0; j < req->headers.size; j++) {
        const h2o_header_t *h = req->headers.entries + j;
        if (dropped_req(h, connection, r->keep_authorization))
            continue;
        PUT(h->orig_name != NULL ? h->orig_name : h->name->base, h->name->len);
        PUTLIT(": ");
        PUT(h->value.base, h->value.len);
        PUTLIT("\r\n");
    }
    PUT(identity.base, identity.len);
    PUTLIT("x-forwarded-for: ");
    for (size_t j = 0, first = 1; j < req->headers.size; j++) {
        const h2o_header_t *h = req->headers.entries + j;
        if (h->name != &H2O_TOKEN_X_FORWARDED_FOR->buf || h->value.len == 0)
            continue;
        if (!first)
            PUTLIT(", ");
        PUT(h->value.base, h->value.len);
        first = 0;
        xff.base = buf; /* something was written */
    }
    if (xff.base != NULL && peer_len != 0)
        PUTLIT(", ");
    PUT(peer, peer_len);
    PUTLIT("\r\nx-forwarded-proto: ");
    PUT(req->scheme->name.base, req->scheme->name.len);
    PUTLIT("\r\n\r\n");
#undef PUT
#undef PUTLIT
    return h2o_iovec_init(buf, off);
}

void proxy_forward(struct proxy_upstream *u, const struct exchange *x, h2o_iovec_t path, h2o_iovec_t identity)
{
    h2o_req_t *req = x->req;
    struct proxy_thread *t = thread_state(req->conn->ctx);
    struct proxy_gen *self;

    if (t == NULL) {
        struct exchange copy = *x;
        respond_error(&copy, 500, "internal_error", "internal error; the request was not forwarded");
        return;
    }
    once_loop = req->conn->ctx->loop;
    once_up = u;
    pthread_once(&u->timeout_once, set_pool_timeout);
    self = h2o_mem_alloc_shared(&req->pool, sizeof(*self), on_dispose);
    memset(self, 0, sizeof(*self));
    self->super.proceed = do_proceed;
    self->super.stop = do_stop;
    self->x = *x;
    self->up = u;
    self->timer.cb = on_timeout;
    self->is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    self->bufs[0] = build_request(self, path, identity);
    self->bufs[1] = req->entity;
    h2o_buffer_init(&self->rest, &h2o_socket_buffer_prototype);
    h2o_doublebuffer_init(&self->sending, &h2o_socket_buffer_prototype);
    self->started_ns = now_ns();
    self->phase = PH_CONNECT;
    relink(self, &t->connect);
    h2o_http1client_connect_with_pool(&self->client, self, &t->client, &u->pool, on_connect);
}
