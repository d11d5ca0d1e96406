"""The same provider usage recorded through each agent integration is the same record:
``duro.openai.chat``, ``duro.openai_agents`` (the SDK's Chat Completions model) and
``duro.pydantic_ai`` (pydantic-ai's OpenAI model) each make one call to the local
OpenAI-compatible server (a real process on loopback), which reports cached and
reasoning tokens; each step's recorded usage carries the same tokens, the same
``cached_tokens`` / ``reasoning_tokens`` extras and the same cost, on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from agents import Agent as AgentsAgent
from agents import Model, ModelProvider, OpenAIChatCompletionsModel, RunConfig
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

import duro
from duro import openai_agents
from duro._history import EventKind
from duro.openai import chat
from duro.pydantic_ai import DuroDurability
from duro.usage._model_call import record_model_call
from tests.conftest import run
from tests.llm import LocalModel, local_model

MODEL = "usage-same"
duro.set_model_prices({MODEL: duro.ModelPrice(input_per_mtok=1.0, output_per_mtok=2.0)})
_url: list[str] = []


def _client() -> openai.AsyncOpenAI:
    # One per call: each test runs its own event loop, and the SDK's connections belong
    # to the loop that opened them.
    return openai.AsyncOpenAI(base_url=_url[0], api_key="local", max_retries=0)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalModel]:
    with local_model() as model:
        _url[:] = [model.url]
        yield model


@duro.step(name="usage.chat")
async def _chat_step(question: str) -> str:
    reply = await chat(_client(), model=MODEL, provider="openai",
                       messages=[{"role": "user", "content": question}])
    return reply.content or ""


@duro.workflow(name="usage.openai")
async def via_openai(question: str) -> str:
    return await _chat_step(question)


class _Provider(ModelProvider):
    def get_model(self, model_name: str | None) -> Model:
        return OpenAIChatCompletionsModel(model=model_name or MODEL, openai_client=_client())


_agents_agent = AgentsAgent(name="usage", model=MODEL)


@duro.workflow(name="usage.openai_agents")
async def via_agents(question: str) -> str:
    provider = openai_agents.DurableModelProvider(_Provider(), provider_name="openai")
    result = await openai_agents.run(_agents_agent, question,
                                     run_config=RunConfig(model_provider=provider))
    return str(result.final_output)


def _pydantic_agent() -> PydanticAgent[None, str]:
    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=_client()))
    return PydanticAgent(model, name="usage", capabilities=[DuroDurability(stream=None)])


@duro.workflow(name="usage.pydantic_ai")
async def via_pydantic_ai(question: str) -> str:
    return (await _pydantic_agent().run(question)).output


def test_the_same_provider_usage_is_the_same_record_in_each_integration(
        any_db_url: str, server: LocalModel) -> None:
    server.reset()
    server.configure(cached_tokens=3, reasoning_tokens=2)

    async def main() -> list[dict[str, Any]]:
        recorded = []
        async with duro.Engine(any_db_url) as engine:
            for i, workflow in enumerate((via_openai, via_agents, via_pydantic_ai)):
                handle = await engine.start(workflow, "say something long enough",
                                            id=f"usage-same-{i}")
                await handle.result(timeout=30)
                (done,) = [e for e in await handle.history()
                           if e.kind == EventKind.STEP_COMPLETED]
                (usage,) = done.meta["usage"]
                recorded.append(usage)
        return recorded

    try:
        recorded = run(main(), timeout=90)
    finally:
        server.reset()
    for usage in recorded:
        usage["extra"].pop("request_id", None)  # each call's own (the Agents SDK has none)
    first = recorded[0]
    assert first["extra"] == {"provider": "openai", "cached_tokens": 3,
                              "reasoning_tokens": 2}
    assert first["input_tokens"] > 3 and first["output_tokens"] > 2
    assert first["cost"] == pytest.approx((first["input_tokens"]
                                           + 2 * first["output_tokens"]) / 1e6)
    assert recorded == [first, first, first]


def test_odd_figures_are_dropped_and_the_call_still_counted() -> None:
    usage = record_model_call(model="", input_tokens=-1, output_tokens=5,
                              cached_tokens="3", reasoning_tokens=True, cost=float("nan"),
                              provider=7, response_model="", request_id=None)
    assert (usage.model, usage.input_tokens, usage.output_tokens) == ("unknown", 0, 5)
    assert usage.extra == {} and usage.cost is None
