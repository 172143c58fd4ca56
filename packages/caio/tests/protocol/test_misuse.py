"""Misuse with one clear answer on every backend: a descriptor closed
while an operation on it is in flight (``wait_idle``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest


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

