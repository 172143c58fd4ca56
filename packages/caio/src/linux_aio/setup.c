/* Kernel AIO context setup and teardown, and the raw system calls. No
 * Python here: errors are returned as -errno (context.c words them).
 *
 * glibc has no wrappers for the AIO system calls (libaio is a separate
 * library we do not use), so they go through syscall(2). */
#include "aio.h"
#include <errno.h>
#include "notify.h"
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
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

/* ---- io_destroy off the caller's thread ----------------------------------- */

/* io_destroy of an idle context still waits for an RCU grace period
 * (about 30 ms measured on 6.x kernels): on the event loop's thread that
 * is 30 ms of stalled loop per closed context. With nothing in flight the
 * kernel owns none of our memory, so the wait can happen elsewhere. At
 * most this many such helper threads at once, so that contexts closed in
 * a loop cannot pile up threads or kernel AIO slots (fs.aio-nr is only
 * released when io_destroy returns); beyond, the caller waits itself. */
#define AIO_DESTROY_HELPERS_MAX 16

static unsigned destroy_helpers;

/* Its name shows in top -H and /proc/<pid>/task/<tid>/comm: the thread
 * outlives close() by a grace period, and whoever counts threads (a test,
 * a leak hunt) can tell it apart from a leak. */
#define AIO_DESTROY_HELPER_NAME "caio-aio-close"

static void *destroy_helper(void *arg)
{
    prctl(PR_SET_NAME, AIO_DESTROY_HELPER_NAME, 0, 0, 0);
    aio_sys_destroy((aio_context_t)(uintptr_t)arg);
    __atomic_sub_fetch(&destroy_helpers, 1, __ATOMIC_RELAXED);
    return NULL;
}

int aio_destroy_in_background(aio_context_t aio)
{
    pthread_attr_t attr;
    pthread_t thread;
    sigset_t all, old;
    int err;

    if (__atomic_add_fetch(&destroy_helpers, 1, __ATOMIC_RELAXED) > AIO_DESTROY_HELPERS_MAX)
        goto refused;
    if (pthread_attr_init(&attr) != 0)
        goto refused;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    /* The helper takes no signal: they belong to the interpreter's threads. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(&thread, &attr, destroy_helper, (void *)(uintptr_t)aio);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err == 0)
        return 0;
refused:
    __atomic_sub_fetch(&destroy_helpers, 1, __ATOMIC_RELAXED);
    return -1;
}
