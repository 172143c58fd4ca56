"""BinaryFileWrapper and TextFileWrapper (as async_open gives them)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

import caio
from aiofile import (
    BinaryFileWrapper,
    async_open,
)
from aiofile.readahead import LINE_CHUNK_SIZE

TEXT = "first line\nsecond\r\nthird ünïcödé €\n\nlast without newline"


@pytest.mark.parametrize("mode", ["r", "rb"])
async def test_async_for_lines(tmp_path: Path, context: Any, mode: str) -> None:
    path = tmp_path / "lines"
    path.write_text(TEXT, newline="")
    with open(path, mode, **({} if "b" in mode else {"newline": ""})) as fp:
        # Only "\n" ends a line here: the built-in splits "\r\n" the same way.
        expected = list(fp)
    async with async_open(path, mode, context=context) as f:
        got = [line async for line in f]
        assert got == expected
        assert f.tell() == path.stat().st_size
        assert [line async for line in f] == []


@pytest.mark.parametrize("mode", ["r", "rb"])
async def test_async_for_holds_one_chunk_and_the_line(tmp_path: Path, mode: str) -> None:
    """Issue 14's memory bound: iterating lines keeps the chunk read (its
    bytes and, in text mode, its text while it is decoded) and the current
    line, however many lines a chunk holds; nothing accumulates per line."""
    from aiofile import readahead
    from aiofile.lines import cut_lf

    if readahead._CLineIterator is None or cut_lf is None:
        pytest.skip("caio._lines is not built: lines come from a list per chunk")
    path = tmp_path / "lines"
    path.write_text("".join(f"{i:07d} é\n" for i in range(100_000)), encoding="utf-8")
    count = 0
    async with async_open(path, mode) as f:
        iterator = aiter(f)
        await anext(iterator)   # the first chunk read, the machinery warm
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            async for _ in iterator:
                count += 1
            after, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert count == 100_000 - 1
    # Binary: the chunk. Text: the chunk's bytes, the decoder's working
    # copy and the text (non-ASCII UTF-8 decodes through a buffer of its
    # own). A list of a chunk's 6 000 lines, as before, peaked at 380 KiB
    # (binary) and 600 KiB (text) here.
    chunks = 1 if "b" in mode else 4
    assert peak - before <= chunks * LINE_CHUNK_SIZE + 8192
    assert after - before <= 4096


@pytest.mark.parametrize("mode", ["r", "rb"])
async def test_readline(tmp_path: Path, context: Any, mode: str) -> None:
    path = tmp_path / "rl"
    path.write_text(TEXT, newline="")
    conv: Any = (lambda s: s.encode()) if "b" in mode else (lambda s: s)
    async with async_open(path, mode, context=context) as f:
        assert await f.readline() == conv("first line\n")
        assert await f.readline(3) == conv("sec")
        assert await f.readline(newline=conv("\r\n")) == conv("ond\r\n")
        assert await f.readline() == conv("third ünïcödé €\n")
        assert await f.readline() == conv("\n")
        assert await f.readline(newline=conv("thout")) == conv("last without")
        assert await f.readline() == conv(" newline")
        assert await f.readline() == conv("")
        assert await f.readline(5) == conv("")


async def test_readline_size_counts_characters_in_text(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "chars"
    path.write_text("ääää\nb\n")
    async with async_open(path, context=context) as f:
        assert await f.readline(2) == "ää"
        assert f.tell() == 4
        assert await f.readline() == "ää\n"
        assert await f.readline(1) == "b"


async def test_break_then_tell_read_and_iterate_again(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "mix"
    lines = [f"line {i:05d} {'é' * (i % 7)}\n" for i in range(20000)]
    path.write_text("".join(lines))
    async with async_open(path, context=context) as f:
        async for line in f:
            if line == lines[100]:
                break
        assert f.tell() == len("".join(lines[:101]).encode())
        assert await f.readline() == lines[101]
        assert await f.read(4) == lines[102][:4]
        rest = [line async for line in f]
        assert rest == [lines[102][4:], *lines[103:]]


async def test_mixed_readline_inside_async_for(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "mixed.bin"
    lines = [b"%d\n" % i for i in range(50000)]
    path.write_bytes(b"".join(lines))
    async with async_open(path, "rb", context=context) as f:
        got = []
        async for line in f:
            got.append(line)
            nxt = await f.readline()
            if nxt:
                got.append(nxt + b"!")
        assert got == [ln + (b"!" if i % 2 else b"") for i, ln in enumerate(lines)]


async def test_seek_tell_binary(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "seek"
    path.write_bytes(b"0123456789\nabc\n")
    async with async_open(path, "rb", context=context) as f:
        assert f.tell() == 0
        assert await f.read(3) == b"012"
        assert f.tell() == 3
        assert f.seek(5) == 5
        assert await f.read(2) == b"56"
        assert f.seek(-3, os.SEEK_END) == 12
        assert await f.read() == b"bc\n"
        assert f.seek(-5, os.SEEK_CUR) == 10
        assert await f.readline() == b"\n"
        assert f.tell() == 11
        with pytest.raises(ValueError, match="negative"):
            f.seek(-1)
        with pytest.raises(ValueError, match="whence"):
            f.seek(0, 7)


async def test_tell_in_text_counts_bytes(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "tell.txt"
    path.write_text("aé€😀\nz", encoding="utf-8")
    async with async_open(path, context=context) as f:
        assert await f.read(2) == "aé"
        assert f.tell() == 3
        assert await f.read(2) == "€😀"
        assert f.tell() == 10
        f.seek(3)
        assert await f.read() == "€😀\nz"


async def test_tell_with_bom(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "bom.txt"
    path.write_text("ab\ncd\n", encoding="utf-16")
    async with async_open(path, encoding="utf-16", context=context) as f:
        assert await f.readline() == "ab\n"
        assert f.tell() == 2 + 6
        assert await f.read() == "cd\n"


async def test_write_after_read_writes_at_the_position(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "rw"
    path.write_text("aaaa\nbbbb\ncccc\n")
    async with async_open(path, "r+", context=context) as f:
        assert await f.readline() == "aaaa\n"
        assert await f.write("XY") == 2
        assert f.tell() == 7
        assert await f.read() == "bb\ncccc\n"
    assert path.read_text() == "aaaa\nXYbb\ncccc\n"


async def test_text_write_returns_characters(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "w.txt"
    async with async_open(path, "w", encoding="utf-16", context=context) as f:
        assert await f.write("héllo") == 5
        assert await f.write(" wörld") == 6
        assert f.tell() == 2 + 22
        await f.flush()
        await f.flush(sync_metadata=True)
    assert path.read_text(encoding="utf-16") == "héllo wörld"


async def test_binary_write(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "w.bin"
    async with async_open(path, "wb", context=context) as f:
        assert await f.write(b"abc") == 3
        assert await f.write(memoryview(b"def")) == 3
        assert f.tell() == 6
    assert path.read_bytes() == b"abcdef"


async def test_wrong_types(tmp_path: Path, context: Any) -> None:
    async with async_open(tmp_path / "b", "wb", context=context) as f:
        with pytest.raises(TypeError, match="binary mode"):
            await f.write("str")  # type: ignore[arg-type]
    async with async_open(tmp_path / "t", "w", context=context) as g:
        with pytest.raises(TypeError, match="text mode"):
            await g.write(b"bytes")  # type: ignore[arg-type]


async def test_append_mode_position(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "app"
    path.write_text("123")
    async with async_open(path, "a+", context=context) as f:
        assert f.tell() == 3
        await f.write("45")
        assert f.tell() == 5
        f.seek(0)
        assert await f.read() == "12345"
        await f.write("6")  # appends whatever the position
    assert path.read_text() == "123456"


async def test_closed_wrapper_raises_clearly(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "closed"
    path.write_text("x\n")
    f = async_open(path, "r+", context=context)
    with pytest.raises(ValueError, match="not open"):
        await f.read()
    await f
    await f.close()
    await f.close()
    for call in (f.read(), f.read(1), f.readline(), f.write("y"), f.flush()):
        with pytest.raises(ValueError, match="closed file"):
            await call
    with pytest.raises(ValueError, match="closed file"):
        async for _ in f:
            pass
    with pytest.raises(ValueError, match="closed file"):
        async for _ in f.iter_chunked(2):
            pass
    b = await async_open(path, "rb", context=context)
    await b.close()
    with pytest.raises(ValueError, match="closed file"):
        await b.read(10)


async def test_not_readable_wrapper(tmp_path: Path, context: Any) -> None:
    async with async_open(tmp_path / "wo", "wb", context=context) as f:
        with pytest.raises(io.UnsupportedOperation):
            await f.read(10)
        with pytest.raises(io.UnsupportedOperation):
            async for _ in f:
                pass


@pytest.mark.parametrize("mode", ["r", "rb"])
async def test_iter_chunked(tmp_path: Path, context: Any, mode: str) -> None:
    path = tmp_path / "chunks"
    text = "".join(f"{i}é\n" for i in range(3000))
    path.write_text(text)
    async with async_open(path, mode, context=context) as f:
        first = await f.readline()
        chunks = [c async for c in f.iter_chunked(1000)]
        assert all(len(c) <= 1000 for c in chunks[1:])
        whole = first + type(first)().join(chunks)
        assert whole == (text.encode() if "b" in mode else text)
        assert f.tell() == len(text.encode())
    async with async_open(path, mode, context=context) as f:
        with pytest.raises(ValueError):
            async for _ in f.iter_chunked(0):
                pass


async def test_read_n_in_binary_loops_over_short_reads(context: Any, kernel_aio: bool) -> None:
    r, w = os.pipe()
    if kernel_aio:
        os.close(r)
        os.close(w)
        pytest.skip("kernel AIO cannot wait on pipes (tested in caio)")
    os.write(w, b"abc")
    with open(r, "rb", buffering=0) as rp:
        f = async_open(rp, context=context)
        assert isinstance(f, BinaryFileWrapper)
        os.write(w, b"def")
        os.close(w)
        assert await f.read(5) == b"abcde"
        assert await f.read(5) == b"f"
        assert await f.read(5) == b""


SAMPLES = {
    "utf-8": "aé€😀漢字" * 40,
    "utf-16": "aé€😀漢字" * 40,
    "shift_jis": "日本語のテキストｶﾀｶﾅabc" * 40,
    "gb18030": "中文文本€😀abc" * 40,
}


@pytest.mark.parametrize("encoding", list(SAMPLES))
async def test_read_n_never_splits_or_exceeds(tmp_path: Path, context: Any, encoding: str) -> None:
    path = tmp_path / f"enc-{encoding}"
    text = SAMPLES[encoding]
    path.write_text(text, encoding=encoding)
    for n in (1, 2, 3, 5, 7, 64):
        async with async_open(path, encoding=encoding, context=context) as f:
            parts = []
            while True:
                part = await f.read(n)
                if not part:
                    break
                assert len(part) <= n
                parts.append(part)
            assert "".join(parts) == text


@pytest.mark.parametrize("encoding", list(SAMPLES))
async def test_chunks_and_lines_decode_across_edges(
    tmp_path: Path, context: Any, encoding: str,
) -> None:
    path = tmp_path / f"edge-{encoding}"
    text = "\n".join(SAMPLES[encoding][i:] for i in range(0, 60, 7)) + "\n"
    path.write_text(text, encoding=encoding, newline="")
    for size in (1, 2, 3, 5, 11):
        async with async_open(path, encoding=encoding, context=context) as f:
            assert "".join([c async for c in f.iter_chunked(size)]) == text
    async with async_open(path, encoding=encoding, context=context) as f:
        f._chunk_size = 3  # force every character to straddle some edge
        assert [line async for line in f] == text.splitlines(keepends=True)


async def test_truncated_character_at_end_is_an_error(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "bad"
    path.write_bytes("ok é".encode()[:-1])
    async with async_open(path, context=context) as f:
        with pytest.raises(UnicodeDecodeError):
            await f.read()


@pytest.mark.parametrize("mode", ["r", "rb"])
async def test_closing_during_iteration_stops_it_clearly(
    tmp_path: Path, context: Any, mode: str,
) -> None:
    path = tmp_path / "stop"
    path.write_text("line\n" * 100_000)
    async with async_open(path, mode, context=context) as f:
        with pytest.raises(ValueError, match="closed file"):
            async for _ in f.iter_chunked(1000):
                await f.close()
    async with async_open(path, mode, context=context) as f:
        with pytest.raises(ValueError, match="closed file"):
            async for _ in f:
                await f.close()


async def test_iter_chunked_follows_seek_and_ends_for_good(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "seek"
    data = os.urandom(10_000)
    path.write_bytes(data)
    async with async_open(path, "rb", context=context) as f:
        it = f.iter_chunked(100)
        assert await it.__anext__() == data[:100]
        assert f.tell() == 100
        f.seek(5000)  # between chunks: the next one comes from there
        assert await it.__anext__() == data[5000:5100]
        assert f.tell() == 5100
        assert b"".join([c async for c in it]) == data[5100:]
        assert f.tell() == len(data)
        f.seek(0)  # ended, as a finished async generator: no more reads
        with pytest.raises(StopAsyncIteration):
            await it.__anext__()
        assert f.tell() == 0


@pytest.mark.parametrize("code", ["c", "python"])
async def test_binary_iter_chunked_c_and_fallback_agree(
    tmp_path: Path, context: Any, code: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # caio's ChunkIterator and the async generator a caio without it
    # leaves: data read ahead first, seek() between chunks, tell() after.
    import aiofile.wrappers

    if code == "python":
        monkeypatch.setattr(aiofile.wrappers, "_ChunkIterator", None)
    elif aiofile.wrappers._ChunkIterator is None:
        pytest.skip("caio._awaitables is not built")
    path = tmp_path / "agree"
    data = b"".join(b"%d\n" % i for i in range(50_000))
    path.write_bytes(data)
    async with async_open(path, "rb", context=context) as f:
        first = await f.readline()  # reads a whole chunk ahead
        it = f.iter_chunked(1000)
        assert (type(it).__name__ == "ChunkIterator") == (code == "c")
        assert await it.__anext__() == data[len(first):LINE_CHUNK_SIZE]
        assert await it.__anext__() == data[LINE_CHUNK_SIZE:LINE_CHUNK_SIZE + 1000]
        f.seek(100)
        assert await it.__anext__() == data[100:1100]
        assert b"".join([c async for c in it]) == data[1100:]
        assert f.tell() == len(data)


async def test_iter_chunked_as_the_first_use_of_a_context(tmp_path: Path, context: Any) -> None:
    # A context made where no loop runs is bound to none until its first
    # operation: the first chunk takes the adapter's coroutine (which binds
    # it), the rest the fast way.
    path = tmp_path / "fresh"
    data = os.urandom(3000)
    path.write_bytes(data)
    make = caio.AsyncioContext if context is None else type(context)
    fresh = await asyncio.get_running_loop().run_in_executor(None, make)
    try:
        with open(path, "rb") as fp:
            f = async_open(fp, context=fresh)  # from a file object: nothing to open
            assert [c async for c in f.iter_chunked(1000)] == [
                data[:1000], data[1000:2000], data[2000:],
            ]
    finally:
        fresh.close()


async def test_iter_chunked_waits_for_reads_that_do_not_finish_at_once(
    context: Any, kernel_aio: bool,
) -> None:
    if kernel_aio:
        pytest.skip("kernel AIO cannot wait on pipes (tested in caio)")
    r, w = os.pipe()
    with open(r, "rb", buffering=0) as rp:
        f = async_open(rp, context=context)

        async def feed() -> None:
            for i in range(5):
                await asyncio.sleep(0.01)
                os.write(w, bytes([i]) * 10)
            os.close(w)

        feeder = asyncio.create_task(feed())
        got = [chunk async for chunk in f.iter_chunked(1000)]
        await feeder
        assert b"".join(got) == b"".join(bytes([i]) * 10 for i in range(5))
        assert len(got) >= 2  # the pipe was empty when it asked: it waited


async def test_iter_chunked_cancelled_while_waiting(context: Any, kernel_aio: bool) -> None:
    if kernel_aio:
        pytest.skip("kernel AIO cannot wait on pipes (tested in caio)")
    r, w = os.pipe()
    with open(r, "rb", buffering=0) as rp:
        f = async_open(rp, context=context)
        it = f.iter_chunked(100)
        step = asyncio.ensure_future(it.__anext__())
        await asyncio.sleep(0.05)
        assert not step.done()
        with pytest.raises(RuntimeError, match="already waiting"):
            it.__anext__()
        step.cancel()
        with pytest.raises(asyncio.CancelledError):
            await step
        os.close(w)
        with pytest.raises(StopAsyncIteration):  # it raised: it is over
            await it.__anext__()


async def test_iter_chunked_error_ends_it(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "err"
    path.write_bytes(b"x" * 1000)
    async with async_open(path, "rb", context=context) as f:
        it = f.iter_chunked(100)
        assert await it.__anext__() == b"x" * 100
        directory = os.open(tmp_path, os.O_RDONLY)
        try:
            os.dup2(directory, f.fileno())  # the same number, now a directory
        finally:
            os.close(directory)
        with pytest.raises(IsADirectoryError):
            await it.__anext__()
        with pytest.raises(StopAsyncIteration):
            await it.__anext__()


async def test_iter_chunked_aclose(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "aclose"
    path.write_bytes(b"y" * 1000)
    async with async_open(path, "rb", context=context) as f:
        async with contextlib.aclosing(f.iter_chunked(100)) as it:
            async for chunk in it:
                assert chunk == b"y" * 100
                break
        with pytest.raises(StopAsyncIteration):
            await it.__anext__()
        assert f.tell() == 100


async def test_tell_and_seek_on_closed_file(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "ts"
    path.write_text("x")
    f = await async_open(path, context=context)
    await f.close()
    with pytest.raises(ValueError, match="closed file"):
        f.tell()
    with pytest.raises(ValueError, match="closed file"):
        f.seek(0)


@pytest.mark.parametrize("mode", ["r", "rb"])
async def test_readline_custom_newline_on_a_long_line(
    tmp_path: Path, context: Any, mode: str,
) -> None:
    path = tmp_path / "longsep"
    line = "y" * 3_000_000 + "<>"
    path.write_text(line + "short<>end")
    conv: Any = (lambda s: s.encode()) if "b" in mode else (lambda s: s)
    async with async_open(path, mode, context=context) as f:
        assert await f.readline(newline=conv("<>")) == conv(line)
        assert await f.readline(newline=conv("<>")) == conv("short<>")
        assert await f.readline(newline=conv("<>")) == conv("end")
        assert await f.readline(newline=conv("<>")) == conv("")
