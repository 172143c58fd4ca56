"""Misuse with one clear answer on every backend: an AsyncioContext used
from another event loop than its own, and a descriptor closed while an
operation on it is in flight (``wait_idle``).
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from pathlib import Path
from typing import Any

import pytest


def other_loop_call(work: Any) -> BaseException | None:
    """Run ``await work()`` on a new loop in another thread; what it raised."""
    raised: list[BaseException | None] = [None]

    def run() -> None:
        try:
            asyncio.run(work())
        except BaseException as exc:  # reported to the test
            raised[0] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    return raised[0]


@pytest.mark.parametrize("op", ["cached-read", "pipe-read", "write", "fsync", "fdsync", "submit"])
async def test_context_used_from_another_loop_names_both(
    asyncio_module: Any, backend_module: Any, event_loop: Any, tmp_path: Path, op: str,
) -> None:
    """Every operation from a loop other than the context's raises
    RuntimeError naming both loops, whether the kernel would have finished
    it during the call (a page-cache hit) or not, and the context still
    works on its own loop afterwards."""
    path = tmp_path / "f"
    path.write_bytes(b"cached data")
    fd = os.open(path, os.O_RDWR)
    r, w = os.pipe()
    os.write(w, b"pipe data")
    context = asyncio_module.AsyncioContext(loop=event_loop)
    try:
        assert await context.read(6, fd, 0) == b"cached"  # bound, and the file is cached
        calls = {
            "cached-read": lambda: context.read(6, fd, 0),
            "pipe-read": lambda: context.read(4, r, 0),
            "write": lambda: context.write(b"x", fd, 0),
            "fsync": lambda: context.fsync(fd),
            "fdsync": lambda: context.fdsync(fd),
            "submit": lambda: context.submit(backend_module.Operation.read(6, fd, 0)),
        }
        foreign: list[Any] = []

        async def work() -> None:
            foreign.append(asyncio.get_running_loop())
            await calls[op]()

        error = other_loop_call(work)
        assert isinstance(error, RuntimeError), error
        assert f"at {id(event_loop):#x}>" in str(error)
        assert f"at {id(foreign[0]):#x}>" in str(error)
        assert path.read_bytes() == b"cached data"  # the write never ran
        assert os.read(r, 100) == b"pipe data"  # nor the pipe read
        assert await context.read(6, fd, 0) == b"cached"
    finally:
        context.close()
        for descriptor in (fd, r, w):
            os.close(descriptor)


async def test_wait_idle_waits_for_operations_on_that_descriptor(
    asyncio_module: Any, event_loop: Any,
) -> None:
    """wait_idle(fd) returns once every operation in flight on fd has
    finished (here: a pipe read that waits for data), and at once for a
    descriptor with nothing in flight."""
    r, w = os.pipe()
    r2, w2 = os.pipe()
    context = asyncio_module.AsyncioContext(loop=event_loop)
    try:
        await asyncio.wait_for(context.wait_idle(r), 5)  # nothing in flight
        if "linux_aio" in asyncio_module.__name__:
            # Kernel AIO refuses to wait on an empty pipe (BlockingIOError).
            pytest.skip("linux_aio reads of an empty pipe fail at once")
        reading = asyncio.ensure_future(context.read(5, r, 0))
        other = asyncio.ensure_future(context.read(5, r2, 0))
        await asyncio.sleep(0.05)
        idle = asyncio.ensure_future(context.wait_idle(r))
        await asyncio.sleep(0.05)
        assert not idle.done()  # the read of r is still in flight
        os.write(w, b"hello")
        await asyncio.wait_for(idle, 5)
        assert reading.done() and reading.result() == b"hello"
        assert not other.done()  # another descriptor is not waited for
        os.write(w2, b"world")
        assert await asyncio.wait_for(other, 5) == b"world"
    finally:
        context.close()
        for descriptor in (r, w, r2, w2):
            os.close(descriptor)


@pytest.mark.parametrize("size", [10, 2 * 1024 * 1024])  # the fast path, and beyond it
@pytest.mark.parametrize("op", ["read-write-end", "write-read-end"])
async def test_wrong_end_of_a_pipe_is_ebadf(context: Any, op: str, size: int) -> None:
    """A read on a pipe's write end (a write on its read end) fails at once
    with EBADF, as read(2) does, instead of waiting for data that cannot
    come through that end."""
    r, w = os.pipe()
    try:
        call = (context.read(size, w, 0) if op == "read-write-end"
                else context.write(b"x" * size, r, 0))
        with pytest.raises(OSError) as info:
            await asyncio.wait_for(call, 5)
        assert info.value.errno == errno.EBADF
    finally:
        os.close(r)
        os.close(w)


class UnrulyFuture:
    """A future whose result can never be set: every method raises."""

    def __getattr__(self, name: str) -> Any:
        def unruly(*args: Any) -> Any:
            raise LookupError(f"unruly future: {name}")
        return unruly


# A backend may report the factory's failure as unraisable (it happens
# where no caller can receive it): allowed here, leaking is not.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_close_with_an_unruly_future_factory_still_releases(harness: Any) -> None:
    """close() releases the context's descriptors (and ends its workers)
    even when setting a pending future's outcome raises; the error may
    surface, but nothing is left open."""
    context = harness.Context(1)
    fileno = context.fileno
    context.set_future_factory(UnrulyFuture)
    held = harness.hold(context)
    waiting = context.fdsync_async(harness.fd)  # queued behind the held one
    assert isinstance(waiting, UnrulyFuture)
    try:
        context.close()
    except LookupError:
        pass  # reporting the factory's failure is fine; leaking is not
    held.release()
    assert context.closed
    with pytest.raises(OSError) as info:
        os.fstat(fileno)
    assert info.value.errno == errno.EBADF
