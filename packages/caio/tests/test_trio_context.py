"""caio under Trio and AnyIO: ``caio.trio_base`` on every backend.

Each test runs a whole program with ``trio.run`` or ``anyio.run`` (on its
trio and on its asyncio backend), so no pytest plugin is involved: the
library that runs is exactly the one named in the test id.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import caio
from caio._backends import BACKENDS

trio = pytest.importorskip("trio")
anyio = pytest.importorskip("anyio")

from caio.trio_base import TrioContextBase, TrioFuture, trio_context_class  # noqa: E402

# trio.run; anyio.run on its trio backend; anyio.run on asyncio.
LIBRARIES = ["trio", "anyio-trio", "anyio-asyncio"]
# A pending operation that must end within this, or the test fails.
TIMEOUT = 10.0


def run(library: str, main: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    if library == "trio":
        return trio.run(main, *args)
    return anyio.run(main, *args, backend=library.removeprefix("anyio-"))


def make_context(library: str, backend: str, **options: Any) -> Any:
    """A context of ``backend`` for ``library``, made inside its run."""
    if library == "anyio-asyncio":
        return getattr(caio, BACKENDS[backend] + "_asyncio").AsyncioContext(**options)
    return trio_context_class(backend)(**options)


def move_on_after(library: str, seconds: float) -> Any:
    """The cancel scope of the library under test (trio's, or anyio's)."""
    if library == "trio":
        return trio.move_on_after(seconds)
    return anyio.move_on_after(seconds)


@pytest.fixture(params=LIBRARIES)
def library(request: pytest.FixtureRequest) -> str:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    descriptor = os.open(tmp_path / "data", os.O_RDWR | os.O_CREAT, 0o600)
    yield descriptor
    os.close(descriptor)


def test_read_write_sync_on_every_backend(backend: str, library: str, fd: int) -> None:
    payload = os.urandom(70_000)

    async def main() -> tuple[int, bytes, bytes, bytes, int]:
        async with make_context(library, backend) as ctx:
            written = await ctx.write(payload, fd, 100)
            await ctx.fsync(fd)
            await ctx.fdsync(fd)
            whole = await ctx.read(len(payload) + 1000, fd, 100)
            middle = await ctx.read(10, fd, 5100)
            hole = await ctx.read(100, fd, 0)
            got = -1
            readinto = getattr(ctx, "readinto", None)
            if readinto is not None:
                buffer = bytearray(50)
                got = await readinto(buffer, fd, 200)
                assert bytes(buffer) == payload[100:150]
            return written, whole, middle, hole, got

    written, whole, middle, hole, got = run(library, main)
    assert written == len(payload)
    assert whole == payload  # short at end of file
    assert middle == payload[5000:5010]
    assert hole == bytes(100)
    assert got in (-1, 50)
    assert os.pread(fd, len(payload), 100) == payload


def test_errors_are_oserrors(backend: str, library: str, dir_fd: int) -> None:
    async def main() -> None:
        async with make_context(library, backend) as ctx:
            with pytest.raises(OSError) as info:
                await ctx.read(10, dir_fd, 0)
            assert info.value.errno == errno.EISDIR
            with pytest.raises(OSError) as bad:
                await ctx.write(b"x", dir_fd, 0)
            assert bad.value.errno in (errno.EBADF, errno.EISDIR)

    run(library, main)


def test_cancel_scope_cancels_a_pending_pipe_read(
    backend: str, library: str, pipe: tuple[int, int],
) -> None:
    r, w = pipe

    async def main() -> tuple[bool, bytes, bytes]:
        ctx = make_context(library, backend)
        try:
            if backend == "linux":
                # Kernel AIO cannot wait on a pipe: it says so at once.
                with pytest.raises(BlockingIOError):
                    await ctx.read(10, r, 0)
                return True, b"late", b"again"
            with move_on_after(library, 0.05) as scope:
                await ctx.read(10, r, 0)
                raise AssertionError("an empty pipe gave data")
            # The cancelled read is no longer counted, nothing is left to
            # land: data written now goes to the next read, whole.
            # (The Trio adapter counts per descriptor, asyncio's files
            # futures.)
            assert not getattr(ctx, "_busy", None) and not getattr(ctx, "_inflight", None)
            os.write(w, b"late")
            late = await ctx.read(10, r, 0)
            os.write(w, b"again")
            again = await ctx.read(10, r, 0)
            await ctx.wait_idle(r)
            return scope.cancelled_caught, late, again
        finally:
            ctx.close()

    cancelled, late, again = run(library, main)
    assert cancelled
    assert late == b"late"
    assert again == b"again"


def test_close_ends_a_pending_read_with_ecanceled(
    backend: str, pipe: tuple[int, int],
) -> None:
    if backend == "linux":
        pytest.skip("kernel AIO does not wait on pipes (see the cancel test)")
    r, _ = pipe
    seen: list[BaseException] = []

    async def reader(ctx: Any, task_status: Any) -> None:
        task_status.started()
        try:
            await ctx.read(10, r, 0)
        except OSError as exc:
            seen.append(exc)

    async def main() -> None:
        ctx = trio_context_class(backend)()
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                await nursery.start(reader, ctx)
                await trio.sleep(0.02)
                ctx.close()
        assert ctx.closed

    run("trio", main)
    assert len(seen) == 1 and isinstance(seen[0], OSError)
    assert seen[0].errno == errno.ECANCELED


def test_many_tasks_at_once(backend: str, library: str, fd: int) -> None:
    blocks = [os.urandom(4096) for _ in range(64)]

    async def one(ctx: Any, i: int, results: list[bytes]) -> None:
        assert await ctx.write(blocks[i], fd, i * 4096) == 4096
        results[i] = await ctx.read(4096, fd, i * 4096)

    async def main() -> list[bytes]:
        results = [b""] * len(blocks)
        # Fewer slots than tasks: the rest wait their turn in the backend.
        async with make_context(library, backend, max_requests=8) as ctx:
            if library == "trio":
                async with trio.open_nursery() as group:
                    for i in range(len(blocks)):
                        group.start_soon(one, ctx, i, results)
            else:
                async with anyio.create_task_group() as group:
                    for i in range(len(blocks)):
                        group.start_soon(one, ctx, i, results)
        return results

    assert run(library, main) == blocks
    assert os.pread(fd, 64 * 4096, 0) == b"".join(blocks)


def test_many_tasks_on_pipes(backend: str) -> None:
    if backend == "linux":
        pytest.skip("kernel AIO does not wait on pipes")
    pipes = [os.pipe() for _ in range(16)]

    async def one(ctx: Any, i: int, results: list[bytes]) -> None:
        results[i] = await ctx.read(100, pipes[i][0], 0)

    async def main() -> list[bytes]:
        results = [b""] * len(pipes)
        async with trio_context_class(backend)() as ctx:
            with trio.fail_after(TIMEOUT):
                async with trio.open_nursery() as nursery:
                    for i in range(len(pipes)):
                        nursery.start_soon(one, ctx, i, results)
                    await trio.sleep(0.02)
                    for i, (_, w) in enumerate(pipes):
                        os.write(w, b"pipe %d" % i)
        return results

    try:
        assert run("trio", main) == [b"pipe %d" % i for i in range(len(pipes))]
    finally:
        for pair in pipes:
            for descriptor in pair:
                os.close(descriptor)


def test_context_closes_with_its_run_and_stays_there(backend: str, fd: int) -> None:
    made: list[Any] = []

    async def first() -> None:
        ctx = trio_context_class(backend)()
        made.append(ctx)
        assert ctx.token is trio.lowlevel.current_trio_token()
        assert await ctx.write(b"abc", fd, 0) == 3

    async def second() -> None:
        with pytest.raises(ValueError, match="closed"):
            await made[0].read(3, fd, 0)

    run("trio", first)
    assert made[0].closed  # the run's end closed it
    run("trio", second)


def test_a_context_made_outside_binds_to_its_first_run(backend: str, fd: int) -> None:
    ctx = trio_context_class(backend)()
    assert ctx.token is None and not ctx.closed

    async def main() -> bytes:
        assert await ctx.write(b"late binding", fd, 0) == 12
        assert ctx.token is trio.lowlevel.current_trio_token()
        return await ctx.read(100, fd, 0)  # type: ignore[no-any-return]

    assert run("trio", main) == b"late binding"
    assert ctx.closed


def test_use_outside_trio_is_refused(backend: str, fd: int) -> None:
    ctx = trio_context_class(backend)()
    try:
        async def main() -> None:
            with pytest.raises(RuntimeError, match="Trio context"):
                await ctx.read(1, fd, 0)

        run("anyio-asyncio", main)
        with pytest.raises(RuntimeError, match="no asyncio event loop"):
            ctx.loop  # noqa: B018
    finally:
        ctx.close()


def test_two_runs_in_two_threads_each_with_its_context(backend: str, fd: int) -> None:
    import threading

    os.pwrite(fd, b"shared", 0)
    results: dict[int, bytes] = {}

    def thread_main(i: int) -> None:
        async def main() -> bytes:
            async with trio_context_class(backend)() as ctx:
                return await ctx.read(6, fd, 0)  # type: ignore[no-any-return]

        results[i] = trio.run(main)

    threads = [threading.Thread(target=thread_main, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert results == {0: b"shared", 1: b"shared"}


def test_deferred_is_a_checkpoint(backend: str, fd: int) -> None:
    os.pwrite(fd, b"cached", 0)

    async def main() -> None:
        plain = trio_context_class(backend)()
        deferred = trio_context_class(backend)(deferred=True)
        with trio.CancelScope() as scope:
            scope.cancel()
            # A page-cache hit finishes during the call: no checkpoint...
            assert await plain.read(6, fd, 0) == b"cached"
            # ...unless every operation is to pass through the scheduler.
            with pytest.raises(trio.Cancelled):
                await deferred.read(6, fd, 0)
        assert await deferred.read(6, fd, 0) == b"cached"
        assert await deferred.write(b"C", fd, 0) == 1
        await deferred.fsync(fd)
        plain.close()
        deferred.close()

    run("trio", main)
    assert os.pread(fd, 6, 0) == b"Cached"


def test_submit_an_operation(backend: str, library: str, fd: int) -> None:
    module = getattr(caio, BACKENDS[backend])
    os.pwrite(fd, b"operation", 0)

    async def main() -> tuple[bytes, int]:
        async with make_context(library, backend) as ctx:
            read = await ctx.submit(module.Operation.read(9, fd, 0))
            written = await ctx.submit(module.Operation.write(b"OP", fd, 0))
            return read, written

    assert run(library, main) == (b"operation", 2)
    assert os.pread(fd, 9, 0) == b"OPeration"


def test_submit_cancelled_on_a_pipe(backend: str, pipe: tuple[int, int]) -> None:
    if backend == "linux":
        pytest.skip("kernel AIO does not wait on pipes")
    if backend == "python":
        # docs/internals.md, "An operation is bound to its file": cancel(op)
        # cannot stop a python_aio worker that already waits in read().
        pytest.skip("python_aio's cancel() does not reach a running worker")
    module = getattr(caio, BACKENDS[backend])
    r, w = pipe

    async def main() -> bytes:
        async with trio_context_class(backend)() as ctx:
            with trio.move_on_after(0.05) as scope:
                await ctx.submit(module.Operation.read(10, r, 0))
            assert scope.cancelled_caught
            os.write(w, b"after")
            with trio.fail_after(TIMEOUT):
                return await ctx.read(10, r, 0)  # type: ignore[no-any-return]

    assert run("trio", main) == b"after"


def test_future_refuses_a_result_after_cancellation() -> None:
    # As an asyncio future does (InvalidStateError): the backends take that
    # as "nobody wants it" and give back what the operation made.
    future = TrioFuture()
    assert not future.done() and not future.cancelled()
    future.set_result(1)
    with pytest.raises(asyncio.InvalidStateError):
        future.set_result(2)  # the first result stays
    future.offer(3)   # an Operation callback's way: ignored
    assert future.done()

    async def main() -> int:
        return await future.wait(lambda _: None)  # type: ignore[no-any-return]

    assert trio.run(main) == 1

    cancelled = TrioFuture()
    asked: list[TrioFuture] = []

    async def wait_cancelled() -> None:
        with trio.move_on_after(0.01):
            await cancelled.wait(asked.append)

    trio.run(wait_cancelled)
    assert asked == [cancelled] and cancelled.cancelled()
    with pytest.raises(asyncio.InvalidStateError):
        cancelled.set_exception(OSError(errno.EIO, "late"))
    assert cancelled.done()


@pytest.mark.parametrize("waiter", ["system-task", "cancel-scope", "none"])
def test_open_in_flight_when_the_run_ends_is_given_back(fifo: Any, waiter: str) -> None:
    """linux_aio's open runs on caio's executor. A Trio run that ends while
    one is blocked (a FIFO nobody writes to) leaves nobody to take the
    descriptor it makes once a writer comes: it is closed. Its waiter was
    a system task (cancelled by the run's end), a task whose cancel scope
    ran out, or nobody at all (the adapter's future, never awaited)."""
    if caio.linux_aio_asyncio is None:
        pytest.skip("kernel AIO cannot be used here")
    path = fifo.path.encode()

    async def opener(ctx: Any) -> None:
        await ctx.open(path, os.O_RDONLY)
        raise AssertionError("the open finished without a writer")

    async def main() -> None:
        ctx = trio_context_class("linux")()
        assert not ctx.in_kernel("open")  # the executor's
        if waiter == "system-task":
            trio.lowlevel.spawn_system_task(opener, ctx)
            await trio.sleep(0.02)
        elif waiter == "cancel-scope":
            with trio.move_on_after(0.02):
                await opener(ctx)
        else:
            from caio import _fsops

            future = ctx._fs_thread(
                _fsops.OPEN, _fsops.AT_FDCWD, path, None, _fsops.AT_FDCWD,
                os.O_RDONLY | os.O_CLOEXEC, 0, 0, 0,
            )
            assert type(future) is TrioFuture

    trio.run(main)
    fifo.open_writer()  # the open ends after the run
    fifo.wait_for_no_reader()


def test_selected_backend_is_caio_trio_context() -> None:
    assert caio.TrioContext is trio_context_class()
    assert caio.TrioContextBase is TrioContextBase
    assert caio.TrioContext.CONTEXT_CLASS is caio.Context
    assert issubclass(caio.TrioContext, caio.AsyncioContext)
    with pytest.raises(ValueError, match="unknown caio backend"):
        trio_context_class("nope")


@pytest.mark.parametrize("library", ["anyio-trio", "anyio-asyncio"])
def test_anyio_cancel_scope_from_another_task(
    backend: str, library: str, pipe: tuple[int, int],
) -> None:
    if backend == "linux":
        pytest.skip("kernel AIO does not wait on pipes")
    r, w = pipe
    outcome: list[str] = []

    async def main() -> bytes:
        async with make_context(library, backend) as ctx:
            scope = anyio.CancelScope()

            async def reader() -> None:
                with scope:
                    await ctx.read(10, r, 0)
                    outcome.append("data")
                outcome.append("cancelled" if scope.cancel_called else "ended")

            with anyio.fail_after(TIMEOUT):
                async with anyio.create_task_group() as group:
                    group.start_soon(reader)
                    await anyio.sleep(0.02)
                    scope.cancel()
            os.write(w, b"next")
            return await ctx.read(10, r, 0)  # type: ignore[no-any-return]

    assert run(library, main) == b"next"
    assert outcome == ["cancelled"]
