"""Bad input refused at the door (issue 14, item 5): each refusal is a typed error at the
call, and the database is the same afterwards (a dump of its tables before and after).
Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

import duro
from tests.conftest import run

TABLES = ("runs", "events", "inbox", "updates", "run_state", "tasks", "queue_starts",
          "schedules")


@pytest.fixture
def db_url(any_db_url: str) -> str:
    return any_db_url


def dump(url: str) -> dict[str, list[str]]:
    """Every row of the tables a start, a message or a schedule writes to, sorted."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}"))) for t in TABLES}
    import psycopg

    schema = parse_qs(urlparse(url).query)["schema"][0]
    with psycopg.connect(url.split("?")[0], options=f"-c search_path={schema}") as conn:
        return {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}"))) for t in TABLES}


Call = Callable[[duro.Engine], Awaitable[Any]]


async def refused(engine: duro.Engine, error: type[BaseException], match: str,
                  *calls: Call) -> None:
    """Each call raises ``error`` (its message matching ``match``) and stores nothing."""
    before = dump(engine.url)
    for call in calls:
        with pytest.raises(error, match=match):
            await call(engine)
    assert dump(engine.url) == before


# -- workflows ---------------------------------------------------------------------------


@dataclass
class Order:
    sku: str
    quantity: int


@duro.workflow(name="door.takes_int")
async def takes_int(n: int) -> int:
    return n


@duro.workflow(name="door.takes_order")
async def takes_order(order: Order, note: str = "") -> int:
    return order.quantity


@duro.workflow(name="door.takes_counts")
async def takes_counts(counts: dict[str, int]) -> int:
    return sum(counts.values())


@duro.workflow(name="door.inbox_wf")
async def inbox_wf(n: int) -> str:
    duro.on_update("ping", lambda *args: "pong")
    await duro.wait_condition(lambda: False)
    return "never"


@duro.workflow(name="door.echo")
async def echo(x: Any = None) -> Any:
    return x


@duro.workflow(name="door.takes_object")
async def takes_object(x: object, y: Any, z: object = None) -> list[object]:
    return [x, y, z]


@duro.step
def echo_object(x: object) -> object:
    return x


@duro.workflow(name="door.object_step")
async def object_step(x: object) -> object:
    return await echo_object(x)


async def _seed(engine: duro.Engine) -> None:
    """A few stored runs, so that 'nothing changed' is not 'nothing there'."""
    await engine.start(inbox_wf, 1, id="live")
    await engine.start(takes_int, 2, id="other")


# -- arguments that do not fit the signature or the type hints ---------------------------


START_CALLS: list[Callable[..., Call]] = [
    lambda wf, *a, **k: lambda e: e.start(wf, *a, id="new", **k),
    lambda wf, *a, **k: lambda e: e.signal_with_start(wf, *a, id="new", signal="s", **k),
    lambda wf, *a, **k: lambda e: e.update_with_start(wf, *a, id="new", update="ping",
                                                      timeout=1, **k),
]


@pytest.mark.parametrize("make", START_CALLS, ids=["start", "signal_with_start",
                                                   "update_with_start"])
@pytest.mark.parametrize("wf, args, kwargs, match", [
    (takes_int, (1, 2), {}, "door.takes_int.*wrong arguments.*too many"),
    (takes_int, (), {}, "takes_int.*wrong arguments.*missing.*'n'"),
    (takes_int, (), {"n": 1, "m": 1}, "takes_int.*wrong arguments.*unexpected.*'m'"),
    (takes_int, ("not an int",), {}, r"argument 'n' \(int\).*expected int, got str"),
    (takes_int, (1.5,), {}, r"argument 'n' \(int\)"),
    (takes_int, (None,), {}, r"argument 'n' \(int\).*null"),
    (takes_order, ({"sku": "a"},), {}, r"argument 'order' \(Order\)"),
    (takes_order, (Order("a", 1),), {"note": 3}, r"argument 'note' \(str\)"),
    (takes_counts, ({"a": "1"},), {}, r"argument 'counts'"),
    (takes_counts, ([1, 2],), {}, r"argument 'counts'.*expected"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_arguments_that_do_not_fit_the_workflow_are_refused_by_every_start(
        db_url: str, make: Callable[..., Call], wf: duro.Workflow[Any, Any],
        args: tuple[Any, ...], kwargs: dict[str, Any], match: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, worker=False) as engine:
            await _seed(engine)
            await refused(engine, duro.WorkflowArgumentsError, match,
                          make(wf, *args, **kwargs))

    run(main())


def test_a_workflow_arguments_error_is_a_serialization_and_a_type_error() -> None:
    assert issubclass(duro.WorkflowArgumentsError, duro.SerializationError)
    assert issubclass(duro.WorkflowArgumentsError, TypeError)
    assert issubclass(duro.WorkflowArgumentsError, duro.DuroError)


# -- NaN and Infinity --------------------------------------------------------------------


NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("bad", NON_FINITE, ids=repr)
def test_nan_and_infinity_are_refused_in_arguments_signals_and_updates(
        db_url: str, bad: float) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, worker=False) as engine:
            await _seed(engine)
            live = engine.get_handle("live")
            await refused(
                engine, duro.SerializationError, "NaN or Infinity",
                lambda e: e.start(echo, bad),
                lambda e: e.start(echo, {"a": [1.0, bad]}),
                lambda e: e.start(echo, x={"k": (bad,)}),
                lambda e: e.start(takes_object, 1, 2, z=[{"deep": [bad]}]),
                lambda e: e.signal("live", "s", bad),
                lambda e: e.signal("live", "s", {"values": [0.5, bad]}),
                lambda e: e.signal_with_start(inbox_wf, 1, id="live", signal="s",
                                              payload=bad),
                lambda e: e.signal_with_start(inbox_wf, 1, id="new", signal="s",
                                              payload=bad),
                lambda e: live.update("ping", bad, timeout=1),
                lambda e: e.update_with_start(inbox_wf, 1, id="new", update="ping",
                                              update_args=(bad,), timeout=1),
                lambda e: e.schedules.create("nan", echo, args=[bad], every=60),
            )

    run(main())


def test_the_error_says_where_the_nan_is(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, worker=False) as engine:
            with pytest.raises(duro.SerializationError) as info:
                await engine.start(echo, {"prices": [1.0, 2.0, math.nan]})
            message = str(info.value)
            assert "the arguments of workflow" in message
            assert "['prices'][2]" in message and "nan" in message

    run(main())


def test_none_and_the_word_null_still_go_through(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            value = {"a": None, "b": [None, 1.5, "null"], "null": 0.0}
            handle = await engine.start(echo, value)
            assert await handle.result(timeout=10) == value

    run(main())


@duro.step(retry=duro.RetryPolicy(max_attempts=5, initial_interval=0.01))
def nan_step(kind: str) -> Any:
    return {"score": float(kind)}


@duro.workflow(name="door.nan_in_workflow")
async def nan_in_workflow(kind: str) -> str:
    outcomes = []
    try:
        await nan_step(kind)
    except duro.StepFailedError as exc:
        outcomes.append(f"step: {exc.error_type} after {exc.attempts}")
    try:
        duro.set_state("score", float(kind))
    except duro.SerializationError as exc:
        outcomes.append(f"state: {type(exc).__name__}")
    try:
        await duro.execute_child(echo, float(kind))
    except duro.SerializationError as exc:
        outcomes.append(f"child: {type(exc).__name__}")
    return "; ".join(outcomes)


@duro.workflow(name="door.nan_result")
async def nan_result(kind: str) -> float:
    return float(kind)


@pytest.mark.parametrize("kind", ["nan", "inf", "-inf"])
def test_nan_in_workflow_code_fails_where_it_is_made(db_url: str, kind: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(nan_in_workflow, kind)
            assert await handle.result(timeout=10) == (
                "step: duro.errors.SerializationError after 1; state: SerializationError; "
                "child: SerializationError")
            assert await handle.get_state("score") is None
            failing = await engine.start(nan_result, kind)
            with pytest.raises(duro.WorkflowFailedError) as info:
                await failing.result(timeout=10)
            assert info.value.cause.type == "duro.errors.SerializationError"
            assert "NaN or Infinity" in info.value.cause.message

    run(main())


@duro.step
def beats_sync(kind: str) -> str:
    try:
        duro.heartbeat({"progress": float(kind)})
    except duro.SerializationError as exc:
        return f"refused: {exc}"
    return "beat"


@duro.step
async def beats_async(kind: str) -> str:
    try:
        duro.heartbeat([float(kind)])
    except duro.SerializationError as exc:
        return f"refused: {exc}"
    return "beat"


@duro.workflow(name="door.beats")
async def beats(kind: str) -> list[str]:
    return [await beats_sync(kind), await beats_async(kind)]


def test_nan_heartbeat_details_are_refused_in_the_step_sync_or_async(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            outcome = await (await engine.start(beats, "nan")).result(timeout=10)
            assert all(o.startswith("refused: ") and "heartbeat details" in o
                       for o in outcome), outcome
            assert await (await engine.start(beats, "1.5")).result(timeout=10) == [
                "beat", "beat"]

    run(main())


# -- object and Any accept None ----------------------------------------------------------


def test_object_and_any_parameters_accept_none(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(takes_object, None, None)
            assert await handle.result(timeout=10) == [None, None, None]
            handle = await engine.start(takes_object, 1, "a", z={"k": None})
            assert await handle.result(timeout=10) == [1, "a", {"k": None}]
            stepped = await engine.start(object_step, None)
            assert await stepped.result(timeout=10) is None

    run(main())


# -- policy strings ----------------------------------------------------------------------


def test_policy_names_are_checked_by_every_call_that_takes_one(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, worker=False) as engine:
            await _seed(engine)
            bogus: Any = "sometimes"
            await refused(
                engine, duro.InvalidArgumentError, "'sometimes'",
                lambda e: e.start(echo, on_conflict=bogus),
                lambda e: e.start(echo, on_reuse=bogus),
                lambda e: e.start(echo, dedup_key="d", on_dedup=bogus),
                lambda e: e.signal_with_start(inbox_wf, 1, id="live", signal="s",
                                              on_reuse=bogus),
                lambda e: e.update_with_start(inbox_wf, 1, id="live", update="ping",
                                              on_reuse=bogus, timeout=1),
                lambda e: e.schedules.create("s", echo, every=60, overlap=bogus),
            )
            with pytest.raises(duro.InvalidArgumentError, match=r"overlap.*'sometimes'"):
                duro.schedule(echo, id="declared", every=60, overlap=bogus)

    run(main())


@duro.workflow(name="door.bad_parent_close")
async def bad_parent_close() -> str:
    try:
        await duro.execute_child(echo, 1, parent_close="orphan")  # type: ignore[arg-type]
    except duro.InvalidArgumentError as exc:
        return str(exc)
    return "started"


def test_a_bad_parent_close_policy_is_refused_at_the_call(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(bad_parent_close)
            assert "parent_close" in await handle.result(timeout=10)
            assert len(await engine.list()) == 1

    run(main())


# -- an id that belongs to another workflow ---------------------------------------------


def test_an_id_of_another_workflows_live_run_is_refused_naming_it(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, worker=False) as engine:
            await _seed(engine)
            match = r"'other'.*workflow 'door.takes_int'.*not 'door.echo'"
            await refused(
                engine, duro.WorkflowIdTakenError, match,
                lambda e: e.start(echo, 1, id="other"),
                lambda e: e.start(echo, 1, id="other", on_conflict="fail"),
            )
            match = r"'live'.*workflow 'door.inbox_wf'.*not 'door.takes_int'"
            await refused(
                engine, duro.WorkflowIdTakenError, match,
                lambda e: e.signal_with_start(takes_int, 1, id="live", signal="s"),
                lambda e: e.update_with_start(takes_int, 1, id="live", update="ping",
                                              timeout=1),
            )
            with pytest.raises(duro.WorkflowAlreadyStartedError) as info:
                await engine.start(echo, 1, id="other")
            assert info.value.workflow_id == "other"
            assert info.value.workflow_name == "door.takes_int"
            # The same workflow still gets its run back.
            same = await engine.start(takes_int, 2, id="other")
            assert same.run_id is not None

    run(main())


def test_an_id_of_another_workflows_finished_run(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            done = await engine.start(takes_int, 2, id="done")
            assert await done.result(timeout=10) == 2
            await refused(
                engine, duro.WorkflowIdTakenError, r"'done'.*workflow 'door.takes_int'",
                lambda e: e.start(echo, 1, id="done"),  # use_existing: not another's run
                lambda e: e.start(echo, 1, id="done", on_reuse="fail"),
            )
            # Reusing the id of a finished run for another workflow is allowed if asked.
            again = await engine.start(echo, "new", id="done", on_reuse="allow")
            assert await again.result(timeout=10) == "new"

    run(main())


# -- execute_child by name ---------------------------------------------------------------


@duro.workflow(name="door.child")
async def named_child(n: int) -> int:
    return n * 10


@duro.workflow(name="door.child_by_name")
async def child_by_name(name: str) -> str:
    try:
        return str(await duro.execute_child(name, 4))
    except duro.WorkflowNotFoundError as exc:
        return f"not found: {exc}"


@duro.workflow(name="door.child_not_a_workflow")
async def child_not_a_workflow() -> str:
    try:
        await duro.execute_child(echo_object, 1)  # type: ignore[arg-type]
    except TypeError as exc:
        return f"refused: {exc}"
    return "started"


def test_execute_child_takes_a_registered_name(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(child_by_name, "door.child")
            assert await handle.result(timeout=10) == "40"
            missing = await engine.start(child_by_name, "door.nope")
            outcome = await missing.result(timeout=10)
            assert outcome.startswith("not found: ") and "'door.nope'" in outcome
            wrong = await engine.start(child_not_a_workflow)
            outcome = await wrong.result(timeout=10)
            assert outcome.startswith("refused: ") and "@duro.workflow" in outcome

    run(main())
