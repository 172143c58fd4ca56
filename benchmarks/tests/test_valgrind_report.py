"""valgrind_report: which memcheck errors fail the valgrind session."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import valgrind_report

SO = "/venv/lib/python3.11/site-packages/caio/linux_aio.cpython-311-x86_64-linux-gnu.so"
LIBPYTHON = "/usr/lib/libpython3.11.so.1.0"


def error(kind: str, frames: list[tuple[str, str]], aux: str = "") -> str:
    stack = "".join(
        f"<frame><obj>{obj}</obj><fn>{fn}</fn></frame>" for fn, obj in frames
    )
    auxwhat = f"<auxwhat>{aux}</auxwhat>" if aux else ""
    return f"<error><kind>{kind}</kind><what>w</what><stack>{stack}</stack>{auxwhat}</error>"


RING_READ = error(
    "InvalidRead", [("reap_ring", SO), ("aio_reap", SO)],
    "Address 0x7ff21719c000 is not stack'd, malloc'd or (recently) free'd",
)
TRACEMALLOC_LEAK = error(
    "Leak_DefinitelyLost",
    [("malloc", "vgpreload.so"), ("raw_malloc", LIBPYTHON), ("traceback_new", LIBPYTHON),
     ("ctx_async", SO)],
)
OUR_READ = error(
    "InvalidRead", [("reap_ring", SO)], "Address 0x1 is 8 bytes after a block of size 16 alloc'd",
)
OUR_LEAK = error("Leak_DefinitelyLost", [("malloc", "vgpreload.so"), ("ctx_async", SO)])
INTERPRETER = error("UninitCondition", [("PyObject_Hash", LIBPYTHON)])


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        (RING_READ, "kernel AIO ring beyond io_setup's size"),
        (TRACEMALLOC_LEAK, "tracemalloc's own traceback"),
        (OUR_READ, None),
        (OUR_LEAK, None),
    ],
)
def test_not_ours(xml: str, reason: str | None) -> None:
    assert valgrind_report.not_ours(ET.fromstring(xml)) == reason


def test_only_our_errors_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "memcheck.1.xml"
    log.write_text(f"<valgrindoutput>{RING_READ}{TRACEMALLOC_LEAK}{INTERPRETER}</valgrindoutput>")
    assert valgrind_report.main([str(log)]) == 0
    out = capsys.readouterr().out
    assert "0 errors in caio's C code, 1 elsewhere" in out
    assert "1 x kernel AIO ring" in out and "1 x tracemalloc's own traceback" in out
    log.write_text(f"<valgrindoutput>{RING_READ}{OUR_LEAK}</valgrindoutput>")
    assert valgrind_report.main([str(log)]) == 1
    assert "ctx_async" in capsys.readouterr().out
