/* caio.linux_aio: the engine. Locking (see context.h), turning finished
 * requests into values and exceptions, giving requests back to the pool,
 * cancelling and closing. The kernel layer is aio.h/setup.c/queue.c; the
 * Python methods that drive all this are in module.c. */
#include "context.h"
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <unistd.h>

/* ---- locking ------------------------------------------------------------ */

void aio_ctx_lock_always(AioContext *self)
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
    aio_ctx_lock_always(self);
    return 0;
}

void context_leave(AioContext *self)
{
    __atomic_store_n(&self->lock_owner, (uintptr_t)0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&self->lock);
}

/* The common checks, then the lock. */
int context_enter(AioContext *self)
{
    if (caio_context_check((caio_context *)self, CTX_NAME) < 0)
        return -1;
    if (ctx_lock(self) < 0)
        return -1;
    if (self->closed) {   /* closed by another thread while we waited */
        context_leave(self);
        return caio_context_closed_error();
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
PyObject *aio_ctx_req_result(caio_req *req)
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

void aio_ctx_free_pool(AioContext *self)
{
    if (self->pool.reqs != NULL)
        caio_req_pool_free(&self->pool, self->pool_leaked);
}

/* Return cleared requests (linked by next) to the pool. Ends one
 * `outside` batch: the pool of a closed context is freed when the last
 * batch comes home. */
void aio_ctx_return_reqs(AioContext *self, caio_req *list)
{
    aio_ctx_lock_always(self);
    while (list != NULL) {
        caio_req *req = list;
        list = req->next;
        caio_req_put(&self->pool, req);
    }
    self->outside--;
    if (self->closed && self->outside == 0)
        aio_ctx_free_pool(self);
    context_leave(self);
}

/* Deliver finished requests (mutex released, self->outside taken):
 * Operation callbacks, futures, then the pool. Returns how many. */
Py_ssize_t aio_ctx_deliver(AioContext *self, caio_req *list)
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
            caio_operation_finish(req);
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
    aio_ctx_return_reqs(self, back);
    return n;
}


int aio_ctx_cancel_req(AioContext *self, caio_req *req, int *woke)
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
        aio_ctx_free_pool(self);
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

int aio_ctx_close(AioContext *self)
{
    caio_req *req, *list;
    int err, destroy_err;

    if (self->closed)
        return 0;
    if (self->fork_gen != caio_fork_generation()) {
        ctx_forget(self);
        return 0;
    }
    if (caio_interpreter_finalizing() && pthread_mutex_trylock(&self->lock) != 0) {
        /* A daemon thread that died holding the lock (threads are stopped
         * where they stand at exit) would make us wait forever. Leak. */
        self->closed = 1;
        self->pool_leaked = 1;
        return 0;
    }
    if (caio_interpreter_finalizing())
        __atomic_store_n(&self->lock_owner, (uintptr_t)pthread_self(), __ATOMIC_RELAXED);
    else if (ctx_lock(self) < 0)
        return -1;
    if (self->closed) {
        context_leave(self);
        return 0;
    }
    self->closed = 1;
    caio_spare_clear(&self->spare);
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
    if (err == 0 && self->inflight == 0 && self->aio != 0
            && aio_destroy_in_background(self->aio) == 0) {
        /* Nothing the kernel could still write: its io_destroy, an RCU
         * grace period long, need not stall this (the loop's) thread. */
        self->aio = 0;
        self->ring = NULL;   /* the helper's io_destroy unmaps it */
    }
    destroy_err = aio_ctx_destroy(self);   /* the eventfd; io_destroy if not handed over */
    if (err != 0 || destroy_err != 0 || self->inflight != 0)
        self->pool_leaked = 1;   /* the kernel may not be done with it */
    list = self->ready_head;
    self->ready_head = self->ready_tail = NULL;
    self->outside++;
    context_leave(self);

    aio_ctx_deliver(self, list);   /* frees the pool if no other batch is out */
    ctx_fail_lost_futures(self);
    return 0;
}

/* ---- the kernel context ------------------------------------------------------ */

static void setup_error(int err, unsigned nr)
{
    switch (err) {
    case EAGAIN:
        PyErr_Format(PyExc_OSError,
                     "io_setup(%u): the system-wide limit of kernel AIO requests "
                     "(sysctl fs.aio-max-nr, in use: fs.aio-nr) would be exceeded; "
                     "close unused contexts, lower max_requests or raise fs.aio-max-nr",
                     nr);
        break;
    case ENOSYS:
    case EPERM:
        PyErr_Format(PyExc_OSError,
                     "io_setup: kernel AIO is not available here (%s): the kernel "
                     "lacks CONFIG_AIO or a seccomp policy blocks it",
                     strerror(err));
        break;
    default:
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
    }
}

int aio_ctx_open(AioContext *self, int userspace_reap)
{
    int err = aio_setup_context(self->max_requests, userspace_reap, &self->aio,
                                &self->ring, &self->efd);

    if (err < 0) {
        setup_error(-err, self->max_requests);
        return -1;
    }
    return 0;
}

int aio_ctx_destroy(AioContext *self)
{
    int err;

    Py_BEGIN_ALLOW_THREADS
    err = aio_destroy_context(&self->aio, &self->ring, &self->efd);
    Py_END_ALLOW_THREADS
    return err;
}
