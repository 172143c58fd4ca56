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
#include <linux/magic.h>
#include <linux/openat2.h>      /* struct open_how, RESOLVE_CACHED (5.12) */
#include <sys/vfs.h>
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

/* ---- stat of a cached path on the calling thread (GIL held) ------------------
 *
 * STATX through io_uring always goes to an io-wq worker (the kernel has no
 * non-blocking statx), and through thread_aio to one of ours: either way
 * the coroutine suspends for what os.stat does in about a microsecond. A
 * stat cannot block when (a) the path lookup needs no I/O: every
 * component is in the dentry cache, which openat2(RESOLVE_CACHED) checks,
 * failing with EAGAIN otherwise, and (b) getattr needs no I/O: local
 * filesystems keep the attributes in the in-memory inode; network ones
 * (NFS, CIFS, FUSE, 9p, Ceph...) may ask their server, unless statx gets
 * AT_STATX_DONT_SYNC. So: open an O_PATH descriptor with RESOLVE_CACHED,
 * statx it with AT_STATX_DONT_SYNC (which local filesystems ignore: their
 * answer is the one os.stat gets), and keep the answer only when its
 * device is on a filesystem of LOCAL_FS; the others go the slow way, where
 * the statx syncs as os.stat does. A device is classified once (fstatfs)
 * and remembered: a block device's filesystem is local by construction
 * (major != 0); only anonymous devices (tmpfs, overlay, btrfs, NFS...)
 * are asked, once each, with fstatfs (on a network filesystem that one
 * call may ask the server). A device number reused by a later mount of
 * another type keeps the first one's class (documented limit).
 *
 * Errors of a cached lookup (ENOENT from a negative dentry, ENOTDIR, ELOOP,
 * EACCES, ENAMETOOLONG) are the answer; any other (EAGAIN, EMFILE, ...)
 * hands the request to the slow path, which has the final word. A kernel
 * without openat2 or RESOLVE_CACHED (ENOSYS, E2BIG, EINVAL) turns the path
 * off for the process after the first try.
 *
 * The GIL stays held: two or three system calls of under a microsecond
 * each, none of which can wait for I/O; releasing and retaking the GIL
 * would cost about as much (see CAIO_NOWAIT_GIL_RELEASE for reads). */

#ifdef CAIO_HAVE_FS
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef RESOLVE_CACHED          /* headers older than Linux 5.12 */
#define RESOLVE_CACHED 0x20
#endif

static int stat_cached_missing;     /* the kernel lacks it: stop trying */

/* Filesystems whose getattr is a copy from the in-memory inode. */
static int local_fs(unsigned long type)
{
    switch (type) {
    case EXT4_SUPER_MAGIC:      /* also ext2, ext3 */
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
    case TMPFS_MAGIC:
    case RAMFS_MAGIC:
    case OVERLAYFS_SUPER_MAGIC:
    case F2FS_SUPER_MAGIC:
    case SQUASHFS_MAGIC:
    case ISOFS_SUPER_MAGIC:
    case MSDOS_SUPER_MAGIC:
    case EXFAT_SUPER_MAGIC:
    case EROFS_SUPER_MAGIC_V1:
    case PROC_SUPER_MAGIC:
    case SYSFS_MAGIC:
    case CGROUP2_SUPER_MAGIC:
    case 0x2fc12fc1:            /* zfs */
    case 0xca451a4e:            /* bcachefs */
        return 1;
    default:
        return 0;
    }
}

/* Devices already classified: (major << 32 | minor) + 1, and whether local.
 * The GIL guards it (every caller holds it). */
#define FS_SEEN 16
static struct { uint64_t dev; int local; } fs_seen[FS_SEEN];
static unsigned fs_seen_next;

static int device_is_local(const struct statx *stx, int fd)
{
    uint64_t dev = ((uint64_t)stx->stx_dev_major << 32 | stx->stx_dev_minor) + 1;
    struct statfs sfs;
    unsigned i;
    int local;

    if (stx->stx_dev_major != 0)
        return 1;       /* a block device's filesystem */
    for (i = 0; i < FS_SEEN; i++)
        if (fs_seen[i].dev == dev)
            return fs_seen[i].local;
    if (fstatfs(fd, &sfs) < 0)
        return 0;
    local = local_fs((unsigned long)sfs.f_type);
    fs_seen[fs_seen_next].dev = dev;
    fs_seen[fs_seen_next].local = local;
    fs_seen_next = (fs_seen_next + 1) % FS_SEEN;
    return local;
}

/* An openat2 error that is the stat's answer, not "ask the slow path". */
static int final_lookup_error(int err)
{
    return err == ENOENT || err == ENOTDIR || err == ELOOP || err == EACCES ||
           err == ENAMETOOLONG;
}

int caio_fs_stat_cached_probe(void)
{
    static int known = -1;
    struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_CACHED};
    int fd;

    if (known >= 0)
        return known;
    fd = (int)syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
    if (fd >= 0)
        close(fd);
    known = fd >= 0 || errno == EAGAIN;
    return known;
}

int caio_fs_stat_cached(caio_req *req)
{
    struct statx *stx = req->fs.statx;
    int flags = req->fs.flags, fd, done;
    long r;

    if (stat_cached_missing || (flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)) != 0)
        return 0;
    if (flags & AT_EMPTY_PATH) {
        /* fstat: no lookup. (A path with it is not what the adapter sends.) */
        if (((const char *)req->data)[0] != '\0')
            return 0;
        fd = req->fd;
    } else {
        struct open_how how = {
            .flags = O_PATH | O_CLOEXEC | (flags & AT_SYMLINK_NOFOLLOW ? O_NOFOLLOW : 0),
            .resolve = RESOLVE_CACHED,
        };
        fd = (int)syscall(SYS_openat2, req->fd, req->data, &how, sizeof how);
        if (fd < 0) {
            int err = errno;
            if (err == ENOSYS || err == E2BIG || err == EINVAL) {
                stat_cached_missing = 1;
                return 0;
            }
            if (!final_lookup_error(err))
                return 0;
            req->result = -err;
            return 1;
        }
    }
    r = syscall(SYS_statx, fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC,
                STATX_BASIC_STATS, stx);
    if (r == 0) {
        done = device_is_local(stx, fd);
        req->result = 0;
    } else {
        /* fstat of a bad fd (EBADF) is final; anything else, ask again. */
        done = (flags & AT_EMPTY_PATH) && errno == EBADF;
        req->result = -errno;
    }
    if (fd != req->fd)
        close(fd);
    if (!done) {
        memset(stx, 0, sizeof *stx);
        req->result = 0;
    }
    return done;
}
#else
int caio_fs_stat_cached_probe(void)
{
    return 0;
}

int caio_fs_stat_cached(caio_req *req)
{
    (void)req;
    return 0;
}
#endif

/* ---- fs_in_kernel ------------------------------------------------------------------- */

PyObject *caio_ctx_fs_in_kernel(PyObject *self, PyObject *op)
{
    long n;

    if (fs_op_number(op, &n) < 0)
        return NULL;
    return PyBool_FromLong((((caio_context *)self)->fs_kernel >> n) & 1);
}
