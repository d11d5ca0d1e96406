"""A research agent that survives ``kill -9``: duro's first demo.

The workflow plans sub-questions, then for each one (in parallel) searches a small
built-in corpus and asks a simulated, flaky LLM (rate limits and transient errors,
retried by duro), waits out a durable cool-down timer, and writes a report. No
network, no API keys: everything is simulated in this file.

Run it, kill it at any moment, run the same command again::

    python examples/research_agent.py                  # ~15 s
    python examples/research_agent.py "sqlite" --fast  # ~1 s, for tests

The workflow id is derived from the topic, so the second command finds the first
one's run in ``duro-demo.db`` and resumes it: finished steps are read back from the
history instead of being executed again.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shlex
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import duro

T = TypeVar("T")

DEFAULT_TOPIC = "durable execution for AI agents"

# The "web" our agent searches: a few passages, offline.
CORPUS: dict[str, str] = {
    "durable-execution": (
        "Durable execution records every step of a program in a persistent log. After a "
        "crash the program replays the log and continues from the last completed step "
        "instead of starting over."
    ),
    "workflows-and-steps": (
        "Workflow code orchestrates and must be deterministic, while steps perform the side "
        "effects such as API calls. Each step result is saved once and reused on replay."
    ),
    "retries": (
        "Rate limits (HTTP 429) and transient 503 errors are routine for LLM APIs. A retry "
        "policy with exponential backoff that honors Retry-After turns them into short "
        "delays instead of failed jobs."
    ),
    "idempotency": (
        "A step can run twice if the process dies after its side effect but before its "
        "result is saved. A stable idempotency key sent with the request lets the remote "
        "API deduplicate the repeat."
    ),
    "durable-timers": (
        "Durable timers let a workflow wait for seconds or days without holding a thread. "
        "The wake-up time is stored, and any worker resumes the run when it is due."
    ),
    "ai-agents": (
        "AI agents chain many slow, costly and flaky LLM calls. Without durability a crash "
        "at step nine of ten repeats all ten calls, paying twice and possibly getting "
        "different answers."
    ),
    "embedded-sqlite": (
        "An embedded engine on SQLite needs no server: the history lives in one file next "
        "to the application. Synchronous commits mean a crash cannot lose a step that was "
        "reported as done."
    ),
    "pitfalls": (
        "Common pitfalls are reading the clock or random numbers directly in workflow code, "
        "changing workflow code while runs are in flight, and non-idempotent side effects "
        "inside steps."
    ),
    "observability": (
        "Because the history is an append-only log of events, every run can be inspected "
        "afterwards: which step ran, how many attempts it took, and why it failed."
    ),
}
_STOPWORDS = frozenset({"what", "does", "how", "the", "and", "for", "with", "are", "why",
                        "from", "into", "when", "this", "that", "about", "matter", "work"})


@dataclass
class Simulation:
    """Knobs of the simulated outside world (not part of the workflow's durable input)."""

    latency: float = 1.0
    """Scale of the simulated network latency (0 with ``--fast``)."""
    retry_after: float = 1.0
    """Scale of the Retry-After delays the fake LLM asks for."""


SIM = Simulation()

# Labels of the steps this process executed. Display only: workflow code reads it to
# say "replayed" vs "done", and must never branch its real logic on it.
_RAN_HERE: set[str] = set()
_REPLAYED: list[str] = []


def say(label: str, message: str) -> None:
    """Print one progress line at once (stdout may be a pipe)."""
    print(f"  [{label:<9}] {message}", flush=True)


def _executing(label: str, what: str) -> None:
    _RAN_HERE.add(label)
    say(label, f"executing step #{duro.step_info().seq}: {what}")


async def _latency(low: float, high: float) -> None:
    await asyncio.sleep(SIM.latency * random.uniform(low, high))


def _words(text: str) -> set[str]:
    # Crude stemming ("replays" matches "replay"); good enough for nine passages.
    return {w.removesuffix("s") for w in re.findall(r"[a-z0-9]+", text.lower())
            if len(w) > 2 and w not in _STOPWORDS}


def _first_sentence(text: str) -> str:
    return text.split(". ")[0].rstrip(".") + "."


# -- steps: where side effects live; each result is recorded once --------------------


@dataclass
class Snippet:
    doc: str
    text: str


@dataclass
class Finding:
    question: str
    answer: str
    sources: list[str]


@duro.step(name="research.plan")
async def plan(topic: str) -> list[str]:
    """Split the topic into sub-questions (a real agent would ask an LLM)."""
    _executing("plan", f"breaking {topic!r} into sub-questions")
    await _latency(0.6, 1.0)
    return [
        f"What is {topic}, and how does replay after a crash work?",
        f"Why does {topic} matter for slow, flaky LLM calls?",
        f"What are the pitfalls of {topic}, and how are retries made safe?",
    ]


@duro.step(name="research.search")
async def search(n: int, topic: str, question: str) -> list[Snippet]:
    """Find the two passages that best match the question (its own words count most)."""
    short = question if len(question) <= 60 else question[:57] + "..."
    _executing(f"search {n}", f"searching the corpus for {short!r}")
    await _latency(0.8, 1.4)
    general = _words(topic)
    specific = _words(question) - general

    def score(doc: str) -> int:
        words = _words(f"{doc} {CORPUS[doc]}")
        return 3 * len(specific & words) + len(general & words)

    ranked = sorted(CORPUS, key=score, reverse=True)
    return [Snippet(doc=doc, text=CORPUS[doc]) for doc in ranked[:2]]


LLM_RETRY = duro.RetryPolicy(max_attempts=6, initial_interval=0.3, backoff=2.0,
                             max_interval=5.0)


@duro.step(name="research.ask_llm", retry=LLM_RETRY)
async def ask_llm(n: int, question: str, snippets: list[Snippet]) -> str:
    """Answer from the snippets, through a fake LLM API that is rate limited and flaky."""
    info = duro.step_info()
    label = f"llm {n}"
    # The key is stable across retries and crashes: send it with any request that must
    # not take effect twice (many APIs accept an Idempotency-Key header).
    _executing(label, f"attempt {info.attempt}, Idempotency-Key {info.idempotency_key}")
    await _latency(1.0, 1.6)
    # The fake provider's mood is a function of the key and the attempt: each run sees
    # different failures, a resumed run the same ones; attempt 3 and later succeed.
    roll = random.Random(f"{info.idempotency_key}/{info.attempt}").random()
    if info.attempt <= 2 and roll < 0.6 / info.attempt:
        wait = round(SIM.retry_after * (1.0 + roll) or 0.05, 2)
        say(label, f"attempt {info.attempt}: 429 rate limited, retry after {wait:g}s")
        raise duro.RetryAfterError("429 rate limited", retry_after=wait)
    if info.attempt <= 2 and roll > 0.8:
        say(label, f"attempt {info.attempt}: 503 upstream overloaded, retry with backoff")
        raise ConnectionError("503 upstream overloaded")
    cited = " ".join(f"{_first_sentence(s.text)} [{s.doc}]" for s in snippets)
    return f"{cited} (answered on attempt {info.attempt})"


@duro.step(name="research.write_report")
async def write_report(topic: str, findings: list[Finding]) -> str:
    """Assemble the final report."""
    _executing("report", f"writing the report from {len(findings)} findings")
    await _latency(0.8, 1.2)
    sources = sorted({doc for f in findings for doc in f.sources})
    lines = [f"# Research report: {topic}", ""]
    for i, f in enumerate(findings, 1):
        lines += [f"{i}. {f.question}", f"   {f.answer}", ""]
    lines.append(f"Sources ({len(sources)}): {', '.join(sources)}")
    return "\n".join(lines)


# -- the workflow: deterministic orchestration, replayed after a crash ---------------


async def _track(label: str, call: Awaitable[T], summary: Callable[[T], str]) -> T:
    """Await a step and say whether this process ran it or read it from the history."""
    result = await call
    if label in _RAN_HERE:
        say(label, f"done, saved to history: {summary(result)}")
    else:
        _REPLAYED.append(label)
        say(label, f"replayed from history, not re-run: {summary(result)}")
    return result


async def _investigate(n: int, topic: str, question: str) -> Finding:
    snippets = await _track(f"search {n}", search(n, topic, question),
                            lambda found: "found " + ", ".join(s.doc for s in found))
    answer = await _track(f"llm {n}", ask_llm(n, question, snippets),
                          lambda text: f"{len(text.split())}-word answer")
    return Finding(question=question, answer=answer, sources=[s.doc for s in snippets])


@duro.workflow(name="research_agent")
async def research_agent(topic: str, cooldown: float = 5.0) -> str:
    """Plan, research each sub-question in parallel, cool down, write the report."""
    questions = await _track("plan", plan(topic),
                             lambda qs: f"{len(qs)} sub-questions, researching them in parallel")
    findings = await asyncio.gather(
        *(_investigate(n, topic, q) for n, q in enumerate(questions, 1)))
    if duro.info().is_replaying:
        say("cool-down", "replayed: the timer had already fired")
    else:
        # duro.now() is the time of the last recorded event: a resumed run prints the
        # same deadline, because the timer is durable.
        until = duro.now() + timedelta(seconds=cooldown)
        say("cool-down", f"durable sleep of {cooldown:g}s before the final synthesis "
                         f"(until {until:%H:%M:%S} UTC)")
    await duro.sleep(cooldown)
    if not duro.info().is_replaying:
        say("cool-down", "over")
    return await _track("report", write_report(topic, list(findings)),
                        lambda text: f"{len(text.splitlines())} lines")


# -- the command line ------------------------------------------------------------------


def workflow_id_for(topic: str) -> str:
    """The workflow id, the run's idempotency key: the same topic means the same run."""
    slug = re.sub(r"[^a-z0-9]+", "-", topic.lower()).strip("-")[:60].strip("-")
    return f"research-{slug or 'topic'}"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="A durable research agent: kill it at any moment, rerun, it resumes.")
    parser.add_argument("topic", nargs="?", default=DEFAULT_TOPIC,
                        help=f"what to research (default: {DEFAULT_TOPIC!r})")
    parser.add_argument("--db", default="duro-demo.db",
                        help="SQLite file holding the runs (default: ./duro-demo.db)")
    parser.add_argument("--fast", action="store_true",
                        help="no simulated latency and a short cool-down (~1 s in all)")
    parser.add_argument("--cooldown", type=float, default=None, metavar="SECONDS",
                        help="length of the durable sleep (default: 5, or 0.5 with --fast)")
    parser.add_argument("--new", action="store_true",
                        help="start a fresh run even if this topic already has one")
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace, rerun: str) -> int:
    workflow_id = workflow_id_for(args.topic)
    db = os.path.abspath(args.db)
    cooldown = args.cooldown if args.cooldown is not None else (0.5 if args.fast else 5.0)
    print(f"duro research agent  (pid {os.getpid()})\n"
          f"  workflow id: {workflow_id}\n"
          f"  database:    {db}\n\n"
          f"Kill this process at any moment (Ctrl-C, or `kill -9 {os.getpid()}` from another\n"
          f"terminal), then run the same command again:\n"
          f"    {rerun}\n"
          f"It resumes where it stopped without re-running finished steps.\n", flush=True)

    async with duro.Engine(f"sqlite:///{db}") as engine:
        try:
            previous: duro.RunInfo | None = await engine.get_handle(workflow_id).describe()
        except duro.RunNotFoundError:
            previous = None
        if previous is None:
            print("Starting a new run.\n", flush=True)
        elif previous.status == duro.RunStatus.COMPLETED and not args.new:
            done = previous.closed_at or previous.updated_at
            print(f"This topic's run {previous.run_id} already completed at "
                  f"{done:%Y-%m-%d %H:%M:%S} UTC.\nThe workflow id is an idempotency key: "
                  "here is its stored result, nothing was executed again.\n"
                  "(Pass --new to start a fresh run.)\n")
        elif previous.status == duro.RunStatus.PARKED and not args.new:
            print(f"Run {previous.run_id} is parked: {previous.error}\n"
                  "(The workflow code changed incompatibly; pass --new to start over.)")
            return 1
        elif not previous.status.is_terminal and not args.new:
            print(f"Resuming unfinished run {previous.run_id} ({previous.status}, "
                  f"{previous.history_length} events in its history).\n", flush=True)
        else:
            if not previous.status.is_terminal:
                await engine.terminate(workflow_id, reason="superseded by --new")
                print(f"Terminated unfinished run {previous.run_id}.")
            why = "--new" if args.new else f"the last run ended {previous.status}"
            print(f"Starting a new run ({why}).\n", flush=True)
        # A completed run is returned as is; a failed, cancelled or terminated one is
        # replaced by a new run (so is any finished run with --new).
        completed = previous is not None and previous.status == duro.RunStatus.COMPLETED
        handle = await engine.start(
            research_agent, args.topic, cooldown, id=workflow_id,
            on_reuse="allow" if args.new else "use_existing" if completed else "allow_failed")
        try:
            report = await handle.result()
        except duro.WorkflowFailedError as exc:
            print(f"\nThe run failed: {exc.cause}", file=sys.stderr)
            return 1
        if _RAN_HERE or _REPLAYED:
            print(f"\nThis process executed {len(_RAN_HERE)} step(s); "
                  f"{len(_REPLAYED)} finished step(s) were replayed from the history.")

    quoted_db = shlex.quote(args.db)
    print(f"\n{report}\n\n"
          f"Inspect this run with the duro CLI:\n"
          f"    duro show {workflow_id} --db {quoted_db}\n"
          f"    duro history {workflow_id} --db {quoted_db}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.fast:
        SIM.latency = 0.0
        SIM.retry_after = 0.0
    cli = list(sys.argv[1:] if argv is None else argv)
    # Rerunning must resume, so the suggested command drops --new.
    rerun = shlex.join(["python", sys.argv[0], *(a for a in cli if a != "--new")])
    try:
        return asyncio.run(_run(args, rerun))
    except KeyboardInterrupt:
        print(f"\nInterrupted. Run the same command to resume:\n    {rerun}", flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
