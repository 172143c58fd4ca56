"""Sphinx configuration of the caio and aiofile documentation site.

Built by ``nox -s docs`` (warnings are errors) against caio and aiofile
installed from wheels, so the API pages describe the real C modules.
"""

from __future__ import annotations

import inspect
import re
import sys
from typing import Any

import aiofile
import caio

project = "caio and aiofile"
author = "the caio and aiofile authors"
copyright = "the caio and aiofile authors"
release = f"caio {caio.__version__}, aiofile {aiofile.__version__}"
version = release

# The docstrings are plain prose (no Google/NumPy sections): no napoleon.
extensions = ["myst_parser", "sphinx.ext.autodoc"]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Anchors for "## Heading" sections, so that page.md#heading links resolve.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# C methods without a text signature start their docstring with
# "name(args) -> result: what it does"; autodoc takes that line as the
# signature, with everything after "->" as the result type and without the
# text: c_signature() and c_docstring() below put both right.

# The site is built offline, so the standard library's inventory cannot be
# fetched: names from it, and the stubs' type aliases, stay plain text.
nitpick_ignore_regex = [
    ("py:class", r"(asyncio|collections\.abc|concurrent\.futures|os|typing|types)\..*"),
    ("py:class", r"(aiofile\.\w+\.)?([TW]|_Path)"),
    ("py:class", r"Future|Buffer|FileDescriptor|FutureFactory|Self|FileName|Opener|Executor"),
]

html_theme = "furo"
html_title = "caio and aiofile"


# "name(args) -> result: text" or "name(args): text" as the first line of a
# C function's docstring.
_C_SIGNATURE = re.compile(
    r"^(?P<name>\w+)(?P<args>\(.*?\))(?:\s*->\s*(?P<ret>[^:]+?))?(?::\s*|\s*$)",
)


def _is_c(obj: Any) -> bool:
    """A function, method, property or class of a C extension."""
    if isinstance(obj, type):
        module = sys.modules.get(obj.__module__)
        return not str(getattr(module, "__file__", "")).endswith(".py")
    return (
        inspect.ismethoddescriptor(obj) or inspect.isbuiltin(obj)
        or inspect.isgetsetdescriptor(obj)
    )


def _c_docstring_signature(obj: Any) -> re.Match[str] | None:
    """The signature line of a C function's or class's docstring, if any."""
    if not _is_c(obj) or inspect.isgetsetdescriptor(obj):
        return None
    try:
        inspect.signature(obj)
    except (TypeError, ValueError):
        pass
    else:
        return None  # a real text signature: autodoc reads it itself
    doc = inspect.getdoc(obj) or ""
    match = _C_SIGNATURE.match(doc.split("\n", 1)[0])
    if match is None or match["name"] != getattr(obj, "__name__", None):
        return None
    return match


def c_signature(
    app: Any, what: str, name: str, obj: Any, options: Any, signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None] | None:
    match = _c_docstring_signature(obj)
    if match is None or signature is None:
        # Sphinx 9 fails on a result for an object it found no signature for.
        return None
    return match["args"], match["ret"] or ""


def c_docstring(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Plain text of C docstrings: drop the signature, escape markup."""
    if not lines or not _is_c(obj):
        return
    match = _c_docstring_signature(obj)
    if match is not None:
        rest = match.string[match.end():].strip()
        if lines[0].startswith(match[0]):  # autodoc left the line in
            del lines[0]
        if rest:
            lines.insert(0, rest)
    for i, line in enumerate(lines):
        line = re.sub(r"([\\*|`])", r"\\\1", line)
        lines[i] = re.sub(r"(\w)_(?=\W|$)", r"\1\\_", line)


def setup(app: Any) -> None:
    app.connect("autodoc-process-signature", c_signature)
    app.connect("autodoc-process-docstring", c_docstring)
