"""``examples/trip_booking.py``: a saga's compensations run last first, once each, and
survive kill -9 in the middle of compensating."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "trip_booking.py"
EXECUTING = re.compile(r"^\s*\[([^\]]+?)\s*\] executing step #(\d+): .*\(Idempotency-Key (\S+)\)",
                       re.MULTILINE)
TIMEOUT = 60.0


def run_demo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=TIMEOUT)


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def executed(out: str) -> list[tuple[str, str]]:
    """(label, idempotency key) of each "executing" line, in order."""
    return [(label, key) for label, _, key in EXECUTING.findall(out)]


def ledger(db: Path) -> list[dict[str, str]]:
    path = db.with_suffix(".provider.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def compensations(db: Path) -> list[tuple[object, str]]:
    """(op, result) of each recorded compensation, in history order."""
    rows = query(db, "SELECT op, data FROM events WHERE kind = 'step_completed' AND "
                     "name = 'trip.cancel_booking' ORDER BY seq")
    return [(op, json.loads(data)) for op, data in rows]  # type: ignore[arg-type]


def undone(rows: list[tuple[object, str]]) -> list[str]:
    """What each compensation cancelled: "car", "hotel"..."""
    return [result.split()[0] for _, result in rows]


def no_step_recorded_twice(db: Path) -> bool:
    return query(db, """SELECT run_id, op FROM events WHERE kind = 'step_completed'
                        GROUP BY run_id, op HAVING count(*) > 1""") == []


def test_failure_at_the_car_cancels_hotel_then_flight_once_each(tmp_path: Path) -> None:
    db = tmp_path / "trips.db"
    proc = run_demo("--fail-at", "car", "--fast", "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    labels = [label for label, _ in executed(out)]
    # The car step fails before any call to the provider (no idempotency key printed).
    assert labels == ["flight", "hotel", "undo hotel", "undo flight"], out
    assert "[car        ] failed: " in out and "sold out" in out
    assert out.index("[car        ] failed") < out.index("[undo hotel ] executing")
    assert "The saga undid the bookings, last first (2 recorded compensations):" in out
    assert re.search(r"^    hotel HO-\w+ cancelled\n    flight FL-\w+ cancelled$", out, re.M)

    assert query(db, "SELECT status FROM runs") == [("failed",)]
    assert undone(compensations(db)) == ["hotel", "flight"]
    assert no_step_recorded_twice(db)
    actions = [e["action"] for e in ledger(db)]
    assert actions == ["booking flight", "booking hotel", "cancelling hotel",
                       "cancelling flight"]

    # Same trip, same workflow id: the stored outcome comes back, nothing runs again.
    again = run_demo("--fail-at", "car", "--fast", "--db", str(db), cwd=tmp_path)
    assert again.returncode == 1
    assert "already ended (failed)" in again.stdout
    assert executed(again.stdout) == []
    assert "(2 recorded compensations)" in again.stdout
    assert len(ledger(db)) == 4


def test_kill_9_while_compensating_then_rerun_does_not_repeat_finished_compensations(
    tmp_path: Path,
) -> None:
    db = tmp_path / "trips.db"
    # Fast bookings, slow cancellations: the kill lands while the saga compensates.
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--fail-at", "payment", "--fast",
         "--slow-compensation", "2", "--db", str(db)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    second_undo = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "[undo hotel ] executing" in line:
                second_undo.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # The hotel's cancellation starts only once the car's is recorded.
        assert second_undo.wait(timeout=30), "".join(lines)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        reader.join(timeout=10)
    first = "".join(lines)
    assert proc.returncode == -9

    ((run_id, status),) = query(db, "SELECT run_id, status FROM runs")
    assert status not in ("completed", "failed")
    done_before = compensations(db)
    assert undone(done_before) == ["car"], first
    hotel_key = next(key for label, key in executed(first) if label == "undo hotel")
    effect_before = any(e["key"] == hotel_key for e in ledger(db))

    rerun = run_demo("--fail-at", "payment", "--fast", "--db", str(db), cwd=tmp_path)
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr
    out = rerun.stdout
    assert f"Resuming unfinished run {run_id}" in out
    assert "[undo car   ] replayed from history, not re-run: car CA-" in out
    # The car's finished compensation is not executed again; the hotel's, in flight at
    # the kill, runs again with the same idempotency key (steps are at-least-once), and
    # the provider does not apply it twice; the flight's runs once.
    both = executed(first) + executed(out)
    undo = [(label, key) for label, key in both if label.startswith("undo")]
    assert [label for label, _ in undo] == ["undo car", "undo hotel", "undo hotel",
                                            "undo flight"], first + out
    assert undo[1] == undo[2] == ("undo hotel", hotel_key)
    assert ("the provider already did this" in out) == effect_before
    assert "The saga undid the bookings, last first (3 recorded compensations):" in out

    assert query(db, "SELECT run_id, status FROM runs") == [(run_id, "failed")]
    after = compensations(db)
    assert after[0] == done_before[0]
    assert undone(after) == ["car", "hotel", "flight"]
    assert no_step_recorded_twice(db)
    cancels = [e for e in ledger(db) if e["action"].startswith("cancelling")]
    assert [e["action"] for e in cancels] == ["cancelling car", "cancelling hotel",
                                              "cancelling flight"]
