"""async_open and clone(): how a file wrapper is made.

clone() gives a second wrapper on the same open file with its own position.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from aiofile import (
    AIOFile,
    BinaryFileWrapper,
    FileIOCloner,
    FileIOWrapperBase,
    TextFileWrapper,
    async_open,
    clone,
)

TEXT = "first line\nsecond\r\nthird ünïcödé €\n\nlast without newline"


async def test_await_and_async_with(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "a.txt"
    path.write_text(TEXT, newline="")
    f = await async_open(path, context=context)
    assert isinstance(f, TextFileWrapper) and isinstance(f, FileIOWrapperBase)
    assert not f.closed and isinstance(f.file, AIOFile)
    assert await f.read() == TEXT
    await f.close()
    assert f.closed
    async with async_open(str(path), "rb", context=context) as b:
        assert isinstance(b, BinaryFileWrapper)
        assert await b.read() == TEXT.encode()
        assert b.mode == "rb" and b.name == str(path) and b.fileno() >= 0
    assert b.closed


async def test_async_open_of_a_file_object(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "fo.txt"
    with open(path, "w+") as fp:
        f = async_open(fp, context=context)
        assert isinstance(f, TextFileWrapper)
        await f.write("via wrapper\n")
        await f.close()
        assert not fp.closed  # not owned
        fp.seek(0)
        assert fp.read() == "via wrapper\n"
    with open(path, "rb") as fp:
        async with async_open(fp, "rb", context=context) as g:
            assert await g.read() == b"via wrapper\n"
        assert not fp.closed


async def test_await_clone(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "c"
    path.write_text("0123456789")
    async with async_open(path, context=context) as f:
        assert await f.read(4) == "0123"
        cloner = clone(f)
        assert isinstance(cloner, FileIOCloner)
        g = await cloner
        assert isinstance(g, TextFileWrapper) and g is not f
        assert g.fileno() != f.fileno()
        assert g.tell() == 0  # its own position
        assert await g.read(2) == "01"
        assert await f.read(2) == "45"  # the original's is untouched
        await g.close()
        assert g.closed and not f.closed
        assert await f.read() == "6789"


async def test_async_with_clone_closes_only_the_clone(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "w"
    async with async_open(path, "wb+", context=context) as f:
        async with clone(f) as g:
            await g.write(b"from clone")
        assert g.closed and not f.closed
        await f.write(b"FROM")
        assert await f.read() == b" clone"
    assert path.read_bytes() == b"FROM clone"


async def test_concurrent_clones_read_the_whole_file(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "data"
    data = bytes(range(256)) * 4000
    path.write_bytes(data)

    async def digest(f: Any, name: str) -> str:
        h = hashlib.new(name)
        async with clone(f) as own:
            async for chunk in own.iter_chunked(10_000):
                h.update(chunk)
                await asyncio.sleep(0)  # interleave the clones
        return h.hexdigest()

    async with async_open(path, "rb", context=context) as f:
        names = ["md5", "sha1", "sha256", "md5"]
        got = await asyncio.gather(*(digest(f, n) for n in names))
    assert got == [hashlib.new(n, data).hexdigest() for n in names]


async def test_clone_of_closed_file(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "x"
    path.write_text("")
    f = await async_open(path, context=context)
    await f.close()
    with pytest.raises(ValueError, match="closed"):
        await clone(f)


class HeldOpener:
    """An opener that waits for ``release`` before it opens, once
    ``entered``; ``made``: the descriptors it opened."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "f"
        self.path.write_bytes(b"")
        self.entered, self.release = threading.Event(), threading.Event()
        self.made: list[int] = []

    def opener(self, name: str, flags: int) -> int:
        self.entered.set()
        self.release.wait(30)
        self.made.append(os.open(name, flags))
        return self.made[-1]

    def left_open(self) -> bool:
        """True until the opener made its descriptor and it was closed."""
        return not self.made or names_the_file(self.made[0], self.path)


async def test_cancelled_open_through_an_opener_leaves_no_descriptor(
    tmp_path: Path, context: Any,
) -> None:
    """An open cancelled while its opener runs on a worker: the descriptor
    the opener still makes is closed when it arrives, not leaked."""
    held = HeldOpener(tmp_path)
    task = asyncio.ensure_future(
        AIOFile(held.path, "rb", context=context, opener=held.opener).open(),
    )
    while not held.entered.is_set():
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    held.release.set()
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        await asyncio.sleep(0.005)
        if not held.left_open():
            break
        assert asyncio.get_running_loop().time() < deadline, "the descriptor leaked"


@pytest.mark.parametrize("cancelled", [False, True], ids=["awaited", "cancelled"])
def test_open_through_an_opener_ending_after_its_loop_closed_leaves_no_descriptor(
    tmp_path: Path, cancelled: bool,
) -> None:
    """An opener still running on a worker when its loop is closed (by
    hand, without asyncio.run's wait for the default executor): nobody
    can take the descriptor it makes any more, so it is closed."""
    held = HeldOpener(tmp_path)
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(1)
    try:
        loop.set_default_executor(executor)
        task = loop.create_task(AIOFile(held.path, "rb", opener=held.opener).open())
        while not held.entered.is_set():
            loop.run_until_complete(asyncio.sleep(0.001))
        if cancelled:
            task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    held.release.set()
    executor.shutdown(wait=True)  # the opener has returned
    deadline = time.monotonic() + 10
    while held.left_open():
        assert time.monotonic() < deadline, "the descriptor leaked"
        time.sleep(0.005)


def names_the_file(fd: int, path: Path) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == str(path)
    except FileNotFoundError:  # closed
        return False
