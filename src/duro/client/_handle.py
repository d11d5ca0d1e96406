"""Handles: what ``Engine.start`` returns, to wait for and inspect a run."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from duro.client._records import Event, RunInfo
from duro.errors import (
    RunNotFoundError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowTerminatedError,
)
from duro.serde import decode
from duro.store import RunRecord, RunStatus

if TYPE_CHECKING:
    from duro.client._engine import Engine

__all__ = ["WorkflowHandle"]

R = TypeVar("R")


class WorkflowHandle(Generic[R]):
    """A reference to a run: by workflow id (its latest run) or a specific run id."""

    def __init__(self, engine: Engine, workflow_id: str, run_id: str | None = None,
                 *, result_hint: Any = Any) -> None:
        self._engine = engine
        self.workflow_id = workflow_id
        self.run_id = run_id
        self._hint = result_hint

    def __repr__(self) -> str:
        return f"WorkflowHandle(workflow_id={self.workflow_id!r}, run_id={self.run_id!r})"

    async def _record(self) -> RunRecord:
        record = await self._engine.store.get_run(self.workflow_id, self.run_id)
        if record is None:
            raise RunNotFoundError(f"no run with workflow id {self.workflow_id!r}"
                                   + (f" and run id {self.run_id!r}" if self.run_id else ""))
        return record

    async def describe(self) -> RunInfo:
        """The run's current description."""
        return RunInfo.from_record(await self._record())

    async def status(self) -> RunStatus:
        """The run's current status."""
        return (await self._record()).status

    async def history(self) -> list[Event]:
        """The run's history, in order."""
        record = await self._record()
        return [Event.from_record(e) for e in await self._engine.store.load_history(
            record.run_id)]

    async def result(self, *, timeout: float | None = None) -> R:
        """Wait for the run to end and return its result.

        Raises:
            WorkflowFailedError: The workflow raised; ``.cause`` says what.
            WorkflowCancelledError: The run was cancelled.
            WorkflowTerminatedError: The run was terminated.
            TimeoutError: ``timeout`` seconds passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.01
        while True:
            record = await self._record()
            if record.status.is_terminal:
                return self._outcome(record)
            wait = self._engine._close_waiter(record.run_id)
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
                wait.cancel()
            else:
                await asyncio.sleep(step)

    def _outcome(self, record: RunRecord) -> R:
        info = RunInfo.from_record(record)
        if record.status == RunStatus.COMPLETED:
            value: R = decode(record.result, self._hint,
                              what=f"result of run {record.run_id}")
            return value
        if record.status == RunStatus.CANCELLED:
            raise WorkflowCancelledError(f"run {record.workflow_id!r} was cancelled")
        if record.status == RunStatus.TERMINATED:
            reason = info.error.message if info.error else ""
            raise WorkflowTerminatedError(f"run {record.workflow_id!r} was terminated: {reason}")
        assert info.error is not None
        raise WorkflowFailedError(f"run {record.workflow_id!r} failed: {info.error}",
                                  cause=info.error)

    async def cancel(self) -> None:
        """Ask the run to cancel (``asyncio.CancelledError`` at its await points)."""
        await self._engine.cancel(self.workflow_id)

    async def terminate(self, reason: str = "terminated") -> None:
        """Stop the run at once; no more workflow code runs."""
        await self._engine.terminate(self.workflow_id, reason=reason)
