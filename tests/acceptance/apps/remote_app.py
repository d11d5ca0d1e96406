"""Workflows for the remote client's behavioural tests (tests/acceptance/test_remote_client.py):
served by `duro serve remote_app --worker`, and imported by the test process too (the
same names), so that both clients start them by their Workflow objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duro


@dataclass
class Greeting:
    text: str
    length: int


@duro.step(name="remote_app.shout")
async def shout(name: str) -> str:
    return name.upper()


@duro.workflow(name="remote_app.greet")
async def greet(name: str) -> Greeting:
    text = f"hello {await shout(name)}"
    return Greeting(text=text, length=len(text))


class PaymentDeclined(Exception):
    pass


@duro.step(name="remote_app.charge")
async def charge(amount: int) -> None:
    raise duro.NonRetryableError(f"card declined for {amount}") from PaymentDeclined()


@duro.workflow(name="remote_app.pay")
async def pay(amount: int) -> None:
    await charge(amount)


@duro.workflow(name="remote_app.counter")
async def counter(start: int) -> dict[str, int]:
    """Adds the payloads of ``inc`` signals until ``stop``; ``add`` updates (refused when
    negative) add too; the ``total`` query reads the sum."""
    state = {"total": start, "signals": 0}

    def inc(n: int) -> None:
        state["total"] += n
        state["signals"] += 1

    def add(n: int) -> int:
        state["total"] += n
        return state["total"]

    def positive(n: int) -> None:
        if n < 0:
            raise ValueError(f"cannot add {n}")

    duro.on_signal("inc", inc)
    duro.on_update("add", add, positive)
    duro.on_query("total", lambda: state["total"])
    await duro.wait_for_signal("stop")
    return state


@duro.workflow(name="remote_app.family")
async def family(n: int) -> int:
    """Starts ``n`` greet children one after another, publishing its progress, then
    waits for ``stop``."""
    duro.set_state("progress", {"children": 0})
    letters = 0
    for i in range(n):
        letters += (await duro.execute_child(greet, f"c{i}")).length
        duro.set_state("progress", {"children": i + 1})
    await duro.wait_for_signal("stop")
    return letters


@duro.step(name="remote_app.llm")
async def llm(prompt: str) -> str:
    duro.record_usage(model="remote-model", input_tokens=len(prompt), output_tokens=2,
                      cost=0.25)
    return "ok"


@duro.workflow(name="remote_app.spend")
async def spend(prompt: str) -> str:
    return await llm(prompt)


@duro.step(name="remote_app.think", budgeted=True)
async def think(i: int) -> int:
    duro.record_usage(model="remote-model", input_tokens=10, output_tokens=0, cost=0.25)
    return i


@duro.workflow(name="remote_app.agent")
async def agent(steps: int) -> list[Any]:
    done: list[Any] = []
    try:
        for i in range(steps):
            done.append(await think(i))
    except duro.BudgetExceededError as exc:
        done.append(exc.budget)
    return done
