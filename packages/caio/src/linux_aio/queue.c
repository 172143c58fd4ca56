/* Requests to iocbs, io_submit, reaping completions, retries.
 *
 * Everything here runs with the context lock held (context.h); the GIL is
 * released around each io_submit and each blocking io_getevents. */
#include "context.h"
#include "notify.h"
#include <errno.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define AIO_BATCH 64   /* iocbs per io_submit, events per io_getevents */

void aio_wake(AioContext *ctx)
{
    caio_eventfd_signal(ctx->efd);
}

/* ---- iocbs ---------------------------------------------------------------- */

int aio_req_prep(AioContext *ctx, caio_req *req)
{
    struct iocb *cb = aio_req_iocb(req);
    int type;

    memset(cb, 0, sizeof(*cb));
    cb->aio_data = (uint64_t)(uintptr_t)req;
    cb->aio_fildes = (uint32_t)req->fd;
    /* Without IOCB_FLAG_IOPRIO the kernel ignores the field, as caio 0.12
     * callers expect (any priority value works). */
    cb->aio_reqprio = (int16_t)(uint16_t)req->priority;
    cb->aio_flags = IOCB_FLAG_RESFD;
    cb->aio_resfd = (uint32_t)ctx->efd;

    switch (req->opcode) {
    case CAIO_READ:
    case CAIO_READINTO:     /* req->data is the caller's buffer: no copy */
        cb->aio_lio_opcode = IOCB_CMD_PREAD;
        cb->aio_rw_flags = RWF_NOWAIT;   /* see aio.h */
        break;
    case CAIO_READV:
        cb->aio_lio_opcode = IOCB_CMD_PREADV;
        cb->aio_rw_flags = RWF_NOWAIT;
        break;
    case CAIO_WRITE:
    case CAIO_WRITEV:
        cb->aio_lio_opcode = req->opcode == CAIO_WRITE ? IOCB_CMD_PWRITE : IOCB_CMD_PWRITEV;
        if ((type = caio_file_type(req->fd, NULL)) < 0)
            return type;
        if (!S_ISREG(type) && !S_ISBLK(type))
            cb->aio_rw_flags = RWF_NOWAIT;
        break;
    case CAIO_FSYNC:
        cb->aio_lio_opcode = IOCB_CMD_FSYNC;   /* kernel >= 4.18 */
        break;
    default:
        cb->aio_lio_opcode = IOCB_CMD_FDSYNC;
        break;
    }
    if (caio_opcode_vectored(req->opcode)) {
        /* The iovecs stay in req->vec until the completion. */
        cb->aio_buf = (uint64_t)(uintptr_t)req->vec->iov;
        cb->aio_nbytes = (uint64_t)req->vec->count;
        cb->aio_offset = req->offset;
    } else if (req->opcode != CAIO_FSYNC && req->opcode != CAIO_FDSYNC) {
        cb->aio_buf = (uint64_t)(uintptr_t)req->data;
        cb->aio_nbytes = req->nbytes;
        cb->aio_offset = req->offset;
    }
    /* Until the request is done, result counts the bytes earlier rounds
     * transferred (a read resubmitted after a short RWF_NOWAIT answer). */
    req->result = 0;
    req->flags &= (uint8_t)~AIO_REQ_PRIVATE;
    return 0;
}

/* Resubmit the rest of the request, this time allowed to block. */
static void req_prep_retry(caio_req *req)
{
    struct iocb *cb = aio_req_iocb(req);
    size_t done = (size_t)req->result;

    cb->aio_rw_flags &= ~(__kernel_rwf_t)RWF_NOWAIT;
    if (caio_opcode_vectored(req->opcode)) {
        cb->aio_nbytes = (uint64_t)caio_vec_skip(req->vec, done);
    } else {
        cb->aio_buf = (uint64_t)(uintptr_t)(req->data + done);
        cb->aio_nbytes = req->nbytes - done;
    }
    cb->aio_offset = req->offset + (int64_t)done;
}

/* Kernel AIO runs a buffered read or write inside io_submit (aio.h): the
 * loop waits for it either way. Made on the calling thread it costs what
 * the stdlib's call costs; through io_submit it also costs a kernel
 * request, a completion event and an eventfd signal, and a write a statx
 * that tells a file from a pipe (4 KiB writes to tmpfs one at a time: 3.06
 * -> 1.39 us per write, an os.pwrite loop 1.12 us; Linux 6.18). So, for
 * a buffer that is not O_DIRECT I/O (below):
 * - a write (or writev) is made here with pwrite (pwritev), allowed to
 *   block, as io_submit would have: on a regular file, a block device or
 *   a seekable device (/dev/null, memory devices). A stream refuses it at once (ESPIPE, see
 *   below) and goes to io_submit. (No RWF_NOWAIT try first: ext4 and
 *   tmpfs refuse it for buffered writes, and where it works the write is
 *   made on this thread all the same.)
 * - a read tries the page-cache fast path that the other backends share.
 *   A read of data not cached, from a file on a disk, then goes to
 *   io_submit without RWF_NOWAIT (it blocks there, as a retry after
 *   -EAGAIN would: the preadv2 that found the page missing took the place
 *   of the first io_submit, so a miss costs the same system calls).
 * - pipes, sockets and other files follow the rules of aio.h, as before.
 * O_DIRECT I/O must go to io_submit, where it is asynchronous. Telling it
 * takes an fcntl, asked only for an aligned buffer (O_DIRECT refuses the
 * others at once), its answer kept for the last descriptor (ctx->direct,
 * asked again every 64th time): asking it with every aligned read made
 * O_DIRECT reads at 64 in flight 5-7 % slower (12.0 -> 12.7 us per read,
 * ops.py direct64-linux, four alternated pairs), and sending every read
 * into aligned memory to io_submit unasked made a cached one cost 2.0 us
 * instead of 1.3. */
int aio_req_prep_first(AioContext *ctx, caio_req *req)
{
    int is_write = req->opcode == CAIO_WRITE || req->opcode == CAIO_WRITEV, type, r;
    ssize_t moved = 0;

    if (!ctx->inline_rw || req->nbytes > CAIO_NOWAIT_MAX || req->offset < 0 ||
        (!is_write && req->opcode != CAIO_READ && req->opcode != CAIO_READINTO))
        return aio_req_prep(ctx, req);
    /* A write from memory aligned on purpose (mmap, aligned_buffer, NumPy:
     * the O_DIRECT idiom) goes to io_submit as before; a bytes object is
     * aligned by chance (protocol.h). Every write is made here, 64 in
     * flight too: for a bytes payload aligned by chance, fcntl's answer is
     * kept (ctx->direct), not asked with each write (a second system call
     * per write). A read into aligned memory of any kind asks the same
     * kept answer (and counts twice: its preadv2 below looks again). A
     * stale answer costs time, not a result: a buffered transfer through
     * io_submit, or an O_DIRECT one made here, waiting for the disk. */
    if (is_write ? !caio_req_may_write_here(req, &ctx->direct)
                 : caio_nowait_may_be_direct(req->data, req->nbytes) &&
                   caio_fd_is_direct(req->fd, &ctx->direct))
        return aio_req_prep(ctx, req);
    req->flags &= (uint8_t)~AIO_REQ_PRIVATE;
    if (is_write) {
        /* pwrite refuses every stream with ESPIPE before it could block
         * (pipes, FIFOs, sockets, ttys, eventfds: files without
         * FMODE_PWRITE), so no statx is needed to tell a file from a
         * pipe: those go on to io_submit with RWF_NOWAIT (aio.h). */
        ssize_t n = caio_req_write_here(req, NULL);

        if (n != -ESPIPE) {
            req->result = n;
            return 1;
        }
        return aio_req_prep(ctx, req);
    }
    if (caio_req_nowait(req, 0, NULL, &ctx->direct, &moved) == CAIO_NOWAIT_DONE) {
        req->result = moved;
        return 1;
    }
    if ((type = caio_file_type(req->fd, NULL)) < 0) {
        req->result = moved > 0 ? moved : type;
        return 1;
    }
    if (!S_ISREG(type) && !S_ISBLK(type)) {
        if (moved > 0) {    /* a device's short answer: what it had */
            req->result = moved;
            return 1;
        }
        return aio_req_prep(ctx, req);
    }
    if ((r = aio_req_prep(ctx, req)) < 0)
        return r;
    req->result = moved;
    req_prep_retry(req);    /* the rest, allowed to block */
    return 0;
}

/* A refusal straight from io_submit: the clearest errno and message. */
static void req_set_error(caio_req *req, long long res, int from_submit)
{
    int err = (int)-res, type;

    if (from_submit && (req->opcode == CAIO_FSYNC || req->opcode == CAIO_FDSYNC) &&
        err == EINVAL) {
        req->flags |= AIO_REQ_REJECTED;
    } else if (from_submit && req->opcode != CAIO_FSYNC && req->opcode != CAIO_FDSYNC &&
               (err == EINVAL || err == EOPNOTSUPP)) {
        /* A directory has no read_iter: the kernel says EINVAL where
         * read(2) says EISDIR. */
        if ((type = caio_file_type(req->fd, NULL)) > 0 && S_ISDIR(type))
            err = EISDIR;
        else
            req->flags |= AIO_REQ_REJECTED;
    }
    req->result = -err;
}

void aio_req_fail(caio_req *req, long err, int from_submit)
{
    req_set_error(req, err < 0 ? err : -err, from_submit);
}

/* Account for one answer from the kernel (an event's res, or an io_submit
 * error as -errno). Returns 1 when the request is finished (req->result is
 * final), 0 when it must be resubmitted (its iocb is updated). */
static int req_complete(caio_req *req, long long res, int allow_retry, int from_submit)
{
    struct iocb *cb = aio_req_iocb(req);
    long long done = req->result;

    if (cb->aio_rw_flags & RWF_NOWAIT) {
        int would_block = res == -EAGAIN || res == -EOPNOTSUPP;
        int short_read = caio_opcode_reads(req->opcode) && res > 0 &&
                         (unsigned long long)(done + res) < req->nbytes;
        long long size = 0;
        int type = would_block || short_read ? caio_file_type(req->fd, &size) : -1;

        if (type > 0) {
            if (S_ISDIR(type) && would_block) {
                req->result = -EISDIR;
                return 1;
            }
            if (S_ISREG(type) || S_ISBLK(type)) {
                /* Not cached (or the driver has no non-blocking mode):
                 * a regular file is worth waiting for. A short answer
                 * at the end of a regular file is simply the end. */
                if (res > 0) {
                    done += res;
                    req->result = done;
                    if (S_ISREG(type) && req->offset + done >= size)
                        return 1;
                }
                if (allow_retry) {
                    req_prep_retry(req);
                    return 0;
                }
                /* Closing: no more rounds. */
                req->result = done > 0 ? done : -ECANCELED;
                return 1;
            }
            if (would_block) {
                /* A pipe, socket or device that would block the loop. */
                if (done > 0) {
                    req->result = done;
                } else {
                    req->result = res;
                    req->flags |= res == -EAGAIN ? AIO_REQ_WOULD_BLOCK : AIO_REQ_REJECTED;
                }
                return 1;
            }
            /* A short read from a pipe or a device: that is what it had. */
        }
    }
    if (res >= 0)
        req->result = done + res;
    else if (done > 0)
        req->result = done;   /* what earlier rounds got, like read(2) */
    else
        req_set_error(req, res, from_submit);
    return 1;
}

/* ---- submitting ------------------------------------------------------------ */

static long submit(AioContext *ctx, long n, struct iocb **cbs)
{
    long r;
    int err = 0;

    /* Buffered I/O runs inside io_submit: let other threads run. */
    Py_BEGIN_ALLOW_THREADS
    r = aio_sys_submit(ctx->aio, n, cbs);
    if (r < 0)
        err = errno;
    Py_END_ALLOW_THREADS
    if (r < 0)
        return -err;
    return r == 0 ? -EAGAIN : r;
}

long aio_submit_one(AioContext *ctx, caio_req *req)
{
    struct iocb *cb = aio_req_iocb(req);
    long r = submit(ctx, 1, &cb);

    if (r == 1) {
        req->state = CAIO_REQ_INFLIGHT;
        ctx->inflight++;
    }
    return r;
}

/* 1 if the request went back to the kernel's queue (retry), else 0 and the
 * request is finished with the error. */
int aio_submit_failed(AioContext *ctx, caio_req *req, long err)
{
    return !req_complete(req, -err, !ctx->closed, 1);
}

void aio_pump(AioContext *ctx)
{
    struct iocb *cbs[AIO_BATCH];
    int woke = 0;

    ctx->batched = 0;
    while (ctx->wait_head != NULL && ctx->inflight < ctx->max_requests) {
        unsigned room = ctx->max_requests - ctx->inflight;
        long n = 0, r;
        caio_req *req;

        for (req = ctx->wait_head; req != NULL && n < AIO_BATCH && (unsigned)n < room;
             req = req->next)
            cbs[n++] = aio_req_iocb(req);

        r = submit(ctx, n, cbs);
        if (r > 0) {
            /* Partial submission: the first r are in, the rest wait; the
             * first of those is tried again and, if it fails alone, gets
             * the error below. */
            for (long i = 0; i < r; i++) {
                req = caio_fifo_pop(&ctx->wait_head, &ctx->wait_tail);
                req->state = CAIO_REQ_INFLIGHT;
                ctx->inflight++;
            }
            continue;
        }
        req = ctx->wait_head;
        if (r == -EAGAIN) {
            /* Out of kernel resources: completions will free them. With
             * nothing in flight none will, so fail rather than wait. */
            if (ctx->inflight > 0)
                break;
            caio_fifo_pop(&ctx->wait_head, &ctx->wait_tail);
            req->result = -EAGAIN;
        } else {
            caio_fifo_pop(&ctx->wait_head, &ctx->wait_tail);
            if (!req_complete(req, r, 1, 1)) {
                caio_fifo_push_front(&ctx->wait_head, &ctx->wait_tail, req);
                continue;
            }
        }
        req->state = CAIO_REQ_DONE;
        caio_fifo_push(&ctx->ready_head, &ctx->ready_tail, req);
        woke = 1;   /* the kernel posted nothing for it */
    }
    if (woke)
        aio_wake(ctx);
}

/* ---- reaping -------------------------------------------------------------- */

typedef struct {
    caio_req *mine;
    enum aio_mine mine_state;
    caio_req *retry_head, *retry_tail;
} reap_state;

static void handle_event(AioContext *ctx, const struct io_event *ev, reap_state *rs)
{
    caio_req *req = (caio_req *)(uintptr_t)ev->data;

    if (ctx->inflight > 0)
        ctx->inflight--;
    if (!req_complete(req, ev->res, !ctx->closed, 0)) {
        if (req == rs->mine) {
            rs->mine_state = AIO_MINE_RETRY;
        } else {
            req->state = CAIO_REQ_WAITING;
            caio_fifo_push(&rs->retry_head, &rs->retry_tail, req);
        }
        return;
    }
    req->state = CAIO_REQ_DONE;
    if (req == rs->mine)
        rs->mine_state = AIO_MINE_DONE;
    else
        caio_fifo_push(&ctx->ready_head, &ctx->ready_tail, req);
}

/* Read the user-space ring. -1 if it does not look sane (then the system
 * call path takes over for good). */
static int reap_ring(AioContext *ctx, reap_state *rs)
{
    struct aio_ring_header *ring = ctx->ring;
    unsigned nr = ring->nr;
    unsigned head = __atomic_load_n(&ring->head, __ATOMIC_RELAXED);
    /* Acquire: the kernel writes the event, then publishes the tail. */
    unsigned tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);

    if (head >= nr || tail >= nr)
        return -1;
    while (head != tail) {
        struct io_event ev = ring->io_events[head];
        head = head + 1 == nr ? 0 : head + 1;
        handle_event(ctx, &ev, rs);
    }
    /* Release: we are done reading those slots; the kernel may reuse them
     * (it reads head to know how many slots we freed). */
    __atomic_store_n(&ring->head, head, __ATOMIC_RELEASE);
    return 0;
}

static void reap_syscall(AioContext *ctx, reap_state *rs)
{
    struct io_event evs[AIO_BATCH];
    struct timespec zero = {0, 0};
    long n;

    do {
        n = aio_sys_getevents(ctx->aio, 0, AIO_BATCH, evs, &zero);
        for (long i = 0; i < n; i++)
            handle_event(ctx, &evs[i], rs);
    } while (n == AIO_BATCH);
}

static void reap_finish(AioContext *ctx, reap_state *rs)
{
    /* Requests to resubmit go first, in their order. */
    if (rs->retry_head != NULL) {
        rs->retry_tail->next = ctx->wait_head;
        if (ctx->wait_head == NULL)
            ctx->wait_tail = rs->retry_tail;
        ctx->wait_head = rs->retry_head;
    }
}

enum aio_mine aio_reap(AioContext *ctx, caio_req *mine)
{
    reap_state rs = {mine, AIO_MINE_PENDING, NULL, NULL};

    if (ctx->aio == 0)
        return AIO_MINE_PENDING;
    if (ctx->ring == NULL || reap_ring(ctx, &rs) < 0) {
        ctx->ring = NULL;
        reap_syscall(ctx, &rs);
    }
    reap_finish(ctx, &rs);
    return rs.mine_state;
}

/* slack_ns > 0: the thread's timer slack during the wait (restored after).
 * io_getevents arms a timer for its timeout with the thread's slack (50 µs
 * by default); the timer being the CPU's next event, arming it and then
 * cancelling it when the read completes first reprograms the CPU's timer
 * twice, which in a virtual machine is two exits to the hypervisor: 38 000
 * timer MSR writes for 20 000 lone O_DIRECT reads, about 4 µs of system
 * time per read of 35-50. With a slack reaching past the next tick the
 * timer is served by the tick and nothing is reprogrammed (500 writes). */
enum aio_mine aio_wait_mine(AioContext *ctx, caio_req *mine, long long ns, long slack_ns,
                            long long *took_ns)
{
    struct io_event evs[AIO_BATCH];
    struct timespec timeout = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    struct timespec start, end;
    reap_state rs = {mine, AIO_MINE_PENDING, NULL, NULL};
    long n;
    int old_slack;

    *took_ns = 0;
    if (ctx->aio == 0)
        return AIO_MINE_PENDING;
    Py_BEGIN_ALLOW_THREADS
    old_slack = slack_ns > 0 ? prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0) : -1;
    /* (An old slack of 0 would not restore: PR_SET_TIMERSLACK 0 means the
     * default. The kernel never reports 0.) */
    if (old_slack > 0)
        prctl(PR_SET_TIMERSLACK, (unsigned long)slack_ns, 0, 0, 0);
    clock_gettime(CLOCK_MONOTONIC, &start);
    n = aio_sys_getevents(ctx->aio, 1, AIO_BATCH, evs, &timeout);
    clock_gettime(CLOCK_MONOTONIC, &end);
    if (old_slack > 0)
        prctl(PR_SET_TIMERSLACK, (unsigned long)old_slack, 0, 0, 0);
    Py_END_ALLOW_THREADS
    *took_ns = (end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec);
    for (long i = 0; i < n; i++)    /* (n < 0: interrupted, nothing reaped) */
        handle_event(ctx, &evs[i], &rs);
    reap_finish(ctx, &rs);
    return rs.mine_state;
}

int aio_reap_all(AioContext *ctx)
{
    struct io_event evs[AIO_BATCH];
    reap_state rs = {NULL, AIO_MINE_PENDING, NULL, NULL};
    int err = 0;

    aio_reap(ctx, NULL);
    while (ctx->inflight > 0 && ctx->aio != 0) {
        long n, want = ctx->inflight < AIO_BATCH ? (long)ctx->inflight : AIO_BATCH;

        /* No timeout: io_destroy would wait for these requests just the
         * same, and this way their results are delivered, not lost. */
        Py_BEGIN_ALLOW_THREADS
        n = aio_sys_getevents(ctx->aio, 1, want, evs, NULL);
        if (n < 0)
            err = errno;
        Py_END_ALLOW_THREADS
        if (n < 0) {
            if (err == EINTR)
                continue;
            return -err;
        }
        for (long i = 0; i < n; i++)
            handle_event(ctx, &evs[i], &rs);
    }
    reap_finish(ctx, &rs);   /* (empty: closed contexts do not retry) */
    return 0;
}
