"""Workflows behind the webhook tests of ``duro serve``: a run per delivery stream that
collects its events."""

from __future__ import annotations

from typing import Any

import duro


@duro.workflow(name="hooks_app.collect")
async def collect(n: int = 3) -> list[Any]:
    """The payloads of ``n`` "event" signals, in the order they were recorded (a default
    for ``n``: a provider's delivery starts it with no arguments)."""
    got: list[Any] = []
    while len(got) < n:
        got.append(await duro.wait_for_signal("event"))
    return got


@duro.workflow(name="hooks_app.noop")
async def noop(i: int) -> int:
    return i
