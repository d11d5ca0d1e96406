"""New ids: every run's id (a start, a child, a continue-as-new, a schedule's tick, a
retry or reset) and a default workflow id.

They are UUIDs of version 7 (RFC 9562): 48 bits of Unix time in milliseconds, then 74
random bits. Two reasons, both measured with bench/bench_http.py (docs/benchmarks.md):

- Ids made one after another sort near each other, so the indexes keyed by a run's id
  (the runs' primary key, its events', the stats' queue) take new keys at their right
  edge instead of on a random page each: a SQLite start writes fewer pages (~20% less
  of the writer's CPU per start, on the project's machine).
- ``uuid.uuid4()`` reads ``os.urandom`` at every call, a system call made with the GIL
  released: on a server whose SQLite writer thread waits for the GIL, each call hands it
  over and the event loop waits to get it back. The random bits here are read 4 KiB at a
  time (one call per ~300 ids); they are ``os.urandom``'s all the same, so the ids are as
  hard to guess as ``uuid4``'s, but for the time they carry (a run's ``created_at`` is
  no secret either).
"""

from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["new_id"]

_RANDOM = 10  # bytes taken per id: 80 bits, of which the layout keeps 74
_CHUNK = _RANDOM * 400

_lock = threading.Lock()
_pool = b""
_at = 0


def _forget() -> None:
    """A forked child must not hand out the random bits its parent hands out too."""
    global _pool, _at, _lock
    _pool, _at, _lock = b"", 0, threading.Lock()


os.register_at_fork(after_in_child=_forget)


def new_id() -> str:
    """A new UUID (version 7: time-ordered, then random) as text, as ``str(uuid4())``
    spells one."""
    global _pool, _at
    with _lock:
        if _at >= len(_pool):
            _pool, _at = os.urandom(_CHUNK), 0
        rand = int.from_bytes(_pool[_at:_at + _RANDOM])
        _at += _RANDOM
    ms = time.time_ns() // 1_000_000
    # 48 bits of time, version 7, 12 random bits, variant 0b10, 62 random bits.
    value = ((ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (rand >> 68) << 64
             | 0b10 << 62 | (rand & (1 << 62) - 1))
    return str(uuid.UUID(int=value))
