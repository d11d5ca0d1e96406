"""The history has one definition (duro/_history.py): no other module spells an event
kind, the kind sets agree with the SQL, and every committed history uses known kinds."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from duro._history import (
    OUTCOME_KINDS,
    AttemptMeta,
    ChildStarted,
    EventKind,
    RetryMeta,
    RunStartedMeta,
    UpdateMeta,
    terminal_kind,
)
from duro.errors import ErrorInfo

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "duro"
KINDS = {k.value for k in EventKind}


def _kind_literals(path: Path) -> list[str]:
    """Places in a module where a string constant is exactly an event kind."""
    tree = ast.parse(path.read_text("utf-8"))
    return [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and node.value in KINDS]


def test_no_module_but_the_schema_spells_an_event_kind() -> None:
    found = [hit for path in sorted(SRC.rglob("*.py")) if path.name != "_history.py"
             for hit in _kind_literals(path)]
    assert found == [], "use duro._history.EventKind instead of:\n" + "\n".join(found)


def test_the_check_above_can_see_a_literal(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('if kind == "step_completed":\n    pass\n')
    assert len(_kind_literals_at(module)) == 1


def _kind_literals_at(path: Path) -> list[str]:
    tree = ast.parse(path.read_text("utf-8"))
    return [str(node.lineno) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in KINDS]


def test_outcome_kinds_are_the_ones_the_schema_keeps_unique() -> None:
    for dialect in ("sqlite", "postgres"):
        schema = (SRC / "store" / dialect / "schema.sql").read_text("utf-8")
        index = re.search(r"events_outcome_once[^;]*", schema)
        assert index is not None, dialect
        assert set(re.findall(r"'(\w+)'", index.group(0))) == set(OUTCOME_KINDS), dialect


def test_committed_histories_use_known_kinds() -> None:
    histories = sorted((ROOT / "tests" / "histories").glob("*.json"))
    assert histories
    for path in histories:
        events = json.loads(path.read_text("utf-8"))
        events = events["events"] if isinstance(events, dict) else events
        assert {e["kind"] for e in events} <= KINDS, path.name


def test_every_terminal_status_has_its_event() -> None:
    for status in ("completed", "failed", "cancelled", "terminated", "timed_out",
                   "continued_as_new"):
        assert terminal_kind(status).value == f"run_{status}"


def test_meta_round_trips() -> None:
    assert AttemptMeta.decode(AttemptMeta.encode(3, 0.25, "gpu")) == AttemptMeta(
        attempt=3, duration=0.25, queue="gpu")
    retry = RetryMeta(attempt=2, duration=0.5, retry_at=10.0, first_started=1.0,
                      heartbeat={"page": 4})
    assert RetryMeta.decode(retry.encode()) == retry
    started = RunStartedMeta(parent_run_id="p", parent_op=7, deadline_at=99.0)
    assert RunStartedMeta.decode(started.encode()) == started
    assert RunStartedMeta().encode() is None
    assert UpdateMeta.decode(UpdateMeta(update_id="u1").encode()) == UpdateMeta(update_id="u1")
    assert UpdateMeta.update_id_of(None) is None
    child = ChildStarted(workflow_id="w", run_id="r")
    assert ChildStarted.decode(child.encode()) == child


def test_error_payloads_are_written_and_read_in_one_place() -> None:
    info = ErrorInfo(type="ValueError", message="bad", traceback="tb", non_retryable=True)
    assert ErrorInfo.from_payload(info.to_payload()) == info
    damaged = ErrorInfo.from_payload(b"{not json")
    assert damaged.type == "PayloadDecodeError" and "corrupt" in damaged.message
    assert ErrorInfo.from_payload(b"[1, 2]").type == "PayloadDecodeError"
    try:
        raise KeyError("k")
    except KeyError as exc:
        caught = ErrorInfo.from_exception(exc)
    assert caught.type == "KeyError" and "raise KeyError" in caught.traceback


_PREFIXES = {k.split("_", 1)[0] for k in KINDS if "_" in k}
_NOT_KINDS = {"run_id", "signal_payload", "update_args"}  # the UI's form fields


def test_every_event_kind_the_web_ui_spells_exists() -> None:
    """The web UI's scripts read histories, so they spell kinds: a kind renamed or
    removed in _history.py must fail here, not in an operator's browser."""
    found: set[str] = set()
    for path in sorted((SRC / "server" / "ui").glob("*.js")):
        for text in re.findall(r"""["'`]([a-z]+_[a-z_]+)["'`]""", path.read_text("utf-8")):
            if text.split("_", 1)[0] in _PREFIXES and text not in _NOT_KINDS:
                found.add(text)
    assert found, "the check found no kind at all: the pattern is wrong"
    assert found <= KINDS, f"not event kinds: {sorted(found - KINDS)}"
