"""The harness's modules import each other by plain name (they run as
scripts from ``benchmarks/``): make them importable here the same way."""

import sys
from pathlib import Path

HARNESS = str(Path(__file__).resolve().parent.parent)
if HARNESS not in sys.path:
    sys.path.insert(0, HARNESS)
