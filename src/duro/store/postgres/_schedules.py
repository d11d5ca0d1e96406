"""Schedule operations of the PostgreSQL store (a mixin of :class:`PostgresStore`).

Every write runs in the writer's transaction: firing a tick locks the schedule's row
(``SELECT ... FOR UPDATE``), checks that ``next_fire_at`` is still the value the caller
saw (compare-and-set) and creates the tick's runs with deterministic workflow ids, all in
one commit. Workers on many hosts that race for a tick take turns on the row lock; the
later ones see a moved ``next_fire_at`` and do nothing, and the workflow id (one live run
per id) is the backstop.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row

from duro.errors import StoreError, WorkflowAlreadyStartedError
from duro.schedules._errors import ScheduleAlreadyExistsError, ScheduleNotFoundError
from duro.schedules._spec import tick_workflow_id
from duro.store._records import Placement, RunRecord
from duro.store._schedules import FireResult, ScheduleDefinition, ScheduleRecord
from duro.store._sqlfiles import load_queries
from duro.store.postgres._ops import create_run

__all__ = ["PostgresSchedules"]

Conn = psycopg.AsyncConnection[Any]


def _queries() -> dict[str, str]:
    return load_queries(__package__ or __name__.rpartition(".")[0], "schedules.sql")


def _record(row: dict[str, Any]) -> ScheduleRecord:
    return ScheduleRecord(
        schedule_id=row["schedule_id"], workflow_name=row["workflow_name"],
        queue=row["queue"], input=row["input"], cron=row["cron"], every=row["every"],
        anchor=row["anchor"], timezone=row["timezone"], overlap=row["overlap"],
        catch_up=row["catch_up"], source=row["source"], paused=bool(row["paused"]),
        note=row["note"], next_fire_at=row["next_fire_at"],
        last_fire_at=row["last_fire_at"], last_workflow_id=row["last_workflow_id"],
        buffered_at=row["buffered_at"], fired=int(row["fired"]), missed=int(row["missed"]),
        overlap_skipped=int(row["overlap_skipped"]), created_at=row["created_at"],
        updated_at=row["updated_at"])


async def _row(conn: Conn, name: str, params: dict[str, Any]) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_queries()[name], params)
    return await cur.fetchone()


async def _get(conn: Conn, schedule_id: str, *, lock: bool = False) -> ScheduleRecord:
    row = await _row(conn, "lock_schedule" if lock else "schedule_by_id",
                     {"schedule_id": schedule_id})
    if row is None:
        raise ScheduleNotFoundError(f"no schedule {schedule_id!r}")
    return _record(row)


async def _live(conn: Conn, workflow_id: str | None) -> bool:
    if workflow_id is None:
        return False
    return await _row(conn, "live_run_of", {"workflow_id": workflow_id}) is not None


async def _start(conn: Conn, schedule: ScheduleRecord, workflow_id: str, now: float, *,
                 fail: bool = False) -> tuple[RunRecord, bool]:
    """Create the run for one tick (or a trigger) unless its workflow id has a run."""
    return await create_run(
        conn, run_id=str(uuid.uuid4()), workflow_id=workflow_id,
        workflow_name=schedule.workflow_name, input=schedule.input, now=now, owner=None,
        on_conflict="fail" if fail else "use_existing",
        on_reuse="fail" if fail else "use_existing", links=None,
        placement=Placement(queue=schedule.queue))


def _definition(d: ScheduleDefinition) -> dict[str, Any]:
    return {"schedule_id": d.schedule_id, "workflow_name": d.workflow_name, "queue": d.queue,
            "input": d.input, "cron": d.cron, "every": d.every, "anchor": d.anchor,
            "timezone": d.timezone, "overlap": d.overlap, "catch_up": d.catch_up,
            "source": d.source}


def _done(value: Any) -> Callable[[], Awaitable[Any]]:
    async def finish() -> Any:
        return value

    return finish


class PostgresSchedules:
    """The :class:`~duro.store.ScheduleStore` operations on PostgreSQL."""

    if TYPE_CHECKING:
        async def _write(self, op: Callable[[Conn], Any], *, notify: bool = False,
                         ambiguous: Any = "fail") -> Any: ...

    async def _read_schedules(self, name: str, params: dict[str, Any]) -> list[ScheduleRecord]:
        # The store's reads take named queries of queries.sql; these live in schedules.sql.
        pool = getattr(self, "_pool", None)
        if pool is None:
            raise StoreError("the store is not open")
        async with pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(_queries()[name], params)
            return [_record(r) for r in await cur.fetchall()]

    async def create_schedule(
        self, definition: ScheduleDefinition, *, paused: bool, note: str | None,
        next_fire_at: float | None, now: float,
    ) -> ScheduleRecord:
        params = {**_definition(definition), "paused": paused, "note": note,
                  "next_fire_at": next_fire_at, "now": now}

        async def op(conn: Conn) -> Any:
            row = await _row(conn, "insert_schedule", params)
            if row is None:
                raise ScheduleAlreadyExistsError(
                    f"a schedule {definition.schedule_id!r} exists already (delete it first, "
                    "or choose another id)")
            return _done(_record(row))

        record: ScheduleRecord = await self._write(op)
        return record

    async def upsert_schedule(
        self, definition: ScheduleDefinition, *, paused: bool, next_fire_at: float | None,
        now: float,
    ) -> tuple[ScheduleRecord, str]:
        d = definition

        async def op(conn: Conn) -> Any:
            row = await _row(conn, "lock_schedule", {"schedule_id": d.schedule_id})
            if row is None:
                created = await _row(conn, "insert_schedule", {
                    **_definition(d), "paused": paused, "note": None,
                    "next_fire_at": next_fire_at, "now": now})
                if created is not None:
                    return _done((_record(created), "created"))
                # Another process declared it a moment ago: compare with theirs.
                row = await _row(conn, "lock_schedule", {"schedule_id": d.schedule_id})
                assert row is not None
            old = _record(row)
            same = (old.workflow_name, old.queue, old.input, old.overlap, old.catch_up,
                    old.source) == (d.workflow_name, d.queue, d.input, d.overlap, d.catch_up,
                                    d.source)
            same_timing = (old.cron, old.every, old.anchor, old.timezone) == (
                d.cron, d.every, d.anchor, d.timezone)
            if same and same_timing:
                return _done((old, "unchanged"))
            # A new timing starts from now; otherwise the pending tick stays as it was.
            nxt = old.next_fire_at if same_timing else next_fire_at
            updated = await _row(conn, "update_definition", {
                **_definition(d), "next_fire_at": nxt, "now": now})
            assert updated is not None
            return _done((_record(updated), "updated"))

        result: tuple[ScheduleRecord, str] = await self._write(op)
        return result

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        rows = await self._read_schedules("schedule_by_id", {"schedule_id": schedule_id})
        return rows[0] if rows else None

    async def list_schedules(self) -> list[ScheduleRecord]:
        return await self._read_schedules("list_schedules", {})

    async def pause_schedule(self, schedule_id: str, *, note: str | None,
                             now: float) -> ScheduleRecord:
        async def op(conn: Conn) -> Any:
            row = await _row(conn, "pause_schedule", {"schedule_id": schedule_id,
                                                      "note": note, "now": now})
            if row is None:
                raise ScheduleNotFoundError(f"no schedule {schedule_id!r}")
            return _done(_record(row))

        record: ScheduleRecord = await self._write(op)
        return record

    async def resume_schedule(self, schedule_id: str, *, note: str | None,
                              next_fire_at: float | None, now: float) -> ScheduleRecord:
        async def op(conn: Conn) -> Any:
            await _get(conn, schedule_id)
            await conn.execute(_queries()["resume_schedule"], {
                "schedule_id": schedule_id, "note": note, "next_fire_at": next_fire_at,
                "now": now})
            return _done(await _get(conn, schedule_id))

        record: ScheduleRecord = await self._write(op, notify=True)
        return record

    async def delete_schedule(self, schedule_id: str) -> bool:
        async def op(conn: Conn) -> Any:
            cur = await conn.execute(_queries()["delete_schedule"],
                                     {"schedule_id": schedule_id})

            async def finish() -> bool:
                return cur.rowcount == 1

            return finish

        deleted: bool = await self._write(op)
        return deleted

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRecord]:
        return await self._read_schedules("due_schedules", {"now": now, "limit": limit})

    async def next_schedule_due(self) -> float | None:
        pool = getattr(self, "_pool", None)
        if pool is None:
            raise StoreError("the store is not open")
        async with pool.connection() as conn:
            cur = await conn.execute(_queries()["next_schedule_due"])
            row = await cur.fetchone()
        value: float | None = row[0] if row else None
        return value

    async def fire_schedule(
        self, schedule_id: str, *, expected_next: float | None, next_fire_at: float | None,
        ticks: Sequence[float], missed: int, now: float,
    ) -> FireResult | None:
        ticks = sorted(ticks)

        async def op(conn: Conn) -> Any:
            row = await _row(conn, "lock_schedule", {"schedule_id": schedule_id})
            if row is None:
                return _done(None)
            s = _record(row)
            if s.paused or s.next_fire_at != expected_next:
                return _done(None)  # another worker handled these ticks (or it was paused)
            started: list[RunRecord] = []
            last = s.last_workflow_id
            buffered = s.buffered_at
            last_tick: float | None = None
            skipped = 0
            if buffered is not None and not await _live(conn, last):
                last = tick_workflow_id(schedule_id, buffered)
                record, created = await _start(conn, s, last, now)
                if created:
                    started.append(record)
                last_tick, buffered = buffered, None
            for tick in ticks:
                if s.overlap != "allow_all" and await _live(conn, last):
                    if s.overlap == "buffer_one" and buffered is None:
                        buffered = tick
                    else:
                        skipped += 1
                    continue
                last = tick_workflow_id(schedule_id, tick)
                record, created = await _start(conn, s, last, now)
                if created:
                    started.append(record)
                last_tick = tick
            await conn.execute(_queries()["schedule_fired"], {
                "next_fire_at": next_fire_at, "last_tick": last_tick, "last": last,
                "buffered": buffered, "fired": len(started), "missed": missed,
                "skipped": skipped, "now": now, "schedule_id": schedule_id})
            return _done(FireResult(started=tuple(started), buffered_at=buffered,
                                    overlap_skipped=skipped, missed=missed))

        result: FireResult | None = await self._write(op, notify=True)
        return result

    async def trigger_schedule(self, schedule_id: str, *, workflow_id: str,
                               now: float) -> RunRecord:
        async def op(conn: Conn) -> Any:
            s = await _get(conn, schedule_id, lock=True)
            record, created = await _start(conn, s, workflow_id, now, fail=True)
            if not created:  # pragma: no cover - "fail" policies raise instead
                raise WorkflowAlreadyStartedError(
                    f"workflow id {workflow_id!r} is taken", workflow_id=workflow_id,
                    run_id=record.run_id)
            await conn.execute(_queries()["schedule_triggered"], {
                "workflow_id": workflow_id, "now": now, "schedule_id": schedule_id})
            return _done(record)

        record: RunRecord = await self._write(op, notify=True)
        return record

    async def backfill_schedule(self, schedule_id: str, *, ticks: Sequence[float],
                                now: float) -> list[tuple[RunRecord, bool]]:
        async def op(conn: Conn) -> Any:
            s = await _get(conn, schedule_id)
            return _done([await _start(conn, s, tick_workflow_id(schedule_id, t), now)
                          for t in ticks])

        result: list[tuple[RunRecord, bool]] = await self._write(op, notify=True)
        return result
