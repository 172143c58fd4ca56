"""The ``os.path`` checks that touch the filesystem, as coroutines.

Each takes the arguments of the ``os.path`` function of the same name and
returns what it returns: ``exists``, ``isfile``, ``isdir`` and ``islink``
are False where ``os.path``'s are (a missing path, no permission, an
embedded NUL), and the ``get*`` functions raise the same ``OSError``.
The checks a ``stat`` answers use ``aiofile.os.stat`` (the kernel's statx
on io_uring); ``ismount`` and ``abspath`` of a relative path run the
``os.path`` function in the loop's default executor.
"""

from __future__ import annotations

import os
import stat as _st
from collections.abc import Callable
from typing import TYPE_CHECKING, AnyStr, overload

from .. import _fs
from . import _fstat
from . import lstat as _lstat
from . import stat as _stat

if TYPE_CHECKING:
    from _typeshed import FileDescriptorOrPath, StrOrBytesPath

__all__ = (
    "abspath", "exists", "getatime", "getctime", "getmtime", "getsize", "isdir", "isfile",
    "islink", "ismount", "samefile", "sameopenfile",
)


async def exists(path: FileDescriptorOrPath) -> bool:
    """``os.path.exists``: whether ``path`` (or a descriptor) names something;
    False for a broken link and where the check fails."""
    try:
        await _stat(path)
    except (OSError, ValueError):
        return False
    return True


async def _has_type(path: FileDescriptorOrPath, test: Callable[[int], bool]) -> bool:
    try:
        st = await _stat(path)
    except (OSError, ValueError):
        return False
    return test(st.st_mode)


async def isfile(path: FileDescriptorOrPath) -> bool:
    """``os.path.isfile``: whether ``path`` is a regular file (after links)."""
    return await _has_type(path, _st.S_ISREG)


async def isdir(s: FileDescriptorOrPath) -> bool:
    """``os.path.isdir``: whether ``s`` is a directory (after links)."""
    return await _has_type(s, _st.S_ISDIR)


async def islink(path: StrOrBytesPath) -> bool:
    """``os.path.islink``: whether ``path`` is a symbolic link."""
    try:
        st = await _lstat(path)
    except (OSError, ValueError, AttributeError):
        return False
    return _st.S_ISLNK(st.st_mode)


async def ismount(path: StrOrBytesPath) -> bool:
    """``os.path.ismount``: whether ``path`` is a mount point."""
    return await _fs.call(None, os.path.ismount, path)


async def getsize(filename: FileDescriptorOrPath) -> int:
    """``os.path.getsize``: the size in bytes. Raises OSError."""
    return (await _stat(filename)).st_size


async def getmtime(filename: FileDescriptorOrPath) -> float:
    """``os.path.getmtime``: the modification time (seconds). Raises OSError."""
    return (await _stat(filename)).st_mtime


async def getatime(filename: FileDescriptorOrPath) -> float:
    """``os.path.getatime``: the access time (seconds). Raises OSError."""
    return (await _stat(filename)).st_atime


async def getctime(filename: FileDescriptorOrPath) -> float:
    """``os.path.getctime``: the status change time (seconds). Raises OSError."""
    return (await _stat(filename)).st_ctime


async def samefile(f1: FileDescriptorOrPath, f2: FileDescriptorOrPath) -> bool:
    """``os.path.samefile``: whether both name the same file. Raises OSError."""
    return os.path.samestat(await _stat(f1), await _stat(f2))


async def sameopenfile(fp1: int, fp2: int) -> bool:
    """``os.path.sameopenfile``: whether both descriptors are of the same
    file. Raises OSError (EBADF)."""
    return os.path.samestat(await _fstat(fp1), await _fstat(fp2))


@overload
async def abspath(path: os.PathLike[AnyStr]) -> AnyStr: ...
@overload
async def abspath(path: AnyStr) -> AnyStr: ...


async def abspath(path: os.PathLike[AnyStr] | AnyStr) -> AnyStr:
    """``os.path.abspath``: ``path`` made absolute and normalized.

    An absolute path needs no system call; a relative one needs the
    current directory (``os.getcwd``), asked off the loop.
    """
    if os.path.isabs(path):
        return os.path.abspath(path)
    return await _fs.call(None, os.path.abspath, path)
