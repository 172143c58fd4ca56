"""The ``os`` filesystem functions, as coroutines.

Each takes the arguments of the ``os`` function of the same name and
returns or raises what it does (``OSError`` subclasses with ``errno``,
``filename`` and ``filename2`` set alike). None blocks the event loop:

* ``stat``, ``lstat``, ``rename``, ``replace``, ``remove``, ``unlink``,
  ``mkdir``, ``rmdir``, ``link``, ``symlink`` and ``truncate`` of a
  descriptor go to the loop's caio context, which runs them in the kernel
  on io_uring where the kernel has the operation (``IORING_OP_STATX``,
  ``RENAMEAT``, ...) and on its worker threads otherwise;
* the rest (``makedirs``, ``renames``, ``removedirs``, ``listdir``,
  ``scandir``, ``readlink``, ``access``, ``statvfs``, ``sendfile``,
  ``getcwd``, ``truncate`` of a path), which the kernel has no single
  asynchronous operation for, run the ``os`` function in the loop's
  default executor.

``aiofile.os.path`` has the ``os.path`` checks (``exists``, ``isdir``, ...).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Awaitable, Generator
from itertools import islice
from typing import TYPE_CHECKING, Any, AnyStr, Generic, overload

from .. import _fs

if TYPE_CHECKING:
    from _typeshed import BytesPath, FileDescriptorOrPath, GenericPath, StrOrBytesPath, StrPath
    from typing_extensions import Self

__all__ = (
    "DirEntryList", "ScandirIterator", "access", "getcwd", "link", "listdir", "lstat",
    "makedirs", "mkdir", "path", "readlink", "remove", "removedirs", "rename", "renames",
    "replace", "rmdir", "scandir", "sendfile", "stat", "statvfs", "symlink", "truncate",
    "unlink",
)


# --- the calls a caio context can run ----------------------------------------


async def stat(
    path: FileDescriptorOrPath, *, dir_fd: int | None = None, follow_symlinks: bool = True,
) -> os.stat_result:
    """``os.stat``: the status of ``path`` (a descriptor too).

    Raises FileNotFoundError, NotADirectoryError, PermissionError, ...,
    TypeError, ValueError.
    """
    if dir_fd is None and follow_symlinks:  # the common call: no keywords to pass on
        if isinstance(path, int):
            return await _fs.call("fstat", os.fstat, path)
        return await _fs.call("stat", os.stat, path)
    if isinstance(path, int):  # os.stat's own ValueError for what it refuses
        return await _fs.call(None, os.stat, path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
    return await _fs.call("stat", os.stat, path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)


def _fstat(fd: int) -> Awaitable[os.stat_result]:
    """``os.fstat(fd)`` off the loop (for ``os.path.sameopenfile``; internal)."""
    return _fs.call("fstat", os.fstat, fd)


async def lstat(path: StrOrBytesPath, *, dir_fd: int | None = None) -> os.stat_result:
    """``os.lstat``: the status of ``path`` itself, not of what a link names.

    Raises FileNotFoundError, NotADirectoryError, PermissionError, ...
    """
    if isinstance(path, int):  # os.lstat refuses a descriptor: its TypeError
        return await _fs.call(None, os.lstat, path, dir_fd=dir_fd)
    return await _fs.call("stat", os.stat, path, dir_fd=dir_fd, follow_symlinks=False)


async def rename(
    src: StrOrBytesPath, dst: StrOrBytesPath, *,
    src_dir_fd: int | None = None, dst_dir_fd: int | None = None,
) -> None:
    """``os.rename``: ``src`` is called ``dst`` from now on (replacing a file).

    Raises FileNotFoundError, IsADirectoryError, NotADirectoryError,
    OSError (ENOTEMPTY, EXDEV, ...), PermissionError.
    """
    await _fs.call("rename", os.rename, src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)


async def replace(
    src: StrOrBytesPath, dst: StrOrBytesPath, *,
    src_dir_fd: int | None = None, dst_dir_fd: int | None = None,
) -> None:
    """``os.replace``: ``rename`` (on POSIX they are the same system call)."""
    await _fs.call("rename", os.replace, src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)


async def remove(path: StrOrBytesPath, *, dir_fd: int | None = None) -> None:
    """``os.remove``: delete a file. Raises FileNotFoundError,
    IsADirectoryError (EISDIR on Linux), PermissionError, ..."""
    await _fs.call("unlink", os.remove, path, dir_fd=dir_fd)


async def unlink(path: StrOrBytesPath, *, dir_fd: int | None = None) -> None:
    """``os.unlink``: the same as ``remove``."""
    await _fs.call("unlink", os.unlink, path, dir_fd=dir_fd)


async def mkdir(path: StrOrBytesPath, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
    """``os.mkdir``: a new directory (``mode`` masked by the umask).

    Raises FileExistsError, FileNotFoundError (no parent), PermissionError, ...
    """
    await _fs.call("mkdir", os.mkdir, path, mode, dir_fd=dir_fd)


async def rmdir(path: StrOrBytesPath, *, dir_fd: int | None = None) -> None:
    """``os.rmdir``: remove an empty directory.

    Raises FileNotFoundError, NotADirectoryError, OSError(ENOTEMPTY), ...
    """
    await _fs.call("rmdir", os.rmdir, path, dir_fd=dir_fd)


async def link(
    src: StrOrBytesPath, dst: StrOrBytesPath, *,
    src_dir_fd: int | None = None, dst_dir_fd: int | None = None,
    follow_symlinks: bool = True,
) -> None:
    """``os.link``: a hard link ``dst`` to ``src``.

    Raises FileExistsError, FileNotFoundError, PermissionError, OSError(EXDEV), ...
    """
    await _fs.call(
        "link", os.link, src, dst,
        src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, follow_symlinks=follow_symlinks,
    )


async def symlink(
    src: StrOrBytesPath, dst: StrOrBytesPath, target_is_directory: bool = False, *,
    dir_fd: int | None = None,
) -> None:
    """``os.symlink``: a symbolic link ``dst`` whose target is ``src``.

    Raises FileExistsError, FileNotFoundError (no parent of ``dst``), ...
    """
    await _fs.call("symlink", os.symlink, src, dst, target_is_directory, dir_fd=dir_fd)


async def truncate(path: FileDescriptorOrPath, length: int) -> None:
    """``os.truncate``: cut or extend a file (named, or a descriptor) to ``length``.

    Raises FileNotFoundError, IsADirectoryError, PermissionError, ValueError, ...
    """
    if isinstance(path, int):
        await _fs.call("ftruncate", os.ftruncate, path, length)
    else:
        await _fs.call(None, os.truncate, path, length)


# --- the calls that run in the executor ------------------------------------


async def makedirs(name: StrOrBytesPath, mode: int = 0o777, exist_ok: bool = False) -> None:
    """``os.makedirs``: the directory and every missing parent.

    Raises FileExistsError (unless ``exist_ok`` and it is a directory), ...
    """
    await _fs.call(None, os.makedirs, name, mode, exist_ok)


async def renames(old: StrOrBytesPath, new: StrOrBytesPath) -> None:
    """``os.renames``: rename, making the new parents and pruning the old
    empty ones. Raises what ``rename`` raises."""
    await _fs.call(None, os.renames, old, new)


async def removedirs(name: StrOrBytesPath) -> None:
    """``os.removedirs``: remove a directory and each parent that becomes empty.

    Raises what ``rmdir`` raises for ``name`` itself.
    """
    await _fs.call(None, os.removedirs, name)


@overload
async def listdir(path: StrPath | None = None) -> list[str]: ...
@overload
async def listdir(path: BytesPath) -> list[bytes]: ...
@overload
async def listdir(path: int) -> list[str]: ...


async def listdir(path: StrOrBytesPath | int | None = None) -> list[str] | list[bytes]:
    """``os.listdir``: the names in a directory (bytes for a bytes path).

    Raises FileNotFoundError, NotADirectoryError, PermissionError, ...
    """
    return await _fs.call(None, os.listdir, path)


async def readlink(path: GenericPath[AnyStr], *, dir_fd: int | None = None) -> AnyStr:
    """``os.readlink``: the target of a symbolic link.

    Raises FileNotFoundError, OSError(EINVAL) when ``path`` is no link, ...
    """
    return await _fs.call(None, os.readlink, path, dir_fd=dir_fd)


async def access(
    path: FileDescriptorOrPath, mode: int, *, dir_fd: int | None = None,
    effective_ids: bool = False, follow_symlinks: bool = True,
) -> bool:
    """``os.access``: whether the real user may use ``path`` as ``mode`` says
    (``os.F_OK``, ``R_OK``, ``W_OK``, ``X_OK``). Raises TypeError, ValueError."""
    return await _fs.call(
        None, os.access, path, mode,
        dir_fd=dir_fd, effective_ids=effective_ids, follow_symlinks=follow_symlinks,
    )


async def statvfs(path: FileDescriptorOrPath) -> os.statvfs_result:
    """``os.statvfs``: the status of the filesystem holding ``path``. Raises OSError."""
    return await _fs.call(None, os.statvfs, path)


async def sendfile(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
    """``os.sendfile``: copy up to ``count`` bytes from ``in_fd`` (at ``offset``,
    or its position if None) to ``out_fd`` in the kernel; returns the count
    copied (0 at end of file). Raises OSError."""
    return await _fs.call(None, os.sendfile, out_fd, in_fd, offset, count)


async def getcwd() -> str:
    """``os.getcwd``: the current directory. Raises FileNotFoundError if it
    was removed."""
    return await _fs.call(None, os.getcwd)


# --- scandir ---------------------------------------------------------------------


class DirEntryList(list[os.DirEntry[AnyStr]], Generic[AnyStr]):
    """What ``await scandir(path)`` gives: every entry, read off the loop.

    A list; ``with`` works on it too (and ``close()``, doing nothing), so
    ``with await scandir(path) as entries:``, written for aiofiles whose
    ``await aiofiles.os.scandir()`` gives the ``os`` iterator, runs as is.
    """

    def close(self) -> None:
        """Nothing to release: the directory was read and closed."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def _read_all(path: Any) -> DirEntryList[Any]:
    with os.scandir(path) as it:
        return DirEntryList(it)


#: Entries read per executor job while iterating with ``async for``.
SCANDIR_BATCH = 256


class ScandirIterator(Generic[AnyStr]):
    """What ``scandir(path)`` returns; ``os.DirEntry`` objects three ways.

    * ``async with scandir(p) as it: async for entry in it:`` reads the
      directory in batches in the executor and closes it on exit (the
      ``anyio.Path.iterdir`` shape, and ``os.scandir``'s ``with``);
    * ``async for entry in scandir(p):`` the same, closed when exhausted;
    * ``await scandir(p)``: all entries at once, as a ``DirEntryList``.

    Errors of opening the directory (FileNotFoundError,
    NotADirectoryError, ...) are raised by the ``await``, the
    ``async with`` or the first ``async for`` step, since nothing runs
    before. ``entry.is_dir()`` and the like usually need no system call
    (the directory entry has the type); ``entry.stat()`` does, and would
    block: prefer ``await aiofile.os.stat(entry.path)`` there.
    """

    def __init__(self, path: Any) -> None:
        self._path = path
        self._it: Any = None
        self._entries: deque[os.DirEntry[AnyStr]] = deque()
        self._exhausted = False
        # The executor reads a batch while the loop may close(): closedir
        # under a running readdir must not happen; the reader closes then.
        self._lock = threading.Lock()
        self._close_pending = False

    def __await__(self) -> Generator[Any, None, DirEntryList[AnyStr]]:
        return _fs.call(None, _read_all, self._path).__await__()

    async def _open(self) -> None:
        if self._it is None and not self._exhausted:
            self._it = await _fs.call(None, os.scandir, self._path)

    def _read_batch(self) -> list[os.DirEntry[AnyStr]]:
        with self._lock:
            it = self._it
            batch = list(islice(it, SCANDIR_BATCH))
            if self._close_pending or len(batch) < SCANDIR_BATCH:
                it.close()
            return batch

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> os.DirEntry[AnyStr]:
        entries = self._entries
        if not entries:
            if self._exhausted:
                raise StopAsyncIteration
            await self._open()
            batch = await _fs.call(None, self._read_batch)
            if len(batch) < SCANDIR_BATCH:
                self._exhausted = True
            if not batch:
                raise StopAsyncIteration
            entries.extend(batch)
        return entries.popleft()

    def close(self) -> None:
        """Release the directory; iteration ends. Idempotent, never blocks."""
        self._exhausted = True
        self._entries.clear()
        it = self._it
        if it is None:
            return
        if self._lock.acquire(blocking=False):
            try:
                it.close()
            finally:
                self._lock.release()
        else:
            self._close_pending = True


@overload
def scandir(path: None = None) -> ScandirIterator[str]: ...
@overload
def scandir(path: int) -> ScandirIterator[str]: ...
@overload
def scandir(path: GenericPath[AnyStr]) -> ScandirIterator[AnyStr]: ...


def scandir(path: Any = None) -> ScandirIterator[Any]:
    """``os.scandir``: the entries of a directory, without blocking the loop.

    See ``ScandirIterator`` for the three ways to use it (``await``,
    ``async for``, ``async with``). Raises, on first use, what
    ``os.scandir`` raises.
    """
    return ScandirIterator(path)


# Last: aiofile.os.path uses the functions above.
from . import path as path  # noqa: E402
