"""Committed histories (tests/histories/*.json) must keep replaying with today's code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import duro
from duro.testing import load_history, replay
from tests.histories import workflows  # noqa: F401 - registers the reference workflows
from tests.histories.workflows import Order, reserve

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


def test_there_are_golden_histories() -> None:
    assert len(HISTORIES) >= 3


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_golden_history_replays_clean(path: Path) -> None:
    recorded = load_history(path)
    from duro.workflow import lookup_workflow

    wf = lookup_workflow(recorded["workflow"])
    result = replay(wf, recorded["events"], run_id=recorded["run_id"],
                    workflow_id=recorded["workflow_id"])
    assert result.status == "completed", result
    assert json.loads(json.dumps(result.result, default=str)) == recorded["result"]


async def reordered(order: Order) -> dict[str, object]:
    await duro.sleep(5)  # the timer now comes first: seq 1 no longer matches
    return {"reservation": await reserve(order)}


def test_changed_code_fails_golden_replay_with_nondeterminism() -> None:
    recorded = load_history(Path(__file__).parent.parent / "histories" / "order.json")
    wf = duro.Workflow(reordered, name="golden_order_changed")
    with pytest.raises(duro.NondeterminismError) as info:
        replay(wf, recorded["events"], run_id=recorded["run_id"],
               workflow_name=recorded["workflow"])
    assert info.value.seq == 1
    assert "golden.reserve" in str(info.value) and "timer" in str(info.value)
