/* Kernel AIO context setup and teardown, and the raw system calls.
 *
 * glibc has no wrappers for the AIO system calls (libaio is a separate
 * library we do not use), so they go through syscall(2). */
#include "context.h"
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

static void setup_error(int err, unsigned nr)
{
    switch (err) {
    case EAGAIN:
        PyErr_Format(PyExc_OSError,
                     "io_setup(%u): the system-wide limit of kernel AIO requests "
                     "(sysctl fs.aio-max-nr, in use: fs.aio-nr) would be exceeded; "
                     "close unused contexts, lower max_requests or raise fs.aio-max-nr",
                     nr);
        break;
    case ENOSYS:
    case EPERM:
        PyErr_Format(PyExc_OSError,
                     "io_setup: kernel AIO is not available here (%s): the kernel "
                     "lacks CONFIG_AIO or a seccomp policy blocks it",
                     strerror(err));
        break;
    default:
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
    }
}

int aio_ctx_open(AioContext *ctx, unsigned nr, int userspace_reap)
{
    aio_context_t aio = 0;
    int err;

    ctx->efd = caio_eventfd_open();
    if (ctx->efd < 0) {
        caio_oserror(-ctx->efd);
        ctx->efd = -1;
        return -1;
    }
    if (aio_sys_setup(nr, &aio) < 0) {
        err = errno;
        close(ctx->efd);
        ctx->efd = -1;
        setup_error(err, nr);
        return -1;
    }
    ctx->aio = aio;
    ctx->ring = userspace_reap ? ring_check(aio) : NULL;
    return 0;
}

int aio_ctx_destroy(AioContext *ctx)
{
    long r = 0;
    int err = 0;

    if (ctx->aio != 0) {
        /* Waits for every request still in flight (uninterruptibly): the
         * kernel must be done with our buffers before we free them. */
        Py_BEGIN_ALLOW_THREADS
        r = aio_sys_destroy(ctx->aio);
        if (r < 0)
            err = errno;
        Py_END_ALLOW_THREADS
        ctx->aio = 0;
        ctx->ring = NULL;   /* io_destroy unmapped it */
    }
    if (ctx->efd >= 0) {
        close(ctx->efd);
        ctx->efd = -1;
    }
    return err;
}
