/* caio.thread_aio: the engine. Finishing requests on the loop thread, the
 * registry of open contexts (closed by the atexit hook, before workers may
 * no longer take the GIL), and closing: queued requests fail, running ones
 * are waited for, stuck ones are given up on. */
#include "context.h"

#include <errno.h>

ThreadContext *thread_live_contexts = NULL;

void thread_ctx_live_link(ThreadContext *self)
{
    self->live_prev = NULL;
    self->live_next = thread_live_contexts;
    if (thread_live_contexts != NULL)
        thread_live_contexts->live_prev = self;
    thread_live_contexts = self;
}

void thread_ctx_live_unlink(ThreadContext *self)
{
    if (self->live_prev != NULL)
        self->live_prev->live_next = self->live_next;
    else if (thread_live_contexts == self)
        thread_live_contexts = self->live_next;
    if (self->live_next != NULL)
        self->live_next->live_prev = self->live_prev;
    self->live_prev = self->live_next = NULL;
}

PyObject *thread_ctx_submit_error(ThreadContext *self, int err)
{
    if (err == ECANCELED && self->closed) {
        caio_context_closed_error();
        return NULL;
    }
    return caio_oserror(err);
}

/* ---- finishing requests (GIL held) --------------------------------------- */

int thread_ctx_complete_fast(ThreadContext *self, caio_req *req)
{
    caio_thread_ext *ext = caio_thread_ext_of(req);
    int rc;

    if (ext->done > 0) {
        req->data -= ext->done;
        req->nbytes += (size_t)ext->done;
        req->offset -= ext->shift;
        /* Bytes already moved win over a later error, as in read(2). */
        req->result = req->result >= 0 ? req->result + (ssize_t)ext->done
                                       : (ssize_t)ext->done;
        ext->done = 0;
    }
    req->state = CAIO_REQ_DONE;
    rc = caio_req_resolve_future(req);
    caio_req_put(&self->reqs, req);
    return rc;
}

/* Cancelled, or failed by close(). */
void thread_complete_operation_here(caio_req *req, ssize_t result)
{
    PyObject *op = req->owner;

    req->result = result;
    req->state = CAIO_REQ_DONE;
    caio_operation_finish(req);
    Py_DECREF(op);
}

/* Report an error from a future without stopping the loop over the others. */
static void report_error(PyObject *where, int quiet)
{
    if (quiet)
        PyErr_Clear();
    else
        PyErr_WriteUnraisable(where);
}

/* ---- closing ----------------------------------------------------------- */

/* Fail the future of a request a worker still owns, without touching what
 * the worker writes (req->result). */
static void fail_stuck_future(caio_req *req, int quiet)
{
    PyObject *exc;

    if (req->future == NULL)
        return;
    exc = caio_oserror_new(ECANCELED);
    if (exc == NULL || caio_future_set_exception(req->future, exc) < 0)
        report_error(req->future, quiet);
    Py_XDECREF(exc);
    Py_CLEAR(req->future);
}

static void call_stuck_callback(caio_req *req, int quiet)
{
    CaioOperation *op = caio_req_operation(req);
    PyObject *fn, *arg, *r;

    if (op == NULL || op->callback == NULL)
        return;
    fn = Py_NewRef(op->callback);
    arg = PyLong_FromLong(-ECANCELED);
    r = arg ? PyObject_CallOneArg(fn, arg) : NULL;
    if (r == NULL)
        report_error(fn, quiet);
    Py_XDECREF(r);
    Py_XDECREF(arg);
    Py_DECREF(fn);
}

void thread_ctx_shutdown(ThreadContext *self, int quiet)
{
    caio_pool *pool = self->pool;
    caio_req *req, *next, **stuck;
    size_t nstuck = 0, cap;

    if (self->closed || pool == NULL) {
        self->closed = 1;
        return;
    }
    self->closed = 1;   /* first: other threads now get ValueError */
    caio_spare_clear(&self->spare);
    thread_ctx_live_unlink(self);

    if (self->fork_gen != caio_fork_generation()) {
        /* A child after fork(): the workers stayed in the parent, and the
         * pool's lock may have been held by one of them at fork time, so
         * nothing here locks, waits or joins. Requests that were in
         * flight are forgotten (their Python objects leak, once). Every
         * entry point fails the fork check before looking at self->pool. */
        self->pool = NULL;
        caio_pool_forget(pool);
        return;
    }

    /* 1. Never started: ECANCELED. */
    for (req = caio_pool_stop(pool); req != NULL; req = next) {
        next = req->next;
        req->next = NULL;
        if (req->flags & CAIO_REQ_OWNED) {
            thread_complete_operation_here(req, -ECANCELED);
        } else {
            req->result = -ECANCELED;
            if (thread_ctx_complete_fast(self, req) < 0)
                report_error(NULL, quiet);
        }
    }

    /* 2. Wait for the running ones, GIL released (workers may need it for
     * callbacks). */
    cap = (size_t)self->pool_size;
    stuck = PyMem_Calloc(cap, sizeof(caio_req *));
    if (stuck == NULL)
        cap = 0;
    Py_BEGIN_ALLOW_THREADS
    nstuck = caio_pool_join(pool, self->close_timeout, stuck, cap);
    Py_END_ALLOW_THREADS

    /* 3. Deliver what arrived. */
    for (req = caio_pool_take_done(pool); req != NULL; req = next) {
        next = req->next;
        req->next = NULL;
        if (thread_ctx_complete_fast(self, req) < 0)
            report_error(NULL, quiet);
    }

    /* 4. Given up on: the worker may still write into these requests, so
     * their memory (buffer, payload, the request itself) is leaked on
     * purpose; only the futures/callbacks are told. */
    for (size_t i = 0; i < nstuck && i < cap; i++) {
        if (stuck[i]->flags & CAIO_REQ_OWNED)
            call_stuck_callback(stuck[i], quiet);
        else
            fail_stuck_future(stuck[i], quiet);
    }
    PyMem_Free(stuck);
    if (nstuck > 0)
        self->leak_reqs = 1;
    caio_pool_close_fds(pool);
    /* The pool (now without threads) and the requests are freed by
     * dealloc. */
}


/* A lone buffered write, made here.
 *
 * A buffered write that RWF_NOWAIT refuses (ext4, tmpfs: all of them) goes
 * to a worker, and one at a time that is a wake-up of the worker on the
 * other CPU and another of the loop: 10-25 us per 4 KiB write even with
 * the idle worker's poll (pool.c), against ~2 us for pwrite. As in
 * linux_uring (batch.c, where the ring's io-wq worker costs the same), a
 * write alone on the context, with the loop idle by the adapter's check,
 * is made on this thread, the GIL released, while such writes take under
 * CAIO_LONE_WAIT_NS (common/batch.h). "Alone": the pool holds no request
 * at all, so the write cannot overtake one of its (pool.h). Returns 1
 * with req->result set, or 0: the pool's turn. */
int thread_ctx_write_here(ThreadContext *self, caio_req *req)
{
    ssize_t n;

    /* (The pool first: a glance, where caio_req_may_write_here may ask
     * fcntl, once per 64 writes, and writes in flight are the common case
     * there.) */
    if (self->idle_check == NULL || req->nbytes > CAIO_NOWAIT_MAX || req->offset < 0 ||
        !caio_pool_holds_nothing(self->pool) || !caio_req_may_write_here(req, &self->direct) ||
        !caio_lone_try(&self->lone_write))
        return 0;
    /* The check is Python code: it may close us, or submit requests. */
    if (!caio_loop_idle(self->idle_check, (PyObject *)self) || self->closed ||
        !caio_pool_holds_nothing(self->pool))
        return 0;
    if ((n = caio_lone_write(&self->lone_write, req, NULL)) == -ESPIPE)
        return 0;   /* a stream: the pool waits for room in it */
    req->result = n;
    return 1;
}
