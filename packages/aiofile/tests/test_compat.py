"""Code written for aiofile 3.12 runs here: the names and behaviour its users
rely on beyond the documented file API.

Each test is a small program as an aiofile 3.12 user would write it; what
stays different on purpose is in docs/differences.md, not here.
"""

from __future__ import annotations

import asyncio
import errno
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

import aiofile
import caio
from aiofile import AIOFile, async_open
from aiofile.aio import DEFAULT_CONTEXT_STORE, create_context, get_default_context
from aiofile.utils import unicode_reader

# ---- 4. names -----------------------------------------------------------------


async def test_create_context_becomes_the_default(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    context = create_context(16)
    assert isinstance(context, caio.AsyncioContextBase)
    assert context.max_requests == 16
    assert DEFAULT_CONTEXT_STORE[id(loop)] is context
    assert get_default_context() is context
    async with AIOFile(tmp_path / "a", "w") as afp:
        await afp.write("x")
        assert afp._handle().context is context


def test_default_context_is_released_with_its_loop(tmp_path: Path) -> None:
    async def main() -> Any:
        first = get_default_context()
        assert get_default_context() is first
        assert DEFAULT_CONTEXT_STORE[id(asyncio.get_running_loop())] is first
        async with AIOFile(tmp_path / "b", "w") as afp:
            await afp.write("y")
        return first

    context = asyncio.run(main())
    assert context.closed
    assert all(ctx is not context for ctx in DEFAULT_CONTEXT_STORE.values())


def test_get_default_context_outside_a_running_loop() -> None:
    # aiofile 3.12 took the current event loop, running or not.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        context = get_default_context()
        assert context.loop is loop
        assert get_default_context() is context
        assert loop.run_until_complete(_default_in(loop)) is context
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    assert context.closed


async def _default_in(loop: asyncio.AbstractEventLoop) -> Any:
    assert asyncio.get_running_loop() is loop
    return get_default_context()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "cp1251"])
def test_encode_and_decode_bytes(tmp_path: Path, encoding: str) -> None:
    afp = AIOFile(tmp_path / "c", "w", encoding=encoding)
    text = "текст"
    assert afp.encode_bytes(text) == text.encode(encoding)
    assert afp.decode_bytes(text.encode(encoding)) == text
    with pytest.raises(UnicodeDecodeError):
        AIOFile(tmp_path / "c", "r").decode_bytes(b"\xff\xfe\xfd")


def test_reader_attributes(tmp_path: Path) -> None:
    afp = AIOFile(tmp_path / "r", "r", encoding="latin-1")
    reader = aiofile.Reader(afp, chunk_size=4)
    assert reader.file is afp
    assert reader.encoding == afp.encoding == "iso8859-1"


def test_package_info() -> None:
    assert isinstance(aiofile.package_info, str) and aiofile.package_info
    try:
        summary = metadata.metadata("aiofile")["Summary"]
    except metadata.PackageNotFoundError:
        pytest.skip("aiofile is not installed: imported from a source tree")
    assert aiofile.package_info == summary


TEXT = "a\u00e9\u20ac\U0001f600z" * 3  # 1, 2, 3 and 4 bytes in UTF-8


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 7, 64])
async def test_unicode_reader_never_cuts_a_character(
    tmp_path: Path, context: Any, chunk_size: int,
) -> None:
    path = tmp_path / "u"
    path.write_bytes(TEXT.encode())
    async with AIOFile(path, "r", context=context) as afp:
        offset, parts = 0, []
        while True:
            consumed, text = await unicode_reader(afp, chunk_size, offset)
            if not consumed:
                break
            assert consumed >= chunk_size or offset + consumed == path.stat().st_size
            assert text.encode() == TEXT.encode()[offset:offset + consumed]
            parts.append(text)
            offset += consumed
        assert "".join(parts) == TEXT
        assert await unicode_reader(afp, -1, 0) == (len(TEXT.encode()), TEXT)
        consumed, text = await unicode_reader(afp, 3, 0, encoding="latin-1")
        assert (consumed, text) == (3, TEXT.encode()[:3].decode("latin-1"))


async def test_unicode_reader_character_cut_by_end_of_file(tmp_path: Path) -> None:
    path = tmp_path / "cut"
    path.write_bytes("ab€".encode()[:-1])
    async with AIOFile(path, "r") as afp:
        with pytest.raises(UnicodeDecodeError):
            await unicode_reader(afp, 3, 0)


# ---- 5. behaviour ---------------------------------------------------------------


async def test_reopening_a_closed_file(tmp_path: Path, context: Any) -> None:
    afp = AIOFile(tmp_path / "r", "w", context=context)
    await afp.open()
    await afp.close()
    for attempt in (afp.open, afp.__aenter__):
        with pytest.raises(asyncio.InvalidStateError):
            await attempt()
    with pytest.raises(ValueError):  # the same error, as the built-in files say
        await afp.open()
    assert afp.closed


async def test_closed_wrapper_is_not_reopened(tmp_path: Path) -> None:
    f = await async_open(tmp_path / "w", "w")
    await f.write("x")
    await f.close()
    with pytest.raises(asyncio.InvalidStateError):
        await f


async def test_file_never_opened(tmp_path: Path, context: Any) -> None:
    (tmp_path / "n").write_text("data")
    afp = AIOFile(tmp_path / "n", "r", context=context)
    with pytest.raises(asyncio.InvalidStateError):
        afp.fileno()
    with pytest.raises(asyncio.InvalidStateError):
        await afp.read()
    with pytest.raises(ValueError, match="not open"):
        await afp.read()
    assert await afp.open() is not None  # it can still be opened
    assert await afp.read() == "data"
    await afp.close()


def _context_writing(result: int) -> Any:
    """A caio context whose write reports ``result`` whatever it is asked:
    the misbehaving backend aiofile 3.12 guarded against."""

    class Misreporting(caio.AsyncioContext):  # type: ignore[misc, valid-type]
        async def write(self, payload: Any, fd: Any, offset: int, priority: int = 0) -> int:
            return result

    return Misreporting()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EFBIG])
async def test_negative_write_result_is_an_oserror(tmp_path: Path, code: int) -> None:
    context = _context_writing(-code)
    try:
        async with AIOFile(tmp_path / "neg", "w", context=context) as afp:
            with pytest.raises(OSError) as info:
                await afp.write("data")
            assert info.value.errno == code
            assert info.value.strerror == os.strerror(code)
    finally:
        context.close()


async def test_write_returning_zero(tmp_path: Path) -> None:
    context = _context_writing(0)
    try:
        async with AIOFile(tmp_path / "zero", "wb", context=context) as afp:
            with pytest.raises(RuntimeError) as info:
                await afp.write(b"data")
            assert isinstance(info.value, OSError)
            assert info.value.args[0] == "Write operation returned 0"
            assert str(info.value) == "Write operation returned 0"
            assert info.value.errno == errno.EIO
    finally:
        context.close()


async def test_wrong_data_type_is_a_value_error_too(tmp_path: Path, context: Any) -> None:
    # aiofile 3.12 raised ValueError here; the built-in files raise TypeError.
    async with AIOFile(tmp_path / "t", "w+", context=context) as text, \
            AIOFile(tmp_path / "b", "w+b", context=context) as binary:
        calls = [
            text.write(b"bytes"), binary.write("str"), binary.write_bytes("str"),  # type: ignore[arg-type]
            aiofile.Writer(text)(b"bytes"), aiofile.Writer(binary)("str"),
        ]
        for call in calls:
            with pytest.raises(ValueError) as info:
                await call
            assert isinstance(info.value, TypeError)
    async with async_open(tmp_path / "t", "a") as f:
        with pytest.raises(ValueError):
            await f.write(b"bytes")  # type: ignore[arg-type]
    async with async_open(tmp_path / "b", "ab") as f:
        with pytest.raises(ValueError):
            await f.write("str")  # type: ignore[arg-type]
