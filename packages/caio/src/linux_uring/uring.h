/* io_uring without liburing: the ring, the raw system calls, and the small
 * helpers of setup.c (ring setup/teardown, registration, probing) and
 * queue.c (SQEs in, CQEs out). Nothing here knows about Python objects. */
#ifndef CAIO_URING_H
#define CAIO_URING_H

#include <linux/io_uring.h>
#include <linux/time_types.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "barrier.h"
#include "kernel_features.h"

#define URING_API __attribute__((visibility("hidden")))

/* Newer UAPI names that an older linux/io_uring.h may lack. The values are
 * ABI and never change; a kernel that does not know one refuses it with
 * EINVAL and we fall back. */
#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_TASKRUN_FLAG
#define IORING_SETUP_TASKRUN_FLAG (1U << 9)
#endif
#ifndef IORING_SQ_TASKRUN
#define IORING_SQ_TASKRUN (1U << 2)
#endif
#ifndef IORING_ASYNC_CANCEL_ALL
#define IORING_ASYNC_CANCEL_ALL (1U << 0)
#endif
#ifndef IORING_ASYNC_CANCEL_ANY
#define IORING_ASYNC_CANCEL_ANY (1U << 2)
#endif
#ifndef IORING_FEAT_NODROP
#define IORING_FEAT_NODROP (1U << 1)
#endif
#ifndef IORING_FEAT_EXT_ARG
#define IORING_FEAT_EXT_ARG (1U << 8)
#endif
#ifndef IORING_ENTER_EXT_ARG
#define IORING_ENTER_EXT_ARG (1U << 3)
#endif

struct uring_sq {
    unsigned *khead;        /* kernel: next SQE it will consume */
    unsigned *ktail;        /* us: one past the last SQE published */
    unsigned *kflags;       /* IORING_SQ_NEED_WAKEUP, _CQ_OVERFLOW, _TASKRUN */
    unsigned *array;        /* index ring; filled once with the identity */
    struct io_uring_sqe *sqes;
    unsigned mask;
    unsigned entries;
    unsigned tail;          /* our copy of *ktail */
};

struct uring_cq {
    unsigned *khead;        /* us: next CQE we will read */
    unsigned *ktail;        /* kernel: one past the last CQE posted */
    unsigned *kflags;       /* IORING_CQ_EVENTFD_DISABLED */
    unsigned *koverflow;    /* CQEs the kernel could not post (pre-NODROP) */
    struct io_uring_cqe *cqes;
    unsigned mask;
    unsigned entries;
};

struct uring {
    struct uring_sq sq;
    struct uring_cq cq;
    int fd;
    unsigned setup_flags;   /* what the kernel accepted */
    struct caio_features features;  /* what this kernel offers (probe.c) */
    void *sq_map;           /* SQ ring mapping (also the CQ ring with SINGLE_MMAP) */
    size_t sq_map_len;
    void *cq_map;           /* separate CQ mapping, or NULL */
    size_t cq_map_len;
    void *sqe_map;
    size_t sqe_map_len;
};

/* ---- raw system calls --------------------------------------------------- */

static inline int sys_io_uring_setup(unsigned entries, struct io_uring_params *p)
{
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static inline int sys_io_uring_enter(int fd, unsigned to_submit, unsigned min_complete,
                                     unsigned flags, const void *arg, size_t argsz)
{
    return (int)syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags,
                        arg, argsz);
}

static inline int sys_io_uring_register(int fd, unsigned opcode, const void *arg,
                                        unsigned nr_args)
{
    return (int)syscall(__NR_io_uring_register, fd, opcode, arg, nr_args);
}

/* ---- setup.c ------------------------------------------------------------- */

/* Set up a ring with `entries` SQEs (rounded up to a power of two by the
 * kernel) and twice as many CQEs. With sqpoll, try a kernel submission
 * thread first and fall back to a normal ring where that is refused.
 * Returns 0 or -errno; on failure nothing is left open or mapped. */
URING_API int uring_init(struct uring *ring, unsigned entries, int sqpoll);

/* Unmap the rings and close the ring fd. Safe on a zeroed/failed ring.
 * In a forked child this only drops the child's view and fd copy: the
 * parent's ring lives on (the kernel object is reference counted). */
URING_API void uring_exit(struct uring *ring);

URING_API int uring_register_eventfd(struct uring *ring, int efd);

/* Can this process use io_uring at all? Sets up and tears down a tiny
 * ring. Returns 0, or -errno with *stage naming the step that failed
 * ("io_uring_setup", "mmap", "IORING_REGISTER_PROBE", or an opcode name). */
URING_API int uring_check_usable(const char **stage);
/* Why io_uring cannot be used here (err and stage from uring_check_usable)
 * and what to do about it, as a sentence in msg. */
URING_API void uring_unusable_reason(int err, const char *stage, char *msg, size_t size);

/* ---- probe.c ------------------------------------------------------------- */

/* Fill ring->features from the kernel's IORING_FEAT_* bits, the accepted
 * setup flags and an opcode probe, minus what the test switch hides.
 * Returns 0, or -errno of the probe (its features are then left out). */
URING_API int uring_discover(struct uring *ring, unsigned kernel_features);
/* 0 if the ring has what caio.linux_uring needs, else -errno with *stage
 * naming what is missing (for uring_unusable_reason). */
URING_API int uring_lacks_required(const struct uring *ring, const char **stage);
/* The setup flags the test switch leaves (a mask). */
URING_API unsigned uring_allowed_setup_flags(void);

static inline int uring_is_sqpoll(const struct uring *ring)
{
    return (ring->setup_flags & IORING_SETUP_SQPOLL) != 0;
}

/* ---- queue.c ------------------------------------------------------------- */

/* A free SQE (zeroed), or NULL when the SQ ring is full. Not visible to
 * the kernel until uring_publish(). */
URING_API struct io_uring_sqe *uring_get_sqe(struct uring *ring);

/* Make the SQEs taken so far visible to the kernel (tail store-release). */
static inline void uring_publish(struct uring *ring)
{
    smp_store_release(ring->sq.ktail, ring->sq.tail);
}

/* SQEs published but not yet consumed by the kernel. */
static inline unsigned uring_sq_pending(const struct uring *ring)
{
    return ring->sq.tail - smp_load_acquire(ring->sq.khead);
}

/* Hand published SQEs to the kernel: io_uring_enter for a normal ring
 * (retrying on EINTR, and looping while the kernel stops early on a bad
 * SQE), a wake-up of the poll thread if it sleeps under SQPOLL. Returns
 * how many the kernel consumed, or -errno (EAGAIN/EBUSY: try later). */
URING_API int uring_submit(struct uring *ring);

/* A free SQE, waiting for the SQPOLL thread to make room if it must
 * (blocking, briefly: call with the GIL released). */
URING_API struct io_uring_sqe *uring_get_sqe_wait(struct uring *ring);

/* Wait (blocking: call with the GIL released) until at least one CQE is
 * there or timeout_ms passed. Returns 0, -ETIME, -EINTR or -errno. */
URING_API int uring_wait(struct uring *ring, long long timeout_ns);

/* Ask the kernel to post CQEs it kept back (CQ overflow) and run pending
 * task work. Does not block. */
URING_API int uring_flush_cq(struct uring *ring);

static inline unsigned uring_cq_ready(const struct uring *ring)
{
    return smp_load_acquire(ring->cq.ktail) - *ring->cq.khead;
}

static inline void uring_prep(struct io_uring_sqe *sqe, uint8_t opcode, int fd,
                              uint64_t addr, uint32_t len, uint64_t off,
                              uint64_t user_data)
{
    sqe->opcode = opcode;
    sqe->fd = fd;
    sqe->addr = addr;
    sqe->len = len;
    sqe->off = off;
    sqe->user_data = user_data;
}

#endif
