"""The link between a client and the worker of its own process (the embedded Engine).

A :class:`~duro.client.Client` talks only to the store. When a worker runs in the same
process (:class:`~duro.Engine`), the client also tells it what it just did, so that the
run starts here without a claim, a message is applied without waiting for a poll, and a
result wakes its waiter at once: that is all of :class:`LocalRuns`. Without a worker
the client uses :data:`NO_LOCAL_RUNS`, which does nothing, and everything still works
through the store alone (other processes' workers poll or are notified).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from duro.store import Claim, ClientStore, RunLinks, RunRecord

if TYPE_CHECKING:
    from duro.interceptors import WorkerInterceptor
    from duro.serde import PayloadConverter
    from duro.workflow._api import Workflow

__all__ = ["NOT_HELD", "NOT_HERE", "NO_LOCAL_RUNS", "LocalRuns", "Outcome", "StartSlot",
           "answer_here"]

Outcome = tuple[str, bytes | None, bytes | None]
"""How a run ended, as the worker that recorded it knows: (status, result, error)."""

NOT_HELD: Any = object()
"""What :meth:`LocalRuns.answer_query` returns for a run it cannot answer for."""


class StartSlot(Protocol):
    """A slot for a run about to be created (see :meth:`LocalRuns.local_start`)."""

    @property
    def local(self) -> bool:
        """Whether to create the run owned by this process's worker (it had room)."""
        ...

    def adopt(self, claim: Claim, input: bytes, ts: float,
              links: RunLinks | None = None) -> None:
        """Run the run just created owned by this worker."""
        ...


class _NoSlot:
    local = False

    def adopt(self, claim: Claim, input: bytes, ts: float,
              links: RunLinks | None = None) -> None:
        raise AssertionError("no slot was reserved")  # local is False: never called


NOT_HERE: contextlib.AbstractContextManager[StartSlot] = contextlib.nullcontext(_NoSlot())
"""The slot of a run that is not created owned here (no worker, or it must wait)."""


class LocalRuns(Protocol):
    """What a client tells the worker of its own process (the Worker implements it)."""

    worker_id: str

    @property
    def context(self) -> contextvars.Context | None:
        """The worker's context variables: a run replayed here to answer a query sees
        them, as the worker's own runs do (None: no worker, the asker's)."""
        ...

    @property
    def interceptors(self) -> Sequence[WorkerInterceptor]:
        """The worker's interceptors: a query the client answers by replay runs with
        them, as the worker's own replays do."""
        ...

    def local_start(self, name: str,
                    queue: str = "default") -> contextlib.AbstractContextManager[StartSlot]:
        """Room for a run about to be created, for the block: if ``slot.local``, create
        the run owned by this worker and ``slot.adopt(...)`` it (no claim round trip);
        a slot not adopted is given back when the block ends."""
        ...

    def wake(self) -> None:
        """Look at the store now: something became ready."""
        ...

    def inbox_hint(self, run_id: str) -> None:
        """A message for this run was just stored."""
        ...

    def schedules_changed(self) -> None:
        """A schedule was created, changed or deleted: look at them again now."""
        ...

    def terminated(self, run_id: str) -> None:
        """The run was terminated: drop it now."""
        ...

    def wait_for_close(self, run_id: str) -> asyncio.Future[Outcome | None] | None:
        """A future resolved when the run ends here (None: nothing to wait on)."""
        ...

    def stream_waiter(self, run_id: str) -> asyncio.Future[None] | None:
        """A future resolved when this worker writes a batch of the run's stream (None:
        nothing to wait on)."""
        ...

    def answer_query(self, run_id: str, history_len: int, name: str,
                     args: list[Any], headers: Mapping[str, str] | None = None) -> Any:
        """The query's answer from the run's instance held here if it has exactly
        ``history_len`` events, else :data:`NOT_HELD` (``headers``: the asker's)."""
        ...


class _NoLocalRuns:
    """A client with no worker in its process: nothing to tell."""

    worker_id = ""
    interceptors: Sequence[WorkerInterceptor] = ()
    context: contextvars.Context | None = None

    def local_start(self, name: str,
                    queue: str = "default") -> contextlib.AbstractContextManager[StartSlot]:
        return NOT_HERE

    def wake(self) -> None:
        pass

    def inbox_hint(self, run_id: str) -> None:
        pass

    def schedules_changed(self) -> None:
        pass

    def terminated(self, run_id: str) -> None:
        pass

    def wait_for_close(self, run_id: str) -> asyncio.Future[Outcome | None] | None:
        return None

    def stream_waiter(self, run_id: str) -> asyncio.Future[None] | None:
        return None

    def answer_query(self, run_id: str, history_len: int, name: str,
                     args: list[Any], headers: Mapping[str, str] | None = None) -> Any:
        return NOT_HELD


NO_LOCAL_RUNS: LocalRuns = _NoLocalRuns()


async def answer_here(local: LocalRuns, store: ClientStore, payloads: PayloadConverter,
                      record: RunRecord, workflow: Workflow[Any, Any], name: str,
                      args: list[Any], headers: Mapping[str, str] | None,
                      context: contextvars.Context | None = None) -> Any:
    """A query's answer in this process: from the run's instance ``local`` holds when it
    is current (at the stored history's length), else from a read-only replay of the
    stored history with ``local``'s interceptors. (A client asking, or a worker answering
    a query asked through the store.)

    ``context``: the context variables a replay here sees when ``local`` is no worker
    (a client's, as they were when it opened; None: the caller's).

    Raises:
        QueryError: No such handler, it failed, or the history does not replay here.
    """
    value = local.answer_query(record.run_id, record.history_len, name, args, headers)
    if value is NOT_HELD:
        from duro.workflow._replayer import query_replayed

        history = await payloads.decode_history(await store.load_history(record.run_id))
        if local.context is not None:
            context = local.context  # the worker's, as its own runs see
        value = query_replayed(workflow, history, run_id=record.run_id,
                               workflow_id=record.workflow_id, name=name, args=args,
                               headers=headers, interceptors=local.interceptors,
                               context=context.copy() if context is not None else None)
    return value
