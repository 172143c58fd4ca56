/* caio.thread_aio: the context object and the engine (context.c) that the
 * Python methods (module.c) drive: finishing requests, the registry of
 * open contexts for the atexit hook, closing. The worker pool (pool.c) and
 * the system calls (io.c) are the kernel layer, with no Python in them. */
#ifndef CAIO_THREAD_AIO_CONTEXT_H
#define CAIO_THREAD_AIO_CONTEXT_H

#include "protocol.h"
#include "batch.h"
#include "kernel_features.h"
#include "io.h"
#include "pool.h"

#define MODULE_NAME "caio.thread_aio"
#define CONTEXT_NAME MODULE_NAME ".Context"

#define DEFAULT_POOL_SIZE 16
#define DEFAULT_CLOSE_TIMEOUT 10.0
#define LIMIT_POOL_SIZE 1024

typedef struct ThreadContext {
    CAIO_CONTEXT_HEAD
    /* Both kept until dealloc, even once closed: another thread may still
     * be inside a method that released the GIL (misuse, but no crash). */
    caio_pool *pool;            /* NULL only in a forked child */
    caio_req_pool reqs;         /* fast-path requests */
    int max_requests;
    int pool_size;
    int leak_reqs;              /* a worker was given up on: see close */
    double close_timeout;
    struct caio_features features;  /* what this kernel offers (kernel_features.h) */
    /* Reads and writes below this size try the page cache first:
     * CAIO_NOWAIT_MAX + 1, or 0 without RWF_NOWAIT (one comparison per
     * operation either way). */
    size_t nowait_below;
    caio_fd_memo refused;       /* does it refuse RWF_NOWAIT writes (module.c) */
    caio_fd_memo direct;        /* is it O_DIRECT, for an aligned buffer
                                   (common/nowait.h) */
    PyObject *idle_check;       /* "the loop has nothing else to run", or NULL */
    caio_lone lone_write;       /* lone writes made here while fast (context.c) */
    /* Every open context, for the atexit hook (protected by the GIL). */
    struct ThreadContext *live_prev, *live_next;
} ThreadContext;

/* ---- entering and leaving (every entry point but close) ------------------- */

/* The common checks: fork first (a child must hear why), then closed.
 * Nothing to re-enter: the pool has its own lock. */
static inline int context_enter(ThreadContext *self)
{
    return caio_context_check((caio_context *)self, CONTEXT_NAME);
}

static inline void context_leave(ThreadContext *self)
{
    (void)self;
}

/* ---- the engine (context.c) ---------------------------------------------------- */

/* Every open context, newest first (for the atexit hook). */
CAIO_API extern ThreadContext *thread_live_contexts;
CAIO_API void thread_ctx_live_link(ThreadContext *self);
CAIO_API void thread_ctx_live_unlink(ThreadContext *self);

/* The request inside an Operation already type-checked. */
static inline caio_req *operation_req(PyObject *ob)
{
    return &((CaioOperation *)ob)->req;
}

/* OSError(err), or ValueError when the pool refused because of close(). */
CAIO_API PyObject *thread_ctx_submit_error(ThreadContext *self, int err);
/* A fast-path request is back (result set): undo the fast path's advance,
 * resolve the future, recycle the request. -1 if the future raised. */
CAIO_API int thread_ctx_complete_fast(ThreadContext *self, caio_req *req);
/* A write alone on the context, made on this thread when that pays
 * (context.c): 1 with req->result set, else 0. */
CAIO_API int thread_ctx_write_here(ThreadContext *self, caio_req *req);
/* An Operation that finishes on this thread: callback, then its reference. */
CAIO_API void thread_complete_operation_here(caio_req *req, ssize_t result);
/* close(), dealloc and the atexit hook. quiet: swallow errors from futures
 * (at exit their loops are usually closed already). */
CAIO_API void thread_ctx_shutdown(ThreadContext *self, int quiet);

#endif
