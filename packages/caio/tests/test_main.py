"""``python -m caio``: the report of backends and the selected one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from caio_process import run_python

import caio
from caio._backends import BACKENDS


def run_main(
    env: dict[str, str] | None = None, path: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "caio", env=env, path=path)


def backend_lines(output: str) -> dict[str, str]:
    """Backend name -> its row of the table."""
    rows = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] in BACKENDS and words[1] == f"caio.{BACKENDS[words[0]]}":
            rows[words[0]] = line
    return rows


def test_lists_every_backend_and_the_selection() -> None:
    proc = run_main()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = backend_lines(proc.stdout)
    assert set(rows) == set(BACKENDS)
    for name, row in rows.items():
        works = getattr(caio, BACKENDS[name]) is not None
        assert (row.split()[2] == "yes") == works, row
        if not works:
            assert caio._import_errors[name] in row
    automatic = next(n for n, m in BACKENDS.items() if getattr(caio, m) is not None)
    selected = [line for line in proc.stdout.splitlines() if line.startswith("selected:")]
    assert selected == [f"selected: {automatic} (caio.{BACKENDS[automatic]})"]
    assert "why: automatic" in proc.stdout


def test_forced_selection_is_explained() -> None:
    proc = run_main(env={"CAIO_IMPL": "python"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "selected: python (caio.python_aio)" in proc.stdout
    assert "CAIO_IMPL=python" in proc.stdout


def test_reports_why_a_backend_cannot_work(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(
        Path(caio.__file__).parent, copy / "caio",
        ignore=shutil.ignore_patterns("__pycache__", "default_implementation"),
    )
    for built in (copy / "caio").glob("thread_aio*"):
        built.unlink()
    (copy / "caio" / "thread_aio.py").write_text("raise ImportError('no pthreads today')\n")
    proc = run_main(path=copy)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = backend_lines(proc.stdout)["thread"]
    assert "no: cannot import: no pthreads today" in row


@pytest.mark.parametrize("name", list(BACKENDS))
def test_probe_matches_importability(name: str) -> None:
    from caio.__main__ import probe

    why_not = probe(name)
    if getattr(caio, BACKENDS[name]) is None:
        assert why_not is not None and "cannot import" in why_not
    else:
        assert why_not is None
