/*
 * caio.linux_aio: the kernel AIO backend (io_setup / io_submit / io_getevents).
 *
 * aio.h     (this file) kernel facts, the mapped ring's layout, the kernel
 *           layer's functions
 * setup.c   the raw system calls, creating and destroying the kernel context,
 *           checking the user-space completion ring
 * queue.c   turning requests into iocbs, submitting, reaping, retrying
 * context.c the engine: locking, delivering results, closing, cancelling
 * module.c  the Python type: its methods, attributes and the module
 *
 * How kernel AIO behaves on buffered files (read this before "simplifying"):
 *
 * - It is not asynchronous. For a file opened without O_DIRECT the kernel
 *   runs the read or write inside io_submit() and posts the completion
 *   before io_submit() returns. Only O_DIRECT I/O and fsync/fdsync (which go
 *   to a kernel workqueue) complete later. So the completion of a page-cache
 *   hit is on the ring right after io_submit(): the *_async methods reap it
 *   in the same call and return the value without a future. (They first
 *   try a cached read with preadv2 and make a buffered write to a file with
 *   pwrite, on the calling thread, which costs less: aio_req_prep_first()
 *   in queue.c.)
 *
 * - "Inside io_submit" includes waiting. A read from an empty pipe or socket
 *   blocks io_submit() until data comes (checked on 6.18: no EINVAL), which
 *   would freeze the event loop forever. Hence every read is submitted with
 *   RWF_NOWAIT (it costs nothing on a page-cache hit): a pipe with no data
 *   answers -EAGAIN and the request fails with a clear BlockingIOError. On
 *   a regular file, RWF_NOWAIT answers -EAGAIN (or a short count) when the
 *   data is not cached; then, and only then, one fstat() tells a regular
 *   file (resubmit without RWF_NOWAIT: the disk read happens inside
 *   io_submit, with the GIL released, as kernel AIO always does) from a
 *   pipe. Files whose driver has no non-blocking mode (FMODE_NOWAIT) answer
 *   -EOPNOTSUPP and get the same treatment.
 *   Buffered writes to ext4 reject RWF_NOWAIT (-EOPNOTSUPP), so a write
 *   costs one statx(STATX_TYPE) up front (not fstat: see caio_file_type() in
 *   common/nowait.c): regular files and block devices are written normally,
 *   anything else with RWF_NOWAIT (a full pipe fails, it does not block).
 *
 * - io_cancel() only works for requests whose driver installed a cancel
 *   hook (aio poll, USB gadget files). For file reads and writes it always
 *   answers EINVAL: the request completes anyway, and its buffer stays
 *   alive until it does.
 *
 * - io_destroy() cancels what can be cancelled, waits (uninterruptibly)
 *   for every request still in flight, and unmaps the completion ring:
 *   completions not reaped by then are lost. (Checked on 6.18: with 64
 *   O_DIRECT 1 MiB writes in flight, io_destroy returned after 53 ms with
 *   all of them on disk.) close() therefore reaps everything first
 *   (io_getevents, GIL released) and destroys after: the wait is the same,
 *   and the results are delivered instead of lost.
 */
#ifndef CAIO_LINUXAIO_H
#define CAIO_LINUXAIO_H

#include "caio.h"
#include "fifo.h"
#include <linux/aio_abi.h>
#include <pthread.h>

/* A request's struct iocb lives in its backend scratch space. */
_Static_assert(sizeof(struct iocb) <= sizeof(((caio_req *)0)->backend),
               "struct iocb must fit in caio_req.backend");
_Static_assert(_Alignof(struct iocb) <= _Alignof(uint64_t),
               "caio_req.backend is not aligned enough for struct iocb");

static inline struct iocb *aio_req_iocb(caio_req *req)
{
    return (struct iocb *)(void *)req->backend;
}

/* Backend-private request flags (caio.h uses the low bits). They tell
 * which message a failure deserves; cleared when a request is accepted. */
#define AIO_REQ_WOULD_BLOCK 0x40   /* the file would block the event loop */
#define AIO_REQ_REJECTED    0x80   /* io_submit refused the file/arguments */
#define AIO_REQ_PRIVATE     (AIO_REQ_WOULD_BLOCK | AIO_REQ_REJECTED)

/*
 * The completion ring the kernel maps into our address space: io_setup()
 * returns its address as the context id. This is fs/aio.c's struct aio_ring,
 * which is not in the UAPI headers, so it is written out here:
 *
 *   id                 kernel-internal index of the context
 *   nr                 number of io_event slots (more than io_setup asked:
 *                      the kernel doubles the request and rounds to pages)
 *   head               next slot to read: written by us (or by the kernel
 *                      inside io_getevents)
 *   tail               next slot the kernel fills: written by the kernel,
 *                      after the event itself (we load it with acquire)
 *   magic              AIO_RING_MAGIC
 *   compat_features    1; ignorable
 *   incompat_features  0; anything else means a layout we do not know
 *   header_length      sizeof(this header) = 32
 *   io_events[nr]      the events
 *
 * head and tail wrap at nr. Only if every field checks out do we read the
 * ring directly; otherwise io_getevents() with a zero timeout does the same
 * job with a system call.
 */
#define AIO_RING_MAGIC 0xa10a10a1u

struct aio_ring_header {
    unsigned id;
    unsigned nr;
    unsigned head;
    unsigned tail;
    unsigned magic;
    unsigned compat_features;
    unsigned incompat_features;
    unsigned header_length;
    struct io_event io_events[];
};

typedef struct AioContext AioContext;   /* context.h */

/* ---- setup.c ------------------------------------------------------------ */

long aio_sys_setup(unsigned nr, aio_context_t *ctx);
long aio_sys_destroy(aio_context_t ctx);
long aio_sys_submit(aio_context_t ctx, long nr, struct iocb **iocbs);
long aio_sys_getevents(aio_context_t ctx, long min_nr, long nr,
                       struct io_event *events, struct timespec *timeout);
long aio_sys_cancel(aio_context_t ctx, struct iocb *iocb, struct io_event *result);

/* Create the eventfd and the kernel context for nr requests; *ring is the
 * mapped completion ring when userspace_reap and its layout checks out,
 * else NULL. 0, or -errno with nothing left open. */
int aio_setup_context(unsigned nr, int userspace_reap, aio_context_t *aio,
                      struct aio_ring_header **ring, int *efd);
/* io_destroy (it waits for the requests in flight: call without the GIL)
 * and close the eventfd. Returns 0, or the io_destroy errno (the kernel may
 * still own buffers then). */
int aio_destroy_context(aio_context_t *aio, struct aio_ring_header **ring, int *efd);
/* io_destroy of a context with nothing in flight on a detached helper
 * thread, so that the caller does not wait for it. 0 if handed over (the
 * context and its mapped ring are gone for the caller), -1 if the caller
 * must destroy it itself (too many helpers busy, no thread). */
int aio_destroy_in_background(aio_context_t aio);

/* ---- queue.c (all with the context lock held) --------------------------- */

/* Fill the request's iocb. Returns 0 or -errno (a write's fstat failed). */
int aio_req_prep(AioContext *ctx, caio_req *req);
/* aio_req_prep for a request of the *_async methods, which first tries a
 * plain read or write on the calling thread (queue.c). 1 if that finished
 * it (req->result is final), 0 if the iocb is ready for io_submit, or
 * -errno as aio_req_prep. */
int aio_req_prep_first(AioContext *ctx, caio_req *req);
/* Record a failure that happened before the request reached the kernel
 * (negative errno), giving it the clearest errno and message. */
void aio_req_fail(caio_req *req, long err, int from_submit);

/* Submit one request (GIL released). 1 (then it is in flight), or -errno. */
long aio_submit_one(AioContext *ctx, caio_req *req);
/* io_submit refused req with err (> 0). 1 if the request was prepared to be
 * submitted again (a read that may block after all), else 0 and the request
 * is finished with the error. */
int aio_submit_failed(AioContext *ctx, caio_req *req, long err);

enum aio_mine { AIO_MINE_PENDING, AIO_MINE_DONE, AIO_MINE_RETRY };
/* Reap every completion available now without blocking. Finished requests
 * go to the ready list, those to resubmit to the front of the FIFO -
 * except `mine` (may be NULL), whose fate is returned. */
enum aio_mine aio_reap(AioContext *ctx, caio_req *mine);
/* Wait at most ns (GIL released) for a completion, then reap like
 * aio_reap. */
enum aio_mine aio_wait_mine(AioContext *ctx, caio_req *mine, long long ns, long slack_ns,
                            long long *took_ns);
/* Submit waiting requests while there are free slots. */
void aio_pump(AioContext *ctx);
/* Wait (GIL released) until nothing is in flight. 0, or -errno if
 * io_getevents failed (then some requests are unaccounted for). */
int aio_reap_all(AioContext *ctx);

/* Make the eventfd readable (for completions the kernel did not post). */
void aio_wake(AioContext *ctx);

#endif
