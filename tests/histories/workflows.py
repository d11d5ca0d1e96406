"""Reference workflows whose recorded histories are committed next to this file.

Changing the *behaviour* of these workflows (or of duro's replay) breaks the golden
replay test on purpose: old histories must keep replaying. Add new workflows instead
of editing old ones, and regenerate with ``python -m tests.histories.generate``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import duro


@dataclass
class Order:
    id: str
    amount: int


@duro.step(name="golden.reserve")
def reserve(order: Order) -> str:
    return f"res-{order.id}"


@duro.step(name="golden.charge", retry=duro.RetryPolicy(max_attempts=3, initial_interval=0.01,
                                                        jitter=0))
def charge(order: Order) -> dict[str, object]:
    if duro.step_info().attempt == 1:
        raise ConnectionError("gateway timeout")
    return {"charged": order.amount, "key": duro.step_info().idempotency_key}


@duro.step(name="golden.fetch")
async def fetch(url: str, delay: float) -> str:
    await asyncio.sleep(delay)
    return f"<{url}>"


@duro.workflow(name="golden_order")
async def golden_order(order: Order) -> dict[str, object]:
    reservation = await reserve(order)
    payment = await charge(order)
    await asyncio.sleep(5)
    return {"reservation": reservation, "payment": payment}


@duro.workflow(name="golden_fanout")
async def golden_fanout(urls: list[str]) -> dict[str, object]:
    pages = await asyncio.gather(*(fetch(u, 0.001 * i) for i, u in enumerate(urls)))
    racers = [asyncio.ensure_future(fetch("slow", 0.3)),
              asyncio.ensure_future(fetch("quick", 0.0))]
    done, pending = await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    try:
        late = await asyncio.wait_for(fetch("late", 0.5), timeout=0.05)
    except TimeoutError:
        late = "timeout"
    async with asyncio.TaskGroup() as tg:
        a = tg.create_task(fetch("tg-a", 0.0))
        b = tg.create_task(fetch("tg-b", 0.0))
    return {"pages": pages, "winner": done.pop().result(), "late": late,
            "group": [a.result(), b.result()]}


@duro.workflow(name="golden_values")
async def golden_values() -> list[object]:
    first = [duro.random(), str(duro.uuid4()), duro.now().isoformat()]
    if duro.patched("golden-extra-step"):
        first.append(await fetch("patched", 0.0))
    await duro.sleep(30)
    return [*first, duro.now().isoformat(), duro.random()]


@duro.step(name="golden.send", at_most_once=True,
           retry=duro.RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=0))
def send(to: str) -> str:
    if duro.step_info().attempt == 1:
        raise ConnectionError("smtp refused")
    return f"sent:{to}"


@duro.step(name="golden.pay", at_most_once=True, timeout=0.05)
async def pay(amount: int) -> str:
    await asyncio.sleep(5)  # times out: an at-most-once attempt's outcome is then unknown
    return f"paid:{amount}"


@duro.step(name="golden.lookup")
def lookup(key: str) -> str:
    return f"not-found:{key}"


@duro.workflow(name="golden_at_most_once")
async def golden_at_most_once() -> dict[str, object]:
    sent = await send("a@example.com")
    try:
        paid: object = await pay(10)
    except duro.StepOutcomeUnknownError as exc:
        paid = {"unknown_after": exc.attempts, "lookup": await lookup("pay-10")}
    return {"sent": sent, "paid": paid}
