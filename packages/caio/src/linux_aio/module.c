/* caio.linux_aio: the Python type. Its methods read in the same order in
 * every backend's module.c: the *_async methods (argument checks, then the
 * fast path: submit, reap at once, return the value; then the slow path: a
 * future that process_events() resolves), submit/cancel, process_events,
 * set_future_factory, then the type (creation, close, dealloc), attributes
 * and the module. The engine is in context.c, the kernel layer in
 * setup.c/queue.c. */
#include "context.h"
#include "kernel_features.h"
#include "notify.h"
#include <errno.h>
#include <stddef.h>
#include <unistd.h>

static PyTypeObject AioContext_Type;

/* ---- the *_async methods ----------------------------------------------------- */

/* Batch this request (common/batch.h)? Not when it is alone (nothing in
 * flight, no flush coming: nobody to share an io_submit with, and the
 * flush would cost it a loop iteration), nor for the probe, nor from a
 * thread other than the loop's (call_soon is not thread-safe). */
static int batch_this(AioContext *self)
{
    if (!self->batch.batching ||
        (self->inflight == 0 && !self->batch.flush_scheduled) ||
        caio_batch_probe(&self->batch))
        return 0;
    return PyThread_get_thread_ident() == self->owner_thread;
}

/* For the batching policy: did this request, found done right after its
 * io_submit, finish inside the call? A buffered read or write does (kernel
 * AIO makes it there). O_DIRECT I/O is asynchronous even when a fast
 * device completes it before we look: it counts as not inline, or such a
 * device turns batching off and the task that submitted goes on to its
 * next read at once, one device round trip at a time, while the others
 * wait (64 in flight: 80k -> 100k reads/s once counted so). O_DIRECT
 * needs an aligned buffer; a read retried after a page-cache miss is
 * buffered (it has lost RWF_NOWAIT, queue.c). */
static int done_inline(caio_req *req)
{
    if (caio_opcode_vectored(req->opcode) ||
        !caio_nowait_may_be_direct(req->data, req->nbytes))
        return 1;
    if (req->opcode == CAIO_READ || req->opcode == CAIO_READINTO)
        return !(aio_req_iocb(req)->aio_rw_flags & RWF_NOWAIT);
    return 0;
}

/* The short wait for a lone miss (common/batch.h; linux_uring/batch.c
 * has the why). One O_DIRECT read at a time goes to the device inside
 * io_submit and completes later: through the loop, that costs a future, a
 * sleep in epoll_wait, an eventfd wake-up and a loop iteration, a third
 * more than the read itself on a fast disk. When it is alone in flight and
 * the loop has nothing else to run (the adapter's check), wait for it in
 * io_getevents, at most CAIO_LONE_WAIT_NS, the GIL released (with a
 * timer slack once the waits keep ending in time: aio_wait_mine in
 * queue.c). Buffered reads never get here: they are done inside
 * io_submit. */
static enum aio_mine lone_wait(AioContext *self, caio_req *req)
{
    enum aio_mine mine;
    long long took;

    if (self->inflight != 1 || self->wait_head != NULL || self->idle_check == NULL ||
        !caio_opcode_reads(req->opcode) || done_inline(req) || !caio_lone_try(&self->lone))
        return AIO_MINE_PENDING;
    /* The check is Python code: it may have closed us, or queued requests. */
    if (!caio_loop_idle(self->idle_check, (PyObject *)self) || self->closed ||
        self->inflight != 1 || self->wait_head != NULL)
        return AIO_MINE_PENDING;
    mine = aio_wait_mine(self, req, CAIO_LONE_WAIT_NS,
                         caio_lone_slack(&self->lone) ? CAIO_LONE_SLACK_NS : 0, &took);
    /* Done in time: with the slack, a read may come back later than the
     * bound; that counts as a failed wait. */
    caio_lone_note(&self->lone, mine != AIO_MINE_PENDING && took <= CAIO_LONE_WAIT_NS);
    /* The kernel signalled the eventfd for it: with nothing else in flight
     * or to deliver, that signal would only wake the loop for nothing. */
    if (mine == AIO_MINE_DONE && self->inflight == 0 && self->ready_head == NULL)
        caio_eventfd_drain(self->efd);
    return mine;
}

static PyObject *ctx_async(AioContext *self, int opcode, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *factory, *fut, *addr;
    caio_req *req;
    long r, err;
    int at_once, batch;

    if (context_enter(self) < 0)
        return NULL;
    if (caio_context_async_check((caio_context *)self) < 0) {
        context_leave(self);
        return NULL;
    }
    if ((req = caio_req_get(&self->pool)) == NULL) {
        context_leave(self);
        return NULL;
    }
    if (caio_req_prepare(req, &self->spare, opcode, args, nargs, kwnames) < 0) {
        caio_req_put(&self->pool, req);
        context_leave(self);
        return NULL;
    }
    /* Nothing queued ahead and a free slot: the request may go to the
     * kernel at once. (The context's mutex is held throughout, the GIL
     * released or not: nobody else changes either.) */
    at_once = self->wait_head == NULL && self->inflight < self->max_requests;
    batch = at_once && batch_this(self);
    /* A buffered read or write first without io_submit (queue.c), only
     * then: not past requests waiting ahead of it, nor past max_requests;
     * nor while batching, where most requests do not finish inline. */
    if (at_once && !batch) {
        if ((err = aio_req_prep_first(self, req)) == 1) {
            caio_batch_note(&self->batch, 1, self->call_soon != NULL);
            goto done;
        }
    } else {
        err = aio_req_prep(self, req);
    }
    if (err < 0) {
        aio_req_fail(req, err, 0);
        goto done;
    }
    if (batch) {
        /* Into the waiting FIFO: the flush submits the loop iteration's
         * requests with one io_submit. */
        if (caio_batch_schedule(&self->batch, (PyObject *)self, self->call_soon) == 0) {
            at_once = 0;
        } else {
            /* No flush coming (the loop is closing): submit now rather
             * than strand the request. */
            PyErr_WriteUnraisable((PyObject *)self);
            self->batch.batching = 0;
        }
    }

    /* Fast path. What blocks (a read of a regular file that is not
     * cached, a write to a device) runs inside io_submit; a read answered
     * -EAGAIN under RWF_NOWAIT goes in again allowed to block; more rounds
     * than that go through the queue. */
    if (at_once) {
        for (int round = 0; round < 3; round++) {
            r = aio_submit_one(self, req);
            if (r == 1) {
                switch (aio_reap(self, req)) {
                case AIO_MINE_DONE:
                    caio_batch_note(&self->batch, done_inline(req), self->call_soon != NULL);
                    goto done;
                case AIO_MINE_PENDING: {
                    enum aio_mine waited;

                    caio_batch_note(&self->batch, 0, self->call_soon != NULL);
                    waited = lone_wait(self, req);
                    if (waited == AIO_MINE_DONE)
                        goto done;
                    if (waited == AIO_MINE_RETRY)
                        continue;
                    goto pending;
                }
                case AIO_MINE_RETRY:
                    continue;
                }
            }
            if (r == -EAGAIN) {
                if (self->inflight == 0) {
                    /* Nothing in flight will free kernel resources. */
                    req->result = -EAGAIN;
                    goto done;
                }
                break;
            }
            if (!aio_submit_failed(self, req, -r))
                goto done;
        }
        /* Not submitted (yet): nothing else may wake process_events(). */
        aio_wake(self);
    }
    req->state = CAIO_REQ_WAITING;
    caio_fifo_push(&self->wait_head, &self->wait_tail, req);
    /* A batch is submitted once it has AIO_FLUSH_AT requests (context.h). */
    if (self->batch.flush_scheduled && ++self->batched >= AIO_FLUSH_AT)
        aio_pump(self);

pending:
    /* Slow path: a future for process_events() to resolve. */
    factory = Py_NewRef(self->factory);
    fut = PyObject_CallNoArgs(factory);
    Py_DECREF(factory);
    if (fut == NULL)
        goto orphan;
    addr = PyLong_FromVoidPtr(req);
    if (addr == NULL || PyDict_SetItem(self->futures, fut, addr) < 0) {
        Py_XDECREF(addr);
        Py_DECREF(fut);
        goto orphan;
    }
    Py_DECREF(addr);
    req->future = Py_NewRef(fut);
    context_leave(self);
    return fut;

orphan:
    /* No future to resolve. A request still waiting is taken back; one in
     * flight returns to the pool when its completion is reaped. */
    if (req->state == CAIO_REQ_WAITING &&
        caio_fifo_remove(&self->wait_head, &self->wait_tail, req))
        caio_req_put(&self->pool, req);
    context_leave(self);
    return NULL;

done: {
        PyObject *value;

        req->state = CAIO_REQ_DONE;
        self->outside++;
        context_leave(self);
        value = aio_ctx_req_result(req);
        if (value != NULL && req->opcode == CAIO_READ)
            caio_spare_keep(&self->spare, value);
        caio_req_clear(req);   /* may run Python code: outside the lock */
        aio_ctx_return_reqs(self, req);
        return value;
    }
}

CAIO_ASYNC_TRAMPOLINES(AioContext, ctx_async)

static PyObject *ctx_cancel_future(AioContext *self, PyObject *fut)
{
    PyObject *addr;
    caio_req *req;
    int woke = 0, done;

    if (context_enter(self) < 0)
        return NULL;
    addr = PyDict_GetItemWithError(self->futures, fut);
    if (addr == NULL) {
        context_leave(self);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_FALSE;
    }
    req = PyLong_AsVoidPtr(addr);
    done = req != NULL && aio_ctx_cancel_req(self, req, &woke);
    if (woke)
        aio_wake(self);
    context_leave(self);
    return PyBool_FromLong(done);
}


/* ---- submit / cancel (the caio 0.12 API) ------------------------------------ */

static PyObject *ctx_submit(AioContext *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t i, queued = 0;
    PyObject *ctxref;
    int woke = 0;
    long err;

    if (context_enter(self) < 0)
        return NULL;
    /* Nothing is queued unless every argument is an Operation. */
    if (caio_check_operations(args, nargs) < 0 ||
        (ctxref = caio_context_selfref((caio_context *)self)) == NULL) {
        context_leave(self);
        return NULL;
    }
    for (i = 0; i < nargs; i++) {
        caio_req *req = caio_operation_take(args[i], ctxref);
        if (req == NULL)
            continue;   /* already submitted: skipped, as in caio 0.12 */
        /* Held until its callback has run. */
        Py_INCREF(args[i]);
        queued++;
        if ((err = aio_req_prep(self, req)) < 0) {
            aio_req_fail(req, err, 0);
            req->state = CAIO_REQ_DONE;
            caio_fifo_push(&self->ready_head, &self->ready_tail, req);
            woke = 1;
            continue;
        }
        req->state = CAIO_REQ_WAITING;
        caio_fifo_push(&self->wait_head, &self->wait_tail, req);
    }
    aio_pump(self);
    if (woke)
        aio_wake(self);
    context_leave(self);
    return PyLong_FromSsize_t(queued);
}

static PyObject *ctx_cancel(AioContext *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t i, count = 0;
    int woke = 0;

    if (context_enter(self) < 0)
        return NULL;
    if (caio_check_owned((caio_context *)self, args, nargs) < 0) {
        context_leave(self);
        return NULL;
    }
    for (i = 0; i < nargs; i++)
        count += aio_ctx_cancel_req(self, &((CaioOperation *)args[i])->req, &woke);
    if (woke)
        aio_wake(self);
    context_leave(self);
    return PyLong_FromSsize_t(count);
}

/* While batching, the tasks that a burst of completions wakes up submit
 * their next requests in the next loop iteration. A flush queued now, behind
 * those wake-ups, submits them in that same iteration; the flush the first
 * of them would queue runs one iteration later, every slot of the burst
 * idle meanwhile. Not for a lone completion that left nothing in flight:
 * its successor goes in at once (batch_this). */
static void flush_after_wakeups(AioContext *self, Py_ssize_t completed)
{
    if (!self->batch.batching || completed == 0 ||
        PyThread_get_thread_ident() != self->owner_thread || context_enter(self) < 0) {
        PyErr_Clear();
        return;
    }
    if (!self->batch.flush_scheduled && self->call_soon != NULL &&
        !(completed == 1 && self->inflight == 0 && self->wait_head == NULL) &&
        caio_batch_schedule(&self->batch, (PyObject *)self, self->call_soon) < 0)
        PyErr_Clear();   /* the submissions schedule their own, or go at once */
    context_leave(self);
}

/* process_events() and the batch flush: submit what waits, reap, deliver. */
static PyObject *pump_and_deliver(AioContext *self, int drain)
{
    caio_req *list;
    Py_ssize_t n;

    /* Drain the eventfd before reaping: a completion posted after this
     * read makes it readable again, so none is missed. */
    if (drain)
        caio_eventfd_drain(self->efd);
    aio_reap(self, NULL);
    if (self->wait_head != NULL) {
        aio_pump(self);
        aio_reap(self, NULL);   /* buffered I/O completed inside io_submit */
    }
    list = self->ready_head;
    self->ready_head = self->ready_tail = NULL;
    if (list == NULL) {
        context_leave(self);
        return PyLong_FromLong(0);
    }
    self->outside++;
    context_leave(self);
    n = aio_ctx_deliver(self, list);
    flush_after_wakeups(self, n);
    return PyLong_FromSsize_t(n);
}

static PyObject *ctx_process_events(AioContext *self, PyObject *unused)
{
    if (context_enter(self) < 0)
        return NULL;
    return pump_and_deliver(self, 1);
}

static PyObject *ctx_flush_cb(AioContext *self, PyObject *unused)
{
    PyObject *r;

    /* Scheduled before close() or a fork: nothing left to do then. */
    if (context_enter(self) < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    self->batch.flush_scheduled = 0;
    r = pump_and_deliver(self, 0);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *ctx_set_idle_check(AioContext *self, PyObject *check)
{
    PyObject *old;

    if (caio_check_callable_or_none(check, "the idle check") < 0 || context_enter(self) < 0)
        return NULL;
    old = self->idle_check;
    self->idle_check = check == Py_None ? NULL : Py_NewRef(check);
    context_leave(self);
    Py_XDECREF(old);   /* outside the lock: its destructor may run Python */
    Py_RETURN_NONE;
}

static PyObject *ctx_set_future_factory(AioContext *self, PyObject *const *args,
                                        Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *factory, *call_soon;

    if (caio_parse_future_factory(args, nargs, kwnames, &factory, &call_soon) < 0)
        return NULL;
    if (context_enter(self) < 0) {
        Py_DECREF(factory);
        Py_XDECREF(call_soon);
        return NULL;
    }
    /* Under the lock: another thread may be calling the old factory; the
     * old ones are released after it (their destructors may run Python
     * code). call_soon schedules batched flushes; completions wake the
     * loop through the eventfd. */
    PyObject *old = self->factory, *old_call_soon = self->call_soon;
    self->factory = factory;
    self->call_soon = call_soon;
    if (call_soon == NULL)
        self->batch.batching = 0;
    self->owner_thread = PyThread_get_thread_ident();
    context_leave(self);
    Py_XDECREF(old);
    Py_XDECREF(old_call_soon);
    Py_RETURN_NONE;
}

/* ---- type: creation, close, dealloc ---------------------------------------- */

static PyObject *ctx_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"max_requests", "userspace_reap", NULL};
    PyObject *max_ob = NULL;
    int userspace_reap = 1;
    unsigned max_requests;
    AioContext *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O$p:Context", kwlist,
                                     &max_ob, &userspace_reap))
        return NULL;
    if (caio_parse_max_requests(max_ob, CAIO_MAX_REQUESTS_DEFAULT, &max_requests) < 0)
        return NULL;
    if (caio_fork_init() < 0)
        return NULL;

    self = (AioContext *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    /* Closed until the kernel context exists: dealloc then has nothing to do. */
    self->closed = 1;
    self->efd = -1;
    self->max_requests = max_requests;
    caio_batch_init(&self->batch);
    caio_lone_init(&self->lone);
    caio_fd_memo_init(&self->direct);
    self->inline_rw = caio_nowait_available && !caio_kernel_lacks(CAIO_F_NOWAIT);
    self->fork_gen = caio_fork_generation();
    pthread_mutex_init(&self->lock, NULL);
    /* The kernel first: it refuses too large a max_requests before we
     * touch memory for the pool. */
    if ((self->futures = PyDict_New()) == NULL ||
        aio_ctx_open(self, userspace_reap) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    if (caio_req_pool_init(&self->pool, self->max_requests) < 0) {
        aio_ctx_destroy(self);
        Py_DECREF(self);
        return NULL;
    }
    self->closed = 0;
    return (PyObject *)self;
}

static PyObject *ctx_close(AioContext *self, PyObject *unused)
{
    if (aio_ctx_close(self) < 0)
        return NULL;
    /* Nothing left to wait for: let go of the loop the check refers to. */
    Py_CLEAR(self->idle_check);
    Py_RETURN_NONE;
}

static PyObject *ctx_enter_cm(AioContext *self, PyObject *unused)
{
    if (self->closed) {
        caio_context_closed_error();
        return NULL;
    }
    return Py_NewRef(self);
}

static PyObject *ctx_exit_cm(AioContext *self, PyObject *args)
{
    return ctx_close(self, NULL);
}

static int ctx_traverse(AioContext *self, visitproc visit, void *arg)
{
    /* The futures of pending requests (see caio_req_visit): each is a key
     * of self->futures and held by its request too; not their buffers,
     * which the kernel may own. Only the GIL guards both references (a
     * request leaves the dict before its future is dropped). Operations in
     * flight are not visited: an abandoned one keeps its context. */
    if (self->futures != NULL) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;

        while (PyDict_Next(self->futures, &pos, &key, &value)) {
            caio_req *req = PyLong_AsVoidPtr(value);
            if (req != NULL && req->future == key)
                Py_VISIT(req->future);
        }
        Py_VISIT(self->futures);
    }
    Py_VISIT(self->idle_check);
    return caio_context_traverse((caio_context *)self, visit, arg);
}

static int ctx_clear(AioContext *self)
{
    Py_CLEAR(self->idle_check);
    caio_context_clear((caio_context *)self);
    return 0;
}

/* A context dropped open is closed here, before the collector clears
 * anything of a cycle it is in (its futures, their tasks). */
static void ctx_finalize(AioContext *self)
{
    if (!self->closed)
        CAIO_CLOSE_IN_FINALIZER(self, (void)aio_ctx_close(self));
}

static void ctx_dealloc(AioContext *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return;     /* resurrected by a callback that ran while closing */
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    if (self->outside == 0)
        aio_ctx_free_pool(self);
    caio_context_clear((caio_context *)self);
    Py_CLEAR(self->idle_check);
    Py_CLEAR(self->futures);
    if (self->efd >= 0)
        close(self->efd);
    pthread_mutex_destroy(&self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ---- attributes -------------------------------------------------------------- */

static PyObject *ctx_get_fileno(AioContext *self, void *closure)
{
    if (caio_context_check((caio_context *)self, CTX_NAME) < 0)
        return NULL;
    return PyLong_FromLong(self->efd);
}

static PyObject *ctx_get_max_requests(AioContext *self, void *closure)
{
    return PyLong_FromUnsignedLong(self->max_requests);
}

static PyObject *ctx_get_batching(AioContext *self, void *closure)
{
    return PyBool_FromLong(self->batch.batching);
}

static PyObject *ctx_get_lone_wait(AioContext *self, void *closure)
{
    return PyBool_FromLong(self->lone.avg > CAIO_LONE_WAIT_ABOVE);
}

static PyObject *ctx_get_closed(AioContext *self, void *closure)
{
    return PyBool_FromLong(self->closed);
}

static PyObject *ctx_repr(AioContext *self)
{
    if (self->closed)
        return PyUnicode_FromFormat("<%s closed>", Py_TYPE(self)->tp_name);
    return PyUnicode_FromFormat("<%s max_requests=%u in_flight=%u%s>",
                                Py_TYPE(self)->tp_name, self->max_requests,
                                self->inflight, self->ring ? "" : " (io_getevents)");
}

static PyMethodDef ctx_methods[] = {
    CAIO_CONTEXT_METHODS(
        "\nCallbacks run in process_events().",
        "\nFile reads and writes cannot be cancelled in the kernel.", "", ""),
    {"close", (PyCFunction)ctx_close, METH_NOARGS,
     "close($self, /)\n--\n\n"
     "Wait for the operations in flight, deliver their results, fail the\n"
     "rest with OSError(ECANCELED), release the kernel context. Idempotent;\n"
     "in a forked child it only forgets. Raises RuntimeError if called from\n"
     "the future factory while the context runs it."},
    {"_set_idle_check", (PyCFunction)ctx_set_idle_check, METH_O,
     "_set_idle_check($self, check, /)\n--\n\n"
     "check() tells whether the event loop has nothing else to run; only\n"
     "then is a lone O_DIRECT read waited for in the call (None: never)."},
    {"_flush", (PyCFunction)ctx_flush_cb, METH_NOARGS,
     "_flush($self, /)\n--\n\nSubmit batched operations (scheduled with call_soon)."},
    {NULL}
};

static PyGetSetDef ctx_getset[] = {
    {"fileno", (getter)ctx_get_fileno, NULL,
     "The eventfd that becomes readable when completions wait.", NULL},
    {"max_requests", (getter)ctx_get_max_requests, NULL,
     "How many operations may be in the kernel at once.", NULL},
    {"batching", (getter)ctx_get_batching, NULL,
     "True while submissions are batched once per loop iteration.", NULL},
    {"lone_wait", (getter)ctx_get_lone_wait, NULL,
     "True while an O_DIRECT read alone in flight is waited for briefly in "
     "the call (most such waits succeed here).", NULL},
    {"closed", (getter)ctx_get_closed, NULL, "True once close() was called.", NULL},
    {NULL}
};

static PyTypeObject AioContext_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = CTX_NAME,
    .tp_basicsize = sizeof(AioContext),
    .tp_dealloc = (destructor)ctx_dealloc,
    .tp_repr = (reprfunc)ctx_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Context(max_requests=None, *, userspace_reap=True)\n--\n\n"
              "caio.linux_aio context: a Linux kernel AIO context (io_setup). userspace_reap=False reads "
              "completions with io_getevents() instead of the mapped ring.\n"
              "Raises ValueError/TypeError for a bad max_requests, OSError when the "
              "kernel refuses (e.g. fs.aio-max-nr reached).",
    .tp_traverse = (traverseproc)ctx_traverse,
    .tp_clear = (inquiry)ctx_clear,
    .tp_finalize = (destructor)ctx_finalize,
    .tp_weaklistoffset = offsetof(AioContext, weakreflist),
    .tp_methods = ctx_methods,
    .tp_getset = ctx_getset,
    .tp_new = ctx_new,
};

/* ---- module ------------------------------------------------------------------ */

static struct PyModuleDef linux_aio_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "caio.linux_aio",
    .m_doc = "Asynchronous file I/O with Linux kernel AIO (io_submit), no libaio.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit_linux_aio(void)
{
    PyObject *m = PyModule_Create(&linux_aio_module);

    if (m == NULL)
        return NULL;
    if (caio_fork_init() < 0 || caio_features_init() < 0 ||
        caio_features_add_names(m) < 0 ||
        caio_operation_add_type(m, "caio.linux_aio.Operation") < 0 ||
        PyType_Ready(&AioContext_Type) < 0 ||
        PyModule_AddObjectRef(m, "Context", (PyObject *)&AioContext_Type) < 0)
        goto error;
    return m;
error:
    Py_DECREF(m);
    return NULL;
}
