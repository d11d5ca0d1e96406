"""pydantic-ai MCP toolsets on duro, against a live MCP server (stdio subprocess).

The server (``mcp_ledger_server.py``) appends every call it receives to a ledger file:
the test counts the calls the server really got, across an engine restart.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("pydantic_ai")
# pydantic_ai.mcp raises ImportError (not ModuleNotFoundError) without fastmcp's client,
# which comes with pydantic-ai-slim[mcp] (the dev extra).
pytest.importorskip("pydantic_ai.mcp", exc_type=ImportError)

from fastmcp.client.transports import PythonStdioTransport
from pydantic_ai import Agent
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

import duro
from duro._history import EventKind
from duro.pydantic_ai import DuroDurability
from tests.conftest import run, wait_until

SERVER = Path(__file__).with_name("mcp_ledger_server.py")
LEDGER = Path(tempfile.gettempdir()) / f"duro-mcp-ledger-{os.getpid()}"
MODEL_CALLS: list[int] = []


def _ledger() -> list[str]:
    return LEDGER.read_text().splitlines() if LEDGER.exists() else []


def plan(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Call the server's two tools in turn, then answer with their results."""
    turn = sum(isinstance(m, ModelResponse) for m in messages)
    MODEL_CALLS.append(turn)
    if turn < 2:
        tool = "search" if turn == 0 else "publish"
        return ModelResponse(parts=[ToolCallPart(tool, {"text": f"q{turn}"}, f"c{turn}")])
    returns = [p.content for m in messages for p in getattr(m, "parts", ())
               if isinstance(p, ToolReturnPart)]
    return ModelResponse(parts=[TextPart(" | ".join(map(str, returns)))])


ledger_server = MCPToolset(
    PythonStdioTransport(SERVER, args=[str(LEDGER)], python_cmd=sys.executable,
                         keep_alive=False),
    id="ledger")
agent: Agent[None, str] = Agent(FunctionModel(plan), name="mcpagent", toolsets=[ledger_server],
                                capabilities=[DuroDurability(stream=None)])


@duro.workflow(name="pydai.mcp")
async def run_mcp(prompt: str) -> str:
    output = (await agent.run(prompt)).output
    # Held here so the test can stop the engine after the agent ran, and resume the
    # run on a new engine: it replays agent.run() from the history.
    await duro.wait_for_signal("finish")
    return output


TOOL = "mcpagent__mcp_server__ledger"
STEPS = [f"{TOOL}.get_tools", "mcpagent__model.request", f"{TOOL}.call_tool",
         "mcpagent__model.request", f"{TOOL}.call_tool", "mcpagent__model.request"]


def test_mcp_calls_are_steps_and_a_restarted_engine_calls_the_server_no_more(
        db_url: str) -> None:
    """Each MCP discovery and call is a duro step; a run resumed on a new engine replays
    agent.run() from the history: the server is not even started, its tools not called,
    and the result is an uninterrupted run's. SQLite only: the MCP path is the same on
    both stores, and each MCP step starts the server (about a second here)."""

    async def completed_steps(handle: duro.WorkflowHandle[str]) -> list[str]:
        return [e.name or "" for e in await handle.history() if e.kind == EventKind.STEP_COMPLETED]

    async def main() -> None:
        LEDGER.unlink(missing_ok=True)
        async with duro.Engine(db_url) as engine:
            whole = await engine.start(run_mcp, "go", id="mcp-whole")
            await whole.signal("finish", None)
            expected = await whole.result(timeout=30)
            assert await completed_steps(whole) == STEPS
            usage = await whole.usage()
            assert usage.total.calls == 3 and usage.total.input_tokens > 0
            assert set(usage.by_step) == {"mcpagent__model.request"}
            assert [x for x in _ledger() if x != "start"] == ["search:q0", "publish:q1"]

            cut = await engine.start(run_mcp, "go", id="mcp-cut")

            async def agent_done() -> bool:
                return await completed_steps(cut) == STEPS

            await wait_until(agent_done, timeout=30)
        # The engine is gone with the run waiting for its signal, after the agent ran.
        before, MODEL_CALLS[:] = _ledger(), []
        assert [x for x in before if x != "start"] == ["search:q0", "publish:q1"] * 2
        async with duro.Engine(db_url) as engine:
            resumed = engine.get_handle("mcp-cut")
            await resumed.signal("finish", None)
            assert await resumed.result(timeout=30) == expected == "found q0 | published q1"
            assert (await resumed.usage()).total.calls == 3
        assert _ledger() == before  # no server start, no tool call
        assert MODEL_CALLS == []

    try:
        run(main())
    finally:
        LEDGER.unlink(missing_ok=True)
