/* Filesystem operations: the table, argument checks, results, and the
 * system calls a worker makes. See fsops.h. */
#include "fsops.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#ifdef CAIO_HAVE_FS
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#ifndef STATX_BASIC_STATS       /* a C library older than struct statx */
#include <linux/stat.h>
#endif
#endif

const caio_fsop_info caio_fsops[CAIO_FS_COUNT] = {
    [CAIO_FS_STAT] = {"stat", CAIO_FSA_PATH, CAIO_FSR_STAT},
    [CAIO_FS_OPEN] = {"open", CAIO_FSA_PATH, CAIO_FSR_INT},
    [CAIO_FS_CLOSE] = {"close", 0, CAIO_FSR_NONE},
    [CAIO_FS_RENAME] = {"rename", CAIO_FSA_PATH | CAIO_FSA_PATH2, CAIO_FSR_NONE},
    [CAIO_FS_UNLINK] = {"unlink", CAIO_FSA_PATH, CAIO_FSR_NONE},
    [CAIO_FS_MKDIR] = {"mkdir", CAIO_FSA_PATH, CAIO_FSR_NONE},
    [CAIO_FS_LINK] = {"link", CAIO_FSA_PATH | CAIO_FSA_PATH2, CAIO_FSR_NONE},
    [CAIO_FS_SYMLINK] = {"symlink", CAIO_FSA_PATH | CAIO_FSA_PATH2, CAIO_FSR_NONE},
    [CAIO_FS_FTRUNCATE] = {"ftruncate", 0, CAIO_FSR_NONE},
    [CAIO_FS_FALLOCATE] = {"fallocate", 0, CAIO_FSR_NONE},
};

/* ---- arguments (GIL held) ------------------------------------------------------ */

static int fs_op_number(PyObject *ob, long *out)
{
    if (!PyLong_Check(ob)) {
        PyErr_Format(PyExc_TypeError, "op must be int, not %.100s", Py_TYPE(ob)->tp_name);
        return -1;
    }
    *out = PyLong_AsLong(ob);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    if (*out < 0 || *out >= CAIO_FS_COUNT) {
        PyErr_Format(PyExc_ValueError, "no filesystem operation number %ld", *out);
        return -1;
    }
    return 0;
}

static int fs_int64(PyObject *ob, const char *what, int64_t *out)
{
    long long value;

    if (!PyLong_Check(ob)) {
        PyErr_Format(PyExc_TypeError, "%s must be int, not %.100s", what,
                     Py_TYPE(ob)->tp_name);
        return -1;
    }
    value = PyLong_AsLongLong(ob);
    if (value == -1 && PyErr_Occurred())
        return -1;
    *out = (int64_t)value;
    return 0;
}

static int fs_int(PyObject *ob, const char *what, int *out)
{
    int64_t value;

    if (fs_int64(ob, what, &value) < 0)
        return -1;
    if (value < INT_MIN || value > INT_MAX) {
        PyErr_Format(PyExc_OverflowError, "%s is out of the range of a C int", what);
        return -1;
    }
    *out = (int)value;
    return 0;
}

/* bytes without a NUL inside where the row reads the path, None elsewhere. */
static int fs_path(PyObject *ob, const char *what, int wanted)
{
    if (!wanted) {
        if (ob == Py_None)
            return 0;
        PyErr_Format(PyExc_TypeError, "%s must be None for this operation", what);
        return -1;
    }
    if (!PyBytes_Check(ob)) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes, not %.100s", what,
                     Py_TYPE(ob)->tp_name);
        return -1;
    }
    if ((Py_ssize_t)strlen(PyBytes_AS_STRING(ob)) != PyBytes_GET_SIZE(ob)) {
        PyErr_SetString(PyExc_ValueError, "embedded null byte");   /* as os says */
        return -1;
    }
    return 0;
}

int caio_fs_check(uint32_t fs_kernel, int kernel_only, PyObject *const *args,
                  Py_ssize_t nargs)
{
    long op;

    if (nargs != 9) {
        PyErr_Format(PyExc_TypeError, "fs_async() takes exactly 9 arguments (%zd given)",
                     nargs);
        return -1;
    }
    if (fs_op_number(args[0], &op) < 0)
        return -1;
    if (kernel_only && !(fs_kernel & (1u << op))) {
        PyErr_Format(PyExc_NotImplementedError,
                     "%s is not an io_uring operation of this kernel: run it on a thread",
                     caio_fsops[op].name);
        return -1;
    }
    return 0;
}

int caio_fs_prepare(caio_req *req, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames)
{
    const caio_fsop_info *info;
    int fd, fd2, flags, mode;
    int64_t offset, length;
    long op;

    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
        PyErr_SetString(PyExc_TypeError, "fs_async() takes no keyword arguments");
        return -1;
    }
    if (caio_fs_check(0, 0, args, nargs) < 0 || fs_op_number(args[0], &op) < 0)
        return -1;
    info = &caio_fsops[op];
    if (fs_int(args[1], "fd", &fd) < 0 ||
        fs_path(args[2], "path", info->args & CAIO_FSA_PATH) < 0 ||
        fs_path(args[3], "path2", info->args & CAIO_FSA_PATH2) < 0 ||
        fs_int(args[4], "fd2", &fd2) < 0 || fs_int(args[5], "flags", &flags) < 0 ||
        fs_int(args[6], "mode", &mode) < 0 || fs_int64(args[7], "offset", &offset) < 0 ||
        fs_int64(args[8], "length", &length) < 0)
        return -1;

    /* Everything is checked: now hold the paths (and make the statx
     * buffer) for as long as the request lives. */
    req->data = NULL;
    req->fs.path2 = NULL;
    req->fs.statx = NULL;
    if (info->args & CAIO_FSA_PATH) {
        if (PyObject_GetBuffer(args[2], &req->view, PyBUF_SIMPLE) < 0)
            return -1;
        req->data = req->view.buf;      /* bytes end with a NUL */
    }
    if (info->args & CAIO_FSA_PATH2) {
        req->buffer = Py_NewRef(args[3]);
        req->fs.path2 = PyBytes_AS_STRING(req->buffer);
    } else if (info->result == CAIO_FSR_STAT) {
#ifdef CAIO_HAVE_FS
        req->buffer = PyBytes_FromStringAndSize(NULL, sizeof(struct statx));
        if (req->buffer == NULL) {
            PyBuffer_Release(&req->view);
            return -1;
        }
        req->fs.statx = PyBytes_AS_STRING(req->buffer);
        memset(req->fs.statx, 0, sizeof(struct statx));
#endif
    }
    req->opcode = CAIO_FS;
    req->fs.op = (uint8_t)op;
    req->fs.fd2 = fd2;
    req->fs.flags = flags;
    req->fs.mode = (unsigned)mode;
    req->fd = fd;
    req->offset = offset;
    req->nbytes = (size_t)length;   /* fallocate's length; (int64_t) gives it back */
    req->priority = 0;
    req->result = 0;
    req->next = NULL;
    return 0;
}

/* ---- results (GIL held) ---------------------------------------------------------- */

#ifdef CAIO_HAVE_FS
static PyObject *stat_result_type;
static Py_ssize_t stat_result_fields;

static int stat_result_init(void)
{
    PyObject *os, *n;

    if (stat_result_type != NULL)
        return 0;
    if ((os = PyImport_ImportModule("os")) == NULL)
        return -1;
    stat_result_type = PyObject_GetAttrString(os, "stat_result");
    Py_DECREF(os);
    if (stat_result_type == NULL)
        return -1;
    if ((n = PyObject_GetAttrString(stat_result_type, "n_fields")) == NULL)
        return -1;
    stat_result_fields = PyLong_AsSsize_t(n);
    Py_DECREF(n);
    if (stat_result_fields < 19) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_SystemError, "caio: os.stat_result has too few fields");
        Py_CLEAR(stat_result_type);
        return -1;
    }
    return 0;
}

/* What os.stat gives for a uid or gid: -1 for (uid_t)-1. */
static PyObject *id_value(uint32_t id)
{
    if (id == (uint32_t)-1)
        return PyLong_FromLong(-1);
    return PyLong_FromUnsignedLong(id);
}

/* sec * 10**9 + nsec as os.stat computes st_*time_ns. */
static PyObject *time_ns(int64_t sec, uint32_t nsec)
{
    long long ns;
    PyObject *s, *billion, *product, *result;

    if (!__builtin_mul_overflow(sec, 1000000000LL, &ns) &&
        !__builtin_add_overflow(ns, (long long)nsec, &ns))
        return PyLong_FromLongLong(ns);
    s = PyLong_FromLongLong(sec);
    billion = PyLong_FromLong(1000000000L);
    product = s && billion ? PyNumber_Multiply(s, billion) : NULL;
    Py_XDECREF(s);
    Py_XDECREF(billion);
    if (product == NULL)
        return NULL;
    s = PyLong_FromUnsignedLong(nsec);
    result = s ? PyNumber_Add(product, s) : NULL;
    Py_XDECREF(s);
    Py_DECREF(product);
    return result;
}

/* os.stat_result from a struct statx, field by field as os.stat fills it
 * from a struct stat (Modules/posixmodule.c, _pystat_fromstructstat). */
static PyObject *stat_result_new(const struct statx *st)
{
    const struct statx_timestamp *ts[3] = {&st->stx_atime, &st->stx_mtime, &st->stx_ctime};
    PyObject *v, *item;
    Py_ssize_t i;

    if (stat_result_init() < 0)
        return NULL;
    if ((v = PyStructSequence_New((PyTypeObject *)stat_result_type)) == NULL)
        return NULL;
    for (i = 0; i < stat_result_fields; i++) {
        switch (i) {
        case 0: item = PyLong_FromLong(st->stx_mode); break;
        case 1: item = PyLong_FromUnsignedLongLong(st->stx_ino); break;
        case 2:
            item = PyLong_FromUnsignedLongLong(makedev(st->stx_dev_major, st->stx_dev_minor));
            break;
        case 3: item = PyLong_FromLong((long)st->stx_nlink); break;
        case 4: item = id_value(st->stx_uid); break;
        case 5: item = id_value(st->stx_gid); break;
        case 6: item = PyLong_FromLongLong((long long)st->stx_size); break;
        case 7: case 8: case 9:         /* int seconds */
            item = PyLong_FromLongLong(ts[i - 7]->tv_sec);
            break;
        case 10: case 11: case 12:      /* float seconds */
            item = PyFloat_FromDouble((double)ts[i - 10]->tv_sec +
                                      ts[i - 10]->tv_nsec * 1e-9);
            break;
        case 13: case 14: case 15:      /* nanoseconds */
            item = time_ns(ts[i - 13]->tv_sec, ts[i - 13]->tv_nsec);
            break;
        case 16: item = PyLong_FromLong((long)st->stx_blksize); break;
        case 17: item = PyLong_FromLong((long)st->stx_blocks); break;
        case 18:
            item = PyLong_FromUnsignedLongLong(makedev(st->stx_rdev_major, st->stx_rdev_minor));
            break;
        default: item = Py_NewRef(Py_None); break;  /* not on Linux */
        }
        if (item == NULL) {
            /* The fields not set yet are NULL: a struct sequence frees those. */
            Py_DECREF(v);
            return NULL;
        }
        PyStructSequence_SetItem(v, i, item);
    }
    return v;
}
#endif

PyObject *caio_fs_value(caio_req *req)
{
    switch (caio_fsops[req->fs.op].result) {
    case CAIO_FSR_INT:
        return PyLong_FromSsize_t(req->result);
#ifdef CAIO_HAVE_FS
    case CAIO_FSR_STAT:
        return stat_result_new(req->fs.statx);
#endif
    default:
        Py_RETURN_NONE;
    }
}

void caio_fs_dropped(caio_req *req)
{
    if (req->fs.op == CAIO_FS_OPEN && req->result >= 0)
        close((int)req->result);
}

/* ---- the system calls (a worker, no GIL) ----------------------------------------- */

ssize_t caio_fs_syscall(const caio_req *req)
{
#ifdef CAIO_HAVE_FS
    const char *path = req->data, *path2 = req->fs.path2;
    int fd = req->fd, fd2 = req->fs.fd2, flags = req->fs.flags;
    long r;

    switch (req->fs.op) {
    case CAIO_FS_STAT:
        r = syscall(SYS_statx, fd, path, flags, STATX_BASIC_STATS, req->fs.statx);
        break;
    case CAIO_FS_OPEN:
        do
            r = openat(fd, path, flags, (mode_t)req->fs.mode);
        while (r < 0 && errno == EINTR);
        break;
    case CAIO_FS_CLOSE:
        /* Not retried on EINTR: Linux has closed the fd by then. */
        r = close(fd);
        break;
    case CAIO_FS_RENAME:
        r = renameat(fd, path, fd2, path2);
        break;
    case CAIO_FS_UNLINK:
        r = unlinkat(fd, path, flags);
        break;
    case CAIO_FS_MKDIR:
        r = mkdirat(fd, path, (mode_t)req->fs.mode);
        break;
    case CAIO_FS_LINK:
        r = linkat(fd, path, fd2, path2, flags);
        break;
    case CAIO_FS_SYMLINK:
        r = symlinkat(path, fd2, path2);
        break;
    case CAIO_FS_FTRUNCATE:
        do
            r = ftruncate(fd, (off_t)req->offset);
        while (r < 0 && errno == EINTR);
        break;
    case CAIO_FS_FALLOCATE:
        do
            r = fallocate(fd, (int)req->fs.mode, (off_t)req->offset,
                          (off_t)(int64_t)req->nbytes);
        while (r < 0 && errno == EINTR);
        break;
    default:
        return -EINVAL;
    }
    return r < 0 ? -errno : r;
#else
    return -ENOSYS;
#endif
}

/* ---- fs_in_kernel ------------------------------------------------------------------- */

PyObject *caio_ctx_fs_in_kernel(PyObject *self, PyObject *op)
{
    long n;

    if (fs_op_number(op, &n) < 0)
        return NULL;
    return PyBool_FromLong((((caio_context *)self)->fs_kernel >> n) & 1);
}
