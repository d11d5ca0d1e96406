"""Workers: claiming, leases, step execution, suspension and recovery."""

from __future__ import annotations

from duro.worker._gc import tune_gc
from duro.worker._worker import Worker

__all__ = ["Worker", "tune_gc"]
