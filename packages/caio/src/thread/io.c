/* System calls: what a worker does, and the non-blocking fast path.
 *
 * The fast path is what makes this backend quick on page-cache hits: a
 * preadv2(RWF_NOWAIT) copies cached data and returns at once, or fails with
 * EAGAIN when it would have to wait for the disk; only then does the request
 * go to a worker thread. Facts the code below depends on (Linux 6.x):
 *
 * - A short RWF_NOWAIT read is ambiguous: end of file, or the next page is
 *   not cached. A second RWF_NOWAIT read at the new offset tells them apart:
 *   0 is end of file, EAGAIN means "ask a worker for the rest".
 * - RWF_NOWAIT does NOT avoid blocking for O_DIRECT files: the read is
 *   submitted to the device and the call waits for it (measured: ~60 us per
 *   4 KiB on ext4/virtio, with the GIL held). So O_DIRECT descriptors
 *   (F_GETFL, one cheap system call; the flag can change at any time, so it
 *   is not cached) always go to the pool.
 * - Files that do not support RWF_NOWAIT fail with EOPNOTSUPP (procfs,
 *   sysfs, FUSE, NFS; buffered writes on ext4). Pipes and sockets support it
 *   with offset -1 ("current position", which they ignore): data already in
 *   a pipe is returned without a thread hop.
 * - Old kernels or libcs without preadv2: ENOSYS/EOPNOTSUPP. EINVAL could be
 *   an unknown flag on some kernels: the worker gets the final word.
 */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

/* CAIO_PORTABLE: build the code path of other systems (to test it here). */
#if defined(__linux__) && defined(RWF_NOWAIT) && !defined(CAIO_PORTABLE)
#define CAIO_HAVE_NOWAIT 1
#endif

const int caio_io_have_nowait =
#ifdef CAIO_HAVE_NOWAIT
    1;
#else
    0;
#endif

/* fdatasync is missing or is not declared on some systems (macOS). */
#if defined(__linux__) || (defined(_POSIX_SYNCHRONIZED_IO) && \
                           _POSIX_SYNCHRONIZED_IO > 0 && !defined(__APPLE__))
#define caio_fdatasync fdatasync
#else
#define caio_fdatasync fsync
#endif

/* A read or write on something that cannot seek. poll() first, together
 * with the stop fd and this worker's kick fd: the read itself cannot be
 * interrupted portably once it sleeps, but the wait before it can. (A race
 * remains: another reader can take the data between poll and read, and a
 * large write to a pipe can sleep halfway; close() then gives up on the
 * request after its timeout.) */
static ssize_t stream_io(const caio_req *req, caio_io_wake *wake)
{
    struct pollfd fds[3];
    ssize_t n;
    int is_read = req->opcode == CAIO_READ;
    int kick_fd = wake->open_kick(wake);

    for (;;) {
        if (atomic_load(wake->cancel)) {
            n = -ECANCELED;
            break;
        }
        if (req->nbytes > 0) {
            fds[0].fd = req->fd;
            fds[0].events = is_read ? POLLIN : POLLOUT;
            fds[1].fd = wake->stop_fd;
            fds[1].events = POLLIN;
            fds[2].fd = kick_fd;
            fds[2].events = POLLIN;
            fds[0].revents = fds[1].revents = fds[2].revents = 0;
            if (poll(fds, kick_fd >= 0 ? 3 : 2, -1) < 0) {
                if (errno == EINTR || errno == EAGAIN)
                    continue;
                n = -errno;
                break;
            }
            if (fds[1].revents) {
                n = -ECANCELED;
                break;
            }
            if (fds[2].revents)
                continue;       /* cancelled: the flag says so */
            if (fds[0].revents & POLLNVAL) {
                n = -EBADF;
                break;
            }
        }
        n = is_read ? read(req->fd, req->data, req->nbytes)
                    : write(req->fd, req->data, req->nbytes);
        if (n >= 0)
            break;
        /* EAGAIN: a non-blocking descriptor raced with another reader. */
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
            n = -errno;
            break;
        }
    }
    wake->close_kick(wake);
    return n;
}

ssize_t caio_io_blocking(const caio_req *req, caio_io_wake *wake)
{
    ssize_t n;

    switch (req->opcode) {
    case CAIO_READ:
        do
            n = pread(req->fd, req->data, req->nbytes, (off_t)req->offset);
        while (n < 0 && errno == EINTR);
        break;
    case CAIO_WRITE:
        do
            n = pwrite(req->fd, req->data, req->nbytes, (off_t)req->offset);
        while (n < 0 && errno == EINTR);
        break;
    case CAIO_FSYNC:
        do
            n = fsync(req->fd);
        while (n < 0 && errno == EINTR);
        break;
    case CAIO_FDSYNC:
        do
            n = caio_fdatasync(req->fd);
        while (n < 0 && errno == EINTR);
        break;
    default:
        return -EINVAL;
    }
    if (n < 0 && errno == ESPIPE &&
        (req->opcode == CAIO_READ || req->opcode == CAIO_WRITE))
        return stream_io(req, wake);
    return n < 0 ? -errno : n;
}

#ifdef CAIO_HAVE_NOWAIT
/* Errors that mean "cannot tell without blocking": a worker decides. */
static int worker_decides(int err)
{
    switch (err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case EOPNOTSUPP:
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
    case ENOTSUP:
#endif
    case ENOSYS:
    case EINVAL:
    case EINTR:
        return 1;
    default:
        return 0;
    }
}
#endif

enum caio_nowait caio_io_nowait(int opcode, int fd, char *data, size_t nbytes,
                                int64_t offset, ssize_t *result)
{
#ifdef CAIO_HAVE_NOWAIT
    struct iovec iov;
    size_t done = 0;
    int stream = 0, flags;
    ssize_t n;

    flags = fcntl(fd, F_GETFL);
    if (flags < 0) {
        *result = -errno;      /* EBADF: no need to bother a worker */
        return CAIO_NOWAIT_DONE;
    }
    if (flags & O_DIRECT) {
        *result = 0;
        return CAIO_NOWAIT_POOL;
    }
    for (;;) {
        /* Offset -1 is "the current position": only for files that
         * cannot seek, which ignore it. */
        off_t at = stream ? (off_t)-1 : (off_t)(offset + (int64_t)done);
        iov.iov_base = data + done;
        iov.iov_len = nbytes - done;
        if (opcode == CAIO_READ)
            n = preadv2(fd, &iov, 1, at, RWF_NOWAIT);
        else
            n = pwritev2(fd, &iov, 1, at, RWF_NOWAIT);
        if (n < 0) {
            int err = errno;
            if (err == ESPIPE && !stream && done == 0) {
                stream = 1;
                continue;
            }
            if (worker_decides(err)) {
                *result = (ssize_t)done;
                return CAIO_NOWAIT_POOL;
            }
            /* Like read(2): bytes already moved win over a later error
             * (which the next call will report). */
            *result = done > 0 ? (ssize_t)done : -err;
            return CAIO_NOWAIT_DONE;
        }
        done += (size_t)n;
        /* A pipe read returns what is there: that is the whole answer.
         * n == 0 on a file is end of file (when n == 0 and nothing was
         * asked, done == nbytes anyway). */
        if (done == nbytes || n == 0 || (stream && opcode == CAIO_READ)) {
            *result = (ssize_t)done;
            return CAIO_NOWAIT_DONE;
        }
        /* Short: ask again from where it stopped (see the top of file). */
    }
#else
    (void)opcode; (void)fd; (void)data; (void)nbytes; (void)offset;
    *result = 0;
    return CAIO_NOWAIT_POOL;
#endif
}
