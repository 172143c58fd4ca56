"""Benchmark caio's backends, aiofile, aiofiles and the standard library.

    python benchmarks/run.py            # the full suite (what ``nox -s bench`` runs)
    python benchmarks/run.py --quick    # small files, 2 rounds: for development
    python benchmarks/run.py --cold     # drop the page cache before each measurement
    python benchmarks/run.py --workloads direct   # the direct-I/O group alone, against fio

Every measurement runs in its own process; the rounds visit the
participants in a rotating order, so drift on a shared machine hits them
all alike (the direct-I/O group also runs its reference, fio, before and
after every other participant: a disk drifts within seconds). The report
(medians, ratios against the stdlib baseline of the same run, targets with
PASS/FAIL) is printed and written with the raw results (JSON, CSV) and a
PNG chart to ``benchmarks/results/``.
See docs/performance.md for the methodology.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import fiojob
import report
from suite import (
    ALL_PARTICIPANTS,
    BASELINE,
    CAIO_BACKENDS,
    DIRECT_GROUP,
    FIO,
    FULL,
    GROUPS,
    MIB,
    PUBLISHED,
    QUICK,
    WORKLOADS,
    Sizes,
    Workload,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKER = HERE / "workloads.py"
IN_TREE = (REPO / "packages" / "caio", REPO / "packages" / "aiofile")

#: bump when the generated data changes, so old data files are rebuilt.
DATA_VERSION = 1


# ---------------------------------------------------------------- data files


def write_random_file(path: Path, size: int, seed: int) -> None:
    """Incompressible bytes, different in every block (so a copy or a read
    at the wrong offset cannot look right by accident)."""
    rng = random.Random(seed)
    piece = 16 * MIB
    with open(path, "wb") as f:
        for start in range(0, size, piece):
            f.write(rng.randbytes(min(piece, size - start)))
        # Written back now, not during the first measurements (a page under
        # writeback makes the next write to it wait).
        os.fsync(f.fileno())


def write_lines_file(path: Path, size: int, seed: int) -> int:
    """Short lines (0-60 characters, some non-ASCII); returns the line count."""
    rng = random.Random(seed)
    words = ["caio", "aiofile", "été", "naïve", "日本", "ring", "x", "0123456789", "line"]
    pool = []
    for _ in range(20_000):
        line = " ".join(rng.choice(words) for _ in range(rng.randrange(0, 8)))
        pool.append((line[:60] + "\n").encode())
    count = written = 0
    with open(path, "wb") as f:
        while written < size:
            batch = rng.choices(pool, k=10_000)
            data = b"".join(batch)
            f.write(data)
            written += len(data)
            count += len(batch)
        os.fsync(f.fileno())
    return count


def prepare_data(data_dir: Path, sizes: Sizes, needed: set[str]) -> dict[str, Any]:
    """Create the data files that are missing or stale; returns their paths
    and the line count of the text file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = data_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    wanted = {
        "stream": (f"stream-{sizes.stream_file // MIB}M.bin", sizes.stream_file, "random", 1),
        "write": (f"write-{sizes.write_file // MIB}M.bin", sizes.write_file, "random", 2),
        "lines": (f"lines-{sizes.lines_file // MIB}M.txt", sizes.lines_file, "lines", 3),
        "mem": (f"mem-{sizes.mem_file // MIB}M.bin", sizes.mem_file, "random", 4),
        "direct": (f"direct-{sizes.direct_file // MIB}M.bin", sizes.direct_file, "random", 5),
    }
    files: dict[str, str] = {}
    line_count = 0
    for key, (name, size, kind, seed) in wanted.items():
        path = data_dir / name
        files[key] = str(path)
        if key not in needed:
            continue
        entry = manifest.get(name)
        fresh = (
            entry is not None
            and entry.get("version") == DATA_VERSION
            and path.exists()
            and path.stat().st_size == entry.get("size")
        )
        if not fresh:
            started = time.monotonic()
            print(f"generating {path} ({size // MIB} MiB) ...", flush=True)
            if kind == "lines":
                entry = {"line_count": write_lines_file(path, size, seed)}
            else:
                write_random_file(path, size, seed)
                entry = {}
            entry.update(version=DATA_VERSION, size=path.stat().st_size)
            manifest[name] = entry
            manifest_path.write_text(json.dumps(manifest, indent=1))
            print(f"  done in {time.monotonic() - started:.1f} s", flush=True)
        if kind == "lines":
            line_count = entry["line_count"]
    return {"files": files, "line_count": line_count}


def filesystem_of(path: str) -> tuple[str, str]:
    """The type and the source of the filesystem holding ``path``
    (the longest mount point that contains it, from /proc/self/mounts)."""
    real = os.path.realpath(path)
    best = ("", "?", "?")
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                source, point, kind = fields[0], fields[1].replace("\\040", " "), fields[2]
                inside = real == point or real.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best[0]):
                    best = (point, kind, source)
    except OSError:
        pass
    return best[1], best[2]


def direct_io_problem(path: str) -> str | None:
    """Why ``path`` cannot be opened with O_DIRECT here (tmpfs, say), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as exc:
        kind, _ = filesystem_of(path)
        return f"O_DIRECT refused on {path} ({kind}): {exc.strerror}"
    os.close(fd)
    return None


def warm_cache(paths: list[str]) -> None:
    """Read each file once so the measurements start page-cache-hot."""
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.read(8 * MIB):
                pass


# ---------------------------------------------------------------- processes


def worker_env(participant: str | None, pythonpath: list[str]) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CAIO_IMPL", None)
    if participant in CAIO_BACKENDS:
        env["CAIO_IMPL"] = CAIO_BACKENDS[participant]
    if participant == PUBLISHED:
        pythonpath = []  # its own caio, never the tree's
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([*pythonpath, env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
    return env


def run_probe(pythonpath: list[str]) -> dict[str, Any]:
    """Ask a fresh interpreter what imports (and which caio backend is the
    default, with ``CAIO_IMPL`` unset)."""
    with tempfile.TemporaryDirectory(prefix="caio-bench-") as tmp:
        out = Path(tmp, "probe.json")
        subprocess.run(
            [sys.executable, str(WORKER), "--probe", str(out)],
            env=worker_env(None, pythonpath),
            check=True,
            timeout=60,
        )
        probe: dict[str, Any] = json.loads(out.read_text())
        return probe


def run_one(
    spec: dict[str, Any], timeout: float, pythonpath: list[str], python: str = sys.executable
) -> dict[str, Any]:
    """One measurement in a new process; never raises for the worker's sake."""
    fd, out_name = tempfile.mkstemp(prefix="caio-bench-", suffix=".json")
    os.close(fd)
    out = Path(out_name)
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [python, str(WORKER), json.dumps(spec), str(out)],
            env=worker_env(spec["participant"], pythonpath),
            stdout=subprocess.DEVNULL,  # examples/cp.py may print
            stderr=subprocess.PIPE,
            timeout=timeout,
        )
        text = out.read_text()
        if text:
            result: dict[str, Any] = json.loads(text)
        else:
            tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
            how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
            result = {"error": f"worker died ({how}): {' | '.join(tail)}", "unavailable": False}
    except subprocess.TimeoutExpired:
        result = {
            "error": f"timed out after {timeout:.0f} s",
            "unavailable": False,
            "timed_out": True,
        }
    finally:
        out.unlink(missing_ok=True)
    result["wall_seconds"] = time.monotonic() - started
    return result


# ---------------------------------------------------------------- main


def git_commit() -> str | None:
    """The commit measured (``-dirty`` with local changes), if known."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small files, 2 rounds (development)")
    parser.add_argument(
        "--cold", action="store_true", help="drop the page cache before each measurement"
    )
    parser.add_argument("--rounds", type=int, help="override the number of rounds")
    parser.add_argument(
        "--workloads",
        help="comma-separated subset of the groups "
        + ",".join(GROUPS)
        + " and the workloads "
        + ",".join(w.name for w in WORKLOADS),
    )
    parser.add_argument(
        "--participants", help="comma-separated subset of: " + ",".join(ALL_PARTICIPANTS)
    )
    parser.add_argument(
        "--published-python",
        default=os.environ.get("CAIO_BENCH_PUBLISHED_PYTHON"),
        help="a Python with the published caio==0.12.* installed (default: "
        "$CAIO_BENCH_PUBLISHED_PYTHON); without it that participant is skipped",
    )
    parser.add_argument(
        "--no-fio-install",
        action="store_true",
        help="do not install fio with the system package manager when it is missing",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=HERE / "results" / "data", help="where data files live"
    )
    parser.add_argument(
        "--out-dir", type=Path, default=HERE / "results", help="where results are written"
    )
    parser.add_argument(
        "--in-tree",
        action="store_true",
        help="import caio and aiofile from packages/ (automatic when they are not installed)",
    )
    parser.add_argument("--no-chart", action="store_true", help="do not draw the PNG")
    return parser.parse_args(argv)


def choose_subset(text: str | None, allowed: list[str], what: str) -> list[str]:
    if not text:
        return allowed
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return [name for name in allowed if name in chosen]


def choose_workloads(text: str | None) -> list[Workload]:
    """``--workloads``: workload names and group names (a group stands for
    all its workloads)."""
    names = [w.name for w in WORKLOADS]
    chosen = choose_subset(text, [*GROUPS, *names], "workload or group")
    return [w for w in WORKLOADS if w.name in chosen or w.group in chosen]


def rounds_of(w: Workload, sizes: Sizes) -> int:
    rounds = sizes.direct_rounds if w.group == DIRECT_GROUP else sizes.rounds
    return rounds if w.max_rounds is None else min(rounds, w.max_rounds)


def seed_for(w: Workload, round_index: int) -> int:
    """The offsets' seed. Page-cache-hot workloads: one per round, so every
    participant of a round reads the same blocks. The direct-I/O group: a
    fresh one per measurement, fio's included, so that no participant reads
    the blocks another one (or an earlier run) just read: a cache below the
    guest's page cache (a virtual disk's host) would favour it."""
    if w.group == DIRECT_GROUP:
        return secrets.randbelow(1 << 31)
    return 1000 + round_index


def round_order(
    w: Workload,
    rotated: list[str],
    reference: str,
    known_unavailable: dict[tuple[str, str], str],
) -> list[str]:
    """Who runs, in which order, for ``w`` in one round: the rotated
    participants; for an interleaved workload, its reference (this run's:
    ``report.reference_of``) before the first and after each of the others
    that can run (the reference once, if it cannot)."""
    order = [p for p in rotated if p in w.participants]
    if not w.interleaved or reference not in order or (w.name, reference) in known_unavailable:
        return order
    interleaved = [reference]
    for participant in order:
        if participant == reference:
            continue
        interleaved.append(participant)
        if (w.name, participant) not in known_unavailable:
            interleaved.append(reference)
    return interleaved


def locate_reference(
    workloads: list[Workload], participants: list[str], install: bool
) -> tuple[str | None, str | None, dict[str, str]]:
    """fio for the workloads that compare with it: its path (or None), a
    one-line account for the report, and the workloads whose reference
    falls back to the synchronous loop because fio is not there."""
    users = [w for w in workloads if FIO in w.participants]
    if not users or FIO not in participants:
        return None, None, {}
    fio, account = fiojob.locate_fio(install=install)
    if fio is not None:
        return fio, f"fio: {account}", {}
    fallback = {w.name: BASELINE for w in users if w.reference == FIO}
    return None, (
        f"fio: {account}; the direct-I/O group compares with a synchronous "
        "os.preadv / os.pwrite loop instead"
    ), fallback


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    sizes = QUICK if args.quick else FULL
    if args.rounds:
        sizes = replace(sizes, rounds=args.rounds, direct_rounds=args.rounds)
    workloads = choose_workloads(args.workloads)
    offered = [p for p in ALL_PARTICIPANTS if any(p in w.participants for w in workloads)]
    participants = choose_subset(args.participants, offered, "participant")
    if BASELINE not in participants:
        participants.insert(0, BASELINE)  # ratios need it

    pythonpath: list[str] = []
    probe = run_probe(pythonpath)
    if args.in_tree or (not probe["caio"]["ok"] and (IN_TREE[0] / "caio" / "__init__.py").exists()):
        pythonpath = [str(p) for p in IN_TREE]
        probe = run_probe(pythonpath)
        print(f"using the in-tree packages: PYTHONPATH={os.pathsep.join(pythonpath)}")
    for name in ("caio", "aiofile", "aiofiles"):
        info = probe[name]
        where = (
            f"{info['version']} ({info['file']})"
            if info["ok"]
            else f"unavailable ({info['error']})"
        )
        print(f"{name:9} {where}")
    print(f"default caio backend: {probe['default'] or 'none'}")

    needed = {"stream"} if any(w.group != DIRECT_GROUP for w in workloads) else set()
    if any(w.group == DIRECT_GROUP for w in workloads):
        needed.add("direct")
    names = {w.name for w in workloads}
    if names & {"rand_write_1", "rand_write_64", "rand_write_64_burst"}:
        needed.add("write")
    if "lines" in names:
        needed.add("lines")
    if "mem_stream" in names:
        needed.add("mem")
    data = prepare_data(args.data_dir, sizes, needed)
    if not args.cold:
        warm_cache([data["files"][key] for key in sorted(needed - {"direct"})])

    fio, fio_account, references = locate_reference(
        workloads, participants, install=not args.no_fio_install
    )
    direct_file: dict[str, Any] = {}
    direct_problem = None
    if "direct" in needed:
        path = data["files"]["direct"]
        kind, source = filesystem_of(path)
        direct_problem = direct_io_problem(path)
        direct_file = {"path": path, "size": os.path.getsize(path), "fs": kind, "device": source}
        print(f"direct-I/O file: {path} ({direct_file['size'] // MIB} MiB) on {kind} ({source})")
        if direct_problem:
            print(f"direct-I/O group: {direct_problem}")
        if fio_account:
            print(fio_account)
    published = args.published_python

    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": "cold" if args.cold else "hot",
        "quick": args.quick,
        "sizes": asdict(sizes),
        "participants": participants,
        "workloads": [w.name for w in workloads],
        "references": references,
        "fio": fio_account,
        "direct_file": direct_file,
        "published_python": published,
        "probe": probe,
        "pythonpath": pythonpath,
        "commit": git_commit(),
        "machine": {
            "uname": " ".join(os.uname()),
            "cpus": os.cpu_count(),
        },
    }

    raw: list[dict[str, Any]] = []
    known_unavailable: dict[tuple[str, str], str] = {}
    for participant in participants:
        if participant in CAIO_BACKENDS and not probe["backends"][participant]["ok"]:
            for w in workloads:
                if participant in w.participants:
                    known_unavailable[(w.name, participant)] = probe["backends"][participant][
                        "error"
                    ]
    if "aiofiles" in participants and not probe["aiofiles"]["ok"]:
        for w in workloads:
            known_unavailable[(w.name, "aiofiles")] = probe["aiofiles"]["error"]
    for w in workloads:
        if w.job is not None and w.job.direct and direct_problem:
            for participant in w.participants:
                known_unavailable[(w.name, participant)] = direct_problem
        if fio is None and fio_account:
            known_unavailable.setdefault((w.name, FIO), fio_account.split("; ")[0])
        if not published:
            known_unavailable.setdefault(
                (w.name, PUBLISHED),
                "no --published-python (a Python with caio==0.12.* installed)",
            )

    order = 0
    for round_index in range(max(rounds_of(w, sizes) for w in workloads)):
        rotation = round_index % len(participants)
        rotated = participants[rotation:] + participants[:rotation]
        for w in workloads:
            if round_index >= rounds_of(w, sizes):
                continue
            reference = report.reference_of(w, meta)
            for participant in round_order(w, rotated, reference, known_unavailable):
                row: dict[str, Any] = {
                    "round": round_index,
                    "workload": w.name,
                    "participant": participant,
                }
                reason = known_unavailable.get((w.name, participant))
                if reason is not None:
                    timed_out = reason.startswith("timed out")
                    row.update(error=reason, unavailable=not timed_out, skipped=True)
                    raw.append(row)
                    continue
                spec = {
                    "workload": w.name,
                    "participant": participant,
                    "files": data["files"],
                    "line_count": data["line_count"],
                    "scratch": str(args.data_dir),
                    "repo": str(REPO),
                    "cold": args.cold,
                    "seed": seed_for(w, round_index),
                    "sizes": asdict(sizes),
                    "fio": fio,
                }
                python = published if participant == PUBLISHED and published else sys.executable
                result = run_one(spec, sizes.timeout_seconds, pythonpath, python)
                order += 1
                row.update(order=order, seed=spec["seed"], **result)
                raw.append(row)
                if result.get("unavailable"):
                    known_unavailable[(w.name, participant)] = result["error"]
                elif result.get("timed_out"):
                    # A hang would repeat every round and eat the time budget.
                    known_unavailable[(w.name, participant)] = result["error"]
                print(report.progress_line(sizes.rounds, row, w), flush=True)

    meta["seconds"] = time.monotonic() - started
    summary = report.summarize(raw, meta)
    print()
    print(report.render(summary))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    suffix = ("-quick" if args.quick else "") + ("-cold" if args.cold else "")
    written = report.write_outputs(
        summary, args.out_dir / f"bench-{stamp}{suffix}", chart=not args.no_chart
    )
    for path in written:
        print(f"wrote {path}")
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
