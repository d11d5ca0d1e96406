"""The engine's store rules, once: plain functions (and small state objects) over plain
data, for every store to apply inside its transactions.

A store reads rows, hands them to these rules, and writes what they decide; nothing here
touches a database, so each rule is unit-tested without one (``tests/unit/test_rules.py``).

* **Starting runs**: the workflow id's policies (:func:`check_existing`), deduplication and
  debounce (:func:`dedup_hit`, :func:`debounce_until`), and every column of a new run
  (:func:`plan_run`).
* **Namespaces**: what a caller scoped to a namespace may see of a run or a schedule
  (:func:`in_namespace`), and what it is told of a workflow id another namespace holds
  (:func:`check_existing`, :func:`taken`).
* **Admission** to a queue with limits (:func:`queue_room`, :func:`admission`,
  :class:`Admission`), and a worker's **fair share** of the ready runs when others
  claim from the same database (:func:`fair_share`).
* **A run's end**: what it does to its parent and children (:func:`closing_effects`).
* **Schedules**: the overlap policy tick by tick (:class:`Firing`), and what a code
  declaration changes (:func:`definition_change`).
* **Copies** of a history (reset, retry, fork: :func:`copied_events`,
  :func:`check_copy_target`) and the inbox a successor inherits (:func:`carried_over`).
* **Children**: the parent's record of a child started or refused (:func:`too_deep`,
  :func:`child_started_event`, :func:`child_not_started`).
* **Streams** out of running steps: what a batch of an execution does to its op's
  stream (:func:`stream_plan`).
* **Search attributes and listings**: how a value is matched (:func:`index_value`), the
  rows an upsert writes (:func:`attribute_params`), the attributes a copied history
  leaves (:func:`copied_attributes`), and which query lists a page (:func:`list_query`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from duro._checks import DEFAULT_NAMESPACE
from duro._history import (
    TERMINAL_KINDS,
    ApprovalMeta,
    ChildFailedMeta,
    ChildStarted,
    EventKind,
    RunStartedMeta,
    SearchAttributesMeta,
    SearchValue,
    UpdateMeta,
    approval_id_of,
)
from duro._messages import ChildDone, MessageKind
from duro.errors import (
    ErrorInfo,
    StoreError,
    WorkflowAlreadyStartedError,
    WorkflowIdTakenError,
)
from duro.schedules._spec import tick_workflow_id
from duro.store._records import (
    LIVE_STATUSES,
    IdConflictPolicy,
    IdReusePolicy,
    InboxMessage,
    Message,
    NewEvent,
    Placement,
    QueueConfig,
    RunLinks,
    RunRecord,
    RunStatus,
)
from duro.store._schedules import ScheduleDefinition, ScheduleRecord

__all__ = [
    "CARRIED_KINDS",
    "PARENT_CLOSED",
    "TIMED_OUT",
    "TOO_DEEP",
    "Admission",
    "ClosingEffects",
    "Firing",
    "Link",
    "NewRun",
    "admission",
    "attribute_params",
    "candidate_page",
    "carried_over",
    "check_copy_target",
    "check_existing",
    "child_done",
    "child_not_started",
    "child_started_event",
    "closing_effects",
    "copied_approvals",
    "copied_attributes",
    "copied_events",
    "debounce_until",
    "dedup_hit",
    "definition_change",
    "fair_share",
    "headers_json",
    "in_namespace",
    "index_value",
    "list_query",
    "lock_key",
    "plan_run",
    "queue_room",
    "stream_lock_key",
    "stream_plan",
    "taken",
    "terminated",
    "too_deep",
    "update_of",
]


# -- namespaces ---------------------------------------------------------------------------


def in_namespace(namespace_of: str, namespace: str | None) -> bool:
    """Whether a caller scoped to ``namespace`` (None: every namespace) sees a run or a
    schedule of ``namespace_of``. One it does not see is, to it, exactly as if it did not
    exist: the store answers "not found" and writes nothing."""
    return namespace is None or namespace_of == namespace


def taken(workflow_id: str) -> WorkflowAlreadyStartedError:
    """The refusal of a start whose workflow id another namespace holds. It names the id
    only: no run id, workflow name, status or namespace of the other run (workflow ids
    are unique across namespaces, so the id itself is all a tenant learns)."""
    return WorkflowAlreadyStartedError(
        f"workflow id {workflow_id!r} is taken; choose another id", workflow_id=workflow_id,
        run_id="")


# -- starting runs --------------------------------------------------------------------------


def check_existing(existing: RunRecord, workflow_id: str, workflow_name: str,
                   on_conflict: IdConflictPolicy, on_reuse: IdReusePolicy,
                   namespace: str | None = None) -> tuple[RunRecord, bool]:
    """What a start of ``workflow_name`` in ``namespace`` (None: the caller sees every
    namespace) finding a run with its workflow id does: (the run to return, whether a new
    run may be created).

    A run of another namespace is never returned: while it is live its id is taken, and
    once it ended the id is free only with ``on_reuse="allow"`` (the one policy whose
    answer does not depend on how that run ended, which the caller must not learn).

    Raises:
        WorkflowIdTakenError: The run is of another workflow, and the start would return
            it (or fail): a handle to (or a message for) a run of other code.
        WorkflowAlreadyStartedError: The policy says fail, or another namespace holds the
            id (:func:`taken`).
    """
    if not in_namespace(existing.namespace, namespace):
        if existing.status.value in LIVE_STATUSES or on_reuse != "allow":
            raise taken(workflow_id)
        return existing, True
    if existing.status.value in LIVE_STATUSES:
        if on_conflict == "fail" or existing.workflow_name != workflow_name:
            _refuse(existing, workflow_id, workflow_name, "already has a live run "
                    f"({existing.run_id}, {existing.status.value})")
        return existing, False
    reuse = on_reuse == "allow" or (
        on_reuse == "allow_failed" and existing.status != RunStatus.COMPLETED)
    if not reuse:
        if on_reuse == "use_existing" and existing.workflow_name == workflow_name:
            return existing, False
        _refuse(existing, workflow_id, workflow_name,
                f"was already used by run {existing.run_id} ({existing.status.value}) and "
                f"the reuse policy is {on_reuse!r}")
    return existing, True


def _refuse(existing: RunRecord, workflow_id: str, workflow_name: str, why: str) -> None:
    ids = {"workflow_id": workflow_id, "run_id": existing.run_id,
           "workflow_name": existing.workflow_name}
    if existing.workflow_name != workflow_name:
        raise WorkflowIdTakenError(
            f"workflow id {workflow_id!r} belongs to a run of workflow "
            f"{existing.workflow_name!r}, not {workflow_name!r} ({existing.run_id}, "
            f"{existing.status.value}); use another id", **ids)
    raise WorkflowAlreadyStartedError(f"workflow id {workflow_id!r} {why}", **ids)


def dedup_hit(placement: Placement, existing: RunRecord,
              namespace: str | None = None) -> RunRecord:
    """A start whose deduplication key a live run holds: that run is the answer.

    Raises:
        WorkflowAlreadyStartedError: The placement says ``on_dedup="fail"``, or the run
            is of another namespace (keys are unique per queue, across namespaces: the
            refusal names the key only).
    """
    if not in_namespace(existing.namespace, namespace):
        raise WorkflowAlreadyStartedError(
            f"deduplication key {placement.dedup_key!r} is taken in queue "
            f"{placement.queue!r}", workflow_id="", run_id="")
    if placement.on_dedup == "fail":
        raise WorkflowAlreadyStartedError(
            f"a live run ({existing.workflow_id}) already has deduplication key "
            f"{placement.dedup_key!r} in queue {placement.queue!r}",
            workflow_id=existing.workflow_id, run_id=existing.run_id)
    return existing


def debounce_until(placement: Placement, now: float) -> float:
    """When a debounced start may begin: a quiet period after the latest start with its
    key (an earlier pending run with the key is pushed back to this time, and takes the
    latest input: it has not started, so nothing has read its input)."""
    return now + placement.debounce


_NO_LINKS = RunLinks()
_DEFAULT_PLACEMENT = Placement()


@dataclass(frozen=True, kw_only=True, slots=True)
class NewRun:
    """A run about to be written: every column decided (see :func:`plan_run`)."""

    run_id: str
    workflow_id: str
    workflow_name: str
    status: RunStatus
    input: bytes
    now: float
    wake_at: float | None
    owner: str | None
    epoch: int
    started_at: float | None
    links: RunLinks
    placement: Placement
    search_attributes: Mapping[str, SearchValue] | None = None
    namespace: str = "default"

    def params(self, *, started_event: bool = True, fresh: bool = False) -> dict[str, object]:
        """The ``insert_run`` query's parameters (it also writes the ``run_started``
        event, unless ``started_event`` is false: a copy brings its own history; with
        ``fresh``, it writes nothing if any run has this workflow id)."""
        links, place = self.links, self.placement
        meta = RunStartedMeta(parent_run_id=links.parent_run_id, parent_op=links.parent_op,
                              deadline_at=links.deadline_at, headers=links.headers,
                              search_attributes=self.search_attributes,
                              budgets=links.budgets,
                              namespace=None if self.namespace == "default"
                              else self.namespace).encode()
        return {"run_id": self.run_id, "workflow_id": self.workflow_id,
                "workflow_name": self.workflow_name, "status": self.status.value,
                "input": self.input, "now": self.now, "wake_at": self.wake_at,
                "owner": self.owner, "epoch": self.epoch, "meta": meta,
                "kind": EventKind.RUN_STARTED, "started_event": started_event,
                "parent_run_id": links.parent_run_id, "parent_op": links.parent_op,
                "parent_close": links.parent_close, "deadline_at": links.deadline_at,
                "origin_run_id": links.origin_run_id, "depth": links.depth,
                "queue": place.queue, "priority": place.priority,
                "concurrency_key": place.concurrency_key, "dedup_key": place.dedup_key,
                "debounce_key": place.debounce_key, "started_at": self.started_at,
                "headers": headers_json(links.headers), "namespace": self.namespace,
                "fresh": fresh}

    def record(self) -> RunRecord:
        """The run as it is stored once written (no read needed)."""
        links, place = self.links, self.placement
        return RunRecord(
            run_id=self.run_id, workflow_id=self.workflow_id,
            workflow_name=self.workflow_name, status=self.status, input=self.input,
            result=None, error=None, created_at=self.now, updated_at=self.now,
            closed_at=None, wake_at=self.wake_at, owner=self.owner, epoch=self.epoch,
            history_len=1, parent_run_id=links.parent_run_id, parent_op=links.parent_op,
            parent_close=links.parent_close, deadline_at=links.deadline_at,
            origin_run_id=links.origin_run_id, queue=place.queue, priority=place.priority,
            concurrency_key=place.concurrency_key, depth=links.depth, headers=links.headers,
            namespace=self.namespace)


def plan_run(*, run_id: str, workflow_id: str, workflow_name: str, input: bytes, now: float,
             owner: str | None, links: RunLinks | None = None,
             placement: Placement | None = None,
             search_attributes: Mapping[str, SearchValue] | None = None,
             namespace: str | None = None) -> NewRun:
    """Every column of a new run (in ``namespace``; None: ``"default"``).

    With ``owner``, the run starts already claimed by that worker (running, epoch 1,
    started now), saving a claim — unless it must wait: a delayed start (due at
    ``start_at``, never before ``now``) or a debounced one (due after the quiet period)
    is pending, for whichever worker claims it when it is due. A run nobody owns is due
    at once."""
    place = placement or _DEFAULT_PLACEMENT
    if not place.immediate:
        owner = None  # it waits for its time: a worker claims it then
    wake_at = None if owner else now
    if place.start_at is not None:
        wake_at = max(now, place.start_at)
    elif place.debounce_key is not None:
        wake_at = debounce_until(place, now)
    return NewRun(run_id=run_id, workflow_id=workflow_id, workflow_name=workflow_name,
                  status=RunStatus.RUNNING if owner else RunStatus.PENDING, input=input,
                  now=now, wake_at=wake_at, owner=owner, epoch=1 if owner else 0,
                  started_at=now if owner else None, links=links or _NO_LINKS,
                  placement=place, search_attributes=search_attributes or None,
                  namespace=namespace or "default")


# -- admission to a queue with limits ---------------------------------------------------------


@dataclass(kw_only=True, slots=True)
class Admission:
    """One claim's pass over a limited queue's candidates (best first): which to take.

    Built by :func:`admission`; :meth:`offer` each candidate
    until :attr:`full`. Resumed runs need a concurrency slot only; first starts also
    need room in the rate window; a concurrency key caps running runs per key.
    """

    room: int
    rate_room: int | None
    key_limit: int | None
    per_key: dict[str, int]
    chosen: list[str] = field(default_factory=list)
    first_starts: set[str] = field(default_factory=set)

    @property
    def full(self) -> bool:
        """No room left: stop offering."""
        return len(self.chosen) >= self.room

    def offer(self, run_id: str, key: str | None, started_at: float | None) -> bool:
        """Take the candidate if every limit allows; whether it was taken."""
        if self.full:
            return False
        first_start = started_at is None
        if first_start and self.rate_room is not None and self.rate_room <= 0:
            return False  # resumes may still go: the rate limit is about starts
        if key is not None and self.key_limit is not None \
                and self.per_key.get(key, 0) >= self.key_limit:
            return False
        self.chosen.append(run_id)
        if key is not None:
            self.per_key[key] = self.per_key.get(key, 0) + 1
        if first_start:
            self.first_starts.add(run_id)
            if self.rate_room is not None:
                self.rate_room -= 1
        return True


def queue_room(config: QueueConfig, *, room: int, running: int, held_here: int) -> int:
    """How many runs a claim may take from a queue with limits by its concurrency limits:
    ``room`` (what the claim has room for), at most the global limit minus ``running``
    (runs of the queue running anywhere: a suspended run holds no slot) and the
    per-worker limit minus ``held_here`` (those the claiming worker holds)."""
    if config.concurrency is not None:
        room = min(room, config.concurrency - running)
    if config.per_worker is not None:
        room = min(room, config.per_worker - held_here)
    return room


def admission(config: QueueConfig, *, room: int, started: int = 0,
              per_key: Mapping[str, int] | None = None) -> Admission:
    """A pass over a limited queue's candidates taking up to ``room`` (see
    :func:`queue_room`); ``started``: first starts within the rate window (read only with
    a rate limit); ``per_key``: running runs per concurrency key (read only with a key
    limit)."""
    return Admission(
        room=room, key_limit=config.key_concurrency, per_key=dict(per_key or {}),
        rate_room=None if config.rate_limit is None else config.rate_limit - started)


def fair_share(limit: int, *, peers: int, held: int, mine: int, ready: int,
               stale: int) -> int:
    """How many ready runs a worker claims now, with ``peers`` other live workers.

    Alone (``peers == 0``), all it has room for: ``limit``. With peers, its share of the
    work in hand: the ready runs plus those the live workers hold (``held``, of which
    ``mine``) divided among them all, less what it holds already; so two workers that
    find 200 runs take 100 each, whichever claims first, instead of the first taking
    them all. A peer that does not take its share (busy, full, serving other workflows)
    does not strand runs: the ``stale`` ones (ready and unchanged for a grace period)
    are anyone's."""
    if peers <= 0:
        return limit
    target = -(-(ready + held) // (peers + 1))  # ceil
    return max(0, min(limit, max(target - mine, stale)))


def candidate_page(room: int) -> int:
    """How many candidates of a limited queue to read at a time (most are taken; the
    rest were refused by a key or the rate limit)."""
    return room * 4 + 16


# -- a run's end --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Link:
    """A run a closing run's end concerns (a row of ``closing_links``): its parent
    (``kind`` ``"parent"``) or a live child (``"child"``, with its parent-close
    ``policy`` and whether it is already being cancelled)."""

    kind: Literal["parent", "child"]
    run_id: str
    status: str
    parent_op: int | None = None
    policy: str | None = None
    cancelling: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class ClosingEffects:
    """What a run's end does to others, in the same transaction."""

    tell_parent: tuple[str, Message] | None
    """The live parent's run id and its ``child_done`` message."""
    cancel: tuple[str, ...]
    """Children sent a cancel request (policy ``request_cancel``)."""
    terminate: tuple[str, ...]
    """Children terminated (policy ``terminate``, the default); their own children's
    policies apply in turn."""


def closing_effects(run_id: str, status: str, result: bytes | None, error: bytes | None,
                    links: Iterable[Link]) -> ClosingEffects:
    """A run ended with ``status``: tell its parent if that one is live (a run continued
    as new has not ended for its parent: its successor will tell), and apply its live
    children's parent-close policies. A child already cleaning up after a cancel request
    is left to finish; ``abandon`` leaves a child running on its own."""
    tell: tuple[str, Message] | None = None
    cancel: list[str] = []
    terminate: list[str] = []
    for link in links:
        if link.kind == "parent":
            if status != "continued_as_new" and link.status in LIVE_STATUSES:
                assert link.parent_op is not None
                tell = (link.run_id, child_done(run_id, link.parent_op, status, result,
                                                error))
            continue
        if link.policy == "abandon" or link.cancelling:
            continue
        if link.policy == "request_cancel":
            cancel.append(link.run_id)
        else:
            terminate.append(link.run_id)
    return ClosingEffects(tell_parent=tell, cancel=tuple(cancel), terminate=tuple(terminate))


def child_done(run_id: str, parent_op: int, status: str, result: bytes | None,
               error: bytes | None) -> Message:
    """The message that tells a live parent its child ended: the child's result (or
    error) as stored, untouched."""
    return Message(kind=MessageKind.CHILD_DONE, name=str(parent_op),
                   data=result if status == "completed" else error,
                   meta=ChildDone(status=status, run_id=run_id).encode())


def terminated(reason: str) -> bytes:
    """The error recorded for a run terminated (``reason``: by whom, why)."""
    return ErrorInfo(type="Terminated", message=reason).to_payload()


PARENT_CLOSED = terminated("parent run closed")
"""The error recorded for a child terminated by its parent's close policy."""

TIMED_OUT = ErrorInfo(type="TimeoutError",
                      message="the run's execution timeout passed").to_payload()
"""The error recorded for a run whose execution timeout passed."""


# -- children -----------------------------------------------------------------------------

TOO_DEEP = "MaxChildDepthExceeded"
"""The error type recorded for a child refused by the nesting limit."""


def too_deep(depth: int, max_depth: int | None, op: int, workflow_id: str, name: str,
             now: float) -> NewEvent | None:
    """The parent's record of a child refused for nesting ``depth`` deep (its parent's
    depth + 1) past ``max_depth``, or None when it may start.

    The limit stops runaway recursion (a workflow that starts itself as a child would
    otherwise create runs without end, thousands a second)."""
    if max_depth is None or depth <= max_depth:
        return None
    return child_not_started(
        op, name, TOO_DEEP,
        f"child workflow {workflow_id!r} ({name}) would be nested {depth} deep, past the "
        f"limit of {max_depth} (the worker's max_child_depth; runaway recursion?)", now)


def child_started_event(op: int, name: str, workflow_id: str, run_id: str,
                        now: float) -> NewEvent:
    """The parent's record of a child it started."""
    return NewEvent(kind=EventKind.CHILD_STARTED, ts=now, op=op, name=name,
                    data=ChildStarted(workflow_id=workflow_id, run_id=run_id).encode())


def child_not_started(op: int, name: str, error: str | Exception, message: str,
                      now: float) -> NewEvent:
    """The parent's record of a child that could not be started (its id is taken, it
    would nest too deep, the database refused it): ``child_failed`` at the same op, so
    the parent's history has no gap and replays the same way. ``error``: its type name,
    or the exception that says why."""
    error_type = error if isinstance(error, str) else type(error).__name__
    return NewEvent(kind=EventKind.CHILD_FAILED, ts=now, op=op, name=name,
                    data=ErrorInfo(type=error_type, message=message).to_payload(),
                    meta=ChildFailedMeta(status="not_started").encode())


# -- messages across continue-as-new --------------------------------------------------------

#: Inbox messages that follow a run into its successor at continue-as-new. A child's end
#: and a step task's outcome concern operations of the old run only.
CARRIED_KINDS = frozenset({MessageKind.SIGNAL, MessageKind.UPDATE, MessageKind.CANCEL})


def carried_over(carry: Sequence[Message], inbox: Iterable[InboxMessage]) -> list[Message]:
    """What a successor's inbox gets at continue-as-new, in order: the messages the old
    run recorded but never took (``carry``, oldest first), then what was still waiting
    in its inbox (in arrival order), of the carried kinds."""
    out = list(carry)
    for m in inbox:
        if m.kind not in CARRIED_KINDS:
            continue
        update_id = update_of(m) if m.kind == MessageKind.UPDATE else None
        out.append(Message(kind=m.kind, name=m.name, data=m.data, meta=m.meta,
                           update_id=update_id))
    return out


def update_of(message: InboxMessage) -> str:
    """An update request's id (messages stored before migration 6 kept it in data)."""
    update_id = UpdateMeta.update_id_of(message.meta)
    if update_id is None and message.data:
        update_id = str(orjson.loads(message.data).get("update_id"))
    return str(update_id)


# -- copies of a history (reset, retry, fork) -------------------------------------------------


def copied_events(prefix: Iterable[NewEvent], drop_ops: Iterable[int]) -> list[NewEvent]:
    """The history a copy starts with: the source's prefix without the outcomes of
    ``drop_ops`` (those operations run again) and without the run's end (the copy
    continues live from the prefix).

    Raises:
        StoreError: What is left does not begin with ``run_started``.
    """
    dropped = set(drop_ops)
    events = [e for e in prefix
              if not (e.op in dropped and e.kind != EventKind.RUN_STARTED)
              and e.kind not in TERMINAL_KINDS]
    if not events or events[0].kind != EventKind.RUN_STARTED:
        raise StoreError("a copied history must start with run_started")
    return events


def check_copy_target(live: RunRecord | None, workflow_id: str, workflow_name: str, *,
                      closing: str | None, namespace: str | None = None) -> None:
    """A copy may start under ``workflow_id`` only if no run of it is live, except the
    source itself when the copy closes it (``closing``: its run id). Checked before
    anything is written.

    Raises:
        WorkflowIdTakenError: The live run is of another workflow.
        WorkflowAlreadyStartedError: The live run is of the same workflow, or of another
            namespace than ``namespace`` (:func:`taken`).
    """
    if live is None or live.run_id == closing:
        return
    check_existing(live, workflow_id, workflow_name, "fail", "allow", namespace)


# -- search attributes and listings ------------------------------------------------------


def index_value(value: SearchValue) -> str:
    """How the store matches a search attribute's value (the ``value`` column, and a
    filter's): a type tag and a canonical text, so that ``12`` and ``12.0`` match each
    other (equal in Python) but neither matches ``"12"`` or ``True``. Text, so one
    column and one index serve every type on both stores."""
    if isinstance(value, bool):
        return "b:true" if value else "b:false"
    if isinstance(value, int):
        return f"n:{value}"
    if isinstance(value, float):
        return f"n:{int(value)}" if value.is_integer() else f"n:{value!r}"
    return f"s:{value}"


def attribute_params(attributes: Mapping[str, SearchValue | None]) -> dict[str, list[str]]:
    """The rows a start or an upsert writes (``put_search_attributes``,
    ``upsert_search_attributes``): the keys set, with their match form (``values``) and
    their JSON (``datas``: what is read back, type and all), and the keys removed."""
    keys: list[str] = []
    values: list[str] = []
    datas: list[str] = []
    deleted: list[str] = []
    for key, value in attributes.items():
        if value is None:
            deleted.append(key)
            continue
        keys.append(key)
        values.append(index_value(value))
        datas.append(orjson.dumps(value).decode())
    return {"keys": keys, "values": values, "datas": datas, "deleted": deleted}


def copied_attributes(events: Iterable[NewEvent]) -> dict[str, SearchValue]:
    """The search attributes a history leaves its run with: its start's, then each
    upsert in order. A copy (reset, retry, fork) is indexed with those of the prefix it
    copies, as its published state is."""
    out: dict[str, SearchValue] = {}
    for e in events:
        if e.kind == EventKind.RUN_STARTED:
            out.update(RunStartedMeta.decode(e.meta).search_attributes or {})
        elif e.kind == EventKind.SEARCH_ATTRIBUTES_UPSERTED:
            for key, value in SearchAttributesMeta.decode(e.meta).attributes.items():
                if value is None:
                    out.pop(key, None)
                else:
                    out[key] = value
    return out


def copied_approvals(run_id: str, events: Iterable[NewEvent]) -> list[dict[str, Any]]:
    """The approvals a copied history (reset, retry, fork) leaves its new run waiting for:
    those it requested and that neither a decision nor a timeout closed in the copy, as
    ``insert_approval`` parameters without a fence (under the new run's approval ids)."""
    requested: dict[int, NewEvent] = {}
    for e in events:
        if e.op is None:
            continue
        if e.kind == EventKind.APPROVAL_REQUESTED:
            requested[e.op] = e
        elif e.kind in (EventKind.APPROVAL_DECIDED, EventKind.APPROVAL_TIMED_OUT):
            requested.pop(e.op, None)
    return [{"run_id": run_id, "epoch": None, "new_len": None,
             "approval_id": approval_id_of(run_id, op), "op": op,
             "name": e.name, "context": e.data, "ts": e.ts,
             "deadline_at": ApprovalMeta.decode(e.meta).deadline_at}
            for op, e in sorted(requested.items())]


def list_query(*, status: str | None, name: str | None, created_after: float | None,
               created_before: float | None, id_prefix: str | None,
               attributes: Mapping[str, SearchValue] | None, after: tuple[float, str] | None,
               limit: int, namespace: str | None = None) -> tuple[str, dict[str, Any]]:
    """The named query that lists a page of runs, and its parameters.

    Runs come newest first, ties by run id (descending, code point order): a total
    order, so a page continues strictly after the previous page's last run
    (``after``), and runs created meanwhile (newer) never shift it. Each query reads one
    index range, in order, up to ``limit`` rows: the range is the keyset below
    ``(upper_at, upper_id)`` — the cursor, or ``created_before`` — and from
    ``lower_at`` (``created_after``, inclusive). The index is chosen by the filters: the
    first attribute's ``(key, value, created_at, run_id)``, else the workflow name's,
    else the status's, else the namespace's (a scoped client's listing), else creation
    time alone; the other filters (``namespace`` too) are checked on the rows the range
    yields."""
    upper: tuple[float, str] = (math.inf, "")
    if created_before is not None:
        upper = (created_before, "")  # "" sorts first: strictly before created_before
    if after is not None and after < upper:
        upper = after
    pairs = list((attributes or {}).items())
    params: dict[str, Any] = {
        "upper_at": upper[0], "upper_id": upper[1],
        "lower_at": -math.inf if created_after is None else created_after,
        "status": status, "name": name, "prefix": id_prefix, "limit": limit,
        "namespace": namespace,
        "key": None, "value": None, "more_keys": [], "more_values": [], "n_more": 0}
    if pairs:
        (key, value), more = pairs[0], pairs[1:]
        params.update(key=key, value=index_value(value), n_more=len(more),
                      more_keys=[k for k, _ in more],
                      more_values=[index_value(v) for _, v in more])
        return "list_runs_by_attribute", params
    if name is not None:
        return "list_runs_by_name", params
    if status is not None:
        return "list_runs_by_status", params
    if namespace is not None and namespace != DEFAULT_NAMESPACE:
        # 'default' is not in runs_namespace (a partial index: a deployment without
        # tenants pays nothing for it); its listing reads runs_created.
        return "list_runs_by_namespace", params
    return "list_runs", params




@dataclass(kw_only=True, slots=True)
class Firing:
    """One firing of a schedule's due ticks, in order, under its overlap policy.

    ``allow_all`` starts every tick; ``skip`` skips a tick while the previous run is
    live; ``buffer_one`` keeps the first such tick (one at most) and starts it once the
    previous run ended, before any later tick. Ask :meth:`take_buffered` first, then
    :meth:`take` for each tick, each time saying whether the previous run
    (:attr:`last`) is live; start a run under each workflow id returned.
    """

    schedule_id: str
    overlap: str
    last: str | None
    """The workflow id of the previous run."""
    buffered: float | None
    last_tick: float | None = None
    """The latest tick that started a run in this firing."""
    skipped: int = 0

    def take_buffered(self, previous_live: bool) -> str | None:
        """The workflow id to start for a buffered tick, now that the previous run ended,
        or None."""
        if self.buffered is None or previous_live:
            return None
        tick, self.buffered = self.buffered, None
        return self._start(tick)

    def take(self, tick: float, previous_live: bool) -> str | None:
        """The workflow id to start for ``tick``, or None (buffered or skipped)."""
        if self.overlap != "allow_all" and previous_live:
            if self.overlap == "buffer_one" and self.buffered is None:
                self.buffered = tick
            else:
                self.skipped += 1
            return None
        return self._start(tick)

    def _start(self, tick: float) -> str:
        self.last, self.last_tick = tick_workflow_id(self.schedule_id, tick), tick
        return self.last


def definition_change(old: ScheduleRecord, new: ScheduleDefinition,
                      next_fire_at: float | None) -> tuple[str, float | None]:
    """What a code declaration does to an existing schedule: ``("unchanged", ...)`` or
    ``("updated", next_fire_at)``. A new timing starts from ``next_fire_at`` (computed
    from now); otherwise the pending tick stays as it was."""
    same = (old.workflow_name, old.queue, old.input, old.overlap, old.catch_up,
            old.source) == (new.workflow_name, new.queue, new.input, new.overlap,
                            new.catch_up, new.source)
    same_timing = (old.cron, old.every, old.anchor, old.timezone) == (
        new.cron, new.every, new.anchor, new.timezone)
    if same and same_timing:
        return "unchanged", old.next_fire_at
    return "updated", old.next_fire_at if same_timing else next_fire_at


def headers_json(headers: Mapping[str, str] | None) -> str | None:
    """Headers as the ``runs.headers`` column keeps them (NULL for none)."""
    return orjson.dumps(dict(headers)).decode() if headers else None


StreamPlan = Literal["new", "write", "supersede", "drop"]


def lock_key(text: str) -> int:
    """A stable signed 64-bit advisory-lock key (PostgreSQL) for ``text``."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big",
                          signed=True)


def stream_lock_key(run_id: str) -> int:
    """The advisory-lock key of a run's stream: taken by step chunk batches and by
    appends of workflow code's stream writes alike."""
    return lock_key(f"duro.stream:{run_id}")


def stream_plan(head_execution: str | None, head_attempt: int | None, *, execution: str,
                attempt: int, first: bool) -> StreamPlan:
    """What a batch of chunks from one execution of a step does, given the execution
    that streams the op now (``head_*``: the last to write a first batch; None: none).

    * ``"new"``: the op's first execution: its batch goes in, and it becomes the head.
    * ``"write"``: the head's own next batch.
    * ``"supersede"``: a new execution's first batch (a retry, or the same attempt run
      again after its worker was lost): the op's earlier chunks are marked superseded,
      a marker row tells live readers so, and it becomes the head.
    * ``"drop"``: a stale execution (superseded already, or an earlier attempt than the
      head's): its chunks are not kept. ``(op, attempt)`` does not identify an execution
      (a lost attempt recorded nothing and runs again with its number): ``execution``,
      random per execution, does.
    """
    if head_execution is None:
        return "new"
    if head_execution == execution:
        return "write"
    if first and attempt >= (head_attempt or 0):
        return "supersede"
    return "drop"
