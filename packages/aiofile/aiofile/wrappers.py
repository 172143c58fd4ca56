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
from collections.abc import AsyncIterator, Generator, Iterable
from io import StringIO
from typing import TYPE_CHECKING, Any

try:  # caio's rules for a buffer the kernel writes into: its readinto's errors
    from caio._python_args import writable_view
except ImportError:  # a caio without it: memoryview's own checks
    def writable_view(buffer: object, what: str = "buffer") -> memoryview:
        view = memoryview(buffer)  # type: ignore[arg-type]
        if view.readonly:  # refused before read-ahead data is copied into it
            raise TypeError(f"{what} must be writable")
        return view.cast("B")  # TypeError when not C-contiguous

from .aio import DataTypeError
from .lines import _split_lf_str, make_splitter, split_universal, to_lf
from .readahead import (
    CHUNK_SIZE,
    LINE_CHUNK_SIZE,
    ReadAhead,
    T,
    readline_slow,
    readline_universal,
    translated_cut,
)

# caio's C chunk iterator (binary iter_chunked); a caio without it leaves
# the async generator below.
try:
    from caio._awaitables import ChunkIterator as _ChunkIterator
except ImportError:  # pragma: no cover - the C module is built everywhere we test
    _ChunkIterator = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:

    from typing_extensions import Buffer, Self

    from .aio import AIOFile, FileHandle

__all__ = ("BinaryFileWrapper", "FileIOWrapper", "FileIOWrapperBase", "TextFileWrapper")


class FileIOWrapperBase(ReadAhead[T]):
    """What ``async_open`` returns: a file object for asyncio.

    It keeps a position like the built-in file objects (``seek``,
    ``tell``; bytes in both modes). Usable as ``await async_open(...)`` and
    ``async with async_open(...)``; ``async for line in f`` iterates lines.
    """

    _empty: T
    _sep: T

    def __init__(
        self, afp: AIOFile, *, offset: int = 0, chunk_size: int = LINE_CHUNK_SIZE,
    ) -> None:
        # chunk_size: of the reads behind readline() and line iteration.
        self._init_pending(afp, offset, chunk_size, None)
        self._readable = afp.mode.readable
        self._writable = afp.mode.writable
        self._appending = afp.mode.appending
        if afp.mode.appending and self._fh.fd >= 0:
            self._pos = os.fstat(self._fh.fd).st_size

    def _like(self, afp: AIOFile) -> Self:
        """A wrapper of this class and settings on ``afp`` (for ``clone``)."""
        return type(self)(afp, chunk_size=self._chunk_size)

    @property
    def file(self) -> AIOFile:
        """The underlying AIOFile."""
        return self._file

    @property
    def closed(self) -> bool:
        """True when the file is not open."""
        return self._file.closed

    @property
    def name(self) -> str | bytes | int:
        """The file name (the descriptor if one was opened)."""
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
        """The next line ending with ``newline``, empty at EOF.

        By default a line ends where the file's ``newline`` setting says
        (binary: at a line feed). At most ``size`` bytes (binary) or
        characters (text) if ``size`` >= 0. Another ``newline`` under
        universal newlines is looked for in the text as read (and the line
        translated after). Raises ValueError (closed, empty ``newline``),
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
        if self._cr is not None:
            if newline is None or newline == self._sep:
                return await readline_universal(self, size)  # type: ignore[arg-type, return-value]
            # Another separator: found in the text as read.
            line = await readline_slow(self, size, newline)
            return to_lf(line) if self._translate else line  # type: ignore[arg-type, return-value]
        return await readline_slow(self, size, self._sep if newline is None else newline)

    async def readlines(self, hint: int | None = -1) -> list[T]:
        """The lines to end of file, as ``readline`` gives them.

        With ``hint`` > 0, lines stop once their total size (bytes or
        characters) exceeds ``hint``, as with the built-in files. Raises
        ValueError (closed), io.UnsupportedOperation, UnicodeDecodeError
        (text), OSError.
        """
        hint = -1 if hint is None else operator.index(hint)
        self._fh.check_readable()
        result: list[T] = []
        if hint <= 0:
            while True:
                lines = self._lines
                if lines is not None:
                    result.extend(lines)
                    if self._lines is lines:
                        self._lines = None
                if not await self._fill():
                    return result
        total = 0
        while line := await self.readline():
            result.append(line)
            if len(line) > hint - total:
                break
            total += len(line)
        return result

    def _lines_joined(self, lines: Iterable[Any]) -> T | None:
        """What ``writelines(lines)`` writes: None for no lines at all.

        Raises ValueError if closed, TypeError for an item of the wrong type.
        """
        fh = self._fh
        if fh.fd < 0:
            raise fh.closed_error()
        items = list(lines)
        # One write for all: the same bytes in the file as a write per line.
        return self._empty.join(items) if items else None

    async def truncate(self, size: int | None = None) -> int:
        """Cut or extend the file to ``size`` bytes (default: the position).

        The position does not move. Returns ``size``. Raises ValueError
        (closed), io.UnsupportedOperation (not writable), TypeError, OSError.
        """
        fh = self._fh
        fh.check_writable()
        # Read-ahead beyond the new end would be stale: drop it.
        position = self._write_position()
        size = position if size is None else operator.index(size)
        await self._file.truncate(size)
        return size

    def readable(self) -> bool:
        """Whether the mode reads. Raises ValueError if closed."""
        self._file.fileno()
        return self._readable

    def writable(self) -> bool:
        """Whether the mode writes. Raises ValueError if closed."""
        self._file.fileno()
        return self._writable

    def seekable(self) -> bool:
        """Whether the descriptor has a position (False for pipes, sockets).

        Raises ValueError if closed.
        """
        try:
            os.lseek(self._file.fileno(), 0, os.SEEK_CUR)
        except OSError:
            return False
        return True

    def isatty(self) -> bool:
        """Whether the descriptor is a terminal. Raises ValueError if closed."""
        return os.isatty(self._file.fileno())

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

    def iter_chunked(self, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[T]:
        """An async iterator over the rest of the file in chunks of up to
        ``chunk_size`` bytes.

        Text mode yields decoded str. The position follows the iteration.
        Whole chunks are the bytes objects caio returns, not copies. Raises
        ValueError (closed file, chunk_size <= 0) and io.UnsupportedOperation
        (not readable) at once, OSError from the reads; the file closed
        between chunks raises ValueError at the next one. The iteration ends
        once it raised, as an async generator does; ``aclose()`` ends it.
        """
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, not {chunk_size}")
        fh = self._fh
        fd = fh.check_readable()
        read = (fh.context or fh.bind_context()).read
        if self._decoder is None and _ChunkIterator is not None:
            try:
                return _ChunkIterator(read, fd, chunk_size, self, fh, self._take_pending)
            except TypeError:  # a read that is not caio's C OperationMethod
                pass
        return self._iter_chunks(fh, fd, read, chunk_size)

    async def _iter_chunks(
        self, fh: FileHandle, fd: int, read: Any, chunk_size: int,
    ) -> AsyncIterator[T]:
        """iter_chunked as an async generator: text mode, and any context."""
        pending = self._take_pending()
        if pending and not self._translate:
            yield pending
        decoder = self._decoder
        if decoder is None:
            # Binary, without caio's ChunkIterator: as little as possible
            # per chunk.
            while True:
                chunk = await read(chunk_size, fd, self._pos)
                if not chunk:
                    return
                self._pos += len(chunk)
                yield chunk
                if fh.fd != fd:  # closed while the consumer had the chunk
                    raise fh.closed_error()
        if self._translate:
            async for text in self._chunks_to_lf(pending, read, fd, chunk_size):
                yield text  # type: ignore[misc]
            return
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

    async def _chunks_to_lf(
        self, text: Any, read: Any, fd: int, chunk_size: int,
    ) -> AsyncIterator[str]:
        """iter_chunked's text with ``newline=None``, starting with ``text`` (pending)."""
        fh = self._fh
        decoder = self._decoder
        assert decoder is not None
        cr = False  # the last text ended with "\r": a "\n" first in the next is its
        while True:
            if cr and text[:1] == "\n":
                text = text[1:]
            if text:
                cr = text[-1] == "\r"
                yield to_lf(text)
            if fh.fd != fd:
                raise fh.closed_error()
            if not (data := await read(chunk_size, fd, self._pos)):
                text = decoder.decode(b"", True)
                if cr and text[:1] == "\n":
                    text = text[1:]
                if text:
                    yield to_lf(text)
                return
            self._pos += len(data)
            text = decoder.decode(data)


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
        view = writable_view(buffer)  # as the context's readinto checks it
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

    async def peek(self, size: int = 0) -> bytes:
        """The next bytes without consuming them; b"" only at end of file.

        As ``io.BufferedReader.peek``: at least one byte unless at end of
        file, and as many as are read ahead, which may be more or fewer than
        ``size``. A read is made only when nothing is read ahead. Raises
        ValueError (closed), io.UnsupportedOperation (not readable), OSError.
        """
        size = operator.index(size)
        fh = self._fh
        fd = fh.check_readable()
        data = self._take_pending()
        if not data:
            data = await (fh.context or fh.bind_context()).read(
                max(size, io.DEFAULT_BUFFER_SIZE), fd, self._pos,
            )
            self._pos += len(data)
        self._push_back(data)
        return data

    async def writelines(self, lines: Iterable[Buffer]) -> None:
        """Write each bytes-like object of ``lines``, in order, at the position.

        Nothing is added between them. Raises TypeError (an item is not
        bytes-like), ValueError (closed), io.UnsupportedOperation, OSError.
        """
        data = self._lines_joined(lines)
        if data is not None:
            await self.write(data)

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
    correctly in any encoding. ``newline`` is the built-in ``open``'s, but
    its default is ``"\\n"`` (aiofile's behaviour before it had one: only
    "\\n" ends a line, nothing is translated); ``newline=None`` gives
    universal newlines as ``open``'s default does.
    """

    _empty = ""
    _sep = "\n"

    def __init__(
        self,
        afp: AIOFile,
        *,
        offset: int = 0,
        chunk_size: int = LINE_CHUNK_SIZE,
        newline: str | None = "\n",
    ) -> None:
        if newline is not None and not isinstance(newline, str):
            raise TypeError(f"newline must be str or None, not {type(newline).__name__}")
        if newline not in (None, "", "\n", "\r", "\r\n"):
            raise ValueError(f"illegal newline value: {newline!r}")
        super().__init__(afp, offset=offset, chunk_size=chunk_size)
        self._newline = newline
        # Written "\n" becomes: os.linesep (None), newline ("\r", "\r\n"),
        # itself ("", "\n": no replace() at all on the write path).
        write_nl = os.linesep if newline is None else newline
        self._write_nl = write_nl if write_nl not in ("", "\n") else None
        if newline in ("\r", "\r\n"):
            # Only that string ends a line, untranslated.
            self._sep = newline
            self._line_sep = newline
            self._split = make_splitter(newline)
        elif newline != "\n":
            self._cr = "\r"
            self._split = self._split_universal
            self._translate = newline is None

    def _like(self, afp: AIOFile) -> Self:
        return type(self)(afp, chunk_size=self._chunk_size, newline=self._newline)

    def _split_universal(self, tail: str, chunk: str) -> list[str]:
        """The splitter of ``newline=""`` and ``None``.

        Data without a "\\r" (most files) takes the "\\n" splitter, and its
        lines need no translation. With ``newline=None`` other data is
        translated in the same C pass that splits it: the lines come out
        translated, the tail as read (``_split_data`` keeps the data, for
        ``_raw_pending``).
        """
        if "\r" in chunk or "\r" in tail:
            data = tail + chunk
            if not self._translate:
                return split_universal("", data)
            # StringIO(newline=None) translates as it takes the text.
            lines = StringIO(data, newline=None).readlines()
            # The tail as read: after the last line end, with a "\r" last
            # kept (a "\n" may follow in the next chunk).
            end = len(data) - 1 if data[-1] == "\r" else len(data)
            start = max(data.rfind("\n", 0, end), data.rfind("\r", 0, end)) + 1
            if start < len(data):
                lines[-1] = data[start:]
            else:
                lines.append("")
            self._split_data = data
            return lines
        self._split_data = None
        return _split_lf_str(tail, chunk) if chunk else _split_lf_str("", tail)

    def _split_raw(self, data: str) -> list[str]:
        return split_universal("", data)

    @property
    def encoding(self) -> str:
        """The codec name."""
        return self._file.encoding

    @property
    def errors(self) -> str:
        """The codec error handler (``"strict"`` unless given)."""
        return self._file.errors

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
        if self._translate:
            return await self._read_to_lf(length)
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
        length = len(data)
        if self._write_nl is not None:
            data = data.replace("\n", self._write_nl)
        try:
            written = await afp.write_bytes(afp.encode(data, position), position)
        except OSError as exc:
            self._wrote(position + getattr(exc, "written", 0))
            raise
        self._wrote(position + written)
        return length

    async def writelines(self, lines: Iterable[str]) -> None:
        """Write each str of ``lines``, in order, at the position.

        Nothing is added between them; "\\n" is translated as ``write``
        does. Raises TypeError (an item is not str), ValueError (closed),
        UnicodeEncodeError, io.UnsupportedOperation, OSError.
        """
        data = self._lines_joined(lines)
        if data is not None:
            await self.write(data)

    async def _read_to_lf(self, length: int) -> str:
        """read(length) with ``newline=None``: "\\r\\n" and "\\r" come out as "\\n".

        ``length`` counts translated characters; what is read beyond them
        stays pending as read.
        """
        fh = self._fh
        decoder = self._decoder
        assert decoder is not None
        text = self._take_pending()
        if length < 0:
            data = await self._file.read_bytes(-1, self._pos)
            self._pos += len(data)
            return to_lf(text + decoder.decode(data, True))
        read = (fh.context or fh.bind_context()).read
        eof = False
        try:
            while True:
                # A "\r" last may be the first half of a "\r\n": not counted yet.
                known = text if eof or text[-1:] != "\r" else text[:-1]
                missing = length - len(known) + known.count("\r\n")
                if missing <= 0 or eof:
                    break
                fd = fh.check_readable()
                data = await read(max(missing, min(self._chunk_size, 4096)), fd, self._pos)
                if data:
                    self._pos += len(data)
                    text += decoder.decode(data)
                else:
                    eof = True
                    text += decoder.decode(b"", True)
        except BaseException:
            self._push_back(text)
            raise
        end = translated_cut(text, length) if missing < 0 or not eof else len(text)
        self._push_back(text[end:])
        return to_lf(text[:end])


FileIOWrapper = BinaryFileWrapper | TextFileWrapper
