/* What every C backend's Context shares: the head of the object, the entry
 * checks, the max_requests rule, the future-factory protocol, the
 * operation type check and the *_async methods with their docstrings.
 *
 * Each backend's context.h starts its Context struct with CAIO_CONTEXT_HEAD
 * and defines, with the same names everywhere:
 *
 *   int  context_enter(Ctx *self);   every entry point but close(): fork,
 *                                    closed and re-entry checks (-1 + error)
 *   void context_leave(Ctx *self);   the matching exit
 *
 * and its module.c instantiates CAIO_ASYNC_TRAMPOLINES for its *_async core
 * and starts its method table with CAIO_CONTEXT_METHODS. */
#ifndef CAIO_PROTOCOL_H
#define CAIO_PROTOCOL_H

#include "caio.h"
#include "nowait.h"

#define CAIO_CLOSED_MESSAGE "I/O operation on closed context"
#define CAIO_NO_FACTORY_MESSAGE \
    "set_future_factory() must be called before the *_async methods"

/* max_requests: None or 0 -> the backend's default, else 1..this. */
#define CAIO_MAX_REQUESTS_LIMIT 65536
#define CAIO_MAX_REQUESTS_DEFAULT 512

/* The first fields of every C backend's Context. */
#define CAIO_CONTEXT_HEAD                                                    \
    PyObject_HEAD                                                           \
    PyObject *factory;          /* makes the futures (loop.create_future) */ \
    PyObject *call_soon;        /* loop.call_soon, or NULL */               \
    PyObject *weakreflist;                                                  \
    PyObject *selfref;          /* a weak reference to itself, made on the   \
                                   first submit(): its Operations hold it */ \
    unsigned long fork_gen;     /* caio_fork_generation() at creation */    \
    unsigned long owner_thread; /* who called set_future_factory() */       \
    int closed;                 /* close() has started */                   \
    /* Filesystem operations (common/fsops.h): bit i set when operation i   \
     * runs in the kernel (linux_uring's probe, made once per context: the \
     * one place a kernel feature profile needs to mask); fs_kernel_only:   \
     * fs_async refuses the others (no worker to run them). */             \
    uint32_t fs_kernel;                                                     \
    int fs_kernel_only;                                                     \
    /* stat of cached paths on the calling thread (fsops.h,                 \
     * caio_fs_stat_cached): Context(stat_cached=True) and the kernel       \
     * feature CAIO_F_STAT_CACHED (which a kernel profile may hide). */     \
    int stat_cached;                                                        \
    caio_spare spare;           /* bytes of the last small reads (spare.h) */

typedef struct {
    CAIO_CONTEXT_HEAD
} caio_context;

/* ---- entry checks --------------------------------------------------------- */

/* ValueError("I/O operation on closed context"); returns -1. */
CAIO_API int caio_context_closed_error(void);

/* The checks every entry point makes first: the fork check (a child must
 * hear why), then closed. 0, or -1 with RuntimeError / ValueError. */
static inline int caio_context_check(const caio_context *ctx, const char *name)
{
    if (caio_fork_check(ctx->fork_gen, name) < 0)
        return -1;
    if (ctx->closed)
        return caio_context_closed_error();
    return 0;
}

/* RuntimeError for a *_async call before set_future_factory(). */
CAIO_API PyObject *caio_context_no_factory(void);
/* RuntimeError for a *_async call from another thread than the factory's. */
CAIO_API int caio_context_wrong_thread(void);

/* What the *_async methods check after caio_context_check: a factory was
 * set, and by this thread. The futures belong to one event loop, and a
 * thread runs one loop at a time; the asyncio adapter calls
 * set_future_factory() on its loop's thread, so a call from any other
 * thread is a context used from another loop (the adapter then names both
 * loops). A thread id comparison: no Python call, no allocation, per
 * operation. 0, or -1 with RuntimeError. */
static inline int caio_context_async_check(const caio_context *ctx)
{
    if (ctx->factory == NULL) {
        caio_context_no_factory();
        return -1;
    }
    if (ctx->owner_thread != PyThread_get_thread_ident())
        return caio_context_wrong_thread();
    return 0;
}

/* ---- construction and protocol arguments ------------------------------------ */

/* The one max_requests rule: None (or absent) and 0 give dflt; an int in
 * 1..CAIO_MAX_REQUESTS_LIMIT is used; any other int is ValueError, a
 * non-int TypeError. 0 or -1 with the exception set. */
CAIO_API int caio_parse_max_requests(PyObject *ob, unsigned dflt, unsigned *out);

/* set_future_factory(factory, call_soon=None): both checked callable
 * (call_soon may be None: NULL in *call_soon). New references; 0, or -1 with
 * TypeError. Imports what resolving futures needs. */
CAIO_API int caio_parse_future_factory(PyObject *const *args, Py_ssize_t nargs,
                                       PyObject *kwnames, PyObject **factory,
                                       PyObject **call_soon);

/* Store a parsed factory pair in the context (steals both references). */
static inline void caio_context_set_factory(caio_context *ctx, PyObject *factory,
                                            PyObject *call_soon)
{
    Py_XSETREF(ctx->factory, factory);
    Py_XSETREF(ctx->call_soon, call_soon);
    ctx->owner_thread = PyThread_get_thread_ident();
}

/* submit(*operations): TypeError unless every argument is an Operation of
 * this module. 0 or -1. */
CAIO_API int caio_check_operations(PyObject *const *args, Py_ssize_t nargs);

/* cancel(*operations): caio_check_operations, then ValueError unless every
 * one was submitted to ctx. 0 or -1. */
CAIO_API int caio_check_owned(caio_context *ctx, PyObject *const *args, Py_ssize_t nargs);

/* The context's weak reference to itself (borrowed), made the first time;
 * NULL with an exception if it cannot be made. */
CAIO_API PyObject *caio_context_selfref(caio_context *ctx);

/* ---- process_events(max_requests, min_requests, timeout) and poll() ---------- */

typedef PyObject *(*caio_events_fn)(PyObject *self, PyObject *unused);
typedef PyObject *(*caio_fileno_fn)(PyObject *self, void *closure);

/* process_events with caio 0.12's keywords: run events() once, and again
 * whenever fileno() becomes readable, until min_requests were counted or
 * timeout seconds passed (0: run once; negative: no limit). max_requests
 * is checked (an int >= 0) and otherwise not used: see CAIO_DOC_PROCESS_EVENTS. */
CAIO_API PyObject *caio_process_events_kw(PyObject *self, caio_events_fn events,
                                          caio_fileno_fn fileno, PyObject *const *args,
                                          Py_ssize_t nargs, PyObject *kwnames);

/* poll(): empty the completion eventfd (a pipe where there is none); its
 * count (the bytes read from a pipe), or BlockingIOError when it was empty. */
CAIO_API PyObject *caio_poll_fd(PyObject *self, caio_fileno_fn fileno);

/* GC of the head's references. */
static inline int caio_context_traverse(caio_context *ctx, visitproc visit, void *arg)
{
    Py_VISIT(ctx->factory);
    Py_VISIT(ctx->call_soon);
    return 0;
}

/* GC of what a request the context holds keeps alive: its future, or its
 * Operation (submit() took a reference) until that is done (an Operation
 * finishing in a worker drops the reference after it is marked done).
 * A context dropped with operations in flight is in a cycle through them
 * (future -> task -> coroutine -> asyncio adapter -> context): visiting
 * them lets the collector find it; the context's finalizer then closes it
 * (every request finished or given up on) before anything is cleared. */
static inline int caio_req_visit(caio_req *req, visitproc visit, void *arg)
{
    if (!(req->flags & CAIO_REQ_OWNED))
        Py_VISIT(req->future);
    else if (req->state != CAIO_REQ_DONE)
        Py_VISIT(req->owner);
    return 0;
}

/* caio_req_visit inside a tp_traverse (as Py_VISIT: returns its error). */
#define CAIO_VISIT_REQ(req)                                 \
    do {                                                    \
        int caio_vret_ = caio_req_visit((req), visit, arg); \
        if (caio_vret_)                                     \
            return caio_vret_;                              \
    } while (0)

static inline void caio_context_clear(caio_context *ctx)
{
    Py_CLEAR(ctx->factory);
    Py_CLEAR(ctx->call_soon);
    Py_CLEAR(ctx->selfref);
    caio_spare_clear(&ctx->spare);
}

/* fs_in_kernel(op) -> bool: bit op of the head's fs_kernel. */
CAIO_API PyObject *caio_ctx_fs_in_kernel(PyObject *self, PyObject *op);

/* ---- the page-cache fast path -------------------------------------------------- */

/* caio_nowait_rw, the GIL released for large copies (*nogil, if not NULL,
 * is 1 meanwhile: the backend's "another thread is inside" mark). The
 * caller checked nbytes <= CAIO_NOWAIT_MAX. Per operation: inline. */
static inline enum caio_nowait caio_nowait_py(int is_write, int fd, char *data, size_t nbytes,
                                              int64_t offset, int streams, int *nogil,
                                              caio_fd_memo *direct, ssize_t *moved)
{
    enum caio_nowait how;

    if (nbytes < CAIO_NOWAIT_GIL_RELEASE)
        return caio_nowait_rw(is_write, fd, data, nbytes, offset, streams, direct, moved);
    if (nogil != NULL)
        *nogil = 1;
    Py_BEGIN_ALLOW_THREADS
    how = caio_nowait_rw(is_write, fd, data, nbytes, offset, streams, direct, moved);
    Py_END_ALLOW_THREADS
    if (nogil != NULL)
        *nogil = 0;
    return how;
}

/* caio_nowait_py for a prepared read or write request (the caller checked
 * the opcode). direct: the context's kept O_DIRECT answer (nowait.h). */
static inline enum caio_nowait caio_req_nowait(caio_req *req, int streams, int *nogil,
                                               caio_fd_memo *direct, ssize_t *moved)
{
    return caio_nowait_py(req->opcode == CAIO_WRITE, req->fd, req->data, req->nbytes,
                          req->offset, streams, nogil, direct, moved);
}

/* caio_req_may_write_here for a writev (req.c). */
CAIO_API int caio_vec_may_write_here(caio_req *req, caio_fd_memo *direct);

/* Whether a write of req may be made on the calling thread: it is surely
 * not O_DIRECT I/O, which belongs to the kernel's asynchronous path. Its
 * buffer is unaligned (an O_DIRECT descriptor refuses that at once), or is
 * a bytes object whose descriptor is not O_DIRECT. Memory aligned on
 * purpose (mmap, aligned_buffer, NumPy: the O_DIRECT idiom) is not asked
 * about. A bytes object is aligned by chance, but then for every call of
 * its size alike (glibc hands the same chunk back): fcntl is asked for it,
 * its answer kept in *direct (NULL: asked each time). A writev: the
 * same, one unaligned buffer being enough. */
static inline int caio_req_may_write_here(caio_req *req, caio_fd_memo *direct)
{
    if (req->opcode == CAIO_WRITEV)
        return caio_vec_may_write_here(req, direct);
    if (!caio_nowait_may_be_direct(req->data, req->nbytes))
        return 1;
    if (!PyBytes_CheckExact(req->view.obj))
        return 0;
    return !caio_fd_is_direct(req->fd, direct);
}

/* A write from memory aligned on purpose: not a bytes object (aligned by
 * chance only). The O_DIRECT idiom, told without a system call, where a
 * wrong guess costs time, not a result (linux_uring's early submission):
 * an fcntl per write there, for a payload aligned by chance, cost a
 * quarter of the page-cache writes per second at 64 in flight. */
static inline int caio_req_aligned_on_purpose(caio_req *req)
{
    return caio_nowait_may_be_direct(req->data, req->nbytes) &&
           !PyBytes_CheckExact(req->view.obj);
}

/* req's write (or writev) on the calling thread, the GIL released (a
 * partial page may have to be read first, the dirty-page throttle may
 * sleep; *nogil, if not NULL, is 1 meanwhile). One pwrite or pwritev, as
 * the kernel makes one ->write_iter call for a buffered write: a short
 * count is the answer. The count, or -errno (-ESPIPE for a stream, which has no offset). */
CAIO_API ssize_t caio_req_write_here(caio_req *req, int *nogil);

/* ---- docstrings (text signatures: inspect.signature reads them) ------------- */

#define CAIO_RAISES_COMMON \
    "Raises ValueError once closed, RuntimeError in a forked child."
#define CAIO_RAISES_ASYNC                                                     \
    "Raises OSError if it failed during the call, TypeError/ValueError for\n" \
    "bad arguments, MemoryError, RuntimeError before set_future_factory().\n" \
    CAIO_RAISES_COMMON

#define CAIO_DOC_READ_ASYNC                                                   \
    "read_async($self, /, nbytes, fd, offset, priority=0)\n--\n\n"            \
    "Read nbytes at offset: the bytes if the read finished during the call\n" \
    "(a page-cache hit usually does), else a future of them.\n" CAIO_RAISES_ASYNC
#define CAIO_DOC_WRITE_ASYNC                                                  \
    "write_async($self, /, payload, fd, offset, priority=0)\n--\n\n"          \
    "Write a contiguous buffer at offset: the count if it finished during\n"  \
    "the call, else a future of it.\n" CAIO_RAISES_ASYNC
#define CAIO_DOC_FSYNC_ASYNC                                                  \
    "fsync_async($self, /, fd, priority=0)\n--\n\n"                           \
    "fsync(fd): None if it finished during the call, else a future.\n"        \
    CAIO_RAISES_ASYNC
#define CAIO_DOC_FDSYNC_ASYNC                                                 \
    "fdsync_async($self, /, fd, priority=0)\n--\n\n"                          \
    "fdatasync(fd): None if it finished during the call, else a future.\n"    \
    CAIO_RAISES_ASYNC
#define CAIO_DOC_READINTO_ASYNC                                               \
    "readinto_async($self, /, buffer, fd, offset, priority=0)\n--\n\n"        \
    "Read into a writable C-contiguous buffer at offset, the kernel writing\n" \
    "straight into it: the count if it finished during the call, else a\n"  \
    "future of it. The buffer is held (cannot be resized) until the kernel\n" \
    "is done with it, also when the future is cancelled. TypeError for a\n" \
    "read-only buffer.\n" CAIO_RAISES_ASYNC
#define CAIO_DOC_READV_ASYNC                                                  \
    "readv_async($self, /, buffers, fd, offset, priority=0)\n--\n\n"         \
    "One read at offset filling a sequence of writable buffers in order: the\n" \
    "count if it finished during the call, else a future of it. ValueError\n" \
    "for more than IOV_MAX buffers.\n" CAIO_RAISES_ASYNC
#define CAIO_DOC_WRITEV_ASYNC                                                 \
    "writev_async($self, /, buffers, fd, offset, priority=0)\n--\n\n"        \
    "One write at offset of a sequence of buffers, in order: the count if\n" \
    "it finished during the call, else a future of it. ValueError for more\n" \
    "than IOV_MAX buffers.\n" CAIO_RAISES_ASYNC
#define CAIO_DOC_SET_FUTURE_FACTORY                                           \
    "set_future_factory($self, /, factory, call_soon=None)\n--\n\n"           \
    "factory() makes the futures the *_async methods return (usually\n"      \
    "loop.create_future); call_soon is the loop's call_soon (a backend that\n" \
    "does not need it ignores it).\n"                                         \
    "Raises TypeError (not callable). " CAIO_RAISES_COMMON
#define CAIO_DOC_CANCEL_FUTURE                                                \
    "cancel_future($self, future, /)\n--\n\n"                                 \
    "Cancel the operation behind a future from an *_async method. Its\n"     \
    "buffer stays alive until the kernel or worker is done with it.\n"       \
    "True if it was cancelled, False if it could not be (running, done or\n" \
    "unknown). " CAIO_RAISES_COMMON
#define CAIO_DOC_PROCESS_EVENTS                                               \
    "process_events($self, /, max_requests=0, min_requests=0, timeout=0)\n--\n\n" \
    "Reap completions, resolve futures, run callbacks, submit waiting\n"     \
    "operations. Returns how many finished. With the default timeout=0 it\n" \
    "never blocks; otherwise it waits until min_requests finished, at most\n" \
    "timeout seconds (no limit if negative). Every completion that is\n"      \
    "ready is processed: max_requests (caio 0.12's cap) is accepted, not\n"  \
    "applied. Raises TypeError, ValueError (negative counts). "               \
    CAIO_RAISES_COMMON
#define CAIO_DOC_POLL                                                         \
    "poll($self, /)\n--\n\n"                                                  \
    "Empty the completion descriptor (fileno); returns its count. Call\n"    \
    "process_events() after it: the completions wait there.\n"              \
    "Raises BlockingIOError when nothing was signalled. " CAIO_RAISES_COMMON
#define CAIO_DOC_SUBMIT                                                       \
    "submit($self, /, *operations)\n--\n\n"                                   \
    "Queue Operations; more than max_requests wait their turn. Returns how\n" \
    "many were queued: one already submitted (in flight, finished, or\n"     \
    "earlier in this call) is skipped. Raises TypeError (not an Operation\n" \
    "of this module; nothing is queued then). " CAIO_RAISES_COMMON
#define CAIO_DOC_CANCEL                                                       \
    "cancel($self, /, *operations)\n--\n\n"                                   \
    "Cancel Operations: waiting ones always, running ones where the kernel\n" \
    "or worker can. Returns how many were cancelled.\n"                       \
    "Raises TypeError, ValueError (an Operation not submitted to this\n"     \
    "context; nothing is cancelled then). " CAIO_RAISES_COMMON
#define CAIO_DOC_FS_IN_KERNEL                                                 \
    "fs_in_kernel($self, op, /)\n--\n\n"                                      \
    "True when filesystem operation number op (caio._fsops.NAMES) runs as\n" \
    "an io_uring request on this context (probed once, when it was made).\n" \
    "Raises TypeError, ValueError (no such operation)."
#define CAIO_DOC_ENTER "__enter__($self, /)\n--\n\n"
#define CAIO_DOC_EXIT "__exit__($self, /, *exc_info)\n--\n\nclose()."

/* ---- the *_async methods ------------------------------------------------------ */

/* One core per backend, `PyObject *core(Ctx *, int opcode, args, nargs,
 * kwnames)`; these trampolines are what the method table points at. */
#define CAIO_ASYNC_TRAMPOLINES(Ctx, core)                                     \
    static PyObject *ctx_process_events(Ctx *self, PyObject *unused);         \
    static PyObject *ctx_get_fileno(Ctx *self, void *closure);                \
    static PyObject *ctx_process_events_kw(Ctx *self, PyObject *const *args,  \
                                           Py_ssize_t nargs, PyObject *kwnames) \
    {                                                                         \
        if (nargs == 0 && kwnames == NULL)   /* the adapter's call */          \
            return ctx_process_events(self, NULL);                            \
        return caio_process_events_kw((PyObject *)self,                       \
                                      (caio_events_fn)ctx_process_events,     \
                                      (caio_fileno_fn)ctx_get_fileno,         \
                                      args, nargs, kwnames);                  \
    }                                                                         \
    static PyObject *ctx_poll(Ctx *self, PyObject *unused)                    \
    {                                                                         \
        return caio_poll_fd((PyObject *)self, (caio_fileno_fn)ctx_get_fileno); \
    }                                                                         \
    static PyObject *ctx_read_async(Ctx *self, PyObject *const *args,         \
                                    Py_ssize_t nargs, PyObject *kwnames)      \
    {                                                                         \
        return core(self, CAIO_READ, args, nargs, kwnames);                   \
    }                                                                         \
    static PyObject *ctx_write_async(Ctx *self, PyObject *const *args,        \
                                     Py_ssize_t nargs, PyObject *kwnames)     \
    {                                                                         \
        return core(self, CAIO_WRITE, args, nargs, kwnames);                  \
    }                                                                         \
    static PyObject *ctx_fsync_async(Ctx *self, PyObject *const *args,        \
                                     Py_ssize_t nargs, PyObject *kwnames)     \
    {                                                                         \
        return core(self, CAIO_FSYNC, args, nargs, kwnames);                  \
    }                                                                         \
    static PyObject *ctx_fdsync_async(Ctx *self, PyObject *const *args,       \
                                      Py_ssize_t nargs, PyObject *kwnames)    \
    {                                                                         \
        return core(self, CAIO_FDSYNC, args, nargs, kwnames);                 \
    }                                                                         \
    static PyObject *ctx_readinto_async(Ctx *self, PyObject *const *args,     \
                                        Py_ssize_t nargs, PyObject *kwnames)  \
    {                                                                         \
        return core(self, CAIO_READINTO, args, nargs, kwnames);               \
    }                                                                         \
    static PyObject *ctx_readv_async(Ctx *self, PyObject *const *args,        \
                                     Py_ssize_t nargs, PyObject *kwnames)     \
    {                                                                         \
        return core(self, CAIO_READV, args, nargs, kwnames);                  \
    }                                                                         \
    static PyObject *ctx_writev_async(Ctx *self, PyObject *const *args,       \
                                      Py_ssize_t nargs, PyObject *kwnames)    \
    {                                                                         \
        return core(self, CAIO_WRITEV, args, nargs, kwnames);                 \
    }

#define CAIO_METH(fn) (PyCFunction)(void (*)(void))(fn)
#define CAIO_FASTCALL_KW (METH_FASTCALL | METH_KEYWORDS)

/* The method-table entries of the trampolines above. */
#define CAIO_ASYNC_METHODS                                                    \
    {"read_async", CAIO_METH(ctx_read_async), CAIO_FASTCALL_KW,               \
     CAIO_DOC_READ_ASYNC},                                                    \
    {"write_async", CAIO_METH(ctx_write_async), CAIO_FASTCALL_KW,             \
     CAIO_DOC_WRITE_ASYNC},                                                   \
    {"fsync_async", CAIO_METH(ctx_fsync_async), CAIO_FASTCALL_KW,             \
     CAIO_DOC_FSYNC_ASYNC},                                                   \
    {"fdsync_async", CAIO_METH(ctx_fdsync_async), CAIO_FASTCALL_KW,           \
     CAIO_DOC_FDSYNC_ASYNC},                                                  \
    {"readinto_async", CAIO_METH(ctx_readinto_async), CAIO_FASTCALL_KW,       \
     CAIO_DOC_READINTO_ASYNC},                                                \
    {"readv_async", CAIO_METH(ctx_readv_async), CAIO_FASTCALL_KW,             \
     CAIO_DOC_READV_ASYNC},                                                   \
    {"writev_async", CAIO_METH(ctx_writev_async), CAIO_FASTCALL_KW,           \
     CAIO_DOC_WRITEV_ASYNC}

/* Every Context's method table starts with these, in this order; each
 * backend adds a sentence to four docstrings, then close() and its own.
 * Expects ctx_* functions of these names in the backend's module.c. */
#define CAIO_CONTEXT_METHODS(submit_doc, cancel_doc, events_doc, factory_doc)   \
    CAIO_ASYNC_METHODS,                                                       \
    {"cancel_future", (PyCFunction)ctx_cancel_future, METH_O,                 \
     CAIO_DOC_CANCEL_FUTURE},                                                 \
    {"submit", CAIO_METH(ctx_submit), METH_FASTCALL,                          \
     CAIO_DOC_SUBMIT submit_doc},                                             \
    {"cancel", CAIO_METH(ctx_cancel), METH_FASTCALL,                          \
     CAIO_DOC_CANCEL cancel_doc},                                             \
    {"process_events", CAIO_METH(ctx_process_events_kw), CAIO_FASTCALL_KW,    \
     CAIO_DOC_PROCESS_EVENTS events_doc},                                     \
    {"poll", (PyCFunction)ctx_poll, METH_NOARGS, CAIO_DOC_POLL},               \
    {"fs_in_kernel", (PyCFunction)caio_ctx_fs_in_kernel, METH_O,              \
     CAIO_DOC_FS_IN_KERNEL},                                                  \
    {"set_future_factory", CAIO_METH(ctx_set_future_factory), CAIO_FASTCALL_KW, \
     CAIO_DOC_SET_FUTURE_FACTORY factory_doc},                                \
    {"__enter__", (PyCFunction)ctx_enter_cm, METH_NOARGS, CAIO_DOC_ENTER},    \
    {"__exit__", (PyCFunction)ctx_exit_cm, METH_VARARGS, CAIO_DOC_EXIT}

#endif
