"""aiofile.os and aiofile.os.path against os and os.path, call for call.

Every test takes ``fs_context`` (conftest): it runs once per caio backend
through the context's filesystem methods (where this caio has them) and
once through the executor. Read-only calls run both on one tree; calls
that change the tree run ``os`` on one copy and ``aiofile.os`` on another,
and then both copies must look alike.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiofile import _fs, ospath
from aiofile import os as aos


class P(str):
    """A path relative to the tree's root, made absolute per tree."""


class B(str):
    """The same as bytes."""


class Fd(str):
    """A directory of the tree, as an open descriptor (for dir_fd)."""


def build(root: Path) -> None:
    root.mkdir()
    (root / "f").write_bytes(b"data")
    (root / "g").write_bytes(b"other file")
    (root / "d").mkdir()
    (root / "d" / "inner").write_bytes(b"inside")
    (root / "e").mkdir()
    (root / "l").symlink_to("f")
    (root / "dl").symlink_to("d", target_is_directory=True)
    (root / "broken").symlink_to("nowhere")


def snapshot(root: Path) -> list[tuple[str, str, Any]]:
    """What the tree looks like: each entry's kind, size/target and mode."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                what: Any = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                what = ("dir", stat.S_IMODE(st.st_mode))
            else:
                what = ("file", st.st_size, st.st_nlink, stat.S_IMODE(st.st_mode))
            found.append((os.path.relpath(path, root), *what))
    return sorted(found)


class Tree:
    """Turns P/B/Fd markers into arguments for one tree."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fds: list[int] = []

    def arg(self, value: Any) -> Any:
        if isinstance(value, P):
            return str(self.root / value)
        if isinstance(value, B):
            return os.fsencode(self.root / value)
        if isinstance(value, Fd):
            fd = os.open(self.root / value, os.O_RDONLY | os.O_DIRECTORY)
            self.fds.append(fd)
            return fd
        return value

    def args(
        self, args: tuple[Any, ...], kwargs: dict[str, Any],
    ) -> tuple[list[Any], dict[str, Any]]:
        return [self.arg(a) for a in args], {k: self.arg(v) for k, v in kwargs.items()}

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)

    def relative(self, value: Any) -> Any:
        if isinstance(value, bytes):
            value = os.fsdecode(value)
        if isinstance(value, str):
            return value.replace(str(self.root), "<root>")
        return value


Args = tuple[Any, ...]
Kwargs = dict[str, Any]


def outcome(tree: Tree, function: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
    a, k = tree.args(args, kwargs)
    try:
        return "ok", function(*a, **k)
    except Exception as exc:
        return "error", exc


async def aoutcome(tree: Tree, function: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
    a, k = tree.args(args, kwargs)
    try:
        return "ok", await function(*a, **k)
    except Exception as exc:
        return "error", exc


def assert_same_error(
    got: BaseException, expected: BaseException, tree_got: Tree, tree_expected: Tree,
) -> None:
    assert type(got) is type(expected), (got, expected)
    if isinstance(expected, OSError):
        assert isinstance(got, OSError)
        assert got.errno == expected.errno, (got, expected)
        assert tree_got.relative(got.filename) == tree_expected.relative(expected.filename)
        assert tree_got.relative(got.filename2) == tree_expected.relative(expected.filename2)
        assert tree_got.relative(str(got)) == tree_expected.relative(str(expected))


async def same(
    tmp_path: Path, name: str, *args: Any, module: Any = aos, reference: Any = os, **kwargs: Any,
) -> Any:
    """``module.name`` and ``reference.name`` on one tree: equal results or
    equal errors. Returns the result (or the error)."""
    root = tmp_path / "tree"
    if not root.exists():
        build(root)
    tree = Tree(root)
    try:
        expected = outcome(tree, getattr(reference, name), args, kwargs)
        got = await aoutcome(tree, getattr(module, name), args, kwargs)
    finally:
        tree.close()
    assert got[0] == expected[0], (got, expected)
    if expected[0] == "ok":
        assert got[1] == expected[1]
    else:
        assert_same_error(got[1], expected[1], tree, tree)
    return got[1]


async def same_change(tmp_path: Path, name: str, *args: Any, **kwargs: Any) -> Any:
    """``os.name`` on one copy of the tree, ``aiofile.os.name`` on another:
    same result or error, and the copies look alike afterwards."""
    ours, theirs = Tree(tmp_path / "aio"), Tree(tmp_path / "os")
    build(ours.root)
    build(theirs.root)
    try:
        expected = outcome(theirs, getattr(os, name), args, kwargs)
        got = await aoutcome(ours, getattr(aos, name), args, kwargs)
    finally:
        ours.close()
        theirs.close()
    assert got[0] == expected[0], (got, expected)
    if expected[0] == "ok":
        assert ours.relative(got[1]) == theirs.relative(expected[1])
    else:
        assert_same_error(got[1], expected[1], ours, theirs)
    assert snapshot(ours.root) == snapshot(theirs.root)
    return got[1]


# --- stat and lstat ---------------------------------------------------------------


STAT_CASES = [
    (P("f"),), (P("d"),), (P("l"),), (P("dl"),), (B("f"),), (P("missing"),),
    (P("broken"),), (P("f/child"),), (P("d/missing/deeper"),), ("",), ("a\0b",), (1.5,),
    (P("l"), {"follow_symlinks": False}), (P("broken"), {"follow_symlinks": False}),
    ("inner", {"dir_fd": Fd("d")}), ("missing", {"dir_fd": Fd("d")}),
]


@pytest.mark.parametrize("case", STAT_CASES, ids=repr)
async def test_stat(tmp_path: Path, fs_context: Any, case: tuple[Any, ...]) -> None:
    args, kwargs = (case[:-1], case[-1]) if isinstance(case[-1], dict) else (case, {})
    await same(tmp_path, "stat", *args, **kwargs)
    if "follow_symlinks" not in kwargs:
        await same(tmp_path, "lstat", *args, **kwargs)


async def test_stat_of_descriptors(tmp_path: Path, fs_context: Any) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"12345")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert await aos.stat(fd) == os.stat(fd)
        for kwargs in ({"follow_symlinks": False}, {"dir_fd": fd}):
            with pytest.raises(ValueError) as got:
                await aos.stat(fd, **kwargs)
            with pytest.raises(ValueError) as expected:
                os.stat(fd, **kwargs)
            assert str(got.value) == str(expected.value)
        with pytest.raises(TypeError):
            await aos.lstat(fd)  # type: ignore[arg-type]
    finally:
        os.close(fd)
    with pytest.raises(OSError) as bad:
        await aos.stat(fd)
    assert bad.value.errno == errno.EBADF


async def test_stat_pathlike(tmp_path: Path, fs_context: Any) -> None:
    (tmp_path / "p").write_bytes(b"abc")
    assert await aos.stat(tmp_path / "p") == os.stat(tmp_path / "p")
    assert (await aos.lstat(tmp_path / "p")).st_size == 3


# --- calls that change the tree ----------------------------------------------------


CHANGES = [
    ("rename", P("f"), P("new")), ("rename", P("f"), P("g")), ("rename", P("missing"), P("x")),
    ("rename", P("d"), P("e")), ("rename", P("e"), P("d")), ("rename", P("f"), P("d")),
    ("rename", P("e"), P("f")), ("rename", P("f"), P("nodir/x")), ("rename", B("g"), B("h")),
    ("rename", "inner", "moved", {"src_dir_fd": Fd("d"), "dst_dir_fd": Fd("e")}),
    ("replace", P("f"), P("g")), ("replace", P("e"), P("d")), ("replace", P("missing"), P("g")),
    ("remove", P("f")), ("remove", P("d")), ("remove", P("missing")), ("remove", P("l")),
    ("unlink", P("broken")), ("unlink", P("f/x")), ("unlink", "inner", {"dir_fd": Fd("d")}),
    ("mkdir", P("new")), ("mkdir", P("new"), 0o700), ("mkdir", P("d")), ("mkdir", P("no/new")),
    ("mkdir", P("f/new")), ("mkdir", "sub", {"dir_fd": Fd("e")}), ("mkdir", B("b")),
    ("makedirs", P("a/b/c")), ("makedirs", P("d")), ("makedirs", P("d"), 0o777, True),
    ("makedirs", P("f"), 0o777, True), ("makedirs", P("f/x/y")), ("makedirs", P("x/y/"), 0o750),
    ("rmdir", P("e")), ("rmdir", P("d")), ("rmdir", P("missing")), ("rmdir", P("f")),
    ("rmdir", "e", {"dir_fd": Fd(".")}),
    ("removedirs", P("d/x")), ("removedirs", P("e")), ("removedirs", P("d")),
    ("renames", P("f"), P("x/y/z")), ("renames", P("d/inner"), P("moved")),
    ("renames", P("missing"), P("x/y")),
    ("link", P("f"), P("hard")), ("link", P("f"), P("g")), ("link", P("missing"), P("x")),
    ("link", P("l"), P("hl"), {"follow_symlinks": False}), ("link", P("d"), P("x")),
    ("symlink", "f", P("s")), ("symlink", "d", P("s"), True), ("symlink", "f", P("g")),
    ("symlink", "x", P("no/s")), ("symlink", "target", "s", {"dir_fd": Fd("e")}),
    ("truncate", P("f"), 2), ("truncate", P("g"), 100), ("truncate", P("missing"), 1),
    ("truncate", P("d"), 1), ("truncate", P("f"), -1),
]


@pytest.mark.parametrize("case", CHANGES, ids=repr)
async def test_changes(tmp_path: Path, fs_context: Any, case: tuple[Any, ...]) -> None:
    name, *args = case
    kwargs = args.pop() if isinstance(args[-1], dict) else {}
    await same_change(tmp_path, name, *args, **kwargs)


async def test_truncate_descriptor(tmp_path: Path, fs_context: Any) -> None:
    path = tmp_path / "t"
    path.write_bytes(b"0123456789")
    with open(path, "r+b") as f:
        await aos.truncate(f.fileno(), 4)
        assert path.read_bytes() == b"0123"
    with open(path, "rb") as f:
        with pytest.raises(OSError) as got:
            await aos.truncate(f.fileno(), 1)  # read-only descriptor
        with pytest.raises(OSError) as expected:
            os.truncate(f.fileno(), 1)
        assert got.value.errno == expected.value.errno


async def test_mkdir_mode_follows_umask(tmp_path: Path, fs_context: Any) -> None:
    old = os.umask(0o027)
    try:
        await aos.mkdir(tmp_path / "m", 0o777)
        os.mkdir(tmp_path / "n", 0o777)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "m").st_mode) == 0o750
    assert os.stat(tmp_path / "m").st_mode == os.stat(tmp_path / "n").st_mode


# --- read-only calls ---------------------------------------------------------------------


READS = [
    ("listdir", P(".")), ("listdir", B(".")), ("listdir", P("missing")), ("listdir", P("f")),
    ("listdir", P("dl")), ("listdir", Fd("d")),
    ("readlink", P("l")), ("readlink", B("broken")), ("readlink", P("f")),
    ("readlink", P("missing")), ("readlink", "l", {"dir_fd": Fd(".")}),
    ("access", P("f"), os.R_OK), ("access", P("f"), os.X_OK), ("access", P("missing"), os.F_OK),
    ("access", P("broken"), os.F_OK), ("access", P("broken"), os.F_OK, {"follow_symlinks": False}),
    ("access", P("d"), os.W_OK | os.X_OK), ("access", "f", os.F_OK, {"dir_fd": Fd(".")}),
    ("access", P("f"), os.R_OK, {"effective_ids": True}),
    ("statvfs", P("missing")), ("statvfs", P("f/x")),
]


@pytest.mark.parametrize("case", READS, ids=repr)
async def test_reads(tmp_path: Path, fs_context: Any, case: tuple[Any, ...]) -> None:
    name, *args = case
    kwargs = args.pop() if isinstance(args[-1], dict) else {}
    result = await same(tmp_path, name, *args, **kwargs)
    if name == "listdir" and not isinstance(result, Exception):
        assert result  # every directory tried has entries


async def test_listdir_cwd_and_getcwd(
    tmp_path: Path, fs_context: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    build(tmp_path / "tree")
    monkeypatch.chdir(tmp_path / "tree")
    assert sorted(await aos.listdir()) == sorted(os.listdir())
    assert await aos.getcwd() == os.getcwd() == str(tmp_path / "tree")
    assert await ospath.abspath("x/../y") == os.path.abspath("x/../y")
    assert await ospath.abspath(b"z") == os.path.abspath(b"z")
    assert await ospath.abspath(Path("w")) == os.path.abspath(Path("w"))


async def test_getcwd_of_removed_directory(
    tmp_path: Path, fs_context: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    with pytest.raises(FileNotFoundError):
        await aos.getcwd()


async def test_statvfs(tmp_path: Path, fs_context: Any) -> None:
    got, expected = await aos.statvfs(tmp_path), os.statvfs(tmp_path)
    # The free counts move with everyone's writes; these do not.
    for field in ("f_bsize", "f_frsize", "f_blocks", "f_files", "f_namemax", "f_fsid"):
        assert getattr(got, field) == getattr(expected, field)


async def test_sendfile(tmp_path: Path, fs_context: Any) -> None:
    data = os.urandom(300_000)
    (tmp_path / "src").write_bytes(data)
    with open(tmp_path / "src", "rb") as src, open(tmp_path / "dst", "wb") as dst:
        copied = 0
        while True:
            n = await aos.sendfile(dst.fileno(), src.fileno(), copied, 100_000)
            if not n:
                break
            copied += n
        assert copied == len(data)
        assert await aos.sendfile(dst.fileno(), src.fileno(), None, 10) == 10  # from the position
        with pytest.raises(OSError) as bad:
            await aos.sendfile(src.fileno(), dst.fileno(), 0, 10)  # wrong directions
        with pytest.raises(OSError) as expected:
            os.sendfile(src.fileno(), dst.fileno(), 0, 10)
        assert bad.value.errno == expected.value.errno
    assert (tmp_path / "dst").read_bytes() == data + data[:10]


# --- scandir ---------------------------------------------------------------------------


def entries(found: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (e.name, e.path, e.is_dir(), e.is_file(), e.is_symlink(), e.inode()) for e in found
    )


async def test_scandir_three_ways(tmp_path: Path, fs_context: Any) -> None:
    build(tmp_path / "t")
    root = tmp_path / "t"
    with os.scandir(root) as it:
        expected = entries(it)
    listed = await aos.scandir(root)
    assert entries(listed) == expected
    with await aos.scandir(root) as again:  # the aiofiles spelling
        assert entries(again) == expected
    assert entries([e async for e in aos.scandir(root)]) == expected
    async with aos.scandir(root) as it2:
        assert entries([e async for e in it2]) == expected
    assert entries([e async for e in aos.scandir(os.fsencode(root))]) == sorted(
        (os.fsencode(n), os.fsencode(p), *rest) for n, p, *rest in expected
    )


async def test_scandir_many_entries_in_batches(tmp_path: Path, fs_context: Any) -> None:
    count = aos.SCANDIR_BATCH * 2 + 3
    for i in range(count):
        (tmp_path / f"n{i}").touch()
    names = [e.name async for e in aos.scandir(tmp_path)]
    assert sorted(names) == sorted(os.listdir(tmp_path)) and len(names) == count
    # Leaving early closes the directory (a leak would fail the test: ResourceWarning).
    async with aos.scandir(tmp_path) as it:
        async for _ in it:
            break
    it3 = aos.scandir(tmp_path)
    first = await it3.__anext__()
    it3.close()
    assert first.name in names
    with pytest.raises(StopAsyncIteration):
        await it3.__anext__()


@pytest.mark.parametrize("where", ["missing", "f"])
async def test_scandir_errors(tmp_path: Path, fs_context: Any, where: str) -> None:
    build(tmp_path / "t")
    path = tmp_path / "t" / where
    with pytest.raises(OSError) as expected:
        os.scandir(path)
    for use in ("await", "async with", "async for"):
        with pytest.raises(type(expected.value)) as got:
            if use == "await":
                await aos.scandir(path)
            elif use == "async with":
                async with aos.scandir(path):
                    pass
            else:
                async for _ in aos.scandir(path):
                    pass
        assert got.value.errno == expected.value.errno
        assert got.value.filename == expected.value.filename


# --- os.path -------------------------------------------------------------------------


PATH_CHECKS = ["exists", "isfile", "isdir", "islink", "getsize", "getmtime", "getatime", "getctime"]
PATH_ARGS = [
    P("f"), P("d"), P("l"), P("dl"), P("broken"), P("missing"), P("f/x"), B("d"), "", "a\0b",
]


@pytest.mark.parametrize("name", PATH_CHECKS)
async def test_path_checks(tmp_path: Path, fs_context: Any, name: str) -> None:
    for arg in PATH_ARGS:
        await same(tmp_path, name, arg, module=ospath, reference=os.path)


async def test_path_checks_of_descriptors(tmp_path: Path, fs_context: Any) -> None:
    (tmp_path / "f").write_bytes(b"12")
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    os.close(fd)
    assert not await ospath.exists(fd) and not os.path.exists(fd)  # closed
    with open(tmp_path / "f", "rb") as f:
        assert await ospath.exists(f.fileno()) and await ospath.isfile(f.fileno())
        assert await ospath.getsize(f.fileno()) == 2
        with pytest.raises(TypeError):
            await ospath.islink(f.fileno())  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            os.path.islink(f.fileno())  # type: ignore[arg-type]


async def test_ismount(tmp_path: Path, fs_context: Any) -> None:
    for path in ("/", "/proc", str(tmp_path), "/nonexistent", b"/"):
        assert await ospath.ismount(path) == os.path.ismount(path)


async def test_samefile(tmp_path: Path, fs_context: Any) -> None:
    build(tmp_path / "t")
    t = tmp_path / "t"
    os.link(t / "f", t / "hard")
    for a, b in [("f", "hard"), ("f", "l"), ("f", "g"), ("d", "dl"), ("f", "missing")]:
        await same(tmp_path, "samefile", P(a), P(b), module=ospath, reference=os.path)
    with open(t / "f", "rb") as x, open(t / "hard", "rb") as y, open(t / "g", "rb") as z:
        assert await ospath.sameopenfile(x.fileno(), y.fileno())
        assert not await ospath.sameopenfile(x.fileno(), z.fileno())
        closed = (x.fileno(), y.fileno())
    with pytest.raises(OSError) as bad:
        await ospath.sameopenfile(*closed)
    assert bad.value.errno == errno.EBADF


def test_module_layout() -> None:
    import aiofile.os.path
    import aiofile.ospath

    assert aiofile.os.path is aos.path
    assert set(aiofile.ospath.__all__) == set(aos.path.__all__)
    assert all(getattr(aiofile.ospath, n) is getattr(aos.path, n) for n in aos.path.__all__)
    # The stdlib module is untouched by the name.
    assert os.path.exists is not aos.path.exists


# --- where the calls run -------------------------------------------------------------


async def test_dispatch_uses_the_context_method_when_there(tmp_path: Path, fs_context: Any) -> None:
    (tmp_path / "f").write_bytes(b"x")
    names: list[str] = []
    has_stat = getattr(fs_context, "stat", None) is not None

    class Spy:
        def __getattr__(self, name: str) -> Any:
            method = getattr(fs_context, name)
            if method is None or not callable(method):
                return method
            names.append(name)
            return method

    from aiofile.context import DEFAULT_CONTEXT_STORE

    loop_id = id(fs_context.loop)
    DEFAULT_CONTEXT_STORE[loop_id] = Spy()  # type: ignore[assignment]
    try:
        st = await _fs.call_in(Spy(), None, "stat", os.stat, str(tmp_path / "f"))  # type: ignore[arg-type]
    finally:
        DEFAULT_CONTEXT_STORE[loop_id] = fs_context
    assert st == os.stat(tmp_path / "f")
    assert names == (["stat"] if has_stat else [])
    assert _fs.in_kernel("stat") == bool(has_stat and fs_context.in_kernel("stat"))


# --- permission denied, as a user without rights ------------------------------------


DENIED = textwrap.dedent("""
    import asyncio, importlib, json, os, sys
    # Everything imported before the user changes: the interpreter's files
    # may be readable by root only.
    import concurrent.futures.thread, shutil, tempfile, random, selectors
    import aiofile, aiofile.tempfile
    from aiofile import os as aos, ospath, tempfile as atf
    from aiofile.context import DEFAULT_CONTEXT_STORE
    module_name, hide, root = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
    if os.getuid() == 0:
        os.setgid(65534)
        os.setuid(65534)
    locked = os.path.join(root, "locked")
    calls = [
        ("stat", (os.path.join(locked, "f"),)), ("lstat", (os.path.join(locked, "f"),)),
        ("listdir", (locked,)), ("mkdir", (os.path.join(root, "ro", "new"),)),
        ("unlink", (os.path.join(root, "ro", "f"),)), ("rmdir", (os.path.join(root, "ro", "e"),)),
        ("rename", (os.path.join(root, "ro", "f"), os.path.join(root, "ro", "g"))),
        ("link", (os.path.join(root, "ro", "f"), os.path.join(root, "ro", "h"))),
        ("symlink", ("x", os.path.join(root, "ro", "s"))),
        ("truncate", (os.path.join(root, "ro", "f"), 0)),
        ("makedirs", (os.path.join(root, "ro", "a", "b"),)),
        ("readlink", (os.path.join(locked, "l"),)),
        ("scandir", (locked,)),
    ]
    async def main():
        module = importlib.import_module(module_name)
        cls = module.AsyncioContext
        if hide:
            names = ("stat", "fstat", "open", "close_fd", "rename", "unlink", "rmdir",
                     "mkdir", "link", "symlink", "ftruncate", "fallocate", "in_kernel")
            cls = type("Hidden", (cls,), dict.fromkeys(names))
        loop = asyncio.get_running_loop()
        DEFAULT_CONTEXT_STORE[id(loop)] = ctx = cls(loop=loop)
        out = []
        for name, args in calls:
            try:
                getattr(os, name)(*args)
                expected = None
            except OSError as exc:
                expected = [type(exc).__name__, exc.errno, exc.filename, exc.filename2]
            try:
                await getattr(aos, name)(*args)
                got = None
            except OSError as exc:
                got = [type(exc).__name__, exc.errno, exc.filename, exc.filename2]
            out.append([name, expected, got])
        checks = []
        for name in ("exists", "isfile", "isdir"):
            p = os.path.join(locked, "f")
            checks.append([name, getattr(os.path, name)(p), await getattr(ospath, name)(p)])
        try:
            async with atf.NamedTemporaryFile(dir=os.path.join(root, "ro")):
                pass
            tmp = None
        except OSError as exc:
            tmp = [type(exc).__name__, exc.errno]
        try:
            async with aiofile.async_open(os.path.join(locked, "f")):
                pass
            opened = None
        except OSError as exc:
            opened = [type(exc).__name__, exc.errno]
        ctx.close()
        print(json.dumps({"calls": out, "checks": checks, "tempfile": tmp, "open": opened}))
    asyncio.run(main())
""")


async def test_permission_denied(tmp_path: Path, fs_context: Any) -> None:
    if os.getuid() != 0 and os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    root = tmp_path / "perm"
    root.mkdir()
    # The child (uid 65534) must reach root: open the way down for it.
    for parent in [root, *root.parents]:
        if parent == Path("/"):
            break
        mode = stat.S_IMODE(os.stat(parent).st_mode)
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)
    locked = root / "locked"
    locked.mkdir()
    (locked / "f").write_bytes(b"secret")
    (locked / "l").symlink_to("f")
    os.chmod(locked, 0o700)
    ro = root / "ro"
    ro.mkdir()
    (ro / "f").write_bytes(b"x")
    (ro / "e").mkdir()
    os.chmod(ro, 0o755)
    backend = next(
        c.__module__ for c in type(fs_context).__mro__ if c.__module__.startswith("caio.")
    )
    hide = "1" if type(fs_context).__name__.endswith("WithoutFsMethods") else "0"
    done = subprocess.run(
        [sys.executable, "-c", DENIED, backend, hide, str(root)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for name, expected, got in report["calls"]:
        assert expected is not None and expected[0] == "PermissionError", (name, expected)
        assert got == expected, name
    for name, expected, got in report["checks"]:
        assert expected is False and got is False, name
    assert report["tempfile"] == ["PermissionError", errno.EACCES]
    assert report["open"] == ["PermissionError", errno.EACCES]


# --- AIOFile.open goes the same way -------------------------------------------------


@pytest.mark.parametrize("where, mode", [
    ("missing", "r"), ("d", "r"), ("d", "rb"), ("d", "w"), ("f", "x"), ("f/x", "r"),
    ("missing/x", "w"), ("f", "r"), ("l", "rb+"), ("new", "w"), ("new", "a+"),
])
async def test_open_as_builtin_open(tmp_path: Path, fs_context: Any, where: str, mode: str) -> None:
    from aiofile import async_open

    ours, theirs = tmp_path / "aio", tmp_path / "os"
    build(ours)
    build(theirs)
    try:
        with open(theirs / where, mode) as ref:
            expected: Any = ("ok", os.get_inheritable(ref.fileno()))
    except OSError as exc:
        where_error = os.fsdecode(exc.filename).replace(str(theirs), "")
        expected = ("error", type(exc), exc.errno, where_error)
    try:
        async with async_open(ours / where, mode) as f:
            got: Any = ("ok", os.get_inheritable(f.fileno()))
    except OSError as exc:
        got = ("error", type(exc), exc.errno, os.fsdecode(exc.filename).replace(str(ours), ""))
    assert got == expected
    assert snapshot(ours) == snapshot(theirs)


async def test_open_uses_the_given_executor_only_without_context_open(
    tmp_path: Path, fs_context: Any,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from aiofile import AIOFile

    class Counting(ThreadPoolExecutor):
        jobs = 0

        def submit(self, *args: Any, **kwargs: Any) -> Any:
            self.jobs += 1
            return super().submit(*args, **kwargs)

    (tmp_path / "f").write_bytes(b"x")
    with Counting(1) as pool:
        async with AIOFile(tmp_path / "f", "rb", executor=pool) as afp:
            assert await afp.read() == b"x"
    through_context = getattr(fs_context, "open", None) is not None
    assert pool.jobs == (0 if through_context else 1)
