/* caio.linux_aio: the Context type and the module.
 *
 * Entry points read in the same order: argument checks, then the fast
 * path (submit, reap at once, return the value), then the slow path
 * (a future that process_events() resolves).
 *
 * Locking. Context state is touched with the GIL released (io_submit,
 * io_getevents and io_destroy run without it), so a per-context mutex
 * guards it: the lists, the counters, the pool and the kernel context.
 * The mutex is taken with the GIL held when it is free and with the GIL
 * released when another thread has it (never wait for a mutex while
 * holding the GIL that its holder needs). Python code runs under the mutex
 * only where it cannot be avoided: fileno()/buffer exports while parsing
 * arguments, and the future factory. Calling back into the same context
 * from there is detected and raises RuntimeError instead of deadlocking.
 * Callbacks and future resolution always run with the mutex released.
 */
#include "aio.h"
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <unistd.h>

#define CTX_NAME "caio.linux_aio.Context"
#define MAX_REQUESTS_LIMIT (1u << 20)

static PyTypeObject AioContext_Type;

/* ---- locking ------------------------------------------------------------ */

static void ctx_lock_always(AioContext *self)
{
    if (pthread_mutex_trylock(&self->lock) != 0) {
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&self->lock);
        Py_END_ALLOW_THREADS
    }
    __atomic_store_n(&self->lock_owner, (uintptr_t)pthread_self(), __ATOMIC_RELAXED);
}

static int ctx_lock(AioContext *self)
{
    /* Only this thread can have stored its own id: a relaxed load is enough
     * to tell "I hold it" from "someone else does or nobody does". */
    if (__atomic_load_n(&self->lock_owner, __ATOMIC_RELAXED) == (uintptr_t)pthread_self()) {
        PyErr_SetString(PyExc_RuntimeError,
                        CTX_NAME " was called again from code it was running "
                        "(fileno(), a buffer export or the future factory)");
        return -1;
    }
    ctx_lock_always(self);
    return 0;
}

static void ctx_unlock(AioContext *self)
{
    __atomic_store_n(&self->lock_owner, (uintptr_t)0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&self->lock);
}

static int ctx_closed_error(void)
{
    PyErr_SetString(PyExc_ValueError, "I/O operation on closed context");
    return -1;
}

/* Checks shared by every entry point, then the lock. */
static int ctx_enter(AioContext *self)
{
    if (caio_fork_check(self->fork_gen, CTX_NAME) < 0)
        return -1;
    if (self->closed)
        return ctx_closed_error();
    if (ctx_lock(self) < 0)
        return -1;
    if (self->closed) {   /* closed by another thread while we waited */
        ctx_unlock(self);
        return ctx_closed_error();
    }
    return 0;
}

/* ---- results ------------------------------------------------------------ */

/* The exception for a failed request (new reference). */
static PyObject *req_exception(caio_req *req)
{
    int err = (int)-req->result;
    const char *hint = NULL;
    PyObject *msg, *exc;

    if (req->flags & AIO_REQ_WOULD_BLOCK)
        hint = "kernel AIO would block the event loop waiting for this file "
               "(a pipe, socket or device with no data or no room); use the "
               "uring or thread backend for such files";
    else if ((req->flags & AIO_REQ_REJECTED) && err == EOPNOTSUPP)
        hint = "this file has no non-blocking mode, so kernel AIO cannot use it "
               "without blocking the event loop";
    else if ((req->flags & AIO_REQ_REJECTED) &&
             (req->opcode == CAIO_FSYNC || req->opcode == CAIO_FDSYNC))
        hint = "kernel AIO refused the sync: the file cannot be synced (a pipe, "
               "a socket) or the kernel is older than 4.18";
    else if (req->flags & AIO_REQ_REJECTED)
        hint = "kernel AIO refused the request: the file does not support it "
               "(like some /proc files) or offset + size overflows";
    if (hint == NULL)
        return caio_oserror_new(err);
    msg = PyUnicode_FromFormat("%s (%s)", strerror(err), hint);
    if (msg == NULL)
        return NULL;
    exc = PyObject_CallFunction(PyExc_OSError, "iO", err, msg);
    Py_DECREF(msg);
    return exc;
}

/* The value of a finished request, or NULL with its OSError raised. */
static PyObject *req_result(caio_req *req)
{
    PyObject *exc;

    if (req->result >= 0)
        return caio_req_value(req);
    exc = req_exception(req);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static int req_resolve(caio_req *req)
{
    PyObject *exc;
    int r;

    if (req->future == NULL)
        return 0;
    if (req->result >= 0 || !(req->flags & AIO_REQ_PRIVATE))
        return caio_req_resolve_future(req);
    /* Our own message for kernel-AIO-specific refusals. */
    if ((exc = req_exception(req)) == NULL)
        return -1;
    r = caio_future_set_exception(req->future, exc);
    Py_DECREF(exc);
    return r;
}

/* ---- giving requests back ------------------------------------------------ */

static void ctx_free_pool(AioContext *self)
{
    if (self->pool.reqs != NULL)
        caio_req_pool_free(&self->pool, self->pool_leaked);
}

/* Return cleared requests (linked by next) to the pool. Ends one
 * `outside` batch: the pool of a closed context is freed when the last
 * batch comes home. */
static void ctx_return_reqs(AioContext *self, caio_req *list)
{
    ctx_lock_always(self);
    while (list != NULL) {
        caio_req *req = list;
        list = req->next;
        caio_req_put(&self->pool, req);
    }
    self->outside--;
    if (self->closed && self->outside == 0)
        ctx_free_pool(self);
    ctx_unlock(self);
}

/* Deliver finished requests (mutex released, self->outside taken):
 * Operation callbacks, futures, then the pool. Returns how many. */
static Py_ssize_t ctx_deliver(AioContext *self, caio_req *list)
{
    caio_req *back = NULL;
    Py_ssize_t n = 0;

    while (list != NULL) {
        caio_req *req = list;
        list = req->next;
        req->next = NULL;
        n++;
        if (req->flags & CAIO_REQ_OWNED) {
            PyObject *op = req->owner;
            caio_operation_run_callback(req);
            Py_DECREF(op);   /* the reference submit() took */
            continue;
        }
        if (req->future != NULL) {
            if (PyDict_DelItem(self->futures, req->future) < 0)
                PyErr_Clear();
            if (req_resolve(req) < 0)
                PyErr_WriteUnraisable(req->future);
        }
        caio_req_clear(req);
        req->next = back;
        back = req;
    }
    ctx_return_reqs(self, back);
    return n;
}

/* ---- Context: creation ---------------------------------------------------- */

static PyObject *ctx_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"max_requests", "userspace_reap", NULL};
    PyObject *max_ob = NULL;
    int userspace_reap = 1;
    long max_requests = 512;
    AioContext *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O$p:Context", kwlist,
                                     &max_ob, &userspace_reap))
        return NULL;
    if (max_ob != NULL && max_ob != Py_None) {   /* None: the default */
        if (!PyLong_Check(max_ob)) {
            PyErr_Format(PyExc_TypeError, "max_requests must be int, not %.100s",
                         Py_TYPE(max_ob)->tp_name);
            return NULL;
        }
        max_requests = PyLong_AsLong(max_ob);
        if (max_requests == -1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError))
                return NULL;
            PyErr_Clear();
            max_requests = -1;
        }
        if (max_requests < 1 || max_requests > (long)MAX_REQUESTS_LIMIT) {
            PyErr_Format(PyExc_ValueError, "max_requests must be in 1..%u",
                         MAX_REQUESTS_LIMIT);
            return NULL;
        }
    }
    if (caio_fork_init() < 0)
        return NULL;

    self = (AioContext *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    /* Closed until the kernel context exists: dealloc then has nothing to do. */
    self->closed = 1;
    self->efd = -1;
    self->max_requests = (unsigned)max_requests;
    self->fork_gen = caio_fork_generation();
    pthread_mutex_init(&self->lock, NULL);
    /* The kernel first: it refuses too large a max_requests before we
     * touch memory for the pool. */
    if ((self->futures = PyDict_New()) == NULL ||
        aio_ctx_open(self, self->max_requests, userspace_reap) < 0) {
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

/* ---- Context: closing ----------------------------------------------------- */

/* In a forked child: the kernel context, its ring and everything in flight
 * belong to the parent. Drop our references; touch nothing kernel-side. */
static void ctx_forget(AioContext *self)
{
    caio_req *req;

    self->closed = 1;
    self->aio = 0;
    self->ring = NULL;
    if (self->efd >= 0) {
        close(self->efd);   /* our copy of the descriptor only */
        self->efd = -1;
    }
    while ((req = caio_fifo_pop(&self->wait_head, &self->wait_tail)) != NULL ||
           (req = caio_fifo_pop(&self->ready_head, &self->ready_tail)) != NULL) {
        req->result = -ECANCELED;
        req->state = CAIO_REQ_DONE;
        if (req->flags & CAIO_REQ_OWNED)
            Py_DECREF(req->owner);
    }
    /* The kernel never writes into a child's memory: pool requests that
     * are "in flight" in the parent can simply be released here. */
    if (self->outside == 0 && self->pool.reqs != NULL) {
        for (size_t i = 0; i < self->pool.size; i++)
            caio_req_clear(&self->pool.reqs[i]);
        ctx_free_pool(self);
    }
    if (self->futures != NULL)
        PyDict_Clear(self->futures);
    self->inflight = 0;
}

/* Fail the futures still registered (requests the kernel did not give
 * back: their memory stays leaked). */
static void ctx_fail_lost_futures(AioContext *self)
{
    PyObject *key, *value, *keys, *exc;
    Py_ssize_t pos = 0;

    if (self->futures == NULL || PyDict_GET_SIZE(self->futures) == 0)
        return;
    keys = PyList_New(0);
    if (keys == NULL) {
        PyErr_WriteUnraisable((PyObject *)self);
        return;
    }
    while (PyDict_Next(self->futures, &pos, &key, &value))
        if (PyList_Append(keys, key) < 0)
            PyErr_Clear();
    PyDict_Clear(self->futures);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        exc = caio_oserror_new(ECANCELED);
        if (exc == NULL || caio_future_set_exception(PyList_GET_ITEM(keys, i), exc) < 0)
            PyErr_WriteUnraisable((PyObject *)self);
        Py_XDECREF(exc);
    }
    Py_DECREF(keys);
}

static int interpreter_finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

static int ctx_close_impl(AioContext *self)
{
    caio_req *req, *list;
    int err, destroy_err;

    if (self->closed)
        return 0;
    if (self->fork_gen != caio_fork_generation()) {
        ctx_forget(self);
        return 0;
    }
    if (interpreter_finalizing() && pthread_mutex_trylock(&self->lock) != 0) {
        /* A daemon thread that died holding the lock (threads are stopped
         * where they stand at exit) would make us wait forever. Leak. */
        self->closed = 1;
        self->pool_leaked = 1;
        return 0;
    }
    if (interpreter_finalizing())
        __atomic_store_n(&self->lock_owner, (uintptr_t)pthread_self(), __ATOMIC_RELAXED);
    else if (ctx_lock(self) < 0)
        return -1;
    if (self->closed) {
        ctx_unlock(self);
        return 0;
    }
    self->closed = 1;
    /* Never reached the kernel: cancelled (a retried read keeps what its
     * first round got). */
    while ((req = caio_fifo_pop(&self->wait_head, &self->wait_tail)) != NULL) {
        if (req->result <= 0)
            req->result = -ECANCELED;
        req->state = CAIO_REQ_DONE;
        caio_fifo_push(&self->ready_head, &self->ready_tail, req);
    }
    /* In flight: wait for every completion, then destroy (see aio.h). */
    err = aio_reap_all(self);
    destroy_err = aio_ctx_destroy(self);
    if (err != 0 || destroy_err != 0 || self->inflight != 0)
        self->pool_leaked = 1;   /* the kernel may not be done with it */
    list = self->ready_head;
    self->ready_head = self->ready_tail = NULL;
    self->outside++;
    ctx_unlock(self);

    ctx_deliver(self, list);   /* frees the pool if no other batch is out */
    ctx_fail_lost_futures(self);
    return 0;
}

static PyObject *ctx_close(AioContext *self, PyObject *unused)
{
    if (ctx_close_impl(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int ctx_traverse(AioContext *self, visitproc visit, void *arg)
{
    /* Not the futures or operations in flight: the kernel owns their
     * buffers, they must not be torn down by the collector. */
    Py_VISIT(self->factory);
    return 0;
}

static int ctx_clear(AioContext *self)
{
    Py_CLEAR(self->factory);
    return 0;
}

static void ctx_dealloc(AioContext *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    if (!self->closed) {
        caio_saved_error saved = caio_error_save();
        if (ctx_close_impl(self) < 0)
            PyErr_WriteUnraisable((PyObject *)self);
        caio_error_restore(saved);
    }
    if (self->outside == 0)
        ctx_free_pool(self);
    Py_CLEAR(self->factory);
    Py_CLEAR(self->futures);
    if (self->efd >= 0)
        close(self->efd);
    pthread_mutex_destroy(&self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ---- Context: the asyncio fast path ------------------------------------- */

static PyObject *ctx_async(AioContext *self, int opcode, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *factory, *fut, *addr;
    caio_req *req;
    long r, err;

    if (ctx_enter(self) < 0)
        return NULL;
    if (self->factory == NULL) {
        ctx_unlock(self);
        PyErr_SetString(PyExc_RuntimeError,
                        "no future factory: call set_future_factory() first");
        return NULL;
    }
    if ((req = caio_req_get(&self->pool)) == NULL) {
        ctx_unlock(self);
        return NULL;
    }
    if (caio_req_prepare(req, opcode, args, nargs, kwnames) < 0) {
        caio_req_put(&self->pool, req);
        ctx_unlock(self);
        return NULL;
    }
    if ((err = aio_req_prep(self, req)) < 0) {
        aio_req_fail(req, err, 0);
        goto done;
    }

    /* Fast path: nothing queued ahead and a free slot. A page-cache hit
     * completes inside io_submit; a read that must wait for the disk comes
     * back once (-EAGAIN under RWF_NOWAIT) and goes in again allowed to
     * block; more rounds than that go through the queue. */
    if (self->wait_head == NULL && self->inflight < self->max_requests) {
        for (int round = 0; round < 3; round++) {
            r = aio_submit_one(self, req);
            if (r == 1) {
                switch (aio_reap(self, req)) {
                case AIO_MINE_DONE:
                    goto done;
                case AIO_MINE_PENDING:
                    goto pending;
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
    ctx_unlock(self);
    return fut;

orphan:
    /* No future to resolve. A request still waiting is taken back; one in
     * flight returns to the pool when its completion is reaped. */
    if (req->state == CAIO_REQ_WAITING &&
        caio_fifo_remove(&self->wait_head, &self->wait_tail, req))
        caio_req_put(&self->pool, req);
    ctx_unlock(self);
    return NULL;

done: {
        PyObject *value;

        req->state = CAIO_REQ_DONE;
        self->outside++;
        ctx_unlock(self);
        value = req_result(req);
        caio_req_clear(req);   /* may run Python code: outside the lock */
        ctx_return_reqs(self, req);
        return value;
    }
}

static PyObject *ctx_read_async(AioContext *self, PyObject *const *args,
                                Py_ssize_t nargs, PyObject *kwnames)
{
    return ctx_async(self, CAIO_READ, args, nargs, kwnames);
}

static PyObject *ctx_write_async(AioContext *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames)
{
    return ctx_async(self, CAIO_WRITE, args, nargs, kwnames);
}

static PyObject *ctx_fsync_async(AioContext *self, PyObject *const *args,
                                 Py_ssize_t nargs, PyObject *kwnames)
{
    return ctx_async(self, CAIO_FSYNC, args, nargs, kwnames);
}

static PyObject *ctx_fdsync_async(AioContext *self, PyObject *const *args,
                                  Py_ssize_t nargs, PyObject *kwnames)
{
    return ctx_async(self, CAIO_FDSYNC, args, nargs, kwnames);
}

static PyObject *ctx_set_future_factory(AioContext *self, PyObject *factory)
{

    if (!PyCallable_Check(factory)) {
        PyErr_Format(PyExc_TypeError, "future factory must be callable, not %.100s",
                     Py_TYPE(factory)->tp_name);
        return NULL;
    }
    if (caio_futures_init() < 0)
        return NULL;
    if (ctx_enter(self) < 0)
        return NULL;
    /* Under the lock: another thread may be calling the old factory. */
    PyObject *old = self->factory;
    self->factory = Py_NewRef(factory);
    ctx_unlock(self);
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

/* Cancel one request (mutex held): a waiting one is finished here with
 * ECANCELED; one in flight is asked to the kernel. 1 if cancelled. */
static int ctx_cancel_req(AioContext *self, caio_req *req, int *woke)
{
    struct io_event ev;

    if (req->state == CAIO_REQ_WAITING &&
        caio_fifo_remove(&self->wait_head, &self->wait_tail, req)) {
        if (req->result <= 0)
            req->result = -ECANCELED;
        req->state = CAIO_REQ_DONE;
        caio_fifo_push(&self->ready_head, &self->ready_tail, req);
        *woke = 1;
        return 1;
    }
    if (req->state != CAIO_REQ_INFLIGHT)
        return 0;
    /* File reads and writes have no cancel hook in the kernel: EINVAL,
     * the completion comes anyway. Success is reported as EINPROGRESS (the
     * completion still arrives on the ring). */
    if (aio_sys_cancel(self->aio, aio_req_iocb(req), &ev) == 0 || errno == EINPROGRESS) {
        req->flags |= CAIO_REQ_CANCEL_ASKED;
        return 1;
    }
    return 0;
}

static PyObject *ctx_cancel_future(AioContext *self, PyObject *fut)
{
    PyObject *addr;
    caio_req *req;
    int woke = 0, done;

    if (ctx_enter(self) < 0)
        return NULL;
    addr = PyDict_GetItemWithError(self->futures, fut);
    if (addr == NULL) {
        ctx_unlock(self);
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_FALSE;
    }
    req = PyLong_AsVoidPtr(addr);
    done = req != NULL && ctx_cancel_req(self, req, &woke);
    if (woke)
        aio_wake(self);
    ctx_unlock(self);
    return PyBool_FromLong(done);
}

/* ---- Context: the caio 0.12 API ------------------------------------------ */

static PyObject *ctx_submit(AioContext *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t i;
    int woke = 0;
    long err;

    if (ctx_enter(self) < 0)
        return NULL;
    for (i = 0; i < nargs; i++) {
        caio_req *req = caio_operation_req(args[i]);
        if (req == NULL) {
            /* Undo the marks: nothing is queued unless everything is valid. */
            while (i-- > 0)
                ((CaioOperation *)args[i])->req.state = CAIO_REQ_FREE;
            ctx_unlock(self);
            return NULL;
        }
        /* Marked now, so the same operation twice in one call is caught. */
        req->state = CAIO_REQ_WAITING;
    }
    for (i = 0; i < nargs; i++) {
        caio_req *req = &((CaioOperation *)args[i])->req;
        /* Held until its callback has run. */
        Py_INCREF(args[i]);
        if ((err = aio_req_prep(self, req)) < 0) {
            aio_req_fail(req, err, 0);
            req->state = CAIO_REQ_DONE;
            caio_fifo_push(&self->ready_head, &self->ready_tail, req);
            woke = 1;
            continue;
        }
        caio_fifo_push(&self->wait_head, &self->wait_tail, req);
    }
    aio_pump(self);
    if (woke)
        aio_wake(self);
    ctx_unlock(self);
    return PyLong_FromSsize_t(nargs);
}

static PyObject *ctx_cancel(AioContext *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t i, count = 0;
    int woke = 0;

    for (i = 0; i < nargs; i++) {
        if (!PyObject_TypeCheck(args[i], &CaioOperation_Type)) {
            PyErr_Format(PyExc_TypeError, "expected %s, got %.100s",
                         CaioOperation_Type.tp_name, Py_TYPE(args[i])->tp_name);
            return NULL;
        }
    }
    if (ctx_enter(self) < 0)
        return NULL;
    for (i = 0; i < nargs; i++)
        count += ctx_cancel_req(self, &((CaioOperation *)args[i])->req, &woke);
    if (woke)
        aio_wake(self);
    ctx_unlock(self);
    return PyLong_FromSsize_t(count);
}

static PyObject *ctx_process_events(AioContext *self, PyObject *unused)
{
    caio_req *list;
    uint64_t count;

    if (ctx_enter(self) < 0)
        return NULL;
    /* Drain the eventfd before reaping: a completion posted after this
     * read makes it readable again, so none is missed. */
    if (read(self->efd, &count, sizeof(count)) < 0) {
        /* EAGAIN: woken for completions an earlier call already reaped */
    }
    aio_reap(self, NULL);
    if (self->wait_head != NULL) {
        aio_pump(self);
        aio_reap(self, NULL);   /* buffered I/O completed inside io_submit */
    }
    list = self->ready_head;
    self->ready_head = self->ready_tail = NULL;
    if (list == NULL) {
        ctx_unlock(self);
        return PyLong_FromLong(0);
    }
    self->outside++;
    ctx_unlock(self);
    return PyLong_FromSsize_t(ctx_deliver(self, list));
}

/* ---- Context: attributes -------------------------------------------------- */

static PyObject *ctx_get_fileno(AioContext *self, void *closure)
{
    if (caio_fork_check(self->fork_gen, CTX_NAME) < 0)
        return NULL;
    if (self->closed) {
        ctx_closed_error();
        return NULL;
    }
    return PyLong_FromLong(self->efd);
}

static PyObject *ctx_get_max_requests(AioContext *self, void *closure)
{
    return PyLong_FromUnsignedLong(self->max_requests);
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

static PyObject *ctx_enter_cm(AioContext *self, PyObject *unused)
{
    if (self->closed) {
        ctx_closed_error();
        return NULL;
    }
    return Py_NewRef(self);
}

static PyObject *ctx_exit_cm(AioContext *self, PyObject *args)
{
    return ctx_close(self, NULL);
}

#define FASTCALL_KW (METH_FASTCALL | METH_KEYWORDS)

static PyMethodDef ctx_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))ctx_submit, METH_FASTCALL,
     "submit(*operations) -> int\n\nQueue operations; more than max_requests wait "
     "their turn. Callbacks run in process_events(). Returns how many were queued.\n"
     "Raises TypeError (not an Operation of this module), RuntimeError (already "
     "submitted or finished; used after fork), ValueError (closed)."},
    {"cancel", (PyCFunction)(void (*)(void))ctx_cancel, METH_FASTCALL,
     "cancel(*operations) -> int\n\nCancel operations: waiting ones always, in-flight "
     "ones only if the kernel can (file I/O cannot). Returns how many.\n"
     "Raises TypeError, ValueError (closed)."},
    {"close", (PyCFunction)ctx_close, METH_NOARGS,
     "close()\n\nWait for the operations in flight, deliver their results, fail the "
     "rest with OSError(ECANCELED), release the kernel context. Idempotent; in a "
     "forked child it only forgets. Raises RuntimeError if called from the future "
     "factory while the context runs it."},
    {"process_events", (PyCFunction)ctx_process_events, METH_NOARGS,
     "process_events() -> int\n\nReap completions, resolve futures, run callbacks, "
     "submit waiting operations. Returns how many finished.\n"
     "Raises ValueError (closed), RuntimeError (used after fork)."},
    {"set_future_factory", (PyCFunction)ctx_set_future_factory, METH_O,
     "set_future_factory(factory)\n\nfactory() -> a future (usually loop.create_future).\n"
     "Raises TypeError (not callable), ValueError (closed), RuntimeError (after fork)."},
    {"read_async", (PyCFunction)(void (*)(void))ctx_read_async, FASTCALL_KW,
     "read_async(nbytes, fd, offset, priority=0) -> bytes | Future[bytes]\n\n"
     "The bytes if the read finished during the call, else a future. Raises OSError "
     "if it failed during the call (BlockingIOError: a pipe or socket with no data); "
     "TypeError/ValueError/MemoryError for bad arguments; ValueError once closed; "
     "RuntimeError without a future factory or after fork."},
    {"write_async", (PyCFunction)(void (*)(void))ctx_write_async, FASTCALL_KW,
     "write_async(payload, fd, offset, priority=0) -> int | Future[int]\n\n"
     "The count if the write finished during the call, else a future. Raises like "
     "read_async; TypeError/BufferError for a payload that is not a contiguous buffer."},
    {"fsync_async", (PyCFunction)(void (*)(void))ctx_fsync_async, FASTCALL_KW,
     "fsync_async(fd, priority=0) -> None | Future[None]\n\n"
     "Usually a future (the kernel syncs in a workqueue). Raises like read_async."},
    {"fdsync_async", (PyCFunction)(void (*)(void))ctx_fdsync_async, FASTCALL_KW,
     "fdsync_async(fd, priority=0) -> None | Future[None]\n\n"
     "Like fsync_async, with fdatasync semantics."},
    {"cancel_future", (PyCFunction)ctx_cancel_future, METH_O,
     "cancel_future(future) -> bool\n\nCancel the operation behind a future from "
     "*_async(). Its buffer stays alive until the kernel is done with it. True if "
     "it was still waiting for a slot (or the kernel could cancel it).\n"
     "Raises ValueError (closed), RuntimeError (after fork), TypeError (unhashable)."},
    {"__enter__", (PyCFunction)ctx_enter_cm, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)ctx_exit_cm, METH_VARARGS, NULL},
    {NULL}
};

static PyGetSetDef ctx_getset[] = {
    {"fileno", (getter)ctx_get_fileno, NULL,
     "The eventfd that becomes readable when completions wait.", NULL},
    {"max_requests", (getter)ctx_get_max_requests, NULL,
     "How many operations may be in the kernel at once.", NULL},
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
    .tp_doc = "Context(max_requests=512, *, userspace_reap=True)\n\n"
              "A Linux kernel AIO context (io_setup). userspace_reap=False reads "
              "completions with io_getevents() instead of the mapped ring.\n"
              "Raises ValueError/TypeError for a bad max_requests, OSError when the "
              "kernel refuses (e.g. fs.aio-max-nr reached).",
    .tp_traverse = (traverseproc)ctx_traverse,
    .tp_clear = (inquiry)ctx_clear,
    .tp_weaklistoffset = offsetof(AioContext, weakreflist),
    .tp_methods = ctx_methods,
    .tp_getset = ctx_getset,
    .tp_new = ctx_new,
};

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
    if (caio_fork_init() < 0 ||
        caio_operation_add_type(m, "caio.linux_aio.Operation") < 0 ||
        PyType_Ready(&AioContext_Type) < 0 ||
        PyModule_AddObjectRef(m, "Context", (PyObject *)&AioContext_Type) < 0)
        goto error;
    return m;
error:
    Py_DECREF(m);
    return NULL;
}
