/* System calls: what a worker does. (The non-blocking fast path that
 * serves page-cache hits on the calling thread is common/nowait.c.) */
#include "io.h"
#include "fsops.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

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
/* A descriptor open for the other direction only (a pipe's write end for a
 * read): poll() would wait for ever, read(2) answers EBADF at once. */
static int wrong_direction(int fd, int is_read)
{
    int mode = fcntl(fd, F_GETFL);

    if (mode < 0)
        return 0;       /* the call itself reports the error */
    mode &= O_ACCMODE;
    return is_read ? mode == O_WRONLY : mode == O_RDONLY;
}

static ssize_t stream_io(const caio_req *req, caio_io_wake *wake)
{
    struct pollfd fds[3];
    ssize_t n;
    int is_read = caio_opcode_reads(req->opcode);
    int vectored = caio_opcode_vectored(req->opcode);
    int kick_fd;

    if (wrong_direction(req->fd, is_read))
        return -EBADF;
    kick_fd = wake->open_kick(wake);

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
        if (vectored)
            n = is_read ? readv(req->fd, req->vec->iov, (int)req->vec->count)
                        : writev(req->fd, req->vec->iov, (int)req->vec->count);
        else
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
    case CAIO_READINTO:     /* req->data is the caller's buffer: no copy */
        do
            n = pread(req->fd, req->data, req->nbytes, (off_t)req->offset);
        while (n < 0 && errno == EINTR);
        break;
    case CAIO_READV:
        do
            n = preadv(req->fd, req->vec->iov, (int)req->vec->count, (off_t)req->offset);
        while (n < 0 && errno == EINTR);
        break;
    case CAIO_WRITEV:
        do
            n = pwritev(req->fd, req->vec->iov, (int)req->vec->count, (off_t)req->offset);
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
        /* Not a case: the switch of reads and writes stays as it was. */
        return req->opcode == CAIO_FS ? caio_fs_syscall(req) : -EINVAL;
    }
    if (n < 0 && errno == ESPIPE && req->opcode != CAIO_FSYNC && req->opcode != CAIO_FDSYNC)
        return stream_io(req, wake);
    return n < 0 ? -errno : n;
}
