"""Copy a directory tree: ``python examples/copytree.py SRC DST [--jobs N]``.

The tree is walked with ``aiofile.os.scandir``, its directories made with
``aiofile.os.mkdir``, its symbolic links copied as links
(``aiofile.os.readlink``/``symlink``) and its files copied with aiofile's
file objects, at most N files at a time. A progress bar shows the bytes
copied: tqdm's or rich's when one of them is installed (neither is needed),
a plain line on stderr otherwise. DST must not exist yet (as with
``shutil.copytree``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiofile import async_open
from aiofile import os as aos

CHUNK_SIZE = 1024 * 1024
DEFAULT_JOBS = 8


@dataclass
class Plan:
    """What the walk found: made in this order, files copied last."""

    directories: list[tuple[str, str]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (target, new link)
    files: list[tuple[str, str, int]] = field(default_factory=list)  # (src, dst, size)

    @property
    def total_bytes(self) -> int:
        return sum(size for _, _, size in self.files)


async def walk(src: str, dst: str, plan: Plan) -> None:
    """Add ``src`` (a directory) and everything under it to ``plan``."""
    plan.directories.append((src, dst))
    subdirectories = []
    async with aos.scandir(src) as entries:
        async for entry in entries:
            target = os.path.join(dst, entry.name)
            # The entry's own type (from the directory listing, usually no
            # system call); a link is copied as a link, never followed.
            if entry.is_symlink():
                plan.links.append((await aos.readlink(entry.path), target))
            elif entry.is_dir(follow_symlinks=False):
                subdirectories.append((entry.path, target))
            else:
                size = (await aos.lstat(entry.path)).st_size
                plan.files.append((entry.path, target, size))
    for child, target in subdirectories:
        await walk(child, target, plan)


class Progress(Protocol):
    def update(self, n: int) -> None: ...
    def close(self) -> None: ...


class PlainProgress:
    """One line on stderr, rewritten as the copy goes on."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.shown = -1

    def update(self, n: int) -> None:
        self.done += n
        percent = 100 * self.done // self.total if self.total else 100
        if percent != self.shown:
            self.shown = percent
            print(f"\r{percent:3d}% {self.done}/{self.total} bytes", end="", file=sys.stderr)

    def close(self) -> None:
        print(file=sys.stderr)


class QuietProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


class RichProgress:
    """rich's progress bar (rich is an optional extra of this example)."""

    def __init__(self, total: int) -> None:
        progress: Any = importlib.import_module("rich.progress")
        self.bar = progress.Progress(
            *progress.Progress.get_default_columns(), progress.TransferSpeedColumn(),
        )
        self.task = self.bar.add_task("copying", total=total)
        self.bar.start()

    def update(self, n: int) -> None:
        self.bar.update(self.task, advance=n)

    def close(self) -> None:
        self.bar.stop()


def make_progress(kind: str, total: int) -> Progress:
    """The bar asked for; ``auto``: tqdm, else rich, else a plain line.
    Raises ImportError when the library asked for is missing."""
    if kind == "auto":
        for candidate in ("tqdm", "rich"):
            try:
                return make_progress(candidate, total)
            except ImportError:
                continue
        kind = "plain"
    if kind == "tqdm":
        tqdm: Any = importlib.import_module("tqdm")
        bar: Progress = tqdm.tqdm(total=total, unit="B", unit_scale=True, desc="copying")
        return bar
    if kind == "rich":
        return RichProgress(total)
    if kind == "plain":
        return PlainProgress(total)
    return QuietProgress()


async def copy_file(src: str, dst: str, progress: Progress) -> None:
    # "xb": a file that appeared meanwhile is an error, not overwritten.
    async with async_open(src, "rb") as reader, async_open(dst, "xb") as writer:
        async for chunk in reader.iter_chunked(CHUNK_SIZE):
            await writer.write(chunk)
            progress.update(len(chunk))


async def copytree(src: str, dst: str, jobs: int, progress_kind: str) -> Plan:
    """Copy the tree ``src`` to the new ``dst``; returns what was copied.

    Raises FileExistsError (``dst`` exists), FileNotFoundError,
    NotADirectoryError (``src``), ImportError (a progress bar library
    asked for is missing), OSError.
    """
    if not await aos.path.isdir(src):
        await aos.listdir(src)  # raises the precise error
    if await aos.path.islink(dst) or await aos.path.exists(dst):
        raise FileExistsError(f"{dst!r} exists already")
    plan = Plan()
    await walk(src, dst, plan)
    for _, directory in plan.directories:  # parents before children
        await aos.mkdir(directory)
    for target, link in plan.links:
        await aos.symlink(target, link)
    progress = make_progress(progress_kind, plan.total_bytes)
    try:
        slots = asyncio.Semaphore(jobs)

        async def one(source: str, target: str) -> None:
            async with slots:
                await copy_file(source, target, progress)

        await asyncio.gather(*(one(s, d) for s, d, _ in plan.files))
    finally:
        progress.close()
    return plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", metavar="SRC", help="directory to copy")
    parser.add_argument("dst", metavar="DST", help="where to copy it (must not exist)")
    parser.add_argument(
        "--jobs", "-j", type=int, default=DEFAULT_JOBS, metavar="N",
        help=f"files copied at once (default {DEFAULT_JOBS})",
    )
    parser.add_argument(
        "--progress", choices=("auto", "tqdm", "rich", "plain", "none"), default="auto",
        help="progress bar: tqdm or rich if installed (auto), a plain line, or none",
    )
    args = parser.parse_args(argv)
    if args.jobs <= 0:
        parser.error(f"--jobs must be positive, not {args.jobs}")
    try:
        plan = asyncio.run(copytree(args.src, args.dst, args.jobs, args.progress))
    except (OSError, ImportError) as exc:
        print(f"copytree.py: {exc}", file=sys.stderr)
        return 1
    print(
        f"copied {len(plan.files)} files ({plan.total_bytes} bytes), "
        f"{len(plan.directories)} directories, {len(plan.links)} links",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
