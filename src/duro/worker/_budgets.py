"""Budgets before each attempt of a budgeted step (``@duro.step(budgeted=True)``): the
run's own (its spend counted by its instance from its history, no read) and the shared
ones (admitted by the store, which reserves the attempt's estimate in the same
transaction; the attempt's outcome, appended with the budgets it charges in its meta,
adds its spend and releases the reservation).

Not admitted, an attempt does not run: it waits (another attempt of the key is in
flight and the budget may not take both: the run re-checks with a growing delay, its
step in ``backoff``, holding no slot of the thread pool), or its budget is spent: the
step fails for good with ``BudgetExceededError``, recorded, or (``on_exceeded="pause"``)
the run waits, suspended, for the budget to be raised.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

from duro._history import AttemptMeta, BudgetCharge, BudgetExceeded, EventKind
from duro.budget._budget import Budget
from duro.errors import BudgetExceededError, DuroError, ErrorInfo
from duro.store import NewEvent
from duro.store._budgets import BudgetRequest, BudgetVerdict, budget_verdict
from duro.worker import _decide as decide
from duro.workflow._instance import StepCommand

if TYPE_CHECKING:
    from duro.worker._held import HeldRun
    from duro.worker._worker import Worker

__all__ = ["Admitted", "admit", "release"]

log = logging.getLogger("duro.worker")

Admitted = tuple[tuple[BudgetCharge, ...], tuple[BudgetRequest, ...]]
"""What an admitted attempt charges (in its outcome's meta) and the requests it made
(to release them if it is abandoned)."""

_NOTHING: Admitted = ((), ())

_WAIT_FIRST = 0.02
_WAIT_MAX = 1.0
"""A waiting attempt re-checks after 20 ms, doubling up to a second (with jitter, so
that runs waiting on one key do not all ask at once)."""

_PAUSE_POLL = 30.0
"""A paused run re-checks its shared budgets this often (a raised limit is in the
store; the run sleeps suspended in between). A run's own budget, raised by a signal,
wakes it at once."""

_EXCEEDED_TYPE = f"{BudgetExceededError.__module__}.{BudgetExceededError.__qualname__}"


def _run_verdict(b: Budget, held: HeldRun) -> BudgetVerdict:
    inst = held.inst
    return budget_verdict("run", usd=b.usd, tokens=b.tokens, spent_usd=inst.spent_usd,
                          spent_tokens=inst.spent_tokens, settled=0, max_usd=0.0,
                          max_tokens=0, others=0, reserved_usd=0.0, reserved_tokens=0)


async def admit(w: Worker, held: HeldRun, cmd: StepCommand, attempt: int) -> Admitted | None:
    """Whether this attempt may run: what it charges if so; None if not (the run
    waits, pauses, or the refusal was recorded: the caller just returns; the step's
    in-flight count is settled here)."""
    budgets = held.inst.budgets
    for b in budgets:
        if b.key is None and (v := _run_verdict(b, held)).status == "exceeded":
            await _refuse(w, held, cmd, attempt, b, v)
            return None
    keyed = [b for b in budgets if b.key is not None]
    if not keyed:
        return _NOTHING
    now = w.clock.now()
    requests = tuple(BudgetRequest(namespace=held.inst.namespace, key=b.key, window=b.window(now),
                                   period=b.seconds, usd=b.usd, tokens=b.tokens)
                     for b in keyed if b.key is not None)
    try:
        verdict = await w.store.admit_budget(held.run_id, held.epoch, cmd.op, requests,
                                             now=now)
    except DuroError as exc:  # a fault that may pass: ask again in a moment
        log.warning("budget admission of step %s of run %s failed: %s", cmd.step.name,
                    held.run_id, exc)
        verdict = BudgetVerdict(status="wait")
    except asyncio.CancelledError:  # abandoned meanwhile (cancelled, or the run dropped)
        w.spawn(release(w, held, cmd.op, requests))
        held.given_back()
        return None
    if not held.inst.active or cmd.state != "running":  # abandoned meanwhile
        if verdict.status == "admit":
            w.spawn(release(w, held, cmd.op, requests))
        held.inflight -= 1
        return None
    if verdict.status == "admit":
        cmd.budget_waits = 0
        cmd.budget_paused = False
        charges = tuple(BudgetCharge(key=r.key, window=r.window, namespace=r.namespace)
                        for r in requests)
        return charges, requests
    if verdict.status == "wait":
        _wait(w, held, cmd)
        return None
    budget = next(b for b in keyed if b.key == verdict.budget)
    await _refuse(w, held, cmd, attempt, budget, verdict)
    return None


async def release(w: Worker, held: HeldRun, op: int,
                  requests: tuple[BudgetRequest, ...]) -> None:
    """Drop an abandoned attempt's reservations (a lost one's go with its claim)."""
    if not requests:
        return
    try:
        await w.store.release_budget(held.run_id, held.epoch, op, requests)
    except DuroError as exc:
        log.debug("budget reservation not released: %s", exc)


def _wait(w: Worker, held: HeldRun, cmd: StepCommand, delay: float | None = None) -> None:
    """Leave the step for now; it is started again when due (``fire_wakeups``)."""
    if delay is None:
        delay = min(_WAIT_MAX, _WAIT_FIRST * 2 ** cmd.budget_waits)
        delay *= 0.5 + random.random()
        cmd.budget_waits += 1
    cmd.state = "backoff"
    cmd.retry_at = w.clock.now() + delay
    w.wakeups.add(cmd.retry_at, held.run_id)
    held.inflight -= 1
    decide.after(w, held)


async def _refuse(w: Worker, held: HeldRun, cmd: StepCommand, attempt: int, budget: Budget,
                  verdict: BudgetVerdict) -> None:
    inst = held.inst
    if budget.on_exceeded == "pause":
        log.info("step %s of %s paused: budget %r spent (%g of %g %s)", cmd.step.name,
                 inst.workflow_id, budget.name, verdict.spent, verdict.limit, verdict.unit)
        cmd.budget_paused = True
        _wait(w, held, cmd, _PAUSE_POLL)
        return
    if not inst.active or cmd.state != "running":
        held.inflight -= 1
        return
    over = BudgetExceeded(budget=budget.name, unit=verdict.unit, limit=verdict.limit,
                          spent=verdict.spent)
    info = ErrorInfo(type=_EXCEEDED_TYPE, non_retryable=True,
                     message=f"budget {budget.name!r} is spent ({verdict.spent:g} of "
                             f"{verdict.limit:g} {verdict.unit})")
    event = NewEvent(kind=EventKind.STEP_FAILED, ts=w.clock.now(), op=cmd.op,
                     name=cmd.step.name, data=info.to_payload(),
                     meta=AttemptMeta.encode_exceeded(attempt, over))
    ok = await held.write_attempt([event])
    if ok and inst.active:
        inst.apply(event.kind, cmd.op, cmd.step.name, event.data, event.meta, event.ts)
        decide.after(w, held)
