"""A hypothesis state machine drives ``async_open`` files against a model.

Random sequences of write, read, seek, truncate, clone, cancelled reads
and close run on one file through several wrappers at once (the opened one
and its clones, each with its own position), on every importable caio
backend. The model is a ``bytearray`` for the file and an int per wrapper
for its position; after every step each open wrapper's ``tell()`` and the
file's bytes on disk must match it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

import caio
from aiofile import async_open, clone

BACKEND_MODULES = [
    pytest.param(module, id=module.__name__.rsplit(".", 1)[-1].replace("_asyncio", ""))
    for module in caio.variants_asyncio
]
# Enough for the default run to stay short on every backend (a few seconds
# each); a deeper search: HYPOTHESIS_PROFILE-style, raise these locally.
STATE_MACHINE_SETTINGS = settings(
    max_examples=25, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
HANG = 10.0


class Handle:
    """One wrapper and where the model says it is."""

    def __init__(self, wrapper: Any, number: int) -> None:
        self.wrapper = wrapper
        self.pos = 0
        self.number = number
        self.closed = False

    def __repr__(self) -> str:
        return f"handle{self.number}"


def make_machine(module: Any, directory: Path) -> type[RuleBasedStateMachine]:
    class FileMachine(RuleBasedStateMachine):
        handles = Bundle("handles")

        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            self.context = module.AsyncioContext(loop=self.loop)
            self.path = directory / f"sm-{id(self)}"
            self.path.write_bytes(b"")
            self.data = bytearray()
            self.open: list[Handle] = []
            self.count = 0

        def run(self, coro: Any) -> Any:
            return self.loop.run_until_complete(asyncio.wait_for(coro, HANG))

        def new_handle(self, wrapper: Any) -> Handle:
            self.count += 1
            handle = Handle(wrapper, self.count)
            self.open.append(handle)
            return handle

        @rule(target=handles)
        def open_file(self) -> Handle:
            wrapper = self.run(_open(self.path, self.context))
            return self.new_handle(wrapper)

        @precondition(lambda self: self.open)
        @rule(target=handles, data=st.data())
        def clone_file(self, data: st.DataObject) -> Handle:
            original = data.draw(st.sampled_from(self.open))
            return self.new_handle(self.run(_clone(original.wrapper)))

        @rule(handle=handles, payload=st.binary(max_size=9000))
        def write(self, handle: Handle, payload: bytes) -> None:
            if handle.closed:
                with pytest.raises(ValueError, match="closed"):
                    self.run(handle.wrapper.write(payload))
                return
            assert self.run(handle.wrapper.write(payload)) == len(payload)
            end = handle.pos + len(payload)
            if payload and handle.pos > len(self.data):  # a hole, as in a file
                self.data.extend(bytes(handle.pos - len(self.data)))
            self.data[handle.pos:end] = payload
            handle.pos = end

        @rule(handle=handles, size=st.integers(-1, 9000))
        def read(self, handle: Handle, size: int) -> None:
            if handle.closed:
                with pytest.raises(ValueError, match="closed"):
                    self.run(handle.wrapper.read(size))
                return
            got = self.run(handle.wrapper.read(size))
            end = len(self.data) if size < 0 else handle.pos + size
            assert got == bytes(self.data[handle.pos:end])
            handle.pos += len(got)

        @rule(handle=handles, size=st.integers(1, 300_000), turns=st.integers(0, 3))
        def cancelled_read(self, handle: Handle, size: int, turns: int) -> None:
            """A read cancelled after ``turns`` loop iterations: either it
            finished (the position moved past what it returned) or it did
            not (the position is where it was)."""
            if handle.closed:
                return

            async def start_and_cancel() -> Any:
                task = asyncio.ensure_future(handle.wrapper.read(size))
                for _ in range(turns):
                    await asyncio.sleep(0)
                task.cancel()
                try:
                    return await task
                except asyncio.CancelledError:
                    return None

            got = self.run(start_and_cancel())
            if got is not None:
                assert got == bytes(self.data[handle.pos:handle.pos + size])
                handle.pos += len(got)

        @rule(handle=handles, offset=st.integers(0, 20_000), whence=st.sampled_from([0, 1, 2]))
        def seek(self, handle: Handle, offset: int, whence: int) -> None:
            if handle.closed:
                return
            if whence == os.SEEK_CUR:
                offset -= handle.pos // 2  # also backwards
            elif whence == os.SEEK_END:
                offset -= len(self.data)
            base = (0, handle.pos, len(self.data))[whence]
            if base + offset < 0:
                with pytest.raises(ValueError):
                    handle.wrapper.seek(offset, whence)
                return
            assert handle.wrapper.seek(offset, whence) == base + offset
            handle.pos = base + offset

        @precondition(lambda self: self.open)
        @rule(length=st.integers(0, 20_000), data=st.data())
        def truncate(self, length: int, data: st.DataObject) -> None:
            handle = data.draw(st.sampled_from(self.open))
            self.run(handle.wrapper.file.truncate(length))
            if length < len(self.data):
                del self.data[length:]
            else:
                self.data.extend(bytes(length - len(self.data)))

        @rule(handle=consumes(handles))
        def close(self, handle: Handle) -> None:
            self.run(handle.wrapper.close())
            if not handle.closed:
                handle.closed = True
                self.open.remove(handle)
            assert handle.wrapper.closed

        @invariant()
        def positions_and_content_match(self) -> None:
            for handle in self.open:
                assert handle.wrapper.tell() == handle.pos, handle
            assert self.path.read_bytes() == bytes(self.data)

        def teardown(self) -> None:
            for handle in self.open:
                self.run(handle.wrapper.close())
            self.context.close()
            self.loop.close()
            self.path.unlink(missing_ok=True)

    return FileMachine


async def _open(path: Path, context: Any) -> Any:
    return await async_open(path, "r+b", context=context)


async def _clone(wrapper: Any) -> Any:
    return await clone(wrapper)


@pytest.mark.parametrize("module", BACKEND_MODULES)
def test_files_behave_like_the_model(module: Any, tmp_path: Path) -> None:
    machine = make_machine(module, tmp_path)
    machine.TestCase.settings = STATE_MACHINE_SETTINGS
    machine.TestCase().runTest()
