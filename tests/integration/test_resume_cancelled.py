"""A cancelled run resumed from where it was cancelled (``client.retry`` or
``client.resume``): a new run of the same workflow id reuses every result recorded
before the cancel request; the cleanup its code did on cancellation is not part of it.
Both stores."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

import duro
from tests.conftest import run, wait_until

CALLS: Counter[str] = Counter()


@duro.step(name="rc.work")
def work(part: str) -> str:
    CALLS[part] += 1
    return f"{part} done"


@duro.workflow(name="rc.job")
async def job() -> list[str]:
    done = [await work("first")]
    try:
        await duro.wait_for_signal("go")
    except asyncio.CancelledError:
        await work("cleanup")
        raise
    done.append(await work("second"))
    return done


async def _cancelled_while_waiting(engine: duro.Engine, wid: str) -> duro.WorkflowHandle[list[str]]:
    handle = await engine.start(job, id=wid)

    async def waiting() -> bool:
        return (await handle.describe()).status == duro.RunStatus.SUSPENDED

    await wait_until(waiting)
    await engine.cancel(wid)
    with pytest.raises(duro.WorkflowCancelledError):
        await handle.result(timeout=20)
    return handle


@pytest.mark.parametrize("verb", ["retry", "resume"])
def test_a_cancelled_run_resumes_from_where_it_was_cancelled(any_db_url: str,
                                                            verb: str) -> None:
    CALLS.clear()

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            old = await _cancelled_while_waiting(engine, f"job-{verb}")
            assert CALLS == {"first": 1, "cleanup": 1}
            if verb == "retry":
                new = await engine.retry(f"job-{verb}")
            else:
                await engine.resume(f"job-{verb}")
                new = engine.get_handle(f"job-{verb}")
            info = await new.describe()
            assert info.run_id != old.run_id and info.origin_run_id == old.run_id
            kinds = [e.kind for e in await new.history()]
            assert "cancel_requested" not in kinds and kinds.count("step_completed") == 1
            await engine.signal(f"job-{verb}", "go")
            assert await new.result(timeout=20) == ["first done", "second done"]
            # The first step was not run again; the cleanup of the cancelled run is not
            # part of the new one.
            assert CALLS == {"first": 1, "cleanup": 1, "second": 1}

    run(main())


def test_only_cancelled_runs_resume_so(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(job, id="done-job")
            await engine.signal("done-job", "go")
            await handle.result(timeout=20)
            with pytest.raises(duro.DuroError, match="cancelled runs can be retried"):
                await engine.retry("done-job")
            with pytest.raises(duro.RunNotFoundError):
                await engine.resume("done-job")
            with pytest.raises(duro.RunNotFoundError):
                await engine.resume("no-such-job")

    run(main())
