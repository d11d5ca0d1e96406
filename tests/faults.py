"""Database faults for tests: a trigger that makes inserts of history events fail.

The fault is injected in the database itself (a ``BEFORE INSERT`` trigger on ``events``
that raises), so it strikes exactly where a real one would: inside the store writer's
transaction, in the middle of a group-commit batch, on SQLite and PostgreSQL alike. It
fires only while the switch row exists (``set_fault(url, on)``), and only for events
matching ``when`` (an SQL condition over ``NEW``), optionally at random.

It is a *transient* kind of error on both (SQLite: a runtime error, "malformed JSON",
from ``json()`` on a bad literal; PostgreSQL: ``RAISE EXCEPTION``), not a refused value:
a constraint failure (SQLite's ``RAISE(ABORT)``) is ``DataRejectedError``, which parks
the run instead of retrying it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

__all__ = ["fault_hits", "install_fault", "set_fault"]


def _sqlite_path(url: str) -> str:
    return url[len("sqlite:///"):].split("?", 1)[0]


@contextlib.contextmanager
def _pg(url: str) -> Iterator[Any]:
    import psycopg

    schema = parse_qs(urlparse(url).query).get("schema", ["duro"])[0]
    with psycopg.connect(url.split("?", 1)[0], autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        yield conn


def install_fault(url: str, when: str = "true", *, probability: float = 1.0,
                  on: bool = True, refused: bool = False) -> None:
    """Make inserts of events matching ``when`` fail (with ``probability``) while on.

    ``refused``: fail as a constraint of the database would (a refused value, which no
    retry can get past) instead of with a transient error.

    ``when`` may use ``NEW.kind``, ``NEW.seq``, ``NEW.name``, ``NEW.op``. Each firing is
    counted in ``duro_fault_hits`` by a separate, autonomous write on PostgreSQL (a
    sequence, which a rollback does not undo) and not at all on SQLite (use other
    evidence there).
    """
    if url.startswith("sqlite"):
        chance = f"(abs(random()) % 1000000) < {int(probability * 1_000_000)}"
        with contextlib.closing(sqlite3.connect(_sqlite_path(url), timeout=30)) as conn:
            conn.executescript(f"""
                CREATE TABLE IF NOT EXISTS duro_fault_switch (on_ INTEGER);
                DROP TRIGGER IF EXISTS duro_fault;
                CREATE TRIGGER duro_fault BEFORE INSERT ON events
                WHEN EXISTS (SELECT 1 FROM duro_fault_switch) AND ({when}) AND {chance}
                BEGIN SELECT {"RAISE(ABORT, 'refused by a constraint')" if refused
                              else "json('injected fault')"}; END;
            """)
        set_fault(url, on)
        return
    with _pg(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS duro_fault_switch (on_ integer)")
        conn.execute("CREATE SEQUENCE IF NOT EXISTS duro_fault_hits")
        conn.execute(f"""
            CREATE OR REPLACE FUNCTION duro_fault() RETURNS trigger AS $$
            BEGIN
                IF EXISTS (SELECT 1 FROM duro_fault_switch) AND ({when})
                   AND random() < {probability} THEN
                    PERFORM nextval('duro_fault_hits');
                    RAISE EXCEPTION 'injected fault'
                        USING ERRCODE = '{"check_violation" if refused else "P0001"}';
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql""")
        conn.execute("DROP TRIGGER IF EXISTS duro_fault ON events")
        conn.execute("CREATE TRIGGER duro_fault BEFORE INSERT ON events FOR EACH ROW "
                     "EXECUTE FUNCTION duro_fault()")
    set_fault(url, on)


def set_fault(url: str, on: bool) -> None:
    """Turn the injected fault on or off."""
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(_sqlite_path(url), timeout=30)) as conn:
            conn.execute("DELETE FROM duro_fault_switch")
            if on:
                conn.execute("INSERT INTO duro_fault_switch VALUES (1)")
            conn.commit()
        return
    with _pg(url) as conn:
        conn.execute("DELETE FROM duro_fault_switch")
        if on:
            conn.execute("INSERT INTO duro_fault_switch VALUES (1)")


def fault_hits(url: str) -> int | None:
    """How many times the fault fired (PostgreSQL only; None on SQLite)."""
    if url.startswith("sqlite"):
        return None
    with _pg(url) as conn:
        row = conn.execute("SELECT last_value, is_called FROM duro_fault_hits").fetchone()
        return int(row[0]) if row[1] else 0
