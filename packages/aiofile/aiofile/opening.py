"""The two ways to get a file wrapper: ``async_open`` and ``clone``.

``async_open`` opens a path (or wraps an open file object) and returns the
wrapper of ``aiofile.wrappers`` for its mode; ``clone`` gives a second
wrapper on the same open file with its own position.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from concurrent.futures import Executor
from typing import IO, TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from .aio import AIOFile, FileName, Opener
from .wrappers import BinaryFileWrapper, TextFileWrapper

if TYPE_CHECKING:
    from caio import AsyncioContextBase

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
    file_specifier: FileName | int | IO[Any],
    mode: _BinaryMode,
    encoding: str | None = ...,
    context: AsyncioContextBase | None = ...,
    executor: Executor | None = ...,
    *,
    errors: None = ...,
    newline: Literal["\n"] | None = ...,
    closefd: bool = ...,
    opener: Opener | None = ...,
    direct: bool = ...,
) -> BinaryFileWrapper: ...


@overload
def async_open(
    file_specifier: FileName | int | IO[Any],
    mode: _TextMode = ...,
    encoding: str | None = ...,
    context: AsyncioContextBase | None = ...,
    executor: Executor | None = ...,
    *,
    errors: str | None = ...,
    newline: str | None = ...,
    closefd: bool = ...,
    opener: Opener | None = ...,
    direct: bool = ...,
) -> TextFileWrapper: ...


@overload
def async_open(
    file_specifier: FileName | int | IO[Any],
    mode: str = ...,
    encoding: str | None = ...,
    context: AsyncioContextBase | None = ...,
    executor: Executor | None = ...,
    *,
    errors: str | None = ...,
    newline: str | None = ...,
    closefd: bool = ...,
    opener: Opener | None = ...,
    direct: bool = ...,
) -> BinaryFileWrapper | TextFileWrapper: ...


def async_open(
    file_specifier: FileName | int | IO[Any],
    mode: str = "r",
    encoding: str | None = None,
    context: AsyncioContextBase | None = None,
    executor: Executor | None = None,
    *,
    errors: str | None = None,
    newline: str | None = "\n",
    closefd: bool = True,
    opener: Opener | None = None,
    direct: bool = False,
) -> BinaryFileWrapper | TextFileWrapper:
    """Open a path or a descriptor (or wrap an open file object) like the built-in ``open``.

    Returns a BinaryFileWrapper or a TextFileWrapper by ``mode``; use it
    with ``await`` or ``async with`` to open it. ``encoding`` (default
    UTF-8), ``context`` and ``executor`` go to AIOFile, and so do
    ``errors``, ``closefd`` and ``opener``, which mean what they mean to
    ``open``. ``newline`` too, except that its default is ``"\\n"``, not
    ``None``: only "\\n" ends a line and nothing is translated, as in
    aiofile before it had the argument; ``newline=None`` gives universal
    newlines. A file object keeps its own mode and encoding unless they
    are given, is not owned (closing the wrapper leaves it open) and is
    read from offset 0. Raises ValueError (bad mode or ``newline``,
    ``errors`` or ``newline`` in binary mode, ``closefd=False`` with a
    path, ``opener`` with a file object), TypeError, LookupError (unknown
    encoding or error handler). ``direct=True``: ``O_DIRECT``, see AIOFile.
    """
    if isinstance(file_specifier, (str, bytes, os.PathLike, int)):
        afp = AIOFile(
            file_specifier, mode, "utf-8" if encoding is None else encoding, context, executor,
            direct, errors=errors, closefd=closefd, opener=opener,
        )
    else:
        if opener is not None:
            raise ValueError("opener= opens a path; this file object is open already")
        options: dict[str, Any] = {
            "context": context, "executor": executor, "errors": errors, "direct": direct,
        }
        if mode != "r":
            options["mode"] = mode
        if encoding is not None:
            options["encoding"] = encoding
        afp = AIOFile.from_fp(file_specifier, **options)
    if afp.mode.binary:
        if newline not in (None, "\n"):
            raise ValueError("binary mode doesn't take a newline argument")
        return BinaryFileWrapper(afp)
    return TextFileWrapper(afp, newline=newline)


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
        twin: W = wrapper._like(wrapper.file.clone())
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
