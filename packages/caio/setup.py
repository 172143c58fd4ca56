"""Build the C backends of caio.

Which extensions are built depends on the platform: io_uring and kernel AIO
only exist on Linux, the pthread pool needs POSIX threads. Each extension is
the shared code in ``src/common`` plus the directory named after its module
(``src/linux_uring`` for ``caio.linux_uring``, ...).
"""

import ast
import os
import sys
from glob import glob

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

HERE = os.path.dirname(os.path.abspath(__file__))


def limits() -> list:
    """``caio/_limits.py`` as ``(CAIO_NAME, value)`` macros for the C code.

    The file is parsed, not imported (the package is not importable before
    it is built); each line is ``NAME = <int expression>``.
    """
    path = os.path.join(HERE, "caio", "_limits.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    macros = []
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        (target,) = node.targets
        expr = ast.Expression(node.value)
        value = eval(compile(expr, path, "eval"), {"__builtins__": {}})
        if not isinstance(value, int):
            raise ValueError(f"{path}: {target.id} is not an int")
        macros.append((f"CAIO_{target.id}", str(value)))
    return macros


def sources(directory: str, shared: bool = True) -> list:
    found = []
    for d in ("common", directory) if shared else (directory,):
        # Paths relative to this file, as setuptools wants them.
        found.extend(sorted(glob(os.path.join("src", d, "*.c"), root_dir=HERE)))
    return found


def extension(name: str, directory: str = "", shared: bool = True) -> Extension:
    """``caio.<name>`` from ``src/<directory or name>``, plus ``src/common``
    when ``shared``."""
    compile_args = ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                    "-Wno-missing-field-initializers", "-fvisibility=hidden"]
    if os.environ.get("CAIO_REQUIRE_C"):
        # Our own builds (nox, cibuildwheel) treat a warning as an error. A
        # user's sdist build on a newer compiler may warn about something new:
        # that must not cost the backend (OptionalBuildExt skips a failure).
        compile_args.append("-Werror")
    link_args = []
    libraries = []
    macros = limits()
    if os.environ.get("CAIO_SANITIZE"):
        # For the sanitizer nox session: run with libasan preloaded.
        flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                 "-fno-sanitize-recover=undefined", "-g", "-O1"]
        compile_args += flags
        link_args += flags
    elif os.environ.get("CAIO_COVERAGE"):
        # For the coverage nox session: gcov counters (.gcda files are
        # written beside the objects when the process exits); -O0 so that
        # every line maps to code.
        # -fprofile-update=atomic: the pool's workers run the same code at
        # once; plain counter updates would lose counts (or go negative).
        flags = ["--coverage", "-fprofile-update=atomic"]
        compile_args += [*flags, "-O0", "-g"]
        link_args += flags
        macros.append(("CAIO_COVERAGE", "1"))   # src/common/coverage.c
    elif os.environ.get("CAIO_DEBUG"):
        compile_args += ["-g", "-O0", "-UNDEBUG"]
    else:
        compile_args += ["-O2"]
    if not sys.platform.startswith("win"):
        libraries.append("pthread")
    return Extension(
        "caio." + name,
        sources=sources(directory or name, shared),
        include_dirs=[os.path.join("src", "common")],
        define_macros=macros,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        libraries=libraries,
    )


def extensions() -> list:
    """The C extensions to build here: each ``caio.<name>`` from ``src/<name>``."""
    wanted = []
    if sys.platform.startswith("linux"):
        wanted += ["linux_uring", "linux_aio"]
    if os.name == "posix":
        wanted.append("thread_aio")
    # CAIO_ONLY=name[,name] builds a subset (handy while working on one).
    only = set(filter(None, os.environ.get("CAIO_ONLY", "").split(",")))
    built = [extension(name) for name in wanted if not only or name in only]
    if sys.platform.startswith("linux") and (not only or "_dio" in only):
        # statx(STATX_DIOALIGN) for caio.dio_alignment; no backend, none of
        # src/common. Optional like the rest: caio/_direct.py reads sysfs
        # where it is missing.
        built.append(extension("_dio", "dio", shared=False))
    if not only or "_awaitables" in only:
        # The asyncio adapter's read/write without a coroutine per finished
        # operation; optional: caio/asyncio_base.py keeps its coroutines
        # where it is missing.
        built.append(extension("_awaitables", "awaitables", shared=False))
    if not only or "_lines" in only:
        # aiofile's line splitting and async line iterator; optional too:
        # aiofile keeps its pure Python path where it is missing.
        built.append(extension("_lines", "lines", shared=False))
    return built


# Kept apart from the extension list above, so both can change independently.
class OptionalBuildExt(build_ext):
    """build_ext that skips a C backend which does not compile.

    Without a working C compiler (or on a platform a backend does not
    support) caio still installs: the pure Python backend needs no C. A
    skipped backend only fails to import, which ``python -m caio`` reports.
    ``CAIO_REQUIRE_C=1`` (set by nox and cibuildwheel) and in-place builds
    make any compile error fatal, so a broken backend never ships quietly.
    """

    FAILURES = (CCompilerError, ExecError, PlatformError, OSError)

    def run(self) -> None:
        # In place is the C development loop: a stale module must not hide
        # the error there. (setuptools clears self.inplace while building.)
        self.strict = bool(os.environ.get("CAIO_REQUIRE_C")) or bool(self.inplace)
        try:
            super().run()
        except self.FAILURES as exc:  # no compiler at all: setup fails here
            self._skip("the C backends", exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except self.FAILURES as exc:
            self._skip(ext.name, exc)

    def _skip(self, what: str, exc: BaseException) -> None:
        if self.strict:
            raise exc
        # To stderr, as pip shows it with -v; the module then does not exist
        # and ``python -m caio`` names it as not importable.
        print(f"WARNING: {what} not built ({exc}); caio falls back to "
              "the remaining backends, at least the pure Python one",
              file=sys.stderr)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
