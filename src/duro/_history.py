"""The history's one definition: what events a run's history holds, what each carries.

A run's history is a list of events, each with a kind, a time, and per kind: an
operation number (``op``, the sequence number of the workflow operation it concerns), a
name (step, workflow, signal, update, marker, state key), a payload (``data``) and
metadata (``meta``, a small JSON object). This module is the only place that knows these
shapes: the store, the workflow core, the worker, the CLI and the read models use its
kinds, kind sets, records and meta codecs (a test keeps event-kind strings out of every
other module but the SQL).

==========================  ======  ==============================  =============================
kind                        op      data                            meta
==========================  ======  ==============================  =============================
run_started                 -       input ``{"args", "kwargs"}``    :class:`RunStartedMeta`
step_started                step    -                               :class:`AttemptMeta`
step_completed              step    result                          :class:`AttemptMeta`
step_retrying               step    error (ErrorInfo payload)       :class:`RetryMeta`
step_failed                 step    error                           :class:`AttemptMeta`
timer_fired                 timer   -                               :class:`TimerMeta`
child_started               child   :class:`ChildStarted`           -
child_completed             child   the child's result              -
child_failed                child   the child's error               :class:`ChildFailedMeta`
signal_received             -       payload (name: the signal)      -
state_set                   -       value (name: the key)           -
update_accepted             -       arguments (name: the update)    :class:`UpdateMeta`
update_completed            -       result                          :class:`UpdateMeta`
update_failed               -       error                           :class:`UpdateMeta`
cancel_requested            -       -                               -
marker                      -       - (name: the change id)         -
search_attributes_upserted  -       -                               :class:`SearchAttributesMeta`
approval_requested          appr.   context (name: the approval)    :class:`ApprovalMeta`
approval_decided            appr.   - (name: the approval)          :class:`DecisionMeta`
approval_timed_out          appr.   - (name: the approval)          :class:`ApprovalMeta`
external_sent               ext.    - (name: the signal, if one)    :class:`ExternalMeta`
external_failed             ext.    error (no such run)             :class:`ExternalMeta`
call_started                call    - (name: endpoint/operation)    :class:`CallMeta`
call_completed              call    the remote result               :class:`CallMeta`
call_failed                 call    error (ErrorInfo payload)       :class:`CallMeta`
run_completed               -       result                          -
run_failed, run_*           -       error                           -
==========================  ======  ==============================  =============================
"""

from __future__ import annotations

import enum
import itertools
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "APPROVAL_KINDS",
    "BUDGET_SIGNAL",
    "CALL_KINDS",
    "CHILD_KINDS",
    "EXTERNAL_KINDS",
    "OUTCOME_KINDS",
    "PAYLOAD_KINDS",
    "PROJECTED_KINDS",
    "STEP_KINDS",
    "STEP_STATUS",
    "TERMINAL_KINDS",
    "UPDATE_STATUS",
    "ApprovalMeta",
    "AttemptMeta",
    "BudgetCharge",
    "BudgetExceeded",
    "CallMeta",
    "ChildFailedMeta",
    "ChildStarted",
    "DecisionMeta",
    "EventKind",
    "EventRecord",
    "ExternalMeta",
    "Headers",
    "NewEvent",
    "RetryMeta",
    "RunStartedMeta",
    "SearchAttributesMeta",
    "SearchValue",
    "SignalMeta",
    "TimerMeta",
    "UpdateMeta",
    "approval_id_of",
    "charges_in",
    "charges_of",
    "event_records",
    "group_events",
    "headers_of",
    "meta_of",
    "spend_of",
    "terminal_kind",
    "usage_of",
]


BUDGET_SIGNAL = "__duro.budget"
"""The signal that sets a run's own budget (``handle.set_budget``): its payload is the
new ``duro.Budget.to_json()``. The run takes it, not the workflow's handlers, and its
``signal_received`` event keeps the change in the history, so replay sees it."""


class EventKind(enum.StrEnum):
    """Every kind of history event (values are what the store keeps)."""

    RUN_STARTED = "run_started"
    STEP_STARTED = "step_started"
    """An at-most-once step's attempt is about to run (committed before it is called)."""
    STEP_COMPLETED = "step_completed"
    STEP_RETRYING = "step_retrying"
    """A failed attempt that will be retried (error, when, last heartbeat)."""
    STEP_FAILED = "step_failed"
    TIMER_FIRED = "timer_fired"
    CHILD_STARTED = "child_started"
    CHILD_COMPLETED = "child_completed"
    CHILD_FAILED = "child_failed"
    """The child ended otherwise than completed, or could not be started."""
    SIGNAL_RECEIVED = "signal_received"
    STATE_SET = "state_set"
    UPDATE_ACCEPTED = "update_accepted"
    UPDATE_COMPLETED = "update_completed"
    UPDATE_FAILED = "update_failed"
    CANCEL_REQUESTED = "cancel_requested"
    MARKER = "marker"
    """``duro.patched(id)`` took the new path."""
    SEARCH_ATTRIBUTES_UPSERTED = "search_attributes_upserted"
    """``duro.upsert_search_attributes(...)``: the run's search attributes changed."""
    APPROVAL_REQUESTED = "approval_requested"
    """``duro.approval(name, context)``: the run waits for a human decision."""
    STREAM_WRITTEN = "stream_written"
    """``duro.stream(value)`` in workflow code: the value (plain JSON) goes to the run's
    stream in the transaction that records this event, so exactly once."""
    STREAM_CLOSED = "stream_closed"
    """``duro.close_stream()``: a ``closed`` marker ends the run's stream for readers."""
    APPROVAL_DECIDED = "approval_decided"
    """Who decided an approval, the verdict, the comment and when (the audit trail)."""
    APPROVAL_TIMED_OUT = "approval_timed_out"
    """No decision came before the approval's timeout: the workflow went on without one."""
    EXTERNAL_SENT = "external_sent"
    """``duro.external_workflow(id).signal(...)`` / ``.cancel()``: the message is in the
    other run's inbox (sent with a delivery id of this run and op: exactly once)."""
    EXTERNAL_FAILED = "external_failed"
    """The other workflow had no live run: the workflow's ``await`` raises."""
    CALL_STARTED = "call_started"
    """``duro.call(endpoint, operation)``: a remote operation was asked for (its id)."""
    CALL_COMPLETED = "call_completed"
    """The remote operation's result reached the run (by callback or by polling)."""
    CALL_FAILED = "call_failed"
    """The remote operation failed, was refused, or the call timed out or was cancelled."""
    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"
    RUN_CANCELLED = "run_cancelled"
    RUN_TERMINATED = "run_terminated"
    RUN_TIMED_OUT = "run_timed_out"
    RUN_CONTINUED_AS_NEW = "run_continued_as_new"


K = EventKind

TERMINAL_KINDS = frozenset({K.RUN_COMPLETED, K.RUN_FAILED, K.RUN_CANCELLED, K.RUN_TERMINATED,
                            K.RUN_TIMED_OUT, K.RUN_CONTINUED_AS_NEW})
"""A run's last event: one of these, and nothing after it."""
STEP_KINDS = frozenset({K.STEP_STARTED, K.STEP_COMPLETED, K.STEP_RETRYING, K.STEP_FAILED})
CHILD_KINDS = frozenset({K.CHILD_STARTED, K.CHILD_COMPLETED, K.CHILD_FAILED})
EXTERNAL_KINDS = frozenset({K.EXTERNAL_SENT, K.EXTERNAL_FAILED})
OUTCOME_KINDS = frozenset({K.STEP_COMPLETED, K.STEP_FAILED, K.TIMER_FIRED})
"""Recorded at most once per operation (a unique index in both stores' schema)."""
APPROVAL_KINDS = frozenset({K.APPROVAL_REQUESTED, K.APPROVAL_DECIDED, K.APPROVAL_TIMED_OUT})
CALL_KINDS = frozenset({K.CALL_STARTED, K.CALL_COMPLETED, K.CALL_FAILED})
"""A remote call's record (``duro.call``): written by the workflow code itself, so replay
passes over them (the outcome comes back through the step and the signal they record)."""
STREAM_KINDS = frozenset({K.STREAM_WRITTEN, K.STREAM_CLOSED})
"""Workflow code's writes to the run's stream (a value, the close)."""
PROJECTED_KINDS = frozenset({K.STATE_SET, K.UPDATE_ACCEPTED, K.UPDATE_COMPLETED,
                             K.UPDATE_FAILED, K.SEARCH_ATTRIBUTES_UPSERTED,
                             K.APPROVAL_REQUESTED, K.APPROVAL_TIMED_OUT, *STREAM_KINDS})
"""Also kept in read models (published state, update outcomes, search attributes, pending
approvals, the run's stream for workflow code's writes), in the same transaction.
``approval_decided`` is not: the decision is taken in the approvals table first
(atomically, by whoever decides), then reaches the run."""

UPDATE_STATUS: dict[str, str] = {K.UPDATE_ACCEPTED: "accepted", K.UPDATE_COMPLETED: "completed",
                                 K.UPDATE_FAILED: "failed"}
"""Where an update stands (its read model's status) after each ``update_*`` event."""
STEP_STATUS: dict[str, str] = {K.STEP_STARTED: "started", K.STEP_COMPLETED: "completed",
                               K.STEP_FAILED: "failed", K.STEP_RETRYING: "retrying"}
"""Where a step stands after each of its events (summaries, the CLI)."""

PAYLOAD_KINDS = frozenset({K.RUN_STARTED, K.STEP_COMPLETED, K.CHILD_COMPLETED,
                           K.SIGNAL_RECEIVED, K.STATE_SET, K.UPDATE_ACCEPTED,
                           K.UPDATE_COMPLETED, K.RUN_COMPLETED, K.RUN_CONTINUED_AS_NEW,
                           K.APPROVAL_REQUESTED, K.CALL_COMPLETED})
"""Events whose data is a user's payload (an input, a result, a signal, a value): what
the data converter's codecs encode. Errors and meta stay plain JSON."""

_TERMINAL_OF_STATUS = {"completed": K.RUN_COMPLETED, "failed": K.RUN_FAILED,
                       "cancelled": K.RUN_CANCELLED, "terminated": K.RUN_TERMINATED,
                       "timed_out": K.RUN_TIMED_OUT,
                       "continued_as_new": K.RUN_CONTINUED_AS_NEW}


def terminal_kind(status: str) -> EventKind:
    """The last event of a run that ended with this status."""
    return _TERMINAL_OF_STATUS[status]


# -- events as written and as read ---------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class NewEvent:
    """An event to append; the store assigns its sequence number."""

    kind: str
    ts: float
    op: int | None = None
    name: str | None = None
    data: bytes | None = None
    meta: bytes | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class EventRecord:
    """One stored history event."""

    run_id: str
    seq: int
    kind: str
    ts: float
    op: int | None
    name: str | None
    data: bytes | None
    meta: bytes | None


# The slot descriptors of EventRecord's fields in the order of a history row.
_EVENT_SLOTS = tuple(EventRecord.__dict__[f].__set__
                     for f in ("seq", "kind", "ts", "op", "name", "data", "meta"))
_set_run_id = EventRecord.__dict__["run_id"].__set__


def event_records(run_id: str, rows: Iterable[Sequence[Any]]) -> list[EventRecord]:
    """The history events of a run from ``(seq, kind, ts, op, name, data, meta)`` rows.

    Equivalent to ``EventRecord(run_id=run_id, seq=row[0], ...)`` per row, at ~40% of
    the cost: a frozen dataclass's ``__init__`` assigns each field through
    ``object.__setattr__``, which was a third of loading a 10,000-event history.
    """
    new = object.__new__
    s_seq, s_kind, s_ts, s_op, s_name, s_data, s_meta = _EVENT_SLOTS
    out = []
    for seq, kind, ts, op, name, data, meta in rows:
        ev = new(EventRecord)
        _set_run_id(ev, run_id)
        s_seq(ev, seq)
        s_kind(ev, kind)
        s_ts(ev, ts)
        s_op(ev, op)
        s_name(ev, name)
        s_data(ev, data)
        s_meta(ev, meta)
        out.append(ev)
    return out


def group_events(rows: Iterable[Sequence[Any]]) -> dict[str, list[EventRecord]]:
    """Histories of several runs from ``(run_id, seq, kind, ...)`` rows ordered by run."""
    return {run_id: event_records(run_id, (row[1:] for row in rows))
            for run_id, rows in itertools.groupby(rows, key=operator.itemgetter(0))}


# -- what events carry ------------------------------------------------------------------------


def meta_of(meta: bytes | None) -> dict[str, Any]:
    """An event's meta object (empty when absent, or not an object)."""
    if not meta:
        return {}
    raw = orjson.loads(meta)
    return raw if isinstance(raw, dict) else {}


def _number(value: Any) -> float | None:
    """A number of a meta object (None: absent, or not a number in a damaged record)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def usage_of(raw: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    """The ``usage`` list of a step outcome's meta object (what is not a JSON object in
    it, in a damaged record, is left out)."""
    usage = raw.get("usage")
    if not isinstance(usage, list):
        return ()
    return tuple(u for u in usage if isinstance(u, dict))


def spend_of(usage: Iterable[Mapping[str, Any]]) -> tuple[float, int]:
    """(US dollars, tokens) of an attempt's recorded usage (a call of unknown cost
    counts its tokens, no dollars): what it charges to its budgets."""
    usd, tokens = 0.0, 0
    for item in usage:
        cost = item.get("cost")
        if isinstance(cost, int | float) and not isinstance(cost, bool) and cost > 0:
            usd += float(cost)
        for field in ("input_tokens", "output_tokens"):
            count = item.get(field)
            if isinstance(count, int) and not isinstance(count, bool) and count > 0:
                tokens += count
    return usd, tokens


Headers = Mapping[str, str]
"""Context carried with a run, its steps, children and messages (trace ids, tenant,
principal): strings by string (see ``duro.interceptors``)."""


def headers_of(raw: Any) -> dict[str, str] | None:
    """Headers from their JSON form (None: none, or not a map of strings)."""
    if not isinstance(raw, dict) or not raw:
        return None
    return {str(k): str(v) for k, v in raw.items()}


SearchValue = str | int | float | bool
"""A search attribute's value (``duro._search`` says which are allowed)."""


def _attributes(raw: Any) -> dict[str, Any]:
    """Search attributes as recorded (a JSON object; anything else reads as none)."""
    return raw if isinstance(raw, dict) else {}


@dataclass(frozen=True, kw_only=True, slots=True)
class RunStartedMeta:
    """What a child (or a run with a deadline, headers or search attributes) records at
    its start."""

    parent_run_id: str | None = None
    parent_op: int | None = None
    deadline_at: float | None = None
    headers: Headers | None = None
    search_attributes: Mapping[str, SearchValue] | None = None
    """The attributes given at the start (plain JSON in meta: the store indexes them)."""
    namespace: str | None = None
    """The run's namespace, unless ``"default"`` (``duro.info().namespace`` on replay)."""
    budgets: tuple[Mapping[str, Any], ...] = ()
    """The budgets given at the start (``duro.Budget.to_json()`` each)."""

    def encode(self) -> bytes | None:
        """The meta bytes (None when there is nothing to say: a plain start). The
        ``headers``, ``search_attributes``, ``namespace`` and ``budgets`` keys are there
        only when some were given, so that other starts' meta is what it always was."""
        if self.parent_run_id is None and self.deadline_at is None and not self.headers \
                and not self.search_attributes and not self.namespace and not self.budgets:
            return None
        raw: dict[str, Any] = {"parent_run_id": self.parent_run_id,
                               "parent_op": self.parent_op, "deadline_at": self.deadline_at}
        if self.headers:
            raw["headers"] = dict(self.headers)
        if self.search_attributes:
            raw["search_attributes"] = dict(self.search_attributes)
        if self.namespace:
            raw["namespace"] = self.namespace
        if self.budgets:
            raw["budgets"] = [dict(b) for b in self.budgets]
        return orjson.dumps(raw)

    @classmethod
    def decode(cls, meta: bytes | None) -> RunStartedMeta:
        raw = meta_of(meta)
        attributes = _attributes(raw.get("search_attributes"))
        namespace = raw.get("namespace")
        budgets = raw.get("budgets")
        return cls(parent_run_id=raw.get("parent_run_id"), parent_op=raw.get("parent_op"),
                   deadline_at=raw.get("deadline_at"), headers=headers_of(raw.get("headers")),
                   search_attributes=attributes or None,
                   namespace=namespace if isinstance(namespace, str) else None,
                   budgets=tuple(b for b in budgets if isinstance(b, dict))
                   if isinstance(budgets, list) else ())


@dataclass(frozen=True, kw_only=True, slots=True)
class SignalMeta:
    """What a signal (its inbox message, then its ``signal_received`` event) carries
    besides its payload: the sender's headers, and its delivery id if it was sent with
    one (``Client.signal(..., id=)``)."""

    headers: Headers | None = None
    id: str | None = None

    def encode(self) -> bytes | None:
        """The meta bytes (None without headers or id)."""
        if self.id is None:
            return orjson.dumps({"headers": dict(self.headers)}) if self.headers else None
        if not self.headers:
            return orjson.dumps({"id": self.id})
        return orjson.dumps({"id": self.id, "headers": dict(self.headers)})

    @classmethod
    def decode(cls, meta: bytes | None) -> SignalMeta:
        raw = meta_of(meta)
        sent = raw.get("id")
        return cls(headers=headers_of(raw.get("headers")),
                   id=sent if isinstance(sent, str) else None)


@dataclass(frozen=True, kw_only=True, slots=True)
class SearchAttributesMeta:
    """The meta of ``search_attributes_upserted``: the keys set (a value) and removed
    (``None``), in meta and not in data so that codecs leave it readable: the store
    indexes it in the same transaction."""

    attributes: Mapping[str, SearchValue | None]

    def encode(self) -> bytes:
        return orjson.dumps({"attributes": dict(self.attributes)})

    @classmethod
    def decode(cls, meta: bytes | None) -> SearchAttributesMeta:
        return cls(attributes=_attributes(meta_of(meta).get("attributes")))


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetCharge:
    """A shared budget a step outcome's usage is charged to: its key and window, and
    the namespace of the run (keys are per namespace)."""

    key: str
    window: float
    namespace: str = "default"

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "window": self.window, "namespace": self.namespace}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> BudgetCharge:
        return cls(key=str(raw.get("key")), window=float(raw.get("window") or 0.0),
                   namespace=str(raw.get("namespace") or "default"))


def charges_in(raw: Mapping[str, Any]) -> tuple[BudgetCharge, ...]:
    """The ``charges`` of a step outcome's meta object."""
    charges = raw.get("charges")
    if not isinstance(charges, list):
        return ()
    return tuple(BudgetCharge.from_json(c) for c in charges if isinstance(c, dict))


def charges_of(event: NewEvent) -> tuple[BudgetCharge, ...]:
    """The shared budgets an event to append charges (none for all but step outcomes
    of budgeted steps; a substring test spares the others a JSON parse)."""
    meta = event.meta
    if meta is None or event.kind not in STEP_KINDS or b'"charges"' not in meta:
        return ()
    return charges_in(meta_of(meta))


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetExceeded:
    """Why a budgeted step was refused: which budget (its key, or ``"run"``), which
    limit (``usd`` or ``tokens``), the limit and what was spent."""

    budget: str
    unit: str
    limit: float
    spent: float

    def to_json(self) -> dict[str, Any]:
        return {"budget": self.budget, "unit": self.unit, "limit": self.limit,
                "spent": self.spent}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> BudgetExceeded:
        return cls(budget=str(raw.get("budget")), unit=str(raw.get("unit")),
                   limit=float(raw.get("limit") or 0), spent=float(raw.get("spent") or 0))


@dataclass(frozen=True, kw_only=True, slots=True)
class AttemptMeta:
    """A step attempt: its start (``step_started``, at-most-once steps only) or its
    outcome: which attempt, how long it took, where it ran."""

    attempt: int
    duration: float | None = None
    queue: str | None = None
    """The step queue it was routed to (None: the run's own worker ran it)."""
    outcome_unknown: bool = False
    """On a ``step_failed``: the at-most-once attempt was started and its worker was lost
    before recording how it ended (the workflow gets ``StepOutcomeUnknownError``)."""
    usage: tuple[Mapping[str, Any], ...] = ()
    """What the attempt spent (``duro.record_usage``): one JSON object per call, the shape
    of ``duro.Usage.to_json()``. Kept in the outcome's meta, so it is recorded exactly
    once with it."""
    cache_hit: bool = False
    """On a ``step_completed``: the result came from the step's durable cache
    (``@duro.step(cache=...)``); the function was not called, so nothing was spent."""
    cached_from: str | None = None
    """With ``cache_hit``: the run whose attempt stored the result."""
    awaiting: bool = False
    """On a ``step_started``: the attempt called ``duro.complete_later()`` and waits for
    its outcome from outside, by its token (a restart waits on, it does not run it)."""
    deadline: float | None = None
    """With ``awaiting``: when the wait times out (the step's ``timeout`` or
    ``total_timeout``, durable time; None: it waits as long as it takes)."""
    charges: tuple[BudgetCharge, ...] = ()
    """The shared budgets (key, window) the attempt's usage is charged to: the store
    adds it to their spend in the same write (:func:`charges_of`)."""
    exceeded: BudgetExceeded | None = None
    """On a ``step_failed``: the attempt was not run, a budget being spent (the workflow
    gets ``BudgetExceededError``)."""

    @staticmethod
    def encode(attempt: int, duration: float, queue: str | None = None,
               usage: Sequence[Mapping[str, Any]] | None = None,
               charges: Sequence[BudgetCharge] = ()) -> bytes:
        """The meta bytes, without making a record (the hot path of every step)."""
        if queue is None and not usage and not charges:
            return orjson.dumps({"attempt": attempt, "duration": round(duration, 6)})
        raw: dict[str, Any] = {"attempt": attempt, "duration": round(duration, 6)}
        if queue is not None:
            raw["queue"] = queue
        if usage:
            raw["usage"] = list(usage)
        if charges:
            raw["charges"] = [c.to_json() for c in charges]
        return orjson.dumps(raw)

    @staticmethod
    def encode_exceeded(attempt: int, exceeded: BudgetExceeded) -> bytes:
        """The meta of the ``step_failed`` that records a budget refusal."""
        return orjson.dumps({"attempt": attempt, "exceeded": exceeded.to_json()})

    @staticmethod
    def encode_started(attempt: int) -> bytes:
        """The meta of ``step_started``."""
        return orjson.dumps({"attempt": attempt})

    @staticmethod
    def encode_awaiting(attempt: int, deadline: float | None) -> bytes:
        """The meta of the ``step_started`` of an attempt completed from outside."""
        if deadline is None:
            return orjson.dumps({"attempt": attempt, "awaiting": True})
        return orjson.dumps({"attempt": attempt, "awaiting": True, "deadline": deadline})

    @staticmethod
    def encode_unknown(attempt: int) -> bytes:
        """The meta of the ``step_failed`` that records an unknown outcome."""
        return orjson.dumps({"attempt": attempt, "outcome_unknown": True})

    @staticmethod
    def encode_hit(attempt: int, cached_from: str) -> bytes:
        """The meta of a ``step_completed`` whose result came from the cache."""
        return orjson.dumps({"attempt": attempt, "duration": 0.0, "cache_hit": True,
                             "cached_from": cached_from})

    @classmethod
    def decode(cls, meta: bytes | None) -> AttemptMeta:
        raw = meta_of(meta)
        cached_from = raw.get("cached_from")
        exceeded = raw.get("exceeded")
        return cls(attempt=int(raw.get("attempt", 1)), duration=raw.get("duration"),
                   queue=raw.get("queue"), outcome_unknown=raw.get("outcome_unknown") is True,
                   usage=usage_of(raw), cache_hit=raw.get("cache_hit") is True,
                   cached_from=cached_from if isinstance(cached_from, str) else None,
                   awaiting=raw.get("awaiting") is True,
                   deadline=_number(raw.get("deadline")),
                   charges=charges_in(raw),
                   exceeded=BudgetExceeded.from_json(exceeded)
                   if isinstance(exceeded, dict) else None)


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryMeta:
    """A failed attempt that will be retried (``step_retrying``)."""

    attempt: int | None
    """The attempt that failed (None in a damaged record: the next one is assumed)."""
    duration: float | None
    retry_at: float | None
    first_started: float | None
    heartbeat: Any = None
    """The step's last heartbeat details, which the next attempt sees."""
    usage: tuple[Mapping[str, Any], ...] = ()
    """What the failed attempt spent (see :attr:`AttemptMeta.usage`)."""
    charges: tuple[BudgetCharge, ...] = ()
    """See :attr:`AttemptMeta.charges`: a failed attempt's usage is charged too."""

    def encode(self) -> bytes:
        raw: dict[str, Any] = {
            "attempt": self.attempt,
            "duration": None if self.duration is None else round(self.duration, 6),
            "retry_at": self.retry_at, "first_started": self.first_started,
            "heartbeat": self.heartbeat}
        if self.usage:
            raw["usage"] = list(self.usage)
        if self.charges:
            raw["charges"] = [c.to_json() for c in self.charges]
        return orjson.dumps(raw)

    @classmethod
    def decode(cls, meta: bytes | None) -> RetryMeta:
        raw = meta_of(meta)
        attempt = raw.get("attempt")
        return cls(attempt=None if attempt is None else int(attempt),
                   duration=raw.get("duration"),
                   retry_at=raw.get("retry_at"), first_started=raw.get("first_started"),
                   heartbeat=raw.get("heartbeat"), usage=usage_of(raw),
                   charges=charges_in(raw))


@dataclass(frozen=True, kw_only=True, slots=True)
class UpdateMeta:
    """Which update an ``update_*`` event concerns (and, on the request and its
    ``update_accepted`` event, the sender's headers)."""

    update_id: str
    headers: Headers | None = None

    def encode(self) -> bytes:
        if self.headers:
            return orjson.dumps({"update_id": self.update_id, "headers": dict(self.headers)})
        return orjson.dumps({"update_id": self.update_id})

    @classmethod
    def decode(cls, meta: bytes | None) -> UpdateMeta:
        raw = meta_of(meta)
        return cls(update_id=str(raw.get("update_id")), headers=headers_of(raw.get("headers")))

    @staticmethod
    def update_id_of(meta: bytes | None) -> str | None:
        """The update id, or None when the event does not name one."""
        update_id = meta_of(meta).get("update_id")
        return None if update_id is None else str(update_id)


@dataclass(frozen=True, kw_only=True, slots=True)
class ChildStarted:
    """The data of ``child_started``: which run the child is."""

    workflow_id: str
    run_id: str

    def encode(self) -> bytes:
        return orjson.dumps({"workflow_id": self.workflow_id, "run_id": self.run_id})

    @classmethod
    def decode(cls, data: bytes | None) -> ChildStarted:
        """Raises KeyError when the record lacks them (a damaged history)."""
        raw = meta_of(data)
        return cls(workflow_id=str(raw["workflow_id"]), run_id=str(raw["run_id"]))


@dataclass(frozen=True, kw_only=True, slots=True)
class ChildFailedMeta:
    """How a child ended when not completed: ``failed``, ``cancelled``, ``terminated``,
    ``timed_out``, or ``not_started`` (its id was taken, it would nest too deep, the
    database refused it)."""

    status: str

    def encode(self) -> bytes:
        return orjson.dumps({"status": self.status})

    @classmethod
    def decode(cls, meta: bytes | None) -> ChildFailedMeta:
        return cls(status=str(meta_of(meta).get("status", "failed")))


@dataclass(frozen=True, kw_only=True, slots=True)
class TimerMeta:
    """The meta of ``timer_fired``: when the timer was set (the workflow's time then) and
    when it was due, so that its whole wait can be drawn (the event's own time is when it
    fired). Histories recorded before it have none: both None."""

    set_at: float | None = None
    due_at: float | None = None

    def encode(self) -> bytes:
        return orjson.dumps({"set_at": self.set_at, "due_at": self.due_at})

    @classmethod
    def decode(cls, meta: bytes | None) -> TimerMeta:
        raw = meta_of(meta)
        set_at, due_at = raw.get("set_at"), raw.get("due_at")
        return cls(set_at=float(set_at) if isinstance(set_at, (int, float)) else None,
                   due_at=float(due_at) if isinstance(due_at, (int, float)) else None)


@dataclass(frozen=True, kw_only=True, slots=True)
class ExternalMeta:
    """The meta of ``external_sent`` / ``external_failed``: what was sent (``signal`` or
    ``cancel``), to which workflow id, and the run that got it (None: none did)."""

    message: str
    workflow_id: str
    run_id: str | None = None

    def encode(self) -> bytes:
        return orjson.dumps({"message": self.message, "workflow_id": self.workflow_id,
                             "run_id": self.run_id})

    @classmethod
    def decode(cls, meta: bytes | None) -> ExternalMeta:
        raw = meta_of(meta)
        run_id = raw.get("run_id")
        return cls(message=str(raw.get("message", "")), workflow_id=str(raw.get("workflow_id", "")),
                   run_id=run_id if isinstance(run_id, str) else None)

    @staticmethod
    def delivery_id(run_id: str, op: int) -> str:
        """The delivery (signal) id of the message a run sends at operation ``op``: the
        same on every try, so the other run takes it once."""
        return f"duro-external:{run_id}:{op}"


def approval_id_of(run_id: str, op: int) -> str:
    """The id of the approval a run requested at operation ``op``: stable (a replay, the
    store and every client derive the same one) and unique across runs."""
    return f"{run_id}.{op}"


@dataclass(frozen=True, kw_only=True, slots=True)
class ApprovalMeta:
    """The meta of ``approval_requested`` (and ``approval_timed_out``): which approval,
    and until when it may be decided (None: no timeout)."""

    approval_id: str
    deadline_at: float | None = None

    def encode(self) -> bytes:
        return orjson.dumps({"approval_id": self.approval_id, "deadline_at": self.deadline_at})

    @classmethod
    def decode(cls, meta: bytes | None) -> ApprovalMeta:
        raw = meta_of(meta)
        deadline = raw.get("deadline_at")
        return cls(approval_id=str(raw.get("approval_id", "")),
                   deadline_at=float(deadline) if isinstance(deadline, (int, float)) else None)


@dataclass(frozen=True, kw_only=True, slots=True)
class DecisionMeta:
    """A human's decision on an approval: the meta of its inbox message and of its
    ``approval_decided`` event (plain JSON, so that an audit reads it without codecs)."""

    approval_id: str
    approved: bool
    by: str
    comment: str | None
    at: float
    """When it was decided (the decider's clock; the event's own time is the run's)."""

    def encode(self) -> bytes:
        return orjson.dumps({"approval_id": self.approval_id, "approved": self.approved,
                             "by": self.by, "comment": self.comment, "at": self.at})

    @classmethod
    def decode(cls, meta: bytes | None) -> DecisionMeta:
        raw = meta_of(meta)
        comment = raw.get("comment")
        at = raw.get("at")
        return cls(approval_id=str(raw.get("approval_id", "")),
                   approved=raw.get("approved") is True, by=str(raw.get("by", "")),
                   comment=comment if isinstance(comment, str) else None,
                   at=float(at) if isinstance(at, (int, float)) else 0.0)


@dataclass(frozen=True, kw_only=True, slots=True)
class CallMeta:
    """The meta of a ``call_*`` event: which remote operation (its idempotency id at the
    callee), where, and for an outcome how it came back (``"callback"``, ``"poll"``) and
    how it ended when not completed (``failed``, ``refused``, ``timed_out``,
    ``cancelled``)."""

    operation_id: str
    endpoint: str | None = None
    """The callee's base URL (never its token)."""
    via: str | None = None
    status: str | None = None

    def encode(self) -> bytes:
        raw: dict[str, Any] = {"operation_id": self.operation_id}
        for key in ("endpoint", "via", "status"):
            value = getattr(self, key)
            if value is not None:
                raw[key] = value
        return orjson.dumps(raw)

    @classmethod
    def decode(cls, meta: bytes | None) -> CallMeta:
        raw = meta_of(meta)

        def text(key: str) -> str | None:
            value = raw.get(key)
            return value if isinstance(value, str) else None

        return cls(operation_id=str(raw.get("operation_id", "")), endpoint=text("endpoint"),
                   via=text("via"), status=text("status"))
