/* A file descriptor that one thread (or the kernel) makes readable for the
 * event loop: an eventfd on Linux, a non-blocking pipe elsewhere. The ring
 * and kernel AIO backends need a real eventfd (the kernel signals it);
 * the thread pool takes either. No Python in here. */
#ifndef CAIO_NOTIFY_H
#define CAIO_NOTIFY_H

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

/* A non-blocking, close-on-exec eventfd, or -errno (not on Linux: -ENOSYS). */
int caio_eventfd_open(void);

/* Make an eventfd readable. Never blocks: EAGAIN means the counter is at
 * its maximum, i.e. readable already. */
static inline void caio_eventfd_signal(int efd)
{
    static const uint64_t one = 1;
    ssize_t r;

    do
        r = write(efd, &one, sizeof(one));
    while (r < 0 && errno == EINTR);
}

/* Empty an eventfd (one read takes the whole counter). 0, also when it
 * was not readable (a spurious wake-up), or -errno. */
static inline int caio_eventfd_drain(int efd)
{
    uint64_t count;

    if (read(efd, &count, sizeof(count)) < 0 && errno != EAGAIN && errno != EINTR)
        return -errno;
    return 0;
}

typedef struct {
    int rfd;    /* poll / add_reader this one */
    int wfd;    /* == rfd for an eventfd */
} caio_notifier;

/* 0, or an errno (nothing is left open). */
int caio_notifier_open(caio_notifier *n);
/* Make rfd readable. Never blocks (a full pipe is readable already). */
void caio_notifier_signal(const caio_notifier *n);
/* Make rfd not readable again. Never blocks. */
void caio_notifier_drain(const caio_notifier *n);
void caio_notifier_close(caio_notifier *n);

#endif
