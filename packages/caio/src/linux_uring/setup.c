/* Ring setup and teardown, eventfd registration, probing.
 *
 * The ring is three shared mappings of the ring fd: the SQ ring (head,
 * tail, flags, index array), the CQ ring (head, tail, CQEs) and the SQE
 * array. Since Linux 5.4 (IORING_FEAT_SINGLE_MMAP) the SQ and CQ rings are
 * one mapping; older kernels need two. */
#include "uring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Setup flags worth having, best first; each attempt drops what an older
 * kernel refused with EINVAL.
 * - SUBMIT_ALL (5.18): a bad SQE does not stop the rest of a batch.
 * - COOP_TASKRUN (5.19): a completion does not interrupt the thread with
 *   an IPI while it runs user code; the completion is posted at its next
 *   system call or sleep instead. The loop thread makes those all the time
 *   (epoll_wait, our eventfd read), and a thread blocked in an
 *   interruptible sleep is still woken.
 * Not used: SINGLE_ISSUER / DEFER_TASKRUN. They bind the ring to the
 * thread that created it, but a context may be created in one thread and
 * used (or closed, by the garbage collector) in another. */
static const unsigned normal_flags[] = {
    IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
    IORING_SETUP_SUBMIT_ALL,
    0,
};

static const unsigned sqpoll_flags[] = {
    IORING_SETUP_SQPOLL | IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_SQPOLL,
};

/* How long the SQPOLL thread spins for work before it sleeps (ms). */
#define SQPOLL_IDLE_MS 100

/* ring->features must be known: without SINGLE_MMAP (before 5.4, or
 * hidden by the test switch) the CQ ring gets its own mapping. */
static int map_rings(struct uring *ring, const struct io_uring_params *p)
{
    size_t sq_len = p->sq_off.array + p->sq_entries * sizeof(unsigned);
    size_t cq_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
    int single = caio_has(&ring->features, CAIO_F_URING_SINGLE_MMAP);
    char *sq, *cq;

    if (single) {
        if (cq_len > sq_len)
            sq_len = cq_len;
        cq_len = sq_len;
    }
    sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
              ring->fd, IORING_OFF_SQ_RING);
    if (sq == MAP_FAILED)
        return -errno;
    ring->sq_map = sq;
    ring->sq_map_len = sq_len;
    if (single) {
        cq = sq;
    } else {
        cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                  ring->fd, IORING_OFF_CQ_RING);
        if (cq == MAP_FAILED)
            return -errno;
        ring->cq_map = cq;
        ring->cq_map_len = cq_len;
    }
    ring->sqe_map_len = p->sq_entries * sizeof(struct io_uring_sqe);
    ring->sqe_map = mmap(NULL, ring->sqe_map_len, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_POPULATE, ring->fd, IORING_OFF_SQES);
    if (ring->sqe_map == MAP_FAILED) {
        ring->sqe_map = NULL;
        return -errno;
    }

    ring->sq.khead = (unsigned *)(sq + p->sq_off.head);
    ring->sq.ktail = (unsigned *)(sq + p->sq_off.tail);
    ring->sq.kflags = (unsigned *)(sq + p->sq_off.flags);
    ring->sq.array = (unsigned *)(sq + p->sq_off.array);
    ring->sq.mask = *(unsigned *)(sq + p->sq_off.ring_mask);
    ring->sq.entries = *(unsigned *)(sq + p->sq_off.ring_entries);
    ring->sq.sqes = ring->sqe_map;
    ring->sq.tail = *ring->sq.ktail;

    ring->cq.khead = (unsigned *)(cq + p->cq_off.head);
    ring->cq.ktail = (unsigned *)(cq + p->cq_off.tail);
    ring->cq.kflags = p->cq_off.flags ? (unsigned *)(cq + p->cq_off.flags) : NULL;
    ring->cq.koverflow = (unsigned *)(cq + p->cq_off.overflow);
    ring->cq.cqes = (struct io_uring_cqe *)(cq + p->cq_off.cqes);
    ring->cq.mask = *(unsigned *)(cq + p->cq_off.ring_mask);
    ring->cq.entries = *(unsigned *)(cq + p->cq_off.ring_entries);

    /* SQE i always sits in slot i: the index array is the identity. */
    for (unsigned i = 0; i < ring->sq.entries; i++)
        ring->sq.array[i] = i;
    return 0;
}

static int try_setup(struct uring *ring, unsigned entries, unsigned flags,
                     struct io_uring_params *p)
{
    int fd;

    memset(p, 0, sizeof(*p));
    /* CQ twice the SQ: requests in flight (<= SQ size) plus one cancel
     * request each always fit, so the CQ cannot overflow. CLAMP: a huge
     * max_requests gets the kernel's maximum rather than EINVAL. */
    p->flags = flags | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    p->cq_entries = entries * 2;
    if (flags & IORING_SETUP_SQPOLL)
        p->sq_thread_idle = SQPOLL_IDLE_MS;
    fd = sys_io_uring_setup(entries, p);
    if (fd < 0)
        return -errno;
    ring->fd = fd;
    ring->setup_flags = p->flags;
    return 0;
}

int uring_init(struct uring *ring, unsigned entries, int sqpoll)
{
    struct io_uring_params p;
    unsigned allowed = uring_allowed_setup_flags();
    int err = -EINVAL;
    size_t i;

    memset(ring, 0, sizeof(*ring));
    ring->fd = -1;
    if (entries == 0)
        entries = 1;
    if (entries > (1U << 15))
        entries = 1U << 15;    /* IORING_MAX_ENTRIES */

    if (caio_kernel_lacks(CAIO_F_URING))
        return -ENOSYS;     /* as under a seccomp filter */
    if (sqpoll) {
        /* Refusals to expect: EPERM (before 5.11 SQPOLL needs
         * CAP_SYS_ADMIN), EINVAL (unknown flag), ENOMEM/EAGAIN (no thread). */
        for (i = 0; i < sizeof(sqpoll_flags) / sizeof(*sqpoll_flags); i++) {
            if (sqpoll_flags[i] & ~allowed)
                continue;   /* hidden by the test switch: as if refused */
            err = try_setup(ring, entries, sqpoll_flags[i], &p);
            if (err == 0)
                break;
        }
    }
    if (!sqpoll || err != 0) {
        for (i = 0; i < sizeof(normal_flags) / sizeof(*normal_flags); i++) {
            if (normal_flags[i] & ~allowed)
                continue;
            err = try_setup(ring, entries, normal_flags[i], &p);
            if (err != -EINVAL)
                break;
        }
    }
    if (err != 0) {
        ring->fd = -1;
        return err;
    }
    /* The ring works without the probe's answers (fs opcodes unknown):
     * only the import-time check (uring_check_usable) insists on them. */
    (void)uring_discover(ring, p.features);
    err = map_rings(ring, &p);
    if (err != 0) {
        uring_exit(ring);
        return err;
    }
    return 0;
}

void uring_exit(struct uring *ring)
{
    if (ring->sqe_map != NULL)
        munmap(ring->sqe_map, ring->sqe_map_len);
    if (ring->cq_map != NULL)
        munmap(ring->cq_map, ring->cq_map_len);
    if (ring->sq_map != NULL)
        munmap(ring->sq_map, ring->sq_map_len);
    if (ring->fd >= 0)
        close(ring->fd);
    memset(ring, 0, sizeof(*ring));
    ring->fd = -1;
}

int uring_register_eventfd(struct uring *ring, int efd)
{
    /* Plain IORING_REGISTER_EVENTFD, not the _ASYNC variant: _ASYNC only
     * signals completions posted by io-wq workers, so a pipe read that
     * completes through poll + task work would never wake the loop. */
    if (sys_io_uring_register(ring->fd, IORING_REGISTER_EVENTFD, &efd, 1) < 0)
        return -errno;
    return 0;
}

int uring_check_usable(const char **stage)
{
    struct io_uring_params p;
    struct uring ring;
    int err;

    memset(&ring, 0, sizeof(ring));
    ring.fd = -1;
    /* A bare setup first: its errno is what tells seccomp (ENOSYS/EPERM)
     * and the io_uring_disabled sysctl (EPERM) apart from the rest. */
    *stage = "io_uring_setup";
    if (caio_kernel_lacks(CAIO_F_URING))
        return -ENOSYS;     /* as under a seccomp filter */
    memset(&p, 0, sizeof(p));
    err = sys_io_uring_setup(2, &p);
    if (err < 0)
        return -errno;
    ring.fd = err;
    err = uring_discover(&ring, p.features);
    if (err != 0 && err != -EINVAL) {
        *stage = "IORING_REGISTER_PROBE";
    } else if ((err = uring_lacks_required(&ring, stage)) == 0) {
        err = map_rings(&ring, &p);
        if (err != 0)
            *stage = "mmap";
    }
    uring_exit(&ring);
    return err;
}

/* ---- why io_uring is unusable -------------------------------------------- */

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

void uring_unusable_reason(int err, const char *stage, char *msg, size_t size)
{
    static const char fallback[] = "; or use another backend (CAIO_IMPL=linux)";
    int sysctl = read_io_uring_disabled();

    if (strcmp(stage, "io_uring_setup") == 0 && err == -EPERM && sysctl == 2) {
        snprintf(msg, size,
                 "io_uring is disabled by the kernel.io_uring_disabled sysctl (= 2); "
                 "set it to 0 (sysctl -w kernel.io_uring_disabled=0)%s", fallback);
    } else if (strcmp(stage, "io_uring_setup") == 0 && err == -EPERM && sysctl == 1) {
        snprintf(msg, size,
                 "io_uring is restricted by the kernel.io_uring_disabled sysctl (= 1) "
                 "to CAP_SYS_ADMIN and the group in kernel.io_uring_group; add this "
                 "user to that group or set the sysctl to 0%s", fallback);
    } else if (strcmp(stage, "io_uring_setup") == 0 && err == -EPERM) {
        snprintf(msg, size,
                 "io_uring_setup is blocked (EPERM), e.g. by a seccomp profile in a "
                 "container; allow io_uring_setup, io_uring_enter and "
                 "io_uring_register in the profile (docker/podman: "
                 "--security-opt seccomp=...)%s", fallback);
    } else if (strcmp(stage, "io_uring_setup") == 0 && err == -ENOSYS) {
        snprintf(msg, size,
                 "io_uring_setup is blocked (ENOSYS): a seccomp profile denies it, "
                 "as container runtimes' default profiles do, or the kernel is built "
                 "without io_uring (CONFIG_IO_URING); allow io_uring_setup, "
                 "io_uring_enter and io_uring_register in the profile%s", fallback);
    } else if (strcmp(stage, "io_uring_setup") == 0 && err == -ENOMEM) {
        snprintf(msg, size,
                 "io_uring_setup failed with ENOMEM: before Linux 5.12 rings count "
                 "against RLIMIT_MEMLOCK; raise it (ulimit -l)%s", fallback);
    } else if (err == -EOPNOTSUPP ||
               (err == -EINVAL && strcmp(stage, "IORING_REGISTER_PROBE") == 0)) {
        snprintf(msg, size,
                 "this kernel's io_uring lacks %s (Linux 5.6 or later is needed)%s",
                 stage, fallback);
    } else {
        snprintf(msg, size, "io_uring is unusable here: %s failed: %s%s",
                 stage, strerror(-err), fallback);
    }
    if (*caio_kernel_mask_note()) {
        size_t used = strlen(msg);
        snprintf(msg + used, size - used, " [simulated: %s]", caio_kernel_mask_note());
    }
}

