"""Runs that kill their workers: take-overs from a dead worker are counted by the store
(``Claim.recoveries``, reset by any write of the run); a run taken over twice in a row
with nothing recorded is a suspect, taken up alone, on trial, so that further deaths are
blamed on it only; past ``max_recoveries`` it is parked. Functions over the
:class:`Worker`'s state."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from duro.errors import DuroError, ErrorInfo, RecoveryLimitError
from duro.store import Claim

if TYPE_CHECKING:
    from duro.worker._worker import Worker

__all__ = ["SUSPECT_AFTER", "park_poisoned", "try_suspect"]

log = logging.getLogger("duro.worker")

# A run taken over from a dead worker this many times in a row, with nothing recorded in
# between, is a suspect: taken up alone, on trial (try_suspect), and watched for
# up to _TRIAL_GRACE seconds before the next suspect. The take-over query counts the
# first two deaths of every run it held, later ones only of the run on trial.
SUSPECT_AFTER = 2
_TRIAL_GRACE = 5.0


async def try_suspect(w: Worker, claim: Claim) -> None:
    """Take up a run that died with its workers twice in a row, alone: marked on
    trial, then watched until it records something, stops being held here, or
    ``_TRIAL_GRACE`` passes, before the next suspect's trial. A death meanwhile counts
    against it; runs that only shared the process are not blamed for it."""
    try:
        async with w._trial:
            if w._stopping:
                return
            await w.store.mark_trial(claim.run_id, claim.epoch)
            loaded, unreadable = await w.load_runs([claim.run_id])
            stale = w.cache.pop(claim.run_id, None)
            if stale is not None:
                stale.close()
            w._take_up(claim, None, loaded[claim.run_id], unreadable.get(claim.run_id))
            inst = w.active.get(claim.run_id)
            until = time.monotonic() + _TRIAL_GRACE
            while (inst is not None and w.active.get(claim.run_id) is inst
                   and inst.history_len == claim.history_len and not w._stopping
                   and time.monotonic() < until):
                await asyncio.sleep(0.02)
    except DuroError as exc:
        log.warning("could not take up suspect run %s: %s", claim.run_id, exc)
        await w._release(claim.run_id, claim.epoch)
    finally:
        w._reserved -= 1
        w._activating[claim.queue] -= 1

async def park_poisoned(w: Worker, claim: Claim) -> None:
    """Park a run whose claim found it past the recovery limit, saying why."""
    error = RecoveryLimitError(
        f"run {claim.run_id} was taken over from a dead worker {claim.recoveries} "
        f"times in a row with nothing recorded in between (limit {w.max_recoveries})"
        f": its code may be killing the worker process (os._exit, a crash in a C "
        f"extension, running out of memory). Fix the cause, then resume it "
        f"(duro resume ID); new code resumes it by itself")
    log.error("parking run %s of %s: %s", claim.run_id, claim.workflow_name, error)
    wf = w.workflows[claim.workflow_name]
    try:
        await w.store.park(claim.run_id, claim.epoch, error=ErrorInfo(
            type="RecoveryLimitError", message=str(error)).to_payload(),
            code_hash=wf.code_hash, now=w.clock.now())
    except DuroError as exc:
        log.warning("could not park run %s: %s", claim.run_id, exc)
    w._wake_waiters(claim.run_id)
