"""Workflows served by a worker process for the client-only test: the client process
cannot import this module (it starts, signals, updates and queries by name)."""

from __future__ import annotations

import duro


@duro.step(name="order_app.charge")
async def charge(total: int) -> str:
    return f"charged {total}"


@duro.workflow(name="order_app.order")
async def order(item: str, qty: int) -> dict[str, object]:
    lines = {item: qty}

    def add(name: str, n: int) -> int:
        lines[name] = lines.get(name, 0) + n
        return sum(lines.values())

    duro.on_update("add", add)
    duro.on_query("total", lambda: sum(lines.values()))
    approver = await duro.wait_for_signal("approve", type=str)
    return {"lines": lines, "approver": approver, "charge": await charge(sum(lines.values()))}
