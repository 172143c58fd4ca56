"""AIOFile: opening, reads and writes at offsets, errors, durability."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import caio
from aiofile import AIOFile, BinaryFileWrapper, LineReader, Reader


async def test_open_with_await_method(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "f.txt"
    path.write_text("hello")
    afp = AIOFile(path, context=context)
    assert afp.closed
    fd = await afp.open()
    assert isinstance(fd, int) and fd == afp.fileno()
    assert await afp.open() is None  # already open: nothing happens
    assert not afp.closed
    assert await afp.read() == "hello"
    await afp.close()
    assert afp.closed


async def test_await_constructor_and_async_with(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    afp = await AIOFile(str(path), "rb", context=context)
    assert await afp.read() == b"abc"
    await afp.close()
    async with AIOFile(path, "rb", context=context) as afp2:
        assert await afp2.read(2, 1) == b"bc"
    assert afp2.closed


@pytest.mark.parametrize("kind", ["str", "pathlike", "bytes"])
async def test_name_types(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "name.txt"
    path.write_text("x")
    name: Any = {"str": str(path), "pathlike": path, "bytes": os.fsencode(path)}[kind]
    async with AIOFile(name) as afp:
        assert await afp.read() == "x"
        assert afp.name == os.fspath(name)


async def test_properties_and_repr(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "p.txt"
    async with AIOFile(path, "w+", encoding="UTF8", context=context) as afp:
        assert afp.mode.readable and afp.mode.writable and not afp.mode.binary
        assert str(afp.mode) == "w+"
        assert afp.encoding == "utf-8"
        assert afp.loop is asyncio.get_running_loop()
        assert "p.txt" in repr(afp) and "fd=" in repr(afp)
    assert "closed" in repr(afp)


@pytest.mark.parametrize("mode", ["", "rr", "rw", "q", "r+b+", "bt", "rbt", "U", "r ", "+"])
def test_bad_mode_is_value_error_naming_it(tmp_path: Path, mode: str) -> None:
    with pytest.raises(ValueError, match=repr(mode).replace("+", r"\+")):
        AIOFile(tmp_path / "x", mode)


def test_unknown_encoding(tmp_path: Path) -> None:
    with pytest.raises(LookupError):
        AIOFile(tmp_path / "x", "w", encoding="no-such-codec")


async def test_write_read_at_offsets(tmp_path: Path, context: Any) -> None:
    async with AIOFile(tmp_path / "o.bin", "wb+", context=context) as afp:
        assert await afp.write(b"0123456789") == 10
        assert await afp.write(b"AB", 3) == 2
        assert await afp.read(4, 2) == b"2AB5"
        assert await afp.read(100, 8) == b"89"  # short at end of file
        assert await afp.read(10, 50) == b""
        assert await afp.read_bytes() == b"012AB56789"


async def test_text_mode_reads_str_and_writes_encoded(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "t.txt"
    async with AIOFile(path, "w+", encoding="utf-16", context=context) as afp:
        n = await afp.write("añ")
        # The BOM only once, at offset 0, even for a later write.
        assert await afp.write("€", n) == 2
        assert await afp.read() == "añ€"
        assert await afp.read_bytes(2) == b"\xff\xfe"
    assert path.read_text(encoding="utf-16") == "añ€"


async def test_wrong_type_for_mode(tmp_path: Path, context: Any) -> None:
    async with AIOFile(tmp_path / "b", "wb", context=context) as afp:
        with pytest.raises(TypeError, match="binary mode"):
            await afp.write("text")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            await afp.write_bytes("text")  # type: ignore[arg-type]
    async with AIOFile(tmp_path / "t", "w", context=context) as afp:
        with pytest.raises(TypeError, match="text mode"):
            await afp.write(b"bytes")


async def test_write_bytes_accepts_any_buffer(tmp_path: Path, context: Any) -> None:
    import array

    path = tmp_path / "buf"
    async with AIOFile(path, "wb", context=context) as afp:
        assert await afp.write(bytearray(b"ab")) == 2
        assert await afp.write(memoryview(b"xxcdxx")[2:4], 2) == 2
        assert await afp.write(array.array("H", [0x6665]), 4) == 2
        assert await afp.write(b"") == 0
    assert path.read_bytes() == b"abcdef"


class ShortWrites:
    """A real caio context whose writes stop after a few bytes, as the
    kernel may do (a signal, RLIMIT_FSIZE, a full pipe)."""

    def __init__(self, inner: Any, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.calls = 0
        self.closed = False

    @property
    def loop(self) -> Any:
        return self.inner.loop

    async def write(self, payload: Any, fd: int, offset: int) -> int:
        self.calls += 1
        return int(await self.inner.write(memoryview(payload)[: self.limit], fd, offset))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_write_loops_until_all_is_written(tmp_path: Path, event_loop: Any) -> None:
    path = tmp_path / "short"
    inner = caio.AsyncioContext(loop=event_loop)
    ctx = ShortWrites(inner, limit=7)
    data = bytes(range(256)) * 3
    try:
        async with AIOFile(path, "wb", context=ctx) as afp:  # type: ignore[arg-type]
            assert await afp.write(data, 5) == len(data)
    finally:
        inner.close()
    assert ctx.calls == -(-len(data) // 7)
    assert path.read_bytes() == b"\0" * 5 + data


async def test_append_mode_appends(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"first\n")
    async with AIOFile(path, "a", context=context) as afp:
        await afp.write("second\n")  # offset 0, but O_APPEND wins
        await afp.write("third\n", 2)
    assert path.read_bytes() == b"first\nsecond\nthird\n"


async def test_read_to_end_of_unknown_size(context: Any, kernel_aio: bool) -> None:
    # /proc files say they are empty; reading must go on until nothing comes.
    if kernel_aio:
        pytest.skip("kernel AIO refuses /proc files (clear OSError, tested in caio)")
    expected = Path("/proc/self/mounts").read_bytes()
    async with AIOFile("/proc/self/mounts", "rb", context=context) as afp:
        assert os.fstat(afp.fileno()).st_size == 0
        data = await afp.read()
    assert data.splitlines()[0] == expected.splitlines()[0]


class GrowsAfterFirstRead:
    """A real caio context that appends to the file after its first read."""

    def __init__(self, inner: Any, path: Path, extra: bytes) -> None:
        self.inner, self.path, self.extra = inner, path, extra
        self.reads = 0
        self.closed = False

    async def read(self, nbytes: int, fd: int, offset: int) -> bytes:
        data = await self.inner.read(nbytes, fd, offset)
        self.reads += 1
        if self.reads == 1:
            with open(self.path, "ab") as out:
                out.write(self.extra)
        return bytes(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_read_all_follows_a_growing_file(tmp_path: Path, event_loop: Any) -> None:
    path = tmp_path / "grows"
    path.write_bytes(b"a" * 1000)
    inner = caio.AsyncioContext(loop=event_loop)
    try:
        ctx = GrowsAfterFirstRead(inner, path, b"b" * 300_000)
        async with AIOFile(path, "rb", context=ctx) as afp:  # type: ignore[arg-type]
            data = await afp.read()
    finally:
        inner.close()
    assert data == b"a" * 1000 + b"b" * 300_000


async def test_read_all_from_a_pipe(context: Any, kernel_aio: bool) -> None:
    r, w = os.pipe()
    payload = os.urandom(300_000)

    def writer() -> None:
        with open(w, "wb", buffering=0) as out:
            for start in range(0, len(payload), 70_000):
                out.write(payload[start:start + 70_000])

    thread = threading.Thread(target=writer)
    thread.start()
    with open(r, "rb", buffering=0) as fp:
        afp = AIOFile.from_fp(fp, context=context)
        try:
            data = await afp.read()
        except OSError:
            # Kernel AIO cannot wait for a pipe; it must say so clearly.
            assert kernel_aio
            while os.read(r, 1 << 16):  # let the writer finish
                pass
        else:
            assert data == payload
        await afp.close()
        thread.join()


async def test_closed_and_unopened_files_raise_clearly(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "c"
    afp = AIOFile(path, "w+", context=context)
    with pytest.raises(ValueError, match="not open"):
        await afp.read()
    with pytest.raises(ValueError, match="not open"):
        afp.fileno()
    await afp.open()
    await afp.close()
    await afp.close()  # idempotent
    for call in (
        afp.read(), afp.read_bytes(1), afp.write("x"), afp.write_bytes(b"x"),
        afp.fsync(), afp.fdsync(), afp.truncate(),
    ):
        with pytest.raises(ValueError, match="closed file"):
            await call
    with pytest.raises(ValueError, match="closed file"):
        afp.fileno()
    with pytest.raises(ValueError, match="closed file"):
        afp.clone()


async def test_not_readable_not_writable(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "rw"
    path.write_text("data")
    async with AIOFile(path, "r", context=context) as afp:
        with pytest.raises(io.UnsupportedOperation, match="not open for writing"):
            await afp.write("x")
        with pytest.raises(io.UnsupportedOperation, match="not open for writing"):
            await afp.truncate()
    async with AIOFile(path, "a", context=context) as afp:
        with pytest.raises(io.UnsupportedOperation, match="not open for reading"):
            await afp.read()


async def test_open_errors(tmp_path: Path, context: Any) -> None:
    with pytest.raises(FileNotFoundError):
        await AIOFile(tmp_path / "missing", context=context).open()
    with pytest.raises(IsADirectoryError):
        await AIOFile(tmp_path, context=context).open()
    (tmp_path / "exists").write_text("")
    with pytest.raises(FileExistsError):
        await AIOFile(tmp_path / "exists", "x", context=context).open()
    async with AIOFile(tmp_path / "new", "x", context=context) as afp:
        await afp.write("made")
    assert (tmp_path / "new").read_text() == "made"


async def test_w_truncates_r_plus_does_not(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "trunc"
    path.write_text("0123456789")
    async with AIOFile(path, "r+", context=context) as afp:
        await afp.write("ab", 1)
    assert path.read_text() == "0ab3456789"
    async with AIOFile(path, "w", context=context) as afp:
        pass
    assert path.read_text() == ""


async def test_truncate_fsync_fdsync(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "sync"
    async with AIOFile(path, "wb+", context=context) as afp:
        await afp.write(b"x" * 100)
        await afp.fsync()
        await afp.fdsync()
        await afp.truncate(10)
        assert os.fstat(afp.fileno()).st_size == 10
        await afp.truncate()
        assert await afp.read() == b""


class CountsSyncs:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fdsyncs: list[int] = []
        self.closed = False

    async def fdsync(self, fd: int) -> None:
        self.fdsyncs.append(fd)
        await self.inner.fdsync(fd)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_close_of_writable_file_syncs_data_first(
    tmp_path: Path, event_loop: Any,
) -> None:
    inner = caio.AsyncioContext(loop=event_loop)
    ctx = CountsSyncs(inner)
    try:
        afp = await AIOFile(tmp_path / "d", "w", context=ctx)  # type: ignore[arg-type]
        fd = afp.fileno()
        await afp.write("durable")
        await afp.close()
        assert ctx.fdsyncs == [fd]
        reader = await AIOFile(tmp_path / "d", "r", context=ctx)  # type: ignore[arg-type]
        await reader.close()
        assert ctx.fdsyncs == [fd]  # a read-only file has nothing to sync
    finally:
        inner.close()


async def test_close_of_pipe_needs_no_sync(context: Any) -> None:
    r, w = os.pipe()
    with open(w, "wb") as fp, open(r, "rb") as rp:
        afp = AIOFile.from_fp(fp, context=context)
        await afp.write(b"x")
        await afp.close()  # fdatasync gives EINVAL on a pipe: not an error
        assert rp.read(1) == b"x"


async def test_from_fp_is_not_owned(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "fp"
    with open(path, "w+", encoding="latin-1") as fp:
        fp.write("before ")  # buffered: from_fp flushes it
        afp = AIOFile.from_fp(fp, context=context)
        assert afp.name == str(path)
        assert str(afp.mode) == "w+" and afp.encoding == "iso8859-1"
        await afp.write("é", 7)
        await afp.close()
        assert not fp.closed
        fp.seek(0)
        assert fp.read() == "before é"
        with pytest.raises(ValueError, match="cannot be reopened"):
            await afp.open()
    with pytest.raises(ValueError):
        AIOFile.from_fp(fp)


async def test_from_fp_binary_mode(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "fpb"
    path.write_bytes(b"\x00\x01")
    with open(path, "rb") as fp:
        afp = AIOFile.from_fp(fp, context=context)
        assert afp.mode.binary and not afp.mode.writable
        assert await afp.read() == b"\x00\x01"


async def test_clone_has_its_own_descriptor(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "clone"
    path.write_bytes(b"shared")
    async with AIOFile(path, "rb", context=context) as afp:
        twin = afp.clone()
        assert twin.fileno() != afp.fileno()
        assert await twin.read() == b"shared"
        await twin.close()
        assert twin.closed and not afp.closed
        assert await afp.read() == b"shared"
    twin2_source = await AIOFile(path, "rb", context=context)
    twin2 = twin2_source.clone()
    await twin2_source.close()
    assert await twin2.read(3) == b"sha"  # the original's close leaves it open
    await twin2.close()


async def test_what_is_built_on_a_file_sees_its_close(tmp_path: Path, context: Any) -> None:
    # Reader, LineReader and the wrappers take the file's descriptor from
    # the handle they took when made: a close of the AIOFile (or of a clone)
    # must reach them, not a stale descriptor number.
    path = tmp_path / "shared"
    path.write_bytes(b"line one\nline two\n" * 1000)
    afp = await AIOFile(path, "rb", context=context)
    twin = afp.clone()
    reader, lines = Reader(afp, chunk_size=4), LineReader(afp, chunk_size=4)
    wrapper = BinaryFileWrapper(afp)
    twin_reader = Reader(twin, chunk_size=4)
    assert await reader.read_chunk() == b"line"
    assert await lines.readline() == b"line one\n"
    assert await wrapper.read(4) == b"line"
    await afp.close()
    for call in (reader.read_chunk, lines.readline, lambda: wrapper.read(4)):
        with pytest.raises(ValueError, match="closed file"):
            await call()
    with pytest.raises(ValueError, match="closed file"):
        wrapper.tell()
    assert await twin_reader.read_chunk() == b"line"  # the clone's own descriptor
    await twin.close()
    with pytest.raises(ValueError, match="closed file"):
        await twin_reader.read_chunk()


async def test_concurrent_reads_and_writes(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "many"
    async with AIOFile(path, "wb+", context=context) as afp:
        blocks = [bytes([i]) * 4096 for i in range(64)]
        await asyncio.gather(*(afp.write(b, i * 4096) for i, b in enumerate(blocks)))
        got = await asyncio.gather(*(afp.read(4096, i * 4096) for i in range(64)))
    assert got == blocks


async def test_unclosed_file_releases_its_descriptor(tmp_path: Path, context: Any) -> None:
    import gc
    import warnings

    afp = await AIOFile(tmp_path / "leak", "w", context=context)
    fd = afp.fileno()
    # Let callbacks the loop still holds (and their references) run first,
    # so the last reference really goes inside the block below.
    for _ in range(3):
        await asyncio.sleep(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del afp
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    try:  # closed; should another thread reuse the number, not for "leak"
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        target = ""
    assert not target.endswith("leak")
    with open(tmp_path / "x", "w") as fp:
        afp2 = AIOFile.from_fp(fp, context=context)
        del afp2
        gc.collect()
        assert not fp.closed and os.fstat(fp.fileno())  # not owned: left open
