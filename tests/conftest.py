"""Shared test helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run a coroutine to completion with a hard time limit."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


async def wait_for_event(handle: Any, kind: str, *, timeout: float = 10.0) -> None:
    """Poll the run's history until it holds an event of ``kind`` (bounded)."""
    async def recorded() -> bool:
        return any(e.kind == kind for e in await handle.history())

    await wait_until(recorded, timeout=timeout)


async def wait_until(predicate: Any, *, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll an async or sync predicate until it is true; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/duro.db"


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make a file or directory read-only for this process, root included.

    As root, permission bits do not stop writes, so the ext4 immutable attribute is used;
    the test is skipped only where neither works.
    """
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: a read-only file cannot be made")
    result = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"this filesystem cannot make files immutable: {result.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


# -- PostgreSQL ---------------------------------------------------------------------
# A throwaway cluster per session (tests/pg.py), a fresh schema per test. Tests marked
# `postgres` that skip fail the run when DURO_REQUIRE_POSTGRES=1 (CI), unless they
# declared the skip unrelated to PostgreSQL with skip_not_postgres().


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "postgres: needs PostgreSQL (a throwaway cluster from initdb/pg_ctl, or "
                   "DURO_TEST_POSTGRES_URL); with DURO_REQUIRE_POSTGRES=1 a skip is a failure")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if (report.skipped and os.environ.get("DURO_REQUIRE_POSTGRES") == "1"
            and item.get_closest_marker("postgres") is not None
            and not any(key == "skip_not_postgres" for key, _ in item.user_properties)
            and not hasattr(report, "wasxfail")):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (f"PostgreSQL test skipped while DURO_REQUIRE_POSTGRES=1: {reason}")


def skip_not_postgres(request: pytest.FixtureRequest, reason: str) -> None:
    """Skip a PostgreSQL test for a reason that is not PostgreSQL's absence (allowed even
    with DURO_REQUIRE_POSTGRES=1)."""
    request.node.user_properties.append(("skip_not_postgres", reason))
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    from tests.pg import Cluster, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"PostgreSQL unavailable: {reason}")
    cluster = Cluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def restartable() -> Iterator[Any]:
    """A local cluster of the module's own, which its tests may restart or stop."""
    from tests.pg import Cluster, unavailable_reason

    reason = unavailable_reason(local=True)
    if reason:
        pytest.skip(f"PostgreSQL unavailable: {reason}")
    cluster = Cluster(local=True).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Any) -> Iterator[str]:
    """A PostgreSQL store URL with a schema of its own (dropped afterwards)."""
    url: str = pg_cluster.fresh_url()
    yield url
    drop_schema(pg_cluster, url)


def drop_schema(pg_cluster: Any, url: str) -> None:
    """Drop the schema of a store URL made by ``pg_cluster.fresh_url()``."""
    from urllib.parse import parse_qs, urlparse

    import psycopg

    schema = parse_qs(urlparse(url).query)["schema"][0]
    with contextlib.suppress(psycopg.Error), psycopg.connect(
            pg_cluster.url, autocommit=True, connect_timeout=5) as conn:
        conn.execute("SET lock_timeout = '5s'")
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store URL of a store-agnostic test: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/duro.db"
    url: str = request.getfixturevalue("pg_url")
    return url
