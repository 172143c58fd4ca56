/* The page-cache fast path (see nowait.h).
 *
 * A read of cached data is a memory copy; handing it to a worker thread or
 * through io_uring costs more than the copy (through the ring, a 4 KiB
 * cached read costs the kernel about 0.5 us more than a plain pread,
 * measured with perf on Linux 6.18: request allocation, prep, issue, CQE
 * posting). preadv2(RWF_NOWAIT) returns the data when every page is cached
 * and fails with EAGAIN instead of blocking otherwise, so trying it first
 * costs one cheap system call on a miss and saves the slow path on a hit.
 * Facts the code below depends on (Linux 6.x):
 *
 * - A short RWF_NOWAIT read is ambiguous: end of file, or the next page is
 *   not cached. A second RWF_NOWAIT read at the new offset tells them apart:
 *   0 is end of file, EAGAIN means "the slow path does the rest".
 * - RWF_NOWAIT does NOT keep an O_DIRECT read from waiting for the disk:
 *   it is submitted to the device and the call waits (~60 us per 4 KiB on
 *   ext4/virtio, with the GIL held). Block devices want a 512-byte aligned
 *   buffer for direct I/O, so with a buffer that is not (31 in 32 bytes
 *   objects: their data sits 32 bytes into a 16-byte aligned allocation)
 *   an O_DIRECT descriptor fails with EINVAL and the request goes the slow
 *   way. Only for an aligned buffer is fcntl(F_GETFL) asked whether the
 *   descriptor is O_DIRECT, which spares the other 31 in 32 that system
 *   call, and the backends keep its answer for the last descriptor
 *   (caio_fd_memo, asked again every 64th time): F_SETFL or a reused
 *   descriptor number can make it stale for a few reads, which then cost
 *   time (a direct read made here, waiting for the disk; a cached one sent
 *   the slow way), never a wrong result. (A device that
 *   accepts smaller alignment, some NVMe, would do an unaligned direct read
 *   here synchronously: correct, but on the calling thread.)
 * - Files that do not support RWF_NOWAIT fail with EOPNOTSUPP (procfs,
 *   sysfs, FUSE, NFS; buffered writes on ext4). Pipes and sockets support
 *   it with offset -1 ("current position", which they ignore): data already
 *   in a pipe is returned at once.
 * - Old kernels or libcs without preadv2: ENOSYS/EOPNOTSUPP. EINVAL could be
 *   an unknown flag on some kernels: the slow path gets the final word. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* preadv2, pwritev2, RWF_NOWAIT (Python.h is not included) */
#endif
#include "nowait.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <linux/stat.h>
#endif

#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif

const int caio_nowait_available =
#ifdef CAIO_HAVE_NOWAIT
    1;
#else
    0;
#endif

#ifdef CAIO_HAVE_NOWAIT
/* Errors that mean "cannot tell without blocking": the slow path decides. */
static int slow_path_decides(int err)
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

int caio_nowait_is_direct(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    /* A bad descriptor is not: the read itself reports EBADF. */
    return flags >= 0 && (flags & O_DIRECT) != 0;
}

/* statx asking for the type and size alone, not fstat: since Linux 6.13
 * (multigrain timestamps) a stat that reports mtime/ctime marks them as
 * seen, and the next write must stamp the inode with a fresh fine-grained
 * time, dirtying it in the journal. With one fstat per write a 4 KiB
 * buffered write to ext4 took twice as long (pwrite loop 3.2 -> 7 us
 * measured on 6.18). fstat only where statx is missing (ENOSYS, or EPERM
 * from a seccomp filter) or answers without these fields. */
int caio_file_type(int fd, long long *size)
{
    struct stat st;

#ifdef SYS_statx
    struct statx stx;

    if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, &stx) == 0) {
        if ((stx.stx_mask & (STATX_TYPE | STATX_SIZE)) == (STATX_TYPE | STATX_SIZE)) {
            if (size != NULL)
                *size = (long long)stx.stx_size;
            return stx.stx_mode & S_IFMT;
        }
    } else if (errno != ENOSYS && errno != EPERM) {
        return -errno;
    }
#endif
    if (fstat(fd, &st) < 0)
        return -errno;
    if (size != NULL)
        *size = (long long)st.st_size;
    return (int)(st.st_mode & S_IFMT);
}

enum caio_nowait caio_nowait_rest(int is_write, int fd, char *data, size_t nbytes,
                                  int64_t offset, int streams, ssize_t first,
                                  ssize_t *result)
{
#ifdef CAIO_HAVE_NOWAIT
    struct iovec iov;
    size_t done = 0;
    int stream = 0;
    ssize_t n = first;

    for (;;) {
        if (n < 0) {
            int err = errno;
            if (err == ESPIPE && streams && !stream && done == 0) {
                stream = 1;
                goto again;
            }
            if (err == ESPIPE || slow_path_decides(err)) {
                *result = (ssize_t)done;
                return done == 0 && (err == EOPNOTSUPP || err == ENOTSUP)
                    ? CAIO_NOWAIT_UNSUPPORTED : CAIO_NOWAIT_SLOW;
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
        if (done == nbytes || n == 0 || (stream && !is_write)) {
            *result = (ssize_t)done;
            return CAIO_NOWAIT_DONE;
        }
        /* Short: ask again from where it stopped (see the top of file). */
again:
        /* Offset -1 is "the current position": only for files that
         * cannot seek, which ignore it. */
        iov.iov_base = data + done;
        iov.iov_len = nbytes - done;
        if (is_write)
            n = pwritev2(fd, &iov, 1, stream ? (off_t)-1 : (off_t)(offset + (int64_t)done),
                         RWF_NOWAIT);
        else
            n = preadv2(fd, &iov, 1, stream ? (off_t)-1 : (off_t)(offset + (int64_t)done),
                        RWF_NOWAIT);
    }
#else
    (void)is_write; (void)fd; (void)data; (void)nbytes; (void)offset; (void)streams;
    (void)first;
    *result = 0;
    return CAIO_NOWAIT_SLOW;
#endif
}
