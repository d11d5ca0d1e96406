"""What tracing and metrics cost: 1000 workflows x 10 no-op steps on SQLite, started
together, with no interceptor ("off"), with ``duro.tracing.TracingInterceptor`` on an
OpenTelemetry SDK provider whose exporter drops every span ("tracing": the spans are made
and processed, nothing is sent; handed to the exporter at each span's end by a
``SimpleSpanProcessor``, or in batches from a thread by a ``BatchSpanProcessor``, as
OpenTelemetry recommends for production: "tracing-batch", its last batch flushed before
the clock stops), and with ``duro.metrics.Metrics`` (Prometheus).

Each measurement runs in a fresh subprocess, after a warm-up; the modes alternate, and
the table reports the median steps/s of the repeats, its ratio to "off" (issue 18's
target: tracing at least 90% of off), and the median of each repeat's ratio to the "off"
run just before it ("paired": steadier when the machine's speed drifts, as a shared
machine's does by +-30% over minutes).

    python bench/bench_telemetry.py                  # 1000 x 10, 3 repeats
    python bench/bench_telemetry.py --tiny           # smoke run (seconds)
    python bench/bench_telemetry.py --parts          # tracing's cost part by part

``--parts`` measures tracing piece by piece, each a ``TracingInterceptor`` that does
only some of its work (a subclass that skips the rest, as a user's may): ``idle`` (the
interceptor there, doing nothing: the hooks' calls), ``header`` (only the start's
``traceparent`` header, no span: what carrying one header costs the engine),
``start`` (the start's span and header), ``runs`` (those and each run's own span, no
step spans), ``tracing`` (everything) and ``no-processor`` (everything, on a provider
with no span processor at all: the spans are made and handed to nothing). The
"extra CPU" column is the median of each repeat's CPU a step minus that of the "off"
run beside it.

Results: a table on stdout, JSON in ``bench/results/telemetry-<timestamp>.json``
(``--json PATH`` to choose).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODES = ("off", "tracing", "tracing-batch", "metrics")
# The providers made, so a run's clock stops only after each has flushed its spans (a
# batch processor's last partial batch is work of the run too).
_PROVIDERS: list[Any] = []
PARTS = ("off", "idle", "header", "start", "runs", "tracing", "no-processor")


def _tracing(kind: Any = None, *, processor: str | None = "simple") -> Any:
    """A ``TracingInterceptor`` (or subclass ``kind``) on an SDK provider whose exporter
    drops every span, handed to it by a ``SimpleSpanProcessor`` (``processor="simple"``:
    at each span's end) or a ``BatchSpanProcessor`` (``"batch"``: from its own thread,
    in batches), or a provider with no span processor at all (``None``)."""
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from duro.tracing import TracingInterceptor

    class Drop(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    _PROVIDERS.append(provider)
    if processor == "simple":
        provider.add_span_processor(SimpleSpanProcessor(Drop()))
    elif processor == "batch":
        provider.add_span_processor(BatchSpanProcessor(Drop()))
    return (kind or TracingInterceptor)(provider)


def _part(mode: str) -> Any:
    """A ``TracingInterceptor`` doing only part of its work (``--parts``): a subclass
    that skips the rest, as a user's may."""
    import dataclasses

    from duro.tracing import TracingInterceptor

    header = {"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"}

    class Part(TracingInterceptor):
        # Only "runs" records runs' spans (what a worker commits).
        recorded_kinds = TracingInterceptor.recorded_kinds if mode == "runs" \
            else frozenset()

        async def start(self, input: Any, next: Any) -> Any:
            if mode == "idle":
                return await next(input)
            if mode == "header":
                return await next(dataclasses.replace(input, headers=header))
            return await super().start(input, next)

        def attempt_started(self, info: Any) -> Any:
            return None  # no step spans

    return _tracing(Part)


def _interceptors(mode: str) -> list[Any]:
    if mode == "tracing":
        return [_tracing()]
    if mode == "tracing-batch":
        return [_tracing(processor="batch")]
    if mode == "no-processor":
        return [_tracing(processor=None)]
    if mode in ("idle", "header", "start", "runs"):
        return [_part(mode)]
    if mode == "metrics":
        from duro.metrics import Metrics

        return [Metrics()]
    return []


async def _measure(mode: str, workflows: int, steps: int, db_dir: str) -> dict[str, Any]:
    import duro

    @duro.step(name="bench.noop")
    async def noop(i: int) -> int:
        return i

    @duro.workflow(name="bench.telemetry")
    async def flow(n: int) -> int:
        for i in range(n):
            await noop(i)
        return n

    hooks = _interceptors(mode)
    async with duro.Engine(f"sqlite:///{db_dir}/warm.db", interceptors=hooks) as engine:
        warm = await asyncio.gather(*(engine.start(flow, 3) for _ in range(3)))
        await asyncio.gather(*(h.result(timeout=60) for h in warm))
    async with duro.Engine(f"sqlite:///{db_dir}/bench.db", interceptors=hooks) as engine:
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        handles = await asyncio.gather(*(engine.start(flow, steps) for _ in range(workflows)))
        results = await asyncio.gather(*(h.result(timeout=600) for h in handles))
        for provider in _PROVIDERS:
            provider.force_flush()
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    assert all(r == steps for r in results)
    return {"mode": mode, "wall_s": wall, "steps_per_s": workflows * steps / wall,
            "cpu_us_per_step": cpu / (workflows * steps) * 1e6}


def _child(args: argparse.Namespace) -> int:
    db_dir = tempfile.mkdtemp(prefix="duro_tel_")
    try:
        out = asyncio.run(_measure(args.child, args.workflows, args.steps, db_dir))
    finally:
        shutil.rmtree(db_dir, ignore_errors=True)
    print(json.dumps(out), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="50 x 5, one repeat")
    parser.add_argument("--parts", action="store_true",
                        help="tracing's cost part by part (see the module's docstring)")
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--child", choices=sorted({*MODES, *PARTS}), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tiny:
        args.workflows, args.steps, args.repeats = 50, 5, 1
    if min(args.workflows, args.steps, args.repeats) < 1:
        parser.error("--workflows, --steps and --repeats must be at least 1")
    if args.child:
        return _child(args)
    modes = PARTS if args.parts else MODES
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for _ in range(args.repeats):
        for mode in modes:  # alternating: drifts of a noisy machine hit every mode
            proc = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--workflows",
                 str(args.workflows), "--steps", str(args.steps)],
                capture_output=True, text=True, check=False, env=os.environ.copy())
            if proc.returncode != 0:
                print(proc.stdout + proc.stderr, file=sys.stderr)
                return 1
            runs[mode].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = statistics.median(r["steps_per_s"] for r in runs["off"])
    rows = []
    print(f"{args.workflows} workflows x {args.steps} steps, SQLite, "
          f"median of {args.repeats}")
    print(f"{'mode':<12} {'steps/s':>10} {'vs off':>8} {'paired':>8} {'CPU us/step':>12} "
          f"{'extra CPU':>10}")
    for mode in modes:
        rate = statistics.median(r["steps_per_s"] for r in runs[mode])
        cpu = statistics.median(r["cpu_us_per_step"] for r in runs[mode])
        # Each repeat against the "off" run just before it: a drift of the machine's
        # speed over the minutes of the benchmark moves both sides of a pair alike.
        paired = statistics.median(r["steps_per_s"] / o["steps_per_s"]
                                   for r, o in zip(runs[mode], runs["off"], strict=True))
        extra = statistics.median(r["cpu_us_per_step"] - o["cpu_us_per_step"]
                                  for r, o in zip(runs[mode], runs["off"], strict=True))
        rows.append({"mode": mode, "steps_per_s": rate, "ratio_to_off": rate / base,
                     "paired_ratio_to_off": paired, "cpu_us_per_step": cpu,
                     "extra_cpu_us_per_step": extra, "runs": runs[mode]})
        print(f"{mode:<12} {rate:>10.0f} {rate / base:>7.0%} {paired:>7.0%} {cpu:>12.1f} "
              f"{extra:>+10.1f}")
    print("vs off: ratio of the medians; paired: median of each repeat's ratio to the "
          "off run beside it; extra CPU: median of each repeat's CPU a step (us) minus "
          "the off run's beside it")
    path = Path(args.json) if args.json else \
        HERE / "results" / f"telemetry-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"workflows": args.workflows, "steps": args.steps,
                                "repeats": args.repeats, "parts": args.parts, "modes": rows},
                               indent=2))
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
