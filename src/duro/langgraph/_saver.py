"""``DuroSaver``: a LangGraph checkpointer on duro's store (SQLite or PostgreSQL).

The store's connections and writer belong to the event loop that opened them. A
checkpointer is called from anywhere: ``graph.invoke`` (sync, any thread),
``graph.ainvoke`` (any loop). So the saver opens its store on **a loop of its own, in a
thread of its own** (started by :meth:`DuroSaver.open`): async methods hand their work
to that loop and await it (``asyncio.wrap_future``), sync methods block on it. The only
call that could deadlock, a sync method on the saver's own loop thread, is refused with
:class:`SaverLoopError` (langgraph's async savers refuse their own loop the same way).
The cost is a thread hop per call (tens of microseconds), small beside a write.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from duro._checks import check_choice, check_namespace
from duro.errors import DuroError, InvalidArgumentError
from duro.store import GraphBlob, GraphCheckpoint, GraphWrite, Store, open_store

__all__ = ["DuroSaver", "SaverLoopError"]

T = TypeVar("T")
_PRUNE_STRATEGIES = ("keep_latest", "delete")
_OPEN_TIMEOUT = 60.0


class SaverLoopError(DuroError):
    """A sync method of :class:`DuroSaver` was called on the saver's own loop thread
    (it would wait for itself): call the async method there."""


class DuroSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer that keeps checkpoints in duro's database.

    ``DuroSaver("sqlite:///app.db")`` or ``DuroSaver("postgresql://...")``: the same URLs
    as :class:`duro.Engine`; the tables come with duro's migrations. Use it as a context
    manager (sync or async), or call :meth:`open` and :meth:`close`::

        with DuroSaver("sqlite:///app.db") as saver:
            graph = builder.compile(checkpointer=saver)
            graph.invoke(inputs, {"configurable": {"thread_id": "t-1"}})

    Args:
        url: The database (``sqlite:///path``, ``postgresql://...``).
        namespace: The duro namespace the threads belong to (threads of one
            namespace are invisible to another).
        serde: LangGraph's serializer (default: its ``JsonPlusSerializer``).
        store: A store to use instead of opening one from ``url`` (it must not be open
            yet: the saver opens it on its own loop, and closes it).

    Raises:
        InvalidArgumentError: A namespace that is not a valid name.
        InvalidStoreURLError: A malformed URL or an unknown scheme.
    """

    def __init__(self, url: str | None = None, *, namespace: str = "default",
                 serde: SerializerProtocol | None = None, store: Store | None = None) -> None:
        super().__init__(serde=serde)
        if (url is None) == (store is None):
            raise InvalidArgumentError("give DuroSaver a database url or a store (one)")
        self.namespace = check_namespace(namespace)
        self.store: Store = store if store is not None else open_store(str(url))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> DuroSaver:
        """Start the saver's loop thread and open the store on it (migrating it)."""
        with self._lock:
            if self._loop is not None:
                return self
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=serve, name="duro-langgraph-saver", daemon=True)
            thread.start()
            ready.wait(_OPEN_TIMEOUT)
            self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self.store.open(), loop).result(_OPEN_TIMEOUT)
        except BaseException:
            self._stop()
            raise
        return self

    def close(self) -> None:
        """Close the store and stop the loop thread (idempotent)."""
        loop = self._loop
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.store.close(), loop).result(_OPEN_TIMEOUT)
        finally:
            self._stop()

    def _stop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(_OPEN_TIMEOUT)
        if loop is not None:
            loop.close()

    def __enter__(self) -> DuroSaver:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> DuroSaver:
        await asyncio.to_thread(self.open)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await asyncio.to_thread(self.close)

    # -- running on the saver's loop -----------------------------------------------------

    def _submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        loop = self._loop
        if loop is None:
            coro.close()
            raise DuroError("the DuroSaver is not open: use it as a context manager or "
                            "call open() first")
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._thread is threading.current_thread():
            coro.close()
            raise SaverLoopError("a sync DuroSaver method was called on the saver's own "
                                 "loop thread; use the async method (aget_tuple, aput...)")
        return self._submit(coro).result()

    async def _async(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._thread is threading.current_thread():
            return await coro
        return await asyncio.wrap_future(self._submit(coro))

    # -- the checkpointer, async -------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint of ``config`` (its ``checkpoint_id``, else the thread's
        latest in its ``checkpoint_ns``), or None."""
        return await self._async(self._get_tuple(config))

    async def alist(self, config: RunnableConfig | None, *,
                    filter: dict[str, Any] | None = None, before: RunnableConfig | None = None,
                    limit: int | None = None) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints that match, newest first (per thread and checkpoint namespace);
        ``filter`` matches metadata keys by equality."""
        for item in await self._async(self._list(config, filter, before, limit)):
            yield item

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint,
                   metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        """Store a checkpoint and the values of the channels it changed."""
        return await self._async(self._put(config, checkpoint, metadata, new_versions))

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str = "") -> None:
        """Store a task's pending writes against the checkpoint of ``config``."""
        await self._async(self._put_writes(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete a thread's checkpoints and writes."""
        await self._async(self.store.graph_delete_thread(self.namespace, str(thread_id)))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and writes) whose metadata's ``run_id`` is one of these."""
        await self._async(self.store.graph_delete_runs(self.namespace,
                                                       [str(r) for r in run_ids]))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of a thread to another thread id."""
        await self._async(self.store.graph_copy_thread(
            self.namespace, str(source_thread_id), str(target_thread_id)))

    async def aprune(self, thread_ids: Sequence[str], *,
                     strategy: str = "keep_latest") -> None:
        """``"keep_latest"``: keep each checkpoint namespace's latest checkpoint (and
        its writes); ``"delete"``: delete everything of these threads.

        Raises:
            InvalidArgumentError: Another strategy.
        """
        check_choice(strategy, "prune strategy", _PRUNE_STRATEGIES)
        await self._async(self.store.graph_prune(self.namespace, [str(t) for t in thread_ids],
                                                 keep_latest=strategy == "keep_latest"))

    # -- the checkpointer, sync ----------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """See :meth:`aget_tuple`."""
        return self._sync(self._get_tuple(config))

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None,
             limit: int | None = None) -> Iterator[CheckpointTuple]:
        """See :meth:`alist`."""
        yield from self._sync(self._list(config, filter, before, limit))

    def put(self, config: RunnableConfig, checkpoint: Checkpoint,
            metadata: CheckpointMetadata, new_versions: ChannelVersions) -> RunnableConfig:
        """See :meth:`aput`."""
        return self._sync(self._put(config, checkpoint, metadata, new_versions))

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                   task_id: str, task_path: str = "") -> None:
        """See :meth:`aput_writes`."""
        self._sync(self._put_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        """See :meth:`adelete_thread`."""
        self._sync(self.store.graph_delete_thread(self.namespace, str(thread_id)))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """See :meth:`adelete_for_runs`."""
        self._sync(self.store.graph_delete_runs(self.namespace, [str(r) for r in run_ids]))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """See :meth:`acopy_thread`."""
        self._sync(self.store.graph_copy_thread(self.namespace, str(source_thread_id),
                                                str(target_thread_id)))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """See :meth:`aprune`."""
        check_choice(strategy, "prune strategy", _PRUNE_STRATEGIES)
        self._sync(self.store.graph_prune(self.namespace, [str(t) for t in thread_ids],
                                          keep_latest=strategy == "keep_latest"))

    # -- the work, on the saver's loop -------------------------------------------------

    async def _get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        conf = _configurable(config)
        thread_id = _thread_id(conf)
        ns = str(conf.get("checkpoint_ns", ""))
        rows = await self.store.graph_list(self.namespace, thread_id=thread_id,
                                           checkpoint_ns=ns,
                                           checkpoint_id=get_checkpoint_id(config), limit=1)
        return await self._tuple(rows[0]) if rows else None

    async def _list(self, config: RunnableConfig | None, filter: dict[str, Any] | None,
                    before: RunnableConfig | None,
                    limit: int | None) -> builtins.list[CheckpointTuple]:
        conf = _configurable(config) if config else {}
        rows = await self.store.graph_list(
            self.namespace,
            thread_id=_thread_id(conf) if "thread_id" in conf else None,
            checkpoint_ns=conf.get("checkpoint_ns"),
            checkpoint_id=get_checkpoint_id(config) if config else None,
            before=get_checkpoint_id(before) if before else None,
            # A metadata filter is applied here, after decoding: the limit comes after it.
            limit=None if filter else limit)
        out: builtins.list[CheckpointTuple] = []
        for row in rows:
            if limit is not None and len(out) >= limit:
                break
            if filter:
                meta = self.serde.loads_typed((row.meta_type, row.metadata))
                if not all(meta.get(k) == v for k, v in filter.items()):
                    continue
            out.append(await self._tuple(row))
        return out

    async def _tuple(self, row: GraphCheckpoint) -> CheckpointTuple:
        checkpoint: Checkpoint = self.serde.loads_typed((row.type, row.checkpoint))
        versions = checkpoint.get("channel_versions", {})
        blobs = await self.store.graph_blobs(self.namespace, row.thread_id,
                                             row.checkpoint_ns, list(versions))
        wanted = {(ch, str(v)) for ch, v in versions.items()}
        values = {b.channel: self.serde.loads_typed((b.type, b.blob)) for b in blobs
                  if (b.channel, b.version) in wanted and b.type != "empty"}
        writes = await self.store.graph_writes(self.namespace, row.thread_id,
                                               row.checkpoint_ns, row.checkpoint_id)
        pending: builtins.list[PendingWrite] = [
            (w.task_id, w.channel, self.serde.loads_typed((w.type, w.blob))) for w in writes]
        parent = (None if row.parent_id is None else _config(row.thread_id, row.checkpoint_ns,
                                                               row.parent_id))
        return CheckpointTuple(
            config=_config(row.thread_id, row.checkpoint_ns, row.checkpoint_id),
            checkpoint={**checkpoint, "channel_values": values},
            metadata=self.serde.loads_typed((row.meta_type, row.metadata)),
            parent_config=parent, pending_writes=pending)

    async def _put(self, config: RunnableConfig, checkpoint: Checkpoint,
                   metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        conf = _configurable(config)
        thread_id = _thread_id(conf)
        ns = str(conf.get("checkpoint_ns", ""))
        body: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = body.pop("channel_values", None) or {}
        blobs = []
        for channel, version in new_versions.items():
            # A channel in new_versions but without a value was emptied: "empty" says so.
            kind, data = (self.serde.dumps_typed(values[channel]) if channel in values
                          else ("empty", b""))
            blobs.append(GraphBlob(channel=channel, version=str(version), type=kind,
                                   blob=data))
        kind, data = self.serde.dumps_typed(body)
        meta = get_checkpoint_metadata(config, metadata)
        meta_type, meta_data = self.serde.dumps_typed(meta)
        run_id = meta.get("run_id")
        await self.store.graph_put(self.namespace, GraphCheckpoint(
            thread_id=thread_id, checkpoint_ns=ns, checkpoint_id=checkpoint["id"],
            parent_id=conf.get("checkpoint_id"),
            run_id=None if run_id is None else str(run_id), type=kind, checkpoint=data,
            meta_type=meta_type, metadata=meta_data), blobs)
        return _config(thread_id, ns, checkpoint["id"])

    async def _put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str) -> None:
        conf = _configurable(config)
        rows = []
        for idx, (channel, value) in enumerate(writes):
            kind, data = self.serde.dumps_typed(value)
            rows.append(GraphWrite(task_id=task_id, idx=WRITES_IDX_MAP.get(channel, idx),
                                   channel=channel, type=kind, blob=data,
                                   task_path=task_path))
        checkpoint_id = conf.get("checkpoint_id")
        if not checkpoint_id:
            raise InvalidArgumentError("put_writes needs a config with a checkpoint_id")
        await self.store.graph_put_writes(self.namespace, _thread_id(conf),
                                          str(conf.get("checkpoint_ns", "")),
                                          str(checkpoint_id), rows)


def _configurable(config: RunnableConfig) -> dict[str, Any]:
    conf = config.get("configurable") if isinstance(config, dict) else None
    if not isinstance(conf, dict):
        raise InvalidArgumentError("a LangGraph config needs a 'configurable' mapping")
    return conf


def _thread_id(conf: dict[str, Any]) -> str:
    thread_id = conf.get("thread_id")
    if thread_id is None or str(thread_id) == "":
        raise InvalidArgumentError("a LangGraph config needs configurable.thread_id")
    return str(thread_id)


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns,
                             "checkpoint_id": checkpoint_id}}
