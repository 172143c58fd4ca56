"""Group a ``perf record`` profile into where-the-time-goes buckets.

    perf record -e cpu-clock -F 10000 -o /tmp/p.data -- \\
        python benchmarks/profile/ops.py bare-uring 300000
    python benchmarks/profile/perf_split.py /tmp/p.data

Prints the share of CPU samples per bucket: user space by shared object
(the interpreter, our C extension, libc), kernel by what the symbol does
(syscall entry and exit, the page-cache read itself, io_uring request
handling, kernel AIO, eventfd, scheduling and wake-ups). ``cpu-clock`` is a
software event: it works on VMs without hardware counters (here
``perf stat -e instructions`` is "not supported"). Start-up and warm-up are
in the profile too; with a few hundred thousand operations they are a few
percent of the samples.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict

# Checked in order: the first pattern that matches names the bucket.
KERNEL_BUCKETS = (
    ("kernel: kernel AIO", r"aio|io_submit_one|sys_io_submit|io_getevents"),
    ("kernel: io_uring", r"io_uring|^_*io_"),
    ("kernel: eventfd", r"eventfd"),
    ("kernel: page-cache read (copy, lookup, atime)",
     r"copy_to_iter|copy_page_to_iter|filemap|folio|xas_|ext4_|atime|current_time|"
     r"rw_verify_area|security_file|vfs_read|read_iter|pread|preadv|do_iter_read|"
     r"rep_movs|copy_user|fsnotify"),
    ("kernel: syscall entry/exit, fd lookup",
     r"syscall|entry_SYSCALL|fget|fput|fdget|__fdget|x64_sys"),
    ("kernel: scheduling, wake-ups, futex",
     r"schedul|switch|wake|futex|spin|pv_queued|irq|softirq|hrtimer|tick|update_"),
    ("kernel: page faults, memory", r"fault|page|mm_|pte|pmd|lru|memcg|zap|unmap|vma"),
)
LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(\S+)")


def buckets(data: str) -> dict[str, float]:
    """Percent of samples per bucket in the perf data file ``data``."""
    report = subprocess.run(
        ["perf", "report", "-i", data, "--stdio", "-q", "--sort", "dso,sym"],
        check=True, capture_output=True, text=True,
    ).stdout
    shares: dict[str, float] = defaultdict(float)
    for line in report.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        share, dso, where, symbol = float(m.group(1)), m.group(2), m.group(3), m.group(4)
        if where == "k":
            for name, pattern in KERNEL_BUCKETS:
                if re.search(pattern, symbol):
                    shares[name] += share
                    break
            else:
                shares["kernel: other"] += share
        elif dso.startswith("libpython"):
            shares["user: Python interpreter"] += share
        elif dso.startswith(("linux_uring", "linux_aio", "thread_aio")):
            shares["user: caio C extension"] += share
        elif dso.startswith("libc"):
            shares["user: libc (malloc, syscall stubs, locks)"] += share
        else:
            shares["user: other"] += share
    return shares


def main() -> None:
    """Print the buckets of each perf data file named on the command line."""
    for data in sys.argv[1:]:
        shares = buckets(data)
        print(f"{data}: {sum(shares.values()):.1f}% of samples bucketed")
        for name, share in sorted(shares.items(), key=lambda item: -item[1]):
            print(f"  {share:5.1f}%  {name}")


if __name__ == "__main__":
    main()
