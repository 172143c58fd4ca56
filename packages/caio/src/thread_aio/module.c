/* caio.thread_aio: the Python type. Its methods read in the same order in
 * every backend's module.c: the *_async methods (argument checks, then the
 * fast path: a non-blocking read or write on this thread that finishes
 * page-cache hits with no thread hop; then the slow path: a worker does the
 * blocking call with no GIL, the loop is woken once per batch), cancel_future,
 * submit/cancel, process_events, set_future_factory, then the type
 * (creation, close, dealloc), attributes and the module. */
#include "context.h"
#include "fsops.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>

static PyTypeObject ThreadContext_Type;

/* ---- the *_async methods ----------------------------------------------------- */

/* A file whose buffered writes RWF_NOWAIT refuses (EOPNOTSUPP: ext4 and
 * tmpfs refuse every one) need not be asked each time: the refusal is kept
 * (self->refused, common/nowait.h), so a 4 KiB write one at a time saves a
 * system call of its ~2.8 us; the pool takes the others. A descriptor
 * reused for a file that takes such writes loses a few to the slow path. */
static enum caio_nowait try_nowait(ThreadContext *self, caio_req *req, ssize_t *moved)
{
    enum caio_nowait how;

    if (req->opcode == CAIO_WRITE && self->refused.answer &&
        caio_fd_memo_holds(&self->refused, req->fd))
        return CAIO_NOWAIT_UNSUPPORTED;
    how = caio_req_nowait(req, 1, NULL, &self->direct, moved);
    if (req->opcode == CAIO_WRITE &&
        (how == CAIO_NOWAIT_UNSUPPORTED || req->fd == self->refused.fd))
        caio_fd_memo_keep(&self->refused, req->fd, how == CAIO_NOWAIT_UNSUPPORTED);
    return how;
}

static PyObject *ctx_async(ThreadContext *self, int opcode, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames)
{
    caio_req *req;
    ssize_t moved = 0;
    enum caio_nowait how = CAIO_NOWAIT_SLOW;
    PyObject *fut;
    int err;

    if (context_enter(self) < 0)
        return NULL;
    if (caio_context_async_check((caio_context *)self) < 0)
        return NULL;
    if ((req = caio_req_get(&self->reqs)) == NULL)
        return NULL;
    if (caio_req_prepare(req, &self->spare, opcode, args, nargs, kwnames) < 0) {
        caio_req_put(&self->reqs, req);
        return NULL;
    }

    if ((opcode == CAIO_READ || opcode == CAIO_WRITE || opcode == CAIO_READINTO) &&
        req->nbytes < self->nowait_below) {
        how = try_nowait(self, req, &moved);
        if (how == CAIO_NOWAIT_DONE) {
            PyObject *value;
            req->result = moved;
            req->state = CAIO_REQ_DONE;
            value = caio_req_value(req);
            if (value != NULL && opcode == CAIO_READ)
                caio_spare_keep(&self->spare, value);
            caio_req_put(&self->reqs, req);
            return value;
        }
        /* The worker does the rest. */
        req->data += moved;
        req->nbytes -= (size_t)moved;
    }
    if (((opcode == CAIO_WRITE || opcode == CAIO_WRITEV) && moved == 0 &&
         thread_ctx_write_here(self, req)) ||
        (opcode == CAIO_FS && caio_fs_inline((caio_context *)self, req))) {
        /* A lone write with the loop idle, made here (context.c), or a
         * stat of a cached path (fsops.c): answered without a worker. */
        PyObject *value = caio_req_value(req);
        caio_req_put(&self->reqs, req);
        return value;
    }
    caio_thread_ext_of(req)->done = moved;
    caio_thread_ext_of(req)->shift = req->offset <= INT64_MAX - moved ? moved : 0;
    caio_thread_ext_of(req)->serial = how == CAIO_NOWAIT_UNSUPPORTED && opcode == CAIO_WRITE;
    req->offset += caio_thread_ext_of(req)->shift;

    /* The GIL may have been released: check again. */
    if (self->closed || self->factory == NULL) {
        caio_req_put(&self->reqs, req);
        if (self->closed)
            caio_context_closed_error();
        else
            caio_context_no_factory();
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
        return thread_ctx_submit_error(self, err);
    }
    return fut;
}

CAIO_ASYNC_TRAMPOLINES(ThreadContext, ctx_async)
#ifdef CAIO_HAVE_FS
CAIO_FS_TRAMPOLINE(ThreadContext, ctx_async)
#endif

static PyObject *ctx_cancel_future(ThreadContext *self, PyObject *future)
{
    caio_req *req;

    if (context_enter(self) < 0)
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
    if (thread_ctx_complete_fast(self, req) < 0)
        return NULL;
    Py_RETURN_TRUE;
}


/* ---- submit / cancel (the caio 0.12 API) ------------------------------------ */

static PyObject *ctx_submit(ThreadContext *self, PyObject *const *args,
                            Py_ssize_t nargs)
{
    Py_ssize_t i, queued = 0;
    PyObject *ctxref;
    caio_req *req;
    int err;

    if (context_enter(self) < 0)
        return NULL;
    /* Nothing is queued unless every argument is an Operation. */
    if (caio_check_operations(args, nargs) < 0 ||
        (ctxref = caio_context_selfref((caio_context *)self)) == NULL)
        return NULL;
    for (i = 0; i < nargs; i++) {
        if ((req = caio_operation_take(args[i], ctxref)) == NULL)
            continue;   /* already submitted: skipped, as in caio 0.12 */
        caio_thread_ext_of(req)->done = 0;
        caio_thread_ext_of(req)->shift = 0;
        caio_thread_ext_of(req)->serial = 0;
        /* Marked before a worker can see it: a repeat later in this call
         * is skipped. */
        req->state = CAIO_REQ_INFLIGHT;
        /* Held until its callback ran (in the worker). */
        Py_INCREF(args[i]);
        if ((err = caio_pool_submit(self->pool, req)) != 0) {
            req->state = CAIO_REQ_FREE;
            Py_DECREF(args[i]);
            return thread_ctx_submit_error(self, err);
        }
        queued++;
    }
    return PyLong_FromSsize_t(queued);
}

static PyObject *ctx_cancel(ThreadContext *self, PyObject *const *args,
                            Py_ssize_t nargs)
{
    Py_ssize_t i, count = 0;

    if (context_enter(self) < 0)
        return NULL;
    if (caio_check_owned((caio_context *)self, args, nargs) < 0)
        return NULL;
    for (i = 0; i < nargs; i++) {
        caio_req *req = operation_req(args[i]);
        if (caio_pool_unqueue(self->pool, req)) {
            thread_complete_operation_here(req, -ECANCELED);
            count++;
        } else {
            /* Running: see cancel_future. Not counted: it may finish. */
            caio_pool_kick(self->pool, req);
        }
    }
    return PyLong_FromSsize_t(count);
}

static PyObject *ctx_process_events(ThreadContext *self, PyObject *unused)
{
    caio_req *req, *next;
    PyObject *first_error = NULL;
    long count = 0;

    if (context_enter(self) < 0)
        return NULL;
    for (req = caio_pool_take_done(self->pool); req != NULL; req = next) {
        next = req->next;
        req->next = NULL;
        count++;
        if (thread_ctx_complete_fast(self, req) < 0) {
            /* Finish the batch anyway; raise the first error after it. */
            if (first_error == NULL)
                first_error = caio_fetch_exception();
            else
                PyErr_WriteUnraisable((PyObject *)self);
        }
    }
    if (first_error != NULL) {
        caio_restore_exception(first_error);
        return NULL;
    }
    return PyLong_FromLong(count);
}

static PyObject *ctx_set_future_factory(ThreadContext *self, PyObject *const *args,
                                        Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *factory, *call_soon;

    if (context_enter(self) < 0)
        return NULL;
    if (caio_parse_future_factory(args, nargs, kwnames, &factory, &call_soon) < 0)
        return NULL;
    /* Workers wake the loop through the pool's descriptor: no call_soon. */
    Py_XDECREF(call_soon);
    caio_context_set_factory((caio_context *)self, factory, NULL);
    Py_RETURN_NONE;
}

/* ---- type: creation, close, dealloc ---------------------------------------- */

static int parse_pool_size(PyObject *ob, int *out)
{
    long value;
    int overflow = 0;

    if (ob == NULL || ob == Py_None) {
        *out = DEFAULT_POOL_SIZE;
        return 0;
    }
    if (!PyLong_Check(ob)) {
        PyErr_Format(PyExc_TypeError, "pool_size must be int, not %.100s",
                     Py_TYPE(ob)->tp_name);
        return -1;
    }
    value = PyLong_AsLongAndOverflow(ob, &overflow);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (overflow != 0 || value < 1 || value > LIMIT_POOL_SIZE) {
        PyErr_Format(PyExc_ValueError, "pool_size must be in 1..%d", LIMIT_POOL_SIZE);
        return -1;
    }
    *out = (int)value;
    return 0;
}

/* The rule python_aio's Context follows too: a real number (int, float,
 * anything with __float__ or __index__) but not a bool, which is a flag
 * passed by mistake, and >= 0. */
static int parse_close_timeout(PyObject *ob, double *out)
{
    double value;

    if (ob == NULL)
        return 0;
    if (PyBool_Check(ob) || (Py_TYPE(ob)->tp_as_number == NULL) ||
        (Py_TYPE(ob)->tp_as_number->nb_float == NULL &&
         Py_TYPE(ob)->tp_as_number->nb_index == NULL)) {
        PyErr_Format(PyExc_TypeError, "close_timeout must be a number, not %.100s",
                     Py_TYPE(ob)->tp_name);
        return -1;
    }
    value = PyFloat_AsDouble(ob);
    if (value == -1.0 && PyErr_Occurred())
        return -1;
    if (!(value >= 0)) {    /* also NaN */
        PyErr_SetString(PyExc_ValueError, "close_timeout must be >= 0");
        return -1;
    }
    *out = value;
    return 0;
}

static PyObject *ctx_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_requests", "pool_size", "close_timeout", "stat_cached",
                             NULL};
    PyObject *max_ob = NULL, *size_ob = NULL, *timeout_ob = NULL;
    double close_timeout = DEFAULT_CLOSE_TIMEOUT;
    unsigned max_requests;
    int pool_size, err = 0, stat_cached = 1;
    ThreadContext *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOO$p:Context", kwlist,
                                     &max_ob, &size_ob, &timeout_ob, &stat_cached))
        return NULL;
    if (caio_parse_max_requests(max_ob, CAIO_MAX_REQUESTS_DEFAULT, &max_requests) < 0 ||
        parse_pool_size(size_ob, &pool_size) < 0 ||
        parse_close_timeout(timeout_ob, &close_timeout) < 0)
        return NULL;

    self = (ThreadContext *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    /* Until fully set up, dealloc sees a closed context with nothing held. */
    self->closed = 1;
    self->max_requests = (int)max_requests;
    self->pool_size = pool_size;
    self->close_timeout = close_timeout;
    self->fork_gen = caio_fork_generation();
    caio_features_common(&self->features);
    self->stat_cached = stat_cached && caio_has(&self->features, CAIO_F_STAT_CACHED);
    self->nowait_below = caio_has(&self->features, CAIO_F_NOWAIT) ? CAIO_NOWAIT_MAX + 1 : 0;
    caio_fd_memo_init(&self->refused);
    caio_fd_memo_init(&self->direct);
    caio_lone_init(&self->lone_write);
    if (caio_req_pool_init(&self->reqs, (size_t)max_requests) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    /* At most max_requests requests run in workers at once; the pool
     * never has more threads than that. */
    self->pool = caio_pool_new(
        (unsigned)pool_size < max_requests ? (unsigned)pool_size : max_requests, &err);
    if (self->pool == NULL) {
        Py_DECREF(self);
        return caio_oserror(err);
    }
    self->closed = 0;
    thread_ctx_live_link(self);
    return (PyObject *)self;
}

static PyObject *ctx_close(ThreadContext *self, PyObject *unused)
{
    thread_ctx_shutdown(self, 0);
    Py_RETURN_NONE;
}

static PyObject *ctx_enter_cm(ThreadContext *self, PyObject *unused)
{
    if (self->closed) {
        caio_context_closed_error();
        return NULL;
    }
    return Py_NewRef(self);
}

static PyObject *ctx_exit_cm(ThreadContext *self, PyObject *args)
{
    return ctx_close(self, NULL);
}

struct visit_args {
    visitproc visit;
    void *arg;
};

static int visit_pool_req(caio_req *req, void *data)
{
    struct visit_args *va = data;

    return caio_req_visit(req, va->visit, va->arg);
}

static int ctx_traverse(ThreadContext *self, visitproc visit, void *arg)
{
    /* The futures and Operations of the requests in the pool (see
     * caio_req_visit); not their buffers, which the workers own. Not in a
     * forked child (a parent's worker may have held the pool's lock at
     * fork time) nor once closed (none is left). */
    if (!self->closed && self->pool != NULL && self->fork_gen == caio_fork_generation()) {
        struct visit_args va = {visit, arg};
        int ret = caio_pool_visit(self->pool, visit_pool_req, &va);
        if (ret)
            return ret;
    }
    Py_VISIT(self->idle_check);
    return caio_context_traverse((caio_context *)self, visit, arg);
}

static int ctx_clear(ThreadContext *self)
{
    Py_CLEAR(self->idle_check);
    caio_context_clear((caio_context *)self);
    return 0;
}

/* A context dropped open is closed here, before the collector clears
 * anything of a cycle it is in (its futures, their tasks). */
static void ctx_finalize(ThreadContext *self)
{
    if (!self->closed)
        CAIO_CLOSE_IN_FINALIZER(self, thread_ctx_shutdown(self, 0));
}

static void ctx_dealloc(ThreadContext *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return;     /* resurrected by a callback that ran while closing */
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    thread_ctx_live_unlink(self);
    if (self->pool != NULL)
        caio_pool_release(self->pool);
    if (self->reqs.reqs != NULL)
        caio_req_pool_free(&self->reqs, self->leak_reqs);
    Py_CLEAR(self->idle_check);
    caio_context_clear((caio_context *)self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ---- attributes -------------------------------------------------------------- */

static PyObject *ctx_get_fileno(ThreadContext *self, void *closure)
{
    if (context_enter(self) < 0)
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

static PyObject *ctx_get_lone_write(ThreadContext *self, void *closure)
{
    return PyBool_FromLong(self->lone_write.avg > CAIO_LONE_WAIT_ABOVE);
}

static PyObject *ctx_set_idle_check(ThreadContext *self, PyObject *check)
{
    if (caio_check_callable_or_none(check, "the idle check") < 0)
        return NULL;
    Py_XSETREF(self->idle_check, check == Py_None ? NULL : Py_NewRef(check));
    Py_RETURN_NONE;
}

static PyObject *ctx_repr(ThreadContext *self)
{
    return PyUnicode_FromFormat("<%s max_requests=%d pool_size=%d%s>",
                                Py_TYPE(self)->tp_name, self->max_requests,
                                self->pool_size, self->closed ? " closed" : "");
}

static PyMethodDef ctx_methods[] = {
    CAIO_CONTEXT_METHODS(
        "\nCallbacks run in the worker thread that finished them.",
        "\nRunning ones waiting on a pipe, socket or tty are interrupted\n"
        "(-ECANCELED), not counted; their callbacks get -ECANCELED, here.",
        "\nRaises what a future's set_result raised (the rest are still\nresolved).",
        ""),
#ifdef CAIO_HAVE_FS
    CAIO_FS_METHODS,
#endif
    {"close", (PyCFunction)ctx_close, METH_NOARGS,
     "close($self, /)\n--\n\n"
     "Stop the pool: queued requests fail with ECANCELED, running ones are\n"
     "waited for (up to close_timeout, then given up on and leaked).\n"
     "Idempotent; never raises."},
    {"_set_idle_check", (PyCFunction)ctx_set_idle_check, METH_O,
     "_set_idle_check($self, check, /)\n--\n\n"
     "check() tells whether the event loop has nothing else to run; only\n"
     "then is a lone buffered write made in the call (None: never)."},
    {NULL}
};

static PyObject *ctx_get_kernel_features(ThreadContext *self, void *closure)
{
    return caio_features_names(&self->features);
}

static PyGetSetDef ctx_getset[] = {
    {"_kernel_features", (getter)ctx_get_kernel_features, NULL,
     "The kernel features this context found (caio._features names).", NULL},
    {"fileno", (getter)ctx_get_fileno, NULL,
     "Readable when completions wait for process_events().", NULL},
    {"max_requests", (getter)ctx_get_max_requests, NULL,
     "Requests the workers run at once, at most.", NULL},
    {"pool_size", (getter)ctx_get_pool_size, NULL, "Worker threads, at most.", NULL},
    {"closed", (getter)ctx_get_closed, NULL, "True after close().", NULL},
    {"lone_write", (getter)ctx_get_lone_write, NULL,
     "True while a buffered write alone on the context is made in the call, "
     "on the calling thread, when the loop is idle (most such writes are fast "
     "here).", NULL},
    {NULL}
};

static PyTypeObject ThreadContext_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = CONTEXT_NAME,
    .tp_basicsize = sizeof(ThreadContext),
    .tp_dealloc = (destructor)ctx_dealloc,
    .tp_repr = (reprfunc)ctx_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Context(max_requests=None, pool_size=None, close_timeout=10.0, *, "
              "stat_cached=True)\n--\n\n"
              "caio.thread_aio context: file I/O in a pool of POSIX threads. At most max_requests requests\n"
              "run at once (more wait their turn, in order) in at most pool_size\n"
              "threads (default 16), started on demand. close() waits close_timeout seconds for\n"
              "running requests, then gives up on them. stat_cached: answer a stat\n"
              "of a path in the dentry cache (or an fd) on the calling thread.\n"
              "Raises TypeError, ValueError (out of range), OSError.",
    .tp_traverse = (traverseproc)ctx_traverse,
    .tp_clear = (inquiry)ctx_clear,
    .tp_finalize = (destructor)ctx_finalize,
    .tp_weaklistoffset = offsetof(ThreadContext, weakreflist),
    .tp_methods = ctx_methods,
    .tp_getset = ctx_getset,
    .tp_new = ctx_new,
};

/* ---- module ------------------------------------------------------------------ */

/* Registered with atexit: runs before the interpreter starts finalizing,
 * while workers may still take the GIL safely. Closes every context (which
 * waits for callbacks in progress), then forbids workers to enter Python. */
static PyObject *mod_atexit(PyObject *module, PyObject *unused)
{
    while (thread_live_contexts != NULL) {
        ThreadContext *ctx = thread_live_contexts;
        Py_INCREF(ctx);
        thread_ctx_shutdown(ctx, 1);   /* unlinks it */
        Py_DECREF(ctx);
    }
    caio_pool_python_exiting();
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"_atexit", (PyCFunction)mod_atexit, METH_NOARGS,
     "_atexit($module, /)\n--\n\nClose every context (registered with atexit)."},
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

    if (caio_fork_init() < 0 || caio_features_init() < 0)
        return NULL;
    if ((m = PyModule_Create(&module_def)) == NULL)
        return NULL;
    if (PyType_Ready(&ThreadContext_Type) < 0 ||
        PyModule_AddObjectRef(m, "Context", (PyObject *)&ThreadContext_Type) < 0 ||
        caio_operation_add_type(m, MODULE_NAME ".Operation") < 0 ||
        caio_features_add_names(m) < 0)
        goto fail;
    /* Whether reads can finish during the call (tests need to know). */
    if (PyModule_AddIntConstant(m, "_HAVE_NOWAIT",
                                caio_nowait_available && !caio_kernel_lacks(CAIO_F_NOWAIT)) < 0)
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

