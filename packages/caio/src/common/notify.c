/* Wake-up descriptors: see notify.h. */
#include "notify.h"
#include "kernel_features.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

/* CAIO_PORTABLE: build the code path of other systems (to test it here). */
#if defined(__linux__) && !defined(CAIO_PORTABLE)
#include <sys/eventfd.h>
#define CAIO_HAVE_EVENTFD 1
#endif

static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return errno;
    fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
        return errno;
    return 0;
}

int caio_eventfd_open(void)
{
#ifdef CAIO_HAVE_EVENTFD
    int efd;

    if (caio_kernel_lacks(CAIO_F_EVENTFD))
        return -ENOSYS;     /* hidden by the test switch: as if denied */
    efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return efd >= 0 ? efd : -errno;
#else
    return -ENOSYS;
#endif
}

int caio_notifier_open(caio_notifier *n)
{
    int fds[2], err;

#ifdef CAIO_HAVE_EVENTFD
    n->rfd = n->wfd = caio_eventfd_open();
    if (n->rfd >= 0)
        return 0;
    if (n->rfd != -ENOSYS && n->rfd != -EINVAL)
        return -n->rfd;
    /* Very old kernel or a seccomp filter: the pipe works everywhere. */
#endif
    if (pipe(fds) < 0)
        return errno;
    if ((err = set_flags(fds[0])) != 0 || (err = set_flags(fds[1])) != 0) {
        close(fds[0]);
        close(fds[1]);
        return err;
    }
    n->rfd = fds[0];
    n->wfd = fds[1];
    return 0;
}

void caio_notifier_signal(const caio_notifier *n)
{
    ssize_t r;

    if (n->rfd == n->wfd) {
        caio_eventfd_signal(n->wfd);
        return;
    } else {
        char c = 0;
        do
            r = write(n->wfd, &c, 1);
        while (r < 0 && errno == EINTR);
    }
    /* EAGAIN: the counter or the pipe is full, so it is readable anyway. */
    (void)r;
}

void caio_notifier_drain(const caio_notifier *n)
{
    ssize_t r;

    if (n->rfd == n->wfd) {
        caio_eventfd_drain(n->rfd);
        return;
    } else {
        char buf[256];
        do
            r = read(n->rfd, buf, sizeof(buf));
        while (r == (ssize_t)sizeof(buf) || (r < 0 && errno == EINTR));
    }
    (void)r;
}

void caio_notifier_close(caio_notifier *n)
{
    if (n->wfd >= 0 && n->wfd != n->rfd)
        close(n->wfd);
    if (n->rfd >= 0)
        close(n->rfd);
    n->rfd = n->wfd = -1;
}
