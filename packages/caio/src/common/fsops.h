/* Filesystem operations: stat, open, close, rename, unlink/rmdir, mkdir,
 * link, symlink, ftruncate, fallocate.
 *
 * One request shape serves them all (CAIO_FS, req->fs in caio.h): a
 * directory fd and a path (req->fd, req->data), a second directory fd and
 * path (req->fs.fd2, req->fs.path2), flags, a mode, an offset and a length
 * (req->offset, req->nbytes). Each operation is a row of caio_fsops: which
 * of those it reads and what its result is. The kernel layers map a row to
 * their way of doing it: an io_uring opcode (linux_uring/fs.c) or a system
 * call in a worker (caio_fs_syscall, for thread_aio's pool).
 *
 * The Python side (caio/_fsops.py) numbers the operations the same way and
 * turns os-style arguments (str, bytes, PathLike, dir_fd=None, ...) into
 * these; it also puts the file names into a failed operation's OSError. */
#ifndef CAIO_FSOPS_H
#define CAIO_FSOPS_H

#include "protocol.h"

/* Linux only: statx, the AT_* values the Python side uses, and io_uring.
 * Elsewhere no backend offers fs_async and the adapter runs the os
 * functions on its executor. */
#ifdef __linux__
#define CAIO_HAVE_FS 1
#endif

enum caio_fsop {            /* the order of caio/_fsops.py's NAMES */
    CAIO_FS_STAT = 0,       /* statx(fd, path, flags); fstat: AT_EMPTY_PATH, "" */
    CAIO_FS_OPEN,           /* openat(fd, path, flags, mode) */
    CAIO_FS_CLOSE,          /* close(fd) */
    CAIO_FS_RENAME,         /* renameat(fd, path, fd2, path2) */
    CAIO_FS_UNLINK,         /* unlinkat(fd, path, flags); AT_REMOVEDIR: rmdir */
    CAIO_FS_MKDIR,          /* mkdirat(fd, path, mode) */
    CAIO_FS_LINK,           /* linkat(fd, path, fd2, path2, flags) */
    CAIO_FS_SYMLINK,        /* symlinkat(path, fd2, path2) */
    CAIO_FS_FTRUNCATE,      /* ftruncate(fd, offset) */
    CAIO_FS_FALLOCATE,      /* fallocate(fd, mode, offset, length) */
    CAIO_FS_COUNT
};

/* What a row reads (args) and gives back (result). */
#define CAIO_FSA_PATH 0x01
#define CAIO_FSA_PATH2 0x02
enum caio_fs_result { CAIO_FSR_NONE = 0, CAIO_FSR_INT, CAIO_FSR_STAT };

typedef struct {
    const char *name;
    uint8_t args;
    uint8_t result;
} caio_fsop_info;

CAIO_API extern const caio_fsop_info caio_fsops[CAIO_FS_COUNT];

/* fs_async(op, fd, path, path2, fd2, flags, mode, offset, length): fill req
 * (caio_req_prepare calls this for CAIO_FS). path and path2 are bytes
 * where the row reads them, else None. 0, or -1 with TypeError/ValueError
 * and nothing held. */
CAIO_API int caio_fs_prepare(caio_req *req, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames);

/* The value of a finished CAIO_FS request: None, an int (open's fd) or an
 * os.stat_result built as os.stat builds it. NULL with an exception. */
CAIO_API PyObject *caio_fs_value(caio_req *req);

/* A successful result nobody will take (its future was cancelled, or its
 * loop closed): give back what it made, i.e. close an opened fd. */
CAIO_API void caio_fs_dropped(caio_req *req);

/* Do the request as a system call (a worker, GIL not held): the result
 * or -errno. Touches no Python object. */
CAIO_API ssize_t caio_fs_syscall(const caio_req *req);

/* The inline path of a stat (CAIO_FS_STAT, prepared): a path whose every
 * component is in the dentry cache, or an fd, on a local filesystem, is
 * answered on the calling thread without blocking (openat2 RESOLVE_CACHED,
 * then statx of the O_PATH fd; fsops.c says why it cannot block). 1: done,
 * req->result is 0 or -errno and req->fs.statx is filled; 0: the ring or a
 * worker must do it. The GIL stays held. No Python object touched. */
CAIO_API int caio_fs_stat_cached(caio_req *req);

/* 1 when this kernel has openat2 with RESOLVE_CACHED (asked once per
 * process): the feature CAIO_F_STAT_CACHED ("stat_cached") of
 * kernel_features.h, which a context needs for its stat_cached field. */
CAIO_API int caio_fs_stat_cached_probe(void);

/* Try a prepared fs request inline: 1 when req->result is final. Only stat
 * has an inline path, and only when ctx->stat_cached. */
static inline int caio_fs_inline(const caio_context *ctx, caio_req *req)
{
    return req->fs.op == CAIO_FS_STAT && ctx->stat_cached && caio_fs_stat_cached(req);
}

/* 0 when fs_async may take this call; otherwise -1 with NotImplementedError
 * (a context with no worker for operations its kernel lacks), or with the
 * TypeError/ValueError of a bad op argument. */
CAIO_API int caio_fs_check(uint32_t fs_kernel, int kernel_only,
                           PyObject *const *args, Py_ssize_t nargs);

#define CAIO_DOC_FS_ASYNC                                                     \
    "fs_async($self, op, fd, path, path2, fd2, flags, mode, offset, length, /)\n--\n\n" \
    "Filesystem operation number op (caio._fsops.NAMES) with the arguments\n" \
    "of its row (src/common/fsops.h): None, an int or an os.stat_result if\n" \
    "it finished during the call, else a future of it. OSError carries no\n" \
    "file name (the asyncio adapter adds it).\n"                             \
    "Raises NotImplementedError (no way to run op here), OSError,\n"       \
    "TypeError/ValueError, RuntimeError before set_future_factory().\n"     \
    CAIO_RAISES_COMMON

/* The fs_async trampoline, for the backends that offer it (module.c). */
#define CAIO_FS_TRAMPOLINE(Ctx, core)                                         \
    static PyObject *ctx_fs_async(Ctx *self, PyObject *const *args,          \
                                  Py_ssize_t nargs)                          \
    {                                                                         \
        if (caio_fs_check(self->fs_kernel, self->fs_kernel_only, args, nargs) < 0) \
            return NULL;                                                      \
        return core(self, CAIO_FS, args, nargs, NULL);                        \
    }

#define CAIO_FS_METHODS                                                       \
    {"fs_async", CAIO_METH(ctx_fs_async), METH_FASTCALL, CAIO_DOC_FS_ASYNC}

#endif
