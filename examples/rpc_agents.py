"""Agent to agent, durably: a ``planner`` agent delegates research questions to a
``researcher`` agent that another team runs as a deployment of its own (docs/rpc.md).

* the researcher exposes ``researcher.answer`` (``@duro.workflow(expose=True)``): an agent
  loop whose tool calls (``search``, ``read``) are steps of its own run, in its own
  database;
* the planner's ``planner.brief`` splits a goal into questions and asks the researcher all
  of them at once through a typed stub (``RESEARCHER.answer(question)``: a ``duro.call``
  each, concurrent, each answered exactly once), then writes the brief from the answers.

The agents' "model" is a few deterministic rules over a small built-in corpus, so the
whole thing runs offline and gives the same brief every time; a real one would call an
LLM in the same steps (see ``agent.py``).

Run it (two ``duro serve --worker`` processes on loopback, two SQLite files)::

    python examples/rpc_agents.py ["GOAL"] [--dir PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import duro

CORPUS = {
    "durable execution": "Durable execution records each step's result so that a crashed "
                         "program resumes where it stopped instead of starting over.",
    "exactly once": "An operation id derived from the caller's run makes a retried remote "
                    "start find the same operation: the work is done once.",
    "callbacks": "The callee posts the outcome to the caller, signed with HMAC; polling "
                 "takes over when callbacks cannot get through.",
    "agents": "Agents are long-running loops of model calls and tool calls, each of which "
              "is worth recording.",
}


# -- the researcher agent (one deployment) -----------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Answer:
    """What the researcher found for one question, and from where."""

    question: str
    text: str
    topics: list[str]


@duro.step(name="researcher.search")
async def search(question: str) -> list[str]:
    words = set(re.findall(r"\w+", question.lower()))
    return [topic for topic in CORPUS if words & set(topic.split())]


@duro.step(name="researcher.read")
async def read(topic: str) -> str:
    return CORPUS[topic]


@duro.workflow(name="researcher.answer", expose=True)
async def answer(question: str) -> Answer:
    """The research loop: search, read what was found, answer from it."""
    topics = await search(question)
    notes = [await read(topic) for topic in topics]
    text = " ".join(notes) if notes else "Nothing in the corpus answers that."
    return Answer(question=question, text=text, topics=topics)


# -- the planner agent (another deployment) ----------------------------------------------


class Researcher(Protocol):
    """The researcher deployment's operations, as the planner calls them."""

    async def answer(self, question: str) -> Answer: ...


RESEARCHER = duro.Endpoint(
    url=os.environ.get("RESEARCHER_URL", "http://127.0.0.1:8235"),
    callback_url=os.environ.get("PLANNER_URL") or None,
).stub(Researcher, prefix="researcher.", timeout=120)
"""Typed: ``await RESEARCHER.answer(q)`` is an ``Answer`` to mypy and at run time."""


@duro.step(name="planner.plan")
async def plan(goal: str) -> list[str]:
    return [f"What is {part.strip()}?" for part in re.split(r",| and ", goal) if part.strip()]


@duro.workflow(name="planner.brief")
async def brief(goal: str) -> str:
    questions = await plan(goal)
    # Every question at once: concurrent durable calls, each answered exactly once.
    answers = await asyncio.gather(*(RESEARCHER.answer(q) for q in questions))
    lines = [f"Brief: {goal}"]
    lines += [f"- {a.question} {a.text} [{', '.join(a.topics) or 'no source'}]"
              for a in answers]
    return "\n".join(lines)


# -- running both agents locally ----------------------------------------------------------


def _listen() -> tuple[int, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port, f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def _deployment(name: str, db: Path, port: int, env: dict[str, str]) -> Iterator[None]:
    """``duro serve rpc_agents --worker``: one agent's deployment, stopped on exit."""
    path = os.pathsep.join([str(Path(__file__).resolve().parent),
                            os.environ.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [sys.executable, "-m", "duro", "--db", f"sqlite:///{db}", "serve", "rpc_agents",
         "--worker", "--port", str(port)], env={**os.environ, **env, "PYTHONPATH": path},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready = proc.stdout.readline() if proc.stdout else ""
    if "duro serve ready" not in ready:
        proc.kill()
        raise SystemExit(f"the {name} did not start: {ready}")
    print(f"  {name}: {ready.strip()}")
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


async def _ask(planner_url: str, goal: str) -> str:
    async with duro.Client(planner_url) as client:
        brief_id = "brief-" + hashlib.sha256(goal.encode()).hexdigest()[:12]
        handle = await client.start(brief, goal, id=brief_id)
        result: str = await handle.result(timeout=120)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("goal", nargs="?",
                        default="durable execution, exactly once and callbacks")
    parser.add_argument("--dir", help="the two databases' folder (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(args.dir or tmp)
        os.makedirs(where, exist_ok=True)
        (researcher_port, researcher_url), (planner_port, planner_url) = _listen(), _listen()
        print("starting the two agents' deployments:")
        with _deployment("researcher", where / "researcher.db", researcher_port, {}), \
                _deployment("planner", where / "planner.db", planner_port, {
                    "RESEARCHER_URL": researcher_url, "PLANNER_URL": planner_url,
                    "DURO_CALLBACK_SECRET": os.urandom(16).hex()}):
            print(asyncio.run(_ask(planner_url, args.goal)))


if __name__ == "__main__":
    main()
