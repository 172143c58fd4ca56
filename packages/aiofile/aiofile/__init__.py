"""aiofile: files for asyncio, on top of caio.

``async_open`` gives file objects that feel like the built-in ones;
``AIOFile`` reads and writes at explicit offsets, with ``Reader``,
``Writer`` and ``LineReader`` for sequential access.
"""

# `import aiofile` made `aiofile.utils` an attribute before its contents
# moved out; it still does.
from . import utils as utils
from .aio import AIOFile
from .copying import copy, copyfile
from .modes import FileMode, parse_mode
from .opening import FileIOCloner, async_open, clone
from .streams import LineReader, Reader, Writer
from .version import __version__, package_info, version_info
from .wrappers import BinaryFileWrapper, FileIOWrapperBase, TextFileWrapper

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
    "copy",
    "copyfile",
    "package_info",
    "parse_mode",
    "version_info",
)
