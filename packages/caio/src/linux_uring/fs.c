/* caio.linux_uring: filesystem operations as io_uring requests. Each row
 * of common/fsops.h is one opcode; the context's probe (made once, when it
 * is created) says which of them this kernel has. The paths and the statx
 * buffer belong to the request until its CQE arrives (common/caio.h). */
#include "context.h"
#include "fsops.h"

#include <fcntl.h>
#include <sys/stat.h>
#ifndef STATX_BASIC_STATS
#include <linux/stat.h>
#endif

/* Opcodes an older linux/io_uring.h may lack (ABI: the values never change). */
#define URING_OP_FTRUNCATE 55       /* Linux 6.9 */

static const uint8_t uring_fs_opcode[CAIO_FS_COUNT] = {
    [CAIO_FS_STAT] = IORING_OP_STATX,           /* 5.6 */
    [CAIO_FS_OPEN] = IORING_OP_OPENAT,          /* 5.6 */
    [CAIO_FS_CLOSE] = IORING_OP_CLOSE,          /* 5.6 */
    [CAIO_FS_RENAME] = IORING_OP_RENAMEAT,      /* 5.11 */
    [CAIO_FS_UNLINK] = IORING_OP_UNLINKAT,      /* 5.11 */
    [CAIO_FS_MKDIR] = IORING_OP_MKDIRAT,        /* 5.15 */
    [CAIO_FS_LINK] = IORING_OP_LINKAT,          /* 5.15 */
    [CAIO_FS_SYMLINK] = IORING_OP_SYMLINKAT,    /* 5.15 */
    [CAIO_FS_FTRUNCATE] = URING_OP_FTRUNCATE,
    [CAIO_FS_FALLOCATE] = IORING_OP_FALLOCATE,  /* 5.6 */
};

/* The kernel feature (common/kernel_features.h, found by the ring's probe
 * and masked by a test profile) each row needs. CLOSE and FALLOCATE came
 * with the probe itself (5.6). */
static const uint8_t uring_fs_feature[CAIO_FS_COUNT] = {
    [CAIO_FS_STAT] = CAIO_F_URING_STATX,
    [CAIO_FS_OPEN] = CAIO_F_URING_OPENAT,
    [CAIO_FS_CLOSE] = CAIO_F_URING_PROBE,
    [CAIO_FS_RENAME] = CAIO_F_URING_FS,
    [CAIO_FS_UNLINK] = CAIO_F_URING_FS,
    [CAIO_FS_MKDIR] = CAIO_F_URING_FS,
    [CAIO_FS_LINK] = CAIO_F_URING_FS,
    [CAIO_FS_SYMLINK] = CAIO_F_URING_FS,
    [CAIO_FS_FTRUNCATE] = CAIO_F_URING_FTRUNCATE,
    [CAIO_FS_FALLOCATE] = CAIO_F_URING_PROBE,
};

uint32_t uctx_fs_kernel_ops(const struct caio_features *features)
{
    uint32_t mask = 0;

    for (unsigned i = 0; i < CAIO_FS_COUNT; i++) {
        if (caio_has(features, (enum caio_feature)uring_fs_feature[i]))
            mask |= 1u << i;
    }
    return mask;
}

void uctx_prep_fs(struct io_uring_sqe *sqe, const caio_req *req)
{
    uint64_t ud = (uint64_t)(uintptr_t)req;
    uint64_t path = (uint64_t)(uintptr_t)req->data;
    uint64_t path2 = (uint64_t)(uintptr_t)req->fs.path2;
    uint8_t op = uring_fs_opcode[req->fs.op];
    int fd = req->fd, fd2 = req->fs.fd2;

    /* Field use per opcode: io_uring/fs.c, openclose.c, statx.c, sync.c,
     * truncate.c (addr2 and off are one field). */
    switch (req->fs.op) {
    case CAIO_FS_STAT:
        uring_prep(sqe, op, fd, path, STATX_BASIC_STATS,
                   (uint64_t)(uintptr_t)req->fs.statx, ud);
        sqe->statx_flags = (uint32_t)req->fs.flags;
        break;
    case CAIO_FS_OPEN:
        uring_prep(sqe, op, fd, path, req->fs.mode, 0, ud);
        sqe->open_flags = (uint32_t)req->fs.flags;
        break;
    case CAIO_FS_RENAME:
    case CAIO_FS_LINK:
        /* rename_flags and hardlink_flags are the same field */
        uring_prep(sqe, op, fd, path, (uint32_t)fd2, path2, ud);
        sqe->rename_flags = (uint32_t)req->fs.flags;
        break;
    case CAIO_FS_UNLINK:
        uring_prep(sqe, op, fd, path, 0, 0, ud);
        sqe->unlink_flags = (uint32_t)req->fs.flags;
        break;
    case CAIO_FS_MKDIR:
        uring_prep(sqe, op, fd, path, req->fs.mode, 0, ud);
        break;
    case CAIO_FS_SYMLINK:
        uring_prep(sqe, op, fd2, path, 0, path2, ud);
        break;
    case CAIO_FS_FALLOCATE:
        uring_prep(sqe, op, fd, (uint64_t)req->nbytes, req->fs.mode,
                   (uint64_t)req->offset, ud);
        break;
    default:    /* close, ftruncate: fd, and the length in off */
        uring_prep(sqe, op, fd, 0, 0, (uint64_t)req->offset, ud);
        break;
    }
}
