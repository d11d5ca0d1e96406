"""``duro export runs|events`` (issue 18, item 4): JSON lines, CSV and Parquet hold
exactly what the client reads (the listing, the histories), with the filters applied; a
bad request writes nothing."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import duro
from tests.conftest import run

APPS = Path(__file__).parent / "apps"
if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

import log_app  # noqa: E402


def _duro(db: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "duro", "--db", db, *args],
                          capture_output=True, cwd=APPS, timeout=60)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('export')}/duro.db"

    async def main() -> None:
        async with duro.Engine(url, poll_interval=0.02) as engine:
            for i in range(3):
                await (await engine.start(log_app.chatty, i, id=f"c-{i}")).result(timeout=30)
            await engine.start(log_app.waits, 1, id="w-1")
            failing = await engine.start(log_app.fails, "no", id="bad-1")
            with contextlib.suppress(duro.WorkflowFailedError):
                await failing.result(timeout=30)

    run(main())
    return url


async def _expected(db: str) -> tuple[list[duro.RunInfo], dict[str, list[duro.Event]]]:
    async with duro.Client(db) as client:
        runs = await client.list(limit=100)
        events = {r.run_id: await client.get_handle(r.workflow_id, r.run_id).history()
                  for r in runs}
    return runs, events


def test_runs_and_events_as_json_lines(db: str) -> None:
    runs, events = run(_expected(db))
    proc = _duro(db, "export", "runs")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["run_id"] for r in rows] == [r.run_id for r in runs]
    by_id = {r["workflow_id"]: r for r in rows}
    assert by_id["bad-1"]["status"] == "failed" and by_id["bad-1"]["error_type"]
    assert by_id["c-2"]["result"] == 4 and by_id["w-1"]["status"] == "suspended"

    proc = _duro(db, "export", "events", "--workflow", "log_app.chatty")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    want = [(r.run_id, e.seq, e.kind) for r in runs if r.workflow_name == "log_app.chatty"
            for e in events[r.run_id]]
    assert [(r["run_id"], r["seq"], r["kind"]) for r in rows] == want
    assert all(r["workflow_name"] == "log_app.chatty" for r in rows)


def test_csv_with_filters(db: str) -> None:
    proc = _duro(db, "export", "runs", "--format", "csv", "--status", "completed",
                 "--since", "1h")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout.decode())))
    assert sorted(r["workflow_id"] for r in rows) == ["c-0", "c-1", "c-2"]
    assert all(json.loads(r["headers"]) == {} for r in rows)
    assert {r["error_type"] for r in rows} == {""}
    # A window that holds no run: only the header line.
    proc = _duro(db, "export", "runs", "--format", "csv", "--since", "0")
    assert proc.stdout.decode().splitlines() == [",".join(__import__(
        "duro.cli._export", fromlist=["RUN_COLUMNS"]).RUN_COLUMNS)]


def test_parquet(db: str, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    runs, events = run(_expected(db))
    target = tmp_path / "events.parquet"
    proc = _duro(db, "export", "events", "--format", "parquet", "-o", str(target))
    assert proc.returncode == 0, proc.stderr
    total = sum(len(v) for v in events.values())
    assert f"{total} events written to".encode() in proc.stderr
    table = pq.read_table(target)
    assert table.num_rows == total
    assert str(table.schema.field("time").type) == "timestamp[us, tz=UTC]"
    rows: list[dict[str, Any]] = table.to_pylist()
    first = next(r for r in rows if r["kind"] == "run_started")
    assert json.loads(first["data"]) is not None and first["seq"] >= 0

    runs_file = tmp_path / "runs.parquet"
    assert _duro(db, "export", "runs", "--format", "parquet", "-o",
                 str(runs_file)).returncode == 0
    assert sorted(pq.read_table(runs_file).column("workflow_id").to_pylist()) == sorted(
        r.workflow_id for r in runs)


def test_bad_requests_write_nothing(db: str, tmp_path: Path) -> None:
    proc = _duro(db, "export", "runs", "--format", "parquet")
    assert proc.returncode == 2 and b"needs -o FILE" in proc.stderr and not proc.stdout
    missing = tmp_path / "nowhere" / "x.csv"
    proc = _duro(db, "export", "runs", "--format", "csv", "-o", str(missing))
    assert proc.returncode == 2 and b"no directory" in proc.stderr
    assert not missing.parent.exists()
    assert _duro(db, "export", "tables").returncode == 2
    assert _duro(db, "export", "runs", "--status", "happy").returncode == 2
    assert _duro(db, "export", "runs", "--since", "soon").returncode == 2
    # An existing file is left as it was when the export fails.
    keep = tmp_path / "keep.jsonl"
    keep.write_text("old\n")
    proc = _duro(f"sqlite:///{tmp_path}/absent.db", "export", "runs", "-o", str(keep))
    assert proc.returncode != 0 and keep.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
