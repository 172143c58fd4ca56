/*
 * Shared C layer of the caio backends (linux_uring, linux_aio, thread_aio).
 *
 * Every backend moves `caio_req` structs: one per I/O request. A request is
 * either embedded in a Python `Operation` object (the caio 0.12 low-level
 * API: `Context.submit(op)`, callbacks) or taken from a context's
 * preallocated `caio_req_pool` (the asyncio fast path: `read_async()` and
 * friends, which allocate no Python object per operation beyond the
 * returned bytes and, when the kernel does not finish at once, one future).
 *
 * Ownership while a request is in the kernel: the request owns its read
 * buffer (a bytes object the kernel writes into) and its write payload
 * (a Py_buffer view). Neither is released until the backend has seen the
 * completion, whatever happens to the future or the Operation object.
 */
#ifndef CAIO_H
#define CAIO_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <sys/types.h>

#include "pyerr.h"   /* caio_fetch_exception, caio_error_save, ... */
#include "spare.h"   /* caio_spare: the kept bytes of small reads */

#define CAIO_API __attribute__((visibility("hidden")))

/* CAIO_MAX_IO_SIZE (the kernel's cap on one read or write: asking for more
 * only makes us allocate more) and CAIO_NOWAIT_MAX (the page-cache fast
 * path's size limit) come from caio/_limits.py: setup.py passes them with -D,
 * so the C and Python backends share one number each. */
#if !defined(CAIO_MAX_IO_SIZE) || !defined(CAIO_NOWAIT_MAX)
#error "build with setup.py: it defines CAIO_MAX_IO_SIZE and CAIO_NOWAIT_MAX"
#endif

enum caio_opcode {
    CAIO_READ = 0,
    CAIO_WRITE = 1,
    CAIO_FSYNC = 2,
    CAIO_FDSYNC = 3,
    CAIO_READINTO = 4,     /* into the caller's writable buffer (req->view) */
    CAIO_READV = 5,        /* into a sequence of writable buffers (req->vec) */
    CAIO_WRITEV = 6,       /* from a sequence of buffers (req->vec) */
    CAIO_FS = 7,           /* a filesystem operation: req->fs, common/fsops.h */
};

/* Reads that move data into memory (and may end short at end of file). */
static inline int caio_opcode_reads(int opcode)
{
    return opcode == CAIO_READ || opcode == CAIO_READINTO || opcode == CAIO_READV;
}

/* The vectored ones: their buffers are req->vec, not req->data. */
static inline int caio_opcode_vectored(int opcode)
{
    return opcode == CAIO_READV || opcode == CAIO_WRITEV;
}

/* "read", "write", ...: the method names, for messages and reprs. */
static inline const char *caio_opcode_name(int opcode)
{
    static const char *const names[] = {"read", "write", "fsync", "fdsync",
                                        "readinto", "readv", "writev", "fs"};
    return (unsigned)opcode < sizeof(names) / sizeof(names[0]) ? names[opcode] : "?";
}

struct iovec;

/* The buffers of a readv/writev request, one allocation: the held exports,
 * the iovecs the kernel gets (iov), and a pristine copy of them (orig) from
 * which a backend that resubmits the rest of a short transfer rebuilds iov
 * (caio_vec_skip). */
typedef struct caio_vec {
    PyObject *source;       /* the sequence given (for Operation.payload) */
    Py_ssize_t count;
    Py_buffer *views;
    struct iovec *iov;
    struct iovec *orig;
} caio_vec;

enum caio_state {
    CAIO_REQ_FREE = 0,     /* in a pool's free list, or a fresh Operation */
    CAIO_REQ_WAITING,      /* accepted, waiting for a free kernel slot */
    CAIO_REQ_INFLIGHT,     /* the kernel / a worker owns it */
    CAIO_REQ_DONE,         /* result is set */
};

/* Flags */
#define CAIO_REQ_HEAP  0x01   /* allocated outside the pool: free on put */
#define CAIO_REQ_OWNED 0x02   /* embedded in an Operation object (req->owner) */
#define CAIO_REQ_CANCEL_ASKED 0x04

typedef struct caio_req {
    uint8_t opcode;
    uint8_t state;
    uint8_t flags;
    int fd;
    int priority;
    int64_t offset;
    size_t nbytes;          /* read: bytes asked of the kernel; write: view.len capped */
    ssize_t result;         /* >= 0 bytes, or -errno; valid in CAIO_REQ_DONE */
    char *data;             /* where the kernel reads from / writes to */
    PyObject *buffer;       /* read: the bytes object being filled (owned) */
    Py_buffer view;         /* write: the held payload, readinto: the caller's
                               buffer (view.obj != NULL while held) */
    caio_vec *vec;          /* readv/writev: the held buffers, or NULL */
    PyObject *future;       /* fast path: the asyncio future to resolve (owned), or NULL */
    PyObject *owner;        /* CAIO_REQ_OWNED: the Operation object (borrowed; the
                               backend holds a strong ref while in flight) */
    struct caio_req *next;  /* backend queues (waiting list, completion list) */
    /* CAIO_FS only (common/fsops.h). The first path is req->data, held by
     * req->view; path2 or the statx buffer lives in req->buffer (owned): both
     * stay put until the request is cleared, whatever the kernel does. */
    struct {
        const char *path2;  /* rename/link/symlink: the second path */
        void *statx;        /* stat: the struct statx the kernel fills */
        int fd2;            /* the second path's directory fd */
        int flags;          /* AT_* flags, open(2) flags */
        unsigned mode;      /* open/mkdir mode, fallocate mode */
        uint8_t op;         /* enum caio_fsop */
    } fs;
    uint64_t backend[8];    /* backend scratch space (e.g. a struct iocb) */
} caio_req;

/* ---- argument parsing (req.c) ------------------------------------------ */

/* Fill req from Python arguments, allocating the read buffer or acquiring
 * the write payload / the buffers. Argument order is the public one:
 *   CAIO_READ:  (nbytes, fd, offset, priority=0)
 *   CAIO_WRITE: (payload, fd, offset, priority=0)
 *   CAIO_READINTO: (buffer, fd, offset, priority=0)
 *   CAIO_READV, CAIO_WRITEV: (buffers, fd, offset, priority=0)
 *   CAIO_FSYNC, CAIO_FDSYNC: (fd, priority=0)
 * Keywords: nbytes/payload, fd, offset, priority.
 * A read's bytes come from spare (NULL: allocated; see spare.h).
 * Returns 0, or -1 with an exception set and nothing held. */
CAIO_API int caio_req_prepare(caio_req *req, caio_spare *spare, int opcode,
                              PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames);

/* The Python value of a finished request: read -> bytes (shrunk to the
 * result), write, readinto, readv, writev -> int, sync -> None. A failed request sets OSError and
 * returns NULL. Can be called more than once. */
CAIO_API PyObject *caio_req_value(caio_req *req);

/* 0 if ob is None or callable, else -1 with TypeError("<what> must be
 * callable or None, not <type>"): every optional callback a method stores
 * (call_soon, an Operation's callback, uring's idle check). */
CAIO_API int caio_check_callable_or_none(PyObject *ob, const char *what);

/* A new OSError instance (the errno subclass, e.g. FileNotFoundError). */
CAIO_API PyObject *caio_oserror_new(int err);
/* Raise OSError(err); returns NULL. */
CAIO_API PyObject *caio_oserror(int err);

/* Drop everything the request holds (buffer, view, vec, future). Only once
 * the kernel is done with it. */
CAIO_API void caio_req_clear(caio_req *req);

/* Release the buffer exports (view, vec) of a request the kernel is done
 * with, so that the caller may resize its buffers again; keeps the rest. */
CAIO_API void caio_req_release_buffers(caio_req *req);

/* Point vec->iov at what is left after the first `done` bytes (rebuilt from
 * vec->orig). Returns how many iovecs are left (0 when all is done). */
CAIO_API int caio_vec_skip(caio_vec *vec, size_t done);

/* ---- futures (req.c) ---------------------------------------------------- */

/* Import what future resolution needs (asyncio.InvalidStateError). Called
 * when a context is given a future factory; cheap after the first time. */
CAIO_API int caio_futures_init(void);

/* Resolve req->future with the request's value or OSError. A future that
 * was cancelled meanwhile is left as it is. Returns 0, or -1 with an
 * exception set (the future's own methods failed). */
CAIO_API int caio_req_resolve_future(caio_req *req);

/* Fail a future with exc; a future cancelled meanwhile is left alone.
 * Returns 0, or -1 with an exception set. */
CAIO_API int caio_future_set_exception(PyObject *fut, PyObject *exc);

/* The body of a context's tp_finalize: the statement `close` (it may run
 * callbacks, which may raise) runs with the exception being raised set
 * aside; what it leaves raised is reported as unraisable, as from any
 * finalizer. One macro for every backend's finalizer. */
#define CAIO_CLOSE_IN_FINALIZER(self, close)                \
    do {                                                    \
        caio_saved_error caio_saved_ = caio_error_save();   \
        close;                                              \
        if (PyErr_Occurred())                               \
            PyErr_WriteUnraisable((PyObject *)(self));      \
        caio_error_restore(caio_saved_);                    \
    } while (0)

/* True once the interpreter is exiting (threads are stopped where they
 * stand: a lock a daemon thread held may never be released). */
static inline int caio_interpreter_finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

/* ---- request pool (req.c) ----------------------------------------------- */

typedef struct {
    caio_req *reqs;
    caio_req *free_list;
    size_t size;
} caio_req_pool;

CAIO_API int caio_req_pool_init(caio_req_pool *pool, size_t size);
/* Free the pool's memory. Every request must be back (or leaked on purpose
 * by the caller: then pass leak=1 and the memory is kept, never freed). */
CAIO_API void caio_req_pool_free(caio_req_pool *pool, int leak);
/* A cleared request: from the pool, or from the heap when the pool is
 * empty (more waiting requests than max_requests). NULL + MemoryError. */
CAIO_API caio_req *caio_req_get(caio_req_pool *pool);
/* Clear the request and give it back. */
CAIO_API void caio_req_put(caio_req_pool *pool, caio_req *req);

/* ---- the Operation type (operation.c) ----------------------------------- */

typedef struct {
    PyObject_HEAD
    caio_req req;
    PyObject *callback;
    PyObject *payload;      /* write: the payload object, kept for .payload */
    PyObject *context;      /* a weak reference to the Context it was submitted
                               to (NULL before): an operation in flight must not
                               keep a dropped context alive */
    PyObject *weakreflist;
} CaioOperation;

CAIO_API extern PyTypeObject CaioOperation_Type;

/* Ready the type under its module's name (e.g. "caio.linux_uring.Operation")
 * and add it to the module as "Operation". */
CAIO_API int caio_operation_add_type(PyObject *module, const char *qualname);

/* The Operation of an owned request. */
static inline CaioOperation *caio_req_operation(caio_req *req) {
    return (CaioOperation *)req->owner;
}

/* The request of an Operation that submit() takes now: NULL (and no error)
 * when it is already submitted (in flight, finished, or earlier in the same
 * call), which submit() skips, as caio 0.12 did. Otherwise it is marked as
 * submitted to the context whose weak reference is ctxref. The caller has
 * checked the types (caio_check_operations). */
CAIO_API caio_req *caio_operation_take(PyObject *ob, PyObject *ctxref);

/* Run the Operation's callback with the raw result (GIL held). An exception
 * from the callback is reported with sys.unraisablehook: one failing
 * callback must not stop the others. */
CAIO_API void caio_operation_run_callback(caio_req *req);

/* The kernel is done with an Operation's request: release its buffer
 * exports (a readinto buffer can be resized again), then run the callback.
 * (A request the kernel kept gets caio_operation_run_callback only.) */
CAIO_API void caio_operation_finish(caio_req *req);

/* ---- fork detection (fork.c) -------------------------------------------- */

/* Register the atfork handler (once per extension). */
CAIO_API int caio_fork_init(void);
/* Bumped in every forked child. */
CAIO_API unsigned long caio_fork_generation(void);
/* 0 when gen is the current generation, else RuntimeError and -1. */
CAIO_API int caio_fork_check(unsigned long gen, const char *what);

/* ---- small argument helpers (args.c) ------------------------------------ */

/* Parse positional + keyword arguments into out[0..nnames), borrowed refs,
 * NULL for absent optional ones. `required` leading names must be given. */
CAIO_API int caio_parse_args(const char *funcname, const char *const *names,
                             Py_ssize_t nnames, Py_ssize_t required,
                             PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames, PyObject **out);

/* The value of an exact int of one digit (every fd, and every size and
 * offset under 2**30): without the generic conversion, which handles any
 * length. 0 when ob is something else (a bool, a subclass, a big int):
 * the generic path then decides. */
static inline int caio_small_int(PyObject *ob, long long *out)
{
    if (!PyLong_CheckExact(ob))
        return 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (!PyUnstable_Long_IsCompact((PyLongObject *)ob))
        return 0;
    *out = (long long)PyUnstable_Long_CompactValue((PyLongObject *)ob);
    return 1;
#else
    switch (Py_SIZE(ob)) {
    case 0:
        *out = 0;
        return 1;
    case 1:
        *out = (long long)((PyLongObject *)ob)->ob_digit[0];
        return 1;
    case -1:
        *out = -(long long)((PyLongObject *)ob)->ob_digit[0];
        return 1;
    default:
        return 0;
    }
#endif
}

#endif
