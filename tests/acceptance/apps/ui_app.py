"""The web UI's test app (tests/acceptance/test_ui.py): a run that waits for a signal, a
run that waits for a human approval, a run with a timer, a step that fails, and a step
routed to a queue that no worker here serves."""

from __future__ import annotations

import asyncio

import duro


@duro.step(name="ui_app.prepare")
def prepare(item: str) -> dict[str, str]:
    return {"plan": f"ship {item}", "note": "x" * 100}


@duro.step(name="ui_app.flaky", retry=duro.RetryPolicy(max_attempts=2, initial_interval=0.05))
def flaky(item: str) -> str:
    raise ValueError(f"no stock for {item}")


@duro.workflow(name="ui_app.order")
async def order(item: str) -> dict[str, str]:
    plan = await prepare(item)
    duro.set_state("progress", {"stage": "waiting for payment"})
    paid = await duro.wait_for_signal("paid", type=str)
    return {**plan, "paid_by": paid or ""}


@duro.workflow(name="ui_app.release")
async def release(version: str) -> str:
    plan = await prepare(version)
    decision = await duro.approval("ship", {"version": version, "plan": plan["plan"]})
    return f"{'approved' if decision.approved else 'rejected'} by {decision.by}"


@duro.workflow(name="ui_app.nap")
async def nap(seconds: float) -> str:
    await duro.sleep(seconds)
    return "rested"


@duro.workflow(name="ui_app.broken")
async def broken(item: str) -> str:
    return await flaky(item)


@duro.workflow(name="ui_app.chatty")
async def chatty(n: int) -> int:
    # n events in one activation (state_set): a long history for the UI's paging.
    for i in range(n):
        duro.set_state("count", i)
    await duro.wait_for_signal("stop")
    return n


class Gpu:
    """A step routed to the queue ``gpu``. No object of the class is registered
    (``duro.register_steps``) in this app: no worker here runs it, so its task waits
    unclaimed (the run page's "not yet claimed")."""

    @duro.step(name="ui_app.embed", queue="gpu")
    def embed(self, text: str) -> int:
        return len(text)


GPU = Gpu()


@duro.workflow(name="ui_app.index")
async def index(text: str) -> int:
    return await GPU.embed(text)


@duro.step(name="ui_app.work")
async def work(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "worked"


@duro.workflow(name="ui_app.nap_and_work")
async def nap_and_work(nap: float, busy: float) -> list[str]:
    # The step's outcome comes between the timer's start and its firing.
    _, worked = await asyncio.gather(duro.sleep(nap), work(busy))
    return ["napped", worked]


@duro.step(name="ui_app.bulk")
def bulk(size: int) -> dict[str, object]:
    # A result longer than the history table shows (it truncates past 20,000 characters).
    return {"rows": [f"row {i:05d}" for i in range(size)], "last": f"row {size - 1:05d}"}


@duro.workflow(name="ui_app.bulky")
async def bulky(size: int) -> int:
    result = await bulk(size)
    return len(result["rows"])


@duro.workflow(name="ui_app.laps")
async def laps(lap: int, last: int) -> int:
    # Each lap a run of its own (continue-as-new): a chain of last + 1 runs of one id.
    if lap < last:
        duro.continue_as_new(lap + 1, last)
    return lap
