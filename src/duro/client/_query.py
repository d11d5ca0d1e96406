"""Queries asked through the store, for a client without the workflow's code.

The client leaves the question in the store (``queries``), a worker that has the code
claims it at its next poll (``worker/_queries.py``: PostgreSQL's workers are woken at
once), answers from the run's instance it holds or from a read-only replay, and writes
the answer; the client reads it and deletes the question. Arguments and answers are
payloads like any other: they go through the codecs (a worker holding the keys decodes
and encodes them).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from duro.errors import ErrorInfo, QueryError, QueryTimeoutError
from duro.serde import encode
from duro.store import QueryRequest, RunRecord

if TYPE_CHECKING:
    from duro.client._client import Client

__all__ = ["DEFAULT_QUERY_TIMEOUT", "ask_workers"]

DEFAULT_QUERY_TIMEOUT = 10.0
"""Seconds a query asked through the store waits for a worker's answer by default."""

_FIRST_LOOK, _LONGEST_WAIT = 0.005, 0.1
"""The answer is looked for after 5 ms, then less and less often, at most every 100 ms
(a worker polls every ``poll_interval``, 0.2 s by default)."""


async def ask_workers(client: Client, record: RunRecord, name: str, args: list[Any],
                      timeout: float, headers: bytes | None = None) -> bytes:
    """Ask the workers serving the run's workflow; the answer's JSON.

    Raises:
        QueryError: The worker could not answer (no such handler, it failed, the
            history cannot be replayed with the worker's code).
        QueryTimeoutError: No worker answered within ``timeout`` seconds.
    """
    store, payloads = client.store, client.payloads
    data = await payloads.encode(encode(args, what=f"the arguments of query {name!r}"))
    query_id = str(uuid.uuid4())
    now = time.time()  # wall-clock: asker and answerer are different processes
    await store.ask_query(QueryRequest(
        query_id=query_id, run_id=record.run_id, workflow_id=record.workflow_id,
        workflow_name=record.workflow_name, name=name, args=data, headers=headers,
        created_at=now, expires_at=now + timeout), now=now)
    deadline = time.monotonic() + timeout
    wait = _FIRST_LOOK
    try:
        while True:
            answer = await store.query_answer(query_id)
            if answer is not None:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise QueryTimeoutError(
                    f"no worker answered query {name!r} of run {record.run_id} within "
                    f"{timeout:g} s: the workflow {record.workflow_name!r} is not "
                    "importable in this process, so a worker with its code must answer "
                    "(is one running against this store?)")
            await asyncio.sleep(min(wait, left))
            wait = min(wait * 2, _LONGEST_WAIT)
    finally:
        await store.forget_query(query_id)
    if answer.error is not None:
        raw = await payloads.decode(answer.error)
        info = ErrorInfo.from_dict(orjson.loads(raw) if raw else {})
        raise QueryError(info.message)
    value = await payloads.decode(answer.answer)
    return value if value is not None else b"null"
