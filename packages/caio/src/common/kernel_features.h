/* Kernel features: what the running kernel offers, discovered once per
 * context and kept in one struct caio_features (io_uring's setup features
 * and opcode probe, RWF_NOWAIT, ...), and the test-only mask that hides
 * some of them (caio/_features.py: CAIO_KERNEL_PROFILE, CAIO_KERNEL_LACKS).
 *
 * A kernel layer fills its context's struct with caio_features_set(), which
 * drops what the mask hides: the backend then takes the same way as on a
 * kernel that really lacks the feature. The list of names is the one of
 * caio._features.FEATURES, in the same order. No Python in the first half
 * of this header: the kernel layers include it. */
#ifndef CAIO_KERNEL_FEATURES_H
#define CAIO_KERNEL_FEATURES_H

#include <stdint.h>

enum caio_feature {
    CAIO_F_URING,               /* io_uring at all */
    CAIO_F_URING_SINGLE_MMAP,   /* IORING_FEAT_SINGLE_MMAP (5.4) */
    CAIO_F_URING_NODROP,        /* IORING_FEAT_NODROP (5.5) */
    CAIO_F_URING_CANCEL,        /* IORING_OP_ASYNC_CANCEL (5.5) */
    CAIO_F_URING_PROBE,         /* IORING_REGISTER_PROBE (5.6) */
    CAIO_F_URING_READ_WRITE,    /* IORING_OP_READ, IORING_OP_WRITE (5.6) */
    CAIO_F_URING_STATX,         /* IORING_OP_STATX (5.6) */
    CAIO_F_URING_OPENAT,        /* IORING_OP_OPENAT (5.6) */
    CAIO_F_URING_EXT_ARG,       /* IORING_FEAT_EXT_ARG (5.11) */
    CAIO_F_URING_FS,            /* RENAMEAT, UNLINKAT (5.11), MKDIRAT,
                                   SYMLINKAT, LINKAT (5.15) */
    CAIO_F_URING_SUBMIT_ALL,    /* IORING_SETUP_SUBMIT_ALL (5.18) */
    CAIO_F_URING_COOP_TASKRUN,  /* IORING_SETUP_COOP_TASKRUN (5.19) */
    CAIO_F_URING_CANCEL_ANY,    /* IORING_ASYNC_CANCEL_ANY | _ALL (5.19) */
    CAIO_F_URING_FTRUNCATE,     /* IORING_OP_FTRUNCATE (6.9) */
    CAIO_F_NOWAIT,              /* preadv2/pwritev2 RWF_NOWAIT (4.14) */
    CAIO_F_STATX_DIOALIGN,      /* statx STATX_DIOALIGN (6.1) */
    CAIO_F_EVENTFD,             /* eventfd (2.6.22; a seccomp filter may deny it) */
    CAIO_F_STAT_CACHED,         /* openat2 RESOLVE_CACHED (5.12): inline stat */
    CAIO_F_COUNT
};

/* What one context found (after the mask). */
struct caio_features {
    uint32_t have;              /* bit (1 << enum caio_feature) */
};

/* The feature's name in caio._features.FEATURES. */
const char *caio_feature_name(enum caio_feature f);

/* 1 if the test switch hides f (always 0 unless CAIO_KERNEL_PROFILE or
 * CAIO_KERNEL_LACKS was set when caio was imported). */
int caio_kernel_lacks(enum caio_feature f);

/* What the switch hides, for messages ("" when nothing). */
const char *caio_kernel_mask_note(void);

/* Record whether the kernel has f; a hidden f is recorded as missing. */
static inline void caio_features_set(struct caio_features *fs, enum caio_feature f,
                                     int present)
{
    if (present && !caio_kernel_lacks(f))
        fs->have |= (uint32_t)1 << f;
    else
        fs->have &= ~((uint32_t)1 << f);
}

static inline int caio_has(const struct caio_features *fs, enum caio_feature f)
{
    return (fs->have >> f) & 1;
}

/* The features every backend shares (RWF_NOWAIT where it was compiled in). */
void caio_features_common(struct caio_features *fs);

#ifdef Py_PYTHON_H
/* Read the mask from caio._features: once, in the module's init (the GIL
 * is held, no context exists yet). 0, or -1 with an exception. */
int caio_features_init(void);
/* Add _FEATURE_NAMES (every name, in enum order) to module m. */
int caio_features_add_names(PyObject *m);
/* The names of the features fs has, as a frozenset (new reference). */
PyObject *caio_features_names(const struct caio_features *fs);
#endif

#endif
