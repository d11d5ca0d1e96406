"""Helpers for testing workflows: controlled durable time and history replay."""

from __future__ import annotations

from duro._clock import ManualClock
from duro.testing._replay import ReplayResult, load_history, replay

__all__ = ["ManualClock", "ReplayResult", "load_history", "replay"]
