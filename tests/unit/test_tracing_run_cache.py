"""The run-context cache of duro.tracing: bounded, and it keeps the recent runs."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk")

from duro.tracing import _ids


def test_a_full_cache_drops_its_oldest_quarter_and_keeps_the_rest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ids, "_CACHED", 8)
    monkeypatch.setattr(_ids, "_runs", {})
    for i in range(8):
        _ids.run_contexts(f"run-{i}")
    assert len(_ids._runs) == 8
    first = _ids.run_contexts("run-5")
    again = _ids.run_contexts("run-5")
    assert again[0] is first[0] and again[1] is first[1]  # a hit: the same objects
    _ids.run_contexts("run-8")  # full: runs 0 and 1 go, the rest stay
    assert [k[0] for k in _ids._runs] == [f"run-{i}" for i in range(2, 9)]
    derived = _ids.run_span_context("run-0")  # derived again: the same ids as before
    assert (derived.trace_id, derived.span_id) == (_ids.run_trace_id("run-0"),
                                                   _ids.run_span_id("run-0"))
