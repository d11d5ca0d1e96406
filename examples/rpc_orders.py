"""Two services, one durable call: an ``orders`` service's workflow charges a card through
a ``payments`` service that another team runs, with its own database (docs/rpc.md).

* payments exposes ``payments.charge`` (``@duro.workflow(expose=True)``): ``duro serve``
  serves it at ``POST /v1/operations/payments.charge``, behind API tokens;
* orders' ``orders.place`` calls it with ``await duro.call(PAYMENTS, "payments.charge",
  ...)``: the remote start is idempotent (an operation id derived from the order's run),
  the result comes back by a signed callback to orders' own ``duro serve`` (or by
  polling), and a declined card arrives as a typed ``duro.RemoteOperationError``.

Run it (no network: two ``duro serve --worker`` processes on loopback, two SQLite files in
a temporary directory)::

    python examples/rpc_orders.py

The same module is both services' code: each ``duro serve`` imports it, and only
payments' exposes anything (orders' ``place`` is not callable from outside).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import duro

PAYMENTS = duro.Endpoint(url=os.environ.get("PAYMENTS_URL", "http://127.0.0.1:8234"),
                         token=os.environ.get("PAYMENTS_TOKEN") or None,
                         callback_url=os.environ.get("ORDERS_URL") or None)
"""Where orders reaches payments (set by the environment of orders' ``duro serve``)."""


class CardDeclinedError(Exception):
    """The card issuer said no."""


# -- the payments service ----------------------------------------------------------------


@duro.step(name="payments.capture")
async def capture(order_id: str, amount: int) -> str:
    # A real step would call the card processor, with duro.step_info().idempotency_key.
    return f"ch_{order_id.lower()}_{amount}"


@duro.workflow(name="payments.charge", expose=True)
async def charge(order_id: str, amount: int) -> dict[str, Any]:
    if amount > 10_000:
        raise CardDeclinedError(f"amount {amount} over the card's limit")
    return {"charge_id": await capture(order_id, amount), "amount": amount}


# -- the orders service ------------------------------------------------------------------


@duro.step(name="orders.ship")
async def ship(order_id: str) -> str:
    return f"shipment of {order_id} booked"


@duro.workflow(name="orders.place")
async def place(order_id: str, amount: int) -> dict[str, Any]:
    try:
        payment = await duro.call(PAYMENTS, "payments.charge", order_id, amount,
                                  timeout=300)
    except duro.RemoteOperationError as exc:
        return {"order_id": order_id, "status": "payment_failed",
                "reason": f"{exc.error_type}: {exc.remote_message}"}
    return {"order_id": order_id, "status": "paid", "payment": payment,
            "shipping": await ship(order_id)}


# -- running both services locally -------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(db: Path, port: int, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    here = Path(__file__).resolve().parent
    environ = {**os.environ, **env,
               "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "duro", "--db", f"sqlite:///{db}", "serve", "rpc_orders",
         "--worker", "--port", str(port), *args],
        env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not re.search(r"duro serve ready", line):
        proc.kill()
        raise SystemExit(f"duro serve did not start: {line}{proc.stdout.read()}")
    print(f"  {line.strip()}")
    return proc


async def _token(db: Path) -> str:
    async with duro.Client(f"sqlite:///{db}") as client:
        secret, _ = await client.tokens.create("orders-service", scope="write")
        return str(secret)


async def _place_orders(orders_url: str) -> list[dict[str, Any]]:
    async with duro.Client(orders_url) as client:
        handles = [await client.start("orders.place", order_id, amount, id=order_id)
                   for order_id, amount in (("A-1001", 1200), ("A-1002", 25_000))]
        return [await handle.result(timeout=60) for handle in handles]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, help="where the two databases go (default: "
                                                 "a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = args.dir or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        payments_port, orders_port = _free_port(), _free_port()
        token = asyncio.run(_token(where / "payments.db"))
        print("starting payments (API tokens required) and orders:")
        payments = _serve(where / "payments.db", payments_port, {}, "--auth")
        orders = _serve(where / "orders.db", orders_port, {
            "PAYMENTS_URL": f"http://127.0.0.1:{payments_port}", "PAYMENTS_TOKEN": token,
            "ORDERS_URL": f"http://127.0.0.1:{orders_port}",
            "DURO_CALLBACK_SECRET": os.urandom(16).hex()})
        try:
            for result in asyncio.run(_place_orders(f"http://127.0.0.1:{orders_port}")):
                print(result)
        finally:
            for proc in (orders, payments):
                proc.terminate()
                proc.wait(timeout=30)
                if proc.stdout is not None:
                    proc.stdout.close()


if __name__ == "__main__":
    main()
