"""The version has one source, aiofile's own module; the built metadata agrees."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

import aiofile


def installed() -> metadata.Distribution:
    """The distribution aiofile was imported from (skip for a source tree)."""
    try:
        dist = metadata.distribution("aiofile")
    except metadata.PackageNotFoundError:
        pytest.skip("aiofile is not installed: imported from a source tree")
    where = Path(str(dist.locate_file("aiofile/__init__.py"))).resolve()
    if where != Path(aiofile.__file__).resolve():
        pytest.skip(f"aiofile imported from {aiofile.__file__}, not from {where}")
    return dist


def test_metadata_version_is_the_module_version() -> None:
    assert installed().version == aiofile.__version__


def test_version_is_release_numbers() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", aiofile.__version__), aiofile.__version__


def test_version_info_matches() -> None:
    assert aiofile.version_info == tuple(map(int, aiofile.__version__.split(".")))
