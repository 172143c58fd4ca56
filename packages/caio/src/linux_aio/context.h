/* caio.linux_aio: the context object and the engine (context.c) that the
 * Python methods (module.c) drive.
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
 * Callbacks and future resolution always run with the mutex released. */
#ifndef CAIO_LINUX_AIO_CONTEXT_H
#define CAIO_LINUX_AIO_CONTEXT_H

#include "aio.h"
#include "batch.h"
#include "protocol.h"

#define CTX_NAME "caio.linux_aio.Context"

/* While batching, io_submit as soon as this many requests wait, without
 * waiting for the flush: the device starts on them while the loop prepares
 * the rest, and its queue is fed steadily rather than in bursts.
 * O_DIRECT 4 KiB random reads, 64 in flight (virtio disk, Linux 6.18),
 * reads/s by batch size, first measured: one batch per loop iteration
 * (~56) 104k; 32: 116k; 24: 127k; 20: 134k; 16: 148-158k; 12: 148k; 8:
 * 150k; 4: 115-135k (fio, io_uring, queue depth 64: 166k). Measured again
 * on a disk that takes ~140k O_DIRECT writes/s, against fio in the same
 * sitting (benchmarks/run.py, six rounds each, builds alternated): 16 ->
 * 8 -> 4 made writes at 64 in flight 0.88 -> 0.91 -> 0.98x of fio and
 * reads 0.86 -> 0.92 -> 0.92x; linux_uring sends disk requests in groups
 * of four too (URING_DISK_BATCH). */
#define AIO_FLUSH_AT 4

struct AioContext {
    CAIO_CONTEXT_HEAD
    aio_context_t aio;               /* io_setup id; 0 when there is none */
    struct aio_ring_header *ring;    /* == aio when the header checked out */
    int efd;                         /* eventfd: IOCB_FLAG_RESFD target */
    unsigned max_requests;
    caio_fd_memo direct;             /* is it O_DIRECT, for an aligned bytes
                                        payload (queue.c) */
    int inline_rw;                   /* reads and writes tried without
                                        io_submit first (queue.c) */
    unsigned inflight;               /* submitted and not reaped */
    caio_batch batch;                /* io_submit at once or once per loop
                                        iteration (common/batch.h) */
    unsigned batched;                /* requests queued since the last pump */
    caio_lone lone;                  /* the short wait for a lone O_DIRECT
                                        read (module.c, common/batch.h) */
    PyObject *idle_check;            /* "the loop has nothing else to run",
                                        or NULL (the asyncio adapter's) */
    caio_req *wait_head, *wait_tail; /* FIFO of accepted, unsubmitted requests */
    caio_req *ready_head, *ready_tail; /* finished, not delivered yet */
    caio_req_pool pool;
    PyObject *futures;               /* {future: request address} in flight */
    int outside;                     /* batches of requests taken out of the
                                        lock, not yet given back to the pool */
    int pool_leaked;                 /* the kernel may still own pool memory */
    pthread_mutex_t lock;            /* see ctx_lock() in module.c */
    uintptr_t lock_owner;            /* pthread_self() of the holder, or 0 */
};

/* ---- entering and leaving (every entry point but close) ------------------- */

/* Fork and closed checks, then the mutex (re-entry: RuntimeError). */
CAIO_API int context_enter(AioContext *self);
/* Release the mutex. */
CAIO_API void context_leave(AioContext *self);
/* Take the mutex, whoever holds it (no re-entry check). */
CAIO_API void aio_ctx_lock_always(AioContext *self);

/* ---- results ------------------------------------------------------------- */

/* The value of a finished request, or NULL with its OSError raised. */
CAIO_API PyObject *aio_ctx_req_result(caio_req *req);
/* Return cleared requests (linked by next) to the pool: ends one
 * `outside` batch. */
CAIO_API void aio_ctx_return_reqs(AioContext *self, caio_req *list);
/* Deliver finished requests (mutex released, self->outside taken):
 * Operation callbacks, futures, then the pool. Returns how many. */
CAIO_API Py_ssize_t aio_ctx_deliver(AioContext *self, caio_req *list);
CAIO_API void aio_ctx_free_pool(AioContext *self);

/* ---- cancelling and closing ------------------------------------------------ */

/* Cancel one request (mutex held): a waiting one is finished here with
 * ECANCELED; one in flight is asked to the kernel. 1 if cancelled. */
CAIO_API int aio_ctx_cancel_req(AioContext *self, caio_req *req, int *woke);
/* The kernel context and eventfd for max_requests. 0, or -1 + OSError
 * that says what to do (fs.aio-max-nr reached, AIO not available). */
CAIO_API int aio_ctx_open(AioContext *self, int userspace_reap);
/* aio_destroy_context with the GIL released: 0 or the io_destroy errno. */
CAIO_API int aio_ctx_destroy(AioContext *self);
/* close(): wait for what is in flight, deliver, destroy. 0, or -1 + error. */
CAIO_API int aio_ctx_close(AioContext *self);

#endif
