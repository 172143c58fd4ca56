"""Read memcheck's XML logs and fail on errors in caio's C code.

    python benchmarks/valgrind_report.py LOG.xml [LOG.xml ...]

Prints every error that has a frame in one of caio's extension modules
(an invalid read, write or free, an uninitialised value or system-call
argument, a definite leak whose allocation stack passes through them) and
exits 1 if there is one. Errors with no frame of ours belong to the
interpreter or libc (CPython 3.11 alone reports hundreds of uninitialised
values while it imports, and memory the kernel filled behind memcheck's
back, a read's result bytes, looks uninitialised wherever the interpreter
reads it); they are counted, not shown.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# Where caio's extension modules are installed: .../caio/<backend>.cpython-*.so
OURS = ("/caio/linux_uring", "/caio/linux_aio", "/caio/thread_aio")


def ours(obj: str | None) -> bool:
    return obj is not None and any(part in obj for part in OURS)


def describe(error: ET.Element) -> str:
    kind = error.findtext("kind", "?")
    what = error.findtext("what") or error.findtext("xwhat/text") or ""
    lines = [f"{kind}: {what}"]
    for frame in error.iter("frame"):
        fn = frame.findtext("fn", "?")
        where = frame.findtext("file")
        line = frame.findtext("line")
        obj = frame.findtext("obj", "")
        place = f"{where}:{line}" if where else obj.rsplit("/", 1)[-1]
        lines.append(f"    {'*' if ours(obj) else ' '} {fn} ({place})")
    return "\n".join(lines)


def main(paths: list[str]) -> int:
    found: list[str] = []
    others = 0
    logs = 0
    for path in paths:
        text = Path(path).read_text(errors="replace")
        if "</valgrindoutput>" not in text:
            # A process killed before valgrind finished writing (a test's
            # os._exit child): take what is complete.
            text = text[: text.rfind("</error>") + len("</error>")] + "</valgrindoutput>"
            if "<error>" not in text:
                continue
        logs += 1
        root = ET.fromstring(text)
        for error in root.iter("error"):
            if any(ours(frame.findtext("obj")) for frame in error.iter("frame")):
                found.append(describe(error))
            else:
                others += 1
    for report in found:
        print(report, end="\n\n")
    print(
        f"valgrind: {logs} process logs, {len(found)} errors in caio's C code, "
        f"{others} elsewhere (interpreter, libc: not ours, not failed on)",
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
