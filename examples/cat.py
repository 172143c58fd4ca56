"""Print files line by line, byte for byte: ``python examples/cat.py FILE...``.

Each file is read through ``async_open`` in binary mode and ``async for``,
so the output is exactly the files' bytes, whatever their encoding and
line endings.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiofile import async_open


async def cat(paths: list[str]) -> None:
    out = sys.stdout.buffer
    for path in paths:
        async with async_open(path, "rb") as src:
            async for line in src:
                out.write(line)
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
