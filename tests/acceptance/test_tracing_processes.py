"""Tracing across processes (issue 18, item 1): a trace started by an HTTP client
continues through `duro serve --tracing` into the run and its steps; a worker killed with
SIGKILL between two parts of a run and a new worker resuming it give one trace with no
duplicate span."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import duro
from tests.acceptance.serving import APPS, DURO_SRC, serve
from tests.conftest import run

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from duro.tracing import TracingInterceptor

if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

import metrics_app


def _spans(path: Path, name: str, count: int = 1) -> list[dict[str, Any]]:
    """The spans written to ``path`` once ``count`` named ``name`` are there (bounded)."""
    deadline = time.monotonic() + 20
    while True:
        spans = [json.loads(line) for line in path.read_text().splitlines()] \
            if path.exists() else []
        if sum(s["name"] == name for s in spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.05)


def _one(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [s for s in spans if s["name"] == name]
    assert len(found) == 1, (name, [s["name"] for s in spans])
    return found[0]


def test_a_trace_continues_through_duro_serve_into_the_steps(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/duro.db"
    spans_file = tmp_path / "spans.jsonl"
    trace_id, caller = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
    with serve(db, "metrics_app", "--worker", "--tracing", "trace_setup:provider",
               env={"DURO_TEST_SPANS": str(spans_file)}) as served:
        assert "tracing" in served.ready_line
        with httpx.Client(base_url=served.url, timeout=30) as http:
            made = http.post("/v1/runs", json={"workflow": "metrics_app.kid", "args": [1],
                                               "id": "http-kid"},
                             headers={"traceparent": f"00-{trace_id:032x}-{caller:016x}-01"})
            assert made.status_code == 202, made.text
            assert http.get("/v1/runs/http-kid/result", params={"wait": 20}).json()[
                "status"] == "completed"

        # The remote client carries the current span the same way.
        exporter = InMemorySpanExporter()
        local = TracerProvider()
        local.add_span_processor(SimpleSpanProcessor(exporter))

        async def remote() -> None:
            with local.get_tracer("test").start_as_current_span("caller"):
                async with duro.Client(served.url) as client:
                    handle = await client.start(metrics_app.kid, 2, id="remote-kid")
                    assert await handle.result(timeout=20) == 3

        run(remote())
        spans = _spans(spans_file, "RunWorkflow:metrics_app.kid", 2)
    by_trace = {s["trace_id"] for s in spans}
    assert trace_id in by_trace
    mine = [s for s in spans if s["trace_id"] == trace_id]
    start = _one(mine, "StartWorkflow:metrics_app.kid")
    assert start["parent_id"] == caller  # the HTTP caller's span
    run_span = _one(mine, "RunWorkflow:metrics_app.kid")
    assert run_span["parent_id"] == start["span_id"]
    assert _one(mine, "RunStep:metrics_app.quick")["parent_id"] == run_span["span_id"]
    (caller_span,) = exporter.get_finished_spans()
    theirs = [s for s in spans if s["trace_id"] == caller_span.context.trace_id]
    assert _one(theirs, "StartWorkflow:metrics_app.kid")["parent_id"] == \
        caller_span.context.span_id
    assert {s["name"] for s in theirs} >= {"RunWorkflow:metrics_app.kid",
                                           "RunStep:metrics_app.quick"}


def _worker(db: str, spans_file: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DURO_DB", "PYTHONPATH")}
    env["PYTHONPATH"] = os.pathsep.join([str(APPS), str(DURO_SRC)])
    env["DURO_TEST_SPANS"] = str(spans_file)
    proc = subprocess.Popen(
        [sys.executable, "-m", "duro", "--db", db, "worker", "metrics_app", "--tracing",
         "trace_setup:provider"], env=env, cwd=APPS, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "duro worker ready" in line, line + proc.stdout.read()
    return proc


def test_kill_9_and_resume_make_one_trace_without_duplicates(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/duro.db"
    spans_file = tmp_path / "spans.jsonl"
    exporter = InMemorySpanExporter()
    local = TracerProvider()
    local.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = TracingInterceptor(local)

    first = _worker(db, spans_file)
    try:
        async def start() -> None:
            async with duro.Client(db, interceptors=[tracing]) as client:
                handle = await client.start(metrics_app.busy, "k9", id="killed")
                for _ in range(500):  # bounded: the step and the timer take milliseconds
                    if any(e.kind == "timer_fired" for e in await handle.history()):
                        return
                    await asyncio.sleep(0.02)
                raise AssertionError("the run did not get to its signal wait")

        run(start())
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        assert first.stdout is not None
        first.stdout.close()
    second = _worker(db, spans_file)
    try:
        async def finish() -> None:
            async with duro.Client(db, interceptors=[tracing]) as client:
                handle = client.get_handle("killed")
                await handle.signal("go", 7)
                assert await handle.result(timeout=30) == 8

        run(finish())
        spans = _spans(spans_file, "RunWorkflow:metrics_app.busy")
    finally:
        second.send_signal(signal.SIGKILL)
        second.wait(timeout=30)
        assert second.stdout is not None
        second.stdout.close()
    (start_span,) = [s for s in exporter.get_finished_spans()
                     if s.name == "StartWorkflow:metrics_app.busy"]
    trace = [s for s in spans if s["trace_id"] == start_span.context.trace_id]
    assert len(trace) == len(spans)  # every worker span is in the start's trace
    names = [s["name"] for s in trace]
    assert names.count("RunStep:metrics_app.flaky") == 2  # two attempts, once each
    assert names.count("Timer") == 1 and names.count("Signal:go") == 1
    busy = _one(trace, "RunWorkflow:metrics_app.busy")
    kid = _one(trace, "RunWorkflow:metrics_app.kid")
    assert busy["parent_id"] == start_span.context.span_id
    assert kid["parent_id"] == busy["span_id"]
    assert {s["pid"] for s in trace if s["name"] == "RunStep:metrics_app.flaky"} == \
        {first.pid}
    assert {busy["pid"], kid["pid"]} == {second.pid}
    for s in trace:
        if s["name"] in ("RunStep:metrics_app.flaky", "Timer", "Signal:go"):
            assert s["parent_id"] == busy["span_id"], s
