"""Handles: what ``Engine.start`` returns, to wait for and inspect a run."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from duro._history import BUDGET_SIGNAL
from duro._waits import RunWaits
from duro.budget._budget import Budget
from duro.client._records import Event, RunInfo, StreamChunk, decode_error
from duro.errors import (
    CorruptRunError,
    InvalidArgumentError,
    RunNotFoundError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowTerminatedError,
)
from duro.serde import decode
from duro.store import RunRecord, RunStatus
from duro.store._records import StreamKind
from duro.usage._summary import RunUsage, sum_usage

if TYPE_CHECKING:
    from duro.client._client import Client

__all__ = ["EVENTS_FIRST_POLL", "EVENTS_LONGEST_POLL", "STREAM_LONGEST_POLL", "WorkflowHandle",
           "check_offset"]

EVENTS_FIRST_POLL, EVENTS_LONGEST_POLL = 0.02, 0.5
"""Seconds between looks at a run for :meth:`WorkflowHandle.events`: after an event,
then backing off while nothing happens."""
STREAM_LONGEST_POLL = 0.25
"""Seconds between looks at a run's stream at most, while nothing comes (from
:data:`EVENTS_FIRST_POLL`; a worker of this process wakes its readers at once)."""
_STREAM_PAGE = 1000


def check_offset(value: object, what: str = "from_offset") -> int:
    """A stream offset as given: a whole number, 0 or more.

    Raises:
        InvalidArgumentError: It is not.
    """
    if type(value) is not int or not 0 <= value <= 2**62:
        raise InvalidArgumentError(f"{what} must be a whole number from 0, not {value!r}")
    return value

R = TypeVar("R")


class WorkflowHandle(Generic[R]):
    """A reference to a run: by workflow id (its latest run) or a specific run id."""

    def __init__(self, client: Client, workflow_id: str, run_id: str | None = None,
                 *, result_hint: Any = Any, start_status: RunStatus | None = None) -> None:
        self._client = client
        self.workflow_id = workflow_id
        self.run_id = run_id
        self._hint = result_hint
        self.start_status = start_status
        """The run's status as the start that returned this handle left it (None for a
        handle made otherwise): what an HTTP 202 reports without reading the run again.
        Not kept up to date: :meth:`describe` reads the run as it is now."""

    def __repr__(self) -> str:
        return f"WorkflowHandle(workflow_id={self.workflow_id!r}, run_id={self.run_id!r})"

    async def _get(self, run_id: str | None) -> RunRecord | None:
        """The run (the latest of the id without ``run_id``), in the client's namespace."""
        return await self._client.store.get_run(self.workflow_id, run_id,
                                                 namespace=self._client.namespace)

    async def _record(self) -> RunRecord:
        record = await self._get(self.run_id)
        if record is None:
            raise RunNotFoundError(f"no run with workflow id {self.workflow_id!r}"
                                   + (f" and run id {self.run_id!r}" if self.run_id else ""))
        return record

    async def _current(self) -> RunRecord:
        """The pinned run, or the latest run of the id if the pinned one continued as new."""
        record = await self._record()
        if record.status == RunStatus.CONTINUED_AS_NEW:
            latest = await self._get(None)
            if latest is not None:
                return latest
        return record

    async def describe(self) -> RunInfo:
        """The run's current description."""
        return await self._client.run_info(await self._record())

    async def status(self) -> RunStatus:
        """The run's current status."""
        return (await self._record()).status

    async def history(self) -> list[Event]:
        """The run's history, in order."""
        record = await self._record()
        history = await self._client.store.load_history(record.run_id)
        return [Event.from_record(e)
                for e in await self._client.payloads.decode_history(history)]

    async def events(self, *, after: int | None = None) -> AsyncIterator[Event]:
        """The run's history as it grows: each event once, in order, from the one after
        sequence number ``after`` (from the first by default); the iteration ends once
        the run has ended and its last event was given.

        It follows the run found when it starts (after a reset or a retry, ask a new
        handle's). Through a server, the events come from its live stream
        (``GET /v1/runs/{id}/events``), resumed where it left off on a reconnect.
        """
        record = await self._record()
        pinned = await self._client.store.get_run(record.workflow_id, record.run_id)
        seen = -1 if after is None else after
        delay = EVENTS_FIRST_POLL
        while pinned is not None:
            # The run first, then its events: an end seen here has all of them below.
            if pinned.history_len > seen + 1:
                history = await self._client.store.load_history(pinned.run_id)
                fresh = [e for e in history if e.seq > seen]
                for event in await self._client.payloads.decode_history(fresh):
                    yield Event.from_record(event)
                    seen = event.seq
                if fresh:
                    delay = EVENTS_FIRST_POLL
            if pinned.status.is_terminal or pinned.status == RunStatus.CORRUPT:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, EVENTS_LONGEST_POLL)
            pinned = await self._client.store.get_run(pinned.workflow_id, pinned.run_id)

    async def stream(self, *, from_offset: int = 0) -> AsyncIterator[StreamChunk]:
        """The run's stream, live: what its steps and its workflow code give to
        ``duro.stream()``, each item once, in order, from offset ``from_offset``; the
        iteration ends once the run has ended and every item was given, or after the
        ``"closed"`` marker of ``duro.close_stream()``. A reader that stopped resumes
        with no gap and no duplicate from the last offset it saw + 1.

        Items of ``kind == "superseded"`` say that every earlier chunk of their ``op``
        belongs to an execution of the step that was replaced (a retry, or a worker
        lost mid-attempt): discard those. Chunks read after that come marked
        ``superseded``. Values written by workflow code have ``op == -1`` and ``step ==
        ""``. It follows the run found when it starts.

        Raises:
            InvalidArgumentError: ``from_offset`` is not a whole number from 0.
        """
        offset = check_offset(from_offset)
        record = await self._record()
        store, run_id = self._client.store, record.run_id
        delay = EVENTS_FIRST_POLL
        while True:
            # Wait-then-read: a batch written between the read and the wait still wakes.
            wake = self._client._stream_waiter(run_id)
            rows = await store.read_stream(run_id, offset, _STREAM_PAGE)
            if not rows:
                # The run first, then the stream: an end seen here has all of it below.
                run = await store.get_run(record.workflow_id, run_id)
                if run is None or run.status.is_terminal or run.status == RunStatus.CORRUPT:
                    rows = await store.read_stream(run_id, offset, _STREAM_PAGE)
                    if not rows:
                        if wake is not None:
                            wake.cancel()
                        return
            if rows:
                if wake is not None:
                    wake.cancel()
                for row in rows:
                    offset = row.offset + 1
                    yield StreamChunk.from_record(row)
                    if row.kind == StreamKind.CLOSED:
                        return  # the workflow closed it: nothing more is for readers
                delay = EVENTS_FIRST_POLL
                continue
            if wake is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake, delay)
            else:
                await asyncio.sleep(delay)
            delay = min(delay * 1.5, STREAM_LONGEST_POLL)

    async def result(self, *, timeout: float | None = None) -> R:
        """Wait for the run to end and return its result.

        Raises:
            WorkflowFailedError: The workflow raised; ``.cause`` says what.
            WorkflowCancelledError: The run was cancelled.
            WorkflowTerminatedError: The run was terminated.
            TimeoutError: ``timeout`` seconds passed first.
            CorruptRunError: The run's stored row is damaged.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.01
        run_id = self.run_id
        while True:
            record = await self._get(run_id)
            if record is None:
                raise RunNotFoundError(f"no run with workflow id {self.workflow_id!r}")
            if record.status == RunStatus.CONTINUED_AS_NEW:
                run_id = None  # follow the chain to the latest run of this id
                latest = await self._get(None)
                if latest is not None and latest.run_id != record.run_id:
                    continue
            elif record.status.is_terminal:
                return await self._outcome(record)
            elif record.status == RunStatus.CORRUPT:
                raise CorruptRunError(f"run {record.run_id} of {self.workflow_id!r} cannot "
                                      f"end: its stored row is damaged ({record.damage})")
            wait = self._client._close_waiter(record.run_id)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                if wait is not None:
                    wait.cancel()
                raise TimeoutError(f"run {self.workflow_id!r} did not finish in {timeout}s")
            delay = min(delay * 1.5, 0.5)
            if wait is not None:
                delay = 1.0  # completion here wakes us; polling only covers other workers
            step = delay if remaining is None else min(delay, remaining)
            if wait is not None:
                # This process runs it: completion wakes us; polling covers other workers.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(wait), step)
                if wait.done() and not wait.cancelled() and (ended := wait.result()):
                    # Our worker recorded the end and says how: no need to read it back.
                    status, result, error = ended
                    return self._ended(RunStatus(status), record.workflow_id,
                                       record.run_id, result, error)
                wait.cancel()
            else:
                await asyncio.sleep(step)

    async def _outcome(self, record: RunRecord) -> R:
        result = await self._client.payloads.decode(record.result)
        return self._ended(record.status, record.workflow_id, record.run_id, result,
                           record.error)

    def _ended(self, status: RunStatus, workflow_id: str, run_id: str, result: bytes | None,
               error_payload: bytes | None) -> R:
        error = decode_error(error_payload)
        if status == RunStatus.COMPLETED:
            value: R = decode(result, self._hint, what=f"result of run {run_id}")
            return value
        if status == RunStatus.CANCELLED:
            raise WorkflowCancelledError(f"run {workflow_id!r} was cancelled")
        if status == RunStatus.TERMINATED:
            reason = error.message if error else ""
            raise WorkflowTerminatedError(f"run {workflow_id!r} was terminated: {reason}")
        if status == RunStatus.TIMED_OUT:
            assert error is not None
            raise WorkflowFailedError(f"run {workflow_id!r} timed out", cause=error)
        assert error is not None
        raise WorkflowFailedError(f"run {workflow_id!r} failed: {error}", cause=error)

    async def signal(self, name: str, payload: Any = None, *, id: str | None = None,
                     headers: Mapping[str, str] | None = None) -> None:
        """Send a signal to the run (delivered exactly once, in order; at most once per
        ``id``, see :meth:`Client.signal`)."""
        await self._client.signal(self.workflow_id, name, payload, id=id, headers=headers)

    async def set_budget(self, budget: Budget) -> None:
        """Replace the run's budget of the same name (its own, or the one of the same
        key) with ``budget``: to raise it (a run paused by ``on_exceeded="pause"`` goes
        on at once), lower it or change its policy. Delivered as a signal: durable, in
        the history, seen by replays.

        Raises:
            InvalidArgumentError: Not a ``duro.Budget``.
            RunNotFoundError: The run is not live.
        """
        if not isinstance(budget, Budget):
            raise InvalidArgumentError(f"set_budget takes a duro.Budget, not {budget!r}")
        await self._client.signal(self.workflow_id, BUDGET_SIGNAL, budget.to_json())

    async def query(self, name: str, *args: Any, type: Any = Any,
                    timeout: float | None = None,
                    headers: Mapping[str, str] | None = None) -> Any:
        """Ask the run a question (see :meth:`Client.query`); nothing is recorded."""
        return await self._client.query(self.workflow_id, name, *args, run_id=self.run_id,
                                        type=type, timeout=timeout, headers=headers)

    async def get_state(self, key: str, *, type: Any = Any, default: Any = None) -> Any:
        """The latest value the run published with ``duro.set_state(key, ...)``
        (following continue-as-new to the current run)."""
        record = await self._current()
        data = await self._client.payloads.decode(
            await self._client.store.get_state(record.run_id, key))
        if data is None:
            return default
        return decode(data, type, what=f"state {key!r} of run {record.run_id}")

    async def wait_state(self, key: str, *, timeout: float | None = None,
                         type: Any = Any) -> Any:
        """Wait until the run has published ``key``, then return its value.

        Raises:
            TimeoutError: Not published within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.005
        while True:
            record = await self._current()
            data = await self._client.payloads.decode(
                await self._client.store.get_state(record.run_id, key))
            if data is not None:
                return decode(data, type, what=f"state {key!r} of run {record.run_id}")
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {self.workflow_id!r} did not publish {key!r} in "
                                   f"{timeout}s")
            step = delay if deadline is None else min(delay, deadline - time.monotonic())
            await asyncio.sleep(max(0.0, step))
            delay = min(delay * 2, 0.2)

    async def update(self, name: str, *args: Any, id: str | None = None,
                     timeout: float | None = None, type: Any = Any,
                     headers: Mapping[str, str] | None = None) -> Any:
        """Send an update (request/response) to the run and wait for the handler's
        result: :meth:`Client.update` (the same arguments, the same errors)."""
        return await self._client.update(self.workflow_id, name, *args, id=id,
                                         timeout=timeout, type=type, headers=headers)

    async def children(self) -> list[RunInfo]:
        """The runs this run started as child workflows."""
        record = await self._record()
        return await self._client.run_infos(await self._client.store.children(record.run_id))

    async def usage(self) -> RunUsage:
        """What the run's model calls spent so far (``duro.record_usage`` in its steps):
        tokens and cost, in total, by model and by step. Summed from this run's history
        (not its children's, nor earlier runs of a continue-as-new chain)."""
        record = await self._record()
        history = await self._client.store.load_history(record.run_id)
        return sum_usage((e.kind, e.name, e.meta) for e in history)

    async def waiting(self) -> RunWaits:
        """What the run waits for now, beyond what its history says: the signals its
        code awaits and since when, its pending timers and open conditions (as recorded
        when it last suspended), and its steps routed to a queue not done yet (claimed
        or not). See :class:`duro.RunWaits`."""
        record = await self._record()
        stored = await self._client.store.run_waits(record.run_id)
        return RunWaits.from_store(workflow_id=record.workflow_id, run_id=record.run_id,
                                   status=record.status.value, waits=stored.waits,
                                   tasks=stored.tasks)

    async def cancel(self) -> None:
        """Ask the run to cancel (``asyncio.CancelledError`` at its await points)."""
        await self._client.cancel(self.workflow_id)

    async def terminate(self, reason: str = "terminated") -> None:
        """Stop the run at once; no more workflow code runs."""
        await self._client.terminate(self.workflow_id, reason=reason)

