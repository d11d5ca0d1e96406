"""The callee of the durable RPC tests (docs/rpc.md): a payments deployment exposing
``charge``. A charge of an order id starting with ``gated-`` waits in its step until the
file ``$GATE_DIR/<order id>`` exists (so a test can kill a process mid-operation); one
of an id ``soak...-<ms>ms`` takes that long; an amount of 0 is declined (a typed error
the caller receives). Each capture appends ``<idempotency key> <order id>`` to
``$GATE_DIR/ledger`` once it is done, as a payment processor's ledger would: a capture
run again after a crash appends again, with the same key."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import duro


class CardDeclinedError(Exception):
    """The card was declined."""


@duro.step(name="payments.capture")
async def capture(order_id: str, amount: int) -> str:
    if order_id.startswith("gated-"):
        gate = Path(os.environ["GATE_DIR"]) / order_id
        (Path(os.environ["GATE_DIR"]) / f"{order_id}.entered").touch()
        while not gate.exists():
            await asyncio.sleep(0.02)
    if order_id.startswith("soak"):
        await asyncio.sleep(int(order_id.rsplit("-", 1)[1].removesuffix("ms")) / 1000)
    if amount < 0:
        raise duro.NonRetryableError(f"amount {amount} refused")
    with (Path(os.environ["GATE_DIR"]) / "ledger").open("a") as ledger:
        ledger.write(f"{duro.step_info().idempotency_key} {order_id}\n")
    return f"ch_{order_id}_{amount}"


@duro.workflow(name="charge", expose=True)
async def charge(order_id: str, amount: int) -> dict[str, object]:
    if amount == 0:
        raise CardDeclinedError(f"card declined for order {order_id}")
    return {"charge_id": await capture(order_id, amount), "amount": amount}


@duro.workflow(name="verify", expose=True)
async def verify(order_id: str, amount: int) -> dict[str, object]:
    """A second operation: a caller may call both with one id (its order's)."""
    return {"verified": order_id, "limit": amount * 10}


@duro.workflow(name="internal_refund")
async def internal_refund(order_id: str) -> str:
    """Not exposed: other deployments must not find it."""
    return order_id
