"""Schedule operations of the SQLite store (a mixin of :class:`SqliteStore`).

Every write runs on the store's writer thread, inside its ``BEGIN IMMEDIATE``
transaction: firing a tick re-reads the schedule, checks that ``next_fire_at`` is still
the value the caller saw (compare-and-set) and creates the tick's runs with
deterministic workflow ids, all in one commit. Two workers (or two processes) that
race for a tick serialize on the write lock; the loser sees a moved ``next_fire_at``
and does nothing, and the workflow id is the backstop.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from duro.errors import WorkflowAlreadyStartedError
from duro.schedules._errors import ScheduleAlreadyExistsError, ScheduleNotFoundError
from duro.schedules._spec import tick_workflow_id
from duro.store._records import Placement, RunRecord
from duro.store._schedules import FireResult, ScheduleDefinition, ScheduleRecord
from duro.store._sqlfiles import load_queries
from duro.store.sqlite._ops import create_run

__all__ = ["SqliteSchedules"]



def _queries() -> dict[str, str]:
    return load_queries(__package__ or __name__.rpartition(".")[0], "schedules.sql")


def _record(row: sqlite3.Row) -> ScheduleRecord:
    return ScheduleRecord(
        schedule_id=row["schedule_id"], workflow_name=row["workflow_name"],
        queue=row["queue"], input=row["input"], cron=row["cron"], every=row["every"],
        anchor=row["anchor"],
        timezone=row["timezone"], overlap=row["overlap"], catch_up=row["catch_up"],
        source=row["source"], paused=bool(row["paused"]), note=row["note"],
        next_fire_at=row["next_fire_at"], last_fire_at=row["last_fire_at"],
        last_workflow_id=row["last_workflow_id"], buffered_at=row["buffered_at"],
        fired=row["fired"], missed=row["missed"], overlap_skipped=row["overlap_skipped"],
        created_at=row["created_at"], updated_at=row["updated_at"])


def _get(conn: sqlite3.Connection, schedule_id: str) -> ScheduleRecord:
    row = conn.execute(_queries()["schedule_by_id"], (schedule_id,)).fetchone()
    if row is None:
        raise ScheduleNotFoundError(f"no schedule {schedule_id!r}")
    return _record(row)


def _live(conn: sqlite3.Connection, workflow_id: str | None) -> bool:
    if workflow_id is None:
        return False
    return conn.execute(_queries()["live_run_of"], (workflow_id,)).fetchone() is not None


def _start(conn: sqlite3.Connection, schedule: ScheduleRecord, workflow_id: str,
           now: float, *, fail: bool = False) -> tuple[RunRecord, bool]:
    """Create the run for one tick (or a trigger) unless its workflow id has a run."""
    return create_run(
        conn, run_id=str(uuid.uuid4()), workflow_id=workflow_id,
        workflow_name=schedule.workflow_name, input=schedule.input, now=now, owner=None,
        on_conflict="fail" if fail else "use_existing",
        on_reuse="fail" if fail else "use_existing", links=None,
        placement=Placement(queue=schedule.queue))


class SqliteSchedules:
    """The :class:`~duro.store.ScheduleStore` operations on SQLite."""

    if TYPE_CHECKING:
        async def _write(self, op: Any) -> Any: ...

        def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...

    async def create_schedule(
        self, definition: ScheduleDefinition, *, paused: bool, note: str | None,
        next_fire_at: float | None, now: float,
    ) -> ScheduleRecord:
        d = definition

        def op(conn: sqlite3.Connection) -> ScheduleRecord:
            if conn.execute(_queries()["schedule_by_id"], (d.schedule_id,)).fetchone():
                raise ScheduleAlreadyExistsError(
                    f"a schedule {d.schedule_id!r} exists already (delete it first, or "
                    "choose another id)")
            conn.execute(_queries()["insert_schedule"], (
                d.schedule_id, d.workflow_name, d.queue, d.input, d.cron, d.every, d.anchor,
                d.timezone, d.overlap, d.catch_up, d.source, int(paused), note,
                next_fire_at, now, now))
            return _get(conn, d.schedule_id)

        record: ScheduleRecord = await self._write(op)
        return record

    async def upsert_schedule(
        self, definition: ScheduleDefinition, *, paused: bool, next_fire_at: float | None,
        now: float,
    ) -> tuple[ScheduleRecord, str]:
        d = definition

        def op(conn: sqlite3.Connection) -> tuple[ScheduleRecord, str]:
            row = conn.execute(_queries()["schedule_by_id"], (d.schedule_id,)).fetchone()
            if row is None:
                conn.execute(_queries()["insert_schedule"], (
                    d.schedule_id, d.workflow_name, d.queue, d.input, d.cron, d.every,
                    d.anchor, d.timezone, d.overlap, d.catch_up, d.source, int(paused), None,
                    next_fire_at, now, now))
                return _get(conn, d.schedule_id), "created"
            old = _record(row)
            same = (old.workflow_name, old.queue, old.input, old.overlap, old.catch_up,
                    old.source) == (d.workflow_name, d.queue, d.input, d.overlap, d.catch_up,
                                    d.source)
            same_timing = (old.cron, old.every, old.anchor, old.timezone) == (
                d.cron, d.every, d.anchor, d.timezone)
            if same and same_timing:
                return old, "unchanged"
            # A new timing starts from now; otherwise the pending tick stays as it was.
            nxt = old.next_fire_at if same_timing else next_fire_at
            conn.execute(_queries()["update_definition"], (
                d.workflow_name, d.queue, d.input, d.cron, d.every, d.anchor, d.timezone,
                d.overlap, d.catch_up, d.source, nxt, now, d.schedule_id))
            return _get(conn, d.schedule_id), "updated"

        result: tuple[ScheduleRecord, str] = await self._write(op)
        return result

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        rows = self._read(_queries()["schedule_by_id"], (schedule_id,))
        return _record(rows[0]) if rows else None

    async def list_schedules(self) -> list[ScheduleRecord]:
        return [_record(r) for r in self._read(_queries()["list_schedules"])]

    async def pause_schedule(self, schedule_id: str, *, note: str | None,
                             now: float) -> ScheduleRecord:
        def op(conn: sqlite3.Connection) -> ScheduleRecord:
            _get(conn, schedule_id)
            conn.execute(_queries()["pause_schedule"], (note, now, schedule_id))
            return _get(conn, schedule_id)

        record: ScheduleRecord = await self._write(op)
        return record

    async def resume_schedule(self, schedule_id: str, *, note: str | None,
                              next_fire_at: float | None, now: float) -> ScheduleRecord:
        def op(conn: sqlite3.Connection) -> ScheduleRecord:
            _get(conn, schedule_id)
            conn.execute(_queries()["resume_schedule"], (note, next_fire_at, now, schedule_id))
            return _get(conn, schedule_id)

        record: ScheduleRecord = await self._write(op)
        return record

    async def delete_schedule(self, schedule_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute(_queries()["delete_schedule"], (schedule_id,)).rowcount == 1

        deleted: bool = await self._write(op)
        return deleted

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRecord]:
        return [_record(r) for r in self._read(_queries()["due_schedules"], (now, limit))]

    async def next_schedule_due(self) -> float | None:
        rows = self._read(_queries()["next_schedule_due"])
        value: float | None = rows[0][0] if rows else None
        return value

    async def fire_schedule(
        self, schedule_id: str, *, expected_next: float | None, next_fire_at: float | None,
        ticks: Sequence[float], missed: int, now: float,
    ) -> FireResult | None:
        ticks = sorted(ticks)

        def op(conn: sqlite3.Connection) -> FireResult | None:
            row = conn.execute(_queries()["schedule_by_id"], (schedule_id,)).fetchone()
            if row is None:
                return None
            s = _record(row)
            if s.paused or s.next_fire_at != expected_next:
                return None  # another worker handled these ticks (or it was paused)
            started: list[RunRecord] = []
            last = s.last_workflow_id
            buffered = s.buffered_at
            last_tick: float | None = None
            skipped = 0
            if buffered is not None and not _live(conn, last):
                last = tick_workflow_id(schedule_id, buffered)
                record, created = _start(conn, s, last, now)
                if created:
                    started.append(record)
                last_tick, buffered = buffered, None
            for tick in ticks:
                if s.overlap != "allow_all" and _live(conn, last):
                    if s.overlap == "buffer_one" and buffered is None:
                        buffered = tick
                    else:
                        skipped += 1
                    continue
                last = tick_workflow_id(schedule_id, tick)
                record, created = _start(conn, s, last, now)
                if created:
                    started.append(record)
                last_tick = tick
            conn.execute(_queries()["schedule_fired"], (
                next_fire_at, last_tick, last, buffered, len(started), missed, skipped, now,
                schedule_id))
            return FireResult(started=tuple(started), buffered_at=buffered,
                              overlap_skipped=skipped, missed=missed)

        result: FireResult | None = await self._write(op)
        return result

    async def trigger_schedule(self, schedule_id: str, *, workflow_id: str,
                               now: float) -> RunRecord:
        def op(conn: sqlite3.Connection) -> RunRecord:
            s = _get(conn, schedule_id)
            record, created = _start(conn, s, workflow_id, now, fail=True)
            if not created:  # pragma: no cover - "fail" policies raise instead
                raise WorkflowAlreadyStartedError(
                    f"workflow id {workflow_id!r} is taken", workflow_id=workflow_id,
                    run_id=record.run_id)
            conn.execute(_queries()["schedule_triggered"], (workflow_id, now, schedule_id))
            return record

        record: RunRecord = await self._write(op)
        return record

    async def backfill_schedule(self, schedule_id: str, *, ticks: Sequence[float],
                                now: float) -> list[tuple[RunRecord, bool]]:
        def op(conn: sqlite3.Connection) -> list[tuple[RunRecord, bool]]:
            s = _get(conn, schedule_id)
            return [_start(conn, s, tick_workflow_id(schedule_id, t), now) for t in ticks]

        result: list[tuple[RunRecord, bool]] = await self._write(op)
        return result
