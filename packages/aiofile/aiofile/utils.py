"""Where the file wrappers and streams lived before they got modules of their own.

Every name importable from here before still is, and is the very object of
its new home: ``aiofile.wrappers`` (the file objects), ``aiofile.opening``
(``async_open``, ``clone``), ``aiofile.streams`` (``Reader``, ``Writer``,
``LineReader``), ``aiofile.readahead`` (the read-ahead and line machinery
they share) and ``aiofile.lines`` (the chunk splitters). New code imports
from ``aiofile`` itself.
"""

from __future__ import annotations

from .aio import AIOFile as AIOFile
from .aio import FileName as FileName
from .lines import make_splitter as make_splitter
from .opening import FileIOCloner, async_open, clone
from .opening import W as W
from .opening import _BinaryMode as _BinaryMode
from .opening import _TextMode as _TextMode
from .readahead import _ASYNC_GENERATORS_FAST as _ASYNC_GENERATORS_FAST
from .readahead import CHUNK_SIZE as CHUNK_SIZE
from .readahead import LINE_CHUNK_SIZE as LINE_CHUNK_SIZE
from .readahead import ReadAhead, readline_slow
from .readahead import T as T
from .readahead import _LineIterator as _LineIterator
from .readahead import _straddles as _straddles
from .streams import LineReader, Reader, Writer, unicode_reader
from .wrappers import BinaryFileWrapper, FileIOWrapperBase, TextFileWrapper
from .wrappers import FileIOWrapper as FileIOWrapper

# The names these two had here.
_Pending = ReadAhead
_readline_slow = readline_slow

__all__ = (
    "BinaryFileWrapper",
    "FileIOCloner",
    "FileIOWrapperBase",
    "LineReader",
    "Reader",
    "TextFileWrapper",
    "Writer",
    "async_open",
    "clone",
    "unicode_reader",
)
