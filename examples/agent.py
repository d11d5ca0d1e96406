"""A tool-using research agent on ``duro.openai.chat``, streaming its answer, offline.

The workflow is the classic agent loop: ask the model (a streamed step), run the tools
it calls (``search``, then ``fetch_page``: steps too), hand it the results, until it
answers. The model is ``local_llm.py``, the small OpenAI-compatible server beside this
file, started in this process (or any server: ``--model-url``). Needs the openai
package (``pip install 'duro[openai]'``).

Run it, kill it mid-stream (``kill -9``; it prints its pid), run the same command again::

    python examples/agent.py ["TOPIC"] [--db PATH] [--token-delay 0.05] [--new] [--yes]
                             [--budget USD]

The rerun resumes the run: the model calls and tool calls that finished are read back
from the history (the model is not asked again, no token is spent twice); the call that
was cut restarts, and the terminal shows its earlier chunks were superseded.

Before it publishes its report, the agent waits for a human: ``duro.approval("publish",
...)``. Answer here (y/n), or from another terminal with ``duro approve ID --db PATH``
(``duro approvals --db PATH`` lists what waits); ``--yes`` approves at once. The history
records who approved, and when.

The run has a budget (``duro.Budget(usd=...)``, default $0.01) that the engine checks
before each model call (``@duro.step(budgeted=True)``): once it is spent the call is not
made, ``duro.BudgetExceededError`` reaches the workflow, and the agent wraps up with what
it has. Try ``--budget 0.000002``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
from pathlib import Path
from typing import Any

import openai

import duro
from duro.openai import ChatReply, chat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from local_llm import serve  # the model server beside this file

DEFAULT_TOPIC = "durable execution"
MODEL = "local-agent"
MAX_TURNS = 6
duro.set_model_prices({MODEL: duro.ModelPrice(input_per_mtok=0.5, output_per_mtok=1.5)})

# The "web" the tools read: offline.
PAGES = {
    "https://example.org/durable-execution": (
        "Durable execution records every step of a program in a persistent history. After "
        "a crash the program replays the history and continues from the last step."),
    "https://example.org/llm-retries": (
        "Rate limits are routine for LLM APIs. Honouring Retry-After turns them into "
        "short waits instead of failed jobs."),
    "https://example.org/streaming": (
        "Streaming a model's answer shows progress at once. A durable stream lets a "
        "reader reconnect without gaps."),
}

TOOLS = [
    {"type": "function", "function": {
        "name": "search", "description": "Search the web; returns a snippet and a URL.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                       "required": ["query"]}}},
    {"type": "function", "function": {
        "name": "fetch_page", "description": "Read a web page.",
        "parameters": {"type": "object", "properties": {"url": {"type": "string"}},
                       "required": ["url"]}}},
]

_model_url: list[str] = []
_clients: dict[int, openai.AsyncOpenAI] = {}


def _client() -> openai.AsyncOpenAI:
    """One client per event loop (it holds the connection pool)."""
    loop = id(asyncio.get_running_loop())
    if loop not in _clients:
        _clients[loop] = openai.AsyncOpenAI(base_url=_model_url[0], api_key="local")
    return _clients[loop]


# -- steps: the side effects, each recorded once -----------------------------------------


@duro.step(name="agent.think", retry=duro.RetryPolicy(max_attempts=6, initial_interval=0.5),
           budgeted=True)
async def think(messages: list[dict[str, Any]]) -> ChatReply:
    """One model turn, streamed to the run's stream as it is written."""
    info = duro.step_info()
    print(f"\n[think #{info.seq}, attempt {info.attempt}] asking the model", flush=True)
    return await chat(_client(), model=MODEL, messages=messages, tools=TOOLS,
                      stream=True, provider="local")


@duro.step(name="agent.search")
async def search(query: str) -> str:
    """The page whose text shares the most words with the query."""
    print(f"\n[search] {query!r}", flush=True)
    words = set(query.lower().split())
    url = max(PAGES, key=lambda u: len(words & set(PAGES[u].lower().split())))
    return f"The best match for {query} is {url} (1 of {len(PAGES)} pages)."


@duro.step(name="agent.fetch_page")
async def fetch_page(url: str) -> str:
    """The page's text."""
    print(f"\n[fetch_page] {url}", flush=True)
    return PAGES.get(url.rstrip(".,)"), f"No page at {url}.")


RUN_TOOL = {"search": search, "fetch_page": fetch_page}


# -- the workflow: the agent loop, deterministic, replayed after a crash ----------------


@duro.step(name="agent.publish", at_most_once=True)
async def publish(topic: str, report: str) -> None:
    """The irreversible part, once approved (never twice: at most once)."""
    print(f"\n[publish] the report on {topic!r} is out", flush=True)


@duro.workflow(name="agent.research")
async def research(topic: str) -> str:
    answer = await investigate(topic)
    decision = await duro.approval("publish", {"topic": topic, "report": answer},
                                   timeout=7 * 24 * 3600)
    if not decision.approved:
        why = "no answer within a week" if decision.timed_out else \
            f"rejected by {decision.by}: {decision.comment or 'no comment'}"
        return f"(not published: {why}) {answer}"
    await publish(topic, answer)
    return answer


async def investigate(topic: str) -> str:
    """The agent loop (workflow code: its steps are recorded)."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a careful research agent."},
        {"role": "user", "content": f"Use search, then fetch_page, to research: {topic}"}]
    for _ in range(MAX_TURNS):
        try:
            reply = await think(messages)
        except duro.BudgetExceededError as exc:  # no more model calls: wrap up
            found = [m["content"] for m in messages if m["role"] == "tool"]
            return (f"(budget spent: ${exc.spent:.6f} of ${exc.limit:g}) what the tools "
                    f"found: {' '.join(found) or 'nothing yet'}")
        messages.append(reply.message())
        if not reply.tool_calls:
            return reply.content or ""
        for call in reply.tool_calls:
            tool = RUN_TOOL.get(call.name)
            try:
                result = await tool(**call.args()) if tool else f"No tool {call.name!r}."
            except (ValueError, TypeError) as exc:  # the model's arguments were wrong
                result = f"Bad arguments for {call.name}: {exc}"
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return f"(stopped after {MAX_TURNS} turns)"


# -- the command line ---------------------------------------------------------------------


async def show_stream(handle: duro.WorkflowHandle[str]) -> None:
    """Print the run's stream live: the model's tokens as they arrive."""
    async for item in handle.stream():
        if item.kind == "superseded":
            print(f"\n  [earlier output of {item.step} superseded: attempt "
                  f"{item.attempt} starts over]", flush=True)
        elif item.kind == "chunk":
            print(item.data, end="", flush=True)


async def approve(engine: duro.Engine, workflow_id: str, auto: bool, db: str) -> None:
    """Answer the run's approval request: at once with ``--yes``, else from the terminal
    (when there is one); a decision from another process (``duro approve``) is fine too."""
    while True:
        pending = await engine.approvals.all(workflow_id=workflow_id)
        if pending:
            break
        await asyncio.sleep(0.1)
    request = pending[0]
    print(f"\n\nApproval needed: {request.name} (id {request.approval_id})\n"
          f"  report: {request.context['report']}\n"
          f"  or from another terminal: duro --db sqlite:///{db} approve "
          f"{request.approval_id} [--comment TEXT]   (or: duro ... reject ID)",
          flush=True)
    if auto:
        await engine.approvals.approve(request.approval_id, by="agent.py --yes")
        return
    if not sys.stdin.isatty():
        return  # someone else decides (duro approve / reject)
    answer = await asyncio.to_thread(input, "Publish it? [y/N] ")
    with contextlib.suppress(duro.ApprovalNotPendingError):  # decided elsewhere meanwhile
        await engine.approvals.decide(request.approval_id,
                                      approved=answer.strip().lower() in ("y", "yes"),
                                      by=os.environ.get("USER") or "terminal")


async def run(args: argparse.Namespace) -> int:
    slug = re.sub(r"[^a-z0-9]+", "-", args.topic.lower()).strip("-")[:60] or "topic"
    workflow_id = f"agent-{slug}"
    db = os.path.abspath(args.db)
    print(f"duro agent (pid {os.getpid()}), workflow id {workflow_id}, database {db}\n"
          f"Kill it mid-stream (`kill -9 {os.getpid()}`) and run the same command again:"
          f" it resumes, asking the model only what it had not answered.", flush=True)
    async with duro.Engine(f"sqlite:///{db}") as engine:
        handle = await engine.start(research, args.topic, id=workflow_id,
                                    on_reuse="allow" if args.new else "use_existing",
                                    budget=duro.Budget(usd=args.budget))
        printer = asyncio.create_task(show_stream(handle))
        approver = asyncio.create_task(approve(engine, workflow_id, args.yes, db))
        try:
            answer = await handle.result()
        except duro.WorkflowFailedError as exc:
            print(f"\nThe run failed: {exc.cause}", file=sys.stderr)
            return 1
        finally:
            approver.cancel()
        await printer
        usage = await handle.usage()
    print(f"\n\nAnswer: {answer}\n"
          f"Usage: {usage.total.calls} model calls, {usage.total.input_tokens} tokens in, "
          f"{usage.total.output_tokens} out, ${usage.cost:.6f}\n"
          f"See the history: duro history {workflow_id} --db {db}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A durable tool-using agent, offline.")
    parser.add_argument("topic", nargs="?", default=DEFAULT_TOPIC)
    parser.add_argument("--db", default="duro-agent.db", help="SQLite file of the runs")
    parser.add_argument("--model-url", help="an OpenAI-compatible base URL (default: a "
                        "local_llm server started in this process)")
    parser.add_argument("--token-delay", type=float, default=0.03,
                        help="the local model's seconds per streamed token")
    parser.add_argument("--new", action="store_true", help="start a fresh run")
    parser.add_argument("--budget", type=float, default=0.01, metavar="USD",
                        help="the run's budget in US dollars (default 0.01)")
    parser.add_argument("--yes", action="store_true",
                        help="approve the publication at once (no question asked)")
    args = parser.parse_args(argv)
    server = None
    if args.model_url is None:
        server = serve(token_delay=args.token_delay)
    _model_url[:] = [args.model_url or server.url]  # type: ignore[union-attr]
    try:
        return asyncio.run(run(args))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
