"""What one step attempt's span costs, part by part, with the processor's caches warm
("hot": the same span made again and again) and with them holding other work ("cold":
~2,000 unrelated objects touched before each span, as ~1,000 other runs' steps touch
theirs between two steps of one run in the engine).

Tracing's cost in the engine (``bench_telemetry.py --parts``) is mostly the step
attempts' spans, and a span costs there about what it costs here "cold", nearly twice
its "hot" cost: this is the test bed for making it cheaper without a 1000 x 10 run's
noise. The parts: the run's span context found (``run_entry``), the span made
(``Spans.run_child``), made current, then ended (the context reset, the span's end, and
the SDK's ``SimpleSpanProcessor.on_end`` with an exporter that drops it, timed apart:
the span is made by a provider without processors), and the whole
of it as the worker has it made ("attempt": ``TracingInterceptor.attempt_started`` and
the end it returns, as the worker calls them; the parts' total is measured apart, by
their own code). The garbage collector is off while timing.

    python bench/bench_step_span.py                  # 1,000 runs x 10 rounds, 3 repeats
    python bench/bench_step_span.py --tiny           # smoke run

Results: a table on stdout (µs a span, medians of the repeats), JSON in
``bench/results/step-span-<timestamp>.json`` (``--json PATH`` to choose).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PARTS = ("run_entry", "made", "current", "ended", "on_end")


def _measure(runs: int, rounds: int, cold: bool) -> dict[str, float]:
    from bench_telemetry import _tracing  # this directory's: the same provider
    from opentelemetry.sdk.trace import TracerProvider

    from duro.tracing._ids import run_entry
    from duro.tracing._light import LightSpan, enter, leave
    from duro.tracing._spans import fast_spans

    spans = _tracing().spans  # an SDK provider, a SimpleSpanProcessor dropping spans
    # The spans timed part by part are made by a provider without processors (their
    # end marks them ended and hands them to nothing); the processor's on_end is then
    # timed on its own, as the first provider's pipeline has it.
    bare = fast_spans(TracerProvider().get_tracer("duro"))
    assert spans is not None and bare is not None
    rng = random.Random(7)
    # Each run as a worker holds it: its id, its headers (a traceparent) cached.
    held = [(f"run-{i:06d}-{rng.getrandbits(64):016x}",
             {"traceparent": f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-01"},
             f"wf-{i}") for i in range(runs)]
    for run_id, headers, _ in held:
        run_entry(run_id, headers)
    touch = _toucher()
    clock = time.perf_counter_ns
    totals = dict.fromkeys(PARTS, 0)
    count = 0
    gc.disable()
    try:
        for _ in range(rounds):
            for k, (run_id, headers, workflow_id) in enumerate(held):
                if cold:
                    touch(k)
                a = clock()
                run, _ = run_entry(run_id, headers)
                b = clock()
                span = bare.run_child("RunStep:bench.noop", run,
                                      {"duro.workflow_id": workflow_id, "duro.attempt": 1,
                                       "duro.queue": "default"})
                c = clock()
                token = enter(span)
                d = clock()
                leave(token)
                assert isinstance(span, LightSpan)
                span.end()  # marked ended; no processor
                e = clock()
                for end in spans.pipeline()[2]:
                    end(span)
                f = clock()
                for part, took in zip(PARTS, (b - a, c - b, d - c, e - d, f - e), strict=True):
                    totals[part] += took
                count += 1
        start = clock()
        for _ in range(10_000):
            clock()
        floor = (clock() - start) / 10_000  # one clock read, taken off each part
    finally:
        gc.enable()
    return {part: max(0.0, (took / count - floor) / 1000) for part, took in totals.items()}


def _measure_whole(runs: int, rounds: int, cold: bool) -> float:
    """µs a step attempt's span costs as the worker has it made: the interceptor's
    ``attempt_started`` and the end it returns, called as ``run_attempt`` calls them."""
    from bench_telemetry import _tracing

    from duro.step import StepInfo
    from duro.tracing._ids import run_entry

    tracing = _tracing()
    rng = random.Random(7)
    held = []
    for i in range(runs):
        run_id = f"run-{i:06d}-{rng.getrandbits(64):016x}"
        headers = {"traceparent":
                   f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-01"}
        held.append(StepInfo(workflow_id=f"wf-{i}", run_id=run_id, step="bench.noop", seq=1,
                             attempt=1, idempotency_key=f"{run_id}:1", heartbeat_details=None,
                             deadline=None, headers=headers))
        run_entry(run_id, headers)
    touch = _toucher()
    clock = time.perf_counter_ns
    total = count = 0
    gc.disable()
    try:
        for _ in range(rounds):
            for k, info in enumerate(held):
                if cold:
                    touch(k)
                a = clock()
                end = tracing.attempt_started(info)  # as run_attempt calls them
                end(None)
                total += clock() - a
                count += 1
    finally:
        gc.enable()
    return total / count / 1000


def _toucher() -> Any:
    """What keeps the caches busy between two spans ("cold"): ~2,000 unrelated objects
    touched, a different slice each time."""
    other = [[n, str(n), {"n": n}] for n in range(200_000)]
    chunk = 2_000

    def touch(k: int) -> int:
        total = 0
        for item in other[(k % 100) * chunk:(k % 100 + 1) * chunk]:
            total += item[0]
            item[2]["n"] = total
        return total
    return touch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="50 runs x 2 rounds, once")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    if args.tiny:
        args.runs, args.rounds, args.repeats = 50, 2, 1
    if min(args.runs, args.rounds, args.repeats) < 1:
        parser.error("--runs, --rounds and --repeats must be at least 1")
    results: dict[str, list[dict[str, float]]] = {"hot": [], "cold": []}
    whole: dict[str, list[float]] = {"hot": [], "cold": []}
    for _ in range(args.repeats):
        for mode in results:
            results[mode].append(_measure(args.runs, args.rounds, mode == "cold"))
            whole[mode].append(_measure_whole(args.runs, args.rounds, mode == "cold"))
    rows: list[dict[str, Any]] = []
    print(f"one step attempt's span, µs (medians of {args.repeats}; "
          f"{args.runs} runs x {args.rounds} rounds)")
    print(f"{'caches':<6} " + " ".join(f"{p:>10}" for p in PARTS) + f" {'total':>10}"
          + f" {'attempt':>10}")
    for mode, measured in results.items():
        parts = {p: statistics.median(m[p] for m in measured) for p in PARTS}
        total = statistics.median(sum(m.values()) for m in measured)
        attempt = statistics.median(whole[mode])
        rows.append({"caches": mode, "parts_us": parts, "total_us": total,
                     "attempt_us": attempt})
        print(f"{mode:<6} " + " ".join(f"{parts[p]:>10.2f}" for p in PARTS)
              + f" {total:>10.2f} {attempt:>10.2f}")
    print("attempt: the whole span as a worker has it made (the interceptor's "
          "attempt_started and its end)")
    path = Path(args.json) if args.json else \
        HERE / "results" / f"step-span-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"runs": args.runs, "rounds": args.rounds,
                                "repeats": args.repeats, "rows": rows}, indent=2))
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
