"""Claiming runs (queues, limits, take-overs) and steps routed to queues."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from duro._messages import MessageKind
from duro.store._base import _writes as w
from duro.store._base._dialect import Dialect
from duro.store._base._tx import Then, Tx
from duro.store._records import Claim, Message, QueueConfig, QueueStats, TaskRecord
from duro.store._rows import claim, queue_config, task_record
from duro.store._rules import admission, candidate_page, fair_share, queue_room

__all__ = ["Claims"]


async def _claim_limited(tx: Tx, queue: str, params: dict[str, Any], room: int,
                         held_here: int) -> list[Claim]:
    """Claim from one queue with limits (:func:`~duro.store._rules.admission`), its
    limits checked by one claimer at a time: PostgreSQL holds the queue's row lock
    (``lock_queue``) until the commit; a SQLite writer holds the file's.

    In a rate-limited queue a first start is stamped once, under that lock: the stamp is
    both the run's ``started_at`` and its entry in the rate log. The clock is the
    dialect's (``queue_rate_window``: the database's on PostgreSQL, one clock for every
    host; the process's on SQLite, read here, under the file's write lock). Times the
    caller took before the claim (its durable ``now`` at the top of a worker's loop turn,
    ``real_now`` a few awaits later, then the wait for the lock) let two claims a little
    more than a period apart by those times start twice the limit within one real
    period."""
    row = await tx.one("lock_queue", {"queue": queue})
    if row is None:  # deleted meanwhile
        return []
    config = queue_config(row)
    q = {"queue": queue}
    running = 0
    if config.concurrency is not None:
        got = await tx.one("queue_running", q)
        running = int(got["n"]) if got else 0
    room = queue_room(config, room=room, running=running, held_here=held_here)
    if room <= 0:
        return []
    stamp = params["now"]  # the started_at of a first start
    started = 0
    if config.rate_limit is not None:
        window = await tx.one("queue_rate_window", {**q, "period": config.rate_period,
                                                    "clock": time.time()})
        assert window is not None
        stamp, started = float(window["stamp"]), int(window["n"])
    per_key: dict[str, int] = {}
    if config.key_concurrency is not None:
        per_key = {r["concurrency_key"]: int(r["n"])
                   for r in await tx.all("queue_running_by_key", q)}
    pick = admission(config, room=room, started=started, per_key=per_key)
    page, offset = candidate_page(room), 0
    while not pick.full:
        candidates = await tx.all("queue_candidates", {**params, **q, "page": page,
                                                       "offset": offset})
        offset += len(candidates)
        for c in candidates:
            if pick.full:
                break
            pick.offer(c["run_id"], c["concurrency_key"], c["started_at"])
        if len(candidates) < page:
            break
    if not pick.chosen:
        return []
    out = [claim(r) for r in await tx.all("claim_ids", {**params, "now": stamp,
                                                        "ids": pick.chosen})]
    if config.rate_limit is not None:
        n = sum(1 for c in out if c.run_id in pick.first_starts)
        if n:
            await tx.run("queue_record_starts", {**q, "stamp": stamp, "n": n})
    return out


async def _share(tx: Tx, params: dict[str, Any], limit: int, fair_after: float | None
                 ) -> int:
    """How many ready runs this claim may take (:func:`~duro.store._rules.fair_share`):
    one small read when the worker is alone, the census only when it is not."""
    if fair_after is None:
        return limit
    peers = await tx.one("live_peers", params)
    if peers is None or int(peers["n"]) == 0:
        return limit
    census = await tx.one("claim_census", {
        **params, "cap": limit * (int(peers["n"]) + 1),
        "stale_before": max(params["now"], params["real_now"]) - fair_after})
    assert census is not None
    return fair_share(limit, peers=int(peers["n"]), held=int(census["held"]),
                      mine=int(census["mine"]), ready=int(census["ready"]),
                      stale=int(census["stale"]))


class Claims(Dialect):
    """Claims, queues and step tasks of :class:`~duro.store.Store`, once for every
    dialect."""

    async def claim(
        self, worker_id: str, names: Sequence[str], limit: int, *, now: float,
        real_now: float, queues: Sequence[str] | None = None,
        local: Mapping[str, int] | None = None, ahead: float = 0.0,
        fair_after: float | None = None,
    ) -> list[Claim]:
        """See :meth:`duro.store.WorkerStore.claim`. Also, in the same transaction: step
        tasks held by workers whose lease expired go back to their queue, and such
        workers that own nothing any more are deleted."""
        if not names or limit <= 0:
            return []
        held = dict(local or {})
        params: dict[str, Any] = {"worker": worker_id, "names": list(names), "now": now,
                                  "real_now": real_now,
                                  "queues": None if queues is None else list(queues)}

        async def op(tx: Tx) -> list[Claim]:
            share = await _share(tx, params, limit, fair_after)
            configs = [queue_config(r) for r in await tx.all("queue_configs", {})]
            limited = sorted(c.name for c in configs if c.limited or c.per_worker is not None)
            some_open = queues is None or any(q not in limited for q in queues)
            out: list[Claim] = []
            if some_open:
                out += map(claim, await tx.all("claim_open", {**params, "limited": limited,
                                                              "limit": share}))
            for queue in limited:  # sorted: claimers lock queues in one order
                room = share - len(out)
                if room <= 0:
                    break
                if queues is None or queue in queues:
                    out += await _claim_limited(tx, queue, params, room, held.get(queue, 0))
            await tx.run("release_dead_tasks", params)
            room = limit - len(out)
            if room > 0:
                out += (claim(r, taken_over=True)
                        for r in await tx.all("take_over", {**params, "limit": room}))
            room = share - len(out)
            if room > 0 and ahead > 0 and some_open:
                out += map(claim, await tx.all("claim_ahead_open", {
                    **params, "limited": limited, "limit": room, "until": now + ahead}))
            await tx.run("delete_dead_idle_workers", params)
            return out

        async def undo(tx: Tx) -> None:
            await tx.run("unclaim_since", params)

        claims: list[Claim] = await self._write(op, ambiguous=undo)
        return claims

    async def next_wake_at(self, names: Sequence[str]) -> float | None:
        """See :meth:`duro.store.WorkerStore.next_wake_at`."""
        if not names:
            return None
        due: float | None = await self._value(
            "next_wake_for", {"names": list(names), "clock": time.time()}, "due")
        return due

    async def enqueue_task(self, task: TaskRecord, *, now: float) -> None:
        """See :meth:`duro.store.WorkerStore.enqueue_task`."""
        await self._simple("enqueue_task", {
            "task_id": task.task_id, "run_id": task.run_id, "op": task.op,
            "attempt": task.attempt, "step": task.step, "queue": task.queue,
            "args": task.args, "info": task.info, "now": now}, notify=True)

    async def has_tasks(self, queues: Sequence[str] | None, steps: Sequence[str]) -> bool:
        """See :meth:`duro.store.WorkerStore.has_tasks`."""
        if not steps:
            return False
        return bool(await self._fetch("next_task", {
            "queues": None if queues is None else list(queues), "steps": list(steps)}))

    async def claim_tasks(self, worker_id: str, queues: Sequence[str] | None,
                          steps: Sequence[str], limit: int, *, real_now: float
                          ) -> list[TaskRecord]:
        """See :meth:`duro.store.WorkerStore.claim_tasks`."""
        if not steps or limit <= 0:
            return []
        params = {"worker": worker_id, "real_now": real_now, "limit": limit,
                  "queues": None if queues is None else list(queues), "steps": list(steps)}

        async def op(tx: Tx) -> Then[list[TaskRecord]]:
            taken = await tx.later("claim_tasks", params)

            async def finish() -> list[TaskRecord]:
                return [task_record(r) for r in await taken.rows()]

            return Then(finish)

        tasks: list[TaskRecord] = await self._write(op)
        return tasks

    async def complete_task(self, task: TaskRecord, worker_id: str, data: bytes | None,
                            meta: bytes, *, now: float) -> bool:
        """See :meth:`duro.store.WorkerStore.complete_task`. False when the task is no
        longer this worker's (its lease expired and another worker took it): the outcome
        is then dropped."""

        async def op(tx: Tx) -> bool:
            if await tx.one("finish_task", {"now": now, "task_id": task.task_id,
                                            "worker": worker_id}) is None:
                return False
            await w.send(tx, task.run_id, Message(kind=MessageKind.TASK_DONE,
                                                  name=str(task.op), data=data, meta=meta),
                         now)
            return True

        done: bool = await self._write(op, notify=True)
        return done

    async def cancel_task(self, task_id: str) -> None:
        """See :meth:`duro.store.WorkerStore.cancel_task`."""
        await self._simple("cancel_task", {"task_id": task_id})

    async def upsert_queue(self, config: QueueConfig, *, now: float) -> None:
        """See :meth:`duro.store.WorkerStore.upsert_queue`."""
        await self._simple("upsert_queue", {
            "name": config.name, "concurrency": config.concurrency,
            "per_worker": config.per_worker, "rate_limit": config.rate_limit,
            "rate_period": config.rate_period, "key_concurrency": config.key_concurrency,
            "now": now}, notify=True)

    async def queue_stats(self, *, real_now: float,
                          namespace: str | None = None) -> list[QueueStats]:
        """See :meth:`duro.store.AdminStore.queue_stats`. Starts in the last period are
        counted by the clock the claims stamp them with (``queue_started_lately``)."""
        configs = {c.name: c for c in map(queue_config, await self._fetch("queue_configs", {}))}
        counts: dict[str, dict[str, int]] = {}
        for r in await self._fetch("queue_counts", {"namespace": namespace}):
            counts.setdefault(r["queue"], {})[r["status"]] = int(r["n"])
        for r in await self._fetch("queue_task_counts", {"namespace": namespace}):
            counts.setdefault(r["queue"], {})[f"task_{r['status']}"] = int(r["n"])
        out = []
        for name in sorted(set(configs) | set(counts)):
            config = configs.get(name, QueueConfig(name=name))
            started = 0
            if config.rate_limit is not None:
                started = int(await self._value("queue_started_lately", {
                    "queue": name, "period": config.rate_period, "clock": real_now}, "n"))
            c = counts.get(name, {})
            out.append(QueueStats(config=config, pending=c.get("pending", 0),
                                  suspended=c.get("suspended", 0),
                                  running=c.get("running", 0), started_last_period=started,
                                  tasks_pending=c.get("task_pending", 0),
                                  tasks_running=c.get("task_running", 0)))
        return out
