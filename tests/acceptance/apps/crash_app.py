"""Subprocess app for the kill -9 acceptance test (tests/acceptance/test_crash.py).

Run as ``python crash_app.py --db DB --log LOG --scenario seq|par --runs N``. It starts
runs ``<scenario>-0 .. <scenario>-N-1`` (fixed ids: the same command run again attaches
to the same runs), serves as a worker until all of them have ended, and exits 0. The
test SIGKILLs it at random moments and runs it again.

Every step execution appends one line to LOG *before the step returns* (or raises):
``run_id op attempt step_name pid``. It is written with a single ``os.write`` on an
``O_APPEND`` descriptor: no user-space buffer, so a line written survives SIGKILL
(fsync would only matter for power loss, which this test does not simulate), and
concurrent writers (two app processes) never interleave within a line.

The test does not import this file (that would register its workflows in the test
process): it recomputes the expected results on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import duro

# By construction, at most this many steps of one run are in flight at once (the widest
# asyncio.gather below). The test bounds lost executions per kill with it.
PAR_WIDTH = 3
SEQ_STEPS = 8

_log_fd: int | None = None


def _record_execution() -> None:
    """Log this step attempt as executed (the step's externally visible side effect)."""
    info = duro.step_info()
    line = f"{info.run_id} {info.seq} {info.attempt} {info.step} {os.getpid()}\n"
    assert _log_fd is not None, "the executions log is not open"
    os.write(_log_fd, line.encode())


# -- steps: each does a little work, records its execution, works a little more, returns.
# The second bit of work widens the window where a kill lands between the side effect
# and the recording of the step's completion (the case at-least-once must absorb).


@duro.step(name="crash.sync_step")
def sync_step(n: int, i: int) -> int:
    time.sleep(0.004)
    _record_execution()
    time.sleep(0.004)
    return sync_value(n, i)


@duro.step(name="crash.async_step")
async def async_step(n: int, i: int) -> int:
    await asyncio.sleep(0.004)
    _record_execution()
    await asyncio.sleep(0.004)
    return async_value(n, i)


class FirstAttemptFails(RuntimeError):
    """Raised by flaky_step on its first attempt."""


@duro.step(name="crash.flaky_step",
           retry=duro.RetryPolicy(max_attempts=5, initial_interval=0.02, jitter=0.0))
def flaky_step(n: int, i: int) -> int:
    time.sleep(0.002)
    _record_execution()
    if duro.step_info().attempt == 1:
        raise FirstAttemptFails(f"first attempt of flaky_step({n}, {i}) fails")
    return flaky_value(n, i)


def sync_value(n: int, i: int) -> int:
    return n * 1000 + i * i + 1


def async_value(n: int, i: int) -> int:
    return n * 1000 + 7 * i + 3


def flaky_value(n: int, i: int) -> int:
    return n * 31 + i + 5


# -- workflows --------------------------------------------------------------------------


@duro.workflow(name="crash.seq")
async def crash_seq(n: int) -> dict[str, Any]:
    """Strictly sequential: exactly one step in flight at any time."""
    values: list[int] = []
    for i in range(SEQ_STEPS):
        if i % 2 == 0:
            values.append(await sync_step(n, i))
        else:
            values.append(await async_step(n, i))
        if i % 3 == 2:
            await asyncio.sleep(0.01 + 0.01 * (i % 4))
        if i == SEQ_STEPS // 2:
            values.append(await flaky_step(n, i))
    return {"n": n, "values": values, "total": sum(values)}


@duro.workflow(name="crash.par")
async def crash_par(n: int) -> dict[str, Any]:
    """Mixes sequential steps, gathers of up to PAR_WIDTH steps, timers and a retry."""
    first = await sync_step(n, 0)
    wide = await asyncio.gather(sync_step(n, 1), async_step(n, 2), flaky_step(n, 3))
    await asyncio.sleep(0.02)
    second = await async_step(n, 4)
    fan = await asyncio.gather(*(async_step(n, 10 + j) for j in range(PAR_WIDTH)))
    await asyncio.sleep(0.01)
    pair = await asyncio.gather(sync_step(n, 20), sync_step(n, 21))
    await asyncio.sleep(0.05)
    last = await sync_step(n, 30)
    values = [first, *wide, second, *fan, *pair, last]
    return {"n": n, "values": values, "total": sum(values)}


WORKFLOWS = {"seq": crash_seq, "par": crash_par}


async def amain(args: argparse.Namespace) -> int:
    url = f"sqlite:///{os.path.abspath(args.db)}"
    wf = WORKFLOWS[args.scenario]
    ids = [f"{args.scenario}-{n}" for n in range(args.runs)]
    if not args.adopt:
        # A client-only engine starts the runs, so the worker only ever claims them and
        # max_active holds strictly (runs adopted at start can exceed it for a moment).
        async with duro.Engine(url, worker=False) as client:
            for n, workflow_id in enumerate(ids):
                await client.start(wf, n, id=workflow_id)
    async with duro.Engine(url, lease=args.lease, max_active=args.max_active,
                           poll_interval=0.05) as engine:
        if args.adopt:  # the worker adopts the runs this process creates
            for n, workflow_id in enumerate(ids):
                await engine.start(wf, n, id=workflow_id)
        # The test checks the results in the database against its own oracle.
        await asyncio.gather(*(engine.get_handle(workflow_id).result(timeout=args.timeout)
                               for workflow_id in ids))
    return 0


def main() -> int:
    global _log_fd
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--scenario", choices=sorted(WORKFLOWS), required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--max-active", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--adopt", action="store_true",
                        help="start the runs from the worker's engine, which adopts them")
    args = parser.parse_args()
    _log_fd = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
