"""caio._lines: the C line splitter and async line iterator aiofile uses.

split_lf is checked against a plain Python split at "\\n" over every str
width; LineIterator against readers made here: a step takes a line from
the reader's ``_lines`` or awaits its ``readline()``, and cancellation,
errors and concurrent use behave as with a coroutine.
"""

from __future__ import annotations

import asyncio
import gc
import operator
import sys
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

_lines = pytest.importorskip("caio._lines")


def reference_split(tail: Any, chunk: Any) -> list[Any]:
    """What split_lf must return: complete lines (tail first), then the rest."""
    nl = "\n" if isinstance(chunk, str) else b"\n"
    parts = (tail + chunk).split(nl)
    rest = parts.pop()
    return [part + nl for part in parts] + [rest]


# Characters of every str width: ASCII, Latin-1, 2 and 4 bytes; "\r" and
# the other str.splitlines breaks must not end a line.
CHARS = st.sampled_from(["a", "\n", "\r", "\x0b", "\x85", "é", "€", "\u2028", "\U0001f600"])


@settings(max_examples=300, deadline=None)
@given(
    tail=st.lists(CHARS, max_size=6).map("".join),
    chunk=st.lists(CHARS, max_size=30).map("".join),
)
def test_split_lf_str_as_python(tail: str, chunk: str) -> None:
    # The tail never holds a "\n" in use; split_lf does not look into it.
    tail = tail.replace("\n", "")
    lines = _lines.split_lf(tail, chunk)
    assert lines == reference_split(tail, chunk)
    assert all(type(line) is str for line in lines)


@settings(max_examples=200, deadline=None)
@given(tail=st.binary(max_size=6), chunk=st.binary(max_size=40))
def test_split_lf_bytes_as_python(tail: bytes, chunk: bytes) -> None:
    tail = tail.replace(b"\n", b"")
    lines = _lines.split_lf(tail, chunk)
    assert lines == reference_split(tail, chunk)
    assert all(type(line) is bytes for line in lines)


def test_split_lf_keeps_each_line_narrow() -> None:
    # One wide character in the chunk must not make every line wide: the
    # lines compare equal either way, their sizes show it.
    chunk = "ab\n" * 3 + "\U0001f600\n"
    lines = _lines.split_lf("", chunk)
    assert [sys.getsizeof(line) for line in lines[:3]] == [sys.getsizeof("ab\n")] * 3


@pytest.mark.parametrize(
    "args",
    [
        ("", b"x\n"), (b"", "x\n"), (1, "x"), ("x", 1), (bytearray(b"x"), b"\n"),
        ("x",), ("a", "b", "c"),
    ],
)
def test_split_lf_argument_errors(args: tuple[Any, ...]) -> None:
    with pytest.raises(TypeError):
        _lines.split_lf(*args)


class SlotReader:
    """A reader like aiofile's: ``_lines`` in a slot, lines coming from
    ``chunks`` one list per readline() call, each read yielding to the loop."""

    __slots__ = ("_lines", "chunks", "reads", "fail")

    def __init__(self, chunks: list[list[str]], fail: BaseException | None = None) -> None:
        self._lines: Iterator[str] | None = None
        self.chunks = chunks
        self.reads = 0
        self.fail = fail

    async def _readline(self) -> str:
        self.reads += 1
        await asyncio.sleep(0)   # a real suspension: the step must pass it on
        if self.fail is not None:
            raise self.fail
        if not self.chunks:
            return ""
        lines = iter(self.chunks.pop(0))
        self._lines = lines
        return next(lines)


class PlainReader:
    """The same with _lines in the instance dict (looked up by name)."""

    def __init__(self, chunks: list[list[str]]) -> None:
        self._inner = SlotReader(chunks)
        self._lines: Iterator[str] | None = None

    async def _readline(self) -> str:
        line = await self._inner._readline()
        self._lines = self._inner._lines
        return line


async def collect(iterator: Any) -> list[str]:
    return [line async for line in iterator]


@pytest.mark.parametrize("kind", [SlotReader, PlainReader])
async def test_iterates_lines_then_reads(kind: Any) -> None:
    reader = kind([["a\n", "b\n"], ["c\n"], ["d"]])
    lines = await collect(_lines.LineIterator(reader, reader._readline))
    assert lines == ["a\n", "b\n", "c\n", "d"]


async def test_takes_from_lines_already_there_without_reading() -> None:
    reader = SlotReader([["z\n"]])
    reader._lines = iter(["x\n", "y\n"])
    iterator = _lines.LineIterator(reader, reader._readline)
    assert aiter(iterator) is iterator
    assert await anext(iterator) == "x\n"
    assert reader.reads == 0
    # What another consumer takes from _lines is not given again.
    assert next(reader._lines) == "y\n"
    assert await anext(iterator) == "z\n"
    assert reader.reads == 1
    with pytest.raises(StopAsyncIteration):
        await anext(iterator)
    # Not exhausted for good, like a file: a later step reads again.
    reader.chunks.append(["w\n"])
    assert await anext(iterator) == "w\n"


async def test_lines_replaced_between_steps() -> None:
    # seek() drops _lines, a fill makes a new one: every step reads the slot.
    reader = SlotReader([])
    reader._lines = iter(["a\n", "b\n"])
    iterator = _lines.LineIterator(reader, reader._readline)
    assert await anext(iterator) == "a\n"
    reader._lines = iter(["new\n"])
    assert await anext(iterator) == "new\n"
    reader._lines = None
    assert await anext(iterator, "end") == "end"


async def test_readline_error_propagates_and_iteration_goes_on() -> None:
    reader = SlotReader([["a\n"]], fail=OSError(5, "EIO"))
    iterator = _lines.LineIterator(reader, reader._readline)
    with pytest.raises(OSError, match="EIO"):
        await anext(iterator)
    reader.fail = None
    assert await anext(iterator) == "a\n"


async def test_errors_of_lines_propagate() -> None:
    class Broken:
        def __next__(self) -> str:
            raise ValueError("broken iterator")

        def __iter__(self) -> Broken:
            return self

    reader = SlotReader([])
    iterator = _lines.LineIterator(reader, reader._readline)
    reader._lines = Broken()  # type: ignore[assignment]
    with pytest.raises(ValueError, match="broken iterator"):
        await anext(iterator)
    reader._lines = 5  # type: ignore[assignment]
    with pytest.raises(TypeError, match="not an iterator"):
        await anext(iterator)
    del reader._lines
    with pytest.raises(AttributeError):
        await anext(iterator)


async def test_cancelled_while_reading() -> None:
    reader = SlotReader([["a\n"]])
    iterator = _lines.LineIterator(reader, reader._readline)
    task = asyncio.ensure_future(anext(iterator))
    await asyncio.sleep(0)   # the step is in readline(), suspended
    with pytest.raises(RuntimeError, match="already waiting"):
        iterator.__anext__()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The read was cancelled inside readline(): nothing was consumed.
    assert reader.chunks == [["a\n"]]
    assert await anext(iterator) == "a\n"


async def test_throw_caught_by_readline_returns_its_line() -> None:
    class Stubborn(SlotReader):
        __slots__ = ()

        async def _readline(self) -> str:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                return "despite\n"
            return "slept\n"

    reader = Stubborn([])
    iterator = _lines.LineIterator(reader, reader._readline)
    assert isinstance(iterator.send(None), asyncio.Future)   # sleep(10) waits on it
    with pytest.raises(StopIteration) as info:
        iterator.throw(asyncio.CancelledError())
    assert info.value.value == "despite\n"
    # Done: the next step starts afresh, a new read.
    assert iterator.__anext__() is iterator
    assert isinstance(iterator.send(None), asyncio.Future)
    iterator.close()


def test_send_and_next_outside_a_loop() -> None:
    # Driven by hand like a coroutine: StopIteration carries the line.
    reader = SlotReader([])
    reader._lines = iter([("a", "tuple"), "b\n"])  # type: ignore[list-item]
    iterator = _lines.LineIterator(reader, reader._readline)
    with pytest.raises(StopIteration) as info:
        next(iterator)
    assert info.value.value == ("a", "tuple")
    with pytest.raises(StopIteration) as info:
        iterator.send(None)
    assert info.value.value == "b\n"
    assert iter(iterator) is iterator
    assert iterator.__await__() is iterator


def test_throw_and_close_when_idle() -> None:
    reader = SlotReader([])
    iterator = _lines.LineIterator(reader, reader._readline)
    with pytest.raises(KeyError):
        iterator.throw(KeyError("k"))
    with pytest.raises(KeyError):
        iterator.throw(KeyError, "k")
    with pytest.raises(TypeError):
        iterator.throw(5)
    with pytest.raises(TypeError):
        iterator.throw()
    assert iterator.close() is None


async def test_close_closes_the_pending_read() -> None:
    closed = []

    class Reader(SlotReader):
        __slots__ = ()

        async def _readline(self) -> str:
            try:
                await asyncio.sleep(10)
            finally:
                closed.append(True)
            return "never\n"

    reader = Reader([])
    iterator = _lines.LineIterator(reader, reader._readline)
    assert isinstance(iterator.send(None), asyncio.Future)
    assert closed == []
    iterator.close()
    assert closed == [True]
    iterator.__anext__()   # not waiting any more


def test_constructor_errors() -> None:
    with pytest.raises(TypeError):
        _lines.LineIterator(SlotReader([]))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="callable"):
        _lines.LineIterator(SlotReader([]), 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="keyword"):
        _lines.LineIterator(SlotReader([]), print, extra=1)  # type: ignore[call-arg]


def test_a_cycle_through_the_reader_is_collected() -> None:
    class Owner(SlotReader):
        __slots__ = ("iterator", "__weakref__")

    reader = Owner([])
    reader.iterator = _lines.LineIterator(reader, reader._readline)
    ref = weakref.ref(reader)
    del reader
    gc.collect()
    assert ref() is None


def test_a_stop_iteration_held_elsewhere_is_not_changed() -> None:
    # From 3.12 on the iterator raises its last StopIteration again when
    # nothing else holds it: one kept (or seen with a traceback) by Python
    # code keeps its line.
    reader = SlotReader([])
    reader._lines = iter(["a\n", "b\n", "c\n", "d\n"])
    iterator = _lines.LineIterator(reader, reader._readline)
    with pytest.raises(StopIteration) as first:
        next(iterator)
    with pytest.raises(StopIteration) as second:
        next(iterator)
    assert (first.value.value, second.value.value) == ("a\n", "b\n")
    assert first.value is not second.value
    stops = []
    for _ in range(2):
        try:
            iterator.send(None)
        except StopIteration as exc:
            stops.append(exc)
    assert [stop.value for stop in stops] == ["c\n", "d\n"]
    assert (first.value.value, second.value.value) == ("a\n", "b\n")


@settings(max_examples=300, deadline=None)
@given(
    tail=st.lists(CHARS, max_size=6).map("".join),
    chunk=st.lists(CHARS, max_size=30).map("".join),
    binary=st.booleans(),
)
def test_cut_lf_as_split_lf(tail: str, chunk: str, binary: bool) -> None:
    # The same lines and rest as split_lf, made one at a time; the count
    # left is right before and after each.
    tail = tail.replace("\n", "")
    args: tuple[Any, Any] = (
        (tail.encode(), chunk.encode()) if binary else (tail, chunk)
    )
    *lines, rest = _lines.split_lf(*args)
    cutter, got_rest = _lines.cut_lf(*args)
    assert got_rest == rest
    if not lines:
        assert cutter is None
        assert rest == args[0] + args[1]
        return
    got = []
    while True:
        assert operator.length_hint(cutter) == len(lines) - len(got)
        line = next(cutter, None)
        if line is None:
            break
        got.append(line)
    assert got == lines
    assert iter(cutter) is cutter
    assert next(cutter, None) is None   # stays exhausted


def test_cut_lf_keeps_only_what_is_left() -> None:
    # Each line is a new object; the chunk is let go with the last line.
    chunk = "".join(f"line {i}\n" for i in range(100)) + "rest"
    cutter, rest = _lines.cut_lf("", chunk)
    before = sys.getrefcount(chunk)
    lines = list(cutter)
    assert sys.getrefcount(chunk) == before - 1
    assert lines == chunk.splitlines(True)[:-1] and rest == "rest"


@pytest.mark.parametrize("args", [("", b"x\n"), (b"", "x\n"), (1, "x"), ("x",)])
def test_cut_lf_argument_errors(args: tuple[Any, ...]) -> None:
    with pytest.raises(TypeError):
        _lines.cut_lf(*args)


def step_now(iterator: Any) -> Any:
    """One step of ``async for`` that must complete without suspending."""
    awaitable = iterator.__anext__()
    with pytest.raises(StopIteration) as stop:
        awaitable.send(None)
    return stop.value.value


@settings(max_examples=200, deadline=None)
@given(
    tail=st.lists(CHARS, max_size=6).map("".join),
    chunk=st.lists(CHARS, max_size=30).map("".join),
    binary=st.booleans(),
    takers=st.lists(st.booleans(), max_size=40),
)
def test_iterator_and_next_share_a_cutter(
    tail: str, chunk: str, binary: bool, takers: list[bool]
) -> None:
    # The step cuts the reader's cutter itself (not through next()): the
    # iterator and another consumer of _lines, interleaved, get every line
    # once and in order, and the count left stays right.
    tail = tail.replace("\n", "")
    args: tuple[Any, Any] = (tail.encode(), chunk.encode()) if binary else (tail, chunk)
    *lines, _ = _lines.split_lf(*args)
    cutter, _ = _lines.cut_lf(*args)
    if cutter is None:
        return
    reader = SlotReader([])
    reader._lines = cutter
    iterator = _lines.LineIterator(reader, reader._readline)
    got = []
    for by_iterator in takers:
        if len(got) == len(lines):
            break
        got.append(step_now(iterator) if by_iterator else next(cutter))
        assert operator.length_hint(cutter) == len(lines) - len(got)
    got += [step_now(iterator) for _ in range(len(lines) - len(got))]
    assert got == lines
    assert all(type(line) is type(args[1]) for line in got)
    assert reader.reads == 0
    assert next(cutter, None) is None


@pytest.mark.parametrize("kind", [SlotReader, PlainReader])
async def test_iterator_reads_when_the_cutter_is_used_up(kind: Any) -> None:
    # The slot (and the name lookup of a reader without one) hold a cutter:
    # its lines, its prefix first, then the reads.
    reader = kind([["c\n"]])
    reader._lines, rest = _lines.cut_lf(b"<", b"a\nb\nrest")
    assert rest == b"rest"
    iterator = _lines.LineIterator(reader, reader._readline)
    assert await anext(iterator) == b"<a\n"
    assert await anext(iterator) == b"b\n"
    assert await anext(iterator) == "c\n"
    with pytest.raises(StopAsyncIteration):
        await anext(iterator)


@pytest.mark.parametrize("text", [False, True])
def test_iterator_lets_the_chunk_go_with_the_last_line(text: bool) -> None:
    chunk: Any = "".join(f"line {i}\n" for i in range(50)) + "rest"
    if not text:
        chunk = chunk.encode()
    reader = SlotReader([])
    reader._lines, _ = _lines.cut_lf(chunk[:0], chunk)
    iterator = _lines.LineIterator(reader, reader._readline)
    held = sys.getrefcount(chunk)
    lines = [step_now(iterator) for _ in range(49)]
    assert sys.getrefcount(chunk) == held   # a line left: the cutter keeps it
    lines.append(step_now(iterator))
    assert sys.getrefcount(chunk) == held - 1
    assert lines == chunk.splitlines(True)[:-1]


@pytest.mark.parametrize("name", ["split_lf", "cut_lf"])
def test_argument_errors_name_the_function(name: str) -> None:
    function = getattr(_lines, name)
    with pytest.raises(TypeError, match=rf"^{name}\(\) takes 2 arguments \(1 given\)$"):
        function("x")
    with pytest.raises(TypeError, match=rf"^{name}\(\) takes two str or two bytes objects$"):
        function("x", b"y")
