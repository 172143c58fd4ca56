"""Every backend across fork() and threads.

A context belongs to the process that made it: in a forked child every
method says so (RuntimeError naming "another process") instead of sharing
the parent's ring, AIO context or pool; close() there only forgets memory,
and the parent's requests in flight are untouched. Threads each with their
own loop and context do not disturb each other; one context misused from
several threads ends in clear errors, never a crash or a hang.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 30


def fork() -> int:
    with warnings.catch_warnings():
        # 3.12+ warns that forking a multi-threaded process is risky; the
        # child only calls into caio and leaves with os._exit.
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


#: Under ASan (GCC's libasan), a forked child's malloc can wait forever for
#: a lock of the allocator's size classes that another thread of the parent
#: held at fork time (gdb on a hung child: __sanitizer::Mutex::Lock in
#: SizeClassAllocator64::GetFromAllocator, called from malloc), in the
#: child's main thread or in a worker it starts. glibc's malloc has no
#: such problem, and the other sessions run these tests.
asan_forks_hang = pytest.mark.skipif(
    "ASAN_OPTIONS" in os.environ,
    reason="a child forked from a threaded process under ASan can hang in its allocator",
)


def _child_state(pid: int) -> str:
    """Where each thread of a process waits (from /proc): its system call,
    wait channel and kernel stack."""
    lines = []
    try:
        tasks = sorted(os.listdir(f"/proc/{pid}/task"), key=int)
    except OSError as exc:
        return f"(no /proc/{pid}: {exc})"
    for task in tasks:
        lines.append(f"thread {task}:")
        for name in ("syscall", "wchan", "stack"):
            try:
                with open(f"/proc/{pid}/task/{task}/{name}") as f:
                    text = f.read().strip()
            except OSError as exc:
                text = f"({exc.strerror})"
            lines.append(f"  {name}: " + text.replace("\n", "\n    "))
    return "\n".join(lines)


def wait_for_child(pid: int, timeout: float = 60.0) -> int:
    """The forked child's exit code. A child still running after
    ``timeout`` seconds is killed (left alone, it would keep the test
    run's output pipe open) and the test fails saying where it waited."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    state = _child_state(pid)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not exit within {timeout} s:\n{state}")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@asan_forks_hang
def test_fork_with_requests_in_flight(
    harness: Any, event_loop: asyncio.AbstractEventLoop,
) -> None:
    fd = harness.fd
    context = harness.Context(1)
    context.set_future_factory(event_loop.create_future)
    os.pwrite(fd, b"parent", 0)
    try:
        # At fork time: one request in flight, a future waiting for its slot.
        held = harness.hold(context)
        waiting = context.fdsync_async(fd)
        assert isinstance(waiting, asyncio.Future)
        report_r, report_w = harness.pipe()
        pid = fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            code = 0
            try:
                calls: dict[str, Callable[[], object]] = {
                    "read_async": lambda: context.read_async(6, fd, 0),
                    "write_async": lambda: context.write_async(b"x", fd, 0),
                    "fdsync_async": lambda: context.fdsync_async(fd),
                    "submit": lambda: context.submit(harness.Operation.fsync(fd)),
                    "process_events": lambda: context.process_events(),
                    "cancel": lambda: context.cancel(harness.Operation.fsync(fd)),
                    "set_future_factory": lambda: context.set_future_factory(asyncio.Future),
                    "cancel_future": lambda: context.cancel_future(asyncio.Future()),
                    "fileno": lambda: context.fileno,
                }
                # Reading the descriptor's number touches nothing shared in
                # linux_uring and python_aio; python_aio's cancel(),
                # cancel_future() and set_future_factory() find nothing of
                # this process to cancel (as after close()).
                if harness.backend in ("uring", "python"):
                    del calls["fileno"]
                if harness.backend == "python":
                    for name in ("cancel", "set_future_factory", "cancel_future"):
                        try:
                            if calls.pop(name)():
                                code |= 32
                        except RuntimeError as exc:     # refusing is right too
                            if "another process" not in str(exc):
                                code |= 2
                for call in calls.values():
                    try:
                        call()
                        code |= 1
                    except RuntimeError as exc:
                        if "another process" not in str(exc):
                            code |= 2
                context.close()     # forgets; touches nothing of the parent's
                if not context.closed:
                    code |= 4
                fresh = harness.Context(2)
                op = harness.Operation.read(6, fd, 0)
                done: list[int] = []
                op.set_callback(done.append)
                fresh.submit(op)
                for _ in range(1000):
                    if done:
                        break
                    fresh.process_events()
                    threading.Event().wait(0.005)
                if op.get_value() != b"parent":
                    code |= 8
                fresh.close()
            except BaseException:
                code |= 16
            finally:
                os.write(report_w, bytes([code]))
                os._exit(0)
        assert wait_for_child(pid) == 0
        assert os.read(report_r, 1) == b"\0"
        # The parent's context finishes what it had and goes on working.
        held.release()
        harness.until(context, lambda: waiting.done() and held.results)
        assert held.results == [held.expected]
        assert waiting.result() is None
        op = harness.Operation.read(6, fd, 0)
        assert harness.run_ops(context, op)[0][0] == 6
        assert op.get_value() == b"parent"
    finally:
        context.close()


async def finishes(context: Any, awaitable: Any, what: str) -> Any:
    """``await awaitable``, failing after TIMEOUT with what the context's
    state says about why (CI once saw a write here never complete: its
    completion lost, or never posted?)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait([task], timeout=TIMEOUT)
    if not done:
        state = repr(context.context)
        readable = bool(select.select([context.context.fileno], [], [], 0)[0])
        reaped = context.context.process_events()
        await asyncio.sleep(0.1)
        task.cancel()
        pytest.fail(
            f"{what} not done after {TIMEOUT} s: {state}, its descriptor "
            f"{'readable' if readable else 'not readable'}; process_events() "
            f"then finished {reaped}, and it was {'done' if task.done() else 'not done'}",
        )
    return task.result()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@asan_forks_hang
def test_fork_with_an_asyncio_context(harness: Any, fd: int) -> None:
    loop = asyncio.new_event_loop()
    context = harness.AsyncioContext(loop=loop)

    async def before() -> None:
        assert await finishes(context, context.write(b"parent", fd, 0), "write") == 6
        assert await finishes(context, context.read(1, fd, 0), "read") == b"p"

    loop.run_until_complete(before())
    pid = fork()
    if pid == 0:  # pragma: no cover - the child reports through its status
        code = 1
        try:
            try:
                context.context.read_async(1, fd, 0)
            except RuntimeError:
                code = 0
            except BaseException:
                code = 2
            try:
                # What the exit handler would do: it must not touch the
                # parent's loop (the epoll instance is shared).
                context.close()
            except BaseException:
                code = 3

            async def child() -> bytes:
                async with harness.AsyncioContext() as fresh:
                    return bytes(await fresh.read(6, fd, 0))

            if asyncio.run(child()) != b"parent":
                code = 4
        finally:
            os._exit(code)

    async def after() -> None:
        # The parent's context is untouched and its loop still hears
        # completions (an fsync never finishes inline).
        assert await finishes(context, context.write(b"after fork", fd, 0), "write") == 10
        for _ in range(3):
            assert await finishes(context, context.fsync(fd), "fsync") is None
        assert await finishes(context, context.read(100, fd, 0), "read") == b"after fork"

    try:
        assert wait_for_child(pid) == 0
        loop.run_until_complete(after())
    finally:
        context.close()
        loop.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@asan_forks_hang
def test_forked_child_replaces_the_context_on_the_same_loop(harness: Any, fd: int) -> None:
    # The child closes the parent's context (its eventfd number becomes free
    # and the next eventfd gets it), while the loop it inherited still holds
    # the parent's registration under that number: the new context must be
    # watched all the same (an fsync's completion comes through it).
    loop = asyncio.new_event_loop()
    context = harness.AsyncioContext(loop=loop)
    loop.run_until_complete(context.fsync(fd))
    pid = fork()
    if pid == 0:  # pragma: no cover - the child reports through its status
        code = 1
        try:
            context.close()
            fresh = harness.AsyncioContext(loop=loop)
            code = 2
            loop.run_until_complete(asyncio.wait_for(fresh.fsync(fd), TIMEOUT))
            code = 0
        finally:
            os._exit(code)
    try:
        assert wait_for_child(pid) == 0
        # The parent's loop still hears its own context.
        assert loop.run_until_complete(asyncio.wait_for(context.fsync(fd), TIMEOUT)) is None
    finally:
        context.close()
        loop.close()


def test_threads_each_with_their_own_context(harness: Any, tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        async def main() -> None:
            fd = os.open(tmp_path / f"t{n}", os.O_RDWR | os.O_CREAT, 0o600)
            r, w = os.pipe()
            try:
                async with harness.AsyncioContext(16) as context:
                    # One at a time, then all at once.
                    for i in range(2000):
                        block = bytes([n + 1, i % 256]) * 8
                        assert await context.write(block, fd, i * 16) == 16
                        assert await context.read(16, fd, i * 16) == block
                    payloads = [f"{n}:{i};".encode() * 50 for i in range(200)]
                    assert await asyncio.gather(*(
                        context.write(p, fd, 65536 + i * 1000) for i, p in enumerate(payloads)
                    )) == [len(p) for p in payloads]
                    await context.fdsync(fd)
                    got = await asyncio.gather(*(
                        context.read(len(p), fd, 65536 + i * 1000) for i, p in enumerate(payloads)
                    ))
                    assert got == payloads
                    if harness.waits_on_pipes:
                        # A request that really waits, completed from here.
                        pending = asyncio.ensure_future(context.read(3, r, 0))
                        await asyncio.sleep(0.01)
                        assert not pending.done()
                        os.write(w, b"end")
                        assert await asyncio.wait_for(pending, TIMEOUT) == b"end"
            finally:
                os.close(fd)
                os.close(r)
                os.close(w)

        try:
            asyncio.run(main())
        except BaseException as exc:    # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []


def test_one_context_shared_by_threads(harness: Any, tmp_path: Path) -> None:
    # Operations submitted from four threads at once, completions reaped by
    # all of them: nothing may be lost or corrupted.
    path = tmp_path / "shared.bin"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    context = harness.Context(8)
    errors: list[BaseException] = []
    results: list[int] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        mine: list[int] = []  # list.append is atomic: callbacks may run anywhere
        try:
            for i in range(3000):
                offset = (index * 3000 + i) * 4
                op = harness.Operation.write(b"%04d" % i, descriptor, offset)
                op.set_callback(mine.append)
                assert context.submit(op) == 1
                context.process_events()
            # Each thread reaps until its own writes are done, and so also
            # enters the others' waiting writes into the kernel (io_uring
            # then ties them to this thread, which may exit before they
            # are done: test_linux_uring.py has that case on its own).
            harness.until(context, lambda: len(mine) == 3000)
        except BaseException as exc:
            errors.append(exc)
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        harness.until(context, lambda: len(results) == 4 * 3000)
        assert results == [4] * (4 * 3000)
    finally:
        context.close()
        os.close(descriptor)
    assert errors == []
    data = path.read_bytes()
    assert data == b"".join(b"%04d" % i for i in range(3000)) * 4


def test_async_methods_refuse_another_thread(harness: Any) -> None:
    # The futures of the *_async methods belong to one event loop: the
    # thread that set the factory. Another thread gets a clear error before
    # any I/O, not a future of a loop it does not run.
    loop = asyncio.new_event_loop()
    context = harness.Context(4)
    context.set_future_factory(loop.create_future)
    caught: list[BaseException] = []

    def other() -> None:
        for call in (
            lambda: context.read_async(1, harness.fd, 0),
            lambda: context.write_async(b"x", harness.fd, 0),
            lambda: context.fsync_async(harness.fd),
            lambda: context.fdsync_async(harness.fd),
        ):
            try:
                call()
            except RuntimeError as exc:
                caught.append(exc)

    try:
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(TIMEOUT)
        assert len(caught) == 4
        assert all("set_future_factory" in str(exc) for exc in caught)
        # The owner thread is served as before.
        result = context.fsync_async(harness.fd)
        if result is not None:
            harness.until(context, result.done)
            assert result.result() is None
    finally:
        context.close()
        loop.close()


def test_close_while_another_thread_submits(
    harness: Any, event_loop: asyncio.AbstractEventLoop,
) -> None:
    # Misuse, but it must end in clear errors, not a crash or a hang.
    context = harness.Context(4)
    context.set_future_factory(event_loop.create_future)
    stop = threading.Event()
    started = threading.Event()
    outcomes: set[str] = set()

    def hammer() -> None:
        while not stop.is_set():
            try:
                context.submit(harness.Operation.fsync(harness.fd))
                outcomes.add("ok")
                started.set()
            except ValueError:
                outcomes.add("closed")
                return

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        assert started.wait(TIMEOUT)
        context.close()
    finally:
        stop.set()
        thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert "ok" in outcomes
    assert outcomes <= {"ok", "closed"}
    assert context.closed
