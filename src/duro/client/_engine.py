"""The Engine: the client API, with an embedded worker by default."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from types import TracebackType
from typing import Any, TypeVar

from duro._clock import Clock, SystemClock
from duro.client._handle import WorkflowHandle
from duro.client._records import RunInfo
from duro.errors import DuroError
from duro.serde import encode
from duro.store import Claim, IdConflictPolicy, IdReusePolicy, Store, open_store
from duro.worker import Worker
from duro.workflow._api import Workflow, lookup_workflow, registered_workflows

__all__ = ["Engine"]

R = TypeVar("R")
log = logging.getLogger("duro")


class Engine:
    """Start, inspect and control workflow runs; run them too (embedded worker).

    Use as ``async with duro.Engine("sqlite:///duro.db") as engine: ...``.

    Args:
        url: The store: ``sqlite:///path/to.db`` (relative) or ``sqlite:////abs/path.db``.
        worker: Run an embedded worker in this process (default True).
        workflows: The workflows the worker runs; defaults to every workflow
            registered (imported) when the engine opens.
        clock: Durable time; pass ``duro.testing.ManualClock`` to control it.
        synchronous: SQLite's synchronous pragma (``FULL`` by default).
        **worker_options: Passed to :class:`duro.worker.Worker` (``max_active``,
            ``lease``, ``poll_interval``, ``workflow_task_timeout``...).
    """

    def __init__(
        self,
        url: str = "sqlite:///duro.db",
        *,
        worker: bool = True,
        workflows: Iterable[Workflow[Any, Any]] | None = None,
        clock: Clock | None = None,
        synchronous: str | None = None,
        store: Store | None = None,
        **worker_options: Any,
    ) -> None:
        self.url = url
        self.clock = clock or SystemClock()
        options: dict[str, Any] = {}
        if synchronous is not None:
            options["synchronous"] = synchronous
        self.store: Store = store or open_store(url, **options)
        self._run_worker = worker
        self._workflows = list(workflows) if workflows is not None else None
        self._worker_options = worker_options
        self.worker: Worker | None = None
        self._open = False

    async def __aenter__(self) -> Engine:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the store and start the embedded worker."""
        if self._open:
            return
        await self.store.open()
        self._open = True
        if self._run_worker:
            workflows = ({w.name: w for w in self._workflows} if self._workflows is not None
                         else registered_workflows())
            self.worker = Worker(self.store, workflows, clock=self.clock,
                                 **self._worker_options)
            try:
                await self.worker.start()
            except BaseException:
                await self.store.close()
                self._open = False
                raise

    async def close(self) -> None:
        """Stop the worker (releasing its runs at once) and close the store."""
        if not self._open:
            return
        self._open = False
        if self.worker is not None:
            await self.worker.stop()
            self.worker = None
        await self.store.close()

    async def run_forever(self) -> None:
        """Serve as a worker until cancelled."""
        await asyncio.Event().wait()

    # -- starting ------------------------------------------------------------------------

    async def start(
        self,
        workflow: Workflow[Any, R] | str,
        *args: Any,
        id: str | None = None,
        on_conflict: IdConflictPolicy = "use_existing",
        on_reuse: IdReusePolicy = "use_existing",
        **kwargs: Any,
    ) -> WorkflowHandle[R]:
        """Start a run, or return the existing one for this workflow id.

        The workflow id is the idempotency key: while a run with this id is live,
        starting again returns its handle (``on_conflict="fail"`` raises instead). Once
        it has ended, ``on_reuse`` decides: ``"use_existing"`` (default: return the
        finished run), ``"allow"`` (start a new run), ``"allow_failed"`` (a new run only
        if the last one did not complete) or ``"fail"``.

        Raises:
            WorkflowNotFoundError: ``workflow`` is a name no imported workflow has.
            TypeError: The arguments do not fit the workflow's signature.
            SerializationError: An argument cannot be stored as JSON.
            WorkflowAlreadyStartedError: The id policy says fail.
        """
        wf = lookup_workflow(workflow) if isinstance(workflow, str) else workflow
        if not isinstance(wf, Workflow):
            raise TypeError(f"expected a @duro.workflow or its name, got {workflow!r}")
        try:
            wf.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"workflow {wf.name!r} called with wrong arguments: {exc}") from None
        payload = encode({"args": list(args), "kwargs": kwargs},
                         what=f"the arguments of workflow {wf.name!r}")
        self._require_open()
        workflow_id = id or str(uuid.uuid4())
        run_id = str(uuid.uuid4())
        worker = self.worker
        local = worker is not None and worker.reserve_slot(wf.name)
        now = self.clock.now()
        adopted = False
        try:
            record, created = await self.store.create_run(
                run_id=run_id, workflow_id=workflow_id, workflow_name=wf.name, input=payload,
                now=now, owner=worker.worker_id if local and worker else None,
                on_conflict=on_conflict, on_reuse=on_reuse,
            )
            if created and local and worker is not None:
                adopted = True
                worker.adopt(Claim(run_id=record.run_id, workflow_id=workflow_id,
                                   workflow_name=wf.name, epoch=record.epoch, history_len=1),
                             payload, now)
        finally:
            if local and not adopted and worker is not None:
                worker.unreserve_slot()
        return WorkflowHandle(self, workflow_id, record.run_id, result_hint=wf.return_hint)

    def get_handle(self, workflow_id: str, run_id: str | None = None,
                   *, result_type: Any = Any) -> WorkflowHandle[Any]:
        """A handle to an existing run (the latest run of the id unless ``run_id``)."""
        self._require_open()
        return WorkflowHandle(self, workflow_id, run_id, result_hint=result_type)

    async def list(
        self, *, status: str | None = None, name: str | None = None, limit: int = 100
    ) -> list[RunInfo]:
        """Runs, newest first, optionally filtered by status and workflow name."""
        self._require_open()
        return [RunInfo.from_record(r)
                for r in await self.store.list_runs(status=status, name=name, limit=limit)]

    async def cancel(self, workflow_id: str) -> None:
        """Request cancellation of the live run with this id."""
        self._require_open()
        record = await self.store.send_message(workflow_id, "cancel", None, None,
                                               now=self.clock.now())
        if self.worker is not None:
            self.worker.inbox_hint(record.run_id)

    async def terminate(self, workflow_id: str, *, reason: str = "terminated") -> None:
        """Stop the live run with this id at once: no more workflow code runs."""
        self._require_open()
        record = await self.store.terminate(workflow_id, reason=reason, now=self.clock.now())
        if self.worker is not None:
            self.worker.terminated(record.run_id)

    async def resume(self, workflow_id: str) -> None:
        """Retry a parked run now (workers retry parked runs on their own only when
        the workflow's code changed; use this after repairing data)."""
        self._require_open()
        await self.store.resume_parked(workflow_id, now=self.clock.now())
        if self.worker is not None:
            self.worker.wake()

    def _close_waiter(self, run_id: str) -> asyncio.Future[None] | None:
        if self.worker is None:
            return None
        return self.worker.wait_for_close(run_id)

    def _require_open(self) -> None:
        if not self._open:
            raise DuroError("the engine is not open: use `async with Engine(...)` or "
                            "`await engine.open()`")


