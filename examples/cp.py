"""Copy a file: ``python examples/cp.py SRC DST [--chunk-size N] [--sync]``.

By default the kernel copies (``aiofile.copyfile``: ``copy_file_range`` on
a worker thread, the data never passes through Python) and, like ``cp``
and ``shutil.copyfile``, leaves the copy in the page cache for the kernel
to write back: ``--sync`` waits until it is on disk (fdatasync). With
``--chunk-size`` the copy goes through aiofile reads and writes instead:
the next chunk is read while the previous one is being written, so the
source and the destination are busy at the same time; aiofile's close
makes it durable, with or without ``--sync``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from aiofile import BinaryFileWrapper, async_open, copyfile


class SameFileError(OSError):
    """The destination is the source (same path, a hard link or a symlink)."""


def check_not_same(src_fd: int, dst_path: str) -> None:
    """Refuse to copy a file onto itself, as cp does.

    Opening the destination with "wb" would truncate the source before a
    byte is read. The check compares device and inode of the *open* source
    with what the destination path names now, so a hard link or a symlink
    to the source is caught as well as the same path.
    """
    try:
        dst = os.stat(dst_path)
    except FileNotFoundError:
        return
    src = os.fstat(src_fd)
    if (src.st_dev, src.st_ino) == (dst.st_dev, dst.st_ino):
        raise SameFileError(f"{dst_path!r} is the same file as the source")


async def copy_in_kernel(src_path: str, dst_path: str, sync: bool = False) -> None:
    """Copy with ``aiofile.copyfile``; with ``sync``, make the copy durable.

    Raises shutil.SameFileError, leaving the file untouched, if both name
    one file.
    """
    await copyfile(src_path, dst_path)
    if sync:
        # One call on a worker (open, sync, close), not one per system call.
        await asyncio.get_running_loop().run_in_executor(None, sync_data, dst_path)


def sync_data(path: str) -> None:
    """fdatasync the file at ``path`` (blocks: run it on a worker)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


async def copy(src_path: str, dst_path: str, chunk_size: int) -> int:
    """Copy ``src_path`` to ``dst_path``; returns the number of bytes copied.

    Raises SameFileError, leaving the file untouched, if both name one file.
    """
    async with async_open(src_path, "rb") as src:
        check_not_same(src.file.fileno(), dst_path)
        async with async_open(dst_path, "wb") as dst:
            return await pump(src, dst, chunk_size)


async def pump(src: BinaryFileWrapper, dst: BinaryFileWrapper, chunk_size: int) -> int:
    """Copy what is left of ``src`` to ``dst``; returns the bytes written."""
    copied = 0
    pending: asyncio.Task[int] | None = None
    async for chunk in src.iter_chunked(chunk_size):
        if pending is not None:
            copied += await pending
        # Writes stay in order: the next starts after this one ended.
        pending = asyncio.ensure_future(dst.write(chunk))
    if pending is not None:
        copied += await pending
    return copied


def positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {number}")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", metavar="SRC", help="file to copy")
    parser.add_argument("dst", metavar="DST", help="where to copy it (replaced)")
    parser.add_argument(
        "--chunk-size", type=positive, default=None, metavar="N",
        help="copy through aiofile reads and writes of N bytes (default: in the kernel)",
    )
    parser.add_argument(
        "--sync", action="store_true",
        help="return once the copy is on disk (fdatasync; the chunked copy always is)",
    )
    args = parser.parse_args(argv)
    try:
        if args.chunk_size is None:
            asyncio.run(copy_in_kernel(args.src, args.dst, args.sync))
        else:
            asyncio.run(copy(args.src, args.dst, args.chunk_size))
    except OSError as exc:
        print(f"cp.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
