"""Runs: starting them, appending to their histories, ending them, reading them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

from duro._history import PROJECTED_KINDS, SearchValue, charges_of
from duro.errors import RunNotFoundError
from duro.store._base import _writes as w
from duro.store._base._budgets import settle
from duro.store._base._dialect import Dialect, Moved
from duro.store._base._tx import Then, Tx
from duro.store._records import (
    LIVE_STATUSES,
    TERMINAL_STATUSES,
    IdConflictPolicy,
    IdReusePolicy,
    Message,
    NewEvent,
    OpenTask,
    Placement,
    RunLinks,
    RunRecord,
    RunWaitsRecord,
)
from duro.store._rows import run_record
from duro.store._rules import TIMED_OUT, in_namespace, list_query, plan_run, terminated

__all__ = ["Runs"]


def _charged(events: Sequence[NewEvent]) -> bool:
    """Whether an append carries a budgeted step's outcome (its spend is charged in the
    same transaction): a substring test first, so other appends parse nothing."""
    for e in events:  # noqa: SIM110 - no generator on every step's append
        if e.meta is not None and b'"charges"' in e.meta and charges_of(e):
            return True
    return False


class Runs(Dialect):
    """The run operations of :class:`~duro.store.Store`, once for every dialect."""

    async def create_run(
        self, *, run_id: str, workflow_id: str, workflow_name: str, input: bytes, now: float,
        owner: str | None, on_conflict: IdConflictPolicy, on_reuse: IdReusePolicy,
        links: RunLinks | None = None, message: Message | None = None,
        placement: Placement | None = None,
        search_attributes: Mapping[str, SearchValue] | None = None,
        namespace: str | None = None,
    ) -> tuple[RunRecord, bool]:
        """See :meth:`duro.store.ClientStore.create_run`."""
        # Planned here, not in the operation: the writer (SQLite's thread) only writes.
        planned = plan_run(run_id=run_id, workflow_id=workflow_id,
                           workflow_name=workflow_name, input=input, now=now, owner=owner,
                           links=links, placement=placement,
                           search_attributes=search_attributes, namespace=namespace)

        signal_id = None if message is None else message.signal_id
        # Most starts are of an id no run ever had, and need nothing but the insert
        # (create_run's first try): a dialect may run it without the operation machinery
        # (the HTTP start's hot path). Nothing written: the operation decides.
        plain = message is None and not search_attributes and (
            placement is None
            or (placement.dedup_key is None and placement.debounce_key is None))
        if plain and await self._insert_plain(planned.params(started_event=True,
                                                             fresh=True)):
            return planned.record(), True

        async def op(tx: Tx) -> tuple[RunRecord, bool] | Then[tuple[RunRecord, bool]]:
            # A delivery the chain took already starts nothing, even where on_reuse
            # would start a new run after the one that took it.
            if (seen := await w.signal_seen(tx, workflow_id, signal_id)) is not None:
                return seen, False
            record, created = await w.create_run(
                tx, run_id=run_id, workflow_id=workflow_id, workflow_name=workflow_name,
                input=input, now=now, owner=owner, on_conflict=on_conflict,
                on_reuse=on_reuse, links=links, placement=placement,
                search_attributes=search_attributes, planned=planned, namespace=namespace)
            if message is None:
                return record, created
            if not created and (seen := await w.signal_seen(tx, workflow_id,
                                                             signal_id)) is not None:
                # Looked at again after finding the run: taken by a run of the chain
                # that continued as new between the first look and this one.
                return seen, False
            if record.status.value not in LIVE_STATUSES:  # never a new run: it is live
                raise RunNotFoundError(
                    f"workflow id {workflow_id!r} names a run that has ended "
                    f"({record.status.value}); it cannot receive {message.kind}s")
            if message.update_id is not None and not created:
                # The same update again (update-with-start retried): it is one update,
                # as request_update makes it; the run that holds it answers.
                existing = await tx.one("find_update", {"workflow_id": workflow_id,
                                                        "update_id": message.update_id})
                if existing is not None:
                    if existing["run_id"] != record.run_id:
                        record = await w.fetch_run(tx, existing["run_id"]) or record
                    return record, created
            sent = await w.send(tx, record.run_id, message, now)

            async def finish() -> tuple[RunRecord, bool]:
                row = await sent.first()
                if row is None:  # the live run ended meanwhile: nothing was written
                    raise Moved(workflow_id)
                return run_record(row), created

            return Then(finish)

        async def undo(tx: Tx) -> None:  # created owned, but we could not tell the caller
            await tx.run("release_run", {"run_id": run_id, "epoch": 1, "now": now})

        owned = owner is not None and (placement is None or placement.immediate)
        result: tuple[RunRecord, bool] = await self._write_message(
            op, notify=not owned or message is not None, ambiguous=undo if owned else "fail")
        return result

    async def append(
        self, run_id: str, epoch: int, first_seq: int, events: Sequence[NewEvent], *,
        now: float, status: str | None = None, result: bytes | None = None,
        error: bytes | None = None, wake_at: float | None = None, release: bool = False,
        consume_inbox_upto: int | None = None, waits: str | None = None,
    ) -> None:
        """See :meth:`duro.store.WorkerStore.append`."""
        charged = _charged(events)
        if status is None and consume_inbox_upto is None and not charged and (
                events[0].kind not in PROJECTED_KINDS if len(events) == 1
                else not any(e.kind in PROJECTED_KINDS for e in events)):
            # The hot path (a step's outcome): the fenced append alone.
            await self._append_plain(run_id, epoch, first_seq, events, now)
            return
        terminal = status in TERMINAL_STATUSES
        new_len = first_seq + len(events)
        projections = [p for e in events
                       if (p := w.projection(run_id, epoch, new_len, e)) is not None]

        async def op(tx: Tx) -> Then[None] | None:
            fence = await tx.append(run_id, epoch, first_seq, events, now=now, status=status,
                                    result=result, error=error, wake_at=wake_at,
                                    release=release, consume_upto=consume_inbox_upto,
                                    terminal=terminal)
            links = await tx.later("closing_links", {"run_id": run_id}) if terminal else None
            for write in projections:
                await w.run_projection(tx, write)
            if charged:  # a budgeted step's outcome: its spend goes with it
                await settle(tx, run_id, epoch, new_len, events, now)
            if status == "suspended":
                # What it waits for now (the web UI's "waiting for"): rewritten at each
                # suspension, so a value left from an earlier one never shows.
                await tx.run("record_waits", {"run_id": run_id, "waits": waits,
                                              "epoch": epoch, "new_len": new_len})
                # A message that arrived while the run was running must still wake it.
                await tx.run("wake_if_inbox",
                             {**self._wake_params, "run_id": run_id, "now": now})
            if terminal:
                # The run's end concerns its parent and children: only once the fence
                # passed (else nothing was written: the projections are fenced too).
                await fence.check()
                assert status is not None
                await w.on_closed(tx, run_id, status, result, error, now, links)
                return None
            return Then(fence.check)

        await self._write(op, notify=terminal)

    async def get_run(self, workflow_id: str, run_id: str | None = None, *,
                      namespace: str | None = None) -> RunRecord | None:
        """See :meth:`duro.store.ClientStore.get_run`."""
        if run_id is not None:
            rows = await self._fetch("run_by_id", {"run_id": run_id})
        else:
            rows = await self._fetch("latest_run_by_workflow_id",
                                     {"workflow_id": workflow_id, "namespace": namespace})
            if not rows:  # accept a run id where a workflow id was expected
                rows = await self._fetch("run_by_id", {"run_id": workflow_id})
        if not rows or not in_namespace(rows[0]["namespace"], namespace):
            return None
        return run_record(rows[0])

    async def list_runs(
        self, *, status: str | None = None, name: str | None = None, limit: int = 100,
        created_after: float | None = None, created_before: float | None = None,
        id_prefix: str | None = None, attributes: Mapping[str, SearchValue] | None = None,
        after: tuple[float, str] | None = None, namespace: str | None = None,
    ) -> list[RunRecord]:
        """See :meth:`duro.store.ClientStore.list_runs`."""
        query, params = list_query(
            status=status, name=name, created_after=created_after,
            created_before=created_before, id_prefix=id_prefix, attributes=attributes,
            after=after, limit=limit, namespace=namespace)
        return [run_record(r) for r in await self._fetch(query, params)]

    async def search_attributes(
        self, run_ids: Sequence[str]
    ) -> dict[str, dict[str, SearchValue]]:
        """See :meth:`duro.store.ClientStore.search_attributes`."""
        out: dict[str, dict[str, SearchValue]] = {}
        if not run_ids:
            return out
        for r in await self._fetch("search_attributes_of", {"ids": list(run_ids)}):
            out.setdefault(r["run_id"], {})[r["key"]] = orjson.loads(r["data"])
        return out

    async def children(self, run_id: str) -> list[RunRecord]:
        """See :meth:`duro.store.ClientStore.children`."""
        return [run_record(r) for r in await self._fetch("children_of", {"run_id": run_id})]

    async def run_waits(self, run_id: str) -> RunWaitsRecord:
        """See :meth:`duro.store.ClientStore.run_waits`."""
        waits: str | None = await self._value("waits_of_run", {"run_id": run_id}, "waits")
        tasks = await self._fetch("open_tasks_of_run", {"run_id": run_id})
        return RunWaitsRecord(waits=waits, tasks=tuple(OpenTask(
            op=r["op"], attempt=r["attempt"], step=r["step"], queue=r["queue"],
            owner=r["owner"] if r["status"] == "running" else None,
            created_at=r["created_at"], updated_at=r["updated_at"]) for r in tasks))

    async def get_state(self, run_id: str, key: str) -> bytes | None:
        """See :meth:`duro.store.ClientStore.get_state`."""
        value: bytes | None = await self._value("get_state", {"run_id": run_id, "key": key},
                                                "value")
        return value

    async def release(self, run_id: str, epoch: int, *, now: float) -> None:
        """See :meth:`duro.store.WorkerStore.release`."""
        await self._simple("release_run", {"run_id": run_id, "epoch": epoch, "now": now},
                           notify=True)

    async def mark_trial(self, run_id: str, epoch: int) -> None:
        """See :meth:`duro.store.WorkerStore.mark_trial`."""
        await self._simple("mark_trial", {"run_id": run_id, "epoch": epoch})

    async def park(self, run_id: str, epoch: int, *, error: bytes, code_hash: str,
                   now: float) -> None:
        """See :meth:`duro.store.WorkerStore.park`."""
        await self._simple("park_run", {"run_id": run_id, "epoch": epoch, "error": error,
                                        "code_hash": code_hash, "now": now})

    async def unpark(self, name: str, code_hash: str, *, now: float) -> int:
        """See :meth:`duro.store.WorkerStore.unpark`."""
        return await self._simple("unpark", {"name": name, "code_hash": code_hash,
                                             "now": now}, notify=True)

    async def resume_parked(self, workflow_id: str, *, now: float,
                            namespace: str | None = None) -> RunRecord:
        """See :meth:`duro.store.AdminStore.resume_parked`."""
        missing = f"no parked run with workflow id {workflow_id!r}"

        async def op(tx: Tx) -> Then[RunRecord]:
            row = await w.live_run(tx, workflow_id, namespace)
            if row is None or row["status"] != "parked":
                raise RunNotFoundError(missing)
            resumed = await tx.later("resume_parked", {"run_id": row["run_id"], "now": now})

            async def finish() -> RunRecord:
                got = await resumed.first()
                if got is None:
                    raise RunNotFoundError(missing)
                return run_record(got)

            return Then(finish)

        record: RunRecord = await self._write(op, notify=True)
        return record

    async def terminate(self, workflow_id: str, *, reason: str, now: float,
                        namespace: str | None = None) -> RunRecord:
        """See :meth:`duro.store.AdminStore.terminate`."""
        error = terminated(reason)

        async def op(tx: Tx) -> RunRecord:
            run_id = await w.live_run_id(tx, workflow_id, namespace)
            record = await w.close(tx, run_id, "terminated", error, now)
            if record is None:
                raise RunNotFoundError(f"no live run with workflow id {workflow_id!r}")
            return record

        record: RunRecord = await self._write(op, notify=True)
        return record

    async def time_out(self, run_id: str, epoch: int, *, now: float) -> bool:
        """See :meth:`duro.store.WorkerStore.time_out`."""

        async def op(tx: Tx) -> bool:
            return await w.close(tx, run_id, "timed_out", TIMED_OUT, now,
                                 epoch=epoch) is not None

        done: bool = await self._write(op, notify=True)
        return done

    async def save_heartbeat(self, run_id: str, op: int, details: bytes, *, now: float) -> None:
        """See :meth:`duro.store.WorkerStore.save_heartbeat`."""
        await self._simple("save_heartbeat", {"run_id": run_id, "op": op,
                                              "details": details, "now": now})

