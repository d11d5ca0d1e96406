"""Interceptors with headers (issue 15, item 4): a header set at start (here by a client
interceptor: a tenant id) is visible in the run, in a step, in a child, and in a step
routed to another worker's queue; worker interceptors see the workflow's execution,
every step attempt (retries included, wherever it runs), and each signal, update and
query with the sender's headers. On both stores."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import duro
from duro._history import EventKind
from duro.errors import InvalidArgumentError
from duro.interceptors import (
    ClientInterceptor,
    ExecuteStepInput,
    ExecuteWorkflowInput,
    HandleQueryInput,
    HandleSignalInput,
    HandleUpdateInput,
    StartInput,
    WorkerInterceptor,
)
from tests.conftest import run

FLAKY = {"left": 0}


@duro.step(name="wi.local", retry=duro.RetryPolicy(max_attempts=3, initial_interval=0.01,
                                                     jitter=0))
async def local_step(x: int) -> dict[str, Any]:
    if FLAKY["left"] > 0:
        FLAKY["left"] -= 1
        raise ConnectionError("flaky")
    info = duro.step_info()
    return {"x": x, "tenant": info.headers.get("tenant"), "attempt": info.attempt}


@duro.step(name="wi.remote", queue="wi-gpu")
def remote_step(x: int) -> dict[str, Any]:
    return {"x": x, "tenant": duro.step_info().headers.get("tenant")}


@duro.workflow(name="wi.child")
async def child(x: int) -> dict[str, Any]:
    step = await local_step(x)
    return {"info": duro.info().headers.get("tenant"), "step": step["tenant"]}


@duro.workflow(name="wi.parent")
async def parent(x: int) -> dict[str, Any]:
    seen: list[str] = []
    duro.on_signal("note", lambda text: seen.append(text))
    duro.on_update("bump", lambda n: n + 1)
    duro.on_query("seen", lambda: list(seen))
    step = await local_step(x)
    remote = await remote_step(x)
    kid = await duro.execute_child(child, x, id=f"{duro.info().workflow_id}-child")
    await duro.wait_condition(lambda: len(seen) >= 1)
    return {"run": duro.info().headers.get("tenant"), "step": step, "remote": remote,
            "child": kid, "seen": seen}


@duro.workflow(name="wi.listener")
async def listener() -> list[str]:
    seen: list[str] = []
    duro.on_signal("note", lambda text: seen.append(text))
    duro.on_query("seen", lambda: list(seen))
    await duro.wait_condition(lambda: len(seen) >= 1)
    return seen


class Tenant(ClientInterceptor):
    """Stamps every start with the caller's tenant (an auth layer would)."""

    async def start(self, input: StartInput,
                    next: Callable[[StartInput], Awaitable[Any]]) -> Any:
        return await next(dataclasses.replace(
            input, headers={**(input.headers or {}), "tenant": "acme"}))


class Recorder(WorkerInterceptor):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def execute_workflow(self, input: ExecuteWorkflowInput,
                               next: Callable[[ExecuteWorkflowInput], Awaitable[Any]]
                               ) -> Any:
        if not duro.info().is_replaying:
            self.calls.append(("workflow", input.workflow, input.headers.get("tenant")))
        return await next(input)

    async def execute_step(self, input: ExecuteStepInput,
                           next: Callable[[ExecuteStepInput], Awaitable[Any]]) -> Any:
        self.calls.append(("step", input.step, input.info.attempt,
                           input.info.headers.get("tenant")))
        return await next(input)

    def handle_signal(self, input: HandleSignalInput,
                      next: Callable[[HandleSignalInput], None]) -> None:
        self.calls.append(("signal", input.name, dict(input.headers)))
        next(dataclasses.replace(input, payload=str(input.payload).upper()))

    async def handle_update(self, input: HandleUpdateInput,
                            next: Callable[[HandleUpdateInput], Awaitable[Any]]) -> Any:
        self.calls.append(("update", input.name, dict(input.headers)))
        return await next(input)

    def handle_query(self, input: HandleQueryInput,
                     next: Callable[[HandleQueryInput], Any]) -> Any:
        self.calls.append(("query", input.name, dict(input.headers)))
        return next(input)


def test_headers_reach_the_run_its_steps_its_child_and_a_remote_step(
        any_db_url: str) -> None:
    FLAKY["left"] = 1  # the first attempt of the first local step fails
    cpu_rec, gpu_rec = Recorder(), Recorder()

    async def main() -> dict[str, Any]:
        async with duro.Engine(any_db_url, queues=["default"], poll_interval=0.02,
                               interceptors=[Tenant(), cpu_rec]) as cpu, \
                duro.Engine(any_db_url, queues=["wi-gpu"], poll_interval=0.02,
                            interceptors=[gpu_rec]):
            handle = await cpu.start(parent, 7, id="wi-1", headers={"trace": "t-1"})
            assert await handle.update("bump", 1, headers={"who": "ann"}, timeout=20) == 2
            assert await handle.query("seen", headers={"who": "bob"}) == []
            await handle.signal("note", "hello", headers={"who": "cid"})
            result: dict[str, Any] = await handle.result(timeout=30)
            info = await handle.describe()
            assert info.headers == {"trace": "t-1", "tenant": "acme"}
            assert info.to_json()["headers"] == {"trace": "t-1", "tenant": "acme"}
            kid = await cpu.get_handle("wi-1-child").describe()
            assert kid.headers == {"trace": "t-1", "tenant": "acme"}  # inherited
            return result

    result = run(main())
    assert result == {"run": "acme", "step": {"x": 7, "tenant": "acme", "attempt": 2},
                      "remote": {"x": 7, "tenant": "acme"},
                      "child": {"info": "acme", "step": "acme"}, "seen": ["HELLO"]}
    # Every step attempt, the failed one too; the routed one on the worker that ran it.
    steps = [c for c in cpu_rec.calls if c[0] == "step"]
    assert steps == [("step", "wi.local", 1, "acme"), ("step", "wi.local", 2, "acme"),
                     ("step", "wi.local", 1, "acme")]  # the parent's twice, the child's
    assert gpu_rec.calls == [("step", "wi.remote", 1, "acme")]
    assert ("workflow", "wi.parent", "acme") in cpu_rec.calls
    assert ("workflow", "wi.child", "acme") in cpu_rec.calls
    assert ("update", "bump", {"who": "ann"}) in cpu_rec.calls
    assert ("query", "seen", {"who": "bob"}) in cpu_rec.calls
    assert ("signal", "note", {"who": "cid"}) in cpu_rec.calls


def test_signal_headers_are_recorded_and_seen_again_at_replay(any_db_url: str) -> None:
    """The signal's headers are recorded with it: a replay (a query answered from the
    history by a worker that does not hold the run) sees them again."""
    rec = Recorder()

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02,
                               interceptors=[rec]) as engine:
            handle = await engine.start(listener, id="wi-2")
            await handle.signal("note", "x", headers={"who": "dee"})
            assert await handle.result(timeout=30) == ["X"]
        rec.calls.clear()
        async with duro.Engine(any_db_url, poll_interval=0.02,
                               interceptors=[rec]) as engine:
            assert await engine.query("wi-2", "seen", headers={"who": "eve"}) == ["X"]
        assert ("signal", "note", {"who": "dee"}) in rec.calls  # replayed with its headers
        assert ("query", "seen", {"who": "eve"}) in rec.calls

    run(main())


@pytest.mark.parametrize("headers, problem", [
    ({"": "x"}, "header name"),
    ({"k": 1}, "strings to strings"),
    ({"k\n": "v"}, "control"),
    ({"k": "v" * 20_000}, "over 16384"),
    (["k"], "mapping"),
])
def test_bad_headers_are_refused_and_nothing_is_stored(
        any_db_url: str, headers: Any, problem: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url, worker=False) as engine:
            with pytest.raises(InvalidArgumentError, match=problem):
                await engine.start(parent, 1, id="wi-bad", headers=headers)
            assert await engine.list() == []

    run(main())


def test_interceptors_that_are_not_interceptors_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="not a ClientInterceptor or "
                                                   "WorkerInterceptor"):
        duro.Engine("sqlite:///:memory:", interceptors=[object()])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="list of interceptors"):
        duro.Client("sqlite:///:memory:", interceptors=Recorder())  # type: ignore[arg-type]


def test_no_interceptors_no_cost_path_still_delivers(any_db_url: str) -> None:
    """Without interceptors, signals, updates and queries take the direct path."""
    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02) as engine:
            handle = await engine.start(parent, 2, id="wi-3")
            assert await handle.update("bump", 4, timeout=20) == 5
            await handle.signal("note", "plain")
            result = await handle.result(timeout=30)
            assert result["seen"] == ["plain"] and result["run"] is None
            await asyncio.sleep(0)

    run(main())


def test_recorded_kinds_narrow_what_one_observer_hears(any_db_url: str) -> None:
    """An observer with ``recorded_kinds`` hears only of writes holding one of them;
    another without hears of every write; an interceptor that overrides no hook of a
    kind adds nothing there (the step still runs, once)."""
    heard: dict[str, list[list[str]]] = {"all": [], "ends": []}

    class Everything(WorkerInterceptor):
        def events_recorded(self, input: Any) -> None:
            heard["all"].append([ev.kind for ev in input.events])

    class Ends(WorkerInterceptor):
        recorded_kinds = frozenset({EventKind.RUN_COMPLETED})

        def events_recorded(self, input: Any) -> None:
            heard["ends"].append([ev.kind for ev in input.events])

    class Nothing(WorkerInterceptor):
        pass

    @duro.step(name="wi.kinds.step")
    async def one(x: int) -> int:
        return x + 1

    @duro.workflow(name="wi.kinds")
    async def flow(x: int) -> int:
        return await one(await one(x))

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02,
                               interceptors=[Nothing(), Everything(), Ends()]) as engine:
            assert await (await engine.start(flow, 1, id="wi-kinds")).result(timeout=30) == 3

    run(main())
    everything = [kind for write in heard["all"] for kind in write]
    assert everything.count(EventKind.STEP_COMPLETED) == 2
    assert EventKind.RUN_COMPLETED in everything
    assert len(heard["ends"]) == 1 and EventKind.RUN_COMPLETED in heard["ends"][0]


def test_observers_of_different_kinds_each_hear_theirs(any_db_url: str) -> None:
    """With only narrowed observers (the writes of no kind among theirs tell nobody),
    each still hears of every write holding one of its own kinds (given as any
    collection of kinds)."""
    heard: dict[str, list[list[str]]] = {"steps": [], "ends": []}

    class Steps(WorkerInterceptor):
        recorded_kinds = frozenset({EventKind.STEP_COMPLETED})

        def events_recorded(self, input: Any) -> None:
            heard["steps"].append([ev.kind for ev in input.events])

    class Ends(WorkerInterceptor):
        recorded_kinds = (EventKind.RUN_COMPLETED,)  # type: ignore[assignment]  # a tuple works too

        def events_recorded(self, input: Any) -> None:
            heard["ends"].append([ev.kind for ev in input.events])

    @duro.step(name="wi.kinds2.step")
    async def one(x: int) -> int:
        return x + 1

    @duro.workflow(name="wi.kinds2")
    async def flow(x: int) -> int:
        return await one(await one(await one(x)))

    async def main() -> None:
        async with duro.Engine(any_db_url, poll_interval=0.02,
                               interceptors=[Steps(), Ends()]) as engine:
            assert await (await engine.start(flow, 1, id="wi-kinds2")).result(timeout=30) == 4

    run(main())
    assert sum(write.count(EventKind.STEP_COMPLETED) for write in heard["steps"]) == 3
    assert all(EventKind.STEP_COMPLETED in write for write in heard["steps"])
    assert len(heard["ends"]) == 1 and EventKind.RUN_COMPLETED in heard["ends"][0]


WATCHED: contextvars.ContextVar[str] = contextvars.ContextVar("wi_watched", default="-")
SLOW = {"first": True}


@duro.step(name="wi.watch.async", retry=duro.RetryPolicy(max_attempts=2, initial_interval=0.01,
                                                         jitter=0))
async def watched_async(x: int) -> str:
    if FLAKY["left"] > 0:
        FLAKY["left"] -= 1
        raise ConnectionError("flaky")
    return f"{x}:{WATCHED.get()}"


@duro.step(name="wi.watch.sync")
def watched_sync(x: int) -> str:  # in the worker's thread pool: the context goes along
    return f"{x}:{WATCHED.get()}"


@duro.step(name="wi.watch.slow", timeout=0.2,
           retry=duro.RetryPolicy(max_attempts=2, initial_interval=0.01, jitter=0))
async def watched_slow() -> str:
    if SLOW["first"]:
        SLOW["first"] = False
        await asyncio.sleep(30)  # timed out
    return WATCHED.get()


@duro.workflow(name="wi.watch")
async def watched_flow(x: int) -> list[str]:
    return [await watched_async(x), await watched_sync(x), await watched_slow()]


def test_attempt_watchers_are_told_of_each_attempt_in_its_context(
        any_db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """``attempt_started``: told of every attempt (retries and timeouts included) in the
    attempt's own context, sync step or async (what it sets there the step sees, and
    only the step); each end hears what the attempt raised; several watchers begin
    first to last and end last to first; one that raises, beginning or ending, is logged
    and costs the attempt nothing."""
    told: list[tuple[str, str, int, str]] = []

    class Watch(WorkerInterceptor):
        def __init__(self, name: str) -> None:
            self.name = name

        def attempt_started(self, info: duro.StepInfo
                            ) -> Callable[[BaseException | None], None]:
            told.append((self.name, "start", info.attempt, info.step))
            token = WATCHED.set(f"{WATCHED.get()}>{self.name}")

            def ended(error: BaseException | None) -> None:
                WATCHED.reset(token)
                told.append((self.name, type(error).__name__ if error else "ok",
                             info.attempt, info.step))
            return ended

    class BadStart(WorkerInterceptor):
        def attempt_started(self, info: duro.StepInfo) -> None:
            raise RuntimeError("a watcher's bug")

    class BadEnd(WorkerInterceptor):
        def attempt_started(self, info: duro.StepInfo
                            ) -> Callable[[BaseException | None], None]:
            def ended(error: BaseException | None) -> None:
                raise RuntimeError("a watcher's end's bug")
            return ended

    FLAKY["left"] = 1
    SLOW["first"] = True

    async def main() -> list[str]:
        async with duro.Engine(any_db_url, poll_interval=0.02, interceptors=[
                Watch("a"), BadStart(), BadEnd(), Watch("b")]) as engine:
            handle = await engine.start(watched_flow, 5, id="wi-watch")
            result: list[str] = await handle.result(timeout=30)
            assert WATCHED.get() == "-"  # the engine's own context: untouched
            return result

    with caplog.at_level("ERROR", logger="duro.worker"):
        result = run(main())
    assert result == ["5:->a>b", "5:->a>b", "->a>b"]
    by_step: dict[str, list[tuple[str, str, int]]] = {}
    for name, what, attempt, step in told:
        by_step.setdefault(step, []).append((name, what, attempt))
    assert by_step == {
        "wi.watch.async": [("a", "start", 1), ("b", "start", 1), ("b", "ConnectionError", 1),
                           ("a", "ConnectionError", 1), ("a", "start", 2), ("b", "start", 2),
                           ("b", "ok", 2), ("a", "ok", 2)],
        "wi.watch.sync": [("a", "start", 1), ("b", "start", 1), ("b", "ok", 1),
                          ("a", "ok", 1)],
        "wi.watch.slow": [("a", "start", 1), ("b", "start", 1),
                          ("b", "StepTimeoutError", 1), ("a", "StepTimeoutError", 1),
                          ("a", "start", 2), ("b", "start", 2), ("b", "ok", 2),
                          ("a", "ok", 2)]}
    logged = [r.getMessage() for r in caplog.records]
    assert sum("failed in attempt_started" in m for m in logged) == 5  # 5 attempts
    assert sum("attempt_started hook's end failed" in m for m in logged) == 5
