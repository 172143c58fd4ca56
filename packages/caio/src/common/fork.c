/* Fork detection.
 *
 * A ring, an AIO context or a thread pool belongs to the process that made
 * it: after fork() the child shares the parent's io_uring and AIO context
 * (submitting there would mix the two processes' completions) and has none
 * of the parent's worker threads. getpid() on every submission would cost a
 * system call, so a pthread_atfork handler bumps a counter in the child and
 * contexts compare the counter they were made under. */
#include "caio.h"
#include <pthread.h>

static volatile unsigned long generation = 0;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int registered = -1;

static void in_child(void)
{
    generation++;
}

static void do_register(void)
{
    registered = pthread_atfork(NULL, NULL, in_child);
}

int caio_fork_init(void)
{
    pthread_once(&once, do_register);
    if (registered != 0) {
        errno = registered > 0 ? registered : ENOMEM;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

unsigned long caio_fork_generation(void)
{
    return generation;
}

int caio_fork_check(unsigned long gen, const char *what)
{
    if (gen == generation)
        return 0;
    PyErr_Format(PyExc_RuntimeError,
                 "this %s was created in another process (before fork()); "
                 "create a new one in this process", what);
    return -1;
}
