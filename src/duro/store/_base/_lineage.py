"""Runs made from runs: children, continue-as-new, copies (reset, retry, fork)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from duro._history import STREAM_KINDS, EventKind, SearchValue
from duro.errors import DataRejectedError, RunNotFoundError, WorkflowAlreadyStartedError
from duro.store._base import _writes as w
from duro.store._base._dialect import Dialect
from duro.store._base._tx import Tx
from duro.store._records import LIVE_STATUSES, Message, NewEvent, Placement, RunLinks, RunRecord
from duro.store._rows import new_event, run_record
from duro.store._rules import (
    check_copy_target,
    child_not_started,
    child_started_event,
    copied_approvals,
    copied_attributes,
    copied_events,
    terminated,
    too_deep,
)

__all__ = ["Lineage"]


def _same_place(run: RunRecord) -> Placement:
    """A successor's or a copy's place: its origin's queue, priority, concurrency key."""
    return Placement(queue=run.queue, priority=run.priority,
                     concurrency_key=run.concurrency_key)


class Lineage(Dialect):
    """Children, continue-as-new and copies, once for every dialect."""

    async def start_child(
        self, parent_run_id: str, epoch: int, seq: int, before: Sequence[NewEvent], *,
        op: int, run_id: str, workflow_id: str, workflow_name: str, input: bytes,
        links: RunLinks, owner: str | None, now: float, placement: Placement | None = None,
        max_depth: int | None = None, search_attributes: Mapping[str, SearchValue] | None = None,
    ) -> tuple[RunRecord | None, NewEvent]:
        """Start a child (with its ``search_attributes``) and record it in the parent,
        atomically.

        ``before`` (the parent's pending events) are appended first; then either
        ``child_started`` (and the child exists, one level deeper than its parent, in its
        parent's namespace) or ``child_failed`` — at the same sequence number either way —
        when the child's workflow id is taken by a live run (or by any run of another
        namespace, told as "taken" only), it would be nested deeper than ``max_depth``, or
        the database refuses it (a workflow id too long to index, say). Returns the
        child (or None) and the event recorded.
        """

        async def start(tx: Tx) -> tuple[RunRecord | None, NewEvent]:
            at = await w.fence(tx, parent_run_id, epoch, seq, before, now, reserve=1)
            row = await tx.one("run_depth", {"run_id": parent_run_id})
            depth = (int(row["depth"]) if row else 0) + 1
            namespace = str(row["namespace"]) if row else None
            record: RunRecord | None = None
            event = too_deep(depth, max_depth, op, workflow_id, workflow_name, now)
            if event is None:
                try:
                    record, _ = await w.create_run(
                        tx, run_id=run_id, workflow_id=workflow_id,
                        workflow_name=workflow_name, input=input, now=now, owner=owner,
                        on_conflict="fail", on_reuse="allow",
                        links=dataclasses.replace(links, depth=depth), placement=placement,
                        search_attributes=search_attributes, namespace=namespace)
                    event = child_started_event(op, workflow_name, workflow_id, run_id, now)
                except WorkflowAlreadyStartedError as exc:  # raised before writing the child
                    event = child_not_started(op, workflow_name, exc, str(exc), now)
            await tx.insert_events(parent_run_id, at, [event])
            return record, event

        try:
            result: tuple[RunRecord | None, NewEvent] = await self._write(start, notify=True)
        except DataRejectedError as exc:
            # Recorded, not raised: the parent would replay and try again forever.
            refusal = child_not_started(op, workflow_name, exc, str(exc), now)

            async def refused(tx: Tx) -> tuple[RunRecord | None, NewEvent]:
                at = await w.fence(tx, parent_run_id, epoch, seq, before, now, reserve=1)
                await tx.insert_events(parent_run_id, at, [refusal])
                return None, refusal

            result = await self._write(refused)
        return result

    async def continue_as_new(
        self, run_id: str, epoch: int, seq: int, events: Sequence[NewEvent], *,
        new_run_id: str, input: bytes, owner: str | None, now: float,
        carry: Sequence[Message] = (),
    ) -> RunRecord:
        """Close a run as continued-as-new and start its successor, atomically.

        The successor keeps the workflow id, namespace, queue, priority, concurrency key,
        parent, deadline, published state and search attributes, and gets the messages
        ``carry``
        and the old run's inbox (see :meth:`duro.store.WorkerStore.continue_as_new`).
        """
        new_len = seq + len(events)
        projections = [p for e in events
                       if (p := w.projection(run_id, epoch, new_len, e)) is not None]

        async def op(tx: Tx) -> RunRecord:
            fence = await tx.append(run_id, epoch, seq, events, now=now,
                                    status="continued_as_new", release=True, terminal=True)
            await fence.check()
            for write in projections:  # e.g. state published just before
                await w.run_projection(tx, write)
            old = await w.fetch_run(tx, run_id)
            assert old is not None
            links = RunLinks(parent_run_id=old.parent_run_id, parent_op=old.parent_op,
                             parent_close=old.parent_close, deadline_at=old.deadline_at,
                             origin_run_id=run_id, depth=old.depth, headers=old.headers)
            record, _ = await w.create_run(
                tx, run_id=new_run_id, workflow_id=old.workflow_id,
                workflow_name=old.workflow_name, input=input, now=now, owner=owner,
                on_conflict="fail", on_reuse="allow", links=links, placement=_same_place(old),
                namespace=old.namespace)
            copied = {"new_run_id": new_run_id, "run_id": run_id, "now": now}
            await tx.run("copy_state", copied)
            await tx.run("copy_search_attributes", copied)
            await w.move_inbox(tx, run_id, new_run_id, carry, now)
            # A decision the old run did not take cannot reach the new one.
            await tx.run("close_approvals", {"run_id": run_id, "now": now})
            return record

        record: RunRecord = await self._write(op, notify=owner is None)
        return record

    async def copy_run(
        self, source_run_id: str, *, upto_seq: int, drop_ops: Sequence[int], new_run_id: str,
        workflow_id: str, close_source: bool, reason: str, now: float,
        namespace: str | None = None,
    ) -> RunRecord:
        """Start a new run whose history is a prefix of another's (reset, retry, fork).

        Events ``[0, upto_seq)`` are copied, except outcomes of ``drop_ops`` and run
        ends (:func:`~duro.store._rules.copied_events`); with ``close_source`` a live
        source run is terminated in the same transaction (same workflow id: at most one
        live run). The copy's published state and search attributes are those its
        copied history records (:func:`~duro.store._rules.copied_attributes`); its
        namespace is the source's.
        """
        error = terminated(reason)

        async def op(tx: Tx) -> RunRecord:
            # Everything that can fail is checked before anything is written.
            source = await w.fetch_run(tx, source_run_id, namespace)
            if source is None:
                raise RunNotFoundError(f"no run {source_run_id!r}")
            prefix = await tx.all("history_prefix", {"run_id": source_run_id,
                                                     "upto": upto_seq})
            events = copied_events(map(new_event, prefix), drop_ops)
            closing = close_source and source.status.value in LIVE_STATUSES
            live = await tx.one("live_run_by_workflow_id", {"workflow_id": workflow_id})
            check_copy_target(None if live is None else run_record(live), workflow_id,
                              source.workflow_name,
                              closing=source_run_id if closing else None,
                              namespace=source.namespace)
            if closing:
                await w.close(tx, source_run_id, "terminated", error, now)
            await w.create_run(
                tx, run_id=new_run_id, workflow_id=workflow_id,
                workflow_name=source.workflow_name, input=events[0].data or b"", now=now,
                owner=None, on_conflict="fail", on_reuse="allow",
                links=RunLinks(origin_run_id=source_run_id, headers=source.headers),
                started_event=False, placement=_same_place(source),
                search_attributes=copied_attributes(events), namespace=source.namespace)
            await tx.insert_events(new_run_id, 0, events)
            await tx.run("set_history_len", {"len": len(events), "run_id": new_run_id})
            for e in events:
                if e.kind == EventKind.STATE_SET:
                    await tx.run("put_state", {"run_id": new_run_id, "key": e.name,
                                               "value": e.data, "ts": e.ts})
                elif e.kind in STREAM_KINDS:  # the workflow's own values (not steps')
                    # The new run is not claimed yet: nobody else writes its stream.
                    await tx.run("stream_copy", {"run_id": new_run_id, "ts": e.ts,
                                                 **w.workflow_stream_row(e)})
            for params in copied_approvals(new_run_id, events):
                await tx.run("insert_approval", params)
            record = await w.fetch_run(tx, new_run_id)
            assert record is not None
            return record

        record: RunRecord = await self._write(op, notify=True)
        return record
