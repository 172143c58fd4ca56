"""The example programs, run as programs on real files."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

pytestmark = pytest.mark.skipif(
    not (EXAMPLES / "cat.py").exists(), reason=f"no examples at {EXAMPLES}",
)


def run(script: str, *args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        capture_output=True, timeout=240, check=False,
    )


def test_cat_prints_files_byte_exact(tmp_path: Path) -> None:
    first = tmp_path / "one"
    second = tmp_path / "two"
    first.write_bytes(b"plain\r\nwindows\rmac\n\n\xff\xfe not utf-8\nno newline")
    second.write_bytes("ünïcödé\n".encode() * 30000 + b"x" * 300_000 + b"\n")
    done = run("cat.py", first, second)
    assert done.returncode == 0, done.stderr
    assert done.stdout == first.read_bytes() + second.read_bytes()


def test_cat_writes_all_of_each_line_to_a_raw_stdout(tmp_path: Path) -> None:
    # Under -u sys.stdout.buffer is a raw file whose write() may take part
    # of a line. A non-blocking pipe makes that happen on every full pipe
    # (a blocking one only when a signal interrupts the write, as it did
    # once in CI): nothing may be lost.
    path = tmp_path / "lines"
    path.write_bytes(b"".join(b"%d " % i * (i % 97) + b"\n" for i in range(20000)))
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-u", str(EXAMPLES / "cat.py"), str(path)],
            stdout=write_end, stderr=subprocess.PIPE,
        )
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        got = pipe.read()
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert got == path.read_bytes()


def test_cat_missing_file(tmp_path: Path) -> None:
    done = run("cat.py", tmp_path / "missing")
    assert done.returncode == 1
    assert b"missing" in done.stderr and done.stdout == b""


def test_cp_copies_256_mib_byte_exact(tmp_path: Path) -> None:
    src = tmp_path / "src"
    dst = tmp_path / "dst"
    block = os.urandom(1 << 20)
    with open(src, "wb") as out:
        for i in range(256):
            out.write(i.to_bytes(4, "little") + block[4:])
        out.write(b"odd tail")
    done = run("cp.py", src, dst)
    assert done.returncode == 0, done.stderr
    assert dst.stat().st_size == src.stat().st_size
    with open(src, "rb") as a, open(dst, "rb") as b:
        while True:
            x, y = a.read(1 << 22), b.read(1 << 22)
            assert x == y
            if not x:
                break


def test_cp_chunk_size_and_overwrite(tmp_path: Path) -> None:
    src = tmp_path / "src"
    dst = tmp_path / "dst"
    src.write_bytes(bytes(range(256)) * 100 + b"end")
    dst.write_bytes(b"x" * 1_000_000)  # longer: must be replaced, not patched
    done = run("cp.py", src, dst, "--chunk-size", "1000")
    assert done.returncode == 0, done.stderr
    assert dst.read_bytes() == src.read_bytes()
    bad = run("cp.py", src, dst, "--chunk-size", "0")
    assert bad.returncode == 2 and b"positive" in bad.stderr


def strace_works() -> bool:
    """strace is installed and may trace here (a container may forbid ptrace)."""
    if shutil.which("strace") is None:
        return False
    done = subprocess.run(
        ["strace", "-o", os.devnull, sys.executable, "-c", "pass"],
        capture_output=True, timeout=60, check=False,
    )
    return done.returncode == 0


@pytest.mark.skipif(not strace_works(), reason="strace cannot trace here")
@pytest.mark.parametrize(
    ("args", "syncs"),
    [
        ((), 0),
        (("--sync",), 1),
        (("--chunk-size", "4096"), 1),
        (("--chunk-size", "4096", "--sync"), 1),
    ],
)
def test_cp_syncs_when_asked_or_chunked(
    tmp_path: Path, args: tuple[str, ...], syncs: int,
) -> None:
    # The kernel copy leaves writeback to the kernel, as shutil.copyfile
    # does; --sync waits for the disk, and the chunked copy's aiofile close
    # always does. Counted in the system calls of the whole process tree
    # (io_uring's fsync is no system call: the chunked copy runs on the
    # thread backend here).
    src, dst, log = tmp_path / "src", tmp_path / "dst", tmp_path / "trace"
    data = os.urandom(100_001)
    src.write_bytes(data)
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", str(log),
         sys.executable, str(EXAMPLES / "cp.py"), str(src), str(dst), *args],
        capture_output=True, timeout=240, check=False,
        env={**os.environ, "CAIO_IMPL": "thread"},
    )
    assert done.returncode == 0, done.stderr
    assert dst.read_bytes() == data
    calls = [line for line in log.read_text().splitlines() if "sync(" in line]
    assert len(calls) == syncs, calls


def test_hash_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "h"
    data = os.urandom(3_000_001)
    path.write_bytes(data)
    done = run("hash.py", path, "-a", "sha256", "-a", "md5", "-a", "blake2b")
    assert done.returncode == 0, done.stderr
    expected = "".join(
        f"{name}  {hashlib.new(name, data).hexdigest()}\n" for name in ("sha256", "md5", "blake2b")
    )
    assert done.stdout.decode() == expected
    default = run("hash.py", path)
    assert default.stdout.decode().splitlines()[0] == f"md5  {hashlib.md5(data).hexdigest()}"


def test_csv_reader_matches_dict_reader(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    rows = [
        ["name", "city", "note"],
        ["Ann", "Zürich", "plain"],
        ["Bob", "Köln", 'quoted "word", and, commas'],
        ["Cid", "Paris", "two\nlines"],
        ["Dee", "Oslo"],
        ["Eve", "Rome", "x", "extra1", "extra2"],
    ] + [[f"n{i}", f"c{i}", "é" * (i % 5)] for i in range(2000)]
    with open(path, "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)
    done = run("csv_reader.py", path)
    assert done.returncode == 0, done.stderr
    with open(path, newline="", encoding="utf-8") as fp:
        expected = [json.dumps(row, ensure_ascii=False) for row in csv.DictReader(fp)]
    assert done.stdout.decode().splitlines() == expected


@pytest.mark.parametrize("how", ["same path", "hard link", "symlink", "dot path"])
def test_cp_refuses_to_copy_a_file_onto_itself(tmp_path: Path, how: str) -> None:
    src = tmp_path / "src"
    data = os.urandom(100_000)
    src.write_bytes(data)
    if how == "same path":
        dst = src
    elif how == "hard link":
        dst = tmp_path / "hard"
        os.link(src, dst)
    elif how == "symlink":
        dst = tmp_path / "soft"
        dst.symlink_to(src)
    else:
        dst = tmp_path / "." / "src"
    done = run("cp.py", src, dst)
    assert done.returncode == 1
    assert b"same file" in done.stderr
    # "wb" would have truncated it before the first read.
    assert src.read_bytes() == data


def test_cp_onto_another_file_with_a_symlink_in_the_way(tmp_path: Path) -> None:
    src = tmp_path / "src"
    other = tmp_path / "other"
    link = tmp_path / "link"
    src.write_bytes(b"new contents")
    other.write_bytes(b"old")
    link.symlink_to(other)
    done = run("cp.py", src, link)
    assert done.returncode == 0, done.stderr
    assert other.read_bytes() == b"new contents" and link.is_symlink()


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="no O_DIRECT here")
def test_direct_reader_reads_the_blocks_it_names(tmp_path: Path) -> None:
    path = tmp_path / "blocks"
    data = os.urandom((1 << 20) + 100)  # a partial block at the end
    path.write_bytes(data)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_DIRECT))
    except OSError:  # this filesystem refuses O_DIRECT: the example says so
        done = run("direct_reader.py", path)
        assert done.returncode == 1 and b"Invalid argument" in done.stderr
        return
    done = run("direct_reader.py", path, "--count", "300", "--in-flight", "16",
               "--block-size", "8192", "--list")
    assert done.returncode == 0, done.stderr
    *listed, summary = done.stdout.decode().splitlines()
    assert summary == f"300 reads, {300 * 8192} bytes, {len(listed)} distinct blocks"
    assert 100 < len(listed) <= 128
    for line in listed:
        offset, digest = line.split()
        start = int(offset)
        assert start % 8192 == 0 and start + 8192 <= len(data)
        assert digest == hashlib.sha256(data[start:start + 8192]).hexdigest()
    assert run("direct_reader.py", path, "--block-size", "100").returncode == 1


def tree_contents(root: Path) -> list[tuple[str, str, bytes]]:
    """Each entry under ``root``: its kind and its bytes or link target."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            relative = str(path.relative_to(root))
            if path.is_symlink():
                found.append((relative, "link", os.fsencode(os.readlink(path))))
            elif path.is_dir():
                found.append((relative, "dir", b""))
            else:
                found.append((relative, "file", path.read_bytes()))
    return sorted(found)


def make_tree(root: Path) -> None:
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "zero").touch()
    (root / "a" / "big").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    for i in range(40):
        (root / "a" / "b" / f"f{i}").write_bytes(os.urandom(i * 997))
    (root / "a" / "b" / "c" / "ünïcode name").write_text("text\n")
    (root / "link").symlink_to("a/big")
    (root / "dirlink").symlink_to("a", target_is_directory=True)
    (root / "broken").symlink_to("nowhere")


@pytest.mark.parametrize("progress", ["plain", "none", "auto", "tqdm", "rich"])
def test_copytree_copies_every_byte_and_link(tmp_path: Path, progress: str) -> None:
    if progress in ("tqdm", "rich"):
        pytest.importorskip(progress)
    src = tmp_path / "src"
    make_tree(src)
    done = run("copytree.py", src, tmp_path / "dst", "--jobs", "3", "--progress", progress)
    assert done.returncode == 0, done.stderr
    assert tree_contents(tmp_path / "dst") == tree_contents(src)
    assert done.stdout.decode().splitlines()[-1] == (
        f"copied 43 files ({3 * 1024 * 1024 + 17 + sum(i * 997 for i in range(40)) + 5} bytes), "
        "5 directories, 3 links"
    )
    if progress == "plain":
        assert b"100%" in done.stderr
    if progress == "none":
        assert done.stderr == b""


def test_copytree_refuses(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    (tmp_path / "dst").mkdir()
    exists = run("copytree.py", tmp_path / "src", tmp_path / "dst")
    assert exists.returncode == 1 and b"exists already" in exists.stderr
    assert os.listdir(tmp_path / "dst") == []
    missing = run("copytree.py", tmp_path / "missing", tmp_path / "new")
    assert missing.returncode == 1 and b"No such file" in missing.stderr
    not_dir = run("copytree.py", tmp_path / "src" / "zero", tmp_path / "new")
    assert not_dir.returncode == 1 and b"Not a directory" in not_dir.stderr
    assert not (tmp_path / "new").exists()
    bad = run("copytree.py", tmp_path / "src", tmp_path / "new", "--jobs", "0")
    assert bad.returncode == 2 and b"positive" in bad.stderr


def test_readinto_hash_matches_hashlib(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(os.urandom((3 << 20) + 12345))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    done = run("readinto_hash.py", big, empty)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [
        f"{hashlib.sha256(big.read_bytes()).hexdigest()}  {big}",
        f"{hashlib.sha256(b'').hexdigest()}  {empty}",
    ]
    missing = run("readinto_hash.py", tmp_path / "missing")
    assert missing.returncode == 1 and b"missing" in missing.stderr


def test_trio_copy_copies_files_into_a_directory(tmp_path: Path) -> None:
    pytest.importorskip("trio")
    sources = []
    for i, size in enumerate((0, 1, 3_000_017, 200_000)):
        src = tmp_path / f"src{i}"
        src.write_bytes(os.urandom(size))
        sources.append(src)
    out = tmp_path / "out"
    out.mkdir()
    (out / "src2").write_bytes(b"x" * 5_000_000)  # longer: must be replaced
    done = run("trio_copy.py", *sources, out, "--chunk-size", "65536")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == "3200018 bytes in 4 file(s)\n"
    for src in sources:
        assert (out / src.name).read_bytes() == src.read_bytes()


def test_trio_copy_errors_and_timeout(tmp_path: Path) -> None:
    pytest.importorskip("trio")
    src = tmp_path / "src"
    src.write_bytes(b"data")
    missing = run("trio_copy.py", tmp_path / "missing", tmp_path / "dst")
    assert missing.returncode == 1 and b"No such file" in missing.stderr
    assert not (tmp_path / "dst").exists()
    not_dir = run("trio_copy.py", src, src, tmp_path / "nodir")
    assert not_dir.returncode == 1 and b"not a directory" in not_dir.stderr
    late = run("trio_copy.py", src, tmp_path / "late", "--timeout", "0")
    assert late.returncode == 1 and b"not done within" in late.stderr
    assert not (tmp_path / "late").exists()
