"""What ``ctx.read(...)`` and its kin return: something that behaves as the
coroutine of an ``async def`` would, whether it is one (without
caio._awaitables) or a caio._awaitables.OperationCall, which finishes a
page-cache hit without a coroutine.

Each test runs once per backend (the ``backend`` fixture of conftest.py).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import sys
from typing import Any

import pytest

BLOCK = 4096

CALLS = {
    "read": lambda ctx, fd: ctx.read(BLOCK, fd, 0),
    "write": lambda ctx, fd: ctx.write(b"w" * BLOCK, fd, 0),
    "readinto": lambda ctx, fd: ctx.readinto(bytearray(BLOCK), fd, 0),
    "readv": lambda ctx, fd: ctx.readv([bytearray(10), bytearray(BLOCK - 10)], fd, 0),
    "writev": lambda ctx, fd: ctx.writev([b"w" * 10, b"w" * (BLOCK - 10)], fd, 0),
}
RESULTS = {"read": b"r" * BLOCK, "write": BLOCK, "readinto": BLOCK, "readv": BLOCK, "writev": BLOCK}


@pytest.fixture(params=list(CALLS))
def operation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_each_way_of_running_an_operation(context: Any, fd: int, operation: str) -> None:
    os.pwrite(fd, b"r" * BLOCK, 0)
    start = CALLS[operation]
    ways = {
        "await": lambda: start(context, fd),
        "task": lambda: asyncio.create_task(start(context, fd)),
        "ensure_future": lambda: asyncio.ensure_future(start(context, fd)),
        "wait_for": lambda: asyncio.wait_for(start(context, fd), 10),
        "gather": lambda: asyncio.gather(start(context, fd)),
    }
    for name, way in ways.items():
        os.pwrite(fd, b"r" * BLOCK, 0)
        got = await way()
        assert (got[0] if name == "gather" else got) == RESULTS[operation], name


async def test_an_operation_never_awaited_does_nothing(context: Any, fd: int) -> None:
    # As calling an async def: the call only keeps the arguments.
    os.pwrite(fd, b"old!", 0)
    call = context.write(b"new!", fd, 0)
    assert asyncio.iscoroutine(call)
    call.close()
    del call
    gc.collect()
    assert os.pread(fd, 4, 0) == b"old!"
    assert await context.write(b"new!", fd, 0) == 4
    assert os.pread(fd, 4, 0) == b"new!"


async def test_an_operation_is_awaited_once(context: Any, fd: int, operation: str) -> None:
    os.pwrite(fd, b"r" * BLOCK, 0)
    call = CALLS[operation](context, fd)
    assert await call == RESULTS[operation]
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        await call


async def test_closed_or_thrown_into_before_it_starts(context: Any, fd: int) -> None:
    os.pwrite(fd, b"data", 0)
    call = context.read(4, fd, 0)
    call.close()
    with pytest.raises(RuntimeError, match="cannot reuse"):
        await call
    call = context.write(b"none", fd, 0)
    with pytest.raises(KeyError, match="thrown"):
        call.throw(KeyError("thrown"))
    with pytest.raises(RuntimeError, match="cannot reuse"):
        await call
    assert os.pread(fd, 4, 0) == b"data"   # neither ran
    call = context.read(4, fd, 0)
    with pytest.raises(TypeError, match="non-None"):
        call.send(1)
    call.close()


async def test_keywords_and_argument_errors(context: Any, fd: int) -> None:
    os.pwrite(fd, b"abcdef", 0)
    assert await context.read(3, fd, 1, priority=0) == b"bcd"
    assert await context.read(nbytes=2, fd=fd, offset=4) == b"ef"
    assert await context.write(payload=b"X", fd=fd, offset=0) == 1
    with pytest.raises(TypeError):
        context.read(1, fd)   # raised by the call, as an async def's is
    with pytest.raises(TypeError):
        context.read(1, fd, 0, 0, 0)
    with pytest.raises(TypeError):
        context.write(b"x", fd, 0, bogus=1)
    with pytest.raises(ValueError):
        await context.read(-1, fd, 0)   # raised by the await
    with pytest.raises(TypeError):
        await context.readinto(b"read-only", fd, 0)


async def test_errors_keep_their_traceback(context: Any, closed_fd: int) -> None:
    with pytest.raises(OSError) as info:
        await context.read(1, closed_fd, 0)
    assert info.value.errno is not None
    assert info.value.__traceback__ is not None


async def test_chunk_iterator_reads_at_its_owners_position(context: Any, fd: int) -> None:
    # aiofile's binary iter_chunked keeps _pos and fd in slots; plain
    # attributes (looked up by name) work the same.
    chunk_iterator = pytest.importorskip("caio._awaitables").ChunkIterator
    blocks = [bytes([i]) * BLOCK for i in range(1, 4)]
    os.pwrite(fd, b"".join(blocks), 0)

    class Handle:
        def closed_error(self) -> ValueError:
            return ValueError("gone")

    owner, handle = Handle(), Handle()
    owner._pos = 0  # type: ignore[attr-defined]
    handle.fd = fd  # type: ignore[attr-defined]
    chunks = chunk_iterator(context.read, fd, BLOCK, owner, handle, lambda: b"ahead")
    assert [c async for c in chunks] == [b"ahead", *blocks]
    assert owner._pos == 3 * BLOCK  # type: ignore[attr-defined]
    owner._pos = BLOCK  # type: ignore[attr-defined]
    chunks = chunk_iterator(context.read, fd, BLOCK, owner, handle, lambda: b"")
    assert await chunks.__anext__() == blocks[1]  # nothing ahead: straight to the read
    handle.fd = -1  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="gone"):
        await chunks.__anext__()
    for bad in (
        (lambda *args: None, fd, BLOCK, owner, handle, None),  # not a context's read
        (context.read, str(fd), BLOCK, owner, handle, None),
        (context.read, fd, float(BLOCK), owner, handle, None),
        (context.read, fd, BLOCK, owner, handle, b"not callable"),
    ):
        with pytest.raises(TypeError):
            chunk_iterator(*bad)


async def test_looks_like_the_coroutine_function(context: Any, operation: str) -> None:
    method = getattr(context, operation)
    function = getattr(type(context), operation)
    assert asyncio.iscoroutinefunction(method) or operation in ("readinto", "readv", "writev")
    assert list(inspect.signature(method).parameters)[:3] == [
        "nbytes" if operation == "read" else ("payload" if operation == "write" else
                                              ("buffer" if operation == "readinto"
                                               else "buffers")),
        "fd", "offset",
    ]
    assert method.__doc__ and method.__doc__ == function.__doc__
    assert method.__name__ == operation


async def test_a_closed_pending_operation_is_no_longer_in_flight(
    context: Any, backend: str
) -> None:
    # close() of a suspended operation (as a coroutine's GeneratorExit):
    # wait_idle must not wait for it any more.
    if backend == "linux":
        pytest.skip("a kernel AIO read of an empty pipe blocks inside io_submit")
    r, w = os.pipe()
    try:
        call = context.read(1, r, 0)
        yielded = call.send(None)   # suspended on the backend's future
        assert yielded is not None
        call.close()
        await asyncio.wait_for(context.wait_idle(r), 10)
        context.context.cancel_future(yielded)   # the read nobody waits for
    finally:
        os.write(w, b"x")
        await asyncio.sleep(0.05)
        os.close(r)
        os.close(w)


def test_from_another_loop_is_refused(asyncio_module: Any, fd: int) -> None:
    # The loop check of the finished path: a context bound to a loop that
    # is not running refuses a call from another one, naming both loops.
    bound, other = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        ctx = asyncio_module.AsyncioContext(loop=bound)
        os.pwrite(fd, b"data", 0)
        assert bound.run_until_complete(ctx.read(4, fd, 0)) == b"data"
        for call in (lambda: ctx.read(4, fd, 0), lambda: ctx.write(b"data", fd, 0)):
            with pytest.raises(RuntimeError, match="bound to event loop"):
                other.run_until_complete(call())
        assert bound.run_until_complete(ctx.write(b"more", fd, 0)) == 4
        ctx.close()
    finally:
        bound.close()
        other.close()


def test_a_foreign_async_generator_hook_changes_nothing(asyncio_module: Any, fd: int) -> None:
    # The loop check's cheap half looks for the running loop's own hook
    # (sys.set_asyncgen_hooks); with another one installed in the loop, the
    # operations still run (the check asks the loop's _thread_id), and a
    # call from another loop is still refused.
    bound, other = asyncio.new_event_loop(), asyncio.new_event_loop()
    seen: list[Any] = []

    async def with_hook(call: Any) -> Any:
        old = sys.get_asyncgen_hooks()
        sys.set_asyncgen_hooks(firstiter=seen.append)
        try:
            return await call()
        finally:
            sys.set_asyncgen_hooks(*old)

    try:
        ctx = asyncio_module.AsyncioContext(loop=bound)
        os.pwrite(fd, b"data", 0)
        assert bound.run_until_complete(with_hook(lambda: ctx.read(4, fd, 0))) == b"data"
        assert bound.run_until_complete(with_hook(lambda: ctx.write(b"more", fd, 0))) == 4
        with pytest.raises(RuntimeError, match="bound to event loop"):
            other.run_until_complete(with_hook(lambda: ctx.read(4, fd, 0)))
        assert os.pread(fd, 4, 0) == b"more"
        ctx.close()
    finally:
        bound.close()
        other.close()


def test_trio_takes_operations_as_async_functions(backend: str, fd: int) -> None:
    trio = pytest.importorskip("trio")
    from caio.trio_base import trio_context_class

    os.pwrite(fd, b"trio", 0)
    got: list[Any] = []

    async def main() -> None:
        ctx = trio_context_class(backend)()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ctx.write, b"TRIO", fd, 0)
        async with trio.open_nursery() as nursery:
            async def keep() -> None:
                got.append(await ctx.read(4, fd, 0))
            nursery.start_soon(keep)
        ctx.close()

    trio.run(main)
    assert got == [b"TRIO"]
