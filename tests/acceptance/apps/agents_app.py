"""An OpenAI Agents SDK agent on duro, driven by a deterministic fake model, for the
tests of ``duro.openai_agents`` (tests/acceptance/test_openai_agents_kill.py,
tests/integration/test_openai_agents.py).

The agent computes (2 + 3) * 4 with two function tools in three model calls: call 0
asks for ``add(2, 3)``, call 1 (seeing one tool output) for ``mul(5, 4)``, call 2
answers. :class:`CountingModel` decides from its input alone (not from a counter), so a
resumed process answers the same. Every call and tool call appends ``start NAME`` and
``done NAME`` lines to a ledger file (``O_APPEND``: what a SIGKILL cannot undo), so the
test counts what ran (``AGENTS_LEDGER``: its path). ``AGENTS_HOLD`` names one call
that waits for ever (until the test's SIGKILL): ``model1`` blocks in the middle of
model call 1 (after its ``start`` line), ``before:model1`` before it writes anything.

``python agents_app.py --url URL --id ID [--start]`` starts run ID (with ``--start``)
and serves as its worker until the run ends (or the test kills it), then prints the
run's result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

from agents import Agent, Model, ModelResponse, ModelTracing, RunConfig, function_tool
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseUsage,
)
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails

import duro
from duro import openai_agents

_ledger = os.environ.get("AGENTS_LEDGER", "")
_hold = os.environ.get("AGENTS_HOLD", "")


def note(line: str) -> None:
    """Append a line to the ledger (one write on an O_APPEND descriptor)."""
    if _ledger:
        fd = os.open(_ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{line}\n".encode())
        finally:
            os.close(fd)


async def checkpoint(name: str) -> None:
    """The ledger's start line, and the hold the test asked for (until SIGKILL)."""
    if _hold == "before:" + name:
        note(f"hold {name}")
        await asyncio.Event().wait()
    note(f"start {name}")
    if _hold == name:
        await asyncio.Event().wait()


@function_tool
async def add(a: int, b: int) -> str:
    """Add two integers."""
    await checkpoint("add")
    note("done add")
    return str(a + b)


@function_tool
async def mul(a: int, b: int) -> str:
    """Multiply two integers."""
    await checkpoint("mul")
    note("done mul")
    return str(a * b)


def _outputs(items: Any) -> list[str]:
    return [item["output"] for item in (items if isinstance(items, list) else [])
            if isinstance(item, dict) and item.get("type") == "function_call_output"]


def plan(items: Any) -> tuple[int, Any]:
    """The model's decision from its input: (call number, a tool call or the answer)."""
    outputs = _outputs(items)
    if not outputs:
        return 0, ResponseFunctionToolCall(type="function_call", call_id="call-add",
                                           name="add", arguments='{"a": 2, "b": 3}')
    if len(outputs) == 1:
        return 1, ResponseFunctionToolCall(
            type="function_call", call_id="call-mul", name="mul",
            arguments=json.dumps({"a": int(outputs[0]), "b": 4}))
    return len(outputs), f"The answer is {outputs[-1]}."


def _message(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id="msg-1", type="message", role="assistant", status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])])


class CountingModel(Model):
    """A deterministic fake model: 10 input tokens and 5 output tokens per call."""

    async def _decide(self, input: Any) -> tuple[int, Any]:
        number, out = plan(input)
        await checkpoint(f"model{number}")
        note(f"done model{number}")
        return number, (_message(out) if isinstance(out, str) else out)

    async def get_response(self, system_instructions: str | None, input: Any,
                           model_settings: Any, tools: Any, output_schema: Any,
                           handoffs: Any, tracing: ModelTracing, **kwargs: Any
                           ) -> ModelResponse:
        number, item = await self._decide(input)
        return ModelResponse(output=[item], response_id=f"resp-{number}",
                             usage=Usage(requests=1, input_tokens=10, output_tokens=5,
                                         total_tokens=15))

    async def stream_response(self, system_instructions: str | None, input: Any,  # type: ignore[override]
                              model_settings: Any, tools: Any, output_schema: Any,
                              handoffs: Any, tracing: ModelTracing, **kwargs: Any
                              ) -> AsyncIterator[Any]:
        number, item = await self._decide(input)
        if isinstance(item, ResponseOutputMessage):
            for i, word in enumerate(item.content[0].text.split(" ")):  # type: ignore[union-attr]
                yield ResponseTextDeltaEvent(
                    type="response.output_text.delta", item_id="msg-1", output_index=0,
                    content_index=0, delta=("" if i == 0 else " ") + word,
                    sequence_number=i, logprobs=[])
        usage = ResponseUsage(input_tokens=10, output_tokens=5, total_tokens=15,
                              input_tokens_details=InputTokensDetails(cached_tokens=0,
                                                                       cache_write_tokens=0),
                              output_tokens_details=OutputTokensDetails(reasoning_tokens=0))
        yield ResponseCompletedEvent(
            type="response.completed", sequence_number=99, response=Response(
                id=f"resp-{number}", created_at=0, model="counting", object="response",
                output=[item], parallel_tool_calls=False, tool_choice="auto", tools=[],
                usage=usage))


agent = Agent(name="calculator", instructions="Compute (2 + 3) * 4 with the tools.",
              tools=[add, mul], model=CountingModel())


@duro.workflow(name="agents_app.compute")
async def compute(question: str) -> dict[str, Any]:
    result = await openai_agents.run(agent, question, run_config=RunConfig())
    return {"output": result.final_output,
            "tokens": result.context_wrapper.usage.total_tokens}


@duro.workflow(name="agents_app.compute_streamed")
async def compute_streamed(question: str) -> dict[str, Any]:
    result = openai_agents.run_streamed(agent, question)
    kinds = [event.type async for event in result.stream_events()]
    return {"output": result.final_output, "events": len(kinds)}


async def amain(args: argparse.Namespace) -> int:
    async with duro.Engine(args.url, lease=1.0, poll_interval=0.05) as engine:
        if args.start:
            await engine.start(compute, "what is (2 + 3) * 4?", id=args.id)
        result = await engine.get_handle(args.id).result(timeout=60)
    print(json.dumps(result), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--start", action="store_true")
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
