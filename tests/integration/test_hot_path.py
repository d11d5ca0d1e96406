"""The performance work's behaviour: look-ahead and held runs, timers fired before their
record is written, inline commits, the worker's GC setting, results without a re-read."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import duro
from duro.errors import StoreError
from duro.store import Fenced, NewEvent
from duro.store.sqlite import SqliteStore
from duro.testing import ManualClock
from duro.worker import _gc
from tests.conftest import run, wait_until

gate: asyncio.Event | None = None


@duro.step
async def after_nap(i: int) -> int:
    if gate is not None:
        await gate.wait()
    return i * 10


@duro.workflow
async def short_nap(i: int) -> int:
    await asyncio.sleep(2)
    return await after_nap(i)


@duro.workflow
async def long_nap(i: int) -> int:
    await asyncio.sleep(3600)
    return await after_nap(i)


@pytest.fixture
def db_url(any_db_url: str) -> str:
    return any_db_url


@pytest.fixture(autouse=True)
def _no_gate() -> Iterator[None]:
    global gate
    gate = None
    yield
    gate = None


def _kinds(events: list[duro.Event]) -> list[str]:
    return [e.kind for e in events]


def test_a_run_with_a_near_timer_is_held_not_suspended(db_url: str) -> None:
    clock = ManualClock()

    async def main() -> None:
        async with duro.Engine(db_url, clock=clock, lookahead=5.0) as engine:
            assert engine.worker is not None
            handle = await engine.start(short_nap, 4)
            await wait_until(lambda: handle.run_id in engine.worker.active
                             and engine.worker.active[handle.run_id].inst.timers != {})
            await asyncio.sleep(0.2)
            # Held in memory: still `running`, nothing written after the start.
            assert await handle.status() == duro.RunStatus.RUNNING
            assert _kinds(await handle.history()) == ["run_started"]
            clock.advance(2)
            assert await handle.result(timeout=10) == 40
            assert _kinds(await handle.history()) == [
                "run_started", "timer_fired", "step_completed", "run_completed"]

    run(main())


def test_without_lookahead_the_run_suspends(db_url: str) -> None:
    clock = ManualClock()

    async def main() -> None:
        async with duro.Engine(db_url, clock=clock, lookahead=0) as engine:
            handle = await engine.start(short_nap, 1)

            async def suspended() -> bool:
                return await handle.status() == duro.RunStatus.SUSPENDED

            await wait_until(suspended)
            clock.advance(2)
            assert await handle.result(timeout=10) == 10

    run(main())


def test_suspended_runs_are_loaded_ahead_of_their_timer_and_fire_on_time(db_url: str) -> None:
    clock = ManualClock()

    async def main() -> None:
        async with duro.Engine(db_url, clock=clock, lookahead=5.0) as engine:
            assert engine.worker is not None
            handles = [await engine.start(long_nap, i) for i in range(20)]

            async def all_suspended() -> bool:
                return all([await h.status() == duro.RunStatus.SUSPENDED for h in handles])

            await wait_until(all_suspended)
            engine.worker.cache.clear()  # force a load from the store
            clock.advance(3600 - 4)  # inside the look-ahead: claimed and loaded now
            await wait_until(lambda: len(engine.worker.active) == 20)
            assert engine.worker.steps_executed == 0
            for h in handles:
                assert _kinds(await h.history()) == ["run_started"]
            clock.advance(4)
            assert [await h.result(timeout=10) for h in handles] == [i * 10 for i in range(20)]

    run(main())


def test_claimed_runs_are_taken_up_with_one_read_per_batch(db_url: str) -> None:
    """A claim's runs are loaded together (histories, heartbeats, inbox); when that read
    fails, the runs go back to the store and a later claim takes them up."""
    clock = ManualClock()

    async def main() -> None:
        async with duro.Engine(db_url, clock=clock, lookahead=5.0) as engine:
            assert engine.worker is not None
            store = engine.store
            handles = [await engine.start(long_nap, i) for i in range(30)]

            async def all_suspended() -> bool:
                return all([await h.status() == duro.RunStatus.SUSPENDED for h in handles])

            await wait_until(all_suspended)
            engine.worker.cache.clear()  # force a load from the store
            calls: list[int] = []
            real = store.load_runs

            async def load_runs(run_ids: Any, **kw: Any) -> Any:
                calls.append(len(run_ids))
                if len(calls) == 1:
                    raise StoreError("the read failed")
                return await real(run_ids, **kw)

            store.load_runs = load_runs  # type: ignore[method-assign]
            clock.advance(3600 - 4)  # inside the look-ahead: claimed and loaded now
            await wait_until(lambda: len(engine.worker.active) == 30)
            assert calls[0] == 30 and sum(calls[1:]) == 30 and len(calls) <= 3
            assert engine.worker.steps_executed == 0
            clock.advance(4)
            assert [await h.result(timeout=10) for h in handles] == [i * 10 for i in range(30)]

    run(main())


def test_a_fired_timer_not_yet_written_fires_again_after_a_restart(db_url: str) -> None:
    """timer_fired waits in the outbox while the next step runs; if the worker stops
    before writing it, the run replays to the same point and fires the timer again, and
    the history records it exactly once, before the step's outcome."""
    global gate
    clock = ManualClock()

    async def main() -> None:
        global gate
        gate = asyncio.Event()
        async with duro.Engine(db_url, clock=clock) as engine:
            assert engine.worker is not None
            handle = await engine.start(short_nap, 7, id="nap")
            await wait_until(lambda: handle.run_id in engine.worker.active
                             and engine.worker.active[handle.run_id].inst.timers != {})
            clock.advance(2)
            await wait_until(lambda: engine.worker is not None
                             and engine.worker.steps_executed == 1)
        gate.set()
        async with duro.Engine(db_url, clock=clock) as engine:
            assert await engine.get_handle("nap").result(timeout=10) == 70
            kinds = _kinds(await engine.get_handle("nap").history())
        assert kinds.count("timer_fired") == 1
        assert kinds.index("timer_fired") < kinds.index("step_completed")
        assert kinds[-1] == "run_completed"

    run(main())


def test_a_fired_timer_is_recorded_within_the_flush_delay_while_its_step_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The records of fired timers wait for their runs' next writes, but no longer than the
    flush delay, each counted from its own timer (one loop timer serves them all)."""
    from duro.worker import _decide

    monkeypatch.setattr(_decide, "_FLUSH_DELAY", 0.5)
    clock = ManualClock()

    async def main() -> None:
        global gate
        gate = asyncio.Event()  # the steps after the naps run until released
        async with duro.Engine(f"sqlite:///{tmp_path}/flushes.db", clock=clock) as engine:
            worker = engine.worker
            assert worker is not None
            first = await engine.start(short_nap, 1, id="first")
            second = await engine.start(long_nap, 2, id="second")
            await wait_until(lambda: len(worker.active) == 1)  # second is suspended

            async def fired(handle: duro.WorkflowHandle[Any]) -> bool:
                return "timer_fired" in _kinds(await handle.history())

            clock.advance(2)
            await wait_until(lambda: worker.steps_executed == 1)
            await asyncio.sleep(0.3)
            clock.advance(3598)
            await wait_until(lambda: worker.steps_executed == 2)
            assert not await fired(first) and not await fired(second)
            await wait_until(lambda: fired(first), timeout=5, interval=0.01)
            assert not await fired(second)  # its delay runs ~0.3 s longer
            await wait_until(lambda: fired(second), timeout=5, interval=0.01)
            gate.set()
            assert await first.result(timeout=10) == 10
            assert await second.result(timeout=10) == 20
            for h in (first, second):
                assert _kinds(await h.history()).count("timer_fired") == 1

    run(main())


def test_a_flush_due_after_a_stop_starts_no_task(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A fired timer's record waits for a flush; if the worker stops first, the flush's
    timer must not start a task the stopped worker no longer waits for (it would be left
    pending when the loop closes). The record is fired again on replay."""
    from duro.worker import _decide

    monkeypatch.setattr(_decide, "_FLUSH_DELAY", 0.2)
    clock = ManualClock()

    async def main() -> None:
        global gate
        gate = asyncio.Event()
        engine = duro.Engine(f"sqlite:///{tmp_path}/flush.db", clock=clock)
        await engine.__aenter__()
        worker = engine.worker
        assert worker is not None
        handle = await engine.start(short_nap, 1, id="flush")
        await wait_until(lambda: handle.run_id in worker.active
                         and worker.active[handle.run_id].inst.timers != {})
        clock.advance(2)  # fires the timer: its record waits in the outbox, flush pending
        await wait_until(lambda: worker.steps_executed == 1)
        inst = worker.active[str(handle.run_id)]
        assert inst.flush_pending and inst.outbox
        await engine.__aexit__(None, None, None)
        spawned: list[Any] = []
        worker.spawn = spawned.append  # type: ignore[method-assign, assignment]
        await asyncio.sleep(0.4)  # past the flush delay
        assert spawned == []
        gate.set()
        async with duro.Engine(f"sqlite:///{tmp_path}/flush.db", clock=clock) as again:
            assert await again.get_handle("flush").result(timeout=10) == 10
            kinds = _kinds(await again.get_handle("flush").history())
        assert kinds.count("timer_fired") == 1

    run(main())


def test_the_wakeup_heap_forgets_suspended_runs(tmp_path: Path) -> None:
    clock = ManualClock()

    async def main() -> None:
        async with duro.Engine(f"sqlite:///{tmp_path}/heap.db", clock=clock,
                               lookahead=0, max_cached=10) as engine:
            assert engine.worker is not None
            for chunk in range(0, 3000, 500):
                await asyncio.gather(*(engine.start(long_nap, i)
                                       for i in range(chunk, chunk + 500)))
            await wait_until(lambda: not engine.worker.active
                             and len(engine.worker.cache) <= 10, timeout=60)
            # One entry per run would be 3,000+; the store's wake_at has them instead.
            assert len(engine.worker.wakeups) <= 1024

    run(main(), timeout=120)


@pytest.fixture
def fresh_gc() -> Iterator[None]:
    """The collector as in a fresh process (CPython's thresholds, no worker holding its
    own: an earlier test may have left an engine open), and its state, with the idle
    collections' last time, restored after."""
    before, holders, last = gc.get_threshold(), _gc._holders, _gc._last_idle
    gc.set_threshold(*_gc._DEFAULTS)
    _gc._holders = 0
    try:
        yield
    finally:
        gc.set_threshold(*before)
        _gc._holders, _gc._last_idle = holders, last


@pytest.mark.usefixtures("fresh_gc")
def test_the_worker_tunes_gc_only_from_the_defaults_and_restores_them(
        tmp_path: Path) -> None:
    async def main() -> None:
        async with duro.Engine(f"sqlite:///{tmp_path}/a.db"):
            assert gc.get_threshold() == _gc._THRESHOLDS
            async with duro.Engine(f"sqlite:///{tmp_path}/b.db"):
                assert gc.get_threshold() == _gc._THRESHOLDS
            assert gc.get_threshold() == _gc._THRESHOLDS  # one worker still runs
        assert gc.get_threshold() == _gc._DEFAULTS
        gc.set_threshold(1234, 5, 6)  # the application's own choice is kept
        async with duro.Engine(f"sqlite:///{tmp_path}/c.db"):
            assert gc.get_threshold() == (1234, 5, 6)
        async with duro.Engine(f"sqlite:///{tmp_path}/d.db", tune_gc=False):
            assert gc.get_threshold() == (1234, 5, 6)

    run(main())


def _young_collections(n: int) -> None:
    for _ in range(n):
        gc.collect(0)


@pytest.mark.usefixtures("fresh_gc")
def test_an_idle_worker_collects_the_young_generations(tmp_path: Path) -> None:
    async def main() -> None:
        async with duro.Engine(f"sqlite:///{tmp_path}/idle.db") as engine:
            handle = await engine.start(short_nap, 1)
            assert await handle.result(timeout=30) == 10
            # Young collections leave survivors in the middle generation; a worker
            # with nothing to do collects it (automatically that would wait for 20).
            _gc._last_idle = -_gc._IDLE_GAP
            _young_collections(5)
            assert gc.get_count()[1] >= 5
            # Waited in long sleeps: a timer due within a quarter second (a tight
            # polling loop) is work coming, and the worker does not collect then.
            for _ in range(20):
                await asyncio.sleep(0.5)
                if gc.get_count()[1] == 0:
                    break
            assert gc.get_count()[1] == 0

        # Not a worker that tuned the collector (the same thresholds, set by the
        # application): its GC is the application's own.
        gc.set_threshold(*_gc._THRESHOLDS)
        async with duro.Engine(f"sqlite:///{tmp_path}/own.db", tune_gc=False):
            _gc._last_idle = -_gc._IDLE_GAP
            _young_collections(5)
            await asyncio.sleep(0.6)
            assert gc.get_count()[1] >= 5

    run(main())


@duro.workflow
async def no_nap(i: int) -> int:
    return await after_nap(i)


@pytest.mark.usefixtures("fresh_gc")
def test_a_worker_waiting_on_its_runs_last_commit_is_not_idle(tmp_path: Path) -> None:
    # A burst of runs ending together waits on their last commits with nothing ready on
    # the event loop; the worker took that for idle time and ran a 30-60 ms collection
    # in the middle of the burst (1000 x 10: 6 of 8 runs without interceptors). A run's
    # write not yet committed is work in flight; so is a step task run here.
    async def main() -> None:
        async with duro.Engine(f"sqlite:///{tmp_path}/busy.db") as engine:
            worker = engine.worker
            assert worker is not None
            real_append, real_idle = worker.store.append, worker._idle
            gate, writing = asyncio.Event(), asyncio.Event()
            answers: list[bool] = []

            async def held_up(*args: Any, **kwargs: Any) -> Any:
                if kwargs.get("release"):  # the run's end: its last write
                    writing.set()
                    await gate.wait()
                return await real_append(*args, **kwargs)

            def idle() -> bool:
                answers.append(real_idle())
                return answers[-1]

            worker.store.append = held_up  # type: ignore[method-assign]
            worker._idle = idle  # type: ignore[method-assign]
            handle = await engine.start(no_nap, 4)

            def asked(n: int) -> bool:
                worker.wake()  # the main loop goes round, and asks again
                return len(answers) >= n

            try:
                await asyncio.wait_for(writing.wait(), 10)
                answers.clear()
                await wait_until(lambda: asked(5))
                assert not any(answers)  # its end is not committed yet
            finally:
                gate.set()
            assert await handle.result(timeout=10) == 40
            await wait_until(lambda: asked(1) and answers[-1])  # idle now
            # A step task this worker runs for a step queue (its thread may be all
            # that is busy) is work in flight too.
            worker.tasks.running += 1
            try:
                answers.clear()
                await wait_until(lambda: asked(5))
                assert not any(answers)
            finally:
                worker.tasks.running -= 1
            await wait_until(lambda: asked(1) and answers[-1])

    run(main())


def test_idle_collections_need_survivors_the_thresholds_and_a_second() -> None:
    before, last = gc.get_threshold(), _gc._last_idle
    gc.set_threshold(*_gc._THRESHOLDS)
    try:
        _gc._last_idle = -_gc._IDLE_GAP
        gc.collect(1)
        _young_collections(4)
        assert not _gc.collect_young_when_idle()  # the middle collection is not yet due
        _young_collections(1)
        assert _gc.collect_young_when_idle()
        assert gc.get_count()[1] == 0
        _young_collections(5)
        assert not _gc.collect_young_when_idle()  # within a second of the last one
        _gc._last_idle -= _gc._IDLE_GAP
        gc.set_threshold(1234, 20, 10)  # the application changed them meanwhile
        assert not _gc.collect_young_when_idle()
        gc.set_threshold(*_gc._THRESHOLDS)
        assert _gc.collect_young_when_idle()
    finally:
        gc.set_threshold(*before)
        _gc._last_idle = last


def _events(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])


def test_inline_commits_for_a_lone_writer_and_the_thread_under_load(tmp_path: Path) -> None:
    path = tmp_path / "inline.db"

    @duro.workflow(name="hot_chain")
    async def chain(n: int) -> int:
        total = 0
        for i in range(n):
            total += await after_nap(i)
        return total

    async def main() -> None:
        async with duro.Engine(f"sqlite:///{path}") as engine:
            store = engine.store
            assert isinstance(store, SqliteStore) and store._writer is not None
            writer = store._writer
            handle = await engine.start(chain, 30)
            assert await handle.result(timeout=30) == sum(i * 10 for i in range(30))
            lone = writer.inline
            assert lone >= 20, f"only {lone} of a lone run's writes committed inline"
            ops, batches = writer.ops, writer.batches
            handles = await asyncio.gather(*(engine.start(chain, 5) for _ in range(200)))
            assert all([await h.result(timeout=60) == 100 for h in handles])
            # Under load most writes share the thread's commits.
            assert writer.batches - batches < (writer.ops - ops) / 2

        async with duro.Engine(f"sqlite:///{path}?inline_commits=false") as engine:
            assert isinstance(engine.store, SqliteStore) and engine.store._writer is not None
            h = await engine.start(chain, 3)
            assert await h.result(timeout=30) == 30
            assert engine.store._writer.inline == 0

    run(main())


def test_an_inline_write_that_fails_rolls_back(tmp_path: Path) -> None:
    path = tmp_path / "fail.db"

    async def main() -> None:
        store = SqliteStore(f"sqlite:///{path}")
        await store.open()
        try:
            record, _ = await store.create_run(run_id="r1", workflow_id="w1",
                                               workflow_name="wf", input=b"[]", now=1.0,
                                               owner="me", on_conflict="fail",
                                               on_reuse="allow")
            before = _events(path)
            assert store._writer is not None
            inline = store._writer.inline
            with pytest.raises(Fenced):  # wrong epoch: the fence refuses the write
                await store.append("r1", record.epoch + 5, 1,
                                   [NewEvent(kind="marker", ts=2.0, name="x")], now=2.0)
            assert store._writer.inline == inline  # not counted: nothing was committed
            assert _events(path) == before
            await store.append("r1", record.epoch, 1,
                               [NewEvent(kind="marker", ts=2.0, name="x")], now=2.0)
            assert _events(path) == before + 1
        finally:
            await store.close()
        with pytest.raises(StoreError):
            await store.append("r1", 1, 2, [], now=3.0)

    run(main())


@duro.workflow
async def three_steps(i: int) -> int:
    total = 0
    for k in range(3):
        total += await after_nap(i + k)
    return total


def test_finished_and_evicted_runs_leave_no_cyclic_garbage(tmp_path: Path) -> None:
    """Reference counting frees a run's objects when it ends or leaves the cache: the
    worker makes the cyclic collector run rarely, so cycles would pile up (they did:
    ~30 objects per step and ~20 per evicted run)."""

    async def main() -> None:
        async with duro.Engine(f"sqlite:///{tmp_path}/gc.db", tune_gc=False,
                               max_cached=5, lookahead=0) as engine:
            warm = await asyncio.gather(*(engine.start(three_steps, i) for i in range(20)))
            await asyncio.gather(*(h.result(timeout=30) for h in warm))
            del warm
            await asyncio.sleep(0.2)
            gc.collect()
            gc.disable()
            try:
                handles = await asyncio.gather(*(engine.start(three_steps, i)
                                                 for i in range(200)))
                await asyncio.gather(*(h.result(timeout=30) for h in handles))
                await asyncio.gather(*(engine.start(long_nap, i) for i in range(100)))
                await wait_until(lambda: not engine.worker.active  # type: ignore[union-attr]
                                 and len(engine.worker.cache) <= 5)
                del handles
                await asyncio.sleep(0.2)
                gc.set_debug(gc.DEBUG_SAVEALL)
                gc.collect()
                garbage = len(gc.garbage)
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.enable()
            # 300 runs, 600 steps: a cycle per run or per step would be hundreds.
            assert garbage < 100, f"{garbage} objects in reference cycles"

    run(main())


STOP_GATE = {"slow": True}


@duro.step
async def slow_unless_released(i: int) -> int:
    if STOP_GATE["slow"]:
        await asyncio.sleep(30)
    return i + 1


@duro.workflow
async def one_slow_step(i: int) -> int:
    return await slow_unless_released(i)


def test_a_step_abandoned_by_a_stop_leaves_its_run_to_be_resumed(db_url: str) -> None:
    """The stop cancels the running step; the run must be released as it is, not
    recorded suspended with nothing to wake it (which a race with the release did)."""

    async def main() -> None:
        STOP_GATE["slow"] = True
        async with duro.Engine(db_url) as engine:
            assert engine.worker is not None
            handle = await engine.start(one_slow_step, 4, id="abandoned")
            await wait_until(lambda: engine.worker is not None
                             and engine.worker.steps_executed == 1)
            await asyncio.sleep(0.05)
            # Work the stop waits for (as a slow store call would be): meanwhile the
            # cancelled step returns to its run, which is where the race was.
            engine.worker.spawn(asyncio.sleep(0.3))
        STOP_GATE["slow"] = False
        async with duro.Engine(db_url, worker=False) as client:
            assert await client.get_handle("abandoned").status() == duro.RunStatus.PENDING
        async with duro.Engine(db_url) as engine:
            assert await engine.get_handle("abandoned").result(timeout=10) == 5
        _ = handle

    run(main())


# -- a run's end: the main loop looks at the store only when it can matter -----------------
# A worker polls rarely here (30 s): each of these would take that long if the end of a
# run did not make the main loop look at the store at once (decide.closed).

SLOW_POLL = 30.0
ONE_AT_A_TIME = duro.Queue("q-hot-one", concurrency=1)


@duro.workflow
async def hot_child(i: int) -> int:
    return await after_nap(i)


@duro.workflow
async def hot_parent(n: int) -> list[int]:
    return [await duro.execute_child(hot_child, i) for i in range(n)]


@duro.workflow(queue=ONE_AT_A_TIME)  # the declaration itself, not its name
async def hot_serial(i: int) -> int:
    return await after_nap(i)


def test_a_child_s_end_resumes_its_parent_at_once(db_url: str) -> None:
    async def main() -> list[int]:
        async with duro.Engine(db_url, poll_interval=SLOW_POLL) as engine:
            handle = await engine.start(hot_parent, 3)
            return await handle.result(timeout=10)

    assert run(main()) == [0, 10, 20]


def test_a_run_s_end_frees_its_slot_at_once_when_there_was_no_room(db_url: str) -> None:
    async def main() -> list[int]:
        async with duro.Engine(db_url, poll_interval=SLOW_POLL, max_active=1) as engine:
            handles = [await engine.start(hot_child, i) for i in range(3)]
            return [await h.result(timeout=10) for h in handles]

    assert run(main()) == [0, 10, 20]


def test_a_run_s_end_frees_its_limited_queue_s_slot_at_once(db_url: str) -> None:
    async def main() -> list[int]:
        async with duro.Engine(db_url, poll_interval=SLOW_POLL) as engine:
            handles = [await engine.start(hot_serial, i) for i in range(3)]
            return [await h.result(timeout=10) for h in handles]

    assert run(main()) == [0, 10, 20]
