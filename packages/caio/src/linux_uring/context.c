/* caio.linux_uring: the engine that the Python methods (module.c) drive.
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
 * through the eventfd. Reads up to CAIO_NOWAIT_MAX try preadv2(RWF_NOWAIT)
 * even before the ring, which is cheaper still for a page-cache hit (see
 * common/nowait.c); the ring's inline path then serves writes, larger
 * reads, and contexts made with nowait_reads=False.
 *
 * Submit now or batch. Entering the kernel once per operation is best when
 * operations finish inline (the value comes back in the same call). When
 * most do not, one io_uring_enter per loop iteration for all of them is
 * cheaper: the context keeps a moving average of the inline rate, switches
 * to batching when it drops below 1/4 (flushing via the loop's call_soon),
 * and back above 1/2, probing every CAIO_PROBE_EVERY-th operation at once while
 * batching so it notices when the cache warms up.
 *
 * Cancellation and memory. A cancelled future does not make the kernel
 * stop writing into the request's buffer. cancel_future() submits
 * IORING_OP_ASYNC_CANCEL, but the request keeps its buffer (and slot) until
 * its own CQE arrives, whatever the cancel's outcome (0, -EALREADY for a
 * read an io-wq worker is already doing, -ENOENT if it just finished).
 *
 * Requests belong to the thread that entered them. io_uring ties a request
 * to the task whose io_uring_enter took its SQE (its io-wq workers, its
 * task work); when that thread exits first, the kernel drops the request
 * with -ECANCELED before doing it (a poll that fires later, io-wq work not
 * started yet). A context shared by threads enters requests from whichever
 * thread drives it: process_events() moves other threads' waiting
 * requests into the ring, a flush takes what another thread published. So
 * a -ECANCELED that no cancel of ours asked for (CAIO_REQ_CANCEL_ASKED,
 * close) means "not done, its thread went away": complete() puts the
 * request back at the head of the waiting FIFO, to be entered again by a
 * live thread, at most MAX_REQUEUES times (a file system that really
 * answers ECANCELED then gets its answer through).
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
#include "context.h"
#include "notify.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- entering, leaving, waking the loop ---------------------------------- */

/* Make the eventfd readable, so that the loop calls process_events():
 * for work that no CQE will announce (callbacks of operations cancelled
 * before they reached the kernel). */
void uctx_signal(UringContext *self)
{
    caio_eventfd_signal(self->efd);
}

int context_enter(UringContext *self)
{
    if (caio_context_check((caio_context *)self, QUALNAME) < 0)
        return -1;
    if (self->nogil) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this context is in use by another thread; "
                        "use one context per thread (event loop)");
        return -1;
    }
    self->busy++;
    return 0;
}

void context_leave(UringContext *self)
{
    if (--self->busy == 0 && self->closed && !self->released)
        uctx_release(self);
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

/* Ring, eventfd, in-flight table and request pool for a new context
 * (max_requests set). 0, or -1 with an exception: then uctx_release()
 * frees what was made, if self->released is 0. */
int uctx_open(UringContext *self, int sqpoll)
{
    int err;

    err = uring_init(&self->ring, self->max_requests, sqpoll);
    if (err < 0) {
        caio_oserror(-err);
        return -1;
    }
    self->released = 0;
    /* Once per context: the filesystem operations this kernel does. The
     * rest go to a thread (the adapter's executor): fs_async refuses them. */
    self->fs_kernel = uctx_fs_kernel_ops(&self->ring.features);
    self->fs_kernel_only = 1;
    self->sqpoll = uring_is_sqpoll(&self->ring);
    self->limit = self->max_requests < self->ring.sq.entries ? self->max_requests
                                                             : self->ring.sq.entries;
    if (self->ring.cq.entries / 2 < self->limit)
        self->limit = self->ring.cq.entries / 2;
    if ((self->efd = caio_eventfd_open()) < 0) {
        caio_oserror(-self->efd);
        self->efd = -1;
        return -1;
    }
    if ((err = uring_register_eventfd(&self->ring, self->efd)) < 0) {
        caio_oserror(-err);
        return -1;
    }
    self->inflight = PyMem_Calloc(self->limit, sizeof(caio_req *));
    if (self->inflight == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (caio_req_pool_init(&self->pool, self->limit) < 0)
        return -1;
    return 0;
}

void uctx_wait_nogil(UringContext *self, long long ns)
{
    self->nogil = 1;
    Py_BEGIN_ALLOW_THREADS
    uring_wait(&self->ring, ns);
    Py_END_ALLOW_THREADS
    self->nogil = 0;
}

/* ---- submission ---------------------------------------------------------- */

/* Hand every published SQE to the kernel. Returns 0, or -1 with OSError
 * set when the ring itself failed. EAGAIN/EBUSY (the kernel is short of
 * memory, or holds back CQEs) leave the SQEs in the ring for the next
 * flush: process_events() retries. */
int uctx_flush(UringContext *self)
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
        uctx_signal(self);
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
int uctx_queue_req(UringContext *self, caio_req *req)
{
    struct io_uring_sqe *sqe = get_sqe(self);

    if (sqe == NULL) {
        PyErr_SetString(PyExc_OSError, "io_uring submission queue is stuck");
        return -1;
    }
    switch (req->opcode) {
    case CAIO_READ:
    case CAIO_READINTO:     /* req->data is the caller's buffer: no copy */
        uring_prep(sqe, IORING_OP_READ, req->fd, (uint64_t)(uintptr_t)req->data,
                   (uint32_t)req->nbytes, (uint64_t)req->offset, (uint64_t)(uintptr_t)req);
        self->unsubmitted_bytes += req->nbytes;
        break;
    case CAIO_WRITE:
        uring_prep(sqe, IORING_OP_WRITE, req->fd, (uint64_t)(uintptr_t)req->data,
                   (uint32_t)req->nbytes, (uint64_t)req->offset, (uint64_t)(uintptr_t)req);
        self->unsubmitted_bytes += req->nbytes;
        break;
    case CAIO_READV:
    case CAIO_WRITEV:
        /* The iovecs live in req->vec until the CQE: the kernel may read
         * them when the request goes async (before 5.5: at issue time). */
        uring_prep(sqe, req->opcode == CAIO_READV ? IORING_OP_READV : IORING_OP_WRITEV,
                   req->fd, (uint64_t)(uintptr_t)req->vec->iov, (uint32_t)req->vec->count,
                   (uint64_t)req->offset, (uint64_t)(uintptr_t)req);
        self->unsubmitted_bytes += req->nbytes;
        break;
    default:
        if (req->opcode == CAIO_FS) {   /* not a case: reads keep their switch */
            uctx_prep_fs(sqe, req);
            break;
        }
        uring_prep(sqe, IORING_OP_FSYNC, req->fd, 0, 0, 0, (uint64_t)(uintptr_t)req);
        if (req->opcode == CAIO_FDSYNC)
            sqe->fsync_flags = IORING_FSYNC_DATASYNC;
        break;
    }
    /* An I/O priority class in bits 13-15 (IOPRIO_PRIO_VALUE) goes to the
     * kernel; a bare small number, as caio 0.12 callers pass and kernel AIO
     * ignores, would be class 0 with a level, which io_uring refuses with
     * EINVAL: ignore it. */
    sqe->ioprio = (req->priority >> 13) ? (uint16_t)req->priority : 0;
    uring_publish(&self->ring);
    inflight_add(self, req);
    return 0;
}

/* Queue an ASYNC_CANCEL for req (or for everything with req == NULL). */
int uctx_queue_cancel(UringContext *self, caio_req *req)
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
        caio_req *req = caio_fifo_pop(&self->wait_head, &self->wait_tail);
        if (uctx_queue_req(self, req) < 0) {
            /* Cannot happen with a sane ring; fail the request visibly. */
            PyErr_WriteUnraisable((PyObject *)self);
            req->result = -EIO;
            req->state = CAIO_REQ_DONE;
            if (req->flags & CAIO_REQ_OWNED) {
                caio_fifo_push(&self->done_head, &self->done_tail, req);
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

    caio_operation_finish(req);
    /* The reference submit() took. */
    Py_DECREF(op);
}

/* The kernel dropped req because the thread that entered it exited (see
 * the top comment): queue it again, first in line. 1 if it was. */
static int requeue_dropped(UringContext *self, caio_req *req)
{
    if ((req->flags & CAIO_REQ_CANCEL_ASKED) || self->closed ||
        BF_REQUEUED(req) >= MAX_REQUEUES)
        return 0;
    REQ_BFLAGS(req) += 1u << BF_REQUEUE_SHIFT;
    req->state = CAIO_REQ_WAITING;
    caio_fifo_push_front(&self->wait_head, &self->wait_tail, req);
    /* process_events() refills the ring from the FIFO. */
    uctx_signal(self);
    return 1;
}

/* The kernel is done with req. Returns 1, or 0 when req is not done
 * after all (queued again, or no longer ours). */
static int complete(UringContext *self, caio_req *req, int res, int run_callbacks)
{
    unsigned slot = (unsigned)REQ_SLOT(req);

    /* A request close() gave up on (and leaked) may still complete while an
     * outer reap loop runs: it is no longer ours to touch. */
    if (slot >= self->n_inflight || self->inflight[slot] != req)
        return 0;
    inflight_remove(self, req);
    if (res == -ECANCELED && requeue_dropped(self, req))
        return 0;
    req->result = res;
    req->state = CAIO_REQ_DONE;
    if (req->flags & CAIO_REQ_OWNED) {
        if (run_callbacks)
            run_owned(self, req);
        else
            caio_fifo_push(&self->done_head, &self->done_tail, req);
    } else if (REQ_BFLAGS(req) & BF_HELD) {
        /* The submitting call picks the result up. */
    } else {
        if (caio_req_resolve_future(req) < 0)
            PyErr_WriteUnraisable(req->future);
        caio_req_put(&self->pool, req);
    }
    return 1;
}

/* Take every CQE there is. Returns how many requests completed. With
 * run_callbacks == 0, Operation callbacks are kept for process_events()
 * (the caller must not run arbitrary code); futures are resolved either
 * way (set_result only schedules their callbacks). */
Py_ssize_t uctx_reap(UringContext *self, int run_callbacks)
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

        if (ud & 3) {   /* not a request: those are aligned */
            if (ud == UD_CANCEL || ud == UD_CANCEL_ANY) {
                self->cancels_pending--;
                if (ud == UD_CANCEL_ANY && res == -EINVAL)
                    self->cancel_any_failed = 1;    /* before 5.19 */
                else if (ud == UD_CANCEL && res == 0)
                    self->cancels_ok++;
                continue;
            }
            /* A request close() turned into a NOP: it never ran. */
            ud &= ~UD_DROPPED;
            res = -ECANCELED;
        }
        count += complete(self, (caio_req *)(uintptr_t)ud, res, run_callbacks);
    }
    return count;
}

Py_ssize_t uctx_run_done(UringContext *self)
{
    Py_ssize_t n = 0;
    caio_req *req;

    while ((req = caio_fifo_pop(&self->done_head, &self->done_tail)) != NULL) {
        run_owned(self, req);
        n++;
    }
    return n;
}

/* While batching, what a burst of completions woke up (the tasks of the
 * futures just resolved, Operation callbacks' follow-ups) runs in the next
 * loop iteration, and each usually submits its next request there. A flush
 * scheduled now is queued behind those wake-ups, so it submits them in that
 * same iteration; the flush the first of them would schedule runs one
 * iteration later, with every slot of the burst idle meanwhile. Not for a
 * single completion that left nothing in flight (one request at a time):
 * its successor goes in alone, at once (submit_async), without a callback. */
static void flush_after_wakeups(UringContext *self, Py_ssize_t completed)
{
    if (!self->batch.batching || self->batch.flush_scheduled || completed == 0 ||
        (completed == 1 && self->n_inflight == 0 && self->wait_head == NULL))
        return;
    /* Cannot schedule (the loop is closing): the submissions schedule
     * their own flush, or go in at once when that fails too. */
    if (uctx_schedule_flush(self) < 0)
        PyErr_Clear();
}

/* Reap, refill free slots from the waiting FIFO, submit, until nothing
 * moves. Returns completions, or -1 with an exception (ring failure). */
Py_ssize_t uctx_pump(UringContext *self)
{
    Py_ssize_t total = 0, n;
    int moved;

    for (;;) {
        n = uctx_reap(self, 1);
        total += n;
        if (self->closed)
            return total;
        moved = refill(self);
        if (uctx_flush(self) < 0)
            return -1;
        if (n == 0 && moved == 0)
            break;
    }
    flush_after_wakeups(self, total);
    return total;
}

/* The value of a request the submitting call got back; puts it back. */
PyObject *uctx_take_value(UringContext *self, caio_req *req)
{
    PyObject *value = req->result < 0 ? caio_oserror((int)-req->result)
                                      : caio_req_value(req);
    if (value != NULL && req->opcode == CAIO_READ)
        caio_spare_keep(&self->spare, value);
    caio_req_put(&self->pool, req);
    return value;
}

/* Wait (GIL released) until no cancel request is outstanding, reaping. */
void uctx_wait_cancels(UringContext *self, int timeout_ms, int run_callbacks)
{
    struct timespec deadline;
    int ms;

    deadline_in(&deadline, timeout_ms);
    for (;;) {
        uctx_reap(self, run_callbacks);
        if (self->cancels_pending == 0 || (ms = time_left_ms(&deadline)) == 0)
            break;
        uctx_wait_nogil(self, ms * 1000000LL);
    }
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

/* SQEs published but not entered yet (a batch whose flush never ran: the
 * loop stopped first) become NOPs, their requests fail with ECANCELED: the
 * descriptor numbers in them may name other files by now (see "An
 * operation is bound to its file" in docs/internals.md). Without SQPOLL
 * the kernel reads SQEs only inside io_uring_enter, which nobody is in. */
static void drop_unsubmitted(UringContext *self)
{
    struct uring_sq *sq = &self->ring.sq;

    if (self->sqpoll)
        return;
    for (unsigned head = smp_load_acquire(sq->khead); head != sq->tail; head++) {
        struct io_uring_sqe *sqe = &sq->sqes[head & sq->mask];
        uint64_t ud = sqe->user_data;

        if (ud & 3)
            continue;   /* a cancel request: it may run */
        memset(sqe, 0, sizeof(*sqe));
        sqe->opcode = IORING_OP_NOP;
        sqe->user_data = ud | UD_DROPPED;
    }
}

/* close() proper: every request finishes or is failed; nothing is freed. */
static void shutdown_ctx(UringContext *self)
{
    struct timespec deadline;
    caio_req *req;
    int per_request = 0, ms;

    while ((req = caio_fifo_pop(&self->wait_head, &self->wait_tail)) != NULL) {
        if (REQ_BFLAGS(req) & BF_HELD) {
            /* Queued again during its own *_async call (the kernel dropped
             * it), which is still running: that call takes the result. */
            req->result = -ECANCELED;
            req->state = CAIO_REQ_DONE;
            continue;
        }
        fail_request(self, req, 0);
    }
    drop_unsubmitted(self);
    if (uctx_flush(self) < 0)
        PyErr_WriteUnraisable((PyObject *)self);
    uctx_reap(self, 1);

    if (self->n_inflight > 0) {
        /* One request cancels everything (5.19+); older kernels answer
         * EINVAL and get one cancel per request. */
        if (!caio_has(&self->ring.features, CAIO_F_URING_CANCEL_ANY)) {
            self->cancel_any_failed = 1;
        } else if (uctx_queue_cancel(self, NULL) < 0 || uctx_flush(self) < 0) {
            PyErr_Clear();
            self->cancel_any_failed = 1;
        }
    }
    deadline_in(&deadline, CLOSE_TIMEOUT_MS);
    for (;;) {
        uctx_reap(self, 1);
        if (self->n_inflight == 0 && self->cancels_pending == 0)
            break;
        if (self->cancel_any_failed && !per_request) {
            per_request = 1;
            for (unsigned i = 0; i < self->n_inflight; i++) {
                caio_req *r = self->inflight[i];
                if (!(r->flags & CAIO_REQ_CANCEL_ASKED) && uctx_queue_cancel(self, r) < 0)
                    break;
            }
            if (uctx_flush(self) < 0)
                PyErr_Clear();
            continue;
        }
        if ((ms = time_left_ms(&deadline)) == 0)
            break;
        uctx_wait_nogil(self, ms * 1000000LL);
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
    uctx_run_done(self);
}

/* After fork: the ring and its requests are the parent's. Drop our view
 * and our Python references without asking the kernel anything. */
static void forget_requests(UringContext *self)
{
    caio_req *req;

    while ((req = caio_fifo_pop(&self->wait_head, &self->wait_tail)) != NULL) {
        if (req->flags & CAIO_REQ_OWNED)
            Py_DECREF(req->owner);
        else if (!(REQ_BFLAGS(req) & BF_HELD))
            caio_req_put(&self->pool, req);
    }
    while ((req = caio_fifo_pop(&self->done_head, &self->done_tail)) != NULL)
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

void uctx_release(UringContext *self)
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

void uctx_close(UringContext *self)
{
    if (self->closed)
        return;
    self->closed = 1;
    caio_spare_clear(&self->spare);
    if (self->released)
        return;
    self->busy++;
    if (self->fork_gen != caio_fork_generation())
        forget_requests(self);
    else
        shutdown_ctx(self);
    context_leave(self);
}
