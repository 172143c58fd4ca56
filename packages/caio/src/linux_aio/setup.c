/* Kernel AIO context setup and teardown, and the raw system calls. No
 * Python here: errors are returned as -errno (context.c words them).
 *
 * glibc has no wrappers for the AIO system calls (libaio is a separate
 * library we do not use), so they go through syscall(2). */
#include "aio.h"
#include <errno.h>
#include "notify.h"
#include <sys/syscall.h>
#include <unistd.h>

long aio_sys_setup(unsigned nr, aio_context_t *ctx)
{
    return syscall(__NR_io_setup, nr, ctx);
}

long aio_sys_destroy(aio_context_t ctx)
{
    return syscall(__NR_io_destroy, ctx);
}

long aio_sys_submit(aio_context_t ctx, long nr, struct iocb **iocbs)
{
    return syscall(__NR_io_submit, ctx, nr, iocbs);
}

long aio_sys_getevents(aio_context_t ctx, long min_nr, long nr,
                       struct io_event *events, struct timespec *timeout)
{
    return syscall(__NR_io_getevents, ctx, min_nr, nr, events, timeout);
}

long aio_sys_cancel(aio_context_t ctx, struct iocb *iocb, struct io_event *result)
{
    return syscall(__NR_io_cancel, ctx, iocb, result);
}

/* The ring is usable from user space only if it looks exactly like the
 * layout we know (see aio.h). */
static struct aio_ring_header *ring_check(aio_context_t aio)
{
    struct aio_ring_header *ring = (struct aio_ring_header *)(uintptr_t)aio;

    if (ring == NULL || ring->magic != AIO_RING_MAGIC ||
        ring->incompat_features != 0 ||
        ring->header_length != sizeof(struct aio_ring_header) ||
        ring->nr == 0 || ring->head >= ring->nr || ring->tail >= ring->nr)
        return NULL;
    return ring;
}

int aio_setup_context(unsigned nr, int userspace_reap, aio_context_t *out,
                      struct aio_ring_header **ring, int *efd)
{
    aio_context_t aio = 0;
    int err;

    *efd = caio_eventfd_open();
    if (*efd < 0) {
        err = *efd;
        *efd = -1;
        return err;
    }
    if (aio_sys_setup(nr, &aio) < 0) {
        err = -errno;
        close(*efd);
        *efd = -1;
        return err;
    }
    *out = aio;
    *ring = userspace_reap ? ring_check(aio) : NULL;
    return 0;
}

int aio_destroy_context(aio_context_t *aio, struct aio_ring_header **ring, int *efd)
{
    int err = 0;

    if (*aio != 0) {
        /* Waits for every request still in flight (uninterruptibly): the
         * kernel must be done with our buffers before we free them. */
        if (aio_sys_destroy(*aio) < 0)
            err = errno;
        *aio = 0;
        *ring = NULL;   /* io_destroy unmapped it */
    }
    if (*efd >= 0) {
        close(*efd);
        *efd = -1;
    }
    return err;
}
