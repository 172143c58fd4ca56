/* Requests: argument checks, buffers, results, futures, the request pool. */
#include "caio.h"
#include "fsops.h"
#include "protocol.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef IOV_MAX
#define IOV_MAX 1024    /* Linux's UIO_MAXIOV: preadv refuses more with EINVAL */
#endif

static const char *const read_names[] = {"nbytes", "fd", "offset", "priority"};
static const char *const write_names[] = {"payload", "fd", "offset", "priority"};
static const char *const sync_names[] = {"fd", "priority"};
static const char *const readinto_names[] = {"buffer", "fd", "offset", "priority"};
static const char *const vector_names[] = {"buffers", "fd", "offset", "priority"};
static const char *const *const transfer_names[] = {
    [CAIO_READINTO] = readinto_names, [CAIO_READV] = vector_names,
    [CAIO_WRITEV] = vector_names,
};
static const char *const transfer_funcs[] = {
    [CAIO_READINTO] = "readinto", [CAIO_READV] = "readv", [CAIO_WRITEV] = "writev",
};

/* PyObject_AsFileDescriptor, without its generic conversion for an int. */
static int as_fd(PyObject *ob)
{
    long long value;
    if (caio_small_int(ob, &value) && value >= 0 && value <= INT_MAX)
        return (int)value;
    return PyObject_AsFileDescriptor(ob);
}

static int parse_int64(PyObject *ob, const char *what, int64_t *out, int huge_is_memory)
{
    int overflow = 0;
    long long value;

    if (caio_small_int(ob, &value) && value >= 0) {
        *out = (int64_t)value;
        return 0;
    }
    if (!PyLong_Check(ob)) {
        PyErr_Format(PyExc_TypeError, "%s must be int, not %.100s", what,
                     Py_TYPE(ob)->tp_name);
        return -1;
    }
    value = PyLong_AsLongLongAndOverflow(ob, &overflow);
    if (value == -1 && PyErr_Occurred())
        return -1;
    /* Overflow first: then value is -1, which is not a negative input. */
    if (overflow > 0) {
        if (huge_is_memory)
            PyErr_Format(PyExc_MemoryError, "%s is too large to allocate", what);
        else
            PyErr_Format(PyExc_ValueError, "%s must be less than 2**63", what);
        return -1;
    }
    if (overflow < 0 || value < 0) {
        PyErr_Format(PyExc_ValueError, "%s must not be negative", what);
        return -1;
    }
    *out = (int64_t)value;
    return 0;
}

static int parse_priority(PyObject *ob, int *out)
{
    long value;

    if (ob == NULL) {
        *out = 0;
        return 0;
    }
    if (!PyLong_Check(ob)) {
        PyErr_Format(PyExc_TypeError, "priority must be int, not %.100s",
                     Py_TYPE(ob)->tp_name);
        return -1;
    }
    value = PyLong_AsLong(ob);
    if (value == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();      /* out of range like any other: ValueError */
    }
    if (value < 0 || value > 0xffff) {
        PyErr_SetString(PyExc_ValueError, "priority must be in 0..65535");
        return -1;
    }
    *out = (int)value;
    return 0;
}

/* Replace the TypeError of a payload that is not a buffer with
 * caio.abstract.PayloadTypeError: a TypeError, and the ValueError that caio
 * 0.12 raised. The class is looked up once (error path only). */
static void payload_type_error(PyObject *payload)
{
    static PyObject *cls;

    PyErr_Clear();
    if (cls == NULL) {
        PyObject *module = PyImport_ImportModule("caio.abstract");
        if (module == NULL)
            return;   /* that error replaces the TypeError */
        cls = PyObject_GetAttrString(module, "PayloadTypeError");
        Py_DECREF(module);
        if (cls == NULL)
            return;
    }
    PyErr_Format(cls, "payload must be a bytes-like object, not %.100s",
                 Py_TYPE(payload)->tp_name);
}

/* TypeError "<what> must be ...": what is "buffer", or "buffers[index]"
 * for index >= 0 (formatted on this error path only). */
static void buffer_type_error(const char *what, Py_ssize_t index, const char *must,
                              int readonly, PyObject *ob)
{
    const char *is = readonly ? "a read-only " : "";

    if (index >= 0)
        PyErr_Format(PyExc_TypeError, "%s[%zd] must be %s, not %s%.100s", what, index, must,
                     is, Py_TYPE(ob)->tp_name);
    else
        PyErr_Format(PyExc_TypeError, "%s must be %s, not %s%.100s", what, must, is,
                     Py_TYPE(ob)->tp_name);
}

/* A writable C-contiguous export of ob, held in *view. A read-only buffer
 * is a TypeError (the wrong kind of object for a read, as readinto() of a
 * file object says), a non-contiguous one the exporter's BufferError. */
__attribute__((noinline))
static int get_writable(PyObject *ob, Py_buffer *view, const char *what, Py_ssize_t index)
{
    Py_buffer probe;
    int readonly;

    if (PyObject_GetBuffer(ob, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) == 0)
        return 0;
    if (!PyObject_CheckBuffer(ob)) {
        PyErr_Clear();
        buffer_type_error(what, index, "a writable bytes-like object", 0, ob);
        return -1;
    }
    if (!PyErr_ExceptionMatches(PyExc_BufferError))
        return -1;
    {
        /* Refused: read-only, or not contiguous? Ask again without
         * PyBUF_WRITABLE to tell (error path only). */
        caio_saved_error saved = caio_error_save();
        if (PyObject_GetBuffer(ob, &probe, PyBUF_C_CONTIGUOUS) < 0) {
            PyErr_Clear();
            caio_error_restore(saved);
            return -1;
        }
        readonly = probe.readonly;
        PyBuffer_Release(&probe);
        if (!readonly) {
            caio_error_restore(saved);
            return -1;
        }
        caio_error_restore(saved);
        PyErr_Clear();
    }
    buffer_type_error(what, index, "writable", 1, ob);
    return -1;
}

static void vec_free(caio_vec *vec)
{
    Py_DECREF(vec->source);
    for (Py_ssize_t i = 0; i < vec->count; i++)
        PyBuffer_Release(&vec->views[i]);
    PyMem_Free(vec);
}

/* (Not inlined: the read path through caio_req_prepare stays as lean as
 * before.) Hold every buffer of the sequence ob (writable ones for readv), at most
 * IOV_MAX of them. *total: their bytes. NULL with an exception set. */
__attribute__((noinline))
static caio_vec *vec_prepare(PyObject *ob, int writable, const char *name, size_t *total)
{
    PyObject *seq;
    Py_ssize_t n;
    caio_vec *vec;
    size_t sum = 0;

    if (PyObject_CheckBuffer(ob)) {
        /* A lone buffer is a sequence of ints: say what was meant. */
        PyErr_Format(PyExc_TypeError, "%s() takes a sequence of buffers, not a %.100s",
                     name, Py_TYPE(ob)->tp_name);
        return NULL;
    }
    seq = PySequence_Fast(ob, "buffers must be a sequence of bytes-like objects");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    if (n > IOV_MAX) {
        PyErr_Format(PyExc_ValueError, "%s() takes at most %d buffers (IOV_MAX), not %zd",
                     name, IOV_MAX, n);
        Py_DECREF(seq);
        return NULL;
    }
    vec = PyMem_Malloc(sizeof(caio_vec) + (size_t)n * sizeof(Py_buffer) +
                       2 * (size_t)n * sizeof(struct iovec));
    if (vec == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    vec->source = Py_NewRef(ob);
    vec->count = 0;
    vec->views = (Py_buffer *)(void *)(vec + 1);
    vec->iov = (struct iovec *)(void *)(vec->views + n);
    vec->orig = vec->iov + n;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        Py_buffer *view = &vec->views[i];
        int rc;

        if (writable) {
            rc = get_writable(item, view, "buffers", i);
        } else {
            rc = PyObject_GetBuffer(item, view, PyBUF_SIMPLE);
            if (rc < 0 && PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                buffer_type_error("buffers", i, "a bytes-like object", 0, item);
            }
        }
        if (rc < 0) {
            vec_free(vec);
            Py_DECREF(seq);
            return NULL;
        }
        vec->count = i + 1;
        vec->orig[i].iov_base = view->buf;
        vec->orig[i].iov_len = (size_t)view->len;
        vec->iov[i] = vec->orig[i];
        sum += (size_t)view->len;
    }
    Py_DECREF(seq);
    *total = sum;
    return vec;
}

int caio_vec_skip(caio_vec *vec, size_t done)
{
    Py_ssize_t i = 0;
    int left = 0;

    while (i < vec->count && done >= vec->orig[i].iov_len) {
        done -= vec->orig[i].iov_len;
        i++;
    }
    for (; i < vec->count; i++) {
        vec->iov[left] = vec->orig[i];
        if (done > 0) {
            vec->iov[left].iov_base = (char *)vec->iov[left].iov_base + done;
            vec->iov[left].iov_len -= done;
            done = 0;
        }
        left++;
    }
    return left;
}

int caio_req_prepare(caio_req *req, caio_spare *spare, int opcode, PyObject *const *args,
                     Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *ob[4];
    int64_t nbytes = 0, offset = 0;
    int fd, priority;

    switch (opcode) {
    case CAIO_READ:
    case CAIO_WRITE:
        /* As before the other operations came: a read pays nothing for them. */
        if (caio_parse_args(opcode == CAIO_READ ? "read" : "write",
                            opcode == CAIO_READ ? read_names : write_names,
                            4, 3, args, nargs, kwnames, ob) < 0)
            return -1;
        goto transfer_args;
    case CAIO_READINTO:
    case CAIO_READV:
    case CAIO_WRITEV:
        if (caio_parse_args(transfer_funcs[opcode], transfer_names[opcode],
                            4, 3, args, nargs, kwnames, ob) < 0)
            return -1;
transfer_args:
        if (opcode == CAIO_READ &&
            parse_int64(ob[0], "nbytes", &nbytes, 1) < 0)
            return -1;
        if ((fd = as_fd(ob[1])) < 0)
            return -1;
        if (parse_int64(ob[2], "offset", &offset, 0) < 0)
            return -1;
        if (parse_priority(ob[3], &priority) < 0)
            return -1;
        break;
    case CAIO_FSYNC:
    case CAIO_FDSYNC:
        if (caio_parse_args(opcode == CAIO_FSYNC ? "fsync" : "fdsync",
                            sync_names, 2, 1, args, nargs, kwnames, ob) < 0)
            return -1;
        if ((fd = as_fd(ob[0])) < 0)
            return -1;
        if (parse_priority(ob[1], &priority) < 0)
            return -1;
        break;
    default:
        /* Here, not as a case: a read's switch stays as it was. */
        if (opcode == CAIO_FS)
            return caio_fs_prepare(req, args, nargs, kwnames);
        PyErr_SetString(PyExc_SystemError, "caio: bad opcode");
        return -1;
    }

    /* Everything is checked: now take resources. */
    if (opcode == CAIO_READ) {
        Py_ssize_t n = nbytes > CAIO_MAX_IO_SIZE ? CAIO_MAX_IO_SIZE : (Py_ssize_t)nbytes;
        PyObject *buffer = caio_spare_bytes(spare, n);
        if (buffer == NULL)
            return -1;
        req->buffer = buffer;
        req->data = PyBytes_AS_STRING(buffer);
        req->nbytes = (size_t)n;
    } else if (opcode == CAIO_WRITE || opcode == CAIO_READINTO) {
        if (opcode == CAIO_READINTO) {
            if (get_writable(ob[0], &req->view, "buffer", -1) < 0)
                return -1;
        } else if (PyObject_GetBuffer(ob[0], &req->view, PyBUF_SIMPLE) < 0) {
            if (PyErr_ExceptionMatches(PyExc_TypeError))
                payload_type_error(ob[0]);
            return -1;
        }
        req->data = req->view.buf;
        req->nbytes = req->view.len > CAIO_MAX_IO_SIZE ? (size_t)CAIO_MAX_IO_SIZE
                                                  : (size_t)req->view.len;
    } else if (opcode == CAIO_READV || opcode == CAIO_WRITEV) {
        size_t total = 0;
        req->vec = vec_prepare(ob[0], opcode == CAIO_READV, caio_opcode_name(opcode), &total);
        if (req->vec == NULL)
            return -1;
        req->data = NULL;
        /* The kernel caps the whole transfer as it caps one read. */
        req->nbytes = total > CAIO_MAX_IO_SIZE ? (size_t)CAIO_MAX_IO_SIZE : total;
    } else {
        req->data = NULL;
        req->nbytes = 0;
    }
    req->opcode = (uint8_t)opcode;
    req->fd = fd;
    req->offset = offset;
    req->priority = priority;
    req->result = 0;
    req->next = NULL;
    return 0;
}

PyObject *caio_oserror_new(int err)
{
    return PyObject_CallFunction(PyExc_OSError, "is", err, strerror(err));
}

PyObject *caio_oserror(int err)
{
    PyObject *exc = caio_oserror_new(err);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

PyObject *caio_req_value(caio_req *req)
{
    if (req->result < 0)
        return caio_oserror((int)-req->result);

    switch (req->opcode) {
    case CAIO_READ:
        if (req->buffer == NULL) {
            /* An earlier shrink failed and lost the buffer. */
            return PyErr_NoMemory();
        }
        if (req->result < PyBytes_GET_SIZE(req->buffer)) {
            if (Py_REFCNT(req->buffer) == 1) {
                /* Nobody else sees it: shrink in place (no copy for
                 * small shrinks, realloc otherwise). */
                if (_PyBytes_Resize(&req->buffer, req->result) < 0) {
                    req->data = NULL;
                    return NULL;
                }
            } else {
                PyObject *copy = PyBytes_FromStringAndSize(
                    PyBytes_AS_STRING(req->buffer), req->result);
                if (copy == NULL)
                    return NULL;
                Py_SETREF(req->buffer, copy);
            }
            req->data = PyBytes_AS_STRING(req->buffer);
        }
        return Py_NewRef(req->buffer);
    case CAIO_WRITE:
    case CAIO_READINTO:
    case CAIO_READV:
    case CAIO_WRITEV:
        return PyLong_FromSsize_t(req->result);
    default:
        if (req->opcode == CAIO_FS)
            return caio_fs_value(req);
        Py_RETURN_NONE;
    }
}

/* Inline where it runs once per operation (caio_req_put). */
static inline void release_buffers(caio_req *req)
{
    if (req->view.obj != NULL)
        PyBuffer_Release(&req->view);
    if (__builtin_expect(req->vec != NULL, 0)) {
        vec_free(req->vec);
        req->vec = NULL;
    }
}

void caio_req_release_buffers(caio_req *req)
{
    release_buffers(req);
}

static inline void req_clear(caio_req *req)
{
    Py_CLEAR(req->buffer);
    release_buffers(req);
    Py_CLEAR(req->future);
    req->data = NULL;
    req->state = CAIO_REQ_FREE;
    req->flags &= (uint8_t)~CAIO_REQ_CANCEL_ASKED;
    req->next = NULL;
}

void caio_req_clear(caio_req *req)
{
    req_clear(req);
}

/* ---- futures ------------------------------------------------------------ */

static PyObject *str_set_result = NULL;
static PyObject *str_set_exception = NULL;
static PyObject *invalid_state_error = NULL;

int caio_futures_init(void)
{
    PyObject *asyncio;

    if (invalid_state_error != NULL)
        return 0;
    if (str_set_result == NULL &&
        (str_set_result = PyUnicode_InternFromString("set_result")) == NULL)
        return -1;
    if (str_set_exception == NULL &&
        (str_set_exception = PyUnicode_InternFromString("set_exception")) == NULL)
        return -1;
    asyncio = PyImport_ImportModule("asyncio");
    if (asyncio == NULL)
        return -1;
    invalid_state_error = PyObject_GetAttrString(asyncio, "InvalidStateError");
    Py_DECREF(asyncio);
    return invalid_state_error == NULL ? -1 : 0;
}

/* True when fut belongs to a loop that is closed (asks fut.get_loop()). */
static int future_loop_closed(PyObject *fut)
{
    PyObject *loop, *closed;
    int result = 0;
    caio_saved_error saved = caio_error_save();

    loop = PyObject_CallMethod(fut, "get_loop", NULL);
    if (loop != NULL) {
        closed = PyObject_CallMethod(loop, "is_closed", NULL);
        if (closed != NULL) {
            result = PyObject_IsTrue(closed) == 1;
            Py_DECREF(closed);
        }
        Py_DECREF(loop);
    }
    PyErr_Clear();
    caio_error_restore(saved);
    return result;
}

/* A result nobody takes (its future was cancelled, or its loop closed):
 * what a filesystem operation made (an opened fd) is given back. */
static void result_dropped(caio_req *req)
{
    if (req != NULL && req->opcode == CAIO_FS && req->result >= 0)
        caio_fs_dropped(req);
}

/* fut.set_result(arg) / fut.set_exception(arg), by name, for req (or NULL). */
static int future_call(PyObject *fut, PyObject *name, PyObject *arg, caio_req *req)
{
    PyObject *r = PyObject_CallMethodOneArg(fut, name, arg);

    if (r == NULL) {
        /* Cancelled while the kernel worked: nobody wants the result. */
        if (PyErr_ExceptionMatches(invalid_state_error)) {
            PyErr_Clear();
            result_dropped(req);
            return 0;
        }
        /* The loop was closed with the operation in flight (a context
         * closed at exit, after asyncio.run() returned): the future can
         * never be awaited again, so there is nobody to tell. */
        if (PyErr_ExceptionMatches(PyExc_RuntimeError) && future_loop_closed(fut)) {
            PyErr_Clear();
            result_dropped(req);
            return 0;
        }
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

int caio_req_resolve_future(caio_req *req)
{
    PyObject *fut = req->future, *arg, *name;
    int rc;

    if (fut == NULL)
        return 0;
    if (req->result < 0) {
        /* Build the exception directly: raising and fetching it costs more. */
        arg = caio_oserror_new((int)-req->result);
        name = str_set_exception;
    } else {
        arg = caio_req_value(req);
        name = str_set_result;
        if (arg == NULL) {
            arg = caio_fetch_exception();
            name = str_set_exception;
        }
    }
    if (arg == NULL)
        return -1;
    rc = future_call(fut, name, arg, req);
    Py_DECREF(arg);
    return rc;
}

int caio_future_set_exception(PyObject *fut, PyObject *exc)
{
    return future_call(fut, str_set_exception, exc, NULL);
}

/* ---- pool --------------------------------------------------------------- */

int caio_req_pool_init(caio_req_pool *pool, size_t size)
{
    if (size == 0)
        size = 1;
    pool->reqs = PyMem_Calloc(size, sizeof(caio_req));
    if (pool->reqs == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    pool->size = size;
    pool->free_list = NULL;
    for (size_t i = size; i-- > 0;) {
        pool->reqs[i].next = pool->free_list;
        pool->free_list = &pool->reqs[i];
    }
    return 0;
}

/* Memory given up on (a worker or the kernel may still write into it) is
 * never freed, and stays listed here: reachable, so that a leak checker
 * (valgrind's memcheck) reports it as kept on purpose, not as lost. The
 * GIL protects the list. */
struct caio_kept {
    struct caio_kept *next;
    void *memory;
};
static struct caio_kept *kept_memory;

static void keep_forever(void *memory)
{
    struct caio_kept *kept = PyMem_Malloc(sizeof(*kept));

    if (kept == NULL)
        return;     /* never freed all the same, only not listed */
    kept->memory = memory;
    kept->next = kept_memory;
    kept_memory = kept;
}

void caio_req_pool_free(caio_req_pool *pool, int leak)
{
    if (leak)
        keep_forever(pool->reqs);
    else
        PyMem_Free(pool->reqs);
    pool->reqs = NULL;
    pool->free_list = NULL;
    pool->size = 0;
}

caio_req *caio_req_get(caio_req_pool *pool)
{
    caio_req *req = pool->free_list;

    if (req != NULL) {
        pool->free_list = req->next;
        req->next = NULL;
        return req;
    }
    req = PyMem_Calloc(1, sizeof(caio_req));
    if (req == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    req->flags = CAIO_REQ_HEAP;
    return req;
}

void caio_req_put(caio_req_pool *pool, caio_req *req)
{
    req_clear(req);
    if (req->flags & CAIO_REQ_HEAP) {
        PyMem_Free(req);
        return;
    }
    req->next = pool->free_list;
    pool->free_list = req;
}

int caio_vec_may_write_here(caio_req *req, caio_fd_memo *direct)
{
    const caio_vec *vec = req->vec;
    Py_ssize_t i;

    /* O_DIRECT refuses a vector with any unaligned buffer at once. */
    for (i = 0; i < vec->count; i++)
        if (!caio_nowait_may_be_direct(vec->iov[i].iov_base, vec->iov[i].iov_len))
            return 1;
    for (i = 0; i < vec->count; i++)
        if (!PyBytes_CheckExact(vec->views[i].obj))
            return 0;   /* all aligned, on purpose */
    return !caio_fd_is_direct(req->fd, direct);
}

ssize_t caio_req_write_here(caio_req *req, int *nogil)
{
    const caio_vec *vec = req->opcode == CAIO_WRITEV ? req->vec : NULL;
    ssize_t n;
    int err = 0;

    if (nogil != NULL)
        *nogil = 1;
    Py_BEGIN_ALLOW_THREADS
    do {
        /* (vec->count <= IOV_MAX: caio_req_prepare refuses more.) */
        n = vec != NULL ? pwritev(req->fd, vec->iov, (int)vec->count, (off_t)req->offset)
                        : pwrite(req->fd, req->data, req->nbytes, (off_t)req->offset);
    } while (n < 0 && (err = errno) == EINTR);
    Py_END_ALLOW_THREADS
    if (nogil != NULL)
        *nogil = 0;
    return n >= 0 ? n : -err;
}
