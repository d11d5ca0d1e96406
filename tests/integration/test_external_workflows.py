"""Signalling and cancelling another workflow from workflow code
(``duro.external_workflow``): recorded in the sender's history, done exactly once (a
send repeated after a lost worker is taken once), answered from the history on replay;
another namespace's workflow is not reachable. Both stores."""

from __future__ import annotations

import asyncio

import pytest

import duro
from duro._history import ExternalMeta
from duro.testing import replay
from tests.conftest import run, wait_until


@duro.workflow(name="ext.receiver")
async def receiver() -> list[int]:
    got = [await duro.wait_for_signal("go", type=int)]
    got.append(await duro.wait_for_signal("go", type=int))
    return got


@duro.workflow(name="ext.sleeper")
async def sleeper() -> str:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        return "cancelled by its sibling"
    return "slept"


@duro.workflow(name="ext.sender")
async def sender(target: str, values: list[int]) -> str:
    await duro.wait_for_signal("proceed")
    other = duro.external_workflow(target)
    for v in values:
        await other.signal("go", v)
    return f"sent {len(values)}"


@duro.workflow(name="ext.canceller")
async def canceller(target: str) -> str:
    await duro.external_workflow(target).cancel()
    return "asked"


@duro.workflow(name="ext.missing")
async def missing(target: str) -> str:
    try:
        await duro.external_workflow(target).signal("go", 1)
    except duro.RunNotFoundError as exc:
        return f"not found: {exc}"
    return "sent"


@duro.workflow(name="ext.refused")
async def refused() -> list[str]:
    seen = []
    for bad in ("", "a\x00b"):
        try:
            duro.external_workflow(bad)
        except duro.InvalidArgumentError:
            seen.append("id refused")
    try:
        await duro.external_workflow("x").signal("go", float("nan"))
    except duro.SerializationError:
        seen.append("payload refused")
    return seen


def test_a_workflow_signals_another_once_and_replays_without_sending(
        any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            target = await engine.start(receiver, id="rx")
            source = await engine.start(sender, "rx", [1, 2], id="tx")
            await engine.signal("tx", "proceed")
            assert await source.result(timeout=20) == "sent 2"
            assert await target.result(timeout=20) == [1, 2]
            history = await source.history()
            sent = [e for e in history if e.kind == "external_sent"]
            assert [(e.op, e.name, e.meta["workflow_id"], e.meta["run_id"]) for e in sent] == [
                (1, "go", "rx", target.run_id), (2, "go", "rx", target.run_id)]
            received = [e for e in await target.history() if e.kind == "signal_received"]
            assert [e.meta["id"] for e in received] == [
                ExternalMeta.delivery_id(source.run_id, op) for op in (1, 2)]
            # Replay answers from the history: nothing is sent again.
            assert replay(sender, history, run_id=source.run_id).result == "sent 2"
            assert await target.result(timeout=5) == [1, 2]

    run(main())


def test_a_send_repeated_after_a_lost_worker_is_taken_once(any_db_url: str) -> None:
    """The worker that sent the first signal died before recording it (the message is in
    the receiver's inbox, the sender's history has no outcome): the next worker sends it
    again with the same delivery id, and the receiver takes it once."""

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            target = await engine.start(receiver, id="rx2")
            source = await engine.start(sender, "rx2", [7, 8], id="tx2")
            # What the lost worker did: the first send (op 1), under its delivery id.
            await engine.signal("rx2", "go", 7, id=ExternalMeta.delivery_id(source.run_id, 1))
            await engine.signal("tx2", "proceed")
            assert await source.result(timeout=20) == "sent 2"
            assert await target.result(timeout=20) == [7, 8]
            received = [e for e in await target.history() if e.kind == "signal_received"]
            assert len(received) == 2

    run(main())


def test_a_workflow_cancels_another(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            target = await engine.start(sleeper, id="sl")
            await wait_until(lambda: _timer_set(engine, "sl"))
            source = await engine.start(canceller, "sl", id="cx")
            assert await source.result(timeout=20) == "asked"
            assert await target.result(timeout=20) == "cancelled by its sibling"
            kinds = [e.kind for e in await source.history()]
            assert kinds.count("external_sent") == 1

    run(main())


async def _timer_set(engine: duro.Engine, wid: str) -> bool:
    return (await engine.get_handle(wid).describe()).status == duro.RunStatus.SUSPENDED


def test_no_live_run_is_a_recorded_failure_and_other_namespaces_are_out_of_reach(
        any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            nobody = await engine.start(missing, "nobody", id="m1")
            result = await nobody.result(timeout=20)
            assert result.startswith("not found: could not send signal to workflow 'nobody'")
            history = await nobody.history()
            assert [e.kind for e in history if e.kind.startswith("external_")] == [
                "external_failed"]
            assert replay(missing, history, run_id=nobody.run_id).result == result
            await engine.start(receiver, id="elsewhere")  # in the default namespace
            tenant = engine.with_namespace("t1")
            other = await tenant.start(missing, "elsewhere", id="m2")
            assert (await other.result(timeout=20)).startswith("not found")
            assert [e for e in await engine.get_handle("elsewhere").history()
                    if e.kind == "signal_received"] == []
            bad = await engine.start(refused, id="bad")
            assert await bad.result(timeout=20) == ["id refused", "id refused",
                                                    "payload refused"]

    run(main())


def test_external_workflow_outside_a_workflow_is_refused() -> None:
    with pytest.raises(RuntimeError, match="external_workflow"):
        duro.external_workflow("x")
