"""The file wrappers against the built-in file objects: the same calls give
the same results and raise the same errors (issue 13's file-object parity).

Every test that takes ``context`` runs on each importable caio backend and
on the default context.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import caio
from aiofile import AIOFile, BinaryFileWrapper, TextFileWrapper, async_open, clone

NEWLINES = [None, "", "\n", "\r", "\r\n"]
# Every kind of line ending, one straddling the others, non-ASCII text.
MIXED = "one\r\ntwo\rthree\nfour\r\r\nfive\n\rsix é€\r\n\r\n\n\rlast"


def builtin_type(exc: BaseException) -> type[BaseException]:
    """The first built-in class of ``exc``: aiofile's own errors subclass
    the built-in ones (NotOpenError is a ValueError)."""
    return next(
        klass for klass in type(exc).__mro__
        if klass is io.UnsupportedOperation or klass.__module__ == "builtins"
    )


def outcome(call: Callable[[], Any]) -> Any:
    """What ``call`` returns, or the built-in type of what it raises."""
    try:
        return call()
    except Exception as exc:
        return builtin_type(exc)


async def async_outcome(call: Callable[[], Any]) -> Any:
    """What awaiting ``call()`` returns, or the built-in type of what it raises."""
    try:
        return await call()
    except Exception as exc:
        return builtin_type(exc)


def write_raw(path: Path, text: str, encoding: str = "utf-8") -> None:
    path.write_bytes(text.encode(encoding))


# --- newline= -------------------------------------------------------------------


@pytest.mark.parametrize("newline", NEWLINES)
async def test_newline_lines_as_open(tmp_path: Path, context: Any, newline: str | None) -> None:
    path = tmp_path / "mixed"
    write_raw(path, MIXED)
    with open(path, newline=newline, encoding="utf-8") as fp:
        lines = list(fp)
        fp.seek(0)
        whole = fp.read()
    async with async_open(path, newline=newline, context=context) as f:
        assert [line async for line in f] == lines
    async with async_open(path, newline=newline, context=context) as f:
        assert await f.read() == whole
    async with async_open(path, newline=newline, context=context) as f:
        assert await f.readlines() == lines
    async with async_open(path, newline=newline, context=context) as f:
        got = []
        while line := await f.readline():
            got.append(line)
        assert got == lines
        assert f.tell() == path.stat().st_size


@pytest.mark.parametrize("newline", NEWLINES)
@pytest.mark.parametrize("size", [1, 2, 3, 5])
async def test_newline_sized_reads_as_open(
    tmp_path: Path, context: Any, newline: str | None, size: int,
) -> None:
    path = tmp_path / "mixed"
    write_raw(path, MIXED)
    for method in ("read", "readline"):
        with open(path, newline=newline, encoding="utf-8") as fp:
            expected = list(iter(lambda: getattr(fp, method)(size), ""))  # noqa: B023
        async with async_open(path, newline=newline, context=context) as f:
            got = []
            while part := await getattr(f, method)(size):
                got.append(part)
        assert got == expected, method


@pytest.mark.parametrize("newline", NEWLINES)
async def test_newline_write_as_open(tmp_path: Path, context: Any, newline: str | None) -> None:
    text = "a\nb\r\nc\rd\n\n"
    with open(tmp_path / "builtin", "w", newline=newline, encoding="utf-8") as fp:
        assert fp.write(text) == len(text)
        fp.writelines(["x\n", "y"])
    async with async_open(tmp_path / "ours", "w", newline=newline, context=context) as f:
        assert await f.write(text) == len(text)
        await f.writelines(["x\n", "y"])
    assert (tmp_path / "ours").read_bytes() == (tmp_path / "builtin").read_bytes()


async def test_newline_default_keeps_aiofile_behaviour(tmp_path: Path, context: Any) -> None:
    # Before newline= existed, only "\n" ended a line and nothing was
    # translated: the default still does that ("\n" given to open).
    path = tmp_path / "mixed"
    write_raw(path, MIXED)
    with open(path, newline="\n", encoding="utf-8") as fp:
        expected = list(fp)
    async with async_open(path, context=context) as f:
        assert [line async for line in f] == expected


async def test_newline_iter_chunked_and_clone(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "mixed"
    write_raw(path, MIXED * 50)
    with open(path, encoding="utf-8") as fp:  # newline=None
        expected = fp.read()
    async with async_open(path, newline=None, context=context) as f:
        first = await f.readline()
        # 7-byte chunks cut many "\r\n" in two.
        rest = "".join([chunk async for chunk in f.iter_chunked(7)])
        assert first + rest == expected
        f.seek(0)
        async with clone(f) as twin:
            assert [line async for line in twin] == expected.splitlines(True)


def test_newline_argument_errors_as_open(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    for newline in ("x", "\n\n", 5, b"\n"):
        assert outcome(lambda: open(path, newline=newline)) is (  # type: ignore[call-overload] # noqa: B023
            outcome(lambda: async_open(path, newline=newline))  # type: ignore[call-overload] # noqa: B023
        )
    assert outcome(lambda: async_open(path, "rb", newline="\r")) is ValueError  # type: ignore[call-overload]
    assert outcome(lambda: open(path, "rb", newline="\r")) is ValueError


FAST = settings(
    max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
BACKEND_MODULES = [
    pytest.param(module, id=module.__name__.rsplit(".", 1)[-1].replace("_asyncio", ""))
    for module in caio.variants_asyncio
]
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(-1, 9)),
        st.tuples(st.just("readline"), st.integers(-1, 9)),
        st.tuples(st.just("readlines"), st.integers(-1, 12)),
        st.tuples(st.just("next"), st.just(0)),
        # One iterator kept across the calls, as `async for` keeps it.
        st.tuples(st.just("iter"), st.just(0)),
    ),
    min_size=1, max_size=12,
)


@pytest.fixture(params=["c", "python-generator", "python-class"])
def line_code(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Line iteration and "\\n" splitting by caio's C module, and by each
    pure Python fallback (a caio without the C module: the async generator
    up to 3.11, the ``__anext__`` class from 3.12)."""
    import aiofile.lines
    import aiofile.readahead
    import aiofile.wrappers

    if request.param == "c":
        if aiofile.readahead._CLineIterator is None:
            pytest.skip("caio._lines is not built")
        return "c"
    monkeypatch.setattr(aiofile.readahead, "_CLineIterator", None)
    monkeypatch.setattr(
        aiofile.readahead, "_ASYNC_GENERATORS_FAST", request.param == "python-generator",
    )
    for module in (aiofile.lines, aiofile.wrappers):
        monkeypatch.setattr(module, "_split_lf_str", aiofile.lines._split_lf_str_py)
    monkeypatch.setattr(aiofile.lines, "_split_lf_bytes", aiofile.lines._split_lf_bytes_py)
    return request.param


@pytest.mark.parametrize("backend", BACKEND_MODULES)
@FAST
@given(
    text=st.lists(st.sampled_from(["a", "é", "\r", "\n", "\r\n", "€"]), max_size=40).map("".join),
    newline=st.sampled_from(NEWLINES),
    encoding=st.sampled_from(["utf-8", "utf-16-le"]),
    chunk_size=st.sampled_from([1, 2, 3, 4, 5, 7, 64]),
    operations=OPERATIONS,
    reseek=st.booleans(),
)
def test_newline_chunk_boundaries_as_open(
    tmp_path: Path, backend: Any, line_code: str, text: str, newline: str | None,
    encoding: str, chunk_size: int, operations: list[tuple[str, int]], reseek: bool,
) -> None:
    """Random reads on random chunk sizes: what open() gives, "\\r\\n" split
    between two chunks included; seek(tell()) after each call (``reseek``)
    changes nothing, so tell() counts the pending data exactly. Line
    iteration, by a new iterator per line (``next``) or one kept across
    the other calls (``iter``), mixes with them as on a built-in file."""
    path = tmp_path / "h"
    write_raw(path, text, encoding)
    expected = []
    with open(path, newline=newline, encoding=encoding) as fp:
        for name, arg in operations:
            if name in ("next", "iter"):
                expected.append(next(fp, ""))
            else:
                expected.append(getattr(fp, name)(arg))

    async def ours() -> list[Any]:
        ctx = backend.AsyncioContext()
        try:
            afp = AIOFile(path, "r", encoding, context=ctx)
            await afp.open()
            f = TextFileWrapper(afp, chunk_size=chunk_size, newline=newline)
            got: list[Any] = []
            kept = aiter(f)
            for name, arg in operations:
                if name == "next":
                    got.append(await anext(aiter(f), ""))
                elif name == "iter":
                    got.append(await anext(kept, ""))
                else:
                    got.append(await getattr(f, name)(arg))
                if reseek:
                    f.seek(f.tell())
            await f.close()
            return got
        finally:
            ctx.close()

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(asyncio.wait_for(ours(), 10)) == expected
    finally:
        # The pure Python fallback's async generators left at a line.
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


# --- errors= --------------------------------------------------------------------------

BAD_UTF8 = b"ok \xff\xfe and \xc3 then \xe2\x82\xac\n"


@pytest.mark.parametrize("errors", ["replace", "ignore", "surrogateescape", "backslashreplace"])
async def test_errors_read_as_open(tmp_path: Path, context: Any, errors: str) -> None:
    path = tmp_path / "bad"
    path.write_bytes(BAD_UTF8 * 3)
    with open(path, encoding="utf-8", errors=errors) as fp:
        expected = fp.read()
    async with async_open(path, errors=errors, context=context) as f:
        assert f.errors == errors
        assert await f.read() == expected
    async with async_open(path, errors=errors, context=context) as f:
        assert [line async for line in f] == expected.splitlines(True)


async def test_errors_strict_by_default(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "bad"
    path.write_bytes(BAD_UTF8)
    with open(path, encoding="utf-8") as fp:
        assert outcome(fp.read) is UnicodeDecodeError
    async with async_open(path, context=context) as f:
        assert f.errors == "strict"
        assert await async_outcome(f.read) is UnicodeDecodeError


@pytest.mark.parametrize("errors", [None, "replace", "xmlcharrefreplace"])
async def test_errors_write_as_open(tmp_path: Path, context: Any, errors: str | None) -> None:
    text = "plain ü € 漢\n"
    with open(tmp_path / "builtin", "w", encoding="ascii", errors=errors) as fp:
        builtin = outcome(lambda: fp.write(text))
    async with async_open(
        tmp_path / "ours", "w", encoding="ascii", errors=errors, context=context,
    ) as f:
        ours = await async_outcome(lambda: f.write(text))
    assert ours == builtin
    assert (tmp_path / "ours").read_bytes() == (tmp_path / "builtin").read_bytes()


def test_errors_argument_errors(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    assert outcome(lambda: open(path, "rb", errors="strict")) is ValueError
    assert outcome(lambda: async_open(path, "rb", errors="strict")) is ValueError  # type: ignore[call-overload]
    assert outcome(lambda: open(path, errors=5)) is TypeError  # type: ignore[call-overload]
    assert outcome(lambda: async_open(path, errors=5)) is TypeError  # type: ignore[call-overload]
    # The built-in open finds an unknown handler at the first decode; here
    # async_open does.
    assert outcome(lambda: async_open(path, errors="no-such-handler")) is LookupError


# --- readlines, writelines --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["r", "rb"])
@pytest.mark.parametrize("hint", [None, -1, 0, 1, 4, 5, 6, 9, 10, 11, 1000])
async def test_readlines_hint_as_open(tmp_path: Path, context: Any, mode: str, hint: Any) -> None:
    path = tmp_path / "lines"
    path.write_text("abcd\n" * 5 + "tail")
    with open(path, mode) as fp:
        fp.readline()
        expected = fp.readlines(hint)
        after = fp.read()
    async with async_open(path, mode, context=context) as f:
        await f.readline()
        assert await f.readlines(hint) == expected
        assert await f.read() == after


@pytest.mark.parametrize("mode", ["w", "wb"])
async def test_writelines_as_open(tmp_path: Path, context: Any, mode: str) -> None:
    conv: Any = (lambda s: s.encode()) if "b" in mode else (lambda s: s)
    lines = [conv(s) for s in ("one\n", "", "two", "\nthree\n")]
    with open(tmp_path / "builtin", mode) as fp:
        fp.writelines(iter(lines))
    async with async_open(tmp_path / "ours", mode, context=context) as f:
        await f.writelines(iter(lines))
        assert f.tell() == (tmp_path / "builtin").stat().st_size
    assert (tmp_path / "ours").read_bytes() == (tmp_path / "builtin").read_bytes()


async def test_writelines_binary_takes_buffers(tmp_path: Path, context: Any) -> None:
    parts = [b"ab", bytearray(b"cd"), memoryview(b"ef")]
    async with async_open(tmp_path / "b", "wb", context=context) as f:
        await f.writelines(parts)
    assert (tmp_path / "b").read_bytes() == b"abcdef"


@pytest.mark.parametrize(("mode", "lines"), [
    ("w", ["ok", b"bytes"]), ("wb", [b"ok", "str"]),   # a wrong item
    ("r", ["x"]), ("rb", [b"x"]),                       # not writable
    ("r", []), ("rb", []),                              # nothing to write: no error
])
async def test_writelines_errors_as_open(
    tmp_path: Path, context: Any, mode: str, lines: list[Any],
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    with open(path, mode) as fp:
        expected = outcome(lambda: fp.writelines(lines))
    async with async_open(path, mode, context=context) as f:
        assert await async_outcome(lambda: f.writelines(lines)) == expected
        if "w" in mode:
            assert await f.writelines(["abc" if mode == "w" else b"abc"]) is None
    with open(path, mode) as fp:
        fp.close()
        closed = outcome(lambda: fp.writelines(lines))
    f = await async_open(path, mode, context=context)
    await f.close()
    assert closed is ValueError
    assert await async_outcome(lambda: f.writelines(lines)) is ValueError


# --- truncate -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["w+", "wb+"])
async def test_truncate_as_open(tmp_path: Path, context: Any, mode: str) -> None:
    conv: Any = (lambda s: s.encode()) if "b" in mode else (lambda s: s)

    def builtin() -> list[Any]:
        with open(tmp_path / "builtin", mode) as fp:
            fp.write(conv("0123456789"))
            fp.seek(4)
            # (Not after a read: the built-in text file's truncate() then
            # cuts where its buffer ends, not at tell().)
            got = [fp.truncate(), fp.tell(), fp.read(2)]
            got += [fp.truncate(3), fp.tell(), fp.truncate(20), fp.tell()]
            fp.seek(0)
            got.append(fp.read())
            got.append(outcome(lambda: fp.truncate(-1)))
            got.append(outcome(lambda: fp.truncate("1")))
        return got

    expected = builtin()
    async with async_open(tmp_path / "ours", mode, context=context) as f:
        await f.write(conv("0123456789"))
        f.seek(4)
        got = [await f.truncate(), f.tell(), await f.read(2)]
        got += [await f.truncate(3), f.tell(), await f.truncate(20), f.tell()]
        f.seek(0)
        got.append(await f.read())
        got.append(await async_outcome(lambda: f.truncate(-1)))
        got.append(await async_outcome(lambda: f.truncate("1")))  # type: ignore[arg-type]
    assert got == expected
    assert (tmp_path / "ours").read_bytes() == (tmp_path / "builtin").read_bytes()


@pytest.mark.parametrize("mode", ["r+", "rb+"])
async def test_truncate_after_read_at_tell(tmp_path: Path, context: Any, mode: str) -> None:
    # What the built-in binary file does (and documents for both modes):
    # the read-ahead does not move the cut.
    path = tmp_path / "f"
    path.write_bytes(b"0123456789\n" * 1000)
    with open(path, "rb+") as fp:
        fp.read(4)
        expected = (fp.truncate(), fp.tell(), fp.read(), fp.readline())
    path.write_bytes(b"0123456789\n" * 1000)
    async with async_open(path, mode, context=context) as f:
        assert await f.readline() and await f.readline()
        f.seek(4)
        got = (await f.truncate(), f.tell(), await f.read(), await f.readline())
    if "b" not in mode:
        got = (*got[:2], *(part.encode() for part in got[2:]))
    assert got == expected
    assert path.stat().st_size == 4


@pytest.mark.parametrize("mode", ["r", "rb"])
async def test_truncate_read_only_and_closed_as_open(
    tmp_path: Path, context: Any, mode: str,
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"data")
    with open(path, mode) as fp:
        assert outcome(fp.truncate) is io.UnsupportedOperation
    async with async_open(path, mode, context=context) as f:
        assert await async_outcome(f.truncate) is io.UnsupportedOperation
    assert await async_outcome(f.truncate) is ValueError
    assert path.read_bytes() == b"data"


# --- readable, writable, seekable, isatty ----------------------------------------------


@pytest.mark.parametrize("mode", ["r", "rb", "w", "wb", "a", "ab", "r+", "rb+", "x", "xb+"])
async def test_mode_queries_as_open(tmp_path: Path, context: Any, mode: str) -> None:
    names = ("readable", "writable", "seekable", "isatty")
    path = tmp_path / "f"
    if "x" not in mode:
        path.write_bytes(b"")
    with open(path, mode) as fp:
        expected = [getattr(fp, name)() for name in names]
    # Closed, the buffered files answer False to the half they lack
    # (IOBase's default) and raise ValueError for the other: the raw file,
    # as here, raises for all four.
    raw = open(path, "rb", buffering=0)
    raw.close()
    closed = [outcome(getattr(raw, name)) for name in names]
    if "x" in mode:
        path.unlink()
    async with async_open(path, mode, context=context) as f:
        assert [getattr(f, name)() for name in names] == expected
    assert [outcome(getattr(f, name)) for name in names] == closed == [ValueError] * 4


async def test_pipe_and_terminal_as_open(context: Any) -> None:
    read_end, write_end = os.pipe()
    with open(read_end, "rb", closefd=False) as fp:
        expected = (fp.seekable(), fp.isatty())
    async with async_open(read_end, "rb", context=context) as f:
        assert (f.seekable(), f.isatty()) == expected == (False, False)
    os.close(write_end)
    leader, follower = os.openpty()
    try:
        with open(follower, "rb", closefd=False) as fp:
            expected = (fp.isatty(), fp.seekable())
        async with async_open(follower, "rb", closefd=False, context=context) as f:
            assert (f.isatty(), f.seekable()) == expected
            assert f.isatty()
    finally:
        os.close(leader)
        os.close(follower)


# --- peek -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["rb", "rb+"])
async def test_peek_as_open(tmp_path: Path, context: Any, mode: str) -> None:
    data = bytes(range(256)) * 100
    path = tmp_path / "f"
    path.write_bytes(data)
    async with async_open(path, mode, context=context) as f:
        with open(path, mode) as fp:
            for size in (0, 1, 10, 100_000):
                builtin, ours = fp.peek(size), await f.peek(size)
                assert fp.tell() == f.tell()
                rest = data[f.tell():]
                # Both: the next bytes, at least one; how many is what each
                # has read ahead.
                assert ours and builtin and rest.startswith(ours) and rest.startswith(builtin)
                assert fp.read(7) == await f.read(7)
            assert await f.readline() == fp.readline()
            fp.seek(0, os.SEEK_END)
            f.seek(0, os.SEEK_END)
            assert await f.peek() == fp.peek() == b""
            assert await f.read() == fp.read() == b""
    assert await async_outcome(f.peek) is ValueError


async def test_peek_write_only(tmp_path: Path, context: Any) -> None:
    # The built-in write-only file has no peek at all (AttributeError):
    # here it is there and says why it cannot.
    async with async_open(tmp_path / "w", "wb", context=context) as f:
        assert await async_outcome(f.peek) is io.UnsupportedOperation


# --- read and write in the wrong mode -------------------------------------------------------


@pytest.mark.parametrize(("mode", "call"), [
    ("r", lambda f: f.write("x")), ("rb", lambda f: f.write(b"x")),
    ("w", lambda f: f.read()), ("wb", lambda f: f.read(1)),
    ("w", lambda f: f.readline()), ("wb", lambda f: f.readlines()),
    ("a", lambda f: f.readlines(3)),
])
async def test_wrong_mode_as_open(tmp_path: Path, context: Any, mode: str, call: Any) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"content\n")
    with open(path, mode) as fp:
        expected = outcome(lambda: call(fp))
    assert expected is io.UnsupportedOperation
    path.write_bytes(b"content\n")
    async with async_open(path, mode, context=context) as f:
        assert await async_outcome(lambda: call(f)) is expected


# --- descriptors, closefd, opener ------------------------------------------------------------


@pytest.mark.parametrize("closefd", [True, False])
async def test_descriptor_as_open(tmp_path: Path, context: Any, closefd: bool) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    fd = os.open(path, os.O_RDONLY)
    try:
        async with async_open(fd, "rb", closefd=closefd, context=context) as f:
            assert isinstance(f, BinaryFileWrapper)
            assert f.name == fd
            assert await f.read() == b"0123456789"
        assert isinstance(outcome(lambda: os.fstat(fd)), os.stat_result) is not closefd
    finally:
        if not closefd:
            os.close(fd)


async def test_descriptor_append_and_text(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "f"
    path.write_text("start\n")
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    async with async_open(fd, "a+", context=context) as f:
        assert f.tell() == 6
        await f.write("more\n")
        f.seek(0)
        assert await f.read() == "start\nmore\n"


async def test_descriptor_errors_as_open(tmp_path: Path, context: Any) -> None:
    assert outcome(lambda: open(-1)) is ValueError
    assert outcome(lambda: async_open(-1)) is ValueError
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        assert outcome(lambda: open(fd, closefd=False)) is IsADirectoryError
        assert await async_outcome(lambda: async_open(fd, closefd=False)) is IsADirectoryError
    finally:
        os.close(fd)
    # A closed descriptor: EBADF from both.
    with pytest.raises(OSError) as builtin:
        open(fd, closefd=False)
    with pytest.raises(OSError) as ours:
        await async_open(fd, closefd=False, context=context)
    assert ours.value.errno == builtin.value.errno == errno.EBADF
    path = tmp_path / "f"
    path.write_bytes(b"")
    assert outcome(lambda: open(path, closefd=False)) is ValueError
    assert outcome(lambda: async_open(path, closefd=False)) is ValueError


@pytest.mark.parametrize("mode", ["r", "w", "a", "x", "rb+", "wb+"])
async def test_opener_as_open(tmp_path: Path, context: Any, mode: str) -> None:
    calls: list[tuple[str, int]] = []

    def opener(name: str, flags: int) -> int:
        calls.append((name, flags))
        return os.open(name, flags, 0o600)

    if "r" in mode:
        (tmp_path / "builtin").write_bytes(b"")
        (tmp_path / "ours").write_bytes(b"")
    with open(tmp_path / "builtin", mode, opener=opener):
        pass
    async with async_open(tmp_path / "ours", mode, opener=opener, context=context) as f:
        assert not os.get_inheritable(f.fileno())
    # The same flags as the built-in open gives its opener.
    flags = calls[0][1]
    assert calls == [(str(tmp_path / "builtin"), flags), (str(tmp_path / "ours"), flags)]
    assert (tmp_path / "ours").stat().st_mode == (tmp_path / "builtin").stat().st_mode


async def test_opener_errors_as_open(tmp_path: Path, context: Any) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    for result in (-1, "3"):
        assert outcome(lambda: open(path, opener=lambda *_: result)) is (  # noqa: B023
            await async_outcome(lambda: async_open(path, opener=lambda *_: result, context=context))  # type: ignore[arg-type, return-value] # noqa: B023
        )
    with open(path, "rb") as fp:
        assert outcome(lambda: async_open(fp, opener=os.open)) is ValueError


async def test_newline_none_tell_counts_bytes_as_read(tmp_path: Path, context: Any) -> None:
    # Whole 64 KiB chunks of translated lines: tell() after each line is
    # the byte offset of the next one in the file, "\r\n" counted as two.
    endings = ["\r\n", "\n", "\r"]
    raw = [f"line {i} {'é' * (i % 5)}{endings[i % 3]}" for i in range(20000)]
    path = tmp_path / "mixed"
    write_raw(path, "".join(raw))
    offsets = []
    position = 0
    for line in raw:
        position += len(line.encode())
        offsets.append(position)
    async with async_open(path, newline=None, context=context) as f:
        for i, line in enumerate(raw[:600]):
            assert await f.readline() == line.rstrip("\r\n") + "\n"
            assert f.tell() == offsets[i]
        f.seek(offsets[9999])
        assert [line async for line in f] == [
            line.rstrip("\r\n") + "\n" for line in raw[10000:]
        ]
