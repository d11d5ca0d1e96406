"""Paged, filtered listings on both stores (issue 15, item 7): 100,000 runs page by page,
each exactly once and in order, ties across page boundaries, runs started while paging,
filters, cursors, and the query plans that make each page one index range scan.

The fixture runs are written in bulk straight into the store's tables (``executemany``
on SQLite, ``COPY`` on PostgreSQL): created one by one through ``create_run`` they would
take minutes."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

import duro
from duro._search import decode_cursor, encode_cursor
from duro.store._rules import list_query
from tests.conftest import run

BASE = 1_000_000.0
STATUSES = ("completed", "failed", "completed", "terminated")
Row = tuple[str, str, str, str, float]
"""(run_id, workflow_id, workflow_name, status, created_at)"""


def _rows(n: int, *, start: int = 0, tie: int = 7, at: float = BASE,
          prefix: str = "") -> list[Row]:
    """``n`` finished runs, ``tie`` at a time created at the same instant; run ids are
    not in creation order, so ties are really broken by run id."""
    rows = []
    for i in range(start, start + n):
        status = "cancelled" if i % 100 == 0 else STATUSES[i % len(STATUSES)]
        rows.append((f"{prefix}run-{(i * 7919) % 1_000_003:07d}-{i}", f"{prefix}wf-{i}",
                     "bulk.a" if i % 2 else "bulk.b", status, at + i // tie))
    return rows


@contextmanager
def _pg(url: str) -> Iterator[Any]:
    import psycopg

    schema = parse_qs(urlparse(url).query)["schema"][0]
    with psycopg.connect(url.split("?")[0], autocommit=True,
                         options=f"-c search_path={schema}") as conn:
        yield conn


def insert_runs(url: str, rows: Sequence[Row]) -> None:
    """Finished runs written straight into the ``runs`` table, in one transaction."""
    cols = "run_id, workflow_id, workflow_name, status, created_at, updated_at, closed_at"
    full = [(*r, r[4], r[4]) for r in rows]
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.executemany(f"INSERT INTO runs ({cols}) VALUES (?, ?, ?, ?, ?, ?, ?)", full)
        return
    with _pg(url) as conn, conn.cursor() as cur, cur.copy(
            f"COPY runs ({cols}) FROM STDIN") as copy:
        for r in full:
            copy.write_row(r)


def analyze(url: str) -> None:
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("ANALYZE")
        return
    with _pg(url) as conn:
        conn.execute("ANALYZE runs")


def plan(url: str, query: str, params: dict[str, Any]) -> str:
    """The database's plan for a named listing query."""
    if url.startswith("sqlite:///"):
        from duro.store.sqlite._sql import queries

        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute("EXPLAIN QUERY PLAN " + queries()[query],
                                {k: v for k, v in params.items() if type(v) is not list})
            return "\n".join(str(r[-1]) for r in rows)
    from duro.store.postgres._sql import queries as pg_queries

    with _pg(url) as conn:
        return "\n".join(r[0] for r in conn.execute("EXPLAIN " + pg_queries()[query],
                                                     params))


def _order(rows: Sequence[Row]) -> list[str]:
    return [r[0] for r in sorted(rows, key=lambda r: (r[4], r[0]), reverse=True)]


async def _opened(url: str) -> duro.Client:
    client = duro.Client(url)
    await client.open()  # migrates: the tables exist before the bulk insert
    return client


def test_100k_runs_page_by_page_each_once_in_order(any_db_url: str) -> None:
    rows = _rows(100_000)

    async def main() -> None:
        client = await _opened(any_db_url)
        try:
            began = time.monotonic()
            insert_runs(any_db_url, rows)
            inserted = time.monotonic()
            expected = _order(rows)
            seen: list[str] = []
            cursor: str | None = None
            pages = 0
            added: list[Row] = []
            while True:
                page = await client.list_page(page_size=1000, cursor=cursor)
                seen += [r.run_id for r in page.runs]
                pages += 1
                if pages == 10:
                    # Runs started while paging are newer than the cursor (or equal to it
                    # and above it by run id): they never shift the pages still to come.
                    assert page.next_cursor is not None
                    at, last = decode_cursor(page.next_cursor)
                    added = [*_rows(500, at=time.time(), prefix="new-"),
                             (last + "~", "tie-new", "bulk.a", "failed", at)]
                    insert_runs(any_db_url, added)
                    await client.start("bulk.elsewhere", id="started-meanwhile")
                cursor = page.next_cursor
                if cursor is None:
                    break
            paged = time.monotonic()
            assert pages == 100  # the last page says it is the last: no empty page
            assert seen == expected  # each exactly once, in order
            # A status filter pages the same way, through its own index.
            failed = [r for r in rows + added if r[3] == "failed"]
            seen = []
            cursor = None
            while True:
                page = await client.list_page(status="failed", page_size=4000, cursor=cursor)
                seen += [r.run_id for r in page.runs]
                if (cursor := page.next_cursor) is None:
                    break
            assert seen == _order(failed)
            print(f"\n{any_db_url.split(':')[0]}: inserted 100,000 runs in "
                  f"{inserted - began:.2f}s, listed them in 100 pages in "
                  f"{paged - inserted:.2f}s, the failed ones in "
                  f"{time.monotonic() - paged:.2f}s")
            # Each page is one index range scan, read backwards, no sort.
            analyze(any_db_url)
            _check_plans(any_db_url)
        finally:
            await client.close()

    run(main(), timeout=120)


def _check_plans(url: str) -> None:
    name, params = list_query(status=None, name=None, created_after=None,
                              created_before=None, id_prefix=None, attributes=None,
                              after=(BASE + 5000, "run-5"), limit=101)
    unfiltered = plan(url, name, params)
    name, params = list_query(status="cancelled", name=None, created_after=None,
                              created_before=None, id_prefix=None, attributes=None,
                              after=(BASE + 5000, "run-5"), limit=101)
    by_status = plan(url, name, params)
    if url.startswith("sqlite:///"):
        assert "USING INDEX runs_created (listed_at>? AND (listed_at,run_id)<(?,?))" \
            in unfiltered, unfiltered
        assert "USING INDEX runs_status (status=? AND listed_at>? AND " \
            "(listed_at,run_id)<(?,?))" in by_status, by_status
        assert "TEMP B-TREE" not in unfiltered + by_status
        return
    assert "Index Scan Backward using runs_created" in unfiltered, unfiltered
    assert "Index Scan Backward using runs_status" in by_status, by_status
    assert "Sort" not in unfiltered + by_status


def test_a_page_boundary_inside_a_tie(any_db_url: str) -> None:
    rows = _rows(10, tie=10)  # ten runs created at the same instant

    async def main() -> None:
        client = await _opened(any_db_url)
        try:
            insert_runs(any_db_url, rows)
            pages: list[list[str]] = []
            cursor = None
            while True:
                page = await client.list_page(page_size=3, cursor=cursor)
                pages.append([r.run_id for r in page.runs])
                if (cursor := page.next_cursor) is None:
                    break
                assert decode_cursor(cursor) == (BASE, pages[-1][-1])  # inside the tie
            expected = sorted((r[0] for r in rows), reverse=True)
            assert pages == [expected[0:3], expected[3:6], expected[6:9], expected[9:]]
            assert [r.run_id async for r in client.iter_runs(page_size=4)] == expected
            assert [r.run_id for r in await client.list(limit=4)] == expected[:4]
        finally:
            await client.close()

    run(main())


def test_filters_and_cursors(any_db_url: str) -> None:
    rows = _rows(300, tie=3) + _rows(20, start=300, prefix="x-")

    async def main() -> None:
        client = await _opened(any_db_url)
        try:
            insert_runs(any_db_url, rows)

            async def ids(**where: Any) -> list[str]:
                return [r.run_id async for r in client.iter_runs(page_size=7, **where)]

            def want(keep: Any) -> list[str]:
                return _order([r for r in rows if keep(r)])

            assert await ids() == want(lambda r: True)
            assert await ids(name="bulk.a") == want(lambda r: r[2] == "bulk.a")
            assert await ids(name="bulk.a", status="failed") == want(
                lambda r: r[2] == "bulk.a" and r[3] == "failed")
            assert await ids(status="cancelled") == want(lambda r: r[3] == "cancelled")
            assert await ids(id_prefix="x-wf-30") == want(lambda r: r[1].startswith("x-wf-30"))
            after, before = BASE + 10, BASE + 50
            assert await ids(created_after=after, created_before=before) == want(
                lambda r: after <= r[4] < before)
            assert await ids(created_after=datetime.fromtimestamp(after, UTC),
                             created_before=datetime.fromtimestamp(before, UTC),
                             status="completed") == want(
                lambda r: after <= r[4] < before and r[3] == "completed")
            assert await ids(created_after=before, created_before=after) == []
            # A cursor is a position: it continues after that run, whatever the filters.
            everything = await ids()
            middle = next(r for r in rows if r[0] == everything[100])
            page = await client.list_page(page_size=5,
                                          cursor=encode_cursor(middle[4], middle[0]))
            assert [r.run_id for r in page.runs] == everything[101:106]
            for bad in ("nope", encode_cursor(1.0, "r")[:-3] + "!!!", "A" * 5000):
                with pytest.raises(duro.InvalidArgumentError, match="malformed cursor"):
                    await client.list_page(cursor=bad)
            for size in (0, -1, 10_001, 2.5, True):
                with pytest.raises(duro.InvalidArgumentError, match="page_size"):
                    await client.list_page(page_size=size)  # type: ignore[arg-type]
            with pytest.raises(duro.InvalidArgumentError, match="created_after"):
                await client.list_page(created_after=datetime(2024, 1, 1))
            with pytest.raises(duro.InvalidArgumentError, match="status"):
                client.iter_runs(status="finished")
        finally:
            await client.close()

    run(main())


def test_a_damaged_creation_time_has_a_place_in_the_order(db_url: str) -> None:
    """SQLite keeps any value: a run whose created_at is text is listed as created at 0
    (as its record says), last, and paging past it loses nothing."""
    rows = _rows(6, tie=2)

    async def main() -> None:
        client = await _opened(db_url)
        try:
            insert_runs(db_url, rows)
            with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
                conn.execute("UPDATE runs SET created_at = 'yesterday' WHERE run_id = ?",
                             (rows[3][0],))
            listed = [r async for r in client.iter_runs(page_size=1)]
            intact = [r for r in rows if r[0] != rows[3][0]]
            assert [r.run_id for r in listed] == [*_order(intact), rows[3][0]]
            assert listed[-1].status == duro.RunStatus.CORRUPT
            assert [r.run_id async for r in client.iter_runs(page_size=2)] == [
                r.run_id for r in listed]
        finally:
            await client.close()

    run(main())


def test_duro_ls_filters_and_pages(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from duro.cli._main import run_cli

    rows = _rows(30, tie=4)

    async def seed() -> None:
        client = await _opened(db_url)
        try:
            insert_runs(db_url, rows)
            await client.start("cli.elsewhere", id="tagged", search_attributes={
                "amount": 12, "customer": "acme"})
        finally:
            await client.close()

    run(seed())

    def ls(*args: str) -> Any:
        assert run_cli(["ls", "--db", db_url, "--json", *args]) == 0
        return json.loads(capsys.readouterr().out)

    tagged = ls("--attr", "amount=12", "--attr", "customer=acme")
    assert [r["workflow_id"] for r in tagged] == ["tagged"]
    assert tagged[0]["search_attributes"] == {"amount": 12, "customer": "acme"}
    assert ls("--attr", 'amount="12"') == []
    expected = ["tagged", *_order(rows)]
    first = ls("--limit", "7", "--page")
    assert [r["run_id"] for r in first["runs"][1:]] == expected[1:7]
    second = ls("--limit", "10", "--cursor", first["next_cursor"])
    assert [r["run_id"] for r in second["runs"]] == expected[7:17]
    last = ls("--limit", "100", "--cursor", second["next_cursor"])
    assert [r["run_id"] for r in last["runs"]] == expected[17:]
    assert last["next_cursor"] is None
    assert [r["workflow_id"] for r in ls("--id-prefix", "wf-2", "--status", "failed")] == [
        r[1] for r in sorted(rows, key=lambda r: (r[4], r[0]), reverse=True)
        if r[1].startswith("wf-2") and r[3] == "failed"]
    within = ls("--created-after", str(BASE + 2), "--created-before",
                datetime.fromtimestamp(BASE + 4, UTC).isoformat())
    assert [r["run_id"] for r in within] == _order([r for r in rows
                                                    if BASE + 2 <= r[4] < BASE + 4])
    assert run_cli(["ls", "--db", db_url, "--limit", "5"]) == 0
    assert "more runs: add --cursor " in capsys.readouterr().err
    assert run_cli(["ls", "--db", db_url, "--cursor", "nope"]) == 2
    assert "malformed cursor" in capsys.readouterr().err
