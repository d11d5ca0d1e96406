"""LangGraph checkpoints (:mod:`duro.store._langgraph`), once for every dialect."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from duro.store._base._dialect import Dialect
from duro.store._base._tx import Tx
from duro.store._langgraph import GraphBlob, GraphCheckpoint, GraphWrite
from duro.store._rows import Row

__all__ = ["GraphCheckpoints"]


class GraphCheckpoints(Dialect):
    """The LangGraph checkpoint operations of :class:`~duro.store.Store`."""

    async def graph_put(self, namespace: str, checkpoint: GraphCheckpoint,
                        blobs: Sequence[GraphBlob]) -> None:
        """See :meth:`duro.store.GraphCheckpointStore.graph_put`."""
        where = {"namespace": namespace, "thread_id": checkpoint.thread_id,
                 "checkpoint_ns": checkpoint.checkpoint_ns}

        async def op(tx: Tx) -> None:
            for b in blobs:
                await tx.run("lg_put_blob", {**where, "channel": b.channel,
                                             "version": b.version, "type": b.type,
                                             "blob": b.blob})
            await tx.run("lg_put_checkpoint", {
                **where, "checkpoint_id": checkpoint.checkpoint_id,
                "parent_id": checkpoint.parent_id, "run_id": checkpoint.run_id,
                "type": checkpoint.type, "checkpoint": checkpoint.checkpoint,
                "meta_type": checkpoint.meta_type, "metadata": checkpoint.metadata})

        await self._write(op, ambiguous="retry")

    async def graph_put_writes(self, namespace: str, thread_id: str, checkpoint_ns: str,
                               checkpoint_id: str, writes: Sequence[GraphWrite]) -> None:
        """See :meth:`duro.store.GraphCheckpointStore.graph_put_writes`."""
        where = {"namespace": namespace, "thread_id": thread_id,
                 "checkpoint_ns": checkpoint_ns, "checkpoint_id": checkpoint_id}

        async def op(tx: Tx) -> None:
            for w in writes:
                # A special channel's write (negative index) replaces the task's older
                # one, as LangGraph's own savers do; any other is written once.
                query = "lg_replace_write" if w.idx < 0 else "lg_put_write"
                await tx.run(query, {**where, "task_id": w.task_id, "idx": w.idx,
                                     "channel": w.channel, "type": w.type,
                                     "blob": w.blob, "task_path": w.task_path})

        await self._write(op, ambiguous="retry")

    async def graph_list(self, namespace: str, *, thread_id: str | None = None,
                         checkpoint_ns: str | None = None, checkpoint_id: str | None = None,
                         before: str | None = None,
                         limit: int | None = None) -> list[GraphCheckpoint]:
        """See :meth:`duro.store.GraphCheckpointStore.graph_list`."""
        rows = await self._fetch("lg_list", {
            "namespace": namespace, "thread_id": thread_id, "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id, "before": before, "limit": limit})
        return [_checkpoint(r) for r in rows]

    async def graph_blobs(self, namespace: str, thread_id: str, checkpoint_ns: str,
                          channels: Sequence[str]) -> list[GraphBlob]:
        """See :meth:`duro.store.GraphCheckpointStore.graph_blobs`."""
        if not channels:
            return []
        rows = await self._fetch("lg_blobs", {"namespace": namespace, "thread_id": thread_id,
                                              "checkpoint_ns": checkpoint_ns,
                                              "channels": list(channels)})
        return [GraphBlob(channel=r["channel"], version=r["version"], type=r["type"],
                          blob=bytes(r["blob"])) for r in rows]

    async def graph_writes(self, namespace: str, thread_id: str, checkpoint_ns: str,
                           checkpoint_id: str) -> list[GraphWrite]:
        """See :meth:`duro.store.GraphCheckpointStore.graph_writes`."""
        rows = await self._fetch("lg_writes", {
            "namespace": namespace, "thread_id": thread_id, "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id})
        return [GraphWrite(task_id=r["task_id"], idx=int(r["idx"]), channel=r["channel"],
                           type=r["type"], blob=bytes(r["blob"]), task_path=r["task_path"])
                for r in rows]

    async def graph_delete_thread(self, namespace: str, thread_id: str) -> None:
        """See :meth:`duro.store.GraphCheckpointStore.graph_delete_thread`."""
        params = {"namespace": namespace, "thread_id": thread_id}
        await self._statements(("lg_delete_thread_writes", "lg_delete_thread_blobs",
                                "lg_delete_thread_checkpoints"), [params])

    async def graph_delete_runs(self, namespace: str, run_ids: Sequence[str]) -> None:
        """See :meth:`duro.store.GraphCheckpointStore.graph_delete_runs`."""
        await self._statements(("lg_delete_run_writes", "lg_delete_run_checkpoints"),
                               [{"namespace": namespace, "run_id": r} for r in run_ids])

    async def graph_copy_thread(self, namespace: str, source: str, target: str) -> None:
        """See :meth:`duro.store.GraphCheckpointStore.graph_copy_thread`."""
        await self._statements(("lg_copy_checkpoints", "lg_copy_blobs", "lg_copy_writes"),
                               [{"namespace": namespace, "source": source,
                                 "target": target}])

    async def graph_prune(self, namespace: str, thread_ids: Sequence[str], *,
                          keep_latest: bool) -> None:
        """See :meth:`duro.store.GraphCheckpointStore.graph_prune`."""
        queries = (("lg_prune_writes", "lg_prune_checkpoints") if keep_latest else
                   ("lg_delete_thread_writes", "lg_delete_thread_blobs",
                    "lg_delete_thread_checkpoints"))
        await self._statements(queries, [{"namespace": namespace, "thread_id": t}
                                         for t in thread_ids])

    async def _statements(self, queries: Sequence[str], each: Sequence[Mapping[str, object]],
                          ) -> None:
        """Run these statements for each parameter set, in one transaction."""
        if not each:
            return

        async def op(tx: Tx) -> None:
            for params in each:
                for query in queries:
                    await tx.run(query, params)

        await self._write(op, ambiguous="retry")


def _checkpoint(r: Row) -> GraphCheckpoint:
    return GraphCheckpoint(thread_id=r["thread_id"], checkpoint_ns=r["checkpoint_ns"],
                           checkpoint_id=r["checkpoint_id"], parent_id=r["parent_id"],
                           run_id=r["run_id"], type=r["type"],
                           checkpoint=bytes(r["checkpoint"]), meta_type=r["meta_type"],
                           metadata=bytes(r["metadata"]))
