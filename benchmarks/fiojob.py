"""The direct-I/O group's reference: fio, its command lines and its JSON.

fio (https://github.com/axboe/fio) runs the same pattern as ours on the
same file: ``--ioengine=io_uring`` with ``--iodepth`` for many in flight,
``--ioengine=psync`` for one at a time, ``--output-format=json``. The driver
finds it (or installs it with the system package manager); the measuring
worker builds the command and parses what fio printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from suite import IoJob


@dataclass(frozen=True)
class FioResult:
    """One fio job's figures, for the direction it ran."""

    ios: int  # operations completed
    iops: float
    bytes_per_second: float
    mean_latency_us: float  # submission to completion, per operation
    runtime_seconds: float
    version: str


def fio_command(
    fio: str, name: str, job: IoJob, path: str, size: int, seconds: float, seed: int
) -> list[str]:
    """The fio command line for ``job`` on ``path`` for ``seconds``.

    Everything not named keeps fio's default; for random patterns that
    includes ``fadvise_hint`` (``POSIX_FADV_RANDOM`` on a buffered file,
    which our participants set too) and the random map (no block twice),
    and for a buffered file ``invalidate=1`` (its pages are dropped first,
    as the harness also does).
    """
    engine = ["--ioengine=psync"] if job.in_flight == 1 else [
        "--ioengine=io_uring", f"--iodepth={job.in_flight}"
    ]
    return [
        fio,
        f"--name={name}",
        f"--filename={path}",
        f"--size={size}",
        f"--rw={job.rw}",
        f"--bs={job.block}",
        f"--direct={int(job.direct)}",
        *engine,
        f"--runtime={max(1, round(seconds * 1000))}ms",
        "--time_based",
        f"--randseed={seed}",
        "--output-format=json",
    ]


def parse_fio_json(text: str, write: bool = False) -> FioResult:
    """Parse ``fio --output-format=json`` output (one job).

    fio may print notices (``fio: ...``) before the JSON document; they are
    skipped. Raises ``ValueError`` when there is no job result, the job
    reports an error, or it did no I/O in that direction.
    """
    start = text.find("{")
    if start < 0:
        raise ValueError(f"no JSON in fio's output: {text[:200]!r}")
    try:
        document: dict[str, Any] = json.loads(text[start:])
    except json.JSONDecodeError as exc:
        raise ValueError(f"fio's output is not valid JSON: {exc}") from exc
    jobs = document.get("jobs") or []
    if len(jobs) != 1:
        raise ValueError(f"expected one fio job, got {len(jobs)}")
    job = jobs[0]
    if job.get("error"):
        raise ValueError(f"fio job {job.get('jobname')!r} failed: error {job['error']}")
    side = job["write" if write else "read"]
    ios = int(side["total_ios"])
    runtime = float(side["runtime"]) / 1000  # milliseconds
    if ios <= 0 or runtime <= 0:
        raise ValueError(f"fio did no {'writes' if write else 'reads'}")
    return FioResult(
        ios=ios,
        iops=float(side["iops"]),
        bytes_per_second=float(side["bw_bytes"]),
        mean_latency_us=float(side["lat_ns"]["mean"]) / 1000,
        runtime_seconds=runtime,
        version=str(document.get("fio version", "?")),
    )


def run_fio(command: list[str], timeout: float, write: bool) -> FioResult:
    """Run one fio job; ``RuntimeError`` with fio's message if it fails."""
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"fio exited with {proc.returncode}: {' | '.join(message)}")
    return parse_fio_json(proc.stdout, write=write)


def install_command() -> list[str] | None:
    """How to install fio here: the system package manager, as root or
    through ``sudo -n`` (never a password prompt); None if neither."""
    for manager in (["apt-get", "install", "-y", "fio"], ["dnf", "install", "-y", "fio"]):
        if shutil.which(manager[0]) is None:
            continue
        if os.geteuid() == 0:
            return manager
        if shutil.which("sudo") is not None:
            return ["sudo", "-n", *manager]
    return None


def locate_fio(install: bool = True, path: str | None = None) -> tuple[str | None, str]:
    """fio's executable (installing it when missing and ``install``), and a
    one-line account: its version, or why it is not there."""
    found = shutil.which("fio", path=path)
    if found is None and install:
        command = install_command()
        if command is None:
            return None, "fio is not installed and no package manager can install it here"
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, timeout=600,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"fio is not installed and `{' '.join(command)}` failed: {exc}"
        found = shutil.which("fio", path=path)
        if found is None:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
            return None, (
                f"fio is not installed and `{' '.join(command)}` did not install it"
                + (f": {tail[0]}" if tail else "")
            )
    if found is None:
        return None, "fio is not installed"
    try:
        version = subprocess.run(
            [found, "--version"], capture_output=True, text=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{found} does not run: {exc}"
    return found, f"{version or 'fio'} ({found})"
