/* The submission and completion queues.
 *
 * We are the only producer of SQEs and the only consumer of CQEs (the
 * Python context serialises its callers), so our own copy of the SQ tail
 * is authoritative; only the kernel's SQ head and CQ tail need acquire
 * loads, and our SQ tail and CQ head stores need release semantics. */
#include "uring.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

struct io_uring_sqe *uring_get_sqe(struct uring *ring)
{
    struct uring_sq *sq = &ring->sq;
    struct io_uring_sqe *sqe;

    if (sq->tail - smp_load_acquire(sq->khead) >= sq->entries)
        return NULL;
    sqe = &sq->sqes[sq->tail & sq->mask];
    sq->tail++;
    memset(sqe, 0, sizeof(*sqe));
    return sqe;
}

struct io_uring_sqe *uring_get_sqe_wait(struct uring *ring)
{
    struct io_uring_sqe *sqe;

    for (int tries = 0; tries < 1000; tries++) {
        if ((sqe = uring_get_sqe(ring)) != NULL)
            return sqe;
        if (uring_is_sqpoll(ring)) {
            /* The poll thread frees slots as it consumes them. */
            uring_publish(ring);
            if (sys_io_uring_enter(ring->fd, 0, 0,
                                   IORING_ENTER_SQ_WAKEUP | IORING_ENTER_SQ_WAIT,
                                   NULL, 0) < 0 && errno != EINTR)
                return NULL;
        } else if (uring_submit(ring) <= 0) {
            return NULL;
        }
    }
    return NULL;
}

int uring_submit(struct uring *ring)
{
    int total = 0, ret;
    unsigned pending;

    uring_publish(ring);
    if (uring_is_sqpoll(ring)) {
        /* The poll thread picks up the new tail by itself unless it went
         * to sleep; the full barrier orders our tail store before the
         * flag load, pairing with the kernel's barrier before it sets
         * NEED_WAKEUP and rechecks the tail. */
        smp_mb();
        pending = uring_sq_pending(ring);
        if (read_once(ring->sq.kflags) & IORING_SQ_NEED_WAKEUP) {
            while (sys_io_uring_enter(ring->fd, 0, 0, IORING_ENTER_SQ_WAKEUP,
                                      NULL, 0) < 0) {
                if (errno != EINTR)
                    return -errno;
            }
        }
        return (int)pending;
    }
    /* Without SUBMIT_ALL the kernel stops at the first SQE that fails
     * (that SQE still gets its error CQE): go on with the rest. */
    while ((pending = uring_sq_pending(ring)) != 0) {
        ret = sys_io_uring_enter(ring->fd, pending, 0, 0, NULL, 0);
        if (ret < 0) {
            if (errno == EINTR)
                continue;
            return total ? total : -errno;
        }
        if (ret == 0)
            break;
        total += ret;
    }
    return total;
}

int uring_wait(struct uring *ring, long long timeout_ns)
{
    int ret;

    if (caio_has(&ring->features, CAIO_F_URING_EXT_ARG)) {
        struct __kernel_timespec ts = {
            .tv_sec = timeout_ns / 1000000000LL,
            .tv_nsec = timeout_ns % 1000000000LL,
        };
        struct io_uring_getevents_arg arg;
        memset(&arg, 0, sizeof(arg));
        arg.ts = (uint64_t)(uintptr_t)&ts;
        ret = sys_io_uring_enter(ring->fd, 0, 1,
                                 IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                                 &arg, sizeof(arg));
        return ret < 0 ? -errno : 0;
    }
    /* Before 5.11 there is no timeout for io_uring_enter: the ring fd is
     * readable when CQEs wait. (Whole milliseconds, rounded up.) */
    {
        struct pollfd pfd = {.fd = ring->fd, .events = POLLIN};
        ret = poll(&pfd, 1, (int)((timeout_ns + 999999) / 1000000));
        if (ret < 0)
            return -errno;
        return ret == 0 ? -ETIME : 0;
    }
}

int uring_flush_cq(struct uring *ring)
{
    int ret;

    do {
        ret = sys_io_uring_enter(ring->fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0);
    } while (ret < 0 && errno == EINTR);
    return ret < 0 ? -errno : 0;
}
