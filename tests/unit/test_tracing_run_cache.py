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
        _ids.run_entry(f"run-{i}")
    assert len(_ids._runs) == 8
    first = _ids.run_entry("run-5")
    again = _ids.run_entry("run-5")
    assert again is first  # a hit: the same entry
    _ids.run_entry("run-8")  # full: runs 0 and 1 go, the rest stay
    assert list(_ids._runs) == [f"run-{i}" for i in range(2, 9)]
    derived, _ = _ids.run_entry("run-0")  # gone: derived again, the same ids as before
    assert (derived.trace_id, derived.span_id) == (_ids.run_trace_id("run-0"),
                                                   _ids.run_span_id("run-0"))
    assert "run-0" in _ids._runs


_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_runs_entry_continues_its_starts_trace_and_is_read_by_run_id(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ids, "_runs", {})
    span, start = _ids.run_entry("run-1", {"traceparent": _TRACEPARENT})
    assert start is not None and start.span_id == 0xB7AD6B7169203331
    assert span.trace_id == start.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span.span_id == _ids.run_span_id("run-1") and span.is_remote
    # A run's headers never change: a worker's later asks (other attempts, the run's end)
    # find the entry by the run id without reading them again.
    assert _ids.run_entry("run-1", {"traceparent": _TRACEPARENT}) == (span, start)
    assert _ids.run_entry("run-1")[0] is span
    # The public function derives from what it is given, cache or not.
    assert _ids.run_span_context("run-1").trace_id == _ids.run_trace_id("run-1")
    assert _ids.run_span_context("run-1", {"traceparent": _TRACEPARENT}) == span
