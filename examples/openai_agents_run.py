"""An OpenAI Agents SDK agent run as a duro workflow, offline (``duro.openai_agents``).

The agent is plain Agents SDK code: an ``Agent`` with two ``@function_tool``s, run by
``duro.openai_agents.run_streamed`` instead of ``Runner.run_streamed``. Its model is the
SDK's own ``OpenAIChatCompletionsModel``, pointed at ``local_llm.py`` (the small
OpenAI-compatible server beside this file, started in this process). Each model call
and each tool call is a duro step: the answer's words are printed live from the run's
stream (``handle.stream()``), then the run's usage. Needs
``pip install 'duro[openai-agents]'``.

Run it, kill it mid-way (``kill -9``; it prints its pid), run the same command again::

    python examples/openai_agents_run.py ["TOPIC"] [--db PATH] [--token-delay 0.05] [--new]

The rerun resumes the run: the model calls and tool calls that finished come back from
the history (the server's request count shows the model is not asked again); the call
that was cut runs again.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from pathlib import Path

import openai
from agents import (
    Agent,
    Model,
    ModelProvider,
    OpenAIChatCompletionsModel,
    RunConfig,
    function_tool,
)

import duro
from duro import openai_agents

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_llm import serve  # the model server beside this file

MODEL = "local-agent"
duro.set_model_prices({MODEL: duro.ModelPrice(input_per_mtok=0.5, output_per_mtok=1.5)})
_base_url: list[str] = []  # the server's URL, set in main()

NOTES = {
    "durable execution": "Durable execution records each step in a history. A crashed "
                         "program replays it and goes on from the first unfinished step.",
}


@function_tool
async def search_notes(topic: str) -> str:
    """Search the notes for a topic."""
    return NOTES.get(topic.lower(), f"No notes on {topic}. Try another topic.")


@function_tool
async def word_count(text: str) -> str:
    """Count the words of a text."""
    return f"The text has {len(text.split())} words. Counted offline."


class LocalProvider(ModelProvider):
    """The SDK's Chat Completions model on the local server. duro asks for it inside
    each model step (in the worker), never in workflow code."""

    def get_model(self, model_name: str | None) -> Model:
        client = openai.AsyncOpenAI(base_url=_base_url[0], api_key="local", max_retries=0)
        return OpenAIChatCompletionsModel(model=model_name or MODEL, openai_client=client)


assistant = Agent(name="assistant", model=MODEL, tools=[search_notes, word_count],
                  instructions="Answer with the notes you find.")


@duro.workflow(name="examples.openai_agents_run")
async def ask(topic: str) -> str:
    # The local model calls the tools the question names, in order, then answers.
    question = f"use search_notes then word_count: {topic}"
    result = openai_agents.run_streamed(
        assistant, question, run_config=RunConfig(model_provider=LocalProvider()))
    async for _ in result.stream_events():  # the Runner's events (the words: below)
        pass
    return str(result.final_output)


async def amain(args: argparse.Namespace) -> int:
    server = serve(port=0, token_delay=args.token_delay)
    _base_url[:] = [server.url]
    workflow_id = "agents-sdk-" + re.sub(r"[^a-z0-9]+", "-", args.topic.lower()).strip("-")
    print(f"pid {os.getpid()}: kill -9 it and run the same command again", flush=True)
    try:
        async with duro.Engine(f"sqlite:///{args.db}") as engine:
            # The same id on a rerun: the run in the database is resumed, not restarted.
            handle = await engine.start(ask, args.topic, id=workflow_id,
                                        on_reuse="allow" if args.new else "use_existing")
            print(f"run {workflow_id}, database {os.path.abspath(args.db)}", flush=True)
            async for chunk in handle.stream():
                if chunk.kind == "superseded":
                    print("\n[the call cut by the kill is made again]", flush=True)
                elif chunk.kind == "chunk" and not chunk.superseded:
                    print(chunk.data, end="", flush=True)
            print(f"\n\nanswer: {await handle.result(timeout=60)}")
            usage = await handle.usage()
            print(f"model calls recorded: {usage.total.calls}, tokens "
                  f"{usage.total.input_tokens} in / {usage.total.output_tokens} out, "
                  f"${usage.cost:.6f}; requests this process made to the model: "
                  f"{server.llm.stats()['requests']}")
    finally:
        server.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("topic", nargs="?", default="durable execution")
    parser.add_argument("--db", default="duro-agents-sdk.db")
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--new", action="store_true", help="start a fresh run")
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
