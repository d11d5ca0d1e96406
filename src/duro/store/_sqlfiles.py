"""Loading the SQL that lives in .sql files beside a store: named queries and numbered
migrations (shared by the SQLite and PostgreSQL stores), and which migrations to apply."""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import cache
from importlib import resources

from duro.errors import StoreError

__all__ = ["load_migrations", "load_queries", "pending_migrations", "store_queries"]

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def load_queries(package: str, filename: str = "queries.sql") -> dict[str, str]:
    """Named queries of a ``.sql`` file: each starts at a ``-- name: NAME`` line (comments
    dropped, no trailing semicolon)."""
    text = resources.files(package).joinpath(filename).read_text("utf-8")
    parts = _NAME.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        out[name] = "\n".join(lines).strip().rstrip(";")
    return out


@cache
def load_migrations(package: str) -> list[tuple[int, str, str]]:
    """Numbered migrations ``NNNN_name.sql`` of a package's ``migrations`` folder, as
    (version, name, sql) in order; the numbers must be dense from 1."""
    folder = resources.files(package).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        m = re.match(r"^(\d{4})_(\w+)\.sql$", entry.name)
        if m:
            found.append((int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort()
    for i, (version, _, _) in enumerate(found, start=1):
        if version != i:
            raise RuntimeError(f"migration numbers must be dense from 1; found {version} at {i}")
    return found


@cache
def store_queries(package: str) -> dict[str, str]:
    """Every named query of a store: ``queries.sql``, ``schedules.sql``, ``tokens.sql``,
    ``cache.sql``, ``approvals.sql``, ``streams.sql``, ``budgets.sql`` and ``langgraph.sql``."""
    out = dict(load_queries(package))
    for extra in ("schedules.sql", "tokens.sql", "cache.sql", "approvals.sql", "streams.sql",
                  "budgets.sql", "langgraph.sql"):
        for name, sql in load_queries(package, extra).items():
            if name in out:
                raise RuntimeError(f"query {name!r} is named twice in {package}")
            out[name] = sql
    return out


def pending_migrations(package: str, done: Collection[int],
                       where: str) -> list[tuple[int, str, str]]:
    """The migrations of ``package`` not in ``done`` (the versions a database recorded),
    in order.

    Raises:
        StoreError: The database (``where``: how to name it) has a version this duro
            does not know: it was made by a newer duro.
    """
    known = load_migrations(package)
    newest = max((v for v, _, _ in known), default=0)
    if done and max(done) > newest:
        raise StoreError(f"the database schema {where}(version {max(done)}) is newer than "
                         f"this duro (version {newest}); upgrade duro")
    return [m for m in known if m[0] not in done]
