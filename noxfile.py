"""Build, test and lint caio and aiofile together.

``nox`` runs the default sessions: lint, the test suite on every Python
3.10-3.13 found here, the suite with each backend forced, and the suite
against an ASan/UBSan build of the C backends. ``nox -s bench`` runs the
benchmarks. Extra arguments after ``--`` go to pytest (or to the benchmark).

The tests always run against *installed* wheels, never the source tree: the
C backends are only real once pip has built them, and a stray in-place
``.so`` from development must not be what gets tested.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PACKAGES = ROOT / "packages"
CAIO = PACKAGES / "caio"
AIOFILE = PACKAGES / "aiofile"
WHEELS = ROOT / ".nox" / "_wheels"

# Files that never go into a wheel (or are stale build products from
# development): left out both of the build copy and of the cache key.
SKIP_DIRS = frozenset({
    "build", "dist", "tests", "__pycache__", ".pytest_cache", ".mypy_cache",
    ".ruff_cache", ".nox",
})
SKIP_SUFFIXES = (".so", ".pyd", ".o", ".pyc", ".egg-info")

TEST_DEPS = ("pytest", "aiomisc-pytest", "pytest-timeout", "hypothesis")
# A hung test must fail the run instead of eating the CI time budget. Per
# test, SIGALRM turns a hang into that test's failure (with its name) and the
# run goes on; if the hang holds the GIL so that no signal handler runs, the
# whole suite is interrupted (SIGINT: pytest still prints its summary), then
# killed; faulthandler's watchdog thread (it needs no GIL) has dumped every
# stack, the test's included, by then. No test comes close to these limits.
PYTEST_ARGS = (
    "-ra", "-p", "no:cacheprovider", "--import-mode=importlib", "--durations=5",
    "--timeout=120", "--timeout-method=signal", "-o", "faulthandler_timeout=180",
)
SUITE_TIMEOUT = ("timeout", "--signal=INT", "--kill-after=30", "1200")
# The automatic backend choice, whatever the caller has exported.
AUTOMATIC: dict[str, str | None] = {"CAIO_IMPL": None}
COMPILER_VARS = ("CC", "CFLAGS", "CPPFLAGS", "LDFLAGS", "LDSHARED")
BACKENDS = {  # CAIO_IMPL value -> package-level attribute of that module
    "uring": "linux_uring",
    "linux": "linux_aio",
    "thread": "thread_aio",
    "python": "python_aio",
}


def found_pythons() -> list[str] | None:
    """Python versions 3.10-3.13 that really run here (None: only this one).

    A pyenv shim exists for every installed version but fails unless that
    version is active, so each candidate is run, not just looked up.
    """
    found: list[str] = []
    for minor in range(10, 14):
        exe = shutil.which(f"python3.{minor}")
        if exe is None:
            continue
        try:
            proc = subprocess.run(
                [exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True, text=True, timeout=60, check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if proc.returncode == 0 and proc.stdout.strip() == f"3.{minor}":
            found.append(f"3.{minor}")
    return found or None


PYTHONS = found_pythons()

nox.options.sessions = ["lint", "tests", "backend", "sanitize"]
# Venvs are kept between runs; our own packages are reinstalled only when
# their sources change (see install_packages).
nox.options.reuse_venv = "yes"
nox.options.default_venv_backend = "uv|virtualenv"
# Never try to download an interpreter: this must work offline, and only
# versions found above are asked for.
nox.options.download_python = "never"


def tree_digest(path: Path) -> str:
    """Hash of every file of a package that can end up in its wheel."""
    digest = hashlib.sha256()
    for file in sorted(iter_tree(path)):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def iter_tree(path: Path) -> list[Path]:
    """Files under ``path`` minus tests, caches and build products."""
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [
            d for d in dirnames if d not in SKIP_DIRS and not d.endswith(SKIP_SUFFIXES)
        ]
        files.extend(
            Path(dirpath, name) for name in filenames if not name.endswith(SKIP_SUFFIXES)
        )
    return files


def venv_python(session: nox.Session) -> str:
    """The venv's interpreter, for tools that run outside the venv."""
    return str(Path(session.virtualenv.bin, "python"))


def build_wheel(session: nox.Session, package: Path, env: dict[str, str | None]) -> Path:
    """Build (or take from the cache) a wheel of ``package`` for this venv.

    The build runs on a clean copy, so that an earlier ``build/`` directory
    (whose objects setuptools would reuse, even across sanitizer flags) or
    in-place extensions cannot leak in. Wheels are cached by the hash of
    the sources, the interpreter and the build flags.
    """
    tag = session.run(
        "python", "-c", "import sys; print(sys.implementation.cache_tag)",
        silent=True,
    )
    assert isinstance(tag, str)
    # The outer compiler settings change the wheel too.
    outer = {k: os.environ.get(k) for k in COMPILER_VARS}
    flags = "".join(sorted(f"-{k}={v}" for k, v in {**outer, **env}.items() if v))
    if len(flags) > 64:  # keep the directory name short
        flags = "-" + hashlib.sha256(flags.encode()).hexdigest()[:16]
    key = f"{package.name}-{tree_digest(package)}-{tag.strip()}{flags}"
    cached = WHEELS / key
    wheels = sorted(cached.glob("*.whl"))
    if wheels:
        return wheels[0]

    tmp = Path(session.create_tmp()).resolve()
    src = tmp / f"src-{package.name}"
    out = tmp / f"wheel-{package.name}"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(
        package, src,
        ignore=lambda _dir, names: [
            n for n in names if n in SKIP_DIRS or n.endswith(SKIP_SUFFIXES)
        ],
    )
    if session.venv_backend == "uv":
        session.run(
            "uv", "build", "--wheel", "--quiet", "--python", venv_python(session),
            "--out-dir", str(out), str(src), env=env, external=True,
        )
    else:
        session.run(
            "python", "-m", "pip", "wheel", "--quiet", "--no-deps",
            "--wheel-dir", str(out), str(src), env=env,
        )
    built = sorted(out.glob("*.whl"))
    if len(built) != 1:
        session.error(f"expected one wheel from {package}, got {built}")
    WHEELS.mkdir(parents=True, exist_ok=True)
    partial = WHEELS / f"{key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    shutil.copy2(built[0], partial)
    partial.rename(cached)  # so that a cache entry is always complete
    return cached / built[0].name


def install_packages(session: nox.Session, *deps: str, sanitize: bool = False) -> None:
    """Install caio and aiofile wheels plus ``deps`` into the session venv."""
    if deps:
        session.install(*deps)
    # Set explicitly: a developer's exported CAIO_ONLY or CAIO_DEBUG must not
    # shape what gets tested.
    env: dict[str, str | None] = {
        "CAIO_SANITIZE": "1" if sanitize else None, "CAIO_DEBUG": None, "CAIO_ONLY": None,
    }
    wheels = [build_wheel(session, CAIO, env), build_wheel(session, AIOFILE, {})]
    stamp = Path(session.virtualenv.location, ".caio-nox-installed")
    wanted = "\n".join(str(w) for w in wheels)
    if stamp.exists() and stamp.read_text() == wanted:
        session.log("caio and aiofile are up to date in this venv")
        return
    # Both wheels in one command, so aiofile's dependency on caio is met by
    # this caio and never fetched from an index.
    if session.venv_backend == "uv":
        session.install(
            "--reinstall-package", "caio", "--reinstall-package", "aiofile",
            *map(str, wheels),
        )
    else:
        session.install("--force-reinstall", *map(str, wheels))
    stamp.write_text(wanted)


def show_backends(session: nox.Session, tmp: Path, env: dict[str, str | None]) -> None:
    """Log ``python -m caio`` and check that the installed caio is imported."""
    with session.chdir(tmp):
        session.run("python", "-m", "caio", env=env)
        session.run(
            "python", "-c",
            "import caio, sys; "
            "where = caio.__file__; print('caio imported from', where); "
            "sys.exit(0 if where.startswith(sys.argv[1]) else "
            "'caio does not come from the venv')",
            session.virtualenv.location, env=env,
        )


def test_suites() -> list[Path]:
    return [CAIO / "tests", AIOFILE / "tests"]


def run_suites(
    session: nox.Session, tmp: Path, *extra: str, env: dict[str, str | None],
) -> None:
    """Run the caio and the aiofile suite from ``tmp``.

    Each package's suite runs on its own (its own rootdir and config, so two
    test modules with the same name cannot clash), from a directory where
    no source tree shadows the installed packages. Exit code 5 (no test
    ran) fails the session, unless pytest arguments were given to select
    tests.
    """
    codes = [0, 5] if session.posargs else [0]
    with session.chdir(tmp):
        for suite in test_suites():
            if not suite.is_dir():
                session.error(f"missing test suite {suite}")
            run_env = dict(env)
            run_env["COVERAGE_FILE"] = str(tmp / f".coverage.{suite.parent.name}")
            session.run(
                *(SUITE_TIMEOUT if shutil.which("timeout") else ()),
                "pytest", *PYTEST_ARGS, "--rootdir", str(suite.parent),
                *extra, *session.posargs, str(suite),
                env=run_env, success_codes=codes, external=True,
            )


COVERAGE_GUARD = """
import sys, glob, coverage
venv, tree = sys.argv[1], sys.argv[2]
files = set()
for path in glob.glob(".coverage.*"):
    data = coverage.CoverageData(basename=path)
    data.read()
    files.update(data.measured_files())
stray = sorted(f for f in files if f.startswith(tree))
if stray:
    sys.exit(f"tests imported the source tree, not the installed packages: {stray}")
if not any(f.startswith(venv) for f in files):
    sys.exit("coverage measured no installed caio/aiofile file")
"""


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole suite with the automatic backend choice, with coverage."""
    install_packages(session, *TEST_DEPS, "pytest-cov")
    tmp = Path(session.create_tmp()).resolve()
    for old in tmp.glob(".coverage*"):
        old.unlink()
    env = AUTOMATIC
    show_backends(session, tmp, env)
    run_suites(
        session, tmp, "--cov=caio", "--cov=aiofile", "--cov-report=",
        f"--cov-config={ROOT / 'pyproject.toml'}", env=env,
    )
    with session.chdir(tmp):
        session.run(
            "python", "-c", COVERAGE_GUARD, session.virtualenv.location, str(PACKAGES),
        )
    # Combined and reported from the repository root, so that [paths] maps
    # the installed files back to packages/*/ for a readable report.
    cov_env = {"COVERAGE_RCFILE": str(ROOT / "pyproject.toml")}
    with session.chdir(ROOT):
        session.run(
            "coverage", "combine", "--quiet", "--data-file", str(tmp / ".coverage"),
            *map(str, sorted(tmp.glob(".coverage.*"))), env=cov_env,
        )
        session.run(
            "coverage", "report", "--data-file", str(tmp / ".coverage"), env=cov_env,
        )


@nox.session
@nox.parametrize("impl", list(BACKENDS))
def backend(session: nox.Session, impl: str) -> None:
    """The whole suite with ``CAIO_IMPL`` forcing one backend."""
    install_packages(session, *TEST_DEPS)
    tmp = Path(session.create_tmp()).resolve()
    env: dict[str, str | None] = {"CAIO_IMPL": impl}
    show_backends(session, tmp, env)
    with session.chdir(tmp):
        # Forcing a backend that cannot work here gives a warning and another
        # backend; testing that one again would prove nothing.
        selected = session.run(
            "python", "-W", "ignore", "-c",
            "import caio, sys; m = getattr(caio, sys.argv[1]); "
            "print('yes' if m is not None and caio.Context is m.Context else 'no')",
            BACKENDS[impl], env=env, silent=True,
        )
    assert isinstance(selected, str)
    if selected.strip().splitlines()[-1:] != ["yes"]:
        why = f"CAIO_IMPL={impl} cannot work here (see python -m caio above)"
        # CI machines support all four; there a missing backend is a bug
        # (say, a C module that no longer imports), not a fact of the host.
        if os.environ.get("CI"):
            session.error(why)
        session.skip(why)
    run_suites(session, tmp, env=env)


@nox.session
def sanitize(session: nox.Session) -> None:
    """The caio and aiofile suites on C backends built with ASan and UBSan."""
    compiler = os.environ.get("CC", "gcc")
    found = session.run(compiler, "-print-file-name=libasan.so", silent=True, external=True)
    assert isinstance(found, str)
    libasan = found.strip()
    if not os.path.isabs(libasan) or not os.path.exists(libasan):
        session.error(f"{compiler} has no libasan.so (install libasan / gcc)")
    install_packages(session, *TEST_DEPS, sanitize=True)
    tmp = Path(session.create_tmp()).resolve()
    env: dict[str, str | None] = {
        **AUTOMATIC,
        # ASan must be loaded before everything else; python is not linked
        # against it, so preload it.
        "LD_PRELOAD": libasan,
        # Python leaks by design at exit. allocator_may_return_null lets a
        # huge request fail as MemoryError, which the suite checks for.
        "ASAN_OPTIONS": (
            "detect_leaks=0:allocator_may_return_null=1:halt_on_error=1"
            ":abort_on_error=0:exitcode=66:check_initialization_order=1"
            ":strict_string_checks=1"
        ),
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
        # Every object buffer from malloc, where ASan can see overflows
        # (pymalloc arenas would hide them).
        "PYTHONMALLOC": "malloc",
    }
    show_backends(session, tmp, env)
    # --capture=sys: a sanitizer report is written to fd 2 and the process
    # exits at once; pytest's fd capture would swallow the report with it.
    run_suites(session, tmp, "--capture=sys", env=env)


#: The C modules whose stubs stubtest compares with the built extensions.
C_MODULES = ("caio.linux_uring", "caio.linux_aio", "caio.thread_aio")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the repository, mypy (strict) over the code we ship, and
    the C modules' stubs against the built extensions (mypy.stubtest)."""
    install_packages(session, "ruff", "mypy", "typing_extensions")
    with session.chdir(ROOT):
        session.run("ruff", "check", ".")
        session.run("mypy", "packages/caio/caio", "packages/aiofile/aiofile")
        # Scripts are checked one directory at a time: two run.py files in
        # one mypy call would clash as the same module.
        for scripts in ("examples", "benchmarks"):
            if any((ROOT / scripts).glob("*.py")):
                session.run("mypy", scripts)
    # From outside the tree: the installed wheel's extensions and stubs are
    # compared, never the sources. A module that cannot import here (no
    # io_uring) is left out rather than reported as missing.
    tmp = Path(session.create_tmp()).resolve()
    with session.chdir(tmp):
        found = session.run(
            "python", "-c",
            "import importlib, sys\n"
            "for name in sys.argv[1:]:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ImportError:\n"
            "        continue\n"
            "    print(name)\n",
            *C_MODULES, silent=True,
        )
        assert isinstance(found, str)
        modules = found.split()
        if modules:
            session.run("python", "-m", "mypy.stubtest", *modules)


@nox.session
def bench(session: nox.Session) -> None:
    """caio/aiofile against aiofiles and plain threads: ``benchmarks/run.py``."""
    script = ROOT / "benchmarks" / "run.py"
    if not script.exists():
        session.error(f"{script} does not exist yet")
    install_packages(session, "aiofiles", "matplotlib")
    with session.chdir(ROOT):
        session.run("python", str(script), *session.posargs)
