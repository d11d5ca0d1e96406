"""A timer that comes due while an outcome of the same run is being committed fires
after that outcome is delivered: live and replay see the same winner of a race.

Before, the timer fired at once (its record waits for the run's next write), so the
workflow saw it first live, while the history recorded the outcome first: a replay (after
a crash, an eviction, or for a query) let the other side of the race win."""

from __future__ import annotations

import asyncio

import duro
from duro.testing import replay
from tests.conftest import run
from tests.faults import _pg, _sqlite_path


@duro.step(name="races.quick")
async def quick() -> str:
    return "s"


@duro.workflow(name="races.step_or_timeout")
async def step_or_timeout() -> str:
    step = asyncio.ensure_future(quick())
    timeout = asyncio.ensure_future(asyncio.sleep(0.05))
    done, _ = await asyncio.wait({step, timeout}, return_when=asyncio.FIRST_COMPLETED)
    winner = "step" if step in done else "timer"
    await asyncio.sleep(0.1)
    return winner


def _slow_step_commits(url: str) -> None:
    """Make the commit of a step's outcome take ~0.3 s, so the timer comes due during it."""
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(_sqlite_path(url)) as conn:
            conn.execute("""
                CREATE TRIGGER slow AFTER INSERT ON events WHEN NEW.kind = 'step_completed'
                BEGIN SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL
                    SELECT x + 1 FROM c WHERE x < 3000000) SELECT x FROM c); END""")
        return
    with _pg(url) as conn:
        conn.execute("""CREATE FUNCTION slow() RETURNS trigger AS $$
            BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$ LANGUAGE plpgsql""")
        conn.execute("CREATE TRIGGER slow AFTER INSERT ON events FOR EACH ROW "
                     "WHEN (NEW.kind = 'step_completed') EXECUTE FUNCTION slow()")


def test_a_timer_due_during_a_commit_replays_the_same_way(any_db_url: str) -> None:
    url = any_db_url
    if url.startswith("sqlite"):
        url += "?inline_commits=false"  # the commit on the writer thread, the loop free

    async def main() -> None:
        async with duro.Engine(url) as engine:
            _slow_step_commits(any_db_url)
            handle = await engine.start(step_or_timeout, id="race")
            live = await handle.result(timeout=20)
            history = await handle.history()
            run_id = (await handle.describe()).run_id
        replayed = replay(step_or_timeout, history, run_id=run_id)
        assert replayed.status == "completed"
        assert replayed.result == live, (live, [(e.seq, e.kind, e.op) for e in history])

    run(main())
