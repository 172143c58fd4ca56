"""The two ways to get a file wrapper: ``async_open`` and ``clone``.

``async_open`` opens a path (or wraps an open file object) and returns the
wrapper of ``aiofile.wrappers`` for its mode; ``clone`` gives a second
wrapper on the same open file with its own position.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import IO, Any, Generic, Literal, TypeVar, overload

from .aio import AIOFile, FileName
from .wrappers import BinaryFileWrapper, TextFileWrapper

__all__ = ("FileIOCloner", "async_open", "clone")

_BinaryMode = Literal[
    "rb", "wb", "ab", "xb", "rb+", "wb+", "ab+", "xb+", "r+b", "w+b", "a+b", "x+b",
    "br", "bw", "ba", "bx", "br+", "bw+", "ba+", "bx+",
]
_TextMode = Literal[
    "r", "w", "a", "x", "r+", "w+", "a+", "x+",
    "rt", "wt", "at", "xt", "rt+", "wt+", "at+", "xt+", "r+t", "w+t", "a+t", "x+t",
]


@overload
def async_open(
    file_specifier: FileName | IO[Any], mode: _BinaryMode, *args: Any, **kwargs: Any,
) -> BinaryFileWrapper: ...


@overload
def async_open(
    file_specifier: FileName | IO[Any], mode: _TextMode = ..., *args: Any, **kwargs: Any,
) -> TextFileWrapper: ...


@overload
def async_open(
    file_specifier: FileName | IO[Any], mode: str = ..., *args: Any, **kwargs: Any,
) -> BinaryFileWrapper | TextFileWrapper: ...


def async_open(
    file_specifier: FileName | IO[Any], mode: str = "r", *args: Any, **kwargs: Any,
) -> BinaryFileWrapper | TextFileWrapper:
    """Open a path (or wrap an open file object) like the built-in ``open``.

    Returns a BinaryFileWrapper or a TextFileWrapper by ``mode``; use it with
    ``await`` or ``async with`` to open it. Other arguments go to AIOFile
    (``encoding``, ``context``, ``executor``). A file object keeps its own
    mode unless one is given, is not owned (closing the wrapper leaves it
    open) and is read from offset 0. Raises ValueError (bad mode), TypeError.
    """
    if isinstance(file_specifier, (str, bytes, os.PathLike)):
        afp = AIOFile(file_specifier, mode, *args, **kwargs)
    else:
        if mode != "r":
            kwargs["mode"] = mode
        afp = AIOFile.from_fp(file_specifier, *args, **kwargs)
    if afp.mode.binary:
        return BinaryFileWrapper(afp)
    return TextFileWrapper(afp)


W = TypeVar("W", BinaryFileWrapper, TextFileWrapper)


class FileIOCloner(Generic[W]):
    """What ``clone(wrapper)`` returns: ``await`` it or ``async with`` it.

    The clone is a wrapper of the same class on a duplicate descriptor of
    the same open file, with its own position starting at 0; closing it
    leaves the original open.
    """

    def __init__(self, wrapper: W) -> None:
        self._wrapper: W = wrapper
        self._clone: W | None = None

    def _make(self) -> W:
        # Synchronous: os.dup() does not block. Raises ValueError when the
        # original is closed.
        wrapper = self._wrapper
        twin: W = type(wrapper)(wrapper.file.clone())
        self._clone = twin
        return twin

    async def _get(self) -> W:
        return self._make()

    def __await__(self) -> Generator[Any, None, W]:
        return self._get().__await__()

    async def __aenter__(self) -> W:
        return self._make()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._clone is not None:
            await self._clone.close()


def clone(wrapper: W) -> FileIOCloner[W]:
    """A second wrapper on ``wrapper``'s open file with its own position.

    ``g = await clone(f)`` (close ``g`` yourself) or ``async with clone(f)
    as g``. Raises ValueError (on use) if ``f`` is closed.
    """
    return FileIOCloner(wrapper)
