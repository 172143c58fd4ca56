"""The file objects ``async_open`` returns: a base and one class per mode.

``FileIOWrapperBase`` keeps the position (``seek``, ``tell``) and the
read-ahead (``aiofile.readahead``) on top of an ``AIOFile``;
``BinaryFileWrapper`` reads and writes bytes, ``TextFileWrapper`` str.

Speed notes, because they shape the code:

* Chunk reads call the caio context directly: each extra ``async def``
  layer on the path costs about as much as a page-cache read of a few KiB.
* A whole chunk read is returned as the very bytes object caio made.
"""

from __future__ import annotations

import io
import operator
import os
import stat
from collections.abc import AsyncIterator, Generator
from typing import TYPE_CHECKING, Any

from .aio import DataTypeError
from .readahead import CHUNK_SIZE, LINE_CHUNK_SIZE, ReadAhead, T, readline_slow

if TYPE_CHECKING:

    from typing_extensions import Buffer, Self

    from .aio import AIOFile

__all__ = ("BinaryFileWrapper", "FileIOWrapper", "FileIOWrapperBase", "TextFileWrapper")


class FileIOWrapperBase(ReadAhead[T]):
    """What ``async_open`` returns: a file object for asyncio.

    It keeps a position like the built-in file objects (``seek``,
    ``tell``; bytes in both modes). Usable as ``await async_open(...)`` and
    ``async with async_open(...)``; ``async for line in f`` iterates lines.
    """

    _empty: T
    _sep: T

    def __init__(self, afp: AIOFile, *, offset: int = 0) -> None:
        self._init_pending(afp, offset, LINE_CHUNK_SIZE, None)
        self._readable = afp.mode.readable
        self._writable = afp.mode.writable
        self._appending = afp.mode.appending
        if afp.mode.appending and self._fh.fd >= 0:
            self._pos = os.fstat(self._fh.fd).st_size

    @property
    def file(self) -> AIOFile:
        """The underlying AIOFile."""
        return self._file

    @property
    def closed(self) -> bool:
        """True when the file is not open."""
        return self._file.closed

    @property
    def name(self) -> str | bytes:
        """The file name."""
        return self._file.name

    @property
    def mode(self) -> str:
        """The mode as the built-in ``open`` spells it."""
        return str(self._file.mode)

    def fileno(self) -> int:
        """The descriptor. Raises ValueError if the file is closed."""
        return self._file.fileno()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._file!r} pos={self._pos}>"

    async def _open(self) -> Self:
        afp = self._file
        if self._fh.fd < 0:
            await afp.open()
            if afp.mode.appending:
                self._reset(os.fstat(self._fh.fd).st_size)
        return self

    def __await__(self) -> Generator[Any, None, Self]:
        return self._open().__await__()

    async def __aenter__(self) -> Self:
        return await self._open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[T]:
        if not self._readable:
            raise io.UnsupportedOperation(f"file {self._file.name!r} is not open for reading")
        return self._iter_lines()

    async def close(self) -> None:
        """Close the file (fdatasync first if writable). Raises OSError."""
        await self._file.close()

    def tell(self) -> int:
        """The current position in bytes. Raises ValueError if closed."""
        fh = self._fh
        if fh.fd < 0:
            raise fh.closed_error()
        return self._pos - self._pending_bytes()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move to ``offset`` (bytes) from ``whence``; returns the position.

        Raises ValueError for a negative result, an unknown ``whence`` or a
        closed file.
        """
        fh = self._fh
        if fh.fd < 0:
            raise fh.closed_error()
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self.tell() + offset
        elif whence == os.SEEK_END:
            position = os.fstat(self._file.fileno()).st_size + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._reset(position)
        return position

    async def readline(self, size: int = -1, newline: T | None = None) -> T:
        """The next line ending with ``newline`` (default a line feed), empty at EOF.

        At most ``size`` bytes (binary) or characters (text) if ``size`` >=
        0. Raises ValueError (closed, empty ``newline``),
        io.UnsupportedOperation, UnicodeDecodeError (text), OSError.
        """
        if size < 0 and (newline is None or newline == self._sep):
            lines = self._lines
            if lines is not None:
                # One coroutine per line, not two: take the line here.
                for line in lines:
                    return line
            return await self._readline()
        self._fh.check_readable()
        return await readline_slow(self, size, self._sep if newline is None else newline)

    async def flush(self, sync_metadata: bool = False) -> None:
        """Make written data durable: fdatasync, or fsync if ``sync_metadata``.

        Raises ValueError (closed), OSError.
        """
        if sync_metadata:
            await self._file.fsync()
        else:
            await self._file.fdsync()

    def _wrote(self, end: int) -> None:
        """Move the position to ``end``, past what a write landed.

        A write that failed half way (ENOSPC, EFBIG) gives the end of what
        landed (its error's ``written``), so that a retry appends rather
        than overwrites. In an appending mode the kernel writes at the end
        of a regular file whatever the offset: the position becomes that
        real end, other writers' appends included.
        """
        if self._appending:
            fd = self._fh.fd
            if fd >= 0:
                st = os.fstat(fd)
                if stat.S_ISREG(st.st_mode):
                    end = st.st_size
        self._pos = end

    def _write_position(self) -> int:
        # Writing after reading writes where reading got to.
        if self._lines is not None or self._tail or self._decoder is not None:
            position = self.tell()
            self._reset(position)
            return position
        return self._pos

    async def iter_chunked(self, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[T]:
        """Yield the rest of the file in chunks of up to ``chunk_size`` bytes.

        Text mode yields decoded str. The position follows the iteration.
        Whole chunks are the bytes objects caio returns, not copies. Raises
        ValueError (closed file, chunk_size <= 0), io.UnsupportedOperation
        (not readable), OSError.
        """
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, not {chunk_size}")
        fh = self._fh
        fd = fh.check_readable()
        read = (fh.context or fh.bind_context()).read
        pending = self._take_pending()
        if pending:
            yield pending
        decoder = self._decoder
        if decoder is None:
            # The streaming path: as little as possible per chunk.
            while True:
                chunk = await read(chunk_size, fd, self._pos)
                if not chunk:
                    return
                self._pos += len(chunk)
                yield chunk  # type: ignore[misc]
                if fh.fd != fd:  # closed while the consumer had the chunk
                    raise fh.closed_error()
        while True:
            if fh.fd != fd:
                raise fh.closed_error()
            data = await read(chunk_size, fd, self._pos)
            if not data:
                if rest := decoder.decode(b"", True):
                    yield rest  # type: ignore[misc]
                return
            self._pos += len(data)
            if text := decoder.decode(data):
                yield text  # type: ignore[misc]


class BinaryFileWrapper(FileIOWrapperBase[bytes]):
    """``async_open`` in a binary mode: reads and writes bytes."""

    _empty = b""
    _sep = b"\n"

    async def read(self, length: int = -1) -> bytes:
        """Up to ``length`` bytes (fewer only at end of file), all if negative.

        Raises ValueError (closed), io.UnsupportedOperation (not readable),
        OSError.
        """
        fh = self._fh
        if length > 0 and self._lines is None and not self._tail:
            # The fast path: one read, its bytes handed through.
            fd = fh.fd
            if fd < 0 or not self._readable:
                fh.check_readable()
            read = (fh.context or fh.bind_context()).read
            data = await read(length, fd, self._pos)
            n = len(data)
            self._pos += n
            if n == length or not n:
                return data
            return await self._read_more(data, length)
        return await self._read_slow(length)

    async def _read_more(self, data: bytes, length: int) -> bytes:
        # Short, not empty: a pipe, or the end of a regular file (then the
        # next read confirms with b"").
        parts = [data]
        got = len(data)
        fh = self._fh
        try:
            while got < length:
                fd = fh.check_readable()
                more = await (fh.context or fh.bind_context()).read(
                    length - got, fd, self._pos,
                )
                if not more:
                    break
                parts.append(more)
                got += len(more)
                self._pos += len(more)
        except BaseException:
            # Cancelled or failed: what was read is not lost.
            self._push_back(b"".join(parts))
            raise
        return b"".join(parts)

    async def _read_slow(self, length: int) -> bytes:
        # Like BytesIO.read: TypeError for a float (NaN passes no comparison
        # above, and would recurse through read() forever).
        length = operator.index(length)
        self._fh.check_readable()
        if length == 0:
            return b""
        pending = self._take_pending()
        if length < 0:
            rest = await self._file.read_bytes(-1, self._pos)
            self._pos += len(rest)
            return pending + rest if pending else rest
        if len(pending) >= length:
            self._push_back(pending[length:])
            return pending[:length] if len(pending) > length else pending
        data = await self.read(length - len(pending))
        return pending + data

    async def readinto(self, buffer: Buffer) -> int:
        """Fill the writable ``buffer`` from the position; returns the count.

        Data already read ahead (by ``readline`` or line iteration) comes
        first, then the kernel reads straight into the rest of the buffer
        until it is full or the file ends (as ``read(len)`` does; 0 at end
        of file). The position moves past what was read; if a read fails
        or is cancelled midway, what already landed in the buffer is read
        again by the next call. Raises TypeError (read-only buffer),
        BufferError (not contiguous), ValueError (closed),
        io.UnsupportedOperation (not readable), OSError.
        """
        fh = self._fh
        fd = fh.check_readable()
        view = memoryview(buffer)
        if view.readonly:
            raise TypeError(
                f"readinto() needs a writable buffer, not a read-only {type(buffer).__name__}",
            )
        if view.ndim != 1 or view.itemsize != 1:
            if not view.c_contiguous:
                raise BufferError("readinto() needs a C-contiguous buffer")
            view = view.cast("B")
        size = len(view)
        got = 0
        if self._lines is not None or self._tail:
            pending = self._take_pending()
            got = min(len(pending), size)
            view[:got] = pending[:got]
            if got < len(pending):
                self._push_back(pending[got:])
        readinto = (fh.context or fh.bind_context()).readinto
        try:
            while got < size:
                n = await readinto(view[got:] if got else view, fd, self._pos)
                if not n:
                    break
                got += n
                self._pos += n
                fd = fh.check_readable()   # closed by another task meanwhile?
        except BaseException:
            # Not returned to the caller, so not consumed: read it again.
            self._push_back(view[:got].tobytes())
            raise
        return got

    async def write(self, data: Buffer) -> int:
        """Write all of the bytes-like ``data`` at the position; returns its length.

        Raises TypeError (str), ValueError (closed), io.UnsupportedOperation,
        OSError.
        """
        if isinstance(data, str):
            raise DataTypeError(
                f"file {self._file.name!r} is open in binary mode: write() needs a "
                "bytes-like object, not str",
            )
        position = self._write_position()
        try:
            written = await self._file.write_bytes(data, position)
        except OSError as exc:
            self._wrote(position + getattr(exc, "written", 0))
            raise
        self._wrote(position + written)
        return written


class TextFileWrapper(FileIOWrapperBase[str]):
    """``async_open`` in a text mode: reads and writes str.

    Decoding is incremental: a character split between two reads decodes
    correctly in any encoding. Line endings are not translated.
    """

    _empty = ""
    _sep = "\n"

    async def read(self, length: int = -1) -> str:
        """Up to ``length`` characters (fewer only at end of file), all if negative.

        Raises ValueError (closed), io.UnsupportedOperation,
        UnicodeDecodeError, OSError.
        """
        length = operator.index(length)  # TypeError for floats, like StringIO
        fh = self._fh
        fh.check_readable()
        decoder = self._decoder
        assert decoder is not None
        if length == 0:
            return ""
        text = self._take_pending()
        if length < 0:
            data = await self._file.read_bytes(-1, self._pos)
            self._pos += len(data)
            rest = decoder.decode(data, True)
            return text + rest if text else rest
        parts = [text] if text else []
        got = len(text)
        read = (fh.context or fh.bind_context()).read
        try:
            while got < length:
                fd = fh.check_readable()
                # At least one byte per character: the missing count is a
                # fair first request, rounded up to spare syscalls on tiny reads.
                data = await read(max(length - got, 4096), fd, self._pos)
                if not data:
                    rest = decoder.decode(b"", True)
                    if rest:
                        parts.append(rest)
                        got += len(rest)
                    break
                self._pos += len(data)
                chunk = decoder.decode(data)
                parts.append(chunk)
                got += len(chunk)
        except BaseException:
            self._push_back("".join(parts))
            raise
        text = "".join(parts) if len(parts) != 1 else parts[0]
        if len(text) > length:
            self._push_back(text[length:])
            return text[:length]
        return text

    async def write(self, data: str) -> int:
        """Write all of ``data`` at the position; returns its length in characters.

        Raises TypeError (not str), ValueError (closed), UnicodeEncodeError,
        io.UnsupportedOperation, OSError.
        """
        if not isinstance(data, str):
            raise DataTypeError(
                f"file {self._file.name!r} is open in text mode: write() needs str, "
                f"not {type(data).__name__}",
            )
        position = self._write_position()
        afp = self._file
        try:
            written = await afp.write_bytes(afp.encode(data, position), position)
        except OSError as exc:
            self._wrote(position + getattr(exc, "written", 0))
            raise
        self._wrote(position + written)
        return len(data)


FileIOWrapper = BinaryFileWrapper | TextFileWrapper
