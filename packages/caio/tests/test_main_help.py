"""``python -m caio --help``: usage, exit 0, no backend probing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from caio._backends import BACKENDS


def run_caio(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIO_")}
    return subprocess.run(
        [sys.executable, "-m", "caio", *args], env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_exits_0(flag: str) -> None:
    proc = run_caio(flag)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith("usage: python -m caio")
    # It says how to choose a backend, naming every one of them ...
    assert "CAIO_IMPL=" + "|".join(BACKENDS) in " ".join(proc.stdout.split())
    # ... and does not run the report (which probes every backend).
    assert "selected:" not in proc.stdout


def test_unknown_argument_is_a_usage_error() -> None:
    proc = run_caio("--no-such-option")
    assert proc.returncode == 2
    assert "usage: python -m caio" in proc.stderr
    assert "--no-such-option" in proc.stderr
    assert "selected:" not in proc.stdout
