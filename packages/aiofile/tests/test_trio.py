"""aiofile under Trio and under AnyIO on both its backends.

Each test runs a whole program with ``trio.run`` or ``anyio.run``, so the
library under test is exactly the one in the test id; the backend
parameter picks the caio context the files use (``default``: the run's or
loop's default context).
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import caio
from aiofile import AIOFile, LineReader, Reader, Writer, async_open, clone
from aiofile._running import run_in_thread, trio_runs
from aiofile.context import create_context, default_context, get_default_context

trio = pytest.importorskip("trio")
anyio = pytest.importorskip("anyio")

from caio.trio_base import TrioContextBase, trio_context_class  # noqa: E402

LIBRARIES = ["trio", "anyio-trio", "anyio-asyncio"]
BACKEND_NAMES = {
    module.__name__: name for name, module in (
        ("uring", caio.linux_uring), ("linux", caio.linux_aio),
        ("thread", caio.thread_aio), ("python", caio.python_aio),
    ) if module is not None
}
TIMEOUT = 10.0


def run(library: str, main: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    if library == "trio":
        return trio.run(main, *args)
    return anyio.run(main, *args, backend=library.removeprefix("anyio-"))


@pytest.fixture(params=LIBRARIES)
def library(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=["default", *BACKEND_NAMES.values()])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


def context_for(library: str, backend: str) -> Any:
    """None (the default context) or a context of ``backend``, made in the run."""
    if backend == "default":
        return None
    if library == "anyio-asyncio":
        module = {v: k for k, v in BACKEND_NAMES.items()}[backend]
        return getattr(caio, module.rsplit(".", 1)[1] + "_asyncio").AsyncioContext()
    return trio_context_class(backend)()


def test_async_open_round_trips(library: str, backend: str, tmp_path: Path) -> None:
    text = "première ligne\nzweite Zeile\n第三行\n" * 500 + "no newline at the end"
    blob = os.urandom(300_000)

    async def main() -> tuple[str, list[str], bytes, list[bytes], str]:
        ctx = context_for(library, backend)
        async with async_open(tmp_path / "t.txt", "w", context=ctx) as f:
            await f.write(text)
        async with async_open(tmp_path / "t.txt", "r", context=ctx) as f:
            whole = await f.read()
            f.seek(0)
            lines = [line async for line in f]
        async with async_open(tmp_path / "b.bin", "wb", context=ctx) as f:
            await f.write(blob)
            await f.flush(sync_metadata=True)
        async with async_open(tmp_path / "b.bin", "rb", context=ctx) as f:
            chunks = [chunk async for chunk in f.iter_chunked(65536)]
            f.seek(1000)
            async with clone(f) as g:
                g.seek(0)
                head = await g.read(5)
            assert f.tell() == 1000 and head == blob[:5]
        async with async_open(tmp_path / "t.txt", "r", context=ctx) as f:
            first = await f.readline()
        if ctx is not None:
            ctx.close()
        return whole, lines, b"".join(chunks), chunks, first

    whole, lines, data, chunks, first = run(library, main)
    assert whole == text
    assert lines == text.splitlines(keepends=True)
    assert data == blob and all(len(c) <= 65536 for c in chunks)
    assert first == "première ligne\n"


def test_aiofile_streams(library: str, tmp_path: Path) -> None:
    path = tmp_path / "s"

    async def main() -> tuple[list[bytes], list[bytes], bytes]:
        async with AIOFile(path, "w+b") as afp:
            write = Writer(afp)
            for i in range(1000):
                await write(b"line %d\n" % i)
            await afp.fsync()
            await afp.fdsync()
            lines = [line async for line in LineReader(afp, chunk_size=333)]
            chunks = [chunk async for chunk in Reader(afp, chunk_size=4096)]
            await afp.truncate(7)
            cut = await afp.read()
        return lines, chunks, cut

    lines, chunks, cut = run(library, main)
    expected = [b"line %d\n" % i for i in range(1000)]
    assert lines == expected
    assert b"".join(chunks) == b"".join(expected)
    assert cut == b"line 0\n" and path.stat().st_size == 7


def test_default_context_per_trio_run(tmp_path: Path) -> None:
    seen: list[Any] = []

    async def main() -> None:
        first = default_context()
        assert isinstance(first, TrioContextBase)
        assert first.token is trio.lowlevel.current_trio_token()
        assert default_context() is first and get_default_context() is first
        async with async_open(tmp_path / "x", "w") as f:
            await f.write("x")
            assert f.file._handle().context is first
        seen.append(first)

    trio.run(main)
    trio.run(main)
    assert seen[0] is not seen[1]
    assert seen[0].closed and seen[1].closed  # each run closed its own


def test_default_context_under_anyio_follows_the_backend() -> None:
    async def main() -> tuple[Any, bool]:
        return default_context(), trio_runs()

    on_trio, trio_there = anyio.run(main, backend="trio")
    assert isinstance(on_trio, TrioContextBase) and trio_there and on_trio.closed
    on_asyncio, trio_there = anyio.run(main, backend="asyncio")
    assert not isinstance(on_asyncio, TrioContextBase) and not trio_there
    assert on_asyncio.closed  # released with its loop, as with asyncio.run
    assert not trio_runs()  # outside any run
    with pytest.raises(RuntimeError):
        default_context()


def test_create_context_under_trio_becomes_the_default(tmp_path: Path) -> None:
    async def main() -> None:
        old = default_context()
        made = create_context(16)
        assert isinstance(made, TrioContextBase) and made.max_requests == 16
        assert default_context() is made and not old.closed
        async with AIOFile(tmp_path / "c", "w") as afp:
            assert afp._handle().context is made

    trio.run(main)


def test_many_trio_tasks_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "many"
    blocks = [bytes([i]) * 8192 for i in range(100)]

    async def main() -> list[bytes]:
        results = [b""] * len(blocks)
        async with AIOFile(path, "w+b") as afp:
            async def one(i: int) -> None:
                assert await afp.write(blocks[i], i * 8192) == 8192
                await trio.sleep(0)
                results[i] = await afp.read(8192, i * 8192)

            async with trio.open_nursery() as nursery:
                for i in range(len(blocks)):
                    nursery.start_soon(one, i)
        return results

    assert trio.run(main) == blocks
    assert path.read_bytes() == b"".join(blocks)


def test_cancelled_read_of_a_fifo_then_close(library: str, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # Held open for writing, so that opening for reading does not block and
    # a read waits for data instead of seeing end of file.
    writer = os.open(fifo, os.O_RDWR)

    async def main() -> tuple[bool, bytes]:
        async with AIOFile(fifo, "rb") as afp:
            if "linux_aio" in type(afp._handle().context.context).__module__:
                pytest.skip("kernel AIO does not wait on pipes")
            scope = (
                trio.move_on_after(0.05) if library == "trio"
                else anyio.move_on_after(0.05)
            )
            with scope:
                await afp.read(10)
            os.write(writer, b"after")
            data = await afp.read(10)
        return scope.cancelled_caught, data  # close() did not wait on a ghost

    try:
        cancelled, data = run(library, main)
    finally:
        os.close(writer)
    assert cancelled and data == b"after"


def test_open_errors_under_trio(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(FileNotFoundError):
            await AIOFile(tmp_path / "missing", "r").open()
        with pytest.raises(IsADirectoryError):
            await AIOFile(tmp_path, "r").open()
        afp = AIOFile(tmp_path / "ro", "w")
        await afp.open()
        await afp.close()
        with pytest.raises(ValueError):
            await afp.write("closed")

    trio.run(main)


def test_run_in_thread_with_an_executor(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="mine") as pool:
        import threading

        async def main() -> str:
            return await run_in_thread(pool, lambda: threading.current_thread().name)

        assert trio.run(main).startswith("mine")
        assert asyncio.run(main()).startswith("mine")

        async def trunc() -> int:
            async with AIOFile(tmp_path / "e", "w", executor=pool) as afp:
                await afp.write("0123456789")
                await afp.truncate(4)
            return (tmp_path / "e").stat().st_size

        assert trio.run(trunc) == 4


def test_truncate_cancelled_before_its_thread_leaks_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_bytes(b"0123456789")
    before = len(os.listdir("/proc/self/fd"))

    async def main() -> None:
        async with AIOFile(path, "r+") as afp:
            with trio.CancelScope() as scope:
                scope.cancel()
                await afp.truncate(2)  # cancelled before the thread starts
            assert scope.cancelled_caught

    trio.run(main)
    assert len(os.listdir("/proc/self/fd")) == before
    assert path.read_bytes() == b"0123456789"


def test_closed_context_reports_ecanceled_to_a_pending_read(tmp_path: Path) -> None:
    r, w = os.pipe()
    got: list[BaseException] = []

    async def main() -> None:
        ctx = trio_context_class("thread" if caio.thread_aio else None)()
        afp = AIOFile.from_fp(os.fdopen(r, "rb", buffering=0, closefd=False), context=ctx)

        async def reader() -> None:
            try:
                await afp.read(5)
            except OSError as exc:
                got.append(exc)

        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await trio.sleep(0.02)
                ctx.close()

    try:
        trio.run(main)
    finally:
        os.close(r)
        os.close(w)
    assert [exc.errno for exc in got] == [errno.ECANCELED]  # type: ignore[attr-defined]


@pytest.mark.parametrize("with_executor", [False, True])
def test_cancelled_open_leaves_no_descriptor(
    tmp_path: Path, with_executor: bool,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "never"
    with ThreadPoolExecutor(1) as pool:
        before = len(os.listdir("/proc/self/fd"))

        async def main() -> bool:
            afp = AIOFile(path, "w", executor=pool if with_executor else None)
            with trio.CancelScope() as scope:
                scope.cancel()
                await afp.open()
            if afp.closed:
                assert scope.cancelled_caught
                return False
            # An open that finishes during the call (no checkpoint, as a
            # page-cache read) is the file's, and closes with it.
            await afp.close()
            return True

        opened = trio.run(main)
        pool.submit(lambda: None).result()  # whatever was queued has run
        # A worker of caio's own (linux_aio's filesystem executor) may still
        # be finishing the open it gives back, and a kernel-AIO context is
        # destroyed on a helper thread: the count must come back, soon.
        deadline = time.monotonic() + 10
        while len(os.listdir("/proc/self/fd")) != before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(os.listdir("/proc/self/fd")) == before
    # "w" creates it. A cancelled open may still have created it (the
    # request reached the kernel's OPENAT, or the worker had started, before
    # the cancellation): what must not outlive it is the descriptor.
    if opened:
        assert path.exists()
