"""Read-ahead: data read from the disk and not yet handed out, cut into lines.

``ReadAhead`` is the common base of the file wrappers (``aiofile.wrappers``)
and ``LineReader`` (``aiofile.streams``): the position of the next disk
read, the data read beyond what was consumed, and the line machinery on it.

Speed notes, because they shape the code:

* Lines are cut from large chunks (``LINE_CHUNK_SIZE``) by the splitters of
  ``aiofile.lines`` and kept as an *iterator* over a pre-split list. The
  async iterator behind ``async for`` (caio's C ``LineIterator`` where
  caio has it, see ``ReadAhead._iter_lines``) and the fast path of
  ``readline()`` both take from that same iterator, so their per-line cost
  is one ``next()``, and they can be mixed freely. Whatever is read from
  the disk but not handed out yet is "pending": the iterator, then
  ``_tail`` (an incomplete last line), then (text) the bytes the decoder
  holds back.
* Chunk reads call the caio context directly: each extra ``async def``
  layer on the path costs about as much as a page-cache read of a few KiB.
"""

from __future__ import annotations

import codecs
import operator
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import lines as _lines_module
from .lines import make_splitter

# caio's C line iterator; a caio without it (older, or built without a
# compiler) leaves the pure Python iterators below.
_CLineIterator: Callable[[Any, Callable[[], Any]], AsyncIterator[Any]] | None
try:
    from caio._lines import LineIterator as _CLineIterator
except ImportError:  # pragma: no cover - the C module is built everywhere we test
    _CLineIterator = None

if TYPE_CHECKING:
    from typing_extensions import Self

    from .aio import AIOFile, FileHandle

__all__ = (
    "CHUNK_SIZE", "LINE_CHUNK_SIZE", "ReadAhead", "T", "readline_slow", "readline_universal",
    "translated_cut",
)

#: Chunk size of line iteration and readline(): large enough that the
#: per-chunk costs (a read, a decode, a split) vanish against the per-line
#: ones, small enough that glibc's malloc reuses the freed chunk instead of
#: trimming the heap and page-faulting it back in (at 256 KiB that costs
#: more than the split itself).
LINE_CHUNK_SIZE = 64 * 1024
#: Default chunk size of Reader and iter_chunked().
CHUNK_SIZE = 32 * 1024

T = TypeVar("T", str, bytes)


def _straddles(before: Any, chunk: Any, sep: Any) -> bool:
    """Whether a multi-character ``sep`` may begin in ``before``, end in ``chunk``."""
    width = len(sep) - 1
    if not width or not before:
        return False
    return sep in before[-width:] + chunk[:width]


class ReadAhead(Generic[T]):
    """Data read from the disk and not yet consumed; the line machinery.

    ``_pos`` is the offset of the next disk read. Text subclasses set
    ``_decoder``; the logical position is ``_pos`` minus the pending data.
    ``_fh`` is the file's handle (``AIOFile._handle()``), taken once: the
    descriptor and context are read from it on every chunk.
    """

    # _lines and _pos in slots: the C line and chunk iterators read them at
    # their offsets, once per line or chunk, instead of looking them up by
    # name.
    __slots__ = ("_lines", "_pos", "__dict__")

    _file: AIOFile
    _fh: FileHandle
    _pos: int
    _empty: T
    _sep: T
    #: Universal newlines (text, ``newline=""`` or ``None``): "\r" ends a
    #: line too. ``_split`` then splits there (``lines.split_universal``).
    _cr: str | None = None
    #: ``newline=None``: ``_lines`` iterates over translated lines; the
    #: pending data (and so tell()) must count the bytes as read: the last
    #: ``length_hint(_lines)`` lines of ``_raw_source`` are pending.
    _translate = False
    #: (lines, None) when the lines are as read (no "\r" in them), else
    #: (lines, data): the data they were translated from.
    _raw_source: tuple[list[T], T | None]
    #: Set by the universal splitter for the split it just made: the data
    #: when it translated them, else None.
    _split_data: T | None = None

    def _init_pending(self, afp: AIOFile, offset: int, chunk_size: int, sep: T | None) -> None:
        if offset < 0:
            raise ValueError(f"negative offset {offset}")
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, not {chunk_size}")
        self._file = afp
        self._fh = afp._handle()
        self._pos = offset
        self._chunk_size = chunk_size
        self._lines: Iterator[T] | None = None
        self._tail: T = self._empty
        text = not afp.mode.binary
        self._decoder: codecs.IncrementalDecoder | None = (
            codecs.getincrementaldecoder(afp.encoding)(afp.errors) if text else None
        )
        if sep is None:
            sep = self._sep
        self._line_sep: T = sep
        self._split: Callable[[T, T], list[T]] = make_splitter(sep)

    async def _fill(self) -> bool:
        """Make ``_lines`` hold at least one line; False when all is read.

        At end of file an incomplete last line becomes the last line.
        """
        fh = self._fh
        fd = fh.fd
        if fd < 0 or not fh.readable:
            fh.check_readable()  # raises ValueError or io.UnsupportedOperation
        read = (fh.context or fh.bind_context()).read
        decoder = self._decoder
        split = self._split
        # Only "\n" ends a line and nothing is translated: caio cuts the
        # lines as they are taken (memory: the chunk and the current line).
        cut = _lines_module.cut_lf
        if cut is not None and split is not _lines_module._split_lf_c:
            cut = None
        sep = self._line_sep
        cr = self._cr
        size = self._chunk_size
        empty = self._empty
        tail = self._tail
        # A line longer than a chunk is kept in pieces and joined once, so
        # that its cost stays linear in its length.
        parts: list[Any] = []
        try:
            while True:
                chunk: Any = await read(size, fd, self._pos)
                if chunk:
                    self._pos += len(chunk)
                    if decoder is not None:
                        chunk = decoder.decode(chunk)
                        if not chunk:  # only part of a character so far
                            continue
                elif decoder is not None and (rest := decoder.decode(b"", True)):
                    chunk = rest  # strict decoding raises instead; "replace" gets here
                else:
                    if parts:
                        tail = empty.join(parts)
                        parts.clear()
                    self._tail = empty
                    if not tail:
                        return False
                    # A separator that straddled pieces is found here.
                    lines = split(empty, tail)
                    if not lines[-1]:
                        lines.pop()
                    self._lines = self._translated(lines) if self._translate else iter(lines)
                    return True
                if (
                    sep not in chunk and (cr is None or cr not in chunk)
                    and not _straddles(parts[-1] if parts else tail, chunk, sep)
                ):
                    if not parts and tail:
                        parts.append(tail)
                    parts.append(chunk)
                    continue
                if parts:
                    tail = empty.join(parts)
                    parts.clear()
                if cut is not None:
                    # The chunk holds a "\n" (checked above): a line at least.
                    self._lines, self._tail = cut(tail, chunk)
                    return True
                lines = split(tail, chunk)
                tail = lines.pop()
                if lines:
                    self._tail = tail
                    self._lines = self._translated(lines) if self._translate else iter(lines)
                    return True
        except BaseException:
            # Cancelled or failed after reading: what was read stays pending.
            self._tail = empty.join(parts) if parts else tail
            raise

    def _translated(self, lines: list[T]) -> Iterator[T]:
        """The ``newline=None`` iterator over ``lines``, just split (the
        splitter translated them in C), and where to find them as read."""
        data = self._split_data
        self._raw_source = (lines, data)
        if data is not None:
            # Kept as read by the splitter: its tail, a line at end of file.
            last: Any = lines[-1]
            if last[-1:] == "\r":
                lines[-1] = last[:-1] + "\n"
        return iter(lines)

    def _raw_pending(self, lines: Iterator[T]) -> list[T]:
        """The lines ``lines`` has not handed out yet, as read (``newline=None``)."""
        raw, data = self._raw_source
        count = len(raw)
        if data is not None:
            # Split again, untranslated; rare: tell(), read() and the like.
            raw = self._split_raw(data)[:count]
        return raw[count - operator.length_hint(lines):]

    def _split_raw(self, data: T) -> list[T]:
        raise NotImplementedError  # only universal-newline text files translate

    def _iter_lines(self) -> AsyncIterator[T]:
        """The async iterator of ``async for line``, fastest for this Python.

        Both take from the ``_lines`` iterator shared with readline(); they
        differ only in their per-line cost. Measured on 3.11, an async
        generator's step costs about half an ``async def __anext__`` call;
        on 3.12 and 3.13 async generators got 2-3 times slower per item and
        the ``__anext__`` class wins by 10-40 %. caio's C iterator beats
        both: no coroutine and (up to 3.11) no StopIteration per line.
        """
        if _CLineIterator is not None:
            return _CLineIterator(self, self._readline)
        if _ASYNC_GENERATORS_FAST:
            return self._line_generator()
        return _LineIterator(self)

    async def _line_generator(self) -> AsyncIterator[T]:
        while True:
            lines = self._lines
            if lines is None:
                if not await self._fill():
                    return
                continue
            for line in lines:
                yield line
                if self._lines is not lines:
                    # Replaced while the consumer had the line (seek(),
                    # read(), readline() past this chunk): take the new one.
                    break
            else:
                if self._lines is lines:
                    self._lines = None

    async def _readline(self) -> T:
        """The next line (with its separator), "" / b"" at end of file."""
        lines = self._lines
        while True:
            if lines is not None:
                for line in lines:
                    return line
                self._lines = None
            if not await self._fill():
                return self._empty
            lines = self._lines

    def _take_pending(self) -> T:
        """All pending data as one string; the line state is dropped."""
        lines = self._lines
        if lines is not None:
            self._lines = None
            if self._translate:
                # Pending data is kept as read: the lines not handed out yet.
                lines = self._raw_pending(lines)  # type: ignore[assignment]
            rest = self._empty.join(lines)
            if rest:
                self._tail = rest + self._tail
        pending = self._tail
        self._tail = self._empty
        return pending

    def _push_back(self, data: T) -> None:
        """Make ``data`` (read but not consumed) the pending data."""
        if not data:
            self._lines = None
            self._tail = self._empty
            return
        lines = self._split(self._empty, data)
        self._tail = lines.pop()
        if not lines:
            self._lines = None
        else:
            self._lines = self._translated(lines) if self._translate else iter(lines)

    def _pending_bytes(self) -> int:
        """How many bytes of the file the pending data stands for."""
        # Counting consumes the line iterator: split the data again.
        data = self._take_pending()
        self._push_back(data)
        decoder = self._decoder
        if decoder is None:
            return len(data)
        held = len(decoder.getstate()[0])
        if data:
            encoding = self._file.encoding
            text: Any = data
            # Less the BOM that encode() puts first (utf-16, utf-32, utf-8-sig).
            # (With an error handler that does not round-trip, any but
            # "strict" and "surrogateescape", replaced text no longer says
            # how many bytes it came from: tell() is then off by what was
            # replaced in the pending data.)
            held += len(text.encode(encoding, self._file.errors)) - len("".encode(encoding))
        return held

    def _reset(self, offset: int) -> None:
        self._pos = offset
        self._lines = None
        self._tail = self._empty
        if self._decoder is not None:
            self._decoder.reset()


_ASYNC_GENERATORS_FAST = sys.version_info < (3, 12)


class _LineIterator(Generic[T]):
    """``async for`` over the lines of a ReadAhead, one __anext__ per line."""

    __slots__ = ("_reader",)

    def __init__(self, reader: ReadAhead[T]) -> None:
        self._reader: ReadAhead[T] = reader

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        reader = self._reader
        lines = reader._lines
        if lines is not None:
            for line in lines:
                return line
        line = await reader._readline()
        if not line:  # a line is never empty: this is the end of the file
            raise StopAsyncIteration
        return line



async def readline_slow(reader: ReadAhead[T], size: int, sep: T) -> T:
    """readline with a size limit or another separator than the split one."""
    if not sep:
        raise ValueError("empty line separator")
    buf: Any = reader._take_pending()
    fh = reader._fh
    decoder = reader._decoder
    search = 0
    try:
        while True:
            index = buf.find(sep, search)
            if index >= 0:
                end = index + len(sep)
                if size >= 0:
                    end = min(end, size)
                break
            if size >= 0 and len(buf) >= size:
                end = size
                break
            search = max(0, len(buf) - len(sep) + 1)
            fd = fh.check_readable()
            # Reads grow with the line, so a long one costs linear time.
            chunk: Any = await (fh.context or fh.bind_context()).read(
                max(reader._chunk_size, len(buf)), fd, reader._pos,
            )
            if not chunk:
                end = len(buf)
                if decoder is not None and (rest := decoder.decode(b"", True)):
                    buf += rest
                    continue
                break
            reader._pos += len(chunk)
            buf += decoder.decode(chunk) if decoder is not None else chunk
    except BaseException:
        reader._push_back(buf)
        raise
    reader._push_back(buf[end:])
    line: T = buf[:end]
    return line


# Where a line ends with universal newlines.
_LINE_END = re.compile("\r\n?|\n")


async def readline_universal(reader: ReadAhead[str], size: int) -> str:
    """readline with a size limit in a text file with universal newlines.

    ``size`` counts the characters returned, after translation. A "\\r"
    last in what was read needs the next character (or the end of the
    file) before the line can end.
    """
    buf = reader._take_pending()
    fh = reader._fh
    decoder = reader._decoder
    assert decoder is not None
    translate = reader._translate
    eof = False
    search = 0
    try:
        while True:
            m = _LINE_END.search(buf, search)
            if m is not None and (eof or m.end() < len(buf) or m.group() != "\r"):
                end = m.end()
                line = buf[:m.start()] + "\n" if translate else buf[:end]
                if 0 <= size < len(line):
                    # The cut falls before the ending: the same index in buf.
                    end = size
                    line = line[:size]
                break
            search = m.start() if m is not None else len(buf)
            if 0 <= size <= search or eof:
                end = min(size, len(buf)) if size >= 0 else len(buf)
                line = buf[:end]
                break
            fd = fh.check_readable()
            chunk = await (fh.context or fh.bind_context()).read(
                max(reader._chunk_size, len(buf)), fd, reader._pos,
            )
            if not chunk:
                eof = True
                buf += decoder.decode(b"", True)
                continue
            reader._pos += len(chunk)
            buf += decoder.decode(chunk)
    except BaseException:
        reader._push_back(buf)
        raise
    reader._push_back(buf[end:])
    return line


def translated_cut(text: str, length: int) -> int:
    """The index in ``text`` (as read) where ``length`` characters of its
    ``newline=None`` translation end, a "\\r\\n" kept whole."""
    end = length
    while True:
        # Each "\r\n" before the cut is one character more of text.
        wider = length + text.count("\r\n", 0, end)
        if wider == end:
            break
        end = wider
    if text[end - 1:end + 1] == "\r\n":
        end += 1
    return end
