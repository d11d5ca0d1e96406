"""Garbage-collector settings for processes that run a duro worker.

Measured (docs/performance.md): with CPython's default thresholds (700, 10, 10) the
cyclic collector ran so often under load that it took ~40% of a worker's time in the
1,000 x 10 throughput benchmark (~6,000 steps/s; ~9,500 with the thresholds below), and
its full collections (0.3-0.6 s each with 10,000 runs held in memory) tripled the p99
wake-up lag of a burst of timers. Memory is still freed at once by reference counting;
only objects in reference cycles wait for a (rarer) collection.
"""

from __future__ import annotations

import gc
import threading
import time

__all__ = ["collect_young_when_idle", "release_gc", "tune_gc", "tune_gc_for_worker"]

_DEFAULTS = (700, 10, 10)
_THRESHOLDS = (50_000, 20, 10)
_lock = threading.Lock()
_holders = 0
#: Idle collections run at most this often (seconds, ``time.monotonic()``).
_IDLE_GAP = 1.0
_last_idle = -_IDLE_GAP


def tune_gc() -> None:
    """Set the process's cyclic garbage collector for a process that is a duro worker.

    Freezes what exists now (modules, workflow and step definitions: never garbage) so
    that collections do not scan it again, and makes collections rarer. The ``duro
    worker`` command calls this at start-up, after importing the workflow modules.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_THRESHOLDS)


def tune_gc_for_worker() -> bool:
    """Make collections rarer while a worker runs, if the process has CPython's default
    thresholds (an application that set its own keeps them). Pair with
    :func:`release_gc` when True."""
    global _holders
    with _lock:
        current = gc.get_threshold()
        if current == _DEFAULTS:
            gc.set_threshold(*_THRESHOLDS)
        elif current != _THRESHOLDS:
            return False
        _holders += 1
        return True


def release_gc() -> None:
    """Undo :func:`tune_gc_for_worker` once the last worker that tuned stops."""
    global _holders
    with _lock:
        _holders -= 1
        if _holders == 0 and gc.get_threshold() == _THRESHOLDS:
            gc.set_threshold(*_DEFAULTS)


def collect_young_when_idle() -> bool:
    """Collect the young generations now, while the worker has nothing to do.

    With thousands of runs held in memory (loaded ahead of their timers), the objects
    that loading them left in the middle generation made its next collection take
    ~0.2 s (measured on PostgreSQL), and it fell, by chance, inside the burst of timers
    they were loaded for. Done when the worker is about to sit idle, the same work delays
    nothing. Only with the worker's thresholds in force (not if the application changed
    them meanwhile), at most once a second, and only once the middle collection is a
    quarter of the way due (so that idle workers do not promote objects to the oldest
    generation much sooner than the collector would). Returns whether it collected.
    """
    global _last_idle
    now = time.monotonic()
    if (now - _last_idle < _IDLE_GAP or not gc.isenabled()
            or gc.get_threshold() != _THRESHOLDS
            or gc.get_count()[1] < _THRESHOLDS[1] // 4):
        return False
    _last_idle = now
    gc.collect(1)
    return True
