"""The caller of the durable RPC tests (docs/rpc.md): an orders deployment whose
workflow calls the payments deployment's ``charge``. Where payments is, its token and
this deployment's own URL (for callbacks) come from the environment. ``order_typed``
calls it through the typed stub."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

import duro

PAYMENTS = duro.Endpoint(url=os.environ.get("PAYMENTS_URL", "http://127.0.0.1:9"),
                         token=os.environ.get("PAYMENTS_TOKEN") or None,
                         callback_url=os.environ.get("ORDERS_URL") or None,
                         poll_interval=float(os.environ.get("POLL_INTERVAL", "0.5")))


@duro.workflow(name="order")
async def order(order_id: str, amount: int, operation: str = "charge",
                timeout: float | None = None) -> dict[str, object]:
    try:
        payment = await duro.call(PAYMENTS, operation, order_id, amount, timeout=timeout)
    except duro.RemoteOperationError as exc:
        return {"order_id": order_id, "failed": exc.status, "error_type": exc.error_type,
                "message": exc.remote_message, "traceback": exc.remote_traceback or ""}
    return {"order_id": order_id, "payment": payment}


@dataclass(frozen=True, kw_only=True)
class Payment:
    charge_id: str
    amount: int


class Payments(Protocol):
    """The payments deployment's operations, declared for the typed stub."""

    async def charge(self, order_id: str, amount: int) -> Payment: ...


TYPED = PAYMENTS.stub(Payments)


@duro.workflow(name="order_typed")
async def order_typed(order_id: str, amount: int) -> dict[str, object]:
    payment = await TYPED.charge(order_id, amount)  # a Payment: converted by the stub
    return {"order_id": order_id, "type": type(payment).__name__,
            "charge_id": payment.charge_id}
