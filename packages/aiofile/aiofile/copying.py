"""``copyfile`` and ``copy``: file copies done by the kernel, off the loop.

The data never enters user space where the kernel can avoid it:
``copy_file_range`` copies page cache to page cache (or shares extents on
filesystems that can), in parallel ranges on worker threads. Where it is
refused (some kernels across filesystems, special files) a ``pread`` /
``pwrite`` loop on the same workers takes over, range by range.

System calls that block (open, copy, close) run on the event loop's default
executor; the loop only waits for their results.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import stat
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

__all__ = ("copy", "copyfile")

_T = TypeVar("_T")
_Path = TypeVar("_Path", bound="str | bytes | os.PathLike[str] | os.PathLike[bytes]")

#: Bytes one worker job copies before it reports back (and checks for
#: cancellation between its system calls of at most STEP bytes).
JOB = 64 * 1024 * 1024
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
    """Set by the coroutine when it is cancelled; read by the workers."""

    __slots__ = ("stopped",)

    def __init__(self) -> None:
        self.stopped = False


def _copy_range(src: int, dst: int, start: int, count: int, stop: _Stop, ranged: list[bool]) -> int:
    """Copy up to ``count`` bytes at ``start``; returns how many (0: end of file)."""
    done = 0
    while done < count and not stop.stopped:
        step = min(STEP, count - done)
        at = start + done
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
            break
        done += n
    return done


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if not future.done():
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


def _on_worker(
    loop: asyncio.AbstractEventLoop, fn: Callable[..., _T], *args: Any,
) -> asyncio.Future[_T]:
    """Run ``fn(*args)`` on the loop's executor; the future is resolved when
    it has really returned.

    Unlike ``run_in_executor``'s future, cancelling the caller does not
    pretend the call is over: the descriptors it uses stay open until then.
    """
    future: asyncio.Future[_T] = loop.create_future()

    def job() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as exc:  # delivered to the awaiting coroutine
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(_resolve, future, result, error)
        except RuntimeError:  # the loop was closed meanwhile: nobody waits
            pass

    loop.run_in_executor(None, job)
    return future


async def _settle(futures: list[asyncio.Future[Any]]) -> None:
    """Wait until every worker call has returned, whatever happens to us."""
    if futures:
        await asyncio.shield(asyncio.gather(*futures, return_exceptions=True))


async def _copy_data(loop: asyncio.AbstractEventLoop, src: int, dst: int, size: int) -> None:
    stop, ranged = _Stop(), [True]
    started: list[asyncio.Future[int]] = []

    async def copy_from(pos: int, end: int | None) -> None:
        # Jobs of one range run one after the other; ranges run side by
        # side. The last range is open-ended: a source that grew since it
        # was measured (or a special file) is copied to its end.
        while end is None or pos < end:
            count = JOB if end is None else min(JOB, end - pos)
            job = _on_worker(loop, _copy_range, src, dst, pos, count, stop, ranged)
            started.append(job)
            copied = await asyncio.shield(job)
            if copied < count:  # the job met the end of the file
                return
            pos += copied

    share = -(-size // PARALLEL) if size > JOB else max(size, 1)
    starts = list(range(0, max(size, 1), share))
    ends: list[int | None] = [*starts[1:], None]
    try:
        await asyncio.gather(*map(copy_from, starts, ends))
    except BaseException:
        stop.stopped = True
        raise
    finally:
        await _settle(started)


async def _open(loop: asyncio.AbstractEventLoop, path: Any, flags: int, mode: int = 0o777) -> int:
    job = _on_worker(loop, os.open, path, flags | os.O_CLOEXEC, mode)
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        # The open may still succeed: its descriptor must not leak.
        await _settle([job])
        if not job.cancelled() and job.exception() is None:
            os.close(job.result())
        raise


async def copyfile(src: _Path, dst: _Path, *, follow_symlinks: bool = True) -> _Path:
    """Copy the contents of ``src`` to ``dst``, as ``shutil.copyfile`` does.

    Returns ``dst``. ``dst`` is created or truncated; a symbolic link
    ``src`` is copied as a link when ``follow_symlinks`` is false. Raises
    ``shutil.SameFileError`` when both name one file (nothing is touched),
    ``shutil.SpecialFileError`` for a named pipe, and the ``OSError`` of
    the failing system call otherwise.
    """
    loop = asyncio.get_running_loop()
    if not follow_symlinks and await _on_worker(loop, os.path.islink, src):
        target = await _on_worker(loop, os.readlink, src)
        await _on_worker(loop, os.symlink, target, dst)
        return dst
    # Checked before opening, as shutil does: opening a named pipe waits
    # for a writer.
    await _on_worker(loop, _refuse_same, src, dst)
    src_fd = await _open(loop, src, os.O_RDONLY)
    try:
        src_stat = os.fstat(src_fd)
        dst_fd = await _open(loop, dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            size = src_stat.st_size if stat.S_ISREG(src_stat.st_mode) else 0
            await _copy_data(loop, src_fd, dst_fd, size)
        finally:
            await _settle([_on_worker(loop, os.close, dst_fd)])
    finally:
        await _settle([_on_worker(loop, os.close, src_fd)])
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
    loop = asyncio.get_running_loop()
    target = await _on_worker(loop, _target, src, dst)
    await copyfile(src, target, follow_symlinks=follow_symlinks)
    await _on_worker(loop, partial(shutil.copymode, follow_symlinks=follow_symlinks), src, target)
    return target  # type: ignore[no-any-return]

