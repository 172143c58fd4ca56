/* caio.linux_uring: the Python face of the context (argument checks, then
 * the fast path, then the slow path, for each method), the type, and the
 * module, whose init probes io_uring and refuses to import, saying why,
 * where it is blocked. The engine is in context.c. */
#include "context.h"
#include "fsops.h"
#include "notify.h"

#include <errno.h>
#include <unistd.h>

static PyTypeObject UringContext_Type;

/* ---- the *_async methods ----------------------------------------------------- */

/* read_async's page-cache hit with the adapter's arguments (three one-digit
 * non-negative ints, a read of at most CAIO_NOWAIT_MAX): the nowait read
 * goes straight into the bytes returned, no request taken from the pool
 * and given back (a sixth of the instructions of a cached 4 KiB read). The
 * result is the one the request would have had: the bytes (shortened at
 * the end of the file), or the OSError. NULL without an exception: not
 * such a call (*tried stays 0), or the read must go the slow way (*tried:
 * the nowait read was made, not to be made again). */
static PyObject *read_cached(UringContext *self, PyObject *const *args, int *tried)
{
    long long nbytes, fd, offset;
    PyObject *bytes;
    ssize_t moved;

    if (!caio_small_int(args[0], &nbytes) || nbytes <= 0 || nbytes > CAIO_NOWAIT_MAX ||
        !caio_small_int(args[1], &fd) || fd < 0 || fd > INT_MAX ||
        !caio_small_int(args[2], &offset) || offset < 0)
        return NULL;
    if ((bytes = caio_spare_bytes(&self->spare, (Py_ssize_t)nbytes)) == NULL)
        return NULL;
    *tried = 1;
    if (caio_nowait_py(0, (int)fd, PyBytes_AS_STRING(bytes), (size_t)nbytes, offset, 0,
                       &self->nogil, &self->direct, &moved) != CAIO_NOWAIT_DONE) {
        Py_DECREF(bytes);
        return NULL;
    }
    uctx_note_inline(self, 1);
    if (moved < 0) {
        Py_DECREF(bytes);
        return caio_oserror((int)-moved);
    }
    if (moved < nbytes && _PyBytes_Resize(&bytes, (Py_ssize_t)moved) < 0)
        return NULL;
    caio_spare_keep(&self->spare, bytes);
    return bytes;
}

static PyObject *submit_async(UringContext *self, int opcode, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *result = NULL, *fut;
    caio_req *req;
    ssize_t moved;
    int now, quiet, tried = 0;

    if (context_enter(self) < 0)
        return NULL;
    if (caio_context_async_check((caio_context *)self) < 0)
        goto out;
    if (opcode == CAIO_READ && nargs == 3 && kwnames == NULL && self->nowait_reads &&
        !self->batch.batching && self->wait_head == NULL &&
        ((result = read_cached(self, args, &tried)) != NULL || PyErr_Occurred()))
        goto out;
    if ((req = caio_req_get(&self->pool)) == NULL)
        goto out;
    REQ_BFLAGS(req) = 0;
    if (caio_req_prepare(req, &self->spare, opcode, args, nargs, kwnames) < 0) {
        caio_req_put(&self->pool, req);
        goto out;
    }
    if (self->closed) {     /* by fileno() of the fd argument... */
        caio_req_put(&self->pool, req);
        caio_context_closed_error();
        goto out;
    }

    if ((opcode == CAIO_READ || opcode == CAIO_READINTO) && self->nowait_reads &&
        !self->batch.batching && !tried &&
        req->nbytes <= CAIO_NOWAIT_MAX && self->wait_head == NULL &&
        caio_req_nowait(req, 0, &self->nogil, &self->direct, &moved) == CAIO_NOWAIT_DONE) {
        /* Page-cache hit, copied without entering the ring. (A partial
         * answer is read again whole through the ring.) */
        req->result = moved;
        req->state = CAIO_REQ_DONE;
        uctx_note_inline(self, 1);
        result = uctx_take_value(self, req);
        goto out;
    }

    if (opcode == CAIO_WRITE || opcode == CAIO_WRITEV) {
        if (uctx_write_here(self, req)) {
            /* Alone, on a file system whose buffered writes the ring
             * hands to its workers: made here (batch.c). */
            req->state = CAIO_REQ_DONE;
            uctx_note_inline(self, 1);
            result = uctx_take_value(self, req);
            goto out;
        }
        if (self->closed) {     /* by the idle check's Python code */
            caio_req_put(&self->pool, req);
            caio_context_closed_error();
            goto out;
        }
    }

    if (opcode == CAIO_FS && caio_fs_inline((caio_context *)self, req)) {
        /* A stat of a cached path: answered without the ring (fsops.c). */
        req->state = CAIO_REQ_DONE;
        result = uctx_take_value(self, req);
        goto out;
    }

    if (self->n_inflight >= self->limit || self->wait_head != NULL) {
        /* Back-pressure: wait for a slot, in order. */
        fut = PyObject_CallNoArgs(self->factory);
        if (fut == NULL || self->closed) {
            if (fut != NULL)
                caio_context_closed_error();
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
    now = !self->batch.batching || caio_batch_probe(&self->batch);
    if (!now && uring_sq_pending(&self->ring) >= URING_DISK_BATCH &&
        (caio_opcode_reads(opcode) || (opcode == CAIO_WRITE && caio_req_aligned_on_purpose(req))) &&
        uctx_on_disk(self, req->fd)) {
        /* Batching, and the queue holds a few requests, the newest a read
         * from a disk, or a write from aligned memory (the O_DIRECT idiom,
         * protocol.h): send them now. A burst of completions wakes a task
         * per request, and each queues its next one; waiting for the last
         * of them leaves the disk's slots empty meanwhile (about 5 % more
         * O_DIRECT and cold reads per second at 64 in flight, 14 % more
         * O_DIRECT writes, docs/performance.md). Not for buffered writes
         * (a bytes payload): a buffered write to ext4 batches too (the
         * ring hands it to its workers), and there the extra system calls
         * cost 5 % of page-cache writes at 64 in flight. Streams keep one
         * submission per iteration: their answers come at once, and the
         * system calls would be the cost. */
        now = 1;
    }
    if (!now && quiet && !self->batch.flush_scheduled) {
        /* Batching, but alone: nothing in flight, nothing waiting for the
         * flush. There is no one to share an io_uring_enter with, and the
         * flush would cost this request a loop iteration (one read at a
         * time from a cold file: 3 iterations per read become 2). Not
         * quiet: it will most likely not complete inline, and the kernel's
         * eventfd signal then announces it without our extra one. */
        now = 1;
        quiet = 0;
    }
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
            if (opcode == CAIO_READ || opcode == CAIO_WRITE || opcode == CAIO_READINTO)
                uctx_note_inline(self, req->state == CAIO_REQ_DONE);
            if (req->state != CAIO_REQ_DONE && caio_opcode_reads(opcode))
                uctx_wait_lone(self, req);
            if (quiet)
                uctx_eventfd_loud(self);
            if (req->state == CAIO_REQ_DONE) {
                result = uctx_take_value(self, req);
                goto out;
            }
        }
    } else if (uctx_schedule_flush(self) < 0) {
        /* No flush coming: submit now rather than strand the request. */
        PyErr_WriteUnraisable((PyObject *)self);
        self->batch.batching = 0;
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
    context_leave(self);
    return result;
}

CAIO_ASYNC_TRAMPOLINES(UringContext, submit_async)
CAIO_FS_TRAMPOLINE(UringContext, submit_async)

static PyObject *ctx_cancel_future(UringContext *self, PyObject *fut)
{
    PyObject *result = NULL;

    if (context_enter(self) < 0)
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
        req->result = -ECANCELED;
        req->state = CAIO_REQ_DONE;
        if (req->flags & CAIO_REQ_OWNED) {  /* cannot be: owned ones have no future */
            caio_fifo_push(&self->done_head, &self->done_tail, req);
        } else {
            /* A live future (the adapter passes only cancelled ones, which
             * refuse it quietly) fails with ECANCELED, as on the others. */
            if (caio_req_resolve_future(req) < 0)
                PyErr_WriteUnraisable((PyObject *)self);
            caio_req_put(&self->pool, req);
        }
        result = Py_NewRef(Py_True);
        goto out;
    }
    result = Py_NewRef(Py_False);
out:
    context_leave(self);
    return result;
}

static PyObject *ctx_set_idle_check(UringContext *self, PyObject *check)
{
    if (caio_check_callable_or_none(check, "the idle check") < 0)
        return NULL;
    Py_XSETREF(self->idle_check, check == Py_None ? NULL : Py_NewRef(check));
    Py_RETURN_NONE;
}

static PyObject *ctx_flush_cb(UringContext *self, PyObject *unused)
{
    Py_ssize_t n;

    self->batch.flush_scheduled = 0;
    /* Scheduled before close(): nothing left to do then. */
    if (caio_context_check((caio_context *)self, QUALNAME) < 0 || self->nogil) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    self->busy++;
    n = uctx_pump(self);
    context_leave(self);
    if (n < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *ctx_flush(UringContext *self, PyObject *unused)
{
    Py_ssize_t n;

    if (context_enter(self) < 0)
        return NULL;
    n = uctx_pump(self);
    context_leave(self);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

/* ---- submit / cancel (the caio 0.12 API) ------------------------------------ */

static PyObject *ctx_submit(UringContext *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t i, queued = 0;
    PyObject *result = NULL;

    PyObject *ctxref;

    if (context_enter(self) < 0)
        return NULL;
    /* Nothing is queued unless every argument is an Operation. */
    if (caio_check_operations(args, nargs) < 0 ||
        (ctxref = caio_context_selfref((caio_context *)self)) == NULL)
        goto out;
    for (i = 0; i < nargs; i++) {
        caio_req *req = caio_operation_take(args[i], ctxref);
        if (req == NULL)
            continue;   /* already submitted: skipped, as in caio 0.12 */
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
    context_leave(self);
    return result;
}

static PyObject *ctx_cancel(UringContext *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t i, count = 0;
    unsigned long ok_before;
    PyObject *result = NULL;

    if (context_enter(self) < 0)
        return NULL;
    if (caio_check_owned((caio_context *)self, args, nargs) < 0)
        goto out;
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
    context_leave(self);
    return result;
}

static PyObject *ctx_process_events(UringContext *self, PyObject *unused)
{
    int err;
    Py_ssize_t n;

    if (context_enter(self) < 0)
        return NULL;
    /* One read empties the eventfd counter however many CQEs it counted;
     * it is non-blocking, so a spurious wake-up costs EAGAIN. Reading first
     * also means a CQE posted after this read signals again. */
    if ((err = caio_eventfd_drain(self->efd)) < 0) {
        caio_oserror(-err);
        context_leave(self);
        return NULL;
    }
    n = uctx_run_done(self);
    if (n >= 0) {
        Py_ssize_t m = uctx_pump(self);
        n = m < 0 ? -1 : n + m;
    }
    context_leave(self);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *ctx_set_future_factory(UringContext *self, PyObject *const *args,
                                        Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *factory, *call_soon;

    if (context_enter(self) < 0)
        return NULL;
    if (caio_parse_future_factory(args, nargs, kwnames, &factory, &call_soon) < 0) {
        context_leave(self);
        return NULL;
    }
    /* call_soon schedules the batched flushes; without it the ring never
     * batches (every submission enters the kernel at once). */
    caio_context_set_factory((caio_context *)self, factory, call_soon);
    if (self->call_soon == NULL)
        self->batch.batching = 0;
    context_leave(self);
    Py_RETURN_NONE;
}

/* ---- type: creation, close, dealloc ---------------------------------------- */

static PyObject *ctx_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"max_requests", "sqpoll", "nowait_reads", "stat_cached", NULL};
    PyObject *max_ob = Py_None;
    unsigned max_requests;
    int sqpoll = 0, nowait_reads = 1, stat_cached = 1;
    UringContext *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O$ppp:Context", kwlist,
                                     &max_ob, &sqpoll, &nowait_reads, &stat_cached))
        return NULL;
    if (caio_parse_max_requests(max_ob, CAIO_MAX_REQUESTS_DEFAULT, &max_requests) < 0)
        return NULL;
    if (caio_fork_init() < 0)
        return NULL;
    self = (UringContext *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->efd = -1;
    self->ring.fd = -1;
    self->closed = 1;       /* until fully set up: dealloc then frees only */
    self->released = 1;
    caio_batch_init(&self->batch);
    caio_lone_init(&self->lone);
    caio_lone_init(&self->lone_write);
    self->lone_fd = -1;
    caio_fd_memo_init(&self->direct);
    self->fork_gen = caio_fork_generation();
    self->max_requests = max_requests;

    self->nowait_reads = nowait_reads;
    self->stat_cached = stat_cached;
    if (uctx_open(self, sqpoll) < 0)
        goto error;
    /* Without RWF_NOWAIT (or hidden by the test switch): the ring only. */
    self->nowait_reads &= caio_has(&self->ring.features, CAIO_F_NOWAIT);
    /* Without openat2(RESOLVE_CACHED) (or hidden): every stat to the ring. */
    self->stat_cached &= caio_has(&self->ring.features, CAIO_F_STAT_CACHED);
    self->closed = 0;
    return (PyObject *)self;
error:
    if (!self->released)
        uctx_release(self);
    Py_DECREF(self);
    return NULL;
}

static PyObject *ctx_enter_cm(UringContext *self, PyObject *unused)
{
    if (self->closed) {
        caio_context_closed_error();
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
    /* Nothing left to wait for: let go of the loop the check refers to. */
    Py_CLEAR(self->idle_check);
    Py_RETURN_NONE;
}

static PyObject *ctx_exit_cm(UringContext *self, PyObject *args)
{
    return ctx_close(self, NULL);
}

static int ctx_traverse(UringContext *self, visitproc visit, void *arg)
{
    /* The futures and Operations of the requests (see caio_req_visit); not
     * their buffers, which the kernel may own. Once closed none is left. */
    if (!self->closed) {
        for (unsigned i = 0; i < self->n_inflight; i++)
            CAIO_VISIT_REQ(self->inflight[i]);
        for (caio_req *req = self->wait_head; req != NULL; req = req->next)
            CAIO_VISIT_REQ(req);
        for (caio_req *req = self->done_head; req != NULL; req = req->next)
            Py_VISIT(req->owner);   /* done, its reference not yet dropped */
    }
    Py_VISIT(self->idle_check);
    return caio_context_traverse((caio_context *)self, visit, arg);
}

static int ctx_clear(UringContext *self)
{
    Py_CLEAR(self->idle_check);
    caio_context_clear((caio_context *)self);
    return 0;
}

static void ctx_finalize(UringContext *self)
{
    if (!self->closed)
        CAIO_CLOSE_IN_FINALIZER(self, uctx_close(self));
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

/* ---- attributes -------------------------------------------------------------- */

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
        caio_context_closed_error();
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
    return PyBool_FromLong(self->batch.batching);
}

static PyObject *ctx_get_lone_wait(UringContext *self, void *closure)
{
    return PyBool_FromLong(self->lone.avg > CAIO_LONE_WAIT_ABOVE);
}

static PyObject *ctx_get_lone_write(UringContext *self, void *closure)
{
    return PyBool_FromLong(self->lone_write.avg > CAIO_LONE_WAIT_ABOVE);
}

static PyObject *ctx_repr(UringContext *self)
{
    return PyUnicode_FromFormat("<%s max_requests=%u in_flight=%u%s%s>",
                                Py_TYPE(self)->tp_name, self->max_requests,
                                self->n_inflight, self->sqpoll ? " sqpoll" : "",
                                self->closed ? " closed" : "");
}

static PyMethodDef ctx_methods[] = {
    CAIO_CONTEXT_METHODS(
        "\nCallbacks run in process_events().",
        "\nRaises OSError when the ring is stuck.",
        "\nRaises OSError when the ring fails.",
        "\nWith call_soon, submissions that do not complete inline are\n"
        "batched once per loop iteration."),
    CAIO_FS_METHODS,
    {"close", (PyCFunction)ctx_close, METH_NOARGS,
     "close($self, /)\n--\n\n"
     "Cancel what is in flight, wait for it, release the ring. Idempotent.\n"
     "Raises RuntimeError when another thread is inside the context."},
    {"flush", (PyCFunction)ctx_flush, METH_NOARGS,
     "flush($self, /)\n--\n\n"
     "Submit what is batched or waiting and reap what completed; returns\n"
     "how many completed. Raises OSError when the ring fails. "
     CAIO_RAISES_COMMON},
    {"_set_idle_check", (PyCFunction)ctx_set_idle_check, METH_O,
     "_set_idle_check($self, check, /)\n--\n\n"
     "check() tells whether the event loop has nothing else to run; only\n"
     "then is a lone read that misses the page cache waited for in the\n"
     "call, or a lone buffered write made in it (None: never)."},
    {"_flush", (PyCFunction)ctx_flush_cb, METH_NOARGS,
     "_flush($self, /)\n--\n\nSubmit batched operations (scheduled with call_soon)."},
    {NULL}
};

static PyObject *ctx_get_kernel_features(UringContext *self, void *closure)
{
    return caio_features_names(&self->ring.features);
}

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
    {"lone_wait", (getter)ctx_get_lone_wait, NULL,
     "True while a read alone in flight that misses the page cache is waited "
     "for briefly in the call (most such waits succeed here).", NULL},
    {"lone_write", (getter)ctx_get_lone_write, NULL,
     "True while a buffered write alone on the context is made in the call, "
     "on the calling thread, when the loop is idle (most such writes are fast "
     "here).", NULL},
    {"_kernel_features", (getter)ctx_get_kernel_features, NULL,
     "The kernel features this context found (caio._features names).", NULL},
    {NULL}
};

static PyTypeObject UringContext_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = QUALNAME,
    .tp_basicsize = sizeof(UringContext),
    .tp_dealloc = (destructor)ctx_dealloc,
    .tp_repr = (reprfunc)ctx_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Context(max_requests=None, *, sqpoll=False, nowait_reads=True, "
              "stat_cached=True)\n--\n\n"
              "caio.linux_uring context: an io_uring ring. nowait_reads: serve page-cache hits of reads "
              "up to 256 KiB with preadv2(RWF_NOWAIT) before using the ring. "
              "stat_cached: answer a stat of a path in the dentry cache (or an fd) "
              "without the ring. "
              "sqpoll=True asks for a kernel submission "
              "thread and falls back to a normal ring where that is refused "
              "(see .sqpoll).\nRaises ValueError/TypeError (max_requests), "
              "OSError (the kernel refused the ring).",
    .tp_traverse = (traverseproc)ctx_traverse,
    .tp_clear = (inquiry)ctx_clear,
    .tp_finalize = (destructor)ctx_finalize,
    .tp_weaklistoffset = offsetof(UringContext, weakreflist),
    .tp_methods = ctx_methods,
    .tp_getset = ctx_getset,
    .tp_new = ctx_new,
};

/* ---- module ------------------------------------------------------------------ */

/* ImportError that says why io_uring cannot be used and what to do. */
static void set_unusable_error(int err, const char *stage)
{
    char msg[1024];
    PyObject *text, *name;

    uring_unusable_reason(err, stage, msg, sizeof(msg));
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
    if (caio_features_init() < 0)
        return NULL;
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
        caio_operation_add_type(m, "caio.linux_uring.Operation") < 0 ||
        caio_features_add_names(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
