"""Input the API used to let through: refused at the call site with a typed error, and
nothing stored; and data duro accepts always comes back (issue 13, item 9).

Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from datetime import timedelta
from typing import Any

import pytest

import duro
from tests.conftest import run, wait_until


@pytest.fixture
def db_url(any_db_url: str) -> str:
    return any_db_url


@duro.workflow
async def echo(x: Any = None) -> Any:
    return x


@duro.workflow
async def waits() -> str:
    duro.on_update("ping", lambda: "pong")
    await duro.wait_condition(lambda: False)
    return "never"


BAD_IDS = ["", "   ", "\t\n", "a\x1b[2Jb", "line\nbreak", "nul\x00", "csi\u009b", "x" * 1001]


async def _nothing_stored(engine: duro.Engine) -> None:
    assert await engine.list() == []


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_bad_workflow_ids_are_refused_everywhere_and_store_nothing(db_url: str,
                                                                   bad: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            with pytest.raises(duro.InvalidArgumentError, match="workflow id") as info:
                await engine.start(echo, 1, id=bad)
            assert isinstance(info.value, ValueError)
            with pytest.raises(duro.InvalidArgumentError, match="workflow id"):
                await engine.signal_with_start(waits, id=bad, signal="s")
            with pytest.raises(duro.InvalidArgumentError, match="workflow id"):
                await engine.update_with_start(waits, id=bad, update="ping", timeout=5)
            await _nothing_stored(engine)

    run(main())


def test_the_longest_allowed_id_and_printable_unicode_are_accepted(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            for good in ["x" * 1000, "zoë-🚀-订单 42", " padded "]:
                handle = await engine.start(echo, good, id=good)
                assert await handle.result(timeout=10) == good

    run(main())


def test_bad_update_and_fork_ids_are_refused(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(waits, id="w")
            for bad in ("", " ", "u\x07"):
                with pytest.raises(duro.InvalidArgumentError, match="update id"):
                    await handle.update("ping", id=bad, timeout=5)
                with pytest.raises(duro.InvalidArgumentError, match="update id"):
                    await engine.update_with_start(waits, id="w", update="ping",
                                                   update_id=bad, timeout=5)
                with pytest.raises(duro.InvalidArgumentError, match="workflow id"):
                    await engine.fork("w", new_id=bad)
            assert await handle.update("ping", id="good", timeout=10) == "pong"
            assert [r.workflow_id for r in await engine.list()] == ["w"]
            await handle.terminate()

    run(main())


@pytest.mark.parametrize("options, message", [
    ({"execution_timeout": -5}, "execution_timeout"),
    ({"execution_timeout": 0}, "execution_timeout"),
    ({"execution_timeout": math.nan}, "execution_timeout"),
    ({"execution_timeout": math.inf}, "execution_timeout"),
    ({"execution_timeout": timedelta(seconds=-1)}, "execution_timeout"),
    ({"execution_timeout": "10"}, "execution_timeout"),
    ({"start_delay": -1}, "start_delay"),
    ({"start_delay": math.nan}, "start_delay"),
    ({"start_delay": 5, "start_at": dt.datetime.now(dt.UTC)}, "start_at"),
    ({"debounce_key": "k", "debounce": 0}, "debounce"),
    ({"debounce_key": "k", "debounce": -3}, "debounce"),
    ({"debounce": 5}, "debounce_key"),
    ({"priority": "high"}, "priority"),
    ({"priority": 2 ** 40}, "priority"),
    ({"on_conflict": "replace"}, "on_conflict"),
    ({"on_reuse": "alow"}, "on_reuse"),
    ({"on_dedup": "ignore", "dedup_key": "d"}, "on_dedup"),
    ({"queue": ""}, "queue"),
])
def test_nonsense_start_options_are_refused_and_store_nothing(
        db_url: str, options: dict[str, Any], message: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            with pytest.raises(duro.InvalidArgumentError, match=message):
                await engine.start(echo, 1, id="refused", **options)
            await _nothing_stored(engine)

    run(main())


def test_with_start_timeouts_are_checked(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            with pytest.raises(duro.InvalidArgumentError, match="execution_timeout"):
                await engine.signal_with_start(waits, id="s", signal="go",
                                               execution_timeout=-1)
            with pytest.raises(duro.InvalidArgumentError, match="timeout"):
                await engine.update_with_start(waits, id="u", update="ping", timeout=-1)
            await _nothing_stored(engine)

    run(main())


def test_list_refuses_an_unknown_status_and_a_negative_limit(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, worker=False) as engine:
            with pytest.raises(duro.InvalidArgumentError, match="limit"):
                await engine.list(limit=-1)
            with pytest.raises(duro.InvalidArgumentError, match="status"):
                await engine.list(status="finished")
            assert await engine.list(limit=0, status="completed") == []

    run(main())


# -- children ------------------------------------------------------------------------


@duro.workflow
async def child(x: int) -> int:
    return x * 2


@duro.workflow
async def parent_with(child_id: str, timeout: float | None) -> str:
    try:
        await duro.execute_child(child, 1, id=child_id, execution_timeout=timeout)
    except duro.InvalidArgumentError as exc:
        return f"refused: {exc}"
    return "started"


@pytest.mark.parametrize("child_id, timeout, message", [
    ("", None, "workflow id"),
    ("bad\x1bid", None, "control"),
    ("c" * 1001, None, "at most 1000"),
    ("fine", -1.0, "execution_timeout"),
    ("fine", 0.0, "execution_timeout"),
])
def test_child_ids_and_timeouts_are_refused_in_the_workflow_at_the_call(
        db_url: str, child_id: str, timeout: float | None, message: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(parent_with, child_id, timeout, id="parent")
            outcome = await handle.result(timeout=10)
            assert outcome.startswith("refused: ") and message in outcome
            assert [r.workflow_id for r in await engine.list()] == ["parent"]

    run(main())


# -- schedules -----------------------------------------------------------------------


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4 *", "0 12 31 11 *"])
def test_a_cron_that_never_fires_is_refused_and_stores_nothing(db_url: str, cron: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, worker=False) as engine:
            with pytest.raises(duro.InvalidArgumentError, match="never fires") as info:
                await engine.schedules.create("never", echo, cron=cron)
            assert repr(cron) in str(info.value)
            # A leap day fires every four years: accepted.
            await engine.schedules.create("leap", echo, cron="0 0 29 2 *")
            assert [s.schedule_id for s in await engine.schedules.list()] == ["leap"]

    run(main())


@pytest.mark.parametrize("bad", ["", "tab\tid", "s" * 961])
def test_bad_schedule_ids_are_refused(db_url: str, bad: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url, worker=False) as engine:
            with pytest.raises(duro.InvalidArgumentError, match="schedule id"):
                await engine.schedules.create(bad, echo, every=60)
            assert await engine.schedules.list() == []

    run(main())


# -- timers in workflow code ----------------------------------------------------------


@duro.workflow
async def sleeps(seconds: str) -> str:
    try:
        await asyncio.sleep(float(seconds))
    except duro.InvalidArgumentError as exc:
        return f"refused: {exc}"
    return "woke"


def test_a_nan_timer_is_refused_in_the_workflow_instead_of_never_firing(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(sleeps, "nan")
            assert (await handle.result(timeout=10)).startswith("refused: ")

    run(main())


def test_an_infinite_sleep_waits_for_cancellation_and_stays_readable(db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(db_url) as engine:
            handle = await engine.start(sleeps, "inf")
            await wait_until(lambda: _suspended(handle))
            info = await handle.describe()
            assert info.wake_at is None  # no instant to wake at: it waits for a message
            await handle.cancel()
            with pytest.raises(duro.WorkflowCancelledError):
                await handle.result(timeout=10)

    run(main())


async def _suspended(handle: duro.WorkflowHandle[Any]) -> bool:
    return await handle.status() == duro.RunStatus.SUSPENDED
