"""Persistence: the ``Store`` protocol and its SQLite and PostgreSQL implementations."""

from __future__ import annotations

from duro.store._protocol import Fenced, Store
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
    "InboxMessage",
    "LoadedRun",
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
    """Make a store for a URL: ``sqlite:///path`` (or a bare path), or
    ``postgresql://user@host:port/db?schema=duro`` (needs the ``postgres`` extra).

    Raises:
        InvalidStoreURLError: A malformed URL, an unknown scheme or option (the message
            never shows the URL's password).
        StoreError: The ``postgres`` extra is not installed.
    """
    from duro.errors import InvalidStoreURLError, StoreError
    from duro.store._url import redact

    scheme = url.split(":", 1)[0].lower() if "://" in url else "sqlite"
    if scheme in ("postgresql", "postgres"):
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError:
            raise StoreError(
                "PostgreSQL stores need the 'postgres' extra: pip install 'duro[postgres]' "
                "(psycopg 3 and psycopg-pool)") from None
        from duro.store.postgres import PostgresStore

        return PostgresStore(url, **options)
    if scheme != "sqlite":
        raise InvalidStoreURLError(
            f"unsupported store URL {redact(url)!r}: use sqlite:///PATH or "
            "postgresql://HOST/DB")
    from duro.store.sqlite import SqliteStore

    return SqliteStore(url, **options)  # type: ignore[arg-type]
