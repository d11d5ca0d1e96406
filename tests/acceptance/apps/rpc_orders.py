"""The caller of the durable RPC tests (docs/rpc.md): an orders deployment whose
workflow calls the payments deployment's ``charge``. Where payments is, its token and
this deployment's own URL (for callbacks) come from the environment. ``order_typed``
calls it through the typed stub; ``order_short`` polls with short polls only
(``long_poll=0``, as callers did before long polls)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Protocol

import duro

PAYMENTS = duro.Endpoint(url=os.environ.get("PAYMENTS_URL", "http://127.0.0.1:9"),
                         token=os.environ.get("PAYMENTS_TOKEN") or None,
                         callback_url=os.environ.get("ORDERS_URL") or None,
                         poll_interval=float(os.environ.get("POLL_INTERVAL", "0.5")),
                         long_poll=float(os.environ.get("LONG_POLL", "30")))
SHORT = dataclasses.replace(PAYMENTS, long_poll=0.0)
"""The same callee polled with short polls only (as before long polls)."""


@duro.workflow(name="order")
async def order(order_id: str, amount: int, operation: str = "charge",
                timeout: float | None = None) -> dict[str, object]:
    try:
        payment = await duro.call(PAYMENTS, operation, order_id, amount, timeout=timeout)
    except duro.RemoteOperationError as exc:
        return {"order_id": order_id, "failed": exc.status, "error_type": exc.error_type,
                "message": exc.remote_message, "traceback": exc.remote_traceback or ""}
    return {"order_id": order_id, "payment": payment}


@duro.workflow(name="order_checked")
async def order_checked(order_id: str, amount: int) -> dict[str, object]:
    """Two operations of the callee called with one id (the order's): two calls."""
    payment = await duro.call(SHORT, "charge", order_id, amount, id=f"order:{order_id}")
    check = await duro.call(SHORT, "verify", order_id, amount, id=f"order:{order_id}")
    return {"payment": payment, "check": check}


@duro.workflow(name="order_odd_id")
async def order_odd_id(operation_id: str) -> dict[str, object]:
    """A call with an id spelt like a path: one no route could reach ("a/b") is refused
    at the call; "." and ".." are ids like any other."""
    try:
        return {"payment": await duro.call(PAYMENTS, "charge", f"x{operation_id}", 1,
                                           id=operation_id)}
    except duro.InvalidArgumentError as exc:
        return {"refused": f"{type(exc).__name__}: {exc}"}


@duro.workflow(name="order_short")
async def order_short(order_id: str, amount: int) -> dict[str, object]:
    """An order whose call polls with short polls only."""
    return {"order_id": order_id, "payment": await duro.call(SHORT, "charge", order_id,
                                                             amount)}


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
