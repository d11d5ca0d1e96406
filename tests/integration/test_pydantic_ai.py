"""pydantic-ai agents on duro (issue 21, ``duro.pydantic_ai``), on both stores: each
model request's usage in ``handle.usage()``; a replay of the recorded history gives the
same output without calling anything; streamed text in ``handle.stream()``; tools that
require approval answered through ``client.approvals`` (approved: the tool runs;
rejected: the model is told why). The kill -9 test is
tests/acceptance/test_pydantic_ai_kill.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCalls, FunctionModel

import duro
from duro._history import EventKind
from duro.errors import InvalidArgumentError
from duro.pydantic_ai import DuroDurability, StepConfig
from duro.testing import replay
from tests.conftest import run, wait_until

CALLS: list[str] = []


def _returns(messages: list[ModelMessage]) -> list[Any]:
    return [p.content for m in messages for p in getattr(m, "parts", ())
            if isinstance(p, ToolReturnPart)]


def plan(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Two tool calls in turn, then an answer made of their results."""
    turn = sum(isinstance(m, ModelResponse) for m in messages)
    CALLS.append(f"model{turn + 1}")
    if turn < 2:
        tool = "search" if turn == 0 else "publish"
        return ModelResponse(parts=[ToolCallPart(tool, {"text": f"q{turn}"}, f"c{turn}")])
    return ModelResponse(parts=[TextPart(" | ".join(map(str, _returns(messages))))])


async def plan_stream(messages: list[ModelMessage], info: AgentInfo
                      ) -> AsyncIterator[str | DeltaToolCalls]:
    """The same, streamed: the answer in four text deltas."""
    reply = plan(messages, info)
    part = reply.parts[0]
    if isinstance(part, ToolCallPart):
        yield {0: _delta(part)}
        return
    assert isinstance(part, TextPart)
    for i in range(0, len(part.content), max(1, len(part.content) // 4)):
        yield part.content[i:i + max(1, len(part.content) // 4)]


def _delta(part: ToolCallPart) -> Any:
    from pydantic_ai.models.function import DeltaToolCall

    return DeltaToolCall(name=part.tool_name, json_args=part.args_as_json_str(),
                         tool_call_id=part.tool_call_id)


def _agent(name: str, **options: Any) -> Agent[None, str]:
    agent: Agent[None, str] = Agent(FunctionModel(plan, stream_function=plan_stream),
                                    name=name, capabilities=[DuroDurability(**options)])

    @agent.tool_plain
    async def search(text: str) -> str:
        CALLS.append(f"search:{text}")
        return f"found {text}"

    @agent.tool_plain(requires_approval=name == "approving")
    async def publish(text: str) -> str:
        CALLS.append(f"publish:{text}")
        return f"published {text}"

    return agent


plain = _agent("plain", stream=None)
streaming = _agent("streaming")
approving = _agent("approving", stream=None)


@duro.workflow(name="pydai.plain")
async def run_plain(prompt: str) -> str:
    return (await plain.run(prompt)).output


@duro.workflow(name="pydai.streaming")
async def run_streaming(prompt: str) -> str:
    return (await streaming.run(prompt)).output


@duro.workflow(name="pydai.approving")
async def run_approving(prompt: str) -> str:
    return (await approving.run(prompt)).output


def test_usage_recorded_and_replay_calls_nothing(any_db_url: str) -> None:
    async def main() -> None:
        CALLS.clear()
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(run_plain, "go", id="pa-usage")
            assert await handle.result(timeout=30) == "found q0 | published q1"
            usage = await handle.usage()
            history = await handle.history()
        assert CALLS == ["model1", "search:q0", "model2", "publish:q1", "model3"]
        assert usage.total.calls == 3 and usage.total.input_tokens > 0
        assert usage.total.output_tokens > 0
        assert set(usage.by_step) == {"plain__model.request"}
        tool = "plain__function_toolset__<agent>.call_tool"
        names = [e.name for e in history if e.kind == EventKind.STEP_COMPLETED]
        assert names == ["plain__model.request", f"{tool}:search", "plain__model.request",
                         f"{tool}:publish", "plain__model.request"]
        CALLS.clear()
        replayed = replay(run_plain, history, run_id=handle.run_id)
        assert replayed.status == "completed" and replayed.result == "found q0 | published q1"
        assert CALLS == []  # every call came from the history

    run(main())


def test_streamed_text_reaches_the_run_stream(any_db_url: str) -> None:
    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(run_streaming, "go", id="pa-stream")
            assert await handle.result(timeout=30) == "found q0 | published q1"
            chunks = [c async for c in handle.stream()]
            usage = await handle.usage()
        text = [c.data for c in chunks if c.kind == "chunk"]
        assert "".join(text) == "found q0 | published q1" and len(text) >= 4
        assert {c.step for c in chunks} == {"streaming__model.request_stream"}
        assert usage.total.calls == 3

    run(main())


@pytest.mark.parametrize("approve", [True, False])
def test_approval_tool_answered_by_duro_approval(any_db_url: str, approve: bool) -> None:
    async def main() -> None:
        CALLS.clear()
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(run_approving, "go", id="pa-approve")
            found: list[duro.ApprovalInfo] = []

            async def pending() -> bool:
                found[:] = (await engine.approvals.list(workflow_id="pa-approve")).approvals
                return bool(found)

            await wait_until(pending, timeout=20)
            [asked] = found
            assert asked.name == "approving.publish"
            assert asked.context == {"agent": "approving", "tool": "publish",
                                     "tool_call_id": "c1", "args": {"text": "q1"}}
            if approve:
                await engine.approvals.approve(asked.approval_id, by="ada")
            else:
                await engine.approvals.reject(asked.approval_id, by="bob", comment="no")
            output = await handle.result(timeout=30)
        if approve:
            assert output == "found q0 | published q1"
            assert CALLS.count("publish:q1") == 1
        else:
            assert output == "found q0 | The tool call was denied by bob: no"
            assert "publish:q1" not in CALLS

    run(main())


def test_bad_options_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="stream must be one of 'text', "
                       "'events', None, not 'tokens'"):
        DuroDurability(stream="tokens")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        DuroDurability(model_step={"retry": 3})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        DuroDurability(approval_timeout=-1)
    with pytest.raises(InvalidArgumentError):
        StepConfig(budgeted="yes")  # type: ignore[arg-type]


def test_outside_a_workflow_the_agent_runs_as_usual() -> None:
    CALLS.clear()
    assert plain.run_sync("go").output == "found q0 | published q1"
    assert CALLS == ["model1", "search:q0", "model2", "publish:q1", "model3"]


@duro.workflow(name="pydai.budgeted")
async def run_budgeted(prompt: str) -> str:
    try:
        return (await plain.run(prompt)).output
    except duro.BudgetExceededError as exc:
        return f"stopped: {exc.unit} {exc.spent:g} of {exc.limit:g}"


def test_budget_stops_the_next_model_request(any_db_url: str) -> None:
    """Model steps are budgeted: once the run's token budget is spent, the next request
    is not made and BudgetExceededError reaches the workflow through agent.run()."""

    async def main() -> None:
        CALLS.clear()
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(run_budgeted, "go", id="pa-budget",
                                        budget=duro.Budget(tokens=10))
            output = await handle.result(timeout=30)
        assert output.startswith("stopped: tokens ") and output.endswith(" of 10")
        assert CALLS == ["model1", "search:q0"]

    run(main())
