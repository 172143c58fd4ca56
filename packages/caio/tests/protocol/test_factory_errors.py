"""A future factory that raises, where the backend needs a future: the
``*_async`` call raises that error, the operation is not lost (a request
already in the kernel is reclaimed when it completes), and the context goes
on working and closes without leaking its descriptor."""

from __future__ import annotations

import asyncio
import errno
import os
import select
import time
from typing import Any

import pytest


class FactoryError(Exception):
    pass


def failing_factory() -> Any:
    raise FactoryError("no future today")


def closes_cleanly(context: Any) -> None:
    fileno = context.fileno
    context.close()
    assert context.closed
    with pytest.raises(OSError) as info:
        os.fstat(fileno)
    assert info.value.errno == errno.EBADF


def test_factory_error_while_waiting_for_a_slot(harness: Any) -> None:
    context = harness.Context(1)
    context.set_future_factory(failing_factory)
    held = harness.hold(context)
    # The only slot is taken: this one would wait for it, in a future.
    with pytest.raises(FactoryError):
        context.fdsync_async(harness.fd)
    held.release()
    harness.until(context, lambda: held.results == [held.expected])
    closes_cleanly(context)


async def test_factory_error_for_an_operation_in_flight(harness: Any) -> None:
    if not harness.waits_on_pipes:
        pytest.skip("this backend does not wait on pipes (BlockingIOError instead)")
    loop = asyncio.get_running_loop()
    context = harness.Context(4)
    context.set_future_factory(failing_factory)
    r, w = harness.pipe()
    # Nothing to read yet: the read goes to the kernel (or a worker) and
    # needs a future, which the factory refuses.
    with pytest.raises(FactoryError):
        context.read_async(3, r, 0)
    os.write(w, b"abc")
    # io_uring submits before it asks for the future (the call may finish
    # inline): its read is in the kernel, takes the data, and its completion,
    # with nobody to tell, is reclaimed. The pools ask for the future before
    # queueing: their read never started and the data stays.
    started = harness.backend == "uring"
    deadline = time.monotonic() + (10 if started else 0.3)
    while time.monotonic() < deadline and _readable(r):
        context.process_events()
        time.sleep(0.01)
    assert _readable(r) is not started
    context.process_events()
    context.set_future_factory(loop.create_future, loop.call_soon)
    written = context.write_async(b"after", harness.fd, 0)
    if not isinstance(written, int):
        harness.until(context, written.done)
        written = written.result()
    assert written == 5
    assert os.pread(harness.fd, 5, 0) == b"after"
    closes_cleanly(context)


def _readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])
