"""Print files line by line, byte for byte: ``python examples/cat.py FILE...``.

Each file is read through ``async_open`` in binary mode and ``async for``,
so the output is exactly the files' bytes, whatever their encoding and
line endings.
"""

from __future__ import annotations

import argparse
import asyncio
import select
import sys
from typing import BinaryIO

from aiofile import async_open


def write_all(out: BinaryIO, data: bytes) -> None:
    """Write all of ``data``: under ``python -u`` (or PYTHONUNBUFFERED)
    ``sys.stdout.buffer`` is a raw file, whose write() may take only part
    of it (a pipe, interrupted by a signal) and says how much."""
    done = out.write(data) or 0
    while done < len(data):
        # (typeshed says int; a raw file says None when it would block)
        written: int | None = out.write(memoryview(data)[done:])
        if written is None:  # a non-blocking stdout, full: wait for room
            select.select([], [out], [])
        else:
            done += written


async def cat(paths: list[str]) -> None:
    out = sys.stdout.buffer
    for path in paths:
        async with async_open(path, "rb") as src:
            async for line in src:
                write_all(out, line)
    out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", metavar="FILE", help="files to print, in order")
    args = parser.parse_args(argv)
    try:
        asyncio.run(cat(args.files))
    except OSError as exc:
        print(f"cat.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
