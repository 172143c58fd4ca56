"""The default caio context: one per loop, gone when its loop closes."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import caio
from aiofile import AIOFile, async_open
from aiofile.context import DEFAULT_CONTEXT_STORE, default_context


async def _context_of(path: Path) -> Any:
    async with AIOFile(path, "w") as afp:
        await afp.write("x")
        return afp._handle().context


def test_asyncio_run_closes_the_default_context(tmp_path: Path) -> None:
    context = asyncio.run(_context_of(tmp_path / "a"))
    assert context is not None
    assert context.closed
    assert all(ctx is not context for ctx in DEFAULT_CONTEXT_STORE.values())


def test_hand_made_loop_close_releases_it(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    try:
        context = loop.run_until_complete(_context_of(tmp_path / "b"))
        assert not context.closed  # the loop still lives: so does its context
    finally:
        loop.close()
    assert context.closed
    assert id(loop) not in DEFAULT_CONTEXT_STORE


def test_loop_closed_without_its_timers_is_swept(tmp_path: Path) -> None:
    # Should a loop class keep its timers after close(), the next default
    # context made elsewhere releases the closed loop's one.
    loop = asyncio.new_event_loop()
    context = loop.run_until_complete(_context_of(tmp_path / "c"))
    scheduled = list(loop._scheduled)  # type: ignore[attr-defined]
    loop.close()  # the timers are still referenced here
    gc.collect()
    assert id(loop) in DEFAULT_CONTEXT_STORE and not context.closed
    asyncio.run(_context_of(tmp_path / "d"))
    assert context.closed and id(loop) not in DEFAULT_CONTEXT_STORE
    del scheduled


async def test_one_context_per_loop(tmp_path: Path) -> None:
    first = default_context()
    assert default_context() is first
    async with async_open(tmp_path / "e", "w") as f:
        assert f.file._handle().context is first

    other: list[Any] = []

    def in_thread() -> None:
        other.append(asyncio.run(_context_of(tmp_path / "f")))

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert other[0] is not first
    assert other[0].closed and not first.closed


async def test_a_closed_default_context_is_replaced(tmp_path: Path) -> None:
    first = default_context()
    first.close()
    second = default_context()
    assert second is not first and not second.closed
    async with AIOFile(tmp_path / "g", "w") as afp:
        assert afp._handle().context is second


async def test_context_argument_overrides(tmp_path: Path, event_loop: Any) -> None:
    for module in caio.variants_asyncio:
        ctx = module.AsyncioContext(loop=event_loop)
        try:
            async with AIOFile(tmp_path / "h", "w+", context=ctx) as afp:
                assert afp._handle().context is ctx
                await afp.write("over")
                assert await afp.read() == "over"
            async with async_open(tmp_path / "h", context=ctx) as f:
                assert f.file._handle().context is ctx
                assert await f.read() == "over"
        finally:
            ctx.close()
        assert not default_context().closed  # untouched by the explicit one


def test_file_closed_after_its_loop_shut_the_context(tmp_path: Path) -> None:
    # A file still open when the loop ends is closed by its finalizer-free
    # path: close() syncs directly when the context is already gone.
    async def open_it() -> AIOFile:
        afp = await AIOFile(tmp_path / "late", "w")
        await afp.write("late")
        return afp

    afp = asyncio.run(open_it())
    assert afp._handle().context is not None and afp._handle().context.closed

    async def close_it() -> None:
        await afp.close()

    asyncio.run(close_it())
    assert afp.closed
    assert (tmp_path / "late").read_text() == "late"


@pytest.mark.skipif(
    "ASAN_OPTIONS" in os.environ,
    reason="a child forked from a threaded process can hang in ASan's allocator",
)
def test_a_forked_child_gets_its_own_context(tmp_path: Path) -> None:
    path = tmp_path / "fork"
    path.write_text("from the file")
    loop = asyncio.new_event_loop()

    async def read(executor: Any = None) -> tuple[Any, str]:
        async with AIOFile(path, executor=executor) as afp:
            return afp._handle().context, await afp.read()

    try:
        parent_context, text = loop.run_until_complete(read())
        assert text == "from the file"
        with warnings.catch_warnings():
            # 3.12+ warns that other threads (the test loop's executor)
            # exist; the child only uses its own, and has an alarm anyway.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: same loop object, the parent's context
            code = 1
            try:
                signal.alarm(30)  # never hang the suite
                # The loop's default executor lost its threads in the fork.
                with ThreadPoolExecutor(1) as executor:
                    child_context, text = loop.run_until_complete(read(executor))
                if child_context is not parent_context and text == "from the file":
                    code = 0
            finally:
                os._exit(code)
        assert wait_child(pid, 60) == 0
        assert not parent_context.closed  # the parent's is left alone
    finally:
        loop.close()


def wait_child(pid: int, timeout: float) -> int:
    """The child's exit code; killed and failed after ``timeout`` seconds
    (a child that hangs before its alarm is set must not hang the suite)."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail(f"the forked child did not finish in {timeout} s")
        time.sleep(0.01)
