"""Answering queries asked through the store (``client/_query.py``): a client without a
workflow's code leaves the question, a worker with the code answers it."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from duro._history import headers_of
from duro._local import answer_here
from duro.errors import ErrorInfo, RunNotFoundError
from duro.serde import encode
from duro.store import QueryAnswer, QueryRequest

if TYPE_CHECKING:
    from duro.worker._worker import Worker

__all__ = ["QueryAnswers"]

log = logging.getLogger("duro.worker")

_CLAIM_FOR = 5.0
"""Seconds a worker's claim on a query holds: a worker that claims one and dies leaves
it to another after that (an answer is a replay: it takes far less)."""

_BATCH = 16
"""Queries taken per poll."""

_EXPIRE_EVERY = 60.0
"""Seconds between deletions of queries whose askers stopped waiting."""


class QueryAnswers:
    """The worker's query desk: looks for questions at each poll (one cheap read: an
    index of unanswered questions, empty almost always), claims them, answers them."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.answering: set[str] = set()
        # The first sweep a minute after start, not at once: no write at every start-up
        # (open_queries skips expired questions meanwhile).
        self._expired_at = time.time()

    async def poll(self) -> None:
        w = self.worker
        now = time.time()  # wall-clock: asker and answerer are different processes
        if now - self._expired_at >= _EXPIRE_EVERY:
            self._expired_at = now
            await w.store.expire_queries(now=now)
        for query in await w.store.open_queries(w.names, now=now, stale=now - _CLAIM_FOR,
                                                limit=_BATCH):
            if query.query_id in self.answering:
                continue
            if await w.store.claim_query(query.query_id, w.worker_id, now=now,
                                         stale=now - _CLAIM_FOR):
                self.answering.add(query.query_id)
                w.spawn(self._answer(query))

    async def _answer(self, query: QueryRequest) -> None:
        w = self.worker
        try:
            try:
                data = await w.payloads.encode(encode(
                    await self._value(query), what=f"the answer to query {query.name!r}"))
                answer = QueryAnswer(answer=data)
            except Exception as exc:  # the asker gets it: no worker harm
                info = ErrorInfo(type=type(exc).__name__, message=str(exc))
                answer = QueryAnswer(error=await w.payloads.encode(info.to_payload()))
            await w.store.answer_query(query.query_id, answer, now=time.time())
        except Exception as exc:  # the store: another worker answers after the claim
            log.warning("could not answer query %s of run %s: %s", query.name, query.run_id,
                        exc)
        finally:
            self.answering.discard(query.query_id)

    async def _value(self, query: QueryRequest) -> Any:
        w = self.worker
        raw = await w.payloads.decode(query.args)
        args = orjson.loads(raw) if raw else []
        record = await w.store.get_run(query.workflow_id, query.run_id)
        if record is None:
            raise RunNotFoundError(f"no run {query.run_id} of workflow id "
                                   f"{query.workflow_id!r}")
        headers = headers_of(orjson.loads(query.headers)) if query.headers else None
        return await answer_here(w, w.store, w.payloads, record,
                                 w.workflows[record.workflow_name], query.name, args, headers)
