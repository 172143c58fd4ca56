"""Run Python in a child process with a chosen caio (selection is per process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import caio


def run_python(
    *args: str, env: dict[str, str] | None = None, path: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python *args`` importing caio from ``path`` (default: this caio).

    The child gets no CAIO_* variable but those in ``env``.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CAIO_")}
    where = path or Path(caio.__file__).parent.parent
    full_env["PYTHONPATH"] = str(where)
    full_env.update(env or {})
    # Run from there too: the current directory comes first on sys.path.
    return subprocess.run(
        [sys.executable, *args], env=full_env, capture_output=True, text=True,
        timeout=120, check=False, cwd=where,
    )
