"""Codecs in the engine: 1000 x 10 throughput with 1 KiB step results, without a codec
and through zstd + AES-256-GCM (issue 14: the chain must keep >= 85% of the throughput).

Each measurement runs in a fresh subprocess on a fresh SQLite file (WAL, synchronous
FULL, duro's defaults), after a warm-up workflow; W workflows x S steps are started
together and the figure is steps/s from the first start to the last result. The table
shows the median of R repeats per chain, alternating chains so both see the same
machine load; ``ratio`` is coded / plain.

    python bench/bench_codec_engine.py                # 3 repeats, table
    python bench/bench_codec_engine.py --json out.json
    python bench/bench_codec_engine.py --payload random  # incompressible results
    python bench/bench_codec_engine.py --quick        # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duro
from duro.serde import AesGcmCodec, CodecChain, ZstdCodec, generate_key

# ~1 KiB of JSON each: ``text`` compresses like prose (~8x under zstd), ``random`` not
# at all (base64 of random bytes): the chain's cost without the smaller writes it buys.
_BODIES = {"text": "lorem ipsum dolor sit amet " * 38,
           "random": base64.b64encode(os.urandom(765)).decode()}
_RECORD = {"id": 0, "title": "Quarterly report",
           "body": _BODIES[os.environ.get("BENCH_PAYLOAD", "text")]}


@duro.step(name="bench_codec.result")
async def result(i: int) -> dict[str, object]:
    return {**_RECORD, "id": i}


@duro.workflow(name="bench_codec.wf")
async def wf(steps: int) -> int:
    total = 0
    for i in range(steps):
        total += int((await result(i))["id"])  # type: ignore[call-overload]
    return total


def _chain(kind: str) -> CodecChain | None:
    codecs = {"zstd": lambda: ZstdCodec(),
              "aes": lambda: AesGcmCodec({"k": base64.b64decode(os.environ["BENCH_KEY"])},
                                         current_key_id="k")}
    names = [name for name in kind.split("+") if name != "plain"]
    return CodecChain([codecs[name]() for name in names]) if names else None


async def _measure(kind: str, workflows: int, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        async with duro.Engine(f"sqlite:///{tmp}/warm.db", codec=_chain(kind)) as engine:
            await (await engine.start(wf, 3)).result()
        async with duro.Engine(f"sqlite:///{tmp}/b.db", codec=_chain(kind)) as engine:
            started = time.perf_counter()
            handles = await asyncio.gather(*(engine.start(wf, steps)
                                             for _ in range(workflows)))
            await asyncio.gather(*(h.result(timeout=600) for h in handles))
            return workflows * steps / (time.perf_counter() - started)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workflows", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--payload", choices=sorted(_BODIES), default="text")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--chains", default="plain,zstd+aes",
                    help="chains to compare, the first is the baseline (plain, zstd, aes, "
                         "zstd+aes)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.workflows, args.repeats = 100, 1
    if args.child:
        print(asyncio.run(_measure(args.child, args.workflows, args.steps)))
        return 0
    env = {**os.environ, "BENCH_KEY": generate_key(), "BENCH_PAYLOAD": args.payload}
    chains = args.chains.split(",")
    figures: dict[str, list[float]] = {kind: [] for kind in chains}
    for _ in range(args.repeats):
        for kind in figures:
            out = subprocess.run([sys.executable, __file__, "--child", kind, "--workflows",
                                  str(args.workflows), "--steps", str(args.steps)],
                                 capture_output=True, text=True, env=env, check=True)
            figures[kind].append(float(out.stdout.strip().splitlines()[-1]))
    medians = {kind: statistics.median(v) for kind, v in figures.items()}
    base = chains[0]
    ratios = {kind: medians[kind] / medians[base] for kind in chains}
    print(f"{args.workflows} x {args.steps}, 1 KiB {args.payload} step results, "
          f"median of {args.repeats}")
    print(f"{'chain':<10} {'steps/s':>10} {'ratio':>7}  runs")
    for kind, values in figures.items():
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"{kind:<10} {medians[kind]:>10,.0f} {ratios[kind]:>7.1%}  {runs}")
    print(f"ratio is to {base}; issue 14's target: zstd+aes >= 85% of plain")
    if args.json:
        Path(args.json).write_text(json.dumps({"figures": figures, "medians": medians,
                                               "ratios": ratios, "payload": args.payload,
                                               "workflows": args.workflows,
                                               "steps": args.steps}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
