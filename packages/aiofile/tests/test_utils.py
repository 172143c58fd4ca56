"""aiofile.utils: the module that held the wrappers and streams keeps every name.

Its code lives in modules named after what they hold; code that imports
from ``aiofile.utils`` (the public names and the underscore ones tests and
tools reached for) must go on working.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import aiofile
import aiofile.utils

# What aiofile.utils defined or imported for use by others before the split
# (stdlib and typing helpers it happened to import are not part of it).
NAMES_BEFORE_THE_SPLIT = {
    "AIOFile", "BinaryFileWrapper", "CHUNK_SIZE", "FileIOCloner", "FileIOWrapper",
    "FileIOWrapperBase", "FileName", "LINE_CHUNK_SIZE", "LineReader", "Reader", "T",
    "TextFileWrapper", "W", "Writer", "_ASYNC_GENERATORS_FAST", "_BinaryMode",
    "_LineIterator", "_Pending", "_TextMode", "_readline_slow", "_straddles",
    "async_open", "clone", "make_splitter",
}


def test_every_name_is_still_there() -> None:
    missing = NAMES_BEFORE_THE_SPLIT - set(dir(aiofile.utils))
    assert not missing


def test_star_import_gives_the_public_names_only() -> None:
    namespace: dict[str, object] = {}
    exec("from aiofile.utils import *", namespace)  # the star import under test
    namespace.pop("__builtins__")
    assert set(namespace) == set(aiofile.utils.__all__)
    assert not {name for name in namespace if name.startswith("_")}


# aiofile 3.12 exported this helper from aiofile.utils only.
UTILS_ONLY = {"unicode_reader"}


@pytest.mark.parametrize("name", sorted(set(aiofile.utils.__all__) - UTILS_ONLY))
def test_public_names_are_the_package_objects(name: str) -> None:
    # One object per name: isinstance checks against either spelling agree.
    assert getattr(aiofile.utils, name) is getattr(aiofile, name)



def test_each_class_and_function_lives_in_its_own_module() -> None:
    # Nothing is defined in utils any more: each class and function is the
    # object its home module (named after what it holds) defines.
    homes = set()
    for name in NAMES_BEFORE_THE_SPLIT:
        value = getattr(aiofile.utils, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        home = importlib.import_module(value.__module__)
        assert home is not aiofile.utils, name
        assert getattr(home, value.__name__) is value, name
        homes.add(home.__name__)
    assert {"aiofile.opening", "aiofile.readahead", "aiofile.streams", "aiofile.wrappers"} <= homes


def test_import_aiofile_makes_utils_an_attribute() -> None:
    # Before the split `import aiofile` imported aiofile.utils on the way.
    code = "import aiofile; print(aiofile.utils.async_open is aiofile.async_open)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    assert result.stdout.strip() == b"True"
