"""Read memcheck's XML logs and fail on errors in caio's C code.

    python benchmarks/valgrind_report.py LOG.xml [LOG.xml ...]

Prints every error that has a frame in one of caio's extension modules
(an invalid read, write or free, an uninitialised value or system-call
argument, a definite leak whose allocation stack passes through them) and
exits 1 if there is one. Errors with no frame of ours belong to the
interpreter or libc (CPython 3.11 alone reports hundreds of uninitialised
values while it imports, and memory the kernel filled behind memcheck's
back, a read's result bytes, looks uninitialised wherever the interpreter
reads it); they are counted, not shown. Two kinds that pass through our
code are memcheck's, not ours, and are counted apart (see not_ours):
reads of kernel AIO's completion ring past the size memcheck assumes for
it, and leaks of tracemalloc's own bookkeeping.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# Where caio's extension modules are installed: .../caio/<module>.cpython-*.so
OURS = (
    "/caio/linux_uring", "/caio/linux_aio", "/caio/thread_aio", "/caio/_awaitables",
    "/caio/_lines", "/caio/_dio",
)


def ours(obj: str | None) -> bool:
    return obj is not None and any(part in obj for part in OURS)


def not_ours(error: ET.Element) -> str | None:
    """Why an error with a frame of ours is still memcheck's, or None.

    - io_setup maps the completion ring for the events asked for; the
      kernel rounds the ring up (twice the events, at least 4 per CPU,
      whole pages), and linux_aio reads it up to the kernel's own count
      (the ring's header says it). Memcheck knows only the first part: a
      read of the rest is "not stack'd, malloc'd or free'd".
    - tracemalloc's own tracebacks (allocated by its raw_malloc while it
      traced one of our allocations) outlive tracemalloc.stop() as
      "definitely lost" on CPython 3.11: tracemalloc's memory, not ours.
    """
    frames = [frame.findtext("fn", "") for frame in error.iter("frame")]
    kind = error.findtext("kind", "")
    aux = " ".join(a.text or "" for a in error.iter("auxwhat"))
    if kind == "InvalidRead" and frames[:1] == ["reap_ring"] and "not stack'd" in aux:
        return "kernel AIO ring beyond io_setup's size"
    if kind.startswith("Leak_") and "raw_malloc" in frames[:3] and "traceback_new" in frames:
        return "tracemalloc's own traceback"
    return None


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
    memchecks: dict[str, int] = {}
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
            if not any(ours(frame.findtext("obj")) for frame in error.iter("frame")):
                others += 1
            elif (reason := not_ours(error)) is not None:
                memchecks[reason] = memchecks.get(reason, 0) + 1
            else:
                found.append(describe(error))
    for report in found:
        print(report, end="\n\n")
    print(
        f"valgrind: {logs} process logs, {len(found)} errors in caio's C code, "
        f"{others} elsewhere (interpreter, libc: not ours, not failed on)",
    )
    for reason, count in sorted(memchecks.items()):
        print(f"  not failed on either: {count} x {reason}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
