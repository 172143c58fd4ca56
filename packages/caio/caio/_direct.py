"""O_DIRECT helpers: what alignment a descriptor needs, and memory that has it.

``O_DIRECT`` I/O goes from the device straight to the caller's memory, so
the kernel refuses (EINVAL) a transfer whose file offset, length or memory
address is not a multiple of what the file and the device can do. Python's
own objects (``bytes``, ``bytearray``) come from malloc and are aligned to
16 bytes at best; ``aligned_buffer`` gives memory that is aligned, and
``dio_alignment`` says to what.
"""

from __future__ import annotations

import mmap
import os
import stat

# As in caio/__init__.py: `import caio` must not import typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ("aligned_buffer", "dio_alignment", "direct_span", "is_direct")

_O_DIRECT: int = getattr(os, "O_DIRECT", 0)

_statx_dioalign: Callable[[Any], tuple[int, int] | None] | None
try:  # statx(STATX_DIOALIGN), a tiny optional C module (src/dio/dio.c)
    from ._dio import statx_dioalign as _statx_dioalign
except ImportError:  # built without a compiler: sysfs alone
    _statx_dioalign = None

#: What dio_alignment answers when neither the kernel nor sysfs says:
#: the page size of every common platform, a multiple of every logical
#: block size in use (512, 4096).
DEFAULT_ALIGNMENT = 4096

_SYSFS_BLOCK = "/sys/dev/block"

# Windows' mmap has no flags (its anonymous mappings are private anyway).
_PRIVATE: dict[str, int] = (
    {"flags": mmap.MAP_PRIVATE} if hasattr(mmap, "MAP_PRIVATE") else {}
)


def _logical_block_size(device: int) -> int | None:
    """The logical block size of block device ``device`` (st_dev), from sysfs.

    A partition (``/sys/dev/block/8:1`` -> ``.../sda/sda1``) has no
    ``queue`` directory of its own: its disk's, one level up, applies.
    None for a device sysfs does not know (tmpfs, btrfs and overlayfs give
    anonymous device numbers; no sysfs mounted).
    """
    if not hasattr(os, "major"):  # Windows
        return None
    node = os.path.join(_SYSFS_BLOCK, f"{os.major(device)}:{os.minor(device)}")
    try:
        node = os.path.realpath(node, strict=True)
    except OSError:
        return None
    for directory in (node, os.path.dirname(node)):
        try:
            with open(os.path.join(directory, "queue", "logical_block_size"), "rb") as f:
                size = int(f.read())
        except (OSError, ValueError):
            continue
        if size > 0:
            return size
    return None


def dio_alignment(fd: Any) -> tuple[int, int]:
    """``(memory_alignment, offset_alignment)`` for ``O_DIRECT`` I/O on ``fd``.

    ``fd`` is an int or an object with ``fileno()``. The answer comes from
    ``statx(STATX_DIOALIGN)`` where the kernel reports it (Linux 6.1 and
    later, on filesystems that fill it in), else from the logical block
    size of the block device the file is on (or that ``fd`` is) in
    ``/sys/dev/block``, else 4096. Without the compiled helper (caio built
    without a C compiler: Python's ``os`` has no statx) only the last two
    apply. A descriptor whose filesystem has no direct I/O still gets an
    answer. Raises OSError (EBADF: not an open descriptor), TypeError,
    ValueError (a negative fd).
    """
    if not isinstance(fd, int):
        fileno = getattr(fd, "fileno", None)
        if fileno is None:
            raise TypeError(
                f"fd must be an int or have a fileno() method, not {type(fd).__name__}",
            )
        fd = fileno()
        if not isinstance(fd, int):
            raise TypeError(f"fileno() returned {type(fd).__name__}, not int")
    if fd < 0:
        raise ValueError(f"fd must not be negative, not {fd}")
    st = os.fstat(fd)  # EBADF here, before anything else
    if _statx_dioalign is not None:
        reported = _statx_dioalign(fd)
        if reported is not None:
            return reported
    device = st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev
    block = _logical_block_size(device)
    if block is not None:
        return block, block
    return DEFAULT_ALIGNMENT, DEFAULT_ALIGNMENT


def _positive_power_of_two(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value <= 0 or value & (value - 1):
        raise ValueError(f"{name} must be a power of two greater than 0, not {value}")
    return value


def _address(buffer: mmap.mmap) -> int:
    # Only for alignments above the page size. ctypes is the one way the
    # standard library tells a buffer's address; its export is released
    # before the buffer is returned.
    import ctypes

    anchor = ctypes.c_char.from_buffer(buffer)
    try:
        return ctypes.addressof(anchor)
    finally:
        del anchor


def aligned_buffer(size: int, alignment: int | None = None) -> memoryview:
    """A zero-filled, writable buffer of ``size`` bytes at an aligned address.

    The address is a multiple of ``alignment`` (a power of two; default:
    the page size, which every ``O_DIRECT`` memory alignment divides). The
    memory is an anonymous private mapping, freed when the returned
    memoryview (and every view of it) is gone. Raises TypeError (not an
    int), ValueError (negative size; alignment not a power of two > 0),
    OSError/MemoryError (no memory).
    """
    if not isinstance(size, int) or isinstance(size, bool):
        raise TypeError(f"size must be an int, not {type(size).__name__}")
    if size < 0:
        raise ValueError(f"size must not be negative, not {size}")
    page = mmap.PAGESIZE
    alignment = page if alignment is None else _positive_power_of_two("alignment", alignment)
    # A mapping starts on a page boundary: page alignment (or less) is free;
    # more needs room to slide the start up to the next multiple.
    slack = alignment - page if alignment > page else 0
    # mmap refuses length 0: an empty buffer still gets one page.
    # Private: a forked child gets a copy, as with any Python object.
    memory = mmap.mmap(-1, max(size + slack, 1), **_PRIVATE)
    start = -_address(memory) % alignment if slack else 0
    return memoryview(memory)[start:start + size]


def is_direct(fd: Any) -> bool:
    """Whether ``fd`` is open with ``O_DIRECT`` (False for anything that is
    no open descriptor)."""
    if not _O_DIRECT:
        return False
    import fcntl  # POSIX only, like O_DIRECT; only failed operations ask

    try:
        return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & _O_DIRECT)
    except (OSError, TypeError, ValueError):
        return False


def direct_span(offset: int, nbytes: int, block: int, limit: int) -> tuple[int, int]:
    """``(start, end)``: the span of ``block``-aligned offsets that covers
    ``nbytes`` at ``offset``, at most ``limit`` bytes long (``limit`` rounded
    down to a multiple of ``block``, and at least one block)."""
    start = offset - offset % block
    end = -(-(offset + nbytes) // block) * block
    longest = max(limit - limit % block, block)
    return start, min(end, start + longest)
