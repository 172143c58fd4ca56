"""How results come back on every backend: Operation callbacks,
process_events() resolving futures, and cancelling what has not started
(cancel() of Operations, cancel_future() of futures).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sys
import threading
from typing import Any

import pytest


def test_operation_callbacks(harness: Any, closed_fd: int) -> None:
    context = harness.Context(4)
    fd = harness.fd
    try:
        # More than max_requests at once: the rest wait their turn.
        writes = [harness.Operation.write(bytes([65 + i]) * 10, fd, i * 10) for i in range(10)]
        calls: list[tuple[int, int]] = []
        lock = threading.Lock()

        def record(result: int) -> None:
            with lock:
                calls.append((result, threading.get_ident()))

        for op in writes:
            op.set_callback(record)
        assert context.submit(*writes) == 10
        if harness.callbacks_in_loop:
            # Even when the kernel finished inside submit(), callbacks wait
            # for process_events (they must not run before submit returns).
            assert calls == []
        harness.until(context, lambda: len(calls) == 10)
        assert [result for result, _ in calls] == [10] * 10
        threads = {thread for _, thread in calls}
        if harness.callbacks_in_loop:
            assert threads == {threading.get_ident()}
        else:
            assert threading.get_ident() not in threads
        assert [op.get_value() for op in writes] == [10] * 10
        content = b"".join(bytes([65 + i]) * 10 for i in range(10))
        assert os.pread(fd, 200, 0) == content

        read, past_end, sync, datasync, bad = (
            harness.Operation.read(1000, fd, 1), harness.Operation.read(10, fd, 500),
            harness.Operation.fsync(fd), harness.Operation.fdsync(fd),
            harness.Operation.read(10, closed_fd, 0),
        )
        results = [r for r, _ in harness.run_ops(context, read, past_end, sync, datasync, bad)]
        assert results == [99, 0, 0, 0, -errno.EBADF]
        assert read.get_value() == content[1:]
        assert "done result=99" in repr(read)
        assert read.payload == read.get_value()
        assert past_end.get_value() == b""
        assert sync.get_value() is None
        assert datasync.get_value() is None
        with pytest.raises(OSError) as info:
            bad.get_value()
        assert info.value.errno == errno.EBADF
    finally:
        context.close()


def test_process_events_resolves_futures(
    harness: Any, event_loop: asyncio.AbstractEventLoop,
) -> None:
    context = harness.Context(1)
    try:
        context.set_future_factory(event_loop.create_future)
        held = harness.hold(context)
        futures = [context.fsync_async(harness.fd) for _ in range(20)]
        assert all(isinstance(f, asyncio.Future) for f in futures)
        assert not any(f.done() for f in futures)
        held.release()
        # The Operation's callback counts where process_events runs it.
        expected = len(futures) + harness.callbacks_in_loop
        resolved = 0
        while resolved < expected:
            harness.wait_readable(context.fileno)
            resolved += context.process_events()
        assert resolved == expected
        assert context.process_events() == 0
        assert all(f.result() is None for f in futures)
        assert held.results == [held.expected]
    finally:
        context.close()


def test_cancel_waiting_operations(harness: Any) -> None:
    context = harness.Context(1)
    fd = harness.fd
    try:
        held = harness.hold(context)
        waiting = [harness.Operation.write(b"never", fd, i) for i in range(3)]
        cancelled: list[int] = []
        for op in waiting:
            op.set_callback(cancelled.append)
        assert context.submit(*waiting) == 3
        assert context.cancel(*waiting) == 3
        assert context.cancel(*waiting) == 0                      # already done
        if harness.callbacks_in_loop:
            # They never reached the kernel, so no completion wakes the loop
            # for them: the context must, and process_events runs them.
            assert cancelled == []
            harness.wait_readable(context.fileno)
            context.process_events()
        # The pools run them in cancel() itself.
        assert cancelled == [-errno.ECANCELED] * 3
        for op in waiting:
            with pytest.raises(OSError) as info:
                op.get_value()
            assert info.value.errno == errno.ECANCELED
        held.release()
        harness.until(context, lambda: held.results)
        assert held.results == [held.expected]
        assert os.pread(fd, 10, 0) == b""       # no cancelled write ran
        # The slot came back.
        assert harness.run_ops(context, harness.Operation.write(b"ok", fd, 0))[0][0] == 2
    finally:
        context.close()


def test_cancel_future(harness: Any, event_loop: asyncio.AbstractEventLoop) -> None:
    context = harness.Context(1)
    fd = harness.fd
    try:
        context.set_future_factory(event_loop.create_future)
        assert context.cancel_future(event_loop.create_future()) is False
        assert context.cancel_future(object()) is False
        held = harness.hold(context)
        waiting = context.write_async(b"never", fd, 0)
        kept = context.fsync_async(fd)
        for future in (waiting, kept):
            assert isinstance(future, asyncio.Future)
        waiting.cancel()                                  # as its task would
        assert context.cancel_future(waiting) is True
        assert context.cancel_future(waiting) is False    # already gone
        held.release()
        harness.until(context, lambda: kept.done() and held.results)
        assert kept.result() is None
        assert waiting.cancelled()
        assert held.results == [held.expected]
        assert os.pread(fd, 10, 0) == b""       # the cancelled write never ran
    finally:
        context.close()


def test_cancel_future_fails_a_live_future(
    harness: Any, event_loop: asyncio.AbstractEventLoop,
) -> None:
    # Cancelling the operation of a future nobody cancelled fails that
    # future with ECANCELED (the adapter only ever passes cancelled ones).
    context = harness.Context(1)
    fd = harness.fd
    try:
        context.set_future_factory(event_loop.create_future)
        held = harness.hold(context)
        alive = context.fdsync_async(fd)
        assert isinstance(alive, asyncio.Future)
        assert context.cancel_future(alive) is True
        assert context.cancel_future(alive) is False
        held.release()
        harness.until(context, lambda: held.results)
        context.process_events()
        assert alive.done()
        assert isinstance(alive.exception(), OSError)
        assert alive.exception().errno == errno.ECANCELED
    finally:
        context.close()


def test_failing_callback_does_not_stop_the_others(
    harness: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    raised: list[type[BaseException] | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: raised.append(info.exc_type))
    context = harness.Context(1)     # one slot (one worker): in order
    try:
        bad = harness.Operation.fsync(harness.fd)
        bad.set_callback(lambda result: 1 / 0)
        assert context.submit(bad) == 1
        # The loop (or the worker) survives: later operations complete.
        ops = [harness.Operation.read(1, harness.fd, 0) for _ in range(5)]
        with caplog.at_level(logging.ERROR, logger="caio.python_aio"):
            assert [r for r, _ in harness.run_ops(context, *ops)] == [0] * 5
        assert bad.get_value() is None
    finally:
        context.close()
    if harness.backend == "python":
        # Python code: the error goes to the module's logger, with traceback.
        assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
    else:
        # C code that cannot raise into anyone: PyErr_WriteUnraisable.
        assert raised == [ZeroDivisionError]


def test_cancelled_pipe_reads_do_not_eat_later_data(harness: Any, pipe: Any) -> None:
    if not harness.waits_on_pipes:
        pytest.skip("kernel AIO refuses reads that would wait on a pipe")
    r, w = pipe

    async def main() -> None:
        async with harness.AsyncioContext(1) as context:
            running = asyncio.ensure_future(context.read(100, r, 0))
            waiting = asyncio.ensure_future(context.read(100, r, 0))   # no slot
            await asyncio.sleep(0.05)
            for task in (waiting, running):
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            # Written afterwards: for a new read, not for a cancelled one
            # (whose buffer the kernel or worker must not fill either).
            os.write(w, b"fresh")
            assert await asyncio.wait_for(context.read(100, r, 0), 30) == b"fresh"

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
