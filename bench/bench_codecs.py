"""Codec benchmark: what a codec chain costs per payload, outside the engine.

Each row encodes a payload to its stored form and decodes it back, one payload per call
(as the engine does per step: ``await chain.encode_stored([p])`` then ``decode_stored``),
N times in one event loop; the figure is µs per payload, the median of R repeats.

* ``1 KiB``: a 1 KiB JSON payload (records with text, compressible like real results)
  through the empty chain, zstd, AES-256-GCM, and zstd + AES-256-GCM. ``empty (skipped)``
  is a caller that tests ``chain.empty`` and does not call the chain at all.
* ``20 MB``: one 20 MB JSON payload offloaded to a ``FileBlobStore`` (write with fsync,
  read back with the hash check), alone and after AES-256-GCM; ms per payload.

``engine %`` estimates the engine's throughput with that chain relative to none, for
the ``1000 x 10`` workload of ``bench_core.py`` (~65 µs per step on the reference
machine, docs/benchmarks.md) with ``--payloads-per-step`` (default 1.2: 10 step results,
one input and one workflow result per 10 steps) encoded and decoded once each.

    python bench/bench_codecs.py                 # table
    python bench/bench_codecs.py --json          # also bench/results/codecs-<stamp>.json
    python bench/bench_codecs.py --quick         # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from duro.serde import AesGcmCodec, CodecChain, FileBlobStore, OffloadCodec, ZstdCodec

HERE = Path(__file__).resolve().parent
STEP_US = 65.0


def payload_1k() -> bytes:
    """Exactly 1024 bytes of JSON: customer records, padded with a note."""
    rows: list[dict[str, Any]] = []
    while len(orjson.dumps({"rows": rows, "note": ""})) < 900:
        i = len(rows)
        rows.append({"id": i, "name": f"customer {i}", "email": f"user{i}@example.com",
                     "status": "shipped"})
    pad = 1024 - len(orjson.dumps({"rows": rows, "note": ""}))
    return orjson.dumps({"rows": rows, "note": "n" * pad})


def payload_20mb() -> bytes:
    text = os.urandom(10 * 1024 * 1024).hex()  # 20 MiB of hex: compresses ~2x
    return orjson.dumps({"blob": text})


def chains(blob_dir: Path) -> dict[str, Callable[[], CodecChain]]:
    keys = {"k1": os.urandom(32)}
    return {
        "empty": CodecChain,
        "zstd": lambda: CodecChain([ZstdCodec()]),
        "aes-gcm": lambda: CodecChain([AesGcmCodec(keys, current_key_id="k1")]),
        "zstd+aes-gcm": lambda: CodecChain([ZstdCodec(),
                                            AesGcmCodec(keys, current_key_id="k1")]),
        "offload(files)": lambda: CodecChain([OffloadCodec(FileBlobStore(blob_dir))]),
        "aes-gcm+offload(files)": lambda: CodecChain([
            AesGcmCodec(keys, current_key_id="k1"), OffloadCodec(FileBlobStore(blob_dir))]),
    }


async def time_round_trips(chain: CodecChain, data: bytes, n: int,
                           skip_empty: bool = False) -> tuple[float, float, int]:
    """(encode µs, decode µs, stored size) per payload over ``n`` round trips."""
    items: list[bytes | None] = [data]
    stored = await chain.encode_stored(items)
    assert await chain.decode_stored(stored) == items
    enc = dec = 0.0
    for _ in range(n):
        t0 = time.perf_counter()
        if not (skip_empty and chain.empty):
            stored = await chain.encode_stored(items)
        t1 = time.perf_counter()
        if not (skip_empty and chain.empty):
            await chain.decode_stored(stored)
        t2 = time.perf_counter()
        enc += t1 - t0
        dec += t2 - t1
    size = len(stored[0] or b"")
    return enc / n * 1e6, dec / n * 1e6, size


def measure(name: str, chain: CodecChain, data: bytes, n: int, repeats: int,
            skip_empty: bool = False) -> dict[str, Any]:
    runs = [asyncio.run(time_round_trips(chain, data, n, skip_empty)) for _ in range(repeats)]
    enc = statistics.median(r[0] for r in runs)
    dec = statistics.median(r[1] for r in runs)
    total = statistics.median(r[0] + r[1] for r in runs)
    return {"chain": name, "payload_bytes": len(data), "stored_bytes": runs[0][2],
            "encode_us": enc, "decode_us": dec, "total_us": total,
            "n": n, "repeats": repeats}


def engine_share(row: dict[str, Any], base_us: float, per_step: float,
                 step_us: float) -> float:
    extra = max(0.0, row["total_us"] - base_us) * per_step
    return 100.0 * step_us / (step_us + extra)


def table(rows: list[dict[str, Any]]) -> str:
    head = (f"{'chain':<24} {'payload':>10} {'stored':>10} {'encode':>10} {'decode':>10} "
            f"{'total':>10} {'engine %':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        big = r["payload_bytes"] > 1 << 20
        unit, scale = ("ms", 1e-3) if big else ("us", 1.0)
        share = "" if big else f"{r['engine_pct']:.1f}"
        lines.append(
            f"{r['chain']:<24} {r['payload_bytes']:>10} {r['stored_bytes']:>10} "
            f"{r['encode_us'] * scale:>8.2f}{unit} {r['decode_us'] * scale:>8.2f}{unit} "
            f"{r['total_us'] * scale:>8.2f}{unit} {share:>9}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=20_000, help="round trips per repeat (1 KiB)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--big-repeats", type=int, default=3, help="repeats of the 20 MB rows")
    ap.add_argument("--payloads-per-step", type=float, default=1.2)
    ap.add_argument("--step-us", type=float, default=STEP_US,
                    help="the engine's cost of one step without codecs, in µs")
    ap.add_argument("--quick", action="store_true", help="n=500, 2 repeats, 1 big repeat")
    ap.add_argument("--json", nargs="?", const="", default=None,
                    help="write JSON (default bench/results/codecs-<timestamp>.json)")
    args = ap.parse_args()
    if args.quick:
        args.n, args.repeats, args.big_repeats = 500, 2, 1
    small, big = payload_1k(), payload_20mb()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="duro-bench-codecs-") as tmp:
        make = chains(Path(tmp) / "blobs")
        rows.append(measure("empty (skipped)", make["empty"](), small, args.n, args.repeats,
                            skip_empty=True))
        for name in ("empty", "zstd", "aes-gcm", "zstd+aes-gcm"):
            rows.append(measure(name, make[name](), small, args.n, args.repeats))
        for name in ("offload(files)", "aes-gcm+offload(files)"):
            rows.append(measure(name, make[name](), big, 1, args.big_repeats))
    base = rows[0]["total_us"]
    for r in rows:
        r["engine_pct"] = engine_share(r, base, args.payloads_per_step, args.step_us)
    print(table(rows))
    if args.json is not None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(args.json) if args.json else HERE / "results" / f"codecs-{stamp}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"python": sys.version.split()[0], "machine": platform.machine(),
                "cpus": os.cpu_count(), "step_us": args.step_us,
                "load_average": os.getloadavg(),
                "payloads_per_step": args.payloads_per_step}
        path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
        print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
