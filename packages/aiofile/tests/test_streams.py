"""Reader, Writer and LineReader."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

import caio
from aiofile import AIOFile, LineReader, Reader, Writer


@pytest.fixture(params=list(caio.variants_asyncio), ids=lambda m: m.__name__)
def asyncio_context(request: pytest.FixtureRequest, event_loop: Any) -> Any:
    ctx = request.param.AsyncioContext(loop=event_loop)
    yield ctx
    ctx.close()


class CountsReads:
    """A real caio context that records every read's (offset, length)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads: list[tuple[int, int]] = []
        self.closed = False

    async def read(self, nbytes: int, fd: int, offset: int) -> bytes:
        data: bytes = await self.inner.read(nbytes, fd, offset)
        self.reads.append((offset, len(data)))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def reference_lines(data: Any, sep: Any) -> list[Any]:
    parts = data.split(sep)
    lines = [part + sep for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


LINES_TEXT = (
    "short\nline\r\nwith \r lone CR\x0bVT\x0cFF\x1cFS\x85NEL\u2028LS\u2029PS\n"
    + "a much longer line " * 50 + "\n\n\n"
    + "||pipes||||and\r\n\r\nCRLF\n"
    + "ünïcödé €😀 漢字\r\n" * 20
    + "no final separator"
)


@pytest.mark.parametrize("sep", ["\n", "\r\n", "||", "\x00", "€"])
@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
@pytest.mark.parametrize("chunk_size", [1, 3, 64, 4096])
async def test_line_reader_lines_match_a_plain_split(
    tmp_path: Path, context: Any, sep: str, binary: bool, chunk_size: int,
) -> None:
    path = tmp_path / "lines"
    path.write_bytes(LINES_TEXT.encode())
    mode = "rb" if binary else "r"
    data: Any = LINES_TEXT.encode() if binary else LINES_TEXT
    want_sep: Any = sep.encode() if binary else sep
    async with AIOFile(path, mode, context=context) as afp:
        reader = LineReader(afp, chunk_size=chunk_size, line_sep=sep)
        got = [line async for line in reader]
        assert got == reference_lines(data, want_sep)
        assert await reader.readline() == data[:0]
        # readline() walks the same lines one at a time.
        reader2 = LineReader(afp, chunk_size=chunk_size, line_sep=want_sep)
        one_by_one = []
        while line := await reader2.readline():
            one_by_one.append(line)
        assert one_by_one == got


async def test_line_reader_reads_each_byte_once(tmp_path: Path, event_loop: Any) -> None:
    path = tmp_path / "once"
    rnd = random.Random(5)
    # Very long lines and very short ones, around the chunk size.
    lines = [b"x" * rnd.choice([0, 1, 2, 100, 4095, 4096, 4097, 20000]) + b"\n" for _ in range(300)]
    path.write_bytes(b"".join(lines) + b"tail")
    size = path.stat().st_size
    inner = caio.AsyncioContext(loop=event_loop)
    ctx = CountsReads(inner)
    try:
        async with AIOFile(path, "rb", context=ctx) as afp:  # type: ignore[arg-type]
            got = [line async for line in LineReader(afp, chunk_size=4096)]
    finally:
        inner.close()
    assert got == [*lines, b"tail"]
    # Consecutive reads, no byte twice; the last read finds the end.
    offsets = [offset for offset, _ in ctx.reads]
    assert offsets == sorted(offsets)
    assert sum(n for _, n in ctx.reads) == size
    assert ctx.reads[-1] == (size, 0)
    assert all(n <= 4096 for _, n in ctx.reads)


async def test_line_reader_offset_and_async_iterator_protocol(
    tmp_path: Path, context: Any,
) -> None:
    path = tmp_path / "off"
    path.write_text("abc\ndef\nghi")
    async with AIOFile(path, context=context) as afp:
        reader = LineReader(afp, offset=4)
        assert reader.file is afp
        assert await reader.__anext__() == "def\n"
        assert reader.offset == 8
        assert await reader.__anext__() == "ghi"
        with pytest.raises(StopAsyncIteration):
            await reader.__anext__()
        with pytest.raises(ValueError):
            LineReader(afp, line_sep="")
        with pytest.raises(ValueError):
            LineReader(afp, chunk_size=0)


@pytest.mark.parametrize("chunk_size", [1, 3, 10, 32 * 1024])
async def test_reader_chunks(tmp_path: Path, context: Any, chunk_size: int) -> None:
    path = tmp_path / "r"
    data = bytes(range(256)) * 40
    path.write_bytes(data)
    async with AIOFile(path, "rb", context=context) as afp:
        reader = Reader(afp, chunk_size=chunk_size)
        chunks = [chunk async for chunk in reader]
        assert b"".join(chunks) == data
        assert all(len(c) == chunk_size for c in chunks[:-1])
        assert await reader.read_chunk() == b""
        assert [c async for c in Reader(afp, offset=10_000, chunk_size=chunk_size)] != []
        assert b"".join([c async for c in Reader(afp, offset=10_000)]) == data[10_000:]


async def test_reader_text_never_splits_a_character(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "rt"
    text = "é😀漢" * 100
    path.write_text(text)
    async with AIOFile(path, context=context) as afp:
        chunks = [chunk async for chunk in Reader(afp, chunk_size=1)]
        assert "".join(chunks) == text
        assert all(chunks)


async def test_writer_appends_sequentially(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "w"
    async with AIOFile(path, "w", context=context) as afp:
        writer = Writer(afp)
        await writer("héllo ")
        await writer("world\n")
        # Concurrent calls still land in call order.
        await asyncio.gather(*(writer(f"{i},") for i in range(50)))
        assert writer.offset == len(path.read_bytes())
    assert path.read_text() == "héllo world\n" + "".join(f"{i}," for i in range(50))
    async with AIOFile(path, "rb+", context=context) as afp:
        writer = Writer(afp, offset=1)
        await writer(b"E")
        await writer(bytearray(b"LL"))
        with pytest.raises(TypeError):
            await writer("text")
    assert path.read_text().startswith("hELLlo")  # é was two bytes
    async with AIOFile(path, "r+", context=context) as afp:
        with pytest.raises(TypeError):
            await Writer(afp)(b"bytes")


@pytest.mark.parametrize("sep", ["\n", "||", "abc"])
async def test_line_longer_than_many_chunks(tmp_path: Path, context: Any, sep: str) -> None:
    path = tmp_path / "long"
    long_line = "x" * 2_000_000 + sep
    # The separator's characters also straddle chunk edges one by one.
    path.write_text("ab" + sep + long_line + "a" + sep + "tail")
    async with AIOFile(path, context=context) as afp:
        got = [line async for line in LineReader(afp, chunk_size=1000, line_sep=sep)]
    assert got == ["ab" + sep, long_line, "a" + sep, "tail"]


class GatedReads:
    """A real caio context: once ``gate`` is set up, ``free_reads`` more
    reads go through and the next ones wait for the gate."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gate: asyncio.Event | None = None
        self.free_reads = 0
        self.closed = False

    async def read(self, nbytes: int, fd: int, offset: int) -> bytes:
        if self.gate is not None:
            if self.free_reads:
                self.free_reads -= 1
            else:
                await self.gate.wait()
        data: bytes = await self.inner.read(nbytes, fd, offset)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("sep", ["\n", "||"])
async def test_cancelled_readline_loses_nothing(
    tmp_path: Path, asyncio_context: Any, sep: str,
) -> None:
    path = tmp_path / "cancel"
    path.write_text(f"first{sep}abc")
    ctx = GatedReads(asyncio_context)
    async with AIOFile(path, "rb", context=ctx) as afp:  # type: ignore[arg-type]
        reader = LineReader(afp, chunk_size=2, line_sep=sep)
        assert await reader.readline() == f"first{sep}".encode()
        # "ab" is read, then the next read waits at the gate.
        ctx.gate = asyncio.Event()
        ctx.free_reads = 1
        task = asyncio.ensure_future(reader.readline())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with open(path, "a") as out:
            out.write(f"def{sep}last")
        ctx.gate.set()
        assert await reader.readline() == f"abcdef{sep}".encode()
        assert await reader.readline() == b"last"
        assert await reader.readline() == b""
