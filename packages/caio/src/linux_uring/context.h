/* The io_uring context: its state and the engine (context.c) that the
 * Python methods (module.c) drive. See context.c for how a request moves. */
#ifndef CAIO_URING_CONTEXT_H
#define CAIO_URING_CONTEXT_H

#include "fifo.h"
#include "batch.h"
#include "protocol.h"
#include "uring.h"

#define QUALNAME "caio.linux_uring.Context"

/* user_data of our own ASYNC_CANCEL requests. Request pointers are
 * aligned, so odd values can never be one. */
#define UD_CANCEL 1ULL
#define UD_CANCEL_ANY 3ULL
/* Or'ed into a request's user_data: close() made its SQE, which the kernel
 * had not seen, a NOP (see drop_unsubmitted in context.c). */
#define UD_DROPPED 2ULL

/* Backend scratch in caio_req. */
#define REQ_SLOT(r) ((r)->backend[0])    /* index in ctx->inflight */
#define REQ_BFLAGS(r) ((r)->backend[1])
/* The *_async call that submitted the request is still running: a
 * completion only records the result, the call takes it from there. */
#define BF_HELD 1u
/* close() gave up waiting for it: its memory must never be freed. */
#define BF_LEAKED 2u
/* Times the kernel dropped it (-ECANCELED nobody asked for) and it was
 * queued again: see complete() in context.c. */
#define BF_REQUEUE_SHIFT 8
#define BF_REQUEUED(r) (REQ_BFLAGS(r) >> BF_REQUEUE_SHIFT)
#define MAX_REQUEUES 16

/* Submissions carrying more bytes than this release the GIL around
 * io_uring_enter: an inline page-cache copy of that size takes longer than
 * dropping and retaking the GIL. Small ones keep it (releasing would cost
 * more than the whole system call). Reads up to the same size try the
 * page cache first (common/nowait.c). */
#define NOGIL_BYTES CAIO_NOWAIT_MAX

/* How long close() waits for the kernel to give back every request. */
#define CLOSE_TIMEOUT_MS 10000
/* How long cancel() waits for the kernel to answer its cancel requests. */
#define CANCEL_TIMEOUT_MS 1000
/* While batching, submissions on a disk go to the kernel once this many
 * are queued, instead of waiting for the loop iteration's flush (batch.c). */
#define URING_DISK_BATCH 4
/* Descriptors below this get their kind remembered (uctx_on_disk). */
#define URING_FD_KINDS 256

typedef struct {
    CAIO_CONTEXT_HEAD
    struct uring ring;
    int efd;
    unsigned max_requests;      /* as asked */
    unsigned limit;             /* in-flight cap: min(max_requests, SQ size) */
    int released;               /* rings unmapped, pool freed */
    int busy;                   /* depth of calls that may run Python code */
    int nogil;                  /* a call is in a GIL-released section */
    int leak;                   /* the kernel kept some request: leak memory */
    int sqpoll;
    int nowait_reads;
    caio_batch batch;           /* submit now or once per loop iteration */
    int cancel_any_failed;
    caio_lone lone;             /* the short wait for a lone miss (batch.c) */
    caio_lone lone_write;       /* lone writes made here while fast (batch.c) */
    PyObject *idle_check;       /* "the loop has nothing else to run", or NULL */
    int lone_fd;                /* the descriptor lone_fd_disk is about, or -1 */
    int lone_fd_disk;           /* a regular file or block device */
    caio_fd_memo direct;        /* is it O_DIRECT, for an aligned buffer
                                   (common/nowait.h) */
    /* uctx_on_disk's answers for descriptors below URING_FD_KINDS:
     * 0 not asked yet, 1 on a disk, 2 not. */
    unsigned char fd_kind[URING_FD_KINDS];
    size_t unsubmitted_bytes;
    caio_req **inflight;
    unsigned n_inflight;
    unsigned cancels_pending;
    unsigned long cancels_ok;
    caio_req *wait_head, *wait_tail;
    caio_req *done_head, *done_tail;    /* Operations whose callbacks wait */
    caio_req_pool pool;
} UringContext;

/* ---- entering and leaving (every entry point) ---------------------------- */

/* Fork check, closed check, other-thread check; then busy++. -1 + exception. */
CAIO_API int context_enter(UringContext *self);
/* busy--; the outermost call out of a closed context releases its memory. */
CAIO_API void context_leave(UringContext *self);

/* Ring, eventfd, in-flight table and pool of a new context. 0, or -1 +
 * exception (uctx_release frees what was made unless self->released). */
CAIO_API int uctx_open(UringContext *self, int sqpoll);

/* ---- submission ----------------------------------------------------------- */

/* SQE for req in the ring (published, not yet submitted), req in flight.
 * The caller checked n_inflight < limit. 0, or -1 + exception. */
CAIO_API int uctx_queue_req(UringContext *self, caio_req *req);
/* Wait up to ns for a CQE, the GIL released (other threads may run; this
 * context refuses them meanwhile: self->nogil). */
CAIO_API void uctx_wait_nogil(UringContext *self, long long ns);
/* A read just submitted alone that did not complete inline: wait for it a
 * little (batch.c says when and why). */
CAIO_API void uctx_wait_lone(UringContext *self, caio_req *req);
/* A write alone on the context, made on this thread when that pays
 * (batch.c): 1 with req->result set, else 0. */
CAIO_API int uctx_write_here(UringContext *self, caio_req *req);
/* ASYNC_CANCEL for req, or for everything with req == NULL. */
CAIO_API int uctx_queue_cancel(UringContext *self, caio_req *req);
/* io_uring_enter for every published SQE. 0, or -1 + OSError. */
CAIO_API int uctx_flush(UringContext *self);
/* 1 if fd is a regular file or a block device: batch.c. */
CAIO_API int uctx_on_disk(UringContext *self, int fd);
/* Make the eventfd readable (work no CQE announces). */
CAIO_API void uctx_signal(UringContext *self);

/* ---- filesystem operations (fs.c) ------------------------------------------ */

/* Which rows of common/fsops.h this kernel does (a bit each), from the
 * features the ring's probe found (linux_uring/probe.c). */
CAIO_API uint32_t uctx_fs_kernel_ops(const struct caio_features *features);
/* Fill sqe for a CAIO_FS request. */
CAIO_API void uctx_prep_fs(struct io_uring_sqe *sqe, const caio_req *req);

/* ---- completion ----------------------------------------------------------- */

/* Take every CQE; Operation callbacks are deferred unless run_callbacks. */
CAIO_API Py_ssize_t uctx_reap(UringContext *self, int run_callbacks);
/* Run the deferred Operation callbacks. */
CAIO_API Py_ssize_t uctx_run_done(UringContext *self);
/* Reap, refill from the waiting FIFO, submit, until nothing moves. */
CAIO_API Py_ssize_t uctx_pump(UringContext *self);
/* Value of a request its submitting call got back (puts it back). */
CAIO_API PyObject *uctx_take_value(UringContext *self, caio_req *req);
/* Reap, waiting (GIL released) until no cancel request is outstanding. */
CAIO_API void uctx_wait_cancels(UringContext *self, int timeout_ms, int run_callbacks);

/* ---- submit now or batch -------------------------------------------------- */

CAIO_API void uctx_note_inline(UringContext *self, int done);
CAIO_API int uctx_schedule_flush(UringContext *self);
CAIO_API void uctx_eventfd_quiet(UringContext *self);
CAIO_API void uctx_eventfd_loud(UringContext *self);

/* ---- closing -------------------------------------------------------------- */

/* close(): cancel, wait, fail what never came back; idempotent. */
CAIO_API void uctx_close(UringContext *self);
/* Unmap the ring, close the eventfd, free the pool (unless leaking). */
CAIO_API void uctx_release(UringContext *self);

/* ---- request lists: common/fifo.h ---------------------------------------- */

static inline void inflight_add(UringContext *self, caio_req *req)
{
    REQ_SLOT(req) = self->n_inflight;
    self->inflight[self->n_inflight++] = req;
    req->state = CAIO_REQ_INFLIGHT;
}

static inline void inflight_remove(UringContext *self, caio_req *req)
{
    unsigned slot = (unsigned)REQ_SLOT(req);
    caio_req *last = self->inflight[--self->n_inflight];

    self->inflight[slot] = last;
    REQ_SLOT(last) = slot;
}

#endif
