"""Durable RPC's typed stub in user code: must type-check under ``mypy --strict``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import duro


@dataclass
class Charge:
    charge_id: str
    amount: int


class Payments(Protocol):
    async def charge(self, order_id: str, amount: int) -> Charge: ...

    async def refund(self, charge_id: str) -> None: ...


PAYMENTS = duro.Endpoint(url="http://payments:8233").stub(Payments, prefix="payments.",
                                                          timeout=300)


@duro.workflow
async def place(order_id: str, amount: int) -> str:
    charge: Charge = await PAYMENTS.charge(order_id, amount)
    if charge.amount != amount:
        await PAYMENTS.refund(charge.charge_id)
    return charge.charge_id
