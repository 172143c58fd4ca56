"""``AIOFile``: a file opened for reads and writes at explicit offsets."""

from __future__ import annotations

import asyncio
import codecs
import errno
import io
import os
import stat
import warnings
from collections.abc import Callable, Generator
from concurrent.futures import Executor
from typing import IO, TYPE_CHECKING, Any

from caio import MAX_IO_SIZE

from . import _fs
from ._running import run_in_thread
from .context import DEFAULT_CONTEXT_STORE, create_context, default_context, get_default_context
from .direct import DirectIO, direct_io_of, open_direct
from .modes import FileMode, parse_mode

if TYPE_CHECKING:

    from typing_extensions import Buffer, Self

    from caio import AsyncioContextBase

__all__ = (
    "DEFAULT_CONTEXT_STORE", "AIOFile", "DataTypeError", "FileName", "NotOpenError", "Opener",
    "WriteReturnedZeroError", "create_context", "get_default_context", "partial_write_error",
)

FileName = str | bytes | os.PathLike[str] | os.PathLike[bytes]
#: ``opener=`` of ``AIOFile`` and ``async_open``, as the built-in ``open``
#: takes it: called with the path and the ``os.open`` flags, returns a descriptor.
Opener = Callable[[str, int], int]

# read(-1) on a file of unknown size starts with this and doubles.
_READ_ALL_START = 64 * 1024

_fdatasync = getattr(os, "fdatasync", os.fsync)


class NotOpenError(ValueError, asyncio.InvalidStateError):
    """An AIOFile that is not open (never opened, or closed) was used.

    Both a ValueError, as the built-in files raise for this, and the
    asyncio.InvalidStateError that aiofile 3.12 raised: either ``except``
    clause catches it.
    """


class DataTypeError(TypeError, ValueError):
    """Data of the wrong type for the file's mode (str to a binary file,
    bytes to a text one).

    A TypeError, as the built-in files raise, and the ValueError that
    aiofile 3.12 raised: either ``except`` clause catches it.
    """


def partial_write_error(
    exc: OSError, written: int, total: int, name: str | bytes | int,
) -> OSError:
    """``exc`` of a write of ``total`` bytes with how many of them landed.

    The attribute ``written`` says it; when some bytes landed the message
    says it too (the error is then a new one of the same errno and type),
    so that nobody mistakes a half-written file for an untouched one.
    """
    if written:
        error = OSError(
            exc.errno,
            f"{exc.strerror} after {written} of {total} bytes were written",
            exc.filename if exc.filename is not None else name,
        )
        error.__cause__ = exc
        exc = error
    exc.written = written  # type: ignore[attr-defined]
    return exc


class FileHandle:
    """An AIOFile's descriptor and context: what the objects built on it use.

    Internal to aiofile. Each AIOFile has one for its whole life (a clone
    gets its own), given by ``AIOFile._handle()``; the file wrappers,
    ``Reader`` and ``LineReader`` take it once when they are made. The
    descriptor (-1 when closed), the caio context and whether the file was
    ever opened live here and nowhere else, so everyone sees ``close()`` at
    once. On a hot path ``handle.fd`` and ``handle.context`` are one slot
    lookup each, as the AIOFile attributes they replace were.
    """

    __slots__ = ("context", "direct", "fd", "name", "opened", "readable", "writable")

    def __init__(
        self,
        name: str | bytes | int,
        readable: bool,
        writable: bool,
        context: AsyncioContextBase | None,
    ) -> None:
        self.name = name
        self.readable = readable
        self.writable = writable
        self.context = context
        self.fd = -1
        self.opened = False
        #: O_DIRECT state (alignment, write lock), None for a buffered file.
        self.direct: DirectIO | None = None

    def closed_error(self) -> NotOpenError:
        """The error for an operation on a file that is not open."""
        if self.opened:
            return NotOpenError(f"I/O operation on closed file {self.name!r}")
        return NotOpenError(
            f"file {self.name!r} is not open: await AIOFile.open() (or use "
            "'await AIOFile(...)' / 'async with') first",
        )

    def bind_context(self) -> AsyncioContextBase:
        """The context, the running loop's default one if none is bound yet.

        (A from_fp() file gets it on first use.) Raises RuntimeError when
        no loop runs.
        """
        context = self.context
        if context is None:
            context = self.context = default_context()
        return context

    def check_readable(self) -> int:
        """The descriptor; ValueError if closed, io.UnsupportedOperation if write-only."""
        fd = self.fd
        if fd < 0:
            raise self.closed_error()
        if not self.readable:
            raise io.UnsupportedOperation(f"file {self.name!r} is not open for reading")
        return fd

    def check_writable(self) -> int:
        """The descriptor; ValueError if closed, io.UnsupportedOperation if read-only."""
        fd = self.fd
        if fd < 0:
            raise self.closed_error()
        if not self.writable:
            raise io.UnsupportedOperation(f"file {self.name!r} is not open for writing")
        return fd

    def twin(self, fd: int) -> FileHandle:
        """A handle like this one on another (open) descriptor."""
        twin = FileHandle(self.name, self.readable, self.writable, self.context)
        twin.fd = fd
        twin.opened = True
        # The same open file: the same alignment, and one write lock, so
        # that the two never patch one block at once.
        twin.direct = self.direct
        return twin


class WriteReturnedZeroError(RuntimeError, OSError):
    """A write made no progress: the context reported 0 bytes written.

    A RuntimeError with aiofile 3.12's message, and an OSError (errno EIO)
    like every other failed write.
    """

    def __init__(self) -> None:
        super().__init__("Write operation returned 0")
        # Set after: OSError's constructor would take two arguments as
        # (errno, strerror) and change the message to "[Errno 5] ...".
        self.errno = errno.EIO


def _write_failed(result: int, name: str | bytes | int) -> OSError:
    """The error for a write result that is no progress: 0 or -errno."""
    if result == 0:
        return WriteReturnedZeroError()
    return OSError(-result, os.strerror(-result), name)


class AIOFile:
    """A file for asyncio whose reads and writes name their offset.

    ``AIOFile(filename, mode="r", encoding="utf-8", context=None,
    executor=None, direct=False, *, errors=None, closefd=True, opener=None)``:
    ``mode`` follows the built-in ``open`` (ValueError otherwise),
    ``context`` is the caio context to use (default: the running loop's),
    ``executor`` runs the calls that have no asynchronous form (``open``,
    ``ftruncate``). ``filename`` may be an open descriptor (an ``int``), as
    with ``open``; ``closefd=False`` leaves it open when the file is closed.
    ``opener`` is called as ``opener(path, flags)`` (in the executor)
    instead of ``os.open``. ``errors`` is the codec error handler of text
    mode (default ``"strict"``). Open it with ``await afp.open()``,
    ``await AIOFile(...)`` or ``async with AIOFile(...)``.

    ``direct=True`` opens the file with ``O_DIRECT`` (no page cache); reads
    and writes of any offset and length still work: see ``aiofile.direct``.
    Opening raises OSError (EINVAL, naming the file) where the filesystem
    refuses O_DIRECT.

    Sizes and offsets count bytes in text mode too; ``read`` decodes and
    ``write`` encodes with ``encoding`` and ``errors``. Raises ValueError
    (bad mode, ``errors`` in binary mode, ``closefd=False`` with a path, a
    negative descriptor), TypeError, LookupError (unknown encoding or
    error handler).
    """

    def __init__(
        self,
        filename: FileName | int,
        mode: str = "r",
        encoding: str = "utf-8",
        context: AsyncioContextBase | None = None,
        executor: Executor | None = None,
        direct: bool = False,
        *,
        errors: str | None = None,
        closefd: bool = True,
        opener: Opener | None = None,
    ) -> None:
        self._direct = bool(direct)
        if isinstance(filename, int):
            if filename < 0:
                raise ValueError("negative file descriptor")
            self._name: str | bytes | int = filename
        else:
            self._name = os.fspath(filename)
            if not closefd:
                raise ValueError("Cannot use closefd=False with file name")
        self._file_mode = parse_mode(mode)
        # An unknown encoding fails here, as it does in the built-in open.
        self._encoding = codecs.lookup(encoding).name
        if errors is not None:
            if not isinstance(errors, str):
                raise TypeError(f"errors must be str or None, not {type(errors).__name__}")
            if self._file_mode.binary:
                raise ValueError("binary mode doesn't take an errors argument")
            # Here rather than at the first read or write (the built-in
            # open checks only in development mode).
            codecs.lookup_error(errors)
        self._errors = errors or "strict"
        self._opener = opener
        # What the codec writes before the first character (a BOM) or "".
        self._bom = "".encode(self._encoding)
        self._executor = executor
        self._fh = FileHandle(
            self._name, self._file_mode.readable, self._file_mode.writable, context,
        )
        self._owns_fd = closefd
        # A file object given to from_fp: kept alive, so that its finalizer
        # cannot close the descriptor under us.
        self._fp: Any = None

    @classmethod
    def from_fp(cls, fp: IO[Any], **kwargs: Any) -> Self:
        """Wrap an open file object without owning it.

        The AIOFile uses ``fp``'s descriptor; closing the AIOFile leaves
        ``fp`` open. ``mode`` and ``encoding`` default to ``fp``'s. Raises
        ValueError if ``fp`` is closed, io.UnsupportedOperation (an OSError)
        if it has no descriptor.
        """
        if fp.closed:
            raise ValueError("I/O operation on closed file")
        fd = fp.fileno()
        kwargs.setdefault("mode", getattr(fp, "mode", "r+b"))
        encoding = getattr(fp, "encoding", None)
        if encoding:
            kwargs.setdefault("encoding", encoding)
        name = getattr(fp, "name", None)
        if not isinstance(name, (str, bytes, os.PathLike)):
            name = f"<fd {fd}>"
        if fp.writable():
            # Data still in fp's buffer belongs before ours.
            fp.flush()
        direct = direct_io_of(fd)
        if kwargs.get("direct") and direct is None:
            raise ValueError(
                f"direct=True needs a descriptor open with O_DIRECT; {name!r} (fd {fd}) is not",
            )
        afp = cls(name, **kwargs)
        afp._direct = direct is not None
        afp._fh.direct = direct
        afp._fh.fd = fd
        afp._fh.opened = True
        afp._owns_fd = False
        afp._fp = fp
        return afp

    # --- opening and closing -------------------------------------------------

    def _open_fd(self) -> int:
        name = self._name
        if isinstance(name, int):
            # An open descriptor: nothing to open, but what the built-in
            # open checks (EBADF, a directory) is checked here too.
            fd = name
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
            if self._direct:
                self._fh.direct = direct_io_of(fd)
                if self._fh.direct is None:
                    raise ValueError(
                        f"direct=True needs a descriptor open with O_DIRECT; fd {fd} is not",
                    )
            return fd
        opener = self._opener
        if opener is None:
            if self._direct:
                fd = open_direct(name, self._file_mode.flags)
            else:
                fd = os.open(name, self._file_mode.flags, 0o666)
        else:
            flags = self._file_mode.flags | (os.O_DIRECT if self._direct else 0)
            fd = opener(name, flags)  # type: ignore[arg-type]
            if not isinstance(fd, int):
                raise TypeError(f"expected integer from opener, not {type(fd).__name__}")
            if fd < 0:
                raise ValueError(f"opener returned {fd}")
            # The built-in open makes an opener's descriptor non-inheritable too.
            os.set_inheritable(fd, False)
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                # os.open opens a directory read-only; the built-in open
                # refuses, and so do we.
                raise IsADirectoryError(
                    errno.EISDIR, os.strerror(errno.EISDIR), self._name,
                )
            if self._direct:
                self._fh.direct = DirectIO(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    async def open(self) -> int | None:
        """Open the file; returns the descriptor, or None if already open.

        Raises OSError (FileNotFoundError, PermissionError,
        IsADirectoryError, FileExistsError for mode "x", ...), NotOpenError
        (a ValueError and asyncio.InvalidStateError) once closed: a closed
        AIOFile stays closed, as in aiofile 3.12.
        """
        fh = self._fh
        if fh.fd >= 0:
            return None
        if fh.opened:
            raise NotOpenError(f"{self._name!r} is closed and cannot be reopened")
        context = fh.bind_context()
        if isinstance(self._name, int):
            fd = self._open_fd()  # an fstat: it does not block
        elif self._direct or self._opener is not None:
            # O_DIRECT opening (its fallbacks and messages: aiofile/direct.py)
            # and an opener are our own code: all of it on a worker.
            fd = await _fs.open_on_worker(self._executor, self._open_fd)
        else:
            # open() may block (network filesystems, FIFOs): not on the loop;
            # io_uring's OPENAT where the context has it, else the executor.
            fd = await _fs.open_fd(
                context, self._executor, self._name, self._file_mode.flags, 0o666,
                self._open_fd,
            )
        if fh.fd >= 0:  # a concurrent open() won
            os.close(fd)
            return None
        fh.fd = fd
        fh.opened = True
        return fd

    async def close(self) -> None:
        """Close the file; a writable one is made durable (fdatasync) first.

        Idempotent. The descriptor is released even when the sync fails;
        that failure (OSError, e.g. EIO: data was lost) is raised. A file
        from ``from_fp`` is synced but its descriptor stays open.
        """
        fh = self._fh
        fd = fh.fd
        if fd < 0:
            return
        # From here on every operation fails clearly (the wrappers share the
        # handle), and a concurrent close() returns at once.
        fh.fd = -1
        try:
            if self._file_mode.writable:
                await self._sync_for_close(fd)
        finally:
            try:
                # Operations started before close() still name this number:
                # closing it under them would let them reach the next file
                # opened under it (an operation is bound to its file).
                await self._wait_idle(fd)
            finally:
                if self._owns_fd:
                    os.close(fd)
                self._fp = None

    async def _wait_idle(self, fd: int) -> None:
        context = self._fh.context
        wait_idle = getattr(context, "wait_idle", None)  # a caio before 0.13 has none
        if wait_idle is not None and not context.closed:  # type: ignore[union-attr]
            await wait_idle(fd)

    async def _sync_for_close(self, fd: int) -> None:
        context = self._fh.context
        try:
            if context is None or context.closed:
                # The loop is shutting down and took its context along:
                # durability still matters more than not blocking.
                _fdatasync(fd)
            else:
                await context.fdsync(fd)
        except OSError as exc:
            # Pipes, sockets, character devices: nothing to make durable.
            if exc.errno not in (errno.EINVAL, errno.EROFS, errno.ENOTSUP):
                raise

    def __del__(self) -> None:
        # As the built-in file objects do: a file nobody closed must not
        # leak its descriptor. There is no loop to sync on here; say so.
        fh = self.__dict__.get("_fh")
        if fh is not None and fh.fd >= 0 and self.__dict__.get("_owns_fd"):
            fd = fh.fd
            try:
                message = f"unclosed file {self!r}"
                fh.fd = -1
                os.close(fd)
                warnings.warn(message, ResourceWarning, stacklevel=2, source=self)
            except ResourceWarning:
                # -W error: the descriptor is closed; the leak is reported.
                raise
            except Exception:  # at exit os may be gone
                pass

    def __await__(self) -> Generator[Any, None, Self]:
        yield from self.open().__await__()
        return self

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- state -----------------------------------------------------------------

    def _handle(self) -> FileHandle:
        """The file's live descriptor and context, for aiofile's wrappers (internal)."""
        return self._fh

    @property
    def name(self) -> str | bytes | int:
        """The file name given (a path-like one as ``os.fspath`` gives it),
        or the descriptor when one was given, as the built-in files have it."""
        return self._name

    @property
    def mode(self) -> FileMode:
        """The parsed mode; ``str(afp.mode)`` spells it like ``open`` does."""
        return self._file_mode

    @property
    def encoding(self) -> str:
        """The codec name used in text mode."""
        return self._encoding

    @property
    def errors(self) -> str:
        """The codec error handler of text mode (``"strict"`` unless given)."""
        return self._errors

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop of the file's context (the running loop before open).

        Raises RuntimeError when no context is bound and no loop runs.
        """
        context = self._fh.context
        if context is not None:
            return context.loop
        return asyncio.get_running_loop()

    @property
    def direct(self) -> bool:
        """Whether the file is (to be) open with O_DIRECT."""
        return self._direct

    @property
    def closed(self) -> bool:
        """True unless the file is open (before open() and after close())."""
        return self._fh.fd < 0

    def fileno(self) -> int:
        """The descriptor. Raises ValueError if the file is not open."""
        fh = self._fh
        fd = fh.fd
        if fd < 0:
            raise fh.closed_error()
        return fd

    def clone(self) -> Self:
        """Another AIOFile on a duplicate descriptor of the same open file.

        Each can be closed without affecting the other. Raises ValueError if
        this file is not open, OSError if no descriptor is left.
        """
        fd = self.fileno()
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin._fh = self._fh.twin(os.dup(fd))
        twin._owns_fd = True
        twin._fp = None
        return twin

    def __repr__(self) -> str:
        fd = self._fh.fd
        state = "closed" if fd < 0 else f"fd={fd}"
        return f"<{type(self).__name__} {self._name!r} mode={str(self._file_mode)!r} {state}>"

    # --- reading -----------------------------------------------------------------

    async def read(self, size: int = -1, offset: int = 0) -> str | bytes:
        """Read ``size`` bytes at ``offset`` (all to end of file if negative).

        Returns str in text mode (decoded with ``encoding``), else bytes;
        shorter at end of file. Raises ValueError (closed file), OSError,
        io.UnsupportedOperation (not readable), UnicodeDecodeError.
        """
        data = await self.read_bytes(size, offset)
        if self._file_mode.binary:
            return data
        return data.decode(self._encoding, self._errors)

    async def read_bytes(self, size: int = -1, offset: int = 0) -> bytes:
        """Read ``size`` bytes at ``offset`` as bytes, whatever the mode.

        A negative ``size`` reads until a read finds nothing more: to the end
        of the file even while it grows, and to EOF on a pipe. Raises
        ValueError (closed file, negative offset), OSError,
        io.UnsupportedOperation (not readable).
        """
        fh = self._fh
        fd = fh.check_readable()
        context = fh.context or fh.bind_context()
        if size >= 0:
            return await context.read(size, fd, offset)
        return await self._read_to_end(context, fd, offset)

    async def readinto(self, buffer: Buffer, offset: int = 0) -> int:
        """Read into ``buffer`` at ``offset``; returns how many bytes were read.

        ``buffer`` is any writable C-contiguous buffer (bytearray, a
        memoryview slice, mmap, array, a NumPy array): the kernel writes
        straight into it, whatever the mode (no decoding). One read: fewer
        bytes than the buffer holds near the end of the file or from a pipe,
        0 at the end. The buffer cannot be resized until the read is done.
        Raises TypeError (read-only buffer), ValueError (closed file,
        negative offset), io.UnsupportedOperation (not readable), OSError.
        """
        fh = self._fh
        fd = fh.check_readable()
        context = fh.context or fh.bind_context()
        return await context.readinto(buffer, fd, offset)

    async def _read_to_end(self, context: AsyncioContextBase, fd: int, offset: int) -> bytes:
        try:
            st = os.fstat(fd)
        except OSError:
            hint = 0
        else:
            hint = st.st_size - offset if stat.S_ISREG(st.st_mode) else 0
        size = min(hint, MAX_IO_SIZE) if hint > 0 else _READ_ALL_START
        parts: list[bytes] = []
        total = 0
        while True:
            data = await context.read(size, fd, offset)
            if not data:
                break
            parts.append(data)
            offset += len(data)
            total += len(data)
            # The file was longer than it said, or has no size: grow.
            size = min(max(total, _READ_ALL_START), MAX_IO_SIZE)
        if len(parts) == 1:
            return parts[0]  # the common case: no copy
        return b"".join(parts)

    # --- writing -----------------------------------------------------------------

    def encode(self, data: str, offset: int = 0) -> bytes:
        """``data`` encoded for this file, BOM only at offset 0.

        Raises TypeError if ``data`` is not str, UnicodeEncodeError.
        """
        if not isinstance(data, str):
            raise TypeError(f"expected str, not {type(data).__name__}")
        encoded = data.encode(self._encoding, self._errors)
        bom = self._bom
        if bom and offset and encoded.startswith(bom):
            # utf-16, utf-32, utf-8-sig: the mark belongs at the start only.
            encoded = encoded[len(bom):]
        return encoded

    def encode_bytes(self, data: str) -> bytes:
        """``data`` encoded with the file's encoding (as at offset 0)."""
        return self.encode(data)

    def decode_bytes(self, data: bytes) -> str:
        """``data`` decoded with the file's encoding. Raises UnicodeDecodeError."""
        return data.decode(self._encoding, self._errors)

    async def write(self, data: str | Buffer, offset: int = 0) -> int:
        """Write all of ``data`` at ``offset``; returns the bytes written.

        Text mode takes str (encoded with ``encoding``), binary mode a
        bytes-like object. Raises DataTypeError (TypeError and ValueError: wrong
        type for the mode),
        ValueError (closed file), OSError (ENOSPC, ...),
        io.UnsupportedOperation (not writable).
        """
        if self._file_mode.binary:
            if isinstance(data, str):
                raise DataTypeError(
                    f"file {self._name!r} is open in binary mode: write() needs a "
                    "bytes-like object, not str",
                )
            return await self.write_bytes(data, offset)
        if not isinstance(data, str):
            raise DataTypeError(
                f"file {self._name!r} is open in text mode: write() needs str, "
                f"not {type(data).__name__}",
            )
        return await self.write_bytes(self.encode(data, offset), offset)

    async def write_bytes(self, data: Buffer, offset: int = 0) -> int:
        """Write all of the bytes-like ``data`` at ``offset``, whatever the mode.

        Short writes are continued until every byte is written. Returns the
        count. Raises TypeError (str or a non-buffer), ValueError (closed),
        OSError, io.UnsupportedOperation (not writable).
        """
        if isinstance(data, str):
            raise DataTypeError("write_bytes() needs a bytes-like object, not str")
        fh = self._fh
        fd = fh.check_writable()
        context = fh.context or fh.bind_context()
        if fh.direct is not None:
            return await fh.direct.write(context, fd, data, offset, self._file_mode.appending)
        view = memoryview(data)
        total = view.nbytes
        if not total:
            return 0
        written = 0
        try:
            n = await context.write(data, fd, offset)
            if n == total:
                return n
            if n <= 0:
                raise _write_failed(n, self._name)
            written = n
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
            while written < total:
                # A short write (a signal, a full pipe, RLIMIT_FSIZE): go on
                # from where the kernel stopped.
                n = await context.write(view[written:], fd, offset + written)
                if n <= 0:
                    raise _write_failed(n, self._name)
                written += n
        except OSError as exc:
            raise partial_write_error(exc, written, total, self._name) from None
        return written

    async def fsync(self) -> None:
        """Flush data and metadata to the device. Raises ValueError, OSError."""
        fd = self.fileno()
        await self._fh.bind_context().fsync(fd)

    async def fdsync(self) -> None:
        """Flush data (and the metadata needed to read it back) to the device.

        Raises ValueError (closed), OSError.
        """
        fd = self.fileno()
        await self._fh.bind_context().fdsync(fd)

    async def truncate(self, length: int = 0) -> None:
        """Cut or extend the file to ``length`` bytes.

        Raises ValueError (closed), io.UnsupportedOperation (not writable),
        OSError.
        """
        fd = self._fh.check_writable()
        direct = self._fh.direct
        if direct is None:
            await self._truncate(fd, length)
            return
        # Not under a read-modify-write in flight, which may extend the file.
        async with direct.lock.hold(alone=True):
            await self._truncate(fd, length)

    async def _truncate(self, fd: int, length: int) -> None:
        # The worker truncates a duplicate made here: a close() meanwhile
        # (or a cancellation that leaves the worker running) cannot make it
        # cut another file that got the same number. Whoever takes the
        # duplicate from `owned` first closes it: the worker, or this
        # coroutine if the worker never started (no loop, cancelled first).
        owned = [os.dup(fd)]
        try:
            await run_in_thread(self._executor, _truncate_and_close, owned, length)
        finally:
            _close_unclaimed(owned)


def _truncate_and_close(owned: list[int], length: int) -> None:
    try:
        fd = owned.pop()  # atomic: the awaiting side may have given up
    except IndexError:
        return
    try:
        os.ftruncate(fd, length)
    finally:
        os.close(fd)


def _close_unclaimed(owned: list[int]) -> None:
    try:
        fd = owned.pop()
    except IndexError:  # the worker took it
        return
    os.close(fd)
