"""Subprocess app for the at-most-once kill -9 test (tests/acceptance/test_at_most_once_kill.py).

``python amo_app.py --url URL --log LOG --id ID --block`` starts run ID of ``amo_kill.pay``,
whose at-most-once step appends a line to LOG (its side effect: one ``os.write`` on an
``O_APPEND`` descriptor, which survives SIGKILL) and then blocks until the test kills the
process. Run again without ``--block``, it serves as a worker until run ID ends and
prints the run's result as JSON: a step run a second time would log a second line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import duro

_log_fd: int | None = None
_block = False


@duro.step(name="amo_kill.charge", at_most_once=True)
async def charge(amount: int) -> str:
    info = duro.step_info()
    assert _log_fd is not None, "the side-effect log is not open"
    os.write(_log_fd, f"{info.workflow_id} {info.attempt} {os.getpid()}\n".encode())
    if _block:
        await asyncio.Event().wait()  # until SIGKILL
    return f"charged:{amount}"


@duro.step(name="amo_kill.lookup")
async def lookup(amount: int) -> str:
    return f"looked-up:{amount}"


@duro.workflow(name="amo_kill.pay")
async def pay(amount: int) -> dict[str, Any]:
    try:
        return {"charged": await charge(amount)}
    except duro.StepOutcomeUnknownError as exc:
        return {"unknown": exc.attempts, "reconciled": await lookup(amount)}


async def amain(args: argparse.Namespace) -> int:
    async with duro.Engine(args.url, lease=1.0, poll_interval=0.05) as engine:
        if args.block:
            await engine.start(pay, 10, id=args.id)
            await asyncio.Event().wait()
        result = await engine.get_handle(args.id).result(timeout=30)
    print(json.dumps(result), flush=True)
    return 0


def main() -> int:
    global _log_fd, _block
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--block", action="store_true")
    args = parser.parse_args()
    _block = args.block
    _log_fd = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
