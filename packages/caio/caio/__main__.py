"""``python -m caio``: every backend, whether it works here, which is selected.

A backend "works" when its modules import and a real write and read of a
temporary file through its AsyncioContext give back the data. Exit status 0
when the selected backend works, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
from importlib import import_module
from types import ModuleType

import caio
from caio import _features
from caio._backends import BACKENDS

PROBE_TIMEOUT = 10.0


async def _roundtrip(adapter: ModuleType) -> None:
    payload = b"caio self-test %d" % os.getpid()
    with tempfile.TemporaryFile() as file:
        fd = file.fileno()
        async with adapter.AsyncioContext() as context:
            written = await context.write(payload, fd, 0)
            if written != len(payload):
                raise RuntimeError(f"write gave {written}, expected {len(payload)}")
            if os.pread(fd, 100, 0) != payload:
                raise RuntimeError("the file does not hold what was written")
            data = await context.read(100, fd, 0)
            if data != payload:
                raise RuntimeError(f"read gave {data!r}, expected {payload!r}")


def probe(name: str) -> str | None:
    """None if backend ``name`` works here, else why not."""
    module_name = BACKENDS[name]
    if getattr(caio, module_name) is None:
        return f"cannot import: {caio._import_errors.get(name, 'unknown reason')}"
    try:
        adapter = import_module(f"caio.{module_name}_asyncio")
    except Exception as exc:  # report, do not crash the report
        return f"caio.{module_name}_asyncio cannot import: {type(exc).__name__}: {exc}"
    try:
        asyncio.run(asyncio.wait_for(_roundtrip(adapter), PROBE_TIMEOUT))
    except asyncio.TimeoutError:
        return f"imports, but a test read did not finish within {PROBE_TIMEOUT:g} s"
    except Exception as exc:
        return f"imports, but a test read failed: {type(exc).__name__}: {exc}"
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``-h``/``--help`` print usage and exit 0."""
    parser = argparse.ArgumentParser(
        prog="python -m caio",
        description=(
            "List caio's backends, whether each works on this machine (a real "
            "write and read of a temporary file) and why not, and which one "
            "is selected."
        ),
        epilog=(
            "To force a backend: CAIO_IMPL=" + "|".join(BACKENDS) + ", or that name "
            "on a line of a default_implementation file beside caio/__init__.py "
            "(lines are tried in order). Exit status: 0 if the selected backend "
            "works, 1 if not."
        ),
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Print the report; returns the exit status."""
    parse_args(argv)
    print(
        f"caio {caio.__version__} on Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
    )
    hidden = _features.note()
    if hidden:  # the test switch: say so, every answer below depends on it
        print(f"kernel profile: {hidden}")
    print()
    rows = [("backend", "module", "works here")]
    working = {}
    for name, module_name in BACKENDS.items():
        why_not = probe(name)
        working[name] = why_not is None
        rows.append((name, f"caio.{module_name}", "yes" if why_not is None else f"no: {why_not}"))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for i, (name, module_name, status) in enumerate(rows):
        print(f"  {name:<{widths[0]}}  {module_name:<{widths[1]}}  {status}")
        if i == 0:
            print(f"  {'-' * widths[0]}  {'-' * widths[1]}  {'-' * len(status)}")
    print()
    selected = caio._selected
    print(f"selected: {selected} (caio.{BACKENDS[selected]})")
    print(f"    why: {caio._selected_by}")
    print(
        f"    to force one: CAIO_IMPL={'|'.join(BACKENDS)}, or that name on a "
        f"line of {caio._FILE}",
    )
    if not working[selected]:
        print(f"warning: the selected backend {selected!r} does not work here", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
