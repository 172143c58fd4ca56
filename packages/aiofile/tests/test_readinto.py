"""readinto: AIOFile.readinto(buffer, offset) and BinaryFileWrapper.readinto(buffer).

The kernel reads straight into the caller's buffer (caio's readinto); the
wrapper keeps the position, uses read-ahead data first and fills the
buffer like ``read(len(buffer))`` would.
"""

from __future__ import annotations

import array
import asyncio
import io
import mmap
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from aiofile import AIOFile, BinaryFileWrapper, async_open

CONTENT = random.Random(9).randbytes(10_000)


@pytest.fixture
def data_path(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(CONTENT)
    return path


async def test_aiofile_readinto(data_path: Path, context: Any) -> None:
    async with AIOFile(data_path, "rb", context=context) as afp:
        buffer = bytearray(100)
        assert await afp.readinto(buffer, 5000) == 100
        assert buffer == CONTENT[5000:5100]
        assert await afp.readinto(buffer) == 100   # offset 0 by default
        assert buffer == CONTENT[:100]
        backing = bytearray(b"\xff" * 300)
        assert await afp.readinto(memoryview(backing)[100:200], 9950) == 50
        assert backing[:100] == b"\xff" * 100 and backing[100:150] == CONTENT[9950:]
        assert backing[150:] == b"\xff" * 150
        numbers = array.array("H", bytes(8))
        assert await afp.readinto(numbers, 2) == 8
        assert numbers.tobytes() == CONTENT[2:10]
        with mmap.mmap(-1, 4096) as mm:
            assert await afp.readinto(mm, 1) == 4096
            assert mm[:] == CONTENT[1:4097]
        assert await afp.readinto(buffer, 10_000) == 0   # end of file
        with pytest.raises(TypeError):
            await afp.readinto(b"read-only", 0)
        with pytest.raises(ValueError):
            await afp.readinto(buffer, -1)
    with pytest.raises(ValueError):
        await afp.readinto(buffer, 0)   # closed


async def test_aiofile_readinto_text_mode_reads_bytes(data_path: Path, context: Any) -> None:
    data_path.write_text("héllo wörld", encoding="utf-8")
    async with AIOFile(data_path, "r", context=context) as afp:
        buffer = bytearray(6)
        assert await afp.readinto(buffer, 0) == 6
        assert buffer == "héllo".encode()


async def test_aiofile_readinto_not_readable(tmp_path: Path, context: Any) -> None:
    async with AIOFile(tmp_path / "w", "wb", context=context) as afp:
        with pytest.raises(io.UnsupportedOperation):
            await afp.readinto(bytearray(4), 0)


async def test_wrapper_readinto_moves_the_position(data_path: Path, context: Any) -> None:
    async with async_open(data_path, "rb", context=context) as f:
        assert isinstance(f, BinaryFileWrapper)
        first, second = bytearray(1000), bytearray(3000)
        assert await f.readinto(first) == 1000
        assert await f.readinto(second) == 3000
        assert first + second == CONTENT[:4000]
        assert f.tell() == 4000
        assert await f.read(10) == CONTENT[4000:4010]
        f.seek(9000)
        big = bytearray(5000)
        assert await f.readinto(big) == 1000   # to the end, not beyond
        assert big[:1000] == CONTENT[9000:] and big[1000:] == bytes(4000)
        assert await f.readinto(big) == 0
        assert f.tell() == 10_000
        assert await f.readinto(bytearray()) == 0


async def test_wrapper_readinto_uses_read_ahead_data_first(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "lines"
    text = b"line one\nline two\n" + bytes(range(256)) * 4
    path.write_bytes(text)
    async with async_open(path, "rb", context=context) as f:
        assert await f.readline() == b"line one\n"
        # readline read ahead: part of it comes from memory, then the disk.
        buffer = bytearray(500)
        assert await f.readinto(buffer) == 500
        assert buffer == text[9:509]
        assert f.tell() == 509
        # Less than what was read ahead: the rest stays pending.
        assert await f.readline() == text[509:text.index(b"\n", 509) + 1]
        small = bytearray(3)
        position = f.tell()
        assert await f.readinto(small) == 3
        assert small == text[position:position + 3]
        assert await f.read() == text[position + 3:]


async def test_wrapper_readinto_errors(data_path: Path, context: Any) -> None:
    async with async_open(data_path, "rb", context=context) as f:
        with pytest.raises(TypeError):
            await f.readinto(b"read-only")
        with pytest.raises(TypeError):
            await f.readinto(memoryview(b"read-only"))
        with pytest.raises(TypeError):
            await f.readinto("text")  # type: ignore[arg-type]
        assert f.tell() == 0   # nothing was consumed
    with pytest.raises(ValueError):
        await f.readinto(bytearray(1))
    async with async_open(data_path.with_name("w"), "wb", context=context) as w:
        with pytest.raises(io.UnsupportedOperation):
            await w.readinto(bytearray(1))


@pytest.mark.parametrize("after_readline", [False, True])
async def test_wrapper_readinto_refuses_as_the_context_does(
    tmp_path: Path, context: Any, after_readline: bool,
) -> None:
    # The file object checks a buffer with caio's rules: the exception (and
    # the message of a TypeError) of the context's readinto, with or
    # without read-ahead data, and nothing consumed.
    path = tmp_path / "lines"
    path.write_bytes(b"first\nsecond\n" * 100)
    bad = [b"read-only", memoryview(b"read-only"), "text", 5,
           memoryview(bytearray(8))[::2]]
    async with async_open(path, "rb", context=context) as f:
        if after_readline:
            assert await f.readline() == b"first\n"
        position = f.tell()
        ctx = f.file._handle().context
        for buffer in bad:
            try:
                await ctx.readinto(buffer, f.file.fileno(), 0)
            except (TypeError, BufferError) as exc:
                expected = type(exc), exc.args
            else:
                raise AssertionError(f"the context accepted {buffer!r}")
            try:
                await f.readinto(buffer)
            except (TypeError, BufferError) as exc:
                # BufferError's text is CPython's own on the C backends.
                assert type(exc) is expected[0], buffer
                assert exc.args == expected[1] or type(exc) is BufferError, buffer
            else:
                raise AssertionError(f"{buffer!r} accepted")
        assert f.tell() == position
        assert await f.read(7) == (b"second\n" if after_readline else b"first\ns")


async def test_wrapper_readinto_fills_from_a_pipe(context: Any, kernel_aio: bool) -> None:
    r, w = os.pipe()
    if kernel_aio:
        os.close(r)
        os.close(w)
        pytest.skip("kernel AIO cannot wait on pipes (tested in caio)")
    with open(r, "rb", buffering=0) as rp:
        f = async_open(rp, context=context)
        os.write(w, b"abc")
        buffer = bytearray(6)
        pending = asyncio.ensure_future(f.readinto(buffer))
        await asyncio.sleep(0.05)
        assert not pending.done()   # 3 of 6 bytes: it waits for the rest
        os.write(w, b"defgh")
        assert await asyncio.wait_for(pending, 10) == 6
        assert buffer == b"abcdef"
        # Cancelled half way: the bytes that arrived are not lost.
        partial = asyncio.ensure_future(f.readinto(bytearray(10)))
        await asyncio.sleep(0.05)
        assert not partial.done()
        partial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await partial
        os.write(w, b"ij")
        os.close(w)
        assert await asyncio.wait_for(f.read(), 10) == b"ghij"


WITHOUT_CAIO_CHECKS = textwrap.dedent("""
    import asyncio, sys

    sys.modules["caio._python_args"] = None  # a caio without it
    from aiofile import async_open

    async def main():
        with open(sys.argv[1], "wb") as f:
            f.write(b"first\\nsecond\\n")
        async with async_open(sys.argv[1], "rb") as f:
            assert await f.readline() == b"first\\n"
            for bad in (b"read-only", "text"):
                try:
                    await f.readinto(bad)
                except TypeError:
                    pass
                else:
                    raise AssertionError(bad)
            buffer = bytearray(4)
            assert await f.readinto(buffer) == 4 and buffer == b"seco"
            rest = bytearray(10)
            assert await f.readinto(memoryview(rest)) == 3 and rest[:3] == b"nd\\n"

    asyncio.run(main())
    print("ok")
""")


def test_wrapper_readinto_with_a_caio_without_its_buffer_checks(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_CAIO_CHECKS, str(tmp_path / "f")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
