"""Kernel feature profiles (caio/_features.py, src/common/kernel_features.h).

Each backend finds what the kernel offers once per context; the test switch
(CAIO_KERNEL_PROFILE, CAIO_KERNEL_LACKS) hides features so that the backend
takes the way of an older kernel. Children get the switch in their
environment (it is read once, at import); the checks that hold for the
profile this process runs under (``nox -s "kernel(profile='5.4')"``) are at
the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import caio
from caio import _features

# The backend caio must select under each profile on a kernel whose io_uring
# works: 5.4 has neither IORING_REGISTER_PROBE nor IORING_OP_READ/WRITE
# (5.6), so caio.linux_uring refuses to import and kernel AIO is next.
EXPECTED_BACKEND = {"5.4": "linux", "5.10": "uring", "5.15": "uring", "6.1": "uring",
                    "6.8": "uring", "current": "uring"}
SWITCH = (_features.ENV_PROFILE, _features.ENV_LACKS, "CAIO_IMPL")

needs_uring = pytest.mark.skipif(
    caio.linux_uring is None and not _features.lacks("uring")
    and _features.profile() != "5.4",
    reason=f"io_uring does not work here: {caio._import_errors.get('uring')}",
)


def child(code: str, **env: str) -> Any:
    """Run ``code`` in a child with exactly ``env`` as the switch; its last
    stdout line is JSON."""
    environ = {k: v for k, v in os.environ.items() if k not in SWITCH}
    environ.update(env)
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=environ, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def real_uring() -> bool:
    """Whether io_uring works here without the switch."""
    return bool(child("import caio, json; print(json.dumps(caio.linux_uring is not None))"))


REPORT = """
import caio, json
out = {"selected": caio._selected, "uring_error": caio._import_errors.get("uring")}
for name in ("linux_uring", "thread_aio"):
    module = getattr(caio, name)
    if module is not None:
        ctx = module.Context()
        out[name] = sorted(ctx._kernel_features)
        ctx.close()
out["python_aio"] = sorted(caio.python_aio.Context()._kernel_features)
print(json.dumps(out))
"""


def test_c_and_python_name_the_same_features() -> None:
    modules = [m for m in (caio.linux_uring, caio.thread_aio) if m is not None]
    if not modules:
        pytest.skip("no C backend here")
    for module in modules:
        assert module._FEATURE_NAMES == tuple(_features.FEATURES)


def test_profiles_hide_what_their_kernel_lacks() -> None:
    # Facts of the kernel versions, as each profile must encode them.
    assert {"uring_read_write", "uring_probe", "uring_cancel"} <= set(_profile_hides("5.4"))
    assert "uring_single_mmap" not in _profile_hides("5.4")
    assert {"uring_ext_arg", "uring_fs", "uring_submit_all"} <= set(_profile_hides("5.10"))
    assert "uring_read_write" not in _profile_hides("5.10")
    assert "uring_fs" not in _profile_hides("5.15")
    assert "uring_coop_taskrun" in _profile_hides("5.15")
    assert "statx_dioalign" not in _profile_hides("6.1")
    assert _profile_hides("6.8") == ["uring_ftruncate"]
    assert _profile_hides("current") == []


def _profile_hides(name: str) -> list[str]:
    found: list[str] = child(
        "import json; from caio import _features; print(json.dumps(_features.lacked_names()))",
        CAIO_KERNEL_PROFILE=name,
    )
    return found


@pytest.mark.parametrize(("variable", "value"), [
    ("CAIO_KERNEL_PROFILE", "4.19"), ("CAIO_KERNEL_LACKS", "uring_read_write,no_such"),
])
def test_unknown_names_fail_the_import(variable: str, value: str) -> None:
    environ = {k: v for k, v in os.environ.items() if k not in SWITCH}
    environ[variable] = value
    proc = subprocess.run(
        [sys.executable, "-c", "import caio"], capture_output=True, text=True,
        env=environ, timeout=120, check=False,
    )
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr
    assert value.split(",")[-1] in proc.stderr


@needs_uring
@pytest.mark.parametrize("profile", list(_features.PROFILES))
def test_profile_selects_the_expected_backend(profile: str) -> None:
    if not real_uring():
        pytest.skip("io_uring does not work here without the switch")
    found = child(REPORT, CAIO_KERNEL_PROFILE=profile)
    print(f"{profile}: selected {found['selected']}; io_uring: "
          f"{found['uring_error'] or 'imports'}")
    assert found["selected"] == EXPECTED_BACKEND[profile]
    hidden = set(_profile_hides(profile))
    for backend in ("linux_uring", "thread_aio", "python_aio"):
        assert not hidden & set(found.get(backend, ())), backend
    if found["selected"] == "linux":
        assert "lacks IORING_REGISTER_PROBE" in found["uring_error"]
        assert f"CAIO_KERNEL_PROFILE={profile}" in found["uring_error"]
    else:
        # What the profile leaves and the kernel has, the context found.
        assert {"uring", "uring_read_write", "uring_cancel"} <= set(found["linux_uring"])


@needs_uring
def test_python_m_caio_says_why_uring_is_not_selected() -> None:
    if not real_uring():
        pytest.skip("io_uring does not work here without the switch")
    environ = {k: v for k, v in os.environ.items() if k not in SWITCH}
    environ["CAIO_KERNEL_PROFILE"] = "5.4"
    proc = subprocess.run(
        [sys.executable, "-m", "caio"], capture_output=True, text=True, env=environ,
        timeout=120, check=False,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    assert "selected: linux" in proc.stdout
    assert "lacks IORING_REGISTER_PROBE" in proc.stdout
    assert "kernel profile: CAIO_KERNEL_PROFILE=5.4" in proc.stdout


@needs_uring
def test_blocked_io_uring_falls_back_to_kernel_aio() -> None:
    found = child(REPORT, CAIO_KERNEL_LACKS="uring")
    assert found["selected"] == "linux"
    assert "seccomp" in found["uring_error"]
    assert "CAIO_KERNEL_LACKS=uring" in found["uring_error"]


# Every optional io_uring feature hidden at once: one mapping per ring, poll()
# instead of a timed io_uring_enter, no SUBMIT_ALL/COOP_TASKRUN, close()
# cancelling one request at a time. The ring must still do all its work.
OLD_RING = """
import caio, json, os, tempfile, threading, time
ctx = caio.linux_uring.Context(4)
found = sorted(ctx._kernel_features)

def run(op):
    ctx.submit(op)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            return op.get_value()
        except RuntimeError:        # not finished: wait for the eventfd
            ctx.process_events(1, 1, 1)
    raise TimeoutError(op)

with tempfile.TemporaryFile() as f:
    wrote = run(caio.linux_uring.Operation.write(b"old ring", f.fileno(), 0))
    read = run(caio.linux_uring.Operation.read(8, f.fileno(), 0)).decode()
# A read that waits on a pipe until a thread writes; then one left in
# flight is cancelled by close().
r, w = os.pipe()
threading.Timer(0.2, os.write, (w, b"later")).start()
waited = run(caio.linux_uring.Operation.read(5, r, 0)).decode()
pending = caio.linux_uring.Operation.read(5, r, 0)
ctx.submit(pending)
ctx.close()
print(json.dumps({"features": found, "wrote": wrote, "read": read, "waited": waited,
                  "cancelled": pending.error}))
"""

OLD_RING_LACKS = ("uring_single_mmap,uring_ext_arg,uring_submit_all,"
                  "uring_coop_taskrun,uring_cancel_any,nowait")


@needs_uring
def test_an_old_ring_still_works() -> None:
    if caio.linux_uring is None:
        pytest.skip("io_uring is hidden in this run")
    found = child(OLD_RING, CAIO_KERNEL_LACKS=OLD_RING_LACKS)
    assert not set(OLD_RING_LACKS.split(",")) & set(found["features"])
    assert (found["wrote"], found["read"], found["waited"]) == (8, "old ring", "later")
    assert found["cancelled"] == 125  # ECANCELED: close() cancelled it


NOWAIT = """
import asyncio, caio, json, os, tempfile
out = {}
with tempfile.TemporaryFile() as f:
    f.write(b"cached" * 100)
    f.flush()
    os.pread(f.fileno(), 600, 0)     # in the page cache now
    for name in ("thread_aio", "python_aio"):
        module = getattr(caio, name)
        if module is None:
            continue
        async def first_answer():
            ctx = module.Context()
            loop = asyncio.get_running_loop()
            ctx.set_future_factory(loop.create_future, loop.call_soon)
            value = ctx.read_async(6, f.fileno(), 0)
            kind = "bytes" if isinstance(value, bytes) else "future"
            if not isinstance(value, bytes):
                reader = asyncio.Event()
                loop.add_reader(ctx.fileno, reader.set)
                while not value.done():
                    await asyncio.wait_for(reader.wait(), 10)
                    reader.clear()
                    ctx.process_events()
                loop.remove_reader(ctx.fileno)
                value = value.result()
            ctx.close()
            return kind, value.decode()
        out[name] = asyncio.run(first_answer())
print(json.dumps(out))
"""


@pytest.mark.skipif(not caio.python_aio.Context()._kernel_features, reason="no RWF_NOWAIT")
@pytest.mark.parametrize("lacks", ["", "nowait"])
def test_without_rwf_nowait_cached_reads_go_to_the_pool(lacks: str) -> None:
    found = child(NOWAIT, CAIO_KERNEL_LACKS=lacks)
    kind = "future" if lacks else "bytes"
    assert found["python_aio"] == [kind, "cached"]
    if "thread_aio" in found:
        assert found["thread_aio"] == [kind, "cached"]


# ---- under the profile this process runs with --------------------------------


def test_this_run_selects_the_profiles_backend() -> None:
    profile = _features.profile()
    print(f"kernel profile: {profile or 'none'}; selected: {caio._selected}; "
          f"hidden: {', '.join(_features.lacked_names()) or 'nothing'}")
    if profile is None:
        pytest.skip("no CAIO_KERNEL_PROFILE in this run")
    if EXPECTED_BACKEND[profile] == "linux" or caio.linux_uring is not None:
        assert caio._selected == EXPECTED_BACKEND[profile]
    else:
        assert caio._selected != "uring"    # io_uring does not work here at all


def test_no_context_of_this_run_has_a_hidden_feature() -> None:
    hidden = set(_features.lacked_names())
    for module in (caio.linux_uring, caio.thread_aio, caio.python_aio):
        if module is None:
            continue
        ctx = module.Context()
        try:
            assert not hidden & ctx._kernel_features, module.__name__
        finally:
            ctx.close()


def test_the_backend_this_environment_expects() -> None:
    # CI sets CAIO_EXPECT_BACKEND where it knows the answer for real: in a
    # container whose seccomp profile blocks io_uring, "linux".
    expected = os.environ.get("CAIO_EXPECT_BACKEND")
    print(f"selected: {caio._selected}; io_uring: "
          f"{caio._import_errors.get('uring') or 'imports'}")
    if not expected:
        pytest.skip("CAIO_EXPECT_BACKEND is not set")
    assert caio._selected == expected
    if expected != "uring":
        reason = caio._import_errors.get("uring", "")
        assert "seccomp" in reason or "io_uring_disabled" in reason, reason


NO_EVENTFD = """
import asyncio, caio, json, os, stat, tempfile
out = {}

async def roundtrip(module):
    async with getattr(caio, module + "_asyncio").AsyncioContext() as ctx:
        low = ctx.context
        kind = "pipe" if stat.S_ISFIFO(os.fstat(low.fileno).st_mode) else "eventfd"
        with tempfile.TemporaryFile() as f:
            await ctx.write(b"no eventfd", f.fileno(), 0)
            return kind, (await ctx.read(10, f.fileno(), 0)).decode()

for name in ("thread_aio", "python_aio"):
    if getattr(caio, name) is not None:
        out[name] = asyncio.run(roundtrip(name))
for name in ("linux_uring", "linux_aio"):
    module = getattr(caio, name)
    if module is not None:
        try:
            module.Context().close()
            out[name] = "works"
        except OSError:
            out[name] = "refused"
print(json.dumps(out))
"""


def test_without_eventfd_the_pools_use_a_pipe() -> None:
    found = child(NO_EVENTFD, CAIO_KERNEL_LACKS="eventfd")
    assert found["python_aio"] == ["pipe", "no eventfd"]
    if "thread_aio" in found:
        assert found["thread_aio"] == ["pipe", "no eventfd"]
    # The rings signal completions through an eventfd they register with
    # the kernel: without one they refuse the context, saying so.
    for name in ("linux_uring", "linux_aio"):
        if name in found:
            assert found[name] == "refused"
