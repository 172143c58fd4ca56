"""Summarise raw benchmark results: tables, targets, JSON, CSV and a chart.

``run.py`` calls this after measuring. It also re-renders a saved run::

    python benchmarks/report.py benchmarks/results/bench-YYYYmmdd-HHMMSS.json [--chart]
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from suite import (
    BASELINE,
    DEFAULT_GROUP,
    DIRECT_GROUP,
    FIO,
    TARGETS,
    WORKLOADS,
    WORKLOADS_BY_NAME,
    Workload,
)

Row = dict[str, Any]
Cell = dict[str, Any]


# ---------------------------------------------------------------- formatting


def fmt(value: float | None) -> str:
    """Three significant digits, with k/M for big numbers."""
    if value is None:
        return "-"
    magnitude = abs(value)
    for limit, scale, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if magnitude >= limit:
            return f"{value / scale:.3g}{suffix}"
    if magnitude >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def fmt_ratio(ratio: float) -> str:
    if ratio >= 100:
        return f"{ratio:.0f}x"
    if ratio >= 0.01:
        return f"{ratio:.2f}x"
    return f"{ratio:.2g}x"


def fmt_bytes(value: float) -> str:
    if abs(value) >= 1024 * 1024:
        return f"{value / 1024 / 1024:.1f}M"
    if abs(value) >= 10 * 1024:
        return f"{value / 1024:.0f}K"
    return f"{value:.0f}"


def progress_line(rounds: int, row: Row, workload: Workload) -> str:
    """One line per finished measurement, printed while the suite runs."""
    head = f"[{row['round'] + 1}/{rounds}] {workload.name:<13} {row['participant']:<12}"
    if "error" in row:
        kind = "unavailable" if row.get("unavailable") else "ERROR"
        return f"{head} {kind}: {row['error']}"
    partial = " (time-boxed)" if row.get("extra", {}).get("partial") else ""
    return f"{head} {fmt(row['value']):>8} {workload.unit}{partial}  [{row['wall_seconds']:.1f} s]"


# ---------------------------------------------------------------- summary


def reference_of(w: Workload, meta: dict[str, Any]) -> str:
    """The participant ``w``'s ratios are taken against in this run (the
    synchronous loop when fio was not there)."""
    reference: str = meta.get("references", {}).get(w.name, w.reference)
    return reference


def paired_ratios(rows: list[Row], participant: str, reference: str) -> list[float]:
    """Each of ``participant``'s values divided by the reference measured
    nearest to it in the same round: the geometric mean of the reference's
    runs just before and just after it (by ``order``), or the one there is.

    With one reference run per round this is plain pairing by round. Where
    the suite interleaves the reference (the direct-I/O group runs fio
    before and after every participant), it cancels the disk's drift over
    the seconds between neighbouring runs. The reference against itself is
    1.0 per run."""
    good = [r for r in rows if "error" not in r]
    mine = [r for r in good if r["participant"] == participant]
    if participant == reference:
        return [1.0 for _ in mine]
    refs = [r for r in good if r["participant"] == reference and r.get("value")]
    ratios: list[float] = []
    for row in mine:
        same = [r for r in refs if r["round"] == row["round"]]
        if "order" in row and all("order" in r for r in same):
            same.sort(key=lambda r: r["order"])
            before = [r for r in same if r["order"] < row["order"]][-1:]
            after = [r for r in same if r["order"] > row["order"]][:1]
            same = before + after
        if same:
            logs = [math.log(r["value"]) for r in same]
            ratios.append(row["value"] / math.exp(sum(logs) / len(logs)))
    return ratios


def summarize(raw: list[Row], meta: dict[str, Any]) -> dict[str, Any]:
    """Medians per workload and participant, ratios against the workload's
    reference (stdlib, or fio for the direct-I/O group: the median of each
    run's value divided by the reference measured next to it in the same
    round, see ``paired_ratios``), memory worst cases, and targets."""
    cells: dict[str, dict[str, Cell]] = {}
    for w in WORKLOADS:
        if w.name not in meta["workloads"]:
            continue
        rows = [r for r in raw if r["workload"] == w.name]
        reference = reference_of(w, meta)
        cells[w.name] = {}
        for participant in meta["participants"]:
            cells[w.name][participant] = summarize_cell(w, rows, reference, participant)
    summary: dict[str, Any] = {"meta": meta, "cells": cells, "raw": raw}
    summary["targets"] = evaluate_targets(summary)
    return summary


def summarize_cell(w: Workload, rows: list[Row], reference: str, participant: str) -> Cell:
    if participant not in w.participants:
        return {"status": "n/a"}
    mine = [r for r in rows if r["participant"] == participant]
    good = [r for r in mine if "error" not in r]
    bad = [r for r in mine if "error" in r]
    if not good:
        if not bad:
            return {"status": "n/a"}
        status = "unavailable" if all(r.get("unavailable") for r in bad) else "error"
        return {"status": status, "reason": bad[0]["error"]}
    values = [r["value"] for r in good]
    cell: Cell = {
        "status": "ok",
        "n": len(values),
        "values": values,
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "failed_rounds": len(bad),
    }
    if bad:
        cell["reason"] = bad[0]["error"]
    ratios = paired_ratios(rows, participant, reference)
    if ratios:
        cell.update(
            ratios=ratios,
            ratio=statistics.median(ratios),
            ratio_min=min(ratios),
            ratio_max=max(ratios),
        )
    if w.memory:
        # Memory is judged by its worst round, key by key.
        worst: dict[str, float] = {}
        for r in good:
            for key, value in {"value": r["value"], **r.get("extra", {})}.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    worst[key] = max(worst.get(key, value), value)
        cell["worst"] = worst
    return cell


def evaluate_targets(summary: dict[str, Any]) -> list[Row]:
    default = summary["meta"]["probe"].get("default")
    out: list[Row] = []
    for t in TARGETS:
        participant = default if t.participant == "default" else t.participant
        label = f"{t.label} [{participant or 'default: none'}]"
        row: Row = {
            "label": label,
            "workload": t.workload,
            "participant": participant,
            "op": t.op,
            "goal": t.goal,
        }
        cells = summary["cells"].get(t.workload, {})
        cell = cells.get(participant or "", {"status": "n/a"})
        reference = cells.get(t.reference, {"status": "n/a"})
        measured: float | None = None
        if t.measure == "ratio" and cell.get("status") == "ok" and reference["status"] != "ok":
            cell = {**reference, "reason": f"{t.reference}: {reference.get('reason', 'n/a')}"}
        elif cell.get("status") == "ok":
            if t.measure == "ratio":
                # The target's own reference, whatever the tables divide by.
                rows = [r for r in summary["raw"] if r["workload"] == t.workload]
                ratios = paired_ratios(rows, participant or "", t.reference)
                measured = statistics.median(ratios) if ratios else None
            else:
                measured = cell.get("worst", {}).get(t.measure)
        if measured is None:
            row.update(
                measured=None, result="n/a", reason=cell.get("reason", cell.get("status", ""))
            )
        else:
            passed = measured >= t.goal if t.op == ">=" else measured <= t.goal
            row.update(measured=measured, result="PASS" if passed else "FAIL")
        row["ratio"] = t.measure == "ratio"
        row["measure"] = t.measure
        row["reference"] = t.reference
        out.append(row)
    return out


# ---------------------------------------------------------------- text tables


def short_status(cell: Cell) -> str:
    return {"unavailable": "unavail.", "error": "ERROR", "n/a": "n/a"}.get(cell["status"], "?")


def table(header: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    """Aligned plain text (first column left, the rest right) or Markdown."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for index, r in enumerate([header, *rows]):
        first = r[0].ljust(widths[0])
        rest = [c.rjust(widths[i + 1]) for i, c in enumerate(r[1:])]
        lines.append("  ".join([first, *rest]).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def render(summary: dict[str, Any], markdown: bool = False) -> str:
    """The report as plain text for the terminal, or as Markdown for docs."""
    meta = summary["meta"]
    cells = summary["cells"]
    rounds = meta["sizes"]["rounds"]
    shown = [w for w in WORKLOADS if w.name in cells]
    timed = [w for w in shown if not w.memory and w.group == DEFAULT_GROUP]
    memory = [w for w in shown if w.memory]
    direct = [w for w in shown if w.group == DIRECT_GROUP]
    participants = columns_for(meta, [w for w in shown if w.group == DEFAULT_GROUP])
    parts: list[str] = []
    mode = (
        "page cache hot" if meta["mode"] == "hot" else "page cache dropped before each measurement"
    )
    if timed or memory:
        parts.append(
            f"caio benchmark: {rounds} rounds, one process per measurement, {mode}"
            + (" (--quick)" if meta["quick"] else "")
        )
    parts.append(
        ("\n" if markdown else "")
        + f"default caio backend: {meta['probe'].get('default') or 'none'}; "
        f"commit {meta.get('commit') or '?'}; {meta['machine']['uname']}"
    )

    def section(title: str, header: list[str], rows: list[list[str]]) -> None:
        if markdown:
            parts.append(f"\n**{title}**\n\n" + table(header, rows, markdown=True))
        else:
            parts.append(f"\n{title}\n" + table(header, rows))

    if timed:
        section(
            "Medians", ["workload", "unit", *participants], median_rows(timed, cells, participants)
        )
        section(
            "Ratio vs stdlib (median over rounds of value / stdlib value of the same round)",
            ["workload", "", *participants],
            ratio_rows(timed, cells, participants, lambda w: ""),
        )

    if memory:
        rows = []
        for w in memory:
            if w.name == "mem_stream":
                lines = [("peak RSS growth, 1 MiB chunks (worst round)", "value", "MiB")]
            else:
                lines = [
                    (
                        f"kept per read (bytes object: {meta_bytes_size(cells[w.name])} B)",
                        "kept_per_op",
                        "B",
                    ),
                    ("retained after N reads, results dropped", "retained_n", "B"),
                    ("retained after 10 N reads, results dropped", "retained_10n", "B"),
                    ("peak during N reads", "peak_n", "B"),
                    ("peak during 10 N reads", "peak_10n", "B"),
                ]
            for title, key, unit in lines:
                row = [title, unit]
                for p in participants:
                    cell = cells[w.name][p]
                    if cell["status"] != "ok":
                        row.append(short_status(cell))
                    else:
                        value = cell["worst"].get(key)
                        row.append(
                            "-"
                            if value is None
                            else (fmt(value) if unit == "MiB" else fmt_bytes(value))
                        )
                rows.append(row)
        n = meta["sizes"]["alloc_ops"]
        section(
            f"Memory (worst round; tracemalloc with N = {n} reads of 4 KiB, 64 in flight)",
            ["check", "unit", *participants],
            rows,
        )

    if direct:
        render_direct(summary, direct, section, parts, markdown)

    rows = []
    for t in summary["targets"]:
        if t["workload"] not in cells:
            continue
        if t["measured"] is None:
            measured = "-"
        elif t["ratio"]:
            measured = fmt_ratio(t["measured"])
        else:
            measured = fmt(t["measured"])
        goal = f"{t['op']} {t['goal']:g}" + ("x" if t["ratio"] else "")
        rows.append([t["label"], measured, goal, t["result"]])
    section("Targets", ["target", "measured", "goal", "result"], rows)

    problems = []
    for w in WORKLOADS:
        for p in meta["participants"]:
            cell = cells.get(w.name, {}).get(p)
            if cell and cell.get("reason"):
                problems.append((p, w.name, cell["status"], cell["reason"]))
    if problems:
        parts.append("\nUnavailable or failed" + ("\n" if markdown else ""))
        seen: set[tuple[str, str]] = set()
        for p, name, status, reason in problems:
            if (p, reason) in seen:
                continue  # one line per participant and reason
            seen.add((p, reason))
            word = (
                "unavailable"
                if status == "unavailable"
                else ("some rounds failed" if status == "ok" else "error")
            )
            parts.append(f"{'-' if markdown else ' '} {p} / {name}: {word} ({reason})")
    return "\n".join(parts)


def median_rows(
    workloads: list[Workload], cells: dict[str, dict[str, Cell]], participants: list[str]
) -> list[list[str]]:
    rows = []
    for w in workloads:
        row = [w.title, w.unit]
        for p in participants:
            cell = cells[w.name][p]
            row.append(fmt(cell["median"]) if cell["status"] == "ok" else short_status(cell))
        rows.append(row)
    return rows


def ratio_rows(
    workloads: list[Workload],
    cells: dict[str, dict[str, Cell]],
    participants: list[str],
    against: Callable[[Workload], str],
) -> list[list[str]]:
    rows = []
    for w in workloads:
        better = "higher" if w.higher_is_better else "lower"
        row = [w.title, f"{against(w)}{better} better"]
        for p in participants:
            cell = cells[w.name][p]
            if cell["status"] != "ok":
                row.append(short_status(cell))
            else:
                row.append(fmt_ratio(cell["ratio"]) if "ratio" in cell else "-")
        rows.append(row)
    return rows


def columns_for(meta: dict[str, Any], workloads: list[Workload]) -> list[str]:
    """The run's participants that take part in any of ``workloads``."""
    return [p for p in meta["participants"] if any(p in w.participants for w in workloads)]


def render_direct(
    summary: dict[str, Any],
    direct: list[Workload],
    section: Callable[[str, list[str], list[list[str]]], None],
    parts: list[str],
    markdown: bool,
) -> None:
    """The direct-I/O group: medians, ratios against each workload's
    reference (fio), the file, fio's version and its command lines."""
    meta = summary["meta"]
    cells = summary["cells"]
    participants = columns_for(meta, direct)
    rounds = meta["sizes"].get("direct_rounds", meta["sizes"]["rounds"])
    info = meta.get("direct_file") or {}
    where = (
        f"{info['path']}, {info['size'] // (1024 * 1024)} MiB on {info['fs']} ({info['device']})"
        if info
        else "?"
    )
    gap = "\n" if markdown else ""
    parts.append(
        f"\nDirect and cold I/O: {rounds} rounds, participants in rotating order, each"
        f" run between two runs of the reference; file {where}"
    )
    if meta.get("fio"):
        parts.append(gap + meta["fio"])
    section(
        "Direct and cold I/O: medians",
        ["workload", "unit", *participants],
        median_rows(direct, cells, participants),
    )
    section(
        "Direct and cold I/O: ratio vs the reference (median over rounds; each run against"
        " the reference runs just before and after it)",
        ["workload", "", *participants],
        ratio_rows(direct, cells, participants, lambda w: f"vs {reference_of(w, meta)}, "),
    )
    commands: dict[str, str] = {}
    for r in summary["raw"]:
        command = r.get("extra", {}).get("command")
        if r["participant"] == FIO and command and r["workload"] not in commands:
            commands[r["workload"]] = command
    lines = [f"{w.name}: {commands[w.name]}" for w in direct if w.name in commands]
    if lines and markdown:
        parts.append("\n**fio command lines**\n\n```\n" + "\n".join(lines) + "\n```")
    elif lines:
        parts.append("\nfio command lines\n" + "\n".join(f"  {line}" for line in lines))


def meta_bytes_size(cells: dict[str, Cell]) -> str:
    for cell in cells.values():
        size = cell.get("worst", {}).get("bytes_object_size")
        if size is not None:
            return f"{size:.0f}"
    return "?"


# ---------------------------------------------------------------- files


def write_outputs(summary: dict[str, Any], base: Path, chart: bool = True) -> list[Path]:
    """Write ``base``.json (everything), .md (the report as Markdown), .csv
    (one row per measurement) and .png (the chart, when matplotlib is
    there); return the paths written."""
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    json_path = base.with_suffix(".json")
    json_path.write_text(json.dumps(summary, indent=1, default=str))
    written.append(json_path)
    md_path = base.with_suffix(".md")
    md_path.write_text(render(summary, markdown=True) + "\n")
    written.append(md_path)
    csv_path = base.with_suffix(".csv")
    write_csv(summary["raw"], csv_path)
    written.append(csv_path)
    if chart:
        png_path = base.with_suffix(".png")
        if draw_chart(summary, png_path):
            written.append(png_path)
    return written


def write_csv(raw: list[Row], path: Path) -> None:
    columns = [
        "round",
        "order",
        "workload",
        "participant",
        "status",
        "unit",
        "value",
        "units",
        "seconds",
        "wall_seconds",
        "error",
        "extra",
    ]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in raw:
            unit = WORKLOADS_BY_NAME[r["workload"]].unit
            extra = json.dumps(r.get("extra", {}), sort_keys=True)
            if "error" not in r:
                status = "ok"
            elif r.get("skipped"):
                status = "skipped"
            else:
                status = "unavailable" if r.get("unavailable") else "error"
            writer.writerow(
                [
                    r.get("round"),
                    r.get("order"),
                    r["workload"],
                    r["participant"],
                    status,
                    unit,
                    r.get("value"),
                    r.get("units"),
                    r.get("seconds"),
                    r.get("wall_seconds"),
                    r.get("error", ""),
                    extra,
                ]
            )


def draw_chart(summary: dict[str, Any], path: Path) -> bool:
    """One panel per workload: the median ratio vs stdlib per participant
    (whiskers: min-max over rounds; red dashes: targets), and the memory
    checks in their own units. False if matplotlib is not installed."""
    try:
        matplotlib = importlib.import_module("matplotlib")
        matplotlib.use("Agg")  # files only, no display
        plt = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        print("chart skipped: matplotlib is not installed", file=sys.stderr)
        return False
    meta = summary["meta"]
    cells = summary["cells"]
    shown = [w for w in WORKLOADS if w.name in cells]
    columns = 3
    rows = (len(shown) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows), squeeze=False)
    palette = plt.get_cmap("tab10")
    colors = {p: palette(i) for i, p in enumerate(meta["participants"])}
    for ax, w in zip(axes.flat, shown, strict=False):
        draw_panel(ax, w, summary, colors)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    mode = "hot page cache" if meta["mode"] == "hot" else "cold page cache"
    fig.suptitle(
        f"caio benchmark, {meta['sizes']['rounds']} rounds, {mode}, {meta['started']}\n"
        "bars: median ratio vs stdlib of the same round; whiskers: min-max; red dashes: targets",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def draw_panel(ax: Any, w: Workload, summary: dict[str, Any], colors: dict[str, Any]) -> None:
    meta = summary["meta"]
    cells = summary["cells"][w.name]
    names: list[str] = []
    heights: list[float] = []
    low: list[float] = []
    high: list[float] = []
    for p in meta["participants"]:
        cell = cells[p]
        if cell.get("status") != "ok":
            continue
        if w.memory:
            names.append(p)
            heights.append(cell["worst"]["value"])
            low.append(cell["worst"]["value"] - cell["min"])
            high.append(0.0)
        elif p != reference_of(w, meta) and "ratio" in cell:
            names.append(p)
            heights.append(cell["ratio"])
            low.append(cell["ratio"] - cell["ratio_min"])
            high.append(cell["ratio_max"] - cell["ratio"])
    ax.set_title(w.title, fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    if not names:
        ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        return
    positions = list(range(len(names)))
    ax.bar(positions, heights, color=[colors[p] for p in names], yerr=[low, high], capsize=3)
    ax.set_xticks(positions, names, rotation=30, ha="right", fontsize=8)
    for x, height in zip(positions, heights, strict=True):
        label = fmt(height) if w.memory else f"{fmt(height)}x"
        # Beside the whisker, not on it.
        ax.annotate(label, (x + 0.08, height), ha="left", va="bottom", fontsize=7)
    if w.memory:
        if w.name == "mem_stream":
            ax.set_ylabel("MiB (worst round)", fontsize=8)
        else:
            ax.set_ylabel("bytes kept per read", fontsize=8)
            size = meta_bytes_size(cells)
            if size != "?":
                ax.axhline(float(size), color="black", linewidth=0.8, linestyle="dotted")
    else:
        ax.axhline(1.0, color="black", linewidth=0.8)
        better = "higher" if w.higher_is_better else "lower"
        ax.set_ylabel(f"x {reference_of(w, meta)} ({w.unit}, {better} is better)", fontsize=8)
        positive = [h for h in heights if h > 0]
        if positive and max(positive) / min(positive) > 20:
            ax.set_yscale("log")  # aiofiles can be 100x off the others
    for t in summary["targets"]:
        if (
            t["workload"] == w.name
            and t["participant"] in names
            and t["measure"] in ("ratio", "value")
            and (t["measure"] == "value" or t.get("reference", BASELINE) == reference_of(w, meta))
        ):
            x = names.index(t["participant"])
            ax.hlines(t["goal"], x - 0.45, x + 0.45, colors="red", linestyles="dashed")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Re-render a saved benchmark run.")
    parser.add_argument("json", type=Path)
    parser.add_argument("--chart", type=Path, help="also draw the chart to this PNG")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args(argv)
    saved = json.loads(args.json.read_text())
    summary = summarize(saved["raw"], saved["meta"])
    print(render(summary, markdown=args.markdown))
    if args.chart:
        draw_chart(summary, args.chart)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
