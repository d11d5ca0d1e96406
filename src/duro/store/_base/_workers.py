"""Workers' leases."""

from __future__ import annotations

import json
from collections.abc import Sequence

from duro.store._base._dialect import Dialect
from duro.store._base._tx import Tx
from duro.store._records import WorkerRecord

__all__ = ["Workers"]


class Workers(Dialect):
    """The lease operations of :class:`~duro.store.Store`, once for every dialect."""

    async def register_worker(self, worker_id: str, host: str, pid: int, *, real_now: float,
                              lease: float, queues: Sequence[str] | None = None) -> None:
        """See :meth:`duro.store.WorkerStore.register_worker`."""
        await self._simple("register_worker", {
            "worker": worker_id, "host": host, "pid": pid, "real_now": real_now,
            "lease_until": real_now + lease,
            "queues": None if queues is None else json.dumps(list(queues))})

    async def renew_worker(self, worker_id: str, *, real_now: float, lease: float) -> bool:
        """See :meth:`duro.store.WorkerStore.renew_worker`."""
        return await self._simple("renew_worker", {"worker": worker_id,
                                                   "lease_until": real_now + lease}) == 1

    async def worker_pids(self, host: str) -> list[int]:
        """See :meth:`duro.store.WorkerStore.worker_pids`."""
        return [int(r["pid"]) for r in await self._fetch("worker_pids", {"host": host})]

    async def expire_dead_workers(self, host: str, dead_pids: Sequence[int]) -> int:
        """See :meth:`duro.store.WorkerStore.expire_dead_workers`."""
        if not dead_pids:
            return 0
        return await self._simple("expire_worker_pids", {"host": host,
                                                         "pids": list(dead_pids)})

    async def expire_disconnected_workers(self) -> int:
        """See :meth:`duro.store.WorkerStore.expire_disconnected_workers`: a store with
        no sessions to watch (one host: the PID check applies) finds nobody."""
        return 0

    async def deregister_worker(self, worker_id: str, *, now: float) -> None:
        """See :meth:`duro.store.WorkerStore.deregister_worker`."""
        params = {"worker": worker_id, "now": now}

        async def op(tx: Tx) -> None:
            await tx.run("release_owned", params)
            await tx.run("release_tasks_of", params)
            await tx.run("delete_worker", params)

        await self._write(op, notify=True, ambiguous="retry")

    async def owned_runs(self, worker_id: str) -> list[tuple[str, int]]:
        """See :meth:`duro.store.WorkerStore.owned_runs`."""
        return [(r["run_id"], int(r["epoch"]))
                for r in await self._fetch("owned_runs", {"worker": worker_id})]

    async def list_workers(self) -> list[WorkerRecord]:
        """See :meth:`duro.store.ClientStore.list_workers`."""
        return [WorkerRecord(worker_id=r["worker_id"], host=r["host"], pid=int(r["pid"]),
                             started_at=float(r["started_at"]),
                             lease_until=float(r["lease_until"]), running=int(r["running"]),
                             queues=_queues(r["queues"]))
                for r in await self._fetch("list_workers", {})]


def _queues(stored: str | None) -> tuple[str, ...] | None:
    """The queues column: a JSON array of names, NULL for every queue. A value that is
    not one (a row edited by hand) reads as every queue: it only describes the worker."""
    if stored is None:
        return None
    try:
        names = json.loads(stored)
    except ValueError:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return None
    return tuple(names)
