/* The page-cache fast path every C backend with one shares: a read or
 * write tried on the calling thread with preadv2/pwritev2(RWF_NOWAIT),
 * which copies cached data at once or fails instead of blocking. See
 * nowait.c for the kernel facts it depends on. No Python in here. */
#ifndef CAIO_NOWAIT_H
#define CAIO_NOWAIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Fast-path reads and writes at least this large copy with the GIL
 * released: the copy itself is the cost, other threads may run meanwhile.
 * Below it, releasing and taking the GIL back costs more than it saves.
 * (Requests larger than CAIO_NOWAIT_MAX, from caio/_limits.py, never take
 * the fast path: copying them would stall the event loop.) */
#define CAIO_NOWAIT_GIL_RELEASE (64 * 1024)

/* CAIO_PORTABLE: build the code path of other systems (to test it here).
 * _GNU_SOURCE (preadv2, RWF_NOWAIT): Python.h defines it, nowait.c too. */
#if defined(__linux__) && !defined(CAIO_PORTABLE)
#include <sys/uio.h>
#if defined(RWF_NOWAIT)
#define CAIO_HAVE_NOWAIT 1
#endif
#endif

/* 1 where caio_nowait_rw can finish requests (Linux with RWF_NOWAIT). */
extern const int caio_nowait_available;

enum caio_nowait {
    CAIO_NOWAIT_DONE,   /* *result is final: bytes moved, or -errno */
    CAIO_NOWAIT_SLOW,   /* the rest must go the slow way (ring, kernel AIO,
                           worker); *result bytes are already moved (a
                           prefix of the request) */
    CAIO_NOWAIT_UNSUPPORTED,    /* the same, nothing moved, because the file
                           has no non-blocking mode for this (EOPNOTSUPP:
                           buffered writes on ext4, procfs, FUSE) */
};

/* 1 if fd is open with O_DIRECT (asked only for aligned buffers). */
int caio_nowait_is_direct(int fd);

/* One descriptor's answer to a question asked of the kernel (is it
 * O_DIRECT, does it refuse RWF_NOWAIT writes), kept for the last
 * descriptor asked and asked again every CAIO_FD_MEMO_EVERY-th use: a
 * descriptor closed and reused, or changed by F_SETFL, meanwhile gets a
 * stale answer for a few uses. Only for answers where a wrong guess costs
 * time, not a result. */
#define CAIO_FD_MEMO_EVERY 64

typedef struct {
    int fd;         /* -1: none */
    int answer;
    unsigned uses;  /* since fd was first kept */
} caio_fd_memo;

static inline void caio_fd_memo_init(caio_fd_memo *m)
{
    m->fd = -1;
    m->answer = 0;
    m->uses = 0;
}

/* Whether m->answer is fd's, and need not be asked again for this use
 * (which it counts). */
static inline int caio_fd_memo_holds(caio_fd_memo *m, int fd)
{
    return fd == m->fd && ++m->uses % CAIO_FD_MEMO_EVERY != 0;
}

static inline void caio_fd_memo_keep(caio_fd_memo *m, int fd, int answer)
{
    if (fd != m->fd) {
        m->fd = fd;
        m->uses = 0;
    }
    m->answer = answer;
}

/* caio_nowait_is_direct(fd), the answer kept in *memo (NULL: asked each
 * time). */
static inline int caio_fd_is_direct(int fd, caio_fd_memo *memo)
{
    if (memo == NULL)
        return caio_nowait_is_direct(fd);
    if (!caio_fd_memo_holds(memo, fd))
        caio_fd_memo_keep(memo, fd, caio_nowait_is_direct(fd));
    return memo->answer;
}

/* 1 if a transfer of nbytes at data could be O_DIRECT I/O that a device
 * takes: its buffer is aligned. On an O_DIRECT descriptor an unaligned
 * buffer fails with EINVAL at once, without blocking (see nowait.c). */
static inline int caio_nowait_may_be_direct(const char *data, size_t nbytes)
{
    return ((uintptr_t)data & 511) == 0 && nbytes > 0;
}

/* The type bits (S_IFMT) of fd's file, and its size in *size unless size
 * is NULL; -errno if fd cannot be asked. Never fstat where statx works:
 * see nowait.c. */
int caio_file_type(int fd, long long *size);

/* After a first attempt that moved first bytes (< nbytes) or failed
 * (first < 0, errno set): the rest of caio_nowait_rw. */
enum caio_nowait caio_nowait_rest(int is_write, int fd, char *data, size_t nbytes,
                                  int64_t offset, int streams, ssize_t first,
                                  ssize_t *result);

/* Try a read (is_write 0) or write without ever blocking, on the calling
 * thread. streams: also serve pipes, sockets and ttys (offset ignored);
 * otherwise they go the slow way. Never blocks; no GIL needed. The first
 * system call is inline: a page-cache hit costs that call and no other.
 * direct: where the O_DIRECT answer for an aligned buffer is kept (NULL:
 * fcntl asked each time). Kept, a read into memory aligned on purpose
 * (aligned_buffer, mmap) costs one system call, not two: a cached 4 KiB
 * read 1.27 us, not 1.54 (docs/performance.md). */
static inline enum caio_nowait caio_nowait_rw(int is_write, int fd, char *data,
                                              size_t nbytes, int64_t offset,
                                              int streams, caio_fd_memo *direct,
                                              ssize_t *result)
{
#ifdef CAIO_HAVE_NOWAIT
    struct iovec iov = {data, nbytes};
    ssize_t n;

    if (caio_nowait_may_be_direct(data, nbytes) && caio_fd_is_direct(fd, direct)) {
        *result = 0;
        return CAIO_NOWAIT_SLOW;    /* O_DIRECT: see nowait.c */
    }
    n = is_write ? pwritev2(fd, &iov, 1, (off_t)offset, RWF_NOWAIT)
                 : preadv2(fd, &iov, 1, (off_t)offset, RWF_NOWAIT);
    if ((size_t)n == nbytes) {
        *result = n;
        return CAIO_NOWAIT_DONE;
    }
    return caio_nowait_rest(is_write, fd, data, nbytes, offset, streams, n, result);
#else
    (void)is_write; (void)fd; (void)data; (void)nbytes; (void)offset; (void)streams;
    (void)direct;
    *result = 0;
    return CAIO_NOWAIT_SLOW;
#endif
}

#endif
