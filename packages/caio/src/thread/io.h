/* The system calls of the thread backend. */
#ifndef CAIO_THREAD_IO_H
#define CAIO_THREAD_IO_H

#include "caio.h"

/* Do the request, blocking (a worker, GIL not held). Returns bytes moved or
 * -errno. On a file that cannot seek (pipe, socket, tty) the offset is
 * ignored and the thread waits in poll() on the file and on stop_fd, so
 * close() can interrupt a read that would wait forever (-ECANCELED). */
ssize_t caio_io_blocking(const caio_req *req, int stop_fd);

/* 1 where caio_io_nowait can finish requests (Linux with RWF_NOWAIT). */
extern const int caio_io_have_nowait;

enum caio_nowait {
    CAIO_NOWAIT_DONE,   /* *result is final: bytes moved, or -errno */
    CAIO_NOWAIT_POOL,   /* the rest must go to a worker; *result bytes are
                           already moved (a prefix of the request) */
};

/* Try a read or write without ever blocking (preadv2/pwritev2 with
 * RWF_NOWAIT), on the calling thread. Where that does not exist, returns
 * CAIO_NOWAIT_POOL with nothing moved. */
enum caio_nowait caio_io_nowait(int opcode, int fd, char *data, size_t nbytes,
                                int64_t offset, ssize_t *result);

#endif
