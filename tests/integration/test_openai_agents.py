"""``duro.openai_agents`` in process: an Agents SDK Runner inside a workflow on both
stores (each model call and tool call one step, usage recorded once per model call,
text deltas of a streamed run in the run's stream), a handoff and an input guardrail,
the SDK's own Chat Completions model against the local OpenAI-compatible server
(``examples/local_llm.py``, a real process on loopback), the same code outside a
workflow, and bad input refused before anything runs. The kill -9 test is
tests/acceptance/test_openai_agents_kill.py."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from agents import (
    Agent,
    GuardrailFunctionOutput,
    LocalShellTool,
    Model,
    ModelProvider,
    ModelResponse,
    OpenAIChatCompletionsModel,
    RunConfig,
    SQLiteSession,
    function_tool,
    handoff,
    input_guardrail,
)
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall

import duro
from duro import openai_agents
from duro._history import EventKind
from duro.testing import replay
from tests.acceptance.apps.agents_app import (
    CountingModel,
    _message,
    add,
    agent,
    compute,
    compute_streamed,
)
from tests.conftest import run, wait_until
from tests.llm import LocalModel, local_model

EXPECTED = {"output": "The answer is 20.", "tokens": 45}
MODEL, TOOL = openai_agents.MODEL_STEP, openai_agents.TOOL_STEP_PREFIX


async def _steps(handle: duro.WorkflowHandle[Any]) -> list[str | None]:
    return [e.name for e in await handle.history() if e.kind == EventKind.STEP_COMPLETED]


def test_each_model_and_tool_call_is_one_step(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(compute, "what is (2 + 3) * 4?", id="oa-plain")
            assert await handle.result(timeout=30) == EXPECTED
            assert await _steps(handle) == [MODEL, TOOL + "add", MODEL, TOOL + "mul", MODEL]
            usage = await handle.usage()
        assert usage.by_model["CountingModel"].calls == 3
        assert (usage.total.input_tokens, usage.total.output_tokens) == (30, 15)

    run(main(), timeout=60)


def test_streamed_run_sends_text_deltas_to_the_run_stream(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(compute_streamed, "q", id="oa-streamed")
            result = await handle.result(timeout=30)
            chunks = [c async for c in handle.stream()]
            steps = await _steps(handle)
            usage = await handle.usage()
        assert result["output"] == "The answer is 20."
        assert [c.data for c in chunks if c.kind == "chunk"] == ["The", " answer", " is",
                                                                 " 20."]
        assert {c.step for c in chunks} == {MODEL}
        assert steps == [MODEL, TOOL + "add", MODEL, TOOL + "mul", MODEL]
        assert usage.total.calls == 3

    run(main(), timeout=60)


class HandoffModel(Model):
    """Hands off to ``helper``, which looks a key up, then answers (from its input)."""

    async def get_response(self, system_instructions: str | None, input: Any,
                           *args: Any, **kwargs: Any) -> ModelResponse:
        outputs = [i["output"] for i in input if isinstance(i, dict)
                   and i.get("type") == "function_call_output"]
        if not outputs:
            item: Any = ResponseFunctionToolCall(type="function_call", call_id="h1",
                                                 name="transfer_to_helper", arguments="{}")
        elif len(outputs) == 1:
            item = ResponseFunctionToolCall(type="function_call", call_id="h2",
                                            name="lookup", arguments='{"key": "k"}')
        else:
            item = _message(f"{system_instructions}: {outputs[-1]}")
        return ModelResponse(output=[item], usage=Usage(requests=1), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


@function_tool  # a sync tool
def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"


@input_guardrail
def polite(ctx: Any, agent: Any, input: Any) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info=None, tripwire_triggered="rude" in str(input))


_helper = Agent(name="helper", instructions="helped", tools=[lookup], model=HandoffModel())
_triage = Agent(name="triage", handoffs=[_helper], input_guardrails=[polite],
                model=HandoffModel())
_triage_by_object = _triage.clone(handoffs=[handoff(_helper)])


@duro.workflow(name="oa.triage")
async def triage(question: str, by_object: bool = False) -> str:
    start = _triage_by_object if by_object else _triage
    return str((await openai_agents.run(start, question)).final_output)


def test_handoff_tools_are_steps_and_guardrails_run_in_the_workflow(tmp_path: Any) -> None:
    async def main() -> None:
        async with duro.Engine(f"sqlite:///{tmp_path}/duro.db") as engine:
            handle = await engine.start(triage, "please", id="oa-handoff")
            assert await handle.result(timeout=30) == "helped: value of k"
            assert await _steps(handle) == [MODEL, MODEL, TOOL + "lookup", MODEL]
            by_object = await engine.start(triage, "please", True, id="oa-handoff-object")
            assert await by_object.result(timeout=30) == "helped: value of k"
            assert await _steps(by_object) == [MODEL, MODEL, TOOL + "lookup", MODEL]
            rude = await engine.start(triage, "rude", id="oa-rude")
            with pytest.raises(duro.WorkflowFailedError, match="Guardrail"):
                await rude.result(timeout=30)

    run(main(), timeout=60)


class DelegatingModel(Model):
    """Calls the tool ``calculator`` (an agent as a tool), then repeats its output."""

    async def get_response(self, system_instructions: str | None, input: Any,
                           *args: Any, **kwargs: Any) -> ModelResponse:
        outputs = [i["output"] for i in input if isinstance(i, dict)
                   and i.get("type") == "function_call_output"]
        if not outputs:
            item: Any = ResponseFunctionToolCall(type="function_call", call_id="d1",
                                                 name="calculator",
                                                 arguments='{"input": "compute"}')
        else:
            item = _message(f"it says: {outputs[0]}")
        return ModelResponse(output=[item], usage=Usage(requests=1), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


_delegator = Agent(name="delegator", model=DelegatingModel(), tools=[
    agent.as_tool(tool_name="calculator", tool_description="Computes.")])
_budgeted = openai_agents.DurableModelProvider(budgeted=True)


@duro.workflow(name="oa.options")
async def with_options(case: str) -> str:
    if case == "agent_as_tool":
        return str((await openai_agents.run(_delegator, "q")).final_output)
    if case == "at_most_once":
        durable = openai_agents.durable_agent(agent, at_most_once=["add", "mul"])
        return str((await openai_agents.run(durable, "q")).final_output)
    try:
        await openai_agents.run(agent, "q", model_provider=_budgeted)
    except duro.BudgetExceededError as exc:
        return f"stopped: {exc.unit} {exc.spent:g} of {exc.limit:g}"
    return "not stopped"


def test_budgets_at_most_once_tools_and_an_agent_as_a_tool(tmp_path: Any) -> None:
    async def main() -> None:
        async with duro.Engine(f"sqlite:///{tmp_path}/duro.db") as engine:
            # 15 tokens a call: the third call finds 30 of 20 spent and is not made.
            budget = await engine.start(with_options, "budget", id="oa-budget",
                                        budget=duro.Budget(tokens=20))
            assert await budget.result(timeout=30) == "stopped: tokens 30 of 20"
            assert (await budget.usage()).total.calls == 2
            amo = await engine.start(with_options, "at_most_once", id="oa-amo")
            assert await amo.result(timeout=30) == "The answer is 20."
            started = [e.name for e in await amo.history()
                       if e.kind == EventKind.STEP_STARTED]
            assert started == [TOOL + "add", TOOL + "mul"]  # committed before each call
            nested = await engine.start(with_options, "agent_as_tool", id="oa-nested")
            assert await nested.result(timeout=30) == "it says: The answer is 20."
            # The nested run is one step: its own calls are not steps of this run.
            assert await _steps(nested) == [MODEL, TOOL + "calculator", MODEL]

    run(main(), timeout=60)


@function_tool(needs_approval=True)
async def pay(amount: int) -> str:
    """Pay an amount."""
    return f"paid {amount}"


class PayingModel(Model):
    """Asks to pay 5, then reports the tool's output (from its input)."""

    async def get_response(self, system_instructions: str | None, input: Any,
                           *args: Any, **kwargs: Any) -> ModelResponse:
        outputs = [i["output"] for i in input if isinstance(i, dict)
                   and i.get("type") == "function_call_output"]
        item: Any = (_message(f"done: {outputs[0]}") if outputs else ResponseFunctionToolCall(
            type="function_call", call_id="p1", name="pay", arguments='{"amount": 5}'))
        return ModelResponse(output=[item], usage=Usage(requests=1), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


_payer = Agent(name="payer", tools=[pay], model=PayingModel())


@duro.workflow(name="oa.pay")
async def pay_run() -> str:
    return str((await openai_agents.run_with_approvals(_payer, "pay")).final_output)


def test_tool_approvals_are_duro_approvals(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/duro.db"

    async def decide(workflow_id: str, approved: bool) -> str:
        async with duro.Engine(url) as engine:
            await engine.start(pay_run, id=workflow_id)
            pending = await wait_for_pending(engine, workflow_id)
        assert pending.name == "payer.pay"  # <agent>.<tool>, as in duro.pydantic_ai
        assert pending.context == {"agent": "payer", "tool": "pay", "call_id": "p1",
                                   "arguments": '{"amount": 5}'}
        # Decided while no worker runs; a new one replays the run and goes on.
        async with duro.Client(url) as client:
            await client.approvals.decide(pending.approval_id, approved=approved, by="ada",
                                          comment=None if approved else "no")
        async with duro.Engine(url) as engine:
            handle = engine.get_handle(workflow_id)
            result: str = await handle.result(timeout=30)
            steps = await _steps(handle)
        assert steps == ([MODEL, TOOL + "pay", MODEL] if approved else [MODEL, MODEL])
        history = await handle.history()
        # A history recorded before the rename ("tool:<tool>") still replays, the same.
        old = [dataclasses.replace(e, name="tool:pay") if e.name == "payer.pay" else e
               for e in history]
        assert sum(e.name == "tool:pay" for e in old) == 2  # requested, decided
        assert replay(pay_run, old).result == result
        return result

    async def main() -> None:
        assert await decide("oa-pay-yes", True) == "done: paid 5"
        assert await decide("oa-pay-no", False) == (
            "done: The call was not approved (rejected by ada: no).")

    run(main(), timeout=60)


async def wait_for_pending(engine: duro.Engine, workflow_id: str) -> Any:
    """The run's pending approval, once it is asked."""
    found: list[Any] = []

    async def pending() -> bool:
        page = await engine.approvals.list()
        found[:] = [a for a in page.approvals if a.workflow_id == workflow_id]
        return bool(found)

    await wait_until(pending, timeout=20)
    return found[0]


# --- the SDK's own Chat Completions model, against a local OpenAI-compatible server ---

_url: list[str] = []


class LocalProvider(ModelProvider):
    """The SDK's Chat Completions model on the local server (asked only inside steps,
    so its client belongs to the worker's event loop)."""

    def get_model(self, model_name: str | None) -> Model:
        client = openai.AsyncOpenAI(base_url=_url[0], api_key="local", max_retries=0)
        return OpenAIChatCompletionsModel(model=model_name or "local-small",
                                          openai_client=client)


@function_tool
def search(query: str) -> str:
    """Search the web."""
    return f"Found {query}. More text."


@function_tool(timeout=5)  # the SDK's own limit, applied in workflow code
async def summarize(text: str) -> str:
    """Summarize a text."""
    return f"Summary of {text}. The end."


_researcher = Agent(name="researcher", tools=[search, summarize], model="local-small")


@duro.workflow(name="oa.research")
async def research(question: str, streamed: bool) -> str:
    config = RunConfig(model_provider=LocalProvider())
    if not streamed:
        return str((await openai_agents.run(_researcher, question,
                                            run_config=config)).final_output)
    result = openai_agents.run_streamed(_researcher, question, run_config=config)
    async for _ in result.stream_events():
        pass
    return str(result.final_output)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalModel]:
    with local_model() as model:
        _url[:] = [model.url]
        yield model


def test_the_sdks_chat_completions_model_through_steps(server: LocalModel,
                                                       tmp_path: Any) -> None:
    question = "use search then summarize: duro"

    async def main() -> tuple[list[str], list[Any]]:
        answers, chunks = [], []
        async with duro.Engine(f"sqlite:///{tmp_path}/duro.db") as engine:
            for streamed in (False, True):
                server.reset()
                handle = await engine.start(research, question, streamed,
                                            id=f"oa-local-{streamed}")
                answers.append(await handle.result(timeout=30))
                assert await _steps(handle) == [MODEL, TOOL + "search", MODEL,
                                                TOOL + "summarize", MODEL]
                assert server.stats()["requests"] == 3
                usage = await handle.usage()
                assert usage.by_model["local-small"].calls == 3
                assert usage.total.input_tokens > 0 and usage.total.output_tokens > 0
                chunks = [c.data async for c in handle.stream() if c.kind == "chunk"]
        return answers, chunks

    answers, chunks = run(main(), timeout=90)
    assert answers[0] == answers[1]
    assert answers[0].startswith("Based on 2 tool results: Found duro. Summary of")
    assert "".join(chunks) == answers[1]


# --- outside a workflow, and bad input ---

def test_outside_a_workflow_the_calls_run_directly() -> None:
    result = run(openai_agents.run(agent, "q"), timeout=30)
    assert result.final_output == "The answer is 20."


def test_public_names() -> None:
    assert openai_agents.__all__ == ["MODEL_STEP", "TOOL_STEP_PREFIX", "DurableModel",
                                     "DurableModelProvider", "durable_agent", "is_durable",
                                     "run", "run_streamed", "run_with_approvals"]


def test_bad_input_is_refused() -> None:
    bad = duro.InvalidArgumentError
    with pytest.raises(bad, match=r"agents\.Agent"):
        openai_agents.durable_agent("not an agent")  # type: ignore[arg-type]
    with pytest.raises(bad, match="runs locally"):
        openai_agents.durable_agent(Agent(name="sh", tools=[LocalShellTool(
            executor=lambda request: "")]))
    with pytest.raises(bad, match="names no function tool"):
        openai_agents.durable_agent(agent, at_most_once=["nope"])
    with pytest.raises(bad, match="not a string"):
        openai_agents.durable_agent(agent, at_most_once="add")
    with pytest.raises(bad, match="ModelProvider"):
        openai_agents.DurableModelProvider("openai")  # type: ignore[arg-type]
    with pytest.raises(bad, match="RunConfig"):
        openai_agents.run_streamed(agent, "q", run_config={"model": "x"})  # type: ignore[arg-type]
    with pytest.raises(bad, match="session"):
        run(openai_agents.run(agent, "q", session=SQLiteSession("s")), timeout=10)
    with pytest.raises(bad, match="RetryPolicy"):
        openai_agents.DurableModelProvider(retry=3)  # type: ignore[arg-type]
    with pytest.raises(bad, match="RetryPolicy"):
        openai_agents.durable_agent(agent, retry=3)  # type: ignore[arg-type]
    with pytest.raises(bad, match="timeout"):
        openai_agents.durable_agent(agent, timeout=-1)


def test_durable_agent_copies_once_and_keeps_the_original() -> None:
    durable = openai_agents.durable_agent(agent, at_most_once=["add"])
    assert openai_agents.is_durable(durable) and not openai_agents.is_durable(agent)
    assert openai_agents.durable_agent(durable) is durable
    assert agent.tools == [add, agent.tools[1]] and durable.tools[0] is not add
    assert isinstance(durable.model, openai_agents.DurableModel)
    assert isinstance(agent.model, CountingModel)
    circular = Agent(name="a")
    circular.handoffs = [Agent(name="b", handoffs=[circular])]
    copy = openai_agents.durable_agent(circular)
    assert copy.handoffs[0].handoffs[0] is copy  # type: ignore[union-attr]
    assert json.dumps([t.name for t in durable.tools]) == '["add", "mul"]'


def test_runs_of_an_agent_share_its_steps_and_copies_are_never_stale(tmp_path: Any) -> None:
    from duro.step._step import _registry  # where each Step registers itself, by name

    made: list[tuple[Any, Any]] = []

    async def main() -> None:
        async with duro.Engine(f"sqlite:///{tmp_path}/duro.db") as engine:
            for i in range(2):  # compute names a new RunConfig() (a new provider) each run
                handle = await engine.start(compute, "what is (2 + 3) * 4?",
                                            id=f"oa-share-{i}")
                assert await handle.result(timeout=30) == EXPECTED
                assert await _steps(handle) == [MODEL, TOOL + "add", MODEL, TOOL + "mul",
                                                MODEL]
                made.append((_registry[TOOL + "add"], _registry[MODEL]))

    run(main(), timeout=60)
    assert made[0][0] is made[1][0] and made[0][1] is made[1][1]
    provider = openai_agents.DurableModelProvider()
    first = openai_agents.durable_agent(agent, model_provider=provider)
    again = openai_agents.durable_agent(agent, model_provider=provider)
    # A copy each time (as the agent is now), sharing each tool's durable call (its step).
    assert again is not first
    assert again.tools[0].on_invoke_tool is first.tools[0].on_invoke_tool  # type: ignore[union-attr]
    other = openai_agents.durable_agent(agent, model_provider=provider,
                                        retry=duro.RetryPolicy(max_attempts=2))
    assert other.tools[0].on_invoke_tool is not first.tools[0].on_invoke_tool  # type: ignore[union-attr]
    # An agent changed since (or a clone of it) is copied as it is now: never stale.
    changed = agent.clone(instructions="something else", tools=[agent.tools[0]])
    copy = openai_agents.durable_agent(changed, model_provider=provider)
    assert copy.instructions == "something else"
    assert copy.tools[0].on_invoke_tool is first.tools[0].on_invoke_tool  # type: ignore[union-attr]
