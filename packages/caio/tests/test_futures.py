"""caio._awaitables' Future and FutureFactory: the futures of the asyncio
adapter's suspended operations on asyncio's own loops. They keep the
protocol an asyncio Task awaits, and wake the tasks of a burst of
completions with one call_soon for all."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
from typing import Any

import pytest

_awaitables = pytest.importorskip("caio._awaitables")

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


class CountingLoop(asyncio.SelectorEventLoop):
    """A stock loop that counts its call_soon calls (futures do not go
    through create_future here: the factory makes them)."""

    calls = 0

    def call_soon(  # type: ignore[override]
        self, callback: Any, *args: Any, context: Any = None,
    ) -> Any:
        self.calls += 1
        return super().call_soon(callback, *args, context=context)


@pytest.fixture
def loop() -> Any:
    loop = CountingLoop()
    yield loop
    loop.close()


def test_result_exception_and_states(loop: Any) -> None:
    make = _awaitables.FutureFactory(loop)
    f = make()
    assert asyncio.isfuture(f) and not asyncio.iscoroutine(f)
    assert f.get_loop() is loop and make.loop is loop
    assert not f.done() and not f.cancelled()
    with pytest.raises(asyncio.InvalidStateError):
        f.result()
    with pytest.raises(asyncio.InvalidStateError):
        f.exception()
    f.set_result(b"data")
    assert f.done() and f.result() == b"data" and f.exception() is None
    with pytest.raises(asyncio.InvalidStateError):
        f.set_result(b"again")
    with pytest.raises(asyncio.InvalidStateError):
        f.set_exception(OSError(5, "again"))
    assert not f.cancel()

    g = make()
    error = OSError(5, "Input/output error")
    g.set_exception(error)
    assert g.exception() is error
    with pytest.raises(OSError) as info:
        g.result()
    assert info.value is error
    h = make()
    h.set_exception(ValueError)   # a class is instantiated, as asyncio does
    assert type(h.exception()) is ValueError
    with pytest.raises(TypeError):
        make().set_exception(StopIteration())
    with pytest.raises(TypeError):
        make().set_exception("not an exception")

    c = make()
    assert c.cancel(msg="why") and c.cancelled() and c.done()
    with pytest.raises(asyncio.CancelledError, match="why"):
        c.result()
    with pytest.raises(asyncio.CancelledError):
        c.exception()
    with pytest.raises(asyncio.InvalidStateError):
        c.set_result(1)   # what the backends take for "nobody waits"
    assert not c.cancel()
    with pytest.raises(TypeError):
        make(1)
    for bad in ((), (print, print)):
        with pytest.raises(TypeError):
            make().add_done_callback(*bad)
    with pytest.raises(TypeError):
        make().add_done_callback(print, ctx=None)
    with pytest.raises(TypeError, match="Context"):
        make().add_done_callback(print, context={})


def test_callbacks_run_in_a_later_iteration_in_order_and_context(loop: Any) -> None:
    make = _awaitables.FutureFactory(loop)
    seen: list[tuple[str, Any, str]] = []
    futures = [make() for _ in range(3)]
    for i, f in enumerate(futures):
        ctx = contextvars.copy_context()
        ctx.run(var.set, f"ctx{i}")
        f.add_done_callback(lambda f, i=i: seen.append((f"first{i}", f, var.get())), context=ctx)
        f.add_done_callback(lambda f, i=i: seen.append((f"second{i}", f, var.get())))
    removed = futures[1].add_done_callback
    removed(print)
    removed(print)
    assert futures[1].remove_done_callback(print) == 2
    assert futures[1].remove_done_callback(print) == 0
    before = loop.calls
    for f in (futures[2], futures[0], futures[1]):
        f.set_result(None)
    assert seen == []                    # not while resolving
    assert loop.calls == before + 1      # one call_soon for the burst
    loop.run_until_complete(asyncio.sleep(0))
    assert [name for name, _, _ in seen] == [
        "first2", "second2", "first0", "second0", "first1", "second1"]
    assert [value for name, _, value in seen if name.startswith("first")] == [
        "ctx2", "ctx0", "ctx1"]
    assert {value for name, _, value in seen if name.startswith("second")} == {"unset"}
    # A callback added once done runs too, in a later iteration.
    late: list[Any] = []
    futures[0].add_done_callback(late.append)
    assert late == []
    loop.run_until_complete(asyncio.sleep(0))
    assert late == [futures[0]]


def test_a_failing_callback_goes_to_the_exception_handler(loop: Any) -> None:
    make = _awaitables.FutureFactory(loop)
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda loop, info: reported.append(info))
    ran: list[int] = []
    f, g = make(), make()

    def fail(future: Any) -> None:
        raise ValueError("boom")

    f.add_done_callback(fail)
    f.add_done_callback(lambda _: ran.append(1))
    g.add_done_callback(lambda _: ran.append(2))
    f.set_result(None)
    g.set_result(None)
    loop.run_until_complete(asyncio.sleep(0))
    assert ran == [1, 2]
    [info] = reported
    assert isinstance(info["exception"], ValueError) and info["future"] is f
    assert "fail" in info["message"]


def test_keyboard_interrupt_leaves_the_rest_for_the_next_run(loop: Any) -> None:
    make = _awaitables.FutureFactory(loop)
    ran: list[int] = []
    f, g = make(), make()

    def interrupt(future: Any) -> None:
        raise KeyboardInterrupt

    f.add_done_callback(interrupt)
    f.add_done_callback(lambda _: ran.append(1))
    g.add_done_callback(lambda _: ran.append(2))
    f.set_result(None)
    g.set_result(None)
    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(asyncio.sleep(0))
    assert ran == []
    loop.run_until_complete(asyncio.sleep(0))
    assert ran == [1, 2]


def test_tasks_await_cancel_and_wait_on_them(loop: Any) -> None:
    make = _awaitables.FutureFactory(loop)

    async def main() -> None:
        # Awaited by tasks, gathered, waited for: asyncio's own functions.
        a, b = make(), make()
        tasks = [asyncio.ensure_future(fut) for fut in (a, b)]   # futures as they are
        assert tasks[0] is a
        waiter = asyncio.ensure_future(asyncio.wait([a, b]))

        async def await_it(f: Any) -> Any:
            return await f

        t = asyncio.ensure_future(await_it(a))
        await asyncio.sleep(0)
        a.set_result(1)
        b.set_exception(OSError(9, "EBADF"))
        done, pending = await waiter
        assert done == {a, b} and not pending
        assert await t == 1
        # Cancelling the task cancels the future it waits on.
        c = make()
        t = asyncio.ensure_future(await_it(c))
        await asyncio.sleep(0)
        t.cancel("stop")
        with pytest.raises(asyncio.CancelledError):
            await t
        assert c.cancelled()
        # wait_for with a timeout, shield.
        d = make()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(await_it(d), 0.01)
        assert d.cancelled()
        e = make()
        shielded = asyncio.ensure_future(asyncio.shield(e))
        await asyncio.sleep(0)
        shielded.cancel()
        await asyncio.sleep(0)
        assert not e.done()
        e.set_result("kept")
        assert await e == "kept"

    loop.run_until_complete(main())


def test_a_task_woken_by_a_value_takes_asyncios_fast_path(loop: Any) -> None:
    """A Task's wake-up on a future that finished with a value is called
    with the factory's finished asyncio future (the Task's fast path, not
    a generic result() call); the value still comes from the awaited
    future. A failed or cancelled future wakes its Task with itself."""
    make = _awaitables.FutureFactory(loop)

    async def await_it(f: Any) -> Any:
        return await f

    class MyTask(asyncio.Task):  # type: ignore[type-arg]
        pass

    python_task = getattr(asyncio.tasks, "_PyTask", None)

    async def main() -> list[Any]:
        ok, bad, stopped, mine, twice = (make() for _ in range(5))
        tasks = [asyncio.ensure_future(await_it(f)) for f in (ok, bad, stopped, twice, twice)]
        tasks.append(MyTask(await_it(mine)))
        await asyncio.sleep(0)
        ok.set_result(b"value")
        bad.set_exception(OSError(5, "EIO"))
        tasks[2].cancel("stop")
        mine.set_result(7)
        twice.set_result(None)
        return await asyncio.gather(*tasks, return_exceptions=True)

    got = loop.run_until_complete(main())
    assert got[0] == b"value" and got[3:] == [None, None, 7]
    assert isinstance(got[1], OSError) and got[1].errno == 5
    assert isinstance(got[2], asyncio.CancelledError)
    # ok, twice (two tasks) and mine (a Task subclass): the same wake-up.
    assert make.direct_wakeups == 4
    if python_task is not None:   # a Task written in Python: as before
        fut = make()
        task = python_task(await_it(fut), loop=loop)
        loop.run_until_complete(asyncio.sleep(0))
        fut.set_result("py")
        assert loop.run_until_complete(task) == "py"
        assert make.direct_wakeups == 4


def test_a_wait_makes_no_bound_method(loop: Any) -> None:
    """What a Task looks up on every wait: get_loop is one callable per
    factory, add_done_callback the future itself (calling a Future adds a
    done callback)."""
    make = _awaitables.FutureFactory(loop)
    f, g = make(), make()
    assert f.get_loop is g.get_loop and f.get_loop() is loop
    assert f.add_done_callback is f
    seen: list[Any] = []
    f(seen.append, context=contextvars.copy_context())
    f.set_result(1)
    loop.run_until_complete(asyncio.sleep(0))
    assert seen == [f]


def test_a_closed_loop_refuses_the_wake_up(loop: Any) -> None:
    make = _awaitables.FutureFactory(loop)
    quiet, heard = make(), make()
    heard.add_done_callback(print)
    loop.close()
    quiet.set_result(1)   # nobody to wake: nothing to schedule
    with pytest.raises(RuntimeError, match="closed"):
        heard.set_result(1)
    assert heard.done()   # as an asyncio.Future: finished, nobody woken


def test_no_reference_cycle_outlives_its_objects(loop: Any) -> None:
    make = _awaitables.FutureFactory(loop)

    async def wait_forever(f: Any) -> None:
        await f

    def count() -> int:
        gc.collect()
        return sum(type(o) is _awaitables.Future for o in gc.get_objects())

    before = count()
    for _ in range(10):
        task = loop.create_task(wait_forever(make()))
        loop.run_until_complete(asyncio.sleep(0))
        task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        assert task.cancelled()
        del task
    assert count() == before


async def test_the_adapter_uses_them_for_suspended_operations(context: Any, backend: str) -> None:
    if backend == "linux":
        pytest.skip("a kernel AIO read of an empty pipe blocks inside io_submit")
    r, w = os.pipe()
    try:
        task = asyncio.ensure_future(context.read(3, r, 0))
        for _ in range(100):
            await asyncio.sleep(0)
            if getattr(task, "_fut_waiter", None) is not None:
                break
        assert type(task._fut_waiter) is _awaitables.Future
        os.write(w, b"abc")
        assert await asyncio.wait_for(task, 10) == b"abc"
    finally:
        os.close(r)
        os.close(w)


def test_the_reaper_runs_the_callbacks_of_what_it_finished_at_once(loop: Any) -> None:
    make = _awaitables.FutureFactory(loop)
    f, g, later = make(), make(), make()
    seen: list[Any] = []
    f.add_done_callback(lambda fut: (seen.append(fut), later.set_result(3)))
    g.add_done_callback(seen.append)
    later.add_done_callback(seen.append)

    def process_events() -> int:
        f.set_result(1)
        g.set_result(2)
        assert seen == []           # not while it runs
        return 2

    reaper = make.reaper(process_events)
    before = loop.calls
    assert reaper() == 2
    # f's and g's callbacks ran when it returned, in order, without a
    # call_soon; what a callback finished waits for the next iteration.
    assert seen == [f, g]
    assert loop.calls == before + 1
    loop.run_until_complete(asyncio.sleep(0))
    assert seen == [f, g, later]
    with pytest.raises(TypeError):
        make.reaper(None)


def test_a_failing_reap_still_wakes_what_it_finished(loop: Any) -> None:
    make = _awaitables.FutureFactory(loop)
    f = make()
    seen: list[Any] = []
    f.add_done_callback(seen.append)

    def process_events() -> None:
        f.set_result(1)
        raise OSError(5, "the ring is stuck")

    with pytest.raises(OSError, match="stuck"):
        make.reaper(process_events)()
    assert seen == []
    loop.run_until_complete(asyncio.sleep(0))
    assert seen == [f]
