/* The worker pool of caio.thread_aio: threads, the submission FIFO and the
 * completion list. See pool.c for the design. */
#ifndef CAIO_THREAD_POOL_H
#define CAIO_THREAD_POOL_H

#include "caio.h"

typedef struct caio_pool caio_pool;

/* Where a request is, as far as the pool knows (read/written under its lock). */
enum caio_where {
    CAIO_WHERE_NONE = 0,
    CAIO_WHERE_QUEUED,      /* in the FIFO: can still be taken back */
    CAIO_WHERE_RUNNING,     /* a worker has it: cannot be interrupted */
};

/* This backend's part of caio_req.backend. */
typedef struct {
    caio_req *prev;         /* FIFO link (req->next is the other one) */
    caio_pool *pool;        /* the pool it was submitted to */
    int64_t done;           /* bytes the fast path moved before the rest
                               was queued (the request was advanced by it) */
    int64_t shift;          /* how far the offset was advanced: done, or 0
                               where that would overflow (a pipe ignores
                               offsets, and the caller may pass any) */
    int where;              /* enum caio_where */
    int serial;             /* a buffered write to a file (its RWF_NOWAIT try
                               said EOPNOTSUPP): runs only while no other
                               worker runs one on the same descriptor */
} caio_thread_ext;

static inline caio_thread_ext *caio_thread_ext_of(caio_req *req)
{
    _Static_assert(sizeof(caio_thread_ext) <= sizeof(((caio_req *)0)->backend),
                   "caio_thread_ext does not fit in caio_req.backend");
    return (caio_thread_ext *)(void *)req->backend;
}

/* A pool of at most max_threads workers (started on demand). NULL and an
 * errno in *err on failure. No Python API used: call with or without GIL. */
caio_pool *caio_pool_new(unsigned max_threads, int *err);

/* Readable while completions wait in the list. */
int caio_pool_fileno(const caio_pool *p);

/* Queue a request (ext->done already set). Starts a worker if none is idle.
 * 0, or an errno: ECANCELED when the pool is stopping, or why no worker
 * could start; then the request was not queued. */
int caio_pool_submit(caio_pool *p, caio_req *req);

/* 1 when no request is queued, running or finished and not yet taken:
 * a request made elsewhere cannot overtake one of the pool's. */
int caio_pool_holds_nothing(caio_pool *p);

/* Take back a request that no worker has picked yet. 1 if it was removed. */
int caio_pool_unqueue(caio_pool *p, caio_req *req);
/* The same, finding the request by its future. NULL if no queued request
 * has it (it is running, finished, or unknown). */
caio_req *caio_pool_unqueue_future(caio_pool *p, PyObject *future);

/* Ask the worker running this request (found by request, or by future)
 * to stop: it does if it waits on a pipe, socket or tty (the request then
 * fails with ECANCELED); a file read or write just finishes. Either way it
 * completes as usual. 1 if a worker had it. */
int caio_pool_kick(caio_pool *p, caio_req *req);
int caio_pool_kick_future(caio_pool *p, PyObject *future);

/* Empty the completion list (and the wake-up fd): a NULL-terminated list
 * linked by req->next, oldest first. With the GIL held, like
 * caio_pool_close_fds (the fd is read outside the pool's lock). */
caio_req *caio_pool_take_done(caio_pool *p);

/* After caio_pool_join, with the GIL held: close the descriptors now if
 * no worker is left (else they stay open until the pool is freed). */
void caio_pool_close_fds(caio_pool *p);

/* Stop accepting requests and return the ones still queued (never started),
 * linked by req->next. Idle workers exit; busy ones finish their request;
 * one waiting on a pipe is woken up and fails it with ECANCELED. */
caio_req *caio_pool_stop(caio_pool *p);

/* After caio_pool_stop, with the GIL RELEASED: wait up to timeout seconds
 * for the workers to exit, and join them. Workers still busy then are
 * given up on (detached): their requests are written to stuck[] (at most
 * cap, which must be >= max_threads) and their number returned; those
 * requests' memory must be leaked, the worker may still write into it, but
 * it will not touch Python objects or the completion list any more. */
size_t caio_pool_join(caio_pool *p, double timeout, caio_req **stuck, size_t cap);

/* Call fn(req, arg) for every request the pool holds (queued, running,
 * finished and not yet taken), under its lock: fn must not block or call
 * into the pool. Stops at the first non-zero return and returns it. For
 * the context's garbage-collector traversal. */
int caio_pool_visit(caio_pool *p, int (*fn)(caio_req *req, void *arg), void *arg);

/* Drop the owner's reference; the pool is freed (fds closed) when no
 * worker uses it any more. */
void caio_pool_release(caio_pool *p);

/* In a child process after fork(): the workers do not exist here and the
 * locks may have been held by them at fork time. Close the descriptors and
 * free the memory without locking anything. */
void caio_pool_forget(caio_pool *p);

/* Called when the interpreter begins to exit: from now on no worker of
 * any pool enters Python (finished Operations are leaked, their callbacks
 * skipped). */
void caio_pool_python_exiting(void);

#endif
