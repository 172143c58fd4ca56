"""aiofile._running: asyncio programs need neither trio nor sniffio."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PROGRAM = textwrap.dedent("""
    import asyncio, sys

    BLOCKED = sys.argv[2] == "blocked"
    if BLOCKED:
        # As if they were not installed: importing them raises ImportError.
        for name in ("trio", "anyio", "sniffio"):
            sys.modules[name] = None

    from aiofile import AIOFile, async_open
    from aiofile._running import trio_runs
    from aiofile.context import default_context, get_default_context

    async def main():
        async with async_open(sys.argv[1], "w") as f:
            await f.write("asyncio only\\n")
        async with AIOFile(sys.argv[1], "r+") as afp:
            await afp.truncate(7)
            text = await afp.read()
        assert default_context() is get_default_context()
        return text

    assert asyncio.run(main()) == "asyncio"
    loaded = sorted({"trio", "anyio", "sniffio"} & {
        name for name, module in sys.modules.items() if module is not None
    })
    # Outside any loop: sniffio is asked (when it is there), and says no.
    assert not trio_runs()
    try:
        default_context()
    except RuntimeError:
        pass
    else:
        raise AssertionError("a default context outside any loop")
    print(",".join(loaded) or "none")
""")


def run(path: Path, mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(path), mode],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_asyncio_without_trio_or_sniffio_installed(tmp_path: Path) -> None:
    assert run(tmp_path / "f", "blocked") == "none"


def test_asyncio_imports_no_trio_machinery(tmp_path: Path) -> None:
    # Installed or not, inside its loop an asyncio program imports none of them.
    assert run(tmp_path / "f", "installed") == "none"


def test_thread_call_outcome_and_error_under_both_libraries() -> None:
    import asyncio

    trio = __import__("pytest").importorskip("trio")
    from aiofile._running import ThreadCall, wait_to_end

    async def main() -> tuple[int, str]:
        good = ThreadCall(None, sum, [1, 2, 3])
        bad = ThreadCall(None, int, "x")
        await wait_to_end(good, bad)
        assert good.done and bad.done and good.error is None
        try:
            await bad.result()
        except ValueError as exc:
            return await good.result(), type(bad.error).__name__ + ":" + str(exc)[:7]
        raise AssertionError("no error")

    assert asyncio.run(main()) == trio.run(main) == (6, "ValueError:invalid")


def test_wait_to_end_outlasts_a_second_cancellation() -> None:
    # asyncio: a task cancelled again while it waits for its worker still
    # waits until the worker returned, then ends cancelled.
    import asyncio
    import threading

    import pytest

    from aiofile._running import ThreadCall, wait_to_end

    release = threading.Event()
    seen: list[str] = []
    calls: list[ThreadCall[bool]] = []

    async def holder() -> None:
        call = ThreadCall(None, release.wait, 30)
        calls.append(call)
        try:
            await call.result()
        except asyncio.CancelledError:
            seen.append("cancelled")
            await wait_to_end(call)  # raises the second cancellation, after the call
            seen.append("not reached")

    async def main() -> None:
        task = asyncio.ensure_future(holder())
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.sleep(0.01)
        task.cancel()  # again, while it waits for the worker
        await asyncio.sleep(0.05)
        assert seen == ["cancelled"] and not task.done() and not calls[0].done
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == ["cancelled"] and calls[0].done and calls[0].outcome() is True

    asyncio.run(main())
