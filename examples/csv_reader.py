"""An async CSV dict reader on ``LineReader``: ``python examples/csv_reader.py FILE``.

Prints every row as one JSON object per line, like ``csv.DictReader``
would give it. A quoted field may hold line breaks: lines are gathered
until the quotes balance, then parsed by the ``csv`` module.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

from aiofile import AIOFile, LineReader


class AsyncDictReader:
    """``async for row in AsyncDictReader(afp)``: rows as dicts.

    The first record names the fields. A record with fewer fields than the
    header gets ``restval`` for the rest; extra fields go to ``restkey``,
    as with ``csv.DictReader``.
    """

    def __init__(
        self,
        afp: AIOFile,
        restkey: str | None = None,
        restval: str | None = None,
        **fmtparams: Any,
    ) -> None:
        self.lines: LineReader[str] = LineReader(afp)
        self.restkey = restkey
        self.restval = restval
        self.fmtparams = fmtparams
        self.quotechar = fmtparams.get("quotechar", '"')
        self.fieldnames: list[str] | None = None

    async def records(self) -> AsyncIterator[list[str]]:
        """Each record as a list of fields; blank lines are skipped."""
        parts: list[str] = []
        quotes = 0
        async for line in self.lines:
            parts.append(line)
            # An odd count means a quoted field goes on in the next line
            # (an escaped quote is doubled and keeps the parity).
            quotes += line.count(self.quotechar)
            if quotes % 2:
                continue
            text = "".join(parts)
            parts.clear()
            quotes = 0
            row = self.parse(text)
            if row:
                yield row
        if parts:
            # An unbalanced quote at the end: the csv module decides.
            yield self.parse("".join(parts))

    def parse(self, text: str) -> list[str]:
        """The fields of one record (``text`` may hold quoted line breaks)."""
        return next(csv.reader([text], **self.fmtparams), [])

    async def __aiter__(self) -> AsyncIterator[dict[str | None, str | list[str] | None]]:
        async for row in self.records():
            if self.fieldnames is None:
                self.fieldnames = row
                continue
            record: dict[str | None, str | list[str] | None] = dict(
                zip(self.fieldnames, row, strict=False),
            )
            if len(row) > len(self.fieldnames):
                record[self.restkey] = row[len(self.fieldnames):]
            for name in self.fieldnames[len(row):]:
                record[name] = self.restval
            yield record


async def dump(path: str) -> None:
    async with AIOFile(path, "r") as afp:
        async for record in AsyncDictReader(afp):
            print(json.dumps(record, ensure_ascii=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", metavar="FILE", help="a CSV file with a header row")
    args = parser.parse_args(argv)
    try:
        asyncio.run(dump(args.file))
    except (OSError, csv.Error) as exc:
        print(f"csv_reader.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
