"""A pydantic-ai agent made durable by duro, offline (``pip install 'duro[pydantic-ai]'``).

    python examples/pydantic_ai_agent.py [--db PATH] [--yes] [--new]

The agent (pydantic-ai's ``FunctionModel`` stands in for a real model: no network, no
key) looks up a city's weather with a tool, then wants to send an alert with a tool that
requires approval. ``DuroDurability`` makes each model request and tool call a duro step,
streams the model's text to the run's stream (printed live here), records each
request's usage, and turns the approval into a ``duro.approval``: answer it here
(``y``/``n``), with ``--yes``, or from another terminal with ``duro approve ID --db
PATH``. Kill it (Ctrl-C, ``kill -9``) at any point and run it again: the run resumes,
and the calls already made are not made again (the ``[call]`` lines say when one runs).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

import duro
from duro.pydantic_ai import DuroDurability


def _model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A scripted model: look the weather up, ask to alert, then summarize."""
    results = [p.content for m in messages for p in getattr(m, "parts", ())
               if isinstance(p, ToolReturnPart)]
    turn = sum(isinstance(m, ModelResponse) for m in messages)
    if turn == 0:
        return ModelResponse(parts=[ToolCallPart("weather", {"city": "Lyon"}, "w1")])
    if turn == 1:
        text = f"Storm warning for Lyon: {results[0]}"
        return ModelResponse(parts=[ToolCallPart("send_alert", {"text": text}, "a1")])
    return ModelResponse(parts=[TextPart(f"Lyon's weather is {results[0]}. "
                                         f"Alert: {results[1]}.")])


async def _stream(messages: list[ModelMessage], info: AgentInfo
                  ) -> AsyncIterator[str | dict[int, DeltaToolCall]]:
    """The same model, streamed word by word (slowly, so a kill can land mid-stream)."""
    print("  [call] model request", flush=True)
    part = _model(messages, info).parts[0]
    if isinstance(part, ToolCallPart):
        yield {0: DeltaToolCall(name=part.tool_name, json_args=part.args_as_json_str(),
                                tool_call_id=part.tool_call_id)}
        return
    assert isinstance(part, TextPart)
    for i, word in enumerate(part.content.split(" ")):
        await asyncio.sleep(0.05)
        yield word if i == 0 else " " + word


agent = Agent(FunctionModel(_model, stream_function=_stream), name="weather_desk",
              capabilities=[DuroDurability()])


@agent.tool_plain
async def weather(city: str) -> str:
    """Today's weather in a city."""
    print(f"  [call] weather({city!r})", flush=True)
    return "stormy, 14°C, gusts of 90 km/h"


@agent.tool_plain(requires_approval=True)
async def send_alert(text: str) -> str:
    """Send an alert to every subscriber (needs a human's approval)."""
    print(f"  [call] send_alert({text!r})", flush=True)
    return "sent to 1,204 subscribers"


@duro.workflow(name="examples.weather_desk")
async def weather_desk(question: str) -> str:
    return (await agent.run(question)).output


async def _answer(engine: duro.Engine, run_id: str, yes: bool) -> None:
    """Decide the run's approvals here: at once with --yes, else in the terminal."""
    while True:
        page = await engine.approvals.list(workflow_id=run_id)
        for pending in page.approvals:
            print(f"\napproval {pending.approval_id}: {pending.context}")
            reply = "y" if yes else await asyncio.to_thread(input, "approve? [y/N] ")
            decide = engine.approvals.approve if reply.strip().lower() == "y" \
                else engine.approvals.reject
            await decide(pending.approval_id, by="terminal")
        await asyncio.sleep(0.2)


async def main(args: argparse.Namespace) -> None:
    run_id = "weather-desk"
    async with duro.Engine(f"sqlite:///{args.db}") as engine:
        handle = await engine.start(weather_desk, "Anything to warn Lyon about?", id=run_id,
                                    on_reuse="allow" if args.new else "use_existing")
        answering = asyncio.ensure_future(_answer(engine, run_id, args.yes))
        print("model output, live:")
        async for chunk in handle.stream():
            if chunk.kind == "superseded":
                print(" [superseded: the cut call is made again]", flush=True)
            elif chunk.kind == "chunk" and not chunk.superseded:
                print(chunk.data, end="", flush=True)
        answering.cancel()
        print(f"\n\nresult: {await handle.result()}")
        usage = await handle.usage()
        print(f"usage: {usage.total.calls} model calls, {usage.total.input_tokens} tokens in, "
              f"{usage.total.output_tokens} out")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="duro-pydantic-ai.db")
    parser.add_argument("--yes", action="store_true", help="approve at once")
    parser.add_argument("--new", action="store_true", help="start a new run")
    asyncio.run(main(parser.parse_args()))
