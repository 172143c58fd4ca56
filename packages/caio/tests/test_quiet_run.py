"""The suite's own configuration fails a test whose thread dies with an
exception or that leaks a descriptor: such output must not pass unnoticed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

NOISY_TESTS = {
    "leak": """
def test_leaks_a_file(tmp_path):
    open(tmp_path / "leak", "w")
""",
    "thread": """
import threading

def test_thread_dies():
    def boom():
        raise OSError("died in a thread")
    thread = threading.Thread(target=boom)
    thread.start()
    thread.join()
""",
}


@pytest.mark.parametrize("kind", list(NOISY_TESTS))
def test_noise_fails_the_run(tmp_path: Path, kind: str) -> None:
    config = Path(__file__).resolve().parent.parent / "pyproject.toml"
    test = tmp_path / "test_noisy.py"
    test.write_text(NOISY_TESTS[kind])
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(config),
         "--rootdir", str(tmp_path), str(test)],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout + done.stderr
