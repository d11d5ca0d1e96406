"""Subprocess app for tests/acceptance/test_langgraph_kill.py: a LangGraph graph run by
``duro.langgraph.durable_graph``: two model-like nodes (``plan``, ``answer``), two tool
nodes (``search``, ``fetch``), then ``review``, a workflow node that notifies (a step
through ``step_task``) and ``interrupt()``s for a human's answer.

Every node writes to a ledger file (``LGRAPH_LEDGER``): ``enter N`` when its execution
begins, ``half N`` midway, ``done N`` when it returns; ``notify`` is the review's side
effect. ``--pause N`` blocks node N after its ``half`` line (to be SIGKILLed there).

``python lgraph_app.py --url URL --id ID [--start] [--pause NODE]`` starts run ID (with
``--start``) and serves as its worker until it ends, then prints its result as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

import duro
from duro.langgraph import durable_graph, step_task

PAUSE = {"node": ""}


class State(TypedDict, total=False):
    question: str
    plan: list[str]
    hits: list[str]
    pages: list[str]
    answer: str
    verdict: str


def ledger(line: str) -> None:
    with open(os.environ["LGRAPH_LEDGER"], "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


async def _node(name: str) -> None:
    ledger(f"enter {name}")
    await asyncio.sleep(0.01)
    ledger(f"half {name}")
    if PAUSE["node"] == name:
        await asyncio.Event().wait()  # until SIGKILL


async def plan(state: State) -> State:
    await _node("plan")
    words = state["question"].split()
    ledger("done plan")
    return {"plan": [f"look up {w}" for w in words]}


async def search(state: State) -> State:
    await _node("search")
    ledger("done search")
    return {"hits": [f"https://example.org/{p.split()[-1]}" for p in state["plan"]]}


async def fetch(state: State) -> State:
    await _node("fetch")
    ledger("done fetch")
    return {"pages": [f"page of {u}" for u in state["hits"]]}


async def answer(state: State) -> State:
    await _node("answer")
    ledger("done answer")
    return {"answer": f"based on {len(state['pages'])} pages: " + "; ".join(state["pages"])}


@duro.step(name="lgraph_app.notify")
async def notify(text: str) -> str:
    ledger("notify")
    return f"notified: {text[:20]}"


async def review(state: State) -> State:
    sent = await step_task(notify)(state["answer"])
    verdict = interrupt({"sent": sent, "answer": state["answer"]})
    return {"verdict": f"{verdict} ({sent})"}


builder = StateGraph(State)
for name, fn in [("plan", plan), ("search", search), ("fetch", fetch), ("answer", answer),
                 ("review", review)]:
    builder.add_node(name, fn)
builder.add_edge(START, "plan")
builder.add_edge("plan", "search")
builder.add_edge("search", "fetch")
builder.add_edge("fetch", "answer")
builder.add_edge("answer", "review")
builder.add_edge("review", END)

research = durable_graph(builder.compile(), name="lgraph_app.research",
                         workflow_nodes={"review"})


async def amain(args: argparse.Namespace) -> int:
    PAUSE["node"] = args.pause
    async with duro.Engine(args.url, lease=1.0, poll_interval=0.05) as engine:
        if args.start:
            await engine.start(research, {"question": "durable graphs"}, id=args.id)
        result: Any = await engine.get_handle(args.id).result(timeout=120)
    print(json.dumps(result), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--start", action="store_true")
    parser.add_argument("--pause", default="")
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
