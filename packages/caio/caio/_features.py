"""Kernel features the backends depend on, and the test-only switch that hides them.

Every backend discovers what the running kernel offers when it makes a
context (io_uring: the ring's ``features`` and an ``IORING_REGISTER_PROBE``
of the opcodes; everywhere: ``RWF_NOWAIT``) and keeps the answer in one
place: ``struct caio_features`` in C (``src/common/kernel_features.h``), the
``features`` of ``caio.python_aio`` here. Where a feature is missing the
backend takes another way (see each name below) or refuses to import, and
``caio`` selects the next backend.

Tests make a newer kernel behave like an older one with two environment
variables, read once when caio is imported and ignored unless set:

* ``CAIO_KERNEL_PROFILE=5.4`` (a name of :data:`PROFILES`): hide every
  feature that kernel does not have;
* ``CAIO_KERNEL_LACKS=uring_ext_arg,nowait``: hide these features (on top of
  the profile's).

A hidden feature is treated exactly as a missing one: the same code path
runs. An unknown profile or feature name raises ``ValueError`` on import,
so a typo cannot make a test silently test the real kernel.

The C extensions read :func:`lacked_names` once, when they are imported;
``FEATURES`` is in the order of ``enum caio_feature`` (a test compares the
two lists).
"""

from __future__ import annotations

import os

__all__ = (
    "ENV_LACKS", "ENV_PROFILE", "FEATURES", "PROFILES", "lacked_names", "lacks",
    "note", "profile",
)

ENV_PROFILE = "CAIO_KERNEL_PROFILE"
ENV_LACKS = "CAIO_KERNEL_LACKS"

#: name -> (the first Linux version that has it, what depends on it).
#: Keep in the order of ``enum caio_feature`` in src/common/kernel_features.h.
FEATURES: dict[str, tuple[tuple[int, int], str]] = {
    "uring": ((5, 1), "io_uring at all (not blocked by seccomp or a sysctl); "
                      "without it caio.linux_uring does not import"),
    "uring_single_mmap": ((5, 4), "IORING_FEAT_SINGLE_MMAP: one mapping for both "
                                  "rings; without it, two"),
    "uring_nodrop": ((5, 5), "IORING_FEAT_NODROP: recorded only; our CQ is twice "
                             "the SQ and cannot overflow"),
    "uring_cancel": ((5, 5), "IORING_OP_ASYNC_CANCEL: required by caio.linux_uring"),
    "uring_probe": ((5, 6), "IORING_REGISTER_PROBE: required by caio.linux_uring"),
    "uring_read_write": ((5, 6), "IORING_OP_READ/WRITE: required by caio.linux_uring"),
    "uring_statx": ((5, 6), "IORING_OP_STATX"),
    "uring_openat": ((5, 6), "IORING_OP_OPENAT"),
    "uring_ext_arg": ((5, 11), "IORING_FEAT_EXT_ARG: waits with a timeout inside "
                               "io_uring_enter; without it, poll() on the ring"),
    "uring_fs": ((5, 15), "IORING_OP_RENAMEAT/UNLINKAT (5.11), "
                          "MKDIRAT/SYMLINKAT/LINKAT (5.15)"),
    "uring_submit_all": ((5, 18), "IORING_SETUP_SUBMIT_ALL; without it, submission "
                                  "goes on after a failing SQE by hand"),
    "uring_coop_taskrun": ((5, 19), "IORING_SETUP_COOP_TASKRUN; without it, "
                                    "completions interrupt the thread"),
    "uring_cancel_any": ((5, 19), "IORING_ASYNC_CANCEL_ANY|ALL: close() cancels "
                                  "everything at once; without it, one by one"),
    "uring_ftruncate": ((6, 9), "IORING_OP_FTRUNCATE"),
    "nowait": ((4, 14), "preadv2/pwritev2(RWF_NOWAIT): the page-cache fast path; "
                        "without it every operation goes to the engine"),
    "statx_dioalign": ((6, 1), "statx(STATX_DIOALIGN): O_DIRECT alignment"),
    "eventfd": ((2, 6), "eventfd for wake-ups; without it (a seccomp filter) the "
                        "pools use a pipe, io_uring and kernel AIO refuse a context"),
    "stat_cached": ((5, 12), "openat2(RESOLVE_CACHED): a stat of a cached path is "
                             "answered on the calling thread (linux_uring, "
                             "thread_aio); without it every stat goes to the "
                             "ring or a worker"),
}

#: Named kernels that users still run: name -> (major, minor), None = this one.
PROFILES: dict[str, tuple[int, int] | None] = {
    "5.4": (5, 4),      # Ubuntu 20.04, RHEL 8 class
    "5.10": (5, 10),    # Debian 11
    "5.15": (5, 15),    # Ubuntu 22.04
    "6.1": (6, 1),      # Debian 12
    "6.8": (6, 8),      # Ubuntu 24.04
    "current": None,
}


def _split(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def _read_env() -> tuple[str | None, str, frozenset[str]]:
    """The profile asked for, CAIO_KERNEL_LACKS, and every feature they hide."""
    name = os.environ.get(ENV_PROFILE, "").strip() or None
    hidden: set[str] = set()
    if name is not None:
        if name not in PROFILES:
            raise ValueError(
                f"{ENV_PROFILE}={name!r} is not a kernel profile (one of "
                f"{', '.join(PROFILES)})",
            )
        version = PROFILES[name]
        if version is not None:
            hidden.update(f for f, (since, _) in FEATURES.items() if since > version)
    asked = os.environ.get(ENV_LACKS, "").strip()
    extra = _split(asked)
    unknown = [f for f in extra if f not in FEATURES]
    if unknown:
        raise ValueError(
            f"{ENV_LACKS}: {', '.join(unknown)} is not a kernel feature (one of "
            f"{', '.join(FEATURES)})",
        )
    hidden.update(extra)
    return name, asked, frozenset(hidden)


_profile, _asked, _lacked = _read_env()


def lacks(name: str) -> bool:
    """Whether the test switch hides feature ``name`` (``KeyError``: no such name)."""
    if name not in FEATURES:
        raise KeyError(name)
    return name in _lacked


def lacked_names() -> tuple[str, ...]:
    """Every hidden feature, in the order of :data:`FEATURES` (read by the C side)."""
    return tuple(name for name in FEATURES if name in _lacked)


def profile() -> str | None:
    """The ``CAIO_KERNEL_PROFILE`` in force, or None."""
    return _profile


def note() -> str:
    """What the switch hides, for messages (empty when nothing is hidden)."""
    if not _lacked:
        return ""
    asked = [f"{ENV_PROFILE}={_profile}"] if _profile else []
    if _asked:
        asked.append(f"{ENV_LACKS}={_asked}")
    return f"{' and '.join(asked)} hides {', '.join(lacked_names())}"
