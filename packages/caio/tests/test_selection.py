"""Backend selection at import: CAIO_IMPL, default_implementation, fallback.

Selection happens once per process, so each case runs ``python -c`` in a
subprocess. Cases that need a ``default_implementation`` file or a broken
backend work on a copy of the package in a temporary directory; the real
package directory is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from caio_process import run_python

import caio
from caio._backends import BACKENDS
from caio.asyncio_base import AsyncioContextBase

IMPORTABLE = [name for name, module in BACKENDS.items() if getattr(caio, module) is not None]
AUTOMATIC = IMPORTABLE[0]

REPORT = (
    "import json, caio; print(json.dumps({"
    "'context': caio.Context.__module__, "
    "'file': caio.__file__, "
    "'variants': [m.__name__ for m in caio.variants], "
    "'uring': caio.linux_uring is not None}))"
)

BLOCKED_MESSAGE = "io_uring is blocked here (a test says so)"




def selected(env: dict[str, str] | None = None, path: Path | None = None) -> dict[str, Any]:
    proc = run_python("-c", REPORT, env=env, path=path)
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    report["stderr"] = proc.stderr
    if path is not None:  # the copy, not the real package, was imported
        assert report["file"].startswith(str(path))
    return report


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A directory holding a copy of the caio package (compiled modules too)."""
    root = tmp_path / "copy"
    shutil.copytree(
        Path(caio.__file__).parent, root / "caio",
        ignore=shutil.ignore_patterns("__pycache__", "default_implementation"),
    )
    return root


def block_uring(root: Path) -> None:
    """Make caio.linux_uring fail to import in the copy, as a blocked kernel does."""
    for built in (root / "caio").glob("linux_uring*"):
        if built.suffix in (".so", ".pyd", ".py"):
            built.unlink()
    (root / "caio" / "linux_uring.py").write_text(f"raise ImportError({BLOCKED_MESSAGE!r})\n")


# ---- in this process -------------------------------------------------------


def test_backend_map_is_the_specs() -> None:
    # SPEC.md's table: CAIO_IMPL name -> module, in the order of preference.
    assert list(BACKENDS.items()) == [
        ("uring", "linux_uring"), ("linux", "linux_aio"),
        ("thread", "thread_aio"), ("python", "python_aio"),
    ]


def test_package_names() -> None:
    assert [m.__name__ for m in caio.variants] == [f"caio.{BACKENDS[n]}" for n in IMPORTABLE]
    assert caio.python_aio is not None  # pure Python: always there
    module = getattr(caio, BACKENDS[caio._selected])
    assert caio.Context is module.Context
    assert caio.Operation is module.Operation
    assert caio.AsyncioContext.CONTEXT_CLASS is caio.Context
    assert issubclass(caio.AsyncioContext, AsyncioContextBase)
    assert len(caio.variants_asyncio) == len(caio.variants)
    for low, adapter in zip(caio.variants, caio.variants_asyncio, strict=True):
        assert adapter.__name__ == f"{low.__name__}_asyncio"
        assert adapter.AsyncioContext.CONTEXT_CLASS is low.Context
    for name, module_name in BACKENDS.items():
        adapter = getattr(caio, f"{module_name}_asyncio")
        assert (adapter is None) == (name not in IMPORTABLE)
    with pytest.raises(AttributeError):
        caio.no_such_name  # noqa: B018


def test_abstract_classes_cover_every_backend(fd: int) -> None:
    for module in caio.variants:
        assert issubclass(module.Context, caio.AbstractContext)
        assert isinstance(module.Operation.fsync(fd), caio.AbstractOperation)


def test_honours_caio_impl_of_this_run() -> None:
    # The suite also runs with CAIO_IMPL forcing each backend.
    wanted = os.environ.get("CAIO_IMPL", "").strip().lower()
    if wanted not in IMPORTABLE:
        pytest.skip("CAIO_IMPL does not name a backend that imports here")
    assert caio._selected == wanted


# ---- subprocesses ------------------------------------------------------------


def test_automatic_choice_is_the_best_importable() -> None:
    report = selected()
    assert report["context"] == f"caio.{BACKENDS[AUTOMATIC]}"
    assert "Warning" not in report["stderr"]


def test_import_is_cheap() -> None:
    # -S: no site customisation that would import these anyway.
    proc = run_python(
        "-S", "-c",
        "import sys, caio; print(sorted({'asyncio', 'typing'} & set(sys.modules)))",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("name", list(BACKENDS))
def test_caio_impl_forces_a_backend(name: str) -> None:
    module = BACKENDS[name]
    if name in IMPORTABLE:
        proc = run_python("-W", "error::RuntimeWarning", "-c", REPORT, env={"CAIO_IMPL": name})
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["context"] == f"caio.{module}"
    else:
        # Asked for but not importable: a warning with the reason, then the
        # automatic choice; never silently.
        report = selected(env={"CAIO_IMPL": name})
        assert "RuntimeWarning" in report["stderr"]
        assert caio._import_errors[name] in report["stderr"]
        assert report["context"] == f"caio.{BACKENDS[AUTOMATIC]}"


def test_caio_impl_ignores_case_and_spaces() -> None:
    assert selected(env={"CAIO_IMPL": " Python\n"})["context"] == "caio.python_aio"


def test_empty_caio_impl_means_automatic() -> None:
    report = selected(env={"CAIO_IMPL": ""})
    assert report["context"] == f"caio.{BACKENDS[AUTOMATIC]}"
    assert "Warning" not in report["stderr"]


def test_unknown_caio_impl_warns() -> None:
    report = selected(env={"CAIO_IMPL": "bogus"})
    assert "RuntimeWarning" in report["stderr"]
    assert "bogus" in report["stderr"]
    assert report["context"] == f"caio.{BACKENDS[AUTOMATIC]}"


def test_unknown_caio_impl_fails_under_warnings_as_errors() -> None:
    proc = run_python("-W", "error", "-c", "import caio", env={"CAIO_IMPL": "bogus"})
    assert proc.returncode != 0
    assert "RuntimeWarning" in proc.stderr
    assert "bogus" in proc.stderr


def test_default_implementation_file(package_copy: Path) -> None:
    wanted = IMPORTABLE[-1]  # python: never the automatic choice if more import
    (package_copy / "caio" / "default_implementation").write_text(
        f"# which backend this installation uses\n\n   \n  {wanted}  # the one\nuring\n",
    )
    report = selected(path=package_copy)
    assert report["context"] == f"caio.{BACKENDS[wanted]}"
    assert "Warning" not in report["stderr"]


def test_default_implementation_file_with_unknown_name(package_copy: Path) -> None:
    (package_copy / "caio" / "default_implementation").write_text("fastest\n")
    report = selected(path=package_copy)
    assert "RuntimeWarning" in report["stderr"]
    assert "fastest" in report["stderr"]
    assert report["context"] == f"caio.{BACKENDS[AUTOMATIC]}"


def test_empty_default_implementation_file(package_copy: Path) -> None:
    (package_copy / "caio" / "default_implementation").write_text("# nothing\n\n")
    report = selected(path=package_copy)
    assert report["context"] == f"caio.{BACKENDS[AUTOMATIC]}"
    assert "Warning" not in report["stderr"]


def test_environment_wins_over_file(package_copy: Path) -> None:
    if len(IMPORTABLE) < 2:
        pytest.skip("needs two backends that import here")
    from_file, from_env = IMPORTABLE[-1], IMPORTABLE[0]
    (package_copy / "caio" / "default_implementation").write_text(f"{from_file}\n")
    report = selected(env={"CAIO_IMPL": from_env}, path=package_copy)
    assert report["context"] == f"caio.{BACKENDS[from_env]}"


def test_forced_backend_that_cannot_import(package_copy: Path) -> None:
    block_uring(package_copy)
    report = selected(env={"CAIO_IMPL": "uring"}, path=package_copy)
    assert report["uring"] is False
    assert "RuntimeWarning" in report["stderr"]
    assert BLOCKED_MESSAGE in report["stderr"]
    assert report["context"] != "caio.linux_uring"
    assert report["context"] == report["variants"][0]


def test_file_asks_for_backend_that_cannot_import(package_copy: Path) -> None:
    block_uring(package_copy)
    (package_copy / "caio" / "default_implementation").write_text("uring\n")
    report = selected(path=package_copy)
    assert BLOCKED_MESSAGE in report["stderr"]
    assert "default_implementation" in report["stderr"]
    assert report["context"] == report["variants"][0]


def test_blocked_backend_is_skipped_silently_when_not_asked(package_copy: Path) -> None:
    block_uring(package_copy)
    report = selected(path=package_copy)
    assert "caio.linux_uring" not in report["variants"]
    assert "Warning" not in report["stderr"]
