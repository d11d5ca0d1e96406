"""Queries asked through the store: a client without a workflow's code leaves the
question, a worker with the code answers it (``worker/_queries.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from duro.store._base._dialect import Dialect
from duro.store._records import QueryAnswer, QueryRequest

__all__ = ["Queries"]


class Queries(Dialect):
    """The query operations of :class:`~duro.store.Store`, once for every dialect."""

    async def ask_query(self, query: QueryRequest, *, now: float) -> None:
        """See :meth:`duro.store.ClientStore.ask_query`."""
        await self._simple("ask_query", {
            "query_id": query.query_id, "run_id": query.run_id,
            "workflow_id": query.workflow_id, "workflow_name": query.workflow_name,
            "name": query.name, "args": query.args,
            "headers": query.headers.decode() if query.headers else None,
            "now": now, "expires_at": query.expires_at}, notify=True, ambiguous="fail")

    async def query_answer(self, query_id: str) -> QueryAnswer | None:
        """See :meth:`duro.store.ClientStore.query_answer`."""
        rows = await self._fetch("query_answer", {"query_id": query_id})
        if not rows or rows[0]["answered_at"] is None:
            return None
        return QueryAnswer(answer=_bytes(rows[0]["answer"]), error=_bytes(rows[0]["error"]))

    async def forget_query(self, query_id: str) -> None:
        """See :meth:`duro.store.ClientStore.forget_query`."""
        await self._simple("forget_query", {"query_id": query_id})

    async def open_queries(self, names: Sequence[str], *, now: float, stale: float,
                           limit: int) -> list[QueryRequest]:
        """See :meth:`duro.store.WorkerStore.open_queries`."""
        if not names:
            return []
        rows = await self._fetch("open_queries", {"names": list(names), "now": now,
                                                  "stale": stale, "limit": limit})
        return [QueryRequest(
            query_id=r["query_id"], run_id=r["run_id"], workflow_id=r["workflow_id"],
            workflow_name=r["workflow_name"], name=r["name"], args=_bytes(r["args"]),
            headers=r["headers"].encode() if r["headers"] else None,
            created_at=r["created_at"], expires_at=r["expires_at"]) for r in rows]

    async def claim_query(self, query_id: str, worker_id: str, *, now: float,
                          stale: float) -> bool:
        """See :meth:`duro.store.WorkerStore.claim_query`."""
        count = await self._simple("claim_query", {"query_id": query_id, "worker": worker_id,
                                                   "now": now, "stale": stale})
        return count > 0

    async def answer_query(self, query_id: str, answer: QueryAnswer, *, now: float) -> None:
        """See :meth:`duro.store.WorkerStore.answer_query`."""
        await self._simple("answer_query", {"query_id": query_id, "answer": answer.answer,
                                            "error": answer.error, "now": now})

    async def expire_queries(self, *, now: float) -> int:
        """See :meth:`duro.store.WorkerStore.expire_queries`."""
        return await self._simple("expire_queries", {"now": now})


def _bytes(value: object) -> bytes | None:
    # PostgreSQL gives bytea as bytes (or memoryview); SQLite as bytes.
    if value is None:
        return None
    return bytes(value) if not isinstance(value, bytes) else value  # type: ignore[call-overload]
