"""The direct-I/O group's own logic: fio's command lines and JSON, finding
fio, the fallback when it is missing, and the ratios and targets the
report computes against it.

Run from the repository root: ``pytest benchmarks/tests``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

import fiojob
import pytest
import report
import run
import workloads
from suite import BASELINE, FIO, QUICK, WORKLOADS_BY_NAME, IoJob

DATA = Path(__file__).resolve().parent / "data"


def captured(name: str) -> str:
    """A real ``fio --output-format=json`` output, captured on this project's
    VM (fio 3.33, 64 MiB file, 300 ms): see each file's "job options"."""
    return (DATA / name).read_text()


# ---------------------------------------------------------------- fio's JSON


def test_parse_io_uring_read_job() -> None:
    text = captured("fio-randread-io_uring-64.json")
    options = json.loads(text)["jobs"][0]["job options"]
    assert (options["ioengine"], options["iodepth"]) == ("io_uring", "64")
    assert options["rw"] == "randread"
    got = fiojob.parse_fio_json(text)
    assert got.version == "fio-3.33"
    assert got.ios == 8460
    assert got.runtime_seconds == pytest.approx(0.302)
    # fio's own figures, and they agree with each other: IOPS is operations
    # over the runtime, bandwidth is IOPS times the 4 KiB block.
    assert got.iops == pytest.approx(28013.245033)
    assert got.iops == pytest.approx(got.ios / got.runtime_seconds, rel=0.01)
    assert got.bytes_per_second == pytest.approx(got.iops * 4096, rel=0.01)
    # 64 in flight at ~28k IOPS: Little's law puts each at ~2.3 ms.
    assert got.mean_latency_us == pytest.approx(2245.317058)
    assert got.mean_latency_us == pytest.approx(64 / got.iops * 1e6, rel=0.1)


def test_parse_psync_job_one_in_flight() -> None:
    got = fiojob.parse_fio_json(captured("fio-randread-psync-1.json"))
    assert got.ios == 2659
    # One at a time: the time per read is the latency.
    assert 1e6 / got.iops == pytest.approx(got.mean_latency_us, rel=0.05)


def test_parse_write_job_reads_the_write_side() -> None:
    text = captured("fio-randwrite-io_uring-64.json")
    got = fiojob.parse_fio_json(text, write=True)
    assert got.ios == 5668
    assert got.iops == pytest.approx(18522.875817)
    with pytest.raises(ValueError, match="did no reads"):
        fiojob.parse_fio_json(text, write=False)
    with pytest.raises(ValueError, match="did no writes"):
        fiojob.parse_fio_json(captured("fio-randread-io_uring-64.json"), write=True)


def test_parse_skips_notices_before_the_json() -> None:
    text = "fio: file hash not empty on exit\nnote: both iodepth >= 1\n" + captured(
        "fio-randread-psync-1.json"
    )
    assert fiojob.parse_fio_json(text).ios == 2659


def test_parse_rejects_a_failed_job_and_garbage() -> None:
    document = json.loads(captured("fio-randread-io_uring-64.json"))
    document["jobs"][0]["error"] = 22
    with pytest.raises(ValueError, match="failed: error 22"):
        fiojob.parse_fio_json(json.dumps(document))
    document["jobs"] = []
    with pytest.raises(ValueError, match="expected one fio job, got 0"):
        fiojob.parse_fio_json(json.dumps(document))
    with pytest.raises(ValueError, match="no JSON"):
        fiojob.parse_fio_json("fio: failed to open file\n")
    with pytest.raises(ValueError, match="not valid JSON"):
        fiojob.parse_fio_json('{"jobs": [')


# ---------------------------------------------------------------- command lines


def test_command_lines_match_the_workloads() -> None:
    def command(name: str) -> list[str]:
        job = WORKLOADS_BY_NAME[name].job
        assert job is not None
        return fiojob.fio_command("fio", name, job, "/data/f", 1 << 30, 0.8, 7)

    one = command("direct_read_1")
    assert "--ioengine=psync" in one
    assert not any(arg.startswith("--iodepth") for arg in one)
    assert {"--direct=1", "--rw=randread", "--bs=4096", "--runtime=800ms"} <= set(one)
    assert {"--filename=/data/f", "--size=1073741824", "--output-format=json"} <= set(one)
    many = command("direct_read_64")
    assert {"--ioengine=io_uring", "--iodepth=64", "--direct=1"} <= set(many)
    assert {"--rw=read", "--bs=1048576", "--iodepth=8"} <= set(command("direct_seq_1m"))
    assert "--rw=randwrite" in command("direct_write_64")
    assert {"--direct=0", "--ioengine=io_uring"} <= set(command("cold_read_64"))


# ---------------------------------------------------------------- fio missing


def test_locate_fio_reports_a_missing_fio(tmp_path: Path) -> None:
    fio, account = fiojob.locate_fio(install=False, path=str(tmp_path))
    assert fio is None
    assert account == "fio is not installed"


def test_missing_fio_falls_back_to_the_synchronous_loop(
    tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no fio on it
    group = run.choose_workloads("direct")
    assert [w.name for w in group] == [
        "direct_read_1",
        "direct_read_64",
        "direct_write_64",
        "direct_seq_1m",
        "cold_read_1",
        "cold_read_64",
    ]
    fio, account, references = run.locate_reference(group, [BASELINE, FIO], install=False)
    assert fio is None
    assert account is not None
    assert "fio is not installed" in account and "os.preadv" in account
    # Every workload that compared with fio now compares with the loop;
    # cold_read_1 compared with the loop already.
    assert references == {w.name: BASELINE for w in group if w.name != "cold_read_1"}


def test_worker_says_fio_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "direct.bin"
    path.write_bytes(os.urandom(1 << 20))
    job = WORKLOADS_BY_NAME["direct_read_64"].job
    assert job is not None
    spec = {
        "participant": FIO,
        "workload": "direct_read_64",
        "files": {"direct": str(path)},
        "sizes": asdict(QUICK),
        "seed": 1,
        "fio": None,
        "fio_reason": "fio is not installed",
    }
    with pytest.raises(workloads.Unavailable, match="fio is not installed"):
        workloads.measure_direct(spec, job)


def test_real_fio_job_through_the_worker(tmp_path: Path) -> None:
    fio = shutil.which("fio")
    if fio is None:
        pytest.skip("fio is not installed")
    path = tmp_path / "direct.bin"
    path.write_bytes(os.urandom(4 << 20))
    problem = run.direct_io_problem(str(path))
    if problem:
        pytest.skip(problem)  # a tmpfs /tmp
    job = IoJob("randread", 4096, 4, direct=True)
    spec = {
        "participant": FIO,
        "workload": "direct_read_64",
        "files": {"direct": str(path)},
        "sizes": {**asdict(QUICK), "budget_seconds": 0.1},
        "seed": 1,
        "fio": fio,
    }
    result = workloads.measure_direct(spec, job)
    extra = result["extra"]
    assert extra["command"].split()[0] == fio
    assert "--iodepth=4" in extra["command"].split()
    assert result["units"] > 0
    assert result["value"] == pytest.approx(result["units"] / result["seconds"], rel=0.05)


# ---------------------------------------------------------------- report


def meta_for(names: list[str], participants: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "workloads": names,
        "participants": participants,
        "probe": {"default": "caio-uring"},
        "sizes": asdict(QUICK),
        "mode": "hot",
        "quick": True,
        "machine": {"uname": "test"},
        "commit": None,
        **extra,
    }


def rows(workload: str, values: dict[str, list[float]]) -> list[dict[str, Any]]:
    return [
        {"round": r, "workload": workload, "participant": p, "value": v, "extra": {}}
        for p, series in values.items()
        for r, v in enumerate(series)
    ]


def target(summary: dict[str, Any], label_start: str, participant: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        t
        for t in summary["targets"]
        if t["label"].startswith(label_start) and t["participant"] == participant
    ]
    assert len(found) == 1
    return found[0]


def test_targets_are_paired_ratios_against_fio() -> None:
    fio = [80_000.0, 40_000.0, 60_000.0]
    uring = [76_000.0, 36_000.0, 60_000.0]  # 0.95, 0.90, 1.00 of the same round
    raw = rows("direct_read_64", {FIO: fio, BASELINE: [14e3] * 3, "caio-uring": uring})
    summary = report.summarize(raw, meta_for(["direct_read_64"], [BASELINE, "caio-uring", FIO]))
    cell = summary["cells"]["direct_read_64"]["caio-uring"]
    assert cell["ratio"] == pytest.approx(0.95)
    # Unpaired medians would say 60k / 60k = 1.0: the pairing matters.
    assert statistics.median(uring) / statistics.median(fio) == 1.0
    got = target(summary, "O_DIRECT 4K random reads, 64 in flight", "caio-uring")
    assert got["measured"] == pytest.approx(0.95)
    assert got["result"] == "PASS"  # >= 0.9
    assert target(summary, "O_DIRECT 4K random reads, 64 in flight", "caio-linux")["result"] == (
        "n/a"
    )
    text = report.render(summary)
    assert "Direct and cold I/O: medians" in text
    assert "vs fio, higher better" in text


def test_a_target_keeps_its_own_reference() -> None:
    # cold_read_64's table divides by fio; its second target by caio 0.12.
    raw = rows(
        "cold_read_64",
        {FIO: [30e3, 30e3], "caio-0.12": [20e3, 25e3], "caio-uring": [24e3, 25e3],
         BASELINE: [9e3, 9e3]},
    )
    summary = report.summarize(
        raw, meta_for(["cold_read_64"], [BASELINE, "caio-uring", FIO, "caio-0.12"])
    )
    assert summary["cells"]["cold_read_64"]["caio-uring"]["ratio"] == pytest.approx(49 / 60)
    published = target(summary, "cold 4K random reads, 64 in flight, IOPS vs caio", "caio-uring")
    assert published["measured"] == pytest.approx((24 / 20 + 1.0) / 2)
    assert published["result"] == "PASS"
    against_fio = target(summary, "cold 4K random reads, 64 in flight, IOPS vs fio", "caio-uring")
    assert against_fio["result"] == "FAIL"


def test_report_without_fio_uses_the_loop_and_says_so() -> None:
    raw = rows("direct_read_64", {BASELINE: [14e3, 16e3], "caio-uring": [28e3, 40e3]})
    raw += [
        {"round": r, "workload": "direct_read_64", "participant": FIO,
         "error": "fio is not installed", "unavailable": True, "skipped": True}
        for r in range(2)
    ]
    account = "fio: fio is not installed; the direct-I/O group compares with ... instead"
    meta = meta_for(
        ["direct_read_64"],
        [BASELINE, "caio-uring", FIO],
        references={"direct_read_64": BASELINE},
        fio=account,
    )
    summary = report.summarize(raw, meta)
    assert summary["cells"]["direct_read_64"]["caio-uring"]["ratio"] == pytest.approx(2.25)
    got = target(summary, "O_DIRECT 4K random reads, 64 in flight", "caio-uring")
    assert got["result"] == "n/a"
    assert "fio is not installed" in got["reason"]
    text = report.render(summary)
    assert account in text
    assert "vs stdlib, higher better" in text


# ---------------------------------------------------------------- interleaving


def test_the_reference_runs_before_and_after_each_participant() -> None:
    w = WORKLOADS_BY_NAME["direct_read_64"]
    rotated = ["caio-linux", FIO, BASELINE, "caio-uring", "aiofiles"]
    order = run.round_order(w, rotated, FIO, {})
    assert order == [FIO, "caio-linux", FIO, BASELINE, FIO, "caio-uring", FIO]
    # One that cannot run keeps its (skipped) place, with no fio run after it.
    skip = {("direct_read_64", "caio-linux"): "no"}
    assert run.round_order(w, rotated, FIO, skip) == [
        FIO, "caio-linux", BASELINE, FIO, "caio-uring", FIO
    ]
    # Without fio the synchronous loop is the reference, and is interleaved.
    gone = {("direct_read_64", FIO): "fio is not installed"}
    assert run.round_order(w, rotated, BASELINE, gone) == [
        BASELINE, "caio-linux", BASELINE, FIO, "caio-uring", BASELINE
    ]
    # A reference that cannot run is not repeated; other workloads rotate only.
    assert run.round_order(w, rotated, FIO, gone) == ["caio-linux", FIO, BASELINE, "caio-uring"]
    plain = run.round_order(WORKLOADS_BY_NAME["rand_read_64"], rotated, BASELINE, {})
    assert plain == ["caio-linux", BASELINE, "caio-uring", "aiofiles"]


def test_each_run_is_held_against_its_neighbouring_reference_runs() -> None:
    # One round in which the disk slows down from 100k to 40k IOPS.
    sequence = [(FIO, 100e3), ("caio-uring", 90e3), (FIO, 80e3), (BASELINE, 14e3),
                (FIO, 60e3), ("caio-linux", 50e3), (FIO, 40e3)]
    raw = [
        {"round": 0, "order": i, "workload": "direct_read_64", "participant": p, "value": v,
         "extra": {}}
        for i, (p, v) in enumerate(sequence, start=1)
    ]
    raw.reverse()  # the order field decides, not the list's
    summary = report.summarize(raw, meta_for(["direct_read_64"], [BASELINE, "caio-uring",
                                                                  "caio-linux", FIO]))
    cells = summary["cells"]["direct_read_64"]
    assert cells["caio-uring"]["ratio"] == pytest.approx(90 / (100 * 80) ** 0.5)
    assert cells["caio-linux"]["ratio"] == pytest.approx(50 / (60 * 40) ** 0.5)
    assert cells[BASELINE]["ratio"] == pytest.approx(14 / (80 * 60) ** 0.5)
    assert cells[FIO]["ratio"] == 1.0
    assert cells[FIO]["n"] == 4 and cells[FIO]["median"] == 70e3
    got = target(summary, "O_DIRECT 4K random reads, 64 in flight", "caio-linux")
    assert got["measured"] == pytest.approx(50 / (60 * 40) ** 0.5)  # 1.02: PASS
    assert got["result"] == "PASS"
    # At the round's edge only one neighbour exists; other rounds never count.
    raw.append({"round": 1, "order": 8, "workload": "direct_read_64", "participant": FIO,
                "value": 10e3, "extra": {}})
    raw.append({"round": 0, "order": 9, "workload": "direct_read_64",
                "participant": "caio-thread", "value": 20e3, "extra": {}})
    again = report.summarize(raw, meta_for(["direct_read_64"], [BASELINE, "caio-thread", FIO]))
    assert again["cells"]["direct_read_64"]["caio-thread"]["ratio"] == pytest.approx(0.5)
