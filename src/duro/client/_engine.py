"""The Engine: a Client and a Worker in one process (the embedded default)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from duro._clock import Clock
from duro._local import NO_LOCAL_RUNS
from duro.client._client import Client
from duro.interceptors import ClientInterceptor, WorkerInterceptor
from duro.interceptors._chain import check_interceptors
from duro.serde import CodecChain
from duro.store import Store
from duro.store._records import QueueConfig
from duro.worker import Worker
from duro.worker._options import WORKER_OPTIONS, check_options
from duro.worker._retention import RetentionPolicy
from duro.worker._streams import DEFAULT_STREAM_LIMIT
from duro.worker._worker import DEFAULT_MAX_CHILD_DEPTH
from duro.workflow._api import Workflow, registered_workflows

__all__ = ["Engine"]



class Engine(Client):
    """Start, inspect and control workflow runs; run them too (embedded worker).

    Use as ``async with duro.Engine("sqlite:///duro.db") as engine: ...``. It is a
    :class:`~duro.Client` (every method of the client API) joined to a
    :class:`~duro.worker.Worker` in the same process: a run it starts is run here
    without a claim round trip, and a result wakes its waiter at once. The two meet
    only through the small interface of ``duro._local.LocalRuns``.

    Args:
        url: The store: ``sqlite:///path/to.db`` (relative) or ``sqlite:////abs/path.db``.
        worker: Run an embedded worker in this process (default True; False makes this
            a :class:`~duro.Client` that also refuses workflow names it does not know).
        workflows: The workflows the worker runs; defaults to every workflow
            registered (imported) when the engine opens.
        clock: Durable time; pass ``duro.testing.ManualClock`` to control it.
        synchronous: SQLite's synchronous pragma (``FULL`` by default).
        store: An open-able store to use instead of opening ``url``.

    The other options are the embedded worker's, as :class:`duro.worker.Worker`
    documents them (same names, same defaults): ``max_active``, ``max_cached``,
    ``max_threads``, ``lease``, ``poll_interval``, ``workflow_task_timeout``,
    ``history_warning``, ``history_limit``, ``queues`` (the queues this worker serves,
    all by default), ``declare`` (queue limits to store; by default those declared with
    :class:`duro.Queue`), ``retention``, ``lookahead``, ``tune_gc``, ``max_recoveries``,
    ``max_child_depth``, ``stream_limit``. They are checked here, so a value that cannot
    work fails where it is written (``InvalidArgumentError``), and a misspelled one is a
    type error.

    ``codec``: the :class:`duro.serde.CodecChain` payloads are stored through
    (compression, encryption, offload), for the client's writes and reads here as for
    the worker's; every process using the store needs a chain that can decode them.
    ``interceptors``: client interceptors (:class:`~duro.interceptors.ClientInterceptor`,
    as :class:`~duro.Client` documents them) and worker interceptors
    (:class:`~duro.interceptors.WorkerInterceptor`, for the embedded worker); an object
    that is both serves both sides.
    """

    # A process with the code refuses a name it does not know (a typo would otherwise
    # wait for a worker that never comes); a Client cannot tell. Its views do the same.
    _code_only = True

    def __init__(
        self,
        url: str = "sqlite:///duro.db",
        *,
        worker: bool = True,
        workflows: Iterable[Workflow[Any, Any]] | None = None,
        clock: Clock | None = None,
        synchronous: str | None = None,
        store: Store | None = None,
        max_active: int = 10_000,
        max_cached: int = 2000,
        max_threads: int = 32,
        lease: float = 5.0,
        poll_interval: float = 0.2,
        workflow_task_timeout: float = 2.0,
        history_warning: int = 10_000,
        history_limit: int = 100_000,
        queues: Sequence[str] | None = None,
        declare: Sequence[QueueConfig] | None = None,
        retention: RetentionPolicy | None = None,
        lookahead: float = 5.0,
        tune_gc: bool = True,
        codec: CodecChain | None = None,
        max_recoveries: int = 10,
        max_child_depth: int | None = DEFAULT_MAX_CHILD_DEPTH,
        stream_limit: int = DEFAULT_STREAM_LIMIT,
        interceptors: Sequence[ClientInterceptor | WorkerInterceptor] = (),
    ) -> None:
        # The worker's options, by the names of its parameters (a unit test checks that
        # this signature has each of them, with the same default).
        given = locals()
        worker_options = {name: given[name] for name in WORKER_OPTIONS}
        check_options(worker_options)
        given_interceptors = check_interceptors(interceptors, ClientInterceptor,
                                                WorkerInterceptor)
        super().__init__(url, store=store, clock=clock, codec=codec, synchronous=synchronous,
                         interceptors=[i for i in given_interceptors
                                       if isinstance(i, ClientInterceptor)])
        self._worker_interceptors = [i for i in given_interceptors
                                     if isinstance(i, WorkerInterceptor)]
        self._run_worker = worker
        self._workflows = list(workflows) if workflows is not None else None
        self._worker_options = worker_options
        self.worker: Worker | None = None

    async def open(self) -> None:
        """Open the store and start the embedded worker."""
        if self._open:
            return
        await super().open()
        if self._run_worker:
            workflows = ({w.name: w for w in self._workflows} if self._workflows is not None
                         else registered_workflows())
            from duro._queues import declared_queues

            options = dict(self._worker_options)
            if options["declare"] is None:
                options["declare"] = [q.config for q in declared_queues().values()]
            self.worker = Worker(self.store, workflows, clock=self.clock,
                                 interceptors=self._worker_interceptors, **options)
            try:
                await self.worker.start()
            except BaseException:
                self.worker = None
                await super().close()
                raise
            self._local = self.worker

    async def close(self) -> None:
        """Stop the worker (releasing its runs at once) and close the store."""
        if not self._open:
            return
        if self.worker is not None:
            self._local = NO_LOCAL_RUNS
            worker, self.worker = self.worker, None
            try:
                await worker.stop()
            finally:
                await super().close()
            return
        await super().close()

    async def run_forever(self) -> None:
        """Serve as a worker until cancelled.

        Raises:
            DatabaseFileLostError: The worker stopped: the SQLite file was deleted or
                replaced under it.
        """
        if self.worker is None:
            await asyncio.Event().wait()
        else:
            raise await self.worker.wait_failed()
