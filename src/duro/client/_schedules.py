"""``client.schedules``: create, inspect and control schedules."""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson

from duro._checks import DEFAULT_NAMESPACE
from duro._clock import iso, parse_time, utc
from duro.client._handle import WorkflowHandle
from duro.errors import InvalidArgumentError, StoreError
from duro.schedules._declare import DEFAULT_CATCH_UP, build_definition, spec_of
from duro.schedules._errors import ScheduleNotFoundError
from duro.schedules._spec import OverlapPolicy, ScheduleSpec, known_zone
from duro.store._schedules import ScheduleDefinition, ScheduleRecord, ScheduleStore
from duro.workflow._api import Workflow

if TYPE_CHECKING:
    from duro.client._client import Client

__all__ = ["BACKFILL_LIMIT", "ScheduleInfo", "Schedules"]

BACKFILL_LIMIT = 10_000
"""Ticks one backfill may start."""


@dataclass(frozen=True, kw_only=True)
class ScheduleInfo:
    """A schedule as stored (times are UTC datetimes)."""

    schedule_id: str
    workflow_name: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    cron: str | None
    every: timedelta | None
    timezone: str
    anchor: dt.datetime | None
    """The interval's anchor tick (None for cron schedules)."""
    overlap: str
    catch_up: timedelta
    source: str
    """``api`` or ``code`` (declared with ``duro.schedule``)."""
    paused: bool
    note: str | None
    next_fire_at: dt.datetime | None
    """The next tick (while paused: where it stood when paused; resume recomputes it)."""
    last_fire_at: dt.datetime | None
    last_workflow_id: str | None
    buffered_at: dt.datetime | None
    fired: int
    missed: int
    overlap_skipped: int
    created_at: dt.datetime
    updated_at: dt.datetime
    namespace: str = "default"
    """The namespace the schedule and its runs belong to."""

    def in_zone(self, when: dt.datetime) -> dt.datetime:
        """``when`` on the wall clock of the schedule's time zone (its ``tzinfo`` a
        ``ZoneInfo``, so ``tzname()`` gives the zone's abbreviation and ``str(tzinfo)`` its
        IANA name): a Berlin ``0 2 * * *`` schedule's next tick reads 02:00, not 01:00.
        In UTC when this machine does not know the zone (as ``duro schedules`` shows it),
        so such a schedule is still listed."""
        return when.astimezone(known_zone(self.timezone) or dt.UTC)

    def describe(self) -> str:
        """``cron '0 9 * * 1-5' (Europe/Berlin)`` or ``every 30s``; a cron schedule in a
        zone this machine does not know says so (its ticks cannot be computed here)."""
        try:
            return self.spec.describe()
        except ValueError:
            return f"cron {self.cron!r} ({self.timezone}, a zone unknown here)"

    def upcoming_ticks(self, count: int) -> list[dt.datetime]:
        """The next ``count`` ticks at most (UTC), from the pending one (while paused:
        where it stood; resume recomputes it); only the pending one when this machine
        does not know the schedule's time zone; none when there is no pending tick."""
        if self.next_fire_at is None:
            return []
        first = self.next_fire_at.timestamp()
        try:
            ticks = self.spec.upcoming(first, count)
        except ValueError:  # a zone this machine lacks: its cron cannot be evaluated here
            ticks = [first][:count]
        return [dt.datetime.fromtimestamp(t, tz=dt.UTC) for t in ticks]

    @property
    def next_fire_local(self) -> dt.datetime | None:
        """:attr:`next_fire_at` in the schedule's own time zone (None when there is none)."""
        return None if self.next_fire_at is None else self.in_zone(self.next_fire_at)

    @property
    def spec(self) -> ScheduleSpec:
        """The schedule's timing."""
        return ScheduleSpec(cron=self.cron,
                            every=None if self.every is None else self.every.total_seconds(),
                            timezone=self.timezone,
                            anchor=0.0 if self.anchor is None else self.anchor.timestamp())

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (times in ISO 8601, UTC; durations in seconds), with
        ``next_fire_local``: the next tick in the schedule's zone, ISO 8601 with its
        offset (e.g. ``2026-12-07T02:00:00+01:00``)."""
        return {
            "schedule_id": self.schedule_id, "namespace": self.namespace,
            "workflow_name": self.workflow_name,
            "queue": self.queue, "args": self.args, "kwargs": self.kwargs, "cron": self.cron,
            "every": None if self.every is None else self.every.total_seconds(),
            "timezone": self.timezone, "anchor": iso(self.anchor), "overlap": self.overlap,
            "catch_up": self.catch_up.total_seconds(), "source": self.source,
            "paused": self.paused, "note": self.note, "next_fire_at": iso(self.next_fire_at),
            "next_fire_local": iso(self.next_fire_local),
            "last_fire_at": iso(self.last_fire_at), "last_workflow_id": self.last_workflow_id,
            "buffered_at": iso(self.buffered_at), "fired": self.fired, "missed": self.missed,
            "overlap_skipped": self.overlap_skipped, "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScheduleInfo:
        """The schedule from its JSON form (:meth:`to_json`, as the HTTP API sends it)."""
        every = data.get("every")
        created, updated = parse_time(data["created_at"]), parse_time(data["updated_at"])
        assert created is not None and updated is not None
        return cls(
            schedule_id=data["schedule_id"], workflow_name=data["workflow_name"],
            queue=data["queue"], args=list(data.get("args") or []),
            kwargs=dict(data.get("kwargs") or {}), cron=data.get("cron"),
            every=None if every is None else timedelta(seconds=every),
            timezone=data["timezone"], anchor=parse_time(data.get("anchor")),
            overlap=data["overlap"], catch_up=timedelta(seconds=data["catch_up"]),
            source=data["source"], paused=bool(data["paused"]), note=data.get("note"),
            next_fire_at=parse_time(data.get("next_fire_at")),
            last_fire_at=parse_time(data.get("last_fire_at")),
            last_workflow_id=data.get("last_workflow_id"),
            buffered_at=parse_time(data.get("buffered_at")), fired=int(data["fired"]),
            missed=int(data["missed"]), overlap_skipped=int(data["overlap_skipped"]),
            created_at=created, updated_at=updated,
            namespace=data.get("namespace") or "default")

    @classmethod
    def from_record(cls, r: ScheduleRecord) -> ScheduleInfo:
        try:
            payload = orjson.loads(r.input)
        except orjson.JSONDecodeError:
            payload = {}
        created, updated = utc(r.created_at), utc(r.updated_at)
        assert created is not None and updated is not None
        return cls(
            schedule_id=r.schedule_id, workflow_name=r.workflow_name, queue=r.queue,
            args=list(payload.get("args", [])), kwargs=dict(payload.get("kwargs", {})),
            cron=r.cron, every=None if r.every is None else timedelta(seconds=r.every),
            timezone=r.timezone, anchor=None if r.every is None else utc(r.anchor),
            overlap=r.overlap, catch_up=timedelta(seconds=r.catch_up), source=r.source,
            paused=r.paused, note=r.note, next_fire_at=utc(r.next_fire_at),
            last_fire_at=utc(r.last_fire_at), last_workflow_id=r.last_workflow_id,
            buffered_at=utc(r.buffered_at), fired=r.fired, missed=r.missed,
            overlap_skipped=r.overlap_skipped, created_at=created, updated_at=updated,
            namespace=r.namespace)


class Schedules:
    """The schedules of a client's store: ``client.schedules`` (``engine.schedules``).

    A schedule starts a workflow on a cron expression (in a time zone) or a fixed
    interval. Every worker fires due ticks; each tick starts exactly one run, whose
    workflow id is ``<schedule id>@<tick time, UTC ISO 8601>``.

    Schedules belong to the client's namespace (one it creates with a client of no
    namespace is in ``"default"``), and so do the runs they start; a schedule of another
    namespace is, to this client, as if there were none (``ScheduleNotFoundError``).
    Schedule ids are unique across namespaces.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    @property
    def _namespace(self) -> str | None:
        return self._client.namespace

    def _store(self) -> ScheduleStore:
        self._client._require_open()
        store = self._client.store
        if not isinstance(store, ScheduleStore):
            raise StoreError(f"this store ({type(store).__name__}) has no schedules yet")
        return store

    def _changed(self) -> None:
        # The embedded worker's scheduler looks at the store again at once.
        self._client._local.schedules_changed()

    async def create(
        self,
        schedule_id: str,
        workflow: Workflow[..., Any] | str,
        *,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        cron: str | None = None,
        every: float | timedelta | None = None,
        timezone: str = "UTC",
        anchor: float | dt.datetime | None = None,
        overlap: OverlapPolicy = "skip",
        catch_up: float | timedelta = DEFAULT_CATCH_UP,
        queue: str | None = None,
        paused: bool = False,
        note: str | None = None,
    ) -> ScheduleInfo:
        """Create a schedule; its first tick is the first one after now.

        Args:
            schedule_id: The schedule's id (no ``@``).
            workflow: The workflow or its name (a name not imported here is accepted:
                a worker that has its code runs it).
            args: The workflow's positional arguments for every run.
            kwargs: Its keyword arguments.
            cron: A 5-field cron expression (or ``@hourly``, ``@daily``...) on the wall
                clock of ``timezone``. DST: a time that does not exist is skipped, a
                repeated one fires once.
            every: A fixed interval (seconds or timedelta) instead of ``cron``.
            timezone: IANA time zone of ``cron`` (default UTC).
            anchor: For ``every``: a tick time (default the Unix epoch).
            overlap: While the previous run is live, a tick is skipped (``skip``),
                remembered and started when it ends (``buffer_one``, at most one), or
                started anyway (``allow_all``).
            catch_up: After downtime, ticks missed by at most this long still fire
                (each once); older ones are skipped and counted (``missed``).
            queue: The runs' queue (default: the workflow's).
            paused: Create it paused.
            note: A note (e.g. why it is paused).

        Raises:
            ScheduleAlreadyExistsError: The id is taken.
            InvalidArgumentError: A bad id or policy (see :func:`duro.schedule`).
            ValueError, WorkflowArgumentsError, SerializationError: Bad definition or
                arguments.
        """
        definition, spec = build_definition(
            schedule_id, workflow, args, kwargs, cron=cron, every=every, timezone=timezone,
            anchor=anchor, overlap=overlap, catch_up=catch_up, queue=queue, source="api")
        definition = dataclasses.replace(definition,
                                         namespace=self._namespace or DEFAULT_NAMESPACE)
        store = self._store()
        now = self._client.clock.now()
        record = await store.create_schedule(definition, paused=paused, note=note,
                                             next_fire_at=spec.next_after(now), now=now)
        self._changed()
        return ScheduleInfo.from_record(record)

    async def update(
        self,
        schedule_id: str,
        *,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        cron: str | None = None,
        every: float | timedelta | None = None,
        timezone: str | None = None,
        anchor: float | dt.datetime | None = None,
        overlap: OverlapPolicy | None = None,
        catch_up: float | timedelta | None = None,
        queue: str | None = None,
    ) -> ScheduleInfo:
        """Change a schedule in place: what is given replaces what is stored, the rest
        stays (None: unchanged). Its id, runs, counters, paused state and note stay;
        a new timing (``cron``, ``every``, ``timezone``, ``anchor``) fires from the first
        tick after now, other changes keep the pending tick. ``cron`` turns an interval
        schedule into a cron one and ``every`` the reverse. The arguments are checked
        against the workflow's signature when its code is imported here.

        A schedule declared in code (``duro.schedule``) follows its declaration again
        when a worker with that code starts.

        Raises:
            ScheduleNotFoundError: No such schedule.
            InvalidArgumentError: Both ``cron`` and ``every``, or a bad policy or time.
            ValueError, WorkflowArgumentsError, SerializationError: Bad definition or
                arguments (nothing is changed).
        """
        changes = _Changes(args=args, kwargs=kwargs, cron=cron, every=every,
                           timezone=timezone, anchor=anchor, overlap=overlap,
                           catch_up=catch_up, queue=queue)
        if cron is not None and every is not None:
            raise InvalidArgumentError("give cron or every, not both")
        store = self._store()
        current = await store.get_schedule(schedule_id, namespace=self._namespace)
        if current is None:
            raise ScheduleNotFoundError(f"no schedule {schedule_id!r}")
        now = self._client.clock.now()
        changes.apply(current, now)  # refused here, before the write, when bad

        def change(stored: ScheduleRecord) -> tuple[ScheduleDefinition, float | None]:
            return changes.apply(stored, now)

        record = await store.update_schedule(schedule_id, change, now=now,
                                             namespace=self._namespace)
        self._changed()
        return ScheduleInfo.from_record(record)

    async def list(self) -> list[ScheduleInfo]:
        """Every schedule of the client's namespace, by id."""
        return [ScheduleInfo.from_record(r) for r in await self._store().list_schedules(
            namespace=self._namespace)]

    async def get(self, schedule_id: str) -> ScheduleInfo:
        """One schedule.

        Raises:
            ScheduleNotFoundError: No such schedule.
        """
        record = await self._store().get_schedule(schedule_id, namespace=self._namespace)
        if record is None:
            raise ScheduleNotFoundError(f"no schedule {schedule_id!r}")
        return ScheduleInfo.from_record(record)

    async def pause(self, schedule_id: str, *, note: str | None = None) -> ScheduleInfo:
        """Stop firing ticks until :meth:`resume` (ticks meanwhile are not caught up)."""
        record = await self._store().pause_schedule(schedule_id, note=note,
                                                    now=self._client.clock.now(),
                                                    namespace=self._namespace)
        return ScheduleInfo.from_record(record)

    async def resume(self, schedule_id: str, *, note: str | None = None) -> ScheduleInfo:
        """Fire ticks again, from the first one after now. No-op if not paused."""
        store = self._store()
        current = await store.get_schedule(schedule_id, namespace=self._namespace)
        if current is None:
            raise ScheduleNotFoundError(f"no schedule {schedule_id!r}")
        now = self._client.clock.now()
        record = await store.resume_schedule(
            schedule_id, note=note, next_fire_at=spec_of(current).next_after(now), now=now,
            namespace=self._namespace)
        self._changed()
        return ScheduleInfo.from_record(record)

    async def trigger(self, schedule_id: str) -> WorkflowHandle[Any]:
        """Start a run now (even while paused), whatever the overlap policy; its
        workflow id is ``<schedule id>@manual-<random>``.

        Raises:
            ScheduleNotFoundError: No such schedule.
        """
        store = self._store()
        workflow_id = f"{schedule_id}@manual-{uuid.uuid4().hex[:12]}"
        record = await store.trigger_schedule(schedule_id, workflow_id=workflow_id,
                                              now=self._client.clock.now(),
                                              namespace=self._namespace)
        self._started()
        return self._handle(record.workflow_id, record.run_id, record.workflow_name)

    async def backfill(self, schedule_id: str, start: dt.datetime | float,
                       end: dt.datetime | float) -> builtins.list[WorkflowHandle[Any]]:
        """Start a run for each tick in ``[start, end]`` that has none yet (the same
        workflow ids as the ticks themselves), so running it again starts nothing.
        Returns the runs started.

        Raises:
            ScheduleNotFoundError: No such schedule.
            ValueError: ``end`` before ``start``, naive datetimes, or more than
                ``BACKFILL_LIMIT`` ticks.
        """
        lo, hi = _ts(start, "start"), _ts(end, "end")
        if hi < lo:
            raise ValueError("backfill end is before its start")
        store = self._store()
        current = await store.get_schedule(schedule_id, namespace=self._namespace)
        if current is None:
            raise ScheduleNotFoundError(f"no schedule {schedule_id!r}")
        ticks = spec_of(current).ticks(lo, hi, limit=BACKFILL_LIMIT)
        now = self._client.clock.now()
        started = []
        for i in range(0, len(ticks), 500):
            for record, created in await store.backfill_schedule(
                    schedule_id, ticks=ticks[i:i + 500], now=now, namespace=self._namespace):
                if created:
                    started.append(self._handle(record.workflow_id, record.run_id,
                                                record.workflow_name))
        if started:
            self._started()
        return started

    async def delete(self, schedule_id: str) -> None:
        """Delete a schedule; its runs stay.

        Raises:
            ScheduleNotFoundError: No such schedule.
        """
        if not await self._store().delete_schedule(schedule_id, namespace=self._namespace):
            raise ScheduleNotFoundError(f"no schedule {schedule_id!r}")

    def _started(self) -> None:
        self._client._local.wake()

    def _handle(self, workflow_id: str, run_id: str, name: str) -> WorkflowHandle[Any]:
        from duro.client._client import _return_hint

        return WorkflowHandle(self._client, workflow_id, run_id, result_hint=_return_hint(name))


@dataclass(frozen=True, kw_only=True)
class _Changes:
    """What :meth:`Schedules.update` was given (None: keep the stored value)."""

    args: Sequence[Any] | None
    kwargs: Mapping[str, Any] | None
    cron: str | None
    every: float | timedelta | None
    timezone: str | None
    anchor: float | dt.datetime | None
    overlap: str | None
    catch_up: float | timedelta | None
    queue: str | None

    def apply(self, old: ScheduleRecord, now: float) -> tuple[ScheduleDefinition, float | None]:
        """The new definition and its first tick after ``now`` (checked as a new
        schedule's: the same errors)."""
        try:
            stored = orjson.loads(old.input)
        except orjson.JSONDecodeError:
            stored = {}
        cron: str | None = old.cron
        every: float | timedelta | None = old.every
        anchor: float | dt.datetime | None = old.anchor if old.cron is None else None
        if self.cron is not None:
            cron, every, anchor = self.cron, None, None
        elif self.every is not None:
            cron, every = None, self.every
        if self.anchor is not None:
            anchor = self.anchor
        definition, spec = build_definition(
            old.schedule_id, old.workflow_name,
            list(stored.get("args", [])) if self.args is None else self.args,
            dict(stored.get("kwargs", {})) if self.kwargs is None else self.kwargs,
            cron=cron, every=every, anchor=anchor,
            timezone=old.timezone if self.timezone is None else self.timezone,
            overlap=old.overlap if self.overlap is None else self.overlap,
            catch_up=old.catch_up if self.catch_up is None else self.catch_up,
            queue=old.queue if self.queue is None else self.queue, source=old.source)
        definition = dataclasses.replace(definition, namespace=old.namespace)
        return definition, spec.next_after(now)


def _ts(value: dt.datetime | float, what: str) -> float:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"backfill {what} must be timezone-aware")
        return value.timestamp()
    return float(value)
