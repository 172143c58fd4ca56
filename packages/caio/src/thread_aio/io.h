/* The system calls of the thread backend. */
#ifndef CAIO_THREAD_IO_H
#define CAIO_THREAD_IO_H

#include "caio.h"

#include <stdatomic.h>

/* What can interrupt a worker's wait on a pipe, socket or tty. */
typedef struct caio_io_wake {
    int stop_fd;                /* readable once the pool stops */
    atomic_int *cancel;         /* set to cancel the running request */
    /* A descriptor a canceller makes readable (after setting *cancel),
     * for the time of one wait: -1 if none could be made (then only
     * close() can interrupt). Made on demand: most requests never wait. */
    int (*open_kick)(struct caio_io_wake *wake);
    void (*close_kick)(struct caio_io_wake *wake);
    void *worker;
} caio_io_wake;

/* Do the request, blocking (a worker, GIL not held). Returns bytes moved or
 * -errno. On a file that cannot seek (pipe, socket, tty) the offset is
 * ignored and the thread waits in poll() on the file and on the wake fds,
 * so close() or a cancellation can interrupt a read that would wait
 * forever (-ECANCELED). */
ssize_t caio_io_blocking(const caio_req *req, caio_io_wake *wake);

#endif
