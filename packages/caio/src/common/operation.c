/* The Operation type: caio 0.12's low-level request object.
 *
 * Each backend module gets its own copy of this type (the file is compiled
 * into each extension), named after the module, so an operation can only be
 * submitted to a context of the backend that made it. */
#include "caio.h"
#include <structmember.h>

static CaioOperation *operation_new(PyTypeObject *type, int opcode,
                                    PyObject *const *args, Py_ssize_t nargs,
                                    PyObject *kwnames)
{
    CaioOperation *op = PyObject_GC_New(CaioOperation, type);

    if (op == NULL)
        return NULL;
    memset(&op->req, 0, sizeof(op->req));
    op->req.flags = CAIO_REQ_OWNED;
    op->req.owner = (PyObject *)op;
    op->callback = NULL;
    op->payload = NULL;
    op->context = NULL;
    op->weakreflist = NULL;
    if (caio_req_prepare(&op->req, NULL, opcode, args, nargs, kwnames) < 0) {
        Py_DECREF(op);
        return NULL;
    }
    if (opcode == CAIO_WRITE || opcode == CAIO_READINTO)
        op->payload = Py_NewRef(op->req.view.obj);
    else if (caio_opcode_vectored(opcode))
        op->payload = Py_NewRef(op->req.vec->source);
    PyObject_GC_Track(op);
    return op;
}

/* The constructors: Operation.read(...), .write(...), ... (class methods). */
#define OPERATION_CONSTRUCTOR(name, opcode)                                   \
    static PyObject *operation_##name(PyObject *cls, PyObject *const *args,   \
                                      Py_ssize_t nargs, PyObject *kwnames)    \
    {                                                                         \
        return (PyObject *)operation_new((PyTypeObject *)cls, opcode, args,   \
                                         nargs, kwnames);                     \
    }

OPERATION_CONSTRUCTOR(read, CAIO_READ)
OPERATION_CONSTRUCTOR(write, CAIO_WRITE)
OPERATION_CONSTRUCTOR(fsync, CAIO_FSYNC)
OPERATION_CONSTRUCTOR(fdsync, CAIO_FDSYNC)
OPERATION_CONSTRUCTOR(readinto, CAIO_READINTO)
OPERATION_CONSTRUCTOR(readv, CAIO_READV)
OPERATION_CONSTRUCTOR(writev, CAIO_WRITEV)

static PyObject *operation_set_callback(CaioOperation *op, PyObject *fn)
{
    if (caio_check_callable_or_none(fn, "callback") < 0)
        return NULL;
    Py_XSETREF(op->callback, fn == Py_None ? NULL : Py_NewRef(fn));
    Py_RETURN_TRUE;   /* as caio 0.12 did */
}

static PyObject *operation_get_value(CaioOperation *op, PyObject *unused)
{
    if (op->req.state != CAIO_REQ_DONE) {
        PyErr_SetString(PyExc_RuntimeError, "operation is not finished");
        return NULL;
    }
    return caio_req_value(&op->req);
}

static PyObject *operation_get_fileno(CaioOperation *op, void *closure)
{
    return PyLong_FromLong(op->req.fd);
}

static PyObject *operation_get_offset(CaioOperation *op, void *closure)
{
    return PyLong_FromLongLong(op->req.offset);
}

static PyObject *operation_get_nbytes(CaioOperation *op, void *closure)
{
    return PyLong_FromSize_t(op->req.nbytes);
}

static PyObject *operation_get_priority(CaioOperation *op, void *closure)
{
    return PyLong_FromLong(op->req.priority);
}

static PyObject *operation_get_result(CaioOperation *op, void *closure)
{
    return PyLong_FromSsize_t(op->req.state == CAIO_REQ_DONE ? op->req.result : 0);
}

static PyObject *operation_get_error(CaioOperation *op, void *closure)
{
    ssize_t r = op->req.state == CAIO_REQ_DONE ? op->req.result : 0;
    return PyLong_FromSsize_t(r < 0 ? -r : 0);
}

static PyObject *operation_get_context(CaioOperation *op, void *closure)
{
    PyObject *context;

    if (op->context == NULL)
        Py_RETURN_NONE;
#if PY_VERSION_HEX >= 0x030D0000
    if (PyWeakref_GetRef(op->context, &context) < 0)
        return NULL;
    return context != NULL ? context : Py_NewRef(Py_None);
#else
    context = PyWeakref_GetObject(op->context);
    return context != NULL ? Py_NewRef(context) : NULL;
#endif
}

static PyObject *operation_get_payload(CaioOperation *op, void *closure)
{
    if (op->req.state == CAIO_REQ_WAITING || op->req.state == CAIO_REQ_INFLIGHT) {
        /* A read's buffer is the kernel's until it is done. */
        PyErr_SetString(PyExc_RuntimeError,
                        "payload is not available while the operation is in flight");
        return NULL;
    }
    switch (op->req.opcode) {
    case CAIO_READ:
        if (op->req.state == CAIO_REQ_DONE && op->req.result >= 0)
            return caio_req_value(&op->req);
        Py_RETURN_NONE;
    case CAIO_WRITE:
    case CAIO_READINTO:
    case CAIO_READV:
    case CAIO_WRITEV:
        return Py_NewRef(op->payload ? op->payload : Py_None);
    default:
        Py_RETURN_NONE;
    }
}

static const char *const state_names[] = {"new", "waiting", "in flight", "done"};

static PyObject *operation_repr(CaioOperation *op)
{
    if (op->req.state == CAIO_REQ_DONE)
        return PyUnicode_FromFormat(
            "<%s %s fd=%d offset=%lld nbytes=%zu done result=%zd>",
            Py_TYPE(op)->tp_name, caio_opcode_name(op->req.opcode), op->req.fd,
            (long long)op->req.offset, op->req.nbytes, op->req.result);
    return PyUnicode_FromFormat(
        "<%s %s fd=%d offset=%lld nbytes=%zu %s>", Py_TYPE(op)->tp_name,
        caio_opcode_name(op->req.opcode), op->req.fd, (long long)op->req.offset,
        op->req.nbytes, state_names[op->req.state]);
}

static int operation_traverse(CaioOperation *op, visitproc visit, void *arg)
{
    Py_VISIT(op->callback);
    Py_VISIT(op->context);
    return 0;
}

static int operation_clear(CaioOperation *op)
{
    /* Only the callback: the buffer and payload may belong to the kernel
     * (a backend holds a reference to an operation in flight, so this
     * object cannot be freed before the completion arrives). */
    Py_CLEAR(op->callback);
    return 0;
}

static void operation_dealloc(CaioOperation *op)
{
    PyObject_GC_UnTrack(op);
    if (op->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)op);
    Py_CLEAR(op->callback);
    Py_CLEAR(op->payload);
    Py_CLEAR(op->context);
    caio_req_clear(&op->req);
    Py_TYPE(op)->tp_free((PyObject *)op);
}

static PyMethodDef operation_methods[] = {
    {"read", (PyCFunction)(void (*)(void))operation_read,
     METH_FASTCALL | METH_KEYWORDS | METH_CLASS,
     "read($type, /, nbytes, fd, offset, priority=0)\n--\n\n"
     "A read of nbytes at offset. Raises TypeError/ValueError (arguments),\n"
     "MemoryError."},
    {"write", (PyCFunction)(void (*)(void))operation_write,
     METH_FASTCALL | METH_KEYWORDS | METH_CLASS,
     "write($type, /, payload, fd, offset, priority=0)\n--\n\n"
     "A write of a contiguous buffer at offset (held until done).\n"
     "Raises TypeError/BufferError/ValueError (arguments)."},
    {"fsync", (PyCFunction)(void (*)(void))operation_fsync,
     METH_FASTCALL | METH_KEYWORDS | METH_CLASS,
     "fsync($type, /, fd, priority=0)\n--\n\nAn fsync. Raises TypeError/ValueError."},
    {"fdsync", (PyCFunction)(void (*)(void))operation_fdsync,
     METH_FASTCALL | METH_KEYWORDS | METH_CLASS,
     "fdsync($type, /, fd, priority=0)\n--\n\nAn fdatasync. Raises TypeError/ValueError."},
    {"readinto", (PyCFunction)(void (*)(void))operation_readinto,
     METH_FASTCALL | METH_KEYWORDS | METH_CLASS,
     "readinto($type, /, buffer, fd, offset, priority=0)\n--\n\n"
     "A read into a writable C-contiguous buffer at offset; the kernel writes\n"
     "into it directly. The buffer is held (cannot be resized) until done.\n"
     "Raises TypeError (not writable), BufferError/ValueError (arguments)."},
    {"readv", (PyCFunction)(void (*)(void))operation_readv,
     METH_FASTCALL | METH_KEYWORDS | METH_CLASS,
     "readv($type, /, buffers, fd, offset, priority=0)\n--\n\n"
     "One read at offset filling a sequence of writable buffers in order.\n"
     "Raises TypeError, BufferError, ValueError (more than IOV_MAX buffers)."},
    {"writev", (PyCFunction)(void (*)(void))operation_writev,
     METH_FASTCALL | METH_KEYWORDS | METH_CLASS,
     "writev($type, /, buffers, fd, offset, priority=0)\n--\n\n"
     "One write at offset of a sequence of buffers, in order.\n"
     "Raises TypeError, BufferError, ValueError (more than IOV_MAX buffers)."},
    {"set_callback", (PyCFunction)operation_set_callback, METH_O,
     "set_callback($self, fn, /)\n--\n\n"
     "fn(result: int) runs when the operation finishes (None: no callback).\n"
     "Returns True. Raises TypeError if fn is neither callable nor None."},
    {"get_value", (PyCFunction)operation_get_value, METH_NOARGS,
     "get_value($self, /)\n--\n\n"
     "The result: bytes (read), int (write, readinto, readv, writev) or\n"
     "None (sync).\n"
     "Raises OSError if the operation failed, RuntimeError if it has not finished."},
    {NULL}
};

static PyGetSetDef operation_getset[] = {
    {"fileno", (getter)operation_get_fileno, NULL, "The file descriptor.", NULL},
    {"offset", (getter)operation_get_offset, NULL, "The file offset.", NULL},
    {"nbytes", (getter)operation_get_nbytes, NULL, "Bytes to read or write.", NULL},
    {"payload", (getter)operation_get_payload, NULL,
     "write, readinto: the buffer (readv, writev: the sequence); read: the\n"
     "bytes read once done. RuntimeError while\n"
     "it is submitted and not done.", NULL},
    {"priority", (getter)operation_get_priority, NULL, "The priority given.", NULL},
    {"result", (getter)operation_get_result, NULL,
     "The raw result once done (bytes count, or -errno), else 0.", NULL},
    {"error", (getter)operation_get_error, NULL,
     "The errno it failed with once done, else 0.", NULL},
    {"context", (getter)operation_get_context, NULL,
     "The Context it was submitted to (None before, or once collected).", NULL},
    {NULL}
};

PyTypeObject CaioOperation_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "caio.Operation",   /* replaced by caio_operation_add_type */
    .tp_basicsize = sizeof(CaioOperation),
    .tp_dealloc = (destructor)operation_dealloc,
    .tp_repr = (reprfunc)operation_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One file I/O request. Made with read(), write(), readinto(), readv(),\n"
              "writev(), fsync() or fdsync().",
    .tp_traverse = (traverseproc)operation_traverse,
    .tp_clear = (inquiry)operation_clear,
    .tp_weaklistoffset = offsetof(CaioOperation, weakreflist),
    .tp_methods = operation_methods,
    .tp_getset = operation_getset,
};

int caio_operation_add_type(PyObject *module, const char *qualname)
{
    CaioOperation_Type.tp_name = qualname;
    if (PyType_Ready(&CaioOperation_Type) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "Operation", (PyObject *)&CaioOperation_Type);
}

caio_req *caio_operation_take(PyObject *ob, PyObject *ctxref)
{
    CaioOperation *op = (CaioOperation *)ob;

    if (op->req.state != CAIO_REQ_FREE)
        return NULL;
    Py_XSETREF(op->context, Py_NewRef(ctxref));
    return &op->req;
}

void caio_operation_run_callback(caio_req *req)
{
    CaioOperation *op = caio_req_operation(req);
    PyObject *fn, *arg, *r;

    if (op == NULL || op->callback == NULL)
        return;
    fn = Py_NewRef(op->callback);
    arg = PyLong_FromSsize_t(req->result);
    r = arg ? PyObject_CallOneArg(fn, arg) : NULL;
    if (r == NULL)
        PyErr_WriteUnraisable(fn);
    Py_XDECREF(r);
    Py_XDECREF(arg);
    Py_DECREF(fn);
}

void caio_operation_finish(caio_req *req)
{
    caio_req_release_buffers(req);
    caio_operation_run_callback(req);
}
