"""aiofile.tempfile against tempfile, on every backend (``fs_context``)."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest

from aiofile import AIOFile, BinaryFileWrapper, TextFileWrapper, async_open
from aiofile import tempfile as atf


def names_in(path: Path) -> list[str]:
    return sorted(os.listdir(path))


async def test_temporary_file_has_no_name_in_its_directory(tmp_path: Path, fs_context: Any) -> None:
    async with atf.TemporaryFile(dir=tmp_path) as f:
        assert isinstance(f, BinaryFileWrapper) and f.mode == "wb+"
        assert names_in(tmp_path) == []
        assert await f.write(b"hello world") == 11
        f.seek(6)
        assert await f.read() == b"world"
        st = os.fstat(f.fileno())
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_nlink == 0  # nameless
        assert not os.get_inheritable(f.fileno())
    assert f.closed
    assert names_in(tmp_path) == []


@pytest.mark.parametrize("mode", ["w+", "w+t", "a+", "wb", "x+b"])
async def test_temporary_file_modes(tmp_path: Path, fs_context: Any, mode: str) -> None:
    with tempfile.TemporaryFile(mode, dir=tmp_path) as ref:
        text = "b" not in mode
        data: Any = "é\nline\n" if text else b"\x00\xff bytes"
        ref.write(data)
    async with atf.TemporaryFile(mode, dir=tmp_path) as f:
        assert isinstance(f, TextFileWrapper if text else BinaryFileWrapper)
        assert f.mode == str(AIOFile("x", mode).mode)
        assert await f.write(data) == len(data)  # characters in text mode
        if "+" in mode:
            f.seek(0)
            assert await f.read() == data
        else:
            with pytest.raises(OSError):  # io.UnsupportedOperation
                await f.read()


async def test_temporary_file_await_form(tmp_path: Path, fs_context: Any) -> None:
    f = await atf.TemporaryFile("w+", dir=tmp_path, encoding="utf-16")
    try:
        await f.write("ab")
        f.seek(0)
        assert await f.read() == "ab"
        assert os.fstat(f.fileno()).st_size == len("ab".encode("utf-16"))
    finally:
        await f.close()


async def test_temporary_file_without_o_tmpfile(
    tmp_path: Path, fs_context: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The other way tempfile makes one: create with a name, unlink at once.
    monkeypatch.setattr(atf, "_tmpfile_works", False)
    async with atf.TemporaryFile(dir=tmp_path, prefix="p") as f:
        assert names_in(tmp_path) == []
        assert os.fstat(f.fileno()).st_nlink == 0
        await f.write(b"x")


@pytest.mark.parametrize("kwargs", [
    {"mode": "rw"}, {"mode": "wb", "encoding": "utf-8"}, {"mode": "w+b", "newline": "\n"},
    {"prefix": b"x", "suffix": "y"}, {"dir": "/nonexistent/dir"}, {"prefix": "a", "dir": b"/tmp"},
])
@pytest.mark.parametrize("name", ["TemporaryFile", "NamedTemporaryFile"])
async def test_bad_arguments_as_tempfile(
    fs_context: Any, kwargs: dict[str, Any], name: str,
) -> None:
    with pytest.raises(Exception) as expected:
        with getattr(tempfile, name)(**kwargs):
            pass
    with pytest.raises(type(expected.value)) as got:
        async with getattr(atf, name)(**kwargs):
            pass
    if isinstance(expected.value, OSError):
        assert got.value.errno == expected.value.errno  # type: ignore[attr-defined]


async def test_not_a_directory(tmp_path: Path, fs_context: Any) -> None:
    (tmp_path / "file").touch()
    for name in ("TemporaryFile", "NamedTemporaryFile"):
        with pytest.raises(OSError) as expected:
            with getattr(tempfile, name)(dir=tmp_path / "file"):
                pass
        with pytest.raises(OSError) as got:
            async with getattr(atf, name)(dir=tmp_path / "file"):
                pass
        assert got.value.errno == expected.value.errno == errno.ENOTDIR


async def test_named_temporary_file(tmp_path: Path, fs_context: Any) -> None:
    with tempfile.NamedTemporaryFile(prefix="pre", suffix=".s", dir=tmp_path) as ref:
        ref_mode = os.stat(ref.name).st_mode
        ref_name = os.path.basename(ref.name)
    async with atf.NamedTemporaryFile(prefix="pre", suffix=".s", dir=tmp_path) as f:
        name = os.path.basename(f.name)
        assert f.name == os.path.join(tmp_path, name)
        assert name.startswith("pre") and name.endswith(".s")
        assert len(name) == len(ref_name)
        assert os.stat(f.name).st_mode == ref_mode
        await f.write(b"visible")
        await f.flush()
        assert Path(f.name).read_bytes() == b"visible"
    assert names_in(tmp_path) == []


async def test_named_temporary_file_bytes_and_default_dir(fs_context: Any) -> None:
    async with atf.NamedTemporaryFile("w", prefix=b"bytes") as f:
        assert isinstance(f.name, bytes)
        assert os.path.dirname(f.name) == tempfile.gettempdirb()
        assert os.path.basename(f.name).startswith(b"bytes")
        assert os.path.exists(f.name)
    assert not os.path.exists(f.name)


async def test_named_delete_rules(tmp_path: Path, fs_context: Any) -> None:
    # delete=True: gone once closed, even before the block ends.
    async with atf.NamedTemporaryFile(dir=tmp_path) as f:
        await f.close()
        assert not os.path.exists(f.name)
    # delete_on_close=False: survives close, gone at the end of the block.
    async with atf.NamedTemporaryFile(dir=tmp_path, delete_on_close=False) as f:
        await f.write(b"kept")
        await f.close()
        assert Path(f.name).read_bytes() == b"kept"
    assert not os.path.exists(f.name)
    # delete=False: stays.
    async with atf.NamedTemporaryFile("w", dir=tmp_path, delete=False) as f:
        await f.write("stays")
    assert Path(f.name).read_text() == "stays"
    # await form: removed on close.
    g = await atf.NamedTemporaryFile(dir=tmp_path)
    assert os.path.exists(g.name)
    await g.close()
    assert not os.path.exists(g.name)
    assert names_in(tmp_path) == [os.path.basename(f.name)]


async def test_temporary_file_is_aiofiles_file(tmp_path: Path, fs_context: Any) -> None:
    # The same operations as a file from async_open, line iteration included.
    async with atf.NamedTemporaryFile("w+", dir=tmp_path) as f:
        await f.write("one\ntwo\n")
        f.seek(0)
        assert [line async for line in f] == ["one\n", "two\n"]
        async with async_open(f.name, "r") as again:
            assert await again.read() == "one\ntwo\n"


# --- SpooledTemporaryFile ------------------------------------------------------


async def test_spooled_rolls_over_where_tempfile_does(tmp_path: Path, fs_context: Any) -> None:
    writes = [b"12345", b"", b"67890", b"x", b"more than ten bytes"]
    ref = tempfile.SpooledTemporaryFile(max_size=11, dir=tmp_path)
    async with atf.SpooledTemporaryFile(max_size=11, dir=tmp_path) as f:
        for data in writes:
            assert await f.write(data) == ref.write(data)
            assert f._rolled == ref._rolled
            assert f.tell() == ref.tell()
            assert names_in(tmp_path) == []
        assert f.name is not None and f.fileno() >= 0
        f.seek(3)
        ref.seek(3)
        assert await f.read() == ref.read()
        f.seek(0)
        assert await f.read(4) == b"1234"
        assert await f.truncate(8) == 8
        f.seek(0)
        assert await f.read() == b"12345678"
    ref.close()
    assert f.closed


async def test_spooled_in_memory(fs_context: Any) -> None:
    async with atf.SpooledTemporaryFile(mode="w+") as f:
        await f.writelines(["a\n", "ü\n", "c"])
        assert not f._rolled and f.name is None and f.mode == "w+"
        with pytest.raises(OSError):  # io.UnsupportedOperation: nothing to give yet
            f.fileno()
        f.seek(0)
        assert await f.readline() == "a\n"
        assert await f.readlines() == ["ü\n", "c"]
        await f.flush()
        await f.rollover()
        assert f._rolled
        f.seek(0)
        assert await f.read() == "a\nü\nc"
        assert os.fstat(f.fileno()).st_size == len("a\nü\nc".encode())
    assert f.closed


async def test_spooled_text_rollover_keeps_position(tmp_path: Path, fs_context: Any) -> None:
    async with atf.SpooledTemporaryFile(4, "w+", dir=tmp_path) as f:
        await f.write("é")
        assert not f._rolled
        await f.write("abcd")
        assert f._rolled and f.tell() == len("éabcd".encode())
        await f.write("!")
        f.seek(0)
        assert await f.read() == "éabcd!"


# --- TemporaryDirectory -----------------------------------------------------------


async def test_temporary_directory(tmp_path: Path, fs_context: Any) -> None:
    with tempfile.TemporaryDirectory(prefix="p", dir=tmp_path) as ref:
        ref_mode = os.stat(ref).st_mode
    async with atf.TemporaryDirectory(prefix="p", suffix="s", dir=tmp_path) as d:
        assert isinstance(d, str) and os.path.dirname(d) == str(tmp_path)
        assert os.path.basename(d).startswith("p") and d.endswith("s")
        assert os.stat(d).st_mode == ref_mode
        os.makedirs(os.path.join(d, "a", "b"))
        Path(d, "a", "b", "f").write_bytes(b"x")
        os.chmod(os.path.join(d, "a", "b", "f"), 0o400)
    assert names_in(tmp_path) == []


async def test_temporary_directory_bytes_default_and_kept(fs_context: Any) -> None:
    async with atf.TemporaryDirectory(suffix=b"-b") as d:
        assert isinstance(d, bytes) and os.path.dirname(d) == tempfile.gettempdirb()
    assert not os.path.exists(d)
    async with atf.TemporaryDirectory(delete=False) as kept:
        pass
    assert os.path.isdir(kept)
    os.rmdir(kept)
    made = atf.TemporaryDirectory()
    name = await made
    assert os.path.isdir(name) and made.name == name
    await made.cleanup()
    assert not os.path.exists(name)


async def test_temporary_directory_cleanup_errors(tmp_path: Path, fs_context: Any) -> None:
    # Removed meanwhile: nothing left to do, as with tempfile.
    async with atf.TemporaryDirectory(dir=tmp_path) as d:
        os.rmdir(d)
    with pytest.raises(OSError) as expected:
        with tempfile.TemporaryDirectory(dir=tmp_path / "missing"):
            pass
    with pytest.raises(type(expected.value)):
        async with atf.TemporaryDirectory(dir=tmp_path / "missing"):
            pass
    # A directory replaced by a link under us: rmtree refuses to follow it.
    target = tmp_path / "target"
    target.mkdir()
    for ignore in (False, True):
        outcomes = []
        for module in (tempfile, atf):
            try:
                async with _either(module.TemporaryDirectory(
                    dir=tmp_path, ignore_cleanup_errors=ignore,
                )) as d:
                    os.rmdir(d)
                    os.symlink(target, d)
            except OSError as exc:
                outcomes.append(type(exc))
            else:
                outcomes.append(None)
            os.unlink(d)
        assert outcomes[0] == outcomes[1] == (None if ignore else OSError)
    assert names_in(tmp_path) == ["target"]


class _either:
    """``async with`` over a sync or an async context manager."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager

    async def __aenter__(self) -> Any:
        if hasattr(self.manager, "__aenter__"):
            return await self.manager.__aenter__()
        return self.manager.__enter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        if hasattr(self.manager, "__aexit__"):
            await self.manager.__aexit__(*exc_info)
        else:
            self.manager.__exit__(*exc_info)


async def test_clone_of_a_named_temporary_file_does_not_remove_it(
    tmp_path: Path, fs_context: Any,
) -> None:
    from aiofile import clone

    async with atf.NamedTemporaryFile(dir=tmp_path) as f:
        await f.write(b"shared")
        async with clone(f) as g:
            assert await g.read() == b"shared"
        assert os.path.exists(f.name)  # closing the clone left it
    assert names_in(tmp_path) == []
