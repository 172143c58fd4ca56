"""Copy a file in chunks: ``python examples/cp.py SRC DST [--chunk-size N]``.

The next chunk is read while the previous one is being written, so the
source and the destination are busy at the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiofile import async_open

DEFAULT_CHUNK_SIZE = 1024 * 1024


async def copy(src_path: str, dst_path: str, chunk_size: int) -> int:
    """Copy ``src_path`` to ``dst_path``; returns the number of bytes copied."""
    copied = 0
    async with async_open(src_path, "rb") as src, async_open(dst_path, "wb") as dst:
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
        "--chunk-size", type=positive, default=DEFAULT_CHUNK_SIZE, metavar="N",
        help=f"bytes per read and write (default {DEFAULT_CHUNK_SIZE})",
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(copy(args.src, args.dst, args.chunk_size))
    except OSError as exc:
        print(f"cp.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
