"""Schedules (:class:`~duro.store.ScheduleStore`), once for every dialect.

Every write runs in the writer's transaction: firing a tick locks the schedule's row
(``lock_schedule``: ``FOR UPDATE`` on PostgreSQL; a SQLite writer holds the file's lock),
checks that ``next_fire_at`` is still the value the caller saw (compare-and-set) and
creates the tick's runs with deterministic workflow ids, all in one commit. Workers that
race for a tick take turns on the lock; the later ones see a moved ``next_fire_at`` and
do nothing, and the workflow id (one live run per id) is the backstop.

A schedule belongs to a namespace, and so do the runs it starts. The operations a client
calls take its ``namespace`` (None: every one); a schedule of another namespace is, to
it, as if there were none (``ScheduleNotFoundError``), checked in the write's
transaction. Schedule ids, like workflow ids, are unique across namespaces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from duro._ids import new_id
from duro.errors import WorkflowAlreadyStartedError
from duro.schedules._errors import ScheduleAlreadyExistsError, ScheduleNotFoundError
from duro.schedules._spec import tick_workflow_id
from duro.store._base import _writes as w
from duro.store._base._dialect import Dialect
from duro.store._base._tx import Tx
from duro.store._records import Placement, RunRecord
from duro.store._rows import schedule_record
from duro.store._rules import Firing, definition_change, in_namespace
from duro.store._schedules import FireResult, ScheduleDefinition, ScheduleRecord

__all__ = ["Schedules"]


def _missing(schedule_id: str) -> ScheduleNotFoundError:
    return ScheduleNotFoundError(f"no schedule {schedule_id!r}")


async def _get(tx: Tx, schedule_id: str, namespace: str | None, *,
               lock: bool = False) -> ScheduleRecord:
    row = await tx.one("lock_schedule" if lock else "schedule_by_id",
                       {"schedule_id": schedule_id})
    if row is None or not in_namespace(row["namespace"], namespace):
        raise _missing(schedule_id)
    return schedule_record(row)


async def _live(tx: Tx, workflow_id: str | None) -> bool:
    if workflow_id is None:
        return False
    return await tx.one("live_run_of", {"workflow_id": workflow_id}) is not None


async def _start(tx: Tx, schedule: ScheduleRecord, workflow_id: str, now: float,
                 namespace: str | None, *, fail: bool = False) -> tuple[RunRecord, bool]:
    """Create the run for one tick (or a trigger) unless its workflow id has a run. The
    run is in the schedule's namespace; ``namespace`` is the caller's (None: a worker
    firing ticks, which sees every namespace)."""
    return await w.create_run(
        tx, run_id=new_id(), workflow_id=workflow_id,
        workflow_name=schedule.workflow_name, input=schedule.input, now=now, owner=None,
        on_conflict="fail" if fail else "use_existing",
        on_reuse="fail" if fail else "use_existing", links=None,
        placement=Placement(queue=schedule.queue), namespace=namespace,
        stamp=schedule.namespace)


def _definition(d: ScheduleDefinition) -> dict[str, Any]:
    return {"schedule_id": d.schedule_id, "workflow_name": d.workflow_name, "queue": d.queue,
            "input": d.input, "cron": d.cron, "every": d.every, "anchor": d.anchor,
            "timezone": d.timezone, "overlap": d.overlap, "catch_up": d.catch_up,
            "source": d.source, "namespace": d.namespace}


class Schedules(Dialect):
    """The :class:`~duro.store.ScheduleStore` operations."""

    async def create_schedule(
        self, definition: ScheduleDefinition, *, paused: bool, note: str | None,
        next_fire_at: float | None, now: float,
    ) -> ScheduleRecord:
        """See :meth:`duro.store.ScheduleStore.create_schedule`."""
        params = {**_definition(definition), "paused": paused, "note": note,
                  "next_fire_at": next_fire_at, "now": now}

        async def op(tx: Tx) -> ScheduleRecord:
            row = await tx.one("insert_schedule", params)
            if row is None:
                raise ScheduleAlreadyExistsError(
                    f"a schedule {definition.schedule_id!r} exists already (delete it first, "
                    "or choose another id)")
            return schedule_record(row)

        record: ScheduleRecord = await self._write(op)
        return record

    async def upsert_schedule(
        self, definition: ScheduleDefinition, *, paused: bool, next_fire_at: float | None,
        now: float,
    ) -> tuple[ScheduleRecord, str]:
        """See :meth:`duro.store.ScheduleStore.upsert_schedule`."""
        d = definition

        async def op(tx: Tx) -> tuple[ScheduleRecord, str]:
            row = await tx.one("lock_schedule", {"schedule_id": d.schedule_id})
            if row is None:
                created = await tx.one("insert_schedule", {
                    **_definition(d), "paused": paused, "note": None,
                    "next_fire_at": next_fire_at, "now": now})
                if created is not None:
                    return schedule_record(created), "created"
                # Another process declared it a moment ago: compare with theirs.
                row = await tx.one("lock_schedule", {"schedule_id": d.schedule_id})
                assert row is not None
            old = schedule_record(row)
            change, nxt = definition_change(old, d, next_fire_at)
            if change == "unchanged":
                return old, change
            updated = await tx.one("update_definition", {
                **_definition(d), "next_fire_at": nxt, "now": now})
            assert updated is not None
            return schedule_record(updated), change

        result: tuple[ScheduleRecord, str] = await self._write(op)
        return result

    async def update_schedule(
        self, schedule_id: str,
        change: Callable[[ScheduleRecord], tuple[ScheduleDefinition, float | None]], *,
        now: float, namespace: str | None = None,
    ) -> ScheduleRecord:
        """See :meth:`duro.store.ScheduleStore.update_schedule`."""

        async def op(tx: Tx) -> ScheduleRecord:
            old = await _get(tx, schedule_id, namespace, lock=True)
            definition, next_fire_at = change(old)
            what, nxt = definition_change(old, definition, next_fire_at)
            if what == "unchanged":
                return old
            updated = await tx.one("update_definition", {
                **_definition(definition), "next_fire_at": nxt, "now": now})
            assert updated is not None
            return schedule_record(updated)

        record: ScheduleRecord = await self._write(op)
        return record

    async def get_schedule(self, schedule_id: str, *,
                           namespace: str | None = None) -> ScheduleRecord | None:
        """See :meth:`duro.store.ScheduleStore.get_schedule`."""
        rows = await self._fetch("schedule_by_id", {"schedule_id": schedule_id})
        if not rows or not in_namespace(rows[0]["namespace"], namespace):
            return None
        return schedule_record(rows[0])

    async def list_schedules(self, *, namespace: str | None = None) -> list[ScheduleRecord]:
        """See :meth:`duro.store.ScheduleStore.list_schedules`."""
        return [schedule_record(r) for r in await self._fetch("list_schedules",
                                                               {"namespace": namespace})]

    async def pause_schedule(self, schedule_id: str, *, note: str | None, now: float,
                             namespace: str | None = None) -> ScheduleRecord:
        """See :meth:`duro.store.ScheduleStore.pause_schedule`."""

        async def op(tx: Tx) -> ScheduleRecord:
            await _get(tx, schedule_id, namespace)
            row = await tx.one("pause_schedule", {"schedule_id": schedule_id, "note": note,
                                                  "now": now})
            if row is None:
                raise _missing(schedule_id)
            return schedule_record(row)

        record: ScheduleRecord = await self._write(op)
        return record

    async def resume_schedule(self, schedule_id: str, *, note: str | None,
                              next_fire_at: float | None, now: float,
                              namespace: str | None = None) -> ScheduleRecord:
        """See :meth:`duro.store.ScheduleStore.resume_schedule`."""

        async def op(tx: Tx) -> ScheduleRecord:
            await _get(tx, schedule_id, namespace)
            await tx.run("resume_schedule", {"schedule_id": schedule_id, "note": note,
                                             "next_fire_at": next_fire_at, "now": now})
            return await _get(tx, schedule_id, namespace)

        record: ScheduleRecord = await self._write(op, notify=True)
        return record

    async def delete_schedule(self, schedule_id: str, *,
                              namespace: str | None = None) -> bool:
        """See :meth:`duro.store.ScheduleStore.delete_schedule`."""
        return await self._simple("delete_schedule", {"schedule_id": schedule_id,
                                                      "namespace": namespace},
                                  ambiguous="fail") == 1

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRecord]:
        """See :meth:`duro.store.ScheduleStore.due_schedules`."""
        return [schedule_record(r) for r in await self._fetch(
            "due_schedules", {"now": now, "limit": limit})]

    async def next_schedule_due(self) -> float | None:
        """See :meth:`duro.store.ScheduleStore.next_schedule_due`."""
        due: float | None = await self._value("next_schedule_due", {}, "due")
        return due

    async def fire_schedule(
        self, schedule_id: str, *, expected_next: float | None, next_fire_at: float | None,
        ticks: Sequence[float], missed: int, now: float,
    ) -> FireResult | None:
        """See :meth:`duro.store.ScheduleStore.fire_schedule` (the overlap policy:
        :class:`~duro.store._rules.Firing`)."""
        ticks = sorted(ticks)

        async def op(tx: Tx) -> FireResult | None:
            row = await tx.one("lock_schedule", {"schedule_id": schedule_id})
            if row is None:
                return None
            s = schedule_record(row)
            if s.paused or s.next_fire_at != expected_next:
                return None  # another worker handled these ticks (or it was paused)
            firing = Firing(schedule_id=schedule_id, overlap=s.overlap,
                            last=s.last_workflow_id, buffered=s.buffered_at)
            started: list[RunRecord] = []

            async def start(workflow_id: str | None) -> None:
                if workflow_id is not None:
                    record, created = await _start(tx, s, workflow_id, now, None)
                    if created:
                        started.append(record)

            if firing.buffered is not None:
                await start(firing.take_buffered(await _live(tx, firing.last)))
            for tick in ticks:
                await start(firing.take(tick, await _live(tx, firing.last)))
            await tx.run("schedule_fired", {
                "next_fire_at": next_fire_at, "last_tick": firing.last_tick,
                "last": firing.last, "buffered": firing.buffered, "fired": len(started),
                "missed": missed, "skipped": firing.skipped, "now": now,
                "schedule_id": schedule_id})
            return FireResult(started=tuple(started), buffered_at=firing.buffered,
                              overlap_skipped=firing.skipped, missed=missed)

        result: FireResult | None = await self._write(op, notify=True)
        return result

    async def trigger_schedule(self, schedule_id: str, *, workflow_id: str, now: float,
                               namespace: str | None = None) -> RunRecord:
        """See :meth:`duro.store.ScheduleStore.trigger_schedule`."""

        async def op(tx: Tx) -> RunRecord:
            s = await _get(tx, schedule_id, namespace, lock=True)
            record, created = await _start(tx, s, workflow_id, now, namespace, fail=True)
            if not created:  # pragma: no cover - "fail" policies raise instead
                raise WorkflowAlreadyStartedError(
                    f"workflow id {workflow_id!r} is taken", workflow_id=workflow_id,
                    run_id=record.run_id)
            await tx.run("schedule_triggered", {"workflow_id": workflow_id, "now": now,
                                                "schedule_id": schedule_id})
            return record

        record: RunRecord = await self._write(op, notify=True)
        return record

    async def backfill_schedule(self, schedule_id: str, *, ticks: Sequence[float], now: float,
                                namespace: str | None = None) -> list[tuple[RunRecord, bool]]:
        """See :meth:`duro.store.ScheduleStore.backfill_schedule`."""

        async def op(tx: Tx) -> list[tuple[RunRecord, bool]]:
            s = await _get(tx, schedule_id, namespace)
            return [await _start(tx, s, tick_workflow_id(schedule_id, t), now, namespace)
                    for t in ticks]

        result: list[tuple[RunRecord, bool]] = await self._write(op, notify=True)
        return result

