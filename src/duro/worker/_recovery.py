"""Runs that kill their workers: take-overs from a dead worker are counted by the store
(``Claim.recoveries``, reset by any write of the run); a run taken over twice in a row
with nothing recorded is a suspect, taken up alone, on trial, so that further deaths are
blamed on it only; past ``max_recoveries`` it is parked. :class:`Trials` owns the one
trial at a time; the rest goes through the :class:`Worker`'s public surface."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from duro.errors import DuroError, ErrorInfo, RecoveryLimitError
from duro.store import Claim

if TYPE_CHECKING:
    from duro.worker._worker import Worker

__all__ = ["SUSPECT_AFTER", "Trials"]

log = logging.getLogger("duro.worker")

# A run taken over from a dead worker this many times in a row, with nothing recorded in
# between, is a suspect: taken up alone, on trial (try_suspect), and watched for
# up to _TRIAL_GRACE seconds before the next suspect. The take-over query counts the
# first two deaths of every run it held, later ones only of the run on trial.
SUSPECT_AFTER = 2
_TRIAL_GRACE = 5.0


class Trials:
    """One suspect run on trial at a time, for one worker."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._lock = asyncio.Lock()

    async def try_suspect(self, claim: Claim) -> None:
        """Take up a run that died with its workers twice in a row, alone: marked on
        trial, then watched until it records something, stops being held here, or
        ``_TRIAL_GRACE`` passes, before the next suspect's trial. A death meanwhile
        counts against it; runs that only shared the process are not blamed for it.
        The claim's slot is given back at the end."""
        w = self._worker
        try:
            async with self._lock:
                if w.stopping:
                    return
                await w.store.mark_trial(claim.run_id, claim.epoch)
                loaded, unreadable = await w.load_runs([claim.run_id])
                stale = w.runs.take_cached(claim.run_id)
                if stale is not None:
                    stale.close()
                w.take_up(claim, None, loaded[claim.run_id], unreadable.get(claim.run_id))
                held = w.runs.active.get(claim.run_id)
                until = time.monotonic() + _TRIAL_GRACE
                while (held is not None and w.runs.holds(held)
                       and held.history_len == claim.history_len and not w.stopping
                       and time.monotonic() < until):
                    await asyncio.sleep(0.02)
        except DuroError as exc:
            log.warning("could not take up suspect run %s: %s", claim.run_id, exc)
            await w.release(claim.run_id, claim.epoch)
        finally:
            w.runs.taken_up(claim)

    async def park_poisoned(self, claim: Claim) -> None:
        """Park a run whose claim found it past the recovery limit, saying why."""
        w = self._worker
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
        w.wake_waiters(claim.run_id)
