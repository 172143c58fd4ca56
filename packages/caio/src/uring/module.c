/* caio.linux_uring: the Context type and the module.
 *
 * How a request moves (see docs/internals.md for the protocol):
 *
 *   read_async()/submit() --> waiting FIFO (when max_requests are in flight)
 *          |                      | (a completion frees a slot)
 *          v                      v
 *   SQE in the ring, request in ctx->inflight, user_data = the caio_req
 *          | io_uring_enter (at once, or once per loop iteration: batching)
 *          v
 *   CQE --> reap(): result recorded, slot freed; then the future is
 *           resolved / the Operation callback runs / or, when the CQE came
 *           back during the very call that submitted it, that call returns
 *           the value itself and no future is ever made.
 *
 * Inline completion. io_uring first issues a read or write with
 * IOCB_NOWAIT inside io_uring_enter. When that succeeds (page-cache hit,
 * buffered write) the CQE is already in the CQ ring when the system call
 * returns, so *_async() reaps it at once and returns bytes/int: the
 * coroutine never suspends and no future is allocated. Only when the
 * kernel answers -EAGAIN internally (cold cache, pipes without data) does
 * the request go to poll or to an io-wq worker, and its CQE arrives later
 * through the eventfd.
 *
 * Submit now or batch. Entering the kernel once per operation is best when
 * operations finish inline (the value comes back in the same call). When
 * most do not, one io_uring_enter per loop iteration for all of them is
 * cheaper: the context keeps a moving average of the inline rate, switches
 * to batching when it drops below 1/4 (flushing via the loop's call_soon),
 * and back above 1/2, probing every PROBE_EVERY-th operation at once while
 * batching so it notices when the cache warms up.
 *
 * Cancellation and memory. A cancelled future does not make the kernel
 * stop writing into the request's buffer. cancel_future() submits
 * IORING_OP_ASYNC_CANCEL, but the request keeps its buffer (and slot) until
 * its own CQE arrives, whatever the cancel's outcome (0, -EALREADY for a
 * read an io-wq worker is already doing, -ENOENT if it just finished).
 *
 * CQ overflow. At most `limit` (<= SQ size) requests are in flight and
 * each has at most one cancel in flight, and the CQ is twice the SQ: it
 * cannot overflow. Should the kernel flag IORING_SQ_CQ_OVERFLOW anyway,
 * reap() asks it to flush the kept-back CQEs.
 *
 * Re-entrancy. Futures' set_result, the factory, Operation callbacks and
 * even fileno() of an fd argument run Python code that may call back into
 * this context, including close(). Every entry point bumps ctx->busy;
 * close() does its logical work at once but unmaps rings and frees the
 * request pool only when the outermost call leaves. CQEs are consumed one
 * by one (head advanced before any Python code runs), so a nested reap
 * just continues where the outer one was.
 */
#include "caio.h"
#include "uring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#define QUALNAME "caio.linux_uring.Context"

/* user_data of our own ASYNC_CANCEL requests. Request pointers are
 * aligned, so odd values can never be one. */
#define UD_CANCEL 1ULL
#define UD_CANCEL_ANY 3ULL

/* Backend scratch in caio_req. */
#define REQ_SLOT(r) ((r)->backend[0])    /* index in ctx->inflight */
#define REQ_BFLAGS(r) ((r)->backend[1])
/* The *_async call that submitted the request is still running: a
 * completion only records the result, the call takes it from there. */
#define BF_HELD 1u
/* close() gave up waiting for it: its memory must never be freed. */
#define BF_LEAKED 2u

/* Inline-rate moving average, fixed point. */
#define AVG_ONE 256
#define AVG_BATCH_BELOW (AVG_ONE / 4)
#define AVG_IMMEDIATE_ABOVE (AVG_ONE / 2)
#define PROBE_EVERY 16

/* Submissions carrying more bytes than this release the GIL around
 * io_uring_enter: an inline page-cache copy of that size takes longer than
 * dropping and retaking the GIL. Small ones keep it (releasing would cost
 * more than the whole system call). */
#define NOGIL_BYTES (256 * 1024)

/* How long close() waits for the kernel to give back every request. */
#define CLOSE_TIMEOUT_MS 10000
/* How long cancel() waits for the kernel to answer its cancel requests. */
#define CANCEL_TIMEOUT_MS 1000

typedef struct {
    PyObject_HEAD
    struct uring ring;
    int efd;
    unsigned long fork_gen;
    unsigned max_requests;      /* as asked */
    unsigned limit;             /* in-flight cap: min(max_requests, SQ size) */
    int closed;                 /* close() has started */
    int released;               /* rings unmapped, pool freed */
    int busy;                   /* depth of calls that may run Python code */
    int nogil;                  /* a call is in a GIL-released section */
    int leak;                   /* the kernel kept some request: leak memory */
    int sqpoll;
    int batching;
    int flush_scheduled;
    int cancel_any_failed;
    int avg;                    /* inline completion rate, 0..AVG_ONE */
    unsigned probe;
    size_t unsubmitted_bytes;
    caio_req **inflight;
    unsigned n_inflight;
    unsigned cancels_pending;
    unsigned long cancels_ok;
    caio_req *wait_head, *wait_tail;
    caio_req *done_head, *done_tail;    /* Operations whose callbacks wait */
    caio_req_pool pool;
    PyObject *factory;
    PyObject *call_soon;
    PyObject *weakreflist;
} UringContext;

static PyTypeObject UringContext_Type;

/* ---- small helpers ------------------------------------------------------ */

/* Make the eventfd readable, so that the loop calls process_events():
 * for work that no CQE will announce (callbacks of operations cancelled
 * before they reached the kernel). */
static void signal_self(UringContext *self)
{
    static const uint64_t one = 1;

    if (write(self->efd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is at its maximum, i.e. signalled. */
    }
}

static int ctx_enter(UringContext *self)
{
    if (caio_fork_check(self->fork_gen, QUALNAME) < 0)
        return -1;
    if (self->closed) {
        PyErr_SetString(PyExc_ValueError, "I/O operation on closed context");
        return -1;
    }
    if (self->nogil) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this context is in use by another thread; "
                        "use one context per thread (event loop)");
        return -1;
    }
    self->busy++;
    return 0;
}

static void release_memory(UringContext *self);

static void ctx_leave(UringContext *self)
{
    if (--self->busy == 0 && self->closed && !self->released)
        release_memory(self);
}

static void fifo_push(caio_req **head, caio_req **tail, caio_req *req)
{
    req->next = NULL;
    if (*tail != NULL)
        (*tail)->next = req;
    else
        *head = req;
    *tail = req;
}

static caio_req *fifo_pop(caio_req **head, caio_req **tail)
{
    caio_req *req = *head;

    if (req != NULL) {
        *head = req->next;
        if (*head == NULL)
            *tail = NULL;
        req->next = NULL;
    }
    return req;
}

/* Unlink req from a FIFO; 1 when it was there. */
static int fifo_remove(caio_req **head, caio_req **tail, caio_req *req)
{
    caio_req *prev = NULL;

    for (caio_req *it = *head; it != NULL; prev = it, it = it->next) {
        if (it != req)
            continue;
        if (prev != NULL)
            prev->next = it->next;
        else
            *head = it->next;
        if (*tail == it)
            *tail = prev;
        it->next = NULL;
        return 1;
    }
    return 0;
}

static void inflight_add(UringContext *self, caio_req *req)
{
    REQ_SLOT(req) = self->n_inflight;
    self->inflight[self->n_inflight++] = req;
    req->state = CAIO_REQ_INFLIGHT;
}

static void inflight_remove(UringContext *self, caio_req *req)
{
    unsigned slot = (unsigned)REQ_SLOT(req);
    caio_req *last = self->inflight[--self->n_inflight];

    self->inflight[slot] = last;
    REQ_SLOT(last) = slot;
}

static int time_left_ms(const struct timespec *deadline)
{
    struct timespec now;
    long long ms;

    clock_gettime(CLOCK_MONOTONIC, &now);
    ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
         (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : (ms > 100 ? 100 : (int)ms);
}

static void deadline_in(struct timespec *deadline, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, deadline);
    deadline->tv_sec += ms / 1000;
    deadline->tv_nsec += (long)(ms % 1000) * 1000000;
    if (deadline->tv_nsec >= 1000000000) {
        deadline->tv_sec++;
        deadline->tv_nsec -= 1000000000;
    }
}

/* ---- submission ---------------------------------------------------------- */

/* Hand every published SQE to the kernel. Returns 0, or -1 with OSError
 * set when the ring itself failed. EAGAIN/EBUSY (the kernel is short of
 * memory, or holds back CQEs) leave the SQEs in the ring for the next
 * flush: process_events() retries. */
static int flush(UringContext *self)
{
    int ret;

    if (uring_sq_pending(&self->ring) == 0)
        return 0;
    if (self->unsubmitted_bytes > NOGIL_BYTES) {
        self->nogil = 1;
        Py_BEGIN_ALLOW_THREADS
        ret = uring_submit(&self->ring);
        Py_END_ALLOW_THREADS
        self->nogil = 0;
    } else {
        ret = uring_submit(&self->ring);
    }
    self->unsubmitted_bytes = 0;
    if (ret < 0 && ret != -EAGAIN && ret != -EBUSY && ret != -EINTR) {
        caio_oserror(-ret);
        return -1;
    }
    /* The kernel left SQEs in the ring (short of memory, or holding back
     * CQEs): have process_events() try again soon. */
    if (!self->sqpoll && uring_sq_pending(&self->ring) != 0)
        signal_self(self);
    return 0;
}

static struct io_uring_sqe *get_sqe(UringContext *self)
{
    struct io_uring_sqe *sqe = uring_get_sqe(&self->ring);

    if (sqe != NULL)
        return sqe;
    /* Full: only cancel requests can get us here (requests in flight never
     * outnumber SQ slots). Let the kernel take what is queued. */
    self->nogil = 1;
    Py_BEGIN_ALLOW_THREADS
    sqe = uring_get_sqe_wait(&self->ring);
    Py_END_ALLOW_THREADS
    self->nogil = 0;
    return sqe;
}

/* Put req into the SQ ring (published, not yet submitted) and count it in
 * flight. The caller checked n_inflight < limit. */
static int queue_req(UringContext *self, caio_req *req)
{
    struct io_uring_sqe *sqe = get_sqe(self);

    if (sqe == NULL) {
        PyErr_SetString(PyExc_OSError, "io_uring submission queue is stuck");
        return -1;
    }
    switch (req->opcode) {
    case CAIO_READ:
        uring_prep(sqe, IORING_OP_READ, req->fd, (uint64_t)(uintptr_t)req->data,
                   (uint32_t)req->nbytes, (uint64_t)req->offset, (uint64_t)(uintptr_t)req);
        self->unsubmitted_bytes += req->nbytes;
        break;
    case CAIO_WRITE:
        uring_prep(sqe, IORING_OP_WRITE, req->fd, (uint64_t)(uintptr_t)req->data,
                   (uint32_t)req->nbytes, (uint64_t)req->offset, (uint64_t)(uintptr_t)req);
        self->unsubmitted_bytes += req->nbytes;
        break;
    default:
        uring_prep(sqe, IORING_OP_FSYNC, req->fd, 0, 0, 0, (uint64_t)(uintptr_t)req);
        if (req->opcode == CAIO_FDSYNC)
            sqe->fsync_flags = IORING_FSYNC_DATASYNC;
        break;
    }
    sqe->ioprio = (uint16_t)req->priority;
    uring_publish(&self->ring);
    inflight_add(self, req);
    return 0;
}

/* Queue an ASYNC_CANCEL for req (or for everything with req == NULL). */
static int queue_cancel(UringContext *self, caio_req *req)
{
    struct io_uring_sqe *sqe = get_sqe(self);

    if (sqe == NULL)
        return -1;
    if (req != NULL) {
        uring_prep(sqe, IORING_OP_ASYNC_CANCEL, -1, (uint64_t)(uintptr_t)req, 0, 0,
                   UD_CANCEL);
        req->flags |= CAIO_REQ_CANCEL_ASKED;
    } else {
        uring_prep(sqe, IORING_OP_ASYNC_CANCEL, -1, 0, 0, 0, UD_CANCEL_ANY);
        sqe->cancel_flags = IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL;
    }
    uring_publish(&self->ring);
    self->cancels_pending++;
    return 0;
}

/* Move waiting requests into free slots. Returns how many moved. */
static int refill(UringContext *self)
{
    int moved = 0;

    while (self->wait_head != NULL && self->n_inflight < self->limit && !self->closed) {
        caio_req *req = fifo_pop(&self->wait_head, &self->wait_tail);
        if (queue_req(self, req) < 0) {
            /* Cannot happen with a sane ring; fail the request visibly. */
            PyErr_WriteUnraisable((PyObject *)self);
            req->result = -EIO;
            req->state = CAIO_REQ_DONE;
            if (req->flags & CAIO_REQ_OWNED) {
                fifo_push(&self->done_head, &self->done_tail, req);
            } else {
                if (caio_req_resolve_future(req) < 0)
                    PyErr_WriteUnraisable((PyObject *)self);
                caio_req_put(&self->pool, req);
            }
            continue;
        }
        moved++;
    }
    return moved;
}

/* ---- completion ---------------------------------------------------------- */

static void run_owned(UringContext *self, caio_req *req)
{
    PyObject *op = req->owner;

    caio_operation_run_callback(req);
    /* The reference submit() took. */
    Py_DECREF(op);
}

/* The kernel is done with req. */
static void complete(UringContext *self, caio_req *req, int res, int run_callbacks)
{
    unsigned slot = (unsigned)REQ_SLOT(req);

    /* A request close() gave up on (and leaked) may still complete while an
     * outer reap loop runs: it is no longer ours to touch. */
    if (slot >= self->n_inflight || self->inflight[slot] != req)
        return;
    inflight_remove(self, req);
    req->result = res;
    req->state = CAIO_REQ_DONE;
    if (req->flags & CAIO_REQ_OWNED) {
        if (run_callbacks)
            run_owned(self, req);
        else
            fifo_push(&self->done_head, &self->done_tail, req);
    } else if (REQ_BFLAGS(req) & BF_HELD) {
        /* The submitting call picks the result up. */
    } else {
        if (caio_req_resolve_future(req) < 0)
            PyErr_WriteUnraisable(req->future);
        caio_req_put(&self->pool, req);
    }
}

/* Take every CQE there is. Returns how many requests completed. With
 * run_callbacks == 0, Operation callbacks are kept for process_events()
 * (the caller must not run arbitrary code); futures are resolved either
 * way (set_result only schedules their callbacks). */
static Py_ssize_t reap(UringContext *self, int run_callbacks)
{
    struct uring_cq *cq = &self->ring.cq;
    Py_ssize_t count = 0;
    int flushed = 0;

    for (;;) {
        unsigned head = *cq->khead;
        struct io_uring_cqe *cqe;
        uint64_t ud;
        int res;

        if (head == smp_load_acquire(cq->ktail)) {
            if (!flushed && (read_once(self->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW)) {
                flushed = 1;
                uring_flush_cq(&self->ring);
                continue;
            }
            break;
        }
        cqe = &cq->cqes[head & cq->mask];
        ud = cqe->user_data;
        res = cqe->res;
        /* Hand the slot back before any Python code runs (re-entrancy). */
        smp_store_release(cq->khead, head + 1);

        if (ud == UD_CANCEL || ud == UD_CANCEL_ANY) {
            self->cancels_pending--;
            if (ud == UD_CANCEL_ANY && res == -EINVAL)
                self->cancel_any_failed = 1;    /* before 5.19 */
            else if (ud == UD_CANCEL && res == 0)
                self->cancels_ok++;
            continue;
        }
        complete(self, (caio_req *)(uintptr_t)ud, res, run_callbacks);
        count++;
    }
    return count;
}

static Py_ssize_t run_done(UringContext *self)
{
    Py_ssize_t n = 0;
    caio_req *req;

    while ((req = fifo_pop(&self->done_head, &self->done_tail)) != NULL) {
        run_owned(self, req);
        n++;
    }
    return n;
}

/* Reap, refill free slots from the waiting FIFO, submit, until nothing
 * moves. Returns completions, or -1 with an exception (ring failure). */
static Py_ssize_t pump(UringContext *self)
{
    Py_ssize_t total = 0, n;
    int moved;

    for (;;) {
        n = reap(self, 1);
        total += n;
        if (self->closed)
            break;
        moved = refill(self);
        if (flush(self) < 0)
            return -1;
        if (n == 0 && moved == 0)
            break;
    }
    return total;
}

/* ---- submit now or batch ------------------------------------------------- */

static void note_inline(UringContext *self, int done)
{
    self->avg += ((done ? AVG_ONE : 0) - self->avg) / 8;
    if (!self->batching) {
        if (self->avg < AVG_BATCH_BELOW && self->call_soon != NULL)
            self->batching = 1;
    } else if (self->avg > AVG_IMMEDIATE_ABOVE) {
        self->batching = 0;
    }
}

static int schedule_flush(UringContext *self)
{
    PyObject *r, *cb;

    if (self->flush_scheduled)
        return 0;
    /* A fresh bound method each time (once per loop iteration at most):
     * caching it would make the context a reference cycle. */
    if ((cb = PyObject_GetAttrString((PyObject *)self, "_flush")) == NULL)
        return -1;
    r = PyObject_CallOneArg(self->call_soon, cb);
    Py_DECREF(cb);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    self->flush_scheduled = 1;
    return 0;
}

/* No eventfd signal for inline completions.
 *
 * The kernel signals the eventfd for every CQE, including the ones of
 * requests that completed inside our own io_uring_enter and that we reap
 * right away: that would wake the loop for nothing (epoll_wait returns, an
 * eventfd read, an empty reap) and costs the kernel an eventfd wake-up per
 * operation. So when nothing else is in flight, submit with
 * IORING_CQ_EVENTFD_DISABLED set, and clear it afterwards.
 *
 * Why no completion can be lost: with nothing else in flight, the only
 * CQEs that can be posted while the flag is set are those of the request
 * just submitted. If it completed inline we reaped it. If not (it went to
 * poll or an io-wq worker), its CQE may have been posted, without a
 * signal, around the moment we cleared the flag; so in that case we signal
 * the eventfd ourselves, and the loop's process_events() reaps it. That
 * case needs a future and a wake-up anyway. */
static void eventfd_quiet(UringContext *self)
{
    unsigned *flags = self->ring.cq.kflags;
    __atomic_store_n(flags, read_once(flags) | IORING_CQ_EVENTFD_DISABLED, __ATOMIC_RELAXED);
}

static void eventfd_loud(UringContext *self)
{
    unsigned *flags = self->ring.cq.kflags;

    /* Release: our reap's reads of the CQ happen before the kernel may
     * signal again (and the eventfd write below is a full barrier). */
    __atomic_store_n(flags, read_once(flags) & ~IORING_CQ_EVENTFD_DISABLED,
                     __ATOMIC_RELEASE);
    if (self->n_inflight > 0 || self->cancels_pending > 0)
        signal_self(self);
}

/* The value of a request the submitting call got back; puts it back. */
static PyObject *take_value(UringContext *self, caio_req *req)
{
    PyObject *value = req->result < 0 ? caio_oserror((int)-req->result)
                                      : caio_req_value(req);
    caio_req_put(&self->pool, req);
    return value;
}

static PyObject *submit_async(UringContext *self, int opcode, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *result = NULL, *fut;
    caio_req *req;
    int now, quiet;

    if (ctx_enter(self) < 0)
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
        fifo_push(&self->wait_head, &self->wait_tail, req);
        result = Py_NewRef(fut);
        goto out;
    }

    quiet = self->n_inflight == 0 && self->cancels_pending == 0 && !self->sqpoll &&
            self->ring.cq.kflags != NULL;
    if (queue_req(self, req) < 0) {
        caio_req_put(&self->pool, req);
        goto out;
    }
    REQ_BFLAGS(req) = BF_HELD;
    now = !self->batching || ++self->probe % PROBE_EVERY == 0;
    if (now || self->sqpoll) {
        if (quiet)
            eventfd_quiet(self);
        if (flush(self) < 0) {
            /* The ring failed; the SQE stays in it and the request is
             * reclaimed if it ever completes. */
            if (quiet)
                eventfd_loud(self);
            REQ_BFLAGS(req) = 0;
            goto out;
        }
        if (!self->sqpoll) {
            reap(self, 0);
            if (quiet)
                eventfd_loud(self);
            if (opcode == CAIO_READ || opcode == CAIO_WRITE)
                note_inline(self, req->state == CAIO_REQ_DONE);
            if (req->state == CAIO_REQ_DONE) {
                result = take_value(self, req);
                goto out;
            }
        }
    } else if (schedule_flush(self) < 0) {
        /* No flush coming: submit now rather than strand the request. */
        PyErr_WriteUnraisable((PyObject *)self);
        self->batching = 0;
        if (flush(self) < 0) {
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
        result = take_value(self, req);
        goto out;
    }
    if (fut == NULL)
        goto out;   /* req stays in flight; reclaimed at its completion */
    req->future = fut;
    result = Py_NewRef(fut);
out:
    ctx_leave(self);
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
    n = pump(self);
    ctx_leave(self);
    if (n < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ---- low-level API ------------------------------------------------------ */

static PyObject *ctx_submit(UringContext *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t i, queued = 0;
    PyObject *result = NULL;

    if (ctx_enter(self) < 0)
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
            if (queue_req(self, req) < 0) {
                Py_DECREF(args[i]);
                goto out;
            }
        } else {
            req->state = CAIO_REQ_WAITING;
            fifo_push(&self->wait_head, &self->wait_tail, req);
        }
        queued++;
    }
    if (flush(self) < 0)
        goto out;
    /* Completions now (inline ones) get their callbacks in process_events:
     * a callback must not run before submit() has returned. */
    reap(self, 0);
    result = PyLong_FromSsize_t(queued);
out:
    if (result == NULL && queued > 0) {
        /* Those queued before the error are submitted all the same. */
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *exc = PyErr_GetRaisedException();
        if (flush(self) < 0)
            PyErr_WriteUnraisable((PyObject *)self);
        PyErr_SetRaisedException(exc);
#else
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        if (flush(self) < 0)
            PyErr_WriteUnraisable((PyObject *)self);
        PyErr_Restore(t, v, tb);
#endif
    }
    ctx_leave(self);
    return result;
}

/* Wait (GIL released) until no cancel request is outstanding, reaping. */
static void wait_cancels(UringContext *self, int timeout_ms, int run_callbacks)
{
    struct timespec deadline;
    int ms;

    deadline_in(&deadline, timeout_ms);
    for (;;) {
        reap(self, run_callbacks);
        if (self->cancels_pending == 0 || (ms = time_left_ms(&deadline)) == 0)
            break;
        self->nogil = 1;
        Py_BEGIN_ALLOW_THREADS
        uring_wait(&self->ring, ms);
        Py_END_ALLOW_THREADS
        self->nogil = 0;
    }
}

static PyObject *ctx_cancel(UringContext *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t i, count = 0;
    unsigned long ok_before;
    PyObject *result = NULL;

    if (ctx_enter(self) < 0)
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
            fifo_remove(&self->wait_head, &self->wait_tail, req)) {
            /* Never reached the kernel. */
            req->result = -ECANCELED;
            req->state = CAIO_REQ_DONE;
            fifo_push(&self->done_head, &self->done_tail, req);
            signal_self(self);
            count++;
        } else if (req->state == CAIO_REQ_INFLIGHT &&
                   !(req->flags & CAIO_REQ_CANCEL_ASKED)) {
            if (queue_cancel(self, req) < 0) {
                PyErr_SetString(PyExc_OSError, "io_uring submission queue is stuck");
                goto out;
            }
        }
    }
    if (flush(self) < 0)
        goto out;
    /* ASYNC_CANCEL almost always completes inside io_uring_enter. */
    wait_cancels(self, CANCEL_TIMEOUT_MS, 0);
    result = PyLong_FromSsize_t(count + (Py_ssize_t)(self->cancels_ok - ok_before));
out:
    ctx_leave(self);
    return result;
}

static PyObject *ctx_cancel_future(UringContext *self, PyObject *fut)
{
    PyObject *result = NULL;

    if (ctx_enter(self) < 0)
        return NULL;
    for (unsigned i = 0; i < self->n_inflight; i++) {
        caio_req *req = self->inflight[i];
        if (req->future != fut)
            continue;
        if (!(req->flags & CAIO_REQ_CANCEL_ASKED)) {
            if (queue_cancel(self, req) < 0 || flush(self) < 0) {
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
        fifo_remove(&self->wait_head, &self->wait_tail, req);
        if (req->flags & CAIO_REQ_OWNED) {  /* cannot be: owned ones have no future */
            req->result = -ECANCELED;
            req->state = CAIO_REQ_DONE;
            fifo_push(&self->done_head, &self->done_tail, req);
        } else {
            caio_req_put(&self->pool, req);
        }
        result = Py_NewRef(Py_True);
        goto out;
    }
    result = Py_NewRef(Py_False);
out:
    ctx_leave(self);
    return result;
}

static PyObject *ctx_process_events(UringContext *self, PyObject *unused)
{
    uint64_t count;
    Py_ssize_t n;

    if (ctx_enter(self) < 0)
        return NULL;
    /* One read empties the eventfd counter however many CQEs it counted;
     * it is non-blocking, so a spurious wake-up costs EAGAIN. Reading first
     * also means a CQE posted after this read signals again. */
    if (read(self->efd, &count, sizeof(count)) < 0 && errno != EAGAIN &&
        errno != EINTR) {
        PyErr_SetFromErrno(PyExc_OSError);
        ctx_leave(self);
        return NULL;
    }
    n = run_done(self);
    if (n >= 0) {
        Py_ssize_t m = pump(self);
        n = m < 0 ? -1 : n + m;
    }
    ctx_leave(self);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *ctx_set_future_factory(UringContext *self, PyObject *const *args,
                                        Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"factory", "call_soon"};
    PyObject *ob[2], *factory, *call_soon;

    if (caio_parse_args("set_future_factory", names, 2, 1, args, nargs, kwnames, ob) < 0)
        return NULL;
    if (ctx_enter(self) < 0)
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
    ctx_leave(self);
    Py_RETURN_NONE;
error:
    ctx_leave(self);
    return NULL;
}

/* ---- closing ------------------------------------------------------------- */

/* Fail a request that will never run (it waited, or the kernel kept it). */
static void fail_request(UringContext *self, caio_req *req, int keep_buffer)
{
    req->result = -ECANCELED;
    req->state = CAIO_REQ_DONE;
    if (req->flags & CAIO_REQ_OWNED) {
        if (keep_buffer) {
            /* Leak the Operation: its buffer may still be written. */
            caio_operation_run_callback(req);
        } else {
            run_owned(self, req);
        }
        return;
    }
    if (caio_req_resolve_future(req) < 0)
        PyErr_WriteUnraisable((PyObject *)self);
    if (keep_buffer)
        Py_CLEAR(req->future);
    else
        caio_req_put(&self->pool, req);
}

/* close() proper: every request finishes or is failed; nothing is freed. */
static void shutdown_ctx(UringContext *self)
{
    struct timespec deadline;
    caio_req *req;
    int per_request = 0, ms;

    while ((req = fifo_pop(&self->wait_head, &self->wait_tail)) != NULL)
        fail_request(self, req, 0);
    if (flush(self) < 0)
        PyErr_WriteUnraisable((PyObject *)self);
    reap(self, 1);

    if (self->n_inflight > 0) {
        /* One request cancels everything (5.19+); older kernels answer
         * EINVAL and get one cancel per request. */
        if (queue_cancel(self, NULL) < 0 || flush(self) < 0) {
            PyErr_Clear();
            self->cancel_any_failed = 1;
        }
    }
    deadline_in(&deadline, CLOSE_TIMEOUT_MS);
    for (;;) {
        reap(self, 1);
        if (self->n_inflight == 0 && self->cancels_pending == 0)
            break;
        if (self->cancel_any_failed && !per_request) {
            per_request = 1;
            for (unsigned i = 0; i < self->n_inflight; i++) {
                caio_req *r = self->inflight[i];
                if (!(r->flags & CAIO_REQ_CANCEL_ASKED) && queue_cancel(self, r) < 0)
                    break;
            }
            if (flush(self) < 0)
                PyErr_Clear();
            continue;
        }
        if ((ms = time_left_ms(&deadline)) == 0)
            break;
        self->nogil = 1;
        Py_BEGIN_ALLOW_THREADS
        uring_wait(&self->ring, ms);
        Py_END_ALLOW_THREADS
        self->nogil = 0;
    }
    /* Whatever the kernel still holds keeps its memory for good. */
    while (self->n_inflight > 0) {
        req = self->inflight[self->n_inflight - 1];
        inflight_remove(self, req);
        self->leak = 1;
        if (REQ_BFLAGS(req) & BF_HELD) {
            REQ_BFLAGS(req) |= BF_LEAKED;
            continue;
        }
        fail_request(self, req, 1);
    }
    run_done(self);
}

/* After fork: the ring and its requests are the parent's. Drop our view
 * and our Python references without asking the kernel anything. */
static void forget_requests(UringContext *self)
{
    caio_req *req;

    while ((req = fifo_pop(&self->wait_head, &self->wait_tail)) != NULL) {
        if (req->flags & CAIO_REQ_OWNED)
            Py_DECREF(req->owner);
        else
            caio_req_put(&self->pool, req);
    }
    while ((req = fifo_pop(&self->done_head, &self->done_tail)) != NULL)
        Py_DECREF(req->owner);
    while (self->n_inflight > 0) {
        req = self->inflight[self->n_inflight - 1];
        inflight_remove(self, req);
        if (req->flags & CAIO_REQ_OWNED)
            Py_DECREF(req->owner);
        else if (!(REQ_BFLAGS(req) & BF_HELD))
            caio_req_put(&self->pool, req);
    }
}

static void release_memory(UringContext *self)
{
    self->released = 1;
    uring_exit(&self->ring);
    if (self->efd >= 0) {
        close(self->efd);
        self->efd = -1;
    }
    PyMem_Free(self->inflight);
    self->inflight = NULL;
    caio_req_pool_free(&self->pool, self->leak);
}

static void close_ctx(UringContext *self)
{
    if (self->closed)
        return;
    self->closed = 1;
    if (self->released)
        return;
    self->busy++;
    if (self->fork_gen != caio_fork_generation())
        forget_requests(self);
    else
        shutdown_ctx(self);
    ctx_leave(self);
}

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
    close_ctx(self);
    Py_RETURN_NONE;
}

/* ---- type ----------------------------------------------------------------- */

static PyObject *ctx_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"max_requests", "sqpoll", NULL};
    Py_ssize_t max_requests = 512;
    int sqpoll = 0, err;
    UringContext *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|n$p:Context", kwlist,
                                     &max_requests, &sqpoll))
        return NULL;
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
        release_memory(self);
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
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc;
#else
    PyObject *t, *v, *tb;
#endif
    if (self->closed)
        return;
#if PY_VERSION_HEX >= 0x030C0000
    exc = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&t, &v, &tb);
#endif
    close_ctx(self);
    if (PyErr_Occurred())
        PyErr_WriteUnraisable((PyObject *)self);
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(t, v, tb);
#endif
}

static void ctx_dealloc(UringContext *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return;     /* resurrected by a callback that ran while closing */
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    if (!self->released)
        release_memory(self);
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
    .tp_doc = "Context(max_requests=512, *, sqpoll=False)\n\n"
              "An io_uring ring. sqpoll=True asks for a kernel submission "
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
