"""Temporary files and directories for asyncio, like ``tempfile``'s.

``TemporaryFile``, ``NamedTemporaryFile`` and ``TemporaryDirectory`` take
the arguments of the ``tempfile`` functions of the same names and are used
with ``async with`` (or ``await``: then close the file yourself). The files
are aiofile's file objects (``BinaryFileWrapper`` or ``TextFileWrapper`` by
``mode``), created with ``O_EXCL`` and mode 0o600 through the loop's caio
context (io_uring's OPENAT where the kernel has it), so that a slow
filesystem never blocks the loop. ``SpooledTemporaryFile`` keeps the data
in memory until it grows past ``max_size``, then moves to a
``TemporaryFile``.

Differences from ``tempfile``: text files default to UTF-8 (aiofile's
default), not the locale's encoding; ``buffering`` is accepted and ignored
(aiofile does not buffer); closing a temporary file does not fdatasync it
(nobody will read it after a crash); ``TemporaryFile``'s ``name`` is
``"<fd N>"``.
"""

from __future__ import annotations

import errno
import io
import os
import random
import shutil
import tempfile as _tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, AnyStr, Generic, TypeVar, overload

from . import _fs
from .aio import AIOFile
from .modes import parse_mode
from .opening import _BinaryMode, _TextMode
from .wrappers import BinaryFileWrapper, TextFileWrapper

if TYPE_CHECKING:
    from _typeshed import StrOrBytesPath
    from typing_extensions import Self

__all__ = (
    "NamedTemporaryFile", "SpooledTemporaryFile", "TemporaryDirectory", "TemporaryFile",
    "TemporaryFileContext",
)

W = TypeVar("W", BinaryFileWrapper, TextFileWrapper)
R = TypeVar("R")

# What tempfile.mkstemp asks of the kernel: a new file nobody else can have
# opened or planted as a link.
_CREATE = (
    os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)
_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
# Cleared when the kernel or filesystem refuses O_TMPFILE once.
_tmpfile_works = bool(_O_TMPFILE)
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_names = random.SystemRandom()


def _candidate() -> str:
    return "".join(_names.choices(_NAME_CHARS, k=8))


async def _parts(
    prefix: AnyStr | None, suffix: AnyStr | None, dir: StrOrBytesPath | None,
) -> tuple[Any, Any, Any]:
    """``prefix``, ``suffix`` and ``dir`` with tempfile's defaults, all str
    or all bytes; TypeError when they mix."""
    given = [p for p in (prefix, suffix, dir) if p is not None]
    kinds = {isinstance(os.fspath(p), bytes) for p in given}
    if len(kinds) > 1:
        raise TypeError("Can't mix bytes and non-bytes in path components.")
    as_bytes = kinds == {True}
    if dir is None:
        # The first call probes candidate directories by writing to them.
        if as_bytes:
            dir = await _fs.call(None, _tempfile.gettempdirb)
        else:
            dir = await _fs.call(None, _tempfile.gettempdir)
    if prefix is None:
        prefix = _tempfile.template.encode() if as_bytes else _tempfile.template  # type: ignore[assignment]
    if suffix is None:
        suffix = b"" if as_bytes else ""  # type: ignore[assignment]
    return prefix, suffix, os.fspath(dir)


async def _unique(
    prefix: Any, suffix: Any, dir: Any, make: Callable[[Any], Awaitable[R]], what: str,
) -> tuple[R, Any]:
    """``make(path)`` on new random names in ``dir`` until one is free, as
    ``tempfile.mkstemp`` and ``mkdtemp`` do: (its result, absolute path)."""
    for _ in range(_tempfile.TMP_MAX):
        name = _candidate()
        if isinstance(prefix, bytes):
            name = name.encode()  # type: ignore[assignment]
        path = os.path.join(dir, prefix + name + suffix)
        try:
            made = await make(path)
        except FileExistsError:
            continue
        return made, os.path.abspath(path)
    raise FileExistsError(errno.EEXIST, f"No usable temporary {what} name found")


def _create_file(path: Any) -> Awaitable[int]:
    return _fs.call("open", os.open, path, _CREATE, 0o600)


def _create_directory(path: Any) -> Awaitable[None]:
    return _fs.call("mkdir", os.mkdir, path, 0o700)


class _TempAIOFile(AIOFile):
    """An AIOFile on a temporary file: close() does not fdatasync (nobody
    reads the data after a crash) and may remove the file."""

    _remove: str | bytes | None = None

    async def _sync_for_close(self, fd: int) -> None:
        pass

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            path, self._remove = self._remove, None
            if path is not None:
                await _unlink_quietly(path)

    def clone(self) -> Self:
        twin = super().clone()
        twin._remove = None  # only the original removes the file
        return twin


async def _unlink_quietly(path: str | bytes) -> None:
    try:
        await _fs.call("unlink", os.unlink, path)
    except FileNotFoundError:
        pass


def _wrap(
    fd: int, name: str | bytes, mode: str, encoding: str | None,
    errors: str | None, newline: str | None,
) -> BinaryFileWrapper | TextFileWrapper:
    """aiofile's file object on the open descriptor ``fd`` (owned)."""
    extra: dict[str, Any] = {}
    # Given only when set: the file-object options of AIOFile.
    if errors is not None:
        extra["errors"] = errors
    if newline is not None:
        extra["newline"] = newline
    try:
        afp = _TempAIOFile(name, mode, encoding or "utf-8", **extra)
    except BaseException:
        os.close(fd)
        raise
    handle = afp._handle()
    handle.fd = fd
    handle.opened = True
    if afp.mode.binary:
        return BinaryFileWrapper(afp)
    return TextFileWrapper(afp)


class TemporaryFileContext(Generic[W]):
    """What ``TemporaryFile`` and ``NamedTemporaryFile`` return.

    ``async with`` it: the file object, closed (and, if so asked, removed)
    on exit; or ``await`` it: the file object, yours to close.
    """

    def __init__(
        self, mode: str, encoding: str | None, newline: str | None, errors: str | None,
        suffix: Any, prefix: Any, dir: Any, named: bool, delete: bool, delete_on_close: bool,
    ) -> None:
        # A bad mode fails here, before any file exists.
        if parse_mode(mode).binary and (encoding, errors, newline) != (None, None, None):
            raise ValueError("binary mode doesn't take an encoding, errors or newline argument")
        self._args = (mode, encoding, errors, newline)
        self._where = (prefix, suffix, dir)
        self._named = named
        self._delete = delete
        self._delete_on_close = delete_on_close
        self._file: W | None = None
        self._path: str | bytes | None = None

    async def _open(self) -> W:
        global _tmpfile_works
        mode, encoding, errors, newline = self._args
        prefix, suffix, dir = await _parts(*self._where)
        if not self._named and _tmpfile_works:
            flags = (_CREATE | _O_TMPFILE) & ~os.O_CREAT
            try:
                fd = await _fs.call("open", os.open, dir, flags, 0o600)
            except IsADirectoryError:  # a kernel without O_TMPFILE: O_DIRECTORY
                _tmpfile_works = False
            except OSError as exc:  # a filesystem without it
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                _tmpfile_works = False
            else:
                return self._made(_wrap(fd, f"<fd {fd}>", mode, encoding, errors, newline))
        fd, path = await _unique(prefix, suffix, dir, _create_file, "file")
        if not self._named:
            # Nameless as tempfile makes it where O_TMPFILE cannot.
            try:
                await _fs.call("unlink", os.unlink, path)
            except BaseException:
                os.close(fd)
                raise
            return self._made(_wrap(fd, f"<fd {fd}>", mode, encoding, errors, newline))
        try:
            wrapper = _wrap(fd, path, mode, encoding, errors, newline)
        except BaseException:
            await _unlink_quietly(path)
            raise
        self._path = path
        if self._delete and self._delete_on_close:
            wrapper.file._remove = path  # type: ignore[attr-defined]
        return self._made(wrapper)

    def _made(self, wrapper: BinaryFileWrapper | TextFileWrapper) -> W:
        self._file = wrapper  # type: ignore[assignment]
        return wrapper  # type: ignore[return-value]

    def __await__(self) -> Generator[Any, None, W]:
        return self._open().__await__()

    async def __aenter__(self) -> W:
        return await self._open()

    async def __aexit__(self, *exc_info: object) -> None:
        wrapper = self._file
        if wrapper is None:
            return
        try:
            await wrapper.close()
        finally:
            if self._delete and self._path is not None:
                await _unlink_quietly(self._path)


@overload
def TemporaryFile(
    mode: _BinaryMode = "w+b", buffering: int = -1, encoding: None = None, newline: None = None,
    suffix: AnyStr | None = None, prefix: AnyStr | None = None,
    dir: StrOrBytesPath | None = None, *, errors: None = None,
) -> TemporaryFileContext[BinaryFileWrapper]: ...
@overload
def TemporaryFile(
    mode: _TextMode, buffering: int = -1, encoding: str | None = None,
    newline: str | None = None, suffix: AnyStr | None = None, prefix: AnyStr | None = None,
    dir: StrOrBytesPath | None = None, *, errors: str | None = None,
) -> TemporaryFileContext[TextFileWrapper]: ...


def TemporaryFile(
    mode: str = "w+b", buffering: int = -1, encoding: str | None = None,
    newline: str | None = None, suffix: AnyStr | None = None, prefix: AnyStr | None = None,
    dir: StrOrBytesPath | None = None, *, errors: str | None = None,
) -> TemporaryFileContext[Any]:
    """``tempfile.TemporaryFile``: a file with no name, gone when closed.

    ``async with TemporaryFile() as f`` (or ``f = await TemporaryFile()``).
    On Linux it is made with ``O_TMPFILE`` where the filesystem has it, else
    created and unlinked at once. Raises ValueError (bad mode), TypeError
    (str and bytes mixed in ``prefix``/``suffix``/``dir``), OSError.
    """
    return TemporaryFileContext(
        mode, encoding, newline, errors, suffix, prefix, dir,
        named=False, delete=True, delete_on_close=True,
    )


@overload
def NamedTemporaryFile(
    mode: _BinaryMode = "w+b", buffering: int = -1, encoding: None = None,
    newline: None = None, suffix: AnyStr | None = None, prefix: AnyStr | None = None,
    dir: StrOrBytesPath | None = None, delete: bool = True, *, errors: None = None,
    delete_on_close: bool = True,
) -> TemporaryFileContext[BinaryFileWrapper]: ...
@overload
def NamedTemporaryFile(
    mode: _TextMode, buffering: int = -1, encoding: str | None = None,
    newline: str | None = None, suffix: AnyStr | None = None, prefix: AnyStr | None = None,
    dir: StrOrBytesPath | None = None, delete: bool = True, *, errors: str | None = None,
    delete_on_close: bool = True,
) -> TemporaryFileContext[TextFileWrapper]: ...


def NamedTemporaryFile(
    mode: str = "w+b", buffering: int = -1, encoding: str | None = None,
    newline: str | None = None, suffix: AnyStr | None = None, prefix: AnyStr | None = None,
    dir: StrOrBytesPath | None = None, delete: bool = True, *, errors: str | None = None,
    delete_on_close: bool = True,
) -> TemporaryFileContext[Any]:
    """``tempfile.NamedTemporaryFile``: a file with a name (``f.name``).

    With ``delete`` it is removed when closed, or with ``delete_on_close``
    false (Python 3.12's option, accepted on every version) at the end of
    the ``async with``. Raises ValueError (bad mode), TypeError, OSError.
    """
    return TemporaryFileContext(
        mode, encoding, newline, errors, suffix, prefix, dir,
        named=True, delete=delete, delete_on_close=delete_on_close,
    )


class SpooledTemporaryFile(Generic[AnyStr]):
    """``tempfile.SpooledTemporaryFile``: in memory until ``max_size``.

    The data stay in an ``io.BytesIO`` (text mode: an ``io.TextIOWrapper``
    over one) until a write makes it longer than ``max_size`` (0: never) or
    ``await rollover()`` is called; from then on a ``TemporaryFile`` holds
    them. ``async with`` it, or ``await close()``. ``read``, ``readline``,
    ``write``, ``truncate``, ``flush`` are coroutines, ``seek`` and ``tell``
    are not (as on aiofile's file objects). ``fileno()`` needs the real
    file: it raises io.UnsupportedOperation before ``rollover()``.
    """

    @overload
    def __init__(
        self: SpooledTemporaryFile[bytes], max_size: int = 0, mode: _BinaryMode = "w+b",
        buffering: int = -1, encoding: None = None, newline: None = None,
        suffix: str | bytes | None = None, prefix: str | bytes | None = None,
        dir: StrOrBytesPath | None = None, *, errors: None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: SpooledTemporaryFile[str], max_size: int, mode: _TextMode,
        buffering: int = -1, encoding: str | None = None, newline: str | None = None,
        suffix: str | bytes | None = None, prefix: str | bytes | None = None,
        dir: StrOrBytesPath | None = None, *, errors: str | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self: SpooledTemporaryFile[str], max_size: int = 0, *, mode: _TextMode,
        buffering: int = -1, encoding: str | None = None, newline: str | None = None,
        suffix: str | bytes | None = None, prefix: str | bytes | None = None,
        dir: StrOrBytesPath | None = None, errors: str | None = None,
    ) -> None: ...

    def __init__(
        self, max_size: int = 0, mode: str = "w+b", buffering: int = -1,
        encoding: str | None = None, newline: str | None = None,
        suffix: str | bytes | None = None, prefix: str | bytes | None = None,
        dir: StrOrBytesPath | None = None, *, errors: str | None = None,
    ) -> None:
        self._mode = parse_mode(mode)
        self._memory: Any
        if self._mode.binary:
            self._memory = io.BytesIO()
        else:
            self._memory = io.TextIOWrapper(
                io.BytesIO(), encoding=encoding or "utf-8", errors=errors, newline=newline,
            )
        self._max_size = max_size
        self._file: Any = None
        self._opener: TemporaryFileContext[Any] = TemporaryFileContext(
            mode, encoding, newline, errors, suffix, prefix, dir,
            named=False, delete=True, delete_on_close=True,
        )

    @property
    def _rolled(self) -> bool:
        return self._file is not None

    async def rollover(self) -> None:
        """Move the data to a real temporary file (once). Raises OSError."""
        if self._file is not None:
            return
        memory = self._memory
        position = memory.tell()
        if isinstance(memory, io.TextIOWrapper):
            memory.flush()
            data = memory.buffer.getvalue()
        else:
            data = memory.getvalue()
        wrapper = await self._opener
        try:
            await wrapper.file.write_bytes(data, 0)
            wrapper.seek(position)
        except BaseException:
            await wrapper.close()
            raise
        self._file = wrapper
        memory.close()

    async def _check(self) -> None:
        if self._file is None and self._max_size and self._memory.tell() > self._max_size:
            await self.rollover()

    async def write(self, s: AnyStr) -> int:
        """Write ``s`` (bytes-like in binary mode, str in text mode)."""
        if self._file is not None:
            return await self._file.write(s)  # type: ignore[no-any-return]
        count: int = self._memory.write(s)
        await self._check()
        return count

    async def writelines(self, iterable: Iterable[AnyStr]) -> None:
        """Write each item of ``iterable``."""
        for item in iterable:
            await self.write(item)

    async def read(self, size: int = -1) -> AnyStr:
        """Read ``size`` (all if negative) bytes or characters."""
        if self._file is not None:
            return await self._file.read(size)  # type: ignore[no-any-return]
        return self._memory.read(size)  # type: ignore[no-any-return]

    async def readline(self, size: int = -1) -> AnyStr:
        """Read one line (at most ``size``)."""
        if self._file is not None:
            return await self._file.readline(size)  # type: ignore[no-any-return]
        return self._memory.readline(size)  # type: ignore[no-any-return]

    async def readlines(self) -> list[AnyStr]:
        """Every remaining line."""
        return [line async for line in self]

    def __aiter__(self) -> AsyncIterator[AnyStr]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[AnyStr]:
        while True:
            line = await self.readline()
            if not line:
                return
            yield line

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position; returns the new one."""
        if self._file is not None:
            return self._file.seek(offset, whence)  # type: ignore[no-any-return]
        return self._memory.seek(offset, whence)  # type: ignore[no-any-return]

    def tell(self) -> int:
        """The position."""
        if self._file is not None:
            return self._file.tell()  # type: ignore[no-any-return]
        return self._memory.tell()  # type: ignore[no-any-return]

    async def truncate(self, size: int | None = None) -> int:
        """Cut the data to ``size`` (the position if None); returns it.
        Raises ValueError (negative)."""
        if size is None:
            size = self.tell()
        if self._file is None:
            return self._memory.truncate(size)  # type: ignore[no-any-return]
        if size < 0:
            raise ValueError(f"negative size value {size}")
        await self._file.file.truncate(size)
        return size

    async def flush(self) -> None:
        """Flush (in memory: nothing to do)."""
        if self._file is not None:
            await self._file.flush()
        else:
            self._memory.flush()

    def fileno(self) -> int:
        """The descriptor of the rolled-over file.

        Raises io.UnsupportedOperation while the data are in memory: ``await
        rollover()`` first (``tempfile``'s would roll over here, blocking).
        """
        if self._file is None:
            raise io.UnsupportedOperation(
                "the data are in memory: await rollover() before fileno()",
            )
        return self._file.fileno()  # type: ignore[no-any-return]

    @property
    def closed(self) -> bool:
        """Whether it was closed."""
        if self._file is not None:
            return self._file.closed  # type: ignore[no-any-return]
        return self._memory.closed  # type: ignore[no-any-return]

    @property
    def mode(self) -> str:
        """The mode, as ``open`` spells it."""
        return str(self._mode)

    @property
    def name(self) -> str | None:
        """None while in memory, then the temporary file's name."""
        if self._file is None:
            return None
        return self._file.name  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Release the memory or close (and so remove) the file. Idempotent."""
        if self._file is not None:
            await self._file.close()
        else:
            self._memory.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class TemporaryDirectory(Generic[AnyStr]):
    """``tempfile.TemporaryDirectory``: a new directory, removed at the end.

    ``async with TemporaryDirectory() as path``: ``path`` is its name (str,
    or bytes if ``prefix``, ``suffix`` or ``dir`` is); it is created (mode
    0o700) through the loop's caio context and removed with everything in
    it, off the loop, on exit (or by ``await cleanup()``). Errors of the
    removal are ignored with ``ignore_cleanup_errors``; with ``delete``
    false (Python 3.12's option, accepted on every version) it stays.
    """

    name: AnyStr

    def __init__(
        self, suffix: AnyStr | None = None, prefix: AnyStr | None = None,
        dir: StrOrBytesPath | None = None, ignore_cleanup_errors: bool = False,
        *, delete: bool = True,
    ) -> None:
        self._where: tuple[Any, Any, Any] = (prefix, suffix, dir)
        self._ignore_cleanup_errors = ignore_cleanup_errors
        self._delete = delete
        self._made = False

    async def _create(self) -> AnyStr:
        prefix, suffix, dir = await _parts(*self._where)
        _, self.name = await _unique(prefix, suffix, dir, _create_directory, "directory")
        self._made = True
        return self.name

    def __await__(self) -> Generator[Any, None, AnyStr]:
        return self._create().__await__()

    async def __aenter__(self) -> AnyStr:
        return await self._create()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._delete:
            await self.cleanup()

    async def cleanup(self) -> None:
        """Remove the directory and its contents. Raises OSError unless
        ``ignore_cleanup_errors``."""
        if self._made:
            self._made = False
            await _fs.call(None, _remove_tree, self.name, self._ignore_cleanup_errors)


def _remove_tree(path: str | bytes, ignore_errors: bool) -> None:
    try:
        shutil.rmtree(path, ignore_errors=ignore_errors)
    except FileNotFoundError:
        pass  # removed already: what the end of the block asks for
