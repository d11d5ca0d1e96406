"""What a worker's held runs say about work in flight (no database, no event loop)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from duro.store import Claim
from duro.worker._held import HeldRuns


def _held(run_id: str, *, inflight: int = 0, writing: int = 0,
          reading_inbox: bool = False) -> Any:
    return SimpleNamespace(run_id=run_id, queue="default", inflight=inflight,
                           writing=writing, reading_inbox=reading_inbox)


def test_runs_with_nothing_in_flight_are_not_busy() -> None:
    runs = HeldRuns(max_active=10, max_cached=10)
    assert not runs.busy()
    runs.hold(_held("a"))
    runs.hold(_held("b"))
    assert not runs.busy()


@pytest.mark.parametrize("kind", ["inflight", "writing", "reading_inbox"])
def test_a_step_a_write_or_an_inbox_read_in_flight_makes_them_busy(kind: str) -> None:
    runs = HeldRuns(max_active=10, max_cached=10)
    runs.hold(_held("a"))
    runs.hold(_held("b", **{kind: 1}))
    assert runs.busy()
    runs.discard(runs.active["b"])
    assert not runs.busy()


def test_a_claim_still_taking_its_slot_up_makes_them_busy() -> None:
    runs = HeldRuns(max_active=10, max_cached=10)
    claim = Claim(run_id="r", workflow_id="w", workflow_name="f", epoch=1, history_len=1,
                  queue="default", namespace="default")
    runs.claimed([claim])
    assert runs.busy()
    runs.taken_up(claim)
    assert not runs.busy()
    runs.reserve()
    assert runs.busy()
    runs.unreserve()
    assert not runs.busy()


def test_only_active_runs_count() -> None:
    runs = HeldRuns(max_active=10, max_cached=10)
    held = _held("a", writing=1)
    runs.hold(held)
    assert runs.busy()
    runs.suspended(held)  # in the cache now: whatever its counters say, not in flight
    assert not runs.busy()
