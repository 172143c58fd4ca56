"""The suite's own configuration fails a test that leaks a file: a clean
run prints no ResourceWarning (issue: a leak must not pass unnoticed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LEAKY_TEST = """
import asyncio
from aiofile import AIOFile

def test_leaks_an_aiofile(tmp_path):
    async def main():
        return await AIOFile(tmp_path / "leak", "w")
    afp = asyncio.run(main())
    del afp
"""


def test_a_leaked_file_fails_the_run(tmp_path: Path) -> None:
    config = Path(__file__).resolve().parent.parent / "pyproject.toml"
    (tmp_path / "test_leaky.py").write_text(LEAKY_TEST)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(config),
         "--rootdir", str(tmp_path), str(tmp_path / "test_leaky.py")],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ResourceWarning" in done.stdout
    assert "unclosed file" in done.stdout
