"""Persistence: the ``Store`` protocol and its SQLite implementation."""

from __future__ import annotations

from duro.store._protocol import Fenced, Store
from duro.store._records import (
    LIVE_STATUSES,
    TERMINAL_STATUSES,
    Claim,
    EventRecord,
    IdConflictPolicy,
    IdReusePolicy,
    Message,
    NewEvent,
    RunLinks,
    RunRecord,
    RunStatus,
    UpdateOutcome,
)

__all__ = [
    "LIVE_STATUSES",
    "TERMINAL_STATUSES",
    "Claim",
    "EventRecord",
    "Fenced",
    "IdConflictPolicy",
    "IdReusePolicy",
    "Message",
    "NewEvent",
    "RunLinks",
    "RunRecord",
    "RunStatus",
    "Store",
    "UpdateOutcome",
    "open_store",
]


def open_store(url: str, **options: object) -> Store:
    """Make a store for a URL: ``sqlite:///path`` (or a bare path)."""
    from duro.errors import StoreError
    from duro.store.sqlite import SqliteStore

    scheme = url.split(":", 1)[0] if "://" in url else "sqlite"
    if scheme != "sqlite":
        raise StoreError(
            f"unsupported store URL {url!r}: this version of duro supports sqlite:///PATH"
        )
    return SqliteStore(url, **options)  # type: ignore[arg-type]
