/* A file descriptor that one thread makes readable for another: an eventfd
 * on Linux, a non-blocking pipe elsewhere. */
#ifndef CAIO_THREAD_NOTIFY_H
#define CAIO_THREAD_NOTIFY_H

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
