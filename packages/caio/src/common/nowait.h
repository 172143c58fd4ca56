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

/* 1 where caio_nowait_rw can finish requests (Linux with RWF_NOWAIT). */
extern const int caio_nowait_available;

enum caio_nowait {
    CAIO_NOWAIT_DONE,   /* *result is final: bytes moved, or -errno */
    CAIO_NOWAIT_SLOW,   /* the rest must go the slow way (ring, kernel AIO,
                           worker); *result bytes are already moved (a
                           prefix of the request) */
};

/* Try a read (is_write 0) or write without ever blocking, on the calling
 * thread. streams: also serve pipes, sockets and ttys (offset ignored);
 * otherwise they go the slow way. Never blocks; no GIL needed. */
enum caio_nowait caio_nowait_rw(int is_write, int fd, char *data, size_t nbytes,
                                int64_t offset, int streams, ssize_t *result);

#endif
