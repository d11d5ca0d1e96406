"""Workflow semantics: signals, published state, queries, updates, child workflows,
cancellation, continue-as-new, timeouts and conditions, retry/reset/fork."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import pytest

import duro
from duro.testing import ManualClock
from tests.conftest import run, wait_until

EXEC: dict[str, int] = {}


@pytest.fixture
def db_url(any_db_url: str) -> str:
    """Store-agnostic tests: each runs on SQLite and on PostgreSQL (counters reset)."""
    EXEC.clear()
    return any_db_url


def count(key: str) -> None:
    EXEC[key] = EXEC.get(key, 0) + 1


@dataclass
class Approval:
    by: str
    ok: bool


@duro.step
def record(key: str) -> str:
    count(key)
    return key


# -- signals -------------------------------------------------------------------------


@duro.workflow(name="sem_approval")
async def approval_wf() -> list[object]:
    first = await duro.wait_for_signal("approve", type=Approval)
    second = await duro.wait_for_signal("approve", type=Approval)
    late = await duro.wait_for_signal("never", timeout=60, default="timed out")
    return [first.by if first else None, second.by if second else None, late]


def test_signals_sent_without_a_worker_are_delivered_once_in_order(db_url: str) -> None:
    clock = ManualClock()

    async def main() -> None:
        async with duro.Engine(db_url, worker=False, clock=clock) as client:
            handle = await client.start(approval_wf, id="appr")
            await client.signal("appr", "approve", Approval(by="ann", ok=True))
            await client.signal("appr", "approve", {"by": "bob", "ok": False})
        async with duro.Engine(db_url, clock=clock) as engine:
            handle = engine.get_handle("appr")
            await wait_until(lambda: _is(handle, duro.RunStatus.SUSPENDED))
            clock.advance(61)
            assert await handle.result(timeout=10) == ["ann", "bob", "timed out"]
            history = await handle.history()
            received = [e.data["by"] for e in history if e.kind == "signal_received"]
            assert received == ["ann", "bob"]

    run(main())


@duro.workflow(name="sem_collector")
async def collector_wf(expected: int) -> list[int]:
    items: list[int] = []
    duro.on_signal("item", lambda value: items.append(value))
    await duro.wait_condition(lambda: len(items) >= expected)
    await record("collector-done")
    return items


def test_signal_handler_and_wait_condition_keep_order_across_restarts(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(collector_wf, 4, id="coll")
            await engine.signal("coll", "item", 1)
            await engine.signal("coll", "item", 2)
        # "crash": the engine is gone; signals arrive while no worker runs
        async with duro.Engine(db_url, worker=False) as client:
            await client.signal("coll", "item", 3)
            await client.signal("coll", "item", 4)
        async with duro.Engine(db_url) as engine:
            handle = engine.get_handle("coll")
            assert await handle.result(timeout=10) == [1, 2, 3, 4]

    run(main())


@duro.workflow(name="sem_webhook")
async def webhook_wf(order: str) -> list[str]:
    events: list[str] = []
    while len(events) < 2:
        events.append(await duro.wait_for_signal("event", type=str) or "")
    return [order, *events]


def test_signal_with_start_creates_the_run_once_and_delivers_every_signal(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handles = await asyncio.gather(*(
                engine.signal_with_start(webhook_wf, "o-1", id="hook", signal="event",
                                         payload=p) for p in ("paid", "shipped")))
            assert handles[0].run_id == handles[1].run_id
            result = await handles[0].result(timeout=10)
            assert result[0] == "o-1" and sorted(result[1:]) == ["paid", "shipped"]
            with pytest.raises(duro.RunNotFoundError):
                await engine.signal("hook", "event", "late")

    run(main())


# -- state and queries ----------------------------------------------------------------


@duro.workflow(name="sem_progress")
async def progress_wf() -> str:
    stage = "starting"
    duro.on_query("stage", lambda: stage)
    duro.on_query("echo", lambda x, y: [x, y])
    duro.set_state("stage", stage)
    await record("progress-a")
    stage = "waiting for go"
    duro.set_state("stage", stage)
    await duro.wait_for_signal("go")
    stage = "done"
    return stage


def test_state_and_queries_are_live_and_write_nothing(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(progress_wf, id="prog")
            assert await handle.wait_state("stage", timeout=10) in ("starting",
                                                                   "waiting for go")
            await wait_until(lambda: _is(handle, duro.RunStatus.SUSPENDED))
            assert await handle.get_state("stage") == "waiting for go"
            length = (await handle.describe()).history_length
            assert await handle.query("stage") == "waiting for go"
            assert await handle.query("echo", 1, "b") == [1, "b"]
            with pytest.raises(duro.QueryError, match="no query 'nope'"):
                await handle.query("nope")
            assert (await handle.describe()).history_length == length
        # From another process's point of view (no cached instance): replay, no writes.
        async with duro.Engine(db_url, worker=False) as client:
            handle = client.get_handle("prog")
            assert await handle.query("stage") == "waiting for go"
            assert (await handle.describe()).history_length == length
            assert await handle.get_state("missing", default=0) == 0
        async with duro.Engine(db_url) as engine:
            await engine.signal("prog", "go")
            assert await engine.get_handle("prog").result(timeout=10) == "done"
            assert await engine.get_handle("prog").query("stage") == "done"

    run(main())


# -- updates ---------------------------------------------------------------------------


@duro.workflow(name="sem_cart")
async def cart_wf() -> list[str]:
    items: list[str] = []

    def validate(item: str) -> None:
        if not item:
            raise ValueError("empty item")
        if len(items) >= 3:
            raise ValueError("cart full")

    async def add(item: str) -> int:
        await record(f"add-{item}")
        items.append(item)
        return len(items)

    duro.on_update("add", add, validator=validate)
    duro.on_query("items", lambda: list(items))
    await duro.wait_for_signal("checkout")
    return items


def test_updates_validate_record_and_are_idempotent(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(cart_wf, id="cart")
            assert await handle.update("add", "apple", timeout=10) == 1
            before = await handle.history()
            with pytest.raises(duro.UpdateRejectedError, match="empty item"):
                await handle.update("add", "", timeout=10)
            with pytest.raises(duro.UpdateRejectedError, match="no update handler"):
                await handle.update("remove", "apple", timeout=10)
            assert await handle.history() == before, "a rejected update leaves no trace"
            assert await handle.update("add", "pear", id="u-1", timeout=10) == 2
            assert await handle.update("add", "pear", id="u-1", timeout=10) == 2
            assert EXEC["add-pear"] == 1
            await engine.signal("cart", "checkout")
            assert await handle.result(timeout=10) == ["apple", "pear"]
            kinds = [e.kind for e in await handle.history()]
            assert kinds.count("update_accepted") == 2
            assert kinds.count("update_completed") == 2

    run(main())


def test_update_with_start(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle, result = await engine.update_with_start(
                cart_wf, id="cart2", update="add", update_args=["fig"], timeout=10)
            assert result == 1
            _, again = await engine.update_with_start(
                cart_wf, id="cart2", update="add", update_args=["kiwi"], timeout=10)
            assert again == 2
            assert await handle.query("items") == ["fig", "kiwi"]

    run(main())


# -- child workflows ------------------------------------------------------------------


@duro.workflow(name="sem_child")
async def child_wf(n: int) -> int:
    await record(f"child-{n}")
    if n < 0:
        raise ValueError("negative")
    return n * 10


@duro.workflow(name="sem_parent")
async def parent_wf(ns: list[int]) -> list[object]:
    results: list[object] = list(await asyncio.gather(*(child_wf(n) for n in ns[:2])))
    try:
        await duro.execute_child(child_wf, ns[2], id=f"{duro.info().workflow_id}-bad")
    except duro.ChildWorkflowError as exc:
        results.append(f"{exc.status}: {exc.cause.message if exc.cause else ''}")
    return results


def test_child_workflows_results_failures_and_ids(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(parent_wf, [1, 2, -1], id="fam")
            assert await handle.result(timeout=10) == [10, 20, "failed: negative"]
            children = await handle.children()
            assert len(children) == 3
            assert {c.workflow_id for c in children} >= {"fam-bad"}
            assert all(c.parent_run_id == handle.run_id for c in children)
            kinds = [e.kind for e in await handle.history()]
            assert kinds.count("child_started") == 3
            assert kinds.count("child_completed") == 2 and kinds.count("child_failed") == 1

    run(main())


@duro.workflow(name="sem_sleepy_child")
async def sleepy_child() -> str:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await record("sleepy-cleanup")
        raise
    return "slept"


@duro.workflow(name="sem_short_parent")
async def short_parent(policy: str) -> str:
    task = asyncio.ensure_future(duro.execute_child(
        sleepy_child, id=f"kid-{policy}", parent_close=policy))  # type: ignore[arg-type]
    await record(f"parent-{policy}")
    await asyncio.sleep(0.05)
    del task
    return "parent done"


@pytest.mark.parametrize("policy, status", [
    ("terminate", duro.RunStatus.TERMINATED),
    ("request_cancel", duro.RunStatus.CANCELLED),
    ("abandon", duro.RunStatus.SUSPENDED),
])
def test_parent_close_policy(db_url: str, policy: str, status: duro.RunStatus) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            parent = await engine.start(short_parent, policy)
            assert await parent.result(timeout=10) == "parent done"
            child = engine.get_handle(f"kid-{policy}")
            await wait_until(lambda: _is(child, status), timeout=10)

    run(main())


# -- cancellation ------------------------------------------------------------------------


@duro.workflow(name="sem_quick")
async def quick_wf() -> str:
    await record("quick")
    return "finished"


def test_cancel_racing_completion_ends_in_exactly_one_terminal_state(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            outcomes = []
            for i in range(20):
                handle = await engine.start(quick_wf, id=f"race-{i}")
                with contextlib.suppress(duro.RunNotFoundError):  # completed already
                    await handle.cancel()
                try:
                    outcomes.append(await handle.result(timeout=10))
                except duro.WorkflowCancelledError:
                    outcomes.append("cancelled")
                history = await handle.history()
                terminal = [e.kind for e in history if e.kind.startswith("run_")
                            and e.kind != "run_started"]
                assert len(terminal) == 1, terminal
                status = await handle.status()
                assert status in (duro.RunStatus.COMPLETED, duro.RunStatus.CANCELLED)
            assert set(outcomes) <= {"finished", "cancelled"}

    run(main())


# -- continue-as-new -----------------------------------------------------------------


@duro.workflow(name="sem_eternal")
async def eternal_wf(i: int, total: int) -> int:
    duro.set_state("i", i)
    if i >= total:
        return i
    await record("eternal")
    duro.continue_as_new(i + 1, total)
    return -1


def test_continue_as_new_a_thousand_times_keeps_histories_small(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(eternal_wf, 0, 1000, id="eternal")
            assert await handle.result(timeout=120) == 1000
            runs = await engine.list(name="sem_eternal", limit=2000)
            assert len(runs) == 1001
            assert {r.workflow_id for r in runs} == {"eternal"}
            assert max(r.history_length for r in runs) <= 5
            assert sum(r.status == duro.RunStatus.CONTINUED_AS_NEW for r in runs) == 1000
            assert await engine.get_handle("eternal").get_state("i") == 1000

    run(main(), timeout=180)


# -- timeouts and conditions ---------------------------------------------------------


@duro.workflow(name="sem_slow")
async def slow_wf() -> str:
    await asyncio.sleep(3600)
    return "never"


def test_execution_timeout_ends_the_run(db_url: str) -> None:
    clock = ManualClock()

    async def main() -> None:
        async with duro.Engine(db_url, clock=clock) as engine:
            handle = await engine.start(slow_wf, execution_timeout=60)
            await wait_until(lambda: _is(handle, duro.RunStatus.SUSPENDED))
            assert (await handle.describe()).wake_at is not None
            clock.advance(61)
            with pytest.raises(duro.WorkflowFailedError, match="timed out"):
                await handle.result(timeout=10)
            assert await handle.status() == duro.RunStatus.TIMED_OUT

    run(main())


# -- retry, reset, fork ----------------------------------------------------------------

FLAKY = {"broken": True}


@duro.step(retry=duro.RetryPolicy(max_attempts=1))
def fragile(tag: str) -> str:
    count(f"fragile-{tag}")
    if FLAKY["broken"]:
        raise RuntimeError("still broken")
    return "fixed"


@duro.workflow(name="sem_pipeline")
async def pipeline_wf(tag: str) -> list[str]:
    a = await record(f"{tag}-a")
    b = await record(f"{tag}-b")
    c = await fragile(tag)
    d = await record(f"{tag}-d")
    return [a, b, c, d]


def test_retry_reruns_from_the_failed_step_reusing_results(db_url: str) -> None:
    async def main() -> None:
        FLAKY["broken"] = True
        async with duro.Engine(db_url) as engine:
            failed = await engine.start(pipeline_wf, "rt", id="pipe")
            with pytest.raises(duro.WorkflowFailedError):
                await failed.result(timeout=10)
            FLAKY["broken"] = False
            retried = await engine.retry("pipe")
            assert retried.run_id != failed.run_id
            assert await retried.result(timeout=10) == ["rt-a", "rt-b", "fixed", "rt-d"]
        assert EXEC["rt-a"] == 1 and EXEC["rt-b"] == 1
        assert EXEC["fragile-rt"] == 2 and EXEC["rt-d"] == 1

    run(main())


def test_reset_and_fork_do_not_re_execute_steps_before_the_point(db_url: str) -> None:
    async def main() -> None:
        FLAKY["broken"] = False
        async with duro.Engine(db_url) as engine:
            first = await engine.start(pipeline_wf, "rs", id="reset-me")
            await first.result(timeout=10)
            # events: 0 started, 1 a, 2 b, 3 fragile, 4 d, 5 completed -> keep a and b
            reset = await engine.reset("reset-me", to=3)
            assert await reset.result(timeout=10) == ["rs-a", "rs-b", "fixed", "rs-d"]
            assert EXEC["rs-a"] == 1 and EXEC["rs-b"] == 1
            assert EXEC["fragile-rs"] == 2 and EXEC["rs-d"] == 2
            assert (await reset.describe()).origin_run_id == first.run_id
            fork = await engine.fork("reset-me", to=2, new_id="forked")
            assert await fork.result(timeout=10) == ["rs-a", "rs-b", "fixed", "rs-d"]
            assert EXEC["rs-a"] == 1 and EXEC["rs-b"] == 2
            assert await engine.get_handle("reset-me").status() == duro.RunStatus.COMPLETED

    run(main())


async def _is(handle: duro.WorkflowHandle[object], status: duro.RunStatus) -> bool:
    try:
        return await handle.status() == status
    except duro.RunNotFoundError:
        return False  # not created yet


@duro.workflow(name="sem_waiting_parent")
async def waiting_parent() -> str:
    return await duro.execute_child(sleepy_child, id="awaited-kid")


def test_cancelling_a_parent_cancels_the_child_it_awaits(db_url: str) -> None:
    async def main() -> None:
        EXEC.pop("sleepy-cleanup", None)
        async with duro.Engine(db_url) as engine:
            parent = await engine.start(waiting_parent, id="cancel-parent")
            child = engine.get_handle("awaited-kid")
            await wait_until(lambda: _is(child, duro.RunStatus.SUSPENDED))
            await parent.cancel()
            with pytest.raises(duro.WorkflowCancelledError):
                await parent.result(timeout=10)
            with pytest.raises(duro.WorkflowCancelledError):
                await child.result(timeout=10)
            assert EXEC["sleepy-cleanup"] == 1

    run(main())


COMPENSATIONS: list[str] = []
GATE = {"slow": True}


@duro.step(name="sem.book")
def book(what: str) -> str:
    count(f"book-{what}")
    if what == "car":
        raise duro.NonRetryableError("no cars left")
    return f"{what}-ok"


@duro.step(name="sem.undo")
async def undo(what: str) -> None:
    count(f"undo-{what}")
    if what == "hotel" and GATE["slow"]:
        await asyncio.sleep(30)  # the engine stops here: mid-compensation
    COMPENSATIONS.append(what)


@duro.workflow(name="sem_trip")
async def trip_wf() -> str:
    try:
        async with duro.Saga() as saga:
            for what in ("flight", "hotel", "car"):
                await book(what)
                saga.add(undo, what)
    except duro.StepFailedError as exc:
        return f"rolled back: {exc.cause.message}"
    return "booked"


def test_saga_compensates_in_reverse_once_even_if_stopped_midway(db_url: str) -> None:
    async def main() -> None:
        COMPENSATIONS.clear()
        GATE["slow"] = True
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(trip_wf, id="trip")
            await wait_until(lambda: EXEC.get("undo-hotel", 0) >= 1)
        GATE["slow"] = False
        async with duro.Engine(db_url) as engine:
            assert await engine.get_handle("trip").result(timeout=10) == \
                "rolled back: no cars left"
        assert COMPENSATIONS == ["hotel", "flight"]
        assert EXEC["undo-flight"] == 1, "a finished compensation is not repeated"
        assert EXEC["book-flight"] == 1 and EXEC["book-hotel"] == 1
        undone = [e.name for e in await _history(db_url, "trip") if e.kind == "step_completed"
                  and e.name == "sem.undo"]
        assert len(undone) == 2
        _ = handle

    run(main())


async def _history(db_url: str, workflow_id: str) -> list[duro.Event]:
    async with duro.Engine(db_url, worker=False) as engine:
        return await engine.get_handle(workflow_id).history()


@duro.workflow(name="sem_chatty")
async def chatty_wf(n: int) -> int:
    for i in range(n):
        await record(f"chatty-{i % 3}")
    return n


def test_history_limit_fails_the_run_with_a_clear_error(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, history_warning=5, history_limit=12) as engine:
            ok = await engine.start(chatty_wf, 3)
            assert await ok.result(timeout=10) == 3
            big = await engine.start(chatty_wf, 50)
            with pytest.raises(duro.WorkflowFailedError) as info:
                await big.result(timeout=10)
            assert info.value.cause.type == "duro.errors.HistoryLimitError"
            assert "continue_as_new" in info.value.cause.message
            assert (await big.describe()).history_length <= 14

    with caplog.at_level("WARNING", logger="duro.worker"):
        run(main())
    assert any("history events" in r.getMessage() for r in caplog.records)


@duro.workflow(name="sem_condition_timeout")
async def condition_timeout_wf() -> list[bool]:
    flag = {"set": False}
    duro.on_signal("set", lambda _: flag.update(set=True))
    first = await duro.wait_condition(lambda: flag["set"], timeout=30)
    second = await duro.wait_condition(lambda: flag["set"], timeout=30)
    return [first, second]


def test_wait_condition_times_out_durably(db_url: str) -> None:
    clock = ManualClock()

    async def main() -> None:
        async with duro.Engine(db_url, clock=clock) as engine:
            handle = await engine.start(condition_timeout_wf, id="cond")
            await wait_until(lambda: _is(handle, duro.RunStatus.SUSPENDED))
            clock.advance(31)
            await wait_until(lambda: _history_len(handle, 2))
            await engine.signal("cond", "set", None)
            assert await handle.result(timeout=10) == [False, True]

    run(main())


async def _history_len(handle: duro.WorkflowHandle[object], n: int) -> bool:
    return len(await handle.history()) >= n


@duro.workflow(name="sem_publish_then_continue")
async def publish_then_continue(n: int) -> int:
    duro.set_state("n", n)
    if n < 3:
        duro.continue_as_new(n + 1)
    return n


def test_state_published_right_before_continue_as_new_is_kept(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(publish_then_continue, 0, id="pub-can")
            assert await handle.result(timeout=10) == 3
            assert await handle.get_state("n") == 3
            runs = await engine.list(name="sem_publish_then_continue")
            for r in runs:
                if r.status == duro.RunStatus.CONTINUED_AS_NEW:
                    state = await engine.get_handle("pub-can", r.run_id).get_state("n")
                    assert state is not None

    run(main())


def test_reset_to_the_end_of_a_finished_run_continues_without_duplicating_its_end(
    db_url: str
) -> None:
    async def main() -> None:
        FLAKY["broken"] = False
        async with duro.Engine(db_url) as engine:
            first = await engine.start(pipeline_wf, "end", id="reset-end")
            await first.result(timeout=10)
            length = (await first.describe()).history_length
            again = await engine.reset("reset-end", to=length)
            assert await again.result(timeout=10) == ["end-a", "end-b", "fixed", "end-d"]
            kinds = [e.kind for e in await again.history()]
            assert kinds.count("run_completed") == 1 and kinds[-1] == "run_completed"

    run(main())


_fast_committed: asyncio.Event | None = None


@duro.step(name="sem_fast")
async def sem_fast() -> str:
    return "fast"


@duro.step(name="sem_slow")
async def sem_slow() -> str:
    assert _fast_committed is not None
    await _fast_committed.wait()  # its outcome is written after the other one's
    return "slow"


@duro.step(name="sem_slow_once", at_most_once=True)
async def sem_slow_once() -> str:
    return "slow"


class _Passthrough:
    """A codec that changes nothing (payloads are encoded, so a cached step's result is
    encoded for the cache before its outcome is written)."""

    encoding = "test/pass"

    async def encode(self, payloads: list[bytes]) -> list[bytes]:
        return list(payloads)

    async def decode(self, payloads: list[bytes]) -> list[bytes]:
        return list(payloads)


@duro.step(name="sem_cached", cache=duro.Cache())
async def sem_cached() -> str:
    return "cached"


_encoding: asyncio.Event | None = None


@duro.step(name="sem_after_encoding")
async def sem_after_encoding() -> str:
    assert _encoding is not None
    await _encoding.wait()  # ends while the cached step's result is being encoded
    return "other"


@duro.workflow(name="sem_cancel_while_recorded")
async def cancel_while_recorded(kind: str) -> str:
    # "outcome": a step cancelled while its outcome is written; "once": an at-most-once
    # step, while its start (step_started) is; "cached": a cached step, while its result
    # is encoded for the cache (sem_after_encoding ends then)
    slow = asyncio.ensure_future(
        {"outcome": sem_slow, "once": sem_slow_once, "cached": sem_cached}[kind]())
    fast = asyncio.ensure_future(sem_after_encoding() if kind == "cached" else sem_fast())
    done, _ = await asyncio.wait({slow, fast}, return_when=asyncio.FIRST_COMPLETED)
    slow.cancel()
    await duro.wait_for_signal("go")
    return "fast" if fast in done else "slow"


@pytest.mark.parametrize("resumed", ["cached", "replayed"])
@pytest.mark.parametrize("once", [False, True], ids=["outcome", "at-most-once-start"])
def test_a_step_cancelled_while_its_write_commits_lets_the_run_suspend(
        db_url: str, once: bool, resumed: str) -> None:
    # The race as it happens: one step's outcome commits, another step's write (its
    # outcome, or an at-most-once start) is committed right after, and the workflow,
    # woken by the first, cancels the second while its task waits on that write. The
    # task kept its place in the run's steps in flight (or gave it back without the run
    # looking again): the run never suspended, nor was its worker ever idle. The history
    # has the outcomes in the order the workflow saw them: resumed from the cache or
    # replayed, the run ends the same way.
    global _fast_committed
    name, kind = ("sem_slow_once", "step_started") if once else ("sem_slow", "step_completed")

    async def main() -> None:
        global _fast_committed
        _fast_committed = asyncio.Event()
        slow_sent, gate = asyncio.Event(), asyncio.Event()
        cached = 2000 if resumed == "cached" else 0
        async with duro.Engine(db_url, max_cached=cached) as engine:
            worker = engine.worker
            assert worker is not None
            real_append = worker.store.append

            async def ordered(run_id: str, epoch: int, first_seq: int, events: Any,
                              **kwargs: Any) -> Any:
                written = {(ev.kind, ev.name) for ev in events}
                if (kind, name) in written:
                    slow_sent.set()
                    done = await real_append(run_id, epoch, first_seq, events, **kwargs)
                    await gate.wait()  # committed; the workflow cancels the step here
                    return done
                done = await real_append(run_id, epoch, first_seq, events, **kwargs)
                if ("step_completed", "sem_fast") in written:
                    assert _fast_committed is not None
                    _fast_committed.set()
                    await slow_sent.wait()  # the other write is on its way, after this
                return done

            worker.store.append = ordered  # type: ignore[method-assign]
            try:
                handle = await engine.start(cancel_while_recorded,
                                            "once" if once else "outcome",
                                            id="cancel-recorded")
                await wait_until(lambda: handle.run_id not in worker.runs.active)
            finally:
                gate.set()
            assert (handle.run_id in worker.runs.cache) == (resumed == "cached")
            await engine.signal("cancel-recorded", "go")
            assert await handle.result(timeout=10) == "fast"
            history = [(ev.kind, ev.name) for ev in await handle.history()]
            if not once:  # (a start, which the workflow does not see, comes first)
                assert history.index(("step_completed", "sem_fast")) < \
                    history.index((kind, name))

    try:
        run(main())
    finally:
        _fast_committed = None


@duro.workflow(name="sem_cancel_at_once")
async def cancel_at_once() -> str:
    step = asyncio.ensure_future(sem_fast())
    await asyncio.sleep(0)  # the step is issued: its task made, not yet run
    step.cancel()
    await duro.wait_for_signal("go")
    return "cancelled" if step.cancelled() else "ran"


def test_a_step_cancelled_before_its_attempt_ever_ran_lets_the_run_suspend(
        db_url: str) -> None:
    # Issued and cancelled in one turn of the workflow: the attempt's task is cancelled
    # before it runs a line, so none of its own accounting happens.
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            worker = engine.worker
            assert worker is not None
            handle = await engine.start(cancel_at_once, id="cancel-at-once")
            await wait_until(lambda: handle.run_id not in worker.runs.active)
            await engine.signal("cancel-at-once", "go")
            assert await handle.result(timeout=10) == "cancelled"

    run(main())


def test_a_cached_step_cancelled_while_its_result_is_encoded_lets_the_run_suspend(
        db_url: str) -> None:
    # With a codec, a cached step's result is encoded for the cache before its outcome
    # is written; the workflow cancels the step while that encoding awaits.
    global _encoding

    async def main() -> None:
        global _encoding
        _encoding = asyncio.Event()
        gate = asyncio.Event()
        codec = duro.serde.CodecChain([_Passthrough()])
        async with duro.Engine(db_url, codec=codec) as engine:
            worker = engine.worker
            assert worker is not None
            real_encode = worker.payloads.encode

            async def held_up(data: bytes) -> Any:
                if data == b'"cached"':
                    assert _encoding is not None
                    _encoding.set()
                    await gate.wait()  # the workflow cancels the cached step here
                return await real_encode(data)

            worker.payloads.encode = held_up  # type: ignore[method-assign]
            try:
                handle = await engine.start(cancel_while_recorded, "cached",
                                            id="cancel-cached")
                await wait_until(lambda: handle.run_id not in worker.runs.active)
            finally:
                gate.set()
            await engine.signal("cancel-cached", "go")
            assert await handle.result(timeout=10) == "fast"

    try:
        run(main())
    finally:
        _encoding = None
