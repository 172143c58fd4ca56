"""The filesystem operations of the asyncio adapter (a base of
``caio.asyncio_base.AsyncioContextBase``).

Each method takes the arguments of the ``os`` function of the same name
(``close_fd`` is ``os.close``: ``close`` closes the context) and raises
what it raises, with the same ``errno``, ``filename`` and ``filename2``.
It turns them into one request (``caio._fsops``) and hands that to the
backend's ``fs_async`` when the backend runs the operation itself (an
io_uring opcode the context's probe found, or thread_aio's and
python_aio's workers), else to ``caio._fsops.on_thread``. Never on the
event loop's thread.
"""

from __future__ import annotations

import asyncio
import os
from operator import index
from typing import TYPE_CHECKING, Any, ClassVar

from . import _fsops
from ._fsops import (
    AT_EMPTY_PATH,
    AT_FDCWD,
    AT_REMOVEDIR,
    AT_SYMLINK_FOLLOW,
    AT_SYMLINK_NOFOLLOW,
    CLOSE,
    FALLOCATE,
    FTRUNCATE,
    LINK,
    MKDIR,
    OPEN,
    RENAME,
    STAT,
    SYMLINK,
    UNLINK,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from .abstract import AbstractContext

    StrOrBytesPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]

__all__ = ("FsOperations",)

_O_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
_STAT_RESULT = os.stat_result
_EBADF = 9


def _path(path: object, func: str, arg: str = "path") -> tuple[str | bytes, bytes]:
    """(the name os puts into its errors, the bytes the kernel gets)."""
    if isinstance(path, str):
        name: str | bytes = path
        encoded = os.fsencode(path)
    elif isinstance(path, bytes):
        name = encoded = path
    else:
        try:
            name = os.fspath(path)  # type: ignore[call-overload]
        except TypeError:
            raise TypeError(
                f"{func}: {arg} should be string, bytes or os.PathLike, "
                f"not {type(path).__name__}",
            ) from None
        encoded = os.fsencode(name)
    # An embedded NUL: the backend's ValueError("embedded null byte"),
    # before any I/O (`b"\0" in encoded` would raise and swallow a
    # TypeError first: bytes.__contains__ tries an int).
    return name, encoded


def _name_files(exc: OSError, names: tuple[Any, ...]) -> None:
    # The backends know errno only; os names the files.
    if names:
        exc.filename = names[0]
        if len(names) > 1:
            exc.filename2 = names[1]


def _dir_fd(dir_fd: object) -> int:
    return AT_FDCWD if dir_fd is None else index(dir_fd)  # type: ignore[arg-type]


class FsOperations:
    """``os``-style filesystem operations on a caio context."""

    #: Whether the backend's ``fs_async`` runs every operation (a worker
    #: pool), not only the io_uring opcodes this kernel has.
    FS_ASYNC_ALL: ClassVar[bool] = False

    if TYPE_CHECKING:
        context: AbstractContext
        deferred: bool
        _owner: Any

        def _check_loop(self) -> None: ...
        async def _wait(self, future: Any, fd: Any) -> Any: ...
        @property
        def loop(self) -> asyncio.AbstractEventLoop: ...

    # Where each operation goes (fs_async or the executor), decided on
    # first use per context.
    _fs_routes: list[Callable[..., Any] | None] | None = None

    def in_kernel(self, name: str) -> bool:
        """True when ``name`` (a method, e.g. ``"stat"``) runs as an
        io_uring request on this context. Raises ValueError (no such
        operation)."""
        try:
            op = _fsops.METHODS[name]
        except KeyError:
            raise ValueError(f"no filesystem operation named {name!r}") from None
        return bool(self.context.fs_in_kernel(op))

    def _fs_route(self, op: int) -> Callable[..., Any]:
        routes = self._fs_routes
        if routes is None:
            routes = self._fs_routes = [None] * len(_fsops.NAMES)
        context: Any = self.context
        fs_async = getattr(context, "fs_async", None)
        if fs_async is not None and (self.FS_ASYNC_ALL or context.fs_in_kernel(op)):
            route: Callable[..., Any] = fs_async
        else:
            route = self._fs_thread
        routes[op] = route
        return route

    def _fs_thread(self, op: int, *args: Any) -> asyncio.Future[Any]:
        if self.context.closed:
            raise ValueError("I/O operation on closed context")
        return _fsops.on_thread(self.loop, op, *args)

    def _fs_call(
        self, names: tuple[Any, ...], op: int, fd: int, path: bytes | None,
        path2: bytes | None, fd2: int, flags: int, mode: int, offset: int, length: int,
    ) -> Any:
        # Hand the request to its route: the value if it finished during the
        # call (a stat of a cached path usually does), else a future.
        if self._owner._thread_id is None:
            self._check_loop()
        routes = self._fs_routes
        route = routes[op] if routes is not None else None
        if route is None:
            route = self._fs_route(op)
        try:
            return route(op, fd, path, path2, fd2, flags, mode, offset, length)
        except RuntimeError:
            self._check_loop()  # from another loop's thread: name both loops
            raise
        except OSError as exc:
            _name_files(exc, names)
            raise

    async def _fs_result(self, r: Any, key: Any, names: tuple[Any, ...]) -> Any:
        # None, an int or an os.stat_result: finished during the call, one
        # loop pass first only if deferred=True. Else a future to wait for.
        if r is None or r.__class__ is int or r.__class__ is _STAT_RESULT:
            if self.deferred:
                await asyncio.sleep(0)
            return r
        try:
            return await self._wait(r, key)
        except OSError as exc:
            _name_files(exc, names)
            raise

    def _fs(
        self, op: int, key: Any, names: tuple[Any, ...], fd: int,
        path: bytes | None, path2: bytes | None = None, fd2: int = AT_FDCWD,
        flags: int = 0, mode: int = 0, offset: int = 0, length: int = 0,
    ) -> Coroutine[Any, Any, Any]:
        """The operation's result, to await (one coroutine, not two)."""
        r = self._fs_call(names, op, fd, path, path2, fd2, flags, mode, offset, length)
        return self._fs_result(r, key, names)

    async def stat(
        self, path: StrOrBytesPath | int, *, dir_fd: int | None = None,
        follow_symlinks: bool = True,
    ) -> os.stat_result:
        """os.stat: an ``os.stat_result`` (an int path is ``fstat``)."""
        if isinstance(path, int):
            if dir_fd is not None or not follow_symlinks:
                raise ValueError(
                    "stat: cannot use fd and dir_fd or follow_symlinks together",
                )
            return await self.fstat(path)
        name, encoded = _path(path, "stat")
        names = (name,)
        r = self._fs_call(
            names, STAT, _dir_fd(dir_fd), encoded, None, AT_FDCWD,
            0 if follow_symlinks else AT_SYMLINK_NOFOLLOW, 0, 0, 0,
        )
        # A cached path (the common case) needs no second coroutine.
        if r.__class__ is _STAT_RESULT and not self.deferred:
            return r
        return await self._fs_result(r, None, names)  # type: ignore[no-any-return]

    async def fstat(self, fd: int) -> os.stat_result:
        """os.fstat: an ``os.stat_result`` of an open descriptor."""
        fd = index(fd)
        if fd < 0:  # statx would take AT_FDCWD (-100) for the current dir
            raise OSError(_EBADF, os.strerror(_EBADF))
        r = self._fs_call((), STAT, fd, b"", None, AT_FDCWD, AT_EMPTY_PATH, 0, 0, 0)
        if r.__class__ is _STAT_RESULT and not self.deferred:
            return r
        return await self._fs_result(r, fd, ())  # type: ignore[no-any-return]

    async def open(
        self, path: StrOrBytesPath, flags: int, mode: int = 0o777, *,
        dir_fd: int | None = None,
    ) -> int:
        """os.open: a new descriptor, not inheritable (O_CLOEXEC), as os
        makes them."""
        name, encoded = _path(path, "open")
        return await self._fs(  # type: ignore[no-any-return]
            OPEN, None, (name,), _dir_fd(dir_fd), encoded,
            flags=index(flags) | _O_CLOEXEC, mode=index(mode),
        )

    async def close_fd(self, fd: int) -> None:
        """os.close (``close()`` closes the context)."""
        fd = index(fd)
        await self._fs(CLOSE, fd, (), fd, None)

    async def rename(
        self, src: StrOrBytesPath, dst: StrOrBytesPath, *,
        src_dir_fd: int | None = None, dst_dir_fd: int | None = None,
    ) -> None:
        """os.rename."""
        src_name, src_path = _path(src, "rename", "src")
        dst_name, dst_path = _path(dst, "rename", "dst")
        await self._fs(
            RENAME, None, (src_name, dst_name), _dir_fd(src_dir_fd), src_path,
            dst_path, _dir_fd(dst_dir_fd),
        )

    async def unlink(self, path: StrOrBytesPath, *, dir_fd: int | None = None) -> None:
        """os.unlink."""
        name, encoded = _path(path, "unlink")
        await self._fs(UNLINK, None, (name,), _dir_fd(dir_fd), encoded)

    async def rmdir(self, path: StrOrBytesPath, *, dir_fd: int | None = None) -> None:
        """os.rmdir."""
        name, encoded = _path(path, "rmdir")
        await self._fs(UNLINK, None, (name,), _dir_fd(dir_fd), encoded, flags=AT_REMOVEDIR)

    async def mkdir(
        self, path: StrOrBytesPath, mode: int = 0o777, *, dir_fd: int | None = None,
    ) -> None:
        """os.mkdir."""
        name, encoded = _path(path, "mkdir")
        await self._fs(MKDIR, None, (name,), _dir_fd(dir_fd), encoded, mode=index(mode))

    async def link(
        self, src: StrOrBytesPath, dst: StrOrBytesPath, *,
        src_dir_fd: int | None = None, dst_dir_fd: int | None = None,
        follow_symlinks: bool = True,
    ) -> None:
        """os.link. As os does on Linux: without a dir_fd it is link(2),
        which does not follow a symlink ``src`` even when follow_symlinks."""
        src_name, src_path = _path(src, "link", "src")
        dst_name, dst_path = _path(dst, "link", "dst")
        with_dir = src_dir_fd is not None or dst_dir_fd is not None
        await self._fs(
            LINK, None, (src_name, dst_name), _dir_fd(src_dir_fd), src_path,
            dst_path, _dir_fd(dst_dir_fd),
            flags=AT_SYMLINK_FOLLOW if follow_symlinks and with_dir else 0,
        )

    async def symlink(
        self, src: StrOrBytesPath, dst: StrOrBytesPath,
        target_is_directory: bool = False, *, dir_fd: int | None = None,
    ) -> None:
        """os.symlink (``target_is_directory`` matters on Windows only)."""
        src_name, src_path = _path(src, "symlink", "src")
        dst_name, dst_path = _path(dst, "symlink", "dst")
        await self._fs(
            SYMLINK, None, (src_name, dst_name), AT_FDCWD, src_path, dst_path,
            _dir_fd(dir_fd),
        )

    async def ftruncate(self, fd: int, length: int) -> None:
        """os.ftruncate."""
        fd = index(fd)
        await self._fs(FTRUNCATE, fd, (), fd, None, offset=index(length))

    async def fallocate(self, fd: int, mode: int, offset: int, length: int) -> None:
        """fallocate(2): ``mode`` 0 or FALLOC_FL_* flags. Raises OSError
        (EOPNOTSUPP where the filesystem cannot, EINVAL, ...)."""
        fd = index(fd)
        await self._fs(
            FALLOCATE, fd, (), fd, None, mode=index(mode), offset=index(offset),
            length=index(length),
        )
