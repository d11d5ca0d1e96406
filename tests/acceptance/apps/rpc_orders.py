"""The caller of the durable RPC tests (docs/rpc.md): an orders deployment whose
workflow calls the payments deployment's ``charge``. Where payments is, its token and
this deployment's own URL (for callbacks) come from the environment."""

from __future__ import annotations

import os

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
