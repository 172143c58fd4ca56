"""What the shared protocol suite needs to drive any backend's low level.

Every test in this directory runs once per backend (the ``backend`` fixture
of the parent conftest.py). Where the backends legitimately differ, the
difference is a fact of :class:`Harness` with a comment saying why, so a
test states one expectation per backend instead of being copied per backend.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

# Long enough for a loaded CI machine; a hang fails well before pytest's
# own timeout, with the name of what did not finish.
TIMEOUT = 10.0


class Harness:
    """One backend's low-level module plus the facts where backends differ."""

    def __init__(self, backend: str, module: Any, adapter: Any, fd: int) -> None:
        self.backend = backend
        self.Context = module.Context
        self.Operation = module.Operation
        self.AsyncioContext = adapter.AsyncioContext
        self.fd = fd
        # io_uring and kernel AIO reap completions in process_events() and
        # run callbacks there (the loop thread); the pools run them in the
        # worker that finished the operation, as caio 0.12 did.
        self.callbacks_in_loop: bool = adapter.AsyncioContext.CALLBACKS_IN_LOOP
        # A kernel AIO read of an empty pipe would block inside io_submit
        # with no timeout, so linux_aio submits reads with RWF_NOWAIT and
        # fails with BlockingIOError instead; the other backends wait (a
        # poll armed by io_uring, a worker in poll()) until data comes.
        self.waits_on_pipes = backend != "linux"
        # The C backends make a read into aligned memory in the call when
        # the page cache has it and the descriptor is not O_DIRECT, keeping
        # fcntl's answer for the last descriptor (common/nowait.h). The
        # Python pool asks fcntl each time.
        self.keeps_direct_answer = backend != "python"
        self._pipes: list[int] = []

    # ---- operations that stay in flight ----------------------------------

    def hold(self, context: Any) -> Held:
        """Take the only slot of a ``Context(1)`` until ``release()``."""
        return Held(self, context)

    def pipe(self) -> tuple[int, int]:
        r, w = os.pipe()
        self._pipes += (r, w)
        return r, w

    def close_pipes(self) -> None:
        for descriptor in self._pipes:
            try:
                os.close(descriptor)
            except OSError:
                pass

    # ---- waiting for completions -------------------------------------------

    def wait_readable(self, fd: int) -> None:
        readable, _, _ = select.select([fd], [], [], TIMEOUT)
        assert readable, "nothing within the timeout"

    def wait_until(self, done: Any) -> None:
        """Wait (without a context to drive) until ``done()`` is true."""
        deadline = time.monotonic() + TIMEOUT
        while not done():
            assert time.monotonic() < deadline, "it did not happen in time"
            time.sleep(0.01)

    def until(self, context: Any, done: Any) -> None:
        """Deliver completions (process_events where the backend needs it)
        until ``done()`` is true."""
        deadline = time.monotonic() + TIMEOUT
        while not done():
            assert time.monotonic() < deadline, "operations did not finish"
            # Futures are resolved there on every backend; the pools run
            # Operation callbacks in their workers meanwhile.
            readable, _, _ = select.select([context.fileno], [], [], 0.01)
            if readable:
                context.process_events()

    def run_ops(self, context: Any, *ops: Any) -> list[tuple[int, int]]:
        """Submit ``ops``, wait for every callback: [(result, thread id)]."""
        results: dict[int, tuple[int, int]] = {}
        lock = threading.Lock()

        def record(index: int, result: int) -> None:
            with lock:
                results[index] = (result, threading.get_ident())

        for index, op in enumerate(ops):
            op.set_callback(lambda result, index=index: record(index, result))
        assert context.submit(*ops) == len(ops)
        self.until(context, lambda: len(results) == len(ops))
        return [results[i] for i in range(len(ops))]


class Held:
    """An Operation that keeps the only slot of a ``Context(1)`` busy.

    io_uring, the C pool and the Python pool: a read of a pipe nobody has
    written to (the ring arms a poll, the one worker waits in poll()).
    Kernel AIO cannot wait on a pipe, but a submitted Operation keeps its
    slot until process_events() reaps it: an fdatasync of a regular file,
    which the kernel finishes on its own, holds it until then.
    """

    def __init__(self, harness: Harness, context: Any) -> None:
        self.harness = harness
        self.results: list[int] = []
        if harness.waits_on_pipes:
            self.r, self.w = harness.pipe()
            self.op = harness.Operation.read(1, self.r, 0)
            self.expected = 1
        else:
            self.op = harness.Operation.fdsync(harness.fd)
            self.expected = 0
        self.op.set_callback(self.results.append)
        assert context.submit(self.op) == 1
        if not harness.callbacks_in_loop:
            # Wait until a worker has taken it: what is submitted next then
            # surely waits in the queue, not beside it.
            time.sleep(0.05)

    def release(self) -> None:
        if self.harness.waits_on_pipes:
            os.write(self.w, b"h")


@pytest.fixture
def harness(
    backend: str, backend_module: Any, asyncio_module: Any, fd: int,
) -> Iterator[Harness]:
    made = Harness(backend, backend_module, asyncio_module, fd)
    yield made
    made.close_pipes()
