"""Messages to runs: signals and cancel requests, updates, the inbox."""

from __future__ import annotations

from duro.errors import RunNotFoundError
from duro.store._base import _writes as w
from duro.store._base._dialect import Dialect, Moved
from duro.store._base._tx import Then, Tx
from duro.store._records import LIVE_STATUSES, InboxMessage, Message, RunRecord, UpdateOutcome
from duro.store._rows import inbox_message, run_record, update_outcome
from duro.store._rules import in_namespace

__all__ = ["Messages"]


class Messages(Dialect):
    """The message operations of :class:`~duro.store.Store`, once for every dialect."""

    async def send_message(self, workflow_id: str, kind: str, name: str | None,
                           data: bytes | None, *, now: float, meta: bytes | None = None,
                           signal_id: str | None = None,
                           namespace: str | None = None) -> RunRecord:
        """See :meth:`duro.store.ClientStore.send_message`."""
        message = Message(kind=kind, name=name, data=data, meta=meta, signal_id=signal_id)

        async def op(tx: Tx) -> RunRecord | Then[RunRecord]:
            try:
                live = await w.live_row(tx, workflow_id, namespace)
            except RunNotFoundError:
                # A delivery the chain took before it ended is still a delivery done.
                seen = await w.signal_seen(tx, workflow_id, signal_id, namespace)
                if seen is None:
                    raise
                return seen
            seen = await w.signal_seen(tx, live["workflow_id"], signal_id, namespace)
            if seen is not None:
                return seen  # the same delivery again: nothing to write
            sent = await w.send(tx, live["run_id"], message, now)

            async def finish() -> RunRecord:
                row = await sent.first()
                if row is None:  # it ended between the lookup and the insert
                    raise Moved(workflow_id)
                return run_record(row)

            return Then(finish)

        record: RunRecord = await self._write_message(op, notify=True)
        return record

    async def send_to_run(self, run_id: str, message: Message, *, now: float,
                          namespace: str | None = None) -> RunRecord:
        """See :meth:`duro.store.ClientStore.send_to_run`."""
        gone = f"run {run_id!r} is not live (or does not exist)"

        async def op(tx: Tx) -> Then[RunRecord]:
            row = await tx.one("run_by_id", {"run_id": run_id})
            if row is None or not in_namespace(row["namespace"], namespace):
                raise RunNotFoundError(gone)
            sent = await w.send(tx, run_id, message, now)

            async def finish() -> RunRecord:
                got = await sent.first()
                if got is None:
                    raise RunNotFoundError(gone)
                return run_record(got)

            return Then(finish)

        record: RunRecord = await self._write(op, notify=True)
        return record

    async def read_inbox(self, run_id: str) -> list[InboxMessage]:
        """See :meth:`duro.store.WorkerStore.read_inbox`."""
        return [inbox_message(r) for r in await self._fetch("read_inbox", {"run_id": run_id})]

    async def runs_with_inbox(self, worker_id: str) -> list[str]:
        """See :meth:`duro.store.WorkerStore.runs_with_inbox`."""
        return [r["run_id"] for r in await self._fetch("runs_with_inbox",
                                                       {"worker": worker_id})]

    async def request_update(self, workflow_id: str, message: Message, *, now: float,
                             namespace: str | None = None) -> tuple[RunRecord, UpdateOutcome]:
        """See :meth:`duro.store.ClientStore.request_update`."""

        async def op(tx: Tx) -> tuple[RunRecord, UpdateOutcome] | Then[
                tuple[RunRecord, UpdateOutcome]]:
            row = await w.live_run(tx, workflow_id, namespace)
            if row is None:
                row = await tx.one("latest_run_by_workflow_id",
                                   {"workflow_id": workflow_id, "namespace": namespace})
                if row is None:
                    raise RunNotFoundError(f"no run with workflow id {workflow_id!r}")
            record = run_record(row)
            # The same id again: its outcome, in whichever run of the chain has it (an
            # earlier one, if the run continued as new since).
            existing = await tx.one("find_update", {"workflow_id": workflow_id,
                                                    "update_id": message.update_id})
            if existing is not None and in_namespace(existing["namespace"], namespace):
                if existing["run_id"] != record.run_id:
                    record = await w.fetch_run(tx, existing["run_id"]) or record
                return record, update_outcome(existing)
            if record.status.value not in LIVE_STATUSES:
                raise RunNotFoundError(f"no live run with workflow id {workflow_id!r}")
            sent = await w.send(tx, record.run_id, message, now)

            async def finish() -> tuple[RunRecord, UpdateOutcome]:
                if await sent.first() is None:  # it ended between lookup and insert
                    raise Moved(workflow_id)
                return record, UpdateOutcome(status="requested")

            return Then(finish)

        result: tuple[RunRecord, UpdateOutcome] = await self._write_message(op, notify=True)
        return result

    async def get_update(self, run_id: str, update_id: str) -> UpdateOutcome | None:
        """See :meth:`duro.store.ClientStore.get_update`."""
        rows = await self._fetch("get_update", {"run_id": run_id, "update_id": update_id})
        return update_outcome(rows[0]) if rows else None

    async def find_update(self, workflow_id: str, update_id: str, *,
                          namespace: str | None = None) -> tuple[str, UpdateOutcome] | None:
        """See :meth:`duro.store.ClientStore.find_update`."""
        rows = await self._fetch("find_update", {"workflow_id": workflow_id,
                                                 "update_id": update_id})
        if not rows or not in_namespace(rows[0]["namespace"], namespace):
            return None
        return rows[0]["run_id"], update_outcome(rows[0])

    async def reject_update(self, run_id: str, update_id: str, message_id: int, *,
                            error: bytes, now: float) -> None:
        """See :meth:`duro.store.WorkerStore.reject_update`."""
        await self._simple("reject_update", {"run_id": run_id, "update_id": update_id,
                                             "message_id": message_id, "error": error,
                                             "now": now})
