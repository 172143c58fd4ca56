/* What this kernel's io_uring offers, once per ring: the setup features the
 * kernel reported, the setup flags it accepted, and an IORING_REGISTER_PROBE
 * of the opcodes, kept in ring->features (common/kernel_features.h). The test
 * switch (CAIO_KERNEL_PROFILE, CAIO_KERNEL_LACKS) hides features here, so
 * that the rest of the backend takes the way of a kernel without them. */
#include "uring.h"

#include <errno.h>
#include <stdlib.h>

/* Opcodes newer than the 5.6 UAPI headers we need at least (an enum there:
 * no #ifdef). The numbers are ABI. */
#define CAIO_URING_OP_RENAMEAT 35
#define CAIO_URING_OP_UNLINKAT 36
#define CAIO_URING_OP_MKDIRAT 37
#define CAIO_URING_OP_SYMLINKAT 38
#define CAIO_URING_OP_LINKAT 39
#define CAIO_URING_OP_FTRUNCATE 55

static int op_supported(const struct io_uring_probe *probe, unsigned op)
{
    return op <= probe->last_op && (probe->ops[op].flags & IO_URING_OP_SUPPORTED);
}

static void set_ops(struct caio_features *fs, const struct io_uring_probe *probe)
{
    static const unsigned fs_ops[] = {
        CAIO_URING_OP_RENAMEAT, CAIO_URING_OP_UNLINKAT, CAIO_URING_OP_MKDIRAT,
        CAIO_URING_OP_SYMLINKAT, CAIO_URING_OP_LINKAT,
    };
    int all_fs = 1;

    for (size_t i = 0; i < sizeof(fs_ops) / sizeof(*fs_ops); i++)
        all_fs &= op_supported(probe, fs_ops[i]);
    caio_features_set(fs, CAIO_F_URING_CANCEL, op_supported(probe, IORING_OP_ASYNC_CANCEL));
    caio_features_set(fs, CAIO_F_URING_READ_WRITE,
                      op_supported(probe, IORING_OP_READ) &&
                      op_supported(probe, IORING_OP_WRITE) &&
                      op_supported(probe, IORING_OP_FSYNC));
    caio_features_set(fs, CAIO_F_URING_STATX, op_supported(probe, IORING_OP_STATX));
    caio_features_set(fs, CAIO_F_URING_OPENAT, op_supported(probe, IORING_OP_OPENAT));
    caio_features_set(fs, CAIO_F_URING_FS, all_fs);
    caio_features_set(fs, CAIO_F_URING_FTRUNCATE,
                      op_supported(probe, CAIO_URING_OP_FTRUNCATE));
}

int uring_discover(struct uring *ring, unsigned kernel_features)
{
    const unsigned nops = 256;
    struct caio_features *fs = &ring->features;
    struct io_uring_probe *probe;
    int err = 0;

    fs->have = 0;
    caio_features_common(fs);
    caio_features_set(fs, CAIO_F_URING, 1);
    caio_features_set(fs, CAIO_F_URING_SINGLE_MMAP,
                      (kernel_features & IORING_FEAT_SINGLE_MMAP) != 0);
    caio_features_set(fs, CAIO_F_URING_NODROP, (kernel_features & IORING_FEAT_NODROP) != 0);
    caio_features_set(fs, CAIO_F_URING_EXT_ARG, (kernel_features & IORING_FEAT_EXT_ARG) != 0);
    caio_features_set(fs, CAIO_F_URING_SUBMIT_ALL,
                      (ring->setup_flags & IORING_SETUP_SUBMIT_ALL) != 0);
    caio_features_set(fs, CAIO_F_URING_COOP_TASKRUN,
                      (ring->setup_flags & IORING_SETUP_COOP_TASKRUN) != 0);
    /* No probe tells: a kernel before 5.19 answers the cancel with EINVAL,
     * and close() then cancels one request at a time (context.c). */
    caio_features_set(fs, CAIO_F_URING_CANCEL_ANY, 1);

    if (caio_kernel_lacks(CAIO_F_URING_PROBE))
        return -EINVAL;     /* what a kernel before 5.6 answers */
    probe = calloc(1, sizeof(*probe) + nops * sizeof(struct io_uring_probe_op));
    if (probe == NULL)
        return -ENOMEM;
    if (sys_io_uring_register(ring->fd, IORING_REGISTER_PROBE, probe, nops) < 0) {
        err = -errno;
    } else {
        caio_features_set(fs, CAIO_F_URING_PROBE, 1);
        set_ops(fs, probe);
    }
    free(probe);
    return err;
}

int uring_lacks_required(const struct uring *ring, const char **stage)
{
    if (!caio_has(&ring->features, CAIO_F_URING_PROBE)) {
        *stage = "IORING_REGISTER_PROBE";
        return -EINVAL;
    }
    if (!caio_has(&ring->features, CAIO_F_URING_READ_WRITE)) {
        *stage = "IORING_OP_READ";
        return -EOPNOTSUPP;
    }
    if (!caio_has(&ring->features, CAIO_F_URING_CANCEL)) {
        *stage = "IORING_OP_ASYNC_CANCEL";
        return -EOPNOTSUPP;
    }
    return 0;
}

unsigned uring_allowed_setup_flags(void)
{
    unsigned hidden = 0;

    if (caio_kernel_lacks(CAIO_F_URING_SUBMIT_ALL))
        hidden |= IORING_SETUP_SUBMIT_ALL;
    if (caio_kernel_lacks(CAIO_F_URING_COOP_TASKRUN))
        hidden |= IORING_SETUP_COOP_TASKRUN;
    return ~hidden;
}
