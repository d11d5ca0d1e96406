"""A worker process for the multi-process PostgreSQL tests.

    python pg_worker.py URL NAME --log FILE [--host H] [--lease S] [--poll S] [--grace S]
                        [--app MODULE]

Serves ``mh_chain`` (or the ``WORKFLOWS`` of ``--app``, a module beside this script
with a ``Log`` like pg_chain's: budget_tenant). Each step attempt appends
``start``/``done`` lines (with the worker's name and the time) to the log file, so the
test can count executions across processes.
``--host`` makes this worker claim to be another machine (socket.gethostname), so the
same-host "PID is gone" shortcut does not apply and takeover goes by the lease, as
between real hosts. SIGTERM drains (graceful shutdown); SIGKILL is SIGKILL.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import signal
import socket
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("name")
parser.add_argument("--log", required=True)
parser.add_argument("--host", default=None)
parser.add_argument("--lease", type=float, default=5.0)
parser.add_argument("--poll", type=float, default=0.2)
parser.add_argument("--grace", type=float, default=10.0)
parser.add_argument("--max-active", type=int, default=2000)
parser.add_argument("--app", default="pg_chain")
args = parser.parse_args()

if args.host:
    socket.gethostname = lambda: args.host  # type: ignore[assignment]

app = importlib.import_module(args.app)  # beside this script
Log = app.Log

import duro  # noqa: E402 - after the hostname is settled
from duro.worker._graceful import drain  # noqa: E402

Log.name = args.name
Log.file = open(args.log, "a", buffering=1)  # noqa: SIM115 - lives as long as the process


async def main() -> None:
    engine = duro.Engine(args.url, workflows=app.WORKFLOWS, lease=args.lease,
                         poll_interval=args.poll, max_active=args.max_active)
    await engine.open()
    assert engine.worker is not None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"ready": Log.name, "worker_id": engine.worker.worker_id,
                      "pid": os.getpid()}), flush=True)
    await stop.wait()
    began = time.time()
    print(json.dumps({"draining": Log.name, "at": began}), flush=True)
    clean = await drain(engine.worker, args.grace)
    await engine.close()
    print(json.dumps({"stopped": Log.name, "clean": clean, "took": time.time() - began}),
          flush=True)


asyncio.run(main())
sys.exit(0)
