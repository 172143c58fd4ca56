"""aiofile: files for asyncio, on top of caio.

``async_open`` gives file objects that feel like the built-in ones;
``AIOFile`` reads and writes at explicit offsets, with ``Reader``,
``Writer`` and ``LineReader`` for sequential access.
"""

from .aio import AIOFile
from .modes import FileMode, parse_mode
from .utils import (
    BinaryFileWrapper,
    FileIOCloner,
    FileIOWrapperBase,
    LineReader,
    Reader,
    TextFileWrapper,
    Writer,
    async_open,
    clone,
)
from .version import __version__, version_info

__all__ = (
    "AIOFile",
    "BinaryFileWrapper",
    "FileIOCloner",
    "FileIOWrapperBase",
    "FileMode",
    "LineReader",
    "Reader",
    "TextFileWrapper",
    "Writer",
    "__version__",
    "async_open",
    "clone",
    "parse_mode",
    "version_info",
)
