"""SHA-256 of a file through two reused buffers: ``python examples/readinto_hash.py FILE...``.

``AIOFile.readinto`` has the kernel read each block straight into a buffer
the program owns: hashing a file of any size allocates two buffers, not a
bytes object per block. While one block is hashed, the next one is read.
Prints ``HEXDIGEST  FILE`` per file, like ``sha256sum``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys

from aiofile import AIOFile

BLOCK_SIZE = 1 << 20


async def sha256(path: str) -> str:
    hasher = hashlib.sha256()
    buffers = (bytearray(BLOCK_SIZE), bytearray(BLOCK_SIZE))
    async with AIOFile(path, "rb") as afp:
        turn, offset = 0, 0
        pending = asyncio.ensure_future(afp.readinto(buffers[0], 0))
        while n := await pending:
            offset += n
            block = buffers[turn]
            turn ^= 1
            # The next read goes on in the other buffer while this one is hashed.
            pending = asyncio.ensure_future(afp.readinto(buffers[turn], offset))
            with memoryview(block) as view:
                hasher.update(view[:n])
    return hasher.hexdigest()


async def hash_files(paths: list[str]) -> list[str]:
    return [await sha256(path) for path in paths]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", metavar="FILE", help="files to hash")
    args = parser.parse_args(argv)
    try:
        digests = asyncio.run(hash_files(args.files))
    except OSError as exc:
        print(f"readinto_hash.py: {exc}", file=sys.stderr)
        return 1
    for path, digest in zip(args.files, digests, strict=True):
        print(f"{digest}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
