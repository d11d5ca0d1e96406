"""duro.langgraph.durable_graph in one process, on SQLite and PostgreSQL: step retries,
the custom, updates, values and messages stream modes in the run's stream (each chunk
once across a replay), an interrupt answered by a duro approval or a signal with the
side effect before it run once, and bad input refused."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

import duro
import duro.langgraph
from duro.langgraph import durable_graph, step_task
from tests.conftest import run, wait_until

CALLS: dict[str, int] = {}


class S(TypedDict, total=False):
    n: int
    words: list[str]
    decision: dict[str, Any]


def _count(name: str) -> int:
    CALLS[name] = CALLS.get(name, 0) + 1
    return CALLS[name]


async def think(state: S) -> S:
    writer = get_stream_writer()
    for w in ("a", "b"):
        writer({"token": w})
    if _count("think") == 1:
        raise RuntimeError("model busy")  # the step's retry runs it again
    return {"n": state["n"] + 1, "words": ["a", "b"]}


def tool(state: S) -> S:  # a sync node: the step runs it in a thread
    _count("tool")
    return {"n": state["n"] * 10}


@duro.step(name="lg_test.publish", retry=duro.RetryPolicy(max_attempts=1))
async def publish(n: int) -> str:
    _count("publish")
    return f"draft {n}"


async def gate(state: S) -> S:
    draft = await step_task(publish)(state["n"])
    decision = interrupt({"draft": draft})
    return {"decision": decision}


def _builder() -> StateGraph[S]:
    b = StateGraph(S)
    b.add_node("think", think)
    b.add_node("tool", tool)
    b.add_node("gate", gate)
    b.add_edge(START, "think")
    b.add_edge("think", "tool")
    b.add_edge("tool", "gate")
    b.add_edge("gate", END)
    return b


GRAPH = durable_graph(_builder().compile(), name="lg_test.graph", workflow_nodes={"gate"},
                      retry=duro.RetryPolicy(max_attempts=3, initial_interval=0.01),
                      interrupts="approval")


def test_steps_stream_and_an_approval(any_db_url: str) -> None:
    CALLS.clear()

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(GRAPH, {"n": 1}, id="g1")

            async def pending() -> bool:
                return bool((await engine.approvals.list()).approvals)

            await wait_until(pending, timeout=20)
            page = await engine.approvals.list()
            assert page.approvals[0].name == "gate"
            assert page.approvals[0].context == {"draft": "draft 20"}
            await engine.approvals.approve(page.approvals[0].approval_id, by="ada")
            result = await handle.result(timeout=20)
            assert result["n"] == 20 and result["words"] == ["a", "b"]
            assert result["decision"]["approved"] is True
            assert result["decision"]["by"] == "ada"
            chunks = [c async for c in handle.stream()]
            kept = [c.data for c in chunks if c.kind == "chunk" and not c.superseded]
            assert kept == [{"mode": "custom", "node": "think", "data": {"token": "a"}},
                            {"mode": "custom", "node": "think", "data": {"token": "b"}},
                            {"mode": "updates", "node": "think",
                             "data": {"n": 2, "words": ["a", "b"]}},
                            {"mode": "updates", "node": "tool", "data": {"n": 20}}]
            kinds = [(e.kind, e.name) for e in await handle.history()]
            assert ("step_retrying", "lg_test.graph.think") in kinds

    run(main())
    # think: one failed attempt and one retry; gate ran twice (before and after the
    # interrupt) but its step once.
    assert CALLS == {"think": 2, "tool": 1, "publish": 1}


async def chat(state: S) -> S:
    model = GenericFakeChatModel(messages=iter([AIMessage(content="hi there", id="m1")]))
    reply = await model.ainvoke([HumanMessage(content="hello")])
    if _count("chat") == 1:
        raise RuntimeError("connection reset")  # after streaming: the retry supersedes
    return {"words": str(reply.content).split()}


async def ask(state: S) -> S:  # a workflow node: async, no thread
    return {"decision": {"answer": interrupt({"words": state["words"]})}}


def _chat_builder() -> StateGraph[S]:
    b = StateGraph(S)
    b.add_node("chat", chat)
    b.add_node("ask", ask)
    b.add_edge(START, "chat")
    b.add_edge("chat", "ask")
    b.add_edge("ask", END)
    return b


CHAT = durable_graph(_chat_builder().compile(), name="lg_test.chat", workflow_nodes={"ask"},
                     retry=duro.RetryPolicy(max_attempts=2, initial_interval=0.01),
                     stream_mode=("values", "messages"))


def test_values_and_messages_once_across_a_replay(any_db_url: str) -> None:
    CALLS.clear()

    async def main() -> None:
        async with duro.Engine(any_db_url) as engine:
            handle = await engine.start(CHAT, {"n": 1}, id="c1")

            async def interrupted() -> None:
                # the interrupt's values chunk is written when the run starts waiting
                async for c in handle.stream():
                    if c.kind == "chunk" and c.data["mode"] == "values" and (
                            "__interrupt__" in c.data["data"]):
                        return

            await asyncio.wait_for(interrupted(), timeout=20)
        # A new engine replays the run from its history: the graph runs again from its
        # start, to the interrupt and past it; nothing already streamed is written again.
        async with duro.Engine(any_db_url) as engine:
            handle = engine.get_handle("c1")
            await handle.signal(duro.langgraph.RESUME_SIGNAL, "yes")
            result = await handle.result(timeout=20)
            assert result == {"n": 1, "words": ["hi", "there"],
                              "decision": {"answer": "yes"}}
            chunks = [c for c in [c async for c in handle.stream()] if c.kind == "chunk"]
        messages = [(c.attempt, c.superseded, c.data["node"], c.data["data"]["message"])
                    for c in chunks if c.data["mode"] == "messages"]
        assert [(a, s, n) for a, s, n, _ in messages] == [(1, True, "chat")] * 3 + [
            (2, False, "chat")] * 3
        kept = [m for _, s, _, m in messages if not s]
        assert [m["content"] for m in kept] == ["hi", " ", "there"]
        assert {m["type"] for m in kept} == {"AIMessageChunk"} and kept[0]["id"] == "m1"
        assert all(c.data["data"]["metadata"]["langgraph_node"] == "chat"
                   for c in chunks if c.data["mode"] == "messages")
        values = [c.data for c in chunks if c.data["mode"] == "values"]
        interrupt_id = values[2]["data"]["__interrupt__"][0]["id"]
        assert values == [
            {"mode": "values", "node": "", "data": {"n": 1}},
            {"mode": "values", "node": "", "data": {"n": 1, "words": ["hi", "there"]}},
            {"mode": "values", "node": "", "data": {
                "n": 1, "words": ["hi", "there"],
                "__interrupt__": [{"id": interrupt_id, "value": {"words": ["hi", "there"]}}]}},
            # on resume LangGraph shows the state it resumes from, then the next step's
            {"mode": "values", "node": "", "data": {"n": 1, "words": ["hi", "there"]}},
            {"mode": "values", "node": "", "data": {
                "n": 1, "words": ["hi", "there"], "decision": {"answer": "yes"}}}]
        assert all(c.execution == "workflow" for c in chunks if c.data["mode"] == "values")

    run(main())
    assert CALLS == {"chat": 2}


def test_bad_input_refused() -> None:
    with pytest.raises(duro.InvalidArgumentError):
        durable_graph(_builder(), name="x")  # type: ignore[arg-type]
    with pytest.raises(duro.InvalidArgumentError):
        durable_graph(_builder().compile(), name="x2", workflow_nodes={"nope"})
    with pytest.raises(duro.InvalidArgumentError,
                       match="interrupts must be one of 'signal', 'approval', not 'email'"):
        durable_graph(_builder().compile(), name="x3",
                      interrupts="email")  # type: ignore[arg-type]
    with pytest.raises(duro.InvalidArgumentError):
        durable_graph(_builder().compile(), name="x4", stream_mode=("debug",))
    with pytest.raises(duro.InvalidArgumentError):
        durable_graph(_builder().compile(), name="x5", stream_mode="messages, values")
    durable_graph(_builder().compile(), name="x6", stream_mode="values")  # one mode: ok
    with pytest.raises(duro.InvalidArgumentError):
        step_task(publish.fn)  # type: ignore[arg-type]


def test_public_names_and_import_duro_does_not_import_langgraph() -> None:
    assert duro.langgraph.__all__ == ["RESUME_SIGNAL", "DuroSaver", "SaverLoopError",
                                      "durable_graph", "step_task"]
    code = "import sys, duro; print('langgraph' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
