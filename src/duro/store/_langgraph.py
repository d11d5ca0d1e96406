"""LangGraph checkpoints as stored (``duro.langgraph.DuroSaver``): the rows of the
``langgraph_*`` tables, opaque bytes made by the saver's serializer (its ``type`` beside
each), and the store operations over them (:class:`GraphCheckpointStore`).

The saver keeps LangGraph's own layout: a checkpoint without its channel values, the
values by channel and version (a checkpoint that did not change a channel shares its
blob with its parent), and the pending writes of each checkpoint by task and index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["GraphBlob", "GraphCheckpoint", "GraphCheckpointStore", "GraphWrite"]


@dataclass(frozen=True, kw_only=True, slots=True)
class GraphCheckpoint:
    """One checkpoint of a thread, without its channel values."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_id: str | None
    run_id: str | None
    """The ``run_id`` of its metadata, if any (what ``delete_for_runs`` matches)."""
    type: str
    checkpoint: bytes
    meta_type: str
    metadata: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class GraphBlob:
    """A channel's value at one version."""

    channel: str
    version: str
    type: str
    blob: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class GraphWrite:
    """A pending write of a task against a checkpoint."""

    task_id: str
    idx: int
    """Its index among the task's writes; negative for the special channels (errors,
    interrupts...) whose newer write replaces the older."""
    channel: str
    type: str
    blob: bytes
    task_path: str


@runtime_checkable
class GraphCheckpointStore(Protocol):
    """LangGraph checkpoints, per namespace: every operation takes the namespace."""

    async def graph_put(self, namespace: str, checkpoint: GraphCheckpoint,
                        blobs: Sequence[GraphBlob]) -> None:
        """Store a checkpoint (replacing one of the same id) and the blobs of the
        channels it changed (a blob already stored at that version is kept), in one
        transaction."""
        ...

    async def graph_put_writes(self, namespace: str, thread_id: str, checkpoint_ns: str,
                               checkpoint_id: str, writes: Sequence[GraphWrite]) -> None:
        """Store a task's writes: a write already stored at the same task and index is
        kept, unless its index is negative (then it is replaced)."""
        ...

    async def graph_list(self, namespace: str, *, thread_id: str | None = None,
                         checkpoint_ns: str | None = None, checkpoint_id: str | None = None,
                         before: str | None = None,
                         limit: int | None = None) -> list[GraphCheckpoint]:
        """Checkpoints that match (None: any), by thread and namespace, newest first;
        ``before``: only ids below it."""
        ...

    async def graph_blobs(self, namespace: str, thread_id: str, checkpoint_ns: str,
                          channels: Sequence[str]) -> list[GraphBlob]:
        """Every stored version of these channels of a thread's namespace."""
        ...

    async def graph_writes(self, namespace: str, thread_id: str, checkpoint_ns: str,
                           checkpoint_id: str) -> list[GraphWrite]:
        """A checkpoint's pending writes, by task path, task id and index."""
        ...

    async def graph_delete_thread(self, namespace: str, thread_id: str) -> None:
        """Delete a thread's checkpoints, blobs and writes."""
        ...

    async def graph_delete_runs(self, namespace: str, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) whose metadata names these runs."""
        ...

    async def graph_copy_thread(self, namespace: str, source: str, target: str) -> None:
        """Copy a thread's checkpoints, blobs and writes to another thread id."""
        ...

    async def graph_prune(self, namespace: str, thread_ids: Sequence[str], *,
                          keep_latest: bool) -> None:
        """Delete these threads' checkpoints and writes but the latest of each
        checkpoint namespace (``keep_latest``), or all of them."""
        ...
