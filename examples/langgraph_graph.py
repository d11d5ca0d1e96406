"""A LangGraph graph run durably by duro, offline (``pip install 'duro[langgraph]'``).

Four nodes are steps (``plan`` and ``write``, model-like; ``search`` and ``fetch``,
tools): each runs once, and after a crash (``kill -9`` it, run it again) the finished
ones are read back from the history. ``review`` is a workflow node: it notifies the
reviewer (a step, through ``step_task``) and ``interrupt()``s; the run waits durably
for a duro approval, answered here (``--yes``) or by ``duro approve ID --db PATH``.
The notification is sent once, however often LangGraph re-runs the node.

    python examples/langgraph_graph.py ["QUESTION"] [--db PATH] [--new] [--yes]

The checkpointer is shown too: ``DuroSaver`` keeps a plain (non-durable) invocation's
checkpoints in the same database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

import duro
from duro.langgraph import DuroSaver, durable_graph, step_task


class State(TypedDict, total=False):
    question: str
    plan: list[str]
    hits: list[str]
    pages: list[str]
    draft: str
    verdict: str


async def plan(state: State) -> State:  # a model call, deterministic here
    return {"plan": [f"find {w}" for w in state["question"].split()[:3]]}


async def search(state: State) -> State:  # a tool
    return {"hits": [f"https://example.org/{p.split()[-1]}" for p in state["plan"]]}


async def fetch(state: State) -> State:  # a tool
    await asyncio.sleep(0.5)  # time to kill -9 it
    return {"pages": [f"notes from {u}" for u in state["hits"]]}


async def write(state: State) -> State:  # a model call
    return {"draft": f"{state['question']}: " + "; ".join(state["pages"])}


@duro.step(name="langgraph_example.notify")
async def notify(draft: str) -> str:
    print(f"  (notifying the reviewer: {draft[:40]}...)", flush=True)
    return "sent"


async def review(state: State) -> State:
    await step_task(notify)(state["draft"])  # once, across the interrupt
    decision = interrupt({"draft": state["draft"]})
    return {"verdict": "published" if decision["approved"] else "dropped"}


def build() -> StateGraph[State]:
    builder = StateGraph(State)
    for name, fn in [("plan", plan), ("search", search), ("fetch", fetch),
                     ("write", write), ("review", review)]:
        builder.add_node(name, fn)
    builder.add_edge(START, "plan")
    for a, b in [("plan", "search"), ("search", "fetch"), ("fetch", "write"),
                 ("write", "review"), ("review", END)]:
        builder.add_edge(a, b)
    return builder


research = durable_graph(build().compile(), name="langgraph_example.research",
                         workflow_nodes={"review"}, interrupts="approval")


async def amain(args: argparse.Namespace) -> int:
    url = f"sqlite:///{os.path.abspath(args.db)}"
    print(f"pid {os.getpid()}; database {args.db}", flush=True)
    async with duro.Engine(url) as engine:
        run_id = "langgraph-example"
        if args.new:
            run_id += f"-{os.getpid()}"
        handle = await engine.start(research, {"question": args.question}, id=run_id)
        printer = asyncio.ensure_future(_show(handle))
        while not (await handle.describe()).status.is_terminal:
            page = await engine.approvals.list(workflow="langgraph_example.research")
            for item in page.approvals:
                if item.workflow_id == run_id:
                    ok = args.yes or (await asyncio.to_thread(
                        input, f"publish {item.context['draft']!r}? [y/n] ")).startswith("y")
                    await (engine.approvals.approve if ok else engine.approvals.reject)(
                        item.approval_id, by="example")
            await asyncio.sleep(0.2)
        result = await handle.result()
        await printer
    print(f"verdict: {result['verdict']}")
    # The checkpointer on the same database: an ordinary LangGraph invocation.
    print("the same graph, invoked plainly with DuroSaver as its checkpointer "
          "(not durable: its nodes run again):")
    async with DuroSaver(url) as saver:
        plain = build().compile(checkpointer=saver)
        config = {"configurable": {"thread_id": run_id}}
        await plain.ainvoke({"question": args.question}, config)
        steps = [t async for t in saver.alist(config)]
        print(f"DuroSaver kept {len(steps)} checkpoints of thread {run_id!r}")
    return 0


async def _show(handle: duro.WorkflowHandle[object]) -> None:
    async for chunk in handle.stream():
        if chunk.kind == "chunk" and not chunk.superseded:
            print(f"  {chunk.data['node']}: {chunk.data['data']}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question", nargs="?", default="durable graph execution")
    parser.add_argument("--db", default="langgraph_example.db")
    parser.add_argument("--new", action="store_true", help="start a new run")
    parser.add_argument("--yes", action="store_true", help="approve at once")
    return asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
