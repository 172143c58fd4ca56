"""``copyfile`` and ``copy``: file copies done by the kernel, off the loop.

The data never enters user space where the kernel can avoid it:
``copy_file_range`` copies page cache to page cache (or shares extents on
filesystems that can), in parallel ranges on worker threads. Where it is
refused (some kernels across filesystems, special files) a ``pread`` /
``pwrite`` loop on the same workers takes over, range by range.

System calls that block (open, copy, close) run on worker threads
(``aiofile._running``: the loop's default executor under asyncio, Trio's
worker threads under Trio); the loop only waits for their results. A
cancelled copy waits for its workers before it closes the descriptors
they use.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from functools import partial
from typing import Any, TypeVar

from ._running import ThreadCall, run_in_thread, wait_to_end

__all__ = ("copy", "copyfile")

_Path = TypeVar("_Path", bound="str | bytes | os.PathLike[str] | os.PathLike[bytes]")

#: A file larger than this is copied in PARALLEL ranges, one worker each.
SPLIT = 64 * 1024 * 1024
#: The most one system call copies: a worker checks for cancellation (and
#: for another range's failure) between its calls.
STEP = 8 * 1024 * 1024
#: Ranges copied at the same time: two keep both directions of a page-cache
#: copy busy on a two-core machine; more only compete for the same memory
#: bandwidth.
PARALLEL = 2
#: The fallback's buffer, per worker.
BUFFER = 1024 * 1024

# copy_file_range refused for this pair of files (not a failure of the copy).
_NO_COPY_RANGE = frozenset(
    {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ETXTBSY, errno.EPERM},
)


class _Stop:
    """Set when the copy is cancelled or a range failed; read by the workers."""

    __slots__ = ("stopped",)

    def __init__(self) -> None:
        self.stopped = False


def _copy_range(
    src: int, dst: int, start: int, end: int | None, stop: _Stop, ranged: list[bool],
) -> None:
    """Copy from ``start`` to ``end`` (None: to the end of the file; also
    where a file ends before ``end``), on a worker thread."""
    at = start
    try:
        while (end is None or at < end) and not stop.stopped:
            step = STEP if end is None else min(STEP, end - at)
            if ranged[0]:
                try:
                    n = os.copy_file_range(src, dst, step, at, at)
                except OSError as error:
                    # Refused before anything was copied: the plain loop does it.
                    if error.errno not in _NO_COPY_RANGE:
                        raise
                    ranged[0] = False
                    continue
            else:
                data = os.pread(src, min(step, BUFFER), at)
                n = len(data)
                view = memoryview(data)
                while view:
                    view = view[os.pwrite(dst, view, at + n - len(view)):]
            if n == 0:
                return
            at += n
    except BaseException:
        stop.stopped = True  # the other ranges stop at their next call
        raise


async def _copy_data(src: int, dst: int, size: int) -> None:
    stop, ranged = _Stop(), [True]
    # The last range is open-ended: a source that grew since it was
    # measured (or a special file, whose size is 0) is copied to its end.
    share = -(-size // PARALLEL) if size > SPLIT else max(size, 1)
    starts = list(range(0, max(size, 1), share))
    ends: list[int | None] = [*starts[1:], None]
    calls = [
        ThreadCall(None, _copy_range, src, dst, start, end, stop, ranged)
        for start, end in zip(starts, ends, strict=True)
    ]
    try:
        for call in calls:
            await call.result()
    except BaseException:
        stop.stopped = True
        raise
    finally:
        await wait_to_end(*calls)


async def _open(path: Any, flags: int, mode: int = 0o777) -> int:
    call = ThreadCall(None, os.open, path, flags | os.O_CLOEXEC, mode)
    try:
        return await call.result()
    except BaseException:
        # Cancelled: the open may still succeed, its descriptor must not leak.
        await wait_to_end(call)
        if call.error is None:  # it opened after all
            os.close(call.outcome())
        raise


async def _close(fd: int) -> None:
    call = ThreadCall(None, os.close, fd)
    await wait_to_end(call)
    call.outcome()


async def copyfile(src: _Path, dst: _Path, *, follow_symlinks: bool = True) -> _Path:
    """Copy the contents of ``src`` to ``dst``, as ``shutil.copyfile`` does.

    Returns ``dst``. ``dst`` is created or truncated; a symbolic link
    ``src`` is copied as a link when ``follow_symlinks`` is false. Raises
    ``shutil.SameFileError`` when both name one file (nothing is touched),
    ``shutil.SpecialFileError`` for a named pipe, and the ``OSError`` of
    the failing system call otherwise. Works under asyncio and Trio.
    """
    if not follow_symlinks and await run_in_thread(None, os.path.islink, src):
        target = await run_in_thread(None, os.readlink, src)
        await run_in_thread(None, os.symlink, target, dst)
        return dst
    # Checked before opening, as shutil does: opening a named pipe waits
    # for a writer.
    await run_in_thread(None, _refuse_same, src, dst)
    src_fd = await _open(src, os.O_RDONLY)
    try:
        src_stat = os.fstat(src_fd)
        dst_fd = await _open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            size = src_stat.st_size if stat.S_ISREG(src_stat.st_mode) else 0
            await _copy_data(src_fd, dst_fd, size)
        finally:
            await _close(dst_fd)
    finally:
        await _close(src_fd)
    return dst


def _refuse_same(src: Any, dst: Any) -> None:
    src_stat = os.stat(src)
    if stat.S_ISFIFO(src_stat.st_mode):
        raise shutil.SpecialFileError(f"`{os.fsdecode(src)}` is a named pipe")
    try:
        dst_stat = os.stat(dst)
    except FileNotFoundError:
        return
    if os.path.samestat(src_stat, dst_stat):
        raise shutil.SameFileError(f"{src!r} and {dst!r} are the same file")
    if stat.S_ISFIFO(dst_stat.st_mode):
        raise shutil.SpecialFileError(f"`{os.fsdecode(dst)}` is a named pipe")


def _target(src: Any, dst: Any) -> Any:
    if os.path.isdir(dst):
        return os.path.join(dst, os.path.basename(os.fspath(src)))
    return dst


async def copy(src: _Path, dst: _Path, *, follow_symlinks: bool = True) -> _Path:
    """Copy data and permission bits, as ``shutil.copy`` does.

    ``dst`` may be a directory: the copy then gets the source's name in it.
    Returns the path of the copy.
    """
    target = await run_in_thread(None, _target, src, dst)
    await copyfile(src, target, follow_symlinks=follow_symlinks)
    await run_in_thread(
        None, partial(shutil.copymode, follow_symlinks=follow_symlinks), src, target,
    )
    return target  # type: ignore[no-any-return]

