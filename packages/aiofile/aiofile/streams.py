"""Sequential access to an ``AIOFile`` from an offset: chunks, appends, lines.

``Reader`` iterates chunks, ``Writer`` appends one write after the other,
``LineReader`` iterates lines with any separator (its line machinery is
``aiofile.readahead``). Each keeps its own offset in the file.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Generic

from .aio import DataTypeError
from .readahead import CHUNK_SIZE, LINE_CHUNK_SIZE, ReadAhead, T

if TYPE_CHECKING:
    from typing_extensions import Buffer, Self

    from .aio import AIOFile

__all__ = ("LineReader", "Reader", "Writer", "unicode_reader")


async def unicode_reader(
    afp: AIOFile, chunk_size: int, offset: int, encoding: str = "utf-8",
) -> tuple[int, str]:
    """Read about ``chunk_size`` bytes at ``offset`` and decode them whole.

    A character cut by the end of the chunk is completed with the bytes
    that follow it, so the text never ends mid-character. Returns (bytes
    consumed, text); a negative ``chunk_size`` reads to the end of the file.
    Raises UnicodeDecodeError (undecodable bytes, or a character cut by
    the end of the file), and what ``afp.read_bytes`` raises.
    """
    data = await afp.read_bytes(chunk_size, offset)
    decoder = codecs.getincrementaldecoder(encoding)()
    text = decoder.decode(data, final=chunk_size < 0)
    consumed = len(data)
    # The decoder holds back the start of a cut character: read its rest
    # a byte at a time (a character is a few bytes at most).
    while decoder.getstate()[0]:
        more = await afp.read_bytes(1, offset + consumed)
        text += decoder.decode(more, final=not more)
        consumed += len(more)
    return consumed, text


class Reader(Generic[T]):
    """Async iterator over the chunks of an AIOFile from ``offset``.

    Chunks are bytes in binary mode, str in text mode (decoded
    incrementally: a character is never split). Each byte is read once.
    """

    CHUNK_SIZE = CHUNK_SIZE

    def __init__(self, aio_file: AIOFile, offset: int = 0, chunk_size: int = CHUNK_SIZE) -> None:
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, not {chunk_size}")
        self.file = aio_file
        self.encoding = aio_file.encoding
        self.offset = offset
        self.chunk_size = chunk_size
        # The file's descriptor and context, read on every chunk.
        self._fh = aio_file._handle()
        self._decoder = (
            None if aio_file.mode.binary
            else codecs.getincrementaldecoder(aio_file.encoding)()
        )

    async def read_chunk(self) -> T:
        """The next chunk; empty at end of file.

        Raises ValueError (closed), OSError, UnicodeDecodeError.
        """
        fh = self._fh
        decoder = self._decoder
        while True:
            fd = fh.check_readable()
            chunk: Any = await (fh.context or fh.bind_context()).read(
                self.chunk_size, fd, self.offset,
            )
            self.offset += len(chunk)
            if decoder is None:
                return chunk  # type: ignore[no-any-return]
            if not chunk:
                return decoder.decode(b"", True)  # type: ignore[return-value]
            text = decoder.decode(chunk)
            if text:
                return text  # type: ignore[return-value]

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        chunk = await self.read_chunk()
        if not chunk:
            raise StopAsyncIteration
        return chunk


class Writer:
    """Appends to an AIOFile sequentially from ``offset``: ``await writer(data)``.

    Each call reserves its byte range before writing, so concurrent calls
    land one after the other in call order.
    """

    def __init__(self, aio_file: AIOFile, offset: int = 0) -> None:
        self.file = aio_file
        self.offset = offset

    async def __call__(self, data: str | Buffer) -> None:
        """Write ``data`` (str in text mode, bytes-like in binary mode).

        Raises TypeError (wrong type for the mode), ValueError (closed),
        OSError.
        """
        afp = self.file
        offset = self.offset
        if afp.mode.binary:
            if isinstance(data, str):
                raise DataTypeError(
                    f"file {afp.name!r} is open in binary mode: Writer needs a "
                    "bytes-like object, not str",
                )
            payload: Buffer = data
            size = memoryview(data).nbytes
        else:
            if not isinstance(data, str):
                raise DataTypeError(
                    f"file {afp.name!r} is open in text mode: Writer needs str, "
                    f"not {type(data).__name__}",
                )
            encoded = afp.encode(data, offset)
            payload = encoded
            size = len(encoded)
        self.offset = offset + size
        await afp.write_bytes(payload, offset)


class LineReader(ReadAhead[T]):
    """Async iterator over the lines of an AIOFile, each with its separator.

    ``line_sep`` may be any non-empty string ("\\n", "\\r\\n", "||", ...);
    lines are str in text mode and bytes in binary mode (a str separator is
    encoded there). Each byte of the file is read once, in chunks of
    ``chunk_size``; the last line may lack the separator.
    """

    CHUNK_SIZE = LINE_CHUNK_SIZE

    def __init__(
        self,
        aio_file: AIOFile,
        offset: int = 0,
        chunk_size: int = CHUNK_SIZE,
        line_sep: str | bytes = "\n",
    ) -> None:
        if aio_file.mode.binary:
            self._empty = b""  # type: ignore[assignment]
            if isinstance(line_sep, str):
                line_sep = line_sep.encode(aio_file.encoding)
        else:
            self._empty = ""  # type: ignore[assignment]
            if isinstance(line_sep, bytes):
                line_sep = line_sep.decode(aio_file.encoding)
        self._init_pending(aio_file, offset, chunk_size, line_sep)  # type: ignore[arg-type]

    @property
    def file(self) -> AIOFile:
        """The AIOFile read."""
        return self._file

    @property
    def offset(self) -> int:
        """Offset of the next line not yet returned, in bytes."""
        return self._pos - self._pending_bytes()

    async def readline(self) -> T:
        """The next line, empty at end of file.

        Raises ValueError (closed), OSError, UnicodeDecodeError.
        """
        lines = self._lines
        if lines is not None:
            for line in lines:
                return line
        return await self._readline()

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iter_lines()

    async def __anext__(self) -> T:
        lines = self._lines
        if lines is not None:
            for line in lines:
                return line
        line = await self._readline()
        if not line:
            raise StopAsyncIteration
        return line
