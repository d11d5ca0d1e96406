"""Mistakes with durable RPC's typed stub that ``mypy --strict`` must catch (the lines are
pinned by tests/unit/test_typing.py)."""

from __future__ import annotations

from typing import Protocol

import duro


class Payments(Protocol):
    async def charge(self, order_id: str, amount: int) -> str: ...


PAYMENTS = duro.Endpoint(url="http://payments:8233").stub(Payments)


@duro.workflow
async def place(order_id: str) -> int:
    await PAYMENTS.charge(order_id, "250")  # an argument of the wrong type
    await PAYMENTS.capture(order_id)  # an operation Payments does not declare
    charge_id: int = await PAYMENTS.charge(order_id, 250)  # the result is a str
    return charge_id
