"""The version has one source, caio's own module; the built metadata agrees."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

import caio


def installed() -> metadata.Distribution:
    """The distribution caio was imported from (skip for a source tree)."""
    try:
        dist = metadata.distribution("caio")
    except metadata.PackageNotFoundError:
        pytest.skip("caio is not installed: imported from a source tree")
    where = Path(str(dist.locate_file("caio/__init__.py"))).resolve()
    if where != Path(caio.__file__).resolve():
        pytest.skip(f"caio imported from {caio.__file__}, not from {where}")
    return dist


def test_metadata_version_is_the_module_version() -> None:
    assert installed().version == caio.__version__


def test_version_is_release_numbers() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", caio.__version__), caio.__version__
