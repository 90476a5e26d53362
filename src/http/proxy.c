/*
 * proxy: one gateway request's exchange with its upstream, on the loop
 * that took the request. h2o's socket pool opens upstream connections
 * (resolving names off the loop), each loop keeps its idle ones alive
 * between requests (idle_conn), h2o's sockets carry the bytes, and
 * upstream.c reads the response, strictly. Modelled on h2o 2.2's
 * lib/core/proxy.c, with what the gateway needs on top: its own timeouts
 * and error answers (502/504 in the API's shape), and back-pressure on the
 * response, which h2o 2.2's proxy lacks (it reads the upstream as fast as
 * it comes, whatever the client takes). h2o's HTTP/1 client is not used:
 * see upstream.h for why.
 */
#include "http/proxy.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <h2o/socketpool.h>

#include "core/log.h"
#include "http/metrics.h"
#include "http/routes.h"
#include "http/upstream.h"

/* Reading the upstream stops while this much of its response waits for the client, and starts again below half of it. */
#define PAUSE_BYTES (1024 * 1024)

struct proxy_upstream {
    const struct gw_route *route;
    unsigned index;
    h2o_socketpool_t pool;
    pthread_once_t timeout_once; /* h2o's pool wants a loop for its timer (unused here: see idle_conn) before its first connect */
};

/*
 * An idle keep-alive connection, kept by the loop that used it last. h2o's
 * socket pool would hand it between loops, at the price of taking it out of
 * the loop and putting it back (epoll_ctl twice, a recv to test it, two
 * allocations) on every request; a loop's own list costs nothing, and the
 * loop sees an upstream close it at once (a read on the idle socket).
 */
struct idle_conn {
    h2o_linklist_t link;
    h2o_socket_t *sock;
    h2o_timeout_entry_t timer;
};

/*
 * Each event loop's timeout lists, its idle connections per upstream (index)
 * and their records (recycled: one is taken and given back per request), the
 * exchanges whose client it watches, and the response head being parsed
 * (3 KiB: in a request's pool it would be a malloc and a free per request, as
 * h2o's pool takes large blocks from malloc).
 */
struct proxy_thread {
    h2o_timeout_t connect, first_byte, idle;
    h2o_linklist_t idle_conns[ROUTES_MAX];
    h2o_mem_recycle_t idle_records;
    h2o_linklist_t watched;
    struct up_head head;
};

static struct proxy_timeouts timeouts = {.connect_ms = 5000, .first_byte_ms = 60000, .idle_ms = 2000};
static _Thread_local struct proxy_thread *mine;

enum phase {
    PH_CONNECT, /* waiting for a new connection */
    PH_SEND,    /* writing the request */
    PH_HEAD,    /* reading the response head */
    PH_BODY,    /* streaming the body */
    PH_DONE,    /* the upstream's part is over */
};

struct proxy_gen {
    h2o_generator_t super;
    struct exchange x; /* x.req: the client's request */
    struct proxy_upstream *up;
    h2o_socketpool_connect_request_t *connecting;
    h2o_socket_t *sock;  /* the upstream connection, while this exchange holds it */
    h2o_iovec_t bufs[2]; /* the request's head, and its body */
    bool is_head;
    enum phase phase;
    h2o_timeout_entry_t timer;
    uint64_t started_ns;
    struct up_body body;
    bool keep_alive;       /* the connection is kept idle for this loop's next request once the body is read */
    bool paused;           /* reading the upstream is stopped until the client catches up */
    bool body_error;       /* the body was cut short: the client's response ends in error */
    h2o_buffer_t *pending; /* body bytes read, not yet handed to the client */
    h2o_doublebuffer_t sending;
    h2o_socket_t *client;   /* the client's connection, while watch_client watches it */
    h2o_linklist_t watched; /* in mine->watched, while it does */
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
    if (mine != NULL)
        return mine;
    if ((mine = calloc(1, sizeof(*mine))) == NULL)
        return NULL;
    h2o_timeout_init(ctx->loop, &mine->connect, timeouts.connect_ms);
    h2o_timeout_init(ctx->loop, &mine->first_byte, timeouts.first_byte_ms);
    h2o_timeout_init(ctx->loop, &mine->idle, timeouts.idle_ms);
    for (size_t i = 0; i < ROUTES_MAX; i++)
        h2o_linklist_init_anchor(&mine->idle_conns[i]);
    mine->idle_records.max = 1024;
    h2o_linklist_init_anchor(&mine->watched);
    return mine;
}

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

/* Takes an idle connection's record off its list and timer, and gives it back to the loop's recycler. */
static void idle_put(struct idle_conn *ic)
{
    h2o_linklist_unlink(&ic->link);
    if (h2o_timeout_is_linked(&ic->timer))
        h2o_timeout_unlink(&ic->timer);
    h2o_mem_free_recycle(&mine->idle_records, ic);
}

static void idle_close(struct idle_conn *ic)
{
    h2o_socket_t *sock = ic->sock;

    idle_put(ic);
    h2o_socket_close(sock);
}

/* An idle connection spoke: the upstream closed it (or sent what nobody asked for). Either way it is done. */
static void on_idle_read(h2o_socket_t *sock, const char *err)
{
    (void)err;
    idle_close(sock->data);
}

static void on_idle_timeout(h2o_timeout_entry_t *entry)
{
    idle_close(H2O_STRUCT_FROM_MEMBER(struct idle_conn, timer, entry));
}

/* Keeps `sock` for the next request of this loop to the same upstream, or closes it. */
static void keep_idle(struct proxy_gen *self, h2o_socket_t *sock)
{
    struct idle_conn *ic = h2o_mem_alloc_recycle(&mine->idle_records, sizeof(*ic));

    memset(ic, 0, sizeof(*ic));
    ic->sock = sock;
    ic->timer.cb = on_idle_timeout;
    sock->data = ic;
    h2o_linklist_insert(mine->idle_conns[self->up->index].next, &ic->link); /* first: the warmest is reused first */
    h2o_timeout_link(h2o_socket_get_loop(sock), &mine->idle, &ic->timer);
    h2o_socket_read_start(sock, on_idle_read);
}

/* The warmest idle connection of this loop to `u`, or NULL. */
static h2o_socket_t *take_idle(struct proxy_upstream *u)
{
    h2o_linklist_t *list = &mine->idle_conns[u->index];
    struct idle_conn *ic;
    h2o_socket_t *sock;

    if (h2o_linklist_is_empty(list))
        return NULL;
    ic = H2O_STRUCT_FROM_MEMBER(struct idle_conn, link, list->next);
    sock = ic->sock;
    idle_put(ic);
    h2o_socket_read_stop(sock);
    return sock;
}

/*
 * Lets go of the upstream: a connection whose exchange ended cleanly (the
 * whole body read, nothing after it) is kept idle (keep_idle), any other is
 * closed. A pending connect is cancelled.
 */
static void release(struct proxy_gen *self, bool reusable)
{
    if (self->connecting != NULL) {
        h2o_socketpool_cancel_connect(self->connecting);
        self->connecting = NULL;
    }
    if (self->sock != NULL) {
        h2o_socket_t *sock = self->sock;
        self->sock = NULL;
        if (reusable && sock->input->size == 0) {
            h2o_socket_read_stop(sock);
            keep_idle(self, sock);
            return;
        }
        h2o_socket_close(sock);
    }
}

/* One line for the operator: which route's upstream failed, how, and the request it cost. */
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
    release(self, false);
    self->phase = PH_DONE;
    metrics_upstream_error(self->up->index, why);
    log_failure(self, detail);
    respond_error(&self->x, status, code, msg);
}

static void do_send(struct proxy_gen *self)
{
    h2o_iovec_t vec = h2o_doublebuffer_prepare(&self->sending, &self->pending, self->x.req->preferred_chunk_size);

    if (self->phase == PH_DONE && vec.len == self->sending.buf->size && self->pending->size == 0) {
        h2o_send(self->x.req, &vec, vec.len != 0 ? 1 : 0, self->body_error ? H2O_SEND_STATE_ERROR : H2O_SEND_STATE_FINAL);
        return;
    }
    if (vec.len != 0)
        h2o_send(self->x.req, &vec, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void on_body_read(h2o_socket_t *sock, const char *err);

/* The client took what was sent: send more, and read the upstream again once the backlog has drained. */
static void do_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    struct proxy_gen *self = (void *)generator;

    (void)req;
    h2o_doublebuffer_consume(&self->sending);
    if (self->paused && self->sock != NULL && self->pending->size < PAUSE_BYTES / 2) {
        self->paused = false;
        h2o_socket_read_start(self->sock, on_body_read);
        relink(self, &mine->first_byte);
    }
    do_send(self);
}

/* The client went away (or the request ended early): the upstream connection cannot be reused mid-exchange. */
static void do_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    struct proxy_gen *self = (void *)generator;

    (void)req;
    relink(self, NULL);
    release(self, false);
    self->phase = PH_DONE;
}

/* The body ended (cleanly or not): the upstream's part is over. */
static void body_over(struct proxy_gen *self, bool reusable)
{
    relink(self, NULL);
    release(self, reusable && self->keep_alive);
    self->phase = PH_DONE;
}

static void on_body_read(h2o_socket_t *sock, const char *err)
{
    struct proxy_gen *self = sock->data;
    size_t data = 0, extra = 0;

    if (err == NULL && sock->input->size != 0) {
        if (upstream_body_take(&self->body, sock->input->bytes, sock->input->size, &data, &extra) != 0) {
            metrics_upstream_error(self->up->index, MU_BAD_RESPONSE);
            log_failure(self, "a malformed chunked body; the response was cut short");
            self->body_error = true;
            h2o_buffer_consume(&sock->input, sock->input->size);
            body_over(self, false);
            goto send;
        }
        if (self->pending->size == 0 && extra == 0 && data == sock->input->size) {
            /* All of it is body: hand the buffer over instead of copying it. */
            h2o_buffer_t *t = self->pending;
            self->pending = sock->input;
            sock->input = t;
        } else {
            if (data != 0) {
                h2o_iovec_t room = h2o_buffer_reserve(&self->pending, data);
                memcpy(room.base, sock->input->bytes, data);
                self->pending->size += data;
            }
            h2o_buffer_consume(&sock->input, sock->input->size);
        }
        if (self->body.done) {
            body_over(self, extra == 0); /* bytes after the body: the upstream is confused; never reuse it */
            goto send;
        }
    }
    if (err != NULL) {
        if (self->body.framing == UF_CLOSE) {
            body_over(self, false); /* the normal end of such a body */
        } else {
            metrics_upstream_error(self->up->index, MU_RESET);
            log_failure(self, "closed in the middle of the body; the response was cut short");
            self->body_error = true;
            body_over(self, false);
        }
        goto send;
    }
    if (self->pending->size >= PAUSE_BYTES) {
        /* The client is behind: stop reading the upstream until it catches up (do_proceed). Its silence is not the upstream's. */
        self->paused = true;
        h2o_socket_read_stop(sock);
        relink(self, NULL);
    } else {
        relink(self, &mine->first_byte);
    }
send:
    if (self->sending.bytes_inflight == 0)
        do_send(self);
}

/* The upstream's RateLimit fields give way to apikeyd's, when apikeyd set them (the key has a limit): one answer, one policy. */
static bool shadowed_res(h2o_iovec_t name, bool ours)
{
    return ours && (h2o_memis(name.base, name.len, H2O_STRLIT("ratelimit")) ||
                    h2o_memis(name.base, name.len, H2O_STRLIT("ratelimit-policy")));
}

/* Whether a response header stays with this hop: framing and connection management, and what apikeyd sets itself. */
static bool hop_by_hop_res(h2o_iovec_t name, const struct up_head *head)
{
#define N(s)                                                                                                                       \
    {                                                                                                                              \
        H2O_STRLIT(s)                                                                                                              \
    }
    static const h2o_iovec_t names[] = {N("connection"), N("keep-alive"), N("proxy-connection"), N("transfer-encoding"),
                                        N("upgrade"),    N("te"),         N("trailer"),          N("content-length"),
                                        N("server"),     N("date"),       N("x-request-id"),     N("proxy-authenticate")};
#undef N

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (h2o_memis(name.base, name.len, names[i].base, names[i].len))
            return true;
    /* The headers the upstream's Connection names are hop-by-hop too (RFC 9110, 7.6.1); name is in lower case. */
    return head->connection != NULL && h2o_contains_token(head->connection, head->connection_len, name.base, name.len, ',');
}

/* The response head is in: check it, copy it to the client's response, start streaming the body. */
static void start_response(struct proxy_gen *self, h2o_socket_t *sock, struct up_head *head)
{
    h2o_req_t *req = self->x.req;
    bool ours = h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("ratelimit"), -1) >= 0;

    metrics_upstream(self->up->index, now_ns() - self->started_ns);
    req->res.status = head->status;
    req->res.reason = h2o_strdup(&req->pool, head->reason, head->reason_len).base;
    for (size_t i = 0; i < head->num_headers; i++) {
        const struct phr_header *h = &head->headers[i];
        /* The head's bytes are consumed below: copy every header kept (its name in lower case, as h2o keeps names). */
        h2o_iovec_t name = h2o_strdup(&req->pool, h->name, h->name_len);
        h2o_strtolower(name.base, name.len);
        if (hop_by_hop_res(name, head) || shadowed_res(name, ours))
            continue;
        h2o_add_header_by_str(&req->pool, &req->res.headers, name.base, name.len, 1,
                              h2o_strdup(&req->pool, h->name, h->name_len).base,
                              h2o_strdup(&req->pool, h->value, h->value_len).base, h->value_len);
    }
    if (head->framing == UF_LENGTH || (head->framing == UF_NONE && self->is_head && head->content_length != 0))
        req->res.content_length = head->content_length;
    else if (head->framing == UF_NONE && !self->is_head)
        req->res.content_length = 0; /* 204, 304: no body, and none to frame */
    upstream_body_init(&self->body, head);
    self->keep_alive = head->keep_alive;
    h2o_buffer_consume(&sock->input, head->head_len);
    self->phase = PH_BODY;
    respond_proxied(&self->x);
    h2o_start_response(req, &self->super);
    if (self->body.done && sock->input->size == 0) {
        body_over(self, true);
        do_send(self);
        return;
    }
    h2o_socket_read_start(sock, on_body_read);
    on_body_read(sock, NULL); /* what came with the head */
}

static void on_head_read(h2o_socket_t *sock, const char *err)
{
    struct proxy_gen *self = sock->data;
    const char *why = NULL;
    int r;

    if (err != NULL) {
        fail(self, MU_RESET, "closed without answering", 502, "upstream_unavailable",
             "the upstream closed the connection without answering");
        return;
    }
    if ((r = upstream_parse_head(sock->input->bytes, sock->input->size, self->is_head, &mine->head, &why)) == 0)
        return; /* more to come */
    if (r < 0) {
        fail(self, MU_BAD_RESPONSE, why, 502, "bad_upstream_response", "the upstream's answer is not valid HTTP/1.1");
        return;
    }
    relink(self, NULL);
    start_response(self, sock, &mine->head);
}

static void on_request_sent(h2o_socket_t *sock, const char *err)
{
    struct proxy_gen *self = sock->data;

    if (err != NULL) {
        fail(self, MU_RESET, "closed while the request was sent", 502, "upstream_unavailable",
             "the upstream closed the connection without answering");
        return;
    }
    self->phase = PH_HEAD;
    h2o_socket_read_start(sock, on_head_read);
    if (sock->input->size != 0)
        on_head_read(sock, NULL);
}

static void on_connect(h2o_socket_t *sock, const char *err, void *data)
{
    struct proxy_gen *self = data;

    self->connecting = NULL;
    if (err != NULL) {
        fail(self, MU_CONNECT, err, 502, "upstream_unavailable", "the upstream cannot be reached");
        return;
    }
    self->sock = sock;
    sock->data = self;
    self->phase = PH_SEND;
    /* Sending the request and waiting for the head are one wait for the upstream's first byte. */
    relink(self, &mine->first_byte);
    h2o_socket_write(sock, self->bufs, self->bufs[1].base != NULL && self->bufs[1].len != 0 ? 2 : 1, on_request_sent);
}

static void on_timeout(h2o_timeout_entry_t *entry)
{
    struct proxy_gen *self = H2O_STRUCT_FROM_MEMBER(struct proxy_gen, timer, entry);

    if (self->phase == PH_CONNECT || self->phase == PH_SEND || self->phase == PH_HEAD) {
        fail(self, MU_TIMEOUT, self->phase == PH_CONNECT ? "connect timeout" : "first-byte timeout", 504, "upstream_timeout",
             self->phase == PH_CONNECT ? "the upstream did not accept a connection in time"
                                       : "the upstream did not answer in time");
        return;
    }
    /* Silent mid-body: the response is cut short (its head is gone already). */
    metrics_upstream_error(self->up->index, MU_TIMEOUT);
    log_failure(self, "silent in the middle of the body; the response was cut short");
    self->body_error = true;
    body_over(self, false);
    if (self->sending.bytes_inflight == 0)
        do_send(self);
}

/*
 * The client's connection while the upstream works. h2o 2.2's HTTP/1 server
 * stops reading a connection while its request is answered and reads again
 * once the answer is out: for an answer that comes from a later turn of the
 * loop (every proxied one) that is an epoll_ctl DEL and an ADD per request, a
 * third of the system calls of a small exchange, and a client that hangs up
 * meanwhile goes unnoticed until the upstream answers. So the connection
 * stays polled, with h2o's reading turned off (h2o_socket_dont_read: the
 * bytes stay in the kernel, and the request, which points into h2o's input
 * buffer, stays valid), and what wakes it is peeked at: an end or an error is
 * the client gone (client_gone), data is a request sent ahead, left to h2o
 * (the watch ends). h2o reads again right after the request is disposed
 * (on_dispose ends the watch), in the same turn: no epoll_ctl either way.
 */
static void on_client_event(h2o_socket_t *sock, const char *err);

static void watch_client(struct proxy_gen *self)
{
    h2o_conn_t *conn = self->x.req->conn;
    h2o_socket_t *sock;

    if (self->x.req->version >= 0x200 || conn->callbacks->get_socket == NULL || (sock = conn->callbacks->get_socket(conn)) == NULL)
        return;
    h2o_socket_dont_read(sock, 1);
    h2o_socket_read_start(sock, on_client_event);
    self->client = sock;
    h2o_linklist_insert(&mine->watched, &self->watched);
}

static void unwatch_client(struct proxy_gen *self)
{
    if (self->client == NULL)
        return;
    h2o_linklist_unlink(&self->watched);
    h2o_socket_dont_read(self->client, 0);
    h2o_socket_read_stop(self->client);
    self->client = NULL;
}

/*
 * The client closed its connection (or it broke) before the exchange ended:
 * the upstream's work is for nobody. Before the head, the upstream
 * connection is closed and the request ends as 499, as nginx logs it (the
 * answer goes to a closed connection; the access log and the metrics keep
 * it); during the body, the response is cut short.
 */
static void client_gone(struct proxy_gen *self)
{
    switch (self->phase) {
    case PH_CONNECT:
    case PH_SEND:
    case PH_HEAD:
        relink(self, NULL);
        release(self, false);
        self->phase = PH_DONE;
        respond_error(&self->x, 499, "client_closed_request", "the client closed its connection before the upstream answered");
        return;
    case PH_BODY:
        self->body_error = true;
        body_over(self, false);
        if (self->sending.bytes_inflight == 0)
            do_send(self);
        return;
    case PH_DONE:
        return;
    }
}

static void on_client_event(h2o_socket_t *sock, const char *err)
{
    struct proxy_gen *self = NULL;
    ssize_t n = 0;
    char c;

    /* A few exchanges per loop, and this runs only when a client acts out of turn. */
    for (h2o_linklist_t *l = mine->watched.next; l != &mine->watched && self == NULL; l = l->next)
        if (H2O_STRUCT_FROM_MEMBER(struct proxy_gen, watched, l)->client == sock)
            self = H2O_STRUCT_FROM_MEMBER(struct proxy_gen, watched, l);
    if (self == NULL) { /* not ours (cannot happen): leave the connection as h2o had it */
        h2o_socket_dont_read(sock, 0);
        h2o_socket_read_stop(sock);
        return;
    }
    if (err == NULL) {
        while ((n = recv(h2o_socket_get_fd(sock), &c, 1, MSG_PEEK | MSG_DONTWAIT)) == -1 && errno == EINTR)
            ;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return; /* nothing after all */
    }
    unwatch_client(self);
    if (err != NULL || n <= 0)
        client_gone(self);
}

static void on_dispose(void *p)
{
    struct proxy_gen *self = p;

    unwatch_client(self);
    if (h2o_timeout_is_linked(&self->timer))
        h2o_timeout_unlink(&self->timer);
    release(self, false);
    h2o_buffer_dispose(&self->pending);
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
    h2o_buffer_init(&self->pending, &h2o_socket_buffer_prototype);
    h2o_doublebuffer_init(&self->sending, &h2o_socket_buffer_prototype);
    self->started_ns = now_ns();
    self->phase = PH_CONNECT;
    relink(self, &t->connect);
    watch_client(self);
    h2o_socket_t *idle = take_idle(u);
    if (idle != NULL) {
        on_connect(idle, NULL, self);
        return;
    }
    once_loop = req->conn->ctx->loop;
    once_up = u;
    pthread_once(&u->timeout_once, set_pool_timeout);
    h2o_socketpool_connect(&self->connecting, &u->pool, req->conn->ctx->loop, &req->conn->ctx->receivers.hostinfo_getaddr,
                           on_connect, self);
}
