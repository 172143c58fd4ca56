/* The bytes objects of a context's last few small reads, kept so that the
 * next read of the same size can fill one again instead of allocating.
 *
 * Why: a 4 KiB read's result is a 4129-byte allocation, above pymalloc's
 * limit and glibc's per-thread cache, so every read pays glibc's bins:
 * about 500 instructions for malloc and free, a third of the user-space
 * cost of a cached read (docs/performance.md). Most programs drop a read's
 * bytes before they read again, or hold only the last one or two.
 *
 * Why it is safe: an object is reused only while these slots hold its one
 * reference (Py_REFCNT == 1), so no code can still see it; its cached hash
 * is forgotten. A read that waits owns its bytes alone until it finishes,
 * as it does when it allocates. Only the exact sizes 1..CAIO_SPARE_MAX are
 * kept, at most CAIO_SPARE_SLOTS of them per context (64 KiB), given back
 * at close(). Not on free-threaded builds, whose reference counts are not
 * one number. Every function here is called with the GIL held. */
#ifndef CAIO_SPARE_H
#define CAIO_SPARE_H

#include <Python.h>

#define CAIO_SPARE_SLOTS 4      /* a power of two */
#define CAIO_SPARE_MAX 16384

typedef struct {
    PyObject *slot[CAIO_SPARE_SLOTS];
    unsigned next;              /* the oldest kept: taken from, kept into */
} caio_spare;

/* A new bytes of size n for a read to fill (contents undefined): the oldest
 * kept one if nothing else refers to it and it has that size, else a fresh
 * one. spare may be NULL. New reference, or NULL with MemoryError. */
static inline PyObject *caio_spare_bytes(caio_spare *spare, Py_ssize_t n)
{
#ifndef Py_GIL_DISABLED
    if (spare != NULL) {
        PyObject *b = spare->slot[spare->next];
        if (b != NULL && Py_REFCNT(b) == 1 && PyBytes_GET_SIZE(b) == n) {
            spare->slot[spare->next] = NULL;
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
            ((PyBytesObject *)b)->ob_shash = -1;    /* still bytes_hash's cache */
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
            return b;
        }
    }
#endif
    return PyBytes_FromStringAndSize(NULL, n);
}

/* Keep a read's result (a new reference is taken) in the oldest slot,
 * dropping what that slot held; results of other sizes or types are not
 * kept. Never runs Python code (a bytes' deallocation cannot). */
static inline void caio_spare_keep(caio_spare *spare, PyObject *value)
{
#ifndef Py_GIL_DISABLED
    if (PyBytes_CheckExact(value) && PyBytes_GET_SIZE(value) > 0 &&
        PyBytes_GET_SIZE(value) <= CAIO_SPARE_MAX) {
        PyObject *old = spare->slot[spare->next];
        spare->slot[spare->next] = Py_NewRef(value);
        spare->next = (spare->next + 1) & (CAIO_SPARE_SLOTS - 1);
        Py_XDECREF(old);
    }
#else
    (void)spare;
    (void)value;
#endif
}

static inline void caio_spare_clear(caio_spare *spare)
{
    for (int i = 0; i < CAIO_SPARE_SLOTS; i++)
        Py_CLEAR(spare->slot[i]);
}

#endif
