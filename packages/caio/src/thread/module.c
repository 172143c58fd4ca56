/* caio.thread_aio: file I/O in a C pthread pool, for any POSIX system.
 *
 * Context methods read in the order CPython's _io does: argument checks
 * (caio_req_prepare), then the fast path (io.c: a non-blocking read or
 * write on this thread, which finishes page-cache hits with no thread hop),
 * then the slow path (pool.c: a worker does the blocking call with no GIL;
 * the event loop is woken once per batch of completions). */
#include "caio.h"
#include "io.h"
#include "pool.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>

#define MODULE_NAME "caio.thread_aio"
#define CONTEXT_NAME MODULE_NAME ".Context"

#define DEFAULT_MAX_REQUESTS 512
#define DEFAULT_POOL_SIZE 8
#define DEFAULT_CLOSE_TIMEOUT 10.0
#define LIMIT_MAX_REQUESTS 65536
#define LIMIT_POOL_SIZE 1024

/* Fast-path reads and writes at least this large copy with the GIL
 * released: the copy itself is the cost, other threads may run meanwhile.
 * Below it, releasing and taking the GIL back costs more than it saves. */
#define NOWAIT_GIL_RELEASE (64 * 1024)
/* Bigger ones always go to a worker: copying them, even from the page
 * cache, would stall the event loop (1 MiB: ~0.1 ms; 1 GiB: ~0.1 s), and
 * one thread hop is small next to such a copy. */
#define NOWAIT_MAX (1024 * 1024)

typedef struct ThreadContext {
    PyObject_HEAD
    /* Both kept until dealloc, even once closed: another thread may still
     * be inside a method that released the GIL (misuse, but no crash). */
    caio_pool *pool;            /* NULL only in a forked child */
    caio_req_pool reqs;         /* fast-path requests */
    PyObject *factory;          /* makes the futures (loop.create_future) */
    PyObject *weakreflist;
    unsigned long fork_gen;
    int max_requests;
    int pool_size;
    int closed;
    int leak_reqs;              /* a worker was given up on: see close */
    double close_timeout;
    /* Every open context, for the atexit hook (protected by the GIL). */
    struct ThreadContext *live_prev, *live_next;
} ThreadContext;

static PyTypeObject ThreadContext_Type;
static ThreadContext *live_contexts = NULL;

/* The request inside an Operation already type-checked. */
static caio_req *operation_req(PyObject *ob)
{
    return &((CaioOperation *)ob)->req;
}

/* Raise again an exception taken with caio_fetch_exception (an instance;
 * the reference is stolen). */
static void restore_error(PyObject *exc)
{
    if (exc == NULL)
        return;
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc,
                  PyException_GetTraceback(exc));
#endif
}

static void live_link(ThreadContext *self)
{
    self->live_prev = NULL;
    self->live_next = live_contexts;
    if (live_contexts != NULL)
        live_contexts->live_prev = self;
    live_contexts = self;
}

static void live_unlink(ThreadContext *self)
{
    if (self->live_prev != NULL)
        self->live_prev->live_next = self->live_next;
    else if (live_contexts == self)
        live_contexts = self->live_next;
    if (self->live_next != NULL)
        self->live_next->live_prev = self->live_prev;
    self->live_prev = self->live_next = NULL;
}

/* Every entry point but close(): fork first (a child must hear why), then
 * closed. */
static int ctx_check(ThreadContext *self)
{
    if (caio_fork_check(self->fork_gen, CONTEXT_NAME) < 0)
        return -1;
    if (self->closed) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on closed context");
        return -1;
    }
    return 0;
}

static PyObject *raise_submit_error(ThreadContext *self, int err)
{
    if (err == ECANCELED && self->closed) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on closed context");
        return NULL;
    }
    return caio_oserror(err);
}

/* ---- finishing requests (GIL held) --------------------------------------- */

/* A fast-path request is back (result set): undo the fast path's advance,
 * resolve the future, recycle the request. -1 if the future raised. */
static int complete_fast(ThreadContext *self, caio_req *req)
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

/* An Operation that finishes on this thread (cancelled, or failed by
 * close()): its callback runs here, then the context's reference goes. */
static void complete_operation_here(caio_req *req, ssize_t result)
{
    PyObject *op = req->owner;

    req->result = result;
    req->state = CAIO_REQ_DONE;
    caio_operation_run_callback(req);
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

/* ---- construction ------------------------------------------------------ */

static int parse_count(PyObject *ob, const char *name, int dflt, int limit, int *out)
{
    long value;

    if (ob == NULL || ob == Py_None) {
        *out = dflt;
        return 0;
    }
    if (!PyLong_Check(ob)) {
        PyErr_Format(PyExc_TypeError, "%s must be int, not %.100s", name,
                     Py_TYPE(ob)->tp_name);
        return -1;
    }
    value = PyLong_AsLong(ob);
    if (value == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        value = LONG_MAX;
    }
    if (value < 1 || value > limit) {
        PyErr_Format(PyExc_ValueError, "%s must be in 1..%d", name, limit);
        return -1;
    }
    *out = (int)value;
    return 0;
}

static PyObject *ctx_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_requests", "pool_size", "close_timeout", NULL};
    PyObject *max_ob = NULL, *size_ob = NULL;
    double close_timeout = DEFAULT_CLOSE_TIMEOUT;
    int max_requests, pool_size, err = 0;
    ThreadContext *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOd:Context", kwlist,
                                     &max_ob, &size_ob, &close_timeout))
        return NULL;
    if (parse_count(max_ob, "max_requests", DEFAULT_MAX_REQUESTS,
                    LIMIT_MAX_REQUESTS, &max_requests) < 0 ||
        parse_count(size_ob, "pool_size", DEFAULT_POOL_SIZE, LIMIT_POOL_SIZE,
                    &pool_size) < 0)
        return NULL;
    if (!(close_timeout >= 0)) {    /* also NaN */
        PyErr_SetString(PyExc_ValueError, "close_timeout must be >= 0");
        return NULL;
    }

    self = (ThreadContext *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    /* Until fully set up, dealloc sees a closed context with nothing held. */
    self->closed = 1;
    self->max_requests = max_requests;
    self->pool_size = pool_size;
    self->close_timeout = close_timeout;
    self->fork_gen = caio_fork_generation();
    if (caio_req_pool_init(&self->reqs, (size_t)max_requests) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    /* At most max_requests requests run in workers at once; the pool
     * never has more threads than that. */
    self->pool = caio_pool_new(
        (unsigned)(pool_size < max_requests ? pool_size : max_requests), &err);
    if (self->pool == NULL) {
        Py_DECREF(self);
        return caio_oserror(err);
    }
    self->closed = 0;
    live_link(self);
    return (PyObject *)self;
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

/* close(), dealloc and the atexit hook. quiet: swallow errors from futures
 * (at exit their loops are usually closed already). */
static void ctx_shutdown(ThreadContext *self, int quiet)
{
    caio_pool *pool = self->pool;
    caio_req *req, *next, **stuck;
    size_t nstuck = 0, cap;

    if (self->closed || pool == NULL) {
        self->closed = 1;
        return;
    }
    self->closed = 1;   /* first: other threads now get ValueError */
    live_unlink(self);

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
            complete_operation_here(req, -ECANCELED);
        } else {
            req->result = -ECANCELED;
            if (complete_fast(self, req) < 0)
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
        if (complete_fast(self, req) < 0)
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

static PyObject *ctx_close(ThreadContext *self, PyObject *unused)
{
    ctx_shutdown(self, 0);
    Py_RETURN_NONE;
}

/* ---- fast path: read_async and friends -------------------------------- */

static PyObject *ctx_async(ThreadContext *self, int opcode, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames)
{
    caio_req *req;
    ssize_t moved = 0;
    enum caio_nowait how = CAIO_NOWAIT_POOL;
    PyObject *fut;
    int err;

    if (ctx_check(self) < 0)
        return NULL;
    if ((req = caio_req_get(&self->reqs)) == NULL)
        return NULL;
    if (caio_req_prepare(req, opcode, args, nargs, kwnames) < 0) {
        caio_req_put(&self->reqs, req);
        return NULL;
    }

    if ((opcode == CAIO_READ || opcode == CAIO_WRITE) && req->nbytes <= NOWAIT_MAX) {
        if (req->nbytes >= NOWAIT_GIL_RELEASE) {
            Py_BEGIN_ALLOW_THREADS
            how = caio_io_nowait(opcode, req->fd, req->data, req->nbytes,
                                 req->offset, &moved);
            Py_END_ALLOW_THREADS
        } else {
            how = caio_io_nowait(opcode, req->fd, req->data, req->nbytes,
                                 req->offset, &moved);
        }
        if (how == CAIO_NOWAIT_DONE) {
            PyObject *value;
            req->result = moved;
            req->state = CAIO_REQ_DONE;
            value = caio_req_value(req);
            caio_req_put(&self->reqs, req);
            return value;
        }
        /* The worker does the rest. */
        req->data += moved;
        req->nbytes -= (size_t)moved;
    }
    caio_thread_ext_of(req)->done = moved;
    caio_thread_ext_of(req)->shift = req->offset <= INT64_MAX - moved ? moved : 0;
    req->offset += caio_thread_ext_of(req)->shift;

    /* The GIL may have been released: check again. */
    if (self->closed || self->factory == NULL) {
        caio_req_put(&self->reqs, req);
        if (self->closed)
            PyErr_SetString(PyExc_ValueError, "I/O operation on closed context");
        else
            PyErr_SetString(PyExc_RuntimeError,
                            "call set_future_factory() before using the *_async methods");
        return NULL;
    }
    if ((fut = PyObject_CallNoArgs(self->factory)) == NULL) {
        caio_req_put(&self->reqs, req);
        return NULL;
    }
    req->future = Py_NewRef(fut);
    req->state = CAIO_REQ_INFLIGHT;
    if ((err = caio_pool_submit(self->pool, req)) != 0) {
        caio_req_put(&self->reqs, req);
        Py_DECREF(fut);
        return raise_submit_error(self, err);
    }
    return fut;
}

static PyObject *ctx_read_async(ThreadContext *self, PyObject *const *args,
                                Py_ssize_t nargs, PyObject *kwnames)
{
    return ctx_async(self, CAIO_READ, args, nargs, kwnames);
}

static PyObject *ctx_write_async(ThreadContext *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames)
{
    return ctx_async(self, CAIO_WRITE, args, nargs, kwnames);
}

static PyObject *ctx_fsync_async(ThreadContext *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames)
{
    return ctx_async(self, CAIO_FSYNC, args, nargs, kwnames);
}

static PyObject *ctx_fdsync_async(ThreadContext *self, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames)
{
    return ctx_async(self, CAIO_FDSYNC, args, nargs, kwnames);
}

static PyObject *ctx_process_events(ThreadContext *self, PyObject *unused)
{
    caio_req *req, *next;
    PyObject *first_error = NULL;
    long count = 0;

    if (ctx_check(self) < 0)
        return NULL;
    for (req = caio_pool_take_done(self->pool); req != NULL; req = next) {
        next = req->next;
        req->next = NULL;
        count++;
        if (complete_fast(self, req) < 0) {
            /* Finish the batch anyway; raise the first error after it. */
            if (first_error == NULL)
                first_error = caio_fetch_exception();
            else
                PyErr_WriteUnraisable((PyObject *)self);
        }
    }
    if (first_error != NULL) {
        restore_error(first_error);
        return NULL;
    }
    return PyLong_FromLong(count);
}

static PyObject *ctx_set_future_factory(ThreadContext *self, PyObject *factory)
{
    if (ctx_check(self) < 0)
        return NULL;
    if (!PyCallable_Check(factory)) {
        PyErr_Format(PyExc_TypeError, "future factory must be callable, not %.100s",
                     Py_TYPE(factory)->tp_name);
        return NULL;
    }
    if (caio_futures_init() < 0)
        return NULL;
    Py_XSETREF(self->factory, Py_NewRef(factory));
    Py_RETURN_NONE;
}

static PyObject *ctx_cancel_future(ThreadContext *self, PyObject *future)
{
    caio_req *req;

    if (ctx_check(self) < 0)
        return NULL;
    req = caio_pool_unqueue_future(self->pool, future);
    if (req == NULL) {
        /* Running: a wait on a pipe is interrupted (else the worker would
         * stay blocked for nobody); a file read just finishes. Done or
         * unknown: nothing to do. Its result is dropped either way. */
        caio_pool_kick_future(self->pool, future);
        Py_RETURN_FALSE;
    }
    req->result = -ECANCELED;
    if (complete_fast(self, req) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

/* ---- caio 0.12 API: Operation objects -------------------------------- */

static PyObject *ctx_submit(ThreadContext *self, PyObject *const *args,
                            Py_ssize_t nargs)
{
    Py_ssize_t i, j;
    caio_req *req;
    int err;

    if (ctx_check(self) < 0)
        return NULL;
    /* Check them all before queueing any. WAITING marks the ones seen, so
     * the same Operation twice is caught too. */
    for (i = 0; i < nargs; i++) {
        if ((req = caio_operation_req(args[i])) == NULL) {
            for (j = 0; j < i; j++)
                operation_req(args[j])->state = CAIO_REQ_FREE;
            return NULL;
        }
        req->state = CAIO_REQ_WAITING;
    }
    for (i = 0; i < nargs; i++) {
        req = operation_req(args[i]);
        caio_thread_ext_of(req)->done = 0;
        caio_thread_ext_of(req)->shift = 0;
        req->state = CAIO_REQ_INFLIGHT;
        /* Held until its callback ran (in the worker). */
        Py_INCREF(args[i]);
        if ((err = caio_pool_submit(self->pool, req)) != 0) {
            req->state = CAIO_REQ_FREE;
            Py_DECREF(args[i]);
            for (j = i + 1; j < nargs; j++)
                operation_req(args[j])->state = CAIO_REQ_FREE;
            return raise_submit_error(self, err);
        }
    }
    return PyLong_FromSsize_t(nargs);
}

static PyObject *ctx_cancel(ThreadContext *self, PyObject *const *args,
                            Py_ssize_t nargs)
{
    Py_ssize_t i, count = 0;

    if (ctx_check(self) < 0)
        return NULL;
    for (i = 0; i < nargs; i++) {
        if (!PyObject_TypeCheck(args[i], &CaioOperation_Type)) {
            PyErr_Format(PyExc_TypeError, "expected %s, got %.100s",
                         CaioOperation_Type.tp_name, Py_TYPE(args[i])->tp_name);
            return NULL;
        }
    }
    for (i = 0; i < nargs; i++) {
        caio_req *req = operation_req(args[i]);
        if (caio_pool_unqueue(self->pool, req)) {
            complete_operation_here(req, -ECANCELED);
            count++;
        } else {
            /* Running: see cancel_future. Not counted: it may finish. */
            caio_pool_kick(self->pool, req);
        }
    }
    return PyLong_FromSsize_t(count);
}

/* ---- properties, GC, type ---------------------------------------------- */

static PyObject *ctx_get_fileno(ThreadContext *self, void *closure)
{
    if (ctx_check(self) < 0)
        return NULL;
    return PyLong_FromLong(caio_pool_fileno(self->pool));
}

static PyObject *ctx_get_max_requests(ThreadContext *self, void *closure)
{
    return PyLong_FromLong(self->max_requests);
}

static PyObject *ctx_get_pool_size(ThreadContext *self, void *closure)
{
    return PyLong_FromLong(self->pool_size);
}

static PyObject *ctx_get_closed(ThreadContext *self, void *closure)
{
    return PyBool_FromLong(self->closed);
}

static PyObject *ctx_repr(ThreadContext *self)
{
    return PyUnicode_FromFormat("<%s max_requests=%d pool_size=%d%s>",
                                Py_TYPE(self)->tp_name, self->max_requests,
                                self->pool_size, self->closed ? " closed" : "");
}

static int ctx_traverse(ThreadContext *self, visitproc visit, void *arg)
{
    /* Not the requests in flight: their buffers belong to the workers. */
    Py_VISIT(self->factory);
    return 0;
}

static int ctx_clear(ThreadContext *self)
{
    Py_CLEAR(self->factory);
    return 0;
}

static void ctx_dealloc(ThreadContext *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    if (!self->closed) {
        caio_saved_error saved = caio_error_save();
        ctx_shutdown(self, 0);
        caio_error_restore(saved);
    }
    live_unlink(self);
    if (self->pool != NULL)
        caio_pool_release(self->pool);
    if (self->reqs.reqs != NULL)
        caio_req_pool_free(&self->reqs, self->leak_reqs);
    Py_CLEAR(self->factory);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define FASTCALL_KW(fn) (PyCFunction)(void (*)(void))(fn), METH_FASTCALL | METH_KEYWORDS

#define RAISES_COMMON \
    "Raises ValueError once closed, RuntimeError in a forked child."
#define RAISES_ASYNC \
    "Raises OSError if it failed during the call, TypeError/ValueError for\n" \
    "bad arguments, MemoryError, RuntimeError without a future factory.\n" \
    RAISES_COMMON

static PyMethodDef ctx_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))ctx_submit, METH_FASTCALL,
     "submit(*operations) -> int: queue Operations; returns how many.\n"
     "Their callbacks run in the worker thread that finished them.\n"
     "Raises TypeError (not an Operation of this module), RuntimeError\n"
     "(already submitted or finished). " RAISES_COMMON},
    {"cancel", (PyCFunction)(void (*)(void))ctx_cancel, METH_FASTCALL,
     "cancel(*operations) -> int: take back the ones no worker started\n"
     "(their callbacks get -ECANCELED, here); returns how many. Running\n"
     "ones waiting on a pipe, socket or tty are interrupted (-ECANCELED).\n"
     "Raises TypeError. " RAISES_COMMON},
    {"close", (PyCFunction)ctx_close, METH_NOARGS,
     "Stop the pool: queued requests fail with ECANCELED, running ones are\n"
     "waited for (up to close_timeout, then given up on and leaked).\n"
     "Idempotent; never raises."},
    {"process_events", (PyCFunction)ctx_process_events, METH_NOARGS,
     "Resolve the futures of finished requests; never blocks; returns how\n"
     "many. Raises what a future's set_result raised (the rest are still\n"
     "resolved). " RAISES_COMMON},
    {"set_future_factory", (PyCFunction)ctx_set_future_factory, METH_O,
     "set_future_factory(factory): factory() makes the futures *_async return.\n"
     "Raises TypeError if it is not callable. " RAISES_COMMON},
    {"read_async", FASTCALL_KW(ctx_read_async),
     "read_async(nbytes, fd, offset, priority=0) -> bytes | Future[bytes]\n"
     "The bytes at once on a page-cache hit, else a future.\n" RAISES_ASYNC},
    {"write_async", FASTCALL_KW(ctx_write_async),
     "write_async(payload, fd, offset, priority=0) -> int | Future[int]\n"
     RAISES_ASYNC},
    {"fsync_async", FASTCALL_KW(ctx_fsync_async),
     "fsync_async(fd, priority=0) -> Future[None]\n" RAISES_ASYNC},
    {"fdsync_async", FASTCALL_KW(ctx_fdsync_async),
     "fdsync_async(fd, priority=0) -> Future[None]\n" RAISES_ASYNC},
    {"cancel_future", (PyCFunction)ctx_cancel_future, METH_O,
     "cancel_future(future) -> bool: True if the request had not started\n"
     "(it will not run; the future fails with ECANCELED unless cancelled);\n"
     "False if a worker has it (a wait on a pipe, socket or tty is\n"
     "interrupted, file I/O finishes; the result is dropped), it is done,\n"
     "or unknown. " RAISES_COMMON},
    {NULL}
};

static PyGetSetDef ctx_getset[] = {
    {"fileno", (getter)ctx_get_fileno, NULL,
     "Readable when completions wait for process_events().", NULL},
    {"max_requests", (getter)ctx_get_max_requests, NULL,
     "Requests the workers run at once, at most.", NULL},
    {"pool_size", (getter)ctx_get_pool_size, NULL, "Worker threads, at most.", NULL},
    {"closed", (getter)ctx_get_closed, NULL, "True after close().", NULL},
    {NULL}
};

static PyTypeObject ThreadContext_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = CONTEXT_NAME,
    .tp_basicsize = sizeof(ThreadContext),
    .tp_dealloc = (destructor)ctx_dealloc,
    .tp_repr = (reprfunc)ctx_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Context(max_requests=512, pool_size=8, close_timeout=10.0)\n\n"
              "File I/O in a pool of POSIX threads. At most max_requests requests\n"
              "run at once (more wait their turn, in order) in at most pool_size\n"
              "threads, started on demand. close() waits close_timeout seconds for\n"
              "running requests, then gives up on them.\n"
              "Raises TypeError, ValueError (out of range), OSError.",
    .tp_traverse = (traverseproc)ctx_traverse,
    .tp_clear = (inquiry)ctx_clear,
    .tp_weaklistoffset = offsetof(ThreadContext, weakreflist),
    .tp_methods = ctx_methods,
    .tp_getset = ctx_getset,
    .tp_new = ctx_new,
};

/* ---- module ------------------------------------------------------------ */

/* Registered with atexit: runs before the interpreter starts finalizing,
 * while workers may still take the GIL safely. Closes every context (which
 * waits for callbacks in progress), then forbids workers to enter Python. */
static PyObject *mod_atexit(PyObject *module, PyObject *unused)
{
    while (live_contexts != NULL) {
        ThreadContext *ctx = live_contexts;
        Py_INCREF(ctx);
        ctx_shutdown(ctx, 1);   /* unlinks it */
        Py_DECREF(ctx);
    }
    caio_pool_python_exiting();
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"_atexit", (PyCFunction)mod_atexit, METH_NOARGS,
     "Close every context (registered with atexit)."},
    {NULL}
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = MODULE_NAME,
    .m_doc = "Asynchronous file I/O in a pool of POSIX threads.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit_thread_aio(void)
{
    PyObject *m, *atexit_mod, *hook, *r;

    if (caio_fork_init() < 0)
        return NULL;
    if ((m = PyModule_Create(&module_def)) == NULL)
        return NULL;
    if (PyType_Ready(&ThreadContext_Type) < 0 ||
        PyModule_AddObjectRef(m, "Context", (PyObject *)&ThreadContext_Type) < 0 ||
        caio_operation_add_type(m, MODULE_NAME ".Operation") < 0)
        goto fail;
    /* Whether reads can finish during the call (tests need to know). */
    if (PyModule_AddIntConstant(m, "_HAVE_NOWAIT", caio_io_have_nowait) < 0)
        goto fail;
    if ((atexit_mod = PyImport_ImportModule("atexit")) == NULL)
        goto fail;
    hook = PyObject_GetAttrString(m, "_atexit");
    r = hook ? PyObject_CallMethod(atexit_mod, "register", "O", hook) : NULL;
    Py_XDECREF(hook);
    Py_DECREF(atexit_mod);
    if (r == NULL)
        goto fail;
    Py_DECREF(r);
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
