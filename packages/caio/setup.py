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


def sources(name: str) -> list:
    found = []
    for d in ("common", name):
        # Paths relative to this file, as setuptools wants them.
        found.extend(sorted(glob(os.path.join("src", d, "*.c"), root_dir=HERE)))
    return found


def extension(name: str) -> Extension:
    compile_args = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
                    "-Wno-missing-field-initializers", "-fvisibility=hidden"]
    link_args = []
    libraries = []
    if os.environ.get("CAIO_SANITIZE"):
        # For the sanitizer nox session: run with libasan preloaded.
        flags = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                 "-fno-sanitize-recover=undefined", "-g", "-O1"]
        compile_args += flags
        link_args += flags
    elif os.environ.get("CAIO_DEBUG"):
        compile_args += ["-g", "-O0", "-UNDEBUG"]
    else:
        compile_args += ["-O2"]
    if not sys.platform.startswith("win"):
        libraries.append("pthread")
    return Extension(
        "caio." + name,
        sources=sources(name),
        include_dirs=[os.path.join("src", "common")],
        define_macros=limits(),
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
    return [extension(name) for name in wanted if not only or name in only]


setup(ext_modules=extensions())
