/*
 * worker: one event loop thread's state. Handlers reach it from a request
 * (worker_of(req->conn->ctx)) to count writes in flight and to name the
 * queue their results come back on.
 */
#ifndef APIKEYD_HTTP_WORKER_H
#define APIKEYD_HTTP_WORKER_H

#include <h2o.h>
#include <pthread.h>
#include <stdatomic.h>

#include "http/writer.h"

struct worker {
    h2o_context_t ctx; /* h2o hands handlers this; worker_of() walks back from it */
    h2o_accept_ctx_t accept;
    h2o_socket_t *listener;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t stop_receiver;
    h2o_multithread_receiver_t conn_receiver; /* connections another loop accepted for this one (server.c) */
    _Atomic unsigned conns;                   /* client connections this loop serves, or is being handed */
    struct writer_inbox reply_receiver;       /* writer jobs coming back */
    struct writer *writer;
    h2o_multithread_message_t stop_msg;
    size_t inflight; /* writer jobs submitted and not yet answered; touched only by this loop */
    int fd;
    int stopping;
    pthread_t tid;
};

static inline struct worker *worker_of(h2o_context_t *ctx)
{
    return H2O_STRUCT_FROM_MEMBER(struct worker, ctx, ctx);
}

#endif
