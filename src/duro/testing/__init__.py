"""Helpers for testing workflows: controlled durable time."""

from __future__ import annotations

from duro._clock import ManualClock

__all__ = ["ManualClock"]
