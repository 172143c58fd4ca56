/* caio.linux_uring: submit now or batch, the eventfd kept quiet for
 * completions the submitting call reaps itself, and the short wait for a
 * lone miss. See context.c's top comment for the policy and
 * docs/internals.md for the measurements. */
#include "context.h"

#include <errno.h>
#include <sys/stat.h>

void uctx_note_inline(UringContext *self, int done)
{
    caio_batch_note(&self->batch, done, self->call_soon != NULL);
}

int uctx_schedule_flush(UringContext *self)
{
    return caio_batch_schedule(&self->batch, (PyObject *)self, self->call_soon);
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
void uctx_eventfd_quiet(UringContext *self)
{
    unsigned *flags = self->ring.cq.kflags;
    __atomic_store_n(flags, read_once(flags) | IORING_CQ_EVENTFD_DISABLED, __ATOMIC_RELAXED);
}

void uctx_eventfd_loud(UringContext *self)
{
    unsigned *flags = self->ring.cq.kflags;

    /* Release: our reap's reads of the CQ happen before the kernel may
     * signal again (and the eventfd write below is a full barrier). */
    __atomic_store_n(flags, read_once(flags) & ~IORING_CQ_EVENTFD_DISABLED,
                     __ATOMIC_RELEASE);
    if (self->n_inflight > 0 || self->cancels_pending > 0)
        uctx_signal(self);
}

/* Whether fd is a regular file or a block device: only a disk's answer
 * is worth waiting for (a pipe or a socket answers when someone writes to
 * it), and only a disk serves a queue kept full better than one filled in
 * bursts (submit_async's early submission). One statx per descriptor
 * (caio_file_type: not fstat, see nowait.c), remembered for descriptors
 * below URING_FD_KINDS, else for the last one asked. A descriptor closed
 * and reused for another kind of file only misleads this guess, for the
 * life of the context: a wait in vain at worst (bounded, and given up
 * when most waits fail), or none; submissions in groups of
 * URING_DISK_BATCH, or once per iteration. Never a wrong result. */
int uctx_on_disk(UringContext *self, int fd)
{
    int type;

    if (fd >= 0 && fd < URING_FD_KINDS && self->fd_kind[fd] != 0)
        return self->fd_kind[fd] == 1;
    if (fd == self->lone_fd)
        return self->lone_fd_disk;
    type = caio_file_type(fd, NULL);
    /* A descriptor that cannot be asked: as a file (the request reports
     * what is wrong with it). */
    self->lone_fd = fd;
    self->lone_fd_disk = type < 0 || S_ISREG(type) || S_ISBLK(type);
    if (fd >= 0 && fd < URING_FD_KINDS)
        self->fd_kind[fd] = self->lone_fd_disk ? 1 : 2;
    return self->lone_fd_disk;
}

/* Whether the loop has nothing else to run (the adapter's check): a read
 * completed in the call does not yield, so waiting while other tasks are
 * ready would run this one's reads, one at a time, ahead of all of them.
 * A failing check counts as "not idle" (and is reported). */
static int loop_idle(UringContext *self, unsigned inflight)
{
    int idle = caio_loop_idle(self->idle_check, (PyObject *)self);

    /* The check is Python code: it may have closed us, or moved requests. */
    return idle && !self->closed && self->n_inflight == inflight && self->wait_head == NULL &&
           self->cancels_pending == 0;
}

/* The short wait for a lone miss.
 *
 * One read at a time from a cold file: the kernel starts the disk read
 * inside our io_uring_enter (or the preadv2(RWF_NOWAIT) before it) and
 * answers later. Going back to the loop for it costs a future, a sleep in
 * epoll_wait, the task work, an eventfd wake-up and a loop iteration: on
 * a fast disk (tens of microseconds) that is a third more than the read.
 * When nothing else is in flight on this context, wait for the CQE here
 * instead, for at most CAIO_LONE_WAIT_NS, the GIL released: the read is
 * then done when the call returns, as a synchronous read would be, and the
 * loop is held no longer than a kernel AIO buffered read holds it (all of
 * the disk's latency). On a slower disk the wait fails; after a few
 * failures it is tried on every CAIO_LONE_PROBE_EVERY-th lone miss only,
 * so a slow disk costs the loop CAIO_LONE_WAIT_NS per
 * CAIO_LONE_PROBE_EVERY reads (common/batch.h). Reads only: a write that
 * misses is a throttled or synchronous one, whose latency is the file
 * system's, not the disk's. Files on a disk only:
 * pipes and sockets answer when their writer writes, if ever.
 *
 * Several requests in flight never wait: the loop has work to overlap.
 * Nor does one while the loop has other tasks or callbacks ready, or
 * descriptors ready but ours, or a timer due (the adapter's idle check,
 * loop_idle()): the read completed in the call does not yield, and other
 * tasks would wait for all of this task's reads. Without a check (a bare
 * Context, Trio, other loops) there is no wait. */
void uctx_wait_lone(UringContext *self, caio_req *req)
{
    int done;

    if (self->n_inflight != 1 || self->cancels_pending != 0 || self->wait_head != NULL ||
        self->sqpoll || !caio_has(&self->ring.features, CAIO_F_URING_EXT_ARG))
        return;
    if (self->idle_check == NULL || !uctx_on_disk(self, req->fd))
        return;
    if (!caio_lone_try(&self->lone))
        return;
    if (!loop_idle(self, 1))
        return;
    uctx_wait_nogil(self, CAIO_LONE_WAIT_NS);
    uctx_reap(self, 0);
    done = req->state == CAIO_REQ_DONE;
    caio_lone_note(&self->lone, done);
}

/* A lone buffered write, made here.
 *
 * io_uring first tries a write with IOCB_NOWAIT, and file systems without
 * non-blocking buffered writes (ext4, tmpfs: most of them before Linux
 * 6.x's XFS and btrfs) refuse it: the kernel hands every such write to an
 * io-wq worker. Alone in flight, a 4 KiB write to the page cache then
 * costs two cross-CPU wake-ups (the worker's, then the loop's through the
 * eventfd): ~60 us, against ~2 us for pwrite (Linux 6.18, ext4, 2 vCPUs).
 * Kernel AIO, caio 0.12's default, made such writes inside io_submit.
 *
 * So a write alone on this context (nothing in flight or waiting, which
 * also keeps writes in order) goes to pwrite on this thread, the GIL
 * released, when the loop has nothing else to run (the adapter's idle
 * check, as for the lone read's wait): holding the loop then delays no
 * ready task. Writes that find other requests in flight go to the ring,
 * where they overlap with the loop's work. A write can block here: a
 * partial page not cached is read first, the dirty-page throttle sleeps.
 * One that took longer than CAIO_LONE_WAIT_NS counts as failed; once most
 * fail (writeback under way), only every CAIO_LONE_PROBE_EVERY-th lone
 * write is made here, and the ring takes the rest without holding the
 * loop. Returns 1 with req->result set, or 0: the ring's turn. */
int uctx_write_here(UringContext *self, caio_req *req)
{
    ssize_t n;

    if ((req->opcode != CAIO_WRITE && req->opcode != CAIO_WRITEV) ||
        req->nbytes > CAIO_NOWAIT_MAX || req->offset < 0 ||
        self->n_inflight != 0 || self->wait_head != NULL || self->cancels_pending != 0 ||
        self->idle_check == NULL || !uctx_on_disk(self, req->fd) ||
        !caio_req_may_write_here(req, &self->direct) || !caio_lone_try(&self->lone_write) ||
        !loop_idle(self, 0))
        return 0;
    if ((n = caio_lone_write(&self->lone_write, req, &self->nogil)) == -ESPIPE)
        return 0;   /* the descriptor now names a stream */
    req->result = n;
    return 1;
}
