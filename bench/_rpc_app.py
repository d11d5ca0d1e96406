"""The two deployments of bench/bench_rpc.py: the callee exposes ``bench.noop``; the
caller's ``bench.call`` calls it (``CALLEE_URL``, callbacks to ``CALLER_URL``), and its
``bench.local`` does nothing (the baseline: a run's own round trip)."""

from __future__ import annotations

import os

import duro

CALLEE = duro.Endpoint(url=os.environ.get("CALLEE_URL", "http://127.0.0.1:9"),
                       callback_url=os.environ.get("CALLER_URL") or None)


@duro.workflow(name="bench.noop", expose=True)
async def noop() -> int:
    return 1


@duro.workflow(name="bench.call")
async def call_noop() -> int:
    result: int = await duro.call(CALLEE, "bench.noop")
    return result


@duro.workflow(name="bench.local")
async def local() -> int:
    return 1
