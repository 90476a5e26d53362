/*
 * server: threads, listeners and shutdown. Each worker owns an h2o context
 * and loop; nothing here is shared between workers but the keys service,
 * the writer and (without --reuse-port) the one listening socket. Never
 * lets a second process bind the same address unless it was asked to.
 */
#include "http/server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>

#include "core/accounts.h"
#include "core/digest.h"
#include "core/error.h"
#include "core/keys.h"
#include "core/leakreport.h"
#include "core/lifecycle.h"
#include "core/log.h"
#include "core/ratesync.h"
#include "core/throttle.h"
#include "core/timefmt.h"
#include "core/usage.h"
#include "http/gateway.h"
#include "http/handlers.h"
#include "http/leaks.h"
#include "http/metrics.h"
#include "http/respond.h"
#include "http/routes.h"
#include "http/worker.h"
#include "http/writer.h"

#define MAX_THREADS 256
#define MAX_REQUEST_ENTITY (1024 * 1024) /* h2o's hard limit; handlers refuse past 64 KiB with JSON */
#define DRAIN_MS 100
#define MAX_HEADER_BYTES (32 * 1024)
/*
 * Past this, a socket's buffer lives in an unlinked temporary file (h2o's
 * buffer mmap): a gateway request's body, which h2o 2.2 reads whole before
 * any handler runs, costs disk, not memory.
 */
#define SPOOL_THRESHOLD (4 * 1024 * 1024)
/*
 * How long a stopping loop waits for its writes in flight. Well inside
 * systemd's TimeoutStopSec=45 (contrib/apikeyd.service): after it come the
 * one store statement that may still be running, the final last_used flush
 * and exit, which must all happen before SIGKILL.
 */
#define WRITE_DRAIN_MS 15000
#define REPLY_DRAIN_MS 1000 /* to read replies already posted when the inbox closes */
#define FLUSH_INTERVAL_MS 1000
#define TEST_CLOCK_TICK_MS 100 /* how often APIKEYD_TEST_CLOCK_FILE is read, where it is set */

#define PRUNE_INTERVAL_MS (3600 * 1000) /* audit retention is checked hourly (and batch after batch while there is more) */

#define SWEEP_EVERY_MS (LIFECYCLE_SWEEP_INTERVAL_S * 1000 / 3) /* asking is cheap; one instance per period does the work */

struct maintenance {
    struct keys *keys;
    unsigned retention_days;
    unsigned usage_retention_days;
    int64_t next_prune_ms;
    struct lifecycle_policy lifecycle;
    int64_t next_sweep_ms;
    const char *test_clock_file;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stop;
    pthread_t tid;
};

static h2o_globalconf_t config;
static pthread_barrier_t ready; /* the workers and server_run, once every loop is set up */
static struct worker *finished_workers;
/*
 * A worker that is done parks until the process exits instead of returning.
 * h2o keeps per-thread caches (socket buffers, memory-pool chunks) in
 * thread-local variables and has no call to release them: a thread that
 * exits leaves them unreachable, and a leak checker rightly reports them.
 * Parked, they stay reachable, so the sanitizer runs need no suppression
 * and every leak they report is apikeyd's own.
 */
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static unsigned parked;
static _Atomic unsigned connections; /* open client connections, all workers */
static unsigned max_connections;
static struct worker *loops; /* every worker, for on_accept's balance; set before the first starts */
static unsigned nloops;

/*
 * Connections are spread evenly over the loops. The loops share a listening
 * socket (or, with --reuse-port, the kernel hashes connections over theirs),
 * so which loop takes a connection is chance, and a keep-alive connection
 * stays where it landed: 64 connections from a gateway's pool may be 40 on
 * one loop and 24 on the other for as long as they live, one core the
 * bottleneck while the other waits (measured with wrk -c64, 2 loops: a 1:2
 * split served 25 % fewer requests than an even one). So the loop that
 * accepts a connection hands it to the loop with the fewest when that one
 * has two fewer than the acceptor (a message on its queue: one wake-up per
 * connection moved, none per request), and counts hold within 2.
 */
#define BALANCE_SLACK 2

struct handoff {
    h2o_multithread_message_t super;
    int fd;
};

static void on_socket_close(void *data)
{
    struct worker *w = data;

    atomic_fetch_sub_explicit(&w->conns, 1, memory_order_relaxed);
    atomic_fetch_sub(&connections, 1);
}

/* Serves accepted connection `fd` on `w`'s loop (w->conns counts it already). */
static void adopt(struct worker *w, int fd)
{
    int one = 1;
    h2o_socket_t *sock;

    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* as h2o's own accept does */
    sock = h2o_evloop_socket_create(w->ctx.loop, fd, H2O_SOCKET_FLAG_IS_ACCEPTED_CONNECTION);
    sock->on_close.cb = on_socket_close;
    sock->on_close.data = w;
    h2o_accept(&w->accept, sock);
}

/* The loop that should serve a new connection accepted by `self`. */
static struct worker *balance(struct worker *self)
{
    struct worker *best = self;
    unsigned mine = atomic_load_explicit(&self->conns, memory_order_relaxed), least = mine;

    for (unsigned i = 0; i < nloops; i++) {
        unsigned n = atomic_load_explicit(&loops[i].conns, memory_order_relaxed);
        if (n < least) {
            least = n;
            best = &loops[i];
        }
    }
    return least + BALANCE_SLACK <= mine ? best : self;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct worker *w = listener->data, *to;
    struct handoff *h;
    int fd;

    if (err != NULL || (fd = accept4(h2o_socket_get_fd(listener), NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0)
        return;
    /* Past the limit a connection is refused at once, not left waiting in a queue. */
    if (atomic_fetch_add(&connections, 1) >= max_connections) {
        atomic_fetch_sub(&connections, 1);
        close(fd);
        return;
    }
    to = balance(w);
    atomic_fetch_add_explicit(&to->conns, 1, memory_order_relaxed);
    if (to != w && (h = malloc(sizeof(*h))) != NULL) {
        h->super = (h2o_multithread_message_t){{NULL}};
        h->fd = fd;
        h2o_multithread_send_message(&to->conn_receiver, &h->super);
        return;
    }
    if (to != w) { /* out of memory: served here after all */
        atomic_fetch_sub_explicit(&to->conns, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->conns, 1, memory_order_relaxed);
    }
    adopt(w, fd);
}

static void on_handoff(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, conn_receiver, receiver);

    while (!h2o_linklist_is_empty(messages)) {
        struct handoff *h = H2O_STRUCT_FROM_MEMBER(struct handoff, super.link, messages->next);
        h2o_linklist_unlink(&h->super.link);
        if (w->stopping) { /* shutting down: no new connections */
            close(h->fd);
            on_socket_close(w);
        } else {
            adopt(w, h->fd);
        }
        free(h);
    }
}

static void on_stop(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, stop_receiver, receiver);

    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    if (w->listener != NULL) {
        h2o_socket_read_stop(w->listener);
        h2o_socket_close(w->listener); /* closes the fd: no new connections */
        w->listener = NULL;
    }
    w->stopping = 1;
}

/*
 * h2o 2.2 keeps per-thread state (buffer pools) that a loop's sockets use:
 * a loop, its context, listener and queue are created on the thread that
 * runs them, never on another.
 */
static void worker_setup(struct worker *w)
{
    respond_thread_init();
    /*
     * h2o keeps 16 spare socket buffers per thread and frees the rest: a loop
     * proxying 32 requests at once allocated and freed 8 KiB (and faulted its
     * pages in again) per request. Up to 256 spares: 2 MiB a loop at most.
     */
    h2o_socket_buffer_prototype.allocator.max = 256;
    h2o_context_init(&w->ctx, h2o_evloop_create(), &config);
    w->accept.ctx = &w->ctx;
    w->accept.hosts = config.hosts;
    w->listener = h2o_evloop_socket_create(w->ctx.loop, w->fd, H2O_SOCKET_FLAG_DONT_READ);
    w->listener->data = w;
    h2o_socket_read_start(w->listener, on_accept);
    w->queue = h2o_multithread_create_queue(w->ctx.loop);
    h2o_multithread_register_receiver(w->queue, &w->stop_receiver, on_stop);
    h2o_multithread_register_receiver(w->queue, &w->conn_receiver, on_handoff);
    writer_inbox_register(w->writer, &w->reply_receiver, w->queue);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int64_t deadline;
    uint64_t sent;

    worker_setup(w);
    pthread_barrier_wait(&ready);

    while (!w->stopping) {
        h2o_evloop_run(w->ctx.loop, INT32_MAX);
        respond_log_flush();
    }
    /*
     * Finish the writes in flight (the writer keeps running until every loop
     * is done) and let answers already written reach their clients, then
     * leave: idle keep-alive connections are not waited for.
     */
    h2o_context_request_shutdown(&w->ctx);
    deadline = timefmt_mono_ms() + WRITE_DRAIN_MS;
    while (w->inflight > 0 && timefmt_mono_ms() < deadline) {
        h2o_evloop_run(w->ctx.loop, 10);
        respond_log_flush();
    }
    /*
     * Past the drain, nothing more comes back: the writes still queued are
     * discarded unrun (each key_job wiped), and the replies already posted
     * are read here, so that none is left in the queue with a key inside.
     */
    sent = writer_inbox_close(&w->reply_receiver);
    deadline = timefmt_mono_ms() + REPLY_DRAIN_MS;
    while (w->reply_receiver.received < sent && timefmt_mono_ms() < deadline) {
        h2o_evloop_run(w->ctx.loop, 10);
        respond_log_flush();
    }
    deadline = timefmt_mono_ms() + DRAIN_MS;
    while (!h2o_linklist_is_empty(&w->ctx.http1._conns) && timefmt_mono_ms() < deadline) {
        h2o_evloop_run(w->ctx.loop, 10);
        respond_log_flush();
    }
    respond_log_flush();
    digest_thread_release(); /* its copy of the secret is wiped now, not at a thread exit that never comes */
    pthread_mutex_lock(&park_lock);
    parked++;
    pthread_cond_broadcast(&park_cond);
    for (;;)
        pthread_cond_wait(&park_cond, &park_lock);
    return NULL;
}

/*
 * Tests only (APIKEYD_TEST_CLOCK_FILE): sets the clock's offset from the
 * file, a decimal number of seconds. Returns whether it changed. A file
 * that cannot be read or parsed leaves the offset as it was.
 */
static bool read_test_clock(const char *path)
{
    char buf[32], *end;
    FILE *f = fopen(path, "r");
    size_t n;
    long long v;

    if (f == NULL)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    errno = 0;
    v = strtoll(buf, &end, 10);
    if (end == buf || errno != 0 || v < -(1LL << 40) || v > (1LL << 40) || v == timefmt_offset())
        return false;
    timefmt_set_offset(v);
    return true;
}

/* Loads --leak-report-keys into the leak handler. On failure the keys in use stay. */
static int load_leak_keys(const char *path, char *err, size_t errlen)
{
    struct leak_keyring *kr;
    int r;

    if ((r = leak_keyring_load(path, &kr, err, errlen)) == 0)
        leaks_set_keyring(kr);
    return r;
}

static void *maintenance_main(void *arg)
{
    struct maintenance *m = arg;
    /* The test clock is looked at ten times a second, so that a test moving it waits little; the rest runs once a second. */
    long tick_ms = m->test_clock_file != NULL ? TEST_CLOCK_TICK_MS : FLUSH_INTERVAL_MS;
    int64_t next_flush_ms = 0;
    struct timespec until;
    bool reloaded, moved;

    pthread_mutex_lock(&m->lock);
    while (!m->stop) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += tick_ms % 1000 * 1000000L;
        until.tv_sec += tick_ms / 1000 + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&m->cond, &m->lock, &until);
        if (m->stop)
            break;
        pthread_mutex_unlock(&m->lock);
        moved = m->test_clock_file != NULL && read_test_clock(m->test_clock_file);
        keys_watch_check(m->keys);
        if (moved || timefmt_mono_ms() >= next_flush_ms) {
            /* Failures are retried on the next tick: uses stay pending in memory. */
            keys_flush_uses(m->keys);
            keys_sync(m->keys, &reloaded);
            next_flush_ms = timefmt_mono_ms() + FLUSH_INTERVAL_MS;
        }
        if (moved)
            m->next_sweep_ms = 0; /* the clock moved: what became due is swept now */
        if (timefmt_mono_ms() >= m->next_sweep_ms) {
            lifecycle_sweep(m->keys, &m->lifecycle); /* failures: the next sweep retries */
            m->next_sweep_ms = timefmt_mono_ms() + SWEEP_EVERY_MS;
        }
        if (timefmt_mono_ms() >= m->next_prune_ms) {
            bool more = false;
            /* One short transaction per tick: last_used flushes and syncs never wait behind a long delete. */
            accounts_prune_events(m->keys, m->retention_days, &more);
            if (!more) {
                usage_prune(m->keys, m->usage_retention_days, &more);
            }
            m->next_prune_ms = timefmt_mono_ms() + (more ? 0 : PRUNE_INTERVAL_MS);
        }
        pthread_mutex_lock(&m->lock);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

/* Splits "HOST:PORT" / "[V6]:PORT" and resolves it. */
static int resolve(const char *listen, struct addrinfo **ret, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(listen, ':'), *h = listen;
    size_t hlen;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    int rc;

    if (colon == NULL || colon[1] == '\0') {
        snprintf(err, errlen, "--listen must be HOST:PORT, got \"%s\"", listen);
        return AK_ERR_ARG;
    }
    hlen = (size_t)(colon - listen);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(host)) {
        snprintf(err, errlen, "--listen must be HOST:PORT, got \"%s\"", listen);
        return AK_ERR_ARG;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if ((rc = getaddrinfo(host, colon + 1, &hints, ret)) != 0) {
        snprintf(err, errlen, "cannot resolve --listen %s: %s", listen, gai_strerror(rc));
        return AK_ERR_ARG;
    }
    return 0;
}

/*
 * One listening socket. Without `reuse_port` a second process on the same
 * address fails here (EADDRINUSE): two apikeyd sharing a port by accident
 * would each answer half the traffic, each with its own catalog and
 * throttle. With it, SO_REUSEPORT shares the port on purpose.
 */
static int open_listener(const struct addrinfo *ai, int reuse_port, char *err, size_t errlen, const char *addr)
{
    int fd, one = 1;

    if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        if (errno == EADDRINUSE)
            snprintf(err, errlen, "cannot listen on %s: address already in use (another apikeyd? --reuse-port shares it)", addr);
        else
            snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/*
 * Gives every worker a listening fd: by default one socket, each loop
 * polling its own dup() of it (the loop that wins accept() takes the
 * connection; the others find nothing and go back to waiting); with
 * `reuse_port`, one SO_REUSEPORT socket per loop, which the kernel balances.
 */
static int open_listeners(struct worker *workers, unsigned n, const struct addrinfo *ai, int reuse_port, char *err, size_t errlen,
                          const char *addr)
{
    for (unsigned i = 0; i < n; i++) {
        if (reuse_port || i == 0)
            workers[i].fd = open_listener(ai, reuse_port, err, errlen, addr);
        else if ((workers[i].fd = fcntl(workers[0].fd, F_DUPFD_CLOEXEC, 0)) < 0)
            snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        if (workers[i].fd < 0)
            return AK_ERR_IO;
    }
    return 0;
}

/* A TLS context for h2o's OpenSSL: TLS 1.2 and newer, HTTP/1.1. */
static SSL_CTX *tls_context(const char *cert, const char *key, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* CLEANSE_PLAINTEXT: OpenSSL wipes its copy of what it decrypted (the Authorization header among it). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CLEANSE_PLAINTEXT);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(err, errlen, "cannot load TLS certificate %s", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "cannot load TLS key %s, or it does not match the certificate", key);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* Lets the process hold as many sockets as the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The gateway's routes, each on a path of its own; bodies up to max_body_bytes, spooled to a file past SPOOL_THRESHOLD. */
static int register_routes(h2o_hostconf_t *host, const struct server_config *cfg, char *err, size_t errlen)
{
    static const char *names[ROUTES_MAX];
    const char *tmp = getenv("TMPDIR");

    if (cfg->routes == NULL || cfg->routes->n == 0)
        return 0;
    proxy_init(&cfg->upstream);
    config.max_request_entity_size = cfg->max_body_bytes;
    h2o_socket_buffer_mmap_settings.threshold = SPOOL_THRESHOLD;
    snprintf(h2o_socket_buffer_mmap_settings.fn_template, sizeof(h2o_socket_buffer_mmap_settings.fn_template),
             "%s/apikeyd.body.XXXXXX", tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
    for (unsigned i = 0; i < cfg->routes->n; i++) {
        const struct gw_route *rt = &cfg->routes->r[i];
        if (gateway_register(h2o_config_register_path(host, rt->prefix, 0), rt, i) != 0) {
            snprintf(err, errlen, "out of memory");
            return AK_ERR_NOMEM;
        }
        names[i] = rt->prefix;
        bool v6 = strchr(rt->host, ':') != NULL;
        log_msg(LOG_INFO, "route %s -> http://%s%s%s:%u%s%s%s", rt->prefix, v6 ? "[" : "", rt->host, v6 ? "]" : "",
                (unsigned)rt->port, rt->path, rt->public_route ? " (public)" : "",
                rt->keep_authorization ? " (keeps Authorization)" : "");
    }
    metrics_set_routes(names, cfg->routes->n);
    return 0;
}

int server_run(const struct server_config *cfg, char *err, size_t errlen)
{
    struct worker *workers = NULL;
    struct maintenance maint = {.keys = cfg->keys,
                                .retention_days = cfg->audit_retention_days,
                                .usage_retention_days = cfg->usage_retention_days,
                                .lifecycle = cfg->lifecycle,
                                .test_clock_file = cfg->test_clock_file};
    struct writer *writer = NULL;
    struct ratesync *ratesync = NULL;
    struct throttle *throttle = NULL;
    SSL_CTX *ssl_ctx = NULL;
    struct addrinfo *ai = NULL;
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    sigset_t sigs;
    unsigned n = cfg->threads, started = 0, parked_before;
    int sig, r;

    if (n == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (unsigned)cores : 1;
    }
    if (n > MAX_THREADS)
        n = MAX_THREADS;
    /* Signals are taken by sigwait below, never by a worker. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (cfg->leak_keyring != NULL)
        leaks_set_keyring(cfg->leak_keyring); /* loaded once, by the caller, which checked it */
    if (cfg->test_clock_file != NULL) {
        log_msg(LOG_WARN, "APIKEYD_TEST_CLOCK_FILE is set: the clock is shifted for tests; never use it in "
                          "production");
        read_test_clock(cfg->test_clock_file);
    }

    raise_fd_limit();
    max_connections = cfg->max_connections != 0 ? cfg->max_connections : UINT_MAX;
    if ((r = resolve(cfg->listen, &ai, err, errlen)) != 0)
        return r;
    if (cfg->tls_cert != NULL && (ssl_ctx = tls_context(cfg->tls_cert, cfg->tls_key, err, errlen)) == NULL) {
        freeaddrinfo(ai);
        return AK_ERR_ARG;
    }
    if ((workers = calloc(n, sizeof(*workers))) == NULL) {
        freeaddrinfo(ai);
        return AK_ERR_NOMEM;
    }
    for (unsigned i = 0; i < n; i++)
        workers[i].fd = -1;
    if ((r = open_listeners(workers, n, ai, cfg->reuse_port, err, errlen, cfg->listen)) != 0)
        goto out;

    h2o_config_init(&config);
    config.server_name = h2o_iovec_init(H2O_STRLIT("apikeyd"));
    config.max_request_entity_size = MAX_REQUEST_ENTITY;
    /*
     * HTTP/1.1 only. h2o would take `Upgrade: h2c` and the HTTP/2 preface on
     * the cleartext port; the gateways in front speak HTTP/1.1, and the wipe
     * of the Authorization value (handlers.c) is reasoned for HTTP/1.1's
     * buffers only. TLS offers no ALPN, so it stays on HTTP/1.1 too.
     */
    config.http1.upgrade_to_http2 = 0;
    /*
     * h2o 2.2 times HTTP/1.1 with one timer: the wait for a request's headers
     * and body, and the idle wait between keep-alive requests. It gets the
     * shorter of the two limits.
     */
    config.http1.req_timeout =
        1000u * (uint64_t)(cfg->idle_timeout_s < cfg->header_timeout_s ? cfg->idle_timeout_s : cfg->header_timeout_s);
    config.handshake_timeout = config.http1.req_timeout; /* a TLS handshake is part of getting the request */
    host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    /* The routes before "/": h2o takes the first path that matches, and they come longest first. */
    if ((r = register_routes(host, cfg, err, errlen)) != 0)
        goto out;
    path = h2o_config_register_path(host, "/", 0);
    respond_register_fallback(&host->fallback_path);
    if ((writer = writer_start()) == NULL) {
        snprintf(err, errlen, "cannot start the writer thread");
        r = AK_ERR_NOMEM;
        goto out;
    }
    if ((r = ratesync_start(cfg->keys, cfg->rate_sync_ms != 0 ? cfg->rate_sync_ms : RATESYNC_INTERVAL_MS_DEFAULT, &ratesync)) !=
        0) {
        snprintf(err, errlen, "cannot start the rate-limit exchange: %s", ak_strerror(r));
        goto out;
    }
    if (cfg->auth_failures != 0 && (throttle = throttle_new(cfg->auth_failures, 65536)) == NULL) {
        r = AK_ERR_NOMEM;
        goto out;
    }
    struct handlers_config hc = {.keys = cfg->keys,
                                 .verify_token = cfg->verify_token,
                                 .writer = writer,
                                 .throttle = throttle,
                                 .client_ip_header = cfg->client_ip_header,
                                 .trusted_proxies = cfg->trusted_proxies,
                                 .max_header_bytes = MAX_HEADER_BYTES,
                                 .dashboard = cfg->dashboard,
                                 .usage_retention_days = cfg->usage_retention_days};
    gateway_bind(handlers_register(path, &hc));
    if (cfg->metrics_listen != NULL) {
        struct metrics_sources ms = {.keys = cfg->keys, .writer = writer, .throttle = throttle, .loops = workers, .nloops = n};
        struct addrinfo *mai = NULL;
        int mfd;
        if ((r = resolve(cfg->metrics_listen, &mai, err, errlen)) != 0)
            goto out;
        mfd = open_listener(mai, 0, err, errlen, cfg->metrics_listen);
        freeaddrinfo(mai);
        if (mfd < 0 || metrics_start(mfd, &ms) != 0) {
            if (mfd >= 0)
                snprintf(err, errlen, "cannot start the metrics listener");
            r = AK_ERR_IO;
            goto out;
        }
    }

    for (unsigned i = 0; i < n; i++) {
        workers[i].accept.ssl_ctx = ssl_ctx;
        workers[i].writer = writer;
    }
    loops = workers;
    nloops = n;
    /*
     * The sockets listen already (connections wait in their backlog) and
     * nothing below can fail: say so before a loop can answer, so that this
     * line always comes before the first access-log line.
     */
    log_msg(LOG_INFO, "listening on %s", cfg->listen);
    pthread_barrier_init(&ready, NULL, n + 1);
    pthread_mutex_init(&maint.lock, NULL);
    pthread_cond_init(&maint.cond, NULL);
    pthread_create(&maint.tid, NULL, maintenance_main, &maint);
    for (; started < n; started++)
        h2o_multithread_create_thread(&workers[started].tid, NULL, worker_main, &workers[started]);
    pthread_barrier_wait(&ready); /* every loop is listening and can receive the stop message */
    pthread_barrier_destroy(&ready);

    do {
        if (sigwait(&sigs, &sig) != 0)
            sig = 0;
        if (sig == SIGHUP && cfg->leak_report_keys != NULL) {
            char why[256];
            if (load_leak_keys(cfg->leak_report_keys, why, sizeof(why)) == 0)
                log_msg(LOG_INFO, "SIGHUP: reloaded %s", cfg->leak_report_keys);
            else
                log_msg(LOG_ERROR, "SIGHUP: %s; the keys loaded before stay in use", why);
        }
    } while (sig != SIGTERM && sig != SIGINT);
    log_msg(LOG_INFO, "%s received, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");

    pthread_mutex_lock(&park_lock);
    parked_before = parked;
    pthread_mutex_unlock(&park_lock);
    for (unsigned i = 0; i < n; i++)
        h2o_multithread_send_message(&workers[i].stop_receiver, &workers[i].stop_msg);
    pthread_mutex_lock(&park_lock);
    while (parked < parked_before + n) /* every loop is done: see park_lock */
        pthread_cond_wait(&park_cond, &park_lock);
    pthread_mutex_unlock(&park_lock);
    metrics_stop(); /* before the writer it reads goes */
    writer_stop(writer);
    ratesync_stop(ratesync);
    ratesync = NULL;
    pthread_mutex_lock(&maint.lock);
    maint.stop = 1;
    pthread_cond_signal(&maint.cond);
    pthread_mutex_unlock(&maint.lock);
    pthread_join(maint.tid, NULL);
    if ((r = keys_flush_uses(cfg->keys)) != 0)
        snprintf(err, errlen, "cannot flush last_used at shutdown: %s", ak_strerror(r));
    /* The writer is stopped: no lease is on its way. What is not given back is lost until the next refill. */
    if (keys_quota_return(cfg->keys) != 0)
        log_msg(LOG_ERROR, "could not give unspent quota credits back to the store");
    /*
     * The loops are not disposed: h2o keeps timers of its own linked until
     * the process exits. Keep them reachable so leak checkers stay quiet.
     */
    finished_workers = workers;
    workers = NULL;
    pthread_cond_destroy(&maint.cond);
    pthread_mutex_destroy(&maint.lock);
out:
    for (unsigned i = started; workers != NULL && i < n; i++)
        if (workers[i].fd >= 0 && workers[i].listener == NULL)
            close(workers[i].fd);
    free(workers);
    freeaddrinfo(ai);
    ratesync_stop(ratesync); /* NULL unless start failed after it */
    metrics_stop();
    if (finished_workers == NULL) {
        /* never served: nothing can still use these */
        throttle_free(throttle);
        SSL_CTX_free(ssl_ctx);
    }
    return r;
}
