"""Persistence: the store contract (``ClientStore``, ``WorkerStore``, ``AdminStore``,
``ScheduleStore``, ``TokenStore``, ``ApprovalStore``; ``Store``: all of them), the records
it reads and writes, and the backends found by URL scheme (SQLite and PostgreSQL built in;
others register as ``duro.stores`` entry points: see :class:`StoreBackend`)."""

from __future__ import annotations

from duro.store._approvals import ApprovalRecord, ApprovalStore
from duro.store._cache import CacheEntry, CacheGroup, CacheStore
from duro.store._langgraph import GraphBlob, GraphCheckpoint, GraphCheckpointStore, GraphWrite
from duro.store._protocol import AdminStore, ClientStore, Fenced, Store, WorkerStore
from duro.store._records import (
    LIVE_STATUSES,
    TERMINAL_STATUSES,
    Claim,
    EventRecord,
    IdConflictPolicy,
    IdReusePolicy,
    InboxMessage,
    LoadedRun,
    Message,
    NewEvent,
    OpenTask,
    QueryAnswer,
    QueryRequest,
    RunLinks,
    RunRecord,
    RunStatus,
    RunWaitsRecord,
    StreamKind,
    StreamRecord,
    UpdateOutcome,
)
from duro.store._registry import StoreBackend, backend_for, open_store
from duro.store._schedules import ScheduleStore
from duro.store._tokens import TokenRecord, TokenStore

__all__ = [
    "LIVE_STATUSES",
    "TERMINAL_STATUSES",
    "AdminStore",
    "ApprovalRecord",
    "ApprovalStore",
    "CacheEntry",
    "CacheGroup",
    "CacheStore",
    "Claim",
    "ClientStore",
    "EventRecord",
    "Fenced",
    "GraphBlob",
    "GraphCheckpoint",
    "GraphCheckpointStore",
    "GraphWrite",
    "IdConflictPolicy",
    "IdReusePolicy",
    "InboxMessage",
    "LoadedRun",
    "Message",
    "NewEvent",
    "OpenTask",
    "QueryAnswer",
    "QueryRequest",
    "RunLinks",
    "RunRecord",
    "RunStatus",
    "RunWaitsRecord",
    "ScheduleStore",
    "Store",
    "StoreBackend",
    "StreamKind",
    "StreamRecord",
    "TokenRecord",
    "TokenStore",
    "UpdateOutcome",
    "WorkerStore",
    "backend_for",
    "open_store",
]
