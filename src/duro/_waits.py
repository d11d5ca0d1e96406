"""What a run waits for now (``handle.waiting()``, ``GET /v1/runs/{id}/waiting``, the web
UI's "waiting for"): the one definition of the waits a worker records as a run
suspends, and the read model a client builds from them.

The history records what happened, not what the code waits for: a signal is recorded
when it arrives, a step routed to a queue when it ends. So the worker writes, with each
suspension, what only it knows then (``runs.waits``, JSON, rewritten at every
suspension): the signal names the workflow's code awaits and since when (its durable
time when the wait began), its signal handlers, its open ``wait_condition`` calls, its
pending timers (when set, when due). The store adds the run's step tasks not done yet
(pending: no worker of the queue claimed it yet; or claimed, by which worker). A leaf
module: the worker, the store's callers and the client use it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from duro._clock import iso, parse_time, utc

if TYPE_CHECKING:
    from duro.store._records import OpenTask

__all__ = ["RunWaits", "SignalWait", "StepTaskWait", "TimerWait", "encode_waits"]


def encode_waits(*, signals: Iterable[tuple[str, float]], handlers: Iterable[str],
                 conditions: int, timers: Iterable[tuple[int, float, float]]) -> str:
    """The stored form (``runs.waits``) of what a suspending run waits for.

    Args:
        signals: ``(name, since)`` of each ``wait_for_signal`` not yet answered.
        handlers: The names of its signal handlers (``duro.on_signal``).
        conditions: How many ``wait_condition`` calls are open.
        timers: ``(op, set_at, fire_at)`` of each pending timer.
    """
    return orjson.dumps({
        "signals": [[name, since] for name, since in signals],
        "handlers": sorted(handlers), "conditions": conditions,
        "timers": [[op, set_at, fire_at] for op, set_at, fire_at in timers],
    }).decode()


@dataclass(frozen=True, kw_only=True)
class SignalWait:
    """A ``duro.wait_for_signal(name)`` the run's code is in."""

    name: str
    since: dt.datetime
    """When the wait began (the workflow's durable time then)."""


@dataclass(frozen=True, kw_only=True)
class TimerWait:
    """A pending durable timer (``duro.sleep``, a wait's timeout, a deadline)."""

    op: int
    set_at: dt.datetime
    fire_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class StepTaskWait:
    """An attempt of a step routed to a queue (``@duro.step(queue=...)``), not done yet."""

    op: int
    step: str
    queue: str
    attempt: int
    claimed_by: str | None
    """The worker running it; None: no worker of the queue has claimed it yet."""
    since: dt.datetime
    """When it was queued (or, once claimed, when it was claimed)."""


@dataclass(frozen=True, kw_only=True)
class RunWaits:
    """What a run waits for now, beyond what its history says.

    ``recorded`` is False when the run is not suspended (its waits are those of the
    running code, known to its worker only) or suspended without its waits recorded
    (by a duro before they were). Step tasks are read whatever the status.
    """

    workflow_id: str
    run_id: str
    status: str
    recorded: bool
    signals: tuple[SignalWait, ...] = ()
    signal_handlers: tuple[str, ...] = ()
    conditions: int = 0
    """Open ``duro.wait_condition`` calls (their predicates are code: not named here)."""
    timers: tuple[TimerWait, ...] = ()
    tasks: tuple[StepTaskWait, ...] = ()

    @classmethod
    def from_store(cls, *, workflow_id: str, run_id: str, status: str, waits: str | None,
                   tasks: Iterable[OpenTask]) -> RunWaits:
        """The read model from the stored waits (meaningful while ``status`` is
        ``suspended``: a value left by an earlier suspension is ignored otherwise) and
        the run's open step tasks."""
        stored: Mapping[str, Any] = {}
        if waits is not None and status == "suspended":
            try:
                loaded = orjson.loads(waits)
            except orjson.JSONDecodeError:
                loaded = None
            stored = loaded if isinstance(loaded, dict) else {}
        return cls(
            workflow_id=workflow_id, run_id=run_id, status=status, recorded=bool(stored),
            signals=tuple(SignalWait(name=str(n), since=utc(float(s)))
                          for n, s in stored.get("signals", ())),
            signal_handlers=tuple(str(n) for n in stored.get("handlers", ())),
            conditions=int(stored.get("conditions", 0)),
            timers=tuple(TimerWait(op=int(op), set_at=utc(float(s)), fire_at=utc(float(f)))
                         for op, s, f in stored.get("timers", ())),
            tasks=tuple(StepTaskWait(
                op=t.op, step=t.step, queue=t.queue, attempt=t.attempt, claimed_by=t.owner,
                since=utc(t.updated_at if t.owner else t.created_at)) for t in tasks))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times in ISO 8601, UTC): the form of
        ``GET /v1/runs/{id}/waiting``."""
        return {
            "workflow_id": self.workflow_id, "run_id": self.run_id, "status": self.status,
            "recorded": self.recorded,
            "signals": [{"name": s.name, "since": iso(s.since)} for s in self.signals],
            "signal_handlers": list(self.signal_handlers), "conditions": self.conditions,
            "timers": [{"op": t.op, "set_at": iso(t.set_at), "fire_at": iso(t.fire_at)}
                       for t in self.timers],
            "tasks": [{"op": t.op, "step": t.step, "queue": t.queue, "attempt": t.attempt,
                       "claimed_by": t.claimed_by, "since": iso(t.since)} for t in self.tasks],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunWaits:
        """The waits from their JSON form (:meth:`to_json`, as the HTTP API sends it).

        Raises:
            KeyError, ValueError: Not such a form.
        """
        return cls(
            workflow_id=data["workflow_id"], run_id=data["run_id"], status=data["status"],
            recorded=bool(data["recorded"]),
            signals=tuple(SignalWait(name=s["name"], since=parse_time(s["since"]))
                          for s in data.get("signals", ())),
            signal_handlers=tuple(data.get("signal_handlers", ())),
            conditions=int(data.get("conditions", 0)),
            timers=tuple(TimerWait(op=t["op"], set_at=parse_time(t["set_at"]),
                                   fire_at=parse_time(t["fire_at"]))
                         for t in data.get("timers", ())),
            tasks=tuple(StepTaskWait(op=t["op"], step=t["step"], queue=t["queue"],
                                     attempt=t["attempt"], claimed_by=t.get("claimed_by"),
                                     since=parse_time(t["since"])) for t in data.get("tasks", ())))
