"""What mypy infers for async_open, per mode: checked by ``nox -s lint``
(``mypy packages/aiofile/tests/typing``), never run.

Every ``assert_type`` fails the check when the type differs; every
``type: ignore`` fails it (strict: unused ignores are errors) when a call
the stdlib's ``open`` stubs refuse becomes accepted.
"""

from __future__ import annotations

import os

from typing_extensions import assert_type

from aiofile import BinaryFileWrapper, TextFileWrapper, async_open, clone


async def modes(mode: str, fd: int) -> None:
    assert_type(async_open("x", "rb"), BinaryFileWrapper)
    assert_type(async_open("x", "wb+"), BinaryFileWrapper)
    assert_type(async_open("x", "xb", newline=None), BinaryFileWrapper)
    assert_type(async_open(fd, "ab", closefd=False), BinaryFileWrapper)
    assert_type(async_open("x"), TextFileWrapper)
    assert_type(async_open("x", "w", errors="replace", newline=None), TextFileWrapper)
    assert_type(async_open(b"x", "r+", encoding="latin-1", opener=os.open), TextFileWrapper)
    assert_type(async_open(fd, "at", closefd=True, newline="\r\n"), TextFileWrapper)
    assert_type(async_open("x", mode), BinaryFileWrapper | TextFileWrapper)


async def methods() -> None:
    f = await async_open("x", "rb+")
    assert_type(await f.read(), bytes)
    assert_type(await f.peek(), bytes)
    assert_type(await f.readlines(), list[bytes])
    assert_type(await f.writelines([b"a", bytearray(b"b")]), None)
    assert_type(await f.truncate(), int)
    assert_type(f.seekable() and f.readable() and f.writable() and f.isatty(), bool)
    assert_type(await clone(f), BinaryFileWrapper)
    t = await async_open("x", "r+", newline="")
    assert_type(await t.readline(), str)
    assert_type(await t.readlines(10), list[str])
    assert_type(await t.writelines(["a", "b"]), None)
    assert_type(t.errors, str)
    assert_type(await clone(t), TextFileWrapper)


def refused() -> None:
    # As with the stdlib's open stubs, a binary mode with text arguments
    # falls to the last overload (async_open raises ValueError for it).
    assert_type(async_open("x", "rb", newline="\r"), BinaryFileWrapper | TextFileWrapper)
    assert_type(async_open("x", "rb", errors="strict"), BinaryFileWrapper | TextFileWrapper)
    async_open("x", buffering=1)  # type: ignore[call-overload]
    async_open("x", "r", closefd="no")  # type: ignore[call-overload]
    async_open("x", "r", newline=b"\n")  # type: ignore[call-overload]
