/* caio.linux_uring: the Python face of the context (argument checks, then
 * the fast path, then the slow path, for each method), the type, and the
 * module, whose init probes io_uring and refuses to import, saying why,
 * where it is blocked. The engine is in context.c. */
#include "context.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static PyTypeObject UringContext_Type;

/* ---- the asyncio fast path ------------------------------------------------ */

static PyObject *submit_async(UringContext *self, int opcode, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *result = NULL, *fut;
    caio_req *req;
    int now, quiet;

    if (uctx_enter(self) < 0)
        return NULL;
    if (self->factory == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "set_future_factory() must be called before *_async()");
        goto out;
    }
    if ((req = caio_req_get(&self->pool)) == NULL)
        goto out;
    REQ_BFLAGS(req) = 0;
    if (caio_req_prepare(req, opcode, args, nargs, kwnames) < 0) {
        caio_req_put(&self->pool, req);
        goto out;
    }
    if (self->closed) {     /* by fileno() of the fd argument... */
        caio_req_put(&self->pool, req);
        PyErr_SetString(PyExc_ValueError, "I/O operation on closed context");
        goto out;
    }

    if (opcode == CAIO_READ && self->nowait_reads && !self->batching &&
        req->nbytes <= NOGIL_BYTES && self->wait_head == NULL &&
        uctx_read_nowait(req) == 0) {
        /* Page-cache hit, copied without entering the ring. */
        uctx_note_inline(self, 1);
        result = uctx_take_value(self, req);
        goto out;
    }

    if (self->n_inflight >= self->limit || self->wait_head != NULL) {
        /* Back-pressure: wait for a slot, in order. */
        fut = PyObject_CallNoArgs(self->factory);
        if (fut == NULL || self->closed) {
            if (fut != NULL)
                PyErr_SetString(PyExc_ValueError, "I/O operation on closed context");
            Py_XDECREF(fut);
            caio_req_put(&self->pool, req);
            goto out;
        }
        req->future = fut;
        req->state = CAIO_REQ_WAITING;
        caio_fifo_push(&self->wait_head, &self->wait_tail, req);
        result = Py_NewRef(fut);
        goto out;
    }

    quiet = self->n_inflight == 0 && self->cancels_pending == 0 && !self->sqpoll &&
            self->ring.cq.kflags != NULL;
    if (uctx_queue_req(self, req) < 0) {
        caio_req_put(&self->pool, req);
        goto out;
    }
    REQ_BFLAGS(req) = BF_HELD;
    now = !self->batching || ++self->probe % PROBE_EVERY == 0;
    if (now || self->sqpoll) {
        if (quiet)
            uctx_eventfd_quiet(self);
        if (uctx_flush(self) < 0) {
            /* The ring failed; the SQE stays in it and the request is
             * reclaimed if it ever completes. */
            if (quiet)
                uctx_eventfd_loud(self);
            REQ_BFLAGS(req) = 0;
            goto out;
        }
        if (!self->sqpoll) {
            uctx_reap(self, 0);
            if (quiet)
                uctx_eventfd_loud(self);
            if (opcode == CAIO_READ || opcode == CAIO_WRITE)
                uctx_note_inline(self, req->state == CAIO_REQ_DONE);
            if (req->state == CAIO_REQ_DONE) {
                result = uctx_take_value(self, req);
                goto out;
            }
        }
    } else if (uctx_schedule_flush(self) < 0) {
        /* No flush coming: submit now rather than strand the request. */
        PyErr_WriteUnraisable((PyObject *)self);
        self->batching = 0;
        if (uctx_flush(self) < 0) {
            REQ_BFLAGS(req) = 0;
            goto out;
        }
    }

    fut = PyObject_CallNoArgs(self->factory);
    REQ_BFLAGS(req) &= ~BF_HELD;
    if (REQ_BFLAGS(req) & BF_LEAKED) {
        /* A nested close() gave up on it: the kernel may still write. */
        Py_XDECREF(fut);
        if (!PyErr_Occurred())
            caio_oserror(ECANCELED);
        goto out;
    }
    if (req->state == CAIO_REQ_DONE) {
        /* Completed (reaped by a nested call) while the factory ran. */
        Py_XDECREF(fut);
        if (fut == NULL) {
            caio_req_put(&self->pool, req);
            goto out;
        }
        result = uctx_take_value(self, req);
        goto out;
    }
    if (fut == NULL)
        goto out;   /* req stays in flight; reclaimed at its completion */
    req->future = fut;
    result = Py_NewRef(fut);
out:
    uctx_leave(self);
    return result;
}

static PyObject *ctx_read_async(UringContext *self, PyObject *const *args,
                                Py_ssize_t nargs, PyObject *kwnames)
{
    return submit_async(self, CAIO_READ, args, nargs, kwnames);
}

static PyObject *ctx_write_async(UringContext *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames)
{
    return submit_async(self, CAIO_WRITE, args, nargs, kwnames);
}

static PyObject *ctx_fsync_async(UringContext *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames)
{
    return submit_async(self, CAIO_FSYNC, args, nargs, kwnames);
}

static PyObject *ctx_fdsync_async(UringContext *self, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames)
{
    return submit_async(self, CAIO_FDSYNC, args, nargs, kwnames);
}

static PyObject *ctx_flush_cb(UringContext *self, PyObject *unused)
{
    Py_ssize_t n;

    self->flush_scheduled = 0;
    /* Scheduled before close(): nothing left to do then. */
    if (self->closed || caio_fork_check(self->fork_gen, QUALNAME) < 0 || self->nogil) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    self->busy++;
    n = uctx_pump(self);
    uctx_leave(self);
    if (n < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---- low-level API ------------------------------------------------------ */

static PyObject *ctx_submit(UringContext *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t i, queued = 0;
    PyObject *result = NULL;

    if (uctx_enter(self) < 0)
        return NULL;
    for (i = 0; i < nargs; i++) {
        if (caio_operation_req(args[i]) == NULL)
            goto out;
    }
    for (i = 0; i < nargs; i++) {
        caio_req *req = caio_operation_req(args[i]);
        if (req == NULL)    /* the same operation twice */
            goto out;
        Py_INCREF(args[i]);
        REQ_BFLAGS(req) = 0;
        if (self->n_inflight < self->limit && self->wait_head == NULL) {
            if (uctx_queue_req(self, req) < 0) {
                Py_DECREF(args[i]);
                goto out;
            }
        } else {
            req->state = CAIO_REQ_WAITING;
            caio_fifo_push(&self->wait_head, &self->wait_tail, req);
        }
        queued++;
    }
    if (uctx_flush(self) < 0)
        goto out;
    /* Completions now (inline ones) get their callbacks in process_events:
     * a callback must not run before submit() has returned. */
    uctx_reap(self, 0);
    result = PyLong_FromSsize_t(queued);
out:
    if (result == NULL && queued > 0) {
        /* Those queued before the error are submitted all the same. */
        caio_saved_error saved = caio_error_save();
        if (uctx_flush(self) < 0)
            PyErr_WriteUnraisable((PyObject *)self);
        caio_error_restore(saved);
    }
    uctx_leave(self);
    return result;
}

static PyObject *ctx_cancel(UringContext *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t i, count = 0;
    unsigned long ok_before;
    PyObject *result = NULL;

    if (uctx_enter(self) < 0)
        return NULL;
    for (i = 0; i < nargs; i++) {
        if (!PyObject_TypeCheck(args[i], &CaioOperation_Type)) {
            PyErr_Format(PyExc_TypeError, "expected %s, got %.100s",
                         CaioOperation_Type.tp_name, Py_TYPE(args[i])->tp_name);
            goto out;
        }
    }
    ok_before = self->cancels_ok;
    for (i = 0; i < nargs; i++) {
        caio_req *req = &((CaioOperation *)args[i])->req;
        if (req->state == CAIO_REQ_WAITING &&
            caio_fifo_remove(&self->wait_head, &self->wait_tail, req)) {
            /* Never reached the kernel. */
            req->result = -ECANCELED;
            req->state = CAIO_REQ_DONE;
            caio_fifo_push(&self->done_head, &self->done_tail, req);
            uctx_signal(self);
            count++;
        } else if (req->state == CAIO_REQ_INFLIGHT &&
                   !(req->flags & CAIO_REQ_CANCEL_ASKED)) {
            if (uctx_queue_cancel(self, req) < 0) {
                PyErr_SetString(PyExc_OSError, "io_uring submission queue is stuck");
                goto out;
            }
        }
    }
    if (uctx_flush(self) < 0)
        goto out;
    /* ASYNC_CANCEL almost always completes inside io_uring_enter. */
    uctx_wait_cancels(self, CANCEL_TIMEOUT_MS, 0);
    result = PyLong_FromSsize_t(count + (Py_ssize_t)(self->cancels_ok - ok_before));
out:
    uctx_leave(self);
    return result;
}

static PyObject *ctx_cancel_future(UringContext *self, PyObject *fut)
{
    PyObject *result = NULL;

    if (uctx_enter(self) < 0)
        return NULL;
    for (unsigned i = 0; i < self->n_inflight; i++) {
        caio_req *req = self->inflight[i];
        if (req->future != fut)
            continue;
        if (!(req->flags & CAIO_REQ_CANCEL_ASKED)) {
            if (uctx_queue_cancel(self, req) < 0 || uctx_flush(self) < 0) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_OSError, "io_uring submission queue is stuck");
                goto out;
            }
        }
        /* The buffer stays with the request until its own CQE arrives. */
        result = Py_NewRef(Py_True);
        goto out;
    }
    for (caio_req *req = self->wait_head; req != NULL; req = req->next) {
        if (req->future != fut)
            continue;
        caio_fifo_remove(&self->wait_head, &self->wait_tail, req);
        if (req->flags & CAIO_REQ_OWNED) {  /* cannot be: owned ones have no future */
            req->result = -ECANCELED;
            req->state = CAIO_REQ_DONE;
            caio_fifo_push(&self->done_head, &self->done_tail, req);
        } else {
            caio_req_put(&self->pool, req);
        }
        result = Py_NewRef(Py_True);
        goto out;
    }
    result = Py_NewRef(Py_False);
out:
    uctx_leave(self);
    return result;
}

static PyObject *ctx_process_events(UringContext *self, PyObject *unused)
{
    uint64_t count;
    Py_ssize_t n;

    if (uctx_enter(self) < 0)
        return NULL;
    /* One read empties the eventfd counter however many CQEs it counted;
     * it is non-blocking, so a spurious wake-up costs EAGAIN. Reading first
     * also means a CQE posted after this read signals again. */
    if (read(self->efd, &count, sizeof(count)) < 0 && errno != EAGAIN &&
        errno != EINTR) {
        PyErr_SetFromErrno(PyExc_OSError);
        uctx_leave(self);
        return NULL;
    }
    n = uctx_run_done(self);
    if (n >= 0) {
        Py_ssize_t m = uctx_pump(self);
        n = m < 0 ? -1 : n + m;
    }
    uctx_leave(self);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *ctx_set_future_factory(UringContext *self, PyObject *const *args,
                                        Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"factory", "call_soon"};
    PyObject *ob[2], *factory, *call_soon;

    if (caio_parse_args("set_future_factory", names, 2, 1, args, nargs, kwnames, ob) < 0)
        return NULL;
    if (uctx_enter(self) < 0)
        return NULL;
    factory = ob[0] == Py_None ? NULL : ob[0];
    call_soon = ob[1] == Py_None ? NULL : ob[1];
    if ((factory != NULL && !PyCallable_Check(factory)) ||
        (call_soon != NULL && !PyCallable_Check(call_soon))) {
        PyErr_SetString(PyExc_TypeError, "factory and call_soon must be callable or None");
        goto error;
    }
    if (factory != NULL && caio_futures_init() < 0)
        goto error;
    if (factory != NULL && call_soon == NULL) {
        /* loop.create_future: its loop's call_soon schedules our flushes. */
        PyObject *loop = PyObject_GetAttrString(factory, "__self__");
        if (loop != NULL) {
            call_soon = PyObject_GetAttrString(loop, "call_soon");
            Py_DECREF(loop);
            if (call_soon != NULL && !PyCallable_Check(call_soon))
                Py_CLEAR(call_soon);
        }
        PyErr_Clear();
    } else {
        Py_XINCREF(call_soon);
    }
    Py_XSETREF(self->factory, Py_XNewRef(factory));
    Py_XSETREF(self->call_soon, call_soon);
    if (self->call_soon == NULL)
        self->batching = 0;
    uctx_leave(self);
    Py_RETURN_NONE;
error:
    uctx_leave(self);
    return NULL;
}

/* ---- closing ------------------------------------------------------------- */

static PyObject *ctx_enter_cm(UringContext *self, PyObject *unused)
{
    if (self->closed) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on closed context");
        return NULL;
    }
    return Py_NewRef(self);
}

static PyObject *ctx_close(UringContext *self, PyObject *unused)
{
    if (!self->closed && self->nogil) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this context is in use by another thread; "
                        "close it from the thread that uses it");
        return NULL;
    }
    uctx_close(self);
    Py_RETURN_NONE;
}

/* ---- type ----------------------------------------------------------------- */

static PyObject *ctx_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"max_requests", "sqpoll", "nowait_reads", NULL};
    PyObject *max_ob = Py_None;
    Py_ssize_t max_requests = 512;
    int sqpoll = 0, nowait_reads = 1, err;
    UringContext *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O$pp:Context", kwlist,
                                     &max_ob, &sqpoll, &nowait_reads))
        return NULL;
    if (max_ob != Py_None) {    /* None: the default */
        if (!PyLong_Check(max_ob)) {
            PyErr_Format(PyExc_TypeError, "max_requests must be int or None, not %.100s",
                         Py_TYPE(max_ob)->tp_name);
            return NULL;
        }
        max_requests = PyLong_AsSsize_t(max_ob);
        if (max_requests == -1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError))
                return NULL;
            PyErr_Clear();
            /* Huge: "too large" or "at least 1", by its sign. */
            PyObject *zero = PyLong_FromLong(0);
            int negative = zero ? PyObject_RichCompareBool(max_ob, zero, Py_LT) : -1;
            Py_XDECREF(zero);
            if (negative < 0)
                return NULL;
            max_requests = negative ? -1 : PY_SSIZE_T_MAX;
        }
    }
    if (max_requests < 1) {
        PyErr_SetString(PyExc_ValueError, "max_requests must be at least 1");
        return NULL;
    }
    if (max_requests > 0xffffffffL) {
        PyErr_SetString(PyExc_ValueError, "max_requests is too large");
        return NULL;
    }
    if (caio_fork_init() < 0)
        return NULL;
    self = (UringContext *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->efd = -1;
    self->ring.fd = -1;
    self->closed = 1;       /* until fully set up: dealloc then frees only */
    self->released = 1;
    self->avg = AVG_ONE;
    self->fork_gen = caio_fork_generation();
    self->max_requests = (unsigned)max_requests;

    err = uring_init(&self->ring, self->max_requests, sqpoll);
    if (err < 0) {
        caio_oserror(-err);
        goto error;
    }
    self->released = 0;
    self->sqpoll = uring_is_sqpoll(&self->ring);
    self->nowait_reads = nowait_reads;
    self->limit = self->max_requests < self->ring.sq.entries ? self->max_requests
                                                             : self->ring.sq.entries;
    if (self->ring.cq.entries / 2 < self->limit)
        self->limit = self->ring.cq.entries / 2;
    self->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->efd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto error;
    }
    if ((err = uring_register_eventfd(&self->ring, self->efd)) < 0) {
        caio_oserror(-err);
        goto error;
    }
    self->inflight = PyMem_Calloc(self->limit, sizeof(caio_req *));
    if (self->inflight == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    if (caio_req_pool_init(&self->pool, self->limit) < 0)
        goto error;
    self->closed = 0;
    return (PyObject *)self;
error:
    if (!self->released)
        uctx_release(self);
    Py_DECREF(self);
    return NULL;
}

static int ctx_traverse(UringContext *self, visitproc visit, void *arg)
{
    /* Not the requests in flight: the kernel owns their buffers. */
    Py_VISIT(self->factory);
    Py_VISIT(self->call_soon);
    return 0;
}

static int ctx_clear(UringContext *self)
{
    Py_CLEAR(self->factory);
    Py_CLEAR(self->call_soon);
    return 0;
}

static void ctx_finalize(UringContext *self)
{
    /* Closing may run callbacks: keep any exception being raised. */
    caio_saved_error saved;

    if (self->closed)
        return;
    saved = caio_error_save();
    uctx_close(self);
    if (PyErr_Occurred())
        PyErr_WriteUnraisable((PyObject *)self);
    caio_error_restore(saved);
}

static void ctx_dealloc(UringContext *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return;     /* resurrected by a callback that ran while closing */
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    if (!self->released)
        uctx_release(self);
    ctx_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *ctx_get_max_requests(UringContext *self, void *closure)
{
    return PyLong_FromUnsignedLong(self->max_requests);
}

static PyObject *ctx_get_closed(UringContext *self, void *closure)
{
    return PyBool_FromLong(self->closed);
}

static PyObject *ctx_get_fileno(UringContext *self, void *closure)
{
    if (self->closed) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on closed context");
        return NULL;
    }
    return PyLong_FromLong(self->efd);
}

static PyObject *ctx_get_sqpoll(UringContext *self, void *closure)
{
    return PyBool_FromLong(self->sqpoll);
}

static PyObject *ctx_get_batching(UringContext *self, void *closure)
{
    return PyBool_FromLong(self->batching);
}

static PyObject *ctx_repr(UringContext *self)
{
    return PyUnicode_FromFormat("<%s max_requests=%u in_flight=%u%s%s>",
                                Py_TYPE(self)->tp_name, self->max_requests,
                                self->n_inflight, self->sqpoll ? " sqpoll" : "",
                                self->closed ? " closed" : "");
}

#define FASTKW(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL | METH_KEYWORDS
#define FAST(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL

static PyMethodDef ctx_methods[] = {
    {"submit", FAST(ctx_submit),
     "submit(*operations) -> int: queue Operations; callbacks run in "
     "process_events().\nRaises TypeError (not an Operation of this module), "
     "RuntimeError (already submitted), ValueError (closed)."},
    {"cancel", FAST(ctx_cancel),
     "cancel(*operations) -> int: ask the kernel to cancel them; returns how "
     "many were cancelled.\nRaises TypeError, ValueError (closed)."},
    {"close", (PyCFunction)ctx_close, METH_NOARGS,
     "close(): cancel what is in flight, wait for it, release the ring. "
     "Idempotent.\nRaises RuntimeError when another thread is inside the context."},
    {"process_events", (PyCFunction)ctx_process_events, METH_NOARGS,
     "process_events() -> int: reap completions, resolve futures, run "
     "callbacks; never blocks.\nRaises ValueError (closed), OSError (ring failure)."},
    {"set_future_factory", FASTKW(ctx_set_future_factory),
     "set_future_factory(factory, call_soon=None): factory() makes the futures "
     "*_async() return;\ncall_soon(fn) schedules a batched submission (default: "
     "factory.__self__.call_soon, i.e. loop.create_future's loop).\n"
     "Raises TypeError (not callable), ValueError (closed)."},
    {"read_async", FASTKW(ctx_read_async),
     "read_async(nbytes, fd, offset, priority=0) -> bytes | Future[bytes]\n"
     "Raises OSError (failed at once), TypeError/ValueError (arguments), "
     "RuntimeError (no factory)."},
    {"write_async", FASTKW(ctx_write_async),
     "write_async(payload, fd, offset, priority=0) -> int | Future[int]\n"
     "Raises like read_async."},
    {"fsync_async", FASTKW(ctx_fsync_async),
     "fsync_async(fd, priority=0) -> None | Future[None]\nRaises like read_async."},
    {"fdsync_async", FASTKW(ctx_fdsync_async),
     "fdsync_async(fd, priority=0) -> None | Future[None]\nRaises like read_async."},
    {"cancel_future", (PyCFunction)ctx_cancel_future, METH_O,
     "cancel_future(future) -> bool: ask the kernel to cancel the operation "
     "behind a future from *_async();\nFalse if it is not in flight. "
     "Raises ValueError (closed)."},
    {"__enter__", (PyCFunction)ctx_enter_cm, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)ctx_close, METH_VARARGS, NULL},
    {"_flush", (PyCFunction)ctx_flush_cb, METH_NOARGS,
     "Submit batched operations (scheduled with call_soon)."},
    {NULL}
};

static PyGetSetDef ctx_getset[] = {
    {"max_requests", (getter)ctx_get_max_requests, NULL,
     "Operations in the kernel at once, at most.", NULL},
    {"closed", (getter)ctx_get_closed, NULL, "True after close().", NULL},
    {"fileno", (getter)ctx_get_fileno, NULL,
     "The eventfd that is readable when completions wait "
     "(ValueError once closed).", NULL},
    {"sqpoll", (getter)ctx_get_sqpoll, NULL,
     "True when a kernel thread polls the submission queue.", NULL},
    {"batching", (getter)ctx_get_batching, NULL,
     "True while submissions are batched once per loop iteration.", NULL},
    {NULL}
};

static PyTypeObject UringContext_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = QUALNAME,
    .tp_basicsize = sizeof(UringContext),
    .tp_dealloc = (destructor)ctx_dealloc,
    .tp_repr = (reprfunc)ctx_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Context(max_requests=512, *, sqpoll=False, nowait_reads=True)\n\n"
              "An io_uring ring. nowait_reads: serve page-cache hits of reads up "
              "to 256 KiB with preadv2(RWF_NOWAIT) before using the ring. "
              "sqpoll=True asks for a kernel submission "
              "thread and falls back to a normal ring where that is refused "
              "(see .sqpoll).\nRaises ValueError (max_requests < 1), "
              "OSError (the kernel refused the ring).",
    .tp_traverse = (traverseproc)ctx_traverse,
    .tp_clear = (inquiry)ctx_clear,
    .tp_finalize = (destructor)ctx_finalize,
    .tp_weaklistoffset = offsetof(UringContext, weakreflist),
    .tp_methods = ctx_methods,
    .tp_getset = ctx_getset,
    .tp_new = ctx_new,
};

/* ---- module --------------------------------------------------------------- */

static int read_io_uring_disabled(void)
{
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
    int value = -1;

    if (f != NULL) {
        if (fscanf(f, "%d", &value) != 1)
            value = -1;
        fclose(f);
    }
    return value;
}

/* ImportError that says why io_uring cannot be used and what to do. */
static void set_unusable_error(int err, const char *stage)
{
    static const char fallback[] = "; or use another backend (CAIO_IMPL=linux)";
    char msg[600];
    int sysctl = read_io_uring_disabled();
    PyObject *text, *name;

    if (strcmp(stage, "io_uring_setup") == 0 && err == -EPERM && sysctl == 2) {
        snprintf(msg, sizeof(msg),
                 "io_uring is disabled by the kernel.io_uring_disabled sysctl (= 2); "
                 "set it to 0 (sysctl -w kernel.io_uring_disabled=0)%s", fallback);
    } else if (strcmp(stage, "io_uring_setup") == 0 && err == -EPERM && sysctl == 1) {
        snprintf(msg, sizeof(msg),
                 "io_uring is restricted by the kernel.io_uring_disabled sysctl (= 1) "
                 "to CAP_SYS_ADMIN and the group in kernel.io_uring_group; add this "
                 "user to that group or set the sysctl to 0%s", fallback);
    } else if (strcmp(stage, "io_uring_setup") == 0 && err == -EPERM) {
        snprintf(msg, sizeof(msg),
                 "io_uring_setup is blocked (EPERM), e.g. by a seccomp profile in a "
                 "container; allow io_uring_setup, io_uring_enter and "
                 "io_uring_register in the profile (docker/podman: "
                 "--security-opt seccomp=...)%s", fallback);
    } else if (strcmp(stage, "io_uring_setup") == 0 && err == -ENOSYS) {
        snprintf(msg, sizeof(msg),
                 "io_uring_setup is blocked (ENOSYS): a seccomp profile denies it, "
                 "as container runtimes' default profiles do, or the kernel is built "
                 "without io_uring (CONFIG_IO_URING); allow io_uring_setup, "
                 "io_uring_enter and io_uring_register in the profile%s", fallback);
    } else if (strcmp(stage, "io_uring_setup") == 0 && err == -ENOMEM) {
        snprintf(msg, sizeof(msg),
                 "io_uring_setup failed with ENOMEM: before Linux 5.12 rings count "
                 "against RLIMIT_MEMLOCK; raise it (ulimit -l)%s", fallback);
    } else if (err == -EOPNOTSUPP) {
        snprintf(msg, sizeof(msg),
                 "this kernel's io_uring lacks %s (Linux 5.6 or later is needed)%s",
                 stage, fallback);
    } else {
        snprintf(msg, sizeof(msg), "io_uring is unusable here: %s failed: %s%s",
                 stage, strerror(-err), fallback);
    }
    text = PyUnicode_FromString(msg);
    name = PyUnicode_FromString("caio.linux_uring");
    if (text != NULL && name != NULL)
        PyErr_SetImportError(text, name, NULL);
    Py_XDECREF(text);
    Py_XDECREF(name);
}

static struct PyModuleDef uring_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "caio.linux_uring",
    .m_doc = "caio backend on io_uring (raw system calls, no liburing).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit_linux_uring(void)
{
    const char *stage = "io_uring_setup";
    PyObject *m;
    int err;

    /* Probe before anything else: where io_uring is blocked the import must
     * fail with the reason, so that `caio` picks the next backend. */
    err = uring_check_usable(&stage);
    if (err < 0) {
        set_unusable_error(err, stage);
        return NULL;
    }
    if (caio_fork_init() < 0)
        return NULL;
    if (PyType_Ready(&UringContext_Type) < 0)
        return NULL;
    m = PyModule_Create(&uring_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Context", (PyObject *)&UringContext_Type) < 0 ||
        caio_operation_add_type(m, "caio.linux_uring.Operation") < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
