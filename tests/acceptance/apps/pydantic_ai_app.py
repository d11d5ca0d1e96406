"""Subprocess app for tests/acceptance/test_pydantic_ai_kill.py: a pydantic-ai agent on
duro (``duro.pydantic_ai.DuroDurability``) with three model calls and two tool calls,
driven by pydantic-ai's ``FunctionModel``.

``python pydantic_ai_app.py --url URL --id ID --ledger PATH [--start] [--hang-at K]``
serves as the worker of run ID (starting it with ``--start``) until it ends, and prints
its output as JSON. Every model and tool call appends ``enter LABEL`` to the ledger when
it begins and ``exit LABEL`` when it is done; with ``--hang-at K`` the K-th call entered
(counted over the whole ledger, so across processes) hangs after its ``enter`` line,
until the test kills the process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import duro
from duro.pydantic_ai import DuroDurability

LEDGER: Path
HANG_AT = 0


async def _call(label: str) -> None:
    """Write ``enter``; hang if this is the call to hang at; the caller then works."""
    with LEDGER.open("a") as f:
        f.write(f"enter {label}\n")
    entered = sum(line.startswith("enter ") for line in LEDGER.read_text().splitlines())
    if entered == HANG_AT:
        await asyncio.Event().wait()  # until SIGKILL


def _done(label: str) -> None:
    with LEDGER.open("a") as f:
        f.write(f"exit {label}\n")


def _returns(messages: list[ModelMessage]) -> list[object]:
    return [p.content for m in messages for p in getattr(m, "parts", ())
            if isinstance(p, ToolReturnPart)]


async def think(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """The model: look the city up, convert its temperature, answer."""
    turn = sum(isinstance(m, ModelResponse) for m in messages) + 1
    await _call(f"model{turn}")
    found = _returns(messages)
    if turn == 1:
        reply = ModelResponse(parts=[ToolCallPart("lookup", {"city": "Paris"}, "t1")])
    elif turn == 2:
        reply = ModelResponse(parts=[ToolCallPart("convert", {"celsius": found[0]}, "t2")])
    else:
        reply = ModelResponse(parts=[TextPart(f"Paris: {found[0]}C = {found[1]}")])
    _done(f"model{turn}")
    return reply


agent = Agent(FunctionModel(think), name="weather",
              capabilities=[DuroDurability(stream=None)])


@agent.tool_plain
async def lookup(city: str) -> int:
    """The temperature of a city, in Celsius."""
    await _call(f"lookup:{city}")
    _done(f"lookup:{city}")
    return 21


@agent.tool_plain
async def convert(celsius: float) -> str:
    """Celsius to Fahrenheit."""
    await _call(f"convert:{celsius}")
    _done(f"convert:{celsius}")
    return f"{celsius * 9 / 5 + 32:.1f}F"


@duro.workflow(name="pydantic_ai_app.weather")
async def weather(question: str) -> str:
    return (await agent.run(question)).output


async def amain(args: argparse.Namespace) -> int:
    async with duro.Engine(args.url, lease=1.0, poll_interval=0.05) as engine:
        if args.start:
            await engine.start(weather, "How warm is Paris?", id=args.id)
        result = await engine.get_handle(args.id).result(timeout=60)
    print(json.dumps(result), flush=True)
    return 0


def main() -> int:
    global LEDGER, HANG_AT
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--start", action="store_true")
    parser.add_argument("--hang-at", type=int, default=0)
    args = parser.parse_args()
    LEDGER, HANG_AT = Path(args.ledger), args.hang_at
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
