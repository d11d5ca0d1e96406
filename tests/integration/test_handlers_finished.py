"""``duro.all_handlers_finished()``: a workflow waits for its in-flight signal and update
handlers before it returns; one that does not is warned about, and its running update
fails (it cannot count). Both stores."""

from __future__ import annotations

import asyncio
import logging

import pytest

import duro
from tests.conftest import run, wait_until

GATE: dict[str, asyncio.Event] = {}
STARTED: list[str] = []


@duro.step(name="hf.slow")
async def slow(item: str) -> str:
    STARTED.append(item)
    await GATE["open"].wait()  # held until the test opens it
    return item


@duro.workflow(name="hf.drain")
async def drain(wait: bool) -> list[str]:
    done: list[str] = []

    async def add(item: str) -> str:
        done.append(await slow(item))
        return item

    async def note(item: str) -> None:
        done.append("signal " + await slow(item))

    duro.on_update("add", add)
    duro.on_signal("note", note)
    await duro.wait_for_signal("finish")
    if wait:
        assert not duro.all_handlers_finished()
        await duro.wait_condition(duro.all_handlers_finished)
    assert duro.all_handlers_finished() or not wait
    return sorted(done)


async def _handlers_in_flight(engine: duro.Engine, wait: bool, wid: str
                              ) -> tuple[duro.WorkflowHandle[list[str]], asyncio.Task[str]]:
    GATE["open"] = asyncio.Event()
    STARTED.clear()
    handle = await engine.start(drain, wait, id=wid)
    update = asyncio.ensure_future(handle.update("add", "u", timeout=20))
    await engine.signal(wid, "note", "s")
    await wait_until(lambda: sorted(STARTED) == ["s", "u"])
    await engine.signal(wid, "finish")

    async def finish_recorded() -> bool:
        return [e.kind for e in await handle.history()].count("signal_received") == 2

    await wait_until(finish_recorded)
    return handle, update


def test_a_run_waits_for_its_handlers_before_it_returns(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle, update = await _handlers_in_flight(engine, True, "waits")
            # The finish signal is recorded; the run holds on for its two handlers.
            kinds = [e.kind for e in await handle.history()]
            assert kinds.count("signal_received") == 2 and "run_completed" not in kinds
            GATE["open"].set()
            assert await handle.result(timeout=20) == ["signal s", "u"]
            assert await update == "u"

    run(main())


def test_a_run_that_ends_with_handlers_running_is_warned_about(
        any_db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            with caplog.at_level(logging.WARNING, logger="duro.worker"):
                handle, update = await _handlers_in_flight(engine, False, "leaves")
                assert await handle.result(timeout=20) == []
                with pytest.raises(duro.UpdateFailedError, match="still running"):
                    await update
            GATE["open"].set()
        warned = [r.getMessage() for r in caplog.records
                  if "handler(s) still running" in r.getMessage()]
        assert len(warned) == 1 and "hf.drain ended with 2 signal or update" in warned[0]
        assert "all_handlers_finished" in warned[0]

    run(main())


def test_all_handlers_finished_outside_a_workflow_is_refused() -> None:
    with pytest.raises(RuntimeError, match="all_handlers_finished"):
        duro.all_handlers_finished()
